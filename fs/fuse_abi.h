/*
 * The parts of the kernel's FUSE protocol that passthrough.c reads and
 * patches in the raw messages: the request and reply headers, INIT and
 * OPEN, and the /dev/fuse ioctls that register a backing file.
 *
 * They come from the kernel's uapi header <linux/fuse.h> (protocol 7.40,
 * Linux 6.9, where FUSE passthrough appeared; unchanged through 6.18).
 * Debian 12's linux-libc-dev (6.1, protocol 7.38) lacks the passthrough
 * parts, so each constant is defined here only when the system header has
 * none.  The structs are this file's own copies, prefixed vs_, because the
 * old header declares fuse_open_out and fuse_init_out with the new fields
 * still named padding/unused; static assertions pin their layout.
 */
#ifndef VS_FUSE_ABI_H
#define VS_FUSE_ABI_H

#include <linux/fuse.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/ioctl.h>

#ifndef FUSE_INIT_EXT
#define FUSE_INIT_EXT (1u << 30)
#endif
#ifndef FUSE_HANDLE_KILLPRIV_V2
#define FUSE_HANDLE_KILLPRIV_V2 (1u << 28)
#endif
#ifndef FUSE_PASSTHROUGH
#define FUSE_PASSTHROUGH (1ull << 37) /* flags2 bit 5 */
#endif
#ifndef FOPEN_PASSTHROUGH
#define FOPEN_PASSTHROUGH (1u << 7)
#endif
#ifndef FUSE_DEV_IOC_MAGIC
#define FUSE_DEV_IOC_MAGIC 229
#endif
#ifndef FILESYSTEM_MAX_STACK_DEPTH
#define FILESYSTEM_MAX_STACK_DEPTH 2
#endif

/* struct fuse_in_header: every request starts with it */
struct vs_fuse_in_header {
    uint32_t len;
    uint32_t opcode;
    uint64_t unique;
    uint64_t nodeid;
    uint32_t uid, gid, pid;
    uint16_t total_extlen;
    uint16_t padding;
};

/* struct fuse_out_header: every reply starts with it */
struct vs_fuse_out_header {
    uint32_t len;
    int32_t error;
    uint64_t unique;
};

/* struct fuse_init_in (flags2 is valid when flags has FUSE_INIT_EXT) */
struct vs_fuse_init_in {
    uint32_t major, minor, max_readahead;
    uint32_t flags;
    uint32_t flags2;
    uint32_t unused[11];
};

/* struct fuse_init_out as of 7.40 */
struct vs_fuse_init_out {
    uint32_t major, minor, max_readahead;
    uint32_t flags;
    uint16_t max_background, congestion_threshold;
    uint32_t max_write, time_gran;
    uint16_t max_pages, map_alignment;
    uint32_t flags2;
    uint32_t max_stack_depth; /* 7.40: was unused[0] */
    uint32_t unused[6];
};

/* struct fuse_open_out as of 7.40 */
struct vs_fuse_open_out {
    uint64_t fh;
    uint32_t open_flags;
    int32_t backing_id; /* 7.40: was padding */
};

/* struct fuse_backing_map: the argument of FUSE_DEV_IOC_BACKING_OPEN */
struct vs_fuse_backing_map {
    int32_t fd;
    uint32_t flags; /* 0 */
    uint64_t padding;
};

#define VS_FUSE_DEV_IOC_BACKING_OPEN                                           \
    _IOW(FUSE_DEV_IOC_MAGIC, 1, struct vs_fuse_backing_map)
#define VS_FUSE_DEV_IOC_BACKING_CLOSE _IOW(FUSE_DEV_IOC_MAGIC, 2, uint32_t)

_Static_assert(sizeof(struct vs_fuse_in_header) == 40, "fuse_in_header");
_Static_assert(sizeof(struct vs_fuse_out_header) == 16, "fuse_out_header");
_Static_assert(sizeof(struct vs_fuse_init_in) == 64, "fuse_init_in");
_Static_assert(sizeof(struct vs_fuse_init_out) == 64, "fuse_init_out");
_Static_assert(offsetof(struct vs_fuse_init_out, flags2) == 32, "flags2");
_Static_assert(offsetof(struct vs_fuse_init_out, max_stack_depth) == 36,
               "max_stack_depth");
_Static_assert(sizeof(struct vs_fuse_open_out) == 16, "fuse_open_out");
_Static_assert(sizeof(struct vs_fuse_init_out) == sizeof(struct fuse_init_out),
               "the system's fuse_init_out has another size");
_Static_assert(sizeof(struct vs_fuse_open_out) == sizeof(struct fuse_open_out),
               "the system's fuse_open_out has another size");

#endif
