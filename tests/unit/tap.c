/* TAP output for the unit tests; see tap.h. */
#include <stdarg.h>
#include <stdio.h>

#include "tap.h"

static int tests_run;
static int tests_failed;

bool
tap_ok(bool cond, const char *fmt, ...)
{
    va_list ap;

    tests_run++;
    if (!cond)
        tests_failed++;
    printf("%sok %d - ", cond ? "" : "not ", tests_run);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
    fflush(stdout);
    return cond;
}

bool
tap_is_int(long long got, long long want, const char *what)
{
    bool pass = tap_ok(got == want, "%s", what);

    if (!pass)
        printf("#   got %lld, want %lld\n", got, want);
    return pass;
}

void
tap_diag(const char *fmt, ...)
{
    va_list ap;

    printf("# ");
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
}

int
tap_done(void)
{
    printf("1..%d\n", tests_run);
    return tests_failed == 0 ? 0 : 1;
}
