/*
 * checkout.c — a commit of a mirror into a workspace: `git clone --shared
 * --no-checkout` (objects borrowed through alternates: nothing is copied, which
 * is why mirror commands never prune) and a detached checkout. Runs without the
 * mirror lock: it only reads the mirror.
 */
#include "git_int.h"

#include <stdio.h>
#include <string.h>

static int check_args(const char *sha, const char *workspace, struct vk_err *err)
{
    if (!vk_git_valid_sha(sha))
        return vk_err_set(err, VK_EINVAL, "invalid commit id '%.80s'", sha ? sha : "");
    if (!workspace || workspace[0] != '/')
        return vk_err_set(err, VK_EINVAL, "the workspace must be an absolute path");
    return 0;
}

/* The detached checkout of `sha` in a workspace that holds its objects. */
static int detach(struct vk_git_mirror *m, const char *workspace, const char *sha,
                  struct vk_err *err)
{
    char *co[] = {
        NULL,       "-C",      (char *)workspace, "-c",        "advice.detachedHead=false",
        "checkout", "--quiet", "--detach",        (char *)sha, "--",
        NULL};
    return vk__git_run_ok(m, "checkout", co, NULL, VK_EIO, err);
}

int vk_git_checkout(struct vk_git_mirror *m, const char *sha, const char *workspace,
                    struct vk_err *err)
{
    int rc0 = check_args(sha, workspace, err);
    if (rc0 < 0)
        return rc0;
    char *clone[] = {NULL,   "clone",           "--shared", "--no-checkout", "--quiet", "--",
                     m->dir, (char *)workspace, NULL};
    int rc = vk__git_run_ok(m, "clone", clone, NULL, VK_EIO, err);
    if (rc < 0)
        return rc;
    return detach(m, workspace, sha, err);
}

int vk_git_checkout_shallow(struct vk_git_mirror *m, const char *sha, const char *workspace,
                            uint32_t depth, struct vk_err *err)
{
    int rc0 = check_args(sha, workspace, err);
    if (rc0 < 0)
        return rc0;
    if (depth == 0)
        return vk_err_set(err, VK_EINVAL, "checkout depth must be at least 1");
    char url[4200], dep[32];
    int n = snprintf(url, sizeof url, "file://%s", m->dir);
    if (n < 0 || (size_t)n >= sizeof url)
        return vk_err_set(err, VK_ETOOBIG, "mirror path too long");
    snprintf(dep, sizeof dep, "--depth=%u", depth);
    char *init[] = {NULL, "init", "--quiet", "--", (char *)workspace, NULL};
    int rc = vk__git_run_ok(m, "init", init, NULL, VK_EIO, err);
    if (rc < 0)
        return rc;
    char *fetch[] = {NULL, "-C", (char *)workspace, "fetch", "--quiet", "--no-tags", dep,
                     "--", url,  (char *)sha,       NULL};
    rc = vk__git_run_ok(m, "fetch", fetch, NULL, VK_EIO, err);
    if (rc < 0)
        return rc;
    return detach(m, workspace, sha, err);
}

int vk_git_merge_into(struct vk_git_mirror *m, const char *workspace, const char *head,
                      char out[VK_GIT_SHA_LEN], struct vk_err *err)
{
    int rc0 = check_args(head, workspace, err);
    if (rc0 < 0)
        return rc0;
    char *merge[] = {NULL,
                     "-C",
                     (char *)workspace,
                     "-c",
                     "user.name=Vulcan CI",
                     "-c",
                     "user.email=vulcan@localhost",
                     "-c",
                     "commit.gpgsign=false",
                     "merge",
                     "--quiet",
                     "--no-ff",
                     "--no-edit",
                     "--no-verify",
                     "-m",
                     "Merge the pull request's head into its base (Vulcan CI)",
                     (char *)head,
                     NULL};
    struct vk_buf eo = VK_BUF_INIT(1u << 16);
    int status = 0;
    int rc = vk__git_run(m, "merge", merge, NULL, &eo, &status, err);
    vk_buf_release(&eo);
    if (rc < 0)
        return rc;
    if (status != 0) {
        char *abort_[] = {NULL, "-C", (char *)workspace, "merge", "--abort", NULL};
        struct vk_err ignored;
        (void)vk__git_run_ok(m, "merge --abort", abort_, NULL, VK_EIO, &ignored);
        return vk_err_set(err, VK_ECONFLICT, "does not merge cleanly");
    }
    char *rev[] = {NULL, "-C", (char *)workspace, "rev-parse", "HEAD", NULL};
    struct vk_buf o = VK_BUF_INIT(256);
    rc = vk__git_run_ok(m, "rev-parse", rev, &o, VK_EIO, err);
    size_t n = o.len;
    while (rc == 0 && n && (o.data[n - 1] == '\n' || o.data[n - 1] == '\r'))
        n--;
    if (rc == 0 && (n >= VK_GIT_SHA_LEN || n < 40))
        rc = vk_err_set(err, VK_EIO, "git rev-parse: no commit name");
    if (rc == 0) {
        memcpy(out, o.data, n);
        out[n] = '\0';
        if (!vk_git_valid_sha(out))
            rc = vk_err_set(err, VK_EIO, "git rev-parse: no commit name");
    }
    vk_buf_release(&o);
    return rc;
}
