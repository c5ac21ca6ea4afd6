/*
 * A minimal TAP producer for the unit tests: ok()/is_int() print one line
 * per check and done_testing() prints the plan and the exit status.
 */
#ifndef VS_TAP_H
#define VS_TAP_H

#include <stdbool.h>

/* Record one check; COND true passes.  Returns COND. */
bool tap_ok(bool cond, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Check that GOT equals WANT, showing both when they differ. */
bool tap_is_int(long long got, long long want, const char *what);
/* Print a diagnostic line ("# ..."). */
void tap_diag(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Print the plan; return the process exit status (0 if all passed). */
int tap_done(void);

#define ok(cond, ...) tap_ok((cond), __VA_ARGS__)
#define is_int(got, want, what) tap_is_int((got), (want), (what))

#endif
