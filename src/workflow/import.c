/*
 * Imports: `fragment { from "…" }` becomes a sequential group whose children
 * are the imported document's top-level fragment/parallel nodes. This file
 * resolves the location (relative path, file://, http(s)://), detects cycles
 * along the import stack, fetches through opts.fetch and loads the document.
 *
 * Parameters: the imported file declares `param "NAME"` (optionally `default="…"`) at its
 * top; the import gives values in `from "…" { with { NAME "value" } }`; `{with.NAME}` in
 * the imported file's strings is filled in (vk__wf_file.with). A value for an undeclared
 * name, or no value for a parameter without a default, is an error at the import.
 */
#include "wf_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define MAX_LOCATION 2048
#define MAX_PARAMS 64 /* parameters of one imported file */
#define MAX_PARAM_NAME 64

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

/* A parameter name: a letter or '_', then letters, digits, '_' or '-'. */
static bool param_name_ok(struct vk_kdl_str n)
{
    if (n.len == 0 || n.len > MAX_PARAM_NAME ||
        !(isalpha((unsigned char)n.ptr[0]) || n.ptr[0] == '_'))
        return false;
    for (size_t i = 1; i < n.len; i++)
        if (!isalnum((unsigned char)n.ptr[i]) && n.ptr[i] != '_' && n.ptr[i] != '-')
            return false;
    return true;
}

/* The values an import gives: `with { NAME "value" … }` in the block of `from`. Loaded in the
 * importing file (its own `{with.…}` and `{matrix.…}` fill in). */
struct given {
    const struct vk_kdl_node *nodes[MAX_PARAMS];
    const char *values[MAX_PARAMS];
    size_t n;
};

static int load_with(struct vk__wf_loader *L, const struct vk_kdl_node *from, struct given *g)
{
    const struct vk_kdl_node *with = NULL;
    for (const struct vk_kdl_node *c = from->children; c; c = c->next) {
        if (!vk_kdl_str_eq(c->name, "with"))
            return vk__wf_fail(L, VK_WF_ERR_UNKNOWN_NODE, VK_EPARSE, VK__WF_AT(c->pos),
                               "unknown node '%s' in 'from'; expected: with", c->name.ptr);
        if (with)
            return vk__wf_fail(L, VK_WF_ERR_DUPLICATE, VK_EPARSE, VK__WF_AT(c->pos),
                               "'with' given twice (first at line %u)", (unsigned)with->pos.line);
        with = c;
    }
    if (!with)
        return 0;
    int rc = vk__wf_no_args(L, with);
    if (rc == 0)
        rc = vk__wf_no_props(L, with);
    if (rc < 0)
        return rc;
    for (const struct vk_kdl_node *c = with->children; c; c = c->next) {
        if (!param_name_ok(c->name))
            return vk__wf_fail(L, VK_WF_ERR_INVALID_VALUE, VK_EPARSE, VK__WF_AT(c->pos),
                               "invalid parameter name '%s'; expected a letter or '_', then "
                               "letters, digits, '_' or '-' (at most %d)",
                               c->name.ptr, MAX_PARAM_NAME);
        for (size_t i = 0; i < g->n; i++)
            if (vk_kdl_str_eq(c->name, g->nodes[i]->name.ptr))
                return vk__wf_fail(L, VK_WF_ERR_DUPLICATE, VK_EPARSE, VK__WF_AT(c->pos),
                                   "parameter '%s' given twice (first at line %u)", c->name.ptr,
                                   (unsigned)g->nodes[i]->pos.line);
        if (g->n == MAX_PARAMS)
            return vk__wf_fail(L, VK_WF_ERR_LIMIT, VK_ETOOBIG, VK__WF_AT(c->pos),
                               "more than %d parameters", MAX_PARAMS);
        rc = vk__wf_one_string(L, c, &g->values[g->n]);
        if (rc < 0)
            return rc;
        g->nodes[g->n++] = c;
    }
    return 0;
}

/* The imported file's `param` declarations (in file order) with the given values or their
 * defaults, into *cell; `rest` gets the document's other top-level nodes. Declarations are
 * checked in the imported file; what the import gave, at the import (`importer`). */
static int bind_params(struct vk__wf_loader *L, struct vk__wf_file *importer,
                       const struct vk_kdl_node *from, const struct vk_kdl_doc *doc,
                       const struct given *g, struct vk__wf_cell *cell,
                       const struct vk_kdl_node **rest)
{
    const struct vk_kdl_node *decl[MAX_PARAMS];
    const char *defaults[MAX_PARAMS];
    size_t n = 0;
    struct vk_kdl_node *first = NULL, **tail = &first;
    for (const struct vk_kdl_node *c = doc->nodes; c; c = c->next) {
        if (!vk_kdl_str_eq(c->name, "param")) {
            struct vk_kdl_node *copy = vk_pool_alloc(L->pool, sizeof(*copy));
            if (!copy)
                return vk__wf_fail(L, VK_WF_ERR_NOMEM, VK_ENOMEM, 0, 0, "out of memory");
            *copy = *c;
            copy->next = NULL;
            *tail = copy;
            tail = &copy->next;
            continue;
        }
        int rc = vk__wf_no_children(L, c);
        if (rc < 0)
            return rc;
        if (c->nargs != 1 || c->args[0].kind != VK_KDL_STRING || !param_name_ok(c->args[0].str))
            return vk__wf_fail(L, VK_WF_ERR_INVALID_VALUE, VK_EPARSE,
                               VK__WF_AT(c->nargs ? c->args[0].pos : c->pos),
                               "'param' takes one name: a letter or '_', then letters, digits, "
                               "'_' or '-' (param \"target\" default=\"x86_64\")");
        for (size_t i = 0; i < c->nprops; i++)
            if (!vk_kdl_str_eq(c->props[i].key, "default"))
                return vk__wf_fail(
                    L, VK_WF_ERR_INVALID_VALUE, VK_EPARSE, VK__WF_AT(c->props[i].pos),
                    "unknown property '%s' of 'param'; expected: default", c->props[i].key.ptr);
        for (size_t i = 0; i < n; i++)
            if (vk_kdl_str_eq(c->args[0].str, decl[i]->args[0].str.ptr))
                return vk__wf_fail(L, VK_WF_ERR_DUPLICATE, VK_EPARSE, VK__WF_AT(c->pos),
                                   "parameter '%s' declared twice (first at line %u)",
                                   c->args[0].str.ptr, (unsigned)decl[i]->pos.line);
        if (n == MAX_PARAMS)
            return vk__wf_fail(L, VK_WF_ERR_LIMIT, VK_ETOOBIG, VK__WF_AT(c->pos),
                               "more than %d parameters", MAX_PARAMS);
        defaults[n] = NULL;
        const struct vk_kdl_prop *d = vk_kdl_prop_get(c, "default");
        if (d && (rc = vk__wf_string_value(L, c, &d->value, &defaults[n])) < 0)
            return rc;
        decl[n++] = c;
    }
    *rest = first;
    cell->keys = vk_pool_alloc(L->pool, (n ? n : 1) * sizeof(*cell->keys));
    cell->values = vk_pool_alloc(L->pool, (n ? n : 1) * sizeof(*cell->values));
    if (!cell->keys || !cell->values)
        return vk__wf_fail(L, VK_WF_ERR_NOMEM, VK_ENOMEM, 0, 0, "out of memory");
    cell->n = n;
    struct vk__wf_file *file = L->cur;
    L->cur = importer; /* what follows is the import's fault */
    int rc = 0;
    for (size_t j = 0; rc == 0 && j < g->n; j++) {
        size_t i = 0;
        while (i < n && !vk_kdl_str_eq(g->nodes[j]->name, decl[i]->args[0].str.ptr))
            i++;
        if (i == n) {
            struct vk_buf known = VK_BUF_INIT(VK_MAX_SMALL);
            for (size_t k = 0;
                 k < n && vk_buf_addf(&known, "%s%s", k ? ", " : "", decl[k]->args[0].str.ptr) == 0;
                 k++)
                ;
            rc = vk__wf_fail(L, VK_WF_ERR_INVALID_VALUE, VK_EPARSE, VK__WF_AT(g->nodes[j]->pos),
                             "unknown parameter '%s'; '%s' declares: %s", g->nodes[j]->name.ptr,
                             file->name, known.len ? known.data : "(none)");
            vk_buf_release(&known);
        }
    }
    for (size_t i = 0; rc == 0 && i < n; i++) {
        cell->keys[i] = decl[i]->args[0].str.ptr;
        cell->values[i] = defaults[i];
        for (size_t j = 0; j < g->n; j++)
            if (vk_kdl_str_eq(g->nodes[j]->name, cell->keys[i]))
                cell->values[i] = g->values[j];
        if (!cell->values[i])
            rc = vk__wf_fail(L, VK_WF_ERR_MISSING, VK_EPARSE, VK__WF_AT(from->args[0].pos),
                             "'%s' needs parameter '%s': from \"…\" { with { %s \"…\" } }",
                             file->name, cell->keys[i], cell->keys[i]);
    }
    for (size_t i = 0; rc == 0 && i < n; i++) { /* the names live in the doc, freed soon */
        cell->keys[i] = vk_pool_strndup(L->pool, cell->keys[i], strlen(cell->keys[i]));
        if (!cell->keys[i])
            rc = vk__wf_fail(L, VK_WF_ERR_NOMEM, VK_ENOMEM, 0, 0, "out of memory");
    }
    L->cur = file;
    return rc;
}

/* Load an imported document's text (already fetched) as the children of g. */
static int load_imported(struct vk__wf_loader *L, struct vk__wf_file *file,
                         const struct vk_kdl_node *from, const struct given *given,
                         struct vk__wf_cell *params, struct vk_wf_fragment *g)
{
    struct vk_kdl_doc *doc = NULL;
    struct vk_err e;
    vk_err_clear(&e);
    struct vk__wf_file *saved = L->cur;
    L->cur = file;
    const struct vk_kdl_node *nodes = NULL;
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
        if (!vk_kdl_str_eq(c->name, "fragment") && !vk_kdl_str_eq(c->name, "parallel") &&
            !vk_kdl_str_eq(c->name, "param")) {
            rc = vk__wf_fail(L, VK_WF_ERR_UNKNOWN_NODE, VK_EPARSE, VK__WF_AT(c->pos),
                             "unknown node '%s' in an imported file; expected one of: "
                             "fragment, parallel, param",
                             c->name.ptr);
            goto out;
        }
    }
    rc = bind_params(L, saved, from, doc, given, params, &nodes);
    if (rc < 0)
        goto out;
    file->with = params;
    rc = vk__wf_load_children(L, nodes, g);
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
    struct given given = {.n = 0};
    int rc = load_with(L, n, &given);
    if (rc == 0)
        rc = resolve(L, v, g->import_from, &loc, &is_url);
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
    struct vk__wf_cell params = {0}; /* lives as long as `file` */
    rc = load_imported(L, &file, n, &given, &params, g);
    vk_buf_release(&body);
    return rc;
}
