/*
 * fuzz_json_pass.c - differential libFuzzer target for the same-format passthrough of
 * non-streaming answers. The input is either a raw body (first byte odd) or a script that
 * builds a random OpenAI chat.completion (members in any order, some missing, doubled or of
 * the wrong type; content with escapes, \u, raw and invalid UTF-8; finish reasons; usage with
 * integer, float, negative, mismatched totals and details; refusal, tool calls, logprobs,
 * annotations; errors; stray whitespace and line breaks; cut anywhere). The body is answered
 * the way the gateway answers it twice: with the scanner (provider_openai: forwarded when
 * it vouches for it) and without it (provider_openai_parsed: parsed and encoded again), fed
 * in the same random pieces. Property: the same outcome class and the same events reach the
 * router, and an OpenAI client reading either answer reads the same thing.
 */
/* fuzz-extra: tests/unit/support_json_pass.c tests/unit/support_passthrough.c */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../unit/support_json_pass.h"
#include "fuzz_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void put_ws(struct fuzz_input *in, struct buf *b)
{
    static const char *const ws[] = {"", "", "", " ", "\n  ", "\t", "\r\n"};
    buf_puts(b, FUZZ_PICK(in, ws));
}

/* Up to 15 pieces of text as a JSON string's inside. */
static void put_text(struct fuzz_input *in, struct buf *b)
{
    static const char *const pieces[] = {"\\n",      "\\\"",         "\\\\",
                                         "\\/",      "\\t",          "\\u00e9",
                                         "\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80",
                                         "\xC3",     "\\ud83d",      " ",
                                         "stop",     "\\r\\n",       "\\b\\f",
                                         "\x01",     "\\u0000"};
    size_t n = fuzz_byte(in) & 15;
    for (size_t i = 0; i < n && fuzz_left(in); i++) {
        uint8_t c = fuzz_byte(in);
        if (c < 0x40 && c % 2 == 0)
            buf_puts(b, pieces[(c / 2) % (sizeof pieces / sizeof pieces[0])]);
        else if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
            buf_putc(b, (char)c);
        else
            buf_putc(b, 'a' + c % 26);
    }
}

static void put_message(struct fuzz_input *in, struct buf *b)
{
    static const char *const roles[] = {"\"assistant\"", "\"assistant\"", "\"user\"", "null"};
    static const char *const extra[] = {
        "\"refusal\":null",
        "\"refusal\":\"no\"",
        "\"annotations\":[]",
        "\"annotations\":[{\"type\":\"url_citation\"}]",
        "\"tool_calls\":null",
        "\"tool_calls\":[]",
        "\"tool_calls\":[{\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":\"f\","
        "\"arguments\":\"{}\"}}]",
        "\"reasoning_content\":null",
        "\"reasoning_content\":\"hm\"",
        "\"reasoning\":null",
        "\"function_call\":null",
        "\"audio\":null",
        "\"x\":1",
        "\"content\":\"again\"",
    };
    uint8_t m = fuzz_byte(in);
    buf_putc(b, '{');
    put_ws(in, b);
    if (!(m & 1))
        buf_printf(b, "\"role\":%s,", FUZZ_PICK(in, roles));
    for (int i = 0; i < (m >> 5); i++)
        buf_printf(b, "%s,", FUZZ_PICK(in, extra));
    if (m & 2) {
        buf_puts(b, "\"content\":null");
    } else {
        buf_puts(b, "\"content\":\"");
        put_text(in, b);
        buf_putc(b, '"');
    }
    if (m & 4)
        buf_printf(b, ",%s", FUZZ_PICK(in, extra));
    put_ws(in, b);
    buf_putc(b, '}');
}

static void put_choice(struct fuzz_input *in, struct buf *b)
{
    static const char *const finish[] = {"\"stop\"",           "\"length\"", "\"tool_calls\"",
                                         "\"content_filter\"", "null",       "\"weird\"",
                                         "\"stop\"",           "\"\""};
    static const char *const lp[] = {"null", "{\"content\":[]}", "null"};
    uint8_t m = fuzz_byte(in);
    buf_putc(b, '{');
    if (!(m & 1))
        buf_printf(b, "\"index\":%s,", m & 2 ? "1" : "0");
    put_ws(in, b);
    buf_puts(b, "\"message\":");
    put_message(in, b);
    if (!(m & 4))
        buf_printf(b, ",\"finish_reason\":%s", FUZZ_PICK(in, finish));
    if (m & 8)
        buf_printf(b, ",\"logprobs\":%s", FUZZ_PICK(in, lp));
    if (m & 16)
        buf_puts(b, ",\"stop_reason\":null");
    buf_putc(b, '}');
}

static void put_usage(struct fuzz_input *in, struct buf *b)
{
    static const char *const num[] = {
        "0", "7", "12", "1.0", "-3", "1e2", "\"5\"", "999999999999999", "1234567890123456"};
    static const char *const details[] = {
        "",
        ",\"prompt_tokens_details\":null",
        ",\"prompt_tokens_details\":{\"cached_tokens\":3}",
        ",\"prompt_tokens_details\":{\"cached_tokens\":2.5,\"audio_tokens\":0}",
        ",\"completion_tokens_details\":{\"reasoning_tokens\":1}",
        ",\"queue_time\":0.01"};
    uint8_t m = fuzz_byte(in);
    if (m & 1) {
        buf_puts(b, m & 2 ? "null" : "[]");
        return;
    }
    const char *p = FUZZ_PICK(in, num), *c = FUZZ_PICK(in, num);
    buf_printf(b, "{\"prompt_tokens\":%s,\"completion_tokens\":%s", p, c);
    if (!(m & 4)) {
        long total = atol(p) + atol(c) + (m & 8 ? 1 : 0);
        buf_printf(b, ",\"total_tokens\":%ld", total);
    }
    buf_puts(b, FUZZ_PICK(in, details));
    if (m & 16)
        buf_puts(b, ",\"prompt_tokens\":1");
    buf_putc(b, '}');
}

/* Top-level members in an order and shape the input picks. */
static void build(struct fuzz_input *in, struct buf *b)
{
    uint8_t m = fuzz_byte(in), m2 = fuzz_byte(in);
    buf_putc(b, '{');
    put_ws(in, b);
    if (!(m & 1))
        buf_puts(b, "\"id\":\"chatcmpl-up\",");
    if (!(m & 2))
        buf_printf(b, "\"object\":\"%s\",", m2 & 1 ? "chat.completion.chunk" : "chat.completion");
    if (!(m & 4))
        buf_puts(b, m2 & 2 ? "\"created\":null," : "\"created\":17,");
    if (!(m & 8))
        buf_puts(b, "\"model\":\"gpt-up\",");
    put_ws(in, b);
    if (m2 & 4)
        buf_puts(b, "\"system_fingerprint\":\"fp_x\",");
    if (m2 & 8)
        buf_puts(b, "\"service_tier\":null,");
    if (m2 & 16)
        buf_puts(b, "\"error\":{\"message\":\"busy\",\"type\":\"server_error\"},");
    if (m2 & 32)
        buf_puts(b, "\"x_groq\":{\"id\":[1,2.5e3,true,null]},");
    if (m2 & 64)
        buf_puts(b, "\"model\":\"again\",");
    buf_puts(b, "\"choices\":[");
    if (!(m & 16))
        put_choice(in, b);
    if (m & 32) {
        buf_putc(b, ',');
        put_choice(in, b);
    }
    buf_putc(b, ']');
    if (!(m & 64)) {
        buf_puts(b, ",\"usage\":");
        put_usage(in, b);
    }
    put_ws(in, b);
    buf_putc(b, '}');
    if (m & 128) { /* cut or trailing bytes */
        size_t n = fuzz_byte(in);
        if (n & 1)
            b->len = n / 2 < b->len ? b->len - n / 2 : 0;
        else
            buf_putc(b, (char)fuzz_byte(in));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    struct fuzz_input in = {data + 2, size - 2, 0};
    unsigned split = data[1];
    struct buf body, a, b, ea, eb, va, vb;
    buf_init(&body), buf_init(&a), buf_init(&b), buf_init(&ea), buf_init(&eb);
    buf_init(&va), buf_init(&vb);
    if (data[0] & 1)
        buf_append(&body, (const char *)data + 2, size - 2);
    else
        build(&in, &body);
    enum llm_errclass ca =
        jp_answer(&provider_openai, buf_str(&body), body.len, split, &a, &ea, NULL);
    enum llm_errclass cb =
        jp_answer(&provider_openai_parsed, buf_str(&body), body.len, split, &b, &eb, NULL);
    if (ca != cb || strcmp(buf_str(&ea), buf_str(&eb)) != 0)
        __builtin_trap();
    if (ca == LLM_ERR_NONE) {
        jp_client_view(buf_str(&a), a.len, &va);
        jp_client_view(buf_str(&b), b.len, &vb);
        if (strcmp(buf_str(&va), buf_str(&vb)) != 0)
            __builtin_trap();
    } else if (strcmp(buf_str(&a), buf_str(&b)) != 0) {
        __builtin_trap();
    }
    buf_cleanup(&body), buf_cleanup(&a), buf_cleanup(&b), buf_cleanup(&ea), buf_cleanup(&eb);
    buf_cleanup(&va), buf_cleanup(&vb);
    return 0;
}
