/*
 * checkout.c — a commit of a mirror into a workspace: `git clone --shared
 * --no-checkout` (objects borrowed through alternates: nothing is copied, which
 * is why mirror commands never prune) and a detached checkout. Runs without the
 * mirror lock: it only reads the mirror.
 */
#include "git_int.h"

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
