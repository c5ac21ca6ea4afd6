/*
 * Fuzz harness for the qcow2 driver's header and table parsers and for
 * what it does with what they accept.
 *
 * LLVMFuzzerTestOneInput stores the input as an object in a dir store (on
 * /dev/shm when there is one), opens it read-only and reads a few ranges
 * and the block status of the start, then (for inputs that opened) opens
 * it writable and writes, discards, zeroes, grows and flushes, and reads
 * it once more.  Whatever the bytes, nothing may crash, leak or touch
 * memory out of bounds, and no call may claim more bytes than it was
 * asked for.  Built with -DVS_LIBFUZZER and -fsanitize=fuzzer it is a
 * libFuzzer target.
 *
 * Built without libFuzzer, main() runs a fixed number of deterministic
 * mutations of small hand-built images (512-byte clusters: header with a
 * backing-format extension, refcount table and block, L1, two L2 tables,
 * normal, zero, zero-allocated and zlib-compressed clusters; in version 3
 * with 16-bit and 1-bit refcounts, and in version 2), and of one with
 * extended L2 entries (16 KiB clusters: subclusters allocated, zero,
 * neither with and without a host cluster, and a compressed cluster), for
 * the test suite, which also runs it under ASan and UBSan.  Mutations aim
 * at the header and the table clusters: bit flips, 64-bit fields set to
 * interesting offsets, truncation.
 */
#include <errno.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "vs/bdev.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MIN(a, b) ((a) < (b) ? (a) : (b))

static char dir[64];
static struct vs_store *st;
static unsigned opened_ro, opened_rw; /* inputs the driver accepted */

static int
rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static void
cleanup(void)
{
    vs_store_close(st);
    st = NULL;
    if (dir[0] != '\0')
        nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static int
setup(void)
{
    char loc[128];

    if (st != NULL)
        return 0;
    snprintf(dir, sizeof(dir), "%s/vstorfs-fuzz-qcow2.XXXXXX",
             access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/var/tmp");
    if (mkdtemp(dir) == NULL)
        return -1;
    snprintf(loc, sizeof(loc), "dir:%s/store", dir);
    if (vs_store_open(loc, true, &st) < 0)
        return -1;
    atexit(cleanup);
    return vs_object_create(st, "fz", 0);
}

/* Replace the object's bytes with DATA. */
static int
store_input(const uint8_t *data, size_t size)
{
    struct vs_bdev *file = NULL;
    int r = vs_object_open(st, "fz", 0, "fz", &file);

    if (r < 0)
        return r;
    r = vs_bdev_truncate(file, 0);
    if (r == 0 && size > 0 &&
        vs_bdev_pwrite(file, data, size, 0) != (ssize_t)size)
        r = -EIO;
    vs_bdev_close(file);
    return r;
}

static struct vs_bdev *
open_image(unsigned flags)
{
    struct vs_bdev *file = NULL, *bs = NULL;

    if (vs_object_open(st, "fz", flags, "fz", &file) < 0)
        return NULL;
    if (vs_format_open("qcow2", file, NULL, flags, &bs) < 0) {
        vs_bdev_close(file);
        return NULL;
    }
    return bs;
}

static void
read_at(struct vs_bdev *bs, uint64_t off, size_t len)
{
    static uint8_t buf[65536];
    ssize_t n = vs_bdev_pread(bs, buf, MIN(len, sizeof(buf)), off);

    if (n > (ssize_t)MIN(len, sizeof(buf)))
        abort();
}

static void
exercise_reads(struct vs_bdev *bs)
{
    int64_t size = vs_bdev_size(bs);
    uint64_t off = 0, end;

    if (size < 0)
        abort(); /* an open image always knows its size */
    read_at(bs, 0, 65536);
    read_at(bs, (uint64_t)size / 2, 4096);
    read_at(bs, size > 4096 ? (uint64_t)size - 4096 : 0, 8192);
    end = MIN((uint64_t)size, 1u << 20);
    while (off < end) {
        uint64_t pnum = 0;
        int st_bits = vs_bdev_block_status(bs, off, end - off, &pnum);

        if (st_bits < 0)
            break;
        if (pnum == 0 || pnum > end - off)
            abort();
        off += pnum;
    }
}

static void
exercise_writes(struct vs_bdev *bs)
{
    static uint8_t buf[5000];
    int64_t size = vs_bdev_size(bs);
    uint64_t s = size > 0 ? (uint64_t)size : 0;

    memset(buf, 0xa5, sizeof(buf));
    if (s > 100 + sizeof(buf))
        vs_bdev_pwrite(bs, buf, sizeof(buf), 100);
    if (s > 8192)
        vs_bdev_pwrite(bs, buf, 4096, s / 2 & ~4095ull);
    vs_bdev_discard(bs, 0, MIN(s, 2048));
    vs_bdev_write_zeroes(bs, s / 3, MIN(s / 3, 4096), 0);
    vs_bdev_write_zeroes(bs, s / 4, MIN(s / 4, 4096), VS_IO_MAY_UNMAP);
    vs_bdev_truncate(bs, s + (1u << 20));
    vs_bdev_flush(bs);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct vs_bdev *bs;

    if (size > (4u << 20) || setup() < 0 || store_input(data, size) < 0)
        return 0;
    bs = open_image(VS_OPEN_RDONLY);
    if (bs == NULL)
        return 0;
    opened_ro++;
    exercise_reads(bs);
    vs_bdev_close(bs);
    bs = open_image(0);
    if (bs == NULL)
        return 0;
    opened_rw++;
    exercise_writes(bs);
    exercise_reads(bs);
    vs_bdev_close(bs);
    bs = open_image(VS_OPEN_RDONLY);
    if (bs != NULL) {
        exercise_reads(bs);
        vs_bdev_close(bs);
    }
    return 0;
}

#ifndef VS_LIBFUZZER

#define ITERATIONS 5000
#define SEED_CS 512u
#define SEED_CLUSTERS 11u
#define EXT_ITERATIONS 1500
#define EXT_CS (16u * 1024) /* the smallest cluster extended L2 allows */
#define EXT_CLUSTERS 9u

static uint64_t rng_state = 0x243f6a8885a308d3ull;

/* xorshift64*: deterministic, so a failure reproduces. */
static uint32_t
rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545f4914f6cdd1dull) >> 32);
}

static void
put64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static void
put32(uint8_t *p, uint32_t v)
{
    for (int i = 3; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

/* Deflate one cluster (CS bytes) of pattern into OUT (raw, 4 KiB window);
 * its size. */
static size_t
deflate_cluster(uint8_t *out, size_t room, unsigned cs)
{
    static uint8_t in[EXT_CS];
    z_stream z = {0};
    size_t n;

    for (unsigned i = 0; i < cs; i++)
        in[i] = (uint8_t)("compressed "[i % 11]);
    if (deflateInit2(&z, 6, Z_DEFLATED, -12, 9, Z_DEFAULT_STRATEGY) != Z_OK)
        return 0;
    z.next_in = in;
    z.avail_in = cs;
    z.next_out = out;
    z.avail_out = (uInt)room;
    deflate(&z, Z_FINISH);
    n = room - z.avail_out;
    deflateEnd(&z);
    return n;
}

static void
seed_header(uint8_t *b, int version, uint32_t order)
{
    put32(b, 0x514649fbu);
    put32(b + 4, (uint32_t)version);
    put32(b + 20, 9);           /* 512-byte clusters */
    put64(b + 24, 64 * 1024);   /* two L2 tables' worth */
    put32(b + 36, 2);           /* L1 entries */
    put64(b + 40, 3 * SEED_CS); /* L1 */
    put64(b + 48, 1 * SEED_CS); /* refcount table */
    put32(b + 56, 1);
    if (version == 3) {
        put32(b + 96, order);
        put32(b + 100, 104);
        put32(b + 104, 0xe2792acau); /* backing format "raw" */
        put32(b + 108, 3);
        memcpy(b + 112, "raw", 3);
        put64(b + 8, 128); /* backing name after the end marker */
        put32(b + 16, 4);
        memcpy(b + 128, "base", 4);
    }
}

static void
seed_refcounts(uint8_t *img, uint32_t order)
{
    uint8_t *rb = img + 2 * SEED_CS;

    put64(img + SEED_CS, 2 * SEED_CS);
    for (unsigned c = 0; c < SEED_CLUSTERS; c++) {
        if (order == 4)
            rb[2 * c + 1] = 1;
        else
            rb[c / 8] |= (uint8_t)(1u << (c % 8));
    }
}

/* A whole seed image (SEED_CLUSTERS clusters) into IMG. */
static void
make_seed(uint8_t *img, int version, uint32_t order)
{
    uint64_t copied = 1ull << 63;
    uint8_t *l2a = img + 4 * SEED_CS, *l2b = img + 5 * SEED_CS;
    size_t clen;

    memset(img, 0, SEED_CLUSTERS * SEED_CS);
    seed_header(img, version, order);
    seed_refcounts(img, order);
    put64(img + 3 * SEED_CS, copied | 4 * SEED_CS);
    put64(img + 3 * SEED_CS + 8, copied | 5 * SEED_CS);
    put64(l2a, copied | 6 * SEED_CS);
    put64(l2a + 24, copied | 7 * SEED_CS);
    put64(l2b, copied | 8 * SEED_CS);
    put64(l2b + 40, copied | 9 * SEED_CS);
    if (version == 3) {
        put64(l2a + 8, 1);                         /* zero */
        put64(l2b + 40, copied | 9 * SEED_CS | 1); /* zero, allocated */
    }
    for (unsigned c = 6; c < 10; c++)
        memset(img + c * SEED_CS, (int)(0x10 * c), SEED_CS);
    clen = deflate_cluster(img + 10 * SEED_CS, SEED_CS, SEED_CS);
    /* 512-byte clusters: offset in bits 0..60, extra sectors in bit 61. */
    put64(l2a + 16,
          (1ull << 62) | 10 * SEED_CS | (clen > SEED_CS ? 1ull << 61 : 0));
}

/* Offsets worth planting in a 64-bit field. */
static uint64_t
interesting(size_t len)
{
    static const uint64_t v[] = {
        0,          1,          512,        1024,
        4096,       1ull << 62, 1ull << 63, 0x00fffffffffffe00ull,
        UINT64_MAX, 0x7fffffff};
    uint32_t k = rng() % 12;

    if (k < 10)
        return v[k];
    return k == 10 ? len : (uint64_t)(rng() % (len + 1024)) & ~511ull;
}

static void
mutate(uint8_t *b, size_t *len)
{
    size_t tables = 6 * SEED_CS; /* header, refcounts, L1, L2s */
    size_t pos = rng() % (*len > 0 ? *len : 1);

    switch (rng() % 6) {
    case 0:
        b[rng() % 112] ^= (uint8_t)(1u << (rng() % 8));
        break;
    case 1:
        b[rng() % tables] ^= (uint8_t)(1u << (rng() % 8));
        break;
    case 2:
        if (*len >= 8)
            put64(b + ((rng() % (MIN(*len, tables) / 8)) * 8),
                  interesting(*len));
        break;
    case 3:
        put32(b + 8 * (rng() % 13), (uint32_t)interesting(*len));
        break;
    case 4:
        *len = rng() % (*len + 1);
        break;
    default:
        if (*len > 0)
            b[pos] = (uint8_t)rng();
        break;
    }
}

/* A seed with extended L2 entries: header, refcount table and block, L1,
 * one L2 table, data clusters 5, 6, 8 and a compressed cluster at 7. */
static void
make_seed_extl2(uint8_t *img)
{
    uint64_t copied = 1ull << 63;
    uint8_t *l2 = img + 4 * EXT_CS, *rb = img + 2 * EXT_CS;
    size_t clen;

    memset(img, 0, EXT_CLUSTERS * EXT_CS);
    put32(img, 0x514649fbu);
    put32(img + 4, 3);
    put32(img + 20, 14);
    put64(img + 24, 1024 * 1024);
    put32(img + 36, 1);
    put64(img + 40, 3 * EXT_CS);
    put64(img + 48, 1 * EXT_CS);
    put32(img + 56, 1);
    put64(img + 72, 1ull << 4); /* extended L2 entries */
    put32(img + 96, 4);
    put32(img + 100, 104);
    put64(img + EXT_CS, 2 * EXT_CS);
    for (unsigned c = 0; c < EXT_CLUSTERS; c++)
        rb[2 * c + 1] = 1;
    put64(img + 3 * EXT_CS, copied | 4 * EXT_CS);
    put64(l2, copied | 5 * EXT_CS); /* half allocated, a quarter zero */
    put64(l2 + 8, 0x0000ffffull | 0xff000000ull << 32);
    put64(l2 + 24, 0xffffffffull << 32); /* no host: all zero */
    put64(l2 + 32, copied | 6 * EXT_CS); /* one subcluster */
    put64(l2 + 40, 1);
    put64(l2 + 64, copied | 8 * EXT_CS); /* a host, nothing allocated */
    for (unsigned c = 5; c < 9; c++)
        memset(img + c * EXT_CS, (int)(0x10 * c), EXT_CS);
    clen = deflate_cluster(img + 7 * EXT_CS, EXT_CS, EXT_CS);
    /* 16 KiB clusters: offset in bits 0..55, extra sectors from bit 56 */
    put64(l2 + 48,
          (1ull << 62) | 7 * EXT_CS |
              (uint64_t)((7 * EXT_CS + clen - 1) / 512 - 7 * EXT_CS / 512)
                  << 56);
}

/* Mutations for the extended-L2 seed: the header and the first entries
 * of its tables, where the bytes that matter are. */
static void
mutate_extl2(uint8_t *b, size_t *len)
{
    static const size_t where[] = {0, 3 * EXT_CS, 4 * EXT_CS, 2 * EXT_CS};
    size_t base = where[rng() % 4];

    switch (rng() % 4) {
    case 0:
        b[base + rng() % 112] ^= (uint8_t)(1u << (rng() % 8));
        break;
    case 1:
        put64(b + base + 8 * (rng() % 12),
              rng() % 2 ? interesting(*len) : (uint64_t)rng() << (rng() % 33));
        break;
    case 2:
        b[4 * EXT_CS + 8 + 16 * (rng() % 5) + rng() % 8] ^=
            (uint8_t)(1u << (rng() % 8)); /* a bitmap */
        break;
    default:
        *len = rng() % (*len + 1);
        break;
    }
}

static void
fuzz_extl2(void)
{
    static uint8_t seed[EXT_CLUSTERS * EXT_CS], work[EXT_CLUSTERS * EXT_CS];

    make_seed_extl2(seed);
    LLVMFuzzerTestOneInput(seed, sizeof(seed));
    for (int i = 0; i < EXT_ITERATIONS; i++) {
        size_t len = sizeof(work);
        int rounds = 1 + (int)(rng() % 3);

        memcpy(work, seed, sizeof(work));
        for (int m = 0; m < rounds; m++)
            mutate_extl2(work, &len);
        LLVMFuzzerTestOneInput(work, len);
    }
}

int
main(void)
{
    static uint8_t seeds[3][SEED_CLUSTERS * SEED_CS];
    static uint8_t work[SEED_CLUSTERS * SEED_CS];

    make_seed(seeds[0], 3, 4);
    make_seed(seeds[1], 3, 0);
    make_seed(seeds[2], 2, 4);
    for (int s = 0; s < 3; s++)
        LLVMFuzzerTestOneInput(seeds[s], sizeof(seeds[s]));
    for (int i = 0; i < ITERATIONS; i++) {
        size_t len = sizeof(work);
        int rounds = 1 + (int)(rng() % 3);
        uint8_t *copy;

        memcpy(work, seeds[rng() % 3], sizeof(work));
        for (int m = 0; m < rounds; m++)
            mutate(work, &len);
        copy = malloc(len > 0 ? len : 1);
        if (copy == NULL)
            return 1;
        memcpy(copy, work, len);
        LLVMFuzzerTestOneInput(copy, len);
        free(copy);
    }
    fuzz_extl2();
    printf("fuzz_qcow2: %d inputs; %u opened read-only, %u writable\n",
           ITERATIONS + EXT_ITERATIONS, opened_ro, opened_rw);
    return 0;
}

#endif
