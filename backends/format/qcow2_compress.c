/*
 * Reading compressed clusters (images made by `qemu-img convert -c` or
 * imported): the L2 entry gives the data's byte offset in the file and a
 * count of 512-byte sectors it spans; the data is a raw deflate stream
 * (zlib, no header, 4 KiB window, as QEMU writes it) that inflates to
 * exactly one cluster.  Anything else is corruption (-EIO).  Writing
 * compressed clusters is not supported: a write to one allocates a normal
 * cluster and copies the inflated data into it.
 */
#include <errno.h>
#include <stdlib.h>
#include <zlib.h>

#include "vs/bdev.h"
#include "vs/util.h"
#include "qcow2.h"

/* Inflate IN[0..in_len) into OUT[0..out_len); 0 if it fills OUT. */
static int
inflate_raw(uint8_t *in, size_t in_len, uint8_t *out, size_t out_len)
{
    z_stream z = {0};
    int ret;
    bool full;

    if (inflateInit2(&z, -12) != Z_OK)
        return -ENOMEM;
    z.next_in = in;
    z.avail_in = (uInt)in_len;
    z.next_out = out;
    z.avail_out = (uInt)out_len;
    ret = inflate(&z, Z_FINISH);
    full = (ret == Z_STREAM_END || ret == Z_BUF_ERROR) && z.avail_out == 0;
    inflateEnd(&z);
    return full ? 0 : -EIO;
}

int
qcow2_read_compressed(struct qcow2 *s, uint64_t e, uint8_t *out)
{
    uint64_t off, len;
    _cleanup_free_ uint8_t *in = NULL;
    ssize_t n;

    qcow2_compressed_span(s, e, &off, &len);
    in = malloc(len);
    if (in == NULL)
        return -ENOMEM;
    n = vs_bdev_pread(s->file, in, len, off);
    if (n < 0)
        return (int)n;
    if (inflate_raw(in, (size_t)n, out, s->cs) < 0)
        return qcow2_corrupt(s, "compressed cluster at %#llx is invalid",
                             (unsigned long long)off);
    return 0;
}
