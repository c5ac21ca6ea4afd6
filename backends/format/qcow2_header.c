/*
 * The qcow2 header: parse and validate it at open, encode and rewrite it
 * when the image's size or table locations change.
 *
 * Everything read is checked before use, because an image is untrusted
 * input: the magic, the version (2 or 3), the header length, cluster_bits
 * (9..21, 14..21 with extended L2 entries), the incompatible feature bits
 * (anything this driver cannot honour is -ENOTSUP), the encryption method, the
 * refcount order, the L1 size against the virtual size and QEMU's 32 MiB limit,
 * the refcount table size against QEMU's 8 MiB limit, every table offset
 * (cluster aligned, inside the file), the backing file name (at most 1023
 * bytes, inside the first cluster) and the header extensions (each inside the
 * first cluster).  A violation is -EIO with a debug line naming the layer.
 *
 * The header is kept as read (raw_header, header_length bytes): a rewrite
 * patches the fields this driver changes into that copy, so additional
 * fields and extensions it does not know survive untouched.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vs/bdev.h"
#include "vs/util.h"
#include "qcow2.h"

uint64_t
qcow2_l1_needed(uint64_t size, uint32_t cb, uint32_t l2_bits)
{
    uint64_t clusters = (size >> cb) + ((size & ((1ull << cb) - 1)) != 0);

    return (clusters >> l2_bits) + ((clusters & ((1ull << l2_bits) - 1)) != 0);
}

/* Parse the fields common to versions 2 and 3 from the first 72 bytes. */
static void
parse_v2(const uint8_t *b, struct qcow2_header *h)
{
    h->version = qcow2_be32(b + 4);
    h->backing_offset = qcow2_be64(b + 8);
    h->backing_size = qcow2_be32(b + 16);
    h->cluster_bits = qcow2_be32(b + 20);
    h->size = qcow2_be64(b + 24);
    h->crypt_method = qcow2_be32(b + 32);
    h->l1_size = qcow2_be32(b + 36);
    h->l1_offset = qcow2_be64(b + 40);
    h->rt_offset = qcow2_be64(b + 48);
    h->rt_clusters = qcow2_be32(b + 56);
    h->nb_snapshots = qcow2_be32(b + 60);
    h->snapshots_offset = qcow2_be64(b + 64);
    h->incompat = 0;
    h->compat = 0;
    h->autoclear = 0;
    h->refcount_order = 4;
    h->header_length = QCOW2_V2_HEADER;
    h->compression_type = 0;
}

static void
parse_v3(const uint8_t *b, struct qcow2_header *h)
{
    h->incompat = qcow2_be64(b + 72);
    h->compat = qcow2_be64(b + 80);
    h->autoclear = qcow2_be64(b + 88);
    h->refcount_order = qcow2_be32(b + 96);
    h->header_length = qcow2_be32(b + 100);
}

/* Read the fixed part and the whole header_length into s->raw_header. */
static int
read_fixed(struct qcow2 *s)
{
    uint8_t b[QCOW2_V3_HEADER];
    ssize_t n = vs_bdev_pread(s->file, b, sizeof(b), 0);

    if (n < 0)
        return (int)n;
    if (n < QCOW2_V2_HEADER)
        return qcow2_corrupt(s, "truncated header (%zd bytes)", n);
    if (qcow2_be32(b) != QCOW2_MAGIC)
        return qcow2_corrupt(s, "bad magic");
    parse_v2(b, &s->h);
    if (s->h.version != 2 && s->h.version != 3)
        return qcow2_refuse(s, -ENOTSUP, "version %u is not supported",
                            s->h.version);
    if (s->h.version == 3) {
        if (n < QCOW2_V3_HEADER)
            return qcow2_corrupt(s, "truncated v3 header (%zd bytes)", n);
        parse_v3(b, &s->h);
    }
    return 0;
}

static int
check_geometry(struct qcow2 *s)
{
    struct qcow2_header *h = &s->h;

    if (h->cluster_bits < QCOW2_MIN_CLUSTER_BITS ||
        h->cluster_bits > QCOW2_MAX_CLUSTER_BITS)
        return qcow2_corrupt(s, "cluster_bits %u out of range",
                             h->cluster_bits);
    s->cluster_bits = h->cluster_bits;
    s->cs = 1ull << h->cluster_bits;
    /* extended entries are 16 bytes: half as many per table */
    s->extl2 = (h->incompat & QCOW2_INCOMPAT_EXTL2) != 0;
    if (s->extl2 && h->cluster_bits < QCOW2_EXTL2_MIN_CLUSTER_BITS)
        return qcow2_corrupt(s, "extended L2 entries with cluster_bits %u",
                             h->cluster_bits);
    s->l2_bits = h->cluster_bits - (s->extl2 ? 4 : 3);
    s->l2_entries = 1ull << s->l2_bits;
    s->sc_bits = s->extl2 ? h->cluster_bits - 5 : h->cluster_bits;
    if (h->version == 3 &&
        (h->header_length < QCOW2_V3_HEADER || h->header_length % 8 != 0 ||
         h->header_length > s->cs))
        return qcow2_corrupt(s, "header length %u invalid", h->header_length);
    if (h->version == 3 && h->refcount_order > 6)
        return qcow2_corrupt(s, "refcount order %u invalid", h->refcount_order);
    return 0;
}

static int
read_raw_header(struct qcow2 *s)
{
    ssize_t n;

    s->raw_header = malloc(s->h.header_length);
    if (s->raw_header == NULL)
        return -ENOMEM;
    n = vs_bdev_pread(s->file, s->raw_header, s->h.header_length, 0);
    if (n < 0)
        return (int)n;
    if ((size_t)n < s->h.header_length)
        return qcow2_corrupt(s, "truncated header (%zd of %u bytes)", n,
                             s->h.header_length);
    if (s->h.header_length > QCOW2_V3_HEADER)
        s->h.compression_type = s->raw_header[QCOW2_V3_HEADER];
    return 0;
}

static int
check_features(struct qcow2 *s)
{
    const struct qcow2_header *h = &s->h;
    uint64_t known = QCOW2_INCOMPAT_DIRTY | QCOW2_INCOMPAT_CORRUPT |
                     QCOW2_INCOMPAT_DATA_FILE | QCOW2_INCOMPAT_COMPRESSION |
                     QCOW2_INCOMPAT_EXTL2;

    if (h->incompat & ~known)
        return qcow2_refuse(s, -ENOTSUP, "unknown incompatible features %#llx",
                            (unsigned long long)(h->incompat & ~known));
    if (h->incompat & QCOW2_INCOMPAT_DATA_FILE)
        return qcow2_refuse(s, -ENOTSUP, "external data files unsupported");
    if (!(h->incompat & QCOW2_INCOMPAT_COMPRESSION) && h->compression_type != 0)
        return qcow2_corrupt(s, "compression type without its feature bit");
    if (h->incompat & QCOW2_INCOMPAT_COMPRESSION) {
        if (h->compression_type == 0)
            return qcow2_corrupt(s, "compression feature bit without type");
        return qcow2_refuse(s, -ENOTSUP, "compression type %u unsupported",
                            h->compression_type);
    }
    if (h->crypt_method != 0)
        return qcow2_refuse(s, -ENOTSUP, "encrypted images unsupported");
    return 0;
}

/* 0 if a table of BYTES at OFF lies cluster-aligned inside the file. */
static int
check_table(struct qcow2 *s, const char *what, uint64_t off, uint64_t bytes)
{
    if (bytes == 0)
        return 0;
    if (off == 0 || (off & (s->cs - 1)) != 0)
        return qcow2_corrupt(s, "%s offset %#llx invalid", what,
                             (unsigned long long)off);
    if (off > s->file_size || bytes > s->file_size - off)
        return qcow2_corrupt(s, "%s at %#llx (%llu bytes) is past the end",
                             what, (unsigned long long)off,
                             (unsigned long long)bytes);
    return 0;
}

static int
check_tables(struct qcow2 *s)
{
    const struct qcow2_header *h = &s->h;
    uint64_t rt_bytes = (uint64_t)h->rt_clusters << s->cluster_bits;
    int r;

    if (qcow2_l1_needed(h->size, h->cluster_bits, s->l2_bits) > h->l1_size)
        return qcow2_corrupt(s, "L1 table too small for the virtual size");
    if ((uint64_t)h->l1_size * 8 > QCOW2_MAX_L1_BYTES)
        return qcow2_corrupt(s, "L1 table of %u entries too large", h->l1_size);
    r = check_table(s, "L1 table", h->l1_offset, (uint64_t)h->l1_size * 8);
    if (r < 0)
        return r;
    if (h->rt_clusters == 0 || rt_bytes > QCOW2_MAX_RT_BYTES)
        return qcow2_corrupt(s, "refcount table of %u clusters invalid",
                             h->rt_clusters);
    r = check_table(s, "refcount table", h->rt_offset, rt_bytes);
    if (r < 0)
        return r;
    if (h->nb_snapshots > QCOW2_MAX_SNAPSHOTS)
        return qcow2_corrupt(s, "%u snapshots", h->nb_snapshots);
    if (h->nb_snapshots > 0)
        return check_table(s, "snapshot table", h->snapshots_offset, 1);
    return 0;
}

static int
check_backing(struct qcow2 *s)
{
    const struct qcow2_header *h = &s->h;

    if (h->backing_offset == 0)
        return 0;
    if (h->backing_size == 0 || h->backing_size > QCOW2_MAX_BACKING_NAME)
        return qcow2_corrupt(s, "backing file name of %u bytes",
                             h->backing_size);
    if (h->backing_offset > s->cs ||
        h->backing_size > s->cs - h->backing_offset ||
        h->backing_offset + h->backing_size > s->file_size)
        return qcow2_corrupt(s, "backing file name outside the header");
    return 0;
}

/* Walk the header extensions: each must lie inside the first cluster. */
static int
check_extensions(struct qcow2 *s)
{
    uint64_t end = s->cs < s->file_size ? s->cs : s->file_size;
    uint64_t pos = s->h.header_length;
    _Alignas(8) uint8_t hdr[8];

    while (pos + 8 <= end) {
        uint32_t type, len;
        ssize_t n = vs_bdev_pread(s->file, hdr, sizeof(hdr), pos);

        if (n < 0)
            return (int)n;
        if (n < 8)
            return qcow2_corrupt(s, "truncated header extension");
        type = qcow2_be32(hdr);
        len = qcow2_be32(hdr + 4);
        if (type == QCOW2_EXT_END)
            return 0;
        if (len > end - pos - 8)
            return qcow2_corrupt(s, "header extension %#x overruns", type);
        if (type == QCOW2_EXT_BACKING_FORMAT && len > QCOW2_MAX_BACKING_NAME)
            return qcow2_corrupt(s, "backing format of %u bytes", len);
        pos += 8 + (((uint64_t)len + 7) & ~7ull);
    }
    return 0;
}

int
qcow2_header_load(struct qcow2 *s)
{
    int64_t fsize = vs_bdev_size(s->file);
    int r;

    if (fsize < 0)
        return (int)fsize;
    s->file_size = (uint64_t)fsize;
    r = read_fixed(s);
    if (r == 0)
        r = check_geometry(s);
    if (r == 0)
        r = read_raw_header(s);
    if (r == 0)
        r = check_features(s);
    if (r == 0)
        r = check_tables(s);
    if (r == 0)
        r = check_backing(s);
    if (r == 0)
        r = check_extensions(s);
    if (r < 0)
        return r;
    if (s->h.version == 2)
        s->h.refcount_order = 4;
    s->disk = s->h;
    return 0;
}

void
qcow2_header_encode(const struct qcow2 *s, const struct qcow2_header *h,
                    uint8_t *buf)
{
    memcpy(buf, s->raw_header, h->header_length);
    qcow2_put64(buf + 24, h->size);
    qcow2_put32(buf + 36, h->l1_size);
    qcow2_put64(buf + 40, h->l1_offset);
    qcow2_put64(buf + 48, h->rt_offset);
    qcow2_put32(buf + 56, h->rt_clusters);
    if (h->version >= 3) {
        qcow2_put64(buf + 72, h->incompat);
        qcow2_put64(buf + 88, h->autoclear);
    }
}

int
qcow2_header_write(struct qcow2 *s, const struct qcow2_header *h)
{
    _cleanup_free_ uint8_t *buf = malloc(h->header_length);
    ssize_t n;

    if (buf == NULL)
        return -ENOMEM;
    qcow2_header_encode(s, h, buf);
    n = vs_bdev_pwrite(s->file, buf, h->header_length, 0);
    if (n < 0)
        return (int)n;
    return 0;
}
