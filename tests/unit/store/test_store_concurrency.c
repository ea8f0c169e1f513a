/*
 * Concurrency groups in the store (schema version 14): the claim refuses a fragment whose
 * chain's group, or its own, is held; a cancelled chain holds its group until its running
 * script has stopped; groups are scoped to the org and the repository; two claimers on
 * two store handles (two server replicas) never both get work of one group. Run against
 * SQLite and PostgreSQL (scripts/pg-test.sh).
 */
#include "store/store_int.h"
#include "store_test.h"

#include <pthread.h>

static int setup(void **state)
{
    return fx_setup("vk_tc", state);
}

/* A running chain of one ready inline fragment on "linux", its fragment ready at `ready_at`.
 * `group`: the chain's group; `fgroup`: the fragment's. */
static void make(struct fx *f, const char *tenant, const char *url, const char *group, bool cancel,
                 const char *fgroup, int64_t ready_at, char chain[VK_UUID_LEN],
                 char frag[VK_UUID_LEN])
{
    struct vk_store_chain ch;
    memset(&ch, 0, sizeof ch);
    memcpy(ch.tenant_id, tenant ? tenant : f->tenant, VK_UUID_LEN);
    ch.repository_url = url;
    ch.branch = "main";
    ch.trigger = "push";
    ch.default_machine = "linux";
    ch.concurrency_group = group;
    ch.concurrency_cancel = cancel;
    struct vk_store_fragment_spec sp = {.parent = -1, .run_script = "true", .machine = "linux"};
    sp.concurrency_group = fgroup;
    char ids[1][VK_UUID_LEN];
    struct vk_err err = {0};
    if (vk_store_chain_create(f->s, &ch, &sp, 1, ids, &err))
        fail_msg("chain_create: %s", err.msg);
    struct vk_store_tx *tx = NULL;
    assert_int_equal(vk_store_tx_begin(f->s, &tx, &err), 0);
    assert_int_equal(
        vk_store_tx_chain_set(tx, ch.id, VK_STORE_CHAIN_RUNNING, ready_at, 0, NULL, &err), 0);
    struct vk_store_fragment_update u = {.set = VK_STORE_SET_STATUS | VK_STORE_SET_READY_AT,
                                         .status = VK_STORE_FRAG_READY,
                                         .ready_at = ready_at};
    assert_int_equal(vk_store_tx_fragment_update(tx, ids[0], &u, &err), 0);
    assert_int_equal(vk_store_tx_commit(tx, &err), 0);
    memcpy(chain, ch.id, VK_UUID_LEN);
    memcpy(frag, ids[0], VK_UUID_LEN);
    usleep(3000); /* distinct created_at: submit order is (created_at, id) */
}

static void worker(struct vk_store *s, const char *tenant, char w[VK_UUID_LEN])
{
    const char *g[] = {"linux"};
    struct vk_err err = {0};
    assert_int_equal(
        vk_store_worker_register(s, tenant, "w", "1.0", g, 1, vk_time_now_ms(), w, &err), 0);
}

/* The id claimed by `w`, or "" when nothing was claimable. */
static const char *claim(struct vk_store *s, struct vk_pool *pool, const char *w)
{
    static char id[VK_UUID_LEN];
    const char *g[] = {"linux"};
    struct vk_store_work work;
    struct vk_err err = {0};
    int rc = vk_store_claim(s, w, g, 1, vk_time_now_ms(), pool, &work, &err);
    if (rc == VK_ENOTFOUND)
        return "";
    if (rc)
        fail_msg("claim: %s", err.msg);
    memcpy(id, work.fragment.id, VK_UUID_LEN);
    return id;
}

static void end_chain(struct fx *f, const char *chain, const char *frag, const char *w,
                      enum vk_store_frag_status st)
{
    struct vk_store_tx *tx = NULL;
    struct vk_err err = {0};
    assert_int_equal(vk_store_tx_begin(f->s, &tx, &err), 0);
    assert_int_equal(
        vk_store_tx_fragment_finish(tx, frag, 1, w, st, true, 0, NULL, vk_time_now_ms(), &err), 0);
    if (st == VK_STORE_FRAG_COMPLETED)
        assert_int_equal(vk_store_tx_chain_set(tx, chain, VK_STORE_CHAIN_COMPLETED, 1,
                                               vk_time_now_ms(), NULL, &err),
                         0);
    assert_int_equal(vk_store_tx_commit(tx, &err), 0);
}

static void expect_holder(struct fx *f, const char *chain, const char *frag, const char *holder,
                          const char *group)
{
    char h[VK_UUID_LEN], g[VK_STORE_MAX_CONCURRENCY_GROUP + 1];
    struct vk_err err = {0};
    int rc = vk_store_concurrency_holder(f->s, chain, frag, h, g, sizeof g, &err);
    if (!holder) {
        assert_int_equal(rc, VK_ENOTFOUND);
        return;
    }
    assert_int_equal(rc, 0);
    assert_string_equal(h, holder);
    assert_string_equal(g, group);
}

/* The second chain of a group waits for the first, whatever its fragment's age. */
static void test_chain_group_waits(void **state)
{
    struct fx *f = *state;
    char a[VK_UUID_LEN], fa[VK_UUID_LEN], b[VK_UUID_LEN], fb[VK_UUID_LEN], w[VK_UUID_LEN];
    make(f, NULL, NULL, "deploy-main", false, NULL, 2000, a, fa);
    make(f, NULL, NULL, "deploy-main", false, NULL, 1000, b, fb); /* ready earlier */
    worker(f->s, NULL, w);
    expect_holder(f, b, NULL, a, "deploy-main");
    expect_holder(f, a, NULL, NULL, NULL);
    assert_string_equal(claim(f->s, &f->pool, w), fa);
    assert_string_equal(claim(f->s, &f->pool, w), "");
    end_chain(f, a, fa, w, VK_STORE_FRAG_COMPLETED);
    expect_holder(f, b, NULL, NULL, NULL);
    assert_string_equal(claim(f->s, &f->pool, w), fb);
    struct vk_store_chain c;
    struct vk_err err = {0};
    assert_int_equal(vk_store_chain_get(f->s, b, &f->pool, &c, NULL, NULL, &err), 0);
    assert_string_equal(c.concurrency_group, "deploy-main");
    assert_false(c.concurrency_cancel);
}

/* cancel-in-progress: the older chains are listed, cancelled with a reason, and hold the
 * group until their running script has stopped. */
static void test_cancel_holds_until_stopped(void **state)
{
    struct fx *f = *state;
    char a[VK_UUID_LEN], fa[VK_UUID_LEN], b[VK_UUID_LEN], fb[VK_UUID_LEN], c[VK_UUID_LEN],
        fc[VK_UUID_LEN], w[VK_UUID_LEN];
    make(f, NULL, NULL, "rel", true, NULL, 1000, a, fa);
    worker(f->s, NULL, w);
    assert_string_equal(claim(f->s, &f->pool, w), fa);
    make(f, NULL, NULL, "rel", true, NULL, 1000, b, fb);
    make(f, NULL, NULL, "rel", true, NULL, 1000, c, fc);
    char(*ids)[VK_UUID_LEN] = NULL;
    size_t n = 0;
    struct vk_err err = {0};
    assert_int_equal(vk_store_concurrency_older(f->s, c, NULL, &f->pool, &ids, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(ids[0], a);
    assert_string_equal(ids[1], b);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(vk_store_chain_cancel_reason(f->s, ids[i], vk_time_now_ms(),
                                                      "cancelled by chain C", NULL, &err),
                         0);
    struct vk_store_chain got;
    assert_int_equal(vk_store_chain_get(f->s, a, &f->pool, &got, NULL, NULL, &err), 0);
    assert_int_equal(got.status, VK_STORE_CHAIN_CANCELLED);
    assert_string_equal(got.error, "cancelled by chain C");
    /* A's script still runs (its worker has not stopped it yet): C waits. */
    expect_holder(f, c, NULL, a, "rel");
    assert_string_equal(claim(f->s, &f->pool, w), "");
    end_chain(f, a, fa, w, VK_STORE_FRAG_CANCELLED);
    expect_holder(f, c, NULL, NULL, NULL);
    assert_string_equal(claim(f->s, &f->pool, w), fc);
    assert_int_equal(vk_store_concurrency_older(f->s, c, NULL, &f->pool, &ids, &n, &err), 0);
    assert_int_equal(n, 0);
}

/* One group name in another org, or another repository, is another group. */
static void test_scopes(void **state)
{
    struct fx *f = *state;
    char other[VK_UUID_LEN], a[VK_UUID_LEN], fa[VK_UUID_LEN], b[VK_UUID_LEN], fb[VK_UUID_LEN],
        c[VK_UUID_LEN], fc[VK_UUID_LEN], d[VK_UUID_LEN], fd[VK_UUID_LEN], w[VK_UUID_LEN],
        wo[VK_UUID_LEN];
    struct vk_err err = {0};
    assert_int_equal(vk_store_tenant_ensure(f->s, "other", other, &err), 0);
    make(f, NULL, "https://x/r.git", "g", false, NULL, 1000, a, fa);
    make(f, other, "https://x/r.git", "g", false, NULL, 1000, b, fb);
    make(f, NULL, "https://x/s.git", "g", false, NULL, 1000, c, fc);
    make(f, NULL, "https://x/r.git", "g", false, NULL, 1000, d, fd);
    worker(f->s, f->tenant, w);
    worker(f->s, other, wo);
    assert_string_equal(claim(f->s, &f->pool, w), fa);
    assert_string_equal(claim(f->s, &f->pool, wo), fb); /* the other org's: not blocked */
    assert_string_equal(claim(f->s, &f->pool, w), fc);  /* another repository's */
    assert_string_equal(claim(f->s, &f->pool, w), "");  /* d waits for a */
    expect_holder(f, d, NULL, a, "g");
    expect_holder(f, b, NULL, NULL, NULL);
}

/* A fragment-level group: one fragment of the group at a time, in the order they became
 * ready, whichever chain they are in. */
static void test_fragment_group(void **state)
{
    struct fx *f = *state;
    char x[VK_UUID_LEN], fx_[VK_UUID_LEN], y[VK_UUID_LEN], fy[VK_UUID_LEN], z[VK_UUID_LEN],
        fz[VK_UUID_LEN], w[VK_UUID_LEN];
    make(f, NULL, NULL, NULL, false, "db", 3000, x, fx_);
    make(f, NULL, NULL, NULL, false, "db", 2000, y, fy);
    make(f, NULL, NULL, NULL, false, NULL, 4000, z, fz);
    worker(f->s, NULL, w);
    expect_holder(f, x, fx_, y, "db");
    assert_string_equal(claim(f->s, &f->pool, w), fy);
    assert_string_equal(claim(f->s, &f->pool, w), fz); /* no group: not held back */
    assert_string_equal(claim(f->s, &f->pool, w), "");
    expect_holder(f, x, fx_, y, "db");
    char(*ids)[VK_UUID_LEN] = NULL;
    size_t n = 0;
    struct vk_err err = {0};
    assert_int_equal(vk_store_concurrency_older(f->s, x, fx_, &f->pool, &ids, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(ids[0], y);
    end_chain(f, y, fy, w, VK_STORE_FRAG_COMPLETED);
    assert_string_equal(claim(f->s, &f->pool, w), fx_);
    struct vk_store_fragment fr;
    assert_int_equal(vk_store_fragment_get(f->s, fx_, &f->pool, &fr, &err), 0);
    assert_string_equal(fr.concurrency_group, "db");
}

/* Two replicas (two store handles), claiming at once for many rounds: never two of one
 * group running. */
struct racer {
    struct vk_store *s;
    char w[VK_UUID_LEN];
    pthread_barrier_t *bar;
    char got[VK_UUID_LEN];
};

static void *race(void *arg)
{
    struct racer *r = arg;
    struct vk_pool pool;
    vk_pool_init(&pool, 0);
    pthread_barrier_wait(r->bar);
    snprintf(r->got, sizeof r->got, "%s", claim(r->s, &pool, r->w));
    vk_pool_release(&pool);
    return NULL;
}

static void test_two_replicas(void **state)
{
    struct fx *f = *state;
    struct vk_store *s2 = NULL;
    struct vk_err err = {0};
    assert_int_equal(vk_store_open(f->url, &s2, &err), 0);
    struct racer r[2] = {{.s = f->s}, {.s = s2}};
    worker(f->s, NULL, r[0].w);
    worker(s2, NULL, r[1].w);
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, 2);
    for (int round = 0; round < 8; round++) {
        char c[3][VK_UUID_LEN], fr[3][VK_UUID_LEN];
        for (int i = 0; i < 3; i++)
            make(f, NULL, NULL, round % 2 ? "chains" : NULL, false, round % 2 ? NULL : "frags",
                 1000 + i, c[i], fr[i]);
        pthread_t th[2];
        for (int i = 0; i < 2; i++) {
            r[i].bar = &bar;
            pthread_create(&th[i], NULL, race, &r[i]);
        }
        for (int i = 0; i < 2; i++)
            pthread_join(th[i], NULL);
        int won = (r[0].got[0] != 0) + (r[1].got[0] != 0);
        if (won != 1)
            fail_msg("round %d: %d claims of one group succeeded", round, won);
        const char *winner = r[0].got[0] ? r[0].w : r[1].w;
        assert_string_equal(r[0].got[0] ? r[0].got : r[1].got, fr[0]);
        /* Finish all three in order so the next round starts clean. */
        for (int i = 0; i < 3; i++) {
            if (i > 0)
                assert_string_equal(claim(f->s, &f->pool, r[0].w), fr[i]);
            end_chain(f, c[i], fr[i], i == 0 ? winner : r[0].w, VK_STORE_FRAG_COMPLETED);
        }
    }
    pthread_barrier_destroy(&bar);
    vk_store_close(s2);
}

/* The store refuses a group with a control character (the key's separator). */
static void test_bad_group(void **state)
{
    struct fx *f = *state;
    struct vk_store_chain ch;
    memset(&ch, 0, sizeof ch);
    memcpy(ch.tenant_id, f->tenant, VK_UUID_LEN);
    ch.trigger = "push";
    ch.default_machine = "linux";
    ch.concurrency_group = "a\nb";
    struct vk_store_fragment_spec sp = {.parent = -1, .run_script = "true"};
    struct vk_err err = {0};
    assert_int_equal(vk_store_chain_create(f->s, &ch, &sp, 1, NULL, &err), VK_EINVAL);
    assert_non_null(strstr(err.msg, "control characters"));
}

int main(void)
{
    snprintf(tmp_root, sizeof(tmp_root), "%s/vk-store-conc-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmp_root)) {
        perror("mkdtemp");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_chain_group_waits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_holds_until_stopped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scopes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fragment_group, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_replicas, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_group, setup, teardown),
    };
    int failed = cmocka_run_group_tests_name(
        is_pg() ? "store_concurrency_postgres" : "store_concurrency_sqlite", tests, NULL, NULL);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp_root);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", tmp_root);
    return failed ? 1 : 0;
}
