/*
 * The "crashsim-store" protocol driver: a store in memory whose objects are
 * crashsim disks, so that code which opens its own objects through a store
 * (the domain metadata area) runs unchanged on simulated storage.
 *
 * Location "crashsim:NAME".  A store exists from its creating open to its
 * close, which frees its disks: there is nothing to find again later, so an
 * open without create answers -ENOENT.  A new object of SIZE bytes starts
 * as a disk of SIZE durable zero bytes.  Object bdevs run the same block
 * callbacks as the "crashsim" driver; closing one leaves its disk in the
 * store, where crashsim_store_disk() finds it for the crash states.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "crashsim_int.h"

struct cs_object {
    char *name;
    struct crashsim_disk *disk;
};

struct cs_store {
    struct cs_object *obj;
    size_t n, cap;
};

static struct cs_object *
find(struct cs_store *cs, const char *name)
{
    for (size_t i = 0; i < cs->n; i++) {
        if (strcmp(cs->obj[i].name, name) == 0)
            return &cs->obj[i];
    }
    return NULL;
}

static int
store_open(struct vs_store *st, bool create)
{
    struct cs_store *cs;

    if (!create)
        return -ENOENT;
    cs = calloc(1, sizeof(*cs));
    if (cs == NULL)
        return -ENOMEM;
    st->opaque = cs;
    memset(&st->caps, 0, sizeof(st->caps));
    return 0;
}

static void
store_close(struct vs_store *st)
{
    struct cs_store *cs = st->opaque;

    for (size_t i = 0; i < cs->n; i++) {
        free(cs->obj[i].name);
        crashsim_disk_free(cs->obj[i].disk);
    }
    free(cs->obj);
    free(cs);
    st->opaque = NULL;
}

static int
object_create(struct vs_store *st, const char *name, uint64_t size)
{
    struct cs_store *cs = st->opaque;
    struct cs_object o;

    if (find(cs, name) != NULL)
        return -EEXIST;
    if (size > SIZE_MAX)
        return -EFBIG;
    if (cs->n == cs->cap) {
        size_t cap = cs->cap ? cs->cap * 2 : 8;
        struct cs_object *p = realloc(cs->obj, cap * sizeof(*p));

        if (p == NULL)
            return -ENOMEM;
        cs->obj = p;
        cs->cap = cap;
    }
    o.name = strdup(name);
    o.disk = crashsim_disk_new(NULL, (size_t)size);
    if (o.name == NULL || o.disk == NULL) {
        free(o.name);
        crashsim_disk_free(o.disk);
        return -ENOMEM;
    }
    cs->obj[cs->n++] = o;
    return 0;
}

static int
object_remove(struct vs_store *st, const char *name)
{
    struct cs_store *cs = st->opaque;
    struct cs_object *o = find(cs, name);

    if (o == NULL)
        return -ENOENT;
    free(o->name);
    crashsim_disk_free(o->disk);
    *o = cs->obj[--cs->n];
    return 0;
}

static int
object_open(struct vs_store *st, const char *name, struct vs_bdev *bs)
{
    struct cs_object *o = find(st->opaque, name);

    if (o == NULL)
        return -ENOENT;
    bs->opaque = o->disk;
    return 0;
}

static int
object_list(struct vs_store *st, int (*fn)(const char *name, void *arg),
            void *arg)
{
    struct cs_store *cs = st->opaque;

    for (size_t i = 0; i < cs->n; i++) {
        int r = fn(cs->obj[i].name, arg);

        if (r != 0)
            return r;
    }
    return 0;
}

static void
object_close(struct vs_bdev *bs)
{
    bs->opaque = NULL; /* the disk stays in its store */
}

const struct vs_driver crashsim_store_driver = {
    .api_version = VS_DRIVER_API_VERSION,
    .struct_size = sizeof(struct vs_driver),
    .name = "crashsim-store",
    .kind = VS_DRIVER_PROTOCOL,
    .scheme = CRASHSIM_SCHEME,
    .store_open = store_open,
    .store_close = store_close,
    .object_create = object_create,
    .object_remove = object_remove,
    .object_open = object_open,
    .object_list = object_list,
    .close = object_close,
    .get_size = crashsim_cb_get_size,
    .get_allocated = crashsim_cb_get_size,
    .truncate = crashsim_cb_truncate,
    .preadv = crashsim_cb_preadv,
    .pwritev = crashsim_cb_pwritev,
    .flush = crashsim_cb_flush,
    .discard = crashsim_cb_discard,
    .write_zeroes = crashsim_cb_write_zeroes,
};

struct crashsim_disk *
crashsim_store_disk(struct vs_store *st, const char *name)
{
    struct cs_object *o;

    if (st == NULL || st->drv != &crashsim_store_driver)
        return NULL;
    o = find(st->opaque, name);
    return o != NULL ? o->disk : NULL;
}
