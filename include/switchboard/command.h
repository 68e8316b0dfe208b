/*
 * command.h - the operator command table (tmux cmd_table[]): every command an operator can
 * give the router, with its arguments, usage and help, in one place. The console's keys (its
 * key table names these commands), its `:` line, its help overlay and
 * `switchboard console --keys` all resolve through it, so they cannot disagree.
 *
 *   weight TARGET N [for DURATION]     force-live TARGET [for DURATION]
 *   pin TARGET [for DURATION]          drain TARGET [for DURATION]
 *   reset TARGET    probe TARGET    clear TARGET    undo
 *   route explain MODEL [tag=T] [tokens=N]
 *
 * Durations: 30s, 10m, 2h, 1d and sums of them (1h30m); a bare number is seconds.
 * A trailing "--yes" / "-y" is accepted and ignored (the `:` line never asks to confirm).
 *
 * Threads: pure functions over caller storage and a constant table; any thread.
 */
#ifndef SWITCHBOARD_COMMAND_H
#define SWITCHBOARD_COMMAND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "switchboard/router.h"
#include "switchboard/util.h"

enum command_kind {
    COMMAND_ROUTER,  /* becomes a struct router_cmd (router_command) */
    COMMAND_EXPLAIN, /* route explain: router_explain, changes nothing */
};

enum command_args {
    COMMAND_ARGS_NONE,          /* undo */
    COMMAND_ARGS_TARGET,        /* pin TARGET */
    COMMAND_ARGS_TARGET_NUMBER, /* weight TARGET N */
    COMMAND_ARGS_EXPLAIN,       /* route explain MODEL [tag=T] [tokens=N] */
};

struct command_def {
    const char *name;          /* first word on the `:` line */
    enum command_kind kind;    /* */
    enum router_cmd_type type; /* COMMAND_ROUTER only */
    enum command_args args;
    bool expiry;   /* takes "for DURATION" */
    bool mutating; /* changes router state: refused by a read-only console */
    bool confirm;  /* from a key, ask y/n first (incidents are when mistakes happen) */
    const char *usage;
    const char *help;
};

#define COMMAND_MAX_DURATION_MS (INT64_C(30) * 24 * 3600 * 1000) /* 30 days */

/* The table, in display order; *n gets its length. Static storage. */
const struct command_def *command_table(size_t *n);
/* The entry named name, or NULL. */
const struct command_def *command_find(const char *name);
/* The router command type's table entry (never NULL for a valid type). */
const struct command_def *command_for_type(enum router_cmd_type type);

/* A parsed command line. Caller's storage. */
struct command_parsed {
    const struct command_def *def;
    struct router_cmd cmd; /* COMMAND_ROUTER: type, target, weight, expires_ms (user "") */
    char model[64];        /* COMMAND_EXPLAIN */
    char tag[64];          /* COMMAND_EXPLAIN, "" when none */
    long tokens;           /* COMMAND_EXPLAIN, 0 when not given */
};

/*
 * Parses one command line (leading ':' allowed). SB_OK with out filled, or SB_ERR_INVALID
 * (unknown command, missing or extra argument, bad number or duration) with a message that
 * names the problem and shows the usage. Target names are not checked here (the router
 * answers "no target named x").
 */
enum sb_status command_parse_line(const char *line, struct command_parsed *out, char *err,
                                  size_t errlen);

/* As command_parse_line, for router commands only: `route explain` gives SB_ERR_UNSUPPORTED. */
enum sb_status command_parse(const char *line, struct router_cmd *out, char *err, size_t errlen);

/* "30s", "10m", "2h", "1d", "1h30m", "90" (seconds) -> milliseconds, > 0 and at most
 * COMMAND_MAX_DURATION_MS. */
bool command_parse_duration(const char *s, int64_t *out_ms);
/* ms -> "45s", "10m", "2h05m", "3d4h" (the two largest units). */
void command_format_duration(int64_t ms, char *out, size_t outlen);

/*
 * Completion for the word under the end of line: command names for the first word, target
 * names (or "explain", then route names) for the second. Matches point into the table or
 * into targets/routes (borrowed from the caller). *word_start gets the byte offset of the
 * word being completed. Returns the number of matches (at most max).
 */
size_t command_complete(const char *line, const char *const *targets, size_t n_targets,
                        const char *const *routes, size_t n_routes, const char **matches,
                        size_t max, size_t *word_start);
/* Length of the longest common prefix of the n strings (0 when n == 0). */
size_t command_common_prefix(const char *const *strings, size_t n);

#endif
