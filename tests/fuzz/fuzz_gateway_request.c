/*
 * fuzz_gateway_request.c - libFuzzer target for the gateway's request path end to end,
 * without sockets or a transport: request bytes -> openai_request_parse (or the 400 body the
 * gateway would answer) -> route resolution (rules, then the model name) -> encode for every
 * target of the route (every target of the config when no route matches), with each
 * adapter, as the router would before a transfer. The first input byte picks the client's
 * tag; the rest is the body.
 * Properties: no crash or leak; a refused request has a message and a 400 body that parses;
 * an accepted one resolves to a route or to none; each encode either refuses with a message
 * or yields a JSON body, a URL and header lines without control characters; and the
 * encoder's work (provider_encode_steps) stays within 8 steps per message, tool call and
 * tool (plus a constant).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "../../src/gateway/internal.h"
#include "../../src/router/internal.h"
#include "switchboard/provider.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char cfg_json[] =
    "{\"providers\":["
    "{\"name\":\"oa\",\"kind\":\"openai\",\"api_key_env\":\"OPENAI_API_KEY\","
    "\"model\":\"gpt-4o-mini\"},"
    "{\"name\":\"an\",\"kind\":\"anthropic\",\"api_key_env\":\"ANTHROPIC_API_KEY\","
    "\"model\":\"claude-sonnet-4-5\"},"
    "{\"name\":\"gm\",\"kind\":\"gemini\",\"api_key_env\":\"GEMINI_API_KEY\","
    "\"model\":\"gemini-3-pro-preview\"},"
    "{\"name\":\"local\",\"kind\":\"openai-compatible\",\"base_url\":\"http://127.0.0.1:1/v1\","
    "\"model\":\"llama3:8b\"}],"
    "\"routes\":[{\"name\":\"gpt-4o-mini\",\"targets\":[\"oa\",\"an\",\"gm\"]},"
    "{\"name\":\"local\",\"targets\":[\"local\"]}],"
    "\"rules\":[{\"match\":{\"tag\":\"batch\"},\"route\":\"local\"},"
    "{\"match\":{\"user\":\"vip-*\"},\"route\":\"local\"},"
    "{\"match\":{\"min_prompt_tokens\":100000},\"route\":\"gpt-4o-mini\"}],"
    "\"ledger\":{\"path\":\":memory:\"}}";

static const char *fake_getenv(void *ctx, const char *name)
{
    (void)ctx;
    return strstr(name, "API_KEY") ? "sk-fuzz-0123456789abcdef" : NULL;
}

static struct config *config_once(void)
{
    static struct config *cfg;
    if (!cfg) {
        struct config_diag errs;
        config_diag_init(&errs);
        cfg = config_parse(cfg_json, strlen(cfg_json), NULL, fake_getenv, NULL, &errs);
        if (!cfg)
            __builtin_trap();
        config_diag_cleanup(&errs);
    }
    return cfg;
}

static size_t request_items(const struct llm_request *req)
{
    size_t n = req->n_messages + req->n_tools;
    for (size_t i = 0; i < req->n_messages; i++)
        n += req->messages[i].n_tool_calls;
    return n;
}

static void check_encoded(const struct http_request *out)
{
    cJSON *body = cJSON_ParseWithLength(out->body, out->body_len);
    if (!out->url || !body || str_has_ctl(out->url) || strchr(out->url, ' '))
        __builtin_trap();
    cJSON_Delete(body);
    for (size_t i = 0; i < out->n_headers; i++) {
        if (str_has_ctl(out->headers[i]))
            __builtin_trap();
    }
}

static void encode_for(const struct config_target *t, const struct llm_request *req)
{
    const struct provider_ops *ops = provider_ops_for(t->kind);
    struct http_request out;
    char msg[PROVIDER_MSG_MAX] = "";
    http_request_init(&out);
    uint64_t before = provider_encode_steps();
    enum sb_status st = ops->encode(t, req, &out, msg, sizeof msg);
    if (provider_encode_steps() - before > 8 * request_items(req) + 64)
        __builtin_trap();
    if (st == SB_OK)
        check_encoded(&out);
    else if (msg[0] == '\0')
        __builtin_trap();
    http_request_cleanup(&out);
}

/* The 400 the gateway would answer. */
static void refused(enum sb_status st, const char *msg)
{
    struct gw_error e;
    struct buf out;
    buf_init(&out);
    if (msg[0] == '\0')
        __builtin_trap();
    gw_error_from_parse(&e, st, msg);
    gw_error_json(&e, &out);
    cJSON *j = cJSON_ParseWithLength(buf_str(&out), out.len);
    if (e.status != 400 || !j)
        __builtin_trap();
    cJSON_Delete(j);
    buf_cleanup(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const tags[] = {NULL, "batch", "team-a", ""};
    if (size == 0)
        return 0;
    const struct config *cfg = config_once();
    const char *tag = tags[data[0] % 4];
    struct llm_request req;
    char msg[PROVIDER_MSG_MAX] = "";
    llm_request_init(&req);
    enum sb_status st =
        openai_request_parse((const char *)data + 1, size - 1, &req, msg, sizeof msg);
    if (st != SB_OK) {
        refused(st, msg);
        goto out;
    }
    long rule = -1;
    long tokens = llm_request_estimate_tokens(&req);
    long r = router_resolve_route(cfg, req.model, tag, req.user, tokens, &rule);
    if (r >= (long)cfg->n_routes || (rule >= 0 && r < 0))
        __builtin_trap();
    if (r >= 0) {
        const struct config_route *route = &cfg->routes[r];
        for (size_t i = 0; i < route->n_targets; i++)
            encode_for(&cfg->targets[route->targets[i]], &req);
    } else {
        for (size_t i = 0; i < cfg->n_targets; i++)
            encode_for(&cfg->targets[i], &req);
    }
out:
    llm_request_cleanup(&req);
    return 0;
}
