/*
 * A volume's run-time state: its block device (the format driver over the
 * protocol object), opened on first use and then kept for the life of the
 * volume so that every open(2) of `data` shares one backend open; its size;
 * and who has it open, which decides whether a shrink is allowed.
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
    vs_bdev_close(vol->bdev);
    pthread_mutex_destroy(&vol->lock);
    free(vol->label);
    free(vol);
}

/* Open FORMAT over OBJECT of STORE; caller holds vol->lock. */
static int
open_stack(struct vs_volume *vol, struct vs_store *store, const char *object,
           const char *format)
{
    struct vs_bdev *file = NULL, *top = NULL;
    int64_t size;
    int r;

    r = vs_object_open(store, object, VS_OPEN_DIRECT, vol->label, &file);
    if (r < 0)
        return r;
    r = vs_format_open(format, file, NULL, 0, &top);
    if (r < 0) {
        vs_bdev_close(file);
        return r;
    }
    size = vs_bdev_size(top);
    if (size < 0) {
        vs_bdev_close(top);
        return (int)size;
    }
    atomic_store(&vol->size, (uint64_t)size);
    vol->bdev = top;
    return 0;
}

int
vs_volume_bdev(struct vs_volume *vol, struct vs_store *store,
               const char *object, const char *format, struct vs_bdev **out)
{
    int r = 0;

    pthread_mutex_lock(&vol->lock);
    if (!vol->bdev)
        r = open_stack(vol, store, object, format);
    *out = vol->bdev;
    pthread_mutex_unlock(&vol->lock);
    return r;
}

/* Set the size through the block device; caller holds vol->lock. */
static int
resize_locked(struct vs_volume *vol, uint64_t size)
{
    int r = vs_bdev_truncate(vol->bdev, size);

    if (r == 0)
        atomic_store(&vol->size, size);
    return r;
}

int
vs_volume_open(struct vs_volume *vol, bool truncate)
{
    int r = 0;

    pthread_mutex_lock(&vol->lock);
    if (truncate && vol->open_count > 0)
        r = -EBUSY;
    else if (truncate && atomic_load(&vol->size) > 0)
        r = resize_locked(vol, 0);
    if (r == 0)
        vol->open_count++;
    pthread_mutex_unlock(&vol->lock);
    return r;
}

void
vs_volume_release(struct vs_volume *vol)
{
    pthread_mutex_lock(&vol->lock);
    vol->open_count--;
    pthread_mutex_unlock(&vol->lock);
}

int
vs_volume_grow(struct vs_volume *vol, uint64_t size)
{
    int r = 0;

    if (atomic_load(&vol->size) >= size)
        return 0;
    pthread_mutex_lock(&vol->lock);
    if (atomic_load(&vol->size) < size)
        r = resize_locked(vol, size);
    pthread_mutex_unlock(&vol->lock);
    return r;
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
