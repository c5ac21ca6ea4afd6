/*
 * Private to the dir protocol driver: the state of an open store and of an
 * open object, shared by dir.c (stores and objects) and dir_io.c (the block
 * I/O callbacks of an open object).
 */
#ifndef VS_DIR_H
#define VS_DIR_H

#include <pthread.h>
#include <stdint.h>

#include "vs/driver.h"

/* An open store: the directory, held open so that every object is reached
 * beneath it, and what its file system was found to offload. */
struct dir_store {
    int dirfd;           /* O_DIRECTORY, O_CLOEXEC */
    char *path;          /* owned; absolute, for rmdir only */
    struct vs_caps caps; /* probed once at open */
    bool sync;           /* option sync=on: objects are opened O_DSYNC */
};

/* An open object: a buffered descriptor, maybe an O_DIRECT one beside it,
 * and the alignment the direct one needs. */
struct dir_object {
    int fd;             /* buffered; also used for metadata calls */
    int dfd;            /* O_DIRECT, or -1 when not asked or refused */
    uint32_t mem_align; /* buffer alignment for dfd (power of two) */
    uint32_t off_align; /* offset and length alignment for dfd */
    bool sync;          /* opened O_DSYNC (the store's sync=on) */
    /* The last data run SEEK_HOLE found, [run_start, run_end): on tmpfs
     * SEEK_HOLE walks every page of the run, so block status asked chunk
     * by chunk over a big file would walk it again and again.  Writes only
     * grow runs; punches, zeroed ranges and size changes drop it (and bump
     * run_gen, so a search that raced with them is not kept). */
    pthread_mutex_t run_lock;
    uint64_t run_start, run_end, run_gen;
};

/* Block I/O callbacks of an open object (dir_io.c); see <vs/driver.h>. */
void dir_close(struct vs_bdev *bs);
int64_t dir_get_size(struct vs_bdev *bs);
int64_t dir_get_allocated(struct vs_bdev *bs);
int dir_truncate(struct vs_bdev *bs, uint64_t size);
ssize_t dir_preadv(struct vs_bdev *bs, const struct iovec *iov, int iovcnt,
                   uint64_t offset, unsigned flags);
ssize_t dir_pwritev(struct vs_bdev *bs, const struct iovec *iov, int iovcnt,
                    uint64_t offset, unsigned flags);
int dir_flush(struct vs_bdev *bs);
int dir_discard(struct vs_bdev *bs, uint64_t offset, uint64_t length);
int dir_allocate(struct vs_bdev *bs, uint64_t offset, uint64_t length);
int dir_write_zeroes(struct vs_bdev *bs, uint64_t offset, uint64_t length,
                     unsigned flags);
int dir_block_status(struct vs_bdev *bs, uint64_t offset, uint64_t length,
                     uint64_t *pnum);
ssize_t dir_copy_range(struct vs_bdev *src, uint64_t src_off,
                       struct vs_bdev *dst, uint64_t dst_off, uint64_t length);

/* Fill O's alignment for direct I/O from statx (4096 when unknown). */
void dir_dio_align(struct dir_object *o);
/* Fill bs->limits for open object O (after dir_dio_align). */
void dir_limits(const struct dir_object *o, struct vs_bdev *bs);

#endif
