/*
 * support_gateway.c - see support_gateway.h.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "support_gateway.h"
#include "switchboard/config.h"
#include "switchboard/gateway.h"
#include "switchboard/router.h"

int tgw_hang_listen(unsigned *port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof sa;
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(fd, 16), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    *port = ntohs(sa.sin_port);
    return fd;
}

static struct config *rig_config(int threads, unsigned provider_port, const char *gateway_json)
{
    char cfg[1024];
    int n = snprintf(cfg, sizeof cfg,
                     "{\"providers\":[{\"name\":\"a\",\"kind\":\"openai-compatible\","
                     "\"base_url\":\"http://127.0.0.1:%u/v1\",\"model\":\"m\","
                     "\"probe\":{\"enabled\":false}}],"
                     "\"routes\":[{\"name\":\"chat\",\"targets\":[\"a\"]}],"
                     "\"router\":{\"max_attempts\":1,\"deadline_ms\":60000,\"workers\":0},"
                     "\"ledger\":{\"path\":\":memory:\"},\"guard\":{\"enabled\":false},"
                     "\"gateway\":{\"listen\":\"127.0.0.1:0\",\"threads\":%d%s}}",
                     provider_port, threads, gateway_json);
    assert_true(n > 0 && (size_t)n < sizeof cfg);
    struct config_diag errs;
    config_diag_init(&errs);
    struct config *c = config_parse(cfg, (size_t)n, NULL, NULL, NULL, &errs);
    for (size_t i = 0; c == NULL && i < errs.n; i++)
        fprintf(stderr, "config: %s\n", errs.items[i]);
    config_diag_cleanup(&errs);
    assert_non_null(c);
    return c;
}

void tgw_start(struct tgw_rig *r, int threads, unsigned provider_port, const char *gateway_json)
{
    unsigned hang_port = 0;
    *r = (struct tgw_rig){.hang_fd = tgw_hang_listen(&hang_port)};
    struct config *c = rig_config(threads, provider_port ? provider_port : hang_port, gateway_json);
    char msg[256] = "";
    struct config *borrowed = c; /* the router owns c; the gateway reads it */
    r->rt = router_new(c, msg, sizeof msg);
    assert_non_null(r->rt);
    r->gw = gateway_new(borrowed, r->rt, msg, sizeof msg);
    assert_non_null(r->gw);
    assert_int_equal(router_start(r->rt, msg, sizeof msg), SB_OK);
    if (gateway_start(r->gw, msg, sizeof msg) != SB_OK)
        fail_msg("gateway_start: %s", msg);
    snprintf(r->base, sizeof r->base, "http://127.0.0.1:%u", gateway_port(r->gw));
}

void tgw_free(struct tgw_rig *r)
{
    gateway_free(r->gw);
    router_free(r->rt);
    close(r->hang_fd);
}

static size_t on_bytes(char *p, size_t size, size_t n, void *ud)
{
    buf_append(ud, p, size * n);
    return size * n;
}

void tgw_http(const char *base, const char *path, const char *body, size_t len, const char *header,
              struct tgw_answer *a)
{
    char url[160];
    snprintf(url, sizeof url, "%s%s", base, path);
    buf_init(&a->headers);
    buf_init(&a->body);
    CURL *e = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    if (header)
        h = curl_slist_append(h, header);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_bytes);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &a->body);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_bytes);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, &a->headers);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
    if (body) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    }
    a->status = 0;
    a->length = -1;
    a->code = curl_easy_perform(e);
    if (a->code == CURLE_OK) {
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &a->status);
        curl_easy_getinfo(e, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &a->length);
    }
    curl_slist_free_all(h);
    curl_easy_cleanup(e);
}

void tgw_answer_cleanup(struct tgw_answer *a)
{
    buf_cleanup(&a->headers);
    buf_cleanup(&a->body);
}
