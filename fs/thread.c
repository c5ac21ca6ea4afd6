/*
 * Threads the daemon starts itself (the idle-chain reaper, merge jobs).
 *
 * They run with every signal blocked.  libfuse stops its loop on SIGTERM,
 * SIGINT and SIGHUP by setting a flag that a FUSE worker only sees when
 * the signal interrupts its read of /dev/fuse; a signal delivered to one
 * of our threads instead would leave the daemon mounted until the next
 * request came in.
 *
 * glibc loads libgcc_s (its unwinder) on the first pthread_cancel, and
 * aborts if it cannot; libfuse cancels its workers at unmount, so a daemon
 * that had run out of descriptors died at its unmount ("libgcc_s.so.1 must
 * be installed for pthread_cancel to work").  vs_thread_prepare_cancel
 * makes that first cancel at start, while descriptors are plenty.
 */
#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include "fs.h"

int
vs_thread_start(pthread_t *thread, void *(*fn)(void *), void *arg)
{
    sigset_t all, old;
    int r;

    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    r = -pthread_create(thread, NULL, fn, arg); /* inherits the mask */
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return r;
}

static void *
wait_for_cancel(void *arg)
{
    (void)arg;
    for (;;)
        pause(); /* a cancellation point */
    return NULL;
}

int
vs_thread_prepare_cancel(void)
{
    pthread_t t;
    int r = vs_thread_start(&t, wait_for_cancel, NULL);

    if (r == 0) {
        r = -pthread_cancel(t);
        pthread_join(t, NULL);
    }
    return r;
}
