/*
 * Limits a worker enforces, seen through the server: the script timeout kills
 * the whole process group, the output cap truncates a huge log with a notice,
 * and the bubblewrap sandbox lets a script write only inside its workspace.
 */
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define HEAD "version \"0.1\"\ntriggers \"push\"\nchain {\n  machine \"default\"\n"

/* Whether `pid` is still a live process (a zombie counts as gone; it is reaped). */
static bool pid_alive(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    char *s = vkt_read(path, NULL);
    if (!s)
        return false;
    const char *rp = strrchr(s, ')');
    char state = rp && rp[1] == ' ' ? rp[2] : '?';
    free(s);
    if (state == 'Z' || state == 'X') {
        (void)waitpid(pid, NULL, WNOHANG); /* an orphan re-parented to us */
        return false;
    }
    return true;
}

static void test_timeout_kills_the_group(void **state)
{
    struct vkt *t = *state;
    vkt_server_start(t, NULL);
    vkt_worker_start(t, "w1", "default", NULL);
    char pids[600], wf[2048];
    snprintf(pids, sizeof(pids), "%s/pids.txt", t->tmp);
    snprintf(wf, sizeof(wf),
             HEAD "  fragment {\n"
                  "    name \"slow\"\n"
                  "    timeout \"1s\"\n"
                  "    run \"echo started; sleep 30 & echo $! >> %s; sleep 30 & echo $! >> %s; "
                  "echo $$ >> %s; wait\"\n"
                  "  }\n"
                  "  fragment { name \"after\"; run \"true\" }\n}\n",
             pids, pids, pids);
    char id[VK_UUID_LEN];
    vkt_submit(t, wf, id);
    json_t *c = vkt_chain_wait(t, id, 20000);
    VKT_CHECK(c, strcmp(vkt_str(c, "status"), "failed") == 0);
    json_t *f = vkt_frag(c, "slow");
    VKT_CHECK(c, strcmp(vkt_str(f, "status"), "failed") == 0);
    VKT_CHECK(c, strstr(vkt_str(f, "error"), "timed out") != NULL);
    int64_t took = vkt_time(f, "finished_at") - vkt_time(f, "started_at");
    printf("timeout 1s: the fragment failed after %lld ms\n", (long long)took);
    VKT_CHECK(c, took >= 1000 && took < 10000);
    VKT_CHECK(c, strcmp(vkt_str(vkt_frag(c, "after"), "status"), "skipped") == 0);
    char *log = vkt_log(t, vkt_str(f, "id"), 0, 0, NULL);
    VKT_CHECK(c, strstr(log, "started\n") == log);
    VKT_CHECK(c, strstr(log, "[vulcan] timed out after 1000 ms") != NULL);
    free(log);
    json_decref(c);

    /* The shell and both background sleeps are gone, not left running for 30 s. */
    char *list = vkt_read(pids, NULL);
    assert_non_null(list);
    int n = 0;
    for (char *save = NULL, *l = strtok_r(list, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        pid_t pid = (pid_t)atoi(l);
        assert_true(pid > 1);
        int64_t end = vkt_now() + 3000;
        while (pid_alive(pid) && vkt_now() < end)
            vkt_sleep(20);
        if (pid_alive(pid))
            fail_msg("process %d of the timed-out script is still running", (int)pid);
        n++;
    }
    assert_int_equal(n, 3);
    free(list);
}

static void test_output_cap(void **state)
{
    struct vkt *t = *state;
    vkt_server_start(t, NULL);
    vkt_worker_start(t, "w1", "default", NULL);
    char id[VK_UUID_LEN];
    /* 50 MiB of 64-byte lines (`yes` ends on SIGPIPE, which pipefail would report). */
    vkt_submit(t,
               HEAD "  fragment { name \"loud\"; run \"(yes "
                    "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde || true) | "
                    "head -c "
                    "52428800; echo still-running >&2\" }\n}\n",
               id);
    json_t *c = vkt_chain_wait(t, id, 60000);
    VKT_CHECK(c, strcmp(vkt_str(c, "status"), "completed") == 0);
    json_t *f = vkt_frag(c, "loud");
    VKT_CHECK(c, vkt_int(f, "exit_code") == 0);
    const int64_t cap = 16 * 1024 * 1024;
    /* The tail, from just before the cap: the last kept bytes, then the notice. */
    size_t len = 0;
    char *tail = vkt_log(t, vkt_str(f, "id"), 0, cap - 128, &len);
    int64_t total = cap - 128 + (int64_t)len;
    printf("output cap: log of %lld bytes (cap %lld); tail:\n%s\n", (long long)total,
           (long long)cap, tail + (len > 300 ? len - 300 : 0));
    VKT_CHECK(c, total > cap && total < cap + 1024);
    VKT_CHECK(c, strstr(tail, "[vulcan] output truncated: the fragment printed more than") != NULL);
    char dropped[64];
    /* 50 MiB printed, plus "still-running\n", minus what was kept. */
    snprintf(dropped, sizeof(dropped), "%lld bytes dropped", (long long)(52428800 + 14 - cap));
    VKT_CHECK(c, strstr(tail, dropped) != NULL);
    /* What was kept is the start of the output, in order. */
    free(tail);
    char *head = vkt_log(t, vkt_str(f, "id"), 0, cap - 64 * 3, &len);
    VKT_CHECK(c, strncmp(head, "0123456789abcdef", 16) == 0);
    free(head);
    json_decref(c);
}

static void test_sandbox(void **state)
{
    struct vkt *t = *state;
    vkt_server_start(t, NULL);
    const char *bwrap[] = {"--sandbox", "bwrap", NULL};
    vkt_worker_start(t, "w1", "default", bwrap);
    char outside[600], wf[4096];
    snprintf(outside, sizeof(outside), "%s/outside", t->tmp);
    unlink("/etc/vulcan-test");
    unlink("/var/vulcan-test");
    snprintf(wf, sizeof(wf),
             HEAD "  fragment {\n"
                  "    name \"boxed\"\n"
                  "    run #\"\"\"\n"
                  "        touch /etc/vulcan-test && echo bad-etc || echo refused-etc\n"
                  "        touch %s && echo bad-outside || echo refused-outside\n"
                  "        touch /usr/vulcan-test && echo bad-usr || echo refused-usr\n"
                  "        touch /var/vulcan-test && echo bad-var || echo refused-var\n"
                  "        echo hello > inside.txt && cat inside.txt\n"
                  "        mkdir -p sub/dir && echo deep > sub/dir/f && cat sub/dir/f\n"
                  "        \"\"\"#\n"
                  "  }\n}\n",
             outside);
    char id[VK_UUID_LEN];
    vkt_submit(t, wf, id);
    json_t *c = vkt_chain_wait(t, id, 30000);
    json_t *f = vkt_frag(c, "boxed");
    char *log = vkt_log(t, vkt_str(f, "id"), 0, 0, NULL);
    printf("sandboxed script's log:\n%s", log);
    VKT_CHECK(c, strcmp(vkt_str(c, "status"), "completed") == 0);
    VKT_CHECK(c, strstr(log, "refused-etc\n") != NULL);
    /* The test's directory is below /tmp: the write there is refused, or (the usual case)
     * lands in the sandbox's private /tmp; exactly one of the two, and never on the host
     * (checked below). */
    bool refused = strstr(log, "refused-outside\n") != NULL;
    bool landed = strstr(log, "bad-outside\n") != NULL;
    VKT_CHECK(c, refused != landed);
    VKT_CHECK(c, strstr(log, "refused-usr\n") != NULL);
    /* /var is not the host's: refused, or written to the sandbox's own (tmpfs) root */
    VKT_CHECK(c, (strstr(log, "refused-var\n") != NULL) != (strstr(log, "bad-var\n") != NULL));
    VKT_CHECK(c, strstr(log, "bad-etc") == NULL && strstr(log, "bad-usr") == NULL);
    VKT_CHECK(c, strstr(log, "hello\ndeep\n") != NULL);
    free(log);
    json_decref(c);
    assert_int_equal(access("/etc/vulcan-test", F_OK), -1);
    assert_int_equal(access("/var/vulcan-test", F_OK), -1);
    assert_int_equal(access(outside, F_OK), -1);
    assert_int_equal(access("/usr/vulcan-test", F_OK), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_timeout_kills_the_group, vkt_setup, vkt_teardown),
        cmocka_unit_test_setup_teardown(test_output_cap, vkt_setup, vkt_teardown),
        cmocka_unit_test_setup_teardown(test_sandbox, vkt_setup, vkt_teardown),
    };
    vkt_filter();
    return cmocka_run_group_tests_name("integration_limits", tests, NULL, NULL);
}
