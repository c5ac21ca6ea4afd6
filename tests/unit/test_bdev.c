/*
 * Unit tests of the generic block layer and of the raw format over the dir
 * protocol driver: data round trips, sparse allocation and block status,
 * discard, write_zeroes (native and emulated), truncate, allocate, O_DIRECT
 * requests with misaligned buffers (on /var/tmp, a disk file system: tmpfs
 * would accept them and hide the bug), flush and its sticky error, the
 * fall-through of NULL format callbacks (passthrough formats only), block
 * status merged through a backing chain, copy_range through the storage
 * and through memory, asynchronous submission, and request limits (split
 * reads, writes and zeroes, discards cut to whole granules, the dir
 * driver's values).
 *
 * Besides the real drivers, the tests build stacks by hand with drivers
 * defined here: "mem" (a protocol object in memory whose flush can fail,
 * whose transfers can come up short and whose copy_range declines), "half"
 * (a format layer owning every other 64 KiB block, for backing chains),
 * "old" (a driver whose struct_size ends before flush), "lim" (a mem object
 * with small limits that counts requests breaking them), and two formats
 * registered with vs_driver_register_extra that implement nothing:
 * "test-bare" (not passthrough) and "test-thru" (passthrough).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "vs/bdev.h"
#include "tap.h"
#include "testutil.h"

#define KiB 1024ull
#define MiB (1024ull * 1024)
#define HALF_BLOCK (64 * KiB)
#define MIN(a, b) ((a) < (b) ? (a) : (b))

static char base[64] = "/var/tmp/vstorfs-test-bdev.XXXXXX";
static struct vs_store *st;

/* ---- helpers ---- */

static void
fill(uint8_t *buf, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++)
        buf[i] = (uint8_t)(seed + i * 7 + (i >> 9));
}

/* Create object NAME of SIZE and open it as a raw image. */
static struct vs_bdev *
open_raw(const char *name, uint64_t size, unsigned flags)
{
    struct vs_bdev *file = NULL, *top = NULL;

    if (vs_object_create(st, name, 0) < 0 ||
        vs_object_open(st, name, flags, name, &file) < 0)
        return NULL;
    if (vs_format_create("raw", file, size, NULL, NULL) < 0 ||
        vs_format_open("raw", file, NULL, 0, &top) < 0) {
        vs_bdev_close(file);
        return NULL;
    }
    return top;
}

/* A format layer of driver DRV over FILE with BACKING, built by hand the
 * way vs_format_open would (test drivers are not in the registry). */
static struct vs_bdev *
layer(const struct vs_driver *drv, struct vs_bdev *file,
      struct vs_bdev *backing)
{
    struct vs_bdev *bs = calloc(1, sizeof(*bs));

    bs->drv = drv;
    bs->name = strdup(drv->name);
    bs->file = file;
    bs->backing = backing;
    bs->caps = file->caps;
    return bs;
}

/* ---- the "mem" test driver ---- */

struct mem {
    uint8_t *data;
    size_t size;
    size_t max_io;  /* when not 0: transfer at most this much per call */
    int flush_fail; /* fail this many flushes with -EIO */
    int flush_calls;
    int copy_calls;
    int write_calls;
    int submit_calls;
};

static struct mem *
mem_of(struct vs_bdev *bs)
{
    return bs->opaque;
}

static ssize_t
mem_rw(struct vs_bdev *bs, const struct iovec *iov, int iovcnt, uint64_t off,
       bool write)
{
    struct mem *m = mem_of(bs);
    size_t done = 0, limit;

    if (off >= m->size)
        return write ? -ENOSPC : 0;
    limit = m->size - off;
    if (m->max_io != 0)
        limit = MIN(limit, m->max_io);
    for (int i = 0; i < iovcnt && done < limit; i++) {
        size_t n = MIN(iov[i].iov_len, limit - done);

        if (write)
            memcpy(m->data + off + done, iov[i].iov_base, n);
        else
            memcpy(iov[i].iov_base, m->data + off + done, n);
        done += n;
    }
    m->write_calls += write;
    return (ssize_t)done;
}

static ssize_t
mem_preadv(struct vs_bdev *bs, const struct iovec *iov, int iovcnt,
           uint64_t off, unsigned flags)
{
    (void)flags;
    return mem_rw(bs, iov, iovcnt, off, false);
}

static ssize_t
mem_pwritev(struct vs_bdev *bs, const struct iovec *iov, int iovcnt,
            uint64_t off, unsigned flags)
{
    (void)flags;
    return mem_rw(bs, iov, iovcnt, off, true);
}

static int64_t
mem_get_size(struct vs_bdev *bs)
{
    return (int64_t)mem_of(bs)->size;
}

static int
mem_flush(struct vs_bdev *bs)
{
    struct mem *m = mem_of(bs);

    m->flush_calls++;
    if (m->flush_fail > 0) {
        m->flush_fail--;
        return -EIO;
    }
    return 0;
}

static ssize_t
mem_copy_range(struct vs_bdev *src, uint64_t src_off, struct vs_bdev *dst,
               uint64_t dst_off, uint64_t length)
{
    (void)src_off, (void)dst, (void)dst_off, (void)length;
    mem_of(src)->copy_calls++;
    return -ENOTSUP;
}

static void
mem_close(struct vs_bdev *bs)
{
    struct mem *m = mem_of(bs);

    free(m->data);
    free(m);
}

/* The asynchronous variant takes reads and flushes itself (completing
 * inline, as an event loop would later) and declines the rest. */
static int
mem_submit(struct vs_bdev *bs, struct vs_request *req)
{
    mem_of(bs)->submit_calls++;
    if (req->op == VS_REQ_READ)
        req->complete(req,
                      mem_rw(bs, req->iov, req->iovcnt, req->offset, false));
    else if (req->op == VS_REQ_FLUSH)
        req->complete(req, mem_flush(bs));
    else
        return -ENOTSUP;
    return 0;
}

#define MEM_CALLBACKS                                                          \
    .api_version = VS_DRIVER_API_VERSION,                                      \
    .struct_size = sizeof(struct vs_driver), .kind = VS_DRIVER_PROTOCOL,       \
    .close = mem_close, .get_size = mem_get_size, .preadv = mem_preadv,        \
    .pwritev = mem_pwritev, .flush = mem_flush, .copy_range = mem_copy_range

static const struct vs_driver mem_drv = {.name = "mem", MEM_CALLBACKS};
static const struct vs_driver mem_async_drv = {
    .name = "mem-async", .submit = mem_submit, MEM_CALLBACKS};

static struct vs_bdev *
mem_bdev_drv(const struct vs_driver *drv, size_t size, uint8_t byte)
{
    struct vs_bdev *bs = calloc(1, sizeof(*bs));
    struct mem *m = calloc(1, sizeof(*m));

    m->data = malloc(size);
    memset(m->data, byte, size);
    m->size = size;
    bs->drv = drv;
    bs->name = strdup(drv->name);
    bs->opaque = m;
    return bs;
}

static struct vs_bdev *
mem_bdev(size_t size, uint8_t byte)
{
    return mem_bdev_drv(&mem_drv, size, byte);
}

/* ---- the "half" and "old" test format drivers ---- */

/* Owns the even 64 KiB blocks (as data), leaves the odd ones to the
 * backing layer. */
static int
half_block_status(struct vs_bdev *bs, uint64_t off, uint64_t len,
                  uint64_t *pnum)
{
    uint64_t blk = off / HALF_BLOCK;

    (void)bs;
    *pnum = MIN((blk + 1) * HALF_BLOCK - off, len);
    return blk % 2 == 0 ? VS_BS_ALLOCATED | VS_BS_DATA : 0;
}

static const struct vs_driver half_drv = {
    .api_version = VS_DRIVER_API_VERSION,
    .struct_size = sizeof(struct vs_driver),
    .name = "half",
    .kind = VS_DRIVER_FORMAT,
    .block_status = half_block_status,
};

static int64_t
old_get_size(struct vs_bdev *bs)
{
    (void)bs;
    return 12345;
}

static int
old_flush(struct vs_bdev *bs)
{
    (void)bs;
    return -EIO;
}

/* Built against a shorter struct: flush and everything after it are not
 * there, whatever the pointers say. */
static const struct vs_driver old_drv = {
    .api_version = VS_DRIVER_API_VERSION,
    .struct_size = offsetof(struct vs_driver, flush),
    .name = "old",
    .kind = VS_DRIVER_FORMAT,
    .get_size = old_get_size,
    .flush = old_flush,
    .block_status = half_block_status,
};

/* ---- raw over dir ---- */

static void
test_format_errors(void)
{
    struct vs_bdev *file = NULL, *top = NULL;

    vs_object_create(st, "fmt", 0);
    is_int(vs_object_open(st, "fmt", 0, "fmt", &file), 0, "open fmt");
    if (file == NULL)
        return;
    is_int(vs_format_create("raw", file, MiB, "parent", NULL), -EINVAL,
           "raw create with a backing name is EINVAL");
    is_int(vs_format_create("qcow9", file, MiB, NULL, NULL), -EPROTONOSUPPORT,
           "unknown format");
    is_int(vs_format_open("dir", file, NULL, 0, &top), -EPROTONOSUPPORT,
           "a protocol driver is not a format");
    is_int(vs_format_open("raw", file, file, 0, &top), -EINVAL,
           "raw refuses a backing layer");
    vs_bdev_close(file);
}

static void
test_roundtrip(void)
{
    struct vs_bdev *top = open_raw("rt", MiB, 0);
    uint8_t *in = malloc(256 * KiB), *out = calloc(1, 256 * KiB);
    struct iovec iov[3] = {{out, 1}, {out + 1, 4095}, {out + 4096, 60000}};

    ok(top != NULL, "raw over dir opens");
    if (top == NULL) {
        free(in);
        free(out);
        return;
    }
    is_int(vs_bdev_size(top), MiB, "raw size falls through to the file");
    fill(in, 256 * KiB, 1);
    is_int(vs_bdev_pwrite(top, in, 128 * KiB + 333, 4096 + 123),
           128 * KiB + 333, "write an unaligned range");
    is_int(vs_bdev_pread(top, out, 128 * KiB + 333, 4096 + 123),
           128 * KiB + 333, "read it back");
    ok(memcmp(in, out, 128 * KiB + 333) == 0, "round trip matches");
    memset(out, 0, 256 * KiB);
    is_int(vs_bdev_preadv(top, iov, 3, 4096 + 123, 0), 64096,
           "preadv with three segments");
    ok(memcmp(in, out, 64096) == 0, "segments match");
    memset(out, 0, 256 * KiB);
    vs_bdev_pread(top->file, out, 4096, 4096 + 123);
    ok(memcmp(in, out, 4096) == 0, "the file below holds the same bytes");
    is_int(vs_bdev_pread(top, out, 8192, MiB - 1000), 1000,
           "a read across the end is short");
    is_int(vs_bdev_pread(top, out, 8192, MiB), 0, "a read at the end is 0");
    is_int(vs_bdev_flush(top), 0, "flush");
    is_int(vs_bdev_flush(top), 0, "flush again");
    vs_bdev_close(top);
    free(in);
    free(out);
}

static void
test_rdonly(void)
{
    struct vs_bdev *bs = NULL;
    char buf[512] = {0};

    vs_object_open(st, "rt", VS_OPEN_RDONLY, "rt", &bs);
    is_int(vs_bdev_pread(bs, buf, sizeof(buf), 0), sizeof(buf),
           "read-only open reads");
    is_int(vs_bdev_pwrite(bs, buf, sizeof(buf), 0), -EROFS,
           "read-only open refuses writes");
    is_int(vs_bdev_discard(bs, 0, 4096), -EROFS, "... and discards");
    is_int(vs_bdev_write_zeroes(bs, 0, 4096, 0), -EROFS, "... and zeroes");
    vs_bdev_close(bs);
}

static void
test_sparse(struct vs_bdev *top)
{
    uint8_t buf[4096];
    uint64_t pnum = 0;

    fill(buf, sizeof(buf), 2);
    vs_bdev_pwrite(top, buf, sizeof(buf), 32 * MiB);
    ok(vs_bdev_allocated(top) < 256 * (int64_t)KiB,
       "a 64 MiB image with 4 KiB written stays small (%lld bytes)",
       (long long)vs_bdev_allocated(top));
    if (!top->caps.alloc_status)
        return;
    is_int(vs_bdev_block_status(top, 0, 64 * MiB, &pnum),
           VS_BS_ALLOCATED | VS_BS_ZERO, "the start is a hole");
    is_int(pnum, 32 * MiB, "the hole reaches the data");
    is_int(vs_bdev_block_status(top, 32 * MiB, 32 * MiB, &pnum),
           VS_BS_ALLOCATED | VS_BS_DATA, "then data");
    ok(pnum >= 4096 && pnum < 32 * MiB, "as long as written (%llu)",
       (unsigned long long)pnum);
    is_int(vs_bdev_chain_status(top, 0, 64 * MiB, &pnum),
           VS_BS_ALLOCATED | VS_BS_ZERO, "chain status without a backing");
}

static void
test_discard(struct vs_bdev *top)
{
    uint8_t *buf = malloc(MiB);
    int64_t before, after;
    uint64_t pnum = 0;
    int r;

    fill(buf, MiB, 3);
    vs_bdev_pwrite(top, buf, MiB, 8 * MiB);
    vs_bdev_flush(top);
    before = vs_bdev_allocated(top);
    r = vs_bdev_discard(top, 8 * MiB, MiB);
    if (!top->caps.unmap) {
        is_int(r, -ENOTSUP, "discard without unmap is ENOTSUP");
        free(buf);
        return;
    }
    is_int(r, 0, "discard");
    after = vs_bdev_allocated(top);
    ok(after + (int64_t)MiB <= before, "discard frees space (%lld -> %lld)",
       (long long)before, (long long)after);
    vs_bdev_pread(top, buf, MiB, 8 * MiB);
    ok(tu_is_zero(buf, MiB), "discarded range reads zeros");
    if (top->caps.alloc_status)
        is_int(vs_bdev_block_status(top, 8 * MiB, MiB, &pnum),
               VS_BS_ALLOCATED | VS_BS_ZERO, "and is a hole");
    free(buf);
}

static void
test_write_zeroes(struct vs_bdev *top)
{
    uint8_t *in = malloc(256 * KiB), *out = malloc(256 * KiB);
    int64_t before;

    fill(in, 256 * KiB, 4);
    vs_bdev_pwrite(top, in, 256 * KiB, 16 * MiB);
    is_int(vs_bdev_write_zeroes(top, 16 * MiB + 1000, 100000, 0), 0,
           "write_zeroes of an unaligned range");
    vs_bdev_pread(top, out, 256 * KiB, 16 * MiB);
    ok(memcmp(in, out, 1000) == 0 && tu_is_zero(out + 1000, 100000) &&
           memcmp(in + 101000, out + 101000, 256 * KiB - 101000) == 0,
       "zeros exactly there");
    vs_bdev_flush(top);
    before = vs_bdev_allocated(top);
    is_int(vs_bdev_write_zeroes(top, 16 * MiB, 256 * KiB, VS_IO_MAY_UNMAP), 0,
           "write_zeroes with MAY_UNMAP");
    vs_bdev_pread(top, out, 256 * KiB, 16 * MiB);
    ok(tu_is_zero(out, 256 * KiB), "the range reads zeros");
    if (top->caps.unmap)
        ok(vs_bdev_allocated(top) < before, "and its space is freed");
    free(in);
    free(out);
}

static void
test_truncate_allocate(struct vs_bdev *top)
{
    uint8_t buf[4096];
    int64_t before;

    is_int(vs_bdev_truncate(top, 80 * MiB), 0, "truncate grows");
    is_int(vs_bdev_size(top), 80 * MiB, "to the new size");
    memset(buf, 0xee, sizeof(buf));
    is_int(vs_bdev_pread(top, buf, sizeof(buf), 70 * MiB), sizeof(buf),
           "read in the grown part");
    ok(tu_is_zero(buf, sizeof(buf)), "the grown part reads zeros");
    before = vs_bdev_allocated(top);
    is_int(vs_bdev_allocate(top, 40 * MiB, MiB), 0, "allocate");
    /* ext4 may count a block of the range elsewhere (extent tree): ask
     * for most of it, not all. */
    ok(vs_bdev_allocated(top) >= before + (int64_t)MiB / 2,
       "allocate reserves space");
    is_int(vs_bdev_size(top), 80 * MiB, "allocate keeps the size");
}

static void
test_space(void)
{
    struct vs_bdev *top = open_raw("sparse", 64 * MiB, 0);

    ok(top != NULL, "open a 64 MiB raw image");
    if (top == NULL)
        return;
    test_sparse(top);
    test_discard(top);
    test_write_zeroes(top);
    test_truncate_allocate(top);
    vs_bdev_close(top);
}

/* ---- O_DIRECT ---- */

/* Whether this file system refuses a misaligned O_DIRECT write, which is
 * what makes the direct tests mean something. */
static void
check_fs_refuses_misaligned(uint8_t *aligned_buf)
{
    char path[128];
    int fd, r;

    snprintf(path, sizeof(path), "%s/plain", base);
    fd = open(path, O_RDWR | O_CREAT | O_DIRECT | O_CLOEXEC, 0600);
    r = fd >= 0 ? (int)pwrite(fd, aligned_buf + 1, 4096, 0) : -2;
    ok(r < 0 && errno == EINVAL,
       "%s refuses a misaligned O_DIRECT write by itself", base);
    if (fd >= 0)
        close(fd);
    unlink(path);
}

/* Pages of object NAME's [off, off + len) in the page cache. */
static size_t
cached_pages(const char *name, uint64_t off, size_t len)
{
    long page = sysconf(_SC_PAGESIZE);
    uint64_t start = off - off % (uint64_t)page;
    size_t span = (size_t)(off + len - start), n = 0;
    unsigned char vec[2048];
    char path[128];
    void *map;
    int fd;

    snprintf(path, sizeof(path), "%s/store/%s", base, name);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    map = mmap(NULL, span, PROT_READ, MAP_SHARED, fd, (off_t)start);
    close(fd);
    if (map == MAP_FAILED || span / (size_t)page >= sizeof(vec))
        return (size_t)-1;
    if (mincore(map, span, vec) == 0) {
        for (size_t i = 0; i < (span + (size_t)page - 1) / (size_t)page; i++)
            n += vec[i] & 1;
    }
    munmap(map, span);
    return n;
}

static void
direct_roundtrip(struct vs_bdev *top, uint8_t *mem, size_t len, uint64_t off,
                 size_t skew, const char *what)
{
    uint8_t *out = malloc(len + 8192);
    uint8_t *rbuf = (uint8_t *)(((uintptr_t)out + 4095) & ~(uintptr_t)4095);
    struct iovec w = {mem + skew, len}, r = {rbuf + skew, len};
    bool aligned = off % 4096 == 0 && len % 4096 == 0;

    fill(mem + skew, len, (unsigned)(off + skew));
    ok(vs_bdev_pwritev(top, &w, 1, off, VS_IO_DIRECT) == (ssize_t)len,
       "%s: direct write", what);
    if (aligned)
        is_int(cached_pages("direct", off, len), 0,
               "... bypassed the page cache");
    else
        ok(cached_pages("direct", off, len) > 0,
           "... went through the page cache (unaligned offset)");
    memset(rbuf, 0, len + skew);
    ok(vs_bdev_preadv(top, &r, 1, off, VS_IO_DIRECT) == (ssize_t)len,
       "%s: direct read", what);
    ok(memcmp(mem + skew, rbuf + skew, len) == 0, "%s: data matches", what);
    free(out);
}

static void
test_direct_tail(uint8_t *mem)
{
    struct vs_bdev *tail = open_raw("tail", 70000, VS_OPEN_DIRECT);
    struct iovec a = {mem, 8192}, m = {mem + 1, 8192};

    is_int(vs_bdev_preadv(tail, &a, 1, 65536, VS_IO_DIRECT), 70000 - 65536,
           "direct read across an unaligned end is short");
    is_int(vs_bdev_preadv(tail, &m, 1, 65536, VS_IO_DIRECT), 70000 - 65536,
           "... also through the bounce buffer");
    vs_bdev_close(tail);
}

static void
test_direct_iov(struct vs_bdev *top, uint8_t *mem)
{
    uint8_t *check = malloc(12288);
    struct iovec iov[3] = {
        {mem + 1, 4095}, {mem + 5000, 1}, {mem + 6000, 8192}};

    fill(mem, 16384, 9);
    is_int(vs_bdev_pwritev(top, iov, 3, 256 * KiB, VS_IO_FUA | VS_IO_DIRECT),
           12288, "misaligned three-segment direct FUA write");
    vs_bdev_pread(top, check, 12288, 256 * KiB);
    ok(memcmp(check, mem + 1, 4095) == 0 && check[4095] == mem[5000] &&
           memcmp(check + 4096, mem + 6000, 8192) == 0,
       "segments landed in order");
    free(check);
}

/* Worker N bounces 64 KiB at (N + 8) MiB, 16 times. */
static void *
direct_worker(void *arg)
{
    struct tu_worker *job = arg;
    uint64_t off = (uint64_t)(job->id + 8) * MiB;
    uint8_t *mem = aligned_alloc(4096, 128 * KiB);
    uint8_t *out = calloc(1, 64 * KiB + 1);

    for (int i = 0; i < 16; i++) {
        struct iovec w = {mem + 1 + i, 64 * KiB}, r = {out + 1, 64 * KiB};

        fill(mem + 1 + i, 64 * KiB, (unsigned)i);
        if (vs_bdev_pwritev(job->bs, &w, 1, off, VS_IO_DIRECT) !=
                (ssize_t)(64 * KiB) ||
            vs_bdev_preadv(job->bs, &r, 1, off, VS_IO_DIRECT) !=
                (ssize_t)(64 * KiB) ||
            memcmp(mem + 1 + i, out + 1, 64 * KiB) != 0)
            job->failures++;
    }
    free(mem);
    free(out);
    return NULL;
}

static void
test_direct_threads(struct vs_bdev *top)
{
    is_int(tu_run_workers(top, 4, direct_worker), 0,
           "four threads bouncing misaligned direct I/O");
}

static void
test_direct(void)
{
    uint8_t *mem = aligned_alloc(4096, 4 * MiB + 8192);
    struct vs_bdev *top = open_raw("direct", 16 * MiB, VS_OPEN_DIRECT);

    memset(mem, 0, 4 * MiB + 8192);
    check_fs_refuses_misaligned(mem);
    ok(top != NULL && top->caps.direct, "an O_DIRECT object opens");
    if (top == NULL || !top->caps.direct) {
        vs_bdev_close(top);
        free(mem);
        return;
    }
    direct_roundtrip(top, mem, 128 * KiB, 64 * KiB, 1, "buffer+1");
    direct_roundtrip(top, mem, 128 * KiB, 512 * KiB, 0, "aligned buffer");
    direct_roundtrip(top, mem, 5000, 64 * KiB + 100, 1, "unaligned offset");
    direct_roundtrip(top, mem, 3 * MiB + 4096, 2 * MiB, 3,
                     "3 MiB through the bounce buffer");
    test_direct_iov(top, mem);
    test_direct_threads(top);
    test_direct_tail(mem);
    vs_bdev_close(top);
    free(mem);
}

/* ---- flush, fall-through, chains ---- */

static void
test_sticky_flush(void)
{
    struct vs_bdev *m = mem_bdev(MiB, 0), *top = NULL;

    mem_of(m)->flush_fail = 1;
    is_int(vs_bdev_flush(m), -EIO, "a failing flush fails");
    is_int(vs_bdev_flush(m), -EIO, "and stays failed");
    is_int(mem_of(m)->flush_calls, 1, "without asking the driver again");
    vs_bdev_close(m);

    m = mem_bdev(MiB, 0);
    mem_of(m)->flush_fail = 1;
    is_int(vs_format_open("raw", m, NULL, 0, &top), 0, "raw over mem");
    is_int(vs_bdev_flush(top), -EIO, "flush through raw fails");
    is_int(vs_bdev_flush(top), -EIO, "and stays failed on the top");
    is_int(mem_of(m)->flush_calls, 1, "the driver was asked once");
    vs_bdev_close(top);
}

static void
test_fall_through(void)
{
    struct vs_bdev *file = NULL, *old;
    uint8_t buf[16] = {0};
    uint64_t pnum = 0;

    vs_object_create(st, "old", 256 * KiB);
    vs_object_open(st, "old", 0, "old", &file);
    vs_bdev_pwrite(file, "through", 7, 100);
    old = layer(&old_drv, file, NULL);
    is_int(vs_bdev_size(old), 12345, "a callback within struct_size is used");
    is_int(vs_bdev_flush(old), 0,
           "a callback past struct_size is NULL: flush falls through");
    is_int(vs_bdev_pread(old, buf, 7, 100), -ENOTSUP,
           "an older format is never passthrough: NULL preadv is ENOTSUP");
    ok(memcmp(buf, "through", 7) != 0, "and no byte of the file came up");
    is_int(vs_bdev_block_status(old, 128 * KiB, 64 * KiB, &pnum),
           VS_BS_ALLOCATED | VS_BS_DATA,
           "a hidden block_status is emulated, not the file's hole");
    vs_bdev_close(old);
}

/* A raw image of 256 KiB with data in its second 64 KiB block only. */
static struct vs_bdev *
chain_base(void)
{
    struct vs_bdev *b = open_raw("base", 256 * KiB, 0);
    uint8_t *buf = malloc(HALF_BLOCK);

    fill(buf, HALF_BLOCK, 5);
    vs_bdev_pwrite(b, buf, HALF_BLOCK, HALF_BLOCK);
    free(buf);
    return b;
}

static void
expect_chain(struct vs_bdev *bs, uint64_t off, uint64_t len, int want,
             uint64_t want_pnum, const char *what)
{
    uint64_t pnum = 0;
    int r = vs_bdev_chain_status(bs, off, len, &pnum);

    ok(r == want && pnum == want_pnum, "%s (status %d, %llu bytes)", what, r,
       (unsigned long long)pnum);
}

static void
test_chain_status(void)
{
    struct vs_bdev *file = NULL, *top;
    bool holes;

    vs_object_create(st, "top", 512 * KiB);
    vs_object_open(st, "top", 0, "top", &file);
    top = layer(&half_drv, file, chain_base());
    holes = top->backing->caps.alloc_status;
    expect_chain(top, 0, 512 * KiB, VS_BS_ALLOCATED | VS_BS_DATA, HALF_BLOCK,
                 "chain: the top owns block 0");
    expect_chain(top, HALF_BLOCK, 512 * KiB, VS_BS_ALLOCATED | VS_BS_DATA,
                 HALF_BLOCK, "chain: block 1 is the backing's data");
    expect_chain(top, HALF_BLOCK + 100, 1000, VS_BS_ALLOCATED | VS_BS_DATA,
                 1000, "chain: a short range stays short");
    expect_chain(top, 3 * HALF_BLOCK, 512 * KiB,
                 holes ? VS_BS_ALLOCATED | VS_BS_ZERO
                       : VS_BS_ALLOCATED | VS_BS_DATA,
                 HALF_BLOCK, "chain: block 3 is the backing's hole");
    expect_chain(top, 5 * HALF_BLOCK, 512 * KiB, VS_BS_ZERO, HALF_BLOCK,
                 "chain: past the backing's end nobody owns it");
    vs_bdev_close(vs_bdev_detach_backing(top));
    expect_chain(top, HALF_BLOCK, 512 * KiB, VS_BS_ZERO, HALF_BLOCK,
                 "chain: without a backing an unowned block is zero");
    vs_bdev_close(top);
}

/* A layer opened over a backing freezes it: writes through the backing
 * fail until it is detached (then it is the caller's, writable again). */
static void
test_frozen_backing(void)
{
    struct vs_bdev *parent = open_raw("frozen-base", 64 * KiB, 0);
    struct vs_bdev *file = NULL, *top = NULL;
    char byte = 1;

    ok(vs_bdev_pwrite(parent, &byte, 1, 0) == 1,
       "frozen: a lone layer is writable");
    vs_object_create(st, "frozen-top", 0);
    vs_object_open(st, "frozen-top", 0, "frozen-top", &file);
    ok(vs_format_create("qcow2", file, 64 * KiB, "frozen-base", "raw") == 0 &&
           vs_format_open("qcow2", file, parent, 0, &top) == 0,
       "frozen: a qcow2 layer opens over it");
    ok(vs_bdev_pwrite(parent, &byte, 1, 0) == -EROFS,
       "frozen: once it is a backing it refuses writes (EROFS)");
    ok(vs_bdev_pwrite(top, &byte, 1, 0) == 1, "frozen: the top takes them");
    ok(vs_bdev_detach_backing(top) == parent && top->backing == NULL,
       "frozen: detaching hands the backing back");
    ok(vs_bdev_pwrite(parent, &byte, 1, 0) == 1,
       "frozen: detached, it is writable again");
    vs_bdev_close(top);
    vs_bdev_close(parent);
}

/* Objects never grow by being written: the generic layer refuses a write,
 * a zeroing or an allocation past a protocol object's end (EINVAL, nothing
 * written), and vs_bdev_extend grows an object, rounded to its
 * grow_granularity, never shrinking it. */
static void
test_no_implicit_growth(void)
{
    struct vs_bdev *raw = open_raw("nogrow", 64 * KiB, 0);
    struct vs_bdev *obj = raw != NULL ? raw->file : NULL;
    char byte = 7;

    if (obj == NULL) {
        ok(false, "growth: a raw object");
        return;
    }
    ok(obj->size_lock != NULL && obj->object_size == 64 * KiB,
       "growth: the object's size is known from its open");
    is_int(vs_bdev_pwrite(raw, &byte, 1, 64 * KiB), -EINVAL,
           "growth: a write at the end is refused (EINVAL)");
    is_int(vs_bdev_pwrite(raw, &byte, 2, 64 * KiB - 1), -EINVAL,
           "growth: ... and one that crosses it");
    is_int(vs_bdev_write_zeroes(raw, 60 * KiB, 8 * KiB, 0), -EINVAL,
           "growth: ... and zeroing across it");
    is_int(vs_bdev_size(raw), 64 * KiB, "growth: the object did not grow");
    is_int(vs_bdev_pwrite(raw, &byte, 1, 64 * KiB - 1), 1,
           "growth: the last byte takes a write");
    obj->limits.grow_granularity = 4 * KiB;
    is_int(vs_bdev_extend(raw, 65 * KiB, 0), 68 * KiB,
           "growth: extend rounds up to the grow granularity");
    is_int(vs_bdev_size(raw), 68 * KiB, "growth: ... and the object has it");
    is_int(vs_bdev_extend(raw, 66 * KiB, 100 * KiB), 68 * KiB,
           "growth: extend to less than the size changes nothing");
    is_int(vs_bdev_extend(raw, 70 * KiB, 100 * KiB), 100 * KiB,
           "growth: extend takes the whole chunk wanted when it can");
    is_int(vs_bdev_pwrite(raw, &byte, 1, 99 * KiB), 1,
           "growth: the grown part takes writes");
    is_int(vs_bdev_truncate(raw, 64 * KiB), 0, "growth: truncate shrinks it");
    is_int(vs_bdev_pwrite(raw, &byte, 1, 99 * KiB), -EINVAL,
           "growth: past the new end, writes are refused again");
    vs_bdev_close(raw);
}

/* ---- copy ---- */

static void
test_copy_storage(void)
{
    struct vs_bdev *src = open_raw("csrc", MiB, 0);
    struct vs_bdev *dst = open_raw("cdst", MiB, 0);
    uint8_t *in = malloc(300 * KiB), *out = malloc(300 * KiB);

    fill(in, 300 * KiB, 6);
    vs_bdev_pwrite(src, in, 300 * KiB, 0);
    is_int(vs_bdev_copy_range(src, 0, dst, 4096, 300 * KiB), 300 * KiB,
           "copy_range dir to dir");
    vs_bdev_pread(dst, out, 300 * KiB, 4096);
    ok(memcmp(in, out, 300 * KiB) == 0, "the copy matches");
    is_int(vs_bdev_copy_range(src, MiB - 1000, dst, 0, 8192), 1000,
           "a copy across the source's end is short");
    vs_bdev_close(src);
    vs_bdev_close(dst);
    free(in);
    free(out);
}

static void
test_copy_memory(void)
{
    struct vs_bdev *src = open_raw("msrc", MiB, 0);
    struct vs_bdev *m1 = mem_bdev(3 * MiB, 0), *m2 = mem_bdev(3 * MiB, 0);
    uint8_t *in = malloc(3 * MiB);

    fill(in, 300 * KiB, 7);
    vs_bdev_pwrite(src, in, 300 * KiB, 0);
    is_int(vs_bdev_copy_range(src, 0, m1, 100, 300 * KiB), 300 * KiB,
           "copy_range dir to mem goes through memory");
    ok(memcmp(mem_of(m1)->data + 100, in, 300 * KiB) == 0, "it matches");
    is_int(mem_of(m1)->copy_calls, 0, "different drivers: no offload asked");
    fill(mem_of(m1)->data, 3 * MiB, 8);
    mem_of(m1)->max_io = 4096;
    is_int(vs_bdev_copy_range(m1, 0, m2, 0, 2 * MiB + 5), 2 * MiB + 5,
           "mem to mem with short transfers");
    ok(memcmp(mem_of(m1)->data, mem_of(m2)->data, 2 * MiB + 5) == 0,
       "it matches");
    is_int(mem_of(m1)->copy_calls, 1, "the offload was asked and declined");
    is_int(vs_bdev_copy_range(m1, 3 * MiB - 100, m2, 0, MiB), 100,
           "a memory copy across the source's end is short");
    vs_bdev_close(src);
    vs_bdev_close(m1);
    vs_bdev_close(m2);
    free(in);
}

/* ---- emulation and submission ---- */

static void
test_emulation(void)
{
    struct vs_bdev *m = mem_bdev(3 * MiB, 0xff);
    const uint8_t *d = mem_of(m)->data;
    uint8_t buf[64 * 1024];
    uint64_t pnum = 0;

    is_int(vs_bdev_write_zeroes(m, 100, 2 * MiB + 500 * KiB, 0), 0,
           "write_zeroes emulated by writing zeros");
    ok(d[99] == 0xff && tu_is_zero(d + 100, 2 * MiB + 500 * KiB) &&
           d[100 + 2 * MiB + 500 * KiB] == 0xff,
       "exactly the range is zero");
    ok(mem_of(m)->write_calls >= 3, "in bounded chunks (%d writes)",
       mem_of(m)->write_calls);
    is_int(vs_bdev_discard(m, 0, 4096), -ENOTSUP, "discard: ENOTSUP");
    is_int(vs_bdev_allocate(m, 0, 4096), -ENOTSUP, "allocate: ENOTSUP");
    is_int(vs_bdev_block_status(m, 0, MiB, &pnum), VS_BS_ALLOCATED | VS_BS_DATA,
           "default block status");
    is_int(pnum, MiB, "for the whole range");
    mem_of(m)->max_io = 1000;
    memset(mem_of(m)->data, 0x11, 3 * MiB);
    is_int(vs_bdev_pread(m, buf, sizeof(buf), 0), sizeof(buf),
           "pread loops over short reads");
    is_int(vs_bdev_pwrite(m, buf, sizeof(buf), MiB), sizeof(buf),
           "pwrite loops over short writes");
    vs_bdev_close(m);
}

struct completion {
    int calls;
    ssize_t ret;
};

static void
on_complete(struct vs_request *req, ssize_t ret)
{
    struct completion *c = req->opaque;

    c->calls++;
    c->ret = ret;
}

static struct completion
run(struct vs_bdev *bs, enum vs_req_op op, void *buf, size_t len, uint64_t off)
{
    struct completion c = {0, 0};
    struct iovec iov = {buf, len};
    struct vs_request req = {.op = op,
                             .offset = off,
                             .length = len,
                             .iov = &iov,
                             .iovcnt = 1,
                             .complete = on_complete,
                             .opaque = &c};

    vs_bdev_submit(bs, &req);
    return c;
}

static void
test_submit_sync(void)
{
    struct vs_bdev *top = open_raw("sub", MiB, 0);
    uint8_t buf[8192];
    struct completion c;

    fill(buf, sizeof(buf), 10);
    c = run(top, VS_REQ_WRITE, buf, sizeof(buf), 4096);
    ok(c.calls == 1 && c.ret == sizeof(buf), "submit write: done once");
    memset(buf, 0, sizeof(buf));
    c = run(top, VS_REQ_READ, buf, sizeof(buf), MiB - 4096);
    ok(c.calls == 1 && c.ret == 4096, "submit read at the end: short once");
    c = run(top, VS_REQ_WRITE_ZEROES, NULL, 4096, 0);
    ok(c.calls == 1 && c.ret == 0, "submit write_zeroes");
    c = run(top, VS_REQ_DISCARD, NULL, 4096, 0);
    ok(c.calls == 1 && (c.ret == 0 || c.ret == -ENOTSUP), "submit discard");
    c = run(top, VS_REQ_FLUSH, NULL, 0, 0);
    ok(c.calls == 1 && c.ret == 0, "submit flush");
    vs_bdev_close(top);
}

static void
test_submit_async(void)
{
    struct vs_bdev *m = mem_bdev_drv(&mem_async_drv, MiB, 0x22), *top = NULL;
    uint8_t buf[4096];
    struct completion c;

    vs_format_open("raw", m, NULL, 0, &top);
    c = run(top, VS_REQ_READ, buf, sizeof(buf), 0);
    ok(c.calls == 1 && c.ret == sizeof(buf) && buf[0] == 0x22,
       "async read through raw reaches the driver's submit");
    is_int(mem_of(m)->submit_calls, 1, "the driver took it");
    c = run(top, VS_REQ_WRITE, buf, sizeof(buf), 0);
    ok(c.calls == 1 && c.ret == sizeof(buf), "declined write runs inline");
    mem_of(m)->flush_fail = 1;
    c = run(top, VS_REQ_FLUSH, NULL, 0, 0);
    ok(c.calls == 1 && c.ret == -EIO, "async flush fails once");
    is_int(vs_bdev_flush(top), -EIO, "and the failure sticks");
    c = run(top, VS_REQ_FLUSH, NULL, 0, 0);
    ok(c.calls == 1 && c.ret == -EIO, "also for submitted flushes");
    is_int(mem_of(m)->flush_calls, 1, "the driver flushed once");
    vs_bdev_close(top);
}

/* ---- passthrough or not: what a NULL format callback means ---- */

static int
bare_open(struct vs_bdev *bs)
{
    bs->opaque = NULL;
    return 0;
}

/* A format that maps offsets but implements nothing: every NULL callback
 * must be emulated or refused, never answered by the file. */
static const struct vs_driver bare_drv = {
    .api_version = VS_DRIVER_API_VERSION,
    .struct_size = sizeof(struct vs_driver),
    .name = "test-bare",
    .kind = VS_DRIVER_FORMAT,
    .open = bare_open,
};

/* The same, declared an identity layer. */
static const struct vs_driver thru_drv = {
    .api_version = VS_DRIVER_API_VERSION,
    .struct_size = sizeof(struct vs_driver),
    .name = "test-thru",
    .kind = VS_DRIVER_FORMAT,
    .open = bare_open,
    .passthrough = true,
};

/* Object NAME of 1 MiB holding "file bytes" at 4096, opened as FORMAT. */
static struct vs_bdev *
open_over_file(const char *format, const char *name)
{
    struct vs_bdev *file = NULL, *top = NULL;

    vs_object_create(st, name, MiB);
    if (vs_object_open(st, name, 0, name, &file) < 0)
        return NULL;
    vs_bdev_pwrite(file, "file bytes", 10, 4096);
    if (vs_format_open(format, file, NULL, 0, &top) < 0) {
        vs_bdev_close(file);
        return NULL;
    }
    return top;
}

static void
bare_data(struct vs_bdev *bare)
{
    char buf[16] = {0};
    struct iovec iov = {buf, 10};
    struct completion c;

    is_int(vs_bdev_preadv(bare, &iov, 1, 4096, 0), -ENOTSUP,
           "non-passthrough format without preadv: ENOTSUP");
    ok(memcmp(buf, "file bytes", 10) != 0, "the file's bytes never came up");
    is_int(vs_bdev_pwritev(bare, &iov, 1, 4096, 0), -ENOTSUP,
           "... without pwritev: ENOTSUP");
    is_int(vs_bdev_write_zeroes(bare, 0, 4096, 0), -ENOTSUP,
           "... write_zeroes emulated through its (missing) pwritev");
    c = run(bare, VS_REQ_READ, buf, 10, 4096);
    ok(c.calls == 1 && c.ret == -ENOTSUP, "... a submitted read: ENOTSUP");
    is_int(vs_bdev_copy_range(bare, 4096, bare->file, 0, 10), -ENOTSUP,
           "... copy_range from it goes through memory: ENOTSUP");
}

static void
bare_rest(struct vs_bdev *bare)
{
    uint64_t pnum = 0;

    is_int(vs_bdev_size(bare), -ENOTSUP, "... without get_size: ENOTSUP");
    is_int(vs_bdev_truncate(bare, 2 * MiB), -ENOTSUP,
           "... without truncate: ENOTSUP");
    is_int(vs_bdev_size(bare->file), MiB, "and the file kept its size");
    is_int(vs_bdev_discard(bare, 0, 64 * KiB), -ENOTSUP,
           "... without discard: ENOTSUP");
    is_int(vs_bdev_allocate(bare, 0, 64 * KiB), -ENOTSUP,
           "... without allocate: ENOTSUP");
    is_int(vs_bdev_block_status(bare, 512 * KiB, 64 * KiB, &pnum),
           VS_BS_ALLOCATED | VS_BS_DATA,
           "... without block_status: allocated data (not the file's hole)");
    ok(vs_bdev_allocated(bare) == vs_bdev_allocated(bare->file),
       "its storage use is its file's (a storage question falls through)");
    is_int(vs_bdev_flush(bare), 0, "flush reaches the file");
}

static void
test_passthrough_flag(void)
{
    struct vs_bdev *bare, *thru;
    char buf[16] = {0};

    ok(vs_driver_register_extra(&bare_drv) == 0 &&
           vs_driver_register_extra(&thru_drv) == 0,
       "register the test formats");
    ok(vs_driver_find("raw")->passthrough, "raw is a passthrough format");
    ok(!vs_driver_find("qcow2")->passthrough, "qcow2 is not");
    bare = open_over_file("test-bare", "bare");
    ok(bare != NULL, "open a non-passthrough format over a file");
    if (bare != NULL) {
        bare_data(bare);
        bare_rest(bare);
    }
    vs_bdev_close(bare);
    thru = open_over_file("test-thru", "thru");
    ok(thru != NULL, "open a passthrough format over a file");
    if (thru == NULL)
        return;
    is_int(vs_bdev_pread(thru, buf, 10, 4096), 10,
           "passthrough: a NULL preadv reads the file");
    ok(memcmp(buf, "file bytes", 10) == 0, "at the same offsets");
    is_int(vs_bdev_size(thru), MiB, "and its size is the file's");
    vs_bdev_close(thru);
}

/* ---- request limits ---- */

/* "lim": a mem object with small limits that counts what breaks them. */
#define LIM_MAX (8 * KiB)
#define LIM_ALIGN 512
#define LIM_GRAN (16 * KiB)
#define LIM_GRAN_OFF (4 * KiB)

struct lim_seen {
    uint64_t biggest;  /* the longest request of any kind */
    int over;          /* requests longer than LIM_MAX */
    int cut_unaligned; /* a piece of a split that ended off alignment */
    int bad_discards;  /* discards not made of whole granules */
    int discards, zeroes;
};

static struct lim_seen lim_seen;

static void
lim_note(uint64_t off, uint64_t len, bool last_piece)
{
    lim_seen.biggest = len > lim_seen.biggest ? len : lim_seen.biggest;
    lim_seen.over += len > LIM_MAX;
    lim_seen.cut_unaligned += !last_piece && (off + len) % LIM_ALIGN != 0;
}

static size_t
iov_len(const struct iovec *iov, int iovcnt)
{
    size_t n = 0;

    for (int i = 0; i < iovcnt; i++)
        n += iov[i].iov_len;
    return n;
}

static ssize_t
lim_preadv(struct vs_bdev *bs, const struct iovec *iov, int iovcnt,
           uint64_t off, unsigned flags)
{
    size_t len = iov_len(iov, iovcnt);

    lim_note(off, len, len < LIM_MAX);
    return mem_preadv(bs, iov, iovcnt, off, flags);
}

static ssize_t
lim_pwritev(struct vs_bdev *bs, const struct iovec *iov, int iovcnt,
            uint64_t off, unsigned flags)
{
    size_t len = iov_len(iov, iovcnt);

    lim_note(off, len, len < LIM_MAX);
    return mem_pwritev(bs, iov, iovcnt, off, flags);
}

static int
lim_discard(struct vs_bdev *bs, uint64_t off, uint64_t len)
{
    lim_seen.discards++;
    lim_note(off, len, true);
    if (off % LIM_GRAN != LIM_GRAN_OFF || len % LIM_GRAN != 0)
        lim_seen.bad_discards++;
    memset(mem_of(bs)->data + off, 0, len);
    return 0;
}

static int
lim_write_zeroes(struct vs_bdev *bs, uint64_t off, uint64_t len, unsigned flags)
{
    (void)flags;
    lim_seen.zeroes++;
    lim_note(off, len, len < LIM_MAX);
    memset(mem_of(bs)->data + off, 0, len);
    return 0;
}

static const struct vs_driver lim_drv = {
    .api_version = VS_DRIVER_API_VERSION,
    .struct_size = sizeof(struct vs_driver),
    .name = "lim",
    .kind = VS_DRIVER_PROTOCOL,
    .close = mem_close,
    .get_size = mem_get_size,
    .preadv = lim_preadv,
    .pwritev = lim_pwritev,
    .discard = lim_discard,
    .write_zeroes = lim_write_zeroes,
};

/* raw over a 1 MiB "lim" object filled with BYTE. */
static struct vs_bdev *
lim_stack(uint8_t byte)
{
    struct vs_bdev *m = mem_bdev_drv(&lim_drv, MiB, byte), *top = NULL;

    m->limits = (struct vs_limits){.request_alignment = LIM_ALIGN,
                                   .max_transfer = LIM_MAX,
                                   .discard_granularity = LIM_GRAN,
                                   .discard_alignment = LIM_GRAN_OFF};
    if (vs_format_open("raw", m, NULL, 0, &top) < 0) {
        vs_bdev_close(m);
        return NULL;
    }
    return top;
}

static void
test_limits_rw(void)
{
    struct vs_bdev *top = lim_stack(0);
    uint8_t *in = malloc(300 * KiB), *out = calloc(1, 300 * KiB);
    struct iovec iov[3] = {{out, 1000}, {out + 1000, 77}, {out + 1077, 99000}};

    memset(&lim_seen, 0, sizeof(lim_seen));
    is_int(top->limits.max_transfer, LIM_MAX,
           "raw takes over its file's limits");
    fill(in, 300 * KiB, 11);
    is_int(vs_bdev_pwrite(top, in, 300 * KiB, 1001), 300 * KiB,
           "a 300 KiB write over an 8 KiB limit");
    is_int(vs_bdev_pread(top, out, 300 * KiB, 1001), 300 * KiB, "read it back");
    ok(memcmp(in, out, 300 * KiB) == 0, "the data round-trips intact");
    memset(out, 0, 300 * KiB);
    is_int(vs_bdev_preadv(top, iov, 3, 1001, 0), 100077,
           "a three-segment preadv across many pieces");
    ok(memcmp(in, out, 100077) == 0, "its segments are filled in order");
    is_int(vs_bdev_pread(top, out, 64 * KiB, MiB - 20000), 20000,
           "a split read across the end is short");
    is_int(lim_seen.over, 0, "no request exceeded the driver's limit");
    is_int(lim_seen.biggest, LIM_MAX, "the pieces were as big as allowed");
    is_int(lim_seen.cut_unaligned, 0,
           "every cut fell on the request alignment");
    vs_bdev_close(top);
    free(in);
    free(out);
}

static void
test_limits_discard(void)
{
    struct vs_bdev *top = lim_stack(0xaa);
    const uint8_t *d = mem_of(top->file)->data;
    uint64_t off = 1000, len = 100 * KiB;

    memset(&lim_seen, 0, sizeof(lim_seen));
    is_int(vs_bdev_discard(top, off, len), 0, "an unaligned discard");
    ok(lim_seen.discards > 0, "the whole granules were discarded (%d calls)",
       lim_seen.discards);
    is_int(lim_seen.bad_discards, 0, "only whole granules reached discard");
    ok(lim_seen.zeroes > 0, "the head and tail were zeroed instead");
    ok(d[off - 1] == 0xaa && tu_is_zero(d + off, len) && d[off + len] == 0xaa,
       "exactly the range reads zeros");
    memset(&lim_seen, 0, sizeof(lim_seen));
    is_int(vs_bdev_discard(top, 5 * KiB, 2 * KiB), 0,
           "a discard inside one granule");
    ok(lim_seen.discards == 0 && tu_is_zero(d + 5 * KiB, 2 * KiB),
       "is zeroed, not discarded");
    memset(&lim_seen, 0, sizeof(lim_seen));
    is_int(vs_bdev_write_zeroes(top, 3, 200 * KiB, 0), 0,
           "a 200 KiB write_zeroes");
    is_int(lim_seen.over, 0, "reached the driver in pieces within the limit");
    is_int(lim_seen.cut_unaligned, 0, "cut at the request alignment");
    vs_bdev_close(top);
}

/* The dir driver says what its file system does. */
static void
test_limits_dir(void)
{
    struct vs_bdev *bs = NULL, *dbs = NULL;
    struct statvfs sv;
    uint32_t a;

    vs_object_create(st, "limits", MiB);
    vs_object_open(st, "limits", 0, "limits", &bs);
    vs_object_open(st, "limits", VS_OPEN_DIRECT, "limits", &dbs);
    if (bs == NULL || dbs == NULL || statvfs(base, &sv) < 0) {
        ok(false, "open the limits object twice");
        vs_bdev_close(bs);
        vs_bdev_close(dbs);
        return;
    }
    is_int(bs->limits.request_alignment, 512, "dir: buffered alignment 512");
    is_int(bs->limits.max_transfer, 0x7ffff000,
           "dir: Linux's largest read or write");
    is_int(bs->limits.discard_granularity, sv.f_frsize,
           "dir: discard granularity is the file system's block");
    is_int(bs->limits.grow_granularity, 1, "dir: grows by any byte count");
    a = dbs->limits.request_alignment;
    ok(!dbs->caps.direct || (a >= 512 && (a & (a - 1)) == 0 && a <= 4096),
       "dir: O_DIRECT alignment is the logical block (%u)", a);
    vs_bdev_close(bs);
    vs_bdev_close(dbs);
}

int
main(void)
{
    if (tu_scratch_open(base, &st) < 0)
        return 1;
    test_format_errors();
    test_roundtrip();
    test_rdonly();
    test_space();
    test_direct();
    test_sticky_flush();
    test_fall_through();
    test_chain_status();
    test_frozen_backing();
    test_no_implicit_growth();
    test_copy_storage();
    test_copy_memory();
    test_emulation();
    test_submit_sync();
    test_submit_async();
    test_passthrough_flag();
    test_limits_rw();
    test_limits_discard();
    test_limits_dir();
    tu_scratch_close(st);
    return tap_done();
}
