/*
 * shipped.c — the two providers that come with the binary (`vulcan secret-provider age`
 * and `vulcan secret-provider pass`): each reads the runner's request, checks its `key`
 * and asks the real program (age, pass) through the same bounded runner as providers
 * themselves are run with.
 */
#include "secrets_int.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEY_MAX 1024u
#define EXCERPT 120u
/* An age file of the largest value, armored, with room to spare. */
#define AGE_MAX_FILE (1024u * 1024u)
/* `pass show` prints the whole entry; the value is its first line. */
#define PASS_MAX_OUTPUT (1024u * 1024u)

/* The request's "key", checked: relative, [A-Za-z0-9._@+/-], no empty, "." or ".."
 * component, and (for pass, whose argument could look like an option) no leading '-'. */
static int request_key(const char *request, size_t len, char *key, size_t cap, bool no_leading_dash,
                       struct vk_err *err)
{
    json_error_t je;
    json_t *doc = json_loadb(request, len, JSON_REJECT_DUPLICATES, &je);
    if (!doc)
        return vk_err_set(err, VK_EPARSE, "the request on stdin is not JSON (line %d, column %d)",
                          je.line, je.column);
    json_t *k = json_is_object(doc) ? json_object_get(doc, "key") : NULL;
    int rc = 0;
    if (!json_is_string(k)) {
        rc = vk_err_set(err, VK_EINVAL, "the request has no \"key\" string");
        goto out;
    }
    const char *s = json_string_value(k);
    size_t n = json_string_length(k);
    if (n == 0 || n > KEY_MAX || n >= cap) {
        rc = vk_err_set(err, VK_EINVAL, "key must be 1 to %u bytes", KEY_MAX);
        goto out;
    }
    if (s[0] == '/' || (no_leading_dash && s[0] == '-')) {
        rc = vk_err_set(err, VK_EINVAL, "key '%.64s' must be a relative name", s);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              strchr("._@+/-", c) != NULL)) {
            rc = vk_err_set(err, VK_EINVAL,
                            "key '%.64s' may hold only letters, digits and ._@+/- (byte %zu "
                            "is not one)",
                            s, i + 1);
            goto out;
        }
    }
    for (const char *p = s; *p;) {
        size_t w = strcspn(p, "/");
        if (w == 0 || (w == 1 && p[0] == '.') || (w == 2 && p[0] == '.' && p[1] == '.')) {
            rc = vk_err_set(err, VK_EINVAL,
                            "key '%.64s' has an empty, '.' or '..' component; name a file "
                            "inside the directory",
                            s);
            goto out;
        }
        p += w;
        if (*p == '/') {
            p++;
            if (!*p) {
                rc = vk_err_set(err, VK_EINVAL, "key '%.64s' ends with '/'", s);
                goto out;
            }
        }
    }
    memcpy(key, s, n + 1);
out:
    json_decref(doc);
    return rc;
}

static void env_entry(char *buf, size_t cap, const char *name, const char *value)
{
    snprintf(buf, cap, "%s=%s", name, value);
}

static const char *home_dir(void)
{
    const char *h = getenv("HOME");
    return h && h[0] == '/' && strlen(h) < PATH_MAX ? h : "/";
}

/* Open `key` under `dir` for reading, refusing anything that resolves outside it. */
static int open_beneath(const char *dir, const char *key, int *fd, struct vk_err *err)
{
    char rdir[PATH_MAX], path[PATH_MAX * 2], rpath[PATH_MAX];
    *fd = -1;
    if (!realpath(dir, rdir))
        return vk_err_set(err, VK_EINVAL, "cannot use the directory '%s': %s", dir,
                          strerror(errno));
    snprintf(path, sizeof(path), "%s/%s", rdir, key);
    if (!realpath(path, rpath)) {
        if (errno == ENOENT)
            return vk_err_set(err, VK_ENOTFOUND, "no file '%s' in '%s'", key, dir);
        return vk_err_set(err, VK_EINVAL, "cannot use '%s' in '%s': %s", key, dir, strerror(errno));
    }
    size_t dl = strlen(rdir);
    if (strncmp(rpath, rdir, dl) != 0 || (rdir[dl - 1] != '/' && rpath[dl] != '/'))
        return vk_err_set(err, VK_EPERM, "key '%s' leads out of '%s' (a symbolic link)", key, dir);
    /* O_NOFOLLOW: the path was resolved already; a link swapped in since is refused. */
    int f = open(rpath, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
    if (f < 0)
        return vk_err_set(err, VK_EINVAL, "cannot open '%s' in '%s': %s", key, dir,
                          strerror(errno));
    struct stat st;
    if (fstat(f, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(f);
        return vk_err_set(err, VK_EINVAL, "'%s' in '%s' is not a regular file", key, dir);
    }
    if (st.st_size > (off_t)AGE_MAX_FILE) {
        close(f);
        return vk_err_set(err, VK_ETOOBIG, "'%s' in '%s' is larger than %u bytes", key, dir,
                          AGE_MAX_FILE);
    }
    /* Only age files go to age: its complaint about anything else quotes the content,
     * which for a value stored in clear by mistake would put it in the error. */
    static const char bin[] = "age-encryption.org/v1\n",
                      pem[] = "-----BEGIN AGE ENCRYPTED FILE-----";
    char head[sizeof(pem)];
    ssize_t n = pread(f, head, sizeof(head) - 1, 0);
    bool is_bin = n >= (ssize_t)sizeof(bin) - 1 && memcmp(head, bin, sizeof(bin) - 1) == 0;
    bool is_pem = n >= (ssize_t)sizeof(pem) - 1 && memcmp(head, pem, sizeof(pem) - 1) == 0;
    if (!is_bin && !is_pem) {
        explicit_bzero(head, sizeof(head));
        close(f);
        return vk_err_set(err, VK_EINVAL,
                          "'%s' in '%s' is not an age-encrypted file (encrypt it with age -r "
                          "RECIPIENT)",
                          key, dir);
    }
    explicit_bzero(head, sizeof(head));
    *fd = f;
    return 0;
}

/* Run a shipped provider's program; its stdout (returns owned, in r->out) on exit 0. */
static int run_tool(const char *tool, struct vk__secrets_cmd *cmd, struct vk__secrets_result *r,
                    struct vk_err *err)
{
    struct vk_err e;
    vk_err_clear(&e);
    int rc = vk__secrets_exec(cmd, r, &e);
    char excerpt[EXCERPT + 1];
    vk__secrets_excerpt(&r->err, EXCERPT, excerpt, sizeof(excerpt));
    const char *sep = excerpt[0] ? ": " : "";
    if (rc == VK_ETOOBIG)
        return vk_err_set(err, rc, "%s printed more than %zu bytes", tool, cmd->out_max);
    if (rc)
        return vk_err_set(err, rc, "%s %s%s%s", tool, e.msg, sep, excerpt);
    if (r->signal || r->status != 0)
        return vk_err_set(err, VK_EINVAL, "%s failed (exit status %d)%s%s", tool,
                          r->signal ? -1 : r->status, sep, excerpt);
    return 0;
}

int vk_secret_provider_age(const struct vk_secret_age_opts *o, const char *request, size_t len,
                           struct vk_secret_value *out, struct vk_err *err)
{
    out->data = NULL;
    out->len = 0;
    if (!o->dir || !o->identity)
        return vk_err_set(err, VK_EINVAL, "the age provider needs --dir and --identity");
    struct stat st;
    if (stat(o->identity, &st) < 0)
        return vk_err_set(err, VK_EINVAL, "cannot use the identity file '%s': %s", o->identity,
                          strerror(errno));
    if (!S_ISREG(st.st_mode) || (st.st_mode & (S_IRWXG | S_IRWXO)))
        return vk_err_set(err, VK_EPERM,
                          "identity '%.100s' is not a file only its owner can read; chmod 600 it",
                          o->identity);
    /* age runs in "/": its identity path must not depend on our working directory. */
    char identity[PATH_MAX];
    if (!realpath(o->identity, identity))
        return vk_err_set(err, VK_EINVAL, "cannot use the identity file '%s': %s", o->identity,
                          strerror(errno));
    const char *age = o->age ? o->age : "/usr/bin/age";
    if (age[0] != '/')
        return vk_err_set(err, VK_EINVAL, "--age '%s' must be an absolute path", age);
    char key[KEY_MAX + 1];
    int rc = request_key(request, len, key, sizeof(key), false, err);
    if (rc)
        return rc;
    int fd = -1;
    rc = open_beneath(o->dir, key, &fd, err);
    if (rc)
        return rc;
    char home[PATH_MAX + 8];
    env_entry(home, sizeof(home), "HOME", home_dir());
    char *envp[] = {"PATH=/usr/local/bin:/usr/bin:/bin", home, "LC_ALL=C", NULL};
    char *argv[] = {(char *)age, "--decrypt", "--identity", identity, NULL};
    struct vk__secrets_cmd cmd = {
        .argv = argv,
        .envp = envp,
        .in = NULL,
        .in_fd = fd,
        .out_max = VK_SECRET_VALUE_MAX + 1, /* and a newline */
        .err_max = VK_SECRET_PROVIDER_MAX_STDERR,
        .timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : VK_SECRET_PROVIDER_DEFAULT_TIMEOUT_MS};
    struct vk__secrets_result r;
    vk__secrets_result_init(&r, cmd.out_max, cmd.err_max);
    rc = run_tool("age", &cmd, &r, err);
    close(fd);
    if (rc == 0) {
        size_t n = r.out.len;
        if (n && r.out.data[n - 1] == '\n')
            n--;
        struct vk_err e;
        vk_err_clear(&e);
        rc = vk__secrets_value_set(out, r.out.data, n, &e);
        if (rc)
            vk_err_set(err, rc, "'%s' decrypts to a bad value: %s", key, e.msg);
    }
    vk__secrets_result_release(&r);
    return rc;
}

int vk_secret_provider_pass(const struct vk_secret_pass_opts *o, const char *request, size_t len,
                            struct vk_secret_value *out, struct vk_err *err)
{
    out->data = NULL;
    out->len = 0;
    char key[KEY_MAX + 1];
    int rc = request_key(request, len, key, sizeof(key), true, err);
    if (rc)
        return rc;
    char home[PATH_MAX + 8], store[PATH_MAX + 32], gnupg[PATH_MAX + 16];
    char *envp[6] = {"PATH=/usr/local/bin:/usr/bin:/bin", home, "LC_ALL=C", NULL, NULL, NULL};
    size_t ne = 3;
    env_entry(home, sizeof(home), "HOME", home_dir());
    if (o->store) {
        env_entry(store, sizeof(store), "PASSWORD_STORE_DIR", o->store);
        envp[ne++] = store;
    }
    if (o->gnupghome) {
        env_entry(gnupg, sizeof(gnupg), "GNUPGHOME", o->gnupghome);
        envp[ne++] = gnupg;
    }
    const char *pass = o->pass ? o->pass : "/usr/bin/pass";
    if (pass[0] != '/')
        return vk_err_set(err, VK_EINVAL, "--pass '%s' must be an absolute path", pass);
    if ((o->store && o->store[0] != '/') || (o->gnupghome && o->gnupghome[0] != '/'))
        return vk_err_set(err, VK_EINVAL, "--store and --gnupghome must be absolute paths");
    char *argv[] = {(char *)pass, "show", "--", key, NULL};
    struct vk__secrets_cmd cmd = {
        .argv = argv,
        .envp = envp,
        .in = NULL,
        .in_fd = -1,
        .out_max = PASS_MAX_OUTPUT,
        .err_max = VK_SECRET_PROVIDER_MAX_STDERR,
        .timeout_ms = o->timeout_ms > 0 ? o->timeout_ms : VK_SECRET_PROVIDER_DEFAULT_TIMEOUT_MS};
    struct vk__secrets_result r;
    vk__secrets_result_init(&r, cmd.out_max, cmd.err_max);
    rc = run_tool("pass", &cmd, &r, err);
    if (rc == 0) {
        const char *nl = memchr(r.out.data, '\n', r.out.len);
        size_t n = nl ? (size_t)(nl - r.out.data) : r.out.len;
        if (n && r.out.data[n - 1] == '\r')
            n--;
        struct vk_err e;
        vk_err_clear(&e);
        rc = vk__secrets_value_set(out, r.out.data, n, &e);
        if (rc)
            vk_err_set(err, rc, "the first line of '%s' is a bad value: %s", key, e.msg);
    }
    vk__secrets_result_release(&r);
    return rc;
}
