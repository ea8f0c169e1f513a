/*
 * checkout.c — a commit of a mirror into a workspace: `git clone --shared
 * --no-checkout` (objects borrowed through alternates: nothing is copied, which
 * is why mirror commands never prune) and a detached checkout. Runs without the
 * mirror lock: it only reads the mirror.
 */
#include "git_int.h"

#include <stdio.h>

int vk_git_checkout(struct vk_git_mirror *m, const char *sha, const char *workspace,
                    struct vk_err *err)
{
    if (!vk_git_valid_sha(sha))
        return vk_err_set(err, VK_EINVAL, "invalid commit id '%.80s'", sha ? sha : "");
    if (!workspace || workspace[0] != '/')
        return vk_err_set(err, VK_EINVAL, "the workspace must be an absolute path");
    char *clone[] = {NULL,   "clone",           "--shared", "--no-checkout", "--quiet", "--",
                     m->dir, (char *)workspace, NULL};
    int rc = vk__git_run_ok(m, "clone", clone, NULL, VK_EIO, err);
    if (rc < 0)
        return rc;
    char *co[] = {
        NULL,       "-C",      (char *)workspace, "-c",        "advice.detachedHead=false",
        "checkout", "--quiet", "--detach",        (char *)sha, "--",
        NULL};
    return vk__git_run_ok(m, "checkout", co, NULL, VK_EIO, err);
}

int vk_git_checkout_shallow(struct vk_git_mirror *m, const char *sha, const char *workspace,
                            uint32_t depth, struct vk_err *err)
{
    if (!vk_git_valid_sha(sha))
        return vk_err_set(err, VK_EINVAL, "invalid commit id '%.80s'", sha ? sha : "");
    if (!workspace || workspace[0] != '/')
        return vk_err_set(err, VK_EINVAL, "the workspace must be an absolute path");
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
    char *co[] = {
        NULL,       "-C",      (char *)workspace, "-c",        "advice.detachedHead=false",
        "checkout", "--quiet", "--detach",        (char *)sha, "--",
        NULL};
    return vk__git_run_ok(m, "checkout", co, NULL, VK_EIO, err);
}
