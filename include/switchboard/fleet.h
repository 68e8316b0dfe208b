/*
 * fleet.h - fleet mode: several `serve` instances share spend counters, Retry-After
 * cooldowns and operator overrides through Redis (hiredis), and heartbeat a summary of
 * themselves. See README "Running a fleet".
 *
 * Threads: a fleet has its own thread, which alone owns the Redis connections (one for
 * commands, one subscribed to the fleet's notice channel). Every function below is
 * thread-safe and never waits on Redis: posting takes a mutex for a few table updates and
 * returns; reads copy what the fleet thread last published. So the router thread can call
 * them on its hot path, and a Redis outage never blocks a call.
 *
 * Redis keys (prefix P = fleet.key_prefix):
 *   P spend:<counter>          INCRBY micro-dollars; expiry set by the poster (period + slack)
 *   P cool:<target>            a cooldown's end (wall ms) with PX expiry, plus a notice
 *   P cache:<hash>             a route's cached answer with the route's TTL, plus a notice
 *   P ov                       hash: operator override state, field "<kind>:<target>"
 *   P audit                    stream of operator commands (XADD MAXLEN ~ FLEET_AUDIT_MAX)
 *   P inst:<name>              the instance's heartbeat JSON, PX FLEET_HEARTBEAT_TTL_MS
 *   P instances                zset of instance names scored by their last heartbeat
 *   P conc:<key>               set of the instances holding slots of a fleet-wide pool
 *   P conc:<key>:<name>        the slots <name> holds, PX FLEET_SLOT_TTL_MS
 *   P seeded:<name>            present while Redis holds this instance's contributions; a
 *                              Redis that lost it (restarted empty) gets them re-added
 *   P notices                  pub/sub channel: "<origin>\t<kind>\t<body>"
 *
 * While Redis is unreachable counters keep growing locally (pending), notices to publish
 * are kept (bounded, oldest dropped) and everything is sent once Redis is back; the
 * connection is retried with exponential backoff (FLEET_BACKOFF_MIN_MS .. MAX_MS).
 */
#ifndef SWITCHBOARD_FLEET_H
#define SWITCHBOARD_FLEET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "switchboard/config.h"
#include "switchboard/util.h"

#define FLEET_FLUSH_MS         100 /* counters are flushed (pipelined INCRBYs) this often */
#define FLEET_REFRESH_MS       250 /* watched counters are re-read (MGET) this often */
#define FLEET_HEARTBEAT_MS     1000
#define FLEET_HEARTBEAT_TTL_MS 3000 /* an instance silent this long has left the fleet */
#define FLEET_BACKOFF_MIN_MS   100
#define FLEET_BACKOFF_MAX_MS   5000
#define FLEET_IO_TIMEOUT_MS    500 /* a Redis command the fleet thread waits on, at most */
#define FLEET_MAX_COUNTERS     1024
#define FLEET_MAX_LEASES       128
#define FLEET_LEASE_MS         250  /* a lease is this long at the fleet\'s rate */
#define FLEET_LEASE_BURST_MS   1000 /* the bucket holds this long at the fleet\'s rate */
#define FLEET_MAX_POOLS        64   /* fleet-wide max_concurrency pools */
#define FLEET_SLOT_TTL_MS      3000 /* a silent instance's slots return to the pool after this */
#define FLEET_SLOT_RENEW_MS    1000
#define FLEET_SLOT_IDLE_MS     2000 /* an instance this long without calls keeps no spare slot */
#define FLEET_MAX_OUTBOX       512  /* notices kept while Redis is down */
#define FLEET_MAX_INBOX        1024
#define FLEET_AUDIT_MAX        10000
#define FLEET_KEY_MAX          192
#define FLEET_BODY_MAX         768
#define FLEET_NAME_MAX         64

enum fleet_notice_kind {
    FLEET_NOTICE_COOLDOWN, /* body: {"target","until_wall_ms","source"} */
    FLEET_NOTICE_COMMAND,  /* body: an operator command (router glue's JSON) */
    FLEET_NOTICE_OVERRIDE, /* inbound only: a stored override read at (re)connect */
    FLEET_NOTICE_RESEED,   /* inbound only: Redis lost our state; post the overrides again */
    FLEET_NOTICE_BREAKER,  /* body: {"target","from","to","reason","open_ms"} */
    FLEET_NOTICE_CACHE,    /* body: a recorded answer (fleet_cache.c); target: its Redis key */
};
const char *fleet_notice_kind_name(enum fleet_notice_kind k);

/* What the fleet thread last published about itself. */
struct fleet_status {
    bool enabled;          /* fleet mode configured */
    bool connected;        /* the last Redis exchange worked */
    int64_t down_since_ms; /* wall ms of the first failure of this outage; 0 while up */
    long instances;        /* heartbeating instances (self included); 0 while down */
    long instances_last;   /* the last count seen while up (kept through an outage); 0 never */
    char name[FLEET_NAME_MAX];
    char text[96];        /* "fleet: 3 instances" / "fleet: redis unreachable since HH:MM:SS" */
    char last_error[128]; /* the last Redis error, "" none (no secrets: hiredis texts only) */
    uint64_t flushes;     /* pipelines of counter increments sent */
    uint64_t reconnects;
    uint64_t notices_sent, notices_received;
    int64_t pending_micro_usd; /* spend not in Redis yet (sum over counters) */
};

/* One stored field of the override hash; value NULL deletes it. */
struct fleet_store {
    char field[FLEET_KEY_MAX];
    char *value; /* owned by the op */
};

struct fleet;

/* From cfg->fleet (copied; cfg->fleet.redis must be set). default_name is used when
 * cfg->fleet.name is NULL. Does not connect yet. Returns NULL with msg on a bad URL. */
struct fleet *fleet_new(const struct config_fleet *cfg, const char *default_name, char *msg,
                        size_t msglen);
/* Starts the fleet thread; it connects in the background (a Redis that is down is not an
 * error here: the status says so and the thread keeps retrying). */
enum sb_status fleet_start(struct fleet *f, char *msg, size_t msglen);
/* Stops the thread after one last flush attempt (bounded by FLEET_IO_TIMEOUT_MS), frees
 * everything. NULL-safe. */
void fleet_free(struct fleet *f);

const char *fleet_name(const struct fleet *f); /* borrowed for f's lifetime */
enum fleet_outage fleet_outage_mode(const struct fleet *f);

/* ---- counters (any thread) ------------------------------------------------------------------ */

/* Adds delta to counter key (without the prefix) with a Redis expiry of ttl_s seconds; it is
 * sent within FLEET_FLUSH_MS while Redis is up, later otherwise. Keys longer than
 * FLEET_KEY_MAX - 32 are cut. A full table (FLEET_MAX_COUNTERS) drops the oldest idle key. */
void fleet_counter_add(struct fleet *f, const char *key, int64_t delta, int64_t ttl_s);
/* The counter's fleet-wide value as far as this instance knows: the last value Redis
 * reported plus this instance's increments not yet acknowledged. Also marks the key as
 * watched, so it is re-read every FLEET_REFRESH_MS. *local_pending (may be NULL) gets the
 * unacknowledged part; *stale is set when Redis is down (may be NULL). */
int64_t fleet_counter_get(struct fleet *f, const char *key, int64_t *local_pending, bool *stale);

/* ---- fleet-wide rate limits (any thread) ------------------------------------------------------
 */

/*
 * A token bucket in Redis per key (P rl:<key>), refilled at per_minute / 60 a second and
 * holding at most FLEET_LEASE_BURST_MS of them, shared by the fleet. Each instance leases a
 * few tokens at a time (FLEET_LEASE_MS of the fleet's rate, at least what a call needs), so a
 * call never waits on Redis: fleet_lease_has says whether this instance's lease covers n now
 * (and if not, the fleet thread asks Redis for more in the background; the caller tries
 * again later); fleet_lease_use spends them. Over any minute the fleet sends at most
 * per_minute plus the burst. *stale (may be NULL) is set while Redis is unreachable: the
 * answer is then false and the caller falls back to its own share. fleet_lease_use may take
 * more than the balance (a call's actual tokens, known only at its end): the balance goes
 * below zero and the next refills repay it before anything is granted.
 */
bool fleet_lease_has(struct fleet *f, const char *key, int64_t n, int64_t per_minute, bool *stale);
void fleet_lease_use(struct fleet *f, const char *key, int64_t n);

/*
 * A fleet-wide pool of max slots per key (a target's max_concurrency). Each instance holds a
 * grant in Redis (P conc:<key>:<name>, expiring FLEET_SLOT_TTL_MS after its last renewal, so
 * a dead instance's slots come back; the holders are the set P conc:<key>) sized to its calls
 * in flight plus one spare while it had calls in the last FLEET_SLOT_IDLE_MS, so a busy
 * instance's next call needs no Redis round trip (an idle one holds none, so a single busy
 * instance can use the whole pool; its first call waits for a grant); the fleet thread grows,
 * shrinks and renews it in the background (a Lua script that grants only what the other
 * holders leave free). The fleet never holds more than max at once.
 * fleet_slot_free: whether this instance may start one more call now (if not, it asks for
 * more in the background); *stale (may be NULL) is set while Redis is unreachable, when the
 * answer is false and the caller falls back to its own share. fleet_slot_take: a call took a
 * slot; fleet_slot_give: it ended. A full table (FLEET_MAX_POOLS keys) does not hold back.
 */
bool fleet_slot_free(struct fleet *f, const char *key, long max, bool *stale);
void fleet_slot_take(struct fleet *f, const char *key);
void fleet_slot_give(struct fleet *f, const char *key);

/* ---- notices (any thread) -------------------------------------------------------------------- */

/* Publishes a notice to the other instances; for a cooldown also SET P cool:<target> with
 * expiry (expire_wall_ms), for a cached answer SET P <target> (its key) likewise; for a command
 * also XADD to the audit stream and apply stores (n_store <= 4; takes ownership of their values).
 * body is copied. */
void fleet_post(struct fleet *f, enum fleet_notice_kind kind, const char *target, const char *body,
                int64_t expire_wall_ms, struct fleet_store *stores, size_t n_store);

struct fleet_notice {
    struct fleet_notice *next;
    enum fleet_notice_kind kind;
    char origin[FLEET_NAME_MAX];
    char *body;
};
/* Takes every notice received from other instances (and stored state read at connect),
 * oldest first; the caller frees the list with fleet_notices_free. */
struct fleet_notice *fleet_take_notices(struct fleet *f);
void fleet_notices_free(struct fleet_notice *n); /* NULL-safe */

/* ---- heartbeat and status (any thread) ------------------------------------------------------- */

/* The JSON summary the next heartbeat carries (copied). */
void fleet_set_heartbeat(struct fleet *f, const char *json);
void fleet_get_status(struct fleet *f, struct fleet_status *out);

/* Splits a notice payload "<origin>\t<kind>\t<body>" (what another instance published): the
 * origin (cut to FLEET_NAME_MAX - 1), the kind (only cooldown, command, breaker and cache travel)
 * and where the body starts. False when malformed (no origin, a NUL in it, a kind that does not
 * travel). Pure; the fleet thread and the fuzzer use it. */
bool fleet_parse_notice(const char *p, size_t len, char *origin, size_t originlen,
                        enum fleet_notice_kind *kind, size_t *body_off);

/* Parses a fleet URL: redis://host[:port][/db], rediss://host[:port][/db] (TLS; only when tls
 * is not NULL, which is then set) or unix:///path[?db=N]. host gets the host or socket path.
 * False on anything else (a user or password in the URL included). Pure. */
bool fleet_parse_url(const char *url, char *host, size_t hostlen, int *port, int *db, bool *is_unix,
                     bool *tls);

#endif
