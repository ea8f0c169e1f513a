/*
 * Executor core: output order, exit codes, -e, environment isolation,
 * timeout/cancel killing whole process groups, output cap, workspace removal, secret files.
 * Runs real shells (sandbox none here; see test_exec_sandbox.c for bwrap).
 */
#include "test_exec_common.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/file.h>
#include <sys/resource.h>

static void test_order_preserved(void **state)
{
    (void)state;
    struct vk_exec_spec s = base_spec("order", "echo a; echo b >&2; echo c; printf d >&2\n");
    struct collected c;
    struct vk_exec_result r;
    assert_int_equal(run(&s, &c, &r), 0);
    assert_string_equal(outs(&c), "a\nb\nc\nd");
    assert_int_equal(r.exit_code, 0);
    assert_int_equal(r.signal, 0);
    assert_true(vk_exec_result_ok(&r));
    assert_int_equal(r.output_bytes, 7);
    assert_false(r.truncated);
    vk_buf_release(&c.b);
}

static void test_exit_codes(void **state)
{
    (void)state;
    struct collected c;
    struct vk_exec_result r;
    struct vk_exec_spec s = base_spec("exit3", "exit 3\n");
    assert_int_equal(run(&s, &c, &r), 0);
    assert_int_equal(r.exit_code, 3);
    assert_false(vk_exec_result_ok(&r));
    vk_buf_release(&c.b);

    s = base_spec("sig", "kill -9 $$\n");
    assert_int_equal(run(&s, &c, &r), 0);
    assert_int_equal(r.exit_code, -1);
    assert_int_equal(r.signal, SIGKILL);
    vk_buf_release(&c.b);
}

static void test_errexit(void **state)
{
    (void)state;
    struct collected c;
    struct vk_exec_result r;
    struct vk_exec_spec s = base_spec("errexit", "echo before\nfalse\necho after\n");
    assert_int_equal(run(&s, &c, &r), 0);
    assert_int_equal(r.exit_code, 1);
    assert_string_equal(outs(&c), "before\n");
    vk_buf_release(&c.b);
    if (g_env.shell_is_bash) { /* pipefail: a failing stage fails the pipeline */
        s = base_spec("pipefail", "false | cat\necho after\n");
        assert_int_equal(run(&s, &c, &r), 0);
        assert_int_equal(r.exit_code, 1);
        assert_null(strstr(outs(&c), "after"));
        vk_buf_release(&c.b);
    }
}

static void test_env_isolation(void **state)
{
    (void)state;
    setenv("VK_EXEC_TEST_SECRET", "leaked", 1);
    const char *env[] = {"FOO=bar", "EMPTY=", "FOO=baz", "WITH_EQ=a=b"};
    struct vk_exec_spec s =
        base_spec("enviso", "echo \"secret=${VK_EXEC_TEST_SECRET:-unset} foo=$FOO eq=$WITH_EQ\"\n"
                            "echo \"home=$HOME pwd=$(pwd) path=$PATH\"\n"
                            "env | cut -d= -f1 | sort | tr '\\n' ' '\n");
    s.env = env;
    s.nenv = 4;
    struct collected c;
    struct vk_exec_result r;
    assert_int_equal(run(&s, &c, &r), 0);
    assert_int_equal(r.exit_code, 0);
    char want[2048];
    snprintf(want, sizeof want,
             "secret=unset foo=baz eq=a=b\nhome=%s pwd=%s path=" VK_EXEC_DEFAULT_PATH "\n",
             r.workspace, r.workspace);
    assert_memory_equal(outs(&c), want, strlen(want));
    /* Only the injected names plus what the shell itself defines. */
    const char *keys = outs(&c) + strlen(want);
    assert_string_equal(keys, "EMPTY FOO HOME PATH PWD SHLVL WITH_EQ _ ");
    vk_buf_release(&c.b);
    unsetenv("VK_EXEC_TEST_SECRET");

    const char *env2[] = {"PATH=/bin", "HOME=/nowhere"};
    s = base_spec("envover", "echo \"$PATH $HOME\"\n");
    s.env = env2;
    s.nenv = 2;
    assert_int_equal(run(&s, &c, &r), 0);
    assert_string_equal(outs(&c), "/bin /nowhere\n");
    vk_buf_release(&c.b);
}

static void test_invalid_spec(void **state)
{
    (void)state;
    struct collected c;
    struct vk_exec_result r;
    const char *bad[][1] = {{"NOEQUALS"}, {"=value"}};
    for (size_t i = 0; i < 2; i++) {
        struct vk_exec_spec s = base_spec("badenv", "echo never\n");
        s.env = bad[i];
        s.nenv = 1;
        assert_int_equal(run(&s, &c, &r), VK_EINVAL);
        assert_int_equal(r.exit_code, -1);
        assert_non_null(strstr(r.error, "environment entry 0"));
        assert_null(strstr(outs(&c), "never"));
        vk_buf_release(&c.b);
    }
    const char *ids[] = {"../etc", ".hidden", "a/b", "", "sp ace"};
    for (size_t i = 0; i < VK_ARRAY_LEN(ids); i++) {
        struct vk_exec_spec s = base_spec(ids[i], "true\n");
        assert_int_equal(run(&s, &c, &r), VK_EINVAL);
        assert_string_equal(r.error, "invalid fragment id");
        vk_buf_release(&c.b);
    }
    char *big = malloc(VK_EXEC_MAX_ENV_VALUE + 16);
    memcpy(big, "BIG=", 4);
    memset(big + 4, 'x', VK_EXEC_MAX_ENV_VALUE + 1);
    big[VK_EXEC_MAX_ENV_VALUE + 5] = '\0';
    const char *benv[] = {big};
    struct vk_exec_spec s = base_spec("bigenv", "true\n");
    s.env = benv;
    s.nenv = 1;
    assert_int_equal(run(&s, &c, &r), VK_ETOOBIG);
    vk_buf_release(&c.b);
    free(big);
}

static void test_timeout_kills_group(void **state)
{
    (void)state;
    char pidfile[400], envpf[420];
    snprintf(pidfile, sizeof pidfile, "%s/timeout.pid", g_root);
    snprintf(envpf, sizeof envpf, "PIDFILE=%s", pidfile);
    const char *env[] = {envpf};
    struct vk_exec_spec s =
        base_spec("timeout", "sleep 100 &\necho $! > \"$PIDFILE\"\necho started\nsleep 100\n");
    s.env = env;
    s.nenv = 1;
    s.timeout_ms = 500;
    struct collected c;
    struct vk_exec_result r;
    int64_t t0 = vk_time_mono_ns();
    assert_int_equal(run(&s, &c, &r), 0);
    int64_t ms = (vk_time_mono_ns() - t0) / 1000000;
    assert_true(r.timed_out);
    assert_false(r.cancelled);
    assert_false(vk_exec_result_ok(&r));
    assert_true(ms >= 450 && ms < 3000);
    assert_true(r.signal == SIGTERM || r.signal == SIGKILL);
    assert_non_null(strstr(outs(&c), "started\n"));
    assert_non_null(strstr(outs(&c), "[vulcan] timed out after 500 ms"));
    long gc = read_pid_file(pidfile);
    assert_true(gc > 0);
    assert_true(pid_dead((pid_t)gc));
    vk_buf_release(&c.b);
}

static void test_sigterm_ignored_needs_kill(void **state)
{
    (void)state;
    struct vk_exec_spec s = base_spec("grace", "trap '' TERM\necho ready\nsleep 100\n");
    s.timeout_ms = 300;
    s.kill_grace_ms = 400;
    struct collected c;
    struct vk_exec_result r;
    int64_t t0 = vk_time_mono_ns();
    assert_int_equal(run(&s, &c, &r), 0);
    int64_t ms = (vk_time_mono_ns() - t0) / 1000000;
    assert_true(r.timed_out);
    assert_int_equal(r.signal, SIGKILL);
    assert_true(ms >= 650 && ms < 3000);
    vk_buf_release(&c.b);
}

static void test_background_killed_on_success(void **state)
{
    (void)state;
    char pidfile[400], envpf[420];
    snprintf(pidfile, sizeof pidfile, "%s/bg.pid", g_root);
    snprintf(envpf, sizeof envpf, "PIDFILE=%s", pidfile);
    const char *env[] = {envpf};
    struct vk_exec_spec s = base_spec("bg", "sleep 100 &\necho $! > \"$PIDFILE\"\necho done\n");
    s.env = env;
    s.nenv = 1;
    struct collected c;
    struct vk_exec_result r;
    int64_t t0 = vk_time_mono_ns();
    assert_int_equal(run(&s, &c, &r), 0);
    assert_int_equal(r.exit_code, 0);
    assert_true((vk_time_mono_ns() - t0) / 1000000 < 2000);
    long p = read_pid_file(pidfile);
    assert_true(p > 0);
    assert_true(pid_dead((pid_t)p));
    vk_buf_release(&c.b);
}

struct canceller {
    struct vk_exec_cancel *cancel;
    int delay_ms;
};

static void *cancel_thread(void *arg)
{
    struct canceller *k = arg;
    vk__exec_sleep_ms(k->delay_ms);
    vk_exec_cancel_request(k->cancel);
    return NULL;
}

static void test_cancel_from_thread(void **state)
{
    (void)state;
    struct vk_exec_cancel cancel;
    vk_exec_cancel_init(&cancel);
    struct canceller k = {&cancel, 300};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, cancel_thread, &k), 0);
    struct vk_exec_spec s = base_spec("cancel", "echo go\nsleep 100\n");
    struct collected c;
    struct vk_exec_result r;
    struct vk_err err;
    collected_init(&c);
    int64_t t0 = vk_time_mono_ns();
    assert_int_equal(vk_exec_run(&g_env, &s, collect, &c, &cancel, &r, &err), 0);
    int64_t ms = (vk_time_mono_ns() - t0) / 1000000;
    pthread_join(t, NULL);
    assert_true(r.cancelled);
    assert_false(r.timed_out);
    assert_true(ms >= 280 && ms < 1500); /* ≤100 ms reaction + SIGTERM */
    assert_non_null(strstr(outs(&c), "[vulcan] cancelled"));
    vk_buf_release(&c.b);

    /* Cancelled before it starts: nothing runs. */
    s = base_spec("cancel2", "echo never\n");
    collected_init(&c);
    assert_int_equal(vk_exec_run(&g_env, &s, collect, &c, &cancel, &r, &err), VK_EAGAIN);
    assert_true(r.cancelled);
    assert_null(strstr(outs(&c), "never"));
    vk_buf_release(&c.b);
}

static void test_output_cap(void **state)
{
    (void)state;
    struct vk_exec_spec s = base_spec("cap", "head -c 52428800 /dev/zero | tr '\\0' x\n");
    struct collected c;
    struct vk_exec_result r;
    int64_t t0 = vk_time_mono_ns();
    assert_int_equal(run(&s, &c, &r), 0);
    int64_t ms = (vk_time_mono_ns() - t0) / 1000000;
    assert_int_equal(r.exit_code, 0);
    assert_true(r.truncated);
    assert_int_equal(r.output_bytes, 52428800u);
    assert_int_equal(r.output_dropped, 52428800u - VK_EXEC_DEFAULT_OUTPUT_CAP);
    const char *notice = "\n[vulcan] output truncated: the fragment printed more than 16 MiB; "
                         "35651584 bytes dropped\n";
    assert_int_equal(c.b.len, VK_EXEC_DEFAULT_OUTPUT_CAP + strlen(notice));
    for (size_t i = 0; i < VK_EXEC_DEFAULT_OUTPUT_CAP; i += 4093)
        assert_int_equal(c.b.data[i], 'x');
    assert_int_equal(c.b.data[VK_EXEC_DEFAULT_OUTPUT_CAP - 1], 'x');
    assert_string_equal(c.b.data + VK_EXEC_DEFAULT_OUTPUT_CAP, notice);
    assert_true(ms < 15000 * VK_TEST_SLOWDOWN);
    print_message("50 MiB with a 16 MiB cap: %lld ms\n", (long long)ms);
    vk_buf_release(&c.b);

    /* A small cap that is not whole MiB. */
    s = base_spec("cap2", "printf 0123456789\n");
    s.output_cap = 4;
    assert_int_equal(run(&s, &c, &r), 0);
    assert_string_equal(outs(&c), "0123\n[vulcan] output truncated: the fragment printed more "
                                  "than 4 bytes; 6 bytes dropped\n");
    vk_buf_release(&c.b);
}

static void test_workspace_lifecycle(void **state)
{
    (void)state;
    char victim[400], envv[420];
    snprintf(victim, sizeof victim, "%s/victim", g_root);
    assert_int_equal(mkdir(victim, 0755), 0);
    char vf[450];
    snprintf(vf, sizeof vf, "%s/keep.txt", victim);
    int fd = open(vf, O_WRONLY | O_CREAT, 0644);
    assert_true(fd >= 0);
    close(fd);
    snprintf(envv, sizeof envv, "VICTIM=%s", victim);
    const char *env[] = {envv};
    /* Symlinks out of the workspace, a read-only dir, deep nesting: removal must cope. */
    struct vk_exec_spec s = base_spec(
        "wslife", "ln -s \"$VICTIM\" link\nln -s \"$VICTIM/keep.txt\" flink\n"
                  "mkdir -p ro/inner && touch ro/inner/f && chmod 000 ro/inner ro\n"
                  "d=deep; for i in $(seq 120); do d=$d/x; done; mkdir -p $d; touch $d/leaf\n"
                  "pwd\n");
    s.env = env;
    s.nenv = 1;
    struct collected c;
    struct vk_exec_result r;
    assert_int_equal(run(&s, &c, &r), 0);
    assert_int_equal(r.exit_code, 0);
    char line[600];
    snprintf(line, sizeof line, "%s\n", r.workspace);
    assert_string_equal(outs(&c), line);
    assert_false(path_exists(r.workspace));
    assert_true(path_exists(vf));
    vk_buf_release(&c.b);

    s = base_spec("wskeep", "echo kept > file\n");
    s.keep_workspace = true;
    assert_int_equal(run(&s, &c, &r), 0);
    char kf[600];
    snprintf(kf, sizeof kf, "%s/file", r.workspace);
    assert_true(path_exists(kf));
    /* The next attempt with the same name starts from a fresh directory. */
    s = base_spec("wskeep", "test ! -e file && echo fresh\n");
    vk_buf_release(&c.b);
    assert_int_equal(run(&s, &c, &r), 0);
    assert_string_equal(outs(&c), "fresh\n");
    vk_buf_release(&c.b);
}

static void test_rlimits(void **state)
{
    (void)state;
    struct vk_exec_spec s = base_spec("rlim", "ulimit -c; ulimit -n; ulimit -f\n");
    s.nofile_limit = 100;
    s.fsize_limit_bytes = 1024 * 1024;
    struct collected c;
    struct vk_exec_result r;
    assert_int_equal(run(&s, &c, &r), 0);
    assert_string_equal(outs(&c), g_env.shell_is_bash ? "0\n100\n1024\n" : "0\n100\n2048\n");
    vk_buf_release(&c.b);
    s = base_spec("rlim2", "ulimit -n\nls /proc/self/fd | wc -l\n");
    assert_int_equal(run(&s, &c, &r), 0);
    /* 4096 and only 0,1,2 (+ the one ls opens) inherited */
    assert_string_equal(outs(&c), "4096\n4\n");
    vk_buf_release(&c.b);
}

/* Issue 12 item 6: the soft core limit is 0 but the hard one is the worker's, so a script may
 * enable core dumps. */
static void test_core_limit_raisable(void **state)
{
    (void)state;
    /* The script may raise its soft core limit up to the worker's hard limit (issue 12
     * item 6): the worker keeps its hard limit and only lowers the soft one to 0. */
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_CORE, &rl), 0);
    if (rl.rlim_max == 0) {
        /* Nothing to raise to: give the test process a hard limit (root only). */
        struct rlimit up = {0, RLIM_INFINITY};
        if (setrlimit(RLIMIT_CORE, &up) != 0)
            fail_msg("the test's hard RLIMIT_CORE is 0 and cannot be raised: nothing to check");
        rl = up;
    }
    struct vk_exec_spec s = base_spec(
        "core", "ulimit -c; ulimit -Hc; ulimit -c \"$(ulimit -Hc)\" && echo raised; ulimit -c\n");
    struct collected c;
    struct vk_exec_result r;
    assert_int_equal(run(&s, &c, &r), 0);
    assert_int_equal(r.exit_code, 0);
    const char *o = outs(&c);
    assert_true(strncmp(o, "0\n", 2) == 0); /* the soft limit starts at 0 */
    const char *hard = o + 2;
    assert_true(strncmp(hard, "0\n", 2) != 0); /* the hard one is kept */
    if (rl.rlim_max == RLIM_INFINITY)
        assert_string_equal(hard, "unlimited\nraised\nunlimited\n");
    else
        assert_non_null(strstr(hard, "\nraised\n"));
    vk_buf_release(&c.b);
}

static void test_sandbox_names(void **state)
{
    (void)state;
    enum vk_exec_sandbox m;
    assert_int_equal(vk_exec_sandbox_parse("bwrap", &m), 0);
    assert_int_equal(m, VK_EXEC_SANDBOX_BWRAP);
    assert_int_equal(vk_exec_sandbox_parse("docker", &m), VK_EINVAL);
    assert_string_equal(vk_exec_sandbox_name(VK_EXEC_SANDBOX_NONE), "none");
}

static void test_workspace_recycled(void **state)
{
    (void)state;
    struct collected c;
    struct vk_exec_result r;
    char spare[700];
    snprintf(spare, sizeof spare, "%s/.spare-%ld-%ld", g_env.work_dir, (long)getpid(),
             (long)gettid());
    /* An attempt that litters and loosens its workspace... */
    struct vk_exec_spec s = base_spec("rec1", "mkdir -p a/b && echo x > a/b/f && chmod 0777 .\n");
    assert_int_equal(run(&s, &c, &r), 0);
    assert_int_equal(r.exit_code, 0);
    vk_buf_release(&c.b);
    /* ...is emptied and kept as this thread's spare, not removed. */
    assert_false(path_exists(r.workspace));
    struct stat st;
    assert_int_equal(lstat(spare, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0700);
    /* The next attempt gets it: empty, mode 0700. */
    s = base_spec("rec2", "echo \"$(ls -A | wc -l) $(stat -c %a .)\"\n");
    assert_int_equal(run(&s, &c, &r), 0);
    assert_string_equal(outs(&c), "0 700\n");
    vk_buf_release(&c.b);
    /* A spare that is not clean (something wrote into it) is never handed out. */
    char junk[800];
    snprintf(junk, sizeof junk, "%s/junk", spare);
    int fd = open(junk, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    close(fd);
    assert_int_equal(run(&s, &c, &r), 0);
    assert_string_equal(outs(&c), "0 700\n");
    vk_buf_release(&c.b);
    assert_int_equal(chmod(spare, 0755), 0);
    assert_int_equal(run(&s, &c, &r), 0);
    assert_string_equal(outs(&c), "0 700\n");
    vk_buf_release(&c.b);
    /* Released with the env (another env, so g_env stays usable). */
    struct vk_exec_env env2;
    char wd[400];
    snprintf(wd, sizeof wd, "%s/work-spare", g_root);
    struct vk_exec_config cfg = {.work_dir = wd, .cgroups = VK_EXEC_CGROUPS_NEVER};
    struct vk_err err;
    assert_int_equal(vk_exec_env_init(&env2, &cfg, &err), 0);
    collected_init(&c);
    assert_int_equal(vk_exec_run(&env2, &s, collect, &c, NULL, &r, &err), 0);
    vk_buf_release(&c.b);
    snprintf(spare, sizeof spare, "%s/.spare-%ld-%ld", env2.work_dir, (long)getpid(),
             (long)gettid());
    assert_true(path_exists(spare));
    vk_exec_env_release(&env2);
    assert_false(path_exists(spare));
}

static void test_plain_script_detection(void **state)
{
    (void)state;
    /* Plain: literal simple commands only. */
    assert_true(vk_exec_script_is_plain("true", NULL, 0));
    assert_true(vk_exec_script_is_plain("true\n", NULL, 0));
    assert_true(
        vk_exec_script_is_plain("make -j4 test\ncd sub\n./configure --prefix=/usr\n", NULL, 0));
    assert_true(vk_exec_script_is_plain("CC=gcc make all\n", NULL, 0));
    assert_true(vk_exec_script_is_plain("make echo test time\n", NULL, 0)); /* arguments */
    assert_true(vk_exec_script_is_plain("A=1 B=2\n", NULL, 0));
    assert_true(vk_exec_script_is_plain("export A=1\ncd sub\nmake -k\nexec make -j2\n", NULL, 0));
    assert_true(vk_exec_script_is_plain("", NULL, 0));
    /* Not plain: anything the shells may read differently. */
    const char *np[] = {
        "false | true\n",
        "a && b\n",
        "a; b\n",
        "echo hi\n",
        "echo -e x\n",
        "x=$HOME\n",
        "ls *.c\n",
        "cat 'a b'\n",
        "cat \"a\"\n",
        "a > out\n",
        "a 2>&1\n",
        "a &\n",
        "# comment\n",
        "a \\\n b\n",
        "source env.sh\n",
        ". ./env.sh\n",
        "[ -f x ]\n",
        "[[ -f x ]]\n",
        "test -f x\n",
        "set -o pipefail\n",
        "time make\n",
        "if true\nthen\nx\nfi\n",
        "read x\n",
        "printf x\n",
        "a\r\n",
        "~/bin/x\n",
        "(a)\n",
        "{ a; }\n",
        "ulimit -n\n",
        "trap x EXIT\n",
        "function f\n",
        "type ls\n",
        "let x=1\n",
        "declare x\n",
        "local x\n",
        "kill 1\n",
        "wait\n",
        "a`b`\n",
        "!a\n",
        "a=(1 2)\n",
        "A=1 echo x\n",
        "make\n  set -x\n",
        "\t\tsource x\n",
        "x\ntime\n",
        "export -p\n",
        "exec -a x make\n",
        "cd -P x\n",
        "x\nexport -n A\n",
    };
    for (size_t i = 0; i < VK_ARRAY_LEN(np); i++) {
        if (vk_exec_script_is_plain(np[i], NULL, 0))
            fail_msg("'%s' taken as plain", np[i]);
    }
    /* Longer than the plain limit. */
    char big[VK_EXEC_PLAIN_SCRIPT_MAX + 8];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_false(vk_exec_script_is_plain(big, NULL, 0));
    /* Environments bash reads on its own. */
    const char *e1[] = {"A=b", "BASH_ENV=/x"};
    const char *e2[] = {"BASH_FUNC_make%%=() { true; }"};
    const char *e3[] = {"SHELLOPTS=xtrace"};
    const char *e4[] = {"IFS=x"};
    const char *ok[] = {"A=b", "MAKEFLAGS=-j2"};
    assert_false(vk_exec_script_is_plain("true", e1, 2));
    assert_false(vk_exec_script_is_plain("true", e2, 1));
    assert_false(vk_exec_script_is_plain("true", e3, 1));
    assert_false(vk_exec_script_is_plain("true", e4, 1));
    assert_true(vk_exec_script_is_plain("true", ok, 2));
    assert_false(vk_exec_script_is_plain(NULL, NULL, 0));
}

static void test_shell_choice(void **state)
{
    (void)state;
    struct collected c;
    struct vk_exec_result r;
    /* A plain script runs under /bin/sh when bash would be the shell (auto). */
    struct vk_exec_spec s = base_spec("shplain", "vk-no-such-command-x1\n");
    assert_int_equal(run(&s, &c, &r), 0);
    assert_int_equal(r.exit_code, 127);
    assert_int_equal(r.plain_shell, g_env.shell_is_bash);
    if (g_env.shell_is_bash) /* dash: "sh: 1: X: not found"; bash: "bash: line 1: X: command not
                                found" */
        assert_non_null(strstr(outs(&c), "sh: 1: vk-no-such-command-x1: not found"));
    vk_buf_release(&c.b);
    /* Anything else keeps the full shell (bash -e -o pipefail where installed). */
    s = base_spec("shfull", "echo \"[${BASH_VERSION:+bash}]\"\nfalse | true\necho after\n");
    assert_int_equal(run(&s, &c, &r), 0);
    assert_false(r.plain_shell);
    if (g_env.shell_is_bash) {
        assert_int_equal(r.exit_code, 1); /* pipefail */
        assert_string_equal(outs(&c), "[bash]\n");
    } else {
        assert_string_equal(outs(&c), "[]\nafter\n");
    }
    vk_buf_release(&c.b);

    /* --shell bash: never sh. */
    struct vk_exec_env env2;
    char wd[400];
    snprintf(wd, sizeof wd, "%s/work-bash", g_root);
    struct vk_exec_config cfg = {
        .work_dir = wd, .shell = VK_EXEC_SHELL_BASH, .cgroups = VK_EXEC_CGROUPS_NEVER};
    struct vk_err err;
    assert_int_equal(vk_exec_env_init(&env2, &cfg, &err), 0);
    s = base_spec("shbash", "true\n");
    collected_init(&c);
    assert_int_equal(vk_exec_run(&env2, &s, collect, &c, NULL, &r, &err), 0);
    assert_int_equal(r.exit_code, 0);
    assert_false(r.plain_shell);
    vk_buf_release(&c.b);
    vk_exec_env_release(&env2);

    /* --shell sh: /bin/sh for everything (no pipefail with dash). */
    snprintf(wd, sizeof wd, "%s/work-sh", g_root);
    cfg.work_dir = wd;
    cfg.shell = VK_EXEC_SHELL_SH;
    assert_int_equal(vk_exec_env_init(&env2, &cfg, &err), 0);
    assert_false(env2.shell_is_bash);
    assert_string_equal(env2.shell, "/bin/sh");
    s = base_spec("shsh", "echo \"[${BASH_VERSION:-}]\"\n");
    collected_init(&c);
    assert_int_equal(vk_exec_run(&env2, &s, collect, &c, NULL, &r, &err), 0);
    assert_string_equal(outs(&c), "[]\n");
    vk_buf_release(&c.b);
    vk_exec_env_release(&env2);

    enum vk_exec_shell sh;
    enum vk_exec_cgroups cg;
    assert_int_equal(vk_exec_shell_parse("auto", &sh), 0);
    assert_int_equal(sh, VK_EXEC_SHELL_AUTO);
    assert_int_equal(vk_exec_shell_parse("bash", &sh), 0);
    assert_int_equal(sh, VK_EXEC_SHELL_BASH);
    assert_int_equal(vk_exec_shell_parse("sh", &sh), 0);
    assert_int_equal(sh, VK_EXEC_SHELL_SH);
    assert_int_equal(vk_exec_shell_parse("zsh", &sh), VK_EINVAL);
    assert_int_equal(vk_exec_cgroups_parse("auto", &cg), 0);
    assert_int_equal(cg, VK_EXEC_CGROUPS_AUTO);
    assert_int_equal(vk_exec_cgroups_parse("always", &cg), 0);
    assert_int_equal(cg, VK_EXEC_CGROUPS_ALWAYS);
    assert_int_equal(vk_exec_cgroups_parse("never", &cg), 0);
    assert_int_equal(cg, VK_EXEC_CGROUPS_NEVER);
    assert_int_equal(vk_exec_cgroups_parse("", &cg), VK_EINVAL);
    assert_int_equal(vk_exec_cgroups_parse(NULL, &cg), VK_EINVAL);
}

static void test_script_inline_and_file(void **state)
{
    (void)state;
    struct collected c;
    struct vk_exec_result r;
    /* Small scripts go inline (-c): one directory per attempt, nothing under run/. */
    struct vk_exec_spec s = base_spec("inl", "echo small\n");
    char rundir[700];
    snprintf(rundir, sizeof rundir, "%s/inl-1", g_env.run_dir);
    assert_int_equal(run(&s, &c, &r), 0);
    assert_string_equal(outs(&c), "small\n");
    assert_false(path_exists(rundir));
    vk_buf_release(&c.b);
    /* Scripts of 100 KiB and more go through a private file, as before. */
    size_t n = VK_EXEC_INLINE_SCRIPT_MAX + 4096;
    char *big = vk_mem_xalloc(n + 64);
    size_t at = 0;
    while (at + 40 < n)
        at += (size_t)snprintf(big + at, n + 64 - at, "# padding padding padding padding\n");
    at += (size_t)snprintf(big + at, n + 64 - at, "echo \"big $0\"\n");
    s = base_spec("bigscript", big);
    assert_int_equal(run(&s, &c, &r), 0);
    assert_int_equal(r.exit_code, 0);
    char want[800];
    snprintf(want, sizeof want, "big %s/bigscript-1/script\n", g_env.run_dir);
    assert_string_equal(outs(&c), want);
    snprintf(rundir, sizeof rundir, "%s/bigscript-1", g_env.run_dir);
    assert_false(path_exists(rundir)); /* removed afterwards */
    vk_buf_release(&c.b);
    vk_mem_free(big);
}

/* Secret files (issue 15): 0600 in the attempt's private directory, outside the workspace,
 * the path in the variable; gone after the attempt, also when the script fails. A directory
 * a dead worker left (its .lock free) goes at the next env start; a live one stays. */
static void test_secret_files(void **state)
{
    (void)state;
    struct collected c;
    struct vk_exec_result r;
    const char value[] = "line one of the value\nline two\n";
    struct vk_exec_file files[] = {{"KUBECONFIG", value, sizeof value - 1},
                                   {"OTHER_FILE", "abcdef", 6}};
    struct vk_exec_spec s =
        base_spec("sec", "stat -c '%a %s' \"$KUBECONFIG\"; cat \"$OTHER_FILE\"; echo;"
                         " case \"$KUBECONFIG\" in \"$PWD\"*) echo inside;; *) echo outside;; esac;"
                         " echo \"$KUBECONFIG\"; exit 3");
    s.files = files;
    s.nfiles = 2;
    assert_int_equal(run(&s, &c, &r), 0);
    assert_int_equal(r.exit_code, 3);
    char want[1200];
    snprintf(want, sizeof want, "600 %zu\nabcdef\noutside\n%s/sec-1/secrets/KUBECONFIG\n",
             sizeof value - 1, g_env.run_dir);
    assert_string_equal(outs(&c), want);
    char dir[700];
    snprintf(dir, sizeof dir, "%s/sec-1", g_env.run_dir);
    assert_false(path_exists(dir));
    vk_buf_release(&c.b);
    /* a bad name is refused before anything runs */
    struct vk_exec_file bad[] = {{"../x", "abcdef", 6}};
    s = base_spec("secbad", "echo ran");
    s.files = bad;
    s.nfiles = 1;
    assert_int_not_equal(run(&s, &c, &r), 0);
    assert_null(strstr(outs(&c) ? outs(&c) : "", "ran\n"));
    vk_buf_release(&c.b);
    /* what a dead worker left: swept at the next start; a locked (live) one is kept */
    char dead[700], live[700], f[800];
    snprintf(dead, sizeof dead, "%s/dead-1", g_env.run_dir);
    snprintf(live, sizeof live, "%s/live-1", g_env.run_dir);
    assert_int_equal(mkdir(dead, 0700), 0);
    assert_int_equal(mkdir(live, 0700), 0);
    snprintf(f, sizeof f, "%s/.lock", dead);
    FILE *fp = fopen(f, "w");
    assert_non_null(fp);
    fclose(fp);
    snprintf(f, sizeof f, "%s/.lock", live);
    int lfd = open(f, O_RDWR | O_CREAT, 0600);
    assert_true(lfd >= 0);
    assert_int_equal(flock(lfd, LOCK_EX), 0);
    struct vk_exec_env e2;
    struct vk_exec_config cfg = {.work_dir = g_work, .checkout_timeout_ms = 60000};
    struct vk_err err;
    /* another open file description: flock sees the live lock as taken */
    assert_int_equal(vk_exec_env_init(&e2, &cfg, &err), 0);
    vk_exec_env_release(&e2);
    assert_false(path_exists(dead));
    assert_true(path_exists(live));
    close(lfd);
    (void)vk__exec_rmtree(live, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_secret_files),
        cmocka_unit_test(test_order_preserved),
        cmocka_unit_test(test_exit_codes),
        cmocka_unit_test(test_errexit),
        cmocka_unit_test(test_env_isolation),
        cmocka_unit_test(test_invalid_spec),
        cmocka_unit_test(test_timeout_kills_group),
        cmocka_unit_test(test_sigterm_ignored_needs_kill),
        cmocka_unit_test(test_background_killed_on_success),
        cmocka_unit_test(test_cancel_from_thread),
        cmocka_unit_test(test_output_cap),
        cmocka_unit_test(test_workspace_lifecycle),
        cmocka_unit_test(test_rlimits),
        cmocka_unit_test(test_core_limit_raisable),
        cmocka_unit_test(test_workspace_recycled),
        cmocka_unit_test(test_plain_script_detection),
        cmocka_unit_test(test_shell_choice),
        cmocka_unit_test(test_script_inline_and_file),
        cmocka_unit_test(test_sandbox_names),
    };
    return cmocka_run_group_tests(tests, env_setup, env_teardown);
}
