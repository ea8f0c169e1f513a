/*
 * KDL strings: quoted ("..."), raw (#"..."#) and multi-line (""" / #""") forms,
 * decoded into the document's pool.
 *
 * Single-line strings take a fast path: scan to the closing quote and, when no
 * backslash was seen, copy the bytes into the pool with one memcpy.
 *
 * Multi-line strings go through three steps, as the specification orders them:
 * 1. scan to the closing delimiter, resolving whitespace escapes and turning
 *    every literal newline into LF (other escapes are checked and kept as text),
 * 2. dedent by the closing line's whitespace prefix,
 * 3. resolve the remaining escapes.
 */
#include "kdl_int.h"
#include "parse_int.h"

#include <string.h>

/* Append `n` bytes to a scratch buffer. */
static int sb_add(struct vk__kdl_parser *p, struct vk__kdl_sbuf *b, const void *d, size_t n)
{
    if (n == 0)
        return 0;
    int rc = vk__kdl_sbuf_reserve(p, b, n);
    if (rc)
        return rc;
    memcpy(b->data + b->len, d, n);
    b->len += n;
    return 0;
}

/* Append the UTF-8 encoding of scalar value `cp`. */
static int sb_add_cp(struct vk__kdl_parser *p, struct vk__kdl_sbuf *b, uint32_t cp)
{
    char u[4];
    size_t n;
    if (cp < 0x80) {
        u[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (char)(0xc0 | (cp >> 6));
        u[1] = (char)(0x80 | (cp & 0x3f));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (char)(0xe0 | (cp >> 12));
        u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[2] = (char)(0x80 | (cp & 0x3f));
        n = 3;
    } else {
        u[0] = (char)(0xf0 | (cp >> 18));
        u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
        u[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
        u[3] = (char)(0x80 | (cp & 0x3f));
        n = 4;
    }
    return sb_add(p, b, u, n);
}

static int to_pool(struct vk__kdl_parser *p, const char *d, size_t n, struct vk_kdl_str *out)
{
    const char *c = vk__kdl_strdup(p, d, n);
    if (!c)
        return VK_ENOMEM;
    out->ptr = c;
    out->len = n;
    return 0;
}

/*
 * At a backslash at `i` (not a whitespace escape): check the escape, store its length in the
 * source in *n and the code point it stands for in *cp.
 */
static int read_escape(struct vk__kdl_parser *p, size_t i, size_t *n, uint32_t *cp)
{
    const unsigned char *s = p->s;
    if (i + 1 >= p->len)
        return vk__kdl_fail(p, i, "unterminated string");
    *n = 2;
    switch (s[i + 1]) {
    case 'n':
        *cp = '\n';
        return 0;
    case 'r':
        *cp = '\r';
        return 0;
    case 't':
        *cp = '\t';
        return 0;
    case '\\':
        *cp = '\\';
        return 0;
    case '"':
        *cp = '"';
        return 0;
    case 'b':
        *cp = '\b';
        return 0;
    case 'f':
        *cp = '\f';
        return 0;
    case 's':
        *cp = ' ';
        return 0;
    case 'u':
        break;
    default: {
        char buf[16];
        if (s[i + 1] >= 0x21 && s[i + 1] < 0x7f)
            return vk__kdl_fail(p, i, "invalid escape '\\%c'", s[i + 1]);
        return vk__kdl_fail(p, i, "invalid escape: '\\' followed by %s",
                            vk__kdl_describe(p, i + 1, buf));
    }
    }
    size_t j = i + 2;
    if (j >= p->len || s[j] != '{')
        return vk__kdl_fail(p, i, "invalid escape: '\\u' must be followed by '{'");
    j++;
    uint32_t v = 0;
    size_t nd = 0;
    while (j < p->len && vk_hex_value(s[j]) >= 0) {
        if (++nd > 6)
            return vk__kdl_fail(p, i, "invalid unicode escape: more than 6 hex digits");
        v = v * 16 + (uint32_t)vk_hex_value(s[j]);
        j++;
    }
    if (nd == 0 || j >= p->len || s[j] != '}')
        return vk__kdl_fail(p, i, "invalid unicode escape: expected 1 to 6 hex digits and '}'");
    if (v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return vk__kdl_fail(p, i, "invalid unicode escape: U+%X is not a unicode scalar value",
                            (unsigned)v);
    *n = j + 1 - i;
    *cp = v;
    return 0;
}

/*
 * Length of the whitespace or newline character at `i` (0 when it is something else).
 * Returns (size_t)-1 after recording an error for invalid UTF-8.
 */
static size_t space_or_nl(struct vk__kdl_parser *p, size_t i, bool *nl)
{
    *nl = false;
    if (i >= p->len)
        return 0;
    unsigned char b = p->s[i];
    if (b == ' ' || b == '\t')
        return 1;
    size_t n = vk__kdl_nl_len(p, i);
    if (n) {
        *nl = true;
        return n;
    }
    if (b < 0x80)
        return 0;
    uint32_t cp;
    n = vk_utf8_decode(p->s + i, p->len - i, &cp);
    if (!n) {
        vk__kdl_fail(p, i, "invalid UTF-8");
        return (size_t)-1;
    }
    return vk__kdl_is_space(cp) ? n : 0;
}

/* After a backslash at `i` that begins a whitespace escape: skip the whitespace and
 * newlines. Returns the offset after them, or 0 on error. */
static size_t skip_ws_escape(struct vk__kdl_parser *p, size_t i)
{
    i++;
    for (;;) {
        bool nl;
        size_t n = space_or_nl(p, i, &nl);
        if (n == (size_t)-1)
            return 0;
        if (!n)
            return i;
        i += n;
        if (nl)
            vk__kdl_newline(p, i);
    }
}

/*
 * Check one literal character at `i` inside a string (not '"', not '\\').
 * Returns its length; 0 after recording an error. *nl is set for a newline.
 */
static size_t string_char(struct vk__kdl_parser *p, size_t i, bool *nl)
{
    unsigned char b = p->s[i];
    *nl = false;
    if (b < 0x80) {
        if ((b >= 0x20 && b < 0x7f) || b == '\t')
            return 1;
        size_t n = vk__kdl_nl_len(p, i);
        if (n) {
            *nl = true;
            return n;
        }
        vk__kdl_bad_char(p, i, " in string");
        return 0;
    }
    uint32_t cp;
    size_t n = vk_utf8_decode(p->s + i, p->len - i, &cp);
    if (!n) {
        vk__kdl_fail(p, i, "invalid UTF-8");
        return 0;
    }
    if (vk__kdl_is_disallowed(cp)) {
        vk__kdl_bad_char(p, i, " in string");
        return 0;
    }
    *nl = cp == 0x85 || cp == 0x2028 || cp == 0x2029;
    return n;
}

static inline bool plain_ascii(unsigned char b)
{
    return (b >= 0x20 && b < 0x7f && b != '"' && b != '\\') || b == '\t';
}

/* Resolve the escapes (already checked) of `x`/`n` into the scratch buffer `o`. */
static int unescape(struct vk__kdl_parser *p, struct vk__kdl_sbuf *o, const char *x, size_t n)
{
    size_t i = 0;
    while (i < n) {
        const char *bs = memchr(x + i, '\\', n - i);
        size_t run = bs ? (size_t)(bs - (x + i)) : n - i;
        int rc = sb_add(p, o, x + i, run);
        if (rc)
            return rc;
        i += run;
        if (i >= n)
            break;
        uint32_t cp = 0;
        char c = i + 1 < n ? x[i + 1] : 0;
        i += 2;
        switch (c) {
        case 'n':
            cp = '\n';
            break;
        case 'r':
            cp = '\r';
            break;
        case 't':
            cp = '\t';
            break;
        case 'b':
            cp = '\b';
            break;
        case 'f':
            cp = '\f';
            break;
        case 's':
            cp = ' ';
            break;
        case 'u':
            i++; /* '{' */
            while (i < n && x[i] != '}')
                cp = cp * 16 + (uint32_t)vk_hex_value(x[i++]);
            i++;
            break;
        default: /* '\\' and '"' */
            cp = (unsigned char)c;
            break;
        }
        rc = sb_add_cp(p, o, cp);
        if (rc)
            return rc;
    }
    return 0;
}

/* The slow path of a single-line quoted string: escapes present. `i` is at the first
 * backslash, `start` after the opening quote. */
static int quoted_slow(struct vk__kdl_parser *p, size_t open, size_t start, size_t i,
                       struct vk_kdl_str *out)
{
    const unsigned char *s = p->s;
    struct vk__kdl_sbuf *b = &p->sbuf;
    b->len = 0;
    int rc = sb_add(p, b, s + start, i - start);
    if (rc)
        return rc;
    for (;;) {
        size_t r = i;
        while (r < p->len && plain_ascii(s[r]))
            r++;
        if (r != i) {
            rc = sb_add(p, b, s + i, r - i);
            if (rc)
                return rc;
            i = r;
        }
        if (i >= p->len)
            return vk__kdl_fail(p, open, "unterminated string");
        unsigned char c = s[i];
        if (c == '"') {
            p->pos = i + 1;
            return to_pool(p, b->data, b->len, out);
        }
        if (c == '\\') {
            bool nl;
            size_t n = space_or_nl(p, i + 1, &nl);
            if (n == (size_t)-1)
                return VK_EPARSE;
            if (n) {
                i = skip_ws_escape(p, i);
                if (!i)
                    return VK_EPARSE;
                continue;
            }
            uint32_t cp;
            rc = read_escape(p, i, &n, &cp);
            if (rc)
                return rc;
            rc = sb_add_cp(p, b, cp);
            if (rc)
                return rc;
            i += n;
            continue;
        }
        bool nl;
        size_t n = string_char(p, i, &nl);
        if (!n)
            return VK_EPARSE;
        if (nl)
            return vk__kdl_fail(p, i,
                                "newline in a single-line string; use '\\n' or a multi-line "
                                "string (\"\"\")");
        rc = sb_add(p, b, s + i, n);
        if (rc)
            return rc;
        i += n;
    }
}

/* Length of the run of unicode-space characters at the start of `x`/`n` (valid UTF-8). */
static size_t space_prefix(const char *x, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char b = (unsigned char)x[i];
        if (b == ' ' || b == '\t') {
            i++;
            continue;
        }
        if (b < 0x80)
            break;
        uint32_t cp;
        size_t k = vk_utf8_decode((const unsigned char *)x + i, n - i, &cp);
        if (!k || !vk__kdl_is_space(cp))
            break;
        i += k;
    }
    return i;
}

/*
 * A multi-line string. `open` is where it starts (first '#' or the quotes), `q` the first
 * of the three opening quotes, `nh` the number of '#' (raw strings only).
 */
static int multiline(struct vk__kdl_parser *p, size_t open, size_t q, size_t nh, bool raw,
                     struct vk_kdl_str *out)
{
    const unsigned char *s = p->s;
    size_t len = p->len;
    size_t i = q + 3;
    size_t n = vk__kdl_nl_len(p, i);
    if (!n)
        return vk__kdl_fail(p, i,
                            "a multi-line string must start with a newline after its opening "
                            "'\"\"\"'");
    struct vk__kdl_sbuf *b = &p->sbuf;
    b->len = 0;
    size_t close;
    int rc;
    /* Step 1: find the end; resolve whitespace escapes; normalise newlines to LF. */
    for (;;) {
        size_t r = i;
        while (r < len && plain_ascii(s[r]))
            r++;
        if (r != i) {
            rc = sb_add(p, b, s + i, r - i);
            if (rc)
                return rc;
            i = r;
        }
        if (i >= len)
            return vk__kdl_fail(p, open, "unterminated multi-line string");
        unsigned char c = s[i];
        if (c == '"') {
            if (i + 2 < len && s[i + 1] == '"' && s[i + 2] == '"') {
                size_t k = 0;
                while (k < nh && i + 3 + k < len && s[i + 3 + k] == '#')
                    k++;
                if (k == nh) {
                    close = i;
                    p->pos = i + 3 + nh;
                    break;
                }
            }
            rc = sb_add(p, b, "\"", 1);
            if (rc)
                return rc;
            i++;
            continue;
        }
        if (c == '\\' && !raw) {
            bool nl;
            n = space_or_nl(p, i + 1, &nl);
            if (n == (size_t)-1)
                return VK_EPARSE;
            if (n) {
                i = skip_ws_escape(p, i);
                if (!i)
                    return VK_EPARSE;
                continue;
            }
            uint32_t cp;
            rc = read_escape(p, i, &n, &cp);
            if (rc)
                return rc;
            rc = sb_add(p, b, s + i, n);
            if (rc)
                return rc;
            i += n;
            continue;
        }
        if (c == '\\') {
            rc = sb_add(p, b, "\\", 1);
            if (rc)
                return rc;
            i++;
            continue;
        }
        bool nl;
        n = string_char(p, i, &nl);
        if (!n)
            return VK_EPARSE;
        if (nl) {
            rc = sb_add(p, b, "\n", 1);
            vk__kdl_newline(p, i + n);
        } else {
            rc = sb_add(p, b, s + i, n);
        }
        if (rc)
            return rc;
        i += n;
    }

    /* Step 2: the closing line gives the prefix to remove. */
    const char *x = b->data;
    size_t xn = b->len;
    size_t last = xn;
    while (last > 0 && x[last - 1] != '\n')
        last--;
    /* x[0] is the first newline, so last >= 1; the closing line is x[last, xn). */
    const char *prefix = x + last;
    size_t plen = xn - last;
    if (space_prefix(prefix, plen) != plen)
        return vk__kdl_fail(p, close,
                            "the closing '\"\"\"' of a multi-line string must be alone on its "
                            "line, after whitespace only");
    struct vk__kdl_sbuf *o = &p->obuf;
    o->len = 0;
    size_t ln = 1; /* start of the current line */
    unsigned lineno = 1;
    while (ln < last) {
        const char *nlp = memchr(x + ln, '\n', last - ln);
        size_t end = (size_t)(nlp - x); /* a newline always ends the line before `last` */
        const char *line = x + ln;
        size_t ll = end - ln;
        if (lineno > 1) {
            rc = sb_add(p, o, "\n", 1);
            if (rc)
                return rc;
        }
        if (space_prefix(line, ll) != ll) {
            if (ll < plen || memcmp(line, prefix, plen) != 0)
                return vk__kdl_fail(p, open,
                                    "line %u of the multi-line string does not start with "
                                    "the whitespace of its closing line",
                                    lineno);
            /* Step 3: resolve the remaining escapes. */
            rc =
                raw ? sb_add(p, o, line + plen, ll - plen) : unescape(p, o, line + plen, ll - plen);
            if (rc)
                return rc;
        }
        ln = end + 1;
        lineno++;
    }
    return to_pool(p, o->data ? o->data : "", o->len, out);
}

int vk__kdl_parse_quoted(struct vk__kdl_parser *p, struct vk_kdl_str *out)
{
    const unsigned char *s = p->s;
    size_t len = p->len;
    size_t open = p->pos;
    if (open + 2 < len && s[open + 1] == '"' && s[open + 2] == '"')
        return multiline(p, open, open, 0, false, out);
    size_t i = open + 1;
    size_t start = i;
    for (;;) {
        while (i < len && plain_ascii(s[i]))
            i++;
        if (i >= len)
            return vk__kdl_fail(p, open, "unterminated string");
        unsigned char c = s[i];
        if (c == '"') {
            p->pos = i + 1;
            return to_pool(p, (const char *)s + start, i - start, out);
        }
        if (c == '\\')
            return quoted_slow(p, open, start, i, out);
        bool nl;
        size_t n = string_char(p, i, &nl);
        if (!n)
            return VK_EPARSE;
        if (nl)
            return vk__kdl_fail(p, i,
                                "newline in a single-line string; use '\\n' or a multi-line "
                                "string (\"\"\")");
        i += n;
    }
}

int vk__kdl_parse_raw(struct vk__kdl_parser *p, struct vk_kdl_str *out)
{
    const unsigned char *s = p->s;
    size_t len = p->len;
    size_t open = p->pos;
    size_t nh = 0;
    while (open + nh < len && s[open + nh] == '#')
        nh++;
    size_t q = open + nh;
    if (q >= len || s[q] != '"')
        return vk__kdl_fail(p, open, "expected '\"' after '#' to start a raw string");
    if (q + 2 < len && s[q + 1] == '"' && s[q + 2] == '"')
        return multiline(p, open, q, nh, true, out);
    size_t i = q + 1;
    for (;;) {
        while (i < len && ((s[i] >= 0x20 && s[i] < 0x7f && s[i] != '"') || s[i] == '\t'))
            i++;
        if (i >= len)
            return vk__kdl_fail(p, open, "unterminated raw string");
        if (s[i] == '"') {
            size_t k = 0;
            while (k < nh && i + 1 + k < len && s[i + 1 + k] == '#')
                k++;
            if (k == nh) {
                p->pos = i + 1 + nh;
                return to_pool(p, (const char *)s + q + 1, i - (q + 1), out);
            }
            i++;
            continue;
        }
        bool nl;
        size_t n = string_char(p, i, &nl);
        if (!n)
            return VK_EPARSE;
        if (nl)
            return vk__kdl_fail(p, i,
                                "newline in a single-line raw string; use a multi-line raw "
                                "string (#\"\"\")");
        i += n;
    }
}
