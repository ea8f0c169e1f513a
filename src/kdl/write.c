/*
 * KDL writer: the canonical form of the official test suite, plus small
 * helpers over the document tree.
 *
 * Canonical form: one node per line, 4-space indents, `(type)name`, arguments
 * in order, then properties sorted by key (byte order, which is code point
 * order), children in `{ }` only when there are some. Strings print bare when
 * they are valid identifiers, else quoted with escapes. Integers print in
 * decimal; floats print from their source text normalised: no '_', no leading
 * '+', no leading zeros, 'E' with an explicit exponent sign ("1e10" -> "1E+10").
 */
#include "kdl_int.h"
#include "vulcan/kdl.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* True when `s`/`len` can be printed as a bare identifier. */
static bool bare_ok(const char *s, size_t len)
{
    if (len == 0 || vk__kdl_numberish(s, len) || vk__kdl_is_keyword(s, len))
        return false;
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        if (u[i] < 0x80) {
            if (!(vk__kdl_cls[u[i]] & VK__KDL_C_IDENT))
                return false;
            i++;
            continue;
        }
        uint32_t cp;
        size_t n = vk_utf8_decode(u + i, len - i, &cp);
        if (!n || !vk__kdl_is_ident_cp(cp))
            return false;
        i += n;
    }
    return true;
}

static int write_quoted(const char *s, size_t len, struct vk_buf *out)
{
    const unsigned char *u = (const unsigned char *)s;
    int rc = vk_buf_addch(out, '"');
    size_t i = 0;
    while (rc == 0 && i < len) {
        size_t r = i;
        while (r < len && u[r] >= 0x20 && u[r] < 0x7f && u[r] != '"' && u[r] != '\\')
            r++;
        if (r != i) {
            rc = vk_buf_add(out, s + i, r - i);
            i = r;
            continue;
        }
        unsigned char b = u[i];
        const char *esc = NULL;
        switch (b) {
        case '"':
            esc = "\\\"";
            break;
        case '\\':
            esc = "\\\\";
            break;
        case '\b':
            esc = "\\b";
            break;
        case '\f':
            esc = "\\f";
            break;
        case '\n':
            esc = "\\n";
            break;
        case '\r':
            esc = "\\r";
            break;
        case '\t':
            esc = "\\t";
            break;
        default:
            break;
        }
        if (esc) {
            rc = vk_buf_adds(out, esc);
            i++;
            continue;
        }
        if (b < 0x80) {
            rc = vk_buf_addf(out, "\\u{%x}", (unsigned)b);
            i++;
            continue;
        }
        uint32_t cp;
        size_t n = vk_utf8_decode(u + i, len - i, &cp);
        if (!n) {
            /* Not UTF-8 (a hand-built string): print U+FFFD for the byte. */
            rc = vk_buf_adds(out, "\\u{fffd}");
            i++;
            continue;
        }
        if (vk__kdl_is_disallowed(cp) || vk__kdl_is_newline(cp))
            rc = vk_buf_addf(out, "\\u{%x}", (unsigned)cp);
        else
            rc = vk_buf_add(out, s + i, n);
        i += n;
    }
    if (rc == 0)
        rc = vk_buf_addch(out, '"');
    return rc;
}

int vk_kdl_write_ident(const char *s, size_t len, struct vk_buf *out)
{
    if (bare_ok(s, len))
        return vk_buf_add(out, s, len);
    return write_quoted(s, len, out);
}

/* A float from its source text (see the file comment). */
static int write_float(const struct vk_kdl_value *v, struct vk_buf *out)
{
    if (!v->num.ptr || v->num.len == 0) {
        if (isnan(v->f))
            return vk_buf_adds(out, "#nan");
        if (isinf(v->f))
            return vk_buf_adds(out, v->f > 0 ? "#inf" : "#-inf");
        char t[40];
        snprintf(t, sizeof(t), "%.17G", v->f);
        int rc = vk_buf_adds(out, t);
        if (rc == 0 && !strpbrk(t, ".E"))
            rc = vk_buf_adds(out, ".0");
        return rc;
    }
    const char *s = v->num.ptr;
    size_t n = v->num.len, i = 0;
    int rc = 0;
    if (s[i] == '+')
        i++;
    else if (s[i] == '-') {
        rc = vk_buf_addch(out, '-');
        i++;
    }
    while (i + 1 < n && s[i] == '0' && s[i + 1] >= '0' && s[i + 1] <= '9')
        i++;
    size_t r = i;
    while (r < n && s[r] != 'e' && s[r] != 'E')
        r++;
    if (rc == 0)
        rc = vk_buf_add(out, s + i, r - i);
    if (r >= n || rc)
        return rc;
    i = r + 1;
    char sign = '+';
    if (i < n && (s[i] == '+' || s[i] == '-'))
        sign = s[i++];
    while (i + 1 < n && s[i] == '0')
        i++;
    rc = vk_buf_addch(out, 'E');
    if (rc == 0)
        rc = vk_buf_addch(out, sign);
    if (rc == 0)
        rc = vk_buf_add(out, s + i, n - i);
    return rc;
}

int vk_kdl_write_value(const struct vk_kdl_value *v, struct vk_buf *out)
{
    int rc = 0;
    if (v->type) {
        rc = vk_buf_addch(out, '(');
        if (rc == 0)
            rc = vk_kdl_write_ident(v->type->ptr, v->type->len, out);
        if (rc == 0)
            rc = vk_buf_addch(out, ')');
        if (rc)
            return rc;
    }
    switch (v->kind) {
    case VK_KDL_STRING:
        return vk_kdl_write_ident(v->str.ptr ? v->str.ptr : "", v->str.len, out);
    case VK_KDL_INT:
        return vk_buf_addf(out, "%lld", (long long)v->i);
    case VK_KDL_BIGINT:
        return vk_buf_add(out, v->num.ptr ? v->num.ptr : "0", v->num.ptr ? v->num.len : 1);
    case VK_KDL_FLOAT:
        return write_float(v, out);
    case VK_KDL_INF:
        return vk_buf_adds(out, "#inf");
    case VK_KDL_NEGINF:
        return vk_buf_adds(out, "#-inf");
    case VK_KDL_NAN:
        return vk_buf_adds(out, "#nan");
    case VK_KDL_BOOL:
        return vk_buf_adds(out, v->b ? "#true" : "#false");
    case VK_KDL_NULL:
        return vk_buf_adds(out, "#null");
    }
    return vk_buf_adds(out, "#null");
}

static int key_cmp(const struct vk_kdl_prop *a, const struct vk_kdl_prop *b)
{
    size_t n = a->key.len < b->key.len ? a->key.len : b->key.len;
    int c = n ? memcmp(a->key.ptr, b->key.ptr, n) : 0;
    if (c)
        return c;
    return a->key.len < b->key.len ? -1 : (a->key.len > b->key.len ? 1 : 0);
}

static int key_qcmp(const void *a, const void *b)
{
    const struct vk_kdl_prop *const *x = a;
    const struct vk_kdl_prop *const *y = b;
    int c = key_cmp(*x, *y);
    if (c)
        return c;
    return *x < *y ? -1 : (*x > *y ? 1 : 0);
}

static int write_prop(const struct vk_kdl_prop *pr, struct vk_buf *out)
{
    int rc = vk_buf_addch(out, ' ');
    if (rc == 0)
        rc = vk_kdl_write_ident(pr->key.ptr ? pr->key.ptr : "", pr->key.len, out);
    if (rc == 0)
        rc = vk_buf_addch(out, '=');
    if (rc == 0)
        rc = vk_kdl_write_value(&pr->value, out);
    return rc;
}

static int write_props(const struct vk_kdl_node *n, unsigned flags, struct vk_buf *out)
{
    int rc = 0;
    if (n->nprops == 0)
        return 0;
    if ((flags & VK_KDL_WRITE_SOURCE_ORDER) || n->nprops == 1) {
        for (size_t i = 0; i < n->nprops && rc == 0; i++)
            rc = write_prop(&n->props[i], out);
        return rc;
    }
    const struct vk_kdl_prop *small[16];
    const struct vk_kdl_prop **idx = small;
    if (n->nprops > VK_ARRAY_LEN(small)) {
        idx = vk_mem_alloc(n->nprops * sizeof(*idx));
        if (!idx) {
            vk_buf_release(out);
            return VK_ENOMEM;
        }
    }
    for (size_t i = 0; i < n->nprops; i++)
        idx[i] = &n->props[i];
    qsort(idx, n->nprops, sizeof(*idx), key_qcmp);
    for (size_t i = 0; i < n->nprops && rc == 0; i++)
        rc = write_prop(idx[i], out);
    if (idx != small)
        vk_mem_free(idx);
    return rc;
}

static int write_nodes(const struct vk_kdl_node *n, unsigned depth, unsigned flags,
                       struct vk_buf *out)
{
    int rc = 0;
    for (; n && rc == 0; n = n->next) {
        for (unsigned d = 0; d < depth && rc == 0; d++)
            rc = vk_buf_add(out, "    ", 4);
        if (rc == 0 && n->type) {
            rc = vk_buf_addch(out, '(');
            if (rc == 0)
                rc = vk_kdl_write_ident(n->type->ptr ? n->type->ptr : "", n->type->len, out);
            if (rc == 0)
                rc = vk_buf_addch(out, ')');
        }
        if (rc == 0)
            rc = vk_kdl_write_ident(n->name.ptr ? n->name.ptr : "", n->name.len, out);
        for (size_t i = 0; i < n->nargs && rc == 0; i++) {
            rc = vk_buf_addch(out, ' ');
            if (rc == 0)
                rc = vk_kdl_write_value(&n->args[i], out);
        }
        if (rc == 0)
            rc = write_props(n, flags, out);
        if (rc == 0 && n->children) {
            rc = vk_buf_adds(out, " {\n");
            if (rc == 0)
                rc = write_nodes(n->children, depth + 1, flags, out);
            for (unsigned d = 0; d < depth && rc == 0; d++)
                rc = vk_buf_add(out, "    ", 4);
            if (rc == 0)
                rc = vk_buf_addch(out, '}');
        }
        if (rc == 0)
            rc = vk_buf_addch(out, '\n');
    }
    return rc;
}

int vk_kdl_write_opts(const struct vk_kdl_doc *doc, unsigned flags, struct vk_buf *out)
{
    if (!doc)
        return 0;
    return write_nodes(doc->nodes, 0, flags, out);
}

int vk_kdl_write(const struct vk_kdl_doc *doc, struct vk_buf *out)
{
    return vk_kdl_write_opts(doc, 0, out);
}

bool vk_kdl_str_eq(struct vk_kdl_str s, const char *lit)
{
    size_t n = strlen(lit);
    return s.ptr && s.len == n && memcmp(s.ptr, lit, n) == 0;
}

const struct vk_kdl_prop *vk_kdl_prop_get(const struct vk_kdl_node *node, const char *key)
{
    for (size_t i = 0; i < node->nprops; i++)
        if (vk_kdl_str_eq(node->props[i].key, key))
            return &node->props[i];
    return NULL;
}

const char *vk_kdl_kind_name(enum vk_kdl_kind kind)
{
    switch (kind) {
    case VK_KDL_STRING:
        return "string";
    case VK_KDL_INT:
    case VK_KDL_BIGINT:
        return "integer";
    case VK_KDL_FLOAT:
        return "float";
    case VK_KDL_INF:
    case VK_KDL_NEGINF:
    case VK_KDL_NAN:
        return "float keyword";
    case VK_KDL_BOOL:
        return "boolean";
    case VK_KDL_NULL:
        return "null";
    }
    return "value";
}
