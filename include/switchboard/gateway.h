/*
 * gateway.h - the OpenAI-compatible HTTP endpoint (libmicrohttpd): POST /v1/chat/completions
 * (streaming and not), GET /v1/models, /healthz, /readyz, /metrics and the admin API under
 * /admin/. Every chat call goes to the router; the gateway writes back what the call's sink
 * receives.
 *
 * Threads: libmicrohttpd owns the client connections. With gateway.threads 0
 * the gateway.listen server has no thread of its own: it runs on the router thread's event
 * loop (router_set_loop_hook), attached by gateway_start; with N >= 1 it runs on N internal
 * threads (absent: gateway_threads_resolve picks 0 or 2 by online cores), and gateway.admin_listen
 * always runs on one. The router thread calls the gateway's sinks. The gateway never owns router
 * state: it reads routes and targets from router snapshots. The functions below are for the thread
 * that owns the gateway and calls router_start/router_stop (main): call them in order new -> start
 * -> stop -> free, with router_start between new and start. A config reload (router_reload) does
 * not restart the listener; the gateway keeps the gateway section it copied at gateway_new.
 */
#ifndef SWITCHBOARD_GATEWAY_H
#define SWITCHBOARD_GATEWAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "switchboard/config.h"
#include "switchboard/router.h"
#include "switchboard/util.h"

struct gateway;

/*
 * Creates a gateway for cfg->gateway (listen address, limits, admin token: copied, so cfg
 * may be freed or handed to the router afterwards) in front of rt (borrowed: it must outlive
 * the gateway). Binds nothing yet. Returns NULL with msg on a bad listen address. Sets rt's
 * turn hook (router_set_turn_hook), so it comes before router_start.
 */
struct gateway *gateway_new(const struct config *cfg, struct router *rt, char *msg, size_t msglen);

/* Binds the listen address ("HOST:PORT"; port 0 picks an ephemeral port, see gateway_port)
 * and starts serving. SB_ERR_IO with msg when the address cannot be bound. */
enum sb_status gateway_start(struct gateway *gw, char *msg, size_t msglen);

/* The bound TCP port once started (useful with port 0); 0 before gateway_start. */
unsigned gateway_port(const struct gateway *gw);
/* gateway.threads as the gateway uses it (pure): configured when >= 0 (capped at 64); -1
 * (absent) = 0, the router's loop, with 2 or fewer online cores, else 2 MHD threads (also
 * when online is unknown, < 1). Any thread. */
int gateway_threads_resolve(long configured, long online);
/* The port of gateway.admin_listen once started; 0 when it is not configured. */
unsigned gateway_admin_port(const struct gateway *gw);

/* Client connections open now (keep-alive ones included); 0 before start. Any thread. */
long gateway_connections(struct gateway *gw);

/*
 * Begins a graceful stop: new chat calls get 503 "shutting_down" with Retry-After, /readyz
 * answers 503 and every answer carries "Connection: close", while calls in flight go on.
 * /healthz, /metrics and the admin API keep answering. Idempotent; main thread.
 */
void gateway_drain(struct gateway *gw);
/* Waits up to timeout_ms (0: just looks) until no chat call is in flight (the call done and
 * its answer handed to the client). true when idle. Main thread. */
bool gateway_wait_idle(struct gateway *gw, int64_t timeout_ms);
/* Chat calls in flight now (for log lines). Any thread. */
long gateway_in_flight(struct gateway *gw);

/*
 * Stops accepting connections, cancels every call in flight as a shutdown (streams end with
 * an error chunk, waiting calls get a 503, both saying "switchboard is shutting down"; the
 * ledger records 503), waits until the router is done with each of them (up to 5 s), lets
 * clients read their last bytes (up to 2 s), then closes all connections and joins the
 * server threads (or takes the server off the router's loop). Idempotent. Call it before
 * router_stop, so that the router finishes the cancelled calls; after router_stop it also
 * works (the router's stop ended the calls; this thread then runs the loop's server for the
 * last bytes). For a graceful stop call gateway_drain and gateway_wait_idle first.
 */
void gateway_stop(struct gateway *gw);

/* A config reload (SIGHUP): takes cfg's client keys (clients[]) and the tags its budgets
 * name (copied; cfg may be freed afterwards); the listener and limits keep the values of
 * gateway_new. Main thread; calls in flight are not affected. */
void gateway_reload(struct gateway *gw, const struct config *cfg);

/* Stops first if needed; NULL-safe. Sinks of calls the router never finished (only after a
 * stop that timed out, logged as an error) still point at the gateway: in that case free it
 * after router_stop. A router thread that did not give the loop's server back (stuck; logged)
 * keeps the gateway: it is then not freed. */
void gateway_free(struct gateway *gw);

#endif
