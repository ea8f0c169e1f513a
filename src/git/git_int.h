/*
 * git_int.h — private to the git module (src/git/ files): the mirror handle and
 * the process runner every git command goes through.
 */
#ifndef VULCAN_GIT_INT_H
#define VULCAN_GIT_INT_H

#include "vulcan/git.h"

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define VK__GIT_MAX_ERR_OUT 4096 /* bytes of git's stderr kept for messages */
#define VK__GIT_MAX_GLOB 1024
#define VK__GIT_NENV 9
#define VK__GIT_PATH "/usr/local/bin:/usr/bin:/bin" /* PATH of git unless opts.path */

struct vk_git_mirror {
    char *url;
    char *dir;  /* <cache>/<hex>.git */
    char *lock; /* <cache>/<hex>.lock */
    char *cache;
    char *git;
    int64_t timeout_ms;
    size_t max_blob;
    vk_git_cancel_fn cancel;
    void *cancel_ctx;
    vk_git_output_fn on_stderr;
    void *on_stderr_ctx;
    struct vk_git_stats stats;
    const struct vk_git_url_policy *policy; /* borrowed; NULL: none */
    char *envp[VK__GIT_NENV + 1];
};

/* Monotonic milliseconds. */
int64_t vk__git_mono_ms(void);

/* True when the handle's cancel callback asks to stop. */
bool vk__git_cancelled(struct vk_git_mirror *m);

/*
 * Start git with `argv` (argv[0] is replaced by the handle's git) in its own process
 * group, stdin from `in_fd` (-1: /dev/null), stdout to `out_fd`, stderr to `err_fd` (-1:
 * /dev/null), SIGPIPE at its default and no signal blocked. On success *pid is the child.
 * Returns 0 or VK_EIO.
 */
int vk__git_spawn(struct vk_git_mirror *m, char **argv, int in_fd, int out_fd, int err_fd,
                  pid_t *pid, struct vk_err *err);

/*
 * Run git with `argv` (argv[0] replaced). Stdout goes to `out` (NULL: discarded; capped
 * by its max: VK_ETOOBIG), stderr to `errout` (NULL: discarded) and to the handle's
 * on_stderr callback. *status gets the exit status (-1 when killed). Returns 0 when git
 * ran to the end (whatever its status), VK_ETIMEDOUT, VK_EAGAIN (cancelled), VK_ETOOBIG,
 * VK_EIO. `what` names the command in messages.
 */
int vk__git_run(struct vk_git_mirror *m, const char *what, char **argv, struct vk_buf *out,
                struct vk_buf *errout, int *status, struct vk_err *err);

/* vk__git_run() requiring exit status 0; else `fail_code` with git's first stderr line. */
int vk__git_run_ok(struct vk_git_mirror *m, const char *what, char **argv, struct vk_buf *out,
                   int fail_code, struct vk_err *err);

/* Take the mirror's lock (flock of <hex>.lock), waiting at most the handle's timeout and
 * giving up on cancel; *fd_out is to be given to vk__git_unlock(). Returns 0, VK_EAGAIN,
 * VK_ETIMEDOUT, VK_EIO. */
int vk__git_lock(struct vk_git_mirror *m, int *fd_out, struct vk_err *err);

/* Release a lock of vk__git_lock(); accepts -1. */
void vk__git_unlock(int fd);

/* The options `m` was opened with (strings borrowed from `m`), for a handle on another
 * repository in the same cache. Returns 0. */
int vk__git_opts(const struct vk_git_mirror *m, struct vk_git_opts *o);

/* The cache directory of `m`; returns borrowed (valid until vk_git_mirror_free()). */
const char *vk__git_cache_dir(const struct vk_git_mirror *m);

/* True when the mirror directory holds a repository. */
bool vk__git_mirror_exists(const struct vk_git_mirror *m);

/* Clones plus fetches so far: a change means the mirror got new objects. */
unsigned vk__git_syncs(const struct vk_git_mirror *m);

/* `rev-parse --verify` of `spec` in the mirror into `out`; VK_ENOTFOUND when unknown. */
int vk__git_rev_parse(struct vk_git_mirror *m, const char *spec, char out[VK_GIT_SHA_LEN],
                      struct vk_err *err);

/* True when the 40 or 64 hex digit name of the all-zero object ("none" in webhooks). */
bool vk__git_zero(const char *sha);

/* Fill *out from the raw commit object `data` (`len` bytes; possibly cut at
 * VK_GIT_MAX_MESSAGE): author and the message, copied into `pool`. */
int vk__git_commit_parse(const char *data, size_t len, struct vk_pool *pool,
                         struct vk_git_commit *out, struct vk_err *err);

/* Validate a workflow glob; *pn receives the length of its fixed directory part. */
int vk__git_check_glob(const char *glob, size_t *pn, struct vk_err *err);

/* Under a policy: check the mirror's URL (resolving it) and fill `cfg` with the "-c"
 * arguments of a network command (no redirects, the checked address pinned), *n of them
 * (at most 4). Without a policy *n is 0. Returns 0, VK_EPERM, VK_EIO. */
int vk__git_net_args(struct vk_git_mirror *m, char cfg[4][400], size_t *n, struct vk_err *err);

/* '/' characters in `s`. */
size_t vk__git_slashes(const char *s);

#endif /* VULCAN_GIT_INT_H */
