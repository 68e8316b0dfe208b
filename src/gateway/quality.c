/*
 * quality.c - the gateway's view of quality (ledger.h, "quality"): per target and per route
 * over the last hour, the last 24 hours and since ledger.quality_baseline, for /admin/state
 * ("quality") and /metrics (switchboard_quality_*), and the settings POST /v1/feedback uses.
 *
 * The figures are refreshed by the quality guard's thread (qguard.c: at its start, every
 * GW_QGUARD_INTERVAL_MS and at once after a reload), never on a request thread. The hour and
 * the day are sums of the ledger writer's minute buckets (src/ledger/qminutes.c: no SQL, so a
 * refresh costs the same however busy the ledger is); both windows start at a whole minute
 * (floor(now - window)) and end with now's minute. The window since ledger.quality_baseline,
 * when configured, is still counted in SQL from the file. Each refresh renders the JSON
 * fragment and the metrics text once; request threads copy the text.
 *
 * Threads: MHD threads (copies), the guard's thread (gw_quality_refresh) and the main thread
 * (init, configure on reload, cleanup). q->mu guards everything in struct gw_quality; it is
 * never held across the ledger read or the rendering.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"
#include "switchboard/ledger.h"
#include "switchboard/log.h"

#define HOUR_MS 3600000LL

enum gw_qwindow { GW_QW_1H, GW_QW_24H, GW_QW_BASELINE, GW_QW_COUNT };
static const char *const window_names[GW_QW_COUNT] = {"1h", "24h", "baseline"};

struct gw_quality {
    pthread_mutex_t mu;
    char *ledger_path;
    int64_t window_ms;
    uint64_t min_volume;
    int64_t baseline_ms;     /* 0: none configured */
    char *state_json;        /* {"min_volume":..,"windows":{..}} */
    char *metrics;           /* the switchboard_quality_* families */
    struct gw_qguard *guard; /* its own thread and lock */
};

static void configure_locked(struct gw_quality *q, const struct config *cfg)
{
    const struct config_ledger *l = &cfg->ledger;
    free(q->ledger_path);
    q->ledger_path = xstrdup(l->path ? l->path : ":memory:");
    q->window_ms = l->feedback_window_ms > 0 ? l->feedback_window_ms : 24 * HOUR_MS;
    q->min_volume = l->quality_min_volume > 0 ? (uint64_t)l->quality_min_volume : 20;
    q->baseline_ms = 0;
    int64_t at;
    if (l->quality_baseline && ledger_parse_since(l->quality_baseline, clock_wall_ms(), &at))
        q->baseline_ms = at;
}

void gw_quality_init(struct gateway *gw, const struct config *cfg)
{
    struct gw_quality *q = xcalloc(1, sizeof *q);
    pthread_mutex_init(&q->mu, NULL);
    configure_locked(q, cfg);
    gw->quality = q;
    q->guard = gw_qguard_new(gw, cfg, GW_QGUARD_INTERVAL_MS);
}

void gw_quality_configure(struct gateway *gw, const struct config *cfg)
{
    pthread_mutex_lock(&gw->quality->mu);
    configure_locked(gw->quality, cfg);
    pthread_mutex_unlock(&gw->quality->mu);
    gw_qguard_configure(gw->quality->guard, cfg);
}

void gw_quality_cleanup(struct gateway *gw)
{
    struct gw_quality *q = gw->quality;
    if (!q)
        return;
    gw_qguard_free(q->guard);
    free(q->ledger_path);
    free(q->state_json);
    free(q->metrics);
    pthread_mutex_destroy(&q->mu);
    free(q);
    gw->quality = NULL;
}

int64_t gw_quality_window_ms(struct gateway *gw)
{
    pthread_mutex_lock(&gw->quality->mu);
    int64_t w = gw->quality->window_ms;
    pthread_mutex_unlock(&gw->quality->mu);
    return w;
}

uint64_t gw_quality_min_volume(struct gateway *gw)
{
    pthread_mutex_lock(&gw->quality->mu);
    uint64_t v = gw->quality->min_volume;
    pthread_mutex_unlock(&gw->quality->mu);
    return v;
}

/* ---- rendering (pure) -------------------------------------------------------------------------
 */

static void json_rows(struct buf *out, const char *key, const struct ledger_quality *v)
{
    buf_printf(out, "\"%s\":[", key);
    for (size_t i = 0; i < v->n; i++) {
        if (i)
            buf_putc(out, ',');
        ledger_quality_row_json(&v->rows[i], "name", out);
    }
    buf_putc(out, ']');
}

static void json_window(struct buf *out, const struct ledger_quality *targets,
                        const struct ledger_quality *routes)
{
    char since[21];
    ledger_format_time(targets->since_ms, since);
    buf_printf(out, "{\"since\":\"%s\",", since);
    json_rows(out, "targets", targets);
    buf_putc(out, ',');
    json_rows(out, "routes", routes);
    buf_puts(out, ",\"total\":");
    ledger_quality_row_json(&targets->total, "name", out);
    buf_putc(out, '}');
}

static void sample(struct buf *out, const char *family, const char *by, const char *name,
                   const char *window, double v)
{
    buf_printf(out, "switchboard_quality_%s{by=\"%s\",name=\"", family, by);
    gw_prom_label(out, name);
    buf_printf(out, "\",window=\"%s\"} %.10g\n", window, v);
}

struct family {
    const char *name, *type, *help;
};
static const struct family families[] = {
    {"calls", "gauge", "Calls finished in the window (from the ledger)."},
    {"abandoned", "gauge", "Calls the client left before the answer was complete (499)."},
    {"abandonment_ratio", "gauge", "Abandoned calls / calls."},
    {"completion_ratio", "gauge",
     "Answers that ended with stop or tool_calls / calls not abandoned or throttled."},
    {"feedback", "gauge", "Ratings of calls in the window (API feedback and console votes)."},
    {"negative_feedback", "gauge", "Ratings below 0."},
    {"satisfaction", "gauge",
     "Mean rating, -1..1; absent below ledger.quality_min_volume ratings."},
    {"cost_per_call_usd", "gauge", "Spend / calls."},
    {"cost_per_satisfied_usd", "gauge",
     "Spend / answered calls not rated negative; absent when there is none."},
    {"savings_usd", "gauge", "Baseline cost - actual cost, over calls with a priced baseline."},
};

/* Family fi's value of row r; false when the figure is not shown. */
static bool family_value(size_t fi, const struct ledger_quality_row *r, double *v)
{
    double vals[] = {(double)r->calls,      (double)r->abandoned, r->abandonment,  r->completion,
                     (double)r->feedback,   (double)r->negative,  r->satisfaction, r->cost_per_call,
                     r->cost_per_satisfied, r->savings_usd};
    bool shown[] = {true,
                    true,
                    r->calls > 0,
                    r->completion >= 0,
                    true,
                    true,
                    r->has_satisfaction,
                    r->cost_per_call >= 0,
                    r->cost_per_satisfied >= 0,
                    true};
    _Static_assert(SB_ARRAY_LEN(vals) == SB_ARRAY_LEN(families), "one value per family");
    *v = vals[fi];
    return shown[fi];
}

/* views[w][0]: by target, views[w][1]: by route. */
static void render_metrics(struct buf *out, struct ledger_quality views[GW_QW_COUNT][2], int nw)
{
    static const char *const by[2] = {"target", "route"};
    for (size_t f = 0; f < SB_ARRAY_LEN(families); f++) {
        buf_printf(out, "# HELP switchboard_quality_%s %s\n# TYPE switchboard_quality_%s %s\n",
                   families[f].name, families[f].help, families[f].name, families[f].type);
        for (int w = 0; w < nw; w++) {
            for (int b = 0; b < 2; b++) {
                for (size_t i = 0; i < views[w][b].n; i++) {
                    double v;
                    if (family_value(f, &views[w][b].rows[i], &v))
                        sample(out, families[f].name, by[b], views[w][b].rows[i].key,
                               window_names[w], v);
                }
            }
        }
    }
}

/* ---- refresh ------------------------------------------------------------------------------------
 */

struct settings {
    struct ledger *ledger; /* the router's: its minute buckets */
    char *path;
    uint64_t min_volume;
    int64_t baseline_ms;
};

bool gw_quality_window(struct ledger *l, const char *path, enum ledger_quality_by by,
                       int64_t now_ms, int64_t window_ms, uint64_t min_volume,
                       struct ledger_quality *out)
{
    char msg[256];
    if (ledger_quality_window(l, path, by, NULL, now_ms, window_ms, min_volume, out, msg,
                              sizeof msg) == SB_OK)
        return true;
    log_warn("quality: %s", msg);
    return false;
}

static void load_all(const struct settings *s, struct ledger_quality views[GW_QW_COUNT][2], int *nw)
{
    int64_t now = clock_wall_ms();
    const int64_t windows[GW_QW_BASELINE] = {HOUR_MS, 24 * HOUR_MS};
    char msg[256];
    *nw = s->baseline_ms > 0 ? GW_QW_COUNT : GW_QW_BASELINE;
    for (int b = 0; b < 2; b++) {
        enum ledger_quality_by by = b == 0 ? LEDGER_QBY_TARGET : LEDGER_QBY_ROUTE;
        for (int w = 0; w < GW_QW_BASELINE; w++)
            gw_quality_window(s->ledger, s->path, by, now, windows[w], s->min_volume, &views[w][b]);
        if (*nw == GW_QW_COUNT &&
            ledger_quality_load(s->path, by, s->baseline_ms, now + 1, s->min_volume,
                                &views[GW_QW_BASELINE][b], msg, sizeof msg) != SB_OK)
            log_warn("quality: %s", msg);
    }
}

static void render_state(struct buf *out, const struct settings *s,
                         struct ledger_quality views[GW_QW_COUNT][2], int nw)
{
    buf_printf(out, "{\"min_volume\":%llu,\"baseline\":", (unsigned long long)s->min_volume);
    if (s->baseline_ms > 0) {
        char day[11];
        ledger_format_date(s->baseline_ms, day);
        buf_printf(out, "\"%s\"", day);
    } else {
        buf_puts(out, "null");
    }
    buf_puts(out, ",\"windows\":{");
    for (int w = 0; w < nw && w < GW_QW_COUNT; w++) {
        buf_printf(out, "%s\"%s\":", w ? "," : "", window_names[w]);
        json_window(out, &views[w][0], &views[w][1]);
    }
    buf_puts(out, "}}");
}

static void refresh(struct gw_quality *q, const struct settings *s)
{
    struct ledger_quality views[GW_QW_COUNT][2];
    for (int w = 0; w < GW_QW_COUNT; w++)
        for (int b = 0; b < 2; b++)
            ledger_quality_init(&views[w][b]);
    int nw = 0;
    load_all(s, views, &nw);
    struct buf state, metrics;
    buf_init(&state);
    buf_init(&metrics);
    render_state(&state, s, views, nw);
    render_metrics(&metrics, views, nw);
    for (int w = 0; w < GW_QW_COUNT; w++)
        for (int b = 0; b < 2; b++)
            ledger_quality_cleanup(&views[w][b]);
    pthread_mutex_lock(&q->mu);
    char *old_state = q->state_json, *old_metrics = q->metrics;
    q->state_json = buf_take(&state);
    q->metrics = buf_take(&metrics);
    pthread_mutex_unlock(&q->mu);
    free(old_state);
    free(old_metrics);
}

void gw_quality_refresh(struct gateway *gw)
{
    struct gw_quality *q = gw->quality;
    struct settings s;
    s.ledger = router_ledger_peek(gw->rt);
    pthread_mutex_lock(&q->mu);
    s.path = xstrdup(q->ledger_path);
    s.min_volume = q->min_volume;
    s.baseline_ms = q->baseline_ms;
    pthread_mutex_unlock(&q->mu);
    refresh(q, &s);
    free(s.path);
}

/* A copy of what want_state asks for (caller frees; NULL before the first refresh). */
static char *current(struct gw_quality *q, bool want_state)
{
    pthread_mutex_lock(&q->mu);
    const char *text = want_state ? q->state_json : q->metrics;
    char *copy = text ? xstrdup(text) : NULL;
    pthread_mutex_unlock(&q->mu);
    return copy;
}

void gw_quality_state_splice(struct gateway *gw, struct buf *state)
{
    char *frag = current(gw->quality, true);
    size_t end = state->len;
    while (end > 0 && state->data[end - 1] != '}')
        end--;
    if (frag && end > 0) {
        char *tail = xstrdup(state->data + end); /* what followed the last '}' ("\n") */
        state->len = end - 1;
        buf_printf(state, ",\"quality\":%s}%s", frag, tail);
        free(tail);
    }
    free(frag);
}

void gw_quality_metrics(struct gateway *gw, struct buf *out)
{
    char *text = current(gw->quality, false);
    if (text)
        buf_puts(out, text);
    free(text);
}
