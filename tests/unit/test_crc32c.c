/*
 * Unit test of vs_crc32c: the published check values (the "123456789"
 * check and the iSCSI vectors of RFC 3720), continuation across splits,
 * and agreement with a plain bit-at-a-time reference on buffers of every
 * small length and alignment (which exercises the slicing-by-8 path, its
 * tail, and unaligned starts).
 */
#include <stdint.h>
#include <string.h>

#include "tap.h"
#include "vs/util.h"

/* The definition itself: one bit at a time, reflected polynomial. */
static uint32_t
crc_reference(const unsigned char *p, size_t len)
{
    uint32_t crc = 0xffffffffu;

    while (len-- > 0) {
        crc ^= *p++;
        for (int bit = 0; bit < 8; bit++)
            crc = (crc >> 1) ^ ((crc & 1) ? 0x82F63B78u : 0);
    }
    return ~crc;
}

static void
test_check_values(void)
{
    unsigned char buf[32];

    is_int(vs_crc32c(0, "123456789", 9), 0xE3069283, "check value");
    is_int(vs_crc32c(0, "", 0), 0, "empty buffer");
    memset(buf, 0, sizeof(buf));
    is_int(vs_crc32c(0, buf, 32), 0x8A9136AA, "RFC 3720: 32 zeros");
    memset(buf, 0xff, sizeof(buf));
    is_int(vs_crc32c(0, buf, 32), 0x62A8AB43, "RFC 3720: 32 ones");
    for (int i = 0; i < 32; i++)
        buf[i] = (unsigned char)i;
    is_int(vs_crc32c(0, buf, 32), 0x46DD794E, "RFC 3720: ascending");
    for (int i = 0; i < 32; i++)
        buf[i] = (unsigned char)(31 - i);
    is_int(vs_crc32c(0, buf, 32), 0x113FDB5C, "RFC 3720: descending");
}

static void
test_continuation(void)
{
    const char *text = "The quick brown fox jumps over the lazy dog";
    size_t len = strlen(text);
    uint32_t whole = vs_crc32c(0, text, len);
    bool all = true;

    for (size_t split = 0; split <= len; split++) {
        uint32_t crc = vs_crc32c(0, text, split);

        crc = vs_crc32c(crc, text + split, len - split);
        all = all && crc == whole;
    }
    ok(all, "continuing from any split gives the same CRC");
}

static void
test_against_reference(void)
{
    static unsigned char buf[600];
    uint32_t seed = 12345;
    bool all = true;

    for (size_t i = 0; i < sizeof(buf); i++) {
        seed = seed * 1103515245u + 12345u;
        buf[i] = (unsigned char)(seed >> 16);
    }
    for (size_t off = 0; off < 8; off++) {
        for (size_t len = 0; len + off <= 520; len++)
            all = all &&
                  vs_crc32c(0, buf + off, len) == crc_reference(buf + off, len);
    }
    ok(all, "table-driven CRC matches the bitwise reference");
}

int
main(void)
{
    test_check_values();
    test_continuation();
    test_against_reference();
    return tap_done();
}
