/*
 * support_provider.h - helpers shared by the adapter unit tests (test_anthropic, test_gemini,
 * test_openai, test_provider_call): fixture files, and for the Anthropic and Gemini tests a
 * sink that logs one line per event plus runners that feed a body to an adapter directly or
 * through provider_call.
 */
#ifndef SWITCHBOARD_TESTS_SUPPORT_PROVIDER_H
#define SWITCHBOARD_TESTS_SUPPORT_PROVIDER_H

#include <stdbool.h>
#include <stddef.h>

#include "switchboard/provider.h"

/* The whole file DIR/NAME (tests run from the repository root); fails the test if absent. */
char *read_fixture_in(const char *dir, const char *name, size_t *len);

/* A sink that writes one line per event; stops after stop_after events when > 0. */
struct rec {
    struct buf log;
    int n;
    int stop_after;
};

void rec_init(struct rec *r, struct llm_sink *sink);
void rec_error(struct rec *r, enum llm_errclass c, const char *msg);
void expect_log(const char *what, const struct rec *r, const char *want);

/* Whole body straight into decode_full. */
void run_full_direct(const struct provider_ops *ops, const char *body, size_t len, struct rec *r);
/* An SSE body parsed with sse.c and fed to stream_event / stream_end, no glue. */
void run_stream_direct(const struct provider_ops *ops, const char *body, size_t len, struct rec *r);
/* One HTTP exchange through provider_call. split: 0 whole, 1 byte by byte, else a seed for
 * pseudo-random chunk sizes of 1..97 bytes. */
enum llm_errclass run_glue(const struct provider_ops *ops, const char *key, bool stream,
                           long status, const char *ctype, const char *body, size_t len,
                           unsigned split, struct rec *r);

bool has_header(const struct http_request *req, const char *line);
bool has_header_prefix(const struct http_request *req, const char *prefix);

#endif
