/*
 * Benchmark of the qcow2 driver, called directly (no FUSE): 4 KiB random
 * reads and writes on a chain of depth 1 and of depth 32, and the write
 * amplification of copy-on-write.  Suite 'bench' only; it prints figures
 * and asserts nothing about them.
 *
 * Everything lives in a store on /dev/shm, so the figures show the
 * driver's own cost.  The depth-1 image has every cluster allocated; the
 * depth-32 chain (each layer a qcow2 over the one below) has the same
 * data spread over its layers, each cluster written in one layer chosen
 * at random.  The chain is read twice: as opened normally (the lower
 * layers read-only, so the top layer's owner cache applies) and with the
 * lower layers opened writable, which disables the cache and makes every
 * read walk down the layers, to show what the cache saves.
 *
 * Write amplification is measured with a counting layer between the top
 * qcow2 and its file: bytes the driver writes to the file (data, copy-on-
 * write fill and metadata, through a final flush) per byte the caller
 * wrote, for 4 KiB writes into 64 KiB clusters over a backing file.
 *
 * `bench_qcow2 extl2` runs only the comparison of layers with and without
 * extended L2 entries (subclusters; VSTORFS_QCOW2_EXTL2 picks which kind
 * a new layer gets): copy-on-write amplification of 4 KiB random and
 * sequential writes into a fresh clone, the rate of 4 KiB random writes
 * into fresh clones with one and two threads, and 4 KiB random reads of a
 * fully written single layer, of a fresh clone (every read goes to the
 * base) and of the clone after the random writes (mixed).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "vs/bdev.h"
#include "testutil.h"

#define KiB 1024ull
#define MiB (1024ull * 1024)
#define CS (64 * KiB)
#define SIZE (256 * MiB)
#define DEPTH 32
#define READS 200000
#define WRITES 50000
#define THREADS 2

static char base[64];
static struct vs_store *st;

static double
now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* xorshift64*, one state per thread. */
static uint64_t
rng(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * 0x2545f4914f6cdd1dull;
}

static void
die(const char *what, int r)
{
    fprintf(stderr, "bench_qcow2: %s: %s\n", what, strerror(-r));
    exit(1);
}

/* ---- the counting layer ---- */

static uint64_t counted;

static ssize_t
count_pwritev(struct vs_bdev *bs, const struct iovec *iov, int iovcnt,
              uint64_t off, unsigned flags)
{
    ssize_t n = vs_bdev_pwritev(bs->file, iov, iovcnt, off, flags);

    if (n > 0)
        __atomic_add_fetch(&counted, (uint64_t)n, __ATOMIC_RELAXED);
    return n;
}

static const struct vs_driver count_drv = {
    .api_version = VS_DRIVER_API_VERSION,
    .struct_size = sizeof(struct vs_driver),
    .name = "count",
    .kind = VS_DRIVER_FORMAT,
    .pwritev = count_pwritev,
};

static struct vs_bdev *
counting(struct vs_bdev *file)
{
    struct vs_bdev *bs = calloc(1, sizeof(*bs));

    bs->drv = &count_drv;
    bs->name = strdup("count");
    bs->file = file;
    bs->caps = file->caps;
    return bs;
}

/* ---- building images ---- */

static struct vs_bdev *
open_layer(const char *name, unsigned flags, struct vs_bdev *backing,
           bool count)
{
    struct vs_bdev *file = NULL, *bs = NULL;
    int r = vs_object_open(st, name, flags, name, &file);

    if (r < 0)
        die(name, r);
    if (count)
        file = counting(file);
    r = vs_format_open("qcow2", file, backing, flags, &bs);
    if (r < 0)
        die(name, r);
    return bs;
}

static void
create_layer(const char *name, const char *backing)
{
    struct vs_bdev *file = NULL;
    int r = vs_object_create(st, name, 0);

    if (r == 0)
        r = vs_object_open(st, name, 0, name, &file);
    if (r == 0)
        r = vs_format_create("qcow2", file, SIZE, backing,
                             backing ? "qcow2" : NULL);
    if (r < 0)
        die(name, r);
    vs_bdev_close(file);
}

static void
layer_name(char *buf, size_t len, const char *prefix, int i)
{
    snprintf(buf, len, "%s%02d", prefix, i);
}

/* Open layers PREFIX00..PREFIX(n-1) as a chain; the top writable. */
static struct vs_bdev *
open_chain(const char *prefix, int n, unsigned lower_flags)
{
    struct vs_bdev *below = NULL;
    char name[32];

    for (int i = 0; i < n; i++) {
        layer_name(name, sizeof(name), prefix, i);
        below = open_layer(name, i == n - 1 ? 0 : lower_flags, below, false);
    }
    return below;
}

/* Write every cluster once, each into layer owner(c) of PREFIX's n. */
static void
build_chain(const char *prefix, int n)
{
    static uint8_t buf[CS];
    char name[32], back[32];
    uint64_t seed = 42;

    for (int i = 0; i < n; i++) {
        struct vs_bdev *top;
        uint64_t s = seed;

        layer_name(name, sizeof(name), prefix, i);
        layer_name(back, sizeof(back), prefix, i - 1);
        create_layer(name, i > 0 ? back : NULL);
        top = open_chain(prefix, i + 1, VS_OPEN_RDONLY);
        for (uint64_t c = 0; c < SIZE / CS; c++) {
            if ((int)(rng(&s) % (uint64_t)n) != i)
                continue;
            memset(buf, (int)(c & 0xff), sizeof(buf));
            if (vs_bdev_pwrite(top, buf, CS, c * CS) != CS)
                die("build", -EIO);
        }
        vs_bdev_close(top);
    }
}

/* ---- measuring ---- */

struct job {
    struct vs_bdev *bs;
    int ops;
    bool write;
    uint64_t seed;
    int errors;
};

static void *
job_run(void *arg)
{
    struct job *j = arg;
    uint8_t buf[4096] __attribute__((aligned(4096)));

    memset(buf, 0x3c, sizeof(buf));
    for (int i = 0; i < j->ops; i++) {
        uint64_t off = (rng(&j->seed) % (SIZE / 4096)) * 4096;
        ssize_t n = j->write ? vs_bdev_pwrite(j->bs, buf, 4096, off)
                             : vs_bdev_pread(j->bs, buf, 4096, off);

        if (n != 4096)
            j->errors++;
    }
    return NULL;
}

/* Ops per second of OPS random 4 KiB requests over THREADS threads. */
static double
measure(struct vs_bdev *bs, int ops, bool write, int threads)
{
    struct job jobs[THREADS];
    pthread_t t[THREADS];
    double t0 = now(), dt;

    for (int i = 0; i < threads; i++) {
        jobs[i] = (struct job){bs, ops / threads, write, 7 + (uint64_t)i, 0};
        pthread_create(&t[i], NULL, job_run, &jobs[i]);
    }
    for (int i = 0; i < threads; i++) {
        pthread_join(t[i], NULL);
        if (jobs[i].errors)
            die("I/O errors", -EIO);
    }
    dt = now() - t0;
    return ops / dt;
}

static void
bench_reads(void)
{
    struct vs_bdev *d1, *d32, *walk;
    double r1, r1t, r32, r32t, rw, rwt;

    d1 = open_chain("one", 1, VS_OPEN_RDONLY);
    d32 = open_chain("deep", DEPTH, VS_OPEN_RDONLY);
    walk = open_chain("deep", DEPTH, 0);
    measure(d32, READS / 4, false, 1); /* warm the owner cache */
    r1 = measure(d1, READS, false, 1);
    r32 = measure(d32, READS, false, 1);
    rw = measure(walk, READS / 4, false, 1);
    r1t = measure(d1, READS, false, THREADS);
    r32t = measure(d32, READS, false, THREADS);
    rwt = measure(walk, READS / 4, false, THREADS);
    printf("4 KiB random read, 1 thread:  depth 1 %.0f ops/s, depth %d %.0f "
           "ops/s (ratio %.2f), depth %d without owner cache %.0f ops/s "
           "(ratio %.2f)\n",
           r1, DEPTH, r32, r32 / r1, DEPTH, rw, rw / r1);
    printf("4 KiB random read, %d threads: depth 1 %.0f ops/s, depth %d %.0f "
           "ops/s (ratio %.2f), depth %d without owner cache %.0f ops/s "
           "(ratio %.2f)\n",
           THREADS, r1t, DEPTH, r32t, r32t / r1t, DEPTH, rwt, rwt / r1t);
    vs_bdev_close(walk);
    vs_bdev_close(d32);
    vs_bdev_close(d1);
}

static void
bench_writes(void)
{
    struct vs_bdev *d1 = open_chain("one", 1, VS_OPEN_RDONLY);
    struct vs_bdev *d32 = open_chain("deep", DEPTH, VS_OPEN_RDONLY);
    /* First pass: on depth 32 the top owns 1/32 of the clusters, so most
     * first touches copy a cluster up from below; depth 1 owns them all. */
    double w1 = measure(d1, WRITES, true, 1);
    double w32 = measure(d32, WRITES, true, 1);
    /* Again: now (almost) every cluster is the top's, written in place. */
    double w1b = measure(d1, WRITES, true, 1);
    double w32b = measure(d32, WRITES, true, 1);
    double w1t = measure(d1, WRITES, true, THREADS);
    double w32t = measure(d32, WRITES, true, THREADS);

    printf("4 KiB random write, first touch, 1 thread: depth 1 %.0f ops/s "
           "(in place), depth %d %.0f ops/s (mostly copy-on-write; ratio "
           "%.2f)\n",
           w1, DEPTH, w32, w32 / w1);
    printf("4 KiB random write, in place, 1 thread: depth 1 %.0f ops/s, "
           "depth %d %.0f ops/s (ratio %.2f)\n",
           w1b, DEPTH, w32b, w32b / w1b);
    printf("4 KiB random write, in place, %d threads: depth 1 %.0f ops/s, "
           "depth %d %.0f ops/s (ratio %.2f)\n",
           THREADS, w1t, DEPTH, w32t, w32t / w1t);
    vs_bdev_close(d32);
    vs_bdev_close(d1);
}

/* 4 KiB writes into a fresh overlay of "one00": RANDOM picks a new
 * cluster for each write, else the writes fill clusters in order. */
static void
bench_amplification(const char *name, bool random, int writes)
{
    static uint8_t buf[4096];
    struct vs_bdev *below, *top;
    uint64_t s = 99;
    double t0, dt;

    create_layer(name, "one00");
    below = open_layer("one00", VS_OPEN_RDONLY, NULL, false);
    top = open_layer(name, 0, below, true);
    counted = 0;
    t0 = now();
    for (int i = 0; i < writes; i++) {
        /* random: a different cluster each time (an odd multiplier
         * permutes the power-of-two cluster count), a random 4 KiB in it */
        uint64_t c = ((uint64_t)i * 2654435761u) % (SIZE / CS);
        uint64_t off =
            random ? c * CS + (rng(&s) % 16) * 4096 : (uint64_t)i * 4096;

        if (vs_bdev_pwrite(top, buf, sizeof(buf), off) != 4096)
            die("write", -EIO);
    }
    vs_bdev_flush(top);
    dt = now() - t0;
    printf("copy-on-write amplification, %s 4 KiB writes (64 KiB clusters, "
           "over a backing%s): %.2f bytes to the file per byte written "
           "(%.0f ops/s incl. flush)\n",
           random ? "random" : "sequential",
           getenv("VSTORFS_QCOW2_EXTL2") == NULL ? ""
           : strcmp(getenv("VSTORFS_QCOW2_EXTL2"), "0") == 0
               ? ", no subclusters"
               : ", subclusters",
           (double)counted / ((double)writes * 4096), writes / dt);
    vs_bdev_close(top);
}

/* Median of three runs of READS/4 random 4 KiB reads of BS. */
static double
read_rate(struct vs_bdev *bs)
{
    double r[3], t;

    measure(bs, READS / 8, false, 1); /* warm up */
    for (int i = 0; i < 3; i++)
        r[i] = measure(bs, READS / 4, false, 1);
    for (int i = 0; i < 2; i++) {
        for (int j = 0; j < 2 - i; j++) {
            if (r[j] > r[j + 1]) {
                t = r[j];
                r[j] = r[j + 1];
                r[j + 1] = t;
            }
        }
    }
    return r[1];
}

/* Reads of layers of kind MODE (VSTORFS_QCOW2_EXTL2): a full single
 * layer, a fresh clone, and the clone written by bench_amplification. */
static void
bench_extl2_reads(const char *mode, int round)
{
    char full[32], clone[32], amp[32];
    struct vs_bdev *bs;
    double r_full, r_clone, r_amp;

    snprintf(full, sizeof(full), "full-%s-%d", mode, round);
    snprintf(clone, sizeof(clone), "clone-%s-%d", mode, round);
    snprintf(amp, sizeof(amp), "amp-rand-%s", mode);
    setenv("VSTORFS_QCOW2_EXTL2", strcmp(mode, "0") == 0 ? "0" : "all", 1);
    create_layer(full, NULL);
    bs = open_layer(full, 0, NULL, false);
    for (uint64_t c = 0; c < SIZE / CS; c++) {
        static uint8_t buf[CS];

        memset(buf, (int)c, sizeof(buf));
        if (vs_bdev_pwrite(bs, buf, CS, c * CS) != CS)
            die("fill", -EIO);
    }
    r_full = read_rate(bs);
    vs_bdev_close(bs);
    setenv("VSTORFS_QCOW2_EXTL2", mode, 1);
    create_layer(clone, "one00");
    bs = open_layer(clone, 0, open_layer("one00", VS_OPEN_RDONLY, NULL, false),
                    false);
    r_clone = read_rate(bs);
    vs_bdev_close(bs);
    bs = open_layer(amp, 0, open_layer("one00", VS_OPEN_RDONLY, NULL, false),
                    false);
    r_amp = read_rate(bs);
    vs_bdev_close(bs);
    printf("4 KiB random read, 1 thread, %s: single full layer %.0f ops/s, "
           "fresh clone %.0f ops/s, clone after the random writes %.0f "
           "ops/s\n",
           strcmp(mode, "0") == 0 ? "no subclusters" : "subclusters", r_full,
           r_clone, r_amp);
}

static void
bench_extl2(void)
{
    static const char *const modes[] = {"0", "1"};
    char name[32];

    build_chain("one", 1);
    for (int m = 0; m < 2; m++) {
        setenv("VSTORFS_QCOW2_EXTL2", modes[m], 1);
        snprintf(name, sizeof(name), "amp-rand-%s", modes[m]);
        bench_amplification(name, true, 2000);
        snprintf(name, sizeof(name), "amp-seq-%s", modes[m]);
        bench_amplification(name, false, 16 * 2000);
    }
    /* random 4 KiB writes into fresh clones, with one thread and with
     * two: first touches (classic: a cluster copy, subclusters: a bitmap
     * update; both under the exclusive lock) */
    for (int m = 0; m < 2; m++) {
        double rate[2];

        setenv("VSTORFS_QCOW2_EXTL2", modes[m], 1);
        for (int t = 0; t < 2; t++) {
            struct vs_bdev *top;

            snprintf(name, sizeof(name), "mt-%s-%d", modes[m], t);
            create_layer(name, "one00");
            top = open_layer(name, 0,
                             open_layer("one00", VS_OPEN_RDONLY, NULL, false),
                             false);
            rate[t] = measure(top, WRITES / 5, true, t + 1);
            vs_bdev_close(top);
        }
        printf("4 KiB random write into a fresh clone, %s: %.0f ops/s with "
               "1 thread, %.0f ops/s with %d threads\n",
               m ? "subclusters" : "no subclusters", rate[0], rate[1], THREADS);
    }
    /* alternating, twice each, to see the noise */
    for (int m = 0; m < 4; m++)
        bench_extl2_reads(modes[m % 2], m);
    unsetenv("VSTORFS_QCOW2_EXTL2");
}

int
main(int argc, char **argv)
{
    char loc[128];
    bool only_extl2 = argc > 1 && strcmp(argv[1], "extl2") == 0;

    snprintf(base, sizeof(base), "%s/vstorfs-bench-qcow2.XXXXXX",
             access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/var/tmp");
    if (mkdtemp(base) == NULL) {
        perror(base);
        return 1;
    }
    snprintf(loc, sizeof(loc), "dir:%s/store", base);
    if (vs_store_open(loc, true, &st) < 0)
        die(loc, -EIO);
    if (only_extl2) {
        bench_extl2();
        vs_store_close(st);
        tu_rm_tree(base);
        return 0;
    }
    build_chain("one", 1);
    build_chain("deep", DEPTH);
    bench_reads();
    bench_amplification("amp-rand", true, 2000);
    bench_amplification("amp-seq", false, 16 * 2000);
    bench_writes();
    vs_store_close(st);
    tu_rm_tree(base);
    return 0;
}
