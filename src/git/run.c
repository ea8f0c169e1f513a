/*
 * run.c — the process runner every git command of the module goes through:
 * posix_spawn() with an argv array and the handle's minimal environment, its own
 * process group (killed as a whole on timeout, cancel or runaway output), stdout
 * captured up to a cap, stderr kept for messages and passed to the caller's
 * callback as it arrives.
 */
#include "git_int.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int64_t vk__git_mono_ms(void)
{
    return vk_time_mono_ns() / 1000000;
}

bool vk__git_cancelled(struct vk_git_mirror *m)
{
    return m->cancel && m->cancel(m->cancel_ctx);
}

int vk__git_spawn(struct vk_git_mirror *m, char **argv, int in_fd, int out_fd, int err_fd,
                  pid_t *pid, struct vk_err *err)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    int rc = VK_EIO;
    *pid = -1;
    argv[0] = m->git;
    if (posix_spawn_file_actions_init(&fa) != 0)
        return vk_err_set(err, VK_EIO, "cannot start git");
    if (posix_spawnattr_init(&attr) != 0) {
        posix_spawn_file_actions_destroy(&fa);
        return vk_err_set(err, VK_EIO, "cannot start git");
    }
    sigset_t none, dfl;
    sigemptyset(&none);
    sigemptyset(&dfl);
    sigaddset(&dfl, SIGPIPE);
    int in_ok = in_fd >= 0 ? posix_spawn_file_actions_adddup2(&fa, in_fd, 0)
                           : posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    int out_ok = out_fd >= 0 ? posix_spawn_file_actions_adddup2(&fa, out_fd, 1)
                             : posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    int err_ok = err_fd >= 0 ? posix_spawn_file_actions_adddup2(&fa, err_fd, 2)
                             : posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    if (in_ok == 0 && out_ok == 0 && err_ok == 0 &&
        posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                            POSIX_SPAWN_SETSIGDEF) == 0 &&
        posix_spawnattr_setpgroup(&attr, 0) == 0 && posix_spawnattr_setsigmask(&attr, &none) == 0 &&
        posix_spawnattr_setsigdefault(&attr, &dfl) == 0) {
        int e = posix_spawn(pid, m->git, &fa, &attr, argv, m->envp);
        if (e == 0) {
            m->stats.commands++;
            rc = 0;
        } else {
            *pid = -1;
            rc = vk_err_set(err, VK_EIO, "cannot run '%s': %s", m->git, strerror(e));
        }
    } else {
        vk_err_set(err, VK_EIO, "cannot start git");
    }
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    return rc;
}

struct out {
    struct vk_buf *buf; /* may be NULL: output discarded */
    bool overflow;
};

/* Read what `*fd` has into `o` (and to `cb`); close it at EOF or on an error. */
static void drain(int *fd, struct out *o, vk_git_output_fn cb, void *ctx, char *tmp, size_t tmpsz)
{
    ssize_t r = read(*fd, tmp, tmpsz);
    if (r > 0) {
        if (cb)
            cb(ctx, tmp, (size_t)r);
        if (o->buf && !o->overflow && vk_buf_add(o->buf, tmp, (size_t)r) < 0)
            o->overflow = true;
        return;
    }
    if (r < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    close(*fd);
    *fd = -1;
}

int vk__git_run(struct vk_git_mirror *m, const char *what, char **argv, struct vk_buf *out,
                struct vk_buf *errout, int *status, struct vk_err *err)
{
    int po[2] = {-1, -1}, pe[2] = {-1, -1};
    int rc = VK_EIO;
    pid_t pid = -1;
    *status = -1;
    if (vk__git_cancelled(m))
        return vk_err_set(err, VK_EAGAIN, "git %s cancelled", what);
    if (pipe2(po, O_CLOEXEC) < 0 || pipe2(pe, O_CLOEXEC) < 0) {
        rc = vk_err_errno(err, "pipe");
        goto out;
    }
    rc = vk__git_spawn(m, argv, -1, po[1], pe[1], &pid, err);
    if (rc)
        goto out;
    rc = VK_EIO;
    close(po[1]);
    close(pe[1]);
    po[1] = pe[1] = -1;

    /* stderr goes whole to the callback (progress, complaints), its head to errout */
    struct out o = {out, false}, oe = {errout, false};
    int64_t deadline = vk__git_mono_ms() + m->timeout_ms;
    char tmp[16384];
    bool timed_out = false, cancelled = false;
    while (po[0] >= 0 || pe[0] >= 0) {
        int64_t left = deadline - vk__git_mono_ms();
        if (left <= 0) {
            timed_out = true;
            break;
        }
        if (o.overflow)
            break;
        if (vk__git_cancelled(m)) {
            cancelled = true;
            break;
        }
        struct pollfd fds[2] = {{po[0], POLLIN, 0}, {pe[0], POLLIN, 0}};
        int pr = poll(fds, 2, (int)(left > 100 ? 100 : left));
        if (pr < 0 && errno != EINTR) {
            rc = vk_err_errno(err, "poll");
            break;
        }
        if (pr <= 0)
            continue;
        if (po[0] >= 0 && fds[0].revents)
            drain(&po[0], &o, NULL, NULL, tmp, sizeof(tmp));
        if (pe[0] >= 0 && fds[1].revents)
            drain(&pe[0], &oe, m->on_stderr, m->on_stderr_ctx, tmp, sizeof(tmp));
    }
    bool killed = timed_out || cancelled || o.overflow || po[0] >= 0 || pe[0] >= 0;
    if (killed)
        kill(-pid, SIGKILL);
    int ws = 0;
    while (waitpid(pid, &ws, 0) < 0 && errno == EINTR)
        ;
    pid = -1;
    if (timed_out) {
        rc = vk_err_set(err, VK_ETIMEDOUT, "git %s timed out after %lld ms", what,
                        (long long)m->timeout_ms);
    } else if (cancelled) {
        rc = vk_err_set(err, VK_EAGAIN, "git %s cancelled", what);
    } else if (o.overflow) {
        rc = vk_err_set(err, VK_ETOOBIG, "git %s output larger than %zu bytes", what, out->max);
    } else if (killed) {
        /* rc already set by the failed poll */
    } else {
        *status = WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
        rc = 0;
    }
out:
    for (int i = 0; i < 2; i++) {
        if (po[i] >= 0)
            close(po[i]);
        if (pe[i] >= 0)
            close(pe[i]);
    }
    return rc;
}

/* The first line of git's stderr, for messages. */
static const char *first_line(struct vk_buf *b)
{
    char *nl = memchr(b->data, '\n', b->len);
    if (nl)
        *nl = '\0';
    return b->data;
}

int vk__git_run_ok(struct vk_git_mirror *m, const char *what, char **argv, struct vk_buf *out,
                   int fail_code, struct vk_err *err)
{
    struct vk_buf e = VK_BUF_INIT(VK__GIT_MAX_ERR_OUT);
    int status;
    int rc = vk__git_run(m, what, argv, out, &e, &status, err);
    if (rc == 0 && status != 0)
        rc = vk_err_set(err, fail_code, "git %s failed: %s", what, first_line(&e));
    vk_buf_release(&e);
    return rc;
}
