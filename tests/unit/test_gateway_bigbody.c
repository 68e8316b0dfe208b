/*
 * test_gateway_bigbody.c - a chat request's body over GW_LOOP_PARSE_MAX is parsed off the
 * router thread's loop (gateway.threads 0), on the offload pool, and answered exactly as
 * one parsed inline: the same statuses (the provider's failure, a malformed body's 400),
 * and a stop while the parse runs answers 503 "shutting down" and returns. Real router,
 * real sockets on 127.0.0.1 (the provider is a port where nothing listens, or a socket that
 * accepts nothing). Where the parse ran is recorded by wrapping openai_request_parse (the
 * Makefile links this test with -Wl,--wrap=openai_request_parse); the router thread is
 * known from router_loop_call. No timing is asserted. Also here: gateway_threads_resolve,
 * the choice of gateway.threads' default by online cores; and the prompt hash, per byte of
 * prompt: computed where the body is parsed and handed to the router, never on the router
 * thread for a gateway request (recorded by wrapping cache_prompt_hash the same way); and the
 * request's free at the call's end: a big request is freed off the router thread (on the
 * ledger's writer), a small one inline, and a stop with big requests in flight frees each
 * once (recorded by wrapping llm_request_cleanup; the leak and double-free checks are ASan's
 * and valgrind's on this binary).
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "support_fake.h"
#include "support_gateway.h"
#include "switchboard/cache.h"
#include "switchboard/gateway.h"
#include "switchboard/log.h"
#include "switchboard/provider.h"

/* ---- where openai_request_parse runs -------------------------------------------------------- */

static pthread_mutex_t parse_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t parse_cv = PTHREAD_COND_INITIALIZER;
static pthread_t parse_thread; /* the last parse's thread */
static size_t parse_len;       /* ...and its body's length */
static int parses;             /* parses begun */
static bool gate_closed;       /* parses wait in the wrapper until it opens */
static int parses_waiting;

enum sb_status __real_openai_request_parse(const char *body, size_t len, struct llm_request *req,
                                           char *msg, size_t msglen);
enum sb_status __wrap_openai_request_parse(const char *body, size_t len, struct llm_request *req,
                                           char *msg, size_t msglen);

enum sb_status __wrap_openai_request_parse(const char *body, size_t len, struct llm_request *req,
                                           char *msg, size_t msglen)
{
    pthread_mutex_lock(&parse_mu);
    parse_thread = pthread_self();
    parse_len = len;
    parses++;
    parses_waiting++;
    pthread_cond_broadcast(&parse_cv);
    while (gate_closed)
        pthread_cond_wait(&parse_cv, &parse_mu);
    parses_waiting--;
    pthread_mutex_unlock(&parse_mu);
    return __real_openai_request_parse(body, len, req, msg, msglen);
}

static void gate_set(bool closed)
{
    pthread_mutex_lock(&parse_mu);
    gate_closed = closed;
    pthread_cond_broadcast(&parse_cv);
    pthread_mutex_unlock(&parse_mu);
}

static void wait_parses_waiting(int n)
{
    pthread_mutex_lock(&parse_mu);
    while (parses_waiting < n)
        pthread_cond_wait(&parse_cv, &parse_mu);
    pthread_mutex_unlock(&parse_mu);
}

/* The thread and body length of the last parse. */
static pthread_t last_parse(size_t *len)
{
    pthread_mutex_lock(&parse_mu);
    pthread_t t = parse_thread;
    *len = parse_len;
    pthread_mutex_unlock(&parse_mu);
    return t;
}

/* ---- where cache_prompt_hash runs ------------------------------------------------------------ */

#define HASHES_MAX 8
struct hash_seen {
    pthread_t thread;
    uint64_t value;
};
static struct hash_seen hashes[HASHES_MAX]; /* under parse_mu */
static int n_hashes;

uint64_t __real_cache_prompt_hash(const struct llm_request *req);
uint64_t __wrap_cache_prompt_hash(const struct llm_request *req);

uint64_t __wrap_cache_prompt_hash(const struct llm_request *req)
{
    uint64_t h = __real_cache_prompt_hash(req);
    pthread_mutex_lock(&parse_mu);
    if (n_hashes < HASHES_MAX)
        hashes[n_hashes++] = (struct hash_seen){.thread = pthread_self(), .value = h};
    pthread_mutex_unlock(&parse_mu);
    return h;
}

static void hashes_reset(void)
{
    pthread_mutex_lock(&parse_mu);
    n_hashes = 0;
    pthread_mutex_unlock(&parse_mu);
}

/* How many hashes ran since hashes_reset, how many of them on thread t, and the last value. */
static int hashes_count(pthread_t t, int *on_t, uint64_t *last)
{
    pthread_mutex_lock(&parse_mu);
    int n = n_hashes;
    *on_t = 0;
    for (int i = 0; i < n; i++)
        *on_t += pthread_equal(hashes[i].thread, t) != 0;
    *last = n ? hashes[n - 1].value : 0;
    pthread_mutex_unlock(&parse_mu);
    return n;
}

/* ---- where llm_request_cleanup runs ------------------------------------------------------- */

#define FREES_MAX 64
struct free_seen {
    pthread_t thread;
    long tokens; /* llm_request_estimate_tokens of the request: which one it was */
};
static struct free_seen frees[FREES_MAX]; /* under parse_mu; broadcast on parse_cv */
static int n_frees;

void __real_llm_request_cleanup(struct llm_request *req);
void __wrap_llm_request_cleanup(struct llm_request *req);

void __wrap_llm_request_cleanup(struct llm_request *req)
{
    long tokens = req ? llm_request_estimate_tokens(req) : -1;
    __real_llm_request_cleanup(req);
    pthread_mutex_lock(&parse_mu);
    if (n_frees < FREES_MAX)
        frees[n_frees++] = (struct free_seen){.thread = pthread_self(), .tokens = tokens};
    pthread_cond_broadcast(&parse_cv);
    pthread_mutex_unlock(&parse_mu);
}

static void frees_reset(void)
{
    pthread_mutex_lock(&parse_mu);
    n_frees = 0;
    pthread_mutex_unlock(&parse_mu);
}

/* Waits until n requests of this estimate have been cleaned up (the watchdog ends a wait that
 * never ends); how many of them on thread t. */
static int wait_frees(long tokens, int n, pthread_t t)
{
    pthread_mutex_lock(&parse_mu);
    int seen = 0, on_t = 0;
    for (;;) {
        seen = on_t = 0;
        for (int i = 0; i < n_frees; i++) {
            if (frees[i].tokens != tokens)
                continue;
            seen++;
            on_t += pthread_equal(frees[i].thread, t) != 0;
        }
        if (seen >= n)
            break;
        pthread_cond_wait(&parse_cv, &parse_mu);
    }
    pthread_mutex_unlock(&parse_mu);
    assert_int_equal(seen, n); /* each request once */
    return on_t;
}

/* ---- a gateway and its router ---------------------------------------------------------------- */

/* The gateway and router under test (support_gateway.h), and the router thread's id. */
struct rig {
    struct tgw_rig g;
    pthread_t router_thread;
};

static void note_thread(void *ctx)
{
    *(pthread_t *)ctx = pthread_self();
}

/* provider_port 0: a socket that accepts nothing (calls hang); 1: refused at once. */
static void rig_start(struct rig *r, int threads, unsigned provider_port)
{
    char msg[256] = "";
    tgw_start(&r->g, threads, provider_port, ",\"max_body_bytes\":8388608");
    assert_int_equal(
        router_loop_call(r->g.rt, note_thread, &r->router_thread, 5000, msg, sizeof msg), SB_OK);
}

static void post_chat(const char *base, const char *json, size_t len, struct tgw_answer *a)
{
    tgw_http(base, "/v1/chat/completions", json, len, NULL, a);
}

/* A chat body of about size bytes (one user turn of filler); broken: cut before its end. */
static char *chat_json(size_t size, bool stream, bool broken, size_t *len)
{
    struct buf b;
    buf_init(&b);
    buf_printf(&b,
               "{\"model\":\"chat\",\"stream\":%s,\"messages\":[{\"role\":\"user\",\"content\":\"",
               stream ? "true" : "false");
    while (b.len < size)
        buf_puts(&b, "lorem ipsum dolor sit amet ");
    buf_puts(&b, "\"}]}");
    if (broken)
        b.len -= 3; /* no "]}": the JSON never ends */
    *len = b.len;
    return buf_take(&b);
}

/* A chat body of `turns` user/assistant turns of about 220 bytes each (the stall script's
 * history); the request it parses to estimates *tokens. */
static char *chat_json_turns(size_t turns, bool stream, size_t *len)
{
    struct buf b;
    buf_init(&b);
    buf_printf(&b, "{\"model\":\"chat\",\"stream\":%s,\"messages\":[", stream ? "true" : "false");
    for (size_t i = 0; i < turns; i++)
        buf_printf(&b,
                   "%s{\"role\":\"%s\",\"content\":\"turn %zu: lorem ipsum dolor sit amet, "
                   "consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore et "
                   "dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation "
                   "ullamco laboris nisi ut aliquip.\"}",
                   i ? "," : "", i % 2 ? "assistant" : "user", i);
    buf_puts(&b, "]}");
    *len = b.len;
    return buf_take(&b);
}

struct client {
    struct rig *r;
    char *json;
    size_t len;
    struct tgw_answer a;
    pthread_t th;
};

static void *client_main(void *arg)
{
    struct client *cl = arg;
    post_chat(cl->r->g.base, cl->json, cl->len, &cl->a);
    return NULL;
}

/* Posts a body of size bytes; returns the answer and where its parse ran (*on_router). */
static void ask(struct rig *r, size_t size, bool broken, struct tgw_answer *a, bool *on_router)
{
    size_t len = 0, seen = 0;
    char *json = chat_json(size, false, broken, &len);
    post_chat(r->g.base, json, len, a);
    pthread_t t = last_parse(&seen);
    assert_int_equal(seen, len); /* the parse recorded is this request's */
    *on_router = pthread_equal(t, r->router_thread) != 0;
    free(json);
}

static int setup(void **state)
{
    (void)state;
    fake_watchdog("test_gateway_bigbody", 60);
    gate_set(false);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fake_watchdog("test_gateway_bigbody", 0);
    return 0;
}

/* ---- tests ------------------------------------------------------------------------------------
 */

/* On the loop: a small body is parsed on the router thread, a big one elsewhere, and both get
 * the same answer (the provider refuses the connection: the router's error). */
static void test_the_loop_parses_a_big_body_off_the_router_thread(void **state)
{
    (void)state;
    struct rig r;
    rig_start(&r, 0, 1);
    struct tgw_answer small, big;
    bool small_on_router = false, big_on_router = true;
    ask(&r, 100, false, &small, &small_on_router);
    ask(&r, 1024 * 1024, false, &big, &big_on_router);
    assert_true(small_on_router);
    assert_false(big_on_router);
    assert_true(small.status == 502 || small.status == 503);
    assert_int_equal(big.status, small.status);
    assert_non_null(strstr(buf_str(&big.body), "\"error\""));
    tgw_answer_cleanup(&small);
    tgw_answer_cleanup(&big);
    tgw_free(&r.g);
}

/* A malformed body gets the same 400 whether it was parsed on the loop or off it. */
static void test_a_malformed_big_body_gets_the_small_ones_400(void **state)
{
    (void)state;
    struct rig r;
    rig_start(&r, 0, 1);
    struct tgw_answer small, big;
    bool small_on_router = false, big_on_router = true;
    ask(&r, 100, true, &small, &small_on_router);
    ask(&r, 512 * 1024, true, &big, &big_on_router);
    assert_true(small_on_router);
    assert_false(big_on_router);
    assert_int_equal(small.status, 400);
    assert_int_equal(big.status, 400);
    assert_non_null(strstr(buf_str(&small.body), "\"invalid_request_error\""));
    assert_non_null(strstr(buf_str(&big.body), "\"invalid_request_error\""));
    tgw_answer_cleanup(&small);
    tgw_answer_cleanup(&big);
    tgw_free(&r.g);
}

/* With MHD threads of its own the gateway parses where it did (an MHD thread, never the router
 * thread) and answers the same. */
static void test_the_threaded_shape_answers_a_big_body_the_same(void **state)
{
    (void)state;
    struct rig r;
    rig_start(&r, 2, 1);
    struct tgw_answer big, bad;
    bool on_router = true;
    ask(&r, 1024 * 1024, false, &big, &on_router);
    assert_false(on_router);
    assert_true(big.status == 502 || big.status == 503);
    ask(&r, 512 * 1024, true, &bad, &on_router);
    assert_int_equal(bad.status, 400);
    tgw_answer_cleanup(&big);
    tgw_answer_cleanup(&bad);
    tgw_free(&r.g);
}

struct stopper {
    struct gateway *gw;
    pthread_t th;
};

static void *stopper_main(void *arg)
{
    struct stopper *s = arg;
    gateway_stop(s->gw);
    return NULL;
}

/* The gateway stops while a big body's parse runs on the pool (held in the wrapper): the stop
 * waits for it, the client reads 503 "shutting down" (the call is never started, or is ended
 * by the stop, whichever the parse's end meets), and nothing is left suspended. */
static void test_a_stop_during_a_big_parse_answers_503(void **state)
{
    (void)state;
    struct rig r;
    rig_start(&r, 0, 0);
    struct client cl = {.r = &r};
    cl.json = chat_json(256 * 1024, true, false, &cl.len);
    gate_set(true);
    assert_int_equal(pthread_create(&cl.th, NULL, client_main, &cl), 0);
    wait_parses_waiting(1);
    size_t seen = 0;
    assert_false(pthread_equal(last_parse(&seen), r.router_thread));
    struct stopper s = {.gw = r.g.gw};
    assert_int_equal(pthread_create(&s.th, NULL, stopper_main, &s), 0);
    gate_set(false);
    assert_int_equal(pthread_join(s.th, NULL), 0);
    assert_int_equal(pthread_join(cl.th, NULL), 0);
    assert_int_equal(cl.a.status, 503);
    assert_non_null(strstr(buf_str(&cl.a.body), "shutting down"));
    tgw_answer_cleanup(&cl.a);
    free(cl.json);
    tgw_free(&r.g);
}

/* POSTs a chat body with "x-switchboard-user: user"; the status. */
static long post_as_user(const char *base, const char *json, size_t len, const char *user)
{
    char hdr[96];
    snprintf(hdr, sizeof hdr, "x-switchboard-user: %s", user);
    struct tgw_answer a;
    tgw_http(base, "/v1/chat/completions", json, len, hdr, &a);
    long status = a.status;
    tgw_answer_cleanup(&a);
    return status;
}

/* The prompt hash the router would compute for json's request with user as its user. */
static uint64_t expected_hash(const char *json, size_t len, const char *user)
{
    struct llm_request req;
    llm_request_init(&req);
    char msg[256];
    assert_int_equal(__real_openai_request_parse(json, len, &req, msg, sizeof msg), SB_OK);
    free(req.user);
    req.user = user ? xstrdup(user) : NULL;
    uint64_t h = __real_cache_prompt_hash(&req);
    llm_request_cleanup(&req);
    return h;
}

/* A big prompt posted to a gateway of `threads` (with x-switchboard-user, which the hash
 * covers): hashed once, off the router thread, to the value the router would compute. */
static void check_big_prompt_hashed_off_the_router(int threads)
{
    struct rig r;
    rig_start(&r, threads, 1);
    size_t len = 0;
    char *json = chat_json(1024 * 1024, false, false, &len);
    hashes_reset();
    long status = post_as_user(r.g.base, json, len, "ada");
    assert_true(status == 502 || status == 503); /* the call ran: refused by the provider */
    int on_router = -1;
    uint64_t last = 0;
    assert_int_equal(hashes_count(r.router_thread, &on_router, &last), 1);
    assert_int_equal(on_router, 0);
    assert_true(last == expected_hash(json, len, "ada"));
    free(json);
    tgw_free(&r.g);
}

static void test_the_loop_hashes_a_big_prompt_off_the_router_thread(void **state)
{
    (void)state;
    check_big_prompt_hashed_off_the_router(0);
}

static void test_the_threaded_shape_hashes_a_big_prompt_off_the_router_thread(void **state)
{
    (void)state;
    check_big_prompt_hashed_off_the_router(2);
}

struct done_wait {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
};

static int on_event_ignore(void *ctx, const struct llm_event *ev)
{
    (void)ctx;
    (void)ev;
    return 0;
}

static void on_done_signal(void *ctx, const struct router_result *res)
{
    (void)res;
    struct done_wait *w = ctx;
    pthread_mutex_lock(&w->mu);
    w->done = true;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* A call submitted without a hash (the console's prompt pane, `ask`): the router hashes its
 * prompt itself, on its thread, to the same value. */
static void test_the_router_hashes_a_prompt_given_without_one(void **state)
{
    (void)state;
    struct rig r;
    rig_start(&r, 0, 1);
    const char *json = "{\"model\":\"chat\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
    struct llm_request *req = xmalloc(sizeof *req);
    llm_request_init(req);
    char msg[256];
    assert_int_equal(__real_openai_request_parse(json, strlen(json), req, msg, sizeof msg), SB_OK);
    struct done_wait w = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
    struct router_sink sink = {.on_event = on_event_ignore, .on_done = on_done_signal, .ctx = &w};
    struct router_call_opts opts = {.request_id = "pane-1"};
    hashes_reset();
    router_submit(r.g.rt, req, &opts, &sink);
    pthread_mutex_lock(&w.mu);
    while (!w.done)
        pthread_cond_wait(&w.cv, &w.mu);
    pthread_mutex_unlock(&w.mu);
    int on_router = -1;
    uint64_t last = 0;
    assert_int_equal(hashes_count(r.router_thread, &on_router, &last), 1);
    assert_int_equal(on_router, 1);
    assert_true(last == expected_hash(json, strlen(json), NULL));
    tgw_free(&r.g);
}

/* The tokens llm_request_estimate_tokens gives json's request (its cleanup is recorded: call
 * frees_reset after). */
static long json_tokens(const char *json, size_t len)
{
    struct llm_request req;
    llm_request_init(&req);
    char msg[256];
    assert_int_equal(__real_openai_request_parse(json, len, &req, msg, sizeof msg), SB_OK);
    long tokens = llm_request_estimate_tokens(&req);
    llm_request_cleanup(&req);
    return tokens;
}

/* Posts json (the provider refuses it) and waits for its request's free: true when the router
 * thread did it. */
static bool post_and_freed_on_router(struct rig *r, const char *json, size_t len)
{
    long tokens = json_tokens(json, len);
    frees_reset();
    struct tgw_answer a;
    post_chat(r->g.base, json, len, &a);
    assert_true(a.status == 502 || a.status == 503); /* the call ran: refused by the provider */
    tgw_answer_cleanup(&a);
    return wait_frees(tokens, 1, r->router_thread) == 1;
}

/* A call's end frees a small request inline, on the router thread, and a big one (4,000 turns
 * of 220 bytes, 300 short turns) elsewhere; each once. A 1 MiB prompt in one turn is one
 * string to free: inline too. */
static void check_big_request_freed_off_the_router(int threads)
{
    struct rig r;
    rig_start(&r, threads, 1);
    size_t len = 0;
    char *small = chat_json(100, false, false, &len);
    assert_true(post_and_freed_on_router(&r, small, len));
    free(small);
    char *one = chat_json(1024 * 1024, false, false, &len);
    assert_true(post_and_freed_on_router(&r, one, len));
    free(one);
    char *turns = chat_json_turns(4000, true, &len);
    assert_false(post_and_freed_on_router(&r, turns, len));
    free(turns);
    turns = chat_json_turns(300, false, &len);
    assert_false(post_and_freed_on_router(&r, turns, len));
    free(turns);
    turns = chat_json_turns(200, false, &len);
    assert_true(post_and_freed_on_router(&r, turns, len));
    free(turns);
    tgw_free(&r.g);
}

static void test_the_loop_frees_a_big_request_off_the_router_thread(void **state)
{
    (void)state;
    check_big_request_freed_off_the_router(0);
}

static void test_the_threaded_shape_frees_a_big_request_off_the_router_thread(void **state)
{
    (void)state;
    check_big_request_freed_off_the_router(2);
}

static void read_in_flight(const struct router_snapshot *snap, void *ctx)
{
    *(uint64_t *)ctx = snap->in_flight;
}

/* Waits until the router has n attempts in flight (the watchdog ends a wait that never ends). */
static void wait_in_flight(struct router *rt, uint64_t n)
{
    for (;;) {
        uint64_t have = 0;
        router_snapshot_visit(rt, 0, read_in_flight, &have);
        if (have >= n)
            return;
        usleep(2000);
    }
}

/* Three big requests wait for a provider that never answers when the gateway and the router
 * stop: each is freed once, off the router thread, before router_free returns (ASan and
 * valgrind on this binary say nothing leaks). */
static void test_a_stop_with_big_requests_in_flight_frees_each_once(void **state)
{
    (void)state;
    struct rig r;
    rig_start(&r, 0, 0);
    struct client cl[3];
    long tokens[3];
    for (int i = 0; i < 3; i++) {
        cl[i] = (struct client){.r = &r};
        cl[i].json = chat_json_turns(2000 + 100 * (size_t)i, i == 1, &cl[i].len);
        tokens[i] = json_tokens(cl[i].json, cl[i].len);
    }
    frees_reset();
    for (int i = 0; i < 3; i++)
        assert_int_equal(pthread_create(&cl[i].th, NULL, client_main, &cl[i]), 0);
    wait_in_flight(r.g.rt, 3);
    pthread_t router_thread = r.router_thread;
    tgw_free(&r.g);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(pthread_join(cl[i].th, NULL), 0);
        assert_int_equal(wait_frees(tokens[i], 1, router_thread), 0);
        tgw_answer_cleanup(&cl[i].a);
        free(cl[i].json);
    }
}

/* gateway.threads -1 (the default): the loop on 2 cores or fewer, 2 MHD threads above. */
static void test_gateway_threads_resolve(void **state)
{
    (void)state;
    assert_int_equal(gateway_threads_resolve(-1, 1), 0);
    assert_int_equal(gateway_threads_resolve(-1, 2), 0);
    assert_int_equal(gateway_threads_resolve(-1, 3), 2);
    assert_int_equal(gateway_threads_resolve(-1, 64), 2);
    assert_int_equal(gateway_threads_resolve(-1, -1), 2); /* sysconf failed: the old default */
    assert_int_equal(gateway_threads_resolve(0, 8), 0);
    assert_int_equal(gateway_threads_resolve(2, 1), 2);
    assert_int_equal(gateway_threads_resolve(4, 2), 4);
    assert_int_equal(gateway_threads_resolve(100, 2), 64);
}

int main(void)
{
    log_setup(LOG_LEVEL_OFF, 2);
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(test_the_loop_parses_a_big_body_off_the_router_thread),
        T(test_a_malformed_big_body_gets_the_small_ones_400),
        T(test_the_threaded_shape_answers_a_big_body_the_same),
        T(test_a_stop_during_a_big_parse_answers_503),
        T(test_the_loop_hashes_a_big_prompt_off_the_router_thread),
        T(test_the_threaded_shape_hashes_a_big_prompt_off_the_router_thread),
        T(test_the_router_hashes_a_prompt_given_without_one),
        T(test_the_loop_frees_a_big_request_off_the_router_thread),
        T(test_the_threaded_shape_frees_a_big_request_off_the_router_thread),
        T(test_a_stop_with_big_requests_in_flight_frees_each_once),
        T(test_gateway_threads_resolve),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
