/*
 * clients.c - client keys (clients.h): hashing with libcrypto, the key set with its per-key
 * counters, and the authenticate / admit / note-done decision.
 *
 * Threads and locks: cl->mu guards the whole set (keys, counters, required flag); every
 * public function takes it for a table walk or a counter update only and calls nothing
 * outside this file while holding it. Hashing happens before the lock is taken.
 *
 * Rate windows are twelve buckets of five seconds (a minute sliding in 5 s steps). Spend
 * windows are the UTC day and month of ledger.h's calendar; they roll over lazily.
 *
 * Fleet mode (clients_set_fleet): the fleet's functions are called under cl->mu (they take
 * only the fleet's own mutex, never wait on Redis and never call back here), so the lock
 * order is cl->mu, then the fleet's.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "switchboard/clients.h"
#include "switchboard/fleet.h"
#include "switchboard/ledger.h"

#define WIN_SLOTS   12
#define WIN_SLOT_MS 5000
#define TOKEN_MAX   512 /* longest bearer token looked at */

struct window {
    int64_t slot[WIN_SLOTS];
    long n[WIN_SLOTS];
};

struct entry {
    struct clients_key key;
    struct window req, tok;
    int64_t day_start, month_start;
    double day_usd, month_usd;
    uint64_t admitted, tokens;
    uint64_t refused[CLIENTS_VERDICT_COUNT];
    double spend_usd;
};

struct clients {
    pthread_mutex_t mu;
    struct entry *e;
    size_t n;
    char **budget_tags;
    size_t n_budget_tags;
    bool required;
    uint64_t auth_failures[CLIENTS_VERDICT_COUNT];
    struct fleet *fleet; /* NULL: limits are this process's alone */
};

/* ---- hashing ------------------------------------------------------------------------------ */

void clients_sha256(const void *data, size_t len, uint8_t out[CLIENTS_HASH_LEN])
{
    unsigned int n = 0;
    if (!EVP_Digest(data, len, out, &n, EVP_sha256(), NULL) || n != CLIENTS_HASH_LEN) {
        fprintf(stderr, "switchboard: SHA-256 failed in libcrypto\n");
        abort(); /* like xmalloc: no sane way on without a hash function */
    }
}

void clients_hash_hex(const uint8_t hash[CLIENTS_HASH_LEN], char out[CLIENTS_HASH_HEX + 1])
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < CLIENTS_HASH_LEN; i++) {
        out[2 * i] = digits[hash[i] >> 4];
        out[2 * i + 1] = digits[hash[i] & 15];
    }
    out[CLIENTS_HASH_HEX] = '\0';
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool clients_hash_parse(const char *hex, uint8_t out[CLIENTS_HASH_LEN])
{
    if (!hex || strlen(hex) != CLIENTS_HASH_HEX)
        return false;
    for (size_t i = 0; i < CLIENTS_HASH_LEN; i++) {
        int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

bool clients_hash_equal(const uint8_t a[CLIENTS_HASH_LEN], const uint8_t b[CLIENTS_HASH_LEN])
{
    return CRYPTO_memcmp(a, b, CLIENTS_HASH_LEN) == 0;
}

enum sb_status clients_key_generate(char *out, size_t outlen)
{
    uint8_t raw[24];
    static const char digits[] = "0123456789abcdef";
    size_t plen = strlen(CLIENTS_KEY_PREFIX);
    if (outlen < plen + 2 * sizeof raw + 1)
        return SB_ERR_LIMIT;
    if (RAND_bytes(raw, (int)sizeof raw) != 1)
        return SB_ERR_IO;
    memcpy(out, CLIENTS_KEY_PREFIX, plen);
    for (size_t i = 0; i < sizeof raw; i++) {
        out[plen + 2 * i] = digits[raw[i] >> 4];
        out[plen + 2 * i + 1] = digits[raw[i] & 15];
    }
    out[plen + 2 * sizeof raw] = '\0';
    OPENSSL_cleanse(raw, sizeof raw);
    return SB_OK;
}

bool clients_parse_time(const char *v, int64_t *out)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    char tail = '\0';
    int y = 0, mo = 0, d = 0, h = 0, mi = 0, s = 0;
    size_t len = v ? strlen(v) : 0;
    bool ok = false;
    if (len == 10)
        ok = sscanf(v, "%4d-%2d-%2d%c", &y, &mo, &d, &tail) == 3;
    else if (len == 20)
        ok = sscanf(v, "%4d-%2d-%2dT%2d:%2d:%2d%c", &y, &mo, &d, &h, &mi, &s, &tail) == 7 &&
             tail == 'Z';
    if (!ok || y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 ||
        mi < 0 || mi > 59 || s < 0 || s > 59)
        return false;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = s;
    time_t t = timegm(&tm);
    if (tm.tm_mday != d) /* 2027-02-31 was normalised into March */
        return false;
    *out = (int64_t)t * 1000;
    return true;
}

bool clients_name_is_valid(const char *name)
{
    size_t n = name ? strlen(name) : 0;
    if (n == 0 || n > CLIENTS_NAME_MAX)
        return false;
    for (const char *p = name; *p; p++) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

/* ---- one key ------------------------------------------------------------------------------ */

void clients_key_copy(struct clients_key *dst, const struct clients_key *src)
{
    *dst = *src;
    dst->tag = xstrdup(src->tag);
    dst->routes = src->n_routes ? xcalloc(src->n_routes, sizeof *dst->routes) : NULL;
    for (size_t i = 0; i < src->n_routes; i++)
        dst->routes[i] = xstrdup(src->routes[i]);
}

void clients_key_cleanup(struct clients_key *k)
{
    if (!k)
        return;
    for (size_t i = 0; i < k->n_routes; i++)
        free(k->routes[i]);
    free(k->routes);
    free(k->tag);
    k->routes = NULL;
    k->n_routes = 0;
    k->tag = NULL;
}

void clients_key_add_route(struct clients_key *k, const char *route)
{
    k->routes = xrealloc(k->routes, (k->n_routes + 1) * sizeof *k->routes);
    k->routes[k->n_routes++] = xstrdup(route);
}

const char *clients_key_tag(const struct clients_key *k)
{
    return k->tag && *k->tag ? k->tag : k->name;
}

/* ---- windows ------------------------------------------------------------------------------ */

static void win_add(struct window *w, int64_t now_ms, long v)
{
    int64_t s = now_ms / WIN_SLOT_MS;
    size_t i = (size_t)(s % WIN_SLOTS);
    if (w->slot[i] != s) {
        w->slot[i] = s;
        w->n[i] = 0;
    }
    w->n[i] += v;
}

/* The sum over the last minute; *free_at_ms: when the oldest counted bucket leaves. */
static long win_sum(const struct window *w, int64_t now_ms, int64_t *free_at_ms)
{
    int64_t s = now_ms / WIN_SLOT_MS, oldest = s + 1;
    long total = 0;
    for (size_t i = 0; i < WIN_SLOTS; i++) {
        if (w->slot[i] > s - WIN_SLOTS && w->slot[i] <= s && w->n[i] > 0) {
            total += w->n[i];
            if (w->slot[i] < oldest)
                oldest = w->slot[i];
        }
    }
    if (free_at_ms)
        *free_at_ms = (oldest + WIN_SLOTS) * WIN_SLOT_MS;
    return total;
}

static void roll_spend(struct entry *e, int64_t now_ms)
{
    int64_t day = ledger_day_start(now_ms), month = ledger_month_start(now_ms);
    if (e->day_start != day) {
        e->day_start = day;
        e->day_usd = 0;
    }
    if (e->month_start != month) {
        e->month_start = month;
        e->month_usd = 0;
    }
}

/* ---- the set ------------------------------------------------------------------------------ */

struct clients *clients_new(void)
{
    struct clients *cl = xcalloc(1, sizeof *cl);
    pthread_mutex_init(&cl->mu, NULL);
    return cl;
}

static void free_entries(struct entry *e, size_t n)
{
    for (size_t i = 0; i < n; i++)
        clients_key_cleanup(&e[i].key);
    free(e);
}

static void free_tags(char **tags, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(tags[i]);
    free(tags);
}

void clients_free(struct clients *cl)
{
    if (!cl)
        return;
    free_entries(cl->e, cl->n);
    free_tags(cl->budget_tags, cl->n_budget_tags);
    pthread_mutex_destroy(&cl->mu);
    free(cl);
}

static struct entry *find_locked(struct clients *cl, const char *name)
{
    for (size_t i = 0; name && i < cl->n; i++) {
        if (str_eq(cl->e[i].key.name, name))
            return &cl->e[i];
    }
    return NULL;
}

void clients_set(struct clients *cl, const struct clients_key *keys, size_t n,
                 const char *const *budget_tags, size_t n_budget_tags)
{
    if (n > CLIENTS_MAX)
        n = CLIENTS_MAX;
    struct entry *e = n ? xcalloc(n, sizeof *e) : NULL;
    char **tags = n_budget_tags ? xcalloc(n_budget_tags, sizeof *tags) : NULL;
    for (size_t i = 0; i < n; i++)
        clients_key_copy(&e[i].key, &keys[i]);
    for (size_t i = 0; i < n_budget_tags; i++)
        tags[i] = xstrdup(budget_tags[i]);
    pthread_mutex_lock(&cl->mu);
    for (size_t i = 0; i < n; i++) {
        const struct entry *old = find_locked(cl, e[i].key.name);
        if (old) {
            struct clients_key k = e[i].key;
            e[i] = *old;
            e[i].key = k;
        }
    }
    struct entry *old_e = cl->e;
    size_t old_n = cl->n;
    char **old_tags = cl->budget_tags;
    size_t old_nt = cl->n_budget_tags;
    cl->e = e;
    cl->n = n;
    cl->budget_tags = tags;
    cl->n_budget_tags = n_budget_tags;
    cl->required = cl->required || n > 0;
    pthread_mutex_unlock(&cl->mu);
    free_entries(old_e, old_n);
    free_tags(old_tags, old_nt);
}

void clients_set_fleet(struct clients *cl, struct fleet *f)
{
    pthread_mutex_lock(&cl->mu);
    cl->fleet = f;
    pthread_mutex_unlock(&cl->mu);
}

bool clients_required(struct clients *cl)
{
    pthread_mutex_lock(&cl->mu);
    bool r = cl->required;
    pthread_mutex_unlock(&cl->mu);
    return r;
}

void clients_require(struct clients *cl)
{
    pthread_mutex_lock(&cl->mu);
    cl->required = true;
    pthread_mutex_unlock(&cl->mu);
}

void clients_seed_spend(struct clients *cl, const char *name, int64_t now_wall_ms, double day_usd,
                        double month_usd)
{
    pthread_mutex_lock(&cl->mu);
    struct entry *e = find_locked(cl, name);
    if (e) {
        roll_spend(e, now_wall_ms);
        e->day_usd = day_usd;
        e->month_usd = month_usd;
    }
    pthread_mutex_unlock(&cl->mu);
}

/* ---- decisions ---------------------------------------------------------------------------- */

const char *clients_verdict_name(enum clients_verdict v)
{
    static const char *const names[] = {"ok",      "missing", "invalid", "expired",
                                        "revoked", "route",   "rate",    "budget"};
    return (unsigned)v < CLIENTS_VERDICT_COUNT ? names[v] : "?";
}

int clients_verdict_status(enum clients_verdict v)
{
    switch (v) {
    case CLIENTS_OK:
        return 200;
    case CLIENTS_MISSING:
    case CLIENTS_INVALID:
    case CLIENTS_EXPIRED:
    case CLIENTS_REVOKED:
        return 401;
    case CLIENTS_ROUTE:
        return 403;
    case CLIENTS_RATE:
    case CLIENTS_BUDGET:
        return 429;
    }
    return 500;
}

static void decide(struct clients_decision *d, enum clients_verdict v, const char *msg)
{
    d->verdict = v;
    str_copy(d->message, sizeof d->message, msg);
}

/* The token of "Bearer TOKEN" (scheme case-insensitive), or NULL. */
static const char *bearer_token(const char *authorization, size_t *len)
{
    if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0)
        return NULL;
    const char *t = authorization + 7;
    while (*t == ' ')
        t++;
    size_t n = strlen(t);
    while (n > 0 && t[n - 1] == ' ')
        n--;
    if (n == 0 || n > TOKEN_MAX)
        return NULL;
    *len = n;
    return t;
}

/* Every key is compared (no early exit), so the time taken does not say which matched. */
static struct entry *match_locked(struct clients *cl, const uint8_t hash[CLIENTS_HASH_LEN])
{
    struct entry *found = NULL;
    for (size_t i = 0; i < cl->n; i++) {
        bool eq = clients_hash_equal(cl->e[i].key.sha256, hash);
        if (eq && !found)
            found = &cl->e[i];
    }
    return found;
}

void clients_authenticate(struct clients *cl, const char *authorization, int64_t now_wall_ms,
                          struct clients_decision *d)
{
    memset(d, 0, sizeof *d);
    d->retry_after_ms = -1;
    size_t len = 0;
    const char *token = bearer_token(authorization, &len);
    uint8_t hash[CLIENTS_HASH_LEN];
    if (token)
        clients_sha256(token, len, hash);
    pthread_mutex_lock(&cl->mu);
    struct entry *e = token ? match_locked(cl, hash) : NULL;
    if (!token)
        decide(d, CLIENTS_MISSING,
               "You didn't provide an API key. Send your switchboard client key as "
               "\"Authorization: Bearer KEY\".");
    else if (!e)
        decide(d, CLIENTS_INVALID, "Incorrect API key provided.");
    else if (e->key.revoked_ms > 0)
        decide(d, CLIENTS_REVOKED, "This API key has been revoked.");
    else if (e->key.expires_ms > 0 && now_wall_ms >= e->key.expires_ms)
        decide(d, CLIENTS_EXPIRED, "This API key has expired.");
    else
        decide(d, CLIENTS_OK, "");
    if (e)
        str_copy(d->name, sizeof d->name, e->key.name);
    if (d->verdict != CLIENTS_OK)
        cl->auth_failures[d->verdict]++;
    pthread_mutex_unlock(&cl->mu);
}

static bool route_allowed(const struct clients_key *k, const char *route)
{
    if (k->n_routes == 0)
        return true;
    for (size_t i = 0; i < k->n_routes; i++) {
        if (str_eq(k->routes[i], route))
            return true;
    }
    return false;
}

static bool tag_chars_ok(const char *t)
{
    size_t n = strlen(t);
    if (n == 0 || n > CLIENTS_TAG_MAX)
        return false;
    for (const char *p = t; *p; p++) {
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return false;
    }
    return true;
}

/* A client-sent tag is honoured only with self_tag, and never when it is another key's tag
 * or names a tag budget other than the key's own tag. */
static bool self_tag_ok(struct clients *cl, const struct entry *e, const char *t)
{
    const char *own = clients_key_tag(&e->key);
    if (!e->key.self_tag || !tag_chars_ok(t))
        return false;
    if (str_eq(t, own))
        return true;
    for (size_t i = 0; i < cl->n_budget_tags; i++) {
        if (str_eq(cl->budget_tags[i], t))
            return false;
    }
    for (size_t i = 0; i < cl->n; i++) {
        const struct clients_key *o = &cl->e[i].key;
        if (o != &e->key && (str_eq(clients_key_tag(o), t) || str_eq(o->name, t)))
            return false;
    }
    return true;
}

static void fmt_usd(char *out, size_t n, double v)
{
    snprintf(out, n, "$%.2f", v);
}

static void spend_key(const struct entry *e, bool month, int64_t now, char *out, size_t outlen)
{
    char date[11];
    ledger_format_date(now, date);
    snprintf(out, outlen, "spend:client:%s:%c:%.*s", e->key.name, month ? 'm' : 'd', month ? 7 : 10,
             date);
}

/* The key's spend in a window in dollars: this process's, or with a fleet the fleet's total
 * as far as known (never less than this process's own); while Redis is down per
 * fleet.on_outage (share: this process's spend since counts once per instance; closed: -1,
 * unknown). */
static double window_spend(struct clients *cl, const struct entry *e, bool month, int64_t now)
{
    double local = month ? e->month_usd : e->day_usd;
    if (!cl->fleet)
        return local;
    char key[FLEET_KEY_MAX];
    spend_key(e, month, now, key, sizeof key);
    int64_t mine = 0;
    bool stale = false;
    double v = (double)fleet_counter_get(cl->fleet, key, &mine, &stale) / 1e6;
    if (stale) {
        struct fleet_status st;
        fleet_get_status(cl->fleet, &st);
        long n = st.instances_last > 1 ? st.instances_last : 1;
        switch (fleet_outage_mode(cl->fleet)) {
        case FLEET_OUTAGE_SHARE:
            v += (double)mine * (double)(n - 1) / 1e6;
            break;
        case FLEET_OUTAGE_OPEN:
            v = local;
            break;
        case FLEET_OUTAGE_CLOSED:
            return -1;
        }
    }
    return v > local ? v : local;
}

/* Budget caps; true when refused (message and retry filled). */
static bool over_budget(struct clients *cl, struct entry *e, int64_t now,
                        struct clients_decision *d)
{
    char cap[32], spent[32];
    roll_spend(e, now);
    double day_spent = e->key.daily_usd > 0 ? window_spend(cl, e, false, now) : 0;
    double month_spent = e->key.monthly_usd > 0 ? window_spend(cl, e, true, now) : 0;
    if (day_spent < 0 || month_spent < 0) {
        d->verdict = CLIENTS_BUDGET;
        snprintf(d->message, sizeof d->message,
                 "client key '%s': fleet budget unknown: redis unreachable (fleet.on_outage "
                 "closed)",
                 e->key.name);
        d->retry_after_ms = 5000;
        return true;
    }
    bool day = e->key.daily_usd > 0 && day_spent >= e->key.daily_usd;
    bool month = e->key.monthly_usd > 0 && month_spent >= e->key.monthly_usd;
    if (!day && !month)
        return false;
    fmt_usd(cap, sizeof cap, day ? e->key.daily_usd : e->key.monthly_usd);
    fmt_usd(spent, sizeof spent, day ? day_spent : month_spent);
    d->verdict = CLIENTS_BUDGET;
    snprintf(d->message, sizeof d->message,
             "client key '%s': %s budget %s reached (%s spent %s); resets at 00:00 UTC%s",
             e->key.name, day ? "daily" : "monthly", cap, spent, day ? "today" : "this month",
             day ? "" : " on the 1st");
    d->retry_after_ms = (day ? e->day_start + 86400000 : ledger_next_month_start(now)) - now;
    return true;
}

/* Whether the fleet's bucket for this key's rpm ('r') or tpm ('t') is empty for us; while
 * Redis is down, whether this instance's window reached its share of the limit. */
static bool fleet_rate_over(struct fleet *f, const struct entry *e, char kind, long limit,
                            long used_here)
{
    char key[FLEET_KEY_MAX];
    snprintf(key, sizeof key, "ck:%s:%c", e->key.name, kind);
    bool stale = false;
    if (fleet_lease_has(f, key, 1, limit, &stale))
        return false;
    if (!stale)
        return true;
    struct fleet_status st;
    fleet_get_status(f, &st);
    long n = st.instances_last > 1 ? st.instances_last : 1;
    return used_here >= (limit + n - 1) / n;
}

static bool over_rate(struct clients *cl, struct entry *e, int64_t now, struct clients_decision *d)
{
    int64_t free_req = 0, free_tok = 0;
    long reqs = win_sum(&e->req, now, &free_req);
    long toks = win_sum(&e->tok, now, &free_tok);
    bool rpm = false, tpm = false;
    if (cl->fleet) {
        rpm = e->key.rpm > 0 && fleet_rate_over(cl->fleet, e, 'r', e->key.rpm, reqs);
        tpm = e->key.tpm > 0 && fleet_rate_over(cl->fleet, e, 't', e->key.tpm, toks);
    } else {
        rpm = e->key.rpm > 0 && reqs >= e->key.rpm;
        tpm = e->key.tpm > 0 && toks >= e->key.tpm;
    }
    if (!rpm && !tpm)
        return false;
    if (cl->fleet) {
        free_req = free_tok = now + 1000; /* a fleet bucket refills continuously */
        snprintf(d->message, sizeof d->message,
                 "client key '%s': fleet-wide rate limit of %ld %s reached", e->key.name,
                 rpm ? e->key.rpm : e->key.tpm, rpm ? "requests per minute" : "tokens per minute");
    }
    d->verdict = CLIENTS_RATE;
    if (!cl->fleet)
        snprintf(d->message, sizeof d->message, "client key '%s': rate limit of %ld %s reached",
                 e->key.name, rpm ? e->key.rpm : e->key.tpm,
                 rpm ? "requests per minute" : "tokens per minute");
    d->retry_after_ms = (rpm ? free_req : free_tok) - now;
    if (d->retry_after_ms < 1000)
        d->retry_after_ms = 1000;
    return true;
}

static void admit_locked(struct clients *cl, struct entry *e, const char *route,
                         const char *client_tag, int64_t now, struct clients_decision *d)
{
    if (!route_allowed(&e->key, route)) {
        d->verdict = CLIENTS_ROUTE;
        snprintf(d->message, sizeof d->message, "client key '%s' may not use model '%.100s'",
                 e->key.name, route ? route : "");
    } else if (!over_budget(cl, e, now, d) && !over_rate(cl, e, now, d)) {
        d->verdict = CLIENTS_OK;
    }
    if (d->verdict != CLIENTS_OK) {
        e->refused[d->verdict]++;
        return;
    }
    bool own = client_tag && *client_tag && self_tag_ok(cl, e, client_tag);
    str_copy(d->tag, sizeof d->tag, own ? client_tag : clients_key_tag(&e->key));
    d->tag_ignored = client_tag && *client_tag && !own;
    e->admitted++;
    win_add(&e->req, now, 1);
    if (cl->fleet && e->key.rpm > 0) {
        char key[FLEET_KEY_MAX];
        snprintf(key, sizeof key, "ck:%s:r", e->key.name);
        fleet_lease_use(cl->fleet, key, 1);
    }
}

void clients_admit(struct clients *cl, const char *route, const char *client_tag,
                   int64_t now_wall_ms, struct clients_decision *d)
{
    d->retry_after_ms = -1;
    d->tag[0] = '\0';
    d->tag_ignored = false;
    pthread_mutex_lock(&cl->mu);
    struct entry *e = find_locked(cl, d->name);
    if (!e)
        decide(d, CLIENTS_REVOKED, "This API key has been revoked.");
    else
        admit_locked(cl, e, route, client_tag, now_wall_ms, d);
    pthread_mutex_unlock(&cl->mu);
}

bool clients_route_allowed(struct clients *cl, const char *name, const char *route)
{
    pthread_mutex_lock(&cl->mu);
    const struct entry *e = find_locked(cl, name);
    bool ok = e && route_allowed(&e->key, route);
    pthread_mutex_unlock(&cl->mu);
    return ok;
}

bool clients_self_tag(struct clients *cl, const char *name)
{
    pthread_mutex_lock(&cl->mu);
    const struct entry *e = find_locked(cl, name);
    bool ok = e && e->key.self_tag;
    pthread_mutex_unlock(&cl->mu);
    return ok;
}

/* A finished call's tokens (from the tpm lease: it may go below zero, repaid by the next
 * refill) and cost (the fleet's spend counters). */
static void fleet_note_done(struct fleet *f, const struct entry *e, int64_t now, long tokens,
                            double cost_usd)
{
    char key[FLEET_KEY_MAX];
    if (e->key.tpm > 0 && tokens > 0) {
        snprintf(key, sizeof key, "ck:%s:t", e->key.name);
        fleet_lease_use(f, key, tokens);
    }
    int64_t micro = (int64_t)(cost_usd * 1e6 + 0.5);
    if (micro <= 0 || (e->key.daily_usd <= 0 && e->key.monthly_usd <= 0))
        return;
    spend_key(e, false, now, key, sizeof key);
    fleet_counter_add(f, key, micro, INT64_C(3) * 86400);
    spend_key(e, true, now, key, sizeof key);
    fleet_counter_add(f, key, micro, INT64_C(40) * 86400);
}

void clients_note_done(struct clients *cl, const char *name, int64_t now_wall_ms, long tokens,
                       double cost_usd)
{
    pthread_mutex_lock(&cl->mu);
    struct entry *e = find_locked(cl, name);
    if (e) {
        if (tokens > 0) {
            win_add(&e->tok, now_wall_ms, tokens);
            e->tokens += (uint64_t)tokens;
        }
        if (cost_usd > 0) {
            roll_spend(e, now_wall_ms);
            e->day_usd += cost_usd;
            e->month_usd += cost_usd;
            e->spend_usd += cost_usd;
        }
        if (cl->fleet)
            fleet_note_done(cl->fleet, e, now_wall_ms, tokens, cost_usd);
    }
    pthread_mutex_unlock(&cl->mu);
}

size_t clients_stats(struct clients *cl, int64_t now_wall_ms, struct clients_stats *out, size_t max,
                     uint64_t auth_failures[CLIENTS_VERDICT_COUNT])
{
    pthread_mutex_lock(&cl->mu);
    size_t n = cl->n < max ? cl->n : max;
    for (size_t i = 0; i < n; i++) {
        struct entry *e = &cl->e[i];
        struct clients_stats *s = &out[i];
        roll_spend(e, now_wall_ms);
        memset(s, 0, sizeof *s);
        str_copy(s->name, sizeof s->name, e->key.name);
        s->from_config = e->key.from_config;
        s->revoked = e->key.revoked_ms > 0;
        s->expired = e->key.expires_ms > 0 && now_wall_ms >= e->key.expires_ms;
        s->admitted = e->admitted;
        memcpy(s->refused, e->refused, sizeof s->refused);
        s->tokens = e->tokens;
        s->spend_usd = e->spend_usd;
        s->day_usd = e->day_usd;
        s->month_usd = e->month_usd;
        s->rpm_used = win_sum(&e->req, now_wall_ms, NULL);
        s->tpm_used = win_sum(&e->tok, now_wall_ms, NULL);
    }
    if (auth_failures)
        memcpy(auth_failures, cl->auth_failures, sizeof cl->auth_failures);
    pthread_mutex_unlock(&cl->mu);
    return n;
}
