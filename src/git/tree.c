/*
 * tree.c — reads at a commit with one git command each: the files under a glob
 * (ls-tree), one file (cat-file blob) and the paths two commits differ in.
 * Each runs first and syncs the mirror only when git cannot find the commit.
 */
#include "git_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int vk_git_list_files(struct vk_git_mirror *m, const char *sha, const char *glob,
                      struct vk_git_paths *out, struct vk_err *err)
{
    if (!glob)
        glob = VK_GIT_DEFAULT_GLOB;
    size_t pn = 0;
    int rc = vk__git_check_glob(glob, &pn, err);
    if (rc)
        return rc;
    if (!vk_git_valid_sha(sha))
        return vk_err_set(err, VK_EINVAL, "invalid commit id '%.80s'", sha ? sha : "");
    /* list only below the fixed directory part of the glob (".vulcan" for ".vulcan/x") */
    char prefix[VK__GIT_MAX_GLOB + 1];
    memcpy(prefix, glob, pn);
    prefix[pn] = '\0';
    char *argv[] = {NULL, "--literal-pathspecs", "-C", m->dir,        "ls-tree",
                    "-r", "--name-only",         "-z", "--full-tree", (char *)sha,
                    "--", pn ? prefix : NULL,    NULL};
    struct vk_buf o = VK_BUF_INIT(VK_GIT_MAX_LIST);
    /* the commit is usually there: list first, sync only when that fails */
    rc = VK_ENOTFOUND;
    if (vk__git_mirror_exists(m))
        rc = vk__git_run_ok(m, "ls-tree", argv, &o, VK_EIO, err);
    if (rc == VK_EIO || rc == VK_ENOTFOUND) {
        unsigned before = vk__git_syncs(m);
        int src = vk_git_mirror_sync(m, sha, err);
        if (src < 0) {
            rc = src;
        } else if (rc == VK_ENOTFOUND || vk__git_syncs(m) != before) {
            vk_buf_reset(&o);
            rc = vk__git_run_ok(m, "ls-tree", argv, &o, VK_EIO, err);
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
    int rc = vk__git_run_ok(m, "cat-file", argv, &o, VK_ENOTFOUND, err);
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
    if (!vk_git_valid_path(path))
        return vk_err_set(err, VK_EINVAL, "invalid file path '%.200s'", path ? path : "");
    if (!vk_git_valid_sha(sha))
        return vk_err_set(err, VK_EINVAL, "invalid commit id '%.80s'", sha ? sha : "");
    /* the commit is usually there: read first, sync only when that fails */
    int rc = VK_ENOTFOUND;
    if (vk__git_mirror_exists(m)) {
        rc = cat_blob(m, sha, path, out, err);
        if (rc != VK_ENOTFOUND)
            return rc;
    }
    unsigned before = vk__git_syncs(m);
    int src = vk_git_mirror_sync(m, sha, err);
    if (src < 0)
        return src;
    if (rc == VK_ENOTFOUND && vk__git_syncs(m) == before)
        return rc; /* the commit was there all along: no such file */
    return cat_blob(m, sha, path, out, err);
}

int vk_git_changed_paths(struct vk_git_mirror *m, const char *before, const char *after,
                         struct vk_git_paths *out, struct vk_err *err)
{
    bool fresh = !before || vk__git_zero(before);
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
        rc = vk__git_run_ok(m, "diff-tree", argv, &o, VK_EIO, err);
    } else {
        char *argv[] = {NULL,           "-C",          m->dir,         "diff",
                        "--name-only",  "-z",          "--no-renames", "--no-ext-diff",
                        (char *)before, (char *)after, "--",           NULL};
        rc = vk__git_run_ok(m, "diff", argv, &o, VK_EIO, err);
    }
    if (rc == 0)
        rc = collect(&o, NULL, out, err);
    vk_buf_release(&o);
    return rc;
}

/* ---------------------------------------------------------------- Commit objects */

static const char *dup(struct vk_pool *pool, const char *s, size_t n, bool *bad)
{
    const char *d = vk_pool_strndup(pool, s, n);
    *bad = *bad || !d;
    return d;
}

int vk__git_commit_parse(const char *data, size_t len, struct vk_pool *pool,
                         struct vk_git_commit *out, struct vk_err *err)
{
    memset(out, 0, sizeof(*out));
    bool bad = false;
    const char *p = data, *end = data + len;
    /* headers, one per line, until an empty line; continuation lines start with ' ' */
    while (p < end && *p != '\n') {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        if ((size_t)(le - p) > 7 && memcmp(p, "author ", 7) == 0 && !out->author) {
            const char *a = p + 7;
            const char *gt = memchr(a, '>', (size_t)(le - a));
            const char *lt = memchr(a, '<', (size_t)(le - a));
            if (gt && lt && lt < gt) {
                out->author = dup(pool, a, (size_t)(gt + 1 - a), &bad);
                size_t nn = (size_t)(lt - a);
                while (nn && a[nn - 1] == ' ')
                    nn--;
                out->author_name = dup(pool, a, nn, &bad);
                out->author_email = dup(pool, lt + 1, (size_t)(gt - lt - 1), &bad);
            }
        }
        p = nl ? nl + 1 : end;
    }
    if (p < end && *p == '\n') {
        p++;
        size_t n = (size_t)(end - p);
        /* no NUL inside: the message is a C string for the rest of us */
        const char *z = memchr(p, '\0', n);
        if (z)
            n = (size_t)(z - p);
        out->message = dup(pool, p, n, &bad);
        const char *nl = memchr(p, '\n', n);
        out->subject = dup(pool, p, nl ? (size_t)(nl - p) : n, &bad);
    }
    return bad ? vk_err_set(err, VK_ENOMEM, "out of memory") : 0;
}
