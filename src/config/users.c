/*
 * users.c - per-user routing in the config: rules[].match.users_file read into a sorted list
 * at load (so a rule's check is a binary search on the router thread), the preferences
 * file's path resolved against the config file, and the quality guards' consistency checks.
 *
 * Threads: whoever loads the config (no shared state); config_rule_has_user is pure.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define USERS_FILE_MAX_LINES 1000000
#define USER_LINE_MAX        512

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

bool config_rule_has_user(const struct config_rule *r, const char *user)
{
    if (!user || r->n_users == 0)
        return false;
    return bsearch(&user, r->users, r->n_users, sizeof *r->users, cmp_str) != NULL;
}

/* path relative to the config file's directory (caller frees). */
static char *relative_to(const char *path, const char *source_path)
{
    const char *slash = source_path ? strrchr(source_path, '/') : NULL;
    if (path[0] == '/' || !slash)
        return xstrdup(path);
    return xasprintf("%.*s/%s", (int)(slash - source_path), source_path, path);
}

/* One user per line; blank lines and '#' comments skipped; surrounding blanks trimmed. */
static bool read_users(const char *path, struct config_rule *r, char *why, size_t whylen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(why, whylen, "cannot read %s: %s", path, strerror(errno));
        return false;
    }
    char line[USER_LINE_MAX];
    size_t cap = 0;
    bool ok = true;
    while (ok && fgets(line, sizeof line, f)) {
        char *s = line, *e = line + strlen(line);
        while (*s == ' ' || *s == '\t')
            s++;
        while (e > s && (e[-1] == '\n' || e[-1] == '\r' || e[-1] == ' ' || e[-1] == '\t'))
            *--e = '\0';
        if (!*s || *s == '#')
            continue;
        if (r->n_users >= USERS_FILE_MAX_LINES) {
            snprintf(why, whylen, "%s: more than %d users", path, USERS_FILE_MAX_LINES);
            ok = false;
            break;
        }
        r->users = xgrow(r->users, &cap, r->n_users + 1, sizeof *r->users);
        r->users[r->n_users++] = xstrdup(s);
    }
    fclose(f);
    if (r->n_users > 1)
        qsort(r->users, r->n_users, sizeof *r->users, cmp_str);
    return ok;
}

static void check_guard(struct cfg_ctx *ctx, size_t i)
{
    const struct config_route *r = &ctx->cfg->routes[i];
    const struct config_quality_guard *g = &r->quality_guard;
    if (!g->enabled || r->baseline >= 0)
        return;
    bool sat = g->metric != QUALITY_METRIC_ABANDONMENT && g->min_satisfaction >= -1;
    bool ab = g->metric != QUALITY_METRIC_SATISFACTION && g->max_abandonment >= 0;
    if (!sat && !ab)
        cfg_err(ctx,
                "routes[%zu].quality_guard: the route has no baseline target to compare with; "
                "set routes[%zu].baseline, or a fixed min_satisfaction / max_abandonment",
                i, i);
}

void config_validate_users(struct cfg_ctx *ctx, const char *source_path)
{
    struct config *cfg = ctx->cfg;
    char why[600];
    for (size_t i = 0; i < cfg->n_rules; i++) {
        struct config_rule *r = &cfg->rules[i];
        if (!r->match_users_file)
            continue;
        char *path = relative_to(r->match_users_file, source_path);
        if (!read_users(path, r, why, sizeof why))
            cfg_err(ctx, "rules[%zu].match.users_file: %s", i, why);
        free(path);
    }
    if (cfg->users.preferences_file) {
        char *p = relative_to(cfg->users.preferences_file, source_path);
        free(cfg->users.preferences_file);
        cfg->users.preferences_file = p;
    }
    for (size_t i = 0; i < cfg->n_routes; i++)
        check_guard(ctx, i);
}

void config_release_users(struct config *cfg)
{
    for (size_t i = 0; i < cfg->n_rules; i++) {
        for (size_t j = 0; j < cfg->rules[i].n_users; j++)
            free(cfg->rules[i].users[j]);
        free(cfg->rules[i].users);
        cfg->rules[i].users = NULL;
        cfg->rules[i].n_users = 0;
    }
}
