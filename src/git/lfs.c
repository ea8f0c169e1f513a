/*
 * lfs.c — `checkout { lfs #true }`: Git LFS files of a workspace, through the
 * mirror. The mirror fetches the LFS objects of the wanted commits from its
 * origin (`git lfs fetch origin SHA…`, under the mirror's lock: the mirror
 * caches LFS objects as it caches commits); the workspace, whose origin is
 * the mirror's directory, fetches HEAD's objects from it (git-lfs reads a
 * local remote's lfs/objects directly, no LFS server) and checks them out.
 * The objects are copied into the workspace, so a script's `git lfs` never
 * writes into the shared mirror.
 */
#include "git_int.h"

#include <stdio.h>
#include <string.h>

#define MAX_LFS_COMMITS 4

int vk_git_lfs_checkout(struct vk_git_mirror *m, const char *workspace, const char *const *commits,
                        size_t ncommits, struct vk_err *err)
{
    if (!workspace || workspace[0] != '/')
        return vk_err_set(err, VK_EINVAL, "the workspace must be an absolute path");
    if (ncommits == 0 || ncommits > MAX_LFS_COMMITS)
        return vk_err_set(err, VK_EINVAL, "1 to %d commits for git lfs fetch", MAX_LFS_COMMITS);
    for (size_t i = 0; i < ncommits; i++)
        if (!vk_git_valid_sha(commits[i]))
            return vk_err_set(err, VK_EINVAL, "invalid commit id '%.80s'",
                              commits[i] ? commits[i] : "");
    char *version[] = {NULL, "lfs", "version", NULL};
    int status = -1;
    int rc = vk__git_run(m, "lfs version", version, NULL, NULL, &status, err);
    if (rc < 0)
        return rc;
    if (status != 0)
        return vk_err_set(err, VK_ENOTFOUND, "git-lfs is not installed");

    char *fetch[5 + 1 + MAX_LFS_COMMITS + 1] = {NULL, "-C", m->dir, "lfs", "fetch", "origin"};
    for (size_t i = 0; i < ncommits; i++)
        fetch[6 + i] = (char *)commits[i];
    fetch[6 + ncommits] = NULL;
    int fd = -1;
    rc = vk__git_lock(m, &fd, err);
    if (rc == 0)
        rc = vk__git_run_ok(m, "lfs fetch", fetch, NULL, VK_EIO, err);
    vk__git_unlock(fd);
    if (rc < 0)
        return rc;

    char *install[] = {NULL, "-C", (char *)workspace, "lfs", "install", "--local", NULL};
    char *wfetch[] = {NULL, "-C", (char *)workspace, "lfs", "fetch", "origin", "HEAD", NULL};
    char *co[] = {NULL, "-C", (char *)workspace, "lfs", "checkout", NULL};
    struct vk_buf ignored = VK_BUF_INIT(1u << 16); /* install's chatter on stdout */
    rc = vk__git_run_ok(m, "lfs install", install, &ignored, VK_EIO, err);
    vk_buf_release(&ignored);
    if (rc == 0)
        rc = vk__git_run_ok(m, "lfs fetch", wfetch, NULL, VK_EIO, err);
    if (rc == 0)
        rc = vk__git_run_ok(m, "lfs checkout", co, NULL, VK_EIO, err);
    return rc;
}
