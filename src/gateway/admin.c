/*
 * admin.c - the admin API under /admin/, behind "Authorization: Bearer <token>" (the tokens
 * below; without any every /admin/ path is 404).
 *
 *   GET  /admin/state                          snapshot: targets (every field), routes, events
 *   GET  /admin/targets/{name}                 one target
 *   POST /admin/targets/{name}/weight          {"weight": N, "expires_in_s": N?}
 *   POST /admin/targets/{name}/force-live|pin|drain|reset|probe|clear   {"expires_in_s": N}?
 *   POST /admin/undo                           {"undo_id": N}? undo the newest change (only
 *                                              the one previewed, when undo_id is given)
 *   GET  /admin/explain?model=M&tag=T&prompt_tokens=N   {"explain": "..."}
 *   GET  /admin/keys, POST /admin/keys, POST /admin/keys/{name}/revoke   (admin_keys.c)
 *   GET  /admin/events                         the event timeline as SSE (admin_events.c)
 *   GET  /admin/requests/{x-request-id}        one call from the ledger (admin_requests.c)
 *   GET  /admin/quality/{target}               its last hour's quality (admin_quality.c)
 *   POST /admin/votes                          {"winner": N, "losers": [N...], "prompt": T?}
 *
 * Tokens: gateway.admin_token_env's (named "admin") and every gateway.admin_tokens[] entry
 * with a value. Commands go through router_command with the user "<token name>:<login>"
 * (X-Switchboard-User, sent by attached consoles) or "<token name>@<client address>", the
 * same command path as the console's keys; the router records each as an audit event.
 *
 * Threads: the offload pool (offload.c), never an MHD thread: router_command and router_explain
 * wait for the router thread (up to GW_ADMIN_TIMEOUT_MS), which may be the thread that runs
 * the HTTP daemon. Admin calls are rare and the router answers in well under that.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "internal.h"
#include "switchboard/log.h"

#define GW_ADMIN_TIMEOUT_MS 2000

struct admin_action {
    const char *name;
    enum router_cmd_type type;
};

static const struct admin_action actions[] = {
    {"weight", ROUTER_CMD_SET_WEIGHT}, {"force-live", ROUTER_CMD_FORCE_LIVE},
    {"pin", ROUTER_CMD_PIN},           {"drain", ROUTER_CMD_DRAIN},
    {"reset", ROUTER_CMD_RESET},       {"probe", ROUTER_CMD_PROBE_NOW},
    {"clear", ROUTER_CMD_CLEAR},
};

/* Compares in time that depends only on the expected token's length. */
static bool token_equal(const char *given, const char *expected)
{
    size_t gl = strlen(given), el = strlen(expected);
    volatile unsigned char diff = (unsigned char)(gl != el);
    for (size_t i = 0; i < el; i++) {
        unsigned char g = i < gl ? (unsigned char)given[i] : 0;
        diff |= (unsigned char)(g ^ (unsigned char)expected[i]);
    }
    return diff == 0;
}

void gw_admin_setup(struct gateway *gw, const struct config_gateway *g)
{
    gw->admin_token = g->admin_token && *g->admin_token ? xstrdup(g->admin_token) : NULL;
    gw->admin_tokens = xcalloc(g->n_admin_tokens + 1, sizeof *gw->admin_tokens);
    for (size_t i = 0; i < g->n_admin_tokens; i++) {
        const struct config_admin_token *t = &g->admin_tokens[i];
        if (!t->token || !*t->token)
            continue;
        struct gw_admin_token *d = &gw->admin_tokens[gw->n_admin_tokens++];
        str_copy(d->name, sizeof d->name, t->name);
        d->token = xstrdup(t->token);
    }
}

static void free_secret(char *s)
{
    if (s) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

void gw_admin_cleanup(struct gateway *gw)
{
    gw_events_free(gw);
    for (size_t i = 0; i < gw->n_admin_tokens; i++)
        free_secret(gw->admin_tokens[i].token);
    free(gw->admin_tokens);
    gw->admin_tokens = NULL;
    gw->n_admin_tokens = 0;
    free_secret(gw->admin_token);
    gw->admin_token = NULL;
}

const char *gw_admin_token_name(const struct gateway *gw, const char *authorization)
{
    if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0)
        return NULL;
    const char *given = authorization + 7;
    while (*given == ' ')
        given++;
    const char *found = NULL;
    /* Every token is compared, so the time does not say which one matched. */
    if (gw->admin_token && token_equal(given, gw->admin_token))
        found = "admin";
    for (size_t i = 0; i < gw->n_admin_tokens; i++) {
        if (token_equal(given, gw->admin_tokens[i].token) && !found)
            found = gw->admin_tokens[i].name;
    }
    return found;
}

bool gw_admin_direct_call(struct gw_conn *c)
{
    const char *t = MHD_lookup_connection_value(c->mc, MHD_HEADER_KIND, "X-Switchboard-Target");
    const char *tok =
        MHD_lookup_connection_value(c->mc, MHD_HEADER_KIND, "X-Switchboard-Admin-Token");
    if (!t || !*t || !tok)
        return false;
    char *auth = xasprintf("Bearer %s", tok);
    bool ok = gw_admin_token_name(c->gw, auth) != NULL;
    explicit_bzero(auth, strlen(auth));
    free(auth);
    return ok;
}

int gw_admin_check_auth(struct gw_conn *c, const char *authorization)
{
    if (!c->gw->admin_token && c->gw->n_admin_tokens == 0)
        return 404;
    const char *name = gw_admin_token_name(c->gw, authorization);
    if (!name)
        return 401;
    str_copy(c->admin_name, sizeof c->admin_name, name);
    return 0;
}

/* Who acted, for the audit: the token's name and the operator login the console sends
 * (X-Switchboard-User, cleaned to [A-Za-z0-9._@-]), else the client address. */
static void admin_who(struct gw_conn *c, char *out, size_t outlen)
{
    const char *user = MHD_lookup_connection_value(c->mc, MHD_HEADER_KIND, "X-Switchboard-User");
    char login[40] = "";
    size_t k = 0;
    for (size_t i = 0; user && user[i] && k + 1 < sizeof login; i++) {
        char ch = user[i];
        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
            ch == '.' || ch == '_' || ch == '-' || ch == '@')
            login[k++] = ch;
    }
    login[k] = '\0';
    if (login[0]) {
        snprintf(out, outlen, "%.23s:%s", c->admin_name, login);
    } else {
        char addr[48];
        gw_client_addr(c, addr, sizeof addr);
        snprintf(out, outlen, "%.23s@%.39s", c->admin_name, addr);
    }
}

static int status_for(enum sb_status st)
{
    switch (st) {
    case SB_OK:
        return 200;
    case SB_ERR_NOT_FOUND:
        return 404;
    case SB_ERR_INVALID:
    case SB_ERR_PARSE:
    case SB_ERR_UNSUPPORTED:
    case SB_ERR_LIMIT:
        return 400;
    case SB_ERR_STATE:
        return 409;
    case SB_ERR_IO:
        return 503;
    }
    return 500;
}

static enum MHD_Result admin_error(struct gw_conn *c, int status, const char *msg)
{
    struct gw_error e;
    const char *type = status >= 500 ? "server_error" : "invalid_request_error";
    gw_error_set(&e, status, type, NULL, "%s", msg && *msg ? msg : "admin command failed");
    return gw_respond_error(c, &e, NULL);
}

static enum MHD_Result admin_state(struct gw_conn *c)
{
    struct router_snapshot *snap = gw_snapshot(c->gw);
    struct buf body;
    buf_init(&body);
    gw_state_json(snap, &body);
    free(snap);
    gw_quality_state_splice(c->gw, &body);
    return gw_respond(c, 200, "application/json", &body, NULL);
}

/* {"ok":true,"message":msg[,"target":{...}]} with the target's state after the command. */
static enum MHD_Result admin_ok(struct gw_conn *c, const char *msg, const char *target)
{
    /* The router publishes before it answers a command: this shows the command's effect. */
    struct router_snapshot *snap = gw_snapshot(c->gw);
    struct buf body;
    struct gw_json j;
    buf_init(&body);
    gw_json_init(&j, &body);
    gw_json_open(&j, NULL, '{');
    gw_json_bool(&j, "ok", true);
    gw_json_str(&j, "message", msg);
    for (size_t i = 0; target && i < snap->n_targets && i < ROUTER_MAX_TARGETS; i++) {
        if (str_eq(snap->targets[i].name, target))
            gw_target_json(&j, "target", &snap->targets[i]);
    }
    gw_json_close(&j, '}');
    free(snap);
    return gw_respond(c, 200, "application/json", &body, NULL);
}

static enum MHD_Result admin_target_get(struct gw_conn *c, const char *name)
{
    struct router_snapshot *snap = gw_snapshot(c->gw);
    const struct router_target_snap *t = NULL;
    for (size_t i = 0; i < snap->n_targets && i < ROUTER_MAX_TARGETS; i++) {
        if (str_eq(snap->targets[i].name, name))
            t = &snap->targets[i];
    }
    enum MHD_Result r;
    if (!t) {
        char msg[160];
        snprintf(msg, sizeof msg, "no target named \"%.60s\"", name);
        r = admin_error(c, 404, msg);
    } else {
        struct buf body;
        struct gw_json j;
        buf_init(&body);
        gw_json_init(&j, &body);
        gw_target_json(&j, NULL, t);
        r = gw_respond(c, 200, "application/json", &body, NULL);
    }
    free(snap);
    return r;
}

bool gw_admin_parse_cmd(const char *body, size_t len, bool need_weight, struct router_cmd *cmd,
                        char *msg, size_t msglen)
{
    bool ok = false;
    cJSON *root = len == 0 ? cJSON_CreateObject() : gw_json_parse_object(body, len);
    if (!root) {
        snprintf(msg, msglen, "request body: expected one JSON object");
        goto out;
    }
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(root, "weight");
    const cJSON *exp = cJSON_GetObjectItemCaseSensitive(root, "expires_in_s");
    const cJSON *uid = cJSON_GetObjectItemCaseSensitive(root, "undo_id");
    if (uid && !cJSON_IsNull(uid)) {
        if (!cJSON_IsNumber(uid) || !(uid->valuedouble >= 0) || uid->valuedouble > 9.0e15) {
            snprintf(msg, msglen, "undo_id: expected the id of the change to undo (an integer)");
            goto out;
        }
        cmd->undo_id = (uint64_t)uid->valuedouble;
    }
    if (need_weight) {
        if (!cJSON_IsNumber(w) || !isfinite(w->valuedouble) || w->valuedouble < 0 ||
            w->valuedouble > 1e6) {
            snprintf(msg, msglen, "weight: expected a number from 0 to 1000000");
            goto out;
        }
        cmd->weight = w->valuedouble;
    }
    if (exp && !cJSON_IsNull(exp)) {
        if (!cJSON_IsNumber(exp) || !isfinite(exp->valuedouble) || exp->valuedouble < 0 ||
            exp->valuedouble > 365.0 * 86400) {
            snprintf(msg, msglen, "expires_in_s: expected a number of seconds >= 0");
            goto out;
        }
        cmd->expires_ms = (int64_t)(exp->valuedouble * 1000.0);
    }
    ok = true;
out:
    cJSON_Delete(root);
    return ok;
}

static enum MHD_Result admin_command(struct gw_conn *c, enum router_cmd_type type,
                                     const char *target)
{
    struct router_cmd cmd;
    char msg[256] = "";
    memset(&cmd, 0, sizeof cmd);
    cmd.type = type;
    if (target && strlen(target) >= sizeof cmd.target) {
        snprintf(msg, sizeof msg, "no target named \"%.60s...\"", target);
        return admin_error(c, 404, msg);
    }
    str_copy(cmd.target, sizeof cmd.target, target ? target : "");
    admin_who(c, cmd.user, sizeof cmd.user);
    if (!gw_admin_parse_cmd(c->body.data, c->body.len, type == ROUTER_CMD_SET_WEIGHT, &cmd, msg,
                            sizeof msg))
        return admin_error(c, 400, msg);
    enum sb_status st = router_command(c->gw->rt, &cmd, msg, sizeof msg, GW_ADMIN_TIMEOUT_MS);
    log_info("gateway: %s %s %s -> %s%s%s", cmd.user, c->method, c->path, sb_strerror(st),
             msg[0] ? ": " : "", msg);
    if (st != SB_OK)
        return admin_error(c, status_for(st), msg);
    return admin_ok(c, msg, target);
}

static enum MHD_Result admin_explain(struct gw_conn *c)
{
    const char *model = MHD_lookup_connection_value(c->mc, MHD_GET_ARGUMENT_KIND, "model");
    const char *tag = MHD_lookup_connection_value(c->mc, MHD_GET_ARGUMENT_KIND, "tag");
    const char *pt = MHD_lookup_connection_value(c->mc, MHD_GET_ARGUMENT_KIND, "prompt_tokens");
    long tokens = 0;
    if (!model || !*model)
        return admin_error(c, 400, "model: required (?model=NAME)");
    if (pt && *pt && (!str_to_long(pt, &tokens) || tokens < 0))
        return admin_error(c, 400, "prompt_tokens: expected an integer >= 0");
    struct buf text, body;
    buf_init(&text);
    buf_init(&body);
    enum sb_status st = router_explain(c->gw->rt, model, tag && *tag ? tag : NULL, tokens, &text,
                                       GW_ADMIN_TIMEOUT_MS);
    enum MHD_Result r;
    if (st != SB_OK) {
        r = admin_error(c, status_for(st), text.len ? buf_str(&text) : sb_strerror(st));
    } else {
        struct gw_json j;
        gw_json_init(&j, &body);
        gw_json_open(&j, NULL, '{');
        gw_json_strn(&j, "explain", buf_str(&text), text.len);
        gw_json_close(&j, '}');
        r = gw_respond(c, 200, "application/json", &body, NULL);
    }
    buf_cleanup(&text);
    buf_cleanup(&body);
    return r;
}

/* {"winner": NAME, "losers": [NAME...], "prompt": TEXT?} -> router_record_vote. */
static enum MHD_Result admin_votes(struct gw_conn *c)
{
    enum MHD_Result r;
    cJSON *root = cJSON_ParseWithLength(c->body.data ? c->body.data : "", c->body.len);
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(root, "winner");
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(root, "losers");
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "prompt");
    const char *losers[8];
    size_t n = 0;
    bool ok = cJSON_IsString(w) && *w->valuestring && strlen(w->valuestring) < 64 &&
              cJSON_IsArray(l) && (!p || cJSON_IsNull(p) || cJSON_IsString(p));
    const cJSON *it, *list = ok ? l : NULL;
    cJSON_ArrayForEach(it, list)
    {
        if (!cJSON_IsString(it) || strlen(it->valuestring) >= 64 || n == SB_ARRAY_LEN(losers))
            ok = false;
        else
            losers[n++] = it->valuestring;
    }
    if (!ok || n == 0) {
        r = admin_error(c, 400,
                        "expected {\"winner\": NAME, \"losers\": [NAME, ...] (1 to 8), "
                        "\"prompt\": TEXT?}");
    } else {
        char who[64];
        admin_who(c, who, sizeof who);
        const char *prompt = p && cJSON_IsString(p) ? p->valuestring : NULL;
        router_record_vote(c->gw->rt, w->valuestring, losers, n, prompt, who);
        log_info("gateway: %s vote for %s", who, w->valuestring);
        r = admin_ok(c, "vote recorded", NULL);
    }
    cJSON_Delete(root);
    return r;
}

static enum MHD_Result bad_method(struct gw_conn *c, const char *allow)
{
    struct gw_error e;
    const char *hdrs[] = {"Allow", allow, NULL};
    gw_error_set(&e, 405, "invalid_request_error", "method_not_allowed", "%.200s only accepts %s",
                 c->path, allow);
    return gw_respond_error(c, &e, hdrs);
}

/* /admin/targets/{name}[/{action}] */
static enum MHD_Result admin_targets(struct gw_conn *c, const char *rest, bool get)
{
    char name[256];
    const char *slash = strchr(rest, '/');
    size_t nl = slash ? (size_t)(slash - rest) : strlen(rest);
    if (nl == 0 || nl >= sizeof name)
        return admin_error(c, 404, "unknown admin path");
    memcpy(name, rest, nl);
    name[nl] = '\0';
    if (!slash || slash[1] == '\0')
        return get ? admin_target_get(c, name) : bad_method(c, "GET");
    for (size_t i = 0; i < SB_ARRAY_LEN(actions); i++) {
        if (str_eq(slash + 1, actions[i].name))
            return get ? bad_method(c, "POST") : admin_command(c, actions[i].type, name);
    }
    return admin_error(c, 404,
                       "unknown admin action (weight, force-live, pin, drain, reset, "
                       "probe, clear)");
}

enum MHD_Result gw_admin_run(struct gw_conn *c)
{
    const char *rest = c->path + strlen("/admin/");
    bool get = str_eq(c->method, "GET");
    bool post = str_eq(c->method, "POST");
    if (str_eq(rest, "users") || str_has_prefix(rest, "users/"))
        return gw_admin_users(c, rest + strlen("users")); /* PUT and DELETE too */
    if (!get && !post)
        return bad_method(c, "GET, POST");
    if (str_eq(rest, "state"))
        return get ? admin_state(c) : bad_method(c, "GET");
    if (str_eq(rest, "explain"))
        return get ? admin_explain(c) : bad_method(c, "GET");
    if (str_eq(rest, "events"))
        return get ? gw_admin_events(c) : bad_method(c, "GET");
    if (str_eq(rest, "votes"))
        return post ? admin_votes(c) : bad_method(c, "POST");
    if (str_eq(rest, "undo"))
        return post ? admin_command(c, ROUTER_CMD_UNDO, NULL) : bad_method(c, "POST");
    if (str_eq(rest, "keys") || str_has_prefix(rest, "keys/"))
        return gw_admin_keys(c, rest + strlen("keys"));
    if (str_has_prefix(rest, "targets/"))
        return admin_targets(c, rest + strlen("targets/"), get);
    if (str_has_prefix(rest, "requests/"))
        return get ? gw_admin_requests(c, rest + strlen("requests/")) : bad_method(c, "GET");
    if (str_has_prefix(rest, "quality/"))
        return get ? gw_admin_quality(c, rest + strlen("quality/")) : bad_method(c, "GET");
    return admin_error(c, 404, "unknown admin path");
}

long gateway_connections(struct gateway *gw)
{
    if (!gw)
        return 0;
    pthread_mutex_lock(&gw->lock);
    long n = gw->stats.connections[0]; /* the API listener's (limits.c counts them) */
    pthread_mutex_unlock(&gw->lock);
    return n;
}
