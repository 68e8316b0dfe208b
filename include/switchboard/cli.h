/*
 * cli.h - the `switchboard` subcommands (check, ask, serve, console, route, report).
 * Each runs on the main thread and returns the process exit status:
 *   0 success, 1 runtime failure (e.g. the provider answered with an error), 2 usage or
 *   configuration error.
 */
#ifndef SWITCHBOARD_CLI_H
#define SWITCHBOARD_CLI_H

int cli_main(int argc, char **argv);

int cli_check(int argc, char **argv);
int cli_ask(int argc, char **argv);
int cli_serve(int argc, char **argv);
int cli_route(int argc, char **argv);
int cli_console(int argc, char **argv);
int cli_report(int argc, char **argv);
int cli_keys(int argc, char **argv);

#endif
