/*
 * Commit statuses: the request of each provider (paths, headers, bodies, the mapping of
 * chain states), the derivation of API URLs and repository paths, the bounds on every
 * field, the backoff; and the reporter's retry and give-up on a fake clock against a
 * port where nothing listens (the chain's own status is untouched).
 */
#include "vk_test.h"
#include "vulcan/triggers.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define SHA "0123456789abcdef0123456789abcdef01234567"

static json_t *body_of(const struct vk_triggers_status_req *r)
{
    json_t *j = json_loads(r->body, 0, NULL);
    assert_non_null(j);
    return j;
}

static const char *header(const struct vk_triggers_status_req *r, const char *name)
{
    for (size_t i = 0; i < r->nheaders; i++)
        if (strcmp(r->header_names[i], name) == 0)
            return r->header_values[i];
    return NULL;
}

static void build(enum vk_triggers_provider p, const char *url, enum vk_store_chain_status st,
                  struct vk_triggers_status_req *r)
{
    struct vk_triggers_status s = {.provider = p,
                                   .repo_url = url,
                                   .token = "tok",
                                   .sha = SHA,
                                   .status = st,
                                   .workflow = "build",
                                   .target_url = "https://ci.example/#/chains/c1",
                                   .description = "Running"};
    struct vk_err err = {0};
    if (vk_triggers_status_build(&s, r, &err) != 0)
        fail_msg("build: %s", err.msg);
}

static void test_github(void **state)
{
    (void)state;
    struct vk_triggers_status_req r;
    build(VK_TRIGGERS_GITHUB, "git@github.com:Org/App.git", VK_STORE_CHAIN_RUNNING, &r);
    assert_string_equal(r.base, "https://api.github.com");
    assert_string_equal(r.path, "/repos/Org/App/statuses/" SHA);
    assert_string_equal(header(&r, "Authorization"), "Bearer tok");
    assert_string_equal(header(&r, "Accept"), "application/vnd.github+json");
    assert_string_equal(header(&r, "X-GitHub-Api-Version"), "2022-11-28");
    assert_non_null(header(&r, "User-Agent"));
    json_t *b = body_of(&r);
    assert_string_equal(json_string_value(json_object_get(b, "state")), "pending");
    assert_string_equal(json_string_value(json_object_get(b, "context")), "vulcan/build");
    assert_string_equal(json_string_value(json_object_get(b, "target_url")),
                        "https://ci.example/#/chains/c1");
    assert_int_equal(json_object_size(b), 4);
    json_decref(b);
    vk_triggers_status_req_release(&r);
    const enum vk_store_chain_status sts[] = {VK_STORE_CHAIN_PENDING, VK_STORE_CHAIN_COMPLETED,
                                              VK_STORE_CHAIN_FAILED, VK_STORE_CHAIN_CANCELLED};
    const char *want[] = {"pending", "success", "failure", "error"};
    for (size_t i = 0; i < 4; i++) {
        build(VK_TRIGGERS_GITHUB, "https://github.com/o/r", sts[i], &r);
        b = body_of(&r);
        assert_string_equal(json_string_value(json_object_get(b, "state")), want[i]);
        json_decref(b);
        vk_triggers_status_req_release(&r);
    }
}

static void test_gitlab_gitea_bitbucket(void **state)
{
    (void)state;
    struct vk_triggers_status_req r;
    build(VK_TRIGGERS_GITLAB, "https://gitlab.com/group/sub/proj.git", VK_STORE_CHAIN_CANCELLED,
          &r);
    assert_string_equal(r.base, "https://gitlab.com/api/v4");
    assert_string_equal(r.path, "/projects/group%2Fsub%2Fproj/statuses/" SHA);
    assert_string_equal(header(&r, "PRIVATE-TOKEN"), "tok");
    json_t *b = body_of(&r);
    assert_string_equal(json_string_value(json_object_get(b, "state")), "canceled");
    assert_string_equal(json_string_value(json_object_get(b, "name")), "vulcan/build");
    json_decref(b);
    vk_triggers_status_req_release(&r);

    build(VK_TRIGGERS_GITEA, "https://git.example.org:3000/gitea/org/app.git",
          VK_STORE_CHAIN_FAILED, &r);
    assert_string_equal(r.base, "https://git.example.org:3000/gitea/api/v1");
    assert_string_equal(r.path, "/repos/org/app/statuses/" SHA);
    assert_string_equal(header(&r, "Authorization"), "token tok");
    b = body_of(&r);
    assert_string_equal(json_string_value(json_object_get(b, "state")), "failure");
    json_decref(b);
    vk_triggers_status_req_release(&r);

    build(VK_TRIGGERS_BITBUCKET, "git@bitbucket.org:ws/slug.git", VK_STORE_CHAIN_COMPLETED, &r);
    assert_string_equal(r.base, "https://api.bitbucket.org/2.0");
    assert_string_equal(r.path, "/repositories/ws/slug/commit/" SHA "/statuses/build");
    b = body_of(&r);
    assert_string_equal(json_string_value(json_object_get(b, "state")), "SUCCESSFUL");
    assert_string_equal(json_string_value(json_object_get(b, "key")), "vulcan-build");
    assert_string_equal(json_string_value(json_object_get(b, "url")),
                        "https://ci.example/#/chains/c1");
    json_decref(b);
    vk_triggers_status_req_release(&r);
}

static void test_derivation(void **state)
{
    (void)state;
    char out[256];
    struct vk_err err = {0};
    assert_int_equal(vk_triggers_status_api_url(VK_TRIGGERS_GITEA,
                                                "ssh://git@gitea.example:2222/o/r", out,
                                                sizeof(out), &err),
                     0);
    assert_string_equal(out, "https://gitea.example/api/v1"); /* the ssh port is not the API's */
    assert_int_equal(vk_triggers_status_api_url(VK_TRIGGERS_GITEA, "http://10.0.0.5:3000/o/r", out,
                                                sizeof(out), &err),
                     0);
    assert_string_equal(out, "http://10.0.0.5:3000/api/v1");
    assert_int_equal(
        vk_triggers_status_api_url(VK_TRIGGERS_GITEA, "file:///srv/o/r", out, sizeof(out), &err),
        VK_EINVAL);
    assert_int_equal(
        vk_triggers_status_api_url(VK_TRIGGERS_GENERIC, "https://x/o/r", out, sizeof(out), &err),
        VK_EINVAL);
    assert_int_equal(vk_triggers_status_repo_path(VK_TRIGGERS_GITHUB,
                                                  "https://user:pw@github.com//o//r.git/", out,
                                                  sizeof(out), &err),
                     0);
    assert_string_equal(out, "o/r");
    /* Nothing that could change the request's path gets through. */
    const char *bad[] = {"https://github.com/o/..",      "https://github.com/o/r%2F..",
                         "https://github.com/only",      "https://github.com/o/r?x=/y/z",
                         "https://github.com/o/r n",     "https://git@hub@github.com/o/r",
                         "https://github.com/o/r#frag/x"};
    for (size_t i = 0; i < VK_ARRAY_LEN(bad); i++) {
        int rc = vk_triggers_status_repo_path(VK_TRIGGERS_GITHUB, bad[i], out, sizeof(out), &err);
        if (i == 3 || i == 6) { /* query and fragment are dropped, not part of the path */
            assert_int_equal(rc, 0);
            assert_string_equal(out, "o/r");
        } else if (rc == 0) {
            fail_msg("'%s' gave '%s'", bad[i], out);
        }
    }
}

static void test_bounds(void **state)
{
    (void)state;
    struct vk_triggers_status_req r;
    struct vk_err err = {0};
    char longname[300], longdesc[400];
    memset(longname, 'n', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    /* 140 bytes cut in the middle of a 3-byte character: the whole character goes. */
    memset(longdesc, 'd', 139);
    strcpy(longdesc + 139, "\xe2\x82\xac and more");
    struct vk_triggers_status s = {.provider = VK_TRIGGERS_BITBUCKET,
                                   .repo_url = "https://bitbucket.org/ws/slug",
                                   .token = "tok",
                                   .sha = SHA,
                                   .status = VK_STORE_CHAIN_PENDING,
                                   .workflow = longname,
                                   .description = longdesc};
    assert_int_equal(vk_triggers_status_build(&s, &r, &err), 0);
    json_t *b = body_of(&r);
    assert_int_equal(strlen(json_string_value(json_object_get(b, "description"))), 139);
    assert_true(strlen(json_string_value(json_object_get(b, "name"))) <=
                VK_TRIGGERS_STATUS_MAX_NAME);
    const char *key = json_string_value(json_object_get(b, "key"));
    assert_int_equal(strlen(key), VK_TRIGGERS_STATUS_MAX_KEY);
    assert_null(json_object_get(b, "url")); /* no link without a public URL */
    json_decref(b);
    vk_triggers_status_req_release(&r);

    s.token = "tok\r\nX-Injected: 1";
    assert_int_equal(vk_triggers_status_build(&s, &r, &err), VK_EINVAL);
    vk_triggers_status_req_release(&r);
    s.token = "tok";
    s.sha = "0123";
    assert_int_equal(vk_triggers_status_build(&s, &r, &err), VK_EINVAL);
    vk_triggers_status_req_release(&r);
    s.sha = SHA;
    s.provider = VK_TRIGGERS_GENERIC;
    assert_int_equal(vk_triggers_status_build(&s, &r, &err), VK_EINVAL);
    vk_triggers_status_req_release(&r);

    assert_int_equal(vk_triggers_status_backoff(1000, 1), 1000);
    assert_int_equal(vk_triggers_status_backoff(1000, 3), 4000);
    assert_int_equal(vk_triggers_status_backoff(1000, 40), VK_TRIGGERS_STATUS_MAX_BACKOFF_MS);
}

/* ---------------------------------------------------------------- The reporter */

static int64_t fake_now;
static int64_t clock_fn(void *ctx)
{
    (void)ctx;
    return fake_now;
}

/* A loopback port where nothing listens: every post fails to connect. */
static int dead_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    socklen_t len = sizeof(a);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static void test_retry_and_give_up(void **state)
{
    (void)state;
    struct vk_err err = {0};
    struct vk_store *s = NULL;
    struct vk_orch *o = NULL;
    struct vk_triggers_service *svc = NULL;
    assert_int_equal(vk_store_open("sqlite::memory:", &s, &err), 0);
    struct vk_orch_opts oo = {.no_reaper = true};
    assert_int_equal(vk_orch_new(s, &oo, &o, &err), 0);
    fake_now = 1000000;
    struct vk_triggers_opts to = {.store = s,
                                  .orch = o,
                                  .status_poll_ms = -1,
                                  .cron_interval_ms = -1,
                                  .now_fn = clock_fn,
                                  .status_retry_ms = 1000,
                                  .status_give_up_ms = 10000,
                                  .status_timeout_ms = 2000,
                                  .public_url = "http://ci.example/"};
    assert_int_equal(vk_triggers_service_new(&to, &svc, &err), 0);

    char api[64];
    snprintf(api, sizeof(api), "http://127.0.0.1:%d", dead_port());
    struct vk_store_repo repo = {.url = "https://github.com/o/r",
                                 .provider = "github",
                                 .status_token = "tok",
                                 .status_api_url = api};
    assert_int_equal(vk_store_tenant_ensure(s, "default", repo.tenant_id, &err), 0);
    assert_int_equal(vk_store_repo_create(s, &repo, &err), 0);
    struct vk_store_chain ch = {.commit_sha = SHA, .trigger = "push", .default_machine = "m"};
    memcpy(ch.tenant_id, repo.tenant_id, VK_UUID_LEN);
    memcpy(ch.repository_id, repo.id, VK_UUID_LEN);
    struct vk_store_fragment_spec sp = {.parent = -1, .run_script = "true"};
    assert_int_equal(vk_store_chain_create(s, &ch, &sp, 1, NULL, &err), 0);

    size_t ended = 99;
    int64_t n = 0;
    assert_int_equal(vk_triggers_status_run(svc, &ended, &err), 0);
    assert_int_equal(ended, 0); /* failed: kept for a retry */
    assert_int_equal(vk_store_status_backlog(s, &n, &err), 0);
    assert_int_equal(n, 1);
    /* Not due before the backoff. */
    fake_now += 999;
    assert_int_equal(vk_triggers_status_run(svc, &ended, &err), 0);
    assert_int_equal(ended, 0);
    fake_now += 1;
    assert_int_equal(vk_triggers_status_run(svc, &ended, &err), 0); /* second failure: 2 s */
    fake_now += 2000;
    assert_int_equal(vk_triggers_status_run(svc, &ended, &err), 0); /* third: 4 s */
    assert_int_equal(vk_store_status_backlog(s, &n, &err), 0);
    assert_int_equal(n, 1);
    /* 10 s after the first failure the status is given up. */
    fake_now += 7000;
    assert_int_equal(vk_triggers_status_run(svc, &ended, &err), 0);
    assert_int_equal(ended, 1);
    assert_int_equal(vk_store_status_backlog(s, &n, &err), 0);
    assert_int_equal(n, 0);
    struct vk_pool pool;
    vk_pool_init(&pool, 0);
    struct vk_store_chain got;
    assert_int_equal(vk_store_chain_get(s, ch.id, &pool, &got, NULL, NULL, &err), 0);
    assert_int_equal(got.status, VK_STORE_CHAIN_PENDING); /* the chain is untouched */
    vk_pool_release(&pool);

    /* A repository whose token was removed: its report is dropped at once. */
    assert_int_equal(vk_store_chain_create(s, &ch, &sp, 1, NULL, &err), 0);
    struct vk_store_repo_update u = {.set = VK_STORE_REPO_SET_STATUS_TOKEN};
    assert_int_equal(vk_store_repo_update(s, repo.id, &u, &err), 0);
    assert_int_equal(vk_triggers_status_run(svc, &ended, &err), 0);
    assert_int_equal(ended, 1);
    assert_int_equal(vk_store_status_backlog(s, &n, &err), 0);
    assert_int_equal(n, 0);

    vk_triggers_service_free(svc);
    vk_orch_free(o);
    vk_store_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_github),
        cmocka_unit_test(test_gitlab_gitea_bitbucket),
        cmocka_unit_test(test_derivation),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_retry_and_give_up),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
