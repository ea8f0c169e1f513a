/*
 * mirror.c — the mirror handle and its upkeep: clone when absent (into a
 * temporary name, renamed into place), fetch when a commit is missing or a
 * branch head is asked for, both under the mirror's flock (waited for with the
 * handle's timeout, and given up when the caller cancels), and the names a
 * mirror resolves.
 */
#include "git_int.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

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
    if (!vk_git_valid_url(url))
        return vk_err_set(err, VK_EINVAL, "unusable repository URL '%.200s'", url ? url : "");
    struct vk_git_url_target t;
    /* also a mirror made before the policy was tightened is not read through it */
    if (opts && opts->policy && vk_git_url_check_static(opts->policy, url, &t, err) != 0)
        return VK_EPERM;
    int rc = mkdir_p(cache_dir, err);
    if (rc < 0)
        return rc;
    char hex[VK_SHA256_HEX_LEN]; /* the mirror's name */
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
    if (opts) {
        m->cancel = opts->cancel;
        m->cancel_ctx = opts->cancel_ctx;
        m->on_stderr = opts->on_stderr;
        m->on_stderr_ctx = opts->on_stderr_ctx;
    }
    const char *home = opts && opts->home ? opts->home : getenv("HOME");
    m->envp[0] = join("PATH=", opts && opts->path ? opts->path : VK__GIT_PATH, "");
    m->envp[1] = join("HOME=", home && *home == '/' ? home : "/nonexistent", "");
    m->envp[2] = join("GIT_TERMINAL_PROMPT=0", "", "");
    m->envp[3] = join("LC_ALL=C", "", "");
    char allow[64] = "file:git:http:https:ssh";
    if (opts && opts->policy) {
        unsigned set = opts->policy->schemes ? opts->policy->schemes : VK_GIT_SCHEMES_DEFAULT;
        snprintf(allow, sizeof(allow), "%s%s%s%s%s", set & VK_GIT_SCHEME_FILE ? "file:" : "",
                 set & VK_GIT_SCHEME_GIT ? "git:" : "", set & VK_GIT_SCHEME_HTTP ? "http:" : "",
                 set & VK_GIT_SCHEME_HTTPS ? "https:" : "", set & VK_GIT_SCHEME_SSH ? "ssh:" : "");
        size_t an = strlen(allow);
        if (an && allow[an - 1] == ':')
            allow[an - 1] = '\0';
        m->policy = opts->policy;
    }
    m->envp[4] = join("GIT_ALLOW_PROTOCOL=", allow, "");
    m->envp[5] = join("GIT_SSH_COMMAND=ssh -o BatchMode=yes", "", "");
    m->envp[6] = join("GIT_CONFIG_NOSYSTEM=1", "", "");
    m->envp[7] = join("GIT_ASKPASS=/bin/false", "", "");
    /* LFS files only with `checkout { lfs #true }` (vk_git_lfs_checkout()), never because
     * the worker's ~/.gitconfig has git-lfs's smudge filter */
    m->envp[8] = join("GIT_LFS_SKIP_SMUDGE=1", "", "");
    m->envp[VK__GIT_NENV] = NULL;
    bool ok = m->url && m->cache && m->dir && m->lock;
    for (int i = 0; i < VK__GIT_NENV; i++)
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
    for (int i = 0; i < VK__GIT_NENV; i++)
        vk_mem_free(m->envp[i]);
    vk_mem_free(m);
}

const char *vk_git_mirror_path(const struct vk_git_mirror *m)
{
    return m->dir;
}

const struct vk_git_url_policy *vk_git_mirror_policy(const struct vk_git_mirror *m)
{
    return m->policy;
}

struct vk_git_stats vk_git_mirror_stats(const struct vk_git_mirror *m)
{
    return m->stats;
}

/* ---------------------------------------------------------------- Upkeep */

bool vk__git_mirror_exists(const struct vk_git_mirror *m)
{
    char head[4200];
    struct stat st;
    snprintf(head, sizeof(head), "%s/HEAD", m->dir);
    return stat(head, &st) == 0 && S_ISREG(st.st_mode);
}

unsigned vk__git_syncs(const struct vk_git_mirror *m)
{
    return m->stats.clones + m->stats.fetches;
}

static bool has_commit(struct vk_git_mirror *m, const char *sha)
{
    char spec[80];
    snprintf(spec, sizeof(spec), "%s^{commit}", sha);
    char *argv[] = {NULL, "-C", m->dir, "cat-file", "-e", spec, NULL};
    int status;
    int rc = vk__git_run(m, "cat-file", argv, NULL, NULL, &status, NULL);
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
    char cfg[4][400];
    size_t nc = 0;
    int rc = vk__git_net_args(m, cfg, &nc, err);
    if (rc) {
        vk_mem_free(tmp);
        return rc;
    }
    char *argv[20] = {NULL};
    size_t a = 1;
    for (size_t i = 0; i < nc; i++) {
        argv[a++] = "-c";
        argv[a++] = cfg[i];
    }
    const char *tail[] = {"-c", "gc.auto=0", "clone", "--mirror", "--quiet", "--", m->url, tmp};
    for (size_t i = 0; i < VK_ARRAY_LEN(tail); i++)
        argv[a++] = (char *)tail[i];
    m->stats.clones++;
    rc = vk__git_run_ok(m, "clone", argv, NULL, VK_EIO, err);
    if (rc == 0 && rename(tmp, m->dir) < 0)
        rc = vk_err_errno(err, "rename");
    if (rc < 0)
        nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    vk_mem_free(tmp);
    return rc;
}

/* Fetch every ref, or (`sha` not NULL) also that one commit by name. */
static int fetch_mirror(struct vk_git_mirror *m, const char *sha, struct vk_err *err)
{
    /* gc off: never prune objects a concurrent reader or a workspace may be using */
    char cfg[4][400];
    size_t nc = 0;
    int rc = vk__git_net_args(m, cfg, &nc, err);
    if (rc)
        return rc;
    char *argv[24] = {NULL, "-C", m->dir};
    size_t a = 3;
    for (size_t i = 0; i < nc; i++) {
        argv[a++] = "-c";
        argv[a++] = cfg[i];
    }
    const char *tail[] = {"-c", "gc.auto=0", "fetch", "--prune", "--quiet", "origin"};
    for (size_t i = 0; i < VK_ARRAY_LEN(tail); i++)
        argv[a++] = (char *)tail[i];
    argv[a++] = (char *)sha;
    argv[a] = NULL;
    m->stats.fetches++;
    return vk__git_run_ok(m, "fetch", argv, NULL, VK_EIO, err);
}

int vk__git_net_args(struct vk_git_mirror *m, char cfg[4][400], size_t *n, struct vk_err *err)
{
    *n = 0;
    if (!m->policy)
        return 0;
    struct vk_git_url_target t;
    int rc = vk_git_url_check(m->policy, m->url, &t, err);
    if (rc)
        return rc;
    if (t.scheme == VK_GIT_SCHEME_FILE)
        return 0;
    /* a redirect would reach a host nobody checked */
    snprintf(cfg[(*n)++], 400, "http.followRedirects=false");
    /* no proxy from a user's gitconfig: the checked address is the one connected to */
    snprintf(cfg[(*n)++], 400, "http.proxy=");
    /* curl connects to the address checked, not to what a second lookup answers (an
     * IPv6 literal host needs no lookup) */
    if ((t.scheme == VK_GIT_SCHEME_HTTPS || t.scheme == VK_GIT_SCHEME_HTTP) && t.addr[0] &&
        !strchr(t.host, ':')) {
        bool v6 = strchr(t.addr, ':') != NULL;
        snprintf(cfg[(*n)++], 400, "http.curloptResolve=%s:%u:%s%s%s", t.host, t.port,
                 v6 ? "[" : "", t.addr, v6 ? "]" : "");
    }
    return 0;
}

int vk__git_lock(struct vk_git_mirror *m, int *fd_out, struct vk_err *err)
{
    int fd = open(m->lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return vk_err_errno(err, "open the mirror lock");
    int64_t until = vk__git_mono_ms() + m->timeout_ms;
    for (;;) {
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
            *fd_out = fd;
            return 0;
        }
        int rc = 0;
        if (errno != EWOULDBLOCK && errno != EINTR)
            rc = vk_err_errno(err, "flock the mirror");
        else if (vk__git_cancelled(m))
            rc = vk_err_set(err, VK_EAGAIN, "cancelled while waiting for the mirror lock");
        else if (vk__git_mono_ms() > until)
            rc = vk_err_set(err, VK_ETIMEDOUT, "timed out waiting for the mirror lock");
        if (rc) {
            close(fd);
            return rc;
        }
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* Clone when absent; fetch when `sha` is missing or (`always`) in any case; last, fetch
 * `sha` itself when it is still missing. */
static int sync_locked(struct vk_git_mirror *m, const char *sha, bool always, struct vk_err *err)
{
    int fd = -1;
    int rc = vk__git_lock(m, &fd, err);
    if (rc)
        return rc;
    /* the state may have changed while we waited for the lock */
    if (!vk__git_mirror_exists(m))
        rc = clone_mirror(m, err);
    else if (always || (sha && !has_commit(m, sha)))
        rc = fetch_mirror(m, NULL, err);
    if (rc == 0 && sha && !has_commit(m, sha)) {
        /* not reachable from any ref: servers that allow it still send it by name */
        struct vk_err ignored;
        (void)fetch_mirror(m, sha, &ignored);
    }
    vk__git_unlock(fd);
    return rc;
}

void vk__git_unlock(int fd)
{
    if (fd < 0)
        return;
    flock(fd, LOCK_UN);
    close(fd);
}

int vk__git_opts(const struct vk_git_mirror *m, struct vk_git_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->git_path = m->git;
    o->home = m->envp[1] + strlen("HOME=");
    o->path = m->envp[0] + strlen("PATH=");
    o->timeout_ms = m->timeout_ms;
    o->max_blob = m->max_blob;
    o->cancel = m->cancel;
    o->cancel_ctx = m->cancel_ctx;
    o->on_stderr = m->on_stderr;
    o->on_stderr_ctx = m->on_stderr_ctx;
    o->policy = m->policy;
    return 0;
}

const char *vk__git_cache_dir(const struct vk_git_mirror *m)
{
    return m->cache;
}

int vk_git_mirror_sync(struct vk_git_mirror *m, const char *sha, struct vk_err *err)
{
    if (sha && !vk_git_valid_sha(sha))
        return vk_err_set(err, VK_EINVAL, "invalid commit id '%.80s'", sha);
    if (sha && vk__git_mirror_exists(m) && has_commit(m, sha))
        return 0;
    int rc = sync_locked(m, sha, sha == NULL, err);
    if (rc < 0)
        return rc;
    if (sha && !has_commit(m, sha))
        return vk_err_set(err, VK_ENOTFOUND, "commit '%s' not found in the repository", sha);
    return 0;
}

/* ---------------------------------------------------------------- Names */

int vk__git_rev_parse(struct vk_git_mirror *m, const char *spec, char out[VK_GIT_SHA_LEN],
                      struct vk_err *err)
{
    char *argv[] = {
        NULL,         "-C", m->dir, "rev-parse", "--verify", "--quiet", "--end-of-options",
        (char *)spec, NULL};
    struct vk_buf o = VK_BUF_INIT(256);
    int rc = vk__git_run_ok(m, "rev-parse", argv, &o, VK_ENOTFOUND, err);
    if (rc == 0) {
        size_t n = o.len;
        while (n && (o.data[n - 1] == '\n' || o.data[n - 1] == '\r'))
            n--;
        char tmp[VK_GIT_SHA_LEN] = "";
        if (n == 40 || n == 64) {
            memcpy(tmp, o.data, n);
            tmp[n] = '\0';
        }
        if (!vk_git_valid_sha(tmp))
            rc = vk_err_set(err, VK_EIO, "unexpected output of git rev-parse");
        else
            memcpy(out, tmp, n + 1);
    }
    vk_buf_release(&o);
    return rc;
}

int vk_git_resolve_branch(struct vk_git_mirror *m, const char *branch, char out[VK_GIT_SHA_LEN],
                          struct vk_err *err)
{
    if (!vk_git_valid_branch(branch))
        return vk_err_set(err, VK_EINVAL, "invalid branch name '%.200s'", branch ? branch : "");
    int rc = vk_git_mirror_sync(m, NULL, err);
    if (rc < 0)
        return rc;
    char spec[VK_GIT_MAX_REF + 32];
    snprintf(spec, sizeof(spec), "refs/heads/%s^{commit}", branch);
    rc = vk__git_rev_parse(m, spec, out, err);
    if (rc == VK_ENOTFOUND)
        return vk_err_set(err, rc, "branch '%s' not found in the repository", branch);
    return rc;
}

int vk_git_resolve_head(struct vk_git_mirror *m, char out[VK_GIT_SHA_LEN], struct vk_err *err)
{
    int rc = vk_git_mirror_sync(m, NULL, err);
    if (rc < 0)
        return rc;
    rc = vk__git_rev_parse(m, "HEAD^{commit}", out, err);
    if (rc == VK_ENOTFOUND)
        return vk_err_set(err, rc, "the repository has no default branch head");
    return rc;
}

int vk_git_resolve_commit(struct vk_git_mirror *m, const char *sha, char out[VK_GIT_SHA_LEN],
                          struct vk_err *err)
{
    if (!vk_git_valid_short_sha(sha))
        return vk_err_set(err, VK_EINVAL, "invalid commit id '%.80s'", sha ? sha : "");
    char spec[80];
    snprintf(spec, sizeof(spec), "%s^{commit}", sha);
    if (vk__git_mirror_exists(m) && vk__git_rev_parse(m, spec, out, NULL) == 0)
        return 0;
    bool full = vk_git_valid_sha(sha);
    int rc = sync_locked(m, full ? sha : NULL, true, err);
    if (rc < 0)
        return rc;
    rc = vk__git_rev_parse(m, spec, out, err);
    if (rc == VK_ENOTFOUND)
        return vk_err_set(err, rc, "commit '%s' not found%s in the repository", sha,
                          full ? "" : " (or ambiguous)");
    return rc;
}
