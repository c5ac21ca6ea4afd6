/*
 * The cluster mapping of a qcow2 image: the L1 table, held in memory for
 * the life of the open image, and its L2 tables, read here when the L2
 * cache (qcow2_l2cache.c) misses.
 *
 * Loading validates every entry, because the image is untrusted: L1
 * entries point cluster-aligned inside the file, past the header, with no
 * reserved bit set and no two at the same table (checked at open); L2
 * entries, checked whenever a table is read, have no reserved bit, normal
 * and zero-with-offset entries point cluster-aligned inside the file past
 * the header, compressed entries start inside the file.  With extended
 * L2 entries (16 bytes: the entry, then the subcluster bitmap) the bitmap
 * goes to a parallel array and is checked too (qcow2_subcluster.c), so
 * the code that only looks at entries sees the same 64-bit words either
 * way.  After that, a lookup is an array index and needs no check.
 *
 * Changes (a new L2 table, an entry, a larger L1) are made in memory under
 * the write lock and marked dirty; qcow2_flush.c writes them out.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vs/bdev.h"
#include "vs/util.h"
#include "qcow2.h"

void
qcow2_compressed_span(const struct qcow2 *s, uint64_t e, uint64_t *off,
                      uint64_t *len)
{
    uint32_t x = 62 - (s->cluster_bits - 8);
    uint64_t sectors = ((e >> x) & ((1ull << (s->cluster_bits - 8)) - 1)) + 1;

    *off = e & ((1ull << x) - 1);
    *len = sectors * 512 - (*off & 511);
}

/* Grow the per-L1-index arrays to N entries, zeroing the new part. */
static int
arrays_grow(struct qcow2 *s, uint32_t n)
{
    uint64_t *l1;
    uint64_t **l2;
    uint8_t *dirty, *ref;
    uint8_t **owner;
    uint64_t **bm;

    if (n <= s->l1_cap)
        return 0;
    ref = realloc(s->l2_ref, n);
    if (ref != NULL)
        s->l2_ref = ref;
    bm = realloc(s->l2bm, n * sizeof(*bm));
    if (bm != NULL)
        s->l2bm = bm;
    l1 = realloc(s->l1, n * sizeof(*l1));
    if (l1 != NULL)
        s->l1 = l1;
    l2 = realloc(s->l2, n * sizeof(*l2));
    if (l2 != NULL)
        s->l2 = l2;
    dirty = realloc(s->l2_dirty, n);
    if (dirty != NULL)
        s->l2_dirty = dirty;
    owner = realloc(s->owner, n * sizeof(*owner));
    if (owner != NULL)
        s->owner = owner;
    if (l1 == NULL || l2 == NULL || dirty == NULL || owner == NULL ||
        bm == NULL || ref == NULL)
        return -ENOMEM;
    memset(s->l2_ref + s->l1_cap, 0, n - s->l1_cap);
    memset(s->l2bm + s->l1_cap, 0, (n - s->l1_cap) * sizeof(*bm));
    memset(s->l1 + s->l1_cap, 0, (n - s->l1_cap) * sizeof(*l1));
    memset(s->l2 + s->l1_cap, 0, (n - s->l1_cap) * sizeof(*l2));
    memset(s->l2_dirty + s->l1_cap, 0, n - s->l1_cap);
    memset(s->owner + s->l1_cap, 0, (n - s->l1_cap) * sizeof(*owner));
    s->l1_cap = n;
    return 0;
}

/* 0 if a table cluster at OFF is aligned, past the header, in the file. */
static int
check_cluster(const struct qcow2 *s, const char *what, uint64_t off)
{
    if ((off & (s->cs - 1)) != 0 || off < s->cs || off > s->file_size - s->cs ||
        s->file_size < s->cs)
        return qcow2_corrupt(s, "%s at %#llx is outside the file", what,
                             (unsigned long long)off);
    return 0;
}

static int
cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

static int
read_l1(struct qcow2 *s)
{
    uint32_t n = s->h.l1_size;
    _cleanup_free_ uint8_t *buf = malloc((size_t)n * 8 + 1);
    ssize_t got;

    if (buf == NULL)
        return -ENOMEM;
    got = vs_bdev_pread(s->file, buf, (size_t)n * 8, s->h.l1_offset);
    if (got < 0)
        return (int)got;
    if ((size_t)got < (size_t)n * 8)
        return qcow2_corrupt(s, "L1 table truncated");
    for (uint32_t i = 0; i < n; i++) {
        uint64_t e = qcow2_be64(buf + 8 * i);
        int r;

        if ((e & QCOW2_L1_RESERVED) || ((e & QCOW2_OFFSET_MASK) == 0 && e != 0))
            return qcow2_corrupt(s, "L1 entry %u invalid (%#llx)", i,
                                 (unsigned long long)e);
        r = e ? check_cluster(s, "L2 table", e & QCOW2_OFFSET_MASK) : 0;
        if (r < 0)
            return r;
        s->l1[i] = e;
    }
    return 0;
}

/* No two L1 entries may share an L2 table. */
static int
check_l1_unique(struct qcow2 *s)
{
    uint32_t n = 0;
    _cleanup_free_ uint64_t *offs = malloc((s->h.l1_size + 1) * 8ull);

    if (offs == NULL)
        return -ENOMEM;
    for (uint32_t i = 0; i < s->h.l1_size; i++) {
        if (s->l1[i] != 0)
            offs[n++] = s->l1[i] & QCOW2_OFFSET_MASK;
    }
    qsort(offs, n, sizeof(*offs), cmp_u64);
    for (uint32_t i = 1; i < n; i++) {
        if (offs[i] == offs[i - 1])
            return qcow2_corrupt(s,
                                 "two L1 entries share the L2 table "
                                 "at %#llx",
                                 (unsigned long long)offs[i]);
    }
    return 0;
}

/* Where host offsets must end: the file's size at open, or, in a
 * writable image, past every cluster allocated since (a plain file grows
 * by being written, and file_size does not follow it: refcount.c). */
static uint64_t
host_limit(const struct qcow2 *s)
{
    uint64_t used = s->ro ? 0 : s->end << s->cluster_bits;

    return used > s->file_size ? used : s->file_size;
}

static int
check_l2_entry(const struct qcow2 *s, uint64_t e)
{
    uint64_t off = e & QCOW2_OFFSET_MASK, limit = host_limit(s);

    if (e & QCOW2_COMPRESSED) {
        uint64_t len;

        qcow2_compressed_span(s, e, &off, &len);
        if ((e & QCOW2_COPIED) || off < s->cs || off >= limit)
            return -EIO;
        return 0;
    }
    /* bit 0, the zero flag, is reserved with extended entries too */
    if ((e & QCOW2_L2_RESERVED) ||
        ((s->h.version < 3 || s->extl2) && (e & QCOW2_ZERO)))
        return -EIO;
    if (off == 0)
        return (e & QCOW2_COPIED) && !(e & QCOW2_ZERO) ? -EIO : 0;
    if ((off & (s->cs - 1)) != 0 || off < s->cs || off >= limit)
        return -EIO;
    return 0;
}

/* Entry J of the raw table BUF into T (and its bitmap into BM). */
static int
parse_entry(struct qcow2 *s, const uint8_t *buf, uint64_t j, uint64_t *t,
            uint64_t *bm)
{
    uint64_t e = qcow2_be64(buf + (s->extl2 ? 16 : 8) * j);

    t[j] = e;
    if (s->extl2)
        bm[j] = qcow2_be64(buf + 16 * j + 8);
    if (check_l2_entry(s, e) < 0)
        return -EIO;
    return s->extl2 ? qcow2_sc_check(s, e, bm[j]) : 0;
}

int
qcow2_l2_read(struct qcow2 *s, uint32_t i, uint64_t *t, uint64_t *bm)
{
    uint64_t off = s->l1[i] & QCOW2_OFFSET_MASK;
    _cleanup_free_ uint8_t *buf = malloc(s->cs);
    ssize_t got;

    if (buf == NULL)
        return -ENOMEM;
    got = vs_bdev_pread(s->file, buf, s->cs, off);
    if (got < 0)
        return (int)got;
    if ((uint64_t)got < s->cs)
        return qcow2_corrupt(s, "L2 table at %#llx truncated",
                             (unsigned long long)off);
    for (uint64_t j = 0; j < s->l2_entries; j++) {
        if (parse_entry(s, buf, j, t, bm) < 0)
            return qcow2_corrupt(s,
                                 "L2 entry %llu of table %u invalid "
                                 "(%#llx, bitmap %#llx)",
                                 (unsigned long long)j, i,
                                 (unsigned long long)t[j],
                                 (unsigned long long)(bm ? bm[j] : 0));
    }
    return 0;
}

int
qcow2_tables_load(struct qcow2 *s)
{
    int r = arrays_grow(s, s->h.l1_size > 0 ? s->h.l1_size : 1);

    if (r == 0 && s->h.l1_size > 0)
        r = read_l1(s);
    if (r == 0)
        r = check_l1_unique(s);
    return r;
}

void
qcow2_tables_free(struct qcow2 *s)
{
    for (uint32_t i = 0; i < s->l1_cap; i++) {
        free(s->l2[i]);
        free(s->l2bm[i]);
        free(s->owner[i]);
    }
    free(s->l1);
    free(s->l2);
    free(s->l2bm);
    free(s->l2_dirty);
    free(s->l2_ref);
    free(s->owner);
}

int
qcow2_l2_ensure(struct qcow2 *s, uint64_t g)
{
    uint64_t i = g >> s->l2_bits;
    uint64_t *t, *bm = NULL, host;
    int err = 0;

    if (i >= s->h.l1_size)
        return -EIO;
    if (s->l1[i] != 0) {
        err = qcow2_l2_load(s, i);
        if (err < 0)
            return err;
        if (s->l1[i] & QCOW2_COPIED)
            return 0;
        if (qcow2_rc_get(s, s->l1[i] & QCOW2_OFFSET_MASK) != 1)
            return qcow2_corrupt(s, "L2 table %llu is shared",
                                 (unsigned long long)i);
        s->l1[i] |= QCOW2_COPIED;
        s->l1_dirty = true;
        return 0;
    }
    t = calloc(s->l2_entries, sizeof(*t));
    if (s->extl2)
        bm = calloc(s->l2_entries, sizeof(*bm));
    if (t == NULL || (s->extl2 && bm == NULL)) {
        free(t);
        free(bm);
        return -ENOMEM;
    }
    host = qcow2_alloc_cluster(s, &err);
    if (host == 0) {
        free(t);
        free(bm);
        return err;
    }
    err = qcow2_l2_insert_new(s, (uint32_t)i, t, bm);
    if (err < 0) {
        qcow2_rc_release(s, host);
        free(t);
        free(bm);
        return err;
    }
    s->l1[i] = host | QCOW2_COPIED;
    s->l1_dirty = true;
    return 0;
}

void
qcow2_set_entry(struct qcow2 *s, uint64_t g, uint64_t e)
{
    uint64_t i = g >> s->l2_bits;

    s->l2[i][g & (s->l2_entries - 1)] = e;
    s->l2_dirty[i] = QCOW2_L2_DIRTY;
}

void
qcow2_set_entry_bm(struct qcow2 *s, uint64_t g, uint64_t e, uint64_t bm)
{
    uint64_t i = g >> s->l2_bits;

    s->l2[i][g & (s->l2_entries - 1)] = e;
    s->l2bm[i][g & (s->l2_entries - 1)] = bm;
    s->l2_dirty[i] = QCOW2_L2_DIRTY;
}

int
qcow2_l1_grow(struct qcow2 *s, uint32_t n)
{
    uint64_t old_clusters = ((uint64_t)s->h.l1_size * 8 + s->cs - 1) / s->cs;
    uint64_t new_clusters = ((uint64_t)n * 8 + s->cs - 1) / s->cs;
    uint64_t off;
    int r;

    if (n <= s->h.l1_size)
        return 0;
    if ((uint64_t)n * 8 > QCOW2_MAX_L1_BYTES)
        return -EFBIG;
    r = arrays_grow(s, n);
    if (r < 0)
        return r;
    if (new_clusters > old_clusters || s->h.l1_offset == 0) {
        off = qcow2_alloc_clusters(s, new_clusters, &r);
        if (off == 0)
            return r;
        for (uint64_t c = 0; c < old_clusters && s->h.l1_offset != 0; c++) {
            r = qcow2_free_later(s, s->h.l1_offset + c * s->cs);
            if (r < 0)
                return r;
        }
        s->h.l1_offset = off;
    }
    s->h.l1_size = n;
    s->l1_dirty = true;
    s->header_dirty = true;
    return 0;
}
