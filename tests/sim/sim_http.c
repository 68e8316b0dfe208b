/*
 * sim_http.c - the two libmicrohttpd daemons (main port: providers + /_sim/..., control port:
 * /_sim/... only), request intake with a body cap, routing by path, and the faults that act
 * before a request is parsed (outage, hang, first-byte delay, auth, rate limit, error rate).
 *
 * Threads: daemons are started and stopped by the main thread only (sim_main.c's supervisor).
 * Handlers run in MHD's per-connection threads; they copy the behaviour under s->lock when a
 * request arrives and never hold the lock while sleeping or calling MHD/cJSON.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "switchboard/log.h"
#include "sim.h"

#define WAIT_SLICE_MS      20
#define STOP_GRACE_MS      2000 /* in-flight requests get this long when the port closes */
#define CONNECTION_TIMEOUT 120  /* seconds an idle connection may stay open */

/* Per-request state, MHD's con_cls. */
struct sim_conn {
    bool is_main;
    bool counted; /* counted in main_in_flight */
    unsigned epoch;
    struct buf body;
    bool too_big;
};

static atomic_uint_fast64_t nonce_counter;

uint64_t sim_nonce(void)
{
    uint64_t n = atomic_fetch_add(&nonce_counter, 1) + 1;
    return n * 0x9e3779b97f4a7c15ULL ^ (uint64_t)clock_wall_ms();
}

void sim_server_wake(struct sim_server *s)
{
    char c = 1;
    ssize_t w = write(s->wake_fd[1], &c, 1);
    (void)w; /* a full pipe already means "wake up" */
}

void sim_server_reseed_locked(struct sim_server *s)
{
    if (s->behavior.has_seed)
        s->rng = (uint64_t)s->behavior.seed;
    else
        s->rng = (uint64_t)clock_mono_us() ^ ((uint64_t)getpid() << 32);
}

double sim_server_draw(struct sim_server *s)
{
    pthread_mutex_lock(&s->lock);
    s->rng = s->rng * 6364136223846793005ULL + 1442695040888963407ULL;
    uint64_t x = s->rng;
    pthread_mutex_unlock(&s->lock);
    x ^= x >> 29;
    return (double)(x >> 11) * (1.0 / 9007199254740992.0);
}

/* ---- request helpers -------------------------------------------------------------------- */

const char *sim_req_header(const struct sim_request *rq, const char *name)
{
    return MHD_lookup_connection_value(rq->conn, MHD_HEADER_KIND, name);
}

const char *sim_req_query(const struct sim_request *rq, const char *name)
{
    return MHD_lookup_connection_value(rq->conn, MHD_GET_ARGUMENT_KIND, name);
}

bool sim_key_ok(const struct sim_request *rq, const char *presented)
{
    if (rq->srv->cfg.no_auth)
        return true;
    const char *want = rq->srv->cfg.key;
    if (!presented || strlen(presented) != strlen(want))
        return false;
    unsigned char diff = 0; /* constant time over the length */
    for (size_t i = 0; want[i]; i++)
        diff |= (unsigned char)(want[i] ^ presented[i]);
    return diff == 0;
}

static bool req_interrupted(const struct sim_request *rq)
{
    if (atomic_load(&rq->srv->stopping))
        return true;
    return rq->is_main && atomic_load(&rq->srv->main_epoch) != rq->epoch;
}

/* Whether the client closed its end (checked without consuming anything). */
static bool client_gone(int fd, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN | POLLRDHUP};
    int n = poll(&p, 1, timeout_ms);
    if (n <= 0)
        return false;
    if (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL))
        return true;
    char c;
    ssize_t k = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (k == 0)
        return true;
    clock_sleep_ms(timeout_ms); /* pipelined bytes are waiting: do not spin on them */
    return false;
}

bool sim_req_wait(const struct sim_request *rq, long ms)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(rq->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    int fd = ci ? ci->connect_fd : -1;
    int64_t end = ms < 0 ? INT64_MAX : clock_mono_ms() + ms;
    for (;;) {
        if (req_interrupted(rq))
            return false;
        int64_t now = clock_mono_ms();
        if (now >= end)
            return true;
        int slice = end - now < WAIT_SLICE_MS ? (int)(end - now) : WAIT_SLICE_MS;
        if (fd >= 0) {
            if (client_gone(fd, slice))
                return false;
        } else {
            clock_sleep_ms(slice);
        }
    }
}

/* ---- provider requests ------------------------------------------------------------------ */

static const struct sim_format *route(const struct sim_request *rq)
{
    const char *p = rq->path;
    if (str_has_prefix(p, "/v1beta/"))
        return &sim_gemini;
    if (str_eq(p, "/v1/messages") || str_has_prefix(p, "/v1/messages/"))
        return &sim_anthropic;
    if (str_eq(p, "/v1/models") || str_has_prefix(p, "/v1/models/")) {
        if (sim_req_header(rq, "anthropic-version") || sim_req_header(rq, "x-api-key"))
            return &sim_anthropic;
    }
    return &sim_openai;
}

static int pick_error_status(struct sim_server *s, const struct sim_behavior *b)
{
    if (b->n_error_statuses == 0)
        return 500;
    double d = sim_server_draw(s);
    size_t i = (size_t)(d * (double)b->n_error_statuses);
    return b->error_statuses[i < b->n_error_statuses ? i : b->n_error_statuses - 1];
}

/* Fills r, or leaves r->status 0 when the request must get no answer at all. */
static void serve_provider(const struct sim_request *rq, struct sim_reply *r, bool too_big)
{
    const struct sim_format *f = route(rq);
    const struct sim_behavior *b = &rq->beh;
    bool auth = f->auth_ok(rq);
    sim_stats_note_request(rq->srv, rq, auth);
    if (too_big) {
        f->error(r, 413, "request_too_large", "Request body too large.");
        return;
    }
    switch (b->outage) {
    case SIM_OUTAGE_503:
        f->error(r, 503, NULL, NULL);
        return;
    case SIM_OUTAGE_OVERLOADED:
        f->error(r, f == &sim_anthropic ? 529 : 503, NULL, NULL);
        return;
    case SIM_OUTAGE_NONE:
    case SIM_OUTAGE_REFUSE:
        break;
    }
    if (b->hang) {
        sim_req_wait(rq, -1);
        return;
    }
    if (b->first_byte_delay_ms > 0 && !sim_req_wait(rq, b->first_byte_delay_ms))
        return;
    if (!auth) {
        f->error(r, 401, "invalid_api_key", NULL);
        return;
    }
    if (b->rate_limit) {
        f->rate_limited(rq, r);
        long secs = (long)(b->rate_limit_retry_after_s + 0.999);
        if (b->wire != SIM_WIRE_RATELIMIT_RESETS && f != &sim_gemini)
            sim_reply_header(r, "Retry-After", "%ld", secs); /* Gemini says it in the body */
        return;
    }
    if (b->error_rate > 0 && sim_server_draw(rq->srv) < b->error_rate) {
        f->error(r, pick_error_status(rq->srv, b), NULL, NULL);
        return;
    }
    f->serve(rq, r);
}

static void not_found(struct sim_reply *r)
{
    cJSON *doc = cJSON_CreateObject();
    cJSON *err = cJSON_AddObjectToObject(doc, "error");
    cJSON_AddStringToObject(err, "message", "unknown path on the control port");
    sim_reply_json(r, 404, doc);
}

static enum MHD_Result handle(struct sim_server *s, struct sim_conn *c, struct MHD_Connection *conn,
                              const char *url, const char *method)
{
    struct sim_request rq = {
        .srv = s,
        .conn = conn,
        .method = method,
        .path = url,
        .body = buf_str(&c->body),
        .body_len = c->body.len,
        .is_main = c->is_main,
        .epoch = c->epoch,
    };
    struct sim_reply r;
    bool provider = false;
    pthread_mutex_lock(&s->lock);
    rq.beh = s->behavior;
    pthread_mutex_unlock(&s->lock);
    sim_behavior_for_request(&rq.beh, str_eq(method, "GET"));
    sim_reply_init(&r);
    if (str_has_prefix(url, "/_sim/")) {
        sim_control_serve(&rq, &r);
    } else if (!c->is_main) {
        not_found(&r);
    } else {
        provider = true;
        serve_provider(&rq, &r, c->too_big);
    }
    if (r.status == 0) { /* hang ended or the client left: drop the connection */
        sim_reply_cleanup(&r);
        return MHD_NO;
    }
    int status = r.status;
    if (provider) {
        sim_stats_note_status(s, status);
        log_info("%s %s -> %d%s", method, url, status, r.is_stream ? " (stream)" : "");
    }
    enum MHD_Result ret = sim_reply_queue(&rq, &r, provider);
    sim_reply_cleanup(&r);
    return ret;
}

static enum MHD_Result on_request(struct sim_server *s, bool is_main, struct MHD_Connection *conn,
                                  const char *url, const char *method, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct sim_conn *c = *con_cls;
    if (!c) {
        c = xcalloc(1, sizeof *c);
        buf_init(&c->body);
        c->is_main = is_main;
        if (is_main) {
            pthread_mutex_lock(&s->lock);
            s->main_in_flight++;
            pthread_mutex_unlock(&s->lock);
            c->counted = true;
        }
        c->epoch = atomic_load(&s->main_epoch);
        *con_cls = c;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        if (!c->too_big && c->body.len + *upload_data_size <= SIM_BODY_MAX) {
            buf_append(&c->body, upload_data, *upload_data_size);
        } else {
            c->too_big = true;
            buf_cleanup(&c->body);
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    return handle(s, c, conn, url, method);
}

static enum MHD_Result on_main(void *cls, struct MHD_Connection *conn, const char *url,
                               const char *method, const char *version, const char *upload_data,
                               size_t *upload_data_size, void **con_cls)
{
    (void)version;
    return on_request(cls, true, conn, url, method, upload_data, upload_data_size, con_cls);
}

static enum MHD_Result on_control(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)version;
    return on_request(cls, false, conn, url, method, upload_data, upload_data_size, con_cls);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct sim_server *s = cls;
    struct sim_conn *c = *con_cls;
    (void)conn;
    (void)toe;
    if (!c)
        return;
    if (c->counted) {
        pthread_mutex_lock(&s->lock);
        s->main_in_flight--;
        pthread_cond_broadcast(&s->cond);
        pthread_mutex_unlock(&s->lock);
    }
    buf_cleanup(&c->body);
    free(c);
    *con_cls = NULL;
}

/* ---- daemons ---------------------------------------------------------------------------- */

static struct MHD_Daemon *start_daemon(struct sim_server *s, uint16_t *port,
                                       MHD_AccessHandlerCallback handler, char *err,
                                       size_t err_size)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_port = htons(*port);
    if (inet_pton(AF_INET, s->cfg.host, &sa.sin_addr) != 1) {
        snprintf(err, err_size, "bad host address '%s'", s->cfg.host);
        return NULL;
    }
    unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                         MHD_USE_ITC | MHD_USE_POLL;
    errno = 0;
    struct MHD_Daemon *d = MHD_start_daemon(
        flags, *port, NULL, NULL, handler, s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
        MHD_OPTION_LISTENING_ADDRESS_REUSE, (unsigned int)1, MHD_OPTION_NOTIFY_COMPLETED,
        on_completed, s, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned int)CONNECTION_TIMEOUT,
        MHD_OPTION_END);
    if (!d) {
        snprintf(err, err_size, "cannot listen on %s:%u: %s", s->cfg.host, (unsigned)*port,
                 errno ? strerror(errno) : "libmicrohttpd refused to start");
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    if (info && info->port)
        *port = info->port;
    return d;
}

/* Starts a daemon on *cfg_port and publishes the bound port (other threads read it). */
static struct MHD_Daemon *start_on(struct sim_server *s, uint16_t *cfg_port,
                                   MHD_AccessHandlerCallback handler, char *err, size_t err_size)
{
    uint16_t port = *cfg_port;
    struct MHD_Daemon *d = start_daemon(s, &port, handler, err, err_size);
    if (d && port != *cfg_port) {
        pthread_mutex_lock(&s->lock);
        *cfg_port = port;
        pthread_mutex_unlock(&s->lock);
    }
    return d;
}

bool sim_http_start_main(struct sim_server *s, char *err, size_t err_size)
{
    s->main_d = start_on(s, &s->cfg.port, on_main, err, err_size);
    return s->main_d != NULL;
}

bool sim_http_start_control(struct sim_server *s, char *err, size_t err_size)
{
    s->ctl_d = start_on(s, &s->cfg.control_port, on_control, err, err_size);
    return s->ctl_d != NULL;
}

void sim_http_stop_main(struct sim_server *s, uint64_t gen)
{
    if (!s->main_d)
        return;
    atomic_fetch_add(&s->main_epoch, 1);
    MHD_socket fd = MHD_quiesce_daemon(s->main_d);
    if (fd != MHD_INVALID_SOCKET)
        shutdown(fd, SHUT_RDWR); /* the port refuses from now on; closed after the stop */

    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += STOP_GRACE_MS / 1000;
    pthread_mutex_lock(&s->lock);
    s->main_listening = false;
    if (gen > s->applied_gen)
        s->applied_gen = gen;
    pthread_cond_broadcast(&s->cond);
    while (s->main_in_flight > 0 && !atomic_load(&s->stopping)) {
        if (pthread_cond_timedwait(&s->cond, &s->lock, &deadline) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&s->lock);

    MHD_stop_daemon(s->main_d);
    s->main_d = NULL;
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
}

void sim_http_stop_control(struct sim_server *s)
{
    if (s->ctl_d)
        MHD_stop_daemon(s->ctl_d);
    s->ctl_d = NULL;
}
