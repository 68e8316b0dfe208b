/*
 * check.c - `switchboard check`: validates a config file and prints every error (exit 2),
 * or a summary and the warnings (exit 0); `--reference` prints the configuration reference
 * generated from the schema tables. Main thread only.
 */
#include <getopt.h>
#include <stdio.h>

#include "switchboard/cli.h"
#include "switchboard/config.h"

static void check_usage(FILE *out)
{
    fprintf(out, "usage: switchboard check -c FILE\n"
                 "       switchboard check --reference\n"
                 "\n"
                 "  -c, --config FILE   validate FILE: print every error, or a summary and\n"
                 "                      the warnings (exit 2 when invalid)\n"
                 "      --reference     print the configuration reference (Markdown)\n"
                 "  -h, --help          show this help\n");
}

static int check_file(const char *path)
{
    struct config_diag errs, warns;
    struct buf out;
    config_diag_init(&errs);
    config_diag_init(&warns);
    buf_init(&out);
    int rc = 2;

    struct config *cfg = config_load(path, &errs);
    if (!cfg) {
        for (size_t i = 0; i < errs.n; i++)
            fprintf(stderr, "error: %s\n", errs.items[i]);
        fprintf(stderr, "%s: invalid (%zu error%s)\n", path, errs.n, errs.n == 1 ? "" : "s");
        goto out;
    }
    config_summary(cfg, &out);
    fputs(buf_str(&out), stdout);
    fflush(stdout);
    config_warnings(cfg, &warns);
    for (size_t i = 0; i < warns.n; i++)
        fprintf(stderr, "warning: %s\n", warns.items[i]);
    fflush(stderr);
    printf("%s: ok (%zu warning%s)\n", path, warns.n, warns.n == 1 ? "" : "s");
    rc = 0;

out:
    config_free(cfg);
    config_diag_cleanup(&errs);
    config_diag_cleanup(&warns);
    buf_cleanup(&out);
    return rc;
}

int cli_check(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"reference", no_argument, NULL, 'r'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *path = NULL;
    bool reference = false;
    int c;

    optind = 0; /* glibc: full reset, so the command can run more than once per process */
    opterr = 0;
    while ((c = getopt_long(argc, argv, "+c:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            path = optarg;
            break;
        case 'r':
            reference = true;
            break;
        case 'h':
            check_usage(stdout);
            return 0;
        default:
            if (optopt == 'c')
                fprintf(stderr, "switchboard check: -c needs a FILE\n");
            else
                fprintf(stderr, "switchboard check: unknown option '%s'\n", argv[optind - 1]);
            check_usage(stderr);
            return 2;
        }
    }
    if (optind < argc || (!path && !reference) || (path && reference)) {
        fprintf(stderr, "switchboard check: give either -c FILE or --reference\n");
        check_usage(stderr);
        return 2;
    }
    if (reference) {
        struct buf md;
        buf_init(&md);
        config_schema_markdown(&md);
        fputs(buf_str(&md), stdout);
        buf_cleanup(&md);
        return 0;
    }
    return check_file(path);
}
