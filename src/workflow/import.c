/*
 * Imports: `fragment { from "…" }` becomes a sequential group whose children
 * are the imported document's top-level fragment/parallel nodes. This file
 * resolves the location (relative path, file://, http(s)://), detects cycles
 * along the import stack, fetches through opts.fetch and loads the document.
 */
#include "wf_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_LOCATION 2048

/* Lexically normalise a '/'-separated path in place: drop "." and empty
 * segments, fold "x/.." (keeping leading ".." of relative paths). */
static void normalize(char *path)
{
    bool abs = path[0] == '/';
    char *segs[512];
    size_t n = 0;
    char *save = NULL;
    for (char *s = strtok_r(path, "/", &save); s; s = strtok_r(NULL, "/", &save)) {
        if (strcmp(s, ".") == 0)
            continue;
        if (strcmp(s, "..") == 0) {
            if (n > 0 && strcmp(segs[n - 1], "..") != 0) {
                n--;
                continue;
            }
            if (abs)
                continue;
        }
        if (n < VK_ARRAY_LEN(segs))
            segs[n++] = s;
    }
    char out[MAX_LOCATION * 2];
    size_t o = 0;
    if (abs)
        out[o++] = '/';
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(segs[i]);
        if (o + l + 2 >= sizeof(out))
            break;
        if (i)
            out[o++] = '/';
        memcpy(out + o, segs[i], l);
        o += l;
    }
    if (o == 0)
        out[o++] = '.';
    out[o] = '\0';
    memcpy(path, out, o + 1);
}

static bool has_prefix_ci(const char *s, const char *p)
{
    return strncasecmp(s, p, strlen(p)) == 0;
}

/* Base (directory, or URL prefix ending in '/') of a location. */
static const char *base_of(struct vk__wf_loader *L, const char *loc, bool is_url)
{
    const char *slash = strrchr(loc, '/');
    if (is_url) {
        const char *host = strstr(loc, "://");
        host = host ? host + 3 : loc;
        if (!slash || slash < host)
            return vk_pool_strndup(L->pool, "", 0); /* cannot happen: URLs have a path */
        return vk_pool_strndup(L->pool, loc, (size_t)(slash - loc) + 1);
    }
    if (!slash)
        return vk_pool_strndup(L->pool, "", 0);
    if (slash == loc)
        return vk_pool_strndup(L->pool, "/", 1);
    return vk_pool_strndup(L->pool, loc, (size_t)(slash - loc) + 1);
}

static bool url_ok(const char *u)
{
    const char *host = strstr(u, "://") + 3;
    if (*host == '\0' || *host == '/' || *host == '?' || *host == '#')
        return false;
    for (const unsigned char *p = (const unsigned char *)u; *p; p++) {
        if (*p <= 0x20 || *p == 0x7f || *p == '\\')
            return false;
    }
    return true;
}

/* Turn an URL's path "…/a/../b" into "…/b" (after the authority only). */
static void normalize_url(char *u)
{
    char *host = strstr(u, "://") + 3;
    char *path = strchr(host, '/');
    if (!path)
        return;
    char *q = strpbrk(path, "?#");
    char tail[MAX_LOCATION + 1] = "";
    if (q) {
        snprintf(tail, sizeof(tail), "%s", q);
        *q = '\0';
    }
    bool dir = path[strlen(path) - 1] == '/';
    normalize(path);
    size_t l = strlen(path);
    if (dir && l > 1 && l + 1 < MAX_LOCATION)
        strcat(path, "/");
    if (tail[0] && strlen(u) + strlen(tail) < MAX_LOCATION * 2)
        strcat(u, tail);
}

/*
 * Resolve `ref` against the current document. On success *loc (pool) is the
 * path or URL to fetch and *is_url says which. `v` is the `from` value (errors).
 */
static int resolve(struct vk__wf_loader *L, const struct vk_kdl_value *v, const char *ref,
                   const char **loc, bool *is_url)
{
    const struct vk__wf_file *cur = L->cur;
    char buf[MAX_LOCATION * 2 + 8];
    if (strlen(ref) > MAX_LOCATION)
        return vk__wf_fail(L, VK_WF_ERR_INVALID_URL, VK_EPARSE, VK__WF_AT(v->pos),
                           "import location longer than %d bytes", MAX_LOCATION);
    if (strlen(cur->base) + strlen(ref) > MAX_LOCATION)
        return vk__wf_fail(L, VK_WF_ERR_INVALID_URL, VK_EPARSE, VK__WF_AT(v->pos),
                           "import location longer than %d bytes once resolved", MAX_LOCATION);
    const char *sep = strstr(ref, "://");
    const char *colon = strchr(ref, ':');
    bool scheme = sep && colon == sep;
    *is_url = false;
    if (scheme && (has_prefix_ci(ref, "http://") || has_prefix_ci(ref, "https://"))) {
        bool plain = has_prefix_ci(ref, "http://");
        if (plain && !L->opts.allow_http)
            return vk__wf_fail(L, VK_WF_ERR_INVALID_URL, VK_EPARSE, VK__WF_AT(v->pos),
                               "plain http:// imports are not allowed; use https://");
        if (!url_ok(ref))
            return vk__wf_fail(L, VK_WF_ERR_INVALID_URL, VK_EPARSE, VK__WF_AT(v->pos),
                               "invalid URL '%s'", ref);
        snprintf(buf, sizeof(buf), "%s", ref);
        normalize_url(buf);
        *is_url = true;
    } else if (scheme && has_prefix_ci(ref, "file://")) {
        const char *p = ref + 7;
        if (has_prefix_ci(p, "localhost/"))
            p += 9;
        if (p[0] != '/')
            return vk__wf_fail(L, VK_WF_ERR_INVALID_URL, VK_EPARSE, VK__WF_AT(v->pos),
                               "invalid file URL '%s': expected file:///absolute/path", ref);
        if (cur->is_url)
            return vk__wf_fail(L, VK_WF_ERR_INVALID_URL, VK_EPARSE, VK__WF_AT(v->pos),
                               "a document fetched from a URL cannot import local file '%s'", ref);
        snprintf(buf, sizeof(buf), "%s", p);
        normalize(buf);
    } else if (scheme) {
        return vk__wf_fail(L, VK_WF_ERR_INVALID_URL, VK_EPARSE, VK__WF_AT(v->pos),
                           "unsupported import location '%s'; expected a relative path, "
                           "file://, https:// or http://",
                           ref);
    } else if (cur->is_url) {
        if (ref[0] == '/' || strchr(ref, '?') || strchr(ref, '#'))
            return vk__wf_fail(L, VK_WF_ERR_INVALID_URL, VK_EPARSE, VK__WF_AT(v->pos),
                               "a document fetched from a URL can import only relative paths "
                               "or URLs, not '%s'",
                               ref);
        snprintf(buf, sizeof(buf), "%s%s", cur->base, ref);
        if (!url_ok(buf))
            return vk__wf_fail(L, VK_WF_ERR_INVALID_URL, VK_EPARSE, VK__WF_AT(v->pos),
                               "invalid URL '%s'", buf);
        normalize_url(buf);
        *is_url = true;
    } else {
        if (ref[0] == '/')
            snprintf(buf, sizeof(buf), "%s", ref);
        else
            snprintf(buf, sizeof(buf), "%s%s", cur->base, ref);
        normalize(buf);
    }
    *loc = vk_pool_strndup(L->pool, buf, strlen(buf));
    if (!*loc)
        return vk__wf_fail(L, VK_WF_ERR_NOMEM, VK_ENOMEM, 0, 0, "out of memory");
    return 0;
}

/* "a.kdl → b.kdl → a.kdl": the stack from the first `key` up to the current file, then `loc`. */
static int cycle_error(struct vk__wf_loader *L, const struct vk_kdl_value *v,
                       const struct vk__wf_file *first, const char *loc)
{
    const struct vk__wf_file *stack[VK_WF_MAX_IMPORT_DEPTH * 4 + 2] = {NULL};
    size_t n = 0;
    for (const struct vk__wf_file *f = L->cur; f && n < VK_ARRAY_LEN(stack); f = f->parent) {
        stack[n++] = f;
        if (f == first)
            break;
    }
    char msg[900];
    size_t o = 0;
    for (size_t i = n; i-- > 0;) {
        int w = snprintf(msg + o, sizeof(msg) - o, "%s \u2192 ", stack[i]->name);
        if (w < 0 || (size_t)w >= sizeof(msg) - o)
            break;
        o += (size_t)w;
    }
    snprintf(msg + o, sizeof(msg) - o, "%s", loc);
    return vk__wf_fail(L, VK_WF_ERR_CYCLE, VK_ECYCLE, VK__WF_AT(v->pos), "circular import: %s",
                       msg);
}

static int fetch_error(struct vk__wf_loader *L, const struct vk_kdl_value *v, const char *loc,
                       int rc, const struct vk_err *e)
{
    const char *what = rc == VK_EPERM ? "import refused" : "cannot import";
    if (rc == VK_ENOMEM)
        return vk__wf_fail(L, VK_WF_ERR_NOMEM, VK_ENOMEM, 0, 0, "out of memory");
    return vk__wf_fail(L, VK_WF_ERR_FETCH, rc, VK__WF_AT(v->pos), "%s '%s': %s", what, loc,
                       e->msg[0] ? e->msg : vk_err_name(rc));
}

int vk__wf_load_document(struct vk__wf_loader *L, const struct vk_kdl_doc *doc);

/* Load an imported document's text (already fetched) as the children of g. */
static int load_imported(struct vk__wf_loader *L, struct vk__wf_file *file,
                         const struct vk_kdl_node *from, struct vk_wf_fragment *g)
{
    struct vk_kdl_doc *doc = NULL;
    struct vk_err e;
    vk_err_clear(&e);
    struct vk__wf_file *saved = L->cur;
    L->cur = file;
    int rc = vk_kdl_parse(file->src, file->len, &doc, &e);
    if (rc == VK_ENOMEM) {
        rc = vk__wf_fail(L, VK_WF_ERR_NOMEM, VK_ENOMEM, 0, 0, "out of memory");
        goto out;
    }
    if (rc < 0) {
        rc = vk__wf_fail(L, VK_WF_ERR_SYNTAX, VK_EPARSE, e.line, e.col, "%s", e.msg);
        goto out;
    }
    for (const struct vk_kdl_node *c = doc->nodes; c; c = c->next) {
        if (!vk_kdl_str_eq(c->name, "fragment") && !vk_kdl_str_eq(c->name, "parallel")) {
            rc = vk__wf_fail(L, VK_WF_ERR_UNKNOWN_NODE, VK_EPARSE, VK__WF_AT(c->pos),
                             "unknown node '%s' in an imported file; expected one of: "
                             "fragment, parallel",
                             c->name.ptr);
            goto out;
        }
    }
    rc = vk__wf_load_children(L, doc->nodes, g);
    if (rc == 0 && g->nchildren == 0) {
        L->cur = saved;
        rc = vk__wf_fail(L, VK_WF_ERR_MISSING, VK_EPARSE, VK__WF_AT(from->args[0].pos),
                         "imported file '%s' holds no fragments", file->name);
    }
out:
    L->cur = saved;
    vk_kdl_doc_free(doc);
    return rc;
}

int vk__wf_load_import(struct vk__wf_loader *L, const struct vk_kdl_node *n,
                       const struct vk_kdl_value *v, struct vk_wf_fragment *g)
{
    const char *loc = NULL;
    bool is_url = false;
    int rc = resolve(L, v, g->import_from, &loc, &is_url);
    if (rc < 0)
        return rc;
    /* Identity for cycles: the real path of a file when it exists. */
    const char *key = loc;
    char *real = is_url ? NULL : realpath(loc, NULL);
    if (real) {
        key = vk_pool_strndup(L->pool, real, strlen(real));
        free(real);
        if (!key)
            return vk__wf_fail(L, VK_WF_ERR_NOMEM, VK_ENOMEM, 0, 0, "out of memory");
    }
    for (const struct vk__wf_file *f = L->cur; f; f = f->parent) {
        if (f->key && strcmp(f->key, key) == 0)
            return cycle_error(L, v, f, loc);
    }
    if (L->cur->depth + 1 > (unsigned)L->opts.max_import_depth)
        return vk__wf_fail(L, VK_WF_ERR_LIMIT, VK_ETOOBIG, VK__WF_AT(v->pos),
                           "imports nested deeper than %d levels", L->opts.max_import_depth);
    if (++L->nimports > L->opts.max_imports)
        return vk__wf_fail(L, VK_WF_ERR_LIMIT, VK_ETOOBIG, VK__WF_AT(v->pos),
                           "more than %zu imports", L->opts.max_imports);

    struct vk_wf_fetch_req req = {
        .location = loc,
        .is_url = is_url,
        .max_size = L->opts.max_import_size,
        .timeout_ms = L->opts.import_timeout_ms,
        .max_redirects = L->opts.max_redirects,
        .allow_http = L->opts.allow_http,
    };
    struct vk_buf body = VK_BUF_INIT(L->opts.max_import_size);
    struct vk_err e;
    vk_err_clear(&e);
    rc = L->opts.fetch(L->opts.fetch_ctx, &req, &body, &e);
    if (rc < 0) {
        vk_buf_release(&body);
        return fetch_error(L, v, loc, rc, &e);
    }
    if (body.len > L->opts.max_import_size) {
        vk_buf_release(&body);
        e.msg[0] = '\0';
        snprintf(e.msg, sizeof(e.msg), "larger than %zu bytes", L->opts.max_import_size);
        return fetch_error(L, v, loc, VK_ETOOBIG, &e);
    }
    struct vk__wf_file file = {
        .name = loc,
        .src = body.data,
        .len = body.len,
        .source_url = loc,
        .base = base_of(L, loc, is_url),
        .is_url = is_url,
        .key = key,
        .parent = L->cur,
        .depth = L->cur->depth + 1,
    };
    if (!file.base) {
        vk_buf_release(&body);
        return vk__wf_fail(L, VK_WF_ERR_NOMEM, VK_ENOMEM, 0, 0, "out of memory");
    }
    g->source_url = L->cur->source_url;
    rc = load_imported(L, &file, n, g);
    vk_buf_release(&body);
    return rc;
}
