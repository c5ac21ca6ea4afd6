/*
 * Private to the qcow2 format driver: the on-disk constants, the state of
 * an open image, and the functions the driver's files share.
 *
 * Files and their one responsibility each:
 *   qcow2.c           the driver table, open/close, size, truncate, status
 *   qcow2_header.c    parse, validate and rewrite the header
 *   qcow2_create.c    lay out a fresh image
 *   qcow2_table.c     L1/L2 tables: load, validate, look up, grow
 *   qcow2_l2cache.c   the bounded cache of L2 tables: load on demand,
 *                     evict clean tables (CLOCK)
 *   qcow2_refcount.c  refcounts: load, allocate, free, prepare for a flush
 *   qcow2_check.c     refcounts against references, at a writable open
 *   qcow2_flush.c     write dirty metadata out in crash-safe order
 *   qcow2_read.c      the read path and the backing-chain shortcut
 *   qcow2_write.c     the write path: in place or allocate + copy-on-write
 *   qcow2_zero.c      discard and write_zeroes
 *   qcow2_subcluster.c extended L2 entries: the per-subcluster bitmaps, the
 *                     state of a subcluster, what a write must copy
 *   qcow2_compress.c  inflate compressed clusters
 *   qcow2_iov.c       iovec slicing and copying
 *
 * Locking.  `lock` is a writer-preferring rwlock over the whole mapping
 * (L1, L2 tables, owner cache) and the refcounts.  Reads and in-place
 * writes hold it shared for the lookup and the data transfer (so a
 * cluster cannot be freed under them); allocation, discard and metadata
 * snapshots hold it exclusive, never across data I/O.  L2 tables are
 * loaded on demand under either (qcow2_l2cache.c: `l2_lock` orders
 * concurrent loads) and evicted only under the exclusive lock, so a table
 * loaded while the lock is held, shared or not, stays until it is
 * released.  A guest cluster
 * being allocated is "in flight" (inflight set, under inflight_lock) so a
 * second writer or a discard of it waits.  flush_lock serializes flushes
 * and size changes.  An image opened read-only never changes its mapping
 * but takes the lock too (shared), since its L2 cache evicts tables; the
 * layer above walks it through the chain shortcut taking its lock around
 * each lookup (upper layer's lock first, never the other way round).
 */
#ifndef VS_QCOW2_H
#define VS_QCOW2_H

#include <assert.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "vs/driver.h"

#define QCOW2_MAGIC 0x514649fbu /* "QFI\xfb" */
#define QCOW2_V2_HEADER 72
#define QCOW2_V3_HEADER 104
#define QCOW2_HEADER_CREATE 112 /* with the compression_type byte, padded */
#define QCOW2_MIN_CLUSTER_BITS 9
#define QCOW2_MAX_CLUSTER_BITS 21
#define QCOW2_DEFAULT_CLUSTER_BITS 16
#define QCOW2_MAX_BACKING_NAME 1023
#define QCOW2_MAX_L1_BYTES (32u << 20) /* as QEMU: 32 MiB of L1 */
#define QCOW2_MAX_RT_BYTES (8u << 20)  /* as QEMU: 8 MiB of refcount table */
#define QCOW2_MAX_SNAPSHOTS 65536
/* Extended L2 entries: 32 subclusters per cluster, clusters of 16 KiB at
 * least (the spec's minimum: subclusters of 512 bytes). */
#define QCOW2_SUBCLUSTERS 32
#define QCOW2_EXTL2_MIN_CLUSTER_BITS 14
#define QCOW2_SC_ALLOC_ALL 0x00000000ffffffffull
#define QCOW2_SC_ZERO_ALL 0xffffffff00000000ull
/* Whether a new layer with a backing file gets extended L2 entries, when
 * the environment does not say (qcow2_extl2_wanted). */
#define QCOW2_EXTL2_DEFAULT 1

/* Incompatible feature bits. */
#define QCOW2_INCOMPAT_DIRTY (1ull << 0)
#define QCOW2_INCOMPAT_CORRUPT (1ull << 1)
#define QCOW2_INCOMPAT_DATA_FILE (1ull << 2)
#define QCOW2_INCOMPAT_COMPRESSION (1ull << 3)
#define QCOW2_INCOMPAT_EXTL2 (1ull << 4)

/* Header extension types. */
#define QCOW2_EXT_END 0x00000000u
#define QCOW2_EXT_BACKING_FORMAT 0xe2792acau
#define QCOW2_EXT_FEATURE_TABLE 0x6803f857u
#define QCOW2_EXT_DATA_FILE 0x44415441u

/* L1 and L2 entry bits. */
#define QCOW2_COPIED (1ull << 63)
#define QCOW2_COMPRESSED (1ull << 62)
#define QCOW2_ZERO 1ull
#define QCOW2_OFFSET_MASK 0x00fffffffffffe00ull
#define QCOW2_L1_RESERVED 0x7f000000000001ffull
#define QCOW2_L2_RESERVED 0x3f000000000001feull
#define QCOW2_RT_RESERVED 0x1ffull

/* The header fields, in host byte order. */
struct qcow2_header {
    uint32_t version;
    uint64_t backing_offset;
    uint32_t backing_size;
    uint32_t cluster_bits;
    uint64_t size;
    uint32_t crypt_method;
    uint32_t l1_size;
    uint64_t l1_offset;
    uint64_t rt_offset;
    uint32_t rt_clusters;
    uint32_t nb_snapshots;
    uint64_t snapshots_offset;
    uint64_t incompat;
    uint64_t compat;
    uint64_t autoclear;
    uint32_t refcount_order;
    uint32_t header_length;
    uint8_t compression_type;
};

/* What a guest cluster's L2 entry says. */
enum qcow2_kind {
    QCOW2_UNALLOCATED,  /* ask the backing (or zeros) */
    QCOW2_ZERO_CLUSTER, /* reads as zeros (maybe with a host cluster) */
    QCOW2_NORMAL,       /* data at a host cluster */
    QCOW2_COMPRESSED_CLUSTER,
};

/* The states of a cached L2 table (l2_dirty): WRITING is snapshotted by
 * a flush whose write is not done yet, so not evictable (the file is not
 * current). */
#define QCOW2_L2_CLEAN 0
#define QCOW2_L2_DIRTY 1
#define QCOW2_L2_WRITING 2
/* The L2 cache's size per layer when nothing else is said: 32 MiB, as
 * QEMU's default on Linux; 512 tables of 64 KiB clusters map 256 GiB of
 * guest disk (128 GiB with extended L2 entries). */
#define QCOW2_L2_CACHE_DEFAULT (32ull << 20)

/* Owner-cache codes (per guest cluster, one byte; see qcow2_read.c). */
#define QCOW2_OWNER_UNKNOWN 0
#define QCOW2_OWNER_NONE 255
#define QCOW2_MAX_CHAIN 250

struct qcow2 {
    struct vs_bdev *bs;
    struct vs_bdev *file;
    const char *name; /* bs->name, for log lines */
    bool ro;
    struct qcow2_header h;    /* as in memory (what the next flush writes) */
    struct qcow2_header disk; /* as last written to the file */
    uint8_t *raw_header;      /* the first header_length bytes, as read */
    uint32_t cluster_bits;
    uint64_t cs; /* cluster size */
    uint32_t l2_bits;
    uint64_t l2_entries;
    bool extl2;         /* extended L2 entries (subclusters) */
    uint32_t sc_bits;   /* subcluster size: cluster_bits - 5, or cluster_bits
                           without subclusters (one "subcluster" a cluster) */
    uint64_t file_size; /* the object's size: at open (validation), then
                           as extended ahead of allocation (refcount.c) */

    pthread_rwlock_t lock;
    pthread_mutex_t flush_lock;

    /* ---- the mapping ---- */
    uint64_t *l1;      /* l1_size entries, host order */
    uint64_t **l2;     /* per L1 index: the table if cached, or NULL */
    uint64_t **l2bm;   /* per L1 index: the tables' subcluster bitmaps
                          (extended L2 entries only, else all NULL) */
    uint8_t *l2_dirty; /* per L1 index: QCOW2_L2_CLEAN, _DIRTY, _WRITING */
    uint8_t *l2_ref;   /* per L1 index: CLOCK's referenced bit */
    uint32_t l1_cap;   /* entries allocated in l1, l2, l2_dirty, owner */
    bool l1_dirty;
    bool header_dirty;

    /* ---- the L2 cache (qcow2_l2cache.c) ---- */
    pthread_mutex_t l2_lock; /* orders loads under the shared lock */
    uint32_t *l2_slots;      /* L1 indices of the cached tables */
    size_t l2_n;             /* cached tables (atomic reads) */
    size_t l2_slots_cap;
    size_t l2_hand;    /* CLOCK's hand: an index into l2_slots */
    size_t l2_max;     /* tables kept: the limit */
    size_t l2_trim_at; /* trim when l2_n exceeds this (>= l2_max: raised
                          while every table left is dirty) */
    uint64_t l2_loads; /* tables read from the file (statistics) */

    /* ---- refcounts (writable images only) ---- */
    uint16_t *rc;       /* per host cluster */
    uint64_t rc_cap;    /* entries in rc */
    uint64_t end;       /* first cluster index past every used one */
    uint64_t free_hint; /* no free cluster below this index */
    uint64_t reserve;   /* clusters at the object's end kept for a flush's
                           refcount blocks and table (refcount.c) */
    uint64_t *rt;       /* the refcount table, host order */
    uint64_t rt_entries;
    uint8_t *rb_dirty; /* per refcount block: rb_cap entries */
    uint64_t rb_cap;
    bool rt_dirty;
    bool rt_moved;       /* the table was relocated: header before the L2s */
    uint64_t rb_entries; /* refcounts per block */
    uint64_t *pending;   /* host clusters to decrement after a flush */
    size_t npending, pending_cap;

    /* ---- guest clusters being allocated ---- */
    pthread_mutex_t inflight_lock;
    pthread_cond_t inflight_cond;
    uint64_t *inflight;
    size_t ninflight, inflight_cap;

    /* ---- the backing chain shortcut (qcow2_read.c) ---- */
    struct qcow2 **chain; /* read-only qcow2 layers below, same clusters */
    uint64_t *chain_clip; /* bytes readable through chain[0..d] */
    int chain_len;
    struct vs_bdev *tail;   /* first layer below the chain, or NULL */
    uint64_t tail_clip;     /* bytes readable through the whole chain */
    uint32_t chain_sc_bits; /* the smallest subcluster in the chain: the
                               step of an owner walk */
    uint8_t **owner;        /* per L1 index: one owner code per cluster */
};

/* The driver table (qcow2.c). */
extern const struct vs_driver vs_driver_qcow2;

/* ---- helpers (inline: hot path) ---- */

static inline uint64_t
qcow2_be64(const uint8_t *p)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static inline uint32_t
qcow2_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
}

static inline void
qcow2_put64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static inline void
qcow2_put32(uint8_t *p, uint32_t v)
{
    for (int i = 3; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

/* The L2 entry of guest cluster G (0 when no table maps it).  Its table
 * must have been loaded (qcow2_l2_load) under the lock still held. */
static inline uint64_t
qcow2_entry(const struct qcow2 *s, uint64_t g)
{
    uint64_t i = g >> s->l2_bits;

    if (i >= s->h.l1_size || s->l1[i] == 0)
        return 0;
    assert(s->l2[i] != NULL);
    return s->l2[i][g & (s->l2_entries - 1)];
}

/* The subcluster bitmap of guest cluster G (0 without extended L2
 * entries or without a table). */
static inline uint64_t
qcow2_bitmap(const struct qcow2 *s, uint64_t g)
{
    uint64_t i = g >> s->l2_bits;

    if (!s->extl2 || i >= s->h.l1_size || s->l1[i] == 0)
        return 0;
    assert(s->l2bm[i] != NULL);
    /* atomic: writers under the shared lock set bits (qcow2_write.c) */
    return __atomic_load_n(&s->l2bm[i][g & (s->l2_entries - 1)],
                           __ATOMIC_ACQUIRE);
}

/* The kind of a whole cluster's entry E.  With extended L2 entries this
 * only says whether a host cluster is referenced: what reads come from is
 * per subcluster (qcow2_sc_kind). */
static inline enum qcow2_kind
qcow2_kind(const struct qcow2 *s, uint64_t e)
{
    if (e & QCOW2_COMPRESSED)
        return QCOW2_COMPRESSED_CLUSTER;
    if ((e & QCOW2_ZERO) && s->h.version >= 3 && !s->extl2)
        return QCOW2_ZERO_CLUSTER;
    if (e & QCOW2_OFFSET_MASK)
        return QCOW2_NORMAL;
    return QCOW2_UNALLOCATED;
}

/* What subcluster SC of a cluster with entry E and bitmap BM reads as
 * (without subclusters, SC is 0 and this is the entry's kind). */
static inline enum qcow2_kind
qcow2_sc_kind(const struct qcow2 *s, uint64_t e, uint64_t bm, unsigned sc)
{
    if (!s->extl2 || (e & QCOW2_COMPRESSED))
        return qcow2_kind(s, e);
    if (bm >> sc & 1)
        return QCOW2_NORMAL;
    if (bm >> (32 + sc) & 1)
        return QCOW2_ZERO_CLUSTER;
    return QCOW2_UNALLOCATED;
}

/* The subcluster of guest offset OFF inside its cluster. */
static inline unsigned
qcow2_sc_index(const struct qcow2 *s, uint64_t off)
{
    return (unsigned)((off & (s->cs - 1)) >> s->sc_bits);
}

/* What the subcluster holding guest offset OFF reads as in layer S. */
static inline enum qcow2_kind
qcow2_kind_at(const struct qcow2 *s, uint64_t off)
{
    uint64_t g = off >> s->cluster_bits;

    return qcow2_sc_kind(s, qcow2_entry(s, g), qcow2_bitmap(s, g),
                         qcow2_sc_index(s, off));
}

/* Whether the L2 cache holds more tables than it may keep now. */
static inline bool
qcow2_l2_over(struct qcow2 *s)
{
    return __atomic_load_n(&s->l2_n, __ATOMIC_RELAXED) >
           __atomic_load_n(&s->l2_trim_at, __ATOMIC_RELAXED);
}

/* Take the exclusive lock, evict clean tables, release it. */
void qcow2_l2_trim_now(struct qcow2 *s);
/* Evict clean tables until the cache is within its limit; wrlock. */
void qcow2_l2_trim(struct qcow2 *s);

static inline void
qcow2_rdlock(struct qcow2 *s)
{
    pthread_rwlock_rdlock(&s->lock);
}

/* Release the lock (shared or exclusive); then trim the L2 cache if
 * loads made it overflow. */
static inline void
qcow2_unlock(struct qcow2 *s)
{
    pthread_rwlock_unlock(&s->lock);
    if (qcow2_l2_over(s))
        qcow2_l2_trim_now(s);
}

static inline void
qcow2_wrlock(struct qcow2 *s)
{
    pthread_rwlock_wrlock(&s->lock);
}

/* Release the exclusive lock, trimming the L2 cache first. */
static inline void
qcow2_wrunlock(struct qcow2 *s)
{
    if (qcow2_l2_over(s))
        qcow2_l2_trim(s);
    pthread_rwlock_unlock(&s->lock);
}

/* Log a corruption of the layer at debug level; return -EIO. */
int qcow2_corrupt(const struct qcow2 *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Log why the layer is refused at debug level; return ERR (negative). */
int qcow2_refuse(const struct qcow2 *s, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- qcow2_header.c ---- */

/* Read, parse and validate the header and its extensions into s->h. */
int qcow2_header_load(struct qcow2 *s);
/* Encode header H into a copy of s->raw_header (header_length bytes) in
 * BUF, which must hold s->h.header_length bytes. */
void qcow2_header_encode(const struct qcow2 *s, const struct qcow2_header *h,
                         uint8_t *buf);
/* Write header H to the file (no flush). */
int qcow2_header_write(struct qcow2 *s, const struct qcow2_header *h);
/* L1 entries needed to map SIZE bytes with cluster_bits CB and L2 tables
 * of 1 << L2_BITS entries. */
uint64_t qcow2_l1_needed(uint64_t size, uint32_t cb, uint32_t l2_bits);

/* ---- qcow2_create.c ---- */

/* Lay out an empty image of SIZE with 1 << CLUSTER_BITS byte clusters,
 * with extended L2 entries when EXTL2. */
int qcow2_create_image(struct vs_bdev *file, uint64_t size,
                       uint32_t cluster_bits, bool extl2,
                       const char *backing_name, const char *backing_format);

/* ---- qcow2_table.c ---- */

/* Load and validate the L1 table (L2 tables are loaded on demand). */
int qcow2_tables_load(struct qcow2 *s);
/* Read and validate the L2 table of L1 index I into T (l2_entries) and,
 * with extended L2 entries, its bitmaps into BM. */
int qcow2_l2_read(struct qcow2 *s, uint32_t i, uint64_t *t, uint64_t *bm);
/* Free the mapping. */
void qcow2_tables_free(struct qcow2 *s);
/* Make sure guest cluster G has an L2 table (allocating one); wrlock. */
int qcow2_l2_ensure(struct qcow2 *s, uint64_t g);
/* Set the L2 entry of guest cluster G (table must exist); wrlock. */
void qcow2_set_entry(struct qcow2 *s, uint64_t g, uint64_t e);
/* Set the L2 entry and subcluster bitmap of G (extended L2); wrlock. */
void qcow2_set_entry_bm(struct qcow2 *s, uint64_t g, uint64_t e, uint64_t bm);
/* Grow the L1 table to hold N entries (relocating it); wrlock. */
int qcow2_l1_grow(struct qcow2 *s, uint32_t n);
/* Compressed entry E: host byte offset and byte length of its data. */
void qcow2_compressed_span(const struct qcow2 *s, uint64_t e, uint64_t *off,
                           uint64_t *len);

/* ---- qcow2_l2cache.c ---- */

/* Set the cache's limit from the process-wide size (and the test hook
 * VSTORFS_QCOW2_L2_CACHE); at open. */
void qcow2_l2_cache_init(struct qcow2 *s);
/* Make the L2 table of L1 index I (if the L1 maps one) cached, reading it
 * from the file on a miss; lock held, shared or exclusive. */
int qcow2_l2_load(struct qcow2 *s, uint64_t i);
/* The same for the tables mapping guest bytes [off, off + len). */
int qcow2_l2_load_range(struct qcow2 *s, uint64_t off, uint64_t len);
/* Put the table T (bitmaps BM) of L1 index I in the cache, dirty;
 * wrlock.  0 or -ENOMEM. */
int qcow2_l2_insert_new(struct qcow2 *s, uint32_t i, uint64_t *t, uint64_t *bm);
/* After a flush wrote the snapshotted tables: they are clean now;
 * wrlock. */
void qcow2_l2_written(struct qcow2 *s);
/* Tables dirty or being written beyond the limit: a flush would help. */
bool qcow2_l2_needs_flush(struct qcow2 *s);
void qcow2_l2_cache_free(struct qcow2 *s);

/* ---- qcow2_refcount.c ---- */

/* Load the refcount table and blocks (writable images). */
int qcow2_rc_load(struct qcow2 *s);
void qcow2_rc_free(struct qcow2 *s);
/* Allocate one free host cluster (refcount 1): its byte offset, or 0
 * with *err set (-ENOSPC when the object cannot grow to hold it and the
 * refcount metadata a flush needs for it); wrlock. */
uint64_t qcow2_alloc_cluster(struct qcow2 *s, int *err);
/* Allocate N contiguous host clusters at the end of the image; wrlock. */
uint64_t qcow2_alloc_clusters(struct qcow2 *s, uint64_t n, int *err);
/* Give back a cluster that was never referenced on disk; wrlock. */
void qcow2_rc_release(struct qcow2 *s, uint64_t host);
/* Queue a decrement of the host cluster at HOST for after the next
 * flush has made its unlinking durable; wrlock. */
int qcow2_free_later(struct qcow2 *s, uint64_t host);
/* Queue the clusters a compressed entry spans; wrlock. */
int qcow2_free_compressed_later(struct qcow2 *s, uint64_t e);
/* The refcount of the cluster at byte offset HOST. */
uint64_t qcow2_rc_get(const struct qcow2 *s, uint64_t host);
/* Give every dirty refcount block a cluster and the table room for them
 * (may relocate the table); wrlock. */
int qcow2_rc_prepare(struct qcow2 *s);
/* Encode refcount block B into BUF (cluster size). */
void qcow2_rc_encode_block(const struct qcow2 *s, uint64_t b, uint8_t *buf);
/* Apply decrements LIST[0..n); wrlock. */
void qcow2_rc_apply_frees(struct qcow2 *s, const uint64_t *list, size_t n);

/* ---- qcow2_check.c ---- */

/* Count every reference and compare with the loaded refcounts: -EIO when
 * a cluster is used more often than counted (writable open). */
int qcow2_check_refcounts(struct qcow2 *s);

/* ---- qcow2_flush.c ---- */

/* Write dirty metadata out in crash-safe order; flush_lock held. */
int qcow2_meta_flush(struct qcow2 *s);
/* When the L2 cache is full of dirty tables, flush the metadata (unless
 * a flush is under way); no lock held.  Always 0: a failed flush leaves
 * the tables dirty for the next one. */
int qcow2_flush_if_full(struct qcow2 *s);

/* ---- qcow2_read.c ---- */

/* Record a new backing name and format in the header (qcow2_backing.c). */
int qcow2_set_backing(struct vs_bdev *bs, const char *name, const char *format);

/* Set up the backing-chain shortcut at open. */
int qcow2_chain_init(struct qcow2 *s);
void qcow2_chain_free(struct qcow2 *s);
ssize_t qcow2_preadv(struct vs_bdev *bs, const struct iovec *iov, int iovcnt,
                     uint64_t offset, unsigned flags);
/* Read LEN bytes of guest cluster G from IN into BUF as this layer and the
 * layers below see them (entry E, bitmap BM are G's current ones); rdlock
 * held. */
int qcow2_read_cluster(struct qcow2 *s, uint64_t g, uint64_t e, uint64_t bm,
                       uint8_t *buf, uint64_t in, uint64_t len);

/* ---- qcow2_write.c ---- */

ssize_t qcow2_pwritev(struct vs_bdev *bs, const struct iovec *iov, int iovcnt,
                      uint64_t offset, unsigned flags);
/* Wait until guest cluster G is not being allocated; releases and
 * retakes the write lock. */
void qcow2_inflight_wait(struct qcow2 *s, uint64_t g);
/* Whether guest cluster G is being allocated (wrlock held). */
bool qcow2_inflight_has(struct qcow2 *s, uint64_t g);

/* ---- qcow2_zero.c ---- */

int qcow2_discard(struct vs_bdev *bs, uint64_t offset, uint64_t length);
int qcow2_write_zeroes(struct vs_bdev *bs, uint64_t offset, uint64_t length,
                       unsigned flags);

/* ---- qcow2_subcluster.c ---- */

/* Check the bitmap BM of an extended L2 entry E: 0, or -EIO. */
int qcow2_sc_check(const struct qcow2 *s, uint64_t e, uint64_t bm);
/* Bitmap bits of subclusters [first, last] (inclusive), low half. */
uint64_t qcow2_sc_mask(unsigned first, unsigned last);
/* Whether the bytes [in, in + n) of a cluster with entry E and bitmap BM
 * lie in subclusters that are all allocated. */
bool qcow2_sc_all_alloc(const struct qcow2 *s, uint64_t e, uint64_t bm,
                        uint64_t in, uint64_t n);
/* Whether the cluster G has anything of its own in layer S (any
 * subcluster allocated or zero, or a compressed cluster). */
bool qcow2_has_any(const struct qcow2 *s, uint64_t g);
/* Whether a new layer (over a backing file when BACKED) gets extended L2
 * entries: VSTORFS_QCOW2_EXTL2 in the environment says 0 (never), 1 (over
 * a backing file) or all (every layer: for tests); else the default. */
bool qcow2_extl2_wanted(bool backed);

/* ---- qcow2_compress.c ---- */

/* Inflate compressed entry E into OUT (one cluster). */
int qcow2_read_compressed(struct qcow2 *s, uint64_t e, uint8_t *out);

/* ---- qcow2_iov.c ---- */

/* Bytes in IOV, or -EINVAL past SSIZE_MAX. */
ssize_t qcow2_iov_total(const struct iovec *iov, int iovcnt);
/* Fill OUT (room for iovcnt entries) with the pieces of IOV covering
 * [skip, skip + len); return their count. */
int qcow2_iov_slice(const struct iovec *iov, int iovcnt, size_t skip,
                    size_t len, struct iovec *out);
/* Zero LEN bytes of IOV from SKIP. */
void qcow2_iov_zero(const struct iovec *iov, int iovcnt, size_t skip,
                    size_t len);
/* Copy between IOV at SKIP and BUF. */
void qcow2_iov_to_buf(const struct iovec *iov, int iovcnt, size_t skip,
                      void *buf, size_t len);
void qcow2_iov_from_buf(const struct iovec *iov, int iovcnt, size_t skip,
                        const void *buf, size_t len);

#endif
