/*
 * Merging a layer away: `rmdir` of a volume V that exactly one volume C is
 * based on (C -> V -> P) removes V without changing what C reads.
 *
 *   into the child:  copy every range V owns and C does not into C;
 *   into the parent: copy every range V owns into P (only when V is P's
 *                    one child, so nobody else sees P change);
 * whichever copies fewer bytes.  Then C is pointed at P (record, catalog,
 * qcow2 header, open chain) and V is removed.
 *
 * The copy runs in a thread per job, one chunk at a time; each chunk holds
 * C's io_lock exclusively so a guest write to C cannot interleave with the
 * copy of the same range.  Both copies are idempotent (they only fill what
 * C does not own, or rewrite V's own bytes into P), so a job interrupted by
 * a crash or a shutdown simply starts over: V's record carries the MERGE
 * flag, and vs_merge_resume_all restarts it after the next rescan.
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

#define CHUNK (1u << 20)

enum job_state { JOB_RUNNING, JOB_DONE, JOB_FAILED, JOB_PAUSED };

struct vs_job {
    struct vs_job *next;
    struct vs_tree *tree;
    int64_t v_id, c_id, p_id; /* layer, child, parent (0: none) */
    bool into_parent;
    char label[3 * VS_NAME_MAX + 8];
    _Atomic uint64_t done;
    _Atomic uint64_t total;
    _Atomic int state;
    int error;
    pthread_t thread;
};

static pthread_mutex_t jobs_lock = PTHREAD_MUTEX_INITIALIZER;
static struct vs_job *jobs;
static atomic_bool jobs_stopping;

/* ---- planning ---- */

/* Bytes with data that LAYER owns in [0, size) and, when OTHER is given,
 * OTHER does not own. */
static int64_t
owned_bytes(struct vs_bdev *layer, struct vs_bdev *other, uint64_t size)
{
    int64_t sum = 0;

    for (uint64_t off = 0, n; off < size; off += n) {
        int st = vs_bdev_block_status(layer, off, size - off, &n), ost = 0;
        if (st < 0 || n == 0)
            return st < 0 ? st : -EIO;
        if ((st & VS_BS_ALLOCATED) && (st & VS_BS_DATA) && other) {
            uint64_t on;
            ost = vs_bdev_block_status(other, off, n, &on);
            if (ost < 0)
                return ost;
            n = on;
        }
        if ((st & VS_BS_ALLOCATED) && (st & VS_BS_DATA) &&
            !(ost & VS_BS_ALLOCATED))
            sum += (int64_t)n;
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

static bool
job_involves(int64_t id)
{
    bool found = false;

    pthread_mutex_lock(&jobs_lock);
    for (struct vs_job *j = jobs; j && !found; j = j->next)
        found = atomic_load(&j->state) == JOB_RUNNING &&
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

/* Copy [off, off+len) of V's layer into DST where it owns it (and, into the
 * child, where DST does not own it yet). */
static int
copy_range(struct vs_bdev *vlayer, struct vs_bdev *dst, bool into_parent,
           bool zeros_matter, uint64_t off, uint64_t len, void *buf)
{
    for (uint64_t n; len > 0; off += n, len -= n) {
        int st = vs_bdev_block_status(vlayer, off, len, &n), dst_st = 0;
        if (st < 0 || n == 0)
            return st < 0 ? st : -EIO;
        if (!into_parent && (st & VS_BS_ALLOCATED)) {
            dst_st = vs_bdev_block_status(dst, off, n, &n);
            if (dst_st < 0)
                return dst_st;
        }
        if (!(st & VS_BS_ALLOCATED) || (dst_st & VS_BS_ALLOCATED))
            continue;
        if (st & VS_BS_ZERO) {
            int r = zeros_matter ? vs_bdev_write_zeroes(dst, off, n, 0) : 0;
            if (r < 0)
                return r;
            continue;
        }
        ssize_t got = vs_bdev_pread(vlayer, buf, n, off);
        if (got < 0)
            return (int)got;
        got = vs_bdev_pwrite(dst, buf, (size_t)got, off);
        if (got < 0)
            return (int)got;
    }
    return 0;
}

/* One chunk, with C's I/O held off; V's layer is the backing of C's top. */
static int
copy_chunk(struct vs_job *job, struct vs_node *c, struct vs_bdev *dst_parent,
           uint64_t off, uint64_t len, void *buf)
{
    struct vs_volume *cv = c->vol;
    struct vs_bdev *ctop, *dst;
    int r;

    pthread_rwlock_wrlock(&cv->io_lock);
    ctop = cv->bdev;
    dst = job->into_parent ? dst_parent : ctop;
    r = ctop && ctop->backing ? copy_range(ctop->backing, dst, job->into_parent,
                                           job->p_id != 0, off, len, buf)
                              : -EIO;
    pthread_rwlock_unlock(&cv->io_lock);
    return r;
}

static int
copy_all(struct vs_job *job, struct vs_bdev *dst_parent)
{
    struct vs_tree *tree = job->tree;
    uint64_t size = atomic_load(&job->total);
    void *buf = malloc(CHUNK);
    int r = buf ? 0 : -ENOMEM;

    for (uint64_t off = 0; r == 0 && off < size; off += CHUNK) {
        uint64_t len = size - off < CHUNK ? size - off : CHUNK;
        struct vs_node *c;
        if (atomic_load(&jobs_stopping)) {
            r = -EINTR;
            break;
        }
        vs_tree_rdlock(tree);
        c = vs_tree_volume(tree, job->c_id);
        r = c ? copy_chunk(job, c, dst_parent, off, len, buf) : -ENOENT;
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
    /* P's own cached chain predates the merge: reopen it (handles opened
     * on P keep reading through it; dropping it would fail their reads) */
    if (r == 0 && p && job->into_parent && p->vol->bdev)
        r = refresh_chain(tree, p);
    if (r == 0)
        r = refresh_above(tree, c);
    vs_tree_unlock(tree);
    if (r == 0)
        notify_kernel(image_id, name, job->c_id);
    return r;
}

/* The size of V's layer, as C's chain sees it.  Caller holds the tree. */
static int64_t
layer_size(struct vs_job *job)
{
    struct vs_node *c = vs_tree_volume(job->tree, job->c_id);
    int64_t size = -ENOENT;

    if (c) {
        pthread_rwlock_rdlock(&c->vol->io_lock);
        size = c->vol->bdev && c->vol->bdev->backing
                   ? vs_bdev_size(c->vol->bdev->backing)
                   : -EIO;
        pthread_rwlock_unlock(&c->vol->io_lock);
    }
    return size;
}

/* The parent's layer opened writable, for merging into it, and grown to
 * V's size when V grew past it: P is to read what V reads (a qcow2 layer
 * never shrinks, so V is never the smaller). */
static int
open_parent(struct vs_job *job, struct vs_bdev **out)
{
    struct vs_node *p;
    int64_t want, have;
    int r;

    *out = NULL;
    if (!job->into_parent)
        return 0;
    vs_tree_rdlock(job->tree);
    p = vs_tree_volume(job->tree, job->p_id);
    r = p ? vs_tree_open_chain(job->tree, p, 0, out) : -ENOENT;
    want = r == 0 ? layer_size(job) : 0;
    vs_tree_unlock(job->tree);
    have = r == 0 ? vs_bdev_size(*out) : 0;
    if (r == 0 && (want < 0 || have < 0))
        r = (int)(want < 0 ? want : have);
    if (r == 0 && want > have)
        r = vs_bdev_truncate(*out, (uint64_t)want);
    return r;
}

static void *
merge_thread(void *arg)
{
    struct vs_job *job = arg;
    struct vs_bdev *parent;
    int r = open_parent(job, &parent);

    if (r == 0)
        r = copy_all(job, parent);
    if (r == 0 && parent)
        r = vs_bdev_flush(parent);
    vs_bdev_close(parent);
    if (r == 0)
        r = finish(job);
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

static int
plan(struct vs_tree *tree, struct vs_node *v, struct vs_node *c,
     struct vs_node *p, bool *into_parent)
{
    struct vs_bdev *cbs, *vbs;
    int64_t to_child, to_parent;
    uint64_t size;
    int r = vs_node_bdev(tree, c, &cbs);

    if (r == 0)
        r = vs_node_bdev(tree, v, &vbs);
    if (r < 0)
        return r;
    size = atomic_load(&v->vol->size);
    to_child = owned_bytes(vbs, cbs, size);
    /* into the parent only when V is its one child and nobody reads it
     * on its own (its cached chain is dropped at the end) */
    to_parent = p && p->layers_above == 1 && p->vol->open_count == 0
                    ? owned_bytes(vbs, NULL, size)
                    : INT64_MAX;
    if (to_child < 0 || to_parent < 0)
        return (int)(to_child < 0 ? to_child : to_parent);
    *into_parent = to_parent < to_child;
    return 0;
}

static int
launch(struct vs_tree *tree, struct vs_node *v, struct vs_node *c,
       bool into_parent)
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
    job->into_parent = into_parent;
    snprintf(job->label, sizeof(job->label), "%s", v->vol->label);
    atomic_store(&job->total, atomic_load(&c->vol->size));
    atomic_store(&job->state, JOB_RUNNING);
    pthread_mutex_lock(&jobs_lock);
    r = -pthread_create(&job->thread, NULL, merge_thread, job);
    if (r == 0) {
        job->next = jobs;
        jobs = job;
    }
    pthread_mutex_unlock(&jobs_lock);
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
    bool into_parent = false;
    int r;

    if (!c || v->layers_above != 1)
        return -ENOTEMPTY; /* several clones are based on it */
    if (job_involves(v->cat.id) || job_involves(c->cat.id))
        return -EBUSY;
    p = vs_tree_volume(tree, v->cat.backing_id);
    r = plan(tree, v, c, p, &into_parent);
    if (r < 0)
        return r;
    row.flags |= into_parent ? VS_RECF_MERGE_PARENT : VS_RECF_MERGE_CHILD;
    r = vs_tree_store_row(tree, v, &row, p);
    if (r < 0)
        return r;
    v->cat = row;
    vs_log(LOG_NOTICE, "volume '%s': merging into its %s '%s'", v->vol->label,
           into_parent ? "parent" : "child",
           into_parent ? p->cat.name : c->cat.name);
    return launch(tree, v, c, into_parent);
}

void
vs_merge_resume_all(struct vs_tree *tree)
{
    const uint32_t merging = VS_RECF_MERGE_CHILD | VS_RECF_MERGE_PARENT;

    vs_tree_wrlock(tree);
    for (size_t i = 0; i < tree->hash_size; i++) {
        for (struct vs_node *n = tree->hash[i]; n; n = n->hash_next) {
            struct vs_node *c;
            if (n->cat.kind != VS_NODE_VOLUME || !(n->cat.flags & merging) ||
                !(c = child_of(tree, n)) || job_involves(n->cat.id))
                continue;
            vs_log(LOG_NOTICE, "volume '%s': resuming its merge",
                   n->vol->label);
            if (launch(tree, n, c, n->cat.flags & VS_RECF_MERGE_PARENT) < 0)
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
                    j->into_parent ? "parent" : "child",
                    (unsigned long long)done, (unsigned long long)total,
                    states[atomic_load(&j->state)]);
}

int
vs_merge_describe(int64_t id, char *buf, size_t len)
{
    int n = -ENODATA;

    pthread_mutex_lock(&jobs_lock);
    for (struct vs_job *j = jobs; j; j = j->next)
        if ((j->v_id == id || j->c_id == id) &&
            atomic_load(&j->state) != JOB_DONE) {
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
        if (atomic_load(&j->state) == JOB_DONE)
            continue; /* finished jobs leave the list */
        int n = describe(j, buf + used, len - used);
        used += n > 0 ? (size_t)n : 0;
    }
    pthread_mutex_unlock(&jobs_lock);
    return (int)(used < len ? used : len - 1);
}
