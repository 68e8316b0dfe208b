/*
 * ledger.h - the spend ledger: every finished call, operator action and prompt-pane vote is a
 * row in SQLite (embedded, WAL mode), written by the ledger's own thread in batches so the
 * request path never waits on disk; and what is computed from it: today's and this month's
 * spend at start (budgets hold across restarts) and the `switchboard report` figures.
 *
 * Time: rows carry wall-clock milliseconds since the Unix epoch. Days and months are UTC: a
 * day runs from 00:00:00.000 UTC, a month from the 1st at 00:00 UTC.
 *
 * Durability: one transaction per batch; batch_ms is the longest a posted row waits before it
 * is committed (a batch is taken batch_ms / 2 after its first row, leaving the rest for the
 * write). WAL with synchronous=NORMAL survives a killed process: kill -9 loses at most the
 * rows posted in the last batch_ms. ledger_close writes everything queued before it returns.
 *
 * Cost: cost_usd is NULL in the table (usage_missing set) when a provider answered without
 * reporting usage: such calls are never counted as $0. est_cost_usd then holds an estimate
 * from the prompt and answer sizes, which budgets count so a provider that never reports
 * usage cannot slip past a cap.
 *
 * Threads: ledger_post_* may be called from any thread: they copy the row into a
 * mutex-guarded queue and return; they never touch the disk. The writer thread is the only
 * user of the write connection. ledger_open / ledger_close belong to the owner (main thread).
 * ledger_load_spend and ledger_read_calls open their own read-only connection, so they may
 * run in another process while `serve` writes. The report and calendar helpers are pure.
 */
#ifndef SWITCHBOARD_LEDGER_H
#define SWITCHBOARD_LEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "switchboard/clients.h"
#include "switchboard/config.h"
#include "switchboard/llm.h"
#include "switchboard/util.h"

#define LEDGER_SCHEMA_VERSION 4
#define LEDGER_QUEUE_MAX      100000 /* rows waiting for the writer; beyond it rows are dropped */

struct ledger;

/* One finished call. Writing: strings are borrowed for the duration of ledger_post_call.
 * Reading (ledger_read_calls): strings are valid during the callback only. */
struct ledger_call {
    int64_t wall_ms;          /* when the call finished */
    const char *request_id;   /* may be NULL */
    const char *route;        /* NULL or "": a direct target call */
    const char *target;       /* answering (or last tried) target; "cache"; "" when none */
    const char *model;        /* provider model id; may be NULL */
    const char *tag;          /* x-switchboard-tag; NULL when untagged */
    int status;               /* HTTP status the client got: 200, 429, 502, ... (499: left) */
    long upstream_status;     /* last upstream HTTP status; 0 when none */
    enum llm_errclass err;    /* LLM_ERR_NONE on success; stored as its name */
    int attempts;             /* attempts started, hedges included */
    int retries;              /* attempts that were retries or fallbacks */
    int hedges;               /* hedge attempts started */
    bool hedged;              /* a hedge attempt answered */
    struct llm_usage usage;   /* present == false: tokens are NULL */
    bool usage_missing;       /* answered, but no usage reported: cost is NULL */
    double cost_usd;          /* the answer's cost; meaningless when usage_missing */
    double est_cost_usd;      /* usage_missing: estimate from sizes; < 0 none */
    double baseline_cost_usd; /* what the route's baseline target would have cost; < 0 none */
    double retry_cost_usd;    /* reported cost of failed attempts; < 0 unknown */
    double hedge_cost_usd;    /* reported cost of the losing side of a hedge race; < 0 unknown */
    int64_t latency_us;
    int64_t ttft_us;        /* < 0: no output */
    bool cached;            /* answered from the response cache (cost 0) */
    bool throttled;         /* refused by a budget or the runaway guard (429) */
    uint64_t prompt_hash;   /* the runaway guard's prompt hash; 0 unknown */
    const char *client;     /* client key's name (clients.h); NULL without keys. Written only:
                               ledger_read_calls leaves it NULL */
    const char *user;       /* end user (OpenAI `user`; hashed with ledger.hash_users); NULL none.
                               Written only, like client */
    enum llm_finish finish; /* how the answer ended (NONE: not reported / no answer) */
};

/* What one call spent, as budgets count it: the answer's cost (or the estimate when usage is
 * missing) plus known retry and hedge costs. Target budgets count only answer_usd. */
double ledger_call_spend(const struct ledger_call *c, double *answer_usd);

/* ---- writer (owner thread) ----------------------------------------------------------------- */

/*
 * Opens (creating if needed) the SQLite file at path (":memory:" keeps nothing), applies the
 * schema migrations and starts the writer thread, which commits a batch every batch_ms.
 * NULL with msg on failure (path not writable, not a database, newer schema).
 */
struct ledger *ledger_open(const char *path, int64_t batch_ms, char *msg, size_t msglen);
/* Stops taking rows, writes everything queued, joins the writer. NULL-safe. */
void ledger_close(struct ledger *l);

/* ---- posting (any thread; never waits on disk) ------------------------------------------ */

void ledger_post_call(struct ledger *l, const struct ledger_call *c);
/* Hands arg over to be freed, fn(arg), on the writer thread, soon (never behind the batch
 * window; behind a write under way): for memory whose free is per allocation and too slow for
 * the poster's thread (the router's big requests). False when the ledger is NULL or closing:
 * arg is still the caller's to free. Every accepted free has run when ledger_close returns. */
bool ledger_post_free(struct ledger *l, void (*fn)(void *arg), void *arg);
/* kind: "operator", "config", "breaker", "budget", "guard", ...; target may be NULL. */
void ledger_post_event(struct ledger *l, int64_t wall_ms, const char *kind, const char *target,
                       const char *text);
/* One operator audit row (an events row of kind "operator" with every field in its own
 * column): who did it, to which target, what, the state before -> after, and when the
 * change lapses (expires_wall_ms, Unix ms; 0 = until changed). Undo and expiry lapses are
 * audit rows too (user "expiry" for a lapse). Strings are borrowed for the call. */
struct ledger_audit {
    int64_t wall_ms;
    const char *user, *target, *action, *before, *after;
    int64_t expires_wall_ms;
    const char *text; /* the timeline's line for it */
};
void ledger_post_audit(struct ledger *l, const struct ledger_audit *a);
/* A prompt-pane vote: winner beat losers (comma-separated) on the prompt with this hash. */
void ledger_post_vote(struct ledger *l, int64_t wall_ms, uint64_t prompt_hash, const char *winner,
                      const char *losers, const char *user);

/* One rating of one answer: source "api" (POST /v1/feedback) or "console" (a prompt-pane
 * vote: +1 for the winner, -1 for each loser). Strings are borrowed for the duration of the
 * call that takes it; NULL where absent. */
struct ledger_feedback {
    int64_t wall_ms;        /* when it was given */
    const char *source;     /* "api", "console" */
    const char *request_id; /* the rated call's x-request-id; NULL for console votes */
    double score;           /* normalised to -1..1; < 0 is negative feedback */
    double raw_score;       /* as given */
    int scale;              /* 1: score was -1..1; 5: 0..5 stars */
    const char *label;      /* "thumbs_down", ... */
    const char *comment;
    const char *rater; /* the client key that gave it; NULL without keys */
    /* the rated call (ledger_feedback_submit fills these from the call's row) */
    int64_t call_ms;
    int call_status; /* 0 for console votes */
    const char *target, *route, *model, *tag, *user, *client;
    uint64_t prompt_hash;
};
/* A prompt-pane vote or any feedback already tied to its target: no checks. Any thread. */
void ledger_post_feedback(struct ledger *l, const struct ledger_feedback *f);

#define LEDGER_USER_MAX 256 /* bytes of a user id a feedback row copies from its call */

/* What the ledger knows of one call, for feedback (copied: caller's storage). */
struct ledger_call_ref {
    int64_t wall_ms;
    int status;
    char target[64], route[64], model[128], tag[136], user[LEDGER_USER_MAX + 1];
    char client[CLIENTS_NAME_MAX + 1]; /* "" without keys */
    uint64_t prompt_hash;
};

enum ledger_fb_verdict {
    LEDGER_FB_OK,          /* 201: stored */
    LEDGER_FB_UNKNOWN,     /* 404: no call with this request id */
    LEDGER_FB_DUPLICATE,   /* 409: this call was rated already */
    LEDGER_FB_EXPIRED,     /* 410: the acceptance window after the call has passed */
    LEDGER_FB_FORBIDDEN,   /* 403: the call belongs to another client key */
    LEDGER_FB_UNAVAILABLE, /* 503: the ledger keeps nothing (":memory:") or cannot be read */
};
int ledger_fb_verdict_status(enum ledger_fb_verdict v);       /* the HTTP status above */
const char *ledger_fb_verdict_code(enum ledger_fb_verdict v); /* "unknown_request_id", ... */

/*
 * Ties fb (request_id, score, scale, label, comment, rater, wall_ms set by the caller) to its
 * call and queues it. The call is looked up among the rows not yet committed, then in the
 * file (own read-only connection), so an answer can be rated the moment it arrives. rater
 * NULL: any call may be rated; else only calls made with that client key. window_ms: the
 * longest time after the call's end a rating is accepted. On OK, *call holds the call (may be
 * NULL); msg says why otherwise. Any thread; waits on disk (one indexed lookup).
 */
enum ledger_fb_verdict ledger_feedback_submit(struct ledger *l, const struct ledger_feedback *fb,
                                              int64_t window_ms, struct ledger_call_ref *call,
                                              char *msg, size_t msglen);

/* One call as the console's request-id lookup shows it (copied: caller's storage). */
struct ledger_call_info {
    int64_t wall_ms; /* when it finished */
    char request_id[65], route[64], target[64], model[128], tag[136];
    char error[32];       /* error class; "" on success */
    int status;           /* what the client got */
    long upstream_status; /* the last upstream status; 0 none */
    int attempts, retries, hedges;
    bool hedged, cached, throttled, usage_missing;
    long tokens_in, tokens_out;            /* -1: no usage reported */
    double cost_usd;                       /* < 0: unknown (usage missing) */
    double retry_cost_usd, hedge_cost_usd; /* < 0: unknown */
    int64_t latency_us, ttft_us;           /* ttft < 0: no output */
};

/* Finds the call with this x-request-id (the latest one): among the rows not committed yet,
 * then in the file (own read-only connection). SB_ERR_NOT_FOUND when no call has it,
 * SB_ERR_UNSUPPORTED when the ledger keeps nothing (":memory:") and the row is not queued,
 * SB_ERR_IO when the file cannot be read; msg says which. Any thread; waits on disk. */
enum sb_status ledger_find_request(struct ledger *l, const char *request_id,
                                   struct ledger_call_info *out, char *msg, size_t msglen);
/* The call as lines of text ("target   groq-fast", ...), appended to out. Pure. */
void ledger_call_info_text(const struct ledger_call_info *c, struct buf *out);

/* "u-" + 16 hex digits of the SHA-256 of user, into out (19 bytes): what the ledger stores as
 * the user when ledger.hash_users is on. Pure. */
#define LEDGER_USER_HASH_LEN 18
void ledger_user_hash(const char *user, char out[LEDGER_USER_HASH_LEN + 1]);

struct ledger_stats {
    uint64_t written; /* rows committed (":memory:": rows let go; it keeps none) */
    uint64_t queued;  /* rows waiting */
    uint64_t dropped; /* rows lost: queue full, or a write failed at close */
    uint64_t write_errors;
    char last_error[160]; /* "" when none */
};
void ledger_get_stats(struct ledger *l, struct ledger_stats *out); /* any thread */
/* The file the ledger writes (":memory:" for none); NULL for a NULL ledger. Valid until
 * ledger_close. Any thread. */
const char *ledger_file(const struct ledger *l);

/* ---- reading (any thread or process; own read-only connection) -------------------------- */

/* Spend per entity over the current UTC day and month. */
struct ledger_spend_item {
    enum budget_scope scope; /* TARGET, ROUTE or TAG */
    char *name;
    double day_usd, month_usd;
};

struct ledger_spend {
    int64_t day_start_ms, month_start_ms; /* the windows the figures belong to */
    double global_day_usd, global_month_usd;
    double savings_day_usd, savings_month_usd; /* baseline - actual */
    struct ledger_spend_item *items;
    size_t n;
};
void ledger_spend_init(struct ledger_spend *s);
void ledger_spend_cleanup(struct ledger_spend *s);

/* Rebuilds today's and this month's spend (per target, route and tag, and in total) from the
 * ledger at path with SQL. A missing file or ":memory:" gives zeros. */
enum sb_status ledger_load_spend(const char *path, int64_t now_wall_ms, struct ledger_spend *out,
                                 char *msg, size_t msglen);

/* Calls every call row with since_ms <= wall_ms < until_ms, oldest first. fn returns non-zero
 * to stop early. SB_ERR_NOT_FOUND when the file does not exist. */
typedef int (*ledger_row_fn)(void *ctx, const struct ledger_call *row);
enum sb_status ledger_read_calls(const char *path, int64_t since_ms, int64_t until_ms,
                                 ledger_row_fn fn, void *ctx, char *msg, size_t msglen);

/* ---- client keys (src/ledger/keys.c; any thread or process; own connection) ------------- */

/* The client_keys table: keys managed with `switchboard keys` and the admin API. Only their
 * SHA-256 is stored. Writers open the file read-write (creating and migrating it; a busy
 * timeout waits out the ledger writer's batches); ":memory:" has no table:
 * SB_ERR_UNSUPPORTED. */

/* Adds k (name, sha256, routes, tag, self_tag, caps, limits, expires_ms; created_ms set
 * here). SB_ERR_STATE when its name or hash is taken (msg says which, never the hash). */
enum sb_status ledger_keys_add(const char *path, const struct clients_key *k, int64_t now_wall_ms,
                               char *msg, size_t msglen);
/* Marks a key revoked (the row stays, so its name is never reused by mistake).
 * SB_ERR_NOT_FOUND when there is no such key, SB_ERR_STATE when it is revoked already. */
enum sb_status ledger_keys_revoke(const char *path, const char *name, int64_t now_wall_ms,
                                  char *msg, size_t msglen);
/* Every key, revoked ones included, by name: *out (caller frees with ledger_keys_free). A
 * missing file, ":memory:" or a ledger from before client keys: no keys, SB_OK. */
enum sb_status ledger_keys_load(const char *path, struct clients_key **out, size_t *n, char *msg,
                                size_t msglen);
void ledger_keys_free(struct clients_key *keys, size_t n); /* NULL-safe */
/* Changes whenever a key is added or revoked (cheap: for polling). 0 when there is no table. */
enum sb_status ledger_keys_fingerprint(const char *path, uint64_t *out, char *msg, size_t msglen);
/* Spend per client key over the current UTC day and month, as budgets count it; fn is called
 * once per key name that spent anything. */
typedef void (*ledger_client_spend_fn)(void *ctx, const char *name, double day_usd,
                                       double month_usd);
enum sb_status ledger_keys_spend(const char *path, int64_t now_wall_ms, ledger_client_spend_fn fn,
                                 void *ctx, char *msg, size_t msglen);

/* ---- UTC calendar (pure) ------------------------------------------------------------------ */

int64_t ledger_day_start(int64_t wall_ms);        /* 00:00 UTC of that day */
int64_t ledger_month_start(int64_t wall_ms);      /* the 1st, 00:00 UTC */
int64_t ledger_next_month_start(int64_t wall_ms); /* the 1st of the next month */
/* "2026-11-21" into out (11 bytes) / "2026-11-21T12:00:00Z" (21 bytes). */
void ledger_format_date(int64_t wall_ms, char out[11]);
void ledger_format_time(int64_t wall_ms, char out[21]);
/* --since: "24h", "7d", "30m", "90s" (back from now), "2026-11-01" (00:00 UTC) or
 * "2026-11-01T12:00:00Z". False on anything else. */
bool ledger_parse_since(const char *s, int64_t now_wall_ms, int64_t *out_ms);

/* ---- reports (pure) ---------------------------------------------------------------------- */

enum ledger_report_by {
    LEDGER_BY_TARGET,
    LEDGER_BY_ROUTE,
    LEDGER_BY_TAG,
    LEDGER_BY_DAY,
};
enum ledger_report_format {
    LEDGER_FORMAT_TABLE,
    LEDGER_FORMAT_CSV,
    LEDGER_FORMAT_JSON,
};
bool ledger_report_by_parse(const char *s, enum ledger_report_by *out);
bool ledger_report_format_parse(const char *s, enum ledger_report_format *out);

/* One group's figures (and the totals). Latency percentiles are nearest-rank over the
 * successful calls' latencies (the value at position ceil(q * n) of the sorted list), in ms;
 * 0 when there is none. */
struct ledger_report_row {
    char key[136]; /* target / route / tag / day; "(none)" for no tag or route */
    uint64_t calls, errors, throttled, cached;
    double error_pct;
    double p50_ms, p95_ms;
    uint64_t tokens_in, tokens_out, tokens_cached;
    double spend_usd;          /* known costs of answers */
    double est_spend_usd;      /* estimates for answers without usage */
    double baseline_usd;       /* baseline cost of the calls that have one */
    double baseline_spend_usd; /* actual cost of those same calls */
    double savings_usd;        /* baseline_usd - baseline_spend_usd */
    uint64_t usage_missing;
    uint64_t retries, hedges;
    double retry_hedge_usd; /* known retry + hedge-loser costs */
};

struct ledger_report;
struct ledger_report *ledger_report_new(enum ledger_report_by by);
void ledger_report_free(struct ledger_report *r); /* NULL-safe */
/* Adds one row (an ledger_row_fn: ctx is the report; always returns 0). */
int ledger_report_add(void *ctx, const struct ledger_call *row);
/* Groups sorted by key (day: chronological), then totals. The rows are valid until the next
 * add or free. */
size_t ledger_report_rows(struct ledger_report *r, const struct ledger_report_row **rows,
                          const struct ledger_report_row **total);
/* Table (for people), CSV (RFC 4180, a header line, totals last with key "TOTAL") or JSON
 * ({"by":..,"since":..,"until":..,"groups":[..],"total":{..}}; stable keys). */
void ledger_report_render(struct ledger_report *r, enum ledger_report_format f, int64_t since_ms,
                          int64_t until_ms, struct buf *out);

/* ---- quality (src/ledger/quality.c; any thread or process; own read-only connection) ---- */

enum ledger_quality_by {
    LEDGER_QBY_TARGET,
    LEDGER_QBY_ROUTE,
    LEDGER_QBY_TAG,
    LEDGER_QBY_USER,
    LEDGER_QBY_CLIENT,
    LEDGER_QBY_ROUTE_TARGET, /* key "route/target" */
};
bool ledger_quality_by_parse(const char *s, enum ledger_quality_by *out);
const char *ledger_quality_by_name(enum ledger_quality_by by);

/*
 * One group's quality over a window. Calls are counted by when they finished; feedback by
 * when the call it rates finished (console votes: when they were given), so the two line up.
 *   abandoned:  the client left before the answer was complete (status 499: a stream closed
 *               early, a request given up);
 *   complete:   answered (200) with finish stop or tool_calls; against length, content_filter,
 *               truncated (the stream broke) and errors (any other failure, throttling aside);
 *   satisfied:  answered calls not rated negative (abandoned calls are not answered);
 *   spend:      what budgets count (answer, or its estimate, plus retries and hedges).
 */
struct ledger_quality_row {
    char key[136]; /* "(none)" for no route / tag / user / client */
    uint64_t calls, answered, abandoned, throttled;
    uint64_t complete, length, content_filter, truncated, errors;
    double spend_usd;
    double savings_usd; /* baseline cost - actual cost, over calls with a priced baseline */
    uint64_t feedback, negative, console; /* ratings (console: prompt-pane votes among them) */
    double score_sum;
    uint64_t answered_negative; /* answered calls rated negative through the API */
    /* derived by ledger_quality_derive */
    bool has_satisfaction;        /* feedback >= min_volume */
    double satisfaction;          /* mean score, -1..1 (only with has_satisfaction) */
    double negative_share;        /* negative / feedback (only with has_satisfaction) */
    double abandonment;           /* abandoned / calls; 0 without calls */
    double completion;            /* complete / (calls - abandoned - throttled); -1 when none */
    uint64_t satisfied;           /* answered - answered_negative */
    double cost_per_call;         /* spend / calls; -1 without calls */
    double cost_per_satisfied;    /* spend / satisfied; -1 when none */
    double savings_per_satisfied; /* savings / satisfied; -1 when none */
};
/* Fills the derived fields from the counts. Pure. */
void ledger_quality_derive(struct ledger_quality_row *r, uint64_t min_volume);

struct ledger_quality {
    enum ledger_quality_by by;
    int64_t since_ms, until_ms;
    uint64_t min_volume;
    struct ledger_quality_row *rows; /* sorted by key */
    size_t n;
    struct ledger_quality_row total;
};
void ledger_quality_init(struct ledger_quality *q);
void ledger_quality_cleanup(struct ledger_quality *q); /* NULL-safe, reusable after */
/* Quality per group over since_ms <= t < until_ms, computed in SQL. A missing file, ":memory:"
 * or a ledger from before quality: no groups, SB_OK. */
enum sb_status ledger_quality_load(const char *path, enum ledger_quality_by by, int64_t since_ms,
                                   int64_t until_ms, uint64_t min_volume,
                                   struct ledger_quality *out, char *msg, size_t msglen);
/* The same figures for by TARGET, ROUTE or ROUTE_TARGET from the ledger writer's minute buckets
 * (src/ledger/qminutes.c; no SQL): since_ms and until_ms whole Unix minutes at most a day
 * apart, reaching back no further than a day before the newest row. Counts equal
 * ledger_quality_load's over the same bounds; sums of doubles up to rounding. False (out
 * emptied) when not servable: another grouping, ":memory:", a window outside the buckets or a
 * key cap reached; callers then use ledger_quality_load. Any thread. */
bool ledger_quality_recent(struct ledger *l, enum ledger_quality_by by, int64_t since_ms,
                           int64_t until_ms, uint64_t min_volume, struct ledger_quality *out);
/* One window of whole minutes by `by`: from floor(now_ms - window_ms) to the end of now_ms's
 * minute (out->since_ms, out->until_ms). From l's minute buckets when they can answer
 * (ledger_quality_recent: no SQL), else counted in SQL from path (ledger_quality_load, whose
 * status and msg it returns): l NULL, another grouping, a window over a day, a key cap hit.
 * Rows another process wrote to the file are in the SQL figures only (qminutes.c).
 * only: NULL for every key; else out keeps that key's row alone (n 0 or 1, out->total equal to
 * it), and the buckets sum that key alone. Any thread. */
enum sb_status ledger_quality_window(struct ledger *l, const char *path, enum ledger_quality_by by,
                                     const char *only, int64_t now_ms, int64_t window_ms,
                                     uint64_t min_volume, struct ledger_quality *out, char *msg,
                                     size_t msglen);
/* How many times ledger_quality_load read a ledger file in this process (tests). */
uint64_t ledger_quality_loads(void);
/* Table, CSV (totals last, key "TOTAL") or JSON ({"by","since","until","min_volume",
 * "groups":[..],"total":{..}}). Pure. */
void ledger_quality_render(const struct ledger_quality *q, enum ledger_report_format f,
                           struct buf *out);
/* One row as a JSON object whose key field is named key_name ("target", ...). Pure. */
void ledger_quality_row_json(const struct ledger_quality_row *r, const char *key_name,
                             struct buf *out);

/* The most recent negative feedback (newest first), of one target (NULL: any), at most max. */
struct ledger_feedback_item {
    int64_t wall_ms;
    char source[16];
    char request_id[65]; /* "" for console votes */
    char target[64];
    double score;
    char label[64];
    char comment[160]; /* cut to fit */
};
enum sb_status ledger_recent_negative(const char *path, const char *target, size_t max,
                                      struct ledger_feedback_item *out, size_t *n, char *msg,
                                      size_t msglen);
/* Rows ledger_recent_negative stepped through in full-table scans, in this process (tests). */
uint64_t ledger_negative_scan_steps(void);

#endif
