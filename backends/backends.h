/*
 * Private to backends/: the driver table's members and the one accessor
 * through which the generic layer reads a driver's callbacks.
 *
 * A driver built against an older (shorter) struct vs_driver sets
 * struct_size to what it knew; any callback that lies beyond that size is
 * not there and reads as NULL.  Every call site in backends/ goes through
 * VS_DRV_CB so that rule is applied in exactly one place.
 */
#ifndef VS_BACKENDS_H
#define VS_BACKENDS_H

#include <stddef.h>

#include "vs/driver.h"

/* Callback MEMBER of driver DRV, or NULL when DRV is NULL, leaves it NULL,
 * or was built with a struct vs_driver too short to contain it. */
#define VS_DRV_CB(drv, member)                                                 \
    (((drv) != NULL &&                                                         \
      offsetof(struct vs_driver, member) + sizeof((drv)->member) <=            \
          (drv)->struct_size)                                                  \
         ? (drv)->member                                                       \
         : NULL)

/* The drivers compiled into the table (see registry.c). */
extern const struct vs_driver vs_driver_dir;
extern const struct vs_driver vs_driver_raw;
extern const struct vs_driver vs_driver_qcow2;

#endif
