/*
 * The "raw" format driver: the object's bytes are the volume's bytes.
 *
 * Creating a raw image only sizes its file object (thin where the storage
 * can be); opening one takes over the file's capabilities (and, from the
 * generic layer, its limits).  The driver is flagged passthrough and every
 * block operation is left NULL, so the generic layer sends it straight
 * through to the file below at the same offset: this driver is the
 * identity layer of the stack.  A raw image has no backing file.
 */
#include <errno.h>
#include <stddef.h>

#include "vs/bdev.h"
#include "backends.h"

static int
raw_create(struct vs_bdev *file, uint64_t size, const char *backing_name,
           const char *backing_format)
{
    if (backing_name != NULL || backing_format != NULL)
        return -EINVAL;
    return vs_bdev_truncate(file, size);
}

static int
raw_open(struct vs_bdev *bs)
{
    if (bs->backing != NULL)
        return -EINVAL;
    bs->caps = bs->file->caps;
    bs->opaque = NULL;
    return 0;
}

const struct vs_driver vs_driver_raw = {
    .api_version = VS_DRIVER_API_VERSION,
    .struct_size = sizeof(struct vs_driver),
    .name = "raw",
    .kind = VS_DRIVER_FORMAT,
    .create = raw_create,
    .open = raw_open,
    .passthrough = true,
};
