/*
 * Unit tests of the qcow2 format driver over the dir protocol driver, with
 * QEMU's own tools as the judge of what lands on storage.
 *
 * Every image lives in a store in a fresh directory under /var/tmp.  Each
 * test keeps a reference copy of what the guest should see (in memory,
 * and written out as a raw file where qemu-img compares against it) and
 * checks reads against it: patterns at cluster-aligned and unaligned
 * offsets, reopening, zero clusters, discard, growing, a chain over a raw
 * base with copy-on-write of partial clusters, a three-layer chain (the
 * owner-cache shortcut and its raw tail), threads writing into the same
 * clusters, and FUA.  Then the real-client checks: `qemu-img check` on
 * every image we wrote must find no errors and no leaks, `qemu-img
 * compare` of the chain as qemu-img opens it must equal the reference,
 * and `qemu-img info --backing-chain` must follow our backing names.  The
 * inverse too: images qemu-img made (plain, compressed with zlib, 512-byte
 * and 4 KiB clusters, 1-bit refcounts, version 2) read correctly through
 * the driver, and stay clean after the driver writes to them.
 */
#include <errno.h>
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
#define MIN(a, b) ((a) < (b) ? (a) : (b))

static char base[64] = "/var/tmp/vstorfs-test-qcow2.XXXXXX";
static struct vs_store *st;

/* ---- helpers ---- */

static void
fill(uint8_t *buf, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(seed * 31 + i * 7 + (i >> 11));
}

/* Write LEN bytes of pattern SEED at OFF to BS and to REF. */
static bool
put(struct vs_bdev *bs, uint8_t *ref, uint64_t off, size_t len, unsigned seed)
{
    uint8_t *buf = malloc(len);
    ssize_t n;

    fill(buf, len, seed);
    memcpy(ref + off, buf, len);
    n = vs_bdev_pwrite(bs, buf, len, off);
    free(buf);
    if (n != (ssize_t)len)
        tap_diag("write %zu at %llu: %zd", len, (unsigned long long)off, n);
    return n == (ssize_t)len;
}

static int
status_at(struct vs_bdev *bs, uint64_t off, uint64_t len, uint64_t *pnum)
{
    return vs_bdev_block_status(bs, off, len, pnum);
}

/* ---- single image ---- */

#define SZ (16 * MiB)

static void
test_create_empty(void)
{
    struct vs_bdev *bs;
    uint8_t buf[4096];
    uint64_t pnum = 0;

    is_int(tu_create_qcow2("empty", SZ, NULL, NULL), 0, "create an image");
    ok(tu_qemu_check("empty"), "qemu-img check: fresh image is clean");
    bs = tu_open_fmt("qcow2", "empty", 0, NULL);
    ok(bs != NULL, "open it");
    if (bs == NULL)
        return;
    is_int(vs_bdev_size(bs), SZ, "virtual size");
    ok(vs_bdev_pread(bs, buf, sizeof(buf), 5 * MiB) == sizeof(buf) &&
           tu_is_zero(buf, sizeof(buf)),
       "an empty image reads zeros");
    is_int(status_at(bs, 0, SZ, &pnum), 0, "all unallocated");
    is_int((long long)pnum, SZ, "over the whole size");
    is_int(vs_bdev_pread(bs, buf, sizeof(buf), SZ), 0, "EOF at the size");
    is_int(vs_bdev_pwrite(bs, buf, 10, SZ - 5), -ENOSPC,
           "a write past the size is refused");
    is_int(vs_bdev_truncate(bs, SZ / 2), -ENOTSUP, "shrinking is refused");
    vs_bdev_close(bs);
}

static void
test_patterns(void)
{
    uint8_t *ref = calloc(1, SZ);
    struct vs_bdev *bs;
    int64_t fsize;
    uint64_t pnum = 0;

    tu_create_qcow2("pat", SZ, NULL, NULL);
    bs = tu_open_fmt("qcow2", "pat", 0, NULL);
    ok(put(bs, ref, 0, CS, 1), "write one aligned cluster");
    ok(put(bs, ref, 3 * CS + 100, 5000, 2), "write inside a cluster");
    ok(put(bs, ref, 5 * CS - 3000, 7000, 3), "write across a boundary");
    ok(put(bs, ref, 2 * MiB + 512, MiB + 77, 4), "write a 1 MiB run");
    ok(put(bs, ref, SZ - 1000, 1000, 5), "write the last bytes");
    ok(tu_same(bs, ref, SZ), "reads back before a flush");
    is_int(status_at(bs, 0, SZ, &pnum), VS_BS_ALLOCATED | VS_BS_DATA,
           "written cluster is allocated data");
    is_int((long long)pnum, CS, "for one cluster");
    is_int(status_at(bs, CS, SZ - CS, &pnum), 0, "next is unallocated");
    is_int(vs_bdev_flush(bs), 0, "flush");
    fsize = vs_bdev_size(bs->file);
    ok(put(bs, ref, 3 * CS + 9000, 3000, 6), "overwrite in place");
    ok(put(bs, ref, 2 * MiB, 512 * KiB, 7), "overwrite a run in place");
    is_int(vs_bdev_flush(bs), 0, "flush again");
    is_int(vs_bdev_size(bs->file), fsize, "in-place writes allocate nothing");
    vs_bdev_close(bs);
    ok(tu_qemu_check("pat"), "qemu-img check: clean after writes");
    bs = tu_open_fmt("qcow2", "pat", VS_OPEN_RDONLY, NULL);
    ok(bs != NULL && tu_same(bs, ref, SZ), "reopened read-only: same bytes");
    vs_bdev_close(bs);
    free(ref);
}

static void
test_zero_discard(void)
{
    uint8_t *ref = calloc(1, SZ);
    struct vs_bdev *bs;
    uint64_t pnum = 0;
    const char *refpath;
    char cmd[768];

    tu_create_qcow2("zd", SZ, NULL, NULL);
    bs = tu_open_fmt("qcow2", "zd", 0, NULL);
    put(bs, ref, 0, 8 * CS, 1);
    memset(ref + CS, 0, 2 * CS);
    is_int(vs_bdev_write_zeroes(bs, CS, 2 * CS, 0), 0,
           "write_zeroes whole clusters");
    is_int(status_at(bs, CS, 2 * CS, &pnum), VS_BS_ALLOCATED | VS_BS_ZERO,
           "they are zero clusters");
    is_int((long long)pnum, 2 * CS, "both");
    memset(ref + 3 * CS + 100, 0, 1000);
    is_int(vs_bdev_write_zeroes(bs, 3 * CS + 100, 1000, 0), 0,
           "write_zeroes inside a cluster");
    ok(tu_same(bs, ref, SZ), "zeros read back");
    ok(put(bs, ref, CS + 4096, 4096, 9), "write into a zero cluster");
    ok(tu_same(bs, ref, SZ), "the rest of it still reads zeros");
    memset(ref + 4 * CS, 0, 2 * CS);
    is_int(vs_bdev_discard(bs, 4 * CS, 2 * CS), 0, "discard two clusters");
    is_int(status_at(bs, 4 * CS, 2 * CS, &pnum), 0,
           "unallocated again (no backing)");
    memset(ref + 6 * CS + 10, 0, CS);
    is_int(vs_bdev_discard(bs, 6 * CS + 10, CS), 0, "discard unaligned");
    memset(ref + 2 * CS, 0, CS);
    is_int(vs_bdev_write_zeroes(bs, 2 * CS, CS, VS_IO_MAY_UNMAP), 0,
           "write_zeroes with unmap");
    ok(tu_same(bs, ref, SZ), "reads match after discards");
    is_int(vs_bdev_flush(bs), 0, "flush");
    ok(put(bs, ref, 10 * CS, 2 * CS, 10), "reuse freed clusters");
    vs_bdev_close(bs);
    ok(tu_qemu_check("zd"), "qemu-img check: clean after zeroes and discards");
    refpath = tu_write_ref("zd.ref", ref, SZ);
    snprintf(cmd, sizeof(cmd), "qemu-img compare -f qcow2 -F raw '%s' '%s'",
             tu_obj_path("zd"), refpath);
    is_int(tu_run(cmd, NULL, 0), 0, "qemu-img compare: equal to the reference");
    bs = tu_open_fmt("qcow2", "zd", VS_OPEN_RDONLY, NULL);
    ok(bs != NULL && tu_same(bs, ref, SZ), "reopened: same bytes");
    vs_bdev_close(bs);
    free(ref);
}

static void
test_grow(void)
{
    uint64_t big = 6ull * 1024 * MiB; /* needs a larger L1 table */
    uint8_t buf[8192], want[8192];
    struct vs_bdev *bs;

    tu_create_qcow2("grow", 4 * MiB, NULL, NULL);
    bs = tu_open_fmt("qcow2", "grow", 0, NULL);
    fill(want, sizeof(want), 3);
    is_int(vs_bdev_pwrite(bs, want, 4096, 4 * MiB - 4096), 4096,
           "write the last 4 KiB");
    is_int(vs_bdev_truncate(bs, big), 0, "grow 4 MiB -> 6 GiB");
    is_int(vs_bdev_size(bs), (long long)big, "new size");
    ok(vs_bdev_pread(bs, buf, sizeof(buf), 4 * MiB) == sizeof(buf) &&
           tu_is_zero(buf, sizeof(buf)),
       "the grown part reads zeros");
    is_int(vs_bdev_pwrite(bs, want, sizeof(want), big - sizeof(want)),
           sizeof(want), "write at the new end");
    vs_bdev_close(bs);
    ok(tu_qemu_check("grow"), "qemu-img check: clean after growing");
    bs = tu_open_fmt("qcow2", "grow", VS_OPEN_RDONLY, NULL);
    ok(bs != NULL && vs_bdev_size(bs) == (int64_t)big, "reopened: size");
    ok(bs != NULL &&
           vs_bdev_pread(bs, buf, sizeof(buf), big - sizeof(buf)) ==
               sizeof(buf) &&
           memcmp(buf, want, sizeof(buf)) == 0,
       "reopened: data at the end");
    ok(bs != NULL && vs_bdev_pread(bs, buf, 4096, 4 * MiB - 4096) == 4096 &&
           memcmp(buf, want, 4096) == 0,
       "reopened: data before the old end");
    vs_bdev_close(bs);
}

static void
test_size_zero(void)
{
    uint8_t buf[4096], back[4096];
    struct vs_bdev *bs;

    is_int(tu_create_qcow2("zero", 0, NULL, NULL), 0, "create a 0-byte image");
    ok(tu_qemu_check("zero"), "qemu-img check: clean");
    bs = tu_open_fmt("qcow2", "zero", 0, NULL);
    is_int(bs ? vs_bdev_size(bs) : -1, 0, "size 0");
    is_int(bs ? vs_bdev_truncate(bs, MiB) : -1, 0, "grow it to 1 MiB");
    fill(buf, sizeof(buf), 90);
    is_int(bs ? vs_bdev_pwrite(bs, buf, sizeof(buf), MiB - 4096) : -1, 4096,
           "write at its end");
    ok(bs && vs_bdev_pread(bs, back, 4096, MiB - 4096) == 4096 &&
           memcmp(buf, back, 4096) == 0,
       "read it back");
    vs_bdev_close(bs);
    ok(tu_qemu_check("zero"), "qemu-img check: clean after growing from 0");
}

/* ---- chains ---- */

#define BSZ (4 * MiB)

static void
test_chain_raw(void)
{
    uint8_t *ref = malloc(BSZ);
    struct vs_bdev *b, *top;
    char out[4096];
    char cmd[512];
    uint64_t pnum = 0;

    fill(ref, BSZ, 40);
    tu_create_raw("base", ref, BSZ);
    is_int(tu_create_qcow2("top", BSZ, "base", "raw"), 0,
           "create an overlay naming its raw base");
    b = tu_open_fmt("raw", "base", VS_OPEN_RDONLY, NULL);
    top = tu_open_fmt("qcow2", "top", 0, b);
    ok(top != NULL, "open the chain");
    if (top == NULL)
        return;
    ok(tu_same(top, ref, BSZ), "reads through to the base");
    is_int(status_at(top, 0, BSZ, &pnum), 0, "top owns nothing");
    ok(put(top, ref, CS + 1000, 3000, 41), "partial write (copy-on-write)");
    ok(put(top, ref, 3 * CS - 100, 200, 42), "partial write across clusters");
    ok(put(top, ref, 8 * CS, CS, 43), "whole-cluster write");
    ok(tu_same(top, ref, BSZ), "the clusters keep the base's other bytes");
    memset(ref + 10 * CS, 0, 2 * CS);
    is_int(vs_bdev_discard(top, 10 * CS, 2 * CS), 0, "discard over a base");
    is_int(status_at(top, 10 * CS, 2 * CS, &pnum), VS_BS_ALLOCATED | VS_BS_ZERO,
           "zero clusters hide the base");
    memset(ref + 12 * CS + 5, 0, 10);
    is_int(vs_bdev_write_zeroes(top, 12 * CS + 5, 10, 0), 0,
           "partial write_zeroes over a base");
    ok(tu_same(top, ref, BSZ), "reads match");
    is_int(vs_bdev_chain_status(top, 20 * CS, CS, &pnum),
           VS_BS_ALLOCATED | VS_BS_DATA, "chain status: the base's data");
    vs_bdev_close(top);
    ok(tu_qemu_check("top"), "qemu-img check: overlay clean");
    ok(tu_qemu_compare("top", ref, BSZ),
       "qemu-img compare: the chain equals the reference");
    snprintf(cmd, sizeof(cmd), "qemu-img info --backing-chain '%s'",
             tu_obj_path("top"));
    ok(tu_run(cmd, out, sizeof(out)) == 0 &&
           strstr(out, "backing file: base") && strstr(out, "file format: raw"),
       "qemu-img info --backing-chain follows the name");
    b = tu_open_fmt("raw", "base", VS_OPEN_RDONLY, NULL);
    top = tu_open_fmt("qcow2", "top", VS_OPEN_RDONLY, b);
    ok(top != NULL && tu_same(top, ref, BSZ), "reopened chain: same bytes");
    vs_bdev_close(top);
    free(ref);
}

/* base (raw) <- mid (qcow2) <- top (qcow2), mid smaller than top. */
static void
test_chain_three(void)
{
    uint64_t size = 2 * BSZ;
    uint8_t *ref = calloc(1, size);
    struct vs_bdev *b, *mid, *top;
    char cmd[512], out[4096];

    fill(ref, BSZ, 50);
    tu_create_raw("b3", ref, BSZ);
    tu_create_qcow2("m3", BSZ + 3 * CS + 512, "b3", "raw");
    b = tu_open_fmt("raw", "b3", VS_OPEN_RDONLY, NULL);
    mid = tu_open_fmt("qcow2", "m3", 0, b);
    put(mid, ref, 2 * CS, 3 * CS, 51);
    put(mid, ref, BSZ, 2 * CS, 52); /* past the base's end */
    put(mid, ref, BSZ + 3 * CS, 512, 53);
    vs_bdev_close(mid);
    tu_create_qcow2("t3", size, "m3", "qcow2");
    b = tu_open_fmt("raw", "b3", VS_OPEN_RDONLY, NULL);
    mid = tu_open_fmt("qcow2", "m3", VS_OPEN_RDONLY, b);
    top = tu_open_fmt("qcow2", "t3", 0, mid);
    ok(top != NULL, "open a three-layer chain");
    if (top == NULL)
        return;
    ok(tu_same(top, ref, size), "reads through two layers (cold)");
    ok(tu_same(top, ref, size), "and again (owner cache warm)");
    ok(put(top, ref, 3 * CS + 7, 100, 54), "copy-on-write from the middle");
    ok(put(top, ref, 6 * CS + 7, 100, 55), "copy-on-write from the base");
    ok(put(top, ref, BSZ + 3 * CS + 100, 1000, 56),
       "copy-on-write at the middle's end");
    ok(tu_same(top, ref, size), "reads match");
    vs_bdev_close(top);
    ok(tu_qemu_check("m3") && tu_qemu_check("t3"),
       "qemu-img check: both clean");
    ok(tu_qemu_compare("t3", ref, size), "qemu-img compare: chain equals ref");
    snprintf(cmd, sizeof(cmd), "qemu-img info --backing-chain '%s'",
             tu_obj_path("t3"));
    ok(tu_run(cmd, out, sizeof(out)) == 0 && strstr(out, "image: ") &&
           strstr(out, "backing file: m3") && strstr(out, "backing file: b3"),
       "qemu-img info --backing-chain shows three layers");
    free(ref);
}

/* ---- threads ---- */

#define THREADS 4
#define TSZ (8 * MiB)

/* Each thread writes its own 4 KiB slot of every cluster: all of them
 * allocate the same clusters at the same time. */
static void *
worker_run(void *arg)
{
    struct tu_worker *w = arg;
    uint8_t buf[4096];

    for (uint64_t c = 0; c < TSZ / CS; c++) {
        uint64_t off = c * CS + (uint64_t)w->id * 8192 + 512;

        fill(buf, sizeof(buf), (unsigned)(c * THREADS + (uint64_t)w->id));
        if (!tu_round_trip(w->bs, buf, sizeof(buf), off))
            w->failures++;
    }
    return NULL;
}

static void
test_threads(void)
{
    uint8_t *ref = malloc(TSZ);
    struct vs_bdev *b, *top;

    fill(ref, TSZ, 60);
    tu_create_raw("tb", ref, TSZ);
    tu_create_qcow2("tt", TSZ, "tb", "raw");
    b = tu_open_fmt("raw", "tb", VS_OPEN_RDONLY, NULL);
    top = tu_open_fmt("qcow2", "tt", 0, b);
    is_int(tu_run_workers(top, THREADS, worker_run), 0,
           "threads allocating the same clusters");
    for (uint64_t c = 0; c < TSZ / CS; c++) {
        for (int i = 0; i < THREADS; i++)
            fill(ref + c * CS + (uint64_t)i * 8192 + 512, 4096,
                 (unsigned)(c * THREADS + (uint64_t)i));
    }
    ok(tu_same(top, ref, TSZ), "every thread's write survived");
    vs_bdev_close(top);
    ok(tu_qemu_check("tt"), "qemu-img check: clean");
    free(ref);
}

static void
test_fua(void)
{
    uint8_t buf[4096];
    struct vs_bdev *bs, *bs2;
    struct iovec iov = {buf, sizeof(buf)};

    tu_create_qcow2("fua", 4 * MiB, NULL, NULL);
    bs = tu_open_fmt("qcow2", "fua", 0, NULL);
    fill(buf, sizeof(buf), 70);
    is_int(vs_bdev_pwritev(bs, &iov, 1, CS, VS_IO_FUA), sizeof(buf),
           "FUA write that allocates");
    /* Without closing the writer: the metadata must be on storage. */
    bs2 = tu_open_fmt("qcow2", "fua", VS_OPEN_RDONLY, NULL);
    memset(buf, 0, sizeof(buf));
    ok(bs2 != NULL && vs_bdev_pread(bs2, buf, sizeof(buf), CS) == 4096,
       "a second opener reads it");
    {
        uint8_t want[4096];

        fill(want, sizeof(want), 70);
        ok(memcmp(buf, want, sizeof(want)) == 0, "with the data");
    }
    vs_bdev_close(bs2);
    vs_bdev_close(bs);
}

/* Snapshots leave written layers under the top, still open writable; a
 * flush of the top must reach them even past a clean layer between (a
 * snapshot taken while nothing was written). */
static void
test_flush_frozen(void)
{
    uint8_t buf[4096], back[4096];
    struct vs_bdev *a, *b, *c, *check;

    tu_create_qcow2("fa", 4 * MiB, NULL, NULL);
    tu_create_qcow2("fb", 4 * MiB, "fa", "qcow2");
    tu_create_qcow2("fc", 4 * MiB, "fb", "qcow2");
    a = tu_open_fmt("qcow2", "fa", 0, NULL);
    fill(buf, sizeof(buf), 77);
    ok(a != NULL && vs_bdev_pwrite(a, buf, 4096, CS) == 4096,
       "write into the bottom layer, no flush");
    b = a != NULL ? tu_open_fmt("qcow2", "fb", 0, a) : NULL;
    c = b != NULL ? tu_open_fmt("qcow2", "fc", 0, b) : NULL;
    ok(c != NULL, "two layers over it, the middle one clean");
    is_int(c ? vs_bdev_flush(c) : -1, 0, "flush the top");
    check = tu_open_fmt("qcow2", "fa", VS_OPEN_RDONLY, NULL);
    ok(check != NULL && vs_bdev_pread(check, back, 4096, CS) == 4096 &&
           memcmp(buf, back, 4096) == 0,
       "the bottom layer's write is on storage, metadata and all");
    vs_bdev_close(check);
    vs_bdev_close(c);
}

/* ---- images made by qemu-img ---- */

/* Make a raw source file of SIZE in the store, return its reference. */
static uint8_t *
make_source(const char *name, uint64_t size)
{
    uint8_t *ref = calloc(1, size);

    /* Compressible data with holes: text-like runs and zero stretches. */
    for (uint64_t off = 0; off < size; off += 3 * CS) {
        uint64_t n = MIN(CS + 4096, size - off);

        for (uint64_t i = 0; i < n; i++)
            ref[off + i] = (uint8_t)("vstorfs qcow2 "[i % 14] + (off >> 16));
    }
    tu_create_raw(name, ref, size);
    return ref;
}

static void
test_qemu_made(const char *what, const char *opts, bool compress)
{
    uint64_t size = 3 * MiB + 4096;
    uint8_t *ref = make_source("src.raw", size);
    char cmd[768], out[2048], name[64];
    struct vs_bdev *bs;
    int rc;

    snprintf(name, sizeof(name), "qm-%s", what);
    snprintf(
        cmd, sizeof(cmd), "qemu-img convert -f raw -O qcow2 %s %s '%s' '%s'",
        compress ? "-c" : "", opts, tu_obj_path("src.raw"), tu_obj_path(name));
    rc = tu_run(cmd, out, sizeof(out));
    if (!ok(rc == 0, "qemu-img convert to %s", what)) {
        tap_diag("%s: %s", cmd, out);
        free(ref);
        vs_object_remove(st, "src.raw");
        return;
    }
    bs = tu_open_fmt("qcow2", name, VS_OPEN_RDONLY, NULL);
    ok(bs != NULL && tu_same(bs, ref, size), "%s reads correctly", what);
    vs_bdev_close(bs);
    bs = tu_open_fmt("qcow2", name, 0, NULL);
    ok(bs != NULL, "%s opens writable", what);
    if (bs != NULL) {
        put(bs, ref, 100, 5000, 80);
        put(bs, ref, 2 * MiB + 3, 700 * KiB, 81);
        memset(ref + CS, 0, CS);
        vs_bdev_discard(bs, CS, CS);
        ok(tu_same(bs, ref, size), "%s: our writes read back", what);
        vs_bdev_close(bs);
        ok(tu_qemu_check(name), "qemu-img check: %s clean after our writes",
           what);
        ok(tu_qemu_compare(name, ref, size), "qemu-img compare: %s", what);
    }
    vs_object_remove(st, "src.raw");
    free(ref);
}

/* A 512-byte-cluster image filled past what one refcount table cluster
 * covers: the driver must relocate the refcount table. */
static void
test_refcount_growth(void)
{
    uint64_t size = 24 * MiB;
    uint8_t *ref = calloc(1, size);
    char cmd[512];
    struct vs_bdev *bs;
    bool good = true;

    snprintf(cmd, sizeof(cmd),
             "qemu-img create -q -f qcow2 -o cluster_size=512 '%s' 24M",
             tu_obj_path("small"));
    is_int(tu_run(cmd, NULL, 0), 0, "qemu-img create, 512-byte clusters");
    bs = tu_open_fmt("qcow2", "small", 0, NULL);
    ok(bs != NULL, "open it");
    if (bs == NULL)
        return;
    for (uint64_t off = 0; off < 12 * MiB && good; off += MiB)
        good = put(bs, ref, off + 3, MiB - 6, (unsigned)(off >> 20));
    ok(good, "write 12 MiB through it");
    is_int(vs_bdev_flush(bs), 0, "flush");
    ok(tu_same(bs, ref, size), "reads back");
    vs_bdev_close(bs);
    ok(tu_qemu_check("small"), "qemu-img check: clean after table growth");
    ok(tu_qemu_compare("small", ref, size), "qemu-img compare: equal");
    free(ref);
}

int
main(void)
{

    if (tu_scratch_open(base, &st) < 0)
        return 1;
    test_create_empty();
    test_patterns();
    test_zero_discard();
    test_grow();
    test_size_zero();
    test_chain_raw();
    test_chain_three();
    test_threads();
    test_fua();
    test_flush_frozen();
    test_qemu_made("plain", "", false);
    test_qemu_made("zlib", "-o compression_type=zlib", true);
    test_qemu_made("default-compressed", "", true);
    test_qemu_made("4k-clusters", "-o cluster_size=4096", false);
    test_qemu_made("refcount-bits-1", "-o refcount_bits=1", false);
    test_qemu_made("v2", "-o compat=0.10", false);
    test_qemu_made("v2-compressed", "-o compat=0.10", true);
    test_refcount_growth();
    tu_scratch_close(st);
    return tap_done();
}
