/*
 * Stores, objects and the building of bdev stacks (the first half of
 * <vs/bdev.h>; the block I/O half is in bdev.c).
 *
 * A store is found by its location's scheme in the driver table, allocated
 * here and filled by its protocol driver.  Opening an object or a format
 * layer allocates a struct vs_bdev, sets the generic fields (driver, name,
 * flags, children) and lets the driver's open fill caps, limits and opaque;
 * the limits are then settled (defaults filled in, see struct vs_limits).
 * A passthrough format starts from its file's limits.  A failed open frees
 * only what this file allocated, so the caller keeps the children it
 * passed in.  vs_bdev_close undoes a stack top-down: the
 * driver's close first (a format may still write its metadata to its
 * file), then the children it owns.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vs/bdev.h"
#include "vs/log.h"
#include "backends.h"

/* ---- stores ---- */

/* The row of DRV's option table for KEY, or NULL. */
static const struct vs_option_spec *
option_spec(const struct vs_driver *drv, const char *key)
{
    const struct vs_option_spec *spec = VS_DRV_CB(drv, options);

    for (; spec != NULL && spec->key != NULL; spec++)
        if (strcmp(spec->key, key) == 0)
            return spec;
    return NULL;
}

/* Check each key of LIST (secrets when SECRET) against DRV's table. */
static int
check_list(const struct vs_driver *drv, const struct vs_options *list,
           bool secret, char *why, size_t len)
{
    const char *what = secret ? "secret" : "option";

    for (unsigned i = 0; list != NULL && i < list->count; i++) {
        const char *key = list->item[i].key;
        const struct vs_option_spec *spec = option_spec(drv, key);

        if (spec == NULL)
            snprintf(why, len,
                     "unknown %s '%s' (the %s driver does not take "
                     "it)",
                     what, key, drv->name);
        else if (spec->secret && !secret)
            snprintf(why, len,
                     "option '%s' is a secret: give it with `vstor "
                     "secret set`, never in the options",
                     key);
        else if (!spec->secret && secret)
            snprintf(why, len,
                     "secret '%s' is a plain option of the %s "
                     "driver, not a secret",
                     key, drv->name);
        else if (spec->check != NULL && spec->check(list->item[i].value) < 0)
            snprintf(why, len, "%s '%s': bad value (%s)", what, key,
                     spec->help);
        else
            continue;
        return -EINVAL;
    }
    return 0;
}

int
vs_store_check_options(const char *location, const struct vs_options *options,
                       const struct vs_options *secrets, char *why,
                       size_t why_len)
{
    const struct vs_driver *drv = vs_driver_for_location(location);
    char scratch[8];
    int r;

    if (why == NULL || why_len == 0)
        why = scratch, why_len = sizeof(scratch);
    if (drv == NULL)
        return -EPROTONOSUPPORT;
    r = check_list(drv, options, false, why, why_len);
    return r < 0 ? r : check_list(drv, secrets, true, why, why_len);
}

/* Copy LIST (NULL: empty) into a new list; NULL without memory. */
static struct vs_options *
options_dup(const struct vs_options *list)
{
    struct vs_options *o = calloc(1, sizeof(*o));

    if (o != NULL && list != NULL)
        *o = *list;
    return o;
}

/* Free a store that its driver never opened (or has closed). */
static void
store_free(struct vs_store *st)
{
    if (st->options != NULL)
        free(st->options);
    if (st->secrets != NULL) {
        vs_options_wipe(st->secrets);
        free(st->secrets);
    }
    free(st->location);
    free(st);
}

int
vs_store_open_with(const char *location, const struct vs_options *options,
                   const struct vs_options *secrets, bool create,
                   struct vs_store **out, char *why, size_t why_len)
{
    const struct vs_driver *drv = vs_driver_for_location(location);
    int (*open_cb)(struct vs_store *, bool) = VS_DRV_CB(drv, store_open);
    struct vs_store *st;
    int r;

    if (drv == NULL || open_cb == NULL)
        return -EPROTONOSUPPORT;
    r = vs_store_check_options(location, options, secrets, why, why_len);
    if (r < 0)
        return r;
    st = calloc(1, sizeof(*st));
    if (st == NULL)
        return -ENOMEM;
    st->drv = drv;
    st->location = strdup(location);
    st->options = options_dup(options);
    st->secrets = options_dup(secrets);
    if (st->location == NULL || st->options == NULL || st->secrets == NULL) {
        store_free(st);
        return -ENOMEM;
    }
    r = open_cb(st, create);
    if (r < 0) {
        vs_log_debug(VS_LOG_CAT_BACKEND, "store '%s': open failed: %s",
                     location, strerror(-r));
        if (r == -EINVAL && why != NULL && why_len > 0)
            snprintf(why, why_len,
                     "the %s driver refused the location or "
                     "its options",
                     drv->name);
        store_free(st);
        return r;
    }
    *out = st;
    return 0;
}

int
vs_store_open(const char *location, bool create, struct vs_store **out)
{
    return vs_store_open_with(location, NULL, NULL, create, out, NULL, 0);
}

int
vs_store_list(const char *root, int (*fn)(const char *name, void *arg),
              void *arg)
{
    const struct vs_driver *drv = vs_driver_for_location(root);
    int (*list_cb)(const char *, int (*)(const char *, void *), void *) =
        VS_DRV_CB(drv, store_list);

    if (list_cb == NULL)
        return -EPROTONOSUPPORT;
    return list_cb(root, fn, arg);
}

int
vs_store_root_prepare(const char *root)
{
    const struct vs_driver *drv = vs_driver_for_location(root);
    int (*prepare_cb)(const char *) = VS_DRV_CB(drv, store_root_prepare);

    if (drv == NULL)
        return -EPROTONOSUPPORT;
    return prepare_cb ? prepare_cb(root) : 0;
}

int
vs_store_default_root(const char *data_dir, char **out)
{
    /* the one place outside the driver that names it: the embedded
     * default is a local directory beside the catalog */
    return asprintf(out, "dir:%s/domains", data_dir) < 0 ? -ENOMEM : 0;
}

void
vs_store_close(struct vs_store *st)
{
    void (*close_cb)(struct vs_store *);

    if (st == NULL)
        return;
    close_cb = VS_DRV_CB(st->drv, store_close);
    if (close_cb != NULL)
        close_cb(st);
    store_free(st);
}

int
vs_store_destroy(struct vs_store *st)
{
    int (*destroy_cb)(struct vs_store *) = VS_DRV_CB(st->drv, store_destroy);
    int r;

    if (destroy_cb == NULL)
        return -ENOTSUP;
    r = destroy_cb(st);
    if (r < 0)
        return r;
    vs_store_close(st);
    return 0;
}

int
vs_store_space(struct vs_store *st, struct vs_space *out)
{
    int (*space_cb)(struct vs_store *, struct vs_space *) =
        VS_DRV_CB(st->drv, store_space);

    return space_cb != NULL ? space_cb(st, out) : -ENOTSUP;
}

/* ---- objects ---- */

int
vs_object_create(struct vs_store *st, const char *name, uint64_t size)
{
    int (*cb)(struct vs_store *, const char *, uint64_t) =
        VS_DRV_CB(st->drv, object_create);

    return cb != NULL ? cb(st, name, size) : -ENOTSUP;
}

int
vs_object_remove(struct vs_store *st, const char *name)
{
    int (*cb)(struct vs_store *, const char *) =
        VS_DRV_CB(st->drv, object_remove);

    return cb != NULL ? cb(st, name) : -ENOTSUP;
}

int
vs_object_clone(struct vs_store *st, const char *src, const char *dst)
{
    int (*cb)(struct vs_store *, const char *, const char *) =
        VS_DRV_CB(st->drv, object_clone);

    return cb != NULL ? cb(st, src, dst) : -ENOTSUP;
}

int
vs_object_list(struct vs_store *st, int (*fn)(const char *name, void *arg),
               void *arg)
{
    int (*cb)(struct vs_store *, int (*)(const char *, void *), void *) =
        VS_DRV_CB(st->drv, object_list);

    return cb != NULL ? cb(st, fn, arg) : -ENOTSUP;
}

/* Destroy and free a lock the generic layer allocated; NULL is allowed. */
static void
mutex_free(pthread_mutex_t **m)
{
    if (*m != NULL) {
        pthread_mutex_destroy(*m);
        free(*m);
        *m = NULL;
    }
}

/* Free a bdev whose driver state was never set up (or is released). */
static void
bdev_free(struct vs_bdev *bs)
{
    mutex_free(&bs->serial);
    mutex_free(&bs->size_lock);
    free(bs->name);
    free(bs);
}

/* A zeroed bdev of driver DRV named LABEL, or NULL without memory. */
static struct vs_bdev *
bdev_alloc(const struct vs_driver *drv, const char *label, unsigned flags)
{
    struct vs_bdev *bs = calloc(1, sizeof(*bs));

    if (bs == NULL)
        return NULL;
    bs->name = strdup(label);
    if (bs->name == NULL) {
        free(bs);
        return NULL;
    }
    bs->drv = drv;
    bs->open_flags = flags;
    if (VS_DRV_THREAD_MODEL(drv) == VS_THREAD_SERIALIZE_REQUESTS) {
        pthread_mutexattr_t attr;
        /* recursive: a driver may call the generic layer on its own bdev
         * (an emulated operation runs its own callbacks) */
        bs->serial = malloc(sizeof(*bs->serial));
        if (bs->serial == NULL) {
            bdev_free(bs);
            return NULL;
        }
        pthread_mutexattr_init(&attr);
        pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_RECURSIVE);
        pthread_mutex_init(bs->serial, &attr);
        pthread_mutexattr_destroy(&attr);
    }
    if (drv->kind == VS_DRIVER_PROTOCOL) {
        bs->size_lock = malloc(sizeof(*bs->size_lock));
        if (bs->size_lock == NULL) {
            bdev_free(bs);
            return NULL;
        }
        pthread_mutex_init(bs->size_lock, NULL);
    }
    return bs;
}

void
vs_limits_fill(struct vs_limits *l)
{
    if (l->request_alignment == 0)
        l->request_alignment = 1;
    if (l->max_transfer == 0 || l->max_transfer > SSIZE_MAX)
        l->max_transfer = SSIZE_MAX;
    l->max_transfer -= l->max_transfer % l->request_alignment;
    if (l->max_transfer == 0)
        l->max_transfer = l->request_alignment;
    if (l->discard_granularity == 0)
        l->discard_granularity = l->request_alignment;
    l->discard_alignment %= l->discard_granularity;
    if (l->grow_granularity == 0)
        l->grow_granularity = 1;
}

int
vs_limits_settle(struct vs_bdev *bs)
{
    uint32_t a = bs->limits.request_alignment;

    if (a != 0 && (a & (a - 1)) != 0)
        return -EINVAL; /* a driver broke its contract */
    vs_limits_fill(&bs->limits);
    return 0;
}

/* Undo a driver's successful open (its limits turned out unusable). */
static void
bdev_release(struct vs_bdev *bs)
{
    void (*close_cb)(struct vs_bdev *) = VS_DRV_CB(bs->drv, close);

    if (close_cb != NULL)
        close_cb(bs);
}

/* Start tracking the size of the object just opened into BS, so that the
 * generic layer can refuse writes past its end (see object_size). */
static int
track_size(struct vs_bdev *bs)
{
    int64_t (*size_cb)(struct vs_bdev *) = VS_DRV_CB(bs->drv, get_size);
    int64_t size;

    if (size_cb == NULL) { /* nothing to check against */
        mutex_free(&bs->size_lock);
        return 0;
    }
    size = VS_SERIALIZED(bs, size_cb(bs));
    if (size < 0)
        return (int)size;
    bs->object_size = (uint64_t)size;
    return 0;
}

int
vs_object_open(struct vs_store *st, const char *name, unsigned flags,
               const char *label, struct vs_bdev **out)
{
    int (*open_cb)(struct vs_store *, const char *, struct vs_bdev *) =
        VS_DRV_CB(st->drv, object_open);
    struct vs_bdev *bs;
    int r;

    if (open_cb == NULL)
        return -ENOTSUP;
    bs = bdev_alloc(st->drv, label != NULL ? label : name, flags);
    if (bs == NULL)
        return -ENOMEM;
    r = open_cb(st, name, bs);
    if (r == 0 && ((r = vs_limits_settle(bs)) < 0 || (r = track_size(bs)) < 0))
        bdev_release(bs);
    if (r < 0) {
        vs_log_debug(VS_LOG_CAT_BACKEND, "object '%s': open failed: %s",
                     bs->name, strerror(-r));
        bdev_free(bs);
        return r;
    }
    *out = bs;
    return 0;
}

/* ---- format layers ---- */

/* The format driver called FORMAT, or NULL. */
static const struct vs_driver *
format_driver(const char *format)
{
    const struct vs_driver *drv = vs_driver_find(format);

    return drv != NULL && drv->kind == VS_DRIVER_FORMAT ? drv : NULL;
}

int
vs_format_create(const char *format, struct vs_bdev *file, uint64_t size,
                 const char *backing_name, const char *backing_format)
{
    const struct vs_driver *drv = format_driver(format);
    int (*create_cb)(struct vs_bdev *, uint64_t, const char *, const char *) =
        VS_DRV_CB(drv, create);

    if (drv == NULL)
        return -EPROTONOSUPPORT;
    if (create_cb == NULL)
        return -ENOTSUP;
    return create_cb(file, size, backing_name, backing_format);
}

int
vs_format_open(const char *format, struct vs_bdev *file,
               struct vs_bdev *backing, unsigned flags, struct vs_bdev **out)
{
    const struct vs_driver *drv = format_driver(format);
    int (*open_cb)(struct vs_bdev *) = VS_DRV_CB(drv, open);
    struct vs_bdev *bs;
    int r = 0;

    if (drv == NULL)
        return -EPROTONOSUPPORT;
    bs = bdev_alloc(drv, file->name, flags);
    if (bs == NULL)
        return -ENOMEM;
    bs->file = file;
    bs->backing = backing;
    if (backing != NULL)
        backing->frozen = 1; /* a layer with a child never changes */
    bs->caps = file->caps;
    if (VS_DRV_PASSTHROUGH(drv))
        bs->limits = file->limits; /* same bytes at the same offsets */
    if (open_cb != NULL)
        r = open_cb(bs);
    if (r == 0 && (r = vs_limits_settle(bs)) < 0)
        bdev_release(bs);
    if (r < 0) {
        vs_log_debug(VS_LOG_CAT_BACKEND, "'%s': %s open failed: %s", bs->name,
                     format, strerror(-r));
        if (backing != NULL)
            backing->frozen = 0; /* the caller keeps it, as it was */
        bdev_free(bs);
        return r;
    }
    *out = bs;
    return 0;
}

struct vs_bdev *
vs_bdev_detach_backing(struct vs_bdev *bs)
{
    struct vs_bdev *backing = bs->backing;

    bs->backing = NULL;
    if (backing != NULL)
        backing->frozen = 0;
    return backing;
}

void
vs_bdev_close(struct vs_bdev *bs)
{
    void (*close_cb)(struct vs_bdev *);

    if (bs == NULL)
        return;
    close_cb = VS_DRV_CB(bs->drv, close);
    if (close_cb != NULL)
        close_cb(bs);
    vs_bdev_close(bs->file);
    vs_bdev_close(bs->backing);
    bdev_free(bs);
}
