/*
 * test_exec_common.h — helpers shared by the executor tests (test_exec*.c):
 * a per-binary executor env in a temporary work root, an output collector and
 * process checks.
 */
#ifndef VK_TEST_EXEC_COMMON_H
#define VK_TEST_EXEC_COMMON_H

#include "vk_test.h"
#include "vulcan/executor.h"
#include "worker/exec_int.h"

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static struct vk_exec_env g_env;
static char g_root[256]; /* temporary directory holding the work root and fixtures */
static char g_work[300];

struct collected {
    struct vk_buf b;
    size_t calls;
};

static void collect(void *ctx, const char *data, size_t len)
{
    struct collected *c = ctx;
    c->calls++;
    if (vk_buf_add(&c->b, data, len) < 0)
        fail_msg("collector overflow");
}

static inline void collected_init(struct collected *c)
{
    vk_buf_init(&c->b, 64u * 1024u * 1024u);
    c->calls = 0;
}

/* The collected text ("" when nothing came). */
static inline const char *outs(const struct collected *c)
{
    return c->b.data;
}

static int env_setup(void **state)
{
    (void)state;
    snprintf(g_root, sizeof g_root, "/tmp/vk-exec-test-XXXXXX");
    if (!mkdtemp(g_root))
        return -1;
    snprintf(g_work, sizeof g_work, "%s/work", g_root);
    struct vk_exec_config cfg = {.work_dir = g_work, .checkout_timeout_ms = 60000};
    struct vk_err err;
    if (vk_exec_env_init(&g_env, &cfg, &err) != 0) {
        fprintf(stderr, "env init: %s\n", err.msg);
        return -1;
    }
    return 0;
}

static int env_teardown(void **state)
{
    (void)state;
    vk_exec_env_release(&g_env);
    (void)vk__exec_rmtree(g_root, NULL);
    return 0;
}

/* A spec with the test defaults: sandbox none unless changed. */
static inline struct vk_exec_spec base_spec(const char *id, const char *script)
{
    struct vk_exec_spec s;
    memset(&s, 0, sizeof s);
    s.fragment_id = id;
    s.attempt = 1;
    s.script = script;
    s.sandbox = VK_EXEC_SANDBOX_NONE;
    s.kill_grace_ms = 1000;
    return s;
}

/* Run `spec`, collecting output into *c (initialised here). Returns vk_exec_run's value. */
static inline int run(const struct vk_exec_spec *spec, struct collected *c,
                      struct vk_exec_result *r)
{
    struct vk_err err;
    collected_init(c);
    return vk_exec_run(&g_env, spec, collect, c, NULL, r, &err);
}

/* True when `pid` is gone or a zombie nobody reaps yet (it cannot run any more). */
static inline bool pid_dead(pid_t pid)
{
    for (int i = 0; i < 100; i++) {
        if (kill(pid, 0) < 0 && errno == ESRCH)
            return true;
        char path[64], buf[512];
        snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
        FILE *f = fopen(path, "r");
        if (!f)
            return true;
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        char *rp = strrchr(buf, ')');
        if (rp && (rp[2] == 'Z' || rp[2] == 'X'))
            return true;
        vk__exec_sleep_ms(20);
    }
    return false;
}

static inline long read_pid_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long p = -1;
    if (fscanf(f, "%ld", &p) != 1)
        p = -1;
    fclose(f);
    return p;
}

static inline bool path_exists(const char *p)
{
    struct stat st;
    return lstat(p, &st) == 0;
}

#endif
