/*
 * The "fault" protocol driver for tests: a store stacked over a real one
 * (location "fault:" followed by the real location, e.g.
 * "fault:dir:/var/tmp/x/store") whose objects pass every request to the
 * real object below unless a rule chosen by the test says otherwise.
 *
 * Use (see fault.c for how it works):
 *
 *     fault_register();                     once, before other threads
 *     vs_store_open("fault:dir:/path", false, &st);
 *     vs_object_open(st, "img", 0, "img", &file);   then qcow2 over it
 *     int id = fault_add(&(struct fault_rule){
 *         .object = "img", .ops = FAULT_WRITE, .mode = FAULT_FAIL,
 *         .err = EIO, .nth = 2});           the 2nd write of "img" fails
 *     ...
 *     fault_hits(id); fault_clear();
 *
 * Growth: a rule for FAULT_GROW catches truncates that make an object
 * larger than `above` bytes (FAULT_FAIL with ENOSPC: a full LUN or VG).
 *
 * Modes: FAULT_DELAY sleeps delay_us before the request; FAULT_FAIL
 * answers -err without touching the storage; FAULT_SHORT moves only half
 * of a read or write (rounded down, at least one byte); FAULT_HANG holds
 * the request until fault_release(id), then lets it run.  A rule with nth
 * N fires on the Nth request it matches only; nth 0 fires on every one.
 * The first rule that fires for a request decides what happens to it.
 */
#ifndef VS_TEST_FAULT_H
#define VS_TEST_FAULT_H

#include <stdbool.h>

/* The operations a rule applies to (a mask). */
enum fault_op {
    FAULT_READ = 1 << 0,
    FAULT_WRITE = 1 << 1,
    FAULT_FLUSH = 1 << 2,
    FAULT_DISCARD = 1 << 3,
    FAULT_ZEROES = 1 << 4,
    FAULT_GROW = 1 << 5, /* a truncate that makes the object larger */
    FAULT_ALL = (1 << 6) - 1,
};

/* What a firing rule does to a request. */
enum fault_mode {
    FAULT_DELAY = 1, /* sleep delay_us, then run it */
    FAULT_FAIL,      /* answer -err */
    FAULT_SHORT,     /* move half of a read or write */
    FAULT_HANG,      /* wait for fault_release, then run it */
};

/* One rule; the strings are copied by fault_add. */
struct fault_rule {
    const char *object; /* the object's name, or NULL for every object */
    const char *store;  /* a part of its store's location (a domain's uuid),
                           or NULL for every store */
    unsigned ops;       /* enum fault_op mask */
    enum fault_mode mode;
    unsigned nth;      /* 0: every matching request; N: the Nth only */
    int err;           /* FAULT_FAIL: the positive errno (EIO, ETIMEDOUT) */
    unsigned delay_us; /* FAULT_DELAY: microseconds */
    /* FAULT_GROW: match only growth to more than this many bytes (a store
     * with a fixed-size object limit: FAULT_FAIL with ENOSPC) */
    unsigned long long above;
};

/* Register the driver (scheme "fault:"); 0, or -errno; idempotent. */
int fault_register(void);
/* Add a rule after the others: its id (>= 0), or -errno. */
int fault_add(const struct fault_rule *rule);
/* Times rule ID fired so far (0 for an unknown id). */
unsigned fault_hits(int id);
/* Wait up to TIMEOUT_MS for N requests to be held by hang rule ID:
 * true when they are. */
bool fault_wait_hung(int id, unsigned n, unsigned timeout_ms);
/* Let every request held by rule ID go, and the later ones it catches. */
void fault_release(int id);
/* Release every held request, wait until they have left, drop all rules. */
void fault_clear(void);
/* Complete requests submitted through vs_bdev_submit from a thread of
 * their own, after the submitter returned (true), or run them inline
 * (false, the default). */
void fault_set_async(bool on);
/* Requests completed from the driver's threads so far. */
unsigned long fault_async_completed(void);

#endif
