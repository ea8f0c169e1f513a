/*
 * git.c — the server's own small Git helper: a bare mirror per repository,
 * used to find and read workflow files at a commit, resolve branch heads and
 * list changed paths for webhooks that do not carry them.
 *
 *   <cache_dir>/<sha256(url)>.git    bare mirror (git clone --mirror)
 *   <cache_dir>/<sha256(url)>.lock   flock()ed while the mirror is cloned or
 *                                    fetched (threads and processes)
 *
 * A clone goes to a temporary name and is renamed into place, so a half-made
 * mirror is never used. The mirror is fetched only when a wanted commit is
 * missing, or when a branch head is asked for. Reads do not check for the commit
 * first: they run, and only when git cannot find the commit is the mirror synced and the
 * read done again. vk_git_read_files() lists and reads the workflow files of a commit
 * with one `git cat-file --batch` process (a webhook's whole git work on a warm mirror).
 *
 * git runs through posix_spawn() with an argv array (URLs are hostile, "--"
 * ends the options; never a shell), in its own process group with a timeout
 * (the group is killed when it runs out), stdin from /dev/null (a socket we write object
 * names to for cat-file --batch), output capped,
 * and a minimal environment: GIT_TERMINAL_PROMPT=0, ssh in batch mode, only
 * the file, git, http, https and ssh transports, no system gitconfig.
 */
#include "triggers_int.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_ERR_OUT 4096
#define MAX_GLOB 1024

struct vk_git_mirror {
    char *url;
    char *dir;  /* <cache>/<hex>.git */
    char *lock; /* <cache>/<hex>.lock */
    char *cache;
    char *git;
    int64_t timeout_ms;
    size_t max_blob;
    struct vk_git_stats stats;
    char *envp[9];
};

/* ---------------------------------------------------------------- Validation */

bool vk_git_valid_sha(const char *s)
{
    size_t n = s ? strnlen(s, 65) : 0;
    return (n == 40 || n == 64) && vk_hex_is(s, n);
}

static bool valid_short_sha(const char *s)
{
    size_t n = s ? strnlen(s, 65) : 0;
    return n >= 4 && n <= 64 && vk_hex_is(s, n);
}

/* git check-ref-format's rules, plus: nothing an option parser could take. */
bool vk_git_valid_branch(const char *s)
{
    size_t n = s ? strnlen(s, VK_TRIGGERS_MAX_REF + 1) : 0;
    if (n == 0 || n > VK_TRIGGERS_MAX_REF || s[0] == '-' || s[0] == '/' || s[0] == '.' ||
        s[n - 1] == '/' || s[n - 1] == '.' || strstr(s, "..") || strstr(s, "@{") ||
        strstr(s, "//") || strstr(s, "/.") || (n >= 5 && strcmp(s + n - 5, ".lock") == 0) ||
        strcmp(s, "@") == 0 || strstr(s, ".lock/"))
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c == 0x7f || strchr("~^:?*[\\", c))
            return false;
    }
    return true;
}

static bool valid_path(const char *p)
{
    size_t n = p ? strnlen(p, VK_TRIGGERS_MAX_PATH + 1) : 0;
    if (n == 0 || n > VK_TRIGGERS_MAX_PATH || p[0] == '/')
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f)
            return false;
    /* no "." or ".." segment */
    for (const char *s = p; *s;) {
        size_t seg = strcspn(s, "/");
        if (seg == 0 || (seg == 1 && s[0] == '.') || (seg == 2 && s[0] == '.' && s[1] == '.'))
            return false;
        s += seg;
        if (*s == '/')
            s++;
    }
    return true;
}

static bool valid_url(const char *u)
{
    size_t n = u ? strnlen(u, VK_TRIGGERS_MAX_URL + 1) : 0;
    if (n == 0 || n > VK_TRIGGERS_MAX_URL || u[0] == '-')
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)u[i] <= 0x20 || u[i] == 0x7f)
            return false;
    /* git's "ext::" and "fd::" transports run commands: refuse any "<x>::" */
    if (strstr(u, "::"))
        return false;
    return true;
}

/* ---------------------------------------------------------------- Running git */

struct out {
    struct vk_buf *buf; /* may be NULL: output discarded */
    bool overflow;
};

static int64_t mono_ms(void)
{
    return vk_time_mono_ns() / 1000000;
}

static void drain(int *fd, struct out *o, char *tmp, size_t tmpsz)
{
    ssize_t r = read(*fd, tmp, tmpsz);
    if (r > 0) {
        if (o->buf && !o->overflow && vk_buf_add(o->buf, tmp, (size_t)r) < 0)
            o->overflow = true;
        return;
    }
    if (r < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    close(*fd);
    *fd = -1;
}

/*
 * Start git with `argv` (argv[0] ignored: the mirror's git) in its own process group, with
 * stdin from `in_fd` (-1: /dev/null), stdout to `out_fd` and stderr to `err_fd` (-1:
 * /dev/null), SIGPIPE at its default and nothing blocked. On success *pid is the child.
 * Returns 0 or VK_EIO.
 */
static int spawn_git(struct vk_git_mirror *m, char **argv, int in_fd, int out_fd, int err_fd,
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
    int err_ok = err_fd >= 0 ? posix_spawn_file_actions_adddup2(&fa, err_fd, 2)
                             : posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    if (in_ok == 0 && posix_spawn_file_actions_adddup2(&fa, out_fd, 1) == 0 && err_ok == 0 &&
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

/*
 * Run git with `argv` (argv[0] ignored: the mirror's git). Stdout goes to
 * `out` (capped by its max; overflow: VK_ETOOBIG), stderr to `errout`.
 * *status gets the exit status (-1 when killed). Returns 0 when git ran to
 * the end (whatever its status), VK_ETIMEDOUT, VK_ETOOBIG or VK_EIO.
 */
static int run(struct vk_git_mirror *m, const char *what, char **argv, struct vk_buf *out,
               struct vk_buf *errout, int *status, struct vk_err *err)
{
    int po[2] = {-1, -1}, pe[2] = {-1, -1};
    int rc = VK_EIO;
    pid_t pid = -1;
    *status = -1;
    if (pipe2(po, O_CLOEXEC) < 0 || pipe2(pe, O_CLOEXEC) < 0) {
        rc = vk_err_errno(err, "pipe");
        goto out;
    }
    rc = spawn_git(m, argv, -1, po[1], pe[1], &pid, err);
    if (rc)
        goto out;
    rc = VK_EIO;
    close(po[1]);
    close(pe[1]);
    po[1] = pe[1] = -1;

    struct out o = {out, false}, oe = {errout, false};
    int64_t deadline = mono_ms() + m->timeout_ms;
    char tmp[16384];
    bool timed_out = false;
    while (po[0] >= 0 || pe[0] >= 0) {
        int64_t left = deadline - mono_ms();
        if (left <= 0) {
            timed_out = true;
            break;
        }
        if (o.overflow)
            break;
        struct pollfd fds[2] = {{po[0], POLLIN, 0}, {pe[0], POLLIN, 0}};
        int pr = poll(fds, 2, (int)(left > 1000 ? 1000 : left));
        if (pr < 0 && errno != EINTR) {
            rc = vk_err_errno(err, "poll");
            break;
        }
        if (pr <= 0)
            continue;
        if (po[0] >= 0 && fds[0].revents)
            drain(&po[0], &o, tmp, sizeof(tmp));
        if (pe[0] >= 0 && fds[1].revents)
            drain(&pe[0], &oe, tmp, sizeof(tmp));
    }
    bool killed = timed_out || o.overflow || po[0] >= 0 || pe[0] >= 0;
    if (killed)
        kill(-pid, SIGKILL);
    int ws = 0;
    while (waitpid(pid, &ws, 0) < 0 && errno == EINTR)
        ;
    pid = -1;
    if (timed_out) {
        rc = vk_err_set(err, VK_ETIMEDOUT, "git %s timed out after %lld ms", what,
                        (long long)m->timeout_ms);
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
    if (!b->data)
        return "";
    char *nl = memchr(b->data, '\n', b->len);
    if (nl)
        *nl = '\0';
    return b->data;
}

/* Run and require exit status 0; else `fail_code` with git's complaint. */
static int run_ok(struct vk_git_mirror *m, const char *what, char **argv, struct vk_buf *out,
                  int fail_code, struct vk_err *err)
{
    struct vk_buf e = VK_BUF_INIT(MAX_ERR_OUT);
    int status;
    int rc = run(m, what, argv, out, &e, &status, err);
    if (rc == 0 && status != 0)
        rc = vk_err_set(err, fail_code, "git %s failed: %s", what, first_line(&e));
    vk_buf_release(&e);
    return rc;
}

/* ---------------------------------------------------------------- Handle */

static char *join(const char *a, const char *b, const char *c)
{
    size_t n = strlen(a) + strlen(b) + strlen(c) + 1;
    char *s = vk_mem_alloc(n);
    if (s)
        snprintf(s, n, "%s%s%s", a, b, c);
    return s;
}

static int mkdir_p(const char *dir, struct vk_err *err)
{
    char path[4096];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof(path))
        return vk_err_set(err, VK_EINVAL, "bad cache directory '%.200s'", dir);
    memcpy(path, dir, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (path[i] != '/' && path[i] != '\0')
            continue;
        char c = path[i];
        path[i] = '\0';
        if (mkdir(path, 0700) < 0 && errno != EEXIST)
            return vk_err_errno(err, "mkdir");
        path[i] = c;
    }
    return 0;
}

static char *find_git(const char *want)
{
    if (want)
        return access(want, X_OK) == 0 ? join(want, "", "") : NULL;
    if (access("/usr/bin/git", X_OK) == 0)
        return join("/usr/bin/git", "", "");
    const char *path = getenv("PATH");
    while (path && *path) {
        size_t n = strcspn(path, ":");
        char cand[4096];
        if (n > 0 && n < sizeof(cand) - 5) {
            snprintf(cand, sizeof(cand), "%.*s/git", (int)n, path);
            if (access(cand, X_OK) == 0)
                return join(cand, "", "");
        }
        path += n + (path[n] == ':');
    }
    return NULL;
}

int vk_git_mirror_open(const char *cache_dir, const char *url, const struct vk_git_opts *opts,
                       struct vk_git_mirror **out, struct vk_err *err)
{
    *out = NULL;
    if (!cache_dir || !*cache_dir)
        return vk_err_set(err, VK_EINVAL, "no mirror cache directory");
    if (!valid_url(url))
        return vk_err_set(err, VK_EINVAL, "unusable repository URL '%.200s'", url ? url : "");
    int rc = mkdir_p(cache_dir, err);
    if (rc < 0)
        return rc;
    char hex[65];
    if (vk_sha256_hex(url, strlen(url), hex) < 0)
        return vk_err_set(err, VK_EINTERNAL, "cannot hash the URL");
    struct vk_git_mirror *m = vk_mem_calloc(1, sizeof(*m));
    if (!m)
        return vk_err_set(err, VK_ENOMEM, "out of memory");
    m->git = find_git(opts ? opts->git_path : NULL);
    if (!m->git) {
        vk_git_mirror_free(m);
        return vk_err_set(err, VK_ENOTFOUND, "git not found");
    }
    char name[80];
    snprintf(name, sizeof(name), "/%s", hex);
    m->url = join(url, "", "");
    m->cache = join(cache_dir, "", "");
    m->dir = join(cache_dir, name, ".git");
    m->lock = join(cache_dir, name, ".lock");
    m->timeout_ms = opts && opts->timeout_ms > 0 ? opts->timeout_ms : VK_GIT_DEFAULT_TIMEOUT_MS;
    m->max_blob = opts && opts->max_blob ? opts->max_blob : VK_GIT_MAX_BLOB;
    const char *home = getenv("HOME");
    m->envp[0] = join("PATH=", "/usr/local/bin:/usr/bin:/bin", "");
    m->envp[1] = join("HOME=", home && *home == '/' ? home : "/nonexistent", "");
    m->envp[2] = join("GIT_TERMINAL_PROMPT=0", "", "");
    m->envp[3] = join("LC_ALL=C", "", "");
    m->envp[4] = join("GIT_ALLOW_PROTOCOL=file:git:http:https:ssh", "", "");
    m->envp[5] = join("GIT_SSH_COMMAND=ssh -o BatchMode=yes", "", "");
    m->envp[6] = join("GIT_CONFIG_NOSYSTEM=1", "", "");
    m->envp[7] = join("GIT_ASKPASS=/bin/false", "", "");
    m->envp[8] = NULL;
    bool ok = m->url && m->cache && m->dir && m->lock;
    for (int i = 0; i < 8; i++)
        ok = ok && m->envp[i];
    if (!ok) {
        vk_git_mirror_free(m);
        return vk_err_set(err, VK_ENOMEM, "out of memory");
    }
    *out = m;
    return 0;
}

void vk_git_mirror_free(struct vk_git_mirror *m)
{
    if (!m)
        return;
    vk_mem_free(m->url);
    vk_mem_free(m->dir);
    vk_mem_free(m->lock);
    vk_mem_free(m->cache);
    vk_mem_free(m->git);
    for (int i = 0; i < 8; i++)
        vk_mem_free(m->envp[i]);
    vk_mem_free(m);
}

const char *vk_git_mirror_path(const struct vk_git_mirror *m)
{
    return m->dir;
}

struct vk_git_stats vk_git_mirror_stats(const struct vk_git_mirror *m)
{
    return m->stats;
}

void vk_git_paths_init(struct vk_git_paths *p)
{
    memset(p, 0, sizeof(*p));
    vk_pool_init(&p->pool, 0);
}

void vk_git_paths_release(struct vk_git_paths *p)
{
    if (!p)
        return;
    vk_pool_release(&p->pool);
    p->items = NULL;
    p->n = 0;
}

/* ---------------------------------------------------------------- Mirror upkeep */

static bool mirror_exists(const struct vk_git_mirror *m)
{
    char head[4200];
    struct stat st;
    snprintf(head, sizeof(head), "%s/HEAD", m->dir);
    return stat(head, &st) == 0 && S_ISREG(st.st_mode);
}

/* Clones plus fetches so far: a change means the mirror got new objects. */
static unsigned syncs(const struct vk_git_mirror *m)
{
    return m->stats.clones + m->stats.fetches;
}

static bool has_commit(struct vk_git_mirror *m, const char *sha)
{
    char spec[80];
    snprintf(spec, sizeof(spec), "%s^{commit}", sha);
    char *argv[] = {NULL, "-C", m->dir, "cat-file", "-e", spec, NULL};
    int status;
    struct vk_buf e = VK_BUF_INIT(MAX_ERR_OUT);
    int rc = run(m, "cat-file", argv, NULL, &e, &status, NULL);
    vk_buf_release(&e);
    return rc == 0 && status == 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_DP)
        return rmdir(path);
    return unlink(path);
}

static int clone_mirror(struct vk_git_mirror *m, struct vk_err *err)
{
    char suffix[64];
    snprintf(suffix, sizeof(suffix), ".tmp-%ld-%lld", (long)getpid(), (long long)vk_time_mono_ns());
    char *tmp = join(m->dir, suffix, "");
    if (!tmp)
        return vk_err_set(err, VK_ENOMEM, "out of memory");
    char *argv[] = {NULL,      "-c", "gc.auto=0", "clone", "--mirror",
                    "--quiet", "--", m->url,      tmp,     NULL};
    m->stats.clones++;
    int rc = run_ok(m, "clone", argv, NULL, VK_EIO, err);
    if (rc == 0 && rename(tmp, m->dir) < 0)
        rc = vk_err_errno(err, "rename");
    if (rc < 0)
        nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    vk_mem_free(tmp);
    return rc;
}

static int fetch_mirror(struct vk_git_mirror *m, struct vk_err *err)
{
    /* gc off: never prune objects a concurrent reader may be using */
    char *argv[] = {NULL,    "-C",      m->dir,    "-c",     "gc.auto=0",
                    "fetch", "--prune", "--quiet", "origin", NULL};
    m->stats.fetches++;
    return run_ok(m, "fetch", argv, NULL, VK_EIO, err);
}

/* Clone when absent; fetch when `sha` is missing or (`always`) in any case. */
static int sync_locked(struct vk_git_mirror *m, const char *sha, bool always, struct vk_err *err)
{
    int fd = open(m->lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return vk_err_errno(err, "open lock");
    int rc;
    while ((rc = flock(fd, LOCK_EX)) < 0 && errno == EINTR)
        ;
    if (rc < 0) {
        rc = vk_err_errno(err, "flock");
        close(fd);
        return rc;
    }
    /* the state may have changed while we waited for the lock */
    if (!mirror_exists(m))
        rc = clone_mirror(m, err);
    else if (always || (sha && !has_commit(m, sha)))
        rc = fetch_mirror(m, err);
    flock(fd, LOCK_UN);
    close(fd);
    return rc;
}

int vk_git_mirror_sync(struct vk_git_mirror *m, const char *sha, struct vk_err *err)
{
    if (sha && !vk_git_valid_sha(sha))
        return vk_err_set(err, VK_EINVAL, "invalid commit id '%.80s'", sha);
    if (sha && mirror_exists(m) && has_commit(m, sha))
        return 0;
    int rc = sync_locked(m, sha, sha == NULL, err);
    if (rc < 0)
        return rc;
    if (sha && !has_commit(m, sha))
        return vk_err_set(err, VK_ENOTFOUND, "commit '%s' not found in '%s'", sha, m->url);
    return 0;
}

/* ---------------------------------------------------------------- Queries */

static int rev_parse(struct vk_git_mirror *m, const char *spec, char out[65], struct vk_err *err)
{
    char *argv[] = {
        NULL,         "-C", m->dir, "rev-parse", "--verify", "--quiet", "--end-of-options",
        (char *)spec, NULL};
    struct vk_buf o = VK_BUF_INIT(256);
    int rc = run_ok(m, "rev-parse", argv, &o, VK_ENOTFOUND, err);
    if (rc == 0) {
        size_t n = o.len;
        while (n && (o.data[n - 1] == '\n' || o.data[n - 1] == '\r'))
            n--;
        if ((n != 40 && n != 64) || !vk_hex_is(o.data, n)) {
            rc = vk_err_set(err, VK_EIO, "unexpected output of git rev-parse");
        } else {
            memcpy(out, o.data, n);
            out[n] = '\0';
        }
    }
    vk_buf_release(&o);
    return rc;
}

int vk_git_resolve_branch(struct vk_git_mirror *m, const char *branch, char out[65],
                          struct vk_err *err)
{
    if (!vk_git_valid_branch(branch))
        return vk_err_set(err, VK_EINVAL, "invalid branch name '%.200s'", branch ? branch : "");
    int rc = vk_git_mirror_sync(m, NULL, err);
    if (rc < 0)
        return rc;
    char spec[VK_TRIGGERS_MAX_REF + 32];
    snprintf(spec, sizeof(spec), "refs/heads/%s^{commit}", branch);
    rc = rev_parse(m, spec, out, err);
    if (rc == VK_ENOTFOUND)
        return vk_err_set(err, rc, "branch '%s' not found in '%s'", branch, m->url);
    return rc;
}

int vk_git_resolve_commit(struct vk_git_mirror *m, const char *sha, char out[65],
                          struct vk_err *err)
{
    if (!valid_short_sha(sha))
        return vk_err_set(err, VK_EINVAL, "invalid commit id '%.80s'", sha ? sha : "");
    char spec[80];
    snprintf(spec, sizeof(spec), "%s^{commit}", sha);
    if (mirror_exists(m) && rev_parse(m, spec, out, NULL) == 0)
        return 0;
    int rc = sync_locked(m, NULL, true, err);
    if (rc < 0)
        return rc;
    rc = rev_parse(m, spec, out, err);
    if (rc == VK_ENOTFOUND)
        return vk_err_set(err, rc, "commit '%s' not found (or ambiguous) in '%s'", sha, m->url);
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/*
 * Split NUL-separated names in `b`, keep those `glob` matches (NULL: all),
 * append them to `out`, then sort and deduplicate the whole list.
 */
static int collect(struct vk_buf *b, const char *glob, struct vk_git_paths *out, struct vk_err *err)
{
    size_t count = out->n;
    for (size_t i = 0; i < b->len; i++)
        count += b->data[i] == '\0';
    if (count > VK_GIT_MAX_FILES)
        return vk_err_set(err, VK_ETOOBIG, "more than %d files listed", VK_GIT_MAX_FILES);
    const char **items = vk_pool_alloc(&out->pool, (count + 1) * sizeof(*items));
    if (!items)
        return vk_err_set(err, VK_ENOMEM, "out of memory");
    if (out->n)
        memcpy(items, out->items, out->n * sizeof(*items));
    size_t n = out->n;
    for (size_t i = 0; i < b->len;) {
        const char *name = b->data + i;
        size_t len = strnlen(name, b->len - i);
        i += len + 1;
        if (len == 0 || (glob && !vk_glob_match(glob, name)))
            continue;
        items[n] = vk_pool_strndup(&out->pool, name, len);
        if (!items[n])
            return vk_err_set(err, VK_ENOMEM, "out of memory");
        n++;
    }
    qsort(items, n, sizeof(*items), cmp_str);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (k == 0 || strcmp(items[i], items[k - 1]) != 0)
            items[k++] = items[i];
    out->items = items;
    out->n = k;
    return 0;
}

/* The directory part of `glob` before its first wildcard ("" when none). */
static size_t glob_dir(const char *glob)
{
    size_t first = strcspn(glob, "*?[\\");
    size_t dir = 0;
    for (size_t i = 0; i < first; i++)
        if (glob[i] == '/')
            dir = i;
    return dir;
}

int vk_git_list_files(struct vk_git_mirror *m, const char *sha, const char *glob,
                      struct vk_git_paths *out, struct vk_err *err)
{
    if (!glob)
        glob = VK_GIT_DEFAULT_GLOB;
    size_t gn = strnlen(glob, MAX_GLOB + 1);
    if (gn == 0 || gn > MAX_GLOB || glob[0] == '/')
        return vk_err_set(err, VK_EINVAL, "invalid workflow glob '%.100s'", glob);
    for (size_t i = 0; i < gn; i++)
        if ((unsigned char)glob[i] < 0x20)
            return vk_err_set(err, VK_EINVAL, "invalid workflow glob");
    if (!vk_git_valid_sha(sha))
        return vk_err_set(err, VK_EINVAL, "invalid commit id '%.80s'", sha ? sha : "");
    /* list only below the fixed directory part of the glob (".vulcan" for ".vulcan/x") */
    char prefix[MAX_GLOB + 1];
    size_t pn = glob_dir(glob);
    memcpy(prefix, glob, pn);
    prefix[pn] = '\0';
    char *argv[] = {NULL, "--literal-pathspecs", "-C", m->dir,        "ls-tree",
                    "-r", "--name-only",         "-z", "--full-tree", (char *)sha,
                    "--", pn ? prefix : NULL,    NULL};
    struct vk_buf o = VK_BUF_INIT(VK_GIT_MAX_LIST);
    /* the commit is usually there: list first, sync only when that fails */
    int rc = VK_ENOTFOUND;
    if (mirror_exists(m))
        rc = run_ok(m, "ls-tree", argv, &o, VK_EIO, err);
    if (rc == VK_EIO || rc == VK_ENOTFOUND) {
        unsigned before = syncs(m);
        int src = vk_git_mirror_sync(m, sha, err);
        if (src < 0) {
            rc = src;
        } else if (rc == VK_ENOTFOUND || syncs(m) != before) {
            vk_buf_reset(&o);
            rc = run_ok(m, "ls-tree", argv, &o, VK_EIO, err);
        }
    }
    if (rc == 0)
        rc = collect(&o, glob, out, err);
    vk_buf_release(&o);
    return rc;
}

/* `git cat-file blob <sha>:<path>` into `out`. */
static int cat_blob(struct vk_git_mirror *m, const char *sha, const char *path, struct vk_buf *out,
                    struct vk_err *err)
{
    size_t n = strlen(sha) + strlen(path) + 2;
    char *spec = vk_mem_alloc(n);
    if (!spec)
        return vk_err_set(err, VK_ENOMEM, "out of memory");
    snprintf(spec, n, "%s:%s", sha, path);
    char *argv[] = {NULL, "-C", m->dir, "cat-file", "blob", spec, NULL};
    struct vk_buf o = VK_BUF_INIT(m->max_blob);
    int rc = run_ok(m, "cat-file", argv, &o, VK_ENOTFOUND, err);
    if (rc == VK_ETOOBIG)
        rc = vk_err_set(err, rc, "file '%s' is larger than %zu bytes", path, m->max_blob);
    else if (rc == VK_ENOTFOUND)
        rc = vk_err_set(err, rc, "file '%s' not found at commit %.12s", path, sha);
    if (rc == 0 && o.len && vk_buf_add(out, o.data, o.len) < 0)
        rc = vk_err_set(err, VK_ETOOBIG, "file '%s' does not fit the buffer", path);
    vk_buf_release(&o);
    vk_mem_free(spec);
    return rc;
}

int vk_git_read_file(struct vk_git_mirror *m, const char *sha, const char *path, struct vk_buf *out,
                     struct vk_err *err)
{
    if (!valid_path(path))
        return vk_err_set(err, VK_EINVAL, "invalid file path '%.200s'", path ? path : "");
    if (!vk_git_valid_sha(sha))
        return vk_err_set(err, VK_EINVAL, "invalid commit id '%.80s'", sha ? sha : "");
    /* the commit is usually there: read first, sync only when that fails */
    int rc = VK_ENOTFOUND;
    if (mirror_exists(m)) {
        rc = cat_blob(m, sha, path, out, err);
        if (rc != VK_ENOTFOUND)
            return rc;
    }
    unsigned before = syncs(m);
    int src = vk_git_mirror_sync(m, sha, err);
    if (src < 0)
        return src;
    if (rc == VK_ENOTFOUND && syncs(m) == before)
        return rc; /* the commit was there all along: no such file */
    return cat_blob(m, sha, path, out, err);
}

int vk_git_changed_paths(struct vk_git_mirror *m, const char *before, const char *after,
                         struct vk_git_paths *out, struct vk_err *err)
{
    bool fresh = !before || vk__triggers_zero(before);
    if (!vk_git_valid_sha(after) || (!fresh && !vk_git_valid_sha(before)))
        return vk_err_set(err, VK_EINVAL, "invalid commit id");
    int rc = vk_git_mirror_sync(m, after, err);
    if (rc == 0 && !fresh)
        rc = vk_git_mirror_sync(m, before, err);
    if (rc < 0)
        return rc;
    struct vk_buf o = VK_BUF_INIT(VK_GIT_MAX_LIST);
    if (fresh) {
        /* the commit's own changes: against its first parent, all files for a root */
        char *argv[] = {NULL,
                        "-C",
                        m->dir,
                        "diff-tree",
                        "-r",
                        "--name-only",
                        "-z",
                        "--no-commit-id",
                        "--root",
                        "-m",
                        "--first-parent",
                        "--no-renames",
                        (char *)after,
                        NULL};
        rc = run_ok(m, "diff-tree", argv, &o, VK_EIO, err);
    } else {
        char *argv[] = {NULL,           "-C",          m->dir,         "diff",
                        "--name-only",  "-z",          "--no-renames", "--no-ext-diff",
                        (char *)before, (char *)after, "--",           NULL};
        rc = run_ok(m, "diff", argv, &o, VK_EIO, err);
    }
    if (rc == 0)
        rc = collect(&o, NULL, out, err);
    vk_buf_release(&o);
    return rc;
}

/* ---------------------------------------------------------------- Batch reads */

/*
 * One `git cat-file --batch` process for a whole read: we write an object name per line
 * on its stdin (a socket, so that a git that died gives EPIPE, never SIGPIPE) and read
 * "<oid> <type> <size>\n<bytes>\n" or "<name> missing\n" back (git flushes after every
 * object). One deadline (the mirror's timeout) covers the whole conversation; any error
 * ends the process.
 */
struct batch {
    struct vk_git_mirror *m;
    pid_t pid;
    int in;  /* our end of git's stdin */
    int out; /* git's stdout */
    int64_t deadline;
    size_t hexlen; /* length of the last object id answered: 40 or 64 */
    size_t pos, len;
    char buf[16384];
};

static int batch_fail(struct batch *b, struct vk_err *err, int code, const char *what)
{
    if (code == VK_ETIMEDOUT)
        return vk_err_set(err, code, "git cat-file timed out after %lld ms",
                          (long long)b->m->timeout_ms);
    return vk_err_set(err, code, "git cat-file: %s", what);
}

static void batch_end(struct batch *b)
{
    if (b->in >= 0)
        close(b->in);
    if (b->out >= 0)
        close(b->out);
    b->in = b->out = -1;
    if (b->pid > 0) {
        /* read-only work: ending it at once is safe and bounds the wait */
        kill(-b->pid, SIGKILL);
        while (waitpid(b->pid, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    b->pid = -1;
}

static int batch_start(struct batch *b, struct vk_git_mirror *m, struct vk_err *err)
{
    int sv[2] = {-1, -1}, po[2] = {-1, -1};
    memset(b, 0, sizeof(*b));
    b->m = m;
    b->pid = -1;
    b->in = b->out = -1;
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return vk_err_errno(err, "socketpair");
    if (pipe2(po, O_CLOEXEC) < 0) {
        int rc = vk_err_errno(err, "pipe");
        close(sv[0]);
        close(sv[1]);
        return rc;
    }
    char *argv[] = {NULL, "-C", m->dir, "cat-file", "--batch", NULL};
    int rc = spawn_git(m, argv, sv[1], po[1], -1, &b->pid, err);
    close(sv[1]);
    close(po[1]);
    b->in = sv[0];
    b->out = po[0];
    b->deadline = mono_ms() + m->timeout_ms;
    if (rc)
        batch_end(b);
    return rc;
}

/* Wait until `fd` is ready for `events` or the deadline passes. Returns 0, VK_ETIMEDOUT, VK_EIO. */
static int batch_wait(struct batch *b, int fd, short events, struct vk_err *err)
{
    for (;;) {
        int64_t left = b->deadline - mono_ms();
        if (left <= 0)
            return batch_fail(b, err, VK_ETIMEDOUT, NULL);
        struct pollfd p = {fd, events, 0};
        int pr = poll(&p, 1, (int)(left > 1000 ? 1000 : left));
        if (pr > 0)
            return 0;
        if (pr < 0 && errno != EINTR)
            return vk_err_errno(err, "poll");
    }
}

static int batch_write(struct batch *b, const char *p, size_t n, struct vk_err *err)
{
    while (n > 0) {
        int rc = batch_wait(b, b->in, POLLOUT, err);
        if (rc)
            return rc;
        ssize_t w = send(b->in, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (w < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
            continue;
        if (w <= 0)
            return batch_fail(b, err, VK_EIO, "the process ended early");
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

/* At least one more byte in b->buf (b->pos < b->len). */
static int batch_fill(struct batch *b, struct vk_err *err)
{
    if (b->pos < b->len)
        return 0;
    b->pos = b->len = 0;
    for (;;) {
        int rc = batch_wait(b, b->out, POLLIN, err);
        if (rc)
            return rc;
        ssize_t r = read(b->out, b->buf, sizeof(b->buf));
        if (r > 0) {
            b->len = (size_t)r;
            return 0;
        }
        if (r < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        return batch_fail(b, err, VK_EIO, "the process ended early");
    }
}

/* One header line (without its LF) into `line` (`cap` bytes with the NUL). */
static int batch_line(struct batch *b, char *line, size_t cap, struct vk_err *err)
{
    size_t n = 0;
    for (;;) {
        int rc = batch_fill(b, err);
        if (rc)
            return rc;
        char c = b->buf[b->pos++];
        if (c == '\n')
            break;
        if (n + 1 >= cap)
            return batch_fail(b, err, VK_EIO, "header line too long");
        line[n++] = c;
    }
    line[n] = '\0';
    return 0;
}

/*
 * Ask for object `name` (an oid, "<sha>^{commit}", "<sha>:<path>"; no LF). On success
 * *missing tells whether it exists; when it does, `type` gets its type and `out` (reset
 * first) its bytes. An object larger than `cap` is VK_ETOOBIG when `!discard`, else its
 * first `cap` bytes are kept and the rest skipped. Errors end nothing: the caller calls
 * batch_end().
 */
static int batch_get(struct batch *b, const char *name, size_t cap, bool discard, char type[16],
                     struct vk_buf *out, bool *missing, struct vk_err *err)
{
    char line[VK_TRIGGERS_MAX_PATH + 256];
    size_t nl = strlen(name);
    *missing = false;
    vk_buf_reset(out);
    if (nl == 0 || nl > VK_TRIGGERS_MAX_PATH + 128 || memchr(name, '\n', nl))
        return vk_err_set(err, VK_EINVAL, "invalid object name");
    int rc = batch_write(b, name, nl, err);
    if (rc == 0)
        rc = batch_write(b, "\n", 1, err);
    if (rc == 0)
        rc = batch_line(b, line, sizeof(line), err);
    if (rc)
        return rc;
    /* "<name> missing" / "<name> ambiguous": the name is ours, so compare the suffix */
    size_t ll = strlen(line);
    if (ll == nl + 8 && memcmp(line, name, nl) == 0 && strcmp(line + nl, " missing") == 0) {
        *missing = true;
        return 0;
    }
    if (ll == nl + 10 && memcmp(line, name, nl) == 0 && strcmp(line + nl, " ambiguous") == 0) {
        *missing = true;
        return 0;
    }
    /* "<oid> <type> <size>" */
    char *sp1 = strchr(line, ' ');
    char *sp2 = sp1 ? strchr(sp1 + 1, ' ') : NULL;
    size_t hexn = sp1 ? (size_t)(sp1 - line) : 0;
    if (!sp2 || (hexn != 40 && hexn != 64) || !vk_hex_is(line, hexn) ||
        (size_t)(sp2 - sp1 - 1) >= 16 || sp2[1] < '0' || sp2[1] > '9' || strlen(sp2 + 1) > 15)
        return batch_fail(b, err, VK_EIO, "unexpected answer");
    b->hexlen = hexn;
    memcpy(type, sp1 + 1, (size_t)(sp2 - sp1 - 1));
    type[sp2 - sp1 - 1] = '\0';
    unsigned long long size = 0;
    for (const char *d = sp2 + 1; *d; d++) {
        if (*d < '0' || *d > '9')
            return batch_fail(b, err, VK_EIO, "unexpected answer");
        size = size * 10 + (unsigned)(*d - '0');
    }
    if (size > cap && !discard)
        return VK_ETOOBIG; /* the caller names the object */
    /* the bytes, then one LF */
    unsigned long long left = size + 1;
    while (left > 0) {
        rc = batch_fill(b, err);
        if (rc)
            return rc;
        size_t avail = b->len - b->pos;
        size_t take = avail < left ? avail : (size_t)left;
        size_t keep_left = out->len < cap ? cap - out->len : 0;
        size_t keep = take;
        if (left <= take) /* the final LF is not content */
            keep = take - 1;
        if (keep > keep_left)
            keep = keep_left;
        if (keep && vk_buf_add(out, b->buf + b->pos, keep) < 0)
            return vk_err_set(err, VK_ENOMEM, "out of memory");
        b->pos += take;
        left -= take;
    }
    if (b->buf[b->pos - 1] != '\n')
        return batch_fail(b, err, VK_EIO, "unexpected answer");
    return 0;
}

void vk_git_files_init(struct vk_git_files *f)
{
    memset(f, 0, sizeof(*f));
    vk_pool_init(&f->pool, 0);
}

void vk_git_files_release(struct vk_git_files *f)
{
    if (!f)
        return;
    vk_pool_release(&f->pool);
    f->items = NULL;
    f->n = 0;
    f->bytes = 0;
}

/* A file found while walking the trees: its path and blob id. */
struct found {
    char *path;
    char oid[65];
};

/* A directory still to read. */
struct dir {
    char *path; /* "" for the root */
    char oid[65];
};

struct walk {
    struct batch *b;
    const char *glob;
    size_t glob_slashes; /* '/' in the glob; SIZE_MAX when it has "**" */
    size_t rawlen;       /* bytes of an object id in a tree: 20 or 32 */
    struct vk_pool pool; /* paths, dirs, found */
    struct found *found;
    size_t nfound, capfound;
    struct dir *dirs;
    size_t ndirs, capdirs;
    size_t entries, tree_bytes;
};

static int grow(void **arr, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap)
        return 0;
    size_t nc = *cap ? *cap * 2 : 16;
    void *p = vk_mem_realloc(*arr, nc * elem);
    if (!p)
        return VK_ENOMEM;
    *arr = p;
    *cap = nc;
    return 0;
}

static char *path_join(struct vk_pool *pool, const char *dir, const char *name, size_t nn)
{
    size_t dn = strlen(dir);
    char *p = vk_pool_alloc(pool, dn + 1 + nn + 1);
    if (!p)
        return NULL;
    memcpy(p, dir, dn);
    size_t at = dn;
    if (dn)
        p[at++] = '/';
    memcpy(p + at, name, nn);
    p[at + nn] = '\0';
    return p;
}

static size_t slashes(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '/';
    return n;
}

/*
 * The entries of tree `t` (at `dir`): "<octal mode> <name>\0<raw id>" each. Subtrees
 * a match could lie under are queued; blobs and symbolic links whose path matches the
 * glob are kept; submodules (commits) are not files and are left out, and so are paths
 * vk_git_read_file() would refuse.
 */
static int walk_tree(struct walk *w, const char *dir, const struct vk_buf *t, struct vk_err *err)
{
    const char *p = t->data, *end = t->data + t->len;
    w->tree_bytes += t->len;
    if (w->tree_bytes > VK_GIT_MAX_LIST)
        return vk_err_set(err, VK_ETOOBIG, "the workflow directory lists more than %u bytes",
                          VK_GIT_MAX_LIST);
    /* '/' in the path of an entry of this tree */
    size_t depth = dir[0] ? slashes(dir) + 1 : 0;
    while (p < end) {
        const char *mode = p;
        const char *sp = memchr(p, ' ', (size_t)(end - p));
        const char *nul = sp ? memchr(sp, '\0', (size_t)(end - sp)) : NULL;
        if (!nul || sp == mode || nul == sp + 1 || (size_t)(end - nul - 1) < w->rawlen)
            return batch_fail(w->b, err, VK_EIO, "malformed tree");
        if (++w->entries > VK_GIT_MAX_FILES)
            return vk_err_set(err, VK_ETOOBIG, "more than %d files listed", VK_GIT_MAX_FILES);
        size_t ml = (size_t)(sp - mode);
        const char *name = sp + 1;
        size_t nn = (size_t)(nul - name);
        char oid[65];
        vk_hex_encode(nul + 1, w->rawlen, oid);
        p = nul + 1 + w->rawlen;
        bool is_tree = ml == 5 && memcmp(mode, "40000", 5) == 0;
        bool is_file =
            ml == 6 && (memcmp(mode, "100644", 6) == 0 || memcmp(mode, "100755", 6) == 0 ||
                        memcmp(mode, "120000", 6) == 0);
        if ((!is_tree && !is_file) || strlen(dir) + 1 + nn > VK_TRIGGERS_MAX_PATH)
            continue;
        if (is_tree && depth + 1 > w->glob_slashes)
            continue; /* nothing below can match */
        char *path = path_join(&w->pool, dir, name, nn);
        if (!path)
            return vk_err_set(err, VK_ENOMEM, "out of memory");
        if (!valid_path(path))
            continue;
        if (is_tree) {
            if (grow((void **)&w->dirs, &w->capdirs, w->ndirs, sizeof(*w->dirs)))
                return vk_err_set(err, VK_ENOMEM, "out of memory");
            w->dirs[w->ndirs].path = path;
            memcpy(w->dirs[w->ndirs].oid, oid, sizeof(oid));
            w->ndirs++;
        } else if (vk_glob_match(w->glob, path)) {
            if (grow((void **)&w->found, &w->capfound, w->nfound, sizeof(*w->found)))
                return vk_err_set(err, VK_ENOMEM, "out of memory");
            w->found[w->nfound].path = path;
            memcpy(w->found[w->nfound].oid, oid, sizeof(oid));
            w->nfound++;
        }
    }
    return 0;
}

static int cmp_found(const void *a, const void *b)
{
    return strcmp(((const struct found *)a)->path, ((const struct found *)b)->path);
}

/*
 * The walk itself, in an open session: the commit (missing: *missing), the tree at the
 * glob's fixed directory, the trees below it a match could be in, then every matching
 * file's bytes into `out`.
 */
static int read_files_in(struct walk *w, const char *sha, const char *prefix, bool *missing,
                         struct vk_git_files *out, struct vk_err *err)
{
    struct batch *b = w->b;
    struct vk_git_mirror *m = b->m;
    char type[16];
    char name[VK_TRIGGERS_MAX_PATH + 80];
    struct vk_buf obj = VK_BUF_INIT(VK_GIT_MAX_LIST);
    int rc;
    snprintf(name, sizeof(name), "%s^{commit}", sha);
    rc = batch_get(b, name, 256, true, type, &obj, missing, err);
    if (rc || *missing)
        goto out;
    w->rawlen = b->hexlen / 2; /* the repository's hash: SHA-1 or SHA-256 */
    /* the glob's directory: absent, or not a directory, means no files */
    if (prefix[0])
        snprintf(name, sizeof(name), "%s:%s", sha, prefix);
    else
        snprintf(name, sizeof(name), "%s^{tree}", sha);
    bool absent = false;
    rc = batch_get(b, name, VK_GIT_MAX_LIST, false, type, &obj, &absent, err);
    if (rc == VK_ETOOBIG)
        rc =
            vk_err_set(err, rc, "the workflow directory lists more than %u bytes", VK_GIT_MAX_LIST);
    if (rc || absent || strcmp(type, "tree") != 0)
        goto out;
    rc = walk_tree(w, prefix, &obj, err);
    while (rc == 0 && w->ndirs > 0) {
        struct dir d = w->dirs[--w->ndirs];
        rc = batch_get(b, d.oid, VK_GIT_MAX_LIST, false, type, &obj, &absent, err);
        if (rc == 0 && (absent || strcmp(type, "tree") != 0))
            rc = batch_fail(b, err, VK_EIO, "a tree is missing");
        if (rc == VK_ETOOBIG)
            rc = vk_err_set(err, rc, "the workflow directory lists more than %u bytes",
                            VK_GIT_MAX_LIST);
        if (rc == 0)
            rc = walk_tree(w, d.path, &obj, err);
    }
    if (rc)
        goto out;
    if (w->nfound > 1)
        qsort(w->found, w->nfound, sizeof(*w->found), cmp_found);
    out->items = vk_pool_zalloc(&out->pool, (w->nfound ? w->nfound : 1) * sizeof(*out->items));
    if (!out->items) {
        rc = vk_err_set(err, VK_ENOMEM, "out of memory");
        goto out;
    }
    struct vk_buf blob = VK_BUF_INIT(m->max_blob + 1);
    for (size_t i = 0; i < w->nfound && rc == 0; i++) {
        const struct found *f = &w->found[i];
        rc = batch_get(b, f->oid, m->max_blob, false, type, &blob, &absent, err);
        if (rc == VK_ETOOBIG)
            rc = vk_err_set(err, rc, "file '%s' is larger than %zu bytes", f->path, m->max_blob);
        else if (rc == 0 && (absent || strcmp(type, "blob") != 0))
            rc = batch_fail(b, err, VK_EIO, "a blob is missing");
        else if (rc == 0 && out->bytes + blob.len > VK_GIT_MAX_READ)
            rc = vk_err_set(err, VK_ETOOBIG, "the workflow files are larger than %u bytes",
                            VK_GIT_MAX_READ);
        if (rc)
            break;
        struct vk_git_file *o = &out->items[out->n];
        o->path = vk_pool_strndup(&out->pool, f->path, strlen(f->path));
        o->data = vk_pool_strndup(&out->pool, blob.data ? blob.data : "", blob.len);
        o->len = blob.len;
        if (!o->path || !o->data) {
            rc = vk_err_set(err, VK_ENOMEM, "out of memory");
            break;
        }
        out->bytes += blob.len;
        out->n++;
    }
    vk_buf_release(&blob);
out:
    vk_buf_release(&obj);
    return rc;
}

/* Check a workflow glob; on success *pn is the length of its fixed directory part. */
static int check_glob(const char *glob, size_t *pn, struct vk_err *err)
{
    size_t gn = strnlen(glob, MAX_GLOB + 1);
    if (gn == 0 || gn > MAX_GLOB || glob[0] == '/')
        return vk_err_set(err, VK_EINVAL, "invalid workflow glob '%.100s'", glob);
    for (size_t i = 0; i < gn; i++)
        if ((unsigned char)glob[i] < 0x20)
            return vk_err_set(err, VK_EINVAL, "invalid workflow glob");
    *pn = glob_dir(glob);
    return 0;
}

int vk_git_read_files(struct vk_git_mirror *m, const char *sha, const char *glob,
                      struct vk_git_files *out, struct vk_err *err)
{
    if (!glob)
        glob = VK_GIT_DEFAULT_GLOB;
    if (!vk_git_valid_sha(sha))
        return vk_err_set(err, VK_EINVAL, "invalid commit id '%.80s'", sha ? sha : "");
    size_t pn = 0;
    int rc = check_glob(glob, &pn, err);
    if (rc)
        return rc;
    char prefix[MAX_GLOB + 1];
    memcpy(prefix, glob, pn);
    prefix[pn] = '\0';
    if (pn && !valid_path(prefix)) {
        out->items = NULL; /* no file of a tree has such a path */
        return 0;
    }
    /* the commit is usually there: ask first, sync (clone or fetch) only when it is not */
    for (int attempt = 0;; attempt++) {
        if (attempt > 0 || !mirror_exists(m)) {
            rc = vk_git_mirror_sync(m, sha, err);
            if (rc)
                return rc;
        }
        struct walk w = {.glob = glob,
                         .glob_slashes = strstr(glob, "**") ? SIZE_MAX : slashes(glob)};
        vk_pool_init(&w.pool, 0);
        struct batch b;
        bool missing = false;
        rc = batch_start(&b, m, err);
        if (rc == 0) {
            w.b = &b;
            rc = read_files_in(&w, sha, prefix, &missing, out, err);
        }
        batch_end(&b);
        vk_mem_free(w.found);
        vk_mem_free(w.dirs);
        vk_pool_release(&w.pool);
        if (rc)
            vk_git_files_release(out);
        if (rc || !missing)
            return rc;
        if (attempt > 0)
            return vk_err_set(err, VK_ENOTFOUND, "commit '%s' not found in '%s'", sha, m->url);
    }
}
