/*
 * feedback.c - ratings of answers: POST /v1/feedback's checks (the call exists, belongs to the
 * rater's client key, is still inside the acceptance window and was not rated before), the
 * hashed user ids, and the recent negative feedback the console's detail view lists.
 *
 * A call row may still be queued when its answer reaches the client, so a request id is
 * looked up in the rows not committed yet first (ledger.c, under the ledger's lock) and then
 * in the file. The writer drops a batch from its searchable list only after committing it, so
 * a row is always in one of the two places. The duplicate check is repeated under the lock
 * when the rating is queued; the table's unique index (INSERT OR IGNORE) keeps the first of
 * two ratings that race past both checks (across processes sharing one file).
 *
 * Threads: any. Each function opens its own read-only connection and closes it before
 * returning; no state of its own.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "internal.h"
#include "switchboard/clients.h"
#include "switchboard/ledger.h"

static const char sql_find_call[] =
    "SELECT ts_ms, status, target, route, model, tag, user, client, prompt_hash FROM calls"
    " WHERE request_id = ?1 ORDER BY ts_ms DESC, id DESC LIMIT 1";
static const char sql_find_rating[] = "SELECT 1 FROM feedback WHERE request_id = ?1 LIMIT 1";
/* Every target's (a scan of the table), or one target's (?1) along feedback_target_ts,
 * newest first, so it stops after ?2. */
#define SQL_NEGATIVE(where)                                                                        \
    "SELECT ts_ms, source, IFNULL(request_id, ''), target, score, IFNULL(label, ''),"              \
    " IFNULL(comment, '') FROM feedback WHERE score < 0" where                                     \
    " ORDER BY ts_ms DESC, id DESC LIMIT ?2"
static const char sql_negative[] = SQL_NEGATIVE("");
static const char sql_negative_of[] = SQL_NEGATIVE(" AND target = ?1");

int ledger_fb_verdict_status(enum ledger_fb_verdict v)
{
    switch (v) {
    case LEDGER_FB_OK:
        return 201;
    case LEDGER_FB_UNKNOWN:
        return 404;
    case LEDGER_FB_DUPLICATE:
        return 409;
    case LEDGER_FB_EXPIRED:
        return 410;
    case LEDGER_FB_FORBIDDEN:
        return 403;
    case LEDGER_FB_UNAVAILABLE:
        return 503;
    }
    return 500;
}

const char *ledger_fb_verdict_code(enum ledger_fb_verdict v)
{
    switch (v) {
    case LEDGER_FB_OK:
        return "ok";
    case LEDGER_FB_UNKNOWN:
        return "unknown_request_id";
    case LEDGER_FB_DUPLICATE:
        return "already_rated";
    case LEDGER_FB_EXPIRED:
        return "feedback_window_closed";
    case LEDGER_FB_FORBIDDEN:
        return "not_your_request";
    case LEDGER_FB_UNAVAILABLE:
        return "ledger_unavailable";
    }
    return "unknown";
}

void ledger_user_hash(const char *user, char out[LEDGER_USER_HASH_LEN + 1])
{
    uint8_t h[CLIENTS_HASH_LEN];
    char hex[CLIENTS_HASH_HEX + 1];
    clients_sha256(user ? user : "", user ? strlen(user) : 0, h);
    clients_hash_hex(h, hex);
    snprintf(out, LEDGER_USER_HASH_LEN + 1, "u-%.16s", hex);
}

/* ---- lookups in the file ----------------------------------------------------------------- */

static bool open_ro(const char *path, sqlite3 **db)
{
    *db = NULL;
    if (str_eq(path, ":memory:") || access(path, F_OK) != 0)
        return false;
    int rc = sqlite3_open_v2(path, db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_busy_timeout(*db, 5000);
    if (rc != SQLITE_OK) {
        sqlite3_close(*db);
        *db = NULL;
    }
    return *db != NULL;
}

static void col_copy(sqlite3_stmt *st, int i, char *out, size_t outlen)
{
    const unsigned char *s = sqlite3_column_text(st, i);
    str_copy(out, outlen, s ? (const char *)s : "");
}

/* 1 found, 0 not found, -1 error. */
static int db_find_call(sqlite3 *db, const char *request_id, struct ledger_call_ref *out)
{
    sqlite3_stmt *st = NULL;
    int found = -1;
    if (sqlite3_prepare_v2(db, sql_find_call, -1, &st, NULL) != SQLITE_OK)
        goto out;
    sqlite3_bind_text(st, 1, request_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    found = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
    if (found != 1)
        goto out;
    memset(out, 0, sizeof *out);
    out->wall_ms = sqlite3_column_int64(st, 0);
    out->status = sqlite3_column_int(st, 1);
    col_copy(st, 2, out->target, sizeof out->target);
    col_copy(st, 3, out->route, sizeof out->route);
    col_copy(st, 4, out->model, sizeof out->model);
    col_copy(st, 5, out->tag, sizeof out->tag);
    col_copy(st, 6, out->user, sizeof out->user);
    col_copy(st, 7, out->client, sizeof out->client);
    out->prompt_hash = (uint64_t)sqlite3_column_int64(st, 8);
out:
    sqlite3_finalize(st);
    return found;
}

static int db_is_rated(sqlite3 *db, const char *request_id)
{
    sqlite3_stmt *st = NULL;
    int rated = -1;
    if (sqlite3_prepare_v2(db, sql_find_rating, -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_text(st, 1, request_id, -1, SQLITE_STATIC);
        int rc = sqlite3_step(st);
        rated = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
    }
    sqlite3_finalize(st);
    return rated;
}

/* The call and whether it was rated: memory first, then the file (in that order: see the
 * comment at the top). */
static enum ledger_fb_verdict find(struct ledger *l, const char *request_id,
                                   struct ledger_call_ref *call, bool *rated)
{
    sqlite3 *db = NULL;
    enum ledger_fb_verdict v = LEDGER_FB_OK;
    bool found = ledger_mem_find(l, request_id, call, rated);
    if (!open_ro(ledger_path_peek(l), &db)) {
        if (!found)
            v = str_eq(ledger_path_peek(l), ":memory:") ? LEDGER_FB_UNAVAILABLE : LEDGER_FB_UNKNOWN;
        goto out;
    }
    int f = found ? 1 : db_find_call(db, request_id, call);
    int r = *rated ? 1 : db_is_rated(db, request_id);
    if (f < 0 || r < 0)
        v = LEDGER_FB_UNAVAILABLE;
    else if (f == 0)
        v = LEDGER_FB_UNKNOWN;
    *rated = r == 1;
out:
    sqlite3_close(db);
    return v;
}

static enum ledger_fb_verdict check(const struct ledger_feedback *fb, int64_t window_ms,
                                    const struct ledger_call_ref *call, bool rated, char *msg,
                                    size_t msglen)
{
    if (fb->rater && !str_eq(fb->rater, call->client)) {
        snprintf(msg, msglen, "request %s was not made with this client key", fb->request_id);
        return LEDGER_FB_FORBIDDEN;
    }
    if (fb->wall_ms - call->wall_ms > window_ms) {
        snprintf(msg, msglen,
                 "request %s finished %llds ago: feedback is accepted for %llds after a call",
                 fb->request_id, (long long)((fb->wall_ms - call->wall_ms) / 1000),
                 (long long)(window_ms / 1000));
        return LEDGER_FB_EXPIRED;
    }
    if (rated) {
        snprintf(msg, msglen, "request %s has feedback already", fb->request_id);
        return LEDGER_FB_DUPLICATE;
    }
    return LEDGER_FB_OK;
}

enum ledger_fb_verdict ledger_feedback_submit(struct ledger *l, const struct ledger_feedback *fb,
                                              int64_t window_ms, struct ledger_call_ref *call,
                                              char *msg, size_t msglen)
{
    struct ledger_call_ref local = {0};
    struct ledger_call_ref *ref = call ? call : &local;
    bool rated = false;
    msg[0] = '\0';
    if (!l || !fb->request_id || !*fb->request_id) {
        snprintf(msg, msglen, "no ledger to record feedback in");
        return LEDGER_FB_UNAVAILABLE;
    }
    enum ledger_fb_verdict v = find(l, fb->request_id, ref, &rated);
    if (v == LEDGER_FB_UNKNOWN)
        snprintf(msg, msglen, "no call with request id %s", fb->request_id);
    else if (v == LEDGER_FB_UNAVAILABLE)
        snprintf(msg, msglen, "the ledger cannot be read (ledger.path \":memory:\" keeps nothing)");
    if (v != LEDGER_FB_OK)
        return v;
    v = check(fb, window_ms, ref, rated, msg, msglen);
    if (v != LEDGER_FB_OK)
        return v;
    struct ledger_feedback row = *fb;
    row.call_ms = ref->wall_ms;
    row.call_status = ref->status;
    row.target = ref->target;
    row.route = ref->route;
    row.model = ref->model[0] ? ref->model : NULL;
    row.tag = ref->tag[0] ? ref->tag : NULL;
    row.user = ref->user[0] ? ref->user : NULL;
    row.client = ref->client[0] ? ref->client : NULL;
    row.prompt_hash = ref->prompt_hash;
    if (!ledger_enqueue_feedback_once(l, &row)) {
        snprintf(msg, msglen, "request %s has feedback already", fb->request_id);
        return LEDGER_FB_DUPLICATE;
    }
    return LEDGER_FB_OK;
}

/* ---- recent negative feedback ---------------------------------------------------------------- */

static _Atomic uint64_t negative_scan_steps;

uint64_t ledger_negative_scan_steps(void)
{
    return negative_scan_steps;
}

static void item_from(sqlite3_stmt *st, struct ledger_feedback_item *it)
{
    memset(it, 0, sizeof *it);
    it->wall_ms = sqlite3_column_int64(st, 0);
    col_copy(st, 1, it->source, sizeof it->source);
    col_copy(st, 2, it->request_id, sizeof it->request_id);
    col_copy(st, 3, it->target, sizeof it->target);
    it->score = sqlite3_column_double(st, 4);
    col_copy(st, 5, it->label, sizeof it->label);
    col_copy(st, 6, it->comment, sizeof it->comment);
}

enum sb_status ledger_recent_negative(const char *path, const char *target, size_t max,
                                      struct ledger_feedback_item *out, size_t *n, char *msg,
                                      size_t msglen)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    enum sb_status status = SB_OK;
    *n = 0;
    if (!open_ro(path, &db))
        goto out; /* nothing kept yet */
    if (sqlite3_prepare_v2(db, target ? sql_negative_of : sql_negative, -1, &st, NULL) !=
        SQLITE_OK) {
        /* a ledger from before quality has no feedback table: nothing to list */
        status = sqlite3_errcode(db) == SQLITE_ERROR ? SB_OK : SB_ERR_IO;
        snprintf(msg, msglen, "ledger %s: %s", path, sqlite3_errmsg(db));
        goto out;
    }
    if (target)
        sqlite3_bind_text(st, 1, target, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)max);
    while (*n < max && sqlite3_step(st) == SQLITE_ROW)
        item_from(st, &out[(*n)++]);
    negative_scan_steps += (uint64_t)sqlite3_stmt_status(st, SQLITE_STMTSTATUS_FULLSCAN_STEP, 0);
out:
    sqlite3_finalize(st);
    sqlite3_close(db);
    return status;
}
