/*
 * Fuzz harness for the metadata record decoder.
 *
 * LLVMFuzzerTestOneInput decodes any bytes, then the same bytes with the
 * CRC recomputed ("resealed": most mutations break the CRC, and the payload
 * parser is behind it); whatever decodes must encode again and decode to
 * the same record (so the decoder never accepts what the encoder would
 * refuse).  Built with -DVS_LIBFUZZER and
 * -fsanitize=fuzzer it is a libFuzzer target.
 *
 * Built without libFuzzer, main() runs a fixed number of deterministic
 * mutations of valid encoded records through the same function, for the
 * test suite (which also runs it under ASan/UBSan).  Each input is passed
 * in a heap buffer of exactly its length, so that ASan sees any read past
 * it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vs/record.h"
#include "vs/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
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

/* Recompute the CRC over what the header claims, if that is in bounds. */
static void
reseal(unsigned char *b, size_t len)
{
    uint32_t hsize, plen, crc;

    if (len < 64)
        return;
    hsize = (uint32_t)b[12] | (uint32_t)b[13] << 8 | (uint32_t)b[14] << 16 |
            (uint32_t)b[15] << 24;
    plen = (uint32_t)b[28] | (uint32_t)b[29] << 8 | (uint32_t)b[30] << 16 |
           (uint32_t)b[31] << 24;
    if (hsize < 64 || hsize > len || plen > len - hsize)
        return;
    memset(b + 32, 0, 4);
    crc = vs_crc32c(0, b, hsize + plen);
    for (int i = 0; i < 4; i++)
        b[32 + i] = (unsigned char)(crc >> (8 * i));
}

/* Decode DATA; what decodes must encode and decode to the same record. */
static void
check_decode(const uint8_t *data, size_t size)
{
    static unsigned char block[VS_RECORD_SIZE];
    struct vs_record rec, again;
    int r;

    r = vs_record_decode(data, size, &rec);
    if (vs_record_strerror(r) == NULL)
        abort();
    if (r < 0)
        return;
    if (vs_record_encode(&rec, block) != 0 ||
        vs_record_decode(block, sizeof(block), &again) != 0 ||
        !same_record(&rec, &again))
        abort(); /* accepted something that does not round-trip */
}

/* The input as it is, then with its CRC fixed (to reach the payload parser,
 * which a random input almost never gets past the checksum to). */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *copy;

    check_decode(data, size);
    if (size < 64 || size > VS_RECORD_SIZE)
        return 0;
    copy = malloc(size);
    if (copy == NULL)
        return 0;
    memcpy(copy, data, size);
    reseal(copy, size);
    check_decode(copy, size);
    free(copy);
    return 0;
}

#ifndef VS_LIBFUZZER

#define ITERATIONS 20000

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

/* xorshift64*: deterministic, so a failure reproduces. */
static uint32_t
rng(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return (uint32_t)((rng_state * 0x2545f4914f6cdd1dull) >> 32);
}

static void
make_seeds(unsigned char seeds[][VS_RECORD_SIZE], int *count)
{
    struct vs_record rec = {
        .slot = 3,
        .generation = 17,
        .kind = VS_REC_VOLUME,
        .uuid = "0b6e3c1e-8a39-4d2e-9c1f-3f0d2a5b7c01",
        .parent_uuid = "7f1d2c3b-4a59-4e68-b7a6-9c8d0e1f2a3b",
        .name = "disk \xc3\xa9",
        .created = 1795319360,
        .format = "qcow2",
        .object = "0b6e3c1e-8a39-4d2e-9c1f-3f0d2a5b7c01",
        .backing_uuid = "c0ffee00-1234-4abc-8def-0123456789ab",
        .flags = 1,
    };
    int n = 0;

    vs_record_encode(&rec, seeds[n++]);
    rec.kind = VS_REC_IMAGE;
    vs_record_encode(&rec, seeds[n++]);
    rec.kind = VS_REC_DOMAIN;
    rec.parent_uuid[0] = '\0';
    vs_record_encode(&rec, seeds[n++]);
    rec.kind = VS_REC_FREE;
    vs_record_encode(&rec, seeds[n++]);
    *count = n;
}

static const char *const fragments[] = {
    "kind=",
    "volume",
    "\n",
    "=",
    "uuid=",
    "name=",
    "created=-",
    "flags=4294967295",
    "99999999999999999999",
    "\xc0\xaf",
    "\xff",
    "zz=",
};

/* Apply one random mutation to B (VS_RECORD_SIZE bytes); shrink *LEN. */
static void
mutate(unsigned char *b, size_t *len)
{
    uint32_t what = rng() % 6, pos = rng() % VS_RECORD_SIZE;
    uint32_t head = 64 + rng() % 400; /* mostly within header and payload */

    switch (what) {
    case 0:
        b[head % VS_RECORD_SIZE] ^= (unsigned char)(1u << (rng() % 8));
        break;
    case 1:
        b[pos % 72] = (unsigned char)rng(); /* the header */
        break;
    case 2: {
        const char *f =
            fragments[rng() % (sizeof(fragments) / sizeof(fragments[0]))];
        size_t flen = strlen(f);

        if (head + flen <= VS_RECORD_SIZE)
            memcpy(b + head, f, flen); /* NOLINT: bytes, no NUL */
        break;
    }
    case 3:
        b[28 + rng() % 4] = (unsigned char)rng(); /* payload length */
        break;
    case 4:
        *len = rng() % (*len + 1);
        break;
    default:
        memmove(b + 64 + rng() % 200, b + 64 + rng() % 200, rng() % 100);
        break;
    }
}

int
main(void)
{
    static unsigned char seeds[4][VS_RECORD_SIZE];
    static unsigned char work[VS_RECORD_SIZE];
    int nseeds;

    make_seeds(seeds, &nseeds);
    for (int i = 0; i < ITERATIONS; i++) {
        size_t len = VS_RECORD_SIZE;
        unsigned char *copy;
        int rounds = 1 + (int)(rng() % 4);

        memcpy(work, seeds[rng() % (uint32_t)nseeds], VS_RECORD_SIZE);
        for (int m = 0; m < rounds; m++)
            mutate(work, &len);
        copy = malloc(len > 0 ? len : 1);
        if (copy == NULL)
            return 1;
        memcpy(copy, work, len);
        LLVMFuzzerTestOneInput(copy, len);
        free(copy);
    }
    printf("fuzz_record: %d inputs decoded\n", ITERATIONS);
    return 0;
}

#endif
