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

/* A bare repository <root>/sm/<name>.git whose one commit is made by the shell commands
 * `prep` (run in a fresh work tree; they may add gitlinks with `link SHA PATH`). */
static void make_repo(const char *name, const char *prep, char sha[65])
{
    char dir[500], cmd[700];
    snprintf(dir, sizeof dir, "%s/sm", g_root);
    assert_int_equal(
        sh("mkdir -p %s && cd %s && rm -rf %s.w && " GITC " init -q --bare %s.git && " GITC
           " init -q %s.w && cd %s.w && link() { " GITC
           " update-index --add --cacheinfo 160000,$1,$2 && mkdir -p $2; } && gm() { " GITC
           " config -f .gitmodules \"$@\"; } && %s && " GITC " add -A && " GITC
           " commit -qm %s && " GITC " push -q %s/%s.git HEAD:main",
           dir, dir, name, name, name, name, prep, name, dir, name),
        0);
    snprintf(cmd, sizeof cmd, "git -C %s/%s.w rev-parse HEAD", dir, name);
    read_line(cmd, sha, 65);
    assert_int_equal(strlen(sha), 40);
}

/* Run `script` on commit `sha` of <root>/sm/<repo>.git with `sub` submodules; returns
 * vk_exec_run's value, the output in *c, r->error the failure. */
static int run_sub(const char *id, const char *repo, const char *sha, const char *script,
                   enum vk_exec_submodules sub, struct collected *c, struct vk_exec_result *r)
{
    static char url[600];
    snprintf(url, sizeof url, "file://%s/sm/%s.git", g_root, repo);
    struct vk_exec_spec s = base_spec(id, script);
    s.repository_url = url;
    s.commit_sha = sha;
    s.checkout_submodules = sub;
    memset(r, 0, sizeof(*r));
    return run(&s, c, r);
}

/* Issue 12 item 7: `checkout { submodules #true | "recursive" }` checks the submodules out
 * through their own mirrors at the commits the gitlinks record; relative URLs resolve
 * against the superproject's. */
static void test_submodules(void **state)
{
    (void)state;
    char leaf[65], lib[65], lib_old[65], super[65], prep[600];
    make_repo("leaf", "echo leaf > leaf.txt", leaf);
    make_repo("libold", "echo old > lib.txt", lib_old);
    snprintf(prep, sizeof prep,
             "echo lib > lib.txt && gm submodule.leaf.path deps/leaf && "
             "gm submodule.leaf.url ../leaf.git && link %s deps/leaf",
             leaf);
    make_repo("lib", prep, lib);
    /* the superproject records lib's commit; a listed entry without a gitlink is left out */
    snprintf(prep, sizeof prep,
             "echo super > super.txt && gm submodule.lib.path lib && "
             "gm submodule.lib.url ./../lib.git && gm submodule.gone.path gone && "
             "gm submodule.gone.url ../nowhere.git && link %s lib",
             lib);
    make_repo("super", prep, super);

    const char *script = "cat super.txt lib/lib.txt\n"
                         "echo lib_head=$(git -C lib rev-parse HEAD)\n"
                         "if test -e lib/deps/leaf/leaf.txt; then echo nested; else echo flat; fi\n"
                         "if test -e gone; then echo gone-made; else echo no-gone; fi\n";
    struct collected c;
    struct vk_exec_result r;
    /* without: the gitlink's directory is empty */
    assert_int_equal(
        run_sub("sub0", "super", super, "ls -A lib | wc -l\n", VK_EXEC_SUBMODULES_NONE, &c, &r), 0);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(outs(&c), "0\n"));
    vk_buf_release(&c.b);

    assert_int_equal(run_sub("sub1", "super", super, script, VK_EXEC_SUBMODULES_ON, &c, &r), 0);
    assert_int_equal(r.exit_code, 0);
    char want[200];
    snprintf(want, sizeof want, "super\nlib\nlib_head=%s\nflat\nno-gone\n", lib);
    assert_non_null(strstr(outs(&c), want));
    assert_non_null(strstr(outs(&c), "[vulcan] submodule 'lib' at lib: file://"));
    assert_null(strstr(outs(&c), "'leaf'"));
    /* lib has its own mirror, named after its resolved URL */
    char lib_url[600], hex[65], mirror[700];
    snprintf(lib_url, sizeof lib_url, "file://%s/sm/lib.git", g_root);
    assert_int_equal(vk_sha256_hex(lib_url, strlen(lib_url), hex), 0);
    snprintf(mirror, sizeof mirror, "%s/%s.git", g_env.mirror_dir, hex);
    assert_true(path_exists(mirror));
    vk_buf_release(&c.b);

    assert_int_equal(run_sub("sub2", "super", super, script, VK_EXEC_SUBMODULES_RECURSIVE, &c, &r),
                     0);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(outs(&c), "nested\n"));
    assert_non_null(strstr(outs(&c), "[vulcan] submodule 'leaf' at lib/deps/leaf: file://"));
    vk_buf_release(&c.b);

    /* in the sandbox, the submodules' mirrors are readable too (their objects are borrowed) */
    if (g_env.bwrap_ok) {
        char url[600];
        snprintf(url, sizeof url, "file://%s/sm/super.git", g_root);
        struct vk_exec_spec sb = base_spec("sub-sb", "git -C lib/deps/leaf log -1 --format=%s\n"
                                                     "git -C lib status --porcelain | wc -l\n");
        sb.repository_url = url;
        sb.commit_sha = super;
        sb.checkout_submodules = VK_EXEC_SUBMODULES_RECURSIVE;
        sb.sandbox = VK_EXEC_SANDBOX_BWRAP;
        assert_int_equal(run(&sb, &c, &r), 0);
        assert_int_equal(r.exit_code, 0);
        assert_non_null(strstr(outs(&c), "leaf\n0\n"));
        vk_buf_release(&c.b);
    } else {
        print_message("bubblewrap unavailable: the sandboxed submodule check is skipped\n");
    }

    /* a gitlink to a commit its repository lacks fails, naming the submodule */
    snprintf(prep, sizeof prep,
             "gm submodule.lib.path lib && gm submodule.lib.url ../leaf.git && link %s lib",
             lib_old);
    char bad[65];
    make_repo("badlink", prep, bad);
    int rc = run_sub("sub3", "badlink", bad, "true\n", VK_EXEC_SUBMODULES_ON, &c, &r);
    assert_int_not_equal(rc, 0);
    assert_non_null(strstr(r.error, "submodule 'lib': "));
    assert_non_null(strstr(r.error, "not found"));
    vk_buf_release(&c.b);
}

/* Issue 12 item 7: a hostile .gitmodules is refused before git sees its URLs and paths,
 * with an error naming the submodule. */
static void test_hostile_submodules(void **state)
{
    (void)state;
    char leaf[65], sha[65], prep[800], pwned[500], escape[500];
    make_repo("leaf2", "echo leaf > leaf.txt", leaf);
    snprintf(pwned, sizeof pwned, "%s/pwned", g_root);
    snprintf(escape, sizeof escape, "%s/escape", g_root);
    struct {
        const char *name;
        const char *prep_fmt; /* %s: the leaf commit, then (ext only) the pwned path */
        const char *want;     /* in the error */
    } cases[] = {
        {"ext",
         "gm submodule.evil.path x && gm submodule.evil.url 'ext::sh -c touch%% %2$s' && "
         "link %1$s x",
         "submodule 'evil': its url 'ext::sh -c touch% "},
        {"fd", "gm submodule.evil.path x && gm submodule.evil.url 'fd::17' && link %1$s x",
         "'<transport>::' urls (ext::, fd::) run commands and are refused"},
        {"esc",
         "gm submodule.evil.path ../escape && gm submodule.evil.url ../leaf2.git && "
         "link %1$s x",
         "submodule 'evil': its path '../escape' is refused"},
        {"ctl",
         "gm submodule.evil.path \"$(printf 'x\\033[31m')\" && "
         "gm submodule.evil.url ../leaf2.git && link %1$s x",
         "submodule 'evil': its path 'x?[31m' is refused"},
        {"dash", "gm submodule.evil.path y && gm submodule.evil.url -uhelp && link %1$s y",
         "submodule 'evil': its url '-uhelp' is refused: a url starting with '-'"},
        {"dotgit",
         "gm submodule.evil.path .git/hooks && gm submodule.evil.url ../leaf2.git && "
         "link %1$s x",
         "submodule 'evil': its path '.git/hooks' is refused"},
        {"sshdash",
         "gm submodule.evil.path y && gm submodule.evil.url 'ssh://-oProxyCommand=x/y' && "
         "link %1$s y",
         "a host starting with '-'"},
    };
    for (size_t i = 0; i < VK_ARRAY_LEN(cases); i++) {
        snprintf(prep, sizeof prep, cases[i].prep_fmt, leaf, pwned);
        char name[32];
        snprintf(name, sizeof name, "evil-%s", cases[i].name);
        make_repo(name, prep, sha);
        struct collected c;
        struct vk_exec_result r;
        int rc = run_sub(name, name, sha, "echo ran\n", VK_EXEC_SUBMODULES_RECURSIVE, &c, &r);
        print_message("%s: %s\n", name, r.error);
        assert_int_equal(rc, VK_EPERM);
        assert_non_null(strstr(r.error, cases[i].want));
        assert_null(strstr(outs(&c), "ran\n"));
        vk_buf_release(&c.b);
    }
    assert_false(path_exists(pwned));
    assert_false(path_exists(escape));
    assert_false(path_exists("/tmp/pwned"));
}

/* Issue 12 item 7: recursion is bounded: 8 levels of nested submodules check out, a 9th
 * fails; a .gitmodules of more than 64 submodules fails. The chain is one repository
 * whose commit k records commit k-1 as its submodule "s" (url "../chain.git": itself). */
static void test_submodule_limits(void **state)
{
    (void)state;
    char dir[500], cmd[800], shas[10][65];
    snprintf(dir, sizeof dir, "%s/sm", g_root);
    assert_int_equal(sh("mkdir -p %s && cd %s && " GITC " init -q --bare chain.git && " GITC
                        " init -q chain.w && cd chain.w && echo 0 > n && " GITC " add -A && " GITC
                        " commit -qm c0 && for k in 1 2 3 4 5 6 7 8 9; do prev=$(git rev-parse "
                        "HEAD) && echo $k > n && rm -rf s && " GITC
                        " config -f .gitmodules submodule.s.path s && " GITC
                        " config -f .gitmodules submodule.s.url ../chain.git && " GITC
                        " rm -q --cached --ignore-unmatch s && " GITC
                        " update-index --add --cacheinfo 160000,$prev,s && mkdir -p s && " GITC
                        " add -A && " GITC " commit -qm c$k && " GITC " tag c$k; done && " GITC
                        " push -q --tags %s/chain.git HEAD:main",
                        dir, dir, dir),
                     0);
    for (int k = 8; k <= 9; k++) {
        snprintf(cmd, sizeof cmd, "git -C %s/chain.w rev-parse c%d", dir, k);
        read_line(cmd, shas[k], sizeof shas[k]);
        assert_int_equal(strlen(shas[k]), 40);
    }
    struct collected c;
    struct vk_exec_result r;
    assert_int_equal(run_sub("deep8", "chain", shas[8], "cat s/s/s/s/s/s/s/s/n\n",
                             VK_EXEC_SUBMODULES_RECURSIVE, &c, &r),
                     0);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(outs(&c), "0\n"));
    vk_buf_release(&c.b);
    int rc = run_sub("deep9", "chain", shas[9], "true\n", VK_EXEC_SUBMODULES_RECURSIVE, &c, &r);
    assert_int_equal(rc, VK_ETOOBIG);
    assert_non_null(strstr(r.error, "submodules nested deeper than 8 levels"));
    vk_buf_release(&c.b);
    /* one level only with #true: no limit reached */
    assert_int_equal(
        run_sub("deep9a", "chain", shas[9], "cat s/n\n", VK_EXEC_SUBMODULES_ON, &c, &r), 0);
    assert_non_null(strstr(outs(&c), "8\n"));
    vk_buf_release(&c.b);

    char many[65];
    make_repo("many", "for i in $(seq 1 65); do gm submodule.m$i.path m$i; done", many);
    rc = run_sub("many", "many", many, "true\n", VK_EXEC_SUBMODULES_ON, &c, &r);
    assert_int_equal(rc, VK_ETOOBIG);
    assert_non_null(strstr(r.error, "'.gitmodules' lists more than 64 submodules"));
    vk_buf_release(&c.b);
}

/* Issue 12 item 7: `checkout #false`: an empty workspace, no git, no checkout sha. */
static void test_no_checkout(void **state)
{
    (void)state;
    struct vk_exec_spec s =
        base_spec("gitnone", "echo n=$(ls -A | wc -l) sha=[$VULCAN_CHECKOUT_SHA]\n");
    const char *inject[] = {"VULCAN_CHECKOUT_SHA=forged"};
    s.env = inject;
    s.nenv = 1;
    s.repository_url = g_url;
    s.commit_sha = g_sha1;
    s.no_checkout = true;
    s.checkout_submodules = VK_EXEC_SUBMODULES_ON; /* ignored */
    struct collected c;
    struct vk_exec_result r;
    assert_int_equal(run(&s, &c, &r), 0);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(outs(&c), "n=0 sha=[]\n"));
    assert_null(strstr(outs(&c), "[vulcan] checkout"));
    assert_int_equal(r.checkout_ms, 0);
    vk_buf_release(&c.b);
}

/* Issue 12 item 7: `checkout { lfs #true }`: the LFS objects come from the origin into the
 * mirror, and from the mirror into the workspace; without it the pointers stay; without
 * git-lfs on the worker the fragment fails saying so. */
static void test_lfs(void **state)
{
    (void)state;
    char dir[500], sha[65], cmd[800];
    snprintf(dir, sizeof dir, "%s/lfs", g_root);
    /* git-lfs pushes its objects only to a URL remote (file://), not to a plain path */
    assert_int_equal(sh("mkdir -p %s && cd %s && " GITC " init -q --bare origin.git && " GITC
                        " init -q w && cd w && git lfs install --local >/dev/null && git lfs "
                        "track '*.bin' >/dev/null && echo big-content > a.bin && " GITC
                        " add -A && " GITC " commit -qm lfs && " GITC
                        " push -q file://%s/origin.git HEAD:main",
                        dir, dir, dir),
                     0);
    snprintf(cmd, sizeof cmd, "git -C %s/w rev-parse HEAD", dir);
    read_line(cmd, sha, sizeof sha);
    assert_int_equal(strlen(sha), 40);
    char url[600];
    snprintf(url, sizeof url, "file://%s/origin.git", dir);
    struct vk_exec_spec s = base_spec("lfs0", "cat a.bin\ngit status --porcelain | wc -l\n");
    s.repository_url = url;
    s.commit_sha = sha;
    struct collected c;
    struct vk_exec_result r;
    assert_int_equal(run(&s, &c, &r), 0);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(outs(&c), "version https://git-lfs.github.com/spec/v1"));
    vk_buf_release(&c.b);

    s.fragment_id = "lfs1";
    s.checkout_lfs = true;
    assert_int_equal(run(&s, &c, &r), 0);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(outs(&c), "big-content\n0\n"));
    assert_non_null(strstr(outs(&c), "[vulcan] git lfs: files checked out"));
    char hex[65];
    assert_int_equal(vk_sha256_hex(url, strlen(url), hex), 0);
    assert_int_equal(sh("test -n \"$(find %s/%s.git/lfs/objects -type f)\"", g_env.mirror_dir, hex),
                     0);
    vk_buf_release(&c.b);

    /* no git-lfs on this worker */
    char *saved = g_env.git_lfs_path;
    g_env.git_lfs_path = NULL;
    s.fragment_id = "lfs2";
    memset(&r, 0, sizeof(r));
    int rc = run(&s, &c, &r);
    g_env.git_lfs_path = saved;
    assert_int_equal(rc, VK_ENOTFOUND);
    assert_string_equal(r.error, "checkout { lfs #true } needs git-lfs on this worker");
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
        cmocka_unit_test(test_submodules),
        cmocka_unit_test(test_hostile_submodules),
        cmocka_unit_test(test_submodule_limits),
        cmocka_unit_test(test_no_checkout),
        cmocka_unit_test(test_lfs),
        cmocka_unit_test(test_bad_repository),
        cmocka_unit_test(test_git_inside_sandbox),
        cmocka_unit_test(test_concurrent_checkouts),
    };
    return cmocka_run_group_tests(tests, setup, env_teardown);
}
