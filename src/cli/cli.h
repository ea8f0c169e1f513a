/*
 * The `vulcan` command: private interface between main.c and the cmd_*.c files.
 * Each subcommand is `int vk__cli_<name>(int argc, char **argv)`, where argv[0]
 * is the subcommand's name; it returns the process exit status (0 success,
 * 1 failure of the thing asked, 2 bad usage) and handles its own --help.
 */
#ifndef VULCAN_CLI_H
#define VULCAN_CLI_H

#include <stdbool.h>
#include <stdio.h>

typedef int vk_cli_fn(int argc, char **argv);

struct vk_cli_cmd {
    const char *name;
    const char *summary;
    vk_cli_fn *fn;
};

/* Subcommands (one file each). Add a line here and in main.c's table. */
vk_cli_fn vk__cli_kdl;
vk_cli_fn vk__cli_parse;

/** True when argv holds -h or --help before any "--". */
bool vk__cli_wants_help(int argc, char **argv);

#endif
