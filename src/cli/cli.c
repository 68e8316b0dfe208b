/*
 * cli.c - subcommand table and top-level usage. Main thread only.
 *
 * Before anything else the process makes itself non-dumpable (PR_SET_DUMPABLE 0): no core
 * file full of API keys, and other processes of the same user cannot ptrace it or read its
 * memory through /proc. SWITCHBOARD_DEBUG_DUMPABLE=1 in the environment keeps the default
 * (for debugging a crash with a core dump or a debugger).
 */
#include <sys/prctl.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "switchboard/cli.h"
#include "switchboard/util.h"

#define SWITCHBOARD_VERSION "0.1.0"

struct cli_command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *usage;
};

static const struct cli_command commands[] = {
    {"check", cli_check, "check -c FILE            validate a config, summarise it, warn"},
    {"serve", cli_serve,
     "serve -c FILE [--listen HOST:PORT] [--port-file FILE]   gateway + router, headless"},
    {"console", cli_console,
     "console -c FILE [--readonly] [--theme NAME] [--log FILE]   the live console (default)\n"
     "  console --attach URL [--attach URL ...] [--token-env NAME] [--cacert FILE] [--readonly]\n"
     "                         the console of running `serve` gateways (q detaches)"},
    {"route", cli_route,
     "route --explain -c FILE -m MODEL [--tag T] [--prompt-tokens N] [--server URL]   dry run"},
    {"ask", cli_ask,
     "ask -c FILE [-t TARGET | -m ROUTE] [--no-stream] PROMPT|-   one prompt, streamed"},
    {"report", cli_report,
     "report -c FILE [--since 24h] [--by target|route|tag|day] [--format table|csv|json]"},
    {"keys", cli_keys,
     "keys add|list|revoke -c FILE [NAME] [options] | keys hash   client keys in the ledger"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: switchboard COMMAND [options]\n\ncommands:\n");
    for (size_t i = 0; i < SB_ARRAY_LEN(commands); i++)
        fprintf(out, "  %s\n", commands[i].usage);
    fprintf(out, "  version                  print the version\n");
}

static void protect_process(void)
{
    const char *debug = getenv("SWITCHBOARD_DEBUG_DUMPABLE");
    if (debug && str_eq(debug, "1"))
        return;
    if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0)
        perror("switchboard: prctl(PR_SET_DUMPABLE)");
}

int cli_main(int argc, char **argv)
{
    protect_process();
    /* cJSON allocates through our wrappers, so running out of memory aborts in one place,
     * and short-lived parse trees can come from a per-thread arena (src/util/scratch.c). */
    cJSON_Hooks hooks = {scratch_alloc_hook, scratch_free_hook};
    cJSON_InitHooks(&hooks);
    if (argc < 2) {
        /* Plain `switchboard` is the console, on ./console.json when there is one. */
        if (access("console.json", R_OK) == 0) {
            char a0[] = "console", a1[] = "-c", a2[] = "console.json";
            char *args[] = {a0, a1, a2, NULL};
            return cli_console(3, args);
        }
        usage(stderr);
        fprintf(stderr, "\n(no ./console.json here: `switchboard console -c FILE` starts the "
                        "console)\n");
        return 2;
    }
    const char *name = argv[1];
    if (str_eq(name, "-h") || str_eq(name, "--help") || str_eq(name, "help")) {
        usage(stdout);
        return 0;
    }
    if (str_eq(name, "version") || str_eq(name, "--version")) {
        printf("switchboard %s\n", SWITCHBOARD_VERSION);
        return 0;
    }
    for (size_t i = 0; i < SB_ARRAY_LEN(commands); i++) {
        if (str_eq(name, commands[i].name))
            return commands[i].run(argc - 1, argv + 1);
    }
    fprintf(stderr, "switchboard: unknown command '%s'\n", name);
    usage(stderr);
    return 2;
}
