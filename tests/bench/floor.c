/*
 * floor.c - the benchmark's "library floor": the least a proxy built from switchboard's two
 * HTTP libraries (libmicrohttpd in front, libcurl behind) can cost. It does nothing a proxy
 * could skip: no JSON parsing, no routing, no accounting, no ledger. The client's body is
 * POSTed unchanged to one fixed upstream URL and the upstream's answer goes back unchanged
 * (buffered whole, so an SSE answer leaves in one write: cheaper than streaming it).
 *
 * What it is for: switchboard's figures minus the floor's are what switchboard itself costs;
 * the floor against nginx's is what the libraries cost. Two shapes:
 *
 *   --mode tpc    MHD thread per connection; each connection thread sends its requests with
 *                 its own blocking libcurl easy handle (keep-alive to the upstream). No
 *                 hand-off between threads at all: the cheapest shape these libraries allow.
 *   --mode relay  switchboard's shape: MHD's epoll thread pool (2 threads) suspends the
 *                 connection and hands the request to one libcurl multi thread, which
 *                 resumes the connection when the answer is in (curl_multi_poll and
 *                 curl_multi_wakeup; a mutex-guarded queue each way).
 *   --mode loop   one thread runs both libraries on its own epoll set: MHD in external-loop
 *                 epoll mode (its epoll fd in the set, MHD_run when readable, MHD_get_timeout
 *                 for the wait) and a libcurl multi driven by curl_multi_socket_action
 *                 (CURLMOPT_SOCKETFUNCTION/TIMERFUNCTION on the same set). Suspend and resume
 *                 happen on that thread: no cross-thread wake-up at all.
 *   --mode loop2  two such threads, each with its own daemon and multi, on two listening
 *                 sockets sharing the port (SO_REUSEPORT: the kernel spreads connections).
 *
 * Usage: floor --mode tpc|relay|loop|loop2 --upstream URL --content-type TYPE
 *              [--port-file FILE]
 *   Listens on an ephemeral 127.0.0.1 port and writes it to FILE.
 */
#include <curl/curl.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define BODY_MAX (1024 * 1024)

struct bytes {
    char *p;
    size_t len, cap;
};

static bool bytes_add(struct bytes *b, const char *p, size_t n)
{
    if (b->len + n > BODY_MAX)
        return false;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 1024;
        while (cap < b->len + n)
            cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q)
            return false;
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    return true;
}

static const char *upstream;
static const char *content_type;
static struct curl_slist *req_headers;

/* One request in flight: the client's body, the upstream's answer. */
struct req {
    struct MHD_Connection *conn;
    struct bytes in, out;
    long status;
    bool sent;         /* handed to the upstream */
    bool done;         /* answer in (relay) */
    struct req *next;  /* relay queues; loop: its loop's list of transfers in flight */
    struct req *prev;  /* loop */
    CURL *easy;        /* relay, loop: the transfer */
    struct loop *loop; /* loop: the loop that owns the transfer */
};

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    return bytes_add(ud, p, size * n) ? size * n : 0;
}

static void easy_setup(CURL *e, struct req *r)
{
    curl_easy_setopt(e, CURLOPT_URL, upstream);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, req_headers);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->in.p ? r->in.p : "");
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)r->in.len);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &r->out);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PRIVATE, r);
}

static enum MHD_Result answer(struct MHD_Connection *conn, struct req *r)
{
    struct MHD_Response *resp;
    if (r->status == 200) {
        resp = MHD_create_response_from_buffer(r->out.len, r->out.p, MHD_RESPMEM_MUST_FREE);
        r->out.p = NULL;
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
    } else {
        resp = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    }
    unsigned status = r->status == 200 || r->status == 413 ? (unsigned)r->status : 502;
    enum MHD_Result ret = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return ret;
}

/* Accumulates the body; true once it is complete (the handler's last call). */
static bool read_body(struct req *r, const char *data, size_t *size)
{
    if (*size) {
        if (!bytes_add(&r->in, data, *size))
            r->status = 413;
        *size = 0;
        return false;
    }
    return true;
}

/* ---- tpc: one blocking easy handle per connection thread -------------------------------- */

/* Each connection thread's easy handle, cleaned up when the thread ends. */
static pthread_key_t easy_key;

static void easy_free(void *easy)
{
    curl_easy_cleanup(easy);
}

static enum MHD_Result handle_tpc(struct MHD_Connection *conn, struct req *r)
{
    CURL *easy = pthread_getspecific(easy_key);
    if (!easy) {
        if (!(easy = curl_easy_init()) || pthread_setspecific(easy_key, easy)) {
            curl_easy_cleanup(easy);
            return MHD_NO;
        }
    }
    curl_easy_reset(easy);
    easy_setup(easy, r);
    r->status = 0;
    if (curl_easy_perform(easy) == CURLE_OK)
        curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &r->status);
    return answer(conn, r);
}

/* ---- relay: MHD pool -> one libcurl multi thread -> resume ------------------------------- */

static CURLM *multi;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct req *inbox;
static _Atomic bool stopping;
static bool closing; /* under lock: no new request reaches the curl thread */
/* The transfers in flight (curl thread only), cleaned up at exit. */
static CURL **active;
static size_t n_active, cap_active;

static bool active_add(CURL *e)
{
    if (n_active == cap_active) {
        size_t cap = cap_active ? cap_active * 2 : 64;
        CURL **a = realloc(active, cap * sizeof *a);
        if (!a)
            return false;
        active = a;
        cap_active = cap;
    }
    active[n_active++] = e;
    return true;
}

static void active_remove(CURL *e)
{
    for (size_t i = 0; i < n_active; i++) {
        if (active[i] == e) {
            active[i] = active[--n_active];
            return;
        }
    }
}

/* Hands the answer back: the handler runs again once the connection is resumed. */
static void finish(struct req *r, long status)
{
    pthread_mutex_lock(&lock);
    r->status = status;
    r->done = true;
    pthread_mutex_unlock(&lock);
    MHD_resume_connection(r->conn);
}

static void start(struct req *r)
{
    CURL *e = curl_easy_init();
    if (!e || !active_add(e)) {
        curl_easy_cleanup(e);
        finish(r, 0);
        return;
    }
    r->easy = e;
    easy_setup(e, r);
    curl_multi_add_handle(multi, e);
}

static void refuse(struct req *r)
{
    finish(r, 0); /* a 502 */
}

/* Takes the queued requests (and, with close, lets no more in) and passes each to each(). */
static void drain_inbox(bool close, void (*each)(struct req *r))
{
    pthread_mutex_lock(&lock);
    struct req *todo = inbox;
    inbox = NULL;
    closing = closing || close;
    pthread_mutex_unlock(&lock);
    while (todo) {
        struct req *r = todo;
        todo = r->next;
        each(r);
    }
}

static void *curl_thread(void *arg)
{
    (void)arg;
    while (!stopping) {
        drain_inbox(false, start);
        int running;
        curl_multi_perform(multi, &running);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(multi, &left))) {
            if (m->msg != CURLMSG_DONE)
                continue;
            CURL *e = m->easy_handle;
            CURLcode rc = m->data.result;
            struct req *r;
            long status = 0;
            curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&r);
            if (rc == CURLE_OK)
                curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
            curl_multi_remove_handle(multi, e);
            active_remove(e);
            curl_easy_cleanup(e);
            r->easy = NULL;
            finish(r, status);
        }
        curl_multi_poll(multi, NULL, 0, 1000, NULL);
    }
    return NULL;
}

static enum MHD_Result handle_relay(struct MHD_Connection *conn, struct req *r)
{
    pthread_mutex_lock(&lock);
    bool done = r->done;
    pthread_mutex_unlock(&lock);
    if (done)
        return answer(conn, r);
    if (!r->sent) {
        /* Suspended before the curl thread can see it: it may resume at once. */
        MHD_suspend_connection(conn);
        r->sent = true;
        r->conn = conn;
        pthread_mutex_lock(&lock);
        bool refuse = closing;
        if (refuse) {
            r->done = true; /* status 0: a 502 */
        } else {
            r->next = inbox;
            inbox = r;
        }
        pthread_mutex_unlock(&lock);
        if (refuse)
            MHD_resume_connection(conn);
        else
            curl_multi_wakeup(multi);
    }
    return MHD_YES;
}

/* ---- loop: one thread, MHD and libcurl on one epoll set ---------------------------------- */

/* One loop; its thread owns all of it once started (the main thread only writes wake). */
struct loop {
    int ep;               /* the thread's epoll set: MHD's epoll fd, wake, libcurl's sockets */
    int wake;             /* eventfd: stop */
    int mhd_fd;           /* MHD's own epoll fd (in ep) */
    struct MHD_Daemon *d; /* external-loop epoll mode: driven by MHD_run on this thread */
    CURLM *multi;         /* driven by curl_multi_socket_action on this thread */
    long long deadline;   /* libcurl's timer, CLOCK_MONOTONIC ms; -1: none */
    struct req *active;   /* transfers in flight, linked by next/prev */
    pthread_t th;
    bool running;
};

/* The loop whose thread is running: MHD's handlers run inside its MHD_run. */
static _Thread_local struct loop *this_loop;

static long long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int loop_on_socket(CURL *e, curl_socket_t s, int what, void *ud, void *sockp)
{
    (void)e;
    struct loop *l = ud;
    if (what == CURL_POLL_REMOVE) {
        epoll_ctl(l->ep, EPOLL_CTL_DEL, s, NULL);
        return 0;
    }
    struct epoll_event ev = {.data.fd = s};
    ev.events = (what & CURL_POLL_IN ? EPOLLIN : 0) | (what & CURL_POLL_OUT ? EPOLLOUT : 0);
    int op = sockp ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
    if (epoll_ctl(l->ep, op, s, &ev))
        epoll_ctl(l->ep, op == EPOLL_CTL_ADD ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, s, &ev);
    curl_multi_assign(l->multi, s, l); /* marks the socket as in ep */
    return 0;
}

static int loop_on_timer(CURLM *m, long timeout_ms, void *ud)
{
    (void)m;
    struct loop *l = ud;
    l->deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
    return 0;
}

/* Takes r's transfer out of libcurl and frees it. */
static void loop_drop(struct req *r)
{
    struct loop *l = r->loop;
    curl_multi_remove_handle(l->multi, r->easy);
    curl_easy_cleanup(r->easy);
    r->easy = NULL;
    if (r->prev)
        r->prev->next = r->next;
    else
        l->active = r->next;
    if (r->next)
        r->next->prev = r->prev;
    r->next = r->prev = NULL;
}

/* The answer is in (or the transfer failed: status 0, a 502): resume, same thread. */
static void loop_end(struct req *r, long status)
{
    loop_drop(r);
    r->status = status;
    r->done = true;
    MHD_resume_connection(r->conn);
}

static enum MHD_Result handle_loop(struct MHD_Connection *conn, struct req *r)
{
    if (r->done || r->sent)
        return r->done ? answer(conn, r) : MHD_YES;
    struct loop *l = this_loop;
    r->sent = true;
    r->conn = conn;
    if (!(r->easy = curl_easy_init()))
        return answer(conn, r); /* status 0: a 502 */
    r->loop = l;
    easy_setup(r->easy, r);
    r->next = l->active;
    if (l->active)
        l->active->prev = r;
    l->active = r;
    if (curl_multi_add_handle(l->multi, r->easy) != CURLM_OK) {
        loop_drop(r);
        return answer(conn, r);
    }
    MHD_suspend_connection(conn);
    return MHD_YES;
}

/* The shape's handler, called once the whole body is in (and again after a resume). */
struct shape {
    enum MHD_Result (*handle)(struct MHD_Connection *conn, struct req *r);
};
static struct shape tpc_shape = {handle_tpc}, relay_shape = {handle_relay},
                    loop_shape = {handle_loop};

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *data,
                                  size_t *size, void **con_cls)
{
    (void)url, (void)method, (void)version;
    const struct shape *shape = cls;
    struct req *r = *con_cls;
    if (!r) {
        *con_cls = r = calloc(1, sizeof *r);
        return r ? MHD_YES : MHD_NO;
    }
    if (!read_body(r, data, size))
        return MHD_YES;
    if (r->status == 413)
        return answer(conn, r); /* too big to forward */
    return shape->handle(conn, r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode code)
{
    (void)cls, (void)conn, (void)code;
    struct req *r = *con_cls;
    if (r && r->loop && r->easy)
        loop_drop(r); /* the client went away first: cancel the transfer */
    if (r) {
        free(r->in.p);
        free(r->out.p);
        free(r);
    }
    *con_cls = NULL;
}

/* 127.0.0.1 on an ephemeral port; returns the socket and sets *port, or -1. */
static int listen_loopback(unsigned *port, bool share)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (share) /* loop2: each loop listens on its own socket bound to the same port */
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET,
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                             .sin_port = htons((uint16_t)*port)};
    socklen_t sl = sizeof sa;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) || listen(fd, 1024) ||
        getsockname(fd, (struct sockaddr *)&sa, &sl)) {
        close(fd);
        return -1;
    }
    *port = ntohs(sa.sin_port);
    return fd;
}

static bool write_port(const char *port_file, unsigned port)
{
    FILE *f = port_file ? fopen(port_file, "w") : stdout;
    if (!f)
        return false;
    bool ok = fprintf(f, "%u\n", port) > 0;
    if (port_file)
        ok = (fclose(f) == 0) && ok;
    else
        fflush(f);
    return ok;
}

static struct MHD_Daemon *start_tpc(int fd)
{
    if (pthread_key_create(&easy_key, easy_free))
        return NULL;
    return MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD, 0,
                            NULL, NULL, on_request, &tpc_shape, MHD_OPTION_LISTEN_SOCKET, fd,
                            MHD_OPTION_CONNECTION_LIMIT, 2000u, MHD_OPTION_NOTIFY_COMPLETED,
                            on_completed, NULL, MHD_OPTION_END);
}

static struct MHD_Daemon *start_relay(int fd, pthread_t *th)
{
    if (!(multi = curl_multi_init()))
        return NULL;
    if (pthread_create(th, NULL, curl_thread, NULL)) {
        curl_multi_cleanup(multi);
        multi = NULL;
        return NULL;
    }
    return MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
                                MHD_ALLOW_SUSPEND_RESUME,
                            0, NULL, NULL, on_request, &relay_shape, MHD_OPTION_LISTEN_SOCKET, fd,
                            MHD_OPTION_THREAD_POOL_SIZE, 2u, MHD_OPTION_CONNECTION_LIMIT, 2000u,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_END);
}

/* Runs libcurl's due timer and hands finished transfers back; true if any was resumed. */
static bool loop_curl(struct loop *l)
{
    int running;
    if (l->deadline >= 0 && now_ms() >= l->deadline) {
        l->deadline = -1;
        curl_multi_socket_action(l->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    }
    bool resumed = false;
    CURLMsg *m;
    int left;
    while ((m = curl_multi_info_read(l->multi, &left))) {
        if (m->msg != CURLMSG_DONE)
            continue;
        CURL *e = m->easy_handle;
        CURLcode rc = m->data.result;
        struct req *r;
        long status = 0;
        curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&r);
        if (rc == CURLE_OK)
            curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
        loop_end(r, status);
        resumed = true;
    }
    return resumed;
}

/* epoll_wait's timeout: the sooner of libcurl's timer and MHD's, at most 1 s. */
static int loop_wait_ms(struct loop *l)
{
    long long wait = -1;
    if (l->deadline >= 0)
        wait = l->deadline > now_ms() ? l->deadline - now_ms() : 0;
    MHD_UNSIGNED_LONG_LONG t;
    if (MHD_get_timeout(l->d, &t) == MHD_YES && (wait < 0 || (long long)t < wait))
        wait = (long long)t;
    return wait < 0 || wait > 1000 ? 1000 : (int)wait;
}

/* One turn: wait, feed libcurl its sockets, run MHD if it has work; false on stop. */
static bool loop_turn(struct loop *l)
{
    struct epoll_event ev[64];
    int n = epoll_wait(l->ep, ev, 64, loop_wait_ms(l));
    bool mhd = n == 0, stop = false;
    for (int i = 0; i < n; i++) {
        int fd = ev[i].data.fd, running;
        if (fd == l->wake) {
            stop = true;
        } else if (fd == l->mhd_fd) {
            mhd = true;
        } else {
            int how = (ev[i].events & EPOLLIN ? CURL_CSELECT_IN : 0) |
                      (ev[i].events & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
                      (ev[i].events & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);
            curl_multi_socket_action(l->multi, fd, how, &running);
        }
    }
    if (loop_curl(l) || mhd) {
        MHD_run(l->d); /* new requests add transfers: libcurl's timer is then due at once */
        if (loop_curl(l))
            MHD_run(l->d);
    }
    return !stop;
}

/* The loop's thread; at stop it answers what is in flight with a 502, lets MHD take the
 * resumed connections back, and stops the daemon itself (MHD's callbacks stay on this
 * thread). */
static void *loop_thread(void *arg)
{
    struct loop *l = arg;
    this_loop = l;
    while (loop_turn(l))
        ;
    while (l->active)
        loop_end(l->active, 0);
    MHD_run(l->d);
    MHD_stop_daemon(l->d);
    l->d = NULL;
    return NULL;
}

static bool epoll_add(int ep, int fd)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
    return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) == 0;
}

/* Sets up l on the listening socket fd (taken over, closed on failure) and starts it. */
static bool loop_start(struct loop *l, int fd)
{
    *l = (struct loop){.ep = epoll_create1(EPOLL_CLOEXEC),
                       .wake = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK),
                       .multi = curl_multi_init(),
                       .deadline = -1};
    l->d = MHD_start_daemon(MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME, 0, NULL, NULL, on_request,
                            &loop_shape, MHD_OPTION_LISTEN_SOCKET, fd, MHD_OPTION_CONNECTION_LIMIT,
                            2000u, MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_END);
    const union MHD_DaemonInfo *di =
        l->d ? MHD_get_daemon_info(l->d, MHD_DAEMON_INFO_EPOLL_FD) : NULL;
    if (!l->d)
        close(fd);
    if (di && l->ep >= 0 && l->wake >= 0 && l->multi) {
        l->mhd_fd = di->epoll_fd;
        curl_multi_setopt(l->multi, CURLMOPT_SOCKETFUNCTION, loop_on_socket);
        curl_multi_setopt(l->multi, CURLMOPT_SOCKETDATA, l);
        curl_multi_setopt(l->multi, CURLMOPT_TIMERFUNCTION, loop_on_timer);
        curl_multi_setopt(l->multi, CURLMOPT_TIMERDATA, l);
        l->running = epoll_add(l->ep, l->mhd_fd) && epoll_add(l->ep, l->wake) &&
                     pthread_create(&l->th, NULL, loop_thread, l) == 0;
    }
    return l->running;
}

/* Stops l's thread if it runs and frees what is left. */
static void loop_stop(struct loop *l)
{
    if (l->running && write(l->wake, &(uint64_t){1}, sizeof(uint64_t)) == sizeof(uint64_t))
        pthread_join(l->th, NULL);
    if (l->d) /* not started, or the wake could not be written */
        MHD_stop_daemon(l->d);
    curl_multi_cleanup(l->multi);
    if (l->ep >= 0)
        close(l->ep);
    if (l->wake >= 0)
        close(l->wake);
}

static struct loop loops[2];
static size_t n_loops; /* loops[0..n_loops) went through loop_start */

/* n loops on 127.0.0.1 (one listening socket each, all on one port when n > 1). */
static bool loops_start(size_t n, unsigned *port)
{
    bool ok = true;
    for (size_t i = 0; i < n && ok; i++) {
        int fd = listen_loopback(port, n > 1);
        ok = fd >= 0 && (n_loops++, loop_start(&loops[i], fd));
    }
    return ok;
}

static void loops_stop(void)
{
    for (size_t i = 0; i < n_loops; i++)
        loop_stop(&loops[i]);
}

/* The curl thread stops first (nothing drives a transfer after that); every request it had
 * or was about to get is answered 502 and its connection resumed, because MHD must not be
 * stopped with suspended connections; MHD gets a moment to take the resumed connections back,
 * then stops and frees the requests. */
static void stop_relay(struct MHD_Daemon *d, pthread_t th)
{
    stopping = true;
    curl_multi_wakeup(multi);
    pthread_join(th, NULL);
    drain_inbox(true, refuse);
    for (size_t i = 0; i < n_active; i++) {
        struct req *r;
        curl_easy_getinfo(active[i], CURLINFO_PRIVATE, (char **)&r);
        curl_multi_remove_handle(multi, active[i]);
        curl_easy_cleanup(active[i]);
        finish(r, 0);
    }
    free(active);
    if (d) {
        usleep(200 * 1000);
        MHD_stop_daemon(d);
    }
    curl_multi_cleanup(multi);
}

int main(int argc, char **argv)
{
    const char *mode = NULL, *port_file = NULL;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--mode"))
            mode = argv[i + 1];
        else if (!strcmp(argv[i], "--upstream"))
            upstream = argv[i + 1];
        else if (!strcmp(argv[i], "--content-type"))
            content_type = argv[i + 1];
        else if (!strcmp(argv[i], "--port-file"))
            port_file = argv[i + 1];
    }
    bool tpc = mode && !strcmp(mode, "tpc"), relay = mode && !strcmp(mode, "relay");
    size_t loop_n = !mode ? 0 : !strcmp(mode, "loop") ? 1 : !strcmp(mode, "loop2") ? 2 : 0;
    if ((!tpc && !relay && !loop_n) || !upstream || !content_type) {
        fprintf(stderr, "usage: floor --mode tpc|relay|loop|loop2 --upstream URL "
                        "--content-type TYPE [--port-file FILE]\n");
        return 2;
    }
    /* SIGINT/SIGTERM blocked in every thread (they inherit the mask) and taken by sigwait. */
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    req_headers = curl_slist_append(NULL, "Content-Type: application/json");
    req_headers = curl_slist_append(req_headers, "Expect:");

    unsigned port = 0;
    int fd = -1;
    pthread_t th;
    struct MHD_Daemon *d = NULL;
    bool up = false;
    if (loop_n) {
        up = loops_start(loop_n, &port);
    } else if ((fd = listen_loopback(&port, false)) >= 0) {
        d = tpc ? start_tpc(fd) : start_relay(fd, &th);
        up = d != NULL;
    }
    int rc = 0;
    if (!up || !req_headers) {
        fprintf(stderr, "floor: cannot start on 127.0.0.1\n");
        rc = 1;
    } else if (!write_port(port_file, port)) {
        fprintf(stderr, "floor: cannot write the port\n");
        rc = 1;
    } else {
        int sig;
        sigwait(&stop, &sig);
    }
    if (loop_n)
        loops_stop();
    else if (tpc && d)
        MHD_stop_daemon(d);
    else if (relay && multi)
        stop_relay(d, th);
    if (fd >= 0 && !d)
        close(fd);
    curl_slist_free_all(req_headers);
    curl_global_cleanup();
    return rc;
}
