/* help.c — the --help test shared by `vulcan` and `vulcan-worker` (src/cli/lean). */
#include "cli/cli.h"

#include <string.h>

bool vk__cli_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            return false;
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
            return true;
    }
    return false;
}
