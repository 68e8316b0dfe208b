/*
 * models.c - what GET /v1/models and GET /readyz answer (and which targets
 * GET /admin/quality/{target} calls configured), kept per router snapshot generation: the
 * route names, the target names, the readiness verdict and the /v1/models body of a caller
 * without a client key. The whole snapshot is ~382 KB with the bench config; copying it per
 * request was most of these endpoints' cost. Now a request compares the generation under
 * the router's snapshot lock (router_snapshot_visit) and, only when it moved on, reads the
 * names and the verdict from the published snapshot in place; nothing large is copied.
 *
 * Every publish bumps the generation (each ROUTER_TICK_MS, and at once after a reload, a
 * weight edit, a drain, a pin...), so what a request gets is never older than the snapshot
 * it would have copied. Under load the refresh runs at most once per generation.
 *
 * Threads: any (MHD threads, the offload pool). sc->mu guards the cache; the refresh runs under
 * it and takes the router's snapshot lock inside it (order: sc->mu, then the router's
 * snap_mu; nothing else is taken under either). Bodies are built from copies made under
 * sc->mu, after it is released (a client key's filter takes the key set's own lock).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "switchboard/clients.h"

struct gw_snapcache {
    pthread_mutex_t mu;
    uint64_t gen; /* of the snapshot the rest was taken from; 0 none yet */
    struct gw_route_names routes;
    size_t n_targets;
    char targets[ROUTER_MAX_TARGETS][64];
    bool ready;
    struct buf why;      /* gw_is_ready's reasons when not ready */
    struct buf models;   /* /v1/models for every route, */
    uint64_t models_gen; /* rendered from that generation's names */
    int64_t created;     /* with that "created" */
};

struct gw_snapcache *gw_snapcache_new(void)
{
    struct gw_snapcache *sc = xcalloc(1, sizeof *sc);
    pthread_mutex_init(&sc->mu, NULL);
    buf_init(&sc->why);
    buf_init(&sc->models);
    return sc;
}

void gw_snapcache_free(struct gw_snapcache *sc)
{
    if (!sc)
        return;
    buf_cleanup(&sc->why);
    buf_cleanup(&sc->models);
    pthread_mutex_destroy(&sc->mu);
    free(sc);
}

void gw_route_names_from(const struct router_snapshot *snap, struct gw_route_names *out)
{
    out->n = 0;
    for (size_t i = 0; i < snap->n_routes && i < ROUTER_MAX_ROUTES; i++)
        str_copy(out->name[out->n++], sizeof out->name[0], snap->routes[i].name);
}

/* Under the router's snapshot lock: read in place, copy only the names and the verdict. */
static void take(const struct router_snapshot *snap, void *ctx)
{
    struct gw_snapcache *sc = ctx;
    sc->gen = snap->gen;
    gw_route_names_from(snap, &sc->routes);
    sc->n_targets = 0;
    for (size_t i = 0; i < snap->n_targets && i < ROUTER_MAX_TARGETS; i++)
        str_copy(sc->targets[sc->n_targets++], sizeof sc->targets[0], snap->targets[i].name);
    buf_reset(&sc->why);
    sc->ready = gw_is_ready(snap, &sc->why);
}

/* Brings the cache to the published generation (sc->mu held). */
static void refresh_locked(struct gw_snapcache *sc, struct router *rt)
{
    router_snapshot_visit(rt, sc->gen, take, sc);
}

/* Keeps the routes client's key may use. */
static void filter(struct clients *cl, const char *client, struct gw_route_names *names)
{
    size_t k = 0;
    for (size_t i = 0; i < names->n; i++)
        if (clients_route_allowed(cl, client, names->name[i]))
            memmove(names->name[k++], names->name[i], sizeof names->name[0]);
    names->n = k;
}

void gw_snapcache_models(struct gw_snapcache *sc, struct router *rt, int64_t created,
                         struct clients *cl, const char *client, struct buf *out)
{
    bool keyed = client && client[0];
    struct gw_route_names *names = keyed ? xmalloc(sizeof *names) : NULL;
    pthread_mutex_lock(&sc->mu);
    refresh_locked(sc, rt);
    if (!keyed && (sc->models_gen != sc->gen || sc->created != created)) {
        buf_reset(&sc->models);
        gw_models_json(&sc->routes, created, &sc->models);
        sc->models_gen = sc->gen;
        sc->created = created;
    }
    if (keyed)
        *names = sc->routes;
    else
        buf_append(out, sc->models.data, sc->models.len);
    pthread_mutex_unlock(&sc->mu);
    if (keyed) {
        filter(cl, client, names);
        gw_models_json(names, created, out);
    }
    free(names);
}

bool gw_snapcache_ready(struct gw_snapcache *sc, struct router *rt, struct buf *why)
{
    pthread_mutex_lock(&sc->mu);
    refresh_locked(sc, rt);
    bool ready = sc->ready;
    if (!ready)
        buf_append(why, sc->why.data, sc->why.len);
    pthread_mutex_unlock(&sc->mu);
    return ready;
}

bool gw_snapcache_has_target(struct gw_snapcache *sc, struct router *rt, const char *name)
{
    bool found = false;
    pthread_mutex_lock(&sc->mu);
    refresh_locked(sc, rt);
    for (size_t i = 0; i < sc->n_targets && !found; i++)
        found = str_eq(sc->targets[i], name);
    pthread_mutex_unlock(&sc->mu);
    return found;
}
