/*
 * sim_answer.c - deterministic answers: text built from word lists seeded by a hash of the
 * persona and the last user message, "echo:" answers, tool calls, tool-result quotes, and the
 * token counts that go with them. Format-agnostic: the adapters in sim_<provider>.c render it.
 *
 * Pure functions (no I/O, no shared state); any thread.
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sim.h"

/* Word lists; some entries carry UTF-8 to exercise rendering. */
static const char *const subjects[] = {
    "The router",           "Every provider",     "The ledger",      "A circuit breaker",
    "The on-call engineer", "Our café dashboard", "The 日本 region", "A latency budget",
    "The gateway",          "Each retry",         "The fleet",       "A hedged request",
};
static const char *const verbs[] = {
    "balances",  "records",  "watches", "reroutes", "compares", "streams",
    "throttles", "explains", "trims",   "caches",   "measures", "forgives",
};
static const char *const objects[] = {
    "the token spend",         "every request", "a naïve fallback", "the p99 latency",
    "the résumé of each call", "cold caches",   "the weights",      "日本語 prompts",
    "the hedged attempts",     "a quiet queue", "the spend cap",    "the breaker state",
};
static const char *const tails[] = {
    "quickly.",   "under load.",   "— as expected.", "without fuss.",  "at 3 a.m.",
    "with care.", "before lunch.", "in real time.",  "for the fleet.", "one by one.",
};

#define TOOL_RESULT_QUOTE_MAX 400 /* bytes of a tool result quoted back */

static uint64_t splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void sim_make_id(char *out, size_t size, const char *prefix, uint64_t seed, size_t n)
{
    static const char alphabet[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    size_t len = str_copy(out, size, prefix);
    uint64_t state = seed;
    for (size_t i = 0; i < n && len + 1 < size; i++)
        out[len++] = alphabet[splitmix64(&state) % 62];
    out[len < size ? len : size - 1] = '\0';
}

void sim_prompt_init(struct sim_prompt *p)
{
    memset(p, 0, sizeof *p);
}

void sim_prompt_cleanup(struct sim_prompt *p)
{
    free(p->model);
    free(p->last_user);
    free(p->tool_result);
    free(p->tool_name);
    sim_prompt_init(p);
}

void sim_prompt_count(struct sim_prompt *p, const char *text)
{
    if (text)
        p->prompt_bytes += strlen(text);
}

void sim_prompt_count_json(struct sim_prompt *p, const cJSON *v)
{
    if (!v)
        return;
    char *text = cJSON_PrintUnformatted(v);
    if (text)
        p->prompt_bytes += strlen(text);
    cJSON_free(text);
}

long sim_prompt_tokens(const struct sim_prompt *p)
{
    long t = (long)((p->prompt_bytes + 3) / 4);
    return t > 0 ? t : 1;
}

bool sim_schema_has_city(const cJSON *schema)
{
    const cJSON *props = cJSON_GetObjectItemCaseSensitive(schema, "properties");
    return cJSON_IsObject(props) && cJSON_GetObjectItemCaseSensitive(props, "city") != NULL;
}

const char *sim_json_str(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

bool sim_json_is_int(const cJSON *v)
{
    return cJSON_IsNumber(v) && v->valuedouble == (double)(long long)v->valuedouble;
}

const char *sim_json_type(const cJSON *v)
{
    if (!v || cJSON_IsNull(v))
        return "null";
    if (cJSON_IsBool(v))
        return "boolean";
    if (cJSON_IsNumber(v))
        return sim_json_is_int(v) ? "integer" : "number";
    if (cJSON_IsString(v))
        return "string";
    if (cJSON_IsArray(v))
        return "array";
    return "object";
}

void sim_free_pieces(char **pieces, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(pieces[i]);
    free(pieces);
}

static void push_piece(char ***v, size_t *n, size_t *cap, const char *s, size_t len)
{
    *v = xgrow(*v, cap, *n + 1, sizeof **v);
    (*v)[(*n)++] = xstrndup(s, len);
}

void sim_split_words(const char *text, char ***pieces, size_t *n)
{
    size_t cap = 0, i = 0, len = strlen(text);
    *pieces = NULL;
    *n = 0;
    while (i < len) {
        size_t start = i;
        while (i < len && isspace((unsigned char)text[i]))
            i++;
        while (i < len && !isspace((unsigned char)text[i]))
            i++;
        bool only_space = true;
        for (size_t k = start; k < i; k++)
            only_space = only_space && isspace((unsigned char)text[k]);
        if (only_space && *n > 0) { /* trailing whitespace joins the last word */
            char *last = (*pieces)[*n - 1];
            size_t ll = strlen(last);
            last = xrealloc(last, ll + (i - start) + 1);
            memcpy(last + ll, text + start, i - start);
            last[ll + (i - start)] = '\0';
            (*pieces)[*n - 1] = last;
        } else {
            push_piece(pieces, n, &cap, text + start, i - start);
        }
    }
}

/* Splits JSON text into pieces of about 5 bytes, never inside a UTF-8 sequence. */
static void split_bytes(const char *text, char ***pieces, size_t *n)
{
    size_t cap = 0, i = 0, len = strlen(text);
    *pieces = NULL;
    *n = 0;
    while (i < len) {
        size_t end = i + 5 < len ? i + 5 : len;
        while (end < len && ((unsigned char)text[end] & 0xC0) == 0x80)
            end++;
        push_piece(pieces, n, &cap, text + i, end - i);
        i = end;
    }
}

static char *generated_text(const char *persona, const char *last_user)
{
    struct buf b;
    buf_init(&b);
    uint64_t h = hash_fnv1a(persona, strlen(persona));
    h ^= hash_fnv1a(last_user ? last_user : "", last_user ? strlen(last_user) : 0) * 31;
    uint64_t state = h;
    int sentences = 1 + (int)(splitmix64(&state) % 3);
    for (int i = 0; i < sentences; i++) {
        if (i > 0)
            buf_putc(&b, ' ');
        buf_printf(&b, "%s %s %s %s", subjects[splitmix64(&state) % SB_ARRAY_LEN(subjects)],
                   verbs[splitmix64(&state) % SB_ARRAY_LEN(verbs)],
                   objects[splitmix64(&state) % SB_ARRAY_LEN(objects)],
                   tails[splitmix64(&state) % SB_ARRAY_LEN(tails)]);
    }
    return buf_take(&b);
}

static char *tool_result_text(const char *result)
{
    struct buf b;
    buf_init(&b);
    size_t len = strlen(result);
    size_t keep =
        utf8_valid_prefix(result, len < TOOL_RESULT_QUOTE_MAX ? len : TOOL_RESULT_QUOTE_MAX);
    buf_puts(&b, "The tool returned: ");
    buf_append(&b, result, keep);
    if (keep < len)
        buf_puts(&b, "…");
    return buf_take(&b);
}

static const char *echo_text(const char *last_user)
{
    const char *e = last_user ? strstr(last_user, "echo:") : NULL;
    if (!e)
        return NULL;
    e += 5;
    while (*e == ' ' || *e == '\t')
        e++;
    return e;
}

static bool contains_word_ci(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (const char *p = hay; p && *p; p++) {
        if (strncasecmp(p, needle, n) == 0)
            return true;
    }
    return false;
}

static bool wants_tool(const struct sim_prompt *p)
{
    if (!p->tool_name || p->tools_off || p->tool_result)
        return false;
    if (p->force_tool)
        return true;
    if (echo_text(p->last_user))
        return false;
    return contains_word_ci(p->last_user, "weather");
}

/* How many words a persona keeps of n. */
static size_t persona_keep(enum sim_persona persona, size_t n)
{
    switch (persona) {
    case SIM_PERSONA_NORMAL:
        return n;
    case SIM_PERSONA_TERSE:
        return n < SIM_TERSE_WORDS ? n : SIM_TERSE_WORDS;
    case SIM_PERSONA_TRUNCATED:
        return n > 2 ? n / 2 : n;
    }
    return n;
}

/* Keeps the first keep pieces; the text follows. */
static void cut_pieces(struct sim_answer *a, size_t keep)
{
    for (size_t i = keep; i < a->n_pieces; i++)
        free(a->pieces[i]);
    a->n_pieces = keep;
    struct buf t;
    buf_init(&t);
    for (size_t i = 0; i < a->n_pieces; i++)
        buf_puts(&t, a->pieces[i]);
    free(a->text);
    a->text = buf_take(&t);
}

void sim_answer_build(struct sim_answer *a, const struct sim_prompt *p, const char *persona,
                      const struct sim_behavior *b)
{
    memset(a, 0, sizeof *a);
    a->finish = SIM_FINISH_STOP;
    a->prompt_tokens = sim_prompt_tokens(p);
    a->cached_tokens = b->cached_tokens < a->prompt_tokens ? b->cached_tokens : a->prompt_tokens;
    if (wants_tool(p)) {
        a->finish = SIM_FINISH_TOOL;
        a->tool_name = xstrdup(p->tool_name);
        a->tool_args = xstrdup(p->tool_has_city ? "{\"city\":\"Paris\"}" : "{}");
        split_bytes(a->tool_args, &a->arg_pieces, &a->n_arg_pieces);
        a->text = xstrdup("");
        a->completion_tokens = (long)a->n_arg_pieces + 1;
        return;
    }
    const char *echo = echo_text(p->last_user);
    if (p->tool_result)
        a->text = tool_result_text(p->tool_result);
    else if (echo)
        a->text = xstrdup(echo);
    else
        a->text = generated_text(persona, p->last_user);
    sim_split_words(a->text, &a->pieces, &a->n_pieces);
    size_t keep = persona_keep(b->persona, a->n_pieces);
    if (keep < a->n_pieces) {
        cut_pieces(a, keep);
        a->finish = b->persona == SIM_PERSONA_TRUNCATED ? SIM_FINISH_LENGTH : SIM_FINISH_STOP;
    }
    if (p->max_tokens > 0 && (size_t)p->max_tokens < a->n_pieces) {
        cut_pieces(a, (size_t)p->max_tokens);
        a->finish = SIM_FINISH_LENGTH;
    }
    a->completion_tokens = (long)a->n_pieces;
}

void sim_answer_cleanup(struct sim_answer *a)
{
    sim_free_pieces(a->pieces, a->n_pieces);
    sim_free_pieces(a->arg_pieces, a->n_arg_pieces);
    free(a->text);
    free(a->tool_name);
    free(a->tool_args);
    memset(a, 0, sizeof *a);
}
