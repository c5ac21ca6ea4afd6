/*
 * The "crashsim-store" protocol driver: stores in memory whose objects are
 * crashsim disks, so that code which opens its own objects through a store
 * (the domain metadata area, the whole tree) runs unchanged on simulated
 * storage.
 *
 * Location "crashsim:NAME"; NAME may hold '/', and the stores directly
 * under "crashsim:ROOT" are those named "ROOT/X" (store_list), as domains
 * live under a directory.  Stores are kept in one process-wide registry
 * from their creating open until crashsim_store_drop_all(): closing a
 * store keeps it, so a tree can close and open it again.  A new object of
 * SIZE bytes starts as a disk of SIZE durable zero bytes.
 *
 * Creating and removing an object or a store is durable at once (the dir
 * driver syncs its directory) and takes a number of the crash simulator's
 * clock.  A removed object's disk is kept (with the time it went) until
 * the registry is dropped: crashsim_world_take() needs the whole history
 * to rebuild the stores as a power loss at any instant leaves them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crashsim_int.h"

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static struct cs_store **stores;
static size_t nstores, stores_cap;
/* crashsim_store_fail_opens (under registry_lock) */
static char fail_name[256];
static unsigned fail_skip;
static int fail_err;

static bool
is_live(uint64_t gone)
{
    return gone == CRASHSIM_NEVER;
}

static struct cs_object *
find_object(struct cs_store *cs, const char *name)
{
    for (size_t i = 0; i < cs->n; i++) {
        if (is_live(cs->obj[i].removed) && strcmp(cs->obj[i].name, name) == 0)
            return &cs->obj[i];
    }
    return NULL;
}

static struct cs_store *
find_store(const char *name)
{
    for (size_t i = 0; i < nstores; i++) {
        if (is_live(stores[i]->destroyed) && strcmp(stores[i]->name, name) == 0)
            return stores[i];
    }
    return NULL;
}

static const char *
name_of(const char *location)
{
    size_t len = strlen(CRASHSIM_SCHEME);

    return strncmp(location, CRASHSIM_SCHEME, len) == 0 && location[len]
               ? location + len
               : NULL;
}

void
crashsim_store_free(struct cs_store *cs)
{
    if (cs == NULL)
        return;
    for (size_t i = 0; i < cs->n; i++) {
        free(cs->obj[i].name);
        crashsim_disk_free(cs->obj[i].disk);
    }
    free(cs->obj);
    free(cs->name);
    free(cs);
}

/* Append a store to the registry (lock held). */
static int
registry_add(struct cs_store *cs)
{
    if (nstores == stores_cap) {
        size_t cap = stores_cap ? stores_cap * 2 : 8;
        struct cs_store **p = realloc(stores, cap * sizeof(*p));

        if (p == NULL)
            return -ENOMEM;
        stores = p;
        stores_cap = cap;
    }
    stores[nstores++] = cs;
    return 0;
}

struct cs_store *
crashsim_store_new(const char *name, uint64_t created)
{
    struct cs_store *cs = calloc(1, sizeof(*cs));

    if (cs == NULL || (cs->name = strdup(name)) == NULL) {
        free(cs);
        return NULL;
    }
    cs->created = created;
    cs->destroyed = CRASHSIM_NEVER;
    pthread_mutex_lock(&registry_lock);
    if (registry_add(cs) < 0) {
        pthread_mutex_unlock(&registry_lock);
        crashsim_store_free(cs);
        return NULL;
    }
    pthread_mutex_unlock(&registry_lock);
    return cs;
}

int
crashsim_store_add_object(struct cs_store *cs, const char *name,
                          struct crashsim_disk *disk, uint64_t created)
{
    struct cs_object o = {
        .disk = disk, .created = created, .removed = CRASHSIM_NEVER};

    if (cs->n == cs->cap) {
        size_t cap = cs->cap ? cs->cap * 2 : 8;
        struct cs_object *p = realloc(cs->obj, cap * sizeof(*p));

        if (p == NULL)
            return -ENOMEM;
        cs->obj = p;
        cs->cap = cap;
    }
    o.name = strdup(name);
    if (o.name == NULL)
        return -ENOMEM;
    cs->obj[cs->n++] = o;
    return 0;
}

struct cs_store **
crashsim_store_detach_all(size_t *n)
{
    struct cs_store **all;

    pthread_mutex_lock(&registry_lock);
    all = stores;
    *n = nstores;
    stores = NULL;
    nstores = stores_cap = 0;
    pthread_mutex_unlock(&registry_lock);
    return all;
}

void
crashsim_store_drop_all(void)
{
    size_t n;
    struct cs_store **all = crashsim_store_detach_all(&n);

    for (size_t i = 0; i < n; i++)
        crashsim_store_free(all[i]);
    free(all);
}

/* ---- the driver ---- */

static int
store_open(struct vs_store *st, bool create)
{
    const char *name = name_of(st->location);
    struct cs_store *cs;
    uint64_t now;

    if (name == NULL)
        return -EINVAL;
    pthread_mutex_lock(&registry_lock);
    cs = find_store(name);
    pthread_mutex_unlock(&registry_lock);
    if (create && cs != NULL)
        return -EEXIST;
    if (!create && cs == NULL)
        return -ENOENT;
    if (create) {
        now = crashsim_tick();
        cs = crashsim_store_new(name, now);
        if (cs == NULL)
            return -ENOMEM;
        crashsim_tick_done(now);
    }
    st->opaque = cs;
    memset(&st->caps, 0, sizeof(st->caps));
    return 0;
}

static void
store_close(struct vs_store *st)
{
    st->opaque = NULL; /* the store stays in the registry */
}

static int
store_destroy(struct vs_store *st)
{
    struct cs_store *cs = st->opaque;
    uint64_t now;

    pthread_mutex_lock(&registry_lock);
    for (size_t i = 0; i < cs->n; i++) {
        if (is_live(cs->obj[i].removed) &&
            strcmp(cs->obj[i].name, "metadata") != 0) {
            pthread_mutex_unlock(&registry_lock);
            return -ENOTEMPTY;
        }
    }
    now = crashsim_tick();
    for (size_t i = 0; i < cs->n; i++) {
        if (is_live(cs->obj[i].removed))
            cs->obj[i].removed = now;
    }
    cs->destroyed = now;
    pthread_mutex_unlock(&registry_lock);
    crashsim_tick_done(now);
    st->opaque = NULL;
    return 0;
}

/* Call fn for each of the N names (collected under the registry's lock,
 * called without it: fn may open stores), then free them.  A NULL name
 * (strdup failed) or NAMES NULL gives -ENOMEM. */
static int
call_each(char **names, size_t n, int (*fn)(const char *name, void *arg),
          void *arg)
{
    int r = names != NULL ? 0 : -ENOMEM;

    for (size_t i = 0; i < n; i++) {
        if (r == 0)
            r = names[i] != NULL ? fn(names[i], arg) : -ENOMEM;
        free(names[i]);
    }
    free(names);
    return r;
}

static int
store_list(const char *root, int (*fn)(const char *name, void *arg), void *arg)
{
    const char *prefix = name_of(root);
    size_t plen = prefix ? strlen(prefix) : 0;
    char **names = NULL;
    size_t n = 0;

    if (prefix == NULL)
        return -EINVAL;
    pthread_mutex_lock(&registry_lock);
    names = calloc(nstores + 1, sizeof(*names));
    for (size_t i = 0; names != NULL && i < nstores; i++) {
        const char *sn = stores[i]->name;

        if (is_live(stores[i]->destroyed) && strncmp(sn, prefix, plen) == 0 &&
            sn[plen] == '/' && sn[plen + 1] && !strchr(sn + plen + 1, '/'))
            names[n++] = strdup(sn + plen + 1);
    }
    pthread_mutex_unlock(&registry_lock);
    return call_each(names, n, fn, arg);
}

static int
object_create(struct vs_store *st, const char *name, uint64_t size)
{
    struct cs_store *cs = st->opaque;
    struct crashsim_disk *disk;
    uint64_t now;
    int r;

    if (size > SIZE_MAX)
        return -EFBIG;
    disk = crashsim_disk_new(NULL, (size_t)size);
    if (disk == NULL)
        return -ENOMEM;
    pthread_mutex_lock(&registry_lock);
    if (find_object(cs, name) != NULL) {
        pthread_mutex_unlock(&registry_lock);
        crashsim_disk_free(disk);
        return -EEXIST;
    }
    now = crashsim_tick();
    r = crashsim_store_add_object(cs, name, disk, now);
    pthread_mutex_unlock(&registry_lock);
    if (r < 0)
        crashsim_disk_free(disk);
    else
        crashsim_tick_done(now);
    return r;
}

static int
object_remove(struct vs_store *st, const char *name)
{
    struct cs_object *o;
    uint64_t now;

    pthread_mutex_lock(&registry_lock);
    o = find_object(st->opaque, name);
    if (o == NULL) {
        pthread_mutex_unlock(&registry_lock);
        return -ENOENT;
    }
    now = crashsim_tick();
    o->removed = now; /* the disk stays for the crash states */
    pthread_mutex_unlock(&registry_lock);
    crashsim_tick_done(now);
    return 0;
}

void
crashsim_store_fail_opens(const char *name, unsigned skip, int err)
{
    pthread_mutex_lock(&registry_lock);
    snprintf(fail_name, sizeof(fail_name), "%s", name ? name : "");
    fail_skip = skip;
    fail_err = err;
    pthread_mutex_unlock(&registry_lock);
}

static int
object_open(struct vs_store *st, const char *name, struct vs_bdev *bs)
{
    struct cs_object *o;
    int r = 0;

    pthread_mutex_lock(&registry_lock);
    o = find_object(st->opaque, name);
    if (o == NULL)
        r = -ENOENT;
    else if (fail_name[0] && strcmp(fail_name, name) == 0 && fail_skip-- == 0)
        r = -fail_err, fail_skip = 0;
    bs->opaque = r == 0 ? o->disk : NULL;
    pthread_mutex_unlock(&registry_lock);
    return r;
}

static int
object_list(struct vs_store *st, int (*fn)(const char *name, void *arg),
            void *arg)
{
    struct cs_store *cs = st->opaque;
    char **names;
    size_t n = 0;

    pthread_mutex_lock(&registry_lock);
    names = calloc(cs->n + 1, sizeof(*names));
    for (size_t i = 0; names != NULL && i < cs->n; i++) {
        if (is_live(cs->obj[i].removed))
            names[n++] = strdup(cs->obj[i].name);
    }
    pthread_mutex_unlock(&registry_lock);
    return call_each(names, n, fn, arg);
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
    .store_destroy = store_destroy,
    .store_list = store_list,
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
    pthread_mutex_lock(&registry_lock);
    o = find_object(st->opaque, name);
    pthread_mutex_unlock(&registry_lock);
    return o != NULL ? o->disk : NULL;
}
