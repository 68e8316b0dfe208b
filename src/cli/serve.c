/*
 * serve.c - `switchboard serve`: the router and the gateway, headless. The main thread owns
 * signal handling: every signal of interest is blocked before any thread starts (threads
 * inherit the mask) and taken synchronously with sigtimedwait, so no handler runs in
 * library code. SIGHUP reloads the config (a bad file is rejected and the old one stays).
 * SIGTERM or SIGINT drains: the gateway takes no new calls and /readyz answers 503 while the
 * calls in flight finish, for up to gateway.drain_timeout_ms; then (or at a second SIGTERM or
 * SIGINT, at once) the gateway ends what is left as a shutdown, and the router stops.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "internal.h"
#include "switchboard/cli.h"
#include "switchboard/config.h"
#include "switchboard/gateway.h"
#include "switchboard/log.h"
#include "switchboard/router.h"

struct serve_opts {
    const char *config_path;
    const char *listen;
    const char *port_file;
    const char *log_level;
};

static void serve_usage(FILE *out)
{
    fprintf(out,
            "usage: switchboard serve -c FILE [--listen HOST:PORT] [--port-file FILE]\n"
            "                         [--log-level debug|info|warn|error]\n"
            "  Runs the gateway and the router without the console. SIGHUP reloads FILE;\n"
            "  SIGTERM/SIGINT drain (calls in flight finish, up to gateway.drain_timeout_ms),\n"
            "  a second one stops at once. --port-file gets the bound port (useful with\n"
            "  port 0), and the admin_listen port on a second line when there is one.\n");
}

static int parse(int argc, char **argv, struct serve_opts *o)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"listen", required_argument, NULL, 'l'},
        {"port-file", required_argument, NULL, 'p'},
        {"log-level", required_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            o->config_path = optarg;
            break;
        case 'l':
            o->listen = optarg;
            break;
        case 'p':
            o->port_file = optarg;
            break;
        case 'v':
            o->log_level = optarg;
            break;
        case 'h':
            serve_usage(stdout);
            return 0;
        default:
            serve_usage(stderr);
            return 2;
        }
    }
    if (!o->config_path || optind != argc) {
        serve_usage(stderr);
        return 2;
    }
    return -1;
}

static void wait_for_signals(struct router *rt, struct gateway *gw, const sigset_t *set,
                             const struct serve_opts *o)
{
    for (;;) {
        int sig = sigwaitinfo(set, NULL);
        if (sig < 0 && errno == EINTR)
            continue;
        if (sig == SIGHUP) {
            cli_reload(rt, gw, o->config_path, o->listen);
            continue;
        }
        log_info("signal %d (%s): draining", sig, strsignal(sig));
        return;
    }
}

int cli_serve(int argc, char **argv)
{
    struct serve_opts o = {0};
    int rc = parse(argc, argv, &o);
    if (rc >= 0)
        return rc;
    char msg[256];
    struct buf errors;
    buf_init(&errors);
    struct router *rt = NULL;
    struct gateway *gw = NULL;
    rc = 2;
    struct config *cfg = cli_load_config(o.config_path, o.listen, &errors);
    if (!cfg) {
        fprintf(stderr, "error: %s\n", buf_str(&errors));
        goto out;
    }
    bool ok;
    enum log_level lvl = log_level_from_name(o.log_level ? o.log_level : cfg->log_level, &ok);
    log_setup(ok ? lvl : LOG_LEVEL_INFO, -1);

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    cli_raise_nofile();

    rc = 1;
    size_t n_targets = cfg->n_targets, n_routes = cfg->n_routes;
    int64_t drain_ms = cfg->gateway.drain_timeout_ms;
    char host[128];
    str_copy(host, sizeof host, cfg->gateway.listen);
    char *colon = strrchr(host, ':');
    if (colon)
        *colon = '\0';
    struct config *borrowed = cfg;
    rt = router_new(cfg, msg, sizeof msg); /* owns cfg from here on */
    if (!rt) {
        fprintf(stderr, "error: %s\n", msg);
        goto out;
    }
    /* The router thread has not started: borrowed is still safe to read, and the gateway
     * copies what it needs from it. */
    gw = gateway_new(borrowed, rt, msg, sizeof msg);
    if (!gw || router_start(rt, msg, sizeof msg) != SB_OK ||
        gateway_start(gw, msg, sizeof msg) != SB_OK) {
        fprintf(stderr, "error: %s\n", msg);
        goto out;
    }
    unsigned port = gateway_port(gw);
    printf("switchboard serving on %s:%u (%zu targets, %zu routes)\n", host, port, n_targets,
           n_routes);
    if (gateway_admin_port(gw))
        printf("ops endpoints (/healthz, /readyz, /metrics, /admin/) on port %u\n",
               gateway_admin_port(gw));
    fflush(stdout);
    if (o.port_file && !cli_write_ports(o.port_file, port, gateway_admin_port(gw))) {
        fprintf(stderr, "error: cannot write %s: %s\n", o.port_file, strerror(errno));
        goto out;
    }
    wait_for_signals(rt, gw, &set, &o);
    cli_drain(rt, gw, &set, o.config_path, o.listen, drain_ms);
    rc = 0;
out:
    gateway_free(gw);
    router_free(rt);
    buf_cleanup(&errors);
    return rc;
}
