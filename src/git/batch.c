/*
 * batch.c — vk_git_read_files(): the commit, the trees a glob can match in and
 * the matching blobs, all through one `git cat-file --batch` process (the whole
 * git work of a webhook on a warm mirror).
 */
#include "git_int.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

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
    int rc = vk__git_spawn(m, argv, sv[1], po[1], -1, &b->pid, err);
    close(sv[1]);
    close(po[1]);
    b->in = sv[0];
    b->out = po[0];
    b->deadline = vk__git_mono_ms() + m->timeout_ms;
    if (rc)
        batch_end(b);
    return rc;
}

/* Wait until `fd` is ready for `events` or the deadline passes. Returns 0, VK_ETIMEDOUT, VK_EIO. */
static int batch_wait(struct batch *b, int fd, short events, struct vk_err *err)
{
    for (;;) {
        int64_t left = b->deadline - vk__git_mono_ms();
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
    char line[VK_GIT_MAX_PATH + 256];
    size_t nl = strlen(name);
    *missing = false;
    vk_buf_reset(out);
    if (nl == 0 || nl > VK_GIT_MAX_PATH + 128 || memchr(name, '\n', nl))
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
    size_t depth = dir[0] ? vk__git_slashes(dir) + 1 : 0;
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
        if ((!is_tree && !is_file) || strlen(dir) + 1 + nn > VK_GIT_MAX_PATH)
            continue;
        if (is_tree && depth + 1 > w->glob_slashes)
            continue; /* nothing below can match */
        char *path = path_join(&w->pool, dir, name, nn);
        if (!path)
            return vk_err_set(err, VK_ENOMEM, "out of memory");
        if (!vk_git_valid_path(path))
            continue;
        if (is_tree) {
            if (vk_array_grow(&w->dirs, &w->capdirs, w->ndirs + 1, 16, sizeof(*w->dirs)))
                return vk_err_set(err, VK_ENOMEM, "out of memory");
            w->dirs[w->ndirs].path = path;
            memcpy(w->dirs[w->ndirs].oid, oid, sizeof(oid));
            w->ndirs++;
        } else if (vk_glob_match(w->glob, path)) {
            if (vk_array_grow(&w->found, &w->capfound, w->nfound + 1, 16, sizeof(*w->found)))
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
    char name[VK_GIT_MAX_PATH + 80];
    struct vk_buf obj = VK_BUF_INIT(VK_GIT_MAX_LIST);
    int rc;
    snprintf(name, sizeof(name), "%s^{commit}", sha);
    rc = batch_get(b, name, VK_GIT_MAX_MESSAGE, true, type, &obj, missing, err);
    if (rc || *missing)
        goto out;
    rc = vk__git_commit_parse(obj.data, obj.len, &out->pool, &out->commit, err);
    if (rc)
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
        o->data = vk_pool_strndup(&out->pool, blob.data, blob.len);
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

int vk_git_read_files(struct vk_git_mirror *m, const char *sha, const char *glob,
                      struct vk_git_files *out, struct vk_err *err)
{
    if (!glob)
        glob = VK_GIT_DEFAULT_GLOB;
    if (!vk_git_valid_sha(sha))
        return vk_err_set(err, VK_EINVAL, "invalid commit id '%.80s'", sha ? sha : "");
    size_t pn = 0;
    int rc = vk__git_check_glob(glob, &pn, err);
    if (rc)
        return rc;
    char prefix[VK__GIT_MAX_GLOB + 1];
    memcpy(prefix, glob, pn);
    prefix[pn] = '\0';
    if (pn && !vk_git_valid_path(prefix)) {
        out->items = NULL; /* no file of a tree has such a path */
        return 0;
    }
    /* the commit is usually there: ask first, sync (clone or fetch) only when it is not */
    for (int attempt = 0;; attempt++) {
        if (attempt > 0 || !vk__git_mirror_exists(m)) {
            rc = vk_git_mirror_sync(m, sha, err);
            if (rc)
                return rc;
        }
        struct walk w = {.glob = glob,
                         .glob_slashes = strstr(glob, "**") ? SIZE_MAX : vk__git_slashes(glob)};
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
