/*
 * Private to backends/: the driver table's members, the accessors through
 * which the generic layer reads a driver's callbacks and flags, and the
 * settling of a bdev's limits after open.
 *
 * A driver built against an older (shorter) struct vs_driver sets
 * struct_size to what it knew; any callback that lies beyond that size is
 * not there and reads as NULL.  Every call site in backends/ goes through
 * VS_DRV_CB so that rule is applied in exactly one place.
 */
#ifndef VS_BACKENDS_H
#define VS_BACKENDS_H

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <sys/uio.h>

#include "vs/driver.h"

/* Callback MEMBER of driver DRV, or NULL when DRV is NULL, leaves it NULL,
 * or was built with a struct vs_driver too short to contain it. */
#define VS_DRV_CB(drv, member)                                                 \
    (((drv) != NULL &&                                                         \
      offsetof(struct vs_driver, member) + sizeof((drv)->member) <=            \
          (drv)->struct_size)                                                  \
         ? (drv)->member                                                       \
         : NULL)

/* Whether DRV is a passthrough format driver: false for a NULL driver, a
 * protocol driver, or one whose struct_size ends before the flag. */
#define VS_DRV_PASSTHROUGH(drv)                                                \
    ((drv) != NULL && (drv)->kind == VS_DRIVER_FORMAT &&                       \
     offsetof(struct vs_driver, passthrough) + sizeof((drv)->passthrough) <=   \
         (drv)->struct_size &&                                                 \
     (drv)->passthrough)

/* DRV's thread model (enum vs_thread_model): parallel for a NULL driver
 * or one whose struct_size ends before the field. */
#define VS_DRV_THREAD_MODEL(drv)                                               \
    ((drv) != NULL && offsetof(struct vs_driver, thread_model) +               \
                              sizeof((drv)->thread_model) <=                   \
                          (drv)->struct_size                                   \
         ? (drv)->thread_model                                                 \
         : VS_THREAD_PARALLEL)

/* Evaluate the driver call EXPR with layer L's request lock held when its
 * driver serializes requests (bs->serial); the value of EXPR. */
#define VS_SERIALIZED(l, expr)                                                 \
    __extension__({                                                            \
        pthread_mutex_t *serial_ = (l)->serial;                                \
        if (serial_ != NULL)                                                   \
            pthread_mutex_lock(serial_);                                       \
        __typeof__(expr) ret_ = (expr);                                        \
        if (serial_ != NULL)                                                   \
            pthread_mutex_unlock(serial_);                                     \
        ret_;                                                                  \
    })

/* The byte count of IOV into *LEN; -EINVAL if it does not fit ssize_t.
 * Inline: the generic layer and the drivers call it on every request. */
static inline int
vs_iov_total(const struct iovec *iov, int iovcnt, size_t *len)
{
    size_t sum = 0;

    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len > (size_t)SSIZE_MAX - sum)
            return -EINVAL;
        sum += iov[i].iov_len;
    }
    *len = sum;
    return 0;
}

/* Fill in the defaults of the zero fields of L and make its values
 * consistent (see struct vs_limits); never fails.  store.c. */
void vs_limits_fill(struct vs_limits *l);
/* Make the limits a driver's open left in BS effective (see struct
 * vs_limits): defaults filled in, values made consistent.  -EINVAL if the
 * driver set a request_alignment that is not a power of two (store.c). */
int vs_limits_settle(struct vs_bdev *bs);

/* The drivers compiled into the table (see registry.c). */
extern const struct vs_driver vs_driver_dir;
extern const struct vs_driver vs_driver_raw;
extern const struct vs_driver vs_driver_qcow2;

#endif
