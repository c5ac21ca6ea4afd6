/*
 * The space reserve: a preallocated file, DATA_DIR/reserve, that stands
 * between a full file system and the requests that free space on it.
 *
 * When the file system of the data directory (the catalog and the local
 * domains) is full, a removal still has to append to the catalog's
 * write-ahead log and may write a metadata record into a block never
 * written before, and both fail with ENOSPC: nothing could be freed through
 * the mount.  So before a removal, a rename, a rescan or the start-up, when
 * less than the reserve's size is free, the reserve is deleted and its
 * blocks are there for the catalog and the records.  It is made again
 * (preallocated with fallocate, or written) once twice its size is free:
 * at start, before a mkdir and after each change that released it.  One log
 * line each time it is released or made.
 *
 * Only the namespace changes call this module, under the tree's write lock
 * or at start; its own mutex makes it safe anywhere.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "fs.h"
#include "vs/log.h"

#define RESERVE_NAME "reserve"
#define WRITE_CHUNK (64u << 10)

static pthread_mutex_t reserve_lock = PTHREAD_MUTEX_INITIALIZER;
static char *reserve_path;
static char *reserve_dir;

/* Bytes free for the daemon (root: the blocks kept for root count). */
static int64_t
free_bytes(void)
{
    struct statvfs sv;

    if (statvfs(reserve_dir, &sv) < 0)
        return -errno;
    return (int64_t)((uint64_t)sv.f_bfree * sv.f_frsize);
}

static bool
reserve_present(void)
{
    struct stat sb;

    return stat(reserve_path, &sb) == 0;
}

int
vs_reserve_init(const char *data_dir)
{
    free(reserve_path);
    free(reserve_dir);
    reserve_dir = strdup(data_dir);
    if (asprintf(&reserve_path, "%s/" RESERVE_NAME, data_dir) < 0)
        reserve_path = NULL;
    return reserve_dir && reserve_path ? 0 : -ENOMEM;
}

void
vs_reserve_release_if_full(const char *why)
{
    int64_t avail;

    if (!reserve_path)
        return;
    pthread_mutex_lock(&reserve_lock);
    avail = free_bytes();
    if (avail >= 0 && avail < VS_RESERVE_BYTES && reserve_present()) {
        if (unlink(reserve_path) == 0)
            vs_log(LOG_WARNING,
                   "the file system of '%s' is full (%lld bytes free): "
                   "released the %u MiB reserve '%s' for the %s",
                   reserve_dir, (long long)avail, VS_RESERVE_BYTES >> 20,
                   reserve_path, why);
        else
            vs_log(LOG_WARNING, "cannot release the reserve '%s': %s",
                   reserve_path, strerror(errno));
    }
    pthread_mutex_unlock(&reserve_lock);
}

/* Give FD its VS_RESERVE_BYTES: fallocate, or zeros where it is missing. */
static int
fill(int fd)
{
    static const char zeros[WRITE_CHUNK];

    if (fallocate(fd, 0, 0, VS_RESERVE_BYTES) == 0)
        return 0;
    if (errno != EOPNOTSUPP)
        return -errno;
    for (off_t off = 0; off < VS_RESERVE_BYTES; off += WRITE_CHUNK)
        if (pwrite(fd, zeros, WRITE_CHUNK, off) != WRITE_CHUNK)
            return errno ? -errno : -ENOSPC;
    return 0;
}

/* Make the reserve under a temporary name and rename it into place, so a
 * crash never leaves a short one. */
static int
make_reserve(void)
{
    char tmp[PATH_MAX];
    int fd, r;

    snprintf(tmp, sizeof(tmp), "%s.new", reserve_path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    r = fill(fd);
    if (r == 0 && fsync(fd) < 0)
        r = -errno;
    close(fd);
    if (r == 0 && rename(tmp, reserve_path) < 0)
        r = -errno;
    if (r < 0)
        unlink(tmp);
    return r;
}

void
vs_reserve_refill(void)
{
    int64_t avail;
    int r;

    if (!reserve_path)
        return;
    pthread_mutex_lock(&reserve_lock);
    avail = free_bytes();
    if (avail >= 2 * (int64_t)VS_RESERVE_BYTES && !reserve_present()) {
        r = make_reserve();
        if (r < 0)
            vs_log(LOG_WARNING, "cannot make the reserve '%s': %s",
                   reserve_path, strerror(-r));
        else
            vs_log(LOG_INFO, "made the %u MiB reserve '%s'",
                   VS_RESERVE_BYTES >> 20, reserve_path);
    }
    pthread_mutex_unlock(&reserve_lock);
}

void
vs_reserve_fini(void)
{
    free(reserve_path);
    free(reserve_dir);
    reserve_path = reserve_dir = NULL;
}
