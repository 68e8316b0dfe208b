/*
 * ledger.c - the ledger's write side: opening and migrating the SQLite file, the queue that
 * any thread posts rows to, and the writer thread that commits them in batches.
 *
 * Threads and locks: l->mu guards the queue, the stopping flag and the counters; posters
 * hold it only to link a node. The writer thread owns the connection and the prepared
 * statements (the opener uses them only before the thread starts and after it is joined);
 * it takes the whole queue under the lock and writes it unlocked, one transaction per batch.
 * After a batch commits, the writer folds its calls and feedback into the quality minute
 * buckets (l->qm, qminutes.c) under their own leaf lock, taken with l->mu not held; the opener
 * seeds them before the thread starts, and any thread reads them (ledger_quality_recent).
 *
 * Batching: batch_ms is the longest a posted row may wait before it is committed, the window a
 * crash can lose. A batch is taken half of it after its first row was posted (or at once when
 * the ledger is closing), which leaves the other half for the write itself: no row waits
 * longer than batch_ms / 2 plus one write. A failed write keeps the rows and retries after a
 * second; at close a failed write drops them (counted).
 */
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sqlite3.h>

#include "switchboard/ledger.h"
#include "internal.h"
#include "switchboard/log.h"

#define LEDGER_RETRY_MS 1000

/* ---- schema ---------------------------------------------------------------------------- */

/* Migration N (1-based) takes the schema from version N-1 to N. Append only. */
static const char *const migrations[] = {
    "CREATE TABLE calls ("
    " id INTEGER PRIMARY KEY,"
    " ts_ms INTEGER NOT NULL,"  /* wall clock at the end of the call, ms since epoch */
    " request_id TEXT,"         /* x-request-id */
    " route TEXT NOT NULL,"     /* '' for a direct target call */
    " target TEXT NOT NULL,"    /* answering target, 'cache', '' when none */
    " model TEXT,"              /* provider model id */
    " tag TEXT,"                /* x-switchboard-tag, NULL when untagged */
    " status INTEGER NOT NULL," /* HTTP status the client got */
    " upstream_status INTEGER," /* last upstream status, NULL when none */
    " error TEXT,"              /* error class, NULL on success */
    " attempts INTEGER NOT NULL,"
    " retries INTEGER NOT NULL,"
    " hedges INTEGER NOT NULL,"
    " hedged INTEGER NOT NULL," /* 1: a hedge answered */
    " tokens_in INTEGER,"       /* NULL when no usage was reported */
    " tokens_out INTEGER,"
    " tokens_cached INTEGER,"
    " cost_usd REAL,"     /* NULL when usage is missing: never a false $0 */
    " est_cost_usd REAL," /* estimate when usage is missing */
    " usage_missing INTEGER NOT NULL,"
    " baseline_cost_usd REAL," /* NULL when the route has no priced baseline */
    " retry_cost_usd REAL,"    /* reported cost of failed attempts; NULL unknown */
    " hedge_cost_usd REAL,"    /* reported cost of hedge losers; NULL unknown */
    " latency_us INTEGER NOT NULL,"
    " ttft_us INTEGER,"
    " cached INTEGER NOT NULL,"    /* 1: answered from the response cache */
    " throttled INTEGER NOT NULL," /* 1: refused by a budget or the runaway guard */
    " prompt_hash INTEGER"
    ");"
    "CREATE INDEX calls_ts ON calls(ts_ms);"
    "CREATE INDEX calls_target_ts ON calls(target, ts_ms);"
    "CREATE INDEX calls_route_ts ON calls(route, ts_ms);"
    "CREATE INDEX calls_tag_ts ON calls(tag, ts_ms);"
    "CREATE TABLE events ("
    " id INTEGER PRIMARY KEY, ts_ms INTEGER NOT NULL, kind TEXT NOT NULL, target TEXT,"
    " text TEXT NOT NULL);"
    "CREATE INDEX events_ts ON events(ts_ms);"
    "CREATE TABLE votes ("
    " id INTEGER PRIMARY KEY, ts_ms INTEGER NOT NULL, prompt_hash INTEGER,"
    " winner TEXT NOT NULL, losers TEXT NOT NULL, user TEXT);"
    "CREATE INDEX votes_ts ON votes(ts_ms);",
    /* 2: client keys (clients.h): the key's name on every call, and the keys managed with
     * `switchboard keys` and the admin API (their SHA-256 only, never the key). */
    "ALTER TABLE calls ADD COLUMN client TEXT;" /* client key's name, NULL without keys */
    "CREATE INDEX calls_client_ts ON calls(client, ts_ms);"
    "CREATE TABLE client_keys ("
    " name TEXT PRIMARY KEY,"
    " key_sha256 TEXT NOT NULL UNIQUE," /* lower-case hex */
    " routes TEXT NOT NULL DEFAULT ''," /* comma-separated route names; '' = every route */
    " tag TEXT,"                        /* NULL: the key's name */
    " self_tag INTEGER NOT NULL DEFAULT 0,"
    " daily_usd REAL NOT NULL DEFAULT 0,"
    " monthly_usd REAL NOT NULL DEFAULT 0,"
    " rpm INTEGER NOT NULL DEFAULT 0,"
    " tpm INTEGER NOT NULL DEFAULT 0,"
    " expires_ms INTEGER NOT NULL DEFAULT 0," /* 0 = never */
    " created_ms INTEGER NOT NULL,"
    " revoked_ms INTEGER NOT NULL DEFAULT 0" /* 0 = active */
    ");",
    /* 3: quality: who the end user was and how each answer ended, and feedback on answers
     * (POST /v1/feedback, source 'api') and prompt-pane votes (source 'console'), each
     * stored with the call's target, route, model, tag, user and client key. */
    "ALTER TABLE calls ADD COLUMN user TEXT;"   /* OpenAI `user` (hashed: ledger.hash_users) */
    "ALTER TABLE calls ADD COLUMN finish TEXT;" /* stop, length, tool_calls, ...; NULL none */
    "CREATE INDEX calls_request ON calls(request_id);"
    "CREATE INDEX calls_user_ts ON calls(user, ts_ms);"
    "CREATE TABLE feedback ("
    " id INTEGER PRIMARY KEY,"
    " ts_ms INTEGER NOT NULL,"      /* when it was given */
    " source TEXT NOT NULL,"        /* 'api' or 'console' */
    " request_id TEXT,"             /* the rated call; NULL for console votes */
    " call_ts_ms INTEGER NOT NULL," /* when the rated call finished (console: ts_ms) */
    " call_status INTEGER,"         /* the status the client got; NULL for console votes */
    " target TEXT NOT NULL, route TEXT NOT NULL, model TEXT, tag TEXT, user TEXT,"
    " client TEXT,"                            /* the call's client key */
    " rater TEXT,"                             /* the client key that gave the feedback */
    " score REAL NOT NULL,"                    /* normalised to -1..1; < 0 is negative */
    " raw_score REAL, scale INTEGER NOT NULL," /* as given: scale 1 (-1..1) or 5 (0..5) */
    " label TEXT, comment TEXT, prompt_hash INTEGER);"
    "CREATE UNIQUE INDEX feedback_request ON feedback(request_id) WHERE request_id IS NOT NULL;"
    "CREATE INDEX feedback_call_ts ON feedback(call_ts_ms);"
    "CREATE INDEX feedback_target_ts ON feedback(target, ts_ms);",
    /* 4: audit rows: every operator change (and its undo and lapse) with who, what, the state
     * before and after and when it lapses, each in its own column (NULL on other events). */
    "ALTER TABLE events ADD COLUMN user TEXT;"
    "ALTER TABLE events ADD COLUMN action TEXT;"
    "ALTER TABLE events ADD COLUMN state_before TEXT;"
    "ALTER TABLE events ADD COLUMN state_after TEXT;"
    "ALTER TABLE events ADD COLUMN expires_ms INTEGER;" /* Unix ms; NULL = until changed */
    "CREATE INDEX events_target_ts ON events(target, ts_ms);",
};
_Static_assert(SB_ARRAY_LEN(migrations) == LEDGER_SCHEMA_VERSION, "one migration per version");

static const char sql_call[] =
    "INSERT INTO calls (ts_ms, request_id, route, target, model, tag, status, upstream_status,"
    " error, attempts, retries, hedges, hedged, tokens_in, tokens_out, tokens_cached, cost_usd,"
    " est_cost_usd, usage_missing, baseline_cost_usd, retry_cost_usd, hedge_cost_usd,"
    " latency_us, ttft_us, cached, throttled, prompt_hash, client, user, finish)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,"
    " ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30)";
static const char sql_event[] =
    "INSERT INTO events (ts_ms, kind, target, text, user, action, state_before, state_after,"
    " expires_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";
static const char sql_vote[] =
    "INSERT INTO votes (ts_ms, prompt_hash, winner, losers, user) VALUES (?1, ?2, ?3, ?4, ?5)";
/* OR IGNORE: two ratings of one call racing past ledger_feedback_submit's checks (possible
 * only across processes or at a batch boundary) keep the first instead of failing a batch. */
static const char sql_feedback[] =
    "INSERT OR IGNORE INTO feedback (ts_ms, source, request_id, call_ts_ms, call_status, target,"
    " route, model, tag, user, client, rater, score, raw_score, scale, label, comment,"
    " prompt_hash) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15,"
    " ?16, ?17, ?18)";

/* ---- state ------------------------------------------------------------------------------- */

enum lnode_kind { LNODE_CALL, LNODE_EVENT, LNODE_VOTE, LNODE_FEEDBACK };

struct lnode {
    struct lnode *next;
    enum lnode_kind kind;
    struct ledger_call call;   /* CALL: its strings point into strs */
    struct ledger_feedback fb; /* FEEDBACK: its strings point into strs */
    int64_t wall_ms;           /* EVENT, VOTE */
    uint64_t hash;             /* VOTE */
    int64_t expires_ms;        /* EVENT (audit): Unix ms, 0 = until changed */
    bool inserted;             /* FEEDBACK: the row went in (not ignored as a second rating) */
    const char *s[7]; /* EVENT: kind, target, text, user, action, before, after (the last four
                       * NULL on a plain event); VOTE: winner, losers, user */
    char strs[];
};

/* A free posted with ledger_post_free. */
struct lfree {
    struct lfree *next;
    void (*fn)(void *arg);
    void *arg;
};

struct ledger {
    sqlite3 *db;
    sqlite3_stmt *ins_call, *ins_event, *ins_vote, *ins_feedback;
    char *path;
    bool memory; /* ":memory:": nothing is kept (rows are let go, not inserted) */
    int64_t batch_ms;
    pthread_t thread;
    bool started;
    struct ledger_qm *qm; /* quality minute buckets (qminutes.c: its own lock); NULL none */

    pthread_mutex_t mu; /* guards everything below */
    pthread_cond_t cv;  /* queue became non-empty, or stopping */
    struct lnode *head, *tail;
    struct lnode *writing;            /* the batch being written: still searchable (feedback.c) */
    struct lfree *frees, *frees_tail; /* ledger_post_free: oldest first */
    size_t queued;
    int64_t take_at_ms; /* monotonic: when the writer takes the queue */
    bool stopping;
    bool accepting;
    struct ledger_stats stats;
};

/* ---- small helpers ------------------------------------------------------------------------ */

static void set_msg(char *msg, size_t msglen, const char *fmt, ...) SB_PRINTF(3, 4);

static void set_msg(char *msg, size_t msglen, const char *fmt, ...)
{
    if (!msg || msglen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, msglen, fmt, ap);
    va_end(ap);
}

double ledger_call_spend(const struct ledger_call *c, double *answer_usd)
{
    double answer = 0;
    if (!c->usage_missing)
        answer = c->cost_usd > 0 ? c->cost_usd : 0;
    else if (c->est_cost_usd > 0)
        answer = c->est_cost_usd;
    if (answer_usd)
        *answer_usd = answer;
    double total = answer;
    if (c->retry_cost_usd > 0)
        total += c->retry_cost_usd;
    if (c->hedge_cost_usd > 0)
        total += c->hedge_cost_usd;
    return total;
}

static void timespec_at(struct timespec *ts, int64_t mono_ms)
{
    ts->tv_sec = (time_t)(mono_ms / 1000);
    ts->tv_nsec = (long)(mono_ms % 1000) * 1000000L;
}

/* ---- writing (writer thread) ----------------------------------------------------------- */

static void bind_text(sqlite3_stmt *st, int i, const char *s)
{
    if (s)
        sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

static void bind_cost(sqlite3_stmt *st, int i, bool known, double v)
{
    if (known)
        sqlite3_bind_double(st, i, v);
    else
        sqlite3_bind_null(st, i);
}

static void bind_call(sqlite3_stmt *st, const struct ledger_call *c)
{
    bool tokens = c->usage.present;
    sqlite3_bind_int64(st, 1, c->wall_ms);
    bind_text(st, 2, c->request_id);
    bind_text(st, 3, c->route ? c->route : "");
    bind_text(st, 4, c->target ? c->target : "");
    bind_text(st, 5, c->model);
    bind_text(st, 6, c->tag);
    sqlite3_bind_int(st, 7, c->status);
    if (c->upstream_status > 0)
        sqlite3_bind_int64(st, 8, c->upstream_status);
    else
        sqlite3_bind_null(st, 8);
    bind_text(st, 9, c->err == LLM_ERR_NONE ? NULL : llm_errclass_name(c->err));
    sqlite3_bind_int(st, 10, c->attempts);
    sqlite3_bind_int(st, 11, c->retries);
    sqlite3_bind_int(st, 12, c->hedges);
    sqlite3_bind_int(st, 13, c->hedged);
    if (tokens) {
        sqlite3_bind_int64(st, 14, c->usage.input_tokens);
        sqlite3_bind_int64(st, 15, c->usage.output_tokens);
        sqlite3_bind_int64(st, 16, c->usage.cached_tokens);
    } else {
        sqlite3_bind_null(st, 14);
        sqlite3_bind_null(st, 15);
        sqlite3_bind_null(st, 16);
    }
    bind_cost(st, 17, !c->usage_missing, c->cost_usd);
    bind_cost(st, 18, c->usage_missing && c->est_cost_usd >= 0, c->est_cost_usd);
    sqlite3_bind_int(st, 19, c->usage_missing);
    bind_cost(st, 20, c->baseline_cost_usd >= 0, c->baseline_cost_usd);
    bind_cost(st, 21, c->retry_cost_usd >= 0, c->retry_cost_usd);
    bind_cost(st, 22, c->hedge_cost_usd >= 0, c->hedge_cost_usd);
    sqlite3_bind_int64(st, 23, c->latency_us);
    if (c->ttft_us >= 0)
        sqlite3_bind_int64(st, 24, c->ttft_us);
    else
        sqlite3_bind_null(st, 24);
    sqlite3_bind_int(st, 25, c->cached);
    sqlite3_bind_int(st, 26, c->throttled);
    if (c->prompt_hash)
        sqlite3_bind_int64(st, 27, (sqlite3_int64)c->prompt_hash);
    else
        sqlite3_bind_null(st, 27);
    bind_text(st, 28, c->client && *c->client ? c->client : NULL);
    bind_text(st, 29, c->user && *c->user ? c->user : NULL);
    bind_text(st, 30, llm_finish_name(c->finish));
}

static void bind_feedback(sqlite3_stmt *st, const struct ledger_feedback *f)
{
    sqlite3_bind_int64(st, 1, f->wall_ms);
    bind_text(st, 2, f->source);
    bind_text(st, 3, f->request_id);
    sqlite3_bind_int64(st, 4, f->call_ms);
    if (f->call_status > 0)
        sqlite3_bind_int(st, 5, f->call_status);
    else
        sqlite3_bind_null(st, 5);
    bind_text(st, 6, f->target ? f->target : "");
    bind_text(st, 7, f->route ? f->route : "");
    bind_text(st, 8, f->model);
    bind_text(st, 9, f->tag);
    bind_text(st, 10, f->user);
    bind_text(st, 11, f->client);
    bind_text(st, 12, f->rater);
    sqlite3_bind_double(st, 13, f->score);
    sqlite3_bind_double(st, 14, f->raw_score);
    sqlite3_bind_int(st, 15, f->scale);
    bind_text(st, 16, f->label);
    bind_text(st, 17, f->comment);
    if (f->prompt_hash)
        sqlite3_bind_int64(st, 18, (sqlite3_int64)f->prompt_hash);
    else
        sqlite3_bind_null(st, 18);
}

static int insert(struct ledger *l, struct lnode *n)
{
    sqlite3_stmt *st = NULL;
    switch (n->kind) {
    case LNODE_CALL:
        st = l->ins_call;
        bind_call(st, &n->call);
        break;
    case LNODE_EVENT:
        st = l->ins_event;
        sqlite3_bind_int64(st, 1, n->wall_ms);
        bind_text(st, 2, n->s[0]);
        bind_text(st, 3, n->s[1]);
        bind_text(st, 4, n->s[2]);
        for (int i = 3; i < 7; i++)
            bind_text(st, i + 2, n->s[i]);
        if (n->expires_ms > 0)
            sqlite3_bind_int64(st, 9, n->expires_ms);
        else
            sqlite3_bind_null(st, 9);
        break;
    case LNODE_VOTE:
        st = l->ins_vote;
        sqlite3_bind_int64(st, 1, n->wall_ms);
        sqlite3_bind_int64(st, 2, (sqlite3_int64)n->hash);
        bind_text(st, 3, n->s[0]);
        bind_text(st, 4, n->s[1]);
        bind_text(st, 5, n->s[2]);
        break;
    case LNODE_FEEDBACK:
        st = l->ins_feedback;
        bind_feedback(st, &n->fb);
        break;
    }
    int rc = sqlite3_step(st);
    if (n->kind == LNODE_FEEDBACK)
        n->inserted = rc == SQLITE_DONE && sqlite3_changes(l->db) > 0;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* One transaction for the whole batch. SQLITE_OK or the failing code (rolled back). */
static int write_batch(struct ledger *l, struct lnode *batch, char *err, size_t errlen)
{
    int rc = sqlite3_exec(l->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    for (struct lnode *n = batch; rc == SQLITE_OK && n; n = n->next)
        rc = insert(l, n);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(l->db, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        set_msg(err, errlen, "%s", sqlite3_errmsg(l->db));
        if (!sqlite3_get_autocommit(l->db))
            sqlite3_exec(l->db, "ROLLBACK", NULL, NULL, NULL);
    }
    return rc;
}

/* Adds a committed batch's calls and feedback to the quality buckets (writer thread). */
static void fold_quality(struct ledger *l, const struct lnode *batch)
{
    if (!l->qm)
        return;
    ledger_qm_lock(l->qm);
    for (const struct lnode *n = batch; n; n = n->next) {
        if (n->kind == LNODE_CALL)
            ledger_qm_call(l->qm, &n->call);
        else if (n->kind == LNODE_FEEDBACK && n->inserted)
            ledger_qm_feedback(l->qm, &n->fb);
    }
    ledger_qm_unlock(l->qm);
}

static void free_nodes(struct lnode *n)
{
    while (n) {
        struct lnode *next = n->next;
        free(n);
        n = next;
    }
}

static void run_frees(struct lfree *f)
{
    while (f) {
        struct lfree *next = f->next;
        f->fn(f->arg);
        free(f);
        f = next;
    }
}

/* Runs the frees posted until none is left (l->mu held; released while they run). */
static void run_frees_locked(struct ledger *l)
{
    while (l->frees) {
        struct lfree *f = l->frees;
        l->frees = l->frees_tail = NULL;
        pthread_mutex_unlock(&l->mu);
        run_frees(f);
        pthread_mutex_lock(&l->mu);
    }
}

/* Waits (l->mu held) until the batch is due or the ledger is closing; runs the frees posted
 * meanwhile. */
static void wait_batch_due(struct ledger *l)
{
    while (!l->stopping) {
        run_frees_locked(l);
        int64_t now = clock_mono_ms();
        if (now >= l->take_at_ms)
            return;
        struct timespec ts;
        timespec_at(&ts, l->take_at_ms);
        pthread_cond_timedwait(&l->cv, &l->mu, &ts);
    }
}

/* A failed batch goes back in front of what was posted meanwhile (mu held). */
static void requeue(struct ledger *l, struct lnode *batch, size_t n)
{
    if (l->queued + n > LEDGER_QUEUE_MAX) {
        l->stats.dropped += n;
        free_nodes(batch);
        return;
    }
    struct lnode *last = batch;
    while (last->next)
        last = last->next;
    last->next = l->head;
    if (!l->head)
        l->tail = last;
    l->head = batch;
    l->queued += n;
    l->take_at_ms = clock_mono_ms() + LEDGER_RETRY_MS;
}

static void *writer_main(void *arg)
{
    struct ledger *l = arg;
    char err[160];
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!l->stopping && !l->head && !l->frees)
            pthread_cond_wait(&l->cv, &l->mu);
        run_frees_locked(l);
        if (!l->stopping && !l->head)
            continue;
        wait_batch_due(l);
        struct lnode *batch = l->head;
        size_t n = l->queued;
        l->head = l->tail = NULL;
        l->queued = 0;
        l->writing = batch;
        bool stop = l->stopping;
        pthread_mutex_unlock(&l->mu);
        int rc = batch && !l->memory ? write_batch(l, batch, err, sizeof err) : SQLITE_OK;
        if (rc == SQLITE_OK && !l->memory)
            fold_quality(l, batch);
        if (rc != SQLITE_OK)
            log_error("ledger: writing %zu rows to %s failed: %s%s", n, l->path, err,
                      stop ? " (rows lost)" : "; retrying");
        pthread_mutex_lock(&l->mu);
        l->writing = NULL; /* committed (or back in the queue) before it stops being found */
        if (rc == SQLITE_OK) {
            l->stats.written += n;
            free_nodes(batch);
        } else {
            l->stats.write_errors++;
            str_copy(l->stats.last_error, sizeof l->stats.last_error, err);
            if (stop) {
                l->stats.dropped += n;
                free_nodes(batch);
            } else {
                requeue(l, batch, n);
            }
        }
        if (stop && !l->head)
            break;
    }
    run_frees_locked(l); /* posted before the close, during the last write */
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

/* ---- posting (any thread) ---------------------------------------------------------------- */

/* Copies the strings after the node; dst[i] = NULL where src[i] is NULL. */
static struct lnode *node_new(enum lnode_kind kind, const char *const *src, const char **dst,
                              size_t n)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++)
        total += src[i] ? strlen(src[i]) + 1 : 0;
    struct lnode *node = xcalloc(1, sizeof *node + total);
    node->kind = kind;
    char *p = node->strs;
    for (size_t i = 0; i < n; i++) {
        if (!src[i]) {
            dst[i] = NULL;
            continue;
        }
        size_t len = strlen(src[i]) + 1;
        memcpy(p, src[i], len);
        dst[i] = p;
        p += len;
    }
    return node;
}

/* mu held: links n to the queue, or counts it dropped (false; n is the caller's to free).
 * *first: the queue was empty; *warn: log the drop. */
static bool link_locked(struct ledger *l, struct lnode *n, bool *first, bool *warn)
{
    if (!l->accepting || l->queued >= LEDGER_QUEUE_MAX) {
        l->stats.dropped++;
        *warn = l->accepting && (l->stats.dropped == 1 || l->stats.dropped % 10000 == 0);
        return false;
    }
    if (l->tail)
        l->tail->next = n;
    else
        l->head = n;
    l->tail = n;
    *first = l->queued++ == 0;
    if (*first) /* (a retry keeps rows queued, so its later take_at_ms stays) */
        l->take_at_ms = clock_mono_ms() + (l->batch_ms + 1) / 2;
    return true;
}

/* After link_locked, unlocked. */
static void linked(struct ledger *l, struct lnode *n, bool ok, bool first, bool warn)
{
    if (!ok)
        free(n);
    if (warn)
        log_error("ledger: queue full (%d rows): dropping rows; is %s writable?", LEDGER_QUEUE_MAX,
                  l->path);
    if (first)
        pthread_cond_signal(&l->cv);
}

static void enqueue(struct ledger *l, struct lnode *n)
{
    bool first = false, warn = false;
    pthread_mutex_lock(&l->mu);
    bool ok = link_locked(l, n, &first, &warn);
    pthread_mutex_unlock(&l->mu);
    linked(l, n, ok, first, warn);
}

bool ledger_post_free(struct ledger *l, void (*fn)(void *arg), void *arg)
{
    if (!l)
        return false;
    struct lfree *f = xmalloc(sizeof *f);
    *f = (struct lfree){.fn = fn, .arg = arg};
    pthread_mutex_lock(&l->mu);
    bool ok = l->accepting;
    bool first = ok && !l->frees;
    if (ok) {
        if (l->frees_tail)
            l->frees_tail->next = f;
        else
            l->frees = f;
        l->frees_tail = f;
    }
    pthread_mutex_unlock(&l->mu);
    if (!ok)
        free(f);
    if (first)
        pthread_cond_signal(&l->cv); /* the writer is the only waiter */
    return ok;
}

/* ---- what is not committed yet (feedback.c) ------------------------------------------------ */

static void ref_from_call(const struct ledger_call *c, struct ledger_call_ref *out)
{
    memset(out, 0, sizeof *out);
    out->wall_ms = c->wall_ms;
    out->status = c->status;
    str_copy(out->target, sizeof out->target, c->target ? c->target : "");
    str_copy(out->route, sizeof out->route, c->route ? c->route : "");
    str_copy(out->model, sizeof out->model, c->model ? c->model : "");
    str_copy(out->tag, sizeof out->tag, c->tag ? c->tag : "");
    str_copy(out->user, sizeof out->user, c->user ? c->user : "");
    str_copy(out->client, sizeof out->client, c->client ? c->client : "");
    out->prompt_hash = c->prompt_hash;
}

/* mu held: scans one list; the last call row with the id wins. */
static void scan_list(const struct lnode *n, const char *request_id, struct ledger_call_ref *call,
                      bool *found, bool *rated)
{
    for (; n; n = n->next) {
        if (n->kind == LNODE_CALL && n->call.request_id && str_eq(n->call.request_id, request_id)) {
            ref_from_call(&n->call, call);
            *found = true;
        } else if (n->kind == LNODE_FEEDBACK && n->fb.request_id &&
                   str_eq(n->fb.request_id, request_id)) {
            *rated = true;
        }
    }
}

bool ledger_mem_find(struct ledger *l, const char *request_id, struct ledger_call_ref *call,
                     bool *rated)
{
    bool found = false;
    *rated = false;
    pthread_mutex_lock(&l->mu);
    scan_list(l->writing, request_id, call, &found, rated); /* older than the queue */
    scan_list(l->head, request_id, call, &found, rated);
    pthread_mutex_unlock(&l->mu);
    return found;
}

bool ledger_mem_find_info(struct ledger *l, const char *request_id, struct ledger_call_info *out)
{
    bool found = false;
    pthread_mutex_lock(&l->mu);
    for (int pass = 0; pass < 2; pass++) { /* the batch being written is older than the queue */
        for (const struct lnode *n = pass ? l->head : l->writing; n; n = n->next) {
            if (n->kind == LNODE_CALL && n->call.request_id &&
                str_eq(n->call.request_id, request_id)) {
                ledger_call_info_from(&n->call, out);
                found = true;
            }
        }
    }
    pthread_mutex_unlock(&l->mu);
    return found;
}

bool ledger_enqueue_feedback_once(struct ledger *l, const struct ledger_feedback *f)
{
    struct lnode *n = ledger_feedback_node(f);
    struct ledger_call_ref ignored;
    bool first = false, warn = false, found = false, rated = false, ok = false;
    pthread_mutex_lock(&l->mu);
    scan_list(l->writing, f->request_id, &ignored, &found, &rated);
    scan_list(l->head, f->request_id, &ignored, &found, &rated);
    if (!rated)
        ok = link_locked(l, n, &first, &warn);
    pthread_mutex_unlock(&l->mu);
    if (rated) {
        free(n);
        return false;
    }
    linked(l, n, ok, first, warn);
    return true;
}

const char *ledger_path_peek(const struct ledger *l)
{
    return l->path;
}

const char *ledger_file(const struct ledger *l)
{
    return l ? l->path : NULL;
}

void ledger_post_call(struct ledger *l, const struct ledger_call *c)
{
    if (!l)
        return;
    const char *src[7] = {c->request_id, c->route, c->target, c->model, c->tag, c->client, c->user};
    const char *dst[7];
    struct lnode *n = node_new(LNODE_CALL, src, dst, 7);
    n->call = *c;
    n->call.request_id = dst[0];
    n->call.route = dst[1];
    n->call.target = dst[2];
    n->call.model = dst[3];
    n->call.tag = dst[4];
    n->call.client = dst[5];
    n->call.user = dst[6];
    enqueue(l, n);
}

struct lnode *ledger_feedback_node(const struct ledger_feedback *f)
{
    const char *src[11] = {f->source, f->request_id, f->label, f->comment, f->rater, f->target,
                           f->route,  f->model,      f->tag,   f->user,    f->client};
    const char *dst[11];
    struct lnode *n = node_new(LNODE_FEEDBACK, src, dst, 11);
    n->fb = *f;
    n->fb.source = dst[0];
    n->fb.request_id = dst[1];
    n->fb.label = dst[2];
    n->fb.comment = dst[3];
    n->fb.rater = dst[4];
    n->fb.target = dst[5];
    n->fb.route = dst[6];
    n->fb.model = dst[7];
    n->fb.tag = dst[8];
    n->fb.user = dst[9];
    n->fb.client = dst[10];
    return n;
}

void ledger_post_feedback(struct ledger *l, const struct ledger_feedback *f)
{
    if (l)
        enqueue(l, ledger_feedback_node(f));
}

void ledger_post_event(struct ledger *l, int64_t wall_ms, const char *kind, const char *target,
                       const char *text)
{
    if (!l)
        return;
    const char *src[3] = {kind ? kind : "", target && *target ? target : NULL, text ? text : ""};
    const char *dst[3];
    struct lnode *n = node_new(LNODE_EVENT, src, dst, 3);
    n->wall_ms = wall_ms;
    memcpy(n->s, dst, sizeof dst);
    enqueue(l, n);
}

void ledger_post_audit(struct ledger *l, const struct ledger_audit *a)
{
    if (!l)
        return;
    const char *src[7] = {"operator",
                          a->target && *a->target ? a->target : NULL,
                          a->text ? a->text : "",
                          a->user ? a->user : "",
                          a->action ? a->action : "",
                          a->before,
                          a->after};
    const char *dst[7];
    struct lnode *n = node_new(LNODE_EVENT, src, dst, 7);
    n->wall_ms = a->wall_ms;
    n->expires_ms = a->expires_wall_ms;
    memcpy(n->s, dst, sizeof dst);
    enqueue(l, n);
}

void ledger_post_vote(struct ledger *l, int64_t wall_ms, uint64_t prompt_hash, const char *winner,
                      const char *losers, const char *user)
{
    if (!l)
        return;
    const char *src[3] = {winner ? winner : "", losers ? losers : "", user};
    const char *dst[3];
    struct lnode *n = node_new(LNODE_VOTE, src, dst, 3);
    n->wall_ms = wall_ms;
    n->hash = prompt_hash;
    memcpy(n->s, dst, sizeof dst);
    enqueue(l, n);
}

void ledger_get_stats(struct ledger *l, struct ledger_stats *out)
{
    memset(out, 0, sizeof *out);
    if (!l)
        return;
    pthread_mutex_lock(&l->mu);
    *out = l->stats;
    out->queued = l->queued;
    pthread_mutex_unlock(&l->mu);
}

/* ---- open / close (owner thread) --------------------------------------------------------- */

static int schema_version(sqlite3 *db, int *version)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_exec(db,
                          "CREATE TABLE IF NOT EXISTS schema_version ("
                          " version INTEGER NOT NULL, applied_ms INTEGER NOT NULL)",
                          NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db, "SELECT IFNULL(MAX(version), 0) FROM schema_version", -1, &st,
                                NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            *version = sqlite3_column_int(st, 0);
            rc = SQLITE_OK;
        }
    }
    sqlite3_finalize(st);
    return rc;
}

static int apply_migration(sqlite3 *db, int version)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, migrations[version - 1], NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db, "INSERT INTO schema_version VALUES (?1, ?2)", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int(st, 1, version);
        sqlite3_bind_int64(st, 2, clock_wall_ms());
        rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(db);
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    else if (!sqlite3_get_autocommit(db))
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

static bool setup(struct ledger *l, char *msg, size_t msglen)
{
    sqlite3 *db = l->db;
    int version = 0;
    /* journal_mode answers "wal" for a file ("memory" for :memory:); synchronous=NORMAL in
     * WAL mode loses nothing on a process crash, only on power loss since the last sync. */
    int rc = sqlite3_exec(db, "PRAGMA journal_mode=WAL", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL);
    /* The writer appends: the pages it needs again are each index's last leaves, so 512 KB of
     * page cache serve it; SQLite's default, 2 MB, filled up and stayed resident after the
     * first busy minutes (docs/bench.md, "1,000-stream memory, session 8"). */
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db, "PRAGMA cache_size=-512", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_busy_timeout(db, 5000);
    if (rc == SQLITE_OK)
        rc = schema_version(db, &version);
    if (rc != SQLITE_OK) {
        set_msg(msg, msglen, "cannot use ledger %s: %s", l->path, sqlite3_errmsg(db));
        return false;
    }
    if (version > LEDGER_SCHEMA_VERSION) {
        set_msg(msg, msglen,
                "ledger %s has schema version %d, newer than this switchboard understands "
                "(%d); use a newer switchboard or another ledger.path",
                l->path, version, LEDGER_SCHEMA_VERSION);
        return false;
    }
    for (int v = version + 1; v <= LEDGER_SCHEMA_VERSION; v++) {
        if (apply_migration(db, v) != SQLITE_OK) {
            set_msg(msg, msglen, "cannot migrate ledger %s to version %d: %s", l->path, v,
                    sqlite3_errmsg(db));
            return false;
        }
    }
    rc = sqlite3_prepare_v2(db, sql_call, -1, &l->ins_call, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db, sql_event, -1, &l->ins_event, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db, sql_vote, -1, &l->ins_vote, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db, sql_feedback, -1, &l->ins_feedback, NULL);
    if (rc != SQLITE_OK) {
        set_msg(msg, msglen, "cannot prepare ledger %s: %s", l->path, sqlite3_errmsg(db));
        return false;
    }
    return true;
}

static void ledger_release(struct ledger *l)
{
    sqlite3_finalize(l->ins_call);
    sqlite3_finalize(l->ins_event);
    sqlite3_finalize(l->ins_vote);
    sqlite3_finalize(l->ins_feedback);
    if (l->db && sqlite3_close(l->db) != SQLITE_OK)
        log_error("ledger: closing %s: %s", l->path, sqlite3_errmsg(l->db));
    free_nodes(l->head);
    run_frees(l->frees);
    ledger_qm_free(l->qm);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    free(l->path);
    free(l);
}

struct ledger *ledger_open(const char *path, int64_t batch_ms, char *msg, size_t msglen)
{
    struct ledger *l = xcalloc(1, sizeof *l);
    l->path = xstrdup(path && *path ? path : ":memory:");
    l->memory = str_eq(l->path, ":memory:");
    l->batch_ms = batch_ms > 0 ? batch_ms : 250;
    l->accepting = true;
    pthread_mutex_init(&l->mu, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&l->cv, &ca);
    pthread_condattr_destroy(&ca);
    int rc = sqlite3_open_v2(
        l->path, &l->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
    if (rc != SQLITE_OK) {
        set_msg(msg, msglen, "cannot open ledger %s: %s", l->path,
                l->db ? sqlite3_errmsg(l->db) : sqlite3_errstr(rc));
        goto fail;
    }
    if (!setup(l, msg, msglen))
        goto fail;
    if (!l->memory) {
        l->qm = ledger_qm_new();
        rc = ledger_qm_seed(l->qm, l->db, clock_wall_ms());
        if (rc != SQLITE_OK) { /* the figures fall back to SQL */
            log_warn("ledger: cannot count quality in %s: %s", l->path, sqlite3_errstr(rc));
            ledger_qm_free(l->qm);
            l->qm = NULL;
        }
    }
    rc = pthread_create(&l->thread, NULL, writer_main, l);
    if (rc != 0) {
        set_msg(msg, msglen, "cannot start the ledger writer: %s", strerror(rc));
        goto fail;
    }
    l->started = true;
    return l;
fail:
    ledger_release(l);
    return NULL;
}

void ledger_close(struct ledger *l)
{
    if (!l)
        return;
    pthread_mutex_lock(&l->mu);
    l->accepting = false;
    l->stopping = true;
    pthread_mutex_unlock(&l->mu);
    pthread_cond_broadcast(&l->cv);
    if (l->started)
        pthread_join(l->thread, NULL);
    if (l->stats.dropped > 0)
        log_error("ledger: %llu rows could not be written to %s",
                  (unsigned long long)l->stats.dropped, l->path);
    ledger_release(l);
}

struct ledger_qm *ledger_qm_peek(struct ledger *l)
{
    return l->qm;
}
