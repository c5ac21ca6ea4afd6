/*
 * The bounded cache of a qcow2 layer's L2 tables.
 *
 * A layer keeps at most `l2_max` L2 tables in memory (the process-wide
 * size, vs_qcow2_set_l2_cache_size, 32 MiB by default, divided by the
 * memory of one table: a cluster's worth, entries and bitmaps together).
 * The L1 table stays whole in memory; an L2 table is read and validated
 * (qcow2_table.c) the first time a request needs it.  Each request loads
 * the tables it will look at right after taking the layer's lock
 * (qcow2_l2_load, qcow2_l2_load_range), and the lookups (qcow2_entry,
 * qcow2_bitmap) then index the in-memory arrays as before.
 *
 * Concurrency.  Loads happen under the lock, shared or exclusive: two
 * readers missing the same table may both read it, and the second to take
 * `l2_lock` frees its copy; the table pointer is published with a release
 * store after its bitmaps.  Eviction happens only under the exclusive
 * lock, so a table a request loaded stays while that request holds the
 * lock, and a lookup never meets a freed table.  Whoever releases the lock
 * while the cache holds more than it may (qcow2_unlock, qcow2_wrunlock)
 * evicts: a reader takes the exclusive lock for it after dropping the
 * shared one.  A request that needs more tables than the limit (a tiny
 * limit, a long request) overruns it until then.
 *
 * Eviction is CLOCK: `l2_slots` lists the cached tables, a lookup's load
 * sets the table's referenced bit, and the hand clears set bits and evicts
 * the first clean table whose bit is clear.  Dirty tables (changed since
 * the last flush) and tables a flush is writing are never evicted: a
 * dirty table can only reach the file through a flush, in its crash-safe
 * order (qcow2_flush.c: data, refcounts, L2, L1).  When every table left
 * is dirty the cache overruns its limit (`l2_trim_at` remembers how far,
 * so readers do not retry in vain) until the next flush, and a write or
 * discard that finds the cache full of dirty tables starts that flush
 * itself (qcow2_l2_needs_flush; qcow2_write.c, qcow2_zero.c).  So memory
 * stays bounded by the limit plus what a flush interval dirties, and the
 * ordering of metadata writes is the flush's, unchanged.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vs/bdev.h"
#include "vs/driver.h"
#include "qcow2.h"

static uint64_t cache_bytes = QCOW2_L2_CACHE_DEFAULT;

void
vs_qcow2_set_l2_cache_size(uint64_t bytes)
{
    __atomic_store_n(&cache_bytes, bytes, __ATOMIC_RELAXED);
}

uint64_t
vs_qcow2_l2_cache_size(void)
{
    return __atomic_load_n(&cache_bytes, __ATOMIC_RELAXED);
}

void
qcow2_l2_cache_init(struct qcow2 *s)
{
    const char *env = getenv("VSTORFS_QCOW2_L2_CACHE");
    uint64_t bytes = vs_qcow2_l2_cache_size();
    char *end;

    if (env != NULL) {
        unsigned long long v = strtoull(env, &end, 10);

        if (end != env && *end == '\0')
            bytes = v;
    }
    /* a table costs one cluster of memory, entries and bitmaps together */
    s->l2_max = bytes >> s->cluster_bits;
    if (s->l2_max < 1)
        s->l2_max = 1;
    s->l2_trim_at = s->l2_max;
}

void
qcow2_l2_cache_free(struct qcow2 *s)
{
    free(s->l2_slots);
}

/* Record table I in the slot list and publish it; l2_lock or wrlock. */
static int
publish(struct qcow2 *s, uint32_t i, uint64_t *t, uint64_t *bm)
{
    if (s->l2_n == s->l2_slots_cap) {
        size_t cap = s->l2_slots_cap ? s->l2_slots_cap * 2 : 16;
        uint32_t *p = realloc(s->l2_slots, cap * sizeof(*p));

        if (p == NULL)
            return -ENOMEM;
        s->l2_slots = p;
        s->l2_slots_cap = cap;
    }
    s->l2_slots[s->l2_n] = i;
    __atomic_store_n(&s->l2_n, s->l2_n + 1, __ATOMIC_RELAXED);
    __atomic_store_n(&s->l2_ref[i], 1, __ATOMIC_RELAXED);
    s->l2bm[i] = bm;
    __atomic_store_n(&s->l2[i], t, __ATOMIC_RELEASE);
    return 0;
}

/* Read table I and put it in the cache unless another thread did. */
static int
load_miss(struct qcow2 *s, uint32_t i)
{
    uint64_t *t = malloc(s->l2_entries * sizeof(*t));
    uint64_t *bm = s->extl2 ? malloc(s->l2_entries * sizeof(*bm)) : NULL;
    int r = t == NULL || (s->extl2 && bm == NULL) ? -ENOMEM : 0;

    if (r == 0)
        r = qcow2_l2_read(s, i, t, bm);
    if (r == 0) {
        pthread_mutex_lock(&s->l2_lock);
        if (s->l2[i] == NULL) {
            r = publish(s, i, t, bm);
            if (r == 0)
                t = bm = NULL;
            __atomic_add_fetch(&s->l2_loads, 1, __ATOMIC_RELAXED);
        }
        pthread_mutex_unlock(&s->l2_lock);
    }
    free(t);
    free(bm);
    return r;
}

int
qcow2_l2_load(struct qcow2 *s, uint64_t i)
{
    if (i >= s->h.l1_size || s->l1[i] == 0)
        return 0;
    if (__atomic_load_n(&s->l2[i], __ATOMIC_ACQUIRE) != NULL) {
        if (__atomic_load_n(&s->l2_ref[i], __ATOMIC_RELAXED) == 0)
            __atomic_store_n(&s->l2_ref[i], 1, __ATOMIC_RELAXED);
        return 0;
    }
    return load_miss(s, (uint32_t)i);
}

int
qcow2_l2_load_range(struct qcow2 *s, uint64_t off, uint64_t len)
{
    uint32_t shift = s->cluster_bits + s->l2_bits;
    uint64_t last = len > 0 ? (off + len - 1) >> shift : off >> shift;
    int r = 0;

    for (uint64_t i = off >> shift; r == 0 && i <= last; i++)
        r = qcow2_l2_load(s, i);
    return r;
}

int
qcow2_l2_insert_new(struct qcow2 *s, uint32_t i, uint64_t *t, uint64_t *bm)
{
    int r = publish(s, i, t, bm);

    if (r == 0)
        s->l2_dirty[i] = QCOW2_L2_DIRTY;
    return r;
}

/* Drop slot K (its table is clean and unreferenced); wrlock. */
static void
evict(struct qcow2 *s, size_t k)
{
    uint32_t i = s->l2_slots[k];

    free(s->l2[i]);
    free(s->l2bm[i]);
    s->l2[i] = NULL;
    s->l2bm[i] = NULL;
    s->l2_ref[i] = 0;
    s->l2_slots[k] = s->l2_slots[s->l2_n - 1];
    __atomic_store_n(&s->l2_n, s->l2_n - 1, __ATOMIC_RELAXED);
}

void
qcow2_l2_trim(struct qcow2 *s)
{
    /* two turns of the hand clear every bit and meet every clean table */
    size_t steps = 2 * s->l2_n + 1;

    while (s->l2_n > s->l2_max && steps-- > 0) {
        uint32_t i;

        if (s->l2_hand >= s->l2_n)
            s->l2_hand = 0;
        i = s->l2_slots[s->l2_hand];
        if (s->l2_dirty[i] != QCOW2_L2_CLEAN) {
            s->l2_hand++;
        } else if (s->l2_ref[i]) {
            s->l2_ref[i] = 0;
            s->l2_hand++;
        } else {
            evict(s, s->l2_hand); /* the last slot moved here */
        }
    }
    /* what is left over the limit is dirty: wait for a flush */
    __atomic_store_n(&s->l2_trim_at, s->l2_n > s->l2_max ? s->l2_n : s->l2_max,
                     __ATOMIC_RELAXED);
}

void
qcow2_l2_trim_now(struct qcow2 *s)
{
    qcow2_wrlock(s);
    qcow2_l2_trim(s);
    pthread_rwlock_unlock(&s->lock);
}

void
qcow2_l2_written(struct qcow2 *s)
{
    __atomic_store_n(&s->l2_trim_at, s->l2_max, __ATOMIC_RELAXED);
    qcow2_l2_trim(s);
}

bool
qcow2_l2_needs_flush(struct qcow2 *s)
{
    return __atomic_load_n(&s->l2_n, __ATOMIC_RELAXED) > s->l2_max &&
           __atomic_load_n(&s->l2_trim_at, __ATOMIC_RELAXED) > s->l2_max;
}
