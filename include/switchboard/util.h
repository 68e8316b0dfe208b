/*
 * util.h - small shared pieces: allocation, growable byte buffers, clocks, strings.
 *
 * Threads: every function here is safe to call from any thread; a struct buf belongs to
 * whoever holds it (no internal locking).
 * Memory: out of memory aborts inside xmalloc and friends (one place, like tmux/redis), so
 * callers never test their results. Everything a remote party controls is capped elsewhere.
 */
#ifndef SWITCHBOARD_UTIL_H
#define SWITCHBOARD_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The project's one status enum for actions that can fail (kernel §16: actions return an
 * error code). Detailed text goes in a caller-supplied message buffer next to it. */
enum sb_status {
    SB_OK,
    SB_ERR_INVALID,     /* bad argument or bad input */
    SB_ERR_PARSE,       /* malformed JSON or text */
    SB_ERR_UNSUPPORTED, /* valid but not supported (by us or by the target's wire format) */
    SB_ERR_LIMIT,       /* over a size or count cap */
    SB_ERR_NOT_FOUND,
    SB_ERR_IO,    /* system call failed; errno text in the message */
    SB_ERR_STATE, /* not allowed in the current state */
};
const char *sb_strerror(enum sb_status s);

#define SB_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#if defined(__GNUC__)
#define SB_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define SB_PRINTF(fmt, args)
#endif

/* Allocation: never returns NULL (aborts with a message on exhaustion). */
void *xmalloc(size_t n);
void *xcalloc(size_t count, size_t size);
void *xrealloc(void *p, size_t n);
/* Grows an array of *cap elements of elem_size so it holds at least need; updates *cap. */
void *xgrow(void *p, size_t *cap, size_t need, size_t elem_size);
char *xstrdup(const char *s); /* xstrdup(NULL) returns NULL */
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) SB_PRINTF(1, 2);
char *xvasprintf(const char *fmt, va_list ap) SB_PRINTF(1, 0);

/* Per-thread scratch arena for short-lived parse trees (src/util/scratch.c). The hooks are
 * cJSON's allocator (cli_main installs them): xmalloc/free, except that between
 * scratch_begin() (true when the arena was free and is now taking allocations) and
 * scratch_end() allocations come from this thread's arena. Such a tree must be freed on the
 * same thread; scratch_end() is called only after a true scratch_begin(). */
void *scratch_alloc_hook(size_t n);
void scratch_free_hook(void *p);
bool scratch_begin(void);
void scratch_end(void);

/* A growable byte buffer, always NUL-terminated once anything was appended.
 * Caller's storage: buf_init / buf_cleanup. */
struct buf {
    char *data; /* NULL until the first append */
    size_t len;
    size_t cap;
};

void buf_init(struct buf *b);
void buf_cleanup(struct buf *b);
void buf_reset(struct buf *b); /* len = 0, keeps capacity */
void buf_append(struct buf *b, const void *data, size_t len);
void buf_puts(struct buf *b, const char *s);
void buf_putc(struct buf *b, char c);
void buf_printf(struct buf *b, const char *fmt, ...) SB_PRINTF(2, 3);
void buf_vprintf(struct buf *b, const char *fmt, va_list ap) SB_PRINTF(2, 0);
/* Appends s as a JSON string literal, quotes included, escaped as cJSON prints strings. */
void buf_put_json_string(struct buf *b, const char *s, size_t len);
/* The same without the quotes: one piece of a string written in several. */
void buf_put_json_chars(struct buf *b, const char *s, size_t len);
/* Drops the first n bytes. */
void buf_consume(struct buf *b, size_t n);
/* Returns the data (never NULL: "" when empty) and leaves b empty; caller frees. */
char *buf_take(struct buf *b);
/* Read-only view: "" when empty. Valid until the next change to b. */
const char *buf_str(const struct buf *b);

/* Clocks, in milliseconds / microseconds. Monotonic for durations, wall for timestamps. */
int64_t clock_mono_ms(void);
int64_t clock_mono_us(void);
int64_t clock_wall_ms(void);
void clock_sleep_ms(int64_t ms);
/* ts = now on CLOCK_REALTIME + ms (ms < 0 counts as 0): the absolute deadline
 * pthread_cond_timedwait takes. */
struct timespec;
void clock_deadline_in(struct timespec *ts, int64_t ms);

/* Strings. */
bool str_eq(const char *a, const char *b);  /* NULL-safe */
bool str_ieq(const char *a, const char *b); /* ASCII case-insensitive, NULL-safe */
bool str_has_prefix(const char *s, const char *prefix);
/* Does s (NULL: no) hold a control character (0x00-0x1f, 0x7f)? Such a value would split or
 * bend an HTTP header line. */
bool str_has_ctl(const char *s);
/* Is s usable as one URL path segment as is: 1..256 of [A-Za-z0-9._-], and not "." or ".."?
 * (Gemini model ids go into the URL path.) */
bool str_is_path_segment(const char *s);
/* Copies at most dst_size-1 bytes and always terminates (dst_size > 0). Returns strlen(src). */
size_t str_copy(char *dst, size_t dst_size, const char *src);
/* Strict integer / number parsing: the whole string must be consumed. */
bool str_to_long(const char *s, long *out);
bool str_to_double(const char *s, double *out);
/* Length of the longest prefix of s[0..len) that is valid UTF-8 and does not end inside a
 * multi-byte sequence. */
size_t utf8_valid_prefix(const char *s, size_t len);
/* Appends s to b, replacing each invalid UTF-8 sequence with U+FFFD. */
void utf8_sanitize_append(struct buf *b, const char *s, size_t len);
/* 64-bit FNV-1a hash. */
uint64_t hash_fnv1a(const void *data, size_t len);

#endif
