/*
 * sim_main.c - switchboard-sim: flags, start-up, the supervisor loop and shutdown.
 *
 * Threads: the main thread parses flags, starts the daemons, then runs the supervisor: it
 * sleeps in poll() on a signalfd (SIGINT/SIGTERM, blocked in every thread) and on the wake
 * pipe that control handlers write to after a behaviour change, and starts or stops the main
 * daemon to match "outage". It alone touches the MHD daemon pointers.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "switchboard/log.h"
#include "sim.h"

#define SCENARIO_MAX   (1u << 20)
#define RETRY_START_MS 200

enum {
    OPT_PORT = 256,
    OPT_CONTROL_PORT,
    OPT_HOST,
    OPT_ALLOW_REMOTE,
    OPT_NAME,
    OPT_KEY,
    OPT_NO_AUTH,
    OPT_MODEL_DEFAULT,
    OPT_SCENARIO,
    OPT_PORT_FILE,
    OPT_QUIET,
    OPT_HELP,
    OPT_FAULT, /* OPT_FAULT + i: fault_flags[i] */
};

/* Fault flags map one-to-one onto behaviour keys (sim_behavior.c validates them). */
static const struct {
    const char *opt;
    const char *key;
    int has_arg;
    const char *arg;
} fault_flags[] = {
    {"error-rate", "error_rate", required_argument, "R"},
    {"error-statuses", "error_statuses", required_argument, "S,S"},
    {"rate-limit", "rate_limit", required_argument, "SECS"},
    {"outage", "outage", required_argument, "MODE"},
    {"hang", "hang", no_argument, NULL},
    {"first-byte-delay-ms", "first_byte_delay_ms", required_argument, "MS"},
    {"cut-after-tokens", "cut_after_tokens", required_argument, "N"},
    {"stall-after-tokens", "stall_after_tokens", required_argument, "N"},
    {"spare-models", "spare_models", no_argument, NULL},
    {"models-only", "models_only", no_argument, NULL},
    {"malformed", "malformed", no_argument, NULL},
    {"wrong-content-type", "wrong_content_type", no_argument, NULL},
    {"token-rate", "token_rate", required_argument, "N"},
    {"context-window", "context_window", required_argument, "N"},
    {"omit-usage", "omit_usage", no_argument, NULL},
    {"seed", "seed", required_argument, "N"},
    {"cached-tokens", "cached_tokens", required_argument, "N"},
    {"wire", "wire", required_argument, "NAME"},
    {"persona", "persona", required_argument, "MODE"},
};

static const struct option base_options[] = {
    {"port", required_argument, NULL, OPT_PORT},
    {"control-port", required_argument, NULL, OPT_CONTROL_PORT},
    {"host", required_argument, NULL, OPT_HOST},
    {"allow-remote", no_argument, NULL, OPT_ALLOW_REMOTE},
    {"name", required_argument, NULL, OPT_NAME},
    {"key", required_argument, NULL, OPT_KEY},
    {"no-auth", no_argument, NULL, OPT_NO_AUTH},
    {"model-default", required_argument, NULL, OPT_MODEL_DEFAULT},
    {"scenario", required_argument, NULL, OPT_SCENARIO},
    {"port-file", required_argument, NULL, OPT_PORT_FILE},
    {"quiet", no_argument, NULL, OPT_QUIET},
    {"help", no_argument, NULL, OPT_HELP},
};

struct sim_opts {
    const char *scenario;
    const char *port_file;
    bool allow_remote;
    cJSON *patch; /* behaviour from fault flags, applied over the scenario */
};

static void usage(FILE *out)
{
    struct buf b;
    buf_init(&b);
    buf_puts(&b, "usage: switchboard-sim [options]\n"
                 "Simulates the OpenAI, Anthropic and Gemini APIs on loopback, with faults.\n\n"
                 "  --port N              main port (0 = ephemeral; default 0)\n"
                 "  --control-port N      control port for /_sim/... (0 = ephemeral; default 0)\n"
                 "  --host ADDR           IPv4 address to bind (default 127.0.0.1, loopback only)\n"
                 "  --allow-remote        allow a non-loopback --host\n"
                 "  --name NAME           persona: seeds the answers (default \"sim\")\n"
                 "  --key KEY             expected API key (default \"sim-key\")\n"
                 "  --no-auth             accept any key or none\n"
                 "  --model-default NAME  model listed by the models endpoints (default "
                 "\"sim-model\")\n"
                 "  --scenario FILE       behaviour JSON applied at start (flags override it)\n"
                 "  --port-file FILE      write \"PORT CONTROL_PORT\\n\" once listening\n"
                 "  --quiet               log warnings only\n"
                 "  --help                this text\n\nfault flags:\n");
    for (size_t i = 0; i < SB_ARRAY_LEN(fault_flags); i++)
        buf_printf(&b, "  --%s%s%s\n", fault_flags[i].opt, fault_flags[i].arg ? " " : "",
                   fault_flags[i].arg ? fault_flags[i].arg : "");
    buf_puts(&b, "\nbehaviour keys (scenario file, POST /_sim/behavior):\n");
    sim_behavior_help(&b);
    buf_puts(&b, "  reset                true: back to the start-up behaviour first\n"
                 "\ncontrol: GET|POST /_sim/behavior, GET /_sim/stats, POST /_sim/reset-stats, "
                 "GET /_sim/health\n");
    fputs(buf_str(&b), out);
    buf_cleanup(&b);
}

static bool parse_port(const char *arg, uint16_t *out)
{
    long v;
    if (!str_to_long(arg, &v) || v < 0 || v > 65535)
        return false;
    *out = (uint16_t)v;
    return true;
}

static void set_str(char **dst, const char *v)
{
    free(*dst);
    *dst = xstrdup(v);
}

/* Returns 0 to go on, 1 for a usage error, 2 after --help. */
static int parse_flags(int argc, char **argv, struct sim_server *s, struct sim_opts *o)
{
    struct option opts[SB_ARRAY_LEN(base_options) + SB_ARRAY_LEN(fault_flags) + 1];
    size_t n = 0;
    char err[256];
    for (size_t i = 0; i < SB_ARRAY_LEN(base_options); i++)
        opts[n++] = base_options[i];
    for (size_t i = 0; i < SB_ARRAY_LEN(fault_flags); i++)
        opts[n++] =
            (struct option){fault_flags[i].opt, fault_flags[i].has_arg, NULL, OPT_FAULT + (int)i};
    opts[n] = (struct option){NULL, 0, NULL, 0};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case OPT_PORT:
        case OPT_CONTROL_PORT:
            if (!parse_port(optarg, c == OPT_PORT ? &s->cfg.port : &s->cfg.control_port)) {
                fprintf(stderr, "switchboard-sim: bad port '%s'\n", optarg);
                return 1;
            }
            break;
        case OPT_HOST:
            set_str(&s->cfg.host, optarg);
            break;
        case OPT_ALLOW_REMOTE:
            o->allow_remote = true;
            break;
        case OPT_NAME:
            set_str(&s->cfg.name, optarg);
            break;
        case OPT_KEY:
            set_str(&s->cfg.key, optarg);
            break;
        case OPT_NO_AUTH:
            s->cfg.no_auth = true;
            break;
        case OPT_MODEL_DEFAULT:
            set_str(&s->cfg.model_default, optarg);
            break;
        case OPT_SCENARIO:
            o->scenario = optarg;
            break;
        case OPT_PORT_FILE:
            o->port_file = optarg;
            break;
        case OPT_QUIET:
            s->cfg.quiet = true;
            break;
        case OPT_HELP:
            usage(stdout);
            return 2;
        default:
            if (c >= OPT_FAULT && c < OPT_FAULT + (int)SB_ARRAY_LEN(fault_flags)) {
                if (!sim_behavior_flag(o->patch, fault_flags[c - OPT_FAULT].key, optarg, err,
                                       sizeof err)) {
                    fprintf(stderr, "switchboard-sim: %s\n", err);
                    return 1;
                }
                break;
            }
            usage(stderr);
            return 1;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "switchboard-sim: unexpected argument '%s'\n", argv[optind]);
        return 1;
    }
    return 0;
}

static bool host_ok(const char *host, bool allow_remote)
{
    struct in_addr a;
    if (inet_pton(AF_INET, host, &a) != 1) {
        fprintf(stderr, "switchboard-sim: --host must be an IPv4 address, got '%s'\n", host);
        return false;
    }
    if ((ntohl(a.s_addr) >> 24) != 127 && !allow_remote) {
        fprintf(stderr, "switchboard-sim: refusing non-loopback host %s without --allow-remote\n",
                host);
        return false;
    }
    return true;
}

static cJSON *read_json_file(const char *path, char *err, size_t err_size)
{
    FILE *f = fopen(path, "rb");
    struct buf b;
    char chunk[4096];
    size_t n;
    if (!f) {
        snprintf(err, err_size, "%s: %s", path, strerror(errno));
        return NULL;
    }
    buf_init(&b);
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0 && b.len <= SCENARIO_MAX)
        buf_append(&b, chunk, n);
    fclose(f);
    cJSON *doc = b.len <= SCENARIO_MAX ? cJSON_ParseWithLength(buf_str(&b), b.len) : NULL;
    if (!doc)
        snprintf(err, err_size, "%s: not valid JSON (or over 1 MiB)", path);
    buf_cleanup(&b);
    return doc;
}

/* Start-up behaviour: defaults, then the scenario file, then the fault flags. */
static bool initial_behavior(struct sim_server *s, const struct sim_opts *o)
{
    char err[256];
    bool seed_changed;
    sim_behavior_defaults(&s->initial);
    if (o->scenario) {
        cJSON *doc = read_json_file(o->scenario, err, sizeof err);
        if (doc) { /* keys starting with '_' are comments */
            cJSON *it = doc->child;
            while (it) {
                cJSON *next = it->next;
                if (it->string && it->string[0] == '_')
                    cJSON_Delete(cJSON_DetachItemViaPointer(doc, it));
                it = next;
            }
        }
        bool ok = doc && sim_behavior_patch(&s->initial, NULL, doc, &seed_changed, err, sizeof err);
        cJSON_Delete(doc);
        if (!ok) {
            fprintf(stderr, "switchboard-sim: scenario %s\n", err);
            return false;
        }
    }
    if (!sim_behavior_patch(&s->initial, NULL, o->patch, &seed_changed, err, sizeof err)) {
        fprintf(stderr, "switchboard-sim: %s\n", err);
        return false;
    }
    s->behavior = s->initial;
    sim_server_reseed_locked(s); /* no other thread yet */
    return true;
}

static bool write_port_file(const char *path, unsigned port, unsigned cport)
{
    char *tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    bool ok = f && fprintf(f, "%u %u\n", port, cport) > 0;
    ok = f && fclose(f) == 0 && ok;
    ok = ok && rename(tmp, path) == 0;
    if (!ok) {
        fprintf(stderr, "switchboard-sim: cannot write port file %s: %s\n", path, strerror(errno));
        unlink(tmp);
    }
    free(tmp);
    return ok;
}

/* Brings the main daemon in line with the behaviour's outage. */
static void reconcile(struct sim_server *s)
{
    char err[256];
    pthread_mutex_lock(&s->lock);
    uint64_t gen = s->behavior_gen;
    bool want = s->behavior.outage != SIM_OUTAGE_REFUSE;
    pthread_mutex_unlock(&s->lock);
    if (!want && s->main_d) {
        sim_http_stop_main(s, gen);
        log_info("main port %u closed (outage refuse)", (unsigned)s->cfg.port);
    } else if (want && !s->main_d) {
        if (sim_http_start_main(s, err, sizeof err))
            log_info("main port %u listening again", (unsigned)s->cfg.port);
        else
            log_warn("cannot reopen the main port: %s (retrying)", err);
    }
    pthread_mutex_lock(&s->lock);
    s->main_listening = s->main_d != NULL;
    if (gen > s->applied_gen)
        s->applied_gen = gen;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

static bool needs_retry(struct sim_server *s)
{
    pthread_mutex_lock(&s->lock);
    bool want = s->behavior.outage != SIM_OUTAGE_REFUSE;
    pthread_mutex_unlock(&s->lock);
    return want && !s->main_d;
}

static void supervise(struct sim_server *s, int sig_fd)
{
    for (;;) {
        struct pollfd p[2] = {{.fd = sig_fd, .events = POLLIN},
                              {.fd = s->wake_fd[0], .events = POLLIN}};
        int n = poll(p, 2, needs_retry(s) ? RETRY_START_MS : -1);
        if (n < 0 && errno != EINTR) {
            log_error("poll: %s", strerror(errno));
            return;
        }
        if (p[0].revents & POLLIN) {
            struct signalfd_siginfo si;
            if (read(sig_fd, &si, sizeof si) == (ssize_t)sizeof si)
                log_info("signal %u: shutting down", si.ssi_signo);
            return;
        }
        if (p[1].revents & POLLIN) {
            char drain[64];
            while (read(s->wake_fd[0], drain, sizeof drain) > 0) {
            }
        }
        reconcile(s);
    }
}

static bool server_init(struct sim_server *s)
{
    pthread_condattr_t ca;
    memset(s, 0, sizeof *s);
    s->cfg.name = xstrdup("sim");
    s->cfg.key = xstrdup("sim-key");
    s->cfg.model_default = xstrdup("sim-model");
    s->cfg.host = xstrdup("127.0.0.1");
    s->wake_fd[0] = s->wake_fd[1] = -1;
    atomic_init(&s->stopping, false);
    atomic_init(&s->main_epoch, 0);
    pthread_mutex_init(&s->lock, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cond, &ca);
    pthread_condattr_destroy(&ca);
    return pipe2(s->wake_fd, O_NONBLOCK | O_CLOEXEC) == 0;
}

static void server_cleanup(struct sim_server *s)
{
    sim_stats_cleanup(&s->stats);
    free(s->cfg.name);
    free(s->cfg.key);
    free(s->cfg.model_default);
    free(s->cfg.host);
    for (int i = 0; i < 2; i++) {
        if (s->wake_fd[i] >= 0)
            close(s->wake_fd[i]);
    }
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->lock);
}

/* Starts both daemons; the port numbers are published under the lock. */
static bool start(struct sim_server *s)
{
    char err[256];
    if (!sim_http_start_control(s, err, sizeof err) || !sim_http_start_main(s, err, sizeof err)) {
        fprintf(stderr, "switchboard-sim: %s\n", err);
        return false;
    }
    pthread_mutex_lock(&s->lock);
    s->main_listening = true;
    pthread_mutex_unlock(&s->lock);
    reconcile(s); /* an "outage":"refuse" at start closes the port before anyone is told */
    return true;
}

int main(int argc, char **argv)
{
    struct sim_server s;
    struct sim_opts o = {.patch = cJSON_CreateObject()};
    sigset_t sigs;
    int rc = 1, sig_fd = -1;
    if (!server_init(&s)) {
        perror("switchboard-sim: pipe");
        goto out;
    }
    int pf = parse_flags(argc, argv, &s, &o);
    if (pf != 0) {
        rc = pf == 2 ? 0 : 2;
        goto out;
    }
    log_setup(s.cfg.quiet ? LOG_LEVEL_WARN : LOG_LEVEL_INFO, -1);
    if (!host_ok(s.cfg.host, o.allow_remote) || !initial_behavior(&s, &o))
        goto out;

    /* Signals go to the signalfd only: block them before any thread exists. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);
    sig_fd = signalfd(-1, &sigs, SFD_CLOEXEC);
    if (sig_fd < 0) {
        perror("switchboard-sim: signalfd");
        goto out;
    }
    if (!start(&s))
        goto stop;
    printf("switchboard-sim %s listening on %s:%u control %s:%u\n", s.cfg.name, s.cfg.host,
           (unsigned)s.cfg.port, s.cfg.host, (unsigned)s.cfg.control_port);
    fflush(stdout);
    if (o.port_file && !write_port_file(o.port_file, s.cfg.port, s.cfg.control_port))
        goto stop;
    supervise(&s, sig_fd);
    rc = 0;
stop:
    atomic_store(&s.stopping, true);
    pthread_mutex_lock(&s.lock);
    pthread_cond_broadcast(&s.cond);
    pthread_mutex_unlock(&s.lock);
    sim_http_stop_main(&s, 0);
    sim_http_stop_control(&s);
out:
    if (sig_fd >= 0)
        close(sig_fd);
    cJSON_Delete(o.patch);
    server_cleanup(&s);
    return rc;
}
