/*
 * qrefresh.c - the CPU of one quality refresh (the hour and the day, by target and by route:
 * what the gateway's quality thread computes every GW_QGUARD_INTERVAL_MS) on a ledger of ROWS
 * calls spread over the last day (4 targets, 3 routes, 1 in 20 rated): in SQL
 * (ledger_quality_load, the recount the thread did before) and from the ledger writer's minute
 * buckets (ledger_quality_recent), plus the one-off seeding scan at ledger_open; and one
 * target's hour as the console and GET /admin/quality/{target} read it, in SQL and from the
 * buckets (ledger_quality_window). Thread CPU time; best and median of the runs. Links
 * libswitchboard. Usage: qrefresh LEDGER_PATH [ROWS]  (the file is created: give a path that does
 * not exist)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "switchboard/ledger.h"

#define MIN_MS  60000LL
#define HOUR_MS 3600000LL

static double cpu_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int dbl_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void fill(struct ledger *l, long rows, int64_t now)
{
    static const char *const targets[] = {"alpha", "beta", "gamma", "delta"};
    static const char *const routes[] = {"chat", "code", ""};
    char id[32];
    for (long i = 0; i < rows; i++) {
        struct ledger_stats st;
        for (ledger_get_stats(l, &st); st.queued > 20000; ledger_get_stats(l, &st)) {
            struct timespec pause = {0, 10000000}; /* the queue holds LEDGER_QUEUE_MAX rows */
            nanosleep(&pause, NULL);
        }
        snprintf(id, sizeof id, "r%ld", i);
        struct ledger_call c = {.wall_ms = now - (int64_t)(rand() % (24 * 3600)) * 1000,
                                .request_id = id,
                                .route = routes[i % 3],
                                .target = targets[(i / 3) % 4],
                                .model = "m",
                                .status = i % 17 == 0 ? 499 : 200,
                                .attempts = 1,
                                .cost_usd = 0.001,
                                .est_cost_usd = -1,
                                .baseline_cost_usd = 0.002,
                                .retry_cost_usd = -1,
                                .hedge_cost_usd = -1,
                                .latency_us = 1000,
                                .ttft_us = -1,
                                .finish = LLM_FINISH_STOP};
        ledger_post_call(l, &c);
        if (i % 20 == 0) {
            struct ledger_feedback f = {.wall_ms = now,
                                        .source = "console",
                                        .score = 1,
                                        .raw_score = 1,
                                        .scale = 1,
                                        .target = c.target,
                                        .route = c.route,
                                        .call_ms = c.wall_ms};
            ledger_post_feedback(l, &f);
        }
    }
}

/* One refresh: 1h and 24h, by target and by route; sql picks the path. */
static double refresh(struct ledger *l, const char *path, int sql)
{
    static const enum ledger_quality_by bys[] = {LEDGER_QBY_TARGET, LEDGER_QBY_ROUTE};
    static const int64_t windows[] = {HOUR_MS, 24 * HOUR_MS};
    int64_t now = clock_wall_ms();
    int64_t until = (now / MIN_MS + 1) * MIN_MS;
    char msg[256];
    double t0 = cpu_ms();
    for (int b = 0; b < 2; b++) {
        for (int w = 0; w < 2; w++) {
            struct ledger_quality q;
            ledger_quality_init(&q);
            int64_t since = (now - windows[w]) / MIN_MS * MIN_MS;
            bool ok = sql ? ledger_quality_load(path, bys[b], since, until, 20, &q, msg,
                                                sizeof msg) == SB_OK
                          : ledger_quality_recent(l, bys[b], since, until, 20, &q);
            if (!ok) {
                fprintf(stderr, "qrefresh: %s refresh failed\n", sql ? "SQL" : "bucket");
                exit(1);
            }
            ledger_quality_cleanup(&q);
        }
    }
    return cpu_ms() - t0;
}

/* One target's last hour, as the embedded console's quality lines (every 3 s while a detail
 * view is open) and GET /admin/quality/{target} read it: sql, every target's GROUP BY with
 * one kept (before); else ledger_quality_window of that target alone (after). */
static double one_target(struct ledger *l, const char *path, int sql)
{
    int64_t now = clock_wall_ms();
    char msg[256];
    struct ledger_quality q;
    ledger_quality_init(&q);
    double t0 = cpu_ms();
    bool ok = sql ? ledger_quality_load(path, LEDGER_QBY_TARGET, now - HOUR_MS, now + 1, 20, &q,
                                        msg, sizeof msg) == SB_OK
                  : ledger_quality_window(l, path, LEDGER_QBY_TARGET, "alpha", now, HOUR_MS, 20, &q,
                                          msg, sizeof msg) == SB_OK &&
                        q.n == 1;
    double t = cpu_ms() - t0;
    ledger_quality_cleanup(&q);
    if (!ok) {
        fprintf(stderr, "qrefresh: %s one-target read failed\n", sql ? "SQL" : "window");
        exit(1);
    }
    return t;
}

static void report(const char *what, double (*fn)(struct ledger *, const char *, int),
                   struct ledger *l, const char *path, int sql, int runs)
{
    double v[200];
    for (int i = 0; i < runs; i++)
        v[i] = fn(l, path, sql);
    qsort(v, (size_t)runs, sizeof v[0], dbl_cmp);
    printf("%-34s best %10.3f ms  median %10.3f ms  (%d runs)\n", what, v[0], v[runs / 2], runs);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: qrefresh LEDGER_PATH [ROWS]\n");
        return 2;
    }
    long rows = argc > 2 ? atol(argv[2]) : 150000;
    char msg[256];
    struct ledger *l = ledger_open(argv[1], 50, msg, sizeof msg);
    if (!l) {
        fprintf(stderr, "qrefresh: %s\n", msg);
        return 1;
    }
    srand(1);
    fill(l, rows, clock_wall_ms());
    ledger_close(l); /* writes everything */
    double t0 = cpu_ms();
    l = ledger_open(argv[1], 50, msg, sizeof msg);
    if (!l) {
        fprintf(stderr, "qrefresh: %s\n", msg);
        return 1;
    }
    printf("ledger of %ld calls + %ld ratings over the last day\n", rows, (rows + 19) / 20);
    printf("%-34s      %10.3f ms  (once, at ledger_open)\n", "seeding scan + open", cpu_ms() - t0);
    report("refresh in SQL (before)", refresh, l, argv[1], 1, 5);
    report("refresh from minute buckets (after)", refresh, l, argv[1], 0, 101);
    report("one target's hour in SQL (before)", one_target, l, argv[1], 1, 5);
    report("one target's hour, buckets (after)", one_target, l, argv[1], 0, 101);
    ledger_close(l);
    return 0;
}
