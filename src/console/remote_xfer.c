/*
 * remote_xfer.c - the remote backend's plumbing: setting it up from the options (URLs,
 * token, CA), one libcurl easy handle per request with the common options (timeouts, TLS
 * verification, the admin token, the operator's login), and tearing it all down.
 *
 * Threads: remote_setup and remote_teardown run on the main thread while the worker is not
 * running; everything else on the worker thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "remote.h"

#define RESP_CAP        ((size_t)16 * 1024 * 1024)
#define CONNECT_TIMEOUT 1000L
#define URL_MAX         200

static size_t on_write(char *data, size_t size, size_t nmemb, void *arg)
{
    struct rxfer *x = arg;
    size_t len = size * nmemb;
    switch (x->kind) {
    case RX_EVENTS:
        remote_ev_bytes(x->r, x->in, data, len);
        return len;
    case RX_CHAT:
        return remote_chat_bytes(x->r, x->chat, data, len) ? len : 0;
    case RX_STATE:
    case RX_JOB:
    case RX_VOTE:
    case RX_QUALITY:
        break;
    }
    if (x->resp.len + len > RESP_CAP)
        return 0; /* fails the transfer: a state that big is not a state */
    buf_append(&x->resp, data, len);
    return len;
}

/* "http://host:port[/admin][/]" -> base "http://host:port", name "host:port". */
static bool parse_url(const char *url, struct rinst *in, char *msg, size_t msglen)
{
    const char *rest = NULL;
    if (str_has_prefix(url, "http://"))
        rest = url + 7;
    else if (str_has_prefix(url, "https://"))
        rest = url + 8;
    if (!rest || !*rest || strlen(url) > URL_MAX) {
        snprintf(msg, msglen, "--attach %.80s: expected http://HOST:PORT or https://HOST:PORT",
                 url);
        return false;
    }
    size_t len = strlen(url);
    while (len > 0 && url[len - 1] == '/')
        len--;
    if (len >= 6 && !strncmp(url + len - 6, "/admin", 6))
        len -= 6;
    while (len > 0 && url[len - 1] == '/')
        len--;
    snprintf(in->base, sizeof in->base, "%.*s", (int)len, url);
    size_t host = strcspn(rest, "/");
    snprintf(in->name, sizeof in->name, "%.*s", (int)(host < 95 ? host : 95), rest);
    return true;
}

struct remote *remote_setup(const struct console_remote_opts *o, char *msg, size_t msglen)
{
    if (o->n_urls == 0 || o->n_urls > CONSOLE_MAX_INSTANCES) {
        snprintf(msg, msglen, "--attach: 1 to %d gateways", CONSOLE_MAX_INSTANCES);
        return NULL;
    }
    if (!o->token || !*o->token) {
        snprintf(msg, msglen, "no admin token (set SWITCHBOARD_ADMIN_TOKEN or --token-env NAME)");
        return NULL;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        snprintf(msg, msglen, "libcurl cannot start");
        return NULL;
    }
    struct remote *r = xcalloc(1, sizeof *r);
    for (size_t i = 0; i < o->n_urls; i++) {
        if (!parse_url(o->urls[i], &r->inst[i], msg, msglen)) {
            for (size_t k = 0; k < i; k++) {
                buf_cleanup(&r->inst[k].ev_line);
                buf_cleanup(&r->inst[k].ev_data);
            }
            free(r);
            curl_global_cleanup();
            return NULL;
        }
        buf_init(&r->inst[i].ev_line);
        buf_init(&r->inst[i].ev_data);
    }
    r->n = o->n_urls;
    r->multi = curl_multi_init();
    pthread_mutex_init(&r->mu, NULL);
    r->auth_header = xasprintf("Authorization: Bearer %s", o->token);
    r->token_header = xasprintf("X-Switchboard-Admin-Token: %s", o->token);
    snprintf(r->user_header, sizeof r->user_header, "X-Switchboard-User: %.60s",
             o->user ? o->user : console_login());
    r->cacert = o->cacert ? xstrdup(o->cacert) : NULL;
    r->poll_ms = o->poll_ms > 0 ? o->poll_ms : 500;
    r->timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : 1000;
    r->work = xcalloc(1, sizeof *r->work);
    r->scratch = xcalloc(1, sizeof *r->scratch);
    r->pub = xcalloc(1, sizeof *r->pub);
    for (size_t k = 0; k < r->n; k++)
        str_copy(r->pub_inst[k].name, sizeof r->pub_inst[k].name, r->inst[k].name);
    return r;
}

static void free_secret(char *s)
{
    if (s) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

void remote_job_free(struct rjob *j)
{
    if (!j)
        return;
    if (j->req) {
        llm_request_cleanup(j->req);
        free(j->req);
    }
    free(j->body);
    console_reply_free(j->reply);
    for (size_t i = 0; i < CONSOLE_MAX_INSTANCES; i++) {
        free(j->part_msg[i]);
        free(j->part_text[i]);
    }
    free(j);
}

void remote_teardown(struct remote *r)
{
    remote_chat_abort_all(r); /* before the transfers go: their sinks must hear the end */
    for (struct rxfer *x = r->xfers, *next; x; x = next) {
        next = x->next;
        struct rjob *j = x->kind == RX_JOB ? x->job : NULL;
        remote_xfer_free(r, x);
        if (j && --j->parts == 0) /* the job's last transfer */
            remote_job_free(j);
    }
    while (r->jobs) {
        struct rjob *j = r->jobs;
        r->jobs = j->next;
        if (j->kind == RJOB_CHAT && j->sink.on_done) {
            struct router_result res = {.call_id = j->id, .err = LLM_ERR_CANCELLED};
            str_copy(res.message, sizeof res.message, "the console detached");
            res.target = res.model = res.route = "";
            res.ttft_us = -1;
            j->sink.on_done(j->sink.ctx, &res);
        }
        remote_job_free(j);
    }
    console_reply_free(r->replies);
    for (size_t k = 0; k < r->n; k++) {
        free(r->inst[k].snap);
        buf_cleanup(&r->inst[k].ev_line);
        buf_cleanup(&r->inst[k].ev_data);
    }
    curl_multi_cleanup(r->multi);
    free_secret(r->auth_header);
    free_secret(r->token_header);
    free(r->cacert);
    free(r->work);
    free(r->scratch);
    free(r->pub);
    pthread_mutex_destroy(&r->mu);
    free(r);
    curl_global_cleanup();
}

struct rxfer *remote_xfer_new(struct remote *r, struct rinst *in, enum rxfer_kind kind,
                              const char *path)
{
    struct rxfer *x = xcalloc(1, sizeof *x);
    x->r = r;
    x->kind = kind;
    x->in = in;
    buf_init(&x->resp);
    x->h = curl_easy_init();
    if (!x->h)
        abort(); /* only out of memory makes it fail: the xmalloc rule */
    char *url = xasprintf("%s%s", in->base, path);
    curl_easy_setopt(x->h, CURLOPT_URL, url);
    free(url);
    x->hdrs = curl_slist_append(x->hdrs, r->auth_header);
    x->hdrs = curl_slist_append(x->hdrs, r->user_header);
    curl_easy_setopt(x->h, CURLOPT_HTTPHEADER, x->hdrs);
    curl_easy_setopt(x->h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(x->h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(x->h, CURLOPT_CONNECTTIMEOUT_MS, CONNECT_TIMEOUT);
    curl_easy_setopt(x->h, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(x->h, CURLOPT_PRIVATE, (char *)x);
    curl_easy_setopt(x->h, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(x->h, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(x->h, CURLOPT_USERAGENT, "switchboard-console");
    if (r->cacert)
        curl_easy_setopt(x->h, CURLOPT_CAINFO, r->cacert);
    x->next = r->xfers;
    if (r->xfers)
        r->xfers->prev = x;
    r->xfers = x;
    return x;
}

void remote_xfer_post(struct rxfer *x, char *body)
{
    free(x->post);
    x->post = body;
    x->hdrs = curl_slist_append(x->hdrs, "Content-Type: application/json");
    curl_easy_setopt(x->h, CURLOPT_HTTPHEADER, x->hdrs);
    curl_easy_setopt(x->h, CURLOPT_POSTFIELDS, body);
}

void remote_xfer_start(struct remote *r, struct rxfer *x)
{
    curl_multi_add_handle(r->multi, x->h);
}

void remote_xfer_free(struct remote *r, struct rxfer *x)
{
    if (x->prev)
        x->prev->next = x->next;
    else
        r->xfers = x->next;
    if (x->next)
        x->next->prev = x->prev;
    curl_multi_remove_handle(r->multi, x->h);
    curl_easy_cleanup(x->h);
    curl_slist_free_all(x->hdrs);
    free(x->post);
    buf_cleanup(&x->resp);
    free(x);
}

void remote_curl_error(CURLcode cc, const struct rxfer *x, char *out, size_t outlen)
{
    /* Not a switch: CURLcode is libcurl's enum, with a hundred cases we do not name. */
    if (cc == CURLE_COULDNT_CONNECT)
        snprintf(out, outlen, "connection refused");
    else if (cc == CURLE_OPERATION_TIMEDOUT)
        snprintf(out, outlen, "no answer (timeout)");
    else
        snprintf(out, outlen, "%s", x->errbuf[0] ? x->errbuf : curl_easy_strerror(cc));
}

struct rinst *remote_pick(struct remote *r)
{
    for (size_t k = 0; k < r->n; k++) {
        if (r->inst[k].up)
            return &r->inst[k];
    }
    return &r->inst[0];
}
