/*
 * Timestamps for humans: seconds since the epoch shown as ISO 8601 in UTC
 * ("2026-11-22T03:49:20Z"), as the records' creation times appear in
 * xattrs and in `vstor` output.
 *
 * gmtime_r does the calendar work; a time it cannot represent, or one that
 * does not fit the buffer, is shown as the plain number of seconds so that
 * the output is never garbage.
 */
#include <inttypes.h>
#include <stdio.h>
#include <time.h>

#include "vs/util.h"

void
vs_time_iso8601(int64_t t, char *buf, size_t len)
{
    time_t tt = (time_t)t;
    struct tm tm;

    if (len == 0)
        return;
    if ((int64_t)tt == t && gmtime_r(&tt, &tm) != NULL &&
        strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) > 0)
        return;
    snprintf(buf, len, "%" PRId64, t);
}
