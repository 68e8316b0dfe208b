/*
 * budgets.c - spend tracking and caps (budgets.h). Every target, route, tag and the total is
 * an entity with its spend in the current UTC day and month; a budget points at one entity and
 * keeps a one-hour ring of per-minute spend for its burn rate. Entities live in an open
 * addressing table keyed by (scope, name) that only grows (tags are capped). Windows roll over
 * lazily: an entity whose figures belong to an older day or month reads as zero.
 *
 * Pure; the router thread owns it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "switchboard/budgets.h"

#define DAY_MS        86400000LL
#define MINUTE_MS     60000LL
#define BURN_MINUTES  60
#define TABLE_MIN_CAP 256

struct entity {
    enum budget_scope scope;
    char *name; /* NULL marks a free slot; "" for the global entity */
    double day, month;
    int64_t day_start, month_start; /* the windows the figures belong to */
    long budget;                    /* index into budgets[], -1 none */
};

struct budget {
    struct config_budget cfg; /* name borrowed from the entity */
    size_t entity;
    int64_t soft_day_warned, soft_month_warned; /* window start when warned; 0 not yet */
    int64_t hard_day_noted, hard_month_noted;
    double minute_usd[BURN_MINUTES];
    int64_t minute_epoch[BURN_MINUTES];
};

struct budgets {
    struct entity *table;
    size_t cap, used, tags;
    struct budget *b;
    size_t n;
    int64_t day_start, month_start, month_end; /* current windows */
    double savings_day, savings_month;
    int64_t savings_day_start, savings_month_start;
    int64_t started; /* wall ms at budgets_new: burn rates divide by the time really covered */
};

const char *budget_level_name(enum budget_level l)
{
    switch (l) {
    case BUDGET_LEVEL_OK:
        return "ok";
    case BUDGET_LEVEL_SOFT:
        return "soft";
    case BUDGET_LEVEL_HARD:
        return "hard";
    }
    return "?";
}

/* ---- windows and entities --------------------------------------------------------------- */

static void windows(struct budgets *b, int64_t now)
{
    if (now >= b->day_start && now < b->day_start + DAY_MS && now < b->month_end)
        return;
    b->day_start = ledger_day_start(now);
    b->month_start = ledger_month_start(now);
    b->month_end = ledger_next_month_start(now);
}

static double day_of(const struct budgets *b, const struct entity *e)
{
    return e->day_start == b->day_start ? e->day : 0;
}

static double month_of(const struct budgets *b, const struct entity *e)
{
    return e->month_start == b->month_start ? e->month : 0;
}

static size_t slot_of(const struct budgets *b, enum budget_scope scope, const char *name)
{
    uint64_t h = hash_fnv1a(name, strlen(name)) ^ ((uint64_t)scope * 0x9e3779b97f4a7c15ull);
    return (size_t)h & (b->cap - 1);
}

static struct entity *find(const struct budgets *b, enum budget_scope scope, const char *name)
{
    char key[BUDGETS_NAME_MAX + 1];
    str_copy(key, sizeof key, name ? name : "");
    for (size_t i = slot_of(b, scope, key);; i = (i + 1) & (b->cap - 1)) {
        struct entity *e = &b->table[i];
        if (!e->name)
            return NULL;
        if (e->scope == scope && str_eq(e->name, key))
            return e;
    }
}

static void grow(struct budgets *b);

/* The entity, created when missing (NULL when it is an untracked tag). */
static struct entity *get(struct budgets *b, enum budget_scope scope, const char *name, bool force)
{
    struct entity *e = find(b, scope, name);
    if (e)
        return e;
    if (scope == BUDGET_TAG && !force && b->tags >= BUDGETS_MAX_TAGS)
        return NULL;
    if ((b->used + 1) * 2 > b->cap)
        grow(b);
    char key[BUDGETS_NAME_MAX + 1];
    str_copy(key, sizeof key, name ? name : "");
    size_t i = slot_of(b, scope, key);
    while (b->table[i].name)
        i = (i + 1) & (b->cap - 1);
    e = &b->table[i];
    memset(e, 0, sizeof *e);
    e->scope = scope;
    e->name = xstrdup(key);
    e->budget = -1;
    b->used++;
    b->tags += scope == BUDGET_TAG;
    return e;
}

static void grow(struct budgets *b)
{
    struct entity *old = b->table;
    size_t old_cap = b->cap;
    b->cap = old_cap ? old_cap * 2 : TABLE_MIN_CAP;
    b->table = xcalloc(b->cap, sizeof *b->table);
    for (size_t i = 0; i < old_cap; i++) {
        if (!old[i].name)
            continue;
        size_t k = slot_of(b, old[i].scope, old[i].name);
        while (b->table[k].name)
            k = (k + 1) & (b->cap - 1);
        b->table[k] = old[i];
    }
    free(old);
    for (size_t i = 0; i < b->n; i++) /* entity indices moved */
        b->b[i].entity = (size_t)(find(b, b->b[i].cfg.scope, b->b[i].cfg.name) - b->table);
}

static void add(struct budgets *b, struct entity *e, double usd)
{
    if (!e || usd == 0)
        return;
    if (e->day_start != b->day_start) {
        e->day = 0;
        e->day_start = b->day_start;
    }
    if (e->month_start != b->month_start) {
        e->month = 0;
        e->month_start = b->month_start;
    }
    e->day += usd;
    e->month += usd;
}

/* ---- lifecycle ------------------------------------------------------------------------- */

static void build(struct budgets *b, const struct config *cfg, const struct budget *old,
                  size_t n_old)
{
    for (size_t i = 0; i < b->cap; i++)
        if (b->table[i].name)
            b->table[i].budget = -1;
    b->b = xcalloc(cfg->n_budgets ? cfg->n_budgets : 1, sizeof *b->b);
    b->n = 0;
    for (size_t i = 0; i < cfg->n_budgets; i++) {
        const struct config_budget *c = &cfg->budgets[i];
        struct entity *e = get(b, c->scope, c->scope == BUDGET_GLOBAL ? "" : c->name, true);
        struct budget *bg = &b->b[b->n];
        for (size_t k = 0; k < n_old; k++) {
            if (old[k].cfg.scope == c->scope && str_eq(old[k].cfg.name, e->name))
                *bg = old[k]; /* keep warnings already given and the burn ring */
        }
        bg->cfg = *c;
        bg->cfg.name = e->name;
        bg->entity = (size_t)(e - b->table);
        e->budget = (long)b->n++;
    }
}

struct budgets *budgets_new(const struct config *cfg, const struct ledger_spend *seed,
                            int64_t now_wall_ms)
{
    struct budgets *b = xcalloc(1, sizeof *b);
    b->started = now_wall_ms;
    grow(b);
    windows(b, now_wall_ms);
    get(b, BUDGET_GLOBAL, "", true);
    for (size_t i = 0; i < cfg->n_targets; i++)
        get(b, BUDGET_TARGET, cfg->targets[i].name, true);
    for (size_t i = 0; i < cfg->n_routes; i++)
        get(b, BUDGET_ROUTE, cfg->routes[i].name, true);
    build(b, cfg, NULL, 0);
    b->savings_day_start = b->day_start;
    b->savings_month_start = b->month_start;
    if (!seed)
        return b;
    bool day_ok = seed->day_start_ms == b->day_start;
    bool month_ok = seed->month_start_ms == b->month_start;
    for (size_t i = 0; i < seed->n; i++) {
        struct entity *e = get(b, seed->items[i].scope, seed->items[i].name, false);
        if (!e)
            continue;
        e->day = day_ok ? seed->items[i].day_usd : 0;
        e->month = month_ok ? seed->items[i].month_usd : 0;
        e->day_start = b->day_start;
        e->month_start = b->month_start;
    }
    struct entity *g = find(b, BUDGET_GLOBAL, "");
    g->day = day_ok ? seed->global_day_usd : 0;
    g->month = month_ok ? seed->global_month_usd : 0;
    g->day_start = b->day_start;
    g->month_start = b->month_start;
    b->savings_day = day_ok ? seed->savings_day_usd : 0;
    b->savings_month = month_ok ? seed->savings_month_usd : 0;
    return b;
}

void budgets_reconfigure(struct budgets *b, const struct config *cfg)
{
    struct budget *old = b->b;
    size_t n_old = b->n;
    for (size_t i = 0; i < cfg->n_targets; i++)
        get(b, BUDGET_TARGET, cfg->targets[i].name, true);
    for (size_t i = 0; i < cfg->n_routes; i++)
        get(b, BUDGET_ROUTE, cfg->routes[i].name, true);
    build(b, cfg, old, n_old);
    free(old);
}

void budgets_free(struct budgets *b)
{
    if (!b)
        return;
    for (size_t i = 0; i < b->cap; i++)
        free(b->table[i].name);
    free(b->table);
    free(b->b);
    free(b);
}

/* ---- limits ---------------------------------------------------------------------------- */

static void label_of(const struct budget *bg, char *out, size_t len)
{
    if (bg->cfg.scope == BUDGET_GLOBAL)
        snprintf(out, len, "global");
    else
        snprintf(out, len, "%s:%s", budget_scope_name(bg->cfg.scope), bg->cfg.name);
}

/* Dollars as people read them: cents from $1 up, four decimals below ($0.0025). */
struct usd {
    char s[32];
};

static struct usd usd(double v)
{
    struct usd u;
    snprintf(u.s, sizeof u.s, v >= 0.995 || v == 0 ? "%.2f" : "%.4f", v);
    return u;
}

static enum budget_level level_of(double spent, double cap, double soft_pct)
{
    if (cap <= 0)
        return BUDGET_LEVEL_OK;
    if (spent >= cap)
        return BUDGET_LEVEL_HARD;
    return spent >= cap * soft_pct / 100.0 ? BUDGET_LEVEL_SOFT : BUDGET_LEVEL_OK;
}

/* "budget 'tag:x' daily cap $5.00 reached ($5.02 spent today); resets at 00:00 UTC" when the
 * budget's daily (or monthly) cap is reached; false otherwise. */
static bool cap_reached(const struct budgets *b, const struct budget *bg, bool daily, int64_t now,
                        char *why, size_t whylen, int64_t *retry_after_ms)
{
    const struct entity *e = &b->table[bg->entity];
    double spent = daily ? day_of(b, e) : month_of(b, e);
    double cap = daily ? bg->cfg.daily_usd : bg->cfg.monthly_usd;
    if (cap <= 0 || spent < cap)
        return false;
    char label[BUDGETS_NAME_MAX + 16], date[11];
    label_of(bg, label, sizeof label);
    ledger_format_date(b->month_end, date);
    if (why && daily)
        snprintf(why, whylen,
                 "budget '%s' daily cap $%s reached ($%s spent today); resets at 00:00 UTC", label,
                 usd(cap).s, usd(spent).s);
    else if (why)
        snprintf(why, whylen,
                 "budget '%s' monthly cap $%s reached ($%s spent this month); resets on %s "
                 "00:00 UTC",
                 label, usd(cap).s, usd(spent).s, date);
    if (retry_after_ms)
        *retry_after_ms = (daily ? b->day_start + DAY_MS : b->month_end) - now;
    return true;
}

static bool over(const struct budgets *b, const struct budget *bg, int64_t now, char *why,
                 size_t whylen, int64_t *retry_after_ms)
{
    return cap_reached(b, bg, true, now, why, whylen, retry_after_ms) ||
           cap_reached(b, bg, false, now, why, whylen, retry_after_ms);
}

static const struct budget *budget_of(const struct budgets *b, enum budget_scope scope,
                                      const char *name)
{
    const struct entity *e = find(b, scope, name);
    return e && e->budget >= 0 ? &b->b[e->budget] : NULL;
}

bool budgets_target_blocked(struct budgets *b, int64_t now_wall_ms, const char *target, char *why,
                            size_t whylen)
{
    windows(b, now_wall_ms);
    const struct budget *bg = budget_of(b, BUDGET_TARGET, target);
    char msg[224];
    if (!bg || !over(b, bg, now_wall_ms, msg, sizeof msg, NULL))
        return false;
    if (why)
        snprintf(why, whylen, "over budget: %s", msg);
    return true;
}

bool budgets_call_blocked(struct budgets *b, int64_t now_wall_ms, const char *route,
                          const char *tag, char *why, size_t whylen, int64_t *retry_after_ms)
{
    windows(b, now_wall_ms);
    const struct budget *which[3] = {
        budget_of(b, BUDGET_GLOBAL, ""),
        route && *route ? budget_of(b, BUDGET_ROUTE, route) : NULL,
        tag ? budget_of(b, BUDGET_TAG, tag) : NULL,
    };
    for (size_t i = 0; i < SB_ARRAY_LEN(which); i++) {
        if (which[i] && over(b, which[i], now_wall_ms, why, whylen, retry_after_ms))
            return true;
    }
    return false;
}

/* ---- charging ---------------------------------------------------------------------------- */

/* Spend over the last hour per hour it covers: younger than an hour, the real elapsed time
 * (at least 10 s), so the first hour does not read as the total. */
static double burn_per_hour(const struct budgets *b, const struct budget *bg, int64_t now)
{
    int64_t minute = now / MINUTE_MS;
    double sum = 0;
    for (size_t i = 0; i < BURN_MINUTES; i++) {
        if (bg->minute_epoch[i] > minute - BURN_MINUTES && bg->minute_epoch[i] <= minute)
            sum += bg->minute_usd[i];
    }
    int64_t span = now - b->started, hour = (int64_t)BURN_MINUTES * MINUTE_MS;
    span = span > hour ? hour : span < 10000 ? 10000 : span;
    return sum * (double)hour / (double)span;
}

static void burn_add(struct budget *bg, int64_t now, double usd)
{
    int64_t minute = now / MINUTE_MS;
    size_t i = (size_t)(minute % BURN_MINUTES);
    if (bg->minute_epoch[i] != minute) {
        bg->minute_epoch[i] = minute;
        bg->minute_usd[i] = 0;
    }
    bg->minute_usd[i] += usd;
}

static void alert(struct budget_alert *a, const struct budget *bg, enum budget_level level,
                  const char *text)
{
    a->level = level;
    str_copy(a->target, sizeof a->target, bg->cfg.scope == BUDGET_TARGET ? bg->cfg.name : "");
    str_copy(a->text, sizeof a->text, text);
}

/* Soft crossings and caps reached for one budget after a charge. */
static size_t check(struct budgets *b, struct budget *bg, int64_t now, struct budget_alert *out,
                    size_t max)
{
    const struct entity *e = &b->table[bg->entity];
    char label[BUDGETS_NAME_MAX + 16], text[240];
    label_of(bg, label, sizeof label);
    size_t n = 0;
    struct {
        double spent, cap;
        int64_t *soft, *hard, window;
        const char *name;
    } w[2] = {
        {day_of(b, e), bg->cfg.daily_usd, &bg->soft_day_warned, &bg->hard_day_noted, b->day_start,
         "daily"},
        {month_of(b, e), bg->cfg.monthly_usd, &bg->soft_month_warned, &bg->hard_month_noted,
         b->month_start, "monthly"},
    };
    for (size_t i = 0; i < 2 && n < max; i++) {
        enum budget_level lv = level_of(w[i].spent, w[i].cap, bg->cfg.soft_pct);
        if (lv == BUDGET_LEVEL_HARD && *w[i].hard != w[i].window) {
            *w[i].hard = *w[i].soft = w[i].window;
            cap_reached(b, bg, i == 0, now, text, sizeof text, NULL);
            struct buf msg;
            buf_init(&msg);
            buf_printf(&msg, "%s: %s", text,
                       bg->cfg.scope == BUDGET_TARGET ? "target skipped" : "calls refused (429)");
            alert(&out[n++], bg, lv, buf_str(&msg));
            buf_cleanup(&msg);
        } else if (lv == BUDGET_LEVEL_SOFT && *w[i].soft != w[i].window) {
            *w[i].soft = w[i].window;
            struct buf msg;
            buf_init(&msg);
            buf_printf(&msg, "budget '%s' at %.0f%% of its %s cap ($%s of $%s); burn $%s/h", label,
                       100.0 * w[i].spent / w[i].cap, w[i].name, usd(w[i].spent).s, usd(w[i].cap).s,
                       usd(burn_per_hour(b, bg, now)).s);
            alert(&out[n++], bg, lv, buf_str(&msg));
            buf_cleanup(&msg);
        }
    }
    return n;
}

static size_t charge(struct budgets *b, struct entity *e, double usd, int64_t now,
                     struct budget_alert *alerts, size_t max)
{
    if (!e)
        return 0;
    add(b, e, usd);
    if (e->budget < 0)
        return 0;
    struct budget *bg = &b->b[e->budget];
    burn_add(bg, now, usd);
    return check(b, bg, now, alerts, max);
}

size_t budgets_note_spend(struct budgets *b, int64_t now_wall_ms, const struct budget_charge *ch,
                          struct budget_alert *alerts, size_t max)
{
    windows(b, now_wall_ms);
    if (ch->has_savings) {
        if (b->savings_day_start != b->day_start) {
            b->savings_day = 0;
            b->savings_day_start = b->day_start;
        }
        if (b->savings_month_start != b->month_start) {
            b->savings_month = 0;
            b->savings_month_start = b->month_start;
        }
        b->savings_day += ch->savings_usd;
        b->savings_month += ch->savings_usd;
    }
    size_t n = 0;
    bool has_target = ch->target && *ch->target && !str_eq(ch->target, "cache");
    if (has_target && ch->answer_usd > 0)
        n += charge(b, get(b, BUDGET_TARGET, ch->target, false), ch->answer_usd, now_wall_ms,
                    alerts + n, max - n);
    if (ch->total_usd <= 0)
        return n;
    if (ch->route && *ch->route)
        n += charge(b, get(b, BUDGET_ROUTE, ch->route, false), ch->total_usd, now_wall_ms,
                    alerts + n, max - n);
    if (ch->tag)
        n += charge(b, get(b, BUDGET_TAG, ch->tag, false), ch->total_usd, now_wall_ms, alerts + n,
                    max - n);
    n +=
        charge(b, get(b, BUDGET_GLOBAL, "", true), ch->total_usd, now_wall_ms, alerts + n, max - n);
    return n;
}

/* ---- reading ----------------------------------------------------------------------------- */

static int64_t exhausted_in(double spent, double cap, double burn, int64_t left_ms)
{
    if (cap <= 0)
        return -1;
    if (spent >= cap)
        return 0;
    if (burn <= 0)
        return -1;
    double ms = (cap - spent) / burn * 3600000.0;
    return ms < (double)left_ms ? (int64_t)ms : -1;
}

size_t budgets_status(struct budgets *b, int64_t now_wall_ms, struct budget_status *out, size_t max)
{
    windows(b, now_wall_ms);
    size_t n = b->n < max ? b->n : max;
    for (size_t i = 0; i < n; i++) {
        const struct budget *bg = &b->b[i];
        const struct entity *e = &b->table[bg->entity];
        struct budget_status *s = &out[i];
        memset(s, 0, sizeof *s);
        s->scope = bg->cfg.scope;
        str_copy(s->name, sizeof s->name, bg->cfg.name);
        label_of(bg, s->label, sizeof s->label);
        s->daily_cap = bg->cfg.daily_usd;
        s->monthly_cap = bg->cfg.monthly_usd;
        s->soft_pct = bg->cfg.soft_pct;
        s->day_spent = day_of(b, e);
        s->month_spent = month_of(b, e);
        s->day_level = level_of(s->day_spent, s->daily_cap, s->soft_pct);
        s->month_level = level_of(s->month_spent, s->monthly_cap, s->soft_pct);
        s->level = s->day_level > s->month_level ? s->day_level : s->month_level;
        s->burn_per_hour = burn_per_hour(b, bg, now_wall_ms);
        s->day_resets_in_ms = b->day_start + DAY_MS - now_wall_ms;
        s->month_resets_in_ms = b->month_end - now_wall_ms;
        s->day_exhausted_in_ms =
            exhausted_in(s->day_spent, s->daily_cap, s->burn_per_hour, s->day_resets_in_ms);
        s->month_exhausted_in_ms =
            exhausted_in(s->month_spent, s->monthly_cap, s->burn_per_hour, s->month_resets_in_ms);
    }
    return n;
}

void budgets_spend(struct budgets *b, int64_t now_wall_ms, enum budget_scope scope,
                   const char *name, double *day_usd, double *month_usd)
{
    windows(b, now_wall_ms);
    const struct entity *e = find(b, scope, scope == BUDGET_GLOBAL ? "" : name);
    *day_usd = e ? day_of(b, e) : 0;
    *month_usd = e ? month_of(b, e) : 0;
}

void budgets_savings(struct budgets *b, int64_t now_wall_ms, double *day_usd, double *month_usd)
{
    windows(b, now_wall_ms);
    *day_usd = b->savings_day_start == b->day_start ? b->savings_day : 0;
    *month_usd = b->savings_month_start == b->month_start ? b->savings_month : 0;
}
