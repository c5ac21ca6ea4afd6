/*
 * Scaffolding the unit tests share: removing a directory tree, running a
 * shell command, a scratch directory under /var/tmp with a dir store in
 * it, creating and opening the store's objects, qemu-img as the judge of
 * the images in the store, and threads working on one device.
 *
 * The scratch directory is process-wide: tu_scratch_open() makes it, the
 * object helpers use its store and the qemu-img helpers name objects by
 * their path in it.
 */
#ifndef VS_TESTUTIL_H
#define VS_TESTUTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct vs_bdev;
struct vs_store;

/* Remove PATH and everything below it, not following symlinks. */
void tu_rm_tree(const char *path);
/* Whether BUF[0..len) holds only zero bytes. */
bool tu_is_zero(const uint8_t *buf, size_t len);
/* Run CMD in a shell: its exit status (-1 if it did not exit), its
 * output and errors into OUT (NUL-terminated, cut to OUTLEN; may be NULL). */
int tu_run(const char *cmd, char *out, size_t outlen);

/* Make the scratch directory from the mkdtemp pattern TEMPLATE (which
 * becomes its name) and open a new dir store in its "store" folder into
 * *ST (the store the object helpers below use): 0, or -1 after saying
 * why. */
int tu_scratch_open(char *template, struct vs_store **st);
/* Close ST and remove the scratch directory with everything in it. */
void tu_scratch_close(struct vs_store *st);
/* Path of object NAME in the store, for qemu-img (four rotating buffers). */
const char *tu_obj_path(const char *name);

/* Open object NAME of the scratch store as FORMAT over BACKING, which is
 * consumed (closed on failure too): the top, or NULL after saying why. */
struct vs_bdev *tu_open_fmt(const char *format, const char *name,
                            unsigned flags, struct vs_bdev *backing);
/* Create object NAME as a qcow2 image of SIZE over BACKING_NAME (of
 * BACKING_FORMAT; both may be NULL): 0 or -errno. */
int tu_create_qcow2(const char *name, uint64_t size, const char *backing_name,
                    const char *backing_format);
/* Create a raw object NAME holding DATA[0..size), flushed: 0 or -errno. */
int tu_create_raw(const char *name, const uint8_t *data, uint64_t size);

/* qemu-img check on object NAME: true when clean (no errors, no leaks);
 * otherwise its output goes to the TAP log. */
bool tu_qemu_check(const char *name);
/* Write REF[0..size) to file NAME in the scratch directory: its path
 * (a static buffer), or NULL. */
const char *tu_write_ref(const char *name, const uint8_t *ref, uint64_t size);
/* qemu-img compare of object NAME (qcow2, as qemu-img opens its chain)
 * against REF[0..size) written beside the store as NAME.ref. */
bool tu_qemu_compare(const char *name, const uint8_t *ref, uint64_t size);

/* Whether BS reads exactly REF[0..size); the first difference goes to
 * the TAP log. */
bool tu_same(struct vs_bdev *bs, const uint8_t *ref, uint64_t size);

/* Write BUF[0..len) to BS at OFF and read it back: whether both transfers
 * were whole and the bytes came back the same. */
bool tu_round_trip(struct vs_bdev *bs, const uint8_t *buf, size_t len,
                   uint64_t off);

/* One of the threads tu_run_workers() starts: the device it works on, its
 * number (0 to n - 1) and the failures it counts. */
struct tu_worker {
    struct vs_bdev *bs;
    int id;
    int failures;
};

/* Run FN in N threads at once, each given its own struct tu_worker on BS;
 * once all have ended, the sum of their failures (-1 if they could not
 * start). */
int tu_run_workers(struct vs_bdev *bs, int n, void *(*fn)(void *));

#endif
