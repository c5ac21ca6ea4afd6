/*
 * A domain's metadata area: an array of record slots kept in the store's
 * object named VS_META_OBJECT, written through the generic block layer so
 * that it works the same on every backend.
 *
 * Slot i holds two copies, A at byte 2*i*VS_RECORD_SIZE and B right after
 * it.  A write goes to A, then B, each flushed, so at rest both copies
 * hold the newest record; a read takes the valid copy with the highest
 * generation.  Damage to one copy therefore loses nothing, and a write
 * torn by a crash leaves either the previous or the new version readable.
 * Slot 0 holds the domain record, which also records the area's size.
 *
 * Callers serialise writes to one area (the tree holds its domain's lock);
 * reads may run in parallel with nothing else.
 */
#ifndef VS_META_AREA_H
#define VS_META_AREA_H

#include <stdbool.h>
#include "vs/bdev.h"
#include "vs/record.h"

#define VS_META_OBJECT "metadata"
/* Records per domain (a slot index is 32 bits on disk): 1,048,576 slots,
 * 8 GiB of metadata when all are used; the object only grows as needed. */
#define VS_META_MAX_SLOTS (1u << 20)

struct vs_meta_area;

/* What loading found in one slot, for callers that report damage. */
struct vs_meta_slot_report {
    uint32_t slot;
    int copy_a; /* 0 valid, or the vs_record_decode error */
    int copy_b;
    /* the valid copy was written by the old one-copy protocol: the damaged
     * copy may have held a newer record, so the one used is only a hint */
    bool doubtful;
};

/* Open the area on the store's metadata object (creating the object when
 * create is set).  The area keeps OBJ open; close releases it. */
int vs_meta_area_open(struct vs_store *st, bool create,
                      struct vs_meta_area **out);
void vs_meta_area_close(struct vs_meta_area *area);

/* Read every slot.  For each slot holding a valid non-FREE record call
 * on_record; for each slot where some copy is damaged (even if the other
 * copy was used) call on_damage, if given.  A slot whose two copies are
 * both damaged yields no record.  Stops and returns a callback's non-zero
 * return value. */
int vs_meta_area_load(struct vs_meta_area *area,
                      int (*on_record)(const struct vs_record *rec, void *arg),
                      void (*on_damage)(const struct vs_meta_slot_report *r,
                                        void *arg),
                      void *arg);

/* Read the record in SLOT: 0, -ENOENT (empty or FREE) or a decode error
 * when both copies are damaged. */
int vs_meta_area_read(struct vs_meta_area *area, uint32_t slot,
                      struct vs_record *out);

/* Write REC durably into rec->slot (bumping rec->generation).  If
 * rec->slot is 0 and rec->kind is not VS_REC_DOMAIN, a free slot is
 * chosen first and stored in rec->slot. */
int vs_meta_area_write(struct vs_meta_area *area, struct vs_record *rec);

/* Whether every record the area should hold was found trustworthy: the
 * number of slots whose copies disagree (vs_meta_area_heal's work), or
 * -EUCLEAN with the reason in WHY (the domain record missing or unreadable,
 * the area shorter than the domain record says, a slot damaged beyond
 * both copies or doubtful).  A caller must then not remove or roll back
 * anything on the strength of missing records. */
int vs_meta_area_check(struct vs_meta_area *area, char *why, size_t len);

/* Restore full redundancy: rewrite every slot whose copies disagree (one
 * damaged, torn or older) from its newest valid copy, and preallocate the
 * area.  Doubtful slots are left alone.  Returns the slots rewritten. */
int vs_meta_area_heal(struct vs_meta_area *area);

/* Mark SLOT free, durably. */
int vs_meta_area_free(struct vs_meta_area *area, uint32_t slot);

#endif
