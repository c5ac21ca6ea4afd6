/*
 * Internal interfaces of the FUSE daemon (fs/ only).
 *
 *   options.c  the command line and -o options           -> struct vs_config
 *   tree.c     the namespace: domains, images, volumes kept in memory,
 *              mirrored in the catalog and the domains' metadata
 *   rescan.c   rebuilding the catalog from the domains' metadata
 *   domain.c   opening a domain's store with its options and secrets
 *   volume.c   a volume's open block device, its size and its openers
 *   idle.c     closing the chains of volumes nobody uses (an LRU)
 *   chain.c    backing links (thin clones) and snapshots
 *   merge*.c   removing a layer by a background merge (merge_job.h)
 *   map.c      a volume's `map` file
 *   ops.c      FUSE namespace requests (lookup, mkdir, rename ...)
 *   io.c       FUSE data requests (read, write, fsync, fallocate, lseek)
 *   xattr.c    user.vstor.* attributes
 *   passthrough.c  kernel FUSE passthrough of raw local volumes (custom io)
 *   main.c     session set-up and the multithreaded loop
 *
 * Locking: one rwlock guards the namespace (the node graph, the catalog and
 * the metadata areas).  Namespace changes take it for writing; lookups and
 * attribute reads for reading.  The data path never takes it: an open file
 * handle holds a reference on its struct vs_volume.
 */
#ifndef VS_FS_H
#define VS_FS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/stat.h>

#include "vs/bdev.h"
#include "vs/catalog.h"
#include "vs/meta_area.h"

/* ---- configuration (options.c) ---- */

enum vs_passthrough_mode {
    VS_PASSTHROUGH_OFF = 0, /* every open through the daemon (default) */
    VS_PASSTHROUGH_AUTO,    /* when the kernel offers it; else quietly off */
    VS_PASSTHROUGH_ON,      /* the same, but a warning when it cannot */
};

struct vs_config {
    char *data_dir;
    char *catalog_path;
    char *mountpoint;
    bool foreground;
    bool show_help;
    bool show_version;
    bool allow_other;
    bool read_only;
    int log_level;
    char *debug;
    unsigned threads;
    unsigned max_write;
    unsigned max_background;
    unsigned max_idle_layers; /* 0: derived from RLIMIT_NOFILE (idle.c) */
    uint64_t l2_cache_size;   /* bytes of L2 tables per qcow2 layer */
    char *domain_root; /* location holding the domains; NULL: the registry's
                          default under data_dir (vs_store_default_root) */
    char *fuse_opts;   /* extra -o options handed to libfuse */
    int passthrough;   /* enum vs_passthrough_mode */
};

/* The daemon: parse ARGV, serve until unmounted or signalled; the exit
 * status (daemon.c). */
int vs_daemon_main(int argc, char **argv);

/* Parse argv into cfg.  Returns 0, or -EINVAL after printing why. */
int vs_config_parse(int argc, char **argv, struct vs_config *cfg);
void vs_config_free(struct vs_config *cfg);
void vs_config_usage(FILE *out, const char *prog);

/* ---- inode numbers ---- */

enum vs_part {
    VS_PART_DIR = 0,  /* the node's directory */
    VS_PART_FILE = 1, /* a volume's data file */
    VS_PART_LINK = 2, /* a volume's backing symlink */
    VS_PART_MAP = 3,  /* a volume's allocation map (JSON, read-only) */
};

#define VS_INO_ROOT 1
#define VS_INO(id, part) (((uint64_t)(id) << 2) | (uint64_t)(part))
#define VS_INO_ID(ino) ((int64_t)((ino) >> 2))
#define VS_INO_PART(ino)                                                       \
    ((enum vs_part)((ino) == VS_INO_ROOT ? VS_PART_DIR : (ino)&3))

/* ---- volumes (volume.c) ---- */

/* A volume's I/O gate (gate.c). */
struct vs_gate {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned inflight; /* requests inside */
    unsigned waiting;  /* exclusive holders waiting: new requests wait */
    bool held;         /* closed by one exclusive holder */
};

void vs_gate_init(struct vs_gate *g);
void vs_gate_destroy(struct vs_gate *g);
/* Pass shared: waits while the gate is closed or about to be. */
void vs_gate_enter(struct vs_gate *g);
/* Leave after vs_gate_enter, from any thread. */
void vs_gate_leave(struct vs_gate *g);
/* Close exclusively once every request inside has left; then reopen. */
void vs_gate_close(struct vs_gate *g);
void vs_gate_open(struct vs_gate *g);

struct vs_volume {
    pthread_mutex_t lock; /* bdev opening, size changes, open_count */
    /* I/O passes it shared (and may leave from a completion thread);
     * replacing the stack (snapshot, merge) and closing an idle chain
     * (idle.c) close it, so a swap is atomic with respect to in-flight
     * requests (gate.c) */
    struct vs_gate io_gate;
    atomic_int refs; /* the tree node's and each handle's */
    /* The whole chain, opened on first use.  Set and cleared under lock
     * (and io_gate closed when cleared); while no handle holds the
     * volume it may be closed (idle.c), but only under the namespace lock
     * held for writing: read it under the namespace lock, or while holding
     * a handle (open_count), or from a running merge. */
    struct vs_bdev *bdev;
    int64_t id; /* the node's catalog id (for vs_merge_busy) */
    /* The idle LRU (idle.c), under its lru_lock: linked while bdev is open
     * and open_count is 0; lru_layers counted in its limit; lru_stamp
     * changes at each use. */
    struct vs_volume *lru_prev, *lru_next;
    bool on_lru;
    unsigned lru_layers;
    uint64_t lru_stamp;
    /* While bdev is closed: the size and allocation it had when it was last
     * open (or borrowed), which stat and xattrs answer (under lock). */
    bool sizes_known;
    int64_t known_size, known_alloc;
    _Atomic uint64_t size;
    int open_count; /* FUSE file handles */
    int writers;    /* of which opened for writing */
    char *label;    /* "domain/image/volume" for log lines */
    /* While a merge copies this volume's own layer down into its backing
     * (merge_copy.c): one bit per VS_MERGE_CHUNK of [0, dirty_chunks chunks)
     * that a write changed since the merge last copied it; NULL otherwise.
     * Set and cleared with io_gate closed; writers mark it inside
     * io_gate, after their write completed. */
    _Atomic uint64_t *_Atomic dirty;
    uint64_t dirty_chunks;
    /* The last failure to open the chain (under lock): while it is recent,
     * vs_node_bdev answers it again without retrying (and logging) */
    int bdev_error;
    int64_t bdev_error_at; /* CLOCK_MONOTONIC seconds */
    /* I/O error lines are rate-limited per volume (io.c): when the last
     * was logged (CLOCK_MONOTONIC seconds + 1; 0: never) and how many
     * failures were left out since */
    _Atomic int64_t io_error_logged_at;
    atomic_uint io_errors_unlogged;
    /* Kernel FUSE passthrough (passthrough.c), under lock: how many of the
     * open_count handles the kernel serves itself, and the backing id they
     * share (registered at the first, closed at the last).  The kernel
     * wants every open of an inode passthrough while one is, so while
     * pt_opens > 0 every new open joins, and nothing may change the chain,
     * the format or who may write (snapshot, clone, merge, chmod: EBUSY). */
    int pt_opens;
    int pt_id;
};

#define VS_BDEV_RETRY_SECS 60   /* a chain that did not open is retried after */
#define VS_IO_ERROR_LOG_SECS 10 /* one I/O error line per volume per */

#define VS_MERGE_CHUNK (1u << 20) /* what a merge copies in one step */

struct vs_volume *vs_volume_new(const char *label);
void vs_volume_ref(struct vs_volume *vol);
void vs_volume_unref(struct vs_volume *vol);
/* Install BS (a freshly opened chain) unless another thread was first; the
 * loser's chain is closed.  Returns the installed chain. */
struct vs_bdev *vs_volume_install(struct vs_volume *vol, struct vs_bdev *bs);
/* Replace the chain, with I/O held off (io_gate closed by the caller).
 * Returns the old one for the caller to close or reuse. */
struct vs_bdev *vs_volume_swap(struct vs_volume *vol, struct vs_bdev *bs);
/* Close the chain so the next use reopens it (nobody may have it open). */
void vs_volume_drop(struct vs_volume *vol);
/* Closing an idle chain (idle.c), in two steps so that no storage I/O
 * happens under the namespace lock.  First, without it: flush the chain
 * and read its sizes (0, -ENOENT when it is closed already, or the flush's
 * error, logged: the chain then stays open).  Then, with the namespace
 * lock held for writing: take the chain out of the volume into *OUT for
 * the caller to close after dropping the lock, remembering the sizes;
 * -EBUSY when somebody holds a handle, a merge tracks it, or it was
 * written since the flush. */
int vs_volume_prepare_idle_close(struct vs_volume *vol, int64_t *size,
                                 int64_t *allocated);
int vs_volume_detach_idle(struct vs_volume *vol, int64_t size,
                          int64_t allocated, struct vs_bdev **out);
/* The sizes remembered from the chain's last time open; false if none. */
bool vs_volume_known_sizes(struct vs_volume *vol, int64_t *size,
                           int64_t *allocated);
/* Remember SIZE and ALLOCATED for while the chain is closed. */
void vs_volume_remember_sizes(struct vs_volume *vol, int64_t size,
                              int64_t allocated);

/* ---- threads of our own (thread.c) ---- */

/* pthread_create with every signal blocked in the new thread, so that the
 * signals that stop the daemon reach a FUSE worker; 0 or -errno. */
int vs_thread_start(pthread_t *thread, void *(*fn)(void *), void *arg);
/* Cancel a thread once, so that glibc loads what cancellation needs now
 * and not at unmount, when descriptors may have run out; 0 or -errno. */
int vs_thread_prepare_cancel(void);

/* ---- idle chains (idle.c) ---- */

struct vs_tree;

/* Put VOL on the idle LRU (most recently used) when its chain is open and
 * no handle holds it, or take it off; vol->lock held. */
void vs_idle_update(struct vs_volume *vol);
/* Take VOL off the LRU (its last reference is gone). */
void vs_idle_remove(struct vs_volume *vol);
/* The default limit: an eighth of RLIMIT_NOFILE in layers (a quarter of
 * the descriptors at two per local layer), at least 8. */
uint64_t vs_idle_default_limit(void);
/* Start the thread that closes idle chains past LIMIT layers (0: the
 * default) of TREE's volumes; stop it (before the tree is closed). */
int vs_idle_start(struct vs_tree *tree, uint64_t limit);
void vs_idle_stop(void);
/* The layers of idle open chains now. */
uint64_t vs_idle_layers(void);
/* Register an opener; with truncate, empty the volume first (EBUSY when
 * somebody else has it open). */
int vs_volume_open(struct vs_volume *vol, bool truncate, bool writable);
void vs_volume_release(struct vs_volume *vol, bool writable);
/* Note that [OFF, OFF + LEN) changed, for a merge copying this volume
 * down (no-op when none does).  inside io_gate, after the write. */
void vs_volume_mark_dirty(struct vs_volume *vol, uint64_t off, uint64_t len);
/* The largest size a volume may have: 1 PiB, what a qcow2 layer with 64 KiB
 * clusters and extended L2 entries (32 MiB of L1 at most, as QEMU) can map,
 * so that any volume can take a snapshot layer on top. */
#define VS_VOLUME_SIZE_MAX (1ull << 50)

/* Grow to at least SIZE (no-op when already larger); EFBIG past
 * VS_VOLUME_SIZE_MAX. */
int vs_volume_grow(struct vs_volume *vol, uint64_t size);
/* Undo a growth to GROWN back to SIZE (a failed fallocate), if nothing else
 * changed the size since; io_gate closed. */
void vs_volume_ungrow(struct vs_volume *vol, uint64_t grown, uint64_t size);
/* Shrink to SIZE: EBUSY if opened, EINVAL if SIZE is larger. */
int vs_volume_shrink(struct vs_volume *vol, uint64_t size);

/* ---- the space reserve (reserve.c) ---- */

#define VS_RESERVE_BYTES (4u << 20) /* DATA_DIR/reserve */

/* Remember DATA_DIR, whose file system the reserve is for. */
int vs_reserve_init(const char *data_dir);
/* Before a change that must work on a full file system (WHY names it in the
 * log): delete the reserve when less than its size is free. */
void vs_reserve_release_if_full(const char *why);
/* Make the reserve when it is missing and twice its size is free. */
void vs_reserve_refill(void);
void vs_reserve_fini(void);

/* ---- the namespace (tree.c, rescan.c) ---- */

struct vs_domain {
    struct vs_store *store;    /* NULL when it cannot be opened */
    struct vs_meta_area *meta; /* NULL when it cannot be read */
    /* why the domain is served read-only (its metadata is in doubt: a
     * rescan found records missing or untrusted), or NULL */
    char *read_only;
};

struct vs_node {
    struct vs_cat_node cat; /* cat.kind, cat.id, cat.name ... */
    struct vs_node *parent;
    /* children in creation order, and their index by name (tree_index.c) */
    struct vs_node *children; /* first child */
    struct vs_node *last_child;
    struct vs_node *sibling; /* next child of parent */
    struct vs_node *prev_sibling;
    struct vs_node **names; /* NULL: the list is walked */
    size_t names_size;
    struct vs_node *name_next; /* in the parent's names slot */
    struct vs_node *hash_next; /* in the tree's id slot */
    unsigned nchildren;
    unsigned layers_above;    /* volumes whose backing this volume is */
    struct vs_domain *domain; /* owned by the domain node, shared below */
    struct vs_volume *vol;    /* volumes only; the node holds a ref */
    /* volumes only: why it cannot be served (its record is untrusted or
     * missing, its backing is missing), or NULL */
    char *unavailable;
    /* volumes only: its record says a merge of it is under way, and that
     * merge waits for another one along its chain to end (merge.c) */
    bool merge_waiting;
};

struct vs_tree {
    pthread_rwlock_t lock;
    struct vs_catalog *cat;
    char *data_dir;
    /* where new domains are made and rescans look for them: a location
     * whose stores are domains ("dir:DATA_DIR/domains" by default) */
    char *domain_root;
    char host_uuid[VS_UUID_LEN + 1];
    int64_t created;
    struct vs_node root;
    struct vs_node **hash;
    size_t hash_size;
    size_t count;
    /* set at open with VS_TREE_DEFER_REPAIRS: the first rescan changes
     * nothing on the storage (a start that fails later, say at the mount,
     * leaves it as it was); vs_tree_finish_start runs what it found */
    bool defer_repairs;
    void *deferred; /* what that rescan found to repair (rescan.c) */
};

#define VS_TREE_DEFER_REPAIRS 1u

/* Open the tree of DATA_DIR: its catalog at CATALOG_PATH, its domains
 * under DOMAIN_ROOT (NULL: the directory DATA_DIR/domains), rescanned. */
int vs_tree_open(const char *data_dir, const char *domain_root,
                 const char *catalog_path, unsigned flags,
                 struct vs_tree **out);
/* Once the start can no longer fail: run the repairs a deferred open
 * found (interrupted steps, record copies to rewrite). */
void vs_tree_finish_start(struct vs_tree *tree);
void vs_tree_close(struct vs_tree *tree);

void vs_tree_rdlock(struct vs_tree *tree);
void vs_tree_wrlock(struct vs_tree *tree);
void vs_tree_unlock(struct vs_tree *tree);

/* The node of inode INO (either part), or NULL.  Hold the lock. */
struct vs_node *vs_tree_node(struct vs_tree *tree, uint64_t ino);
/* The child NAME of PARENT, or NULL. */
struct vs_node *vs_node_child(struct vs_node *parent, const char *name);

/* The indexes (tree_index.c); write lock held. */
int vs_tree_index_id(struct vs_tree *tree, struct vs_node *node);
void vs_tree_unindex_id(struct vs_tree *tree, struct vs_node *node);
void vs_node_link_child(struct vs_node *parent, struct vs_node *child);
void vs_node_unlink_child(struct vs_node *child);
/* Give CHILD a new name in its parent's index (and in its cat.name). */
void vs_node_rename_child(struct vs_node *child, const char *newname);
/* "domain/image/volume" for log lines, into buf. */
const char *vs_node_path(const struct vs_node *node, char *buf, size_t len);
/* The kind's name: "root", "domain", "image", "volume". */
const char *vs_node_kind_name(enum vs_node_kind kind);

/* Namespace changes; call with the write lock held.  Each keeps the
 * domain's metadata, the catalog and the storage in agreement, and undoes
 * what it did when a later step fails. */
int vs_tree_mkdir(struct vs_tree *tree, struct vs_node *parent,
                  const char *name, mode_t mode, uid_t uid, gid_t gid,
                  struct vs_node **out);
int vs_tree_rmdir(struct vs_tree *tree, struct vs_node *node);
/* What rmdir does once its checks passed (merge.c removes a merged layer
 * with it). */
int vs_tree_remove(struct vs_tree *tree, struct vs_node *node);
int vs_tree_rename(struct vs_tree *tree, struct vs_node *node,
                   const char *newname);
int vs_tree_set_owner(struct vs_tree *tree, struct vs_node *node,
                      const mode_t *mode, const uid_t *uid, const gid_t *gid);

/* Write ROW (NODE's new state, backing layer BACKING) to the domain's
 * record and the catalog; on a catalog failure the record is put back. */
int vs_tree_store_row(struct vs_tree *tree, struct vs_node *node,
                      struct vs_cat_node *row, const struct vs_node *backing);
/* The same, the record also naming PENDING (an object being made for the
 * node, removed by a rescan if still named so) and RETIRED (an object the
 * node gave up, removed by a rescan); either may be NULL. */
int vs_tree_store_row_marked(struct vs_tree *tree, struct vs_node *node,
                             struct vs_cat_node *row,
                             const struct vs_node *backing, const char *pending,
                             const char *retired);
/* Rewrite NODE's record naming OBJECT as pending, before OBJECT is made. */
int vs_tree_mark_pending(struct vs_tree *tree, struct vs_node *node,
                         const char *object);
/* Steps 2-4 for a new node whose storage exists: its record (a new slot),
 * its catalog row, its node under PARENT; undone on failure. */
int vs_tree_publish(struct vs_tree *tree, struct vs_node *parent,
                    struct vs_domain *dom, struct vs_cat_node *row,
                    struct vs_node **out);
/* Drop NODE's row and node (and, unless KEEP_RECORD, its record), leaving
 * its storage alone. */
void vs_tree_forget(struct vs_tree *tree, struct vs_node *node,
                    bool keep_record);
/* Make ROW the node's state in memory (after vs_tree_store_row). */
void vs_tree_replace_row(struct vs_tree *tree, struct vs_node *node,
                         const struct vs_cat_node *row);

/* ---- backing chains (chain.c) ---- */

/* Resolve a backing link's text against VOL's directory: the volume it
 * names, or -EINVAL (absolute, not a volume), -EXDEV (another domain or
 * outside the mount), -ENOENT. */
int vs_chain_resolve(struct vs_node *vol, const char *link,
                     struct vs_node **out);
/* The link text of VOL's backing ("../base" or "../../img/base"). */
int vs_chain_link_text(struct vs_tree *tree, struct vs_node *vol, char *buf,
                       size_t len);
/* Make VOL (empty) a thin clone of PARENT: EEXIST, ELOOP, ENOTEMPTY (VOL has
 * data), EBUSY (VOL open, or PARENT open for writing). */
int vs_chain_set_backing(struct vs_tree *tree, struct vs_node *vol,
                         struct vs_node *parent);
/* Remove VOL's backing: ENOTEMPTY if VOL has data of its own. */
int vs_chain_clear_backing(struct vs_tree *tree, struct vs_node *vol);
/* Lay an empty base volume out again as FORMAT ("raw" or "qcow2"):
 * EINVAL (another format, or VOL has a backing: a layer is qcow2),
 * ENOTEMPTY (it has data or layers above), EBUSY (open, or merging). */
int vs_chain_set_format(struct vs_tree *tree, struct vs_node *vol,
                        const char *format);
/* Freeze VOL's contents as a new read-only volume NAME beside it and put an
 * empty layer on top for VOL, atomically with respect to its I/O: EINVAL
 * (bad name, or VOL is itself a frozen layer), EEXIST (name taken). */
int vs_chain_snapshot(struct vs_tree *tree, struct vs_node *vol,
                      const char *name, struct vs_node **out);

/* ---- merges (merge.c) ---- */

/* rmdir of a layer one volume is based on: merge it away in the
 * background; ENOTEMPTY when several are based on it, EBUSY when a merge
 * already involves it. */
int vs_merge_start(struct vs_tree *tree, struct vs_node *v);
/* Restart the merges that records say were under way (after a rescan). */
void vs_merge_resume_all(struct vs_tree *tree);
/* Pause every merge (they resume at the next start) and wait for them. */
void vs_merge_stop_all(void);
/* Whether a running merge involves volume ID / any merge runs. */
bool vs_merge_busy(int64_t id);
/* Whether NODE's chain must not change: a running merge involves it, or
 * its record or its backing's says a merge is under way (one that failed
 * or waits resumes later, and needs the chain as it is). */
bool vs_merge_holds(struct vs_tree *tree, const struct vs_node *node);
bool vs_merge_any_running(void);
/* "merge\tLAYER\tchild|down\tDONE\tTOTAL\tSTATE[\tREASON]\n" for the job of
 * volume ID (-ENODATA if none), or for every job. */
int vs_merge_describe(int64_t id, char *buf, size_t len);
int vs_merge_list(char *buf, size_t len);

/* Open NODE's whole chain with FLAGS for its own layer (parents read-only),
 * separately from the volume's shared chain. */
int vs_tree_open_chain(struct vs_tree *tree, struct vs_node *node,
                       unsigned flags, struct vs_bdev **out);
/* The same, with NODE's own layer as ROW describes it (its object, format
 * and backing): a switch opens the new chain before the row is stored, so
 * a layer that does not open changes nothing. */
int vs_tree_open_chain_as(struct vs_tree *tree, struct vs_node *node,
                          const struct vs_cat_node *row, unsigned flags,
                          struct vs_bdev **out);
/* Whether volume LAYER is N itself or one of the layers below N. */
bool vs_tree_in_chain(struct vs_tree *tree, const struct vs_node *n,
                      int64_t layer);

/* Attach an in-memory node for a catalog row (tree.c, used by rescan). */
int vs_tree_attach(struct vs_tree *tree, const struct vs_cat_node *row);
/* Drop every node below the root (rescan rebuilds them). */
void vs_tree_detach_all(struct vs_tree *tree);
/* Open the store and metadata area of a domain node; one that cannot be
 * opened is kept, read-only, with the reason. */
int vs_tree_open_domain(struct vs_tree *tree, struct vs_node *domain_node);

/* ---- a domain's options and secrets (domain.c) ---- */

/* Open the store of domain ROW (row->location) with its options and the
 * secrets this host keeps for it (DATA_DIR/secrets/UUID).  On failure the
 * reason, naming keys but never a secret's value, is in WHY. */
int vs_domain_open_store(struct vs_tree *tree, const struct vs_cat_node *row,
                         bool create, struct vs_store **out, char *why,
                         size_t len);
/* Set the options of domain NODE to TEXT (SIZE bytes, a trailing newline
 * allowed): parsed, checked by its driver on a store opened for the test
 * (with the host's secrets), then written to its record and catalog row.
 * They take effect at the domain's next attach (rescan, restart).
 * -EINVAL/-E2BIG (bad list, unknown key, bad value), -EPERM (not a
 * domain), -EROFS; the reason in WHY.  Write lock held. */
int vs_domain_set_options(struct vs_tree *tree, struct vs_node *node,
                          const char *text, size_t size, char *why, size_t len);
/* Remove the secrets file of removed domain UUID (logs a failure). */
void vs_domain_forget_secrets(struct vs_tree *tree, const char *uuid);
/* Serve DOM read-only from now on, for the reason WHY (logged by caller). */
void vs_domain_set_read_only(struct vs_domain *dom, const char *why);
/* Refuse to serve volume NODE, for the reason WHY. */
void vs_node_set_unavailable(struct vs_node *node, const char *why);
/* 0, or -EROFS (logged by the caller) when NODE's domain is read-only. */
int vs_node_check_writable(const struct vs_node *node);
/* 0, or -EIO when volume NODE (or its domain's storage) cannot be served. */
int vs_node_check_available(const struct vs_node *node);
/* The volume's chain of block devices (opening it on first use).  A chain
 * that did not open answers the same error for VS_BDEV_RETRY_SECS before
 * it is tried (and logged) again. */
int vs_node_bdev(struct vs_tree *tree, struct vs_node *vol_node,
                 struct vs_bdev **out);
/* The volume's open chain, or else a read-only one opened for the caller,
 * who closes *TEMP (set then) when done: a look at a volume nobody has
 * open (stat, xattr, map) leaves no descriptor open. */
int vs_node_borrow(struct vs_tree *tree, struct vs_node *vol_node,
                   struct vs_bdev **out, struct vs_bdev **temp);
/* A volume's virtual size and allocation (either may be NULL), from its
 * open chain, or else from a read-only chain opened for the question and
 * closed before returning: a stat or an xattr leaves no descriptor open. */
int vs_node_sizes(struct vs_tree *tree, struct vs_node *vol_node, int64_t *size,
                  int64_t *allocated);
/* Recount every volume's layers_above (after attaching a whole tree, where
 * a child may come before its parent). */
void vs_tree_count_layers(struct vs_tree *tree);
/* The volume node with catalog id ID, or NULL. */
struct vs_node *vs_tree_volume(struct vs_tree *tree, int64_t id);

#define VS_CHAIN_MAX 256 /* layers in one backing chain */

/* Bring the catalog in line with the domains found in the data directory,
 * then rebuild the in-memory tree from it.  Write lock held. */
int vs_tree_rescan(struct vs_tree *tree);
/* Run the repairs a rescan with defer_repairs set found, then forget
 * them; free them unrun (rescan.c).  Write lock held. */
void vs_tree_run_deferred(struct vs_tree *tree);
void vs_tree_free_deferred(void *deferred);

/* ---- the FUSE operations (ops.c, io.c, xattr.c) ---- */

struct fuse_lowlevel_ops;
struct fuse_session;
extern struct fuse_session *vs_session; /* for invalidation notices */

void vs_ops_init(struct fuse_lowlevel_ops *ops);
void vs_io_ops_init(struct fuse_lowlevel_ops *ops);
void vs_xattr_ops_init(struct fuse_lowlevel_ops *ops);

/* State shared by the operations: set by main before the session starts. */
struct vs_fs {
    struct vs_tree *tree;
    const struct vs_config *cfg;
};
extern struct vs_fs vs_fs;

/* ERR as the positive errno to reply; -EUCLEAN (the catalog found damaged
 * while running) logs one line for OP naming the catalog and how to
 * rebuild it, and becomes EIO. */
int vs_catalog_errno(const char *op, int err);

/* Fill ST for inode INO of NODE (lock held); -EIO (or the error) when it is
 * a data file whose chain cannot be opened. */
int vs_fill_stat(struct vs_node *node, enum vs_part part, struct stat *st);

/* The `map` file's JSON text for VOL's chain (map.c); caller frees. */
int vs_map_build(struct vs_tree *tree, struct vs_node *vol, char **text,
                 size_t *len);

/* An open data file (requests use h->vol->bdev inside vol->io_gate), or an
 * open map file (vol NULL, the text in map). */
struct vs_handle {
    struct vs_volume *vol;
    char *map;
    size_t map_len;
    unsigned io_flags; /* VS_IO_DIRECT when opened with O_DIRECT */
    bool writable;
    bool passthrough; /* the kernel serves its reads and writes */
};

/* ---- kernel FUSE passthrough (passthrough.c) ---- */

/* Route the session's requests and replies through our custom io so that
 * the INIT and OPEN replies can carry what libfuse 3.14 cannot say; called
 * after the mount, with the session's /dev/fuse descriptor.  A no-op when
 * the option is off. */
int vs_passthrough_setup(struct fuse_session *se, int mode);
/* Whether the kernel agreed to passthrough (known once INIT is done). */
bool vs_passthrough_active(void);
/* Whether data files carry no setuid/setgid bits because the daemon told
 * the kernel it drops privileges itself (FUSE_HANDLE_KILLPRIV_V2, which
 * spares every passthrough write a security.capability round trip). */
bool vs_passthrough_killpriv(void);
/* At an open of volume NODE (namespace lock held, its chain open and the
 * opener counted): serve it by passthrough when it qualifies, or join the
 * passthrough opens it has.  Returns the backing id to put in the reply
 * (> 0), or 0 for the daemon's path. */
int vs_passthrough_open(struct vs_node *node);
/* Mark the reply to the request this thread is serving (an OPEN) as a
 * passthrough open with backing id ID. */
void vs_passthrough_mark_reply(int id);
/* After the reply: whether it was the marked one and went out patched
 * (false: it never reached the hook, so the open is the daemon's). */
bool vs_passthrough_reply_patched(void);
/* A passthrough handle of VOL is closed; the last closes the backing id
 * and takes the object's size again (it may have been written past). */
void vs_passthrough_release(struct vs_volume *vol);
/* While VOL has passthrough opens: take its size from the object again
 * (root may have written past the end); vol->lock not held. */
void vs_passthrough_sync_size(struct vs_volume *vol);
/* Why NODE's chain, format or permissions may not change now: -EBUSY
 * (logged, with WHAT the caller was asked) while a passthrough open
 * exists; 0 otherwise. */
int vs_passthrough_busy(struct vs_node *node, const char *what);

#endif
