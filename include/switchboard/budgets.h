/*
 * budgets.h - spend per target, route, tag and in total over the current UTC day and month,
 * and the caps the team set on it (config.budgets): soft limits raise one warning event per
 * window, hard limits take a target out of routing (target scope) or refuse calls with 429
 * (global, route and tag scope). Also burn rates and the time until each budget runs out,
 * for the console header, and what routing saved against each route's baseline.
 *
 * Windows: a day is a UTC day, a month a UTC calendar month (ledger.h's calendar). Spend rolls
 * over lazily: the first call after midnight UTC sees the new window. A call is charged when
 * it ends, so calls in flight when a cap is reached may overshoot it by their cost.
 *
 * Tags are client-controlled: at most BUDGETS_MAX_TAGS distinct tags are tracked (tags with a
 * budget always are); spend of further tags still counts toward routes, targets and global.
 *
 * Pure (time is an argument) and not thread-safe: the router thread owns it.
 */
#ifndef SWITCHBOARD_BUDGETS_H
#define SWITCHBOARD_BUDGETS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "switchboard/config.h"
#include "switchboard/ledger.h"

#define BUDGETS_MAX_TAGS 1024
#define BUDGETS_NAME_MAX 128 /* longer names are cut to this for tracking */

enum budget_level {
    BUDGET_LEVEL_OK,
    BUDGET_LEVEL_SOFT, /* at or above soft_pct of a cap */
    BUDGET_LEVEL_HARD, /* cap reached */
};
const char *budget_level_name(enum budget_level l); /* "ok", "soft", "hard" */

struct budget_status {
    enum budget_scope scope;
    char name[BUDGETS_NAME_MAX + 1];   /* "" for the global budget */
    char label[BUDGETS_NAME_MAX + 16]; /* "global", "tag:batch-jobs", ... */
    double daily_cap, monthly_cap;     /* 0 = none */
    double soft_pct;
    double day_spent, month_spent;
    enum budget_level day_level, month_level, level; /* level: the worse of the two */
    double burn_per_hour;                            /* spend over the last hour */
    /* Time until the cap is reached at the current burn rate: 0 when reached, -1 when there
     * is no cap or it will not be reached before the window resets. */
    int64_t day_exhausted_in_ms, month_exhausted_in_ms;
    int64_t day_resets_in_ms, month_resets_in_ms;
};

struct budget_alert {
    enum budget_level level;           /* SOFT: warning; HARD: cap reached */
    char target[BUDGETS_NAME_MAX + 1]; /* target scope: its name, else "" */
    char text[240];
};

/* What one finished call spent, and on what. */
struct budget_charge {
    const char *target; /* answering target; NULL, "" or "cache": none */
    const char *route;  /* NULL or "": a direct call */
    const char *tag;    /* NULL: untagged */
    double answer_usd;  /* what target budgets count: the answer's cost */
    double total_usd;   /* what global, route and tag budgets count (retries, hedges too) */
    bool has_savings;
    double savings_usd; /* baseline - actual; negative is a loss */
};

struct budgets;

/* Built from cfg->budgets (cfg only read during the call), seeded with the spend rebuilt from
 * the ledger (seed may be NULL). */
struct budgets *budgets_new(const struct config *cfg, const struct ledger_spend *seed,
                            int64_t now_wall_ms);
/* A reload: new caps, spend kept by scope and name. */
void budgets_reconfigure(struct budgets *b, const struct config *cfg);
void budgets_free(struct budgets *b); /* NULL-safe */

/* Adds a finished call's spend; fills up to max alerts (soft limit crossed, cap reached: one
 * of each per budget and window) and returns how many. */
size_t budgets_note_spend(struct budgets *b, int64_t now_wall_ms, const struct budget_charge *ch,
                          struct budget_alert *alerts, size_t max);

/* A target budget over its cap: true with why ("over budget: budget 'target:x' daily cap
 * $1.00 reached ($1.02 spent today); resets at 00:00 UTC"). why may be NULL. */
bool budgets_target_blocked(struct budgets *b, int64_t now_wall_ms, const char *target, char *why,
                            size_t whylen);
/* A global, route or tag budget over its cap: true with the message for the client's 429 and
 * the time until the window resets. */
bool budgets_call_blocked(struct budgets *b, int64_t now_wall_ms, const char *route,
                          const char *tag, char *why, size_t whylen, int64_t *retry_after_ms);

/* Every budget's state, in config order; returns how many were written (at most max). */
size_t budgets_status(struct budgets *b, int64_t now_wall_ms, struct budget_status *out,
                      size_t max);
/* Spend of one target, route or tag (scope GLOBAL: in total) today and this month. */
void budgets_spend(struct budgets *b, int64_t now_wall_ms, enum budget_scope scope,
                   const char *name, double *day_usd, double *month_usd);
/* Savings against the routes' baselines today and this month (negative: a loss). */
void budgets_savings(struct budgets *b, int64_t now_wall_ms, double *day_usd, double *month_usd);

#endif
