/*
 * CRC-32C (Castagnoli), the checksum of the metadata records.
 *
 * Reflected polynomial 0x82F63B78, initial value and final xor ~0, so that
 * vs_crc32c(0, "123456789", 9) == 0xE3069283 and a running CRC can be
 * continued by passing the previous result back in.
 *
 * Table-driven, slicing-by-8: table[0] is the classic byte-at-a-time table
 * and table[k][b] is the CRC of byte b followed by k zero bytes, so eight
 * input bytes are folded with eight lookups.  The bytes are assembled
 * explicitly, which keeps the code independent of host endianness and
 * alignment.  The tables are built once, on first use.
 */
#include <pthread.h>

#include "vs/util.h"

#define CRC32C_POLY 0x82F63B78u

static uint32_t crc_table[8][256];
static pthread_once_t crc_table_once = PTHREAD_ONCE_INIT;

static void
crc_table_init(void)
{
    for (uint32_t b = 0; b < 256; b++) {
        uint32_t crc = b;

        for (int bit = 0; bit < 8; bit++)
            crc = (crc >> 1) ^ ((crc & 1) ? CRC32C_POLY : 0);
        crc_table[0][b] = crc;
    }
    for (int k = 1; k < 8; k++) {
        for (int b = 0; b < 256; b++) {
            uint32_t prev = crc_table[k - 1][b];

            crc_table[k][b] = (prev >> 8) ^ crc_table[0][prev & 0xff];
        }
    }
}

/* Fold eight bytes at P into CRC. */
static uint32_t
crc_step8(uint32_t crc, const unsigned char *p)
{
    uint32_t lo = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 |
                         (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);

    return crc_table[7][lo & 0xff] ^ crc_table[6][(lo >> 8) & 0xff] ^
           crc_table[5][(lo >> 16) & 0xff] ^ crc_table[4][lo >> 24] ^
           crc_table[3][p[4]] ^ crc_table[2][p[5]] ^ crc_table[1][p[6]] ^
           crc_table[0][p[7]];
}

uint32_t
vs_crc32c(uint32_t crc, const void *buf, size_t len)
{
    const unsigned char *p = buf;

    pthread_once(&crc_table_once, crc_table_init);
    crc = ~crc;
    for (; len >= 8; len -= 8, p += 8)
        crc = crc_step8(crc, p);
    for (; len > 0; len--, p++)
        crc = (crc >> 8) ^ crc_table[0][(crc ^ *p) & 0xff];
    return ~crc;
}
