/*
 * The crash simulator: a disk that lives in memory, records every write
 * and every flush, and builds the images a power loss could leave behind,
 * in the spirit of SQLite's crash-test VFS (src/test6.c).
 *
 * A struct crashsim_disk is the storage: a growing byte array plus a log
 * of what was done to it (writes, zeroed ranges, size changes, flushes).
 * Tests reach it through two drivers, both registered at run time by
 * crashsim_register():
 *
 *   - "crashsim", a FORMAT-kind driver whose bdev has no file child: it is
 *     the bottom of a stack.  crashsim_open() makes one for a disk, and a
 *     format driver stacks on it with vs_format_open("qcow2", bdev, ...).
 *   - "crashsim-store", a PROTOCOL driver (locations "crashsim:NAME") whose
 *     objects are crashsim disks, for code that opens its own objects
 *     through a store (the domain metadata area).
 *
 * After the run, the log is cut into epochs: epoch K holds what was done
 * after flush K and before flush K + 1 (epoch 0 starts at the initial
 * contents; the last epoch runs to the end of the log).  A power loss in
 * epoch K keeps everything up to flush K and any part of epoch K: each
 * write kept, dropped, or torn (only its first 512-byte sectors applied).
 * crashsim_states() enumerates a bounded set of those images.
 *
 * Nothing here is thread-safe against concurrent enumeration and I/O; the
 * I/O callbacks themselves take the disk's lock.
 */
#ifndef VS_CRASHSIM_H
#define VS_CRASHSIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vs/bdev.h"

#define CRASHSIM_SECTOR 512
/* The location prefix of crashsim stores. */
#define CRASHSIM_SCHEME "crashsim:"

struct crashsim_disk;

/* Register "crashsim" and "crashsim-store" (once; later calls do nothing).
 * 0 or -errno. */
int crashsim_register(void);

/* A new disk whose durable contents are INITIAL[0..len) (NULL for an empty
 * disk).  NULL without memory. */
struct crashsim_disk *crashsim_disk_new(const void *initial, size_t len);
/* Free a disk; every bdev on it must be closed.  NULL is allowed. */
void crashsim_disk_free(struct crashsim_disk *d);

/* Open disk D as a "crashsim" bdev named LABEL (flags: vs_open_flags).
 * Close it with vs_bdev_close; the disk outlives it. */
int crashsim_open(struct crashsim_disk *d, const char *label, unsigned flags,
                  struct vs_bdev **out);

/* The disk of object NAME in crashsim store ST, or NULL. */
struct crashsim_disk *crashsim_store_disk(struct vs_store *st,
                                          const char *name);

/* ---- the log ---- */

enum crashsim_event_kind {
    CRASHSIM_WRITE = 1, /* bytes at off */
    CRASHSIM_ZERO,      /* discard or write_zeroes of [off, off + len) */
    CRASHSIM_RESIZE,    /* the size became off */
    CRASHSIM_FLUSH,
};

struct crashsim_event {
    enum crashsim_event_kind kind;
    uint64_t off;
    uint64_t len;
    const uint8_t *data; /* CRASHSIM_WRITE only; owned by the disk */
    uint64_t seq;        /* the instant it happened (crashsim_now) */
};

/* Flushes recorded so far (the number of epochs is this plus one). */
size_t crashsim_flushes(const struct crashsim_disk *d);
/* Events recorded so far, and event I of them (NULL if out of range). */
size_t crashsim_events(const struct crashsim_disk *d);
const struct crashsim_event *crashsim_event(const struct crashsim_disk *d,
                                            size_t i);
/* The events of epoch K: [*first, *end) of the log (flush excluded). */
void crashsim_epoch_span(const struct crashsim_disk *d, size_t k, size_t *first,
                         size_t *end);

/* ---- one clock for every disk ---- */

/* Every event of every disk, and every object created or removed in a
 * crashsim store, takes the next number of one process-wide clock, so a
 * power loss can be cut across several disks at one instant.  The number
 * the next event will take: */
uint64_t crashsim_now(void);
/* Called after each event with its number (NULL: none).  It runs on the
 * thread that made the event, with no crashsim lock held; a test uses it
 * to record what lives outside the disks at that instant (a catalog). */
void crashsim_set_hook(void (*fn)(uint64_t seq, void *arg), void *arg);

/* Fail opens of objects named NAME (in any crashsim store) with -ERR once
 * SKIP more opens of it have succeeded; NAME NULL ends it.  For the error
 * paths of code that opens objects itself. */
void crashsim_store_fail_opens(const char *name, unsigned skip, int err);

/* ---- worlds: every crashsim store at once ---- */

/* Free every store of the registry ("crashsim:" locations) and its disks. */
void crashsim_store_drop_all(void);

/* What the registry's stores went through: taken out of the registry, with
 * every disk's log and every object's creation and removal. */
struct crashsim_world;

/* Move every store into a new world; the registry is empty afterwards.
 * NULL without memory. */
struct crashsim_world *crashsim_world_take(void);
void crashsim_world_free(struct crashsim_world *w);

/* How a power loss treats event EV of a disk, not yet flushed when it hit:
 * the bytes of it that land (0: dropped; UINT64_MAX: kept whole; a size
 * change is kept unless 0). */
typedef uint64_t (*crashsim_fate_fn)(const struct crashsim_event *ev,
                                     void *arg);

/* Fill the (empty) registry with W's stores as a power loss at instant CUT
 * leaves them: the stores and objects that existed then, each object a
 * new disk whose durable contents are its events before CUT up to its last
 * flush before CUT, then its later events before CUT as FATE decides (NULL:
 * all kept).  0 or -ENOMEM. */
int crashsim_world_restore(struct crashsim_world *w, uint64_t cut,
                           crashsim_fate_fn fate, void *arg);
/* Whether instant SEQ of W is a barrier: a disk flush, or an object or a
 * store made or removed (where an ordered power loss is worth cutting). */
bool crashsim_world_barrier(const struct crashsim_world *w, uint64_t seq);
/* The events and flushes in W's disks (for the test's figures). */
void crashsim_world_counts(const struct crashsim_world *w, size_t *disks,
                           size_t *events, size_t *flushes);

/* ---- images ---- */

struct crashsim_image {
    uint8_t *data;
    uint64_t size;
    uint64_t cap;
};

/* Replace *img (zero-initialized before its first use) with the durable
 * image at flush K (0: the initial contents); K <= crashsim_flushes(d).
 * 0, -EINVAL or -ENOMEM. */
int crashsim_durable(struct crashsim_disk *d, size_t k,
                     struct crashsim_image *img);
/* Replace *img with the current contents (every event applied). */
int crashsim_current(struct crashsim_disk *d, struct crashsim_image *img);
void crashsim_image_free(struct crashsim_image *img);

/* ---- crash states ---- */

struct crashsim_opts {
    unsigned max_states;    /* per epoch, at most; 0 means 200 */
    unsigned random_states; /* random subsets with random tears */
    uint64_t seed;          /* for the random ones (mixed with the epoch) */
    /* Also leave garbage in the sector being written when the power went
     * (SQLite's "trash" mode): for code that claims to detect torn sectors
     * (checksummed records), not for code that relies on sector-atomic
     * writes (qcow2). */
    bool garble;
};

struct crashsim_state {
    size_t epoch;
    unsigned index;   /* within the epoch */
    const char *what; /* "all kept", "event 12 torn after 3 sectors"... */
    const uint8_t *data;
    uint64_t size;
};

/* Call FN for each enumerated image of a power loss in epoch K, in this
 * order, until the budget is spent: every event kept; every event dropped;
 * the first i events kept and the rest dropped (in-order loss); each event
 * dropped alone; each write torn after 1, half and all but one of its
 * sectors with the rest kept; the first i events kept, event i torn
 * halfway, the rest dropped; with opts->garble, each write's first and
 * last sector garbage (the sectors before it landed, the rest of the
 * epoch kept); then random subsets with random tears.  When
 * the epoch is too large for the budget, evenly spaced events stand for the
 * rest.  Stops and returns FN's nonzero return; 0 or -ENOMEM else. */
int crashsim_states(struct crashsim_disk *d, size_t k,
                    const struct crashsim_opts *opts,
                    int (*fn)(const struct crashsim_state *st, void *arg),
                    void *arg);

/* A 64-bit hash of BUF[0..len) mixed with SEED, to skip repeated states. */
uint64_t crashsim_hash(const void *buf, size_t len, uint64_t seed);

#endif
