/*
 * errors.c: the one table between negative errnos and Varlink error names.
 *
 * The daemon turns a failing operation's errno into the error it sends; the
 * client library turns a received error back into the errno it returns.
 * Both read this table, so the two directions cannot drift apart.
 */
#include "proto.h"

#include <errno.h>
#include <string.h>

static const struct {
    int err;
    const char *name;
} error_table[] = {
    {-ENOENT, PROTO_ERR_REGION_NOT_FOUND},
    {-EEXIST, PROTO_ERR_REGION_EXISTS},
    {-EACCES, PROTO_ERR_PERMISSION_DENIED},
    {-ENOSPC, PROTO_ERR_NO_SPACE},
    {-ENOTCONN, PROTO_ERR_NOT_ATTACHED},
    {-EBADMSG, PROTO_ERR_INVALID_MESSAGE},
    {-EAGAIN, PROTO_ERR_RESOURCE_UNAVAILABLE},
    {-EINVAL, PROTO_ERR_INVALID_PARAMETER},
    {-ENOSYS, PROTO_ERR_METHOD_NOT_FOUND},
    {-ESRCH, PROTO_ERR_INTERFACE_NOT_FOUND},
    {-EOPNOTSUPP, PROTO_ERR_METHOD_NOT_IMPLEMENTED},
};

#define ERROR_COUNT (sizeof(error_table) / sizeof(error_table[0]))

const char *proto_error_name(int err)
{
    for (size_t i = 0; i < ERROR_COUNT; i++)
        if (error_table[i].err == err)
            return error_table[i].name;
    return NULL;
}

int proto_error_errno(const char *name)
{
    if (name == NULL)
        return -EPROTO;
    for (size_t i = 0; i < ERROR_COUNT; i++)
        if (strcmp(error_table[i].name, name) == 0)
            return error_table[i].err;
    return -EPROTO;
}
