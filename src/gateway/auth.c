/*
 * auth.c - client keys on the gateway's request path (clients.h has the decision itself):
 *
 *   conn_start (headers in)  -> gw_auth_refused: 401 on /v1/ without a valid key;
 *   chat_submit (body in)    -> gw_auth_admit: 403 for a route the key may not use, 429 over
 *                               its rpm/tpm or budget; the tag and key name the call carries;
 *   chat_on_done             -> gw_auth_note_done: the call's tokens and cost;
 *   /metrics                 -> gw_auth_metrics: per key counters (labels: key names only).
 *
 * Keys come from the config's clients[] (at gateway_new and gateway_reload, on SIGHUP) and
 * the ledger's client_keys table, re-read when its fingerprint changes: the offload pool
 * (offload.c) checks it every GW_KEYS_POLL_MS, so a key another process adds or revokes is
 * in effect within about a second, and the request path only looks keys up in memory (no
 * ledger read: with MHD on the router's loop one would stall every stream). An admin API
 * change or a reload re-reads at once.
 *
 * Threads: MHD threads (refused, admit), the offload pool (poll, metrics, admin keys) and the
 * router thread (note_done); the main thread for init, reload and cleanup. The key set locks
 * itself; gw->keys_mu guards the config's keys (copied out under it, never used under it);
 * gw->keys_refresh_mu makes one refresh at a time (held across the ledger read and
 * clients_set: it guards nothing else and no other lock is taken before it) and guards
 * keys_fp.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "switchboard/log.h"

/* ---- loading ------------------------------------------------------------------------------ */

static void key_from_config(const struct config *cfg, const struct config_client *cc,
                            struct clients_key *k)
{
    memset(k, 0, sizeof *k);
    str_copy(k->name, sizeof k->name, cc->name);
    clients_hash_parse(cc->key_sha256, k->sha256); /* validated at load */
    for (size_t i = 0; i < cc->n_routes; i++)
        clients_key_add_route(k, cfg->routes[cc->routes[i]].name);
    k->tag = xstrdup(cc->tag);
    k->self_tag = cc->self_tag;
    k->daily_usd = cc->daily_usd;
    k->monthly_usd = cc->monthly_usd;
    k->rpm = cc->rpm;
    k->tpm = cc->tpm;
    k->expires_ms = cc->expires_ms;
    k->from_config = true;
}

static void seed_one(void *ctx, const char *name, double day_usd, double month_usd)
{
    struct gateway *gw = ctx;
    clients_seed_spend(gw->clients, name, clock_wall_ms(), day_usd, month_usd);
}

static void key_list_free(struct gw_key_list *l)
{
    ledger_keys_free(l->keys, l->n);
    for (size_t i = 0; i < l->n_tags; i++)
        free(l->tags[i]);
    free(l->tags);
    memset(l, 0, sizeof *l);
}

/* A copy of the config's keys and budget tags (a reload may swap them meanwhile). */
static void config_keys_copy(struct gateway *gw, struct gw_key_list *out)
{
    pthread_mutex_lock(&gw->keys_mu);
    out->n = gw->cfg.n;
    out->keys = xcalloc(out->n ? out->n : 1, sizeof *out->keys);
    for (size_t i = 0; i < out->n; i++)
        clients_key_copy(&out->keys[i], &gw->cfg.keys[i]);
    out->n_tags = gw->cfg.n_tags;
    out->tags = xcalloc(out->n_tags ? out->n_tags : 1, sizeof *out->tags);
    for (size_t i = 0; i < out->n_tags; i++)
        out->tags[i] = xstrdup(gw->cfg.tags[i]);
    pthread_mutex_unlock(&gw->keys_mu);
}

struct clients_key *gw_auth_config_keys(struct gateway *gw, size_t *n)
{
    struct gw_key_list l;
    config_keys_copy(gw, &l);
    for (size_t i = 0; i < l.n_tags; i++)
        free(l.tags[i]);
    free(l.tags);
    *n = l.n;
    return l.keys;
}

/* Config keys first (they win a name clash), then the ledger's. Caller is the refresher. */
static void apply_keys(struct gateway *gw, struct clients_key *db, size_t n_db)
{
    struct gw_key_list cfg;
    config_keys_copy(gw, &cfg);
    size_t n = cfg.n + n_db;
    struct clients_key *all = xcalloc(n ? n : 1, sizeof *all);
    size_t k = 0;
    for (size_t i = 0; i < cfg.n; i++)
        all[k++] = cfg.keys[i]; /* shallow: clients_set copies */
    for (size_t i = 0; i < n_db; i++) {
        bool clash = false;
        for (size_t j = 0; j < cfg.n; j++)
            clash |= str_eq(cfg.keys[j].name, db[i].name);
        if (clash)
            log_warn("gateway: ledger key '%s' ignored: clients[] has a key of that name",
                     db[i].name);
        else
            all[k++] = db[i];
    }
    if (n_db > 0)
        clients_require(gw->clients);
    if (k > CLIENTS_MAX)
        log_warn("gateway: %zu client keys; only the first %d are used", k, CLIENTS_MAX);
    clients_set(gw->clients, all, k, (const char *const *)cfg.tags, cfg.n_tags);
    free(all);
    key_list_free(&cfg);
}

/* Re-reads the ledger's keys when they changed (or force). Any thread but one at a time. */
static void refresh(struct gateway *gw, bool force)
{
    char msg[256] = "";
    uint64_t fp = 0;
    struct clients_key *db = NULL;
    size_t n = 0;
    if (ledger_keys_fingerprint(gw->ledger_path, &fp, msg, sizeof msg) != SB_OK) {
        log_warn("gateway: client keys: %s", msg);
        return;
    }
    if (!force && fp == gw->keys_fp)
        return;
    if (ledger_keys_load(gw->ledger_path, &db, &n, msg, sizeof msg) != SB_OK) {
        log_warn("gateway: client keys: %s", msg);
        return;
    }
    apply_keys(gw, db, n);
    ledger_keys_free(db, n);
    gw->keys_fp = fp;
}

/* A forced reload (admin change, SIGHUP) waits for a poll under way, then re-reads, so it is
 * in effect when this returns. */
void gw_auth_reload(struct gateway *gw)
{
    pthread_mutex_lock(&gw->keys_refresh_mu);
    refresh(gw, true);
    pthread_mutex_unlock(&gw->keys_refresh_mu);
}

void gw_auth_poll(struct gateway *gw)
{
    pthread_mutex_lock(&gw->keys_refresh_mu);
    refresh(gw, false);
    pthread_mutex_unlock(&gw->keys_refresh_mu);
}

/* The config's clients[] as keys, and the tags its budgets name. */
static void config_keys_from(const struct config *cfg, struct gw_key_list *out)
{
    out->n = cfg->n_clients;
    out->keys = xcalloc(cfg->n_clients ? cfg->n_clients : 1, sizeof *out->keys);
    for (size_t i = 0; i < cfg->n_clients; i++)
        key_from_config(cfg, &cfg->clients[i], &out->keys[i]);
    out->n_tags = 0;
    out->tags = xcalloc(cfg->n_budgets ? cfg->n_budgets : 1, sizeof *out->tags);
    for (size_t i = 0; i < cfg->n_budgets; i++) {
        if (cfg->budgets[i].scope == BUDGET_TAG && cfg->budgets[i].name)
            out->tags[out->n_tags++] = xstrdup(cfg->budgets[i].name);
    }
}

void gw_auth_init(struct gateway *gw, const struct config *cfg)
{
    pthread_mutex_init(&gw->keys_mu, NULL);
    pthread_mutex_init(&gw->keys_refresh_mu, NULL);
    gw->clients = clients_new();
    clients_set_fleet(gw->clients, router_fleet(gw->rt)); /* NULL: fleet mode off */
    gw->ledger_path = xstrdup(cfg->ledger.path);
    config_keys_from(cfg, &gw->cfg);
    refresh(gw, true);
    char msg[256] = "";
    if (clients_required(gw->clients) &&
        ledger_keys_spend(gw->ledger_path, clock_wall_ms(), seed_one, gw, msg, sizeof msg) != SB_OK)
        log_warn("gateway: client keys: spend not rebuilt: %s", msg);
}

void gateway_reload(struct gateway *gw, const struct config *cfg)
{
    struct gw_key_list fresh, old;
    config_keys_from(cfg, &fresh);
    pthread_mutex_lock(&gw->keys_mu);
    old = gw->cfg;
    gw->cfg = fresh;
    pthread_mutex_unlock(&gw->keys_mu);
    key_list_free(&old);
    gw_auth_reload(gw);
    gw_quality_configure(gw, cfg);
    gw_users_configure(gw, cfg);
}

void gw_auth_cleanup(struct gateway *gw)
{
    key_list_free(&gw->cfg);
    free(gw->ledger_path);
    clients_free(gw->clients);
    pthread_mutex_destroy(&gw->keys_mu);
    pthread_mutex_destroy(&gw->keys_refresh_mu);
}

/* ---- the request path --------------------------------------------------------------------- */

bool gw_auth_refused(struct gw_conn *c, enum MHD_Result *result)
{
    struct gateway *gw = c->gw;
    if (!str_has_prefix(c->path, "/v1/"))
        return false;
    if (!clients_required(gw->clients) || gw_admin_direct_call(c))
        return false; /* an operator's direct call carries the admin token instead */
    struct clients_decision d;
    clients_authenticate(gw->clients,
                         MHD_lookup_connection_value(c->mc, MHD_HEADER_KIND, "Authorization"),
                         clock_wall_ms(), &d);
    if (d.verdict == CLIENTS_OK) {
        str_copy(c->client, sizeof c->client, d.name);
        return false;
    }
    struct gw_error e;
    gw_error_set(&e, 401, "invalid_request_error", "invalid_api_key", "%s", d.message);
    const char *hdrs[] = {"WWW-Authenticate", "Bearer", NULL};
    log_debug("gateway: %s %s %s -> 401 client key %s%s%s", c->request_id, c->method, c->path,
              clients_verdict_name(d.verdict), d.name[0] ? " for " : "", d.name);
    *result = gw_respond_error(c, &e, hdrs);
    return true;
}

bool gw_auth_admit(struct gw_conn *c, const char *model, struct gw_error *e)
{
    if (!c->client[0])
        return true; /* client keys are off */
    struct clients_decision d;
    str_copy(d.name, sizeof d.name, c->client);
    clients_admit(c->gw->clients, model, c->tag, clock_wall_ms(), &d);
    if (d.verdict == CLIENTS_OK) {
        free(c->call_tag);
        c->call_tag = xstrdup(d.tag);
        if (d.tag_ignored)
            log_debug("gateway: %s client key %s: x-switchboard-tag not honoured, tag %s",
                      c->request_id, c->client, d.tag);
        return true;
    }
    int status = clients_verdict_status(d.verdict);
    gw_error_set(e, status, status == 403 ? "invalid_request_error" : "rate_limit_exceeded",
                 status == 403                 ? "model_not_allowed"
                 : d.verdict == CLIENTS_BUDGET ? "budget_exceeded"
                                               : "rate_limit_exceeded",
                 "%s", d.message);
    if (d.retry_after_ms > 0)
        e->retry_after_s = (d.retry_after_ms + 999) / 1000;
    return false;
}

void gw_auth_note_done(struct gw_conn *c, const struct router_result *r)
{
    if (!c->client[0])
        return;
    long tokens = r->usage.present ? r->usage.input_tokens + r->usage.output_tokens : 0;
    clients_note_done(c->gw->clients, c->client, clock_wall_ms(), tokens, r->spend_usd);
}

/* ---- /metrics ----------------------------------------------------------------------------- */

static void family(struct buf *out, const char *name, const char *type, const char *help)
{
    buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void sample(struct buf *out, const char *name, const struct clients_stats *s,
                   const char *reason, double v)
{
    buf_printf(out, "%s{client=\"", name);
    gw_prom_label(out, s->name);
    if (reason)
        buf_printf(out, "\",reason=\"%s", reason);
    buf_puts(out, "\"} ");
    buf_printf(out, "%.17g\n", v);
}

void gw_auth_metrics(struct gateway *gw, struct buf *out)
{
    if (!clients_required(gw->clients))
        return;
    static const enum clients_verdict refusals[] = {CLIENTS_ROUTE, CLIENTS_RATE, CLIENTS_BUDGET};
    static const enum clients_verdict failures[] = {CLIENTS_MISSING, CLIENTS_INVALID,
                                                    CLIENTS_EXPIRED, CLIENTS_REVOKED};
    struct clients_stats *st = xcalloc(CLIENTS_MAX, sizeof *st);
    uint64_t fails[CLIENTS_VERDICT_COUNT];
    size_t n = clients_stats(gw->clients, clock_wall_ms(), st, CLIENTS_MAX, fails);
    family(out, "switchboard_client_requests_total", "counter",
           "Chat requests admitted per client key.");
    for (size_t i = 0; i < n; i++)
        sample(out, "switchboard_client_requests_total", &st[i], NULL, (double)st[i].admitted);
    family(out, "switchboard_client_refused_total", "counter",
           "Requests of a valid client key refused: route (403), rate or budget (429).");
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < SB_ARRAY_LEN(refusals); k++)
            sample(out, "switchboard_client_refused_total", &st[i],
                   clients_verdict_name(refusals[k]), (double)st[i].refused[refusals[k]]);
    }
    family(out, "switchboard_client_tokens_total", "counter", "Tokens used per client key.");
    for (size_t i = 0; i < n; i++)
        sample(out, "switchboard_client_tokens_total", &st[i], NULL, (double)st[i].tokens);
    family(out, "switchboard_client_spend_usd_total", "counter",
           "Spend per client key since start, USD.");
    for (size_t i = 0; i < n; i++)
        sample(out, "switchboard_client_spend_usd_total", &st[i], NULL, st[i].spend_usd);
    family(out, "switchboard_client_auth_failures_total", "counter",
           "/v1/ requests refused with 401, by reason (no key name: unknown keys add no label).");
    for (size_t k = 0; k < SB_ARRAY_LEN(failures); k++)
        buf_printf(out, "switchboard_client_auth_failures_total{reason=\"%s\"} %llu\n",
                   clients_verdict_name(failures[k]), (unsigned long long)fails[failures[k]]);
    free(st);
}
