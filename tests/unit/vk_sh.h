/*
 * vk_sh.h — run a set-up shell command in a test or benchmark (no cmocka needed).
 */
#ifndef VULCAN_VK_SH_H
#define VULCAN_VK_SH_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

/*
 * Run a shell command made from `fmt` (test set-up only: our own temporary paths) and
 * return its status, printing the command when it failed.
 */
static inline int vk_test_sh_status(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline int vk_test_sh_status(const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(cmd)) {
        fprintf(stderr, "command too long: %.200s\n", cmd);
        return -1;
    }
    int rc = system(cmd);
    if (rc != 0)
        fprintf(stderr, "command failed (%d): %s\n", rc, cmd);
    return rc;
}
#endif
