/*
 * transport.h - HTTP transfers over one libcurl multi handle.
 *
 * Threads: a struct transport and every transfer in it belong to one owner thread (the
 * router thread; `ask` uses its own). Only transport_wakeup() may be called from other
 * threads (it is curl_multi_wakeup). Callbacks run on the owner thread, inside
 * transport_run().
 *
 * Each transfer gets exactly one on_done call, also when cancelled. transport_cancel() is
 * deferred: safe to call from inside any callback (even the transfer's own); the transfer's
 * on_done(CANCELLED) then runs from the next transport_run(), and no on_data/on_header
 * follows the cancel.
 *
 * Timeouts per transfer: connect (CURLOPT_CONNECTTIMEOUT_MS), first byte (no response
 * headers by then: TIMEOUT), total (CURLOPT_TIMEOUT_MS). Keep-alive connections are reused
 * across transfers; CURLOPT_NOSIGNAL is set; proxies from the environment are ignored for
 * loopback.
 */
#ifndef SWITCHBOARD_TRANSPORT_H
#define SWITCHBOARD_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "switchboard/llm.h"
#include "switchboard/provider.h"

struct transport;

struct transport_timeouts {
    int64_t connect_ms;    /* 0 = libcurl default */
    int64_t first_byte_ms; /* 0 = none */
    int64_t total_ms;      /* 0 = none */
};

struct transport_result {
    enum llm_errclass err; /* NONE, DNS, CONNECT, TLS, TIMEOUT, CANCELLED, BAD_RESPONSE
                              (aborted by on_data), TRUNCATED (connection closed after the
                              status, before the body ended), INTERNAL */
    long status;           /* HTTP status, 0 when none arrived */
    char message[256];     /* human text for err; never holds request headers */
    int64_t first_byte_us; /* from start to the response headers; -1 when none */
    int64_t total_us;      /* from start to done */
};

#define TRANSPORT_DATA_PAUSE 2 /* on_data: not now (libcurl's CURL_WRITEFUNC_PAUSE) */

struct transport_callbacks {
    /* The final status (after 1xx), before any header of that response. */
    void (*on_status)(void *ctx, long status);
    /* One response header, name and value trimmed. */
    void (*on_header)(void *ctx, const char *name, const char *value);
    /* Body bytes; return 0 when taken, TRANSPORT_DATA_PAUSE to leave them: the transfer
     * pauses (reads nothing more) and the same bytes come again after transport_resume;
     * any other non-zero aborts the transfer (on_done then says BAD_RESPONSE unless the
     * transfer was cancelled). */
    int (*on_data)(void *ctx, const char *bytes, size_t len);
    /* Exactly once. After it returns the transport forgets ctx. */
    void (*on_done)(void *ctx, const struct transport_result *res);
};

/* NULL on failure (curl could not initialise); msg says why. */
struct transport *transport_new(char *msg, size_t msglen);
/* Cancels (on_done CANCELLED) every transfer still running, then frees. NULL-safe. */
void transport_free(struct transport *t);

/* Starts a transfer. It takes req->body (req->body is then NULL; the transfer frees it when it
 * ends, so a big body is never copied) and copies everything else it needs from req; the
 * caller still cleans req up. Returns its id (> 0), or 0 with msg on failure (then no callback
 * will run; the body may have been taken and freed). cb is copied; ctx must live until
 * on_done. */
uint64_t transport_start(struct transport *t, struct http_request *req,
                         const struct transport_timeouts *to, const struct transport_callbacks *cb,
                         void *ctx, char *msg, size_t msglen);
/* Deferred cancel; unknown or finished ids are ignored. */
void transport_cancel(struct transport *t, uint64_t id);
/* Reads again from a transfer whose on_data paused it, first delivering the bytes it left
 * (possibly before this returns). Owner thread, outside the transfer's own callbacks;
 * unknown, finished, cancelled or unpaused ids are ignored. */
void transport_resume(struct transport *t, uint64_t id);

/* Waits up to max_wait_ms for socket activity or a wakeup, moves transfers along and runs
 * callbacks. Returns the number of transfers still running. */
size_t transport_run(struct transport *t, int max_wait_ms);
/* Watches one more fd (not a transfer's) in the transport's wait: its readiness to read ends
 * the wait in transport_run, which neither reads it nor hands it to libcurl (whoever owns the
 * fd drains it after transport_run returns). One at a time: a second call replaces the first;
 * fd < 0 stops watching. Level-triggered: an fd left readable makes every wait return at once.
 * Owner thread (or before it runs the transport). False with msg when epoll refused the fd. */
bool transport_watch(struct transport *t, int fd, char *msg, size_t msglen);
/* Any thread: makes a blocked transport_run return early. */
void transport_wakeup(struct transport *t);
size_t transport_active(const struct transport *t);

/*
 * The router reaches its transport only through this table, so tests can drive the router
 * loop with a scripted fake (tests/unit/support_fake.c) and a fake clock. Each entry has the
 * meaning of the transport_* function of the same name; `self` is the transport instance.
 */
struct transport_ops {
    uint64_t (*start)(void *self, struct http_request *req, const struct transport_timeouts *to,
                      const struct transport_callbacks *cb, void *ctx, char *msg, size_t msglen);
    void (*cancel)(void *self, uint64_t id);
    void (*resume)(void *self, uint64_t id);
    size_t (*run)(void *self, int max_wait_ms);
    void (*wakeup)(void *self); /* any thread */
    bool (*watch)(void *self, int fd, char *msg, size_t msglen);
    size_t (*active)(const void *self);
    void (*free)(void *self);
};

/* The libcurl transport above, as an ops table (self is a struct transport *). */
extern const struct transport_ops transport_curl_ops;

#endif
