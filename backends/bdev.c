/*
 * The generic block layer: block I/O dispatch for <vs/bdev.h> (stores and
 * stack building are in store.c).
 *
 * Dispatch.  A request names the top of a stack (a format layer over a
 * protocol object).  For each operation the request goes to the first layer
 * down the `file` chain whose driver implements the callback: a format
 * driver that leaves a callback NULL is transparent for it, as nbdkit's
 * filters are (the raw driver implements none).  Callbacks are read only
 * through VS_DRV_CB, which hides those an older driver does not have.
 *
 * Emulation.  When no layer can do an optional operation the generic layer
 * does it the slow way: write_zeroes writes a static zero buffer in bounded
 * chunks, copy_range goes through a bounded memory buffer, block_status
 * answers "allocated data everywhere", submit runs the synchronous call on
 * the submitting thread.  discard and allocate have no emulation: they
 * answer -ENOTSUP.
 *
 * Flush visits every layer of the file chain (a format writes out its own
 * metadata, then the storage below is made durable).  Its failure is
 * sticky, per bdev and lock-free: the first error is kept in
 * bs->flush_error with an atomic compare-and-swap and every later flush of
 * that bdev returns it, because after a failed fsync the kernel may have
 * dropped the dirty pages and a later "success" would be a lie.
 *
 * Writes (pwritev, write_zeroes, discard, allocate, truncate, copy
 * destination) on a bdev opened VS_OPEN_RDONLY fail with -EROFS before
 * reaching a driver.  Nothing here takes a lock: drivers protect their own
 * state.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>

#include "vs/bdev.h"
#include "vs/util.h"
#include "backends.h"

/* Bytes written per request when zeroes are emulated. */
#define ZERO_CHUNK (1024 * 1024)
/* Bytes moved per read/write pair when a copy goes through memory. */
#define COPY_CHUNK (1024 * 1024)

#define MIN(a, b) ((a) < (b) ? (a) : (b))

/* Never written: a source of zeros for every thread, aligned for O_DIRECT.
 * It lives in .bss, so it costs no memory until read (then the zero page). */
static uint8_t zero_buf[ZERO_CHUNK] __attribute__((aligned(4096)));

/* The first layer from BS down the file chain whose driver has MEMBER. */
#define LAYER_WITH(bs, member)                                                 \
    __extension__({                                                            \
        struct vs_bdev *layer_ = (bs);                                         \
        while (layer_ != NULL && VS_DRV_CB(layer_->drv, member) == NULL)       \
            layer_ = layer_->file;                                             \
        layer_;                                                                \
    })

static int
check_writable(struct vs_bdev *bs)
{
    if (bs->open_flags & VS_OPEN_RDONLY)
        return -EROFS;
    /* remember the write for flushes from a layer above (see flush) */
    if (!__atomic_load_n(&bs->dirty, __ATOMIC_RELAXED))
        __atomic_store_n(&bs->dirty, 1, __ATOMIC_RELAXED);
    return 0;
}

/* ---- size and allocation ---- */

int64_t
vs_bdev_size(struct vs_bdev *bs)
{
    struct vs_bdev *l = LAYER_WITH(bs, get_size);

    return l != NULL ? VS_DRV_CB(l->drv, get_size)(l) : -ENOTSUP;
}

int64_t
vs_bdev_allocated(struct vs_bdev *bs)
{
    struct vs_bdev *l = LAYER_WITH(bs, get_allocated);

    return l != NULL ? VS_DRV_CB(l->drv, get_allocated)(l) : -ENOTSUP;
}

int
vs_bdev_truncate(struct vs_bdev *bs, uint64_t size)
{
    struct vs_bdev *l = LAYER_WITH(bs, truncate);
    int r = check_writable(bs);

    if (r < 0)
        return r;
    if (size > INT64_MAX)
        return -EFBIG;
    return l != NULL ? VS_DRV_CB(l->drv, truncate)(l, size) : -ENOTSUP;
}

/* ---- data ---- */

ssize_t
vs_bdev_preadv(struct vs_bdev *bs, const struct iovec *iov, int iovcnt,
               uint64_t offset, unsigned flags)
{
    struct vs_bdev *l = LAYER_WITH(bs, preadv);

    if (iovcnt < 0)
        return -EINVAL;
    if (l == NULL)
        return -ENOTSUP;
    return VS_DRV_CB(l->drv, preadv)(l, iov, iovcnt, offset, flags);
}

ssize_t
vs_bdev_pwritev(struct vs_bdev *bs, const struct iovec *iov, int iovcnt,
                uint64_t offset, unsigned flags)
{
    struct vs_bdev *l = LAYER_WITH(bs, pwritev);
    int r = check_writable(bs);

    if (r < 0)
        return r;
    if (iovcnt < 0)
        return -EINVAL;
    if (l == NULL)
        return -ENOTSUP;
    return VS_DRV_CB(l->drv, pwritev)(l, iov, iovcnt, offset, flags);
}

ssize_t
vs_bdev_pread(struct vs_bdev *bs, void *buf, size_t len, uint64_t offset)
{
    size_t done = 0;

    len = MIN(len, (size_t)SSIZE_MAX);
    while (done < len) {
        struct iovec iov = {(char *)buf + done, len - done};
        ssize_t n = vs_bdev_preadv(bs, &iov, 1, offset + done, 0);

        if (n < 0)
            return n;
        if (n == 0)
            break; /* end of object */
        done += (size_t)n;
    }
    return (ssize_t)done;
}

ssize_t
vs_bdev_pwrite(struct vs_bdev *bs, const void *buf, size_t len, uint64_t offset)
{
    size_t done = 0;

    len = MIN(len, (size_t)SSIZE_MAX);
    while (done < len) {
        struct iovec iov = {(char *)buf + done, len - done};
        ssize_t n = vs_bdev_pwritev(bs, &iov, 1, offset + done, 0);

        if (n < 0)
            return n;
        if (n == 0)
            return -EIO; /* a write that makes no progress */
        done += (size_t)n;
    }
    return (ssize_t)done;
}

/* ---- flush ---- */

static int
flush_sticky(struct vs_bdev *bs)
{
    return __atomic_load_n(&bs->flush_error, __ATOMIC_ACQUIRE);
}

/* Record ERR as BS's flush error unless one is there; return the kept one. */
static int
flush_fail(struct vs_bdev *bs, int err)
{
    int expected = 0;

    if (__atomic_compare_exchange_n(&bs->flush_error, &expected, err, false,
                                    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        return err;
    return expected;
}

int
vs_bdev_flush(struct vs_bdev *bs)
{
    int (*flush_cb)(struct vs_bdev *) = VS_DRV_CB(bs->drv, flush);
    int r = flush_sticky(bs);

    if (r < 0)
        return r;
    /* A backing layer that was written (the old top of a volume that a
     * snapshot froze) is flushed with the first flush of a layer above,
     * so a snapshot needs no flush of its own.  Look past clean layers:
     * snapshots taken while nothing was written (fio's verify phase in
     * tests/mount/snapshot.sh) leave clean layers above dirty ones. */
    for (struct vs_bdev *b = bs->backing; b != NULL; b = b->backing) {
        if (__atomic_load_n(&b->dirty, __ATOMIC_ACQUIRE)) {
            r = vs_bdev_flush(b); /* and the dirty ones below it */
            break;
        }
    }
    __atomic_store_n(&bs->dirty, 0, __ATOMIC_RELEASE);
    if (r == 0)
        r = flush_cb != NULL ? flush_cb(bs) : 0;
    if (r == 0 && bs->file != NULL)
        r = vs_bdev_flush(bs->file);
    return r < 0 ? flush_fail(bs, r) : 0;
}

/* ---- discard and zeroes ---- */

int
vs_bdev_discard(struct vs_bdev *bs, uint64_t offset, uint64_t length)
{
    struct vs_bdev *l = LAYER_WITH(bs, discard);
    int r = check_writable(bs);

    if (r < 0)
        return r;
    if (length == 0)
        return 0;
    return l != NULL ? VS_DRV_CB(l->drv, discard)(l, offset, length) : -ENOTSUP;
}

int
vs_bdev_set_backing(struct vs_bdev *bs, const char *name, const char *format)
{
    int (*cb)(struct vs_bdev *, const char *, const char *) =
        VS_DRV_CB(bs->drv, set_backing);

    return cb != NULL ? cb(bs, name, format) : -ENOTSUP;
}

int
vs_bdev_allocate(struct vs_bdev *bs, uint64_t offset, uint64_t length)
{
    struct vs_bdev *l = LAYER_WITH(bs, allocate);
    int r = check_writable(bs);

    if (r < 0)
        return r;
    if (length == 0)
        return 0;
    return l != NULL ? VS_DRV_CB(l->drv, allocate)(l, offset, length)
                     : -ENOTSUP;
}

/* Zero the range by writing zero buffers through the whole stack. */
static int
zeroes_emulate(struct vs_bdev *bs, uint64_t offset, uint64_t length,
               unsigned flags)
{
    unsigned wflags = flags & ~(unsigned)VS_IO_MAY_UNMAP;

    while (length > 0) {
        struct iovec iov = {zero_buf, MIN(length, (uint64_t)ZERO_CHUNK)};
        ssize_t n = vs_bdev_pwritev(bs, &iov, 1, offset, wflags);

        if (n < 0)
            return (int)n;
        if (n == 0)
            return -EIO;
        offset += (uint64_t)n;
        length -= (uint64_t)n;
    }
    return 0;
}

int
vs_bdev_write_zeroes(struct vs_bdev *bs, uint64_t offset, uint64_t length,
                     unsigned flags)
{
    struct vs_bdev *l = LAYER_WITH(bs, write_zeroes);
    int r = check_writable(bs);

    if (r < 0)
        return r;
    if (length == 0)
        return 0;
    if (l != NULL) {
        r = VS_DRV_CB(l->drv, write_zeroes)(l, offset, length, flags);
        if (r != -ENOTSUP)
            return r;
    }
    return zeroes_emulate(bs, offset, length, flags);
}

/* ---- block status ---- */

int
vs_bdev_block_status(struct vs_bdev *bs, uint64_t offset, uint64_t length,
                     uint64_t *pnum)
{
    struct vs_bdev *l = LAYER_WITH(bs, block_status);
    uint64_t n = 0;
    int r;

    if (length == 0)
        return -EINVAL;
    if (l == NULL) {
        *pnum = length;
        return VS_BS_ALLOCATED | VS_BS_DATA;
    }
    r = VS_DRV_CB(l->drv, block_status)(l, offset, length, &n);
    if (r < 0)
        return r;
    if (n == 0 || n > length)
        return -EIO; /* a driver broke its contract */
    *pnum = n;
    return r;
}

/* 1 if OFFSET lies at or past the end of backing layer BS, 0 if not. */
static int
past_end(struct vs_bdev *bs, uint64_t offset)
{
    int64_t size = vs_bdev_size(bs);

    if (size < 0)
        return (int)size;
    return offset >= (uint64_t)size;
}

int
vs_bdev_chain_status(struct vs_bdev *bs, uint64_t offset, uint64_t length,
                     uint64_t *pnum)
{
    uint64_t want = length;

    for (struct vs_bdev *l = bs; l != NULL; l = l->backing) {
        uint64_t n = 0;
        int r = l != bs ? past_end(l, offset) : 0;

        if (r < 0)
            return r;
        if (r > 0)
            break; /* a shorter parent owns nothing here */
        r = vs_bdev_block_status(l, offset, want, &n);
        if (r < 0)
            return r;
        want = n;
        if (r & VS_BS_ALLOCATED) {
            *pnum = n;
            return r;
        }
    }
    if (want == 0)
        return -EINVAL;
    *pnum = want;
    return VS_BS_ZERO; /* nobody owns it: reads as zeros */
}

/* ---- copy ---- */

/*
 * The layer that holds BS's bytes at the same offsets and offers
 * copy_range, or NULL.  Only layers that do not map data themselves (no
 * own preadv for a source, no own pwritev for a destination, no backing)
 * can be looked through.
 */
static struct vs_bdev *
copy_end(struct vs_bdev *bs, bool source)
{
    while (bs != NULL && VS_DRV_CB(bs->drv, copy_range) == NULL) {
        bool maps = source ? VS_DRV_CB(bs->drv, preadv) != NULL
                           : VS_DRV_CB(bs->drv, pwritev) != NULL;

        if (maps || bs->backing != NULL)
            return NULL;
        bs = bs->file;
    }
    return bs;
}

static ssize_t
copy_via_memory(struct vs_bdev *src, uint64_t src_off, struct vs_bdev *dst,
                uint64_t dst_off, uint64_t length)
{
    size_t chunk = (size_t)MIN(length, (uint64_t)COPY_CHUNK);
    _cleanup_free_ uint8_t *buf = malloc(chunk);
    uint64_t done = 0;

    if (buf == NULL)
        return -ENOMEM;
    while (done < length) {
        size_t want = (size_t)MIN(length - done, (uint64_t)chunk);
        ssize_t n = vs_bdev_pread(src, buf, want, src_off + done);
        ssize_t w;

        if (n <= 0) {
            if (n < 0)
                return n;
            break; /* end of the source */
        }
        w = vs_bdev_pwrite(dst, buf, (size_t)n, dst_off + done);
        if (w < 0)
            return w;
        done += (uint64_t)n;
        if ((size_t)n < want)
            break;
    }
    return (ssize_t)done;
}

ssize_t
vs_bdev_copy_range(struct vs_bdev *src, uint64_t src_off, struct vs_bdev *dst,
                   uint64_t dst_off, uint64_t length)
{
    struct vs_bdev *s = copy_end(src, true);
    struct vs_bdev *d = copy_end(dst, false);
    ssize_t (*copy_cb)(struct vs_bdev *, uint64_t, struct vs_bdev *, uint64_t,
                       uint64_t) =
        s != NULL ? VS_DRV_CB(s->drv, copy_range) : NULL;
    int r = check_writable(dst);

    if (r < 0)
        return r;
    length = MIN(length, (uint64_t)SSIZE_MAX);
    if (length == 0)
        return 0;
    if (copy_cb != NULL && d != NULL && s->drv == d->drv) {
        ssize_t n = copy_cb(s, src_off, d, dst_off, length);

        if (n != -ENOTSUP)
            return n;
    }
    return copy_via_memory(src, src_off, dst, dst_off, length);
}

/* ---- asynchronous submission ---- */

/* Whether BS's own driver serves OP synchronously (so it cannot be looked
 * through to an asynchronous layer below). */
static bool
serves_sync(const struct vs_bdev *bs, enum vs_req_op op)
{
    switch (op) {
    case VS_REQ_READ:
        return VS_DRV_CB(bs->drv, preadv) != NULL;
    case VS_REQ_WRITE:
        return VS_DRV_CB(bs->drv, pwritev) != NULL;
    case VS_REQ_FLUSH:
        return VS_DRV_CB(bs->drv, flush) != NULL;
    case VS_REQ_DISCARD:
        return VS_DRV_CB(bs->drv, discard) != NULL;
    case VS_REQ_WRITE_ZEROES:
        return VS_DRV_CB(bs->drv, write_zeroes) != NULL;
    }
    return true;
}

/* The layer that can take REQ asynchronously, or NULL. */
static struct vs_bdev *
submit_layer(struct vs_bdev *bs, enum vs_req_op op)
{
    do {
        if (VS_DRV_CB(bs->drv, submit) != NULL)
            return bs;
        if (serves_sync(bs, op))
            return NULL;
        bs = bs->file;
    } while (bs != NULL);
    return NULL;
}

static ssize_t
submit_sync(struct vs_bdev *bs, struct vs_request *req)
{
    switch (req->op) {
    case VS_REQ_READ:
        return vs_bdev_preadv(bs, req->iov, req->iovcnt, req->offset,
                              req->flags);
    case VS_REQ_WRITE:
        return vs_bdev_pwritev(bs, req->iov, req->iovcnt, req->offset,
                               req->flags);
    case VS_REQ_FLUSH:
        return vs_bdev_flush(bs);
    case VS_REQ_DISCARD:
        return vs_bdev_discard(bs, req->offset, req->length);
    case VS_REQ_WRITE_ZEROES:
        return vs_bdev_write_zeroes(bs, req->offset, req->length, req->flags);
    }
    return -EINVAL;
}

/* An asynchronous flush in flight: keeps the sticky error on completion. */
struct flush_req {
    struct vs_request req; /* first: the driver's completion gets this */
    struct vs_request *orig;
    struct vs_bdev *bs;
};

static void
flush_req_done(struct vs_request *req, ssize_t ret)
{
    struct flush_req *fr = (struct flush_req *)req;
    struct vs_request *orig = fr->orig;

    if (ret < 0)
        ret = flush_fail(fr->bs, (int)ret);
    free(fr);
    orig->complete(orig, ret);
}

/* Submit REQ to layer L; 0 when L took it, -errno (not completed) else. */
static int
submit_async(struct vs_bdev *bs, struct vs_bdev *l, struct vs_request *req)
{
    int (*submit_cb)(struct vs_bdev *, struct vs_request *) =
        VS_DRV_CB(l->drv, submit);
    struct flush_req *fr;
    int r;

    if (req->op != VS_REQ_FLUSH)
        return submit_cb(l, req);
    fr = calloc(1, sizeof(*fr));
    if (fr == NULL)
        return -ENOMEM;
    fr->req = *req;
    fr->req.complete = flush_req_done;
    fr->orig = req;
    fr->bs = bs;
    r = submit_cb(l, &fr->req);
    if (r < 0)
        free(fr);
    return r;
}

/*
 * A driver's submit returns 0 when it has taken the request (it will call
 * complete once) or -errno when it has not (complete not called): then
 * -ENOTSUP runs the synchronous path here and anything else completes the
 * request with that error.
 */
void
vs_bdev_submit(struct vs_bdev *bs, struct vs_request *req)
{
    struct vs_bdev *l = submit_layer(bs, req->op);
    ssize_t r = 0;

    if (req->op == VS_REQ_FLUSH)
        r = flush_sticky(bs);
    else if (req->op != VS_REQ_READ)
        r = check_writable(bs);
    if (r == 0 && l != NULL) {
        r = submit_async(bs, l, req);
        if (r == 0)
            return;
    }
    if (r == 0 || r == -ENOTSUP)
        r = submit_sync(bs, req);
    req->complete(req, r);
}
