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
    enum MHD_Result ret = MHD_queue_response(conn, r->status == 200 ? 200 : 502, resp);
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

static _Thread_local CURL *thread_easy;

static enum MHD_Result on_request_tpc(void *cls, struct MHD_Connection *conn, const char *url,
                                      const char *method, const char *version, const char *data,
                                      size_t *size, void **con_cls)
{
    (void)cls, (void)url, (void)method, (void)version;
    struct req *r = *con_cls;
    if (!r) {
        *con_cls = r = calloc(1, sizeof *r);
        return r ? MHD_YES : MHD_NO;
    }
    if (!read_body(r, data, size))
        return MHD_YES;
    if (!thread_easy)
        thread_easy = curl_easy_init();
    curl_easy_reset(thread_easy);
    easy_setup(thread_easy, r);
    r->status = 0;
    if (curl_easy_perform(thread_easy) == CURLE_OK)
        curl_easy_getinfo(thread_easy, CURLINFO_RESPONSE_CODE, &r->status);
    return answer(conn, r);
}

/* ---- relay: MHD pool -> one libcurl multi thread -> resume ------------------------------- */

static CURLM *multi;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct req *inbox;
static volatile sig_atomic_t stopping;

static void *curl_thread(void *arg)
{
    (void)arg;
    while (!stopping) {
        pthread_mutex_lock(&lock);
        struct req *todo = inbox;
        inbox = NULL;
        pthread_mutex_unlock(&lock);
        for (struct req *r = todo; r; r = r->next) {
            r->easy = curl_easy_init();
            easy_setup(r->easy, r);
            curl_multi_add_handle(multi, r->easy);
        }
        int running;
        curl_multi_perform(multi, &running);
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(multi, &left))) {
            if (m->msg != CURLMSG_DONE)
                continue;
            struct req *r;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&r);
            r->status = 0;
            if (m->data.result == CURLE_OK)
                curl_easy_getinfo(m->easy_handle, CURLINFO_RESPONSE_CODE, &r->status);
            curl_multi_remove_handle(multi, m->easy_handle);
            curl_easy_cleanup(m->easy_handle);
            r->easy = NULL;
            pthread_mutex_lock(&lock);
            r->done = true;
            pthread_mutex_unlock(&lock);
            MHD_resume_connection(r->conn);
        }
        curl_multi_poll(multi, NULL, 0, 1000, NULL);
    }
    return NULL;
}

static enum MHD_Result on_request_relay(void *cls, struct MHD_Connection *conn, const char *url,
                                        const char *method, const char *version, const char *data,
                                        size_t *size, void **con_cls)
{
    (void)cls, (void)url, (void)method, (void)version;
    struct req *r = *con_cls;
    if (!r) {
        *con_cls = r = calloc(1, sizeof *r);
        return r ? MHD_YES : MHD_NO;
    }
    if (!read_body(r, data, size))
        return MHD_YES;
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
        r->next = inbox;
        inbox = r;
        pthread_mutex_unlock(&lock);
        curl_multi_wakeup(multi);
    }
    return MHD_YES;
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

static void on_signal(int sig)
{
    (void)sig;
    stopping = 1;
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
    curl_global_init(CURL_GLOBAL_DEFAULT);
    req_headers = curl_slist_append(NULL, "Content-Type: application/json");
    req_headers = curl_slist_append(req_headers, "Expect:");
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);

    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) || listen(fd, 1024) ||
        getsockname(fd, (struct sockaddr *)&sa, &sl)) {
        perror("floor: listen");
        return 1;
    }
    pthread_t th;
    struct MHD_Daemon *d;
    if (tpc) {
        d = MHD_start_daemon(MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD, 0,
                             NULL, NULL, on_request_tpc, NULL, MHD_OPTION_LISTEN_SOCKET, fd,
                             MHD_OPTION_CONNECTION_LIMIT, 2000u, MHD_OPTION_NOTIFY_COMPLETED,
                             on_completed, NULL, MHD_OPTION_END);
    } else {
        multi = curl_multi_init();
        curl_multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, 0L);
        pthread_create(&th, NULL, curl_thread, NULL);
        d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL |
                                 MHD_ALLOW_SUSPEND_RESUME,
                             0, NULL, NULL, on_request_relay, NULL, MHD_OPTION_LISTEN_SOCKET, fd,
                             MHD_OPTION_THREAD_POOL_SIZE, 2u, MHD_OPTION_CONNECTION_LIMIT, 2000u,
                             MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_END);
    }
    if (!d) {
        fprintf(stderr, "floor: cannot start the HTTP server\n");
        return 1;
    }
    if (port_file) {
        FILE *f = fopen(port_file, "w");
        if (f) {
            fprintf(f, "%u\n", ntohs(sa.sin_port));
            fclose(f);
        }
    } else {
        printf("%u\n", ntohs(sa.sin_port));
        fflush(stdout);
    }
    while (!stopping)
        pause();
    MHD_stop_daemon(d);
    if (!tpc) {
        curl_multi_wakeup(multi);
        pthread_join(th, NULL);
        curl_multi_cleanup(multi);
    }
    curl_slist_free_all(req_headers);
    curl_global_cleanup();
    return 0;
}
