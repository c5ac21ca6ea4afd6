/*
 * The central metadata record: how a domain describes itself, its images
 * and its volumes on its own storage, so that any host can rebuild its view
 * from the storage alone.
 *
 * One record fills one VS_RECORD_SIZE block (a multiple of every backend's
 * sector size, so each record is written by one aligned request on a file,
 * an NFS file, a LUN region or an LV).  Layout, all integers little-endian:
 *
 *   offset size  field
 *   0      8     magic "VSTORREC"
 *   8      2     format major version (VS_RECORD_VERSION); newer: refused
 *   10     2     format minor version; newer minors only add keys
 *   12     4     header size in bytes (VS_RECORD_HEADER_SIZE)
 *   16     8     generation: bumped on every rewrite of the slot
 *   24     4     slot index this record was written for
 *   28     4     payload length in bytes
 *   32     4     CRC-32C of bytes [0, header size + payload length) with
 *                this field taken as zero
 *   36     28    reserved, zero
 *   64     ...   payload: UTF-8 "key=value\n" lines; unknown keys are kept
 *                and ignored (self-describing, forward compatible)
 *   rest         zero
 *
 * A block that is all zeros is an empty slot.  Anything else that does not
 * check out (magic, sizes, CRC, required keys) is corrupt or torn and is
 * reported, never used.
 */
#ifndef VS_RECORD_H
#define VS_RECORD_H

#include <stdint.h>
#include <stddef.h>

#include "vs/options.h"

#define VS_RECORD_SIZE 4096
#define VS_RECORD_HEADER_SIZE 64
#define VS_RECORD_VERSION 1
/* minor 1: both copies of a slot are written (A, then B), so at rest they
 * agree; records may carry "slots", "pending" and "retired".
 * minor 2: a domain record may carry "options", its driver options (an
 * option list, <vs/options.h>; never a secret) */
#define VS_RECORD_MINOR 2

#define VS_UUID_LEN 36      /* text form, without the NUL */
#define VS_NAME_MAX 128     /* bytes of a domain, image or volume name */
#define VS_FORMAT_MAX 15    /* "raw", "qcow2" */
#define VS_OBJECT_MAX 63    /* object name on the store */
#define VS_LOCATION_MAX 511 /* a store location */

enum vs_record_kind {
    VS_REC_FREE = 0,   /* a released slot (written, so a free is atomic) */
    VS_REC_DOMAIN = 1, /* slot 0: the domain itself */
    VS_REC_IMAGE = 2,
    VS_REC_VOLUME = 3,
};

struct vs_record {
    uint32_t slot;
    uint64_t generation;
    enum vs_record_kind kind;
    char uuid[VS_UUID_LEN + 1];
    /* the image's domain uuid, or the volume's image uuid; "" for a domain */
    char parent_uuid[VS_UUID_LEN + 1];
    char name[VS_NAME_MAX + 1];
    int64_t created; /* seconds since the epoch, UTC */
    /* volumes only */
    char format[VS_FORMAT_MAX + 1];     /* "raw" or "qcow2" */
    char object[VS_OBJECT_MAX + 1];     /* object name on the store */
    char backing_uuid[VS_UUID_LEN + 1]; /* parent layer, "" for a base */
    uint32_t flags;                     /* enum vs_record_flags */
    /* volumes only: an object being made under this record's protection
     * (a new volume's own, a snapshot's new top, a new layer); a rescan
     * that finds it still named here removes it, the step never ended */
    char pending_object[VS_OBJECT_MAX + 1];
    /* volumes only: an object this record gave up (the step ended); a
     * rescan removes it unless another record names it */
    char retired_object[VS_OBJECT_MAX + 1];
    /* domain only: the metadata area's size in slots when written (0:
     * unknown); an area found shorter lost records */
    uint32_t area_slots;
    /* domain only: its driver options as text (<vs/options.h>), "" for
     * none; secrets are never here */
    char options[VS_OPTIONS_TEXT_MAX + 1];
    uint16_t minor; /* decode: the minor version the record was written in */
};

enum vs_record_flags {
    VS_RECF_READONLY = 1 << 0, /* a frozen layer (snapshot, has children) */
    VS_RECF_REMOVING = 1 << 1, /* removal started: finish it on rescan */
    /* a snapshot being taken: kept if a volume names it as backing, else
     * dropped on rescan */
    VS_RECF_PENDING = 1 << 2,
    VS_RECF_MERGE_CHILD = 1 << 3, /* being merged into its child */
    /* being merged the other way: its one child's own layer is copied down
     * into this layer's object, which the child then takes over */
    VS_RECF_MERGE_DOWN = 1 << 4,
    /* a new volume whose object (pending_object) is being made: a rescan
     * removes the object and frees the record */
    VS_RECF_CREATING = 1 << 5,
};

/* Encode REC into BUF (VS_RECORD_SIZE bytes), computing the CRC.  -EINVAL if
 * a field is invalid, -E2BIG if the payload does not fit. */
int vs_record_encode(const struct vs_record *rec, void *buf);

/* Decode one block.  Returns 0 and fills OUT; -ENOENT for an empty (all
 * zero) block; -EBADMSG for a bad magic, size or CRC (corrupt or torn);
 * -EPROTONOSUPPORT for a newer major version; -EINVAL for a checksummed
 * record whose payload lacks a required key or has a malformed value. */
int vs_record_decode(const void *buf, size_t len, struct vs_record *out);

/* A human name for a decode error, for log lines. */
const char *vs_record_strerror(int err);

#endif
