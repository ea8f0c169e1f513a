/*
 * exec.c — run one program with bounded time and output, for secret providers and the
 * programs the shipped providers call (age, pass). posix_spawn() with a fixed argv and
 * environment, never a shell; every descriptor of ours is O_CLOEXEC and the child closes
 * everything above 2 anyway, so a provider never sees a socket or a database of the
 * server. The child leads its own process group, which is killed as a whole when
 * anything goes wrong, and also after a normal end (before the leader is reaped, so the
 * group id cannot have been reused), so nothing the provider started lingers.
 */
#include "secrets_int.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

void vk__secrets_result_init(struct vk__secrets_result *r, size_t out_max, size_t err_max)
{
    vk_buf_init(&r->out, out_max);
    vk_buf_init(&r->err, err_max);
    r->status = -1;
    r->signal = 0;
}

static void wipe_buf(struct vk_buf *b)
{
    if (b->cap)
        explicit_bzero(b->data, b->cap);
    vk_buf_release(b);
}

void vk__secrets_result_release(struct vk__secrets_result *r)
{
    wipe_buf(&r->out);
    wipe_buf(&r->err);
}

static int64_t mono_ms(void)
{
    return vk_time_mono_ns() / 1000000;
}

static int spawn(const struct vk__secrets_cmd *cmd, int in_fd, int out_fd, int err_fd, pid_t *pid,
                 struct vk_err *err)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    *pid = -1;
    if (posix_spawn_file_actions_init(&fa) != 0)
        return vk_err_set(err, VK_ENOMEM, "cannot start '%s'", cmd->argv[0]);
    if (posix_spawnattr_init(&attr) != 0) {
        posix_spawn_file_actions_destroy(&fa);
        return vk_err_set(err, VK_ENOMEM, "cannot start '%s'", cmd->argv[0]);
    }
    sigset_t none, dfl;
    sigemptyset(&none);
    sigemptyset(&dfl);
    /* Signals the server ignores or blocks must not stay so in the provider. */
    static const int sigs[] = {SIGPIPE, SIGINT,  SIGTERM, SIGHUP,
                               SIGQUIT, SIGCHLD, SIGUSR1, SIGUSR2};
    for (size_t i = 0; i < VK_ARRAY_LEN(sigs); i++)
        sigaddset(&dfl, sigs[i]);
    int ok = in_fd >= 0 ? posix_spawn_file_actions_adddup2(&fa, in_fd, 0)
                        : posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    if (ok == 0)
        ok = posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
    if (ok == 0)
        ok = posix_spawn_file_actions_adddup2(&fa, err_fd, 2);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
    /* Belt and braces: a descriptor some library opened without O_CLOEXEC. */
    if (ok == 0)
        ok = posix_spawn_file_actions_addclosefrom_np(&fa, 3);
#endif
    /* Not the server's working directory (its data dir, perhaps). */
    if (ok == 0)
        ok = posix_spawn_file_actions_addchdir_np(&fa, "/");
    if (ok == 0)
        ok = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                                 POSIX_SPAWN_SETSIGDEF);
    if (ok == 0)
        ok = posix_spawnattr_setpgroup(&attr, 0);
    if (ok == 0)
        ok = posix_spawnattr_setsigmask(&attr, &none);
    if (ok == 0)
        ok = posix_spawnattr_setsigdefault(&attr, &dfl);
    int rc = 0;
    if (ok != 0) {
        rc = vk_err_set(err, VK_EIO, "cannot start '%s': %s", cmd->argv[0], strerror(ok));
    } else {
        int e = posix_spawn(pid, cmd->argv[0], &fa, &attr, cmd->argv, cmd->envp);
        if (e != 0) {
            *pid = -1;
            rc = vk_err_set(err, VK_EIO, "cannot run '%s': %s", cmd->argv[0], strerror(e));
        }
    }
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    return rc;
}

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* Read what is there from *fd into b (past its max: dropped, *over set); EOF closes.
 * At most 64 KiB a call, so that a flood cannot keep us from the deadline. */
static void drain(int *fd, struct vk_buf *b, bool *over)
{
    char tmp[16384];
    for (int reads = 0; reads < 4; reads++) {
        ssize_t n = read(*fd, tmp, sizeof(tmp));
        if (n > 0) {
            size_t room = b->max - b->len;
            size_t take = (size_t)n < room ? (size_t)n : room;
            if (take && vk_buf_add(b, tmp, take) < 0)
                *over = true; /* out of memory: treated like too much */
            if ((size_t)n > take)
                *over = true;
            explicit_bzero(tmp, (size_t)n);
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        close_fd(fd);
        return;
    }
}

int vk__secrets_exec(const struct vk__secrets_cmd *cmd, struct vk__secrets_result *r,
                     struct vk_err *err)
{
    int pin[2] = {-1, -1}, pout[2] = {-1, -1}, perr[2] = {-1, -1};
    pid_t pid = -1;
    int pidfd = -1;
    int rc = 0;
    r->status = -1;
    r->signal = 0;
    if ((cmd->in && pipe2(pin, O_CLOEXEC) < 0) || pipe2(pout, O_CLOEXEC) < 0 ||
        pipe2(perr, O_CLOEXEC) < 0) {
        rc = vk_err_errno(err, "pipe");
        goto out;
    }
    /* No SIGPIPE for this thread when the program does not read its stdin. */
    sigset_t pipe_set, old_mask, pending;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    sigemptyset(&pending);
    sigpending(&pending);
    bool pipe_was_pending = sigismember(&pending, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_set, &old_mask);
    bool got_epipe = false;

    rc = spawn(cmd, cmd->in ? pin[0] : cmd->in_fd, pout[1], perr[1], &pid, err);
    close_fd(&pin[0]);
    close_fd(&pout[1]);
    close_fd(&perr[1]);
    if (rc)
        goto restore;
    int *nb[] = {&pin[1], &pout[0], &perr[0]};
    for (size_t i = 0; i < VK_ARRAY_LEN(nb); i++)
        if (*nb[i] >= 0)
            (void)fcntl(*nb[i], F_SETFL, fcntl(*nb[i], F_GETFL) | O_NONBLOCK);

    size_t in_off = 0;
    bool out_over = false, err_over = false, exited = false;
    int64_t start = mono_ms(), deadline = start + cmd->timeout_ms, exited_at = 0;
    if (pin[1] >= 0 && cmd->in_len == 0)
        close_fd(&pin[1]);
    /* Our unreaped child: the pid cannot have been reused. -1 on kernels before 5.3. */
    pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
    for (;;) {
        if (!exited) {
            siginfo_t si;
            memset(&si, 0, sizeof(si));
            /* WNOWAIT: the leader stays a zombie, so its group id stays ours to kill. */
            if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
                si.si_pid == pid) {
                exited = true;
                exited_at = mono_ms();
            }
        }
        if (exited && pout[0] < 0 && perr[0] < 0)
            break;
        int64_t now = mono_ms();
        if (out_over) {
            rc = vk_err_set(err, VK_ETOOBIG, "wrote more than %zu bytes on stdout", cmd->out_max);
            break;
        }
        if (now >= deadline) {
            rc = vk_err_set(err, VK_ETIMEDOUT, "timed out after %lld ms",
                            (long long)cmd->timeout_ms);
            break;
        }
        if (exited && now - exited_at > VK__SECRETS_GRACE_MS) {
            rc = vk_err_set(err, VK_ECONFLICT,
                            "exited but a process it started kept its output open");
            break;
        }
        struct pollfd fds[4] = {{pin[1], POLLOUT, 0},
                                {pout[0], POLLIN, 0},
                                {perr[0], POLLIN, 0},
                                {exited ? -1 : pidfd, POLLIN, 0}};
        int64_t left = deadline - now;
        if (exited && VK__SECRETS_GRACE_MS - (now - exited_at) + 1 < left)
            left = VK__SECRETS_GRACE_MS - (now - exited_at) + 1;
        /* The leader's exit wakes us through its pidfd; without one (an old kernel),
         * short slices and waitid(), never SIGCHLD, which is not ours. */
        if (pidfd < 0 && left > 20)
            left = 20;
        int pr = poll(fds, 4, (int)left);
        if (pr < 0 && errno != EINTR) {
            rc = vk_err_errno(err, "poll");
            break;
        }
        if (pr <= 0)
            continue;
        if (pin[1] >= 0 && fds[0].revents) {
            ssize_t w = write(pin[1], cmd->in + in_off, cmd->in_len - in_off);
            if (w > 0)
                in_off += (size_t)w;
            if (w < 0 && errno == EPIPE)
                got_epipe = true;
            if ((w < 0 && errno != EAGAIN && errno != EINTR) || in_off == cmd->in_len)
                close_fd(&pin[1]);
        }
        if (pout[0] >= 0 && fds[1].revents)
            drain(&pout[0], &r->out, &out_over);
        if (perr[0] >= 0 && fds[2].revents)
            drain(&perr[0], &r->err, &err_over);
    }
    /* Whatever happened, nothing of the group outlives the run. */
    kill(-pid, SIGKILL);
    int ws = 0;
    while (waitpid(pid, &ws, 0) < 0 && errno == EINTR)
        ;
    pid = -1;
    if (rc == 0) {
        if (WIFEXITED(ws)) {
            r->status = WEXITSTATUS(ws);
        } else if (WIFSIGNALED(ws)) {
            r->signal = WTERMSIG(ws);
        }
    } else {
        wipe_buf(&r->out);
    }
restore:
    if (got_epipe && !pipe_was_pending) {
        struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe_set, NULL, &zero) < 0 && errno == EINTR)
            ;
    }
    pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
out:
    close_fd(&pidfd);
    for (int i = 0; i < 2; i++) {
        close_fd(&pin[i]);
        close_fd(&pout[i]);
        close_fd(&perr[i]);
    }
    return rc;
}

void vk__secrets_excerpt(const struct vk_buf *b, size_t max, char *out, size_t cap)
{
    VK_ASSERT(cap > 0 && max < cap);
    const char *p = b->data, *end = b->data + b->len;
    while (p < end && (*p == '\n' || *p == '\r' || *p == ' ' || *p == '\t'))
        p++;
    size_t n = 0;
    while (p < end && *p != '\n' && *p != '\r' && n < max) {
        unsigned char c = (unsigned char)*p++;
        out[n++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    while (n > 0 && out[n - 1] == ' ')
        n--;
    out[n] = '\0';
}
