/*
 * Merging a layer away: `rmdir` of a volume V that exactly one volume C is
 * based on (C -> V -> P) removes V without changing what C reads.
 *
 *   into the child: copy every range V owns and C does not up into C's
 *                   layer; then C is pointed at P (qcow2 header, record,
 *                   open chain) and V is removed;
 *   down:           copy every range C's own layer owns down into V's
 *                   object; then C takes that object over (its record
 *                   names V's object and P) and C's old object goes;
 * whichever copies fewer bytes.  Deleting an old snapshot under a live
 * volume with a small delta copies the delta, not the snapshot.  Nothing
 * is ever merged into P: P is a volume of its own and would change.
 *
 * The copy runs in a thread per job, one chunk at a time.  Into the child,
 * each chunk holds C's io_lock exclusively, so a guest write to C cannot
 * interleave with the copy of the same range.  Down, the guest keeps
 * writing to C while its chunks are read (shared lock); a write marks its
 * chunk dirty (vs_volume_mark_dirty) after it completed, the job copies
 * dirty chunks again, and the last ones under the exclusive lock, just
 * before the switch.  V is not opened while its object changes (EBUSY).
 * Both copies are idempotent (they fill what C does not own, or rewrite
 * C's own bytes over V's), so a job interrupted by a crash or a shutdown
 * starts over: V's record carries the MERGE flag, and
 * vs_merge_resume_all restarts it after the next rescan.
 * While a job runs, the three volumes refuse chain changes (EBUSY).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include "fs.h"
#include "vs/log.h"
#include "vs/names.h"

#define CHUNK VS_MERGE_CHUNK
/* Down: copy the dirty chunks again while more than this many are dirty
 * (at most DIRTY_PASSES times); the rest is copied with C's I/O held. */
#define DIRTY_LEFT 8
#define DIRTY_PASSES 4

enum job_state { JOB_RUNNING, JOB_DONE, JOB_FAILED, JOB_PAUSED };

struct vs_job {
    struct vs_job *next;
    struct vs_tree *tree;
    int64_t v_id, c_id, p_id; /* layer, child, parent (0: none) */
    bool down;                /* C's layer into V's object, not V's into C's */
    char label[3 * VS_NAME_MAX + 8];
    _Atomic uint64_t done;
    _Atomic uint64_t total;
    _Atomic int state;
    /* V is gone (set under the tree's write lock): whoever sees that no
     * longer finds the volumes busy, though the thread has yet to end */
    atomic_bool switched;
    int error;
    pthread_t thread;
};

static pthread_mutex_t jobs_lock = PTHREAD_MUTEX_INITIALIZER;
static struct vs_job *jobs;
static atomic_bool jobs_stopping;

/* ---- planning ---- */

/* Bytes with data that LAYER owns in [0, size) and, when OTHER is given,
 * OTHER does not own.  OTHER is asked about each of LAYER's runs piece by
 * piece; asking LAYER again for each piece would make a raw layer scan its
 * whole run each time (SEEK_HOLE walks a file's pages). */
static int64_t
owned_bytes(struct vs_bdev *layer, struct vs_bdev *other, uint64_t size)
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

/* The one volume based on V. */
static struct vs_node *
child_of(struct vs_tree *tree, const struct vs_node *v)
{
    for (size_t i = 0; i < tree->hash_size; i++)
        for (struct vs_node *n = tree->hash[i]; n; n = n->hash_next)
            if (n->cat.kind == VS_NODE_VOLUME && n->cat.backing_id == v->cat.id)
                return n;
    return NULL;
}

/* Done, or as good as done: V is gone and the thread is returning. */
static bool
job_ended(struct vs_job *j)
{
    return atomic_load(&j->state) == JOB_DONE || atomic_load(&j->switched);
}

static bool
job_involves(int64_t id)
{
    bool found = false;

    pthread_mutex_lock(&jobs_lock);
    for (struct vs_job *j = jobs; j && !found; j = j->next)
        found = !job_ended(j) && atomic_load(&j->state) == JOB_RUNNING &&
                (j->v_id == id || j->c_id == id || j->p_id == id);
    pthread_mutex_unlock(&jobs_lock);
    return found;
}

bool
vs_merge_busy(int64_t id)
{
    return id > 0 && job_involves(id);
}

bool
vs_merge_any_running(void)
{
    bool any = false;

    pthread_mutex_lock(&jobs_lock);
    for (struct vs_job *j = jobs; j && !any; j = j->next)
        any = atomic_load(&j->state) == JOB_RUNNING;
    pthread_mutex_unlock(&jobs_lock);
    return any;
}

/* ---- copying ---- */

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

    pthread_rwlock_wrlock(&cv->io_lock);
    ctop = cv->bdev;
    r = ctop && ctop->backing ? copy_range(ctop->backing, ctop, false,
                                           job->p_id != 0, off, len, buf)
                              : -EIO;
    pthread_rwlock_unlock(&cv->io_lock);
    return r;
}

/* Down: clear chunk K's dirty bit, then copy what C's own layer holds in
 * it into V's object (VDST).  C's io_lock is held by the caller. */
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
        if (atomic_load(&jobs_stopping))
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
                pthread_rwlock_rdlock(&c->vol->io_lock);
                r = copy_down_chunk(job, c->vol, vdst, k, buf);
                pthread_rwlock_unlock(&c->vol->io_lock);
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
static int
set_dirty_map(struct vs_volume *cv, uint64_t chunks)
{
    _Atomic uint64_t *map = NULL, *old;

    if (chunks && !(map = calloc((chunks + 63) / 64 + 1, sizeof(*map))))
        return -ENOMEM;
    pthread_rwlock_wrlock(&cv->io_lock);
    old = atomic_exchange(&cv->dirty, map);
    cv->dirty_chunks = chunks;
    pthread_rwlock_unlock(&cv->io_lock);
    free((void *)old);
    return 0;
}

static void
untrack_writes(struct vs_job *job)
{
    struct vs_node *c;

    vs_tree_rdlock(job->tree);
    c = vs_tree_volume(job->tree, job->c_id);
    if (c)
        set_dirty_map(c->vol, 0);
    vs_tree_unlock(job->tree);
}

static int
copy_all(struct vs_job *job, struct vs_bdev *vdst)
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
        free(buf);
        return r; /* the rest under the lock, in finish_down */
    }
    for (uint64_t off = 0; r == 0 && off < size; off += CHUNK) {
        uint64_t len = size - off < CHUNK ? size - off : CHUNK;
        struct vs_node *c;
        if (atomic_load(&jobs_stopping)) {
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

/* ---- switching C onto P and removing V ---- */

static int
switch_child(struct vs_tree *tree, struct vs_node *c, struct vs_node *p)
{
    struct vs_cat_node row = c->cat;
    struct vs_bdev *fresh = NULL, *old;
    int r;

    row.backing_id = p ? p->cat.id : 0;
    pthread_rwlock_wrlock(&c->vol->io_lock);
    r = vs_bdev_flush(c->vol->bdev);
    /* C's image first (for tools reading the backend; our records decide),
     * then its record.  A crash between the two leaves the record on V,
     * whose merge resumes and ends here again, and both name a layer that
     * reads the same; the other order could leave the image naming V once
     * V is removed, and qemu-img could no longer open C. */
    if (r == 0 &&
        (r = vs_bdev_set_backing(c->vol->bdev, p ? p->cat.object : NULL,
                                 p ? p->cat.format : NULL)) < 0)
        vs_log(LOG_ERR,
               "volume '%s': cannot name its new backing layer in "
               "its image: %s",
               c->vol->label, strerror(-r));
    if (r == 0)
        r = vs_tree_store_row(tree, c, &row, p);
    if (r == 0) {
        vs_tree_replace_row(tree, c, &row);
        r = vs_tree_open_chain(tree, c, VS_OPEN_DIRECT, &fresh);
    }
    if (r == 0) {
        old = vs_volume_swap(c->vol, fresh);
        vs_bdev_close(old);
    }
    pthread_rwlock_unlock(&c->vol->io_lock);
    return r;
}

/* Does N's chain pass through LAYER? */
static bool
chain_contains(struct vs_tree *tree, struct vs_node *n, int64_t layer)
{
    for (int depth = 0; n && depth <= VS_CHAIN_MAX; depth++) {
        if (n->cat.id == layer)
            return true;
        n = vs_tree_volume(tree, n->cat.backing_id);
    }
    return false;
}

/* Reopen N's chain: its cached copies of the layers below are stale once a
 * merge wrote into one of them. */
static int
refresh_chain(struct vs_tree *tree, struct vs_node *n)
{
    struct vs_bdev *fresh;
    int r;

    pthread_rwlock_wrlock(&n->vol->io_lock);
    r = vs_bdev_flush(n->vol->bdev);
    if (r == 0)
        r = vs_tree_open_chain(tree, n, VS_OPEN_DIRECT, &fresh);
    if (r == 0)
        vs_bdev_close(vs_volume_swap(n->vol, fresh));
    pthread_rwlock_unlock(&n->vol->io_lock);
    return r;
}

/* Every open chain that reads through C (C's own was reopened already). */
static int
refresh_above(struct vs_tree *tree, struct vs_node *c)
{
    int r = 0;

    for (size_t i = 0; i < tree->hash_size && r == 0; i++)
        for (struct vs_node *n = tree->hash[i]; n && r == 0; n = n->hash_next)
            if (n != c && n->cat.kind == VS_NODE_VOLUME && n->vol->bdev &&
                chain_contains(tree, n, c->cat.id))
                r = refresh_chain(tree, n);
    return r;
}

/* Tell the kernel, outside every lock, that the merged layer's entry and
 * the child's backing link changed (it may hold them for an hour). */
static void
notify_kernel(int64_t image_id, const char *name, int64_t child_id)
{
    if (!vs_session)
        return;
    fuse_lowlevel_notify_inval_entry(vs_session, VS_INO(image_id, VS_PART_DIR),
                                     name, strlen(name));
    fuse_lowlevel_notify_inval_entry(vs_session, VS_INO(child_id, VS_PART_DIR),
                                     VS_PART_BACKING, strlen(VS_PART_BACKING));
}

static int
finish(struct vs_job *job)
{
    struct vs_tree *tree = job->tree;
    struct vs_node *v, *c, *p;
    int r;

    char name[VS_NAME_MAX + 1] = "";
    int64_t image_id = 0;

    vs_tree_wrlock(tree);
    v = vs_tree_volume(tree, job->v_id);
    c = vs_tree_volume(tree, job->c_id);
    p = job->p_id ? vs_tree_volume(tree, job->p_id) : NULL;
    r = v && c && (p || !job->p_id) ? switch_child(tree, c, p) : -ENOENT;
    if (r == 0) {
        snprintf(name, sizeof(name), "%s", v->cat.name);
        image_id = v->cat.parent_id;
        r = vs_tree_remove(tree, v);
    }
    if (r == 0) {
        atomic_store(&job->switched, true);
        r = refresh_above(tree, c);
    }
    vs_tree_unlock(tree);
    if (r == 0)
        notify_kernel(image_id, name, job->c_id);
    return r;
}

/* Down, with C's I/O held off: copy the chunks still dirty, then what C
 * grew past the copy's end. */
static int
copy_rest(struct vs_job *job, struct vs_volume *cv, struct vs_bdev *vdst,
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

/* Down: the layers based on C name its object in their images (for
 * tools reading the backend); name the one C is taking over.  Its bytes
 * are already what C reads, so a crash before C's record moves leaves them
 * naming a layer that reads the same.  Tree locked for writing. */
static int
rename_in_children(struct vs_tree *tree, struct vs_node *c,
                   const struct vs_node *v)
{
    int r = 0;

    for (size_t i = 0; i < tree->hash_size && r == 0; i++) {
        for (struct vs_node *x = tree->hash[i]; x && r == 0; x = x->hash_next) {
            struct vs_bdev *bs;
            if (x->cat.kind != VS_NODE_VOLUME || x->cat.backing_id != c->cat.id)
                continue;
            r = vs_node_bdev(tree, x, &bs);
            if (r < 0)
                break;
            pthread_rwlock_wrlock(&x->vol->io_lock);
            r = vs_bdev_set_backing(x->vol->bdev, v->cat.object, v->cat.format);
            pthread_rwlock_unlock(&x->vol->io_lock);
            if (r < 0)
                vs_log(LOG_ERR,
                       "volume '%s': cannot name its backing's new "
                       "object in its image: %s",
                       x->vol->label, strerror(-r));
        }
    }
    return r;
}

/* Down, at the end: with C's I/O held off, copy what is left, then give C
 * V's object: C's record names it (and V's backing), C's chain is reopened
 * on it, then V's record and C's old object go.  A crash after C's record
 * was written leaves V's record naming the same object: the rescan drops
 * that record but keeps the object, and removes C's old object, which no
 * record names any more. */
static int
finish_down(struct vs_job *job, struct vs_bdev **vdst)
{
    struct vs_tree *tree = job->tree;
    char old_object[VS_OBJECT_MAX + 1], name[VS_NAME_MAX + 1] = "";
    struct vs_node *v, *c, *p;
    struct vs_bdev *fresh = NULL;
    struct vs_cat_node row;
    int64_t image_id = 0;
    void *buf = malloc(CHUNK);
    int r = buf ? 0 : -ENOMEM;

    vs_tree_wrlock(tree);
    v = vs_tree_volume(tree, job->v_id);
    c = vs_tree_volume(tree, job->c_id);
    p = job->p_id ? vs_tree_volume(tree, job->p_id) : NULL;
    if (r == 0 && !(v && c && (p || !job->p_id)))
        r = -ENOENT;
    if (r < 0) {
        vs_tree_unlock(tree);
        free(buf);
        return r;
    }
    pthread_rwlock_wrlock(&c->vol->io_lock);
    r = copy_rest(job, c->vol, *vdst, buf);
    if (r == 0)
        r = vs_bdev_flush(*vdst);
    vs_bdev_close(*vdst); /* C opens that object next, for writing */
    *vdst = NULL;
    if (r == 0)
        r = rename_in_children(tree, c, v);
    row = c->cat;
    snprintf(old_object, sizeof(old_object), "%s", c->cat.object);
    snprintf(row.object, sizeof(row.object), "%s", v->cat.object);
    snprintf(row.format, sizeof(row.format), "%s", v->cat.format);
    row.backing_id = job->p_id;
    if (r == 0)
        r = vs_tree_store_row(tree, c, &row, p);
    if (r == 0) {
        vs_tree_replace_row(tree, c, &row);
        r = vs_tree_open_chain(tree, c, VS_OPEN_DIRECT, &fresh);
        if (r == 0)
            vs_bdev_close(vs_volume_swap(c->vol, fresh));
        else /* the old chain reads the same bytes until the next start */
            vs_log(LOG_ERR, "volume '%s': cannot open its new layer: %s",
                   c->vol->label, strerror(-r));
    }
    free((void *)atomic_exchange(&c->vol->dirty, NULL));
    c->vol->dirty_chunks = 0;
    pthread_rwlock_unlock(&c->vol->io_lock);
    if (r == 0) {
        snprintf(name, sizeof(name), "%s", v->cat.name);
        image_id = v->cat.parent_id;
        vs_tree_forget(tree, v, false);
        atomic_store(&job->switched, true);
        if (vs_object_remove(c->domain->store, old_object) < 0)
            vs_log(LOG_WARNING,
                   "volume '%s': its old object '%s' stays until the next "
                   "start",
                   c->vol->label, old_object);
        r = refresh_above(tree, c);
    }
    vs_tree_unlock(tree);
    free(buf);
    if (r == 0)
        notify_kernel(image_id, name, job->c_id);
    return r;
}

/* Down: V's own layer opened writable (its parents read-only), grown to
 * C's size (a child never is smaller than its backing). */
static int
open_down_target(struct vs_job *job, struct vs_bdev **out)
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

static void *
merge_thread(void *arg)
{
    struct vs_job *job = arg;
    struct vs_bdev *vdst;
    int r = open_down_target(job, &vdst);

    if (r == 0)
        r = copy_all(job, vdst);
    if (r == 0)
        r = job->down ? finish_down(job, &vdst) : finish(job);
    /* after the switch, C's map is gone and C may be in a new job */
    if (job->down && !atomic_load(&job->switched))
        untrack_writes(job);
    vs_bdev_close(vdst);
    job->error = r;
    atomic_store(&job->state, r == 0        ? JOB_DONE
                              : r == -EINTR ? JOB_PAUSED
                                            : JOB_FAILED);
    if (r == 0)
        vs_log(LOG_NOTICE, "merge of '%s' done", job->label);
    else if (r != -EINTR)
        vs_log(LOG_ERR,
               "merge of '%s' failed: %s; it resumes at the next "
               "start",
               job->label, strerror(-r));
    return NULL;
}

/* Free the jobs that ended (their threads have returned or are about to). */
static void
reap_finished(void)
{
    pthread_mutex_lock(&jobs_lock);
    for (struct vs_job **jp = &jobs; *jp;) {
        struct vs_job *j = *jp;
        if (atomic_load(&j->state) == JOB_RUNNING) {
            jp = &j->next;
            continue;
        }
        *jp = j->next;
        pthread_join(j->thread, NULL);
        free(j);
    }
    pthread_mutex_unlock(&jobs_lock);
}

/* ---- starting ---- */

/* Which way copies less: V's bytes that C lacks, up into C, or C's own
 * bytes down into V's object.  Down only when nobody has V open (its
 * object changes).  *UP and *DOWN: the two costs (INT64_MAX: ruled out). */
static int
plan(struct vs_tree *tree, struct vs_node *v, struct vs_node *c, int64_t *up,
     int64_t *down)
{
    struct vs_bdev *cbs, *vbs;
    int r = vs_node_bdev(tree, c, &cbs);

    if (r == 0)
        r = vs_node_bdev(tree, v, &vbs);
    if (r < 0)
        return r;
    *up = owned_bytes(vbs, cbs, atomic_load(&v->vol->size));
    *down = v->vol->open_count == 0
                ? owned_bytes(cbs, NULL, atomic_load(&c->vol->size))
                : INT64_MAX;
    if (*up < 0 || *down < 0)
        return (int)(*up < 0 ? *up : *down);
    return 0;
}

static int
launch(struct vs_tree *tree, struct vs_node *v, struct vs_node *c, bool down)
{
    struct vs_job *job;
    struct vs_bdev *cbs;
    int r = vs_node_bdev(tree, c, &cbs); /* the copy works on C's chain */

    if (r < 0)
        return r;
    reap_finished();
    job = calloc(1, sizeof(*job));
    if (!job)
        return -ENOMEM;
    job->tree = tree;
    job->v_id = v->cat.id;
    job->c_id = c->cat.id;
    job->p_id = v->cat.backing_id;
    job->down = down;
    snprintf(job->label, sizeof(job->label), "%s", v->vol->label);
    atomic_store(&job->total, atomic_load(&c->vol->size));
    atomic_store(&job->state, JOB_RUNNING);
    /* down: C's writes are tracked, and its shrinks refused, from here
     * on; not only once the thread runs (a shrink in between went through) */
    if (down)
        r = set_dirty_map(c->vol,
                          (atomic_load(&job->total) + CHUNK - 1) / CHUNK);
    pthread_mutex_lock(&jobs_lock);
    if (r == 0)
        r = -pthread_create(&job->thread, NULL, merge_thread, job);
    if (r == 0) {
        job->next = jobs;
        jobs = job;
    }
    pthread_mutex_unlock(&jobs_lock);
    if (r < 0 && down)
        set_dirty_map(c->vol, 0);
    if (r < 0)
        free(job);
    return r;
}

/* Mark V's record (durably) with the direction, then start. */
int
vs_merge_start(struct vs_tree *tree, struct vs_node *v)
{
    struct vs_node *c = child_of(tree, v), *p;
    struct vs_cat_node row = v->cat;
    int64_t up, down;
    int r;

    if (!c || v->layers_above != 1)
        return -ENOTEMPTY; /* several clones are based on it */
    if (job_involves(v->cat.id) || job_involves(c->cat.id))
        return -EBUSY;
    p = vs_tree_volume(tree, v->cat.backing_id);
    r = plan(tree, v, c, &up, &down);
    if (r < 0)
        return r;
    row.flags |= down < up ? VS_RECF_MERGE_DOWN : VS_RECF_MERGE_CHILD;
    /* V has a child: a snapshot it came from is complete (else a rescan
     * would take the merged-away layer for a snapshot never finished) */
    row.flags &= ~(uint32_t)VS_RECF_PENDING;
    r = vs_tree_store_row(tree, v, &row, p);
    if (r < 0)
        return r;
    v->cat = row;
    if (down < up)
        vs_log(LOG_NOTICE,
               "volume '%s': merging its child '%s' down into its object, "
               "which '%s' then takes over (%lld bytes down, not %lld up)",
               v->vol->label, c->cat.name, c->cat.name, (long long)down,
               (long long)up);
    else
        vs_log(LOG_NOTICE,
               "volume '%s': merging into its child '%s' (%lld bytes up)",
               v->vol->label, c->cat.name, (long long)up);
    return launch(tree, v, c, down < up);
}

void
vs_merge_resume_all(struct vs_tree *tree)
{
    const uint32_t merging = VS_RECF_MERGE_CHILD | VS_RECF_MERGE_DOWN;

    vs_tree_wrlock(tree);
    for (size_t i = 0; i < tree->hash_size; i++) {
        for (struct vs_node *n = tree->hash[i]; n; n = n->hash_next) {
            struct vs_node *c;
            if (n->cat.kind != VS_NODE_VOLUME || !(n->cat.flags & merging) ||
                !(c = child_of(tree, n)) || job_involves(n->cat.id))
                continue;
            vs_log(LOG_NOTICE, "volume '%s': resuming its merge",
                   n->vol->label);
            if (launch(tree, n, c, n->cat.flags & VS_RECF_MERGE_DOWN) < 0)
                vs_log(LOG_ERR, "volume '%s': cannot resume its merge",
                       n->vol->label);
        }
    }
    vs_tree_unlock(tree);
}

void
vs_merge_stop_all(void)
{
    atomic_store(&jobs_stopping, true);
    pthread_mutex_lock(&jobs_lock);
    while (jobs) {
        struct vs_job *j = jobs;
        jobs = j->next;
        pthread_mutex_unlock(&jobs_lock);
        pthread_join(j->thread, NULL);
        free(j);
        pthread_mutex_lock(&jobs_lock);
    }
    pthread_mutex_unlock(&jobs_lock);
}

/* ---- reporting ---- */

static int
describe(const struct vs_job *j, char *buf, size_t len)
{
    static const char *const states[] = {"running", "done", "failed", "paused"};
    uint64_t done = atomic_load(&j->done), total = atomic_load(&j->total);

    return snprintf(buf, len, "merge\t%s\t%s\t%llu\t%llu\t%s\n", j->label,
                    j->down ? "down" : "child", (unsigned long long)done,
                    (unsigned long long)total, states[atomic_load(&j->state)]);
}

int
vs_merge_describe(int64_t id, char *buf, size_t len)
{
    int n = -ENODATA;

    pthread_mutex_lock(&jobs_lock);
    for (struct vs_job *j = jobs; j; j = j->next)
        if ((j->v_id == id || j->c_id == id) && !job_ended(j)) {
            n = describe(j, buf, len);
            break;
        }
    pthread_mutex_unlock(&jobs_lock);
    return n;
}

int
vs_merge_list(char *buf, size_t len)
{
    size_t used = 0;

    buf[0] = '\0';
    pthread_mutex_lock(&jobs_lock);
    for (struct vs_job *j = jobs; j && used < len; j = j->next) {
        if (job_ended(j))
            continue; /* finished jobs leave the list */
        int n = describe(j, buf + used, len - used);
        used += n > 0 ? (size_t)n : 0;
    }
    pthread_mutex_unlock(&jobs_lock);
    return (int)(used < len ? used : len - 1);
}
