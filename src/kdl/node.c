/*
 * KDL nodes: names, type annotations, arguments, properties, children blocks
 * and slashdash comments.
 *
 * A node's entries collect in the parser's scratch vectors and are copied into
 * the pool when the node's entries end (at its children block or terminator),
 * so the scratch is free again for the children. Slashdashed parts are parsed
 * and checked like the rest but not kept.
 */
#include "kdl_int.h"
#include "parse_int.h"

#include <stdlib.h>
#include <string.h>

#define CLS(b) (vk__kdl_cls[(unsigned char)(b)])

static bool at2(const struct vk__kdl_parser *p, char a, char b)
{
    return p->pos + 1 < p->len && p->s[p->pos] == (unsigned char)a &&
           p->s[p->pos + 1] == (unsigned char)b;
}

/*
 * Scan a bare word (identifier characters) from `p->pos`; returns its end. Stops at the
 * first character that cannot be in an identifier. Returns 0 on invalid UTF-8 (error set).
 */
static size_t bare_end(struct vk__kdl_parser *p)
{
    const unsigned char *s = p->s;
    size_t len = p->len;
    size_t i = p->pos;
    for (;;) {
        while (i < len && (CLS(s[i]) & VK__KDL_C_IDENT))
            i++;
        if (i >= len || s[i] < 0x80)
            return i;
        uint32_t cp;
        size_t n = vk_utf8_decode(s + i, len - i, &cp);
        if (!n) {
            vk__kdl_fail(p, i, "invalid UTF-8");
            return 0;
        }
        if (!vk__kdl_is_ident_cp(cp)) {
            if (vk__kdl_is_disallowed(cp)) {
                vk__kdl_bad_char(p, i, "");
                return 0;
            }
            return i;
        }
        i += n;
    }
}

/* True when the byte at `i` may start a value, a property or a string. */
static bool can_start_entry(const struct vk__kdl_parser *p, size_t i)
{
    unsigned char b = p->s[i];
    return b == '"' || b == '#' || b == '(' || (CLS(b) & (VK__KDL_C_IDENT | VK__KDL_C_HIGH));
}

/*
 * Parse a string in any form at p->pos (identifier, quoted, raw). `what` names the thing
 * for errors ("node name", "type annotation", ...). When `v` is not NULL, a number or
 * keyword is accepted too and stored there (*is_string says which one was found).
 */
static int parse_value_or_string(struct vk__kdl_parser *p, const char *what, struct vk_kdl_str *str,
                                 struct vk_kdl_value *v, bool *is_string)
{
    const unsigned char *s = p->s;
    size_t start = p->pos;
    if (is_string)
        *is_string = true;
    if (start >= p->len)
        return vk__kdl_fail(p, start, "expected %s, found end of input", what);
    unsigned char b = s[start];
    if (b == '"')
        return vk__kdl_parse_quoted(p, str);
    if (b == '#') {
        if (start + 1 < p->len && (s[start + 1] == '"' || s[start + 1] == '#'))
            return vk__kdl_parse_raw(p, str);
        p->pos = start + 1;
        size_t end = bare_end(p);
        if (!end)
            return VK_EPARSE;
        const char *w = (const char *)s + start + 1;
        size_t wn = end - start - 1;
        enum vk_kdl_kind kind;
        bool bv = false;
        if (wn == 4 && memcmp(w, "true", 4) == 0) {
            kind = VK_KDL_BOOL;
            bv = true;
        } else if (wn == 5 && memcmp(w, "false", 5) == 0) {
            kind = VK_KDL_BOOL;
        } else if (wn == 4 && memcmp(w, "null", 4) == 0) {
            kind = VK_KDL_NULL;
        } else if (wn == 3 && memcmp(w, "inf", 3) == 0) {
            kind = VK_KDL_INF;
        } else if (wn == 4 && memcmp(w, "-inf", 4) == 0) {
            kind = VK_KDL_NEGINF;
        } else if (wn == 3 && memcmp(w, "nan", 3) == 0) {
            kind = VK_KDL_NAN;
        } else {
            p->pos = start;
            if (wn == 0)
                return vk__kdl_fail(p, start, "expected a keyword or raw string after '#'");
            return vk__kdl_fail(p, start, "unknown keyword '#%.*s'", (int)(wn > 40 ? 40 : wn), w);
        }
        if (!v) {
            p->pos = start;
            return vk__kdl_fail(p, start, "expected %s, found keyword '#%.*s'", what, (int)wn, w);
        }
        v->kind = kind;
        v->b = bv;
        p->pos = end;
        if (is_string)
            *is_string = false;
        return 0;
    }
    if (!(CLS(b) & (VK__KDL_C_IDENT | VK__KDL_C_HIGH)))
        return vk__kdl_bad_char(p, start, "");
    size_t end = bare_end(p);
    if (!end)
        return VK_EPARSE;
    if (end == start)
        return vk__kdl_bad_char(p, start, "");
    const char *w = (const char *)s + start;
    size_t wn = end - start;
    if (vk__kdl_numberish(w, wn)) {
        if (w[0] == '.' || ((w[0] == '+' || w[0] == '-') && w[1] == '.'))
            return vk__kdl_fail(p, start, "invalid number '%.*s': a digit must come before '.'",
                                (int)(wn > 40 ? 40 : wn), w);
        if (!v)
            return vk__kdl_fail(p, start, "expected %s, found a number", what);
        int rc = vk__kdl_parse_number(p, start, end, v);
        if (rc)
            return rc;
        p->pos = end;
        if (is_string)
            *is_string = false;
        return 0;
    }
    if (vk__kdl_is_keyword(w, wn))
        return vk__kdl_fail(p, start,
                            "'%.*s' is a keyword, not an identifier: write '#%.*s' for the "
                            "value or quote it as a string",
                            (int)wn, w, (int)wn, w);
    const char *c = vk__kdl_strdup(p, w, wn);
    if (!c)
        return VK_ENOMEM;
    str->ptr = c;
    str->len = wn;
    p->pos = end;
    return 0;
}

/* At '(': a type annotation. */
static int parse_type(struct vk__kdl_parser *p, struct vk_kdl_str *type)
{
    size_t open = p->pos;
    p->pos++;
    bool any = false;
    int rc = vk__kdl_node_space(p, &any);
    if (rc)
        return rc;
    if (p->pos < p->len && p->s[p->pos] == ')')
        return vk__kdl_fail(p, open, "empty type annotation");
    rc = parse_value_or_string(p, "a type name", type, NULL, NULL);
    if (rc)
        return rc;
    rc = vk__kdl_node_space(p, &any);
    if (rc)
        return rc;
    if (p->pos >= p->len || p->s[p->pos] != ')') {
        char buf[16];
        return vk__kdl_fail(p, p->pos, "expected ')' to close the type annotation, found %s",
                            vk__kdl_describe(p, p->pos, buf));
    }
    p->pos++;
    return 0;
}

/* Copy a parsed type annotation into the pool: annotations are rare, so values and nodes
 * keep only a pointer to one. */
static int keep_type(struct vk__kdl_parser *p, struct vk_kdl_str t, const struct vk_kdl_str **out)
{
    struct vk_kdl_str *c = vk_pool_alloc(p->pool, sizeof(*c));
    if (!c)
        return vk__kdl_oom(p);
    *c = t;
    *out = c;
    return 0;
}

/* A value with an optional type annotation (an argument, or a property's value). */
static int parse_typed_value(struct vk__kdl_parser *p, struct vk_kdl_value *v)
{
    memset(v, 0, sizeof(*v));
    v->pos = vk__kdl_pos(p, p->pos);
    if (p->pos < p->len && p->s[p->pos] == '(') {
        struct vk_kdl_str type = {NULL, 0};
        int rc = parse_type(p, &type);
        if (rc == 0)
            rc = keep_type(p, type, &v->type);
        if (rc)
            return rc;
        bool any = false;
        rc = vk__kdl_node_space(p, &any);
        if (rc)
            return rc;
    }
    v->kind = VK_KDL_STRING;
    return parse_value_or_string(p, "a value", &v->str, v, NULL);
}

static int push_arg(struct vk__kdl_parser *p, const struct vk_kdl_value *v)
{
    if (vk_array_grow(&p->args, &p->capargs, p->nargs + 1, 16, sizeof(*p->args)) < 0)
        return vk__kdl_oom(p);
    p->args[p->nargs++] = *v;
    return 0;
}

static int push_prop(struct vk__kdl_parser *p, const struct vk_kdl_prop *pr)
{
    if (vk_array_grow(&p->props, &p->capprops, p->nprops + 1, 16, sizeof(*p->props)) < 0)
        return vk__kdl_oom(p);
    p->props[p->nprops++] = *pr;
    return 0;
}

/* One argument or property (p->pos at its first character). */
static int parse_entry(struct vk__kdl_parser *p, bool keep)
{
    struct vk_kdl_value v;
    int rc;
    size_t start = p->pos;
    if (p->s[start] == '(') {
        rc = parse_typed_value(p, &v);
        if (rc)
            return rc;
        if (v.kind == VK_KDL_STRING) {
            /* `(type)key=value` is not allowed: a property key has no type. */
            struct vk__kdl_mark m = vk__kdl_save(p);
            bool any = false;
            rc = vk__kdl_node_space(p, &any);
            if (rc)
                return rc;
            if (p->pos < p->len && p->s[p->pos] == '=')
                return vk__kdl_fail(p, start, "a property key cannot have a type annotation");
            vk__kdl_restore(p, m);
        }
        return keep ? push_arg(p, &v) : 0;
    }
    memset(&v, 0, sizeof(v));
    v.pos = vk__kdl_pos(p, start);
    v.kind = VK_KDL_STRING;
    bool is_string = false;
    rc = parse_value_or_string(p, "a value", &v.str, &v, &is_string);
    if (rc)
        return rc;
    if (is_string && p->pos < p->len) {
        /* A property?  Look past node-space for '='. */
        unsigned char b = p->s[p->pos];
        if (b == '=' || (CLS(b) & VK__KDL_C_SPACE) || b == '\\' || b == '/' || b >= 0x80) {
            struct vk__kdl_mark m = vk__kdl_save(p);
            bool any = false;
            rc = vk__kdl_node_space(p, &any);
            if (rc)
                return rc;
            if (p->pos < p->len && p->s[p->pos] == '=') {
                struct vk_kdl_prop pr;
                pr.key = v.str;
                pr.pos = v.pos;
                p->pos++;
                rc = vk__kdl_node_space(p, &any);
                if (rc)
                    return rc;
                if (p->pos >= p->len || !can_start_entry(p, p->pos)) {
                    char buf[16];
                    return vk__kdl_fail(p, p->pos, "expected a value after '=', found %s",
                                        vk__kdl_describe(p, p->pos, buf));
                }
                rc = parse_typed_value(p, &pr.value);
                if (rc)
                    return rc;
                return keep ? push_prop(p, &pr) : 0;
            }
            vk__kdl_restore(p, m);
        }
    }
    return keep ? push_arg(p, &v) : 0;
}

static int cmp_prop_idx(const void *a, const void *b)
{
    /* Used through a context-free comparator: entries are (prop*, index) pairs. */
    const struct vk_kdl_prop *const *pa = a;
    const struct vk_kdl_prop *const *pb = b;
    const struct vk_kdl_prop *x = *pa, *y = *pb;
    size_t n = x->key.len < y->key.len ? x->key.len : y->key.len;
    int c = memcmp(x->key.ptr, y->key.ptr, n);
    if (c)
        return c;
    if (x->key.len != y->key.len)
        return x->key.len < y->key.len ? -1 : 1;
    return x < y ? -1 : (x > y ? 1 : 0);
}

static bool same_key(const struct vk_kdl_prop *a, const struct vk_kdl_prop *b)
{
    return a->key.len == b->key.len && memcmp(a->key.ptr, b->key.ptr, a->key.len) == 0;
}

/* Drop all but the last of duplicated property keys in the scratch, keeping source order. */
static int dedupe_props(struct vk__kdl_parser *p)
{
    size_t n = p->nprops;
    struct vk_kdl_prop *pr = p->props;
    if (n < 2)
        return 0;
    unsigned char *dead = NULL;
    unsigned char small[32];
    if (n <= 32) {
        memset(small, 0, n);
        dead = small;
        for (size_t i = 0; i < n; i++)
            for (size_t j = i + 1; j < n; j++)
                if (same_key(&pr[i], &pr[j])) {
                    dead[i] = 1;
                    break;
                }
    } else {
        const struct vk_kdl_prop **idx = vk_mem_alloc(n * sizeof(*idx));
        dead = vk_mem_calloc(n, 1);
        if (!idx || !dead) {
            vk_mem_free(idx);
            vk_mem_free(dead);
            return vk__kdl_oom(p);
        }
        for (size_t i = 0; i < n; i++)
            idx[i] = &pr[i];
        qsort(idx, n, sizeof(*idx), cmp_prop_idx);
        for (size_t i = 0; i + 1 < n; i++)
            if (same_key(idx[i], idx[i + 1]))
                dead[idx[i] - pr] = 1;
        vk_mem_free(idx);
    }
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (!dead[i])
            pr[k++] = pr[i];
    p->nprops = k;
    if (dead != small)
        vk_mem_free(dead);
    return 0;
}

/* Move the scratch entries into `node` (NULL: drop them). */
static int flush_entries(struct vk__kdl_parser *p, struct vk_kdl_node *node)
{
    int rc = 0;
    if (node && p->nargs) {
        node->args = vk_pool_alloc(p->pool, p->nargs * sizeof(*node->args));
        if (!node->args) {
            rc = vk__kdl_oom(p);
            goto out;
        }
        memcpy(node->args, p->args, p->nargs * sizeof(*node->args));
        node->nargs = (uint32_t)p->nargs; /* < VK_KDL_MAX_INPUT: an entry takes 2+ bytes */
    }
    if (node && p->nprops) {
        rc = dedupe_props(p);
        if (rc)
            goto out;
        node->props = vk_pool_alloc(p->pool, p->nprops * sizeof(*node->props));
        if (!node->props) {
            rc = vk__kdl_oom(p);
            goto out;
        }
        memcpy(node->props, p->props, p->nprops * sizeof(*node->props));
        node->nprops = (uint32_t)p->nprops;
    }
out:
    p->nargs = 0;
    p->nprops = 0;
    return rc;
}

/* At '{': a children block. `node` NULL discards it. */
static int parse_children(struct vk__kdl_parser *p, struct vk_kdl_node *node, unsigned depth)
{
    size_t open = p->pos;
    if (depth >= VK_KDL_MAX_DEPTH)
        return vk__kdl_fail(p, open, "children blocks nested too deeply (more than %d levels)",
                            VK_KDL_MAX_DEPTH);
    p->pos++;
    struct vk_kdl_node *first = NULL;
    size_t count = 0;
    int rc = vk__kdl_parse_nodes(p, depth + 1, node == NULL, &first, &count);
    if (rc)
        return rc;
    if (p->pos >= p->len)
        return vk__kdl_fail(p, open, "unclosed children block: '}' expected");
    p->pos++; /* '}' */
    if (node) {
        node->children = first;
        node->nchildren = (uint32_t)count; /* < VK_KDL_MAX_INPUT: a node takes 1+ bytes */
    }
    return 0;
}

/* One node at p->pos (after any slashdash). `node` is NULL when discarded. */
static int parse_node(struct vk__kdl_parser *p, struct vk_kdl_node *node, unsigned depth)
{
    const unsigned char *s = p->s;
    struct vk_kdl_str type = {NULL, 0};
    struct vk_kdl_pos pos = vk__kdl_pos(p, p->pos);
    bool any = false;
    int rc;
    p->nargs = 0;
    p->nprops = 0;
    if (s[p->pos] == '(') {
        rc = parse_type(p, &type);
        if (rc)
            return rc;
        rc = vk__kdl_node_space(p, &any);
        if (rc)
            return rc;
    }
    struct vk_kdl_str name = {NULL, 0};
    rc = parse_value_or_string(p, "a node name", &name, NULL, NULL);
    if (rc)
        return rc;
    if (node) {
        node->name = name;
        node->pos = pos;
        if (type.ptr) {
            rc = keep_type(p, type, &node->type);
            if (rc)
                return rc;
        }
    }
    bool flushed = false;
    bool seen_block = false; /* any children block, slashdashed or not */
    bool real_block = false; /* a children block that is kept */
    for (;;) {
        any = false;
        rc = vk__kdl_node_space(p, &any);
        if (rc)
            return rc;
        if (p->pos >= p->len)
            break;
        size_t at = p->pos;
        unsigned char b = s[at];
        if (b == ';') {
            p->pos++;
            break;
        }
        size_t nl = vk__kdl_nl_len(p, at);
        if (nl) {
            p->pos += nl;
            vk__kdl_newline(p, p->pos);
            break;
        }
        if (b == '/' && at + 1 < p->len && s[at + 1] == '/')
            break; /* the caller's line-space takes the comment */
        if (b == '}') {
            if (depth == 0)
                return vk__kdl_fail(p, at, "unexpected '}' outside of a children block");
            break;
        }
        if (b == '{') {
            if (real_block)
                return vk__kdl_fail(p, at, "a node can have only one children block");
            if (!flushed) {
                rc = flush_entries(p, node);
                if (rc)
                    return rc;
                flushed = true;
            }
            real_block = true;
            if (node) {
                node->has_block = true;
                node->block_pos = vk__kdl_pos(p, at);
            }
            rc = parse_children(p, node, depth);
            if (rc)
                return rc;
            seen_block = true;
            continue;
        }
        if (at2(p, '/', '-')) {
            p->pos += 2;
            rc = vk__kdl_line_space(p);
            if (rc)
                return rc;
            if (p->pos >= p->len || s[p->pos] == ';' || s[p->pos] == '}') {
                char buf[16];
                return vk__kdl_fail(p, at,
                                    "'/-' must be followed by an argument, a property or a "
                                    "children block, found %s",
                                    vk__kdl_describe(p, p->pos, buf));
            }
            if (s[p->pos] == '{') {
                if (!flushed) {
                    rc = flush_entries(p, node);
                    if (rc)
                        return rc;
                    flushed = true;
                }
                rc = parse_children(p, NULL, depth);
                if (rc)
                    return rc;
                seen_block = true;
                continue;
            }
            if (seen_block)
                return vk__kdl_fail(p, at,
                                    "arguments and properties must come before the children "
                                    "block");
            if (!can_start_entry(p, p->pos))
                return vk__kdl_bad_char(p, p->pos, "");
            rc = parse_entry(p, false);
            if (rc)
                return rc;
            continue;
        }
        if (!can_start_entry(p, at))
            return vk__kdl_bad_char(p, at, "");
        if (seen_block)
            return vk__kdl_fail(p, at,
                                "arguments and properties must come before the children block; "
                                "a node ends with ';' or a newline");
        if (!any) {
            char buf[16];
            return vk__kdl_fail(p, at, "expected whitespace before %s",
                                vk__kdl_describe(p, at, buf));
        }
        rc = parse_entry(p, node != NULL);
        if (rc)
            return rc;
    }
    if (!flushed)
        return flush_entries(p, node);
    return 0;
}

int vk__kdl_parse_nodes(struct vk__kdl_parser *p, unsigned depth, bool discard,
                        struct vk_kdl_node **first, size_t *count)
{
    struct vk_kdl_node *tail = NULL;
    *first = NULL;
    *count = 0;
    for (;;) {
        int rc = vk__kdl_line_space(p);
        if (rc)
            return rc;
        if (p->pos >= p->len) {
            if (depth > 0)
                return 0; /* the caller reports the unclosed block */
            return 0;
        }
        size_t at = p->pos;
        unsigned char b = p->s[at];
        if (b == '}') {
            if (depth == 0)
                return vk__kdl_fail(p, at, "unexpected '}' outside of a children block");
            return 0;
        }
        bool skip = discard;
        if (at2(p, '/', '-')) {
            p->pos += 2;
            rc = vk__kdl_line_space(p);
            if (rc)
                return rc;
            if (p->pos >= p->len || p->s[p->pos] == '}') {
                char buf[16];
                return vk__kdl_fail(p, at, "'/-' must be followed by a node, found %s",
                                    vk__kdl_describe(p, p->pos, buf));
            }
            skip = true;
        }
        struct vk_kdl_node *node = NULL;
        if (!skip) {
            node = vk_pool_zalloc(p->pool, sizeof(*node));
            if (!node)
                return vk__kdl_oom(p);
        }
        rc = parse_node(p, node, depth);
        if (rc)
            return rc;
        if (node) {
            if (tail)
                tail->next = node;
            else
                *first = node;
            tail = node;
            (*count)++;
        }
    }
}
