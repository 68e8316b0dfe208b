/*
 * test_gateway_loop.c - the gateway's chat listener on the router thread's loop
 * (gateway.threads 0) and on threads of its own (gateway.threads 2), with a real router and
 * real sockets on 127.0.0.1 (no simulator: the one provider is a socket of the test's that
 * accepts nothing, or a port where nothing listens): requests answered, a stop with a call
 * in flight (the client reads "shutting down", the stop does not hang), and both stop
 * orders (gateway_stop before router_stop, as serve and the console do, and after); and
 * a stream's framing: one response with Content-Length when the provider's whole answer
 * came in one receive, chunked when its end comes later (a provider thread of the test's).
 * Under ASan and TSan these also check that no thread runs the loop's daemon after its
 * detach and that nothing leaks.
 */
#include <curl/curl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "support_fake.h"
#include "support_gateway.h"
#include "switchboard/gateway.h"
#include "switchboard/log.h"

/* A provider that answers one streamed call: the whole answer in one write, or (split) its
 * first event, a pause, then the rest. */
struct upstream {
    int fd;
    unsigned port;
    bool split;
    pthread_t th;
};

static const char *const up_events[] = {
    "data: {\"id\":\"u\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\","
    "\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"hello\"},"
    "\"finish_reason\":null}]}\n\n",
    "data: {\"id\":\"u\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"m\","
    "\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n"
    "data: [DONE]\n\n",
};

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        assert_true(w > 0);
        p += w;
        n -= (size_t)w;
    }
}

static void *upstream_main(void *arg)
{
    struct upstream *u = arg;
    int fd = accept(u->fd, NULL, NULL);
    assert_true(fd >= 0);
    char req[8192];
    size_t got = 0;
    char *end = NULL;
    long want = -1;
    while (want < 0 || (long)got < want) { /* the headers, then Content-Length bytes */
        ssize_t n = read(fd, req + got, sizeof req - 1 - got);
        assert_true(n > 0);
        got += (size_t)n;
        req[got] = '\0';
        end = end ? end : strstr(req, "\r\n\r\n");
        const char *cl = end ? strcasestr(req, "content-length:") : NULL;
        if (cl)
            want = (long)(end + 4 - req) + atol(cl + 15);
    }
    char head[256];
    size_t len = strlen(up_events[0]) + strlen(up_events[1]);
    int hn = snprintf(head, sizeof head,
                      "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                      "Content-Length: %zu\r\n\r\n%s",
                      len, up_events[0]);
    if (u->split) {
        write_all(fd, head, (size_t)hn);
        clock_sleep_ms(300);
        write_all(fd, up_events[1], strlen(up_events[1]));
    } else {
        char all[1024];
        int an = snprintf(all, sizeof all, "%s%s", head, up_events[1]);
        write_all(fd, all, (size_t)an); /* one write: one receive for the router */
    }
    clock_sleep_ms(200); /* let the client's side read before the close */
    close(fd);
    return NULL;
}

/* The gateway and router under test (support_gateway.h) and, with rig_start_upstream, the
 * provider thread that answers one stream. On the test's stack; rig_start or
 * rig_start_upstream .. rig_free. */
struct rig {
    struct tgw_rig g;
    struct upstream up; /* up.fd -1: none */
};

/* provider_port 0: the hanging socket; else that port (1: nothing listens, refused). */
static void rig_start(struct rig *r, int threads, unsigned provider_port)
{
    r->up = (struct upstream){.fd = -1};
    tgw_start(&r->g, threads, provider_port, "");
}

/* The provider thread answers one stream, whole in one write or (split) in two. */
static void rig_start_upstream(struct rig *r, int threads, bool split)
{
    struct upstream up = {.split = split};
    up.fd = tgw_hang_listen(&up.port);
    rig_start(r, threads, up.port);
    r->up = up;
    assert_int_equal(pthread_create(&r->up.th, NULL, upstream_main, &r->up), 0);
}

static void rig_free(struct rig *r)
{
    if (r->up.fd >= 0) {
        assert_int_equal(pthread_join(r->up.th, NULL), 0);
        close(r->up.fd);
    }
    tgw_free(&r->g);
}

/* One blocking request; json NULL: GET. */
static void http(const char *base, const char *path, const char *json, struct tgw_answer *a)
{
    tgw_http(base, path, json, json ? strlen(json) : 0, NULL, a);
}

static const char *const chat_body =
    "{\"model\":\"chat\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";
static const char *const chat_stream_body =
    "{\"model\":\"chat\",\"stream\":true,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}";

struct client {
    struct rig *r;
    const char *json;
    struct tgw_answer a;
    pthread_t th;
};

static void *client_main(void *arg)
{
    struct client *cl = arg;
    http(cl->r->g.base, "/v1/chat/completions", cl->json, &cl->a);
    return NULL;
}

/* cl's request on a thread of its own; returns once the gateway has it in flight. */
static void client_start(struct client *cl)
{
    assert_int_equal(pthread_create(&cl->th, NULL, client_main, cl), 0);
    while (gateway_in_flight(cl->r->g.gw) < 1)
        clock_sleep_ms(5);
}

static int setup(void **state)
{
    (void)state;
    fake_watchdog("test_gateway_loop", 60);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fake_watchdog("test_gateway_loop", 0);
    return 0;
}

/* Health, models and a chat call whose provider refuses the connection: parsed, routed,
 * tried and answered (an upstream error) by the listener; then the serve order of stops. */
static void answers(int threads)
{
    struct rig r;
    rig_start(&r, threads, 1);
    struct tgw_answer a;
    http(r.g.base, "/healthz", NULL, &a);
    assert_int_equal(a.status, 200);
    tgw_answer_cleanup(&a);
    http(r.g.base, "/v1/models", NULL, &a);
    assert_int_equal(a.status, 200);
    assert_non_null(strstr(buf_str(&a.body), "\"chat\""));
    tgw_answer_cleanup(&a);
    for (int i = 0; i < 3; i++) {
        http(r.g.base, "/v1/chat/completions", i == 1 ? chat_stream_body : chat_body, &a);
        assert_true(a.status == 502 || a.status == 503);
        assert_non_null(strstr(buf_str(&a.body), "\"error\""));
        tgw_answer_cleanup(&a);
    }
    http(r.g.base, "/nope", NULL, &a);
    assert_int_equal(a.status, 404);
    tgw_answer_cleanup(&a);
    rig_free(&r); /* gateway_free, then router_free: serve's order */
}

static void test_the_loop_listener_answers(void **state)
{
    (void)state;
    answers(0);
}

static void test_the_threaded_listener_answers(void **state)
{
    (void)state;
    answers(2);
}

/* A call in flight (the provider never answers) when the gateway stops: the client reads
 * 503 "shutting down" at once, not after the call's deadline, and the stop returns. */
static void stop_with_a_call_in_flight(int threads, bool stream)
{
    struct rig r;
    rig_start(&r, threads, 0);
    struct client cl = {.r = &r, .json = stream ? chat_stream_body : chat_body};
    client_start(&cl);
    int64_t t0 = clock_mono_ms();
    gateway_stop(r.g.gw);
    assert_int_equal(pthread_join(cl.th, NULL), 0);
    assert_true(clock_mono_ms() - t0 < 4000); /* not GW_STOP_WAIT_MS's emergency path */
    assert_int_equal(cl.a.status, 503);
    assert_non_null(strstr(buf_str(&cl.a.body), "shutting down"));
    tgw_answer_cleanup(&cl.a);
    rig_free(&r);
}

static void test_the_loop_listener_stops_with_a_call_in_flight(void **state)
{
    (void)state;
    stop_with_a_call_in_flight(0, false);
}

static void test_the_threaded_listener_stops_with_a_call_in_flight(void **state)
{
    (void)state;
    stop_with_a_call_in_flight(2, false);
}

/* The router stops first (its stop ends the call; its last turns run the listener, which
 * answers the client), then the gateway stops a daemon no thread runs any more. */
static void test_the_loop_listener_stops_after_the_router(void **state)
{
    (void)state;
    struct rig r;
    rig_start(&r, 0, 0);
    struct client cl = {.r = &r, .json = chat_body};
    client_start(&cl);
    int64_t t0 = clock_mono_ms();
    router_stop(r.g.rt);
    gateway_stop(r.g.gw);
    assert_int_equal(pthread_join(cl.th, NULL), 0);
    assert_true(clock_mono_ms() - t0 < 4000);
    assert_true(cl.a.status >= 500); /* the router's own "stopping" answer */
    tgw_answer_cleanup(&cl.a);
    rig_free(&r);
}

/* A stream complete in one receive is answered with Content-Length in one response, a
 * stream whose end comes later chunked; the same body; the call ends in both (its end was
 * held for the client: the one-write answer releases it once sent). */
static void stream_framing(int threads, bool split)
{
    struct rig r;
    rig_start_upstream(&r, threads, split);
    struct tgw_answer a;
    http(r.g.base, "/v1/chat/completions", chat_stream_body, &a);
    assert_int_equal(a.code, CURLE_OK);
    assert_int_equal(a.status, 200);
    assert_non_null(strcasestr(buf_str(&a.headers), "content-type: text/event-stream"));
    assert_non_null(strcasestr(buf_str(&a.headers), "x-switchboard-target: a"));
    if (split) {
        assert_non_null(strcasestr(buf_str(&a.headers), "transfer-encoding: chunked"));
        assert_int_equal(a.length, -1);
    } else {
        assert_null(strcasestr(buf_str(&a.headers), "transfer-encoding"));
        assert_int_equal(a.length, (curl_off_t)a.body.len);
    }
    const char *b = buf_str(&a.body);
    assert_non_null(strstr(b, "\"content\":\"hello\""));
    assert_non_null(strstr(b, "\"finish_reason\":\"stop\""));
    assert_true(a.body.len > 14 && str_eq(b + a.body.len - 14, "data: [DONE]\n\n"));
    int64_t t0 = clock_mono_ms();
    while (gateway_in_flight(r.g.gw) > 0 && clock_mono_ms() - t0 < 5000)
        clock_sleep_ms(5);
    assert_int_equal(gateway_in_flight(r.g.gw), 0); /* the held end was released */
    tgw_answer_cleanup(&a);
    rig_free(&r); /* the provider thread's end, then the gateway's and the router's */
}

static void test_the_loop_listener_sends_a_finished_stream_in_one_write(void **state)
{
    (void)state;
    stream_framing(0, false);
}

static void test_the_threaded_listener_sends_a_finished_stream_in_one_write(void **state)
{
    (void)state;
    stream_framing(2, false);
}

static void test_the_loop_listener_chunks_a_stream_still_running(void **state)
{
    (void)state;
    stream_framing(0, true);
}

static void test_the_threaded_listener_chunks_a_stream_still_running(void **state)
{
    (void)state;
    stream_framing(2, true);
}

int main(void)
{
    log_setup(LOG_LEVEL_OFF, 2);
    const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
        T(test_the_loop_listener_answers),
        T(test_the_threaded_listener_answers),
        T(test_the_loop_listener_stops_with_a_call_in_flight),
        T(test_the_threaded_listener_stops_with_a_call_in_flight),
        T(test_the_loop_listener_stops_after_the_router),
        T(test_the_loop_listener_sends_a_finished_stream_in_one_write),
        T(test_the_threaded_listener_sends_a_finished_stream_in_one_write),
        T(test_the_loop_listener_chunks_a_stream_still_running),
        T(test_the_threaded_listener_chunks_a_stream_still_running),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
