/*
 * fault_ctl.h - the control block of the fault-injection shim
 * (fault_shim.c), shared by mmsrvd-fault and the tests that drive it.
 *
 * The block lives in a file whose path is in $MMSRV_FAULT_CTL; the daemon
 * and the test both map it MAP_SHARED, so the test can arm and disarm a
 * fault while the daemon runs.  Every member is a lock-free atomic (the
 * same in both processes, address-free).  Arming: set call to FAULT_NONE,
 * fill skip, fail and err, zero injected, then set call last.  The shim lets
 * `skip` matching calls through, then fails the next `fail` ones with err.
 */
#ifndef MMSRV_FAULT_CTL_H
#define MMSRV_FAULT_CTL_H

#include <stdatomic.h>
#include <stdint.h>

/* The calls the shim can fail, each on one path of the daemon only. */
enum fault_call {
    FAULT_NONE = 0,
    FAULT_MEMFD_CREATE, /* a region's memfd (region.c) */
    FAULT_FTRUNCATE,    /* sizing a region's memfd (region.c) */
    FAULT_ADD_SEALS,    /* sealing a region's memfd (region.c) */
    FAULT_MAP_REGION,   /* mapping a region into the segment (segment.c) */
    FAULT_OPEN_PROC_FD, /* the read-only reopen of a memfd (access.c) */
    FAULT_SENDMSG,      /* a reply to a client (client.c) */
    FAULT_ACCEPT4,      /* a new connection (client.c) */
};

#define FAULT_CTL_MAGIC 0x6d6d6674u /* "mmft" */

struct fault_ctl {
    uint32_t magic;
    atomic_int call;     /* enum fault_call: which call fails */
    atomic_int skip;     /* matching calls still to let through */
    atomic_int fail;     /* failures still to inject */
    atomic_int err;      /* the errno they fail with */
    atomic_int injected; /* failures injected since armed */
};

_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "the control block is shared between processes");

#endif /* MMSRV_FAULT_CTL_H */
