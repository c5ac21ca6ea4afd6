/*
 * Private to tests/crashsim: the disk's state and what its three files
 * share (crashsim.c: disk, log and the "crashsim" driver; crashsim_store.c:
 * the "crashsim-store" driver; crashsim_states.c: the crash states).
 */
#ifndef VS_CRASHSIM_INT_H
#define VS_CRASHSIM_INT_H

#include <pthread.h>

#include "crashsim.h"

struct crashsim_disk {
    pthread_mutex_t lock;      /* the I/O callbacks' */
    struct crashsim_image cur; /* every event applied */
    uint8_t *init;             /* the durable contents at creation */
    uint64_t init_size;
    struct crashsim_event *ev; /* the log */
    size_t nev, ev_cap;
    size_t *flush_at; /* log index of each flush */
    size_t nflush, flush_cap;
    struct crashsim_image cache; /* the image after events [0, cache_next) */
    size_t cache_next;
    bool cache_valid;
    uint64_t last_seq; /* of the newest event */
};

/* Take the clock's next number (crashsim.c); crashsim_tick_done() runs the
 * hook for it once no lock is held. */
uint64_t crashsim_tick(void);
void crashsim_tick_done(uint64_t seq);

/* ---- stores (crashsim_store.c), as crashsim_world.c reads them ---- */

#define CRASHSIM_NEVER UINT64_MAX /* an instant that never comes */

struct cs_object {
    char *name;
    struct crashsim_disk *disk;
    uint64_t created, removed; /* instants; removed: CRASHSIM_NEVER */
};

struct cs_store {
    char *name; /* the location without "crashsim:" */
    struct cs_object *obj;
    size_t n, cap;
    uint64_t created, destroyed;
};

/* A new store in the registry, made at instant CREATED; NULL without
 * memory. */
struct cs_store *crashsim_store_new(const char *name, uint64_t created);
/* Add object NAME on DISK (which it then owns) to CS, made at CREATED. */
int crashsim_store_add_object(struct cs_store *cs, const char *name,
                              struct crashsim_disk *disk, uint64_t created);
/* Take every store out of the registry (the caller owns them now). */
struct cs_store **crashsim_store_detach_all(size_t *n);
void crashsim_store_free(struct cs_store *cs);

/* The driver tables (crashsim.c, crashsim_store.c). */
extern const struct vs_driver crashsim_driver;
extern const struct vs_driver crashsim_store_driver;

/* Make IMG hold SIZE bytes (new bytes zero).  0 or -ENOMEM. */
int crashsim_image_resize(struct crashsim_image *img, uint64_t size);
/* Copy SRC into DST.  0 or -ENOMEM. */
int crashsim_image_copy(struct crashsim_image *dst,
                        const struct crashsim_image *src);
/* Apply event EV to IMG, only its first LIMIT bytes for a write or a zeroed
 * range (UINT64_MAX: all of it).  0 or -ENOMEM. */
int crashsim_apply(struct crashsim_image *img, const struct crashsim_event *ev,
                   uint64_t limit);
/* Replace *IMG with D's contents after its events [0, POS). */
int crashsim_durable_at(struct crashsim_disk *d, size_t pos,
                        struct crashsim_image *img);
/* Sectors a write or zeroed range touches (0 for other events). */
uint64_t crashsim_sectors(const struct crashsim_event *ev);
/* Bytes of EV that land when it is torn after T of its sectors. */
uint64_t crashsim_torn_len(const struct crashsim_event *ev, uint64_t t);

/* The block callbacks both drivers share; bs->opaque is the disk. */
int64_t crashsim_cb_get_size(struct vs_bdev *bs);
int crashsim_cb_truncate(struct vs_bdev *bs, uint64_t size);
ssize_t crashsim_cb_preadv(struct vs_bdev *bs, const struct iovec *iov,
                           int iovcnt, uint64_t offset, unsigned flags);
ssize_t crashsim_cb_pwritev(struct vs_bdev *bs, const struct iovec *iov,
                            int iovcnt, uint64_t offset, unsigned flags);
int crashsim_cb_flush(struct vs_bdev *bs);
int crashsim_cb_discard(struct vs_bdev *bs, uint64_t offset, uint64_t length);
int crashsim_cb_write_zeroes(struct vs_bdev *bs, uint64_t offset,
                             uint64_t length, unsigned flags);

#endif
