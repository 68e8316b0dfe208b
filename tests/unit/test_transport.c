/*
 * test_transport.c - the libcurl multi transport against a small libmicrohttpd server
 * running in this process on 127.0.0.1 (ephemeral port): status, headers, body, POST,
 * connect refused, first-byte (in deadline order) and total timeouts, deferred cancel (also from
 * inside a callback), abort from on_data, a body cut mid-way, and many transfers at once.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>
#include <microhttpd.h>

#include "switchboard/transport.h"

static struct MHD_Daemon *daemon_;
static unsigned short port_;

/* ---- the test server ---------------------------------------------------------------------- */

struct chunks {
    int left;
    bool cut;
};

static ssize_t chunk_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    struct chunks *c = cls;
    if (c->left == 0)
        return c->cut ? MHD_CONTENT_READER_END_WITH_ERROR : MHD_CONTENT_READER_END_OF_STREAM;
    clock_sleep_ms(5);
    c->left--;
    const char piece[] = "data: x\n\n";
    size_t n = sizeof piece - 1 < max ? sizeof piece - 1 : max;
    memcpy(buf, piece, n);
    return (ssize_t)n;
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *body)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), (void *)(uintptr_t)body,
                                                             MHD_RESPMEM_MUST_COPY);
    MHD_add_response_header(r, "X-Test", "yes");
    MHD_add_response_header(r, "Content-Type", "text/plain");
    enum MHD_Result ret = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url,
                               const char *method, const char *version, const char *upload,
                               size_t *upload_size, void **con_cls)
{
    (void)cls, (void)version;
    struct buf *body = *con_cls;
    if (!body) {
        body = xcalloc(1, sizeof *body);
        *con_cls = body;
        return MHD_YES;
    }
    if (*upload_size) {
        buf_append(body, upload, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    if (str_eq(url, "/ok"))
        return reply(conn, 200, "hello world");
    if (str_eq(url, "/503"))
        return reply(conn, 503, "{\"error\":\"overloaded\"}");
    if (str_eq(url, "/echo")) {
        char *s = xasprintf("%s %s", method, buf_str(body));
        enum MHD_Result ret = reply(conn, 200, s);
        free(s);
        return ret;
    }
    if (str_eq(url, "/slow")) {
        clock_sleep_ms(600);
        return reply(conn, 200, "late");
    }
    if (str_eq(url, "/stream") || str_eq(url, "/cut")) {
        struct chunks *c = xcalloc(1, sizeof *c);
        c->left = str_eq(url, "/cut") ? 3 : 20;
        c->cut = str_eq(url, "/cut");
        struct MHD_Response *r =
            MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64, chunk_reader, c, free);
        MHD_add_response_header(r, "Content-Type", "text/event-stream");
        enum MHD_Result ret = MHD_queue_response(conn, 200, r);
        MHD_destroy_response(r);
        return ret;
    }
    return reply(conn, 404, "nope");
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    (void)cls, (void)conn, (void)toe;
    struct buf *b = *con_cls;
    if (b) {
        buf_cleanup(b);
        free(b);
    }
    *con_cls = NULL;
}

static int server_up(void **state)
{
    (void)state;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    daemon_ = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0,
                               NULL, NULL, handler, NULL, MHD_OPTION_SOCK_ADDR, &sa,
                               MHD_OPTION_NOTIFY_COMPLETED, completed, NULL, MHD_OPTION_END);
    if (!daemon_)
        return -1;
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(daemon_, MHD_DAEMON_INFO_BIND_PORT);
    port_ = info->port;
    return 0;
}

static int server_down(void **state)
{
    (void)state;
    MHD_stop_daemon(daemon_);
    return 0;
}

/* ---- a recording client ------------------------------------------------------------------- */

struct rec {
    long status;
    int headers;
    bool saw_x_test;
    struct buf body;
    bool done;
    int done_calls;
    struct transport_result res;
    int abort_after; /* on_data returns 1 once this many bytes arrived (0 = never) */
    struct transport *t;
    uint64_t cancel_id; /* cancelled from inside on_data */
    int done_seq;       /* 1 for the first transfer to finish, 2 for the next... */
};

static int done_seq_;

static void rec_status(void *ctx, long status)
{
    struct rec *r = ctx;
    r->status = status;
}

static void rec_header(void *ctx, const char *name, const char *value)
{
    struct rec *r = ctx;
    r->headers++;
    if (str_ieq(name, "x-test") && str_eq(value, "yes"))
        r->saw_x_test = true;
}

static int rec_data(void *ctx, const char *bytes, size_t len)
{
    struct rec *r = ctx;
    buf_append(&r->body, bytes, len);
    if (r->cancel_id)
        transport_cancel(r->t, r->cancel_id);
    return r->abort_after && r->body.len >= (size_t)r->abort_after;
}

static void rec_done(void *ctx, const struct transport_result *res)
{
    struct rec *r = ctx;
    r->res = *res;
    r->done = true;
    r->done_calls++;
    r->done_seq = ++done_seq_;
}

static const struct transport_callbacks rec_cb = {rec_status, rec_header, rec_data, rec_done};

static uint64_t start(struct transport *t, struct rec *r, const char *path, const char *body,
                      const struct transport_timeouts *to)
{
    struct http_request req;
    http_request_init(&req);
    req.url = xasprintf("http://127.0.0.1:%u%s", port_, path);
    req.method = xstrdup(body ? "POST" : "GET");
    if (body) {
        req.body = xstrdup(body);
        req.body_len = strlen(body);
        http_request_add_header(&req, "Content-Type: %s", "application/json");
    }
    buf_init(&r->body);
    r->t = t;
    char msg[256];
    struct transport_timeouts none = {0};
    uint64_t id = transport_start(t, &req, to ? to : &none, &rec_cb, r, msg, sizeof msg);
    http_request_cleanup(&req);
    return id;
}

static void run_until_done(struct transport *t, struct rec *r)
{
    int64_t give_up = clock_mono_ms() + 10000;
    while (!r->done && clock_mono_ms() < give_up)
        transport_run(t, 100);
    assert_true(r->done);
}

static struct transport *new_transport(void)
{
    char msg[256];
    struct transport *t = transport_new(msg, sizeof msg);
    assert_non_null(t);
    return t;
}

/* ---- tests ---------------------------------------------------------------------------------- */

static void test_transport_delivers_status_headers_and_body(void **state)
{
    (void)state;
    struct transport *t = new_transport();
    struct rec r = {0};
    assert_true(start(t, &r, "/ok", NULL, NULL) > 0);
    run_until_done(t, &r);
    assert_int_equal(r.res.err, LLM_ERR_NONE);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.res.status, 200);
    assert_true(r.saw_x_test);
    assert_string_equal(buf_str(&r.body), "hello world");
    assert_true(r.res.first_byte_us >= 0);
    assert_true(r.res.total_us >= r.res.first_byte_us);
    assert_int_equal(transport_active(t), 0);
    buf_cleanup(&r.body);
    transport_free(t);
}

static void test_transport_posts_the_body(void **state)
{
    (void)state;
    struct transport *t = new_transport();
    struct rec r = {0};
    start(t, &r, "/echo", "{\"a\":1}", NULL);
    run_until_done(t, &r);
    assert_string_equal(buf_str(&r.body), "POST {\"a\":1}");
    buf_cleanup(&r.body);
    transport_free(t);
}

/* A multi-megabyte body is taken, not copied (the router thread would copy it at every
 * attempt): the request's body is gone after the start, and every byte arrives. */
static void test_transport_takes_a_big_body_and_posts_it_whole(void **state)
{
    (void)state;
    struct transport *t = new_transport();
    struct rec r = {0};
    size_t n = (size_t)4 * 1024 * 1024;
    char *big = xmalloc(n + 1);
    for (size_t i = 0; i < n; i++)
        big[i] = (char)('a' + i % 26);
    big[n] = '\0';
    struct http_request req;
    http_request_init(&req);
    req.url = xasprintf("http://127.0.0.1:%u/echo", port_);
    req.method = xstrdup("POST");
    req.body = big;
    req.body_len = n;
    buf_init(&r.body);
    r.t = t;
    char msg[256];
    struct transport_timeouts none = {0};
    assert_true(transport_start(t, &req, &none, &rec_cb, &r, msg, sizeof msg) > 0);
    assert_null(req.body);
    http_request_cleanup(&req);
    run_until_done(t, &r);
    assert_int_equal(r.body.len, n + 5);
    assert_memory_equal(buf_str(&r.body), "POST abcdefghij", 15);
    const char *got = buf_str(&r.body) + 5;
    size_t bad = 0;
    for (size_t i = 0; i < n; i++)
        bad += got[i] != (char)('a' + i % 26);
    assert_int_equal(bad, 0);
    buf_cleanup(&r.body);
    transport_free(t);
}

static void test_transport_reports_error_status_as_data_not_failure(void **state)
{
    (void)state;
    struct transport *t = new_transport();
    struct rec r = {0};
    start(t, &r, "/503", NULL, NULL);
    run_until_done(t, &r);
    assert_int_equal(r.res.err, LLM_ERR_NONE);
    assert_int_equal(r.res.status, 503);
    assert_string_equal(buf_str(&r.body), "{\"error\":\"overloaded\"}");
    buf_cleanup(&r.body);
    transport_free(t);
}

static void test_transport_classifies_refused_connection(void **state)
{
    (void)state;
    struct transport *t = new_transport();
    struct http_request req;
    http_request_init(&req);
    req.url = xstrdup("http://127.0.0.1:1/nothing-listens-here");
    req.method = xstrdup("GET");
    struct rec r = {0};
    buf_init(&r.body);
    char msg[256];
    struct transport_timeouts to = {.connect_ms = 2000};
    assert_true(transport_start(t, &req, &to, &rec_cb, &r, msg, sizeof msg) > 0);
    http_request_cleanup(&req);
    run_until_done(t, &r);
    assert_int_equal(r.res.err, LLM_ERR_CONNECT);
    assert_int_equal(r.res.status, 0);
    assert_int_equal(r.res.first_byte_us, -1);
    buf_cleanup(&r.body);
    transport_free(t);
}

static void test_transport_times_out_waiting_for_first_byte(void **state)
{
    (void)state;
    struct transport *t = new_transport();
    struct rec r = {0};
    struct transport_timeouts to = {.first_byte_ms = 150};
    start(t, &r, "/slow", NULL, &to);
    run_until_done(t, &r);
    assert_int_equal(r.res.err, LLM_ERR_TIMEOUT);
    assert_non_null(strstr(r.res.message, "first byte"));
    assert_true(r.res.total_us >= 150000);
    assert_true(r.res.total_us < 550000);
    buf_cleanup(&r.body);
    transport_free(t);
}

/* First-byte deadlines are kept in order whatever order the transfers started in: each
 * times out after its own deadline, soonest first, while a transfer that got its first byte
 * leaves the list from the middle. */
static void test_transport_first_byte_deadlines_fire_in_order(void **state)
{
    (void)state;
    struct transport *t = new_transport();
    enum { N = 5 };
    const int ms[N] = {400, 100, 300, 200, 100};
    struct rec r[N] = {{0}}, ok = {0};
    for (int i = 0; i < N; i++) {
        struct transport_timeouts to = {.first_byte_ms = ms[i]};
        start(t, &r[i], "/slow", NULL, &to);
        if (i == 2) {
            struct transport_timeouts late = {.first_byte_ms = 5000};
            start(t, &ok, "/ok", NULL, &late);
        }
    }
    int64_t give_up = clock_mono_ms() + 10000;
    while (transport_active(t) > 0 && clock_mono_ms() < give_up)
        transport_run(t, 100);
    assert_true(ok.done);
    assert_int_equal(ok.res.err, LLM_ERR_NONE);
    for (int i = 0; i < N; i++) {
        assert_true(r[i].done);
        assert_int_equal(r[i].res.err, LLM_ERR_TIMEOUT);
        assert_true(r[i].res.total_us >= (int64_t)ms[i] * 1000);
        for (int j = 0; j < N; j++) {
            if (ms[j] > ms[i])
                assert_true(r[j].done_seq > r[i].done_seq);
        }
        buf_cleanup(&r[i].body);
    }
    buf_cleanup(&ok.body);
    transport_free(t);
}

static void test_transport_enforces_total_timeout(void **state)
{
    (void)state;
    struct transport *t = new_transport();
    struct rec r = {0};
    struct transport_timeouts to = {.total_ms = 200};
    start(t, &r, "/slow", NULL, &to);
    run_until_done(t, &r);
    assert_int_equal(r.res.err, LLM_ERR_TIMEOUT);
    buf_cleanup(&r.body);
    transport_free(t);
}

static void test_transport_streams_chunks_as_they_come(void **state)
{
    (void)state;
    struct transport *t = new_transport();
    struct rec r = {0};
    start(t, &r, "/stream", NULL, NULL);
    run_until_done(t, &r);
    assert_int_equal(r.res.err, LLM_ERR_NONE);
    assert_int_equal(r.body.len, 20 * 9);
    buf_cleanup(&r.body);
    transport_free(t);
}

static void test_transport_reports_body_cut_midway_as_truncated(void **state)
{
    (void)state;
    struct transport *t = new_transport();
    struct rec r = {0};
    start(t, &r, "/cut", NULL, NULL);
    run_until_done(t, &r);
    assert_int_equal(r.res.err, LLM_ERR_TRUNCATED);
    assert_int_equal(r.res.status, 200);
    assert_int_equal(r.body.len, 3 * 9);
    buf_cleanup(&r.body);
    transport_free(t);
}

static void test_transport_aborts_when_on_data_says_so(void **state)
{
    (void)state;
    struct transport *t = new_transport();
    struct rec r = {.abort_after = 1};
    start(t, &r, "/stream", NULL, NULL);
    run_until_done(t, &r);
    assert_int_equal(r.res.err, LLM_ERR_BAD_RESPONSE);
    assert_true(r.body.len < 20 * 9);
    buf_cleanup(&r.body);
    transport_free(t);
}

static void test_transport_cancel_from_inside_a_callback_is_deferred(void **state)
{
    (void)state;
    struct transport *t = new_transport();
    struct rec victim = {0}, killer = {0};
    uint64_t vid = start(t, &victim, "/slow", NULL, NULL);
    killer.cancel_id = vid;
    start(t, &killer, "/stream", NULL, NULL);
    run_until_done(t, &killer);
    run_until_done(t, &victim);
    assert_int_equal(victim.res.err, LLM_ERR_CANCELLED);
    assert_int_equal(victim.done_calls, 1);
    assert_int_equal(killer.res.err, LLM_ERR_NONE);
    /* cancelling itself: on_done still comes exactly once, as CANCELLED */
    struct rec self = {0};
    uint64_t sid = start(t, &self, "/stream", NULL, NULL);
    self.cancel_id = sid;
    run_until_done(t, &self);
    assert_int_equal(self.res.err, LLM_ERR_CANCELLED);
    assert_int_equal(self.done_calls, 1);
    transport_cancel(t, 987654); /* unknown ids are ignored */
    buf_cleanup(&victim.body);
    buf_cleanup(&killer.body);
    buf_cleanup(&self.body);
    transport_free(t);
}

static void test_transport_free_cancels_what_is_running(void **state)
{
    (void)state;
    struct transport *t = new_transport();
    struct rec r = {0};
    start(t, &r, "/slow", NULL, NULL);
    transport_run(t, 10);
    transport_free(t);
    assert_true(r.done);
    assert_int_equal(r.done_calls, 1);
    assert_int_equal(r.res.err, LLM_ERR_CANCELLED);
    buf_cleanup(&r.body);
}

static void test_transport_runs_many_transfers_at_once(void **state)
{
    (void)state;
    struct transport *t = new_transport();
    enum { N = 40 };
    struct rec *r = xcalloc(N, sizeof *r);
    for (int i = 0; i < N; i++)
        start(t, &r[i], i % 2 ? "/ok" : "/stream", NULL, NULL);
    int64_t give_up = clock_mono_ms() + 20000;
    while (transport_active(t) > 0 && clock_mono_ms() < give_up)
        transport_run(t, 100);
    for (int i = 0; i < N; i++) {
        assert_true(r[i].done);
        assert_int_equal(r[i].res.err, LLM_ERR_NONE);
        assert_int_equal(r[i].body.len, i % 2 ? 11 : 180);
        buf_cleanup(&r[i].body);
    }
    free(r);
    transport_free(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transport_delivers_status_headers_and_body),
        cmocka_unit_test(test_transport_posts_the_body),
        cmocka_unit_test(test_transport_takes_a_big_body_and_posts_it_whole),
        cmocka_unit_test(test_transport_reports_error_status_as_data_not_failure),
        cmocka_unit_test(test_transport_classifies_refused_connection),
        cmocka_unit_test(test_transport_times_out_waiting_for_first_byte),
        cmocka_unit_test(test_transport_first_byte_deadlines_fire_in_order),
        cmocka_unit_test(test_transport_enforces_total_timeout),
        cmocka_unit_test(test_transport_streams_chunks_as_they_come),
        cmocka_unit_test(test_transport_reports_body_cut_midway_as_truncated),
        cmocka_unit_test(test_transport_aborts_when_on_data_says_so),
        cmocka_unit_test(test_transport_cancel_from_inside_a_callback_is_deferred),
        cmocka_unit_test(test_transport_free_cancels_what_is_running),
        cmocka_unit_test(test_transport_runs_many_transfers_at_once),
    };
    return cmocka_run_group_tests_name("transport", tests, server_up, server_down);
}
