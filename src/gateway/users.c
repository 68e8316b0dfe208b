/*
 * users.c - per-user routing in the gateway: who the end user is, and the route their
 * preference picks.
 *
 * The user is the OpenAI `user` field; the x-switchboard-user header replaces it when client
 * keys are off or the caller's key has self_tag (a key without it cannot speak for other
 * users). A preference ("concise", "detailed" or a route name) comes from
 * users.preferences_file (read at start and on SIGHUP) or the admin API:
 *
 *   GET    /admin/users          {"users":[{"user","preference","route","source"}]}
 *   PUT    /admin/users/{user}   {"preference":"concise"} -> 200 (source "admin")
 *   DELETE /admin/users/{user}   -> 200, 404 when the user has no preference
 *
 * Admin changes live until the process ends (a reload keeps them over the file's). The
 * preference becomes router_call_opts.route when it names a route and the caller's key may
 * use it; the router then skips rules and the model name.
 *
 * Threads: MHD threads (lookups), the offload pool (the admin API, and the user of a big chat
 * body it parsed: gw_users_set_user) and the main thread (init, reload, cleanup).
 * u->mu guards the table; it is held for lookups and copies only.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "internal.h"
#include "switchboard/log.h"

#define USERS_MAX      100000
#define USER_MAX       256
#define PREFERENCE_MAX 64

struct pref {
    char *user;
    char *preference;
    bool from_admin;
};

struct gw_users {
    pthread_mutex_t mu;
    struct pref *items; /* sorted by user */
    size_t n, cap;
    char *concise_route, *detailed_route; /* NULL: none */
};

/* ---- the table (mu held) ------------------------------------------------------------------ */

static size_t lower_bound(const struct gw_users *u, const char *user, bool *found)
{
    size_t lo = 0, hi = u->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(u->items[mid].user, user) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = lo < u->n && str_eq(u->items[lo].user, user);
    return lo;
}

/* false when the table is full. */
static bool set_locked(struct gw_users *u, const char *user, const char *preference,
                       bool from_admin)
{
    bool found;
    size_t i = lower_bound(u, user, &found);
    if (found) {
        if (u->items[i].from_admin && !from_admin)
            return true; /* the file does not undo an operator's choice */
        free(u->items[i].preference);
        u->items[i].preference = xstrdup(preference);
        u->items[i].from_admin = from_admin;
        return true;
    }
    if (u->n >= USERS_MAX)
        return false;
    u->items = xgrow(u->items, &u->cap, u->n + 1, sizeof *u->items);
    memmove(&u->items[i + 1], &u->items[i], (u->n - i) * sizeof *u->items);
    u->items[i] = (struct pref){xstrdup(user), xstrdup(preference), from_admin};
    u->n++;
    return true;
}

static bool remove_locked(struct gw_users *u, const char *user)
{
    bool found;
    size_t i = lower_bound(u, user, &found);
    if (!found)
        return false;
    free(u->items[i].user);
    free(u->items[i].preference);
    memmove(&u->items[i], &u->items[i + 1], (u->n - i - 1) * sizeof *u->items);
    u->n--;
    return true;
}

/* Drops what came from the file (before it is read again). */
static void drop_file_entries_locked(struct gw_users *u)
{
    size_t k = 0;
    for (size_t i = 0; i < u->n; i++) {
        if (u->items[i].from_admin) {
            u->items[k++] = u->items[i];
        } else {
            free(u->items[i].user);
            free(u->items[i].preference);
        }
    }
    u->n = k;
}

/* ---- the file ------------------------------------------------------------------------------ */

/* "USER PREFERENCE" lines ('#' comments, blank lines skipped) into the table. */
static void read_file(struct gw_users *u, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        log_warn("users.preferences_file %s: %s", path, strerror(errno));
        return;
    }
    char line[USER_MAX + PREFERENCE_MAX + 8];
    size_t n = 0, bad = 0;
    while (fgets(line, sizeof line, f)) {
        char user[USER_MAX + 1], pref[PREFERENCE_MAX + 1];
        if (line[0] == '#' || sscanf(line, "%256s %64s", user, pref) != 2) {
            bad += line[0] != '#' && line[strspn(line, " \t\r\n")] != '\0';
            continue;
        }
        pthread_mutex_lock(&u->mu);
        n += set_locked(u, user, pref, false);
        pthread_mutex_unlock(&u->mu);
    }
    fclose(f);
    log_info("users: %zu preferences from %s%s", n, path, bad ? " (some lines unreadable)" : "");
}

static char *route_name(const struct config *cfg, long i)
{
    return i >= 0 ? xstrdup(cfg->routes[i].name) : NULL;
}

void gw_users_init(struct gateway *gw, const struct config *cfg)
{
    struct gw_users *u = xcalloc(1, sizeof *u);
    pthread_mutex_init(&u->mu, NULL);
    gw->users = u;
    gw_users_configure(gw, cfg);
}

void gw_users_configure(struct gateway *gw, const struct config *cfg)
{
    struct gw_users *u = gw->users;
    char *concise = route_name(cfg, cfg->users.concise_route);
    char *detailed = route_name(cfg, cfg->users.detailed_route);
    pthread_mutex_lock(&u->mu);
    drop_file_entries_locked(u);
    char *old_c = u->concise_route, *old_d = u->detailed_route;
    u->concise_route = concise;
    u->detailed_route = detailed;
    pthread_mutex_unlock(&u->mu);
    free(old_c);
    free(old_d);
    if (cfg->users.preferences_file)
        read_file(u, cfg->users.preferences_file);
}

void gw_users_cleanup(struct gateway *gw)
{
    struct gw_users *u = gw->users;
    if (!u)
        return;
    for (size_t i = 0; i < u->n; i++) {
        free(u->items[i].user);
        free(u->items[i].preference);
    }
    free(u->items);
    free(u->concise_route);
    free(u->detailed_route);
    pthread_mutex_destroy(&u->mu);
    free(u);
    gw->users = NULL;
}

/* ---- the request path ------------------------------------------------------------------------ */

/* The route a preference stands for (mu held); NULL when none is configured for the word. */
static const char *pref_route_locked(const struct gw_users *u, const char *preference)
{
    if (str_eq(preference, "concise"))
        return u->concise_route;
    if (str_eq(preference, "detailed"))
        return u->detailed_route;
    return preference;
}

void gw_users_set_user(struct gw_conn *c, struct llm_request *req)
{
    const char *hdr = MHD_lookup_connection_value(c->mc, MHD_HEADER_KIND, "x-switchboard-user");
    if (hdr && *hdr && strlen(hdr) <= USER_MAX &&
        (!c->client[0] || clients_self_tag(c->gw->clients, c->client))) {
        free(req->user);
        req->user = xstrdup(hdr);
    }
}

void gw_users_apply(struct gw_conn *c, const struct llm_request *req, char *route, size_t routelen)
{
    struct gateway *gw = c->gw;
    route[0] = '\0';
    if (!req->user || !*req->user)
        return;
    pthread_mutex_lock(&gw->users->mu);
    bool found;
    size_t i = lower_bound(gw->users, req->user, &found);
    const char *r = found ? pref_route_locked(gw->users, gw->users->items[i].preference) : NULL;
    if (r)
        str_copy(route, routelen, r);
    pthread_mutex_unlock(&gw->users->mu);
    if (route[0] && c->client[0] && !clients_route_allowed(gw->clients, c->client, route))
        route[0] = '\0'; /* the key may not use it: the model decides */
}

/* ---- admin API ---------------------------------------------------------------------------- */

static enum MHD_Result users_error(struct gw_conn *c, int status, const char *msg)
{
    struct gw_error e;
    gw_error_set(&e, status, "invalid_request_error", NULL, "%s", msg);
    return gw_respond_error(c, &e, NULL);
}

static enum MHD_Result users_list(struct gw_conn *c)
{
    struct gw_users *u = c->gw->users;
    struct buf body;
    struct gw_json j;
    buf_init(&body);
    gw_json_init(&j, &body);
    gw_json_open(&j, NULL, '{');
    gw_json_open(&j, "users", '[');
    pthread_mutex_lock(&u->mu); /* only our own JSON writer runs under it */
    for (size_t i = 0; i < u->n; i++) {
        gw_json_open(&j, NULL, '{');
        gw_json_str(&j, "user", u->items[i].user);
        gw_json_str(&j, "preference", u->items[i].preference);
        gw_json_str(&j, "route", pref_route_locked(u, u->items[i].preference));
        gw_json_str(&j, "source", u->items[i].from_admin ? "admin" : "file");
        gw_json_close(&j, '}');
    }
    pthread_mutex_unlock(&u->mu);
    gw_json_close(&j, ']');
    gw_json_close(&j, '}');
    return gw_respond(c, 200, "application/json", &body, NULL);
}

static void audit(struct gw_conn *c, const char *user, const char *what)
{
    char who[64], text[400];
    gw_client_addr(c, who, sizeof who);
    snprintf(text, sizeof text, "admin:%s: user %.200s: %s", who, user, what);
    log_info("%s", text);
    router_note(c->gw->rt, ROUTER_EV_OPERATOR, NULL, text);
}

static enum MHD_Result users_set(struct gw_conn *c, const char *user)
{
    char pref[PREFERENCE_MAX + 1] = "";
    cJSON *o = cJSON_ParseWithLength(c->body.data ? c->body.data : "", c->body.len);
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(o, "preference");
    bool ok = cJSON_IsString(p) && *p->valuestring && strlen(p->valuestring) <= PREFERENCE_MAX &&
              !strpbrk(p->valuestring, " \t\r\n");
    if (ok)
        str_copy(pref, sizeof pref, p->valuestring);
    cJSON_Delete(o);
    if (!ok)
        return users_error(c, 400,
                           "preference: expected \"concise\", \"detailed\" or a route name");
    pthread_mutex_lock(&c->gw->users->mu);
    bool stored = set_locked(c->gw->users, user, pref, true);
    pthread_mutex_unlock(&c->gw->users->mu);
    if (!stored)
        return users_error(c, 409, "too many user preferences");
    char what[96];
    snprintf(what, sizeof what, "preference %s", pref);
    audit(c, user, what);
    struct buf body;
    buf_init(&body);
    buf_printf(&body, "{\"ok\":true}\n");
    return gw_respond(c, 200, "application/json", &body, NULL);
}

enum MHD_Result gw_admin_users(struct gw_conn *c, const char *rest)
{
    bool get = str_eq(c->method, "GET");
    if (rest[0] == '\0')
        return get ? users_list(c) : users_error(c, 405, "/admin/users: GET only");
    const char *user = rest[0] == '/' ? rest + 1 : "";
    if (!*user || strlen(user) > USER_MAX || strchr(user, '/'))
        return users_error(c, 404, "expected /admin/users/{user}");
    if (str_eq(c->method, "PUT") || str_eq(c->method, "POST"))
        return users_set(c, user);
    if (!str_eq(c->method, "DELETE"))
        return users_error(c, 405, "/admin/users/{user}: PUT or DELETE");
    pthread_mutex_lock(&c->gw->users->mu);
    bool removed = remove_locked(c->gw->users, user);
    pthread_mutex_unlock(&c->gw->users->mu);
    if (!removed)
        return users_error(c, 404, "that user has no preference");
    audit(c, user, "preference removed");
    struct buf body;
    buf_init(&body);
    buf_printf(&body, "{\"ok\":true}\n");
    return gw_respond(c, 200, "application/json", &body, NULL);
}
