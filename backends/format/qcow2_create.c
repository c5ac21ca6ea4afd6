/*
 * Creating a qcow2 version 3 image on an empty file object.
 *
 * Layout, in clusters: the header (with the backing-format extension and
 * the backing file name after the extension area, as QEMU writes them),
 * then the refcount table, the refcount blocks, and the L1 table sized for
 * the virtual size.  Refcounts are 16 bits wide.  The table and block
 * counts are found by iterating until the blocks cover every metadata
 * cluster, including themselves.  Every metadata cluster has refcount 1,
 * nothing else is allocated, so `qemu-img check` finds the fresh image
 * clean.  The file is sized first (the L1 table is then zeros, thin where
 * the storage can be), the refcount structures are written, the header
 * last, then the file is flushed: a crash leaves no valid-looking image
 * with bad tables.  With extended L2 entries (subclusters) the header
 * carries incompatible feature bit 4 and each L2 table maps half as many
 * clusters, so the L1 table is sized for that.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vs/bdev.h"
#include "vs/util.h"
#include "qcow2.h"

struct layout {
    uint64_t cs;
    uint64_t l1_entries;
    uint64_t l1_clusters;
    uint64_t rt_clusters;
    uint64_t rb_count;
    uint64_t total; /* clusters */
};

static uint64_t
div_up(uint64_t a, uint64_t b)
{
    return a / b + (a % b != 0);
}

static void
plan(struct layout *l, uint64_t size, uint32_t cb, bool extl2)
{
    uint64_t rb_entries = l->cs * 8 / 16;

    l->l1_entries = qcow2_l1_needed(size, cb, cb - (extl2 ? 4 : 3));
    l->l1_clusters = div_up(l->l1_entries * 8, l->cs);
    l->rt_clusters = 1;
    l->rb_count = 1;
    for (;;) {
        uint64_t total = 1 + l->rt_clusters + l->rb_count + l->l1_clusters;
        uint64_t rb = div_up(total, rb_entries);
        uint64_t rt = div_up(rb * 8, l->cs);

        l->total = total;
        if (rb == l->rb_count && rt == l->rt_clusters)
            break;
        l->rb_count = rb;
        l->rt_clusters = rt;
    }
}

/* Write the refcount table and blocks: every cluster of the layout is 1. */
static int
write_refcounts(struct vs_bdev *file, const struct layout *l)
{
    uint64_t rt_off = l->cs, rb_off = l->cs * (1 + l->rt_clusters);
    uint64_t rb_entries = l->cs / 2;
    _cleanup_free_ uint8_t *buf = calloc(1, l->cs);
    ssize_t n;

    if (buf == NULL)
        return -ENOMEM;
    for (uint64_t b = 0; b < l->rb_count; b++) {
        memset(buf, 0, l->cs);
        for (uint64_t i = 0; i < rb_entries; i++) {
            if (b * rb_entries + i < l->total)
                buf[2 * i + 1] = 1; /* big-endian 16-bit 1 */
        }
        n = vs_bdev_pwrite(file, buf, l->cs, rb_off + b * l->cs);
        if (n < 0)
            return (int)n;
    }
    for (uint64_t c = 0; c < l->rt_clusters; c++) {
        memset(buf, 0, l->cs);
        for (uint64_t i = 0; i < l->cs / 8; i++) {
            uint64_t b = c * (l->cs / 8) + i;

            if (b < l->rb_count)
                qcow2_put64(buf + 8 * i, rb_off + b * l->cs);
        }
        n = vs_bdev_pwrite(file, buf, l->cs, rt_off + c * l->cs);
        if (n < 0)
            return (int)n;
    }
    return 0;
}

/* Bytes the header cluster needs for the extensions and backing name. */
static uint64_t
header_bytes(const char *backing_name, const char *backing_format)
{
    uint64_t n = QCOW2_HEADER_CREATE + 8; /* header, end marker */

    if (backing_format != NULL)
        n += 8 + ((strlen(backing_format) + 7) & ~(size_t)7);
    if (backing_name != NULL)
        n += strlen(backing_name);
    return n;
}

static void
encode_header(uint8_t *b, const struct layout *l, uint64_t size, uint32_t cb,
              bool extl2, const char *backing_name, const char *backing_format)
{
    uint64_t pos = QCOW2_HEADER_CREATE;

    qcow2_put32(b, QCOW2_MAGIC);
    qcow2_put32(b + 4, 3);
    qcow2_put32(b + 20, cb);
    qcow2_put64(b + 72, extl2 ? QCOW2_INCOMPAT_EXTL2 : 0);
    qcow2_put64(b + 24, size);
    qcow2_put32(b + 36, (uint32_t)l->l1_entries);
    qcow2_put64(b + 40,
                l->l1_entries ? l->cs * (1 + l->rt_clusters + l->rb_count) : 0);
    qcow2_put64(b + 48, l->cs);
    qcow2_put32(b + 56, (uint32_t)l->rt_clusters);
    qcow2_put32(b + 96, 4); /* refcount_order: 16 bits */
    qcow2_put32(b + 100, QCOW2_HEADER_CREATE);
    if (backing_format != NULL) {
        size_t len = strlen(backing_format);

        qcow2_put32(b + pos, QCOW2_EXT_BACKING_FORMAT);
        qcow2_put32(b + pos + 4, (uint32_t)len);
        memcpy(b + pos + 8, backing_format, len);
        pos += 8 + ((len + 7) & ~(size_t)7);
    }
    pos += 8; /* the end-of-extensions marker: zeros */
    if (backing_name != NULL) {
        size_t len = strlen(backing_name);

        qcow2_put64(b + 8, pos);
        qcow2_put32(b + 16, (uint32_t)len);
        memcpy(b + pos, backing_name, len);
    }
}

static int
check_args(uint64_t size, uint32_t cb, bool extl2, const char *backing_name,
           const char *backing_format)
{
    if (cb < (extl2 ? QCOW2_EXTL2_MIN_CLUSTER_BITS : QCOW2_MIN_CLUSTER_BITS) ||
        cb > QCOW2_MAX_CLUSTER_BITS)
        return -EINVAL;
    if (size > INT64_MAX ||
        qcow2_l1_needed(size, cb, cb - (extl2 ? 4 : 3)) * 8 >
            QCOW2_MAX_L1_BYTES)
        return -EFBIG;
    if (backing_format != NULL && backing_name == NULL)
        return -EINVAL;
    if (backing_name != NULL && (backing_name[0] == '\0' ||
                                 strlen(backing_name) > QCOW2_MAX_BACKING_NAME))
        return -EINVAL;
    if (backing_format != NULL &&
        (backing_format[0] == '\0' ||
         strlen(backing_format) > QCOW2_MAX_BACKING_NAME))
        return -EINVAL;
    if (header_bytes(backing_name, backing_format) > (1ull << cb))
        return -ENAMETOOLONG;
    return 0;
}

int
qcow2_create_image(struct vs_bdev *file, uint64_t size, uint32_t cluster_bits,
                   bool extl2, const char *backing_name,
                   const char *backing_format)
{
    struct layout l = {.cs = 1ull << cluster_bits};
    _cleanup_free_ uint8_t *hdr = NULL;
    int r = check_args(size, cluster_bits, extl2, backing_name, backing_format);
    ssize_t n;

    if (r < 0)
        return r;
    plan(&l, size, cluster_bits, extl2);
    hdr = calloc(1, l.cs);
    if (hdr == NULL)
        return -ENOMEM;
    r = vs_bdev_truncate(file, 0);
    if (r == 0)
        r = vs_bdev_truncate(file, l.total * l.cs);
    if (r == 0)
        r = write_refcounts(file, &l);
    if (r < 0)
        return r;
    encode_header(hdr, &l, size, cluster_bits, extl2, backing_name,
                  backing_format);
    n = vs_bdev_pwrite(file, hdr, l.cs, 0);
    if (n < 0)
        return (int)n;
    return vs_bdev_flush(file);
}
