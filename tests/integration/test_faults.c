/*
 * Faults: a worker killed with SIGKILL in the middle of a fragment, the server
 * killed with SIGKILL in the middle of a chain, a worker declared dead that comes
 * back with a stale result, and a worker stopped with SIGTERM while busy.
 */
#include "harness.h"

#include <signal.h>
#include <string.h>

#define HEAD "version \"0.1\"\ntriggers \"push\"\nchain {\n  machine \"default\"\n"

static void test_worker_killed(void **state)
{
    struct vkt *t = *state;
    const char *args[] = {"--worker-timeout", "2", NULL};
    vkt_server_start(t, args);
    int w1 = vkt_worker_start(t, "w1", "default", NULL);
    char id1[VK_UUID_LEN], id2[VK_UUID_LEN];
    vkt_worker_id(t, "w1", id1);
    char id[VK_UUID_LEN];
    vkt_submit(t,
               HEAD "  fragment { name \"long\"; run \"echo start $VULCAN_ATTEMPT; sleep 1; echo "
                    "end $VULCAN_ATTEMPT\" }\n"
                    "  fragment { name \"next\"; run \"echo next\" }\n}\n",
               id);
    json_t *c = vkt_frag_wait(t, id, "long", "running", 10000);
    VKT_CHECK(c, strcmp(vkt_str(vkt_frag(c, "long"), "worker_id"), id1) == 0);
    json_decref(c);
    vkt_sleep(200);
    vkt_worker_signal(t, w1, SIGKILL);
    vkt_worker_start(t, "w2", "default", NULL);
    vkt_worker_id(t, "w2", id2);

    c = vkt_chain_wait(t, id, 30000);
    VKT_CHECK(c, strcmp(vkt_str(c, "status"), "completed") == 0);
    json_t *f = vkt_frag(c, "long");
    VKT_CHECK(c, strcmp(vkt_str(f, "status"), "completed") == 0);
    VKT_CHECK(c, vkt_int(f, "attempt") == 2);
    VKT_CHECK(c, strcmp(vkt_str(f, "worker_id"), id2) == 0);
    char *log = vkt_log(t, vkt_str(f, "id"), 2, 0, NULL);
    VKT_CHECK(c, strcmp(log, "start 2\nend 2\n") == 0);
    free(log);
    /* Attempt 1's log holds what the dead worker sent before it died, no more. */
    log = vkt_log(t, vkt_str(f, "id"), 1, 0, NULL);
    VKT_CHECK(c, strstr(log, "end") == NULL);
    free(log);
    VKT_CHECK(c, strcmp(vkt_str(vkt_frag(c, "next"), "status"), "completed") == 0);
    json_decref(c);

    /* The server reports the killed worker dead. */
    json_t *ws = NULL;
    assert_int_equal(vkt_api(t, "/api/v1/workers", NULL, &ws), 200);
    size_t i;
    json_t *w;
    bool seen = false;
    json_array_foreach(json_object_get(ws, "workers"), i, w)
    {
        if (strcmp(vkt_str(w, "id"), id1) == 0) {
            VKT_CHECK(ws, strcmp(vkt_str(w, "status"), "dead") == 0);
            seen = true;
        }
    }
    VKT_CHECK(ws, seen);
    json_decref(ws);
}

/* Lines "FRAGMENT_ID ATTEMPT" appended by every script run; none may repeat. */
static void check_runs(struct vkt *t, json_t *c, const char *path)
{
    char *runs = vkt_read(path, NULL);
    VKT_CHECK(c, runs != NULL);
    char *lines[64];
    size_t n = 0;
    for (char *save = NULL, *l = strtok_r(runs, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        if (n == VK_ARRAY_LEN(lines))
            fail_msg("too many runs in %s", path);
        for (size_t k = 0; k < n; k++) {
            if (strcmp(lines[k], l) == 0) {
                vkt_dump("chain", c);
                fail_msg("fragment %s ran twice at the same attempt", l);
            }
        }
        lines[n++] = l;
    }
    /* Every fragment ran, and its final attempt is one of the recorded runs. */
    const char *names[] = {"s1", "s2", "s3", "p1", "p2", "s4"};
    for (size_t i = 0; i < VK_ARRAY_LEN(names); i++) {
        json_t *f = vkt_frag(c, names[i]);
        char want[80];
        snprintf(want, sizeof(want), "%s %lld", vkt_str(f, "id"), vkt_int(f, "attempt"));
        bool found = false;
        for (size_t k = 0; k < n; k++)
            found = found || strcmp(lines[k], want) == 0;
        if (!found) {
            vkt_dump("chain", c);
            fail_msg("no run of '%s' (%s) recorded", names[i], want);
        }
    }
    printf("server restart: %zu script runs for 6 fragments\n", n);
    free(runs);
}

static void test_server_killed(void **state)
{
    struct vkt *t = *state;
    vkt_server_start(t, NULL);
    vkt_worker_start(t, "w1", "default", NULL);
    vkt_worker_start(t, "w2", "default", NULL);
    char runs[600], wf[8192];
    snprintf(runs, sizeof(runs), "%s/runs.txt", t->tmp);
    const char *step = "echo \\\"$VULCAN_FRAGMENT_ID $VULCAN_ATTEMPT\\\" >> %s; sleep 0.5";
    char s[700];
    snprintf(s, sizeof(s), step, runs);
    snprintf(wf, sizeof(wf),
             HEAD "  fragment { name \"s1\"; run \"%s\" }\n"
                  "  fragment { name \"s2\"; run \"%s\" }\n"
                  "  fragment { name \"s3\"; run \"%s\" }\n"
                  "  parallel {\n"
                  "    fragment { name \"p1\"; run \"%s\" }\n"
                  "    fragment { name \"p2\"; run \"%s\" }\n"
                  "  }\n"
                  "  fragment { name \"s4\"; run \"%s\" }\n}\n",
             s, s, s, s, s, s);
    char id[VK_UUID_LEN];
    vkt_submit(t, wf, id);
    json_t *c = vkt_frag_wait(t, id, "s2", "running", 10000);
    json_decref(c);
    vkt_sleep(100);
    vkt_server_kill9(t);
    /* The workers finish s2 meanwhile and keep trying to report it. */
    vkt_sleep(1000);
    vkt_server_restart(t);
    c = vkt_chain_wait(t, id, 30000);
    VKT_CHECK(c, strcmp(vkt_str(c, "status"), "completed") == 0);
    check_runs(t, c, runs);
    json_decref(c);

    /* Again, this time while the parallel pair runs, and with the server down longer. */
    unlink(runs);
    vkt_submit(t, wf, id);
    c = vkt_frag_wait(t, id, "p1", "running", 15000);
    json_decref(c);
    vkt_server_kill9(t);
    vkt_sleep(2000);
    vkt_server_restart(t);
    c = vkt_chain_wait(t, id, 30000);
    VKT_CHECK(c, strcmp(vkt_str(c, "status"), "completed") == 0);
    check_runs(t, c, runs);
    json_decref(c);
}

static void test_stale_result_refused(void **state)
{
    struct vkt *t = *state;
    const char *args[] = {"--worker-timeout", "2", NULL};
    vkt_server_start(t, args);
    /* A worker driven by hand: register, claim, then fall silent. */
    json_t *ans = NULL;
    long st = vkt_api(
        t, "/api/v1/workers/register",
        json_pack("{s:s, s:s, s:s}", "machine_group", "default", "name", "fake", "version", "test"),
        &ans);
    VKT_CHECK(ans, st == 200);
    char wid[VK_UUID_LEN];
    snprintf(wid, sizeof(wid), "%s", vkt_str(ans, "worker_id"));
    json_decref(ans);

    char id[VK_UUID_LEN];
    vkt_submit(t, HEAD "  fragment { name \"job\"; run \"echo real run $VULCAN_ATTEMPT\" }\n}\n",
               id);
    st = vkt_api(t, "/api/v1/work/request", json_pack("{s:s, s:i}", "worker_id", wid, "wait_s", 5),
                 &ans);
    VKT_CHECK(ans, st == 200);
    VKT_CHECK(ans, vkt_int(ans, "attempt") == 1);
    char fid[VK_UUID_LEN];
    snprintf(fid, sizeof(fid), "%s", vkt_str(ans, "fragment_id"));
    json_decref(ans);

    /* While alive, its log for attempt 1 is accepted. */
    char path[256];
    snprintf(path, sizeof(path), "/api/v1/work/%s/log?attempt=1&offset=0", fid);
    struct vk_http_response r;
    struct vk_err err;
    assert_int_equal(vk_http_client_request(t->cl, "POST", path, "application/octet-stream",
                                            "stale\n", 6, 0, &r, &err),
                     0);
    assert_int_equal(r.status, 204);
    vk_http_response_release(&r);

    /* No heartbeat: the reaper declares it dead and re-queues the fragment as attempt 2. */
    json_t *c = NULL;
    int64_t end = vkt_now() + 15000 * vkt_slow();
    for (;;) {
        c = vkt_chain(t, id);
        json_t *f = vkt_frag(c, "job");
        if (vkt_int(f, "attempt") == 2 && strcmp(vkt_str(f, "status"), "ready") == 0)
            break;
        if (vkt_now() > end) {
            vkt_dump("chain", c);
            fail_msg("the fragment of the silent worker was not re-queued");
        }
        json_decref(c);
        vkt_sleep(100);
    }
    json_decref(c);

    /* It comes back: its result and log for attempt 1 are refused with 409. */
    st = vkt_api(t, "/api/v1/work/result",
                 json_pack("{s:s, s:s, s:i, s:b, s:i}", "worker_id", wid, "fragment_id", fid,
                           "attempt", 1, "success", 1, "exit_code", 0),
                 &ans);
    VKT_CHECK(ans, st == 409);
    VKT_CHECK(ans, strcmp(vkt_str(ans, "error"), "conflict") == 0);
    json_decref(ans);
    assert_int_equal(vk_http_client_request(t->cl, "POST", path, "application/octet-stream",
                                            "late\n", 5, 0, &r, &err),
                     0);
    assert_int_equal(r.status, 409);
    vk_http_response_release(&r);
    /* Asking for work or beating again tells it it is gone (so a real worker re-registers). */
    st = vkt_api(t, "/api/v1/work/request", json_pack("{s:s, s:i}", "worker_id", wid, "wait_s", 0),
                 &ans);
    VKT_CHECK(ans, st == 409);
    json_decref(ans);
    st = vkt_api(t, "/api/v1/workers/heartbeat", json_pack("{s:s}", "worker_id", wid), &ans);
    VKT_CHECK(ans, st == 404 || st == 409);
    json_decref(ans);

    /* The fragment is still ready; a real worker runs attempt 2 and the chain completes. */
    c = vkt_chain(t, id);
    VKT_CHECK(c, strcmp(vkt_str(vkt_frag(c, "job"), "status"), "ready") == 0);
    json_decref(c);
    vkt_worker_start(t, "w1", "default", NULL);
    char w1[VK_UUID_LEN];
    vkt_worker_id(t, "w1", w1);
    c = vkt_chain_wait(t, id, 20000);
    VKT_CHECK(c, strcmp(vkt_str(c, "status"), "completed") == 0);
    json_t *f = vkt_frag(c, "job");
    VKT_CHECK(c, vkt_int(f, "attempt") == 2);
    VKT_CHECK(c, strcmp(vkt_str(f, "worker_id"), w1) == 0);
    char *log = vkt_log(t, fid, 2, 0, NULL);
    VKT_CHECK(c, strcmp(log, "real run 2\n") == 0);
    free(log);
    log = vkt_log(t, fid, 1, 0, NULL);
    VKT_CHECK(c, strcmp(log, "stale\n") == 0);
    free(log);
    json_decref(c);
}

static void test_sigterm_lets_fragment_finish(void **state)
{
    struct vkt *t = *state;
    vkt_server_start(t, NULL);
    int w = vkt_worker_start(t, "w1", "default", NULL);
    char wid[VK_UUID_LEN];
    vkt_worker_id(t, "w1", wid);
    char id[VK_UUID_LEN];
    vkt_submit(t, HEAD "  fragment { name \"busy\"; run \"echo begin; sleep 2; echo done\" }\n}\n",
               id);
    json_t *c = vkt_frag_wait(t, id, "busy", "running", 10000);
    json_decref(c);
    vkt_sleep(500);
    int64_t t0 = vkt_now();
    vkt_worker_signal(t, w, SIGTERM);
    int code = vkt_worker_wait(t, w, 20000 * vkt_slow());
    int64_t took = vkt_now() - t0;
    assert_int_equal(code, 0);
    c = vkt_chain(t, id);
    VKT_CHECK(c, strcmp(vkt_str(c, "status"), "completed") == 0);
    json_t *f = vkt_frag(c, "busy");
    VKT_CHECK(c, strcmp(vkt_str(f, "status"), "completed") == 0);
    VKT_CHECK(c, vkt_int(f, "attempt") == 1);
    VKT_CHECK(c, strcmp(vkt_str(f, "worker_id"), wid) == 0);
    /* The worker waited for the script (about 1.5 s more), then left. */
    VKT_CHECK(c, took >= 1000);
    char *log = vkt_log(t, vkt_str(f, "id"), 0, 0, NULL);
    VKT_CHECK(c, strcmp(log, "begin\ndone\n") == 0);
    free(log);
    json_decref(c);
    /* It said goodbye: the server no longer counts it as alive. */
    json_t *ws = NULL;
    assert_int_equal(vkt_api(t, "/api/v1/workers", NULL, &ws), 200);
    size_t i;
    json_t *x;
    json_array_foreach(json_object_get(ws, "workers"), i, x)
    {
        if (strcmp(vkt_str(x, "id"), wid) == 0)
            VKT_CHECK(ws, strcmp(vkt_str(x, "status"), "alive") != 0);
    }
    json_decref(ws);
}

/* SIGTERM with a grace period shorter than the script: the fragment is handed back
 * and another worker runs it. */
static void test_sigterm_grace_hands_back(void **state)
{
    struct vkt *t = *state;
    vkt_server_start(t, NULL);
    const char *grace[] = {"--grace", "1", NULL};
    int w = vkt_worker_start(t, "w1", "default", grace);
    char wid[VK_UUID_LEN];
    vkt_worker_id(t, "w1", wid);
    char id[VK_UUID_LEN];
    vkt_submit(t,
               HEAD "  fragment { name \"long\"; run \"echo run $VULCAN_ATTEMPT; sleep 4; echo "
                    "done\" }\n}\n",
               id);
    json_t *c = vkt_frag_wait(t, id, "long", "running", 10000);
    json_decref(c);
    vkt_sleep(300);
    vkt_worker_signal(t, w, SIGTERM);
    assert_int_equal(vkt_worker_wait(t, w, 20000 * vkt_slow()), 0);
    c = vkt_chain(t, id);
    json_t *f = vkt_frag(c, "long");
    VKT_CHECK(c, strcmp(vkt_str(f, "status"), "ready") == 0);
    long long handed_back_attempt = vkt_int(f, "attempt");
    json_decref(c);
    vkt_worker_start(t, "w2", "default", NULL);
    char w2[VK_UUID_LEN];
    vkt_worker_id(t, "w2", w2);
    c = vkt_chain_wait(t, id, 30000);
    VKT_CHECK(c, strcmp(vkt_str(c, "status"), "completed") == 0);
    f = vkt_frag(c, "long");
    VKT_CHECK(c, strcmp(vkt_str(f, "worker_id"), w2) == 0);
    VKT_CHECK(c, vkt_int(f, "attempt") == handed_back_attempt);
    printf("hand-back: the fragment ran again as attempt %lld\n", handed_back_attempt);
    json_decref(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_worker_killed, vkt_setup, vkt_teardown),
        cmocka_unit_test_setup_teardown(test_server_killed, vkt_setup, vkt_teardown),
        cmocka_unit_test_setup_teardown(test_stale_result_refused, vkt_setup, vkt_teardown),
        cmocka_unit_test_setup_teardown(test_sigterm_lets_fragment_finish, vkt_setup, vkt_teardown),
        cmocka_unit_test_setup_teardown(test_sigterm_grace_hands_back, vkt_setup, vkt_teardown),
    };
    vkt_filter();
    return cmocka_run_group_tests_name("integration_faults", tests, NULL, NULL);
}
