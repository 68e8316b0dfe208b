/*
 * fuzz_passthrough.c - differential libFuzzer target for same-format passthrough. The input
 * is a script that builds a random OpenAI stream (content chunks with escapes, role, finish,
 * usage, tool-call and error chunks, [DONE], duplicated or extra members, stray whitespace
 * and line breaks, event names, raw bytes); the stream is relayed the way the gateway relays
 * it twice, with the scanner (provider_openai: chunks forwarded) and without it
 * (provider_openai_parsed: every chunk parsed and encoded again), fed in the same random
 * pieces. Property: the same outcome class, and a client reading either output sees the same
 * events (texts, tool calls, usage, finish, errors).
 */
/* fuzz-extra: tests/unit/support_passthrough.c */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../unit/support_passthrough.h"
#include "fuzz_input.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Up to 15 bytes of text from the input, as a JSON string's inside: escapes, raw UTF-8 and
 * the odd invalid byte or \u escape. */
static void put_text(struct fuzz_input *in, struct buf *b)
{
    static const char *const pieces[] = {"\\n",      "\\\"",         "\\\\",
                                         "\\/",      "\\t",          "\\u00e9",
                                         "\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80",
                                         "\xC3",     "\\ud83d",      " ",
                                         "stop",     "\\r\\n"};
    size_t n = fuzz_byte(in) & 15;
    for (size_t i = 0; i < n && fuzz_left(in); i++) {
        uint8_t c = fuzz_byte(in);
        if (c < 0x20 * 2 && c % 2 == 0)
            buf_puts(b, pieces[(c / 2) % (sizeof pieces / sizeof pieces[0])]);
        else if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
            buf_putc(b, (char)c);
        else
            buf_putc(b, 'a' + c % 26);
    }
}

static void put_ws(struct fuzz_input *in, struct buf *b, uint8_t mode)
{
    if (mode & 1)
        buf_putc(b, ' ');
    if ((mode & 6) == 6)
        buf_putc(b, fuzz_byte(in) & 1 ? '\t' : '\n');
}

/* The envelope members, sometimes one missing, doubled, or with usage:null first. */
static void put_envelope(struct fuzz_input *in, struct buf *b, uint8_t mode)
{
    uint8_t m = fuzz_byte(in);
    if (m & 1)
        buf_puts(b, "\"usage\":null,");
    if ((m & 6) != 2)
        buf_puts(b, "\"id\":\"chatcmpl-up\",");
    buf_puts(b, "\"object\":\"chat.completion.chunk\",");
    if ((m & 6) != 4)
        buf_puts(b, "\"created\":17,");
    put_ws(in, b, mode);
    if ((m & 6) != 6)
        buf_puts(b, "\"model\":\"gpt-up\",");
    if (m & 8)
        buf_puts(b, "\"system_fingerprint\":\"fp_x\",");
    if (m & 16)
        buf_puts(b, "\"service_tier\":\"default\",");
    if (m & 32)
        buf_puts(b, "\"model\":\"again\",");
    if (m & 64)
        buf_puts(b, "\"x_extra\":{\"k\":[1,2.5e3,true,null]},");
}

static void put_finish(struct fuzz_input *in, struct buf *b)
{
    static const char *const f[] = {"null",           "\"stop\"",           "\"length\"",
                                    "\"tool_calls\"", "\"content_filter\"", "\"\"",
                                    "\"weird\""};
    buf_printf(b, ",\"finish_reason\":%s", FUZZ_PICK(in, f));
}

/* One chat.completion.chunk of a shape picked by the input. */
static void put_chunk(struct fuzz_input *in, struct buf *b, uint8_t op)
{
    uint8_t mode = fuzz_byte(in);
    buf_putc(b, '{');
    put_envelope(in, b, mode);
    switch (op % 8) {
    case 0: /* role */
        buf_puts(b, "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":"
                    "\"\"},\"logprobs\":null,\"finish_reason\":null}]");
        break;
    case 1:
    case 2: /* content */
        buf_printf(b, "\"choices\":[{\"index\":%s,", mode & 8 ? "1" : "0");
        put_ws(in, b, mode >> 4);
        buf_puts(b, "\"delta\":{\"content\":\"");
        put_text(in, b);
        buf_puts(b, mode & 16 ? "\",\"refusal\":null}" : "\"}");
        if (mode & 32)
            buf_puts(b, ",\"logprobs\":null");
        if (mode & 64)
            put_finish(in, b);
        buf_puts(b, mode & 128 ? "},{\"index\":0,\"delta\":{\"content\":\"2\"}}]" : "}]");
        break;
    case 3: /* finish */
        buf_puts(b, "\"choices\":[{\"index\":0,\"delta\":{}");
        put_finish(in, b);
        buf_puts(b, "}]");
        break;
    case 4: /* usage */
        buf_printf(b, "\"choices\":[],\"usage\":{\"prompt_tokens\":%u,\"completion_tokens\":%u}",
                   fuzz_byte(in), fuzz_byte(in));
        break;
    case 5: /* tool call */
        buf_printf(b,
                   "\"choices\":[{\"index\":0,\"delta\":{\"tool_calls\":[{\"index\":%u,"
                   "\"id\":\"c%u\",\"function\":{\"name\":\"f\",\"arguments\":\"",
                   fuzz_byte(in) % 3, fuzz_byte(in) % 3);
        put_text(in, b);
        buf_puts(b, "\"}}]}}]");
        break;
    case 6: /* an error object */
        buf_puts(b, "\"error\":{\"message\":\"");
        put_text(in, b);
        buf_puts(b, "\",\"type\":\"server_error\"}");
        break;
    case 7: /* reasoning */
        buf_puts(b, "\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":\"");
        put_text(in, b);
        buf_puts(b, "\"}}]");
        break;
    }
    if (mode & 2)
        buf_puts(b, ",\"usage\":null");
    buf_putc(b, '}');
}

static void build(struct fuzz_input *in, struct buf *s)
{
    while (fuzz_left(in) > 0) {
        uint8_t op = fuzz_byte(in);
        switch (op >> 5) {
        case 0:
        case 1:
        case 2:
        case 3:
            if (op & 8)
                buf_puts(s, op & 16 ? "event: error\n" : "event: chunk\n");
            buf_puts(s, "data: ");
            put_chunk(in, s, op);
            buf_puts(s, op & 16 && !(op & 8) ? "\r\n\r\n" : "\n\n");
            break;
        case 4:
            buf_puts(s, "data: [DONE]\n\n");
            break;
        case 5:
            buf_puts(s, ": keep-alive\n\n");
            break;
        case 6: { /* raw bytes */
            size_t n = fuzz_byte(in) & 31;
            for (size_t i = 0; i < n && fuzz_left(in); i++)
                buf_putc(s, (char)fuzz_byte(in));
            break;
        }
        case 7:
            return; /* the rest of the input is not read: a stream cut anywhere */
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    struct fuzz_input in = {data + 2, size - 2, 0};
    bool usage = data[0] & 1;
    unsigned split = data[1];
    struct buf stream, a, b, va, vb;
    buf_init(&stream);
    buf_init(&a);
    buf_init(&b);
    buf_init(&va);
    buf_init(&vb);
    build(&in, &stream);
    enum llm_errclass ca =
        pt_relay(&provider_openai, buf_str(&stream), stream.len, usage, split, &a, NULL);
    enum llm_errclass cb =
        pt_relay(&provider_openai_parsed, buf_str(&stream), stream.len, usage, split, &b, NULL);
    pt_client_view(buf_str(&a), a.len, &va);
    pt_client_view(buf_str(&b), b.len, &vb);
    if (ca != cb || va.len != vb.len || (va.len && memcmp(va.data, vb.data, va.len) != 0))
        __builtin_trap();
    buf_cleanup(&stream);
    buf_cleanup(&a);
    buf_cleanup(&b);
    buf_cleanup(&va);
    buf_cleanup(&vb);
    return 0;
}
