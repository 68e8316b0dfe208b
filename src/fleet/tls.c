/*
 * tls.c - rediss:// for hiredis 0.14 (fleet_tls.h): OpenSSL's TLS connection bridged to a
 * hiredis context over a socketpair by a pump thread per connection.
 *
 * The pump owns its TLS connection alone (one thread calls SSL_read and SSL_write, so no
 * locking is needed); the socketpair's other end belongs to hiredis on the caller's thread.
 * Either side closing ends the other: the server closing (or an error) makes the pump close
 * its end, so hiredis reads EOF; hiredis closing (redisFree) makes the pump's poll see HUP.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "switchboard/fleet_tls.h"
#include "switchboard/util.h"

#define PUMP_BUF     16384
#define PUMP_IO_MS   5000 /* a write to the server waits this long at most */
#define SERVER_NAMEL 256

struct fleet_tls {
    SSL_CTX *ctx;
    char server_name[SERVER_NAMEL]; /* "" = the host connected to */
    bool verify;
};

struct fleet_tls_pump {
    pthread_t thread;
    SSL *ssl;
    int tcp;  /* the server */
    int side; /* the pump's end of the socketpair */
};

/* OpenSSL's first queued error as text (file names, reasons; never key material). */
static void ssl_error(const char *what, char *msg, size_t msglen)
{
    unsigned long e = ERR_get_error();
    char reason[160] = "unknown error";
    if (e)
        ERR_error_string_n(e, reason, sizeof reason);
    ERR_clear_error();
    snprintf(msg, msglen, "%s: %s", what, reason);
}

struct fleet_tls *fleet_tls_new(const struct fleet_tls_opts *o, char *msg, size_t msglen)
{
    struct fleet_tls *t = xcalloc(1, sizeof *t);
    t->verify = !o->insecure_skip_verify;
    str_copy(t->server_name, sizeof t->server_name, o->server_name ? o->server_name : "");
    t->ctx = SSL_CTX_new(TLS_client_method());
    bool ok = t->ctx && SSL_CTX_set_min_proto_version(t->ctx, TLS1_2_VERSION);
    if (!ok)
        ssl_error("fleet tls: cannot make a TLS context", msg, msglen);
    if (ok && (o->ca_file ? !SSL_CTX_load_verify_locations(t->ctx, o->ca_file, NULL)
                          : !SSL_CTX_set_default_verify_paths(t->ctx))) {
        ssl_error(o->ca_file ? "fleet.tls_ca_file: cannot load" : "fleet tls: no CA paths", msg,
                  msglen);
        ok = false;
    }
    if (ok && o->cert_file && SSL_CTX_use_certificate_chain_file(t->ctx, o->cert_file) != 1) {
        ssl_error("fleet.tls_cert_file: cannot load", msg, msglen);
        ok = false;
    }
    if (ok && o->key_file &&
        (SSL_CTX_use_PrivateKey_file(t->ctx, o->key_file, SSL_FILETYPE_PEM) != 1 ||
         SSL_CTX_check_private_key(t->ctx) != 1)) {
        ssl_error("fleet.tls_key_file: cannot load, or it does not match tls_cert_file", msg,
                  msglen);
        ok = false;
    }
    if (ok)
        SSL_CTX_set_verify(t->ctx, t->verify ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
    if (!ok) {
        fleet_tls_free(t);
        t = NULL;
    }
    return t;
}

void fleet_tls_free(struct fleet_tls *t)
{
    if (!t)
        return;
    SSL_CTX_free(t->ctx);
    free(t);
}

/* ---- connecting --------------------------------------------------------------------------- */

static void set_io_timeout(int fd, int ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

/* A connected TCP socket (blocking, with I/O timeouts), or -1 with err. */
static int tcp_connect(const char *host, int port, int timeout_ms, char *err, size_t errlen)
{
    char ps[8];
    snprintf(ps, sizeof ps, "%d", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int rc = getaddrinfo(host, ps, &hints, &res);
    if (rc != 0) {
        snprintf(err, errlen, "cannot resolve %s: %s", host, gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    snprintf(err, errlen, "cannot connect to %s:%d", host, port);
    for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, a->ai_protocol);
        if (fd < 0)
            continue;
        int r = connect(fd, a->ai_addr, a->ai_addrlen);
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int soerr = r == 0 ? 0 : errno;
        socklen_t sl = sizeof soerr;
        if (r != 0 && errno == EINPROGRESS && poll(&p, 1, timeout_ms) == 1)
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl);
        if (soerr != 0 || (r != 0 && errno != EINPROGRESS)) {
            snprintf(err, errlen, "cannot connect to %s:%d: %s", host, port,
                     strerror(soerr ? soerr : ETIMEDOUT));
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(res);
    if (fd >= 0) {
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
        set_io_timeout(fd, timeout_ms);
    }
    return fd;
}

/* The handshake with name checks (an IP literal is checked against the certificate's IP
 * addresses, anything else against its DNS names). NULL with err. */
static SSL *handshake(struct fleet_tls *t, int fd, const char *host, char *err, size_t errlen)
{
    const char *name = t->server_name[0] ? t->server_name : host;
    struct in6_addr a6;
    struct in_addr a4;
    bool is_ip = inet_pton(AF_INET, name, &a4) == 1 || inet_pton(AF_INET6, name, &a6) == 1;
    SSL *ssl = SSL_new(t->ctx);
    bool ok = ssl && SSL_set_fd(ssl, fd) == 1;
    if (ok && !is_ip)
        ok = SSL_set_tlsext_host_name(ssl, name) == 1;
    if (ok && t->verify) {
        X509_VERIFY_PARAM *vp = SSL_get0_param(ssl);
        ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, name) == 1
                   : X509_VERIFY_PARAM_set1_host(vp, name, 0) == 1;
    }
    if (ok && SSL_connect(ssl) == 1)
        return ssl;
    long vr = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
    if (vr != X509_V_OK)
        snprintf(err, errlen, "tls: certificate of %s refused: %s", name,
                 X509_verify_cert_error_string(vr));
    else
        ssl_error("tls handshake failed", err, errlen);
    ERR_clear_error();
    SSL_free(ssl);
    return NULL;
}

/* ---- the pump ----------------------------------------------------------------------------- */

static bool send_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* After an SSL call on the non-blocking socket returned r: true when it may be retried once
 * the socket is ready (waits for that, up to PUMP_IO_MS), false when the connection ended. */
static bool ssl_wait(struct fleet_tls_pump *p, int r)
{
    int e = SSL_get_error(p->ssl, r);
    if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
        return false;
    struct pollfd pf = {.fd = p->tcp, .events = e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT};
    return poll(&pf, 1, PUMP_IO_MS) == 1;
}

/* Server to hiredis: whatever application data OpenSSL can decrypt now (a record may also
 * carry only a session ticket: then nothing). False when the connection ended. */
static bool pump_down(struct fleet_tls_pump *p, char *buf)
{
    for (;;) {
        int n = SSL_read(p->ssl, buf, PUMP_BUF);
        if (n <= 0)
            return SSL_get_error(p->ssl, n) == SSL_ERROR_WANT_READ;
        if (!send_all(p->side, buf, (size_t)n))
            return false;
    }
}

/* hiredis to the server: all of it, waiting for the socket when OpenSSL asks to. */
static bool pump_up(struct fleet_tls_pump *p, char *buf)
{
    ssize_t n = read(p->side, buf, PUMP_BUF);
    if (n < 0 && errno == EINTR)
        return true;
    if (n <= 0)
        return false;
    int w;
    while ((w = SSL_write(p->ssl, buf, (int)n)) <= 0) {
        if (!ssl_wait(p, w))
            return false;
    }
    return true;
}

static void *pump_main(void *arg)
{
    struct fleet_tls_pump *p = arg;
    sigset_t pipe_only;
    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_only, NULL);
    char *buf = xmalloc(PUMP_BUF);
    bool ok = true;
    while (ok) {
        struct pollfd pf[2] = {{.fd = p->side, .events = POLLIN}, {.fd = p->tcp, .events = POLLIN}};
        if (poll(pf, 2, -1) < 0) {
            ok = errno == EINTR;
            continue;
        }
        if (pf[1].revents)
            ok = pump_down(p, buf);
        if (ok && pf[0].revents)
            ok = pump_up(p, buf);
    }
    free(buf);
    shutdown(p->side, SHUT_RDWR); /* hiredis reads EOF now, not at pump_close */
    return NULL;
}

redisContext *fleet_tls_connect(struct fleet_tls *t, const char *host, int port, int timeout_ms,
                                struct fleet_tls_pump **pump, char *err, size_t errlen)
{
    *pump = NULL;
    int sv[2] = {-1, -1};
    SSL *ssl = NULL;
    redisContext *c = NULL;
    int fd = tcp_connect(host, port, timeout_ms, err, errlen);
    if (fd >= 0)
        ssl = handshake(t, fd, host, err, errlen);
    if (ssl && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0)
        snprintf(err, errlen, "socketpair: %s", strerror(errno));
    if (sv[0] >= 0) {
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); /* the pump polls it */
        struct fleet_tls_pump *p = xcalloc(1, sizeof *p);
        *p = (struct fleet_tls_pump){.ssl = ssl, .tcp = fd, .side = sv[1]};
        if (pthread_create(&p->thread, NULL, pump_main, p) == 0) {
            *pump = p;
            c = redisConnectFd(sv[0]);
        } else {
            snprintf(err, errlen, "cannot start the tls pump thread");
            free(p);
        }
    }
    if (*pump && (!c || c->err)) {
        snprintf(err, errlen, "%s", c ? c->errstr : "out of memory");
        if (c)
            redisFree(c); /* closes sv[0]: the pump ends */
        else
            close(sv[0]);
        fleet_tls_pump_close(*pump);
        *pump = NULL;
        return NULL;
    }
    if (!*pump) {
        if (sv[0] >= 0) {
            close(sv[0]);
            close(sv[1]);
        }
        SSL_free(ssl);
        if (fd >= 0)
            close(fd);
    }
    return c;
}

void fleet_tls_pump_close(struct fleet_tls_pump *p)
{
    if (!p)
        return;
    pthread_join(p->thread, NULL);
    SSL_free(p->ssl);
    close(p->tcp);
    close(p->side);
    free(p);
}
