/*
 * dispatch.c: Varlink calls to their handlers, and org.varlink.service.
 *
 * The table of interfaces is filled at start: org.varlink.service here,
 * io.mmsrvd by methods.c, and whatever another file registers (a test build
 * adds org.varlink.certification).  A call names "iface.Method": the
 * interface must be registered (else InterfaceNotFound), the method in it
 * (else MethodNotFound), and its parameters must match the method's list
 * (else InvalidParameter naming the first bad member), before the handler
 * sees it.  Every call that expects an answer gets exactly one final answer.
 */
#include "mmsrvd.h"

#include <errno.h>
#include <string.h>

#ifndef MMSRV_VERSION
#define MMSRV_VERSION "0"
#endif

static const struct dispatch_interface *interfaces[DISPATCH_MAX_INTERFACES];
static size_t ninterfaces;

int dispatch_register(const struct dispatch_interface *iface)
{
    for (size_t i = 0; i < ninterfaces; i++)
        if (strcmp(interfaces[i]->name, iface->name) == 0)
            return -EEXIST;
    if (ninterfaces == DISPATCH_MAX_INTERFACES)
        return -ENOSPC;
    interfaces[ninterfaces++] = iface;
    return 0;
}

static void (*close_hooks[DISPATCH_MAX_INTERFACES])(struct conn *conn);
static size_t nclose_hooks;

int dispatch_on_close(void (*fn)(struct conn *conn))
{
    if (nclose_hooks == DISPATCH_MAX_INTERFACES)
        return -ENOSPC;
    close_hooks[nclose_hooks++] = fn;
    return 0;
}

void dispatch_conn_closed(struct conn *conn)
{
    for (size_t i = 0; i < nclose_hooks; i++)
        close_hooks[i](conn);
}

size_t dispatch_count(void)
{
    return ninterfaces;
}

const struct dispatch_interface *dispatch_get(size_t i)
{
    return i < ninterfaces ? interfaces[i] : NULL;
}

static const struct dispatch_interface *dispatch_find(const char *name, size_t len)
{
    for (size_t i = 0; i < ninterfaces; i++)
        if (strlen(interfaces[i]->name) == len && memcmp(interfaces[i]->name, name, len) == 0)
            return interfaces[i];
    return NULL;
}

pid_t dispatch_peer_pid(const struct dispatch_call *call)
{
    return call->conn->peer.pid;
}

uid_t dispatch_peer_uid(const struct dispatch_call *call)
{
    return call->conn->peer.uid;
}

gid_t dispatch_peer_gid(const struct dispatch_call *call)
{
    return call->conn->peer.gid;
}

/* ---- Answers ----------------------------------------------------------- */

int dispatch_reply_fds(struct dispatch_call *call, json_t *params, const int *fds, size_t nfds)
{
    if (call->answered) {
        json_decref(params);
        return -EALREADY;
    }
    call->answered = true;
    if ((call->flags & PROTO_ONEWAY) != 0) {
        json_decref(params);
        return 0;
    }
    return conn_send_reply(call->conn, params, false, fds, nfds);
}

int dispatch_reply(struct dispatch_call *call, json_t *params)
{
    return dispatch_reply_fds(call, params, NULL, 0);
}

int dispatch_reply_more(struct dispatch_call *call, json_t *params)
{
    if (call->answered || (call->flags & PROTO_MORE) == 0) {
        json_decref(params);
        return -EINVAL;
    }
    if ((call->flags & PROTO_ONEWAY) != 0) {
        json_decref(params);
        return 0;
    }
    return conn_send_reply(call->conn, params, true, NULL, 0);
}

int dispatch_error(struct dispatch_call *call, const char *error, json_t *params)
{
    if (call->answered) {
        json_decref(params);
        return -EALREADY;
    }
    call->answered = true;
    if ((call->flags & PROTO_ONEWAY) != 0) {
        json_decref(params);
        return 0;
    }
    return conn_send_error(call->conn, error, params);
}

int dispatch_invalid_parameter(struct dispatch_call *call, const char *parameter)
{
    return dispatch_error(call, PROTO_ERR_INVALID_PARAMETER,
                          json_pack("{s:s}", "parameter", parameter));
}

void dispatch_stream(struct dispatch_call *call)
{
    call->streaming = true;
}

void dispatch_defer(struct dispatch_call *call)
{
    call->deferred = true;
}

/* ---- Dispatch ---------------------------------------------------------- */

void dispatch_handle(struct conn *conn, const struct proto_call *pc)
{
    struct dispatch_call call = {.conn = conn, .method = pc->method, .flags = pc->flags};
    const char *dot = strrchr(pc->method, '.');
    if (dot == NULL || dot == pc->method) {
        /* proto_call_parse lets no such name through; be safe anyway */
        dispatch_error(&call, PROTO_ERR_METHOD_NOT_FOUND, json_pack("{s:s}", "method", pc->method));
        return;
    }
    const struct dispatch_interface *iface = dispatch_find(pc->method, (size_t)(dot - pc->method));
    if (iface == NULL) {
        json_t *p = json_object();
        json_object_set_new(p, "interface", json_stringn(pc->method, (size_t)(dot - pc->method)));
        dispatch_error(&call, PROTO_ERR_INTERFACE_NOT_FOUND, p);
        return;
    }
    const struct dispatch_method *m = NULL;
    for (size_t i = 0; i < iface->nmethods && m == NULL; i++)
        if (strcmp(iface->methods[i].name, dot + 1) == 0)
            m = &iface->methods[i];
    if (m == NULL) {
        dispatch_error(&call, PROTO_ERR_METHOD_NOT_FOUND, json_pack("{s:s}", "method", pc->method));
        return;
    }
    if ((pc->flags & PROTO_UPGRADE) != 0) {
        /* no method of ours switches protocols */
        dispatch_error(&call, PROTO_ERR_METHOD_NOT_IMPLEMENTED,
                       json_pack("{s:s}", "method", pc->method));
        return;
    }
    const char *bad = NULL;
    if (proto_params_check(pc->parameters, m->params, m->nparams, &bad) != 0) {
        dispatch_invalid_parameter(&call, bad != NULL ? bad : "parameters");
        return;
    }
    m->fn(&call, pc->parameters);
    if (!call.answered && !call.streaming && !call.deferred)
        dispatch_error(&call, PROTO_ERR_METHOD_NOT_IMPLEMENTED,
                       json_pack("{s:s}", "method", pc->method));
}

/* ---- org.varlink.service ------------------------------------------------ */

static const char service_description[] =
    "# The Varlink Service Interface is provided by every varlink service. It\n"
    "# describes the service and the interfaces it implements.\n"
    "interface org.varlink.service\n"
    "\n"
    "# Get a list of all the interfaces a service provides and information\n"
    "# about the implementation.\n"
    "method GetInfo() -> (\n"
    "  vendor: string,\n"
    "  product: string,\n"
    "  version: string,\n"
    "  url: string,\n"
    "  interfaces: []string\n"
    ")\n"
    "\n"
    "# Get the description of an interface that is implemented by this service.\n"
    "method GetInterfaceDescription(interface: string) -> (description: string)\n"
    "\n"
    "# The requested interface was not found.\n"
    "error InterfaceNotFound (interface: string)\n"
    "\n"
    "# The requested method was not found\n"
    "error MethodNotFound (method: string)\n"
    "\n"
    "# The interface defines the requested method, but the service does not\n"
    "# implement it.\n"
    "error MethodNotImplemented (method: string)\n"
    "\n"
    "# One of the passed parameters is invalid.\n"
    "error InvalidParameter (parameter: string)\n"
    "\n"
    "# Client is denied access\n"
    "error PermissionDenied ()\n"
    "\n"
    "# Method is expected to be called with 'more' set to true, but wasn't\n"
    "error ExpectedMore ()\n";

static void service_get_info(struct dispatch_call *call, json_t *params)
{
    (void)params;
    json_t *names = json_array();
    for (size_t i = 0; i < ninterfaces; i++)
        json_array_append_new(names, json_string(interfaces[i]->name));
    dispatch_reply(call,
                   json_pack("{s:s, s:s, s:s, s:s, s:o}", "vendor", "mmsrv", "product", "mmsrvd",
                             "version", MMSRV_VERSION, "url", "", "interfaces", names));
}

static void service_get_description(struct dispatch_call *call, json_t *params)
{
    const char *name = json_string_value(json_object_get(params, "interface"));
    const struct dispatch_interface *iface = dispatch_find(name, strlen(name));
    if (iface == NULL) {
        dispatch_error(call, PROTO_ERR_INTERFACE_NOT_FOUND, json_pack("{s:s}", "interface", name));
        return;
    }
    dispatch_reply(call, json_pack("{s:s}", "description", iface->description));
}

static const struct proto_param service_description_params[] = {
    {"interface", PROTO_T_STRING, false},
};

static const struct dispatch_method service_methods[] = {
    {"GetInfo", NULL, 0, service_get_info},
    {"GetInterfaceDescription", service_description_params, 1, service_get_description},
};

static const struct dispatch_interface service_interface = {
    PROTO_SERVICE_INTERFACE,
    service_description,
    service_methods,
    sizeof(service_methods) / sizeof(service_methods[0]),
};

void dispatch_register_service(void)
{
    /* first in GetInfo's list, even when another file registered from a
     * constructor before main() */
    if (dispatch_find(PROTO_SERVICE_INTERFACE, strlen(PROTO_SERVICE_INTERFACE)) != NULL)
        return;
    if (ninterfaces == DISPATCH_MAX_INTERFACES)
        return;
    memmove(&interfaces[1], &interfaces[0], ninterfaces * sizeof(interfaces[0]));
    interfaces[0] = &service_interface;
    ninterfaces++;
}
