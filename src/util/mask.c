/*
 * mask.c — streaming masker: derived forms of each value, one Aho–Corasick
 * automaton over all of them, a held-back tail of at most (longest form - 1)
 * bytes between writes.
 *
 * The automaton: node 0 is the root with a dense 256-entry transition table;
 * other nodes keep their children in a sibling list (first child, next
 * sibling). `match` of a node is the length of the longest form that is a
 * suffix of the node's string (its own, or through the failure links), so at
 * every position one memset marks the bytes to hide. `depth` of the current
 * state is how many trailing bytes may still become part of a form: only bytes
 * before those are emitted.
 *
 * A filter keeps the automaton off most bytes: a bitmap of the hashes of the first
 * FILTER_Q bytes of every form (all forms are longer). In the root state the scan
 * skips every position whose next FILTER_Q bytes are not such a start, and a state
 * shallower than FILTER_Q whose start fails the filter drops to its failure link:
 * no form can start there, so nothing is lost, and ordinary text costs one hash
 * and one bit test per byte.
 */
#include "vulcan/mask.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

struct form {
    unsigned char *p;
    size_t n;
};

struct node {
    uint32_t child;   /* first child, 0 = none */
    uint32_t sibling; /* next sibling, 0 = none */
    uint32_t fail;
    uint32_t depth;
    uint32_t match; /* longest form ending here, 0 = none */
    unsigned char byte;
};

#define FILTER_Q 4
#define FILTER_BITS 16

struct vk_mask {
    struct form *forms;
    size_t nforms, capforms;
    size_t form_bytes;
    size_t nvalues;

    bool dirty; /* forms changed since the automaton was built */
    struct node *nodes;
    size_t nnodes, capnodes;
    uint32_t root[256];
    uint64_t filter[(1u << FILTER_BITS) / 64];

    uint32_t state;
    unsigned char *pend; /* held-back bytes */
    unsigned char *flag; /* 1 = part of a form */
    size_t npend, cappend;
    size_t run_start; /* [run_start, npend) is flagged; SIZE_MAX when the last byte is not */
    bool last_masked; /* the last byte emitted was masked (a run goes on: no second "***") */
    struct vk_buf out;
};

static void wipe(void *p, size_t n)
{
    if (p && n)
        explicit_bzero(p, n);
}

struct vk_mask *vk_mask_new(void)
{
    struct vk_mask *m = vk_mem_xcalloc(1, sizeof(*m));
    m->run_start = SIZE_MAX;
    vk_buf_init(&m->out, SIZE_MAX / 2);
    return m;
}

void vk_mask_free(struct vk_mask *m)
{
    if (!m)
        return;
    for (size_t i = 0; i < m->nforms; i++) {
        wipe(m->forms[i].p, m->forms[i].n);
        vk_mem_free(m->forms[i].p);
    }
    vk_mem_free(m->forms);
    wipe(m->nodes, m->nnodes * sizeof(*m->nodes));
    vk_mem_free(m->nodes);
    wipe(m->pend, m->cappend);
    vk_mem_free(m->pend);
    vk_mem_free(m->flag);
    wipe(m->out.data, m->out.cap);
    vk_buf_release(&m->out);
    wipe(m, sizeof(*m));
    vk_mem_free(m);
}

size_t vk_mask_values(const struct vk_mask *m)
{
    return m->nvalues;
}

size_t vk_mask_forms(const struct vk_mask *m)
{
    return m->nforms;
}

size_t vk_mask_held(const struct vk_mask *m)
{
    return m->npend;
}

/* ---------------------------------------------------------------- Forms */

/* A list of candidate forms of one value, before they join the masker. */
struct forms {
    struct form *v;
    size_t n, cap;
    int rc;
};

/* Take ownership of `p` (`n` bytes) as a form, unless too short or a duplicate. */
static void forms_take(struct forms *f, unsigned char *p, size_t n)
{
    if (!p) {
        f->rc = VK_ENOMEM;
        return;
    }
    bool keep = n >= VK_MASK_MIN_VALUE && f->rc == 0;
    for (size_t i = 0; keep && i < f->n; i++)
        if (f->v[i].n == n && memcmp(f->v[i].p, p, n) == 0)
            keep = false;
    if (keep && vk_array_grow(&f->v, &f->cap, f->n + 1, 16, sizeof(*f->v)) < 0) {
        f->rc = VK_ENOMEM;
        keep = false;
    }
    if (!keep) {
        wipe(p, n);
        vk_mem_free(p);
        return;
    }
    f->v[f->n].p = p;
    f->v[f->n].n = n;
    f->n++;
}

static void forms_copy(struct forms *f, const unsigned char *p, size_t n)
{
    if (n < VK_MASK_MIN_VALUE)
        return;
    unsigned char *c = vk_mem_alloc(n);
    if (c)
        memcpy(c, p, n);
    forms_take(f, c, n);
}

static void forms_release(struct forms *f)
{
    for (size_t i = 0; i < f->n; i++) {
        wipe(f->v[i].p, f->v[i].n);
        vk_mem_free(f->v[i].p);
    }
    vk_mem_free(f->v);
}

/* Each line of a multi-line value, without a trailing CR. */
static void add_lines(struct forms *f, const unsigned char *v, size_t n)
{
    if (!memchr(v, '\n', n))
        return;
    size_t i = 0;
    while (i <= n) {
        const unsigned char *nl = i < n ? memchr(v + i, '\n', n - i) : NULL;
        size_t e = nl ? (size_t)(nl - v) : n;
        size_t len = e - i;
        if (len > 0 && v[i + len - 1] == '\r')
            len--;
        forms_copy(f, v + i, len);
        i = e + 1;
    }
}

static const char B64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
static const char B64URL[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/*
 * The value encoded after `k` (0..2) bytes of other data: only the characters
 * made of value bits alone, [ceil(8k/6), floor(8(k+n)/6)), which appear
 * whatever the bytes around are and whether or not the text is padded.
 */
static void add_base64(struct forms *f, const unsigned char *v, size_t n, unsigned k,
                       const char *alpha)
{
    size_t total = k + n;
    size_t first = (8 * k + 5) / 6, last = (8 * total) / 6;
    if (last <= first)
        return;
    unsigned char *out = vk_mem_alloc(last - first);
    if (!out) {
        f->rc = VK_ENOMEM;
        return;
    }
    size_t o = 0;
    for (size_t ci = first; ci < last; ci++) {
        size_t bit = 6 * ci; /* first bit of the character in the k-shifted stream */
        unsigned val = 0;
        for (unsigned b = 0; b < 6; b++) {
            size_t pos = bit + b, byte = pos / 8;
            unsigned bitv = 0;
            if (byte >= k && byte < total)
                bitv = (v[byte - k] >> (7 - pos % 8)) & 1u;
            val = (val << 1) | bitv;
        }
        out[o++] = (unsigned char)alpha[val];
    }
    forms_take(f, out, o);
}

static bool unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

/* Percent-encoding: every byte outside the unreserved set and `safe` as %XX; `plus`: ' ' as '+'. */
static void add_percent(struct forms *f, const unsigned char *v, size_t n, const char *safe,
                        bool plus, bool upper)
{
    const char *hex = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    unsigned char *out = vk_mem_alloc(3 * n);
    if (!out) {
        f->rc = VK_ENOMEM;
        return;
    }
    size_t o = 0;
    bool changed = false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = v[i];
        if (unreserved(c) || (c && strchr(safe, c))) {
            out[o++] = c;
        } else if (plus && c == ' ') {
            out[o++] = '+';
            changed = true;
        } else {
            out[o++] = '%';
            out[o++] = (unsigned char)hex[c >> 4];
            out[o++] = (unsigned char)hex[c & 15];
            changed = true;
        }
    }
    if (!changed) { /* the raw form covers it */
        wipe(out, 3 * n);
        vk_mem_free(out);
        return;
    }
    forms_take(f, out, o);
}

/* Every byte as %XX (some encoders escape unreserved characters too). */
static void add_percent_all(struct forms *f, const unsigned char *v, size_t n, bool upper)
{
    const char *hex = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    unsigned char *out = vk_mem_alloc(3 * n);
    if (!out) {
        f->rc = VK_ENOMEM;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        out[3 * i] = '%';
        out[3 * i + 1] = (unsigned char)hex[v[i] >> 4];
        out[3 * i + 2] = (unsigned char)hex[v[i] & 15];
    }
    forms_take(f, out, 3 * n);
}

/* Decode one UTF-8 sequence at v[i..n); 0 when invalid. */
static size_t utf8_seq(const unsigned char *v, size_t n, size_t i, uint32_t *cp)
{
    return vk_utf8_decode(v + i, n - i, cp);
}

/*
 * JSON string escaping: '"', '\\' and the short escapes, other control bytes
 * as \u00XX; `upper`: hex digits in upper case (jansson) or lower (JSON.stringify,
 * Python); `ascii`: non-ASCII as \uXXXX with surrogate pairs (Python's default,
 * jansson's JSON_ENSURE_ASCII); `slash`: '/' as "\/".
 */
static void add_json(struct forms *f, const unsigned char *v, size_t n, bool upper, bool ascii,
                     bool slash)
{
    const char *hex = upper ? "0123456789ABCDEF" : "0123456789abcdef";
    unsigned char *out = vk_mem_alloc(12 * n); /* a 4-byte sequence: two \uXXXX */
    if (!out) {
        f->rc = VK_ENOMEM;
        return;
    }
    size_t o = 0;
    bool changed = false;
    for (size_t i = 0; i < n;) {
        unsigned char c = v[i];
        const char *esc = NULL;
        switch (c) {
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
        case '/':
            esc = slash ? "\\/" : NULL;
            break;
        default:
            break;
        }
        if (esc) {
            memcpy(out + o, esc, 2);
            o += 2;
            i++;
            changed = true;
            continue;
        }
        uint32_t cps[2];
        size_t ncp = 0, adv = 1;
        if (c < 0x20) {
            cps[ncp++] = c;
        } else if (c >= 0x80 && ascii) {
            uint32_t cp = 0;
            adv = utf8_seq(v, n, i, &cp);
            if (adv == 0) { /* not UTF-8: no encoder emits an ASCII form of it */
                wipe(out, 12 * n);
                vk_mem_free(out);
                return;
            }
            if (cp >= 0x10000) {
                cps[ncp++] = 0xD800 + ((cp - 0x10000) >> 10);
                cps[ncp++] = 0xDC00 + ((cp - 0x10000) & 0x3FF);
            } else {
                cps[ncp++] = cp;
            }
        }
        if (ncp == 0) {
            out[o++] = c;
            i++;
            continue;
        }
        for (size_t k = 0; k < ncp; k++) {
            out[o++] = '\\';
            out[o++] = 'u';
            out[o++] = (unsigned char)hex[(cps[k] >> 12) & 15];
            out[o++] = (unsigned char)hex[(cps[k] >> 8) & 15];
            out[o++] = (unsigned char)hex[(cps[k] >> 4) & 15];
            out[o++] = (unsigned char)hex[cps[k] & 15];
        }
        i += adv;
        changed = true;
    }
    if (!changed) {
        wipe(out, 12 * n);
        vk_mem_free(out);
        return;
    }
    forms_take(f, out, o);
}

int vk_mask_add(struct vk_mask *m, const char *value, size_t n)
{
    if (!value || n < VK_MASK_MIN_VALUE || n > VK_MASK_MAX_VALUE)
        return VK_EINVAL;
    const unsigned char *v = (const unsigned char *)value;
    struct forms f = {0};
    forms_copy(&f, v, n);
    add_lines(&f, v, n);
    for (unsigned k = 0; k < 3; k++) {
        add_base64(&f, v, n, k, B64);
        add_base64(&f, v, n, k, B64URL);
    }
    static const struct {
        const char *safe;
        bool plus;
    } pct[] = {
        {"", false},      /* RFC 3986 (curl, jq @uri, Go PathEscape) */
        {"!'()*", false}, /* encodeURIComponent */
        {"/", false},     /* Python urllib.parse.quote */
        {"", true},       /* form encoding: quote_plus, URLSearchParams */
    };
    for (size_t i = 0; i < VK_ARRAY_LEN(pct); i++) {
        add_percent(&f, v, n, pct[i].safe, pct[i].plus, true);
        add_percent(&f, v, n, pct[i].safe, pct[i].plus, false);
    }
    add_percent_all(&f, v, n, true); /* every byte: xxd -p | sed 's/../%&/g' and the like */
    add_percent_all(&f, v, n, false);
    for (unsigned bits = 0; bits < 8; bits++)
        add_json(&f, v, n, bits & 1, bits & 2, bits & 4);
    int rc = f.rc;
    size_t bytes = 0;
    for (size_t i = 0; i < f.n; i++)
        bytes += f.v[i].n;
    if (rc == 0 && bytes > VK_MASK_MAX_FORM_BYTES - m->form_bytes)
        rc = VK_ETOOBIG;
    if (rc == 0 &&
        vk_array_grow(&m->forms, &m->capforms, m->nforms + f.n, 64, sizeof(*m->forms)) < 0)
        rc = VK_ENOMEM;
    if (rc != 0) {
        forms_release(&f);
        return rc;
    }
    for (size_t i = 0; i < f.n; i++) {
        bool dup = false;
        for (size_t j = 0; j < m->nforms && !dup; j++)
            dup = m->forms[j].n == f.v[i].n && memcmp(m->forms[j].p, f.v[i].p, f.v[i].n) == 0;
        if (dup) {
            wipe(f.v[i].p, f.v[i].n);
            vk_mem_free(f.v[i].p);
            continue;
        }
        m->forms[m->nforms++] = f.v[i];
        m->form_bytes += f.v[i].n;
    }
    vk_mem_free(f.v);
    m->nvalues++;
    m->dirty = true;
    return 0;
}

/* ---------------------------------------------------------------- Automaton */

static uint32_t child_of(const struct vk_mask *m, uint32_t s, unsigned char c)
{
    if (s == 0)
        return m->root[c];
    for (uint32_t k = m->nodes[s].child; k; k = m->nodes[k].sibling)
        if (m->nodes[k].byte == c)
            return k;
    return 0;
}

static inline uint32_t filter_hash(const unsigned char *p)
{
    uint32_t w;
    memcpy(&w, p, sizeof w);
    return (w * 0x9E3779B1u) >> (32 - FILTER_BITS);
}

/* Whether a form may start at `p` (FILTER_Q bytes readable). */
static inline bool maybe_start(const struct vk_mask *m, const unsigned char *p)
{
    uint32_t h = filter_hash(p);
    return (m->filter[h >> 6] >> (h & 63)) & 1u;
}

static int build(struct vk_mask *m)
{
    size_t need = 1 + m->form_bytes;
    if (need > UINT32_MAX)
        return VK_ETOOBIG;
    if (need > m->capnodes) {
        struct node *nn = vk_mem_realloc(m->nodes, need * sizeof(*nn));
        if (!nn)
            return VK_ENOMEM;
        m->nodes = nn;
        m->capnodes = need;
    }
    m->nnodes = 1;
    memset(&m->nodes[0], 0, sizeof(m->nodes[0]));
    memset(m->root, 0, sizeof(m->root));
    memset(m->filter, 0, sizeof(m->filter));
    for (size_t i = 0; i < m->nforms; i++) {
        VK_ASSERT(m->forms[i].n >= FILTER_Q);
        uint32_t h = filter_hash(m->forms[i].p);
        m->filter[h >> 6] |= UINT64_C(1) << (h & 63);
        uint32_t s = 0;
        for (size_t j = 0; j < m->forms[i].n; j++) {
            unsigned char c = m->forms[i].p[j];
            uint32_t k = child_of(m, s, c);
            if (!k) {
                k = (uint32_t)m->nnodes++;
                struct node *nd = &m->nodes[k];
                memset(nd, 0, sizeof(*nd));
                nd->byte = c;
                nd->depth = m->nodes[s].depth + 1;
                if (s == 0) {
                    m->root[c] = k;
                } else {
                    nd->sibling = m->nodes[s].child;
                    m->nodes[s].child = k;
                }
            }
            s = k;
        }
        m->nodes[s].match = (uint32_t)m->forms[i].n;
    }
    /* Breadth-first: nodes are numbered so that a parent precedes its children,
     * but not level by level; a queue gives the order failure links need. */
    uint32_t *queue = vk_mem_alloc(m->nnodes * sizeof(*queue));
    if (!queue)
        return VK_ENOMEM;
    size_t qh = 0, qt = 0;
    for (unsigned c = 0; c < 256; c++)
        if (m->root[c]) {
            m->nodes[m->root[c]].fail = 0;
            queue[qt++] = m->root[c];
        }
    while (qh < qt) {
        uint32_t u = queue[qh++];
        for (uint32_t v = m->nodes[u].child; v; v = m->nodes[v].sibling) {
            unsigned char c = m->nodes[v].byte;
            uint32_t f = m->nodes[u].fail;
            uint32_t t;
            while ((t = child_of(m, f, c)) == 0 && f != 0)
                f = m->nodes[f].fail;
            m->nodes[v].fail = t;
            if (m->nodes[t].match > m->nodes[v].match)
                m->nodes[v].match = m->nodes[t].match;
            queue[qt++] = v;
        }
    }
    vk_mem_free(queue);
    m->dirty = false;
    return 0;
}

static inline uint32_t step(const struct vk_mask *m, uint32_t s, unsigned char c)
{
    for (;;) {
        uint32_t t = child_of(m, s, c);
        if (t || s == 0)
            return t;
        s = m->nodes[s].fail;
    }
}

/* Run the automaton over pend[from, npend), marking matches. */
static void scan(struct vk_mask *m, size_t from)
{
    if (m->nnodes <= 1)
        return;
    uint32_t s = m->state;
    const struct node *nodes = m->nodes;
    const unsigned char *p = m->pend;
    size_t n = m->npend;
    for (size_t i = from; i < n; i++) {
        if (s == 0) {
            size_t i0 = i;
            while (i + FILTER_Q <= n && !maybe_start(m, p + i))
                i++;
            if (i != i0)
                m->run_start = SIZE_MAX;
            if (i >= n)
                break;
        }
        s = step(m, s, p[i]);
        uint32_t len = nodes[s].match;
        if (!len) {
            m->run_start = SIZE_MAX;
        } else {
            size_t start = i + 1 - len;
            if (m->run_start == SIZE_MAX) {
                memset(m->flag + start, 1, len);
                m->run_start = start;
            } else { /* [run_start, i) is flagged already */
                m->flag[i] = 1;
                if (start < m->run_start) {
                    memset(m->flag + start, 1, m->run_start - start);
                    m->run_start = start;
                }
            }
        }
        /* A shallow state whose start no form can have: fall back (see the top). */
        while (s != 0 && nodes[s].depth < FILTER_Q) {
            size_t at = i + 1 - nodes[s].depth;
            if (at + FILTER_Q > n || maybe_start(m, p + at))
                break;
            s = nodes[s].fail;
        }
    }
    m->state = s;
}

/* Append pend[0, n) to the output with "***" for flagged runs, then drop it. */
static int emit(struct vk_mask *m, size_t n)
{
    size_t i = 0;
    while (i < n) {
        if (m->flag[i]) {
            if (!m->last_masked && vk_buf_add(&m->out, VK_MASK_TEXT, 3) < 0)
                return VK_ENOMEM;
            m->last_masked = true;
            const unsigned char *z = memchr(m->flag + i, 0, n - i);
            i = z ? (size_t)(z - m->flag) : n;
        } else {
            const unsigned char *o = memchr(m->flag + i, 1, n - i);
            size_t e = o ? (size_t)(o - m->flag) : n;
            if (vk_buf_add(&m->out, m->pend + i, e - i) < 0)
                return VK_ENOMEM;
            m->last_masked = false;
            i = e;
        }
    }
    if (n > 0) {
        wipe(m->pend, n);
        memmove(m->pend, m->pend + n, m->npend - n);
        memmove(m->flag, m->flag + n, m->npend - n);
        m->npend -= n;
        if (m->run_start != SIZE_MAX)
            m->run_start = m->run_start >= n ? m->run_start - n : 0;
    }
    return 0;
}

static void deliver(struct vk_mask *m, vk_mask_out_fn out, void *ctx)
{
    if (m->out.len > 0 && out)
        out(ctx, m->out.data, m->out.len);
    wipe(m->out.data, m->out.len);
    vk_buf_reset(&m->out);
}

int vk_mask_write(struct vk_mask *m, const char *data, size_t len, vk_mask_out_fn out, void *ctx)
{
    if (len == 0)
        return 0;
    if (m->dirty) {
        int rc = build(m);
        if (rc != 0)
            return rc;
        /* Held-back bytes were kept for the old forms: run the new automaton over them. */
        m->state = 0;
        m->run_start = SIZE_MAX;
        scan(m, 0);
    }
    if (m->nnodes <= 1 && m->npend == 0) {
        if (out)
            out(ctx, data, len);
        m->last_masked = false;
        return 0;
    }
    if (len > SIZE_MAX / 2 - m->npend)
        return VK_ENOMEM;
    size_t need = m->npend + len;
    if (need > m->cappend) {
        size_t cap = m->cappend ? m->cappend : 4096;
        while (cap < need)
            cap *= 2;
        unsigned char *p = vk_mem_alloc(cap), *fl = vk_mem_alloc(cap);
        if (!p || !fl) {
            vk_mem_free(p);
            vk_mem_free(fl);
            return VK_ENOMEM;
        }
        if (m->npend) {
            memcpy(p, m->pend, m->npend);
            memcpy(fl, m->flag, m->npend);
        }
        wipe(m->pend, m->cappend);
        vk_mem_free(m->pend);
        vk_mem_free(m->flag);
        m->pend = p;
        m->flag = fl;
        m->cappend = cap;
    }
    size_t from = m->npend;
    uint32_t state0 = m->state;
    size_t run0 = m->run_start;
    bool last0 = m->last_masked;
    memcpy(m->pend + from, data, len);
    memset(m->flag + from, 0, len);
    m->npend += len;
    scan(m, from);
    size_t hold = m->nnodes > 1 ? m->nodes[m->state].depth : 0;
    int rc = emit(m, m->npend - hold);
    if (rc != 0) {
        /* As if the chunk had not been written (emit shifts nothing when it fails), so a
         * retry of it is masked once; a mark it set on older bytes stays (more masked). */
        wipe(m->out.data, m->out.len);
        vk_buf_reset(&m->out);
        wipe(m->pend + from, len);
        m->npend = from;
        m->state = state0;
        m->run_start = run0;
        m->last_masked = last0;
        return rc;
    }
    deliver(m, out, ctx);
    return 0;
}

void vk_mask_flush(struct vk_mask *m, vk_mask_out_fn out, void *ctx)
{
    if (emit(m, m->npend) == 0)
        deliver(m, out, ctx);
    vk_buf_reset(&m->out);
    wipe(m->pend, m->npend);
    m->npend = 0;
    m->state = 0;
    m->run_start = SIZE_MAX;
    m->last_masked = false;
}

struct to_buf {
    struct vk_buf *b;
    int rc;
};

static void to_buf(void *ctx, const char *data, size_t len)
{
    struct to_buf *t = ctx;
    if (t->rc == 0 && vk_buf_add(t->b, data, len) < 0)
        t->rc = VK_ETOOBIG;
}

int vk_mask_buf(struct vk_mask *m, const char *data, size_t len, struct vk_buf *out)
{
    struct to_buf t = {out, 0};
    int rc = vk_mask_write(m, data, len, to_buf, &t);
    if (rc == 0)
        vk_mask_flush(m, to_buf, &t);
    return rc != 0 ? rc : t.rc;
}
