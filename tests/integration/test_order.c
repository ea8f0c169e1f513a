/*
 * Order and routing, from the times and workers the server recorded: sequential
 * fragments never overlap, parallel siblings do, groups nest, and fragments run
 * only on workers of their machine group.
 */
#include "harness.h"

#include <string.h>

/* The interval [started_at, finished_at] of fragment `name`, checked to be sane. */
static void interval(json_t *c, const char *name, int64_t *start, int64_t *end)
{
    json_t *f = vkt_frag(c, name);
    assert_string_equal(vkt_str(f, "status"), "completed");
    *start = vkt_time(f, "started_at");
    *end = vkt_time(f, "finished_at");
    VKT_CHECK(c, *start <= *end);
}

static int64_t max64(int64_t a, int64_t b)
{
    return a > b ? a : b;
}

static int64_t min64(int64_t a, int64_t b)
{
    return a < b ? a : b;
}

static void test_sequential_in_order(void **state)
{
    struct vkt *t = *state;
    vkt_server_start(t, NULL);
    /* Two idle workers: only the scheduler keeps the fragments apart. */
    vkt_worker_start(t, "w1", "default", NULL);
    vkt_worker_start(t, "w2", "default", NULL);
    char id[VK_UUID_LEN];
    vkt_submit(t,
               "version \"0.1\"\ntriggers \"push\"\nchain {\n  machine \"default\"\n"
               "  fragment { name \"s1\"; run \"sleep 0.3\" }\n"
               "  fragment { name \"s2\"; run \"sleep 0.3\" }\n"
               "  fragment { name \"s3\"; run \"sleep 0.3\" }\n}\n",
               id);
    json_t *c = vkt_chain_wait(t, id, 20000);
    assert_string_equal(vkt_str(c, "status"), "completed");
    int64_t s[3], e[3];
    const char *names[] = {"s1", "s2", "s3"};
    for (int i = 0; i < 3; i++) {
        interval(c, names[i], &s[i], &e[i]);
        VKT_CHECK(c, e[i] - s[i] >= 290); /* the script's sleep happened inside the interval */
        assert_int_equal(vkt_int(vkt_frag(c, names[i]), "attempt"), 1);
        assert_int_equal(vkt_int(vkt_frag(c, names[i]), "exit_code"), 0);
    }
    for (int i = 1; i < 3; i++)
        VKT_CHECK(c, s[i] >= e[i - 1]); /* starts only after its predecessor finished */
    VKT_CHECK(c, vkt_time(c, "finished_at") >= e[2]);
    json_decref(c);
}

static const char parallel_wf[] =
    "version \"0.1\"\ntriggers \"push\"\nchain {\n  machine \"default\"\n"
    "  parallel {\n"
    "    name \"both\"\n"
    "    fragment { name \"p1\"; run \"sleep 0.6\" }\n"
    "    fragment { name \"p2\"; run \"sleep 0.6\" }\n"
    "  }\n"
    "  fragment { name \"after\"; run \"true\" }\n}\n";

static void check_parallel(json_t *c)
{
    assert_string_equal(vkt_str(c, "status"), "completed");
    int64_t s1, e1, s2, e2, sa, ea;
    interval(c, "p1", &s1, &e1);
    interval(c, "p2", &s2, &e2);
    interval(c, "after", &sa, &ea);
    /* The two siblings overlap in time. */
    VKT_CHECK(c, max64(s1, s2) < min64(e1, e2));
    /* The next sibling waited for both. */
    VKT_CHECK(c, sa >= max64(e1, e2));
    json_t *g = vkt_frag(c, "both");
    assert_string_equal(vkt_str(g, "status"), "completed");
    VKT_CHECK(c, vkt_time(g, "started_at") <= min64(s1, s2));
    VKT_CHECK(c, vkt_time(g, "finished_at") >= max64(e1, e2));
}

static void test_parallel_two_workers(void **state)
{
    struct vkt *t = *state;
    vkt_server_start(t, NULL);
    vkt_worker_start(t, "w1", "default", NULL);
    vkt_worker_start(t, "w2", "default", NULL);
    char w1[VK_UUID_LEN], w2[VK_UUID_LEN];
    vkt_worker_id(t, "w1", w1);
    vkt_worker_id(t, "w2", w2);
    char id[VK_UUID_LEN];
    vkt_submit(t, parallel_wf, id);
    json_t *c = vkt_chain_wait(t, id, 20000);
    check_parallel(c);
    /* With one fragment at a time per worker, the overlap needs both workers. */
    assert_string_not_equal(vkt_str(vkt_frag(c, "p1"), "worker_id"),
                            vkt_str(vkt_frag(c, "p2"), "worker_id"));
    json_decref(c);
}

static void test_parallel_concurrency(void **state)
{
    struct vkt *t = *state;
    vkt_server_start(t, NULL);
    const char *conc[] = {"--concurrency", "2", NULL};
    vkt_worker_start(t, "w1", "default", conc);
    char w1[VK_UUID_LEN];
    vkt_worker_id(t, "w1", w1);
    char id[VK_UUID_LEN];
    vkt_submit(t, parallel_wf, id);
    json_t *c = vkt_chain_wait(t, id, 20000);
    check_parallel(c);
    assert_string_equal(vkt_str(vkt_frag(c, "p1"), "worker_id"), w1);
    assert_string_equal(vkt_str(vkt_frag(c, "p2"), "worker_id"), w1);
    json_decref(c);
}

/* A parallel group inside the chain's sequence, another parallel group inside it,
 * and a sequential chain around both. */
static void test_nested_groups(void **state)
{
    struct vkt *t = *state;
    vkt_server_start(t, NULL);
    const char *conc[] = {"--concurrency", "3", NULL};
    vkt_worker_start(t, "w1", "default", conc);
    char id[VK_UUID_LEN];
    vkt_submit(t,
               "version \"0.1\"\ntriggers \"push\"\nchain {\n  machine \"default\"\n"
               "  fragment { name \"first\"; run \"sleep 0.2\" }\n"
               "  parallel {\n"
               "    name \"outer\"\n"
               "    fragment { name \"pa\"; run \"sleep 0.6\" }\n"
               "    parallel {\n"
               "      name \"inner\"\n"
               "      fragment { name \"pb\"; run \"sleep 0.6\" }\n"
               "      fragment { name \"pc\"; run \"sleep 0.6\" }\n"
               "    }\n"
               "  }\n"
               "  fragment { name \"middle\"; run \"sleep 0.2\" }\n"
               "  parallel {\n"
               "    name \"second\"\n"
               "    fragment { name \"q1\"; run \"sleep 0.4\" }\n"
               "    fragment { name \"q2\"; run \"sleep 0.4\" }\n"
               "  }\n"
               "  fragment { name \"last\"; run \"true\" }\n}\n",
               id);
    json_t *c = vkt_chain_wait(t, id, 30000);
    assert_string_equal(vkt_str(c, "status"), "completed");
    int64_t fs, fe, s[3], e[3], ms, me, q1s, q1e, q2s, q2e, ls, le;
    interval(c, "first", &fs, &fe);
    interval(c, "pa", &s[0], &e[0]);
    interval(c, "pb", &s[1], &e[1]);
    interval(c, "pc", &s[2], &e[2]);
    interval(c, "middle", &ms, &me);
    interval(c, "q1", &q1s, &q1e);
    interval(c, "q2", &q2s, &q2e);
    interval(c, "last", &ls, &le);
    /* All three leaves of the nested parallel groups run at once, after `first`. */
    int64_t latest_start = max64(s[0], max64(s[1], s[2]));
    int64_t earliest_end = min64(e[0], min64(e[1], e[2]));
    int64_t latest_end = max64(e[0], max64(e[1], e[2]));
    for (int i = 0; i < 3; i++)
        VKT_CHECK(c, s[i] >= fe);
    VKT_CHECK(c, latest_start < earliest_end);
    /* The inner group finished when both its children had; `middle` waited for the whole outer
     * group. */
    json_t *inner = vkt_frag(c, "inner"), *outer = vkt_frag(c, "outer");
    assert_string_equal(vkt_str(inner, "status"), "completed");
    assert_string_equal(vkt_str(outer, "status"), "completed");
    VKT_CHECK(c, vkt_time(inner, "finished_at") >= max64(e[1], e[2]));
    VKT_CHECK(c, vkt_time(outer, "finished_at") >= latest_end);
    VKT_CHECK(c, ms >= latest_end);
    VKT_CHECK(c, q1s >= me && q2s >= me);
    VKT_CHECK(c, max64(q1s, q2s) < min64(q1e, q2e));
    VKT_CHECK(c, ls >= max64(q1e, q2e));
    json_decref(c);
}

static void test_routing(void **state)
{
    struct vkt *t = *state;
    vkt_server_start(t, NULL);
    vkt_worker_start(t, "wa", "a", NULL);
    vkt_worker_start(t, "wb", "b", NULL);
    char wa[VK_UUID_LEN], wb[VK_UUID_LEN];
    vkt_worker_id(t, "wa", wa);
    vkt_worker_id(t, "wb", wb);
    char id[VK_UUID_LEN];
    vkt_submit(t,
               "version \"0.1\"\ntriggers \"push\"\nchain {\n  machine \"a\"\n"
               "  fragment { name \"a1\"; run \"echo machine=$VULCAN_MACHINE\" }\n"
               "  fragment { name \"b1\"; machine \"b\"; run \"echo machine=$VULCAN_MACHINE\" }\n"
               "  parallel {\n"
               "    machine \"b\"\n"
               "    fragment { name \"b2\"; run \"echo machine=$VULCAN_MACHINE\" }\n"
               "    fragment { name \"b3\"; run \"echo machine=$VULCAN_MACHINE\" }\n"
               "    fragment { name \"a2\"; machine \"a\"; run \"echo machine=$VULCAN_MACHINE\" }\n"
               "    fragment { name \"a3\"; machine \"a\"; run \"echo machine=$VULCAN_MACHINE\" }\n"
               "  }\n}\n",
               id);
    json_t *c = vkt_chain_wait(t, id, 20000);
    assert_string_equal(vkt_str(c, "status"), "completed");
    const char *names[] = {"a1", "a2", "a3", "b1", "b2", "b3"};
    for (size_t i = 0; i < VK_ARRAY_LEN(names); i++) {
        json_t *f = vkt_frag(c, names[i]);
        bool on_a = names[i][0] == 'a';
        assert_string_equal(vkt_str(f, "status"), "completed");
        assert_string_equal(vkt_str(f, "machine"), on_a ? "a" : "b");
        assert_string_equal(vkt_str(f, "worker_id"), on_a ? wa : wb);
        char *log = vkt_log(t, vkt_str(f, "id"), 0, 0, NULL);
        assert_string_equal(log, on_a ? "machine=a\n" : "machine=b\n");
        free(log);
    }
    json_decref(c);

    /* A group nobody serves: the fragment waits, and the chain says why. */
    vkt_submit(t,
               "version \"0.1\"\ntriggers \"push\"\nchain {\n  machine \"c\"\n"
               "  fragment { name \"c1\"; run \"true\" }\n}\n",
               id);
    vkt_sleep(500);
    c = vkt_chain(t, id);
    json_t *f = vkt_frag(c, "c1");
    assert_string_equal(vkt_str(f, "status"), "ready");
    assert_string_equal(vkt_str(f, "waiting_reason"),
                        "no worker of machine group 'c' has ever registered");
    json_decref(c);
}

/* `vulcan server --workers 2`: the one-command setup runs chains with its own local
 * workers, and SIGTERM (teardown) stops them and the server cleanly. */
static void test_local_workers(void **state)
{
    struct vkt *t = *state;
    const char *args[] = {"--workers", "2", "--worker-sandbox", "none", NULL};
    vkt_server_start(t, args);
    char l1[VK_UUID_LEN], l2[VK_UUID_LEN];
    vkt_worker_id(t, "local-1", l1);
    vkt_worker_id(t, "local-2", l2);
    char id[VK_UUID_LEN];
    vkt_submit(t, parallel_wf, id);
    json_t *c = vkt_chain_wait(t, id, 20000);
    check_parallel(c);
    const char *a = vkt_str(vkt_frag(c, "p1"), "worker_id");
    const char *b = vkt_str(vkt_frag(c, "p2"), "worker_id");
    VKT_CHECK(c, strcmp(a, b) != 0);
    VKT_CHECK(c, strcmp(a, l1) == 0 || strcmp(a, l2) == 0);
    VKT_CHECK(c, strcmp(b, l1) == 0 || strcmp(b, l2) == 0);
    json_decref(c);
    vkt_server_stop(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sequential_in_order, vkt_setup, vkt_teardown),
        cmocka_unit_test_setup_teardown(test_parallel_two_workers, vkt_setup, vkt_teardown),
        cmocka_unit_test_setup_teardown(test_parallel_concurrency, vkt_setup, vkt_teardown),
        cmocka_unit_test_setup_teardown(test_nested_groups, vkt_setup, vkt_teardown),
        cmocka_unit_test_setup_teardown(test_routing, vkt_setup, vkt_teardown),
        cmocka_unit_test_setup_teardown(test_local_workers, vkt_setup, vkt_teardown),
    };
    vkt_filter();
    return cmocka_run_group_tests_name("integration_order", tests, NULL, NULL);
}
