/*
 * The qcow2 write path.
 *
 * Fast path: a guest cluster that is allocated in this layer with
 * refcount 1 (L2 entry normal with the COPIED flag) is overwritten in
 * place: look the entry up under the shared lock, write to the host
 * cluster, done; no metadata changes.  Runs of such clusters that are
 * contiguous in the file are written in one transfer.  Writers of
 * different clusters, and readers, run in parallel.
 *
 * Allocating path (unallocated, zero, compressed or shared clusters):
 *   1. exclusive lock: re-check the entry (another writer may have
 *      allocated the cluster meanwhile: then take the fast path), wait if
 *      another thread is allocating the same guest cluster, make sure an
 *      L2 table exists, pick the target (a new host cluster, or the host
 *      cluster a "zero, allocated" entry already has), mark the guest
 *      cluster in flight; unlock.
 *   2. no lock held for the copy: build the whole cluster in a buffer, the
 *      parts the caller does not write taken from what the cluster reads
 *      as now (the backing's bytes, zeros, or the old data), and write it
 *      to the target.
 *   3. exclusive lock: point the L2 entry at the target (dirty until the
 *      next flush), queue the old host cluster for freeing, clear the in
 *      flight mark and wake waiters.
 * Readers of the cluster during 2 still see the old mapping, which is a
 * valid answer for a read racing a write.  Discard and write_zeroes wait
 * for in-flight clusters too.
 *
 * With subclusters (extended L2 entries) a cluster is written in place
 * where every subcluster the write touches is allocated, and also, with
 * the shared lock only, where the cluster's host cluster is its own and
 * the write needs no filling (see direct_ok): then the subclusters it
 * covers become allocated by an atomic update of the bitmap.  Otherwise
 * the allocating path writes to the cluster's own host cluster when it
 * has one (with refcount 1), else to a new one, and only the bytes from
 * the start of the first touched subcluster to the end of the last: the
 * caller's bytes, and head and tail filled from what the cluster reads as
 * now, but only in subclusters not allocated yet (an allocated one already
 * holds its bytes there, and may be written in place meanwhile).  Then
 * the touched subclusters become allocated.  Only when the old cluster has
 * data that a new host cluster must take along (compressed, or shared
 * with allocated subclusters the write does not cover) is the whole
 * cluster copied, and all of it marked allocated.  With VS_IO_FUA, a write that
 * allocated flushes the metadata before returning.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vs/bdev.h"
#include "vs/util.h"
#include "qcow2.h"

#define IOV_STACK 16
#define MIN(a, b) ((a) < (b) ? (a) : (b))

/* ---- guest clusters in flight ---- */

bool
qcow2_inflight_has(struct qcow2 *s, uint64_t g)
{
    for (size_t i = 0; i < s->ninflight; i++) {
        if (s->inflight[i] == g)
            return true;
    }
    return false;
}

void
qcow2_inflight_wait(struct qcow2 *s, uint64_t g)
{
    pthread_mutex_lock(&s->inflight_lock);
    pthread_rwlock_unlock(&s->lock);
    while (qcow2_inflight_has(s, g))
        pthread_cond_wait(&s->inflight_cond, &s->inflight_lock);
    pthread_mutex_unlock(&s->inflight_lock);
    qcow2_wrlock(s);
}

/* Mark G in flight; write lock held. */
static int
inflight_add(struct qcow2 *s, uint64_t g)
{
    int r = 0;

    pthread_mutex_lock(&s->inflight_lock);
    if (s->ninflight == s->inflight_cap) {
        size_t cap = s->inflight_cap ? s->inflight_cap * 2 : 16;
        uint64_t *p = realloc(s->inflight, cap * sizeof(*p));

        if (p == NULL)
            r = -ENOMEM;
        else {
            s->inflight = p;
            s->inflight_cap = cap;
        }
    }
    if (r == 0)
        s->inflight[s->ninflight++] = g;
    pthread_mutex_unlock(&s->inflight_lock);
    return r;
}

/* Clear G's in-flight mark and wake waiters; write lock held. */
static void
inflight_remove(struct qcow2 *s, uint64_t g)
{
    pthread_mutex_lock(&s->inflight_lock);
    for (size_t i = 0; i < s->ninflight; i++) {
        if (s->inflight[i] == g) {
            s->inflight[i] = s->inflight[--s->ninflight];
            break;
        }
    }
    pthread_cond_broadcast(&s->inflight_cond);
    pthread_mutex_unlock(&s->inflight_lock);
}

/* ---- the allocating path ---- */

/* Whether bytes [in, in + n) of guest cluster G (entry E) can be written
 * to its host cluster as they are. */
static bool
in_place(const struct qcow2 *s, uint64_t g, uint64_t e, uint64_t in, uint64_t n)
{
    return qcow2_kind(s, e) == QCOW2_NORMAL && (e & QCOW2_COPIED) &&
           qcow2_sc_all_alloc(s, e, qcow2_bitmap(s, g), in, n);
}

/* A guest cluster being rewritten: where from and where to. */
struct cow {
    uint64_t g;
    uint64_t in, n;  /* the caller's bytes in the cluster */
    uint64_t old;    /* its entry before */
    uint64_t old_bm; /* and its subcluster bitmap */
    uint64_t target; /* host offset written */
    uint64_t bm;     /* the bitmap after */
    uint64_t from;   /* bytes [from, to) of the cluster are written */
    uint64_t to;
    bool reuse; /* target is old's own host cluster */
};

/* With subclusters: what to write and the bitmap after (see the top). */
static void
cow_plan_sc(const struct qcow2 *s, struct cow *c)
{
    unsigned first = qcow2_sc_index(s, c->in);
    unsigned last = qcow2_sc_index(s, c->in + c->n - 1);
    uint64_t touched = qcow2_sc_mask(first, last), scs = 1ull << s->sc_bits;
    uint64_t have = c->reuse ? c->old_bm : 0; /* allocated in the target */

    if ((c->old & QCOW2_COMPRESSED) ||
        (!c->reuse && (c->old_bm & QCOW2_SC_ALLOC_ALL & ~touched))) {
        c->from = 0;
        c->to = s->cs;
        c->bm = QCOW2_SC_ALLOC_ALL;
        return;
    }
    c->from = (have >> first & 1) ? c->in : first * scs;
    c->to = (have >> last & 1) ? c->in + c->n : (last + 1) * scs;
    /* a new target: the old allocated subclusters all lie in TOUCHED */
    c->bm = (c->old_bm | touched) & ~(touched << 32);
}

/* Step 1.  Returns 1 when the cluster turned out writable in place. */
static int
cow_begin(struct qcow2 *s, struct cow *c)
{
    int r;

    qcow2_wrlock(s);
    for (;;) {
        r = qcow2_l2_load(s, c->g >> s->l2_bits); /* again after a wait */
        if (r < 0) {
            qcow2_wrunlock(s);
            return r;
        }
        c->old = qcow2_entry(s, c->g);
        c->old_bm = qcow2_bitmap(s, c->g);
        if (in_place(s, c->g, c->old, c->in, c->n)) {
            qcow2_wrunlock(s);
            return 1;
        }
        if (!qcow2_inflight_has(s, c->g))
            break;
        qcow2_inflight_wait(s, c->g);
    }
    r = qcow2_l2_ensure(s, c->g);
    c->reuse =
        (c->old & QCOW2_OFFSET_MASK) && (c->old & QCOW2_COPIED) &&
        qcow2_kind(s, c->old) == (s->extl2 ? QCOW2_NORMAL : QCOW2_ZERO_CLUSTER);
    c->target = c->old & QCOW2_OFFSET_MASK;
    c->from = 0;
    c->to = s->cs;
    if (s->extl2)
        cow_plan_sc(s, c);
    if (r == 0 && !c->reuse)
        c->target = qcow2_alloc_cluster(s, &r);
    if (r == 0) {
        r = inflight_add(s, c->g);
        if (r < 0 && !c->reuse)
            qcow2_rc_release(s, c->target);
    }
    qcow2_wrunlock(s);
    return r;
}

/* Step 2's source: [from, to) of the cluster as it reads now, zeros past
 * the virtual size. */
static int
cow_fill(struct qcow2 *s, const struct cow *c, uint8_t *buf, uint64_t from,
         uint64_t to)
{
    uint64_t start = c->g << s->cluster_bits, vend = s->cs;
    int r = 0;

    if (from >= to)
        return 0;
    qcow2_rdlock(s);
    if (s->h.size - start < vend)
        vend = s->h.size - start;
    if (from < vend)
        r = qcow2_read_cluster(s, c->g, c->old, c->old_bm, buf + from, from,
                               MIN(to, vend) - from);
    qcow2_unlock(s);
    if (to > vend)
        memset(buf + (from > vend ? from : vend), 0,
               to - (from > vend ? from : vend));
    return r;
}

/* Step 3. */
static int
cow_finish(struct qcow2 *s, const struct cow *c, int result)
{
    uint64_t old_host = c->old & QCOW2_OFFSET_MASK;
    int r = result;

    qcow2_wrlock(s);
    if (r == 0) /* a clean table may have left the cache meanwhile */
        r = qcow2_l2_load(s, c->g >> s->l2_bits);
    if (r < 0) {
        if (!c->reuse)
            qcow2_rc_release(s, c->target);
    } else {
        if (s->extl2)
            qcow2_set_entry_bm(s, c->g, c->target | QCOW2_COPIED, c->bm);
        else
            qcow2_set_entry(s, c->g, c->target | QCOW2_COPIED);
        if (c->old & QCOW2_COMPRESSED)
            r = qcow2_free_compressed_later(s, c->old);
        else if (old_host != 0 && !c->reuse)
            r = qcow2_free_later(s, old_host);
    }
    inflight_remove(s, c->g);
    qcow2_wrunlock(s);
    return r;
}

/* Step 2 when nothing needs filling (whole subclusters, or allocated
 * ones at the ends): the caller's bytes go straight to the target. */
static int
cow_direct(struct qcow2 *s, const struct cow *c, const struct iovec *iov,
           int iovcnt, size_t skip)
{
    struct iovec stack[IOV_STACK];
    _cleanup_free_ struct iovec *heap = NULL;
    struct iovec *part = stack;
    ssize_t w;
    int cnt;

    if (iovcnt > IOV_STACK) {
        heap = malloc((size_t)iovcnt * sizeof(*heap));
        if (heap == NULL)
            return -ENOMEM;
        part = heap;
    }
    cnt = qcow2_iov_slice(iov, iovcnt, skip, c->n, part);
    w = vs_bdev_pwritev(s->file, part, cnt, c->target + c->in, 0);
    if (w >= 0 && (uint64_t)w != c->n)
        return -EIO;
    return w < 0 ? (int)w : 0;
}

/* Write N bytes at IN of guest cluster G from IOV (at SKIP) by allocating;
 * 1 if the caller should write in place after all. */
static int
cow_write(struct qcow2 *s, uint64_t g, uint64_t in, uint64_t n,
          const struct iovec *iov, int iovcnt, size_t skip)
{
    struct cow c = {.g = g, .in = in, .n = n};
    void *mem = NULL;
    uint8_t *buf;
    int r = cow_begin(s, &c);

    if (r != 0)
        return r;
    if (c.from == in && c.to == in + n)
        return cow_finish(s, &c, cow_direct(s, &c, iov, iovcnt, skip));
    if (posix_memalign(&mem, 4096, s->cs) != 0)
        return cow_finish(s, &c, -ENOMEM);
    buf = mem;
    r = cow_fill(s, &c, buf, c.from, in);
    if (r == 0)
        r = cow_fill(s, &c, buf, in + n, c.to);
    if (r == 0) {
        ssize_t w;

        qcow2_iov_to_buf(iov, iovcnt, skip, buf + in, n);
        w = vs_bdev_pwrite(s->file, buf + c.from, c.to - c.from,
                           c.target + c.from);
        r = w < 0 ? (int)w : 0;
    }
    free(mem);
    return cow_finish(s, &c, r);
}

/* ---- the request ---- */

/* Bytes of the in-place run starting at OFF (entry E), at most LEN. */
static uint64_t
in_place_run(const struct qcow2 *s, uint64_t e, uint64_t off, uint64_t len)
{
    uint64_t in = off & (s->cs - 1), g0 = off >> s->cluster_bits;
    uint64_t n = MIN(len, s->cs - in);

    while (n < len) {
        uint64_t g = g0 + (in + n) / s->cs;
        uint64_t e2 = qcow2_entry(s, g);

        if (!in_place(s, g, e2, 0, MIN(s->cs, len - n)) ||
            (e2 & QCOW2_OFFSET_MASK) !=
                (e & QCOW2_OFFSET_MASK) + ((g - g0) << s->cluster_bits))
            break;
        n += MIN(s->cs, len - n);
    }
    return n;
}

/* With subclusters: whether [in, in + n) of guest cluster G (entry E) can
 * be written to its own host cluster with the shared lock only, setting
 * the allocation bits of the subclusters it covers: nothing to fill (it
 * starts and ends on subcluster boundaries or in allocated subclusters),
 * and no allocating write of G in flight (that one computes G's bitmap
 * from what it saw before and may be filling these subclusters).  Under
 * the shared lock no allocating write can begin meanwhile.  This keeps a
 * 4 KiB write into an allocated cluster off the exclusive lock, which
 * two threads otherwise take turns on for every new subcluster. */
static bool
direct_ok(struct qcow2 *s, uint64_t g, uint64_t e, uint64_t in, uint64_t n)
{
    uint64_t bm = qcow2_bitmap(s, g), scs = 1ull << s->sc_bits;
    unsigned first = qcow2_sc_index(s, in),
             last = qcow2_sc_index(s, in + n - 1);
    bool busy;

    if (!s->extl2 || qcow2_kind(s, e) != QCOW2_NORMAL || !(e & QCOW2_COPIED) ||
        !(s->l1[g >> s->l2_bits] & QCOW2_COPIED))
        return false;
    if (((in & (scs - 1)) != 0 && !(bm >> first & 1)) ||
        (((in + n) & (scs - 1)) != 0 && !(bm >> last & 1)))
        return false;
    pthread_mutex_lock(&s->inflight_lock);
    busy = qcow2_inflight_has(s, g);
    pthread_mutex_unlock(&s->inflight_lock);
    return !busy;
}

/* Mark subclusters MASK of G allocated (and not zero) under the shared
 * lock: other such writers may update the same bitmap at once. */
static void
bits_set(struct qcow2 *s, uint64_t g, uint64_t mask)
{
    uint64_t i = g >> s->l2_bits;
    uint64_t *p = &s->l2bm[i][g & (s->l2_entries - 1)];
    uint64_t old = __atomic_load_n(p, __ATOMIC_RELAXED), new;

    do
        new = (old | mask) & ~(mask << 32);
    while (!__atomic_compare_exchange_n(p, &old, new, true, __ATOMIC_RELEASE,
                                        __ATOMIC_RELAXED));
    __atomic_store_n(&s->l2_dirty[i], QCOW2_L2_DIRTY, __ATOMIC_RELAXED);
}

/* Write from IOV at DONE to OFFSET + DONE: in place (returns bytes
 * written; *meta set when subclusters became allocated) or -EAGAIN when
 * the cluster needs allocating. */
static ssize_t
write_in_place(struct qcow2 *s, const struct iovec *iov, int iovcnt,
               struct iovec *scratch, uint64_t off, uint64_t done, uint64_t len,
               unsigned flags, bool *meta)
{
    uint64_t g = off >> s->cluster_bits, in = off & (s->cs - 1), e, n;
    bool direct = false;
    ssize_t w;
    int cnt;

    qcow2_rdlock(s);
    w = qcow2_l2_load_range(s, off, len);
    if (w < 0) {
        qcow2_unlock(s);
        return w;
    }
    e = qcow2_entry(s, g);
    n = MIN(len, s->cs - in);
    if (in_place(s, g, e, in, n))
        n = in_place_run(s, e, off, len);
    else if (direct_ok(s, g, e, in, n))
        direct = true;
    else {
        qcow2_unlock(s);
        return -EAGAIN;
    }
    cnt = qcow2_iov_slice(iov, iovcnt, done, n, scratch);
    w = vs_bdev_pwritev(s->file, scratch, cnt, (e & QCOW2_OFFSET_MASK) + in,
                        flags);
    if (direct && w >= 0 && (uint64_t)w == n) {
        bits_set(s, g,
                 qcow2_sc_mask(qcow2_sc_index(s, in),
                               qcow2_sc_index(s, in + n - 1)));
        *meta = true;
    }
    qcow2_unlock(s);
    if (w >= 0 && (uint64_t)w != n)
        return -EIO;
    return w;
}

static int
write_all(struct qcow2 *s, const struct iovec *iov, int iovcnt,
          struct iovec *scratch, uint64_t offset, uint64_t total,
          unsigned flags, bool *allocated)
{
    uint64_t done = 0;

    while (done < total) {
        uint64_t off = offset + done, in = off & (s->cs - 1);
        uint64_t n = MIN(s->cs - in, total - done);
        ssize_t w = write_in_place(s, iov, iovcnt, scratch, off, done,
                                   total - done, flags, allocated);
        int r;

        if (w >= 0) {
            done += (uint64_t)w;
            continue;
        }
        if (w != -EAGAIN)
            return (int)w;
        r = cow_write(s, off >> s->cluster_bits, in, n, iov, iovcnt, done);
        if (r < 0)
            return r;
        if (r == 0) {
            *allocated = true;
            done += n;
        }
    }
    return 0;
}

ssize_t
qcow2_pwritev(struct vs_bdev *bs, const struct iovec *iov, int iovcnt,
              uint64_t offset, unsigned flags)
{
    struct qcow2 *s = bs->opaque;
    struct iovec stack[IOV_STACK];
    _cleanup_free_ struct iovec *heap = NULL;
    struct iovec *scratch = stack;
    ssize_t total = qcow2_iov_total(iov, iovcnt);
    bool allocated = false;
    uint64_t size;
    int r;

    if (total <= 0)
        return total;
    qcow2_rdlock(s);
    size = s->h.size;
    qcow2_unlock(s);
    if (offset > size || (uint64_t)total > size - offset)
        return -ENOSPC;
    if (iovcnt > IOV_STACK) {
        heap = malloc((size_t)iovcnt * sizeof(*heap));
        if (heap == NULL)
            return -ENOMEM;
        scratch = heap;
    }
    r = write_all(s, iov, iovcnt, scratch, offset, (uint64_t)total, flags,
                  &allocated);
    if (r == 0 && allocated && (flags & VS_IO_FUA))
        r = vs_bdev_flush(bs);
    else if (r == 0 && allocated)
        r = qcow2_flush_if_full(s);
    return r < 0 ? r : total;
}
