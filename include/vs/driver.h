/*
 * The storage driver interface: what every backend implements.
 *
 * Two kinds of driver stack the way QEMU's block drivers do:
 *
 *   - a PROTOCOL driver knows a kind of storage (a local directory, an NFS
 *     export through libnfs, an iSCSI LUN through libiscsi, an LVM volume
 *     group).  It opens a *store* (one storage domain's space) and, inside
 *     it, named *objects* (one per volume layer, plus the domain's
 *     "metadata" object).  An open object is a struct vs_bdev.
 *
 *   - a FORMAT driver (raw, qcow2) interprets the bytes of an object.  It is
 *     a struct vs_bdev whose `file` child is the protocol object below it and
 *     whose `backing` child (copy-on-write formats only) is the parent layer.
 *
 * A request flows down: format bdev -> its file bdev -> storage.  What a
 * NULL callback of a format driver means depends on the driver's
 * `passthrough` flag:
 *
 *   - a PASSTHROUGH format (raw: the volume's bytes are the object's bytes
 *     at the same offsets) implements only what it changes, and a NULL
 *     callback falls through to the `file` child unchanged (nbdkit's
 *     filters do the same), which is why the raw driver is almost empty;
 *   - any other format (qcow2) maps offsets itself, so the file's bytes at
 *     the same offsets are never its answer: a NULL callback gets the
 *     generic emulation where one exists (write_zeroes as written zeros,
 *     block_status as "allocated data", copy_range through memory, submit
 *     run synchronously) and -ENOTSUP otherwise.
 *
 * Two operations concern the storage, not the bytes, and always reach
 * down: flush visits every layer, and get_allocated falls through to the
 * file when a format does not count its own.  The generic entry points that
 * do this dispatch, and the emulation of missing optional operations, are
 * in <vs/bdev.h>; nothing but the drivers themselves calls these pointers.
 *
 * Limits: each bdev carries a struct vs_limits (below) that its driver's
 * open fills; the generic layer splits requests so that no callback sees
 * more than it asked for.
 *
 * Threads: every callback may be called from several threads at once for
 * the same bdev (the FUSE daemon is multithreaded and has no global lock on
 * the I/O path).  Drivers protect their own metadata; plain data reads and
 * writes to distinct ranges must run in parallel.
 *
 * Errors: every callback returns 0 (or a count) on success and -errno on
 * failure, and must leave the object as it was when it fails.  Drivers log
 * at debug level at most; the caller logs the failure once.
 *
 * Versioning: a driver sets api_version to VS_DRIVER_API_VERSION and
 * struct_size to sizeof(struct vs_driver) as compiled; the registry refuses
 * a driver built against a newer interface and treats callbacks beyond an
 * older driver's struct_size as NULL (and flags beyond it as false: an
 * older format driver is never passthrough).  New members are appended.
 */
#ifndef VS_DRIVER_H
#define VS_DRIVER_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#include "vs/options.h"

#define VS_DRIVER_API_VERSION 1

enum vs_driver_kind {
    VS_DRIVER_PROTOCOL = 1, /* storage: dir, nfs, iscsi, lvm */
    VS_DRIVER_FORMAT = 2,   /* layout inside an object: raw, qcow2 */
};

/*
 * What a driver does natively and can offload to the storage.  The generic
 * layer emulates what is missing (zeroes become written buffers, copies
 * become read+write); callers use these only to choose a faster path and to
 * report them (user.vstor.backend, vstor info).
 */
struct vs_caps {
    bool unmap;        /* discard releases space on the storage */
    bool write_zeroes; /* zeroing a range costs no data transfer */
    bool alloc_status; /* block_status reports the storage's real holes */
    bool direct;       /* uncached (O_DIRECT-like) access is available */
    bool clone;        /* an object can share storage with a copy (FICLONE) */
    bool copy;         /* server-side copy (copy_file_range, XCOPY, NFS COPY) */
    bool snapshot;     /* storage-native point-in-time snapshot of an object */
};

/* Flags for object_open and for the format driver's open. */
enum vs_open_flags {
    VS_OPEN_RDONLY = 1 << 0, /* refuse writes; open read-only on storage */
    VS_OPEN_DIRECT = 1 << 1, /* bypass host caches when the storage can */
};

/* Flags for a single I/O request. */
enum vs_io_flags {
    VS_IO_DIRECT = 1 << 0,    /* this request bypasses caches (cache=none) */
    VS_IO_FUA = 1 << 1,       /* write is durable when it completes */
    VS_IO_MAY_UNMAP = 1 << 2, /* write_zeroes may free the range */
};

/*
 * Block status of one layer, as bits.  A layer answers for itself only:
 * ALLOCATED clear means "not mine, ask the backing layer"; a range that no
 * layer of a chain owns reads as zeros.
 */
enum vs_block_status {
    VS_BS_ALLOCATED = 1 << 0, /* this layer decides what the bytes are */
    VS_BS_DATA = 1 << 1,      /* storage holds bytes here (maybe zeros) */
    VS_BS_ZERO = 1 << 2,      /* the bytes read as zeros */
};

/* Capacity of a store, in bytes, as the storage reports it. */
struct vs_space {
    uint64_t capacity;
    uint64_t free;
};

struct vs_driver;

/*
 * One option key a protocol driver takes with a location (a row of its
 * `options` table).  The generic layer checks every key given at store
 * open against the table before the driver sees the list: an unknown key,
 * a secret given as a plain option (or the reverse), or a value CHECK
 * refuses is -EINVAL, with a reason that names the key and never a value.
 */
struct vs_option_spec {
    const char *key; /* [a-z][a-z0-9_]*, see <vs/options.h> */
    /* a secret (a CHAP password): given only through the host's secrets
     * store, never in the domain's options, never shown nor logged */
    bool secret;
    const char *help; /* one line: what it does and its values */
    /* 0 if VALUE is acceptable, -EINVAL if not; NULL: any value */
    int (*check)(const char *value);
};

/* What calls a driver can take at once (nbdkit's thread models).  The
 * generic layer enforces it; the default is the first. */
enum vs_thread_model {
    /* any number of callbacks at once, on any bdevs (the contract below) */
    VS_THREAD_PARALLEL = 0,
    /* one callback at a time per bdev (a library handle that is not
     * thread-safe); the generic layer holds a per-bdev lock around each
     * call, so requests to one bdev queue behind each other */
    VS_THREAD_SERIALIZE_REQUESTS = 1,
};

/*
 * Request limits of one bdev, as QEMU's BlockLimits.  The driver's open
 * fills what it knows; a field left 0 takes the default given with it, and
 * the generic layer writes the effective values back into bs->limits once
 * open has returned, so readers always see concrete numbers.  A passthrough
 * format starts from its file's limits; other formats start from zeros.
 * Every value is in bytes.
 */
struct vs_limits {
    /* Offsets and lengths the driver serves natively (the logical block
     * size under O_DIRECT).  A power of two.  The driver still accepts any
     * byte range (it bounces or read-modify-writes); the generic layer
     * cuts split requests at multiples of it.  Default 1. */
    uint32_t request_alignment;
    /* Largest preadv, pwritev, discard or write_zeroes the driver is given
     * in one call; the generic layer splits bigger requests.  Rounded down
     * to request_alignment.  Default (0): no limit but SSIZE_MAX. */
    uint64_t max_transfer;
    /* Unit in which discard releases space.  The generic layer hands the
     * driver only whole granules and zeroes the unaligned head and tail
     * instead (discard reads as zeros after, so they cannot be dropped).
     * Default (0): request_alignment. */
    uint32_t discard_granularity;
    /* Where the first whole granule starts: granules are
     * [discard_alignment + k * discard_granularity, + discard_granularity).
     * Below discard_granularity.  Default 0. */
    uint32_t discard_alignment;
    /* Unit in which the object's storage grows (an LVM extent):
     * vs_bdev_extend rounds the sizes it asks for up to it (truncate, an
     * exact size, does not).  Default (0): 1. */
    uint64_t grow_granularity;
};

/*
 * A store: one storage domain's space on one backend, opened by a protocol
 * driver from a location string ("dir:/var/lib/vstorfs/domains/UUID",
 * later "nfs://host/export/dir", "iscsi://host:port/iqn/lun", "lvm:vg").
 */
struct vs_store {
    const struct vs_driver *drv;
    char *location;      /* owned; as given to vs_store_open */
    void *opaque;        /* the driver's state */
    struct vs_caps caps; /* set by store_open: what the storage offers */
    /* Set by the generic layer before store_open and kept until the store
     * is closed (a driver may need a secret again to reconnect); never
     * NULL, empty when none were given.  Every key has been checked against
     * the driver's `options` table.  A driver never logs a secret's value
     * nor copies it anywhere it could be shown. */
    struct vs_options *options;
    struct vs_options *secrets; /* wiped when the store is closed */
};

/*
 * An open block device: a protocol object or a format layer over one.
 * Fields other than opaque are set by the generic layer before the driver's
 * open callback runs and are read-only for the driver afterwards.
 */
struct vs_bdev {
    const struct vs_driver *drv;
    char *name;              /* owned; for log lines: "domain/object" */
    unsigned open_flags;     /* enum vs_open_flags */
    struct vs_caps caps;     /* set by the driver's open */
    struct vs_bdev *file;    /* format drivers: the object below (owned) */
    struct vs_bdev *backing; /* COW formats: the parent layer (owned) */
    void *opaque;            /* the driver's state */
    int flush_error;         /* generic layer only: sticky flush failure */
    int dirty;               /* generic layer only: written since a flush */
    /* Set by the driver's open (may be left zero: defaults apply); made
     * effective by the generic layer after open.  Appended in version 1's
     * second revision: the generic layer allocates bdevs, so drivers that
     * never touch it get the defaults. */
    struct vs_limits limits;
    /* Generic layer only: this bdev is another layer's backing (frozen:
     * every write through it fails with -EROFS).  Set when it is attached
     * as a backing, cleared by vs_bdev_detach_backing. */
    int frozen;
    /* Generic layer only: held around each callback when the driver's
     * thread_model serializes requests; NULL otherwise. */
    pthread_mutex_t *serial;
    /* Generic layer only, protocol objects opened by vs_object_open: the
     * object's size as last set (its size at open, then every truncate
     * and extend through the generic layer), and the lock that orders
     * those changes.  Objects never grow implicitly: a write, zeroing,
     * allocation or copy that reaches past object_size is refused before
     * the driver sees it.  size_lock is NULL for bdevs not tracked. */
    uint64_t object_size;
    pthread_mutex_t *size_lock;
};

/*
 * An asynchronous request (for drivers built on libnfs or libiscsi, which
 * complete from an event loop).  The submitter owns the request and its
 * buffers until complete() runs, exactly once, on any thread.
 */
enum vs_req_op {
    VS_REQ_READ = 1,
    VS_REQ_WRITE,
    VS_REQ_FLUSH,
    VS_REQ_DISCARD,
    VS_REQ_WRITE_ZEROES,
};

struct vs_request {
    enum vs_req_op op;
    uint64_t offset;
    uint64_t length; /* for READ/WRITE: the sum of the iovec lengths */
    const struct iovec *iov;
    int iovcnt;
    unsigned flags; /* enum vs_io_flags */
    /* ret: bytes transferred for READ/WRITE (short read = end of object),
     * 0 for the others, or -errno. */
    void (*complete)(struct vs_request *req, ssize_t ret);
    void *opaque; /* the submitter's */
};

struct vs_driver {
    uint32_t api_version; /* VS_DRIVER_API_VERSION */
    uint32_t struct_size; /* sizeof(struct vs_driver) */
    const char *name;     /* "dir", "raw", "qcow2", "nfs" ... */
    enum vs_driver_kind kind;
    /* protocol drivers: the location prefix they answer ("dir:", "nfs://") */
    const char *scheme;

    /* ---- store operations (protocol drivers only) ---- */

    /* Open the store at st->location.  With create, make an empty store
     * there first (EEXIST if one is there).  Undo everything on failure. */
    int (*store_open)(struct vs_store *st, bool create);
    /* Release the store; every object must be closed already. */
    void (*store_close)(struct vs_store *st);
    /* Remove an empty store (no objects but "metadata"): ENOTEMPTY else. */
    int (*store_destroy)(struct vs_store *st);
    /* Capacity and free space as the storage reports them. */
    int (*store_space)(struct vs_store *st, struct vs_space *out);
    /* Create object NAME of SIZE bytes, thin where the storage can: EEXIST
     * if it exists.  NAME is a safe file name chosen by vstorfs (a uuid or
     * "metadata"), never user input.  The name is durable on return (and
     * so is a removal, below): records that name it are written after. */
    int (*object_create)(struct vs_store *st, const char *name, uint64_t size);
    /* Remove object NAME; ENOENT if it is not there. */
    int (*object_remove)(struct vs_store *st, const char *name);
    /* Open object NAME into bs (bs->name and bs->open_flags set). */
    int (*object_open)(struct vs_store *st, const char *name,
                       struct vs_bdev *bs);
    /* Optional: make DST share SRC's current contents without copying
     * (reflink, storage snapshot).  ENOTSUP when the storage cannot. */
    int (*object_clone)(struct vs_store *st, const char *src, const char *dst);
    /* Call fn for every object in the store (for rescans and checks). */
    int (*object_list)(struct vs_store *st,
                       int (*fn)(const char *name, void *arg), void *arg);

    /* ---- format operations (format drivers only) ---- */

    /* Lay out a new, empty image of virtual SIZE on the empty object FILE.
     * backing_name, when not NULL, names the parent layer's object relative
     * to FILE (written into the image so that qemu-img can follow it) and
     * backing_format its format ("raw", "qcow2"). */
    int (*create)(struct vs_bdev *file, uint64_t size, const char *backing_name,
                  const char *backing_format);

    /* ---- block device operations (both kinds) ---- */

    /* Open: for format drivers bs->file (and bs->backing) are already open.
     * Fill bs->opaque and bs->caps. */
    int (*open)(struct vs_bdev *bs);
    /* Release what open acquired; never fails. */
    void (*close)(struct vs_bdev *bs);
    /* Virtual size in bytes, or -errno. */
    int64_t (*get_size)(struct vs_bdev *bs);
    /* Bytes the object occupies on the storage, or -errno. */
    int64_t (*get_allocated)(struct vs_bdev *bs);
    /* Set the virtual size.  Growing reads as zeros; shrinking is only asked
     * for when the caller has checked that nobody uses the volume.  For a
     * protocol object this is also how it grows (vs_bdev_extend): objects
     * never grow by being written past their end, and a store that cannot
     * hold the new size (a full LUN or VG) answers -ENOSPC and leaves the
     * object as it was. */
    int (*truncate)(struct vs_bdev *bs, uint64_t size);
    /* Read up to the iovec total at offset; short only at end of object.
     * Offsets and buffers have no alignment guarantee unless VS_IO_DIRECT
     * is set, and even then buffers may be unaligned: the driver bounces.
     * The total is at most bs->limits.max_transfer. */
    ssize_t (*preadv)(struct vs_bdev *bs, const struct iovec *iov, int iovcnt,
                      uint64_t offset, unsigned flags);
    /* Write the whole iovec at offset, growing nothing: the caller keeps
     * writes inside the virtual size (the generic layer refuses, with
     * -EINVAL and a log line, a write past a protocol object's end, so a
     * driver never sees one).  Same alignment rules as preadv. */
    ssize_t (*pwritev)(struct vs_bdev *bs, const struct iovec *iov, int iovcnt,
                       uint64_t offset, unsigned flags);
    /* Make every completed write durable.  After a failure, the generic
     * layer fails every later flush of this bdev (as QEMU does). */
    int (*flush)(struct vs_bdev *bs);
    /* Give the range back to the storage; reads return zeros afterwards.
     * The range is whole granules of bs->limits (discard_granularity,
     * discard_alignment) and at most max_transfer long. */
    int (*discard)(struct vs_bdev *bs, uint64_t offset, uint64_t length);
    /* Make the range read as zeros (VS_IO_MAY_UNMAP: may free it too);
     * at most bs->limits.max_transfer long. */
    int (*write_zeroes)(struct vs_bdev *bs, uint64_t offset, uint64_t length,
                        unsigned flags);
    /* Status of the range starting at offset: returns enum vs_block_status
     * bits valid for *pnum bytes (0 < *pnum <= length), or -errno. */
    int (*block_status)(struct vs_bdev *bs, uint64_t offset, uint64_t length,
                        uint64_t *pnum);
    /* Optional offload: copy length bytes from src at src_off to dst at
     * dst_off on the storage itself (both bdevs of this driver).  ENOTSUP
     * makes the caller copy through memory. */
    ssize_t (*copy_range)(struct vs_bdev *src, uint64_t src_off,
                          struct vs_bdev *dst, uint64_t dst_off,
                          uint64_t length);
    /* Optional asynchronous path; without it the generic layer runs the
     * synchronous callback on the submitting thread and completes inline. */
    int (*submit)(struct vs_bdev *bs, struct vs_request *req);
    /* Reserve storage for the range without changing its contents
     * (fallocate mode 0).  ENOTSUP when the storage cannot.  On failure
     * (ENOSPC) give back what this call reserved, so the storage's free
     * space is what it was; the caller holds writes to the object off. */
    int (*allocate)(struct vs_bdev *bs, uint64_t offset, uint64_t length);
    /* Format drivers with a backing: record NAME (relative to the file, or
     * NULL for none) and FORMAT as the parent layer in the image itself, so
     * tools reading the storage follow the chain (qemu-img rebase -u).
     * Durable when it returns.  Does not change what bs->backing is. */
    int (*set_backing)(struct vs_bdev *bs, const char *name,
                       const char *format);

    /* ---- appended after the first release (NULL in older drivers) ---- */

    /* Protocol drivers: call fn with the name of every store directly
     * under the location ROOT (a place that holds several domains: a
     * directory, later an NFS export), so a host can find the domains it
     * has no catalog rows for.  The store's location is ROOT "/" NAME.
     * ENOENT if ROOT is not there; stop at fn's first non-zero answer. */
    int (*store_list)(const char *root, int (*fn)(const char *name, void *arg),
                      void *arg);

    /* Format drivers: true when the format is the identity (the volume's
     * byte at offset X is the file's byte at X), so every NULL block
     * callback falls through to the file.  Left false (and false for a
     * driver whose struct_size ends before it), a NULL callback is
     * emulated or answers -ENOTSUP: the safe default for a format that
     * maps offsets.  Meaningless for protocol drivers. */
    bool passthrough;

    /* Protocol drivers: make the location ROOT ready to hold stores (the
     * local directory driver makes the directory if it is missing), so
     * that store_list and store_open with create work on it.  NULL: the
     * root needs nothing made. */
    int (*store_root_prepare)(const char *root);

    /* What calls the driver can take at once (enum vs_thread_model); 0,
     * and 0 for a driver whose struct_size ends before it: parallel. */
    int thread_model;

    /* Protocol drivers: the option keys store_open takes (see struct
     * vs_option_spec), ended by a row whose key is NULL.  NULL, and NULL
     * for a driver whose struct_size ends before it: no options at all,
     * so any key given is refused.  store_open reads the values from
     * st->options and st->secrets and may refuse a combination (-EINVAL). */
    const struct vs_option_spec *options;

    /* Protocol drivers, optional: the descriptor of an open object that is
     * a regular file of a local file system, which the kernel may read and
     * write directly (FUSE passthrough reopens the file it names), with
     * nothing the driver adds to I/O through it lost (the dir driver's
     * sync=on is).  It stays the driver's: the caller never closes it.
     * -ENOTSUP when there is no such descriptor.  NULL: -ENOTSUP. */
    int (*get_fd)(struct vs_bdev *bs);
};

/* Format driver tunables, process-wide, read when a layer opens. */

/* The memory each qcow2 layer may keep for L2 tables, in bytes (at least
 * one table is kept); 32 MiB unless set (vstorfs -o l2_cache_size=). */
void vs_qcow2_set_l2_cache_size(uint64_t bytes);
/* The size set, or the default. */
uint64_t vs_qcow2_l2_cache_size(void);

#endif
