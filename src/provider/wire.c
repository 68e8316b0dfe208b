/*
 * wire.c - JSON and event helpers shared by the provider adapters (see wire.h).
 * Stateless; any thread.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "switchboard/provider.h"

#include "wire.h"

_Thread_local uint64_t wire_steps;

uint64_t provider_encode_steps(void)
{
    return wire_steps;
}

void wire_msg(char *msg, size_t msglen, const char *fmt, ...)
{
    va_list ap;
    if (!msg || msglen == 0)
        return;
    va_start(ap, fmt);
    int n = vsnprintf(msg, msglen, fmt, ap);
    va_end(ap);
    if (n < 0)
        msg[0] = '\0';
}

cJSON *wire_parse(const char *s, size_t len)
{
    char *copy = xmalloc(len + 1);
    if (len)
        memcpy(copy, s, len);
    copy[len] = '\0';
    cJSON *root = cJSON_ParseWithLengthOpts(copy, len + 1, NULL, true);
    free(copy);
    return root;
}

cJSON *wire_parse_scratch(const char *s, size_t len)
{
    bool arena = scratch_begin();
    cJSON *root = wire_parse(s, len);
    if (arena)
        scratch_end();
    return root;
}

const cJSON *wire_get(const cJSON *obj, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(obj, key);
}

const char *wire_str(const cJSON *obj, const char *key)
{
    const cJSON *v = wire_get(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

bool wire_count(const cJSON *obj, const char *key, long *out)
{
    const cJSON *v = wire_get(obj, key);
    if (!cJSON_IsNumber(v))
        return false;
    double d = v->valuedouble;
    if (!(d >= 0))
        d = 0;
    if (d > 1e15)
        d = 1e15;
    *out = (long)d;
    return true;
}

bool wire_has_text(const char *s)
{
    return s && *s;
}

bool wire_contains_any(const char *text, const char *const *needles, size_t n)
{
    for (size_t i = 0; text && i < n; i++)
        if (strcasestr(text, needles[i]))
            return true;
    return false;
}

size_t wire_base_len(const char *base)
{
    size_t n = strlen(base);
    while (n > 0 && base[n - 1] == '/')
        n--;
    return n;
}

enum sb_status wire_parse_object(const char *text, cJSON **out)
{
    *out = NULL;
    if (!text || text[strspn(text, " \t\r\n")] == '\0')
        return SB_OK;
    *out = wire_parse(text, strlen(text));
    if (!*out)
        return SB_ERR_PARSE;
    if (!cJSON_IsObject(*out)) {
        cJSON_Delete(*out);
        *out = NULL;
        return SB_ERR_INVALID;
    }
    return SB_OK;
}

const char *wire_object_error(enum sb_status st)
{
    return st == SB_ERR_PARSE ? "invalid JSON" : "expected a JSON object";
}

void wire_names_init(struct wire_names *m, size_t n_calls)
{
    m->cap = 8;
    while (m->cap < 2 * n_calls)
        m->cap *= 2;
    m->ids = xcalloc(m->cap, sizeof *m->ids);
    m->names = xcalloc(m->cap, sizeof *m->names);
}

void wire_names_cleanup(struct wire_names *m)
{
    free(m->ids);
    free(m->names);
    memset(m, 0, sizeof *m);
}

/* The slot holding id, or the empty slot where it would go. */
static size_t names_slot(const struct wire_names *m, const char *id)
{
    size_t k = (size_t)hash_fnv1a(id, strlen(id)) & (m->cap - 1);
    while (m->ids[k] && strcmp(m->ids[k], id) != 0) {
        WIRE_STEP();
        k = (k + 1) & (m->cap - 1);
    }
    return k;
}

void wire_names_put(struct wire_names *m, const char *id, const char *name)
{
    if (!id || !name)
        return;
    size_t k = names_slot(m, id);
    if (!m->ids[k] && ++m->n > m->cap / 2) {
        m->n--;
        return;
    }
    m->ids[k] = id;
    m->names[k] = name;
}

const char *wire_names_get(const struct wire_names *m, const char *id)
{
    return id ? m->names[names_slot(m, id)] : NULL;
}

void wire_msg_bad_args(char *msg, size_t msglen, size_t i, size_t j, const char *id,
                       enum sb_status st)
{
    wire_msg(msg, msglen,
             "messages[%zu].tool_calls[%zu].function.arguments (tool call \"%.*s\"): %s", i, j,
             id ? (int)wire_call_id_len(id) > 64 ? 64 : (int)wire_call_id_len(id) : 1,
             id ? id : "?", st == SB_ERR_PARSE ? "not valid JSON" : "not a JSON object");
}

enum llm_errclass wire_emit(const struct llm_sink *sink, const struct llm_event *ev, char *msg,
                            size_t msglen)
{
    if (sink->on_event(sink->ctx, ev) == 0)
        return LLM_ERR_NONE;
    wire_msg(msg, msglen, "stopped by the receiver");
    return LLM_ERR_CANCELLED;
}

enum llm_errclass wire_emit_text(const struct llm_sink *sink, enum llm_event_type type, int index,
                                 const char *text, char *msg, size_t msglen)
{
    if (!text || !*text)
        return LLM_ERR_NONE;
    struct llm_event ev = {.type = type, .text = text, .len = strlen(text), .index = index};
    return wire_emit(sink, &ev, msg, msglen);
}

enum llm_errclass wire_emit_text_kind(const struct llm_sink *sink, enum llm_text_kind kind,
                                      const char *text, char *msg, size_t msglen)
{
    if (!text || !*text)
        return LLM_ERR_NONE;
    struct llm_event ev = {.type = LLM_EV_TEXT, .text = text, .len = strlen(text), .kind = kind};
    return wire_emit(sink, &ev, msg, msglen);
}

/* The separator of a signed id: something before it and a signature after it; else NULL
 * (the id is plain, whatever it holds). */
static const char *sig_sep(const char *id)
{
    const char *sep = id ? strstr(id, WIRE_SIG_SEP) : NULL;
    return sep && sep > id && sep[strlen(WIRE_SIG_SEP)] ? sep : NULL;
}

size_t wire_call_id_len(const char *id)
{
    const char *sep = sig_sep(id);
    return sep ? (size_t)(sep - id) : strlen(id);
}

const char *wire_call_sig(const char *id)
{
    const char *sep = sig_sep(id);
    return sep ? sep + strlen(WIRE_SIG_SEP) : NULL;
}

void wire_add_call_id(cJSON *obj, const char *key, const char *id)
{
    if (!id || !wire_call_sig(id)) {
        cJSON_AddStringToObject(obj, key, id ? id : "");
        return;
    }
    char *plain = xstrndup(id, wire_call_id_len(id));
    cJSON_AddStringToObject(obj, key, plain);
    free(plain);
}

void wire_put_str(struct buf *b, const char *s)
{
    buf_put_json_string(b, s ? s : "", s ? strlen(s) : 0);
}

void wire_put_call_id(struct buf *b, const char *id)
{
    buf_put_json_string(b, id ? id : "", id ? wire_call_id_len(id) : 0);
}

void wire_put_json(struct buf *b, cJSON *v)
{
    char *text = v ? cJSON_PrintUnformatted(v) : NULL;
    buf_puts(b, text ? text : "{}");
    cJSON_free(text);
    cJSON_Delete(v);
}

enum sb_status wire_put_members(struct buf *b, cJSON *root, enum sb_status st)
{
    char *text = st == SB_OK ? cJSON_PrintUnformatted(root) : NULL;
    if (text && text[1] != '}')
        buf_putc(b, ',');
    if (st == SB_OK)
        buf_puts(b, text ? text + 1 : "}"); /* the members and the closing brace */
    cJSON_free(text);
    cJSON_Delete(root);
    return st;
}

void wire_put_system(struct buf *b, const struct llm_request *req, const char *open,
                     const char *close)
{
    bool any = false;
    for (size_t i = 0; i < req->n_messages; i++) {
        const struct llm_message *m = &req->messages[i];
        WIRE_STEP();
        if (m->role != LLM_ROLE_SYSTEM || !wire_has_text(m->content))
            continue;
        buf_puts(b, any ? "\\n\\n" : open);
        buf_put_json_chars(b, m->content, strlen(m->content));
        any = true;
    }
    if (any)
        buf_puts(b, close);
}

enum llm_errclass wire_emit_call(const struct llm_sink *sink, int index, const char *id,
                                 const char *sig, const char *name, char *msg, size_t msglen)
{
    char synth[32];
    char *signed_id = NULL;
    if (!id) {
        snprintf(synth, sizeof synth, "call_%d", index);
        id = synth;
    }
    if (sig && *sig) /* kept in the id the client echoes back */
        id = signed_id = xasprintf("%.*s%s%s", (int)wire_call_id_len(id), id, WIRE_SIG_SEP, sig);
    struct llm_event ev = {.type = LLM_EV_TOOL_CALL, .index = index, .id = id, .name = name};
    enum llm_errclass c = wire_emit(sink, &ev, msg, msglen);
    free(signed_id);
    return c;
}

enum llm_errclass wire_emit_args(const struct llm_sink *sink, int index, const cJSON *args,
                                 char *msg, size_t msglen)
{
    char *printed = cJSON_IsObject(args) ? cJSON_PrintUnformatted(args) : NULL;
    enum llm_errclass c =
        wire_emit_text(sink, LLM_EV_TOOL_ARGS, index, printed ? printed : "{}", msg, msglen);
    cJSON_free(printed);
    return c;
}

enum llm_errclass wire_emit_end(const struct llm_sink *sink, const struct llm_usage *usage,
                                enum llm_finish finish, char *msg, size_t msglen)
{
    enum llm_errclass c = LLM_ERR_NONE;
    if (usage && usage->present) {
        struct llm_event ev = {.type = LLM_EV_USAGE, .usage = *usage};
        c = wire_emit(sink, &ev, msg, msglen);
    }
    if (c == LLM_ERR_NONE) {
        struct llm_event ev = {.type = LLM_EV_FINISH, .finish = finish};
        c = wire_emit(sink, &ev, msg, msglen);
    }
    return c;
}
