/*
 * Unit tests of the driver registry and the "dir" protocol driver's store
 * and object operations: creating, opening and destroying stores, creating,
 * listing, cloning and removing objects, refusing names that try to leave
 * the store and symlinks planted in it, and the capability probe (printed
 * for a disk file system and for tmpfs).
 *
 * Stores live under /var/tmp (a disk file system, not tmpfs) in a
 * directory this test makes and removes.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vs/bdev.h"
#include "tap.h"
#include "testutil.h"

static char base[64] = "/var/tmp/vstorfs-test-dir.XXXXXX";

/* "dir:<base>/<sub>" into BUF. */
static const char *
location(char *buf, size_t len, const char *root, const char *sub)
{
    snprintf(buf, len, "dir:%s/%s", root, sub);
    return buf;
}

/* The path of file NAME in store directory SUB of BASE into BUF. */
static const char *
store_file(char *buf, size_t len, const char *sub, const char *name)
{
    snprintf(buf, len, "%s/%s/%s", base, sub, name);
    return buf;
}

static void
count_driver(const struct vs_driver *drv, void *arg)
{
    (void)drv;
    (*(int *)arg)++;
}

static void
test_registry(void)
{
    const struct vs_driver *dir = vs_driver_find("dir");
    int n = 0;

    ok(dir != NULL && dir->kind == VS_DRIVER_PROTOCOL, "registry: dir");
    ok(vs_driver_find("raw") != NULL, "registry: raw");
    ok(vs_driver_find("nope") == NULL, "registry: unknown name");
    ok(vs_driver_for_location("dir:/x") == dir, "registry: dir: location");
    ok(vs_driver_for_location("raw:/x") == NULL, "registry: no raw scheme");
    ok(vs_driver_for_location("nfs://h/e") == NULL, "registry: no nfs yet");
    vs_driver_foreach(count_driver, &n);
    ok(n >= 2, "registry: foreach visits %d drivers", n);
}

static void
test_store_open_errors(void)
{
    char loc[256];
    struct vs_store *st = NULL;

    is_int(vs_store_open(location(loc, sizeof(loc), base, "none"), false, &st),
           -ENOENT, "store open: absent store is ENOENT");
    is_int(vs_store_open("dir:relative/path", true, &st), -EINVAL,
           "store open: relative path refused");
    is_int(vs_store_open("bogus://x", false, &st), -EPROTONOSUPPORT,
           "store open: unknown scheme");
}

struct names {
    int n;
    char seen[8][64];
};

static int
collect(const char *name, void *arg)
{
    struct names *nm = arg;

    if (nm->n < 8)
        snprintf(nm->seen[nm->n], sizeof(nm->seen[0]), "%s", name);
    nm->n++;
    return 0;
}

static bool
has_name(const struct names *nm, const char *name)
{
    for (int i = 0; i < nm->n && i < 8; i++) {
        if (strcmp(nm->seen[i], name) == 0)
            return true;
    }
    return false;
}

static void
test_objects(struct vs_store *st)
{
    struct vs_bdev *bs = NULL;
    struct names nm = {0};
    char path[512];
    int fd;

    is_int(vs_object_create(st, "metadata", 4096), 0, "create metadata");
    is_int(vs_object_create(st, "vol1", 1 << 20), 0, "create vol1");
    is_int(vs_object_create(st, "vol1", 1 << 20), -EEXIST,
           "create vol1 again is EEXIST");
    is_int(vs_object_open(st, "vol1", 0, "t/vol1", &bs), 0, "open vol1");
    is_int(vs_bdev_size(bs), 1 << 20, "vol1 has its size");
    ok(vs_bdev_allocated(bs) < 64L * 1024, "vol1 is sparse");
    vs_bdev_close(bs);
    /* a stale probe file must not show up as an object */
    fd = open(store_file(path, sizeof(path), "s1", ".vs-probe-1-1"),
              O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
    ok(fd >= 0, "plant a stale probe file");
    close(fd);
    is_int(vs_object_list(st, collect, &nm), 0, "list");
    is_int(nm.n, 2, "list: two objects");
    ok(has_name(&nm, "metadata") && has_name(&nm, "vol1"),
       "list: metadata and vol1");
    is_int(vs_object_remove(st, "absent"), -ENOENT, "remove absent: ENOENT");
}

static void
test_bad_names(struct vs_store *st)
{
    static const char *const bad[] = {"../x", "a/b", ".hidden",
                                      "",     "..",  "/etc/passwd"};
    struct vs_bdev *bs = NULL;
    char outside[128];

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *n = bad[i];

        ok(vs_object_create(st, n, 4096) == -EINVAL, "create '%s': EINVAL", n);
        ok(vs_object_open(st, n, 0, "bad", &bs) == -EINVAL, "open '%s': EINVAL",
           n);
        ok(vs_object_remove(st, n) == -EINVAL, "remove '%s': EINVAL", n);
        ok(vs_object_clone(st, "vol1", n) == -EINVAL, "clone to '%s': EINVAL",
           n);
    }
    snprintf(outside, sizeof(outside), "%s/x", base);
    ok(access(outside, F_OK) != 0, "nothing was made beside the store");
}

static void
test_symlinks(struct vs_store *st)
{
    struct vs_bdev *bs = NULL;
    char path[512];
    int r;

    store_file(path, sizeof(path), "s1", "evil");
    ok(symlink("/etc/passwd", path) == 0,
       "plant a symlink to /etc/passwd in the store");
    r = vs_object_open(st, "evil", VS_OPEN_RDONLY, "evil", &bs);
    is_int(r, -ELOOP, "a symlink out of the store is not followed");
    ok(symlink("vol1", store_file(path, sizeof(path), "s1", "alias")) == 0,
       "plant a symlink to vol1 in the store");
    r = vs_object_open(st, "alias", 0, "alias", &bs);
    is_int(r, -ELOOP, "a symlink inside the store is not followed either");
    is_int(vs_object_create(st, "evil", 4096), -EEXIST,
           "create over a symlink fails");
    ok(access("/etc/passwd", R_OK) == 0, "the target is untouched");
    unlink(store_file(path, sizeof(path), "s1", "evil"));
    unlink(store_file(path, sizeof(path), "s1", "alias"));
}

static void
test_clone(struct vs_store *st)
{
    struct vs_bdev *src = NULL, *dst = NULL;
    char path[512];
    char buf[16] = {0};
    int r;

    vs_object_open(st, "vol1", 0, "vol1", &src);
    vs_bdev_pwrite(src, "cloned bytes", 12, 4096);
    r = vs_object_clone(st, "vol1", "vol2");
    ok(r == 0 || r == -ENOTSUP, "clone: done or ENOTSUP (%d)", r);
    if (r == 0) {
        ok(vs_object_open(st, "vol2", 0, "vol2", &dst) == 0, "open clone");
        vs_bdev_pread(dst, buf, 12, 4096);
        ok(memcmp(buf, "cloned bytes", 12) == 0, "clone has the data");
        vs_bdev_close(dst);
        is_int(vs_object_remove(st, "vol2"), 0, "remove clone");
    } else {
        ok(access(store_file(path, sizeof(path), "s1", "vol2"), F_OK) != 0,
           "a refused clone leaves no file behind");
    }
    is_int(vs_object_clone(st, "vol1", "metadata"), -EEXIST,
           "clone onto an existing object is EEXIST");
    vs_bdev_close(src);
}

/* Block status finds data runs and holes; a run it remembers (SEEK_HOLE
 * is costly on tmpfs) is forgotten when a hole is punched into it. */
static void
test_block_status(struct vs_store *st)
{
    const uint64_t MiB = 1 << 20;
    struct vs_bdev *bs;
    uint64_t n;
    void *buf = calloc(1, MiB);
    int st0;

    if (vs_object_create(st, "runs", 4 * MiB) < 0 ||
        vs_object_open(st, "runs", 0, "runs", &bs) < 0 || !buf) {
        ok(false, "block status: object");
        free(buf);
        return;
    }
    memset(buf, 0xab, MiB);
    vs_bdev_pwrite(bs, buf, MiB, 0);
    vs_bdev_pwrite(bs, buf, MiB, 3 * MiB);
    if (!bs->caps.alloc_status || !bs->caps.unmap) {
        ok(true, "block status: # SKIP no SEEK_DATA or no punching here");
    } else {
        is_int(vs_bdev_block_status(bs, 0, 4 * MiB, &n),
               VS_BS_ALLOCATED | VS_BS_DATA, "block status: data at 0");
        is_int((long long)n, (long long)MiB, "block status: a 1 MiB run");
        is_int(vs_bdev_block_status(bs, 4096, 4 * MiB, &n) & VS_BS_DATA,
               VS_BS_DATA, "block status: inside the run (remembered)");
        is_int((long long)n, (long long)(MiB - 4096),
               "block status: to the run's end");
        is_int(vs_bdev_block_status(bs, MiB, 4 * MiB, &n),
               VS_BS_ALLOCATED | VS_BS_ZERO, "block status: the hole after");
        is_int(vs_bdev_discard(bs, 256 * 1024, 256 * 1024), 0, "punch");
        st0 = vs_bdev_block_status(bs, 300 * 1024, 4 * MiB, &n);
        is_int(st0, VS_BS_ALLOCATED | VS_BS_ZERO,
               "block status: a hole punched into the remembered run");
    }
    vs_bdev_close(bs);
    vs_object_remove(st, "runs");
    free(buf);
}

static void
test_store_lifecycle(void)
{
    char loc[256], path[512];
    struct vs_store *st = NULL, *again = NULL;
    struct vs_space sp = {0};
    struct stat sb;

    location(loc, sizeof(loc), base, "s1");
    is_int(vs_store_open(loc, true, &st), 0, "store create");
    ok(stat(store_file(path, sizeof(path), "s1", ""), &sb) == 0 &&
           (sb.st_mode & 0777) == 0700,
       "store directory has mode 0700");
    is_int(vs_store_open(loc, true, &again), -EEXIST,
           "store create over an existing one is EEXIST");
    is_int(vs_store_space(st, &sp), 0, "store space");
    ok(sp.capacity > 0 && sp.free <= sp.capacity, "space is sane");
    test_objects(st);
    test_bad_names(st);
    test_symlinks(st);
    test_clone(st);
    test_block_status(st);
    is_int(vs_store_destroy(st), -ENOTEMPTY, "destroy with vol1: ENOTEMPTY");
    is_int(vs_object_remove(st, "vol1"), 0, "the store is still usable");
    vs_store_close(st);
    is_int(vs_store_open(loc, false, &st), 0, "store reopen");
    is_int(vs_store_destroy(st), 0, "destroy with only metadata");
    ok(access(store_file(path, sizeof(path), "s1", ""), F_OK) != 0,
       "store directory is gone");
}

/* Print what the dir driver finds on ROOT's file system. */
static void
show_caps(const char *root, const char *what)
{
    char loc[256];
    struct vs_store *st = NULL;
    struct vs_bdev *bs = NULL;
    struct vs_caps c;

    location(loc, sizeof(loc), root, "caps");
    if (vs_store_open(loc, true, &st) < 0) {
        tap_diag("%s: cannot make a store in %s", what, root);
        return;
    }
    vs_object_create(st, "probe", 1 << 20);
    if (vs_object_open(st, "probe", VS_OPEN_DIRECT, "probe", &bs) == 0) {
        c = bs->caps;
        ok(memcmp(&c, &st->caps, sizeof(c)) == 0,
           "%s: object caps are the store's", what);
        tap_diag("%s caps: clone=%d copy=%d unmap=%d write_zeroes=%d "
                 "alloc_status=%d direct=%d",
                 what, c.clone, c.copy, c.unmap, c.write_zeroes, c.alloc_status,
                 c.direct);
        vs_bdev_close(bs);
    }
    vs_object_remove(st, "probe");
    is_int(vs_store_destroy(st), 0, "caps store destroyed");
}

static int
collect_name(const char *name, void *arg)
{
    char *seen = arg;

    strcat(seen, name);
    strcat(seen, ",");
    return 0;
}

static int
stop_early(const char *name, void *arg)
{
    (void)name, (void)arg;
    return 7;
}

/* Stores under a root: its subdirectories, not its files or dotted
 * entries; a missing root is ENOENT, a foreign scheme not listable. */
static void
test_store_list(void)
{
    char root[96], loc[160], path[160], seen[256] = "";
    struct vs_store *st;
    struct stat sb;

    snprintf(root, sizeof(root), "dir:%s/roots", base);
    is_int(vs_store_list(root, collect_name, seen), -ENOENT,
           "listing a missing root is ENOENT");
    snprintf(path, sizeof(path), "%s/roots", base);
    is_int(vs_store_root_prepare(root), 0, "preparing the root makes it");
    ok(stat(path, &sb) == 0 && S_ISDIR(sb.st_mode) &&
           (sb.st_mode & 07777) == 0700,
       "... a directory of mode 0700");
    is_int(vs_store_root_prepare(root), 0, "preparing it again is a no-op");
    snprintf(loc, sizeof(loc), "dir:%s/no/roots", base);
    is_int(vs_store_root_prepare(loc), -ENOENT,
           "a root whose parent is missing is not made");
    is_int(vs_store_root_prepare("bogus://x"), -EPROTONOSUPPORT,
           "no driver prepares an unknown scheme");
    snprintf(loc, sizeof(loc), "%s/a", root);
    if (vs_store_open(loc, true, &st) == 0)
        vs_store_close(st);
    snprintf(path, sizeof(path), "%s/roots/.hidden", base);
    mkdir(path, 0700);
    snprintf(path, sizeof(path), "%s/roots/file", base);
    close(open(path, O_CREAT | O_WRONLY, 0600));
    is_int(vs_store_list(root, collect_name, seen), 0, "list the root");
    ok(strcmp(seen, "a,") == 0, "only the store is listed ('%s')", seen);
    is_int(vs_store_list(root, stop_early, NULL), 7,
           "the callback's answer stops the listing");
    is_int(vs_store_list("bogus://x", collect_name, seen), -EPROTONOSUPPORT,
           "no driver lists an unknown scheme");
}

int
main(void)
{
    char shm[64] = "/dev/shm/vstorfs-test-dir.XXXXXX";

    if (mkdtemp(base) == NULL) {
        perror(base);
        return 1;
    }
    test_registry();
    test_store_open_errors();
    test_store_lifecycle();
    test_store_list();
    show_caps(base, base);
    if (mkdtemp(shm) != NULL) {
        show_caps(shm, "/dev/shm (tmpfs)");
        tu_rm_tree(shm);
    }
    tu_rm_tree(base);
    return tap_done();
}
