/*
 * Unit tests of extended L2 entries (subclusters) in the qcow2 driver,
 * with QEMU's tools as the judge, both ways:
 *
 *   - images qemu-img made with extended_l2=on (16, 64 and 128 KiB
 *     clusters, over a raw backing file and without one), written by
 *     qemu-io with partial, subcluster-aligned, zeroing, discarding and
 *     compressed writes, must read through our driver exactly as
 *     `qemu-img convert -O raw` reads them, and our block status must
 *     agree with the subclusters qemu-io wrote;
 *   - overlays our driver creates over a backing file have extended L2
 *     entries (unless VSTORFS_QCOW2_EXTL2=0 says no): `qemu-img info`
 *     says so, a 4 KiB write into a fresh overlay writes about 4 KiB to
 *     the file, not a whole cluster, partial subclusters keep the
 *     backing's bytes, zeroing and discard work per subcluster, and after
 *     our writes `qemu-img check` is clean and `qemu-img compare` equals
 *     the reference; qemu-io then writes on top and we read that back;
 *   - a chain of three layers with subclusters (the owner walk through
 *     partly owned clusters), and threads writing neighbouring 4 KiB
 *     pieces of the same clusters.
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

#define KiB 1024ull
#define MiB (1024ull * 1024)
#define CS (64 * KiB)
#define SCS (CS / 32)
#define SZ (4 * MiB)

static char base[64] = "/var/tmp/vstorfs-test-extl2.XXXXXX";
static struct vs_store *st;

/* ---- helpers ---- */

static void
fill(uint8_t *buf, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(seed * 37 + i * 11 + (i >> 10) + 1);
}

/* Whether `qemu-img info` of NAME says "extended l2: WANT". */
static bool
qemu_extl2(const char *name, bool want)
{
    char cmd[512], out[4096];

    snprintf(cmd, sizeof(cmd), "qemu-img info -U '%s'", tu_obj_path(name));
    if (tu_run(cmd, out, sizeof(out)) != 0)
        return false;
    return strstr(out, want ? "extended l2: true" : "extended l2: false") !=
           NULL;
}

/* What qemu-img reads from image NAME (its whole chain), into a buffer
 * of SIZE bytes (NULL on failure). */
static uint8_t *
qemu_read(const char *name, uint64_t size)
{
    char cmd[768], out[1024], path[256];
    uint8_t *buf = calloc(1, size);
    int fd;
    ssize_t n;

    snprintf(path, sizeof(path), "%s/%s.qemu.raw", base, name);
    snprintf(cmd, sizeof(cmd), "qemu-img convert -f qcow2 -O raw '%s' '%s'",
             tu_obj_path(name), path);
    if (buf == NULL || tu_run(cmd, out, sizeof(out)) != 0) {
        tap_diag("%s: %s", cmd, out);
        free(buf);
        return NULL;
    }
    fd = open(path, O_RDONLY | O_CLOEXEC);
    n = fd >= 0 ? read(fd, buf, size) : -1;
    if (fd >= 0)
        close(fd);
    unlink(path);
    if (n != (ssize_t)size) {
        free(buf);
        return NULL;
    }
    return buf;
}

static bool
put(struct vs_bdev *bs, uint8_t *ref, uint64_t off, size_t len, unsigned seed)
{
    uint8_t *buf = malloc(len);
    ssize_t n;

    fill(buf, len, seed);
    memcpy(ref + off, buf, len);
    n = vs_bdev_pwrite(bs, buf, len, off);
    free(buf);
    return n == (ssize_t)len;
}

static int
status(struct vs_bdev *bs, uint64_t off, uint64_t len, uint64_t *pnum)
{
    return vs_bdev_block_status(bs, off, len, pnum);
}

/* Bytes the file of NAME occupies on disk (it is sparse). */
static int64_t
file_used(const char *name)
{
    struct stat sb;

    return stat(tu_obj_path(name), &sb) == 0 ? (int64_t)sb.st_blocks * 512 : -1;
}

/* ---- images qemu made ---- */

#define QEMU_IO_OPS                                                            \
    "-c 'write -P 0x11 4k 4k' -c 'write -P 0x22 70000 300' "                   \
    "-c 'write -z 128k 8k' -c 'write -P 0x44 192k 64k' "                       \
    "-c 'discard 192k 4k' -c 'write -c -P 0x33 512k 128k' "                    \
    "-c 'write -z 1M 64k' -c 'write -P 0x55 2M 1' "                            \
    "-c 'write -P 0x66 3144704 3k'"

/* qemu-img creates an extended-L2 image with OPTS (over the raw base
 * "xbase" when BACKED), qemu-io writes to it, and our driver must read
 * what qemu-img reads. */
static void
test_qemu_made(const char *what, const char *opts, bool backed)
{
    char cmd[1536], out[2048], name[64];
    uint8_t *want;
    struct vs_bdev *bs;
    uint64_t pnum = 0;

    snprintf(name, sizeof(name), "qx-%s", what);
    snprintf(cmd, sizeof(cmd),
             "qemu-img create -q -f qcow2 -o extended_l2=on%s %s '%s' 4M && "
             "qemu-io -f qcow2 %s '%s'",
             opts, backed ? "-b xbase -F raw" : "", tu_obj_path(name),
             QEMU_IO_OPS, tu_obj_path(name));
    if (!ok(tu_run(cmd, out, sizeof(out)) == 0, "%s: qemu-img and qemu-io",
            what)) {
        tap_diag("%s", out);
        return;
    }
    ok(qemu_extl2(name, true), "%s: qemu-img info says extended l2", what);
    want = qemu_read(name, SZ);
    bs = tu_open_fmt("qcow2", name, VS_OPEN_RDONLY,
                     backed ? tu_open_fmt("raw", "xbase", VS_OPEN_RDONLY, NULL)
                            : NULL);
    ok(bs != NULL && want != NULL && tu_same(bs, want, SZ),
       "%s: reads what qemu-img reads", what);
    if (bs != NULL) {
        is_int(status(bs, 4 * KiB, 4 * KiB, &pnum),
               VS_BS_ALLOCATED | VS_BS_DATA, "written subclusters: data");
        is_int(status(bs, 128 * KiB, 8 * KiB, &pnum),
               VS_BS_ALLOCATED | VS_BS_ZERO, "zeroed subclusters: zero");
        is_int((long long)pnum, 8 * KiB, "zero for exactly 8 KiB");
        is_int(status(bs, 512 * KiB, CS, &pnum), VS_BS_ALLOCATED | VS_BS_DATA,
               "compressed cluster: data");
        is_int(status(bs, 2 * MiB + 64 * KiB, 4 * KiB, &pnum), 0,
               "untouched subclusters: not this layer's");
    }
    vs_bdev_close(bs);
    free(want);
}

/* qemu-made extended-L2 image written by our driver, then checked. */
static void
test_qemu_made_write(void)
{
    const char *name = "qx-w";
    char cmd[1024], out[1024];
    struct vs_bdev *bs;
    uint8_t *ref;

    snprintf(cmd, sizeof(cmd),
             "qemu-img create -q -f qcow2 -o extended_l2=on -b xbase -F raw "
             "'%s' 4M && qemu-io -f qcow2 %s '%s'",
             tu_obj_path(name), QEMU_IO_OPS, tu_obj_path(name));
    if (!ok(tu_run(cmd, out, sizeof(out)) == 0, "qemu-made image to write")) {
        tap_diag("%s", out);
        return;
    }
    ref = qemu_read(name, SZ);
    bs = tu_open_fmt("qcow2", name, 0,
                     tu_open_fmt("raw", "xbase", VS_OPEN_RDONLY, NULL));
    ok(bs != NULL && ref != NULL, "opens writable");
    if (bs == NULL || ref == NULL) {
        vs_bdev_close(bs);
        free(ref);
        return;
    }
    ok(put(bs, ref, 6 * KiB, 100, 1) && put(bs, ref, 130 * KiB, 4 * KiB, 2) &&
           put(bs, ref, 512 * KiB + 5, 10, 3) &&
           put(bs, ref, 1 * MiB + 1000, 3000, 4),
       "our writes into qemu's subclusters, zeros and compressed cluster");
    memset(ref + 2 * MiB + 2 * SCS, 0, 4 * SCS);
    is_int(vs_bdev_discard(bs, 2 * MiB + 2 * SCS, 4 * SCS), 0,
           "discard whole subclusters");
    ok(tu_same(bs, ref, SZ), "reads back");
    vs_bdev_close(bs);
    ok(tu_qemu_check(name), "qemu-img check: clean after our writes");
    ok(tu_qemu_compare(name, ref, SZ), "qemu-img compare: equal");
    free(ref);
}

/* ---- overlays our driver makes ---- */

static void
test_overlay(void)
{
    uint8_t *ref = malloc(SZ);
    struct vs_bdev *top;
    char cmd[1024], out[1024];
    uint64_t pnum = 0;
    int64_t used0;

    is_int(tu_create_qcow2("ov", SZ, "xbase", "raw"), 0, "create an overlay");
    ok(qemu_extl2("ov", true), "qemu-img info: extended l2: true");
    ok(tu_qemu_check("ov"), "qemu-img check: fresh overlay clean");
    {
        int fd = open(tu_obj_path("xbase"), O_RDONLY | O_CLOEXEC);

        ok(fd >= 0 && read(fd, ref, SZ) == (ssize_t)SZ, "reference = base");
        if (fd >= 0)
            close(fd);
    }
    top = tu_open_fmt("qcow2", "ov", 0,
                      tu_open_fmt("raw", "xbase", VS_OPEN_RDONLY, NULL));
    ok(top != NULL, "open the overlay over its base");
    if (top == NULL) {
        free(ref);
        return;
    }
    used0 = file_used("ov");
    ok(put(top, ref, 5 * CS + 8 * KiB, 4 * KiB, 1), "aligned 4 KiB write");
    vs_bdev_flush(top);
    tap_diag("file grew by %lld bytes on disk for it",
             (long long)(file_used("ov") - used0));
    ok(file_used("ov") - used0 <= (int64_t)(4 * KiB + 2 * CS),
       "a 4 KiB write does not copy the cluster (data + L2 + refcounts)");
    is_int(status(top, 5 * CS, CS, &pnum), 0, "the head: still the base's");
    is_int((long long)pnum, 8 * KiB, "for 8 KiB");
    is_int(status(top, 5 * CS + 8 * KiB, CS, &pnum),
           VS_BS_ALLOCATED | VS_BS_DATA, "written subclusters: data");
    is_int((long long)pnum, 4 * KiB, "for 4 KiB");
    is_int(vs_bdev_chain_status(top, 5 * CS, 4 * KiB, &pnum),
           VS_BS_ALLOCATED | VS_BS_DATA, "chain status: the base's data");
    ok(put(top, ref, 5 * CS + 100, 50, 2), "unaligned write, same cluster");
    ok(put(top, ref, 7 * CS - 1000, 3000, 3), "write across clusters");
    ok(put(top, ref, 9 * CS, 3 * CS, 4), "whole clusters");
    ok(put(top, ref, 5 * CS + 9 * KiB, 100, 5), "in place, allocated");
    ok(tu_same(top, ref, SZ), "partial subclusters keep the base's bytes");
    memset(ref + 20 * CS + 4 * SCS, 0, 3 * SCS);
    is_int(vs_bdev_write_zeroes(top, 20 * CS + 4 * SCS, 3 * SCS, 0), 0,
           "write_zeroes of whole subclusters");
    is_int(status(top, 20 * CS + 4 * SCS, CS, &pnum),
           VS_BS_ALLOCATED | VS_BS_ZERO, "they are zero subclusters");
    is_int((long long)pnum, 3 * SCS, "three of them");
    memset(ref + 5 * CS + 8 * KiB, 0, 2 * SCS);
    is_int(vs_bdev_discard(top, 5 * CS + 8 * KiB, 2 * SCS), 0,
           "discard allocated subclusters");
    memset(ref + 9 * CS + 100, 0, 3 * SCS);
    is_int(vs_bdev_write_zeroes(top, 9 * CS + 100, 3 * SCS, VS_IO_MAY_UNMAP), 0,
           "unaligned write_zeroes with unmap");
    memset(ref + 11 * CS, 0, CS);
    is_int(vs_bdev_discard(top, 11 * CS, CS), 0, "discard a whole cluster");
    memset(ref + 30 * CS + 1, 0, 10);
    is_int(vs_bdev_write_zeroes(top, 30 * CS + 1, 10, 0), 0,
           "tiny write_zeroes over the base");
    ok(tu_same(top, ref, SZ), "reads match");
    ok(put(top, ref, 20 * CS + 5 * SCS + 7, 100, 6),
       "write into a zero subcluster");
    ok(tu_same(top, ref, SZ), "the rest stays zero");
    is_int(vs_bdev_flush(top), 0, "flush");
    vs_bdev_close(top);
    ok(tu_qemu_check("ov"), "qemu-img check: clean");
    ok(tu_qemu_compare("ov", ref, SZ), "qemu-img compare: equal to reference");
    snprintf(cmd, sizeof(cmd),
             "qemu-io -f qcow2 -c 'write -P 0x77 %llu 3000' '%s'",
             (unsigned long long)(40 * CS + 500), tu_obj_path("ov"));
    ok(tu_run(cmd, out, sizeof(out)) == 0, "qemu-io writes on top of ours");
    memset(ref + 40 * CS + 500, 0x77, 3000);
    top = tu_open_fmt("qcow2", "ov", VS_OPEN_RDONLY,
                      tu_open_fmt("raw", "xbase", VS_OPEN_RDONLY, NULL));
    ok(top != NULL && tu_same(top, ref, SZ), "reopened: qemu's write and ours");
    vs_bdev_close(top);
    free(ref);
}

/* The switch: VSTORFS_QCOW2_EXTL2=0 makes classic overlays. */
static void
test_switch(void)
{
    setenv("VSTORFS_QCOW2_EXTL2", "0", 1);
    is_int(tu_create_qcow2("ov0", SZ, "xbase", "raw"), 0, "create with =0");
    ok(qemu_extl2("ov0", false), "qemu-img info: extended l2: false");
    setenv("VSTORFS_QCOW2_EXTL2", "1", 1);
    is_int(tu_create_qcow2("ov1", SZ, NULL, NULL), 0, "create without backing");
    ok(qemu_extl2("ov1", false), "no backing: no subclusters");
    setenv("VSTORFS_QCOW2_EXTL2", "all", 1);
    is_int(tu_create_qcow2("ova", SZ, NULL, NULL), 0, "create with =all");
    ok(qemu_extl2("ova", true), "=all: subclusters without a backing too");
    unsetenv("VSTORFS_QCOW2_EXTL2");
}

/* A layer with subclusters and no backing: unallocated reads zeros. */
static void
test_no_backing(void)
{
    uint8_t *ref = calloc(1, SZ);
    struct vs_bdev *bs = tu_open_fmt("qcow2", "ova", 0, NULL);
    uint64_t pnum = 0;

    ok(bs != NULL, "open the layer without backing");
    if (bs == NULL) {
        free(ref);
        return;
    }
    ok(put(bs, ref, 3 * CS + 100, 5000, 1) && put(bs, ref, 8 * CS, 2 * CS, 2) &&
           put(bs, ref, 12 * CS - 10, 20, 3),
       "partial and whole writes");
    memset(ref + 8 * CS + 2 * SCS, 0, 5 * SCS);
    is_int(vs_bdev_discard(bs, 8 * CS + 2 * SCS, 5 * SCS), 0,
           "discard subclusters");
    is_int(status(bs, 8 * CS + 2 * SCS, CS, &pnum), 0,
           "discarded subclusters: unallocated (reads zeros)");
    is_int((long long)pnum, 5 * SCS, "five of them");
    memset(ref + 9 * CS, 0, CS);
    is_int(vs_bdev_write_zeroes(bs, 9 * CS, CS, 0), 0, "zero a whole cluster");
    memset(ref + 3 * CS, 0, 2 * SCS);
    is_int(vs_bdev_write_zeroes(bs, 3 * CS, 2 * SCS, VS_IO_MAY_UNMAP), 0,
           "zero subclusters with unmap");
    ok(tu_same(bs, ref, SZ), "reads match");
    vs_bdev_close(bs);
    ok(tu_qemu_check("ova"), "qemu-img check: clean");
    ok(tu_qemu_compare("ova", ref, SZ), "qemu-img compare: equal");
    free(ref);
}

/* Growing a layer with subclusters: its L2 tables map half as much, so
 * the L1 table must grow sooner; then zeroing the grown tail's last
 * partial subcluster past the size. */
static void
test_grow(void)
{
    uint64_t big = 3ull * 1024 * MiB + 1000;
    uint8_t buf[8192], back[8192];
    struct vs_bdev *bs;
    uint64_t pnum = 0;

    setenv("VSTORFS_QCOW2_EXTL2", "all", 1);
    tu_create_qcow2("grow", 4 * MiB, NULL, NULL);
    unsetenv("VSTORFS_QCOW2_EXTL2");
    bs = tu_open_fmt("qcow2", "grow", 0, NULL);
    is_int(bs ? vs_bdev_truncate(bs, big) : -1, 0, "grow 4 MiB -> 3 GiB");
    fill(buf, sizeof(buf), 8);
    is_int(bs ? vs_bdev_pwrite(bs, buf, 3000, big - 3000) : -1, 3000,
           "write the last bytes");
    is_int(bs ? vs_bdev_write_zeroes(bs, big - SCS - 500, SCS + 500, 0) : -1, 0,
           "zero a range ending at the size");
    is_int(bs ? vs_bdev_block_status(bs, big - 100, 100, &pnum) : -1,
           VS_BS_ALLOCATED | VS_BS_ZERO,
           "the last bytes: zero (host cluster kept)");
    is_int(bs ? vs_bdev_pwrite(bs, buf, 3000, big - 3000) : -1, 3000,
           "write the last bytes again");
    is_int(bs ? vs_bdev_discard(bs, big - 500, 500) : -1, 0,
           "discard the last 500 bytes (a subcluster cut by the size)");
    vs_bdev_close(bs);
    ok(tu_qemu_check("grow"), "qemu-img check: clean after growing");
    bs = tu_open_fmt("qcow2", "grow", VS_OPEN_RDONLY, NULL);
    memset(buf + 2500, 0, 500);
    ok(bs != NULL && vs_bdev_pread(bs, back, 3000, big - 3000) == 3000 &&
           memcmp(buf, back, 3000) == 0,
       "reopened: the end reads as written and zeroed");
    vs_bdev_close(bs);
}

/* base (raw) <- mid <- top, both with subclusters, written in the same
 * clusters so that reads walk through partly owned clusters. */
static void
test_chain(void)
{
    uint8_t *ref = malloc(SZ), *want;
    struct vs_bdev *mid, *top;

    int fd = open(tu_obj_path("xbase"), O_RDONLY | O_CLOEXEC);
    bool good = fd >= 0 && read(fd, ref, SZ) == (ssize_t)SZ;

    if (fd >= 0)
        close(fd);
    tu_create_qcow2("cm", SZ, "xbase", "raw");
    mid = tu_open_fmt("qcow2", "cm", 0,
                      tu_open_fmt("raw", "xbase", VS_OPEN_RDONLY, NULL));
    for (uint64_t c = 0; good && mid != NULL && c < 16; c++)
        good = put(mid, ref, c * CS + (c % 4) * 8 * KiB, 4 * KiB,
                   (unsigned)c + 10);
    vs_bdev_close(mid);
    tu_create_qcow2("ct", SZ, "cm", "qcow2");
    mid = tu_open_fmt("qcow2", "cm", VS_OPEN_RDONLY,
                      tu_open_fmt("raw", "xbase", VS_OPEN_RDONLY, NULL));
    top = mid != NULL ? tu_open_fmt("qcow2", "ct", 0, mid) : NULL;
    ok(good && top != NULL, "a chain of two subcluster layers");
    if (top == NULL) {
        free(ref);
        return;
    }
    for (uint64_t c = 0; good && c < 16; c += 2)
        good = put(top, ref, c * CS + 20 * KiB + 1, 6 * KiB, (unsigned)c + 40);
    ok(good, "writes into the top, same clusters");
    ok(tu_same(top, ref, SZ),
       "reads walk through partly owned clusters (cold)");
    ok(tu_same(top, ref, SZ), "and again (owner cache warm)");
    vs_bdev_close(top);
    ok(tu_qemu_check("cm") && tu_qemu_check("ct"),
       "qemu-img check: both clean");
    want = qemu_read("ct", SZ);
    ok(want != NULL && memcmp(want, ref, SZ) == 0,
       "qemu-img reads the chain as we do");
    free(want);
    free(ref);
}

/* A FUA write of whole subclusters into a cluster the layer owns (the
 * shared-lock path that only sets bitmap bits) must make those bits
 * durable before it returns. */
static void
test_fua(void)
{
    uint8_t buf[4096], back[4096];
    struct iovec iov = {buf, sizeof(buf)};
    struct vs_bdev *top, *other;

    tu_create_qcow2("fua", SZ, "xbase", "raw");
    top = tu_open_fmt("qcow2", "fua", 0,
                      tu_open_fmt("raw", "xbase", VS_OPEN_RDONLY, NULL));
    fill(buf, sizeof(buf), 50);
    ok(top != NULL && vs_bdev_pwrite(top, buf, 4096, 3 * CS) == 4096 &&
           vs_bdev_flush(top) == 0,
       "allocate a cluster, flush");
    fill(buf, sizeof(buf), 51);
    is_int(top ? vs_bdev_pwritev(top, &iov, 1, 3 * CS + 8 * KiB, VS_IO_FUA)
               : -1,
           4096, "FUA write of new subclusters in it");
    other = tu_open_fmt("qcow2", "fua", VS_OPEN_RDONLY,
                        tu_open_fmt("raw", "xbase", VS_OPEN_RDONLY, NULL));
    ok(other != NULL &&
           vs_bdev_pread(other, back, 4096, 3 * CS + 8 * KiB) == 4096 &&
           memcmp(buf, back, 4096) == 0,
       "a second opener reads it without a flush");
    vs_bdev_close(other);
    vs_bdev_close(top);
}

/* ---- threads ---- */

#define THREADS 4

/* Each thread writes its own 4 KiB (two subclusters) of every cluster,
 * so all of them fill the same clusters at once. */
static void *
worker_run(void *arg)
{
    struct tu_worker *w = arg;
    uint8_t buf[4096];

    for (uint64_t c = 0; c < SZ / CS; c++) {
        uint64_t off = c * CS + (uint64_t)w->id * 4096 + (c & 1) * 1000;

        fill(buf, sizeof(buf), (unsigned)(c * THREADS + (uint64_t)w->id));
        if (!tu_round_trip(w->bs, buf, sizeof(buf), off))
            w->failures++;
    }
    return NULL;
}

static void
test_threads(void)
{
    uint8_t *ref = malloc(SZ);
    struct vs_bdev *top;
    int fd = open(tu_obj_path("xbase"), O_RDONLY | O_CLOEXEC);

    if (fd < 0 || read(fd, ref, SZ) != (ssize_t)SZ)
        tap_diag("cannot read the base");
    if (fd >= 0)
        close(fd);
    tu_create_qcow2("tt", SZ, "xbase", "raw");
    top = tu_open_fmt("qcow2", "tt", 0,
                      tu_open_fmt("raw", "xbase", VS_OPEN_RDONLY, NULL));
    if (!ok(top != NULL, "open for threads")) {
        free(ref);
        return;
    }
    is_int(tu_run_workers(top, THREADS, worker_run), 0,
           "threads filling the same clusters");
    for (uint64_t c = 0; c < SZ / CS; c++) {
        for (int i = 0; i < THREADS; i++)
            fill(ref + c * CS + (uint64_t)i * 4096 + (c & 1) * 1000, 4096,
                 (unsigned)(c * THREADS + (uint64_t)i));
    }
    ok(tu_same(top, ref, SZ), "every thread's write survived");
    vs_bdev_close(top);
    ok(tu_qemu_check("tt"), "qemu-img check: clean");
    ok(tu_qemu_compare("tt", ref, SZ), "qemu-img compare: equal");
    free(ref);
}

int
main(void)
{
    uint8_t *data;

    if (tu_scratch_open(base, &st) < 0)
        return 1;
    unsetenv("VSTORFS_QCOW2_EXTL2");
    data = malloc(SZ);
    fill(data, SZ, 3);
    is_int(tu_create_raw("xbase", data, SZ), 0, "a raw base of 4 MiB");
    free(data);
    test_qemu_made("64k", "", true);
    test_qemu_made("16k", ",cluster_size=16k", true);
    test_qemu_made("128k", ",cluster_size=128k", true);
    test_qemu_made("nobacking", "", false);
    test_qemu_made_write();
    test_overlay();
    test_switch();
    test_no_backing();
    test_grow();
    test_chain();
    test_fua();
    test_threads();
    tu_scratch_close(st);
    return tap_done();
}
