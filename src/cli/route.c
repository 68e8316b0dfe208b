/*
 * route.c - `switchboard route --explain`: how a sample request would be routed. Locally it
 * loads the config into a router that is started only for the question (so it knows the
 * static facts: keys, weights, context windows, rules); with --server it asks a running
 * switchboard's admin API, which answers from live state (breakers, cooldowns, overrides).
 * Main thread only; the --server request is one blocking libcurl call.
 */
#include <curl/curl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "switchboard/cli.h"
#include "switchboard/config.h"
#include "switchboard/log.h"
#include "switchboard/router.h"

struct route_opts {
    const char *config_path;
    const char *model;
    const char *tag;
    const char *prompt;
    const char *server;
    long tokens;
    bool explain;
};

static void route_usage(FILE *out)
{
    fprintf(out,
            "usage: switchboard route --explain -c FILE -m MODEL [--tag TAG]\n"
            "                         [--prompt-tokens N | --prompt TEXT] [--server URL]\n"
            "  Shows which route a request with these facts takes, which targets are\n"
            "  filtered out and why, and which one the strategy picks. With --server (e.g.\n"
            "  http://127.0.0.1:8080) it asks that running switchboard (admin API, token from\n"
            "  the config's admin_token_env) and answers from its live state.\n");
}

static int parse(int argc, char **argv, struct route_opts *o)
{
    static const struct option longopts[] = {
        {"explain", no_argument, NULL, 'e'},
        {"config", required_argument, NULL, 'c'},
        {"model", required_argument, NULL, 'm'},
        {"tag", required_argument, NULL, 't'},
        {"prompt", required_argument, NULL, 'p'},
        {"prompt-tokens", required_argument, NULL, 'n'},
        {"server", required_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "c:m:t:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'e':
            o->explain = true;
            break;
        case 'c':
            o->config_path = optarg;
            break;
        case 'm':
            o->model = optarg;
            break;
        case 't':
            o->tag = optarg;
            break;
        case 'p':
            o->prompt = optarg;
            break;
        case 'n':
            if (!str_to_long(optarg, &o->tokens) || o->tokens < 0) {
                fprintf(stderr, "error: --prompt-tokens: expected an integer >= 0\n");
                return 2;
            }
            break;
        case 's':
            o->server = optarg;
            break;
        case 'h':
            route_usage(stdout);
            return 0;
        default:
            route_usage(stderr);
            return 2;
        }
    }
    if (!o->explain || !o->config_path || !o->model || optind != argc) {
        route_usage(stderr);
        return 2;
    }
    if (o->prompt) {
        struct llm_request req;
        llm_request_init(&req);
        llm_request_add_message(&req, LLM_ROLE_USER, o->prompt);
        o->tokens = llm_request_estimate_tokens(&req);
        llm_request_cleanup(&req);
    }
    return -1;
}

static size_t collect(char *data, size_t size, size_t nmemb, void *userp)
{
    struct buf *b = userp;
    if (b->len < (size_t)1024 * 1024)
        buf_append(b, data, size * nmemb);
    return size * nmemb;
}

static int ask_server(const struct route_opts *o, const struct config *cfg)
{
    if (!cfg->gateway.admin_token) {
        fprintf(stderr,
                "error: --server needs the admin token: set gateway.admin_token_env in %s "
                "and export that variable\n",
                o->config_path);
        return 2;
    }
    int rc = 1;
    struct buf body, url;
    buf_init(&body);
    buf_init(&url);
    CURL *e = curl_easy_init();
    struct curl_slist *h = NULL;
    char *m = e ? curl_easy_escape(e, o->model, 0) : NULL;
    char *t = e && o->tag ? curl_easy_escape(e, o->tag, 0) : NULL;
    if (!m || (o->tag && !t)) {
        fprintf(stderr, "error: cannot build the request\n");
        goto out;
    }
    buf_printf(&url, "%s/admin/explain?model=%s&prompt_tokens=%ld%s%s", o->server, m, o->tokens,
               t ? "&tag=" : "", t ? t : "");
    char *auth = xasprintf("Authorization: Bearer %s", cfg->gateway.admin_token);
    h = curl_slist_append(h, auth);
    free(auth);
    curl_easy_setopt(e, CURLOPT_URL, buf_str(&url));
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &body);
    CURLcode cc = curl_easy_perform(e);
    long status = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    if (cc != CURLE_OK || status != 200) {
        fprintf(stderr, "error: %s: %s\n", o->server,
                cc != CURLE_OK ? curl_easy_strerror(cc) : buf_str(&body));
        goto out;
    }
    cJSON *j = cJSON_ParseWithLength(buf_str(&body), body.len);
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, "explain");
    if (cJSON_IsString(x)) {
        fputs(x->valuestring, stdout);
        rc = 0;
    } else {
        fprintf(stderr, "error: unexpected answer from %s\n", o->server);
    }
    cJSON_Delete(j);
out:
    curl_free(m);
    curl_free(t);
    curl_slist_free_all(h);
    if (e)
        curl_easy_cleanup(e);
    buf_cleanup(&body);
    buf_cleanup(&url);
    return rc;
}

static int explain_local(const struct route_opts *o, struct config *cfg)
{
    char msg[256];
    struct router *rt = router_new(cfg, msg, sizeof msg);
    if (!rt || router_start(rt, msg, sizeof msg) != SB_OK) {
        fprintf(stderr, "error: %s\n", msg);
        router_free(rt);
        return 1;
    }
    struct buf out;
    buf_init(&out);
    enum sb_status st = router_explain(rt, o->model, o->tag, o->tokens, &out, 5000);
    fputs(buf_str(&out), st == SB_OK ? stdout : stderr);
    buf_cleanup(&out);
    router_free(rt);
    return st == SB_OK ? 0 : 1;
}

int cli_route(int argc, char **argv)
{
    struct route_opts o = {0};
    int rc = parse(argc, argv, &o);
    if (rc >= 0)
        return rc;
    log_setup(LOG_LEVEL_WARN, -1);
    struct config_diag errs;
    config_diag_init(&errs);
    struct config *cfg = config_load(o.config_path, &errs);
    for (size_t i = 0; i < errs.n; i++)
        fprintf(stderr, "error: %s\n", errs.items[i]);
    config_diag_cleanup(&errs);
    if (!cfg)
        return 2;
    if (o.server) {
        rc = ask_server(&o, cfg);
        config_free(cfg);
        return rc;
    }
    return explain_local(&o, cfg); /* the router takes cfg */
}
