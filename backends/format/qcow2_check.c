/*
 * Before an image is written to, its refcounts are checked against its
 * references, the way `qemu-img check` does: every cluster the image uses
 * (the header, the L1 table, the refcount table and blocks, the L2 tables,
 * the data clusters and the clusters compressed data spans) is counted
 * once per use, and no cluster may be used more often than its refcount
 * says.  A cluster used but counted lower could be handed out again by the
 * allocator, and a cluster used twice (data over a table, two entries on
 * one cluster) would let a guest write overwrite metadata or another
 * guest cluster: both are -EIO.  A refcount higher than the uses is only
 * a leak and is accepted.  The entries with the COPIED flag must have
 * exactly one use.  Costs one 16-bit count per host cluster, once.
 *
 * Every L2 table is read for it: the first ones fill the L2 cache (so the
 * check warms it for the guest), the rest are read into a scratch table,
 * and read again for the second pass (the COPIED flags need every use
 * counted first).
 */
#include <errno.h>
#include <stdlib.h>

#include "vs/util.h"
#include "qcow2.h"

struct uses {
    uint16_t *n;
    uint64_t len;
    uint64_t *t, *bm; /* scratch for a table the cache does not keep */
};

/* The entries of L2 table I into *T: from the cache, or read into the
 * scratch table. */
static int
table(struct qcow2 *s, struct uses *u, uint32_t i, const uint64_t **t)
{
    int r;

    if (s->l2[i] == NULL && s->l2_n < s->l2_max) {
        r = qcow2_l2_load(s, i);
        if (r < 0)
            return r;
    }
    if (s->l2[i] != NULL) {
        *t = s->l2[i];
        return 0;
    }
    *t = u->t;
    return qcow2_l2_read(s, i, u->t, u->bm);
}

/* Count one use of the cluster at HOST; -EIO if it is past the counts. */
static int
use(const struct qcow2 *s, struct uses *u, const char *what, uint64_t host)
{
    uint64_t idx = host >> s->cluster_bits;

    if (idx >= u->len)
        return qcow2_corrupt(s, "%s at %#llx is not refcounted", what,
                             (unsigned long long)host);
    if (u->n[idx] < UINT16_MAX)
        u->n[idx]++;
    return 0;
}

static int
use_run(const struct qcow2 *s, struct uses *u, const char *what, uint64_t off,
        uint64_t bytes)
{
    int r = 0;

    for (uint64_t c = off & ~(s->cs - 1); r == 0 && c < off + bytes; c += s->cs)
        r = use(s, u, what, c);
    return r;
}

static int
use_l2(const struct qcow2 *s, struct uses *u, const uint64_t *t)
{
    int r = 0;

    for (uint64_t j = 0; r == 0 && j < s->l2_entries; j++) {
        uint64_t e = t[j], off, len;

        if (e & QCOW2_COMPRESSED) {
            qcow2_compressed_span(s, e, &off, &len);
            r = use_run(s, u, "compressed data", off, len);
        } else if (e & QCOW2_OFFSET_MASK) {
            r = use(s, u, "data cluster", e & QCOW2_OFFSET_MASK);
        }
    }
    return r;
}

static int
count_uses(struct qcow2 *s, struct uses *u)
{
    const uint64_t *t;
    int r = use(s, u, "header", 0);

    if (r == 0)
        r = use_run(s, u, "L1 table", s->h.l1_offset,
                    (uint64_t)s->h.l1_size * 8);
    if (r == 0)
        r = use_run(s, u, "refcount table", s->h.rt_offset,
                    (uint64_t)s->h.rt_clusters << s->cluster_bits);
    for (uint64_t b = 0; r == 0 && b < s->rt_entries; b++) {
        if (s->rt[b] != 0)
            r = use(s, u, "refcount block", s->rt[b]);
    }
    for (uint32_t i = 0; r == 0 && i < s->h.l1_size; i++) {
        if (s->l1[i] == 0)
            continue;
        r = use(s, u, "L2 table", s->l1[i] & QCOW2_OFFSET_MASK);
        if (r == 0)
            r = table(s, u, i, &t);
        if (r == 0)
            r = use_l2(s, u, t);
    }
    return r;
}

/* Entries flagged COPIED (refcount exactly one) must be used once. */
static int
check_copied(struct qcow2 *s, struct uses *u)
{
    for (uint32_t i = 0; i < s->h.l1_size; i++) {
        const uint64_t *t;
        int r;

        if (s->l1[i] == 0)
            continue;
        r = table(s, u, i, &t);
        if (r < 0)
            return r;
        if ((s->l1[i] & QCOW2_COPIED) &&
            u->n[(s->l1[i] & QCOW2_OFFSET_MASK) >> s->cluster_bits] != 1)
            return qcow2_corrupt(s, "L2 table %u is shared", i);
        for (uint64_t j = 0; j < s->l2_entries; j++) {
            uint64_t host = t[j] & QCOW2_OFFSET_MASK;

            if ((t[j] & QCOW2_COPIED) && !(t[j] & QCOW2_COMPRESSED) &&
                host != 0 && u->n[host >> s->cluster_bits] != 1)
                return qcow2_corrupt(s, "cluster at %#llx is shared",
                                     (unsigned long long)host);
        }
    }
    return 0;
}

int
qcow2_check_refcounts(struct qcow2 *s)
{
    _cleanup_free_ uint16_t *mem = calloc(s->rc_cap, sizeof(uint16_t));
    _cleanup_free_ uint64_t *t = malloc(s->l2_entries * sizeof(*t));
    _cleanup_free_ uint64_t *bm = malloc(s->l2_entries * sizeof(*bm));
    struct uses u = {mem, s->rc_cap, t, s->extl2 ? bm : NULL};
    int r;

    if (u.n == NULL || t == NULL || bm == NULL)
        return -ENOMEM;
    r = count_uses(s, &u);
    if (r == 0)
        r = check_copied(s, &u);
    for (uint64_t i = 0; r == 0 && i < u.len; i++) {
        if (u.n[i] > s->rc[i])
            r = qcow2_corrupt(s, "cluster %llu used %u times, refcount %u",
                              (unsigned long long)i, u.n[i], s->rc[i]);
    }
    return r;
}
