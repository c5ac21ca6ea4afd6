/*
 * The secrets store (<vs/secrets.h>): one small file per domain under
 * DATA_DIR/secrets, checked for ownership and mode before every use.
 *
 * Loading opens the file without following a symlink, then checks the
 * directory and the open file (fstat, so what is checked is what is read):
 * both must be owned by the effective user, the directory mode 0700 or
 * tighter and the file 0600 or tighter.  Saving writes a temporary file
 * (O_EXCL, mode 0600) beside the target, fsyncs it, renames it over the
 * target and fsyncs the directory; a failure removes the temporary file.
 * Buffers that held secrets are wiped before they are released.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vs/secrets.h"

static int why_set(char *why, size_t len, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Write a reason into WHY (if given); returns ERR. */
static int
why_set(char *why, size_t len, int err, const char *fmt, ...)
{
    va_list ap;

    if (why != NULL && len > 0) {
        va_start(ap, fmt);
        vsnprintf(why, len, fmt, ap);
        va_end(ap);
    }
    return err;
}

int
vs_secrets_path(const char *data_dir, const char *uuid, char *buf, size_t len)
{
    int n = snprintf(buf, len, "%s/" VS_SECRETS_DIR "/%s", data_dir, uuid);

    return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* The directory part of PATH into BUF ("." when it has none). */
static int
dir_of(const char *path, char *buf, size_t len)
{
    const char *slash = strrchr(path, '/');
    size_t n = slash == NULL ? 0 : (size_t)(slash - path);

    if (n + 2 > len)
        return -ENAMETOOLONG;
    if (slash == NULL)
        memcpy(buf, ".", 2);
    else if (n == 0)
        memcpy(buf, "/", 2);
    else {
        memcpy(buf, path, n);
        buf[n] = '\0';
    }
    return 0;
}

/* Whether SB (of WHAT, a file or directory) is owned by us with no bits
 * for group and others; -EACCES with the reason otherwise. */
static int
check_private(const struct stat *sb, const char *what, const char *path,
              char *why, size_t len)
{
    if (sb->st_uid != geteuid())
        return why_set(why, len, -EACCES,
                       "%s '%s' is owned by uid %u, not by the daemon's "
                       "uid %u",
                       what, path, (unsigned)sb->st_uid, (unsigned)geteuid());
    if (sb->st_mode & 077)
        return why_set(why, len, -EACCES,
                       "%s '%s' has mode %04o, wider than %s", what, path,
                       (unsigned)(sb->st_mode & 07777),
                       S_ISDIR(sb->st_mode) ? "0700" : "0600");
    return 0;
}

/* Check the directory of PATH (it must exist). */
static int
check_dir(const char *path, char *why, size_t len)
{
    char dir[4096];
    struct stat sb;

    if (dir_of(path, dir, sizeof(dir)) < 0)
        return -ENAMETOOLONG;
    if (lstat(dir, &sb) < 0)
        return why_set(why, len, -errno, "secrets directory '%s': %s", dir,
                       strerror(errno));
    if (!S_ISDIR(sb.st_mode))
        return why_set(why, len, -EACCES,
                       "secrets directory '%s' is not a directory", dir);
    return check_private(&sb, "secrets directory", dir, why, len);
}

/* Read all of FD (at most VS_SECRETS_FILE_MAX bytes) into BUF. */
static int
read_all(int fd, char *buf, size_t len, const char *path, char *why,
         size_t why_len)
{
    size_t used = 0;
    ssize_t n;

    while ((n = read(fd, buf + used, len - used)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return why_set(why, why_len, -errno, "secrets file '%s': %s", path,
                           strerror(errno));
        used += (size_t)n;
        if (used == len)
            return why_set(why, why_len, -EINVAL,
                           "secrets file '%s' is larger than %d bytes", path,
                           VS_SECRETS_FILE_MAX);
    }
    buf[used] = '\0';
    if (used > 0 && buf[used - 1] == '\n')
        buf[used - 1] = '\0';
    return 0;
}

/* Parse the text of secrets file PATH into OUT.  The parser's reason is
 * not passed on: in a damaged file, what it takes for a key may be a piece
 * of a value. */
static int
parse_file(const char *text, const char *path, struct vs_options *out,
           char *why, size_t len)
{
    if (vs_options_parse(text, out, NULL, 0) < 0)
        return why_set(why, len, -EINVAL,
                       "secrets file '%s' is not a valid list (rewrite it "
                       "with vstor secret set)",
                       path);
    return 0;
}

int
vs_secrets_load(const char *path, struct vs_options *out, char *why,
                size_t why_len)
{
    char buf[VS_SECRETS_FILE_MAX + 1];
    struct stat sb;
    int fd, r;

    fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0 && errno == ENOENT) {
        memset(out, 0, sizeof(*out));
        return 0; /* no secrets */
    }
    if (fd < 0)
        return why_set(why, why_len, errno == ELOOP ? -EACCES : -errno,
                       "secrets file '%s': %s", path,
                       errno == ELOOP ? "a symlink" : strerror(errno));
    r = check_dir(path, why, why_len);
    if (r == 0 && fstat(fd, &sb) < 0)
        r = why_set(why, why_len, -errno, "secrets file '%s': %s", path,
                    strerror(errno));
    else if (r == 0 && !S_ISREG(sb.st_mode))
        r = why_set(why, why_len, -EACCES,
                    "secrets file '%s' is not a regular file", path);
    if (r == 0)
        r = check_private(&sb, "secrets file", path, why, why_len);
    if (r == 0)
        r = read_all(fd, buf, sizeof(buf), path, why, why_len);
    if (r == 0)
        r = parse_file(buf, path, out, why, why_len);
    explicit_bzero(buf, sizeof(buf));
    close(fd);
    return r;
}

/* Make the directory of PATH (0700) when it is missing; check it. */
static int
make_dir(const char *path, char *why, size_t len)
{
    char dir[4096];
    int fd;

    if (dir_of(path, dir, sizeof(dir)) < 0)
        return -ENAMETOOLONG;
    if (mkdir(dir, 0700) == 0) {
        char parent[4096];

        /* the new directory's entry is durable before a file goes in */
        if (dir_of(dir, parent, sizeof(parent)) == 0 &&
            (fd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
            fsync(fd);
            close(fd);
        }
    } else if (errno != EEXIST) {
        return why_set(why, len, -errno, "secrets directory '%s': %s", dir,
                       strerror(errno));
    }
    return check_dir(path, why, len);
}

/* fsync the directory of PATH. */
static int
sync_dir(const char *path)
{
    char dir[4096];
    int fd, r = 0;

    if (dir_of(path, dir, sizeof(dir)) < 0)
        return -ENAMETOOLONG;
    fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) < 0)
        r = -errno;
    if (fd >= 0)
        close(fd);
    return r;
}

/* Write TEXT (LEN bytes) to a new file TMP, mode 0600, and fsync it. */
static int
write_tmp(const char *tmp, const char *text, size_t len)
{
    int fd =
        open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    size_t done = 0;
    int r = 0;

    if (fd < 0)
        return -errno;
    if (fchmod(fd, 0600) < 0) /* whatever the umask was */
        r = -errno;
    while (r == 0 && done < len) {
        ssize_t n = write(fd, text + done, len - done);

        if (n < 0 && errno != EINTR)
            r = -errno;
        else if (n > 0)
            done += (size_t)n;
    }
    if (r == 0 && fsync(fd) < 0)
        r = -errno;
    if (close(fd) < 0 && r == 0)
        r = -errno;
    return r;
}

/* Remove the file PATH (no secrets left) durably. */
static int
remove_file(const char *path, char *why, size_t len)
{
    if (unlink(path) < 0 && errno != ENOENT)
        return why_set(why, len, -errno, "secrets file '%s': %s", path,
                       strerror(errno));
    return sync_dir(path);
}

int
vs_secrets_save(const char *path, const struct vs_options *s, char *why,
                size_t why_len)
{
    char text[VS_SECRETS_FILE_MAX], tmp[4096];
    int n, r = make_dir(path, why, why_len);

    if (r < 0)
        return r;
    if (s->count == 0)
        return remove_file(path, why, why_len);
    n = vs_options_format(s, false, text, sizeof(text) - 1);
    if (n < 0)
        return why_set(why, why_len, n, "the secrets do not fit in %d bytes",
                       VS_SECRETS_FILE_MAX);
    text[n++] = '\n';
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp-%ld", path,
                         (long)getpid()) >= sizeof(tmp))
        r = -ENAMETOOLONG;
    if (r == 0) {
        unlink(tmp); /* left by a crash of an earlier run with our pid */
        r = write_tmp(tmp, text, (size_t)n);
    }
    if (r == 0 && rename(tmp, path) < 0)
        r = -errno;
    if (r == 0)
        r = sync_dir(path);
    explicit_bzero(text, sizeof(text));
    if (r < 0) {
        unlink(tmp);
        return why_set(why, why_len, r, "secrets file '%s': %s", path,
                       strerror(-r));
    }
    return 0;
}
