/*
 * upstream.c - the benchmark's own fast upstream: a fixed OpenAI chat.completion (JSON) and a
 * fixed SSE stream, over HTTP/1.1 keep-alive, answered after an optional fixed delay. It
 * exists because nginx-light (the delay-0 upstream) cannot wait 100 ms before answering, and
 * a delaying proxy in front of nginx would be the bottleneck. It is also the one source of
 * the bodies: `upstream --print json|sse` prints them for run.sh to put in nginx.conf, so
 * every upstream answers byte for byte the same.
 *
 * One thread, one epoll set, level-triggered, non-blocking sockets. Requests are parsed just
 * enough to find their end (headers + Content-Length). Delays and the pacing of streamed
 * events use one timerfd and two FIFO queues: every entry of a queue waits the same fixed
 * time, so insertion order is deadline order and no heap is needed.
 *
 * Usage: upstream [--delay-ms N] [--pace-ms N] [--port-file FILE] | --print json|sse
 *   Listens on two ephemeral 127.0.0.1 ports, JSON and SSE, and writes "JSON_PORT SSE_PORT"
 *   to FILE once listening. --delay-ms: every answer starts N ms after its request ended.
 *   --pace-ms: the SSE answer is sent chunked, one event every N ms (a token-paced stream).
 */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define RBUF_MAX   16384
#define MAX_EVENTS 256
#define N_WORDS    10

static const char *const words[N_WORDS] = {"The",   " quick", " brown", " fox",  " jumps",
                                           " over", " the",   " lazy",  " dog.", " Done"};

#define CHUNK_HEAD                                                                                 \
    "{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,"      \
    "\"model\":\"bench-model\",\"choices\":"

static const char json_body[] =
    "{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion\",\"created\":1700000000,"
    "\"model\":\"bench-model\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
    "\"content\":\"The quick brown fox jumps over the lazy dog. Done\"},\"logprobs\":null,"
    "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":10,"
    "\"total_tokens\":22}}";

/* The SSE events, built once: role, N_WORDS deltas, finish, usage, [DONE]. */
#define N_EVENTS (N_WORDS + 4)
static char *events[N_EVENTS];
static size_t event_len[N_EVENTS];
static char *sse_body;
static size_t sse_len;
static char *json_resp, *sse_resp; /* whole fixed responses, headers included */
static size_t json_resp_len, sse_resp_len;

enum conn_state { ST_READ, ST_DELAYED, ST_WRITE, ST_PACED };
enum kind { K_JSON, K_SSE };

struct conn {
    int fd;
    enum kind kind;
    enum conn_state state;
    bool close_after; /* client asked for Connection: close */
    bool queued;      /* in delay_q or pace_q */
    bool dead;        /* fd closed: freed at the end of the epoll batch, once out of any queue */
    uint32_t mask;    /* epoll events watched */
    char rbuf[RBUF_MAX];
    size_t rlen;
    const char *out; /* pending output */
    size_t out_len;
    char *own;      /* heap output being written (paced chunks), freed when done */
    int next_event; /* ST_PACED: next event index */
    int64_t due_ns; /* queued: when */
    struct conn *qnext;
    struct conn *dnext; /* on the dead list */
};

struct listener {
    int fd;
    enum kind kind;
};

struct queue {
    struct conn *head, *tail;
    int64_t wait_ns;
};

static int ep, tfd;
static struct queue delay_q, pace_q;
static bool paced;
static int64_t armed_ns = -1;
/* Closed connections, freed after the current epoll batch: an event for one may still be in
 * the batch (the timer can close a connection whose hang-up comes later in the same batch). */
static struct conn *dead_list;

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n);
    if (!p)
        abort();
    return p;
}

/* One SSE event: "data: " + chunk head + choices (rest of the object) + "}\n\n". */
static char *sse_event(size_t *len, const char *choices)
{
    int n = snprintf(NULL, 0, "data: " CHUNK_HEAD "%s}\n\n", choices);
    char *s = xmalloc((size_t)n + 1);
    snprintf(s, (size_t)n + 1, "data: " CHUNK_HEAD "%s}\n\n", choices);
    *len = (size_t)n;
    return s;
}

static void build_bodies(void)
{
    size_t n;
    char choices[160];
    events[0] = sse_event(&event_len[0], "[{\"index\":0,\"delta\":{\"role\":\"assistant\","
                                         "\"content\":\"\"},\"finish_reason\":null}]");
    for (int i = 0; i < N_WORDS; i++) {
        snprintf(choices, sizeof choices,
                 "[{\"index\":0,\"delta\":{\"content\":\"%s\"},\"finish_reason\":null}]", words[i]);
        events[1 + i] = sse_event(&event_len[1 + i], choices);
    }
    events[N_WORDS + 1] = sse_event(&event_len[N_WORDS + 1],
                                    "[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]");
    events[N_WORDS + 2] =
        sse_event(&event_len[N_WORDS + 2], "[],\"usage\":{\"prompt_tokens\":12,"
                                           "\"completion_tokens\":10,\"total_tokens\":22}");
    events[N_WORDS + 3] = strdup("data: [DONE]\n\n");
    event_len[N_WORDS + 3] = strlen(events[N_WORDS + 3]);
    sse_len = 0;
    for (int i = 0; i < N_EVENTS; i++)
        sse_len += event_len[i];
    sse_body = xmalloc(sse_len + 1);
    n = 0;
    for (int i = 0; i < N_EVENTS; i++) {
        memcpy(sse_body + n, events[i], event_len[i]);
        n += event_len[i];
    }
    sse_body[n] = '\0';

    char head[256];
    int h = snprintf(head, sizeof head,
                     "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\n\r\n",
                     sizeof json_body - 1);
    json_resp_len = (size_t)h + sizeof json_body - 1;
    json_resp = xmalloc(json_resp_len);
    memcpy(json_resp, head, (size_t)h);
    memcpy(json_resp + h, json_body, sizeof json_body - 1);

    h = snprintf(head, sizeof head,
                 "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                 "Cache-Control: no-cache\r\nContent-Length: %zu\r\n\r\n",
                 sse_len);
    sse_resp_len = (size_t)h + sse_len;
    sse_resp = xmalloc(sse_resp_len);
    memcpy(sse_resp, head, (size_t)h);
    memcpy(sse_resp + h, sse_body, sse_len);
}

static void arm_timer(void)
{
    int64_t due = -1;
    if (delay_q.head)
        due = delay_q.head->due_ns;
    if (pace_q.head && (due < 0 || pace_q.head->due_ns < due))
        due = pace_q.head->due_ns;
    if (due == armed_ns)
        return;
    struct itimerspec its = {0};
    if (due >= 0) {
        if (due < 1)
            due = 1;
        its.it_value.tv_sec = due / 1000000000;
        its.it_value.tv_nsec = due % 1000000000;
    }
    timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL);
    armed_ns = due;
}

static void enqueue(struct queue *q, struct conn *c)
{
    c->due_ns = now_ns() + q->wait_ns;
    c->qnext = NULL;
    c->queued = true;
    if (q->tail)
        q->tail->qnext = c;
    else
        q->head = c;
    q->tail = c;
    arm_timer();
}

static void watch(struct conn *c, uint32_t events_mask)
{
    if (c->mask == events_mask)
        return;
    c->mask = events_mask;
    struct epoll_event ev = {.events = events_mask, .data.ptr = c};
    epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* The connection leaves: its fd is closed now, its memory after the batch (free_dead). */
static void conn_close(struct conn *c)
{
    if (c->dead)
        return;
    close(c->fd);
    free(c->own);
    c->own = NULL;
    c->dead = true;
    if (!c->queued) { /* still queued: on_timer moves it here when it leaves the queue */
        c->dnext = dead_list;
        dead_list = c;
    }
}

static void free_dead(void)
{
    while (dead_list) {
        struct conn *c = dead_list;
        dead_list = c->dnext;
        free(c);
    }
}

/* Finds the end of one request in rbuf: returns its length, 0 when incomplete, -1 when bad. */
static long request_end(struct conn *c, bool *expect_continue)
{
    char *hdr_end = memmem(c->rbuf, c->rlen, "\r\n\r\n", 4);
    if (!hdr_end)
        return c->rlen >= RBUF_MAX ? -1 : 0;
    size_t hlen = (size_t)(hdr_end - c->rbuf) + 4;
    size_t clen = 0;
    *expect_continue = false;
    c->close_after = false;
    for (char *p = c->rbuf; p < hdr_end;) {
        char *eol = memmem(p, (size_t)(hdr_end + 2 - p), "\r\n", 2);
        if (!eol)
            break;
        if (strncasecmp(p, "content-length:", 15) == 0)
            clen = strtoul(p + 15, NULL, 10);
        else if (strncasecmp(p, "connection:", 11) == 0 && memmem(p, (size_t)(eol - p), "close", 5))
            c->close_after = true;
        else if (strncasecmp(p, "expect:", 7) == 0 && memmem(p, (size_t)(eol - p), "100", 3))
            *expect_continue = true;
        p = eol + 2;
    }
    if (hlen + clen > RBUF_MAX)
        return -1;
    return c->rlen >= hlen + clen ? (long)(hlen + clen) : 0;
}

static void handle_input(struct conn *c);

/* Writes what is pending; on completion moves to the next state. */
static void flush_out(struct conn *c)
{
    while (c->out_len) {
        ssize_t n = write(c->fd, c->out, c->out_len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            watch(c, EPOLLOUT);
            return;
        }
        if (n <= 0) {
            conn_close(c);
            return;
        }
        c->out += n;
        c->out_len -= (size_t)n;
    }
    free(c->own);
    c->own = NULL;
    if (c->state == ST_PACED) {
        if (c->next_event < N_EVENTS) {
            watch(c, 0);
            enqueue(&pace_q, c);
            return;
        }
    }
    if (c->close_after) {
        conn_close(c);
        return;
    }
    c->state = ST_READ;
    watch(c, EPOLLIN);
    if (c->rlen)
        handle_input(c); /* a pipelined request already read */
}

static void paced_next(struct conn *c)
{
    int i = c->next_event++;
    bool last = i == N_EVENTS - 1;
    char head[32];
    int h = snprintf(head, sizeof head, "%zx\r\n", event_len[i]);
    size_t n = (size_t)h + event_len[i] + 2 + (last ? 5 : 0);
    char *s = xmalloc(n);
    memcpy(s, head, (size_t)h);
    memcpy(s + h, events[i], event_len[i]);
    memcpy(s + h + event_len[i], last ? "\r\n0\r\n\r\n" : "\r\n", last ? 7 : 2);
    if (i == 0) { /* headers go with the first event */
        static const char hdrs[] = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                                   "Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\n";
        char *t = xmalloc(sizeof hdrs - 1 + n);
        memcpy(t, hdrs, sizeof hdrs - 1);
        memcpy(t + sizeof hdrs - 1, s, n);
        free(s);
        s = t;
        n += sizeof hdrs - 1;
    }
    c->own = s;
    c->out = s;
    c->out_len = n;
}

/* The request has been read: answer now, or queue the answer. */
static void respond(struct conn *c)
{
    if (c->kind == K_SSE && paced) {
        c->state = ST_PACED;
        c->next_event = 0;
        if (delay_q.wait_ns > 0) {
            c->state = ST_DELAYED;
            watch(c, 0);
            enqueue(&delay_q, c);
            return;
        }
        paced_next(c);
        flush_out(c);
        return;
    }
    if (delay_q.wait_ns > 0) {
        c->state = ST_DELAYED;
        watch(c, 0);
        enqueue(&delay_q, c);
        return;
    }
    c->state = ST_WRITE;
    c->out = c->kind == K_JSON ? json_resp : sse_resp;
    c->out_len = c->kind == K_JSON ? json_resp_len : sse_resp_len;
    flush_out(c);
}

static void handle_input(struct conn *c)
{
    bool expect_continue = false;
    long n = request_end(c, &expect_continue);
    if (n < 0) {
        conn_close(c);
        return;
    }
    if (n == 0) {
        if (expect_continue) {
            static const char cont[] = "HTTP/1.1 100 Continue\r\n\r\n";
            if (write(c->fd, cont, sizeof cont - 1) < 0) {
                conn_close(c);
                return;
            }
        }
        return;
    }
    memmove(c->rbuf, c->rbuf + n, c->rlen - (size_t)n);
    c->rlen -= (size_t)n;
    respond(c);
}

static void on_readable(struct conn *c)
{
    for (;;) {
        ssize_t n = read(c->fd, c->rbuf + c->rlen, RBUF_MAX - c->rlen);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            break;
        if (n <= 0) {
            conn_close(c);
            return;
        }
        c->rlen += (size_t)n;
        if (c->rlen == RBUF_MAX)
            break;
    }
    if (c->state == ST_READ)
        handle_input(c);
}

static void on_timer(void)
{
    uint64_t ticks;
    if (read(tfd, &ticks, sizeof ticks) < 0 && errno != EAGAIN)
        return;
    armed_ns = -1;
    int64_t now = now_ns();
    struct queue *qs[2] = {&delay_q, &pace_q};
    for (int k = 0; k < 2; k++) {
        struct queue *q = qs[k];
        while (q->head && q->head->due_ns <= now) {
            struct conn *c = q->head;
            q->head = c->qnext;
            if (!q->head)
                q->tail = NULL;
            c->queued = false;
            if (c->dead) {
                c->dnext = dead_list;
                dead_list = c;
                continue;
            }
            if (c->state == ST_DELAYED && !(c->kind == K_SSE && paced)) {
                c->state = ST_WRITE;
                c->out = c->kind == K_JSON ? json_resp : sse_resp;
                c->out_len = c->kind == K_JSON ? json_resp_len : sse_resp_len;
            } else {
                c->state = ST_PACED;
                paced_next(c);
            }
            flush_out(c);
        }
    }
    arm_timer();
}

static void on_accept(struct listener *l)
{
    for (;;) {
        int fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        struct conn *c = calloc(1, sizeof *c);
        if (!c)
            abort();
        c->fd = fd;
        c->kind = l->kind;
        c->state = ST_READ;
        c->mask = EPOLLIN;
        struct epoll_event ev = {.events = EPOLLIN, .data.ptr = c};
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    }
}

static int listen_on(struct listener *l, enum kind kind)
{
    l->kind = kind;
    l->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof sa;
    if (bind(l->fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(l->fd, 4096) < 0 ||
        getsockname(l->fd, (struct sockaddr *)&sa, &len) < 0) {
        perror("upstream: listen");
        exit(1);
    }
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = l};
    epoll_ctl(ep, EPOLL_CTL_ADD, l->fd, &ev);
    return ntohs(sa.sin_port);
}

static void usage(void)
{
    fprintf(stderr, "usage: upstream [--delay-ms N] [--pace-ms N] [--port-file FILE]\n"
                    "       upstream --print json|sse\n");
    exit(2);
}

int main(int argc, char **argv)
{
    const char *port_file = NULL;
    long delay_ms = 0, pace_ms = 0;
    build_bodies();
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc)
            usage();
        if (strcmp(argv[i], "--print") == 0) {
            const char *b = strcmp(argv[i + 1], "json") == 0 ? json_body : sse_body;
            fputs(b, stdout);
            return 0;
        } else if (strcmp(argv[i], "--delay-ms") == 0) {
            delay_ms = strtol(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--pace-ms") == 0) {
            pace_ms = strtol(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--port-file") == 0) {
            port_file = argv[++i];
        } else {
            usage();
        }
    }
    delay_q.wait_ns = delay_ms * 1000000;
    pace_q.wait_ns = pace_ms * 1000000;
    paced = pace_ms > 0;
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }

    ep = epoll_create1(EPOLL_CLOEXEC);
    tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    static int timer_tag;
    struct epoll_event tev = {.events = EPOLLIN, .data.ptr = &timer_tag};
    epoll_ctl(ep, EPOLL_CTL_ADD, tfd, &tev);
    static struct listener lj, ls;
    int pj = listen_on(&lj, K_JSON), ps = listen_on(&ls, K_SSE);
    if (port_file) {
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s.tmp", port_file);
        FILE *f = fopen(tmp, "w");
        if (!f || fprintf(f, "%d %d\n", pj, ps) < 0 || fclose(f) != 0 || rename(tmp, port_file)) {
            perror("upstream: port file");
            return 1;
        }
    } else {
        printf("%d %d\n", pj, ps);
        fflush(stdout);
    }

    struct epoll_event evs[MAX_EVENTS];
    for (;;) {
        int n = epoll_wait(ep, evs, MAX_EVENTS, -1);
        for (int i = 0; i < n; i++) {
            void *p = evs[i].data.ptr;
            if (p == &timer_tag) {
                on_timer();
            } else if (p == &lj || p == &ls) {
                on_accept(p);
            } else {
                struct conn *c = p;
                if (c->dead)
                    continue;
                if (evs[i].events & (EPOLLERR | EPOLLHUP))
                    conn_close(c);
                else if (evs[i].events & EPOLLOUT)
                    flush_out(c);
                else if (evs[i].events & EPOLLIN)
                    on_readable(c);
            }
        }
        free_dead();
    }
}
