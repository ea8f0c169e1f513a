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
 * missing, or when a branch head is asked for.
 *
 * git runs through posix_spawn() with an argv array (URLs are hostile, "--"
 * ends the options; never a shell), in its own process group with a timeout
 * (the group is killed when it runs out), stdin from /dev/null, output capped,
 * and a minimal environment: GIT_TERMINAL_PROMPT=0, ssh in batch mode, only
 * the file, git, http, https and ssh transports, no system gitconfig.
 */
#include "triggers/triggers_int.h"

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
    return (n == 40 || n == 64) && vk__trig_is_hex(s, n);
}

static bool valid_short_sha(const char *s)
{
    size_t n = s ? strnlen(s, 65) : 0;
    return n >= 4 && n <= 64 && vk__trig_is_hex(s, n);
}

/* git check-ref-format's rules, plus: nothing an option parser could take. */
bool vk_git_valid_branch(const char *s)
{
    size_t n = s ? strnlen(s, VK_HOOK_MAX_REF + 1) : 0;
    if (n == 0 || n > VK_HOOK_MAX_REF || s[0] == '-' || s[0] == '/' || s[0] == '.' ||
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
    size_t n = p ? strnlen(p, VK_HOOK_MAX_PATH + 1) : 0;
    if (n == 0 || n > VK_HOOK_MAX_PATH || p[0] == '/')
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
    size_t n = u ? strnlen(u, VK_HOOK_MAX_URL + 1) : 0;
    if (n == 0 || n > VK_HOOK_MAX_URL || u[0] == '-')
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
    return vk_mono_ns() / 1000000;
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
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    bool fa_ok = false, attr_ok = false;
    *status = -1;
    argv[0] = m->git;
    if (pipe2(po, O_CLOEXEC) < 0 || pipe2(pe, O_CLOEXEC) < 0) {
        rc = vk_err_errno(err, "pipe");
        goto out;
    }
    if (posix_spawn_file_actions_init(&fa) != 0)
        goto out;
    fa_ok = true;
    if (posix_spawnattr_init(&attr) != 0)
        goto out;
    attr_ok = true;
    sigset_t none, dfl;
    sigemptyset(&none);
    sigemptyset(&dfl);
    sigaddset(&dfl, SIGPIPE);
    if (posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0) != 0 ||
        posix_spawn_file_actions_adddup2(&fa, po[1], 1) != 0 ||
        posix_spawn_file_actions_adddup2(&fa, pe[1], 2) != 0 ||
        posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                            POSIX_SPAWN_SETSIGDEF) != 0 ||
        posix_spawnattr_setpgroup(&attr, 0) != 0 || posix_spawnattr_setsigmask(&attr, &none) ||
        posix_spawnattr_setsigdefault(&attr, &dfl) != 0)
        goto out;
    int e = posix_spawn(&pid, m->git, &fa, &attr, argv, m->envp);
    if (e != 0) {
        pid = -1;
        rc = vk_err_set(err, VK_EIO, "cannot run '%s': %s", m->git, strerror(e));
        goto out;
    }
    m->stats.commands++;
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
    if (rc == VK_EIO && pid < 0 && err && err->code == 0)
        vk_err_set(err, VK_EIO, "cannot start git");
    if (fa_ok)
        posix_spawn_file_actions_destroy(&fa);
    if (attr_ok)
        posix_spawnattr_destroy(&attr);
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
    char *s = vk_malloc(n);
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
    if (vk__trig_sha256_hex(url, strlen(url), hex) < 0)
        return vk_err_set(err, VK_EINTERNAL, "cannot hash the URL");
    struct vk_git_mirror *m = vk_calloc(1, sizeof(*m));
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
    vk_free(m->url);
    vk_free(m->dir);
    vk_free(m->lock);
    vk_free(m->cache);
    vk_free(m->git);
    for (int i = 0; i < 8; i++)
        vk_free(m->envp[i]);
    vk_free(m);
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
    snprintf(suffix, sizeof(suffix), ".tmp-%ld-%lld", (long)getpid(), (long long)vk_mono_ns());
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
    vk_free(tmp);
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
        if ((n != 40 && n != 64) || !vk__trig_is_hex(o.data, n)) {
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
    char spec[VK_HOOK_MAX_REF + 32];
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
        if (len == 0 || (glob && !vk_wf_glob_match(glob, name)))
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
    int rc = vk_git_mirror_sync(m, sha, err);
    if (rc < 0)
        return rc;
    /* list only below the fixed directory part of the glob (".vulcan" for ".vulcan/x") */
    char prefix[MAX_GLOB + 1];
    size_t pn = glob_dir(glob);
    memcpy(prefix, glob, pn);
    prefix[pn] = '\0';
    char *argv[] = {NULL, "--literal-pathspecs", "-C", m->dir,        "ls-tree",
                    "-r", "--name-only",         "-z", "--full-tree", (char *)sha,
                    "--", pn ? prefix : NULL,    NULL};
    struct vk_buf o = VK_BUF_INIT(VK_GIT_MAX_LIST);
    rc = run_ok(m, "ls-tree", argv, &o, VK_EIO, err);
    if (rc == 0)
        rc = collect(&o, glob, out, err);
    vk_buf_release(&o);
    return rc;
}

int vk_git_read_file(struct vk_git_mirror *m, const char *sha, const char *path, struct vk_buf *out,
                     struct vk_err *err)
{
    if (!valid_path(path))
        return vk_err_set(err, VK_EINVAL, "invalid file path '%.200s'", path ? path : "");
    int rc = vk_git_mirror_sync(m, sha, err);
    if (rc < 0)
        return rc;
    size_t n = strlen(sha) + strlen(path) + 2;
    char *spec = vk_malloc(n);
    if (!spec)
        return vk_err_set(err, VK_ENOMEM, "out of memory");
    snprintf(spec, n, "%s:%s", sha, path);
    char *argv[] = {NULL, "-C", m->dir, "cat-file", "blob", spec, NULL};
    struct vk_buf o = VK_BUF_INIT(m->max_blob);
    rc = run_ok(m, "cat-file", argv, &o, VK_ENOTFOUND, err);
    if (rc == VK_ETOOBIG)
        rc = vk_err_set(err, rc, "file '%s' is larger than %zu bytes", path, m->max_blob);
    else if (rc == VK_ENOTFOUND)
        rc = vk_err_set(err, rc, "file '%s' not found at commit %.12s", path, sha);
    if (rc == 0 && o.len && vk_buf_add(out, o.data, o.len) < 0)
        rc = vk_err_set(err, VK_ETOOBIG, "file '%s' does not fit the buffer", path);
    vk_buf_release(&o);
    vk_free(spec);
    return rc;
}

int vk_git_changed_paths(struct vk_git_mirror *m, const char *before, const char *after,
                         struct vk_git_paths *out, struct vk_err *err)
{
    bool fresh = !before || vk__hook_zero(before);
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
