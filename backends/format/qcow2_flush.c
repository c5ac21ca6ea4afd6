/*
 * Writing a qcow2 image's dirty metadata out, in an order that keeps the
 * image consistent on storage after a crash at any point.
 *
 * Writes of guest data go to the file at once; everything else (L2
 * tables, the L1 table, refcount blocks, the refcount table, the header)
 * changes only in memory until a flush.  A flush takes a snapshot of what
 * is dirty under the write lock (encoding each table into a buffer and
 * clearing its dirty mark, so I/O can go on meanwhile) and then writes it
 * with a file flush (fdatasync) between the stages:
 *
 *   1. guest data                 (already written: just made durable)
 *   2. refcount blocks            new clusters are counted before anything
 *                                 points at them
 *   2a. the refcount table        only once the blocks it points at are
 *                                 durable (found by tests/crashsim: a table
 *                                 entry naming a lost new block made the
 *                                 image unopenable)
 *   2b. the header, if the refcount table moved, so the new table is in
 *      force before any table relies on a block only it points at
 *   3. L2 tables                  their data clusters are durable (1) and
 *                                 counted (2)
 *   4. the L1 table               its L2 tables are durable (3)
 *   5. the header, if the size or the L1 table changed
 *   6. deferred frees: only now, with every unlinking durable, do the
 *      counts of clusters the mapping no longer uses drop (in memory); a
 *      second round writes those blocks out.
 *
 * A crash between stages therefore leaves at worst clusters counted but
 * unused (leaks, which `qemu-img check` reports as harmless), never a
 * reference to an uncounted cluster or to a cluster holding other data,
 * and never a reference to a table not yet written.  No dirty or lazy-
 * refcount bit is used.  The L2 cache (qcow2_l2cache.c) keeps a snapshotted
 * table in the "writing" state until its write has succeeded, and only
 * then lets it be evicted: a table dropped earlier would be read back
 * from the file as it was before.  Stages with nothing to write are skipped,
 * and a flush with nothing dirty costs nothing here (the generic layer still
 * flushes the file).  On a failed write the snapshot's tables are marked
 * dirty again, so a later flush retries them (the generic layer reports
 * the failure sticky anyway).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vs/bdev.h"
#include "qcow2.h"

enum meta_kind { META_RB, META_RT, META_L2, META_L1 };

struct meta_write {
    enum meta_kind kind;
    uint64_t idx; /* block or L1 index */
    uint64_t off;
    size_t len;
    uint8_t *buf;
};

struct batch {
    struct meta_write *w;
    size_t n, cap;
    size_t n_rc, n_l2; /* writes [0, n_rc) are refcounts, then L2s, L1 */
    bool rt_moved;
    struct qcow2_header rt_header;
    bool header;
    struct qcow2_header hdr;
    uint64_t *frees;
    size_t nfrees;
};

static void
batch_free(struct batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        free(b->w[i].buf);
    free(b->w);
    free(b->frees);
}

/* Append a write of LEN bytes at OFF; its buffer is returned zeroed. */
static uint8_t *
batch_add(struct batch *b, enum meta_kind kind, uint64_t idx, uint64_t off,
          size_t len)
{
    struct meta_write *w;

    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 16;

        w = realloc(b->w, cap * sizeof(*w));
        if (w == NULL)
            return NULL;
        b->w = w;
        b->cap = cap;
    }
    w = &b->w[b->n];
    w->buf = calloc(1, len);
    if (w->buf == NULL)
        return NULL;
    w->kind = kind;
    w->idx = idx;
    w->off = off;
    w->len = len;
    b->n++;
    return w->buf;
}

static int
snap_refcounts(struct qcow2 *s, struct batch *b)
{
    uint64_t nb = s->rb_cap < s->rt_entries ? s->rb_cap : s->rt_entries;
    uint8_t *buf;

    for (uint64_t i = 0; i < nb; i++) {
        if (!s->rb_dirty[i] || s->rt[i] == 0)
            continue;
        buf = batch_add(b, META_RB, i, s->rt[i], s->cs);
        if (buf == NULL)
            return -ENOMEM;
        qcow2_rc_encode_block(s, i, buf);
        s->rb_dirty[i] = 0;
    }
    if (s->rt_dirty) {
        buf = batch_add(b, META_RT, 0, s->h.rt_offset,
                        (size_t)s->h.rt_clusters << s->cluster_bits);
        if (buf == NULL)
            return -ENOMEM;
        for (uint64_t i = 0; i < s->rt_entries; i++)
            qcow2_put64(buf + 8 * i, s->rt[i]);
        s->rt_dirty = false;
    }
    if (s->rt_moved) {
        b->rt_moved = true;
        b->rt_header = s->disk;
        b->rt_header.rt_offset = s->h.rt_offset;
        b->rt_header.rt_clusters = s->h.rt_clusters;
        s->rt_moved = false;
    }
    return 0;
}

static int
snap_tables(struct qcow2 *s, struct batch *b)
{
    uint8_t *buf;

    for (uint32_t i = 0; i < s->h.l1_size; i++) {
        if (s->l2_dirty[i] != QCOW2_L2_DIRTY || s->l2[i] == NULL)
            continue;
        buf = batch_add(b, META_L2, i, s->l1[i] & QCOW2_OFFSET_MASK, s->cs);
        if (buf == NULL)
            return -ENOMEM;
        for (uint64_t j = 0; j < s->l2_entries && !s->extl2; j++)
            qcow2_put64(buf + 8 * j, s->l2[i][j]);
        for (uint64_t j = 0; j < s->l2_entries && s->extl2; j++) {
            qcow2_put64(buf + 16 * j, s->l2[i][j]);
            qcow2_put64(buf + 16 * j + 8, s->l2bm[i][j]);
        }
        s->l2_dirty[i] = QCOW2_L2_WRITING;
    }
    b->n_l2 = b->n - b->n_rc;
    if (s->l1_dirty && s->h.l1_size > 0) {
        buf =
            batch_add(b, META_L1, 0, s->h.l1_offset, (size_t)s->h.l1_size * 8);
        if (buf == NULL)
            return -ENOMEM;
        for (uint32_t i = 0; i < s->h.l1_size; i++)
            qcow2_put64(buf + 8 * i, s->l1[i]);
    }
    s->l1_dirty = false;
    return 0;
}

/* Put back what a failed flush did not write. */
static void
snap_undo(struct qcow2 *s, struct batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        switch (b->w[i].kind) {
        case META_RB:
            s->rb_dirty[b->w[i].idx] = 1;
            break;
        case META_RT:
            s->rt_dirty = true;
            break;
        case META_L2:
            s->l2_dirty[b->w[i].idx] = QCOW2_L2_DIRTY;
            break;
        case META_L1:
            s->l1_dirty = true;
            break;
        }
    }
    s->rt_moved |= b->rt_moved;
    s->header_dirty |= b->header;
    for (size_t i = 0; i < b->nfrees; i++) {
        if (qcow2_free_later(s, b->frees[i]) < 0)
            break; /* out of memory: the cluster leaks, harmlessly */
    }
}

/* Snapshot everything dirty into B; write lock held. */
static int
snapshot(struct qcow2 *s, struct batch *b)
{
    int r = qcow2_rc_prepare(s);

    if (r == 0)
        r = snap_refcounts(s, b);
    b->n_rc = b->n;
    if (r == 0)
        r = snap_tables(s, b);
    if (r < 0)
        return r;
    if (s->header_dirty) {
        b->header = true;
        b->hdr = s->h;
        s->header_dirty = false;
    }
    b->frees = s->pending;
    b->nfrees = s->npending;
    s->pending = NULL;
    s->npending = s->pending_cap = 0;
    return 0;
}

static int
write_range(struct qcow2 *s, struct batch *b, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++) {
        ssize_t n =
            vs_bdev_pwrite(s->file, b->w[i].buf, b->w[i].len, b->w[i].off);

        if (n < 0)
            return (int)n;
    }
    return from < to ? vs_bdev_flush(s->file) : 0;
}

/* Write the entries of KIND in [from, to), then flush if any was written. */
static int
write_kind(struct qcow2 *s, struct batch *b, size_t from, size_t to, int kind)
{
    bool any = false;

    for (size_t i = from; i < to; i++) {
        ssize_t n;
        if ((int)b->w[i].kind != kind)
            continue;
        n = vs_bdev_pwrite(s->file, b->w[i].buf, b->w[i].len, b->w[i].off);
        if (n < 0)
            return (int)n;
        any = true;
    }
    return any ? vs_bdev_flush(s->file) : 0;
}

static int
write_batch(struct qcow2 *s, struct batch *b)
{
    size_t l1_start = b->n_rc + b->n_l2;
    int r = vs_bdev_flush(s->file); /* stage 1: the data */

    if (r == 0)
        r = write_kind(s, b, 0, b->n_rc, META_RB);
    if (r == 0)
        r = write_kind(s, b, 0, b->n_rc, META_RT);
    if (r == 0 && b->rt_moved) {
        r = qcow2_header_write(s, &b->rt_header);
        if (r == 0)
            r = vs_bdev_flush(s->file);
        if (r == 0)
            s->disk = b->rt_header;
    }
    if (r == 0)
        r = write_range(s, b, b->n_rc, l1_start);
    if (r == 0)
        r = write_range(s, b, l1_start, b->n);
    if (r == 0 && b->header) {
        r = qcow2_header_write(s, &b->hdr);
        if (r == 0)
            s->disk = b->hdr;
    }
    if (r == 0 && b->nfrees > 0 && b->header)
        r = vs_bdev_flush(s->file);
    return r;
}

/* The L2 tables of B reached the file: clean, unless changed since. */
static void
tables_written(struct qcow2 *s, const struct batch *b)
{
    bool any = false;

    for (size_t i = 0; i < b->n; i++) {
        uint8_t *st = &s->l2_dirty[b->w[i].idx];

        if (b->w[i].kind != META_L2)
            continue;
        if (*st == QCOW2_L2_WRITING)
            *st = QCOW2_L2_CLEAN;
        any = true;
    }
    if (any)
        qcow2_l2_written(s);
}

/* One round; *again is set when frees were applied (their counts are
 * dirty now and need another round). */
static int
flush_round(struct qcow2 *s, bool *again)
{
    struct batch b = {0};
    int r;

    qcow2_wrlock(s);
    r = snapshot(s, &b);
    if (r < 0) {
        snap_undo(s, &b);
        pthread_rwlock_unlock(&s->lock);
        batch_free(&b);
        return r;
    }
    pthread_rwlock_unlock(&s->lock);
    if (b.n > 0 || b.header || b.rt_moved || b.nfrees > 0)
        r = write_batch(s, &b);
    qcow2_wrlock(s);
    if (r < 0) {
        snap_undo(s, &b);
    } else {
        tables_written(s, &b);
        qcow2_rc_apply_frees(s, b.frees, b.nfrees);
    }
    qcow2_wrunlock(s);
    *again = r == 0 && b.nfrees > 0;
    batch_free(&b);
    return r;
}

int
qcow2_meta_flush(struct qcow2 *s)
{
    bool again = true;
    int r = 0;

    if (s->ro)
        return 0;
    for (int round = 0; r == 0 && again && round < 3; round++)
        r = flush_round(s, &again);
    return r;
}

int
qcow2_flush_if_full(struct qcow2 *s)
{
    if (!qcow2_l2_needs_flush(s))
        return 0;
    /* a flush or a size change under way (maybe this thread's) will do */
    if (pthread_mutex_trylock(&s->flush_lock) != 0)
        return 0;
    (void)qcow2_meta_flush(s); /* a failure stays dirty for the next one */
    pthread_mutex_unlock(&s->flush_lock);
    return 0;
}
