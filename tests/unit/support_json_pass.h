/*
 * support_json_pass.h - the non-streaming answer as the gateway writes it, without sockets,
 * for test_json_pass and fuzz_json_pass: an upstream chat.completion body goes through
 * provider_call (with the scanner, provider_openai, or without it, provider_openai_parsed)
 * into what chat.c answers (the forwarded body when the FINISH carries it, else the
 * re-encoded answer); and what an OpenAI client then reads from that answer. No cmocka here:
 * the fuzzer links it too.
 */
#ifndef SWITCHBOARD_TESTS_SUPPORT_JSON_PASS_H
#define SWITCHBOARD_TESTS_SUPPORT_JSON_PASS_H

#include <stdbool.h>
#include <stddef.h>

#include "switchboard/provider.h"

#define JP_ID      "chatcmpl-req1"
#define JP_MODEL   "route-a"
#define JP_CREATED 1700000000

/*
 * body[0..len) as a 200 application/json answer through ops, fed in pieces (split 0: whole,
 * else a seed for pseudo-random pieces), answered into out the way chat.c answers (JP_ID,
 * JP_MODEL, JP_CREATED); a failed call as one line "error <class>: <message>". events (may
 * be NULL) gets one line per event the sink received. *forwarded (may be NULL): whether the
 * answer went out as passthrough. Returns the call's outcome class.
 */
enum llm_errclass jp_answer(const struct provider_ops *ops, const char *body, size_t len,
                            unsigned split, struct buf *out, struct buf *events, bool *forwarded);

/* What an OpenAI client reads from an answer: its envelope (id, object, created, model,
 * total_tokens) and one line per event provider_openai_parsed decodes from it, then
 * "end <class>". */
void jp_client_view(const char *json, size_t len, struct buf *log);

#endif
