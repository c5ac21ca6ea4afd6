/*
 * A domain's metadata area (contract in <vs/meta_area.h>): record slots in
 * the store's "metadata" object, each slot two VS_RECORD_SIZE copies, A then
 * B, reached only through the generic block layer.
 *
 * Both copies are written, A (flushed: the record is then durable) then B
 * (made durable by the area's next flush), so at rest they agree: damage to one
 * copy leaves the other holding the newest record, and a write torn by a crash
 * leaves either the previous record (A torn, B old) or the new one (A new, B
 * torn or old).  A record is durable once A is.  Records written by the older
 * protocol (minor version 0) alternated between the copies: when one of those
 * sits beside a damaged copy, the damaged copy may have been the newer one, so
 * the slot is "doubtful" and the caller must not act on it.
 *
 * Opening reads the whole object once and keeps, per slot, what it found:
 * the newest valid generation, whether the copies disagree ("split": healed
 * by rewriting both), whether the slot is doubtful, and whether it is empty,
 * free (a FREE record), used, or damaged (no valid copy but some garbage,
 * kept for inspection and never handed out as free).  A copy whose header
 * names another slot (a misdirected write) counts as corrupt.
 *
 * The object grows, never shrinks, when a write needs a slot past its end:
 * by a quarter of its size, at least GROW_SLOTS slots (so 100,000 records
 * take about 40 growths, not 12,500); new slots are preallocated (so that
 * rewriting a record needs no new space on a full store) and read as zeros,
 * i.e. empty. The domain record in slot 0 carries the area's size ("slots"),
 * rewritten when it grows, so an area found shorter than that lost records.
 * Free slots are searched from free_hint, below which (apart from slot 0, the
 * domain's) no slot is free.
 *
 * One mutex covers the state and the I/O buffer.  Load drops it around its
 * callbacks, so that they may call back into the area.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vs/log.h"
#include "vs/meta_area.h"

#define SLOT_BYTES ((size_t)2 * VS_RECORD_SIZE)
#define GROW_SLOTS 8
#define COPY_NONE (-1)

enum slot_use {
    SLOT_EMPTY,   /* both copies zero */
    SLOT_FREE,    /* newest valid record is FREE */
    SLOT_USED,    /* newest valid record is a domain, image or volume */
    SLOT_DAMAGED, /* no valid copy, and something that is not zero */
};

struct slot_state {
    uint64_t generation; /* of the newest valid copy; 0 if none */
    int8_t copy;         /* 0 (A) or 1 (B) holds it; COPY_NONE */
    uint8_t use;         /* enum slot_use */
    bool split;          /* the copies differ: heal rewrites both */
    bool doubtful;       /* an old-protocol copy beside a damaged one */
    bool unborn;         /* damaged A, empty B: a first write torn */
    uint64_t b_epoch;    /* flush_epoch when B was last written */
};

struct vs_meta_area {
    pthread_mutex_t lock;
    struct vs_bdev *bs;
    struct slot_state *slots; /* nslots entries */
    uint32_t nslots;          /* slots the object holds */
    uint32_t free_hint;       /* no free slot in [1, free_hint) */
    uint32_t recorded_slots;  /* "slots" of the domain record; 0: unknown */
    uint64_t flush_epoch;     /* bumped by every flush of the object */
    unsigned char *buf;       /* SLOT_BYTES, aligned; under lock */
};

/* Both copies of one slot as read from storage. */
struct slot_view {
    int err[2];           /* per copy: 0 or the decode error */
    int newest;           /* the copy rec came from, or COPY_NONE */
    bool split;           /* the copies differ */
    bool doubtful;        /* see the top of the file */
    struct vs_record rec; /* valid when newest != COPY_NONE */
};

static uint64_t
slot_offset(uint32_t slot)
{
    return (uint64_t)slot * SLOT_BYTES;
}

/* A decode result that means the copy is corrupt, not merely empty. */
static bool
damaged(int err)
{
    return err != 0 && err != -ENOENT;
}

/* ---- reading a slot ---- */

static int
decode_copy(const unsigned char *block, uint32_t slot, struct vs_record *rec)
{
    int r = vs_record_decode(block, VS_RECORD_SIZE, rec);

    if (r == 0 && rec->slot != slot)
        r = -EBADMSG; /* a valid record written to the wrong place */
    return r;
}

/* Read SLOT's two copies into V (a slot past the end reads as zeros). */
static int
read_slot(struct vs_meta_area *area, uint32_t slot, struct slot_view *v)
{
    struct vs_record recs[2];
    ssize_t n;

    memset(area->buf, 0, SLOT_BYTES);
    n = vs_bdev_pread(area->bs, area->buf, SLOT_BYTES, slot_offset(slot));
    if (n < 0)
        return (int)n;
    for (int c = 0; c < 2; c++)
        v->err[c] =
            decode_copy(area->buf + (size_t)c * VS_RECORD_SIZE, slot, &recs[c]);
    v->newest = COPY_NONE;
    if (v->err[0] == 0)
        v->newest = 0;
    if (v->err[1] == 0 &&
        (v->newest == COPY_NONE || recs[1].generation > recs[0].generation))
        v->newest = 1;
    v->split = v->err[0] != v->err[1] ||
               (v->err[0] == 0 && recs[0].generation != recs[1].generation);
    v->doubtful = false;
    if (v->newest != COPY_NONE) {
        v->rec = recs[v->newest];
        v->doubtful = v->rec.minor == 0 && damaged(v->err[1 - v->newest]);
    }
    return 0;
}

/* Remember what V says about SLOT (which must be < nslots). */
static void
note_slot(struct vs_meta_area *area, uint32_t slot, const struct slot_view *v)
{
    struct slot_state *s = &area->slots[slot];

    s->copy = (int8_t)v->newest;
    s->generation = v->newest != COPY_NONE ? v->rec.generation : 0;
    s->split = v->split;
    s->doubtful = v->doubtful;
    /* A is written first: garbage in A with B never written is a slot's
     * first record torn by a crash, not a record that existed */
    s->unborn =
        v->newest == COPY_NONE && damaged(v->err[0]) && v->err[1] == -ENOENT;
    if (slot == 0 && v->newest != COPY_NONE && v->rec.kind == VS_REC_DOMAIN)
        area->recorded_slots = v->rec.area_slots;
    if (v->newest != COPY_NONE)
        s->use = v->rec.kind == VS_REC_FREE ? SLOT_FREE : SLOT_USED;
    else if (damaged(v->err[0]) || damaged(v->err[1]))
        s->use = SLOT_DAMAGED;
    else
        s->use = SLOT_EMPTY;
    if (s->use == SLOT_EMPTY || s->use == SLOT_FREE) {
        if (slot > 0 && slot < area->free_hint)
            area->free_hint = slot;
    }
}

/* Read SLOT and refresh its state; under the lock. */
static int
scan_slot(struct vs_meta_area *area, uint32_t slot, struct slot_view *v)
{
    int r = read_slot(area, slot, v);

    if (r == 0 && slot < area->nslots)
        note_slot(area, slot, v);
    return r;
}

/* ---- growing ---- */

static int write_record(struct vs_meta_area *area, uint32_t slot,
                        struct vs_record *rec);

/* Reserve the blocks of [OFF, OFF + LEN) so that writing records there later
 * needs no new space (a full store must still let volumes be removed).  A
 * store that cannot preallocate is written sparsely: nothing to undo. */
static void
preallocate(struct vs_meta_area *area, uint64_t off, uint64_t len)
{
    int r = len > 0 ? vs_bdev_allocate(area->bs, off, len) : 0;

    if (r < 0)
        vs_log_debug(VS_LOG_CAT_META, "metadata %s: preallocating: %s",
                     area->bs->name, strerror(-r));
}

/* Write the area's new size into the domain record (slot 0), before any
 * record is written past the old end. */
static int
record_size(struct vs_meta_area *area)
{
    struct slot_view v;
    int r;

    if (area->nslots == 0 || area->slots[0].use != SLOT_USED)
        return 0; /* no domain record yet: its first write records it */
    r = read_slot(area, 0, &v);
    if (r < 0 || v.newest == COPY_NONE || v.rec.kind != VS_REC_DOMAIN)
        return r < 0 ? r : 0;
    return write_record(area, 0, &v.rec);
}

/* Make the object hold at least COUNT slots. */
static int
ensure_slots(struct vs_meta_area *area, uint32_t count)
{
    struct slot_state *slots;
    uint32_t n;
    int r;

    if (count <= area->nslots)
        return 0;
    n = count > area->nslots + area->nslots / 4
            ? count
            : area->nslots + area->nslots / 4;
    n = (n + GROW_SLOTS - 1) / GROW_SLOTS * GROW_SLOTS;
    if (n > VS_META_MAX_SLOTS)
        n = VS_META_MAX_SLOTS;
    slots = realloc(area->slots, n * sizeof(*slots));
    if (slots == NULL)
        return -ENOMEM;
    area->slots = slots;
    memset(slots + area->nslots, 0, (n - area->nslots) * sizeof(*slots));
    for (uint32_t i = area->nslots; i < n; i++)
        slots[i].copy = COPY_NONE;
    r = vs_bdev_truncate(area->bs, slot_offset(n));
    if (r < 0)
        return r;
    preallocate(area, slot_offset(area->nslots),
                slot_offset(n) - slot_offset(area->nslots));
    vs_log_debug(VS_LOG_CAT_META, "metadata %s: grown to %u slots",
                 area->bs->name, n);
    area->nslots = n;
    return record_size(area);
}

/* ---- writing ---- */

/* The first slot (not 0) that is empty or free; may be nslots. */
static int
find_free_slot(struct vs_meta_area *area, uint32_t *slot)
{
    uint32_t i = area->free_hint > 1 ? area->free_hint : 1;

    for (; i < area->nslots; i++) {
        uint8_t use = area->slots[i].use;

        if (use == SLOT_EMPTY || use == SLOT_FREE)
            break;
    }
    area->free_hint = i;
    if (i >= VS_META_MAX_SLOTS)
        return -ENOSPC;
    *slot = i;
    return 0;
}

/* Which slot REC goes to: 0 for the domain, its own, or a free one. */
static int
pick_slot(struct vs_meta_area *area, const struct vs_record *rec,
          uint32_t *slot)
{
    if (rec->kind == VS_REC_DOMAIN) {
        *slot = 0;
        return rec->slot == 0 ? 0 : -EINVAL;
    }
    if (rec->slot == 0)
        return rec->kind == VS_REC_FREE ? -EINVAL : find_free_slot(area, slot);
    *slot = rec->slot;
    return rec->slot < VS_META_MAX_SLOTS ? 0 : -EINVAL;
}

/* Write one encoded copy of SLOT; with FLUSH, durably. */
static int
write_copy(struct vs_meta_area *area, uint32_t slot, int copy, bool flush)
{
    uint64_t off = slot_offset(slot) + (uint64_t)copy * VS_RECORD_SIZE;
    ssize_t n;

    n = vs_bdev_pwrite(area->bs, area->buf, VS_RECORD_SIZE, off);
    if (n < 0)
        return (int)n;
    if (n != VS_RECORD_SIZE)
        return -EIO;
    if (!flush)
        return 0;
    area->flush_epoch++;
    return vs_bdev_flush(area->bs);
}

/* Write REC into SLOT at the next generation, copy A then copy B; update
 * REC and the state.  Done once A is durable: B is not flushed (the next
 * flush of the area, by any record's write, makes it durable; until then A
 * holds the record and a crash leaves B old or torn, which A outranks), and
 * a failure on B only leaves the slot split, for the next heal. */
static int
write_record(struct vs_meta_area *area, uint32_t slot, struct vs_record *rec)
{
    struct vs_record out = *rec;
    struct slot_state *s;
    int r;

    r = ensure_slots(area, slot + 1);
    if (r < 0)
        return r;
    s = &area->slots[slot];
    out.slot = slot;
    out.generation =
        (s->generation > rec->generation ? s->generation : rec->generation) + 1;
    if (out.kind == VS_REC_DOMAIN)
        out.area_slots = area->nslots;
    /* B of the slot's last write not flushed yet: flush it before A is
     * overwritten, or a torn A would leave only an older B */
    if (s->b_epoch == area->flush_epoch && s->copy != COPY_NONE) {
        area->flush_epoch++;
        r = vs_bdev_flush(area->bs);
        if (r < 0)
            return r;
    }
    r = vs_record_encode(&out, area->buf);
    if (r == 0)
        r = write_copy(area, slot, 0, true);
    if (r < 0)
        return r;
    s->split = write_copy(area, slot, 1, false) < 0;
    s->b_epoch = area->flush_epoch;
    s->doubtful = false;
    s->unborn = false;
    s->generation = out.generation;
    s->copy = 0;
    s->use = out.kind == VS_REC_FREE ? SLOT_FREE : SLOT_USED;
    if (out.kind == VS_REC_DOMAIN)
        area->recorded_slots = out.area_slots;
    if (s->use == SLOT_FREE && slot > 0 && slot < area->free_hint)
        area->free_hint = slot;
    rec->slot = slot;
    rec->generation = out.generation;
    rec->area_slots = out.area_slots;
    return 0;
}

int
vs_meta_area_write(struct vs_meta_area *area, struct vs_record *rec)
{
    uint32_t slot;
    int r;

    pthread_mutex_lock(&area->lock);
    r = pick_slot(area, rec, &slot);
    if (r == 0)
        r = write_record(area, slot, rec);
    pthread_mutex_unlock(&area->lock);
    if (r < 0)
        vs_log_debug(VS_LOG_CAT_META, "metadata %s: writing slot %u: %s",
                     area->bs->name, rec->slot, strerror(-r));
    return r;
}

int
vs_meta_area_free(struct vs_meta_area *area, uint32_t slot)
{
    struct vs_record rec = {.slot = slot, .kind = VS_REC_FREE};
    int r = 0;

    if (slot >= VS_META_MAX_SLOTS)
        return -EINVAL;
    pthread_mutex_lock(&area->lock);
    /* nothing to do for a slot that never held anything or is free */
    if (slot < area->nslots && area->slots[slot].use != SLOT_EMPTY &&
        area->slots[slot].use != SLOT_FREE)
        r = write_record(area, slot, &rec);
    pthread_mutex_unlock(&area->lock);
    return r;
}

/* ---- reading ---- */

int
vs_meta_area_read(struct vs_meta_area *area, uint32_t slot,
                  struct vs_record *out)
{
    struct slot_view v;
    int r;

    pthread_mutex_lock(&area->lock);
    r = slot < area->nslots ? scan_slot(area, slot, &v) : -ENOENT;
    pthread_mutex_unlock(&area->lock);
    if (r < 0)
        return r;
    if (v.newest == COPY_NONE)
        return damaged(v.err[0])   ? v.err[0]
               : damaged(v.err[1]) ? v.err[1]
                                   : -ENOENT;
    if (v.rec.kind == VS_REC_FREE)
        return -ENOENT;
    *out = v.rec;
    return 0;
}

/* Hand one scanned slot to load's callbacks. */
static int
report_slot(uint32_t slot, const struct slot_view *v,
            int (*on_record)(const struct vs_record *rec, void *arg),
            void (*on_damage)(const struct vs_meta_slot_report *r, void *arg),
            void *arg)
{
    if (on_damage != NULL && (damaged(v->err[0]) || damaged(v->err[1]))) {
        struct vs_meta_slot_report report = {slot, v->err[0], v->err[1],
                                             v->doubtful};

        on_damage(&report, arg);
    }
    if (on_record != NULL && v->newest != COPY_NONE &&
        v->rec.kind != VS_REC_FREE)
        return on_record(&v->rec, arg);
    return 0;
}

int
vs_meta_area_load(struct vs_meta_area *area,
                  int (*on_record)(const struct vs_record *rec, void *arg),
                  void (*on_damage)(const struct vs_meta_slot_report *r,
                                    void *arg),
                  void *arg)
{
    struct slot_view v;
    int r = 0;

    for (uint32_t slot = 0; r == 0; slot++) {
        pthread_mutex_lock(&area->lock);
        r = slot < area->nslots ? scan_slot(area, slot, &v) : 1;
        pthread_mutex_unlock(&area->lock);
        if (r == 1)
            return 0; /* past the last slot */
        if (r == 0)
            r = report_slot(slot, &v, on_record, on_damage, arg);
    }
    return r;
}

/* ---- checking and healing ---- */

int
vs_meta_area_check(struct vs_meta_area *area, char *why, size_t len)
{
    int r = 0;

    pthread_mutex_lock(&area->lock);
    if (area->nslots == 0 || area->slots[0].use != SLOT_USED) {
        snprintf(why, len, "its domain record is %s",
                 area->nslots == 0 || area->slots[0].use == SLOT_EMPTY
                     ? "missing"
                     : "unreadable");
        r = -EUCLEAN;
    } else if (area->recorded_slots > area->nslots) {
        snprintf(why, len,
                 "its metadata holds %u record slots, %u were written: "
                 "records are missing (truncated?)",
                 area->nslots, area->recorded_slots);
        r = -EUCLEAN;
    }
    for (uint32_t i = 0; r == 0 && i < area->nslots; i++) {
        if (area->slots[i].use == SLOT_DAMAGED && !area->slots[i].unborn)
            snprintf(why, len, "record slot %u is unreadable", i);
        else if (area->slots[i].doubtful)
            snprintf(why, len,
                     "record slot %u: its newer copy is damaged and the "
                     "older one may be stale",
                     i);
        else
            continue;
        r = -EUCLEAN;
    }
    for (uint32_t i = 0; r >= 0 && i < area->nslots; i++)
        r += area->slots[i].split && area->slots[i].copy != COPY_NONE;
    pthread_mutex_unlock(&area->lock);
    return r;
}

/* Rewrite SLOT's newest record into both copies (under the lock). */
static int
heal_slot(struct vs_meta_area *area, uint32_t slot)
{
    struct slot_view v;
    int r = read_slot(area, slot, &v);

    if (r < 0 || v.newest == COPY_NONE || v.doubtful)
        return r;
    return write_record(area, slot, &v.rec);
}

int
vs_meta_area_heal(struct vs_meta_area *area)
{
    int healed = 0, r = 0;

    pthread_mutex_lock(&area->lock);
    preallocate(area, 0, slot_offset(area->nslots));
    for (uint32_t i = 0; r == 0 && i < area->nslots; i++) {
        if (!area->slots[i].split || area->slots[i].doubtful ||
            area->slots[i].copy == COPY_NONE)
            continue;
        r = heal_slot(area, i);
        healed += r == 0;
    }
    pthread_mutex_unlock(&area->lock);
    return r < 0 ? r : healed;
}

/* ---- opening ---- */

/* Open (with CREATE, first create if missing) the metadata object. */
static int
open_object(struct vs_meta_area *area, struct vs_store *st, bool create)
{
    char label[VS_LOCATION_MAX + sizeof(VS_META_OBJECT) + 2];

    snprintf(label, sizeof(label), "%s/%s", st->location, VS_META_OBJECT);
    if (create) {
        int r = vs_object_create(st, VS_META_OBJECT, 0);
        if (r < 0 && r != -EEXIST)
            return r;
    }
    return vs_object_open(st, VS_META_OBJECT, 0, label, &area->bs);
}

/* Size the state to the object and read every slot into it. */
static int
scan_all(struct vs_meta_area *area)
{
    int64_t size = vs_bdev_size(area->bs);
    uint64_t count;
    struct slot_view v;

    if (size < 0)
        return (int)size;
    count = ((uint64_t)size + SLOT_BYTES - 1) / SLOT_BYTES;
    if (count > VS_META_MAX_SLOTS)
        count = VS_META_MAX_SLOTS;
    area->slots = calloc(count > 0 ? count : 1, sizeof(*area->slots));
    if (area->slots == NULL)
        return -ENOMEM;
    area->nslots = (uint32_t)count;
    area->free_hint = area->nslots;
    for (uint32_t slot = 0; slot < area->nslots; slot++) {
        int r = scan_slot(area, slot, &v);

        if (r < 0)
            return r;
    }
    return 0;
}

int
vs_meta_area_open(struct vs_store *st, bool create, struct vs_meta_area **out)
{
    struct vs_meta_area *area;
    int r;

    area = calloc(1, sizeof(*area));
    if (area == NULL)
        return -ENOMEM;
    pthread_mutex_init(&area->lock, NULL);
    area->flush_epoch = 1; /* slots loaded from storage: B is durable */
    r = posix_memalign((void **)&area->buf, VS_RECORD_SIZE, SLOT_BYTES);
    if (r != 0) {
        area->buf = NULL;
        vs_meta_area_close(area);
        return -r;
    }
    r = open_object(area, st, create);
    if (r == 0)
        r = scan_all(area);
    if (r < 0) {
        vs_log_debug(VS_LOG_CAT_META, "metadata of %s: open failed: %s",
                     st->location, strerror(-r));
        vs_meta_area_close(area);
        return r;
    }
    *out = area;
    return 0;
}

void
vs_meta_area_close(struct vs_meta_area *area)
{
    if (area == NULL)
        return;
    vs_bdev_close(area->bs);
    free(area->slots);
    free(area->buf);
    pthread_mutex_destroy(&area->lock);
    free(area);
}
