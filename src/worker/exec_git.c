/*
 * exec_git.c — check a repository out into a workspace through a per-worker
 * bare mirror cache.
 *
 *   <mirror_dir>/<sha256(url)>.git   bare mirror (git clone --mirror)
 *   <mirror_dir>/<sha256(url)>.lock  flock()ed while the mirror is created or
 *                                    updated (threads and worker processes)
 *
 * The mirror is cloned into a temporary name and renamed into place, so a
 * half-made mirror is never used. It is fetched only when the wanted commit is
 * missing (`git cat-file -e SHA^{commit}`) or when a branch head is asked for.
 * gc.auto is off for mirror fetches: workspaces borrow the mirror's objects
 * through alternates (`git clone --shared`), so objects must never be pruned
 * under them. The workspace checkout itself runs without the lock.
 *
 * git always runs through fork+exec with an argv array (URLs are hostile; "--"
 * ends the options), with a timeout, GIT_TERMINAL_PROMPT=0, only the
 * transports file, git, http, https and ssh allowed, and a minimal
 * environment (PATH, HOME of the worker, LC_ALL=C).
 */
#include "exec_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define GIT_PREFIX "[vulcan] git: "

struct git_run {
    const struct vk_exec_env *env;
    struct vk__exec_sink *sink;
    struct vk_exec_cancel *cancel;
    struct vk_pool *pool;
    char *envp[8];
};

bool vk__exec_valid_sha(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n < 4 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') ||
              (s[i] >= 'A' && s[i] <= 'F')))
            return false;
    return true;
}

bool vk__exec_valid_branch(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > VK_EXEC_MAX_REF || s[0] == '-' || s[0] == '/' || s[n - 1] == '/' ||
        s[n - 1] == '.' || strstr(s, "..") || strstr(s, "@{") || strstr(s, "//") ||
        (n >= 5 && strcmp(s + n - 5, ".lock") == 0))
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= ' ' || c == 0x7f || strchr("~^:?*[\\", c))
            return false;
    }
    return true;
}

bool vk__exec_valid_url(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > VK_EXEC_MAX_URL || s[0] == '-')
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= ' ' || c == 0x7f)
            return false;
    }
    /* "transport::address" would select a remote helper (ext::, fd::): never. */
    const char *dc = strstr(s, "::");
    const char *sl = strchr(s, '/');
    if (dc && (!sl || dc < sl))
        return false;
    return true;
}

/* The URL as shown in the log: user information (tokens) replaced by "***". */
static void redact_url(const char *url, char *out, size_t cap)
{
    const char *scheme = strstr(url, "://");
    const char *host = scheme ? scheme + 3 : url;
    const char *slash = strchr(host, '/');
    const char *at = strchr(host, '@');
    if (scheme && at && (!slash || at < slash))
        snprintf(out, cap, "%.*s***%s", (int)(host - url), url, at);
    else
        snprintf(out, cap, "%s", url);
}

/* The git subcommand in `args` (for messages): the first word that is not an option. */
static const char *subcommand(char **args)
{
    for (size_t i = 0; args[i]; i++) {
        if (strcmp(args[i], "-c") == 0 && args[i + 1]) {
            i++;
            continue;
        }
        if (args[i][0] != '-')
            return args[i];
    }
    return "command";
}

/*
 * Run git with `args` (NULL-terminated, after the program name) in `cwd`.
 * Output goes to the sink with a prefix, or to `capture`. Returns 0 when git
 * exited 0, VK_EIO when it failed, VK_ETIMEDOUT / VK_EAGAIN (cancelled).
 */
static int run_git(struct git_run *g, const char *cwd, char **args, struct vk_buf *capture,
                   struct vk_err *err)
{
    struct vk__exec_strv argv = {0};
    int rc = vk__exec_strv_push(&argv, g->env->git_path);
    for (size_t i = 0; rc == 0 && args[i]; i++)
        rc = vk__exec_strv_push(&argv, args[i]);
    if (rc < 0) {
        vk__exec_strv_release(&argv);
        return vk_err_set(err, VK_ENOMEM, "out of memory");
    }
    struct vk__exec_child c = {.path = g->env->git_path,
                               .argv = argv.v,
                               .envp = g->envp,
                               .cwd = cwd,
                               .rlimits = true,
                               .timeout_ms = g->env->checkout_timeout_ms,
                               .grace_ms = 2000,
                               .cancel = g->cancel,
                               .sink = g->sink,
                               .line_prefix = GIT_PREFIX,
                               .capture = capture};
    struct vk__exec_outcome o;
    rc = vk__exec_child_run(&c, &o, err);
    vk__exec_strv_release(&argv);
    if (rc < 0)
        return rc;
    if (o.cancelled)
        return vk_err_set(err, VK_EAGAIN, "checkout cancelled");
    if (o.timed_out)
        return vk_err_set(err, VK_ETIMEDOUT, "git %s timed out after %lld ms", subcommand(args),
                          (long long)g->env->checkout_timeout_ms);
    if (o.exit_code != 0)
        return vk_err_set(err, VK_EIO, "git %s failed (exit %d, signal %d)", subcommand(args),
                          o.exit_code, o.signal);
    return 0;
}

static int lock_wait(int fd, int op, struct git_run *g, struct vk_err *err)
{
    int64_t until = vk_time_mono_ns() / 1000000 + g->env->checkout_timeout_ms;
    for (;;) {
        if (flock(fd, op | LOCK_NB) == 0)
            return 0;
        if (errno != EWOULDBLOCK && errno != EINTR)
            return vk_err_errno(err, "flock mirror");
        if (g->cancel && atomic_load(&g->cancel->requested))
            return vk_err_set(err, VK_EAGAIN, "checkout cancelled");
        if (vk_time_mono_ns() / 1000000 > until)
            return vk_err_set(err, VK_ETIMEDOUT, "timed out waiting for the mirror lock");
        vk__exec_sleep_ms(20);
    }
}

/* Resolve `rev` to a full commit id in `full` (65 bytes). */
static int rev_parse(struct git_run *g, char *gitdir_opt, const char *rev, char *full,
                     struct vk_err *err)
{
    struct vk_buf out = VK_BUF_INIT(4096);
    char *args[] = {gitdir_opt, "rev-parse", "--verify", "--quiet", (char *)0, NULL};
    char *r = vk__exec_pool_printf(g->pool, "%s", rev);
    args[4] = r;
    int rc = r ? run_git(g, NULL, args, &out, err) : VK_ENOMEM;
    if (rc == 0) {
        size_t n = strspn(out.data ? out.data : "", "0123456789abcdef");
        if (n < 40 || n > 64)
            rc = vk_err_set(err, VK_EIO, "git rev-parse gave no commit id");
        else
            snprintf(full, 65, "%.*s", (int)n, out.data);
    }
    vk_buf_release(&out);
    return rc;
}

/* Make sure the mirror exists (clone into a temporary name, then rename). */
static int ensure_mirror(struct git_run *g, const char *url, const char *mirror, bool *fresh,
                         struct vk_err *err)
{
    struct stat st;
    *fresh = false;
    if (stat(mirror, &st) == 0 && S_ISDIR(st.st_mode))
        return 0;
    char *tmp = vk__exec_pool_printf(g->pool, "%s.tmp-%ld", mirror, (long)getpid());
    if (!tmp)
        return vk_err_set(err, VK_ENOMEM, "out of memory");
    (void)vk__exec_rmtree(tmp, NULL);
    char *u = vk__exec_pool_printf(g->pool, "%s", url);
    char *args[] = {"-c", "gc.auto=0", "clone", "--mirror", "--quiet", "--", u, tmp, NULL};
    int rc = u ? run_git(g, g->env->mirror_dir, args, NULL, err) : VK_ENOMEM;
    if (rc == 0 && rename(tmp, mirror) < 0)
        rc = vk_err_errno(err, "rename mirror");
    if (rc < 0)
        (void)vk__exec_rmtree(tmp, NULL);
    else
        *fresh = true;
    return rc;
}

static int fetch_mirror(struct git_run *g, char *gitdir_opt, const char *extra, struct vk_err *err)
{
    char *x = extra ? vk__exec_pool_printf(g->pool, "%s", extra) : NULL;
    char *args[] = {gitdir_opt, "-c",     "gc.auto=0", "fetch", "--quiet",
                    "--prune",  "origin", x,           NULL};
    return run_git(g, NULL, args, NULL, err);
}

/* Under the mirror lock: update the mirror as needed and resolve the commit to check out. */
static int resolve(struct git_run *g, const struct vk_exec_spec *spec, const char *mirror,
                   char *full, struct vk_err *err)
{
    bool fresh;
    int rc = ensure_mirror(g, spec->repository_url, mirror, &fresh, err);
    if (rc < 0)
        return rc;
    char *gd = vk__exec_pool_printf(g->pool, "--git-dir=%s", mirror);
    if (!gd)
        return vk_err_set(err, VK_ENOMEM, "out of memory");
    const char *sha = spec->commit_sha && *spec->commit_sha ? spec->commit_sha : NULL;
    if (sha) {
        /* rev-parse --verify SHA^{commit} fails when the object is missing: fetch then. */
        char *rev = vk__exec_pool_printf(g->pool, "%s^{commit}", sha);
        if (!rev)
            return vk_err_set(err, VK_ENOMEM, "out of memory");
        struct vk_err ignored;
        if (rev_parse(g, gd, rev, full, &ignored) == 0)
            return 0;
        if (!fresh) {
            rc = fetch_mirror(g, gd, NULL, err);
            if (rc < 0)
                return rc;
            if (rev_parse(g, gd, rev, full, &ignored) == 0)
                return 0;
        }
        /* Not reachable from any ref: servers that allow it can still send it. */
        if (strlen(sha) >= 40 && fetch_mirror(g, gd, sha, &ignored) == 0 &&
            rev_parse(g, gd, rev, full, &ignored) == 0)
            return 0;
        return vk_err_set(err, VK_ENOTFOUND, "commit '%s' not found in the repository", sha);
    }
    if (!fresh) {
        rc = fetch_mirror(g, gd, NULL, err);
        if (rc < 0)
            return rc;
    }
    const char *br = spec->branch && *spec->branch ? spec->branch : NULL;
    char *rev = br ? vk__exec_pool_printf(g->pool, "refs/heads/%s^{commit}", br)
                   : vk__exec_pool_printf(g->pool, "HEAD^{commit}");
    if (!rev)
        return vk_err_set(err, VK_ENOMEM, "out of memory");
    if (rev_parse(g, gd, rev, full, err) < 0) {
        if (br)
            return vk_err_set(err, VK_ENOTFOUND, "branch '%s' not found in the repository", br);
        return vk_err_set(err, VK_ENOTFOUND, "the repository has no default branch head");
    }
    return 0;
}

int vk__exec_checkout(const struct vk_exec_env *env, const struct vk_exec_spec *spec,
                      const char *ws, struct vk_pool *pool, struct vk__exec_sink *sink,
                      struct vk_exec_cancel *cancel, const char **mirror_out, struct vk_err *err)
{
    const char *url = spec->repository_url;
    const char *sha = spec->commit_sha && *spec->commit_sha ? spec->commit_sha : NULL;
    const char *br = spec->branch && *spec->branch ? spec->branch : NULL;
    if (!vk__exec_valid_url(url))
        return vk_err_set(err, VK_EINVAL, "invalid repository url");
    if (sha && !vk__exec_valid_sha(sha))
        return vk_err_set(err, VK_EINVAL, "invalid commit sha '%.80s'", sha);
    if (!sha && br && !vk__exec_valid_branch(br))
        return vk_err_set(err, VK_EINVAL, "invalid branch name '%.80s'", br);
    if (!env->git_path)
        return vk_err_set(err, VK_ENOTFOUND, "git is not installed on this worker");

    struct git_run g = {.env = env, .sink = sink, .cancel = cancel, .pool = pool};
    g.envp[0] = "PATH=" VK_EXEC_DEFAULT_PATH;
    g.envp[1] = vk__exec_pool_printf(pool, "HOME=%s", env->git_home);
    g.envp[2] = "GIT_TERMINAL_PROMPT=0";
    g.envp[3] = "GIT_ALLOW_PROTOCOL=file:git:http:https:ssh";
    g.envp[4] = "GIT_SSH_COMMAND=ssh -o BatchMode=yes";
    g.envp[5] = "LC_ALL=C";
    g.envp[6] = NULL;
    if (!g.envp[1])
        return vk_err_set(err, VK_ENOMEM, "out of memory");

    char shown[600], hex[65];
    redact_url(url, shown, sizeof shown);
    VK_ASSERT(vk_sha256_hex(url, strlen(url), hex) == 0);
    char *mirror = vk__exec_pool_printf(pool, "%s/%s.git", env->mirror_dir, hex);
    char *lockp = vk__exec_pool_printf(pool, "%s/%s.lock", env->mirror_dir, hex);
    if (!mirror || !lockp)
        return vk_err_set(err, VK_ENOMEM, "out of memory");
    vk__exec_sink_notice(sink, "[vulcan] checkout %s at %s%s\n", shown,
                         sha ? sha : (br ? "branch " : "the default branch"),
                         sha ? "" : (br ? br : ""));

    int64_t t0 = vk_time_mono_ns();
    int lockfd = open(lockp, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (lockfd < 0)
        return vk_err_errno(err, "open mirror lock");
    char full[65];
    int rc = lock_wait(lockfd, LOCK_EX, &g, err);
    if (rc == 0)
        rc = resolve(&g, spec, mirror, full, err);
    close(lockfd); /* releases the lock */
    if (rc < 0)
        return rc;

    char *wsd = vk__exec_pool_printf(pool, "%s", ws);
    char *fulld = vk__exec_pool_printf(pool, "%s", full);
    if (!wsd || !fulld)
        return vk_err_set(err, VK_ENOMEM, "out of memory");
    char *clone[] = {"clone", "--shared", "--no-checkout", "--quiet", "--", mirror, wsd, NULL};
    rc = run_git(&g, env->mirror_dir, clone, NULL, err);
    if (rc < 0)
        return rc;
    char *co[] = {"-c", "advice.detachedHead=false", "checkout", "--quiet", "--detach", fulld,
                  NULL};
    rc = run_git(&g, wsd, co, NULL, err);
    if (rc < 0)
        return rc;
    vk__exec_sink_notice(sink, "[vulcan] checkout done: %s in %lld ms\n", full,
                         (long long)((vk_time_mono_ns() - t0) / 1000000));
    *mirror_out = mirror;
    return 0;
}
