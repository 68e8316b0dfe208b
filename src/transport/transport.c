/*
 * transport.c - HTTP transfers on one libcurl multi handle, driven by epoll.
 *
 * Owner: one thread (the router thread, or `ask`'s) calls everything here except
 * transport_wakeup(). Transfers live in a doubly linked list; each has its easy handle,
 * header list and callbacks. Completion, cancellation and first-byte timeouts all end in
 * xfer_finish(), which unlinks the transfer, calls on_done exactly once and frees it.
 * Cancels are deferred (a flag, acted on in transport_run) so that callbacks may cancel any
 * transfer, including their own, without touching curl from inside curl.
 *
 * Event loop: libcurl's socket interface. CURLMOPT_SOCKETFUNCTION keeps an epoll set in
 * step with the sockets libcurl wants watched, CURLMOPT_TIMERFUNCTION gives the one
 * deadline libcurl needs, and transport_run() hands each ready socket to
 * curl_multi_socket_action(): the work per wakeup is proportional to the sockets that are
 * ready, not to the transfers held (curl_multi_poll + curl_multi_perform walk all of them).
 * An eventfd in the same epoll set is the cross-thread wakeup; one more fd of the owner's
 * (transport_watch: the gateway's MHD epoll fd) may join it, only to end the wait. Transfers
 * still waiting for their first byte under a deadline sit on a second list, kept in deadline
 * order: a wakeup looks at its head only, however many calls wait for a slow provider's first
 * byte.
 */
#include <curl/curl.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "switchboard/transport.h"

struct xfer {
    struct xfer *prev, *next;
    struct xfer *fb_prev, *fb_next; /* on t->waiting while a first-byte deadline applies */
    struct transport *t;
    uint64_t id;
    CURL *easy;
    struct curl_slist *headers;
    char *body; /* the request body, taken from the caller (libcurl reads it in place) */
    struct transport_callbacks cb;
    void *ctx;
    int64_t start_us;
    int64_t first_byte_us;       /* -1 until the status line */
    int64_t first_byte_deadline; /* absolute, us; 0 = none */
    long status;
    bool in_final_response; /* headers belong to a >= 200 response */
    bool cancelled;
    bool aborted_by_data;
    bool paused;   /* on_data said TRANSPORT_DATA_PAUSE; transport_resume undoes it */
    bool got_body; /* on_data was called once: counted out of t->unanswered */
    char errbuf[CURL_ERROR_SIZE];
};

/* libcurl's receive buffer per transfer (default 16 KB): provider answers arrive in small
 * pieces, and at 1,000 streams the default alone is 16 MB. */
#define XFER_BUFFER_SIZE 4096L
#define EPOLL_BATCH      64
/* Linger: when a wakeup brings only bytes of answers already under way (no transfer waits for
 * its first body byte, no post in the inbox) and many transfers are open, transport_run waits
 * this long before reading them, so that the events of many streams share one wakeup of this
 * thread and one flush of the sinks' wake-ups (router turn). Bounded: at most this much is
 * added to an event's delay, and never to a first byte or at low concurrency; a post to the
 * router (wakefd: a new request, a resume) ends it at once. */
#define LINGER_US         1000
#define LINGER_MIN_ACTIVE 64
/* Finished easy handles kept for the next transfers (curl_easy_reset, not a new handle). */
#define SPARE_HANDLES 64

struct transport {
    CURLM *multi;
    int epfd;
    int wakefd;          /* eventfd: transport_wakeup() */
    int watchfd;         /* transport_watch(); -1: none */
    int64_t curl_due_us; /* libcurl's timer, absolute; -1 = none */
    struct xfer *head;
    struct xfer *waiting;      /* transfers under a first-byte deadline, none received yet: */
    struct xfer *waiting_tail; /* soonest deadline first */
    CURL *spare[SPARE_HANDLES];
    size_t n_spare;
    uint64_t next_id;
    size_t active;
    size_t unanswered; /* transfers without a body byte yet */
    bool dirty;        /* some transfer was cancelled and waits for removal */
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc;

static void global_init(void)
{
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp);
static void handle_put(struct transport *t, CURL *e);
static int on_timer(CURLM *multi, long timeout_ms, void *userp);

/* epoll set + eventfd; false with msg on failure (then nothing is left open). */
static bool loop_open(struct transport *t, char *msg, size_t msglen)
{
    t->epfd = epoll_create1(EPOLL_CLOEXEC);
    t->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = t->wakefd};
    if (t->epfd >= 0 && t->wakefd >= 0 && epoll_ctl(t->epfd, EPOLL_CTL_ADD, t->wakefd, &ev) == 0)
        return true;
    snprintf(msg, msglen, "transport event loop: %s", strerror(errno));
    if (t->epfd >= 0)
        close(t->epfd);
    if (t->wakefd >= 0)
        close(t->wakefd);
    return false;
}

struct transport *transport_new(char *msg, size_t msglen)
{
    pthread_once(&global_once, global_init);
    if (global_rc != CURLE_OK) {
        snprintf(msg, msglen, "libcurl init failed: %s", curl_easy_strerror(global_rc));
        return NULL;
    }
    struct transport *t = xcalloc(1, sizeof *t);
    if (!loop_open(t, msg, msglen)) {
        free(t);
        return NULL;
    }
    t->multi = curl_multi_init();
    if (!t->multi) {
        snprintf(msg, msglen, "libcurl multi init failed");
        close(t->epfd);
        close(t->wakefd);
        free(t);
        return NULL;
    }
    curl_multi_setopt(t->multi, CURLMOPT_MAXCONNECTS, 2048L); /* above the streams we hold */
    curl_multi_setopt(t->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(t->multi, CURLMOPT_SOCKETDATA, t);
    curl_multi_setopt(t->multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(t->multi, CURLMOPT_TIMERDATA, t);
    t->curl_due_us = -1;
    t->watchfd = -1;
    t->next_id = 1;
    return t;
}

/* ---- libcurl's socket and timer interface ------------------------------------------------ */

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)easy;
    struct transport *t = userp;
    if (what == CURL_POLL_REMOVE) {
        /* The socket may already be closed (then epoll dropped it itself). */
        epoll_ctl(t->epfd, EPOLL_CTL_DEL, fd, NULL);
        curl_multi_assign(t->multi, fd, NULL);
        return 0;
    }
    struct epoll_event ev = {.data.fd = fd};
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
        ev.events |= EPOLLIN;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
        ev.events |= EPOLLOUT;
    int op = socketp ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (epoll_ctl(t->epfd, op, fd, &ev) != 0) {
        /* Our note and the kernel's set disagree (a closed fd's number reused): the other op. */
        op = op == EPOLL_CTL_MOD ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
        if (epoll_ctl(t->epfd, op, fd, &ev) != 0)
            return -1; /* libcurl fails the transfers on this socket */
    }
    curl_multi_assign(t->multi, fd, t);
    return 0;
}

static int on_timer(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    struct transport *t = userp;
    t->curl_due_us = timeout_ms < 0 ? -1 : clock_mono_us() + (int64_t)timeout_ms * 1000;
    return 0;
}

static bool waiting_has(const struct transport *t, const struct xfer *x)
{
    return x->fb_prev || t->waiting == x;
}

static void waiting_remove(struct transport *t, struct xfer *x)
{
    if (!waiting_has(t, x))
        return;
    if (x->fb_prev)
        x->fb_prev->fb_next = x->fb_next;
    else
        t->waiting = x->fb_next;
    if (x->fb_next)
        x->fb_next->fb_prev = x->fb_prev;
    else
        t->waiting_tail = x->fb_prev;
    x->fb_prev = x->fb_next = NULL;
}

/* Inserts x in deadline order, searching from the tail: transfers with the same timeout
 * arrive in deadline order, so the usual insert is at the tail in O(1). */
static void waiting_insert(struct transport *t, struct xfer *x)
{
    struct xfer *after = t->waiting_tail;
    while (after && after->first_byte_deadline > x->first_byte_deadline)
        after = after->fb_prev;
    x->fb_prev = after;
    x->fb_next = after ? after->fb_next : t->waiting;
    if (x->fb_next)
        x->fb_next->fb_prev = x;
    else
        t->waiting_tail = x;
    if (after)
        after->fb_next = x;
    else
        t->waiting = x;
}

static void xfer_unlink(struct transport *t, struct xfer *x)
{
    if (x->prev)
        x->prev->next = x->next;
    else
        t->head = x->next;
    if (x->next)
        x->next->prev = x->prev;
    x->prev = x->next = NULL;
    t->active--;
    if (!x->got_body)
        t->unanswered--;
    waiting_remove(t, x);
}

/* Removes x from curl and the list, reports res, frees x. */
static void xfer_finish(struct transport *t, struct xfer *x, struct transport_result *res)
{
    curl_multi_remove_handle(t->multi, x->easy);
    xfer_unlink(t, x);
    res->first_byte_us = x->first_byte_us < 0 ? -1 : x->first_byte_us - x->start_us;
    res->total_us = clock_mono_us() - x->start_us;
    if (res->status == 0)
        res->status = x->status;
    struct transport_callbacks cb = x->cb;
    void *ctx = x->ctx;
    handle_put(t, x->easy);
    curl_slist_free_all(x->headers);
    free(x->body);
    free(x);
    if (cb.on_done)
        cb.on_done(ctx, res);
}

static void result_set(struct transport_result *res, enum llm_errclass err, const char *fmt, ...)
    SB_PRINTF(3, 4);

/* A handle for a new transfer: a spare one (options reset), else a new one; NULL if none. */
static CURL *handle_get(struct transport *t)
{
    return t->n_spare ? t->spare[--t->n_spare] : curl_easy_init();
}

static void handle_put(struct transport *t, CURL *e)
{
    if (t->n_spare == SPARE_HANDLES) {
        curl_easy_cleanup(e);
        return;
    }
    curl_easy_reset(e);
    t->spare[t->n_spare++] = e;
}

static void result_set(struct transport_result *res, enum llm_errclass err, const char *fmt, ...)
{
    res->err = err;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->message, sizeof res->message, fmt, ap);
    va_end(ap);
}

void transport_free(struct transport *t)
{
    if (!t)
        return;
    while (t->head) {
        struct transport_result res = {0};
        result_set(&res, LLM_ERR_CANCELLED, "transport shut down");
        xfer_finish(t, t->head, &res); // NOLINT(clang-analyzer-unix.Malloc): head is unlinked first
    }
    while (t->n_spare)
        curl_easy_cleanup(t->spare[--t->n_spare]);
    curl_multi_cleanup(t->multi);
    close(t->epfd);
    close(t->wakefd);
    free(t);
}

/* ---- curl callbacks ------------------------------------------------------------------------ */

static long parse_status_line(const char *line, size_t len)
{
    /* "HTTP/1.1 200 OK" or "HTTP/2 200" */
    const char *sp = memchr(line, ' ', len);
    if (!sp || (size_t)(sp - line) + 4 > len)
        return 0;
    long code = 0;
    for (int i = 1; i <= 3; i++) {
        char c = sp[i];
        if (c < '0' || c > '9')
            return 0;
        code = code * 10 + (c - '0');
    }
    return code;
}

static size_t trim_len(const char *s, size_t len)
{
    while (len &&
           (s[len - 1] == '\r' || s[len - 1] == '\n' || s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    return len;
}

static void header_line(struct xfer *x, const char *line, size_t len)
{
    const char *colon = memchr(line, ':', len);
    if (!colon || colon == line)
        return;
    char name[128];
    size_t nlen = (size_t)(colon - line);
    if (nlen >= sizeof name)
        return;
    memcpy(name, line, nlen);
    name[nlen] = '\0';
    const char *v = colon + 1;
    size_t vlen = len - nlen - 1;
    while (vlen && (*v == ' ' || *v == '\t'))
        v++, vlen--;
    char value[1024];
    if (vlen >= sizeof value)
        vlen = sizeof value - 1;
    memcpy(value, v, vlen);
    value[vlen] = '\0';
    x->cb.on_header(x->ctx, name, value);
}

static size_t on_curl_header(char *data, size_t size, size_t nmemb, void *userp)
{
    struct xfer *x = userp;
    size_t total = size * nmemb;
    if (x->cancelled)
        return 0;
    size_t len = trim_len(data, total);
    if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        if (x->first_byte_us < 0) {
            x->first_byte_us = clock_mono_us();
            waiting_remove(x->t, x);
        }
        long code = parse_status_line(data, len);
        x->in_final_response = code >= 200;
        if (x->in_final_response) {
            x->status = code;
            if (x->cb.on_status)
                x->cb.on_status(x->ctx, code);
        }
        return total;
    }
    if (len > 0 && x->in_final_response && x->cb.on_header && !x->cancelled)
        header_line(x, data, len);
    return total;
}

static size_t on_curl_write(char *data, size_t size, size_t nmemb, void *userp)
{
    struct xfer *x = userp;
    size_t total = size * nmemb;
    if (x->cancelled)
        return 0;
    if (!x->got_body) {
        x->got_body = true;
        x->t->unanswered--;
    }
    int rc = x->cb.on_data ? x->cb.on_data(x->ctx, data, total) : 0;
    if (rc == TRANSPORT_DATA_PAUSE) {
        x->paused = true;
        return CURL_WRITEFUNC_PAUSE; /* libcurl keeps the bytes and delivers them again */
    }
    if (rc != 0) {
        x->aborted_by_data = true;
        return 0;
    }
    return total;
}

/* ---- starting ------------------------------------------------------------------------------ */

static bool xfer_setup(struct xfer *x, struct http_request *req,
                       const struct transport_timeouts *to, char *msg, size_t msglen)
{
    CURL *e = x->easy;
    for (size_t i = 0; i < req->n_headers; i++) {
        struct curl_slist *n = curl_slist_append(x->headers, req->headers[i]);
        if (!n) {
            snprintf(msg, msglen, "out of memory building headers");
            return false;
        }
        x->headers = n;
    }
    /* No "Expect: 100-continue" round trip on large bodies. */
    x->headers = curl_slist_append(x->headers, "Expect:");
    curl_easy_setopt(e, CURLOPT_URL, req->url);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_NOPROXY, "127.0.0.1,localhost,::1");
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_curl_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_curl_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_PRIVATE, x);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(e, CURLOPT_BUFFERSIZE, XFER_BUFFER_SIZE);
    if (to->connect_ms > 0)
        curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)to->connect_ms);
    if (to->total_ms > 0)
        curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)to->total_ms);
    bool post = req->body != NULL;
    if (post) { /* taken, not copied: a multi-megabyte prompt's copy would be the router's */
        x->body = req->body;
        req->body = NULL;
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->body);
    }
    if (req->method && !str_eq(req->method, post ? "POST" : "GET"))
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, req->method);
    return true;
}

uint64_t transport_start(struct transport *t, struct http_request *req,
                         const struct transport_timeouts *to, const struct transport_callbacks *cb,
                         void *ctx, char *msg, size_t msglen)
{
    struct xfer *x = xcalloc(1, sizeof *x);
    x->t = t;
    x->cb = *cb;
    x->ctx = ctx;
    x->first_byte_us = -1;
    x->easy = handle_get(t);
    if (!x->easy) {
        snprintf(msg, msglen, "libcurl easy init failed");
        goto fail;
    }
    if (!xfer_setup(x, req, to, msg, msglen))
        goto fail;
    x->start_us = clock_mono_us();
    if (to->first_byte_ms > 0)
        x->first_byte_deadline = x->start_us + to->first_byte_ms * 1000;
    CURLMcode mc = curl_multi_add_handle(t->multi, x->easy);
    if (mc != CURLM_OK) {
        snprintf(msg, msglen, "libcurl: %s", curl_multi_strerror(mc));
        goto fail;
    }
    x->id = t->next_id++;
    x->next = t->head;
    if (t->head)
        t->head->prev = x;
    t->head = x;
    t->active++;
    t->unanswered++;
    if (x->first_byte_deadline)
        waiting_insert(t, x);
    return x->id;
fail:
    if (x->easy)
        handle_put(t, x->easy);
    curl_slist_free_all(x->headers);
    free(x->body);
    free(x);
    return 0;
}

void transport_cancel(struct transport *t, uint64_t id)
{
    for (struct xfer *x = t->head; x; x = x->next) {
        if (x->id == id) {
            x->cancelled = true;
            t->dirty = true;
            return;
        }
    }
}

void transport_resume(struct transport *t, uint64_t id)
{
    for (struct xfer *x = t->head; x; x = x->next) {
        if (x->id != id)
            continue;
        if (x->paused && !x->cancelled) {
            x->paused = false;
            curl_easy_pause(x->easy, CURLPAUSE_CONT);
        }
        return;
    }
}

/* ---- running ------------------------------------------------------------------------------- */

/* libcurl codes -> our classes. Anything not listed is a connection-level failure. */
static const struct {
    CURLcode rc;
    enum llm_errclass err;
    const char *what;
} curl_classes[] = {
    {CURLE_COULDNT_RESOLVE_HOST, LLM_ERR_DNS, "DNS"},
    {CURLE_COULDNT_RESOLVE_PROXY, LLM_ERR_DNS, "DNS (proxy)"},
    {CURLE_COULDNT_CONNECT, LLM_ERR_CONNECT, "connect"},
    {CURLE_SSL_CONNECT_ERROR, LLM_ERR_TLS, "TLS"},
    {CURLE_PEER_FAILED_VERIFICATION, LLM_ERR_TLS, "TLS"},
    {CURLE_SSL_CERTPROBLEM, LLM_ERR_TLS, "TLS"},
    {CURLE_SSL_CIPHER, LLM_ERR_TLS, "TLS"},
    {CURLE_SSL_CACERT_BADFILE, LLM_ERR_TLS, "TLS"},
    {CURLE_OPERATION_TIMEDOUT, LLM_ERR_TIMEOUT, "timeout"},
};

static void classify_curl(struct xfer *x, CURLcode rc, struct transport_result *res)
{
    const char *detail = x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc);
    if (rc == CURLE_OK) {
        res->err = LLM_ERR_NONE;
        return;
    }
    for (size_t i = 0; i < SB_ARRAY_LEN(curl_classes); i++) {
        if (curl_classes[i].rc == rc) {
            result_set(res, curl_classes[i].err, "%s: %s", curl_classes[i].what, detail);
            return;
        }
    }
    if (rc == CURLE_WRITE_ERROR && x->aborted_by_data) {
        result_set(res, LLM_ERR_BAD_RESPONSE, "response rejected by the decoder");
    } else if (rc == CURLE_PARTIAL_FILE || rc == CURLE_RECV_ERROR || rc == CURLE_GOT_NOTHING ||
               rc == CURLE_SEND_ERROR) {
        if (x->status > 0)
            result_set(res, LLM_ERR_TRUNCATED, "connection closed mid-body: %s", detail);
        else
            result_set(res, LLM_ERR_CONNECT, "connection dropped: %s", detail);
    } else {
        result_set(res, LLM_ERR_CONNECT, "transfer failed: %s", detail);
    }
}

static void drain_done(struct transport *t)
{
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(t->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        char *priv = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
        struct xfer *x = (struct xfer *)priv;
        CURLcode rc = m->data.result;
        struct transport_result res = {0};
        if (x->cancelled)
            result_set(&res, LLM_ERR_CANCELLED, "cancelled");
        else
            classify_curl(x, rc, &res);
        xfer_finish(t, x, &res);
    }
}

/* Finishes the first transfer that is cancelled (when any is) or past its first-byte
 * deadline; false when there is none. One at a time: on_done may start or cancel others. */
static bool sweep_one(struct transport *t, int64_t now_us)
{
    struct transport_result res = {0};
    if (t->dirty) {
        for (struct xfer *x = t->head; x; x = x->next) {
            if (x->cancelled) {
                result_set(&res, LLM_ERR_CANCELLED, "cancelled");
                xfer_finish(t, x, &res);
                return true;
            }
        }
        t->dirty = false;
    }
    struct xfer *x = t->waiting; /* the soonest deadline */
    if (x && now_us >= x->first_byte_deadline) {
        result_set(&res, LLM_ERR_TIMEOUT, "no response within %lld ms (first byte)",
                   (long long)((x->first_byte_deadline - x->start_us) / 1000));
        xfer_finish(t, x, &res);
        return true;
    }
    return false;
}

static void sweep(struct transport *t)
{
    while (sweep_one(t, clock_mono_us())) {
    }
}

/* Milliseconds until the earliest of: max_wait_ms, libcurl's timer, a first-byte deadline. */
static int next_wait_ms(const struct transport *t, int max_wait_ms, int64_t now_us)
{
    int64_t wait = max_wait_ms;
    int64_t due = t->curl_due_us;
    const struct xfer *x = t->waiting; /* the soonest deadline */
    if (x && (due < 0 || x->first_byte_deadline < due))
        due = x->first_byte_deadline;
    if (due >= 0) {
        int64_t d = (due - now_us + 999) / 1000;
        if (d < wait)
            wait = d < 0 ? 0 : d;
    }
    return (int)wait;
}

static int curl_flags(uint32_t events)
{
    int flags = 0;
    if (events & EPOLLIN)
        flags |= CURL_CSELECT_IN;
    if (events & EPOLLOUT)
        flags |= CURL_CSELECT_OUT;
    if (events & (EPOLLERR | EPOLLHUP))
        flags |= CURL_CSELECT_ERR;
    return flags;
}

/* Should this wakeup linger (see LINGER_US)? evs: the n ready events. */
static bool linger_ok(const struct transport *t, const struct epoll_event *evs, int n)
{
    if (LINGER_US <= 0 || n <= 0 || n >= EPOLL_BATCH || t->unanswered > 0 ||
        t->active < LINGER_MIN_ACTIVE)
        return false;
    for (int i = 0; i < n; i++) {
        if (evs[i].data.fd == t->wakefd || evs[i].data.fd == t->watchfd)
            return false;
    }
    return true;
}

size_t transport_run(struct transport *t, int max_wait_ms)
{
    if (t->dirty)
        sweep(t);
    struct epoll_event evs[EPOLL_BATCH];
    int wait = next_wait_ms(t, max_wait_ms < 0 ? 0 : max_wait_ms, clock_mono_us());
    int n = epoll_wait(t->epfd, evs, EPOLL_BATCH, wait);
    if (linger_ok(t, evs, n)) {
        /* Wait on the wake fd alone: a post (a new request, a resume) ends the linger. */
        struct pollfd wake = {.fd = t->wakefd, .events = POLLIN};
        struct timespec ts = {0, LINGER_US * 1000L};
        ppoll(&wake, 1, &ts, NULL);
        n = epoll_wait(t->epfd, evs, EPOLL_BATCH, 0); /* level-triggered: the first ones too */
    }
    int running = 0;
    for (int i = 0; i < n; i++) {
        if (evs[i].data.fd == t->wakefd) {
            uint64_t v;
            ssize_t r = read(t->wakefd, &v, sizeof v);
            (void)r; /* EAGAIN: another read took it; either way it is reset */
            continue;
        }
        if (evs[i].data.fd == t->watchfd)
            continue; /* its owner runs it once this returns */
        curl_multi_socket_action(t->multi, evs[i].data.fd, curl_flags(evs[i].events), &running);
    }
    if (t->curl_due_us >= 0 && clock_mono_us() >= t->curl_due_us) {
        t->curl_due_us = -1;
        curl_multi_socket_action(t->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    }
    drain_done(t);
    sweep(t);
    return t->active;
}

bool transport_watch(struct transport *t, int fd, char *msg, size_t msglen)
{
    if (t->watchfd >= 0)
        epoll_ctl(t->epfd, EPOLL_CTL_DEL, t->watchfd, NULL); /* it may be closed already */
    t->watchfd = -1;
    if (fd < 0)
        return true;
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    if (epoll_ctl(t->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        snprintf(msg, msglen, "transport: cannot watch fd %d: %s", fd, strerror(errno));
        return false;
    }
    t->watchfd = fd;
    return true;
}

void transport_wakeup(struct transport *t)
{
    uint64_t one = 1;
    ssize_t r = write(t->wakefd, &one, sizeof one);
    (void)r; /* EAGAIN: the counter is saturated, so a wakeup is pending anyway */
}

size_t transport_active(const struct transport *t)
{
    return t->active;
}

/* ---- ops table ------------------------------------------------------------------------------ */

static uint64_t ops_start(void *self, struct http_request *req, const struct transport_timeouts *to,
                          const struct transport_callbacks *cb, void *ctx, char *msg, size_t msglen)
{
    return transport_start(self, req, to, cb, ctx, msg, msglen);
}

static void ops_cancel(void *self, uint64_t id)
{
    transport_cancel(self, id);
}

static void ops_resume(void *self, uint64_t id)
{
    transport_resume(self, id);
}

static size_t ops_run(void *self, int max_wait_ms)
{
    return transport_run(self, max_wait_ms);
}

static void ops_wakeup(void *self)
{
    transport_wakeup(self);
}

static bool ops_watch(void *self, int fd, char *msg, size_t msglen)
{
    return transport_watch(self, fd, msg, msglen);
}

static size_t ops_active(const void *self)
{
    return transport_active(self);
}

static void ops_free(void *self)
{
    transport_free(self);
}

const struct transport_ops transport_curl_ops = {ops_start,  ops_cancel, ops_resume, ops_run,
                                                 ops_wakeup, ops_watch,  ops_active, ops_free};
