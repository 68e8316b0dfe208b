/*
 * main.c - the switchboard command: dispatches subcommands (see cli.h).
 */
#include <stdio.h>

#include "switchboard/cli.h"

int main(int argc, char **argv)
{
    return cli_main(argc, argv);
}
