/*
 * fuzz_router.c - drives the router loop (router_step) over the fake transport and fake clock
 * of tests/unit/support_fake.c with a random config, a random schedule of faults per transfer
 * (refuse, connect error, 5xx, 429 + Retry-After, hang, cut after k bytes, slow, stall) and
 * random client calls (some reading slowly: their sink pauses the upstream until a resume),
 * cancels, resumes, time steps and operator commands. On every run it checks:
 *  - each call ends exactly once (one on_done, at most one terminal event), and by its
 *    deadline plus one router tick;
 *  - attempts never exceed the call's max_attempts;
 *  - no two targets' output reaches one client (one commit; all text from that target);
 *  - the loop does bounded work (fake_drive aborts when it stops making progress).
 */
/* fuzz-extra: tests/unit/support_fake.c */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../unit/support_fake.h"
#include "fuzz_input.h"
#include "switchboard/log.h"

#define MAX_CALLS 24
#define TICK_MS   100

struct world {
    struct fuzz_input *in;
    int n_targets;
};

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_router: invariant broken: %s\n", what);
        abort();
    }
}

static void plan(void *ctx, const struct http_request *req, struct fake_plan *p)
{
    struct world *w = ctx;
    const char *h = strstr(req->url, "://");
    char text[16];
    snprintf(text, sizeof text, "from %c", h ? h[3] : '?');
    bool stream = req->body && strstr(req->body, "\"stream\":true");
    p->body = strcmp(req->method, "GET") == 0 ? "{\"object\":\"list\",\"data\":[]}"
              : stream                        ? fake_openai_sse(text)
                                              : fake_openai_json(text);
    long len = (long)strlen(p->body);
    switch (fuzz_next(w->in, 10)) {
    case 0:
        p->refuse = true;
        break;
    case 1:
        p->fail = LLM_ERR_CONNECT;
        p->fail_after_ms = fuzz_next(w->in, 50);
        break;
    case 2:
        p->status = fuzz_next(w->in, 2) ? 503 : 500;
        p->body = "{\"error\":{\"message\":\"down\",\"type\":\"server_error\"}}";
        break;
    case 3:
        p->status = 429;
        p->headers[0][0] = "retry-after";
        p->headers[0][1] = fuzz_next(w->in, 2) ? "1" : "3";
        p->body = "{\"error\":{\"message\":\"slow down\",\"type\":\"rate_limit_error\"}}";
        break;
    case 4:
        p->first_byte_ms = -1;
        break;
    case 5:
        p->chunk = 1 + fuzz_next(w->in, 64);
        p->cut_after = (long)fuzz_next(w->in, 255) % (len + 1);
        break;
    case 6:
        p->first_byte_ms = 50 * (long)fuzz_next(w->in, 40);
        break;
    case 7:
        p->chunk = 1 + fuzz_next(w->in, 64);
        p->chunk_every_ms = fuzz_next(w->in, 200);
        p->stall_after = (long)fuzz_next(w->in, 255) % (len + 1);
        break;
    default:
        p->chunk = fuzz_next(w->in, 3) ? 0 : 1 + fuzz_next(w->in, 64);
        p->chunk_every_ms = fuzz_next(w->in, 30);
        break;
    }
}

static const char *config(struct fuzz_input *in, int *n_targets, long *deadline, int *max_attempts)
{
    static char cfg[4096];
    struct buf b;
    buf_init(&b);
    *n_targets = 1 + (int)fuzz_next(in, 4);
    *deadline = 200 + 200 * (long)fuzz_next(in, 8);
    *max_attempts = 1 + (int)fuzz_next(in, 4);
    static const char *const strategies[] = {"priority", "weighted", "fastest", "least-busy",
                                             "p2c"};
    buf_puts(&b, "{\"providers\":[");
    for (int i = 0; i < *n_targets; i++)
        buf_printf(&b,
                   "%s{\"name\":\"%c\",\"kind\":\"%s\",\"base_url\":\"http://%c.fake/v1\","
                   "\"api_key_env\":\"FAKE_KEY\",\"model\":\"m\",\"first_byte_timeout_ms\":%u,"
                   "\"stream_idle_timeout_ms\":%u,\"probe\":{\"enabled\":%s,\"interval_ms\":1000,"
                   "\"timeout_ms\":300,\"kind\":\"%s\"}}",
                   i ? "," : "", 'a' + i, fuzz_next(in, 5) ? "openai-compatible" : "anthropic",
                   'a' + i, 200 + 100 * fuzz_next(in, 10), 100 * fuzz_next(in, 10),
                   fuzz_next(in, 2) ? "true" : "false", fuzz_next(in, 2) ? "chat" : "list");
    buf_printf(&b,
               "],\"routes\":[{\"name\":\"chat\",\"strategy\":\"%s\",\"queue_ms\":%u,\"targets\":[",
               strategies[fuzz_next(in, 5)], 1000 * fuzz_next(in, 4));
    for (int i = 0; i < *n_targets; i++)
        buf_printf(&b, "%s\"%c\"", i ? "," : "", 'a' + i);
    buf_printf(&b,
               "]}],\"router\":{\"max_attempts\":%d,\"backoff_base_ms\":%u,\"backoff_cap_ms\":400,"
               "\"deadline_ms\":%ld,\"hedge_after_ms\":%u,\"breaker_failures\":%u,"
               "\"breaker_cooldown_ms\":%u,\"breaker_half_open_trials\":%u,"
               "\"breaker_slow_strikes\":%u},"
               "\"ledger\":{\"path\":\":memory:\"},\"guard\":{\"enabled\":false}}",
               *max_attempts, 10 * fuzz_next(in, 20), *deadline, 50 * fuzz_next(in, 4),
               1 + fuzz_next(in, 4), 100 + 200 * fuzz_next(in, 10), 1 + fuzz_next(in, 3),
               1 + fuzz_next(in, 3));
    str_copy(cfg, sizeof cfg, buf_str(&b));
    buf_cleanup(&b);
    return cfg;
}

struct tracked {
    struct fake_call fc;
    uint64_t id;
    int64_t submitted_ms;
    bool live;
};

static void check_call(const struct tracked *t, long deadline, int max_attempts)
{
    const struct fake_call *fc = &t->fc;
    check(fc->dones == 1, "a call ended exactly once");
    check(fc->errors + fc->finishes <= 1, "at most one terminal event");
    check(fc->commits <= 1, "one commit at most");
    check(fc->result.attempts <= max_attempts, "attempts within max_attempts");
    check(fc->done_ms - t->submitted_ms <= deadline + TICK_MS, "ended by its deadline + tick");
    if (fc->text[0]) {
        char want[16];
        snprintf(want, sizeof want, "from %s", fc->committed_to);
        check(fc->commits == 1, "text only after a commit");
        check(strncmp(fc->text, want, strlen(want)) == 0, "text from the committed target only");
    }
}

static bool all_done(void *ctx)
{
    struct tracked *calls = ctx;
    for (int i = 0; i < MAX_CALLS; i++) {
        if (calls[i].live && calls[i].fc.dones == 0)
            return false;
    }
    return true;
}

static void command(struct router *rt, struct fuzz_input *in, int n_targets)
{
    static const enum router_cmd_type types[] = {
        ROUTER_CMD_SET_WEIGHT, ROUTER_CMD_FORCE_LIVE, ROUTER_CMD_PIN,  ROUTER_CMD_DRAIN,
        ROUTER_CMD_RESET,      ROUTER_CMD_PROBE_NOW,  ROUTER_CMD_UNDO, ROUTER_CMD_CLEAR};
    struct router_cmd cmd = {.type = types[fuzz_next(in, SB_ARRAY_LEN(types))]};
    cmd.target[0] = (char)('a' + fuzz_next(in, (unsigned)n_targets));
    cmd.weight = fuzz_next(in, 4);
    cmd.expires_ms = 500 * fuzz_next(in, 3);
    str_copy(cmd.user, sizeof cmd.user, "fuzz");
    char msg[128];
    router_command(rt, &cmd, msg, sizeof msg, 0); /* applied at the next step; no wait */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool once;
    if (!once) {
        setenv("FAKE_KEY", "sk-fake-key-for-fuzzing-000", 1);
        log_setup(LOG_LEVEL_OFF, -1);
        once = true;
    }
    struct fuzz_input in = {data, size, 0};
    int n_targets, max_attempts;
    long deadline;
    const char *cfg = config(&in, &n_targets, &deadline, &max_attempts);
    struct world w = {&in, n_targets};
    struct fake_clock clock;
    fake_clock_init(&clock);
    struct fake_net *net;
    struct router *rt = fake_router_new(cfg, &clock, plan, &w, &net);
    struct tracked *calls = calloc(MAX_CALLS, sizeof *calls);
    int n_calls = 0;
    while (in.at < in.n) {
        switch (fuzz_next(&in, 5)) {
        case 0:
        case 1:
            if (n_calls < MAX_CALLS) {
                struct tracked *t = &calls[n_calls++];
                t->live = true;
                t->fc.clock = &clock;
                t->submitted_ms = fake_clock_ms(&clock);
                unsigned reader = fuzz_next(&in, 8);
                t->fc.stop_reading = reader == 0;
                t->fc.pause_reading = reader == 1; /* until case 2 picks it: resumed */
                struct router_sink sk = fake_call_sink(&t->fc);
                t->id = router_submit(rt, fake_request("chat", fuzz_next(&in, 2)), NULL, &sk);
            }
            break;
        case 2:
            if (n_calls > 0) {
                struct tracked *t = &calls[fuzz_next(&in, (unsigned)n_calls)];
                if (t->fc.pause_reading) {
                    t->fc.pause_reading = false;
                    router_resume(rt, t->id);
                } else {
                    router_cancel(rt, t->id);
                }
            }
            break;
        case 3:
            command(rt, &in, n_targets);
            break;
        default: {
            int64_t until = fake_clock_ms(&clock) + 5 * (int64_t)fuzz_next(&in, 50);
            fake_drive(rt, net, &clock, until, NULL, NULL);
            break;
        }
        }
    }
    /* let everything end: every call must be done by its deadline */
    int64_t end = fake_clock_ms(&clock) + deadline + 2 * TICK_MS;
    fake_drive(rt, net, &clock, end, all_done, calls);
    for (int i = 0; i < n_calls; i++)
        check_call(&calls[i], deadline, max_attempts);
    router_free(rt);
    free(calls);
    return 0;
}
