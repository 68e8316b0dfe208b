/*
 * console.c - `switchboard console` (and plain `switchboard` when ./console.json exists):
 * the router, the gateway and the probes in background threads, as `serve` runs them, and
 * the ncurses console on the main thread. Logs go to a file (--log, default switchboard.log
 * beside the config) and stderr is pointed there too while curses owns the terminal.
 *
 * Signals: SIGINT, SIGTERM, SIGHUP and SIGWINCH are blocked before any thread starts; the
 * console reads the first three from a signalfd (quit, quit, reload) and unblocks SIGWINCH
 * on the main thread for curses.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "internal.h"
#include "switchboard/cli.h"
#include "switchboard/config.h"
#include "switchboard/console.h"
#include "switchboard/console_backend.h"
#include "switchboard/gateway.h"
#include "switchboard/log.h"
#include "switchboard/router.h"

struct console_cli {
    const char *config_path;
    const char *attach[CONSOLE_MAX_INSTANCES]; /* --attach URL, in order */
    size_t n_attach;
    const char *fleet;        /* --fleet URL */
    const char *fleet_prefix; /* --fleet-prefix P */
    const char *token_env;    /* --token-env NAME (default SWITCHBOARD_ADMIN_TOKEN) */
    const char *cacert;
    const char *listen;
    const char *port_file;
    const char *log_path;
    const char *log_level;
    const char *theme;
    bool readonly;
    bool keys;
    struct router *rt;  /* for reloads */
    struct gateway *gw; /* for reloads */
};

static void console_usage(FILE *out)
{
    fprintf(
        out,
        "usage: switchboard console --attach URL [--attach URL ...] [--token-env NAME]\n"
        "                           [--cacert FILE] [--readonly] [--theme NAME] [--log FILE]\n"
        "       switchboard console -c FILE [--readonly] [--theme NAME] [--log FILE]\n"
        "                           [--listen HOST:PORT] [--port-file FILE]\n"
        "                           [--log-level debug|info|warn|error]\n"
        "       switchboard console --fleet redis[s]://HOST:PORT/DB|unix:///PATH [--fleet-prefix "
        "P]\n"
        "                           [--cacert FILE] [--readonly] [--theme NAME] [--log FILE]\n"
        "       switchboard console --keys\n"
        "  --attach: the console of running `switchboard serve` gateways (their admin API;\n"
        "  token from SWITCHBOARD_ADMIN_TOKEN or --token-env NAME). q detaches; the gateways\n"
        "  keep serving. Several --attach: one board over all of them.\n"
        "  --fleet: the instances of a fleet (fleet mode) found through their Redis heartbeats;\n"
        "  actions reach every instance through Redis (password from\n"
        "  SWITCHBOARD_REDIS_PASSWORD, key prefix fleet.key_prefix: --fleet-prefix).\n"
        "  rediss:// verifies Redis's certificate against --cacert FILE (else the system's\n"
        "  CAs); a client certificate from SWITCHBOARD_REDIS_TLS_CERT and _KEY (file names).\n"
        "  The gateway, router and probes in the background and the live console in the\n"
        "  terminal (embedded). --readonly refuses every change. Logs go to --log FILE (default:\n"
        "  switchboard.log beside the config). SIGHUP reloads FILE. --keys prints the key\n"
        "  and command reference as Markdown. With no command at all, `switchboard` runs\n"
        "  the console on ./console.json when that file exists.\n");
}

static int parse(int argc, char **argv, struct console_cli *o)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"listen", required_argument, NULL, 'l'},
        {"port-file", required_argument, NULL, 'p'},
        {"log", required_argument, NULL, 'L'},
        {"log-level", required_argument, NULL, 'v'},
        {"theme", required_argument, NULL, 't'},
        {"readonly", no_argument, NULL, 'r'},
        {"keys", no_argument, NULL, 'k'},
        {"attach", required_argument, NULL, 'a'},
        {"fleet", required_argument, NULL, 'F'},
        {"fleet-prefix", required_argument, NULL, 'P'},
        {"token-env", required_argument, NULL, 'T'},
        {"cacert", required_argument, NULL, 'C'},
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
        case 'L':
            o->log_path = optarg;
            break;
        case 'v':
            o->log_level = optarg;
            break;
        case 't':
            o->theme = optarg;
            break;
        case 'r':
            o->readonly = true;
            break;
        case 'k':
            o->keys = true;
            break;
        case 'a':
            if (o->n_attach == CONSOLE_MAX_INSTANCES) {
                fprintf(stderr, "error: at most %d --attach\n", CONSOLE_MAX_INSTANCES);
                return 2;
            }
            o->attach[o->n_attach++] = optarg;
            break;
        case 'T':
            o->token_env = optarg;
            break;
        case 'F':
            o->fleet = optarg;
            break;
        case 'P':
            o->fleet_prefix = optarg;
            break;
        case 'C':
            o->cacert = optarg;
            break;
        case 'h':
            console_usage(stdout);
            return 0;
        default:
            console_usage(stderr);
            return 2;
        }
    }
    if ((!o->config_path && !o->keys && !o->n_attach && !o->fleet) ||
        (!!o->config_path + !!o->n_attach + !!o->fleet > 1) || optind != argc) {
        console_usage(stderr);
        return 2;
    }
    return -1;
}

static bool reload(void *ctx)
{
    struct console_cli *o = ctx;
    return cli_reload(o->rt, o->gw, o->config_path, o->listen);
}

/* --log FILE, else switchboard.log beside the config, else /dev/null. */
static int open_log(const struct console_cli *o, char *path, size_t pathlen)
{
    if (o->log_path) {
        str_copy(path, pathlen, o->log_path);
    } else {
        const char *slash = strrchr(o->config_path, '/');
        int dir = slash ? (int)(slash - o->config_path) : 0;
        snprintf(path, pathlen, "%.*s%sswitchboard.log", dir, o->config_path, slash ? "/" : "");
    }
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (fd < 0) {
        str_copy(path, pathlen, "/dev/null");
        fd = open(path, O_WRONLY | O_CLOEXEC);
    }
    return fd;
}

/* The header's spend comes from the ledger-backed budgets: today's spend (UTC day), the
 * burn rate over the last hour, and the global daily budget when there is one (else the
 * budget closest to running out). */
static void console_spend_from_ledger(void *ctx, const struct router_snapshot *snap,
                                      struct console_spend *out)
{
    (void)ctx;
    out->spend_usd = snap->spend_today_usd;
    str_copy(out->label, sizeof out->label, "today");
    out->burn_per_hour = snap->burn_per_hour_usd;
    out->has_budget = false;
    out->exhausted_in_ms = -1;
    const struct budget_status *pick = NULL;
    for (size_t i = 0; i < snap->n_budgets; i++) {
        const struct budget_status *b = &snap->budgets[i];
        if (b->daily_cap <= 0)
            continue;
        if (b->scope == BUDGET_GLOBAL) {
            pick = b;
            break;
        }
        if (!pick ||
            (b->day_exhausted_in_ms >= 0 &&
             (pick->day_exhausted_in_ms < 0 || b->day_exhausted_in_ms < pick->day_exhausted_in_ms)))
            pick = b;
    }
    if (pick) {
        out->has_budget = true;
        out->budget_usd = pick->daily_cap;
        out->spend_usd = pick->day_spent;
        snprintf(out->label, sizeof out->label, "today %.20s", pick->label);
        out->burn_per_hour = pick->burn_per_hour;
        out->exhausted_in_ms = pick->day_exhausted_in_ms;
    }
}

static long gateway_conns(void *ctx)
{
    return gateway_connections(ctx);
}

static int run(struct console_cli *o, struct config *cfg, int log_fd)
{
    char msg[256];
    struct router *rt = NULL;
    struct gateway *gw = NULL;
    struct console_backend *be = NULL;
    int rc = 1;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGWINCH);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    char host[128], theme[64];
    str_copy(host, sizeof host, cfg->gateway.listen);
    char *colon = strrchr(host, ':');
    if (colon)
        *colon = '\0';
    str_copy(theme, sizeof theme,
             o->theme             ? o->theme
             : cfg->console.theme ? cfg->console.theme
                                  : "");
    long refresh_ms = (long)cfg->console.refresh_ms;
    long quality_min_volume = cfg->ledger.quality_min_volume;
    int64_t drain_ms = cfg->gateway.drain_timeout_ms;
    struct config *borrowed = cfg;
    cli_raise_nofile();
    rt = router_new(cfg, msg, sizeof msg); /* owns cfg from here on */
    if (!rt) {
        fprintf(stderr, "error: %s\n", msg);
        goto out;
    }
    o->rt = rt;
    gw = gateway_new(borrowed, rt, msg, sizeof msg);
    o->gw = gw;
    if (!gw || router_start(rt, msg, sizeof msg) != SB_OK ||
        gateway_start(gw, msg, sizeof msg) != SB_OK) {
        fprintf(stderr, "error: %s\n", msg);
        goto out;
    }
    unsigned port = gateway_port(gw);
    if (o->port_file && !cli_write_port_file(o->port_file, port)) {
        fprintf(stderr, "error: cannot write %s: %s\n", o->port_file, strerror(errno));
        goto out;
    }
    char addr[160];
    snprintf(addr, sizeof addr, "%s:%u", host, port);
    log_info("console: gateway on %s", addr);
    sigdelset(&set, SIGWINCH);
    struct console_opts copts = {
        .config_path = o->config_path,
        .gateway_addr = addr,
        .theme = theme[0] ? theme : NULL,
        .theme_explicit = o->theme != NULL,
        .refresh_ms = refresh_ms,
        .readonly = o->readonly,
        .quality_min_volume = quality_min_volume,
        .signals = &set,
        .reload = reload,
        .reload_ctx = o,
        .spend = console_spend_from_ledger,
    };
    struct console_local_opts lo = {.gateway_addr = addr, .conns = gateway_conns, .conns_ctx = gw};
    be = console_backend_local_new(rt, &lo);
    if (!be) {
        fprintf(stderr, "error: cannot start the console's worker thread\n");
        goto out;
    }
    fflush(stderr);
    int saved_stderr = dup(STDERR_FILENO);
    if (log_fd >= 0)
        dup2(log_fd, STDERR_FILENO);
    rc = console_run(be, &copts, msg, sizeof msg);
    if (saved_stderr >= 0) {
        dup2(saved_stderr, STDERR_FILENO);
        close(saved_stderr);
    }
    if (rc != 0) {
        fprintf(stderr, "error: %s\n", msg);
    } else { /* quitting stops the gateway: it drains as serve does on SIGTERM */
        long n = gateway_in_flight(gw);
        if (n > 0)
            fprintf(stderr,
                    "switchboard: draining: %ld calls in flight may finish (up to %lld s; "
                    "Ctrl-C stops now)\n",
                    n, (long long)(drain_ms / 1000));
        cli_drain(rt, gw, &set, o->config_path, o->listen, drain_ms);
    }
out:
    console_backend_free(be);
    gateway_free(gw);
    router_free(rt);
    return rc;
}

/* --log FILE, else nothing: an attached console has no config directory. */
static int open_attach_log(const struct console_cli *o)
{
    const char *path = o->log_path ? o->log_path : "/dev/null";
    int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    return fd >= 0 ? fd : open("/dev/null", O_WRONLY | O_CLOEXEC);
}

/* The backend of `console --attach` (the gateways' admin API) or `console --fleet` (Redis);
 * addr gets what the header shows. NULL with msg. */
static struct console_backend *attach_backend(const struct console_cli *o, char *addr,
                                              size_t addrlen, char *msg, size_t msglen)
{
    if (o->fleet) {
        struct console_fleet_opts fo = {.url = o->fleet,
                                        .prefix = o->fleet_prefix,
                                        .password = getenv("SWITCHBOARD_REDIS_PASSWORD"),
                                        .cacert = o->cacert,
                                        .tls_cert = getenv("SWITCHBOARD_REDIS_TLS_CERT"),
                                        .tls_key = getenv("SWITCHBOARD_REDIS_TLS_KEY")};
        const char *at = strstr(o->fleet, "://");
        snprintf(addr, addrlen, "fleet %s", at ? at + 3 : o->fleet);
        return console_backend_fleet_new(&fo, msg, msglen);
    }
    const char *env = o->token_env ? o->token_env : "SWITCHBOARD_ADMIN_TOKEN";
    const char *token = getenv(env);
    if (!token || !*token) {
        snprintf(msg, msglen, "%s is not set: the admin token of the gateway(s) to attach to", env);
        return NULL;
    }
    struct console_remote_opts ro = {
        .urls = o->attach, .n_urls = o->n_attach, .token = token, .cacert = o->cacert};
    size_t used = 0;
    for (size_t i = 0; i < o->n_attach && used < addrlen; i++) {
        const char *url = o->attach[i] ? o->attach[i] : "";
        const char *u = strstr(url, "://");
        u = u ? u + 3 : url;
        int n = snprintf(addr + used, addrlen - used, "%s%.*s", i ? " " : "attached ",
                         (int)strcspn(u, "/"), u);
        used += n > 0 ? (size_t)n : 0;
    }
    return console_backend_remote_new(&ro, msg, msglen);
}

/* `console --attach URL...` / `--fleet URL`: no router here; the backend talks to the
 * gateways (or to their Redis). */
static int run_attached(struct console_cli *o)
{
    char msg[256], addr[160] = "";
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGWINCH);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    struct console_backend *be = attach_backend(o, addr, sizeof addr, msg, sizeof msg);
    if (!be) {
        fprintf(stderr, "error: %s\n", msg);
        return 2;
    }
    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
        console_backend_free(be);
        fprintf(stderr, "error: the console needs a terminal\n");
        return 2;
    }
    sigdelset(&set, SIGWINCH);
    struct console_opts copts = {
        .gateway_addr = addr,
        .theme = o->theme,
        .theme_explicit = o->theme != NULL,
        .refresh_ms = 200,
        .readonly = o->readonly,
        .signals = &set,
        .spend = console_spend_from_ledger,
    };
    int log_fd = open_attach_log(o);
    log_setup(LOG_LEVEL_INFO, log_fd);
    fflush(stderr);
    int saved_stderr = dup(STDERR_FILENO);
    if (log_fd >= 0)
        dup2(log_fd, STDERR_FILENO);
    int rc = console_run(be, &copts, msg, sizeof msg);
    if (saved_stderr >= 0) {
        dup2(saved_stderr, STDERR_FILENO);
        close(saved_stderr);
    }
    console_backend_free(be);
    if (log_fd >= 0)
        close(log_fd);
    if (rc != 0)
        fprintf(stderr, "error: %s\n", msg);
    return rc;
}

int cli_console(int argc, char **argv)
{
    struct console_cli o = {0};
    int rc = parse(argc, argv, &o);
    if (rc >= 0)
        return rc;
    setlocale(LC_ALL, "");
    if (o.keys) {
        struct buf b;
        buf_init(&b);
        console_keys_markdown(&b);
        fputs(buf_str(&b), stdout);
        buf_cleanup(&b);
        return 0;
    }
    if (o.n_attach || o.fleet)
        return run_attached(&o);
    struct buf errors;
    buf_init(&errors);
    int log_fd = -1;
    rc = 2;
    struct config *cfg = cli_load_config(o.config_path, o.listen, &errors);
    if (!cfg) {
        fprintf(stderr, "error: %s\n", buf_str(&errors));
        goto out;
    }
    if (!isatty(STDIN_FILENO) || !isatty(STDOUT_FILENO)) {
        fprintf(stderr, "error: the console needs a terminal (use `switchboard serve`)\n");
        config_free(cfg);
        goto out;
    }
    char log_path[1024];
    log_fd = open_log(&o, log_path, sizeof log_path);
    bool ok;
    enum log_level lvl = log_level_from_name(o.log_level ? o.log_level : cfg->log_level, &ok);
    log_setup(ok ? lvl : LOG_LEVEL_INFO, log_fd >= 0 ? log_fd : -1);
    if (log_fd < 0)
        log_setup(LOG_LEVEL_OFF, -1);
    rc = run(&o, cfg, log_fd);
out:
    if (log_fd >= 0)
        close(log_fd);
    buf_cleanup(&errors);
    return rc;
}
