/*
 * clock.c - monotonic and wall clocks in ms/us. Thread-safe.
 */
#include <errno.h>
#include <time.h>

#include "switchboard/util.h"

static int64_t clock_read(clockid_t id, int64_t div)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * (1000000000 / div) + ts.tv_nsec / div;
}

int64_t clock_mono_ms(void)
{
    return clock_read(CLOCK_MONOTONIC, 1000000);
}

int64_t clock_mono_us(void)
{
    return clock_read(CLOCK_MONOTONIC, 1000);
}

int64_t clock_wall_ms(void)
{
    return clock_read(CLOCK_REALTIME, 1000000);
}

void clock_deadline_in(struct timespec *ts, int64_t ms)
{
    if (ms < 0)
        ms = 0;
    clock_gettime(CLOCK_REALTIME, ts);
    ts->tv_sec += (time_t)(ms / 1000);
    ts->tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

void clock_sleep_ms(int64_t ms)
{
    if (ms <= 0)
        return;
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}
