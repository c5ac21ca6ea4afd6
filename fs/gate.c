/*
 * A volume's I/O gate: requests pass it shared and leave it from any
 * thread (an asynchronous request leaves from its completion, which may
 * run on a driver's event-loop thread, where a pthread rwlock could not
 * be released); replacing the stack (snapshot, merge, preallocation,
 * closing an idle chain) closes it exclusively once nothing is in flight.
 * A waiting exclusive holder stops new requests from entering, so a
 * snapshot never starves behind a guest that always has I/O in flight.
 * Not recursive: a thread inside must not enter again while an exclusive
 * holder may be waiting.
 */
#include "fs.h"

void
vs_gate_init(struct vs_gate *g)
{
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    g->inflight = 0;
    g->waiting = 0;
    g->held = false;
}

void
vs_gate_destroy(struct vs_gate *g)
{
    pthread_cond_destroy(&g->cv);
    pthread_mutex_destroy(&g->mu);
}

void
vs_gate_enter(struct vs_gate *g)
{
    pthread_mutex_lock(&g->mu);
    while (g->held || g->waiting > 0)
        pthread_cond_wait(&g->cv, &g->mu);
    g->inflight++;
    pthread_mutex_unlock(&g->mu);
}

void
vs_gate_leave(struct vs_gate *g)
{
    pthread_mutex_lock(&g->mu);
    if (--g->inflight == 0 && g->waiting > 0)
        pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}

void
vs_gate_close(struct vs_gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->waiting++;
    while (g->held || g->inflight > 0)
        pthread_cond_wait(&g->cv, &g->mu);
    g->waiting--;
    g->held = true;
    pthread_mutex_unlock(&g->mu);
}

void
vs_gate_open(struct vs_gate *g)
{
    pthread_mutex_lock(&g->mu);
    g->held = false;
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
}
