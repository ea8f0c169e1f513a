/*
 * exec_netns.c — a worker slot's network namespace for sandboxed attempts without the
 * network (issue 16).
 *
 * bubblewrap's --unshare-net makes a network namespace for every attempt and the kernel
 * tears it down afterwards: about 3 ms of an attempt's wall time on the build machines,
 * more than a third of the sandbox's cost. The slot makes one namespace the same way (a
 * new namespace holding only `lo`, brought up) once, keeps a descriptor to it, and each
 * sandboxed attempt's child joins it (setns) before exec'ing bubblewrap with --share-net.
 * The attempt sees the same network as before: a loopback interface and nothing else.
 * Nothing of one attempt is left in it for the next: every process of an attempt is gone
 * before the next starts (bubblewrap's PID namespace dies with its init, and the slot's
 * cgroup is emptied), and sockets die with their processes. The sandbox's user namespace
 * is a child of the worker's, which owns this network namespace, so the attempt has no
 * capability over it (it cannot add an address or a route), as before with --cap-drop ALL.
 *
 * Making the namespace needs CAP_SYS_ADMIN in the worker's user namespace: only a root
 * worker has it. Any other worker keeps bubblewrap's per-attempt namespace.
 */
#include "exec_int.h"

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* In the new namespace: bring `lo` up (the kernel gives it 127.0.0.1/8 and ::1). */
static int lo_up(void)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s < 0)
        return -1;
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    memcpy(ifr.ifr_name, "lo", 3);
    int rc = ioctl(s, SIOCGIFFLAGS, &ifr);
    if (rc == 0) {
        ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
        rc = ioctl(s, SIOCSIFFLAGS, &ifr);
    }
    close(s);
    return rc;
}

int vk__exec_slot_netns(struct vk_exec_slot *slot)
{
    if (!slot || slot->netns_fd > 2 || slot->netns_tried)
        return slot ? slot->netns_fd : -1;
    slot->netns_tried = true;
    if (geteuid() != 0)
        return -1;
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) < 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0) {
        close(pfd[0]);
        close(pfd[1]);
        return -1;
    }
    if (pid == 0) {
        /* The child of a multi-threaded process: system calls only. It holds the
         * namespace until the parent has opened it, then is killed. */
        (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
        char ok = unshare(CLONE_NEWNET) == 0 && lo_up() == 0;
        ssize_t n = write(pfd[1], &ok, 1);
        (void)n;
        for (;;)
            pause();
    }
    close(pfd[1]);
    char ok = 0;
    ssize_t n;
    while ((n = read(pfd[0], &ok, 1)) < 0 && errno == EINTR) {
    }
    close(pfd[0]);
    int fd = -1;
    if (n == 1 && ok) {
        char path[64];
        snprintf(path, sizeof path, "/proc/%ld/ns/net", (long)pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        /* Never 0..2: the child runner treats those as "none". */
        if (fd >= 0 && fd <= 2) {
            int nfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
            close(fd);
            fd = nfd;
        }
    }
    (void)kill(pid, SIGKILL);
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
    }
    slot->netns_fd = fd;
    return fd;
}
