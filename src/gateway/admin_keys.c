/*
 * admin_keys.c - client keys through the admin API (behind the admin token like every
 * /admin/ path):
 *
 *   GET  /admin/keys                {"keys":[{name, source, routes, tag, self_tag, caps,
 *                                    limits, expires, created, revoked, usage...}]}
 *   POST /admin/keys                {"name", "routes"?, "tag"?, "self_tag"?, "daily_usd"?,
 *                                    "monthly_usd"?, "rpm"?, "tpm"?, "expires"? | "expires_in_s"?}
 *                                   -> 201 {"name", "key", "key_sha256"}: the key is shown
 *                                   once here and stored nowhere (only its SHA-256)
 *   POST /admin/keys/{name}/revoke  -> 200
 *
 * Keys added here live in the ledger's client_keys table (ledger.h), like those of
 * `switchboard keys add`; a change reloads the gateway's key set at once. Keys of the
 * config's clients[] are listed (source "config") but changed only in the config.
 *
 * Threads: the offload pool (offload.c); the ledger calls open their own connection.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <openssl/crypto.h>

#include "internal.h"
#include "switchboard/ledger.h"
#include "switchboard/log.h"

static enum MHD_Result keys_error(struct gw_conn *c, int status, const char *msg)
{
    struct gw_error e;
    gw_error_set(&e, status, status >= 500 ? "server_error" : "invalid_request_error", NULL, "%s",
                 msg);
    return gw_respond_error(c, &e, NULL);
}

static int status_for(enum sb_status st)
{
    switch (st) {
    case SB_OK:
        return 200;
    case SB_ERR_INVALID:
    case SB_ERR_PARSE:
    case SB_ERR_LIMIT:
        return 400;
    case SB_ERR_NOT_FOUND:
        return 404;
    case SB_ERR_STATE:
    case SB_ERR_UNSUPPORTED:
        return 409;
    case SB_ERR_IO:
        return 500;
    }
    return 500;
}

/* ---- list --------------------------------------------------------------------------------- */

static void put_time(struct gw_json *j, const char *key, int64_t ms)
{
    char t[21];
    if (ms <= 0) {
        gw_json_null(j, key);
        return;
    }
    ledger_format_time(ms, t);
    gw_json_str(j, key, t);
}

static void put_key(struct gw_json *j, const struct clients_key *k, const struct clients_stats *s)
{
    gw_json_open(j, NULL, '{');
    gw_json_str(j, "name", k->name);
    gw_json_str(j, "source", k->from_config ? "config" : "ledger");
    gw_json_open(j, "routes", '[');
    for (size_t i = 0; i < k->n_routes; i++)
        gw_json_str(j, NULL, k->routes[i]);
    gw_json_close(j, ']');
    gw_json_str(j, "tag", clients_key_tag(k));
    gw_json_bool(j, "self_tag", k->self_tag);
    gw_json_num(j, "daily_usd", k->daily_usd);
    gw_json_num(j, "monthly_usd", k->monthly_usd);
    gw_json_int(j, "rpm", k->rpm);
    gw_json_int(j, "tpm", k->tpm);
    put_time(j, "expires", k->expires_ms);
    put_time(j, "created", k->created_ms);
    put_time(j, "revoked", k->revoked_ms);
    gw_json_uint(j, "requests", s ? s->admitted : 0);
    gw_json_uint(j, "tokens", s ? s->tokens : 0);
    gw_json_num(j, "spend_today_usd", s ? s->day_usd : 0);
    gw_json_num(j, "spend_month_usd", s ? s->month_usd : 0);
    gw_json_close(j, '}');
}

static const struct clients_stats *stats_of(const struct clients_stats *st, size_t n,
                                            const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (str_eq(st[i].name, name))
            return &st[i];
    }
    return NULL;
}

static enum MHD_Result keys_list(struct gw_conn *c)
{
    struct gateway *gw = c->gw;
    char msg[256] = "";
    struct clients_key *db = NULL;
    size_t n_db = 0;
    if (ledger_keys_load(gw->ledger_path, &db, &n_db, msg, sizeof msg) != SB_OK)
        return keys_error(c, 500, msg);
    struct clients_stats *st = xcalloc(CLIENTS_MAX, sizeof *st);
    size_t n = clients_stats(gw->clients, clock_wall_ms(), st, CLIENTS_MAX, NULL);
    size_t n_cfg = 0;
    struct clients_key *cfg = gw_auth_config_keys(gw, &n_cfg);
    struct buf body;
    buf_init(&body);
    struct gw_json j;
    gw_json_init(&j, &body);
    gw_json_open(&j, NULL, '{');
    gw_json_bool(&j, "required", clients_required(gw->clients));
    gw_json_open(&j, "keys", '[');
    for (size_t i = 0; i < n_cfg; i++)
        put_key(&j, &cfg[i], stats_of(st, n, cfg[i].name));
    for (size_t i = 0; i < n_db; i++)
        put_key(&j, &db[i], stats_of(st, n, db[i].name));
    gw_json_close(&j, ']');
    gw_json_close(&j, '}');
    buf_putc(&body, '\n');
    free(st);
    ledger_keys_free(cfg, n_cfg);
    ledger_keys_free(db, n_db);
    return gw_respond(c, 200, "application/json", &body, NULL);
}

/* ---- add ---------------------------------------------------------------------------------- */

static bool get_number(const cJSON *o, const char *key, double max, double *out, char *msg,
                       size_t msglen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v)
        return true;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < 0 ||
        v->valuedouble > max) {
        snprintf(msg, msglen, "%s: expected a number in 0..%g", key, max);
        return false;
    }
    *out = v->valuedouble;
    return true;
}

static bool parse_routes(const struct router_snapshot *snap, const cJSON *o, struct clients_key *k,
                         char *msg, size_t msglen)
{
    const cJSON *routes = cJSON_GetObjectItemCaseSensitive(o, "routes");
    if (!routes)
        return true;
    if (!cJSON_IsArray(routes)) {
        snprintf(msg, msglen, "routes: expected an array of route names");
        return false;
    }
    bool ok = true;
    const cJSON *r;
    cJSON_ArrayForEach(r, routes)
    {
        ok = cJSON_IsString(r) && gw_has_route(snap, r->valuestring);
        if (!ok) {
            snprintf(msg, msglen, "routes: expected names of configured routes");
            break;
        }
        clients_key_add_route(k, r->valuestring);
    }
    return ok;
}

static bool parse_tag(const cJSON *o, struct clients_key *k, char *msg, size_t msglen)
{
    const cJSON *tag = cJSON_GetObjectItemCaseSensitive(o, "tag");
    const cJSON *self = cJSON_GetObjectItemCaseSensitive(o, "self_tag");
    if (tag) {
        bool ok =
            cJSON_IsString(tag) && *tag->valuestring && strlen(tag->valuestring) <= CLIENTS_TAG_MAX;
        for (const char *p = ok ? tag->valuestring : ""; *p; p++)
            ok = ok && (unsigned char)*p > ' ' && *p != 0x7f;
        if (!ok) {
            snprintf(msg, msglen, "tag: expected 1..128 characters without spaces");
            return false;
        }
        k->tag = xstrdup(tag->valuestring);
    }
    if (self && !cJSON_IsBool(self)) {
        snprintf(msg, msglen, "self_tag: expected true or false");
        return false;
    }
    k->self_tag = cJSON_IsTrue(self);
    return true;
}

static bool parse_expiry(const cJSON *o, int64_t now_ms, struct clients_key *k, char *msg,
                         size_t msglen)
{
    const cJSON *exp = cJSON_GetObjectItemCaseSensitive(o, "expires");
    double in_s = 0;
    if (!get_number(o, "expires_in_s", 1e10, &in_s, msg, msglen))
        return false;
    if (exp && (!cJSON_IsString(exp) || !clients_parse_time(exp->valuestring, &k->expires_ms))) {
        snprintf(msg, msglen, "expires: expected \"2027-01-01\" or \"2027-01-01T12:00:00Z\"");
        return false;
    }
    if (in_s > 0)
        k->expires_ms = now_ms + (int64_t)(in_s * 1000);
    return true;
}

static bool parse_key(const struct router_snapshot *snap, int64_t now_ms, const cJSON *o,
                      struct clients_key *k, char *msg, size_t msglen)
{
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "name");
    double rpm = 0, tpm = 0;
    if (!cJSON_IsString(name) || !clients_name_is_valid(name->valuestring)) {
        snprintf(msg, msglen, "name: expected 1..64 letters, digits, '.', '_' and '-'");
        return false;
    }
    str_copy(k->name, sizeof k->name, name->valuestring);
    if (!get_number(o, "daily_usd", 1e12, &k->daily_usd, msg, msglen) ||
        !get_number(o, "monthly_usd", 1e12, &k->monthly_usd, msg, msglen) ||
        !get_number(o, "rpm", 1e12, &rpm, msg, msglen) ||
        !get_number(o, "tpm", 1e12, &tpm, msg, msglen))
        return false;
    k->rpm = (long)rpm;
    k->tpm = (long)tpm;
    return parse_routes(snap, o, k, msg, msglen) && parse_tag(o, k, msg, msglen) &&
           parse_expiry(o, now_ms, k, msg, msglen);
}

bool gw_admin_parse_key(const char *body, size_t len, const struct router_snapshot *snap,
                        int64_t now_ms, struct clients_key *k, char *msg, size_t msglen)
{
    cJSON *o = gw_json_parse_object(body, len);
    bool ok = false;
    if (!o)
        snprintf(msg, msglen, "expected one JSON object {\"name\": ...}");
    else
        ok = parse_key(snap, now_ms, o, k, msg, msglen);
    cJSON_Delete(o);
    return ok;
}

static bool in_config(struct gateway *gw, const char *name)
{
    size_t n = 0;
    struct clients_key *cfg = gw_auth_config_keys(gw, &n);
    bool found = false;
    for (size_t i = 0; i < n; i++)
        found |= str_eq(cfg[i].name, name);
    ledger_keys_free(cfg, n);
    return found;
}

static enum MHD_Result answer_added(struct gw_conn *c, const struct clients_key *k, const char *key)
{
    char hex[CLIENTS_HASH_HEX + 1];
    clients_hash_hex(k->sha256, hex);
    struct buf body;
    buf_init(&body);
    struct gw_json j;
    gw_json_init(&j, &body);
    gw_json_open(&j, NULL, '{');
    gw_json_str(&j, "name", k->name);
    gw_json_str(&j, "key", key);
    gw_json_str(&j, "key_sha256", hex);
    gw_json_close(&j, '}');
    buf_putc(&body, '\n');
    return gw_respond(c, 201, "application/json", &body, NULL);
}

/* Parses the body, makes a key and stores its hash; key gets the key itself. */
static enum sb_status create_key(struct gw_conn *c, struct clients_key *k, char *key, size_t keylen,
                                 char *msg, size_t msglen)
{
    struct router_snapshot *snap = gw_snapshot(c->gw);
    enum sb_status st = SB_ERR_INVALID;
    if (!gw_admin_parse_key(c->body.data ? c->body.data : "", c->body.len, snap, clock_wall_ms(), k,
                            msg, msglen)) {
        /* msg says why */
    } else if (in_config(c->gw, k->name)) {
        snprintf(msg, msglen, "clients[] of the config has a key named '%s'", k->name);
        st = SB_ERR_STATE;
    } else {
        st = clients_key_generate(key, keylen);
        if (st != SB_OK)
            snprintf(msg, msglen, "no random bytes for a key");
    }
    free(snap);
    if (st == SB_OK) {
        clients_sha256(key, strlen(key), k->sha256);
        st = ledger_keys_add(c->gw->ledger_path, k, clock_wall_ms(), msg, msglen);
    }
    return st;
}

static enum MHD_Result keys_add(struct gw_conn *c)
{
    char msg[256] = "", key[64] = "";
    struct clients_key k;
    memset(&k, 0, sizeof k);
    enum MHD_Result r;
    enum sb_status st = create_key(c, &k, key, sizeof key, msg, sizeof msg);
    if (st == SB_OK) {
        char who[64];
        gw_client_addr(c, who, sizeof who);
        log_info("admin: client key '%s' added by admin:%s", k.name, who);
        gw_auth_reload(c->gw);
        r = answer_added(c, &k, key);
    } else {
        r = keys_error(c, status_for(st), msg[0] ? msg : "cannot create a key");
    }
    OPENSSL_cleanse(key, sizeof key);
    clients_key_cleanup(&k);
    return r;
}

/* ---- revoke ------------------------------------------------------------------------------- */

static enum MHD_Result keys_revoke(struct gw_conn *c, const char *name)
{
    struct gateway *gw = c->gw;
    char msg[256] = "";
    if (in_config(gw, name))
        return keys_error(c, 409, "this key is in the config's clients[]: remove it there");
    enum sb_status st = ledger_keys_revoke(gw->ledger_path, name, clock_wall_ms(), msg, sizeof msg);
    if (st != SB_OK)
        return keys_error(c, status_for(st), msg);
    char who[64];
    gw_client_addr(c, who, sizeof who);
    log_info("admin: client key '%s' revoked by admin:%s", name, who);
    gw_auth_reload(gw);
    struct buf body;
    buf_init(&body);
    struct gw_json j;
    gw_json_init(&j, &body);
    gw_json_open(&j, NULL, '{');
    gw_json_bool(&j, "ok", true);
    gw_json_str(&j, "revoked", name);
    gw_json_close(&j, '}');
    buf_putc(&body, '\n');
    return gw_respond(c, 200, "application/json", &body, NULL);
}

enum MHD_Result gw_admin_keys(struct gw_conn *c, const char *rest)
{
    bool get = str_eq(c->method, "GET"), post = str_eq(c->method, "POST");
    if (*rest == '\0' || str_eq(rest, "/")) {
        if (get)
            return keys_list(c);
        return post ? keys_add(c) : keys_error(c, 405, "use GET or POST");
    }
    const char *name = rest + 1;
    const char *slash = strchr(name, '/');
    if (!slash || !str_eq(slash, "/revoke"))
        return keys_error(c, 404, "unknown admin path");
    if (!post)
        return keys_error(c, 405, "use POST");
    char nm[CLIENTS_NAME_MAX + 1];
    size_t len = (size_t)(slash - name);
    if (len == 0 || len > CLIENTS_NAME_MAX)
        return keys_error(c, 404, "no such key");
    memcpy(nm, name, len);
    nm[len] = '\0';
    if (!clients_name_is_valid(nm))
        return keys_error(c, 404, "no such key");
    return keys_revoke(c, nm);
}
