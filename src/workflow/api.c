/*
 * Public entry points: load a workflow from a file or a buffer, free it,
 * count and walk its fragments.
 */
#include "wf_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int vk__wf_load_document(struct vk__wf_loader *L, const struct vk_kdl_doc *doc);

/* The default workflow name: the file name without directory and extension. */
static const char *default_name(struct vk_pool *pool, const char *file)
{
    if (!file)
        return "workflow";
    const char *b = strrchr(file, '/');
    b = b ? b + 1 : file;
    const char *dot = strrchr(b, '.');
    size_t n = dot && dot != b ? (size_t)(dot - b) : strlen(b);
    if (n == 0)
        return "workflow";
    return vk_pool_strndup(pool, b, n);
}

static void fill_defaults(struct vk_wf_options *o, const struct vk_wf_options *in)
{
    if (in)
        *o = *in;
    else
        memset(o, 0, sizeof(*o));
    if (!o->fetch)
        o->fetch = vk_wf_fetch_default;
    if (o->max_import_size == 0)
        o->max_import_size = VK_WF_MAX_IMPORT_SIZE;
    if (o->import_timeout_ms <= 0)
        o->import_timeout_ms = VK_WF_IMPORT_TIMEOUT_MS;
    if (o->max_redirects == 0 || o->max_redirects > VK_WF_MAX_REDIRECTS)
        o->max_redirects = VK_WF_MAX_REDIRECTS;
    if (o->max_redirects < 0)
        o->max_redirects = 0;
    if (o->max_import_depth <= 0)
        o->max_import_depth = VK_WF_MAX_IMPORT_DEPTH;
    if (o->max_fragments == 0)
        o->max_fragments = VK_WF_MAX_FRAGMENTS;
    if (o->max_imports == 0)
        o->max_imports = VK_WF_MAX_IMPORTS;
}

int vk_workflow_load_buffer(const char *src, size_t len, const char *file_name,
                            const struct vk_wf_options *opts, struct vk_workflow **out,
                            struct vk_wf_error *error)
{
    struct vk__wf_loader L;
    struct vk__wf_file top;
    struct vk_kdl_doc *doc = NULL;
    struct vk_err e;
    int rc;
    char *real = NULL;

    *out = NULL;
    memset(&L, 0, sizeof(L));
    memset(&top, 0, sizeof(top));
    vk_err_clear(&e);
    fill_defaults(&L.opts, opts);
    L.error = error;
    L.cur = &top;
    top.name = file_name ? file_name : "<input>";
    top.src = src;
    top.len = len;

    struct vk_workflow *wf = vk_mem_calloc(1, sizeof(*wf));
    if (!wf)
        return vk__wf_fail(&L, VK_WF_ERR_NOMEM, VK_ENOMEM, 0, 0, "out of memory");
    vk_pool_init(&wf->pool, 0);
    L.wf = wf;
    L.pool = &wf->pool;

    /* The top document's name, base directory and cycle identity. */
    top.name = vk_pool_strndup(L.pool, top.name, strlen(top.name));
    if (!top.name) {
        top.name = "<input>";
        rc = vk__wf_fail(&L, VK_WF_ERR_NOMEM, VK_ENOMEM, 0, 0, "out of memory");
        goto fail;
    }
    wf->file = top.name;
    if (L.opts.base_path) {
        size_t bl = strlen(L.opts.base_path);
        bool slash = bl && L.opts.base_path[bl - 1] == '/';
        char *b = vk_pool_alloc(L.pool, bl + 2);
        if (b)
            snprintf(b, bl + 2, "%s%s", L.opts.base_path, slash || bl == 0 ? "" : "/");
        top.base = b;
    } else if (file_name && strrchr(file_name, '/')) {
        top.base =
            vk_pool_strndup(L.pool, file_name, (size_t)(strrchr(file_name, '/') - file_name) + 1);
    } else {
        top.base = "";
    }
    if (file_name)
        real = realpath(file_name, NULL);
    top.key = real ? vk_pool_strndup(L.pool, real, strlen(real)) : top.name;
    free(real);
    wf->name = default_name(L.pool, file_name);
    if (!top.base || !top.key || !wf->name) {
        rc = vk__wf_fail(&L, VK_WF_ERR_NOMEM, VK_ENOMEM, 0, 0, "out of memory");
        goto fail;
    }

    rc = vk_kdl_parse(src, len, &doc, &e);
    if (rc == VK_ENOMEM) {
        rc = vk__wf_fail(&L, VK_WF_ERR_NOMEM, VK_ENOMEM, 0, 0, "out of memory");
        goto fail;
    }
    if (rc < 0) {
        rc = vk__wf_fail(&L, VK_WF_ERR_SYNTAX, VK_EPARSE, e.line, e.col, "%s", e.msg);
        goto fail;
    }
    rc = vk__wf_load_document(&L, doc);
    if (rc < 0)
        goto fail;
    vk_kdl_doc_free(doc);
    *out = wf;
    return 0;
fail:
    vk_kdl_doc_free(doc);
    vk_workflow_free(wf);
    return rc;
}

int vk_workflow_load_file(const char *path, const struct vk_wf_options *opts,
                          struct vk_workflow **out, struct vk_wf_error *error)
{
    struct vk_buf b = VK_BUF_INIT(VK_MAX_FILE);
    struct vk_err e;
    vk_err_clear(&e);
    *out = NULL;
    int rc = vk_buf_read_file(&b, path, &e);
    if (rc < 0) {
        struct vk__wf_loader L;
        struct vk__wf_file top;
        memset(&L, 0, sizeof(L));
        memset(&top, 0, sizeof(top));
        top.name = path;
        L.cur = &top;
        L.error = error;
        vk_buf_release(&b);
        /* vk_buf_read_file's messages start with the path, which the diagnostic shows already. */
        const char *m = e.msg;
        size_t pl = strlen(path);
        if (strncmp(m, path, pl) == 0 && m[pl] == ':' && m[pl + 1] == ' ')
            m += pl + 2;
        else if (strncmp(m, "'", 1) == 0 && strncmp(m + 1, path, pl) == 0 && m[pl + 1] == '\'')
            m += pl + 3;
        return vk__wf_fail(&L, rc == VK_ENOMEM ? VK_WF_ERR_NOMEM : VK_WF_ERR_IO,
                           rc == VK_ENOMEM    ? VK_ENOMEM
                           : rc == VK_ETOOBIG ? VK_ETOOBIG
                                              : VK_EIO,
                           0, 0, "cannot read the workflow: %s", m);
    }
    rc = vk_workflow_load_buffer(b.data, b.len, path, opts, out, error);
    vk_buf_release(&b);
    return rc;
}

void vk_workflow_free(struct vk_workflow *wf)
{
    if (!wf)
        return;
    vk_pool_release(&wf->pool);
    vk_mem_free(wf);
}

static size_t count(const struct vk_wf_fragment *g)
{
    size_t n = g->nchildren;
    for (size_t i = 0; i < g->nchildren; i++)
        n += count(&g->children[i]);
    return n;
}

size_t vk_workflow_count_fragments(const struct vk_workflow *wf)
{
    return wf ? count(&wf->root) : 0;
}

static int walk(const struct vk_wf_fragment *g, unsigned depth, vk_wf_visit_fn *visit, void *ctx)
{
    for (size_t i = 0; i < g->nchildren; i++) {
        int rc = visit(ctx, &g->children[i], depth);
        if (rc == 0)
            rc = walk(&g->children[i], depth + 1, visit, ctx);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int vk_workflow_walk(const struct vk_workflow *wf, vk_wf_visit_fn *visit, void *ctx)
{
    return wf ? walk(&wf->root, 0, visit, ctx) : 0;
}
