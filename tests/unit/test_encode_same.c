/*
 * test_encode_same.c - the Anthropic and Gemini encoders write the messages straight into
 * the body; for every request here they must give the bytes the cJSON tree encoders gave
 * (support_tree_encode.c), or refuse with the same status and message. Requests: the Chat
 * Completions bodies in tests/fixtures/encode/, parsed as the gateway parses them (system
 * prompts, multi-part content,
 * merged same-role turns, tool calls and results in every order, thought signatures, escapes,
 * empty texts, tools and options) and hand-built ones the parser would refuse (missing ids,
 * names, contents). Each goes to several targets (default max_tokens or not, Gemini 2 and 3,
 * the model from the request).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <dirent.h>

#include "support_tree_encode.h"
#include "switchboard/provider.h"

static char t_name[] = "t", t_url[] = "http://127.0.0.1:1/v1", t_version[] = "2023-06-01";
static char m_claude[] = "claude-sonnet-4-5", m_g25[] = "gemini-2.5-flash",
            m_g3[] = "gemini-3-pro-preview", m_g3p[] = "models/gemini-3-flash",
            m_bad[] = "gemini/../x";

static const struct {
    const struct provider_ops *ops;
    char *model;
    long default_max_tokens;
} targets[] = {
    {&provider_anthropic, m_claude, 1024}, {&provider_anthropic, NULL, 0},
    {&provider_gemini, m_g25, 0},          {&provider_gemini, m_g3, 0},
    {&provider_gemini, m_g3p, 0},          {&provider_gemini, NULL, 0},
    {&provider_gemini, m_bad, 0},
};

#define FIXTURES   "tests/fixtures/encode/"
#define MIN_BODIES 25

static void check(const struct llm_request *req, const char *what)
{
    for (size_t k = 0; k < SB_ARRAY_LEN(targets); k++) {
        char why[1200] = "";
        struct config_target t = {.name = t_name,
                                  .kind = targets[k].ops == &provider_anthropic ? PROVIDER_ANTHROPIC
                                                                                : PROVIDER_GEMINI,
                                  .base_url = t_url,
                                  .model = targets[k].model,
                                  .anthropic_version = t_version,
                                  .default_max_tokens = targets[k].default_max_tokens};
        if (!ref_encode_matches(targets[k].ops, &t, req, why, sizeof why))
            fail_msg("%s, target %zu: %s", what, k, why);
    }
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    struct buf b;
    char chunk[4096];
    size_t n;
    assert_non_null(f);
    buf_init(&b);
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        buf_append(&b, chunk, n);
    fclose(f);
    *len = b.len;
    return buf_take(&b);
}

/* Every Chat Completions body in tests/fixtures/encode/ (also fuzz_provider_encode's seeds). */
static void test_parsed_requests_encode_as_the_tree_did(void **state)
{
    (void)state;
    DIR *dir = opendir(FIXTURES);
    struct dirent *de;
    int n = 0;
    assert_non_null(dir);
    while ((de = readdir(dir)) != NULL) {
        char path[512], msg[PROVIDER_MSG_MAX] = "";
        size_t len;
        size_t nl = strlen(de->d_name);
        if (nl < 5 || strcmp(de->d_name + nl - 5, ".json") != 0)
            continue;
        snprintf(path, sizeof path, FIXTURES "%s", de->d_name);
        char *body = read_file(path, &len);
        struct llm_request req;
        llm_request_init(&req);
        if (openai_request_parse(body, len, &req, msg, sizeof msg) != SB_OK)
            fail_msg("%s does not parse: %s", path, msg);
        check(&req, de->d_name);
        llm_request_cleanup(&req);
        free(body);
        n++;
    }
    closedir(dir);
    assert_true(n >= MIN_BODIES);
}

static void add_call(struct llm_message *m, const char *id, const char *name, const char *args)
{
    m->tool_calls = xrealloc(m->tool_calls, (m->n_tool_calls + 1) * sizeof *m->tool_calls);
    struct llm_tool_call *tc = &m->tool_calls[m->n_tool_calls++];
    tc->id = id ? xstrdup(id) : NULL;
    tc->name = name ? xstrdup(name) : NULL;
    tc->arguments = args ? xstrdup(args) : NULL;
}

/* Requests the parser would not give: NULL texts, ids and names; no model at all. */
static void test_built_requests_encode_as_the_tree_did(void **state)
{
    (void)state;
    for (int v = 0; v < 9; v++) {
        struct llm_request req;
        llm_request_init(&req);
        req.model = v == 8 ? NULL : xstrdup("req-model");
        llm_request_add_message(&req, LLM_ROLE_USER, NULL);
        struct llm_message *a = llm_request_add_message(&req, LLM_ROLE_ASSISTANT, NULL);
        add_call(a, v == 1 ? NULL : "c1", v == 2 ? NULL : "f", v == 3 ? "  \n" : NULL);
        struct llm_message *r = llm_request_add_message(&req, LLM_ROLE_TOOL, NULL);
        r->tool_call_id = v == 4 ? NULL : xstrdup("c1");
        llm_request_add_message(&req, LLM_ROLE_SYSTEM, NULL);
        if (v == 5)
            llm_request_add_tool(&req, NULL, NULL, NULL);
        if (v == 6)
            llm_request_add_tool(&req, "t", NULL, "[not json");
        if (v == 7) {
            llm_request_add_tool(&req, "t", NULL, "  ");
            req.tool_choice = LLM_TOOL_CHOICE_NAMED;
        }
        char what[32];
        snprintf(what, sizeof what, "built request %d", v);
        check(&req, what);
        llm_request_cleanup(&req);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parsed_requests_encode_as_the_tree_did),
        cmocka_unit_test(test_built_requests_encode_as_the_tree_did),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
