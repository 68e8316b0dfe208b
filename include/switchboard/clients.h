/*
 * clients.h - client keys: who may call the gateway's /v1/, and as whom.
 *
 * A client key is a secret an application sends as "Authorization: Bearer KEY". switchboard
 * never stores the key itself: only its SHA-256 (config clients[].key_sha256, or a row of
 * the ledger's client_keys table), compared in constant time. Each key carries a name (in
 * the ledger rows, the metrics and the console), the routes it may ask for, the tag the
 * server assigns to its calls, whether the client may pick its own tag (self_tag), spend
 * caps per UTC day and month, rpm/tpm limits and an expiry.
 *
 * The decision has three steps, each a function below:
 *   1. clients_authenticate (request headers): 401 without a valid, unexpired, unrevoked key;
 *   2. clients_admit (request body parsed): 403 for a route the key may not use, 429 over its
 *      rpm, tpm or budget; otherwise the tag the call carries (the key's; a client-sent tag
 *      only with self_tag, and never one another key owns or a tag budget names unless it
 *      is the key's own). Counts the request against rpm;
 *   3. clients_note_done (call finished): its tokens and cost.
 *
 * Threads: struct clients is thread-safe (one mutex, held only for table lookups and
 * counter updates, never across I/O or another module). Hashing and key generation use
 * OpenSSL's libcrypto. The decision is pure apart from the lock: time is an argument.
 */
#ifndef SWITCHBOARD_CLIENTS_H
#define SWITCHBOARD_CLIENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "switchboard/util.h"

#define CLIENTS_MAX        1024 /* keys held at once (config + ledger); metrics labels stay bounded */
#define CLIENTS_NAME_MAX   64
#define CLIENTS_TAG_MAX    128
#define CLIENTS_HASH_LEN   32
#define CLIENTS_HASH_HEX   64 /* hex digits of a hash */
#define CLIENTS_KEY_PREFIX "sbk-"

/* ---- hashing (any thread) ----------------------------------------------------------------- */

void clients_sha256(const void *data, size_t len, uint8_t out[CLIENTS_HASH_LEN]);
/* Lower-case hex, 64 digits + NUL. */
void clients_hash_hex(const uint8_t hash[CLIENTS_HASH_LEN], char out[CLIENTS_HASH_HEX + 1]);
/* Exactly 64 hex digits (either case) -> hash. False on anything else. */
bool clients_hash_parse(const char *hex, uint8_t out[CLIENTS_HASH_LEN]);
/* Constant-time equality of two hashes. */
bool clients_hash_equal(const uint8_t a[CLIENTS_HASH_LEN], const uint8_t b[CLIENTS_HASH_LEN]);
/* A new random key "sbk-" + 48 hex digits into out (at least 53 bytes). SB_ERR_IO when the
 * random source fails. */
enum sb_status clients_key_generate(char *out, size_t outlen);
/* An expiry: "2027-01-01" (00:00 UTC) or "2027-01-01T12:00:00Z" -> ms since the epoch. */
bool clients_parse_time(const char *s, int64_t *out_ms);
/* A key name: 1..64 of [A-Za-z0-9._-]. */
bool clients_name_is_valid(const char *name);

/* ---- one key ------------------------------------------------------------------------------ */

/* A key's definition. Owned by whoever holds it; release with clients_key_cleanup. */
struct clients_key {
    char name[CLIENTS_NAME_MAX + 1];
    uint8_t sha256[CLIENTS_HASH_LEN];
    char **routes; /* route names it may ask for; n_routes == 0: every route */
    size_t n_routes;
    char *tag;        /* the tag its calls carry; NULL: the key's name */
    bool self_tag;    /* the client may send its own x-switchboard-tag (see clients_admit) */
    double daily_usd; /* spend cap per UTC day; 0 = none */
    double monthly_usd;
    long rpm, tpm;      /* per minute; 0 = unlimited */
    int64_t expires_ms; /* wall clock; 0 = never */
    int64_t revoked_ms; /* wall clock; 0 = active */
    int64_t created_ms;
    bool from_config; /* clients[] rather than the ledger */
};
void clients_key_copy(struct clients_key *dst, const struct clients_key *src); /* deep */
void clients_key_cleanup(struct clients_key *k);                               /* NULL-safe */
/* Adds a route name (copied). */
void clients_key_add_route(struct clients_key *k, const char *route);
/* The tag its calls carry: k->tag or its name. */
const char *clients_key_tag(const struct clients_key *k);

/* ---- the set (thread-safe) ---------------------------------------------------------------- */

struct clients;

struct clients *clients_new(void);
void clients_free(struct clients *cl); /* NULL-safe */

/* Replaces the keys (copied; at most CLIENTS_MAX) and the tag names budgets cover (copied).
 * Counters (rpm, tpm, spend) are kept for names that stay. Any thread. */
void clients_set(struct clients *cl, const struct clients_key *keys, size_t n,
                 const char *const *budget_tags, size_t n_budget_tags);
/* Whether client keys are required: the last clients_set had keys, or clients_require
 * was called (the ledger's table has rows, revoked ones included, so revoking the last key
 * never opens the gateway). */
bool clients_required(struct clients *cl);
void clients_require(struct clients *cl);
/* Fleet mode (fleet.h; NULL: off): each key's rpm, tpm and day/month spend then hold across
 * the fleet. rpm and tpm draw on Redis token buckets through local leases (P rl:ck:<name>:r
 * and :t; a call's tokens are charged when it ends, so a key may overdraw its bucket by one
 * call per instance, repaid from the next refill); spend goes to fleet counters (P
 * spend:client:<name>:d|m:<date>) and the caps are checked against the fleet's totals. While
 * Redis is unreachable: rpm and tpm hold at this instance's share (1/instances) of the limit
 * over its own window; spend follows fleet.on_outage as the config's budgets do. Set before
 * any request; f must outlive cl. */
struct fleet;
void clients_set_fleet(struct clients *cl, struct fleet *f);
/* Seeds a key's spend in the windows that contain now (rebuilt from the ledger at start). */
void clients_seed_spend(struct clients *cl, const char *name, int64_t now_wall_ms, double day_usd,
                        double month_usd);

enum clients_verdict {
    CLIENTS_OK,
    CLIENTS_MISSING, /* 401: no Authorization: Bearer */
    CLIENTS_INVALID, /* 401: no such key */
    CLIENTS_EXPIRED, /* 401 */
    CLIENTS_REVOKED, /* 401 */
    CLIENTS_ROUTE,   /* 403: the key may not use this route */
    CLIENTS_RATE,    /* 429: over rpm or tpm */
    CLIENTS_BUDGET,  /* 429: over a daily or monthly cap */
};
#define CLIENTS_VERDICT_COUNT (CLIENTS_BUDGET + 1)
const char *clients_verdict_name(enum clients_verdict v); /* "ok", "missing", ... */
int clients_verdict_status(enum clients_verdict v);       /* 200, 401, 403, 429 */

struct clients_decision {
    enum clients_verdict verdict;
    char name[CLIENTS_NAME_MAX + 1]; /* the key's name once known, else "" */
    char tag[CLIENTS_TAG_MAX + 1];   /* clients_admit: the tag the call carries */
    bool tag_ignored;                /* a client-sent tag was not honoured */
    char message[240];               /* for the client; never contains the key */
    int64_t retry_after_ms;          /* RATE / BUDGET: when to retry; -1 unknown */
};

/* Step 1: authorization is the header's value (NULL when absent). */
void clients_authenticate(struct clients *cl, const char *authorization, int64_t now_wall_ms,
                          struct clients_decision *d);
/* Step 2 for the key d->name (from step 1): route is the model name asked for, client_tag
 * the x-switchboard-tag sent (NULL: none). Fills d->tag; counts the request when admitted. */
void clients_admit(struct clients *cl, const char *route, const char *client_tag,
                   int64_t now_wall_ms, struct clients_decision *d);
/* Whether key name may ask for route (false for an unknown key). */
bool clients_route_allowed(struct clients *cl, const char *name, const char *route);
/* Whether key name may name its own tag and end users (self_tag; false for an unknown key). */
bool clients_self_tag(struct clients *cl, const char *name);
/* Step 3: a finished call of key name used tokens and cost_usd. Unknown names are ignored. */
void clients_note_done(struct clients *cl, const char *name, int64_t now_wall_ms, long tokens,
                       double cost_usd);

/* Per key figures for /metrics and the admin API. */
struct clients_stats {
    char name[CLIENTS_NAME_MAX + 1];
    bool from_config;
    bool revoked, expired;
    uint64_t admitted;
    uint64_t refused[CLIENTS_VERDICT_COUNT]; /* ROUTE, RATE, BUDGET */
    uint64_t tokens;
    double spend_usd;          /* since start */
    double day_usd, month_usd; /* current windows */
    long rpm_used, tpm_used;   /* last minute */
};
/* Copies up to max keys' figures (the set's order); returns how many. auth_failures gets
 * the 401s by verdict (MISSING..REVOKED), which carry no key name. */
size_t clients_stats(struct clients *cl, int64_t now_wall_ms, struct clients_stats *out, size_t max,
                     uint64_t auth_failures[CLIENTS_VERDICT_COUNT]);

#endif
