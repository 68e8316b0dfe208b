/*
 * timerq.c - indexed binary min-heap of intrusive timers. Owned by one thread.
 */
#include <stdlib.h>

#include "switchboard/timerq.h"
#include "switchboard/util.h"

void timer_init(struct timer *t, int kind)
{
    t->at = 0;
    t->index = TIMER_UNARMED;
    t->kind = kind;
}

bool timer_is_armed(const struct timer *t)
{
    return t->index != TIMER_UNARMED;
}

void timerq_init(struct timerq *q)
{
    q->heap = NULL;
    q->len = 0;
    q->cap = 0;
}

void timerq_cleanup(struct timerq *q)
{
    for (size_t i = 0; i < q->len; i++)
        q->heap[i]->index = TIMER_UNARMED;
    free(q->heap);
    timerq_init(q);
}

static void place(struct timerq *q, size_t i, struct timer *t)
{
    q->heap[i] = t;
    t->index = i;
}

static void sift_up(struct timerq *q, size_t i)
{
    struct timer *t = q->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (q->heap[parent]->at <= t->at)
            break;
        place(q, i, q->heap[parent]);
        i = parent;
    }
    place(q, i, t);
}

static void sift_down(struct timerq *q, size_t i)
{
    struct timer *t = q->heap[i];
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        int64_t best = t->at;
        if (l < q->len && q->heap[l]->at < best)
            m = l, best = q->heap[l]->at;
        if (r < q->len && q->heap[r]->at < best)
            m = r;
        if (m == i)
            break;
        place(q, i, q->heap[m]);
        i = m;
    }
    place(q, i, t);
}

void timerq_disarm(struct timerq *q, struct timer *t)
{
    size_t i = t->index;
    if (i == TIMER_UNARMED)
        return;
    t->index = TIMER_UNARMED;
    struct timer *last = q->heap[--q->len];
    if (i == q->len)
        return;
    place(q, i, last);
    sift_up(q, i);
    sift_down(q, last->index);
}

void timerq_arm(struct timerq *q, struct timer *t, int64_t at_ms)
{
    timerq_disarm(q, t);
    /* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers */
    q->heap = xgrow(q->heap, &q->cap, q->len + 1, sizeof *q->heap);
    t->at = at_ms;
    place(q, q->len++, t);
    sift_up(q, t->index);
}

int64_t timerq_next_at(const struct timerq *q)
{
    return q->len ? q->heap[0]->at : INT64_MAX;
}

struct timer *timerq_pop_due(struct timerq *q, int64_t now_ms)
{
    if (!q->len || q->heap[0]->at > now_ms)
        return NULL;
    struct timer *t = q->heap[0];
    timerq_disarm(q, t);
    return t;
}

size_t timerq_len(const struct timerq *q)
{
    return q->len;
}
