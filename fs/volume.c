/*
 * A volume's run-time state: its chain of block devices (this layer's
 * format driver over its protocol object, over the parent layers), opened
 * on first open(2) or chain change and then kept while it is used so that
 * every open(2) of `data` shares one backend open; once no handle holds it
 * it goes on the idle LRU (idle.c), which closes it when too many layers
 * sit open (a stat or an xattr of a closed one answers the sizes it had
 * when closed, or borrows a read-only chain for the question:
 * vs_node_sizes);
 * its size; and who has it open, which decides whether a shrink or a new
 * child is allowed.
 *
 * The size is an atomic so the write path reads it without a lock; only
 * size changes and the opener count take vol->lock.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"
#include "vs/log.h"

struct vs_volume *
vs_volume_new(const char *label)
{
    struct vs_volume *vol = calloc(1, sizeof(*vol));

    if (!vol)
        return NULL;
    vol->label = strdup(label);
    if (!vol->label) {
        free(vol);
        return NULL;
    }
    pthread_mutex_init(&vol->lock, NULL);
    vs_gate_init(&vol->io_gate);
    atomic_init(&vol->refs, 1);
    return vol;
}

void
vs_volume_ref(struct vs_volume *vol)
{
    atomic_fetch_add(&vol->refs, 1);
}

void
vs_volume_unref(struct vs_volume *vol)
{
    if (!vol || atomic_fetch_sub(&vol->refs, 1) != 1)
        return;
    vs_idle_remove(vol);
    vs_bdev_close(vol->bdev);
    vs_gate_destroy(&vol->io_gate);
    pthread_mutex_destroy(&vol->lock);
    free(vol->label);
    free(vol);
}

struct vs_bdev *
vs_volume_install(struct vs_volume *vol, struct vs_bdev *bs)
{
    struct vs_bdev *loser = NULL;
    int64_t size = vs_bdev_size(bs);

    pthread_mutex_lock(&vol->lock);
    if (vol->bdev) {
        loser = bs;
    } else {
        vol->bdev = bs;
        atomic_store(&vol->size, size > 0 ? (uint64_t)size : 0);
        vol->sizes_known = false;
    }
    bs = vol->bdev;
    vs_idle_update(vol);
    pthread_mutex_unlock(&vol->lock);
    vs_bdev_close(loser);
    return bs;
}

struct vs_bdev *
vs_volume_swap(struct vs_volume *vol, struct vs_bdev *bs)
{
    struct vs_bdev *old;
    int64_t size = bs ? vs_bdev_size(bs) : 0;

    pthread_mutex_lock(&vol->lock);
    old = vol->bdev;
    vol->bdev = bs;
    if (bs)
        atomic_store(&vol->size, size > 0 ? (uint64_t)size : 0);
    vol->sizes_known = false; /* the chain changed */
    vs_idle_update(vol);
    pthread_mutex_unlock(&vol->lock);
    return old;
}

int
vs_volume_prepare_idle_close(struct vs_volume *vol, int64_t *size,
                             int64_t *allocated)
{
    int r = 0;

    vs_gate_enter(&vol->io_gate);
    if (!vol->bdev)
        r = -ENOENT;
    if (r == 0)
        r = vs_bdev_flush(vol->bdev);
    if (r == 0) {
        *size = vs_bdev_size(vol->bdev);
        *allocated = vs_bdev_allocated(vol->bdev);
    }
    vs_gate_leave(&vol->io_gate);
    if (r < 0 && r != -ENOENT)
        vs_log(LOG_WARNING,
               "volume '%s': its idle chain stays open: the flush before "
               "closing it failed: %s",
               vol->label, strerror(-r));
    return r;
}

int
vs_volume_detach_idle(struct vs_volume *vol, int64_t size, int64_t allocated,
                      struct vs_bdev **out)
{
    int r;

    vs_gate_close(&vol->io_gate);
    pthread_mutex_lock(&vol->lock);
    /* no write can be in flight (io_gate closed), so a clean stack stays clean
     */
    r = !vol->bdev ? -ENOENT
        : vol->open_count > 0 || atomic_load(&vol->dirty) ||
                !vs_bdev_clean(vol->bdev)
            ? -EBUSY
            : 0;
    if (r == 0) {
        *out = vol->bdev;
        vol->bdev = NULL;
        vol->sizes_known = size >= 0 && allocated >= 0;
        vol->known_size = size;
        vol->known_alloc = allocated;
        vs_idle_update(vol);
    }
    pthread_mutex_unlock(&vol->lock);
    vs_gate_open(&vol->io_gate);
    return r;
}

bool
vs_volume_known_sizes(struct vs_volume *vol, int64_t *size, int64_t *allocated)
{
    bool known;

    pthread_mutex_lock(&vol->lock);
    known = !vol->bdev && vol->sizes_known;
    if (known && size)
        *size = vol->known_size;
    if (known && allocated)
        *allocated = vol->known_alloc;
    pthread_mutex_unlock(&vol->lock);
    return known;
}

void
vs_volume_remember_sizes(struct vs_volume *vol, int64_t size, int64_t allocated)
{
    pthread_mutex_lock(&vol->lock);
    if (!vol->bdev && size >= 0 && allocated >= 0) {
        vol->sizes_known = true;
        vol->known_size = size;
        vol->known_alloc = allocated;
    }
    pthread_mutex_unlock(&vol->lock);
}

void
vs_volume_drop(struct vs_volume *vol)
{
    vs_gate_close(&vol->io_gate);
    vs_bdev_close(vs_volume_swap(vol, NULL));
    vs_gate_open(&vol->io_gate);
}

/* Set the size through the block device; caller holds vol->lock.  No
 * shrinking while a merge copies this volume down: the bytes it dropped
 * would stay in the copy. */
static int
resize_locked(struct vs_volume *vol, uint64_t size)
{
    int r = size < atomic_load(&vol->size) && atomic_load(&vol->dirty)
                ? -EBUSY
                : vs_bdev_truncate(vol->bdev, size);

    if (r == 0)
        atomic_store(&vol->size, size);
    return r;
}

int
vs_volume_open(struct vs_volume *vol, bool truncate, bool writable)
{
    int r = 0;

    pthread_mutex_lock(&vol->lock);
    if (truncate && vol->open_count > 0)
        r = -EBUSY;
    else if (truncate && atomic_load(&vol->size) > 0)
        r = resize_locked(vol, 0);
    if (r == 0) {
        vol->open_count++;
        vol->writers += writable;
        vs_idle_update(vol); /* held: off the idle list */
    }
    pthread_mutex_unlock(&vol->lock);
    return r;
}

void
vs_volume_release(struct vs_volume *vol, bool writable)
{
    pthread_mutex_lock(&vol->lock);
    vol->open_count--;
    vol->writers -= writable;
    vs_idle_update(vol); /* the last handle gone: idle, most recent */
    pthread_mutex_unlock(&vol->lock);
}

int
vs_volume_grow(struct vs_volume *vol, uint64_t size)
{
    int r = 0;

    if (atomic_load(&vol->size) >= size)
        return 0;
    if (size > VS_VOLUME_SIZE_MAX)
        return -EFBIG;
    pthread_mutex_lock(&vol->lock);
    if (atomic_load(&vol->size) < size)
        r = resize_locked(vol, size);
    pthread_mutex_unlock(&vol->lock);
    return r;
}

void
vs_volume_ungrow(struct vs_volume *vol, uint64_t grown, uint64_t size)
{
    pthread_mutex_lock(&vol->lock);
    if (atomic_load(&vol->size) == grown && size < grown)
        (void)resize_locked(vol, size); /* best effort: it only grew */
    pthread_mutex_unlock(&vol->lock);
}

int
vs_volume_shrink(struct vs_volume *vol, uint64_t size)
{
    int r;

    pthread_mutex_lock(&vol->lock);
    if (vol->open_count > 0)
        r = -EBUSY;
    else if (size > atomic_load(&vol->size))
        r = -EINVAL;
    else
        r = resize_locked(vol, size);
    pthread_mutex_unlock(&vol->lock);
    return r;
}

void
vs_volume_mark_dirty(struct vs_volume *vol, uint64_t off, uint64_t len)
{
    _Atomic uint64_t *map = atomic_load(&vol->dirty);
    uint64_t first, last;

    if (!map || len == 0)
        return;
    first = off / VS_MERGE_CHUNK;
    last = (off + len - 1) / VS_MERGE_CHUNK;
    /* past the chunks the merge knows: it copies the tail under the lock */
    for (uint64_t c = first; c <= last && c < vol->dirty_chunks; c++)
        atomic_fetch_or(&map[c / 64], 1ull << (c % 64));
}
