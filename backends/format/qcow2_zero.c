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

/* Zero whole guest cluster G; *write set when zeros must be written. */
static int
zap_cluster(struct qcow2 *s, uint64_t g, enum zap_mode mode, bool *write)
{
    uint64_t e, new;
    int r = 0;

    qcow2_wrlock(s);
    while (qcow2_inflight_has(s, g))
        qcow2_inflight_wait(s, g);
    e = qcow2_entry(s, g);
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
    pthread_rwlock_unlock(&s->lock);
    return r;
}

/* Zero [off, off + n) inside one cluster by writing, unless it reads as
 * zeros already. */
static int
zero_partial(struct vs_bdev *bs, uint64_t off, uint64_t n)
{
    struct qcow2 *s = bs->opaque;
    struct iovec iov = {zeros, n};
    enum qcow2_kind k;
    ssize_t w;

    qcow2_rdlock(s);
    k = qcow2_kind(s, qcow2_entry(s, off >> s->cluster_bits));
    qcow2_unlock(s);
    if (k == QCOW2_ZERO_CLUSTER ||
        (k == QCOW2_UNALLOCATED && bs->backing == NULL))
        return 0;
    w = qcow2_pwritev(bs, &iov, 1, off, 0);
    return w < 0 ? (int)w : 0;
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

        if (n < s->cs)
            r = zero_partial(bs, off, MIN(n, size - off));
        else
            r = zap_cluster(s, off >> s->cluster_bits, mode, &write);
        if (r == 0 && write)
            r = zero_partial(bs, off, MIN(n, size - off));
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
