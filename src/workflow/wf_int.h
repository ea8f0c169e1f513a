/*
 * Private interface of the workflow module: the loader's state and the helpers
 * the loader files (load.c, load_node.c, trigger.c) share.
 */
#ifndef VULCAN_WF_INT_H
#define VULCAN_WF_INT_H

#include "vulcan/kdl.h"
#include "vulcan/workflow.h"

/* One document on the import stack. */
struct vk__wf_file {
    const char *name; /* display name (errors, pos.file) */
    const char *src;  /* its text, borrowed while it is being loaded */
    size_t len;
    const char *source_url; /* NULL for the top-level document */
    const char *base;       /* directory (or URL prefix ending in '/') for relative imports */
    bool is_url;
    const char *key; /* identity for cycle detection (real path or URL) */
    struct vk__wf_file *parent;
    unsigned depth;
    /* An imported file's parameters (its `param` declarations, valued by the import's
     * `with` block or their defaults): `{with.NAME}` fills in; NULL in the top-level
     * document, whose text keeps its braces. */
    const struct vk__wf_cell *with;
};

/* One combination of a matrix: the copy being loaded. keys[i] is an axis name (or an
 * `include` variable), values[i] its value; both in the workflow's pool. */
struct vk__wf_cell {
    const char **keys, **values;
    size_t n;
};

struct vk__wf_loader {
    const struct vk__wf_cell *matrix; /* while a matrix copy loads: `{matrix.KEY}` fills in */
    size_t matrix_bytes;              /* text loaded into matrix copies so far (bounded) */
    struct vk_workflow *wf;
    struct vk_pool *pool;
    struct vk_wf_options opts; /* with defaults filled in */
    struct vk_wf_error *error;
    struct vk__wf_file *cur;
    size_t nfragments;
    size_t nimports;
};

/* Record the first error at `pos` (line 0: no position) of the current file and render it. */
int vk__wf_fail(struct vk__wf_loader *L, enum vk_wf_errkind kind, int code, uint32_t line,
                uint32_t col, const char *fmt, ...) VK_PRINTF(6, 7);

/* Shorthand: VK_EPARSE at a node or value position. */
#define VK__WF_AT(p) (p).line, (p).col

/* A pool copy of a KDL string. NULL (after recording VK_WF_ERR_NOMEM) when out of memory. */
const char *vk__wf_strdup(struct vk__wf_loader *L, struct vk_kdl_str s);

struct vk_wf_pos vk__wf_pos(struct vk__wf_loader *L, struct vk_kdl_pos p);

/* The node has no properties and no children block (else an error naming `what`). */
int vk__wf_no_props(struct vk__wf_loader *L, const struct vk_kdl_node *n);
int vk__wf_no_children(struct vk__wf_loader *L, const struct vk_kdl_node *n);
int vk__wf_no_args(struct vk__wf_loader *L, const struct vk_kdl_node *n);

/* `name "value"`: exactly one string argument, no properties, no children. */
int vk__wf_one_string(struct vk__wf_loader *L, const struct vk_kdl_node *n, const char **out);

/* `name "a" "b" …`: one or more string arguments, no properties, no children. */
int vk__wf_string_list(struct vk__wf_loader *L, const struct vk_kdl_node *n,
                       struct vk_wf_strlist *out);

/* A string value `v` of node `n` (an argument or a property) into *out, with `{matrix.KEY}`
 * filled in inside a matrix copy. */
int vk__wf_string_value(struct vk__wf_loader *L, const struct vk_kdl_node *n,
                        const struct vk_kdl_value *v, const char **out);

/* `concurrency group="…" cancel-in-progress=#true` (load_concurrency.c) into *out; `seen`
 * rejects a second one. */
int vk__wf_load_concurrency(struct vk__wf_loader *L, const struct vk_kdl_node *n,
                            const struct vk_kdl_node **seen, const struct vk_wf_concurrency **out);

/* Parse the `triggers` node into L->wf->triggers. */
int vk__wf_load_triggers(struct vk__wf_loader *L, const struct vk_kdl_node *n);

/* Load the fragment/parallel nodes of the list starting at `first` as the
 * children of group `g` (its machine must already be resolved). Other nodes
 * must have been rejected or consumed by the caller; they are skipped. */
int vk__wf_load_children(struct vk__wf_loader *L, const struct vk_kdl_node *first,
                         struct vk_wf_fragment *g);

/* Expand `from` (the value `v` of fragment node `n`) into group `g`. */
int vk__wf_load_import(struct vk__wf_loader *L, const struct vk_kdl_node *n,
                       const struct vk_kdl_value *v, struct vk_wf_fragment *g);

/* `needs "a" "b"` (node `c`, first seen at *seen) into f->needs (load_needs.c). */
int vk__wf_load_needs(struct vk__wf_loader *L, const struct vk_kdl_node *c,
                      const struct vk_kdl_node **seen, struct vk_wf_fragment *f);

/* Once the whole chain has loaded: number the nodes (index), resolve every `needs` name
 * to its node, and refuse unknown or ambiguous names and cycles (load_needs.c). */
int vk__wf_resolve_needs(struct vk__wf_loader *L);

/* Convert a byte offset inside the string value `v` to its column in the file. */
uint32_t vk__wf_value_col(struct vk__wf_loader *L, const struct vk_kdl_value *v, size_t off);

#endif
