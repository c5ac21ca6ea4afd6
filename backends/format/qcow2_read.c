/*
 * The qcow2 read path, and the shortcut that keeps reads through a deep
 * backing chain from walking every layer.
 *
 * A read first loads the L2 tables its range needs into the cache
 * (qcow2_l2cache.c), then is split at cluster boundaries.  For each guest
 * cluster the L2 entry says: normal -> read the host cluster from the file;
 * zero flag -> zeros; compressed -> inflate; unallocated -> the backing
 * layer's bytes (zeros past the backing's end, or with no backing).
 * Consecutive clusters that map to consecutive host clusters, or that are
 * all zero, become one transfer.
 *
 * The chain shortcut.  Asking the backing layer for an unallocated
 * cluster makes it do the same lookup, and so on down: 32 lookups and 32
 * lock round trips on a chain of depth 32.  But the layers below a layer
 * with a child never change (they are opened read-only), so which layer
 * owns a guest cluster is fixed (a chain layer's L2 cache may drop and
 * reload its tables, so each lookup there takes that layer's lock and
 * loads the table).  At open, each layer lists the run of
 * read-only qcow2 layers below it that share its cluster size (`chain`)
 * and the first layer after that run (`tail`: a raw base, a writable or
 * foreign layer, which is asked normally).  On the first read of an
 * unallocated cluster the owner is found by walking the chain's in-memory
 * tables once and remembered in a byte per guest cluster (`owner`,
 * allocated per L2 range on first use); later reads go straight to the
 * owner layer's own mapping.  Nothing needs invalidating: this layer's
 * own entry is always looked at first, and the layers the cache describes
 * are immutable.  Sizes are honoured on the way: a layer shorter than the
 * offset reads as zeros from its end on, so each chain depth carries the
 * smallest size above and including it (`chain_clip`).
 *
 * Subclusters (extended L2 entries, qcow2_subcluster.c).  A layer with
 * them may own only part of a cluster, so the owner byte means "the first
 * layer that has anything in this cluster": a read of a subcluster starts
 * its walk there and goes on down past layers whose subcluster is
 * unallocated (one step when the cluster is owned whole, as usual).  Runs
 * are found per subcluster (per cluster in layers without them), stepping
 * by the smallest subcluster of the chain (`chain_sc_bits`).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vs/bdev.h"
#include "vs/util.h"
#include "qcow2.h"

#define IOV_STACK 16
#define MIN(a, b) ((a) < (b) ? (a) : (b))

/* A piece of a request: the caller's iovec, sliced. */
struct piece {
    struct iovec *iov;
    int cnt;
    uint64_t off; /* guest offset */
    uint64_t len;
    unsigned flags;
};

/* ---- the chain ---- */

static bool
chain_member(const struct qcow2 *s, const struct vs_bdev *l)
{
    const struct qcow2 *q;

    if (l->drv != &vs_driver_qcow2 || !(l->open_flags & VS_OPEN_RDONLY))
        return false;
    q = l->opaque;
    return q != NULL && q->cluster_bits == s->cluster_bits;
}

int
qcow2_chain_init(struct qcow2 *s)
{
    struct vs_bdev *l = s->bs->backing;
    uint64_t clip = UINT64_MAX;
    int n = 0;

    s->chain_sc_bits = s->cluster_bits;
    for (; l != NULL && n < QCOW2_MAX_CHAIN && chain_member(s, l);
         l = l->backing)
        n++;
    s->tail = l;
    s->chain_len = n;
    if (n == 0) {
        s->tail_clip = UINT64_MAX;
        return 0;
    }
    s->chain = calloc((size_t)n, sizeof(*s->chain));
    s->chain_clip = calloc((size_t)n, sizeof(*s->chain_clip));
    if (s->chain == NULL || s->chain_clip == NULL)
        return -ENOMEM;
    l = s->bs->backing;
    for (int d = 0; d < n; d++, l = l->backing) {
        s->chain[d] = l->opaque;
        s->chain_sc_bits = MIN(s->chain_sc_bits, s->chain[d]->sc_bits);
        clip = MIN(clip, s->chain[d]->h.size);
        s->chain_clip[d] = clip;
    }
    s->tail_clip = clip;
    return 0;
}

void
qcow2_chain_free(struct qcow2 *s)
{
    free(s->chain);
    free(s->chain_clip);
}

/* Whether chain layer Q has anything of its own in guest cluster G
 * (1, 0, or -errno), under Q's lock. */
static int
chain_has_any(struct qcow2 *q, uint64_t g)
{
    int r;

    qcow2_rdlock(q);
    r = qcow2_l2_load(q, g >> q->l2_bits);
    if (r == 0)
        r = qcow2_has_any(q, g);
    qcow2_unlock(q);
    return r;
}

/* The owner code of G (or -errno). */
static int
owner_resolve(const struct qcow2 *s, uint64_t g)
{
    uint64_t off = g << s->cluster_bits;

    for (int d = 0; d < s->chain_len; d++) {
        int r;

        if (off >= s->chain_clip[d])
            return QCOW2_OWNER_NONE;
        r = chain_has_any(s->chain[d], g);
        if (r != 0)
            return r < 0 ? r : d + 1;
    }
    if (s->tail != NULL && off < s->tail_clip)
        return s->chain_len + 1;
    return QCOW2_OWNER_NONE;
}

/* The owner code of guest cluster G, from the cache or resolved (or
 * -errno). */
static int
owner_of(struct qcow2 *s, uint64_t g)
{
    uint8_t **slot = &s->owner[g >> s->l2_bits];
    uint8_t *tab = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    uint64_t j = g & (s->l2_entries - 1);
    int v;

    if (tab != NULL) {
        v = __atomic_load_n(&tab[j], __ATOMIC_RELAXED);
        if (v != QCOW2_OWNER_UNKNOWN)
            return v;
    }
    v = owner_resolve(s, g);
    if (v < 0)
        return v;
    if (tab == NULL) {
        uint8_t *fresh = calloc(1, s->l2_entries), *expected = NULL;

        if (fresh == NULL)
            return v; /* no cache this time */
        if (__atomic_compare_exchange_n(slot, &expected, fresh, false,
                                        __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            tab = fresh;
        else {
            free(fresh);
            tab = expected;
        }
    }
    __atomic_store_n(&tab[j], (uint8_t)v, __ATOMIC_RELAXED);
    return v;
}

/* ---- reading one piece ---- */

/* Shorten P to end at CLIP (zeroing what lies past it); false when
 * nothing is left to read. */
static bool
piece_clip(struct piece *p, uint64_t clip)
{
    uint64_t avail = p->off < clip ? MIN(p->len, clip - p->off) : 0;

    if (avail < p->len) {
        qcow2_iov_zero(p->iov, p->cnt, avail, p->len - avail);
        p->cnt = qcow2_iov_slice(p->iov, p->cnt, 0, avail, p->iov);
        p->len = avail;
    }
    return avail > 0;
}

/* Read P from layer L through the generic layer, zeros past its end. */
static int
read_delegate(struct vs_bdev *l, struct piece *p, uint64_t clip)
{
    ssize_t n;

    if (!piece_clip(p, clip))
        return 0;
    n = vs_bdev_preadv(l, p->iov, p->cnt, p->off, p->flags);
    if (n < 0)
        return (int)n;
    if ((uint64_t)n < p->len)
        qcow2_iov_zero(p->iov, p->cnt, (size_t)n, p->len - (uint64_t)n);
    return 0;
}

/* Read P as layer Q's own entry E says, P being of kind K there (not
 * unallocated). */
static int
read_mapped(struct qcow2 *q, enum qcow2_kind k, uint64_t e, struct piece *p,
            uint64_t clip)
{
    uint64_t in = p->off & (q->cs - 1);
    _cleanup_free_ uint8_t *tmp = NULL;
    ssize_t n;
    int r;

    if (!piece_clip(p, clip))
        return 0;
    switch (k) {
    case QCOW2_NORMAL:
        n = vs_bdev_preadv(q->file, p->iov, p->cnt,
                           (e & QCOW2_OFFSET_MASK) + in, p->flags);
        if (n < 0)
            return (int)n;
        if ((uint64_t)n < p->len) /* past the end of the file */
            qcow2_iov_zero(p->iov, p->cnt, (size_t)n, p->len - (uint64_t)n);
        return 0;
    case QCOW2_COMPRESSED_CLUSTER:
        tmp = malloc(q->cs);
        if (tmp == NULL)
            return -ENOMEM;
        r = qcow2_read_compressed(q, e, tmp);
        if (r < 0)
            return r;
        qcow2_iov_from_buf(p->iov, p->cnt, 0, tmp + in, p->len);
        return 0;
    default:
        qcow2_iov_zero(p->iov, p->cnt, 0, p->len);
        return 0;
    }
}

/* Where a stretch of guest bytes below this layer reads from: layer Q's
 * mapping (kind K, entry E), or layer L through the generic layer, or
 * zeros (neither); CLIP is where that layer's data ends. */
struct src {
    struct qcow2 *q;
    struct vs_bdev *l;
    enum qcow2_kind k;
    uint64_t e;
    uint64_t clip;
};

/* What guest offset OFF reads as in chain layer Q: its kind, and its
 * entry into *E; under Q's lock.  -errno when the table cannot be read. */
static int
chain_kind(struct qcow2 *q, uint64_t off, uint64_t *e)
{
    uint64_t g = off >> q->cluster_bits;
    int r;

    qcow2_rdlock(q);
    r = qcow2_l2_load(q, g >> q->l2_bits);
    if (r == 0) {
        r = (int)qcow2_kind_at(q, off);
        *e = qcow2_entry(q, g);
    }
    qcow2_unlock(q);
    return r;
}

/* Resolve the source of guest offset OFF below this layer (chain set):
 * 0 or -errno. */
static int
chain_src(struct qcow2 *s, uint64_t off, struct src *a)
{
    uint64_t g = off >> s->cluster_bits;
    int o = owner_of(s, g);

    memset(a, 0, sizeof(*a));
    if (o < 0)
        return o;
    if (o == QCOW2_OWNER_NONE)
        return 0;
    for (int d = o - 1; d < s->chain_len; d++) {
        struct qcow2 *q = s->chain[d];
        int k;

        if (off >= s->chain_clip[d])
            return 0;
        k = chain_kind(q, off, &a->e);
        if (k < 0)
            return k;
        a->k = (enum qcow2_kind)k;
        if (a->k != QCOW2_UNALLOCATED) {
            a->q = q;
            a->clip = s->chain_clip[d];
            return 0;
        }
    }
    a->e = 0;
    if (s->tail != NULL && off < s->tail_clip) {
        a->l = s->tail;
        a->clip = s->tail_clip;
    }
    return 0;
}

/* Whether source B at offset OFF continues source A that began at A0. */
static bool
src_continues(const struct src *a, uint64_t a0, const struct src *b,
              uint64_t off)
{
    if (a->q != b->q || a->l != b->l || a->k != b->k)
        return false;
    if (a->q == NULL)
        return true;
    switch (a->k) {
    case QCOW2_NORMAL:
        return (b->e & QCOW2_OFFSET_MASK) + (off & (a->q->cs - 1)) ==
               (a->e & QCOW2_OFFSET_MASK) + (a0 & (a->q->cs - 1)) + (off - a0);
    case QCOW2_ZERO_CLUSTER:
        return true;
    default: /* compressed: within its cluster */
        return off >> a->q->cluster_bits == a0 >> a->q->cluster_bits;
    }
}

/* Bytes from OFF, at most LEN, that read from the same source as OFF
 * (returned in A), below this layer, into *N: 0 or -errno. */
static int
chain_run(struct qcow2 *s, uint64_t off, uint64_t len, struct src *a,
          uint64_t *pn)
{
    uint64_t step = 1ull << s->chain_sc_bits;
    uint64_t n = MIN(len, step - (off & (step - 1)));
    struct src b;
    int r = chain_src(s, off, a);

    while (r == 0 && n < len) {
        r = chain_src(s, off + n, &b);
        if (r < 0 || !src_continues(a, off, &b, off + n))
            break;
        n += MIN(step, len - n);
    }
    *pn = n;
    return r;
}

static int
read_src(const struct src *a, struct piece *p)
{
    if (a->q != NULL)
        return read_mapped(a->q, a->k, a->e, p, a->clip);
    if (a->l != NULL)
        return read_delegate(a->l, p, a->clip);
    qcow2_iov_zero(p->iov, p->cnt, 0, p->len);
    return 0;
}

/* Read P from below this layer. */
static int
read_backing(struct qcow2 *s, struct piece *p)
{
    struct iovec stack[IOV_STACK];
    _cleanup_free_ struct iovec *heap = NULL;
    struct iovec *sub = stack;
    uint64_t done = 0;

    if (s->bs->backing == NULL) {
        qcow2_iov_zero(p->iov, p->cnt, 0, p->len);
        return 0;
    }
    if (s->chain_len == 0)
        return read_delegate(s->bs->backing, p, UINT64_MAX);
    if (p->cnt > IOV_STACK) {
        heap = malloc((size_t)p->cnt * sizeof(*heap));
        if (heap == NULL)
            return -ENOMEM;
        sub = heap;
    }
    while (done < p->len) {
        struct src a;
        uint64_t n;
        int r = chain_run(s, p->off + done, p->len - done, &a, &n);
        struct piece q = {sub, 0, p->off + done, n, p->flags};

        if (r < 0)
            return r;
        if (done == 0 && n == p->len) /* one source: the common case */
            return read_src(&a, p);
        q.cnt = qcow2_iov_slice(p->iov, p->cnt, done, n, sub);
        r = read_src(&a, &q);
        if (r < 0)
            return r;
        done += n;
    }
    return 0;
}

/* Read P, which this layer maps as K (entry E), or from below it. */
static int
read_piece(struct qcow2 *s, enum qcow2_kind k, uint64_t e, struct piece *p)
{
    return k == QCOW2_UNALLOCATED ? read_backing(s, p)
                                  : read_mapped(s, k, e, p, UINT64_MAX);
}

/* Bytes from OFF to the end of the run of this layer's own subclusters
 * (clusters, without subclusters) it starts, at most LEN; its kind into
 * *K and the entry of its first cluster into *E. */
static uint64_t
run_length(const struct qcow2 *s, uint64_t off, uint64_t len,
           enum qcow2_kind *k, uint64_t *e)
{
    uint64_t unit = 1ull << s->sc_bits, g0 = off >> s->cluster_bits;
    uint64_t n = MIN(len, unit - (off & (unit - 1)));
    uint64_t host0;

    *e = qcow2_entry(s, g0);
    *k = qcow2_kind_at(s, off);
    host0 = (*e & QCOW2_OFFSET_MASK) + (off & (s->cs - 1));
    if (*k == QCOW2_COMPRESSED_CLUSTER)
        return MIN(len, s->cs - (off & (s->cs - 1)));
    while (n < len) {
        uint64_t at = off + n, g = at >> s->cluster_bits;
        uint64_t e2 = qcow2_entry(s, g);

        if (qcow2_sc_kind(s, e2, qcow2_bitmap(s, g), qcow2_sc_index(s, at)) !=
            *k)
            break;
        if (*k == QCOW2_NORMAL &&
            (e2 & QCOW2_OFFSET_MASK) + (at & (s->cs - 1)) != host0 + n)
            break;
        n += MIN(unit, len - n);
    }
    return n;
}

int
qcow2_read_cluster(struct qcow2 *s, uint64_t g, uint64_t e, uint64_t bm,
                   uint8_t *buf, uint64_t in, uint64_t len)
{
    uint64_t unit = 1ull << s->sc_bits, done = 0;

    while (done < len) {
        uint64_t at = in + done, n = MIN(len - done, unit - (at & (unit - 1)));
        enum qcow2_kind k = qcow2_sc_kind(s, e, bm, qcow2_sc_index(s, at));
        struct iovec iov;
        struct piece p;
        int r;

        while (done + n < len &&
               qcow2_sc_kind(s, e, bm, qcow2_sc_index(s, at + n)) == k)
            n += MIN(unit, len - done - n);
        iov = (struct iovec){buf + done, n};
        p = (struct piece){&iov, 1, (g << s->cluster_bits) + at, n, 0};
        r = read_piece(s, k, e, &p);
        if (r < 0)
            return r;
        done += n;
    }
    return 0;
}

static int
read_locked(struct qcow2 *s, const struct iovec *iov, int iovcnt,
            struct iovec *scratch, uint64_t offset, uint64_t len,
            unsigned flags)
{
    uint64_t done = 0;

    while (done < len) {
        uint64_t off = offset + done, e;
        enum qcow2_kind k;
        uint64_t n = run_length(s, off, len - done, &k, &e);
        struct piece p = {scratch, 0, off, n, flags};
        int r;

        p.cnt = qcow2_iov_slice(iov, iovcnt, done, n, scratch);
        r = read_piece(s, k, e, &p);
        if (r < 0)
            return r;
        done += n;
    }
    return 0;
}

ssize_t
qcow2_preadv(struct vs_bdev *bs, const struct iovec *iov, int iovcnt,
             uint64_t offset, unsigned flags)
{
    struct qcow2 *s = bs->opaque;
    struct iovec stack[IOV_STACK];
    _cleanup_free_ struct iovec *heap = NULL;
    struct iovec *scratch = stack;
    ssize_t total = qcow2_iov_total(iov, iovcnt);
    uint64_t len;
    int r;

    if (total < 0)
        return total;
    if (iovcnt > IOV_STACK) {
        heap = malloc((size_t)iovcnt * sizeof(*heap));
        if (heap == NULL)
            return -ENOMEM;
        scratch = heap;
    }
    qcow2_rdlock(s);
    if (offset >= s->h.size) {
        qcow2_unlock(s);
        return 0;
    }
    len = MIN((uint64_t)total, s->h.size - offset);
    r = qcow2_l2_load_range(s, offset, len);
    if (r == 0)
        r = read_locked(s, iov, iovcnt, scratch, offset, len, flags);
    qcow2_unlock(s);
    return r < 0 ? r : (ssize_t)len;
}
