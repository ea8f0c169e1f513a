/*
 * The trigger wiring end to end: a running server (127.0.0.1, port 0) over SQLite or
 * PostgreSQL (VK_TEST_STORE_BACKEND, scripts/pg-test.sh), a local git repository with
 * workflows of different filters, and every provider's real-format fixture posted over
 * HTTP with correct and wrong signatures; the chains created (and their context) are read
 * back from the store. Also: redelivery, deleted branches, oversized bodies, malformed
 * JSON, unknown events and repositories, the repositories API, manual runs with inputs,
 * and the scheduler with a fake clock (a missed schedule runs once; two replicas fire a
 * slot once).
 */
/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include "trig_env.h"

static struct te T;

/* ---------------------------------------------------------------- Helpers */

struct exp {
    const char *file;
    const char *trigger;
    const char *branch;
    const char *commit;
    int64_t pr;
    const char *tag;
    const char *trigger_ref;
    bool failed;
};

static size_t count_chains(void)
{
    struct vk_pool pool;
    vk_pool_init(&pool, 0);
    struct vk_store_chain_filter f = {.limit = VK_STORE_MAX_LIST};
    struct vk_store_chain *c = NULL;
    size_t n = 0, total = 0;
    char cur[VK_STORE_CURSOR_LEN] = "";
    struct vk_err err = {0};
    do {
        f.cursor = cur[0] ? cur : NULL;
        char next[VK_STORE_CURSOR_LEN];
        assert_int_equal(vk_store_chain_list(T.store, &f, &pool, &c, &n, next, &err), 0);
        total += n;
        memcpy(cur, next, sizeof(cur));
    } while (cur[0]);
    vk_pool_release(&pool);
    return total;
}

/* The answer's chains are exactly `want` (in any order), each with its context. */
static void check_answer(json_t *a, const struct exp *want, size_t nwant, size_t nskipped)
{
    assert_non_null(a);
    json_t *chains = json_object_get(a, "chains");
    json_t *skipped = json_object_get(a, "skipped");
    assert_true(json_is_array(chains));
    assert_true(json_is_array(skipped));
    if (json_array_size(chains) != nwant) {
        char *d = json_dumps(a, 0);
        fail_msg("expected %zu chains, got: %s", nwant, d);
    }
    assert_int_equal(json_array_size(skipped), nskipped);
    bool used[16] = {false};
    struct vk_pool pool;
    vk_pool_init(&pool, 0);
    for (size_t i = 0; i < nwant; i++) {
        const char *id = json_string_value(json_array_get(chains, i));
        assert_non_null(id);
        struct vk_store_chain ch;
        struct vk_err err = {0};
        assert_int_equal(vk_store_chain_get(T.store, id, &pool, &ch, NULL, NULL, &err), 0);
        size_t k = 0;
        while (k < nwant && (used[k] || strcmp(want[k].file, ch.source_file) != 0))
            k++;
        if (k == nwant)
            fail_msg("unexpected chain for '%s'", ch.source_file);
        used[k] = true;
        const struct exp *e = &want[k];
        assert_string_equal(ch.trigger, e->trigger);
        assert_string_equal(ch.repository_id, T.repo_id);
        assert_string_equal(ch.repository_url, T.repo_url);
        if (e->branch)
            assert_string_equal(ch.branch, e->branch);
        assert_string_equal(ch.commit_sha, e->commit);
        assert_int_equal(ch.pr_number, e->pr);
        if (e->tag)
            assert_string_equal(ch.tag, e->tag);
        else
            assert_null(ch.tag);
        if (e->trigger_ref)
            assert_string_equal(ch.trigger_ref, e->trigger_ref);
        if (e->failed) {
            assert_int_equal(ch.status, VK_STORE_CHAIN_FAILED);
            assert_non_null(ch.error);
            assert_non_null(strstr(ch.error, e->file)); /* file:line:col: error: … */
        } else {
            assert_int_not_equal(ch.status, VK_STORE_CHAIN_FAILED);
        }
    }
    vk_pool_release(&pool);
}

static bool skipped_has(json_t *a, const char *file)
{
    json_t *s = json_object_get(a, "skipped");
    for (size_t i = 0; i < json_array_size(s); i++) {
        if (strcmp(json_string_value(json_object_get(json_array_get(s, i), "file")), file) == 0)
            return true;
    }
    return false;
}

/* Post and expect `status` and, when `want` is given, exactly those chains. */
static json_t *post_ok(enum vk_triggers_provider p, const char *name, const struct te_send *o,
                       long status)
{
    long st = 0;
    json_t *a = NULL;
    assert_int_equal(te_post(&T, p, name, o, &st, &a), 0);
    if (st != status) {
        char *d = a ? json_dumps(a, 0) : NULL;
        fail_msg("%s: status %ld, expected %ld: %s", name, st, status, d ? d : "");
    }
    return a;
}

/* ---------------------------------------------------------------- Set-up */

static int group_setup(void **state)
{
    (void)state;
    snprintf(T.tmp, sizeof(T.tmp), "%s/vk-trig-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(T.tmp))
        return -1;
    T.clock = 1772445600000; /* 2026-03-02T10:00:00Z */
    if (te_make_repo(&T) || te_server(&T, "main", 2) || te_register(&T))
        return -1;
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    te_stop(&T);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", T.tmp);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---------------------------------------------------------------- Repositories API */

static void test_repos_api(void **state)
{
    (void)state;
    long st = 0;
    json_t *a = NULL;
    /* The registered repository: listed, secret never returned. */
    assert_int_equal(te_api(&T, "GET", "/api/v1/repos", NULL, &st, &a), 0);
    assert_int_equal(st, 200);
    json_t *repos = json_object_get(a, "repos");
    assert_int_equal(json_array_size(repos), 1);
    json_t *r = json_array_get(repos, 0);
    assert_string_equal(json_string_value(json_object_get(r, "url")), T.repo_url);
    assert_string_equal(json_string_value(json_object_get(r, "workflow_glob")), ".vulcan/*.kdl");
    assert_string_equal(json_string_value(json_object_get(r, "default_branch")), "main");
    assert_true(json_is_true(json_object_get(r, "has_secret")));
    assert_null(json_object_get(r, "webhook_secret"));
    char *dump = json_dumps(a, 0);
    assert_null(strstr(dump, TE_SECRET));
    free(dump);
    json_decref(a);

    /* Bad input. */
    json_t *b = json_pack("{s:s}", "provider", "github");
    assert_int_equal(te_api(&T, "POST", "/api/v1/repos", b, &st, &a), 0);
    assert_int_equal(st, 400);
    json_decref(a);
    json_decref(b);
    b = json_pack("{s:s, s:s}", "url", "https://example.com/x.git", "provider", "svn");
    assert_int_equal(te_api(&T, "POST", "/api/v1/repos", b, &st, &a), 0);
    assert_int_equal(st, 400);
    json_decref(a);
    json_decref(b);
    b = json_pack("{s:s, s:s}", "url", "https://example.com/x.git", "colour", "red");
    assert_int_equal(te_api(&T, "POST", "/api/v1/repos", b, &st, &a), 0);
    assert_int_equal(st, 400);
    json_decref(a);
    json_decref(b);
    /* Same URL twice: 409. */
    b = json_pack("{s:s}", "url", T.repo_url);
    assert_int_equal(te_api(&T, "POST", "/api/v1/repos", b, &st, &a), 0);
    assert_int_equal(st, 409);
    json_decref(a);
    json_decref(b);

    /* Create, patch, get, delete another one. */
    b = json_pack("{s:s, s:s, s:s, s:s, s:b}", "url", "https://gitlab.example.com/g/other.git",
                  "provider", "gitlab", "webhook_secret", "x", "workflow_glob", "ci/**.kdl",
                  "allow_url_imports", 1);
    assert_int_equal(te_api(&T, "POST", "/api/v1/repos", b, &st, &a), 0);
    json_decref(b);
    assert_int_equal(st, 201);
    char path[128];
    snprintf(path, sizeof(path), "/api/v1/repos/%s", json_string_value(json_object_get(a, "id")));
    assert_true(json_is_true(json_object_get(a, "allow_url_imports")));
    json_decref(a);
    b = json_pack("{s:s, s:n}", "default_branch", "trunk", "webhook_secret");
    assert_int_equal(te_api(&T, "PATCH", path, b, &st, &a), 0);
    json_decref(b);
    assert_int_equal(st, 200);
    assert_string_equal(json_string_value(json_object_get(a, "default_branch")), "trunk");
    assert_string_equal(json_string_value(json_object_get(a, "workflow_glob")), "ci/**.kdl");
    assert_true(json_is_false(json_object_get(a, "has_secret")));
    json_decref(a);
    b = json_pack("{s:s}", "default_branch", "-x");
    assert_int_equal(te_api(&T, "PATCH", path, b, &st, &a), 0);
    json_decref(b);
    assert_int_equal(st, 400);
    json_decref(a);
    assert_int_equal(te_api(&T, "DELETE", path, NULL, &st, &a), 0);
    assert_int_equal(st, 204);
    json_decref(a);
    assert_int_equal(te_api(&T, "GET", path, NULL, &st, &a), 0);
    assert_int_equal(st, 404);
    json_decref(a);
    assert_int_equal(te_api(&T, "DELETE", path, NULL, &st, &a), 0);
    assert_int_equal(st, 404);
    json_decref(a);
}

static void test_workflows_listing(void **state)
{
    (void)state;
    long st = 0;
    json_t *a = NULL;
    char path[128];
    snprintf(path, sizeof(path), "/api/v1/repos/%s/workflows", T.repo_id);
    assert_int_equal(te_api(&T, "GET", path, NULL, &st, &a), 0);
    assert_int_equal(st, 200);
    assert_string_equal(json_string_value(json_object_get(a, "commit")), T.c);
    json_t *w = json_object_get(a, "workflows");
    assert_int_equal(json_array_size(w), 6); /* broken, docs, main, nightly, pr, release */
    json_t *broken = json_array_get(w, 0), *nightly = json_array_get(w, 3);
    assert_string_equal(json_string_value(json_object_get(broken, "file")), ".vulcan/broken.kdl");
    assert_non_null(
        strstr(json_string_value(json_object_get(broken, "error")), ".vulcan/broken.kdl:"));
    assert_string_equal(json_string_value(json_object_get(nightly, "name")), "nightly");
    assert_true(json_is_true(json_object_get(nightly, "manual")));
    json_t *ins = json_object_get(nightly, "inputs");
    assert_int_equal(json_array_size(ins), 2);
    json_t *env = json_array_get(ins, 0), *ver = json_array_get(ins, 1);
    assert_string_equal(json_string_value(json_object_get(env, "name")), "environment");
    assert_string_equal(json_string_value(json_object_get(env, "default")), "staging");
    assert_int_equal(json_array_size(json_object_get(env, "choices")), 2);
    assert_true(json_is_false(json_object_get(env, "required")));
    assert_true(json_is_true(json_object_get(ver, "required")));
    assert_string_equal(json_string_value(json_object_get(ver, "description")), "what");
    json_decref(a);
    /* Another branch. */
    snprintf(path, sizeof(path), "/api/v1/repos/%s/workflows?branch=feature/fast", T.repo_id);
    assert_int_equal(te_api(&T, "GET", path, NULL, &st, &a), 0);
    assert_int_equal(st, 200);
    assert_int_equal(json_array_size(json_object_get(a, "workflows")), 5);
    json_decref(a);
    snprintf(path, sizeof(path), "/api/v1/repos/%s/workflows?branch=nope", T.repo_id);
    assert_int_equal(te_api(&T, "GET", path, NULL, &st, &a), 0);
    assert_int_equal(st, 404);
    json_decref(a);
}

/* ---------------------------------------------------------------- Every provider, every event */

static void test_provider_events(void **state)
{
    (void)state;
    size_t before = count_chains();
    json_t *a;

    /* GitHub push to main: main, docs (the payload lists docs/old.md), broken (failed). */
    a = post_ok(VK_TRIGGERS_GITHUB, "github/push", NULL, 200);
    struct exp gh_push[] = {
        {".vulcan/main.kdl", "push", "main", T.c, 0, NULL, "refs/heads/main", false},
        {".vulcan/docs.kdl", "push", "main", T.c, 0, NULL, "refs/heads/main", false},
        {".vulcan/broken.kdl", "push", "main", T.c, 0, NULL, "refs/heads/main", true},
    };
    check_answer(a, gh_push, 3, 3);
    assert_true(skipped_has(a, ".vulcan/pr.kdl") && skipped_has(a, ".vulcan/release.kdl") &&
                skipped_has(a, ".vulcan/nightly.kdl"));
    json_decref(a);
    /* The same signed body replayed under another delivery id (issue 14 item 7: only the
     * body is signed): handled before, no chain. */
    size_t after_push = count_chains();
    struct te_send replay = {.delivery = "replayed-under-a-new-id"};
    a = post_ok(VK_TRIGGERS_GITHUB, "github/push", &replay, 200);
    assert_int_equal(json_array_size(json_object_get(a, "chains")), 0);
    char *text = json_dumps(a, 0);
    assert_non_null(text && strstr(text, "handled before"));
    free(text);
    json_decref(a);
    assert_int_equal(count_chains(), after_push);
    /* The push to the default branch refreshed the schedules. */
    struct vk_pool pool;
    vk_pool_init(&pool, 0);
    struct vk_store_schedule *sc = NULL;
    size_t nsc = 0;
    struct vk_err err = {0};
    assert_int_equal(vk_store_schedules_list(T.store, T.repo_id, 0, 0, &pool, &sc, &nsc, &err), 0);
    assert_int_equal(nsc, 1);
    assert_string_equal(sc[0].workflow_file, ".vulcan/nightly.kdl");
    assert_string_equal(sc[0].cron, "0 2 * * *");
    assert_string_equal(sc[0].timezone, "Europe/Amsterdam");
    vk_pool_release(&pool);

    /* GitHub tag v1.2.0. */
    a = post_ok(VK_TRIGGERS_GITHUB, "github/tag", NULL, 200);
    struct exp gh_tag[] = {
        {".vulcan/release.kdl", "tag", NULL, T.c, 0, "v1.2.0", "refs/tags/v1.2.0", false},
        {".vulcan/broken.kdl", "tag", NULL, T.c, 0, "v1.2.0", NULL, true},
    };
    check_answer(a, gh_tag, 2, 4);
    json_decref(a);

    /* GitHub pull requests into main, head B (which has no broken.kdl). */
    struct exp gh_pr[] = {
        {".vulcan/pr.kdl", "pull_request", "feature/fast", T.b, 42, NULL, "refs/heads/main", false},
    };
    a = post_ok(VK_TRIGGERS_GITHUB, "github/pull_request_opened", NULL, 200);
    check_answer(a, gh_pr, 1, 4);
    json_decref(a);
    a = post_ok(VK_TRIGGERS_GITHUB, "github/pull_request_synchronize", NULL, 200);
    check_answer(a, gh_pr, 1, 4);
    json_decref(a);

    /* GitHub ping and a deleted branch: 200, nothing. */
    a = post_ok(VK_TRIGGERS_GITHUB, "github/ping", NULL, 200);
    check_answer(a, NULL, 0, 0);
    json_decref(a);
    a = post_ok(VK_TRIGGERS_GITHUB, "github/push_deleted", NULL, 200);
    check_answer(a, NULL, 0, 0);
    json_decref(a);

    /* GitLab: push (complete commit list with docs/old.md), tag, merge request update. */
    a = post_ok(VK_TRIGGERS_GITLAB, "gitlab/push", NULL, 200);
    check_answer(a, gh_push, 3, 3);
    json_decref(a);
    a = post_ok(VK_TRIGGERS_GITLAB, "gitlab/tag_push", NULL, 200);
    struct exp gl_tag[] = {
        {".vulcan/release.kdl", "tag", NULL, T.c, 0, "v1.0.0", "refs/tags/v1.0.0", false},
        {".vulcan/broken.kdl", "tag", NULL, T.c, 0, "v1.0.0", NULL, true},
    };
    check_answer(a, gl_tag, 2, 4);
    json_decref(a);
    a = post_ok(VK_TRIGGERS_GITLAB, "gitlab/merge_request", NULL, 200);
    struct exp gl_mr[] = {
        {".vulcan/pr.kdl", "pull_request", "feature/fast", T.b, 7, NULL, "refs/heads/main", false},
    };
    check_answer(a, gl_mr, 1, 4);
    json_decref(a);

    /* Gitea: a push to develop starts only the broken workflow's failed chain. */
    a = post_ok(VK_TRIGGERS_GITEA, "gitea/push", NULL, 200);
    struct exp gt_push[] = {
        {".vulcan/broken.kdl", "push", "develop", T.c, 0, NULL, "refs/heads/develop", true},
    };
    check_answer(a, gt_push, 1, 5);
    assert_true(skipped_has(a, ".vulcan/main.kdl"));
    json_decref(a);
    a = post_ok(VK_TRIGGERS_GITEA, "gitea/pull_request", NULL, 200);
    json_t *prs = json_object_get(a, "chains");
    assert_int_equal(json_array_size(prs), 1);
    struct vk_store_chain ch;
    vk_pool_init(&pool, 0);
    assert_int_equal(vk_store_chain_get(T.store, json_string_value(json_array_get(prs, 0)), &pool,
                                        &ch, NULL, NULL, &err),
                     0);
    assert_string_equal(ch.source_file, ".vulcan/pr.kdl");
    assert_string_equal(ch.commit_sha, T.b);
    assert_string_equal(ch.trigger, "pull_request");
    assert_true(ch.pr_number > 0);
    vk_pool_release(&pool);
    json_decref(a);

    /* Bitbucket: push (paths computed with git: no docs change), PR with a short sha. */
    a = post_ok(VK_TRIGGERS_BITBUCKET, "bitbucket/repo_push", NULL, 200);
    struct exp bb_push[] = {
        {".vulcan/main.kdl", "push", "main", T.c, 0, NULL, NULL, false},
        {".vulcan/broken.kdl", "push", "main", T.c, 0, NULL, NULL, true},
    };
    check_answer(a, bb_push, 2, 4);
    assert_true(skipped_has(a, ".vulcan/docs.kdl"));
    json_decref(a);
    a = post_ok(VK_TRIGGERS_BITBUCKET, "bitbucket/pullrequest_created", NULL, 200);
    struct exp bb_pr[] = {
        {".vulcan/pr.kdl", "pull_request", "feature/fast", T.b, 12, NULL, "refs/heads/main", false},
    };
    check_answer(a, bb_pr, 1, 4);
    json_decref(a);

    /* Generic: push with its own changed_paths. */
    char path[128];
    snprintf(path, sizeof(path), "/hooks/generic/%s", T.repo_id);
    struct te_send gs = {.path = path};
    a = post_ok(VK_TRIGGERS_GENERIC, "generic/push", &gs, 200);
    check_answer(a, bb_push, 2, 4);
    json_decref(a);

    assert_int_equal(count_chains(), before + 3 + 2 + 1 + 1 + 3 + 2 + 1 + 1 + 1 + 2 + 1 + 2);
}

/* ---------------------------------------------------------------- What creates nothing */

static void test_refusals(void **state)
{
    (void)state;
    size_t before = count_chains();
    long st = 0;
    json_t *a = NULL;
    static const struct {
        enum vk_triggers_provider p;
        const char *name;
    } all[] = {
        {VK_TRIGGERS_GITHUB, "github/push"},   {VK_TRIGGERS_GITLAB, "gitlab/push"},
        {VK_TRIGGERS_GITEA, "gitea/push"},     {VK_TRIGGERS_BITBUCKET, "bitbucket/repo_push"},
        {VK_TRIGGERS_GENERIC, "generic/push"},
    };
    char gpath[128];
    snprintf(gpath, sizeof(gpath), "/hooks/generic/%s", T.repo_id);
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        const char *route = all[i].p == VK_TRIGGERS_GENERIC ? gpath : NULL;
        /* Wrong secret, then no signature at all: 401. Fresh delivery ids, so a later
         * correct one would not be mistaken for a redelivery. */
        struct te_send wrong = {.secret = "not the secret", .delivery = "wrong-1", .path = route};
        assert_int_equal(te_post(&T, all[i].p, all[i].name, &wrong, &st, &a), 0);
        assert_int_equal(st, 401);
        assert_string_equal(json_string_value(json_object_get(a, "error")), "unauthorized");
        json_decref(a);
        struct te_send none = {.no_signature = true, .delivery = "none-1", .path = route};
        assert_int_equal(te_post(&T, all[i].p, all[i].name, &none, &st, &a), 0);
        assert_int_equal(st, 401);
        json_decref(a);
        /* Redelivery of the deliveries handled in test_provider_events: 200, nothing. */
        struct te_send again = {.path = route};
        assert_int_equal(te_post(&T, all[i].p, all[i].name, &again, &st, &a), 0);
        assert_int_equal(st, 200);
        check_answer(a, NULL, 0, 0);
        json_decref(a);
    }
    /* A tampered body with the original signature. */
    {
        char *body = te_fixture_body(&T, "github/push");
        char sig[128];
        assert_int_equal(vk_triggers_hook_sign(VK_TRIGGERS_GITHUB, body, strlen(body), TE_SECRET,
                                               sig, sizeof(sig)),
                         0);
        te_subst(&body, "octocat", "octodog"); /* still valid JSON, other bytes */
        struct te_send t = {.body = body, .body_len = strlen(body), .signature = sig};
        assert_int_equal(te_post(&T, VK_TRIGGERS_GITHUB, "github/push", &t, &st, &a), 0);
        assert_int_equal(st, 401);
        json_decref(a);
        free(body);
    }
    /* Oversized body: 413 before it is read whole. The client asks before sending (as
     * providers' clients do for big bodies): without that, the refusal can reach it as a
     * broken pipe while it still sends (seen under ThreadSanitizer). */
    {
        size_t n = 1024 * 1024 + 16;
        char *big = malloc(n);
        memset(big, ' ', n);
        big[0] = '{';
        big[n - 1] = '}';
        struct te_send t = {
            .body = big, .body_len = n, .delivery = "big-1", .expect_continue = true};
        assert_int_equal(te_post(&T, VK_TRIGGERS_GITHUB, "github/push", &t, &st, &a), 0);
        assert_int_equal(st, 413);
        json_decref(a);
        free(big);
    }
    /* Malformed JSON, and a JSON array: 400. */
    {
        static const char bad[] = "{\"ref\": \"refs/heads/main\", ";
        struct te_send t = {.body = bad, .body_len = sizeof(bad) - 1, .delivery = "bad-1"};
        assert_int_equal(te_post(&T, VK_TRIGGERS_GITHUB, "github/push", &t, &st, &a), 0);
        assert_int_equal(st, 400);
        json_decref(a);
        static const char arr[] = "[1, 2]";
        struct te_send t2 = {.body = arr, .body_len = sizeof(arr) - 1, .delivery = "bad-2"};
        assert_int_equal(te_post(&T, VK_TRIGGERS_GITLAB, "gitlab/push", &t2, &st, &a), 0);
        assert_int_equal(st, 400);
        json_decref(a);
        /* Generic (repository known from the path): a verified but malformed body. */
        struct te_send t3 = {
            .body = bad, .body_len = sizeof(bad) - 1, .path = gpath, .delivery = "bad-3"};
        assert_int_equal(te_post(&T, VK_TRIGGERS_GENERIC, "generic/push", &t3, &st, &a), 0);
        assert_int_equal(st, 400);
        json_decref(a);
    }
    /* A verified payload missing a required field: 400 naming it. */
    {
        char *body = te_fixture_body(&T, "github/push");
        char *ref = strstr(body, "\"ref\"");
        memcpy(ref, "\"rxf\"", 5);
        struct te_send t = {.body = body, .body_len = strlen(body), .delivery = "bad-4"};
        assert_int_equal(te_post(&T, VK_TRIGGERS_GITHUB, "github/push", &t, &st, &a), 0);
        assert_int_equal(st, 400);
        assert_non_null(strstr(json_string_value(json_object_get(a, "message")), "ref"));
        json_decref(a);
        free(body);
    }
    /* Unknown event: 200, nothing. */
    {
        struct te_send t = {.event = "issues", .delivery = "issues-1"};
        assert_int_equal(te_post(&T, VK_TRIGGERS_GITHUB, "github/push", &t, &st, &a), 0);
        assert_int_equal(st, 200);
        check_answer(a, NULL, 0, 0);
        json_decref(a);
        struct te_send t2 = {.event = "Note Hook", .delivery = "note-1"};
        assert_int_equal(te_post(&T, VK_TRIGGERS_GITLAB, "gitlab/push", &t2, &st, &a), 0);
        assert_int_equal(st, 200);
        check_answer(a, NULL, 0, 0);
        json_decref(a);
    }
    /* Unknown repository: the fixture as it is (github.com URLs): 404. */
    {
        char path[1024];
        snprintf(path, sizeof(path), "%s/tests/fixtures/github/push.json", getenv("VK_SOURCE_DIR"));
        char *body = te_read(path);
        struct te_send t = {.body = body, .body_len = strlen(body), .delivery = "unknown-1"};
        assert_int_equal(te_post(&T, VK_TRIGGERS_GITHUB, "github/push", &t, &st, &a), 0);
        assert_int_equal(st, 404);
        json_decref(a);
        free(body);
        struct te_send t2 = {.path = "/hooks/generic/00000000-0000-7000-8000-000000000000",
                             .delivery = "unknown-2"};
        assert_int_equal(te_post(&T, VK_TRIGGERS_GENERIC, "generic/push", &t2, &st, &a), 0);
        assert_int_equal(st, 404);
        json_decref(a);
    }
    /* A commit the repository does not have: 502, and the delivery can be retried. */
    {
        char *body = te_fixture_body(&T, "github/push");
        te_subst(&body, T.c, "1111111111111111111111111111111111111111");
        struct te_send t = {.body = body, .body_len = strlen(body), .delivery = "nosha-1"};
        assert_int_equal(te_post(&T, VK_TRIGGERS_GITHUB, "github/push", &t, &st, &a), 0);
        assert_int_equal(st, 502);
        json_decref(a);
        te_subst(&body, "1111111111111111111111111111111111111111", T.c);
        /* The provider's retry of that delivery; its body differs from the push handled at
         * the start of the file (the same body again would be a replay: handled before). */
        te_subst(&body, "2026-03-02T10:15:00+01:00", "2026-03-02T10:16:00+01:00");
        t.body = body;
        t.body_len = strlen(body);
        assert_int_equal(te_post(&T, VK_TRIGGERS_GITHUB, "github/push", &t, &st, &a), 0);
        assert_int_equal(st, 200);
        assert_int_equal(json_array_size(json_object_get(a, "chains")), 3);
        json_decref(a);
        free(body);
    }
    assert_int_equal(count_chains(), before + 3);
}

/* ---------------------------------------------------------------- Manual runs */

static void test_manual(void **state)
{
    (void)state;
    char path[128];
    snprintf(path, sizeof(path), "/api/v1/repos/%s/trigger", T.repo_id);
    long st = 0;
    json_t *a = NULL;
    size_t before = count_chains();

    json_t *b =
        json_pack("{s:s, s:s, s:{s:s, s:s}}", "branch", "main", "workflow", ".vulcan/nightly.kdl",
                  "inputs", "environment", "production", "version", "1.4");
    assert_int_equal(te_api(&T, "POST", path, b, &st, &a), 0);
    json_decref(b);
    assert_int_equal(st, 201);
    struct exp m[] = {
        {".vulcan/nightly.kdl", "manual", "main", T.c, 0, NULL, "refs/heads/main", false}};
    check_answer(a, m, 1, 0);
    /* The inputs reach the environment. */
    struct vk_pool pool;
    vk_pool_init(&pool, 0);
    struct vk_store_chain ch;
    struct vk_store_fragment *fr = NULL;
    size_t nfr = 0;
    struct vk_err err = {0};
    assert_int_equal(
        vk_store_chain_get(T.store,
                           json_string_value(json_array_get(json_object_get(a, "chains"), 0)),
                           &pool, &ch, &fr, &nfr, &err),
        0);
    assert_non_null(ch.env_json);
    json_t *env = json_loads(ch.env_json, 0, NULL);
    assert_string_equal(json_string_value(json_object_get(env, "environment")), "production");
    assert_string_equal(json_string_value(json_object_get(env, "version")), "1.4");
    json_decref(env);
    /* ... and conditions: environment == production, so the deploy fragment is not skipped. */
    assert_int_equal(nfr, 1);
    assert_int_not_equal(fr[0].status, VK_STORE_FRAG_SKIPPED);
    vk_pool_release(&pool);
    json_decref(a);

    /* Defaults apply; the condition is false then: the fragment is skipped. */
    b = json_pack("{s:s, s:s, s:s, s:{s:s}}", "branch", "feature/fast", "commit", T.a, "workflow",
                  ".vulcan/nightly.kdl", "inputs", "version", "2");
    assert_int_equal(te_api(&T, "POST", path, b, &st, &a), 0);
    json_decref(b);
    assert_int_equal(st, 201);
    struct exp m2[] = {{".vulcan/nightly.kdl", "manual", "feature/fast", T.a, 0, NULL,
                        "refs/heads/feature/fast", false}};
    check_answer(a, m2, 1, 0);
    vk_pool_init(&pool, 0);
    assert_int_equal(
        vk_store_chain_get(T.store,
                           json_string_value(json_array_get(json_object_get(a, "chains"), 0)),
                           &pool, &ch, &fr, &nfr, &err),
        0);
    assert_non_null(strstr(ch.env_json, "staging"));
    assert_int_equal(fr[0].status, VK_STORE_FRAG_SKIPPED);
    vk_pool_release(&pool);
    json_decref(a);

    /* Refusals: bad choice, missing required, undeclared input, no manual trigger,
     * unknown workflow, unknown branch, unknown repository. */
    struct {
        const char *json;
        long status;
    } bad[] = {
        {"{\"workflow\": \".vulcan/nightly.kdl\", \"inputs\": {\"environment\": \"dev\", "
         "\"version\": \"1\"}}",
         400},
        {"{\"workflow\": \".vulcan/nightly.kdl\", \"inputs\": {}}", 400},
        {"{\"workflow\": \".vulcan/nightly.kdl\", \"inputs\": {\"version\": \"1\", \"x\": \"y\"}}",
         400},
        {"{\"workflow\": \".vulcan/main.kdl\"}", 400},
        {"{\"workflow\": \".vulcan/none.kdl\"}", 404},
        {"{\"branch\": \"nope\", \"workflow\": \".vulcan/nightly.kdl\"}", 404},
        {"{\"branch\": \"--upload-pack=x\"}", 400},
        {"{\"inputs\": \"x\"}", 400},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        b = json_loads(bad[i].json, 0, NULL);
        assert_non_null(b);
        assert_int_equal(te_api(&T, "POST", path, b, &st, &a), 0);
        json_decref(b);
        if (st != bad[i].status)
            fail_msg("%s: %ld", bad[i].json, st);
        json_decref(a);
    }
    b = json_pack("{s:s}", "branch", "main");
    assert_int_equal(te_api(&T, "POST",
                            "/api/v1/repos/00000000-0000-7000-8000-000000000000/trigger", b, &st,
                            &a),
                     0);
    assert_int_equal(st, 404);
    json_decref(a);
    /* No workflow named: every workflow with a manual trigger whose inputs fit. */
    json_object_set_new(b, "inputs", json_pack("{s:s}", "version", "3"));
    assert_int_equal(te_api(&T, "POST", path, b, &st, &a), 0);
    json_decref(b);
    assert_int_equal(st, 201);
    check_answer(a, m, 1, 5);
    json_decref(a);
    assert_int_equal(count_chains(), before + 3);
}

/* A generic push of commit `sha` to `branch`; returns the answer (owned), status 200. */
static json_t *generic_push(const char *branch, const char *sha, const char *delivery)
{
    char body[2048], path[128];
    snprintf(body, sizeof(body),
             "{\"event\":\"push\",\"ref\":\"refs/heads/%s\",\"before\":\"%040d\","
             "\"after\":\"%s\",\"repository\":{\"url\":\"%s\"}}",
             branch, 0, sha, T.repo_url);
    snprintf(path, sizeof(path), "/hooks/generic/%s", T.repo_id);
    struct te_send o = {.body = body, .body_len = strlen(body), .path = path, .delivery = delivery};
    return post_ok(VK_TRIGGERS_GENERIC, "generic/push", &o, 200);
}

static const char *reason_of(json_t *a, const char *file)
{
    json_t *s = json_object_get(a, "skipped");
    for (size_t i = 0; i < json_array_size(s); i++) {
        json_t *x = json_array_get(s, i);
        if (strcmp(json_string_value(json_object_get(x, "file")), file) == 0)
            return json_string_value(json_object_get(x, "reason"));
    }
    fail_msg("'%s' is not in skipped", file);
    return NULL;
}

/* Issue 12: a push whose head commit says [skip ci] (or [ci skip]) starts nothing and the
 * answer says why; a push that starts nothing names, per workflow, the filter that decided. */
static void test_skip_markers_and_reasons(void **state)
{
    (void)state;
    char d[41];
    assert_int_equal(te_sh(TE_GIT
                           "checkout -q -b skipme && echo x >> %s/docs/guide.md && " TE_GIT
                           "commit -q -am 'docs: typo\n\nlong text [SKIP CI] more' && " TE_GIT
                           "push -q %s skipme && " TE_GIT "checkout -q main",
                           T.work, T.work, T.work, T.work, T.bare, T.work),
                     0);
    assert_int_equal(te_rev(&T, "skipme", d), 0);
    size_t before = count_chains();
    json_t *a = generic_push("main", d, "skip-1");
    assert_int_equal(json_array_size(json_object_get(a, "chains")), 0);
    const char *note = json_string_value(json_object_get(a, "note"));
    assert_non_null(note);
    assert_non_null(strstr(note, "[skip ci]"));
    assert_non_null(strstr(reason_of(a, ".vulcan/main.kdl"), "[skip ci]"));
    json_decref(a);
    assert_int_equal(count_chains(), before);

    /* the reasons of a push that matches no workflow */
    a = generic_push("feature/x", T.c, "reasons-1");
    assert_int_equal(json_array_size(json_object_get(a, "chains")), 1); /* broken.kdl fails */
    assert_string_equal(reason_of(a, ".vulcan/main.kdl"),
                        "push: branch 'feature/x' is not in branches (main)");
    assert_string_equal(reason_of(a, ".vulcan/pr.kdl"),
                        "no push trigger (the workflow triggers on pull_request)");
    assert_string_equal(reason_of(a, ".vulcan/release.kdl"),
                        "no push trigger (the workflow triggers on tag)");
    json_decref(a);
    /* a push to main that changes no docs: docs.kdl's paths filter decides */
    a = generic_push("main", T.c, "reasons-2");
    const char *why = reason_of(a, ".vulcan/docs.kdl");
    assert_non_null(strstr(why, "changed paths matches paths (docs/**)"));
    json_decref(a);
}

/* ---------------------------------------------------------------- Schedules */

static void test_cron_missed_once(void **state)
{
    (void)state;
    size_t fired = 9;
    struct vk_err err = {0};
    /* 2026-03-02T10:00Z: the first pass refreshes every repository; nothing is due. The
     * schedule exists already (the push refreshed it); re-plan to "created now". */
    assert_int_equal(vk_store_schedules_replace(T.store, T.repo_id, NULL, 0, te_clock(&T), &err),
                     0);
    assert_int_equal(vk_triggers_cron_run(T.trig, &fired, &err), 0);
    assert_int_equal(fired, 0);
    struct vk_pool pool;
    vk_pool_init(&pool, 0);
    struct vk_store_schedule *sc = NULL;
    size_t n = 0;
    assert_int_equal(vk_store_schedules_list(T.store, T.repo_id, 0, 0, &pool, &sc, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(sc[0].last_fired_ms, te_clock(&T));
    /* Next: 2026-03-03 02:00 CET = 01:00Z. */
    assert_int_equal(sc[0].next_fire_ms, 1772499600000);
    vk_pool_release(&pool);

    /* The server "was down" for three days and a bit: one run, at the latest slot. */
    size_t before = count_chains();
    te_advance(&T, 3 * 86400000LL + 3600000); /* the service's threads read it */
    assert_int_equal(vk_triggers_cron_run(T.trig, &fired, &err), 0);
    assert_int_equal(fired, 1);
    assert_int_equal(count_chains(), before + 1);
    assert_int_equal(vk_triggers_cron_run(T.trig, &fired, &err), 0);
    assert_int_equal(fired, 0);

    /* A second replica on the same database with the same clock: nothing again; one more
     * day: exactly one of the two fires. */
    struct te R = T;
    R.trig = NULL;
    char data[400];
    snprintf(data, sizeof(data), "%s/data2", T.tmp);
    struct vk_triggers_opts to = {.store = T.store,
                                  .orch = T.orch,
                                  .data_dir = data,
                                  .now_fn = te_clock,
                                  .now_ctx = &T,
                                  .cron_interval_ms = -1};
    assert_int_equal(vk_triggers_service_new(&to, &R.trig, &err), 0);
    assert_int_equal(vk_triggers_cron_run(R.trig, &fired, &err), 0); /* refreshes: keeps the row */
    assert_int_equal(fired, 0);
    te_advance(&T, 86400000LL);
    size_t f1 = 0, f2 = 0;
    assert_int_equal(vk_triggers_cron_run(R.trig, &f1, &err), 0);
    assert_int_equal(vk_triggers_cron_run(T.trig, &f2, &err), 0);
    assert_int_equal(f1 + f2, 1);
    assert_int_equal(count_chains(), before + 2);
    vk_triggers_service_free(R.trig);

    /* The chain: trigger schedule on the default branch head. */
    vk_pool_init(&pool, 0);
    struct vk_store_chain_filter f = {.trigger = "schedule", .limit = 10};
    struct vk_store_chain *c = NULL;
    char next[VK_STORE_CURSOR_LEN];
    assert_int_equal(vk_store_chain_list(T.store, &f, &pool, &c, &n, next, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(c[0].source_file, ".vulcan/nightly.kdl");
    assert_string_equal(c[0].branch, "main");
    assert_string_equal(c[0].commit_sha, T.c);
    assert_string_equal(c[0].repository_id, T.repo_id);
    vk_pool_release(&pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_repos_api),
        cmocka_unit_test(test_workflows_listing),
        cmocka_unit_test(test_provider_events),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_manual),
        cmocka_unit_test(test_cron_missed_once),
        cmocka_unit_test(test_skip_markers_and_reasons),
    };
    const char *b = getenv("VK_TEST_STORE_BACKEND");
    return cmocka_run_group_tests_name(b && strcmp(b, "postgres") == 0 ? "triggers_postgres"
                                                                       : "triggers_sqlite",
                                       tests, group_setup, group_teardown);
}
