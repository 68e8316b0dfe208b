/*
 * openai_scan.c - the same-format passthrough scanner (openai_scan.h): one pass over an
 * OpenAI chat.completion.chunk that validates it as strict JSON and notes where id, created,
 * model, the content, finish_reason, usage and the fingerprint are, with no tree and no
 * allocation.
 *
 * It must never accept what cJSON would read differently, so it is stricter than cJSON
 * everywhere: RFC 8259 grammar only (cJSON also takes some non-JSON), nesting at most
 * SCAN_MAX_DEPTH, no \u escape (cJSON rejects some of them, lone surrogates), every string
 * valid UTF-8 (the parse path repairs invalid bytes, which a forwarder would not), no
 * known key twice (cJSON reads the first, a client's parser may read the last), only spaces
 * and tabs between tokens (a line break would split the forwarded SSE data line), and
 * nothing after the object. Whatever it refuses goes through the parser as before.
 *
 * Pure: no I/O, no allocation, no globals.
 */
#include <stdint.h>
#include <string.h>

#include "openai_scan.h"
#include "switchboard/util.h"

#define SCAN_MAX_DEPTH 32

struct cur {
    const char *p;
    const char *end;
    const char *base; /* the chunk's first byte, for spans */
    bool lines;       /* a whole answer: line breaks between tokens are whitespace too */
};

static bool is_ws(const struct cur *c, char ch)
{
    return ch == ' ' || ch == '\t' || (c->lines && (ch == '\n' || ch == '\r'));
}

static void skip_ws(struct cur *c)
{
    while (c->p < c->end && is_ws(c, *c->p))
        c->p++;
}

static bool eat(struct cur *c, char ch)
{
    skip_ws(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return true;
    }
    return false;
}

/* Bytes a string scan must stop at: the quote, a backslash, control and non-ASCII bytes. */
static bool is_special(unsigned char ch)
{
    return ch == '"' || ch == '\\' || ch < 0x20 || ch >= 0x80;
}

/* Does the word hold a byte that is zero / below 0x20 / has its high bit set (SWAR)? */
#define SWAR_ONES  0x0101010101010101ULL
#define SWAR_HIGHS 0x8080808080808080ULL
static uint64_t swar_special(uint64_t w)
{
    uint64_t q = w ^ (SWAR_ONES * '"'), b = w ^ (SWAR_ONES * '\\');
    uint64_t zero_q = (q - SWAR_ONES) & ~q, zero_b = (b - SWAR_ONES) & ~b;
    uint64_t below = w - SWAR_ONES * 0x20;             /* high bit where a byte is below 0x20 ... */
    return (zero_q | zero_b | below | w) & SWAR_HIGHS; /* ... or was high already (w) */
}

/* Length of the run of plain string bytes at p (at least 1: p[0] is plain), eight at a time
 * while whole words are plain. */
static size_t plain_run(const char *p, const char *end)
{
    size_t n = 1;
    while ((size_t)(end - p) - n >= 8) {
        uint64_t w;
        memcpy(&w, p + n, 8);
        if (swar_special(w))
            break;
        n += 8;
    }
    return n;
}

/* The code unit of the \\uXXXX at p, or -1 when p does not start one. */
static long hex4(const char *p, const char *end)
{
    long v = 0;
    if (end - p < 6 || p[0] != '\\' || p[1] != 'u')
        return -1;
    for (int i = 2; i < 6; i++) {
        char h = p[i];
        int d = h >= '0' && h <= '9'   ? h - '0'
                : h >= 'a' && h <= 'f' ? h - 'a' + 10
                : h >= 'A' && h <= 'F' ? h - 'A' + 10
                                       : -1;
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    return v;
}

/* A \\u escape at p (a whole answer only) that cJSON reads as one code point: its length
 * (6, or 12 for a surrogate pair), 0 when refused: not hex, U+0000 (cJSON's string would end
 * there), a lone or reversed surrogate (cJSON fails the parse). */
static size_t scan_u_escape(const char *p, const char *end)
{
    long hi = hex4(p, end);
    if (hi <= 0 || (hi >= 0xDC00 && hi <= 0xDFFF))
        return 0;
    if (hi < 0xD800 || hi > 0xDBFF)
        return 6;
    long lo = hex4(p + 6, end);
    return lo >= 0xDC00 && lo <= 0xDFFF ? 12 : 0;
}

/* A string at c->p (after whitespace): its inside into *sp. False when not a valid one. */
static bool scan_string(struct cur *c, struct oai_span *sp)
{
    skip_ws(c);
    if (c->p >= c->end || *c->p != '"')
        return false;
    const char *s = ++c->p;
    bool escaped = false, high = false, uesc = false;
    while (c->p < c->end && *c->p != '"') {
        unsigned char ch = (unsigned char)*c->p;
        if (!is_special(ch)) {
            c->p += plain_run(c->p, c->end);
            continue;
        }
        if (ch < 0x20)
            return false;
        if (ch >= 0x80)
            high = true;
        if (ch == '\\' && c->lines && c->p + 1 < c->end && c->p[1] == 'u') {
            size_t k = scan_u_escape(c->p, c->end);
            if (k == 0)
                return false;
            escaped = uesc = true;
            c->p += k;
            continue;
        }
        if (ch == '\\') {
            if (c->p + 1 >= c->end || !strchr("\"\\/bfnrt", c->p[1]) || c->p[1] == '\0')
                return false;
            escaped = true;
            c->p += 2;
            continue;
        }
        c->p++;
    }
    if (c->p >= c->end)
        return false;
    size_t n = (size_t)(c->p - s);
    c->p++; /* the closing quote */
    if (high && utf8_valid_prefix(s, n) != n)
        return false;
    *sp = (struct oai_span){.s = s, .len = n, .escaped = escaped, .uesc = uesc};
    return true;
}

static bool is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

static bool scan_digits(struct cur *c)
{
    const char *start = c->p;
    while (c->p < c->end && is_digit(*c->p))
        c->p++;
    return c->p > start;
}

/* -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static bool scan_number(struct cur *c)
{
    if (c->p < c->end && *c->p == '-')
        c->p++;
    if (c->p < c->end && *c->p == '0')
        c->p++;
    else if (!scan_digits(c))
        return false;
    if (c->p < c->end && *c->p == '.') {
        c->p++;
        if (!scan_digits(c))
            return false;
    }
    if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
        c->p++;
        if (c->p < c->end && (*c->p == '+' || *c->p == '-'))
            c->p++;
        if (!scan_digits(c))
            return false;
    }
    return true;
}

static bool scan_word(struct cur *c, const char *w)
{
    size_t n = strlen(w);
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, w, n) != 0)
        return false;
    c->p += n;
    return true;
}

static bool scan_value(struct cur *c, int depth);

/* The rest of an object or array after its opening bracket. */
static bool scan_container(struct cur *c, char close, int depth)
{
    struct oai_span key;
    if (eat(c, close))
        return true;
    do {
        if (close == '}' && (!scan_string(c, &key) || !eat(c, ':')))
            return false;
        if (!scan_value(c, depth + 1))
            return false;
    } while (eat(c, ','));
    return eat(c, close);
}

/* Any JSON value, validated and skipped. */
static bool scan_value(struct cur *c, int depth)
{
    struct oai_span sp;
    skip_ws(c);
    if (c->p >= c->end || depth > SCAN_MAX_DEPTH)
        return false;
    switch (*c->p) {
    case '"':
        return scan_string(c, &sp);
    case '{':
        c->p++;
        return scan_container(c, '}', depth);
    case '[':
        c->p++;
        return scan_container(c, ']', depth);
    case 't':
        return scan_word(c, "true");
    case 'f':
        return scan_word(c, "false");
    case 'n':
        return scan_word(c, "null");
    default:
        return scan_number(c);
    }
}

static bool key_is(const struct oai_span *k, const char *name)
{
    return !k->escaped && k->len == strlen(name) && memcmp(k->s, name, k->len) == 0;
}

/* Marks a known key as seen; false when it was seen before. */
static bool first_time(unsigned *seen, unsigned bit)
{
    if (*seen & bit)
        return false;
    *seen |= bit;
    return true;
}

/* A value that must be null. */
static bool scan_null(struct cur *c)
{
    skip_ws(c);
    return scan_word(c, "null");
}

/* A string or null into *sp (s NULL for null). */
static bool scan_opt_string(struct cur *c, struct oai_span *sp)
{
    skip_ws(c);
    *sp = (struct oai_span){0};
    if (c->p < c->end && *c->p == 'n')
        return scan_word(c, "null");
    return scan_string(c, sp);
}

/* The value span of the member being read: from after whitespace to its end. */
static bool value_span(struct cur *c, struct llm_chunk_span *span)
{
    skip_ws(c);
    const char *start = c->p;
    if (!scan_value(c, 1))
        return false;
    *span = (struct llm_chunk_span){(size_t)(start - c->base), (size_t)(c->p - start)};
    return true;
}

enum { D_ROLE = 1, D_CONTENT = 2, D_REFUSAL = 4, D_RC = 8, D_REASONING = 16 };

static bool scan_delta_member(struct cur *c, const struct oai_span *k, unsigned *seen,
                              struct oai_scan *out)
{
    if (key_is(k, "role"))
        return first_time(seen, D_ROLE) && scan_value(c, 2);
    if (key_is(k, "content"))
        return first_time(seen, D_CONTENT) && scan_opt_string(c, &out->content);
    if (key_is(k, "refusal"))
        return first_time(seen, D_REFUSAL) && scan_null(c);
    if (key_is(k, "reasoning_content"))
        return first_time(seen, D_RC) && scan_null(c);
    if (key_is(k, "reasoning"))
        return first_time(seen, D_REASONING) && scan_null(c);
    return false; /* tool calls and anything else: the parser */
}

static bool scan_delta(struct cur *c, struct oai_scan *out)
{
    unsigned seen = 0;
    struct oai_span k;
    if (!eat(c, '{'))
        return false;
    if (eat(c, '}'))
        return true;
    do {
        if (!scan_string(c, &k) || !eat(c, ':') || !scan_delta_member(c, &k, &seen, out))
            return false;
    } while (eat(c, ','));
    return eat(c, '}');
}

enum { C_INDEX = 1, C_DELTA = 2, C_FINISH = 4, C_LOGPROBS = 8 };

static bool scan_choice_member(struct cur *c, const struct oai_span *k, unsigned *seen,
                               struct oai_scan *out)
{
    if (key_is(k, "index")) { /* exactly 0: the parser skips other choices */
        skip_ws(c);
        const char *start = c->p;
        return first_time(seen, C_INDEX) && scan_number(c) && c->p - start == 1 && *start == '0';
    }
    if (key_is(k, "delta"))
        return first_time(seen, C_DELTA) && scan_delta(c, out);
    if (key_is(k, "logprobs"))
        return first_time(seen, C_LOGPROBS) && scan_null(c);
    if (key_is(k, "finish_reason")) {
        struct llm_chunk_span *span = &out->chunk.span[LLM_CHUNK_FINISH];
        if (!first_time(seen, C_FINISH))
            return false;
        skip_ws(c);
        const char *start = c->p;
        if (!scan_opt_string(c, &out->finish) || out->finish.escaped)
            return false;
        if (out->finish.s)
            *span = (struct llm_chunk_span){(size_t)(start - c->base), (size_t)(c->p - start)};
        return true;
    }
    return false;
}

static bool scan_choice(struct cur *c, struct oai_scan *out)
{
    unsigned seen = 0;
    struct oai_span k;
    if (!eat(c, '{'))
        return false;
    if (eat(c, '}'))
        return true;
    do {
        if (!scan_string(c, &k) || !eat(c, ':') || !scan_choice_member(c, &k, &seen, out))
            return false;
    } while (eat(c, ','));
    return eat(c, '}');
}

/* [] or [choice]. */
static bool scan_choices(struct cur *c, struct oai_scan *out)
{
    if (!eat(c, '['))
        return false;
    if (eat(c, ']'))
        return true;
    return scan_choice(c, out) && eat(c, ']');
}

enum {
    T_ID = 1u << LLM_CHUNK_ID,
    T_CREATED = 1u << LLM_CHUNK_CREATED,
    T_MODEL = 1u << LLM_CHUNK_MODEL,
    T_FP = 8,
    T_TIER = 16,
    T_USAGE = 32,
    T_CHOICES = 64,
};

/* A fingerprint or tier: the parser keeps strings only (and ours must need no unescaping). */
static bool scan_note(struct cur *c, struct oai_span *sp)
{
    struct oai_span v;
    skip_ws(c);
    if (c->p < c->end && *c->p == '"') {
        if (!scan_string(c, &v) || v.escaped)
            return false;
        *sp = v;
        return true;
    }
    return scan_value(c, 1); /* not a string: the parser ignores it too */
}

/* "usage": null only, its span with the comma before it (member_at: where the member's key
 * starts; comma_at: the comma before it, or NULL for the first member). */
static bool scan_usage(struct cur *c, const char *comma_at, const char *member_at,
                       struct oai_scan *out)
{
    if (!scan_null(c))
        return false;
    const char *from = comma_at ? comma_at : member_at;
    const char *to = c->p;
    if (!comma_at) { /* the first member: take the comma after it, if any */
        skip_ws(c);
        if (c->p < c->end && *c->p == ',')
            to = c->p + 1;
    }
    out->chunk.span[LLM_CHUNK_USAGE] =
        (struct llm_chunk_span){(size_t)(from - c->base), (size_t)(to - from)};
    return true;
}

/* Which of "id", "created" and "model" k is, the members the gateway puts its own values
 * in: LLM_CHUNK_ID.., or -1 for another key. */
static int envelope_field(const struct oai_span *k)
{
    int f = -1;
    if (key_is(k, "id"))
        f = LLM_CHUNK_ID;
    else if (key_is(k, "created"))
        f = LLM_CHUNK_CREATED;
    else if (key_is(k, "model"))
        f = LLM_CHUNK_MODEL;
    return f;
}

/* An envelope member (envelope_field) in either scanner: its value's span into span[], each
 * at most once (T_ID.. are 1 << LLM_CHUNK_ID..). Returns whether k is one, *ok whether its
 * value was read. */
static inline bool scan_envelope_member(struct cur *c, const struct oai_span *k, unsigned *seen,
                                        struct llm_chunk_span *span, bool *ok)
{
    int f = envelope_field(k);
    if (f >= 0)
        *ok = first_time(seen, 1u << f) && value_span(c, &span[f]);
    return f >= 0;
}

static bool scan_top_member(struct cur *c, const struct oai_span *k, unsigned *seen,
                            const char *comma_at, struct oai_scan *out)
{
    bool ok;
    if (scan_envelope_member(c, k, seen, out->chunk.span, &ok))
        return ok;
    if (key_is(k, "system_fingerprint"))
        return first_time(seen, T_FP) && scan_note(c, &out->fingerprint);
    if (key_is(k, "service_tier"))
        return first_time(seen, T_TIER) && scan_note(c, &out->tier);
    if (key_is(k, "usage"))
        return first_time(seen, T_USAGE) && scan_usage(c, comma_at, k->s - 1, out);
    if (key_is(k, "choices"))
        return first_time(seen, T_CHOICES) && scan_choices(c, out);
    if (key_is(k, "error"))
        return false; /* an error event: the parser classifies it */
    return scan_value(c, 1);
}

bool openai_scan_chunk(const char *data, size_t len, struct oai_scan *out)
{
    struct cur c = {.p = data, .end = data + len, .base = data};
    unsigned seen = 0;
    struct oai_span k;
    const char *comma_at = NULL;
    memset(out, 0, sizeof *out);
    out->chunk.json = data;
    out->chunk.len = len;
    if (!eat(&c, '{'))
        return false;
    if (!eat(&c, '}')) {
        do {
            if (!scan_string(&c, &k) || !eat(&c, ':') ||
                !scan_top_member(&c, &k, &seen, comma_at, out))
                return false;
            skip_ws(&c);
            comma_at = c.p;
        } while (eat(&c, ','));
        if (!eat(&c, '}'))
            return false;
    }
    skip_ws(&c);
    out->has_envelope = (seen & (T_ID | T_CREATED | T_MODEL)) == (T_ID | T_CREATED | T_MODEL);
    return c.p == c.end;
}

/* ---- a whole chat.completion (openai_scan_completion) ------------------------------------ */

/* A string value equal to want. */
static bool scan_string_is(struct cur *c, const char *want)
{
    struct oai_span sp;
    return scan_string(c, &sp) && key_is(&sp, want);
}

/* An empty array: [] with whitespace inside allowed. */
static bool scan_empty_array(struct cur *c)
{
    return eat(c, '[') && eat(c, ']');
}

/* A token count: a non-negative integer of at most 15 digits (no fraction, no exponent). */
static bool scan_count(struct cur *c, long *out)
{
    skip_ws(c);
    const char *start = c->p;
    if (!scan_digits(c) || c->p - start > 15 || (*start == '0' && c->p - start > 1))
        return false;
    if (c->p < c->end && (*c->p == '.' || *c->p == 'e' || *c->p == 'E'))
        return false;
    long v = 0;
    for (const char *d = start; d < c->p; d++)
        v = v * 10 + (*d - '0');
    *out = v;
    return true;
}

/* A string or null that the parse path copies whole (fingerprint < 96, tier < 32 bytes). */
static bool scan_short_note(struct cur *c, struct oai_span *sp, size_t max)
{
    if (!scan_opt_string(c, sp))
        return false;
    return !sp->s || (!sp->escaped && sp->len > 0 && sp->len < max);
}

/* A member of message that must be null or absent, or [] where an empty list is usual. */
static bool scan_message_member(struct cur *c, const struct oai_span *k, unsigned *seen,
                                struct oai_full *out)
{
    static const char *const nulls[] = {"refusal", "reasoning_content", "reasoning",
                                        "function_call", "audio"};
    if (key_is(k, "role"))
        return first_time(seen, 1) && scan_string_is(c, "assistant");
    if (key_is(k, "content"))
        return first_time(seen, 2) && scan_string(c, &out->content);
    if (key_is(k, "tool_calls")) {
        skip_ws(c);
        return first_time(seen, 4) && (scan_word(c, "null") || scan_empty_array(c));
    }
    if (key_is(k, "annotations"))
        return first_time(seen, 8) && scan_empty_array(c);
    for (size_t i = 0; i < SB_ARRAY_LEN(nulls); i++) {
        if (key_is(k, nulls[i]))
            return first_time(seen, 16u << i) && scan_null(c);
    }
    return false;
}

/* Members of an object, each read by fn; *seen collects the bits fn set. */
typedef bool (*member_fn)(struct cur *c, const struct oai_span *k, unsigned *seen,
                          struct oai_full *out);

static bool scan_members(struct cur *c, member_fn fn, unsigned *seen, struct oai_full *out)
{
    struct oai_span k;
    if (!eat(c, '{'))
        return false;
    if (eat(c, '}'))
        return true;
    do {
        if (!scan_string(c, &k) || k.uesc || !eat(c, ':') || !fn(c, &k, seen, out))
            return false;
    } while (eat(c, ','));
    return eat(c, '}');
}

static bool scan_finish_full(struct cur *c, struct oai_full *out)
{
    static const char *const names[] = {"stop", "length", "content_filter"};
    static const enum llm_finish finishes[] = {LLM_FINISH_STOP, LLM_FINISH_LENGTH,
                                               LLM_FINISH_CONTENT_FILTER};
    struct oai_span sp;
    if (!scan_string(c, &sp))
        return false;
    for (size_t i = 0; i < SB_ARRAY_LEN(names); i++) {
        if (key_is(&sp, names[i])) {
            out->finish = finishes[i];
            return true;
        }
    }
    return false;
}

static bool scan_full_choice_member(struct cur *c, const struct oai_span *k, unsigned *seen,
                                    struct oai_full *out)
{
    unsigned mseen = 0;
    if (key_is(k, "index")) {
        long v;
        return first_time(seen, C_INDEX) && scan_count(c, &v) && v == 0;
    }
    if (key_is(k, "message"))
        return first_time(seen, C_DELTA) && scan_members(c, scan_message_member, &mseen, out) &&
               (mseen & 3) == 3;
    if (key_is(k, "finish_reason"))
        return first_time(seen, C_FINISH) && scan_finish_full(c, out);
    if (key_is(k, "logprobs"))
        return first_time(seen, C_LOGPROBS) && scan_null(c);
    return false;
}

static bool scan_details_member(struct cur *c, const struct oai_span *k, unsigned *seen,
                                struct oai_full *out)
{
    if (key_is(k, "cached_tokens"))
        return first_time(seen, 1) && scan_count(c, &out->usage.cached_tokens);
    return scan_value(c, 3);
}

enum { U_PROMPT = 1, U_COMPLETION = 2, U_TOTAL = 4, U_DETAILS = 8 };

static bool scan_usage_member(struct cur *c, const struct oai_span *k, unsigned *seen,
                              struct oai_full *out)
{
    if (key_is(k, "prompt_tokens"))
        return first_time(seen, U_PROMPT) && scan_count(c, &out->usage.input_tokens);
    if (key_is(k, "completion_tokens"))
        return first_time(seen, U_COMPLETION) && scan_count(c, &out->usage.output_tokens);
    if (key_is(k, "total_tokens"))
        return first_time(seen, U_TOTAL) && scan_count(c, &out->total_tokens);
    if (key_is(k, "prompt_tokens_details")) {
        unsigned dseen = 0;
        skip_ws(c);
        return first_time(seen, U_DETAILS) &&
               (scan_word(c, "null") || scan_members(c, scan_details_member, &dseen, out));
    }
    return scan_value(c, 2);
}

/* usage: null, or an object the parse path reads the same (see openai_scan_completion). */
static bool scan_full_usage(struct cur *c, struct oai_full *out)
{
    unsigned seen = 0;
    skip_ws(c);
    if (scan_word(c, "null"))
        return true;
    if (!scan_members(c, scan_usage_member, &seen, out))
        return false;
    if ((seen & (U_PROMPT | U_COMPLETION | U_TOTAL)) != (U_PROMPT | U_COMPLETION | U_TOTAL))
        return false;
    out->usage.present = true;
    return out->total_tokens == out->usage.input_tokens + out->usage.output_tokens;
}

/* [choice], exactly one. */
static bool scan_full_choices(struct cur *c, struct oai_full *out)
{
    unsigned seen = 0;
    if (!eat(c, '[') || !scan_members(c, scan_full_choice_member, &seen, out))
        return false;
    bool whole = (seen | C_LOGPROBS) == (C_INDEX | C_DELTA | C_FINISH | C_LOGPROBS);
    return whole && eat(c, ']');
}

enum { F_OBJECT = 128 };

static bool scan_full_member(struct cur *c, const struct oai_span *k, unsigned *seen,
                             struct oai_full *out)
{
    bool ok;
    if (scan_envelope_member(c, k, seen, out->body.span, &ok))
        return ok;
    if (key_is(k, "object"))
        return first_time(seen, F_OBJECT) && scan_string_is(c, "chat.completion");
    if (key_is(k, "system_fingerprint"))
        return first_time(seen, T_FP) && scan_short_note(c, &out->fingerprint, 96);
    if (key_is(k, "service_tier"))
        return first_time(seen, T_TIER) && scan_short_note(c, &out->tier, 32);
    if (key_is(k, "usage"))
        return first_time(seen, T_USAGE) && scan_full_usage(c, out);
    if (key_is(k, "choices"))
        return first_time(seen, T_CHOICES) && scan_full_choices(c, out);
    if (key_is(k, "error"))
        return false; /* the parser classifies it */
    return scan_value(c, 1);
}

bool openai_scan_completion(const char *data, size_t len, struct oai_full *out)
{
    struct cur c = {.p = data, .end = data + len, .base = data, .lines = true};
    unsigned seen = 0;
    const unsigned need = T_ID | T_CREATED | T_MODEL | T_CHOICES | F_OBJECT;
    memset(out, 0, sizeof *out);
    out->body.json = data;
    out->body.len = len;
    if (!scan_members(&c, scan_full_member, &seen, out) || (seen & need) != need)
        return false;
    skip_ws(&c);
    return c.p == c.end;
}

/* The code point of the \\u escape (a pair for a surrogate) at p, scan_u_escape's, as UTF-8
 * into out; *i (at the 'u') moves to its last byte. Returns the bytes written. */
static size_t put_code_point(const char *p, size_t *i, char *out)
{
    unsigned long cp = (unsigned long)hex4(p, p + 12);
    *i += 4;
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        cp = 0x10000 + ((cp - 0xD800) << 10) + ((unsigned long)hex4(p + 6, p + 12) - 0xDC00);
        *i += 6;
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

size_t openai_scan_unescape(const struct oai_span *sp, char *out)
{
    size_t n = 0;
    for (size_t i = 0; i < sp->len; i++) {
        char ch = sp->s[i];
        if (ch == '\\' && i + 1 < sp->len) {
            ch = sp->s[++i];
            switch (ch) {
            case 'b':
                ch = '\b';
                break;
            case 'f':
                ch = '\f';
                break;
            case 'n':
                ch = '\n';
                break;
            case 'r':
                ch = '\r';
                break;
            case 't':
                ch = '\t';
                break;
            case 'u':
                n += put_code_point(sp->s + i - 1, &i, out + n);
                continue;
            default: /* " \\ / stand for themselves */
                break;
            }
        }
        out[n++] = ch;
    }
    out[n] = '\0';
    return n;
}
