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
 * Strings are decoded UTF-8, NUL-terminated, with an explicit length; short
 * ones are interned (equal strings of one document may share storage), so they
 * are read-only.
 *
 * Limits: nesting deeper than VK_KDL_MAX_DEPTH children blocks is an error,
 * not a stack overflow. Inputs longer than VK_KDL_MAX_INPUT (4 GiB) are
 * refused with VK_ETOOBIG. The input need not be NUL-terminated.
 *
 * Size: the tree is built for small memory (a value is 48 bytes, a property 80,
 * a node 96 on LP64): positions and counts are 32-bit, fields that are never
 * valid together share storage (see struct vk_kdl_value), and type annotations,
 * being rare, hang off a pointer. A node does not point to its parent.
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

/**
 * The largest input vk_kdl_parse() accepts: 4 GiB minus 2 bytes, so that every
 * byte offset, line, column, string length and entry count fits in 32 bits.
 * A longer input fails with VK_ETOOBIG before any byte is read.
 */
#define VK_KDL_MAX_INPUT ((size_t)UINT32_MAX - 1u)

/** A position in the source: 1-based line and column (column in code points). */
struct vk_kdl_pos {
    uint32_t line;
    uint32_t col;
    uint32_t offset; /**< byte offset from the start of the input */
};

/** A string slice owned by the document (NUL-terminated; `len` excludes the NUL). */
struct vk_kdl_str {
    const char *ptr;
    size_t len;
};

enum vk_kdl_kind {
    VK_KDL_STRING, /**< any string form: identifier, quoted, raw, multi-line: `str` */
    VK_KDL_INT,    /**< an integer that fits in int64_t: `i` */
    VK_KDL_BIGINT, /**< an integer outside int64_t: `num` holds its decimal digits (with '-') */
    VK_KDL_FLOAT,  /**< a decimal number: `f`, and `num` holds its source text (no '_') */
    VK_KDL_INF,    /**< #inf */
    VK_KDL_NEGINF, /**< #-inf */
    VK_KDL_NAN,    /**< #nan */
    VK_KDL_BOOL,   /**< #true / #false: `b` */
    VK_KDL_NULL    /**< #null */
};

/**
 * An argument or property value (48 bytes on LP64). Only the fields that `kind`
 * names are valid: `str` and `num` share storage, and so do `i`, `f` and `b`
 * (read `str` only for VK_KDL_STRING, `num` for BIGINT/FLOAT, `i` for INT, `f`
 * for FLOAT, `b` for BOOL).
 */
struct vk_kdl_value {
    union {
        struct vk_kdl_str str; /**< VK_KDL_STRING: the decoded string */
        struct vk_kdl_str num; /**< VK_KDL_BIGINT/VK_KDL_FLOAT: the number's text */
    };
    union {
        int64_t i; /**< VK_KDL_INT */
        double f;  /**< VK_KDL_FLOAT */
        bool b;    /**< VK_KDL_BOOL */
    };
    const struct vk_kdl_str *type; /**< type annotation `(type)`; NULL when absent */
    struct vk_kdl_pos pos;         /**< where the value (or its type annotation) starts */
    enum vk_kdl_kind kind;
};

/** A property `key=value` (80 bytes on LP64). After parsing, keys are unique (the last
 * duplicate won). */
struct vk_kdl_prop {
    struct vk_kdl_str key;
    struct vk_kdl_value value;
    struct vk_kdl_pos pos; /**< where the key starts */
};

/** A node (96 bytes on LP64). Counts are 32-bit: the input cap (VK_KDL_MAX_INPUT) bounds them. */
struct vk_kdl_node {
    struct vk_kdl_str name;
    const struct vk_kdl_str *type; /**< type annotation; NULL when absent */

    struct vk_kdl_value *args;    /**< arguments in source order */
    struct vk_kdl_prop *props;    /**< properties in source order of their last occurrence */
    struct vk_kdl_node *children; /**< first child, NULL when none (or an empty block) */
    struct vk_kdl_node *next;     /**< next sibling */

    struct vk_kdl_pos pos;       /**< where the node (or its type annotation) starts */
    struct vk_kdl_pos block_pos; /**< where `{` is, when has_block (else all zero) */
    uint32_t nargs;
    uint32_t nprops;
    uint32_t nchildren;
    bool has_block; /**< a `{ }` children block was present (even empty) */
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
 * Returns 0, VK_EPARSE (invalid KDL, too deep), VK_ETOOBIG (`len` above
 * VK_KDL_MAX_INPUT) or VK_ENOMEM.
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
