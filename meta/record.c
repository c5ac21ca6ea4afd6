/*
 * The on-storage metadata record (layout in <vs/record.h>): a 64-byte
 * little-endian header followed by a "key=value\n" text payload, the whole
 * block covered by a CRC-32C, padded with zeros to VS_RECORD_SIZE.
 *
 * Encoding checks the record first (the same rules decoding applies), then
 * writes only the keys that matter for its kind, so that what decodes is
 * exactly what was meant.
 *
 * Decoding trusts nothing: the bytes may be torn by a crash, rotted on the
 * storage, written by a newer program or made up by a fuzzer.  It checks,
 * in order, for an empty (all-zero) block, the magic, the major version,
 * the header and payload sizes against the buffer, and the CRC; only then
 * does it parse the payload line by line.  Known keys are parsed strictly
 * (a key seen twice, or a value that does not parse, makes the record
 * invalid), unknown keys are skipped so that newer minor versions can add
 * keys, and the keys a kind requires must all be there.  Fields that do not
 * belong to the record's kind are cleared.  Nothing is written to the
 * caller's struct unless the whole record checks out.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "vs/names.h"
#include "vs/record.h"
#include "vs/util.h"

#define RECORD_MAGIC "VSTORREC"
#define RECORD_MAGIC_LEN 8
#define OFF_MAJOR 8
#define OFF_MINOR 10
#define OFF_HEADER_SIZE 12
#define OFF_GENERATION 16
#define OFF_SLOT 24
#define OFF_PAYLOAD_LEN 28
#define OFF_CRC 32
#define CRC_LEN 4
#define PAYLOAD_MAX (VS_RECORD_SIZE - VS_RECORD_HEADER_SIZE)
/* the longest value a known key may have: a domain's options */
#define VALUE_MAX VS_OPTIONS_TEXT_MAX

/* ---- little-endian fields ---- */

static void
put_le(unsigned char *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint64_t
get_le(const unsigned char *p, int bytes)
{
    uint64_t v = 0;

    for (int i = 0; i < bytes; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* CRC of the first LEN bytes of BLOCK with the CRC field taken as zero. */
static uint32_t
block_crc(const unsigned char *block, size_t len)
{
    static const unsigned char zero[CRC_LEN];
    uint32_t crc;

    crc = vs_crc32c(0, block, OFF_CRC);
    crc = vs_crc32c(crc, zero, CRC_LEN);
    return vs_crc32c(crc, block + OFF_CRC + CRC_LEN, len - OFF_CRC - CRC_LEN);
}

/* ---- the payload keys ---- */

enum rec_key {
    KEY_KIND,
    KEY_UUID,
    KEY_PARENT,
    KEY_NAME,
    KEY_CREATED,
    KEY_FORMAT,
    KEY_OBJECT,
    KEY_BACKING,
    KEY_FLAGS,
    KEY_PENDING,
    KEY_RETIRED,
    KEY_SLOTS,
    KEY_OPTIONS,
    KEY_COUNT,
};

#define KEY_BIT(k) (1u << (k))

static const char *const key_names[KEY_COUNT] = {
    [KEY_KIND] = "kind",       [KEY_UUID] = "uuid",
    [KEY_PARENT] = "parent",   [KEY_NAME] = "name",
    [KEY_CREATED] = "created", [KEY_FORMAT] = "format",
    [KEY_OBJECT] = "object",   [KEY_BACKING] = "backing",
    [KEY_FLAGS] = "flags",     [KEY_PENDING] = "pending",
    [KEY_RETIRED] = "retired", [KEY_SLOTS] = "slots",
    [KEY_OPTIONS] = "options",
};

static const char *const kind_names[] = {
    [VS_REC_FREE] = "free",
    [VS_REC_DOMAIN] = "domain",
    [VS_REC_IMAGE] = "image",
    [VS_REC_VOLUME] = "volume",
};

#define KIND_COUNT (sizeof(kind_names) / sizeof(kind_names[0]))

/* The keys a record of KIND must carry. */
static unsigned
required_keys(enum vs_record_kind kind)
{
    unsigned keys = KEY_BIT(KEY_KIND);

    if (kind == VS_REC_FREE)
        return keys;
    keys |= KEY_BIT(KEY_UUID) | KEY_BIT(KEY_NAME) | KEY_BIT(KEY_CREATED);
    if (kind == VS_REC_IMAGE || kind == VS_REC_VOLUME)
        keys |= KEY_BIT(KEY_PARENT);
    if (kind == VS_REC_VOLUME)
        keys |= KEY_BIT(KEY_FORMAT) | KEY_BIT(KEY_OBJECT);
    return keys;
}

/* ---- field rules, shared by encode and decode ---- */

/* Whether FIELD (an array of SIZE bytes) holds a NUL-terminated string. */
static bool
terminated(const char *field, size_t size)
{
    return strnlen(field, size) < size;
}

/* A format or object name: a safe, non-empty path component of <= MAX. */
static bool
valid_token(const char *s, size_t max)
{
    return strlen(s) <= max && vs_name_check_stored(s) == 0;
}

static int
validate_volume(const struct vs_record *rec)
{
    if (!terminated(rec->format, sizeof(rec->format)) ||
        !terminated(rec->object, sizeof(rec->object)) ||
        !terminated(rec->backing_uuid, sizeof(rec->backing_uuid)) ||
        !terminated(rec->pending_object, sizeof(rec->pending_object)) ||
        !terminated(rec->retired_object, sizeof(rec->retired_object)))
        return -EINVAL;
    if (!valid_token(rec->format, VS_FORMAT_MAX) ||
        !valid_token(rec->object, VS_OBJECT_MAX))
        return -EINVAL;
    if ((rec->pending_object[0] &&
         !valid_token(rec->pending_object, VS_OBJECT_MAX)) ||
        (rec->retired_object[0] &&
         !valid_token(rec->retired_object, VS_OBJECT_MAX)))
        return -EINVAL;
    if (rec->backing_uuid[0] != '\0' && !vs_uuid_valid(rec->backing_uuid))
        return -EINVAL;
    return 0;
}

/* 0 if REC is a well-formed record of its kind, else -EINVAL. */
static int
validate(const struct vs_record *rec)
{
    struct vs_options opts;

    if ((unsigned)rec->kind >= KIND_COUNT)
        return -EINVAL;
    if (rec->kind == VS_REC_FREE)
        return 0;
    if (!terminated(rec->uuid, sizeof(rec->uuid)) ||
        !terminated(rec->parent_uuid, sizeof(rec->parent_uuid)) ||
        !terminated(rec->name, sizeof(rec->name)))
        return -EINVAL;
    if (!vs_uuid_valid(rec->uuid) || vs_name_check_stored(rec->name) < 0)
        return -EINVAL;
    if (rec->kind == VS_REC_DOMAIN && rec->parent_uuid[0] != '\0')
        return -EINVAL;
    if (!terminated(rec->options, sizeof(rec->options)) ||
        (rec->options[0] != '\0' &&
         vs_options_parse(rec->options, &opts, NULL, 0) < 0))
        return -EINVAL;
    if (rec->kind != VS_REC_DOMAIN && !vs_uuid_valid(rec->parent_uuid))
        return -EINVAL;
    if (rec->kind == VS_REC_VOLUME)
        return validate_volume(rec);
    return 0;
}

/* Clear the fields that do not belong to REC's kind. */
static void
normalise(struct vs_record *rec)
{
    if (rec->kind == VS_REC_FREE) {
        uint32_t slot = rec->slot;
        uint64_t generation = rec->generation;

        memset(rec, 0, sizeof(*rec));
        rec->slot = slot;
        rec->generation = generation;
        rec->kind = VS_REC_FREE;
        return;
    }
    if (rec->kind == VS_REC_DOMAIN)
        rec->parent_uuid[0] = '\0';
    if (rec->kind != VS_REC_VOLUME) {
        rec->format[0] = '\0';
        rec->object[0] = '\0';
        rec->backing_uuid[0] = '\0';
        rec->pending_object[0] = '\0';
        rec->retired_object[0] = '\0';
    }
    if (rec->kind != VS_REC_DOMAIN) {
        rec->area_slots = 0;
        rec->options[0] = '\0';
    }
}

/* ---- encoding ---- */

struct writer {
    char buf[PAYLOAD_MAX + 1]; /* + 1: room for snprintf's NUL */
    size_t len;
    bool overflow;
};

static void
emit(struct writer *w, enum rec_key key, const char *value)
{
    size_t room = sizeof(w->buf) - w->len;
    int n;

    if (w->overflow)
        return;
    n = snprintf(w->buf + w->len, room, "%s=%s\n", key_names[key], value);
    if (n < 0 || (size_t)n >= room)
        w->overflow = true;
    else
        w->len += (size_t)n;
}

static void
emit_number(struct writer *w, enum rec_key key, int64_t value)
{
    char text[24];

    snprintf(text, sizeof(text), "%" PRId64, value);
    emit(w, key, text);
}

static void
write_payload(const struct vs_record *rec, struct writer *w)
{
    emit(w, KEY_KIND, kind_names[rec->kind]);
    if (rec->kind == VS_REC_FREE)
        return;
    emit(w, KEY_UUID, rec->uuid);
    if (rec->kind != VS_REC_DOMAIN)
        emit(w, KEY_PARENT, rec->parent_uuid);
    emit(w, KEY_NAME, rec->name);
    emit_number(w, KEY_CREATED, rec->created);
    if (rec->kind == VS_REC_VOLUME) {
        emit(w, KEY_FORMAT, rec->format);
        emit(w, KEY_OBJECT, rec->object);
        if (rec->backing_uuid[0] != '\0')
            emit(w, KEY_BACKING, rec->backing_uuid);
        if (rec->pending_object[0] != '\0')
            emit(w, KEY_PENDING, rec->pending_object);
        if (rec->retired_object[0] != '\0')
            emit(w, KEY_RETIRED, rec->retired_object);
    }
    if (rec->kind == VS_REC_DOMAIN && rec->area_slots > 0)
        emit_number(w, KEY_SLOTS, rec->area_slots);
    if (rec->kind == VS_REC_DOMAIN && rec->options[0] != '\0')
        emit(w, KEY_OPTIONS, rec->options);
    emit_number(w, KEY_FLAGS, rec->flags);
}

int
vs_record_encode(const struct vs_record *rec, void *buf)
{
    unsigned char *b = buf;
    struct writer w = {.len = 0};
    size_t used;
    int r;

    r = validate(rec);
    if (r < 0)
        return r;
    write_payload(rec, &w);
    if (w.overflow)
        return -E2BIG;
    memset(b, 0, VS_RECORD_SIZE);
    memcpy(b, RECORD_MAGIC, RECORD_MAGIC_LEN); /* NOLINT: bytes, no NUL */
    put_le(b + OFF_MAJOR, VS_RECORD_VERSION, 2);
    put_le(b + OFF_MINOR, VS_RECORD_MINOR, 2);
    put_le(b + OFF_HEADER_SIZE, VS_RECORD_HEADER_SIZE, 4);
    put_le(b + OFF_GENERATION, rec->generation, 8);
    put_le(b + OFF_SLOT, rec->slot, 4);
    put_le(b + OFF_PAYLOAD_LEN, w.len, 4);
    memcpy(b + VS_RECORD_HEADER_SIZE, w.buf, w.len);
    used = VS_RECORD_HEADER_SIZE + w.len;
    put_le(b + OFF_CRC, block_crc(b, used), 4);
    return 0;
}

/* ---- decoding: the payload ---- */

/* Parse a decimal integer in [MIN, MAX], nothing else around it. */
static int
parse_integer(const char *s, int64_t min, int64_t max, int64_t *out)
{
    bool negative = (*s == '-');
    uint64_t limit = (uint64_t)max, v = 0;

    if (negative) {
        if (min >= 0)
            return -EINVAL;
        limit = (uint64_t)(-(min + 1)) + 1;
        s++;
    }
    if (*s == '\0')
        return -EINVAL;
    for (; *s != '\0'; s++) {
        unsigned digit = (unsigned)(*s - '0');

        if (*s < '0' || *s > '9')
            return -EINVAL;
        if (v > limit / 10 || (v == limit / 10 && digit > limit % 10))
            return -EINVAL;
        v = v * 10 + digit;
    }
    *out = negative ? (int64_t)(0 - v) : (int64_t)v;
    return 0;
}

static int
parse_kind(const char *value, enum vs_record_kind *out)
{
    for (size_t k = 0; k < KIND_COUNT; k++) {
        if (strcmp(value, kind_names[k]) == 0) {
            *out = (enum vs_record_kind)k;
            return 0;
        }
    }
    return -EINVAL;
}

/* Copy VALUE into a field of SIZE bytes; -EINVAL if it does not fit. */
static int
copy_value(char *field, size_t size, const char *value)
{
    size_t len = strlen(value);

    if (len >= size)
        return -EINVAL;
    memcpy(field, value, len + 1);
    return 0;
}

static int
parse_value(enum rec_key key, const char *value, struct vs_record *rec)
{
    int64_t n;
    int r;

    switch (key) {
    case KEY_KIND:
        return parse_kind(value, &rec->kind);
    case KEY_UUID:
        return copy_value(rec->uuid, sizeof(rec->uuid), value);
    case KEY_PARENT:
        return copy_value(rec->parent_uuid, sizeof(rec->parent_uuid), value);
    case KEY_NAME:
        return copy_value(rec->name, sizeof(rec->name), value);
    case KEY_CREATED:
        return parse_integer(value, INT64_MIN, INT64_MAX, &rec->created);
    case KEY_FORMAT:
        return copy_value(rec->format, sizeof(rec->format), value);
    case KEY_OBJECT:
        return copy_value(rec->object, sizeof(rec->object), value);
    case KEY_BACKING:
        return copy_value(rec->backing_uuid, sizeof(rec->backing_uuid), value);
    case KEY_FLAGS:
        r = parse_integer(value, 0, UINT32_MAX, &n);
        if (r == 0)
            rec->flags = (uint32_t)n;
        return r;
    case KEY_PENDING:
        return copy_value(rec->pending_object, sizeof(rec->pending_object),
                          value);
    case KEY_RETIRED:
        return copy_value(rec->retired_object, sizeof(rec->retired_object),
                          value);
    case KEY_SLOTS:
        r = parse_integer(value, 0, UINT32_MAX, &n);
        if (r == 0)
            rec->area_slots = (uint32_t)n;
        return r;
    case KEY_OPTIONS:
        return copy_value(rec->options, sizeof(rec->options), value);
    default:
        return -EINVAL;
    }
}

/* The known key spelled by the LEN bytes at S, or KEY_COUNT. */
static enum rec_key
lookup_key(const char *s, size_t len)
{
    for (int k = 0; k < KEY_COUNT; k++) {
        if (strlen(key_names[k]) == len && memcmp(s, key_names[k], len) == 0)
            return (enum rec_key)k;
    }
    return KEY_COUNT;
}

/* Parse one "key=value" line of LEN bytes (without its '\n'). */
static int
parse_line(const char *line, size_t len, struct vs_record *rec, unsigned *seen)
{
    const char *eq = memchr(line, '=', len);
    char value[VALUE_MAX + 1];
    size_t vlen;
    enum rec_key key;

    if (eq == NULL || eq == line || memchr(line, '\0', len) != NULL)
        return -EINVAL;
    key = lookup_key(line, (size_t)(eq - line));
    if (key == KEY_COUNT)
        return 0; /* a newer minor's key: ignored */
    if (*seen & KEY_BIT(key))
        return -EINVAL;
    *seen |= KEY_BIT(key);
    vlen = len - (size_t)(eq - line) - 1;
    if (vlen > VALUE_MAX)
        return -EINVAL;
    memcpy(value, eq + 1, vlen);
    value[vlen] = '\0';
    return parse_value(key, value, rec);
}

static int
parse_payload(const char *p, size_t len, struct vs_record *rec)
{
    unsigned seen = 0;

    while (len > 0) {
        const char *nl = memchr(p, '\n', len);
        size_t line_len;
        int r;

        if (nl == NULL)
            return -EINVAL; /* the last line lacks its '\n' */
        line_len = (size_t)(nl - p);
        r = parse_line(p, line_len, rec, &seen);
        if (r < 0)
            return r;
        p = nl + 1;
        len -= line_len + 1;
    }
    if (!(seen & KEY_BIT(KEY_KIND)))
        return -EINVAL;
    if ((seen & required_keys(rec->kind)) != required_keys(rec->kind))
        return -EINVAL;
    return 0;
}

/* ---- decoding: the block ---- */

static bool
all_zero(const unsigned char *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (p[i] != 0)
            return false;
    }
    return true;
}

/* Check the header of the LEN-byte block B; set the payload bounds. */
static int
check_header(const unsigned char *b, size_t len, size_t *payload_off,
             size_t *payload_len)
{
    uint64_t major, header_size, plen;

    if (len < VS_RECORD_HEADER_SIZE ||
        memcmp(b, RECORD_MAGIC, RECORD_MAGIC_LEN) != 0)
        return -EBADMSG;
    major = get_le(b + OFF_MAJOR, 2);
    if (major > VS_RECORD_VERSION)
        return -EPROTONOSUPPORT;
    if (major == 0)
        return -EBADMSG;
    header_size = get_le(b + OFF_HEADER_SIZE, 4);
    if (header_size < VS_RECORD_HEADER_SIZE || header_size > len)
        return -EBADMSG;
    plen = get_le(b + OFF_PAYLOAD_LEN, 4);
    if (plen > len - header_size)
        return -EBADMSG;
    if (get_le(b + OFF_CRC, 4) != block_crc(b, header_size + plen))
        return -EBADMSG;
    *payload_off = header_size;
    *payload_len = plen;
    return 0;
}

int
vs_record_decode(const void *buf, size_t len, struct vs_record *out)
{
    const unsigned char *b = buf;
    struct vs_record rec;
    size_t off, plen;
    int r;

    if (len > VS_RECORD_SIZE)
        len = VS_RECORD_SIZE;
    if (all_zero(b, len))
        return -ENOENT;
    r = check_header(b, len, &off, &plen);
    if (r < 0)
        return r;
    memset(&rec, 0, sizeof(rec));
    rec.generation = get_le(b + OFF_GENERATION, 8);
    rec.slot = (uint32_t)get_le(b + OFF_SLOT, 4);
    r = parse_payload((const char *)b + off, plen, &rec);
    if (r < 0)
        return r;
    normalise(&rec);
    rec.minor = (uint16_t)get_le(b + OFF_MINOR, 2);
    r = validate(&rec);
    if (r < 0)
        return r;
    *out = rec;
    return 0;
}

const char *
vs_record_strerror(int err)
{
    switch (err < 0 ? -err : err) {
    case 0:
        return "valid";
    case ENOENT:
        return "empty";
    case EBADMSG:
        return "corrupt or torn (bad magic, size or checksum)";
    case EPROTONOSUPPORT:
        return "written by a newer format version";
    case EINVAL:
        return "missing or malformed field";
    case E2BIG:
        return "too large for a record";
    default:
        return "unreadable";
    }
}
