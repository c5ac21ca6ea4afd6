/*
 * The "qcow2" format driver: QEMU's copy-on-write image format, version 3
 * (version 2 images are read and written too), stacked on any protocol
 * object through the driver interface.  A layer's `backing` child is its
 * parent layer; what this layer does not map is read from there.
 *
 * This file holds the driver table and the whole-image operations: open
 * (validate the header, load the L1 table and, for a writable image, the
 * refcounts into memory; L2 tables are cached on demand, qcow2_l2cache.c),
 * close (flush what is dirty), flush, size,
 * growing the size, and block status.  The data paths, the metadata
 * cache's write-back and the on-disk layout live in the qcow2_*.c files
 * listed in qcow2.h.
 *
 * What a writable open refuses: images with internal snapshots, with the
 * dirty bit (lazy refcounts: repair them with `qemu-img check -r all`
 * first), marked corrupt, or with refcounts wider than 16 bits; those open
 * read-only only.  Encryption, external data files and non-zlib
 * compression are refused (-ENOTSUP) outright.  Extended L2 entries
 * (subclusters) are supported: qcow2_subcluster.c.  Everything
 * the driver finds wrong in an image is -EIO with a debug line that names
 * the layer.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "vs/bdev.h"
#include "vs/log.h"
#include "backends.h"
#include "qcow2.h"

#define MIN(a, b) ((a) < (b) ? (a) : (b))

static void qcow2_vlog(const struct qcow2 *s, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

static void
qcow2_vlog(const struct qcow2 *s, const char *fmt, va_list ap)
{
    char msg[256];

    if (!vs_log_cat_enabled(VS_LOG_CAT_BACKEND))
        return;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    vs_log_debug(VS_LOG_CAT_BACKEND, "'%s': qcow2: %s", s->name, msg);
}

int
qcow2_corrupt(const struct qcow2 *s, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    qcow2_vlog(s, fmt, ap);
    va_end(ap);
    return -EIO;
}

int
qcow2_refuse(const struct qcow2 *s, int err, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    qcow2_vlog(s, fmt, ap);
    va_end(ap);
    return err;
}

/* ---- open and close ---- */

static int
locks_init(struct qcow2 *s)
{
    pthread_rwlockattr_t attr;
    int r;

    pthread_rwlockattr_init(&attr);
    pthread_rwlockattr_setkind_np(&attr,
                                  PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    r = pthread_rwlock_init(&s->lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    if (r != 0)
        return -r;
    pthread_mutex_init(&s->flush_lock, NULL);
    pthread_mutex_init(&s->inflight_lock, NULL);
    pthread_mutex_init(&s->l2_lock, NULL);
    pthread_cond_init(&s->inflight_cond, NULL);
    return 0;
}

static void
state_free(struct qcow2 *s, bool locks)
{
    if (locks) {
        pthread_rwlock_destroy(&s->lock);
        pthread_mutex_destroy(&s->flush_lock);
        pthread_mutex_destroy(&s->inflight_lock);
        pthread_mutex_destroy(&s->l2_lock);
        pthread_cond_destroy(&s->inflight_cond);
    }
    qcow2_chain_free(s);
    qcow2_rc_free(s);
    qcow2_tables_free(s);
    qcow2_l2_cache_free(s);
    free(s->inflight);
    free(s->raw_header);
    free(s);
}

/* What only a writable open must check. */
static int
check_writable(struct qcow2 *s)
{
    if (s->ro)
        return 0;
    if (s->h.incompat & QCOW2_INCOMPAT_CORRUPT)
        return qcow2_corrupt(s, "image is marked corrupt");
    if (s->h.incompat & QCOW2_INCOMPAT_DIRTY)
        return qcow2_refuse(s, -ENOTSUP,
                            "dirty image (lazy refcounts): repair it with "
                            "qemu-img check -r all");
    if (s->h.nb_snapshots > 0)
        return qcow2_refuse(s, -ENOTSUP, "internal snapshots: read-only");
    return 0;
}

/* Load refcounts and check them; clear autoclear bits we do not keep. */
static int
open_writable(struct qcow2 *s)
{
    int r = qcow2_rc_load(s);

    if (r == 0)
        r = qcow2_check_refcounts(s);
    if (r == 0 && s->h.autoclear != 0) {
        s->h.autoclear = 0;
        r = qcow2_header_write(s, &s->h);
        if (r == 0)
            r = vs_bdev_flush(s->file);
        s->disk = s->h;
    }
    return r;
}

static int
qcow2_open(struct vs_bdev *bs)
{
    struct qcow2 *s = calloc(1, sizeof(*s));
    int r;

    if (s == NULL)
        return -ENOMEM;
    s->bs = bs;
    s->file = bs->file;
    s->name = bs->name;
    s->ro = (bs->open_flags & VS_OPEN_RDONLY) != 0;
    r = locks_init(s);
    if (r < 0) {
        free(s);
        return r;
    }
    r = qcow2_header_load(s);
    if (r == 0)
        qcow2_l2_cache_init(s);
    if (r == 0)
        r = check_writable(s);
    if (r == 0)
        r = qcow2_tables_load(s);
    if (r == 0 && !s->ro)
        r = open_writable(s);
    if (r == 0)
        r = qcow2_chain_init(s);
    if (r < 0) {
        state_free(s, true);
        return r;
    }
    bs->opaque = s;
    bs->caps = bs->file->caps;
    bs->caps.unmap = true;
    bs->caps.write_zeroes = s->h.version >= 3;
    bs->caps.alloc_status = true;
    bs->caps.clone = false;
    bs->caps.copy = false;
    bs->caps.snapshot = false;
    /* Any byte range is served (partial clusters are copied or zeroed
     * here), in requests of any length (split per cluster run here): the
     * defaults, said explicitly.  The file below has its own limits. */
    bs->limits = (struct vs_limits){.request_alignment = 1,
                                    .discard_granularity = 1,
                                    .grow_granularity = 1};
    return 0;
}

static void
qcow2_close(struct vs_bdev *bs)
{
    struct qcow2 *s = bs->opaque;

    if (s == NULL)
        return;
    if (!s->ro) {
        pthread_mutex_lock(&s->flush_lock);
        if (qcow2_meta_flush(s) == 0)
            (void)vs_bdev_flush(s->file); /* best effort: close never fails */
        pthread_mutex_unlock(&s->flush_lock);
    }
    state_free(s, true);
    bs->opaque = NULL;
}

static int
qcow2_create(struct vs_bdev *file, uint64_t size, const char *backing_name,
             const char *backing_format)
{
    /* Extended L2 entries pay off where copy-on-write happens: over a
     * backing file (see qcow2_subcluster.c for the measurement). */
    bool extl2 = qcow2_extl2_wanted(backing_name != NULL);

    return qcow2_create_image(file, size, QCOW2_DEFAULT_CLUSTER_BITS, extl2,
                              backing_name, backing_format);
}

/* ---- whole-image operations ---- */

static int
qcow2_flush(struct vs_bdev *bs)
{
    struct qcow2 *s = bs->opaque;
    int r;

    pthread_mutex_lock(&s->flush_lock);
    r = qcow2_meta_flush(s);
    pthread_mutex_unlock(&s->flush_lock);
    return r;
}

static int64_t
qcow2_get_size(struct vs_bdev *bs)
{
    struct qcow2 *s = bs->opaque;
    uint64_t size;

    qcow2_rdlock(s);
    size = s->h.size;
    qcow2_unlock(s);
    return (int64_t)size;
}

/* Grow the mapping to SIZE; write lock and flush lock held. */
static int
grow_locked(struct qcow2 *s, uint64_t size)
{
    uint64_t need = qcow2_l1_needed(size, s->cluster_bits, s->l2_bits);
    int r;

    if (need * 8 > QCOW2_MAX_L1_BYTES)
        return -EFBIG;
    r = qcow2_l1_grow(s, (uint32_t)need);
    if (r < 0)
        return r;
    s->h.size = size;
    s->header_dirty = true;
    return 0;
}

/* A backing layer larger than the old size would show through the grown
 * part: zero it in this layer. */
static int
hide_backing(struct vs_bdev *bs, uint64_t old, uint64_t size)
{
    int64_t bsize = bs->backing ? vs_bdev_size(bs->backing) : 0;

    if (bsize < 0)
        return (int)bsize;
    if ((uint64_t)bsize <= old)
        return 0;
    return vs_bdev_write_zeroes(bs, old, MIN(size, (uint64_t)bsize) - old,
                                VS_IO_MAY_UNMAP);
}

static int
qcow2_truncate(struct vs_bdev *bs, uint64_t size)
{
    struct qcow2 *s = bs->opaque;
    uint64_t old;
    int r;

    pthread_mutex_lock(&s->flush_lock);
    qcow2_wrlock(s);
    old = s->h.size;
    r = size < old ? -ENOTSUP : size == old ? 1 : grow_locked(s, size);
    qcow2_wrunlock(s);
    if (r == 0)
        r = hide_backing(bs, old, size);
    if (r == 0)
        r = qcow2_meta_flush(s);
    if (r == 0)
        r = vs_bdev_flush(s->file);
    pthread_mutex_unlock(&s->flush_lock);
    return r > 0 ? 0 : r;
}

/* VS_BS_* bits for what a subcluster (a cluster, without subclusters)
 * of kind K reads as. */
static int
status_of(enum qcow2_kind k)
{
    switch (k) {
    case QCOW2_NORMAL:
    case QCOW2_COMPRESSED_CLUSTER:
        return VS_BS_ALLOCATED | VS_BS_DATA;
    case QCOW2_ZERO_CLUSTER:
        return VS_BS_ALLOCATED | VS_BS_ZERO;
    default:
        return 0;
    }
}

/* Status is per subcluster: a partly written cluster of a layer with
 * subclusters answers "not mine" for the rest, so SEEK_DATA and the chain
 * status look further down there.  One answer covers at most the range
 * of one L2 table, so a status walk over a large disk keeps one table in
 * the cache at a time. */
static int
qcow2_block_status(struct vs_bdev *bs, uint64_t offset, uint64_t length,
                   uint64_t *pnum)
{
    struct qcow2 *s = bs->opaque;
    uint64_t n, unit, span;
    int st, r;

    qcow2_rdlock(s);
    if (offset >= s->h.size) {
        qcow2_unlock(s);
        *pnum = length;
        return VS_BS_ALLOCATED | VS_BS_ZERO;
    }
    unit = 1ull << s->sc_bits;
    length = MIN(length, s->h.size - offset);
    span = 1ull << (s->cluster_bits + s->l2_bits);
    length = MIN(length, span - (offset & (span - 1)));
    r = qcow2_l2_load(s, offset >> (s->cluster_bits + s->l2_bits));
    if (r < 0) {
        qcow2_unlock(s);
        return r;
    }
    st = status_of(qcow2_kind_at(s, offset));
    n = MIN(length, unit - (offset & (unit - 1)));
    while (n < length && status_of(qcow2_kind_at(s, offset + n)) == st)
        n += MIN(unit, length - n);
    qcow2_unlock(s);
    *pnum = n;
    return st;
}

/* Reserving host space for guest ranges is not offered: the generic
 * layer must not pass guest offsets through to the file. */
static int
qcow2_allocate(struct vs_bdev *bs, uint64_t offset, uint64_t length)
{
    (void)bs, (void)offset, (void)length;
    return -ENOTSUP;
}

const struct vs_driver vs_driver_qcow2 = {
    .api_version = VS_DRIVER_API_VERSION,
    .struct_size = sizeof(struct vs_driver),
    .name = "qcow2",
    .kind = VS_DRIVER_FORMAT,
    .create = qcow2_create,
    .open = qcow2_open,
    .close = qcow2_close,
    .get_size = qcow2_get_size,
    .truncate = qcow2_truncate,
    .preadv = qcow2_preadv,
    .pwritev = qcow2_pwritev,
    .flush = qcow2_flush,
    .discard = qcow2_discard,
    .write_zeroes = qcow2_write_zeroes,
    .block_status = qcow2_block_status,
    .allocate = qcow2_allocate,
    .set_backing = qcow2_set_backing,
};
