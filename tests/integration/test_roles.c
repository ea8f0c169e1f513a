/*
 * The server's roles run as separate processes on one database (issue 11; PostgreSQL, and
 * SQLite where wake-ups do not cross processes, so workers find work at their next poll):
 * one process with `--roles api,console`, one with `orchestrator`, one with `triggers`,
 * and a worker talking to the first. A signed webhook sent to the api process becomes a
 * completed chain: verified there, its git work done by the triggers process, the chain
 * run by the worker; the reaper of the orchestrator process re-queues the fragment of a
 * worker that died; a manual run goes the same way. Each process serves only its own
 * routes (and /health everywhere).
 */
#include "harness.h"
#include "vulcan/triggers.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define sh vk_test_sh

#define GIT                                                                                        \
    "GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@example.com GIT_COMMITTER_NAME=t "                       \
    "GIT_COMMITTER_EMAIL=t@example.com git -C %s "

static const char ci_kdl[] =
    "version \"0.1\"\n"
    "triggers \"push\" \"manual\"\n"
    "chain {\n"
    "    machine \"default\"\n"
    "    fragment { name \"build\"; run \"echo built by $TRIGGER\"; }\n"
    "    fragment {\n"
    "        name \"slow\"\n"
    "        run \"if [ \\\"$VULCAN_ATTEMPT\\\" = 1 ]; then sleep 120; fi; "
    "echo attempt $VULCAN_ATTEMPT\"\n"
    "    }\n"
    "}\n";

/* A repository with .vulcan/ci.kdl; its bare copy's file:// URL into `url`, head in `sha`. */
static void make_repo(struct vkt *t, char *url, size_t cap, char sha[41])
{
    char work[600], bare[600];
    snprintf(work, sizeof(work), "%s/repo", t->tmp);
    snprintf(bare, sizeof(bare), "%s/repo.git", t->tmp);
    sh("git init -q -b main %s && mkdir -p %s/.vulcan", work, work);
    vkt_write(t, "repo/.vulcan/ci.kdl", ci_kdl);
    sh(GIT "add -A && " GIT "commit -q -m one && git clone -q --bare %s %s", work, work, work,
       bare);
    char cmd[700];
    snprintf(cmd, sizeof(cmd), "git -C %s rev-parse HEAD", work);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    assert_non_null(fgets(sha, 41, p));
    pclose(p);
    snprintf(url, cap, "file://%s", bare);
}

static void start_role(struct vkt *t, const char *roles, uint16_t port, char *url, size_t cap)
{
    char listen[32], data[600];
    snprintf(listen, sizeof(listen), "127.0.0.1:%u", port);
    snprintf(data, sizeof(data), "%s/data-%s", t->tmp, roles);
    snprintf(url, cap, "http://127.0.0.1:%u", port);
    const char *args[] = {"server",
                          "--no-auth",
                          "--roles",
                          roles,
                          "--listen",
                          listen,
                          "--database",
                          t->db_url,
                          "--data-dir",
                          data,
                          "--log-format",
                          "json",
                          "--worker-timeout",
                          "3",
                          "--log-level",
                          "debug",
                          "--allow-file-repos", /* the test's repositories are file:// */
                          NULL};
    vkt_proc_start(t, roles, args);
    int64_t end = vkt_now() + 20000 * vkt_slow();
    while (vkt_status_of(url, "/health") != 200) {
        if (vkt_now() > end)
            fail_msg("the %s server did not answer /health", roles);
        vkt_sleep(50);
    }
}

/* POST a signed generic webhook to the api process; returns the status, *answer owned. */
static long send_push(struct vkt *t, const char *repo_id, const char *url, const char *sha,
                      const char *delivery, json_t **answer)
{
    char body[2048];
    snprintf(
        body, sizeof(body),
        "{\"event\":\"push\",\"ref\":\"refs/heads/main\",\"before\":\"%040d\",\"after\":\"%s\","
        "\"repository\":{\"url\":\"%s\"}}",
        0, sha, url);
    char sig[96];
    assert_int_equal(
        vk_triggers_hook_sign(VK_TRIGGERS_GENERIC, body, strlen(body), "s3cret", sig, sizeof(sig)),
        0);
    char path[128];
    snprintf(path, sizeof(path), "/hooks/generic/%s", repo_id);
    struct vk_err err;
    assert_int_equal(vk_http_client_set_header(t->cl, "X-Vulcan-Signature", sig), 0);
    assert_int_equal(vk_http_client_set_header(t->cl, "X-Vulcan-Delivery", delivery), 0);
    long st = 0;
    json_t *jb = json_loads(body, 0, NULL);
    int rc = vk_http_client_json(t->cl, "POST", path, jb, 30000, &st, answer, &err);
    json_decref(jb);
    assert_int_equal(vk_http_client_set_header(t->cl, "X-Vulcan-Signature", NULL), 0);
    assert_int_equal(vk_http_client_set_header(t->cl, "X-Vulcan-Delivery", NULL), 0);
    if (rc)
        fail_msg("webhook: %s", err.msg);
    return st;
}

/* The one chain id of a webhook or manual-run answer (200/201 with the outcome, or 202
 * then the trigger request's outcome). */
static void chain_of(struct vkt *t, long st, json_t *a, char id[VK_UUID_LEN])
{
    if (st == 202) {
        char path[128];
        snprintf(path, sizeof(path), "/api/v1/trigger-requests/%s", vkt_str(a, "trigger_request"));
        int64_t end = vkt_now() + 30000 * vkt_slow();
        for (;;) {
            json_t *rq = NULL;
            assert_int_equal(vkt_api(t, path, NULL, &rq), 200);
            if (strcmp(vkt_str(rq, "status"), "done") == 0) {
                json_decref(a);
                a = json_incref(json_object_get(rq, "result"));
                json_decref(rq);
                break;
            }
            json_decref(rq);
            if (vkt_now() > end)
                fail_msg("the trigger request did not finish");
            vkt_sleep(100);
        }
    } else {
        VKT_CHECK(a, st == 200 || st == 201);
    }
    json_t *chains = json_object_get(a, "chains");
    VKT_CHECK(a, json_array_size(chains) == 1);
    snprintf(id, VK_UUID_LEN, "%s", json_string_value(json_array_get(chains, 0)));
    json_decref(a);
}

static void test_roles_apart(void **state)
{
    struct vkt *t = *state;
    char repo_url[700], sha[41];
    make_repo(t, repo_url, sizeof(repo_url), sha);

    /* the api and console process is the harness's main server */
    const char *main_args[] = {"--roles", "api,console",        "--worker-timeout",
                               "3",       "--allow-file-repos", NULL};
    vkt_server_start(t, main_args);
    char orch_url[64], trig_url[64];
    start_role(t, "orchestrator", vkt_free_port(), orch_url, sizeof(orch_url));
    start_role(t, "triggers", vkt_free_port(), trig_url, sizeof(trig_url));

    /* each process serves its own routes only */
    assert_int_equal(vkt_status_of(t->url, "/"), 200); /* console */
    assert_int_equal(vkt_status_of(t->url, "/api/v1/chains"), 200);
    assert_int_equal(vkt_status_of(orch_url, "/api/v1/chains"), 404);
    assert_int_equal(vkt_status_of(orch_url, "/"), 404);
    assert_int_equal(vkt_status_of(trig_url, "/api/v1/repos"), 404);
    assert_int_equal(vkt_status_of(trig_url, "/metrics"), 200);

    json_t *a = NULL;
    assert_int_equal(vkt_api(t, "/api/v1/repos",
                             json_pack("{s:s, s:s, s:s}", "url", repo_url, "provider", "generic",
                                       "webhook_secret", "s3cret"),
                             &a),
                     201);
    char repo_id[VK_UUID_LEN];
    snprintf(repo_id, sizeof(repo_id), "%s", vkt_str(a, "id"));
    json_decref(a);

    int w1 = vkt_worker_start(t, "w1", "default", NULL);

    /* 1. the webhook: verified by api, read by triggers, run by the worker */
    long st = send_push(t, repo_id, repo_url, sha, "delivery-1", &a);
    char chain[VK_UUID_LEN];
    chain_of(t, st, a, chain);
    json_t *c = vkt_frag_wait(t, chain, "slow", "running", 30000);
    const char *build_id = vkt_str(vkt_frag(c, "build"), "id");
    char *log = vkt_log(t, build_id, 0, 0, NULL);
    VKT_CHECK(c, strstr(log, "built by push") != NULL);
    free(log);
    VKT_CHECK(c, strcmp(vkt_str(c, "trigger"), "push") == 0);
    VKT_CHECK(c, strcmp(vkt_str(c, "commit_sha"), sha) == 0);
    json_decref(c);

    /* 2. the worker dies; the orchestrator process's reaper re-queues its fragment */
    vkt_worker_signal(t, w1, SIGKILL);
    vkt_worker_start(t, "w2", "default", NULL);
    c = vkt_chain_wait(t, chain, 60000);
    VKT_CHECK(c, strcmp(vkt_str(c, "status"), "completed") == 0);
    json_t *slow = vkt_frag(c, "slow");
    VKT_CHECK(c, vkt_int(slow, "attempt") == 2);
    log = vkt_log(t, vkt_str(slow, "id"), 0, 0, NULL);
    VKT_CHECK(c, strstr(log, "attempt 2") != NULL);
    free(log);
    json_decref(c);

    /* the same delivery again: handled before, nothing new */
    st = send_push(t, repo_id, repo_url, sha, "delivery-1", &a);
    VKT_CHECK(a, st == 200 && json_array_size(json_object_get(a, "chains")) == 0);
    json_decref(a);

    /* 3. a manual run, handled by the triggers process too */
    char path[128];
    snprintf(path, sizeof(path), "/api/v1/repos/%s/trigger", repo_id);
    st = vkt_api(t, path, json_pack("{s:s}", "branch", "main"), &a);
    chain_of(t, st, a, chain);
    c = vkt_frag_wait(t, chain, "build", "completed", 30000);
    log = vkt_log(t, vkt_str(vkt_frag(c, "build"), "id"), 0, 0, NULL);
    VKT_CHECK(c, strstr(log, "built by manual") != NULL);
    free(log);
    json_decref(c);

    /* and a workflow listing */
    snprintf(path, sizeof(path), "/api/v1/repos/%s/workflows", repo_id);
    assert_int_equal(vkt_api(t, path, NULL, &a), 200);
    VKT_CHECK(a, json_array_size(json_object_get(a, "workflows")) == 1);
    json_decref(a);
}

int main(void)
{
    vkt_filter();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_roles_apart, vkt_setup, vkt_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
