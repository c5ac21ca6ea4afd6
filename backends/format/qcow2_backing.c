/*
 * Changing the backing file name that a qcow2 layer's header records (what
 * `qemu-img rebase -u` does), for when a merge moves a layer onto another
 * parent.  The name only serves tools reading the backend directly (vstorfs
 * itself follows the domain's records), so it is kept right for them.
 *
 * Only layers whose first cluster holds nothing but the header are
 * rewritten (every layer vstorfs creates): the header extensions are laid
 * out again as vstorfs writes them (backing format, end marker, name).  The
 * extension area goes first, then the fixed header fields in one sector
 * write; a crash between the two can only garble the name tools see.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vs/bdev.h"
#include "vs/util.h"
#include "qcow2.h"

/* Lay out [format extension][end marker][name] into BUF; its length. */
static size_t
encode_tail(uint8_t *buf, const char *name, const char *format)
{
    size_t pos = 0;

    if (format != NULL) {
        size_t len = strlen(format);

        qcow2_put32(buf, QCOW2_EXT_BACKING_FORMAT);
        qcow2_put32(buf + 4, (uint32_t)len);
        memcpy(buf + 8, format, len);
        pos = 8 + ((len + 7) & ~(size_t)7);
    }
    pos += 8; /* end of extensions: zeros */
    if (name != NULL) {
        memcpy(buf + pos, name, strlen(name));
        pos += strlen(name);
    }
    return pos;
}

static int
check_layout(const struct qcow2 *s, const char *name, const char *format)
{
    size_t need =
        24 + (format ? strlen(format) + 8 : 0) + (name ? strlen(name) : 0);

    if (format != NULL && name == NULL)
        return -EINVAL;
    if (name != NULL &&
        (name[0] == '\0' || strlen(name) > QCOW2_MAX_BACKING_NAME))
        return -EINVAL;
    /* an image of size 0 has no L1 table: its offset is 0 */
    if ((s->disk.l1_size > 0 && s->disk.l1_offset < s->cs) ||
        s->disk.rt_offset < s->cs || s->disk.header_length + need > s->cs)
        return -ENOTSUP; /* not a layout vstorfs wrote */
    return 0;
}

static int
write_name(struct qcow2 *s, const char *name, const char *format)
{
    size_t hl = s->disk.header_length;
    _cleanup_free_ uint8_t *tail = calloc(1, s->cs - hl);
    size_t len;
    ssize_t n;
    int r;

    if (tail == NULL)
        return -ENOMEM;
    len = encode_tail(tail, name, format);
    n = vs_bdev_pwrite(s->file, tail, len, hl);
    if (n < 0)
        return (int)n;
    r = vs_bdev_flush(s->file);
    if (r < 0)
        return r;
    s->h.backing_offset = name ? hl + len - strlen(name) : 0;
    s->h.backing_size = name ? (uint32_t)strlen(name) : 0;
    s->disk.backing_offset = s->h.backing_offset;
    s->disk.backing_size = s->h.backing_size;
    qcow2_put64(s->raw_header + 8, s->h.backing_offset);
    qcow2_put32(s->raw_header + 16, s->h.backing_size);
    r = qcow2_header_write(s, &s->disk);
    return r == 0 ? vs_bdev_flush(s->file) : r;
}

int
qcow2_set_backing(struct vs_bdev *bs, const char *name, const char *format)
{
    struct qcow2 *s = bs->opaque;
    int r;

    if (bs->open_flags & VS_OPEN_RDONLY)
        return -EROFS;
    qcow2_wrlock(s);
    r = check_layout(s, name, format);
    if (r == 0)
        r = write_name(s, name, format);
    qcow2_unlock(s);
    return r;
}
