/*
 * The generic block layer: block I/O dispatch for <vs/bdev.h> (stores and
 * stack building are in store.c).
 *
 * Dispatch.  A request names the top of a stack (a format layer over a
 * protocol object).  For each operation the request goes to the first layer
 * down the `file` chain whose driver implements the callback, looking
 * through passthrough formats only: a passthrough format (raw) that leaves
 * a callback NULL is transparent for it, as nbdkit's filters are, while any
 * other format stops the search, because the file's bytes at the same
 * offsets are not its bytes.  get_allocated (a storage question) looks
 * through every format.  Callbacks are read only through VS_DRV_CB, which
 * hides those an older driver does not have.
 *
 * Emulation.  When no layer can do an optional operation the generic layer
 * does it the slow way: write_zeroes writes a static zero buffer in bounded
 * chunks, copy_range goes through a bounded memory buffer, block_status
 * answers "allocated data everywhere", submit runs the synchronous call on
 * the submitting thread.  Everything else (reads, writes, size, truncate,
 * discard, allocate) answers -ENOTSUP.
 *
 * Limits.  The layer that serves a request is given pieces within its
 * bs->limits: reads, writes and native write_zeroes are cut to max_transfer
 * (at multiples of request_alignment), discards to whole granules with
 * the unaligned head and tail zeroed instead.  Reads and writes loop over
 * short transfers, so what reaches the caller is short only at the end of
 * the object (a write that stops short is -EIO), whatever the driver did.
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
 * reaching a driver.
 *
 * Objects never grow implicitly (an LV, a LUN region or an NFS file with a
 * quota cannot be written past its end the way a local file can): the
 * layer knows each protocol object's size (bs->object_size) and refuses a
 * write, zeroing or allocation that reaches past it, with -EINVAL and a
 * log line, since only a caller that broke the contract asks for one.
 * Objects grow by vs_bdev_extend (or an exact truncate), which round to
 * the driver's grow_granularity and may fail with -ENOSPC.  The size lock
 * orders only size changes; otherwise nothing here takes a lock: drivers
 * protect their own state.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>

#include "vs/bdev.h"
#include "vs/log.h"
#include "vs/util.h"
#include "backends.h"

/* Bytes written per request when zeroes are emulated. */
#define ZERO_CHUNK (1024 * 1024)
/* Bytes moved per read/write pair when a copy goes through memory. */
#define COPY_CHUNK (1024 * 1024)

#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

/* Never written: a source of zeros for every thread, aligned for O_DIRECT.
 * It lives in .bss, so it costs no memory until read (then the zero page). */
static uint8_t zero_buf[ZERO_CHUNK] __attribute__((aligned(4096)));

/* iovec entries sliced on the stack when a request is split. */
#define IOV_STACK 16

/* The first layer from BS down the file chain whose driver has MEMBER,
 * looking through passthrough formats only; NULL if none. */
#define LAYER_WITH(bs, member)                                                 \
    __extension__({                                                            \
        struct vs_bdev *layer_ = (bs);                                         \
        while (layer_ != NULL && VS_DRV_CB(layer_->drv, member) == NULL)       \
            layer_ = VS_DRV_PASSTHROUGH(layer_->drv) ? layer_->file : NULL;    \
        layer_;                                                                \
    })

/* The effective limits of BS (bdevs built by hand may have none set). */
static struct vs_limits
limits_of(const struct vs_bdev *bs)
{
    struct vs_limits l = bs->limits;

    vs_limits_fill(&l);
    return l;
}

/* The length of a piece at OFF of at most LEN bytes that ends at a
 * multiple of ALIGN when it is cut short by MAX. */
static uint64_t
piece_len(uint64_t off, uint64_t len, uint64_t max, uint64_t align)
{
    uint64_t end;

    if (len <= max)
        return len;
    end = off + max;
    end -= end % align;
    return end > off ? end - off : max;
}

static int
check_writable(struct vs_bdev *bs)
{
    if ((bs->open_flags & VS_OPEN_RDONLY) || bs->frozen)
        return -EROFS;
    /* remember the write for flushes from a layer above (see flush) */
    if (!__atomic_load_n(&bs->dirty, __ATOMIC_RELAXED))
        __atomic_store_n(&bs->dirty, 1, __ATOMIC_RELAXED);
    return 0;
}

/* 0 when [OFFSET, OFFSET + LENGTH) lies inside layer L's object (or L is
 * not a tracked object); -EINVAL when it does not, logged when WHAT (the
 * request) is not NULL: objects grow only by vs_bdev_extend or truncate. */
static int
check_inside(struct vs_bdev *l, uint64_t offset, uint64_t length,
             const char *what)
{
    uint64_t size;

    if (l->size_lock == NULL)
        return 0;
    size = __atomic_load_n(&l->object_size, __ATOMIC_ACQUIRE);
    if (offset <= size && length <= size - offset)
        return 0;
    if (what == NULL) /* a question, not a request */
        return -EINVAL;
    vs_log(LOG_ERR,
           "'%s': %s of %llu bytes at offset %llu refused: the object "
           "ends at %llu and objects are never grown by writing",
           l->name, what, (unsigned long long)length,
           (unsigned long long)offset, (unsigned long long)size);
    return -EINVAL;
}

/* R, after marking BS written again when R is a success: a flush that
 * began while the change was in flight cleared the mark but may not cover
 * the change (vs_bdev_clean relies on the mark). */
static int64_t
written(struct vs_bdev *bs, int64_t r)
{
    if (r >= 0)
        (void)check_writable(bs);
    return r;
}

/* ---- size and allocation ---- */

int64_t
vs_bdev_size(struct vs_bdev *bs)
{
    struct vs_bdev *l = LAYER_WITH(bs, get_size);

    return l != NULL ? VS_SERIALIZED(l, VS_DRV_CB(l->drv, get_size)(l))
                     : -ENOTSUP;
}

int64_t
vs_bdev_allocated(struct vs_bdev *bs)
{
    struct vs_bdev *l = bs;

    /* the storage a format occupies is its file's, unless it counts */
    while (l != NULL && VS_DRV_CB(l->drv, get_allocated) == NULL)
        l = l->file;

    return l != NULL ? VS_SERIALIZED(l, VS_DRV_CB(l->drv, get_allocated)(l))
                     : -ENOTSUP;
}

int
vs_bdev_kernel_fd(struct vs_bdev *bs)
{
    int (*get_fd)(struct vs_bdev *);

    if (bs == NULL || !VS_DRV_PASSTHROUGH(bs->drv) || bs->backing != NULL ||
        bs->file == NULL || bs->file->drv->kind != VS_DRIVER_PROTOCOL)
        return -ENOTSUP;
    get_fd = VS_DRV_CB(bs->file->drv, get_fd);
    return get_fd != NULL ? get_fd(bs->file) : -ENOTSUP;
}

int64_t
vs_bdev_resync_size(struct vs_bdev *bs)
{
    struct vs_bdev *l = LAYER_WITH(bs, get_size);
    int64_t size;

    if (l == NULL)
        return -ENOTSUP;
    if (l->size_lock != NULL)
        pthread_mutex_lock(l->size_lock);
    size = VS_SERIALIZED(l, VS_DRV_CB(l->drv, get_size)(l));
    if (size >= 0 && l->size_lock != NULL)
        __atomic_store_n(&l->object_size, (uint64_t)size, __ATOMIC_RELEASE);
    if (l->size_lock != NULL)
        pthread_mutex_unlock(l->size_lock);
    return size < 0 ? size : vs_bdev_size(bs);
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
    if (l == NULL)
        return -ENOTSUP;
    if (l->size_lock != NULL)
        pthread_mutex_lock(l->size_lock);
    r = VS_SERIALIZED(l, VS_DRV_CB(l->drv, truncate)(l, size));
    if (r == 0 && l->size_lock != NULL)
        __atomic_store_n(&l->object_size, size, __ATOMIC_RELEASE);
    if (l->size_lock != NULL)
        pthread_mutex_unlock(l->size_lock);
    return (int)written(bs, r);
}

/* SIZE rounded up to a multiple of GRAN; 0 on overflow past INT64_MAX. */
static uint64_t
round_grow(uint64_t size, uint64_t gran)
{
    uint64_t rem = size % gran;

    if (rem != 0 && size > INT64_MAX - (gran - rem))
        return 0;
    size += rem != 0 ? gran - rem : 0;
    return size <= INT64_MAX ? size : 0;
}

int64_t
vs_bdev_extend(struct vs_bdev *bs, uint64_t min, uint64_t want)
{
    struct vs_bdev *l = LAYER_WITH(bs, truncate);
    int (*truncate_cb)(struct vs_bdev *, uint64_t);
    uint64_t gran, size;
    int r = check_writable(bs);

    if (r < 0)
        return r;
    if (l == NULL || l->size_lock == NULL)
        return -ENOTSUP;
    truncate_cb = VS_DRV_CB(l->drv, truncate);
    gran = limits_of(l).grow_granularity;
    min = round_grow(min, gran);
    want = round_grow(MAX(want, min), gran);
    if (min == 0 || want == 0)
        return min == 0 && want == 0 ? 0 : -EFBIG;
    pthread_mutex_lock(l->size_lock);
    size = l->object_size;
    if (size < min) {
        /* the whole chunk if the storage has room, else what is needed;
         * any other error (EIO, a lost server) is the answer */
        r = VS_SERIALIZED(l, truncate_cb(l, want));
        if ((r == -ENOSPC || r == -EFBIG) && want > min)
            r = VS_SERIALIZED(l, truncate_cb(l, (want = min)));
        if (r == 0)
            __atomic_store_n(&l->object_size, (size = want), __ATOMIC_RELEASE);
        if (r == 0)
            (void)written(bs, 0);
    }
    pthread_mutex_unlock(l->size_lock);
    return r < 0 ? r : (int64_t)size;
}

/* ---- data ---- */

typedef ssize_t (*rw_fn)(struct vs_bdev *bs, const struct iovec *iov,
                         int iovcnt, uint64_t offset, unsigned flags);

/* Fill OUT (room for IOVCNT entries) with bytes [skip, skip + len) of IOV;
 * the number of entries used. */
static int
iov_slice(const struct iovec *iov, int iovcnt, size_t skip, size_t len,
          struct iovec *out)
{
    int n = 0;

    for (int i = 0; i < iovcnt && len > 0; i++) {
        size_t part;

        if (skip >= iov[i].iov_len) {
            skip -= iov[i].iov_len;
            continue;
        }
        part = MIN(iov[i].iov_len - skip, len);
        out[n].iov_base = (char *)iov[i].iov_base + skip;
        out[n++].iov_len = part;
        len -= part;
        skip = 0;
    }
    return n;
}

/* Move the LEN bytes of IOV at OFFSET, DONE of them moved already, through
 * layer L's CB in pieces within LIM and again after every short transfer.
 * The count (short only when the driver returned 0: the end of the
 * object) or -errno. */
static ssize_t
rw_pieces(struct vs_bdev *l, rw_fn cb, const struct vs_limits *lim,
          const struct iovec *iov, int iovcnt, size_t len, size_t done,
          uint64_t offset, unsigned flags)
{
    struct iovec stack[IOV_STACK];
    _cleanup_free_ struct iovec *heap = NULL;
    struct iovec *part = stack;

    if (iovcnt > IOV_STACK) {
        heap = malloc(sizeof(*heap) * (size_t)iovcnt);
        if (heap == NULL)
            return -ENOMEM;
        part = heap;
    }
    while (done < len) {
        size_t want =
            (size_t)piece_len(offset + done, len - done, lim->max_transfer,
                              lim->request_alignment);
        int cnt = iov_slice(iov, iovcnt, done, want, part);
        ssize_t n = VS_SERIALIZED(l, cb(l, part, cnt, offset + done, flags));

        if (n < 0)
            return n;
        if ((size_t)n > want)
            return -EIO; /* a driver broke its contract */
        if (n == 0)
            break; /* the end of the object */
        done += (size_t)n;
    }
    return (ssize_t)done;
}

/* preadv or pwritev of the layer that serves BS. */
static ssize_t
bdev_rw(struct vs_bdev *bs, const struct iovec *iov, int iovcnt,
        uint64_t offset, unsigned flags, bool write)
{
    struct vs_bdev *l =
        write ? LAYER_WITH(bs, pwritev) : LAYER_WITH(bs, preadv);
    struct vs_limits lim;
    rw_fn cb;
    size_t len;
    ssize_t n = 0;

    if (iovcnt < 0 || vs_iov_total(iov, iovcnt, &len) < 0)
        return -EINVAL;
    if (l == NULL)
        return -ENOTSUP;
    if (write && (n = check_inside(l, offset, len, "write")) < 0)
        return n;
    cb = write ? VS_DRV_CB(l->drv, pwritev) : VS_DRV_CB(l->drv, preadv);
    lim = limits_of(l);
    /* the common case: one call within the limits, done in full */
    if (len <= lim.max_transfer) {
        n = VS_SERIALIZED(l, cb(l, iov, iovcnt, offset, flags));
        if (n > (ssize_t)len)
            return -EIO; /* a driver broke its contract */
        if (n < 0 || (size_t)n == len || (n == 0 && !write))
            return n;
    }
    n = rw_pieces(l, cb, &lim, iov, iovcnt, len, (size_t)n, offset, flags);
    if (write && n >= 0 && (size_t)n < len)
        return -EIO; /* a write that makes no progress */
    return n;
}

ssize_t
vs_bdev_preadv(struct vs_bdev *bs, const struct iovec *iov, int iovcnt,
               uint64_t offset, unsigned flags)
{
    return bdev_rw(bs, iov, iovcnt, offset, flags, false);
}

ssize_t
vs_bdev_pwritev(struct vs_bdev *bs, const struct iovec *iov, int iovcnt,
                uint64_t offset, unsigned flags)
{
    int r = check_writable(bs);
    ssize_t n;

    if (r < 0)
        return r;
    n = bdev_rw(bs, iov, iovcnt, offset, flags, true);
    return (ssize_t)written(bs, n);
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
     * snapshot froze) is flushed with the first flush of the layer above,
     * so a snapshot needs no flush of its own.  It may sit under layers
     * that were never written (snapshots with no write in between): the
     * first written one below is flushed, and it flushes the rest. */
    for (struct vs_bdev *b = bs->backing; b; b = b->backing) {
        if (__atomic_load_n(&b->dirty, __ATOMIC_ACQUIRE)) {
            r = vs_bdev_flush(b);
            break;
        }
    }
    __atomic_store_n(&bs->dirty, 0, __ATOMIC_RELEASE);
    if (r == 0)
        r = flush_cb != NULL ? VS_SERIALIZED(bs, flush_cb(bs)) : 0;
    if (r == 0 && bs->file != NULL)
        r = vs_bdev_flush(bs->file);
    return r < 0 ? flush_fail(bs, r) : 0;
}

/* ---- discard and zeroes ---- */

/* Discard whole granules [start, end) of layer L, at most MAX at a time. */
static int
discard_granules(struct vs_bdev *l, uint64_t start, uint64_t end,
                 const struct vs_limits *lim)
{
    int (*cb)(struct vs_bdev *, uint64_t, uint64_t) =
        VS_DRV_CB(l->drv, discard);
    uint64_t g = lim->discard_granularity;
    uint64_t max = MAX(lim->max_transfer - lim->max_transfer % g, g);

    while (start < end) {
        uint64_t n = MIN(end - start, max);
        int r = VS_SERIALIZED(l, cb(l, start, n));

        if (r < 0)
            return r;
        start += n;
    }
    return 0;
}

/*
 * Discard [offset, offset + length) on layer L: the whole granules go to
 * the driver, the unaligned head and tail (or a range within one granule)
 * are zeroed instead, after the granules, so that a storage that cannot
 * discard leaves the range as it was.
 */
static int
discard_aligned(struct vs_bdev *l, uint64_t offset, uint64_t length)
{
    struct vs_limits lim = limits_of(l);
    uint64_t g = lim.discard_granularity, a = lim.discard_alignment;
    uint64_t end = offset + length, start = offset, stop = end;
    int r = 0;

    /* first granule boundary at or after offset, last at or before end */
    if (start % g != a % g)
        start += (a % g + g - start % g) % g;
    stop -= (stop % g + g - a % g) % g;
    if (start >= stop || stop > end || start < offset)
        return vs_bdev_write_zeroes(l, offset, length, 0);
    r = discard_granules(l, start, stop, &lim);
    if (r == 0 && start > offset)
        r = vs_bdev_write_zeroes(l, offset, start - offset, 0);
    if (r == 0 && end > stop)
        r = vs_bdev_write_zeroes(l, stop, end - stop, 0);
    return r;
}

int
vs_bdev_discard(struct vs_bdev *bs, uint64_t offset, uint64_t length)
{
    struct vs_bdev *l = LAYER_WITH(bs, discard);
    int r = check_writable(bs);

    if (r < 0)
        return r;
    if (length == 0)
        return 0;
    if (offset > INT64_MAX || length > INT64_MAX - offset)
        return -EINVAL;
    return (int)written(bs, l != NULL ? discard_aligned(l, offset, length)
                                      : -ENOTSUP);
}

int
vs_bdev_set_backing(struct vs_bdev *bs, const char *name, const char *format)
{
    int (*cb)(struct vs_bdev *, const char *, const char *) =
        VS_DRV_CB(bs->drv, set_backing);

    return cb != NULL ? VS_SERIALIZED(bs, cb(bs, name, format)) : -ENOTSUP;
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
    if (l == NULL)
        return -ENOTSUP;
    r = check_inside(l, offset, length, "allocation");
    return r < 0
               ? r
               : (int)written(bs, VS_SERIALIZED(l, VS_DRV_CB(l->drv, allocate)(
                                                       l, offset, length)));
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

/* Layer L's own write_zeroes over the range, at most max_transfer at a
 * time.  -ENOTSUP (only ever from the first piece) asks for emulation. */
static int
zeroes_native(struct vs_bdev *l, uint64_t offset, uint64_t length,
              unsigned flags)
{
    int (*cb)(struct vs_bdev *, uint64_t, uint64_t, unsigned) =
        VS_DRV_CB(l->drv, write_zeroes);
    struct vs_limits lim = limits_of(l);
    bool first = true;
    int r = check_inside(l, offset, length, "zeroing");

    if (r < 0)
        return r;
    while (length > 0) {
        uint64_t n =
            piece_len(offset, length, lim.max_transfer, lim.request_alignment);
        r = VS_SERIALIZED(l, cb(l, offset, n, flags));
        if (r == -ENOTSUP && !first)
            return zeroes_emulate(l, offset, length, flags);
        if (r < 0)
            return r;
        first = false;
        offset += n;
        length -= n;
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
        r = zeroes_native(l, offset, length, flags);
        if (r != -ENOTSUP)
            return (int)written(bs, r);
    }
    return zeroes_emulate(bs, offset, length, flags);
}

bool
vs_bdev_clean(struct vs_bdev *bs)
{
    for (; bs != NULL; bs = bs->file) {
        if (__atomic_load_n(&bs->dirty, __ATOMIC_ACQUIRE) ||
            flush_sticky(bs) < 0 ||
            (bs->backing != NULL && !vs_bdev_clean(bs->backing)))
            return false;
    }
    return true;
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
    r = VS_SERIALIZED(l,
                      VS_DRV_CB(l->drv, block_status)(l, offset, length, &n));
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
 * copy_range, or NULL.  Only passthrough layers that do not map data
 * themselves (no own preadv for a source, no own pwritev for a
 * destination, no backing) can be looked through.
 */
static struct vs_bdev *
copy_end(struct vs_bdev *bs, bool source)
{
    while (bs != NULL && VS_DRV_CB(bs->drv, copy_range) == NULL) {
        bool maps = source ? VS_DRV_CB(bs->drv, preadv) != NULL
                           : VS_DRV_CB(bs->drv, pwritev) != NULL;

        if (maps || bs->backing != NULL || !VS_DRV_PASSTHROUGH(bs->drv))
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
    /* an offload that would reach past the destination object's end goes
     * through memory, which writes only what the source has */
    if (copy_cb != NULL && d != NULL && s->drv == d->drv &&
        check_inside(d, dst_off, length, NULL) == 0) {
        /* two bdevs of one driver: both request locks, in address order */
        pthread_mutex_t *first = s < d ? s->serial : d->serial;
        pthread_mutex_t *second = s < d ? d->serial : s->serial;
        ssize_t n;

        if (first != NULL)
            pthread_mutex_lock(first);
        if (second != NULL && second != first)
            pthread_mutex_lock(second);
        n = copy_cb(s, src_off, d, dst_off, length);
        if (second != NULL && second != first)
            pthread_mutex_unlock(second);
        if (first != NULL)
            pthread_mutex_unlock(first);

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
        if (serves_sync(bs, op) || !VS_DRV_PASSTHROUGH(bs->drv))
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

/*
 * An asynchronous request in flight that the generic layer follows up, so
 * that what reaches the submitter is what the synchronous path gives: reads
 * and writes go to the driver in pieces within its limits and again after
 * every short transfer (short only at the end of the object; a write that
 * stops short is -EIO), a write past the object's end is refused, a
 * change marks its bdev written again at completion (a flush that began
 * while it was in flight cleared the mark but may not cover it), and a
 * flush keeps its sticky error.  A driver that completes inline recurses
 * once per piece (pieces are few: max_transfer against FUSE's requests).
 */
struct tracked_req {
    struct vs_request sub; /* first: the driver's completion gets this */
    struct vs_request *orig;
    struct vs_bdev *bs, *l;
    struct vs_limits lim;
    size_t done, want;  /* bytes moved so far; in the piece in flight */
    struct iovec *part; /* the piece's slice of orig->iov */
    struct iovec stack[IOV_STACK];
};

static void
tracked_finish(struct tracked_req *t, ssize_t ret)
{
    struct vs_request *orig = t->orig;

    if (orig->op == VS_REQ_FLUSH && ret < 0)
        ret = flush_fail(t->bs, (int)ret);
    else if (orig->op != VS_REQ_FLUSH && orig->op != VS_REQ_READ)
        ret = written(t->bs, ret);
    if (t->part != t->stack)
        free(t->part);
    free(t);
    orig->complete(orig, ret);
}

static void tracked_done(struct vs_request *sub, ssize_t ret);

/* Send the next piece of a read or write, or the whole of anything else:
 * 0 when the driver took it, else -errno (complete() was not called). */
static int
tracked_step(struct tracked_req *t)
{
    int (*submit_cb)(struct vs_bdev *, struct vs_request *) =
        VS_DRV_CB(t->l->drv, submit);
    struct vs_request *orig = t->orig;

    t->sub = *orig;
    t->sub.complete = tracked_done;
    if (orig->op == VS_REQ_READ || orig->op == VS_REQ_WRITE) {
        t->want =
            (size_t)piece_len(orig->offset + t->done, orig->length - t->done,
                              t->lim.max_transfer, t->lim.request_alignment);
        t->sub.iovcnt =
            iov_slice(orig->iov, orig->iovcnt, t->done, t->want, t->part);
        t->sub.iov = t->part;
        t->sub.offset = orig->offset + t->done;
        t->sub.length = t->want;
    }
    return VS_SERIALIZED(t->l, submit_cb(t->l, &t->sub));
}

static void
tracked_done(struct vs_request *sub, ssize_t ret)
{
    struct tracked_req *t = (struct tracked_req *)sub;
    bool rw = sub->op == VS_REQ_READ || sub->op == VS_REQ_WRITE;

    if (!rw || ret < 0) {
        tracked_finish(t, ret);
        return;
    }
    if ((size_t)ret > t->want) {
        tracked_finish(t, -EIO); /* a driver broke its contract */
        return;
    }
    if (ret == 0) { /* the end of the object */
        tracked_finish(t, sub->op == VS_REQ_WRITE ? -EIO : (ssize_t)t->done);
        return;
    }
    t->done += (size_t)ret;
    if (t->done == t->orig->length)
        tracked_finish(t, (ssize_t)t->done);
    else if ((ret = tracked_step(t)) < 0)
        tracked_finish(t, ret);
}

/* Submit REQ to layer L; 0 when L took it (REQ completes later, maybe
 * already did), -errno (not completed) else. */
static int
submit_async(struct vs_bdev *bs, struct vs_bdev *l, struct vs_request *req)
{
    struct tracked_req *t;
    size_t len = 0;
    int r;

    if (req->op == VS_REQ_READ || req->op == VS_REQ_WRITE) {
        if (req->iovcnt < 0 || vs_iov_total(req->iov, req->iovcnt, &len) < 0 ||
            len != req->length)
            return -EINVAL;
        if (len == 0)
            return -ENOTSUP; /* nothing to move: the synchronous path */
    }
    if (req->op == VS_REQ_WRITE &&
        (r = check_inside(l, req->offset, len, "write")) < 0)
        return r;
    t = calloc(1, sizeof(*t));
    if (t == NULL)
        return -ENOMEM;
    t->orig = req;
    t->bs = bs;
    t->l = l;
    t->lim = limits_of(l);
    t->part = t->stack;
    if (req->iovcnt > IOV_STACK &&
        !(t->part = malloc(sizeof(*t->part) * (size_t)req->iovcnt))) {
        free(t);
        return -ENOMEM;
    }
    r = tracked_step(t);
    if (r < 0) { /* not taken: the caller completes REQ */
        if (t->part != t->stack)
            free(t->part);
        free(t);
    }
    return r;
}

bool
vs_bdev_submit_may_defer(struct vs_bdev *bs, enum vs_req_op op)
{
    return submit_layer(bs, op) != NULL;
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
