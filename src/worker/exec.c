/*
 * exec.c — the executor's public entry points: the per-worker environment and
 * vk_exec_run(), which strings the pieces together for one attempt:
 * validate → workspace → checkout → script file → environment → cgroup →
 * (bubblewrap) shell → output pump → clean-up → result.
 */
#include "exec_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#define MIB (1024u * 1024u)

void vk_exec_cancel_init(struct vk_exec_cancel *c)
{
    atomic_init(&c->requested, false);
}

void vk_exec_cancel_request(struct vk_exec_cancel *c)
{
    if (c)
        atomic_store(&c->requested, true);
}

bool vk_exec_result_ok(const struct vk_exec_result *r)
{
    return r->exit_code == 0 && r->error[0] == '\0' && !r->timed_out && !r->cancelled;
}

const char *vk_exec_sandbox_name(enum vk_exec_sandbox mode)
{
    switch (mode) {
    case VK_EXEC_SANDBOX_AUTO:
        return "auto";
    case VK_EXEC_SANDBOX_BWRAP:
        return "bwrap";
    case VK_EXEC_SANDBOX_NONE:
        return "none";
    default:
        return "default";
    }
}

int vk_exec_sandbox_parse(const char *s, enum vk_exec_sandbox *out)
{
    if (s && strcmp(s, "auto") == 0)
        *out = VK_EXEC_SANDBOX_AUTO;
    else if (s && strcmp(s, "bwrap") == 0)
        *out = VK_EXEC_SANDBOX_BWRAP;
    else if (s && strcmp(s, "none") == 0)
        *out = VK_EXEC_SANDBOX_NONE;
    else
        return VK_EINVAL;
    return 0;
}

int vk_exec_cgroups_parse(const char *s, enum vk_exec_cgroups *out)
{
    if (s && strcmp(s, "auto") == 0)
        *out = VK_EXEC_CGROUPS_AUTO;
    else if (s && strcmp(s, "always") == 0)
        *out = VK_EXEC_CGROUPS_ALWAYS;
    else if (s && strcmp(s, "never") == 0)
        *out = VK_EXEC_CGROUPS_NEVER;
    else
        return VK_EINVAL;
    return 0;
}

int vk_exec_shell_parse(const char *s, enum vk_exec_shell *out)
{
    if (s && strcmp(s, "auto") == 0)
        *out = VK_EXEC_SHELL_AUTO;
    else if (s && strcmp(s, "bash") == 0)
        *out = VK_EXEC_SHELL_BASH;
    else if (s && strcmp(s, "sh") == 0)
        *out = VK_EXEC_SHELL_SH;
    else
        return VK_EINVAL;
    return 0;
}

/* ---------------------------------------------------------------- plain scripts */

/*
 * Command words that make a script non-plain: shell keywords and the
 * builtins whose behaviour differs between dash and bash (or that exist in
 * only one of them), plus `.`/source (a sourced file may use bash syntax) and
 * time (a keyword in bash, an external program or nothing under dash). The
 * builtins left out behave the same in both for literal arguments: cd, true,
 * false, exit, export, unset, pwd, exec, shift, umask; so scripts such as
 * `make test` or `./configure --prefix=/usr` are plain.
 */
static const char *const non_plain_words[] = {
    ".",        "[",       "[[",       "]]",       "!",         "{",        "}",       "alias",
    "bg",       "bind",    "break",    "builtin",  "caller",    "case",     "command", "compgen",
    "complete", "compopt", "continue", "coproc",   "declare",   "dirs",     "disown",  "do",
    "done",     "echo",    "elif",     "else",     "enable",    "esac",     "eval",    "fc",
    "fg",       "fi",      "for",      "function", "getopts",   "hash",     "help",    "history",
    "if",       "in",      "jobs",     "kill",     "let",       "local",    "logout",  "mapfile",
    "popd",     "printf",  "pushd",    "read",     "readarray", "readonly", "return",  "select",
    "set",      "shopt",   "source",   "suspend",  "test",      "then",     "time",    "times",
    "trap",     "type",    "typeset",  "ulimit",   "unalias",   "until",    "wait",    "while",
};

/* Builtins of both shells that behave the same with plain arguments, not with options. */
static const char *const shared_builtins[] = {"cd",    "pwd",  "export", "unset", "exec", "umask",
                                              "shift", "exit", "true",   "false", ":"};

static bool word_in(const char *w, size_t n, const char *const *list, size_t count)
{
    for (size_t k = 0; k < count; k++)
        if (strlen(list[k]) == n && memcmp(list[k], w, n) == 0)
            return true;
    return false;
}

static bool plain_char(unsigned char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == ' ' || ch == '\t' || ch == '\n' || ch == '_' || ch == '.' || ch == '/' ||
           ch == ':' || ch == '=' || ch == ',' || ch == '+' || ch == '@' || ch == '%' || ch == '-';
}

/* NAME=... with NAME = [A-Za-z_][A-Za-z0-9_]*: a variable assignment word. */
static bool is_assignment(const char *w, size_t n)
{
    size_t i = 0;
    while (i < n && (w[i] == '_' || (w[i] >= 'a' && w[i] <= 'z') || (w[i] >= 'A' && w[i] <= 'Z') ||
                     (i > 0 && w[i] >= '0' && w[i] <= '9')))
        i++;
    return i > 0 && i < n && w[i] == '=';
}

static bool plain_env(const char *const *env, size_t nenv)
{
    for (size_t i = 0; i < nenv; i++) {
        const char *kv = env ? env[i] : NULL;
        if (!kv)
            return false;
        /* BASH_ENV is read by non-interactive bash, BASH_FUNC_* are exported
         * functions, SHELLOPTS/BASHOPTS set options, IFS and ENV differ. */
        if (strncmp(kv, "BASH", 4) == 0 || strncmp(kv, "SHELLOPTS=", 10) == 0 ||
            strncmp(kv, "IFS=", 4) == 0 || strncmp(kv, "ENV=", 4) == 0)
            return false;
    }
    return true;
}

bool vk_exec_script_is_plain(const char *script, const char *const *env, size_t nenv)
{
    if (!script || !plain_env(env, nenv))
        return false;
    size_t len = strlen(script);
    if (len > VK_EXEC_PLAIN_SCRIPT_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (!plain_char((unsigned char)script[i]))
            return false;
    /*
     * Without ; & | ( ) a command starts only at the beginning of a line. Its
     * command word (the first word that is not an assignment NAME=value) must not
     * be in the list; later words are plain arguments (`make test` is plain).
     */
    bool cmd_pos = true, builtin_args = false;
    for (size_t i = 0; i < len;) {
        if (script[i] == '\n') {
            cmd_pos = true;
            builtin_args = false;
            i++;
            continue;
        }
        if (script[i] == ' ' || script[i] == '\t') {
            i++;
            continue;
        }
        size_t start = i;
        while (i < len && script[i] != ' ' && script[i] != '\t' && script[i] != '\n')
            i++;
        size_t wl = i - start;
        if (!cmd_pos) {
            /* The options of the shared builtins differ (`export -p`, `exec -a`);
             * options come first, so the word after the builtin tells. */
            if (builtin_args && script[start] == '-')
                return false;
            builtin_args = false;
            continue;
        }
        if (is_assignment(script + start, wl))
            continue;
        cmd_pos = false;
        if (word_in(script + start, wl, non_plain_words, VK_ARRAY_LEN(non_plain_words)))
            return false;
        builtin_args = word_in(script + start, wl, shared_builtins, VK_ARRAY_LEN(shared_builtins));
    }
    return true;
}

static void sweep_spares(const struct vk_exec_env *env, bool own);
static void sweep_runs(const struct vk_exec_env *env);

void vk_exec_env_release(struct vk_exec_env *env)
{
    if (!env)
        return;
    vk__exec_cg_env_release(env);
    if (env->work_dir)
        sweep_spares(env, true);
    vk_mem_free(env->work_dir);
    vk_mem_free(env->mirror_dir);
    vk_mem_free(env->run_dir);
    vk_mem_free(env->bwrap_path);
    vk_mem_free(env->git_path);
    vk_mem_free(env->git_home);
    vk_mem_free(env->git_lfs_path);
    vk_mem_free(env->shell);
    for (size_t i = 0; i < env->nbind_ro; i++)
        vk_mem_free(env->bind_ro[i]);
    for (size_t i = 0; i < env->nbind_rw; i++)
        vk_mem_free(env->bind_rw[i]);
    vk_mem_free(env->bind_ro);
    vk_mem_free(env->bind_rw);
    memset(env, 0, sizeof *env);
}

static char *join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *p = vk_mem_xalloc(la + lb + 2);
    memcpy(p, a, la);
    p[la] = '/';
    memcpy(p + la + 1, b, lb + 1);
    return p;
}

/* Resolve the operator's extra sandbox paths: absolute, existing, at most VK_EXEC_MAX_BINDS. */
static int copy_binds(const char *const *in, size_t n, const char *what, char ***out, size_t *nout,
                      struct vk_err *err)
{
    if (n > VK_EXEC_MAX_BINDS)
        return vk_err_set(err, VK_ETOOBIG, "executor: more than %d %s paths", VK_EXEC_MAX_BINDS,
                          what);
    if (n == 0)
        return 0;
    *out = vk_mem_xcalloc(n, sizeof(char *));
    for (size_t i = 0; i < n; i++) {
        char real[PATH_MAX];
        if (!in[i] || in[i][0] != '/')
            return vk_err_set(err, VK_EINVAL, "executor: %s path '%s' is not absolute", what,
                              in[i] ? in[i] : "");
        if (!realpath(in[i], real))
            return vk_err_set(err, VK_EINVAL, "executor: %s path '%s': %s", what, in[i],
                              strerror(errno));
        (*out)[(*nout)++] = vk_mem_xstrdup(real);
    }
    return 0;
}

int vk_exec_env_init(struct vk_exec_env *env, const struct vk_exec_config *cfg, struct vk_err *err)
{
    memset(env, 0, sizeof *env);
    if (!cfg || !cfg->work_dir || !*cfg->work_dir)
        return vk_err_set(err, VK_EINVAL, "executor: no work directory");
    if (strlen(cfg->work_dir) > 300)
        return vk_err_set(err, VK_ETOOBIG, "executor: work directory path too long");
    int rc = vk__exec_mkdir_p(cfg->work_dir, 0700, err);
    if (rc < 0)
        return rc;
    char real[PATH_MAX];
    if (!realpath(cfg->work_dir, real))
        return vk_err_errno(err, "realpath work directory");
    if (strlen(real) > 300)
        return vk_err_set(err, VK_ETOOBIG, "executor: work directory path too long");
    env->work_dir = vk_mem_xstrdup(real);
    env->mirror_dir = join(real, "mirrors");
    env->run_dir = join(real, "run");
    if ((rc = vk__exec_mkdir_p(env->mirror_dir, 0700, err)) < 0 ||
        (rc = vk__exec_mkdir_p(env->run_dir, 0700, err)) < 0) {
        vk_exec_env_release(env);
        return rc;
    }
    /* The sandbox's /etc after the operator's binds: those under /etc need a place in it. */
    if ((rc = copy_binds(cfg->bind_ro, cfg->nbind_ro, "--sandbox-ro", &env->bind_ro, &env->nbind_ro,
                         err)) < 0 ||
        (rc = copy_binds(cfg->bind_rw, cfg->nbind_rw, "--sandbox-rw", &env->bind_rw, &env->nbind_rw,
                         err)) < 0 ||
        (rc = vk__exec_sandbox_files(env, err)) < 0) {
        vk_exec_env_release(env);
        return rc;
    }
    sweep_spares(env, false);
    sweep_runs(env);
    env->git_path = vk__exec_which(cfg->git_path ? cfg->git_path : "/usr/bin/git", "git");
    env->git_lfs_path = vk__exec_which("/usr/bin/git-lfs", "git-lfs");
    env->bwrap_path = vk__exec_which(cfg->bwrap_path ? cfg->bwrap_path : "/usr/bin/bwrap", "bwrap");
    const char *home = getenv("HOME");
    env->git_home = vk_mem_xstrdup(home && home[0] == '/' ? home : "/");
    env->shell_mode = cfg->shell;
    env->shell_is_bash = cfg->shell != VK_EXEC_SHELL_SH && access("/bin/bash", X_OK) == 0;
    env->shell = vk_mem_xstrdup(env->shell_is_bash ? "/bin/bash" : "/bin/sh");
    env->cgroups = cfg->no_cgroups ? VK_EXEC_CGROUPS_NEVER : cfg->cgroups;
    env->default_sandbox =
        cfg->sandbox == VK_EXEC_SANDBOX_DEFAULT ? VK_EXEC_SANDBOX_AUTO : cfg->sandbox;
    env->checkout_timeout_ms = cfg->checkout_timeout_ms > 0 ? cfg->checkout_timeout_ms
                                                            : VK_EXEC_DEFAULT_CHECKOUT_TIMEOUT_MS;
    vk__exec_bwrap_probe(env);
    if (env->cgroups == VK_EXEC_CGROUPS_NEVER) {
        env->cgroup_mode = VK_EXEC_CGROUP_NONE;
        snprintf(env->cgroup_why, sizeof env->cgroup_why, "disabled by configuration");
    } else {
        vk__exec_cg_detect(env, cfg->cgroup_parent);
    }
    return 0;
}

/* ---------------------------------------------------------------- spare workspaces */

/*
 * Creating and removing a directory for every attempt is costly on ext4 (the
 * inode allocator scans past recently deleted inodes; it grew to a third of a
 * worker's CPU with thousands of short attempts). So each thread keeps one
 * emptied workspace as `<work_dir>/.spare-<pid>-<tid>` and renames it into place
 * for its next attempt. A spare is reused only when it is still an empty
 * directory of ours with mode 0700 and no extended attributes (so no default
 * ACL); anything else is removed and a fresh directory made.
 */
#define SPARE_PREFIX ".spare-"

static void spare_path(const struct vk_exec_env *env, char *out, size_t cap)
{
    snprintf(out, cap, "%s/" SPARE_PREFIX "%ld-%ld", env->work_dir, (long)getpid(), (long)gettid());
}

/* True when `path` is a clean, empty directory we may hand to an attempt. */
static bool clean_empty_dir(const char *path)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return false;
    struct stat st;
    bool ok = fstat(fd, &st) == 0 && st.st_uid == geteuid() && (st.st_mode & 07777) == 0700 &&
              flistxattr(fd, NULL, 0) == 0;
    if (ok) {
        /* Only "." and ".." (24 bytes each at most): anything more is content. */
        char buf[256];
        long n = syscall(SYS_getdents64, fd, buf, sizeof buf);
        int entries = 0;
        for (long off = 0; n > 0 && off < n;) {
            unsigned short reclen;
            memcpy(&reclen, buf + off + 16, sizeof reclen);
            if (reclen == 0)
                break;
            entries++;
            off += reclen;
        }
        ok = n > 0 && entries == 2;
        if (ok && (n = syscall(SYS_getdents64, fd, buf, sizeof buf)) != 0)
            ok = false;
    }
    close(fd);
    return ok;
}

/* Make the fresh workspace `ws` (mode 0700), from the thread's spare when there is one. */
static int make_workspace(const struct vk_exec_env *env, const char *ws, struct vk_err *err)
{
    char spare[600];
    spare_path(env, spare, sizeof spare);
    if (rename(spare, ws) == 0) {
        if (clean_empty_dir(ws))
            return 0;
    } else if (mkdir(ws, 0700) == 0) {
        return 0;
    } else if (errno != EEXIST) {
        return vk_err_errno(err, "create workspace");
    }
    /* Left by a crashed earlier run, or a spare that is not clean: start afresh. */
    int rc = vk__exec_rmtree(ws, err);
    if (rc < 0)
        return rc;
    if (mkdir(ws, 0700) < 0)
        return vk_err_errno(err, "create workspace");
    return 0;
}

/* Empty the workspace and keep it as the thread's spare; else remove it. */
static int drop_workspace(const struct vk_exec_env *env, const char *ws, struct vk_err *err)
{
    char spare[600];
    spare_path(env, spare, sizeof spare);
    if (vk__exec_empty_dir(ws, NULL) == 0) {
        int fd = open(ws, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        bool ok = fd >= 0 && fchmod(fd, 0700) == 0 && flistxattr(fd, NULL, 0) == 0;
        if (fd >= 0)
            close(fd);
        if (ok && rename(ws, spare) == 0)
            return 0;
    }
    return vk__exec_rmtree(ws, err);
}

/* Remove spares of this process (own) or of processes that are gone (!own). */
/* Remove the private directories of attempts that ended without cleaning up (their worker
 * died): a directory with secret files whose .lock nobody holds, and one without a lock
 * older than a minute (another worker may be making it right now). */
static void sweep_runs(const struct vk_exec_env *env)
{
    DIR *d = opendir(env->run_dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char dir[PATH_MAX], lock[PATH_MAX + 8];
        snprintf(dir, sizeof dir, "%s/%s", env->run_dir, e->d_name);
        snprintf(lock, sizeof lock, "%s/.lock", dir);
        int fd = open(lock, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
        bool dead = false;
        if (fd >= 0) {
            dead = flock(fd, LOCK_EX | LOCK_NB) == 0;
        } else {
            struct stat st;
            dead = lstat(dir, &st) == 0 && S_ISDIR(st.st_mode) && st.st_mtime + 60 < time(NULL);
        }
        if (dead)
            (void)vk__exec_rmtree(dir, NULL);
        if (fd >= 0)
            close(fd);
    }
    closedir(d);
}

static void sweep_spares(const struct vk_exec_env *env, bool own)
{
    DIR *d = opendir(env->work_dir);
    if (!d)
        return;
    struct dirent *e;
    char mine[64];
    snprintf(mine, sizeof mine, SPARE_PREFIX "%ld-", (long)getpid());
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, SPARE_PREFIX, strlen(SPARE_PREFIX)) != 0)
            continue;
        bool ours = strncmp(e->d_name, mine, strlen(mine)) == 0;
        if (own != ours)
            continue;
        if (!own) {
            long pid = strtol(e->d_name + strlen(SPARE_PREFIX), NULL, 10);
            if (pid > 0 && (kill((pid_t)pid, 0) == 0 || errno != ESRCH))
                continue; /* a live worker sharing the work_dir */
        }
        char path[PATH_MAX];
        if ((size_t)snprintf(path, sizeof path, "%s/%s", env->work_dir, e->d_name) < sizeof path)
            (void)vk__exec_rmtree(path, NULL);
    }
    closedir(d);
}

/* ---------------------------------------------------------------- validation */

static bool valid_id(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > VK_EXEC_MAX_ID || s[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'z') ||
              (s[i] >= 'A' && s[i] <= 'Z') || s[i] == '-' || s[i] == '_' || s[i] == '.'))
            return false;
    return true;
}

/*
 * Build the script's environment: the injected entries (later duplicates win),
 * then PATH and HOME unless injected. Strings are copied into `pool`.
 */
static int build_env(const struct vk_exec_spec *spec, const char *ws, struct vk_pool *pool,
                     struct vk__exec_strv *out, struct vk_err *err)
{
    if (spec->nenv > VK_EXEC_MAX_ENV)
        return vk_err_set(err, VK_ETOOBIG, "too many environment variables (%zu)", spec->nenv);
    if (spec->nenv > 0 && !spec->env)
        return vk_err_set(err, VK_EINVAL, "environment array missing");
    size_t total = 0;
    bool has_path = false, has_home = false;
    for (size_t i = 0; i < spec->nenv; i++) {
        const char *kv = spec->env[i];
        if (!kv)
            return vk_err_set(err, VK_EINVAL, "environment entry %zu is NULL", i);
        const char *eq = strchr(kv, '=');
        size_t klen = eq ? (size_t)(eq - kv) : 0;
        if (!eq || klen == 0)
            return vk_err_set(err, VK_EINVAL, "environment entry %zu is not KEY=VALUE", i);
        if (klen > VK_EXEC_MAX_ENV_KEY)
            return vk_err_set(err, VK_ETOOBIG, "environment key %zu is too long", i);
        size_t vlen = strlen(eq + 1);
        if (vlen > VK_EXEC_MAX_ENV_VALUE)
            return vk_err_set(err, VK_ETOOBIG, "environment value of '%.*s' is too long",
                              (int)(klen > 64 ? 64 : klen), kv);
        total += klen + vlen + 2;
        if (total > VK_EXEC_MAX_ENV_TOTAL)
            return vk_err_set(err, VK_ETOOBIG, "environment too large");
        if (klen == 4 && memcmp(kv, "PATH", 4) == 0)
            has_path = true;
        if (klen == 4 && memcmp(kv, "HOME", 4) == 0)
            has_home = true;
        char *copy = vk_pool_strndup(pool, kv, klen + 1 + vlen);
        if (!copy)
            return vk_err_set(err, VK_ENOMEM, "out of memory");
        size_t j = 0;
        for (; j < out->n; j++)
            if (strncmp(out->v[j], kv, klen + 1) == 0)
                break;
        if (j < out->n) {
            out->v[j] = copy;
            continue;
        }
        if (vk__exec_strv_push(out, copy) < 0)
            return vk_err_set(err, VK_ENOMEM, "out of memory");
    }
    if (!has_path && vk__exec_strv_push(out, "PATH=" VK_EXEC_DEFAULT_PATH) < 0)
        return vk_err_set(err, VK_ENOMEM, "out of memory");
    if (!has_home && vk__exec_strv_push(out, vk__exec_pool_printf(pool, "HOME=%s", ws)) < 0)
        return vk_err_set(err, VK_ENOMEM, "out of memory");
    return 0;
}

/* Set KEY=VALUE in `envv`, replacing an injected KEY (what the executor knows wins). */
static int set_env(struct vk__exec_strv *envv, struct vk_pool *pool, const char *key,
                   const char *value, struct vk_err *err)
{
    char *kv = vk__exec_pool_printf(pool, "%s=%s", key, value);
    if (!kv)
        return vk_err_set(err, VK_ENOMEM, "out of memory");
    size_t klen = strlen(key) + 1;
    for (size_t j = 0; j < envv->n; j++) {
        if (strncmp(envv->v[j], kv, klen) == 0) {
            envv->v[j] = kv;
            return 0;
        }
    }
    if (vk__exec_strv_push(envv, kv) < 0)
        return vk_err_set(err, VK_ENOMEM, "out of memory");
    return 0;
}

static int validate(const struct vk_exec_spec *spec, struct vk_err *err)
{
    if (!valid_id(spec->fragment_id))
        return vk_err_set(err, VK_EINVAL, "invalid fragment id");
    if (!spec->script)
        return vk_err_set(err, VK_EINVAL, "no script");
    if (strlen(spec->script) > VK_EXEC_MAX_SCRIPT)
        return vk_err_set(err, VK_ETOOBIG, "script larger than %u bytes", VK_EXEC_MAX_SCRIPT);
    if (spec->timeout_ms < 0 || spec->kill_grace_ms < 0)
        return vk_err_set(err, VK_EINVAL, "negative timeout");
    return 0;
}

/* ---------------------------------------------------------------- run */

static int64_t real_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

struct run_state {
    const struct vk_exec_env *env;
    const struct vk_exec_spec *spec;
    struct vk__exec_sink sink;
    struct vk_pool pool;
    struct vk__exec_strv envv;
    struct vk__exec_strv argv;
    struct vk__exec_cg cg;   /* the attempt's own cgroup (no slot) */
    struct vk__exec_cg *cgp; /* the cgroup the attempt runs in: &cg or the slot's */
    bool cg_made;
    char ws[512];
    char rdir[600];    /* the script's directory ("" when the script goes inline with -c) */
    char outdir[640];  /* <rdir>/out, writable in the sandbox (spec.outputs) */
    char outfile[660]; /* <outdir>/output: $VULCAN_OUTPUT ("" without spec.outputs) */
    char script[700];  /* the script file ("" when inline) */
    struct vk__exec_strv mirrors; /* pool strings: the mirrors the workspace borrows from */
    int env_fd;                   /* bubblewrap's --args file (the environment), or -1 */
    int netns_fd; /* the slot's network namespace the sandbox joins (borrowed), or -1 */
    bool sandboxed;
    bool plain;   /* run under /bin/sh instead of bash (shell AUTO, plain script) */
    bool ws_made; /* the workspace exists (ours to drop) */
    int lock_fd;  /* flock on <rdir>/.lock while the attempt runs (secret files), or -1 */
};

static void format_size(uint64_t n, char *out, size_t cap)
{
    if (n >= MIB && n % MIB == 0)
        snprintf(out, cap, "%llu MiB", (unsigned long long)(n / MIB));
    else
        snprintf(out, cap, "%llu bytes", (unsigned long long)n);
}

/*
 * Set up the attempt's cgroup. Limits fail closed: when the spec asks for one and no cgroup
 * can be made, the attempt fails (VK_EPERM) instead of running unbounded. Only an operator
 * who turned cgroups off (`--cgroups never`) gets the one-line notice and an unbounded run.
 */
static int setup_cgroup(struct run_state *st, struct vk_exec_result *out, struct vk_err *err)
{
    const struct vk_exec_spec *spec = st->spec;
    bool want = spec->memory_limit_bytes || spec->pids_limit || spec->cpu_millis;
    /* AUTO: no cgroup without a limit (the process group, and bwrap's PID namespace
     * when sandboxed, still end the attempt's processes). */
    if (!want && st->env->cgroups != VK_EXEC_CGROUPS_ALWAYS)
        return 0;
    char name[VK_EXEC_MAX_ID + 64], why[320];
    struct vk_exec_slot *slot = spec->slot;
    if (st->env->cgroups == VK_EXEC_CGROUPS_NEVER) {
        if (want)
            vk__exec_sink_notice(&st->sink, "[vulcan] cgroup limits unavailable: %s\n",
                                 st->env->cgroup_why);
        return 0;
    }
    if (slot && slot->made) {
        /* The slot's cgroup, emptied when the last attempt ended: new limits only. */
        if (vk__exec_cg_reuse(&slot->cg, spec, why, sizeof why) == 0) {
            st->cgp = &slot->cg;
            st->cg_made = true;
            out->cgroup_used = true;
            return 0;
        }
        vk__exec_cg_destroy(&slot->cg);
        slot->made = false;
    }
    if (slot)
        snprintf(name, sizeof name, "vulcan-slot-%ld-%ld-%u", (long)getpid(), (long)gettid(),
                 ++slot->seq);
    else
        snprintf(name, sizeof name, "vulcan-%s-%u-%ld", spec->fragment_id, spec->attempt,
                 (long)gettid());
    struct vk__exec_cg *cg = slot ? &slot->cg : &st->cg;
    if (st->env->cgroup_mode == VK_EXEC_CGROUP_NONE) {
        snprintf(why, sizeof why, "%s", st->env->cgroup_why);
    } else if (vk__exec_cg_create(st->env, name, spec, cg, why, sizeof why) == 0) {
        st->cgp = cg;
        st->cg_made = true;
        if (slot)
            slot->made = true;
        out->cgroup_used = true;
        return 0;
    }
    if (!want)
        return 0; /* ALWAYS without a limit: the cgroup only helps to find processes */
    vk__exec_sink_notice(&st->sink, "[vulcan] cgroup limits unavailable: %s\n", why);
    return vk_err_set(err, VK_EPERM,
                      "cgroup limits unavailable (%s); the attempt does not run without its "
                      "memory/pids/cpu limits: fix cgroups or run the worker with --cgroups never",
                      why);
}

static bool file_name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 128 || (s[0] >= '0' && s[0] <= '9'))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(s[i] == '_' || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9')))
            return false;
    return true;
}

/* The attempt's secret files into <rdir>/secrets (0700, files 0600), each path in its
 * variable. <rdir>/.lock stays locked while the attempt runs, so that a worker starting
 * later tells a dead attempt's directory from a live one's (sweep_runs). */
static int write_files(struct run_state *st, struct vk_err *err)
{
    const struct vk_exec_spec *spec = st->spec;
    if (spec->nfiles == 0)
        return 0;
    if (spec->nfiles > VK_EXEC_MAX_FILES || !spec->files)
        return vk_err_set(err, VK_ETOOBIG, "too many secret files (%zu)", spec->nfiles);
    char path[800];
    snprintf(path, sizeof path, "%s/.lock", st->rdir);
    st->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (st->lock_fd < 0 || flock(st->lock_fd, LOCK_EX) != 0)
        return vk_err_errno(err, "lock the attempt's directory");
    snprintf(path, sizeof path, "%s/secrets", st->rdir);
    if (mkdir(path, 0700) < 0)
        return vk_err_errno(err, "create the secret files' directory");
    for (size_t i = 0; i < spec->nfiles; i++) {
        const struct vk_exec_file *f = &spec->files[i];
        if (!file_name_ok(f->name) || (f->len && !f->data))
            return vk_err_set(err, VK_EINVAL, "secret file %zu has no usable name", i);
        snprintf(path, sizeof path, "%s/secrets/%s", st->rdir, f->name);
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
            return vk_err_errno(err, "create a secret file");
        size_t off = 0;
        while (off < f->len) {
            ssize_t w = write(fd, f->data + off, f->len - off);
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                close(fd);
                return vk_err_errno(err, "write a secret file");
            }
            off += (size_t)w;
        }
        if (close(fd) != 0)
            return vk_err_errno(err, "write a secret file");
        int rc = set_env(&st->envv, &st->pool, f->name, path, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* <rdir>/out/output, empty, for $VULCAN_OUTPUT: a directory of its own so that the sandbox
 * binds only it writable (the rest of <rdir> is read-only there). */
static int make_outputs(struct run_state *st, struct vk_err *err)
{
    snprintf(st->outdir, sizeof st->outdir, "%s/out", st->rdir);
    snprintf(st->outfile, sizeof st->outfile, "%s/output", st->outdir);
    if (mkdir(st->outdir, 0700) < 0)
        return vk_err_errno(err, "create the outputs directory");
    int fd = open(st->outfile, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return vk_err_errno(err, "create $VULCAN_OUTPUT");
    close(fd);
    return 0;
}

/* Read $VULCAN_OUTPUT back: a regular file (never through a link the script put there, nor
 * a FIFO that would block), at most VK_OUTPUTS_MAX_BYTES. */
static void read_outputs(struct run_state *st, struct vk_exec_result *out)
{
    int fd = open(st->outfile, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    struct stat sb;
    if (fd < 0 || fstat(fd, &sb) < 0 || !S_ISREG(sb.st_mode)) {
        snprintf(out->outputs_why, sizeof out->outputs_why,
                 "$VULCAN_OUTPUT is gone or is not a regular file");
        if (fd >= 0)
            close(fd);
        return;
    }
    if ((uint64_t)sb.st_size > VK_OUTPUTS_MAX_BYTES) {
        out->outputs_over = true;
        close(fd);
        return;
    }
    char *buf = vk_mem_alloc((size_t)sb.st_size + 2);
    size_t n = 0;
    ssize_t r = 1;
    while (buf && r > 0 && n <= VK_OUTPUTS_MAX_BYTES) {
        r = read(fd, buf + n, (size_t)sb.st_size + 1 - n);
        if (r > 0)
            n += (size_t)r;
        if (n == (size_t)sb.st_size + 1)
            break;
    }
    close(fd);
    if (!buf || r < 0) {
        vk_mem_free(buf);
        snprintf(out->outputs_why, sizeof out->outputs_why, "$VULCAN_OUTPUT cannot be read");
        return;
    }
    if (n > (size_t)sb.st_size) { /* it grew while read: refuse rather than guess */
        vk_mem_free(buf);
        out->outputs_over = n > VK_OUTPUTS_MAX_BYTES;
        if (!out->outputs_over)
            snprintf(out->outputs_why, sizeof out->outputs_why,
                     "$VULCAN_OUTPUT changed while it was read");
        return;
    }
    buf[n] = '\0';
    if (n == 0) {
        vk_mem_free(buf);
        return;
    }
    out->outputs = buf;
    out->outputs_len = n;
}

void vk_exec_result_release(struct vk_exec_result *r)
{
    if (!r)
        return;
    vk_mem_free(r->outputs);
    r->outputs = NULL;
    r->outputs_len = 0;
}

static int build_argv(struct run_state *st, struct vk_err *err)
{
    int rc = 0;
    if (st->sandboxed) {
        rc = vk__exec_bwrap_env_fd(&st->envv, &st->env_fd, err);
        if (rc < 0)
            return rc;
        /* Without the network: the slot's kept namespace, when there is one (shared with
         * bubblewrap, which then makes none). */
        if (!st->spec->allow_network)
            st->netns_fd = vk__exec_slot_netns(st->spec->slot);
        rc = vk__exec_bwrap_argv(st->env, &st->argv, &st->pool, st->ws,
                                 st->rdir[0] ? st->rdir : NULL, st->outfile[0] ? st->outdir : NULL,
                                 &st->mirrors, st->spec->allow_network || st->netns_fd > 2,
                                 st->env_fd);
    }
    if (rc == 0)
        rc = vk__exec_strv_push(&st->argv, st->plain ? "/bin/sh" : st->env->shell);
    if (rc == 0 && st->env->shell_is_bash && !st->plain) {
        rc = vk__exec_strv_push(&st->argv, "-e");
        if (rc == 0)
            rc = vk__exec_strv_push(&st->argv, "-o");
        if (rc == 0)
            rc = vk__exec_strv_push(&st->argv, "pipefail");
    } else if (rc == 0) {
        rc = vk__exec_strv_push(&st->argv, "-e");
    }
    if (rc == 0 && st->script[0]) {
        rc = vk__exec_strv_push(&st->argv, st->script);
    } else if (rc == 0) {
        /* Inline: no file to make and remove; the script shows in the process list. */
        rc = vk__exec_strv_push(&st->argv, "-c");
        if (rc == 0)
            rc = vk__exec_strv_push(&st->argv, (char *)st->spec->script);
    }
    if (rc < 0)
        return vk_err_set(err, VK_ENOMEM, "out of memory");
    return 0;
}

/* Steps up to and including the script's run. Returns 0 or a VK code with *err set. */
static int run_steps(struct run_state *st, struct vk_exec_cancel *cancel,
                     struct vk_exec_result *out, struct vk_err *err)
{
    const struct vk_exec_env *env = st->env;
    const struct vk_exec_spec *spec = st->spec;
    int rc = validate(spec, err);
    if (rc < 0)
        return rc;
    enum vk_exec_sandbox mode = spec->sandbox ? spec->sandbox : env->default_sandbox;
    /* The sandbox fails closed: `auto` is bubblewrap when it works and an error when it
     * does not; running unsandboxed is only ever chosen explicitly (issue 14 item 10). */
    if (mode == VK_EXEC_SANDBOX_AUTO)
        mode = VK_EXEC_SANDBOX_BWRAP;
    if (mode == VK_EXEC_SANDBOX_BWRAP && !env->bwrap_ok)
        return vk_err_set(err, VK_EPERM,
                          "no sandbox works on this worker (%s); fix bubblewrap, or choose "
                          "--sandbox none on a host trusted with every workflow",
                          env->bwrap_why);
    st->sandboxed = mode == VK_EXEC_SANDBOX_BWRAP;
    out->sandboxed = st->sandboxed;

    snprintf(st->ws, sizeof st->ws, "%s/%s-%u", env->work_dir, spec->fragment_id, spec->attempt);
    snprintf(out->workspace, sizeof out->workspace, "%s", st->ws);
    /* Small scripts go to the shell with -c: one directory per attempt, no file. */
    bool inline_script = strlen(spec->script) < VK_EXEC_INLINE_SCRIPT_MAX;
    if (!inline_script || spec->nfiles > 0 || spec->outputs)
        snprintf(st->rdir, sizeof st->rdir, "%s/%s-%u", env->run_dir, spec->fragment_id,
                 spec->attempt);
    if (!inline_script)
        snprintf(st->script, sizeof st->script, "%s/script", st->rdir);
    if ((rc = make_workspace(env, st->ws, err)) < 0)
        return rc;
    st->ws_made = true;
    if (st->rdir[0]) {
        if ((rc = vk__exec_rmtree(st->rdir, err)) < 0)
            return rc;
        if (mkdir(st->rdir, 0700) < 0)
            return vk_err_errno(err, "create script directory");
    }
    if (spec->outputs && (rc = make_outputs(st, err)) < 0)
        return rc;
    st->plain = env->shell_mode == VK_EXEC_SHELL_AUTO && env->shell_is_bash &&
                vk_exec_script_is_plain(spec->script, spec->env, spec->nenv);
    out->plain_shell = st->plain;
    if ((rc = build_env(spec, st->ws, &st->pool, &st->envv, err)) < 0)
        return rc;
    if (spec->outputs &&
        (rc = set_env(&st->envv, &st->pool, "VULCAN_OUTPUT", st->outfile, err)) < 0)
        return rc;
    if ((rc = write_files(st, err)) < 0)
        return rc;
    out->stage_ns[VK_EXEC_STAGE_WORKSPACE] = real_ns();
    if (cancel && atomic_load(&cancel->requested)) {
        out->cancelled = true;
        return vk_err_set(err, VK_EAGAIN, "cancelled before start");
    }

    if (spec->no_checkout) {
        /* `checkout #false`: an empty workspace, no git, and no commit to name */
        if ((rc = set_env(&st->envv, &st->pool, "VULCAN_CHECKOUT_SHA", "", err)) < 0)
            return rc;
    } else if (spec->repository_url && *spec->repository_url) {
        int64_t t0 = vk_time_mono_ns();
        const char *sha = NULL;
        rc = vk__exec_checkout(env, spec, st->ws, &st->pool, &st->sink, cancel, &st->mirrors, &sha,
                               err);
        out->checkout_ms = (vk_time_mono_ns() - t0) / 1000000;
        if (rc == VK_EAGAIN)
            out->cancelled = true;
        if (rc < 0)
            return rc;
        if ((rc = set_env(&st->envv, &st->pool, "VULCAN_CHECKOUT_SHA", sha, err)) < 0)
            return rc;
    }
    if (st->script[0] &&
        (rc = vk__exec_write_file(st->script, spec->script, strlen(spec->script), err)) < 0)
        return rc;
    if ((rc = setup_cgroup(st, out, err)) < 0)
        return rc;
    if ((rc = build_argv(st, err)) < 0)
        return rc;
    out->stage_ns[VK_EXEC_STAGE_SETUP] = real_ns();

    char *bwrap_envp[] = {"PATH=" VK_EXEC_DEFAULT_PATH, NULL};
    struct vk__exec_child c = {
        .path = st->sandboxed ? env->bwrap_path
                : st->plain   ? "/bin/sh"
                              : env->shell,
        .argv = st->argv.v,
        .envp = st->sandboxed ? bwrap_envp : st->envv.v,
        .cwd = st->ws,
        .cg = st->cg_made ? st->cgp : NULL,
        .rlimits = true,
        .nofile = spec->nofile_limit ? spec->nofile_limit : VK_EXEC_DEFAULT_NOFILE,
        .as = spec->as_limit_bytes,
        .fsize = spec->fsize_limit_bytes,
        .timeout_ms = spec->timeout_ms,
        .grace_ms = spec->kill_grace_ms ? spec->kill_grace_ms : VK_EXEC_DEFAULT_KILL_GRACE_MS,
        .term_spare_leader = st->sandboxed,
        .pass_fd = st->sandboxed ? st->env_fd : -1,
        .netns_fd = st->netns_fd,
        .cancel = cancel,
        .sink = &st->sink,
    };
    struct vk__exec_outcome o;
    rc = vk__exec_child_run(&c, &o, err);
    if (rc < 0)
        return rc;
    out->stage_ns[VK_EXEC_STAGE_EXITED] = real_ns();
    if (spec->outputs)
        read_outputs(st, out);
    out->exit_code = o.exit_code;
    out->signal = o.signal;
    out->timed_out = o.timed_out;
    out->cancelled = o.cancelled;
    if (st->cg_made)
        out->oom_killed = vk__exec_cg_oom(st->cgp);
    if (o.timed_out)
        vk__exec_sink_notice(&st->sink, "\n[vulcan] timed out after %lld ms\n",
                             (long long)spec->timeout_ms);
    else if (o.cancelled)
        vk__exec_sink_notice(&st->sink, "\n[vulcan] cancelled\n");
    if (out->oom_killed)
        vk__exec_sink_notice(&st->sink, "\n[vulcan] killed: out of memory (limit %llu bytes)\n",
                             (unsigned long long)spec->memory_limit_bytes);
    unsigned long long refused =
        st->cg_made && spec->pids_limit ? vk__exec_cg_pids_refused(st->cgp) : 0;
    if (refused)
        vk__exec_sink_notice(&st->sink, "\n[vulcan] the process limit (%u) refused %llu fork(s)\n",
                             spec->pids_limit, refused);
    return 0;
}

int vk_exec_run(const struct vk_exec_env *env, const struct vk_exec_spec *spec,
                vk_exec_output_fn cb, void *ctx, struct vk_exec_cancel *cancel,
                struct vk_exec_result *out, struct vk_err *err)
{
    int64_t t0 = vk_time_mono_ns();
    struct run_state st;
    memset(&st, 0, sizeof st);
    st.env_fd = -1;
    st.netns_fd = -1;
    st.lock_fd = -1;
    memset(out, 0, sizeof *out);
    out->stage_ns[VK_EXEC_STAGE_START] = real_ns();
    out->exit_code = -1;
    st.env = env;
    st.spec = spec;
    st.sink.cb = cb;
    st.sink.ctx = ctx;
    st.sink.cap = spec->output_cap ? spec->output_cap : VK_EXEC_DEFAULT_OUTPUT_CAP;
    st.sink.mask = spec->mask;
    vk_pool_init(&st.pool, 0);
    vk_err_clear(err);
    struct vk_err local;
    if (!err)
        err = &local;

    int rc = run_steps(&st, cancel, out, err);
    if (rc < 0) {
        out->exit_code = -1;
        snprintf(out->error, sizeof out->error, "%s", err->msg);
        vk__exec_sink_notice(&st.sink, "[vulcan] error: %s\n", err->msg);
    }
    if (st.env_fd >= 0)
        close(st.env_fd);
    if (st.cg_made && st.cgp == &st.cg) {
        vk__exec_cg_destroy(&st.cg);
    } else if (st.cg_made && vk__exec_cg_empty(st.cgp) < 0) {
        /* Something would not die: that cgroup serves no further attempt. */
        vk__exec_cg_destroy(st.cgp);
        spec->slot->made = false;
    }
    if (st.rdir[0] && vk__exec_rmtree(st.rdir, NULL) < 0 && spec->nfiles)
        vk__exec_sink_notice(&st.sink, "[vulcan] the attempt's secret files were not removed\n");
    if (st.lock_fd >= 0)
        close(st.lock_fd);
    if (st.ws[0] && !spec->keep_workspace) {
        struct vk_err rerr;
        if ((st.ws_made ? drop_workspace(env, st.ws, &rerr) : vk__exec_rmtree(st.ws, &rerr)) < 0)
            vk__exec_sink_notice(&st.sink, "[vulcan] workspace not fully removed: %s\n", rerr.msg);
    }
    out->output_bytes = st.sink.total;
    out->output_dropped = st.sink.dropped;
    out->truncated = st.sink.dropped > 0;
    if (out->truncated) {
        char cap[64];
        format_size(st.sink.cap, cap, sizeof cap);
        vk__exec_sink_notice(&st.sink,
                             "\n[vulcan] output truncated: the fragment printed more than %s; "
                             "%llu bytes dropped\n",
                             cap, (unsigned long long)st.sink.dropped);
    }
    if (st.sink.mask_failed)
        vk__exec_sink_notice(&st.sink, "\n[vulcan] output dropped: out of memory while masking\n");
    vk__exec_sink_finish(&st.sink);
    vk__exec_strv_release(&st.argv);
    vk__exec_strv_release(&st.envv);
    vk__exec_strv_release(&st.mirrors);
    vk_pool_release(&st.pool);
    out->duration_ms = (vk_time_mono_ns() - t0) / 1000000;
    out->stage_ns[VK_EXEC_STAGE_CLEANED] = real_ns();
    return rc;
}
