/*
 * The copy of a merge (merge.c has the design).  Up: V's bytes that C's
 * layer lacks, one chunk at a time with C's I/O held off.  Down: C's own
 * layer into V's object while C's guest keeps writing; its writes mark
 * chunks dirty, which are copied again, the last ones by merge_copy_rest
 * with C's I/O held off, just before the switch.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "merge_job.h"

/* Bytes with data that LAYER owns in [0, size) and, when OTHER is given,
 * OTHER does not own.  OTHER is asked about each of LAYER's runs piece by
 * piece; asking LAYER again for each piece would make a raw layer scan its
 * whole run each time (SEEK_HOLE walks a file's pages). */
int64_t
merge_owned_bytes(struct vs_bdev *layer, struct vs_bdev *other, uint64_t size)
{
    int64_t sum = 0;

    for (uint64_t off = 0, n; off < size; off += n) {
        int st = vs_bdev_block_status(layer, off, size - off, &n);
        if (st < 0 || n == 0)
            return st < 0 ? st : -EIO;
        if (!(st & VS_BS_ALLOCATED) || !(st & VS_BS_DATA))
            continue;
        if (!other) {
            sum += (int64_t)n;
            continue;
        }
        for (uint64_t o = off, on; o < off + n; o += on) {
            int ost = vs_bdev_block_status(other, o, off + n - o, &on);
            if (ost < 0 || on == 0)
                return ost < 0 ? ost : -EIO;
            if (!(ost & VS_BS_ALLOCATED))
                sum += (int64_t)on;
        }
    }
    return sum;
}

/* Copy [off, off+len) of SRC, whose status there is ST, into DST. */
static int
copy_piece(struct vs_bdev *src, struct vs_bdev *dst, int st, bool zeros_matter,
           uint64_t off, uint64_t len, void *buf)
{
    ssize_t got;

    if (st & VS_BS_ZERO)
        return zeros_matter ? vs_bdev_write_zeroes(dst, off, len, 0) : 0;
    got = vs_bdev_pread(src, buf, len, off);
    if (got >= 0)
        got = vs_bdev_pwrite(dst, buf, (size_t)got, off);
    return got < 0 ? (int)got : 0;
}

/* Copy [off, off+len) (at most a chunk) of layer SRC into DST where SRC
 * owns it (and, unless OVER, only where DST does not own it yet, asked
 * piece by piece within each of SRC's runs, as in owned_bytes).  SRC reads
 * through its chain, but its status is its own layer's. */
static int
copy_range(struct vs_bdev *src, struct vs_bdev *dst, bool over,
           bool zeros_matter, uint64_t off, uint64_t len, void *buf)
{
    for (uint64_t n; len > 0; off += n, len -= n) {
        int st = vs_bdev_block_status(src, off, len, &n), r = 0;
        if (st < 0 || n == 0)
            return st < 0 ? st : -EIO;
        if (!(st & VS_BS_ALLOCATED))
            continue;
        for (uint64_t o = off, on; r == 0 && o < off + n; o += on) {
            int dst_st = 0;
            on = off + n - o;
            if (!over && (dst_st = vs_bdev_block_status(dst, o, on, &on)) < 0)
                return dst_st;
            if (on == 0)
                return -EIO;
            if (!(dst_st & VS_BS_ALLOCATED))
                r = copy_piece(src, dst, st, zeros_matter, o, on, buf);
        }
        if (r < 0)
            return r;
    }
    return 0;
}

/* Into the child: one chunk, with C's I/O held off; V's layer is the
 * backing of C's top. */
static int
copy_up_chunk(struct vs_job *job, struct vs_node *c, uint64_t off, uint64_t len,
              void *buf)
{
    struct vs_volume *cv = c->vol;
    struct vs_bdev *ctop;
    int r;

    vs_gate_close(&cv->io_gate);
    ctop = cv->bdev;
    r = ctop && ctop->backing ? copy_range(ctop->backing, ctop, false,
                                           job->p_id != 0, off, len, buf)
                              : -EIO;
    vs_gate_open(&cv->io_gate);
    return r;
}

/* Down: clear chunk K's dirty bit, then copy what C's own layer holds in
 * it into V's object (VDST).  C's io_gate is closed by the caller. */
static int
copy_down_chunk(struct vs_job *job, struct vs_volume *cv, struct vs_bdev *vdst,
                uint64_t k, void *buf)
{
    uint64_t size = atomic_load(&job->total), off = k * CHUNK;
    _Atomic uint64_t *map = atomic_load(&cv->dirty);

    if (map)
        atomic_fetch_and(&map[k / 64], ~(1ull << (k % 64)));
    if (!cv->bdev)
        return -EIO;
    return copy_range(cv->bdev, vdst, true, true, off,
                      size - off < CHUNK ? size - off : CHUNK, buf);
}

/* Run FN over C's chunks [0, total) that are dirty (all of them when ALL),
 * under C's shared I/O lock, one at a time.  *LEFT: dirty ones seen. */
static int
copy_pass(struct vs_job *job, struct vs_bdev *vdst, bool all, void *buf,
          uint64_t *left)
{
    uint64_t chunks = (atomic_load(&job->total) + CHUNK - 1) / CHUNK;
    int r = 0;

    *left = 0;
    for (uint64_t k = 0; r == 0 && k < chunks; k++) {
        struct vs_node *c;
        if (merge_stopping())
            return -EINTR;
        vs_tree_rdlock(job->tree);
        c = vs_tree_volume(job->tree, job->c_id);
        if (!c) {
            r = -ENOENT;
        } else {
            _Atomic uint64_t *map = atomic_load(&c->vol->dirty);
            bool dirty =
                all || (map && (atomic_load(&map[k / 64]) >> (k % 64) & 1));
            if (dirty) {
                vs_gate_enter(&c->vol->io_gate);
                r = copy_down_chunk(job, c->vol, vdst, k, buf);
                vs_gate_leave(&c->vol->io_gate);
                ++*left;
            }
        }
        vs_tree_unlock(job->tree);
        if (all)
            atomic_store(&job->done, (k + 1) * CHUNK < atomic_load(&job->total)
                                         ? (k + 1) * CHUNK
                                         : atomic_load(&job->total));
    }
    return r;
}

/* Start (CHUNKS > 0) or stop C's dirty map (C's I/O held off meanwhile).
 * While it exists, C's shrinks are refused too. */
int
merge_set_dirty_map(struct vs_volume *cv, uint64_t chunks)
{
    _Atomic uint64_t *map = NULL, *old;

    if (chunks && !(map = calloc((chunks + 63) / 64 + 1, sizeof(*map))))
        return -ENOMEM;
    vs_gate_close(&cv->io_gate);
    old = atomic_exchange(&cv->dirty, map);
    cv->dirty_chunks = chunks;
    vs_gate_open(&cv->io_gate);
    free((void *)old);
    return 0;
}

void
merge_untrack_writes(struct vs_job *job)
{
    struct vs_node *c;

    vs_tree_rdlock(job->tree);
    c = vs_tree_volume(job->tree, job->c_id);
    if (c)
        merge_set_dirty_map(c->vol, 0);
    vs_tree_unlock(job->tree);
}

int
merge_copy_all(struct vs_job *job, struct vs_bdev *vdst)
{
    struct vs_tree *tree = job->tree;
    uint64_t size = atomic_load(&job->total), left = 0;
    void *buf = malloc(CHUNK);
    int r = buf ? 0 : -ENOMEM;

    if (r == 0 && job->down) {
        r = copy_pass(job, vdst, true, buf, &left); /* tracked since launch */
        for (int pass = 0; r == 0 && pass < DIRTY_PASSES; pass++) {
            r = copy_pass(job, vdst, false, buf, &left);
            if (left <= DIRTY_LEFT)
                break;
        }
        /* make the bulk durable now, not with the guest's I/O held off:
         * the flush under the lock then only writes the last chunks */
        if (r == 0)
            r = vs_bdev_flush(vdst);
        free(buf);
        return r; /* the rest under the lock, in finish_down */
    }
    for (uint64_t off = 0; r == 0 && off < size; off += CHUNK) {
        uint64_t len = size - off < CHUNK ? size - off : CHUNK;
        struct vs_node *c;
        if (merge_stopping()) {
            r = -EINTR;
            break;
        }
        vs_tree_rdlock(tree);
        c = vs_tree_volume(tree, job->c_id);
        r = c ? copy_up_chunk(job, c, off, len, buf) : -ENOENT;
        vs_tree_unlock(tree);
        atomic_store(&job->done, off + len);
    }
    free(buf);
    return r;
}

/* Down, with C's I/O held off: copy the chunks still dirty, then what C
 * grew past the copy's end. */
int
merge_copy_rest(struct vs_job *job, struct vs_volume *cv, struct vs_bdev *vdst,
                void *buf)
{
    uint64_t total = atomic_load(&job->total), size = atomic_load(&cv->size);
    uint64_t chunks = (total + CHUNK - 1) / CHUNK;
    _Atomic uint64_t *map = atomic_load(&cv->dirty);
    int64_t have = vs_bdev_size(vdst);
    int r = have < 0 ? (int)have : 0;

    if (r == 0 && size > (uint64_t)have)
        r = vs_bdev_truncate(vdst, size);
    for (uint64_t k = 0; r == 0 && map && k < chunks; k++)
        if (atomic_load(&map[k / 64]) >> (k % 64) & 1)
            r = copy_down_chunk(job, cv, vdst, k, buf);
    if (r == 0 && size > total)
        r = copy_range(cv->bdev, vdst, true, true, total, size - total, buf);
    return r;
}

/* Down: V's own layer opened writable (its parents read-only), grown to
 * C's size (a child never is smaller than its backing). */
int
merge_open_down_target(struct vs_job *job, struct vs_bdev **out)
{
    struct vs_node *v;
    int64_t have;
    int r;

    *out = NULL;
    if (!job->down)
        return 0;
    vs_tree_rdlock(job->tree);
    v = vs_tree_volume(job->tree, job->v_id);
    r = v ? vs_tree_open_chain(job->tree, v, 0, out) : -ENOENT;
    vs_tree_unlock(job->tree);
    have = r == 0 ? vs_bdev_size(*out) : 0;
    if (have < 0)
        r = (int)have;
    if (r == 0 && atomic_load(&job->total) > (uint64_t)have)
        r = vs_bdev_truncate(*out, atomic_load(&job->total));
    return r;
}
