/*
 * vulcan-worker: `vulcan worker` as an executable of its own (issue 16). It is linked
 * with the worker's modules only (worker built without its /metrics listener, the http
 * client, git, telemetry, auth's token helpers, util) and with --as-needed, so that the
 * server's shared libraries (libmicrohttpd and GnuTLS, SQLite, libpq, xmlsec, libxml2,
 * argon2) are not loaded: they made up most of an idle `vulcan worker`'s resident memory.
 * Same options and behaviour; with --metrics-listen it runs `vulcan worker` (next to this
 * binary), which has the HTTP server for /metrics. `vulcan server --workers N` and
 * `vulcan run` start it instead of `vulcan worker` when it sits next to `vulcan`.
 */
#include "cli/cli.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Run `<dir of this binary>/vulcan worker ARGS...` instead; returns only on failure. */
static int full_worker(int argc, char **argv)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return 1;
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (!slash || (size_t)(slash - self) + sizeof("/vulcan") > sizeof self)
        return 1;
    memcpy(slash, "/vulcan", sizeof("/vulcan"));
    char **av = calloc((size_t)argc + 2, sizeof(*av));
    if (!av)
        return 1;
    av[0] = self;
    av[1] = "worker";
    for (int i = 1; i < argc; i++)
        av[i + 1] = argv[i];
    execv(self, av);
    fprintf(stderr, "vulcan-worker: --metrics-listen needs %s: %s\n", self, "cannot run it");
    free(av);
    return 1;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc && strcmp(argv[i], "--") != 0; i++)
        if (strcmp(argv[i], "--metrics-listen") == 0 ||
            strncmp(argv[i], "--metrics-listen=", 17) == 0)
            return full_worker(argc, argv);
    /* argv[0] stands for the command, as `vulcan worker ...` passes "worker" there. */
    return vk__cli_worker(argc, argv);
}
