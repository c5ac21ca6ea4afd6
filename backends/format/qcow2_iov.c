/*
 * iovec helpers for the qcow2 driver: a request is split at cluster
 * boundaries, and each piece needs the part of the caller's iovec that
 * covers it (a slice, pointing into the caller's buffers, never copied),
 * or to be zeroed or filled from a bounce buffer.  Each walk starts from
 * the first entry; requests have few entries, so that is cheap.
 */
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "qcow2.h"

ssize_t
qcow2_iov_total(const struct iovec *iov, int iovcnt)
{
    size_t sum = 0;

    for (int i = 0; i < iovcnt; i++) {
        if (iov[i].iov_len > (size_t)SSIZE_MAX - sum)
            return -EINVAL;
        sum += iov[i].iov_len;
    }
    return (ssize_t)sum;
}

int
qcow2_iov_slice(const struct iovec *iov, int iovcnt, size_t skip, size_t len,
                struct iovec *out)
{
    int n = 0;

    for (int i = 0; i < iovcnt && len > 0; i++) {
        size_t take;

        if (skip >= iov[i].iov_len) {
            skip -= iov[i].iov_len;
            continue;
        }
        take = iov[i].iov_len - skip;
        if (take > len)
            take = len;
        out[n].iov_base = (char *)iov[i].iov_base + skip;
        out[n].iov_len = take;
        n++;
        len -= take;
        skip = 0;
    }
    return n;
}

/* Call fn on each piece of [skip, skip + len) of IOV with its offset in
 * the range. */
static void
iov_walk(const struct iovec *iov, int iovcnt, size_t skip, size_t len,
         void (*fn)(char *p, size_t n, size_t at, void *arg), void *arg)
{
    size_t at = 0;

    for (int i = 0; i < iovcnt && at < len; i++) {
        size_t take;

        if (skip >= iov[i].iov_len) {
            skip -= iov[i].iov_len;
            continue;
        }
        take = iov[i].iov_len - skip;
        if (take > len - at)
            take = len - at;
        fn((char *)iov[i].iov_base + skip, take, at, arg);
        at += take;
        skip = 0;
    }
}

static void
zero_piece(char *p, size_t n, size_t at, void *arg)
{
    (void)at, (void)arg;
    memset(p, 0, n);
}

static void
to_buf_piece(char *p, size_t n, size_t at, void *arg)
{
    memcpy((char *)arg + at, p, n);
}

static void
from_buf_piece(char *p, size_t n, size_t at, void *arg)
{
    memcpy(p, (const char *)arg + at, n);
}

void
qcow2_iov_zero(const struct iovec *iov, int iovcnt, size_t skip, size_t len)
{
    iov_walk(iov, iovcnt, skip, len, zero_piece, NULL);
}

void
qcow2_iov_to_buf(const struct iovec *iov, int iovcnt, size_t skip, void *buf,
                 size_t len)
{
    iov_walk(iov, iovcnt, skip, len, to_buf_piece, buf);
}

void
qcow2_iov_from_buf(const struct iovec *iov, int iovcnt, size_t skip,
                   const void *buf, size_t len)
{
    iov_walk(iov, iovcnt, skip, len, from_buf_piece, (void *)buf);
}
