/*
 * exec_cgroup.c — per-attempt cgroups for memory/pids/cpu limits and for
 * killing everything an attempt started.
 *
 * Detection (once per worker): the file-system type of /sys/fs/cgroup.
 *  - cgroup2fs (v2): the parent is /sys/fs/cgroup/<cgroup_parent or "vulcan">;
 *    the memory, pids and cpu controllers are enabled on the way down.
 *  - tmpfs (v1 / hybrid): in each of the memory, pids and cpu hierarchies the
 *    parent is "<this process's own cgroup>/<cgroup_parent or vulcan>" (nested,
 *    so the worker's own limits keep applying), or the absolute
 *    "<mount>/<cgroup_parent>" when cgroup_parent starts with '/'.
 * An attempt's cgroup is "<parent>/vk-<worker pid>-<seq>". The child joins it
 * by writing "0" into cgroup.procs descriptors opened by the parent before
 * fork; bubblewrap and everything below it inherit the membership.
 */
#include "exec_int.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#define CG_ROOT "/sys/fs/cgroup"
#ifndef CGROUP2_SUPER_MAGIC
#define CGROUP2_SUPER_MAGIC 0x63677270
#endif
#ifndef CGROUP_SUPER_MAGIC
#define CGROUP_SUPER_MAGIC 0x27e0eb
#endif
#ifndef TMPFS_MAGIC
#define TMPFS_MAGIC 0x01021994
#endif

static const char *const v1_names[VK__CG_N] = {"memory", "pids", "cpu"};

/* Write `s` to `dir`/`file`. Returns 0 or -errno. */
static int write_at(const char *dir, const char *file, const char *s)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    size_t len = strlen(s);
    ssize_t n = write(fd, s, len);
    int e = n == (ssize_t)len ? 0 : (n < 0 ? -errno : -EIO);
    close(fd);
    return e;
}

/* Read up to `cap`-1 bytes of `dir`/`file` into `out`. Returns bytes or -1. */
static ssize_t read_at(const char *dir, const char *file, char *out, size_t cap)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    size_t got = 0;
    while (got + 1 < cap) {
        ssize_t n = read(fd, out + got, cap - 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    out[got] = '\0';
    return (ssize_t)got;
}

static bool is_fs(const char *path, long magic)
{
    struct statfs sf;
    return statfs(path, &sf) == 0 && (long)sf.f_type == magic;
}

/* This process's cgroup path in the v1 hierarchy carrying `ctrl`, from /proc/self/cgroup. */
static bool own_v1_path(const char *ctrl, char *out, size_t cap)
{
    FILE *f = fopen("/proc/self/cgroup", "re");
    if (!f)
        return false;
    char line[1024];
    bool found = false;
    while (!found && fgets(line, sizeof line, f)) {
        char *c1 = strchr(line, ':');
        char *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c2)
            continue;
        *c2 = '\0';
        for (char *tok = c1 + 1; tok && *tok;) {
            char *comma = strchr(tok, ',');
            size_t tl = comma ? (size_t)(comma - tok) : strlen(tok);
            if (tl == strlen(ctrl) && strncmp(tok, ctrl, tl) == 0) {
                char *p = c2 + 1;
                p[strcspn(p, "\n")] = '\0';
                snprintf(out, cap, "%s", strcmp(p, "/") == 0 ? "" : p);
                found = true;
                break;
            }
            tok = comma ? comma + 1 : NULL;
        }
    }
    fclose(f);
    return found;
}

static bool safe_parent_name(const char *s)
{
    if (!s || !*s || strlen(s) > 200 || strstr(s, ".."))
        return false;
    for (const char *p = s; *p; p++)
        if (!(*p == '/' || *p == '-' || *p == '_' || *p == '.' || (*p >= '0' && *p <= '9') ||
              (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
            return false;
    return true;
}

static bool writable_dir(const char *dir)
{
    struct vk_err e;
    return vk__exec_mkdir_p(dir, 0755, &e) == 0 && access(dir, W_OK) == 0;
}

static void detect_v2(struct vk_exec_env *env, const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, CG_ROOT "/%s", name[0] == '/' ? name + 1 : name);
    if (!writable_dir(path)) {
        snprintf(env->cgroup_why, sizeof env->cgroup_why, "'%.100s' is not writable", path);
        return;
    }
    /* Enable the controllers from the root down to the parent itself (errors tolerated). */
    for (size_t i = strlen(CG_ROOT);; i++) {
        if (path[i] != '/' && path[i] != '\0')
            continue;
        char walk[1024];
        snprintf(walk, sizeof walk, "%.*s", (int)i, path);
        (void)write_at(walk, "cgroup.subtree_control", "+memory");
        (void)write_at(walk, "cgroup.subtree_control", "+pids");
        (void)write_at(walk, "cgroup.subtree_control", "+cpu");
        if (path[i] == '\0')
            break;
    }
    env->cg_v2_parent = vk_mem_xstrdup(path);
    env->cgroup_mode = VK_EXEC_CGROUP_V2;
}

static void detect_v1(struct vk_exec_env *env, const char *name)
{
    int usable = 0;
    for (int i = 0; i < VK__CG_N; i++) {
        char mount[256], own[512], path[1024];
        snprintf(mount, sizeof mount, CG_ROOT "/%s", v1_names[i]);
        if (i == VK__CG_CPU && !is_fs(mount, CGROUP_SUPER_MAGIC))
            snprintf(mount, sizeof mount, CG_ROOT "/cpu,cpuacct");
        if (!is_fs(mount, CGROUP_SUPER_MAGIC))
            continue;
        if (name[0] == '/')
            snprintf(path, sizeof path, "%s%s", mount, name);
        else if (own_v1_path(v1_names[i], own, sizeof own))
            snprintf(path, sizeof path, "%s%s/%s", mount, own, name);
        else
            continue;
        if (!writable_dir(path))
            continue;
        env->cg_v1_parent[i] = vk_mem_xstrdup(path);
        usable++;
    }
    if (usable == 0) {
        snprintf(env->cgroup_why, sizeof env->cgroup_why,
                 "no writable cgroup v1 hierarchy (memory, pids, cpu)");
        return;
    }
    env->cgroup_mode = VK_EXEC_CGROUP_V1;
}

void vk__exec_cg_detect(struct vk_exec_env *env, const char *parent_name)
{
    env->cgroup_mode = VK_EXEC_CGROUP_NONE;
    const char *name = parent_name ? parent_name : "vulcan";
    if (!safe_parent_name(name)) {
        snprintf(env->cgroup_why, sizeof env->cgroup_why, "bad cgroup parent name");
        return;
    }
    if (is_fs(CG_ROOT, CGROUP2_SUPER_MAGIC))
        detect_v2(env, name);
    else if (is_fs(CG_ROOT, TMPFS_MAGIC))
        detect_v1(env, name);
    else
        snprintf(env->cgroup_why, sizeof env->cgroup_why, "no cgroup file system at " CG_ROOT);
}

void vk__exec_cg_env_release(struct vk_exec_env *env)
{
    /* Only empty parents go away: other workers may share them. */
    if (env->cg_v2_parent)
        (void)rmdir(env->cg_v2_parent);
    vk_mem_free(env->cg_v2_parent);
    env->cg_v2_parent = NULL;
    for (int i = 0; i < VK__CG_N; i++) {
        if (env->cg_v1_parent[i])
            (void)rmdir(env->cg_v1_parent[i]);
        vk_mem_free(env->cg_v1_parent[i]);
        env->cg_v1_parent[i] = NULL;
    }
}

/* Make `parent`/`name` and open its cgroup.procs. Returns the new dir or NULL. */
static char *make_leaf(const char *parent, const char *name, int *procs_fd)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", parent, name);
    if (mkdir(path, 0755) < 0) {
        /* Another worker sharing the parent removed it when it was empty
         * (vk_exec_env_release): make it again, once. */
        struct vk_err e;
        if (errno != ENOENT || vk__exec_mkdir_p(parent, 0755, &e) < 0 || mkdir(path, 0755) < 0)
            return NULL;
    }
    char procs[1100];
    snprintf(procs, sizeof procs, "%s/cgroup.procs", path);
    *procs_fd = open(procs, O_WRONLY | O_CLOEXEC);
    if (*procs_fd < 0) {
        (void)rmdir(path);
        return NULL;
    }
    return vk_mem_xstrdup(path);
}

/* The value to write for limit `v`: the number (printf of `fmt`), or `unlimited` for 0. */
static const char *limit_text(char *buf, size_t cap, unsigned long long v, const char *fmt,
                              const char *unlimited)
{
    if (!v)
        return unlimited;
    snprintf(buf, cap, fmt, v);
    return buf;
}

/*
 * Write the spec's limits into a v2 cgroup. `prev` NULL: a new cgroup, only the limits
 * asked for are written. Otherwise the cgroup is reused (vk__exec_cg_reuse): a limit
 * that differs from `prev` is written, "max" for none.
 */
static int limits_v2(struct vk__exec_cg *cg, const struct vk__exec_cg_limits *want,
                     const struct vk__exec_cg_limits *prev, char *why, size_t whylen)
{
    char num[64];
    if (prev ? want->memory != prev->memory : want->memory != 0) {
        if (write_at(cg->dir[0], "memory.max",
                     limit_text(num, sizeof num, want->memory, "%llu", "max")) < 0) {
            snprintf(why, whylen, "the memory controller is not available");
            return VK_EIO;
        }
        (void)write_at(cg->dir[0], "memory.swap.max", want->memory ? "0" : "max");
    }
    if (prev ? want->pids != prev->pids : want->pids != 0) {
        if (write_at(cg->dir[0], "pids.max",
                     limit_text(num, sizeof num, want->pids, "%llu", "max")) < 0) {
            snprintf(why, whylen, "the pids controller is not available");
            return VK_EIO;
        }
    }
    if (prev ? want->cpu != prev->cpu : want->cpu != 0) {
        if (write_at(cg->dir[0], "cpu.max",
                     limit_text(num, sizeof num, want->cpu * 100u, "%llu 100000", "max 100000")) <
            0) {
            snprintf(why, whylen, "the cpu controller is not available");
            return VK_EIO;
        }
    }
    return 0;
}

static int create_v2(const struct vk_exec_env *env, const char *name,
                     const struct vk__exec_cg_limits *want, struct vk__exec_cg *cg, char *why,
                     size_t whylen)
{
    cg->dir[0] = make_leaf(env->cg_v2_parent, name, &cg->procs_fd[0]);
    if (!cg->dir[0]) {
        snprintf(why, whylen, "cannot create a cgroup under '%s': %s", env->cg_v2_parent,
                 strerror(errno));
        return VK_EIO;
    }
    return limits_v2(cg, want, NULL, why, whylen);
}

/* The v1 counterpart of limits_v2 (-1 is "no limit" there). */
static int limits_v1(struct vk__exec_cg *cg, const struct vk__exec_cg_limits *want,
                     const struct vk__exec_cg_limits *prev, char *why, size_t whylen)
{
    char num[64];
    if (prev ? want->memory != prev->memory : want->memory != 0) {
        const char *v = limit_text(num, sizeof num, want->memory, "%llu", "-1");
        /* memsw must stay >= the memory limit: open it up first, then set both. */
        if (prev)
            (void)write_at(cg->dir[VK__CG_MEMORY], "memory.memsw.limit_in_bytes", "-1");
        if (write_at(cg->dir[VK__CG_MEMORY], "memory.limit_in_bytes", v) < 0) {
            snprintf(why, whylen, "cannot set memory.limit_in_bytes");
            return VK_EIO;
        }
        /* No swapping around the limit where swap accounting exists. */
        (void)write_at(cg->dir[VK__CG_MEMORY], "memory.memsw.limit_in_bytes", v);
    }
    if (prev ? want->pids != prev->pids : want->pids != 0) {
        if (write_at(cg->dir[VK__CG_PIDS], "pids.max",
                     limit_text(num, sizeof num, want->pids, "%llu", "max")) < 0) {
            snprintf(why, whylen, "cannot set pids.max");
            return VK_EIO;
        }
    }
    if (cg->dir[VK__CG_CPU] && (prev ? want->cpu != prev->cpu : want->cpu != 0)) {
        if (write_at(cg->dir[VK__CG_CPU], "cpu.cfs_period_us", "100000") < 0 ||
            write_at(cg->dir[VK__CG_CPU], "cpu.cfs_quota_us",
                     limit_text(num, sizeof num, want->cpu * 100u, "%llu", "-1")) < 0) {
            snprintf(why, whylen, "cannot set cpu.cfs_quota_us");
            return VK_EIO;
        }
    }
    return 0;
}

static int create_v1(const struct vk_exec_env *env, const char *name,
                     const struct vk__exec_cg_limits *lim, struct vk__exec_cg *cg, char *why,
                     size_t whylen)
{
    bool want[VK__CG_N] = {lim->memory > 0, lim->pids > 0, lim->cpu > 0};
    for (int i = 0; i < VK__CG_N; i++) {
        /* Hierarchies without a limit still help to find every process: keep memory/pids. */
        if (!env->cg_v1_parent[i] || (i == VK__CG_CPU && !want[i]))
            continue;
        cg->dir[i] = make_leaf(env->cg_v1_parent[i], name, &cg->procs_fd[i]);
        if (!cg->dir[i] && want[i]) {
            snprintf(why, whylen, "cannot create a cgroup under '%s': %s", env->cg_v1_parent[i],
                     strerror(errno));
            return VK_EIO;
        }
    }
    for (int i = 0; i < VK__CG_N; i++)
        if (want[i] && !cg->dir[i]) {
            snprintf(why, whylen, "no writable '%s' cgroup hierarchy", v1_names[i]);
            return VK_EIO;
        }
    if (!cg->dir[VK__CG_MEMORY] && !cg->dir[VK__CG_PIDS]) {
        snprintf(why, whylen, "no writable memory or pids cgroup hierarchy");
        return VK_EIO;
    }
    return limits_v1(cg, lim, NULL, why, whylen);
}

int vk__exec_cg_create(const struct vk_exec_env *env, const char *name,
                       const struct vk_exec_spec *spec, struct vk__exec_cg *cg, char *why,
                       size_t whylen)
{
    memset(cg, 0, sizeof *cg);
    for (int i = 0; i < VK__CG_N; i++)
        cg->procs_fd[i] = -1;
    why[0] = '\0';
    if (env->cgroup_mode == VK_EXEC_CGROUP_NONE) {
        snprintf(why, whylen, "%s", env->cgroup_why[0] ? env->cgroup_why : "disabled");
        return VK_EPERM;
    }
    cg->mode = env->cgroup_mode;
    struct vk__exec_cg_limits lim = {spec->memory_limit_bytes, spec->pids_limit, spec->cpu_millis};
    int rc = cg->mode == VK_EXEC_CGROUP_V2 ? create_v2(env, name, &lim, cg, why, whylen)
                                           : create_v1(env, name, &lim, cg, why, whylen);
    if (rc < 0)
        vk__exec_cg_destroy(cg);
    else
        cg->limits = lim;
    return rc;
}

/* The directory whose cgroup.procs lists the attempt's processes. */
static const char *member_dir(const struct vk__exec_cg *cg)
{
    for (int i = 0; i < VK__CG_N; i++)
        if (cg->dir[i])
            return cg->dir[i];
    return NULL;
}

/* Signal the listed processes; returns how many were listed. */
static int signal_members(const struct vk__exec_cg *cg, int sig, pid_t except)
{
    const char *dir = member_dir(cg);
    if (!dir)
        return 0;
    char buf[16384];
    if (read_at(dir, "cgroup.procs", buf, sizeof buf) <= 0)
        return 0;
    int count = 0;
    for (char *p = buf; *p;) {
        char *end;
        long pid = strtol(p, &end, 10);
        if (end == p)
            break;
        if (pid > 0 && (pid_t)pid != except) {
            (void)kill((pid_t)pid, sig);
            count++;
        }
        p = end;
        while (*p == '\n')
            p++;
    }
    return count;
}

void vk__exec_cg_signal(const struct vk__exec_cg *cg, int sig, pid_t except)
{
    if (cg && cg->mode != VK_EXEC_CGROUP_NONE)
        (void)signal_members(cg, sig, except);
}

void vk__exec_cg_kill_all(const struct vk__exec_cg *cg)
{
    if (!cg || !member_dir(cg))
        return;
    if (cg->mode == VK_EXEC_CGROUP_V2)
        (void)write_at(cg->dir[0], "cgroup.kill", "1");
    /* Repeat: a process may fork between reading the list and the kill, and killed ones
     * leave the list as they finish exiting (bubblewrap's namespace init a moment after
     * bubblewrap: a fixed 5 ms wait was half of a sandboxed trivial fragment's latency).
     * Waits from 50 us, doubling up to 5 ms; ~2 s at most. */
    long wait_us = 50;
    for (long waited = 0; waited < 2000000;
         waited += wait_us, wait_us = wait_us < 5000 ? wait_us * 2 : 5000) {
        if (signal_members(cg, SIGKILL, 0) == 0)
            return;
        struct timespec ts = {0, wait_us * 1000};
        while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
        }
    }
}

/* The value of the line "`key` N" in `text`, or 0. */
static unsigned long long keyed(const char *text, const char *key)
{
    size_t kl = strlen(key);
    for (const char *p = text; p && *p;) {
        if (strncmp(p, key, kl) == 0 && p[kl] == ' ')
            return strtoull(p + kl + 1, NULL, 10);
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return 0;
}

/* The cgroup's OOM-kill count so far (memory.events / memory.oom_control). */
static unsigned long long oom_count(const struct vk__exec_cg *cg)
{
    char buf[2048];
    if (cg->mode == VK_EXEC_CGROUP_V2 && cg->dir[0])
        return read_at(cg->dir[0], "memory.events", buf, sizeof buf) > 0 ? keyed(buf, "oom_kill")
                                                                         : 0;
    if (cg->mode == VK_EXEC_CGROUP_V1 && cg->dir[VK__CG_MEMORY])
        return read_at(cg->dir[VK__CG_MEMORY], "memory.oom_control", buf, sizeof buf) > 0
                   ? keyed(buf, "oom_kill")
                   : 0;
    return 0;
}

/* The forks the pids limit has refused so far (pids.events "max"). */
static unsigned long long pids_count(const struct vk__exec_cg *cg)
{
    char buf[256];
    const char *dir = cg->mode == VK_EXEC_CGROUP_V2   ? cg->dir[0]
                      : cg->mode == VK_EXEC_CGROUP_V1 ? cg->dir[VK__CG_PIDS]
                                                      : NULL;
    return dir && read_at(dir, "pids.events", buf, sizeof buf) > 0 ? keyed(buf, "max") : 0;
}

bool vk__exec_cg_oom(const struct vk__exec_cg *cg)
{
    return cg && oom_count(cg) > cg->oom_base;
}

unsigned long long vk__exec_cg_pids_refused(const struct vk__exec_cg *cg)
{
    if (!cg)
        return 0;
    unsigned long long n = pids_count(cg);
    return n > cg->pids_base ? n - cg->pids_base : 0;
}

int vk__exec_cg_reuse(struct vk__exec_cg *cg, const struct vk_exec_spec *spec, char *why,
                      size_t whylen)
{
    why[0] = '\0';
    if (!cg || cg->mode == VK_EXEC_CGROUP_NONE || !member_dir(cg))
        return VK_EINVAL;
    struct vk__exec_cg_limits lim = {spec->memory_limit_bytes, spec->pids_limit, spec->cpu_millis};
    /* v1 makes the cpu hierarchy's cgroup only for a quota: a new quota needs a new cgroup,
     * as does a limit whose hierarchy the cgroup does not have. */
    if (cg->mode == VK_EXEC_CGROUP_V1 &&
        ((lim.cpu && !cg->dir[VK__CG_CPU]) || (lim.memory && !cg->dir[VK__CG_MEMORY]) ||
         (lim.pids && !cg->dir[VK__CG_PIDS])))
        return VK_EINVAL;
    int rc = cg->mode == VK_EXEC_CGROUP_V2 ? limits_v2(cg, &lim, &cg->limits, why, whylen)
                                           : limits_v1(cg, &lim, &cg->limits, why, whylen);
    if (rc < 0)
        return rc;
    cg->limits = lim;
    return 0;
}

int vk__exec_cg_empty(struct vk__exec_cg *cg)
{
    if (!cg || !member_dir(cg))
        return VK_EINVAL;
    vk__exec_cg_kill_all(cg);
    /* kill_all returns when cgroup.procs lists nobody, or gives up after ~2 s. */
    if (signal_members(cg, SIGKILL, 0) != 0)
        return VK_EAGAIN;
    /* Memory still charged to it (files the attempt left outside its workspace, a tmpfs
     * with sandbox none) would count against the next attempt's limit: a new cgroup then
     * (removing this one hands the charge to the parent). */
    char buf[64];
    const char *mdir = cg->mode == VK_EXEC_CGROUP_V2 ? cg->dir[0] : cg->dir[VK__CG_MEMORY];
    const char *mfile = cg->mode == VK_EXEC_CGROUP_V2 ? "memory.current" : "memory.usage_in_bytes";
    if (mdir && read_at(mdir, mfile, buf, sizeof buf) > 0 &&
        strtoull(buf, NULL, 10) > VK__EXEC_CG_REUSE_MAX_CHARGE)
        return VK_EAGAIN;
    /* The counters are final now that nobody is left: the next attempt counts from here. */
    cg->oom_base = oom_count(cg);
    cg->pids_base = pids_count(cg);
    return 0;
}

void vk__exec_cg_destroy(struct vk__exec_cg *cg)
{
    if (!cg)
        return;
    vk__exec_cg_kill_all(cg);
    for (int i = 0; i < VK__CG_N; i++) {
        if (cg->procs_fd[i] >= 0)
            close(cg->procs_fd[i]);
        cg->procs_fd[i] = -1;
        if (!cg->dir[i])
            continue;
        /* Killed tasks leave the cgroup as they finish exiting: retry for a moment. */
        for (int t = 0; t < 200 && rmdir(cg->dir[i]) < 0 && errno == EBUSY; t++)
            vk__exec_sleep_ms(5);
        vk_mem_free(cg->dir[i]);
        cg->dir[i] = NULL;
    }
    cg->mode = VK_EXEC_CGROUP_NONE;
}

struct vk_exec_slot *vk_exec_slot_new(void)
{
    struct vk_exec_slot *slot = vk_mem_calloc(1, sizeof *slot);
    for (int i = 0; slot && i < VK__CG_N; i++)
        slot->cg.procs_fd[i] = -1;
    if (slot)
        slot->netns_fd = -1;
    return slot;
}

void vk_exec_slot_free(struct vk_exec_slot *slot)
{
    if (!slot)
        return;
    if (slot->made)
        vk__exec_cg_destroy(&slot->cg);
    if (slot->netns_fd > 2)
        close(slot->netns_fd);
    vk_mem_free(slot);
}
