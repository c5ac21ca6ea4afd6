/*
 * The generic block layer: how everything above the drivers (the tree, the
 * domain metadata, jobs, tools) reaches storage.
 *
 * These functions dispatch to a driver's callbacks (see <vs/driver.h>),
 * fall through to bs->file where a passthrough format (raw) leaves a
 * callback NULL (any other format's NULL callback is emulated or
 * -ENOTSUP), emulate missing optional operations, keep the sticky flush
 * error, and split requests to the serving driver's struct vs_limits.
 * They never log above debug level; callers log failures once.
 */
#ifndef VS_BDEV_H
#define VS_BDEV_H

#include "vs/driver.h"

/* ---- the driver registry ---- */

/* The driver registered under NAME ("dir", "raw"...), or NULL. */
const struct vs_driver *vs_driver_find(const char *name);
/* The protocol driver whose scheme prefixes LOCATION, or NULL. */
const struct vs_driver *vs_driver_for_location(const char *location);
/* Call fn for each registered driver, in registration order. */
void vs_driver_foreach(void (*fn)(const struct vs_driver *drv, void *arg),
                       void *arg);
/* Add DRV after the compiled-in drivers (test harnesses only: the crash
 * simulator).  Call before any other thread uses the registry.  -EEXIST if
 * the name is taken, -EINVAL if DRV is unusable, -ENOSPC when full. */
int vs_driver_register_extra(const struct vs_driver *drv);

/* ---- stores (a domain's storage) ---- */

/* Open (or with create, make and open) the store at LOCATION.  -ENOENT if
 * nothing is there, -EPROTONOSUPPORT if no driver knows the scheme. */
int vs_store_open(const char *location, bool create, struct vs_store **out);
/* The same with the domain's OPTIONS and SECRETS (either may be NULL:
 * none), copied into the store.  Every key is checked against the
 * driver's table first (vs_store_check_options); a refusal is -EINVAL with
 * the reason in WHY (WHY_LEN bytes, may be NULL), which names keys and
 * never a secret's value. */
int vs_store_open_with(const char *location, const struct vs_options *options,
                       const struct vs_options *secrets, bool create,
                       struct vs_store **out, char *why, size_t why_len);
/* Check OPTIONS and SECRETS (either may be NULL) against the option table
 * of the driver of LOCATION, without opening anything: 0, -EINVAL (the
 * reason in WHY), or -EPROTONOSUPPORT. */
int vs_store_check_options(const char *location,
                           const struct vs_options *options,
                           const struct vs_options *secrets, char *why,
                           size_t why_len);
/* Call fn with the name of each store under location ROOT (whose
 * locations are ROOT "/" NAME).  -EPROTONOSUPPORT if no driver lists ROOT. */
int vs_store_list(const char *root, int (*fn)(const char *name, void *arg),
                  void *arg);
/* Make the location ROOT ready to hold stores (see store_root_prepare);
 * 0 when its driver needs nothing made. */
int vs_store_root_prepare(const char *root);
/* The location (malloc'd into *OUT) where a host whose local state is in
 * DATA_DIR keeps its domains when it is not told another: a directory of
 * the local directory driver, DATA_DIR/domains. */
int vs_store_default_root(const char *data_dir, char **out);
/* Close a store; NULL is allowed. */
void vs_store_close(struct vs_store *st);
/* Remove an empty store and free it (also on failure: st is consumed only
 * on success; on failure it stays open). */
int vs_store_destroy(struct vs_store *st);
/* Capacity and free space. */
int vs_store_space(struct vs_store *st, struct vs_space *out);
/* Create, remove, clone and list objects (see the driver contracts). */
int vs_object_create(struct vs_store *st, const char *name, uint64_t size);
int vs_object_remove(struct vs_store *st, const char *name);
int vs_object_clone(struct vs_store *st, const char *src, const char *dst);
int vs_object_list(struct vs_store *st, int (*fn)(const char *name, void *arg),
                   void *arg);
/* Open object NAME of store ST as a protocol bdev; flags: vs_open_flags.
 * LABEL names it in log lines. */
int vs_object_open(struct vs_store *st, const char *name, unsigned flags,
                   const char *label, struct vs_bdev **out);

/* ---- format layers ---- */

/* Lay out an empty image of format FORMAT ("raw", "qcow2") on FILE. */
int vs_format_create(const char *format, struct vs_bdev *file, uint64_t size,
                     const char *backing_name, const char *backing_format);
/* Open format FORMAT over FILE (and BACKING, may be NULL).  On success the
 * new bdev owns both children; on failure the caller still owns them. */
int vs_format_open(const char *format, struct vs_bdev *file,
                   struct vs_bdev *backing, unsigned flags,
                   struct vs_bdev **out);

/* ---- block devices ---- */

/* Close a bdev and, recursively, the children it owns; NULL is allowed. */
void vs_bdev_close(struct vs_bdev *bs);
/* Take BS's backing out of it and hand it to the caller (closing BS then
 * leaves it open); it is writable again if it was before it was attached.
 * vs_format_open attaches a backing and freezes it: the stack refuses
 * writes through a layer that has a child (-EROFS). */
struct vs_bdev *vs_bdev_detach_backing(struct vs_bdev *bs);
/* Virtual size in bytes, or -errno (-ENOTSUP: no layer can say). */
int64_t vs_bdev_size(struct vs_bdev *bs);
/* Bytes used on the storage: a format that does not count its own uses
 * its file's, whether passthrough or not. */
int64_t vs_bdev_allocated(struct vs_bdev *bs);
/* The descriptor through which the kernel may do all of BS's I/O itself:
 * only when BS is a passthrough format (raw) with no backing, directly over
 * a protocol object whose driver gives one (get_fd); -ENOTSUP otherwise.
 * BS keeps it (never close it). */
int vs_bdev_kernel_fd(struct vs_bdev *bs);
/* The object under BS was written past the generic layer (through
 * vs_bdev_kernel_fd): take its size from the driver again.  The new
 * virtual size, or -errno. */
int64_t vs_bdev_resync_size(struct vs_bdev *bs);
/* Set the virtual size (see the driver contract); -EROFS, -ENOTSUP. */
int vs_bdev_truncate(struct vs_bdev *bs, uint64_t size);
/* Grow the protocol object under BS (through passthrough formats) to at
 * least MIN bytes, to WANT (>= MIN) when the storage has room for it, both
 * rounded up to its grow_granularity; never shrink it.  The object's new
 * size, or -errno: -ENOSPC when the storage cannot hold MIN bytes (the
 * object is then as it was), -ENOTSUP when BS is not over an object the
 * generic layer tracks. */
int64_t vs_bdev_extend(struct vs_bdev *bs, uint64_t min, uint64_t want);
/* Read the iovec at offset: the count, short only at the end of the object
 * (short driver transfers are completed here), or -errno. */
ssize_t vs_bdev_preadv(struct vs_bdev *bs, const struct iovec *iov, int iovcnt,
                       uint64_t offset, unsigned flags);
/* Write the whole iovec at offset: its length or -errno (a driver that
 * stops making progress gives -EIO). */
ssize_t vs_bdev_pwritev(struct vs_bdev *bs, const struct iovec *iov, int iovcnt,
                        uint64_t offset, unsigned flags);
/* Single-buffer forms of the above; they loop over short transfers. */
ssize_t vs_bdev_pread(struct vs_bdev *bs, void *buf, size_t len,
                      uint64_t offset);
ssize_t vs_bdev_pwrite(struct vs_bdev *bs, const void *buf, size_t len,
                       uint64_t offset);
/* Flush; once a flush has failed every later one fails with that error. */
int vs_bdev_flush(struct vs_bdev *bs);
/* True when no layer of BS's stack (files and backings) was written since
 * its last flush began, nor has a flush error: closing it then loses
 * nothing a flush would have kept.  Meaningful only while no write is in
 * flight (the caller holds writes off). */
bool vs_bdev_clean(struct vs_bdev *bs);
/* Discard: -ENOTSUP if nothing in the stack can release space.  Only whole
 * granules of the serving driver are discarded; an unaligned head and tail
 * are zeroed, so the whole range reads as zeros afterwards. */
int vs_bdev_discard(struct vs_bdev *bs, uint64_t offset, uint64_t length);
/* Record a new parent layer name in BS's own image (top layer only):
 * -ENOTSUP when its format keeps none. */
int vs_bdev_set_backing(struct vs_bdev *bs, const char *name,
                        const char *format);
/* Reserve storage without changing contents: -ENOTSUP if nothing can. */
int vs_bdev_allocate(struct vs_bdev *bs, uint64_t offset, uint64_t length);
/* Zero a range, natively or by writing zero buffers. */
int vs_bdev_write_zeroes(struct vs_bdev *bs, uint64_t offset, uint64_t length,
                         unsigned flags);
/* This layer's status for [offset, offset + *pnum); see vs_block_status.
 * A driver without block_status reports ALLOCATED|DATA everywhere. */
int vs_bdev_block_status(struct vs_bdev *bs, uint64_t offset, uint64_t length,
                         uint64_t *pnum);
/* Status merged through the backing chain: DATA if any layer down the chain
 * owns the range with data, ZERO where the owner reads zeros or no layer
 * owns it.  For SEEK_DATA/SEEK_HOLE and maps. */
int vs_bdev_chain_status(struct vs_bdev *bs, uint64_t offset, uint64_t length,
                         uint64_t *pnum);
/* Copy through the storage when both ends allow it, through memory else. */
ssize_t vs_bdev_copy_range(struct vs_bdev *src, uint64_t src_off,
                           struct vs_bdev *dst, uint64_t dst_off,
                           uint64_t length);
/* Submit asynchronously; req->complete runs exactly once (maybe inline). */
void vs_bdev_submit(struct vs_bdev *bs, struct vs_request *req);
/* Whether a request OP to BS may complete after vs_bdev_submit returned
 * (some layer of BS has a submit callback): false means complete() always
 * runs inline, on the submitting thread, so its buffers may be borrowed. */
bool vs_bdev_submit_may_defer(struct vs_bdev *bs, enum vs_req_op op);

#endif
