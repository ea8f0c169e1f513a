/*
 * exec_proc.c — start one child process and pump its output until it and its
 * process group are gone, enforcing timeout and cancel.
 *
 * The child is started with clone(CLONE_VM | CLONE_VFORK) on a stack of its
 * own, the way posix_spawn() does it (posix_spawn itself cannot join cgroups
 * or set rlimits before exec): no page tables are copied, so starting a child
 * costs the same whatever the worker's size, and the calling thread sleeps
 * until the child has called execve (or exited). Between clone and exec the
 * child shares the worker's memory, so it only makes async-signal-safe system
 * calls on data prepared by the parent and writes nothing but its own stack
 * (and errno). The parent blocks all signals in the calling thread around the
 * clone so no handler runs in the child before it resets the dispositions
 * (the child has its own copy of the handler table: no CLONE_SIGHAND); it
 * never touches process-wide signal state.
 *
 * A close-on-exec "error pipe" tells the parent whether exec succeeded (EOF)
 * or which step failed (a struct child_err). The leader's exit is noticed
 * through a pidfd (poll) without reaping it (waitid WNOWAIT), so the zombie
 * keeps the process-group id reserved while the rest of the group is killed:
 * kill(-pgid) can then never hit a recycled group.
 */
#include "exec_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

#define READ_CHUNK (64 * 1024)
#define POLL_STEP_MS 100 /* cancel reaction bound */
#define DRAIN_AFTER_EXIT_MS 500
#define CHILD_STACK (16 * 1024) /* the child's stack between clone and execve */

/*
 * ThreadSanitizer cannot follow a child that shares the parent's memory: its clone()
 * interceptor does its after-fork bookkeeping in the child, on the thread state it
 * shares with the parent, and the parent then dies in a runtime CHECK. It turns
 * vfork() into fork() for the same reason; a TSan build does the same here (the
 * child gets a copy of the memory, everything else is unchanged).
 */
#if defined(__SANITIZE_THREAD__)
#define SHARE_VM 0
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define SHARE_VM 0
#endif
#endif
#ifndef SHARE_VM
#define SHARE_VM CLONE_VM
#endif

enum { STEP_SETSID = 1, STEP_CGROUP, STEP_FDS, STEP_RLIMIT, STEP_CHDIR, STEP_NETNS, STEP_EXEC };

struct child_err {
    int step;
    int err;
};

static const char *step_name(int step)
{
    switch (step) {
    case STEP_SETSID:
        return "setsid";
    case STEP_CGROUP:
        return "join cgroup";
    case STEP_FDS:
        return "set up descriptors";
    case STEP_RLIMIT:
        return "setrlimit";
    case STEP_CHDIR:
        return "chdir";
    case STEP_NETNS:
        return "join the network namespace";
    default:
        return "exec";
    }
}

static VK_NORETURN void child_fail(int efd, int step)
{
    struct child_err ce = {step, errno};
    ssize_t n = write(efd, &ce, sizeof ce);
    (void)n;
    _exit(127);
}

/* Lower the soft limit of `res` to `want` (never above the hard limit); the hard limit too
 * unless `keep_hard`, which leaves it as the worker has it so a script may raise the soft
 * one again (`ulimit -c unlimited` for core dumps). */
static int set_limit(int res, rlim_t want, bool keep_hard)
{
    struct rlimit rl;
    if (getrlimit(res, &rl) < 0)
        return -1;
    if (rl.rlim_max != RLIM_INFINITY && want > rl.rlim_max)
        want = rl.rlim_max;
    rl.rlim_cur = want;
    if (!keep_hard)
        rl.rlim_max = want;
    return setrlimit(res, &rl);
}

/* Runs in the forked child: async-signal-safe calls only. */
static VK_NORETURN void child_main(const struct vk__exec_child *c, int in_fd, int out_fd, int efd,
                                   long maxfd)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    for (int s = 1; s < NSIG; s++)
        if (s != SIGKILL && s != SIGSTOP)
            (void)sigaction(s, &sa, NULL);
    sigset_t none;
    sigemptyset(&none);
    (void)sigprocmask(SIG_SETMASK, &none, NULL);

    if (setsid() < 0)
        child_fail(efd, STEP_SETSID);
    if (c->cg)
        for (int i = 0; i < VK__CG_N; i++)
            if (c->cg->procs_fd[i] >= 0 && write(c->cg->procs_fd[i], "0", 1) != 1)
                child_fail(efd, STEP_CGROUP);
    if (dup2(in_fd, 0) < 0 || dup2(out_fd, 1) < 0 || dup2(out_fd, 2) < 0)
        child_fail(efd, STEP_FDS);
    if (c->rlimits) {
        if (set_limit(RLIMIT_CORE, 0, true) < 0)
            child_fail(efd, STEP_RLIMIT);
        if (c->nofile && set_limit(RLIMIT_NOFILE, c->nofile, false) < 0)
            child_fail(efd, STEP_RLIMIT);
        if (c->as && set_limit(RLIMIT_AS, c->as, false) < 0)
            child_fail(efd, STEP_RLIMIT);
        if (c->fsize && set_limit(RLIMIT_FSIZE, c->fsize, false) < 0)
            child_fail(efd, STEP_RLIMIT);
    }
    if (c->cwd && chdir(c->cwd) < 0)
        child_fail(efd, STEP_CHDIR);
    if (c->netns_fd > 2 && setns(c->netns_fd, CLONE_NEWNET) < 0)
        child_fail(efd, STEP_NETNS);
    /* Everything but 0, 1, 2 closes at exec (the error pipe must live until then). */
    if (syscall(SYS_close_range, 3u, ~0u, CLOSE_RANGE_CLOEXEC) < 0)
        for (long fd = 3; fd < maxfd; fd++)
            (void)fcntl((int)fd, F_SETFD, FD_CLOEXEC);
    if (c->pass_fd > 2 && fcntl(c->pass_fd, F_SETFD, 0) < 0)
        child_fail(efd, STEP_FDS);
    execve(c->path, c->argv, c->envp);
    child_fail(efd, STEP_EXEC);
}

struct child_args {
    const struct vk__exec_child *c;
    int in_fd, out_fd, efd;
    long maxfd;
};

static int child_entry(void *arg)
{
    const struct child_args *a = arg;
    child_main(a->c, a->in_fd, a->out_fd, a->efd, a->maxfd);
}

/* Move `fd` to a number above 2 so the child's dup2 onto 0/1/2 cannot clobber it. */
static int above2(int fd)
{
    if (fd < 0 || fd > 2)
        return fd;
    int nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
    close(fd);
    return nfd;
}

/* Signal every process whose process group is `pgid`, except `except` (a /proc scan). */
static void signal_pgrp_except(pid_t pgid, int sig, pid_t except)
{
    DIR *d = opendir("/proc");
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        char *end;
        long p = strtol(e->d_name, &end, 10);
        if (*end != '\0' || p <= 0 || (pid_t)p == except)
            continue;
        char path[64], buf[512];
        snprintf(path, sizeof path, "/proc/%ld/stat", p);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            continue;
        ssize_t n = read(fd, buf, sizeof buf - 1);
        close(fd);
        if (n <= 0)
            continue;
        buf[n] = '\0';
        char *rp = strrchr(buf, ')');
        char state;
        long ppid, pgrp;
        if (!rp || sscanf(rp + 1, " %c %ld %ld", &state, &ppid, &pgrp) != 3)
            continue;
        if ((pid_t)pgrp == pgid)
            (void)kill((pid_t)p, sig);
    }
    closedir(d);
}

/* Ask the whole job to stop (SIGTERM) or kill it (SIGKILL). */
static void signal_job(const struct vk__exec_child *c, pid_t pid, int sig)
{
    if (sig == SIGTERM && c->term_spare_leader) {
        /*
         * The leader is bubblewrap: it would die of SIGTERM and take the sandbox
         * down with SIGKILL at once. Spare it so the script gets its grace period.
         */
        if (c->cg)
            vk__exec_cg_signal(c->cg, sig, pid);
        signal_pgrp_except(pid, sig, pid);
        return;
    }
    (void)kill(-pid, sig);
    if (c->cg)
        vk__exec_cg_signal(c->cg, sig, 0);
}

static int64_t now_ms(void)
{
    return vk_time_mono_ns() / 1000000;
}

/* Hand `n` bytes of child output to the sink or the capture buffer. */
static void deliver(const struct vk__exec_child *c, bool *bol, const char *p, size_t n)
{
    if (c->capture) {
        size_t room = c->capture->max > c->capture->len ? c->capture->max - c->capture->len : 0;
        if (n > room)
            n = room;
        if (n > 0 && vk_buf_add(c->capture, p, n) < 0)
            return;
        return;
    }
    if (c->line_prefix)
        vk__exec_sink_write_prefixed(c->sink, c->line_prefix, bol, p, n);
    else
        vk__exec_sink_write(c->sink, p, n);
}

int vk__exec_child_run(const struct vk__exec_child *c, struct vk__exec_outcome *o,
                       struct vk_err *err)
{
    int rc = 0;
    int pfd[2] = {-1, -1}, efd[2] = {-1, -1}, devnull = -1, pidfd = -1;
    pid_t pid = -1;
    char *buf = NULL;
    /* The child's stack: part of this frame, which nobody uses while the child runs
     * (CLONE_VFORK suspends this thread until the child's execve or exit). No
     * allocation per attempt: a malloc'ed one made glibc grow and trim the thread's
     * arena (mprotect + madvise) on every attempt. */
    _Alignas(16) char stack[CHILD_STACK];
    memset(o, 0, sizeof *o);
    o->exit_code = -1;

    long maxfd = sysconf(_SC_OPEN_MAX);
    if (maxfd < 0 || maxfd > 65536)
        maxfd = 65536;
    devnull = above2(open("/dev/null", O_RDONLY | O_CLOEXEC));
    if (devnull < 0) {
        rc = vk_err_errno(err, "open /dev/null");
        goto out;
    }
    if (pipe2(pfd, O_CLOEXEC) < 0 || pipe2(efd, O_CLOEXEC) < 0) {
        rc = vk_err_errno(err, "pipe");
        goto out;
    }
    pfd[0] = above2(pfd[0]);
    pfd[1] = above2(pfd[1]);
    efd[0] = above2(efd[0]);
    efd[1] = above2(efd[1]);
    if (pfd[0] < 0 || pfd[1] < 0 || efd[0] < 0 || efd[1] < 0) {
        rc = vk_err_errno(err, "dup");
        goto out;
    }
    buf = vk_mem_xalloc(READ_CHUNK);

    struct child_args ca = {c, devnull, pfd[1], efd[1], maxfd};
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    /* Returns once the child called execve or exited (CLONE_VFORK). */
    pid = clone(child_entry, stack + CHILD_STACK, SHARE_VM | CLONE_VFORK | SIGCHLD, &ca);
    int fork_errno = errno;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (pid < 0) {
        errno = fork_errno;
        rc = vk_err_errno(err, "clone");
        goto out;
    }
    close(pfd[1]);
    pfd[1] = -1;
    close(efd[1]);
    efd[1] = -1;
    close(devnull);
    devnull = -1;

    struct child_err ce;
    ssize_t n;
    do
        n = read(efd[0], &ce, sizeof ce);
    while (n < 0 && errno == EINTR);
    if (n == (ssize_t)sizeof ce) {
        int st;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
            ;
        pid = -1;
        rc = vk_err_set(err, ce.err == ENOENT ? VK_ENOTFOUND : VK_EIO,
                        "cannot start '%.200s': %s: %s", c->path, step_name(ce.step),
                        strerror(ce.err));
        goto out;
    }
    (void)fcntl(pfd[0], F_SETFL, O_NONBLOCK);
    pidfd = (int)syscall(SYS_pidfd_open, pid, 0);

    int64_t start = now_ms();
    int64_t deadline = c->timeout_ms > 0 ? start + c->timeout_ms : 0;
    int64_t kill_at = 0, drain_until = 0;
    bool term_sent = false, kill_sent = false, leader_done = false, pipe_open = true;
    bool bol = true;
    for (;;) {
        int64_t now = now_ms();
        if (!leader_done) {
            siginfo_t si;
            memset(&si, 0, sizeof si);
            if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 &&
                si.si_pid == pid) {
                leader_done = true;
                /* Nothing of the job may outlive its leader, even on success. */
                (void)kill(-pid, SIGKILL);
                if (c->cg)
                    vk__exec_cg_signal(c->cg, SIGKILL, 0);
                drain_until = now + DRAIN_AFTER_EXIT_MS;
            }
        }
        if (leader_done && (!pipe_open || now >= drain_until))
            break;
        if (!leader_done && !term_sent) {
            bool cancel = c->cancel && atomic_load(&c->cancel->requested);
            if (cancel || (deadline && now >= deadline)) {
                if (cancel)
                    o->cancelled = true;
                else
                    o->timed_out = true;
                signal_job(c, pid, SIGTERM);
                term_sent = true;
                kill_at = now + (c->grace_ms > 0 ? c->grace_ms : 0);
            }
        }
        if (term_sent && !kill_sent && !leader_done && now >= kill_at) {
            signal_job(c, pid, SIGKILL);
            kill_sent = true;
        }

        int64_t wait = POLL_STEP_MS;
        if (deadline && !term_sent && deadline - now < wait)
            wait = deadline - now;
        if (term_sent && !kill_sent && kill_at - now < wait)
            wait = kill_at - now;
        if (leader_done && drain_until - now < wait)
            wait = drain_until - now;
        if (wait < 0)
            wait = 0;
        struct pollfd fds[2];
        nfds_t nf = 0;
        if (pipe_open)
            fds[nf++] = (struct pollfd){.fd = pfd[0], .events = POLLIN};
        if (!leader_done && pidfd >= 0)
            fds[nf++] = (struct pollfd){.fd = pidfd, .events = POLLIN};
        if (nf == 0 && wait > 5)
            wait = 5; /* no pidfd: poll the leader's state often */
        int pr = poll(fds, nf, (int)wait);
        if (pr < 0 && errno != EINTR) {
            rc = vk_err_errno(err, "poll");
            break;
        }
        if (!pipe_open || pr <= 0 || !(fds[0].revents & (POLLIN | POLLHUP | POLLERR)))
            continue;
        /* Read a bounded amount per round so timeouts and cancel stay responsive. */
        for (int i = 0; i < 16; i++) {
            n = read(pfd[0], buf, READ_CHUNK);
            if (n > 0) {
                deliver(c, &bol, buf, (size_t)n);
                continue;
            }
            if (n == 0) {
                pipe_open = false;
            } else if (errno != EAGAIN && errno != EINTR) {
                pipe_open = false;
            }
            break;
        }
    }
    if (c->line_prefix && !bol && c->sink && !c->capture)
        vk__exec_sink_write(c->sink, "\n", 1);

out:
    if (pid > 0) {
        int st = 0;
        (void)kill(-pid, SIGKILL);
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
            ;
        if (WIFEXITED(st)) {
            o->exit_code = WEXITSTATUS(st);
        } else if (WIFSIGNALED(st)) {
            o->signal = WTERMSIG(st);
        }
    }
    vk_mem_free(buf);
    if (pidfd >= 0)
        close(pidfd);
    for (int i = 0; i < 2; i++) {
        if (pfd[i] >= 0)
            close(pfd[i]);
        if (efd[i] >= 0)
            close(efd[i]);
    }
    if (devnull >= 0)
        close(devnull);
    return rc;
}
