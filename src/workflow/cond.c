/*
 * The condition language: tokenizer, recursive-descent parser and evaluator.
 * Grammar and semantics: include/vulcan/workflow.h and docs/workflow.md.
 */
#include "vulcan/workflow.h"

#include <string.h>

enum ctok { CT_END, CT_VAR, CT_STR, CT_EQ, CT_NE, CT_MATCH, CT_AND, CT_OR, CT_NOT, CT_LP, CT_RP };

struct cparser {
    const char *src;
    size_t len;
    size_t pos;
    struct vk_pool *pool;
    struct vk_err *err;
    unsigned depth;
    /* The current token. */
    enum ctok tok;
    size_t tok_off;
    const char *text; /* CT_VAR / CT_STR: decoded text in the pool */
    size_t text_len;
};

static const char *tok_name(enum ctok t)
{
    switch (t) {
    case CT_END:
        return "the end of the condition";
    case CT_VAR:
        return "a variable";
    case CT_STR:
        return "a string";
    case CT_EQ:
        return "'=='";
    case CT_NE:
        return "'!='";
    case CT_MATCH:
        return "'=~'";
    case CT_AND:
        return "'&&'";
    case CT_OR:
        return "'||'";
    case CT_NOT:
        return "'!'";
    case CT_LP:
        return "'('";
    case CT_RP:
        return "')'";
    }
    return "?";
}

/* Column (1-based, in code points) of byte offset `off` of the source. */
static uint32_t col_of(const char *src, size_t off)
{
    uint32_t col = 1;
    for (size_t i = 0; i < off; i++) {
        if (((unsigned char)src[i] & 0xc0) != 0x80)
            col++;
    }
    return col;
}

static int perr(struct cparser *p, size_t off, const char *fmt, ...) VK_PRINTF(3, 4);
static int perr(struct cparser *p, size_t off, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vk_err_vsetpos(p->err, VK_EPARSE, 1, col_of(p->src, off), fmt, ap);
    va_end(ap);
    return rc;
}

static bool is_name_start(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
}

static bool is_name_char(char c)
{
    return is_name_start(c) || (c >= '0' && c <= '9');
}

static int lex_string(struct cparser *p)
{
    char q = p->src[p->pos];
    size_t start = p->pos;
    size_t i = p->pos + 1;
    /* The decoded text is never longer than the source. */
    char *out = vk_pool_alloc(p->pool, p->len - start + 1);
    size_t o = 0;
    if (!out)
        return vk_err_set(p->err, VK_ENOMEM, "out of memory");
    for (;;) {
        if (i >= p->len)
            return perr(p, start, "unterminated string: missing closing %c", q);
        char c = p->src[i];
        if (c == q)
            break;
        if (c == '\\') {
            if (i + 1 >= p->len)
                return perr(p, start, "unterminated string: missing closing %c", q);
            char e = p->src[i + 1];
            if (e != '\\' && e != '\'' && e != '"')
                return perr(p, i, "unknown escape '\\%c' in a string (only \\\\, \\' and \\\")",
                            e >= 0x20 && e < 0x7f ? e : '?');
            out[o++] = e;
            i += 2;
            continue;
        }
        out[o++] = c;
        i++;
    }
    out[o] = '\0';
    p->text = out;
    p->text_len = o;
    p->tok = CT_STR;
    p->pos = i + 1;
    return 0;
}

static int lex(struct cparser *p)
{
    while (p->pos < p->len && (p->src[p->pos] == ' ' || p->src[p->pos] == '\t' ||
                               p->src[p->pos] == '\n' || p->src[p->pos] == '\r'))
        p->pos++;
    p->tok_off = p->pos;
    if (p->pos >= p->len) {
        p->tok = CT_END;
        return 0;
    }
    char c = p->src[p->pos];
    char d = p->pos + 1 < p->len ? p->src[p->pos + 1] : '\0';
    switch (c) {
    case '$': {
        size_t i = p->pos + 1;
        bool brace = d == '{';
        if (brace)
            i++;
        size_t ns = i;
        if (i >= p->len || !is_name_start(p->src[i]))
            return perr(p, p->pos, "expected a variable name after '$'");
        while (i < p->len && is_name_char(p->src[i]))
            i++;
        size_t ne = i;
        if (brace) {
            if (i >= p->len || p->src[i] != '}')
                return perr(p, i, "expected '}' to close '${'");
            i++;
        }
        p->text = vk_pool_strndup(p->pool, p->src + ns, ne - ns);
        if (!p->text)
            return vk_err_set(p->err, VK_ENOMEM, "out of memory");
        p->text_len = ne - ns;
        p->tok = CT_VAR;
        p->pos = i;
        return 0;
    }
    case '\'':
    case '"':
        return lex_string(p);
    case '=':
        if (d == '=') {
            p->tok = CT_EQ;
        } else if (d == '~') {
            p->tok = CT_MATCH;
        } else {
            return perr(p, p->pos, "unexpected '='; expected '==' or '=~'");
        }
        p->pos += 2;
        return 0;
    case '!':
        if (d == '=') {
            p->tok = CT_NE;
            p->pos += 2;
        } else {
            p->tok = CT_NOT;
            p->pos++;
        }
        return 0;
    case '&':
        if (d != '&')
            return perr(p, p->pos, "unexpected '&'; expected '&&'");
        p->tok = CT_AND;
        p->pos += 2;
        return 0;
    case '|':
        if (d != '|')
            return perr(p, p->pos, "unexpected '|'; expected '||'");
        p->tok = CT_OR;
        p->pos += 2;
        return 0;
    case '(':
        p->tok = CT_LP;
        p->pos++;
        return 0;
    case ')':
        p->tok = CT_RP;
        p->pos++;
        return 0;
    default:
        break;
    }
    if (is_name_start(c)) {
        size_t e = p->pos;
        while (e < p->len && e - p->pos < 64 && is_name_char(p->src[e]))
            e++;
        size_t q = e;
        while (q < p->len && (p->src[q] == ' ' || p->src[q] == '\t'))
            q++;
        if (q < p->len && p->src[q] == '(' && e - p->pos < 64)
            return perr(p, p->pos,
                        "'%.*s()': conditions have no functions; a fragment runs only when "
                        "everything before it succeeded, and there is no way to run one after "
                        "a failure or a cancel; compare variables instead, e.g. "
                        "$BRANCH == 'main'",
                        (int)(e - p->pos), p->src + p->pos);
        return perr(p, p->pos,
                    "unexpected word; write variables as $NAME and text in quotes ('text')");
    }
    if ((unsigned char)c >= 0x20 && (unsigned char)c < 0x7f)
        return perr(p, p->pos, "unexpected character '%c'", c);
    return perr(p, p->pos, "unexpected character");
}

static struct vk_cond *node(struct cparser *p, enum vk_cond_op op, size_t off)
{
    struct vk_cond *n = vk_pool_zalloc(p->pool, sizeof(*n));
    if (!n) {
        vk_err_set(p->err, VK_ENOMEM, "out of memory");
        return NULL;
    }
    n->op = op;
    n->offset = (uint32_t)off;
    return n;
}

static bool is_string(const struct vk_cond *c)
{
    return c->op == VK_COND_LIT || c->op == VK_COND_VAR;
}

static bool is_cmp(enum ctok t)
{
    return t == CT_EQ || t == CT_NE || t == CT_MATCH;
}

static int parse_or(struct cparser *p, struct vk_cond **out);

static int parse_unary(struct cparser *p, struct vk_cond **out)
{
    int rc;
    if (p->tok == CT_NOT || p->tok == CT_LP) {
        if (++p->depth > VK_WF_MAX_COND_DEPTH)
            return perr(p, p->tok_off, "condition nested too deeply (more than %d levels)",
                        VK_WF_MAX_COND_DEPTH);
    }
    if (p->tok == CT_NOT) {
        struct vk_cond *n = node(p, VK_COND_NOT, p->tok_off);
        if (!n)
            return VK_ENOMEM;
        rc = lex(p);
        if (rc == 0)
            rc = parse_unary(p, &n->l);
        p->depth--;
        *out = n;
        return rc;
    }
    if (p->tok == CT_LP) {
        size_t open = p->tok_off;
        rc = lex(p);
        if (rc == 0)
            rc = parse_or(p, out);
        if (rc < 0)
            return rc;
        if (p->tok != CT_RP)
            return perr(p, p->tok_off, "expected ')' to close the '(' at column %u, found %s",
                        col_of(p->src, open), tok_name(p->tok));
        p->depth--;
        return lex(p);
    }
    if (p->tok == CT_VAR || p->tok == CT_STR) {
        struct vk_cond *n = node(p, p->tok == CT_VAR ? VK_COND_VAR : VK_COND_LIT, p->tok_off);
        if (!n)
            return VK_ENOMEM;
        n->str = p->text;
        n->len = p->text_len;
        *out = n;
        return lex(p);
    }
    return perr(p, p->tok_off, "expected a value ($VAR, 'text', '!' or '('), found %s",
                tok_name(p->tok));
}

static int parse_cmp(struct cparser *p, struct vk_cond **out)
{
    struct vk_cond *l = NULL, *r = NULL;
    int rc = parse_unary(p, &l);
    if (rc < 0)
        return rc;
    if (!is_cmp(p->tok)) {
        *out = l;
        return 0;
    }
    enum ctok t = p->tok;
    size_t off = p->tok_off;
    if (!is_string(l))
        return perr(p, off,
                    "%s compares text, but its left side is a boolean; add parentheses, "
                    "e.g. !($A == 'x')",
                    tok_name(t));
    rc = lex(p);
    if (rc == 0)
        rc = parse_unary(p, &r);
    if (rc < 0)
        return rc;
    if (!is_string(r))
        return perr(p, r->offset, "%s compares text, but its right side is a boolean", tok_name(t));
    if (is_cmp(p->tok))
        return perr(p, p->tok_off, "comparisons cannot be chained; use '&&' or parentheses");
    struct vk_cond *n = node(p,
                             t == CT_EQ   ? VK_COND_EQ
                             : t == CT_NE ? VK_COND_NE
                                          : VK_COND_MATCH,
                             off);
    if (!n)
        return VK_ENOMEM;
    n->l = l;
    n->r = r;
    *out = n;
    return 0;
}

static int parse_and(struct cparser *p, struct vk_cond **out)
{
    struct vk_cond *l = NULL;
    int rc = parse_cmp(p, &l);
    while (rc == 0 && p->tok == CT_AND) {
        struct vk_cond *n = node(p, VK_COND_AND, p->tok_off);
        if (!n)
            return VK_ENOMEM;
        n->l = l;
        rc = lex(p);
        if (rc == 0)
            rc = parse_cmp(p, &n->r);
        l = n;
    }
    *out = l;
    return rc;
}

static int parse_or(struct cparser *p, struct vk_cond **out)
{
    struct vk_cond *l = NULL;
    int rc = parse_and(p, &l);
    while (rc == 0 && p->tok == CT_OR) {
        struct vk_cond *n = node(p, VK_COND_OR, p->tok_off);
        if (!n)
            return VK_ENOMEM;
        n->l = l;
        rc = lex(p);
        if (rc == 0)
            rc = parse_and(p, &n->r);
        l = n;
    }
    *out = l;
    return rc;
}

int vk_cond_parse(const char *src, size_t len, struct vk_pool *pool, struct vk_cond **out,
                  struct vk_err *err)
{
    struct cparser p = {.src = src, .len = len, .pool = pool, .err = err};
    *out = NULL;
    if (len > VK_WF_MAX_COND_LEN)
        return vk_err_setpos(err, VK_ETOOBIG, 1, 1, "condition longer than %d bytes",
                             VK_WF_MAX_COND_LEN);
    if (memchr(src, '\0', len))
        return perr(&p, (size_t)((const char *)memchr(src, '\0', len) - src),
                    "a condition cannot contain a NUL character");
    int rc = lex(&p);
    if (rc < 0)
        return rc;
    if (p.tok == CT_END)
        return perr(&p, 0, "empty condition");
    struct vk_cond *c = NULL;
    rc = parse_or(&p, &c);
    if (rc < 0)
        return rc;
    if (p.tok != CT_END)
        return perr(&p, p.tok_off, "found %s after a complete condition; expected '&&' or '||'",
                    tok_name(p.tok));
    *out = c;
    return 0;
}

/* ---------------------------------------------------------------- Evaluation */

static const char *value_of(const struct vk_cond *c, vk_cond_lookup_fn *lookup, void *ctx)
{
    if (c->op == VK_COND_LIT)
        return c->str;
    const char *v = lookup ? lookup(ctx, c->str) : NULL;
    return v ? v : "";
}

static int eval(const struct vk_cond *c, vk_cond_lookup_fn *lookup, void *ctx, bool *res)
{
    int rc;
    bool a;
    if (!c)
        return VK_EINVAL;
    switch (c->op) {
    case VK_COND_LIT:
    case VK_COND_VAR:
        *res = value_of(c, lookup, ctx)[0] != '\0';
        return 0;
    case VK_COND_EQ:
    case VK_COND_NE:
    case VK_COND_MATCH: {
        if (!c->l || !c->r || !is_string(c->l) || !is_string(c->r))
            return VK_EINVAL;
        const char *l = value_of(c->l, lookup, ctx);
        const char *r = value_of(c->r, lookup, ctx);
        if (c->op == VK_COND_MATCH)
            *res = vk_glob_match(r, l);
        else
            *res = (strcmp(l, r) == 0) == (c->op == VK_COND_EQ);
        return 0;
    }
    case VK_COND_NOT:
        rc = eval(c->l, lookup, ctx, &a);
        *res = !a;
        return rc;
    case VK_COND_AND:
    case VK_COND_OR:
        rc = eval(c->l, lookup, ctx, &a);
        if (rc < 0)
            return rc;
        if (a == (c->op == VK_COND_OR)) {
            *res = a;
            return 0;
        }
        return eval(c->r, lookup, ctx, res);
    }
    return VK_EINVAL;
}

int vk_cond_eval(const struct vk_cond *c, vk_cond_lookup_fn *lookup, void *ctx, bool *result)
{
    bool r = false;
    int rc = eval(c, lookup, ctx, &r);
    *result = rc == 0 && r;
    return rc;
}

const char *vk_cond_lookup_kv(void *ctx, const char *name)
{
    const struct vk_cond_vars *v = ctx;
    const char *found = NULL;
    for (size_t i = 0; v && i < v->n; i++) {
        if (v->vars[i].name && strcmp(v->vars[i].name, name) == 0)
            found = v->vars[i].value;
    }
    return found;
}
