/*
 * test_cache.c - the exact-match response cache: keys that differ whenever anything that
 * shapes the answer differs (and not for stream), the guard's prompt hash, recording and
 * replaying an answer event for event, only complete answers stored, TTL, LRU eviction by
 * entries and by bytes, and shrinking on a reload.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "switchboard/cache.h"

static struct llm_request *req_new(const char *content)
{
    struct llm_request *r = xmalloc(sizeof *r);
    llm_request_init(r);
    r->model = xstrdup("chat");
    llm_request_add_message(r, LLM_ROLE_SYSTEM, "be terse");
    llm_request_add_message(r, LLM_ROLE_USER, content);
    return r;
}

static void req_free(struct llm_request *r)
{
    llm_request_cleanup(r);
    free(r);
}

static char *key_of(const char *route, const char *tag, const struct llm_request *r)
{
    struct buf b;
    buf_init(&b);
    cache_key(route, tag, r, &b);
    return buf_take(&b);
}

static void test_cache_key_changes_with_everything_that_shapes_the_answer(void **state)
{
    (void)state;
    struct llm_request *a = req_new("hello"), *b = req_new("hello");
    char *ka = key_of("chat", "t", a), *kb;
    b->stream = true; /* the same answer either way */
    b->include_usage = true;
    kb = key_of("chat", "t", b);
    assert_string_equal(ka, kb);
    free(kb);
    assert_true(cache_prompt_hash(a) == cache_prompt_hash(b));
    /* Each change below must give another key. */
    kb = key_of("other", "t", b);
    assert_string_not_equal(ka, kb);
    free(kb);
    kb = key_of("chat", NULL, b);
    assert_string_not_equal(ka, kb);
    free(kb);
    b->temperature = 0.5;
    b->has_temperature = true;
    kb = key_of("chat", "t", b);
    assert_string_not_equal(ka, kb);
    assert_true(cache_prompt_hash(a) == cache_prompt_hash(b)); /* the guard ignores params */
    free(kb);
    req_free(b);
    b = req_new("hello");
    b->max_tokens = 10;
    kb = key_of("chat", "t", b);
    assert_string_not_equal(ka, kb);
    free(kb);
    req_free(b);
    b = req_new("hello");
    llm_request_add_tool(b, "f", NULL, "{}");
    kb = key_of("chat", "t", b);
    assert_string_not_equal(ka, kb);
    free(kb);
    req_free(b);
    b = req_new("hellO");
    kb = key_of("chat", "t", b);
    assert_string_not_equal(ka, kb);
    assert_true(cache_prompt_hash(a) != cache_prompt_hash(b));
    free(kb);
    req_free(b);
    /* "ab" + "c" must not collide with "a" + "bc": fields are length-prefixed. */
    b = req_new("hello");
    free(b->messages[0].content);
    b->messages[0].content = xstrdup("be ters");
    free(b->messages[1].content);
    b->messages[1].content = xstrdup("ehello");
    kb = key_of("chat", "t", b);
    assert_string_not_equal(ka, kb);
    free(kb);
    b->user = xstrdup("end-user-7"); /* one end user's loop is not everyone's */
    assert_true(cache_prompt_hash(b) != 0);
    req_free(b);
    free(ka);
    req_free(a);
}

static void feed(struct cache_recorder *r, enum llm_event_type type, const char *text)
{
    struct llm_event ev = {.type = type, .text = text, .len = text ? strlen(text) : 0};
    if (type == LLM_EV_USAGE)
        ev.usage = (struct llm_usage){true, 12, 34, 5};
    if (type == LLM_EV_FINISH)
        ev.finish = LLM_FINISH_STOP;
    if (type == LLM_EV_TOOL_CALL) {
        ev.id = "call_1";
        ev.name = "lookup";
    }
    cache_recorder_feed(r, &ev);
}

static void record_answer(struct cache_recorder *r)
{
    cache_recorder_init(r, 1 << 20);
    feed(r, LLM_EV_TEXT, "Hel");
    feed(r, LLM_EV_TEXT, "lo");
    feed(r, LLM_EV_TOOL_CALL, NULL);
    feed(r, LLM_EV_TOOL_ARGS, "{\"q\":");
    feed(r, LLM_EV_TOOL_ARGS, "1}");
    feed(r, LLM_EV_USAGE, NULL);
    feed(r, LLM_EV_FINISH, NULL);
}

struct replayed {
    struct llm_response resp;
    int events;
    int stop_after;
};

static int on_replay(void *ctx, const struct llm_event *ev)
{
    struct replayed *r = ctx;
    r->events++;
    llm_response_collect(&r->resp, ev);
    return r->stop_after && r->events >= r->stop_after;
}

static struct cache_params params(size_t entries, size_t bytes, int64_t ttl)
{
    struct cache_params p = {ttl, entries, bytes};
    return p;
}

static void test_cache_stores_and_replays_an_answer(void **state)
{
    (void)state;
    struct cache_params p = params(10, 1 << 20, 1000);
    struct cache *c = cache_new(&p);
    struct cache_recorder rec;
    record_answer(&rec);
    assert_null(cache_get(c, "k", 1, 0));
    assert_true(cache_put(c, "k", 1, &rec, "a", "gpt-4o-mini", 0));
    assert_int_equal(rec.n, 0); /* taken */
    const struct cache_entry *e = cache_get(c, "k", 1, 500);
    assert_non_null(e);
    assert_string_equal(cache_entry_target(e), "a");
    assert_string_equal(cache_entry_model(e), "gpt-4o-mini");
    assert_int_equal(cache_entry_usage(e).output_tokens, 34);
    assert_int_equal(cache_entry_finish(e), LLM_FINISH_STOP);
    struct replayed r = {.events = 0};
    llm_response_init(&r.resp);
    assert_int_equal(cache_replay(e, on_replay, &r), 0);
    assert_int_equal(r.events, 5); /* text and args deltas merged */
    assert_string_equal(buf_str(&r.resp.text), "Hello");
    assert_int_equal(r.resp.n_tool_calls, 1);
    assert_string_equal(r.resp.tool_calls[0].name, "lookup");
    assert_string_equal(r.resp.tool_calls[0].arguments, "{\"q\":1}");
    assert_true(r.resp.finished);
    assert_int_equal(r.resp.usage.input_tokens, 12);
    llm_response_cleanup(&r.resp);
    /* A sink that stops is honoured. */
    struct replayed s = {.stop_after = 2};
    llm_response_init(&s.resp);
    assert_int_not_equal(cache_replay(e, on_replay, &s), 0);
    assert_int_equal(s.events, 2);
    llm_response_cleanup(&s.resp);
    /* Expired after the TTL. */
    assert_null(cache_get(c, "k", 1, 1000));
    struct cache_stats st;
    cache_get_stats(c, &st);
    assert_int_equal(st.hits, 1);
    assert_int_equal(st.misses, 2);
    assert_int_equal(st.expired, 1);
    assert_int_equal(st.entries, 0);
    assert_int_equal(st.bytes, 0);
    cache_recorder_cleanup(&rec);
    cache_free(c);
}

static void test_cache_peek_is_not_a_use(void **state)
{
    (void)state;
    struct cache_params p = params(10, 1 << 20, 1000);
    struct cache *c = cache_new(&p);
    struct cache_recorder rec;
    record_answer(&rec);
    assert_null(cache_peek(c, "k", 1, 0));
    assert_true(cache_put(c, "k", 1, &rec, "a", "m", 0));
    const struct cache_entry *e = cache_peek(c, "k", 1, 999);
    assert_non_null(e);
    assert_string_equal(cache_entry_target(e), "a");
    assert_null(cache_peek(c, "k", 1, 1000)); /* expired: not returned */
    struct cache_stats st;
    cache_get_stats(c, &st);
    assert_int_equal(st.hits, 0); /* fleet mode peeks to share: no hit, no miss */
    assert_int_equal(st.misses, 0);
    assert_int_equal(st.entries, 1);
    cache_recorder_cleanup(&rec);
    cache_free(c);
}

static void test_cache_keeps_only_complete_answers(void **state)
{
    (void)state;
    struct cache_params p = params(10, 1 << 20, 1000);
    struct cache *c = cache_new(&p);
    struct cache_recorder r;
    cache_recorder_init(&r, 1 << 20); /* no FINISH */
    feed(&r, LLM_EV_TEXT, "partial");
    assert_false(cache_put(c, "a", 1, &r, "t", "m", 0));
    cache_recorder_cleanup(&r);
    cache_recorder_init(&r, 1 << 20); /* an error */
    feed(&r, LLM_EV_TEXT, "partial");
    feed(&r, LLM_EV_ERROR, "cut");
    feed(&r, LLM_EV_FINISH, NULL);
    assert_false(cache_put(c, "b", 1, &r, "t", "m", 0));
    cache_recorder_cleanup(&r);
    cache_recorder_init(&r, 64); /* bigger than the recorder allows */
    feed(&r, LLM_EV_TEXT, "a long answer that does not fit in sixty-four bytes of budget");
    feed(&r, LLM_EV_FINISH, NULL);
    assert_true(r.overflow);
    assert_false(cache_put(c, "c", 1, &r, "t", "m", 0));
    cache_recorder_cleanup(&r);
    struct cache_stats st;
    cache_get_stats(c, &st);
    assert_int_equal(st.entries, 0);
    cache_free(c);
}

static void put_one(struct cache *c, const char *key, int64_t now)
{
    struct cache_recorder r;
    record_answer(&r);
    assert_true(cache_put(c, key, strlen(key), &r, "t", "m", now));
    cache_recorder_cleanup(&r);
}

static void test_cache_evicts_the_least_recently_used(void **state)
{
    (void)state;
    struct cache_params p = params(3, 1 << 20, 100000);
    struct cache *c = cache_new(&p);
    put_one(c, "k1", 0);
    put_one(c, "k2", 0);
    put_one(c, "k3", 0);
    assert_non_null(cache_get(c, "k1", 2, 1)); /* k1 is now the most recent */
    put_one(c, "k4", 2);
    assert_null(cache_get(c, "k2", 2, 3));
    assert_non_null(cache_get(c, "k1", 2, 3));
    assert_non_null(cache_get(c, "k3", 2, 3));
    assert_non_null(cache_get(c, "k4", 2, 3));
    put_one(c, "k4", 4); /* replacing keeps one entry */
    struct cache_stats st;
    cache_get_stats(c, &st);
    assert_int_equal(st.entries, 3);
    size_t one = st.bytes / 3;
    /* A byte cap with room for nine entries: the tenth pushes out the oldest. */
    struct cache_params pb = params(100, one * 9 + one / 2, 100000);
    struct cache *cb = cache_new(&pb);
    char k[16];
    for (int i = 0; i < 10; i++) {
        snprintf(k, sizeof k, "b%d", i);
        put_one(cb, k, i);
    }
    cache_get_stats(cb, &st);
    assert_int_equal(st.entries, 9);
    assert_true(st.bytes <= pb.max_bytes);
    assert_int_equal(st.evictions, 1);
    assert_null(cache_get(cb, "b0", 2, 20));
    assert_non_null(cache_get(cb, "b9", 2, 20));
    cache_free(cb);
    p = params(1, 1 << 20, 100000);
    cache_set_params(c, &p);
    cache_get_stats(c, &st);
    assert_int_equal(st.entries, 1);
    assert_non_null(cache_get(c, "k4", 2, 5)); /* the most recently used stays */
    cache_free(c);
}

static void test_cache_refuses_entries_bigger_than_an_eighth(void **state)
{
    (void)state;
    struct cache_params p = params(100, 65536, 100000);
    struct cache *c = cache_new(&p);
    char key[9000];
    memset(key, 'k', sizeof key);
    struct cache_recorder r;
    record_answer(&r);
    assert_false(cache_put(c, key, sizeof key, &r, "t", "m", 0));
    assert_true(cache_put(c, key, 100, &r, "t", "m", 0));
    cache_recorder_cleanup(&r);
    /* A long key compares whole: a different byte at the end is another request. */
    record_answer(&r);
    key[99] = 'x';
    assert_true(cache_put(c, key, 100, &r, "t", "m", 0));
    struct cache_stats st;
    cache_get_stats(c, &st);
    assert_int_equal(st.entries, 2);
    cache_recorder_cleanup(&r);
    cache_free(c);
}

static int on_kinds(void *ctx, const struct llm_event *ev)
{
    struct buf *b = ctx;
    if (ev->type == LLM_EV_TEXT)
        buf_printf(b, "[%s:%.*s]", llm_text_kind_field(ev->kind), (int)ev->len, ev->text);
    return 0;
}

static void test_cache_replays_reasoning_and_content_as_they_came(void **state)
{
    (void)state;
    struct cache *c = cache_new(&(struct cache_params){60000, 10, 1 << 20});
    struct cache_recorder rec;
    cache_recorder_init(&rec, 1 << 20);
    struct llm_event ev = {
        .type = LLM_EV_TEXT, .kind = LLM_TEXT_REASONING_CONTENT, .text = "think", .len = 5};
    cache_recorder_feed(&rec, &ev);
    ev.kind = LLM_TEXT_CONTENT;
    ev.text = "Hi";
    ev.len = 2;
    cache_recorder_feed(&rec, &ev);
    ev.text = "!";
    ev.len = 1;
    cache_recorder_feed(&rec, &ev);
    feed(&rec, LLM_EV_FINISH, NULL);
    assert_true(cache_put(c, "k", 1, &rec, "a", "m", 0));
    struct buf out;
    buf_init(&out);
    assert_int_equal(cache_replay(cache_get(c, "k", 1, 1), on_kinds, &out), 0);
    assert_string_equal(buf_str(&out), "[reasoning_content:think][content:Hi!]");
    buf_cleanup(&out);
    cache_recorder_cleanup(&rec);
    cache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cache_key_changes_with_everything_that_shapes_the_answer),
        cmocka_unit_test(test_cache_stores_and_replays_an_answer),
        cmocka_unit_test(test_cache_replays_reasoning_and_content_as_they_came),
        cmocka_unit_test(test_cache_keeps_only_complete_answers),
        cmocka_unit_test(test_cache_peek_is_not_a_use),
        cmocka_unit_test(test_cache_evicts_the_least_recently_used),
        cmocka_unit_test(test_cache_refuses_entries_bigger_than_an_eighth),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
