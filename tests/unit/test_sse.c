/*
 * test_sse.c - the incremental SSE parser: every split position, line ends, fields, caps.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "switchboard/sse.h"

/* Each dispatched event is logged as "event|id|data\n" ("-" for NULL). */
struct log {
    struct buf out;
    int stop_after; /* stop when this many events were seen; 0 = never */
    int n;
};

static int log_event(void *ctx, const struct sse_event *ev)
{
    struct log *l = ctx;
    buf_printf(&l->out, "%s|%s|", ev->event ? ev->event : "-", ev->id ? ev->id : "-");
    buf_append(&l->out, ev->data, ev->data_len);
    buf_putc(&l->out, '\n');
    assert_int_equal(ev->data[ev->data_len], 0);
    l->n++;
    return l->stop_after && l->n >= l->stop_after;
}

/* Feeds s in pieces ending at the given cut offsets, then finishes. Returns the log. */
static char *parse_cuts(const char *s, const size_t *cuts, size_t n_cuts)
{
    struct sse_parser p;
    struct log l = {0};
    size_t len = strlen(s), at = 0;
    buf_init(&l.out);
    sse_init(&p, 0, 0);
    for (size_t i = 0; i <= n_cuts; i++) {
        size_t end = i < n_cuts ? cuts[i] : len;
        assert_int_equal(sse_feed(&p, s + at, end - at, log_event, &l), SSE_OK);
        at = end;
    }
    assert_int_equal(sse_finish(&p, log_event, &l), SSE_OK);
    sse_cleanup(&p);
    return buf_take(&l.out);
}

static char *parse_whole(const char *s)
{
    return parse_cuts(s, NULL, 0);
}

static char *parse_bytewise(const char *s)
{
    size_t len = strlen(s);
    size_t *cuts = calloc(len + 1, sizeof *cuts);
    for (size_t i = 0; i < len; i++)
        cuts[i] = i;
    char *out = parse_cuts(s, cuts, len);
    free(cuts);
    return out;
}

/* Every single split, two-way splits around line ends, and byte-by-byte all agree. */
static void assert_split_invariant(const char *s, const char *expected)
{
    size_t len = strlen(s);
    char *whole = parse_whole(s);
    assert_string_equal(whole, expected);
    for (size_t k = 0; k <= len; k++) {
        char *got = parse_cuts(s, &k, 1);
        assert_string_equal(got, whole);
        free(got);
    }
    for (size_t k = 1; k < len; k++) {
        if (s[k] != '\r' && s[k] != '\n')
            continue;
        size_t cuts[2] = {k, k + 1};
        char *got = parse_cuts(s, cuts, 2);
        assert_string_equal(got, whole);
        free(got);
    }
    char *bytes = parse_bytewise(s);
    assert_string_equal(bytes, whole);
    free(bytes);
    free(whole);
}

static const char OPENAI_STREAM[] =
    "data: {\"id\":\"chatcmpl-9\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,"
    "\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n"
    "data: {\"id\":\"chatcmpl-9\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n\n"
    ": keep-alive\n\n"
    "data: {\"id\":\"chatcmpl-9\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},"
    "\"finish_reason\":\"stop\"}]}\n\n"
    "data: [DONE]\n\n";

static const char OPENAI_EXPECTED[] =
    "-|-|{\"id\":\"chatcmpl-9\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,"
    "\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n"
    "-|-|{\"id\":\"chatcmpl-9\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"}}]}\n"
    "-|-|{\"id\":\"chatcmpl-9\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo\"},"
    "\"finish_reason\":\"stop\"}]}\n"
    "-|-|[DONE]\n";

static const char ANTHROPIC_STREAM[] =
    "event: message_start\r\n"
    "data: {\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"usage\":{\"input_tokens\":"
    "12}}}\r\n\r\n"
    "event: ping\r\ndata: {\"type\": \"ping\"}\r\n\r\n"
    "event: content_block_delta\r\n"
    "data: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\","
    "\"text\":\"Hi\"}}\r\n\r\n"
    "event: message_stop\r\ndata: {\"type\":\"message_stop\"}\r\n\r\n";

static const char ANTHROPIC_EXPECTED[] =
    "message_start|-|{\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"usage\":{"
    "\"input_tokens\":12}}}\n"
    "ping|-|{\"type\": \"ping\"}\n"
    "content_block_delta|-|{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":"
    "\"text_delta\",\"text\":\"Hi\"}}\n"
    "message_stop|-|{\"type\":\"message_stop\"}\n";

static void test_sse_parses_openai_stream_split_anywhere(void **state)
{
    (void)state;
    assert_split_invariant(OPENAI_STREAM, OPENAI_EXPECTED);
}

static void test_sse_parses_anthropic_stream_with_crlf_split_anywhere(void **state)
{
    (void)state;
    assert_split_invariant(ANTHROPIC_STREAM, ANTHROPIC_EXPECTED);
}

static void test_sse_accepts_lone_cr_line_ends_split_anywhere(void **state)
{
    (void)state;
    assert_split_invariant("event: a\rdata: x\r\rdata: y\rdata: z\r\r", "a|-|x\n-|-|y\nz\n");
}

static void test_sse_accepts_mixed_line_ends(void **state)
{
    (void)state;
    assert_split_invariant("data: 1\r\n\ndata: 2\n\r\ndata: 3\r\r\n", "-|-|1\n-|-|2\n-|-|3\n");
}

static void test_sse_treats_cr_then_lf_across_chunks_as_one_line_end(void **state)
{
    (void)state;
    size_t cut = 8; /* "data: a\r" | "\ndata: b\r\n\r\n" */
    char *got = parse_cuts("data: a\r\ndata: b\r\n\r\n", &cut, 1);
    assert_string_equal(got, "-|-|a\nb\n");
    free(got);
}

static void test_sse_skips_comment_lines(void **state)
{
    (void)state;
    assert_split_invariant(":hello\ndata: a\n: ping\ndata: b\n\n:\n\n", "-|-|a\nb\n");
}

static void test_sse_joins_multiline_data_with_newlines(void **state)
{
    (void)state;
    assert_split_invariant("data: {\ndata:   \"a\": 1\ndata: }\n\n", "-|-|{\n  \"a\": 1\n}\n");
}

static void test_sse_strips_a_single_leading_space_only(void **state)
{
    (void)state;
    assert_split_invariant("data:x\n\ndata:  y\n\ndata: \n\n", "-|-|x\n-|-| y\n-|-|\n");
}

static void test_sse_reads_event_and_id_fields_and_keeps_the_last_id(void **state)
{
    (void)state;
    assert_split_invariant("id: 7\nevent: delta\ndata: a\n\ndata: b\n\nevent: x\nid\ndata: c\n\n",
                           "delta|7|a\n-|7|b\nx||c\n");
}

static void test_sse_ignores_retry_and_unknown_fields(void **state)
{
    (void)state;
    assert_split_invariant("retry: 1000\nfoo: bar\ndata: a\n\n", "-|-|a\n");
}

/* The non-SSE lines left after the last event, fed in one piece or byte by byte. */
static char *trailing_of(const char *s, bool bytewise)
{
    struct sse_parser p;
    struct log l = {0};
    size_t len = strlen(s), n;
    buf_init(&l.out);
    sse_init(&p, 0, 32);
    for (size_t i = 0; i < len; i += bytewise ? 1 : len)
        sse_feed(&p, s + i, bytewise ? 1 : len, log_event, &l);
    sse_finish(&p, log_event, &l);
    char *out = strdup(sse_trailing(&p, &n));
    assert_int_equal(n, strlen(out));
    sse_cleanup(&p);
    buf_cleanup(&l.out);
    return out;
}

static void test_sse_keeps_what_follows_the_last_event_that_is_not_sse(void **state)
{
    (void)state;
    static const struct {
        const char *in, *want;
    } rows[] = {
        {"data: a\n\n{\"error\": {\"code\": 429}}", "{\"error\": {\"code\": 429}}"},
        {"data: a\n\n{\n  \"error\": 1\n}\n", "{\n  \"error\": 1\n}"},
        {"junk\ndata: a\n\n", ""}, /* followed by an event: ignored as before */
        {"data: a\n\nretry: 5\n: comment\nevent: x\nid: 3\n", ""},
        {"data: a\n\n0123456789012345678901234567890123456789", "01234567890123456789012345678901"},
    };
    for (size_t i = 0; i < SB_ARRAY_LEN(rows); i++) {
        for (int bytewise = 0; bytewise < 2; bytewise++) {
            char *got = trailing_of(rows[i].in, bytewise);
            assert_string_equal(got, rows[i].want);
            free(got);
        }
    }
}

static void test_sse_treats_a_field_without_colon_as_empty_value(void **state)
{
    (void)state;
    assert_split_invariant("data\n\ndata\ndata\n\n", "-|-|\n-|-|\n\n");
}

static void test_sse_does_not_dispatch_events_without_data(void **state)
{
    (void)state;
    assert_split_invariant("event: ping\n\nid: 3\n\n: c\n\n", "");
}

static void test_sse_reports_an_empty_event_name_as_null(void **state)
{
    (void)state;
    assert_split_invariant("event:\ndata: a\n\n", "-|-|a\n");
}

static void test_sse_finish_dispatches_an_unterminated_last_event(void **state)
{
    (void)state;
    char *got = parse_whole("data: a\n\ndata: b");
    assert_string_equal(got, "-|-|a\n-|-|b\n");
    free(got);
    got = parse_whole("event: e\ndata: c\n");
    assert_string_equal(got, "e|-|c\n");
    free(got);
    got = parse_whole("data: d\r");
    assert_string_equal(got, "-|-|d\n");
    free(got);
}

static void test_sse_rejects_an_overlong_line_and_refuses_more_input(void **state)
{
    (void)state;
    struct sse_parser p;
    struct log l = {0};
    buf_init(&l.out);
    sse_init(&p, 16, 1024);
    assert_int_equal(sse_feed(&p, "data: 0123456789", 16, log_event, &l), SSE_OK);
    assert_int_equal(sse_feed(&p, "A", 1, log_event, &l), SSE_ERR_LINE_TOO_LONG);
    assert_int_equal(sse_feed(&p, "\n\ndata: x\n\n", 11, log_event, &l), SSE_ERR_LINE_TOO_LONG);
    assert_int_equal(sse_finish(&p, log_event, &l), SSE_ERR_LINE_TOO_LONG);
    assert_int_equal(l.n, 0);
    sse_cleanup(&p);

    /* A whole overlong line inside one chunk fails the same way. */
    sse_init(&p, 8, 1024);
    assert_int_equal(sse_feed(&p, "data: 123456789\n\n", 17, log_event, &l), SSE_ERR_LINE_TOO_LONG);
    sse_cleanup(&p);
    buf_cleanup(&l.out);
    assert_string_equal(sse_status_str(SSE_ERR_LINE_TOO_LONG), "SSE line too long");
}

static void test_sse_rejects_an_oversize_event(void **state)
{
    (void)state;
    struct sse_parser p;
    struct log l = {0};
    buf_init(&l.out);
    sse_init(&p, 64, 10);
    const char *s = "data: 12345\ndata: 1234\n\n"; /* 5 + 1 + 4 = 10: fits */
    assert_int_equal(sse_feed(&p, s, strlen(s), log_event, &l), SSE_OK);
    assert_int_equal(l.n, 1);
    s = "data: 12345\ndata: 12345\n\n"; /* 11: too big */
    assert_int_equal(sse_feed(&p, s, strlen(s), log_event, &l), SSE_ERR_EVENT_TOO_BIG);
    assert_int_equal(sse_feed(&p, "data: a\n\n", 9, log_event, &l), SSE_ERR_EVENT_TOO_BIG);
    assert_int_equal(l.n, 1);
    sse_cleanup(&p);
    buf_cleanup(&l.out);
}

static void test_sse_stops_when_the_callback_asks(void **state)
{
    (void)state;
    struct sse_parser p;
    struct log l = {.stop_after = 2};
    buf_init(&l.out);
    sse_init(&p, 0, 0);
    const char *s = "data: 1\n\ndata: 2\n\ndata: 3\n\n";
    assert_int_equal(sse_feed(&p, s, strlen(s), log_event, &l), SSE_STOPPED);
    assert_int_equal(l.n, 2);
    assert_int_equal(sse_feed(&p, s, strlen(s), log_event, &l), SSE_STOPPED);
    assert_int_equal(l.n, 2);
    assert_int_equal(p.events, 2);
    sse_cleanup(&p);
    buf_cleanup(&l.out);
}

static void test_sse_passes_data_with_nul_bytes_by_length(void **state)
{
    (void)state;
    struct sse_parser p;
    struct log l = {0};
    buf_init(&l.out);
    sse_init(&p, 0, 0);
    static const char s[] = "data: a\0b\n\n";
    assert_int_equal(sse_feed(&p, s, sizeof s - 1, log_event, &l), SSE_OK);
    assert_int_equal(l.out.len, 8); /* "-|-|a\0b\n" */
    sse_cleanup(&p);
    buf_cleanup(&l.out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sse_parses_openai_stream_split_anywhere),
        cmocka_unit_test(test_sse_parses_anthropic_stream_with_crlf_split_anywhere),
        cmocka_unit_test(test_sse_accepts_lone_cr_line_ends_split_anywhere),
        cmocka_unit_test(test_sse_accepts_mixed_line_ends),
        cmocka_unit_test(test_sse_treats_cr_then_lf_across_chunks_as_one_line_end),
        cmocka_unit_test(test_sse_skips_comment_lines),
        cmocka_unit_test(test_sse_joins_multiline_data_with_newlines),
        cmocka_unit_test(test_sse_strips_a_single_leading_space_only),
        cmocka_unit_test(test_sse_reads_event_and_id_fields_and_keeps_the_last_id),
        cmocka_unit_test(test_sse_ignores_retry_and_unknown_fields),
        cmocka_unit_test(test_sse_treats_a_field_without_colon_as_empty_value),
        cmocka_unit_test(test_sse_keeps_what_follows_the_last_event_that_is_not_sse),
        cmocka_unit_test(test_sse_does_not_dispatch_events_without_data),
        cmocka_unit_test(test_sse_reports_an_empty_event_name_as_null),
        cmocka_unit_test(test_sse_finish_dispatches_an_unterminated_last_event),
        cmocka_unit_test(test_sse_rejects_an_overlong_line_and_refuses_more_input),
        cmocka_unit_test(test_sse_rejects_an_oversize_event),
        cmocka_unit_test(test_sse_stops_when_the_callback_asks),
        cmocka_unit_test(test_sse_passes_data_with_nul_bytes_by_length),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
