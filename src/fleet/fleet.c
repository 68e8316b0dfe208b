/*
 * fleet.c - the fleet's thread-safe surface: lifecycle, the counter table, the outbox of
 * notices to publish, the inbox of notices received, the heartbeat text and the status.
 * Every function here takes f->mu for table updates only; Redis I/O is sync.c's, on the
 * fleet thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "switchboard/log.h"

static const char *const notice_names[] = {
    [FLEET_NOTICE_COOLDOWN] = "cooldown", [FLEET_NOTICE_COMMAND] = "command",
    [FLEET_NOTICE_OVERRIDE] = "override", [FLEET_NOTICE_RESEED] = "reseed",
    [FLEET_NOTICE_BREAKER] = "breaker",   [FLEET_NOTICE_CACHE] = "cache",
};

const char *fleet_notice_kind_name(enum fleet_notice_kind k)
{
    return (unsigned)k <= FLEET_NOTICE_CACHE ? notice_names[k] : "?";
}

/* ---- URL ------------------------------------------------------------------------------------ */

static bool parse_port(const char *s, size_t n, int *out)
{
    char tmp[8];
    long v;
    if (n == 0 || n >= sizeof tmp)
        return false;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    if (!str_to_long(tmp, &v) || v < 1 || v > 65535)
        return false;
    *out = (int)v;
    return true;
}

static bool parse_db(const char *s, int *db)
{
    long v;
    if (!*s)
        return true;
    if (!str_to_long(s, &v) || v < 0 || v > 1000)
        return false;
    *db = (int)v;
    return true;
}

bool fleet_parse_url(const char *url, char *host, size_t hostlen, int *port, int *db, bool *is_unix,
                     bool *tls)
{
    *port = 6379;
    *db = 0;
    *is_unix = false;
    if (tls)
        *tls = false;
    if (str_has_prefix(url, "unix://")) {
        const char *path = url + strlen("unix://");
        const char *q = strstr(path, "?db=");
        size_t n = q ? (size_t)(q - path) : strlen(path);
        if (path[0] != '/' || n < 2 || n >= hostlen || (q && !parse_db(q + 4, db)))
            return false;
        memcpy(host, path, n);
        host[n] = '\0';
        *is_unix = true;
        return true;
    }
    const char *h = NULL;
    if (str_has_prefix(url, "redis://"))
        h = url + strlen("redis://");
    else if (tls && str_has_prefix(url, "rediss://")) {
        h = url + strlen("rediss://");
        *tls = true;
    }
    if (!h)
        return false;
    const char *slash = strchr(h, '/');
    const char *end = slash ? slash : h + strlen(h);
    const char *colon = memchr(h, ':', (size_t)(end - h));
    const char *hend = colon ? colon : end;
    size_t n = (size_t)(hend - h);
    if (n == 0 || n >= hostlen || memchr(h, '@', (size_t)(end - h)))
        return false;
    if (colon && !parse_port(colon + 1, (size_t)(end - colon - 1), port))
        return false;
    if (slash && !parse_db(slash + 1, db))
        return false;
    memcpy(host, h, n);
    host[n] = '\0';
    return true;
}

bool fleet_parse_notice(const char *p, size_t len, char *origin, size_t originlen,
                        enum fleet_notice_kind *kind, size_t *body_off)
{
    const char *t1 = memchr(p, '\t', len);
    const char *t2 = t1 ? memchr(t1 + 1, '\t', len - (size_t)(t1 + 1 - p)) : NULL;
    if (!t2 || t1 == p || memchr(p, '\0', (size_t)(t1 - p)))
        return false; /* an origin is a config name: never empty, never a NUL in it */
    size_t klen = (size_t)(t2 - t1 - 1);
    const char *k = t1 + 1;
    if (klen == 8 && memcmp(k, "cooldown", 8) == 0)
        *kind = FLEET_NOTICE_COOLDOWN;
    else if (klen == 7 && memcmp(k, "command", 7) == 0)
        *kind = FLEET_NOTICE_COMMAND;
    else if (klen == 7 && memcmp(k, "breaker", 7) == 0)
        *kind = FLEET_NOTICE_BREAKER;
    else if (klen == 5 && memcmp(k, "cache", 5) == 0)
        *kind = FLEET_NOTICE_CACHE;
    else
        return false;
    size_t olen = (size_t)(t1 - p);
    if (olen >= originlen)
        olen = originlen - 1;
    memcpy(origin, p, olen);
    origin[olen] = '\0';
    *body_off = (size_t)(t2 + 1 - p);
    return true;
}

/* ---- lifecycle ------------------------------------------------------------------------------ */

/* rediss://: the TLS context; a loud warning when verification is off. */
static bool tls_open(struct fleet *f, const struct config_fleet *cfg, char *msg, size_t msglen)
{
    struct fleet_tls_opts o = {.ca_file = cfg->tls_ca_file,
                               .cert_file = cfg->tls_cert_file,
                               .key_file = cfg->tls_key_file,
                               .server_name = cfg->tls_server_name,
                               .insecure_skip_verify = cfg->tls_insecure_skip_verify};
    f->tls = fleet_tls_new(&o, msg, msglen);
    if (f->tls && o.insecure_skip_verify)
        log_warn("fleet: fleet.tls_insecure_skip_verify is on: Redis's certificate is NOT "
                 "verified; anyone on the path to %s can read and change the fleet's traffic "
                 "and learn its Redis password",
                 f->host);
    return f->tls != NULL;
}

struct fleet *fleet_new(const struct config_fleet *cfg, const char *default_name, char *msg,
                        size_t msglen)
{
    struct fleet *f = xcalloc(1, sizeof *f);
    if (!cfg->redis || !fleet_parse_url(cfg->redis, f->host, sizeof f->host, &f->port, &f->db,
                                        &f->is_unix, &f->is_tls)) {
        snprintf(msg, msglen,
                 "fleet.redis: expected redis://host:port/db, rediss://host:port/db or "
                 "unix:///path");
        free(f);
        return NULL;
    }
    if (f->is_tls && !tls_open(f, cfg, msg, msglen)) {
        free(f);
        return NULL;
    }
    f->password = xstrdup(cfg->password);
    str_copy(f->prefix, sizeof f->prefix, cfg->key_prefix ? cfg->key_prefix : "switchboard:");
    str_copy(f->name, sizeof f->name, cfg->name ? cfg->name : default_name);
    f->outage = cfg->on_outage;
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    f->counters = xcalloc(FLEET_MAX_COUNTERS, sizeof *f->counters);
    f->leases = xcalloc(FLEET_MAX_LEASES, sizeof *f->leases);
    f->slots = xcalloc(FLEET_MAX_POOLS, sizeof *f->slots);
    f->st.enabled = true;
    str_copy(f->st.name, sizeof f->st.name, f->name);
    snprintf(f->st.text, sizeof f->st.text, "fleet: connecting to redis");
    f->backoff_ms = FLEET_BACKOFF_MIN_MS;
    return f;
}

enum sb_status fleet_start(struct fleet *f, char *msg, size_t msglen)
{
    int rc = pthread_create(&f->thread, NULL, fleet_thread_main, f);
    if (rc != 0) {
        snprintf(msg, msglen, "fleet: cannot start its thread: %s", strerror(rc));
        return SB_ERR_IO;
    }
    f->started = true;
    return SB_OK;
}

void fleet_out_free(struct fleet_out *o)
{
    if (!o)
        return;
    for (size_t i = 0; i < o->n_store; i++)
        free(o->stores[i].value);
    free(o->body);
    free(o);
}

void fleet_notices_free(struct fleet_notice *n)
{
    while (n) {
        struct fleet_notice *next = n->next;
        free(n->body);
        free(n);
        n = next;
    }
}

void fleet_free(struct fleet *f)
{
    if (!f)
        return;
    if (f->started) {
        pthread_mutex_lock(&f->mu);
        atomic_store(&f->stopping, true);
        pthread_cond_broadcast(&f->cv);
        pthread_mutex_unlock(&f->mu);
        pthread_join(f->thread, NULL);
    }
    while (f->out_head) {
        struct fleet_out *o = f->out_head;
        f->out_head = o->next;
        fleet_out_free(o);
    }
    fleet_notices_free(f->in_head);
    free(f->counters);
    free(f->leases);
    free(f->slots);
    free(f->heartbeat);
    fleet_tls_free(f->tls);
    if (f->password) {
        explicit_bzero(f->password, strlen(f->password));
        free(f->password);
    }
    pthread_cond_destroy(&f->cv);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

const char *fleet_name(const struct fleet *f)
{
    return f->name;
}

enum fleet_outage fleet_outage_mode(const struct fleet *f)
{
    return f->outage;
}

/* ---- counters ---------------------------------------------------------------------------------
 */

/* The slot of key (full, with prefix): open addressing from its hash, so a lookup on the hot
 * path touches a slot or two. A new key takes the first unused slot of its probe; only when
 * the table is full does it take the oldest idle key's slot in place (so probe chains stay
 * intact). NULL when every slot has spend in flight. Caller holds mu. */
static struct fleet_counter *counter_slot(struct fleet *f, const char *full, int64_t now)
{
    size_t h = (size_t)(hash_fnv1a(full, strlen(full)) % FLEET_MAX_COUNTERS);
    struct fleet_counter *c = NULL, *idle = NULL;
    for (size_t k = 0; k < FLEET_MAX_COUNTERS && !c; k++) {
        struct fleet_counter *s = &f->counters[(h + k) % FLEET_MAX_COUNTERS];
        if (!s->used || str_eq(s->key, full))
            c = s;
        else if (s->pending == 0 && s->inflight == 0 && (!idle || s->touched_ms < idle->touched_ms))
            idle = s;
    }
    if (c && c->used)
        return c;
    if (!c)
        c = idle;
    if (!c)
        return NULL;
    memset(c, 0, sizeof *c);
    c->used = true;
    str_copy(c->key, sizeof c->key, full);
    c->touched_ms = now;
    return c;
}

static void full_key(const struct fleet *f, const char *key, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s%.*s", f->prefix, FLEET_KEY_MAX - FLEET_PREFIX_MAX - 1, key);
}

void fleet_counter_add(struct fleet *f, const char *key, int64_t delta, int64_t ttl_s)
{
    char full[FLEET_KEY_MAX];
    full_key(f, key, full, sizeof full);
    int64_t now = clock_wall_ms();
    pthread_mutex_lock(&f->mu);
    struct fleet_counter *c = counter_slot(f, full, now);
    if (c) {
        c->pending += delta;
        c->ttl_s = ttl_s;
        c->touched_ms = now;
        f->st.pending_micro_usd += delta;
    }
    bool first_drop = !c && !f->counters_full_logged;
    if (first_drop)
        f->counters_full_logged = true;
    pthread_mutex_unlock(&f->mu);
    if (first_drop) /* once: a full table under load would flood the log */
        log_warn("fleet: counter table full (%d keys with spend in flight); %s not shared",
                 FLEET_MAX_COUNTERS, key);
}

int64_t fleet_counter_get(struct fleet *f, const char *key, int64_t *local_pending, bool *stale)
{
    char full[FLEET_KEY_MAX];
    full_key(f, key, full, sizeof full);
    int64_t now = clock_wall_ms();
    int64_t v = 0, mine = 0;
    pthread_mutex_lock(&f->mu);
    struct fleet_counter *c = counter_slot(f, full, now);
    if (c) {
        c->watched = true;
        c->touched_ms = now;
        mine = c->pending + c->inflight;
        v = c->remote + mine;
    }
    if (stale)
        *stale = !f->st.connected;
    pthread_mutex_unlock(&f->mu);
    if (local_pending)
        *local_pending = mine;
    return v;
}

/* ---- leases --------------------------------------------------------------------------------- */

static struct fleet_lease *lease_slot(struct fleet *f, const char *key)
{
    char full[FLEET_KEY_MAX];
    snprintf(full, sizeof full, "%srl:%.*s", f->prefix, FLEET_KEY_MAX - FLEET_PREFIX_MAX - 8, key);
    struct fleet_lease *free_slot = NULL;
    for (size_t i = 0; i < FLEET_MAX_LEASES; i++) {
        struct fleet_lease *l = &f->leases[i];
        if (l->used && str_eq(l->key, full))
            return l;
        if (!l->used && !free_slot)
            free_slot = l;
    }
    if (free_slot) {
        memset(free_slot, 0, sizeof *free_slot);
        free_slot->used = true;
        str_copy(free_slot->key, sizeof free_slot->key, full);
    }
    return free_slot;
}

bool fleet_lease_has(struct fleet *f, const char *key, int64_t n, int64_t per_minute, bool *stale)
{
    bool ok = false;
    pthread_mutex_lock(&f->mu);
    struct fleet_lease *l = lease_slot(f, key);
    bool down = !f->st.connected;
    if (l) {
        l->per_minute = per_minute;
        ok = l->balance >= n;
        int64_t lease = per_minute * FLEET_LEASE_MS / 60000;
        int64_t want = n > lease ? n : lease;
        if (l->balance < want && l->want < want)
            l->want = want; /* topped up in the background */
    }
    pthread_mutex_unlock(&f->mu);
    if (stale)
        *stale = down;
    return ok || !l; /* a full table: the fleet-wide limit does not hold back this key */
}

void fleet_lease_use(struct fleet *f, const char *key, int64_t n)
{
    pthread_mutex_lock(&f->mu);
    struct fleet_lease *l = lease_slot(f, key);
    if (l)
        l->balance -= n; /* below zero: a debt the next refills repay */
    pthread_mutex_unlock(&f->mu);
}

/* ---- concurrency pools ---------------------------------------------------------------------- */

static struct fleet_slot *slot_find(struct fleet *f, const char *key)
{
    char full[FLEET_KEY_MAX];
    snprintf(full, sizeof full, "%sconc:%.*s", f->prefix, FLEET_KEY_MAX - FLEET_PREFIX_MAX - 40,
             key);
    struct fleet_slot *free_slot = NULL;
    for (size_t i = 0; i < FLEET_MAX_POOLS; i++) {
        struct fleet_slot *s = &f->slots[i];
        if (s->used && str_eq(s->key, full))
            return s;
        if (!s->used && !free_slot)
            free_slot = s;
    }
    if (free_slot) {
        memset(free_slot, 0, sizeof *free_slot);
        free_slot->used = true;
        str_copy(free_slot->key, sizeof free_slot->key, full);
    }
    return free_slot;
}

bool fleet_slot_free(struct fleet *f, const char *key, long max, bool *stale)
{
    pthread_mutex_lock(&f->mu);
    struct fleet_slot *s = slot_find(f, key);
    bool down = !f->st.connected;
    bool ok = !s || s->in_use < s->granted;
    if (s) {
        s->max = max; /* the fleet thread asks for more when in_use + 1 > granted */
        if (!ok)
            s->active_ms = clock_wall_ms();
    }
    pthread_mutex_unlock(&f->mu);
    if (stale)
        *stale = down;
    return ok && !down;
}

void fleet_slot_take(struct fleet *f, const char *key)
{
    pthread_mutex_lock(&f->mu);
    struct fleet_slot *s = slot_find(f, key);
    if (s) {
        s->in_use++;
        s->active_ms = clock_wall_ms();
    }
    pthread_mutex_unlock(&f->mu);
}

void fleet_slot_give(struct fleet *f, const char *key)
{
    pthread_mutex_lock(&f->mu);
    struct fleet_slot *s = slot_find(f, key);
    if (s && s->in_use > 0)
        s->in_use--;
    pthread_mutex_unlock(&f->mu);
}

/* ---- notices ----------------------------------------------------------------------------------
 */

void fleet_post(struct fleet *f, enum fleet_notice_kind kind, const char *target, const char *body,
                int64_t expire_wall_ms, struct fleet_store *stores, size_t n_store)
{
    struct fleet_out *o = xcalloc(1, sizeof *o);
    o->kind = kind;
    str_copy(o->target, sizeof o->target, target ? target : "");
    o->body = xstrdup(body ? body : "");
    o->expire_wall_ms = expire_wall_ms;
    for (size_t i = 0; i < n_store; i++) {
        if (o->n_store < FLEET_MAX_STORES)
            o->stores[o->n_store++] = stores[i];
        else
            free(stores[i].value);
    }
    struct fleet_out *dropped = NULL;
    pthread_mutex_lock(&f->mu);
    if (f->out_tail)
        f->out_tail->next = o;
    else
        f->out_head = o;
    f->out_tail = o;
    if (++f->n_out > FLEET_MAX_OUTBOX) {
        dropped = f->out_head;
        f->out_head = dropped->next;
        f->n_out--;
        f->out_dropped++;
    }
    pthread_mutex_unlock(&f->mu);
    fleet_out_free(dropped);
}

void fleet_push_notice_locked(struct fleet *f, enum fleet_notice_kind kind, const char *origin,
                              const char *body, size_t len)
{
    if (f->n_in >= FLEET_MAX_INBOX)
        return; /* the router has not taken them for a while: it catches up from the hash */
    struct fleet_notice *n = xcalloc(1, sizeof *n);
    n->kind = kind;
    str_copy(n->origin, sizeof n->origin, origin);
    n->body = xstrndup(body, len);
    if (f->in_tail)
        f->in_tail->next = n;
    else
        f->in_head = n;
    f->in_tail = n;
    f->n_in++;
    f->st.notices_received++;
}

struct fleet_notice *fleet_take_notices(struct fleet *f)
{
    pthread_mutex_lock(&f->mu);
    struct fleet_notice *n = f->in_head;
    f->in_head = f->in_tail = NULL;
    f->n_in = 0;
    pthread_mutex_unlock(&f->mu);
    return n;
}

/* ---- heartbeat and status ---------------------------------------------------------------------
 */

void fleet_set_heartbeat(struct fleet *f, const char *json)
{
    char *copy = xstrdup(json);
    pthread_mutex_lock(&f->mu);
    char *old = f->heartbeat;
    f->heartbeat = copy;
    pthread_mutex_unlock(&f->mu);
    free(old);
}

void fleet_get_status(struct fleet *f, struct fleet_status *out)
{
    pthread_mutex_lock(&f->mu);
    *out = f->st;
    pthread_mutex_unlock(&f->mu);
}
