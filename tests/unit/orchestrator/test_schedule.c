/*
 * The chain state machine against a real store: order of sequential fragments, parallel
 * groups, conditions, failure, retry, cancel, rerun and the reaper; matrix failure
 * policies. In-memory SQLite, or with VK_TEST_STORE_BACKEND=postgres (through
 * scripts/pg-test.sh) a new database per test on the cluster in VK_TEST_PG_URL.
 */
#include "vk_test.h"
#include "vulcan/orchestrator.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* The store URL of the next test: SQLite in memory, or a fresh PostgreSQL database. */
static void store_url(char *url, size_t n)
{
    static int seq;
    const char *b = getenv("VK_TEST_STORE_BACKEND");
    if (!b || strcmp(b, "postgres") != 0) {
        snprintf(url, n, "sqlite::memory:");
        return;
    }
    const char *base = getenv("VK_TEST_PG_URL");
    if (!base || !*base)
        fail_msg("VK_TEST_PG_URL is not set: run this test through scripts/pg-test.sh");
    PGconn *db = PQconnectdb(base);
    if (PQstatus(db) != CONNECTION_OK)
        fail_msg("cannot connect to %s: %s", base, PQerrorMessage(db));
    char sql[128], name[64];
    snprintf(name, sizeof(name), "sched%d_%d", (int)getpid(), ++seq);
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", name);
    PGresult *r = PQexec(db, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        fail_msg("create database: %s", PQerrorMessage(db));
    PQclear(r);
    PQfinish(db);
    const char *slash = strrchr(base, '/');
    assert_non_null(slash);
    snprintf(url, n, "%.*s/%s", (int)(slash - base), base, name);
}

struct fixture {
    struct vk_store *store;
    struct vk_orch *orch;
    char worker[VK_UUID_LEN];
};

static const char *const default_groups[] = {"default", "a"};

static int setup(void **state)
{
    struct fixture *fx = vk_mem_xcalloc(1, sizeof(*fx));
    struct vk_err err;
    char url[512];
    store_url(url, sizeof(url));
    if (vk_store_open(url, &fx->store, &err) != 0)
        fail_msg("open %s: %s", url, err.msg);
    struct vk_orch_opts opts = {.worker_timeout_ms = 200, .max_attempts = 2};
    assert_int_equal(vk_orch_new(fx->store, &opts, &fx->orch, &err), 0);
    assert_int_equal(vk_store_worker_register(fx->store, NULL, "w1", "test", default_groups, 2,
                                              vk_time_now_ms(), fx->worker, &err),
                     0);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    vk_orch_free(fx->orch);
    vk_store_close(fx->store);
    vk_mem_free(fx);
    return 0;
}

static void submit(struct fixture *fx, const char *kdl, const char *branch, char id[VK_UUID_LEN])
{
    struct vk_workflow *wf = NULL;
    struct vk_wf_error we;
    vk_wf_error_init(&we);
    int rc = vk_workflow_load_buffer(kdl, strlen(kdl), "test.kdl", NULL, &wf, &we);
    if (rc != 0)
        fail_msg("workflow: %s", we.rendered ? we.rendered : we.msg);
    struct vk_orch_context ctx = {.branch = branch, .trigger = "push"};
    struct vk_err err;
    rc = vk_orch_submit(fx->orch, wf, kdl, &ctx, id, NULL, &err);
    if (rc != 0)
        fail_msg("submit: %s", err.msg);
    vk_workflow_free(wf);
}

/* Claim one fragment; returns its name in `name` ("" when nothing is ready). */
static bool claim(struct fixture *fx, char name[64], char id[VK_UUID_LEN], int *attempt)
{
    struct vk_pool pool;
    vk_pool_init(&pool, 0);
    struct vk_store_work w;
    struct vk_err err;
    int rc = vk_orch_claim(fx->orch, fx->worker, default_groups, 2, &pool, &w, &err);
    bool got = rc == 0;
    if (rc != 0 && rc != VK_ENOTFOUND)
        fail_msg("claim: %s", err.msg);
    name[0] = '\0';
    if (got) {
        snprintf(name, 64, "%s", w.fragment.name ? w.fragment.name : "?");
        snprintf(id, VK_UUID_LEN, "%s", w.fragment.id);
        *attempt = w.fragment.attempt;
    }
    vk_pool_release(&pool);
    return got;
}

static enum vk_store_frag_status finish(struct fixture *fx, const char *id, int attempt, bool ok)
{
    struct vk_orch_result r = {.worker_id = fx->worker,
                               .fragment_id = id,
                               .attempt = attempt,
                               .success = ok,
                               .has_exit_code = true,
                               .exit_code = ok ? 0 : 1};
    enum vk_store_frag_status st;
    struct vk_err err;
    if (vk_orch_result(fx->orch, &r, &st, &err) != 0)
        fail_msg("result: %s", err.msg);
    return st;
}

static enum vk_store_chain_status chain_status(struct fixture *fx, const char *id)
{
    struct vk_pool pool;
    vk_pool_init(&pool, 0);
    struct vk_store_chain c;
    struct vk_err err;
    assert_int_equal(vk_store_chain_get(fx->store, id, &pool, &c, NULL, NULL, &err), 0);
    vk_pool_release(&pool);
    return c.status;
}

/* Status of the fragment called `name` in chain `id`. */
static enum vk_store_frag_status frag_status(struct fixture *fx, const char *id, const char *name)
{
    struct vk_pool pool;
    vk_pool_init(&pool, 0);
    struct vk_store_chain c;
    struct vk_store_fragment *f = NULL;
    size_t n = 0;
    struct vk_err err;
    assert_int_equal(vk_store_chain_get(fx->store, id, &pool, &c, &f, &n, &err), 0);
    int st = -1;
    for (size_t i = 0; i < n; i++) {
        if (f[i].name && strcmp(f[i].name, name) == 0)
            st = (int)f[i].status;
    }
    vk_pool_release(&pool);
    if (st < 0)
        fail_msg("no fragment '%s'", name);
    return (enum vk_store_frag_status)st;
}

/* The error (skip reason) of the fragment called `name` in chain `id` (a static copy). */
static const char *frag_error(struct fixture *fx, const char *id, const char *name)
{
    static char out[512];
    struct vk_pool pool;
    vk_pool_init(&pool, 0);
    struct vk_store_chain c;
    struct vk_store_fragment *f = NULL;
    size_t n = 0;
    struct vk_err err;
    assert_int_equal(vk_store_chain_get(fx->store, id, &pool, &c, &f, &n, &err), 0);
    snprintf(out, sizeof(out), "(no fragment)");
    for (size_t i = 0; i < n; i++)
        if (f[i].name && strcmp(f[i].name, name) == 0)
            snprintf(out, sizeof(out), "%s", f[i].error ? f[i].error : "(none)");
    vk_pool_release(&pool);
    return out;
}

static void test_sequential_order(void **state)
{
    struct fixture *fx = *state;
    char chain[VK_UUID_LEN], id[VK_UUID_LEN], name[64];
    int attempt;
    submit(fx,
           "version \"0.1\"\ntriggers \"push\"\nchain {\n machine \"default\"\n"
           " fragment { name \"one\"; run \"true\" }\n fragment { name \"two\"; run \"true\" }\n"
           " fragment { name \"three\"; run \"true\" }\n}\n",
           "main", chain);
    const char *order[] = {"one", "two", "three"};
    for (int i = 0; i < 3; i++) {
        assert_true(claim(fx, name, id, &attempt));
        assert_string_equal(name, order[i]);
        /* Nothing else is ready while one runs. */
        char n2[64], id2[VK_UUID_LEN];
        int a2;
        assert_false(claim(fx, n2, id2, &a2));
        assert_int_equal(finish(fx, id, attempt, true), VK_STORE_FRAG_COMPLETED);
    }
    assert_int_equal(chain_status(fx, chain), VK_STORE_CHAIN_COMPLETED);
}

/* Issue 16: the next step of a sequence is one indexed read of the following sibling
 * (vk_store_tx_next_sibling), past a group's subtree and past a skipped sibling. */
static void test_sequence_next_sibling(void **state)
{
    struct fixture *fx = *state;
    char chain[VK_UUID_LEN], id[VK_UUID_LEN], ids[2][VK_UUID_LEN], name[64];
    int a, att[2];
    submit(fx,
           "version \"0.1\"\ntriggers \"push\"\nchain {\n machine \"default\"\n"
           " fragment { name \"one\"; run \"true\" }\n"
           " parallel {\n  fragment { name \"p1\"; run \"true\" }\n"
           "  fragment { name \"p2\"; run \"true\" }\n }\n"
           " fragment { name \"never\"; condition \"$BRANCH == 'nope'\"; run \"true\" }\n"
           " fragment { name \"last\"; run \"true\" }\n}\n",
           "main", chain);
    assert_true(claim(fx, name, id, &a));
    assert_string_equal(name, "one");
    assert_false(claim(fx, name, ids[0], &att[0]));
    finish(fx, id, a, true);
    for (int i = 0; i < 2; i++) {
        assert_true(claim(fx, name, ids[i], &att[i]));
        assert_true(name[0] == 'p');
    }
    finish(fx, ids[0], att[0], true);
    assert_false(claim(fx, name, id, &a));
    finish(fx, ids[1], att[1], true);
    assert_true(claim(fx, name, id, &a));
    assert_string_equal(name, "last");
    assert_int_equal(frag_status(fx, chain, "never"), VK_STORE_FRAG_SKIPPED);
    assert_false(claim(fx, name, ids[0], &att[0]));
    finish(fx, id, a, true);
    assert_int_equal(chain_status(fx, chain), VK_STORE_CHAIN_COMPLETED);
}

static void test_parallel_and_nested(void **state)
{
    struct fixture *fx = *state;
    char chain[VK_UUID_LEN], name[64];
    submit(fx,
           "version \"0.1\"\ntriggers \"push\"\nchain {\n machine \"default\"\n"
           " parallel {\n  fragment { name \"p1\"; run \"true\" }\n"
           "  fragment { name \"p2\"; run \"true\"; machine \"a\" }\n"
           "  parallel { fragment { name \"p3\"; run \"true\" } }\n }\n"
           " fragment { name \"after\"; run \"true\" }\n}\n",
           "main", chain);
    char ids[3][VK_UUID_LEN];
    int att[3];
    bool seen[3] = {false, false, false};
    for (int i = 0; i < 3; i++) {
        assert_true(claim(fx, name, ids[i], &att[i]));
        assert_true(name[0] == 'p');
        seen[name[1] - '1'] = true;
    }
    assert_true(seen[0] && seen[1] && seen[2]);
    char id[VK_UUID_LEN];
    int a;
    assert_false(claim(fx, name, id, &a));
    finish(fx, ids[0], att[0], true);
    finish(fx, ids[1], att[1], true);
    assert_false(claim(fx, name, id, &a)); /* "after" waits for the whole group */
    finish(fx, ids[2], att[2], true);
    assert_true(claim(fx, name, id, &a));
    assert_string_equal(name, "after");
    finish(fx, id, a, true);
    assert_int_equal(chain_status(fx, chain), VK_STORE_CHAIN_COMPLETED);
}

/* A big parallel group: the group (and what follows it) waits for its last child
 * whatever the order results come in, including the first child last. */
static void test_big_parallel_group(void **state)
{
    struct fixture *fx = *state;
    enum { N = 120 };
    struct vk_buf kdl = VK_BUF_INIT(1u << 20);
    assert_int_equal(vk_buf_adds(&kdl, "version \"0.1\"\ntriggers \"push\"\nchain {\n"
                                       " machine \"default\"\n parallel {\n"),
                     0);
    for (int i = 0; i < N; i++)
        assert_int_equal(vk_buf_addf(&kdl, "  fragment { name \"f%d\"; run \"true\" }\n", i), 0);
    assert_int_equal(vk_buf_adds(&kdl, " }\n fragment { name \"after\"; run \"true\" }\n}\n"), 0);
    char chain[VK_UUID_LEN], name[64];
    submit(fx, kdl.data, "main", chain);
    vk_buf_release(&kdl);
    static char ids[N][VK_UUID_LEN];
    int att[N], first = -1, last = -1;
    for (int i = 0; i < N; i++) {
        assert_true(claim(fx, name, ids[i], &att[i]));
        if (strcmp(name, "f0") == 0)
            first = i;
        if (strcmp(name, "f119") == 0)
            last = i;
    }
    assert_true(first >= 0 && last >= 0);
    char id[VK_UUID_LEN];
    int a;
    assert_false(claim(fx, name, id, &a));
    /* The highest sequence first, then the rest, the lowest sequence at the very end. */
    finish(fx, ids[last], att[last], true);
    for (int i = 0; i < N; i++) {
        if (i == first || i == last)
            continue;
        finish(fx, ids[i], att[i], true);
        assert_false(claim(fx, name, id, &a));
    }
    assert_int_equal(chain_status(fx, chain), VK_STORE_CHAIN_RUNNING);
    finish(fx, ids[first], att[first], true);
    assert_true(claim(fx, name, id, &a));
    assert_string_equal(name, "after");
    finish(fx, id, a, true);
    assert_int_equal(chain_status(fx, chain), VK_STORE_CHAIN_COMPLETED);
}

static void test_condition_skips(void **state)
{
    struct fixture *fx = *state;
    char chain[VK_UUID_LEN], id[VK_UUID_LEN], name[64];
    int a;
    submit(fx,
           "version \"0.1\"\ntriggers \"push\"\nchain {\n machine \"default\"\n"
           " fragment { name \"deploy\"; condition \"$BRANCH == 'main'\"; run \"true\" }\n"
           " parallel { condition \"$BRANCH =~ 'rel/*'\"\n"
           "   fragment { name \"inner\"; run \"true\" } }\n"
           " fragment { name \"last\"; run \"true\" }\n}\n",
           "feature/x", chain);
    assert_true(claim(fx, name, id, &a));
    assert_string_equal(name, "last");
    assert_int_equal(frag_status(fx, chain, "deploy"), VK_STORE_FRAG_SKIPPED);
    assert_int_equal(frag_status(fx, chain, "inner"), VK_STORE_FRAG_SKIPPED);
    finish(fx, id, a, true);
    assert_int_equal(chain_status(fx, chain), VK_STORE_CHAIN_COMPLETED);
    /* issue 12 item 13: the skip says which condition and what its variables were */
    assert_string_equal(frag_error(fx, chain, "deploy"),
                        "skipped: condition false (`$BRANCH == 'main'`, BRANCH=feature/x)");
}

/* Issue 12 item 11: $EVENT and the fragment's own env are visible to conditions; the
 * fragment's env wins over the chain's, the context wins over both. */
static void test_condition_variables(void **state)
{
    struct fixture *fx = *state;
    char chain[VK_UUID_LEN], id[VK_UUID_LEN], name[64];
    int a;
    submit(fx,
           "version \"0.1\"\ntriggers \"push\"\nchain {\n"
           " machine \"default\"\n env { FOO \"chain\"; }\n"
           " fragment { name \"event\"; condition \"$EVENT == 'push'\"; run \"true\" }\n"
           " fragment { name \"own\"; env { FOO \"own\"; }; condition \"$FOO == 'own'\"; "
           "run \"true\" }\n"
           " fragment { name \"chainenv\"; condition \"$FOO == 'own'\"; run \"true\" }\n"
           " fragment { name \"fake\"; env { BRANCH \"main\"; }; condition "
           "\"$BRANCH == 'main' && $NOPE == 'x'\"; run \"true\" }\n}\n",
           "dev", chain);
    for (int i = 0; i < 2; i++) {
        assert_true(claim(fx, name, id, &a));
        assert_string_equal(name, i == 0 ? "event" : "own");
        finish(fx, id, a, true);
    }
    assert_false(claim(fx, name, id, &a));
    assert_int_equal(frag_status(fx, chain, "chainenv"), VK_STORE_FRAG_SKIPPED);
    assert_string_equal(frag_error(fx, chain, "chainenv"),
                        "skipped: condition false (`$FOO == 'own'`, FOO=chain)");
    /* BRANCH comes from the context however the fragment sets it; && stops at the first
     * false operand, so NOPE is not read. */
    assert_string_equal(frag_error(fx, chain, "fake"),
                        "skipped: condition false (`$BRANCH == 'main' && $NOPE == 'x'`, "
                        "BRANCH=dev)");
    assert_int_equal(chain_status(fx, chain), VK_STORE_CHAIN_COMPLETED);
}

/* Issue 12 item 11: $COMMIT_MESSAGE and $COMMIT_AUTHOR (from the webhook's or the manual
 * trigger's commit) decide; the message is kept up to 4 KiB, cut at a character. */
static void test_commit_variables(void **state)
{
    struct fixture *fx = *state;
    const char *kdl =
        "version \"0.1\"\ntriggers \"push\"\nchain {\n machine \"default\"\n"
        " fragment { name \"deploy\"; condition \"$COMMIT_MESSAGE =~ '*deploy*'\"; "
        "run \"true\" }\n"
        " fragment { name \"ada\"; condition \"$COMMIT_AUTHOR == 'Ada <ada@example.com>'\"; "
        "run \"true\" }\n"
        " fragment { name \"docs\"; condition \"$COMMIT_MESSAGE =~ 'docs:*'\"; "
        "run \"true\" }\n}\n";
    struct vk_workflow *wf = NULL;
    struct vk_wf_error we;
    vk_wf_error_init(&we);
    assert_int_equal(vk_workflow_load_buffer(kdl, strlen(kdl), "test.kdl", NULL, &wf, &we), 0);
    /* 4094 bytes of 'x', then "é" (2 bytes) and more: the cut keeps no half character. */
    static char msg[6000];
    memcpy(msg, "fix: deploy the thing\n", 22);
    memset(msg + 22, 'x', 4094 - 22 - 1);
    snprintf(msg + 4093, sizeof(msg) - 4093, "\xc3\xa9\xc3\xa9 tail");
    struct vk_orch_context ctx = {.branch = "main",
                                  .trigger = "push",
                                  .commit_message = msg,
                                  .commit_author = "Ada <ada@example.com>"};
    char chain[VK_UUID_LEN], id[VK_UUID_LEN], name[64];
    struct vk_err err;
    assert_int_equal(vk_orch_submit(fx->orch, wf, kdl, &ctx, chain, NULL, &err), 0);
    vk_workflow_free(wf);
    int a;
    for (int i = 0; i < 2; i++) {
        assert_true(claim(fx, name, id, &a));
        assert_string_equal(name, i == 0 ? "deploy" : "ada");
        finish(fx, id, a, true);
    }
    assert_false(claim(fx, name, id, &a));
    assert_int_equal(frag_status(fx, chain, "docs"), VK_STORE_FRAG_SKIPPED);
    struct vk_pool pool;
    vk_pool_init(&pool, 0);
    struct vk_store_chain c;
    assert_int_equal(vk_store_chain_get(fx->store, chain, &pool, &c, NULL, NULL, &err), 0);
    assert_string_equal(c.commit_author, "Ada <ada@example.com>");
    assert_int_equal(strlen(c.commit_message), 4095); /* 4093 + one whole "é" */
    assert_memory_equal(c.commit_message + 4093, "\xc3\xa9", 2);
    vk_pool_release(&pool);
}

static void test_failure_skips_rest(void **state)
{
    struct fixture *fx = *state;
    char chain[VK_UUID_LEN], id[VK_UUID_LEN], name[64];
    int a;
    submit(fx,
           "version \"0.1\"\ntriggers \"push\"\nchain {\n machine \"default\"\n"
           " fragment { name \"build\"; run \"false\" }\n"
           " fragment { name \"test\"; run \"true\" }\n}\n",
           "main", chain);
    assert_true(claim(fx, name, id, &a));
    assert_int_equal(finish(fx, id, a, false), VK_STORE_FRAG_FAILED);
    assert_false(claim(fx, name, id, &a));
    assert_int_equal(frag_status(fx, chain, "test"), VK_STORE_FRAG_SKIPPED);
    assert_int_equal(chain_status(fx, chain), VK_STORE_CHAIN_FAILED);
    /* issue 12 item 13: the skip names the fragment whose failure caused it */
    struct vk_pool pool;
    vk_pool_init(&pool, 0);
    struct vk_store_chain c;
    struct vk_store_fragment *f = NULL;
    size_t n = 0;
    struct vk_err err;
    assert_int_equal(vk_store_chain_get(fx->store, chain, &pool, &c, &f, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(f[1].name, "test");
    assert_string_equal(f[1].error, "skipped: `build` failed");
    vk_pool_release(&pool);
}

/* Issue 17: `max-parallel 2` on a matrix: two copies at a time, the next when one ends. */
static void test_max_parallel(void **state)
{
    struct fixture *fx = *state;
    char chain[VK_UUID_LEN], name[64], ids[4][VK_UUID_LEN], id[VK_UUID_LEN];
    int att[4], a;
    submit(fx,
           "version \"0.1\"\ntriggers \"push\"\nchain {\n machine \"default\"\n"
           " fragment { name \"n\"; matrix { n 1 2 3 4; max-parallel 2; }; run \"true\" }\n"
           " fragment { name \"after\"; run \"true\" }\n}\n",
           "main", chain);
    /* Ready fragments are claimed in no fixed order among themselves: the first two. */
    char first[64];
    assert_true(claim(fx, first, ids[0], &att[0]));
    assert_true(claim(fx, name, ids[1], &att[1]));
    assert_true((strcmp(first, "n (1)") == 0 && strcmp(name, "n (2)") == 0) ||
                (strcmp(first, "n (2)") == 0 && strcmp(name, "n (1)") == 0));
    assert_false(claim(fx, name, id, &a)); /* at most two at once */
    assert_int_equal(frag_status(fx, chain, "n (3)"), VK_STORE_FRAG_PENDING);
    finish(fx, ids[1], att[1], true);
    assert_true(claim(fx, name, ids[2], &att[2]));
    assert_string_equal(name, "n (3)");
    assert_false(claim(fx, name, id, &a));
    finish(fx, ids[0], att[0], true);
    assert_true(claim(fx, name, ids[3], &att[3]));
    assert_string_equal(name, "n (4)");
    assert_false(claim(fx, name, id, &a));
    finish(fx, ids[2], att[2], true);
    assert_false(claim(fx, name, id, &a)); /* "after" waits for the whole matrix */
    finish(fx, ids[3], att[3], true);
    assert_true(claim(fx, name, id, &a));
    assert_string_equal(name, "after");
    finish(fx, id, a, true);
    assert_int_equal(frag_status(fx, chain, "n"), VK_STORE_FRAG_COMPLETED);
    assert_int_equal(chain_status(fx, chain), VK_STORE_CHAIN_COMPLETED);
}

/* Issue 17: `fail-fast #false`: a failing copy does not stop the others (nor the next ones
 * max-parallel holds back); the matrix fails when it closes, and then the chain: what
 * comes after is skipped naming the matrix. With fail-fast (the default), the copies not
 * started are skipped at the first failure. */
static void test_fail_fast(void **state)
{
    struct fixture *fx = *state;
    char chain[VK_UUID_LEN], name[64], id[VK_UUID_LEN];
    int a;
    submit(fx,
           "version \"0.1\"\ntriggers \"push\"\nchain {\n machine \"default\"\n"
           " fragment { name \"n\"; matrix { n 1 2 3; max-parallel 1; fail-fast #false; }\n"
           "  run \"true\" }\n"
           " fragment { name \"after\"; run \"true\" }\n}\n",
           "main", chain);
    assert_true(claim(fx, name, id, &a));
    assert_string_equal(name, "n (1)");
    assert_int_equal(finish(fx, id, a, false), VK_STORE_FRAG_FAILED);
    assert_int_equal(chain_status(fx, chain), VK_STORE_CHAIN_RUNNING);
    for (int i = 2; i <= 3; i++) {
        char want[16];
        snprintf(want, sizeof(want), "n (%d)", i);
        assert_true(claim(fx, name, id, &a));
        assert_string_equal(name, want);
        assert_int_equal(finish(fx, id, a, true), VK_STORE_FRAG_COMPLETED);
    }
    assert_false(claim(fx, name, id, &a));
    assert_int_equal(frag_status(fx, chain, "n"), VK_STORE_FRAG_FAILED);
    assert_int_equal(frag_status(fx, chain, "after"), VK_STORE_FRAG_SKIPPED);
    assert_string_equal(frag_error(fx, chain, "after"), "skipped: `n` failed");
    assert_int_equal(chain_status(fx, chain), VK_STORE_CHAIN_FAILED);

    /* Under a fail-fast #false matrix, each copy (a parallel group, fail-fast itself) stops
     * its own not-started children; the other copy runs to the end. */
    char c2[VK_UUID_LEN], ids[4][VK_UUID_LEN], names[4][64];
    int att[4];
    submit(fx,
           "version \"0.1\"\ntriggers \"push\"\nchain {\n machine \"default\"\n"
           " parallel { name \"c-{matrix.c}\"; max-parallel 1\n"
           "  matrix { c \"x\" \"y\"; fail-fast #false; }\n"
           "  fragment { name \"{matrix.c}1\"; run \"true\" }\n"
           "  fragment { name \"{matrix.c}2\"; run \"true\" } }\n}\n",
           "main", c2);
    assert_true(claim(fx, names[0], ids[0], &att[0]));
    assert_true(claim(fx, names[1], ids[1], &att[1]));
    assert_false(claim(fx, name, id, &a)); /* one per copy */
    int x = strcmp(names[0], "x1") == 0 ? 0 : 1;
    assert_string_equal(names[x], "x1");
    assert_string_equal(names[1 - x], "y1");
    finish(fx, ids[x], att[x], false); /* x1 fails: x2 is skipped, y goes on */
    assert_int_equal(frag_status(fx, c2, "x2"), VK_STORE_FRAG_SKIPPED);
    assert_int_equal(frag_status(fx, c2, "c-x"), VK_STORE_FRAG_FAILED);
    assert_int_equal(chain_status(fx, c2), VK_STORE_CHAIN_RUNNING);
    finish(fx, ids[1 - x], att[1 - x], true);
    assert_true(claim(fx, name, id, &a));
    assert_string_equal(name, "y2");
    finish(fx, id, a, true);
    assert_int_equal(frag_status(fx, c2, "c-y"), VK_STORE_FRAG_COMPLETED);
    assert_int_equal(chain_status(fx, c2), VK_STORE_CHAIN_FAILED);

    /* The default: the first failure skips the copies not started and fails the chain. */
    char c3[VK_UUID_LEN];
    submit(fx,
           "version \"0.1\"\ntriggers \"push\"\nchain {\n machine \"default\"\n"
           " fragment { name \"m\"; matrix { m 1 2 3; max-parallel 1; }; run \"true\" }\n}\n",
           "main", c3);
    assert_true(claim(fx, name, id, &a));
    assert_string_equal(name, "m (1)");
    finish(fx, id, a, false);
    assert_false(claim(fx, name, id, &a));
    assert_int_equal(frag_status(fx, c3, "m (2)"), VK_STORE_FRAG_SKIPPED);
    assert_int_equal(frag_status(fx, c3, "m (3)"), VK_STORE_FRAG_SKIPPED);
    assert_int_equal(chain_status(fx, c3), VK_STORE_CHAIN_FAILED);
}

/* Issue 17: `when` and `allow-failure`. After a failure the chain is failed at once, but a
 * `when "always"` or `"failure"` node still runs (also one inside a running group), a
 * `"failure"` one is skipped when nothing failed, and an allowed failure fails nothing. */
static void test_when_and_allow_failure(void **state)
{
    struct fixture *fx = *state;
    char chain[VK_UUID_LEN], name[64], id[VK_UUID_LEN];
    int a;
    submit(fx,
           "version \"0.1\"\ntriggers \"push\"\nchain {\n machine \"default\"\n"
           " fragment { name \"lint\"; run \"x\"; allow-failure #true }\n"
           " fragment { name \"on-fail-early\"; run \"x\"; when \"failure\" }\n"
           " fragment { name \"build\"; run \"x\" }\n"
           " fragment { name \"test\"; run \"x\" }\n"
           " parallel { name \"report\"; when \"failure\"\n"
           "  fragment { name \"crash-logs\"; run \"x\" } }\n"
           " fragment { name \"cleanup\"; run \"x\"; when \"always\" }\n"
           " fragment { name \"deploy\"; run \"x\" }\n}\n",
           "main", chain);
    assert_true(claim(fx, name, id, &a));
    assert_string_equal(name, "lint");
    assert_int_equal(finish(fx, id, a, false), VK_STORE_FRAG_FAILED); /* allowed */
    assert_int_equal(chain_status(fx, chain), VK_STORE_CHAIN_RUNNING);
    assert_int_equal(frag_status(fx, chain, "on-fail-early"), VK_STORE_FRAG_SKIPPED);
    assert_string_equal(frag_error(fx, chain, "on-fail-early"),
                        "skipped: when \"failure\", and nothing failed");
    assert_true(claim(fx, name, id, &a));
    assert_string_equal(name, "build");
    assert_int_equal(finish(fx, id, a, false), VK_STORE_FRAG_FAILED);
    assert_int_equal(chain_status(fx, chain), VK_STORE_CHAIN_FAILED);
    assert_int_equal(frag_status(fx, chain, "test"), VK_STORE_FRAG_SKIPPED);
    assert_int_equal(frag_status(fx, chain, "deploy"), VK_STORE_FRAG_SKIPPED);
    assert_true(claim(fx, name, id, &a));
    assert_string_equal(name, "crash-logs"); /* inside a when "failure" group */
    finish(fx, id, a, true);
    assert_true(claim(fx, name, id, &a));
    assert_string_equal(name, "cleanup");
    assert_int_equal(frag_status(fx, chain, "report"), VK_STORE_FRAG_COMPLETED);
    finish(fx, id, a, true);
    assert_false(claim(fx, name, id, &a));
    assert_int_equal(frag_status(fx, chain, "cleanup"), VK_STORE_FRAG_COMPLETED);
    assert_int_equal(chain_status(fx, chain), VK_STORE_CHAIN_FAILED);
    struct vk_pool pool;
    vk_pool_init(&pool, 0);
    struct vk_store_chain c;
    struct vk_err err;
    assert_int_equal(vk_store_chain_get(fx->store, chain, &pool, &c, NULL, NULL, &err), 0);
    assert_true(c.finished_at > 0);
    assert_string_equal(c.error, "fragment 'build' failed");
    vk_pool_release(&pool);

    /* Nothing fails but an allowed failure: completed; "failure" nodes skipped, "always" runs. */
    char c2[VK_UUID_LEN];
    submit(fx,
           "version \"0.1\"\ntriggers \"push\"\nchain {\n machine \"default\"\n"
           " parallel { fragment { name \"flaky\"; run \"x\"; allow-failure #true }\n"
           "  fragment { name \"solid\"; run \"x\" } }\n"
           " fragment { name \"notify\"; run \"x\"; when \"failure\" }\n"
           " fragment { name \"tidy\"; run \"x\"; when \"always\" }\n}\n",
           "main", c2);
    char ids[2][VK_UUID_LEN], names[2][64];
    int att[2];
    assert_true(claim(fx, names[0], ids[0], &att[0]));
    assert_true(claim(fx, names[1], ids[1], &att[1]));
    for (int i = 0; i < 2; i++)
        finish(fx, ids[i], att[i], strcmp(names[i], "flaky") != 0);
    assert_true(claim(fx, name, id, &a));
    assert_string_equal(name, "tidy");
    finish(fx, id, a, true);
    assert_int_equal(frag_status(fx, c2, "flaky"), VK_STORE_FRAG_FAILED);
    assert_int_equal(frag_status(fx, c2, "notify"), VK_STORE_FRAG_SKIPPED);
    assert_int_equal(chain_status(fx, c2), VK_STORE_CHAIN_COMPLETED);
}

/* Issue 12 item 5: a fragment ready longer than its queue timeout fails with the waiting
 * reason; the fragment's own value wins over the workflow's; the chain ends failed and
 * nothing is left pending, ready or running. */
static void test_queue_timeout(void **state)
{
    struct fixture *fx = *state;
    char chain[VK_UUID_LEN];
    submit(fx,
           "version \"0.1\"\nqueue-timeout \"1h\"\ntriggers \"push\"\nchain {\n"
           " machine \"macos\"\n"
           " parallel {\n"
           "  fragment { name \"mac\"; run \"true\"; queue-timeout \"30m\" }\n"
           "  fragment { name \"mac2\"; run \"true\" }\n }\n"
           " fragment { name \"after\"; run \"true\" }\n}\n",
           "main", chain);
    struct vk_err err;
    int64_t now = vk_time_now_ms();
    /* Before either timeout: nothing changes. */
    assert_int_equal(vk_orch_expire_queued(fx->orch, now + 29 * 60 * 1000, &err), 0);
    assert_int_equal(frag_status(fx, chain, "mac"), VK_STORE_FRAG_READY);
    /* Past 30m (the fragment's own) but not 1h (the workflow's). */
    assert_int_equal(vk_orch_expire_queued(fx->orch, now + 31 * 60 * 1000, &err), 0);
    assert_int_equal(frag_status(fx, chain, "mac"), VK_STORE_FRAG_FAILED);
    /* The failure skips what has not started, ready work included. */
    assert_int_equal(frag_status(fx, chain, "mac2"), VK_STORE_FRAG_SKIPPED);
    assert_int_equal(chain_status(fx, chain), VK_STORE_CHAIN_FAILED);
    assert_int_equal(frag_status(fx, chain, "after"), VK_STORE_FRAG_SKIPPED);
    assert_int_equal(vk_orch_expire_queued(fx->orch, now + 61 * 60 * 1000, &err), 0);

    struct vk_pool pool;
    vk_pool_init(&pool, 0);
    struct vk_store_chain c;
    struct vk_store_fragment *f = NULL;
    size_t n = 0;
    assert_int_equal(vk_store_chain_get(fx->store, chain, &pool, &c, &f, &n, &err), 0);
    assert_int_equal(c.status, VK_STORE_CHAIN_FAILED);
    assert_true(c.finished_at > 0);
    for (size_t i = 0; i < n; i++) {
        assert_true(vk_store_frag_status_final(f[i].status));
        if (f[i].name && strcmp(f[i].name, "mac") == 0)
            assert_string_equal(f[i].error, "queue timeout (30m) reached: no worker of machine "
                                            "group 'macos' has ever registered");
    }
    vk_pool_release(&pool);
}

static void test_retry_then_stale(void **state)
{
    struct fixture *fx = *state;
    char chain[VK_UUID_LEN], id[VK_UUID_LEN], name[64];
    int a;
    submit(fx,
           "version \"0.1\"\ntriggers \"push\"\nchain {\n machine \"default\"\n"
           " fragment { name \"flaky\"; run \"false\"; retry 1 }\n}\n",
           "main", chain);
    assert_true(claim(fx, name, id, &a));
    assert_int_equal(a, 1);
    assert_int_equal(finish(fx, id, a, false), VK_STORE_FRAG_READY);
    int a2;
    assert_true(claim(fx, name, id, &a2));
    assert_int_equal(a2, 2);
    /* A result for the old attempt is refused. */
    struct vk_orch_result r = {.worker_id = fx->worker, .fragment_id = id, .attempt = 1};
    struct vk_err err;
    assert_int_equal(vk_orch_result(fx->orch, &r, NULL, &err), VK_ECONFLICT);
    assert_int_equal(finish(fx, id, a2, true), VK_STORE_FRAG_COMPLETED);
    assert_int_equal(chain_status(fx, chain), VK_STORE_CHAIN_COMPLETED);
}

static void test_cancel_and_rerun(void **state)
{
    struct fixture *fx = *state;
    char chain[VK_UUID_LEN], id[VK_UUID_LEN], name[64];
    int a;
    submit(fx,
           "version \"0.1\"\ntriggers \"push\"\nchain {\n machine \"default\"\n"
           " fragment { name \"long\"; run \"sleep 100\" }\n"
           " fragment { name \"next\"; run \"true\" }\n}\n",
           "main", chain);
    assert_true(claim(fx, name, id, &a));
    struct vk_err err;
    assert_int_equal(vk_orch_cancel(fx->orch, chain, &err), 0);
    assert_int_equal(chain_status(fx, chain), VK_STORE_CHAIN_CANCELLED);
    /* The heartbeat tells the worker. */
    struct vk_pool pool;
    vk_pool_init(&pool, 0);
    const char **cancel = NULL;
    size_t ncancel = 0;
    assert_int_equal(vk_store_worker_heartbeat(fx->store, fx->worker, vk_time_now_ms(), &pool,
                                               &cancel, &ncancel, &err),
                     0);
    assert_int_equal(ncancel, 1);
    assert_string_equal(cancel[0], id);
    vk_pool_release(&pool);
    assert_int_equal(finish(fx, id, a, false), VK_STORE_FRAG_CANCELLED);
    assert_int_equal(frag_status(fx, chain, "next"), VK_STORE_FRAG_CANCELLED);
    assert_int_equal(chain_status(fx, chain), VK_STORE_CHAIN_CANCELLED);

    char again[VK_UUID_LEN];
    assert_int_equal(vk_orch_rerun(fx->orch, chain, again, &err), 0);
    assert_string_not_equal(again, chain);
    assert_true(claim(fx, name, id, &a));
    assert_string_equal(name, "long");
    finish(fx, id, a, true);
    assert_true(claim(fx, name, id, &a));
    assert_string_equal(name, "next");
    finish(fx, id, a, true);
    assert_int_equal(chain_status(fx, again), VK_STORE_CHAIN_COMPLETED);
}

static void test_reaper_requeues_then_fails(void **state)
{
    struct fixture *fx = *state;
    char chain[VK_UUID_LEN], id[VK_UUID_LEN], name[64];
    int a;
    submit(fx,
           "version \"0.1\"\ntriggers \"push\"\nchain {\n machine \"default\"\n"
           " fragment { name \"x\"; run \"true\" }\n fragment { name \"y\"; run \"true\" }\n}\n",
           "main", chain);
    struct vk_err err;
    for (int round = 1; round <= 2; round++) {
        char w[VK_UUID_LEN];
        assert_int_equal(vk_store_worker_register(fx->store, NULL, "doomed", "t", default_groups, 1,
                                                  vk_time_now_ms() - 1000, w, &err),
                         0);
        snprintf(fx->worker, sizeof(fx->worker), "%s", w);
        assert_true(claim(fx, name, id, &a));
        assert_int_equal(a, round);
        /* The worker registered a second ago and never beat: dead after 200 ms. */
        assert_int_equal(vk_orch_reap(fx->orch, &err), 0);
    }
    /* Second death reached max_attempts (2): the fragment and the chain failed. */
    assert_int_equal(frag_status(fx, chain, "x"), VK_STORE_FRAG_FAILED);
    assert_int_equal(frag_status(fx, chain, "y"), VK_STORE_FRAG_SKIPPED);
    assert_int_equal(chain_status(fx, chain), VK_STORE_CHAIN_FAILED);
}

/* A claim whose reply never reached the worker is handed back by the next heartbeat
 * that does not list it (once the claim is older than the grace). */
static void test_reconcile_lost_claim(void **state)
{
    struct fixture *fx = *state;
    char chain[VK_UUID_LEN], id[VK_UUID_LEN], other[VK_UUID_LEN], name[64];
    int a, b;
    submit(fx,
           "version \"0.1\"\ntriggers \"push\"\nchain {\n machine \"default\"\n"
           " parallel {\n  fragment { name \"kept\"; run \"true\" }\n"
           "  fragment { name \"lost\"; run \"true\" }\n }\n}\n",
           "main", chain);
    assert_true(claim(fx, name, id, &a));
    assert_true(claim(fx, name, other, &b));
    struct vk_err err;
    size_t n = 99;
    const char *listed[] = {id};
    int64_t now = vk_time_now_ms();
    /* Too young: left alone, whatever the worker says. */
    assert_int_equal(
        vk_store_worker_reconcile(fx->store, fx->worker, listed, 1, now - 10000, now, &n, &err), 0);
    assert_int_equal(n, 0);
    /* Old enough: the one not listed goes back to the queue, as a hand-back. */
    assert_int_equal(
        vk_store_worker_reconcile(fx->store, fx->worker, listed, 1, now + 1, now, &n, &err), 0);
    assert_int_equal(n, 1);
    char again[VK_UUID_LEN];
    int a2;
    assert_true(claim(fx, name, again, &a2));
    assert_string_equal(again, other);
    assert_int_equal(a2, b + 1);
    finish(fx, id, a, true);
    finish(fx, again, a2, true);
    assert_int_equal(chain_status(fx, chain), VK_STORE_CHAIN_COMPLETED);
}

/* `needs` (issue 17): in a parallel group a fragment starts only when what it needs has
 * ended, its outputs reach the dependent's work item, a failure skips its dependents saying
 * so while a `when "always"` one runs, a sequence waits for a fragment holding its turn,
 * and a rerun keeps the edges. Both backends (the _pg variant). */
static void test_needs(void **state)
{
    struct fixture *fx = *state;
    const char *kdl = "version \"0.1\"\ntriggers \"push\"\nchain {\n machine \"default\"\n"
                      " parallel {\n"
                      "  fragment { name \"c\"; needs \"a\" \"b\"; run \"c\" }\n"
                      "  fragment { name \"a\"; run \"a\" }\n"
                      "  fragment { name \"b\"; needs \"a\"; run \"b\" }\n"
                      " }\n"
                      " fragment { name \"d\"; run \"d\" }\n"
                      "}\n";
    char id[VK_UUID_LEN], fid[VK_UUID_LEN], name[64];
    int att;
    submit(fx, kdl, "main", id);
    assert_true(claim(fx, name, fid, &att));
    assert_string_equal(name, "a"); /* c and b wait */
    assert_false(claim(fx, name, fid, &att));
    assert_int_equal(
        vk_store_fragment_set_outputs(fx->store, fid, att, fx->worker, "{\"v\":\"7\"}", NULL), 0);
    finish(fx, fid, att, true);
    struct vk_pool pool;
    vk_pool_init(&pool, 0);
    struct vk_store_work w;
    struct vk_err err;
    assert_int_equal(vk_orch_claim(fx->orch, fx->worker, default_groups, 2, &pool, &w, &err), 0);
    assert_string_equal(w.fragment.name, "b");
    assert_non_null(strstr(w.fragment.needs_env_json, "\"NEEDS_A_V\":\"7\""));
    assert_non_null(strstr(w.fragment.needs_env_json, "\"NEEDS_A_RESULT\":\"success\""));
    assert_false(claim(fx, name, fid, &att)); /* c still needs b */
    finish(fx, w.fragment.id, w.fragment.attempt, true);
    vk_pool_release(&pool);
    assert_true(claim(fx, name, fid, &att));
    assert_string_equal(name, "c");
    finish(fx, fid, att, true);
    assert_true(claim(fx, name, fid, &att));
    assert_string_equal(name, "d");
    finish(fx, fid, att, true);
    assert_int_equal(chain_status(fx, id), VK_STORE_CHAIN_COMPLETED);

    char again[VK_UUID_LEN];
    assert_int_equal(vk_orch_rerun(fx->orch, id, again, &err), 0);
    assert_true(claim(fx, name, fid, &att));
    assert_string_equal(name, "a"); /* the rerun has the edges too */
    assert_false(claim(fx, name, fid, &att));
    finish(fx, fid, att, false);
    assert_int_equal(frag_status(fx, again, "b"), VK_STORE_FRAG_SKIPPED);
    assert_string_equal(frag_error(fx, again, "b"), "skipped: needs `a`, which failed");
    assert_int_equal(chain_status(fx, again), VK_STORE_CHAIN_FAILED);

    /* A sequence waits for a fragment that holds its turn; `when "always"` runs after a
     * failure it needs. */
    const char *seq = "version \"0.1\"\ntriggers \"push\"\nchain {\n machine \"default\"\n"
                      " parallel {\n"
                      "  fragment { name \"x\"; run \"x\" }\n"
                      "  fragment { name \"y\"; needs \"x\"; when \"always\"; run \"y\" }\n"
                      " }\n"
                      " fragment { name \"z\"; when \"always\"; run \"z\" }\n"
                      "}\n";
    submit(fx, seq, "main", id);
    assert_true(claim(fx, name, fid, &att));
    assert_string_equal(name, "x");
    assert_false(claim(fx, name, fid, &att));
    finish(fx, fid, att, false);
    assert_true(claim(fx, name, fid, &att));
    assert_string_equal(name, "y");
    assert_false(claim(fx, name, fid, &att));
    finish(fx, fid, att, true);
    assert_true(claim(fx, name, fid, &att));
    assert_string_equal(name, "z");
    finish(fx, fid, att, true);
    assert_int_equal(chain_status(fx, id), VK_STORE_CHAIN_FAILED);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_sequential_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sequence_next_sibling, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parallel_and_nested, setup, teardown),
        cmocka_unit_test_setup_teardown(test_big_parallel_group, setup, teardown),
        cmocka_unit_test_setup_teardown(test_condition_skips, setup, teardown),
        cmocka_unit_test_setup_teardown(test_condition_variables, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_variables, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failure_skips_rest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_parallel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fail_fast, setup, teardown),
        cmocka_unit_test_setup_teardown(test_when_and_allow_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_timeout, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retry_then_stale, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_and_rerun, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reaper_requeues_then_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reconcile_lost_claim, setup, teardown),
        cmocka_unit_test_setup_teardown(test_needs, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
