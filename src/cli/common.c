/*
 * common.c - config loading, SIGHUP reloads and port files for serve and console.
 * Main thread only.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "internal.h"
#include "switchboard/log.h"

struct config *cli_load_config(const char *path, const char *listen, struct buf *errors)
{
    struct config_diag errs;
    config_diag_init(&errs);
    struct config *cfg = config_load(path, &errs);
    for (size_t i = 0; i < errs.n; i++)
        buf_printf(errors, "%s%s", i ? "; " : "", errs.items[i]);
    config_diag_cleanup(&errs);
    if (cfg && listen) {
        free(cfg->gateway.listen);
        cfg->gateway.listen = xstrdup(listen);
    }
    return cfg;
}

bool cli_reload(struct router *rt, struct gateway *gw, const char *path, const char *listen)
{
    struct buf errors;
    bool ok = false;
    buf_init(&errors);
    struct config *cfg = cli_load_config(path, listen, &errors);
    if (cfg) {
        log_info("SIGHUP: reloading %s", path);
        if (gw)
            gateway_reload(gw, cfg); /* copies what it needs */
        router_reload(rt, cfg);
        ok = true;
    } else {
        log_error("SIGHUP: %s rejected, keeping the running config: %s", path, buf_str(&errors));
        char text[192];
        snprintf(text, sizeof text, "config reload rejected: %s", buf_str(&errors));
        router_note(rt, ROUTER_EV_CONFIG, "", text);
    }
    buf_cleanup(&errors);
    return ok;
}

bool cli_write_port_file(const char *path, unsigned port)
{
    return cli_write_ports(path, port, 0);
}

bool cli_write_ports(const char *path, unsigned port, unsigned admin_port)
{
    char *tmp = xasprintf("%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    bool ok = f && fprintf(f, "%u\n", port) > 0;
    if (ok && admin_port)
        ok = fprintf(f, "%u\n", admin_port) > 0;
    if (f)
        ok = (fclose(f) == 0) && ok;
    ok = ok && rename(tmp, path) == 0;
    free(tmp);
    return ok;
}

/* Each streamed call holds a client socket and an upstream socket: raise the soft limit on
 * open files to the hard limit so a thousand concurrent streams fit. */
void cli_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            log_warn("cannot raise the open-file limit: %s", strerror(errno));
    }
}

void cli_drain(struct router *rt, struct gateway *gw, const sigset_t *set, const char *path,
               const char *listen, int64_t drain_ms)
{
    gateway_drain(gw);
    int64_t until = clock_mono_ms() + drain_ms;
    for (;;) {
        int64_t left = until - clock_mono_ms();
        if (gateway_wait_idle(gw, left < 50 ? left : 50)) {
            log_info("drained: no call in flight");
            return;
        }
        if (left <= 0) {
            log_warn("drain: %ld calls still in flight after %lld ms: ending them",
                     gateway_in_flight(gw), (long long)drain_ms);
            return;
        }
        struct timespec zero = {0, 0};
        int sig = sigtimedwait(set, NULL, &zero);
        if (sig == SIGHUP)
            cli_reload(rt, gw, path, listen);
        else if (sig > 0) {
            log_warn("signal %d (%s) while draining: stopping now, %ld calls in flight", sig,
                     strsignal(sig), gateway_in_flight(gw));
            return;
        }
    }
}
