/* Local worker processes: `vulcan worker` children of `vulcan server --workers N` / `vulcan run`.
 */
#include "cli/cli.h"
#include "vulcan/auth.h"
#include "vulcan/telemetry.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/*
 * Fork and exec a local worker. The registration token goes in the child's environment
 * (never in argv, which every user sees in ps); the environment block is built before the
 * fork because the server has threads and a child may only call async-signal-safe functions.
 */
static pid_t spawn(char **argv, int log_fd, const char *reg_token)
{
    /* `vulcan-worker` next to this binary when it is there (the worker without the
     * server's libraries: a third less resident memory); else this binary's `worker`. */
    char lean[4096];
    ssize_t ln = readlink("/proc/self/exe", lean, sizeof(lean) - sizeof("/vulcan-worker"));
    char *slash = ln > 0 ? memrchr(lean, '/', (size_t)ln) : NULL;
    bool use_lean = false;
    if (slash) {
        memcpy(slash, "/vulcan-worker", sizeof("/vulcan-worker"));
        use_lean = access(lean, X_OK) == 0;
    }
    static const char key[] = "VULCAN_REGISTRATION_TOKEN=";
    size_t n = 0;
    while (environ[n])
        n++;
    char **envp = vk_mem_xcalloc(n + 2, sizeof(char *));
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], key, sizeof(key) - 1) != 0)
            envp[k++] = environ[i];
    char tok[sizeof(key) + VK_AUTH_TOKEN_MAX];
    if (reg_token && *reg_token) {
        snprintf(tok, sizeof(tok), "%s%s", key, reg_token);
        envp[k++] = tok;
    }
    envp[k] = NULL;
    pid_t pid = fork();
    if (pid != 0) {
        vk_auth_wipe(tok, sizeof(tok));
        vk_mem_free(envp);
        return pid;
    }
    /* Child: the parent blocks signals for sigwait; the worker must see them. */
    sigset_t all;
    sigemptyset(&all);
    sigprocmask(SIG_SETMASK, &all, NULL);
    if (log_fd >= 0 && (dup2(log_fd, 1) < 0 || dup2(log_fd, 2) < 0))
        _exit(127);
    if (use_lean)
        execve(lean, argv + 1, envp); /* argv[1] is "worker": the lean main's argv[0] */
    execve("/proc/self/exe", argv, envp);
    fprintf(stderr, "vulcan: cannot start a local worker: %s\n", strerror(errno));
    _exit(127);
}

void vk__cli_local_init(struct vk__cli_local *l, int log_fd)
{
    memset(l, 0, sizeof(*l));
    l->log_fd = log_fd;
}

int vk__cli_local_add(struct vk__cli_local *l, int n, const char *server_url,
                      const char *const *groups, size_t ngroups, const char *work_root,
                      const char *const *extra, struct vk_err *err)
{
    if (n > (int)VK_ARRAY_LEN(l->pids) - l->n)
        return vk_err_set(err, VK_EINVAL, "at most %zu local workers", VK_ARRAY_LEN(l->pids));
    if (ngroups > 8) /* what fits in argv below, next to the other arguments */
        return vk_err_set(err, VK_EINVAL, "at most 8 machine groups for local workers");
    for (int i = l->n; i < l->n + n; i++) {
        char buf[4096];
        size_t a = 0;
        char **argv = l->argv[i];
        argv[a++] = vk_mem_xstrdup("vulcan");
        argv[a++] = vk_mem_xstrdup("worker");
        argv[a++] = vk_mem_xstrdup("--server");
        argv[a++] = vk_mem_xstrdup(server_url);
        for (size_t g = 0; g < ngroups; g++) {
            argv[a++] = vk_mem_xstrdup("--group");
            argv[a++] = vk_mem_xstrdup(groups[g]);
        }
        snprintf(buf, sizeof(buf), "%s/worker-%d", work_root, i + 1);
        argv[a++] = vk_mem_xstrdup("--work-dir");
        argv[a++] = vk_mem_xstrdup(buf);
        snprintf(buf, sizeof(buf), "local-%d", i + 1);
        argv[a++] = vk_mem_xstrdup("--name");
        argv[a++] = vk_mem_xstrdup(buf);
        for (size_t e = 0; extra && extra[e] && a < VK_ARRAY_LEN(l->argv[i]) - 1; e++)
            argv[a++] = vk_mem_xstrdup(extra[e]);
        argv[a] = NULL;
        l->pids[i] = spawn(argv, l->log_fd, l->reg_token);
        if (l->pids[i] < 0) {
            for (size_t k = 0; argv[k]; k++)
                vk_mem_free(argv[k]);
            memset(l->argv[i], 0, sizeof(l->argv[i]));
            return vk_err_errno(err, "fork");
        }
    }
    l->n += n;
    return 0;
}

void vk__cli_local_check(struct vk__cli_local *l)
{
    int64_t now = vk_time_now_ms();
    for (int i = 0; i < l->n; i++) {
        if (l->pids[i] > 0) {
            int status;
            if (waitpid(l->pids[i], &status, WNOHANG) != l->pids[i])
                continue;
            char code[32];
            snprintf(code, sizeof(code), "%d",
                     WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
            vk_log_write(VK_LOG_WARN, "server", "a local worker exited; restarting it", "status",
                         code, NULL);
            l->pids[i] = 0;
            l->restart_at[i] = now + 1000;
        } else if (l->pids[i] == 0 && now >= l->restart_at[i]) {
            l->pids[i] = spawn(l->argv[i], l->log_fd, l->reg_token);
            if (l->pids[i] < 0)
                l->pids[i] = 0;
        }
    }
}

void vk__cli_local_stop(struct vk__cli_local *l, int64_t grace_ms)
{
    for (int i = 0; i < l->n; i++) {
        if (l->pids[i] > 0)
            kill(l->pids[i], SIGTERM);
    }
    int64_t deadline = vk_time_now_ms() + grace_ms;
    for (int i = 0; i < l->n; i++) {
        while (l->pids[i] > 0) {
            int status;
            pid_t r = waitpid(l->pids[i], &status, WNOHANG);
            if (r == l->pids[i] || (r < 0 && errno != EINTR)) {
                l->pids[i] = 0;
            } else if (vk_time_now_ms() >= deadline) {
                kill(l->pids[i], SIGKILL);
                waitpid(l->pids[i], &status, 0);
                l->pids[i] = 0;
            } else {
                struct timespec ts = {0, 20 * 1000000};
                nanosleep(&ts, NULL);
            }
        }
        for (size_t a = 0; l->argv[i][a]; a++)
            vk_mem_free(l->argv[i][a]);
        memset(l->argv[i], 0, sizeof(l->argv[i]));
    }
    l->n = 0;
    vk_auth_wipe(l->reg_token, sizeof(l->reg_token));
}
