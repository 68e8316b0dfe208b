/*
 * report.c - `switchboard report`: what the calls in the ledger cost and how they went, by
 * target, route, tag or UTC day, as a table, CSV or JSON. Reads the ledger named by the
 * config (or --ledger) through its own read-only connection, so it works while `serve` is
 * writing. Main thread only.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "switchboard/cli.h"
#include "switchboard/config.h"
#include "switchboard/ledger.h"

struct report_opts {
    const char *config_path;
    const char *ledger_path;
    const char *since;
    const char *until;
    enum ledger_report_by by;
    enum ledger_report_format format;
};

static void report_usage(FILE *out)
{
    fprintf(
        out,
        "usage: switchboard report -c FILE [--since 24h|7d|30m|2026-11-01|2026-11-01T12:00:00Z]\n"
        "                          [--until DATE] [--by target|route|tag|day]\n"
        "                          [--format table|csv|json] [--ledger FILE]\n"
        "  Calls, errors, p50/p95 latency, tokens, spend, savings against each route's\n"
        "  baseline, calls without usage, retries and hedges, from the ledger. Times are\n"
        "  UTC; --since defaults to 24h, --by to target, --format to table.\n");
}

static int parse(int argc, char **argv, struct report_opts *o)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'}, {"since", required_argument, NULL, 's'},
        {"until", required_argument, NULL, 'u'},  {"by", required_argument, NULL, 'b'},
        {"format", required_argument, NULL, 'f'}, {"ledger", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            o->config_path = optarg;
            break;
        case 's':
            o->since = optarg;
            break;
        case 'u':
            o->until = optarg;
            break;
        case 'b':
            if (!ledger_report_by_parse(optarg, &o->by)) {
                fprintf(stderr, "error: --by %s: expected target, route, tag or day\n", optarg);
                return 2;
            }
            break;
        case 'f':
            if (!ledger_report_format_parse(optarg, &o->format)) {
                fprintf(stderr, "error: --format %s: expected table, csv or json\n", optarg);
                return 2;
            }
            break;
        case 'l':
            o->ledger_path = optarg;
            break;
        case 'h':
            report_usage(stdout);
            return 0;
        default:
            report_usage(stderr);
            return 2;
        }
    }
    if ((!o->config_path && !o->ledger_path) || optind != argc) {
        report_usage(stderr);
        return 2;
    }
    return -1;
}

/* The ledger path from the config (relative paths resolved against it). NULL with a message
 * printed when the config is invalid. Caller frees. */
static char *ledger_from_config(const char *path)
{
    struct config_diag errs;
    config_diag_init(&errs);
    struct config *cfg = config_load(path, &errs);
    char *ledger = cfg ? xstrdup(cfg->ledger.path) : NULL;
    for (size_t i = 0; i < errs.n; i++)
        fprintf(stderr, "error: %s\n", errs.items[i]);
    config_diag_cleanup(&errs);
    config_free(cfg);
    return ledger;
}

static bool window(const struct report_opts *o, int64_t now, int64_t *since, int64_t *until)
{
    const char *s = o->since ? o->since : "24h";
    if (!ledger_parse_since(s, now, since)) {
        fprintf(stderr,
                "error: --since %s: expected a duration back from now (30m, 24h, 7d) or a UTC "
                "date (2026-11-01 or 2026-11-01T12:00:00Z)\n",
                s);
        return false;
    }
    *until = now + 1;
    if (o->until && !ledger_parse_since(o->until, now, until)) {
        fprintf(stderr, "error: --until %s: expected a duration or a UTC date\n", o->until);
        return false;
    }
    if (*until <= *since) {
        fprintf(stderr, "error: the period is empty (--until is not after --since)\n");
        return false;
    }
    return true;
}

int cli_report(int argc, char **argv)
{
    struct report_opts o = {.by = LEDGER_BY_TARGET, .format = LEDGER_FORMAT_TABLE};
    int rc = parse(argc, argv, &o);
    if (rc >= 0)
        return rc;
    char *path = NULL;
    struct ledger_report *rep = NULL;
    struct buf out;
    buf_init(&out);
    rc = 2;
    path = o.ledger_path ? xstrdup(o.ledger_path) : ledger_from_config(o.config_path);
    if (!path)
        goto out;
    if (str_eq(path, ":memory:")) {
        fprintf(stderr, "error: ledger.path is \":memory:\": nothing is kept to report on\n");
        goto out;
    }
    int64_t now = clock_wall_ms(), since, until;
    if (!window(&o, now, &since, &until))
        goto out;
    rep = ledger_report_new(o.by);
    char msg[512];
    rc = 1;
    if (ledger_read_calls(path, since, until, ledger_report_add, rep, msg, sizeof msg) != SB_OK) {
        fprintf(stderr, "error: %s\n", msg);
        goto out;
    }
    ledger_report_render(rep, o.format, since, until, &out);
    fwrite(buf_str(&out), 1, out.len, stdout);
    rc = fflush(stdout) == 0 ? 0 : 1;
out:
    ledger_report_free(rep);
    buf_cleanup(&out);
    free(path);
    return rc;
}
