/*
 * fleet_ops.c - fleet mode's operator side (see fleet_glue.c for spend): Retry-After
 * cooldowns and operator commands go out to the other instances, theirs are applied here at
 * each router tick, the override state is stored in Redis so joining (or re-seeding)
 * instances get it, and each instance heartbeats a summary of its snapshot.
 *
 * Threads: router thread only. No-ops when rt->fleet is NULL.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "switchboard/log.h"

static const char *const wire_names[] = {
    [ROUTER_CMD_SET_WEIGHT] = "weight", [ROUTER_CMD_FORCE_LIVE] = "force-live",
    [ROUTER_CMD_PIN] = "pin",           [ROUTER_CMD_DRAIN] = "drain",
    [ROUTER_CMD_RESET] = "reset",       [ROUTER_CMD_PROBE_NOW] = "probe",
    [ROUTER_CMD_UNDO] = "undo",         [ROUTER_CMD_CLEAR] = "clear",
};

static bool wire_type(const char *name, enum router_cmd_type *out)
{
    for (size_t i = 0; i < SB_ARRAY_LEN(wire_names); i++) {
        if (str_eq(wire_names[i], name)) {
            *out = (enum router_cmd_type)i;
            return true;
        }
    }
    return false;
}

/* Monotonic expiry (0 none) as wall ms. */
static int64_t wall_of(const struct router *rt, int64_t mono_ms)
{
    return mono_ms > 0 ? rt_wall_ms(rt) + (mono_ms - rt_now_ms(rt)) : 0;
}

/* before / after (may be NULL): the state the command changed, for the audit stream. */
static char *cmd_json(const char *type, const char *target, double weight, int64_t expires_at,
                      const char *user, const char *before, const char *after)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", type);
    cJSON_AddStringToObject(o, "target", target);
    cJSON_AddNumberToObject(o, "weight", weight);
    cJSON_AddNumberToObject(o, "expires_at", (double)expires_at);
    cJSON_AddStringToObject(o, "user", user ? user : "");
    if (before && after) {
        cJSON_AddStringToObject(o, "before", before);
        cJSON_AddStringToObject(o, "after", after);
    }
    char *text = cJSON_PrintUnformatted(o);
    char *copy = xstrdup(text);
    cJSON_free(text);
    cJSON_Delete(o);
    return copy;
}

/* ---- out ------------------------------------------------------------------------------------- */

void fleet_glue_cooldown(struct router *rt, const struct target_state *t, int64_t now_ms)
{
    const struct limits *l = &t->limits;
    if (!rt->fleet || l->cooldown_until_ms <= now_ms || !str_eq(l->cooldown_source, "Retry-After"))
        return;
    int64_t until = wall_of(rt, l->cooldown_until_ms);
    char body[256];
    snprintf(body, sizeof body, "{\"target\":\"%s\",\"until_wall_ms\":%lld}", t->cfg->name,
             (long long)until);
    fleet_post(rt->fleet, FLEET_NOTICE_COOLDOWN, t->cfg->name, body, until, NULL, 0);
}

void fleet_glue_breaker(struct router *rt, const struct target_state *t,
                        const struct breaker_transition *tr)
{
    if (!rt->fleet)
        return;
    struct buf b;
    buf_init(&b);
    buf_puts(&b, "{\"target\":");
    buf_put_json_string(&b, t->cfg->name, strlen(t->cfg->name));
    buf_printf(
        &b,
        ",\"from\":\"%s\",\"to\":\"%s\",\"open_ms\":%lld,\"reason\":", breaker_state_name(tr->from),
        breaker_state_name(tr->to),
        (long long)(tr->to == BREAKER_OPEN ? breaker_retry_in_ms(&t->breaker, rt_now_ms(rt)) : 0));
    buf_put_json_string(&b, tr->reason, strlen(tr->reason));
    buf_putc(&b, '}');
    fleet_post(rt->fleet, FLEET_NOTICE_BREAKER, t->cfg->name, buf_str(&b), 0, NULL, 0);
    buf_cleanup(&b);
}

/* The stored override state of t: one hash field per kind, deleted when not in force. */
static size_t target_stores(struct router *rt, const struct target_state *t, struct fleet_store *st)
{
    const struct overrides *o = &t->ov;
    const char *name = t->cfg->name;
    int64_t pin_exp = -1;
    for (size_t i = 0; i < rt->n_routes; i++) {
        if (rt->routes[i]->pinned == t)
            pin_exp = rt->routes[i]->pin_expires;
    }
    struct {
        const char *kind;
        bool on;
        int64_t exp;
    } k[4] = {{"weight", o->weight_set, o->weight_expires},
              {"force-live", o->forced_live, o->force_expires},
              {"drain", o->drained, o->drain_expires},
              {"pin", pin_exp >= 0, pin_exp}};
    for (size_t i = 0; i < 4; i++) {
        snprintf(st[i].field, sizeof st[i].field, "%s:%s", k[i].kind, name);
        st[i].value =
            k[i].on ? cmd_json(k[i].kind, name, o->weight, wall_of(rt, k[i].exp), "", NULL, NULL)
                    : NULL;
    }
    return 4;
}

void fleet_glue_command(struct router *rt, const struct router_cmd *cmd, const char *target,
                        const char *before, const char *after)
{
    if (!rt->fleet || rt->fleet_applying || cmd->type == ROUTER_CMD_PROBE_NOW)
        return;
    int64_t exp = cmd->expires_ms > 0 ? rt_wall_ms(rt) + cmd->expires_ms : 0;
    char *body = cmd_json(wire_names[cmd->type], target, cmd->weight, exp,
                          cmd->user[0] ? cmd->user : "operator", before, after);
    struct fleet_store st[4];
    size_t n = 0;
    const struct target_state *t = router_find_target(rt, target);
    if (t)
        n = target_stores(rt, t, st);
    fleet_post(rt->fleet, FLEET_NOTICE_COMMAND, target, body, 0, st, n);
    free(body);
}

/* Redis lost the stored overrides: store every target's again. */
static void reseed(struct router *rt)
{
    for (size_t i = 0; i < rt->n_targets; i++) {
        struct fleet_store st[4];
        size_t n = target_stores(rt, rt->targets[i], st);
        bool any = false;
        for (size_t k = 0; k < n; k++)
            any |= st[k].value != NULL;
        if (any) {
            fleet_post(rt->fleet, FLEET_NOTICE_OVERRIDE, rt->targets[i]->cfg->name, "", 0, st, n);
        } else {
            for (size_t k = 0; k < n; k++)
                free(st[k].value);
        }
    }
}

/* A command from a console (no instance of its own to store the result): every instance
 * stores the target's new state; they agree, so the writes are the same. */
static void store_after(struct router *rt, const char *target)
{
    const struct target_state *t = router_find_target(rt, target);
    if (!t)
        return;
    struct fleet_store st[4];
    size_t n = target_stores(rt, t, st);
    fleet_post(rt->fleet, FLEET_NOTICE_OVERRIDE, target, "", 0, st, n);
}

/* ---- in -------------------------------------------------------------------------------------- */

static void apply_cooldown(struct router *rt, const cJSON *o, int64_t now)
{
    const cJSON *tn = cJSON_GetObjectItemCaseSensitive(o, "target");
    const cJSON *until = cJSON_GetObjectItemCaseSensitive(o, "until_wall_ms");
    struct target_state *t = cJSON_IsString(tn) ? router_find_target(rt, tn->valuestring) : NULL;
    if (!t || !cJSON_IsNumber(until))
        return;
    int64_t left = (int64_t)until->valuedouble - rt_wall_ms(rt);
    if (left <= 0 || limits_is_cooling(&t->limits, now))
        return;
    limits_cooldown_until(&t->limits, now + left, "Retry-After (fleet)");
    router_event(rt, ROUTER_EV_RATE_LIMIT, t->cfg->name,
                 "fleet: %s cooling for %llds (Retry-After seen by another instance)", t->cfg->name,
                 (long long)((left + 999) / 1000));
}

/* Another instance's breaker moved: on the timeline; with fleet.share_breakers an opening
 * takes the target out here too, for that breaker's cooldown. */
static void apply_breaker(struct router *rt, const cJSON *o, const char *origin, int64_t now)
{
    const cJSON *tn = cJSON_GetObjectItemCaseSensitive(o, "target");
    const cJSON *from = cJSON_GetObjectItemCaseSensitive(o, "from");
    const cJSON *to = cJSON_GetObjectItemCaseSensitive(o, "to");
    const cJSON *why = cJSON_GetObjectItemCaseSensitive(o, "reason");
    const cJSON *open_ms = cJSON_GetObjectItemCaseSensitive(o, "open_ms");
    struct target_state *t = cJSON_IsString(tn) ? router_find_target(rt, tn->valuestring) : NULL;
    if (!t || !cJSON_IsString(from) || !cJSON_IsString(to))
        return;
    router_event(rt, ROUTER_EV_BREAKER, t->cfg->name, "fleet: breaker %s on %s: %s -> %s: %s",
                 t->cfg->name, origin, from->valuestring, to->valuestring,
                 cJSON_IsString(why) ? why->valuestring : "");
    if (rt->fleet_share_breakers && str_eq(to->valuestring, "open") && cJSON_IsNumber(open_ms) &&
        open_ms->valuedouble > 0)
        limits_cooldown_until(&t->limits, now + (int64_t)open_ms->valuedouble, "breaker (fleet)");
}

/* A stored override that this instance already has needs no new command (nor undo entry). */
static bool already(const struct router *rt, const struct router_cmd *cmd,
                    const struct target_state *t)
{
    switch (cmd->type) {
    case ROUTER_CMD_SET_WEIGHT:
        return t->ov.weight_set && t->ov.weight == cmd->weight;
    case ROUTER_CMD_FORCE_LIVE:
        return t->ov.forced_live;
    case ROUTER_CMD_DRAIN:
        return t->ov.drained;
    case ROUTER_CMD_PIN:
        for (size_t i = 0; i < rt->n_routes; i++) {
            if (rt->routes[i]->pinned == t)
                return true;
        }
        return false;
    case ROUTER_CMD_RESET:
    case ROUTER_CMD_PROBE_NOW:
    case ROUTER_CMD_UNDO:
    case ROUTER_CMD_CLEAR:
        break;
    }
    return false;
}

static void apply_command(struct router *rt, const cJSON *o, const char *origin, bool stored)
{
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(o, "type");
    const cJSON *tn = cJSON_GetObjectItemCaseSensitive(o, "target");
    const cJSON *w = cJSON_GetObjectItemCaseSensitive(o, "weight");
    const cJSON *exp = cJSON_GetObjectItemCaseSensitive(o, "expires_at");
    const cJSON *user = cJSON_GetObjectItemCaseSensitive(o, "user");
    struct router_cmd cmd = {0};
    if (!cJSON_IsString(type) || !cJSON_IsString(tn) || !wire_type(type->valuestring, &cmd.type))
        return;
    str_copy(cmd.target, sizeof cmd.target, tn->valuestring);
    cmd.weight = cJSON_IsNumber(w) ? w->valuedouble : 0;
    int64_t at = cJSON_IsNumber(exp) ? (int64_t)exp->valuedouble : 0;
    if (at > 0) {
        cmd.expires_ms = at - rt_wall_ms(rt);
        if (cmd.expires_ms <= 0)
            return; /* lapsed on the way */
    }
    snprintf(cmd.user, sizeof cmd.user, "%.30s@%.30s",
             cJSON_IsString(user) && user->valuestring[0] ? user->valuestring : "fleet", origin);
    const struct target_state *t = router_find_target(rt, cmd.target);
    if (stored && (!t || already(rt, &cmd, t)))
        return;
    char msg[256];
    rt->fleet_applying = true;
    enum sb_status st = router_apply_command(rt, &cmd, msg, sizeof msg);
    rt->fleet_applying = false;
    if (st != SB_OK)
        log_warn("fleet: %s from %s not applied here: %s", type->valuestring, origin, msg);
    else if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(o, "store")))
        store_after(rt, cmd.type == ROUTER_CMD_UNDO ? rt->undo[rt->n_undo].target : cmd.target);
    rt->publish_now = true;
}

void fleet_glue_tick(struct router *rt, int64_t now_ms)
{
    if (!rt->fleet)
        return;
    struct fleet_notice *list = fleet_take_notices(rt->fleet);
    for (struct fleet_notice *n = list; n; n = n->next) {
        if (n->kind == FLEET_NOTICE_RESEED) {
            reseed(rt);
            continue;
        }
        cJSON *o = cJSON_Parse(n->body);
        if (!o)
            continue;
        switch (n->kind) {
        case FLEET_NOTICE_COOLDOWN:
            apply_cooldown(rt, o, now_ms);
            break;
        case FLEET_NOTICE_COMMAND:
        case FLEET_NOTICE_OVERRIDE:
            apply_command(rt, o, n->origin, n->kind == FLEET_NOTICE_OVERRIDE);
            break;
        case FLEET_NOTICE_BREAKER:
            apply_breaker(rt, o, n->origin, now_ms);
            break;
        case FLEET_NOTICE_CACHE:
            fleet_glue_cache_apply(rt, o);
            break;
        case FLEET_NOTICE_RESEED:
            break;
        }
        cJSON_Delete(o);
    }
    fleet_notices_free(list);
}

/* ---- snapshot and heartbeat ------------------------------------------------------------------ */

static void fleet_budgets(struct router *rt, struct router_snapshot *s, int64_t wall)
{
    const struct config *cfg = rt->cur->cfg;
    for (size_t i = 0; i < s->n_budgets && i < cfg->n_budgets; i++) {
        struct budget_status *bs = &s->budgets[i];
        const struct config_budget *b = &cfg->budgets[i];
        char key[FLEET_KEY_MAX];
        for (int m = 0; m < 2; m++) {
            char date[11];
            ledger_format_date(wall, date);
            snprintf(key, sizeof key, "spend:%s:%.100s:%c:%.*s", budget_scope_name(b->scope),
                     b->scope == BUDGET_GLOBAL ? "" : b->name, m ? 'm' : 'd', m ? 7 : 10, date);
            double v = (double)fleet_counter_get(rt->fleet, key, NULL, NULL) / 1e6;
            double *spent = m ? &bs->month_spent : &bs->day_spent;
            double cap = m ? bs->monthly_cap : bs->daily_cap;
            enum budget_level *lvl = m ? &bs->month_level : &bs->day_level;
            if (v > *spent)
                *spent = v;
            if (cap > 0 && *spent >= cap)
                *lvl = BUDGET_LEVEL_HARD;
            if (*lvl > bs->level)
                bs->level = *lvl;
        }
    }
}

void fleet_glue_snapshot(struct router *rt, struct router_snapshot *s)
{
    memset(&s->fleet, 0, sizeof s->fleet);
    s->fleet_spend_today_usd = s->fleet_spend_month_usd = 0;
    if (!rt->fleet)
        return;
    fleet_get_status(rt->fleet, &s->fleet);
    if (s->fleet.connected && s->fleet.instances > 0)
        rt->fleet_instances = s->fleet.instances;
    int64_t wall = rt_wall_ms(rt);
    char key[FLEET_KEY_MAX], date[11];
    ledger_format_date(wall, date);
    snprintf(key, sizeof key, "spend:global::d:%s", date);
    s->fleet_spend_today_usd = (double)fleet_counter_get(rt->fleet, key, NULL, NULL) / 1e6;
    snprintf(key, sizeof key, "spend:global::m:%.7s", date);
    s->fleet_spend_month_usd = (double)fleet_counter_get(rt->fleet, key, NULL, NULL) / 1e6;
    fleet_budgets(rt, s, wall);
    if (wall >= rt->fleet_hb_ms) {
        fleet_heartbeat_json(rt, s);
        rt->fleet_hb_ms = wall + FLEET_HEARTBEAT_MS;
    }
}
