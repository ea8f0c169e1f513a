/*
 * Unit tests for the store, run twice by CTest: against SQLite (a fresh file per test)
 * and against a private PostgreSQL cluster started by scripts/pg-test.sh
 * (VK_TEST_STORE_BACKEND=postgres; VK_TEST_PG_URL must then be set, else every test fails).
 * Each test gets a fresh database (PostgreSQL: CREATE DATABASE per test).
 */
#include "store/store_int.h"
#include "store_test.h"

#include <pthread.h>
#include <sys/stat.h>
#include <sys/wait.h>

static int setup(void **state)
{
    return fx_setup("vk_t", state);
}

/* Raw SQL for test set-up and inspection (tests may reach internals). */
static void sql_exec(struct vk_store *s, const char *sql, const struct vk__param *p, int np)
{
    struct vk__conn *c = NULL;
    struct vk_err err = {0};
    assert_int_equal(vk__store_conn_get(s, &c, &err), 0);
    int rc = vk__exec(c, VK__STMT_NONE, sql, p, np, NULL, &err);
    vk__store_conn_put(s, c);
    if (rc)
        fail_msg("%s: %s", sql, err.msg);
}

static int64_t sql_int(struct vk_store *s, const char *sql, const struct vk__param *p, int np)
{
    struct vk__conn *c = NULL;
    struct vk_err err = {0};
    int64_t v = -1;
    assert_int_equal(vk__store_conn_get(s, &c, &err), 0);
    int rc = vk__query_int(c, VK__STMT_NONE, sql, p, np, &v, &err);
    vk__store_conn_put(s, c);
    if (rc)
        fail_msg("%s: %s", sql, err.msg);
    return v;
}

static void init_chain(struct fx *f, struct vk_store_chain *ch)
{
    memset(ch, 0, sizeof(*ch));
    memcpy(ch->tenant_id, f->tenant, VK_UUID_LEN);
    ch->source_file = ".vulcan/ci.kdl";
    ch->repository_url = "https://example.com/r.git";
    ch->commit_sha = "0123456789abcdef0123456789abcdef01234567";
    ch->branch = "main";
    ch->trigger = "push";
    ch->default_machine = "default";
    ch->definition = "version \"0.1\"";
}

/* A chain of `n` inline top-level fragments on `machine`. */
static void make_flat_chain(struct fx *f, int n, const char *machine, int priority,
                            char (*ids)[VK_UUID_LEN], char chain_id[VK_UUID_LEN])
{
    struct vk_store_chain ch;
    init_chain(f, &ch);
    ch.priority = priority;
    struct vk_store_fragment_spec *sp = calloc((size_t)n, sizeof(*sp));
    for (int i = 0; i < n; i++) {
        sp[i].parent = -1;
        sp[i].run_script = "true";
        sp[i].machine = machine;
    }
    struct vk_err err = {0};
    int rc = vk_store_chain_create(f->s, &ch, sp, (size_t)n, ids, &err);
    free(sp);
    if (rc)
        fail_msg("chain_create: %s", err.msg);
    if (chain_id)
        memcpy(chain_id, ch.id, VK_UUID_LEN);
}

static void set_ready(struct vk_store *s, const char *fid, int64_t at)
{
    struct vk_store_tx *tx = NULL;
    struct vk_err err = {0};
    assert_int_equal(vk_store_tx_begin(s, &tx, &err), 0);
    struct vk_store_fragment_update u = {.set = VK_STORE_SET_STATUS | VK_STORE_SET_READY_AT,
                                         .status = VK_STORE_FRAG_READY,
                                         .ready_at = at};
    assert_int_equal(vk_store_tx_fragment_update(tx, fid, &u, &err), 0);
    assert_int_equal(vk_store_tx_commit(tx, &err), 0);
}

static int finish(struct vk_store *s, const char *fid, int attempt, const char *wid,
                  struct vk_err *err)
{
    struct vk_store_tx *tx = NULL;
    int rc = vk_store_tx_begin(s, &tx, err);
    if (rc)
        return rc;
    rc = vk_store_tx_fragment_finish(tx, fid, attempt, wid, VK_STORE_FRAG_COMPLETED, true, 0, NULL,
                                     vk_time_now_ms(), err);
    if (rc) {
        vk_store_tx_rollback(tx);
        return rc;
    }
    return vk_store_tx_commit(tx, err);
}

/* ---------------------------------------------------------------- Open, migrations */

static void test_open_and_reopen(void **state)
{
    struct fx *f = *state;
    struct vk_err err = {0};
    int v = 0;
    assert_int_equal(vk_store_schema_version(f->s, &v, &err), 0);
    assert_int_equal(v, VK_STORE_SCHEMA_VERSION);
    assert_string_equal(vk_store_backend(f->s), is_pg() ? "postgres" : "sqlite");
    struct vk_store *s2 = NULL;
    assert_int_equal(vk_store_open(f->url, &s2, &err), 0);
    assert_int_equal(vk_store_schema_version(s2, &v, &err), 0);
    assert_int_equal(v, VK_STORE_SCHEMA_VERSION);
    char t2[VK_UUID_LEN];
    assert_int_equal(vk_store_tenant_ensure(s2, "default", t2, &err), 0);
    assert_string_equal(t2, f->tenant);
    vk_store_close(s2);
    assert_int_equal(sql_int(f->s, "SELECT MAX(version) FROM schema_migrations", NULL, 0),
                     VK_STORE_SCHEMA_VERSION);
    /* Bad URLs. */
    assert_int_equal(vk_store_open("mysql://x", &s2, &err), VK_EINVAL);
    assert_non_null(strstr(err.msg, "unsupported database url"));
    assert_int_equal(vk_store_open("sqlite:", &s2, &err), VK_EINVAL);
}

static void test_memory_db(void **state)
{
    (void)state;
    struct vk_err err = {0};
    struct vk_store *a = NULL, *b = NULL;
    char ta[VK_UUID_LEN], tb[VK_UUID_LEN];
    assert_int_equal(vk_store_open("sqlite::memory:", &a, &err), 0);
    assert_int_equal(vk_store_open("sqlite::memory:", &b, &err), 0);
    assert_int_equal(vk_store_tenant_ensure(a, "x", ta, &err), 0);
    assert_int_equal(vk_store_tenant_ensure(b, "x", tb, &err), 0);
    /* Two memory stores are separate databases. */
    assert_string_not_equal(ta, tb);
    vk_store_close(a);
    vk_store_close(b);
}

static void test_newer_schema_refused(void **state)
{
    struct fx *f = *state;
    struct vk_err err = {0};
    struct vk__param p[] = {vk__int(VK_STORE_SCHEMA_VERSION + 1), vk__text("from the future"),
                            vk__int(vk_time_now_ms())};
    sql_exec(f->s, "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
             p, 3);
    struct vk_store *s2 = NULL;
    assert_int_equal(vk_store_open(f->url, &s2, &err), VK_EVERSION);
    assert_null(s2);
    assert_non_null(strstr(err.msg, "newer than this binary"));
}

struct open_arg {
    const char *url;
    int rc;
    char msg[256];
};

static void *open_thread(void *arg)
{
    struct open_arg *a = arg;
    struct vk_store *s = NULL;
    struct vk_err err = {0};
    a->rc = vk_store_open(a->url, &s, &err);
    snprintf(a->msg, sizeof(a->msg), "%s", err.msg);
    vk_store_close(s);
    return NULL;
}

static void test_concurrent_open(void **state)
{
    (void)state;
    char url[512];
    fresh_url("vk_t", url, sizeof(url));
    pthread_t th[4];
    struct open_arg a[4];
    for (int i = 0; i < 4; i++) {
        a[i].url = url;
        pthread_create(&th[i], NULL, open_thread, &a[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        if (a[i].rc)
            fail_msg("concurrent open %d: %s", i, a[i].msg);
    }
    struct vk_store *s = NULL;
    struct vk_err err = {0};
    assert_int_equal(vk_store_open(url, &s, &err), 0);
    assert_int_equal(sql_int(s, "SELECT MAX(version) FROM schema_migrations", NULL, 0),
                     VK_STORE_SCHEMA_VERSION);
    vk_store_close(s);
}

/*
 * Regression (issue 12, for the fix of the last session): two servers starting at once on
 * one new SQLite file got "cannot configure connection: database is locked": switching
 * the file to WAL answers BUSY without the busy handler while another process opens it.
 * Processes (not threads: the store serialises its own threads) open fresh files at the
 * same instant, 20 times over; every open must succeed.
 */
static void test_wal_switch_processes(void **state)
{
    (void)state;
    if (is_pg())
        return; /* the WAL switch is SQLite's; PostgreSQL runs the open race above */
    enum { PROCS = 4, ROUNDS = 20 };
    for (int round = 0; round < ROUNDS; round++) {
        char url[512];
        fresh_url("vk_wal", url, sizeof(url));
        int go[2];
        assert_int_equal(pipe(go), 0);
        pid_t kids[PROCS];
        for (int i = 0; i < PROCS; i++) {
            kids[i] = fork();
            assert_true(kids[i] >= 0);
            if (kids[i] == 0) {
                close(go[1]);
                char c;
                if (read(go[0], &c, 1) != 1) /* all start together */
                    _exit(3);
                struct vk_store *s = NULL;
                struct vk_err err = {0};
                int rc = vk_store_open(url, &s, &err);
                if (rc)
                    fprintf(stderr, "round %d: open: %s\n", round, err.msg);
                vk_store_close(s);
                _exit(rc ? 1 : 0);
            }
        }
        close(go[0]);
        assert_int_equal(write(go[1], "gggg", PROCS), PROCS);
        close(go[1]);
        for (int i = 0; i < PROCS; i++) {
            int st = 0;
            assert_int_equal(waitpid(kids[i], &st, 0), kids[i]);
            if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
                fail_msg("round %d: a process could not open the new file (status %d)", round, st);
        }
    }
}

/* ---------------------------------------------------------------- Chains */

static void test_chain_tree(void **state)
{
    struct fx *f = *state;
    struct vk_err err = {0};
    struct vk_store_repo repo = {.url = "https://example.com/r.git", .provider = "github"};
    memcpy(repo.tenant_id, f->tenant, VK_UUID_LEN);
    assert_int_equal(vk_store_repo_create(f->s, &repo, &err), 0);
    struct vk_store_repo dup = repo;
    assert_int_equal(vk_store_repo_create(f->s, &dup, &err), VK_EEXIST);
    struct vk_store_repo got;
    assert_int_equal(vk_store_repo_find_by_url(f->s, repo.url, &f->pool, &got, &err), 0);
    assert_string_equal(got.id, repo.id);
    assert_string_equal(got.workflow_glob, ".vulcan/*.kdl");
    assert_null(got.webhook_secret);

    struct vk_store_chain ch;
    init_chain(f, &ch);
    memcpy(ch.repository_id, repo.id, VK_UUID_LEN);
    ch.pr_number = 42;
    ch.env_json = "{\"A\":\"1\"}";
    /* 0: inline; 1: parallel group { 2, 3: group { 4 } }; 5: inline */
    struct vk_store_fragment_spec sp[6] = {
        {.parent = -1, .run_script = "npm ci", .name = "setup"},
        {.parent = -1, .type = VK_STORE_FRAG_GROUP, .is_parallel = true},
        {.parent = 1,
         .run_script = "npm test",
         .machine = "small",
         .timeout_ms = 60000,
         .queue_timeout_ms = 1800000},
        {.parent = 1, .type = VK_STORE_FRAG_GROUP},
        {.parent = 3, .run_script = "e2e", .source_url = "fragments/e2e.kdl", .retries = 2},
        {.parent = -1, .run_script = "deploy", .condition = "$BRANCH == 'main'"},
    };
    char ids[6][VK_UUID_LEN];
    assert_int_equal(vk_store_chain_create(f->s, &ch, sp, 6, ids, &err), 0);
    assert_true(vk_uuid_valid(ch.id));
    struct vk_store_chain c2;
    struct vk_store_fragment *fr = NULL;
    size_t n = 0;
    assert_int_equal(vk_store_chain_get(f->s, ch.id, &f->pool, &c2, &fr, &n, &err), 0);
    assert_int_equal(n, 6);
    assert_int_equal(c2.status, VK_STORE_CHAIN_PENDING);
    assert_string_equal(c2.repository_id, repo.id);
    assert_string_equal(c2.definition, "version \"0.1\"");
    assert_string_equal(c2.env_json, "{\"A\":\"1\"}");
    assert_string_equal(c2.trigger, "push");
    assert_int_equal(c2.pr_number, 42);
    assert_null(c2.tag);
    int want_seq[6] = {0, 1, 0, 1, 0, 2};
    for (size_t i = 0; i < n; i++) {
        assert_string_equal(fr[i].id, ids[i]);
        assert_int_equal(fr[i].position, (int)i);
        assert_int_equal(fr[i].sequence, want_seq[i]);
        assert_int_equal(fr[i].status, VK_STORE_FRAG_PENDING);
        assert_int_equal(fr[i].attempt, 1);
        assert_int_equal(fr[i].max_attempts, 3);
        assert_false(fr[i].has_exit_code);
        assert_string_equal(fr[i].chain_id, ch.id);
    }
    assert_string_equal(fr[0].parent_id, "");
    assert_string_equal(fr[2].parent_id, ids[1]);
    assert_string_equal(fr[4].parent_id, ids[3]);
    assert_true(fr[1].is_parallel);
    assert_int_equal(fr[1].type, VK_STORE_FRAG_GROUP);
    assert_null(fr[1].run_script);
    assert_string_equal(fr[2].machine, "small");
    assert_string_equal(fr[0].machine, "default");
    assert_int_equal(fr[2].timeout_ms, 60000);
    /* migration 5: the queue timeout is stored per fragment (both dialects) */
    assert_int_equal(fr[2].queue_timeout_ms, 1800000);
    assert_int_equal(fr[1].queue_timeout_ms, 0);
    assert_int_equal(fr[4].retries, 2);
    assert_string_equal(fr[4].source_url, "fragments/e2e.kdl");
    assert_string_equal(fr[5].condition, "$BRANCH == 'main'");

    /* Children and counts inside a transaction. */
    struct vk_store_tx *tx = NULL;
    assert_int_equal(vk_store_tx_begin(f->s, &tx, &err), 0);
    struct vk_store_fragment *kids = NULL;
    assert_int_equal(vk_store_tx_children(tx, ch.id, NULL, &f->pool, &kids, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_string_equal(kids[0].id, ids[0]);
    assert_string_equal(kids[2].id, ids[5]);
    assert_int_equal(vk_store_tx_children(tx, ch.id, ids[1], &f->pool, &kids, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(kids[1].id, ids[3]);
    int64_t cnt = 0;
    bool any = false;
    assert_int_equal(vk_store_tx_count_unfinished(tx, ch.id, ids[1], &cnt, &err), 0);
    assert_int_equal(cnt, 2);
    assert_int_equal(vk_store_tx_has_unfinished(tx, ch.id, ids[1], &any, &err), 0);
    assert_true(any);
    assert_int_equal(vk_store_tx_has_unfinished(tx, ch.id, NULL, &any, &err), 0);
    assert_true(any);
    /* Finishing the last child (by sequence) leaves the first one unfinished. */
    struct vk_store_fragment_update u = {.set = VK_STORE_SET_STATUS,
                                         .status = VK_STORE_FRAG_COMPLETED};
    assert_int_equal(vk_store_tx_fragment_update(tx, ids[3], &u, &err), 0);
    assert_int_equal(vk_store_tx_has_unfinished(tx, ch.id, ids[1], &any, &err), 0);
    assert_true(any);
    assert_int_equal(vk_store_tx_fragment_update(tx, ids[2], &u, &err), 0);
    assert_int_equal(vk_store_tx_has_unfinished(tx, ch.id, ids[1], &any, &err), 0);
    assert_false(any);
    assert_int_equal(vk_store_tx_count_unfinished(tx, ch.id, ids[1], &cnt, &err), 0);
    assert_int_equal(cnt, 0);
    /* Many distinct statement texts (partial updates) on one connection: more than
     * the per-connection statement cache keeps, then the first ones again. */
    for (int round = 0; round < 2; round++) {
        for (unsigned mask = 0; mask < 48; mask++) {
            struct vk_store_fragment_update v = {0};
            v.set = VK_STORE_SET_STATUS;
            v.status = VK_STORE_FRAG_PENDING;
            if (mask & 1)
                v.set |= VK_STORE_SET_ATTEMPT, v.attempt = (int)mask;
            if (mask & 2)
                v.set |= VK_STORE_SET_READY_AT, v.ready_at = 1000 + mask;
            if (mask & 4)
                v.set |= VK_STORE_SET_STARTED_AT, v.started_at = 2000 + mask;
            if (mask & 8)
                v.set |= VK_STORE_SET_FINISHED_AT, v.finished_at = 3000 + mask;
            if (mask & 16)
                v.set |= VK_STORE_SET_RETRIES_USED, v.retries_used = (int)mask;
            if (mask & 32)
                v.set |= VK_STORE_SET_ERROR, v.error = "e";
            assert_int_equal(vk_store_tx_fragment_update(tx, ids[4], &v, &err), 0);
            struct vk_store_fragment g;
            assert_int_equal(vk_store_tx_fragment_get(tx, ids[4], &f->pool, &g, &err), 0);
            assert_int_equal(g.status, VK_STORE_FRAG_PENDING);
            if (mask & 1)
                assert_int_equal(g.attempt, (int)mask);
            if (mask & 16)
                assert_int_equal(g.retries_used, (int)mask);
        }
    }
    assert_int_equal(vk_store_tx_chain_skip_pending(tx, ch.id, 5, NULL, &cnt, &err), 0);
    assert_int_equal(cnt, 4);
    assert_int_equal(vk_store_tx_count_unfinished(tx, ch.id, NULL, &cnt, &err), 0);
    assert_int_equal(cnt, 0);
    assert_int_equal(vk_store_tx_has_unfinished(tx, ch.id, NULL, &any, &err), 0);
    assert_false(any);
    vk_store_tx_rollback(tx); /* undone */
    assert_int_equal(vk_store_chain_get(f->s, ch.id, &f->pool, &c2, &fr, &n, &err), 0);
    assert_int_equal(fr[3].status, VK_STORE_FRAG_PENDING);
}

static void test_chain_create_invalid(void **state)
{
    struct fx *f = *state;
    struct vk_err err = {0};
    struct vk_store_chain ch;
    init_chain(f, &ch);
    struct vk_store_fragment_spec bad_parent[2] = {{.parent = -1, .run_script = "a"},
                                                   {.parent = 1, .run_script = "b"}};
    assert_int_equal(vk_store_chain_create(f->s, &ch, bad_parent, 2, NULL, &err), VK_EINVAL);
    struct vk_store_fragment_spec not_group[2] = {{.parent = -1, .run_script = "a"},
                                                  {.parent = 0, .run_script = "b"}};
    assert_int_equal(vk_store_chain_create(f->s, &ch, not_group, 2, NULL, &err), VK_EINVAL);
    assert_non_null(strstr(err.msg, "not a group"));
    /* An unknown tenant fails in the database: nothing at all is stored. */
    memcpy(ch.tenant_id, "00000000-0000-4000-8000-000000000000", VK_UUID_LEN);
    struct vk_store_fragment_spec ok[1] = {{.parent = -1, .run_script = "a"}};
    assert_int_not_equal(vk_store_chain_create(f->s, &ch, ok, 1, NULL, &err), 0);
    assert_int_equal(sql_int(f->s, "SELECT COUNT(*) FROM chains", NULL, 0), 0);
    assert_int_equal(sql_int(f->s, "SELECT COUNT(*) FROM fragments", NULL, 0), 0);
    assert_int_equal(vk_store_chain_create(f->s, &ch, ok, VK_STORE_MAX_FRAGMENTS + 1, NULL, &err),
                     VK_ETOOBIG);
}

static void test_chain_big(void **state)
{
    struct fx *f = *state;
    struct vk_err err = {0};
    static char ids[1000][VK_UUID_LEN];
    char cid[VK_UUID_LEN];
    make_flat_chain(f, 1000, "default", 0, ids, cid);
    struct vk_store_chain c2;
    struct vk_store_fragment *fr = NULL;
    size_t n = 0;
    assert_int_equal(vk_store_chain_get(f->s, cid, &f->pool, &c2, &fr, &n, &err), 0);
    assert_int_equal(n, 1000);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(fr[i].sequence, (int)i);
        assert_string_equal(fr[i].id, ids[i]);
    }
}

static void test_chain_list(void **state)
{
    struct fx *f = *state;
    struct vk_err err = {0};
    const char *branches[7] = {"main", "dev", "main", "main", "dev", "main", "main"};
    char ids[7][VK_UUID_LEN];
    for (int i = 0; i < 7; i++) {
        struct vk_store_chain ch;
        init_chain(f, &ch);
        ch.branch = branches[i];
        ch.trigger = i == 3 ? "manual" : "push";
        assert_int_equal(vk_store_chain_create(f->s, &ch, NULL, 0, NULL, &err), 0);
        memcpy(ids[i], ch.id, VK_UUID_LEN);
    }
    /* Page through main-branch chains 2 at a time, newest first. */
    struct vk_store_chain_filter flt = {.branch = "main", .limit = 2};
    char cursor[VK_STORE_CURSOR_LEN];
    struct vk_store_chain got[8];
    int seen = 0, pages = 0;
    for (int page = 0; page < 5; page++) {
        struct vk_store_chain *out = NULL;
        size_t n = 0;
        assert_int_equal(vk_store_chain_list(f->s, &flt, &f->pool, &out, &n, cursor, &err), 0);
        assert_true(n <= 2);
        for (size_t i = 0; i < n && seen < 8; i++)
            got[seen++] = out[i];
        pages++;
        if (!cursor[0])
            break;
        flt.cursor = vk_pool_strndup(&f->pool, cursor, strlen(cursor));
    }
    assert_int_equal(pages, 3);
    assert_int_equal(seen, 5);
    /* Newest first by (created_at, id), every main chain once. */
    for (int i = 0; i < seen; i++) {
        assert_string_equal(got[i].branch, "main");
        if (i > 0)
            assert_true(got[i - 1].created_at > got[i].created_at ||
                        (got[i - 1].created_at == got[i].created_at &&
                         strcmp(got[i - 1].id, got[i].id) > 0));
    }
    int mains = 0;
    for (int k = 0; k < 7; k++)
        for (int i = 0; i < seen; i++)
            mains += strcmp(got[i].id, ids[k]) == 0;
    assert_int_equal(mains, 5);
    struct vk_store_chain_filter f2 = {.trigger = "manual", .status = "pending"};
    struct vk_store_chain *out = NULL;
    size_t n = 0;
    assert_int_equal(vk_store_chain_list(f->s, &f2, &f->pool, &out, &n, cursor, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(out[0].id, ids[3]);
    assert_string_equal(cursor, "");
    struct vk_store_chain_filter f3 = {.status = "bogus"};
    assert_int_equal(vk_store_chain_list(f->s, &f3, &f->pool, &out, &n, cursor, &err), VK_EINVAL);
    struct vk_store_chain_filter f4 = {.cursor = "12:not-a-uuid"};
    assert_int_equal(vk_store_chain_list(f->s, &f4, &f->pool, &out, &n, cursor, &err), VK_EINVAL);
    struct vk_store_chain_filter f5 = {.limit = 201};
    assert_int_equal(vk_store_chain_list(f->s, &f5, &f->pool, &out, &n, cursor, &err), VK_EINVAL);
}

/* ---------------------------------------------------------------- Queue */

static void test_claim_order_and_fencing(void **state)
{
    struct fx *f = *state;
    struct vk_err err = {0};
    char lo[3][VK_UUID_LEN], hi[1][VK_UUID_LEN], other[1][VK_UUID_LEN];
    char cid[VK_UUID_LEN];
    make_flat_chain(f, 3, "linux", 0, lo, cid);
    make_flat_chain(f, 1, "linux", 10, hi, NULL);
    make_flat_chain(f, 1, "mac", 0, other, NULL);
    set_ready(f->s, lo[0], 300);
    set_ready(f->s, lo[1], 100);
    set_ready(f->s, lo[2], 200);
    set_ready(f->s, hi[0], 400);
    set_ready(f->s, other[0], 50);
    const char *g[] = {"linux"};
    char w[VK_UUID_LEN];
    assert_int_equal(
        vk_store_worker_register(f->s, NULL, "w1", "1.0", g, 1, vk_time_now_ms(), w, &err), 0);
    struct vk_store_work work;
    /* Priority first, then age. */
    const char *order[4] = {hi[0], lo[1], lo[2], lo[0]};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(vk_store_claim(f->s, w, g, 1, 1000 + i, &f->pool, &work, &err), 0);
        assert_string_equal(work.fragment.id, order[i]);
        assert_int_equal(work.fragment.status, VK_STORE_FRAG_RUNNING);
        assert_string_equal(work.fragment.worker_id, w);
        assert_int_equal(work.fragment.attempt, 1);
        assert_int_equal(work.fragment.started_at, 1000 + i);
        assert_string_equal(work.fragment.run_script, "true");
        assert_string_equal(work.chain.commit_sha, "0123456789abcdef0123456789abcdef01234567");
        assert_string_equal(work.chain.repository_url, "https://example.com/r.git");
    }
    assert_int_equal(vk_store_claim(f->s, w, g, 1, 2000, &f->pool, &work, &err), VK_ENOTFOUND);
    /* Several groups. */
    const char *g2[] = {"windows", "mac"};
    assert_int_equal(vk_store_claim(f->s, w, g2, 2, 2000, &f->pool, &work, &err), 0);
    assert_string_equal(work.fragment.id, other[0]);
    assert_int_equal(vk_store_claim(f->s, w, g, 0, 2000, &f->pool, &work, &err), VK_EINVAL);

    /* Fencing. */
    assert_int_equal(finish(f->s, lo[1], 2, w, &err), VK_ECONFLICT);
    assert_non_null(strstr(err.msg, "stale"));
    assert_int_equal(finish(f->s, lo[1], 1, "00000000-0000-4000-8000-000000000000", &err),
                     VK_ECONFLICT);
    assert_int_equal(finish(f->s, lo[1], 1, w, &err), 0);
    assert_int_equal(finish(f->s, lo[1], 1, w, &err), VK_ECONFLICT);
    assert_non_null(strstr(err.msg, "not running"));
    assert_int_equal(finish(f->s, "00000000-0000-4000-8000-000000000001", 1, w, &err),
                     VK_ENOTFOUND);

    /* A retry bumps the attempt; the old attempt is then stale. */
    struct vk_store_tx *tx = NULL;
    assert_int_equal(vk_store_tx_begin(f->s, &tx, &err), 0);
    assert_int_equal(vk_store_tx_fragment_finish(tx, lo[2], 1, w, VK_STORE_FRAG_FAILED, true, 3,
                                                 "exit 3", 5000, &err),
                     0);
    struct vk_store_fragment fr;
    assert_int_equal(vk_store_tx_fragment_get(tx, lo[2], &f->pool, &fr, &err), 0);
    assert_int_equal(fr.status, VK_STORE_FRAG_FAILED);
    assert_true(fr.has_exit_code);
    assert_int_equal(fr.exit_code, 3);
    assert_string_equal(fr.error, "exit 3");
    assert_int_equal(fr.finished_at, 5000);
    assert_int_equal(vk_store_tx_fragment_requeue(tx, lo[2], true, 6000, &err), 0);
    assert_int_equal(vk_store_tx_notify_ready(tx, "linux", &err), 0);
    struct vk_store_chain chain;
    assert_int_equal(vk_store_tx_chain_get(tx, cid, &f->pool, &chain, &err), 0);
    assert_int_equal(vk_store_tx_chain_set(tx, cid, VK_STORE_CHAIN_RUNNING, 10, 0, NULL, &err), 0);
    assert_int_equal(vk_store_tx_commit(tx, &err), 0);
    assert_int_equal(vk_store_claim(f->s, w, g, 1, 7000, &f->pool, &work, &err), 0);
    assert_string_equal(work.fragment.id, lo[2]);
    assert_int_equal(work.fragment.attempt, 2);
    assert_int_equal(work.fragment.retries_used, 1);
    assert_false(work.fragment.has_exit_code);
    assert_null(work.fragment.error);
    assert_int_equal(work.chain.status, VK_STORE_CHAIN_RUNNING);
    assert_int_equal(work.chain.started_at, 10);
    assert_int_equal(finish(f->s, lo[2], 1, w, &err), VK_ECONFLICT);
    assert_int_equal(finish(f->s, lo[2], 2, w, &err), 0);
}

static void test_workers_and_reaper(void **state)
{
    struct fx *f = *state;
    struct vk_err err = {0};
    char fr[2][VK_UUID_LEN], cid[VK_UUID_LEN];
    make_flat_chain(f, 2, "linux", 0, fr, cid);
    set_ready(f->s, fr[0], 1);
    set_ready(f->s, fr[1], 2);
    const char *g[] = {"linux", "arm"};
    char w1[VK_UUID_LEN], w2[VK_UUID_LEN];
    assert_int_equal(
        vk_store_worker_register(f->s, f->tenant, "alpha", "1.0", g, 2, 1000, w1, &err), 0);
    assert_int_equal(vk_store_worker_register(f->s, NULL, "beta", NULL, g, 1, 1000, w2, &err), 0);
    struct vk_store_work work;
    assert_int_equal(vk_store_claim(f->s, w1, g, 2, 1100, &f->pool, &work, &err), 0);
    assert_string_equal(work.fragment.id, fr[0]);

    struct vk_store_worker wk;
    assert_int_equal(vk_store_worker_get(f->s, w1, &f->pool, &wk, &err), 0);
    assert_string_equal(wk.name, "alpha");
    assert_int_equal(wk.ngroups, 2);
    assert_string_equal(wk.groups[0], "arm");
    assert_string_equal(wk.groups[1], "linux");
    assert_string_equal(wk.current_fragment_id, fr[0]);
    assert_string_equal(wk.tenant_id, f->tenant);
    struct vk_store_worker *list = NULL;
    size_t n = 0;
    assert_int_equal(vk_store_worker_list(f->s, &f->pool, &list, &n, &err), 0);
    assert_int_equal(n, 2);

    int64_t alive, busy, dead;
    assert_int_equal(vk_store_group_status(f->s, "linux", &alive, &busy, &dead, &err), 0);
    assert_int_equal(alive, 2);
    assert_int_equal(busy, 1);
    assert_int_equal(dead, 0);
    struct vk_store_queue_metrics m;
    assert_int_equal(vk_store_queue_metrics(f->s, "linux", &m, &err), 0);
    assert_int_equal(m.ready, 1);
    assert_int_equal(m.running, 1);
    assert_int_equal(m.workers_alive, 2);
    assert_int_equal(vk_store_queue_metrics(f->s, NULL, &m, &err), 0);
    assert_int_equal(m.pending, 0);

    /* w2 keeps beating; w1 falls silent. */
    const char **cancel = NULL;
    size_t ncancel = 0;
    assert_int_equal(vk_store_worker_heartbeat(f->s, w2, 50000, &f->pool, &cancel, &ncancel, &err),
                     0);
    assert_int_equal(ncancel, 0);
    struct vk_store_reap_result rr;
    assert_int_equal(vk_store_reap_workers(f->s, 50000, 30000, 2, &f->pool, &rr, &err), 0);
    assert_int_equal(rr.nworkers, 1);
    assert_int_equal(rr.nchanges, 1);
    assert_string_equal(rr.changes[0].fragment_id, fr[0]);
    assert_string_equal(rr.changes[0].chain_id, cid);
    assert_int_equal(rr.changes[0].status, VK_STORE_FRAG_READY);
    assert_int_equal(vk_store_worker_heartbeat(f->s, w1, 50001, &f->pool, &cancel, &ncancel, &err),
                     VK_ECONFLICT);
    assert_non_null(strstr(err.msg, "dead"));
    /* The dead worker's late result is refused. */
    assert_int_equal(finish(f->s, fr[0], 1, w1, &err), VK_ECONFLICT);
    assert_int_equal(vk_store_group_status(f->s, "linux", &alive, &busy, &dead, &err), 0);
    assert_int_equal(alive, 1);
    assert_int_equal(dead, 1);

    /* fr[1] has waited longer (ready_at 2) than the re-queued fr[0] (ready_at 50000). */
    assert_int_equal(vk_store_claim(f->s, w2, g, 1, 50002, &f->pool, &work, &err), 0);
    assert_string_equal(work.fragment.id, fr[1]);
    assert_int_equal(finish(f->s, fr[1], 1, w2, &err), 0);
    /* Attempt 2 on w2, who dies too: with max 2 attempts the fragment fails. */
    assert_int_equal(vk_store_claim(f->s, w2, g, 1, 50002, &f->pool, &work, &err), 0);
    assert_string_equal(work.fragment.id, fr[0]);
    assert_int_equal(work.fragment.attempt, 2);
    assert_int_equal(vk_store_reap_workers(f->s, 200000, 30000, 2, &f->pool, &rr, &err), 0);
    assert_int_equal(rr.nchanges, 1);
    assert_int_equal(rr.changes[0].status, VK_STORE_FRAG_FAILED);
    struct vk_store_chain ch;
    struct vk_store_fragment *frs = NULL;
    assert_int_equal(vk_store_chain_get(f->s, cid, &f->pool, &ch, &frs, &n, &err), 0);
    assert_int_equal(frs[0].status, VK_STORE_FRAG_FAILED);
    char want[300];
    snprintf(want, sizeof(want), "worker 'beta' (%s) stopped responding; gave up after 2 attempts",
             w2);
    assert_string_equal(frs[0].error, want);
    /* Nobody left: reaping again changes nothing. */
    assert_int_equal(vk_store_reap_workers(f->s, 300000, 30000, 2, &f->pool, &rr, &err), 0);
    assert_int_equal(rr.nworkers, 0);
    assert_int_equal(vk_store_worker_stop(f->s, w2, &err), 0);
    assert_int_equal(vk_store_worker_heartbeat(f->s, "00000000-0000-4000-8000-000000000000", 1,
                                               &f->pool, &cancel, &ncancel, &err),
                     VK_ENOTFOUND);
}

static void test_handback(void **state)
{
    struct fx *f = *state;
    struct vk_err err = {0};
    char fr[1][VK_UUID_LEN];
    make_flat_chain(f, 1, "linux", 0, fr, NULL);
    set_ready(f->s, fr[0], 1);
    const char *g[] = {"linux"};
    char w[VK_UUID_LEN];
    assert_int_equal(vk_store_worker_register(f->s, NULL, "w", "1", g, 1, 1000, w, &err), 0);
    struct vk_store_work work;
    for (int i = 1; i <= 3; i++) {
        assert_int_equal(vk_store_claim(f->s, w, g, 1, 1000, &f->pool, &work, &err), 0);
        assert_int_equal(work.fragment.attempt, i);
        assert_int_equal(vk_store_requeue_fragment(f->s, fr[0], i + 1, w, 1000, &err),
                         VK_ECONFLICT);
        assert_int_equal(vk_store_requeue_fragment(f->s, fr[0], i, w, 1000, &err), 0);
    }
    /* Three hand-backs do not count: with max 1 attempt the reaper still re-queues... */
    assert_int_equal(vk_store_claim(f->s, w, g, 1, 1000, &f->pool, &work, &err), 0);
    assert_int_equal(work.fragment.attempt, 4);
    assert_int_equal(work.fragment.handbacks, 3);
    struct vk_store_reap_result rr;
    assert_int_equal(vk_store_reap_workers(f->s, 100000, 30000, 2, &f->pool, &rr, &err), 0);
    assert_int_equal(rr.nchanges, 1);
    assert_int_equal(rr.changes[0].status, VK_STORE_FRAG_READY);
}

static void test_cancel(void **state)
{
    struct fx *f = *state;
    struct vk_err err = {0};
    char fr[3][VK_UUID_LEN], cid[VK_UUID_LEN];
    make_flat_chain(f, 3, "linux", 0, fr, cid);
    set_ready(f->s, fr[0], 1);
    set_ready(f->s, fr[1], 2);
    const char *g[] = {"linux"};
    char w[VK_UUID_LEN];
    assert_int_equal(vk_store_worker_register(f->s, NULL, "w", "1", g, 1, 1000, w, &err), 0);
    struct vk_store_work work;
    assert_int_equal(vk_store_claim(f->s, w, g, 1, 1000, &f->pool, &work, &err), 0);
    size_t flagged = 0;
    assert_int_equal(vk_store_chain_cancel(f->s, cid, 2000, &flagged, &err), 0);
    assert_int_equal(flagged, 1);
    assert_int_equal(vk_store_chain_cancel(f->s, cid, 2000, &flagged, &err), VK_ECONFLICT);
    const char **cancel = NULL;
    size_t ncancel = 0;
    assert_int_equal(vk_store_worker_heartbeat(f->s, w, 2001, &f->pool, &cancel, &ncancel, &err),
                     0);
    assert_int_equal(ncancel, 1);
    assert_string_equal(cancel[0], fr[0]);
    struct vk_store_chain ch;
    struct vk_store_fragment *frs = NULL;
    size_t n = 0;
    assert_int_equal(vk_store_chain_get(f->s, cid, &f->pool, &ch, &frs, &n, &err), 0);
    assert_int_equal(ch.status, VK_STORE_CHAIN_CANCELLED);
    assert_int_equal(ch.finished_at, 2000);
    assert_int_equal(frs[0].status, VK_STORE_FRAG_RUNNING);
    assert_true(frs[0].cancel_requested);
    assert_int_equal(frs[1].status, VK_STORE_FRAG_CANCELLED);
    assert_int_equal(frs[2].status, VK_STORE_FRAG_CANCELLED);
    /* The running one's result is still recorded. */
    assert_int_equal(finish(f->s, fr[0], 1, w, &err), 0);
    assert_int_equal(vk_store_claim(f->s, w, g, 1, 1000, &f->pool, &work, &err), VK_ENOTFOUND);
    assert_int_equal(
        vk_store_chain_cancel(f->s, "00000000-0000-4000-8000-000000000000", 1, NULL, &err),
        VK_ENOTFOUND);
}

static void test_notify(void **state)
{
    struct fx *f = *state;
    struct vk_err err = {0};
    const char **groups = NULL;
    size_t n = 0;
    /* Start listening (PostgreSQL) and drain. */
    assert_int_equal(vk_store_wait_ready(f->s, 0, &f->pool, &groups, &n, &err), 0);
    struct vk_store_tx *tx = NULL;
    assert_int_equal(vk_store_tx_begin(f->s, &tx, &err), 0);
    assert_int_equal(vk_store_tx_notify_ready(tx, "gpu", &err), 0);
    assert_int_equal(vk_store_tx_notify_ready(tx, "gpu", &err), 0);
    assert_int_equal(vk_store_tx_notify_ready(tx, "small", &err), 0);
    vk_store_tx_rollback(tx); /* never delivered */
    assert_int_equal(vk_store_tx_begin(f->s, &tx, &err), 0);
    assert_int_equal(vk_store_tx_notify_ready(tx, "linux", &err), 0);
    assert_int_equal(vk_store_tx_commit(tx, &err), 0);
    int64_t t0 = vk_time_mono_ns();
    bool linux_seen = false;
    while (!linux_seen && vk_time_mono_ns() - t0 < 3000000000LL) {
        assert_int_equal(vk_store_wait_ready(f->s, 1000, &f->pool, &groups, &n, &err), 0);
        for (size_t i = 0; i < n; i++) {
            assert_string_not_equal(groups[i], "gpu");
            linux_seen |= strcmp(groups[i], "linux") == 0;
        }
    }
    assert_true(linux_seen);
    /* Nothing more: a short wait times out empty. */
    assert_int_equal(vk_store_wait_ready(f->s, 50, &f->pool, &groups, &n, &err), 0);
    assert_int_equal(n, 0);
}

/* ---------------------------------------------------------------- Logs */

static void test_logs(void **state)
{
    struct fx *f = *state;
    struct vk_err err = {0};
    char fr[1][VK_UUID_LEN];
    make_flat_chain(f, 1, "linux", 0, fr, NULL);
    int64_t total = 0;
    assert_int_equal(vk_store_log_append(f->s, fr[0], 1, 0, "hello ", 6, &total, &err), 0);
    assert_int_equal(total, 6);
    /* A retried upload of the same chunk is accepted once. */
    assert_int_equal(vk_store_log_append(f->s, fr[0], 1, 0, "hello ", 6, &total, &err), 0);
    assert_int_equal(total, 6);
    /* Overlap: only the new tail is stored. */
    assert_int_equal(vk_store_log_append(f->s, fr[0], 1, 3, "lo world", 8, &total, &err), 0);
    assert_int_equal(total, 11);
    /* Binary bytes, with a NUL. */
    assert_int_equal(vk_store_log_append(f->s, fr[0], 1, 11, "\0\xff\n", 3, &total, &err), 0);
    assert_int_equal(total, 14);
    /* A gap. */
    assert_int_equal(vk_store_log_append(f->s, fr[0], 1, 20, "x", 1, &total, &err), VK_EINVAL);
    assert_non_null(strstr(err.msg, "past the end"));
    /* A stale attempt. */
    assert_int_equal(vk_store_log_append(f->s, fr[0], 2, 0, "x", 1, &total, &err), VK_ECONFLICT);
    assert_int_equal(vk_store_log_append(f->s, "00000000-0000-4000-8000-000000000000", 1, 0, "x", 1,
                                         &total, &err),
                     VK_ENOTFOUND);
    char buf[64];
    size_t nread = 0;
    assert_int_equal(vk_store_log_read(f->s, fr[0], 1, 0, buf, sizeof(buf), &nread, &total, &err),
                     0);
    assert_int_equal(nread, 14);
    assert_int_equal(total, 14);
    assert_memory_equal(buf, "hello world\0\xff\n", 14);
    assert_int_equal(vk_store_log_read(f->s, fr[0], 1, 4, buf, 5, &nread, &total, &err), 0);
    assert_int_equal(nread, 5);
    assert_memory_equal(buf, "o wor", 5);
    assert_int_equal(vk_store_log_read(f->s, fr[0], 1, 14, buf, 5, &nread, &total, &err), 0);
    assert_int_equal(nread, 0);
    assert_int_equal(vk_store_log_read(f->s, fr[0], 7, 0, buf, 5, &nread, &total, &err), 0);
    assert_int_equal(total, 0);
    /* Many chunks, read back in odd slices. */
    char big[4096];
    for (size_t i = 0; i < sizeof(big); i++)
        big[i] = (char)('a' + (i * 7) % 26);
    int64_t off = 14;
    for (size_t i = 0; i < sizeof(big); i += 100) {
        size_t k = sizeof(big) - i < 100 ? sizeof(big) - i : 100;
        assert_int_equal(vk_store_log_append(f->s, fr[0], 1, off, big + i, k, &total, &err), 0);
        off += (int64_t)k;
    }
    char back[4096];
    size_t got = 0;
    while (got < sizeof(back)) {
        size_t want = sizeof(back) - got < 333 ? sizeof(back) - got : 333;
        assert_int_equal(vk_store_log_read(f->s, fr[0], 1, 14 + (int64_t)got, back + got, want,
                                           &nread, &total, &err),
                         0);
        assert_int_equal(nread, want);
        got += nread;
    }
    assert_memory_equal(back, big, sizeof(big));
    assert_int_equal(total, 14 + (int64_t)sizeof(big));
    static char huge[VK_STORE_MAX_LOG_CHUNK + 1];
    assert_int_equal(vk_store_log_append(f->s, fr[0], 1, total, huge, sizeof(huge), NULL, &err),
                     VK_ETOOBIG);
}

/* ---------------------------------------------------------------- Concurrency */

#define NQUEUE 5000
#define NTHREADS 8

struct claimer {
    const char *url; /* open a private store when set, else use `s` */
    struct vk_store *s;
    char worker[VK_UUID_LEN];
    char (*claimed)[VK_UUID_LEN];
    int nclaimed;
    int errors;
    char msg[256];
};

static void *claim_loop(void *arg)
{
    struct claimer *c = arg;
    struct vk_pool pool;
    struct vk_err err = {0};
    const char *g[] = {"q"};
    vk_pool_init(&pool, 0);
    for (;;) {
        struct vk_store_work w;
        int rc = vk_store_claim(c->s, c->worker, g, 1, vk_time_now_ms(), &pool, &w, &err);
        if (rc == VK_ENOTFOUND)
            break;
        if (rc == 0)
            rc = finish(c->s, w.fragment.id, w.fragment.attempt, c->worker, &err);
        if (rc) {
            c->errors++;
            snprintf(c->msg, sizeof(c->msg), "%s", err.msg);
            break;
        }
        memcpy(c->claimed[c->nclaimed++], w.fragment.id, VK_UUID_LEN);
        vk_pool_release(&pool);
    }
    vk_pool_release(&pool);
    return NULL;
}

static int cmp_id(const void *a, const void *b)
{
    return strcmp(a, b);
}

static void make_queue(struct fx *f)
{
    char cid[VK_UUID_LEN];
    make_flat_chain(f, NQUEUE, "q", 0, NULL, cid);
    struct vk__param p[] = {vk__text(cid)};
    sql_exec(f->s, "UPDATE fragments SET status = 'ready', ready_at = position WHERE chain_id = $1",
             p, 1);
}

/* Every claimed id is distinct and all NQUEUE fragments were claimed and completed. */
static void check_claimed(struct fx *f, char (*all)[VK_UUID_LEN], int n)
{
    assert_int_equal(n, NQUEUE);
    qsort(all, (size_t)n, VK_UUID_LEN, cmp_id);
    for (int i = 1; i < n; i++)
        if (strcmp(all[i - 1], all[i]) == 0)
            fail_msg("fragment %s claimed twice", all[i]);
    assert_int_equal(
        sql_int(f->s, "SELECT COUNT(*) FROM fragments WHERE status = 'completed'", NULL, 0),
        NQUEUE);
}

static void test_concurrent_claims_threads(void **state)
{
    struct fx *f = *state;
    struct vk_err err = {0};
    make_queue(f);
    static char all[NQUEUE][VK_UUID_LEN];
    struct claimer cl[NTHREADS];
    pthread_t th[NTHREADS];
    const char *g[] = {"q"};
    for (int i = 0; i < NTHREADS; i++) {
        memset(&cl[i], 0, sizeof(cl[i]));
        cl[i].s = f->s;
        cl[i].claimed = calloc(NQUEUE, VK_UUID_LEN);
        assert_int_equal(vk_store_worker_register(f->s, NULL, "t", "1", g, 1, vk_time_now_ms(),
                                                  cl[i].worker, &err),
                         0);
    }
    for (int i = 0; i < NTHREADS; i++)
        pthread_create(&th[i], NULL, claim_loop, &cl[i]);
    int n = 0;
    for (int i = 0; i < NTHREADS; i++) {
        pthread_join(th[i], NULL);
        if (cl[i].errors)
            fail_msg("thread %d: %s", i, cl[i].msg);
        memcpy(all[n], cl[i].claimed, (size_t)cl[i].nclaimed * VK_UUID_LEN);
        n += cl[i].nclaimed;
        free(cl[i].claimed);
    }
    check_claimed(f, all, n);
}

/* Child process: open a private store, claim with 4 threads, write ids to `path`. */
static void child_claims(const char *url, const char *path)
{
    struct vk_store *s = NULL;
    struct vk_err err = {0};
    const char *g[] = {"q"};
    if (vk_store_open(url, &s, &err) != 0)
        _exit(2);
    struct claimer cl[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        memset(&cl[i], 0, sizeof(cl[i]));
        cl[i].s = s;
        cl[i].claimed = calloc(NQUEUE, VK_UUID_LEN);
        if (vk_store_worker_register(s, NULL, "p", "1", g, 1, vk_time_now_ms(), cl[i].worker, &err))
            _exit(3);
        pthread_create(&th[i], NULL, claim_loop, &cl[i]);
    }
    FILE *out = fopen(path, "w");
    int bad = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        bad |= cl[i].errors;
        for (int k = 0; k < cl[i].nclaimed; k++)
            fprintf(out, "%s\n", cl[i].claimed[k]);
    }
    fclose(out);
    vk_store_close(s);
    _exit(bad ? 4 : 0);
}

static void test_concurrent_claims_processes(void **state)
{
    struct fx *f = *state;
    make_queue(f);
    char paths[2][300];
    pid_t pids[2];
    for (int i = 0; i < 2; i++) {
        snprintf(paths[i], sizeof(paths[i]), "%s/claims-%d.txt", tmp_root, i);
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0)
            child_claims(f->url, paths[i]);
    }
    static char all[NQUEUE + 16][VK_UUID_LEN];
    int n = 0;
    for (int i = 0; i < 2; i++) {
        int st = 0;
        assert_int_equal(waitpid(pids[i], &st, 0), pids[i]);
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 0);
        FILE *in = fopen(paths[i], "r");
        assert_non_null(in);
        char line[64];
        int mine = 0;
        while (fgets(line, sizeof(line), in) && n < NQUEUE + 16) {
            line[strcspn(line, "\n")] = '\0';
            memcpy(all[n++], line, VK_UUID_LEN);
            mine++;
        }
        fclose(in);
        assert_true(mine > 0); /* both processes took part */
    }
    check_claimed(f, all, n);
}

/* ---------------------------------------------------------------- PostgreSQL restart */

static void pg_ctl(const char *what)
{
    const char *ctl = getenv("VK_TEST_PG_CTL");
    if (!ctl)
        fail_msg("VK_TEST_PG_CTL is not set: run through scripts/pg-test.sh");
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "%s %s", ctl, what);
    int st = system(cmd);
    if (st != 0)
        fail_msg("'%s' failed (%d)", cmd, st);
}

static void test_pg_restart(void **state)
{
    struct fx *f = *state;
    struct vk_err err = {0};
    char fr[4][VK_UUID_LEN];
    make_flat_chain(f, 4, "linux", 0, fr, NULL);
    for (int i = 0; i < 4; i++)
        set_ready(f->s, fr[i], i + 1);
    const char *g[] = {"linux"};
    char w[VK_UUID_LEN];
    assert_int_equal(
        vk_store_worker_register(f->s, NULL, "w", "1", g, 1, vk_time_now_ms(), w, &err), 0);
    struct vk_store_work work;
    assert_int_equal(vk_store_claim(f->s, w, g, 1, vk_time_now_ms(), &f->pool, &work, &err), 0);
    assert_string_equal(work.fragment.id, fr[0]);

    pg_ctl("stop");
    /* While the server is down: a clear error, no crash. */
    int rc = vk_store_claim(f->s, w, g, 1, vk_time_now_ms(), &f->pool, &work, &err);
    assert_int_equal(rc, VK_EDB);
    assert_non_null(strstr(err.msg, "postgres"));
    rc = finish(f->s, fr[0], 1, w, &err);
    assert_int_equal(rc, VK_EDB);
    print_message("while down: %s\n", err.msg);

    pg_ctl("start");
    /* Once it is back, the next operations succeed (allow one failure, with a clear error). */
    int failures = 0;
    for (;;) {
        rc = finish(f->s, fr[0], 1, w, &err);
        if (rc == 0)
            break;
        print_message("after restart: %s\n", err.msg);
        assert_int_equal(rc, VK_EDB);
        assert_true(++failures <= 1);
    }
    assert_int_equal(vk_store_claim(f->s, w, g, 1, vk_time_now_ms(), &f->pool, &work, &err), 0);
    assert_string_equal(work.fragment.id, fr[1]);
    int64_t total = 0;
    assert_int_equal(vk_store_log_append(f->s, fr[1], 1, 0, "back", 4, &total, &err), 0);
    const char **groups = NULL;
    size_t n = 0;
    assert_int_equal(vk_store_wait_ready(f->s, 0, &f->pool, &groups, &n, &err), 0);
}

/* ---------------------------------------------------------------- Allocation failures */

static void test_alloc_failures(void **state)
{
    struct fx *f = *state;
    struct vk_err err = {0};
    char fr[3][VK_UUID_LEN], cid[VK_UUID_LEN];
    make_flat_chain(f, 3, "linux", 0, fr, cid);
    for (unsigned long k = 1; k < 200; k++) {
        struct vk_pool pool;
        vk_pool_init(&pool, 256);
        struct vk_store_chain ch;
        struct vk_store_fragment *frs = NULL;
        size_t n = 0;
        vk_mem_fail_after(k);
        int rc = vk_store_chain_get(f->s, cid, &pool, &ch, &frs, &n, &err);
        if (rc == 0) {
            char next[VK_STORE_CURSOR_LEN];
            struct vk_store_chain *list = NULL;
            struct vk_store_chain_filter flt = {0};
            rc = vk_store_chain_list(f->s, &flt, &pool, &list, &n, next, &err);
        }
        unsigned long made = vk_mem_fail_after(0);
        vk_pool_release(&pool);
        assert_true(rc == 0 || rc == VK_ENOMEM);
        if (rc == 0 && made < k)
            break;
    }
    /* The store still works afterwards. */
    struct vk_store_chain ch;
    assert_int_equal(vk_store_chain_get(f->s, cid, &f->pool, &ch, NULL, NULL, &err), 0);
}

/* Rows an old defect left (issue 12 item 1) are found; settled and live chains are not. */
static void test_chain_unsettled(void **state)
{
    struct fx *f = *state;
    struct vk_err err = {0};
    char ids[2][VK_UUID_LEN], cid[VK_UUID_LEN], live[VK_UUID_LEN];
    make_flat_chain(f, 2, "default", 0, ids, cid);
    make_flat_chain(f, 1, "default", 0, NULL, live);
    char **got = NULL;
    size_t n = 9;
    assert_int_equal(vk_store_chain_unsettled(f->s, 10, &f->pool, &got, &n, &err), 0);
    assert_int_equal(n, 0);
    /* A failed chain without finished_at. */
    struct vk__param p[] = {vk__text(cid)}, pf[] = {vk__text(ids[0])}, pl[] = {vk__text(live)};
    sql_exec(f->s, "UPDATE chains SET status = 'failed', finished_at = NULL WHERE id = $1", p, 1);
    sql_exec(f->s, "UPDATE chains SET status = 'running' WHERE id = $1", pl, 1);
    assert_int_equal(vk_store_chain_unsettled(f->s, 10, &f->pool, &got, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(got[0], cid);
    /* Finished, but with a group left running. */
    sql_exec(f->s, "UPDATE chains SET finished_at = 5 WHERE id = $1", p, 1);
    assert_int_equal(vk_store_chain_unsettled(f->s, 10, &f->pool, &got, &n, &err), 0);
    assert_int_equal(n, 0);
    sql_exec(f->s, "UPDATE fragments SET type = 'group', status = 'running' WHERE id = $1", pf, 1);
    assert_int_equal(vk_store_chain_unsettled(f->s, 10, &f->pool, &got, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(got[0], cid);
    assert_int_equal(vk_store_chain_unsettled(f->s, 0, &f->pool, &got, &n, &err), 0);
    assert_int_equal(n, 0);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    snprintf(tmp_root, sizeof(tmp_root), "%s/vk-store-test-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmp_root)) {
        perror("mkdtemp");
        return 1;
    }
    const struct CMUnitTest common[] = {
        T(test_open_and_reopen),
        T(test_newer_schema_refused),
        cmocka_unit_test(test_concurrent_open),
        cmocka_unit_test(test_wal_switch_processes),
        T(test_chain_tree),
        T(test_chain_create_invalid),
        T(test_chain_big),
        T(test_chain_list),
        T(test_claim_order_and_fencing),
        T(test_workers_and_reaper),
        T(test_handback),
        T(test_cancel),
        T(test_chain_unsettled),
        T(test_notify),
        T(test_logs),
        T(test_alloc_failures),
        T(test_concurrent_claims_threads),
    };
    const struct CMUnitTest sqlite_only[] = {
        cmocka_unit_test(test_memory_db),
    };
    const struct CMUnitTest pg_only[] = {
        T(test_concurrent_claims_processes),
        T(test_pg_restart),
    };
    int failed = 0;
    if (is_pg()) {
        failed += cmocka_run_group_tests_name("store_postgres", common, NULL, NULL);
        failed += cmocka_run_group_tests_name("store_postgres_only", pg_only, NULL, NULL);
    } else {
        failed += cmocka_run_group_tests_name("store_sqlite", common, NULL, NULL);
        failed += cmocka_run_group_tests_name("store_sqlite_only", sqlite_only, NULL, NULL);
    }
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp_root);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", tmp_root);
    return failed ? 1 : 0;
}
