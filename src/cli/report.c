/*
 * report.c - `switchboard report`: what the calls in the ledger cost and how they went, by
 * target, route, tag or UTC day, as a table, CSV or JSON; `switchboard report quality`: what
 * the answers were worth (abandonment, completion, satisfaction, cost per satisfied answer)
 * by target, route, tag, user or client key. Reads the ledger named by the
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
    const char *by_s;
    const char *min_volume;
    bool quality;
    enum ledger_report_by by;
    enum ledger_quality_by qby;
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
        "  UTC; --since defaults to 24h, --by to target, --format to table.\n"
        "\n"
        "usage: switchboard report quality -c FILE [--since ...] [--until ...]\n"
        "                          [--by target|route|tag|user|client] [--min-volume N]\n"
        "                          [--format table|csv|json] [--ledger FILE]\n"
        "  Per group: calls, abandoned calls (the client left), completion (stop or\n"
        "  tool_calls), feedback and mean score (-1..1; shown from --min-volume ratings,\n"
        "  default ledger.quality_min_volume), spend per call and per satisfied answer\n"
        "  (answered, not rated negative) and savings against the baseline.\n");
}

/* --by for the kind of report asked for. */
static bool resolve_by(struct report_opts *o)
{
    if (!o->by_s)
        return true;
    if (o->quality ? ledger_quality_by_parse(o->by_s, &o->qby)
                   : ledger_report_by_parse(o->by_s, &o->by))
        return true;
    fprintf(stderr, "error: --by %s: expected %s\n", o->by_s,
            o->quality ? "target, route, tag, user or client" : "target, route, tag or day");
    return false;
}

static int parse(int argc, char **argv, struct report_opts *o)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"since", required_argument, NULL, 's'},
        {"until", required_argument, NULL, 'u'},
        {"by", required_argument, NULL, 'b'},
        {"format", required_argument, NULL, 'f'},
        {"ledger", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {"min-volume", required_argument, NULL, 'm'},
        {NULL, 0, NULL, 0},
    };
    optind = 1;
    if (argc > 1 && str_eq(argv[1], "quality")) {
        o->quality = true;
        optind = 2;
    }
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
            o->by_s = optarg;
            break;
        case 'm':
            o->min_volume = optarg;
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
    return resolve_by(o) ? -1 : 2;
}

/* The ledger path from the config (relative paths resolved against it). NULL with a message
 * printed when the config is invalid. Caller frees. */
static char *ledger_from_config(const char *path, long *min_volume)
{
    struct config_diag errs;
    config_diag_init(&errs);
    struct config *cfg = config_load(path, &errs);
    char *ledger = cfg ? xstrdup(cfg->ledger.path) : NULL;
    if (cfg)
        *min_volume = cfg->ledger.quality_min_volume;
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

static int quality(const struct report_opts *o, const char *path, int64_t since, int64_t until,
                   long min_volume)
{
    long mv = min_volume;
    if (o->min_volume && (!str_to_long(o->min_volume, &mv) || mv < 1)) {
        fprintf(stderr, "error: --min-volume %s: expected a whole number >= 1\n", o->min_volume);
        return 2;
    }
    struct ledger_quality q;
    struct buf out;
    char msg[512];
    int rc = 1;
    ledger_quality_init(&q);
    buf_init(&out);
    if (ledger_quality_load(path, o->qby, since, until, (uint64_t)mv, &q, msg, sizeof msg) !=
        SB_OK) {
        fprintf(stderr, "error: %s\n", msg);
        goto out;
    }
    ledger_quality_render(&q, o->format, &out);
    fwrite(buf_str(&out), 1, out.len, stdout);
    rc = fflush(stdout) == 0 ? 0 : 1;
out:
    ledger_quality_cleanup(&q);
    buf_cleanup(&out);
    return rc;
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
    long min_volume = 20;
    path = o.ledger_path ? xstrdup(o.ledger_path) : ledger_from_config(o.config_path, &min_volume);
    if (!path)
        goto out;
    if (str_eq(path, ":memory:")) {
        fprintf(stderr, "error: ledger.path is \":memory:\": nothing is kept to report on\n");
        goto out;
    }
    int64_t now = clock_wall_ms(), since, until;
    if (!window(&o, now, &since, &until))
        goto out;
    if (o.quality) {
        rc = quality(&o, path, since, until, min_volume);
        goto out;
    }
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
