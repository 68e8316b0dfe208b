/*
 * log.h - leveled logging to stderr or a file.
 *
 * Threads: any thread may log; each line goes out in one write() so lines never interleave.
 * Secrets: never pass an API key or an Authorization header to these functions. Provider
 * error text is passed through log_sanitize-style helpers by callers (see provider.h).
 */
#ifndef SWITCHBOARD_LOG_H
#define SWITCHBOARD_LOG_H

#include "switchboard/util.h"

enum log_level {
    LOG_LEVEL_DEBUG,
    LOG_LEVEL_INFO,
    LOG_LEVEL_WARN,
    LOG_LEVEL_ERROR,
    LOG_LEVEL_OFF,
};

/* Set once at start-up, before other threads exist. fd < 0 means stderr. */
void log_setup(enum log_level min_level, int fd);
enum log_level log_level_from_name(const char *name, bool *ok);

void log_msg(enum log_level level, const char *fmt, ...) SB_PRINTF(2, 3);

#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_LEVEL_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)

#endif
