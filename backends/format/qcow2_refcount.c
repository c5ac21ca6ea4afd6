/*
 * Host cluster refcounts of a writable qcow2 image, and cluster
 * allocation.
 *
 * In memory the refcounts are one flat array, one 16-bit count per host
 * cluster (images with refcount_order above 4 are opened read-only only),
 * loaded from the refcount table and blocks at open.  Allocation takes the
 * first cluster with count 0 at or above a hint, else the next one past
 * the end; contiguous runs (a new L1 table, a new refcount table) always
 * come from the end.  Each change marks its refcount block dirty.
 *
 * Blocks are not given clusters when a count changes but when a flush
 * prepares (qcow2_rc_prepare): every dirty block that holds a nonzero
 * count and has no cluster yet gets one, and the table is relocated to a
 * larger one at the end when it cannot point at every block.  Both steps
 * allocate clusters, which may dirty further blocks, so preparing repeats
 * until nothing changes; since a block covers thousands of clusters this
 * ends after two or three rounds.
 *
 * Growing the object.  Objects do not grow by being written past their
 * end (an LV or a LUN region cannot), so before a cluster past the
 * object's end is handed out the object is extended, ahead of need: to the
 * new end plus a chunk (a watermark, as SAN platforms extend qcow2 on
 * LVs), or only to what is needed when the storage has no room for the
 * chunk.  Data and table allocations must leave `reserve` clusters free at
 * the end for the refcount blocks and table that the next flush places;
 * only the flush's own allocations may use them.  So a full store fails
 * the guest's write with ENOSPC and never the flush that makes earlier
 * writes durable.
 *
 * Freeing is deferred: a cluster that a mapping change stops referencing
 * is queued (qcow2_free_later) and its count drops only after the flush
 * that wrote the unlinking has been made durable (qcow2_flush.c).  Until
 * then it cannot be handed out again, so a crash can never leave two
 * references to one cluster; the worst case is a leaked cluster.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vs/bdev.h"
#include "vs/util.h"
#include "qcow2.h"

/* Host offsets must fit the 56 bits an L2 entry can hold. */
#define MAX_HOST_OFFSET (1ull << 56)
/* How far ahead of its allocation the object is extended, in clusters,
 * unless the storage grows in larger units (an LVM extent): a local file
 * then takes one truncate per megabyte written (64 KiB clusters). */
#define GROW_CLUSTERS 16
/* Clusters kept for the flush beyond what the count below finds. */
#define RESERVE_MARGIN 2

#define MAX(a, b) ((a) > (b) ? (a) : (b))

static uint64_t
rb_get(const uint8_t *b, uint64_t j, uint32_t order)
{
    uint32_t bits = 1u << order;
    uint64_t bit = j * bits;

    switch (order) {
    case 3:
        return b[j];
    case 4:
        return (uint64_t)b[2 * j] << 8 | b[2 * j + 1];
    case 5:
        return qcow2_be32(b + 4 * j);
    case 6:
        return qcow2_be64(b + 8 * j);
    default:
        return (b[bit / 8] >> (bit % 8)) & ((1u << bits) - 1);
    }
}

static void
rb_put(uint8_t *b, uint64_t j, uint32_t order, uint64_t v)
{
    uint32_t bits = 1u << order;
    uint64_t bit = j * bits;

    switch (order) {
    case 3:
        b[j] = (uint8_t)v;
        break;
    case 4:
        b[2 * j] = (uint8_t)(v >> 8);
        b[2 * j + 1] = (uint8_t)v;
        break;
    default: /* orders 0-2; 5 and 6 are never written */
        b[bit / 8] |= (uint8_t)((v & ((1u << bits) - 1)) << (bit % 8));
        break;
    }
}

/* Make rc (and rb_dirty) cover cluster index IDX. */
static int
rc_ensure(struct qcow2 *s, uint64_t idx)
{
    uint64_t cap = s->rc_cap, rb_cap;
    uint16_t *rc;
    uint8_t *dirty;

    if (idx < cap)
        return 0;
    while (cap <= idx)
        cap = cap < 1024 ? 1024 : cap * 2;
    rc = realloc(s->rc, cap * sizeof(*rc));
    if (rc == NULL)
        return -ENOMEM;
    memset(rc + s->rc_cap, 0, (cap - s->rc_cap) * sizeof(*rc));
    s->rc = rc;
    s->rc_cap = cap;
    rb_cap = cap / s->rb_entries + 1;
    if (rb_cap > s->rb_cap) {
        dirty = realloc(s->rb_dirty, rb_cap);
        if (dirty == NULL)
            return -ENOMEM;
        memset(dirty + s->rb_cap, 0, rb_cap - s->rb_cap);
        s->rb_dirty = dirty;
        s->rb_cap = rb_cap;
    }
    return 0;
}

static void
rc_set(struct qcow2 *s, uint64_t idx, uint16_t v)
{
    s->rc[idx] = v;
    s->rb_dirty[idx / s->rb_entries] = 1;
    if (v != 0 && idx >= s->end)
        s->end = idx + 1;
    if (v == 0 && idx < s->free_hint)
        s->free_hint = idx;
}

uint64_t
qcow2_rc_get(const struct qcow2 *s, uint64_t host)
{
    uint64_t idx = host >> s->cluster_bits;

    if (s->rc == NULL)
        return 1; /* read-only: refcounts are not loaded */
    return idx < s->rc_cap ? s->rc[idx] : 0;
}

/* ---- loading ---- */

static int
read_table(struct qcow2 *s)
{
    uint64_t bytes = (uint64_t)s->h.rt_clusters << s->cluster_bits;
    _cleanup_free_ uint8_t *buf = malloc(bytes);
    ssize_t got;

    s->rt_entries = bytes / 8;
    s->rt = calloc(s->rt_entries, sizeof(*s->rt));
    if (buf == NULL || s->rt == NULL)
        return -ENOMEM;
    got = vs_bdev_pread(s->file, buf, bytes, s->h.rt_offset);
    if (got < 0)
        return (int)got;
    if ((uint64_t)got < bytes)
        return qcow2_corrupt(s, "refcount table truncated");
    for (uint64_t i = 0; i < s->rt_entries; i++) {
        uint64_t e = qcow2_be64(buf + 8 * i);

        if ((e & QCOW2_RT_RESERVED) ||
            (e != 0 &&
             (e < s->cs || e > s->file_size - s->cs || s->file_size < s->cs)))
            return qcow2_corrupt(s,
                                 "refcount table entry %llu invalid "
                                 "(%#llx)",
                                 (unsigned long long)i, (unsigned long long)e);
        s->rt[i] = e;
    }
    return 0;
}

static int
read_block(struct qcow2 *s, uint64_t b, uint8_t *buf, uint64_t nclusters)
{
    ssize_t got = vs_bdev_pread(s->file, buf, s->cs, s->rt[b]);

    if (got < 0)
        return (int)got;
    if ((uint64_t)got < s->cs)
        return qcow2_corrupt(s, "refcount block %llu truncated",
                             (unsigned long long)b);
    for (uint64_t j = 0; j < s->rb_entries; j++) {
        uint64_t idx = b * s->rb_entries + j;
        uint64_t v = rb_get(buf, j, s->h.refcount_order);

        if (idx >= nclusters)
            break; /* counts for clusters past the end are dropped */
        s->rc[idx] = (uint16_t)v;
        if (v != 0 && idx >= s->end)
            s->end = idx + 1;
    }
    return 0;
}

int
qcow2_rc_load(struct qcow2 *s)
{
    uint64_t nclusters = (s->file_size + s->cs - 1) / s->cs;
    _cleanup_free_ uint8_t *buf = NULL;
    int r;

    if (s->h.refcount_order > 4)
        return qcow2_refuse(s, -ENOTSUP, "refcount order %u: read-only",
                            s->h.refcount_order);
    s->rb_entries = (s->cs * 8) >> s->h.refcount_order;
    r = read_table(s);
    if (r == 0)
        r = rc_ensure(s, nclusters);
    if (r < 0)
        return r;
    buf = malloc(s->cs);
    if (buf == NULL)
        return -ENOMEM;
    for (uint64_t b = 0; b < s->rt_entries; b++) {
        if (s->rt[b] != 0 && b * s->rb_entries < nclusters) {
            r = read_block(s, b, buf, nclusters);
            if (r < 0)
                return r;
        }
    }
    if (s->end == 0)
        s->end = 1;
    return 0;
}

void
qcow2_rc_free(struct qcow2 *s)
{
    free(s->rc);
    free(s->rt);
    free(s->rb_dirty);
    free(s->pending);
}

/* ---- allocation and freeing ---- */

/* Clusters a flush may have to allocate for refcount metadata once every
 * cluster below END is in use: one per block range that has no block yet,
 * and a larger table (with blocks for it) when the table is too small. */
static uint64_t
reserve_for(const struct qcow2 *s, uint64_t end)
{
    uint64_t per = s->cs / 8;
    uint64_t nblocks = (end + s->rb_entries - 1) / s->rb_entries;
    uint64_t need = RESERVE_MARGIN;

    for (uint64_t b = 0; b < nblocks; b++)
        need += b >= s->rt_entries || s->rt[b] == 0;
    if (nblocks > s->rt_entries) {
        uint64_t table = (nblocks * 2 + per - 1) / per;

        need += table + table / s->rb_entries + 1;
    }
    return need;
}

/* Make the object hold the clusters below END, and the flush's reserve
 * after them unless FOR_FLUSH (the flush is what uses the reserve);
 * extend it ahead by a chunk when it must grow.  0 or -errno. */
static int
ensure_room(struct qcow2 *s, uint64_t end, bool for_flush)
{
    uint64_t chunk =
        MAX(GROW_CLUSTERS * s->cs, s->file->limits.grow_granularity);
    uint64_t need, want;
    int64_t size;

    need = (end + (for_flush ? 0 : s->reserve)) << s->cluster_bits;
    if (need <= s->file_size)
        return 0;
    want = need + chunk;
    if (!for_flush) {
        /* the reserve for everything up to the chunk's end */
        s->reserve = reserve_for(s, want >> s->cluster_bits);
        need = (end + s->reserve) << s->cluster_bits;
        want = need + chunk;
    }
    size = vs_bdev_extend(s->file, need, want);
    if (size == -ENOTSUP) /* an object nobody tracks: a plain file */
        return 0;
    if (size < 0)
        return size == -EFBIG ? -ENOSPC : (int)size;
    s->file_size = (uint64_t)size;
    return 0;
}

/* One free cluster (qcow2_alloc_cluster), FOR_FLUSH when the flush places
 * refcount blocks. */
static uint64_t
alloc_one(struct qcow2 *s, bool for_flush, int *err)
{
    uint64_t i = s->free_hint;

    while (i < s->end && s->rc[i] != 0)
        i++;
    if (((i + 1) << s->cluster_bits) > MAX_HOST_OFFSET) {
        *err = -ENOSPC;
        return 0;
    }
    *err = ensure_room(s, i + 1, for_flush);
    if (*err == 0)
        *err = rc_ensure(s, i);
    if (*err < 0)
        return 0;
    rc_set(s, i, 1);
    s->free_hint = i + 1;
    return i << s->cluster_bits;
}

/* A run at the end (qcow2_alloc_clusters), FOR_FLUSH when the flush relocates
 * the table. */
static uint64_t
alloc_run(struct qcow2 *s, uint64_t n, bool for_flush, int *err)
{
    uint64_t i = s->end;

    if (((i + n) << s->cluster_bits) > MAX_HOST_OFFSET) {
        *err = -ENOSPC;
        return 0;
    }
    *err = ensure_room(s, i + n, for_flush);
    if (*err == 0)
        *err = rc_ensure(s, i + n);
    if (*err < 0)
        return 0;
    for (uint64_t k = 0; k < n; k++)
        rc_set(s, i + k, 1);
    return i << s->cluster_bits;
}

uint64_t
qcow2_alloc_cluster(struct qcow2 *s, int *err)
{
    return alloc_one(s, false, err);
}

uint64_t
qcow2_alloc_clusters(struct qcow2 *s, uint64_t n, int *err)
{
    return alloc_run(s, n, false, err);
}

void
qcow2_rc_release(struct qcow2 *s, uint64_t host)
{
    uint64_t idx = host >> s->cluster_bits;

    if (idx < s->rc_cap && s->rc[idx] > 0)
        rc_set(s, idx, s->rc[idx] - 1);
}

int
qcow2_free_later(struct qcow2 *s, uint64_t host)
{
    if (s->npending == s->pending_cap) {
        size_t cap = s->pending_cap ? s->pending_cap * 2 : 64;
        uint64_t *p = realloc(s->pending, cap * sizeof(*p));

        if (p == NULL)
            return -ENOMEM;
        s->pending = p;
        s->pending_cap = cap;
    }
    s->pending[s->npending++] = host & ~(s->cs - 1);
    return 0;
}

int
qcow2_free_compressed_later(struct qcow2 *s, uint64_t e)
{
    uint64_t off, len;
    int r = 0;

    qcow2_compressed_span(s, e, &off, &len);
    for (uint64_t c = off & ~(s->cs - 1); r == 0 && c < off + len; c += s->cs)
        r = qcow2_free_later(s, c);
    return r;
}

void
qcow2_rc_apply_frees(struct qcow2 *s, const uint64_t *list, size_t n)
{
    for (size_t k = 0; k < n; k++)
        qcow2_rc_release(s, list[k]);
}

/* ---- preparing a flush ---- */

/* Relocate the refcount table to one with room for NEED blocks. */
static int
grow_table(struct qcow2 *s, uint64_t need)
{
    uint64_t per = s->cs / 8;
    uint64_t clusters = (need * 2 + per - 1) / per;
    uint64_t entries = clusters * per, off;
    uint64_t *rt;
    int r = 0;

    if (clusters * s->cs > QCOW2_MAX_RT_BYTES)
        return -ENOSPC;
    rt = realloc(s->rt, entries * sizeof(*rt));
    if (rt == NULL)
        return -ENOMEM;
    memset(rt + s->rt_entries, 0, (entries - s->rt_entries) * sizeof(*rt));
    s->rt = rt;
    off = alloc_run(s, clusters, true, &r);
    if (off == 0)
        return r;
    for (uint64_t c = 0; c < s->h.rt_clusters && r == 0; c++)
        r = qcow2_free_later(s, s->h.rt_offset + c * s->cs);
    s->rt_entries = entries;
    s->h.rt_offset = off;
    s->h.rt_clusters = (uint32_t)clusters;
    s->rt_dirty = true;
    s->rt_moved = true;
    s->header_dirty = true;
    return r;
}

static bool
block_used(const struct qcow2 *s, uint64_t b)
{
    for (uint64_t j = 0; j < s->rb_entries; j++) {
        uint64_t idx = b * s->rb_entries + j;

        if (idx >= s->rc_cap)
            break;
        if (s->rc[idx] != 0)
            return true;
    }
    return false;
}

/* One round: give clusters to dirty blocks that lack one; true if it
 * allocated anything. */
static int
place_blocks(struct qcow2 *s, uint64_t nblocks, bool *changed)
{
    for (uint64_t b = 0; b < nblocks; b++) {
        uint64_t host;
        int r = 0;

        if (!s->rb_dirty[b] || s->rt[b] != 0)
            continue;
        if (!block_used(s, b)) {
            s->rb_dirty[b] = 0;
            continue;
        }
        host = alloc_one(s, true, &r);
        if (host == 0)
            return r;
        s->rt[b] = host;
        s->rt_dirty = true;
        *changed = true;
    }
    return 0;
}

int
qcow2_rc_prepare(struct qcow2 *s)
{
    for (;;) {
        uint64_t nblocks = (s->end + s->rb_entries - 1) / s->rb_entries;
        bool changed = false;
        int r;

        if (nblocks > s->rt_entries) {
            r = grow_table(s, nblocks);
            if (r < 0)
                return r;
            continue;
        }
        r = place_blocks(s, nblocks, &changed);
        if (r < 0)
            return r;
        if (!changed)
            return 0;
    }
}

void
qcow2_rc_encode_block(const struct qcow2 *s, uint64_t b, uint8_t *buf)
{
    memset(buf, 0, s->cs);
    for (uint64_t j = 0; j < s->rb_entries; j++) {
        uint64_t idx = b * s->rb_entries + j;

        if (idx >= s->rc_cap)
            break;
        if (s->rc[idx] != 0)
            rb_put(buf, j, s->h.refcount_order, s->rc[idx]);
    }
}
