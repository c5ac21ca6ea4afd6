/*
 * Merging a layer away (this file: the jobs; merge_copy.c: the copying;
 * merge_switch.c: the end of a job).  `rmdir` of a volume V that exactly
 * one volume C is based on (C -> V -> P) removes V without changing what C
 * reads.
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
 * each chunk closes C's io_gate, so a guest write to C cannot
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
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs.h"
#include "merge_job.h"
#include "vs/log.h"
#include "vs/names.h"

static pthread_mutex_t jobs_lock = PTHREAD_MUTEX_INITIALIZER;
static struct vs_job *jobs;
static atomic_bool jobs_stopping;

bool
merge_stopping(void)
{
    return atomic_load(&jobs_stopping);
}

int
merge_fail(struct vs_job *job, int err, const char *fmt, ...)
{
    va_list ap;

    if (job->reason[0] != '\0' || err == -EINTR)
        return err;
    va_start(ap, fmt);
    vsnprintf(job->reason, sizeof(job->reason), fmt, ap);
    va_end(ap);
    /* one field of a tab-separated line */
    for (char *c = job->reason; *c; c++)
        if (*c == '\t' || *c == '\n')
            *c = ' ';
    return err;
}

/* ---- planning ---- */

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

static bool
merge_flagged(const struct vs_node *n)
{
    return n && (n->cat.flags & (VS_RECF_MERGE_CHILD | VS_RECF_MERGE_DOWN));
}

bool
vs_merge_holds(struct vs_tree *tree, const struct vs_node *node)
{
    return vs_merge_busy(node->cat.id) || merge_flagged(node) ||
           merge_flagged(vs_tree_volume(tree, node->cat.backing_id));
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

static void resume(struct vs_tree *tree, bool only_waiting);

/* ---- copying ---- */

/* ---- switching C onto P and removing V ---- */

static void *
merge_thread(void *arg)
{
    struct vs_job *job = arg;
    struct vs_bdev *vdst;
    int r = merge_open_down_target(job, &vdst);

    if (r < 0)
        merge_fail(job, r, "cannot open the layer to copy down into: %s",
                   strerror(-r));
    if (r == 0 && (r = merge_copy_all(job, vdst)) < 0)
        merge_fail(job, r, "the copy failed: %s", strerror(-r));
    if (r == 0)
        r = job->down ? merge_finish_down(job, &vdst) : merge_finish_up(job);
    if (r < 0)
        merge_fail(job, r, "the switch to the new chain failed: %s",
                   strerror(-r));
    /* after the switch, C's map is gone and C may be in a new job */
    if (job->down && !atomic_load(&job->switched))
        merge_untrack_writes(job);
    vs_bdev_close(vdst);
    job->error = r;
    /* still RUNNING (so no launch joins this thread) and switched (so it
     * holds none of its volumes): merges that waited for this one go on */
    if (r == 0)
        resume(job->tree, true);
    atomic_store(&job->state, r == 0        ? JOB_DONE
                              : r == -EINTR ? JOB_PAUSED
                                            : JOB_FAILED);
    if (r == 0)
        vs_log(LOG_NOTICE, "merge of '%s' done", job->label);
    else if (r != -EINTR)
        vs_log(LOG_ERR,
               "merge of '%s' failed: %s; it resumes at the next start",
               job->label, job->reason);
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
    *up = merge_owned_bytes(vbs, cbs, atomic_load(&v->vol->size));
    *down = v->vol->open_count == 0
                ? merge_owned_bytes(cbs, NULL, atomic_load(&c->vol->size))
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
        r = merge_set_dirty_map(c->vol,
                                (atomic_load(&job->total) + CHUNK - 1) / CHUNK);
    pthread_mutex_lock(&jobs_lock);
    if (r == 0)
        r = vs_thread_start(&job->thread, merge_thread, job);
    if (r == 0) {
        job->next = jobs;
        jobs = job;
    }
    pthread_mutex_unlock(&jobs_lock);
    if (r < 0 && down)
        merge_set_dirty_map(c->vol, 0);
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
    /* a layer read by passthrough must not change under its reader */
    if ((r = vs_passthrough_busy(v, "merge")) < 0 ||
        (r = vs_passthrough_busy(c, "merge")) < 0)
        return r;
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
    vs_tree_replace_row(tree, v, &row);
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

/* A running job whose layer (V) is ID. */
static bool
job_merges(int64_t id)
{
    bool found = false;

    pthread_mutex_lock(&jobs_lock);
    for (struct vs_job *j = jobs; j && !found; j = j->next)
        found = !job_ended(j) && atomic_load(&j->state) == JOB_RUNNING &&
                j->v_id == id;
    pthread_mutex_unlock(&jobs_lock);
    return found;
}

/* Restart the merge V's record says is under way, unless another job
 * holds its child or its backing: merges along one chain run one after
 * the other (one whose backing or child vanished under it would fail), so
 * V waits, and the end of that job resumes it.  Tree locked for writing. */
static void
resume_one(struct vs_tree *tree, struct vs_node *v)
{
    struct vs_node *c = child_of(tree, v);

    if (!c || job_merges(v->cat.id))
        return;
    if (v->layers_above != 1) {
        /* a clone made while the merge was failed: merging now would
         * leave the others without their backing */
        v->merge_waiting = false;
        vs_log(LOG_ERR,
               "volume '%s': its merge cannot resume: %u volumes are based "
               "on it; rmdir it again once one is",
               v->vol->label, v->layers_above);
        return;
    }
    if (job_involves(v->cat.id) || job_involves(c->cat.id) ||
        (v->cat.backing_id && job_involves(v->cat.backing_id))) {
        v->merge_waiting = true;
        return;
    }
    v->merge_waiting = false;
    vs_log(LOG_NOTICE, "volume '%s': resuming its merge", v->vol->label);
    if (launch(tree, v, c, v->cat.flags & VS_RECF_MERGE_DOWN) < 0)
        vs_log(LOG_ERR, "volume '%s': cannot resume its merge", v->vol->label);
}

static void
resume(struct vs_tree *tree, bool only_waiting)
{
    vs_tree_wrlock(tree);
    for (size_t i = 0; i < tree->hash_size && !merge_stopping(); i++)
        for (struct vs_node *n = tree->hash[i]; n; n = n->hash_next)
            if (n->cat.kind == VS_NODE_VOLUME && merge_flagged(n) &&
                (!only_waiting || n->merge_waiting) &&
                vs_node_check_writable(n) == 0)
                resume_one(tree, n);
    vs_tree_unlock(tree);
}

void
vs_merge_resume_all(struct vs_tree *tree)
{
    resume(tree, false);
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

/* A failed job's line ends with a seventh field: why it failed. */
static int
describe(const struct vs_job *j, char *buf, size_t len)
{
    static const char *const states[] = {"running", "done", "failed", "paused"};
    uint64_t done = atomic_load(&j->done), total = atomic_load(&j->total);
    int state = atomic_load(&j->state);

    return snprintf(buf, len, "merge\t%s\t%s\t%llu\t%llu\t%s%s%s\n", j->label,
                    j->down ? "down" : "child", (unsigned long long)done,
                    (unsigned long long)total, states[state],
                    state == JOB_FAILED ? "\t" : "",
                    state == JOB_FAILED ? j->reason : "");
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
