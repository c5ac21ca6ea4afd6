/*
 * FUSE data requests on a volume's `data` file: open, read, write, fsync,
 * fallocate, lseek (SEEK_DATA/SEEK_HOLE) and release.
 *
 * open resolves the volume under the namespace lock once and stores a
 * handle holding a reference on it; every later request goes from the
 * handle straight to the volume's chain, passing only the volume's io_gate
 * (a snapshot closes it to swap the chain's top layer).
 *
 * Reads, writes and fsyncs go through the block layer's submit path and are
 * answered from their completion, so a driver built on an event loop
 * (libnfs, libiscsi) completes them from its own thread and no FUSE thread
 * waits per request; the request leaves the gate there.  Where every layer
 * completes inline (no submit callback: the local driver, today's formats)
 * the request lives on the FUSE thread's stack and reads land in a
 * per-thread page-aligned buffer (O_DIRECT on the backend needs alignment;
 * fuse_reply_buf copies it out before the thread takes the next request);
 * otherwise the request, its read buffer and a copy of its write payload
 * (libfuse reuses its buffer once the handler returns) are allocated and
 * freed at completion.  The kernel sends no RELEASE of a file while a
 * request on it is unanswered, so the handle outlives its requests.
 */
#define FUSE_USE_VERSION 312
#include <errno.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <linux/falloc.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fs.h"
#include "vs/log.h"

#define BUF_ALIGN 4096

static pthread_key_t read_buf_key;
static pthread_once_t read_buf_once = PTHREAD_ONCE_INIT;
static __thread void *read_buf;
static __thread size_t read_buf_size;

static void
make_read_buf_key(void)
{
    pthread_key_create(&read_buf_key, free);
}

/* This thread's aligned read buffer, at least LEN bytes. */
static void *
thread_buffer(size_t len)
{
    void *p;

    if (read_buf_size >= len)
        return read_buf;
    pthread_once(&read_buf_once, make_read_buf_key);
    if (posix_memalign(&p, BUF_ALIGN, len) != 0)
        return NULL;
    free(read_buf);
    read_buf = p;
    read_buf_size = len;
    pthread_setspecific(read_buf_key, p); /* freed when the thread ends */
    return p;
}

static struct vs_handle *
handle_of(struct fuse_file_info *fi)
{
    return (struct vs_handle *)(uintptr_t)fi->fh;
}

/* One line per volume per VS_IO_ERROR_LOG_SECS at most, the next one
 * saying how many failures it left out: a failing disk under a busy guest
 * would otherwise write a line per request (and the guest retries). */
static void
log_io_error(const struct vs_handle *h, const char *op, uint64_t off,
             size_t len, int err)
{
    struct vs_volume *vol = h->vol;
    struct timespec ts;
    int64_t now, last;
    unsigned quiet;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    now = (int64_t)ts.tv_sec + 1; /* 0 means "never logged" */
    last = atomic_load(&vol->io_error_logged_at);
    if ((last != 0 && now - last < VS_IO_ERROR_LOG_SECS) ||
        !atomic_compare_exchange_strong(&vol->io_error_logged_at, &last, now)) {
        atomic_fetch_add(&vol->io_errors_unlogged, 1);
        return;
    }
    quiet = atomic_exchange(&vol->io_errors_unlogged, 0);
    if (quiet)
        vs_log(LOG_ERR,
               "%s of '%s' at %llu (+%zu) failed: %s (and %u more failed "
               "requests of this volume not logged since the last line)",
               op, vol->label, (unsigned long long)off, len, strerror(err),
               quiet);
    else
        vs_log(LOG_ERR, "%s of '%s' at %llu (+%zu) failed: %s", op, vol->label,
               (unsigned long long)off, len, strerror(err));
}

/* Refuse the open of NODE's data with ERR, logging WHY. */
static int
refuse_open(struct vs_node *node, int err, const char *why)
{
    char path[3 * VS_NAME_MAX + 8];

    vs_log(LOG_NOTICE, "refused open of '%s/data': %s (%s)",
           vs_node_path(node, path, sizeof(path)), why, strerrorname_np(err));
    return -err;
}

/* Count an opener of VOL; O_TRUNC empties the volume, which only root may
 * do, and only while nobody else has it open. */
static int
register_opener(fuse_req_t req, struct vs_volume *vol, int flags, bool writable)
{
    int r;

    if ((flags & O_TRUNC) && fuse_req_ctx(req)->uid != 0 &&
        atomic_load(&vol->size) > 0) {
        vs_log(LOG_NOTICE,
               "refused open O_TRUNC '%s/data': only root empties a volume "
               "(EPERM)",
               vol->label);
        return -EPERM;
    }
    r = vs_volume_open(vol, flags & O_TRUNC, writable);
    if (r == -EBUSY)
        vs_log(LOG_NOTICE,
               "refused open O_TRUNC '%s/data': somebody else "
               "has it open (EBUSY)",
               vol->label);
    return r;
}

/* Resolve INO to its volume, its chain opened, and register the opener
 * (emptying it first with TRUNCATE), all under the namespace lock: a chain
 * change (backing link, format) holds that lock for writing and refuses a
 * volume somebody has open, then closes its chain; an opener counted only
 * after the lock was let go would come in between and write through a
 * chain that is gone.  A volume that other layers use as backing only
 * opens read-only. */
static int
open_volume(fuse_req_t req, fuse_ino_t ino, bool writable, int flags,
            struct vs_volume **vol, int *pt_id)
{
    struct vs_bdev *bs;
    struct vs_node *node;
    int r;

    vs_tree_rdlock(vs_fs.tree);
    node = vs_tree_node(vs_fs.tree, ino);
    if (!node)
        r = -ENOENT;
    else if (VS_INO_PART(ino) != VS_PART_FILE)
        r = -EISDIR;
    else if (node->unavailable)
        r = refuse_open(node, EIO, node->unavailable);
    else if (writable && node->domain->read_only)
        r = refuse_open(node, EROFS, node->domain->read_only);
    else if (writable && node->layers_above > 0)
        r = refuse_open(node, EROFS,
                        "for writing: other volumes are based on it, so it "
                        "is read-only");
    else if (node->cat.flags & VS_RECF_MERGE_DOWN)
        /* its object is taking its child's bytes: it no longer reads what
         * it did */
        r = refuse_open(node, EBUSY,
                        "it is being merged away and its object given to "
                        "its child");
    else
        r = vs_node_bdev(vs_fs.tree, node, &bs);
    if (r == 0)
        r = register_opener(req, node->vol, flags, writable);
    if (r == 0)
        *pt_id = vs_passthrough_open(node);
    if (r == 0) {
        *vol = node->vol;
        vs_volume_ref(*vol);
    }
    vs_tree_unlock(vs_fs.tree);
    return r;
}

static void
io_begin(struct vs_handle *h)
{
    vs_gate_enter(&h->vol->io_gate);
}

static void
io_end(struct vs_handle *h)
{
    vs_gate_leave(&h->vol->io_gate);
}

/* Open a volume's map file: build its text now, serve it from memory. */
static void
open_map(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct vs_handle *h = calloc(1, sizeof(*h));
    struct vs_node *node;
    int r = h ? 0 : -ENOMEM;

    if (r == 0 && (fi->flags & O_ACCMODE) != O_RDONLY)
        r = -EROFS;
    vs_tree_rdlock(vs_fs.tree);
    node = vs_tree_node(vs_fs.tree, ino);
    if (r == 0)
        r = node ? vs_map_build(vs_fs.tree, node, &h->map, &h->map_len)
                 : -ENOENT;
    vs_tree_unlock(vs_fs.tree);
    if (r < 0) {
        free(h);
        fuse_reply_err(req, -r);
        return;
    }
    fi->fh = (uint64_t)(uintptr_t)h;
    fi->direct_io = 1; /* its size is not known before it is read */
    if (fuse_reply_open(req, fi) == -ENOENT) {
        free(h->map);
        free(h);
    }
}

/* The reply goes out from a copy, never from the handle's text: once the
 * kernel has taken the bytes, the reader may close and a RELEASE on another
 * thread frees the handle before this thread's writev has returned (ASan's
 * writev check then reads freed memory, and a later use would too). */
static void
read_map(fuse_req_t req, struct vs_handle *h, size_t size, off_t off)
{
    char *copy;

    if ((size_t)off >= h->map_len)
        size = 0;
    else if ((size_t)off + size > h->map_len)
        size = h->map_len - (size_t)off;
    if (size == 0) {
        fuse_reply_buf(req, NULL, 0);
        return;
    }
    copy = malloc(size);
    if (!copy) {
        fuse_reply_err(req, ENOMEM);
        return;
    }
    memcpy(copy, h->map + off, size);
    fuse_reply_buf(req, copy, size);
    free(copy);
}

static void
op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    bool writable = (fi->flags & O_ACCMODE) != O_RDONLY;

    if (VS_INO_PART(ino) == VS_PART_MAP) {
        open_map(req, ino, fi);
        return;
    }
    struct vs_handle *h = calloc(1, sizeof(*h));
    int pt_id = 0;
    int r = !h ? -ENOMEM
            : writable && vs_fs.cfg->read_only
                ? -EROFS
                : open_volume(req, ino, writable, fi->flags, &h->vol, &pt_id);

    if (r < 0) {
        free(h);
        fuse_reply_err(req, -r);
        return;
    }
    h->writable = writable;
    h->io_flags = (fi->flags & O_DIRECT) ? VS_IO_DIRECT : 0;
    fi->fh = (uint64_t)(uintptr_t)h;
    /* O_DIRECT openers (QEMU cache=none) get the kernel's direct_io path:
     * besides skipping the page cache it skips the security.capability
     * GETXATTR round trip that the cached path makes before every write,
     * which halved random-write IOPS.  Buffered openers keep the cache:
     * one host, one writer path, so it stays valid across opens. */
    fi->direct_io = (fi->flags & O_DIRECT) != 0;
    fi->keep_cache = 1;
    fi->noflush = 1;
    if (pt_id > 0) {
        /* the kernel does its reads and writes (passthrough.c) */
        h->passthrough = true;
        fi->direct_io = 0;
        fi->keep_cache = 0; /* the kernel refuses it with passthrough */
        vs_passthrough_mark_reply(pt_id);
    }
    r = fuse_reply_open(req, fi);
    /* H may be freed by now (a RELEASE on another thread): only what this
     * thread kept is looked at.  The reply always goes out through the
     * hook on this thread, so this only guards the assumption. */
    if (pt_id > 0 && r != -ENOENT && !vs_passthrough_reply_patched())
        vs_log(LOG_ERR,
               "an open meant for kernel passthrough (backing %d) "
               "was answered without it",
               pt_id);
    if (r == -ENOENT) { /* interrupted: undo */
        if (h->passthrough)
            vs_passthrough_release(h->vol);
        vs_volume_release(h->vol, writable);
        vs_volume_unref(h->vol);
        free(h);
    }
}

static void
op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct vs_handle *h = handle_of(fi);

    (void)ino;
    if (h->vol && h->passthrough)
        vs_passthrough_release(h->vol);
    if (h->vol) {
        vs_volume_release(h->vol, h->writable);
        vs_volume_unref(h->vol);
    }
    free(h->map);
    free(h);
    fuse_reply_err(req, 0);
}

/* A read, write or fsync submitted to a volume's chain. */
struct io_req {
    struct vs_request r; /* first: the completion gets &r */
    fuse_req_t req;
    struct vs_handle *h;
    struct iovec iov;
    bool allocated; /* the request and iov's buffer: freed at completion */
};

static void
io_req_free(struct io_req *io)
{
    if (io->allocated) {
        free(io->iov.iov_base);
        free(io);
    }
}

static const char *
op_name(enum vs_req_op op)
{
    return op == VS_REQ_READ ? "read" : op == VS_REQ_WRITE ? "write" : "fsync";
}

/* Submit OP of LEN bytes at OFF (a write's payload at SRC) on H's chain,
 * answered by DONE; H's gate entered by the caller, left at completion.
 * Where the request completes inline it lives on this frame and borrows
 * the thread's read buffer or libfuse's payload; otherwise it is
 * allocated, with a read buffer or a copy of the payload of its own. */
static void
io_submit(fuse_req_t req, struct vs_handle *h, enum vs_req_op op, uint64_t off,
          size_t len, const void *src,
          void (*done)(struct vs_request *, ssize_t))
{
    struct io_req stack = {0}, *io = &stack;
    void *buf = NULL;

    if (vs_bdev_submit_may_defer(h->vol->bdev, op)) {
        io = calloc(1, sizeof(*io));
        if (io && len && posix_memalign(&buf, BUF_ALIGN, len) != 0)
            buf = NULL;
        if (io && len && !buf) {
            free(io);
            io = NULL;
        }
        if (io) {
            io->allocated = true;
            if (op == VS_REQ_WRITE) /* libfuse reuses SRC once we return */
                memcpy(buf, src, len);
        }
    } else if (op == VS_REQ_READ) {
        buf = thread_buffer(len);
        io = buf || !len ? io : NULL;
    } else {
        buf = (void *)src;
    }
    if (!io) {
        io_end(h);
        log_io_error(h, op_name(op), off, len, ENOMEM);
        fuse_reply_err(req, ENOMEM);
        return;
    }
    io->req = req;
    io->h = h;
    io->iov = (struct iovec){.iov_base = buf, .iov_len = len};
    io->r = (struct vs_request){.op = op,
                                .offset = off,
                                .length = len,
                                .iov = &io->iov,
                                .iovcnt = 1,
                                .flags = h->io_flags,
                                .complete = done,
                                .opaque = io};
    vs_bdev_submit(h->vol->bdev, &io->r);
}

static void
read_done(struct vs_request *r, ssize_t n)
{
    struct io_req *io = r->opaque;

    io_end(io->h);
    if (n < 0) {
        log_io_error(io->h, "read", r->offset, r->length, (int)-n);
        fuse_reply_err(io->req, (int)-n);
    } else {
        fuse_reply_buf(io->req, io->iov.iov_base, (size_t)n);
    }
    io_req_free(io);
}

static void
op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
        struct fuse_file_info *fi)
{
    struct vs_handle *h = handle_of(fi);
    uint64_t vsize;

    (void)ino;
    if (!h->vol) {
        read_map(req, h, size, off);
        return;
    }
    vsize = atomic_load(&h->vol->size);
    if ((uint64_t)off >= vsize) {
        fuse_reply_buf(req, NULL, 0);
        return;
    }
    if ((uint64_t)off + size > vsize)
        size = (size_t)(vsize - (uint64_t)off);
    io_begin(h);
    io_submit(req, h, VS_REQ_READ, (uint64_t)off, size, NULL, read_done);
}

/* Whether a request of REQ would take H's volume past its end while not
 * from root: the owner of `data` reads and writes within its size, only
 * root grows it. */
static bool
past_end(fuse_req_t req, const struct vs_handle *h, uint64_t end)
{
    return end > atomic_load(&h->vol->size) && fuse_req_ctx(req)->uid != 0;
}

static void
refuse_growth(const struct vs_handle *h, const char *op, uint64_t off,
              size_t len, int err)
{
    vs_log(LOG_NOTICE,
           "refused %s of '%s/data' at %llu (+%zu): past its end of %llu "
           "bytes, and only root grows a volume (%s)",
           op, h->vol->label, (unsigned long long)off, len,
           (unsigned long long)atomic_load(&h->vol->size),
           strerrorname_np(err));
}

static void
write_done(struct vs_request *r, ssize_t n)
{
    struct io_req *io = r->opaque;

    if (n > 0)
        vs_volume_mark_dirty(io->h->vol, r->offset, (uint64_t)n);
    io_end(io->h);
    if (n < 0) {
        log_io_error(io->h, "write", r->offset, r->length, (int)-n);
        fuse_reply_err(io->req, (int)-n);
    } else {
        fuse_reply_write(io->req, (size_t)n);
    }
    io_req_free(io);
}

static void
op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size,
         off_t off, struct fuse_file_info *fi)
{
    struct vs_handle *h = handle_of(fi);
    int r;

    (void)ino;
    if (past_end(req, h, (uint64_t)off + size)) {
        refuse_growth(h, "write", (uint64_t)off, size, EFBIG);
        fuse_reply_err(req, EFBIG);
        return;
    }
    io_begin(h);
    r = vs_volume_grow(h->vol, (uint64_t)off + size);
    if (r < 0) {
        io_end(h);
        log_io_error(h, "write", (uint64_t)off, size, -r);
        fuse_reply_err(req, -r);
        return;
    }
    io_submit(req, h, VS_REQ_WRITE, (uint64_t)off, size, buf, write_done);
}

static void
fsync_done(struct vs_request *r, ssize_t n)
{
    struct io_req *io = r->opaque;

    io_end(io->h);
    if (n < 0)
        log_io_error(io->h, "fsync", 0, 0, (int)-n);
    fuse_reply_err(io->req, n < 0 ? (int)-n : 0);
    io_req_free(io);
}

static void
op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync,
         struct fuse_file_info *fi)
{
    struct vs_handle *h = handle_of(fi);

    (void)ino, (void)datasync;
    if (!h->vol) {
        fuse_reply_err(req, 0);
        return;
    }
    io_begin(h);
    io_submit(req, h, VS_REQ_FLUSH, 0, 0, NULL, fsync_done);
}

static void
op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    (void)ino, (void)fi;
    fuse_reply_err(req, 0);
}

static bool
is_prealloc(int mode)
{
    return !(mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE));
}

/* fallocate: preallocate (mode 0, KEEP_SIZE), punch, zero range.  A range
 * past the end is clamped to it (KEEP_SIZE preallocates nothing past the
 * end); a failed preallocation gives back what it took, size included. */
static int
do_fallocate(struct vs_handle *h, int mode, uint64_t off, uint64_t len)
{
    const int known =
        FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE;
    uint64_t end = off + len, size, old = atomic_load(&h->vol->size);
    int r = 0;

    if ((mode & ~known) ||
        ((mode & FALLOC_FL_PUNCH_HOLE) && !(mode & FALLOC_FL_KEEP_SIZE)))
        return -EOPNOTSUPP;
    if (!(mode & FALLOC_FL_KEEP_SIZE))
        r = vs_volume_grow(h->vol, end);
    size = atomic_load(&h->vol->size);
    if (r < 0 || off >= size)
        return r;
    if (end > size)
        end = size;
    if (mode & FALLOC_FL_PUNCH_HOLE)
        r = vs_bdev_discard(h->vol->bdev, off, end - off);
    else if (mode & FALLOC_FL_ZERO_RANGE)
        r = vs_bdev_write_zeroes(h->vol->bdev, off, end - off, 0);
    else
        r = vs_bdev_allocate(h->vol->bdev, off, end - off);
    if (r == 0)
        vs_volume_mark_dirty(h->vol, off, end - off);
    else if (is_prealloc(mode) && size > old)
        vs_volume_ungrow(h->vol, size, old);
    return r == -ENOTSUP ? -EOPNOTSUPP : r;
}

static void
op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t length,
             struct fuse_file_info *fi)
{
    struct vs_handle *h = handle_of(fi);
    int r;

    (void)ino;
    if (off < 0 || length <= 0) {
        fuse_reply_err(req, EINVAL);
        return;
    }
    if (h->passthrough) /* root may have written past the end */
        vs_passthrough_sync_size(h->vol);
    if (!(mode & FALLOC_FL_KEEP_SIZE) &&
        past_end(req, h, (uint64_t)off + (uint64_t)length)) {
        refuse_growth(h, "fallocate", (uint64_t)off, (size_t)length, EPERM);
        fuse_reply_err(req, EPERM);
        return;
    }
    /* a preallocation holds the volume's I/O off: if it fails it punches
     * back the holes it filled, which must not take a write with them */
    if (is_prealloc(mode))
        vs_gate_close(&h->vol->io_gate);
    else
        io_begin(h);
    r = do_fallocate(h, mode, (uint64_t)off, (uint64_t)length);
    if (is_prealloc(mode))
        vs_gate_open(&h->vol->io_gate);
    else
        io_end(h);
    if (r == -EFBIG)
        vs_log(LOG_NOTICE,
               "refused fallocate of '%s/data' to %llu bytes: past the "
               "largest volume size, %llu bytes (EFBIG)",
               h->vol->label, (unsigned long long)off + (uint64_t)length,
               VS_VOLUME_SIZE_MAX);
    else if (r < 0 && r != -EOPNOTSUPP)
        log_io_error(h, "fallocate", (uint64_t)off, (size_t)length, -r);
    fuse_reply_err(req, -r);
}

/* First offset >= OFF whose "is data" equals WANT_DATA, or SIZE. */
static int64_t
seek_status(struct vs_bdev *bs, uint64_t off, uint64_t size, bool want_data)
{
    while (off < size) {
        uint64_t pnum = 0;
        int st = vs_bdev_chain_status(bs, off, size - off, &pnum);
        if (st < 0)
            return st;
        if (((st & VS_BS_DATA) && !(st & VS_BS_ZERO)) == want_data)
            return (int64_t)off;
        if (pnum == 0)
            return -EIO;
        off += pnum;
    }
    return (int64_t)size;
}

static void
op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
         struct fuse_file_info *fi)
{
    struct vs_handle *h = handle_of(fi);
    uint64_t size;
    int64_t pos;

    (void)ino;
    if (!h->vol) {
        fuse_reply_err(req, ENXIO);
        return;
    }
    if (h->passthrough)
        vs_passthrough_sync_size(h->vol);
    size = atomic_load(&h->vol->size);
    if (whence != SEEK_DATA && whence != SEEK_HOLE) {
        fuse_reply_err(req, EINVAL);
        return;
    }
    if (off < 0 || (uint64_t)off >= size) {
        fuse_reply_err(req, ENXIO);
        return;
    }
    io_begin(h);
    pos = seek_status(h->vol->bdev, (uint64_t)off, size, whence == SEEK_DATA);
    io_end(h);
    if (pos < 0)
        fuse_reply_err(req, (int)-pos);
    else if (whence == SEEK_DATA && (uint64_t)pos >= size)
        fuse_reply_err(req, ENXIO);
    else
        fuse_reply_lseek(req, pos);
}

void
vs_io_ops_init(struct fuse_lowlevel_ops *ops)
{
    ops->open = op_open;
    ops->release = op_release;
    ops->read = op_read;
    ops->write = op_write;
    ops->fsync = op_fsync;
    ops->flush = op_flush;
    ops->fallocate = op_fallocate;
    ops->lseek = op_lseek;
}
