/*
 * exec_git.c — check the spec's repository out into the workspace through the
 * worker's mirror cache (<work_dir>/mirrors), with the git module: the same
 * validators, mirror-and-lock scheme and process runner as the server. What git
 * prints goes to the attempt's output with a "[vulcan] git: " prefix; a cancel
 * of the attempt stops git (and a wait for the mirror lock) within 100 ms.
 */
#include "exec_int.h"
#include "vulcan/git.h"

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#define GIT_PREFIX "[vulcan] git: "

struct git_ctx {
    struct vk__exec_sink *sink;
    struct vk_exec_cancel *cancel;
    bool bol; /* the next byte starts a line of git's output */
    struct vk_pool *pool;
    struct vk__exec_strv *mirrors; /* the submodules' mirrors are appended */
};

static bool git_cancelled(void *ctx)
{
    struct git_ctx *g = ctx;
    return g->cancel && atomic_load(&g->cancel->requested);
}

static void git_stderr(void *ctx, const char *data, size_t len)
{
    struct git_ctx *g = ctx;
    vk__exec_sink_write_prefixed(g->sink, GIT_PREFIX, &g->bol, data, len);
}

/* A submodule is checked out: say so, and keep its mirror for the sandbox's binds. */
static int git_submodule(void *ctx, const char *name, const char *path, const char *url,
                         const char *sha, const char *mirror)
{
    struct git_ctx *g = ctx;
    if (!g->bol)
        vk__exec_sink_write(g->sink, "\n", 1);
    g->bol = true;
    vk__exec_sink_notice(g->sink, "[vulcan] submodule '%.80s' at %s: %s at %.12s\n", name, path,
                         url, sha);
    for (size_t i = 0; i < g->mirrors->n; i++)
        if (strcmp(g->mirrors->v[i], mirror) == 0)
            return 0;
    return vk__exec_strv_pushf(g->mirrors, g->pool, "%s", mirror);
}

/* PATH for git: git-lfs's directory first when it is not in the default one. */
static const char *git_path_for(const struct vk_exec_env *env, char *buf, size_t cap)
{
    const char *lfs = env->git_lfs_path;
    const char *slash = lfs ? strrchr(lfs, '/') : NULL;
    if (!slash || slash == lfs)
        return NULL;
    size_t n = (size_t)(slash - lfs);
    const char *std[] = {"/usr/local/bin", "/usr/bin", "/bin"};
    for (size_t i = 0; i < sizeof std / sizeof std[0]; i++)
        if (strlen(std[i]) == n && strncmp(lfs, std[i], n) == 0)
            return NULL;
    int w = snprintf(buf, cap, "%.*s:/usr/local/bin:/usr/bin:/bin", (int)n, lfs);
    return w > 0 && (size_t)w < cap ? buf : NULL;
}

int vk__exec_checkout(const struct vk_exec_env *env, const struct vk_exec_spec *spec,
                      const char *ws, struct vk_pool *pool, struct vk__exec_sink *sink,
                      struct vk_exec_cancel *cancel, struct vk__exec_strv *mirrors,
                      const char **sha_out, struct vk_err *err)
{
    const char *url = spec->repository_url;
    const char *sha = spec->commit_sha && *spec->commit_sha ? spec->commit_sha : NULL;
    const char *br = spec->branch && *spec->branch ? spec->branch : NULL;
    if (!vk_git_valid_url(url))
        return vk_err_set(err, VK_EINVAL, "invalid repository url");
    if (sha && !vk_git_valid_short_sha(sha))
        return vk_err_set(err, VK_EINVAL, "invalid commit sha '%.80s'", sha);
    if (!sha && br && !vk_git_valid_branch(br))
        return vk_err_set(err, VK_EINVAL, "invalid branch name '%.80s'", br);
    if (!env->git_path)
        return vk_err_set(err, VK_ENOTFOUND, "git is not installed on this worker");
    if (spec->checkout_lfs && !env->git_lfs_path)
        return vk_err_set(err, VK_ENOTFOUND, "checkout { lfs #true } needs git-lfs on this worker");

    char shown[600];
    vk_git_redact_url(url, shown, sizeof shown);
    vk__exec_sink_notice(sink, "[vulcan] checkout %s at %s%s\n", shown,
                         sha ? sha : (br ? "branch " : "the default branch"),
                         sha ? "" : (br ? br : ""));
    struct git_ctx g = {
        .sink = sink, .cancel = cancel, .bol = true, .pool = pool, .mirrors = mirrors};
    struct vk_git_opts o = {.git_path = env->git_path,
                            .home = env->git_home,
                            .timeout_ms = env->checkout_timeout_ms,
                            .cancel = git_cancelled,
                            .cancel_ctx = &g,
                            .on_stderr = git_stderr,
                            .on_stderr_ctx = &g};
    char pathbuf[4200];
    o.path = git_path_for(env, pathbuf, sizeof pathbuf);
    int64_t t0 = vk_time_mono_ns();
    struct vk_git_mirror *m = NULL;
    char full[VK_GIT_SHA_LEN];
    int rc = vk_git_mirror_open(env->mirror_dir, url, &o, &m, err);
    if (rc == 0 && vk__exec_strv_pushf(mirrors, pool, "%s", vk_git_mirror_path(m)) < 0)
        rc = vk_err_set(err, VK_ENOMEM, "out of memory");
    if (rc == 0 && sha)
        rc = vk_git_resolve_commit(m, sha, full, err);
    else if (rc == 0 && br)
        rc = vk_git_resolve_branch(m, br, full, err);
    else if (rc == 0)
        rc = vk_git_resolve_head(m, full, err);
    const char *base = spec->merge_into && *spec->merge_into ? spec->merge_into : NULL;
    if (base && !vk_git_valid_branch(base))
        rc = rc < 0 ? rc : vk_err_set(err, VK_EINVAL, "invalid base branch '%.80s'", base);
    char tip[VK_GIT_SHA_LEN] = "", head[VK_GIT_SHA_LEN] = "";
    if (rc == 0)
        memcpy(head, full, sizeof(head));
    if (rc == 0 && base) {
        /* A pull request builds the merge of its head into the base's tip, as GitHub
         * Actions does; the merge needs the history, so `depth` does not apply. */
        char merged[VK_GIT_SHA_LEN];
        rc = vk_git_resolve_branch(m, base, tip, err);
        if (rc == 0)
            rc = vk_git_checkout(m, tip, ws, err);
        if (rc == 0)
            rc = vk_git_merge_into(m, ws, full, merged, err);
        if (rc == VK_ECONFLICT)
            rc = vk_err_set(err, VK_ECONFLICT,
                            "the pull request's head %.12s does not merge cleanly into %s "
                            "(%.12s): resolve the conflict, or build the head itself with "
                            "checkout { ref \"head\"; }",
                            full, base, tip);
        if (rc == 0) {
            vk__exec_sink_notice(sink, "[vulcan] merged %.12s into %s (%.12s)\n", full, base, tip);
            memcpy(full, merged, sizeof(full));
        }
    } else if (rc == 0 && spec->checkout_depth > 0) {
        rc = vk_git_checkout_shallow(m, full, ws, spec->checkout_depth, err);
    } else if (rc == 0) {
        rc = vk_git_checkout(m, full, ws, err);
    }
    if (rc == 0 && spec->checkout_submodules != VK_EXEC_SUBMODULES_NONE) {
        rc = vk_git_checkout_submodules(m, url, ws,
                                        spec->checkout_submodules == VK_EXEC_SUBMODULES_RECURSIVE,
                                        git_submodule, &g, err);
    }
    if (rc == 0 && spec->checkout_lfs) {
        /* the LFS objects of the commits checked out (both sides of a merge) */
        const char *want[2] = {head, tip};
        rc = vk_git_lfs_checkout(m, ws, want, tip[0] ? 2 : 1, err);
        if (rc == VK_ENOTFOUND)
            rc = vk_err_set(err, VK_ENOTFOUND,
                            "checkout { lfs #true } needs git-lfs on this worker");
        if (rc == 0)
            vk__exec_sink_notice(sink, "[vulcan] git lfs: files checked out\n");
    }
    if (rc == 0) {
        *sha_out = vk__exec_pool_printf(pool, "%s", full);
        if (!*sha_out)
            rc = vk_err_set(err, VK_ENOMEM, "out of memory");
    }
    vk_git_mirror_free(m);
    if (!g.bol)
        vk__exec_sink_write(sink, "\n", 1);
    if (rc == VK_EAGAIN)
        return vk_err_set(err, VK_EAGAIN, "checkout cancelled");
    if (rc < 0)
        return rc;
    vk__exec_sink_notice(sink, "[vulcan] checkout done: %s in %lld ms\n", full,
                         (long long)((vk_time_mono_ns() - t0) / 1000000));
    return 0;
}
