/*
 * exec_sandbox.c — the bubblewrap command line and the start-up probe.
 *
 * The sandbox sees: the system directories read-only (symlinks such as
 * /bin -> usr/bin on merged-/usr systems are recreated as symlinks), a fresh
 * /dev and /proc, private tmpfs /tmp and /var/tmp, the workspace read-write and
 * the script directory (and the git mirror the workspace borrows objects from)
 * read-only, all at their host paths. /etc is a read-only view holding only what scripts
 * need (etc_files below: name resolution, TLS certificates, the dynamic linker's cache,
 * alternatives, time zone, shell and tool defaults) and a passwd/group made for the
 * sandbox, copied once when the worker starts into RUN_DIR/etc-view and bound in one
 * mount (vk__exec_sandbox_files); never shadow, gshadow, sudoers, ssh host keys or a
 * service's configuration.
 * Every namespace is unshared (--unshare-all: user, ipc, pid, net, uts,
 * cgroup), except the network with allow_network, and all capabilities are
 * dropped. bubblewrap itself starts with an environment of PATH only (so an
 * injected LD_PRELOAD cannot reach it); the script's environment is set with
 * --clearenv/--setenv read from a memory file (--args FD), so that no value shows in ps.
 */
#include "exec_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static char *const system_dirs[] = {"/usr",   "/bin",   "/sbin",   "/lib",
                                    "/lib32", "/lib64", "/libx32", "/opt"};

/*
 * What of the host's /etc a sandboxed script sees (each bound read-only when it exists;
 * symlinks are followed, so /etc/resolv.conf -> /run/... still resolves). Kept to what
 * shells, git, curl, compilers and language runtimes read; the operator adds more with
 * --sandbox-ro /etc/NAME. passwd and group are the sandbox's own (vk__exec_sandbox_files).
 */
static const char *const etc_files[] = {
    /* names and the network */
    "hosts", "resolv.conf", "nsswitch.conf", "host.conf", "gai.conf", "services", "protocols",
    "networks", "rpc", "ethertypes", "netconfig",
    /* TLS */
    "ssl", "ca-certificates", "ca-certificates.conf", "pki", "crypto-policies", "gnutls",
    /* the dynamic linker, alternatives, locale and time */
    "ld.so.cache", "ld.so.conf", "ld.so.conf.d", "alternatives", "localtime", "timezone",
    "locale.alias", "locale.conf", "default/locale",
    /* what the system is */
    "os-release", "lsb-release", "debian_version", "issue",
    /* shells and terminals */
    "profile", "profile.d", "bash.bashrc", "inputrc", "shells", "environment", "terminfo",
    /* tools and runtimes */
    "gitconfig", "wgetrc", "ssh/ssh_config", "ssh/ssh_config.d", "mime.types", "magic",
    "magic.mime", "xml", "sgml", "fonts", "vim", "perl", "python3", "python3.11", "python3.12",
    "python3.13", "pip.conf", "npmrc", "java-11-openjdk", "java-17-openjdk", "java-21-openjdk",
    "maven", "fpc.cfg", "fpc-3.2.2.cfg", "gnucobol", "gdb", "groff", "manpath.config",
    "mke2fs.conf", "dpkg", "gss", "ldap", "krb5.conf", "xattr.conf"};

/* The sandbox's /etc, built once when the worker starts: RUN_DIR/etc-view. */
#define ETC_VIEW "etc-view"
#define ETC_MAX_ENTRIES 20000
#define ETC_MAX_BYTES (64u * 1024u * 1024u)
#define ETC_MAX_DEPTH 8

struct etc_copy {
    size_t entries, bytes;
};

/* Copy regular file `src` (already open as `in`, of size `size`) to `dst`, mode `mode`. */
static int copy_file(int in, const char *dst, mode_t mode, off_t size, struct etc_copy *c)
{
    if (c->bytes + (size_t)size > ETC_MAX_BYTES)
        return 0; /* past the bound: left out */
    int out = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode & 0755);
    if (out < 0)
        return -1;
    char buf[16384];
    ssize_t n;
    int rc = 0;
    while (rc == 0 && (n = read(in, buf, sizeof buf)) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = -1;
            break;
        }
        for (ssize_t off = 0; rc == 0 && off < n;) {
            ssize_t w = write(out, buf + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0)
                rc = -1;
            else
                off += w;
        }
    }
    if (close(out) < 0)
        rc = -1;
    c->bytes += (size_t)size;
    return rc;
}

/*
 * Copy `src` to `dst` for the view: directories recursively, regular files by content,
 * symlinks as symlinks (they point outside /etc, or within it); `top` follows a symlink
 * (/etc/resolv.conf -> /run/...: its content, since /run is not in the sandbox). What
 * cannot be read (a root-only file for a non-root worker) or is past the bounds is left
 * out. Returns 0, or -1 with errno when the view itself cannot be written.
 */
static int copy_entry(const char *src, const char *dst, int depth, bool top, struct etc_copy *c)
{
    struct stat st;
    if ((top ? stat(src, &st) : lstat(src, &st)) < 0 || depth > ETC_MAX_DEPTH ||
        ++c->entries > ETC_MAX_ENTRIES)
        return 0;
    if (S_ISLNK(st.st_mode)) {
        char target[PATH_MAX];
        ssize_t n = readlink(src, target, sizeof target - 1);
        if (n <= 0)
            return 0;
        target[n] = '\0';
        return symlink(target, dst) < 0 && errno != EEXIST ? -1 : 0;
    }
    if (S_ISREG(st.st_mode)) {
        int in = open(src, O_RDONLY | O_CLOEXEC | (top ? 0 : O_NOFOLLOW));
        if (in < 0)
            return 0;
        int rc = copy_file(in, dst, st.st_mode, st.st_size, c);
        close(in);
        return rc;
    }
    if (!S_ISDIR(st.st_mode))
        return 0;
    if (mkdir(dst, 0755) < 0 && errno != EEXIST)
        return -1;
    DIR *d = opendir(src);
    if (!d)
        return 0;
    int rc = 0;
    struct dirent *e;
    while (rc == 0 && (e = readdir(d))) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char s2[PATH_MAX], d2[PATH_MAX];
        if (snprintf(s2, sizeof s2, "%s/%s", src, e->d_name) >= (int)sizeof s2 ||
            snprintf(d2, sizeof d2, "%s/%s", dst, e->d_name) >= (int)sizeof d2)
            continue;
        rc = copy_entry(s2, d2, depth + 1, false, c);
    }
    closedir(d);
    return rc;
}

/* An empty file or directory at `view` + the part of `etc_path` after "/etc", for an
 * operator's --sandbox-ro/--sandbox-rw /etc/NAME to be mounted on (the view is read-only
 * in the sandbox, so bubblewrap cannot make it there). */
static int placeholder(const char *view, const char *etc_path, struct vk_err *err)
{
    struct stat st;
    char dst[PATH_MAX];
    if (snprintf(dst, sizeof dst, "%s%s", view, etc_path + 4) >= (int)sizeof dst)
        return vk_err_set(err, VK_EINVAL, "'%s' is too long", etc_path);
    bool dir = stat(etc_path, &st) == 0 && S_ISDIR(st.st_mode);
    char parent[PATH_MAX];
    snprintf(parent, sizeof parent, "%s", dst);
    char *slash = strrchr(parent, '/');
    if (slash)
        *slash = '\0';
    int rc = vk__exec_mkdir_p(dir ? dst : parent, 0755, err);
    if (rc == 0 && !dir && lstat(dst, &st) < 0) {
        int fd = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        if (fd < 0)
            return vk_err_errno(err, "sandbox /etc placeholder");
        close(fd);
    }
    return rc;
}

int vk__exec_sandbox_files(const struct vk_exec_env *env, struct vk_err *err)
{
    unsigned uid = (unsigned)getuid(), gid = (unsigned)getgid();
    char passwd[512], group[256];
    int n = snprintf(passwd, sizeof passwd, "root:x:0:0:root:/root:/bin/sh\n");
    if (uid != 0)
        n += snprintf(passwd + n, sizeof passwd - (size_t)n,
                      "vulcan:x:%u:%u:Vulcan CI job:/tmp:/bin/sh\n", uid, gid);
    snprintf(passwd + n, sizeof passwd - (size_t)n,
             "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n");
    n = snprintf(group, sizeof group, "root:x:0:\n");
    if (gid != 0)
        n += snprintf(group + n, sizeof group - (size_t)n, "vulcan:x:%u:\n", gid);
    snprintf(group + n, sizeof group - (size_t)n, "nogroup:x:65534:\n");
    /* One bind of a prepared directory per attempt, not one per file (dozens of mounts
     * made the sandbox's set-up several times slower). Built afresh at every start. */
    char view[PATH_MAX - 256];
    if (snprintf(view, sizeof view, "%s/" ETC_VIEW, env->run_dir) >= (int)sizeof view)
        return vk_err_set(err, VK_EINVAL, "the worker's run directory path is too long");
    int rc = vk__exec_rmtree(view, err);
    if (rc == 0)
        rc = vk__exec_mkdir_p(view, 0755, err);
    struct etc_copy c = {0};
    for (size_t i = 0; rc == 0 && i < VK_ARRAY_LEN(etc_files); i++) {
        char src[PATH_MAX], dst[PATH_MAX];
        snprintf(src, sizeof src, "/etc/%s", etc_files[i]);
        snprintf(dst, sizeof dst, "%s/%s", view, etc_files[i]);
        if (access(src, F_OK) != 0)
            continue;
        char parent[PATH_MAX];
        snprintf(parent, sizeof parent, "%s", dst);
        *strrchr(parent, '/') = '\0';
        rc = vk__exec_mkdir_p(parent, 0755, err);
        if (rc == 0 && copy_entry(src, dst, 0, true, &c) < 0)
            rc = vk_err_errno(err, "build the sandbox's /etc");
    }
    char path[PATH_MAX];
    if (rc == 0) {
        snprintf(path, sizeof path, "%s/passwd", view);
        rc = vk__exec_write_file(path, passwd, strlen(passwd), err);
    }
    if (rc == 0) {
        snprintf(path, sizeof path, "%s/group", view);
        rc = vk__exec_write_file(path, group, strlen(group), err);
    }
    /* /etc/mtab is ../proc/self/mounts: the sandbox's own, not the worker's. */
    snprintf(path, sizeof path, "%s/mtab", view);
    if (rc == 0 && symlink("../proc/self/mounts", path) < 0)
        rc = vk_err_errno(err, "sandbox /etc/mtab");
    for (size_t i = 0; rc == 0 && i < env->nbind_ro + env->nbind_rw; i++) {
        const char *b = i < env->nbind_ro ? env->bind_ro[i] : env->bind_rw[i - env->nbind_ro];
        if (strncmp(b, "/etc/", 5) == 0)
            rc = placeholder(view, b, err);
    }
    return rc;
}

#define PUSH(x)                                                                                    \
    do {                                                                                           \
        if (vk__exec_strv_push(argv, (x)) < 0)                                                     \
            return VK_ENOMEM;                                                                      \
    } while (0)

/* Bind every existing system directory read-only, recreating symlinks as symlinks. */
static int push_system(struct vk__exec_strv *argv, struct vk_pool *pool)
{
    for (size_t i = 0; i < VK_ARRAY_LEN(system_dirs); i++) {
        struct stat st;
        char *d = system_dirs[i];
        if (lstat(d, &st) < 0)
            continue;
        if (S_ISLNK(st.st_mode)) {
            char target[PATH_MAX];
            ssize_t n = readlink(d, target, sizeof target - 1);
            if (n <= 0)
                continue;
            PUSH("--symlink");
            PUSH(vk_pool_strndup(pool, target, (size_t)n));
            PUSH(d);
        } else if (S_ISDIR(st.st_mode)) {
            PUSH("--ro-bind");
            PUSH(d);
            PUSH(d);
        }
    }
    return 0;
}

/* The sandbox's /etc: the view vk__exec_sandbox_files built, read-only, in one bind. */
static int push_etc(const struct vk_exec_env *env, struct vk__exec_strv *argv, struct vk_pool *pool)
{
    PUSH("--ro-bind");
    PUSH(vk__exec_pool_printf(pool, "%s/" ETC_VIEW, env->run_dir));
    PUSH("/etc");
    return 0;
}

int vk__exec_bwrap_argv(const struct vk_exec_env *env, struct vk__exec_strv *argv,
                        struct vk_pool *pool, const char *ws, const char *script_dir,
                        const char *out_dir, const struct vk__exec_strv *mirrors,
                        bool allow_network, int env_fd)
{
    char *wsd = vk_pool_strndup(pool, ws, strlen(ws));
    char *sd = script_dir ? vk_pool_strndup(pool, script_dir, strlen(script_dir)) : NULL;
    char *od = out_dir ? vk_pool_strndup(pool, out_dir, strlen(out_dir)) : NULL;
    PUSH(env->bwrap_path);
    PUSH("--die-with-parent");
    PUSH("--unshare-all");
    if (allow_network)
        PUSH("--share-net");
    PUSH("--cap-drop");
    PUSH("ALL");
    int rc = push_system(argv, pool);
    if (rc == 0)
        rc = push_etc(env, argv, pool);
    if (rc < 0)
        return rc;
    PUSH("--dev");
    PUSH("/dev");
    PUSH("--proc");
    PUSH("/proc");
    PUSH("--tmpfs");
    PUSH("/tmp");
    PUSH("--tmpfs");
    PUSH("/var/tmp");
    /* After the tmpfs mounts, so a work_dir below /tmp stays reachable. */
    PUSH("--bind");
    PUSH(wsd);
    PUSH(wsd);
    if (script_dir) {
        PUSH("--ro-bind");
        PUSH(sd);
        PUSH(sd);
    }
    if (od) { /* after its read-only parent: $VULCAN_OUTPUT's directory is writable */
        PUSH("--bind");
        PUSH(od);
        PUSH(od);
    }
    for (size_t i = 0; mirrors && i < mirrors->n; i++) {
        PUSH("--ro-bind");
        PUSH(mirrors->v[i]);
        PUSH(mirrors->v[i]);
    }
    /* The operator's extra paths (--sandbox-ro / --sandbox-rw), after the tmpfs mounts. */
    for (size_t i = 0; i < env->nbind_ro; i++) {
        PUSH("--ro-bind");
        PUSH(env->bind_ro[i]);
        PUSH(env->bind_ro[i]);
    }
    for (size_t i = 0; i < env->nbind_rw; i++) {
        PUSH("--bind");
        PUSH(env->bind_rw[i]);
        PUSH(env->bind_rw[i]);
    }
    PUSH("--remount-ro");
    PUSH("/etc");
    PUSH("--chdir");
    PUSH(wsd);
    char fdtext[16];
    snprintf(fdtext, sizeof fdtext, "%d", env_fd);
    PUSH("--args");
    PUSH(vk_pool_strndup(pool, fdtext, strlen(fdtext)));
    PUSH("--");
    return 0;
}

int vk__exec_bwrap_env_fd(const struct vk__exec_strv *envv, int *fd, struct vk_err *err)
{
    struct vk_buf b = VK_BUF_INIT(VK_MAX_BODY);
    bool bad = vk_buf_add(&b, "--clearenv", sizeof("--clearenv")) < 0;
    for (size_t i = 0; !bad && i < envv->n; i++) {
        const char *kv = envv->v[i];
        const char *eq = strchr(kv, '=');
        if (!eq)
            continue;
        bad = vk_buf_add(&b, "--setenv", sizeof("--setenv")) < 0 ||
              vk_buf_add(&b, kv, (size_t)(eq - kv)) < 0 || vk_buf_add(&b, "", 1) < 0 ||
              vk_buf_add(&b, eq + 1, strlen(eq + 1) + 1) < 0;
    }
    if (bad) {
        vk_buf_release(&b);
        return vk_err_set(err, VK_ENOMEM, "out of memory");
    }
    int f = memfd_create("vulcan-env", MFD_CLOEXEC);
    size_t off = 0;
    while (f >= 0 && off < b.len) {
        ssize_t w = write(f, b.data + off, b.len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        off += (size_t)w;
    }
    int e = errno;
    vk_buf_release(&b);
    if (f < 0 || off < b.len || lseek(f, 0, SEEK_SET) != 0) {
        if (f >= 0)
            close(f);
        return vk_err_set(err, VK_EIO, "cannot hand the environment to bubblewrap: %s",
                          strerror(e));
    }
    *fd = f;
    return 0;
}

void vk__exec_bwrap_probe(struct vk_exec_env *env)
{
    env->bwrap_ok = false;
    if (!env->bwrap_path) {
        snprintf(env->bwrap_why, sizeof env->bwrap_why, "bwrap not found");
        return;
    }
    char *truep = vk__exec_which("/bin/true", "true");
    if (!truep) {
        snprintf(env->bwrap_why, sizeof env->bwrap_why, "'true' not found for the probe");
        return;
    }
    char *argv[] = {env->bwrap_path,
                    "--die-with-parent",
                    "--unshare-all",
                    "--cap-drop",
                    "ALL",
                    "--ro-bind",
                    "/",
                    "/",
                    "--dev",
                    "/dev",
                    "--proc",
                    "/proc",
                    "--tmpfs",
                    "/tmp",
                    "--",
                    truep,
                    NULL};
    char *envp[] = {"PATH=" VK_EXEC_DEFAULT_PATH, NULL};
    struct vk_buf out = VK_BUF_INIT(4096);
    struct vk__exec_child c = {.path = env->bwrap_path,
                               .argv = argv,
                               .envp = envp,
                               .timeout_ms = 10000,
                               .grace_ms = 1000,
                               .capture = &out};
    struct vk__exec_outcome o;
    struct vk_err err;
    int rc = vk__exec_child_run(&c, &o, &err);
    if (rc < 0)
        snprintf(env->bwrap_why, sizeof env->bwrap_why, "%.150s", err.msg);
    else if (o.exit_code != 0)
        snprintf(env->bwrap_why, sizeof env->bwrap_why, "bwrap probe failed (status %d): %.100s",
                 o.exit_code, out.data);
    else
        env->bwrap_ok = true;
    vk_buf_release(&out);
    vk_mem_free(truep);
}
