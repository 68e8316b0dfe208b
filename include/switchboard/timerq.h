/*
 * timerq.h - a min-heap of intrusive timers keyed by absolute time (ms). The router uses it
 * for backoff delays, hedges, deadlines, probes and override expiries.
 *
 * Timers are embedded in their owner's struct (find the owner with SB_CONTAINER_OF); arming
 * an armed timer moves it; disarming is O(log n) and a no-op when not armed.
 * Threads: owned by one thread (the router thread); not thread-safe.
 */
#ifndef SWITCHBOARD_TIMERQ_H
#define SWITCHBOARD_TIMERQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SB_CONTAINER_OF(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

struct timer {
    int64_t at;   /* absolute ms, valid while armed */
    size_t index; /* position in the heap; TIMER_UNARMED when not armed */
    int kind;     /* owner's tag: which timer of the owner this is */
};
#define TIMER_UNARMED ((size_t)-1)

struct timerq {
    struct timer **heap;
    size_t len;
    size_t cap;
};

void timer_init(struct timer *t, int kind);
bool timer_is_armed(const struct timer *t);

void timerq_init(struct timerq *q);
void timerq_cleanup(struct timerq *q); /* forgets every timer (does not touch owners) */
void timerq_arm(struct timerq *q, struct timer *t, int64_t at_ms);
void timerq_disarm(struct timerq *q, struct timer *t);
/* Earliest armed time, or INT64_MAX when empty. */
int64_t timerq_next_at(const struct timerq *q);
/* Removes and returns the earliest timer due at now_ms (at <= now), or NULL. */
struct timer *timerq_pop_due(struct timerq *q, int64_t now_ms);
size_t timerq_len(const struct timerq *q);

#endif
