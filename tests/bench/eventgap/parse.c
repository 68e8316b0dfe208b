/*
 * eventgap/parse.c - see parse.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "parse.h"

/* ---- the response parser (pure) ----------------------------------------------------------- */

void rp_init(struct rp *p)
{
    memset(p, 0, sizeof *p);
    p->phase = RP_HEAD;
}

/* One complete line of the body (without its end): events are dispatched on empty lines. */
static void sse_line_end(struct rp *p, struct rp_count *n)
{
    if (p->line_len == 0) {
        if (p->has_data)
            n->events++;
        if (p->has_data && p->has_content)
            n->content++;
        p->has_data = p->has_content = false;
    } else if (p->in_data) {
        p->has_data = true;
    }
    p->line_len = 0;
    p->in_data = false;
    p->content_m = 0;
}

/*
 * A byte of a data: line: looks for "content":" followed by anything but the closing quote
 * (a text delta; the role chunk's "content":"" is not one). Every proper border of the key's
 * prefixes is at most one quote, so a mismatch restarts at 0 or 1 (or 2 after `"content"c`).
 */
static void content_byte(struct rp *p, char ch)
{
    if (p->content_m == CONTENT_KEY_LEN) {
        p->has_content = p->has_content || ch != '"';
        p->content_m = CONTENT_KEY_LEN + 1; /* decided for this occurrence */
    } else if (p->content_m < CONTENT_KEY_LEN && ch == CONTENT_KEY[p->content_m]) {
        p->content_m++;
    } else {
        p->content_m = ch == '"' ? 1 : (p->content_m == 9 && ch == 'c') ? 2 : 0;
    }
}

/* Scans decoded body bytes; adds the events they complete to *n. */
static void sse_feed(struct rp *p, const char *s, size_t len, struct rp_count *n)
{
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        bool lf_after_cr = ch == '\n' && p->cr_seen;
        p->cr_seen = ch == '\r';
        if (lf_after_cr)
            continue;
        if (ch == '\r' || ch == '\n') {
            sse_line_end(p, n);
            continue;
        }
        if (p->line_len < sizeof p->line_start)
            p->line_start[p->line_len] = ch;
        p->line_len++;
        if (p->line_len == 5)
            p->in_data = memcmp(p->line_start, "data:", 5) == 0;
        else if (p->in_data)
            content_byte(p, ch);
    }
}

/* The header block is complete in p->head: status, framing, keep-alive. */
static enum rp_result rp_headers(struct rp *p)
{
    int minor = 0;
    if (sscanf(p->head, "HTTP/1.%d %d", &minor, &p->status) != 2)
        return RP_BAD;
    bool chunked = false, have_len = false;
    long long len = 0;
    p->keep_alive = minor >= 1;
    for (char *l = strstr(p->head, "\r\n"); l && l[2]; l = strstr(l + 2, "\r\n")) {
        char *h = l + 2;
        if (strncasecmp(h, "content-length:", 15) == 0) {
            len = strtoll(h + 15, NULL, 10);
            have_len = true;
        } else if (strncasecmp(h, "transfer-encoding:", 18) == 0) {
            chunked = strncasecmp(h + 18 + strspn(h + 18, " \t"), "chunked", 7) == 0;
        } else if (strncasecmp(h, "connection:", 11) == 0) {
            char *v = h + 11 + strspn(h + 11, " \t");
            if (strncasecmp(v, "close", 5) == 0)
                p->keep_alive = false;
        }
    }
    if (chunked) {
        p->phase = RP_CHUNK_SIZE;
    } else if (have_len) {
        p->phase = len > 0 ? RP_BODY_LEN : RP_DONE;
        p->left = len;
    } else {
        p->phase = RP_BODY_EOF;
        p->keep_alive = false;
    }
    return RP_MORE;
}

/* Takes header bytes from s; returns how many it used (all of them until the end is found). */
static size_t rp_head_feed(struct rp *p, const char *s, size_t n, enum rp_result *r)
{
    size_t room = HEAD_MAX - 1 - p->head_len;
    size_t take = n < room ? n : room;
    size_t old = p->head_len;
    memcpy(p->head + old, s, take);
    p->head_len += take;
    p->head[p->head_len] = '\0';
    char *end = strstr(p->head + (old >= 3 ? old - 3 : 0), "\r\n\r\n");
    if (!end) {
        *r = p->head_len == HEAD_MAX - 1 ? RP_BAD : RP_MORE;
        return take;
    }
    size_t used = (size_t)(end + 4 - p->head) - old;
    end[2] = '\0'; /* keep the last header's CRLF: every header line ends with one */
    end[3] = '\0';
    *r = rp_headers(p);
    return used;
}

static int hex_digit(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* One byte of chunk framing (size line, CRLF after data, trailer). */
static enum rp_result rp_frame_byte(struct rp *p, char ch)
{
    switch (p->phase) {
    case RP_CHUNK_SIZE:
        if (ch == '\n') {
            if (!p->size_digits)
                return RP_BAD;
            p->phase = p->left ? RP_CHUNK_DATA : RP_TRAILER;
            p->size_digits = p->in_ext = false;
        } else if (!p->in_ext && hex_digit(ch) >= 0) {
            if (p->left > (1LL << 40))
                return RP_BAD;
            p->left = p->left * 16 + hex_digit(ch);
            p->size_digits = true;
        } else {
            p->in_ext = true; /* ";ext" or the CR */
        }
        return RP_MORE;
    case RP_CHUNK_END:
        if (ch == '\n') {
            p->phase = RP_CHUNK_SIZE;
            p->left = 0;
        } else if (ch != '\r') {
            return RP_BAD;
        }
        return RP_MORE;
    case RP_TRAILER:
        if (ch == '\n') {
            if (!p->size_digits) {
                p->phase = RP_DONE;
                return RP_COMPLETE;
            }
            p->size_digits = false;
        } else if (ch != '\r') {
            p->size_digits = true;
        }
        return RP_MORE;
    case RP_HEAD:
    case RP_BODY_LEN:
    case RP_BODY_EOF:
    case RP_CHUNK_DATA:
    case RP_DONE:
        break;
    }
    return RP_BAD;
}

/* Body bytes; returns how many it used. */
static size_t rp_body_feed(struct rp *p, const char *s, size_t n, struct rp_count *c,
                           enum rp_result *r)
{
    size_t take = n;
    *r = RP_MORE;
    switch (p->phase) {
    case RP_BODY_EOF:
        sse_feed(p, s, n, c);
        return n;
    case RP_BODY_LEN:
    case RP_CHUNK_DATA:
        if ((long long)take > p->left)
            take = (size_t)p->left;
        sse_feed(p, s, take, c);
        p->left -= (long long)take;
        if (p->left == 0 && p->phase == RP_CHUNK_DATA)
            p->phase = RP_CHUNK_END;
        if (p->left == 0 && p->phase == RP_BODY_LEN) {
            p->phase = RP_DONE;
            *r = RP_COMPLETE;
        }
        return take;
    case RP_CHUNK_SIZE:
    case RP_CHUNK_END:
    case RP_TRAILER:
        *r = rp_frame_byte(p, s[0]);
        return 1;
    case RP_HEAD:
    case RP_DONE:
        break;
    }
    *r = RP_BAD;
    return n;
}

/*
 * Feeds received bytes. *c gets the number of SSE events they completed. Returns
 * RP_COMPLETE once the response is whole (bytes after it are ignored: one request at a time
 * per connection), RP_BAD on a malformed response, RP_MORE otherwise.
 */
enum rp_result rp_feed(struct rp *p, const char *s, size_t n, struct rp_count *c)
{
    enum rp_result r = RP_MORE;
    c->events = c->content = 0;
    while (n > 0 && r == RP_MORE && p->phase != RP_DONE) {
        size_t used =
            p->phase == RP_HEAD ? rp_head_feed(p, s, n, &r) : rp_body_feed(p, s, n, c, &r);
        s += used;
        n -= used;
    }
    if (r == RP_MORE && p->phase == RP_DONE)
        r = RP_COMPLETE;
    return r;
}

/* The connection ended: a body delimited by the end of the connection is complete now. */
enum rp_result rp_eof(struct rp *p)
{
    return p->phase == RP_BODY_EOF ? RP_COMPLETE : RP_BAD;
}

void samples_add(struct samples *s, int64_t x)
{
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 4096;
        s->v = realloc(s->v, s->cap * sizeof *s->v);
        if (!s->v)
            abort();
    }
    s->v[s->n++] = x;
}

int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted samples (0 when empty); per mille, so 999 is p99.9. */
int64_t pct(const struct samples *s, int per_mille)
{
    if (s->n == 0)
        return 0;
    size_t rank = (size_t)(((unsigned long long)s->n * (unsigned)per_mille + 999) / 1000);
    return s->v[rank ? rank - 1 : 0];
}

/* ---- self-test: the parser on canned responses, split at every byte ----------------------------
 */

struct case_ {
    const char *name, *bytes;
    int events, content, status;
    bool keep_alive, needs_eof;
};

static const struct case_ cases[] = {
    {"chunked, LF, events and content split over chunks",
     "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
     "C\r\ndata: {\"choi\r\n3A;ext=1\r\nces\":[{\"delta\":{\"role\":\"assistant\",\"content\":"
     "\"\"}}]}\n\ndata:\r\n5\r\n {\"ch\r\n23\r\noices\":[{\"delta\":{\"content\":\"The\"}}\r\n"
     "28\r\n]}\n\ndata: {\"x\":\"\\\"content\\\":\\\"y\"}\n\ndata:\r\n78\r\n {\"choices\":[{"
     "\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: {\"choices\":[{\"delta\":{\"content\":"
     "\"\\\"q\"}}]}\n\ndata: [DONE]\n\n: c\n\n\r\n0\r\n\r\n",
     6, 2, 200, true, false},
    {"Content-Length, CRLF lines, event: and comment lines",
     "HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n"
     "event: x\r\ndata: 1\r\n\r\n: ping\r\n\r\ndata: 2\r\n\r\n",
     2, 0, 200, true, false},
    {"multi-line data, CR line ends, Connection: close",
     "HTTP/1.1 200 OK\r\nConnection: close\r\ntransfer-encoding: chunked\r\n\r\n"
     "1B\r\ndata: a\rdata: b\r\rdata: c\n\r\n\r\n0\r\nX-T: 1\r\n\r\n",
     2, 0, 200, false, false},
    {"body until the connection ends",
     "HTTP/1.0 200 OK\r\n\r\ndata: 1\n\ndata: {\"content\":\"x\"}\n\n", 2, 1, 200, false, true},
    {"an error status", "HTTP/1.1 503 Busy\r\nContent-Length: 4\r\n\r\nbusy", 0, 0, 503, true,
     false},
};

/* Feeds one case in pieces of at most `step` bytes (after a first piece of `first` bytes). */
static bool self_test_case(const struct case_ *t, size_t first, size_t step)
{
    struct rp p;
    rp_init(&p);
    size_t len = strlen(t->bytes), off = 0;
    int events = 0, content = 0;
    struct rp_count got;
    enum rp_result r = RP_MORE;
    while (off < len && r == RP_MORE) {
        size_t n = off == 0 && first ? first : step;
        if (n > len - off)
            n = len - off;
        r = rp_feed(&p, t->bytes + off, n, &got);
        events += got.events;
        content += got.content;
        off += n;
    }
    if (t->needs_eof && r == RP_MORE)
        r = rp_eof(&p);
    bool ok = r == RP_COMPLETE && off == len && events == t->events && content == t->content &&
              p.status == t->status && p.keep_alive == t->keep_alive;
    if (!ok)
        fprintf(stderr,
                "self-test: %s (first %zu, step %zu): result %d, %d events, %d content, "
                "status %d, keep-alive %d\n",
                t->name, first, step, (int)r, events, content, p.status, (int)p.keep_alive);
    return ok;
}

static bool self_test_pct(void)
{
    struct samples s = {0};
    for (int i = 1000; i >= 1; i--)
        samples_add(&s, i);
    qsort(s.v, s.n, sizeof *s.v, cmp_i64);
    bool ok =
        pct(&s, 500) == 500 && pct(&s, 990) == 990 && pct(&s, 999) == 999 && pct(&s, 1000) == 1000;
    free(s.v);
    struct samples e = {0};
    ok = ok && pct(&e, 990) == 0;
    if (!ok)
        fprintf(stderr, "self-test: percentiles wrong\n");
    return ok;
}

int self_test(void)
{
    int fails = 0, runs = 0;
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        size_t len = strlen(cases[k].bytes);
        for (size_t first = 0; first <= len; first++, runs++) /* split once, everywhere */
            fails += !self_test_case(&cases[k], first, len);
        for (size_t step = 1; step <= 7; step++, runs++)
            fails += !self_test_case(&cases[k], 0, step);
    }
    struct rp p;
    rp_init(&p);
    struct rp_count ev;
    const char *bad = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n";
    if (rp_feed(&p, bad, strlen(bad), &ev) != RP_BAD) {
        fprintf(stderr, "self-test: a bad chunk size was accepted\n");
        fails++;
    }
    fails += !self_test_pct();
    fprintf(stderr, "eventgap self-test: %d parser runs, %d failures\n", runs + 2, fails);
    return fails ? 1 : 0;
}
