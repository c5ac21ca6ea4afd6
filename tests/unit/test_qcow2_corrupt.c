/*
 * The qcow2 driver against damaged and hostile images: each case takes a
 * valid image the driver made (two data clusters, one L2 table), breaks
 * one thing in a copy, and checks that opening it (or reading it) fails
 * with the right error: -EIO for corruption, -ENOTSUP for what the driver
 * does not implement.  Nothing may crash or read out of bounds; the test
 * suite also runs this under ASan and UBSan.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "vs/bdev.h"
#include "tap.h"
#include "testutil.h"

#define KiB 1024ull
#define MiB (1024ull * 1024)
#define CS (64 * KiB)
#define SIZE (4 * MiB)

static char base[64] = "/var/tmp/vstorfs-test-qcow2c.XXXXXX";
static struct vs_store *st;
static uint8_t *good; /* the valid image's bytes */
static size_t good_len;
static int serial;

static uint64_t
get64(const uint8_t *p)
{
    uint64_t v = 0;

    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
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

/* Store LEN bytes of IMG as a new object; its name. */
static const char *
store(const uint8_t *img, size_t len)
{
    static char name[32];
    struct vs_bdev *file = NULL;

    snprintf(name, sizeof(name), "img%d", serial++);
    if (vs_object_create(st, name, len) < 0 ||
        vs_object_open(st, name, 0, name, &file) < 0)
        return NULL;
    vs_bdev_pwrite(file, img, len, 0);
    vs_bdev_close(file);
    return name;
}

/* Open IMG (LEN bytes) as qcow2 with FLAGS: the error, or 0 with *out. */
static int
try_open(const uint8_t *img, size_t len, unsigned flags, struct vs_bdev **out)
{
    const char *name = store(img, len);
    struct vs_bdev *file = NULL, *bs = NULL;
    int r;

    if (name == NULL || vs_object_open(st, name, flags, name, &file) < 0)
        return -999;
    r = vs_format_open("qcow2", file, NULL, flags, &bs);
    if (r < 0) {
        vs_bdev_close(file);
        return r;
    }
    if (out != NULL)
        *out = bs;
    else
        vs_bdev_close(bs);
    return 0;
}

/* A copy of the valid image to break. */
static uint8_t *
copy(void)
{
    uint8_t *c = malloc(good_len);

    memcpy(c, good, good_len);
    return c;
}

static uint64_t
l1_offset(void)
{
    return get64(good + 40);
}

static uint64_t
rt_offset(void)
{
    return get64(good + 48);
}

static uint64_t
l2_offset(void)
{
    return get64(good + l1_offset()) & 0x00fffffffffffe00ull;
}

static uint64_t
data_offset(void)
{
    return get64(good + l2_offset()) & 0x00fffffffffffe00ull;
}

/* Break the copy with FN and expect open(FLAGS) to return WANT. */
static void
expect(const char *what, void (*fn)(uint8_t *img, size_t *len), unsigned flags,
       int want)
{
    uint8_t *img = copy();
    size_t len = good_len;

    fn(img, &len);
    is_int(try_open(img, len, flags, NULL), want, what);
    free(img);
}

/* Break the copy with FN in an L2 table: a read-only open succeeds (L2
 * tables are read on demand) and the first read returns WANT; a writable
 * open reads every table (its reference check) and returns WANT. */
static void
expect_l2(const char *what, void (*fn)(uint8_t *img, size_t *len), int want)
{
    uint8_t *img = copy(), buf[4096];
    size_t len = good_len;
    struct vs_bdev *bs = NULL;
    char msg[160];
    int r;

    fn(img, &len);
    r = try_open(img, len, VS_OPEN_RDONLY, &bs);
    if (r == 0) {
        ssize_t n = vs_bdev_pread(bs, buf, sizeof(buf), 0);

        r = n < 0 ? (int)n : 0;
        vs_bdev_close(bs);
    }
    snprintf(msg, sizeof(msg), "%s (read-only: at the first read)", what);
    is_int(r, want, msg);
    snprintf(msg, sizeof(msg), "%s (writable: at open)", what);
    is_int(try_open(img, len, 0, NULL), want, msg);
    free(img);
}

/* ---- the breakages ---- */

static void
truncate_header(uint8_t *img, size_t *len)
{
    (void)img;
    *len = 50;
}

static void
truncate_v3_header(uint8_t *img, size_t *len)
{
    (void)img;
    *len = 90;
}

static void
bad_magic(uint8_t *img, size_t *len)
{
    (void)len;
    img[0] = 'X';
}

static void
version_4(uint8_t *img, size_t *len)
{
    (void)len;
    put32(img + 4, 4);
}

static void
cluster_bits_8(uint8_t *img, size_t *len)
{
    (void)len;
    put32(img + 20, 8);
}

static void
cluster_bits_22(uint8_t *img, size_t *len)
{
    (void)len;
    put32(img + 20, 22);
}

static void
l1_past_eof(uint8_t *img, size_t *len)
{
    put64(img + 40, (*len + CS) & ~(CS - 1));
}

static void
l1_unaligned(uint8_t *img, size_t *len)
{
    (void)len;
    put64(img + 40, l1_offset() + 512);
}

static void
l1_huge(uint8_t *img, size_t *len)
{
    (void)len;
    put32(img + 36, 0x7fffffff);
}

static void
l1_too_small(uint8_t *img, size_t *len)
{
    (void)len;
    put64(img + 24, 1ull << 50); /* size far beyond what L1 maps */
}

static void
l1_entry_outside(uint8_t *img, size_t *len)
{
    put64(img + l1_offset(), (1ull << 63) | ((*len + 16 * CS) & ~(CS - 1)));
}

static void
l1_entry_reserved(uint8_t *img, size_t *len)
{
    (void)len;
    put64(img + l1_offset(), get64(img + l1_offset()) | 1);
}

static void
l1_shared_l2(uint8_t *img, size_t *len)
{
    (void)len;
    put32(img + 36, 2); /* a second L1 entry (room in the cluster) */
    put64(img + l1_offset() + 8, get64(img + l1_offset()));
}

static void
l2_entry_outside(uint8_t *img, size_t *len)
{
    put64(img + l2_offset(), (1ull << 63) | ((*len + 64 * CS) & ~(CS - 1)));
}

static void
l2_entry_unaligned(uint8_t *img, size_t *len)
{
    (void)len;
    put64(img + l2_offset(), (1ull << 63) | (data_offset() + 4096));
}

static void
l2_entry_reserved(uint8_t *img, size_t *len)
{
    (void)len;
    put64(img + l2_offset(), get64(img + l2_offset()) | (1ull << 57));
}

static void
l2_entry_header(uint8_t *img, size_t *len)
{
    (void)len;
    put64(img + l2_offset(), 1ull << 63); /* offset 0 with COPIED */
}

static void
rt_garbage(uint8_t *img, size_t *len)
{
    (void)len;
    put64(img + 48, 0x123456789abcull);
}

static void
rt_zero_clusters(uint8_t *img, size_t *len)
{
    (void)len;
    put32(img + 56, 0);
}

static void
rt_huge(uint8_t *img, size_t *len)
{
    (void)len;
    put32(img + 56, 0x40000000);
}

static void
rt_entry_outside(uint8_t *img, size_t *len)
{
    put64(img + rt_offset(), (*len + 100 * CS) & ~(CS - 1));
}

static void
rc_zero_for_data(uint8_t *img, size_t *len)
{
    uint64_t rb = get64(img + rt_offset());
    uint64_t idx = data_offset() / CS;

    (void)len;
    img[rb + 2 * idx] = 0;
    img[rb + 2 * idx + 1] = 0;
}

static void
data_over_l1(uint8_t *img, size_t *len)
{
    (void)len;
    put64(img + l2_offset(), (1ull << 63) | l1_offset());
}

static void
unknown_incompat(uint8_t *img, size_t *len)
{
    (void)len;
    put64(img + 72, 1ull << 40);
}

static void
data_file_bit(uint8_t *img, size_t *len)
{
    (void)len;
    put64(img + 72, 1ull << 2);
}

/* Extended L2 entries: the same image read with 16-byte entries, so the
 * first data cluster's entry is followed by a bitmap (where the second
 * entry was); each case breaks a rule of the bitmaps. */
static void
extl2(uint8_t *img, uint64_t e, uint64_t bm)
{
    put64(img + 72, 1ull << 4);
    put64(img + l2_offset(), e);
    put64(img + l2_offset() + 8, bm);
}

static void
extl2_alloc_and_zero(uint8_t *img, size_t *len)
{
    (void)len;
    extl2(img, get64(img + l2_offset()), 1ull | 1ull << 32);
}

static void
extl2_alloc_no_host(uint8_t *img, size_t *len)
{
    (void)len;
    extl2(img, 0, 1ull << 5);
}

static void
extl2_compressed_bitmap(uint8_t *img, size_t *len)
{
    (void)len;
    extl2(img, 1ull << 62 | (get64(img + l2_offset()) & 0xffffffffffull), 1);
}

static void
extl2_zero_flag(uint8_t *img, size_t *len)
{
    (void)len;
    extl2(img, get64(img + l2_offset()) | 1, 0);
}

static void
extl2_valid(uint8_t *img, size_t *len)
{
    (void)len;
    extl2(img, get64(img + l2_offset()), 0xffffull | 0xffff0000ull << 32);
}

static void
zstd(uint8_t *img, size_t *len)
{
    (void)len;
    put64(img + 72, 1ull << 3);
    img[104] = 1;
}

static void
compression_type_no_bit(uint8_t *img, size_t *len)
{
    (void)len;
    img[104] = 1;
}

static void
encrypted(uint8_t *img, size_t *len)
{
    (void)len;
    put32(img + 32, 2);
}

static void
header_length_odd(uint8_t *img, size_t *len)
{
    (void)len;
    put32(img + 100, 108 + 3);
}

static void
header_length_huge(uint8_t *img, size_t *len)
{
    (void)len;
    put32(img + 100, 1u << 30);
}

static void
refcount_order_7(uint8_t *img, size_t *len)
{
    (void)len;
    put32(img + 96, 7);
}

static void
backing_name_long(uint8_t *img, size_t *len)
{
    (void)len;
    put64(img + 8, 512);
    put32(img + 16, 2000);
}

static void
backing_name_outside(uint8_t *img, size_t *len)
{
    (void)len;
    put64(img + 8, CS - 10);
    put32(img + 16, 100);
}

static void
extension_overruns(uint8_t *img, size_t *len)
{
    (void)len;
    put32(img + 112, 0x12345678);
    put32(img + 116, (uint32_t)CS);
}

static void
snapshots_outside(uint8_t *img, size_t *len)
{
    put32(img + 60, 1);
    put64(img + 64, (*len + 10 * CS) & ~(CS - 1));
}

static void
corrupt_bit(uint8_t *img, size_t *len)
{
    (void)len;
    put64(img + 72, 1ull << 1);
}

static void
dirty_bit(uint8_t *img, size_t *len)
{
    (void)len;
    put64(img + 72, 1ull << 0);
}

static void
bad_compressed(uint8_t *img, size_t *len)
{
    uint64_t d = data_offset();

    (void)len;
    memset(img + d, 0xff, CS); /* block type 3: invalid deflate */
    put64(img + l2_offset(), (1ull << 62) | d | (1ull << 54));
}

/* ---- the cases ---- */

static void
test_header(void)
{
    expect("truncated header", truncate_header, 0, -EIO);
    expect("truncated v3 header", truncate_v3_header, 0, -EIO);
    expect("bad magic", bad_magic, 0, -EIO);
    expect("version 4", version_4, 0, -ENOTSUP);
    expect("cluster_bits 8", cluster_bits_8, 0, -EIO);
    expect("cluster_bits 22", cluster_bits_22, 0, -EIO);
    expect("header length not a multiple of 8", header_length_odd, 0, -EIO);
    expect("header length past the cluster", header_length_huge, 0, -EIO);
    expect("refcount order 7", refcount_order_7, 0, -EIO);
    expect("unknown incompatible feature", unknown_incompat, 0, -ENOTSUP);
    expect("external data file", data_file_bit, 0, -ENOTSUP);
    expect("zstd compression", zstd, 0, -ENOTSUP);
    expect("compression type without its bit", compression_type_no_bit, 0,
           -EIO);
    expect("encryption", encrypted, 0, -ENOTSUP);
    expect("backing name too long", backing_name_long, 0, -EIO);
    expect("backing name outside the header", backing_name_outside, 0, -EIO);
    expect("header extension overruns", extension_overruns, 0, -EIO);
    expect("snapshot table outside", snapshots_outside, VS_OPEN_RDONLY, -EIO);
}

static void
test_tables(void)
{
    expect("L1 offset past EOF", l1_past_eof, 0, -EIO);
    expect("L1 offset unaligned", l1_unaligned, 0, -EIO);
    expect("huge L1 size", l1_huge, 0, -EIO);
    expect("L1 too small for the size", l1_too_small, 0, -EIO);
    expect("L1 entry outside the file", l1_entry_outside, VS_OPEN_RDONLY, -EIO);
    expect("L1 entry with reserved bits", l1_entry_reserved, VS_OPEN_RDONLY,
           -EIO);
    expect("two L1 entries share an L2", l1_shared_l2, VS_OPEN_RDONLY, -EIO);
    expect_l2("L2 entry outside the file", l2_entry_outside, -EIO);
    expect_l2("L2 entry unaligned", l2_entry_unaligned, -EIO);
    expect_l2("L2 entry with reserved bits", l2_entry_reserved, -EIO);
    expect("extended L2: valid bitmaps open", extl2_valid, VS_OPEN_RDONLY, 0);
    expect_l2("extended L2: allocated and zero", extl2_alloc_and_zero, -EIO);
    expect_l2("extended L2: allocated, no host cluster", extl2_alloc_no_host,
              -EIO);
    expect_l2("extended L2: compressed with a bitmap", extl2_compressed_bitmap,
              -EIO);
    expect_l2("extended L2: the zero flag", extl2_zero_flag, -EIO);
    expect_l2("L2 entry at offset 0", l2_entry_header, -EIO);
    expect("refcount table offset garbage", rt_garbage, 0, -EIO);
    expect("refcount table of 0 clusters", rt_zero_clusters, 0, -EIO);
    expect("refcount table huge", rt_huge, 0, -EIO);
    expect("refcount block outside (writable)", rt_entry_outside, 0, -EIO);
    expect("refcount block outside (read-only is fine)", rt_entry_outside,
           VS_OPEN_RDONLY, 0);
    expect("data cluster with refcount 0 (writable)", rc_zero_for_data, 0,
           -EIO);
    expect("data cluster over the L1 table (writable)", data_over_l1, 0, -EIO);
    expect("data cluster over the L1 table (read-only reads it)", data_over_l1,
           VS_OPEN_RDONLY, 0);
}

static void
test_bits(void)
{
    struct vs_bdev *bs = NULL;
    uint8_t *img = copy(), buf[4096];
    size_t len = good_len;

    expect("corrupt bit: writable refused", corrupt_bit, 0, -EIO);
    expect("corrupt bit: read-only allowed", corrupt_bit, VS_OPEN_RDONLY, 0);
    expect("dirty bit: writable refused", dirty_bit, 0, -ENOTSUP);
    expect("dirty bit: read-only allowed", dirty_bit, VS_OPEN_RDONLY, 0);
    bad_compressed(img, &len);
    is_int(try_open(img, len, VS_OPEN_RDONLY, &bs), 0,
           "garbage compressed cluster: opens");
    if (bs != NULL) {
        is_int(vs_bdev_pread(bs, buf, sizeof(buf), 0), -EIO,
               "and its read fails with EIO");
        is_int(vs_bdev_pread(bs, buf, sizeof(buf), 2 * MiB), sizeof(buf),
               "other clusters still read");
        vs_bdev_close(bs);
    }
    free(img);
}

/* The valid image: two data clusters, one L2 table. */
static int
make_good(void)
{
    struct vs_bdev *file = NULL, *bs = NULL;
    uint8_t buf[CS];
    int64_t size;

    memset(buf, 0x5a, sizeof(buf));
    if (vs_object_create(st, "good", 0) < 0 ||
        vs_object_open(st, "good", 0, "good", &file) < 0 ||
        vs_format_create("qcow2", file, SIZE, NULL, NULL) < 0 ||
        vs_format_open("qcow2", file, NULL, 0, &bs) < 0)
        return -1;
    vs_bdev_pwrite(bs, buf, sizeof(buf), 0);
    vs_bdev_pwrite(bs, buf, sizeof(buf), 2 * MiB);
    vs_bdev_close(bs);
    if (vs_object_open(st, "good", VS_OPEN_RDONLY, "good", &file) < 0)
        return -1;
    size = vs_bdev_size(file);
    good_len = (size_t)size;
    good = malloc(good_len);
    vs_bdev_pread(file, good, good_len, 0);
    vs_bdev_close(file);
    return 0;
}

int
main(void)
{
    char loc[128];

    if (mkdtemp(base) == NULL) {
        perror(base);
        return 1;
    }
    snprintf(loc, sizeof(loc), "dir:%s/store", base);
    if (vs_store_open(loc, true, &st) < 0 || make_good() < 0) {
        tap_diag("cannot set up at %s", loc);
        return 1;
    }
    is_int(try_open(good, good_len, 0, NULL), 0, "the valid image opens");
    test_header();
    test_tables();
    test_bits();
    free(good);
    vs_store_close(st);
    tu_rm_tree(base);
    return tap_done();
}
