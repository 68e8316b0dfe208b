/*
 * internal.h - pieces the long-running subcommands (serve, console) share. Main thread only.
 */
#ifndef SWITCHBOARD_CLI_INTERNAL_H
#define SWITCHBOARD_CLI_INTERNAL_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "switchboard/config.h"
#include "switchboard/gateway.h"
#include "switchboard/router.h"
#include "switchboard/util.h"

/* config_load, with every error joined into errors ("; "), and --listen applied. */
struct config *cli_load_config(const char *path, const char *listen, struct buf *errors);
/* SIGHUP: reloads path into rt (and gw's client keys; gw may be NULL); a bad file is logged
 * and noted on the timeline, the running config stays, and it returns false. */
bool cli_reload(struct router *rt, struct gateway *gw, const char *path, const char *listen);
/* Drains gw as `serve` does on SIGTERM: no new calls (503, /readyz 503) while the calls in
 * flight finish, for up to drain_ms; returns when they are done, at the deadline, or at a
 * SIGTERM/SIGINT in set (which must be blocked); SIGHUP reloads path meanwhile. Then call
 * gateway_stop / gateway_free. Main thread. Used by serve and by the embedded console. */
void cli_drain(struct router *rt, struct gateway *gw, const sigset_t *set, const char *path,
               const char *listen, int64_t drain_ms);
/* Writes "PORT\n" to path atomically (temp file + rename). */
bool cli_write_port_file(const char *path, unsigned port);
/* The same, with admin_port (when not 0) on a second line. */
bool cli_write_ports(const char *path, unsigned port, unsigned admin_port);
/* Soft open-file limit up to the hard one (serve and console hold two sockets a stream). */
void cli_raise_nofile(void);

#endif
