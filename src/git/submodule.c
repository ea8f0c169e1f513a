/*
 * submodule.c — `checkout { submodules … }`: the submodules of a checked-out
 * work tree, each through its own mirror of the cache. No `git submodule`:
 * the `.gitmodules` of HEAD is read with `git config --blob` (no includes),
 * every URL and path is checked here before git sees it (`.gitmodules` is
 * hostile input: `ext::` URLs run commands, "-…" URLs are options, "../" paths
 * escape the work tree), the commit comes from the gitlink in HEAD's tree, and
 * the submodule is a vk_git_checkout() of its own mirror into its path.
 */
#include "git_int.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_GITMODULES (256u << 10) /* bytes of `git config --list` output read */

/* ---------------------------------------------------------------- Policy */

/* One path segment that git would take for its repository: ".git", in any case, and the
 * forms Windows and macOS file systems fold into it (trailing dots and spaces). */
static bool is_dotgit(const char *seg, size_t n)
{
    while (n > 4 && (seg[n - 1] == '.' || seg[n - 1] == ' '))
        n--;
    return n == 4 && strncasecmp(seg, ".git", 4) == 0;
}

bool vk_git_valid_submodule_path(const char *p)
{
    if (!vk_git_valid_path(p) || p[0] == '-')
        return false;
    for (const char *s = p; *s;) {
        size_t seg = strcspn(s, "/");
        if (is_dotgit(s, seg))
            return false;
        s += seg;
        if (*s == '/')
            s++;
    }
    return true;
}

/* The superproject is on this machine: its submodules may be too. */
static bool is_local(const char *url)
{
    return url[0] == '/' || strncmp(url, "file://", 7) == 0;
}

/* Where the part of `url` that "../" may not remove ends: after "scheme://host",
 * after "host:" of an scp-like URL, after the "/" of a local path. */
static size_t root_len(const char *url)
{
    const char *sch = strstr(url, "://");
    if (sch) {
        const char *slash = strchr(sch + 3, '/');
        return slash ? (size_t)(slash - url) : strlen(url);
    }
    if (url[0] == '/')
        return 1;
    const char *colon = strchr(url, ':');
    const char *slash = strchr(url, '/');
    if (colon && (!slash || colon < slash))
        return (size_t)(colon - url) + 1;
    return 0;
}

/* A "./x" or "../x" URL against the superproject's, as git's resolve_relative_url(). */
static int resolve_relative(const char *super, const char *raw, char *out, size_t cap,
                            struct vk_err *err)
{
    size_t n = strlen(super);
    if (n >= cap)
        return vk_err_set(err, VK_ETOOBIG, "the superproject's url is too long");
    memcpy(out, super, n + 1);
    size_t root = root_len(out);
    while (n > root && out[n - 1] == '/')
        out[--n] = '\0';
    const char *r = raw;
    for (;;) {
        if (strncmp(r, "./", 2) == 0) {
            r += 2;
        } else if (strncmp(r, "../", 3) == 0 || strcmp(r, "..") == 0) {
            r += r[2] ? 3 : 2;
            size_t cut = n;
            while (cut > root && out[cut - 1] != '/')
                cut--;
            if (cut <= root && n <= root)
                return vk_err_set(err, VK_EPERM,
                                  "its relative url goes above the superproject's host");
            while (cut > root && out[cut - 1] == '/')
                cut--;
            n = cut;
            out[n] = '\0';
        } else {
            break;
        }
    }
    bool sep = n > 0 && out[n - 1] != '/' && out[n - 1] != ':';
    int w = snprintf(out + n, cap - n, "%s%s", sep && *r ? "/" : "", r);
    if (w < 0 || (size_t)w >= cap - n)
        return vk_err_set(err, VK_ETOOBIG, "its url is too long");
    return 0;
}

int vk_git_submodule_url(const char *super_url, const char *raw, char *out, size_t cap,
                         struct vk_err *err)
{
    if (!raw || !*raw)
        return vk_err_set(err, VK_EPERM, "it has no url");
    if (strstr(raw, "::"))
        return vk_err_set(err, VK_EPERM,
                          "'<transport>::' urls (ext::, fd::) run commands and are refused");
    if (raw[0] == '-')
        return vk_err_set(err, VK_EPERM, "a url starting with '-' would be a git option");
    if (strncmp(raw, "./", 2) == 0 || strncmp(raw, "../", 3) == 0) {
        int rc = resolve_relative(super_url, raw, out, cap, err);
        if (rc < 0)
            return rc;
    } else {
        int w = snprintf(out, cap, "%s", raw);
        if (w < 0 || (size_t)w >= cap)
            return vk_err_set(err, VK_ETOOBIG, "its url is too long");
    }
    if (!vk_git_valid_url(out))
        return vk_err_set(err, VK_EPERM,
                          "not a usable git url (no spaces or control characters, at most %d "
                          "bytes)",
                          VK_GIT_MAX_URL);
    const char *sch = strstr(out, "://");
    if (sch) {
        size_t sl = (size_t)(sch - out);
        bool net = (sl == 5 && strncmp(out, "https", 5) == 0) ||
                   (sl == 4 && strncmp(out, "http", 4) == 0) ||
                   (sl == 3 && strncmp(out, "ssh", 3) == 0) ||
                   (sl == 3 && strncmp(out, "git", 3) == 0);
        bool file = sl == 4 && strncmp(out, "file", 4) == 0;
        if (!net && !file)
            return vk_err_set(err, VK_EPERM,
                              "the '%.*s' scheme is not allowed (https, http, ssh, git)",
                              (int)(sl > 20 ? 20 : sl), out);
        if (file && !is_local(super_url))
            return vk_err_set(err, VK_EPERM,
                              "a file:// url is allowed only when the superproject is local");
        const char *host = sch + 3;
        const char *slash = strchr(host, '/');
        const char *at = strchr(host, '@');
        if (at && (!slash || at < slash))
            host = at + 1;
        if (host[0] == '-')
            return vk_err_set(err, VK_EPERM, "a host starting with '-' would be an ssh option");
        return 0;
    }
    if (out[0] == '/') {
        if (!is_local(super_url))
            return vk_err_set(err, VK_EPERM,
                              "a local path is allowed only when the superproject is local");
        return 0;
    }
    size_t root = root_len(out);
    if (root == 0)
        return vk_err_set(err, VK_EPERM, "not a url (a relative url starts with './' or '../')");
    const char *at = memchr(out, '@', root);
    const char *host = at ? at + 1 : out;
    if (host[0] == '-' || host[0] == ':')
        return vk_err_set(err, VK_EPERM, "a host starting with '-' would be an ssh option");
    return 0;
}

/* ---------------------------------------------------------------- .gitmodules */

/* `s` for a message or the log: control characters (a hostile name's terminal escapes)
 * become '?'. */
static const char *printable(const char *s, char *out, size_t cap)
{
    size_t i = 0;
    for (; s[i] && i + 1 < cap; i++)
        out[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
    out[i] = '\0';
    return out;
}

struct entry {
    const char *name; /* point into the listing's buffer */
    const char *path;
    const char *url;
};

struct walk {
    struct vk_git_mirror *m; /* runs the git commands; its options open the others */
    bool recursive;
    unsigned count; /* submodules checked out so far */
    vk_git_submodule_fn cb;
    void *cb_ctx;
    const char *top; /* the top work tree, for the paths told to cb */
};

/* Split `git config --null --list` output ("key\nvalue\0"…) into entries by name. */
static int parse_list(char *data, size_t len, struct entry *e, size_t *n, struct vk_err *err)
{
    *n = 0;
    for (char *p = data; p < data + len;) {
        char *rec_end = memchr(p, '\0', (size_t)(data + len - p));
        if (!rec_end)
            break;
        char *nl = strchr(p, '\n');
        char *val = nl ? nl + 1 : NULL;
        if (nl)
            *nl = '\0';
        char *next = rec_end + 1;
        if (val && strncmp(p, "submodule.", 10) == 0) {
            char *name = p + 10;
            char *dot = strrchr(name, '.');
            if (dot && dot > name) {
                *dot = '\0';
                const char *var = dot + 1;
                size_t i = 0;
                while (i < *n && strcmp(e[i].name, name) != 0)
                    i++;
                if (i == *n) {
                    for (char *q = name; *q; q++) /* it is shown in messages */
                        if ((unsigned char)*q < 0x20 || *q == 0x7f)
                            *q = '?';
                    if (*n >= VK_GIT_MAX_SUBMODULES)
                        return vk_err_set(err, VK_ETOOBIG,
                                          "'.gitmodules' lists more than %d submodules",
                                          VK_GIT_MAX_SUBMODULES);
                    e[i] = (struct entry){.name = name};
                    (*n)++;
                }
                if (strcmp(var, "path") == 0)
                    e[i].path = val;
                else if (strcmp(var, "url") == 0)
                    e[i].url = val;
            }
        }
        p = next;
    }
    return 0;
}

/* The gitlink at `path` in HEAD of `ws` into `sha`; false when there is none. */
static int gitlink(struct walk *w, const char *ws, const char *path, char sha[VK_GIT_SHA_LEN],
                   bool *found, struct vk_err *err)
{
    char *argv[] = {NULL, "--literal-pathspecs", "-C", (char *)ws, "ls-tree", "-z", "HEAD",
                    "--", (char *)path,          NULL};
    struct vk_buf o = VK_BUF_INIT(1u << 16);
    *found = false;
    int rc = vk__git_run_ok(w->m, "ls-tree", argv, &o, VK_EIO, err);
    /* "160000 commit <sha>\t<path>\0" */
    for (size_t off = 0; rc == 0 && off < o.len;) {
        const char *rec = o.data + off;
        size_t rl = strnlen(rec, o.len - off);
        const char *tab = memchr(rec, '\t', rl);
        if (tab && strncmp(rec, "160000 commit ", 14) == 0 && strcmp(tab + 1, path) == 0) {
            size_t sl = (size_t)(tab - (rec + 14));
            if (sl < VK_GIT_SHA_LEN) {
                memcpy(sha, rec + 14, sl);
                sha[sl] = '\0';
                *found = vk_git_valid_sha(sha);
            }
        }
        off += rl + 1;
    }
    vk_buf_release(&o);
    return rc;
}

/* Each component of `path` under `ws` is a real directory (none a symbolic link, which
 * would carry the checkout out of the work tree); the last one is made when missing and
 * must be empty. */
static int check_dir(const char *ws, const char *path, char *full, size_t cap, struct vk_err *err)
{
    int w = snprintf(full, cap, "%s/%s", ws, path);
    if (w < 0 || (size_t)w >= cap)
        return vk_err_set(err, VK_ETOOBIG, "its path is too long");
    for (char *s = full + strlen(ws) + 1;; s++) {
        if (*s != '/' && *s != '\0')
            continue;
        char c = *s;
        *s = '\0';
        struct stat st;
        int r = lstat(full, &st);
        if (r < 0 && errno == ENOENT && c == '\0' && mkdir(full, 0755) == 0)
            r = lstat(full, &st);
        if (r < 0 || S_ISLNK(st.st_mode) || !S_ISDIR(st.st_mode)) {
            *s = c;
            return vk_err_set(err, VK_EPERM,
                              "its path '%.200s' is not a directory of the work "
                              "tree (a symbolic link or a file is on the way)",
                              path);
        }
        *s = c;
        if (c == '\0')
            break;
    }
    char gitdir[VK_GIT_MAX_PATH + 700];
    w = snprintf(gitdir, sizeof gitdir, "%s/.git", full);
    if (w > 0 && (size_t)w < sizeof gitdir && access(gitdir, F_OK) == 0)
        return vk_err_set(err, VK_EPERM, "its path '%.200s' is already a repository", path);
    return 0;
}

/* Say which submodule failed in front of what failed. */
static int named(struct vk_err *err, int rc, const char *name)
{
    if (!err)
        return rc;
    char why[sizeof(err->msg)];
    snprintf(why, sizeof why, "%s", err->msg);
    return vk_err_set(err, rc, "submodule '%.80s': %s", name, why);
}

static int walk_tree(struct walk *w, const char *super_url, const char *ws, unsigned level,
                     struct vk_err *err);

/* One submodule: check its URL and path, find its commit, mirror it and check it out. */
static int one(struct walk *w, const char *super_url, const char *ws, unsigned level,
               const struct entry *e, struct vk_err *err)
{
    char url[VK_GIT_MAX_URL + 1], shown[VK_GIT_MAX_URL + 8];
    if (!e->path)
        return vk_err_set(err, VK_EPERM, "it has no path");
    char pshown[240];
    if (!vk_git_valid_submodule_path(e->path))
        return vk_err_set(err, VK_EPERM,
                          "its path '%.200s' is refused: a submodule's path stays inside the "
                          "work tree (relative, no '..' or '.git' segment, not starting with "
                          "'-')",
                          printable(e->path, pshown, sizeof pshown));
    struct vk_err why;
    vk_err_clear(&why);
    int rc = vk_git_submodule_url(super_url, e->url, url, sizeof url, &why);
    if (rc < 0) {
        char ushown[240];
        vk_git_redact_url(e->url ? e->url : "", shown, sizeof shown);
        return vk_err_set(err, rc, "its url '%.200s' is refused: %s",
                          printable(shown, ushown, sizeof ushown), why.msg);
    }
    char sha[VK_GIT_SHA_LEN];
    bool found = false;
    rc = gitlink(w, ws, e->path, sha, &found, err);
    if (rc < 0 || !found)
        return rc; /* listed but not a submodule of this commit: git leaves it out too */
    if (++w->count > VK_GIT_MAX_SUBMODULES)
        return vk_err_set(err, VK_ETOOBIG, "more than %d submodules to check out",
                          VK_GIT_MAX_SUBMODULES);
    char dir[VK_GIT_MAX_PATH + 600];
    rc = check_dir(ws, e->path, dir, sizeof dir, err);
    if (rc < 0)
        return rc;
    struct vk_git_opts o;
    (void)vk__git_opts(w->m, &o);
    struct vk_git_mirror *sm = NULL;
    char full[VK_GIT_SHA_LEN];
    rc = vk_git_mirror_open(vk__git_cache_dir(w->m), url, &o, &sm, err);
    if (rc == 0)
        rc = vk_git_resolve_commit(sm, sha, full, err);
    if (rc == 0)
        rc = vk_git_checkout(sm, full, dir, err);
    if (rc == 0 && w->cb) {
        vk_git_redact_url(url, shown, sizeof shown);
        rc = w->cb(w->cb_ctx, e->name, dir + strlen(w->top) + 1, shown, full,
                   vk_git_mirror_path(sm));
        if (rc < 0)
            rc = vk_err_set(err, rc, "out of memory");
    }
    vk_git_mirror_free(sm);
    if (rc < 0)
        return rc;
    if (w->recursive)
        rc = walk_tree(w, url, dir, level + 1, err);
    return rc;
}

/* The submodules of the work tree `ws` (of the repository at `super_url`), `level` deep. */
static int walk_tree(struct walk *w, const char *super_url, const char *ws, unsigned level,
                     struct vk_err *err)
{
    char *probe[] = {NULL, "-C", (char *)ws, "cat-file", "-e", "HEAD:.gitmodules", NULL};
    int status = -1;
    int rc = vk__git_run(w->m, "cat-file", probe, NULL, NULL, &status, err);
    if (rc < 0 || status != 0)
        return rc; /* no .gitmodules: no submodules */
    char *list[] = {NULL,     "-C", (char *)ws, "config", "--null", "--blob", "HEAD:.gitmodules",
                    "--list", NULL};
    struct vk_buf o = VK_BUF_INIT(MAX_GITMODULES);
    struct entry e[VK_GIT_MAX_SUBMODULES];
    size_t n = 0;
    rc = vk__git_run_ok(w->m, "config", list, &o, VK_EIO, err);
    if (rc == VK_ETOOBIG)
        rc = vk_err_set(err, VK_ETOOBIG, "'.gitmodules' is larger than %u bytes", MAX_GITMODULES);
    if (rc == 0)
        rc = parse_list(o.data, o.len, e, &n, err);
    if (rc == 0 && n > 0 && level >= VK_GIT_MAX_SUBMODULE_DEPTH)
        rc = vk_err_set(err, VK_ETOOBIG, "submodules nested deeper than %d levels",
                        VK_GIT_MAX_SUBMODULE_DEPTH);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = one(w, super_url, ws, level, &e[i], err);
        if (rc < 0 && rc != VK_EAGAIN && !(err && strncmp(err->msg, "submodule '", 11) == 0))
            rc = named(err, rc, e[i].name);
    }
    vk_buf_release(&o);
    return rc;
}

int vk_git_checkout_submodules(struct vk_git_mirror *m, const char *super_url,
                               const char *workspace, bool recursive, vk_git_submodule_fn cb,
                               void *cb_ctx, struct vk_err *err)
{
    if (!super_url || !vk_git_valid_url(super_url))
        return vk_err_set(err, VK_EINVAL, "invalid repository url");
    if (!workspace || workspace[0] != '/')
        return vk_err_set(err, VK_EINVAL, "the workspace must be an absolute path");
    struct walk w = {.m = m, .recursive = recursive, .cb = cb, .cb_ctx = cb_ctx, .top = workspace};
    return walk_tree(&w, super_url, workspace, 0, err);
}
