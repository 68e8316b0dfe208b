/*
 * fleet_cache.c - the routes' response caches shared by the fleet: an answer one instance
 * stores in a route's cache is stored in Redis too (P cache:<hash of its key>, with the
 * route's TTL) and published, and every instance puts it in its own cache of that route; an
 * instance that joins (or reconnects) reads the stored ones. So a storm a load balancer
 * spreads over the fleet is answered from one recorded answer (guard.action "cache").
 * Lookups stay local (no call waits on Redis) and compare the whole key text, as cache.h's do.
 *
 * Wire format: {"route","key","target","model","ttl_ms","ev":[{"t":type,"k":kind,"x":text,
 * "i":index,"id":id,"n":name,"u":[in,out,cached],"f":finish},...]}
 *
 * Threads: router thread only. No-ops when rt->fleet is NULL.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ---- out ------------------------------------------------------------------------------------- */

static int put_event(void *ctx, const struct llm_event *ev)
{
    cJSON *arr = ctx, *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "t", ev->type);
    switch (ev->type) {
    case LLM_EV_TEXT:
    case LLM_EV_TOOL_ARGS:
        cJSON_AddNumberToObject(o, "k", ev->kind);
        cJSON_AddNumberToObject(o, "i", ev->index);
        cJSON_AddItemToObject(o, "x", cJSON_CreateString(ev->text ? ev->text : ""));
        break;
    case LLM_EV_TOOL_CALL:
        cJSON_AddNumberToObject(o, "i", ev->index);
        cJSON_AddStringToObject(o, "id", ev->id ? ev->id : "");
        cJSON_AddStringToObject(o, "n", ev->name ? ev->name : "");
        break;
    case LLM_EV_USAGE: {
        double u[3] = {(double)ev->usage.input_tokens, (double)ev->usage.output_tokens,
                       (double)ev->usage.cached_tokens};
        cJSON_AddItemToObject(o, "u", cJSON_CreateDoubleArray(u, 3));
        break;
    }
    case LLM_EV_FINISH:
        cJSON_AddNumberToObject(o, "f", ev->finish);
        break;
    case LLM_EV_ERROR:
        break;
    }
    cJSON_AddItemToArray(arr, o);
    return 0;
}

void fleet_glue_cache_share(struct router *rt, const struct route_state *r, const char *key,
                            size_t keylen)
{
    long ri = rt->fleet && r->cache ? config_find_route(rt->cur->cfg, r->name) : -1;
    const struct cache_entry *e = ri >= 0 ? cache_peek(r->cache, key, keylen, rt_now_ms(rt)) : NULL;
    if (!e)
        return;
    int64_t ttl = rt->cur->cfg->routes[ri].cache.ttl_ms;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "route", r->name);
    cJSON_AddItemToObject(o, "key", cJSON_CreateString(key)); /* keys hold no NUL */
    cJSON_AddStringToObject(o, "target", cache_entry_target(e));
    cJSON_AddStringToObject(o, "model", cache_entry_model(e));
    cJSON_AddNumberToObject(o, "ttl_ms", (double)ttl);
    cache_replay(e, put_event, cJSON_AddArrayToObject(o, "ev"));
    char *text = cJSON_PrintUnformatted(o);
    char rkey[64];
    snprintf(rkey, sizeof rkey, "cache:%016llx", (unsigned long long)hash_fnv1a(key, keylen));
    if (text)
        fleet_post(rt->fleet, FLEET_NOTICE_CACHE, rkey, text, rt_wall_ms(rt) + ttl, NULL, 0);
    cJSON_free(text);
    cJSON_Delete(o);
}

/* ---- in -------------------------------------------------------------------------------------- */

static long jint(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? (long)v->valuedouble : 0;
}

static const char *jstr(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* One recorded event back; false on anything we did not write. */
static bool feed(struct cache_recorder *rec, const cJSON *o)
{
    long t = jint(o, "t");
    if (t < 0 || t > LLM_EV_ERROR)
        return false;
    struct llm_event ev = {.type = (enum llm_event_type)t, .index = (int)jint(o, "i")};
    const char *x = jstr(o, "x");
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(o, "u");
    switch (ev.type) {
    case LLM_EV_TEXT:
    case LLM_EV_TOOL_ARGS:
        if (!x)
            return false;
        ev.text = x;
        ev.len = strlen(x);
        ev.kind = (enum llm_text_kind)jint(o, "k");
        break;
    case LLM_EV_TOOL_CALL:
        ev.id = jstr(o, "id");
        ev.name = jstr(o, "n");
        break;
    case LLM_EV_USAGE:
        if (cJSON_GetArraySize(u) != 3)
            return false;
        ev.usage = (struct llm_usage){true, (long)cJSON_GetArrayItem(u, 0)->valuedouble,
                                      (long)cJSON_GetArrayItem(u, 1)->valuedouble,
                                      (long)cJSON_GetArrayItem(u, 2)->valuedouble};
        break;
    case LLM_EV_FINISH:
        ev.finish = (enum llm_finish)jint(o, "f");
        break;
    case LLM_EV_ERROR:
        return false;
    }
    cache_recorder_feed(rec, &ev);
    return true;
}

void fleet_glue_cache_apply(struct router *rt, const cJSON *o)
{
    const char *route = jstr(o, "route"), *key = jstr(o, "key");
    const cJSON *evs = cJSON_GetObjectItemCaseSensitive(o, "ev");
    struct route_state *r = route ? router_find_route(rt, route) : NULL;
    long ri = r && r->cache && !r->removed ? config_find_route(rt->cur->cfg, route) : -1;
    if (ri < 0 || !key || !cJSON_IsArray(evs))
        return;
    size_t keylen = strlen(key);
    if (cache_peek(r->cache, key, keylen, rt_now_ms(rt)))
        return; /* already here */
    struct cache_recorder rec;
    cache_recorder_init(&rec, (size_t)rt->cur->cfg->routes[ri].cache.max_bytes / 8);
    bool ok = true;
    const cJSON *ev;
    cJSON_ArrayForEach(ev, evs) ok = ok && feed(&rec, ev);
    const char *target = jstr(o, "target"), *model = jstr(o, "model");
    if (ok)
        cache_put(r->cache, key, keylen, &rec, target ? target : "", model ? model : "",
                  rt_now_ms(rt));
    cache_recorder_cleanup(&rec);
}
