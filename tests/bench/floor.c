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
 *
 * Usage: floor --mode tpc|relay --upstream URL --content-type TYPE [--port-file FILE]
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
#include <string.h>
#include <sys/socket.h>
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
    bool sent;        /* handed to the upstream */
    bool done;        /* answer in (relay) */
    struct req *next; /* relay queues */
    CURL *easy;       /* relay: the transfer */
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

/* The shape's handler, called once the whole body is in (and again after a resume). */
struct shape {
    enum MHD_Result (*handle)(struct MHD_Connection *conn, struct req *r);
};
static struct shape tpc_shape = {handle_tpc}, relay_shape = {handle_relay};

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
    if (r) {
        free(r->in.p);
        free(r->out.p);
        free(r);
    }
    *con_cls = NULL;
}

/* 127.0.0.1 on an ephemeral port; returns the socket and sets *port, or -1. */
static int listen_loopback(unsigned *port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
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
    bool tpc = mode && !strcmp(mode, "tpc");
    if (!mode || (!tpc && strcmp(mode, "relay")) || !upstream || !content_type) {
        fprintf(stderr, "usage: floor --mode tpc|relay --upstream URL --content-type TYPE "
                        "[--port-file FILE]\n");
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
    int fd = listen_loopback(&port);
    pthread_t th;
    struct MHD_Daemon *d = NULL;
    if (fd >= 0)
        d = tpc ? start_tpc(fd) : start_relay(fd, &th);
    int rc = 0;
    if (!d || !req_headers) {
        fprintf(stderr, "floor: cannot start on 127.0.0.1\n");
        rc = 1;
    } else if (!write_port(port_file, port)) {
        fprintf(stderr, "floor: cannot write the port\n");
        rc = 1;
    } else {
        int sig;
        sigwait(&stop, &sig);
    }
    if (tpc && d)
        MHD_stop_daemon(d);
    else if (!tpc && multi)
        stop_relay(d, th);
    if (fd >= 0 && !d)
        close(fd);
    curl_slist_free_all(req_headers);
    curl_global_cleanup();
    return rc;
}
