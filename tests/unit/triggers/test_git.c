/* The server-side git helper against a real local repository made by the test. */
#include "vk_test.h"
#include "vulcan/triggers.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ZERO "0000000000000000000000000000000000000000"

static char tmp[256];
static char repo[300], cache[300];
static char c1[65], c2[65], c3[65];

/* Test set-up only: our own temp paths, so a shell is fine here. */
static void sh(const char *fmt, ...) VK_PRINTF(1, 2);
static void sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    if (system(cmd) != 0)
        fail_msg("command failed: %s", cmd);
}

static void head_of(const char *rev, char out[65])
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "git -C %s rev-parse %s", repo, rev);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    assert_non_null(fgets(out, 65, p));
    out[strcspn(out, "\n")] = '\0';
    pclose(p);
    assert_int_equal(strlen(out), 40);
}

#define GIT                                                                                        \
    "GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@example.com GIT_COMMITTER_NAME=t "                       \
    "GIT_COMMITTER_EMAIL=t@example.com git -C %s "

static int setup(void **state)
{
    (void)state;
    snprintf(tmp, sizeof(tmp), "%s/vk-trig-git-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmp))
        return -1;
    snprintf(repo, sizeof(repo), "%s/origin", tmp);
    snprintf(cache, sizeof(cache), "%s/cache/mirrors", tmp);
    sh("git init -q -b main %s", repo);
    sh("mkdir -p %s/.vulcan/sub %s/src", repo, repo);
    sh("cd %s && printf 'version \"0.1\"\\n' > .vulcan/a.kdl && echo b > .vulcan/b.kdl && "
       "echo c > .vulcan/c.kdl && echo d > .vulcan/sub/d.kdl && echo readme > README.md && "
       "echo x > src/x.c && echo notes > .vulcan/notes.txt",
       repo);
    sh(GIT "add -A && " GIT "commit -q -m one", repo, repo);
    head_of("HEAD", c1);
    sh("cd %s && mkdir docs && echo y > docs/y.md && echo x2 >> src/x.c", repo);
    sh(GIT "add -A && " GIT "commit -q -m two", repo, repo);
    head_of("HEAD", c2);
    sh(GIT "checkout -q -b feature/x && echo a2 >> %s/.vulcan/a.kdl && " GIT
           "commit -q -am three && " GIT "checkout -q main",
       repo, repo, repo, repo);
    head_of("feature/x", c3);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    if (tmp[0])
        sh("rm -rf %s", tmp);
    return 0;
}

static struct vk_git_mirror *open_mirror(const struct vk_git_opts *opts)
{
    struct vk_git_mirror *m = NULL;
    struct vk_err err = {0};
    char url[400];
    snprintf(url, sizeof(url), "file://%s", repo);
    if (vk_git_mirror_open(cache, url, opts, &m, &err) != 0)
        fail_msg("open: %s", err.msg);
    return m;
}

static void test_list_and_read(void **state)
{
    (void)state;
    struct vk_git_mirror *m = open_mirror(NULL);
    struct vk_err err = {0};
    struct vk_git_paths p;
    vk_git_paths_init(&p);
    if (vk_git_list_files(m, c1, NULL, &p, &err) != 0)
        fail_msg("list: %s", err.msg);
    /* `*` does not cross '/': sub/d.kdl and notes.txt are not workflows */
    assert_int_equal(p.n, 3);
    assert_string_equal(p.items[0], ".vulcan/a.kdl");
    assert_string_equal(p.items[1], ".vulcan/b.kdl");
    assert_string_equal(p.items[2], ".vulcan/c.kdl");
    vk_git_paths_release(&p);
    assert_int_equal(vk_git_mirror_stats(m).clones, 1);
    assert_int_equal(vk_git_mirror_stats(m).fetches, 0);

    vk_git_paths_init(&p);
    assert_int_equal(vk_git_list_files(m, c1, ".vulcan/**", &p, &err), 0);
    assert_int_equal(p.n, 5);
    vk_git_paths_release(&p);
    vk_git_paths_init(&p);
    assert_int_equal(vk_git_list_files(m, c2, "**/*.md", &p, &err), 0);
    assert_int_equal(p.n, 2);
    assert_string_equal(p.items[0], "README.md");
    assert_string_equal(p.items[1], "docs/y.md");
    vk_git_paths_release(&p);

    struct vk_buf b = VK_BUF_INIT(VK_MAX_SMALL);
    assert_int_equal(vk_git_read_file(m, c1, ".vulcan/a.kdl", &b, &err), 0);
    assert_string_equal(b.data, "version \"0.1\"\n");
    vk_buf_reset(&b);
    assert_int_equal(vk_git_read_file(m, c3, ".vulcan/a.kdl", &b, &err), 0);
    assert_string_equal(b.data, "version \"0.1\"\na2\n");
    vk_buf_reset(&b);
    assert_int_equal(vk_git_read_file(m, c1, ".vulcan/missing.kdl", &b, &err), VK_ENOTFOUND);
    assert_non_null(strstr(err.msg, "missing.kdl"));
    assert_int_equal(vk_git_read_file(m, c1, "docs/y.md", &b, &err), VK_ENOTFOUND);
    vk_buf_release(&b);
    vk_git_mirror_free(m);

    /* the size cap */
    struct vk_git_opts opts = {.max_blob = 5};
    m = open_mirror(&opts);
    struct vk_buf small = VK_BUF_INIT(VK_MAX_SMALL);
    assert_int_equal(vk_git_read_file(m, c1, ".vulcan/a.kdl", &small, &err), VK_ETOOBIG);
    assert_int_equal(vk_git_read_file(m, c1, ".vulcan/b.kdl", &small, &err), 0);
    assert_string_equal(small.data, "b\n");
    vk_buf_release(&small);
    vk_git_mirror_free(m);
}

static void test_resolve(void **state)
{
    (void)state;
    struct vk_git_mirror *m = open_mirror(NULL);
    struct vk_err err = {0};
    char sha[65];
    assert_int_equal(vk_git_resolve_branch(m, "main", sha, &err), 0);
    assert_string_equal(sha, c2);
    assert_int_equal(vk_git_resolve_branch(m, "feature/x", sha, &err), 0);
    assert_string_equal(sha, c3);
    assert_int_equal(vk_git_resolve_branch(m, "nope", sha, &err), VK_ENOTFOUND);
    assert_non_null(strstr(err.msg, "'nope'"));
    assert_true(vk_git_mirror_stats(m).fetches >= 1); /* a branch head is always fetched */

    char prefix[13];
    memcpy(prefix, c3, 12);
    prefix[12] = '\0';
    assert_int_equal(vk_git_resolve_commit(m, prefix, sha, &err), 0);
    assert_string_equal(sha, c3);
    assert_int_equal(vk_git_resolve_commit(m, "ffffffffffff", sha, &err), VK_ENOTFOUND);
    vk_git_mirror_free(m);
}

static void test_changed_paths(void **state)
{
    (void)state;
    struct vk_git_mirror *m = open_mirror(NULL);
    struct vk_err err = {0};
    struct vk_git_paths p;
    vk_git_paths_init(&p);
    assert_int_equal(vk_git_changed_paths(m, c1, c2, &p, &err), 0);
    assert_int_equal(p.n, 2);
    assert_string_equal(p.items[0], "docs/y.md");
    assert_string_equal(p.items[1], "src/x.c");
    vk_git_paths_release(&p);

    /* a new branch: the commit's own changes */
    vk_git_paths_init(&p);
    assert_int_equal(vk_git_changed_paths(m, ZERO, c3, &p, &err), 0);
    assert_int_equal(p.n, 1);
    assert_string_equal(p.items[0], ".vulcan/a.kdl");
    vk_git_paths_release(&p);

    /* the root commit: every file */
    vk_git_paths_init(&p);
    assert_int_equal(vk_git_changed_paths(m, NULL, c1, &p, &err), 0);
    assert_int_equal(p.n, 7);
    vk_git_paths_release(&p);

    /* across branches */
    vk_git_paths_init(&p);
    assert_int_equal(vk_git_changed_paths(m, c1, c3, &p, &err), 0);
    assert_int_equal(p.n, 3);
    assert_string_equal(p.items[0], ".vulcan/a.kdl");
    vk_git_paths_release(&p);
    vk_git_mirror_free(m);
}

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += e->d_name[0] != '.';
    if (d)
        closedir(d);
    return n;
}

static void test_mirror_reuse(void **state)
{
    (void)state;
    /* the earlier tests made the mirror; a new handle reuses it without git clone */
    struct vk_git_mirror *m = open_mirror(NULL);
    struct vk_err err = {0};
    struct vk_git_paths p;
    vk_git_paths_init(&p);
    assert_int_equal(vk_git_list_files(m, c2, NULL, &p, &err), 0);
    assert_int_equal(p.n, 3);
    vk_git_paths_release(&p);
    struct vk_git_stats st = vk_git_mirror_stats(m);
    assert_int_equal(st.clones, 0);
    assert_int_equal(st.fetches, 0);
    /* <hex>.git and <hex>.lock, no temporary clone left */
    assert_int_equal(count_entries(cache), 2);
    const char *path = vk_git_mirror_path(m);
    assert_int_equal(strlen(strrchr(path, '/') + 1), 64 + 4);

    /* a commit the mirror does not have yet: one fetch, no clone */
    sh("cd %s && echo e > .vulcan/e.kdl && " GIT "add -A && " GIT "commit -q -m four", repo, repo,
       repo);
    char c4[65];
    head_of("HEAD", c4);
    vk_git_paths_init(&p);
    assert_int_equal(vk_git_list_files(m, c4, NULL, &p, &err), 0);
    assert_int_equal(p.n, 4);
    vk_git_paths_release(&p);
    st = vk_git_mirror_stats(m);
    assert_int_equal(st.clones, 0);
    assert_int_equal(st.fetches, 1);
    /* an unknown commit: fetched once more, then not found */
    assert_int_equal(vk_git_mirror_sync(m, "1111111111111111111111111111111111111111", &err),
                     VK_ENOTFOUND);
    vk_git_mirror_free(m);
}

static void test_invalid_inputs(void **state)
{
    (void)state;
    struct vk_git_mirror *m = NULL;
    struct vk_err err = {0};
    static const char *const bad_urls[] = {"",
                                           "-uhttps://x/y",
                                           "--upload-pack=touch /tmp/pwned",
                                           "ext::sh -c touch% /tmp/pwned",
                                           "https://h/o/r\n",
                                           "fd::3"};
    for (size_t i = 0; i < VK_ARRAY_LEN(bad_urls); i++) {
        assert_int_equal(vk_git_mirror_open(cache, bad_urls[i], NULL, &m, &err), VK_EINVAL);
        assert_null(m);
    }
    m = open_mirror(NULL);
    struct vk_git_paths p;
    vk_git_paths_init(&p);
    static const char *const bad_shas[] = {"abc",
                                           "--all",
                                           "HEAD",
                                           "main",
                                           "6113728f27ae82c7b1a177c8d03f9e96e0adf24",
                                           "6113728f27ae82c7b1a177c8d03f9e96e0adf24g"};
    for (size_t i = 0; i < VK_ARRAY_LEN(bad_shas); i++) {
        assert_int_equal(vk_git_list_files(m, bad_shas[i], NULL, &p, &err), VK_EINVAL);
        assert_int_equal(vk_git_changed_paths(m, c1, bad_shas[i], &p, &err), VK_EINVAL);
    }
    assert_int_equal(vk_git_changed_paths(m, "--output=/tmp/x", c1, &p, &err), VK_EINVAL);
    static const char *const bad_branches[] = {"-x", "--all", "a..b",  "a b",    "a~1",
                                               "a^", "a:b",   "@{-1}", "x.lock", "/x",
                                               "x/", "a//b",  ""};
    char sha[65];
    for (size_t i = 0; i < VK_ARRAY_LEN(bad_branches); i++)
        assert_int_equal(vk_git_resolve_branch(m, bad_branches[i], sha, &err), VK_EINVAL);
    assert_true(vk_git_valid_branch("releases/v1.2"));
    struct vk_buf b = VK_BUF_INIT(VK_MAX_SMALL);
    static const char *const bad_paths[] = {"../etc/passwd", "/etc/passwd", "a/../b", "./a", "",
                                            "a\nb"};
    for (size_t i = 0; i < VK_ARRAY_LEN(bad_paths); i++)
        assert_int_equal(vk_git_read_file(m, c1, bad_paths[i], &b, &err), VK_EINVAL);
    assert_int_equal(vk_git_list_files(m, c1, "/abs/*", &p, &err), VK_EINVAL);
    assert_int_equal(vk_git_resolve_commit(m, "xyz", sha, &err), VK_EINVAL);
    vk_buf_release(&b);
    vk_git_mirror_free(m);

    /* a repository that does not exist: the clone fails and leaves nothing behind */
    char url[400];
    snprintf(url, sizeof(url), "%s/does-not-exist", tmp);
    assert_int_equal(vk_git_mirror_open(cache, url, NULL, &m, &err), 0);
    assert_int_equal(vk_git_list_files(m, c1, NULL, &p, &err), VK_EIO);
    assert_non_null(strstr(err.msg, "clone"));
    vk_git_mirror_free(m);
    assert_int_equal(count_entries(cache), 3); /* the first mirror + 2 lock files */
}

/* A git that hangs is killed (with its process group) when the timeout runs out. */
static void test_timeout(void **state)
{
    (void)state;
    char fake[400], url[400], dir[400];
    snprintf(fake, sizeof(fake), "%s/fake-git", tmp);
    snprintf(dir, sizeof(dir), "%s/cache-timeout", tmp);
    sh("printf '#!/bin/sh\\nsleep 30 &\\nsleep 30\\n' > %s && chmod +x %s", fake, fake);
    snprintf(url, sizeof(url), "file://%s", repo);
    struct vk_git_opts opts = {.git_path = fake, .timeout_ms = 300};
    struct vk_git_mirror *m = NULL;
    struct vk_err err = {0};
    assert_int_equal(vk_git_mirror_open(dir, url, &opts, &m, &err), 0);
    int64_t t0 = vk_mono_ns();
    assert_int_equal(vk_git_mirror_sync(m, NULL, &err), VK_ETIMEDOUT);
    int64_t ms = (vk_mono_ns() - t0) / 1000000;
    assert_true(ms >= 300 && ms < 5000);
    assert_non_null(strstr(err.msg, "timed out"));
    vk_git_mirror_free(m);
    /* no half-made mirror left behind: only the lock file */
    assert_int_equal(count_entries(dir), 1);
    opts.git_path = "/nonexistent/git";
    assert_int_equal(vk_git_mirror_open(dir, url, &opts, &m, &err), VK_ENOTFOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_and_read),  cmocka_unit_test(test_resolve),
        cmocka_unit_test(test_changed_paths),  cmocka_unit_test(test_mirror_reuse),
        cmocka_unit_test(test_invalid_inputs), cmocka_unit_test(test_timeout),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
