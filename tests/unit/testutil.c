/*
 * Scaffolding the unit tests share; see testutil.h.  The scratch
 * directory's name and its store are kept from tu_scratch_open() on, for
 * the object helpers and for the qemu-img helpers, which name the store's
 * objects by path.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vs/bdev.h"
#include "tap.h"
#include "testutil.h"

static char scratch_dir[128];
static char store_dir[160];
static struct vs_store *scratch_store;

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

void
tu_rm_tree(const char *path)
{
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

bool
tu_is_zero(const uint8_t *buf, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (buf[i] != 0)
            return false;
    }
    return true;
}

int
tu_run(const char *cmd, char *out, size_t outlen)
{
    char full[2048];
    FILE *f;
    size_t n;
    int status;

    snprintf(full, sizeof(full), "%s 2>&1", cmd);
    f = popen(full, "r");
    if (f == NULL)
        return -1;
    if (out != NULL && outlen > 0) {
        n = fread(out, 1, outlen - 1, f);
        out[n] = '\0';
    }
    while (fgetc(f) != EOF)
        ;
    status = pclose(f);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* ---- the scratch directory and its store ---- */

int
tu_scratch_open(char *template, struct vs_store **st)
{
    char loc[192];

    if (mkdtemp(template) == NULL) {
        perror(template);
        return -1;
    }
    snprintf(scratch_dir, sizeof(scratch_dir), "%s", template);
    snprintf(store_dir, sizeof(store_dir), "%s/store", scratch_dir);
    snprintf(loc, sizeof(loc), "dir:%s", store_dir);
    if (vs_store_open(loc, true, st) < 0) {
        tap_diag("cannot create a store at %s", loc);
        return -1;
    }
    scratch_store = *st;
    return 0;
}

void
tu_scratch_close(struct vs_store *st)
{
    vs_store_close(st);
    scratch_store = NULL;
    tu_rm_tree(scratch_dir);
}

const char *
tu_obj_path(const char *name)
{
    static char path[4][256];
    static int next;
    char *p = path[next++ % 4];

    snprintf(p, 256, "%s/%s", store_dir, name);
    return p;
}

/* ---- objects of the scratch store ---- */

struct vs_bdev *
tu_open_fmt(const char *format, const char *name, unsigned flags,
            struct vs_bdev *backing)
{
    struct vs_bdev *file = NULL, *top = NULL;
    int r = vs_object_open(scratch_store, name, flags, name, &file);

    if (r == 0)
        r = vs_format_open(format, file, backing, flags, &top);
    if (r < 0) {
        tap_diag("open %s as %s: %s", name, format, strerror(-r));
        vs_bdev_close(file);
        vs_bdev_close(backing);
        return NULL;
    }
    return top;
}

int
tu_create_qcow2(const char *name, uint64_t size, const char *backing_name,
                const char *backing_format)
{
    struct vs_bdev *file = NULL;
    int r = vs_object_create(scratch_store, name, 0);

    if (r == 0)
        r = vs_object_open(scratch_store, name, 0, name, &file);
    if (r == 0)
        r = vs_format_create("qcow2", file, size, backing_name, backing_format);
    vs_bdev_close(file);
    return r;
}

int
tu_create_raw(const char *name, const uint8_t *data, uint64_t size)
{
    struct vs_bdev *file = NULL;
    int r = vs_object_create(scratch_store, name, size);
    ssize_t n = -1;

    if (r == 0)
        r = vs_object_open(scratch_store, name, 0, name, &file);
    if (r == 0)
        n = vs_bdev_pwrite(file, data, size, 0);
    if (r == 0)
        vs_bdev_flush(file); /* the write's count is the verdict */
    vs_bdev_close(file);
    return r < 0 ? r : n == (ssize_t)size ? 0 : -EIO;
}

/* ---- qemu-img as the judge ---- */

bool
tu_qemu_check(const char *name)
{
    char cmd[512], out[4096];
    int rc;

    snprintf(cmd, sizeof(cmd), "qemu-img check -f qcow2 '%s'",
             tu_obj_path(name));
    rc = tu_run(cmd, out, sizeof(out));
    if (rc != 0 || strstr(out, "No errors were found") == NULL)
        tap_diag("qemu-img check %s (exit %d): %s", name, rc, out);
    return rc == 0 && strstr(out, "No errors were found") != NULL;
}

const char *
tu_write_ref(const char *name, const uint8_t *ref, uint64_t size)
{
    static char path[256];
    int fd;
    bool good;

    snprintf(path, sizeof(path), "%s/%s", scratch_dir, name);
    fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return NULL;
    good = write(fd, ref, size) == (ssize_t)size;
    close(fd);
    return good ? path : NULL;
}

bool
tu_qemu_compare(const char *name, const uint8_t *ref, uint64_t size)
{
    char refname[64], cmd[768], out[2048];
    const char *path;
    int rc;

    snprintf(refname, sizeof(refname), "%s.ref", name);
    path = tu_write_ref(refname, ref, size);
    if (path == NULL)
        return false;
    snprintf(cmd, sizeof(cmd), "qemu-img compare -f qcow2 -F raw '%s' '%s'",
             tu_obj_path(name), path);
    rc = tu_run(cmd, out, sizeof(out));
    if (rc != 0)
        tap_diag("%s: %s", cmd, out);
    return rc == 0;
}

/* ---- reading back ---- */

bool
tu_same(struct vs_bdev *bs, const uint8_t *ref, uint64_t size)
{
    uint8_t *buf = malloc(size);
    ssize_t n = vs_bdev_pread(bs, buf, size, 0);
    bool eq = n == (ssize_t)size && memcmp(buf, ref, size) == 0;

    for (uint64_t i = 0; !eq && n == (ssize_t)size && i < size; i++) {
        if (buf[i] != ref[i]) {
            tap_diag("first difference at %llu: %u != %u",
                     (unsigned long long)i, buf[i], ref[i]);
            break;
        }
    }
    free(buf);
    return eq;
}

bool
tu_round_trip(struct vs_bdev *bs, const uint8_t *buf, size_t len, uint64_t off)
{
    uint8_t *back = malloc(len);
    bool same = back != NULL &&
                vs_bdev_pwrite(bs, buf, len, off) == (ssize_t)len &&
                vs_bdev_pread(bs, back, len, off) == (ssize_t)len &&
                memcmp(buf, back, len) == 0;

    free(back);
    return same;
}

/* ---- threads ---- */

int
tu_run_workers(struct vs_bdev *bs, int n, void *(*fn)(void *))
{
    struct tu_worker *w = calloc((size_t)n, sizeof(*w));
    pthread_t *t = calloc((size_t)n, sizeof(*t));
    int started = 0, failures = 0;

    while (w != NULL && t != NULL && started < n) {
        w[started] = (struct tu_worker){bs, started, 0};
        if (pthread_create(&t[started], NULL, fn, &w[started]) != 0)
            break;
        started++;
    }
    for (int i = 0; i < started; i++) {
        pthread_join(t[i], NULL);
        failures += w[i].failures;
    }
    free(w);
    free(t);
    return started == n ? failures : -1;
}
