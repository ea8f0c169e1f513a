/*
 * Conditions, failure and retry, through a real server and worker: a false
 * condition skips a fragment (or a whole group), a failing fragment fails the
 * chain and skips what had not started while running siblings finish, and
 * `retry` runs a failing script again as a new attempt.
 */
#include "harness.h"

#include <string.h>

#define HEAD "version \"0.1\"\ntriggers \"push\"\nchain {\n  machine \"default\"\n"

static void expect_status(json_t *c, const char *name, const char *status)
{
    json_t *f = vkt_frag(c, name);
    VKT_CHECK(c, strcmp(vkt_str(f, "status"), status) == 0);
}

/* The log of fragment `name`'s attempt `attempt` (0: current) contains `text`. */
static void expect_log(struct vkt *t, json_t *c, const char *name, int attempt, const char *text)
{
    char *log = vkt_log(t, vkt_str(vkt_frag(c, name), "id"), attempt, 0, NULL);
    bool found = strstr(log, text) != NULL;
    if (!found)
        printf("log of '%s' (attempt %d):\n%s\n", name, attempt, log);
    free(log);
    if (!found)
        fail_msg("the log of '%s' does not contain '%s'", name, text);
}

static void test_conditions(void **state)
{
    struct vkt *t = *state;
    vkt_server_start(t, NULL);
    vkt_worker_start(t, "w1", "default", NULL);
    char id[VK_UUID_LEN];
    /* Submitted with branch main and trigger push. */
    vkt_submit(t,
               HEAD "  fragment { name \"always\"; run \"echo yes\" }\n"
                    "  fragment { name \"never\"; condition \"$BRANCH == 'release'\"; run \"echo "
                    "no\" }\n"
                    "  parallel {\n"
                    "    name \"tags-only\"\n"
                    "    condition \"$TRIGGER == 'tag'\"\n"
                    "    fragment { name \"inside\"; run \"echo no\" }\n"
                    "  }\n"
                    "  fragment { name \"when-main\"; condition \"$BRANCH == 'main' && $TRIGGER "
                    "== 'push'\"; run \"echo main-$BRANCH\" }\n"
                    "  fragment { name \"glob\"; condition \"$BRANCH =~ 'ma*'\"; run \"echo glob\" "
                    "}\n"
                    "}\n",
               id);
    json_t *c = vkt_chain_wait(t, id, 20000);
    VKT_CHECK(c, strcmp(vkt_str(c, "status"), "completed") == 0);
    expect_status(c, "always", "completed");
    expect_status(c, "never", "skipped");
    expect_status(c, "tags-only", "skipped");
    expect_status(c, "inside", "skipped");
    expect_status(c, "when-main", "completed");
    expect_status(c, "glob", "completed");
    /* Skipped fragments never reached a worker. */
    const char *skipped[] = {"never", "inside"};
    for (size_t i = 0; i < VK_ARRAY_LEN(skipped); i++) {
        json_t *f = vkt_frag(c, skipped[i]);
        VKT_CHECK(c, json_is_null(json_object_get(f, "worker_id")));
        VKT_CHECK(c, json_is_null(json_object_get(f, "started_at")));
    }
    expect_log(t, c, "when-main", 0, "main-main\n");
    expect_log(t, c, "glob", 0, "glob\n");
    json_decref(c);
}

static void test_failure_skips_the_rest(void **state)
{
    struct vkt *t = *state;
    vkt_server_start(t, NULL);
    const char *conc[] = {"--concurrency", "2", NULL};
    vkt_worker_start(t, "w1", "default", conc);
    char id[VK_UUID_LEN];
    vkt_submit(t,
               HEAD "  fragment { name \"ok\"; run \"echo fine\" }\n"
                    "  parallel {\n"
                    "    fragment { name \"bad\"; run \"echo about to fail; exit 3\" }\n"
                    "    fragment { name \"slow\"; run \"sleep 1; echo slow-finished\" }\n"
                    "  }\n"
                    "  fragment { name \"after\"; run \"echo must not run\" }\n"
                    "  parallel {\n"
                    "    fragment { name \"p-after\"; run \"echo must not run\" }\n"
                    "  }\n"
                    "}\n",
               id);
    json_t *c = vkt_chain_wait(t, id, 20000);
    VKT_CHECK(c, strcmp(vkt_str(c, "status"), "failed") == 0);
    expect_status(c, "ok", "completed");
    expect_status(c, "bad", "failed");
    VKT_CHECK(c, vkt_int(vkt_frag(c, "bad"), "exit_code") == 3);
    expect_log(t, c, "bad", 0, "about to fail\n");
    /* A sibling already running when the chain failed finished and was recorded... */
    expect_status(c, "slow", "completed");
    expect_log(t, c, "slow", 0, "slow-finished\n");
    /* ...and nothing after the failure started. */
    expect_status(c, "after", "skipped");
    expect_status(c, "p-after", "skipped");
    VKT_CHECK(c, json_is_null(json_object_get(vkt_frag(c, "after"), "worker_id")));
    VKT_CHECK(c, json_is_null(json_object_get(vkt_frag(c, "p-after"), "started_at")));
    json_decref(c);
}

static void test_retry(void **state)
{
    struct vkt *t = *state;
    vkt_server_start(t, NULL);
    vkt_worker_start(t, "w1", "default", NULL);
    char id[VK_UUID_LEN];
    vkt_submit(t,
               HEAD "  fragment {\n"
                    "    name \"flaky\"\n"
                    "    retry 1\n"
                    "    run #\"echo \"attempt $VULCAN_ATTEMPT\"; if [ \"$VULCAN_ATTEMPT\" = 1 ]; "
                    "then exit 1; fi; echo recovered\"#\n"
                    "  }\n"
                    "  fragment { name \"next\"; run \"echo next ran\" }\n"
                    "}\n",
               id);
    json_t *c = vkt_chain_wait(t, id, 20000);
    VKT_CHECK(c, strcmp(vkt_str(c, "status"), "completed") == 0);
    json_t *f = vkt_frag(c, "flaky");
    VKT_CHECK(c, strcmp(vkt_str(f, "status"), "completed") == 0);
    VKT_CHECK(c, vkt_int(f, "attempt") == 2);
    VKT_CHECK(c, vkt_int(f, "exit_code") == 0);
    /* Each attempt keeps its own log. */
    expect_log(t, c, "flaky", 1, "attempt 1\n");
    expect_log(t, c, "flaky", 2, "attempt 2\nrecovered\n");
    char *first = vkt_log(t, vkt_str(f, "id"), 1, 0, NULL);
    VKT_CHECK(c, strstr(first, "recovered") == NULL);
    free(first);
    expect_status(c, "next", "completed");
    json_decref(c);

    /* Retries run out: the fragment fails at its last attempt and fails the chain. */
    vkt_submit(t,
               HEAD "  fragment { name \"hopeless\"; retry 2; run \"echo try $VULCAN_ATTEMPT; exit "
                    "7\" }\n"
                    "  fragment { name \"never\"; run \"true\" }\n"
                    "}\n",
               id);
    c = vkt_chain_wait(t, id, 20000);
    VKT_CHECK(c, strcmp(vkt_str(c, "status"), "failed") == 0);
    f = vkt_frag(c, "hopeless");
    VKT_CHECK(c, strcmp(vkt_str(f, "status"), "failed") == 0);
    VKT_CHECK(c, vkt_int(f, "attempt") == 3);
    VKT_CHECK(c, vkt_int(f, "exit_code") == 7);
    expect_log(t, c, "hopeless", 3, "try 3\n");
    expect_status(c, "never", "skipped");
    json_decref(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_conditions, vkt_setup, vkt_teardown),
        cmocka_unit_test_setup_teardown(test_failure_skips_the_rest, vkt_setup, vkt_teardown),
        cmocka_unit_test_setup_teardown(test_retry, vkt_setup, vkt_teardown),
    };
    vkt_filter();
    return cmocka_run_group_tests_name("integration_flow", tests, NULL, NULL);
}
