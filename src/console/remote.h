/*
 * remote.h - private to the remote console backend (backend_remote.c, remote_xfer.c,
 * remote_chat.c, remote_quality.c). See backend_remote.c for the threads: fields marked "worker"
 * belong to the worker thread alone, fields marked "mu" are shared with the main thread under
 * r->mu.
 */
#ifndef SWITCHBOARD_CONSOLE_REMOTE_H
#define SWITCHBOARD_CONSOLE_REMOTE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include <curl/curl.h>

#include "switchboard/console_backend.h"

enum rjob_kind { RJOB_COMMAND, RJOB_EXPLAIN, RJOB_REQUEST, RJOB_CHAT, RJOB_CANCEL, RJOB_VOTE };

/* A job from the main thread; the worker owns it once taken. */
struct rjob {
    struct rjob *next;
    enum rjob_kind kind;
    char label[128];
    struct router_cmd cmd;   /* COMMAND */
    char model[64], tag[64]; /* EXPLAIN; REQUEST: model holds the request id */
    long tokens;
    char target[64];                        /* CHAT */
    char request_id[64];                    /* CHAT: the call's x-request-id */
    struct llm_request *req;                /* CHAT: owned until the request body is built */
    struct router_sink sink;                /* CHAT */
    uint64_t id;                            /* CHAT, CANCEL */
    char *body;                             /* VOTE: JSON */
    struct console_reply *reply;            /* COMMAND/EXPLAIN fan-out: built as instances answer */
    char *part_msg[CONSOLE_MAX_INSTANCES];  /* per instance, in attach order */
    char *part_text[CONSOLE_MAX_INSTANCES]; /* EXPLAIN */
    size_t parts;                           /* instances still to answer */
};

enum rxfer_kind { RX_STATE, RX_EVENTS, RX_JOB, RX_CHAT, RX_VOTE, RX_QUALITY };

struct rinst;
struct rchat;

/* One HTTP request in flight (worker). */
struct rxfer {
    struct rxfer *next, *prev; /* r->xfers */
    struct remote *r;
    enum rxfer_kind kind;
    struct rinst *in;
    CURL *h;
    struct curl_slist *hdrs;
    char *post;
    struct buf resp; /* STATE, JOB, VOTE: the body (capped) */
    char errbuf[CURL_ERROR_SIZE];
    struct rjob *job;   /* JOB */
    struct rchat *chat; /* CHAT */
    char target[64];    /* QUALITY: the target asked about */
};

/* Where an instance stands on the watched target's quality (worker). */
enum rq_state {
    RQ_PENDING, /* not answered yet for this target */
    RQ_OK,      /* in.q holds its figures */
    RQ_ABSENT,  /* 404: no such target there (counts as an answer) */
    RQ_FAILED,  /* in.q_error says why */
};

/* One attached instance. */
struct rinst {
    char base[256];               /* "http://127.0.0.1:8080" */
    char name[96];                /* "127.0.0.1:8080" */
    struct router_snapshot *snap; /* last good state; swapped under mu (remote_breakdown) */
    bool up, ever_up;             /* worker */
    int64_t down_since_ms;
    char error[160];
    bool state_busy;
    int64_t next_poll_ms;
    bool ev_busy;
    int64_t ev_next_ms;
    char ev_last_id[80], ev_cur_id[80];
    struct buf ev_line, ev_data;
    uint64_t ev_count;
    /* the watched target's quality (remote_quality.c) */
    enum rq_state q_state;
    struct console_quality q;
    char q_error[160];
    bool q_busy;
    int64_t q_next_ms;
};

/* A prompt-pane call in flight (worker). */
struct rchat {
    struct rchat *next;
    uint64_t id;
    struct rjob *job; /* its sink */
    struct rxfer *x;  /* NULL once finished */
    bool committed, over, cancelled, sink_stop;
    struct buf line;
    struct buf errbody;
    struct llm_usage usage;
    enum llm_finish finish;
    int64_t start_us, first_us;
    char target[64], model[96];
    enum llm_errclass err;
    char error[256];
};

struct remote {
    pthread_mutex_t mu;
    pthread_t thread;
    CURLM *multi;
    struct rinst inst[CONSOLE_MAX_INSTANCES];
    size_t n;
    char *auth_header;  /* "Authorization: Bearer ..." (secret) */
    char *token_header; /* "X-Switchboard-Admin-Token: ..." (secret) */
    char user_header[96];
    char *cacert;
    long poll_ms, timeout_ms;
    /* worker */
    struct router_snapshot *work, *scratch;
    struct router_event ev[ROUTER_MAX_EVENTS];
    size_t ev_n, ev_next;
    uint64_t ev_seq;
    bool dirty;
    struct rxfer *xfers;
    struct rchat *chats;
    char q_target[64]; /* the target whose quality the instances are asked about; "" none */
    /* mu */
    bool stop;
    struct router_snapshot *pub;
    bool pub_stale[ROUTER_MAX_TARGETS];
    uint64_t pub_gen;
    struct console_instance pub_inst[CONSOLE_MAX_INSTANCES];
    struct rjob *jobs, *jobs_tail;
    struct console_reply *replies, *replies_tail;
    uint64_t next_call_id;
    char q_watch[64];             /* what the detail view watches ("" none) */
    struct console_quality q_pub; /* merged, for q_pub.target */
    bool q_pub_ready;
};

/* remote_xfer.c */
struct remote *remote_setup(const struct console_remote_opts *o, char *msg, size_t msglen);
void remote_teardown(struct remote *r); /* after the worker stopped */
struct rxfer *remote_xfer_new(struct remote *r, struct rinst *in, enum rxfer_kind kind,
                              const char *path);
void remote_xfer_post(struct rxfer *x, char *body); /* takes body */
void remote_xfer_start(struct remote *r, struct rxfer *x);
void remote_xfer_free(struct remote *r, struct rxfer *x);
void remote_curl_error(CURLcode cc, const struct rxfer *x, char *out, size_t outlen);
struct rinst *remote_pick(struct remote *r); /* the instance for single calls */
void remote_job_free(struct rjob *j);

/* backend_remote.c */
void remote_reply(struct remote *r, struct console_reply *rep);
void remote_event(struct remote *r, enum router_event_kind kind, const char *target,
                  int64_t wall_ms, const char *inst, const char *text);
void remote_ev_bytes(struct remote *r, struct rinst *in, const char *data, size_t len);

/* remote_quality.c */
bool remote_quality(void *self, const char *target, struct console_quality *out); /* main */
void remote_quality_tick(struct remote *r);                                       /* worker */
void remote_quality_done(struct remote *r, struct rxfer *x, CURLcode cc, long status);

/* remote_chat.c */
void remote_chat_start(struct remote *r, struct rjob *j);
void remote_chat_cancel(struct remote *r, uint64_t id);
/* Stream bytes of a call; false: stop the transfer (the sink asked to). */
bool remote_chat_bytes(struct remote *r, struct rchat *c, const char *data, size_t len);
void remote_chat_done(struct remote *r, struct rxfer *x, CURLcode cc, long status);
void remote_chat_abort_all(struct remote *r); /* teardown: every call ends CANCELLED */

#endif
