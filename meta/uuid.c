/*
 * Identifiers of domains, images and volumes: random (version 4) uuids in
 * their canonical lower-case text form, "xxxxxxxx-xxxx-4xxx-Nxxx-xxxxxxxxxxxx".
 *
 * The 16 random bytes come from getrandom(2); the version nibble is forced
 * to 4 and the variant bits to 10 (RFC 4122).  vs_uuid_valid accepts any
 * version, only checking the shape, because uuids written by other tools
 * may be of other versions.
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <sys/random.h>

#include "vs/record.h"
#include "vs/util.h"

#define UUID_BYTES 16

/* Fill BUF with LEN random bytes, retrying interrupted or short calls. */
static int
random_bytes(unsigned char *buf, size_t len)
{
    size_t done = 0;

    while (done < len) {
        ssize_t n = getrandom(buf + done, len - done, 0);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        done += (size_t)n;
    }
    return 0;
}

/* Whether a dash belongs at text position I of a uuid. */
static bool
is_dash_position(size_t i)
{
    return i == 8 || i == 13 || i == 18 || i == 23;
}

int
vs_uuid_generate(char *buf)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[UUID_BYTES];
    size_t out = 0;
    int r;

    r = random_bytes(raw, sizeof(raw));
    if (r < 0)
        return r;
    raw[6] = (raw[6] & 0x0f) | 0x40; /* version 4 */
    raw[8] = (raw[8] & 0x3f) | 0x80; /* variant 10 */
    for (size_t i = 0; i < UUID_BYTES; i++) {
        if (is_dash_position(out))
            buf[out++] = '-';
        buf[out++] = hex[raw[i] >> 4];
        buf[out++] = hex[raw[i] & 0x0f];
    }
    buf[out] = '\0';
    return 0;
}

int
vs_uuid_valid(const char *text)
{
    if (text == NULL || strlen(text) != VS_UUID_LEN)
        return 0;
    for (size_t i = 0; i < VS_UUID_LEN; i++) {
        char c = text[i];

        if (is_dash_position(i)) {
            if (c != '-')
                return 0;
        } else if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) {
            return 0;
        }
    }
    return 1;
}
