/*
 * Private to fs/merge*.c: a merge job, and what its three files share.
 *   merge.c         the jobs: planning, starting, resuming, stopping,
 *                   reporting (and the design, in its header comment)
 *   merge_copy.c    the copy: V's layer up into C's, or C's layer down into
 *                   V's object while C's writes are tracked
 *   merge_switch.c  the end: C switched onto its new chain, V removed
 */
#ifndef VS_MERGE_JOB_H
#define VS_MERGE_JOB_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "fs.h"

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
    /* why it failed, for user.vstor.job and the log line; set once by the
     * job's thread before it stores JOB_FAILED */
    char reason[256];
    pthread_t thread;
};

/* merge.c: whether every job is asked to pause (the daemon is stopping). */
bool merge_stopping(void);
/* merge.c: keep why the job failed (the first reason given wins); returns
 * ERR (-errno) for the caller to pass on. */
int merge_fail(struct vs_job *job, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* merge_copy.c */

/* Bytes with data that LAYER owns in [0, size) and, when OTHER is given,
 * OTHER does not own. */
int64_t merge_owned_bytes(struct vs_bdev *layer, struct vs_bdev *other,
                          uint64_t size);
/* Start (CHUNKS > 0) or stop the dirty map of CV; its shrinks are refused
 * while there is one. */
int merge_set_dirty_map(struct vs_volume *cv, uint64_t chunks);
/* Stop tracking the writes of the job's C. */
void merge_untrack_writes(struct vs_job *job);
/* Down: V's own layer opened writable, grown to C's size (NULL: up). */
int merge_open_down_target(struct vs_job *job, struct vs_bdev **out);
/* The copy, up to what finish_down does with C's I/O held: -EINTR when
 * asked to pause. */
int merge_copy_all(struct vs_job *job, struct vs_bdev *vdst);
/* Down, with C's I/O held off: the chunks still dirty and C's growth. */
int merge_copy_rest(struct vs_job *job, struct vs_volume *cv,
                    struct vs_bdev *vdst, void *buf);

/* merge_switch.c: the end of a job, up or down (V removed, C switched) */
int merge_finish_up(struct vs_job *job);
int merge_finish_down(struct vs_job *job, struct vs_bdev **vdst);

#endif
