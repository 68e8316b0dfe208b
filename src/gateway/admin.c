/*
 * admin.c - the admin API under /admin/, behind "Authorization: Bearer <token>" (the value
 * of the variable gateway.admin_token_env names; without one every /admin/ path is 404).
 *
 *   GET  /admin/state                          snapshot: targets (every field), routes, events
 *   GET  /admin/targets/{name}                 one target
 *   POST /admin/targets/{name}/weight          {"weight": N, "expires_in_s": N?}
 *   POST /admin/targets/{name}/force-live|pin|drain|reset|probe|clear   {"expires_in_s": N}?
 *   POST /admin/undo                           undo the last override
 *   GET  /admin/explain?model=M&tag=T&prompt_tokens=N   {"explain": "..."}
 *   GET  /admin/keys, POST /admin/keys, POST /admin/keys/{name}/revoke   (admin_keys.c)
 *
 * Commands go through router_command (user "admin:<client address>"), the same command
 * path as the console's keys; the router records each as an audit event.
 *
 * Threads: MHD threads. router_command and router_explain wait for the router thread (up to
 * GW_ADMIN_TIMEOUT_MS); admin calls are rare and the router answers in well under that.
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

int gw_admin_check_auth(struct gw_conn *c, const char *authorization)
{
    const char *token = c->gw->admin_token;
    if (!token)
        return 404;
    if (!authorization || strncasecmp(authorization, "Bearer ", 7) != 0)
        return 401;
    const char *given = authorization + 7;
    while (*given == ' ')
        given++;
    return token_equal(given, token) ? 0 : 401;
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
    cJSON *root = NULL;
    const char *end = NULL;
    if (len == 0) {
        root = cJSON_CreateObject();
    } else {
        root = cJSON_ParseWithLengthOpts(body, len, &end, false);
        while (root && end && end < body + len && *end && strchr(" \t\r\n", *end))
            end++;
        if (!cJSON_IsObject(root) || end != body + len) {
            snprintf(msg, msglen, "request body: expected one JSON object");
            goto out;
        }
    }
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(root, "weight");
    const cJSON *exp = cJSON_GetObjectItemCaseSensitive(root, "expires_in_s");
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
    char msg[256] = "", addr[48];
    memset(&cmd, 0, sizeof cmd);
    cmd.type = type;
    if (target && strlen(target) >= sizeof cmd.target) {
        snprintf(msg, sizeof msg, "no target named \"%.60s...\"", target);
        return admin_error(c, 404, msg);
    }
    str_copy(cmd.target, sizeof cmd.target, target ? target : "");
    gw_client_addr(c, addr, sizeof addr);
    snprintf(cmd.user, sizeof cmd.user, "admin:%s", addr);
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
    if (str_eq(rest, "undo"))
        return post ? admin_command(c, ROUTER_CMD_UNDO, NULL) : bad_method(c, "POST");
    if (str_eq(rest, "keys") || str_has_prefix(rest, "keys/"))
        return gw_admin_keys(c, rest + strlen("keys"));
    if (str_has_prefix(rest, "targets/"))
        return admin_targets(c, rest + strlen("targets/"), get);
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
