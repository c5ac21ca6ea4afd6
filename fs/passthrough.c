/*
 * Kernel FUSE passthrough for raw volumes on a local store (-o
 * passthrough=auto|on): the kernel then reads and writes the volume's
 * backing file itself, and the daemon sees no READ or WRITE of that open.
 *
 * libfuse 3.14 has no API for it (3.16 has), so the session's requests and
 * replies go through our custom io (fuse_session_custom_io): read_req
 * passes every request up unchanged, remembering what it needs, and
 * write_reply patches two replies in place before they go to the kernel.
 * Splice stays off (op_init), so libfuse never bypasses these two hooks.
 *
 * The bytes patched (offsets into the reply's second iovec, the payload
 * after struct fuse_out_header; layouts in fuse_abi.h):
 *
 *   INIT reply (struct fuse_init_out, 64 bytes; only when the INIT request
 *   had FUSE_INIT_EXT with FUSE_PASSTHROUGH in flags2, the option is on,
 *   and libfuse did not ask for the writeback cache, which the kernel
 *   does not combine with passthrough):
 *     flags (offset 12)            |= FUSE_INIT_EXT, so the kernel reads
 *                                     flags2; and FUSE_HANDLE_KILLPRIV_V2
 *                                     when the kernel offered it (below)
 *     flags2 (offset 32)           |= FUSE_PASSTHROUGH >> 32 (bit 5)
 *     max_stack_depth (offset 36)   = 1: backing files may live on any
 *                                     file system that stacks on nothing
 *                                     (ext4, xfs, tmpfs; not overlayfs, where
 *                                     the ioctl fails and the open falls
 *                                     back), and vstorfs may itself still be
 *                                     an overlayfs layer.
 *   OPEN reply (struct fuse_open_out, 16 bytes) of a request that op_open
 *   chose for passthrough (vs_passthrough_mark_reply, matched by the
 *   header's unique):
 *     open_flags (offset 8)        |= FOPEN_PASSTHROUGH, and every flag
 *                                     but it and FOPEN_NOFLUSH cleared: the
 *                                     kernel refuses KEEP_CACHE with it, and
 *                                     DIRECT_IO would take precedence
 *     backing_id (offset 12)        = the id FUSE_DEV_IOC_BACKING_OPEN gave.
 *
 * A request is read and its reply written by the same worker thread (the
 * multithreaded loop reads, processes and replies on one thread, and
 * op_open replies before returning), so the unique of the request a thread
 * serves is kept thread-locally and the OPEN reply is recognised by it.
 *
 * Backing ids: one per volume, registered at its first passthrough open
 * and closed at its last release (struct vs_volume's pt_opens, pt_id).
 * The kernel requires every open of an inode that has a passthrough open to
 * be passthrough too (with the same backing), and a passthrough open fails
 * while the inode has a cached open; so a volume with passthrough opens
 * takes every further open that way, and a volume with other opens takes
 * the next ones the daemon's way.
 *
 * security.capability: before each passthrough write the kernel drops
 * setuid bits and capabilities (file_remove_privs), asking the daemon for
 * security.capability each time unless the super block says the server
 * handles that itself.  With FUSE_HANDLE_KILLPRIV_V2 the kernel checks once
 * per inode.  vstorfs can keep that promise because there is nothing to
 * drop: no security.* attribute can be set, and while it is in force data
 * carries no setuid/setgid bits (stat hides them, chmod asking for them is
 * refused).
 */
#define FUSE_USE_VERSION 312
#include <errno.h>
#include <fuse_lowlevel.h>
#include <stdatomic.h>
#include <string.h>
#include <unistd.h>

#include "fs.h"
#include "fuse_abi.h"
#include "vs/log.h"

static int pt_mode;            /* enum vs_passthrough_mode */
static int dev_fd = -1;        /* the session's /dev/fuse, for the ioctls */
static atomic_bool pt_offered; /* the INIT request offered passthrough */
static atomic_bool pt_killpriv_offered;
static atomic_bool pt_active;   /* the INIT reply took it */
static atomic_bool pt_killpriv; /* the INIT reply took KILLPRIV_V2 */
static atomic_bool pt_failed_logged;
static _Atomic uint64_t init_unique = UINT64_MAX;

/* The request this thread serves, and the OPEN reply to patch. */
static __thread uint64_t cur_unique;
static __thread uint32_t cur_opcode;
static __thread uint64_t mark_unique;
static __thread int mark_id;

bool
vs_passthrough_active(void)
{
    return atomic_load(&pt_active);
}

bool
vs_passthrough_killpriv(void)
{
    return atomic_load(&pt_killpriv);
}

/* Remember what the INIT request offered. */
static void
note_init(const char *buf, size_t len, uint64_t unique)
{
    struct vs_fuse_init_in in;
    size_t need = sizeof(struct vs_fuse_in_header) +
                  offsetof(struct vs_fuse_init_in, flags2) + sizeof(uint32_t);

    if (len < need)
        return;
    memset(&in, 0, sizeof(in));
    memcpy(&in, buf + sizeof(struct vs_fuse_in_header),
           len - sizeof(struct vs_fuse_in_header) < sizeof(in)
               ? len - sizeof(struct vs_fuse_in_header)
               : sizeof(in));
    atomic_store(&pt_offered, (in.flags & FUSE_INIT_EXT) &&
                                  (in.flags2 & (FUSE_PASSTHROUGH >> 32)));
    atomic_store(&pt_killpriv_offered,
                 (in.flags & FUSE_HANDLE_KILLPRIV_V2) != 0);
    atomic_store(&init_unique, unique);
}

static ssize_t
read_req(int fd, void *buf, size_t len, void *userdata)
{
    struct vs_fuse_in_header h;
    ssize_t n = read(fd, buf, len);

    (void)userdata;
    if (n < (ssize_t)sizeof(h))
        return n;
    memcpy(&h, buf, sizeof(h));
    cur_unique = h.unique;
    cur_opcode = h.opcode;
    if (h.opcode == FUSE_INIT)
        note_init(buf, (size_t)n, h.unique);
    return n;
}

/* Patch libfuse's INIT reply (see the top of the file). */
static void
patch_init(struct iovec *payload)
{
    struct vs_fuse_init_out out;

    if (payload->iov_len < offsetof(struct vs_fuse_init_out, unused)) {
        vs_log(LOG_WARNING,
               "passthrough: libfuse's INIT reply is %zu bytes, "
               "too short to ask for passthrough: it is off",
               payload->iov_len);
        return;
    }
    memcpy(&out, payload->iov_base, payload->iov_len);
    if (out.flags & FUSE_WRITEBACK_CACHE)
        return;
    out.flags |= FUSE_INIT_EXT;
    out.flags2 |= (uint32_t)(FUSE_PASSTHROUGH >> 32);
    out.max_stack_depth = 1;
    if (atomic_load(&pt_killpriv_offered)) {
        out.flags |= FUSE_HANDLE_KILLPRIV_V2;
        atomic_store(&pt_killpriv, true);
    }
    memcpy(payload->iov_base, &out, payload->iov_len);
    atomic_store(&pt_active, true);
    vs_log(LOG_NOTICE, "kernel FUSE passthrough is on for raw local volumes");
}

/* Patch the OPEN reply this thread marked (see the top of the file). */
static void
patch_open(struct iovec *payload, int id)
{
    struct vs_fuse_open_out out;

    memcpy(&out, payload->iov_base, sizeof(out));
    out.open_flags |= FOPEN_PASSTHROUGH;
    out.open_flags &= FOPEN_PASSTHROUGH | FOPEN_NOFLUSH;
    out.backing_id = id;
    memcpy(payload->iov_base, &out, sizeof(out));
}

static void
inspect_reply(struct iovec *iov, int count)
{
    struct vs_fuse_out_header h;
    int id = mark_id;

    if (count < 1 || iov[0].iov_len != sizeof(h))
        return;
    memcpy(&h, iov[0].iov_base, sizeof(h));
    if (h.unique == mark_unique && id > 0) {
        mark_id = 0;
        if (h.error == 0 && count == 2 &&
            iov[1].iov_len == sizeof(struct vs_fuse_open_out))
            patch_open(&iov[1], id);
        return;
    }
    if (h.unique != 0 && h.unique == atomic_load(&init_unique)) {
        atomic_store(&init_unique, UINT64_MAX);
        if (h.error == 0 && count == 2 && atomic_load(&pt_offered))
            patch_init(&iov[1]);
        else if (pt_mode == VS_PASSTHROUGH_ON)
            vs_log(LOG_WARNING, "passthrough=on, but the kernel does not "
                                "offer FUSE passthrough: every volume is "
                                "served through the daemon");
        else
            vs_log(LOG_INFO, "the kernel does not offer FUSE passthrough");
    }
}

static ssize_t
write_reply(int fd, struct iovec *iov, int count, void *userdata)
{
    (void)userdata;
    inspect_reply(iov, count);
    return writev(fd, iov, count);
}

int
vs_passthrough_setup(struct fuse_session *se, int mode)
{
    static const struct fuse_custom_io io = {
        .read = read_req,
        .writev = write_reply,
    };
    int r;

    pt_mode = mode;
    if (mode == VS_PASSTHROUGH_OFF)
        return 0;
    dev_fd = fuse_session_fd(se);
    r = fuse_session_custom_io(se, &io, dev_fd);
    if (r < 0) {
        vs_log(LOG_WARNING,
               "passthrough: cannot hook the session's I/O (%s): "
               "it is off",
               strerror(-r));
        pt_mode = VS_PASSTHROUGH_OFF;
        return 0;
    }
    return 0;
}

void
vs_passthrough_mark_reply(int id)
{
    if (cur_opcode != FUSE_OPEN)
        return;
    mark_unique = cur_unique;
    mark_id = id;
}

bool
vs_passthrough_reply_patched(void)
{
    bool patched = mark_id == 0;

    mark_id = 0;
    return patched;
}

/* Whether every promise about NODE holds when the kernel does its I/O:
 * a raw base layer nobody builds on, whose chain nothing is changing, on
 * a writable domain, that only root may write (the kernel checks no
 * volume size, and only root may grow a volume). */
static bool
qualifies(struct vs_node *node)
{
    struct vs_volume *vol = node->vol;

    return node->cat.backing_id == 0 && node->layers_above == 0 &&
           strcmp(node->cat.format, "raw") == 0 &&
           !(node->cat.flags & VS_RECF_MERGE_DOWN) && !node->merge_waiting &&
           !node->domain->read_only && node->cat.uid == 0 &&
           (node->cat.mode & 0022) == 0 && !atomic_load(&vol->dirty) &&
           !vs_merge_busy(node->cat.id) && !vs_merge_holds(vs_fs.tree, node);
}

/* Register VOL's object as a backing file; its id, or 0 (logged once). */
static int
backing_open(struct vs_volume *vol)
{
    struct vs_fuse_backing_map map;
    int fd = vs_bdev_kernel_fd(vol->bdev);
    int id;

    if (fd < 0)
        return 0;
    memset(&map, 0, sizeof(map));
    map.fd = fd;
    id = ioctl(dev_fd, VS_FUSE_DEV_IOC_BACKING_OPEN, &map);
    if (id > 0)
        return id;
    if (!atomic_exchange(&pt_failed_logged, true))
        vs_log(LOG_WARNING,
               "passthrough: the kernel refused the backing file of '%s' "
               "(%s): such opens go through the daemon (logged once)",
               vol->label, strerror(errno));
    return 0;
}

int
vs_passthrough_open(struct vs_node *node)
{
    struct vs_volume *vol = node->vol;
    int id = 0;

    if (!atomic_load(&pt_active))
        return 0;
    pthread_mutex_lock(&vol->lock);
    if (vol->pt_opens > 0) {
        vol->pt_opens++;
        id = vol->pt_id;
    } else if (vol->open_count == 1 && vol->bdev && qualifies(node)) {
        id = backing_open(vol);
        if (id > 0) {
            vol->pt_opens = 1;
            vol->pt_id = id;
        }
    }
    pthread_mutex_unlock(&vol->lock);
    if (id > 0)
        vs_log_debug(VS_LOG_CAT_IO, "'%s': open by passthrough (backing %d)",
                     vol->label, id);
    return id;
}

/* Take VOL's size from its object; vol->lock held. */
static void
sync_size_locked(struct vs_volume *vol)
{
    int64_t size;

    if (!vol->bdev)
        return;
    size = vs_bdev_resync_size(vol->bdev);
    if (size >= 0)
        atomic_store(&vol->size, (uint64_t)size);
}

void
vs_passthrough_sync_size(struct vs_volume *vol)
{
    pthread_mutex_lock(&vol->lock);
    if (vol->pt_opens > 0)
        sync_size_locked(vol);
    pthread_mutex_unlock(&vol->lock);
}

void
vs_passthrough_release(struct vs_volume *vol)
{
    uint32_t id = 0;

    pthread_mutex_lock(&vol->lock);
    if (vol->pt_opens > 0 && --vol->pt_opens == 0) {
        id = (uint32_t)vol->pt_id;
        vol->pt_id = 0;
        sync_size_locked(vol);
    }
    pthread_mutex_unlock(&vol->lock);
    if (id > 0 && ioctl(dev_fd, VS_FUSE_DEV_IOC_BACKING_CLOSE, &id) < 0)
        vs_log(LOG_WARNING, "passthrough: closing backing %u of '%s': %s", id,
               vol->label, strerror(errno));
}

int
vs_passthrough_busy(struct vs_node *node, const char *what)
{
    char path[3 * VS_NAME_MAX + 8];
    int opens;

    if (!node->vol)
        return 0;
    pthread_mutex_lock(&node->vol->lock);
    opens = node->vol->pt_opens;
    pthread_mutex_unlock(&node->vol->lock);
    if (opens == 0)
        return 0;
    vs_log(LOG_NOTICE,
           "refused %s of '%s': it is open through kernel passthrough (%d "
           "handle(s)), whose I/O the daemon does not see; close it first "
           "(EBUSY)",
           what, vs_node_path(node, path, sizeof(path)), opens);
    return -EBUSY;
}
