/*
 * command.c - the operator command table, the command-line parser and completion (see
 * command.h). Pure: no I/O, no state of its own; any thread.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "switchboard/command.h"

#define MAX_WORDS 12
#define WORD_LEN  96

static const struct command_def table[] = {
    {"weight", COMMAND_ROUTER, ROUTER_CMD_SET_WEIGHT, COMMAND_ARGS_TARGET_NUMBER, true, true, false,
     "weight TARGET N [for DURATION]",
     "set the target's weight (0 takes it out of weighted routes)"},
    {"force-live", COMMAND_ROUTER, ROUTER_CMD_FORCE_LIVE, COMMAND_ARGS_TARGET, true, true, true,
     "force-live TARGET [for DURATION]", "send traffic even while its breaker is open"},
    {"pin", COMMAND_ROUTER, ROUTER_CMD_PIN, COMMAND_ARGS_TARGET, true, true, true,
     "pin TARGET [for DURATION]", "send all traffic of its routes to this target"},
    {"drain", COMMAND_ROUTER, ROUTER_CMD_DRAIN, COMMAND_ARGS_TARGET, true, true, true,
     "drain TARGET [for DURATION]", "no new calls to this target; calls in flight finish"},
    {"reset", COMMAND_ROUTER, ROUTER_CMD_RESET, COMMAND_ARGS_TARGET, false, true, true,
     "reset TARGET", "close the breaker, end cooldowns, clear every override"},
    {"probe", COMMAND_ROUTER, ROUTER_CMD_PROBE_NOW, COMMAND_ARGS_TARGET, false, true, false,
     "probe TARGET", "run a health probe now"},
    {"clear", COMMAND_ROUTER, ROUTER_CMD_CLEAR, COMMAND_ARGS_TARGET, false, true, false,
     "clear TARGET", "remove force-live, pin and drain from the target"},
    {"undo", COMMAND_ROUTER, ROUTER_CMD_UNDO, COMMAND_ARGS_NONE, false, true, true, "undo",
     "undo the last change (a key shows what it restores first)"},
    {"route", COMMAND_EXPLAIN, ROUTER_CMD_UNDO, COMMAND_ARGS_EXPLAIN, false, false, false,
     "route explain MODEL [tag=T] [tokens=N]", "show how a request would be routed now"},
};

const struct command_def *command_table(size_t *n)
{
    *n = SB_ARRAY_LEN(table);
    return table;
}

const struct command_def *command_find(const char *name)
{
    for (size_t i = 0; i < SB_ARRAY_LEN(table); i++) {
        if (str_eq(table[i].name, name))
            return &table[i];
    }
    return NULL;
}

const struct command_def *command_for_type(enum router_cmd_type type)
{
    for (size_t i = 0; i < SB_ARRAY_LEN(table); i++) {
        if (table[i].kind == COMMAND_ROUTER && table[i].type == type)
            return &table[i];
    }
    return NULL;
}

/* ---- durations ------------------------------------------------------------------------------ */

static int64_t unit_ms(char u)
{
    switch (u) {
    case 's':
        return 1000;
    case 'm':
        return (int64_t)60 * 1000;
    case 'h':
        return (int64_t)3600 * 1000;
    case 'd':
        return (int64_t)24 * 3600 * 1000;
    default:
        return 0;
    }
}

bool command_parse_duration(const char *s, int64_t *out_ms)
{
    if (!s || !*s)
        return false;
    int64_t total = 0;
    const char *p = s;
    while (*p) {
        if (!isdigit((unsigned char)*p))
            return false;
        int64_t n = 0;
        while (isdigit((unsigned char)*p)) {
            n = n * 10 + (*p - '0');
            if (n > COMMAND_MAX_DURATION_MS / 1000)
                return false;
            p++;
        }
        int64_t u = 1000;
        if (*p) {
            u = unit_ms(*p);
            if (!u)
                return false;
            p++;
        } else if (total > 0) {
            return false; /* "1h30" is ambiguous */
        }
        total += n * u;
        if (total > COMMAND_MAX_DURATION_MS)
            return false;
    }
    if (total <= 0)
        return false;
    *out_ms = total;
    return true;
}

void command_format_duration(int64_t ms, char *out, size_t outlen)
{
    int64_t s = ms < 0 ? 0 : (ms + 999) / 1000;
    if (s < 60)
        snprintf(out, outlen, "%llds", (long long)s);
    else if (s < 3600)
        snprintf(out, outlen, s % 60 ? "%lldm%02llds" : "%lldm", (long long)(s / 60),
                 (long long)(s % 60));
    else if (s < 86400)
        snprintf(out, outlen, (s / 60) % 60 ? "%lldh%02lldm" : "%lldh", (long long)(s / 3600),
                 (long long)((s / 60) % 60));
    else
        snprintf(out, outlen, (s / 3600) % 24 ? "%lldd%lldh" : "%lldd", (long long)(s / 86400),
                 (long long)((s / 3600) % 24));
}

/* ---- parsing -------------------------------------------------------------------------------- */

struct words {
    char w[MAX_WORDS][WORD_LEN];
    size_t n;
};

static bool split(const char *line, struct words *ws, char *err, size_t errlen)
{
    ws->n = 0;
    const char *p = line;
    while (isspace((unsigned char)*p))
        p++;
    if (*p == ':')
        p++;
    for (;;) {
        while (isspace((unsigned char)*p))
            p++;
        if (!*p)
            return true;
        const char *start = p;
        while (*p && !isspace((unsigned char)*p))
            p++;
        size_t len = (size_t)(p - start);
        if (ws->n == MAX_WORDS || len >= WORD_LEN) {
            snprintf(err, errlen, ws->n == MAX_WORDS ? "too many words" : "word too long");
            return false;
        }
        memcpy(ws->w[ws->n], start, len);
        ws->w[ws->n][len] = '\0';
        ws->n++;
    }
}

static enum sb_status usage_error(const struct command_def *d, char *err, size_t errlen,
                                  const char *what, const char *word)
{
    if (word)
        snprintf(err, errlen, "%s '%s' (usage: %s)", what, word, d->usage);
    else
        snprintf(err, errlen, "%s (usage: %s)", what, d->usage);
    return SB_ERR_INVALID;
}

/* Drops a trailing --yes / -y. */
static void drop_yes(struct words *ws)
{
    if (ws->n > 1 && (str_eq(ws->w[ws->n - 1], "--yes") || str_eq(ws->w[ws->n - 1], "-y")))
        ws->n--;
}

static enum sb_status parse_explain(const struct command_def *d, const struct words *ws,
                                    struct command_parsed *out, char *err, size_t errlen)
{
    if (ws->n < 2 || !str_eq(ws->w[1], "explain"))
        return usage_error(d, err, errlen, "expected 'explain'", ws->n < 2 ? NULL : ws->w[1]);
    if (ws->n < 3)
        return usage_error(d, err, errlen, "missing MODEL", NULL);
    if (str_copy(out->model, sizeof out->model, ws->w[2]) >= sizeof out->model)
        return usage_error(d, err, errlen, "model name too long", NULL);
    for (size_t i = 3; i < ws->n; i++) {
        const char *w = ws->w[i];
        if (str_has_prefix(w, "tag=")) {
            if (str_copy(out->tag, sizeof out->tag, w + 4) >= sizeof out->tag)
                return usage_error(d, err, errlen, "tag too long", NULL);
        } else if (str_has_prefix(w, "tokens=")) {
            if (!str_to_long(w + 7, &out->tokens) || out->tokens < 0)
                return usage_error(d, err, errlen, "bad token count", w + 7);
        } else {
            return usage_error(d, err, errlen, "unexpected", w);
        }
    }
    return SB_OK;
}

static enum sb_status parse_router(const struct command_def *d, const struct words *ws,
                                   struct command_parsed *out, char *err, size_t errlen)
{
    struct router_cmd *c = &out->cmd;
    c->type = d->type;
    size_t i = 1;
    if (d->args != COMMAND_ARGS_NONE) {
        if (ws->n <= i)
            return usage_error(d, err, errlen, "missing TARGET", NULL);
        if (str_copy(c->target, sizeof c->target, ws->w[i]) >= sizeof c->target)
            return usage_error(d, err, errlen, "target name too long", NULL);
        i++;
    }
    if (d->args == COMMAND_ARGS_TARGET_NUMBER) {
        if (ws->n <= i)
            return usage_error(d, err, errlen, "missing N", NULL);
        if (!str_to_double(ws->w[i], &c->weight) || c->weight < 0 || c->weight > 1e6)
            return usage_error(d, err, errlen, "expected a weight from 0 to 1000000, not",
                               ws->w[i]);
        i++;
    }
    if (i < ws->n && str_eq(ws->w[i], "for")) {
        if (!d->expiry)
            return usage_error(d, err, errlen, "takes no expiry", NULL);
        if (i + 1 >= ws->n)
            return usage_error(d, err, errlen, "missing DURATION after 'for'", NULL);
        if (!command_parse_duration(ws->w[i + 1], &c->expires_ms))
            return usage_error(d, err, errlen, "bad duration (try 30s, 10m, 2h)", ws->w[i + 1]);
        i += 2;
    }
    if (i < ws->n)
        return usage_error(d, err, errlen, "unexpected", ws->w[i]);
    return SB_OK;
}

enum sb_status command_parse_line(const char *line, struct command_parsed *out, char *err,
                                  size_t errlen)
{
    memset(out, 0, sizeof *out);
    struct words ws;
    if (!split(line ? line : "", &ws, err, errlen))
        return SB_ERR_INVALID;
    if (ws.n == 0) {
        snprintf(err, errlen, "empty command");
        return SB_ERR_INVALID;
    }
    drop_yes(&ws);
    const struct command_def *d = command_find(ws.w[0]);
    if (!d) {
        snprintf(err, errlen, "unknown command '%s'", ws.w[0]);
        return SB_ERR_INVALID;
    }
    out->def = d;
    switch (d->kind) {
    case COMMAND_ROUTER:
        return parse_router(d, &ws, out, err, errlen);
    case COMMAND_EXPLAIN:
        return parse_explain(d, &ws, out, err, errlen);
    }
    return SB_ERR_INVALID;
}

enum sb_status command_parse(const char *line, struct router_cmd *out, char *err, size_t errlen)
{
    struct command_parsed p;
    enum sb_status st = command_parse_line(line, &p, err, errlen);
    if (st != SB_OK)
        return st;
    if (p.def->kind != COMMAND_ROUTER) {
        snprintf(err, errlen, "'%s' is not a router command", p.def->name);
        return SB_ERR_UNSUPPORTED;
    }
    *out = p.cmd;
    return SB_OK;
}

/* ---- completion ----------------------------------------------------------------------------- */

static size_t add_matches(const char *prefix, const char *const *cands, size_t n,
                          const char **matches, size_t k, size_t max)
{
    for (size_t i = 0; i < n && k < max; i++) {
        if (cands[i] && str_has_prefix(cands[i], prefix))
            matches[k++] = cands[i];
    }
    return k;
}

size_t command_complete(const char *line, const char *const *targets, size_t n_targets,
                        const char *const *routes, size_t n_routes, const char **matches,
                        size_t max, size_t *word_start)
{
    size_t len = strlen(line);
    size_t start = len;
    while (start > 0 && !isspace((unsigned char)line[start - 1]))
        start--;
    size_t skip = 0; /* a leading ':' */
    while (skip < len && isspace((unsigned char)line[skip]))
        skip++;
    if (skip < len && line[skip] == ':')
        skip++;
    if (start < skip)
        start = skip;
    *word_start = start;
    /* Which word is this, and what was the first? */
    char first[WORD_LEN] = "";
    size_t index = 0;
    const char *p = line + skip;
    while (p < line + start) {
        while (p < line + start && isspace((unsigned char)*p))
            p++;
        if (p >= line + start)
            break;
        const char *w = p;
        while (p < line + start && !isspace((unsigned char)*p))
            p++;
        if (index == 0) {
            size_t wl = (size_t)(p - w) < sizeof first - 1 ? (size_t)(p - w) : sizeof first - 1;
            memcpy(first, w, wl);
            first[wl] = '\0';
        }
        index++;
    }
    const char *prefix = line + start;
    size_t k = 0;
    if (index == 0) {
        for (size_t i = 0; i < SB_ARRAY_LEN(table) && k < max; i++) {
            if (str_has_prefix(table[i].name, prefix))
                matches[k++] = table[i].name;
        }
        return k;
    }
    const struct command_def *d = command_find(first);
    if (!d)
        return 0;
    if (d->args == COMMAND_ARGS_EXPLAIN) {
        static const char *const explain[] = {"explain"};
        if (index == 1)
            return add_matches(prefix, explain, 1, matches, 0, max);
        if (index == 2)
            return add_matches(prefix, routes, n_routes, matches, 0, max);
        return 0;
    }
    if (index == 1 && d->args != COMMAND_ARGS_NONE)
        return add_matches(prefix, targets, n_targets, matches, 0, max);
    return 0;
}

size_t command_common_prefix(const char *const *strings, size_t n)
{
    if (n == 0)
        return 0;
    size_t len = strlen(strings[0]);
    for (size_t i = 1; i < n; i++) {
        size_t k = 0;
        while (k < len && strings[i][k] == strings[0][k])
            k++;
        len = k;
    }
    return len;
}
