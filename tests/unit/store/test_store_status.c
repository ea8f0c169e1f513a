/*
 * The commit-status outbox (schema version 4): the trigger on chains writes a row in the
 * same transaction as each status change, only for chains of a repository with a status
 * token and a provider with a status API; claims are exclusive between claimers (several
 * replicas) and taken over when stale; ending a claim is fenced by seq, so a newer status
 * that arrived during a post is kept. Run against SQLite and PostgreSQL (pg-test.sh).
 */
#include "store/store_int.h"
#include "store_test.h"

#include <pthread.h>

#define SHA "0123456789abcdef0123456789abcdef01234567"

static int setup(void **state)
{
    return fx_setup("vk_ts", state);
}

static void make_repo(struct fx *f, const char *url, const char *provider, const char *token,
                      struct vk_store_repo *repo)
{
    memset(repo, 0, sizeof(*repo));
    repo->url = url;
    repo->provider = provider;
    repo->status_token = token;
    memcpy(repo->tenant_id, f->tenant, VK_UUID_LEN);
    struct vk_err err = {0};
    if (vk_store_repo_create(f->s, repo, &err))
        fail_msg("repo_create: %s", err.msg);
}

/* A one-fragment chain of repository `repo_id` ("" for none) at commit `sha` (may be NULL). */
static void make_chain(struct fx *f, const char *repo_id, const char *sha, char id[VK_UUID_LEN])
{
    struct vk_store_chain ch;
    memset(&ch, 0, sizeof(ch));
    memcpy(ch.tenant_id, f->tenant, VK_UUID_LEN);
    snprintf(ch.repository_id, sizeof(ch.repository_id), "%s", repo_id);
    ch.source_file = ".vulcan/ci.kdl";
    ch.commit_sha = sha;
    ch.trigger = "push";
    ch.default_machine = "default";
    ch.definition = "version \"0.1\"\nname \"build\"";
    struct vk_store_fragment_spec sp = {.parent = -1, .run_script = "true"};
    struct vk_err err = {0};
    if (vk_store_chain_create(f->s, &ch, &sp, 1, NULL, &err))
        fail_msg("chain_create: %s", err.msg);
    memcpy(id, ch.id, VK_UUID_LEN);
}

static void set_status(struct fx *f, const char *id, enum vk_store_chain_status st, bool commit)
{
    struct vk_err err = {0};
    struct vk_store_tx *tx = NULL;
    assert_int_equal(vk_store_tx_begin(f->s, &tx, &err), 0);
    assert_int_equal(vk_store_tx_chain_set(tx, id, st, 1000, 0, NULL, &err), 0);
    if (commit)
        assert_int_equal(vk_store_tx_commit(tx, &err), 0);
    else
        vk_store_tx_rollback(tx);
}

static int64_t backlog(struct fx *f)
{
    struct vk_err err = {0};
    int64_t n = -1;
    assert_int_equal(vk_store_status_backlog(f->s, &n, &err), 0);
    return n;
}

/* Claim everything due now for `who`; returns the count, the first job in *first. */
static size_t claim(struct fx *f, const char *who, int64_t now, struct vk_store_status_job *first)
{
    struct vk_err err = {0};
    struct vk_store_status_job *jobs = NULL;
    size_t n = 0;
    if (vk_store_status_claim(f->s, who, now, now - 60000, VK_STORE_STATUS_MAX_CLAIM, &f->pool,
                              &jobs, &n, &err))
        fail_msg("claim: %s", err.msg);
    if (n && first)
        *first = jobs[0];
    return n;
}

/* ---------------------------------------------------------------- Tests */

/* Which chains get a row, and that every status change (not a repeat) updates it. */
static void test_outbox_rows(void **state)
{
    struct fx *f = *state;
    struct vk_err err = {0};
    struct vk_store_repo gh, generic, notoken;
    make_repo(f, "https://github.com/org/app.git", "github", "tok-1", &gh);
    make_repo(f, "https://git.example.com/x.git", "generic", "tok-2", &generic);
    make_repo(f, "https://gitlab.com/g/p.git", "gitlab", NULL, &notoken);
    char a[VK_UUID_LEN], b[VK_UUID_LEN], c[VK_UUID_LEN], d[VK_UUID_LEN], e[VK_UUID_LEN];
    make_chain(f, gh.id, SHA, a);
    make_chain(f, generic.id, SHA, b); /* no status API */
    make_chain(f, notoken.id, SHA, c); /* no token */
    make_chain(f, "", SHA, d);         /* no repository */
    make_chain(f, gh.id, NULL, e);     /* no commit */
    assert_int_equal(backlog(f), 1);

    struct vk_store_status_job j;
    assert_int_equal(claim(f, "r1", 5000, &j), 1);
    assert_string_equal(j.chain_id, a);
    assert_int_equal(j.status, VK_STORE_CHAIN_PENDING);
    assert_int_equal(j.seq, 1);
    assert_string_equal(j.commit_sha, SHA);
    assert_string_equal(j.source_file, ".vulcan/ci.kdl");
    assert_string_equal(j.provider, "github");
    assert_string_equal(j.repo_url, "https://github.com/org/app.git");
    assert_string_equal(j.status_token, "tok-1");
    assert_null(j.status_api_url);
    assert_non_null(strstr(j.definition, "build"));
    bool newer = true;
    assert_int_equal(vk_store_status_done(f->s, a, "r1", 1, &newer, &err), 0);
    assert_false(newer);
    assert_int_equal(backlog(f), 0);

    set_status(f, a, VK_STORE_CHAIN_RUNNING, true);
    set_status(f, b, VK_STORE_CHAIN_RUNNING, true);
    assert_int_equal(backlog(f), 1);
    assert_int_equal(claim(f, "r1", 6000, &j), 1);
    assert_int_equal(j.status, VK_STORE_CHAIN_RUNNING);
    assert_int_equal(vk_store_status_done(f->s, a, "r1", j.seq, NULL, &err), 0);

    /* Setting the same status again is no change; a rolled-back change writes nothing. */
    set_status(f, a, VK_STORE_CHAIN_RUNNING, true);
    set_status(f, a, VK_STORE_CHAIN_COMPLETED, false);
    assert_int_equal(backlog(f), 0);

    /* A cancel (its own statement, not vk_store_tx_chain_set) is reported too. */
    assert_int_equal(vk_store_chain_cancel(f->s, a, 7000, NULL, &err), 0);
    assert_int_equal(claim(f, "r1", 8000, &j), 1);
    assert_int_equal(j.status, VK_STORE_CHAIN_CANCELLED);

    /* A repository that loses its token: its rows claim with no provider (dropped). */
    assert_int_equal(vk_store_status_done(f->s, a, "r1", j.seq, NULL, &err), 0);
    make_chain(f, gh.id, SHA, b);
    struct vk_store_repo_update u = {.set = VK_STORE_REPO_SET_STATUS_TOKEN, .status_token = NULL};
    assert_int_equal(vk_store_repo_update(f->s, gh.id, &u, &err), 0);
    assert_int_equal(claim(f, "r1", 9000, &j), 1);
    assert_null(j.provider);
    assert_null(j.status_token);
}

/* Several changes before a claim report only the newest; one during a post is kept. */
static void test_coalesce_and_fence(void **state)
{
    struct fx *f = *state;
    struct vk_err err = {0};
    struct vk_store_repo r;
    make_repo(f, "https://gitea.example.com/org/app.git", "gitea", "tok", &r);
    char a[VK_UUID_LEN];
    make_chain(f, r.id, SHA, a);
    set_status(f, a, VK_STORE_CHAIN_RUNNING, true);
    set_status(f, a, VK_STORE_CHAIN_FAILED, true);
    struct vk_store_status_job j;
    assert_int_equal(claim(f, "r1", 1000, &j), 1);
    assert_int_equal(j.status, VK_STORE_CHAIN_FAILED);
    assert_int_equal(j.seq, 3);
    /* While r1 posts, nobody else claims it. */
    assert_int_equal(claim(f, "r2", 1001, NULL), 0);

    /* A rerun makes it running again during r1's post: r1's done keeps the row. */
    set_status(f, a, VK_STORE_CHAIN_RUNNING, true);
    bool newer = false;
    assert_int_equal(vk_store_status_done(f->s, a, "r1", 3, &newer, &err), 0);
    assert_true(newer);
    assert_int_equal(claim(f, "r2", 1002, &j), 1);
    assert_int_equal(j.status, VK_STORE_CHAIN_RUNNING);
    assert_int_equal(j.seq, 4);

    /* Retry: not due before next_at; attempts count; first_failed_at keeps the first. */
    assert_int_equal(vk_store_status_retry(f->s, a, "r2", 4, 5000, 1002, &err), 0);
    assert_int_equal(claim(f, "r2", 4999, NULL), 0);
    assert_int_equal(claim(f, "r2", 5000, &j), 1);
    assert_int_equal(j.attempts, 1);
    assert_int_equal(j.first_failed_at, 1002);
    assert_int_equal(vk_store_status_retry(f->s, a, "r2", 4, 6000, 5000, &err), 0);
    assert_int_equal(claim(f, "r2", 6000, &j), 1);
    assert_int_equal(j.attempts, 2);
    assert_int_equal(j.first_failed_at, 1002);
    /* A claim that is not ours (any more) is not ended by us. */
    assert_int_equal(vk_store_status_done(f->s, a, "r1", 4, NULL, &err), 0);
    assert_int_equal(backlog(f), 1);
    /* A new status resets the retries and is due at once, even during a backoff. */
    assert_int_equal(vk_store_status_retry(f->s, a, "r2", 4, 999999, 6000, &err), 0);
    set_status(f, a, VK_STORE_CHAIN_COMPLETED, true);
    assert_int_equal(claim(f, "r1", 7000, &j), 1);
    assert_int_equal(j.attempts, 0);
    assert_int_equal(j.first_failed_at, 0);
    assert_int_equal(j.status, VK_STORE_CHAIN_COMPLETED);

    /* A stale claim (its reporter died) is taken over. */
    assert_int_equal(claim(f, "r2", 7000 + 59999, NULL), 0);
    assert_int_equal(claim(f, "r2", 7000 + 60001, &j), 1);
    assert_int_equal(vk_store_status_done(f->s, a, "r2", j.seq, NULL, &err), 0);
    assert_int_equal(backlog(f), 0);

    struct vk_store_status_job *jobs = NULL;
    size_t n = 0;
    assert_int_equal(vk_store_status_claim(f->s, "r1", 1, 0, 0, &f->pool, &jobs, &n, &err),
                     VK_EINVAL);
    assert_int_equal(vk_store_status_claim(f->s, "", 1, 0, 1, &f->pool, &jobs, &n, &err),
                     VK_EINVAL);
}

#define NCHAINS 40
#define NCLAIMERS 4

struct claimer_arg {
    struct vk_store *s;
    char name[16];
    char got[NCHAINS][VK_UUID_LEN];
    size_t n;
};

static void *claimer_main(void *p)
{
    struct claimer_arg *a = p;
    for (int round = 0; round < 50 && a->n < NCHAINS; round++) {
        struct vk_pool pool;
        vk_pool_init(&pool, 0);
        struct vk_store_status_job *jobs = NULL;
        size_t n = 0;
        struct vk_err err = {0};
        if (vk_store_status_claim(a->s, a->name, 10000, 0, 3, &pool, &jobs, &n, &err) != 0) {
            vk_pool_release(&pool);
            return "claim failed";
        }
        for (size_t i = 0; i < n && a->n < NCHAINS; i++)
            memcpy(a->got[a->n++], jobs[i].chain_id, VK_UUID_LEN);
        vk_pool_release(&pool);
    }
    return NULL;
}

/* Replicas claiming at once: every row goes to exactly one of them. */
static void test_exclusive_claims(void **state)
{
    struct fx *f = *state;
    struct vk_store_repo r;
    make_repo(f, "https://bitbucket.org/ws/app.git", "bitbucket", "tok", &r);
    char ids[NCHAINS][VK_UUID_LEN];
    for (int i = 0; i < NCHAINS; i++)
        make_chain(f, r.id, SHA, ids[i]);
    struct claimer_arg args[NCLAIMERS];
    pthread_t th[NCLAIMERS];
    struct vk_store *stores[NCLAIMERS];
    for (int i = 0; i < NCLAIMERS; i++) {
        struct vk_err err = {0};
        /* A store each, as separate replicas have. */
        if (vk_store_open(f->url, &stores[i], &err))
            fail_msg("open: %s", err.msg);
        memset(&args[i], 0, sizeof(args[i]));
        args[i].s = stores[i];
        snprintf(args[i].name, sizeof(args[i].name), "rep%d", i);
    }
    for (int i = 0; i < NCLAIMERS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, claimer_main, &args[i]), 0);
    size_t total = 0;
    for (int i = 0; i < NCLAIMERS; i++) {
        void *ret = NULL;
        pthread_join(th[i], &ret);
        assert_null(ret);
        total += args[i].n;
        vk_store_close(stores[i]);
    }
    assert_int_equal(total, NCHAINS);
    for (int c = 0; c < NCHAINS; c++) {
        int seen = 0;
        for (int i = 0; i < NCLAIMERS; i++)
            for (size_t k = 0; k < args[i].n; k++)
                seen += strcmp(args[i].got[k], ids[c]) == 0;
        assert_int_equal(seen, 1);
    }
}

/* The token and API URL are stored, updated and cleared like the other fields. */
static void test_repo_status_fields(void **state)
{
    struct fx *f = *state;
    struct vk_err err = {0};
    struct vk_store_repo r, got;
    make_repo(f, "https://github.example.com/org/app.git", "github", "t0", &r);
    assert_int_equal(vk_store_repo_get(f->s, r.id, &f->pool, &got, &err), 0);
    assert_string_equal(got.status_token, "t0");
    assert_null(got.status_api_url);
    struct vk_store_repo_update u = {.set = VK_STORE_REPO_SET_STATUS_API |
                                            VK_STORE_REPO_SET_STATUS_TOKEN,
                                     .status_token = "t1",
                                     .status_api_url = "https://github.example.com/api/v3"};
    assert_int_equal(vk_store_repo_update(f->s, r.id, &u, &err), 0);
    assert_int_equal(vk_store_repo_get(f->s, r.id, &f->pool, &got, &err), 0);
    assert_string_equal(got.status_token, "t1");
    assert_string_equal(got.status_api_url, "https://github.example.com/api/v3");
    u.status_token = NULL;
    u.status_api_url = NULL;
    assert_int_equal(vk_store_repo_update(f->s, r.id, &u, &err), 0);
    assert_int_equal(vk_store_repo_get(f->s, r.id, &f->pool, &got, &err), 0);
    assert_null(got.status_token);
    assert_null(got.status_api_url);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    snprintf(tmp_root, sizeof(tmp_root), "%s/vk-store-status-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmp_root)) {
        perror("mkdtemp");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        T(test_outbox_rows),
        T(test_coalesce_and_fence),
        T(test_exclusive_claims),
        T(test_repo_status_fields),
    };
    int failed = cmocka_run_group_tests_name(
        is_pg() ? "store_status_postgres" : "store_status_sqlite", tests, NULL, NULL);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp_root);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", tmp_root);
    return failed ? 1 : 0;
}
