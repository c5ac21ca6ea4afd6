/*
 * The driver registry: one table of every driver compiled in, in the order
 * they are tried, and the three look-ups of <vs/bdev.h>.
 *
 * Adding a backend means adding its struct vs_driver to drivers[] below
 * (optional ones inside their meson feature's #ifdef).  A driver is usable
 * when it was built against this interface or an older one and its struct
 * holds at least the identifying fields; anything else is skipped with a
 * debug line, so a stray newer module can never be called through a
 * callback layout it does not have.  Callbacks beyond an older driver's
 * struct_size are hidden by VS_DRV_CB (backends.h), not here.
 */
#include <string.h>

#include "vs/bdev.h"
#include "vs/log.h"
#include "backends.h"

static const struct vs_driver *const drivers[] = {
    &vs_driver_dir,
    &vs_driver_raw,
    &vs_driver_qcow2,
};

#define N_DRIVERS (sizeof(drivers) / sizeof(drivers[0]))

/* The size of the identifying fields every version must have. */
#define DRIVER_MIN_SIZE offsetof(struct vs_driver, store_open)

static bool
driver_usable(const struct vs_driver *drv)
{
    if (drv->api_version > VS_DRIVER_API_VERSION) {
        vs_log_debug(VS_LOG_CAT_BACKEND,
                     "driver table: skipping a driver of api version %u "
                     "(this build knows up to %u)",
                     (unsigned)drv->api_version, VS_DRIVER_API_VERSION);
        return false;
    }
    if (drv->struct_size < DRIVER_MIN_SIZE || drv->name == NULL) {
        vs_log_debug(VS_LOG_CAT_BACKEND,
                     "driver table: skipping a driver with a %u-byte struct",
                     (unsigned)drv->struct_size);
        return false;
    }
    return true;
}

const struct vs_driver *
vs_driver_find(const char *name)
{
    for (size_t i = 0; i < N_DRIVERS; i++) {
        if (driver_usable(drivers[i]) && strcmp(drivers[i]->name, name) == 0)
            return drivers[i];
    }
    return NULL;
}

const struct vs_driver *
vs_driver_for_location(const char *location)
{
    for (size_t i = 0; i < N_DRIVERS; i++) {
        const struct vs_driver *drv = drivers[i];

        if (!driver_usable(drv) || drv->kind != VS_DRIVER_PROTOCOL ||
            drv->scheme == NULL)
            continue;
        if (strncmp(location, drv->scheme, strlen(drv->scheme)) == 0)
            return drv;
    }
    return NULL;
}

void
vs_driver_foreach(void (*fn)(const struct vs_driver *drv, void *arg), void *arg)
{
    for (size_t i = 0; i < N_DRIVERS; i++) {
        if (driver_usable(drivers[i]))
            fn(drivers[i], arg);
    }
}
