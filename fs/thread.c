/*
 * Threads the daemon starts itself (the idle-chain reaper, merge jobs).
 *
 * They run with every signal blocked.  libfuse stops its loop on SIGTERM,
 * SIGINT and SIGHUP by setting a flag that a FUSE worker only sees when
 * the signal interrupts its read of /dev/fuse; a signal delivered to one
 * of our threads instead would leave the daemon mounted until the next
 * request came in.
 */
#include <pthread.h>
#include <signal.h>

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
