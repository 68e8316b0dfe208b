/*
 * support_gateway.h - a real router and gateway on 127.0.0.1 for the unit tests of the
 * gateway's listener (test_gateway_loop, test_gateway_bigbody), a provider that never
 * answers, and a blocking HTTP client. Linked into every unit test. The rig and the answers
 * live on the test's stack: tgw_start .. tgw_free, tgw_http .. tgw_answer_cleanup. Any
 * thread may call tgw_http; the rest is the test's main thread.
 */
#ifndef SB_TEST_SUPPORT_GATEWAY_H
#define SB_TEST_SUPPORT_GATEWAY_H

#include <curl/curl.h>
#include <stddef.h>

#include "switchboard/util.h"

struct tgw_rig {
    struct router *rt;
    struct gateway *gw;
    int hang_fd;   /* the provider that never answers (tgw_hang_listen) */
    char base[64]; /* http://127.0.0.1:PORT */
};

/* A provider that never answers: a listening socket nobody accepts on (the kernel completes
 * the handshake from its backlog, the request is never read). Returns its fd, *port its port. */
int tgw_hang_listen(unsigned *port);

/* One provider "a" (openai-compatible) at provider_port, or at the rig's hanging socket when
 * 0 (1: nothing listens, refused at once), and the route "chat" to it; one attempt, no
 * workers, an in-memory ledger, no guard; gateway.threads threads. gateway_json: more members
 * of the "gateway" object, each after a comma (",\"max_body_bytes\":8388608"), or "". Starts
 * the router, then the gateway; fails the test when either does not start. */
void tgw_start(struct tgw_rig *r, int threads, unsigned provider_port, const char *gateway_json);
/* gateway_free, then router_free (serve's order), and closes the hanging socket. */
void tgw_free(struct tgw_rig *r);

/* A request's outcome. */
struct tgw_answer {
    CURLcode code;
    long status;        /* 0 when the request failed */
    curl_off_t length;  /* Content-Length, -1 when there was none */
    struct buf headers; /* the response's header lines */
    struct buf body;
};

/* One blocking request to base path: a POST of len bytes of body (Content-Type JSON), or a
 * GET when body is NULL, with one more header line ("Name: value") unless header is NULL;
 * 30 s at most. */
void tgw_http(const char *base, const char *path, const char *body, size_t len, const char *header,
              struct tgw_answer *a);
void tgw_answer_cleanup(struct tgw_answer *a);

#endif
