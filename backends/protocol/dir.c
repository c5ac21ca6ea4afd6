/*
 * The "dir" protocol driver: a storage domain kept in a local directory.
 *
 * Location "dir:/absolute/path".  The store is that directory (created
 * with mode 0700); each object is a regular file directly inside it, named
 * by the safe name vstorfs chose.  The directory stays open for the
 * store's lifetime and every object is reached beneath that descriptor
 * with openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
 * RESOLVE_NO_MAGICLINKS); names are never joined into paths, and a name
 * holding '/' or starting with '.' is refused before the kernel sees it
 * (which is also what makes the openat(O_NOFOLLOW) fallback safe where
 * openat2 does not exist).
 *
 * What the file system can offload (reflink, copy_file_range, hole
 * punching, zero ranges, SEEK_DATA, O_DIRECT) is probed once when the store
 * opens, on scratch files named ".vs-probe-*" that are removed right away
 * and never listed as objects; each object bdev inherits those caps.
 *
 * One option: sync=on opens every object with O_DSYNC, so each write is on
 * stable storage when it completes (for a file system whose cache the
 * host must not trust, at the cost of a flush per write); sync=off, the
 * default, leaves durability to flush (fsync), as the guest asks.
 *
 * The block I/O of an open object lives in dir_io.c.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <linux/openat2.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "vs/log.h"
#include "vs/util.h"
#include "backends.h"
#include "dir.h"

#define DIR_SCHEME "dir:"
#define PROBE_PREFIX ".vs-probe-"
#define OBJECT_MODE 0600
#define STORE_MODE 0700
/* The probe writes this much data at PROBE_DATA_OFF of a sparse file. */
#define PROBE_LEN (64L * 1024)
#define PROBE_DATA_OFF (1024L * 1024)

static atomic_uint probe_counter;
static atomic_bool no_openat2; /* the kernel said ENOSYS once */

/* ---- names and opening beneath the store ---- */

/* 0 if NAME may name an object file: no '/', no leading '.', not empty. */
static int
dir_name_check(const char *name)
{
    if (name[0] == '\0' || name[0] == '.' || strchr(name, '/') != NULL)
        return -EINVAL;
    if (strlen(name) > NAME_MAX)
        return -ENAMETOOLONG;
    return 0;
}

/*
 * Without openat2 (kernels before 5.6, or valgrind, which does not know the
 * call): NAME has passed dir_name_check, so it is one component that is
 * neither "." nor "..", and O_NOFOLLOW keeps that component from being a
 * symlink - the same guarantee for such names.
 */
static int
dir_openat_compat(int dirfd, const char *name, int flags, mode_t mode)
{
    int fd;

    do {
        fd = openat(dirfd, name, flags | O_NOFOLLOW | O_CLOEXEC, mode);
    } while (fd < 0 && errno == EINTR);
    return fd < 0 ? -errno : fd;
}

/* Open NAME beneath DIRFD, never through a symlink; fd or -errno. */
static int
dir_openat(int dirfd, const char *name, int flags, mode_t mode)
{
    struct open_how how = {
        .flags = (uint64_t)(flags | O_CLOEXEC),
        .mode = (flags & O_CREAT) ? mode : 0,
        .resolve =
            RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
    };
    long fd;

    if (atomic_load_explicit(&no_openat2, memory_order_relaxed))
        return dir_openat_compat(dirfd, name, flags, mode);
    do {
        fd = syscall(SYS_openat2, dirfd, name, &how, sizeof(how));
    } while (fd < 0 && errno == EINTR);
    if (fd < 0 && errno == ENOSYS) {
        atomic_store(&no_openat2, true);
        return dir_openat_compat(dirfd, name, flags, mode);
    }
    return fd < 0 ? -errno : (int)fd;
}

static struct dir_store *
dir_store_of(struct vs_store *st)
{
    return st->opaque;
}

/* ---- capability probe ---- */

/* Create a fresh scratch file in DS; fd or -errno, its name in NAME. */
static int
probe_file(struct dir_store *ds, char *name, size_t size)
{
    snprintf(name, size, PROBE_PREFIX "%ld-%u", (long)getpid(),
             atomic_fetch_add(&probe_counter, 1));
    return dir_openat(ds->dirfd, name, O_RDWR | O_CREAT | O_EXCL, OBJECT_MODE);
}

/* Lay out A: a hole of PROBE_DATA_OFF bytes, then PROBE_LEN bytes of data. */
static int
probe_fill(int fd)
{
    char *buf = malloc(PROBE_LEN);
    ssize_t n;

    if (buf == NULL)
        return -ENOMEM;
    memset(buf, 0x5a, PROBE_LEN);
    n = pwrite(fd, buf, PROBE_LEN, PROBE_DATA_OFF);
    free(buf);
    return n == PROBE_LEN ? 0 : -EIO;
}

/* Probe what needs only file A (laid out by probe_fill). */
static void
probe_one_file(struct dir_store *ds, const char *name, int fd)
{
    int dfd = dir_openat(ds->dirfd, name, O_RDWR | O_DIRECT, 0);

    ds->caps.direct = dfd >= 0;
    if (dfd >= 0)
        close(dfd);
    ds->caps.alloc_status = lseek(fd, 0, SEEK_DATA) == PROBE_DATA_OFF;
    ds->caps.unmap = fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                               PROBE_DATA_OFF, 4096) == 0;
    ds->caps.write_zeroes =
        fallocate(fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
                  PROBE_DATA_OFF + 4096, 4096) == 0;
}

/* Probe what needs a second file B: copy and clone from A. */
static void
probe_two_files(struct dir_store *ds, int fd_a, int fd_b)
{
    loff_t in = PROBE_DATA_OFF, out = 0;

    ds->caps.copy =
        copy_file_range(fd_a, &in, fd_b, &out, PROBE_LEN, 0) == PROBE_LEN;
    ds->caps.clone = ioctl(fd_b, FICLONE, fd_a) == 0;
}

/* Find out once what the store's file system offloads; failures of the
 * probe itself (a read-only store, say) leave every cap false. */
static void
dir_probe(struct dir_store *ds)
{
    char name_a[64], name_b[64];
    int fd_a = probe_file(ds, name_a, sizeof(name_a));
    int fd_b;

    if (fd_a < 0) {
        vs_log_debug(VS_LOG_CAT_BACKEND, "dir '%s': cannot probe: %s", ds->path,
                     strerror(-fd_a));
        return;
    }
    if (probe_fill(fd_a) == 0) {
        probe_one_file(ds, name_a, fd_a);
        fd_b = probe_file(ds, name_b, sizeof(name_b));
        if (fd_b >= 0) {
            probe_two_files(ds, fd_a, fd_b);
            close(fd_b);
            unlinkat(ds->dirfd, name_b, 0);
        }
    }
    close(fd_a);
    unlinkat(ds->dirfd, name_a, 0);
    vs_log_debug(VS_LOG_CAT_BACKEND,
                 "dir '%s': clone=%d copy=%d unmap=%d write_zeroes=%d "
                 "alloc_status=%d direct=%d",
                 ds->path, ds->caps.clone, ds->caps.copy, ds->caps.unmap,
                 ds->caps.write_zeroes, ds->caps.alloc_status, ds->caps.direct);
}

/* ---- stores ---- */

/* The absolute directory path of a "dir:" location, or NULL. */
static const char *
dir_path_of(const char *location)
{
    size_t len = strlen(DIR_SCHEME);

    if (strncmp(location, DIR_SCHEME, len) != 0 || location[len] != '/')
        return NULL;
    return location + len;
}

static int
dir_store_setup(struct vs_store *st, const char *path, int dirfd)
{
    struct dir_store *ds;
    bool sync;

    if (vs_options_get_bool(st->options, "sync", false, &sync) < 0)
        return -EINVAL; /* checked by the generic layer already */
    ds = calloc(1, sizeof(*ds));
    if (ds == NULL)
        return -ENOMEM;
    ds->sync = sync;
    ds->path = strdup(path);
    if (ds->path == NULL) {
        free(ds);
        return -ENOMEM;
    }
    ds->dirfd = dirfd;
    dir_probe(ds);
    st->caps = ds->caps;
    st->opaque = ds;
    return 0;
}

/* Make a new entry of PATH's parent directory durable. */
static int
sync_parent(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *parent = slash != NULL ? strndup(path, (size_t)(slash - path)) : NULL;
    int fd, r = 0;

    if (parent == NULL)
        return -ENOMEM;
    fd = open(parent[0] ? parent : "/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) < 0)
        r = -errno;
    if (fd >= 0)
        close(fd);
    free(parent);
    return r;
}

static int
dir_store_open(struct vs_store *st, bool create)
{
    const char *path = dir_path_of(st->location);
    int fd, r;

    if (path == NULL)
        return -EINVAL;
    if (create && mkdir(path, STORE_MODE) < 0)
        return -errno;
    if (create && (r = sync_parent(path)) < 0) {
        rmdir(path);
        return r;
    }
    fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    r = fd < 0 ? -errno : dir_store_setup(st, path, fd);
    if (r < 0) {
        if (fd >= 0)
            close(fd);
        if (create)
            rmdir(path);
    }
    return r;
}

static void
dir_store_close(struct vs_store *st)
{
    struct dir_store *ds = dir_store_of(st);

    if (ds == NULL)
        return;
    close(ds->dirfd);
    free(ds->path);
    free(ds);
    st->opaque = NULL;
}

/* Whether entry E of directory D is a regular file (not following links). */
static bool
entry_is_file(DIR *d, const struct dirent *e)
{
    struct stat sb;

    if (e->d_type != DT_UNKNOWN)
        return e->d_type == DT_REG;
    return fstatat(dirfd(d), e->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
           S_ISREG(sb.st_mode);
}

/* Whether entry E of directory D is a directory (not following links). */
static bool
entry_is_dir(DIR *d, const struct dirent *e)
{
    struct stat sb;

    if (e->d_type != DT_UNKNOWN)
        return e->d_type == DT_DIR;
    return fstatat(dirfd(d), e->d_name, &sb, AT_SYMLINK_NOFOLLOW) == 0 &&
           S_ISDIR(sb.st_mode);
}

/* Call fn for each entry of D that IS (a regular file, a directory) and
 * whose name starts with '.' exactly when HIDDEN; stop at fn's first
 * non-zero answer and return it.  Closes D. */
static int
scan_entries(DIR *d, bool hidden, bool (*is)(DIR *d, const struct dirent *e),
             int (*fn)(const char *name, void *arg), void *arg)
{
    struct dirent *e;
    int r = 0;

    while (r == 0) {
        errno = 0;
        e = readdir(d);
        if (e == NULL) {
            r = -errno;
            break;
        }
        if ((e->d_name[0] == '.') == hidden && is(d, e))
            r = fn(e->d_name, arg);
    }
    closedir(d);
    return r;
}

/* The regular files of the store, dotted (HIDDEN) or not. */
static int
dir_scan(struct dir_store *ds, bool hidden,
         int (*fn)(const char *name, void *arg), void *arg)
{
    int fd = openat(ds->dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    int r;

    if (d == NULL) {
        r = -errno;
        if (fd >= 0)
            close(fd);
        return r;
    }
    return scan_entries(d, hidden, entry_is_file, fn, arg);
}

/* The stores under ROOT: its directory's subdirectories (a dotted name is
 * never a store). */
/* The directory that holds the stores, made (private: the domains hold
 * the disks) if it is missing; its parent must exist. */
static int
dir_store_root_prepare(const char *root)
{
    const char *path = dir_path_of(root);

    if (path == NULL)
        return -EINVAL;
    if (mkdir(path, 0700) == 0)
        return sync_parent(path);
    return errno == EEXIST ? 0 : -errno;
}

static int
dir_store_list(const char *root, int (*fn)(const char *name, void *arg),
               void *arg)
{
    const char *path = dir_path_of(root);
    DIR *d;

    if (path == NULL)
        return -EINVAL;
    d = opendir(path);
    if (d == NULL)
        return -errno;
    return scan_entries(d, false, entry_is_dir, fn, arg);
}

static int
dir_object_list(struct vs_store *st, int (*fn)(const char *name, void *arg),
                void *arg)
{
    return dir_scan(dir_store_of(st), false, fn, arg);
}

/* dir_scan callback: any object but "metadata" keeps the store alive. */
static int
destroy_check(const char *name, void *arg)
{
    (void)arg;
    return strcmp(name, "metadata") == 0 ? 0 : -ENOTEMPTY;
}

/* dir_scan callback: remove a scratch file a crashed probe left behind. */
static int
destroy_probe(const char *name, void *arg)
{
    struct dir_store *ds = arg;

    if (strncmp(name, PROBE_PREFIX, strlen(PROBE_PREFIX)) == 0)
        unlinkat(ds->dirfd, name, 0);
    return 0;
}

static int
dir_store_destroy(struct vs_store *st)
{
    struct dir_store *ds = dir_store_of(st);
    int r = dir_scan(ds, false, destroy_check, NULL);

    if (r < 0)
        return r;
    r = dir_scan(ds, true, destroy_probe, ds);
    if (r < 0)
        return r;
    if (unlinkat(ds->dirfd, "metadata", 0) < 0 && errno != ENOENT)
        return -errno;
    if (rmdir(ds->path) < 0)
        return -errno;
    return sync_parent(ds->path);
}

static int
dir_store_space(struct vs_store *st, struct vs_space *out)
{
    struct statvfs sv;

    if (fstatvfs(dir_store_of(st)->dirfd, &sv) < 0)
        return -errno;
    out->capacity = (uint64_t)sv.f_blocks * sv.f_frsize;
    out->free = (uint64_t)sv.f_bavail * sv.f_frsize;
    return 0;
}

/* ---- objects ---- */

/* Make the store's names durable: records name objects only after the
 * object exists, and a power loss must not take back a created object or
 * bring back a removed one under a record that says otherwise. */
static int
dir_sync_names(struct dir_store *ds)
{
    return fsync(ds->dirfd) < 0 ? -errno : 0;
}

static int
dir_object_create(struct vs_store *st, const char *name, uint64_t size)
{
    struct dir_store *ds = dir_store_of(st);
    int r = dir_name_check(name);
    int fd;

    if (r < 0)
        return r;
    if (size > INT64_MAX)
        return -EFBIG;
    fd = dir_openat(ds->dirfd, name, O_RDWR | O_CREAT | O_EXCL, OBJECT_MODE);
    if (fd < 0)
        return fd;
    if (ftruncate(fd, (off_t)size) < 0) {
        r = -errno;
        unlinkat(ds->dirfd, name, 0);
    }
    close(fd);
    return r < 0 ? r : dir_sync_names(ds);
}

static int
dir_object_remove(struct vs_store *st, const char *name)
{
    int r = dir_name_check(name);

    if (r < 0)
        return r;
    if (unlinkat(dir_store_of(st)->dirfd, name, 0) < 0)
        return -errno;
    return dir_sync_names(dir_store_of(st));
}

/* Whether a FICLONE failure means "this storage cannot" (ENOTSUP). */
static bool
clone_unsupported(int err)
{
    return err == EOPNOTSUPP || err == EXDEV || err == EINVAL ||
           err == ENOTTY || err == ENOSYS;
}

static int
dir_object_clone(struct vs_store *st, const char *src, const char *dst)
{
    struct dir_store *ds = dir_store_of(st);
    _cleanup_close_ int sfd = -1;
    _cleanup_close_ int dfd = -1;
    int r = dir_name_check(src);

    if (r == 0)
        r = dir_name_check(dst);
    if (r < 0)
        return r;
    sfd = dir_openat(ds->dirfd, src, O_RDONLY, 0);
    if (sfd < 0)
        return sfd;
    dfd = dir_openat(ds->dirfd, dst, O_WRONLY | O_CREAT | O_EXCL, OBJECT_MODE);
    if (dfd < 0)
        return dfd;
    if (ioctl(dfd, FICLONE, sfd) == 0)
        return fsync(dfd) < 0 ? -errno : dir_sync_names(ds);
    r = clone_unsupported(errno) ? -ENOTSUP : -errno;
    unlinkat(ds->dirfd, dst, 0);
    return r;
}

/* Open the O_DIRECT descriptor beside o->fd when asked and possible. */
static void
dir_open_direct(struct dir_store *ds, const char *name, int acc,
                struct dir_object *o)
{
    int dfd = dir_openat(ds->dirfd, name, acc | O_DIRECT, 0);

    if (dfd < 0)
        vs_log_debug(VS_LOG_CAT_BACKEND, "dir object '%s': no O_DIRECT: %s",
                     name, strerror(-dfd));
    o->dfd = dfd < 0 ? -1 : dfd;
}

static int
dir_object_open(struct vs_store *st, const char *name, struct vs_bdev *bs)
{
    struct dir_store *ds = dir_store_of(st);
    int acc = (bs->open_flags & VS_OPEN_RDONLY) ? O_RDONLY : O_RDWR;
    struct dir_object *o;
    struct stat sb;
    int r = dir_name_check(name);
    int fd;

    if (r < 0)
        return r;
    if (ds->sync && acc == O_RDWR)
        acc |= O_DSYNC;
    fd = dir_openat(ds->dirfd, name, acc, 0);
    if (fd < 0)
        return fd;
    if (fstat(fd, &sb) < 0)
        r = -errno;
    else if (!S_ISREG(sb.st_mode))
        r = -EINVAL;
    o = r == 0 ? calloc(1, sizeof(*o)) : NULL;
    if (o == NULL) {
        close(fd);
        return r < 0 ? r : -ENOMEM;
    }
    o->fd = fd;
    o->dfd = -1;
    o->sync = ds->sync;
    pthread_mutex_init(&o->run_lock, NULL);
    if ((bs->open_flags & VS_OPEN_DIRECT) && ds->caps.direct)
        dir_open_direct(ds, name, acc, o);
    dir_dio_align(o);
    dir_limits(o, bs);
    bs->caps = ds->caps;
    if ((bs->open_flags & VS_OPEN_DIRECT) && o->dfd < 0)
        bs->caps.direct = false;
    bs->opaque = o;
    return 0;
}

/* The object's buffered descriptor for kernel passthrough; not with
 * sync=on, whose O_DSYNC the kernel's own open of the file would drop. */
static int
dir_get_fd(struct vs_bdev *bs)
{
    struct dir_object *o = bs->opaque;

    return o->sync ? -ENOTSUP : o->fd;
}

/* Values of an on/off option. */
static int
check_on_off(const char *value)
{
    return strcmp(value, "on") == 0 || strcmp(value, "off") == 0 ? 0 : -EINVAL;
}

static const struct vs_option_spec dir_options[] = {
    {"sync", false,
     "on: every write is durable when it completes (O_DSYNC); off "
     "(default): at flush",
     check_on_off},
    {NULL, false, NULL, NULL},
};

const struct vs_driver vs_driver_dir = {
    .api_version = VS_DRIVER_API_VERSION,
    .struct_size = sizeof(struct vs_driver),
    .name = "dir",
    .kind = VS_DRIVER_PROTOCOL,
    .scheme = DIR_SCHEME,
    .store_open = dir_store_open,
    .store_close = dir_store_close,
    .store_destroy = dir_store_destroy,
    .store_space = dir_store_space,
    .store_list = dir_store_list,
    .store_root_prepare = dir_store_root_prepare,
    .object_create = dir_object_create,
    .object_remove = dir_object_remove,
    .object_open = dir_object_open,
    .object_clone = dir_object_clone,
    .object_list = dir_object_list,
    .close = dir_close,
    .get_size = dir_get_size,
    .get_allocated = dir_get_allocated,
    .truncate = dir_truncate,
    .preadv = dir_preadv,
    .pwritev = dir_pwritev,
    .flush = dir_flush,
    .discard = dir_discard,
    .write_zeroes = dir_write_zeroes,
    .block_status = dir_block_status,
    .copy_range = dir_copy_range,
    .allocate = dir_allocate,
    .options = dir_options,
    .get_fd = dir_get_fd,
};
