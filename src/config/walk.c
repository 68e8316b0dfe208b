/*
 * walk.c - the generic schema walker: fills a struct from a cJSON object by the offsets in a
 * schema table (schema.c), checking types, bounds, unknown and duplicate keys, and queueing
 * names that refer to targets or routes for validate.c. Also the shared helpers for JSON
 * paths and error messages. Pure functions of their arguments; any thread.
 */
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ---- Paths and messages ----------------------------------------------------------------- */

/* Appends text (already formatted) to the path, cutting at the buffer's end. */
static size_t path_append(struct cfg_path *p, const char *text)
{
    size_t old = p->len;
    p->len += str_copy(p->s + p->len, sizeof p->s - p->len, text);
    if (p->len >= sizeof p->s)
        p->len = sizeof p->s - 1;
    return old;
}

size_t cfg_path_key(struct cfg_path *p, const char *key)
{
    size_t old = p->len;
    if (p->len)
        path_append(p, ".");
    path_append(p, key);
    return old;
}

size_t cfg_path_index(struct cfg_path *p, size_t i)
{
    char idx[32];
    snprintf(idx, sizeof idx, "[%zu]", i);
    return path_append(p, idx);
}

void cfg_path_pop(struct cfg_path *p, size_t len)
{
    p->len = len;
    p->s[len] = '\0';
}

static void err_va(struct cfg_ctx *ctx, const char *path, const char *fmt, va_list ap)
    SB_PRINTF(3, 0);

static void err_va(struct cfg_ctx *ctx, const char *path, const char *fmt, va_list ap)
{
    if (ctx->n_errors++ >= CONFIG_MAX_ERRORS)
        return;
    struct buf b;
    buf_init(&b);
    if (path && *path)
        buf_printf(&b, "%s: ", path);
    buf_vprintf(&b, fmt, ap);
    config_diag_add(ctx->errs, "%s", buf_str(&b));
    buf_cleanup(&b);
}

void cfg_err(struct cfg_ctx *ctx, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    err_va(ctx, ctx->path.s, fmt, ap);
    va_end(ap);
}

void cfg_err_at(struct cfg_ctx *ctx, const char *path, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    err_va(ctx, path, fmt, ap);
    va_end(ap);
}

void cfg_err_finish(struct cfg_ctx *ctx)
{
    if (ctx->n_errors > CONFIG_MAX_ERRORS)
        config_diag_add(ctx->errs, "(%zu more errors not shown)",
                        ctx->n_errors - CONFIG_MAX_ERRORS);
}

void cfg_printable(struct buf *out, const char *s, size_t max)
{
    size_t i;
    for (i = 0; i < max && s[i]; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
            buf_putc(out, (char)c);
        else
            buf_printf(out, "\\x%02x", c);
    }
    if (s[i])
        buf_puts(out, "...");
}

void cfg_quote(struct buf *out, const char *s)
{
    buf_putc(out, '"');
    cfg_printable(out, s, 64);
    buf_putc(out, '"');
}

/* Optimal string alignment distance (a swap of neighbours counts once), case-insensitive.
 * Words longer than 64 bytes are never close. */
static size_t typo_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 64 || lb > 64)
        return SIZE_MAX;
    size_t d[65][65];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++) {
        for (size_t j = 1; j <= lb; j++) {
            char ca = (char)(a[i - 1] | (a[i - 1] >= 'A' && a[i - 1] <= 'Z' ? 0x20 : 0));
            char cb = (char)(b[j - 1] | (b[j - 1] >= 'A' && b[j - 1] <= 'Z' ? 0x20 : 0));
            size_t best = d[i - 1][j - 1] + (ca != cb);
            if (d[i - 1][j] + 1 < best)
                best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best)
                best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    }
    return d[la][lb];
}

const char *cfg_closest(const char *word, const char *const *cands, size_t n)
{
    size_t len = strlen(word);
    size_t limit = len < 4 ? 1 : len < 9 ? 2 : 3;
    const char *best = NULL;
    size_t best_d = SIZE_MAX;
    for (size_t i = 0; i < n; i++) {
        size_t d = typo_distance(word, cands[i]);
        /* "api_key" for "api_key_env": a prefix of at least 4 characters is close too. */
        if (d > limit && len >= 4 && str_has_prefix(cands[i], word))
            d = limit;
        if (d <= limit && d < best_d) {
            best = cands[i];
            best_d = d;
        }
    }
    return best;
}

/* ---- Values ----------------------------------------------------------------------------- */

static void put_got(struct buf *b, const cJSON *v)
{
    if (cJSON_IsNumber(v))
        schema_put_num(b, v->valuedouble);
    else if (cJSON_IsString(v))
        buf_puts(b, v->valuestring && !*v->valuestring ? "an empty string" : "a string");
    else if (cJSON_IsBool(v))
        buf_puts(b, cJSON_IsTrue(v) ? "true" : "false");
    else if (cJSON_IsNull(v))
        buf_puts(b, "null");
    else if (cJSON_IsArray(v))
        buf_puts(b, cJSON_GetArraySize(v) ? "an array" : "an empty array");
    else
        buf_puts(b, "an object");
}

/* "expected DESC (got X)" at the current path; tail is appended when not NULL. */
static void expected(struct cfg_ctx *ctx, const struct schema_entry *e, const cJSON *v,
                     const char *tail)
{
    struct buf b;
    buf_init(&b);
    schema_describe(e, &b);
    buf_puts(&b, " (got ");
    if (cJSON_IsString(v) && v->valuestring && *v->valuestring && (e->type == ST_ENUM || e->names))
        cfg_quote(&b, v->valuestring); /* a known-name field: safe and useful to echo */
    else
        put_got(&b, v);
    buf_putc(&b, ')');
    if (tail)
        buf_puts(&b, tail);
    cfg_err(ctx, "expected %s", buf_str(&b));
    buf_cleanup(&b);
}

static void *at(void *base, size_t off)
{
    return (char *)base + off;
}

static void walk_number(struct cfg_ctx *ctx, const struct schema_entry *e, const cJSON *v,
                        void *base)
{
    if (!cJSON_IsNumber(v)) {
        expected(ctx, e, v, NULL);
        return;
    }
    double d = v->valuedouble;
    bool ok = isfinite(d) && d >= -SCHEMA_UNBOUNDED && d <= SCHEMA_UNBOUNDED;
    if (ok && e->type != ST_DOUBLE && (double)(long long)d != d)
        ok = false;
    if (ok && !((e->flags & SF_INHERIT) && d == -1)) {
        ok = (e->flags & SF_GT_MIN) ? d > e->min : d >= e->min;
        ok = ok && d <= e->max;
    }
    if (!ok) {
        expected(ctx, e, v, NULL);
        return;
    }
    if (e->flags & SF_NO_STORE)
        return;
    if (e->type == ST_LONG)
        *(long *)at(base, e->off) = (long)d;
    else if (e->type == ST_MS)
        *(int64_t *)at(base, e->off) = (int64_t)d;
    else
        *(double *)at(base, e->off) = d;
}

static long name_index(const char *const *names, const char *s)
{
    for (long i = 0; names[i]; i++) {
        if (str_eq(names[i], s))
            return i;
    }
    return -1;
}

/* A did-you-mean tail for a value that is not one of names, or NULL. */
static char *suggest_name(const char *const *names, const char *s)
{
    size_t n = 0;
    while (names[n])
        n++;
    const char *near = cfg_closest(s, names, n);
    return near ? xasprintf("; did you mean \"%s\"?", near) : NULL;
}

static void walk_string(struct cfg_ctx *ctx, const struct schema_entry *e, const cJSON *v,
                        void *base)
{
    if (!cJSON_IsString(v) || !v->valuestring || !*v->valuestring) {
        expected(ctx, e, v, NULL);
        return;
    }
    if (e->names && name_index(e->names, v->valuestring) < 0) {
        char *tail = suggest_name(e->names, v->valuestring);
        expected(ctx, e, v, tail);
        free(tail);
        return;
    }
    char *copy = xstrdup(v->valuestring);
    const char *problem = e->check ? e->check(copy) : NULL;
    if (problem)
        cfg_err(ctx, "%s", problem);
    /* Stored even when rejected (the config is discarded anyway), so later checks do not
     * add "missing" or "unknown name" errors about the same value. */
    char **dst = at(base, e->off);
    free(*dst);
    *dst = copy;
}

static void walk_enum(struct cfg_ctx *ctx, const struct schema_entry *e, const cJSON *v, void *base)
{
    long i = cJSON_IsString(v) && v->valuestring ? name_index(e->names, v->valuestring) : -1;
    if (i < 0) {
        char *tail =
            cJSON_IsString(v) && v->valuestring ? suggest_name(e->names, v->valuestring) : NULL;
        expected(ctx, e, v, tail);
        free(tail);
        return;
    }
    *(int *)at(base, e->off) = (int)i;
}

static void add_ref(struct cfg_ctx *ctx, const struct schema_entry *e, const char *name, void *dest,
                    bool dest_long)
{
    ctx->refs = xgrow(ctx->refs, &ctx->cap_refs, ctx->n_refs + 1, sizeof *ctx->refs);
    struct cfg_ref *r = &ctx->refs[ctx->n_refs++];
    r->path = xstrdup(ctx->path.s);
    r->name = xstrdup(name);
    r->kind = e->ref;
    r->dest = dest;
    r->dest_long = dest_long;
}

static bool is_name_value(const cJSON *v)
{
    return cJSON_IsString(v) && v->valuestring && *v->valuestring;
}

static bool array_fits(struct cfg_ctx *ctx, const struct schema_entry *e, const cJSON *v)
{
    if (!cJSON_IsArray(v)) {
        expected(ctx, e, v, NULL);
        return false;
    }
    int n = cJSON_GetArraySize(v);
    if (n < e->min) {
        expected(ctx, e, v, NULL);
        return false;
    }
    if (n > CONFIG_MAX_ARRAY) {
        cfg_err(ctx, "too many entries (%d; at most %d)", n, CONFIG_MAX_ARRAY);
        return false;
    }
    return true;
}

static void walk_ref_list(struct cfg_ctx *ctx, const struct schema_entry *e, const cJSON *v,
                          void *base)
{
    if (!array_fits(ctx, e, v))
        return;
    size_t n = (size_t)cJSON_GetArraySize(v);
    size_t *idx = xmalloc((n ? n : 1) * sizeof *idx);
    *(size_t **)at(base, e->off) = idx;
    *(size_t *)at(base, e->aux_off) = n;
    size_t i = 0;
    for (const cJSON *it = v->child; it && i < n; it = it->next, i++) {
        idx[i] = SIZE_MAX;
        size_t mark = cfg_path_index(&ctx->path, i);
        if (is_name_value(it)) {
            add_ref(ctx, e, it->valuestring, &idx[i], false);
        } else {
            struct buf got;
            buf_init(&got);
            put_got(&got, it);
            cfg_err(ctx, "expected a %s name (got %s)", e->ref == REF_ROUTE ? "route" : "provider",
                    buf_str(&got));
            buf_cleanup(&got);
        }
        cfg_path_pop(&ctx->path, mark);
    }
}

/* Names marked SF_UNIQUE must differ across the elements of one array. */
static void check_unique(struct cfg_ctx *ctx, const struct schema *sub, const char *arr, size_t n,
                         size_t elem_size)
{
    for (size_t k = 0; k < sub->n; k++) {
        const struct schema_entry *e = &sub->entries[k];
        if (!(e->flags & SF_UNIQUE))
            continue;
        for (size_t i = 1; i < n; i++) {
            const char *a = *(char *const *)(arr + i * elem_size + e->off);
            for (size_t j = 0; a && j < i; j++) {
                if (!str_eq(a, *(char *const *)(arr + j * elem_size + e->off)))
                    continue;
                size_t mark = cfg_path_index(&ctx->path, i);
                cfg_path_key(&ctx->path, e->key);
                struct buf q;
                buf_init(&q);
                cfg_quote(&q, a);
                cfg_err(ctx, "duplicate %s %s (also at %.*s[%zu]); each %s must be unique", e->key,
                        buf_str(&q), (int)mark, ctx->path.s, j, e->key);
                buf_cleanup(&q);
                cfg_path_pop(&ctx->path, mark);
                break;
            }
        }
    }
}

static void walk_object_array(struct cfg_ctx *ctx, const struct schema_entry *e, const cJSON *v,
                              void *base)
{
    if (!array_fits(ctx, e, v))
        return;
    size_t n = (size_t)cJSON_GetArraySize(v);
    char *arr = xcalloc(n ? n : 1, e->elem_size);
    *(void **)at(base, e->off) = arr;
    *(size_t *)at(base, e->aux_off) = n;
    size_t i = 0;
    for (const cJSON *it = v->child; it && i < n; it = it->next, i++) {
        config_walk_defaults(e->sub, arr + i * e->elem_size);
        size_t mark = cfg_path_index(&ctx->path, i);
        config_walk_object(ctx, e->sub, it, arr + i * e->elem_size);
        cfg_path_pop(&ctx->path, mark);
    }
    check_unique(ctx, e->sub, arr, n, e->elem_size);
}

static void walk_value(struct cfg_ctx *ctx, const struct schema_entry *e, const cJSON *v,
                       void *base)
{
    switch (e->type) {
    case ST_STRING:
        walk_string(ctx, e, v, base);
        return;
    case ST_LONG:
    case ST_MS:
    case ST_DOUBLE:
        walk_number(ctx, e, v, base);
        return;
    case ST_BOOL:
        if (cJSON_IsBool(v))
            *(bool *)at(base, e->off) = cJSON_IsTrue(v);
        else
            expected(ctx, e, v, NULL);
        return;
    case ST_ENUM:
        walk_enum(ctx, e, v, base);
        return;
    case ST_OBJECT:
        if (!cJSON_IsObject(v)) {
            expected(ctx, e, v, NULL);
            return;
        }
        if (e->flags & SF_HAS)
            *(bool *)at(base, e->aux_off) = true;
        config_walk_object(ctx, e->sub, v, at(base, e->off));
        return;
    case ST_OBJECT_ARRAY:
        walk_object_array(ctx, e, v, base);
        return;
    case ST_REF:
    case ST_REF_OPT:
        if (is_name_value(v))
            add_ref(ctx, e, v->valuestring, at(base, e->off), e->type == ST_REF_OPT);
        else
            expected(ctx, e, v, NULL);
        return;
    case ST_REF_LIST:
        walk_ref_list(ctx, e, v, base);
        return;
    }
}

/* ---- Objects ---------------------------------------------------------------------------- */

static void unknown_key(struct cfg_ctx *ctx, const struct schema *s, const char *key)
{
    const char *keys[SCHEMA_MAX_ENTRIES];
    for (size_t i = 0; i < s->n; i++)
        keys[i] = s->entries[i].key;
    const char *near = cfg_closest(key, keys, s->n);
    struct buf path;
    buf_init(&path);
    buf_printf(&path, "%s%s", ctx->path.s, ctx->path.len ? "." : "");
    cfg_printable(&path, key, 64);
    if (near) {
        cfg_err_at(ctx, buf_str(&path), "unknown key (did you mean \"%s\"?)", near);
    } else {
        struct buf known;
        buf_init(&known);
        for (size_t i = 0; i < s->n; i++)
            buf_printf(&known, "%s%s", i ? ", " : "", keys[i]);
        cfg_err_at(ctx, buf_str(&path), "unknown key (known keys: %s)", buf_str(&known));
        buf_cleanup(&known);
    }
    buf_cleanup(&path);
}

void config_walk_object(struct cfg_ctx *ctx, const struct schema *s, const cJSON *obj, void *base)
{
    if (!cJSON_IsObject(obj)) {
        struct buf got;
        buf_init(&got);
        put_got(&got, obj);
        cfg_err(ctx, "expected an object (got %s)", buf_str(&got));
        buf_cleanup(&got);
        return;
    }
    uint64_t seen = 0;
    for (const cJSON *it = obj->child; it; it = it->next) {
        const struct schema_entry *e = it->string ? schema_find(s, it->string) : NULL;
        if (!e) {
            unknown_key(ctx, s, it->string ? it->string : "");
            continue;
        }
        uint64_t bit = 1ull << (size_t)(e - s->entries);
        size_t mark = cfg_path_key(&ctx->path, e->key);
        if (seen & bit)
            cfg_err(ctx, "duplicate key (each key may appear once per object)");
        else
            walk_value(ctx, e, it, base);
        seen |= bit;
        cfg_path_pop(&ctx->path, mark);
    }
    for (size_t i = 0; i < s->n; i++) {
        const struct schema_entry *e = &s->entries[i];
        if (!(e->flags & SF_REQUIRED) || (seen & (1ull << i)))
            continue;
        struct buf want;
        buf_init(&want);
        schema_describe(e, &want);
        size_t mark = cfg_path_key(&ctx->path, e->key);
        cfg_err(ctx, "missing required key (expected %s)", buf_str(&want));
        cfg_path_pop(&ctx->path, mark);
        buf_cleanup(&want);
    }
}

void config_walk_defaults(const struct schema *s, void *base)
{
    for (size_t i = 0; i < s->n; i++) {
        const struct schema_entry *e = &s->entries[i];
        if (e->flags & SF_NO_STORE)
            continue;
        switch (e->type) {
        case ST_STRING:
            *(char **)at(base, e->off) = xstrdup(e->def_s);
            break;
        case ST_LONG:
            *(long *)at(base, e->off) = (long)e->def;
            break;
        case ST_MS:
            *(int64_t *)at(base, e->off) = (int64_t)e->def;
            break;
        case ST_DOUBLE:
            *(double *)at(base, e->off) = e->def;
            break;
        case ST_BOOL:
            *(bool *)at(base, e->off) = e->def != 0;
            break;
        case ST_ENUM:
            *(int *)at(base, e->off) = (int)e->def;
            break;
        case ST_OBJECT:
            config_walk_defaults(e->sub, at(base, e->off));
            break;
        case ST_OBJECT_ARRAY:
        case ST_REF_LIST:
            *(void **)at(base, e->off) = NULL;
            *(size_t *)at(base, e->aux_off) = 0;
            break;
        case ST_REF:
            *(size_t *)at(base, e->off) = SIZE_MAX;
            break;
        case ST_REF_OPT:
            *(long *)at(base, e->off) = -1;
            break;
        }
    }
}

void config_walk_release(const struct schema *s, void *base)
{
    for (size_t i = 0; i < s->n; i++) {
        const struct schema_entry *e = &s->entries[i];
        switch (e->type) {
        case ST_STRING:
            free(*(char **)at(base, e->off));
            *(char **)at(base, e->off) = NULL;
            break;
        case ST_OBJECT:
            config_walk_release(e->sub, at(base, e->off));
            break;
        case ST_OBJECT_ARRAY: {
            char *arr = *(char **)at(base, e->off);
            size_t n = *(size_t *)at(base, e->aux_off);
            for (size_t k = 0; arr && k < n; k++)
                config_walk_release(e->sub, arr + k * e->elem_size);
            free(arr);
            *(void **)at(base, e->off) = NULL;
            *(size_t *)at(base, e->aux_off) = 0;
            break;
        }
        case ST_REF_LIST:
            free(*(void **)at(base, e->off));
            *(void **)at(base, e->off) = NULL;
            *(size_t *)at(base, e->aux_off) = 0;
            break;
        case ST_LONG:
        case ST_MS:
        case ST_DOUBLE:
        case ST_BOOL:
        case ST_ENUM:
        case ST_REF:
        case ST_REF_OPT:
            break;
        }
    }
}
