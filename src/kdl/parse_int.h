/*
 * Private to the kdl module: the parser state shared by parse.c (whitespace,
 * comments, positions, document), node.c (nodes and entries), string.c
 * (strings) and number.c (numbers). One parser is used by one thread.
 */
#ifndef VULCAN_KDL_PARSE_INT_H
#define VULCAN_KDL_PARSE_INT_H

#include "vulcan/kdl.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** A growable scratch byte buffer (heap, reused across strings). */
struct vk__kdl_sbuf {
    char *data;
    size_t len;
    size_t cap;
};

/** One slot of the string intern table: a string already in the pool. */
struct vk__kdl_islot {
    const char *ptr; /* NULL: empty slot */
    uint32_t len;
    uint32_t hash;
};

struct vk__kdl_parser {
    const unsigned char *s; /* input, not NUL-terminated */
    size_t len;
    size_t pos;

    uint32_t line;     /* line of `pos` */
    size_t line_start; /* byte offset where that line starts */
    size_t cc_off;     /* column cache: offset on the current line ... */
    uint32_t cc_col;   /* ... and its column */

    struct vk_pool *pool;
    struct vk_err *err;

    struct vk_kdl_value *args; /* scratch for the current node's arguments */
    size_t nargs, capargs;
    struct vk_kdl_prop *props; /* scratch for the current node's properties */
    size_t nprops, capprops;
    struct vk__kdl_sbuf sbuf; /* string decoding */
    struct vk__kdl_sbuf obuf; /* multi-line string output */
    char *scur, *send;        /* byte-aligned string space carved from the pool */

    /* Short strings (names, keys, short values) repeat: each distinct one is stored once.
     * Open addressing, power-of-two size, bounded (see parse.c). */
    struct vk__kdl_islot *itab;
    uint32_t imask; /* slots - 1; 0 before the first use */
    uint32_t iused;
};

/** A saved position, for a short lookahead. */
struct vk__kdl_mark {
    size_t pos;
    uint32_t line;
    size_t line_start;
    size_t cc_off;
    uint32_t cc_col;
};

static inline struct vk__kdl_mark vk__kdl_save(const struct vk__kdl_parser *p)
{
    struct vk__kdl_mark m = {p->pos, p->line, p->line_start, p->cc_off, p->cc_col};
    return m;
}

static inline void vk__kdl_restore(struct vk__kdl_parser *p, struct vk__kdl_mark m)
{
    p->pos = m.pos;
    p->line = m.line;
    p->line_start = m.line_start;
    p->cc_off = m.cc_off;
    p->cc_col = m.cc_col;
}

/** Length in bytes of the newline at offset `i` (CR LF is one), 0 when there is none. */
static inline size_t vk__kdl_nl_len(const struct vk__kdl_parser *p, size_t i)
{
    if (i >= p->len)
        return 0;
    unsigned char b = p->s[i];
    if (b == '\n' || b == 0x0b || b == 0x0c)
        return 1;
    if (b == '\r')
        return (i + 1 < p->len && p->s[i + 1] == '\n') ? 2 : 1;
    if (b == 0xc2)
        return (i + 1 < p->len && p->s[i + 1] == 0x85) ? 2 : 0;
    if (b == 0xe2)
        return (i + 2 < p->len && p->s[i + 1] == 0x80 &&
                (p->s[i + 2] == 0xa8 || p->s[i + 2] == 0xa9))
                   ? 3
                   : 0;
    return 0;
}

/** Record that a newline ended just before offset `after`. */
static inline void vk__kdl_newline(struct vk__kdl_parser *p, size_t after)
{
    p->line++;
    p->line_start = after;
    p->cc_off = after;
    p->cc_col = 1;
}

/* parse.c */
int vk__kdl_fail(struct vk__kdl_parser *p, size_t off, const char *fmt, ...) VK_PRINTF(3, 4);
int vk__kdl_oom(struct vk__kdl_parser *p);
int vk__kdl_bad_char(struct vk__kdl_parser *p, size_t off, const char *where);
const char *vk__kdl_describe(const struct vk__kdl_parser *p, size_t off, char buf[16]);
uint32_t vk__kdl_col(struct vk__kdl_parser *p, size_t off);
struct vk_kdl_pos vk__kdl_pos(struct vk__kdl_parser *p, size_t off);
/** Allocate `n` bytes of string storage (no alignment) from the pool; NULL on OOM (error
 * recorded). */
char *vk__kdl_str_alloc(struct vk__kdl_parser *p, size_t n);
/**
 * A NUL-terminated copy of `n` bytes in string storage; NULL on OOM (error recorded).
 * Short strings are interned: equal ones share one copy, so the result is read-only.
 */
const char *vk__kdl_strdup(struct vk__kdl_parser *p, const char *s, size_t n);
int vk__kdl_sbuf_reserve(struct vk__kdl_parser *p, struct vk__kdl_sbuf *b, size_t extra);
int vk__kdl_node_space(struct vk__kdl_parser *p, bool *any);
int vk__kdl_line_space(struct vk__kdl_parser *p);
void vk__kdl_parser_release(struct vk__kdl_parser *p);

/* node.c: parse `nodes` until end of input (depth 0) or a '}' (left unconsumed). */
int vk__kdl_parse_nodes(struct vk__kdl_parser *p, unsigned depth, bool discard,
                        struct vk_kdl_node **first, size_t *count);

/* string.c: at '"' or '#': parse a quoted or raw string (any form) into the pool. */
int vk__kdl_parse_quoted(struct vk__kdl_parser *p, struct vk_kdl_str *out);
int vk__kdl_parse_raw(struct vk__kdl_parser *p, struct vk_kdl_str *out);

/* number.c: fill `v` from the bare number text [start, end). */
int vk__kdl_parse_number(struct vk__kdl_parser *p, size_t start, size_t end,
                         struct vk_kdl_value *v);

#endif /* VULCAN_KDL_PARSE_INT_H */
