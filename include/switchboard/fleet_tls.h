/*
 * fleet_tls.h - Redis over TLS (rediss://) for a hiredis that has none (Debian's 0.14).
 *
 * OpenSSL makes the TLS connection (certificate and host name verification on by default);
 * hiredis talks plain RESP over one end of a socketpair (redisConnectFd), and a pump thread
 * per connection copies bytes between the other end and the TLS connection (SSL_read /
 * SSL_write). Nothing of TLS or of the protocol is written here: OpenSSL does the one,
 * hiredis the other.
 *
 * Ownership: fleet_tls_new returns a context (an SSL_CTX) that the caller frees with
 * fleet_tls_free after every connection made from it was closed. fleet_tls_connect returns a
 * hiredis context and a pump; close them in that order: redisFree (the pump sees the
 * socketpair close and ends), then fleet_tls_pump_close (joins the pump thread, frees the
 * TLS connection).
 *
 * Threads: fleet_tls_new/free on any one thread; fleet_tls_connect and fleet_tls_pump_close
 * on the thread that owns the hiredis context; the pump thread touches only its own
 * connection. Messages never contain a password (none passes through here).
 */
#ifndef SWITCHBOARD_FLEET_TLS_H
#define SWITCHBOARD_FLEET_TLS_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>

struct fleet_tls_opts {
    const char *ca_file;       /* PEM CA bundle; NULL: the system's default verify paths */
    const char *cert_file;     /* client certificate (PEM), NULL: none */
    const char *key_file;      /* its private key (PEM), NULL: none */
    const char *server_name;   /* name to verify and send (SNI); NULL: the URL's host */
    bool insecure_skip_verify; /* no certificate check (logged loudly by the caller) */
};

struct fleet_tls;
struct fleet_tls_pump;

/* Loads the CA, the client certificate and key. NULL with msg on an unreadable or mismatched
 * file (the message names the file, never its contents). */
struct fleet_tls *fleet_tls_new(const struct fleet_tls_opts *o, char *msg, size_t msglen);
void fleet_tls_free(struct fleet_tls *t); /* NULL-safe */

/* Connects to host:port (TCP, then the TLS handshake, each bounded by timeout_ms), verifies
 * the server's certificate and name unless told not to, and returns a blocking hiredis
 * context over the bridge with *pump set. NULL with err on failure (*pump NULL). */
redisContext *fleet_tls_connect(struct fleet_tls *t, const char *host, int port, int timeout_ms,
                                struct fleet_tls_pump **pump, char *err, size_t errlen);
/* After redisFree of the context it came with: ends the pump thread, frees the connection.
 * NULL-safe. */
void fleet_tls_pump_close(struct fleet_tls_pump *p);

#endif
