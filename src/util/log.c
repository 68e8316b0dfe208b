/*
 * log.c - leveled log lines "2026-11-21T20:10:00.123Z WARN message".
 * Configured once before threads start (log_setup); afterwards read-only, so any thread may
 * log. Each line is formatted into a local buffer and written with a single write().
 * Control characters and backslashes in the message are written as \xNN: the message carries
 * paths, model names, tags and provider error text that a client or a provider chose, and
 * none of them may end a line early, forge a second one or send terminal escapes.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "switchboard/log.h"

static enum log_level g_min = LOG_LEVEL_INFO;
static int g_fd = 2;

static const char *const level_names[] = {"debug", "info", "warn", "error", "off"};

void log_setup(enum log_level min_level, int fd)
{
    g_min = min_level;
    g_fd = fd < 0 ? 2 : fd;
}

enum log_level log_level_from_name(const char *name, bool *ok)
{
    for (size_t i = 0; i < SB_ARRAY_LEN(level_names); i++) {
        if (str_eq(name, level_names[i])) {
            *ok = true;
            return (enum log_level)i;
        }
    }
    *ok = false;
    return LOG_LEVEL_INFO;
}

/* Appends text[0..tn) to line at n, control characters and '\\' as \xNN, stopping before
 * max (never inside an escape). Returns the new length. */
static size_t escape_into(char *line, size_t n, size_t max, const char *text, size_t tn)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < tn; i++) {
        unsigned char c = (unsigned char)text[i];
        bool plain = c >= 0x20 && c != 0x7f && c != '\\';
        if (n + (plain ? 1 : 4) > max)
            break;
        if (plain) {
            line[n++] = (char)c;
            continue;
        }
        line[n++] = '\\';
        line[n++] = 'x';
        line[n++] = hex[c >> 4];
        line[n++] = hex[c & 15];
    }
    return n;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
    if (level < g_min || level >= LOG_LEVEL_OFF)
        return;
    char line[2048];
    int64_t now = clock_wall_ms();
    time_t secs = (time_t)(now / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    size_t n = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
    int k =
        snprintf(line + n, sizeof line - n, ".%03dZ %s ", (int)(now % 1000), level_names[level]);
    n += (size_t)(k > 0 ? k : 0);
    char text[2048];
    va_list ap;
    va_start(ap, fmt);
    k = vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    size_t tn = k < 0 ? 0 : (size_t)k >= sizeof text ? sizeof text - 1 : (size_t)k;
    n = escape_into(line, n, sizeof line - 1, text, tn);
    line[n++] = '\n';
    ssize_t w = write(g_fd, line, n);
    (void)w;
}
