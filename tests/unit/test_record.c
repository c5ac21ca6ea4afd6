/*
 * Unit test of the metadata record format: encode/decode round trips for
 * every kind, the encoder's checks, and each way a block can be wrong on
 * storage (bad magic, bit flips, bad sizes, torn writes, a newer major
 * version, missing, duplicate or malformed keys), plus the forward
 * compatible cases (unknown keys, a newer minor version).
 *
 * Blocks with arbitrary payloads are built by craft(), which lays out the
 * header by hand and computes the CRC, so that the decoder's payload rules
 * can be tested behind a valid checksum.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "tap.h"
#include "vs/record.h"
#include "vs/util.h"

#define UUID_A "0b6e3c1e-8a39-4d2e-9c1f-3f0d2a5b7c01"
#define UUID_B "7f1d2c3b-4a59-4e68-b7a6-9c8d0e1f2a3b"
#define UUID_C "c0ffee00-1234-4abc-8def-0123456789ab"

static unsigned char block[VS_RECORD_SIZE];
static unsigned char other[VS_RECORD_SIZE];

static void
put_le(unsigned char *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* Recompute the CRC of B after the test changed it on purpose. */
static void
reseal(unsigned char *b)
{
    uint32_t len = (uint32_t)b[28] | (uint32_t)b[29] << 8 |
                   (uint32_t)b[30] << 16 | (uint32_t)b[31] << 24;

    if (len > VS_RECORD_SIZE - 64)
        len = VS_RECORD_SIZE - 64; /* a bad length: the CRC is moot */
    put_le(b + 32, 0, 4);
    put_le(b + 32, vs_crc32c(0, b, 64 + len), 4);
}

/* Build a block with MAJOR version and PAYLOAD, correctly checksummed. */
static void
craft(unsigned char *b, unsigned major, const char *payload)
{
    size_t len = strlen(payload);

    memset(b, 0, VS_RECORD_SIZE);
    memcpy(b, "VSTORREC", 8); /* NOLINT: bytes, no NUL */
    put_le(b + 8, major, 2);
    put_le(b + 12, 64, 4);
    put_le(b + 16, 42, 8);
    put_le(b + 24, 7, 4);
    put_le(b + 28, len, 4);
    memcpy(b + 64, payload, len); /* NOLINT: bytes, no NUL */
    reseal(b);
}

static int
decode_payload(const char *payload, struct vs_record *out)
{
    craft(block, VS_RECORD_VERSION, payload);
    return vs_record_decode(block, sizeof(block), out);
}

static void
make_volume(struct vs_record *rec)
{
    memset(rec, 0, sizeof(*rec));
    rec->slot = 5;
    rec->generation = 9;
    rec->kind = VS_REC_VOLUME;
    strcpy(rec->uuid, UUID_A);
    strcpy(rec->parent_uuid, UUID_B);
    strcpy(rec->name, "root disk \xc3\xa9");
    rec->created = 1795319360;
    strcpy(rec->format, "qcow2");
    strcpy(rec->object, UUID_A);
    strcpy(rec->backing_uuid, UUID_C);
    rec->flags = VS_RECF_READONLY | VS_RECF_REMOVING;
}

static bool
same_record(const struct vs_record *a, const struct vs_record *b)
{
    return a->slot == b->slot && a->generation == b->generation &&
           a->kind == b->kind && strcmp(a->uuid, b->uuid) == 0 &&
           strcmp(a->parent_uuid, b->parent_uuid) == 0 &&
           strcmp(a->name, b->name) == 0 && a->created == b->created &&
           strcmp(a->format, b->format) == 0 &&
           strcmp(a->object, b->object) == 0 &&
           strcmp(a->backing_uuid, b->backing_uuid) == 0 &&
           a->flags == b->flags;
}

static void
test_round_trips(void)
{
    struct vs_record rec, out;

    make_volume(&rec);
    is_int(vs_record_encode(&rec, block), 0, "encode a volume");
    ok(memcmp(block, "VSTORREC", 8) == 0, "magic in place");
    ok(memcmp(block + 64, "kind=volume\n", 12) == 0, "payload starts kind=");
    is_int(vs_record_decode(block, sizeof(block), &out), 0, "decode it");
    ok(same_record(&rec, &out), "volume round trip");

    rec.backing_uuid[0] = '\0';
    rec.created = -12345;
    rec.flags = 0;
    vs_record_encode(&rec, block);
    is_int(vs_record_decode(block, sizeof(block), &out), 0, "base volume");
    ok(same_record(&rec, &out), "base volume, negative time: round trip");

    make_volume(&rec);
    rec.kind = VS_REC_IMAGE;
    rec.format[0] = rec.object[0] = rec.backing_uuid[0] = '\0';
    is_int(vs_record_encode(&rec, block), 0, "encode an image");
    is_int(vs_record_decode(block, sizeof(block), &out), 0, "decode it");
    ok(same_record(&rec, &out), "image round trip");

    rec.kind = VS_REC_DOMAIN;
    rec.slot = 0;
    rec.parent_uuid[0] = '\0';
    is_int(vs_record_encode(&rec, block), 0, "encode a domain");
    is_int(vs_record_decode(block, sizeof(block), &out), 0, "decode it");
    ok(same_record(&rec, &out), "domain round trip");
}

static void
test_free_and_irrelevant_fields(void)
{
    struct vs_record rec, out;

    make_volume(&rec);
    rec.kind = VS_REC_FREE;
    is_int(vs_record_encode(&rec, block), 0, "encode a free slot");
    is_int(vs_record_decode(block, sizeof(block), &out), 0, "decode it");
    ok(out.kind == VS_REC_FREE && out.slot == 5 && out.generation == 9 &&
           out.uuid[0] == '\0' && out.name[0] == '\0',
       "free record keeps slot and generation only");

    make_volume(&rec);
    rec.kind = VS_REC_IMAGE; /* volume fields left set: not written */
    is_int(vs_record_encode(&rec, block), 0, "image with stray fields");
    vs_record_decode(block, sizeof(block), &out);
    ok(out.object[0] == '\0' && out.format[0] == '\0',
       "fields of other kinds are not stored");
}

static void
test_encode_checks(void)
{
    struct vs_record rec;

    make_volume(&rec);
    strcpy(rec.uuid, "not-a-uuid");
    is_int(vs_record_encode(&rec, block), -EINVAL, "encode: bad uuid");
    make_volume(&rec);
    strcpy(rec.name, "a/b");
    is_int(vs_record_encode(&rec, block), -EINVAL, "encode: bad name");
    make_volume(&rec);
    strcpy(rec.name, "new\nline");
    is_int(vs_record_encode(&rec, block), -EINVAL, "encode: newline");
    make_volume(&rec);
    rec.object[0] = '\0';
    is_int(vs_record_encode(&rec, block), -EINVAL, "encode: no object");
    make_volume(&rec);
    strcpy(rec.object, "../escape");
    is_int(vs_record_encode(&rec, block), -EINVAL, "encode: unsafe object");
    make_volume(&rec);
    strcpy(rec.backing_uuid, "xyz");
    is_int(vs_record_encode(&rec, block), -EINVAL, "encode: bad backing");
    make_volume(&rec);
    rec.parent_uuid[0] = '\0';
    is_int(vs_record_encode(&rec, block), -EINVAL, "encode: no parent");
    make_volume(&rec);
    rec.kind = VS_REC_DOMAIN;
    is_int(vs_record_encode(&rec, block), -EINVAL, "encode: domain parent");
    make_volume(&rec);
    rec.kind = (enum vs_record_kind)7;
    is_int(vs_record_encode(&rec, block), -EINVAL, "encode: bad kind");
    make_volume(&rec);
    memset(rec.format, 'x', sizeof(rec.format));
    is_int(vs_record_encode(&rec, block), -EINVAL, "encode: unterminated");
}

static void
test_corruption(void)
{
    struct vs_record rec, out;

    make_volume(&rec);
    vs_record_encode(&rec, other);

    memcpy(block, other, sizeof(block));
    block[0] = 'X';
    is_int(vs_record_decode(block, sizeof(block), &out), -EBADMSG, "bad magic");
    memcpy(block, other, sizeof(block));
    block[64 + 20] ^= 0x10;
    is_int(vs_record_decode(block, sizeof(block), &out), -EBADMSG,
           "flipped payload bit");
    memcpy(block, other, sizeof(block));
    block[16] ^= 0x01;
    is_int(vs_record_decode(block, sizeof(block), &out), -EBADMSG,
           "flipped generation bit");
    memcpy(block, other, sizeof(block));
    block[32] ^= 0x80;
    is_int(vs_record_decode(block, sizeof(block), &out), -EBADMSG,
           "flipped CRC bit");
    memcpy(block, other, sizeof(block));
    block[28] -= 10;
    is_int(vs_record_decode(block, sizeof(block), &out), -EBADMSG,
           "truncated payload length");
    memcpy(block, other, sizeof(block));
    put_le(block + 28, VS_RECORD_SIZE, 4);
    reseal(block);
    is_int(vs_record_decode(block, sizeof(block), &out), -EBADMSG,
           "payload length past the block, resealed");
    memcpy(block, other, sizeof(block));
    put_le(block + 12, 32, 4);
    reseal(block);
    is_int(vs_record_decode(block, sizeof(block), &out), -EBADMSG,
           "header size too small, resealed");
    memcpy(block, other, sizeof(block));
    put_le(block + 8, 0, 2);
    reseal(block);
    is_int(vs_record_decode(block, sizeof(block), &out), -EBADMSG,
           "major version 0");
    is_int(vs_record_decode(other, 100, &out), -EBADMSG,
           "buffer shorter than the record");
    is_int(vs_record_decode(other, 10, &out), -EBADMSG,
           "buffer shorter than the header");
}

static void
test_versions(void)
{
    struct vs_record out;

    craft(block, VS_RECORD_VERSION + 1, "kind=free\n");
    is_int(vs_record_decode(block, sizeof(block), &out), -EPROTONOSUPPORT,
           "future major version");
    craft(block, VS_RECORD_VERSION, "kind=free\n");
    put_le(block + 10, VS_RECORD_MINOR + 3, 2);
    reseal(block);
    is_int(vs_record_decode(block, sizeof(block), &out), 0,
           "newer minor version accepted");
}

/* Every tear between an old and a new version of the same slot. */
static void
test_torn(void)
{
    static unsigned char old_b[VS_RECORD_SIZE], new_b[VS_RECORD_SIZE];
    struct vs_record rec, out;
    size_t half;
    bool all = true;

    make_volume(&rec);
    rec.generation = 1;
    vs_record_encode(&rec, old_b);
    rec.generation = 2;
    strcpy(rec.name, "a rather longer name for the new version");
    vs_record_encode(&rec, new_b);
    half = (64 + (size_t)new_b[28]) / 2;
    memcpy(block, new_b, half);
    memcpy(block + half, old_b + half, sizeof(block) - half);
    is_int(vs_record_decode(block, sizeof(block), &out), -EBADMSG,
           "torn: first half new, second half old");

    for (size_t tear = 1; tear < VS_RECORD_SIZE; tear++) {
        memcpy(block, new_b, tear);
        memcpy(block + tear, old_b + tear, sizeof(block) - tear);
        if (memcmp(block, new_b, sizeof(block)) == 0 ||
            memcmp(block, old_b, sizeof(block)) == 0)
            continue;
        all = all && vs_record_decode(block, sizeof(block), &out) == -EBADMSG;
    }
    ok(all, "every tear point that mixes versions is caught");
}

static void
test_empty(void)
{
    struct vs_record out;

    memset(block, 0, sizeof(block));
    is_int(vs_record_decode(block, sizeof(block), &out), -ENOENT,
           "all-zero block");
    is_int(vs_record_decode(block, 100, &out), -ENOENT, "short zero buffer");
    block[4000] = 1;
    is_int(vs_record_decode(block, sizeof(block), &out), -EBADMSG,
           "zero but one stray byte");
}

#define VOL_KEYS                                                               \
    "uuid=" UUID_A "\nparent=" UUID_B "\nname=v\ncreated=5\n"                  \
    "format=raw\nobject=" UUID_A "\n"

static void
test_payload_keys(void)
{
    struct vs_record out;

    is_int(decode_payload("kind=volume\ncolor=blue\n" VOL_KEYS "zzz=\n", &out),
           0, "unknown keys ignored");
    ok(strcmp(out.name, "v") == 0 && out.created == 5 && out.slot == 7 &&
           out.generation == 42,
       "fields around unknown keys parsed");
    is_int(decode_payload("kind=volume\n" VOL_KEYS "flags=4294967295\n", &out),
           0, "largest flags");
    is_int(decode_payload("kind=volume\nuuid=" UUID_A "\nparent=" UUID_B
                          "\ncreated=5\nformat=raw\nobject=o\n",
                          &out),
           -EINVAL, "missing required key (name)");
    is_int(decode_payload("kind=volume\nuuid=" UUID_A "\nparent=" UUID_B
                          "\nname=v\ncreated=5\nformat=raw\n",
                          &out),
           -EINVAL, "volume without object");
    is_int(decode_payload("kind=image\nuuid=" UUID_A "\nname=v\ncreated=5\n",
                          &out),
           -EINVAL, "image without parent");
    is_int(decode_payload(VOL_KEYS, &out), -EINVAL, "no kind");
    is_int(decode_payload("kind=volume\n" VOL_KEYS "name=w\n", &out), -EINVAL,
           "duplicate key");
    is_int(decode_payload("kind=domain\nkind=domain\n", &out), -EINVAL,
           "duplicate kind");
    is_int(decode_payload("", &out), -EINVAL, "empty payload");
}

static void
test_payload_values(void)
{
    struct vs_record out;

    is_int(decode_payload("kind=volume\n" VOL_KEYS "flags=-1\n", &out), -EINVAL,
           "negative flags");
    is_int(decode_payload("kind=volume\n" VOL_KEYS "flags=4294967296\n", &out),
           -EINVAL, "flags past 32 bits");
    is_int(decode_payload("kind=volume\n" VOL_KEYS "flags=\n", &out), -EINVAL,
           "empty flags");
    is_int(decode_payload("kind=volume\n" VOL_KEYS "flags=1x\n", &out), -EINVAL,
           "flags with a trailing letter");
    is_int(decode_payload("kind=domain\nuuid=" UUID_A
                          "\nname=d\ncreated=-9223372036854775808\n",
                          &out),
           0, "created = INT64_MIN");
    ok(out.created == INT64_MIN, "INT64_MIN parsed");
    is_int(decode_payload("kind=domain\nuuid=" UUID_A
                          "\nname=d\ncreated=9223372036854775808\n",
                          &out),
           -EINVAL, "created past INT64_MAX");
    is_int(decode_payload("kind=table\n", &out), -EINVAL, "unknown kind");
    is_int(decode_payload("kind=domain\nuuid=xyz\nname=d\ncreated=1\n", &out),
           -EINVAL, "malformed uuid");
    is_int(decode_payload("kind=domain\nuuid=" UUID_A "\nname=.d\ncreated=1\n",
                          &out),
           -EINVAL, "refused name");
    is_int(decode_payload("kind=domain\nuuid=" UUID_A "\nparent=" UUID_B
                          "\nname=d\ncreated=1\n",
                          &out),
           0, "domain with a parent key: the key is ignored");
    ok(out.parent_uuid[0] == '\0', "domain has no parent");
    is_int(decode_payload("kind=volume\nuuid=" UUID_A "\nparent=" UUID_B
                          "\nname=v\ncreated=5\nformat=raw\nobject=a/b\n",
                          &out),
           -EINVAL, "object with a slash");
}

static void
test_payload_syntax(void)
{
    struct vs_record out;

    is_int(decode_payload("kind=free", &out), -EINVAL, "last line without \\n");
    is_int(decode_payload("kind=free\nnoequals\n", &out), -EINVAL,
           "line without '='");
    is_int(decode_payload("kind=free\n=value\n", &out), -EINVAL,
           "line with an empty key");
    is_int(decode_payload("kind=free\n\n", &out), -EINVAL, "empty line");
    craft(block, VS_RECORD_VERSION, "kind=free\nx=ab\n");
    block[64 + 12] = '\0';
    reseal(block);
    is_int(vs_record_decode(block, sizeof(block), &out), -EINVAL,
           "NUL inside the payload");
}

static void
test_strerror(void)
{
    const int errs[] = {0, -ENOENT, -EBADMSG, -EPROTONOSUPPORT, -EINVAL, -EIO};
    bool all = true;

    for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++)
        all = all && vs_record_strerror(errs[i]) != NULL;
    ok(all, "every error has a description");
    ok(strcmp(vs_record_strerror(-EBADMSG), vs_record_strerror(-ENOENT)) != 0,
       "corrupt and empty are told apart");
}

int
main(void)
{
    test_round_trips();
    test_free_and_irrelevant_fields();
    test_encode_checks();
    test_corruption();
    test_versions();
    test_torn();
    test_empty();
    test_payload_keys();
    test_payload_values();
    test_payload_syntax();
    test_strerror();
    return tap_done();
}
