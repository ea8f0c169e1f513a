/* The git module against a real local repository made by the test. */
#include "vk_test.h"
#include "vulcan/git.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ZERO "0000000000000000000000000000000000000000"

static char tmp[256];
static char repo[300], cache[300];
static char c1[65], c2[65], c3[65];

#define sh vk_test_sh

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
    int64_t t0 = vk_time_mono_ns();
    assert_int_equal(vk_git_mirror_sync(m, NULL, &err), VK_ETIMEDOUT);
    int64_t ms = (vk_time_mono_ns() - t0) / 1000000;
    /* Stopped at its timeout, long before the fake git's 30 s; the upper bound leaves
     * room for a loaded CI machine (it once took over 5 s under two parallel suites). */
    if (ms < 300 || ms >= 20000)
        fail_msg("the timed-out sync took %lld ms", (long long)ms);
    assert_non_null(strstr(err.msg, "timed out"));
    vk_git_mirror_free(m);
    /* no half-made mirror left behind: only the lock file */
    assert_int_equal(count_entries(dir), 1);
    opts.git_path = "/nonexistent/git";
    assert_int_equal(vk_git_mirror_open(dir, url, &opts, &m, &err), VK_ENOTFOUND);
}

static bool cancel_after(void *ctx)
{
    int64_t *at = ctx;
    return vk_time_mono_ns() >= *at;
}

static void collect_stderr(void *ctx, const char *data, size_t len)
{
    assert_int_equal(vk_buf_add(ctx, data, len), 0);
}

/* The cancel callback stops a running git within its 100 ms poll; stderr reaches the
 * callback as git prints it; a lock held by someone else is given up on cancel too. */
static void test_cancel_and_stderr(void **state)
{
    (void)state;
    char fake[400], url[400], dir[400];
    snprintf(fake, sizeof(fake), "%s/slow-git", tmp);
    snprintf(dir, sizeof(dir), "%s/cache-cancel", tmp);
    sh("printf '#!/bin/sh\necho working >&2\nsleep 30\n' > %s && chmod +x %s", fake, fake);
    snprintf(url, sizeof(url), "file://%s", repo);
    int64_t at = vk_time_mono_ns() + 300 * 1000000LL;
    struct vk_buf seen = VK_BUF_INIT(4096);
    struct vk_git_opts opts = {.git_path = fake,
                               .cancel = cancel_after,
                               .cancel_ctx = &at,
                               .on_stderr = collect_stderr,
                               .on_stderr_ctx = &seen};
    struct vk_git_mirror *m = NULL;
    struct vk_err err = {0};
    assert_int_equal(vk_git_mirror_open(dir, url, &opts, &m, &err), 0);
    int64_t t0 = vk_time_mono_ns();
    assert_int_equal(vk_git_mirror_sync(m, NULL, &err), VK_EAGAIN);
    int64_t ms = (vk_time_mono_ns() - t0) / 1000000;
    assert_true(ms >= 250 && ms < 5000 * VK_TEST_SLOWDOWN);
    assert_non_null(strstr(err.msg, "cancelled"));
    assert_string_equal(seen.data, "working\n");
    vk_git_mirror_free(m);

    /* the lock, held by another process: the handle waits for it until cancelled */
    opts.git_path = NULL;
    assert_int_equal(vk_git_mirror_open(dir, url, &opts, &m, &err), 0);
    char lk[600]; /* the mirror's path ends in ".git"; its lock in ".lock" */
    snprintf(lk, sizeof(lk), "%.*s.lock", (int)strlen(vk_git_mirror_path(m)) - 4,
             vk_git_mirror_path(m));
    sh("(flock %s sleep 3 &) ; sleep 0.3", lk);
    at = vk_time_mono_ns() + 200 * 1000000LL;
    assert_int_equal(vk_git_mirror_sync(m, NULL, &err), VK_EAGAIN);
    assert_non_null(strstr(err.msg, "mirror lock"));
    vk_git_mirror_free(m);
    vk_buf_release(&seen);
}

/* Read `glob` at `sha` with vk_git_read_files(); must succeed. */
static void read_ok(struct vk_git_mirror *m, const char *sha, const char *glob,
                    struct vk_git_files *f)
{
    struct vk_err err = {0};
    vk_git_files_init(f);
    if (vk_git_read_files(m, sha, glob, f, &err) != 0)
        fail_msg("read_files %s: %s", glob ? glob : "(default)", err.msg);
}

/* The batch reader agrees with vk_git_list_files() + vk_git_read_file(), in one process. */
static void test_read_files(void **state)
{
    (void)state;
    struct vk_git_mirror *m = open_mirror(NULL);
    struct vk_err err = {0};
    static const char *const globs[] = {
        NULL,   ".vulcan/**",      "**/*.md",     "**",          "src/x.c",
        "*.md", ".vulcan/*/*.kdl", "nodir/*.kdl", "README.md/*", ".vulcan/sub/**"};
    const char *commits[] = {c1, c2, c3};
    for (size_t c = 0; c < VK_ARRAY_LEN(commits); c++) {
        for (size_t g = 0; g < VK_ARRAY_LEN(globs); g++) {
            struct vk_git_paths p;
            vk_git_paths_init(&p);
            if (vk_git_list_files(m, commits[c], globs[g], &p, &err) != 0)
                fail_msg("list: %s", err.msg);
            unsigned before = vk_git_mirror_stats(m).commands;
            struct vk_git_files f;
            read_ok(m, commits[c], globs[g], &f);
            /* warm mirror: one git process for the listing and every file */
            assert_int_equal(vk_git_mirror_stats(m).commands, before + 1);
            assert_int_equal(f.n, p.n);
            size_t bytes = 0;
            for (size_t i = 0; i < p.n; i++) {
                assert_string_equal(f.items[i].path, p.items[i]);
                struct vk_buf b = VK_BUF_INIT(VK_MAX_SMALL);
                assert_int_equal(vk_git_read_file(m, commits[c], p.items[i], &b, &err), 0);
                assert_int_equal(f.items[i].len, b.len);
                assert_memory_equal(f.items[i].data, b.data, b.len);
                assert_int_equal(f.items[i].data[f.items[i].len], '\0');
                bytes += b.len;
                vk_buf_release(&b);
            }
            assert_int_equal(f.bytes, bytes);
            vk_git_files_release(&f);
            vk_git_paths_release(&p);
        }
    }
    /* a few exact answers */
    struct vk_git_files f;
    read_ok(m, c1, NULL, &f);
    assert_int_equal(f.n, 3);
    assert_string_equal(f.items[0].path, ".vulcan/a.kdl");
    assert_string_equal(f.items[0].data, "version \"0.1\"\n");
    assert_string_equal(f.items[2].data, "c\n");
    vk_git_files_release(&f);
    read_ok(m, c3, NULL, &f);
    assert_string_equal(f.items[0].data, "version \"0.1\"\na2\n");
    vk_git_files_release(&f);
    read_ok(m, c1, ".vulcan/**", &f);
    assert_int_equal(f.n, 5);
    assert_string_equal(f.items[4].path, ".vulcan/sub/d.kdl");
    assert_string_equal(f.items[4].data, "d\n");
    vk_git_files_release(&f);
    read_ok(m, c1, "nodir/*.kdl", &f);
    assert_int_equal(f.n, 0);
    vk_git_files_release(&f);
    assert_int_equal(vk_git_mirror_stats(m).fetches, 0);
    /* one file: one process on a warm mirror; a missing file fetches nothing */
    unsigned cmds = vk_git_mirror_stats(m).commands;
    struct vk_buf b = VK_BUF_INIT(VK_MAX_SMALL);
    assert_int_equal(vk_git_read_file(m, c2, "docs/y.md", &b, &err), 0);
    assert_string_equal(b.data, "y\n");
    assert_int_equal(vk_git_mirror_stats(m).commands, cmds + 1);
    assert_int_equal(vk_git_read_file(m, c2, "docs/nope.md", &b, &err), VK_ENOTFOUND);
    assert_non_null(strstr(err.msg, "docs/nope.md"));
    assert_int_equal(vk_git_mirror_stats(m).fetches, 0);
    vk_buf_release(&b);

    /* bad input */
    vk_git_files_init(&f);
    static const char *const bad_shas[] = {"abc", "--all", "HEAD", ZERO "0", "main"};
    for (size_t i = 0; i < VK_ARRAY_LEN(bad_shas); i++)
        assert_int_equal(vk_git_read_files(m, bad_shas[i], NULL, &f, &err), VK_EINVAL);
    assert_int_equal(vk_git_read_files(m, c1, "/abs/*", &f, &err), VK_EINVAL);
    assert_int_equal(vk_git_read_files(m, c1, "", &f, &err), VK_EINVAL);
    /* an unknown commit: fetched once, then asked for by name (a server may send an
     * unreachable commit), then not found */
    unsigned fetches = vk_git_mirror_stats(m).fetches;
    assert_int_equal(
        vk_git_read_files(m, "2222222222222222222222222222222222222222", NULL, &f, &err),
        VK_ENOTFOUND);
    assert_non_null(strstr(err.msg, "not found"));
    assert_int_equal(vk_git_mirror_stats(m).fetches, fetches + 2);
    assert_int_equal(f.n, 0);
    vk_git_mirror_free(m);

    /* the size cap: the whole read fails, naming the file; nothing is returned */
    struct vk_git_opts opts = {.max_blob = 5};
    m = open_mirror(&opts);
    assert_int_equal(vk_git_read_files(m, c1, NULL, &f, &err), VK_ETOOBIG);
    assert_non_null(strstr(err.msg, ".vulcan/a.kdl"));
    assert_int_equal(f.n, 0);
    read_ok(m, c1, ".vulcan/[bc].kdl", &f); /* no such names: '[' is literal */
    assert_int_equal(f.n, 0);
    vk_git_files_release(&f);
    vk_git_files_init(&f);
    assert_int_equal(vk_git_read_files(m, c1, ".vulcan/b.kdl", &f, &err), 0);
    assert_int_equal(f.n, 1);
    assert_string_equal(f.items[0].data, "b\n");
    vk_git_files_release(&f);
    vk_git_mirror_free(m);
}

/*
 * A commit the mirror lacks is fetched (once); a submodule entry matching the glob is not
 * a file; a git cat-file that hangs is killed when the timeout runs out.
 */
static void test_read_files_fetch_and_timeout(void **state)
{
    (void)state;
    struct vk_git_mirror *m = open_mirror(NULL);
    struct vk_err err = {0};
    sh("cd %s && echo f > .vulcan/f.kdl && " GIT "add -A && " GIT
       "update-index --add --cacheinfo 160000,%s,.vulcan/mod.kdl && " GIT "commit -q -m five",
       repo, repo, repo, c1, repo);
    char c5[65];
    head_of("HEAD", c5);
    struct vk_git_files f;
    read_ok(m, c5, NULL, &f);
    struct vk_git_stats st = vk_git_mirror_stats(m);
    assert_int_equal(st.fetches, 1);
    assert_int_equal(st.clones, 0);
    assert_int_equal(f.n, 5); /* a b c e f, not the submodule mod.kdl */
    assert_string_equal(f.items[4].path, ".vulcan/f.kdl");
    assert_string_equal(f.items[4].data, "f\n");
    for (size_t i = 0; i < f.n; i++)
        assert_null(strstr(f.items[i].path, "mod"));
    vk_git_files_release(&f);
    /* now present: no fetch, one process */
    read_ok(m, c5, ".vulcan/**", &f);
    assert_int_equal(vk_git_mirror_stats(m).fetches, 1);
    assert_int_equal(vk_git_mirror_stats(m).commands, st.commands + 1);
    vk_git_files_release(&f);
    vk_git_mirror_free(m);

    /* a git whose cat-file --batch hangs (everything else is the real git) */
    char fake[400];
    snprintf(fake, sizeof(fake), "%s/fake-batch-git", tmp);
    sh("printf '#!/bin/sh\\ncase \"$*\" in *--batch*) sleep 30 & sleep 30;; esac\\n"
       "exec git \"$@\"\\n' > %s && chmod +x %s",
       fake, fake);
    struct vk_git_opts opts = {.git_path = fake, .timeout_ms = 300};
    m = open_mirror(&opts);
    vk_git_files_init(&f);
    int64_t t0 = vk_time_mono_ns();
    assert_int_equal(vk_git_read_files(m, c5, NULL, &f, &err), VK_ETIMEDOUT);
    int64_t ms = (vk_time_mono_ns() - t0) / 1000000;
    assert_true(ms >= 300 && ms < 5000);
    assert_non_null(strstr(err.msg, "timed out"));
    assert_int_equal(f.n, 0);
    vk_git_mirror_free(m);
}

/* Issue 12 item 7: submodule URLs of a hostile .gitmodules, resolved and checked. */
static void test_submodule_url(void **state)
{
    (void)state;
    static const struct {
        const char *super, *raw, *want;
    } good[] = {
        {"https://h/org/repo.git", "../other.git", "https://h/org/other.git"},
        {"https://h/org/repo.git/", "../other.git", "https://h/org/other.git"},
        {"https://h/org/repo", "./sub", "https://h/org/repo/sub"},
        {"https://h/org/repo", "../../x/y.git", "https://h/x/y.git"},
        {"git@h:org/repo.git", "../lib.git", "git@h:org/lib.git"},
        {"git@h:repo.git", "../lib.git", "git@h:lib.git"},
        {"file:///srv/git/super.git", "../lib.git", "file:///srv/git/lib.git"},
        {"/srv/git/super", "../lib", "/srv/git/lib"},
        {"https://h/org/repo", "https://other/x.git", "https://other/x.git"},
        {"https://h/org/repo", "ssh://git@h/x.git", "ssh://git@h/x.git"},
        {"https://h/org/repo", "git@h:x.git", "git@h:x.git"},
        {"file:///srv/super.git", "file:///srv/lib.git", "file:///srv/lib.git"},
        {"/srv/super.git", "/srv/lib.git", "/srv/lib.git"},
    };
    char out[VK_GIT_MAX_URL + 1];
    struct vk_err err;
    for (size_t i = 0; i < VK_ARRAY_LEN(good); i++) {
        vk_err_clear(&err);
        int rc = vk_git_submodule_url(good[i].super, good[i].raw, out, sizeof out, &err);
        if (rc != 0)
            print_error("%s + %s: %s\n", good[i].super, good[i].raw, err.msg);
        assert_int_equal(rc, 0);
        assert_string_equal(out, good[i].want);
    }
    static const struct {
        const char *super, *raw, *why;
    } bad[] = {
        {"file:///s/r.git", "ext::sh -c touch% /tmp/pwned", "(ext::, fd::)"},
        {"file:///s/r.git", "fd::17", "(ext::, fd::)"},
        {"file:///s/r.git", "-uhelp", "starting with '-'"},
        {"file:///s/r.git", "--upload-pack=touch", "starting with '-'"},
        {"https://h/o/r", "file:///etc/x.git", "only when the superproject is local"},
        {"https://h/o/r", "/etc/x.git", "only when the superproject is local"},
        {"https://h/o/r", "../../../x.git", "above the superproject's host"},
        {"https://h/o/r", "ssh://-oProxyCommand=x/y", "a host starting with '-'"},
        {"https://h/o/r", "ssh://u@-oProxyCommand=x/y", "a host starting with '-'"},
        {"https://h/o/r", "-oProxyCommand=x:y", "starting with '-'"},
        {"https://h/o/r", "ftp://h/x.git", "scheme is not allowed"},
        {"https://h/o/r", "sub/dir", "not a url"},
        {"https://h/o/r", "https://h/a b", "not a usable git url"},
        {"https://h/o/r", "", "no url"},
    };
    for (size_t i = 0; i < VK_ARRAY_LEN(bad); i++) {
        vk_err_clear(&err);
        int rc = vk_git_submodule_url(bad[i].super, bad[i].raw, out, sizeof out, &err);
        if (rc == 0 || !strstr(err.msg, bad[i].why))
            print_error("%s + %s: rc %d '%s'\n", bad[i].super, bad[i].raw, rc, err.msg);
        assert_int_equal(rc, VK_EPERM);
        assert_non_null(strstr(err.msg, bad[i].why));
    }
    static const char *const ok_paths[] = {"lib", "deps/leaf", "a.git2/b", "x/.gitignore"};
    static const char *const bad_paths[] = {"../escape", "a/../../b",  "/abs",   "-x",
                                            ".git",      ".GIT/hooks", "a/.git", ".git./x",
                                            ".git /x",   "",           "a//b",   "./a"};
    for (size_t i = 0; i < VK_ARRAY_LEN(ok_paths); i++)
        assert_true(vk_git_valid_submodule_path(ok_paths[i]));
    for (size_t i = 0; i < VK_ARRAY_LEN(bad_paths); i++) {
        if (vk_git_valid_submodule_path(bad_paths[i]))
            print_error("accepted '%s'\n", bad_paths[i]);
        assert_false(vk_git_valid_submodule_path(bad_paths[i]));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_list_and_read),  cmocka_unit_test(test_resolve),
        cmocka_unit_test(test_changed_paths),  cmocka_unit_test(test_mirror_reuse),
        cmocka_unit_test(test_read_files),     cmocka_unit_test(test_read_files_fetch_and_timeout),
        cmocka_unit_test(test_invalid_inputs), cmocka_unit_test(test_submodule_url),
        cmocka_unit_test(test_timeout),        cmocka_unit_test(test_cancel_and_stderr),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
