/*
 * exec_overhead — what one executor attempt costs beyond the work itself.
 *
 *   exec_overhead [RUNS]      (default 100; needs git, optionally bwrap/cgroups)
 *
 * Prints the mean wall time per run of: a plain posix_spawn("/bin/sh -c true")
 * + waitpid loop; vk_exec_run("true") with sandbox none, none+cgroup, and
 * bubblewrap; and a checkout of a 300-file repository through a cold and a
 * warm mirror.
 */
#include "vulcan/executor.h"
#include "worker/exec_int.h"

#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

static double ms_since(int64_t t0)
{
    return (double)(vk_time_mono_ns() - t0) / 1e6;
}

static double plain_spawn(int runs)
{
    char *argv[] = {"/bin/sh", "-c", "true", NULL};
    int64_t t0 = vk_time_mono_ns();
    for (int i = 0; i < runs; i++) {
        pid_t pid;
        int st;
        if (posix_spawn(&pid, "/bin/sh", NULL, NULL, argv, environ) != 0)
            return -1;
        waitpid(pid, &st, 0);
    }
    return ms_since(t0) / runs;
}

static double exec_runs(const struct vk_exec_env *env, int runs, enum vk_exec_sandbox sb,
                        uint32_t pids_limit, int *failures)
{
    struct vk_exec_spec s;
    memset(&s, 0, sizeof s);
    s.fragment_id = "bench";
    s.script = "true\n";
    s.sandbox = sb;
    s.pids_limit = pids_limit;
    int64_t t0 = vk_time_mono_ns();
    for (int i = 0; i < runs; i++) {
        struct vk_exec_result r;
        struct vk_err err;
        s.attempt = (uint32_t)i;
        if (vk_exec_run(env, &s, NULL, NULL, NULL, &r, &err) != 0 || r.exit_code != 0)
            (*failures)++;
    }
    return ms_since(t0) / runs;
}

static void checkout_bench(const struct vk_exec_env *env, const char *root)
{
    char cmd[2048], url[600], sha[64] = "";
    snprintf(cmd, sizeof cmd,
             "set -e; cd %s; git init -q --bare origin.git; git init -q src; cd src;"
             " for i in $(seq 300); do echo $i > f$i; done; git add .;"
             " git -c user.name=b -c user.email=b@b commit -qm x;"
             " git push -q ../origin.git HEAD:refs/heads/main; git rev-parse HEAD",
             root);
    FILE *p = popen(cmd, "r");
    if (!p || !fgets(sha, sizeof sha, p)) {
        if (p)
            pclose(p);
        printf("checkout: cannot create the test repository\n");
        return;
    }
    pclose(p);
    sha[strcspn(sha, "\n")] = '\0';
    snprintf(url, sizeof url, "file://%s/origin.git", root);
    struct vk_exec_spec s;
    memset(&s, 0, sizeof s);
    s.fragment_id = "checkout";
    s.script = "true\n";
    s.sandbox = VK_EXEC_SANDBOX_NONE;
    s.repository_url = url;
    s.commit_sha = sha;
    for (int i = 0; i < 4; i++) {
        struct vk_exec_result r;
        struct vk_err err;
        s.attempt = (uint32_t)i;
        int rc = vk_exec_run(env, &s, NULL, NULL, NULL, &r, &err);
        printf("checkout #%d (%s mirror), 300 files: %lld ms in git, %lld ms whole attempt%s%s\n",
               i + 1, i == 0 ? "cold" : "warm", (long long)r.checkout_ms, (long long)r.duration_ms,
               rc ? " ERROR " : "", rc ? r.error : "");
    }
}

int main(int argc, char **argv)
{
    int runs = argc > 1 ? atoi(argv[1]) : 100;
    if (runs <= 0)
        runs = 100;
    char root[] = "/tmp/vk-bench-exec-XXXXXX";
    if (!mkdtemp(root))
        return 1;
    char work[300];
    snprintf(work, sizeof work, "%s/work", root);
    struct vk_exec_env env;
    struct vk_exec_config cfg = {.work_dir = work};
    struct vk_err err;
    if (vk_exec_env_init(&env, &cfg, &err) != 0) {
        fprintf(stderr, "exec_overhead: %s\n", err.msg);
        return 1;
    }
    printf("runs: %d; shell %s; bwrap %s; cgroups %s\n", runs, env.shell,
           env.bwrap_ok ? "yes" : "no",
           env.cgroup_mode == VK_EXEC_CGROUP_V2   ? "v2"
           : env.cgroup_mode == VK_EXEC_CGROUP_V1 ? "v1"
                                                  : "no");
    int fails = 0;
    printf("plain posix_spawn(sh -c true)+waitpid: %.2f ms/run\n", plain_spawn(runs));
    printf("vk_exec_run(true), sandbox none:        %.2f ms/run\n",
           exec_runs(&env, runs, VK_EXEC_SANDBOX_NONE, 0, &fails));
    if (env.cgroup_mode != VK_EXEC_CGROUP_NONE)
        printf("vk_exec_run(true), none + cgroup limit: %.2f ms/run\n",
               exec_runs(&env, runs, VK_EXEC_SANDBOX_NONE, 100, &fails));
    if (env.bwrap_ok)
        printf("vk_exec_run(true), sandbox bwrap:       %.2f ms/run\n",
               exec_runs(&env, runs, VK_EXEC_SANDBOX_BWRAP, 0, &fails));
    if (fails)
        printf("failures: %d\n", fails);
    checkout_bench(&env, root);
    vk_exec_env_release(&env);
    (void)vk__exec_rmtree(root, NULL);
    return fails ? 1 : 0;
}
