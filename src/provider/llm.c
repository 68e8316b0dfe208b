/*
 * llm.c - the shared request type, result names, error classes, rate-limit headers, the
 * response collector and cost arithmetic (see llm.h).
 *
 * Pure functions and caller-owned structs: no global state, no locks, any thread. Time is
 * always an argument (now_wall_ms), never read here.
 */
#include <ctype.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "switchboard/llm.h"

/* ---- Requests ------------------------------------------------------------------------- */

void llm_request_init(struct llm_request *req)
{
    memset(req, 0, sizeof *req);
    req->tool_choice = LLM_TOOL_CHOICE_UNSET;
}

static void tool_call_cleanup(struct llm_tool_call *tc)
{
    free(tc->id);
    free(tc->name);
    free(tc->arguments);
}

void llm_request_cleanup(struct llm_request *req)
{
    if (!req)
        return;
    free(req->model);
    for (size_t i = 0; i < req->n_messages; i++) {
        struct llm_message *m = &req->messages[i];
        free(m->content);
        for (size_t j = 0; j < m->n_tool_calls; j++)
            tool_call_cleanup(&m->tool_calls[j]);
        free(m->tool_calls);
        free(m->tool_call_id);
        free(m->name);
    }
    free(req->messages);
    for (size_t i = 0; i < req->n_tools; i++) {
        free(req->tools[i].name);
        free(req->tools[i].description);
        free(req->tools[i].parameters_json);
    }
    free(req->tools);
    free(req->tool_choice_name);
    for (size_t i = 0; i < req->n_stop; i++)
        free(req->stop[i]);
    free(req->stop);
    free(req->user);
    llm_request_init(req);
}

struct llm_message *llm_request_add_message(struct llm_request *req, enum llm_role role,
                                            const char *content)
{
    req->messages =
        xgrow(req->messages, &req->cap_messages, req->n_messages + 1, sizeof *req->messages);
    struct llm_message *m = &req->messages[req->n_messages++];
    memset(m, 0, sizeof *m);
    m->role = role;
    m->content = xstrdup(content);
    return m;
}

void llm_request_add_tool(struct llm_request *req, const char *name, const char *description,
                          const char *parameters_json)
{
    req->tools = xgrow(req->tools, &req->cap_tools, req->n_tools + 1, sizeof *req->tools);
    struct llm_tool *t = &req->tools[req->n_tools++];
    t->name = xstrdup(name);
    t->description = xstrdup(description);
    t->parameters_json = xstrdup(parameters_json);
}

static size_t slen(const char *s)
{
    return s ? strlen(s) : 0;
}

long llm_request_estimate_tokens(const struct llm_request *req)
{
    size_t bytes = 0;
    for (size_t i = 0; i < req->n_messages; i++) {
        const struct llm_message *m = &req->messages[i];
        bytes += slen(m->content);
        for (size_t j = 0; j < m->n_tool_calls; j++)
            bytes += slen(m->tool_calls[j].name) + slen(m->tool_calls[j].arguments);
    }
    for (size_t i = 0; i < req->n_tools; i++) {
        bytes += slen(req->tools[i].name) + slen(req->tools[i].description);
        bytes += slen(req->tools[i].parameters_json);
    }
    size_t tokens = (bytes + 3) / 4;
    return tokens > LONG_MAX ? LONG_MAX : (long)tokens;
}

const char *llm_role_name(enum llm_role role)
{
    switch (role) {
    case LLM_ROLE_SYSTEM:
        return "system";
    case LLM_ROLE_USER:
        return "user";
    case LLM_ROLE_ASSISTANT:
        return "assistant";
    case LLM_ROLE_TOOL:
        return "tool";
    }
    return "unknown";
}

/* ---- Results and error classes --------------------------------------------------------- */

const char *llm_finish_name(enum llm_finish f)
{
    switch (f) {
    case LLM_FINISH_NONE:
        return NULL;
    case LLM_FINISH_STOP:
        return "stop";
    case LLM_FINISH_LENGTH:
        return "length";
    case LLM_FINISH_TOOL_CALLS:
        return "tool_calls";
    case LLM_FINISH_CONTENT_FILTER:
        return "content_filter";
    case LLM_FINISH_ERROR:
        return "error";
    }
    return NULL;
}

/* One row per class: name, retryable, the status the gateway answers with when no upstream
 * status says better (llm_client_status). An upstream AUTH failure is 401, as the provider
 * said: the gateway's x-switchboard-target names the target whose key was refused. */
static const struct {
    const char *name;
    bool retryable;
    int http_status;
} errclass_table[LLM_ERRCLASS_COUNT] = {
    [LLM_ERR_NONE] = {"none", false, 200},
    [LLM_ERR_DNS] = {"dns", true, 502},
    [LLM_ERR_CONNECT] = {"connect", true, 502},
    [LLM_ERR_TLS] = {"tls", true, 502},
    [LLM_ERR_TIMEOUT] = {"timeout", true, 504},
    [LLM_ERR_RATE_LIMIT] = {"rate_limit", true, 429},
    [LLM_ERR_OVERLOADED] = {"overloaded", true, 503},
    [LLM_ERR_SERVER] = {"server", true, 500},
    [LLM_ERR_AUTH] = {"auth", false, 401},
    [LLM_ERR_BAD_REQUEST] = {"bad_request", false, 400},
    [LLM_ERR_CONTEXT_LENGTH] = {"context_length", false, 400},
    [LLM_ERR_BAD_RESPONSE] = {"bad_response", false, 502},
    [LLM_ERR_TRUNCATED] = {"truncated", true, 502},
    [LLM_ERR_CANCELLED] = {"cancelled", false, 499},
    [LLM_ERR_NO_KEY] = {"no_key", false, 503},
    [LLM_ERR_INTERNAL] = {"internal", false, 500},
};

const char *llm_errclass_name(enum llm_errclass c)
{
    if ((unsigned)c >= LLM_ERRCLASS_COUNT)
        return "unknown";
    return errclass_table[c].name;
}

bool llm_errclass_is_retryable(enum llm_errclass c)
{
    return (unsigned)c < LLM_ERRCLASS_COUNT && errclass_table[c].retryable;
}

int llm_errclass_http_status(enum llm_errclass c)
{
    if ((unsigned)c >= LLM_ERRCLASS_COUNT)
        return 500;
    return errclass_table[c].http_status;
}

bool llm_errclass_is_upstream(enum llm_errclass c)
{
    switch (c) {
    case LLM_ERR_RATE_LIMIT:
    case LLM_ERR_OVERLOADED:
    case LLM_ERR_SERVER:
    case LLM_ERR_AUTH:
    case LLM_ERR_BAD_REQUEST:
    case LLM_ERR_CONTEXT_LENGTH:
        return true;
    case LLM_ERR_NONE:
    case LLM_ERR_DNS:
    case LLM_ERR_CONNECT:
    case LLM_ERR_TLS:
    case LLM_ERR_TIMEOUT:
    case LLM_ERR_BAD_RESPONSE:
    case LLM_ERR_TRUNCATED:
    case LLM_ERR_CANCELLED:
    case LLM_ERR_NO_KEY:
    case LLM_ERR_INTERNAL:
        return false;
    }
    return false;
}

int llm_client_status(enum llm_errclass c, long upstream_status)
{
    if (!llm_errclass_is_upstream(c) || upstream_status < 400 || upstream_status > 599)
        return llm_errclass_http_status(c);
    return upstream_status == 529 ? 503 : (int)upstream_status;
}

void llm_error_info_init(struct llm_error_info *e)
{
    memset(e, 0, sizeof *e);
    e->retry_after_ms = -1;
}

const char *llm_error_type_for_status(long status)
{
    switch (status) {
    case 401:
        return "authentication_error";
    case 403:
        return "permission_error";
    case 404:
        return "not_found_error";
    case 429:
        return "rate_limit_error";
    default:
        break;
    }
    if (status >= 400 && status < 500)
        return "invalid_request_error";
    return status >= 500 && status < 600 ? "server_error" : NULL;
}

enum llm_errclass llm_errclass_from_status(long status)
{
    if (status >= 200 && status < 300)
        return LLM_ERR_NONE;
    if (status == 408)
        return LLM_ERR_SERVER; /* request timeout: transient, retry elsewhere */
    if (status == 429)
        return LLM_ERR_RATE_LIMIT;
    if (status == 529)
        return LLM_ERR_OVERLOADED;
    if (status == 401 || status == 403)
        return LLM_ERR_AUTH;
    if (status >= 400 && status < 500)
        return LLM_ERR_BAD_REQUEST;
    if (status >= 500 && status < 600)
        return LLM_ERR_SERVER;
    return LLM_ERR_BAD_RESPONSE; /* 1xx/3xx as final status, 0, or nonsense */
}

/* ---- Rate-limit headers --------------------------------------------------------------- */

void llm_ratelimit_init(struct llm_ratelimit *rl)
{
    rl->retry_after_ms = -1;
    rl->remaining_requests = -1;
    rl->remaining_tokens = -1;
    rl->reset_requests_ms = -1;
    rl->reset_tokens_ms = -1;
}

#define MAX_DELAY_MS ((int64_t)1000 * 86400 * 365 * 100) /* clamp: a century */

/* Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? (unsigned)-3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

/* Reads exactly n digits. */
static bool read_digits(const char **s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*s)[i]))
            return false;
        v = v * 10 + ((*s)[i] - '0');
    }
    *s += n;
    *out = v;
    return true;
}

static bool expect(const char **s, char c)
{
    if (**s != c)
        return false;
    (*s)++;
    return true;
}

static bool valid_time(int mon, int day, int h, int mi, int sec)
{
    return mon >= 1 && mon <= 12 && day >= 1 && day <= 31 && h <= 23 && mi <= 59 && sec <= 60;
}

static int64_t epoch_ms(int y, int mon, int day, int h, int mi, int sec)
{
    int64_t days = days_from_civil(y, (unsigned)mon, (unsigned)day);
    int64_t secs = days * 86400 + (int64_t)h * 3600 + (int64_t)mi * 60 + sec;
    return secs * 1000;
}

/* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" (the weekday is not checked). */
static bool parse_http_date(const char *s, int64_t *out_ms)
{
    static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
    int day, y, h, mi, sec, mon = 0;
    const char *comma = strchr(s, ',');
    if (!comma)
        return false;
    s = comma + 1;
    if (!expect(&s, ' ') || !read_digits(&s, 2, &day) || !expect(&s, ' '))
        return false;
    for (int i = 0; i < 12; i++) {
        if (strncmp(s, months + (ptrdiff_t)3 * i, 3) == 0)
            mon = i + 1;
    }
    if (!mon)
        return false;
    s += 3;
    if (!expect(&s, ' ') || !read_digits(&s, 4, &y) || !expect(&s, ' '))
        return false;
    if (!read_digits(&s, 2, &h) || !expect(&s, ':') || !read_digits(&s, 2, &mi) ||
        !expect(&s, ':') || !read_digits(&s, 2, &sec))
        return false;
    if (strcmp(s, " GMT") != 0 || !valid_time(mon, day, h, mi, sec))
        return false;
    *out_ms = epoch_ms(y, mon, day, h, mi, sec);
    return true;
}

/* RFC 3339: "2024-05-01T12:00:30Z", "2024-05-01T12:00:30.25+02:00". */
static bool parse_rfc3339(const char *s, int64_t *out_ms)
{
    int y, mon, day, h, mi, sec, oh = 0, om = 0;
    if (!read_digits(&s, 4, &y) || !expect(&s, '-') || !read_digits(&s, 2, &mon) ||
        !expect(&s, '-') || !read_digits(&s, 2, &day))
        return false;
    if (*s != 'T' && *s != 't' && *s != ' ')
        return false;
    s++;
    if (!read_digits(&s, 2, &h) || !expect(&s, ':') || !read_digits(&s, 2, &mi) ||
        !expect(&s, ':') || !read_digits(&s, 2, &sec))
        return false;
    int64_t frac_ms = 0;
    if (*s == '.') {
        s++;
        if (!isdigit((unsigned char)*s))
            return false;
        for (int scale = 100; isdigit((unsigned char)*s); s++, scale /= 10)
            frac_ms += (int64_t)(*s - '0') * scale;
    }
    int sign = 0;
    if (*s == 'Z' || *s == 'z') {
        s++;
    } else if (*s == '+' || *s == '-') {
        sign = *s == '+' ? 1 : -1;
        s++;
        if (!read_digits(&s, 2, &oh) || !expect(&s, ':') || !read_digits(&s, 2, &om))
            return false;
    } else {
        return false;
    }
    if (*s || !valid_time(mon, day, h, mi, sec) || oh > 23 || om > 59)
        return false;
    int64_t offset_ms = ((int64_t)oh * 3600 + (int64_t)om * 60) * 1000;
    *out_ms = epoch_ms(y, mon, day, h, mi, sec) + frac_ms - sign * offset_ms;
    return true;
}

static int64_t clamp_delay(double ms)
{
    if (!(ms > 0))
        return 0;
    if (ms > (double)MAX_DELAY_MS)
        return MAX_DELAY_MS;
    return (int64_t)ceil(ms);
}

/* A plain non-negative decimal ("30", "1.5"); no sign, no exponent, no hex. */
static bool parse_decimal(const char *s, double *out)
{
    size_t i = 0;
    bool digits = false, dot = false;
    for (; s[i]; i++) {
        if (isdigit((unsigned char)s[i]))
            digits = true;
        else if (s[i] == '.' && !dot)
            dot = true;
        else
            return false;
    }
    return digits && str_to_double(s, out);
}

bool llm_parse_go_duration_ms(const char *s, int64_t *out_ms)
{
    static const struct {
        const char *unit;
        double ms;
    } units[] = {
        /* Longest first so "ms" is not read as "m". */
        {"ns", 1e-6}, {"us", 1e-3}, {"\xC2\xB5s", 1e-3}, {"\xCE\xBCs", 1e-3},
        {"ms", 1.0},  {"s", 1e3},   {"m", 60e3},         {"h", 3600e3},
    };
    if (!s || !*s)
        return false;
    if (strcmp(s, "0") == 0) {
        *out_ms = 0;
        return true;
    }
    double total = 0;
    while (*s) {
        char num[32];
        size_t n = strspn(s, "0123456789.");
        if (n == 0 || n >= sizeof num)
            return false;
        memcpy(num, s, n);
        num[n] = '\0';
        double v;
        if (!parse_decimal(num, &v))
            return false;
        s += n;
        size_t k = 0;
        while (k < SB_ARRAY_LEN(units) && !str_has_prefix(s, units[k].unit))
            k++;
        if (k == SB_ARRAY_LEN(units))
            return false;
        s += strlen(units[k].unit);
        total += v * units[k].ms;
    }
    *out_ms = clamp_delay(total);
    return true;
}

static void set_long(long *dst, const char *value)
{
    long v;
    if (str_to_long(value, &v) && v >= 0)
        *dst = v;
}

static void set_rfc3339_delay(int64_t *dst, const char *value, int64_t now_wall_ms)
{
    int64_t at;
    if (parse_rfc3339(value, &at))
        *dst = clamp_delay((double)(at - now_wall_ms));
}

static void set_go_duration(int64_t *dst, const char *value)
{
    int64_t ms;
    if (llm_parse_go_duration_ms(value, &ms))
        *dst = ms;
}

/* Retry-After: delta-seconds or an HTTP date. retry-after-ms (more precise) wins whatever
 * the header order: Retry-After only fills an unset value. */
static void feed_retry_after(struct llm_ratelimit *rl, const char *value, int64_t now_wall_ms)
{
    double secs;
    int64_t at;
    if (rl->retry_after_ms >= 0)
        return;
    if (parse_decimal(value, &secs))
        rl->retry_after_ms = clamp_delay(secs * 1000.0);
    else if (parse_http_date(value, &at))
        rl->retry_after_ms = clamp_delay((double)(at - now_wall_ms));
}

void llm_ratelimit_feed_header(struct llm_ratelimit *rl, const char *name, const char *value,
                               int64_t now_wall_ms)
{
    char v[128];
    double ms;
    if (!name || !value)
        return;
    while (isspace((unsigned char)*value))
        value++;
    size_t n = str_copy(v, sizeof v, value);
    if (n >= sizeof v)
        return; /* nothing legitimate is this long */
    while (n > 0 && isspace((unsigned char)v[n - 1]))
        v[--n] = '\0';

    if (str_ieq(name, "retry-after")) {
        feed_retry_after(rl, v, now_wall_ms);
    } else if (str_ieq(name, "retry-after-ms")) {
        if (parse_decimal(v, &ms))
            rl->retry_after_ms = clamp_delay(ms);
    } else if (str_ieq(name, "x-ratelimit-remaining-requests") ||
               str_ieq(name, "anthropic-ratelimit-requests-remaining")) {
        set_long(&rl->remaining_requests, v);
    } else if (str_ieq(name, "x-ratelimit-remaining-tokens") ||
               str_ieq(name, "anthropic-ratelimit-tokens-remaining")) {
        set_long(&rl->remaining_tokens, v);
    } else if (str_ieq(name, "x-ratelimit-reset-requests")) {
        set_go_duration(&rl->reset_requests_ms, v);
    } else if (str_ieq(name, "x-ratelimit-reset-tokens")) {
        set_go_duration(&rl->reset_tokens_ms, v);
    } else if (str_ieq(name, "anthropic-ratelimit-requests-reset")) {
        set_rfc3339_delay(&rl->reset_requests_ms, v, now_wall_ms);
    } else if (str_ieq(name, "anthropic-ratelimit-tokens-reset")) {
        set_rfc3339_delay(&rl->reset_tokens_ms, v, now_wall_ms);
    }
}

int64_t llm_ratelimit_retry_delay_ms(const struct llm_ratelimit *rl, int64_t body_delay_ms)
{
    if (rl->retry_after_ms >= 0)
        return rl->retry_after_ms;
    if (body_delay_ms >= 0)
        return body_delay_ms;
    int64_t spent = -1, any = -1;
    if (rl->remaining_requests == 0 && rl->reset_requests_ms >= 0)
        spent = rl->reset_requests_ms;
    if (rl->remaining_tokens == 0 && rl->reset_tokens_ms > spent)
        spent = rl->reset_tokens_ms;
    if (rl->reset_requests_ms >= 0)
        any = rl->reset_requests_ms;
    if (rl->reset_tokens_ms >= 0 && (any < 0 || rl->reset_tokens_ms < any))
        any = rl->reset_tokens_ms;
    return spent >= 0 ? spent : any;
}

/* "1.5s" / "20ms": OpenAI's spelling of a reset delay. */
static void print_delay(int64_t ms, char *out, size_t size)
{
    if (ms < 1000)
        snprintf(out, size, "%lldms", (long long)(ms < 0 ? 0 : ms));
    else if (ms % 1000 == 0)
        snprintf(out, size, "%llds", (long long)(ms / 1000));
    else
        snprintf(out, size, "%lld.%03llds", (long long)(ms / 1000), (long long)(ms % 1000));
}

bool llm_ratelimit_client_header(const char *name, const char *value, int64_t now_wall_ms,
                                 char *out_name, size_t name_size, char *out_value,
                                 size_t value_size)
{
    static const char *const what[] = {"requests", "tokens", "input-tokens", "output-tokens"};
    static const char *const field[] = {"limit", "remaining", "reset"};
    char want[64];
    int64_t at;
    if (!name || !value || strlen(value) >= value_size || strlen(name) >= name_size)
        return false;
    /* Every response header comes here: the names below all start with one of these. */
    if (strncasecmp(name, "x-ratelimit-", 12) != 0 &&
        strncasecmp(name, "anthropic-ratelimit-", 20) != 0)
        return false;
    for (size_t w = 0; w < SB_ARRAY_LEN(what); w++) {
        for (size_t f = 0; f < SB_ARRAY_LEN(field); f++) {
            snprintf(want, sizeof want, "x-ratelimit-%s-%s", field[f], what[w]);
            if (str_ieq(name, want)) {
                str_copy(out_name, name_size, want);
                str_copy(out_value, value_size, value);
                return true;
            }
            snprintf(want, sizeof want, "anthropic-ratelimit-%s-%s", what[w], field[f]);
            if (!str_ieq(name, want))
                continue;
            snprintf(out_name, name_size, "x-ratelimit-%s-%s", field[f], what[w]);
            if (f != 2)
                str_copy(out_value, value_size, value);
            else if (parse_rfc3339(value, &at))
                print_delay(clamp_delay((double)(at - now_wall_ms)), out_value, value_size);
            else
                return false;
            return true;
        }
    }
    return false;
}

/* ---- Response collector ---------------------------------------------------------------- */

/* Tool call indices come from adapters (0-based, in order); anything beyond is nonsense. */
#define COLLECT_MAX_TOOL_CALLS 1024

const char *llm_text_kind_field(enum llm_text_kind k)
{
    switch (k) {
    case LLM_TEXT_CONTENT:
        return "content";
    case LLM_TEXT_REFUSAL:
        return "refusal";
    case LLM_TEXT_REASONING_CONTENT:
        return "reasoning_content";
    case LLM_TEXT_REASONING:
        return "reasoning";
    }
    return "content";
}

void llm_response_init(struct llm_response *r)
{
    memset(r, 0, sizeof *r);
    buf_init(&r->text);
    buf_init(&r->refusal);
    buf_init(&r->reasoning);
    buf_init(&r->logprobs);
    r->finish = LLM_FINISH_NONE;
    r->errclass = LLM_ERR_NONE;
}

void llm_response_cleanup(struct llm_response *r)
{
    buf_cleanup(&r->text);
    buf_cleanup(&r->refusal);
    buf_cleanup(&r->reasoning);
    buf_cleanup(&r->logprobs);
    for (size_t i = 0; i < r->n_tool_calls; i++) {
        free(r->tool_calls[i].id);
        free(r->tool_calls[i].name);
        buf_cleanup(&r->tool_args[i]);
    }
    free(r->tool_calls);
    free(r->tool_args);
    llm_response_init(r);
}

/* The call at index, created (empty) when new; NULL for an out-of-range index. */
static struct llm_tool_call *collect_tool(struct llm_response *r, int index)
{
    if (index < 0 || index >= COLLECT_MAX_TOOL_CALLS)
        return NULL;
    size_t need = (size_t)index + 1;
    if (need > r->n_tool_calls) {
        size_t cap = r->cap_tool_calls;
        r->tool_calls = xgrow(r->tool_calls, &r->cap_tool_calls, need, sizeof *r->tool_calls);
        r->tool_args = xgrow(r->tool_args, &cap, need, sizeof *r->tool_args);
        for (size_t i = r->n_tool_calls; i < need; i++) {
            memset(&r->tool_calls[i], 0, sizeof r->tool_calls[i]);
            buf_init(&r->tool_args[i]);
        }
        r->n_tool_calls = need;
    }
    return &r->tool_calls[index];
}

/* Every call gets an id, a name and arguments ("{}" when none came). */
static void collect_complete_tools(struct llm_response *r)
{
    for (size_t i = 0; i < r->n_tool_calls; i++) {
        struct llm_tool_call *tc = &r->tool_calls[i];
        if (!tc->id)
            tc->id = xasprintf("call_%zu", i);
        if (!tc->name)
            tc->name = xstrdup("");
        if (r->tool_args[i].len == 0)
            buf_puts(&r->tool_args[i], "{}");
        tc->arguments = r->tool_args[i].data;
    }
}

static void collect_text(struct llm_response *r, const struct llm_event *ev)
{
    switch (ev->kind) {
    case LLM_TEXT_CONTENT:
        buf_append(&r->text, ev->text, ev->len);
        break;
    case LLM_TEXT_REFUSAL:
        buf_append(&r->refusal, ev->text, ev->len);
        break;
    case LLM_TEXT_REASONING_CONTENT:
    case LLM_TEXT_REASONING:
        r->reasoning_kind = ev->kind;
        buf_append(&r->reasoning, ev->text, ev->len);
        break;
    }
    if (ev->logprobs && ev->logprobs_len) {
        buf_reset(&r->logprobs);
        buf_append(&r->logprobs, ev->logprobs, ev->logprobs_len);
    }
}

int llm_response_collect(void *ctx, const struct llm_event *ev)
{
    struct llm_response *r = ctx;
    struct llm_tool_call *tc;
    switch (ev->type) {
    case LLM_EV_TEXT:
        collect_text(r, ev);
        break;
    case LLM_EV_TOOL_CALL:
        tc = collect_tool(r, ev->index);
        if (tc) {
            free(tc->id);
            free(tc->name);
            tc->id = xstrdup(ev->id);
            tc->name = xstrdup(ev->name);
        }
        break;
    case LLM_EV_TOOL_ARGS:
        tc = collect_tool(r, ev->index);
        if (tc) {
            buf_append(&r->tool_args[ev->index], ev->text, ev->len);
            tc->arguments = r->tool_args[ev->index].data;
        }
        break;
    case LLM_EV_USAGE:
        r->usage = ev->usage;
        break;
    case LLM_EV_FINISH:
        collect_complete_tools(r);
        r->finish = ev->finish;
        r->finished = true;
        str_copy(r->system_fingerprint, sizeof r->system_fingerprint,
                 ev->system_fingerprint ? ev->system_fingerprint : "");
        str_copy(r->service_tier, sizeof r->service_tier, ev->service_tier ? ev->service_tier : "");
        break;
    case LLM_EV_ERROR: {
        size_t n = ev->text ? ev->len : 0;
        collect_complete_tools(r);
        r->errclass = ev->errclass;
        r->status = ev->status;
        if (n >= sizeof r->error)
            n = sizeof r->error - 1;
        if (n)
            memcpy(r->error, ev->text, n);
        r->error[n] = '\0';
        break;
    }
    }
    return 0;
}

/* ---- Cost ---------------------------------------------------------------------------- */

double llm_cost_usd(const struct llm_price *price, const struct llm_usage *usage)
{
    if (!price || !usage || !usage->present)
        return 0.0;
    double in = usage->input_tokens > 0 ? (double)usage->input_tokens : 0.0;
    double out = usage->output_tokens > 0 ? (double)usage->output_tokens : 0.0;
    double cached = usage->cached_tokens > 0 ? (double)usage->cached_tokens : 0.0;
    if (cached > in)
        cached = in;
    double usd = (in - cached) * price->input_per_mtok + cached * price->cached_input_per_mtok +
                 out * price->output_per_mtok;
    return usd / 1e6;
}
