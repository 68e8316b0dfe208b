/*
 * eventgap.c - the benchmark's per-event stream client: how late each streamed event arrives.
 * wrk sees a stream only when it is complete, so it cannot see the delay a proxy adds to the
 * events in between; this client timestamps every SSE event as it arrives.
 *
 * It keeps N streaming POSTs to one URL open at once (the body tests/bench/post_stream.lua
 * sends: "stream": true with include_usage), starting them staggered over one pace interval
 * (or --stagger-ms) so the load is even, and starts the next stream on the same connection
 * (keep-alive; a new connection when the server closes) as soon as one is complete, for a fixed
 * time. Each response is decoded (status line, headers, chunked or Content-Length body) and scanned
 * for SSE events (a blank line after at least one `data:` line); every event is stamped with
 * CLOCK_MONOTONIC when the read that completed it returned.
 *
 * One thread, one epoll set (level-triggered), non-blocking sockets; starts and retries wait
 * in one FIFO (every entry waits the same time, so insertion order is deadline order). The
 * response parser is pure (bytes in, counts out; eventgap/parse.c) and checked by --self-test.
 *
 * Usage: eventgap --url http://127.0.0.1:PORT/PATH --streams N --seconds S --pace-ms P
 *                 [--warmup-s W] [--stagger-ms G] [--model M] [--timeout-s T]
 *                 [--trace FILE]
 *        eventgap --self-test
 * Prints a human summary on stderr and one machine-readable "EVENTGAP key=value ..." line on
 * stdout (microseconds): streams completed, errors by kind, events, the distributions of the
 * gap between consecutive events of a stream (and of the gap minus P), of the time from the
 * request to the first event and of whole streams, the most streams in flight at once and the
 * client's own CPU. Only what happens within the S seconds counts, as with wrk; with a
 * warm-up, the streams run W seconds first and nothing from those counts (a stream or gap
 * that ends after it does). --stagger-ms: the first starts are spread over G ms instead of one
 * pace interval (over a whole stream, they also spread the requests' own cost, which one pace
 * interval leaves in one burst per stream length). --timeout-s: a stream with no byte for
 * T s fails (30). --trace FILE: a line per read that completed events: ms since the counted
 * window began (negative in the warm-up), stream slot, the stream's events so far, content
 * events in this read, us since the request (to find when and where stalls happen).
 */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>

#include "eventgap/parse.h"

#define RBUF_SIZE  16384
#define MAX_EVENTS 256
#define NS_PER_MS  1000000LL

/* ---- the client ------------------------------------------------------------------------------ */

enum st_state { ST_WAITING, ST_CONNECTING, ST_SENDING, ST_RECEIVING };
enum err_kind { ERR_CONNECT, ERR_STATUS, ERR_READ, ERR_TIMEOUT, ERR_N };
static const char *const err_names[ERR_N] = {"connect", "status", "read", "timeout"};

struct stream {
    int fd;
    enum st_state state;
    size_t sent;
    struct rp rp;
    int64_t t_request, t_last_event, t_last_content, t_activity;
    int events, content;
};

struct client {
    struct sockaddr_in addr;
    char *request;
    size_t request_len;
    int nstreams;
    int64_t pace_ns, stagger_ns, timeout_ns, warmup_ns;
    int64_t t_begin, t_end; /* what is counted: [t_begin, t_end), after the warm-up */
    int ep;
    struct stream *st;
    int *fifo; /* stream indexes waiting to start, with their start times */
    int64_t *fifo_due;
    int fifo_head, fifo_len;
    int in_flight, max_in_flight;
    long long started, completed, events, content, errors[ERR_N];
    struct samples gaps, ttfe, whole; /* every event; whole streams */
    struct samples cgaps, ttfc;       /* content events only (text deltas) */
    FILE *trace;                      /* --trace: one line per read that completed events */
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static bool counted(const struct client *c, int64_t now)
{
    return now >= c->t_begin && now < c->t_end;
}

static void fifo_push(struct client *c, int i, int64_t due)
{
    int k = (c->fifo_head + c->fifo_len++) % c->nstreams;
    c->fifo[k] = i;
    c->fifo_due[k] = due;
}

static void stream_close(struct client *c, struct stream *s)
{
    if (s->fd >= 0) {
        epoll_ctl(c->ep, EPOLL_CTL_DEL, s->fd, NULL);
        close(s->fd);
    }
    if (s->state == ST_SENDING || s->state == ST_RECEIVING)
        c->in_flight--;
    s->fd = -1;
    s->state = ST_WAITING;
}

/* A failed stream: counted, closed, and started again one pace interval later. */
static void stream_fail(struct client *c, int i, enum err_kind kind, int64_t now)
{
    if (counted(c, now))
        c->errors[kind]++;
    stream_close(c, &c->st[i]);
    fifo_push(c, i, now + c->pace_ns);
}

static void watch(struct client *c, int i, uint32_t mask, int op)
{
    struct epoll_event ev = {.events = mask, .data.u32 = (uint32_t)i};
    epoll_ctl(c->ep, op, c->st[i].fd, &ev);
}

/* Sends (the rest of) the request; then waits for the answer. */
static void stream_send(struct client *c, int i, int64_t now)
{
    struct stream *s = &c->st[i];
    if (s->state != ST_SENDING) {
        s->state = ST_SENDING;
        s->sent = 0;
        s->t_request = now;
        s->events = s->content = 0;
        rp_init(&s->rp);
        c->started++;
        if (++c->in_flight > c->max_in_flight)
            c->max_in_flight = c->in_flight;
    }
    s->t_activity = now;
    ssize_t n = send(s->fd, c->request + s->sent, c->request_len - s->sent, MSG_NOSIGNAL);
    if (n < 0 && errno == EAGAIN) {
        watch(c, i, EPOLLOUT, EPOLL_CTL_MOD);
        return;
    }
    if (n < 0) {
        stream_fail(c, i, ERR_READ, now);
        return;
    }
    s->sent += (size_t)n;
    if (s->sent == c->request_len) {
        s->state = ST_RECEIVING;
        watch(c, i, EPOLLIN, EPOLL_CTL_MOD);
    }
}

static void stream_connect(struct client *c, int i, int64_t now)
{
    struct stream *s = &c->st[i];
    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->fd < 0) {
        stream_fail(c, i, ERR_CONNECT, now);
        return;
    }
    int one = 1;
    setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    s->t_activity = now;
    int r = connect(s->fd, (const struct sockaddr *)&c->addr, sizeof c->addr);
    if (r < 0 && errno != EINPROGRESS) {
        stream_fail(c, i, ERR_CONNECT, now);
        return;
    }
    s->state = ST_CONNECTING;
    watch(c, i, EPOLLOUT, EPOLL_CTL_ADD);
}

/* A whole response: counted, then the next stream starts (same connection if it allows). */
static void stream_done(struct client *c, int i, int64_t now)
{
    struct stream *s = &c->st[i];
    if (s->rp.status != 200) {
        stream_fail(c, i, ERR_STATUS, now);
        return;
    }
    if (counted(c, now)) {
        c->completed++;
        samples_add(&c->whole, now - s->t_request);
    }
    bool keep = s->rp.keep_alive;
    c->in_flight--;
    s->state = ST_WAITING;
    if (now >= c->t_end)
        return;
    if (keep) {
        stream_send(c, i, now);
        return;
    }
    stream_close(c, s);
    stream_connect(c, i, now);
}

/*
 * One more event (or content event) of a stream at now: its gap, or the time to the first,
 * recorded when `rec` (inside the counted window; the stream's own count and last time are
 * kept during the warm-up too, so a stream that straddles it has no false "first" event).
 */
static void note_event(struct samples *first, struct samples *gaps, int *count, int64_t *last,
                       int64_t t_request, int64_t now, bool rec)
{
    if (rec && *count == 0)
        samples_add(first, now - t_request);
    else if (rec)
        samples_add(gaps, now - *last);
    (*count)++;
    *last = now;
}

/* The events completed by the read that returned at now (all of them arrived then). */
static void stream_events(struct client *c, struct stream *s, const struct rp_count *n, int64_t now)
{
    bool rec = counted(c, now);
    for (int k = 0; k < n->events; k++)
        note_event(&c->ttfe, &c->gaps, &s->events, &s->t_last_event, s->t_request, now, rec);
    for (int k = 0; k < n->content; k++)
        note_event(&c->ttfc, &c->cgaps, &s->content, &s->t_last_content, s->t_request, now, rec);
    if (rec) {
        c->events += n->events;
        c->content += n->content;
    }
    if (c->trace && n->events) /* ms since the counted window began, stream slot, ... */
        fprintf(c->trace, "%.3f %d %d %d %.0f\n", (double)(now - c->t_begin) / 1e6,
                (int)(s - c->st), s->events, n->content, (double)(now - s->t_request) / 1e3);
}

static void stream_readable(struct client *c, int i)
{
    static char buf[RBUF_SIZE];
    struct stream *s = &c->st[i];
    ssize_t n = recv(s->fd, buf, sizeof buf, 0);
    int64_t now = now_ns();
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return;
    enum rp_result r;
    struct rp_count got;
    if (n <= 0) {
        r = n == 0 ? rp_eof(&s->rp) : RP_BAD;
        if (r == RP_COMPLETE)
            s->rp.keep_alive = false;
    } else {
        s->t_activity = now;
        r = rp_feed(&s->rp, buf, (size_t)n, &got);
        stream_events(c, s, &got, now);
    }
    if (r == RP_COMPLETE)
        stream_done(c, i, now);
    else if (r == RP_BAD)
        stream_fail(c, i, s->rp.phase == RP_HEAD || s->rp.status == 200 ? ERR_READ : ERR_STATUS,
                    now);
}

static void stream_ready(struct client *c, int i, uint32_t evmask, int64_t now)
{
    struct stream *s = &c->st[i];
    switch (s->state) {
    case ST_CONNECTING: {
        int err = 0;
        socklen_t len = sizeof err;
        getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len);
        if (err || (evmask & (EPOLLERR | EPOLLHUP)))
            stream_fail(c, i, ERR_CONNECT, now);
        else
            stream_send(c, i, now);
        return;
    }
    case ST_SENDING:
        stream_send(c, i, now);
        return;
    case ST_RECEIVING:
        stream_readable(c, i);
        return;
    case ST_WAITING:
        return;
    }
}

/* Starts the streams whose time has come; returns ms until the next one (-1: none). */
static int start_due(struct client *c, int64_t now)
{
    while (c->fifo_len && c->fifo_due[c->fifo_head] <= now) {
        int i = c->fifo[c->fifo_head];
        c->fifo_head = (c->fifo_head + 1) % c->nstreams;
        c->fifo_len--;
        if (now < c->t_end)
            stream_connect(c, i, now);
    }
    if (!c->fifo_len)
        return -1;
    return (int)((c->fifo_due[c->fifo_head] - now + NS_PER_MS - 1) / NS_PER_MS);
}

/* Streams with no byte for timeout_ns fail (a stuck server must not stop the run). */
static void sweep_timeouts(struct client *c, int64_t now)
{
    for (int i = 0; i < c->nstreams; i++) {
        struct stream *s = &c->st[i];
        if (s->state != ST_WAITING && now - s->t_activity > c->timeout_ns)
            stream_fail(c, i, ERR_TIMEOUT, now);
    }
}

static void client_run(struct client *c)
{
    struct epoll_event evs[MAX_EVENTS];
    int64_t now = now_ns(), next_sweep = now + NS_PER_MS * 1000;
    c->t_begin = now + c->warmup_ns;
    c->t_end += c->t_begin;
    for (int i = 0; i < c->nstreams; i++) /* staggered: even start times */
        fifo_push(c, i, now + c->stagger_ns * i / c->nstreams);
    while (now < c->t_end) {
        int wait = start_due(c, now);
        int64_t left_ms = (c->t_end - now) / NS_PER_MS + 1;
        if (wait < 0 || wait > left_ms)
            wait = (int)left_ms;
        int n = epoll_wait(c->ep, evs, MAX_EVENTS, wait);
        now = now_ns();
        for (int k = 0; k < n; k++)
            stream_ready(c, (int)evs[k].data.u32, evs[k].events, now);
        if (now >= next_sweep) {
            sweep_timeouts(c, now);
            next_sweep = now + NS_PER_MS * 1000;
        }
    }
}

/* ---- setup and report ------------------------------------------------------------------------ */

/* http://A.B.C.D:PORT/PATH -> address and path; false when it is not of that form. */
static bool parse_url(const char *url, struct sockaddr_in *sa, char *path, size_t path_cap,
                      char *host, size_t host_cap)
{
    char ip[64];
    unsigned port = 0;
    int used = 0;
    if (sscanf(url, "http://%63[0-9.]:%u%n", ip, &port, &used) != 2 || port == 0 || port > 65535)
        return false;
    const char *p = url[used] ? url + used : "/";
    if (*p != '/' || strlen(p) >= path_cap)
        return false;
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_port = htons((uint16_t)port);
    if (inet_pton(AF_INET, ip, &sa->sin_addr) != 1)
        return false;
    snprintf(path, path_cap, "%s", p);
    snprintf(host, host_cap, "%s:%u", ip, port);
    return true;
}

static void build_request(struct client *c, const char *path, const char *host, const char *model)
{
    char body[512];
    int bl = snprintf(body, sizeof body,
                      "{\"model\":\"%s\",\"messages\":[{\"role\":\"system\",\"content\":\"You are "
                      "terse.\"},{\"role\":\"user\",\"content\":\"Name a quick brown animal in "
                      "one short sentence.\"}],\"max_tokens\":32,\"stream\":true,"
                      "\"stream_options\":{\"include_usage\":true}}",
                      model);
    size_t cap = strlen(path) + strlen(host) + (size_t)bl + 256;
    c->request = malloc(cap);
    if (!c->request)
        abort();
    int n = snprintf(c->request, cap,
                     "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %d\r\n\r\n%s",
                     path, host, bl, body);
    c->request_len = (size_t)n;
}

static double us(int64_t ns)
{
    return (double)ns / 1000.0;
}

/* name_p50_us=... for p50, p90, p99, p99.9 and max of s minus shift (0 when s is empty). */
static void print_dist(const char *name, struct samples *s, int64_t shift)
{
    if (s->n == 0)
        shift = 0;
    static const int marks[] = {500, 900, 990, 999, 1000};
    static const char *const labels[] = {"p50", "p90", "p99", "p999", "max"};
    for (int k = 0; k < 5; k++)
        printf(" %s_%s_us=%.0f", name, labels[k], us(pct(s, marks[k]) - shift));
}

static void client_report(struct client *c)
{
    qsort(c->gaps.v, c->gaps.n, sizeof *c->gaps.v, cmp_i64);
    qsort(c->ttfe.v, c->ttfe.n, sizeof *c->ttfe.v, cmp_i64);
    qsort(c->whole.v, c->whole.n, sizeof *c->whole.v, cmp_i64);
    qsort(c->cgaps.v, c->cgaps.n, sizeof *c->cgaps.v, cmp_i64);
    qsort(c->ttfc.v, c->ttfc.n, sizeof *c->ttfc.v, cmp_i64);
    long long errs = 0;
    for (int k = 0; k < ERR_N; k++)
        errs += c->errors[k];
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu_s = (double)ru.ru_utime.tv_sec + (double)ru.ru_stime.tv_sec +
                   ((double)ru.ru_utime.tv_usec + (double)ru.ru_stime.tv_usec) / 1e6;
    int64_t dur = c->t_end - c->t_begin;
    printf("EVENTGAP streams=%lld started=%lld errors=%lld", c->completed, c->started, errs);
    for (int k = 0; k < ERR_N; k++)
        printf(" err_%s=%lld", err_names[k], c->errors[k]);
    printf(" events=%lld gaps=%zu content=%lld content_gaps=%zu duration_us=%.0f "
           "max_in_flight=%d pace_us=%.0f",
           c->events, c->gaps.n, c->content, c->cgaps.n, us(dur), c->max_in_flight, us(c->pace_ns));
    print_dist("gap", &c->gaps, 0);
    print_dist("late", &c->gaps, c->pace_ns);
    print_dist("cgap", &c->cgaps, 0);
    print_dist("clate", &c->cgaps, c->pace_ns);
    print_dist("ttfe", &c->ttfe, 0);
    print_dist("ttfc", &c->ttfc, 0);
    print_dist("stream", &c->whole, 0);
    printf(" client_cpu_pct=%.1f\n", 100.0 * cpu_s / ((double)(dur + c->warmup_ns) / 1e9));
    fprintf(
        stderr,
        "eventgap: %lld streams complete (%lld started, %lld errors), %lld events, "
        "%d in flight at most; pace %.0f ms; gap p50 %.2f p99 %.2f p99.9 %.2f max %.2f ms "
        "(content events: p50 %.2f p99 %.2f p99.9 %.2f max %.2f ms); first event p50 %.2f "
        "p99 %.2f ms; client CPU %.1f%%\n",
        c->completed, c->started, errs, c->events, c->max_in_flight, us(c->pace_ns) / 1e3,
        us(pct(&c->gaps, 500)) / 1e3, us(pct(&c->gaps, 990)) / 1e3, us(pct(&c->gaps, 999)) / 1e3,
        us(pct(&c->gaps, 1000)) / 1e3, us(pct(&c->cgaps, 500)) / 1e3, us(pct(&c->cgaps, 990)) / 1e3,
        us(pct(&c->cgaps, 999)) / 1e3, us(pct(&c->cgaps, 1000)) / 1e3, us(pct(&c->ttfe, 500)) / 1e3,
        us(pct(&c->ttfe, 990)) / 1e3, 100.0 * cpu_s / ((double)(dur + c->warmup_ns) / 1e9));
}

/* ---- main ------------------------------------------------------------------------------------ */

static int usage(void)
{
    fprintf(stderr, "usage: eventgap --url http://127.0.0.1:PORT/PATH --streams N --seconds S "
                    "--pace-ms P [--warmup-s W] [--stagger-ms G] [--model M] [--timeout-s T] "
                    "[--trace FILE] | "
                    "--self-test\n");
    return 2;
}

static bool client_init(struct client *c, const char *url, const char *model)
{
    char path[1024], host[96];
    if (!parse_url(url, &c->addr, path, sizeof path, host, sizeof host))
        return false;
    build_request(c, path, host, model);
    c->ep = epoll_create1(EPOLL_CLOEXEC);
    c->st = calloc((size_t)c->nstreams, sizeof *c->st);
    c->fifo = calloc((size_t)c->nstreams, sizeof *c->fifo);
    c->fifo_due = calloc((size_t)c->nstreams, sizeof *c->fifo_due);
    if (c->ep < 0 || !c->st || !c->fifo || !c->fifo_due)
        abort();
    for (int i = 0; i < c->nstreams; i++)
        c->st[i].fd = -1;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    return true;
}

int main(int argc, char **argv)
{
    const char *url = NULL, *model = "paced", *trace = NULL;
    long streams = 0, seconds = 0, pace_ms = 0, timeout_s = 30, warmup_s = 0;
    long stagger_ms = -1; /* the pace */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--self-test") == 0)
            return self_test();
        if (i + 1 >= argc)
            return usage();
        if (strcmp(argv[i], "--url") == 0)
            url = argv[++i];
        else if (strcmp(argv[i], "--model") == 0)
            model = argv[++i];
        else if (strcmp(argv[i], "--streams") == 0)
            streams = strtol(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--seconds") == 0)
            seconds = strtol(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--pace-ms") == 0)
            pace_ms = strtol(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--warmup-s") == 0)
            warmup_s = strtol(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--trace") == 0)
            trace = argv[++i];
        else if (strcmp(argv[i], "--stagger-ms") == 0)
            stagger_ms = strtol(argv[++i], NULL, 10);
        else if (strcmp(argv[i], "--timeout-s") == 0)
            timeout_s = strtol(argv[++i], NULL, 10);
        else
            return usage();
    }
    if (!url || streams < 1 || streams > 1000000 || seconds < 1 || pace_ms < 1 || timeout_s < 1 ||
        warmup_s < 0 || stagger_ms < -1)
        return usage();
    static struct client c;
    c.nstreams = (int)streams;
    c.pace_ns = pace_ms * NS_PER_MS;
    c.timeout_ns = timeout_s * 1000 * NS_PER_MS;
    if (!client_init(&c, url, model)) {
        fprintf(stderr, "eventgap: %s is not http://A.B.C.D:PORT/PATH\n", url);
        return 2;
    }
    c.warmup_ns = warmup_s * 1000 * NS_PER_MS;
    c.stagger_ns = (stagger_ms < 0 ? pace_ms : stagger_ms) * NS_PER_MS;
    if (trace && !(c.trace = fopen(trace, "w"))) {
        perror(trace);
        return 2;
    }
    c.t_end = seconds * 1000 * NS_PER_MS; /* from the end of the warm-up */
    client_run(&c);
    client_report(&c);
    if (c.trace)
        fclose(c.trace);
    return 0;
}
