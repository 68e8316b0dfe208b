/*
 * cache.c - the exact-match response cache (cache.h): canonical request keys, the recorder
 * that copies an answer's events, and the store itself: a chained hash table over the full
 * key text plus a doubly linked LRU list, with byte and entry accounting. Pure; the router
 * thread owns each cache.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "switchboard/cache.h"

struct cache_event {
    enum llm_event_type type;
    enum llm_text_kind kind; /* TEXT: content, refusal, reasoning... (replayed as such) */
    char *text;              /* TEXT, TOOL_ARGS: the (merged) delta; TOOL_CALL: unused */
    size_t len;
    int index;
    char *id, *name; /* TOOL_CALL */
    struct llm_usage usage;
    enum llm_finish finish;
};

struct cache_entry {
    struct cache_entry *chain;       /* next in the hash bucket */
    struct cache_entry *prev, *next; /* LRU: head is the most recently used */
    uint64_t hash;
    char *key;
    size_t keylen;
    struct cache_event *ev;
    size_t n;
    char *target, *model;
    struct llm_usage usage;
    enum llm_finish finish;
    int64_t expires_ms;
    size_t bytes;
};

struct cache {
    struct cache_params p;
    struct cache_entry **buckets;
    size_t n_buckets; /* power of two */
    struct cache_entry *head, *tail;
    struct cache_stats st;
};

/* ---- keys ------------------------------------------------------------------------------- */

/* Fields are a tag, a number or a length-prefixed string, and ';'. No two different requests
 * share a key. Built without printf: the guard hashes every request's key. */
static void put_num(struct buf *b, char tag, uint64_t v, char end)
{
    char tmp[24];
    size_t i = sizeof tmp;
    tmp[--i] = end;
    do {
        tmp[--i] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    tmp[--i] = tag;
    buf_append(b, tmp + i, sizeof tmp - i);
}

static void put_str(struct buf *b, char tag, const char *s)
{
    if (!s) {
        char nil[3] = {tag, '-', ';'};
        buf_append(b, nil, sizeof nil);
        return;
    }
    size_t n = strlen(s);
    put_num(b, tag, n, ':');
    buf_append(b, s, n);
    buf_putc(b, ';');
}

static void put_messages(struct buf *b, const struct llm_request *req)
{
    put_num(b, 'M', req->n_messages, ';');
    for (size_t i = 0; i < req->n_messages; i++) {
        const struct llm_message *m = &req->messages[i];
        put_num(b, 'r', (uint64_t)m->role, ';');
        put_str(b, 'c', m->content);
        put_str(b, 'i', m->tool_call_id);
        put_str(b, 'n', m->name);
        put_num(b, 'T', m->n_tool_calls, ';');
        for (size_t k = 0; k < m->n_tool_calls; k++) {
            put_str(b, 'i', m->tool_calls[k].id);
            put_str(b, 'n', m->tool_calls[k].name);
            put_str(b, 'a', m->tool_calls[k].arguments);
        }
    }
}

void cache_key(const char *route, const char *tag, const struct llm_request *req, struct buf *out)
{
    put_str(out, 'R', route);
    put_str(out, 'G', tag);
    put_str(out, 'm', req->model);
    put_messages(out, req);
    put_num(out, 'F', req->n_tools, ';');
    for (size_t i = 0; i < req->n_tools; i++) {
        put_str(out, 'n', req->tools[i].name);
        put_str(out, 'd', req->tools[i].description);
        put_str(out, 'p', req->tools[i].parameters_json);
    }
    buf_printf(out, "C%d;", (int)req->tool_choice);
    put_str(out, 'c', req->tool_choice_name);
    buf_printf(out, "x%ld;", req->max_tokens);
    if (req->has_temperature)
        buf_printf(out, "t%.17g;", req->temperature);
    if (req->has_top_p)
        buf_printf(out, "p%.17g;", req->top_p);
    put_num(out, 'S', req->n_stop, ';');
    for (size_t i = 0; i < req->n_stop; i++)
        put_str(out, 's', req->stop[i]);
    put_str(out, 'u', req->user);
}

uint64_t cache_prompt_hash(const struct llm_request *req)
{
    struct buf b;
    buf_init(&b);
    put_str(&b, 'm', req->model);
    put_str(&b, 'u', req->user); /* one end user's loop, not everyone's "hi" */
    put_messages(&b, req);
    uint64_t h = hash_fnv1a(b.data ? b.data : "", b.len);
    buf_cleanup(&b);
    return h ? h : 1;
}

/* ---- recorder ----------------------------------------------------------------------------- */

void cache_recorder_init(struct cache_recorder *r, size_t max_bytes)
{
    memset(r, 0, sizeof *r);
    r->max_bytes = max_bytes;
}

static void event_free(struct cache_event *e)
{
    free(e->text);
    free(e->id);
    free(e->name);
}

void cache_recorder_cleanup(struct cache_recorder *r)
{
    for (size_t i = 0; i < r->n; i++)
        event_free(&r->ev[i]);
    free(r->ev);
    size_t max = r->max_bytes;
    cache_recorder_init(r, max);
}

static void append_text(struct cache_event *e, const char *text, size_t len)
{
    e->text = xrealloc(e->text, e->len + len + 1);
    if (len > 0)
        memcpy(e->text + e->len, text, len);
    e->len += len;
    e->text[e->len] = '\0';
}

void cache_recorder_feed(struct cache_recorder *r, const struct llm_event *ev)
{
    if (r->overflow || r->failed || r->finished)
        return;
    if (ev->type == LLM_EV_ERROR) {
        r->failed = true;
        return;
    }
    size_t add = sizeof(struct cache_event) + ev->len + (ev->id ? strlen(ev->id) : 0) +
                 (ev->name ? strlen(ev->name) : 0);
    if (r->bytes + add > r->max_bytes) {
        r->overflow = true;
        return;
    }
    r->bytes += add;
    struct cache_event *last = r->n ? &r->ev[r->n - 1] : NULL;
    bool merge = last && last->type == ev->type &&
                 ((ev->type == LLM_EV_TEXT && last->kind == ev->kind) ||
                  (ev->type == LLM_EV_TOOL_ARGS && last->index == ev->index));
    if (merge) {
        append_text(last, ev->text, ev->len);
        return;
    }
    r->ev = xgrow(r->ev, &r->cap, r->n + 1, sizeof *r->ev);
    struct cache_event *e = &r->ev[r->n++];
    memset(e, 0, sizeof *e);
    e->type = ev->type;
    e->kind = ev->kind;
    e->index = ev->index;
    e->usage = ev->usage;
    e->finish = ev->finish;
    e->id = xstrdup(ev->id);
    e->name = xstrdup(ev->name);
    if (ev->type == LLM_EV_TEXT || ev->type == LLM_EV_TOOL_ARGS)
        append_text(e, ev->text ? ev->text : "", ev->len);
    if (ev->type == LLM_EV_USAGE)
        r->usage = ev->usage;
    if (ev->type == LLM_EV_FINISH)
        r->finished = true;
}

/* ---- the store ---------------------------------------------------------------------------- */

static size_t buckets_for(size_t entries)
{
    size_t n = 16;
    while (n < entries && n < ((size_t)1 << 30))
        n <<= 1;
    return n;
}

struct cache *cache_new(const struct cache_params *p)
{
    struct cache *c = xcalloc(1, sizeof *c);
    c->p = *p;
    c->n_buckets = buckets_for(p->max_entries);
    c->buckets = xcalloc(c->n_buckets, sizeof(struct cache_entry *));
    return c;
}

static void entry_free(struct cache_entry *e)
{
    for (size_t i = 0; i < e->n; i++)
        event_free(&e->ev[i]);
    free(e->ev);
    free(e->key);
    free(e->target);
    free(e->model);
    free(e);
}

static void lru_unlink(struct cache *c, struct cache_entry *e)
{
    if (e->prev)
        e->prev->next = e->next;
    else
        c->head = e->next;
    if (e->next)
        e->next->prev = e->prev;
    else
        c->tail = e->prev;
    e->prev = e->next = NULL;
}

static void lru_push(struct cache *c, struct cache_entry *e)
{
    e->next = c->head;
    e->prev = NULL;
    if (c->head)
        c->head->prev = e;
    c->head = e;
    if (!c->tail)
        c->tail = e;
}

static void remove_entry(struct cache *c, struct cache_entry *e)
{
    struct cache_entry **p = &c->buckets[e->hash & (c->n_buckets - 1)];
    while (*p && *p != e)
        p = &(*p)->chain;
    if (*p)
        *p = e->chain;
    lru_unlink(c, e);
    c->st.entries--;
    c->st.bytes -= e->bytes;
    entry_free(e);
}

static void fit(struct cache *c, size_t extra_entries, size_t extra_bytes)
{
    while (c->tail && (c->st.entries + extra_entries > c->p.max_entries ||
                       c->st.bytes + extra_bytes > c->p.max_bytes)) {
        remove_entry(c, c->tail);
        c->st.evictions++;
    }
}

void cache_set_params(struct cache *c, const struct cache_params *p)
{
    c->p = *p;
    size_t nb = buckets_for(p->max_entries);
    if (nb != c->n_buckets) {
        free(c->buckets);
        c->n_buckets = nb;
        c->buckets = xcalloc(nb, sizeof(struct cache_entry *));
        for (struct cache_entry *e = c->head; e; e = e->next) {
            size_t b = e->hash & (nb - 1);
            e->chain = c->buckets[b];
            c->buckets[b] = e;
        }
    }
    fit(c, 0, 0);
}

void cache_free(struct cache *c)
{
    if (!c)
        return;
    struct cache_entry *e = c->head;
    while (e) {
        struct cache_entry *next = e->next;
        entry_free(e);
        e = next;
    }
    free(c->buckets);
    free(c);
}

static struct cache_entry *lookup(struct cache *c, const char *key, size_t keylen, uint64_t h)
{
    for (struct cache_entry *e = c->buckets[h & (c->n_buckets - 1)]; e; e = e->chain) {
        if (e->hash == h && e->keylen == keylen && memcmp(e->key, key, keylen) == 0)
            return e;
    }
    return NULL;
}

bool cache_put(struct cache *c, const char *key, size_t keylen, struct cache_recorder *r,
               const char *target, const char *model, int64_t now_ms)
{
    if (!r->finished || r->failed || r->overflow)
        return false;
    size_t bytes = sizeof(struct cache_entry) + keylen + r->bytes;
    if (bytes > c->p.max_bytes / 8)
        return false;
    uint64_t h = hash_fnv1a(key, keylen);
    struct cache_entry *old = lookup(c, key, keylen, h);
    if (old)
        remove_entry(c, old);
    fit(c, 1, bytes);
    struct cache_entry *e = xcalloc(1, sizeof *e);
    e->hash = h;
    e->key = xmalloc(keylen + 1);
    memcpy(e->key, key, keylen);
    e->key[keylen] = '\0';
    e->keylen = keylen;
    e->ev = r->ev;
    e->n = r->n;
    e->usage = r->usage;
    e->finish = LLM_FINISH_NONE;
    for (size_t i = 0; i < r->n; i++)
        if (r->ev[i].type == LLM_EV_FINISH)
            e->finish = r->ev[i].finish;
    e->target = xstrdup(target ? target : "");
    e->model = xstrdup(model ? model : "");
    e->expires_ms = now_ms + c->p.ttl_ms;
    e->bytes = bytes;
    size_t b = h & (c->n_buckets - 1);
    e->chain = c->buckets[b];
    c->buckets[b] = e;
    lru_push(c, e);
    c->st.entries++;
    c->st.bytes += bytes;
    c->st.stores++;
    r->ev = NULL; /* taken */
    r->n = r->cap = 0;
    cache_recorder_cleanup(r);
    return true;
}

const struct cache_entry *cache_get(struct cache *c, const char *key, size_t keylen, int64_t now_ms)
{
    struct cache_entry *e = lookup(c, key, keylen, hash_fnv1a(key, keylen));
    if (e && now_ms >= e->expires_ms) {
        remove_entry(c, e);
        c->st.expired++;
        e = NULL;
    }
    if (!e) {
        c->st.misses++;
        return NULL;
    }
    lru_unlink(c, e);
    lru_push(c, e);
    c->st.hits++;
    return e;
}

const struct cache_entry *cache_peek(struct cache *c, const char *key, size_t keylen,
                                     int64_t now_ms)
{
    const struct cache_entry *e = lookup(c, key, keylen, hash_fnv1a(key, keylen));
    return e && now_ms < e->expires_ms ? e : NULL;
}

int cache_replay(const struct cache_entry *e, llm_event_fn fn, void *ctx)
{
    for (size_t i = 0; i < e->n; i++) {
        const struct cache_event *x = &e->ev[i];
        struct llm_event ev = {
            .type = x->type,
            .kind = x->kind,
            .text = x->text,
            .len = x->len,
            .index = x->index,
            .id = x->id,
            .name = x->name,
            .usage = x->usage,
            .finish = x->finish,
        };
        int rc = fn(ctx, &ev);
        if (rc != 0)
            return rc;
    }
    return 0;
}

const char *cache_entry_target(const struct cache_entry *e)
{
    return e->target;
}

const char *cache_entry_model(const struct cache_entry *e)
{
    return e->model;
}

struct llm_usage cache_entry_usage(const struct cache_entry *e)
{
    return e->usage;
}

enum llm_finish cache_entry_finish(const struct cache_entry *e)
{
    return e->finish;
}

void cache_get_stats(const struct cache *c, struct cache_stats *out)
{
    *out = c->st;
}
