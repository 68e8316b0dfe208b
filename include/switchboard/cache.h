/*
 * cache.h - the exact-match response cache of one route: recorded answers (the event
 * sequence: text, tool calls, usage, finish) keyed by the route, the client's tag and the
 * canonical request (model, messages, tools, tool choice and every sampling parameter).
 * Lookups compare the whole key text, not just its hash, so a crafted collision cannot fetch
 * another request's answer. Entries expire after ttl_ms; the least recently used go first
 * when max_entries or max_bytes (keys and answers together) would be exceeded; an answer
 * bigger than an eighth of max_bytes is not stored. Only successful, complete answers
 * (FINISH, no ERROR) are stored. Whether stream was asked does not matter: the events are
 * the same and the caller's encoder turns them into either form.
 *
 * Pure (time is an argument) and not thread-safe: the router thread owns each cache.
 */
#ifndef SWITCHBOARD_CACHE_H
#define SWITCHBOARD_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "switchboard/llm.h"
#include "switchboard/util.h"

struct cache_params {
    int64_t ttl_ms;
    size_t max_entries;
    size_t max_bytes;
};

/* ---- keys (pure) ------------------------------------------------------------------------- */

/* The canonical key text of a request on a route from a tag (tag may be NULL). */
void cache_key(const char *route, const char *tag, const struct llm_request *req, struct buf *out);
/* The runaway guard's prompt hash: the requested model, the end-user id (request.user) and
 * the messages (roles, text, tool calls and results). Never 0. Pure, any thread: the gateway
 * computes it where it parsed the body and hands it in (router_call_opts.prompt_hash). */
uint64_t cache_prompt_hash(const struct llm_request *req);

/* ---- recording an answer (caller's storage) ---------------------------------------------- */

struct cache_event; /* private */

struct cache_recorder {
    struct cache_event *ev;
    size_t n, cap;
    size_t bytes, max_bytes;
    bool overflow; /* the answer outgrew max_bytes: it will not be stored */
    bool finished; /* FINISH seen */
    bool failed;   /* ERROR seen */
    struct llm_usage usage;
};
void cache_recorder_init(struct cache_recorder *r, size_t max_bytes);
/* Records one event of the answer (copied; consecutive text and argument deltas merged). */
void cache_recorder_feed(struct cache_recorder *r, const struct llm_event *ev);
void cache_recorder_cleanup(struct cache_recorder *r);

/* ---- the cache --------------------------------------------------------------------------- */

struct cache;
struct cache_entry; /* valid until the next cache_put, cache_set_params or cache_free */

struct cache_stats {
    size_t entries, bytes;
    uint64_t hits, misses, stores, evictions, expired;
};

struct cache *cache_new(const struct cache_params *p);
void cache_set_params(struct cache *c, const struct cache_params *p); /* evicts to fit */
void cache_free(struct cache *c);                                     /* NULL-safe */

/* Stores a complete answer under key, taking the recorder's events (r is left empty). False
 * (nothing stored, r untouched) when the answer is incomplete, failed or too big. target and
 * model name who answered (copied). */
bool cache_put(struct cache *c, const char *key, size_t keylen, struct cache_recorder *r,
               const char *target, const char *model, int64_t now_ms);
/* The live entry for key (it becomes the most recently used), or NULL. */
const struct cache_entry *cache_get(struct cache *c, const char *key, size_t keylen,
                                    int64_t now_ms);
/* cache_get without being a use: no hit or miss counted, the LRU order kept (fleet mode reads
 * an entry it just stored to share it). */
const struct cache_entry *cache_peek(struct cache *c, const char *key, size_t keylen,
                                     int64_t now_ms);
/* Feeds the recorded events to fn in order; returns fn's first non-zero answer, else 0. */
int cache_replay(const struct cache_entry *e, llm_event_fn fn, void *ctx);
const char *cache_entry_target(const struct cache_entry *e);
const char *cache_entry_model(const struct cache_entry *e);
struct llm_usage cache_entry_usage(const struct cache_entry *e);
enum llm_finish cache_entry_finish(const struct cache_entry *e);

void cache_get_stats(const struct cache *c, struct cache_stats *out);

#endif
