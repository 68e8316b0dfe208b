/*
 * quality.h - private to the console: the local backend's reader of this process's ledger
 * for the detail view's quality lines (quality.c). The remote backend reads GET
 * /admin/quality/TARGET instead (remote_quality.c).
 */
#ifndef SWITCHBOARD_CONSOLE_QUALITY_H
#define SWITCHBOARD_CONSOLE_QUALITY_H

#include <stdbool.h>

#include "switchboard/console_backend.h"

struct console_qreader;
/* Starts the reader thread over rt's ledger file; NULL when the ledger keeps nothing
 * (":memory:"). rt is borrowed. Main thread. */
struct console_qreader *console_qreader_start(struct router *rt);
/* Watches target (NULL or "": none) and copies its latest figures; false until read. With
 * q NULL: out says "no ledger", true. Main thread. */
bool console_qreader_get(struct console_qreader *q, const char *target,
                         struct console_quality *out);
void console_qreader_stop(struct console_qreader *q); /* NULL-safe; joins the thread */

#endif
