/*
 * qminutes.c - the quality figures of the last 24 hours kept incrementally: per-minute buckets
 * per target, per route and per route/target, filled by the ledger's writer from every row it
 * commits (calls by when they finished, feedback by when the call it rates finished, console
 * votes by when they were given: the definitions of quality.c's SQL, column for column), and
 * seeded once at ledger_open by a GROUP BY scan of the last day of the file (e.g. after a
 * restart). A window of whole minutes up to LEDGER_QM_MINUTES is then a sum of buckets, with
 * no SQL: ledger_quality_recent gives what ledger_quality_load gives over the same bounds
 * (doubles up to the order of summation), and ledger_quality_window picks the buckets or the
 * SQL for a window ending now (the gateway's refresh and guard, GET /admin/quality/{target},
 * the embedded console's quality lines: these two sum the one key they show).
 *
 * Bound: LEDGER_QM_MINUTES (1442) buckets of 80 bytes per key, at most QM_KEYS keys per grouping
 * (3 groupings): 3 x 64 x 1442 x 80 B = 22 MB at most; a key's ring is allocated on its first
 * row (115 KB), so 5 targets, 3 routes and 8 route/target pairs take 1.8 MB. A bucket whose
 * minute is older than the newest minute seen minus LEDGER_QM_MINUTES is expired: the ring slot
 * is reused by the newer minute. A key none of whose buckets is live is reused for a new key;
 * when all QM_KEYS are live, the new key's rows are not kept and that grouping's windows that
 * reach back to that minute are refused (the caller falls back to SQL).
 *
 * Rows written by another process sharing the file are not seen (they are in the SQL figures).
 * A row stamped more than a day ahead of the others (a wall clock jump) expires the buckets
 * its slot held.
 *
 * Threads: the ledger's writer folds committed batches (ledger_qm_fold); ledger_open seeds
 * before the writer starts; any thread reads (ledger_quality_recent). qm->mu guards all of it
 * and is a leaf lock: nothing else is taken under it.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "internal.h"

#define QM_KEYS      64
#define QM_GROUPINGS 3
#define MINUTE_MS    60000LL
#define NONE_KEY     "(none)"
#define KEY_LEN      sizeof(((struct ledger_quality_row *)0)->key)

struct qm_cell {
    int32_t minute; /* Unix minute this slot holds; another value: empty for that minute */
    uint32_t calls, answered, abandoned, throttled, complete, length, content_filter, truncated,
        errors, feedback, negative, console, answered_negative;
    double spend, savings, score;
};

struct qm_key {
    char key[KEY_LEN];
    int32_t last_minute;  /* the newest minute with a row */
    struct qm_cell *ring; /* LEDGER_QM_MINUTES, slot minute % LEDGER_QM_MINUTES */
};

struct ledger_qm {
    pthread_mutex_t mu;
    struct qm_key keys[QM_GROUPINGS][QM_KEYS];
    size_t n[QM_GROUPINGS];
    int32_t first_minute;              /* the seed's first minute: nothing older is known */
    int32_t newest_minute;             /* the newest minute of any row */
    int32_t lost_minute[QM_GROUPINGS]; /* the newest minute whose rows a grouping could not keep
                                        * (no key free); 0 none */
};

static int grouping_of(enum ledger_quality_by by)
{
    switch (by) {
    case LEDGER_QBY_TARGET:
        return 0;
    case LEDGER_QBY_ROUTE:
        return 1;
    case LEDGER_QBY_ROUTE_TARGET:
        return 2;
    case LEDGER_QBY_TAG:
    case LEDGER_QBY_USER:
    case LEDGER_QBY_CLIENT:
        return -1;
    }
    return -1;
}

struct ledger_qm *ledger_qm_new(void)
{
    struct ledger_qm *qm = xcalloc(1, sizeof *qm);
    pthread_mutex_init(&qm->mu, NULL);
    return qm;
}

void ledger_qm_free(struct ledger_qm *qm)
{
    if (!qm)
        return;
    for (int g = 0; g < QM_GROUPINGS; g++)
        for (size_t i = 0; i < qm->n[g]; i++)
            free(qm->keys[g][i].ring);
    pthread_mutex_destroy(&qm->mu);
    free(qm);
}

/* ---- folding (mu held) ------------------------------------------------------------------- */

static bool key_live(const struct ledger_qm *qm, const struct qm_key *k)
{
    return k->last_minute > qm->newest_minute - LEDGER_QM_MINUTES;
}

/* The key's entry: found, new, or a dead one reused; NULL when all are live. */
static struct qm_key *key_for(struct ledger_qm *qm, int g, const char *key)
{
    char k[KEY_LEN]; /* quality.c cuts keys to this: group them the same way */
    str_copy(k, sizeof k, key);
    struct qm_key *dead = NULL;
    for (size_t i = 0; i < qm->n[g]; i++) {
        if (str_eq(qm->keys[g][i].key, k))
            return &qm->keys[g][i];
        if (!dead && !key_live(qm, &qm->keys[g][i]))
            dead = &qm->keys[g][i];
    }
    if (!dead && qm->n[g] < QM_KEYS) {
        dead = &qm->keys[g][qm->n[g]++];
        dead->ring = xcalloc(LEDGER_QM_MINUTES, sizeof *dead->ring);
    }
    if (dead) {
        str_copy(dead->key, sizeof dead->key, k);
        memset(dead->ring, 0, LEDGER_QM_MINUTES * sizeof *dead->ring);
        dead->last_minute = 0;
    }
    return dead;
}

/* The bucket of key at minute (emptied when its slot held an older minute); NULL when the
 * minute is older than what is kept, or no key is free. */
static struct qm_cell *cell_for(struct ledger_qm *qm, int g, const char *key, int32_t minute)
{
    if (minute < qm->first_minute || minute <= qm->newest_minute - LEDGER_QM_MINUTES)
        return NULL; /* outside any window served */
    struct qm_key *k = key_for(qm, g, key);
    if (!k) {
        qm->lost_minute[g] = minute > qm->lost_minute[g] ? minute : qm->lost_minute[g];
        return NULL;
    }
    struct qm_cell *c = &k->ring[minute % LEDGER_QM_MINUTES];
    if (c->minute > minute)
        return NULL; /* the slot holds a newer minute: this one has expired */
    if (c->minute != minute) {
        memset(c, 0, sizeof *c);
        c->minute = minute;
    }
    k->last_minute = minute > k->last_minute ? minute : k->last_minute;
    if (minute > qm->newest_minute)
        qm->newest_minute = minute;
    return c;
}

/* The three keys of a row as quality.c's SQL forms them ("(none)" for NULL or ""). */
static void row_keys(const char *route, const char *target, char keys[QM_GROUPINGS][KEY_LEN])
{
    str_copy(keys[0], KEY_LEN, target && *target ? target : NONE_KEY);
    str_copy(keys[1], KEY_LEN, route && *route ? route : NONE_KEY);
    if (route && target)
        snprintf(keys[2], KEY_LEN, "%s/%s", route, target);
    else
        str_copy(keys[2], KEY_LEN, NONE_KEY);
}

static void cell_add(struct qm_cell *to, const struct qm_cell *d)
{
    to->calls += d->calls;
    to->answered += d->answered;
    to->abandoned += d->abandoned;
    to->throttled += d->throttled;
    to->complete += d->complete;
    to->length += d->length;
    to->content_filter += d->content_filter;
    to->truncated += d->truncated;
    to->errors += d->errors;
    to->feedback += d->feedback;
    to->negative += d->negative;
    to->console += d->console;
    to->answered_negative += d->answered_negative;
    to->spend += d->spend;
    to->savings += d->savings;
    to->score += d->score;
}

static void fold_delta(struct ledger_qm *qm, const char *route, const char *target, int64_t ts_ms,
                       const struct qm_cell *d)
{
    char keys[QM_GROUPINGS][KEY_LEN];
    row_keys(route, target, keys);
    int32_t minute = (int32_t)(ts_ms / MINUTE_MS);
    for (int g = 0; g < QM_GROUPINGS; g++) {
        struct qm_cell *c = cell_for(qm, g, keys[g], minute);
        if (c)
            cell_add(c, d);
    }
}

/* One call row, counted as CALLS_SQL counts it from the columns ledger.c binds. */
static void call_delta(const struct ledger_call *c, struct qm_cell *d)
{
    const char *finish = llm_finish_name(c->finish);
    const char *error = c->err == LLM_ERR_NONE ? NULL : llm_errclass_name(c->err);
    bool truncated = error && str_eq(error, "truncated");
    memset(d, 0, sizeof *d);
    d->calls = 1;
    d->answered = c->status == 200;
    d->abandoned = c->status == 499;
    d->throttled = c->throttled;
    d->complete =
        c->status == 200 && (!finish || str_eq(finish, "stop") || str_eq(finish, "tool_calls"));
    d->length = c->status == 200 && finish && str_eq(finish, "length");
    d->content_filter = finish && str_eq(finish, "content_filter");
    d->truncated = truncated;
    d->errors = c->status != 200 && c->status != 499 && !c->throttled && !truncated;
    double answer = !c->usage_missing ? c->cost_usd : c->est_cost_usd >= 0 ? c->est_cost_usd : 0;
    d->spend = answer + (c->retry_cost_usd >= 0 ? c->retry_cost_usd : 0) +
               (c->hedge_cost_usd >= 0 ? c->hedge_cost_usd : 0);
    d->savings =
        c->baseline_cost_usd >= 0 && !c->usage_missing ? c->baseline_cost_usd - c->cost_usd : 0;
}

static void feedback_delta(const struct ledger_feedback *f, struct qm_cell *d)
{
    memset(d, 0, sizeof *d);
    d->feedback = 1;
    d->negative = f->score < 0;
    d->console = f->source && str_eq(f->source, "console");
    d->score = f->score;
    d->answered_negative = f->score < 0 && f->request_id && f->call_status == 200;
}

void ledger_qm_call(struct ledger_qm *qm, const struct ledger_call *c)
{
    struct qm_cell d;
    call_delta(c, &d);
    fold_delta(qm, c->route ? c->route : "", c->target ? c->target : "", c->wall_ms, &d);
}

void ledger_qm_feedback(struct ledger_qm *qm, const struct ledger_feedback *f)
{
    struct qm_cell d;
    feedback_delta(f, &d);
    fold_delta(qm, f->route ? f->route : "", f->target ? f->target : "", f->call_ms, &d);
}

void ledger_qm_lock(struct ledger_qm *qm)
{
    pthread_mutex_lock(&qm->mu);
}

void ledger_qm_unlock(struct ledger_qm *qm)
{
    pthread_mutex_unlock(&qm->mu);
}

/* ---- seeding (ledger_open's thread, before the writer starts) ---------------------------- */

#define SEED_SPEND                                                                                 \
    "(IFNULL(cost_usd, IFNULL(est_cost_usd, 0)) + IFNULL(retry_cost_usd, 0) +"                     \
    " IFNULL(hedge_cost_usd, 0))"
#define SEED_SAVED                                                                                 \
    "(CASE WHEN baseline_cost_usd IS NOT NULL AND cost_usd IS NOT NULL"                            \
    " THEN baseline_cost_usd - cost_usd ELSE 0 END)"
static const char seed_calls_sql[] =
    "SELECT route, target, ts_ms / 60000, COUNT(*), SUM(status = 200), SUM(status = 499),"
    " SUM(throttled), SUM(status = 200 AND (finish IS NULL OR finish IN ('stop', 'tool_calls'))),"
    " SUM(status = 200 AND finish = 'length'), SUM(finish = 'content_filter'),"
    " SUM(error = 'truncated'), SUM(status <> 200 AND status <> 499 AND throttled = 0 AND"
    " IFNULL(error, '') <> 'truncated'), SUM(" SEED_SPEND "), SUM(" SEED_SAVED ")"
    " FROM calls WHERE ts_ms >= ?1 GROUP BY 1, 2, 3";
static const char seed_feedback_sql[] =
    "SELECT route, target, call_ts_ms / 60000, COUNT(*), SUM(score < 0),"
    " SUM(source = 'console'), SUM(score),"
    " SUM(score < 0 AND request_id IS NOT NULL AND call_status = 200)"
    " FROM feedback WHERE call_ts_ms >= ?1 GROUP BY 1, 2, 3";

static uint32_t col32(sqlite3_stmt *st, int i)
{
    sqlite3_int64 v = sqlite3_column_int64(st, i);
    return v > 0 ? (uint32_t)v : 0;
}

static void seed_row(struct ledger_qm *qm, sqlite3_stmt *st, bool calls)
{
    struct qm_cell d;
    memset(&d, 0, sizeof d);
    if (calls) {
        uint32_t *u[] = {&d.calls,  &d.answered,       &d.abandoned, &d.throttled, &d.complete,
                         &d.length, &d.content_filter, &d.truncated, &d.errors};
        for (size_t i = 0; i < SB_ARRAY_LEN(u); i++)
            *u[i] = col32(st, 3 + (int)i);
        d.spend = sqlite3_column_double(st, 12);
        d.savings = sqlite3_column_double(st, 13);
    } else {
        d.feedback = col32(st, 3);
        d.negative = col32(st, 4);
        d.console = col32(st, 5);
        d.score = sqlite3_column_double(st, 6);
        d.answered_negative = col32(st, 7);
    }
    const unsigned char *route = sqlite3_column_text(st, 0);
    const unsigned char *target = sqlite3_column_text(st, 1);
    char keys[QM_GROUPINGS][KEY_LEN];
    row_keys((const char *)route, (const char *)target, keys);
    int32_t minute = (int32_t)sqlite3_column_int64(st, 2);
    for (int g = 0; g < QM_GROUPINGS; g++) {
        struct qm_cell *c = cell_for(qm, g, keys[g], minute);
        if (c)
            cell_add(c, &d);
    }
}

static int seed_one(struct ledger_qm *qm, sqlite3 *db, const char *sql, bool calls)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, (int64_t)qm->first_minute * MINUTE_MS);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW)
            seed_row(qm, st, calls);
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    sqlite3_finalize(st);
    return rc;
}

int ledger_qm_seed(struct ledger_qm *qm, sqlite3 *db, int64_t now_ms)
{
    pthread_mutex_lock(&qm->mu);
    qm->first_minute = (int32_t)(now_ms / MINUTE_MS) - LEDGER_QM_MINUTES + 1;
    qm->newest_minute = qm->first_minute;
    int rc = seed_one(qm, db, seed_calls_sql, true);
    if (rc == SQLITE_OK)
        rc = seed_one(qm, db, seed_feedback_sql, false);
    pthread_mutex_unlock(&qm->mu);
    return rc;
}

/* ---- reading (any thread) ---------------------------------------------------------------- */

static void row_add(struct ledger_quality_row *r, const struct qm_cell *c)
{
    r->calls += c->calls;
    r->answered += c->answered;
    r->abandoned += c->abandoned;
    r->throttled += c->throttled;
    r->complete += c->complete;
    r->length += c->length;
    r->content_filter += c->content_filter;
    r->truncated += c->truncated;
    r->errors += c->errors;
    r->spend_usd += c->spend;
    r->savings_usd += c->savings;
    r->feedback += c->feedback;
    r->negative += c->negative;
    r->console += c->console;
    r->score_sum += c->score;
    r->answered_negative += c->answered_negative;
}

static void row_add_row(struct ledger_quality_row *to, const struct ledger_quality_row *r)
{
    uint64_t *dst[] = {
        &to->calls,    &to->answered,       &to->abandoned,        &to->throttled, &to->complete,
        &to->length,   &to->content_filter, &to->truncated,        &to->errors,    &to->feedback,
        &to->negative, &to->console,        &to->answered_negative};
    const uint64_t src[] = {
        r->calls,    r->answered,       r->abandoned,        r->throttled, r->complete,
        r->length,   r->content_filter, r->truncated,        r->errors,    r->feedback,
        r->negative, r->console,        r->answered_negative};
    _Static_assert(SB_ARRAY_LEN(dst) == SB_ARRAY_LEN(src), "one source per count");
    for (size_t i = 0; i < SB_ARRAY_LEN(dst); i++)
        *dst[i] += src[i];
    to->spend_usd += r->spend_usd;
    to->savings_usd += r->savings_usd;
    to->score_sum += r->score_sum;
}

static int row_cmp(const void *a, const void *b)
{
    return strcmp(((const struct ledger_quality_row *)a)->key,
                  ((const struct ledger_quality_row *)b)->key);
}

/* Sums key k's buckets of minutes [from, to) into a new row of out when it has any. */
static void sum_key(const struct qm_key *k, int32_t from, int32_t to, struct ledger_quality *out,
                    size_t *cap)
{
    struct ledger_quality_row r;
    memset(&r, 0, sizeof r);
    for (int32_t m = from; m < to; m++) {
        const struct qm_cell *c = &k->ring[m % LEDGER_QM_MINUTES];
        if (c->minute == m)
            row_add(&r, c);
    }
    if (r.calls == 0 && r.feedback == 0)
        return;
    str_copy(r.key, sizeof r.key, k->key);
    out->rows = xgrow(out->rows, cap, out->n + 1, sizeof *out->rows);
    out->rows[out->n++] = r;
}

static bool servable(const struct ledger_qm *qm, int g, int32_t from, int32_t to)
{
    return to > from && to - from <= LEDGER_QM_MINUTES && from >= qm->first_minute &&
           from > qm->newest_minute - LEDGER_QM_MINUTES && from > qm->lost_minute[g];
}

/* Sorts out's rows, adds them into out->total (zero before) and derives every figure. */
static void finish(struct ledger_quality *out, uint64_t min_volume)
{
    if (out->n > 1)
        qsort(out->rows, out->n, sizeof *out->rows, row_cmp);
    for (size_t i = 0; i < out->n; i++) {
        row_add_row(&out->total, &out->rows[i]);
        ledger_quality_derive(&out->rows[i], min_volume);
    }
    ledger_quality_derive(&out->total, min_volume);
}

/* ledger_quality_recent, of key only (cut as keys are) or of every key (NULL). */
static bool recent(struct ledger *l, enum ledger_quality_by by, const char *only, int64_t since_ms,
                   int64_t until_ms, uint64_t min_volume, struct ledger_quality *out)
{
    struct ledger_qm *qm = l ? ledger_qm_peek(l) : NULL;
    int g = grouping_of(by);
    if (!qm || g < 0 || since_ms % MINUTE_MS != 0 || until_ms % MINUTE_MS != 0)
        return false;
    int32_t from = (int32_t)(since_ms / MINUTE_MS), to = (int32_t)(until_ms / MINUTE_MS);
    char k[KEY_LEN];
    str_copy(k, sizeof k, only ? only : "");
    size_t cap = 0;
    quality_begin(out, by, since_ms, until_ms, min_volume);
    pthread_mutex_lock(&qm->mu);
    bool ok = servable(qm, g, from, to);
    for (size_t i = 0; ok && i < qm->n[g]; i++)
        if (!only || str_eq(qm->keys[g][i].key, k))
            sum_key(&qm->keys[g][i], from, to, out, &cap);
    pthread_mutex_unlock(&qm->mu);
    finish(out, min_volume);
    return ok;
}

bool ledger_quality_recent(struct ledger *l, enum ledger_quality_by by, int64_t since_ms,
                           int64_t until_ms, uint64_t min_volume, struct ledger_quality *out)
{
    return recent(l, by, NULL, since_ms, until_ms, min_volume, out);
}

/* Keeps only's row of an SQL result, its total that row alone. */
static void keep_only(struct ledger_quality *out, const char *only)
{
    char k[KEY_LEN];
    str_copy(k, sizeof k, only);
    size_t kept = 0;
    for (size_t i = 0; i < out->n; i++)
        if (str_eq(out->rows[i].key, k))
            out->rows[kept++] = out->rows[i];
    out->n = kept;
    memset(&out->total, 0, sizeof out->total);
    str_copy(out->total.key, sizeof out->total.key, "TOTAL");
    finish(out, out->min_volume);
}

enum sb_status ledger_quality_window(struct ledger *l, const char *path, enum ledger_quality_by by,
                                     const char *only, int64_t now_ms, int64_t window_ms,
                                     uint64_t min_volume, struct ledger_quality *out, char *msg,
                                     size_t msglen)
{
    int64_t since = (now_ms - window_ms) / MINUTE_MS * MINUTE_MS;
    int64_t until = (now_ms / MINUTE_MS + 1) * MINUTE_MS;
    if (recent(l, by, only, since, until, min_volume, out))
        return SB_OK;
    enum sb_status st = ledger_quality_load(path, by, since, until, min_volume, out, msg, msglen);
    if (only)
        keep_only(out, only);
    return st;
}
