/*
 * internal.h - the fleet's private state, shared by fleet.c (the thread-safe surface:
 * counters, notices, status) and sync.c (the fleet thread: Redis connections and the
 * exchanges over them).
 *
 * Locks: one mutex, mu, guards the tables below it (counters, outbox, inbox, heartbeat,
 * status). It is held only for table updates, never across Redis I/O, so the router thread
 * never waits on the network. The fleet thread owns the Redis contexts alone.
 */
#ifndef SWITCHBOARD_FLEET_INTERNAL_H
#define SWITCHBOARD_FLEET_INTERNAL_H

#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdatomic.h>

#include "switchboard/fleet.h"
#include "switchboard/fleet_tls.h"

#define FLEET_PREFIX_MAX 64
#define FLEET_MAX_STORES 4

struct fleet_counter {
    bool used;
    bool watched;
    char key[FLEET_KEY_MAX]; /* with the prefix */
    int64_t ttl_s;
    int64_t remote;      /* last value Redis reported */
    int64_t pending;     /* added here, not sent yet */
    int64_t inflight;    /* sent, reply not read yet */
    int64_t contributed; /* acknowledged increments of this process: re-added to an empty Redis */
    int64_t touched_ms;  /* wall ms of the last add or get */
};

struct fleet_lease {
    bool used;
    char key[FLEET_KEY_MAX]; /* with the prefix */
    int64_t balance;         /* tokens leased to this instance, unspent */
    int64_t want;            /* > balance: the fleet thread asks Redis for the difference */
    int64_t per_minute;
    int64_t denied_until_ms; /* Redis had none left: do not ask again before this (wall) */
};

/* A fleet-wide concurrency pool this instance draws on (fleet_slot_*). */
struct fleet_slot {
    bool used;
    char key[FLEET_KEY_MAX]; /* P conc:<key>: the set of holders; P conc:<key>:<name> ours */
    long max;                /* the fleet's limit */
    long in_use;             /* this instance's calls holding a slot */
    long granted;            /* what Redis last granted this instance */
    int64_t next_refresh_ms; /* renew our grant's expiry by then (wall) */
    int64_t active_ms;       /* wall ms of the last take or of a call that found none free */
};

struct fleet_out {
    struct fleet_out *next;
    enum fleet_notice_kind kind;
    char target[FLEET_NAME_MAX];
    char *body;
    int64_t expire_wall_ms;
    struct fleet_store stores[FLEET_MAX_STORES];
    size_t n_store;
};

struct fleet {
    /* set by fleet_new, never changed */
    char host[256];
    int port, db;
    bool is_unix;
    bool is_tls;           /* rediss:// */
    struct fleet_tls *tls; /* its TLS context; NULL for redis:// and unix:// */
    char *password;
    char prefix[FLEET_PREFIX_MAX];
    char name[FLEET_NAME_MAX];
    enum fleet_outage outage;

    pthread_t thread;
    bool started;
    atomic_bool stopping;

    pthread_mutex_t mu;
    pthread_cond_t cv;              /* wakes the fleet thread early (stop) */
    struct fleet_counter *counters; /* FLEET_MAX_COUNTERS slots */
    struct fleet_lease *leases;     /* FLEET_MAX_LEASES slots */
    struct fleet_slot *slots;       /* FLEET_MAX_POOLS pools */
    struct fleet_out *out_head, *out_tail;
    size_t n_out;
    uint64_t out_dropped;
    bool counters_full_logged;
    struct fleet_notice *in_head, *in_tail;
    size_t n_in;
    char *heartbeat;
    struct fleet_status st;

    /* fleet thread only */
    redisContext *cmd, *sub;
    struct fleet_tls_pump *cmd_pump, *sub_pump; /* rediss://: their TLS bridges */
    int64_t backoff_ms, next_connect_ms, next_flush_ms, next_refresh_ms, next_hb_ms;
    bool ever_connected;
};

/* fleet.c (callers hold f->mu) */
void fleet_push_notice_locked(struct fleet *f, enum fleet_notice_kind kind, const char *origin,
                              const char *body, size_t len);
void fleet_out_free(struct fleet_out *o);

/* sync.c */
void *fleet_thread_main(void *arg);

#endif
