/*
 * Glob matching: trigger filters, the `=~` condition operator, workflow file globs.
 *
 * The pattern is compiled into tokens and matched by simulating the
 * non-deterministic automaton over the input one code point at a time, so the
 * work is bounded by len(input) * tokens whatever the pattern (no exponential
 * backtracking on inputs like "a*a*a*a*b").
 */
#include "vulcan/util.h"

#include <string.h>

#define GLOB_MAX_TOKENS 1024

enum tok_kind {
    T_LIT,   /* one code point, bytes in `b` */
    T_ONE,   /* ?: one code point but '/' */
    T_STAR,  /* *: any run without '/' */
    T_DSTAR, /* **: any run; with `dirs`, "**" + "/" may also match nothing */
};

struct tok {
    enum tok_kind kind;
    bool dirs; /* T_DSTAR followed by a '/' token that it may skip together with itself */
    unsigned char n;
    unsigned char b[4];
};

/* Length of the code point at s (1 for an invalid byte, so every byte is consumed). */
static size_t cp_len(const char *s, size_t avail)
{
    uint32_t cp;
    size_t n = vk_utf8_decode((const unsigned char *)s, avail, &cp);
    return n ? n : 1;
}

static size_t compile(const char *p, struct tok *t)
{
    size_t n = 0, plen = strlen(p);
    size_t i = 0;
    while (i < plen) {
        if (n == GLOB_MAX_TOKENS)
            return SIZE_MAX;
        struct tok *k = &t[n];
        memset(k, 0, sizeof(*k));
        if (p[i] == '*') {
            if (i + 1 < plen && p[i + 1] == '*') {
                bool at_dir_start = i == 0 || p[i - 1] == '/';
                k->kind = T_DSTAR;
                i += 2;
                while (i < plen && p[i] == '*')
                    i++;
                /* "**" directly before '/' at the start or after a '/': zero directories ok. */
                if (at_dir_start && i < plen && p[i] == '/')
                    k->dirs = true;
            } else {
                k->kind = T_STAR;
                i++;
            }
        } else if (p[i] == '?') {
            k->kind = T_ONE;
            i++;
        } else {
            if (p[i] == '\\' && i + 1 < plen)
                i++;
            size_t l = cp_len(p + i, plen - i);
            k->kind = T_LIT;
            k->n = (unsigned char)l;
            memcpy(k->b, p + i, l);
            i += l;
        }
        n++;
    }
    return n;
}

/* Add state `i` and everything reachable from it without input. */
static void add_state(bool *set, const struct tok *t, size_t n, size_t i)
{
    while (i <= n && !set[i]) {
        set[i] = true;
        if (i == n)
            return;
        if (t[i].kind == T_STAR) {
            i++;
        } else if (t[i].kind == T_DSTAR) {
            if (t[i].dirs && i + 2 <= n)
                add_state(set, t, n, i + 2);
            i++;
        } else {
            return;
        }
    }
}

bool vk_glob_match(const char *pattern, const char *s)
{
    struct tok t[GLOB_MAX_TOKENS];
    bool a[GLOB_MAX_TOKENS + 1], b[GLOB_MAX_TOKENS + 1];
    size_t n = compile(pattern, t);
    if (n == SIZE_MAX)
        return false;
    bool *cur = a, *next = b;
    memset(cur, 0, n + 1);
    add_state(cur, t, n, 0);
    size_t slen = strlen(s);
    size_t pos = 0;
    while (pos < slen) {
        size_t l = cp_len(s + pos, slen - pos);
        bool any = false;
        memset(next, 0, n + 1);
        for (size_t i = 0; i < n; i++) {
            if (!cur[i])
                continue;
            const struct tok *k = &t[i];
            switch (k->kind) {
            case T_LIT:
                if (k->n == l && memcmp(k->b, s + pos, l) == 0)
                    add_state(next, t, n, i + 1);
                break;
            case T_ONE:
                if (s[pos] != '/')
                    add_state(next, t, n, i + 1);
                break;
            case T_STAR:
                if (s[pos] != '/')
                    add_state(next, t, n, i);
                break;
            case T_DSTAR:
                add_state(next, t, n, i);
                break;
            }
        }
        for (size_t i = 0; i <= n; i++)
            any |= next[i];
        if (!any)
            return false;
        bool *tmp = cur;
        cur = next;
        next = tmp;
        pos += l;
    }
    return cur[n];
}
