/*
 * fuzz_gateway_writers.c - libFuzzer target for what the gateway writes back: the SSE
 * encoder (gw_sse_*), the whole-answer JSON (gw_completion_json), error bodies and the JSON
 * writer (gw_json_*), driven by a script of events and values read from the input.
 * Properties: no crash or leak; every SSE chunk is "data: <payload>\n\n" with no raw line
 * break inside, each payload is a JSON object or the final [DONE], nothing follows [DONE]
 * or an error chunk, and the whole stream is valid UTF-8; the chat.completion, the error
 * body and every JSON writer document parse as JSON; a string value that was valid UTF-8
 * without NUL reads back unchanged.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "../../src/gateway/internal.h"
#include "fuzz_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_stream(const struct buf *out)
{
    const char *s = buf_str(out);
    bool over = false;
    if (utf8_valid_prefix(s, out->len) != out->len)
        __builtin_trap();
    while (*s) {
        const char *end = strstr(s, "\n\n");
        if (over || !end || strncmp(s, "data: ", 6) != 0)
            __builtin_trap();
        const char *payload = s + 6;
        size_t n = (size_t)(end - payload);
        if (memchr(payload, '\n', n) || memchr(payload, '\r', n))
            __builtin_trap();
        if (n == 6 && memcmp(payload, "[DONE]", 6) == 0) {
            over = true;
        } else {
            cJSON *j = cJSON_ParseWithLength(payload, n);
            if (!cJSON_IsObject(j))
                __builtin_trap();
            over = cJSON_GetObjectItemCaseSensitive(j, "error") != NULL;
            cJSON_Delete(j);
        }
        s = end + 2;
    }
}

static void check_json(const struct buf *out)
{
    cJSON *j = cJSON_ParseWithLength(buf_str(out), out->len);
    if (!j)
        __builtin_trap();
    cJSON_Delete(j);
}

/* One event from the script into the stream and the collected answer. */
static void one_event(struct fuzz_input *in, struct gw_sse *sse, struct llm_response *resp,
                      struct buf *out)
{
    char a[256], b[256];
    struct llm_event ev;
    memset(&ev, 0, sizeof ev);
    switch (fuzz_byte(in) % 6) {
    case 0:
        ev.type = LLM_EV_TEXT;
        ev.len = fuzz_str(in, a);
        ev.text = a;
        break;
    case 1:
        ev.type = LLM_EV_TOOL_CALL;
        ev.index = fuzz_byte(in) % 4;
        ev.id = fuzz_str(in, a) ? a : NULL;
        ev.name = fuzz_str(in, b) ? b : NULL;
        break;
    case 2:
        ev.type = LLM_EV_TOOL_ARGS;
        ev.index = fuzz_byte(in) % 4;
        ev.len = fuzz_str(in, a);
        ev.text = a;
        break;
    case 3:
        ev.type = LLM_EV_USAGE;
        ev.usage.present = true;
        ev.usage.input_tokens = fuzz_byte(in) * 1000L;
        ev.usage.output_tokens = fuzz_byte(in);
        ev.usage.cached_tokens = fuzz_byte(in);
        break;
    case 4:
        ev.type = LLM_EV_FINISH;
        ev.finish = (enum llm_finish)(fuzz_byte(in) % (LLM_FINISH_ERROR + 1));
        break;
    default:
        ev.type = LLM_EV_ERROR;
        ev.len = fuzz_str(in, a);
        ev.text = a;
        break;
    }
    gw_sse_event(sse, &ev, out);
    if (!resp->finished && resp->errclass == LLM_ERR_NONE)
        llm_response_collect(resp, &ev);
}

static void writers_script(struct fuzz_input *in)
{
    char id[256], model[256];
    fuzz_str(in, id);
    fuzz_str(in, model);
    bool usage = fuzz_byte(in) & 1;
    struct gw_sse sse;
    struct llm_response resp;
    struct buf out;
    gw_sse_init(&sse, id, model, 1700000000, usage);
    llm_response_init(&resp);
    buf_init(&out);
    for (int k = 0; k < 64 && fuzz_left(in) > 0; k++)
        one_event(in, &sse, &resp, &out);
    if (fuzz_byte(in) & 1) {
        char why[256];
        size_t n = fuzz_str(in, why);
        gw_sse_fail(&sse, why, n, &out);
    } else {
        struct llm_event fin = {.type = LLM_EV_FINISH, .finish = LLM_FINISH_STOP};
        gw_sse_event(&sse, &fin, &out);
    }
    check_stream(&out);
    buf_reset(&out);
    gw_completion_json(id, model, 1700000000, &resp, &out);
    check_json(&out);

    struct gw_error e;
    char why_type[256];
    buf_reset(&out);
    struct llm_error_info info;
    llm_error_info_init(&info);
    fuzz_str(in, why_type);
    str_copy(info.type, sizeof info.type, why_type);
    fuzz_str(in, why_type);
    str_copy(info.code, sizeof info.code, why_type);
    struct gw_call_failure f = {
        .info = fuzz_byte(in) & 1 ? &info : NULL,
        .cls = (enum llm_errclass)(fuzz_byte(in) % (LLM_ERR_INTERNAL + 1)),
        .upstream_status = 100 + fuzz_byte(in) * 2,
        .no_target = fuzz_byte(in) & 1,
        .retry_after_ms = fuzz_byte(in) * 1000 - 1000,
        .message = model,
    };
    gw_error_from_call(&e, &f);
    gw_error_json(&e, &out);
    check_json(&out);
    buf_reset(&out);
    gw_error_from_parse(&e, SB_ERR_INVALID, id);
    gw_error_json(&e, &out);
    check_json(&out);
    gw_sse_cleanup(&sse);
    llm_response_cleanup(&resp);
    buf_cleanup(&out);
}

/* A random document through the JSON writer: depth below GW_JSON_DEPTH, keys only in
 * objects, everything closed at the end. */
static void json_script(struct fuzz_input *in)
{
    static const char *const keys[] = {"a", "b", "id", "model", "x_y"};
    char s[256];
    char stack[GW_JSON_DEPTH];
    int depth = 0;
    struct buf out;
    struct gw_json j;
    buf_init(&out);
    gw_json_init(&j, &out);
    gw_json_open(&j, NULL, '{');
    stack[depth++] = '{';
    for (int k = 0; k < 128 && fuzz_left(in) > 0; k++) {
        uint8_t op = fuzz_byte(in);
        const char *key = stack[depth - 1] == '{' ? keys[op % 5] : NULL;
        switch ((op >> 3) % 8) {
        case 0:
            if (depth < GW_JSON_DEPTH - 1) {
                char br = op & 0x80 ? '[' : '{';
                gw_json_open(&j, key, br);
                stack[depth++] = br;
            }
            break;
        case 1:
            if (depth > 1) {
                depth--;
                gw_json_close(&j, stack[depth] == '{' ? '}' : ']');
            }
            break;
        case 2: {
            size_t n = fuzz_str(in, s);
            gw_json_strn(&j, key, s, n);
            break;
        }
        case 3:
            fuzz_str(in, s);
            gw_json_str(&j, key, fuzz_byte(in) & 1 ? s : NULL);
            break;
        case 4: {
            double d = 0;
            uint8_t raw[8];
            for (int i = 0; i < 8; i++)
                raw[i] = fuzz_byte(in);
            memcpy(&d, raw, sizeof d);
            gw_json_num(&j, key, d);
            break;
        }
        case 5: {
            uint64_t hi = fuzz_byte(in), lo = fuzz_byte(in);
            gw_json_int(&j, key, (int64_t)(hi << 56 | lo));
            break;
        }
        case 6:
            gw_json_uint(&j, key, UINT64_MAX - fuzz_byte(in));
            break;
        default:
            if (op & 1)
                gw_json_bool(&j, key, op & 2);
            else
                gw_json_null(&j, key);
            break;
        }
    }
    while (depth > 0) {
        depth--;
        gw_json_close(&j, stack[depth] == '{' ? '}' : ']');
    }
    check_json(&out);

    /* One string value reads back as it was when it was valid UTF-8 without NUL. */
    size_t n = fuzz_str(in, s);
    buf_reset(&out);
    gw_json_init(&j, &out);
    gw_json_open(&j, NULL, '{');
    gw_json_strn(&j, "s", s, n);
    gw_json_close(&j, '}');
    cJSON *doc = cJSON_ParseWithLength(buf_str(&out), out.len);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(doc, "s");
    if (!cJSON_IsString(v))
        __builtin_trap();
    if (utf8_valid_prefix(s, n) == n && strlen(s) == n && strcmp(v->valuestring, s) != 0)
        __builtin_trap();
    cJSON_Delete(doc);
    buf_cleanup(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_input in = {data, size, 0};
    if (fuzz_byte(&in) & 1)
        json_script(&in);
    else
        writers_script(&in);
    return 0;
}
