/*
 * KDL 2.0 parser: one pass of recursive descent over the bytes, building the
 * tree straight into the document's arena.
 *
 * Speed notes: ASCII is classified with one table load (vk__kdl_cls); only
 * bytes >= 0x80 are decoded. Strings without escapes are copied into the pool
 * with one memcpy. Arguments and properties of the node being parsed collect in
 * reusable scratch vectors and are copied into the pool once per node. Columns
 * are computed lazily from a per-line cache, so tracking them costs nothing
 * per character.
 *
 * Bounds: every read checks `pos < len`; the input is never assumed to be
 * NUL-terminated. Recursion happens only for children blocks and is capped at
 * VK_KDL_MAX_DEPTH.
 */
#include "kdl_int.h"
#include "parse_int.h"
#include "vulcan/kdl.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* clang-format off */
const unsigned char vk__kdl_cls[256] = {
    16, 16, 16, 16, 16, 16, 16, 16, 16,  2,  4,  4,  4,  4, 16, 16,
    16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16, 16,
     2,  1,  0,  0,  1,  1,  1,  1,  0,  0,  1,  1,  1,  1,  1,  0,
     1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  0,  1,  0,  1,  1,
     1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,
     1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  0,  0,  0,  1,  1,
     1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,
     1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  1,  0,  1,  0,  1, 16,
     8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,
     8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,
     8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,
     8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,
     8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,
     8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,
     8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,
     8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,  8,
};
/* clang-format on */

#define CLS(b) (vk__kdl_cls[(unsigned char)(b)])

bool vk__kdl_is_keyword(const char *s, size_t len)
{
    switch (len) {
    case 3:
        return memcmp(s, "inf", 3) == 0 || memcmp(s, "nan", 3) == 0;
    case 4:
        return memcmp(s, "true", 4) == 0 || memcmp(s, "null", 4) == 0 || memcmp(s, "-inf", 4) == 0;
    case 5:
        return memcmp(s, "false", 5) == 0;
    default:
        return false;
    }
}

/* ---------------------------------------------------------------- Errors, positions */

/* The line and column of byte `off`, computed from the start: for error paths only. */
static void locate(const struct vk__kdl_parser *p, size_t off, uint32_t *line, uint32_t *col)
{
    uint32_t l = 1, c = 1;
    size_t i = 0;
    if (off > p->len)
        off = p->len;
    if (p->len >= 3 && memcmp(p->s, "\xef\xbb\xbf", 3) == 0 && off >= 3)
        i = 3;
    while (i < off) {
        size_t n = vk__kdl_nl_len(p, i);
        if (n) {
            l++;
            c = 1;
            i += n;
            continue;
        }
        if ((p->s[i] & 0xc0) != 0x80)
            c++;
        i++;
    }
    *line = l;
    *col = c;
}

int vk__kdl_fail(struct vk__kdl_parser *p, size_t off, const char *fmt, ...)
{
    uint32_t line, col;
    if (off >= p->line_start && off <= p->len) {
        line = p->line;
        col = vk__kdl_col(p, off);
    } else {
        locate(p, off, &line, &col);
    }
    va_list ap;
    va_start(ap, fmt);
    int rc = vk_err_vsetpos(p->err, VK_EPARSE, line, col, fmt, ap);
    va_end(ap);
    return rc;
}

int vk__kdl_oom(struct vk__kdl_parser *p)
{
    return vk_err_set(p->err, VK_ENOMEM, "out of memory");
}

uint32_t vk__kdl_col(struct vk__kdl_parser *p, size_t off)
{
    if (off < p->cc_off || p->cc_off < p->line_start) {
        p->cc_off = p->line_start;
        p->cc_col = 1;
    }
    const unsigned char *s = p->s;
    uint32_t col = p->cc_col;
    for (size_t i = p->cc_off; i < off; i++)
        col += (s[i] & 0xc0) != 0x80;
    p->cc_off = off;
    p->cc_col = col;
    return col;
}

struct vk_kdl_pos vk__kdl_pos(struct vk__kdl_parser *p, size_t off)
{
    struct vk_kdl_pos r;
    if (off >= p->line_start) {
        r.line = p->line;
        r.col = vk__kdl_col(p, off);
    } else {
        locate(p, off, &r.line, &r.col);
    }
    r.offset = (uint32_t)off; /* off <= len <= VK_KDL_MAX_INPUT */
    return r;
}

/* Describe the character at `off` for an error message ("'x'", "U+2028", "end of input"). */
const char *vk__kdl_describe(const struct vk__kdl_parser *p, size_t off, char buf[16])
{
    if (off >= p->len)
        return "end of input";
    unsigned char b = p->s[off];
    if (b >= 0x21 && b < 0x7f) {
        snprintf(buf, 16, "'%c'", b);
        return buf;
    }
    uint32_t cp = b;
    if (b >= 0x80 && vk_utf8_decode(p->s + off, p->len - off, &cp) == 0)
        return "invalid UTF-8";
    if (cp == '\n' || cp == '\r')
        return "end of line";
    snprintf(buf, 16, "U+%04X", (unsigned)cp);
    return buf;
}

/* Report the (bad) character at `off`: disallowed, invalid UTF-8 or simply unexpected. */
int vk__kdl_bad_char(struct vk__kdl_parser *p, size_t off, const char *where)
{
    char buf[16];
    uint32_t cp = 0;
    if (off < p->len) {
        unsigned char b = p->s[off];
        if (b >= 0x80 && vk_utf8_decode(p->s + off, p->len - off, &cp) == 0)
            return vk__kdl_fail(p, off, "invalid UTF-8");
        if (b < 0x80)
            cp = b;
        if (vk__kdl_is_disallowed(cp))
            return vk__kdl_fail(p, off, "code point U+%04X is not allowed in a document",
                                (unsigned)cp);
    }
    return vk__kdl_fail(p, off, "unexpected %s%s", vk__kdl_describe(p, off, buf), where);
}

/* ---------------------------------------------------------------- Scratch */

/* Strings need no alignment: pack them into 4 KiB blocks of the pool instead of paying
 * the pool's 16-byte rounding for every short name. Long strings get their own block. */
#define STR_BLOCK 4096

char *vk__kdl_str_alloc(struct vk__kdl_parser *p, size_t n)
{
    if (n <= (size_t)(p->send - p->scur) && p->scur) {
        char *r = p->scur;
        p->scur += n;
        return r;
    }
    if (n > STR_BLOCK / 4) {
        char *r = vk_pool_alloc(p->pool, n);
        if (!r)
            vk__kdl_oom(p);
        return r;
    }
    char *b = vk_pool_alloc(p->pool, STR_BLOCK);
    if (!b) {
        vk__kdl_oom(p);
        return NULL;
    }
    p->scur = b + n;
    p->send = b + STR_BLOCK;
    return b;
}

static char *copy_str(struct vk__kdl_parser *p, const char *s, size_t n)
{
    if (n >= SIZE_MAX - 1) {
        vk__kdl_oom(p);
        return NULL;
    }
    char *r = vk__kdl_str_alloc(p, n + 1);
    if (!r)
        return NULL;
    if (n)
        memcpy(r, s, n);
    r[n] = '\0';
    return r;
}

/*
 * Interning. Node names, property keys and many short values repeat all through a
 * document; storing each distinct one once saves about half of the string bytes of
 * bench/kdl_parse's workflow-shaped document. Only strings up to INTERN_MAX_LEN
 * bytes take part (longer ones rarely repeat and cost more to hash). The table
 * starts at INTERN_MIN_SLOTS and doubles at half load up to INTERN_MAX_SLOTS
 * (256 KiB of scratch); once that is half full, new strings are still looked up
 * but simply copied.
 */
#define INTERN_MAX_LEN 32
#define INTERN_MIN_SLOTS 256u
#define INTERN_MAX_SLOTS 16384u

static uint32_t str_hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 16777619u;
    }
    return h;
}

/* Make room for one more entry. Returns 0, or VK_ENOMEM (recorded). Sets *full when the
 * table is at its bound and must not take more entries. */
static int intern_room(struct vk__kdl_parser *p, bool *full)
{
    uint32_t slots = p->imask ? p->imask + 1 : 0;
    *full = false;
    if (slots && p->iused < slots / 2)
        return 0;
    if (slots >= INTERN_MAX_SLOTS) {
        *full = true;
        return 0;
    }
    uint32_t ns = slots ? slots * 2 : INTERN_MIN_SLOTS;
    struct vk__kdl_islot *t = vk_mem_calloc(ns, sizeof(*t));
    if (!t)
        return vk__kdl_oom(p);
    for (uint32_t i = 0; i < slots; i++) {
        if (!p->itab[i].ptr)
            continue;
        uint32_t k = p->itab[i].hash & (ns - 1);
        while (t[k].ptr)
            k = (k + 1) & (ns - 1);
        t[k] = p->itab[i];
    }
    vk_mem_free(p->itab);
    p->itab = t;
    p->imask = ns - 1;
    return 0;
}

const char *vk__kdl_strdup(struct vk__kdl_parser *p, const char *s, size_t n)
{
    if (n > INTERN_MAX_LEN)
        return copy_str(p, s, n);
    bool full;
    if (intern_room(p, &full))
        return NULL;
    uint32_t h = str_hash(s, n);
    uint32_t k = h & p->imask;
    for (; p->itab[k].ptr; k = (k + 1) & p->imask) {
        const struct vk__kdl_islot *e = &p->itab[k];
        /* `s` may be NULL when n is 0 (an empty scratch buffer): no memcmp then. */
        if (e->hash == h && e->len == n && (n == 0 || memcmp(e->ptr, s, n) == 0))
            return e->ptr;
    }
    char *c = copy_str(p, s, n);
    if (c && !full) {
        p->itab[k].ptr = c;
        p->itab[k].len = (uint32_t)n;
        p->itab[k].hash = h;
        p->iused++;
    }
    return c;
}

int vk__kdl_sbuf_reserve(struct vk__kdl_parser *p, struct vk__kdl_sbuf *b, size_t extra)
{
    if (extra > SIZE_MAX / 2 - b->len ||
        vk_array_grow(&b->data, &b->cap, b->len + extra, 256, 1) < 0)
        return vk__kdl_oom(p);
    return 0;
}

/* ---------------------------------------------------------------- Whitespace, comments */

/* Decode the code point at `i` (a byte >= 0x80). Returns its length, or 0 after recording an
 * error for invalid UTF-8. */
static size_t decode_at(struct vk__kdl_parser *p, size_t i, uint32_t *cp)
{
    size_t n = vk_utf8_decode(p->s + i, p->len - i, cp);
    if (n == 0)
        vk__kdl_fail(p, i, "invalid UTF-8");
    return n;
}

/*
 * Check that the code point at `i` may appear in a comment or string and step over it,
 * counting a newline when it is one. Returns the new offset or 0 on error (offsets are
 * never 0 after a character). `nl` is set when the character was a newline.
 */
static size_t step_char(struct vk__kdl_parser *p, size_t i, bool *nl)
{
    unsigned char b = p->s[i];
    *nl = false;
    if (b < 0x80) {
        unsigned c = CLS(b);
        if (c & VK__KDL_C_NL) {
            size_t n = vk__kdl_nl_len(p, i);
            vk__kdl_newline(p, i + n);
            *nl = true;
            return i + n;
        }
        if (c & VK__KDL_C_BAD) {
            vk__kdl_bad_char(p, i, "");
            return 0;
        }
        return i + 1;
    }
    uint32_t cp;
    size_t n = decode_at(p, i, &cp);
    if (!n)
        return 0;
    if (vk__kdl_is_disallowed(cp)) {
        vk__kdl_bad_char(p, i, "");
        return 0;
    }
    if (cp == 0x85 || cp == 0x2028 || cp == 0x2029) {
        vk__kdl_newline(p, i + n);
        *nl = true;
    }
    return i + n;
}

/* At "/ *": skip a (nested) block comment. */
static int skip_block_comment(struct vk__kdl_parser *p)
{
    size_t start = p->pos;
    size_t i = p->pos + 2;
    size_t depth = 1;
    const unsigned char *s = p->s;
    size_t len = p->len;
    while (i < len) {
        unsigned char b = s[i];
        if (b == '*' && i + 1 < len && s[i + 1] == '/') {
            i += 2;
            if (--depth == 0) {
                p->pos = i;
                return 0;
            }
            continue;
        }
        if (b == '/' && i + 1 < len && s[i + 1] == '*') {
            i += 2;
            depth++;
            continue;
        }
        if (CLS(b) & (VK__KDL_C_IDENT | VK__KDL_C_SPACE)) {
            i++;
            continue;
        }
        bool nl;
        i = step_char(p, i, &nl);
        if (!i)
            return VK_EPARSE;
    }
    return vk__kdl_fail(p, start, "unterminated block comment");
}

/* At "//": skip to and over the end of the line. */
static int skip_line_comment(struct vk__kdl_parser *p)
{
    size_t i = p->pos + 2;
    const unsigned char *s = p->s;
    size_t len = p->len;
    while (i < len) {
        unsigned char b = s[i];
        if (CLS(b) & (VK__KDL_C_IDENT | VK__KDL_C_SPACE) || b == '"' || b == '/' || b == '(' ||
            b == ')' || b == '{' || b == '}' || b == '#' || b == '=' || b == ';' || b == '\\' ||
            b == '[' || b == ']') {
            i++;
            continue;
        }
        bool nl;
        i = step_char(p, i, &nl);
        if (!i)
            return VK_EPARSE;
        if (nl)
            break;
    }
    p->pos = i;
    return 0;
}

/* ws*: unicode spaces and block comments. Sets *any when something was skipped. */
static int skip_ws(struct vk__kdl_parser *p, bool *any)
{
    const unsigned char *s = p->s;
    size_t len = p->len;
    for (;;) {
        size_t i = p->pos;
        while (i < len && (CLS(s[i]) & VK__KDL_C_SPACE))
            i++;
        if (i != p->pos) {
            *any = true;
            p->pos = i;
        }
        if (i >= len)
            return 0;
        unsigned char b = s[i];
        if (b == '/' && i + 1 < len && s[i + 1] == '*') {
            int rc = skip_block_comment(p);
            if (rc)
                return rc;
            *any = true;
            continue;
        }
        if (b >= 0x80) {
            uint32_t cp;
            size_t n = decode_at(p, i, &cp);
            if (!n)
                return VK_EPARSE;
            if (vk__kdl_is_space(cp)) {
                p->pos = i + n;
                *any = true;
                continue;
            }
        }
        return 0;
    }
}

int vk__kdl_node_space(struct vk__kdl_parser *p, bool *any)
{
    for (;;) {
        int rc = skip_ws(p, any);
        if (rc)
            return rc;
        if (p->pos >= p->len || p->s[p->pos] != '\\')
            return 0;
        /* escline := '\' ws* (single-line-comment | newline | eof) */
        size_t at = p->pos;
        p->pos++;
        bool dummy = false;
        rc = skip_ws(p, &dummy);
        if (rc)
            return rc;
        if (p->pos >= p->len) {
            *any = true;
            return 0;
        }
        size_t n = vk__kdl_nl_len(p, p->pos);
        if (n) {
            p->pos += n;
            vk__kdl_newline(p, p->pos);
        } else if (p->s[p->pos] == '/' && p->pos + 1 < p->len && p->s[p->pos + 1] == '/') {
            rc = skip_line_comment(p);
            if (rc)
                return rc;
        } else {
            return vk__kdl_fail(p, at, "expected a newline after line continuation '\\'");
        }
        *any = true;
    }
}

int vk__kdl_line_space(struct vk__kdl_parser *p)
{
    for (;;) {
        bool any = false;
        int rc = vk__kdl_node_space(p, &any);
        if (rc)
            return rc;
        if (p->pos >= p->len)
            return 0;
        size_t n = vk__kdl_nl_len(p, p->pos);
        if (n) {
            p->pos += n;
            vk__kdl_newline(p, p->pos);
            continue;
        }
        if (p->s[p->pos] == '/' && p->pos + 1 < p->len && p->s[p->pos + 1] == '/') {
            rc = skip_line_comment(p);
            if (rc)
                return rc;
            continue;
        }
        return 0;
    }
}

/* ---------------------------------------------------------------- Document */

void vk_kdl_doc_free(struct vk_kdl_doc *doc)
{
    if (!doc)
        return;
    vk_pool_release(&doc->pool);
    vk_mem_free(doc);
}

int vk_kdl_parse(const char *src, size_t len, struct vk_kdl_doc **out, struct vk_err *err)
{
    *out = NULL;
    vk_err_clear(err);
    if (!src && len)
        return vk_err_set(err, VK_EINVAL, "no input");
    if (len > VK_KDL_MAX_INPUT)
        return vk_err_set(err, VK_ETOOBIG, "input too large: %zu bytes (at most %zu)", len,
                          (size_t)VK_KDL_MAX_INPUT);
    struct vk_kdl_doc *doc = vk_mem_calloc(1, sizeof(*doc));
    if (!doc)
        return vk_err_set(err, VK_ENOMEM, "out of memory");
    /* Bigger chunks for big documents: fewer mallocs, same bound on waste (< 1/4 chunk). */
    size_t chunk = 64 * 1024;
    while (chunk < len / 16 && chunk < 4u * 1024 * 1024)
        chunk *= 2;
    vk_pool_init(&doc->pool, chunk);

    struct vk__kdl_parser p;
    memset(&p, 0, sizeof(p));
    p.s = (const unsigned char *)(src ? src : "");
    p.len = len;
    p.line = 1;
    p.cc_col = 1;
    p.pool = &doc->pool;
    p.err = err;
    if (len >= 3 && memcmp(src, "\xef\xbb\xbf", 3) == 0) {
        p.pos = 3;
        p.line_start = 3;
        p.cc_off = 3;
    }
    int rc = vk__kdl_parse_nodes(&p, 0, false, &doc->nodes, &doc->nnodes);
    vk__kdl_parser_release(&p);
    if (rc) {
        vk_kdl_doc_free(doc);
        return rc;
    }
    *out = doc;
    return 0;
}

void vk__kdl_parser_release(struct vk__kdl_parser *p)
{
    vk_mem_free(p->args);
    vk_mem_free(p->props);
    vk_mem_free(p->sbuf.data);
    vk_mem_free(p->obuf.data);
    vk_mem_free(p->itab);
    p->itab = NULL;
    p->imask = 0;
    p->iused = 0;
    p->args = NULL;
    p->props = NULL;
    p->sbuf.data = NULL;
    p->obuf.data = NULL;
}
