/*
 * json.c - a tiny JSON writer over struct buf for the gateway's answers: chat completions,
 * SSE chunks, errors, /admin/state, /v1/models. Strings are escaped and invalid UTF-8 is
 * replaced with U+FFFD, so whatever a provider or a client sent, the output parses.
 *
 * Pure: no locks, no I/O; the caller owns the buffer.
 */
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

void gw_put_json_string(struct buf *b, const char *s, size_t len)
{
    if (!s) {
        buf_puts(b, "null");
        return;
    }
    if (utf8_valid_prefix(s, len) == len) {
        buf_put_json_string(b, s, len);
        return;
    }
    struct buf clean;
    buf_init(&clean);
    utf8_sanitize_append(&clean, s, len);
    buf_put_json_string(b, buf_str(&clean), clean.len);
    buf_cleanup(&clean);
}

void gw_json_init(struct gw_json *j, struct buf *out)
{
    memset(j, 0, sizeof *j);
    j->out = out;
}

/* Comma and key before a value. */
static void json_key(struct gw_json *j, const char *key)
{
    if (j->comma[j->depth])
        buf_putc(j->out, ',');
    j->comma[j->depth] = true;
    if (key) { /* keys are literals of ours: plain ASCII, nothing to escape */
        buf_putc(j->out, '"');
        buf_puts(j->out, key);
        buf_append(j->out, "\":", 2);
    }
}

void gw_json_open(struct gw_json *j, const char *key, char bracket)
{
    json_key(j, key);
    buf_putc(j->out, bracket);
    if (j->depth + 1 < GW_JSON_DEPTH)
        j->depth++;
    j->comma[j->depth] = false;
}

void gw_json_close(struct gw_json *j, char bracket)
{
    buf_putc(j->out, bracket);
    if (j->depth > 0)
        j->depth--;
}

void gw_json_strn(struct gw_json *j, const char *key, const char *s, size_t len)
{
    json_key(j, key);
    gw_put_json_string(j->out, s, len);
}

void gw_json_raw(struct gw_json *j, const char *key, const char *json, size_t len)
{
    json_key(j, key);
    buf_append(j->out, json, len);
}

void gw_json_str(struct gw_json *j, const char *key, const char *s)
{
    gw_json_strn(j, key, s, s ? strlen(s) : 0);
}

void gw_json_int(struct gw_json *j, const char *key, int64_t v)
{
    json_key(j, key);
    buf_printf(j->out, "%" PRId64, v);
}

void gw_json_uint(struct gw_json *j, const char *key, uint64_t v)
{
    json_key(j, key);
    buf_printf(j->out, "%" PRIu64, v);
}

void gw_json_num(struct gw_json *j, const char *key, double v)
{
    json_key(j, key);
    if (!isfinite(v))
        buf_puts(j->out, "null");
    else if (v == floor(v) && fabs(v) < 1e15)
        buf_printf(j->out, "%.0f", v);
    else
        buf_printf(j->out, "%.10g", v);
}

void gw_json_bool(struct gw_json *j, const char *key, bool v)
{
    json_key(j, key);
    buf_puts(j->out, v ? "true" : "false");
}

void gw_json_null(struct gw_json *j, const char *key)
{
    json_key(j, key);
    buf_puts(j->out, "null");
}

cJSON *gw_json_parse_object(const char *body, size_t len)
{
    const char *end = NULL;
    cJSON *o = len ? cJSON_ParseWithLengthOpts(body, len, &end, false) : NULL;
    while (o && end && end < body + len && *end && strchr(" \t\r\n", *end))
        end++;
    if (cJSON_IsObject(o) && end == body + len)
        return o;
    cJSON_Delete(o);
    return NULL;
}
