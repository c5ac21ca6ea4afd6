/*
 * The qcow2 driver's bounded L2 cache (backends/format/qcow2_l2cache.c)
 * with a limit far below the image's table set:
 *
 *   - a qemu-made image with 1 KiB clusters (a table maps 128 KiB, so
 *     8 MiB is 64 tables) and a cache of 2 tables: hundreds of writes,
 *     discards and zeroings spread over every table with reads checked in
 *     between, the cache's size checked as it goes (dirty tables beyond
 *     the limit start a flush), then flush, reopen, every byte read back
 *     by us and compared by `qemu-img compare`, `qemu-img check` clean;
 *   - a read-only open reads no L2 table, a read loads only the table it
 *     needs, and a read of the whole disk leaves the cache within bounds;
 *   - a chain: a writable layer with extended L2 entries over a qemu-made
 *     read-only layer (the chain shortcut walks the lower layer's cache,
 *     which has one table), both with tiny caches; then threads writing
 *     and reading at once over many tables (the sanitizer build runs it).
 *
 * The test looks into the layer's private state (qcow2.h) for the cache's
 * counters.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vs/bdev.h"
#include "vs/driver.h"
#include "qcow2.h"
#include "tap.h"
#include "testutil.h"

#define KiB 1024ull
#define MiB (1024ull * 1024)
#define SMALL_CS KiB
#define SMALL_SZ (8 * MiB) /* 64 tables of 128 KiB */
#define EXT_CS (16 * KiB)
#define EXT_SZ (64 * MiB) /* 4 tables of 16 MiB (extended entries) */
#define THREADS 4

static char base[64] = "/var/tmp/vstorfs-test-l2cache.XXXXXX";
static struct vs_store *st;

static void
fill(uint8_t *buf, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(seed * 41 + i * 7 + (i >> 9) + 1);
}

/* A deterministic generator (the C library's rand is shared). */
static uint64_t
next(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static struct qcow2 *
layer(struct vs_bdev *bs)
{
    return bs->opaque;
}

static bool
qemu(const char *what, const char *cmd)
{
    char out[2048];

    if (tu_run(cmd, out, sizeof(out)) == 0)
        return true;
    tap_diag("%s: %s: %s", what, cmd, out);
    return false;
}

/* Write LEN bytes of pattern SEED at OFF, to BS and REF. */
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

/* Whether BS reads REF at [off, off + len). */
static bool
same_at(struct vs_bdev *bs, const uint8_t *ref, uint64_t off, size_t len)
{
    uint8_t *buf = malloc(len);
    bool eq = vs_bdev_pread(bs, buf, len, off) == (ssize_t)len &&
              memcmp(buf, ref + off, len) == 0;

    if (!eq)
        tap_diag("differs in [%#llx, +%zu)", (unsigned long long)off, len);
    free(buf);
    return eq;
}

/* Whether BS reads REF[0..size) in pieces of STEP bytes. */
static bool
same_by(struct vs_bdev *bs, const uint8_t *ref, uint64_t size, uint64_t step)
{
    for (uint64_t off = 0; off < size; off += step) {
        if (!same_at(bs, ref, off, step))
            return false;
    }
    return true;
}

/* ---- many tables, a cache of two ---- */

/* One random operation at a random place; false on a failure. */
static bool
random_op(struct vs_bdev *bs, uint8_t *ref, uint64_t *x, unsigned i)
{
    uint64_t kind = next(x) % 10, len = 1 + next(x) % 5000;
    uint64_t off = next(x) % (SMALL_SZ - len);

    if (kind < 6)
        return put(bs, ref, off, len, i);
    if (kind < 8)
        return same_at(bs, ref, off, len);
    memset(ref + off, 0, len);
    if (kind == 8)
        return vs_bdev_write_zeroes(bs, off, len, 0) == 0;
    return vs_bdev_write_zeroes(bs, off, len, VS_IO_MAY_UNMAP) == 0;
}

static void
test_many_tables(void)
{
    uint8_t *ref = calloc(1, SMALL_SZ);
    uint64_t x = 88172645463325252ull;
    size_t most = 0;
    struct vs_bdev *bs;
    char cmd[512];
    bool good = true;

    vs_qcow2_set_l2_cache_size(2 * SMALL_CS);
    snprintf(cmd, sizeof(cmd),
             "qemu-img create -q -f qcow2 -o cluster_size=1k '%s' 8M",
             tu_obj_path("many"));
    bs = qemu("create", cmd) ? tu_open_fmt("qcow2", "many", 0, NULL) : NULL;
    if (!ok(bs != NULL, "a qemu-made image of 64 L2 tables, cache of 2")) {
        free(ref);
        return;
    }
    is_int((long long)layer(bs)->l2_max, 2, "the limit is 2 tables");
    /* one pass of writes over every table: 64 dirty tables, no flush */
    for (uint64_t t = 0; good && t < 64; t++)
        good =
            put(bs, ref, t * 128 * KiB + (t % 7) * 3000, 2500, (unsigned)t + 1);
    ok(good, "a write into each of the 64 tables");
    ok(layer(bs)->l2_n <= 4,
       "dirty tables past the limit were flushed and dropped (%zu cached)",
       layer(bs)->l2_n);
    for (unsigned i = 0; good && i < 1500; i++) {
        good = random_op(bs, ref, &x, i + 100);
        if (layer(bs)->l2_n > most)
            most = layer(bs)->l2_n;
    }
    ok(good, "1500 random writes, reads and zeroings, each checked");
    ok(most <= 6, "the cache stayed bounded (at most %zu tables)", most);
    ok(same_by(bs, ref, SMALL_SZ, 64 * KiB), "every byte reads back");
    ok(layer(bs)->l2_loads > 64, "tables were read again (%llu reads)",
       (unsigned long long)layer(bs)->l2_loads);
    is_int(vs_bdev_flush(bs), 0, "flush");
    vs_bdev_close(bs);
    ok(tu_qemu_check("many"), "qemu-img check: clean");
    ok(tu_qemu_compare("many", ref, SMALL_SZ), "qemu-img compare: equal");
    bs = tu_open_fmt("qcow2", "many", 0, NULL);
    ok(bs != NULL && same_by(bs, ref, SMALL_SZ, 32 * KiB),
       "reopened: every byte reads back");
    vs_bdev_close(bs);
    free(ref);
}

/* ---- what an open and a read load ---- */

static void
test_lazy_open(void)
{
    uint8_t buf[4096];
    struct vs_bdev *bs;
    uint8_t *all = malloc(SMALL_SZ);

    vs_qcow2_set_l2_cache_size(2 * SMALL_CS);
    bs = tu_open_fmt("qcow2", "many", VS_OPEN_RDONLY, NULL);
    if (!ok(bs != NULL, "read-only open")) {
        free(all);
        return;
    }
    is_int((long long)layer(bs)->l2_loads, 0, "the open read no L2 table");
    ok(vs_bdev_pread(bs, buf, sizeof(buf), 40 * 128 * KiB) ==
           (ssize_t)sizeof(buf),
       "a read in table 40");
    is_int((long long)layer(bs)->l2_loads, 1, "it read one table");
    ok(layer(bs)->l2[40] != NULL, "table 40 is cached");
    ok(vs_bdev_pread(bs, all, SMALL_SZ, 0) == (ssize_t)SMALL_SZ,
       "one read of the whole disk (needs all 64 tables at once)");
    ok(layer(bs)->l2_n <= 2, "the cache is back to its limit (%zu)",
       layer(bs)->l2_n);
    vs_bdev_close(bs);
    free(all);
}

/* ---- a chain with extended L2 entries, and threads ---- */

static void *
worker(void *arg)
{
    struct tu_worker *w = arg;
    uint64_t x = 0x9e3779b97f4a7c15ull * (uint64_t)(w->id + 1);
    uint8_t buf[6000], back[6000];

    for (int i = 0; i < 300; i++) {
        /* each thread owns every THREADS-th 8 KiB of the disk */
        uint64_t slot = next(&x) % (EXT_SZ / (8 * KiB) / THREADS);
        uint64_t off = (slot * THREADS + (uint64_t)w->id) * 8 * KiB;
        size_t len = 1 + next(&x) % (8 * KiB - 1);

        if (len > sizeof(buf))
            len = sizeof(buf);
        fill(buf, len, (unsigned)i + 7 * (unsigned)w->id);
        if (vs_bdev_pwrite(w->bs, buf, len, off) != (ssize_t)len ||
            vs_bdev_pread(w->bs, back, len, off) != (ssize_t)len ||
            memcmp(buf, back, len) != 0)
            w->failures++;
    }
    return NULL;
}

static uint8_t *
read_file(const char *path, uint64_t size)
{
    uint8_t *buf = calloc(1, size);
    FILE *f = fopen(path, "rb");

    if (buf == NULL || f == NULL || fread(buf, 1, size, f) != size) {
        if (f != NULL)
            fclose(f);
        free(buf);
        return NULL;
    }
    fclose(f);
    return buf;
}

static void
test_chain(void)
{
    char cmd[2048], raw[600];
    struct vs_bdev *top;
    uint8_t *ref;
    bool good = true;

    vs_qcow2_set_l2_cache_size(EXT_CS); /* one table per layer */
    snprintf(raw, sizeof(raw), "%s.raw", tu_obj_path("xb"));
    snprintf(cmd, sizeof(cmd),
             "qemu-img create -q -f qcow2 -o cluster_size=16k,"
             "extended_l2=on '%s' 64M && qemu-io -f qcow2 "
             "-c 'write -P 0x5a 1M 3M' -c 'write -P 0x6b 17M 100k' "
             "-c 'write -P 0x7c 40M 5M' -c 'write -z 41M 64k' "
             "-c 'write -P 0x1d 63M 1M' '%s' && "
             "qemu-img convert -f qcow2 -O raw '%s' '%s' && "
             "qemu-img create -q -f qcow2 -o cluster_size=16k,extended_l2=on "
             "-b xb -F qcow2 '%s'",
             tu_obj_path("xb"), tu_obj_path("xb"), tu_obj_path("xb"), raw,
             tu_obj_path("xt"));
    if (!ok(qemu("base", cmd), "qemu-made base and overlay: 16 KiB clusters, "
                               "extended L2 entries"))
        return;
    ref = read_file(raw, EXT_SZ);
    top = tu_open_fmt("qcow2", "xt", 0,
                      tu_open_fmt("qcow2", "xb", VS_OPEN_RDONLY, NULL));
    if (!ok(ref != NULL && top != NULL, "an overlay over it, caches of 1")) {
        vs_bdev_close(top);
        free(ref);
        return;
    }
    ok(layer(top)->extl2 && layer(top)->chain_len == 1,
       "it has extended L2 entries and walks the base's tables itself");
    for (uint64_t t = 0; good && t < 4; t++)
        good = put(top, ref, t * 16 * MiB + 3 * MiB - 700, 9000,
                   (unsigned)t + 3) &&
               put(top, ref, t * 16 * MiB + 9 * MiB + 5, 300, (unsigned)t + 9);
    ok(good, "partial writes in every table (copy-on-write reads the base)");
    ok(same_by(top, ref, EXT_SZ, 1 * MiB), "every byte reads back");
    ok(layer(top)->chain_len == 1 && layer(top)->chain[0]->l2_n <= 1,
       "the base's cache holds one table");
    is_int(tu_run_workers(top, THREADS, worker), 0,
           "threads writing and reading over every table at once");
    is_int(vs_bdev_flush(top), 0, "flush");
    vs_bdev_close(top);
    ok(tu_qemu_check("xt"), "qemu-img check: clean");
    free(ref);
}

int
main(void)
{
    if (tu_scratch_open(base, &st) < 0)
        return 1;
    unsetenv("VSTORFS_QCOW2_L2_CACHE");
    test_many_tables();
    test_lazy_open();
    test_chain();
    vs_qcow2_set_l2_cache_size(QCOW2_L2_CACHE_DEFAULT);
    tu_scratch_close(st);
    return tap_done();
}
