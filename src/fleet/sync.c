/*
 * sync.c - the fleet thread: connects to Redis (two connections: commands and the notice
 * subscription), flushes counters as pipelined INCRBYs, re-reads watched counters, publishes
 * and stores notices, heartbeats, and reads notices from the other instances. On any Redis
 * error both connections are dropped and retried with exponential backoff; nothing that was
 * not acknowledged is lost (counters go back to pending, notices back to the outbox).
 *
 * Threads: fleet thread only (the contexts are not shared). Takes f->mu for table updates,
 * never across I/O.
 */
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "switchboard/log.h"

#define SUB_POLL_MS  50
#define MGET_BATCH   64
#define FLUSH_BATCH  128
#define PIPELINE_MAX (2 * FLUSH_BATCH + 4)
#define LOAD_MAX     512 /* stored cooldowns / cached answers read at connect, each */

static struct timeval tv_ms(int64_t ms)
{
    return (struct timeval){.tv_sec = (time_t)(ms / 1000),
                            .tv_usec = (suseconds_t)(ms % 1000) * 1000};
}

/* ---- status -----------------------------------------------------------------------------------
 */

static void mark_down(struct fleet *f, const char *why)
{
    int64_t now = clock_wall_ms();
    bool first = false;
    pthread_mutex_lock(&f->mu);
    if (f->st.down_since_ms == 0) {
        f->st.down_since_ms = now;
        first = true;
    }
    f->st.connected = false;
    f->st.instances = 0;
    str_copy(f->st.last_error, sizeof f->st.last_error, why);
    time_t secs = (time_t)(f->st.down_since_ms / 1000);
    struct tm tm;
    localtime_r(&secs, &tm);
    char hms[16];
    strftime(hms, sizeof hms, "%H:%M:%S", &tm);
    snprintf(f->st.text, sizeof f->st.text, "fleet: redis unreachable since %s", hms);
    pthread_mutex_unlock(&f->mu);
    if (first)
        log_warn("fleet: redis unreachable (%s): routing on local state, retrying", why);
}

static void mark_up(struct fleet *f, long instances)
{
    bool back = false;
    pthread_mutex_lock(&f->mu);
    back = f->st.down_since_ms != 0 && f->ever_connected;
    f->st.down_since_ms = 0;
    f->st.connected = true;
    if (instances > 0)
        f->st.instances = f->st.instances_last = instances;
    snprintf(f->st.text, sizeof f->st.text, "fleet: %ld instance%s", f->st.instances,
             f->st.instances == 1 ? "" : "s");
    pthread_mutex_unlock(&f->mu);
    if (back)
        log_info("fleet: redis reachable again");
}

/* ---- connections ------------------------------------------------------------------------------
 */

static void disconnect(struct fleet *f)
{
    if (f->cmd)
        redisFree(f->cmd);
    if (f->sub)
        redisFree(f->sub);
    f->cmd = f->sub = NULL;
    fleet_tls_pump_close(f->cmd_pump); /* after redisFree: the pumps see their socket close */
    fleet_tls_pump_close(f->sub_pump);
    f->cmd_pump = f->sub_pump = NULL;
}

static bool reply_ok(redisContext *c, redisReply *r, char *err, size_t errlen)
{
    if (!r) {
        snprintf(err, errlen, "%s", c->errstr[0] ? c->errstr : "no reply");
        return false;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        snprintf(err, errlen, "%.*s", (int)r->len, r->str);
        return false;
    }
    return true;
}

/* Runs one command and checks it is not an error; the reply is freed. */
static bool run(redisContext *c, char *err, size_t errlen, int argc, const char **argv)
{
    redisReply *r = redisCommandArgv(c, argc, argv, NULL);
    bool ok = reply_ok(c, r, err, errlen);
    if (r)
        freeReplyObject(r);
    return ok;
}

/* pump: where a rediss:// connection's TLS bridge goes (closed by disconnect). */
static redisContext *open_one(struct fleet *f, struct fleet_tls_pump **pump, char *err,
                              size_t errlen)
{
    struct timeval tv = tv_ms(FLEET_IO_TIMEOUT_MS);
    redisContext *c = NULL;
    if (f->is_tls)
        c = fleet_tls_connect(f->tls, f->host, f->port, FLEET_IO_TIMEOUT_MS, pump, err, errlen);
    else
        c = f->is_unix ? redisConnectUnixWithTimeout(f->host, tv)
                       : redisConnectWithTimeout(f->host, f->port, tv);
    if (f->is_tls && !c)
        return NULL; /* err says why */
    if (!c || c->err) {
        snprintf(err, errlen, "%s", c ? c->errstr : "out of memory");
        goto fail;
    }
    redisSetTimeout(c, tv);
    if (f->password && !run(c, err, errlen, 2, (const char *[]){"AUTH", f->password}))
        goto fail;
    char db[16];
    snprintf(db, sizeof db, "%d", f->db);
    if (f->db != 0 && !run(c, err, errlen, 2, (const char *[]){"SELECT", db}))
        goto fail;
    return c;
fail:
    if (c)
        redisFree(c);
    return NULL;
}

static bool subscribe(struct fleet *f, char *err, size_t errlen)
{
    char chan[FLEET_KEY_MAX];
    snprintf(chan, sizeof chan, "%snotices", f->prefix);
    return run(f->sub, err, errlen, 2, (const char *[]){"SUBSCRIBE", chan});
}

/* ---- notices in -------------------------------------------------------------------------------
 */

static void handle_message(struct fleet *f, const redisReply *r)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
        r->element[2]->type != REDIS_REPLY_STRING)
        return;
    const char *p = r->element[2]->str;
    size_t len = r->element[2]->len, off;
    char origin[FLEET_NAME_MAX];
    enum fleet_notice_kind k;
    if (!fleet_parse_notice(p, len, origin, sizeof origin, &k, &off) || str_eq(origin, f->name))
        return; /* malformed, or our own */
    pthread_mutex_lock(&f->mu);
    fleet_push_notice_locked(f, k, origin, p + off, len - off);
    pthread_mutex_unlock(&f->mu);
}

/* Waits up to SUB_POLL_MS for notices; false when the subscription broke. */
static bool read_sub(struct fleet *f, char *err, size_t errlen)
{
    struct pollfd pfd = {.fd = f->sub->fd, .events = POLLIN};
    int n = poll(&pfd, 1, SUB_POLL_MS);
    if (n <= 0)
        return true;
    if (redisBufferRead(f->sub) != REDIS_OK) {
        snprintf(err, errlen, "%s", f->sub->errstr[0] ? f->sub->errstr : "subscription closed");
        return false;
    }
    void *r = NULL;
    while (redisGetReplyFromReader(f->sub, &r) == REDIS_OK && r) {
        handle_message(f, r);
        freeReplyObject(r);
        r = NULL;
    }
    if (f->sub->err) {
        snprintf(err, errlen, "%s", f->sub->errstr);
        return false;
    }
    return true;
}

/* ---- stored state at connect ------------------------------------------------------------------
 */

static bool load_overrides(struct fleet *f, char *err, size_t errlen)
{
    char key[FLEET_KEY_MAX];
    snprintf(key, sizeof key, "%sov", f->prefix);
    redisReply *r = redisCommandArgv(f->cmd, 2, (const char *[]){"HGETALL", key}, NULL);
    bool ok = reply_ok(f->cmd, r, err, errlen);
    if (ok && r->type == REDIS_REPLY_ARRAY) {
        pthread_mutex_lock(&f->mu);
        for (size_t i = 0; i + 1 < r->elements; i += 2) {
            const redisReply *v = r->element[i + 1];
            if (v->type == REDIS_REPLY_STRING)
                fleet_push_notice_locked(f, FLEET_NOTICE_OVERRIDE, "redis", v->str, v->len);
        }
        pthread_mutex_unlock(&f->mu);
    }
    if (r)
        freeReplyObject(r);
    return ok;
}

/* Every key matching P<what>* (at most LOAD_MAX) as notices of kind: cooldowns and cached
 * answers a joining (or reconnecting) instance should know. */
static bool load_keys(struct fleet *f, const char *what, enum fleet_notice_kind kind, char *err,
                      size_t errlen)
{
    char pattern[FLEET_KEY_MAX];
    size_t loaded = 0;
    snprintf(pattern, sizeof pattern, "%s%s*", f->prefix, what);
    char cursor[32] = "0";
    bool ok = true;
    do {
        redisReply *r = redisCommandArgv(
            f->cmd, 6, (const char *[]){"SCAN", cursor, "MATCH", pattern, "COUNT", "100"}, NULL);
        ok = reply_ok(f->cmd, r, err, errlen) && r->type == REDIS_REPLY_ARRAY && r->elements == 2;
        if (ok) {
            snprintf(cursor, sizeof cursor, "%.*s", (int)r->element[0]->len, r->element[0]->str);
            const redisReply *keys = r->element[1];
            for (size_t i = 0; i < keys->elements; i++) {
                redisReply *v = redisCommandArgv(
                    f->cmd, 2, (const char *[]){"GET", keys->element[i]->str}, NULL);
                ok = reply_ok(f->cmd, v, err, errlen);
                if (ok && v->type == REDIS_REPLY_STRING && loaded++ < LOAD_MAX) {
                    pthread_mutex_lock(&f->mu);
                    fleet_push_notice_locked(f, kind, "redis", v->str, v->len);
                    pthread_mutex_unlock(&f->mu);
                }
                if (v)
                    freeReplyObject(v);
                if (!ok)
                    break;
            }
        }
        if (r)
            freeReplyObject(r);
    } while (ok && !str_eq(cursor, "0") && loaded < LOAD_MAX);
    return ok;
}

/* Redis without our seeded marker lost what we put there (or never had it): re-add this
 * process's contributions, ask the router to store its overrides again, set the marker. */
static bool reseed_if_needed(struct fleet *f, char *err, size_t errlen)
{
    char key[FLEET_KEY_MAX];
    snprintf(key, sizeof key, "%sseeded:%s", f->prefix, f->name);
    redisReply *r = redisCommandArgv(f->cmd, 2, (const char *[]){"EXISTS", key}, NULL);
    bool ok = reply_ok(f->cmd, r, err, errlen);
    bool present = ok && r->type == REDIS_REPLY_INTEGER && r->integer == 1;
    if (r)
        freeReplyObject(r);
    if (!ok || present)
        return ok;
    bool any = false;
    pthread_mutex_lock(&f->mu);
    for (size_t i = 0; i < FLEET_MAX_COUNTERS; i++) {
        struct fleet_counter *c = &f->counters[i];
        if (c->used && c->contributed != 0) {
            c->pending += c->contributed; /* the next flush adds it back */
            f->st.pending_micro_usd += c->contributed;
            c->contributed = 0;
            c->remote = 0;
            any = true;
        }
    }
    if (f->ever_connected)
        fleet_push_notice_locked(f, FLEET_NOTICE_RESEED, "redis", "", 0);
    pthread_mutex_unlock(&f->mu);
    if (any || f->ever_connected)
        log_warn("fleet: redis lost this instance's state (restarted empty?): re-seeding it");
    return run(f->cmd, err, errlen, 3, (const char *[]){"SET", key, "1"});
}

static bool try_connect(struct fleet *f, char *err, size_t errlen)
{
    f->cmd = open_one(f, &f->cmd_pump, err, errlen);
    if (!f->cmd) {
        disconnect(f);
        return false;
    }
    f->sub = open_one(f, &f->sub_pump, err, errlen);
    if (!f->sub || !subscribe(f, err, errlen) || !reseed_if_needed(f, err, errlen) ||
        !load_overrides(f, err, errlen) ||
        !load_keys(f, "cool:", FLEET_NOTICE_COOLDOWN, err, errlen) ||
        !load_keys(f, "cache:", FLEET_NOTICE_CACHE, err, errlen)) {
        disconnect(f);
        return false;
    }
    if (f->ever_connected) {
        pthread_mutex_lock(&f->mu);
        f->st.reconnects++;
        pthread_mutex_unlock(&f->mu);
    }
    f->next_flush_ms = f->next_refresh_ms = f->next_hb_ms = 0;
    pthread_mutex_lock(&f->mu);
    for (size_t i = 0; i < FLEET_MAX_POOLS; i++)
        f->slots[i].next_refresh_ms = 0; /* a new Redis may not know our grants */
    pthread_mutex_unlock(&f->mu);
    return true;
}

/* ---- exchanges --------------------------------------------------------------------------------
 */

/* Reads n pipelined replies; replies[i] gets each (NULL after an error). False on the first
 * connection error (the rest are not read). */
static bool read_replies(redisContext *c, redisReply **replies, size_t n, char *err, size_t errlen)
{
    for (size_t i = 0; i < n; i++) {
        void *r = NULL;
        if (redisGetReply(c, &r) != REDIS_OK) {
            snprintf(err, errlen, "%s", c->errstr[0] ? c->errstr : "connection lost");
            for (size_t k = i; k < n; k++)
                replies[k] = NULL;
            return false;
        }
        replies[i] = r;
    }
    return true;
}

static void free_replies(redisReply **replies, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (replies[i])
            freeReplyObject(replies[i]);
    }
}

struct flush_item {
    size_t slot;
    int64_t delta;
};

static bool flush_counters(struct fleet *f, char *err, size_t errlen)
{
    struct flush_item items[FLUSH_BATCH];
    size_t n = 0;
    pthread_mutex_lock(&f->mu);
    for (size_t i = 0; i < FLEET_MAX_COUNTERS && n < FLUSH_BATCH; i++) {
        struct fleet_counter *c = &f->counters[i];
        if (!c->used || c->pending == 0)
            continue;
        c->inflight = c->pending;
        c->pending = 0;
        items[n++] = (struct flush_item){i, c->inflight};
        char d[24], ttl[24];
        snprintf(d, sizeof d, "%lld", (long long)c->inflight);
        snprintf(ttl, sizeof ttl, "%lld", (long long)(c->ttl_s > 0 ? c->ttl_s : 86400));
        redisAppendCommandArgv(f->cmd, 3, (const char *[]){"INCRBY", c->key, d}, NULL);
        redisAppendCommandArgv(f->cmd, 3, (const char *[]){"EXPIRE", c->key, ttl}, NULL);
    }
    pthread_mutex_unlock(&f->mu);
    if (n == 0)
        return true;
    redisReply *replies[2 * FLUSH_BATCH];
    bool ok = read_replies(f->cmd, replies, 2 * n, err, errlen);
    pthread_mutex_lock(&f->mu);
    for (size_t k = 0; k < n; k++) {
        struct fleet_counter *c = &f->counters[items[k].slot];
        redisReply *r = replies[2 * k];
        if (r && r->type == REDIS_REPLY_INTEGER) {
            c->remote = r->integer;
            c->contributed += items[k].delta;
            f->st.pending_micro_usd -= items[k].delta;
        } else {
            c->pending += items[k].delta; /* not acknowledged: sent again later */
            if (r && r->type == REDIS_REPLY_ERROR && ok) {
                snprintf(err, errlen, "%.*s", (int)r->len, r->str);
                ok = false;
            }
        }
        c->inflight = 0;
    }
    f->st.flushes++;
    pthread_mutex_unlock(&f->mu);
    free_replies(replies, 2 * n);
    return ok;
}

/* Re-reads watched counters (and our seeded marker: gone means Redis lost our state). */
static bool refresh_counters(struct fleet *f, char *err, size_t errlen)
{
    const char *argv[MGET_BATCH + 2];
    size_t slots[MGET_BATCH];
    char keys[MGET_BATCH][FLEET_KEY_MAX];
    char seeded[FLEET_KEY_MAX];
    snprintf(seeded, sizeof seeded, "%sseeded:%s", f->prefix, f->name);
    size_t start = 0;
    bool ok = true;
    while (ok && start < FLEET_MAX_COUNTERS) {
        size_t n = 0;
        argv[0] = "MGET";
        argv[1] = seeded;
        pthread_mutex_lock(&f->mu);
        for (; start < FLEET_MAX_COUNTERS && n < MGET_BATCH; start++) {
            struct fleet_counter *c = &f->counters[start];
            if (c->used && c->watched && c->inflight == 0) {
                slots[n] = start;
                str_copy(keys[n], sizeof keys[n], c->key);
                argv[2 + n] = keys[n];
                n++;
            }
        }
        pthread_mutex_unlock(&f->mu);
        if (n == 0)
            break;
        redisReply *r = redisCommandArgv(f->cmd, (int)(n + 2), argv, NULL);
        ok = reply_ok(f->cmd, r, err, errlen) && r->type == REDIS_REPLY_ARRAY &&
             r->elements == n + 1;
        if (ok && r->element[0]->type == REDIS_REPLY_NIL)
            ok = reseed_if_needed(f, err, errlen);
        else if (ok) {
            pthread_mutex_lock(&f->mu);
            for (size_t k = 0; k < n; k++) {
                const redisReply *v = r->element[k + 1];
                struct fleet_counter *c = &f->counters[slots[k]];
                long v64 = 0;
                if (v->type == REDIS_REPLY_STRING)
                    str_to_long(v->str, &v64);
                if (str_eq(c->key, keys[k]) && c->inflight == 0) /* not evicted meanwhile */
                    c->remote = v64;
            }
            pthread_mutex_unlock(&f->mu);
        }
        if (r)
            freeReplyObject(r);
    }
    return ok;
}

/* One notice: PUBLISH, plus its storage (cooldown key, audit stream, override hash). */
static size_t append_out(struct fleet *f, const struct fleet_out *o, struct buf *payload)
{
    char chan[FLEET_KEY_MAX], key[FLEET_KEY_MAX];
    size_t n = 0;
    buf_reset(payload);
    buf_printf(payload, "%s\t%s\t%s", f->name, fleet_notice_kind_name(o->kind), o->body);
    snprintf(chan, sizeof chan, "%snotices", f->prefix);
    if (o->kind == FLEET_NOTICE_COOLDOWN || o->kind == FLEET_NOTICE_CACHE) {
        int64_t px = o->expire_wall_ms - clock_wall_ms();
        if (px <= 0)
            return 0; /* over while Redis was down */
        char pxs[24];
        snprintf(pxs, sizeof pxs, "%lld", (long long)px);
        if (o->kind == FLEET_NOTICE_COOLDOWN)
            snprintf(key, sizeof key, "%scool:%s", f->prefix, o->target);
        else
            snprintf(key, sizeof key, "%s%s", f->prefix, o->target);
        redisAppendCommandArgv(f->cmd, 5, (const char *[]){"SET", key, o->body, "PX", pxs}, NULL);
        n++;
    }
    if (o->kind == FLEET_NOTICE_COMMAND) {
        char max[24];
        snprintf(max, sizeof max, "%d", FLEET_AUDIT_MAX);
        snprintf(key, sizeof key, "%saudit", f->prefix);
        redisAppendCommandArgv(f->cmd, 10,
                               (const char *[]){"XADD", key, "MAXLEN", "~", max, "*", "instance",
                                                f->name, "command", o->body},
                               NULL);
        n++;
    }
    snprintf(key, sizeof key, "%sov", f->prefix);
    for (size_t i = 0; i < o->n_store; i++) {
        const struct fleet_store *s = &o->stores[i];
        if (s->value)
            redisAppendCommandArgv(f->cmd, 4, (const char *[]){"HSET", key, s->field, s->value},
                                   NULL);
        else
            redisAppendCommandArgv(f->cmd, 3, (const char *[]){"HDEL", key, s->field}, NULL);
        n++;
    }
    if (o->kind == FLEET_NOTICE_COOLDOWN || o->kind == FLEET_NOTICE_COMMAND ||
        o->kind == FLEET_NOTICE_BREAKER || o->kind == FLEET_NOTICE_CACHE) {
        redisAppendCommandArgv(f->cmd, 3, (const char *[]){"PUBLISH", chan, buf_str(payload)},
                               NULL);
        n++;
    }
    return n;
}

/* Sends the outbox; what was not acknowledged goes back to its head. */
static bool flush_outbox(struct fleet *f, char *err, size_t errlen)
{
    pthread_mutex_lock(&f->mu);
    struct fleet_out *list = f->out_head;
    f->out_head = f->out_tail = NULL;
    f->n_out = 0;
    pthread_mutex_unlock(&f->mu);
    bool ok = true;
    struct buf payload;
    buf_init(&payload);
    struct fleet_out *o = list;
    while (o && ok) {
        size_t n = append_out(f, o, &payload);
        redisReply *replies[FLEET_MAX_STORES + 3];
        ok = read_replies(f->cmd, replies, n, err, errlen);
        for (size_t i = 0; ok && i < n; i++) {
            if (replies[i]->type == REDIS_REPLY_ERROR) {
                snprintf(err, errlen, "%.*s", (int)replies[i]->len, replies[i]->str);
                ok = false;
            }
        }
        free_replies(replies, ok ? n : 0);
        if (!ok)
            break;
        struct fleet_out *next = o->next;
        fleet_out_free(o);
        pthread_mutex_lock(&f->mu);
        f->st.notices_sent++;
        pthread_mutex_unlock(&f->mu);
        o = next;
    }
    buf_cleanup(&payload);
    if (o) { /* put the rest back in front of what was posted meanwhile */
        struct fleet_out *tail = o;
        size_t n = 1;
        while (tail->next) {
            tail = tail->next;
            n++;
        }
        pthread_mutex_lock(&f->mu);
        tail->next = f->out_head;
        if (!f->out_tail)
            f->out_tail = tail;
        f->out_head = o;
        f->n_out += n;
        pthread_mutex_unlock(&f->mu);
    }
    return ok;
}

static bool heartbeat(struct fleet *f, int64_t now, char *err, size_t errlen)
{
    char key[FLEET_KEY_MAX], zkey[FLEET_KEY_MAX], px[24], score[24], cut[24];
    snprintf(key, sizeof key, "%sinst:%s", f->prefix, f->name);
    snprintf(zkey, sizeof zkey, "%sinstances", f->prefix);
    snprintf(px, sizeof px, "%d", FLEET_HEARTBEAT_TTL_MS);
    snprintf(score, sizeof score, "%lld", (long long)now);
    snprintf(cut, sizeof cut, "(%lld", (long long)(now - FLEET_HEARTBEAT_TTL_MS));
    pthread_mutex_lock(&f->mu);
    char *hb = xstrdup(f->heartbeat); /* NULL until the router's first snapshot */
    pthread_mutex_unlock(&f->mu);
    /* before the first summary only the sorted set: the instance counts, nothing to show */
    redisAppendCommandArgv(f->cmd, hb ? 5 : 2,
                           hb ? (const char *[]){"SET", key, hb, "PX", px}
                              : (const char *[]){"PEXPIRE", key, px},
                           NULL);
    redisAppendCommandArgv(f->cmd, 4, (const char *[]){"ZADD", zkey, score, f->name}, NULL);
    redisAppendCommandArgv(f->cmd, 4, (const char *[]){"ZREMRANGEBYSCORE", zkey, "-inf", cut},
                           NULL);
    redisAppendCommandArgv(f->cmd, 2, (const char *[]){"ZCARD", zkey}, NULL);
    free(hb);
    redisReply *r[4];
    bool ok = read_replies(f->cmd, r, 4, err, errlen);
    long instances = ok && r[3]->type == REDIS_REPLY_INTEGER ? (long)r[3]->integer : 0;
    free_replies(r, ok ? 4 : 0);
    if (ok)
        mark_up(f, instances);
    return ok;
}

/* The fleet-wide token bucket: refilled by Redis's own clock (one clock for the whole fleet),
 * grants up to ARGV[3] tokens. KEYS[1] bucket; ARGV: per_minute, burst, want. */
static const char lease_script[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local rate = tonumber(ARGV[1]) / 60000\n"
    "local burst = tonumber(ARGV[2])\n"
    "local v = redis.call('HMGET', KEYS[1], 'tokens', 'ts')\n"
    "local tokens = tonumber(v[1]) or burst\n"
    "local ts = tonumber(v[2]) or now\n"
    "if now > ts then tokens = math.min(burst, tokens + (now - ts) * rate) end\n"
    "local grant = math.min(tonumber(ARGV[3]), math.floor(tokens))\n"
    "if grant < 0 then grant = 0 end\n"
    "redis.call('HSET', KEYS[1], 'tokens', tostring(tokens - grant), 'ts', tostring(now))\n"
    "redis.call('PEXPIRE', KEYS[1], 120000)\n"
    "return grant\n";

struct lease_item {
    size_t slot;
    int64_t need;
};

/* Tops up every lease the router found short, in one pipeline. */
static bool refill_leases(struct fleet *f, int64_t now, char *err, size_t errlen)
{
    struct lease_item items[FLEET_MAX_LEASES];
    size_t n = 0;
    pthread_mutex_lock(&f->mu);
    for (size_t i = 0; i < FLEET_MAX_LEASES; i++) {
        struct fleet_lease *l = &f->leases[i];
        if (!l->used || l->want <= l->balance || now < l->denied_until_ms || l->per_minute <= 0)
            continue;
        int64_t burst = l->per_minute * FLEET_LEASE_BURST_MS / 60000;
        char pm[24], b[24], w[24];
        snprintf(pm, sizeof pm, "%lld", (long long)l->per_minute);
        snprintf(b, sizeof b, "%lld", (long long)(burst > l->want ? burst : l->want));
        snprintf(w, sizeof w, "%lld", (long long)(l->want - l->balance));
        items[n++] = (struct lease_item){i, l->want - l->balance};
        redisAppendCommandArgv(f->cmd, 7,
                               (const char *[]){"EVAL", lease_script, "1", l->key, pm, b, w}, NULL);
    }
    pthread_mutex_unlock(&f->mu);
    if (n == 0)
        return true;
    redisReply *replies[FLEET_MAX_LEASES];
    bool ok = read_replies(f->cmd, replies, n, err, errlen);
    pthread_mutex_lock(&f->mu);
    for (size_t k = 0; ok && k < n; k++) {
        struct fleet_lease *l = &f->leases[items[k].slot];
        redisReply *r = replies[k];
        if (r->type != REDIS_REPLY_INTEGER) {
            snprintf(err, errlen, "lease: %.*s", (int)r->len, r->str ? r->str : "");
            ok = false;
            break;
        }
        l->balance += r->integer;
        l->want = 0;
        if (r->integer < items[k].need) /* the bucket ran dry: let it refill a little */
            l->denied_until_ms = now + FLEET_LEASE_MS / 5;
    }
    pthread_mutex_unlock(&f->mu);
    free_replies(replies, ok ? n : 0);
    return ok;
}

/* A fleet-wide concurrency pool: grants this instance up to ARGV[3] slots of ARGV[1], what
 * the other live holders leave free, and records max(grant, ARGV[6] in use) as ours with an
 * expiry (so a dead instance's slots come back). KEYS[1] the set of holders; ARGV: max, our
 * name, want, ttl ms, the holders' key prefix, in use. Keys of holders are derived from the
 * set (a standalone Redis or Valkey; not for a cluster). */
static const char slot_script[] =
    "local others = 0\n"
    "for _, m in ipairs(redis.call('SMEMBERS', KEYS[1])) do\n"
    "  if m ~= ARGV[2] then\n"
    "    local v = redis.call('GET', ARGV[5] .. m)\n"
    "    if v then others = others + tonumber(v) else redis.call('SREM', KEYS[1], m) end\n"
    "  end\n"
    "end\n"
    "local grant = math.min(tonumber(ARGV[3]), tonumber(ARGV[1]) - others)\n"
    "if grant < 0 then grant = 0 end\n"
    "local hold = math.max(grant, tonumber(ARGV[6]))\n"
    "if hold > 0 then\n"
    "  redis.call('SET', ARGV[5] .. ARGV[2], tostring(hold), 'PX', ARGV[4])\n"
    "  redis.call('SADD', KEYS[1], ARGV[2])\n"
    "  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[4]) * 10)\n"
    "else\n"
    "  redis.call('DEL', ARGV[5] .. ARGV[2])\n"
    "  redis.call('SREM', KEYS[1], ARGV[2])\n"
    "end\n"
    "return grant\n";

/* Grows, shrinks or renews each pool's grant: to what is in use plus one spare while busy. */
static bool refill_slots(struct fleet *f, int64_t now, char *err, size_t errlen)
{
    size_t items[FLEET_MAX_POOLS];
    size_t n = 0;
    pthread_mutex_lock(&f->mu);
    for (size_t i = 0; i < FLEET_MAX_POOLS; i++) {
        struct fleet_slot *s = &f->slots[i];
        long spare = now - s->active_ms < FLEET_SLOT_IDLE_MS ? 1 : 0;
        long want = s->in_use + spare < s->max ? s->in_use + spare : s->max;
        if (!s->used || s->max <= 0 || (want == s->granted && now < s->next_refresh_ms))
            continue;
        char mx[24], w[24], ttl[24], inuse[24], prefix[FLEET_KEY_MAX + 1];
        snprintf(mx, sizeof mx, "%ld", s->max);
        snprintf(w, sizeof w, "%ld", want);
        snprintf(ttl, sizeof ttl, "%d", FLEET_SLOT_TTL_MS);
        snprintf(inuse, sizeof inuse, "%ld", s->in_use);
        snprintf(prefix, sizeof prefix, "%s:", s->key);
        items[n++] = i;
        redisAppendCommandArgv(
            f->cmd, 10,
            (const char *[]){"EVAL", slot_script, "1", s->key, mx, f->name, w, ttl, prefix, inuse},
            NULL);
    }
    pthread_mutex_unlock(&f->mu);
    if (n == 0)
        return true;
    redisReply *replies[FLEET_MAX_POOLS];
    bool ok = read_replies(f->cmd, replies, n, err, errlen);
    pthread_mutex_lock(&f->mu);
    for (size_t k = 0; ok && k < n; k++) {
        struct fleet_slot *s = &f->slots[items[k]];
        if (replies[k]->type != REDIS_REPLY_INTEGER) {
            snprintf(err, errlen, "slots: %.*s", (int)replies[k]->len,
                     replies[k]->str ? replies[k]->str : "");
            ok = false;
            break;
        }
        s->granted = (long)replies[k]->integer;
        s->next_refresh_ms = now + FLEET_SLOT_RENEW_MS;
    }
    pthread_mutex_unlock(&f->mu);
    free_replies(replies, ok ? n : 0);
    return ok;
}

/* Everything due on the command connection; false on a Redis error (err says which). */
static bool exchange(struct fleet *f, int64_t now, char *err, size_t errlen)
{
    if (!flush_outbox(f, err, errlen) || !refill_leases(f, now, err, errlen) ||
        !refill_slots(f, now, err, errlen))
        return false;
    if (now >= f->next_flush_ms) {
        if (!flush_counters(f, err, errlen))
            return false;
        f->next_flush_ms = now + FLEET_FLUSH_MS;
    }
    if (now >= f->next_refresh_ms) {
        if (!refresh_counters(f, err, errlen))
            return false;
        f->next_refresh_ms = now + FLEET_REFRESH_MS;
    }
    if (now >= f->next_hb_ms) {
        if (!heartbeat(f, now, err, errlen))
            return false;
        f->next_hb_ms = now + FLEET_HEARTBEAT_MS;
    }
    return true;
}

static void wait_ms(struct fleet *f, int64_t ms)
{
    struct timespec ts;
    clock_deadline_in(&ts, ms);
    pthread_mutex_lock(&f->mu);
    if (!atomic_load(&f->stopping))
        pthread_cond_timedwait(&f->cv, &f->mu, &ts);
    pthread_mutex_unlock(&f->mu);
}

static void step(struct fleet *f)
{
    char err[128] = "";
    int64_t now = clock_wall_ms();
    if (!f->cmd) {
        if (now < f->next_connect_ms) {
            wait_ms(f, f->next_connect_ms - now < SUB_POLL_MS ? f->next_connect_ms - now
                                                              : SUB_POLL_MS);
            return;
        }
        if (!try_connect(f, err, sizeof err)) {
            mark_down(f, err);
            f->next_connect_ms = now + f->backoff_ms;
            f->backoff_ms =
                f->backoff_ms * 2 > FLEET_BACKOFF_MAX_MS ? FLEET_BACKOFF_MAX_MS : f->backoff_ms * 2;
            return;
        }
        f->backoff_ms = FLEET_BACKOFF_MIN_MS;
    }
    bool ok = exchange(f, now, err, sizeof err) && read_sub(f, err, sizeof err);
    if (ok && !f->ever_connected) {
        f->ever_connected = true;
        log_info("fleet: %s joined through redis %s", f->name,
                 f->is_unix ? "(unix socket)" : f->host);
    }
    if (!ok) {
        disconnect(f);
        mark_down(f, err);
        f->next_connect_ms = clock_wall_ms() + f->backoff_ms;
    }
}

void *fleet_thread_main(void *arg)
{
    struct fleet *f = arg;
    while (!atomic_load(&f->stopping))
        step(f);
    if (f->cmd) { /* a last flush so a clean stop loses no spend */
        char err[128];
        f->next_flush_ms = 0;
        if (!flush_outbox(f, err, sizeof err) || !flush_counters(f, err, sizeof err))
            log_warn("fleet: last flush failed: %s", err);
    }
    disconnect(f);
    return NULL;
}
