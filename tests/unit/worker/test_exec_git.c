/*
 * Executor checkout: a bare repository made by the test is checked out through
 * the mirror cache; the second checkout reuses the mirror (no clone, no
 * fetch); a new commit makes it fetch; branch heads; bad commits and hostile
 * inputs give clear errors; concurrent checkouts of one repository.
 */
#include "test_exec_common.h"

#include <pthread.h>

static char g_origin[400]; /* bare repository */
static char g_url[520];    /* file:// URL of it */
static char g_sha1[65], g_sha2[65];

#define sh vk_test_sh_status

static void read_line(const char *cmd, char *out, size_t cap)
{
    FILE *p = popen(cmd, "r");
    out[0] = '\0';
    if (p && fgets(out, (int)cap, p))
        out[strcspn(out, "\n")] = '\0';
    if (p)
        pclose(p);
}

#define GITC "git -c user.name=t -c user.email=t@example.com -c init.defaultBranch=main"

static int setup(void **state)
{
    if (env_setup(state) != 0)
        return -1;
    snprintf(g_origin, sizeof g_origin, "%s/origin.git", g_root);
    snprintf(g_url, sizeof g_url, "file://%s", g_origin);
    char src[400];
    snprintf(src, sizeof src, "%s/src", g_root);
    if (sh(GITC " init -q --bare %s && " GITC
                " init -q %s && cd %s && echo hello > hello.txt && " GITC " add . && " GITC
                " commit -qm one && " GITC " push -q %s main",
           g_origin, src, src, g_origin) != 0)
        return -1;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "git -C %s rev-parse HEAD", src);
    read_line(cmd, g_sha1, sizeof g_sha1);
    return strlen(g_sha1) == 40 ? 0 : -1;
}

static void add_second_commit(void)
{
    char src[400], cmd[600];
    snprintf(src, sizeof src, "%s/src", g_root);
    assert_int_equal(sh("cd %s && echo two > two.txt && " GITC " add . && " GITC
                        " commit -qm two && " GITC " push -q %s main",
                        src, g_origin),
                     0);
    snprintf(cmd, sizeof cmd, "git -C %s rev-parse HEAD", src);
    read_line(cmd, g_sha2, sizeof g_sha2);
    assert_int_equal(strlen(g_sha2), 40);
}

static void mirror_path(char *out, size_t cap)
{
    char hex[65];
    assert_int_equal(vk_sha256_hex(g_url, strlen(g_url), hex), 0);
    snprintf(out, cap, "%s/%s.git", g_env.mirror_dir, hex);
}

static void test_checkout_and_mirror_reuse(void **state)
{
    (void)state;
    struct vk_exec_spec s = base_spec("git1", "cat hello.txt\ngit rev-parse HEAD\n");
    s.repository_url = g_url;
    s.commit_sha = g_sha1;
    struct collected c;
    struct vk_exec_result r;
    assert_int_equal(run(&s, &c, &r), 0);
    assert_int_equal(r.exit_code, 0);
    char want[200];
    snprintf(want, sizeof want, "hello\n%s\n", g_sha1);
    assert_non_null(strstr(outs(&c), want));
    assert_non_null(strstr(outs(&c), "[vulcan] checkout file://"));
    assert_non_null(strstr(outs(&c), "[vulcan] checkout done: "));
    assert_false(path_exists(r.workspace));
    int64_t first = r.checkout_ms;
    vk_buf_release(&c.b);

    char mirror[600], fetch_head[700];
    mirror_path(mirror, sizeof mirror);
    struct stat st1, st2;
    assert_int_equal(stat(mirror, &st1), 0);
    snprintf(fetch_head, sizeof fetch_head, "%s/FETCH_HEAD", mirror);

    /* Second checkout of the same commit: same mirror directory, no fetch, faster. */
    s.fragment_id = "git2";
    assert_int_equal(run(&s, &c, &r), 0);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(outs(&c), want));
    assert_int_equal(stat(mirror, &st2), 0);
    assert_int_equal(st1.st_ino, st2.st_ino);
    assert_false(path_exists(fetch_head));
    print_message("checkout: first %lld ms, second %lld ms\n", (long long)first,
                  (long long)r.checkout_ms);
    /* Timing is printed, not asserted (shared machine); reuse is asserted above. */
    vk_buf_release(&c.b);

    /* A new commit upstream: the mirror fetches it. */
    add_second_commit();
    s.fragment_id = "git3";
    s.commit_sha = g_sha2;
    s.script = "cat two.txt\n";
    assert_int_equal(run(&s, &c, &r), 0);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(outs(&c), "two\n"));
    assert_true(path_exists(fetch_head));
    assert_int_equal(stat(mirror, &st2), 0);
    assert_int_equal(st1.st_ino, st2.st_ino);
    vk_buf_release(&c.b);

    /* Abbreviated sha of the older commit. */
    char abbrev[8];
    snprintf(abbrev, sizeof abbrev, "%.7s", g_sha1);
    s.fragment_id = "git4";
    s.commit_sha = abbrev;
    s.script = "test ! -e two.txt && git rev-parse HEAD\n";
    assert_int_equal(run(&s, &c, &r), 0);
    assert_int_equal(r.exit_code, 0);
    snprintf(want, sizeof want, "%s\n", g_sha1);
    assert_non_null(strstr(outs(&c), want));
    vk_buf_release(&c.b);
}

static void test_branch_head(void **state)
{
    (void)state;
    struct vk_exec_spec s =
        base_spec("gitbr", "git rev-parse HEAD\necho \"checkout=$VULCAN_CHECKOUT_SHA\"\n");
    const char *inject[] = {"VULCAN_CHECKOUT_SHA=forged"};
    s.env = inject;
    s.nenv = 1;
    s.repository_url = g_url;
    s.branch = "main";
    struct collected c;
    struct vk_exec_result r;
    assert_int_equal(run(&s, &c, &r), 0);
    assert_int_equal(r.exit_code, 0);
    char want[100];
    snprintf(want, sizeof want, "%s\n", g_sha2[0] ? g_sha2 : g_sha1);
    assert_non_null(strstr(outs(&c), want));
    /* VULCAN_CHECKOUT_SHA: the full id checked out, never an injected value */
    snprintf(want, sizeof want, "checkout=%s\n", g_sha2[0] ? g_sha2 : g_sha1);
    assert_non_null(strstr(outs(&c), want));
    vk_buf_release(&c.b);

    s.branch = "no-such-branch";
    assert_int_equal(run(&s, &c, &r), VK_ENOTFOUND);
    assert_string_equal(r.error, "branch 'no-such-branch' not found in the repository");
    vk_buf_release(&c.b);

    s.branch = NULL; /* the default branch */
    assert_int_equal(run(&s, &c, &r), 0);
    assert_non_null(strstr(outs(&c), want));
    vk_buf_release(&c.b);
}

static void test_bad_commit(void **state)
{
    (void)state;
    struct vk_exec_spec s = base_spec("gitbad", "echo never\n");
    s.repository_url = g_url;
    s.commit_sha = "0123456789abcdef0123456789abcdef01234567";
    struct collected c;
    struct vk_exec_result r;
    assert_int_equal(run(&s, &c, &r), VK_ENOTFOUND);
    assert_int_equal(r.exit_code, -1);
    assert_string_equal(r.error, "commit '0123456789abcdef0123456789abcdef01234567' not found "
                                 "in the repository");
    assert_non_null(strstr(outs(&c), "[vulcan] error: commit '0123"));
    assert_null(strstr(outs(&c), "never"));
    assert_false(path_exists(r.workspace));
    assert_false(vk_exec_result_ok(&r));
    vk_buf_release(&c.b);
}

static void test_bad_repository(void **state)
{
    (void)state;
    struct collected c;
    struct vk_exec_result r;
    char url[600];
    snprintf(url, sizeof url, "file://%s/does-not-exist.git", g_root);
    struct vk_exec_spec s = base_spec("gitnorepo", "echo never\n");
    s.repository_url = url;
    s.commit_sha = g_sha1;
    assert_int_equal(run(&s, &c, &r), VK_EIO);
    /* git's own complaint, not just its exit status */
    assert_non_null(strstr(r.error, "git clone failed: fatal: "));
    assert_non_null(strstr(r.error, "does-not-exist.git"));
    assert_non_null(strstr(outs(&c), "[vulcan] git: fatal:"));
    vk_buf_release(&c.b);

    const char *hostile[] = {"--upload-pack=touch /tmp/vk-pwned", "ext::sh -c touch% /tmp/x",
                             "https://x/\n--foo"};
    for (size_t i = 0; i < VK_ARRAY_LEN(hostile); i++) {
        s.repository_url = hostile[i];
        assert_int_equal(run(&s, &c, &r), VK_EINVAL);
        assert_string_equal(r.error, "invalid repository url");
        vk_buf_release(&c.b);
    }
    s.repository_url = g_url;
    s.commit_sha = "HEAD;rm";
    assert_int_equal(run(&s, &c, &r), VK_EINVAL);
    vk_buf_release(&c.b);
    /* Credentials in a URL never reach the log. */
    snprintf(url, sizeof url, "https://user:s3cret@127.0.0.1:1/r.git");
    s.repository_url = url;
    s.commit_sha = g_sha1;
    assert_int_equal(run(&s, &c, &r), VK_EIO);
    assert_null(strstr(outs(&c), "s3cret"));
    vk_buf_release(&c.b);
}

static void test_git_inside_sandbox(void **state)
{
    (void)state;
    if (!g_env.bwrap_ok)
        skip();
    /* The workspace borrows objects from the mirror: it must be readable in the sandbox. */
    struct vk_exec_spec s = base_spec("gitsb", "git log --format=%s | tr '\\n' ' '\n");
    s.repository_url = g_url;
    s.commit_sha = g_sha2[0] ? g_sha2 : g_sha1;
    s.sandbox = VK_EXEC_SANDBOX_BWRAP;
    struct collected c;
    struct vk_exec_result r;
    assert_int_equal(run(&s, &c, &r), 0);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(outs(&c), g_sha2[0] ? "two one " : "one "));
    vk_buf_release(&c.b);
}

struct par {
    char id[32];
    int rc;
    int exit_code;
};

static void *par_run(void *arg)
{
    struct par *p = arg;
    struct vk_exec_spec s = base_spec(p->id, "cat hello.txt\n");
    s.repository_url = g_url;
    s.commit_sha = g_sha1;
    struct collected c;
    struct vk_exec_result r;
    p->rc = run(&s, &c, &r);
    p->exit_code = r.exit_code;
    vk_buf_release(&c.b);
    return NULL;
}

static void test_concurrent_checkouts(void **state)
{
    (void)state;
    /* A fresh URL spelling gives a fresh mirror: four threads race to create it. */
    char url[500];
    snprintf(url, sizeof url, "file://%s/", g_origin);
    snprintf(g_url, sizeof g_url, "%s", url);
    struct par ps[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        snprintf(ps[i].id, sizeof ps[i].id, "par%d", i);
        assert_int_equal(pthread_create(&t[i], NULL, par_run, &ps[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(ps[i].rc, 0);
        assert_int_equal(ps[i].exit_code, 0);
    }
}

/* `checkout { depth 1 }`: one commit of history in the workspace; the full checkout has all. */
static void test_shallow_checkout(void **state)
{
    (void)state;
    if (!g_sha2[0])
        add_second_commit();
    struct vk_exec_spec s =
        base_spec("gitdepth", "echo count=$(git rev-list --count HEAD); cat two.txt\n");
    s.repository_url = g_url;
    s.commit_sha = g_sha2;
    s.checkout_depth = 1;
    struct collected c;
    struct vk_exec_result r;
    assert_int_equal(run(&s, &c, &r), 0);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(outs(&c), "count=1\ntwo\n"));
    vk_buf_release(&c.b);

    s.checkout_depth = 0;
    assert_int_equal(run(&s, &c, &r), 0);
    assert_non_null(strstr(outs(&c), "count=2\ntwo\n"));
    vk_buf_release(&c.b);
}

/* Issue 12 item 7: a pull request builds its head merged into its base's tip, with
 * VULCAN_CHECKOUT_SHA the merge; a conflict fails with both commits named. */
static void test_pull_request_merge(void **state)
{
    (void)state;
    if (!g_sha2[0])
        add_second_commit();
    char src[400], head[65], cmd[700];
    snprintf(src, sizeof src, "%s/src", g_root);
    assert_int_equal(sh("cd %s && " GITC
                        " checkout -q -b feature %s && echo f > feature.txt && " GITC
                        " add . && " GITC " commit -qm feature && " GITC
                        " push -q %s feature && " GITC " checkout -q main",
                        src, g_sha1, g_origin),
                     0);
    snprintf(cmd, sizeof cmd, "git -C %s rev-parse feature", src);
    read_line(cmd, head, sizeof head);
    assert_int_equal(strlen(head), 40);
    struct vk_exec_spec s = base_spec("gitpr", "echo sha=$VULCAN_CHECKOUT_SHA\n"
                                               "echo head=$(git rev-parse HEAD)\n"
                                               "echo parents=$(git log -1 --format=%P)\n"
                                               "cat hello.txt two.txt feature.txt\n");
    s.repository_url = g_url;
    s.commit_sha = head;
    s.branch = "main";
    s.merge_into = "main";
    struct collected c;
    struct vk_exec_result r;
    assert_int_equal(run(&s, &c, &r), 0);
    assert_int_equal(r.exit_code, 0);
    const char *o = outs(&c);
    assert_non_null(strstr(o, "hello\ntwo\nf\n")); /* files of both sides */
    char want[200];
    snprintf(want, sizeof want, "parents=%s %s", g_sha2, head);
    assert_non_null(strstr(o, want));
    const char *sha = strstr(o, "sha="), *hd = strstr(o, "head=");
    assert_non_null(sha);
    assert_non_null(hd);
    assert_memory_equal(sha + 4, hd + 5, 40); /* the checkout sha is the merge commit */
    assert_memory_not_equal(sha + 4, head, 40);
    vk_buf_release(&c.b);

    /* The head itself when asked (no merge_into). */
    s.merge_into = NULL;
    assert_int_equal(run(&s, &c, &r), 0);
    assert_int_equal(r.exit_code, 1); /* two.txt is not in the head */
    snprintf(want, sizeof want, "head=%s", head);
    assert_non_null(strstr(outs(&c), want));
    vk_buf_release(&c.b);

    /* A conflict. */
    assert_int_equal(sh("cd %s && " GITC
                        " checkout -q -b clash %s && echo theirs > two.txt && " GITC
                        " add . && " GITC " commit -qm clash && " GITC " push -q %s clash && " GITC
                        " checkout -q main",
                        src, g_sha1, g_origin),
                     0);
    snprintf(cmd, sizeof cmd, "git -C %s rev-parse clash", src);
    read_line(cmd, head, sizeof head);
    s.commit_sha = head;
    s.merge_into = "main";
    memset(&r, 0, sizeof(r));
    int rc = run(&s, &c, &r);
    char err_text[600];
    snprintf(err_text, sizeof err_text, "%s %s", r.error, outs(&c));
    if (rc == 0)
        assert_int_not_equal(r.exit_code, 0);
    assert_non_null(strstr(err_text, "does not merge cleanly into main"));
    assert_non_null(strstr(err_text, "ref \"head\""));
    vk_buf_release(&c.b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checkout_and_mirror_reuse),
        cmocka_unit_test(test_branch_head),
        cmocka_unit_test(test_bad_commit),
        cmocka_unit_test(test_shallow_checkout),
        cmocka_unit_test(test_pull_request_merge),
        cmocka_unit_test(test_bad_repository),
        cmocka_unit_test(test_git_inside_sandbox),
        cmocka_unit_test(test_concurrent_checkouts),
    };
    return cmocka_run_group_tests(tests, setup, env_teardown);
}
