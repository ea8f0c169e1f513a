/*
 * kdl — a KDL 2.0 document parser and canonical writer (https://kdl.dev).
 *
 * vk_kdl_parse() turns UTF-8 text into a tree of nodes; every node, argument
 * and property keeps the line and column where it starts in the source, so
 * later stages (the workflow loader) can point at them in error messages.
 * vk_kdl_write() prints a document in the canonical form of the official test
 * suite. No I/O happens here: callers read the file.
 *
 * Memory: a document owns one arena (struct vk_pool); every node, value and
 * string hanging off it lives there and is released by vk_kdl_doc_free().
 * Strings are decoded UTF-8, NUL-terminated, with an explicit length.
 *
 * Limits: nesting deeper than VK_KDL_MAX_DEPTH children blocks is an error,
 * not a stack overflow. The input need not be NUL-terminated.
 *
 * Thread-safety: documents are immutable after parsing and may be read from
 * several threads; parsing itself uses no shared state.
 */
#ifndef VULCAN_KDL_H
#define VULCAN_KDL_H

#include "vulcan/util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------- Types */

#define VK_KDL_MAX_DEPTH 256

/** A position in the source: 1-based line and column (column in code points). */
struct vk_kdl_pos {
    uint32_t line;
    uint32_t col;
    size_t offset; /**< byte offset from the start of the input */
};

/** A string slice owned by the document (NUL-terminated; `len` excludes the NUL). */
struct vk_kdl_str {
    const char *ptr;
    size_t len;
};

enum vk_kdl_kind {
    VK_KDL_STRING, /**< any string form: identifier, quoted, raw, multi-line */
    VK_KDL_INT,    /**< an integer that fits in int64_t: `i` */
    VK_KDL_BIGINT, /**< an integer outside int64_t: `num` holds its decimal digits (with '-') */
    VK_KDL_FLOAT,  /**< a decimal number: `f`, and `num` holds its source text (no '_') */
    VK_KDL_INF,    /**< #inf */
    VK_KDL_NEGINF, /**< #-inf */
    VK_KDL_NAN,    /**< #nan */
    VK_KDL_BOOL,   /**< #true / #false: `b` */
    VK_KDL_NULL    /**< #null */
};

/** An argument or property value. */
struct vk_kdl_value {
    enum vk_kdl_kind kind;
    struct vk_kdl_str type; /**< type annotation `(type)`; ptr NULL when absent */
    struct vk_kdl_str str;  /**< VK_KDL_STRING: the decoded string */
    struct vk_kdl_str num;  /**< VK_KDL_BIGINT/VK_KDL_FLOAT: the number's text */
    int64_t i;
    double f;
    bool b;
    struct vk_kdl_pos pos; /**< where the value (or its type annotation) starts */
};

/** A property `key=value`. After parsing, keys are unique (the last duplicate won). */
struct vk_kdl_prop {
    struct vk_kdl_str key;
    struct vk_kdl_value value;
    struct vk_kdl_pos pos; /**< where the key starts */
};

struct vk_kdl_node {
    struct vk_kdl_str name;
    struct vk_kdl_str type; /**< type annotation; ptr NULL when absent */
    struct vk_kdl_pos pos;  /**< where the node (or its type annotation) starts */

    struct vk_kdl_value *args; /**< arguments in source order */
    size_t nargs;
    struct vk_kdl_prop *props; /**< properties in source order of their last occurrence */
    size_t nprops;

    struct vk_kdl_node *children; /**< first child, NULL when none (or an empty block) */
    size_t nchildren;
    bool has_block;              /**< a `{ }` children block was present (even empty) */
    struct vk_kdl_pos block_pos; /**< where `{` is, when has_block */

    struct vk_kdl_node *next;   /**< next sibling */
    struct vk_kdl_node *parent; /**< NULL for top-level nodes */
};

struct vk_kdl_doc {
    struct vk_kdl_node *nodes; /**< first top-level node, NULL for an empty document */
    size_t nnodes;
    struct vk_pool pool;
};

/* ---------------------------------------------------------------- Lifecycle */

/**
 * Parse `len` bytes of KDL 2.0 at `src` (need not be NUL-terminated).
 * Borrows `src`. On success *out is a new document owned by the caller; free it
 * with vk_kdl_doc_free(). On failure *out is NULL and `err` (may be NULL) holds
 * the message with its line and column.
 * Returns 0, VK_EPARSE (invalid KDL, too deep) or VK_ENOMEM.
 */
int vk_kdl_parse(const char *src, size_t len, struct vk_kdl_doc **out,
                 struct vk_err *err) VK_MUST_CHECK;

/** Free a document and everything in it. Accepts NULL. */
void vk_kdl_doc_free(struct vk_kdl_doc *doc);

/* ---------------------------------------------------------------- Operations */

/**
 * Append the canonical form of `doc` to `out` (the test suite's form: 4-space
 * indents, arguments then properties sorted by key, strings quoted only when
 * they must be, decimal numbers, a final newline; an empty document prints
 * nothing). Returns 0 or a vk_buf error.
 */
int vk_kdl_write(const struct vk_kdl_doc *doc, struct vk_buf *out) VK_MUST_CHECK;

/** Flags for vk_kdl_write_opts(). */
#define VK_KDL_WRITE_SOURCE_ORDER 1u /**< properties in source order, not sorted by key */

/**
 * Like vk_kdl_write() with `flags` (0 = exactly vk_kdl_write()). Borrows `doc`.
 * Returns 0 or a vk_buf error (VK_ENOMEM, VK_ETOOBIG).
 */
int vk_kdl_write_opts(const struct vk_kdl_doc *doc, unsigned flags,
                      struct vk_buf *out) VK_MUST_CHECK;

/** Append a single value in canonical form (with its type annotation). */
int vk_kdl_write_value(const struct vk_kdl_value *v, struct vk_buf *out) VK_MUST_CHECK;

/** Append `s` as an identifier if it may be bare, else as a quoted string. */
int vk_kdl_write_ident(const char *s, size_t len, struct vk_buf *out) VK_MUST_CHECK;

/** True when the string `s` equals the NUL-terminated `lit`. */
bool vk_kdl_str_eq(struct vk_kdl_str s, const char *lit);

/** The first property named `key` of `node`, or NULL. Returns borrowed (valid until the doc is
 * freed). */
const struct vk_kdl_prop *vk_kdl_prop_get(const struct vk_kdl_node *node, const char *key);

/** A short name for a value kind ("string", "integer", ...), for error messages. */
const char *vk_kdl_kind_name(enum vk_kdl_kind kind);

#endif /* VULCAN_KDL_H */
