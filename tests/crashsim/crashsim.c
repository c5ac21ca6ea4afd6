/*
 * The crash simulator's disk, its log, and the "crashsim" driver (the
 * contract is in crashsim.h).
 *
 * A disk is two things kept side by side: the current image (what reads
 * return: every event applied) and the log of events that produced it from
 * the initial contents.  Each I/O callback appends its event and applies it
 * to the current image under the disk's lock; nothing is passed below,
 * because the disk is the storage.  A write copies its bytes into the log,
 * so memory grows with everything ever written: fine for the short
 * sequences tests run.  A write with VS_IO_FUA is logged as a write and a
 * flush (stronger than a real device, which would not make the writes
 * before it durable; it can hide a reordering, never invent one).
 * Discard zeroes the range inside the disk (a punched hole reads zeros)
 * and write_zeroes may grow it, as fallocate does on a file.
 *
 * Durable images are rebuilt from the initial contents by replaying the
 * log up to a flush; one replayed image is cached, so asking for flush
 * 0, 1, 2 ... in order replays each event once.
 *
 * The "crashsim" driver is a FORMAT-kind driver with no file child: its
 * bdev is made by crashsim_open (vs_format_open needs a file below, which
 * the bottom of a stack does not have) the way the generic layer makes
 * one: calloc'd, with a strdup'd name, so that vs_bdev_close frees it.
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "crashsim_int.h"

/* ---- images ---- */

int
crashsim_image_resize(struct crashsim_image *img, uint64_t size)
{
    if (size > img->cap) {
        uint64_t cap = img->cap ? img->cap : 65536;
        uint8_t *p;

        while (cap < size)
            cap *= 2;
        p = realloc(img->data, cap);
        if (p == NULL)
            return -ENOMEM;
        img->data = p;
        img->cap = cap;
    }
    if (size > img->size)
        memset(img->data + img->size, 0, size - img->size);
    img->size = size;
    return 0;
}

int
crashsim_image_copy(struct crashsim_image *dst,
                    const struct crashsim_image *src)
{
    dst->size = 0;
    if (crashsim_image_resize(dst, src->size) < 0)
        return -ENOMEM;
    if (src->size > 0)
        memcpy(dst->data, src->data, src->size);
    return 0;
}

void
crashsim_image_free(struct crashsim_image *img)
{
    if (img == NULL)
        return;
    free(img->data);
    img->data = NULL;
    img->size = img->cap = 0;
}

int
crashsim_apply(struct crashsim_image *img, const struct crashsim_event *ev,
               uint64_t limit)
{
    uint64_t len = ev->len < limit ? ev->len : limit;

    switch (ev->kind) {
    case CRASHSIM_RESIZE:
        return crashsim_image_resize(img, ev->off);
    case CRASHSIM_WRITE:
    case CRASHSIM_ZERO:
        if (len == 0)
            return 0;
        if (ev->off + len > img->size &&
            crashsim_image_resize(img, ev->off + len) < 0)
            return -ENOMEM;
        if (ev->kind == CRASHSIM_WRITE)
            memcpy(img->data + ev->off, ev->data, len);
        else
            memset(img->data + ev->off, 0, len);
        return 0;
    case CRASHSIM_FLUSH:
        return 0;
    }
    return 0;
}

uint64_t
crashsim_sectors(const struct crashsim_event *ev)
{
    uint64_t first, end;

    if ((ev->kind != CRASHSIM_WRITE && ev->kind != CRASHSIM_ZERO) ||
        ev->len == 0)
        return 0;
    first = ev->off / CRASHSIM_SECTOR;
    end = (ev->off + ev->len + CRASHSIM_SECTOR - 1) / CRASHSIM_SECTOR;
    return end - first;
}

uint64_t
crashsim_torn_len(const struct crashsim_event *ev, uint64_t t)
{
    uint64_t stop = (ev->off / CRASHSIM_SECTOR + t) * CRASHSIM_SECTOR;

    return stop - ev->off < ev->len ? stop - ev->off : ev->len;
}

/* ---- the clock ---- */

static _Atomic uint64_t clock_next;
static void (*_Atomic hook_fn)(uint64_t seq, void *arg);
static void *_Atomic hook_arg;

uint64_t
crashsim_now(void)
{
    return atomic_load(&clock_next);
}

uint64_t
crashsim_tick(void)
{
    return atomic_fetch_add(&clock_next, 1);
}

void
crashsim_tick_done(uint64_t seq)
{
    void (*fn)(uint64_t, void *) = atomic_load(&hook_fn);

    if (fn != NULL)
        fn(seq, atomic_load(&hook_arg));
}

void
crashsim_set_hook(void (*fn)(uint64_t seq, void *arg), void *arg)
{
    atomic_store(&hook_arg, arg);
    atomic_store(&hook_fn, fn);
}

/* ---- disks ---- */

struct crashsim_disk *
crashsim_disk_new(const void *initial, size_t len)
{
    struct crashsim_disk *d = calloc(1, sizeof(*d));

    if (d == NULL)
        return NULL;
    pthread_mutex_init(&d->lock, NULL);
    if (len > 0) {
        d->init = malloc(len);
        if (d->init == NULL || crashsim_image_resize(&d->cur, len) < 0) {
            crashsim_disk_free(d);
            return NULL;
        }
        if (initial != NULL)
            memcpy(d->init, initial, len);
        else
            memset(d->init, 0, len);
        memcpy(d->cur.data, d->init, len);
        d->init_size = len;
    }
    return d;
}

void
crashsim_disk_free(struct crashsim_disk *d)
{
    if (d == NULL)
        return;
    for (size_t i = 0; i < d->nev; i++)
        free((void *)d->ev[i].data);
    free(d->ev);
    free(d->flush_at);
    free(d->init);
    crashsim_image_free(&d->cur);
    crashsim_image_free(&d->cache);
    pthread_mutex_destroy(&d->lock);
    free(d);
}

/* Append EV (taking its data) and apply it to the current image; under the
 * lock.  On failure the data is freed and nothing changes. */
static int
log_event(struct crashsim_disk *d, struct crashsim_event ev)
{
    if (d->nev == d->ev_cap) {
        size_t cap = d->ev_cap ? d->ev_cap * 2 : 256;
        struct crashsim_event *p = realloc(d->ev, cap * sizeof(*p));

        if (p == NULL)
            goto nomem;
        d->ev = p;
        d->ev_cap = cap;
    }
    if (ev.kind == CRASHSIM_FLUSH && d->nflush == d->flush_cap) {
        size_t cap = d->flush_cap ? d->flush_cap * 2 : 64;
        size_t *p = realloc(d->flush_at, cap * sizeof(*p));

        if (p == NULL)
            goto nomem;
        d->flush_at = p;
        d->flush_cap = cap;
    }
    if (crashsim_apply(&d->cur, &ev, UINT64_MAX) < 0)
        goto nomem;
    if (ev.kind == CRASHSIM_FLUSH)
        d->flush_at[d->nflush++] = d->nev;
    ev.seq = crashsim_tick();
    d->ev[d->nev++] = ev;
    d->last_seq = ev.seq;
    return 0;
nomem:
    free((void *)ev.data);
    return -ENOMEM;
}

/* ---- the log, for tests ---- */

size_t
crashsim_flushes(const struct crashsim_disk *d)
{
    return d->nflush;
}

size_t
crashsim_events(const struct crashsim_disk *d)
{
    return d->nev;
}

const struct crashsim_event *
crashsim_event(const struct crashsim_disk *d, size_t i)
{
    return i < d->nev ? &d->ev[i] : NULL;
}

void
crashsim_epoch_span(const struct crashsim_disk *d, size_t k, size_t *first,
                    size_t *end)
{
    *first = k == 0 ? 0 : k <= d->nflush ? d->flush_at[k - 1] + 1 : d->nev;
    *end = k < d->nflush ? d->flush_at[k] : d->nev;
}

/* Make the cache hold the image after events [0, pos). */
static int
cache_advance(struct crashsim_disk *d, size_t pos)
{
    if (!d->cache_valid || d->cache_next > pos) {
        d->cache.size = 0;
        if (crashsim_image_resize(&d->cache, d->init_size) < 0)
            return -ENOMEM;
        if (d->init_size > 0)
            memcpy(d->cache.data, d->init, d->init_size);
        d->cache_next = 0;
        d->cache_valid = true;
    }
    for (; d->cache_next < pos; d->cache_next++) {
        if (crashsim_apply(&d->cache, &d->ev[d->cache_next], UINT64_MAX) < 0) {
            d->cache_valid = false;
            return -ENOMEM;
        }
    }
    return 0;
}

int
crashsim_durable(struct crashsim_disk *d, size_t k, struct crashsim_image *img)
{
    size_t first, end;
    int r;

    if (k > d->nflush)
        return -EINVAL;
    crashsim_epoch_span(d, k, &first, &end);
    r = cache_advance(d, first);
    return r < 0 ? r : crashsim_image_copy(img, &d->cache);
}

int
crashsim_durable_at(struct crashsim_disk *d, size_t pos,
                    struct crashsim_image *img)
{
    int r = cache_advance(d, pos);

    return r < 0 ? r : crashsim_image_copy(img, &d->cache);
}

int
crashsim_current(struct crashsim_disk *d, struct crashsim_image *img)
{
    int r;

    pthread_mutex_lock(&d->lock);
    r = crashsim_image_copy(img, &d->cur);
    pthread_mutex_unlock(&d->lock);
    return r;
}

/* ---- the block callbacks ---- */

int64_t
crashsim_cb_get_size(struct vs_bdev *bs)
{
    struct crashsim_disk *d = bs->opaque;
    int64_t size;

    pthread_mutex_lock(&d->lock);
    size = (int64_t)d->cur.size;
    pthread_mutex_unlock(&d->lock);
    return size;
}

int
crashsim_cb_truncate(struct vs_bdev *bs, uint64_t size)
{
    struct crashsim_disk *d = bs->opaque;
    uint64_t seq;
    struct crashsim_event ev = {.kind = CRASHSIM_RESIZE, .off = size};
    int r;

    pthread_mutex_lock(&d->lock);
    r = log_event(d, ev);
    seq = d->last_seq;
    pthread_mutex_unlock(&d->lock);
    if (r == 0)
        crashsim_tick_done(seq);
    return r;
}

ssize_t
crashsim_cb_preadv(struct vs_bdev *bs, const struct iovec *iov, int iovcnt,
                   uint64_t offset, unsigned flags)
{
    struct crashsim_disk *d = bs->opaque;
    size_t done = 0;

    (void)flags;
    pthread_mutex_lock(&d->lock);
    for (int i = 0; i < iovcnt && offset + done < d->cur.size; i++) {
        uint64_t left = d->cur.size - offset - done;
        size_t n = iov[i].iov_len < left ? iov[i].iov_len : (size_t)left;

        memcpy(iov[i].iov_base, d->cur.data + offset + done, n);
        done += n;
    }
    pthread_mutex_unlock(&d->lock);
    return (ssize_t)done;
}

ssize_t
crashsim_cb_pwritev(struct vs_bdev *bs, const struct iovec *iov, int iovcnt,
                    uint64_t offset, unsigned flags)
{
    struct crashsim_disk *d = bs->opaque;
    uint64_t seq;
    struct crashsim_event ev = {.kind = CRASHSIM_WRITE, .off = offset};
    struct crashsim_event fl = {.kind = CRASHSIM_FLUSH};
    size_t pos = 0;
    uint8_t *buf;
    int r;

    for (int i = 0; i < iovcnt; i++)
        ev.len += iov[i].iov_len;
    if (ev.len == 0)
        return 0;
    buf = malloc(ev.len);
    if (buf == NULL)
        return -ENOMEM;
    for (int i = 0; i < iovcnt; i++) {
        memcpy(buf + pos, iov[i].iov_base, iov[i].iov_len);
        pos += iov[i].iov_len;
    }
    ev.data = buf;
    pthread_mutex_lock(&d->lock);
    r = log_event(d, ev);
    if (r == 0 && (flags & VS_IO_FUA))
        r = log_event(d, fl);
    seq = d->last_seq;
    pthread_mutex_unlock(&d->lock);
    if (r == 0)
        crashsim_tick_done(seq);
    return r < 0 ? r : (ssize_t)ev.len;
}

int
crashsim_cb_flush(struct vs_bdev *bs)
{
    struct crashsim_disk *d = bs->opaque;
    uint64_t seq;
    struct crashsim_event ev = {.kind = CRASHSIM_FLUSH};
    int r;

    pthread_mutex_lock(&d->lock);
    r = log_event(d, ev);
    seq = d->last_seq;
    pthread_mutex_unlock(&d->lock);
    if (r == 0)
        crashsim_tick_done(seq);
    return r;
}

int
crashsim_cb_discard(struct vs_bdev *bs, uint64_t offset, uint64_t length)
{
    struct crashsim_disk *d = bs->opaque;
    uint64_t seq;
    struct crashsim_event ev = {.kind = CRASHSIM_ZERO, .off = offset};
    int r = 0;

    pthread_mutex_lock(&d->lock);
    if (offset < d->cur.size) {
        uint64_t left = d->cur.size - offset;

        ev.len = length < left ? length : left;
        r = log_event(d, ev);
    }
    seq = d->last_seq;
    pthread_mutex_unlock(&d->lock);
    if (r == 0 && ev.len > 0)
        crashsim_tick_done(seq);
    return r;
}

int
crashsim_cb_write_zeroes(struct vs_bdev *bs, uint64_t offset, uint64_t length,
                         unsigned flags)
{
    struct crashsim_disk *d = bs->opaque;
    uint64_t seq;
    struct crashsim_event ev = {
        .kind = CRASHSIM_ZERO, .off = offset, .len = length};
    int r;

    (void)flags;
    pthread_mutex_lock(&d->lock);
    r = log_event(d, ev);
    seq = d->last_seq;
    pthread_mutex_unlock(&d->lock);
    if (r == 0)
        crashsim_tick_done(seq);
    return r;
}

/* ---- the "crashsim" driver ---- */

/* Only crashsim_open makes a usable bdev: it is the bottom of a stack. */
static int
crashsim_drv_open(struct vs_bdev *bs)
{
    if (bs->file != NULL || bs->backing != NULL || bs->opaque == NULL)
        return -EINVAL;
    return 0;
}

static void
crashsim_drv_close(struct vs_bdev *bs)
{
    bs->opaque = NULL; /* the disk belongs to the test */
}

const struct vs_driver crashsim_driver = {
    .api_version = VS_DRIVER_API_VERSION,
    .struct_size = sizeof(struct vs_driver),
    .name = "crashsim",
    .kind = VS_DRIVER_FORMAT,
    .open = crashsim_drv_open,
    .close = crashsim_drv_close,
    .get_size = crashsim_cb_get_size,
    .get_allocated = crashsim_cb_get_size,
    .truncate = crashsim_cb_truncate,
    .preadv = crashsim_cb_preadv,
    .pwritev = crashsim_cb_pwritev,
    .flush = crashsim_cb_flush,
    .discard = crashsim_cb_discard,
    .write_zeroes = crashsim_cb_write_zeroes,
};

int
crashsim_open(struct crashsim_disk *d, const char *label, unsigned flags,
              struct vs_bdev **out)
{
    struct vs_bdev *bs = calloc(1, sizeof(*bs));
    int r;

    if (bs == NULL)
        return -ENOMEM;
    bs->name = strdup(label);
    if (bs->name == NULL) {
        free(bs);
        return -ENOMEM;
    }
    bs->drv = &crashsim_driver;
    bs->open_flags = flags;
    bs->opaque = d;
    r = crashsim_drv_open(bs);
    if (r < 0) {
        free(bs->name);
        free(bs);
        return r;
    }
    *out = bs;
    return 0;
}

int
crashsim_register(void)
{
    static bool done;
    int r;

    if (done)
        return 0;
    r = vs_driver_register_extra(&crashsim_driver);
    if (r == 0)
        r = vs_driver_register_extra(&crashsim_store_driver);
    done = r == 0;
    return r;
}
