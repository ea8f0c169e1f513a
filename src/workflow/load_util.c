/*
 * Loader helpers: error recording and rendering, value checks shared by the
 * node loaders, and the mapping of an offset inside a string value back to a
 * column in the file.
 */
#include "wf_int.h"

#include <stdio.h>
#include <string.h>

static const char *const kind_names[] = {
    "no error",        "invalid syntax",   "missing required", "unknown node",
    "invalid value",   "duplicate",        "invalid URL",      "fetch failed",
    "circular import", "mutual exclusion", "no machine",       "invalid condition",
    "invalid trigger", "limit exceeded",   "I/O error",        "out of memory"};

const char *vk_wf_errkind_name(enum vk_wf_errkind kind)
{
    if ((unsigned)kind < VK_ARRAY_LEN(kind_names))
        return kind_names[kind];
    return "?";
}

void vk_wf_error_init(struct vk_wf_error *e)
{
    memset(e, 0, sizeof(*e));
}

void vk_wf_error_release(struct vk_wf_error *e)
{
    if (!e)
        return;
    vk_mem_free(e->rendered);
    vk_wf_error_init(e);
}

int vk__wf_fail(struct vk__wf_loader *L, enum vk_wf_errkind kind, int code, uint32_t line,
                uint32_t col, const char *fmt, ...)
{
    struct vk_wf_error *e = L->error;
    if (!e || e->kind != VK_WF_ERR_NONE)
        return code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
    va_end(ap);
    e->kind = kind;
    e->code = code;
    e->line = line;
    e->col = col;
    snprintf(e->file, sizeof(e->file), "%s", L->cur && L->cur->name ? L->cur->name : "<input>");

    /* vk_diag_render's message field holds 256 bytes; render the heading line
     * ourselves (full message) and take the source excerpt from it. */
    struct vk_buf out = VK_BUF_INIT(VK_MAX_SMALL);
    struct vk_buf tmp = VK_BUF_INIT(VK_MAX_SMALL);
    struct vk_err ve;
    vk_err_clear(&ve);
    ve.code = code;
    ve.line = line;
    ve.col = col;
    int rc =
        vk_diag_render(&tmp, e->file, L->cur ? L->cur->src : NULL, L->cur ? L->cur->len : 0, &ve);
    if (rc == 0) {
        if (line)
            rc = vk_buf_addf(&out, "%s:%u:%u: error: %s\n", e->file, line, col, e->msg);
        else
            rc = vk_buf_addf(&out, "%s: error: %s\n", e->file, e->msg);
    }
    const char *nl = memchr(tmp.data, '\n', tmp.len);
    if (rc == 0 && nl)
        rc = vk_buf_add(&out, nl + 1, tmp.len - (size_t)(nl + 1 - tmp.data));
    if (rc == 0)
        e->rendered = vk_buf_take(&out, NULL);
    vk_buf_release(&out);
    vk_buf_release(&tmp);
    return code;
}

const char *vk__wf_strdup(struct vk__wf_loader *L, struct vk_kdl_str s)
{
    char *p = vk_pool_strndup(L->pool, s.ptr ? s.ptr : "", s.ptr ? s.len : 0);
    if (!p)
        vk__wf_fail(L, VK_WF_ERR_NOMEM, VK_ENOMEM, 0, 0, "out of memory");
    return p;
}

struct vk_wf_pos vk__wf_pos(struct vk__wf_loader *L, struct vk_kdl_pos p)
{
    struct vk_wf_pos r = {L->cur ? L->cur->name : NULL, p.line, p.col};
    return r;
}

int vk__wf_no_props(struct vk__wf_loader *L, const struct vk_kdl_node *n)
{
    if (n->nprops)
        return vk__wf_fail(L, VK_WF_ERR_INVALID_VALUE, VK_EPARSE, VK__WF_AT(n->props[0].pos),
                           "'%s' takes no properties ('%s=' is not allowed)", n->name.ptr,
                           n->props[0].key.ptr);
    return 0;
}

int vk__wf_no_children(struct vk__wf_loader *L, const struct vk_kdl_node *n)
{
    if (n->has_block)
        return vk__wf_fail(L, VK_WF_ERR_INVALID_VALUE, VK_EPARSE, VK__WF_AT(n->block_pos),
                           "'%s' takes no block { … }", n->name.ptr);
    return 0;
}

int vk__wf_no_args(struct vk__wf_loader *L, const struct vk_kdl_node *n)
{
    if (n->nargs)
        return vk__wf_fail(L, VK_WF_ERR_INVALID_VALUE, VK_EPARSE, VK__WF_AT(n->args[0].pos),
                           "'%s' takes no arguments", n->name.ptr);
    return 0;
}

/*
 * `{PREFIX.KEY}` (open is "{PREFIX.") in the string `*s` (of value `v`) becomes the value of
 * KEY in `m` (a matrix copy's combination, an import's parameters); an unknown KEY is an
 * error at its column. Without `m` the text is left as it is (a script may print braces).
 */
static int subst(struct vk__wf_loader *L, const struct vk_kdl_value *v, const char **s,
                 const char *open, const struct vk__wf_cell *m, const char *what)
{
    if (!m || !strstr(*s, open))
        return 0;
    struct vk_buf b = VK_BUF_INIT(VK_MAX_FILE);
    const char *p = *s, *q;
    int rc = 0;
    while (rc == 0 && (q = strstr(p, open))) {
        const char *name = q + strlen(open), *end = strchr(name, '}');
        size_t i = 0;
        while (end && i < m->n &&
               !(strlen(m->keys[i]) == (size_t)(end - name) &&
                 memcmp(m->keys[i], name, (size_t)(end - name)) == 0))
            i++;
        if (!end || i == m->n) {
            struct vk_buf known = VK_BUF_INIT(VK_MAX_SMALL);
            for (size_t k = 0;
                 k < m->n && vk_buf_addf(&known, "%s%s", k ? ", " : "", m->keys[k]) == 0; k++)
                ;
            const char *has = known.len ? known.data : "(none)";
            if (end)
                rc = vk__wf_fail(L, VK_WF_ERR_INVALID_VALUE, VK_EPARSE, v->pos.line,
                                 vk__wf_value_col(L, v, (size_t)(q - *s)),
                                 "unknown %s variable '%.*s'; this %s has: %s", what,
                                 (int)(end - name), name, what, has);
            else
                rc = vk__wf_fail(L, VK_WF_ERR_INVALID_VALUE, VK_EPARSE, v->pos.line,
                                 vk__wf_value_col(L, v, (size_t)(q - *s)),
                                 "'%s' without a closing '}'; this %s has: %s", open, what, has);
            vk_buf_release(&known);
            break;
        }
        if (vk_buf_add(&b, p, (size_t)(q - p)) < 0 || vk_buf_adds(&b, m->values[i]) < 0)
            rc = vk__wf_fail(L, VK_WF_ERR_NOMEM, VK_ENOMEM, 0, 0, "out of memory");
        p = end + 1;
    }
    if (rc == 0 && vk_buf_adds(&b, p) < 0)
        rc = vk__wf_fail(L, VK_WF_ERR_NOMEM, VK_ENOMEM, 0, 0, "out of memory");
    if (rc == 0) {
        *s = vk_pool_strndup(L->pool, b.data ? b.data : "", b.len);
        if (!*s)
            rc = vk__wf_fail(L, VK_WF_ERR_NOMEM, VK_ENOMEM, 0, 0, "out of memory");
    }
    vk_buf_release(&b);
    return rc;
}

static int string_value(struct vk__wf_loader *L, const struct vk_kdl_node *n,
                        const struct vk_kdl_value *v, const char **out)
{
    if (v->kind != VK_KDL_STRING)
        return vk__wf_fail(L, VK_WF_ERR_INVALID_VALUE, VK_EPARSE, VK__WF_AT(v->pos),
                           "'%s' takes a string, not %s", n->name.ptr, vk_kdl_kind_name(v->kind));
    if (memchr(v->str.ptr, '\0', v->str.len))
        return vk__wf_fail(L, VK_WF_ERR_INVALID_VALUE, VK_EPARSE, VK__WF_AT(v->pos),
                           "'%s' contains a NUL character", n->name.ptr);
    *out = vk__wf_strdup(L, v->str);
    int rc = *out ? subst(L, v, out, "{matrix.", L->matrix, "matrix") : VK_ENOMEM;
    if (rc == 0)
        rc = subst(L, v, out, "{with.", L->cur ? L->cur->with : NULL, "import");
    /* Each copy holds its own text: 256 copies of a large node, or of many {matrix.…},
     * would multiply a small document into a large load. */
    if (rc == 0 && L->matrix && (L->matrix_bytes += strlen(*out)) > VK_WF_MAX_MATRIX_BYTES)
        rc = vk__wf_fail(L, VK_WF_ERR_LIMIT, VK_ETOOBIG, VK__WF_AT(v->pos),
                         "the matrix copies hold more than %u MiB of text",
                         VK_WF_MAX_MATRIX_BYTES >> 20);
    return rc;
}

int vk__wf_string_value(struct vk__wf_loader *L, const struct vk_kdl_node *n,
                        const struct vk_kdl_value *v, const char **out)
{
    return string_value(L, n, v, out);
}

int vk__wf_one_string(struct vk__wf_loader *L, const struct vk_kdl_node *n, const char **out)
{
    int rc = vk__wf_no_props(L, n);
    if (rc == 0)
        rc = vk__wf_no_children(L, n);
    if (rc < 0)
        return rc;
    if (n->nargs == 0)
        return vk__wf_fail(L, VK_WF_ERR_MISSING, VK_EPARSE, VK__WF_AT(n->pos),
                           "'%s' needs a value: %s \"…\"", n->name.ptr, n->name.ptr);
    if (n->nargs > 1)
        return vk__wf_fail(L, VK_WF_ERR_INVALID_VALUE, VK_EPARSE, VK__WF_AT(n->args[1].pos),
                           "'%s' takes one value, found %u", n->name.ptr, (unsigned)n->nargs);
    return string_value(L, n, &n->args[0], out);
}

int vk__wf_string_list(struct vk__wf_loader *L, const struct vk_kdl_node *n,
                       struct vk_wf_strlist *out)
{
    int rc = vk__wf_no_props(L, n);
    if (rc == 0)
        rc = vk__wf_no_children(L, n);
    if (rc < 0)
        return rc;
    if (n->nargs == 0)
        return vk__wf_fail(L, VK_WF_ERR_MISSING, VK_EPARSE, VK__WF_AT(n->pos),
                           "'%s' needs at least one value: %s \"…\"", n->name.ptr, n->name.ptr);
    out->items = vk_pool_alloc(L->pool, n->nargs * sizeof(*out->items));
    if (!out->items)
        return vk__wf_fail(L, VK_WF_ERR_NOMEM, VK_ENOMEM, 0, 0, "out of memory");
    for (size_t i = 0; i < n->nargs; i++) {
        rc = string_value(L, n, &n->args[i], &out->items[i]);
        if (rc < 0)
            return rc;
        if (out->items[i][0] == '\0')
            return vk__wf_fail(L, VK_WF_ERR_INVALID_VALUE, VK_EPARSE, VK__WF_AT(n->args[i].pos),
                               "'%s' values cannot be empty", n->name.ptr);
    }
    out->n = n->nargs;
    return 0;
}

/* Code points in src[a..b). */
static uint32_t cps(const char *src, size_t a, size_t b)
{
    uint32_t n = 0;
    for (size_t i = a; i < b; i++) {
        if (((unsigned char)src[i] & 0xc0) != 0x80)
            n++;
    }
    return n;
}

static size_t utf8_len(uint32_t cp)
{
    return cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
}

uint32_t vk__wf_value_col(struct vk__wf_loader *L, const struct vk_kdl_value *v, size_t off)
{
    const char *src = L->cur ? L->cur->src : NULL;
    size_t len = L->cur ? L->cur->len : 0;
    size_t start = v->pos.offset;
    if (!src || start >= len || v->type)
        return v->pos.col;
    size_t p = start;
    if (src[p] == '#') {
        size_t h = 0;
        while (p < len && src[p] == '#') {
            p++;
            h++;
        }
        if (p >= len || src[p] != '"' || (p + 2 < len && src[p + 1] == '"' && src[p + 2] == '"'))
            return v->pos.col; /* multi-line raw string: point at its start */
        p++;
        if (p + off > len || memchr(src + p, '\n', off))
            return v->pos.col;
        return v->pos.col + cps(src, start, p + off);
    }
    if (src[p] != '"') {
        /* An identifier string: its text is the source. */
        if (p + off > len)
            return v->pos.col;
        return v->pos.col + cps(src, start, p + off);
    }
    if (p + 2 < len && src[p + 1] == '"' && src[p + 2] == '"')
        return v->pos.col; /* multi-line string: point at its start */
    p++;
    size_t decoded = 0;
    while (decoded < off && p < len && src[p] != '"') {
        if (src[p] == '\n' || src[p] == '\r')
            return v->pos.col;
        if (src[p] != '\\') {
            size_t n = 1;
            while (p + n < len && ((unsigned char)src[p + n] & 0xc0) == 0x80)
                n++;
            decoded += n;
            p += n;
            continue;
        }
        if (p + 1 >= len)
            return v->pos.col;
        char e = src[p + 1];
        if (e == 'u') {
            size_t q = p + 2;
            uint32_t cp = 0;
            if (q < len && src[q] == '{')
                q++;
            while (q < len && src[q] != '}') {
                int d = vk_hex_value(src[q++]);
                if (d < 0)
                    return v->pos.col;
                cp = cp * 16 + (uint32_t)d;
                if (cp > 0x10ffff)
                    return v->pos.col;
            }
            decoded += utf8_len(cp);
            p = q + 1;
        } else if (e == ' ' || e == '\t' || e == '\n' || e == '\r') {
            return v->pos.col; /* whitespace escape: may span lines */
        } else {
            decoded += 1;
            p += 2;
        }
    }
    if (p > len)
        return v->pos.col;
    return v->pos.col + cps(src, start, p);
}
