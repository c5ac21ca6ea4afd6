/*
 * Closing the volume chains nobody uses, so that descriptors stay bounded
 * however many volumes a domain holds.
 *
 * A volume's shared chain (vol->bdev) is opened on first use and used to be
 * kept for the life of the volume: after touching 10,000 volumes the daemon
 * held two descriptors per layer of each and ran out.  Now every open chain
 * that no FUSE handle holds (open_count == 0) sits on one LRU list, counted
 * in layers (a local layer holds two descriptors: buffered and O_DIRECT).
 * When the idle layers pass the limit (max_idle_layers=, by default an
 * eighth of RLIMIT_NOFILE: a quarter of the descriptors), a reaper thread
 * closes the least recently used ones until a quarter of the limit is free
 * again.  A volume opened again reopens its chain (vs_node_bdev); stat and
 * xattrs of a closed one answer from the sizes it had when closed
 * (vs_node_sizes).
 *
 * Locking:
 *   - lru_lock guards the list, vol->lru_* and idle_layers.  It is the
 *     innermost lock: taken under vol->lock (vs_idle_update), never held
 *     while taking another.
 *   - Taking a chain out of its volume (vs_volume_detach_idle) holds the
 *     namespace lock for writing: every other user of a chain without a
 *     handle (setattr, xattrs, chain changes, starting a merge) holds it
 *     at least for reading while it uses vol->bdev, and an opener is
 *     counted under it (io.c), so none is in between.  It takes
 *     vol->io_gate closed too.  A volume with a FUSE handle or a
 *     running merge (vs_merge_busy: merges are registered under the
 *     namespace lock too) is never closed.
 *   - No storage I/O under the namespace lock: the flush and the size
 *     queries come before it (vs_volume_prepare_idle_close), and a chain
 *     written after that flush is left open for the next pass; the close
 *     itself comes after the lock is dropped.  A domain whose storage
 *     hangs stalls the reaper, never the namespace.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "fs.h"
#include "vs/log.h"

#define REAP_BATCH 64 /* volumes closed per hold of the namespace lock */

static pthread_mutex_t lru_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t lru_cond = PTHREAD_COND_INITIALIZER;
static struct vs_volume *lru_head; /* most recently used */
static struct vs_volume *lru_tail; /* least recently used */
static uint64_t idle_layers;
static uint64_t max_layers; /* 0: no reaper runs (unit tests) */
static bool stopping;
static bool running;
static pthread_t reaper;
static struct vs_tree *reap_tree;

static unsigned
chain_layers(const struct vs_bdev *bs)
{
    unsigned n = 0;

    for (; bs; bs = bs->backing)
        n++;
    return n;
}

static void
lru_unlink(struct vs_volume *vol)
{
    if (!vol->on_lru)
        return;
    if (vol->lru_prev)
        vol->lru_prev->lru_next = vol->lru_next;
    else
        lru_head = vol->lru_next;
    if (vol->lru_next)
        vol->lru_next->lru_prev = vol->lru_prev;
    else
        lru_tail = vol->lru_prev;
    vol->lru_prev = vol->lru_next = NULL;
    vol->on_lru = false;
    idle_layers -= vol->lru_layers;
}

static void
lru_push(struct vs_volume *vol, unsigned layers)
{
    vol->lru_next = lru_head;
    vol->lru_prev = NULL;
    if (lru_head)
        lru_head->lru_prev = vol;
    else
        lru_tail = vol;
    lru_head = vol;
    vol->on_lru = true;
    vol->lru_layers = layers;
    vol->lru_stamp++;
    idle_layers += layers;
}

void
vs_idle_update(struct vs_volume *vol)
{
    bool idle = vol->bdev && vol->open_count == 0;
    unsigned layers = idle ? chain_layers(vol->bdev) : 0;

    pthread_mutex_lock(&lru_lock);
    lru_unlink(vol);
    if (idle)
        lru_push(vol, layers);
    if (max_layers && idle_layers > max_layers)
        pthread_cond_signal(&lru_cond);
    pthread_mutex_unlock(&lru_lock);
}

void
vs_idle_remove(struct vs_volume *vol)
{
    pthread_mutex_lock(&lru_lock);
    lru_unlink(vol);
    pthread_mutex_unlock(&lru_lock);
}

/* A reference on VOL unless its last one is being dropped. */
static bool
ref_unless_zero(struct vs_volume *vol)
{
    int refs = atomic_load(&vol->refs);

    while (refs > 0)
        if (atomic_compare_exchange_weak(&vol->refs, &refs, refs + 1))
            return true;
    return false;
}

/* Take up to REAP_BATCH of the least recently used idle volumes (with a
 * reference each) while the idle layers are over the low mark. */
static size_t
pick_victims(struct vs_volume **v, uint64_t *stamps)
{
    uint64_t low = max_layers - max_layers / 4, over;
    size_t n = 0;

    over = idle_layers > low ? idle_layers - low : 0;
    for (struct vs_volume *vol = lru_tail; vol && over > 0 && n < REAP_BATCH;
         vol = vol->lru_prev) {
        if (!ref_unless_zero(vol))
            continue;
        stamps[n] = vol->lru_stamp;
        v[n++] = vol;
        over -= over > vol->lru_layers ? vol->lru_layers : over;
    }
    return n;
}

/* Close the victims still idle and unused since they were picked; the
 * number closed.  The storage is touched only outside the namespace lock:
 * the flush and the sizes before it, the close after it. */
static size_t
close_victims(struct vs_volume **v, const uint64_t *stamps, size_t n)
{
    int64_t size[REAP_BATCH], alloc[REAP_BATCH];
    struct vs_bdev *bs[REAP_BATCH] = {NULL};
    bool ready[REAP_BATCH];
    size_t closed = 0;

    for (size_t i = 0; i < n; i++)
        ready[i] = vs_volume_prepare_idle_close(v[i], &size[i], &alloc[i]) == 0;
    vs_tree_wrlock(reap_tree);
    for (size_t i = 0; i < n; i++) {
        bool same;
        pthread_mutex_lock(&lru_lock);
        same = v[i]->on_lru && v[i]->lru_stamp == stamps[i];
        pthread_mutex_unlock(&lru_lock);
        if (ready[i] && same && !vs_merge_busy(v[i]->id) &&
            vs_volume_detach_idle(v[i], size[i], alloc[i], &bs[i]) == 0)
            closed++;
    }
    vs_tree_unlock(reap_tree);
    for (size_t i = 0; i < n; i++) {
        vs_bdev_close(bs[i]);
        vs_volume_unref(v[i]);
    }
    return closed;
}

static void *
reaper_main(void *arg)
{
    struct vs_volume *v[REAP_BATCH];
    uint64_t stamps[REAP_BATCH];
    bool stuck = false;

    (void)arg;
    pthread_mutex_lock(&lru_lock);
    while (!stopping) {
        size_t n;
        if (idle_layers <= max_layers || stuck) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += 1; /* a stuck pass (all busy) is retried */
            pthread_cond_timedwait(&lru_cond, &lru_lock, &ts);
            stuck = false;
            continue;
        }
        n = pick_victims(v, stamps);
        pthread_mutex_unlock(&lru_lock);
        stuck = close_victims(v, stamps, n) == 0;
        pthread_mutex_lock(&lru_lock);
    }
    pthread_mutex_unlock(&lru_lock);
    return NULL;
}

uint64_t
vs_idle_default_limit(void)
{
    struct rlimit rl;
    uint64_t fds = 1024;

    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        fds = rl.rlim_cur;
    else if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        fds = 1u << 20;
    /* a quarter of the descriptors, two per layer */
    return fds / 8 > 8 ? fds / 8 : 8;
}

int
vs_idle_start(struct vs_tree *tree, uint64_t limit)
{
    int r;

    pthread_mutex_lock(&lru_lock);
    reap_tree = tree;
    max_layers = limit ? limit : vs_idle_default_limit();
    stopping = false;
    pthread_mutex_unlock(&lru_lock);
    r = vs_thread_start(&reaper, reaper_main, NULL);
    if (r == 0)
        running = true;
    else
        max_layers = 0;
    vs_log_debug(VS_LOG_CAT_BACKEND, "idle chains: closed past %llu layers",
                 (unsigned long long)max_layers);
    return r;
}

void
vs_idle_stop(void)
{
    if (!running)
        return;
    pthread_mutex_lock(&lru_lock);
    stopping = true;
    max_layers = 0;
    pthread_cond_signal(&lru_cond);
    pthread_mutex_unlock(&lru_lock);
    pthread_join(reaper, NULL);
    running = false;
}

uint64_t
vs_idle_layers(void)
{
    uint64_t n;

    pthread_mutex_lock(&lru_lock);
    n = idle_layers;
    pthread_mutex_unlock(&lru_lock);
    return n;
}
