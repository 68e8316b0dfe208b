/*
 * config.c - config_load / config_parse / config_free and the diagnostics list: reads the
 * file, parses the JSON (reporting malformed input with line:column), runs the schema walk
 * and validation, and hands back an immutable struct config or every error found.
 * No shared state: any thread may parse; the result is read-only afterwards.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "internal.h"

#define CONFIG_MAX_BYTES (16u << 20)

/* ---- Diagnostics ------------------------------------------------------------------------ */

void config_diag_init(struct config_diag *d)
{
    d->items = NULL;
    d->n = 0;
    d->cap = 0;
}

void config_diag_cleanup(struct config_diag *d)
{
    for (size_t i = 0; i < d->n; i++)
        free(d->items[i]);
    free(d->items);
    config_diag_init(d);
}

void config_diag_add(struct config_diag *d, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *item = xvasprintf(fmt, ap);
    va_end(ap);
    d->items = xgrow(d->items, &d->cap, d->n + 1, sizeof *d->items);
    d->items[d->n++] = item;
}

/* ---- Lookups ---------------------------------------------------------------------------- */

long config_find_target(const struct config *cfg, const char *name)
{
    for (size_t i = 0; name && i < cfg->n_targets; i++) {
        if (str_eq(cfg->targets[i].name, name))
            return (long)i;
    }
    return -1;
}

long config_find_route(const struct config *cfg, const char *name)
{
    for (size_t i = 0; name && i < cfg->n_routes; i++) {
        if (str_eq(cfg->routes[i].name, name))
            return (long)i;
    }
    return -1;
}

/* ---- Parsing ---------------------------------------------------------------------------- */

static const char *env_getenv(void *ctx, const char *name)
{
    (void)ctx;
    return getenv(name);
}

static bool is_blank(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\n' && s[i] != '\r')
            return false;
    }
    return true;
}

static bool inside_string(const char *text, size_t pos)
{
    bool in = false;
    for (size_t i = 0; i < pos; i++) {
        if (in && text[i] == '\\')
            i++;
        else if (text[i] == '"')
            in = !in;
    }
    return in;
}

/* Why the JSON text fails at pos, with a hint for the usual hand-editing mistakes. */
static void json_why(struct buf *why, const char *text, size_t len, size_t pos)
{
    if (pos >= len) {
        buf_puts(why, "unexpected end of input; is a closing } or ] missing?");
        return;
    }
    char c = text[pos];
    const char *eol = memchr(&text[pos], '\n', len - pos);
    size_t rest = eol ? (size_t)(eol - &text[pos]) : len - pos;
    if (inside_string(text, pos)) {
        if (c == '\\')
            buf_puts(why, "invalid escape in a string");
        else if ((unsigned char)c < 0x20)
            buf_puts(why, "control character in a string; write it as \\n, \\t or \\u00XX");
        else if (!memchr(&text[pos], '"', rest))
            buf_puts(why, "unterminated string; is a closing '\"' missing?");
        else
            buf_puts(why, "invalid string");
        return;
    }
    if (c >= 0x21 && c < 0x7f)
        buf_printf(why, "unexpected '%c'", c);
    else
        buf_printf(why, "unexpected byte 0x%02x", (unsigned char)c);
    size_t k = pos;
    while (k > 0 && is_blank(&text[k - 1], 1))
        k--;
    if ((c == '}' || c == ']') && k > 0 && text[k - 1] == ',')
        buf_puts(why, "; JSON allows no trailing comma");
    else if (c == '/' || c == '#')
        buf_puts(why, "; JSON has no comments");
    else if (c == '\'')
        buf_puts(why, "; JSON strings take double quotes");
}

/* "FILE:LINE:COL: malformed JSON (...)" for the byte at pos. */
static void json_error(struct config_diag *errs, const char *label, const char *text, size_t len,
                       size_t pos)
{
    size_t line = 1, col = 1;
    for (size_t i = 0; i < pos && i < len; i++) {
        if (text[i] == '\n') {
            line++;
            col = 1;
        } else {
            col++;
        }
    }
    struct buf why;
    buf_init(&why);
    json_why(&why, text, len, pos);
    config_diag_add(errs, "%s:%zu:%zu: malformed JSON (%s)", label, line, col, buf_str(&why));
    buf_cleanup(&why);
}

/* cJSON reports a bad object key (a '}' after a comma, a single-quoted or bare key) one
 * byte past it; point at the offending byte instead. */
static size_t key_error_pos(const char *text, size_t len, size_t pos)
{
    if (pos == 0 || pos > len || is_blank(&text[pos - 1], 1) || text[pos - 1] == '"')
        return pos;
    size_t k = pos - 1;
    while (k > 0 && is_blank(&text[k - 1], 1))
        k--;
    return k > 0 && (text[k - 1] == ',' || text[k - 1] == '{') ? pos - 1 : pos;
}

/* Parses text[0..len) (NUL-terminated at len) into a cJSON tree, or reports why not. */
static cJSON *parse_json(const char *text, size_t len, const char *label, struct config_diag *errs)
{
    if (is_blank(text, len)) {
        config_diag_add(errs,
                        "%s: empty file (expected a JSON object with \"providers\" and "
                        "\"routes\")",
                        label);
        return NULL;
    }
    const char *nul = memchr(text, '\0', len);
    if (nul) {
        json_error(errs, label, text, len, (size_t)(nul - text));
        return NULL;
    }
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, len + 1, &end, true);
    if (!root) {
        size_t pos = end && end >= text ? (size_t)(end - text) : len;
        json_error(errs, label, text, len, key_error_pos(text, len, pos));
        return NULL;
    }
    if (!cJSON_IsObject(root)) {
        config_diag_add(errs,
                        "%s: the top level must be a JSON object with \"providers\" and "
                        "\"routes\" (got %s)",
                        label, cJSON_IsArray(root) ? "an array" : "a single value");
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

struct config *config_parse(const char *json, size_t len, const char *source_path,
                            config_getenv_fn getenv_fn, void *env_ctx, struct config_diag *errs)
{
    const char *label = source_path ? source_path : "config";
    struct config *cfg = NULL;
    struct cfg_ctx ctx = {
        .errs = errs, .getenv_fn = getenv_fn ? getenv_fn : env_getenv, .env_ctx = env_ctx};
    char *text = NULL;
    cJSON *root = NULL;

    if (len >= 3 && memcmp(json, "\xef\xbb\xbf", 3) == 0) { /* UTF-8 byte order mark */
        json += 3;
        len -= 3;
    }
    if (len > CONFIG_MAX_BYTES) {
        config_diag_add(errs, "%s: too large (%zu bytes; at most 16 MiB)", label, len);
        goto out;
    }
    text = xmalloc(len + 1);
    memcpy(text, json, len);
    text[len] = '\0';
    root = parse_json(text, len, label, errs);
    if (!root)
        goto out;

    cfg = xcalloc(1, sizeof *cfg);
    ctx.cfg = cfg;
    config_walk_defaults(&config_schema_root, cfg);
    config_walk_object(&ctx, &config_schema_root, root, cfg);
    cJSON_Delete(root);
    root = NULL;
    config_validate(&ctx, source_path);
    cfg->source_path = xstrdup(source_path);
    cfg_err_finish(&ctx);
    if (ctx.n_errors) {
        config_free(cfg);
        cfg = NULL;
    }

out:
    for (size_t i = 0; i < ctx.n_refs; i++) {
        free(ctx.refs[i].path);
        free(ctx.refs[i].name);
    }
    free(ctx.refs);
    cJSON_Delete(root);
    free(text);
    return cfg;
}

struct config *config_load(const char *path, struct config_diag *errs)
{
    struct config *cfg = NULL;
    struct buf data;
    char chunk[65536];
    char why[128];
    FILE *f = fopen(path, "rb");

    buf_init(&data);
    if (!f) {
        config_diag_add(errs, "%s: %s", path, strerror_r(errno, why, sizeof why));
        goto out;
    }
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        buf_append(&data, chunk, n);
        if (data.len > CONFIG_MAX_BYTES) {
            config_diag_add(errs, "%s: too large (more than 16 MiB)", path);
            goto out;
        }
    }
    if (ferror(f)) {
        config_diag_add(errs, "%s: %s", path, strerror_r(errno, why, sizeof why));
        goto out;
    }
    cfg = config_parse(buf_str(&data), data.len, path, NULL, NULL, errs);

out:
    if (f)
        fclose(f);
    buf_cleanup(&data);
    return cfg;
}

static void free_secret(char *s)
{
    if (!s)
        return;
    explicit_bzero(s, strlen(s));
    free(s);
}

void config_free(struct config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->n_targets; i++)
        free_secret(cfg->targets[i].api_key);
    free_secret(cfg->gateway.admin_token);
    config_release_users(cfg);
    for (size_t i = 0; i < cfg->gateway.n_admin_tokens; i++)
        free_secret(cfg->gateway.admin_tokens[i].token);
    free_secret(cfg->fleet.password);
    config_walk_release(&config_schema_root, cfg);
    free(cfg->source_path);
    free(cfg);
}
