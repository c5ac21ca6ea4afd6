/*
 * discard and write_zeroes for qcow2.
 *
 * Whole guest clusters change only their L2 entry (metadata, written at
 * the next flush):
 *   - discard, and write_zeroes with VS_IO_MAY_UNMAP: the host cluster is
 *     released (queued for freeing after the flush, its space punched out
 *     of the file now) and the entry becomes "zero" when a backing layer
 *     could otherwise show through, else "unallocated";
 *   - write_zeroes without MAY_UNMAP keeps an allocated cluster allocated
 *     and sets its zero flag ("zero, allocated"), so a later write reuses
 *     it in place of allocating.
 * Partial clusters are zeroed by writing zeros through the write path,
 * unless they already read as zeros (zero flag, or unallocated with no
 * backing).  Version 2 images have no zero flag: there write_zeroes is
 * -ENOTSUP (the generic layer writes zeros) and discard over a backing
 * writes zeros.  Clusters being allocated are waited for.
 *
 * With subclusters (extended L2 entries) the zero state is per subcluster:
 * whole clusters get all 32 zero bits (or none, with no backing) in the
 * bitmap, and whole subclusters inside a cluster have their allocation
 * bits cleared and, over a backing, their zero bits set; the host cluster
 * stays (a later write there fills it in place), except that discard
 * (MAY_UNMAP) punches the subclusters out of the file and gives the host
 * cluster back once none of it is allocated.  Only the bytes that do not
 * fill a whole subcluster are written as zeros; compressed clusters have
 * no subclusters and are written through as before.
 */
#include <errno.h>
#include <stdlib.h>

#include "vs/bdev.h"
#include "qcow2.h"

#define MIN(a, b) ((a) < (b) ? (a) : (b))

enum zap_mode {
    ZAP_UNMAP, /* release the host cluster */
    ZAP_KEEP,  /* keep it, with the zero flag */
};

/* A source of zeros for partial clusters (never written; .bss). */
static uint8_t zeros[1u << QCOW2_MAX_CLUSTER_BITS];

/* With subclusters: the entry (returned) and bitmap (*bm) a whole
 * cluster with entry E gets in MODE. */
static uint64_t
zap_entry_sc(const struct qcow2 *s, uint64_t e, enum zap_mode mode,
             uint64_t *bm)
{
    uint64_t host = e & QCOW2_OFFSET_MASK;
    bool owned = (e & QCOW2_COPIED) && host != 0 && !(e & QCOW2_COMPRESSED);

    *bm = s->bs->backing != NULL ? QCOW2_SC_ZERO_ALL : 0;
    if (mode == ZAP_KEEP && owned) {
        *bm = QCOW2_SC_ZERO_ALL;
        return host | QCOW2_COPIED;
    }
    return 0;
}

/* The entry guest cluster G gets in MODE, given its entry E. */
static uint64_t
zap_entry(const struct qcow2 *s, uint64_t e, enum zap_mode mode)
{
    enum qcow2_kind k = qcow2_kind(s, e);
    uint64_t host = e & QCOW2_OFFSET_MASK;
    bool owned = (e & QCOW2_COPIED) && host != 0 &&
                 (k == QCOW2_NORMAL || k == QCOW2_ZERO_CLUSTER);

    if (s->h.version < 3)
        return 0;
    if (mode == ZAP_KEEP && owned)
        return host | QCOW2_COPIED | QCOW2_ZERO;
    return s->bs->backing != NULL ? QCOW2_ZERO : 0;
}

/* Release what entry OLD held once NEW replaces it; write lock held. */
static int
zap_release(struct qcow2 *s, uint64_t old, uint64_t new)
{
    uint64_t host = old & QCOW2_OFFSET_MASK;

    if (old & QCOW2_COMPRESSED)
        return qcow2_free_compressed_later(s, old);
    if (host == 0 || (new &QCOW2_OFFSET_MASK) == host)
        return 0;
    if (qcow2_rc_get(s, host) == 1)
        (void)vs_bdev_discard(s->file, host, s->cs); /* best effort */
    return qcow2_free_later(s, host);
}

/* Punch the subclusters MASK of the host cluster at HOST out of the
 * file: they read from elsewhere now. */
static void
zap_punch(struct qcow2 *s, uint64_t host, uint64_t mask)
{
    uint64_t scs = 1ull << s->sc_bits;

    for (unsigned i = 0; i < QCOW2_SUBCLUSTERS; i++) {
        unsigned j = i;

        if (!(mask >> i & 1))
            continue;
        while (j + 1 < QCOW2_SUBCLUSTERS && (mask >> (j + 1) & 1))
            j++;
        (void)vs_bdev_discard(s->file, host + i * scs, (j - i + 1) * scs);
        i = j;
    }
}

/* Zero whole guest cluster G; *write set when zeros must be written. */
static int
zap_cluster(struct qcow2 *s, uint64_t g, enum zap_mode mode, bool *write)
{
    uint64_t e, new;
    int r = 0;

    qcow2_wrlock(s);
    while (qcow2_inflight_has(s, g))
        qcow2_inflight_wait(s, g);
    r = qcow2_l2_load(s, g >> s->l2_bits);
    if (r < 0) {
        qcow2_wrunlock(s);
        return r;
    }
    e = qcow2_entry(s, g);
    if (s->extl2) {
        uint64_t bm, old_bm = qcow2_bitmap(s, g);

        new = zap_entry_sc(s, e, mode, &bm);
        if (new != e || bm != old_bm) {
            r = new != 0 || bm != 0 ? qcow2_l2_ensure(s, g) : 0;
            if (r == 0 && s->l2[g >> s->l2_bits] != NULL)
                qcow2_set_entry_bm(s, g, new, bm);
            if (r == 0)
                r = zap_release(s, e, new);
        }
        qcow2_wrunlock(s);
        return r;
    }
    new = zap_entry(s, e, mode);
    if (s->h.version < 3 && s->bs->backing != NULL) {
        *write = true;
    } else if (new != e) {
        r = new != 0 ? qcow2_l2_ensure(s, g) : 0;
        if (r == 0) {
            qcow2_set_entry(s, g, new);
            r = zap_release(s, e, new);
        }
    }
    qcow2_wrunlock(s);
    return r;
}

/* Zero [off, off + n) inside one cluster by writing, unless every
 * subcluster of it reads as zeros already. */
static int
zero_partial(struct vs_bdev *bs, uint64_t off, uint64_t n)
{
    struct qcow2 *s = bs->opaque;
    struct iovec iov = {zeros, n};
    enum qcow2_kind k;
    bool zero = true;
    ssize_t w;
    int r;

    qcow2_rdlock(s);
    r = qcow2_l2_load_range(s, off, n);
    if (r < 0) {
        qcow2_unlock(s);
        return r;
    }
    for (uint64_t at = off; zero && at < off + n;
         at = (at | ((1ull << s->sc_bits) - 1)) + 1) {
        k = qcow2_kind_at(s, at);
        zero = k == QCOW2_ZERO_CLUSTER ||
               (k == QCOW2_UNALLOCATED && bs->backing == NULL);
    }
    qcow2_unlock(s);
    if (zero)
        return 0;
    w = qcow2_pwritev(bs, &iov, 1, off, 0);
    return w < 0 ? (int)w : 0;
}

/* With subclusters: clear subclusters MASK (allocation bits) of guest
 * cluster G to zeros; *write set when they must be written instead. */
static int
zap_subclusters(struct qcow2 *s, uint64_t g, uint64_t mask, enum zap_mode mode,
                bool *write)
{
    uint64_t e, bm, nbm, host;
    int r = 0;

    qcow2_wrlock(s);
    while (qcow2_inflight_has(s, g))
        qcow2_inflight_wait(s, g);
    r = qcow2_l2_load(s, g >> s->l2_bits);
    if (r < 0) {
        qcow2_wrunlock(s);
        return r;
    }
    e = qcow2_entry(s, g);
    bm = qcow2_bitmap(s, g);
    host = e & QCOW2_OFFSET_MASK;
    nbm = (bm & ~mask) | (s->bs->backing != NULL ? mask << 32 : 0);
    if (e & QCOW2_COMPRESSED) {
        *write = true; /* no subclusters: rewrite it as a normal cluster */
    } else if (nbm != bm) {
        uint64_t ne = e;

        if (mode == ZAP_UNMAP && (nbm & QCOW2_SC_ALLOC_ALL) == 0)
            ne = 0; /* nothing allocated is left: give the cluster back */
        r = qcow2_l2_ensure(s, g);
        if (r == 0) {
            qcow2_set_entry_bm(s, g, ne, nbm);
            r = zap_release(s, e, ne);
        }
        if (r == 0 && ne != 0 && mode == ZAP_UNMAP &&
            qcow2_rc_get(s, host) == 1)
            zap_punch(s, host, mask); /* best effort */
    }
    qcow2_wrunlock(s);
    return r;
}

/* With subclusters: zero [off, off + n) inside one cluster; the bytes
 * up to VN of it lie inside the virtual size.  Whole subclusters change
 * their bits, the rest is written. */
static int
zero_in_cluster(struct vs_bdev *bs, uint64_t off, uint64_t n, uint64_t vn,
                enum zap_mode mode)
{
    struct qcow2 *s = bs->opaque;
    uint64_t scs = 1ull << s->sc_bits, end = off + n;
    uint64_t a = (off + scs - 1) & ~(scs - 1), b = end & ~(scs - 1);
    uint64_t vend = off + vn;
    bool write = false;
    int r = 0;

    if (a >= b)
        return zero_partial(bs, off, vn);
    if (off < a)
        r = zero_partial(bs, off, MIN(a, vend) - off);
    if (r == 0)
        r = zap_subclusters(
            s, off >> s->cluster_bits,
            qcow2_sc_mask(qcow2_sc_index(s, a), qcow2_sc_index(s, b - 1)), mode,
            &write);
    if (r == 0 && write && a < vend)
        r = zero_partial(bs, a, MIN(b, vend) - a);
    if (r == 0 && b < vend)
        r = zero_partial(bs, b, vend - b);
    return r;
}

static int
zero_range(struct vs_bdev *bs, uint64_t off, uint64_t len, enum zap_mode mode)
{
    struct qcow2 *s = bs->opaque;
    uint64_t size, end;
    int r = 0;

    qcow2_rdlock(s);
    size = s->h.size;
    qcow2_unlock(s);
    if (off >= size)
        return 0;
    end = off + MIN(len, size - off);
    if (end == size) /* the last cluster's tail past the size is free */
        end = (size + s->cs - 1) & ~(s->cs - 1);
    while (r == 0 && off < end) {
        uint64_t in = off & (s->cs - 1), n = MIN(s->cs - in, end - off);
        bool write = false;

        if (n < s->cs && s->extl2)
            r = zero_in_cluster(bs, off, n, MIN(n, size - off), mode);
        else if (n < s->cs)
            r = zero_partial(bs, off, MIN(n, size - off));
        else
            r = zap_cluster(s, off >> s->cluster_bits, mode, &write);
        if (r == 0 && write)
            r = zero_partial(bs, off, MIN(n, size - off));
        if (r == 0)
            r = qcow2_flush_if_full(s); /* a long discard dirties tables */
        off += n;
    }
    return r;
}

int
qcow2_discard(struct vs_bdev *bs, uint64_t offset, uint64_t length)
{
    return zero_range(bs, offset, length, ZAP_UNMAP);
}

int
qcow2_write_zeroes(struct vs_bdev *bs, uint64_t offset, uint64_t length,
                   unsigned flags)
{
    struct qcow2 *s = bs->opaque;

    if (s->h.version < 3)
        return -ENOTSUP;
    return zero_range(bs, offset, length,
                      (flags & VS_IO_MAY_UNMAP) ? ZAP_UNMAP : ZAP_KEEP);
}
