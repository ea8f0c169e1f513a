/* Webhooks: signature verification for every provider and normalisation of every fixture. */
#include "vk_test.h"
#include "vulcan/triggers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SHA_A "6113728f27ae82c7b1a177c8d03f9e96e0adf246"
#define SHA_B "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c"
#define SHA_C "c4f1e2d3b4a5968778695a4b3c2d1e0f9a8b7c6d"
#define SECRET "It's a Secret to Everybody"

/* ---------------------------------------------------------------- Fixture loading */

struct fixture {
    struct vk_buf body;
    char *hdr_text;
    struct vk_triggers_header hdrs[16];
    struct vk_triggers_headers set;
};

static void fixture_load(struct fixture *f, const char *provider, const char *name)
{
    const char *src = getenv("VK_SOURCE_DIR");
    assert_non_null(src);
    char path[1024];
    struct vk_err err = {0};
    vk_buf_init(&f->body, VK_TRIGGERS_MAX_BODY);
    snprintf(path, sizeof(path), "%s/tests/fixtures/%s/%s.json", src, provider, name);
    if (vk_buf_read_file(&f->body, path, &err) != 0)
        fail_msg("%s: %s", path, err.msg);
    struct vk_buf h = VK_BUF_INIT(VK_MAX_SMALL);
    snprintf(path, sizeof(path), "%s/tests/fixtures/%s/%s.headers", src, provider, name);
    if (vk_buf_read_file(&h, path, &err) != 0)
        fail_msg("%s: %s", path, err.msg);
    f->hdr_text = vk_buf_take(&h, NULL);
    f->set.items = f->hdrs;
    f->set.n = 0;
    for (char *line = strtok(f->hdr_text, "\n"); line; line = strtok(NULL, "\n")) {
        char *colon = strchr(line, ':');
        assert_non_null(colon);
        *colon = '\0';
        assert_true(f->set.n < 16);
        f->hdrs[f->set.n].name = line;
        f->hdrs[f->set.n].value = colon + 2;
        f->set.n++;
    }
}

static void fixture_release(struct fixture *f)
{
    vk_buf_release(&f->body);
    vk_mem_free(f->hdr_text);
}

static struct vk_triggers_event *parse_fixture(enum vk_triggers_provider p, const char *provider,
                                               const char *name)
{
    struct fixture f;
    fixture_load(&f, provider, name);
    struct vk_triggers_event *ev = NULL;
    struct vk_err err = {0};
    if (vk_triggers_hook_parse(p, vk_triggers_header_kv, &f.set, f.body.data, f.body.len, &ev,
                               &err) != 0)
        fail_msg("%s/%s: %s", provider, name, err.msg);
    fixture_release(&f);
    return ev;
}

/* ---------------------------------------------------------------- Signatures */

static void test_sign_known_vector(void **state)
{
    (void)state;
    /* the example from GitHub's "Validating webhook deliveries" */
    char sig[128];
    assert_int_equal(
        vk_triggers_hook_sign(VK_TRIGGERS_GITHUB, "Hello, World!", 13, SECRET, sig, sizeof(sig)),
        0);
    assert_string_equal(sig,
                        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17");
    assert_int_equal(
        vk_triggers_hook_sign(VK_TRIGGERS_GITEA, "Hello, World!", 13, SECRET, sig, sizeof(sig)), 0);
    assert_string_equal(sig, "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17");
    assert_int_equal(vk_triggers_hook_sign(VK_TRIGGERS_GITHUB, "x", 1, SECRET, sig, 20),
                     VK_ETOOBIG);
    assert_int_equal(vk_triggers_hook_sign(VK_TRIGGERS_GITHUB, "x", 1, "", sig, sizeof(sig)),
                     VK_EINVAL);
}

struct sigcase {
    enum vk_triggers_provider p;
    const char *header;
    const char *prefix;
};

static const struct sigcase sigcases[] = {
    {VK_TRIGGERS_GITHUB, "X-Hub-Signature-256", "sha256="},
    {VK_TRIGGERS_GITEA, "X-Gitea-Signature", ""},
    {VK_TRIGGERS_BITBUCKET, "X-Hub-Signature", "sha256="},
    {VK_TRIGGERS_GENERIC, "X-Vulcan-Signature", "sha256="},
};

static int verify_with(enum vk_triggers_provider p, const char *name, const char *value,
                       const char *body, struct vk_err *err)
{
    struct vk_triggers_header h[2] = {{"Content-Type", "application/json"}, {name, value}};
    struct vk_triggers_headers set = {h, value ? 2 : 1};
    vk_err_clear(err);
    return vk_triggers_hook_verify(p, vk_triggers_header_kv, &set, body, strlen(body), SECRET, err);
}

static void test_verify_hmac_providers(void **state)
{
    (void)state;
    const char *body = "Hello, World!";
    const char *good_hex = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    const char *upper_hex = "757107EA0EB2509FC211221CCE984B8A37570B6D7586C22C46F4379C8B043E17";
    struct vk_err err;
    char v[256];
    for (size_t i = 0; i < VK_ARRAY_LEN(sigcases); i++) {
        const struct sigcase *c = &sigcases[i];
        /* correct (and upper-case hex), header name matched case-insensitively */
        snprintf(v, sizeof(v), "%s%s", c->prefix, good_hex);
        assert_int_equal(verify_with(c->p, c->header, v, body, &err), 0);
        char lower[64];
        snprintf(lower, sizeof(lower), "%s", c->header);
        for (char *q = lower; *q; q++)
            *q = (char)(*q >= 'A' && *q <= 'Z' ? *q + 32 : *q);
        assert_int_equal(verify_with(c->p, lower, v, body, &err), 0);
        snprintf(v, sizeof(v), "%s%s", c->prefix, upper_hex);
        assert_int_equal(verify_with(c->p, c->header, v, body, &err), 0);
        /* wrong: another body, one flipped digit, another secret */
        snprintf(v, sizeof(v), "%s%s", c->prefix, good_hex);
        assert_int_equal(verify_with(c->p, c->header, v, "Hello, World?", &err), VK_EPERM);
        assert_non_null(strstr(err.msg, "wrong signature"));
        v[strlen(v) - 1] = '6';
        assert_int_equal(verify_with(c->p, c->header, v, body, &err), VK_EPERM);
        /* missing */
        assert_int_equal(verify_with(c->p, c->header, NULL, body, &err), VK_EPERM);
        assert_non_null(strstr(err.msg, "missing"));
        assert_int_equal(verify_with(c->p, c->header, "", body, &err), VK_EPERM);
        /* malformed: odd / short hex length, non-hex, wrong prefix */
        snprintf(v, sizeof(v), "%s%.63s", c->prefix, good_hex);
        assert_int_equal(verify_with(c->p, c->header, v, body, &err), VK_EPERM);
        assert_non_null(strstr(err.msg, "malformed"));
        snprintf(v, sizeof(v), "%s%s0", c->prefix, good_hex);
        assert_int_equal(verify_with(c->p, c->header, v, body, &err), VK_EPERM);
        snprintf(v, sizeof(v), "%s%.63sg", c->prefix, good_hex);
        assert_int_equal(verify_with(c->p, c->header, v, body, &err), VK_EPERM);
        if (*c->prefix) {
            snprintf(v, sizeof(v), "sha1=%s", good_hex);
            assert_int_equal(verify_with(c->p, c->header, v, body, &err), VK_EPERM);
            assert_non_null(strstr(err.msg, "sha256="));
            assert_int_equal(verify_with(c->p, c->header, good_hex, body, &err), VK_EPERM);
        } else {
            snprintf(v, sizeof(v), "sha256=%s", good_hex);
            assert_int_equal(verify_with(c->p, c->header, v, body, &err), VK_EPERM);
        }
        /* the right signature in another provider's header does not count */
        snprintf(v, sizeof(v), "%s%s", c->prefix, good_hex);
        assert_int_equal(verify_with(c->p, "X-Other-Signature", v, body, &err), VK_EPERM);
    }
}

static void test_verify_gitlab_token(void **state)
{
    (void)state;
    struct vk_err err;
    assert_int_equal(verify_with(VK_TRIGGERS_GITLAB, "X-Gitlab-Token", SECRET, "{}", &err), 0);
    assert_int_equal(verify_with(VK_TRIGGERS_GITLAB, "x-gitlab-token", SECRET, "{}", &err), 0);
    assert_int_equal(verify_with(VK_TRIGGERS_GITLAB, "X-Gitlab-Token", "It's a Secret", "{}", &err),
                     VK_EPERM);
    assert_int_equal(
        verify_with(VK_TRIGGERS_GITLAB, "X-Gitlab-Token", SECRET " and more", "{}", &err),
        VK_EPERM);
    assert_int_equal(
        verify_with(VK_TRIGGERS_GITLAB, "X-Gitlab-Token", "it's a secret to everybody", "{}", &err),
        VK_EPERM);
    assert_int_equal(verify_with(VK_TRIGGERS_GITLAB, "X-Gitlab-Token", NULL, "{}", &err), VK_EPERM);
    assert_int_equal(verify_with(VK_TRIGGERS_GITLAB, "X-Gitlab-Token", "", "{}", &err), VK_EPERM);
    /* an HMAC where a token is expected is just a wrong token */
    assert_int_equal(
        verify_with(VK_TRIGGERS_GITLAB, "X-Hub-Signature-256",
                    "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
                    "Hello, World!", &err),
        VK_EPERM);
}

static void test_verify_no_secret(void **state)
{
    (void)state;
    struct vk_triggers_header h[1] = {{"X-Gitlab-Token", ""}};
    struct vk_triggers_headers set = {h, 1};
    struct vk_err err = {0};
    assert_int_equal(
        vk_triggers_hook_verify(VK_TRIGGERS_GITLAB, vk_triggers_header_kv, &set, "{}", 2, "", &err),
        VK_EPERM);
    assert_int_equal(vk_triggers_hook_verify(VK_TRIGGERS_GITHUB, vk_triggers_header_kv, &set, "{}",
                                             2, NULL, &err),
                     VK_EPERM);
    assert_non_null(strstr(err.msg, "secret"));
}

/* Every fixture verifies with the signature computed for its own bytes. */
static void test_verify_fixtures(void **state)
{
    (void)state;
    static const struct {
        enum vk_triggers_provider p;
        const char *dir, *name, *header;
    } all[] = {
        {VK_TRIGGERS_GITHUB, "github", "push", "X-Hub-Signature-256"},
        {VK_TRIGGERS_GITEA, "gitea", "push", "X-Gitea-Signature"},
        {VK_TRIGGERS_BITBUCKET, "bitbucket", "repo_push", "X-Hub-Signature"},
        {VK_TRIGGERS_GENERIC, "generic", "push", "X-Vulcan-Signature"},
        {VK_TRIGGERS_GITLAB, "gitlab", "push", "X-Gitlab-Token"},
    };
    for (size_t i = 0; i < VK_ARRAY_LEN(all); i++) {
        struct fixture f;
        fixture_load(&f, all[i].dir, all[i].name);
        char sig[128];
        assert_int_equal(
            vk_triggers_hook_sign(all[i].p, f.body.data, f.body.len, "s3cr3t", sig, sizeof(sig)),
            0);
        for (size_t k = 0; k < f.set.n; k++)
            if (strcmp(f.hdrs[k].name, all[i].header) == 0)
                f.hdrs[k].value = sig;
        struct vk_err err = {0};
        assert_int_equal(vk_triggers_hook_verify(all[i].p, vk_triggers_header_kv, &f.set,
                                                 f.body.data, f.body.len, "s3cr3t", &err),
                         0);
        /* one byte changed in the body */
        f.body.data[f.body.len / 2] ^= 1;
        assert_int_equal(vk_triggers_hook_verify(all[i].p, vk_triggers_header_kv, &f.set,
                                                 f.body.data, f.body.len, "s3cr3t", &err),
                         all[i].p == VK_TRIGGERS_GITLAB ? 0 : VK_EPERM);
        fixture_release(&f);
    }
}

/* ---------------------------------------------------------------- Normalisation */

static bool has_url(const struct vk_triggers_event *ev, const char *u)
{
    for (size_t i = 0; i < ev->nrepo_urls; i++)
        if (strcmp(ev->repo_urls[i], u) == 0)
            return true;
    return false;
}

static void assert_paths(const struct vk_triggers_event *ev, const char *const *want, size_t n)
{
    assert_true(ev->paths_complete);
    assert_int_equal(ev->npaths, n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(ev->paths[i], want[i]);
}

static void test_github_push(void **state)
{
    (void)state;
    struct vk_triggers_event *ev = parse_fixture(VK_TRIGGERS_GITHUB, "github", "push");
    assert_int_equal(ev->provider, VK_TRIGGERS_GITHUB);
    assert_int_equal(ev->kind, VK_TRIGGERS_EV_PUSH);
    assert_string_equal(ev->event_name, "push");
    assert_string_equal(ev->delivery_id, "72d3162e-cc78-11e3-81ab-4c9367dc0958");
    assert_string_equal(ev->ref, "refs/heads/main");
    assert_string_equal(ev->branch, "main");
    assert_null(ev->tag);
    assert_string_equal(ev->after, SHA_A);
    assert_string_equal(ev->before, SHA_C);
    assert_string_equal(ev->commit_sha, SHA_A);
    assert_false(ev->deleted);
    assert_false(ev->created);
    assert_string_equal(ev->sender, "octocat");
    assert_string_equal(ev->repo_name, "octo-org/hello-vulcan");
    assert_int_equal(ev->nrepo_urls, 4);
    assert_true(has_url(ev, "https://github.com/octo-org/hello-vulcan.git"));
    assert_true(has_url(ev, "https://github.com/octo-org/hello-vulcan"));
    assert_true(has_url(ev, "git@github.com:octo-org/hello-vulcan.git"));
    assert_true(has_url(ev, "git://github.com/octo-org/hello-vulcan.git"));
    static const char *const paths[] = {".vulcan/ci.kdl", "README.md", "docs/old.md", "src/new.c",
                                        "src/parse.c"};
    assert_paths(ev, paths, VK_ARRAY_LEN(paths));
    assert_true(vk_triggers_event_matches_repo(ev, "ssh://git@GitHub.com/octo-org/hello-vulcan"));
    assert_false(vk_triggers_event_matches_repo(ev, "https://github.com/octo-org/other"));
    struct vk_wf_event wf;
    assert_int_equal(vk_triggers_event_to_wf(ev, &wf), 0);
    assert_int_equal(wf.type, VK_WF_TRIG_PUSH);
    assert_string_equal(wf.branch, "main");
    assert_int_equal(wf.npaths, 5);
    assert_string_equal(wf.paths[1], "README.md");
    vk_triggers_event_free(ev);
}

static void test_github_push_deleted(void **state)
{
    (void)state;
    struct vk_triggers_event *ev = parse_fixture(VK_TRIGGERS_GITHUB, "github", "push_deleted");
    assert_int_equal(ev->kind, VK_TRIGGERS_EV_PUSH);
    assert_string_equal(ev->branch, "feature/old");
    assert_true(ev->deleted);
    assert_null(ev->commit_sha);
    assert_string_equal(ev->before, SHA_A);
    assert_false(ev->paths_complete);
    assert_null(ev->paths);
    struct vk_wf_event wf;
    assert_int_equal(vk_triggers_event_to_wf(ev, &wf), VK_ENOTFOUND);
    vk_triggers_event_free(ev);
}

static void test_github_tag(void **state)
{
    (void)state;
    struct vk_triggers_event *ev = parse_fixture(VK_TRIGGERS_GITHUB, "github", "tag");
    assert_int_equal(ev->kind, VK_TRIGGERS_EV_TAG);
    assert_string_equal(ev->tag, "v1.2.0");
    assert_string_equal(ev->ref, "refs/tags/v1.2.0");
    assert_null(ev->branch);
    assert_true(ev->created);
    assert_string_equal(ev->commit_sha, SHA_A);
    assert_false(ev->paths_complete);
    struct vk_wf_event wf;
    assert_int_equal(vk_triggers_event_to_wf(ev, &wf), 0);
    assert_int_equal(wf.type, VK_WF_TRIG_TAG);
    assert_string_equal(wf.tag, "v1.2.0");
    assert_null(wf.paths);
    vk_triggers_event_free(ev);
}

static void test_github_pull_request(void **state)
{
    (void)state;
    struct vk_triggers_event *ev =
        parse_fixture(VK_TRIGGERS_GITHUB, "github", "pull_request_opened");
    assert_int_equal(ev->kind, VK_TRIGGERS_EV_PULL_REQUEST);
    assert_int_equal(ev->pr_number, 42);
    assert_string_equal(ev->pr_action, "opened");
    assert_string_equal(ev->pr_head_sha, SHA_B);
    assert_string_equal(ev->commit_sha, SHA_B);
    assert_string_equal(ev->pr_head_branch, "feature/fast");
    assert_string_equal(ev->pr_base_branch, "main");
    assert_string_equal(ev->branch, "main");
    assert_null(ev->before);
    assert_false(ev->paths_complete);
    struct vk_wf_event wf;
    assert_int_equal(vk_triggers_event_to_wf(ev, &wf), 0);
    assert_int_equal(wf.type, VK_WF_TRIG_PULL_REQUEST);
    assert_string_equal(wf.branch, "main");
    assert_string_equal(wf.action, "opened");
    assert_null(wf.paths);
    vk_triggers_event_free(ev);

    ev = parse_fixture(VK_TRIGGERS_GITHUB, "github", "pull_request_synchronize");
    assert_string_equal(ev->pr_action, "synchronize");
    assert_string_equal(ev->before, SHA_C);
    assert_string_equal(ev->after, SHA_B);
    assert_string_equal(ev->delivery_id, "a1b2c3d4-0000-11f0-8000-000000000002");
    vk_triggers_event_free(ev);
}

static void test_github_ping(void **state)
{
    (void)state;
    struct vk_triggers_event *ev = parse_fixture(VK_TRIGGERS_GITHUB, "github", "ping");
    assert_int_equal(ev->kind, VK_TRIGGERS_EV_PING);
    assert_true(has_url(ev, "https://github.com/octo-org/hello-vulcan.git"));
    assert_string_equal(ev->delivery_id, "b1c2d3e4-0000-11f0-8000-000000000003");
    struct vk_wf_event wf;
    assert_int_equal(vk_triggers_event_to_wf(ev, &wf), VK_ENOTFOUND);
    vk_triggers_event_free(ev);
}

static void test_gitlab(void **state)
{
    (void)state;
    struct vk_triggers_event *ev = parse_fixture(VK_TRIGGERS_GITLAB, "gitlab", "push");
    assert_int_equal(ev->kind, VK_TRIGGERS_EV_PUSH);
    assert_string_equal(ev->branch, "main");
    assert_string_equal(ev->after, SHA_A);
    assert_string_equal(ev->before, SHA_C);
    assert_string_equal(ev->sender, "jsmith");
    assert_string_equal(ev->delivery_id, "13792a34-cac6-4fda-95a8-c58e00a3954e");
    assert_string_equal(ev->repo_name, "platform/hello-vulcan");
    assert_true(has_url(ev, "https://gitlab.example.com/platform/hello-vulcan.git"));
    assert_true(has_url(ev, "git@gitlab.example.com:platform/hello-vulcan.git"));
    assert_true(has_url(ev, "https://gitlab.example.com/platform/hello-vulcan"));
    static const char *const paths[] = {".vulcan/ci.kdl", "README.md", "docs/old.md", "src/new.c",
                                        "src/parse.c"};
    assert_paths(ev, paths, VK_ARRAY_LEN(paths));
    vk_triggers_event_free(ev);

    ev = parse_fixture(VK_TRIGGERS_GITLAB, "gitlab", "tag_push");
    assert_int_equal(ev->kind, VK_TRIGGERS_EV_TAG);
    assert_string_equal(ev->tag, "v1.0.0");
    assert_true(ev->created);
    assert_string_equal(ev->commit_sha, SHA_A);
    vk_triggers_event_free(ev);

    ev = parse_fixture(VK_TRIGGERS_GITLAB, "gitlab", "merge_request");
    assert_int_equal(ev->kind, VK_TRIGGERS_EV_PULL_REQUEST);
    assert_int_equal(ev->pr_number, 7);
    assert_string_equal(ev->pr_action, "synchronize"); /* update with oldrev */
    assert_string_equal(ev->pr_head_sha, SHA_B);
    assert_string_equal(ev->pr_head_branch, "feature/fast");
    assert_string_equal(ev->pr_base_branch, "main");
    assert_string_equal(ev->branch, "main");
    assert_string_equal(ev->before, SHA_C);
    assert_string_equal(ev->sender, "root");
    vk_triggers_event_free(ev);
}

static void test_gitea(void **state)
{
    (void)state;
    struct vk_triggers_event *ev = parse_fixture(VK_TRIGGERS_GITEA, "gitea", "push");
    assert_int_equal(ev->kind, VK_TRIGGERS_EV_PUSH);
    assert_string_equal(ev->branch, "develop");
    assert_string_equal(ev->delivery_id, "f6266f16-1bf3-46a5-9ea4-602e06ead473");
    assert_string_equal(ev->sender, "gitea");
    assert_true(has_url(ev, "ssh://git@git.example.org:2222/gitea/webhooks.git"));
    static const char *const paths[] = {".vulcan/ci.kdl", "Makefile"};
    assert_paths(ev, paths, 2);
    vk_triggers_event_free(ev);

    ev = parse_fixture(VK_TRIGGERS_GITEA, "gitea", "pull_request");
    assert_int_equal(ev->kind, VK_TRIGGERS_EV_PULL_REQUEST);
    assert_int_equal(ev->pr_number, 3);
    assert_string_equal(ev->pr_action, "synchronize"); /* Gitea's "synchronized" */
    assert_string_equal(ev->pr_base_branch, "main");
    assert_string_equal(ev->pr_head_branch, "feature");
    assert_string_equal(ev->commit_sha, SHA_B);
    vk_triggers_event_free(ev);
}

static void test_bitbucket(void **state)
{
    (void)state;
    struct vk_triggers_event *ev = parse_fixture(VK_TRIGGERS_BITBUCKET, "bitbucket", "repo_push");
    assert_int_equal(ev->kind, VK_TRIGGERS_EV_PUSH);
    assert_string_equal(ev->ref, "refs/heads/main");
    assert_string_equal(ev->branch, "main");
    assert_string_equal(ev->after, SHA_A);
    assert_string_equal(ev->before, SHA_C);
    assert_string_equal(ev->sender, "jdoe");
    assert_string_equal(ev->delivery_id, "e1b5ab9b-5c1b-4c8b-9b0b-0f5ab5f6c1d2");
    assert_false(ev->paths_complete);
    assert_true(vk_triggers_event_matches_repo(ev, "git@bitbucket.org:team/hello-vulcan.git"));
    vk_triggers_event_free(ev);

    ev = parse_fixture(VK_TRIGGERS_BITBUCKET, "bitbucket", "pullrequest_created");
    assert_int_equal(ev->kind, VK_TRIGGERS_EV_PULL_REQUEST);
    assert_int_equal(ev->pr_number, 12);
    assert_string_equal(ev->pr_action, "opened");
    assert_string_equal(ev->pr_head_sha, "0d1a26e67d8f"); /* abbreviated by Bitbucket */
    assert_string_equal(ev->pr_head_branch, "feature/fast");
    assert_string_equal(ev->pr_base_branch, "main");
    vk_triggers_event_free(ev);
}

static void test_generic(void **state)
{
    (void)state;
    struct vk_triggers_event *ev = parse_fixture(VK_TRIGGERS_GENERIC, "generic", "push");
    assert_int_equal(ev->kind, VK_TRIGGERS_EV_PUSH);
    assert_string_equal(ev->event_name, "push");
    assert_string_equal(ev->branch, "main");
    assert_string_equal(ev->after, SHA_A);
    assert_string_equal(ev->sender, "deploy-bot");
    assert_string_equal(ev->delivery_id, "0191f3a2-7c4b-7d2e-9a10-3b5c6d7e8f90");
    static const char *const paths[] = {".vulcan/ci.kdl", "src/parse.c"};
    assert_paths(ev, paths, 2);
    vk_triggers_event_free(ev);
}

/* ---------------------------------------------------------------- Bad input */

static int parse_str(enum vk_triggers_provider p, const char *event, const char *body,
                     struct vk_triggers_event **ev, struct vk_err *err)
{
    struct vk_triggers_header h[2] = {
        {p == VK_TRIGGERS_GITLAB ? "X-Gitlab-Event" : "X-GitHub-Event", event},
        {"X-GitHub-Delivery", "d-1"}};
    struct vk_triggers_headers set = {h, event ? 2 : 0};
    vk_err_clear(err);
    return vk_triggers_hook_parse(p, vk_triggers_header_kv, &set, body, strlen(body), ev, err);
}

#define REPO "\"repository\":{\"clone_url\":\"https://h/o/r.git\"}"

static void test_malformed(void **state)
{
    (void)state;
    struct vk_triggers_event *ev = NULL;
    struct vk_err err;
    /* not JSON, not an object */
    assert_int_equal(parse_str(VK_TRIGGERS_GITHUB, "push", "{\"ref\":", &ev, &err), VK_EINVAL);
    assert_null(ev);
    assert_non_null(strstr(err.msg, "not valid JSON"));
    assert_int_equal(parse_str(VK_TRIGGERS_GITHUB, "push", "[1,2]", &ev, &err), VK_EINVAL);
    assert_non_null(strstr(err.msg, "JSON object"));
    assert_int_equal(parse_str(VK_TRIGGERS_GITHUB, "push", "\"push\"", &ev, &err), VK_EINVAL);
    assert_int_equal(parse_str(VK_TRIGGERS_GITHUB, "push", "", &ev, &err), VK_EINVAL);
    /* no event header */
    assert_int_equal(parse_str(VK_TRIGGERS_GITHUB, NULL, "{}", &ev, &err), VK_EINVAL);
    assert_non_null(strstr(err.msg, "X-GitHub-Event"));
    /* missing fields are named */
    assert_int_equal(parse_str(VK_TRIGGERS_GITHUB, "push", "{" REPO "}", &ev, &err), VK_EINVAL);
    assert_string_equal(err.msg, "missing field 'ref'");
    assert_int_equal(parse_str(VK_TRIGGERS_GITHUB, "push",
                               "{\"ref\":\"refs/heads/x\",\"before\":\"" SHA_A "\"}", &ev, &err),
                     VK_EINVAL);
    assert_string_equal(err.msg, "missing field 'repository.clone_url'");
    assert_int_equal(parse_str(VK_TRIGGERS_GITHUB, "push",
                               "{\"ref\":\"refs/heads/x\",\"before\":\"" SHA_A "\"," REPO "}", &ev,
                               &err),
                     VK_EINVAL);
    assert_string_equal(err.msg, "missing field 'after'");
    /* wrong types */
    assert_int_equal(parse_str(VK_TRIGGERS_GITHUB, "push", "{\"ref\":5," REPO "}", &ev, &err),
                     VK_EINVAL);
    assert_string_equal(err.msg, "field 'ref' must be a string");
    assert_int_equal(parse_str(VK_TRIGGERS_GITHUB, "push",
                               "{\"ref\":\"refs/heads/x\",\"before\":\"xyz\",\"after\":\"" SHA_A
                               "\"," REPO "}",
                               &ev, &err),
                     VK_EINVAL);
    assert_non_null(strstr(err.msg, "'before' is not a commit id"));
    assert_int_equal(parse_str(VK_TRIGGERS_GITHUB, "push",
                               "{\"ref\":\"main\",\"before\":\"" SHA_C "\",\"after\":\"" SHA_A
                               "\"," REPO "}",
                               &ev, &err),
                     VK_EINVAL);
    assert_non_null(strstr(err.msg, "not a full ref"));
    assert_int_equal(parse_str(VK_TRIGGERS_GITHUB, "pull_request",
                               "{\"action\":\"opened\",\"number\":\"1\"," REPO "}", &ev, &err),
                     VK_EINVAL);
    assert_string_equal(err.msg, "field 'number' must be a non-negative integer");
    assert_int_equal(parse_str(VK_TRIGGERS_GITHUB, "push",
                               "{\"ref\":\"refs/heads/x\",\"before\":\"" SHA_C
                               "\",\"after\":\"" SHA_A "\",\"commits\":{}," REPO "}",
                               &ev, &err),
                     VK_EINVAL);
    assert_string_equal(err.msg, "field 'commits' must be an array");
    assert_int_equal(parse_str(VK_TRIGGERS_GITHUB, "push",
                               "{\"ref\":\"refs/heads/x\",\"before\":\"" SHA_C
                               "\",\"after\":\"" SHA_A "\",\"commits\":[{\"added\":[1]}]," REPO "}",
                               &ev, &err),
                     VK_EINVAL);
    assert_non_null(strstr(err.msg, "commits[].added"));
    /* control characters */
    assert_int_equal(parse_str(VK_TRIGGERS_GITHUB, "push",
                               "{\"ref\":\"refs/heads/a\\nb\",\"before\":\"" SHA_C
                               "\",\"after\":\"" SHA_A "\"," REPO "}",
                               &ev, &err),
                     VK_EINVAL);
    assert_non_null(strstr(err.msg, "control character"));
    /* GitLab: a Tag Push Hook whose ref is a branch */
    assert_int_equal(parse_str(VK_TRIGGERS_GITLAB, "Tag Push Hook",
                               "{\"ref\":\"refs/heads/x\",\"before\":\"" SHA_C
                               "\",\"after\":\"" SHA_A
                               "\",\"project\":{\"git_http_url\":\"https://h/g/p.git\"}}",
                               &ev, &err),
                     VK_EINVAL);
    /* events we do not act on still parse */
    assert_int_equal(parse_str(VK_TRIGGERS_GITHUB, "issues", "{\"action\":\"opened\"}", &ev, &err),
                     0);
    assert_int_equal(ev->kind, VK_TRIGGERS_EV_OTHER);
    struct vk_wf_event wf;
    assert_int_equal(vk_triggers_event_to_wf(ev, &wf), VK_ENOTFOUND);
    vk_triggers_event_free(ev);
    ev = NULL;
    assert_null(ev);
}

static void test_oversized(void **state)
{
    (void)state;
    struct vk_triggers_event *ev = NULL;
    struct vk_err err;
    /* a ref one byte over the cap */
    size_t n = VK_TRIGGERS_MAX_REF + 1;
    char *big = malloc(n + 512);
    assert_non_null(big);
    int off = sprintf(big, "{" REPO ",\"before\":\"" SHA_C "\",\"after\":\"" SHA_A
                           "\",\"ref\":\"refs/heads/");
    memset(big + off, 'a', n - 11);
    strcpy(big + off + n - 11, "\"}");
    assert_int_equal(parse_str(VK_TRIGGERS_GITHUB, "push", big, &ev, &err), VK_ETOOBIG);
    assert_non_null(strstr(err.msg, "field 'ref' is too long"));
    /* exactly at the cap is fine */
    strcpy(big + off + n - 12, "\"}");
    assert_int_equal(parse_str(VK_TRIGGERS_GITHUB, "push", big, &ev, &err), 0);
    assert_int_equal(strlen(ev->ref), VK_TRIGGERS_MAX_REF);
    vk_triggers_event_free(ev);
    free(big);

    /* a body over the cap is refused before parsing */
    struct vk_triggers_header h[1] = {{"X-GitHub-Event", "push"}};
    struct vk_triggers_headers set = {h, 1};
    assert_int_equal(vk_triggers_hook_parse(VK_TRIGGERS_GITHUB, vk_triggers_header_kv, &set, "{}",
                                            (size_t)VK_TRIGGERS_MAX_BODY + 1, &ev, &err),
                     VK_ETOOBIG);

    /* a too long delivery header */
    char longhdr[VK_TRIGGERS_MAX_TEXT + 2];
    memset(longhdr, 'x', sizeof(longhdr) - 1);
    longhdr[sizeof(longhdr) - 1] = '\0';
    struct vk_triggers_header h2[2] = {{"X-GitHub-Event", "ping"}, {"X-GitHub-Delivery", longhdr}};
    struct vk_triggers_headers set2 = {h2, 2};
    assert_int_equal(vk_triggers_hook_parse(VK_TRIGGERS_GITHUB, vk_triggers_header_kv, &set2, "{}",
                                            2, &ev, &err),
                     VK_ETOOBIG);
}

static void test_github_truncated_commits(void **state)
{
    (void)state;
    /* 20 commits: GitHub may have cut the list, so paths are not complete */
    char body[8192];
    int n = sprintf(body, "{" REPO ",\"ref\":\"refs/heads/main\",\"before\":\"" SHA_C
                          "\",\"after\":\"" SHA_A "\",\"commits\":[");
    for (int i = 0; i < 20; i++)
        n += sprintf(body + n, "%s{\"added\":[\"f%d\"],\"modified\":[],\"removed\":[]}",
                     i ? "," : "", i);
    strcpy(body + n, "]}");
    struct vk_triggers_event *ev = NULL;
    struct vk_err err;
    assert_int_equal(parse_str(VK_TRIGGERS_GITHUB, "push", body, &ev, &err), 0);
    assert_false(ev->paths_complete);
    assert_null(ev->paths);
    struct vk_wf_event wf;
    assert_int_equal(vk_triggers_event_to_wf(ev, &wf), 0);
    assert_null(wf.paths);
    /* the lead computes them with git and stores them */
    const char *const computed[] = {"z.c", "a.c", "z.c"};
    assert_int_equal(vk_triggers_event_set_paths(ev, computed, 3, &err), 0);
    assert_true(ev->paths_complete);
    assert_int_equal(ev->npaths, 2);
    assert_string_equal(ev->paths[0], "a.c");
    assert_int_equal(vk_triggers_event_to_wf(ev, &wf), 0);
    assert_int_equal(wf.npaths, 2);
    vk_triggers_event_free(ev);
}

static void test_generic_variants(void **state)
{
    (void)state;
    struct vk_triggers_event *ev = NULL;
    struct vk_err err;
    struct vk_triggers_headers none = {NULL, 0};
    const char *tag = "{\"event\":\"tag\",\"ref\":\"v2.0\",\"after\":\"" SHA_A
                      "\",\"repository\":{\"url\":\"/srv/git/r.git\"}}";
    assert_int_equal(vk_triggers_hook_parse(VK_TRIGGERS_GENERIC, vk_triggers_header_kv, &none, tag,
                                            strlen(tag), &ev, &err),
                     0);
    assert_int_equal(ev->kind, VK_TRIGGERS_EV_TAG);
    assert_string_equal(ev->tag, "v2.0");
    assert_true(ev->created);
    assert_null(ev->delivery_id);
    vk_triggers_event_free(ev);
    const char *pr = "{\"event\":\"pull_request\",\"repository\":{\"url\":\"https://h/r\"},"
                     "\"pull_request\":{\"number\":5,\"action\":\"opened\",\"head_sha\":\"" SHA_B
                     "\",\"base_branch\":\"main\"}}";
    assert_int_equal(vk_triggers_hook_parse(VK_TRIGGERS_GENERIC, vk_triggers_header_kv, &none, pr,
                                            strlen(pr), &ev, &err),
                     0);
    assert_int_equal(ev->pr_number, 5);
    assert_string_equal(ev->branch, "main");
    vk_triggers_event_free(ev);
    const char *bad = "{\"event\":\"push\",\"ref\":\"refs/heads/x\",\"after\":\"" SHA_A "\"}";
    assert_int_equal(vk_triggers_hook_parse(VK_TRIGGERS_GENERIC, vk_triggers_header_kv, &none, bad,
                                            strlen(bad), &ev, &err),
                     VK_EINVAL);
    assert_string_equal(err.msg, "missing field 'repository.url'");
    const char *noev = "{\"ref\":\"refs/heads/x\"}";
    assert_int_equal(vk_triggers_hook_parse(VK_TRIGGERS_GENERIC, vk_triggers_header_kv, &none, noev,
                                            strlen(noev), &ev, &err),
                     VK_EINVAL);
    assert_string_equal(err.msg, "missing field 'event'");
}

static void test_bitbucket_delivery_fallback(void **state)
{
    (void)state;
    const char *body =
        "{\"repository\":{\"links\":{\"html\":{\"href\":\"https://bitbucket.org/t/r\"}}},"
        "\"push\":{\"changes\":[{\"new\":null,\"old\":{\"type\":\"tag\",\"name\":"
        "\"v1\",\"target\":{\"hash\":\"" SHA_A "\"}},\"closed\":true}]}}";
    struct vk_triggers_header h[2] = {{"X-Event-Key", "repo:push"}, {"X-Hook-UUID", "{hook-1}"}};
    struct vk_triggers_headers set = {h, 2};
    struct vk_triggers_event *ev = NULL;
    struct vk_err err;
    assert_int_equal(vk_triggers_hook_parse(VK_TRIGGERS_BITBUCKET, vk_triggers_header_kv, &set,
                                            body, strlen(body), &ev, &err),
                     0);
    assert_int_equal(ev->kind, VK_TRIGGERS_EV_TAG);
    assert_true(ev->deleted);
    assert_string_equal(ev->tag, "v1");
    assert_non_null(ev->delivery_id);
    assert_int_equal(strncmp(ev->delivery_id, "{hook-1}:", 9), 0);
    assert_int_equal(strlen(ev->delivery_id), 9 + 32);
    vk_triggers_event_free(ev);
}

static void test_provider_names(void **state)
{
    (void)state;
    enum vk_triggers_provider p;
    assert_int_equal(vk_triggers_provider_parse("gitlab", &p), 0);
    assert_int_equal(p, VK_TRIGGERS_GITLAB);
    assert_int_equal(vk_triggers_provider_parse("GitLab", &p), VK_EINVAL);
    assert_string_equal(vk_triggers_provider_name(VK_TRIGGERS_BITBUCKET), "bitbucket");
    assert_string_equal(vk_triggers_kind_name(VK_TRIGGERS_EV_PULL_REQUEST), "pull_request");
}

/* Allocation failures anywhere in parsing are reported, never crash or leak. */
static void test_alloc_failures(void **state)
{
    (void)state;
    struct fixture f;
    fixture_load(&f, "github", "push");
    for (unsigned long n = 1; n < 200; n++) {
        struct vk_triggers_event *ev = NULL;
        struct vk_err err = {0};
        vk_mem_fail_after(n);
        int rc = vk_triggers_hook_parse(VK_TRIGGERS_GITHUB, vk_triggers_header_kv, &f.set,
                                        f.body.data, f.body.len, &ev, &err);
        vk_mem_fail_after(0);
        if (rc == 0) {
            assert_int_equal(ev->npaths, 5);
            vk_triggers_event_free(ev);
            break;
        }
        assert_int_equal(rc, VK_ENOMEM);
        assert_null(ev);
    }
    fixture_release(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sign_known_vector),
        cmocka_unit_test(test_verify_hmac_providers),
        cmocka_unit_test(test_verify_gitlab_token),
        cmocka_unit_test(test_verify_no_secret),
        cmocka_unit_test(test_verify_fixtures),
        cmocka_unit_test(test_github_push),
        cmocka_unit_test(test_github_push_deleted),
        cmocka_unit_test(test_github_tag),
        cmocka_unit_test(test_github_pull_request),
        cmocka_unit_test(test_github_ping),
        cmocka_unit_test(test_gitlab),
        cmocka_unit_test(test_gitea),
        cmocka_unit_test(test_bitbucket),
        cmocka_unit_test(test_generic),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_oversized),
        cmocka_unit_test(test_github_truncated_commits),
        cmocka_unit_test(test_generic_variants),
        cmocka_unit_test(test_bitbucket_delivery_fallback),
        cmocka_unit_test(test_provider_names),
        cmocka_unit_test(test_alloc_failures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
