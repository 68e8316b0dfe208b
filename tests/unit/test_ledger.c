/*
 * test_ledger.c - the SQLite ledger in a temporary directory: rows written in batches and
 * read back field by field (NULL costs when usage is missing), close writing everything
 * queued, a batch committed while the ledger is still open, spend rebuilt per UTC day and
 * month with a fake "now", reopening and schema versions, bad files, events and votes, the
 * UTC calendar and --since, several threads posting at once (run under TSan too), and the
 * frees the writer runs for others (ledger_post_free): soon, off the poster's thread, all of
 * them by close.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "support_tmp.h"
#include "switchboard/ledger.h"
#include "switchboard/log.h"

#define DAY  86400000LL
#define HOUR 3600000LL

/* 2026-11-21T12:00:00Z and friends */
#define NOV21_NOON 1795262400000LL
#define NOV21      (NOV21_NOON - 12 * HOUR)
#define NOV01      (NOV21 - 20 * DAY)
#define DEC01      (NOV01 + 30 * DAY)

static struct ledger_call base_call(int64_t at)
{
    struct ledger_call c = {
        .wall_ms = at,
        .request_id = "req-1",
        .route = "chat",
        .target = "a",
        .model = "gpt-4o-mini",
        .tag = "batch",
        .status = 200,
        .upstream_status = 200,
        .err = LLM_ERR_NONE,
        .attempts = 1,
        .usage = {.present = true, .input_tokens = 100, .output_tokens = 50, .cached_tokens = 10},
        .cost_usd = 0.5,
        .est_cost_usd = -1,
        .baseline_cost_usd = 2.0,
        .retry_cost_usd = 0,
        .hedge_cost_usd = 0,
        .latency_us = 12345,
        .ttft_us = 2345,
        .prompt_hash = 0xfeedfacecafebeefull,
    };
    return c;
}

struct rows {
    size_t n;
    struct ledger_call first;
    char route[32], target[32], tag[32], model[32], request_id[32];
    double spend;
};

static int collect(void *ctx, const struct ledger_call *c)
{
    struct rows *r = ctx;
    if (r->n++ == 0) {
        r->first = *c;
        str_copy(r->route, sizeof r->route, c->route ? c->route : "(null)");
        str_copy(r->target, sizeof r->target, c->target ? c->target : "(null)");
        str_copy(r->tag, sizeof r->tag, c->tag ? c->tag : "(null)");
        str_copy(r->model, sizeof r->model, c->model ? c->model : "(null)");
        str_copy(r->request_id, sizeof r->request_id, c->request_id ? c->request_id : "(null)");
    }
    r->spend += ledger_call_spend(c, NULL);
    return 0;
}

static struct rows read_all(const char *path)
{
    struct rows r;
    memset(&r, 0, sizeof r);
    char msg[256];
    assert_int_equal(ledger_read_calls(path, 0, INT64_MAX, collect, &r, msg, sizeof msg), SB_OK);
    return r;
}

static struct ledger *open_ok(const char *path, int64_t batch_ms)
{
    char msg[256] = "";
    struct ledger *l = ledger_open(path, batch_ms, msg, sizeof msg);
    if (!l)
        fail_msg("ledger_open: %s", msg);
    return l;
}

/* ---- rows ---------------------------------------------------------------------------------- */

static void test_ledger_writes_a_call_and_reads_every_field_back(void **state)
{
    struct tmp_dir *t = *state;
    struct ledger *l = open_ok(t->path, 20);
    struct ledger_call c = base_call(NOV21_NOON);
    c.retries = 2;
    c.hedges = 1;
    c.hedged = true;
    c.retry_cost_usd = 0.25;
    c.hedge_cost_usd = -1;
    ledger_post_call(l, &c);
    ledger_close(l);
    struct rows r = read_all(t->path);
    assert_int_equal(r.n, 1);
    assert_true(r.first.wall_ms == NOV21_NOON);
    assert_string_equal(r.request_id, "req-1");
    assert_string_equal(r.route, "chat");
    assert_string_equal(r.target, "a");
    assert_string_equal(r.model, "gpt-4o-mini");
    assert_string_equal(r.tag, "batch");
    assert_int_equal(r.first.status, 200);
    assert_int_equal(r.first.err, LLM_ERR_NONE);
    assert_int_equal(r.first.retries, 2);
    assert_int_equal(r.first.hedges, 1);
    assert_true(r.first.hedged);
    assert_true(r.first.usage.present);
    assert_int_equal(r.first.usage.input_tokens, 100);
    assert_int_equal(r.first.usage.output_tokens, 50);
    assert_int_equal(r.first.usage.cached_tokens, 10);
    assert_false(r.first.usage_missing);
    assert_true(r.first.cost_usd == 0.5);
    assert_true(r.first.baseline_cost_usd == 2.0);
    assert_true(r.first.retry_cost_usd == 0.25);
    assert_true(r.first.hedge_cost_usd < 0); /* unknown stays NULL */
    assert_int_equal(r.first.latency_us, 12345);
    assert_int_equal(r.first.ttft_us, 2345);
    assert_true(r.first.prompt_hash == 0xfeedfacecafebeefull);
    assert_true(r.spend == 0.75); /* answer + known retry cost */
}

static double column_double(const char *path, const char *sql, bool *is_null)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    *is_null = sqlite3_column_type(st, 0) == SQLITE_NULL;
    double v = sqlite3_column_double(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

static void test_ledger_missing_usage_is_null_cost_never_zero(void **state)
{
    struct tmp_dir *t = *state;
    struct ledger *l = open_ok(t->path, 20);
    struct ledger_call c = base_call(NOV21_NOON);
    c.usage.present = false;
    c.usage_missing = true;
    c.cost_usd = 0;
    c.est_cost_usd = 0.3;
    c.baseline_cost_usd = -1;
    c.tag = NULL;
    c.ttft_us = -1;
    ledger_post_call(l, &c);
    ledger_close(l);
    bool null;
    column_double(t->path, "SELECT cost_usd FROM calls", &null);
    assert_true(null);
    column_double(t->path, "SELECT tokens_in FROM calls", &null);
    assert_true(null);
    column_double(t->path, "SELECT baseline_cost_usd FROM calls", &null);
    assert_true(null);
    column_double(t->path, "SELECT tag FROM calls", &null);
    assert_true(null);
    assert_true(column_double(t->path, "SELECT usage_missing FROM calls", &null) == 1);
    assert_true(column_double(t->path, "SELECT est_cost_usd FROM calls", &null) == 0.3);
    struct rows r = read_all(t->path);
    assert_true(r.first.usage_missing);
    assert_false(r.first.usage.present);
    assert_true(r.first.ttft_us < 0);
    assert_string_equal(r.tag, "(null)");
    assert_true(r.spend == 0.3); /* budgets count the estimate */
}

static void test_ledger_close_writes_everything_queued(void **state)
{
    struct tmp_dir *t = *state;
    struct ledger *l = open_ok(t->path, 5000); /* no batch would be due before close */
    enum { N = 20000 };
    for (int i = 0; i < N; i++) {
        struct ledger_call c = base_call(NOV21_NOON + i);
        ledger_post_call(l, &c);
    }
    ledger_close(l);
    assert_int_equal(read_all(t->path).n, N);
}

static void test_ledger_commits_a_batch_while_open(void **state)
{
    struct tmp_dir *t = *state;
    struct ledger *l = open_ok(t->path, 30);
    struct ledger_call c = base_call(NOV21_NOON);
    ledger_post_call(l, &c);
    size_t seen = 0;
    int64_t give_up = clock_mono_ms() + 10000;
    while (seen == 0 && clock_mono_ms() < give_up) {
        clock_sleep_ms(10);
        seen = read_all(t->path).n; /* a second connection: only committed rows */
    }
    assert_int_equal(seen, 1);
    struct ledger_stats st;
    ledger_get_stats(l, &st);
    assert_int_equal(st.written, 1);
    assert_int_equal(st.queued, 0);
    assert_int_equal(st.dropped, 0);
    ledger_close(l);
}

/* ---- request lookup (the console's :req, GET /admin/requests/ID) ---------------------------- */

static void check_info(const struct ledger_call_info *i)
{
    assert_string_equal(i->request_id, "req-1");
    assert_string_equal(i->target, "a");
    assert_string_equal(i->route, "chat");
    assert_string_equal(i->model, "gpt-4o-mini");
    assert_int_equal(i->status, 200);
    assert_int_equal(i->attempts, 2);
    assert_int_equal(i->retries, 1);
    assert_int_equal(i->tokens_in, 100);
    assert_true(i->cost_usd > 0.49 && i->cost_usd < 0.51);
    assert_int_equal(i->latency_us, 12345);
    assert_int_equal(i->ttft_us, 2345);
}

static void test_ledger_finds_a_call_by_request_id_queued_and_written(void **state)
{
    struct tmp_dir *t = *state;
    struct ledger *l = open_ok(t->path, 60000); /* nothing written while the test looks */
    struct ledger_call c = base_call(NOV21_NOON);
    c.attempts = 2;
    c.retries = 1;
    ledger_post_call(l, &c);
    struct ledger_call_info info;
    char msg[256] = "";
    assert_int_equal(ledger_find_request(l, "req-1", &info, msg, sizeof msg), SB_OK);
    check_info(&info); /* from the queue */
    ledger_close(l);
    l = open_ok(t->path, 20);
    memset(&info, 0, sizeof info);
    assert_int_equal(ledger_find_request(l, "req-1", &info, msg, sizeof msg), SB_OK);
    check_info(&info); /* from the file */
    struct buf text;
    buf_init(&text);
    ledger_call_info_text(&info, &text);
    assert_non_null(strstr(buf_str(&text), "request id  req-1"));
    assert_non_null(strstr(buf_str(&text), "attempts    2 (retries/fallbacks 1"));
    buf_cleanup(&text);
    assert_int_equal(ledger_find_request(l, "req-2", &info, msg, sizeof msg), SB_ERR_NOT_FOUND);
    assert_non_null(strstr(msg, "req-2"));
    ledger_close(l);
    l = open_ok(":memory:", 20);
    assert_int_equal(ledger_find_request(l, "req-1", &info, msg, sizeof msg), SB_ERR_UNSUPPORTED);
    assert_non_null(strstr(msg, ":memory:"));
    ledger_close(l);
}

/* ---- spend rebuild ------------------------------------------------------------------------- */

static void post_at(struct ledger *l, int64_t at, const char *target, const char *route,
                    const char *tag, double cost)
{
    struct ledger_call c = base_call(at);
    c.target = target;
    c.route = route;
    c.tag = tag;
    c.cost_usd = cost;
    c.baseline_cost_usd = cost * 2;
    ledger_post_call(l, &c);
}

static const struct ledger_spend_item *item(const struct ledger_spend *s, enum budget_scope sc,
                                            const char *name)
{
    for (size_t i = 0; i < s->n; i++) {
        if (s->items[i].scope == sc && str_eq(s->items[i].name, name))
            return &s->items[i];
    }
    fail_msg("no %s %s", budget_scope_name(sc), name);
    return NULL;
}

static void test_ledger_rebuilds_spend_per_utc_day_and_month(void **state)
{
    struct tmp_dir *t = *state;
    struct ledger *l = open_ok(t->path, 20);
    post_at(l, NOV01 - 1, "a", "chat", "x", 100);     /* October: out */
    post_at(l, NOV01, "a", "chat", "x", 1);           /* this month */
    post_at(l, NOV21 - 1, "b", "chat", "y", 2);       /* yesterday 23:59:59.999 */
    post_at(l, NOV21, "a", "chat", "x", 4);           /* today 00:00 */
    post_at(l, NOV21_NOON, "b", "bulk", NULL, 8);     /* today, untagged */
    post_at(l, DEC01, "a", "chat", "x", 1000);        /* next month: out */
    struct ledger_call m = base_call(NOV21_NOON + 1); /* usage missing: the estimate */
    m.usage_missing = true;
    m.usage.present = false;
    m.est_cost_usd = 16;
    m.baseline_cost_usd = -1;
    m.retry_cost_usd = 32; /* route/tag/global count it, target does not */
    ledger_post_call(l, &m);
    struct ledger_call cached = base_call(NOV21_NOON + 2); /* answered from the cache */
    cached.target = "cache";
    cached.cached = true;
    cached.cost_usd = 0;
    cached.baseline_cost_usd = 64;
    ledger_post_call(l, &cached);
    ledger_close(l);

    struct ledger_spend s;
    ledger_spend_init(&s);
    char msg[256];
    assert_int_equal(ledger_load_spend(t->path, NOV21_NOON + HOUR, &s, msg, sizeof msg), SB_OK);
    assert_true(s.day_start_ms == NOV21);
    assert_true(s.month_start_ms == NOV01);
    assert_true(item(&s, BUDGET_TARGET, "a")->day_usd == 4 + 16);
    assert_true(item(&s, BUDGET_TARGET, "a")->month_usd == 1 + 4 + 16);
    assert_true(item(&s, BUDGET_TARGET, "b")->day_usd == 8);
    assert_true(item(&s, BUDGET_TARGET, "b")->month_usd == 10);
    assert_true(item(&s, BUDGET_ROUTE, "chat")->day_usd == 4 + 48);
    assert_true(item(&s, BUDGET_ROUTE, "chat")->month_usd == 1 + 2 + 4 + 48);
    assert_true(item(&s, BUDGET_ROUTE, "bulk")->day_usd == 8);
    assert_true(item(&s, BUDGET_TAG, "x")->month_usd == 5);
    assert_true(item(&s, BUDGET_TAG, "batch")->day_usd == 48);
    for (size_t i = 0; i < s.n; i++)
        assert_false(str_eq(s.items[i].name, "cache") && s.items[i].scope == BUDGET_TARGET);
    assert_true(s.global_day_usd == 4 + 8 + 48);
    assert_true(s.global_month_usd == 1 + 2 + 4 + 8 + 48);
    /* savings: baseline - cost where both are known (the cache hit saved 64) */
    assert_true(s.savings_day_usd == 4 + 8 + 64);
    assert_true(s.savings_month_usd == 1 + 2 + 4 + 8 + 64);
    /* The next day: only the month remains. */
    assert_int_equal(ledger_load_spend(t->path, NOV21 + DAY + 1, &s, msg, sizeof msg), SB_OK);
    assert_true(s.global_day_usd == 0);
    assert_true(s.global_month_usd == 1 + 2 + 4 + 8 + 48);
    ledger_spend_cleanup(&s);
}

static void test_ledger_spend_of_a_missing_file_or_memory_is_zero(void **state)
{
    struct tmp_dir *t = *state;
    struct ledger_spend s;
    ledger_spend_init(&s);
    char msg[256];
    assert_int_equal(ledger_load_spend(t->path, NOV21_NOON, &s, msg, sizeof msg), SB_OK);
    assert_int_equal(s.n, 0);
    assert_int_equal(ledger_load_spend(":memory:", NOV21_NOON, &s, msg, sizeof msg), SB_OK);
    assert_true(s.global_day_usd == 0);
    struct ledger *l = open_ok(":memory:", 10);
    struct ledger_call c = base_call(NOV21_NOON);
    ledger_post_call(l, &c);
    ledger_close(l);
    ledger_spend_cleanup(&s);
}

/* ---- files --------------------------------------------------------------------------------- */

static int schema_version(const char *path)
{
    bool null;
    return (int)column_double(path, "SELECT MAX(version) FROM schema_version", &null);
}

static void test_ledger_reopen_appends_and_keeps_the_schema(void **state)
{
    struct tmp_dir *t = *state;
    struct ledger *l = open_ok(t->path, 20);
    struct ledger_call c = base_call(NOV21_NOON);
    ledger_post_call(l, &c);
    ledger_close(l);
    assert_int_equal(schema_version(t->path), LEDGER_SCHEMA_VERSION);
    l = open_ok(t->path, 20);
    ledger_post_call(l, &c);
    ledger_close(l);
    assert_int_equal(read_all(t->path).n, 2);
    bool null;
    assert_true(column_double(t->path, "SELECT COUNT(*) FROM schema_version", &null) ==
                LEDGER_SCHEMA_VERSION); /* one row per migration, none applied twice */
}

/* A version 1 ledger (before client keys) gets the client column and the key table, keeps
 * its rows, and records each call's client key name from then on. */
static void test_ledger_migrates_to_client_keys(void **state)
{
    struct tmp_dir *t = *state;
    struct ledger *l = open_ok(t->path, 20);
    struct ledger_call c = base_call(NOV21_NOON);
    ledger_post_call(l, &c);
    ledger_close(l);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(t->path, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(db,
                     "DROP INDEX events_target_ts; ALTER TABLE events DROP COLUMN user;"
                     "ALTER TABLE events DROP COLUMN action;"
                     "ALTER TABLE events DROP COLUMN state_before;"
                     "ALTER TABLE events DROP COLUMN state_after;"
                     "ALTER TABLE events DROP COLUMN expires_ms;"
                     "DROP TABLE feedback; DROP INDEX calls_request;"
                     "DROP INDEX calls_user_ts; ALTER TABLE calls DROP COLUMN user;"
                     "ALTER TABLE calls DROP COLUMN finish;"
                     "DROP INDEX calls_client_ts; ALTER TABLE calls DROP COLUMN "
                     "client; DROP TABLE client_keys;"
                     "DELETE FROM schema_version WHERE version >= 2;",
                     NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(schema_version(t->path), 1);
    l = open_ok(t->path, 20);
    c.client = "team-a";
    ledger_post_call(l, &c);
    ledger_close(l);
    assert_int_equal(schema_version(t->path), LEDGER_SCHEMA_VERSION);
    bool null;
    assert_true(column_double(t->path, "SELECT COUNT(*) FROM calls", &null) == 2);
    assert_true(
        column_double(t->path, "SELECT COUNT(*) FROM calls WHERE client = 'team-a'", &null) == 1);
    assert_true(column_double(t->path, "SELECT COUNT(*) FROM client_keys", &null) == 0);
}

static void test_ledger_refuses_a_newer_schema(void **state)
{
    struct tmp_dir *t = *state;
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(t->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db,
                                  "CREATE TABLE schema_version (version INTEGER NOT NULL,"
                                  " applied_ms INTEGER NOT NULL);"
                                  "INSERT INTO schema_version VALUES (99, 0);",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    char msg[256] = "";
    assert_null(ledger_open(t->path, 20, msg, sizeof msg));
    assert_non_null(strstr(msg, "schema version 99"));
}

static void test_ledger_refuses_what_is_not_a_database(void **state)
{
    struct tmp_dir *t = *state;
    FILE *f = fopen(t->path, "w");
    assert_non_null(f);
    for (int i = 0; i < 200; i++)
        fputs("this is not a database, it is a text file that happens to be here\n", f);
    fclose(f);
    char msg[256] = "";
    assert_null(ledger_open(t->path, 20, msg, sizeof msg));
    assert_non_null(strstr(msg, t->path));
    assert_non_null(strstr(msg, "not a database"));
    assert_int_equal(ledger_read_calls(t->path, 0, 1, collect, NULL, msg, sizeof msg), SB_ERR_IO);
}

static void test_ledger_unopenable_path_names_the_file(void **state)
{
    (void)state;
    char msg[256] = "";
    assert_null(ledger_open("/nonexistent-dir-sb/x/ledger.db", 20, msg, sizeof msg));
    assert_non_null(strstr(msg, "/nonexistent-dir-sb/x/ledger.db"));
    assert_int_equal(
        ledger_read_calls("/nonexistent-dir-sb/l.db", 0, 1, collect, NULL, msg, sizeof msg),
        SB_ERR_NOT_FOUND);
}

static void test_ledger_records_events_and_votes(void **state)
{
    struct tmp_dir *t = *state;
    struct ledger *l = open_ok(t->path, 20);
    ledger_post_event(l, NOV21_NOON, "operator", "a", "console: drain a: weight 1 -> drained");
    ledger_post_event(l, NOV21_NOON + 1, "budget", NULL, "budget 'global' at 80%");
    ledger_post_vote(l, NOV21_NOON + 2, 42, "a", "b,c", "console");
    ledger_close(l);
    bool null;
    assert_true(column_double(t->path, "SELECT COUNT(*) FROM events", &null) == 2);
    assert_true(column_double(t->path,
                              "SELECT COUNT(*) FROM events WHERE kind='operator' AND target='a'",
                              &null) == 1);
    column_double(t->path, "SELECT target FROM events WHERE kind='budget'", &null);
    assert_true(null);
    assert_true(column_double(t->path,
                              "SELECT prompt_hash FROM votes WHERE winner='a' AND losers='b,c'"
                              " AND user='console'",
                              &null) == 42);
}

/* An audit row keeps who, target, action, before -> after and expiry in their own columns. */
static void test_ledger_audit_rows_have_every_field(void **state)
{
    struct tmp_dir *t = *state;
    struct ledger *l = open_ok(t->path, 20);
    struct ledger_audit a = {.wall_ms = NOV21_NOON,
                             .user = "oncall:alice",
                             .target = "a",
                             .action = "force-live",
                             .before = "weight 1",
                             .after = "weight 1, forced live",
                             .expires_wall_ms = NOV21_NOON + 600000,
                             .text = "oncall:alice: force-live a for 10m"};
    ledger_post_audit(l, &a);
    struct ledger_audit lapse = {.wall_ms = NOV21_NOON + 600000,
                                 .user = "expiry",
                                 .target = "a",
                                 .action = "force-live expired",
                                 .before = "weight 1, forced live",
                                 .after = "weight 1",
                                 .text = "force-live on a expired"};
    ledger_post_audit(l, &lapse);
    ledger_close(l);
    bool null;
    assert_true(
        column_double(t->path,
                      "SELECT COUNT(*) FROM events WHERE kind='operator' AND target='a'"
                      " AND user='oncall:alice' AND action='force-live'"
                      " AND state_before='weight 1' AND state_after='weight 1, forced live'",
                      &null) == 1);
    assert_true(column_double(t->path, "SELECT expires_ms FROM events WHERE user='oncall:alice'",
                              &null) == (double)(NOV21_NOON + 600000));
    column_double(t->path, "SELECT expires_ms FROM events WHERE user='expiry'", &null);
    assert_true(null); /* a lapse has no expiry of its own */
    assert_true(column_double(t->path,
                              "SELECT COUNT(*) FROM events WHERE user='expiry' AND"
                              " state_before='weight 1, forced live' AND state_after='weight 1'",
                              &null) == 1);
}

/* A version-3 ledger (events without audit columns) migrates, keeping its rows. */
static void test_ledger_migrates_events_to_audit_columns(void **state)
{
    struct tmp_dir *t = *state;
    struct ledger *l = open_ok(t->path, 20);
    ledger_post_event(l, NOV21_NOON, "operator", "a", "old row");
    ledger_close(l);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(t->path, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(db,
                     "DROP INDEX events_target_ts; ALTER TABLE events DROP COLUMN user;"
                     "ALTER TABLE events DROP COLUMN action;"
                     "ALTER TABLE events DROP COLUMN state_before;"
                     "ALTER TABLE events DROP COLUMN state_after;"
                     "ALTER TABLE events DROP COLUMN expires_ms;"
                     "DELETE FROM schema_version WHERE version >= 4;",
                     NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(schema_version(t->path), 3);
    l = open_ok(t->path, 20);
    struct ledger_audit a = {
        .wall_ms = NOV21_NOON, .user = "u", .target = "a", .action = "drain", .text = "x"};
    ledger_post_audit(l, &a);
    ledger_close(l);
    assert_int_equal(schema_version(t->path), 4);
    bool null;
    assert_true(column_double(t->path, "SELECT COUNT(*) FROM events", &null) == 2);
    assert_true(column_double(t->path, "SELECT COUNT(*) FROM events WHERE user IS NULL", &null) ==
                1);
}

/* ":memory:" keeps nothing: the process's SQLite memory does not grow with the calls posted
 * (it grew ~250 bytes a call before). */
static void test_ledger_memory_keeps_nothing(void **state)
{
    (void)state;
    struct ledger *l = open_ok(":memory:", 5);
    enum { N = 20000 };
    struct ledger_stats st;
    for (int round = 0; round < 2; round++) {
        sqlite3_int64 before = sqlite3_memory_used();
        for (int i = 0; i < N; i++) {
            struct ledger_call c = base_call(NOV21_NOON + i);
            ledger_post_call(l, &c);
            if (i % 1000 == 999)
                usleep(2000); /* below the queue's bound */
        }
        for (int w = 0; w < 500; w++) {
            ledger_get_stats(l, &st);
            if (st.written == (uint64_t)N * (uint64_t)(round + 1))
                break;
            usleep(10000);
        }
        assert_int_equal(st.written, (uint64_t)N * (uint64_t)(round + 1));
        sqlite3_int64 grew = sqlite3_memory_used() - before;
        if (grew > 256 * 1024)
            fail_msg("SQLite memory grew by %lld bytes for %d calls", (long long)grew, N);
    }
    assert_int_equal(st.dropped, 0);
    ledger_close(l);
}

/* ---- threads ------------------------------------------------------------------------------- */

struct poster {
    struct ledger *l;
    int id;
};

static void *post_many(void *arg)
{
    struct poster *p = arg;
    for (int i = 0; i < 1500; i++) {
        struct ledger_call c = base_call(NOV21_NOON + i);
        char rid[32];
        snprintf(rid, sizeof rid, "t%d-%d", p->id, i);
        c.request_id = rid;
        ledger_post_call(p->l, &c);
        if (i % 100 == 0)
            ledger_post_event(p->l, NOV21_NOON, "operator", NULL, "x");
        if (i % 300 == 0) {
            struct ledger_stats st;
            ledger_get_stats(p->l, &st);
        }
    }
    return NULL;
}

static void test_ledger_takes_rows_from_many_threads_at_once(void **state)
{
    struct tmp_dir *t = *state;
    struct ledger *l = open_ok(t->path, 10);
    enum { THREADS = 4 };
    pthread_t th[THREADS];
    struct poster p[THREADS];
    for (int i = 0; i < THREADS; i++) {
        p[i] = (struct poster){l, i};
        assert_int_equal(pthread_create(&th[i], NULL, post_many, &p[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    ledger_close(l);
    assert_int_equal(read_all(t->path).n, THREADS * 1500);
    bool null;
    assert_true(column_double(t->path, "SELECT COUNT(DISTINCT request_id) FROM calls", &null) ==
                THREADS * 1500);
}

/* ---- calendar ------------------------------------------------------------------------------ */

static int64_t ms_of(const char *s)
{
    int64_t v = 0;
    assert_true(ledger_parse_since(s, 0, &v));
    return v;
}

/* ---- ledger_post_free ---------------------------------------------------------------------- */

struct freed {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int n;
    pthread_t thread; /* the last free's */
};

static void note_free(void *arg)
{
    struct freed *f = arg;
    pthread_mutex_lock(&f->mu);
    f->n++;
    f->thread = pthread_self();
    pthread_cond_broadcast(&f->cv);
    pthread_mutex_unlock(&f->mu);
}

/* A free runs on the writer thread as soon as it is posted, not when the batch falls due: the
 * row posted before it (batch_ms 10 s) is still queued when it has run. */
static void test_ledger_runs_a_free_on_its_writer_before_the_batch(void **state)
{
    (void)state;
    char msg[256];
    struct ledger *l = ledger_open(":memory:", 10000, msg, sizeof msg);
    assert_non_null(l);
    struct ledger_call c = base_call(NOV21_NOON);
    ledger_post_call(l, &c);
    struct freed f = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    assert_true(ledger_post_free(l, note_free, &f));
    pthread_mutex_lock(&f.mu);
    while (f.n < 1)
        pthread_cond_wait(&f.cv, &f.mu);
    pthread_mutex_unlock(&f.mu);
    assert_false(pthread_equal(f.thread, pthread_self()));
    struct ledger_stats st;
    ledger_get_stats(l, &st);
    assert_int_equal(st.queued, 1);
    assert_int_equal(st.written, 0);
    ledger_close(l);
}

/* Every free accepted has run when ledger_close returns (none queued behind a batch window of
 * 10 s); a NULL ledger refuses one (the poster frees). */
static void test_ledger_close_runs_every_free_accepted(void **state)
{
    (void)state;
    char msg[256];
    struct ledger *l = ledger_open(":memory:", 10000, msg, sizeof msg);
    assert_non_null(l);
    struct freed f = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    for (int i = 0; i < 100; i++)
        assert_true(ledger_post_free(l, note_free, &f));
    ledger_close(l);
    assert_int_equal(f.n, 100);
    assert_false(ledger_post_free(NULL, note_free, &f));
    assert_int_equal(f.n, 100);
}

static void test_ledger_utc_calendar(void **state)
{
    (void)state;
    char d[11], tm[21];
    assert_true(ms_of("2026-11-21T12:00:00Z") == NOV21_NOON);
    assert_true(ledger_day_start(NOV21_NOON) == NOV21);
    assert_true(ledger_month_start(NOV21_NOON) == NOV01);
    assert_true(ledger_next_month_start(NOV21_NOON) == DEC01);
    assert_true(ledger_next_month_start(ms_of("2026-12-31T23:59:59Z")) == ms_of("2027-01-01"));
    assert_true(ledger_month_start(ms_of("2028-02-29T10:00")) == ms_of("2028-02-01"));
    assert_true(ledger_next_month_start(ms_of("2028-02-29")) == ms_of("2028-03-01"));
    assert_true(ledger_day_start(-1) == -DAY); /* before the epoch rounds down */
    ledger_format_date(NOV21_NOON, d);
    assert_string_equal(d, "2026-11-21");
    ledger_format_time(NOV21_NOON + 61500, tm);
    assert_string_equal(tm, "2026-11-21T12:01:01Z");
    ledger_format_date(ms_of("2000-02-29"), d);
    assert_string_equal(d, "2000-02-29");
}

static void test_ledger_parses_since(void **state)
{
    (void)state;
    int64_t v;
    assert_true(ledger_parse_since("24h", NOV21_NOON, &v) && v == NOV21_NOON - 24 * HOUR);
    assert_true(ledger_parse_since("7d", NOV21_NOON, &v) && v == NOV21_NOON - 7 * DAY);
    assert_true(ledger_parse_since("30m", NOV21_NOON, &v) && v == NOV21_NOON - 1800000);
    assert_true(ledger_parse_since("2026-11-01", NOV21_NOON, &v) && v == NOV01);
    assert_true(ledger_parse_since("2026-11-21T12:00:00Z", 0, &v) && v == NOV21_NOON);
    static const char *const bad[] = {"",         "h",          "24",          "24x",
                                      "-5m",      "2026-13-01", "2026-02-30",  "2026-11-01T25:00",
                                      "2026-1-1", "yesterday",  "2026-11-01Tx"};
    for (size_t i = 0; i < SB_ARRAY_LEN(bad); i++) {
        if (ledger_parse_since(bad[i], NOV21_NOON, &v))
            fail_msg("accepted --since '%s'", bad[i]);
    }
}

int main(void)
{
    log_setup(LOG_LEVEL_OFF, -1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ledger_finds_a_call_by_request_id_queued_and_written,
                                        tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(test_ledger_writes_a_call_and_reads_every_field_back,
                                        tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(test_ledger_missing_usage_is_null_cost_never_zero,
                                        tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(test_ledger_close_writes_everything_queued, tmp_setup,
                                        tmp_teardown),
        cmocka_unit_test_setup_teardown(test_ledger_commits_a_batch_while_open, tmp_setup,
                                        tmp_teardown),
        cmocka_unit_test_setup_teardown(test_ledger_rebuilds_spend_per_utc_day_and_month, tmp_setup,
                                        tmp_teardown),
        cmocka_unit_test_setup_teardown(test_ledger_spend_of_a_missing_file_or_memory_is_zero,
                                        tmp_setup, tmp_teardown),
        cmocka_unit_test_setup_teardown(test_ledger_migrates_to_client_keys, tmp_setup,
                                        tmp_teardown),
        cmocka_unit_test_setup_teardown(test_ledger_reopen_appends_and_keeps_the_schema, tmp_setup,
                                        tmp_teardown),
        cmocka_unit_test_setup_teardown(test_ledger_refuses_a_newer_schema, tmp_setup,
                                        tmp_teardown),
        cmocka_unit_test_setup_teardown(test_ledger_refuses_what_is_not_a_database, tmp_setup,
                                        tmp_teardown),
        cmocka_unit_test(test_ledger_unopenable_path_names_the_file),
        cmocka_unit_test_setup_teardown(test_ledger_records_events_and_votes, tmp_setup,
                                        tmp_teardown),
        cmocka_unit_test_setup_teardown(test_ledger_audit_rows_have_every_field, tmp_setup,
                                        tmp_teardown),
        cmocka_unit_test_setup_teardown(test_ledger_migrates_events_to_audit_columns, tmp_setup,
                                        tmp_teardown),
        cmocka_unit_test(test_ledger_memory_keeps_nothing),
        cmocka_unit_test_setup_teardown(test_ledger_takes_rows_from_many_threads_at_once, tmp_setup,
                                        tmp_teardown),
        cmocka_unit_test(test_ledger_runs_a_free_on_its_writer_before_the_batch),
        cmocka_unit_test(test_ledger_close_runs_every_free_accepted),
        cmocka_unit_test(test_ledger_utc_calendar),
        cmocka_unit_test(test_ledger_parses_since),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
