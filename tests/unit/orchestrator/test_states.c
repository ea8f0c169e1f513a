/*
 * The chain state machine, exhaustively (issue 12 item 1): every tree shape of
 * sequential and parallel groups nested up to 3 deep with 1-2 children (at most
 * 3 inline fragments), every position of the failing fragment and no failure,
 * driven like a worker of concurrency 1 (claim one, finish it) and like one that
 * claims everything ready before finishing. Whatever happens, the chain must end
 * final with finished_at set and no fragment or group left pending, ready or
 * running. Real in-memory SQLite store; results go through vk_orch_result().
 *
 * Shapes are strings: `L` an inline fragment, `P(a,b)` a parallel group, `S(a,b)`
 * a sequential group (written as an import, the only sequential group the
 * language has; the fetcher below serves the generated files).
 */
#include "store/store_int.h"
#include "vk_test.h"
#include "vulcan/orchestrator.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LEAVES 3
#define MAX_DEPTH 3
#define MAX_IMPORTS 16

struct shapes {
    char **s;
    int *leaves;
    size_t n, cap;
};

static void shapes_add(struct shapes *sh, const char *s, int leaves)
{
    if (sh->n == sh->cap) {
        sh->cap = sh->cap ? sh->cap * 2 : 64;
        sh->s = realloc(sh->s, sh->cap * sizeof(*sh->s));
        sh->leaves = realloc(sh->leaves, sh->cap * sizeof(*sh->leaves));
        assert_non_null(sh->s);
        assert_non_null(sh->leaves);
    }
    sh->s[sh->n] = strdup(s);
    assert_non_null(sh->s[sh->n]);
    sh->leaves[sh->n++] = leaves;
}

static void shapes_free(struct shapes *sh)
{
    for (size_t i = 0; i < sh->n; i++)
        free(sh->s[i]);
    free(sh->s);
    free(sh->leaves);
}

/* Every shape with groups nested at most `depth` deep. */
static void enumerate(int depth, struct shapes *out)
{
    shapes_add(out, "L", 1);
    if (depth == 0)
        return;
    struct shapes sub = {0};
    enumerate(depth - 1, &sub);
    const char kinds[] = {'P', 'S'};
    char buf[512];
    for (int k = 0; k < 2; k++) {
        for (size_t a = 0; a < sub.n; a++) {
            if (sub.leaves[a] <= MAX_LEAVES) {
                snprintf(buf, sizeof(buf), "%c(%s)", kinds[k], sub.s[a]);
                shapes_add(out, buf, sub.leaves[a]);
            }
            for (size_t b = 0; b < sub.n; b++) {
                if (sub.leaves[a] + sub.leaves[b] > MAX_LEAVES)
                    continue;
                snprintf(buf, sizeof(buf), "%c(%s,%s)", kinds[k], sub.s[a], sub.s[b]);
                shapes_add(out, buf, sub.leaves[a] + sub.leaves[b]);
            }
        }
    }
    shapes_free(&sub);
}

/* KDL of a shape: the main text, and one generated file per sequential group. */
struct gen {
    struct vk_buf files[MAX_IMPORTS];
    int nfiles;
    int leaf;
};

static const char *emit(struct gen *g, const char *p, struct vk_buf *out)
{
    if (*p == 'L') {
        assert_int_equal(vk_buf_addf(out, "fragment { name \"l%d\"; run \"true\" }\n", g->leaf++),
                         0);
        return p + 1;
    }
    char kind = *p;
    assert_true(p[1] == '(');
    struct vk_buf *body = out;
    if (kind == 'S') {
        assert_true(g->nfiles < MAX_IMPORTS);
        int f = g->nfiles++;
        assert_int_equal(vk_buf_addf(out, "fragment { from \"g%d.kdl\" }\n", f), 0);
        body = &g->files[f];
    } else {
        assert_int_equal(vk_buf_adds(out, "parallel {\n"), 0);
    }
    p += 2;
    for (;;) {
        p = emit(g, p, body);
        if (*p == ',') {
            p++;
            continue;
        }
        assert_true(*p == ')');
        p++;
        break;
    }
    if (kind == 'P')
        assert_int_equal(vk_buf_adds(out, "}\n"), 0);
    return p;
}

static int gen_fetch(void *ctx, const struct vk_wf_fetch_req *req, struct vk_buf *out,
                     struct vk_err *err)
{
    struct gen *g = ctx;
    const char *base = strrchr(req->location, '/');
    base = base ? base + 1 : req->location;
    int f = -1;
    if (sscanf(base, "g%d.kdl", &f) != 1 || f < 0 || f >= g->nfiles)
        return vk_err_set(err, VK_EIO, "no generated file '%s'", req->location);
    return vk_buf_add(out, g->files[f].data, g->files[f].len);
}

struct fixture {
    struct vk_store *store;
    struct vk_orch *orch;
    char worker[VK_UUID_LEN];
};

static const char *const groups[] = {"default"};

static int setup(void **state)
{
    struct fixture *fx = vk_mem_xcalloc(1, sizeof(*fx));
    struct vk_err err;
    assert_int_equal(vk_store_open("sqlite::memory:", &fx->store, &err), 0);
    struct vk_orch_opts opts = {.worker_timeout_ms = 60000, .max_attempts = 2};
    assert_int_equal(vk_orch_new(fx->store, &opts, &fx->orch, &err), 0);
    assert_int_equal(vk_store_worker_register(fx->store, NULL, "w1", "test", groups, 1,
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

struct claimed {
    char id[VK_UUID_LEN];
    char name[16];
    int attempt;
};

static bool claim(struct fixture *fx, struct claimed *c)
{
    struct vk_pool pool;
    vk_pool_init(&pool, 0);
    struct vk_store_work w;
    struct vk_err err;
    int rc = vk_orch_claim(fx->orch, fx->worker, groups, 1, &pool, &w, &err);
    if (rc != 0 && rc != VK_ENOTFOUND)
        fail_msg("claim: %s", err.msg);
    if (rc == 0) {
        snprintf(c->id, sizeof(c->id), "%s", w.fragment.id);
        snprintf(c->name, sizeof(c->name), "%s", w.fragment.name ? w.fragment.name : "?");
        c->attempt = w.fragment.attempt;
    }
    vk_pool_release(&pool);
    return rc == 0;
}

static void finish(struct fixture *fx, const struct claimed *c, const char *failing)
{
    bool ok = strcmp(c->name, failing) != 0;
    struct vk_orch_result r = {.worker_id = fx->worker,
                               .fragment_id = c->id,
                               .attempt = c->attempt,
                               .success = ok,
                               .has_exit_code = true,
                               .exit_code = ok ? 0 : 1};
    enum vk_store_frag_status st;
    struct vk_err err;
    if (vk_orch_result(fx->orch, &r, &st, &err) != 0)
        fail_msg("result: %s", err.msg);
}

/* Run one shape with leaf `fail` failing (-1: none) in `mode` (0: one at a time,
 * 1: claim all that is ready, then finish them in order). Returns a description of
 * the first stuck row, or NULL when everything ended. */
static const char *run_one(struct fixture *fx, const char *shape, int fail, int mode, char *why,
                           size_t whylen)
{
    struct gen g;
    memset(&g, 0, sizeof(g));
    for (int i = 0; i < MAX_IMPORTS; i++)
        vk_buf_init(&g.files[i], 1u << 16);
    struct vk_buf kdl = VK_BUF_INIT(1u << 16);
    assert_int_equal(vk_buf_adds(&kdl, "version \"0.1\"\ntriggers \"push\"\nchain {\n"
                                       "machine \"default\"\n"),
                     0);
    emit(&g, shape, &kdl);
    assert_int_equal(vk_buf_adds(&kdl, "}\n"), 0);

    struct vk_wf_options o;
    memset(&o, 0, sizeof(o));
    o.fetch = gen_fetch;
    o.fetch_ctx = &g;
    struct vk_workflow *wf = NULL;
    struct vk_wf_error we;
    vk_wf_error_init(&we);
    if (vk_workflow_load_buffer(kdl.data, kdl.len, "w.kdl", &o, &wf, &we) != 0)
        fail_msg("%s: workflow: %s", shape, we.rendered ? we.rendered : we.msg);
    struct vk_orch_context ctx = {.branch = "main", .trigger = "push"};
    struct vk_err err;
    char chain[VK_UUID_LEN];
    if (vk_orch_submit(fx->orch, wf, kdl.data, &ctx, chain, NULL, &err) != 0)
        fail_msg("%s: submit: %s", shape, err.msg);
    vk_workflow_free(wf);
    vk_buf_release(&kdl);
    for (int i = 0; i < MAX_IMPORTS; i++)
        vk_buf_release(&g.files[i]);

    char failing[16] = "";
    if (fail >= 0)
        snprintf(failing, sizeof(failing), "l%d", fail);
    struct claimed c[MAX_LEAVES + 1];
    for (int round = 0; round < 4 * MAX_LEAVES; round++) {
        int n = 0;
        while (n < (mode == 0 ? 1 : MAX_LEAVES + 1) && claim(fx, &c[n]))
            n++;
        if (n == 0)
            break;
        for (int i = 0; i < n; i++)
            finish(fx, &c[i], failing);
    }

    struct vk_pool pool;
    vk_pool_init(&pool, 0);
    struct vk_store_chain ch;
    struct vk_store_fragment *f = NULL;
    size_t nf = 0;
    assert_int_equal(vk_store_chain_get(fx->store, chain, &pool, &ch, &f, &nf, &err), 0);
    const char *res = NULL;
    enum vk_store_chain_status want = fail >= 0 ? VK_STORE_CHAIN_FAILED : VK_STORE_CHAIN_COMPLETED;
    if (ch.status != want || ch.finished_at == 0) {
        snprintf(why, whylen, "chain %s, finished_at %lld", vk_store_chain_status_name(ch.status),
                 (long long)ch.finished_at);
        res = why;
    }
    for (size_t i = 0; !res && i < nf; i++) {
        if (!vk_store_frag_status_final(f[i].status) || f[i].finished_at == 0) {
            snprintf(why, whylen, "%s #%d (%s) is %s",
                     f[i].type == VK_STORE_FRAG_GROUP ? (f[i].is_parallel ? "parallel" : "group")
                                                      : "fragment",
                     f[i].position, f[i].name ? f[i].name : "",
                     vk_store_frag_status_name(f[i].status));
            res = why;
        }
    }
    vk_pool_release(&pool);
    return res;
}

static void test_every_shape_ends(void **state)
{
    struct fixture *fx = *state;
    struct shapes sh = {0};
    enumerate(MAX_DEPTH, &sh);
    assert_true(sh.n > 500); /* the enumeration itself is what is tested */
    size_t runs = 0, stuck = 0;
    char why[256];
    for (size_t i = 0; i < sh.n; i++) {
        for (int fail = -1; fail < sh.leaves[i]; fail++) {
            for (int mode = 0; mode < 2; mode++) {
                runs++;
                const char *r = run_one(fx, sh.s[i], fail, mode, why, sizeof(why));
                if (r && stuck++ < 10)
                    print_message("stuck: %s, failing l%d, mode %d: %s\n", sh.s[i], fail, mode, r);
            }
        }
    }
    print_message("%zu shapes, %zu runs, %zu stuck\n", sh.n, runs, stuck);
    shapes_free(&sh);
    assert_int_equal(stuck, 0);
}

/* The case: three nested parallel groups, the first fragment failing. */
static void test_three_nested_parallel(void **state)
{
    struct fixture *fx = *state;
    char why[256];
    const char *r = run_one(fx, "P(L,P(L,P(L)))", 0, 0, why, sizeof(why));
    if (r)
        fail_msg("%s", r);
}

static void sql_exec(struct vk_store *s, const char *sql)
{
    struct vk__conn *c = NULL;
    struct vk_err err = {0};
    assert_int_equal(vk__store_conn_get(s, &c, &err), 0);
    int rc = vk__exec(c, VK__STMT_NONE, sql, NULL, 0, NULL, &err);
    vk__store_conn_put(s, c);
    if (rc)
        fail_msg("%s: %s", sql, err.msg);
}

/*
 * Rows the defect left before its fix survived restarts: put them back as they were (the
 * chain failed, its groups running, finished_at NULL) and start the orchestrator as a
 * restarted server does. A live chain next to them is left alone.
 */
static void test_repair_at_start(void **state)
{
    struct fixture *fx = *state;
    char why[256];
    const char *r = run_one(fx, "P(L,P(L,P(L)))", 0, 0, why, sizeof(why));
    if (r)
        fail_msg("%s", r);
    sql_exec(fx->store, "UPDATE fragments SET status = 'running', finished_at = NULL"
                        " WHERE type = 'group'");
    sql_exec(fx->store, "UPDATE chains SET finished_at = NULL");
    /* A live chain: running, one fragment claimed and not finished. */
    struct vk_wf_error we;
    vk_wf_error_init(&we);
    struct vk_workflow *wf = NULL;
    const char *kdl = "version \"0.1\"\ntriggers \"push\"\nchain {\nmachine \"default\"\n"
                      "parallel { fragment { name \"x\"; run \"true\" } }\n}\n";
    struct vk_wf_options o;
    memset(&o, 0, sizeof(o));
    if (vk_workflow_load_buffer(kdl, strlen(kdl), "w.kdl", &o, &wf, &we) != 0)
        fail_msg("workflow: %s", we.rendered ? we.rendered : we.msg);
    struct vk_orch_context ctx = {.branch = "main", .trigger = "push"};
    struct vk_err err;
    char live[VK_UUID_LEN];
    assert_int_equal(vk_orch_submit(fx->orch, wf, kdl, &ctx, live, NULL, &err), 0);
    vk_workflow_free(wf);
    struct claimed c;
    assert_true(claim(fx, &c));

    struct vk_orch_opts opts = {.worker_timeout_ms = 60000, .max_attempts = 2};
    struct vk_orch *o2 = NULL;
    assert_int_equal(vk_orch_new(fx->store, &opts, &o2, &err), 0);
    assert_int_equal(vk_orch_start(o2, &err), 0);
    vk_orch_stop(o2);
    vk_orch_free(o2);

    struct vk_pool pool;
    vk_pool_init(&pool, 0);
    struct vk_store_chain_filter all;
    memset(&all, 0, sizeof(all));
    all.limit = 10;
    struct vk_store_chain *chains = NULL;
    size_t nc = 0;
    char cursor[VK_STORE_CURSOR_LEN];
    assert_int_equal(vk_store_chain_list(fx->store, &all, &pool, &chains, &nc, cursor, &err), 0);
    assert_int_equal(nc, 2);
    for (size_t i = 0; i < nc; i++) {
        struct vk_store_chain ch;
        struct vk_store_fragment *f = NULL;
        size_t nf = 0;
        assert_int_equal(vk_store_chain_get(fx->store, chains[i].id, &pool, &ch, &f, &nf, &err), 0);
        bool is_live = strcmp(ch.id, live) == 0;
        assert_int_equal(ch.status, is_live ? VK_STORE_CHAIN_RUNNING : VK_STORE_CHAIN_FAILED);
        assert_int_equal(ch.finished_at != 0, !is_live);
        for (size_t j = 0; j < nf; j++) {
            if (is_live)
                assert_int_equal(f[j].status, VK_STORE_FRAG_RUNNING);
            else if (!vk_store_frag_status_final(f[j].status) || !f[j].finished_at)
                fail_msg("fragment #%d is %s", f[j].position,
                         vk_store_frag_status_name(f[j].status));
        }
    }
    /* Nothing is left to repair; a second start finds nothing. */
    size_t n = 9;
    assert_int_equal(vk_orch_repair(fx->orch, &n, &err), 0);
    assert_int_equal(n, 0);
    vk_pool_release(&pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_three_nested_parallel, setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_shape_ends, setup, teardown),
        cmocka_unit_test_setup_teardown(test_repair_at_start, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
