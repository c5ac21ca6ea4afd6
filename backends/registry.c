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
 *
 * A test harness may add a few drivers of its own after the table
 * (vs_driver_register_extra: the crash simulator of tests/crashsim); they
 * are looked up after every compiled-in driver.  Registration happens
 * before any other thread runs, so the look-ups take no lock.
 */
#include <errno.h>
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
#define MAX_EXTRA 4

static const struct vs_driver *extra[MAX_EXTRA];
static size_t n_extra;

/* Entry I of the table followed by the extra drivers. */
static const struct vs_driver *
driver_at(size_t i)
{
    return i < N_DRIVERS ? drivers[i] : extra[i - N_DRIVERS];
}

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
    for (size_t i = 0; i < N_DRIVERS + n_extra; i++) {
        const struct vs_driver *drv = driver_at(i);

        if (driver_usable(drv) && strcmp(drv->name, name) == 0)
            return drv;
    }
    return NULL;
}

const struct vs_driver *
vs_driver_for_location(const char *location)
{
    for (size_t i = 0; i < N_DRIVERS + n_extra; i++) {
        const struct vs_driver *drv = driver_at(i);

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
    for (size_t i = 0; i < N_DRIVERS + n_extra; i++) {
        if (driver_usable(driver_at(i)))
            fn(driver_at(i), arg);
    }
}

int
vs_driver_register_extra(const struct vs_driver *drv)
{
    if (drv == NULL || !driver_usable(drv))
        return -EINVAL;
    if (vs_driver_find(drv->name) != NULL)
        return -EEXIST;
    if (n_extra == MAX_EXTRA)
        return -ENOSPC;
    extra[n_extra++] = drv;
    return 0;
}
