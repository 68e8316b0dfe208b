/*
 * ask.c - `switchboard ask`: one prompt to one target, answer streamed to stdout, a summary
 * line on stderr. Single-threaded: the main thread owns the transport and drives it until
 * the one transfer is done.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "switchboard/cli.h"
#include "switchboard/config.h"
#include "switchboard/provider.h"
#include "switchboard/transport.h"

#define ASK_MAX_STDIN ((size_t)16 * 1024 * 1024)

struct ask_opts {
    const char *config_path;
    const char *target;
    const char *route;
    const char *system;
    const char *prompt;
    long max_tokens;
    bool stream;
    bool quiet;
};

struct ask_state {
    struct provider_call *call;
    int64_t start_us;
    int64_t first_token_us; /* -1 until the first text or tool event */
    bool done;
    bool wrote_text;
    bool ended_with_newline;
    struct transport_result res;
};

static void ask_usage(FILE *out)
{
    fprintf(out,
            "usage: switchboard ask -c FILE [-t TARGET | -m ROUTE] [--no-stream]\n"
            "                       [--system TEXT] [--max-tokens N] PROMPT|-\n"
            "  Sends one prompt and streams the answer to stdout. With '-' the prompt is read\n"
            "  from stdin. A summary line (target, model, latency, TTFT, tokens, cost) goes to\n"
            "  stderr. Exit: 0 answered, 1 the provider failed, 2 usage or config error.\n");
}

/* ---- the sink: print as it arrives -------------------------------------------------------- */

static int ask_on_event(void *ctx, const struct llm_event *ev)
{
    struct ask_state *st = ctx;
    switch (ev->type) {
    case LLM_EV_TEXT:
    case LLM_EV_TOOL_CALL:
    case LLM_EV_TOOL_ARGS:
        if (st->first_token_us < 0)
            st->first_token_us = clock_mono_us();
        break;
    case LLM_EV_USAGE:
    case LLM_EV_FINISH:
    case LLM_EV_ERROR:
        break;
    }
    switch (ev->type) {
    case LLM_EV_TEXT:
        if (ev->kind == LLM_TEXT_REASONING || ev->kind == LLM_TEXT_REASONING_CONTENT)
            break; /* the answer only */
        fwrite(ev->text, 1, ev->len, stdout);
        st->wrote_text = true;
        st->ended_with_newline = ev->len > 0 && ev->text[ev->len - 1] == '\n';
        break;
    case LLM_EV_TOOL_CALL:
        printf("%s[tool call %s id=%s] ", st->wrote_text && !st->ended_with_newline ? "\n" : "",
               ev->name ? ev->name : "?", ev->id ? ev->id : "?");
        st->wrote_text = true;
        st->ended_with_newline = false;
        break;
    case LLM_EV_TOOL_ARGS:
        fwrite(ev->text, 1, ev->len, stdout);
        break;
    case LLM_EV_USAGE:
    case LLM_EV_ERROR:
        break;
    case LLM_EV_FINISH:
        if (st->wrote_text && !st->ended_with_newline)
            putchar('\n');
        break;
    }
    fflush(stdout);
    return 0;
}

/* ---- transport callbacks -> provider_call ------------------------------------------------- */

static void ask_status(void *ctx, long status)
{
    struct ask_state *st = ctx;
    provider_call_on_status(st->call, status);
}

static void ask_header(void *ctx, const char *name, const char *value)
{
    struct ask_state *st = ctx;
    provider_call_on_header(st->call, name, value, clock_wall_ms());
}

static int ask_data(void *ctx, const char *bytes, size_t len)
{
    struct ask_state *st = ctx;
    return provider_call_on_data(st->call, bytes, len);
}

static void ask_done(void *ctx, const struct transport_result *res)
{
    struct ask_state *st = ctx;
    st->res = *res;
    st->done = true;
}

/* ---- options and input --------------------------------------------------------------------- */

static char *read_stdin(void)
{
    struct buf b;
    buf_init(&b);
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0) {
        if (b.len + n > ASK_MAX_STDIN) {
            fprintf(stderr, "error: prompt on stdin is over %zu bytes\n", ASK_MAX_STDIN);
            buf_cleanup(&b);
            return NULL;
        }
        buf_append(&b, chunk, n);
    }
    return buf_take(&b);
}

static int parse_opts(int argc, char **argv, struct ask_opts *o)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"target", required_argument, NULL, 't'},
        {"model", required_argument, NULL, 'm'},
        {"no-stream", no_argument, NULL, 'n'},
        {"system", required_argument, NULL, 's'},
        {"max-tokens", required_argument, NULL, 'x'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    o->stream = true;
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "c:t:m:s:qh", longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            o->config_path = optarg;
            break;
        case 't':
            o->target = optarg;
            break;
        case 'm':
            o->route = optarg;
            break;
        case 'n':
            o->stream = false;
            break;
        case 's':
            o->system = optarg;
            break;
        case 'x':
            if (!str_to_long(optarg, &o->max_tokens) || o->max_tokens <= 0) {
                fprintf(stderr, "error: --max-tokens: expected a positive integer\n");
                return 2;
            }
            break;
        case 'q':
            o->quiet = true;
            break;
        case 'h':
            ask_usage(stdout);
            return 0;
        default:
            ask_usage(stderr);
            return 2;
        }
    }
    if (!o->config_path || optind != argc - 1 || (o->target && o->route)) {
        ask_usage(stderr);
        return 2;
    }
    o->prompt = argv[optind];
    return -1;
}

/* Picks the target: -t by name; -m the route's first enabled target; else the first
 * route's. Returns the index or -1 with a message printed. */
static long pick_target(const struct config *cfg, const struct ask_opts *o)
{
    if (o->target) {
        long i = config_find_target(cfg, o->target);
        if (i < 0)
            fprintf(stderr, "error: no target named '%s' in %s\n", o->target, o->config_path);
        else if (!cfg->targets[i].enabled)
            fprintf(stderr, "error: target '%s' is disabled: %s\n", o->target,
                    cfg->targets[i].disabled_reason);
        return i >= 0 && cfg->targets[i].enabled ? i : -1;
    }
    long r = o->route ? config_find_route(cfg, o->route) : 0;
    if (r < 0) {
        fprintf(stderr, "error: no route named '%s' in %s\n", o->route, o->config_path);
        return -1;
    }
    const struct config_route *route = &cfg->routes[r];
    for (size_t k = 0; k < route->n_targets; k++) {
        if (cfg->targets[route->targets[k]].enabled)
            return (long)route->targets[k];
    }
    fprintf(stderr, "error: route '%s' has no enabled target:", route->name);
    for (size_t k = 0; k < route->n_targets; k++) {
        const struct config_target *t = &cfg->targets[route->targets[k]];
        fprintf(stderr, " %s (%s)", t->name, t->disabled_reason);
    }
    fputc('\n', stderr);
    return -1;
}

/* ---- the call ------------------------------------------------------------------------------ */

static void print_summary(const struct config_target *t, const struct ask_state *st,
                          enum llm_errclass outcome)
{
    const struct llm_usage *u = provider_call_usage(st->call);
    int64_t now = clock_mono_us();
    fprintf(stderr, "target=%s model=%s latency=%lldms", t->name, t->model,
            (long long)((now - st->start_us) / 1000));
    if (st->first_token_us >= 0)
        fprintf(stderr, " ttft=%lldms", (long long)((st->first_token_us - st->start_us) / 1000));
    if (u->present) {
        fprintf(stderr, " tokens_in=%ld tokens_out=%ld", u->input_tokens, u->output_tokens);
        if (u->cached_tokens)
            fprintf(stderr, " cached=%ld", u->cached_tokens);
        if (t->has_price)
            fprintf(stderr, " cost=$%.6f", llm_cost_usd(&t->price, u));
        else
            fprintf(stderr, " cost=unpriced");
    } else {
        fprintf(stderr, " usage=missing cost=unknown");
    }
    if (outcome == LLM_ERR_NONE) {
        const char *fin = llm_finish_name(provider_call_finish_reason(st->call));
        fprintf(stderr, " finish=%s", fin && *fin ? fin : "unknown");
    } else {
        fprintf(stderr, " error=%s", llm_errclass_name(outcome));
    }
    fputc('\n', stderr);
}

static int run_call(const struct config_target *t, const struct llm_request *req, bool quiet)
{
    char msg[PROVIDER_MSG_MAX] = "";
    int rc = 1;
    struct http_request http;
    http_request_init(&http);
    struct transport *tr = NULL;
    struct ask_state st = {.first_token_us = -1};
    const struct provider_ops *ops = provider_ops_for(t->kind);
    struct llm_sink sink = {ask_on_event, &st};

    if (ops->encode(t, req, &http, msg, sizeof msg) != SB_OK) {
        fprintf(stderr, "error: cannot send this request to %s: %s\n", t->name, msg);
        rc = 2;
        goto out;
    }
    tr = transport_new(msg, sizeof msg);
    if (!tr) {
        fprintf(stderr, "error: %s\n", msg);
        goto out;
    }
    st.call = provider_call_new(ops, req->stream, &sink, t->api_key);
    provider_call_set_sse_limit(st.call, (size_t)t->sse_max_event_bytes);
    struct transport_timeouts to = {t->connect_timeout_ms, t->first_byte_timeout_ms,
                                    t->total_timeout_ms};
    struct transport_callbacks cb = {ask_status, ask_header, ask_data, ask_done};
    st.start_us = clock_mono_us();
    if (!transport_start(tr, &http, &to, &cb, &st, msg, sizeof msg)) {
        fprintf(stderr, "error: %s\n", msg);
        goto out;
    }
    while (!st.done)
        transport_run(tr, 1000);
    enum llm_errclass outcome = provider_call_finish(st.call, st.res.err, st.res.message);
    if (outcome != LLM_ERR_NONE)
        fprintf(stderr, "error: %s: %s\n", llm_errclass_name(outcome),
                provider_call_error(st.call));
    if (!quiet)
        print_summary(t, &st, outcome);
    rc = outcome == LLM_ERR_NONE ? 0 : 1;
out:
    provider_call_free(st.call);
    transport_free(tr);
    http_request_cleanup(&http);
    return rc;
}

int cli_ask(int argc, char **argv)
{
    struct ask_opts o = {0};
    int rc = parse_opts(argc, argv, &o);
    if (rc >= 0)
        return rc;
    rc = 2;
    char *prompt = NULL;
    struct llm_request req;
    llm_request_init(&req);
    struct config_diag errs;
    config_diag_init(&errs);
    struct config *cfg = config_load(o.config_path, &errs);
    if (!cfg) {
        for (size_t i = 0; i < errs.n; i++)
            fprintf(stderr, "error: %s\n", errs.items[i]);
        goto out;
    }
    long ti = pick_target(cfg, &o);
    if (ti < 0)
        goto out;
    prompt = str_eq(o.prompt, "-") ? read_stdin() : xstrdup(o.prompt);
    if (!prompt)
        goto out;
    req.model = xstrdup(o.route ? o.route : cfg->targets[ti].model);
    if (o.system)
        llm_request_add_message(&req, LLM_ROLE_SYSTEM, o.system);
    llm_request_add_message(&req, LLM_ROLE_USER, prompt);
    req.stream = o.stream;
    req.include_usage = true;
    req.max_tokens = o.max_tokens;
    rc = run_call(&cfg->targets[ti], &req, o.quiet);
out:
    free(prompt);
    llm_request_cleanup(&req);
    config_free(cfg);
    config_diag_cleanup(&errs);
    return rc;
}
