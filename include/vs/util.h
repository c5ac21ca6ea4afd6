/*
 * Small helpers used across modules: identifiers, checksums, time, and
 * cleanup attributes.
 */
#ifndef VS_UTIL_H
#define VS_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

/* A random (version 4) uuid in text form into BUF (VS_UUID_LEN + 1). */
int vs_uuid_generate(char *buf);
/* 1 if TEXT is a uuid in canonical lower-case text form, else 0. */
int vs_uuid_valid(const char *text);

/* CRC-32C (Castagnoli), continuing from CRC (start with 0). */
uint32_t vs_crc32c(uint32_t crc, const void *buf, size_t len);

/* Format seconds since the epoch as ISO 8601 UTC into BUF (>= 21 bytes). */
void vs_time_iso8601(int64_t t, char *buf, size_t len);

/* Cleanup helpers: `__attribute__((cleanup(vs_freep))) char *p = ...`. */
static inline void
vs_freep(void *p)
{
    free(*(void **)p);
}

static inline void
vs_closep(int *fd)
{
    if (*fd >= 0)
        close(*fd);
}

#define _cleanup_free_ __attribute__((cleanup(vs_freep)))
#define _cleanup_close_ __attribute__((cleanup(vs_closep)))

#endif
