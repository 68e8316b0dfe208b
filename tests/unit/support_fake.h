/*
 * support_fake.h - a fake clock and a scripted fake transport, so tests and fuzzers drive
 * the router loop itself (router_new_env + router_step) with no sockets and no real time.
 *
 * The fake transport asks a plan function, at each transfer's start, what the "server" does
 * (refuse, fail at the transport, hang, answer after a delay, trickle, cut after k bytes), and
 * plays that plan against the fake clock, enforcing the transfer's first-byte and total
 * timeouts the way the libcurl transport does. Cancels are deferred to the next run, as in
 * transport.h. Everything runs on the thread that calls router_step.
 */
#ifndef SWITCHBOARD_TEST_SUPPORT_FAKE_H
#define SWITCHBOARD_TEST_SUPPORT_FAKE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "switchboard/router.h"
#include "switchboard/transport.h"

struct fake_clock {
    _Atomic int64_t us; /* monotonic */
    int64_t wall_base_ms;
};

void fake_clock_init(struct fake_clock *c);
struct router_clock fake_clock_router(struct fake_clock *c);
static inline int64_t fake_clock_ms(struct fake_clock *c)
{
    return atomic_load(&c->us) / 1000;
}

#define FAKE_HEADERS_MAX 4

/* What the fake server does with one transfer. Times are ms after the start. */
struct fake_plan {
    bool refuse;            /* transport start fails (returns 0) */
    enum llm_errclass fail; /* != NONE: the transfer fails at the transport, no status */
    int64_t fail_after_ms;  /* when it fails */
    long status;            /* HTTP status of the answer */
    const char *headers[FAKE_HEADERS_MAX][2];
    const char *body;       /* bytes of the answer (copied at start) */
    int64_t first_byte_ms;  /* status and headers; < 0: never (a hang) */
    size_t chunk;           /* body in pieces of this size (0: all at once) */
    int64_t chunk_every_ms; /* between pieces */
    long cut_after;         /* >= 0: the connection closes after this many body bytes */
    long stall_after;       /* >= 0: no byte after this many body bytes, connection open */
};

/* Fills plan (zeroed, cut_after and stall_after -1) for one transfer. */
typedef void (*fake_plan_fn)(void *ctx, const struct http_request *req, struct fake_plan *plan);

struct fake_net;

struct fake_net *fake_net_new(struct fake_clock *clock, fake_plan_fn plan, void *ctx);
extern const struct transport_ops fake_transport_ops; /* self is a struct fake_net * */
/* Earliest time (us) at which the fake has something to do; INT64_MAX when idle. */
int64_t fake_net_next_us(const struct fake_net *n);
/* Transfers started so far whose URL contains `needle` (NULL: all). */
long fake_net_started(const struct fake_net *n, const char *needle);
size_t fake_net_active(const struct fake_net *n);
/* How often a transfer was paused by its on_data (TRANSPORT_DATA_PAUSE) and resumed. */
long fake_net_pauses(const struct fake_net *n);
long fake_net_resumes(const struct fake_net *n);
/* How often the router was woken (router_resume_lazy must not). Any thread. */
long fake_net_wakeups(const struct fake_net *n);
/* The fd the router watches through the transport (transport_watch; -1: none), the wait the
 * last run was given (max_wait_ms; -1 before the first) and the number of runs. A second
 * watch without a release in between fails (msg), as the router must never stack two. The
 * last two may be read from any thread; fake_net_watched from the router's. */
int fake_net_watched(const struct fake_net *n);
int fake_net_last_wait_ms(const struct fake_net *n);
long fake_net_runs(const struct fake_net *n);

/* A router on the fake transport and clock, from JSON config text; fails the test on error. */
struct router *fake_router_new(const char *cfg_json, struct fake_clock *clock, fake_plan_fn plan,
                               void *ctx, struct fake_net **net_out);
/* The same; workers_manual false gives router.workers real threads (the sinks of calls handed
 * to them then run there; everything else still runs on the thread that steps the router). */
struct router *fake_router_new_workers(const char *cfg_json, struct fake_clock *clock,
                                       fake_plan_fn plan, void *ctx, struct fake_net **net_out,
                                       bool workers_manual);

/*
 * The router's decode/encode workers (router.workers) are manual here: fake_drive runs their
 * queued batches (router_workers_step) before each router_step, on the calling thread.
 *
 * Runs the router loop, moving the fake clock to each next event, until done(ctx) is true
 * or the clock reaches until_ms. Returns the number of loop turns. Fails the test when the
 * loop stops making progress (more than max_turns turns without the clock moving).
 */
long fake_drive(struct router *rt, struct fake_net *n, struct fake_clock *clock, int64_t until_ms,
                bool (*done)(void *ctx), void *ctx);

/* ---- a recording sink ---- */

#define FAKE_TEXT_MAX 512

struct fake_call {
    int commits, events, errors, finishes, dones;
    char committed_to[64];
    char text[FAKE_TEXT_MAX]; /* text deltas, concatenated */
    char error[256];          /* text of the ERROR event */
    enum llm_errclass error_class;
    struct router_result result; /* strings in it are not valid after on_done */
    char result_target[64];
    bool stop_reading;        /* on_event returns non-zero from the first text on */
    bool pause_reading;       /* on_event answers ROUTER_SINK_PAUSE to text (a slow client) */
    struct fake_clock *clock; /* optional: done_ms is read from it */
    int64_t done_ms;          /* fake time of on_done (with clock) */
};

struct router_sink fake_call_sink(struct fake_call *fc);
bool fake_call_done(void *fake_call); /* for fake_drive */

/* An OpenAI chat.completion body and an OpenAI SSE stream answering `text`. */
const char *fake_openai_json(const char *text);
const char *fake_openai_sse(const char *text);

/* A heap request for `model` with one user message (the router takes it). */
struct llm_request *fake_request(const char *model, bool stream);

/* A router loop that spins must fail its test, not hang the suite: arms SIGALRM for `seconds`
 * (0 disarms); when it fires, "WHO: the router loop spins (watchdog fired)" goes to stderr and
 * the process exits 2. who must outlive the test (a string literal). */
void fake_watchdog(const char *who, unsigned seconds);

#endif
