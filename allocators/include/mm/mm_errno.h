/*
 * mm_errno.h - error codes of the allocators.
 *
 * The allocators are freestanding and may not include <errno.h>, yet on the
 * host their negative return values must be the errno values the rest of
 * mmsrv speaks.  These are Linux's numbers; the host port checks at compile
 * time that they match the C library's.
 */
#ifndef MM_ERRNO_H
#define MM_ERRNO_H

#define MM_EPERM           1   /* not yours: a buffer or channel end another owner holds */
#define MM_ENOENT          2   /* no such channel */
#define MM_EAGAIN          11  /* try again: nothing free right now */
#define MM_ENOMEM          12  /* not enough memory */
#define MM_EFAULT          14  /* pointer outside the heap */
#define MM_EBUSY           16  /* in use */
#define MM_EEXIST          17  /* a channel of that name exists */
#define MM_EINVAL          22  /* invalid argument */
#define MM_ENOSPC          28  /* no space left */
#define MM_ESPIPE          29  /* offset past the end of the data */
#define MM_EBADMSG         74  /* memory does not hold what it claims */
#define MM_ETIMEDOUT       110 /* a wait ran out */
#define MM_EUCLEAN         117 /* structure corrupted: the heap refuses work */
#define MM_EOWNERDEAD      130 /* a lock's owner died (repaired) */
#define MM_ENOTRECOVERABLE 131 /* a lock cannot be repaired */

#endif /* MM_ERRNO_H */
