/*
 * eventgap/parse.h - the pure parts of the bench's stream client (tests/bench/eventgap.c): the
 * HTTP/1.1 response parser with its SSE event counter, the sample sets and their percentiles,
 * and the self-test that splits canned responses at every byte. No I/O, no clock.
 */
#ifndef EVENTGAP_PARSE_H
#define EVENTGAP_PARSE_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HEAD_MAX 8192

enum rp_phase {
    RP_HEAD,       /* status line and headers */
    RP_BODY_LEN,   /* Content-Length body */
    RP_BODY_EOF,   /* body delimited by the end of the connection */
    RP_CHUNK_SIZE, /* a chunk-size line (hex digits, extensions, CRLF) */
    RP_CHUNK_DATA,
    RP_CHUNK_END, /* the CRLF after a chunk's data */
    RP_TRAILER,   /* after the last chunk: trailer lines up to an empty one */
    RP_DONE,
};

enum rp_result { RP_MORE, RP_COMPLETE, RP_BAD };

struct rp {
    enum rp_phase phase;
    char head[HEAD_MAX];
    size_t head_len;
    int status;
    bool keep_alive;
    long long left;   /* RP_BODY_LEN / RP_CHUNK_DATA: bytes still to come */
    bool size_digits; /* RP_CHUNK_SIZE: a hex digit seen; RP_TRAILER: a non-empty line */
    bool in_ext;      /* RP_CHUNK_SIZE: past the digits (extension or CR) */
    /* SSE scanner over the decoded body */
    char line_start[5]; /* the first bytes of the current line */
    size_t line_len;
    bool cr_seen;       /* the last byte was CR: an LF right after it ends nothing */
    bool has_data;      /* the event being read has a data: line */
    bool in_data;       /* the current line is a data: line */
    bool has_content;   /* ... and one of them has a non-empty "content" string */
    unsigned content_m; /* bytes of CONTENT_KEY matched so far (3 more: the whole key seen) */
};

/* What a piece of body completed: SSE events, and how many of them carry content. */
struct rp_count {
    int events, content;
};

#define CONTENT_KEY     "\"content\":\""
#define CONTENT_KEY_LEN (sizeof CONTENT_KEY - 1)

struct samples {
    int64_t *v;
    size_t n, cap;
};

/* Starts a new response. */
void rp_init(struct rp *p);
/* Feeds n bytes; *c gets what they completed. RP_COMPLETE: the response ended (bytes after
 * it belong to the next response and are not read). */
enum rp_result rp_feed(struct rp *p, const char *s, size_t n, struct rp_count *c);
/* The connection ended: RP_COMPLETE when the body is delimited by that, else RP_BAD. */
enum rp_result rp_eof(struct rp *p);

/* Appends x (aborts when out of memory). */
void samples_add(struct samples *s, int64_t x);
/* qsort comparator for int64_t. */
int cmp_i64(const void *a, const void *b);
/* Nearest-rank percentile of sorted samples (0 when empty); per mille, so 999 is p99.9. */
int64_t pct(const struct samples *s, int per_mille);

/* --self-test: 0 when every case passes, 1 otherwise (failures on stderr). */
int self_test(void);
#endif
