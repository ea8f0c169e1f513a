/*
 * The workflow loader: KDL document → struct vk_workflow. Checks every rule of
 * DESIGN §2 and reports the first error with its position (load_util.c renders
 * it). Imports are expanded by import.c, triggers parsed by trigger.c.
 */
#include "wf_int.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#define MAX_TIMEOUT_MS (7LL * 24 * 3600 * 1000)

static bool env_key_ok(struct vk_kdl_str k)
{
    if (k.len == 0 || k.len > 128)
        return false;
    for (size_t i = 0; i < k.len; i++) {
        char c = k.ptr[i];
        bool alpha = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_';
        if (!alpha && !(i > 0 && c >= '0' && c <= '9'))
            return false;
    }
    return true;
}

/* `env { KEY "value" … }` into *kv / *n. */
static int load_env(struct vk__wf_loader *L, const struct vk_kdl_node *n, struct vk_wf_kv **kv,
                    size_t *count)
{
    int rc = vk__wf_no_args(L, n);
    if (rc == 0)
        rc = vk__wf_no_props(L, n);
    if (rc < 0)
        return rc;
    if (!n->has_block)
        return vk__wf_fail(L, VK_WF_ERR_MISSING, VK_EPARSE, VK__WF_AT(n->pos),
                           "'env' needs a block: env { NAME \"value\" }");
    if (n->nchildren) {
        *kv = vk_pool_zalloc(L->pool, n->nchildren * sizeof(**kv));
        if (!*kv)
            return vk__wf_fail(L, VK_WF_ERR_NOMEM, VK_ENOMEM, 0, 0, "out of memory");
    }
    size_t k = 0;
    for (const struct vk_kdl_node *c = n->children; c; c = c->next) {
        if (!env_key_ok(c->name))
            return vk__wf_fail(L, VK_WF_ERR_INVALID_VALUE, VK_EPARSE, VK__WF_AT(c->pos),
                               "invalid environment variable name '%s' (letters, digits and "
                               "'_', not starting with a digit)",
                               c->name.ptr);
        for (size_t i = 0; i < k; i++) {
            if (vk_kdl_str_eq(c->name, (*kv)[i].key))
                return vk__wf_fail(L, VK_WF_ERR_DUPLICATE, VK_EPARSE, VK__WF_AT(c->pos),
                                   "environment variable '%s' is set twice (first at line %u)",
                                   c->name.ptr, (*kv)[i].pos.line);
        }
        struct vk_wf_kv *e = &(*kv)[k];
        rc = vk__wf_one_string(L, c, &e->value);
        if (rc < 0)
            return rc;
        e->key = vk__wf_strdup(L, c->name);
        if (!e->key)
            return VK_ENOMEM;
        e->pos = vk__wf_pos(L, c->pos);
        k++;
    }
    *count = k;
    return 0;
}

static bool blank(const char *s)
{
    for (; *s; s++) {
        if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r')
            return false;
    }
    return true;
}

static int nonempty_string(struct vk__wf_loader *L, const struct vk_kdl_node *c, const char **out)
{
    int rc = vk__wf_one_string(L, c, out);
    if (rc == 0 && blank(*out))
        rc = vk__wf_fail(L, VK_WF_ERR_INVALID_VALUE, VK_EPARSE, VK__WF_AT(c->args[0].pos),
                         "'%s' cannot be empty", c->name.ptr);
    return rc;
}

static int load_condition(struct vk__wf_loader *L, const struct vk_kdl_node *c,
                          struct vk_wf_fragment *f)
{
    int rc = nonempty_string(L, c, &f->condition_src);
    if (rc < 0)
        return rc;
    struct vk_cond *cond = NULL;
    struct vk_err e;
    vk_err_clear(&e);
    rc = vk_cond_parse(f->condition_src, strlen(f->condition_src), L->pool, &cond, &e);
    if (rc == VK_ENOMEM)
        return vk__wf_fail(L, VK_WF_ERR_NOMEM, VK_ENOMEM, 0, 0, "out of memory");
    if (rc < 0) {
        /* e.col counts code points in the condition; turn it back into a byte offset. */
        const char *s = f->condition_src;
        size_t off = 0;
        for (uint32_t col = 1; col < e.col && s[off]; col++) {
            off++;
            while (((unsigned char)s[off] & 0xc0) == 0x80)
                off++;
        }
        const struct vk_kdl_value *v = &c->args[0];
        return vk__wf_fail(L, VK_WF_ERR_CONDITION, VK_EPARSE, v->pos.line,
                           vk__wf_value_col(L, v, off), "invalid condition: %s", e.msg);
    }
    f->condition = cond;
    return 0;
}

static struct vk_wf_fragment *alloc_children(struct vk__wf_loader *L, size_t n)
{
    struct vk_wf_fragment *c = vk_pool_zalloc(L->pool, n * sizeof(*c));
    if (!c)
        vk__wf_fail(L, VK_WF_ERR_NOMEM, VK_ENOMEM, 0, 0, "out of memory");
    return c;
}

static int count_fragment(struct vk__wf_loader *L, const struct vk_kdl_node *n)
{
    if (++L->nfragments > L->opts.max_fragments)
        return vk__wf_fail(L, VK_WF_ERR_LIMIT, VK_ETOOBIG, VK__WF_AT(n->pos),
                           "too many fragments: the limit is %zu", L->opts.max_fragments);
    return 0;
}

/* Reject a second occurrence of a single-valued field. */
static int once(struct vk__wf_loader *L, const struct vk_kdl_node *c,
                const struct vk_kdl_node **seen)
{
    if (*seen)
        return vk__wf_fail(L, VK_WF_ERR_DUPLICATE, VK_EPARSE, VK__WF_AT(c->pos),
                           "duplicate '%s' (first at line %u)", c->name.ptr, (*seen)->pos.line);
    *seen = c;
    return 0;
}

/* `checkout { depth N; ref "merge"|"head"; submodules #true|"recursive"; lfs #true }` or
 * `checkout #false`: how the worker checks the repository out. A node replaces what it
 * inherited as a whole, so a fragment's block starts from the defaults. */
#define MAX_CHECKOUT_DEPTH 1000000

struct checkout {
    uint32_t depth;
    bool head;
    enum vk_wf_submodules submodules;
    bool lfs;
    bool none;
};

#define CHECKOUT_GET(dst, src)                                                                     \
    do {                                                                                           \
        (dst)->depth = (src)->checkout_depth;                                                      \
        (dst)->head = (src)->checkout_head;                                                        \
        (dst)->submodules = (src)->checkout_submodules;                                            \
        (dst)->lfs = (src)->checkout_lfs;                                                          \
        (dst)->none = (src)->checkout_none;                                                        \
    } while (0)

#define CHECKOUT_SET(dst, src)                                                                     \
    do {                                                                                           \
        (dst)->checkout_depth = (src)->depth;                                                      \
        (dst)->checkout_head = (src)->head;                                                        \
        (dst)->checkout_submodules = (src)->submodules;                                            \
        (dst)->checkout_lfs = (src)->lfs;                                                          \
        (dst)->checkout_none = (src)->none;                                                        \
    } while (0)

/* A child of the block that takes one scalar (no properties, no block). */
static int checkout_scalar(struct vk__wf_loader *L, const struct vk_kdl_node *c,
                           const struct vk_kdl_node **seen)
{
    int rc = once(L, c, seen);
    if (rc == 0)
        rc = vk__wf_no_props(L, c);
    if (rc == 0)
        rc = vk__wf_no_children(L, c);
    return rc;
}

/* The position of a scalar's wrong value: its second argument, its first, else itself. */
#define CHECKOUT_BAD_AT(c) VK__WF_AT((c)->nargs ? (c)->args[(c)->nargs > 1].pos : (c)->pos)

static int load_checkout_block(struct vk__wf_loader *L, const struct vk_kdl_node *n,
                               struct checkout *co)
{
    int rc = 0;
    const struct vk_kdl_node *s_depth = NULL, *s_ref = NULL, *s_sub = NULL, *s_lfs = NULL;
    for (const struct vk_kdl_node *c = n->children; rc == 0 && c; c = c->next) {
        if (vk_kdl_str_eq(c->name, "ref")) {
            rc = checkout_scalar(L, c, &s_ref);
            bool ok =
                rc == 0 && c->nargs == 1 && c->args[0].kind == VK_KDL_STRING &&
                (vk_kdl_str_eq(c->args[0].str, "merge") || vk_kdl_str_eq(c->args[0].str, "head"));
            if (rc == 0 && !ok)
                rc = vk__wf_fail(L, VK_WF_ERR_INVALID_VALUE, VK_EPARSE, CHECKOUT_BAD_AT(c),
                                 "'ref' takes \"merge\" (a pull request builds its head merged "
                                 "into its base, the default) or \"head\" (the head itself)");
            if (rc == 0)
                co->head = vk_kdl_str_eq(c->args[0].str, "head");
        } else if (vk_kdl_str_eq(c->name, "depth")) {
            rc = checkout_scalar(L, c, &s_depth);
            if (rc == 0 && (c->nargs != 1 || c->args[0].kind != VK_KDL_INT || c->args[0].i < 1 ||
                            c->args[0].i > MAX_CHECKOUT_DEPTH))
                rc = vk__wf_fail(L, VK_WF_ERR_INVALID_VALUE, VK_EPARSE, CHECKOUT_BAD_AT(c),
                                 "'depth' takes one whole number from 1 to %d (the commits "
                                 "of history checked out)",
                                 MAX_CHECKOUT_DEPTH);
            if (rc == 0)
                co->depth = (uint32_t)c->args[0].i;
        } else if (vk_kdl_str_eq(c->name, "submodules")) {
            rc = checkout_scalar(L, c, &s_sub);
            bool is_bool = rc == 0 && c->nargs == 1 && c->args[0].kind == VK_KDL_BOOL;
            bool is_rec = rc == 0 && c->nargs == 1 && c->args[0].kind == VK_KDL_STRING &&
                          vk_kdl_str_eq(c->args[0].str, "recursive");
            if (rc == 0 && !is_bool && !is_rec)
                rc = vk__wf_fail(L, VK_WF_ERR_INVALID_VALUE, VK_EPARSE, CHECKOUT_BAD_AT(c),
                                 "'submodules' takes #true (the submodules of the repository), "
                                 "\"recursive\" (theirs too) or #false (none, the default)");
            if (rc == 0)
                co->submodules = is_rec         ? VK_WF_SUBMODULES_RECURSIVE
                                 : c->args[0].b ? VK_WF_SUBMODULES_ON
                                                : VK_WF_SUBMODULES_NONE;
        } else if (vk_kdl_str_eq(c->name, "lfs")) {
            rc = checkout_scalar(L, c, &s_lfs);
            if (rc == 0 && (c->nargs != 1 || c->args[0].kind != VK_KDL_BOOL))
                rc = vk__wf_fail(L, VK_WF_ERR_INVALID_VALUE, VK_EPARSE, CHECKOUT_BAD_AT(c),
                                 "'lfs' takes one boolean: #true (fetch the Git LFS files) or "
                                 "#false (leave their pointers, the default)");
            if (rc == 0)
                co->lfs = c->args[0].b;
        } else {
            rc = vk__wf_fail(L, VK_WF_ERR_UNKNOWN_NODE, VK_EPARSE, VK__WF_AT(c->pos),
                             "unknown node '%s' in 'checkout'; expected: depth, ref, "
                             "submodules, lfs",
                             c->name.ptr);
        }
    }
    return rc;
}

static int load_checkout(struct vk__wf_loader *L, const struct vk_kdl_node *n, struct checkout *co)
{
    int rc = vk__wf_no_props(L, n);
    if (rc < 0)
        return rc;
    memset(co, 0, sizeof(*co));
    if (n->nargs == 0)
        return load_checkout_block(L, n, co);
    if (n->nargs > 1)
        return vk__wf_fail(L, VK_WF_ERR_INVALID_VALUE, VK_EPARSE, VK__WF_AT(n->args[1].pos),
                           "'checkout' takes one value, found %u", (unsigned)n->nargs);
    if (n->args[0].kind != VK_KDL_BOOL || n->args[0].b)
        return vk__wf_fail(L, VK_WF_ERR_INVALID_VALUE, VK_EPARSE, VK__WF_AT(n->args[0].pos),
                           "'checkout' takes #false (no checkout at all) or a block "
                           "checkout { depth …; ref …; submodules …; lfs … }");
    if (n->has_block)
        return vk__wf_fail(L, VK_WF_ERR_EXCLUSIVE, VK_EPARSE, VK__WF_AT(n->block_pos),
                           "'checkout' takes either #false (no checkout) or a block, not both");
    co->none = true;
    return 0;
}

/* `network #true|#false`: one bool, the sandbox shares the host network. */
static int load_network(struct vk__wf_loader *L, const struct vk_kdl_node *c, bool *out)
{
    int rc = vk__wf_no_props(L, c);
    if (rc == 0)
        rc = vk__wf_no_children(L, c);
    if (rc == 0 && (c->nargs != 1 || c->args[0].kind != VK_KDL_BOOL))
        rc = vk__wf_fail(L, VK_WF_ERR_INVALID_VALUE, VK_EPARSE,
                         VK__WF_AT(c->nargs ? c->args[c->nargs > 1].pos : c->pos),
                         "'network' takes one boolean: #true (share the host network) or "
                         "#false (none, the default)");
    if (rc == 0)
        *out = c->args[0].b;
    return rc;
}

static int load_fragment(struct vk__wf_loader *L, const struct vk_kdl_node *n,
                         struct vk_wf_fragment *f);

/* `max-parallel N` (1..VK_WF_MAX_MATRIX) of a parallel group or a matrix. */
static int load_max_parallel(struct vk__wf_loader *L, const struct vk_kdl_node *c,
                             const struct vk_kdl_node **seen, int *out)
{
    int rc = once(L, c, seen);
    if (rc == 0)
        rc = vk__wf_no_props(L, c);
    if (rc == 0)
        rc = vk__wf_no_children(L, c);
    if (rc == 0 && (c->nargs != 1 || c->args[0].kind != VK_KDL_INT || c->args[0].i < 1 ||
                    c->args[0].i > VK_WF_MAX_MATRIX))
        rc = vk__wf_fail(L, VK_WF_ERR_INVALID_VALUE, VK_EPARSE,
                         VK__WF_AT(c->nargs ? c->args[c->nargs > 1].pos : c->pos),
                         "'max-parallel' takes one whole number from 1 to %d", VK_WF_MAX_MATRIX);
    if (rc == 0)
        *out = (int)c->args[0].i;
    return rc;
}

/* A single-valued boolean child (`fail-fast #false`, `allow-failure #true`) into *out. */
static int load_flag(struct vk__wf_loader *L, const struct vk_kdl_node *c,
                     const struct vk_kdl_node **seen, bool *out)
{
    int rc = once(L, c, seen);
    if (rc == 0)
        rc = vk__wf_no_props(L, c);
    if (rc == 0)
        rc = vk__wf_no_children(L, c);
    if (rc == 0 && (c->nargs != 1 || c->args[0].kind != VK_KDL_BOOL))
        rc = vk__wf_fail(L, VK_WF_ERR_INVALID_VALUE, VK_EPARSE,
                         VK__WF_AT(c->nargs ? c->args[c->nargs > 1].pos : c->pos),
                         "'%s' takes #true or #false", c->name.ptr);
    if (rc == 0)
        *out = c->args[0].b;
    return rc;
}

/* `fail-fast #true|#false` of a group or a matrix into *no_fail_fast. */
static int load_fail_fast(struct vk__wf_loader *L, const struct vk_kdl_node *c,
                          const struct vk_kdl_node **seen, bool *no_fail_fast)
{
    bool on = true;
    int rc = load_flag(L, c, seen, &on);
    if (rc == 0)
        *no_fail_fast = !on;
    return rc;
}

/* `when "success" | "failure" | "always"`. */
static int load_when(struct vk__wf_loader *L, const struct vk_kdl_node *c,
                     const struct vk_kdl_node **seen, enum vk_wf_when *out)
{
    const char *w = NULL;
    int rc = once(L, c, seen);
    if (rc == 0)
        rc = nonempty_string(L, c, &w);
    if (rc < 0)
        return rc;
    if (strcmp(w, "success") == 0)
        *out = VK_WF_WHEN_SUCCESS;
    else if (strcmp(w, "failure") == 0)
        *out = VK_WF_WHEN_FAILURE;
    else if (strcmp(w, "always") == 0)
        *out = VK_WF_WHEN_ALWAYS;
    else
        return vk__wf_fail(L, VK_WF_ERR_INVALID_VALUE, VK_EPARSE, VK__WF_AT(c->args[0].pos),
                           "'when' takes \"success\", \"failure\" or \"always\", not '%s'", w);
    return 0;
}

static int load_parallel(struct vk__wf_loader *L, const struct vk_kdl_node *n,
                         struct vk_wf_fragment *g)
{
    int rc = vk__wf_no_args(L, n);
    if (rc == 0)
        rc = vk__wf_no_props(L, n);
    if (rc < 0)
        return rc;
    g->type = VK_WF_GROUP;
    g->is_parallel = true;
    g->network = g->parent->network;
    g->secrets = g->parent->secrets;
    g->nsecrets = g->parent->nsecrets;
    struct checkout co;
    CHECKOUT_GET(&co, g->parent);
    CHECKOUT_SET(g, &co);
    const struct vk_kdl_node *seen_name = NULL, *seen_machine = NULL, *seen_cond = NULL,
                             *seen_max = NULL, *seen_ff = NULL, *seen_when = NULL, *seen_af = NULL,
                             *seen_needs = NULL;
    size_t nfrag = 0;
    for (const struct vk_kdl_node *c = n->children; rc == 0 && c; c = c->next) {
        if (vk_kdl_str_eq(c->name, "fragment") || vk_kdl_str_eq(c->name, "parallel")) {
            nfrag++;
        } else if (vk_kdl_str_eq(c->name, "name")) {
            rc = once(L, c, &seen_name);
            if (rc == 0)
                rc = nonempty_string(L, c, &g->name);
        } else if (vk_kdl_str_eq(c->name, "machine")) {
            rc = once(L, c, &seen_machine);
            if (rc == 0)
                rc = nonempty_string(L, c, &g->machine);
        } else if (vk_kdl_str_eq(c->name, "condition")) {
            rc = once(L, c, &seen_cond);
            if (rc == 0)
                rc = load_condition(L, c, g);
        } else if (vk_kdl_str_eq(c->name, "max-parallel")) {
            rc = load_max_parallel(L, c, &seen_max, &g->max_parallel);
        } else if (vk_kdl_str_eq(c->name, "fail-fast")) {
            rc = load_fail_fast(L, c, &seen_ff, &g->no_fail_fast);
        } else if (vk_kdl_str_eq(c->name, "when")) {
            rc = load_when(L, c, &seen_when, &g->when);
        } else if (vk_kdl_str_eq(c->name, "allow-failure")) {
            rc = load_flag(L, c, &seen_af, &g->allow_failure);
        } else if (vk_kdl_str_eq(c->name, "needs")) {
            rc = vk__wf_load_needs(L, c, &seen_needs, g);
        } else if (vk_kdl_str_eq(c->name, "matrix") && L->matrix) {
            continue; /* this is one of its copies (load_matrix) */
        } else {
            rc = vk__wf_fail(L, VK_WF_ERR_UNKNOWN_NODE, VK_EPARSE, VK__WF_AT(c->pos),
                             "unknown node '%s' in 'parallel'; expected one of: fragment, "
                             "parallel, name, machine, condition, max-parallel, fail-fast, "
                             "when, allow-failure, needs, matrix",
                             c->name.ptr);
        }
    }
    if (rc < 0)
        return rc;
    if (nfrag == 0)
        return vk__wf_fail(L, VK_WF_ERR_MISSING, VK_EPARSE, VK__WF_AT(n->pos),
                           "'parallel' holds no fragments");
    if (!g->machine)
        g->machine = g->parent->machine;
    return vk__wf_load_children(L, n->children, g);
}

/* `queue-timeout "30m"`: the longest a ready fragment waits for a worker (1s to 7 days). */
static int load_queue_timeout(struct vk__wf_loader *L, const struct vk_kdl_node *c,
                              const struct vk_kdl_node **seen, int64_t *out)
{
    const char *t = NULL;
    int rc = once(L, c, seen);
    if (rc == 0 && c->nargs == 1 && c->args[0].kind != VK_KDL_STRING)
        rc = vk__wf_fail(L, VK_WF_ERR_INVALID_VALUE, VK_EPARSE, VK__WF_AT(c->args[0].pos),
                         "'queue-timeout' takes a duration string such as \"30m\" or \"2h\", "
                         "not %s",
                         vk_kdl_kind_name(c->args[0].kind));
    if (rc == 0)
        rc = nonempty_string(L, c, &t);
    if (rc == 0 &&
        (vk_time_duration_parse(t, strlen(t), out) < 0 || *out <= 0 || *out > MAX_TIMEOUT_MS))
        rc = vk__wf_fail(L, VK_WF_ERR_INVALID_VALUE, VK_EPARSE, VK__WF_AT(c->args[0].pos),
                         "invalid queue-timeout '%s'; expected a duration from 1s to 7 days "
                         "such as \"90s\", \"30m\" or \"2h\"",
                         t);
    return rc;
}

static bool secret_name_ok(const char *s, size_t n)
{
    if (n == 0 || n > 128 || !(s[0] == '_' || (s[0] >= 'A' && s[0] <= 'Z')))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(s[i] == '_' || (s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9')))
            return false;
    return true;
}

/* `secrets "A" "B"` / `secret-file "KUBECONFIG"`: add the names to *list (a pool array of
 * at most VK_WF_MAX_SECRETS); a name given twice in one place is an error. */
static int load_secrets(struct vk__wf_loader *L, const struct vk_kdl_node *n, bool file,
                        struct vk_wf_secret **list, size_t *count)
{
    int rc = vk__wf_no_props(L, n);
    if (rc == 0)
        rc = vk__wf_no_children(L, n);
    if (rc < 0)
        return rc;
    const char *what = file ? "secret-file" : "secrets";
    if (n->nargs == 0)
        return vk__wf_fail(L, VK_WF_ERR_MISSING, VK_EPARSE, VK__WF_AT(n->pos),
                           "'%s' needs one or more secret names: %s \"NPM_TOKEN\"", what, what);
    if (*count + n->nargs > VK_WF_MAX_SECRETS)
        return vk__wf_fail(L, VK_WF_ERR_LIMIT, VK_EPARSE, VK__WF_AT(n->pos),
                           "more than %d secrets in one place", VK_WF_MAX_SECRETS);
    struct vk_wf_secret *a = vk_pool_zalloc(L->pool, (*count + n->nargs) * sizeof(*a));
    if (!a)
        return vk__wf_fail(L, VK_WF_ERR_NOMEM, VK_ENOMEM, 0, 0, "out of memory");
    if (*count)
        memcpy(a, *list, *count * sizeof(*a));
    for (size_t i = 0; i < n->nargs; i++) {
        const struct vk_kdl_value *v = &n->args[i];
        if (v->kind != VK_KDL_STRING || !secret_name_ok(v->str.ptr, v->str.len))
            return vk__wf_fail(L, VK_WF_ERR_INVALID_VALUE, VK_EPARSE, VK__WF_AT(v->pos),
                               "'%s' takes secret names as strings of [A-Z_][A-Z0-9_]* "
                               "(for example \"NPM_TOKEN\")",
                               what);
        for (size_t k = 0; k < *count; k++)
            if (vk_kdl_str_eq(v->str, a[k].name))
                return vk__wf_fail(L, VK_WF_ERR_DUPLICATE, VK_EPARSE, VK__WF_AT(v->pos),
                                   "secret '%s' is named twice here (first at line %u)", a[k].name,
                                   a[k].pos.line);
        a[*count].name = vk__wf_strdup(L, v->str);
        if (!a[*count].name)
            return VK_ENOMEM;
        a[*count].file = file;
        a[*count].pos = vk__wf_pos(L, v->pos);
        (*count)++;
    }
    *list = a;
    return 0;
}

/* f->secrets = the parent's, then `own` (which wins for a name in both). */
static int merge_secrets(struct vk__wf_loader *L, struct vk_wf_fragment *f,
                         const struct vk_wf_secret *own, size_t nown)
{
    const struct vk_wf_fragment *p = f->parent;
    size_t np = p ? p->nsecrets : 0;
    if (np + nown == 0)
        return 0;
    struct vk_wf_secret *a = vk_pool_zalloc(L->pool, (np + nown) * sizeof(*a));
    if (!a)
        return vk__wf_fail(L, VK_WF_ERR_NOMEM, VK_ENOMEM, 0, 0, "out of memory");
    size_t n = 0;
    for (size_t i = 0; i < np; i++) {
        bool mine = false;
        for (size_t k = 0; k < nown && !mine; k++)
            mine = strcmp(own[k].name, p->secrets[i].name) == 0;
        if (!mine)
            a[n++] = p->secrets[i];
    }
    for (size_t k = 0; k < nown; k++)
        a[n++] = own[k];
    f->secrets = a;
    f->nsecrets = n;
    return 0;
}

static int load_fragment(struct vk__wf_loader *L, const struct vk_kdl_node *n,
                         struct vk_wf_fragment *f)
{
    int rc = vk__wf_no_args(L, n);
    if (rc == 0)
        rc = vk__wf_no_props(L, n);
    if (rc < 0)
        return rc;
    if (!n->has_block)
        return vk__wf_fail(L, VK_WF_ERR_MISSING, VK_EPARSE, VK__WF_AT(n->pos),
                           "'fragment' needs a block: fragment { run \"…\" }");
    const struct vk_kdl_node *s_name = NULL, *s_run = NULL, *s_from = NULL, *s_machine = NULL,
                             *s_cond = NULL, *s_timeout = NULL, *s_retry = NULL, *s_env = NULL,
                             *s_network = NULL, *s_checkout = NULL, *s_qtimeout = NULL,
                             *s_when = NULL, *s_af = NULL, *s_secrets = NULL, *s_needs = NULL,
                             *s_conc = NULL;
    struct vk_wf_secret *own = NULL;
    size_t nown = 0;
    f->type = VK_WF_INLINE;
    f->network = f->parent->network;
    struct checkout co;
    CHECKOUT_GET(&co, f->parent);
    CHECKOUT_SET(f, &co);
    for (const struct vk_kdl_node *c = n->children; rc == 0 && c; c = c->next) {
        if (vk_kdl_str_eq(c->name, "name")) {
            rc = once(L, c, &s_name);
            if (rc == 0)
                rc = nonempty_string(L, c, &f->name);
        } else if (vk_kdl_str_eq(c->name, "run")) {
            rc = once(L, c, &s_run);
            if (rc == 0)
                rc = nonempty_string(L, c, &f->run);
        } else if (vk_kdl_str_eq(c->name, "from")) {
            rc = once(L, c, &s_from);
            /* its block holds the import's `with` (vk__wf_load_import reads it) */
            struct vk_kdl_node bare = *c;
            bare.children = NULL;
            bare.has_block = false;
            if (rc == 0)
                rc = nonempty_string(L, &bare, &f->import_from);
        } else if (vk_kdl_str_eq(c->name, "machine")) {
            rc = once(L, c, &s_machine);
            if (rc == 0)
                rc = nonempty_string(L, c, &f->machine);
        } else if (vk_kdl_str_eq(c->name, "condition")) {
            rc = once(L, c, &s_cond);
            if (rc == 0)
                rc = load_condition(L, c, f);
        } else if (vk_kdl_str_eq(c->name, "timeout")) {
            const char *t = NULL;
            rc = once(L, c, &s_timeout);
            if (rc == 0 && c->nargs == 1 && c->args[0].kind != VK_KDL_STRING)
                rc = vk__wf_fail(L, VK_WF_ERR_INVALID_VALUE, VK_EPARSE, VK__WF_AT(c->args[0].pos),
                                 "'timeout' takes a duration string such as \"10m\" or "
                                 "\"1h30m\", not %s",
                                 vk_kdl_kind_name(c->args[0].kind));
            if (rc == 0)
                rc = nonempty_string(L, c, &t);
            if (rc == 0 && (vk_time_duration_parse(t, strlen(t), &f->timeout_ms) < 0 ||
                            f->timeout_ms <= 0 || f->timeout_ms > MAX_TIMEOUT_MS))
                rc = vk__wf_fail(L, VK_WF_ERR_INVALID_VALUE, VK_EPARSE, VK__WF_AT(c->args[0].pos),
                                 "invalid timeout '%s'; expected a duration from 1s to 7 days "
                                 "such as \"90s\", \"10m\" or \"1h30m\"",
                                 t);
        } else if (vk_kdl_str_eq(c->name, "queue-timeout")) {
            rc = load_queue_timeout(L, c, &s_qtimeout, &f->queue_timeout_ms);
        } else if (vk_kdl_str_eq(c->name, "retry")) {
            rc = once(L, c, &s_retry);
            if (rc == 0)
                rc = vk__wf_no_props(L, c);
            if (rc == 0)
                rc = vk__wf_no_children(L, c);
            if (rc == 0 && (c->nargs != 1 || c->args[0].kind != VK_KDL_INT || c->args[0].i < 0 ||
                            c->args[0].i > VK_WF_MAX_RETRIES))
                rc = vk__wf_fail(L, VK_WF_ERR_INVALID_VALUE, VK_EPARSE,
                                 VK__WF_AT(c->nargs ? c->args[c->nargs > 1].pos : c->pos),
                                 "'retry' takes one whole number from 0 to %d", VK_WF_MAX_RETRIES);
            if (rc == 0)
                f->retries = (int)c->args[0].i;
        } else if (vk_kdl_str_eq(c->name, "env")) {
            rc = once(L, c, &s_env);
            if (rc == 0)
                rc = load_env(L, c, &f->env, &f->nenv);
        } else if (vk_kdl_str_eq(c->name, "network")) {
            rc = once(L, c, &s_network);
            if (rc == 0)
                rc = load_network(L, c, &f->network);
        } else if (vk_kdl_str_eq(c->name, "checkout")) {
            rc = once(L, c, &s_checkout);
            if (rc == 0)
                rc = load_checkout(L, c, &co);
            if (rc == 0)
                CHECKOUT_SET(f, &co);
        } else if (vk_kdl_str_eq(c->name, "when")) {
            rc = load_when(L, c, &s_when, &f->when);
        } else if (vk_kdl_str_eq(c->name, "allow-failure")) {
            rc = load_flag(L, c, &s_af, &f->allow_failure);
        } else if (vk_kdl_str_eq(c->name, "secrets") || vk_kdl_str_eq(c->name, "secret-file")) {
            if (!s_secrets)
                s_secrets = c;
            rc = load_secrets(L, c, vk_kdl_str_eq(c->name, "secret-file"), &own, &nown);
        } else if (vk_kdl_str_eq(c->name, "needs")) {
            rc = vk__wf_load_needs(L, c, &s_needs, f);
        } else if (vk_kdl_str_eq(c->name, "concurrency")) {
            rc = vk__wf_load_concurrency(L, c, &s_conc, &f->concurrency);
        } else if (vk_kdl_str_eq(c->name, "matrix") && L->matrix) {
            continue; /* this is one of its copies (load_matrix) */
        } else {
            rc = vk__wf_fail(L, VK_WF_ERR_UNKNOWN_NODE, VK_EPARSE, VK__WF_AT(c->pos),
                             "unknown node '%s' in 'fragment'; expected one of: run, from, "
                             "name, machine, condition, timeout, queue-timeout, retry, env, "
                             "network, checkout, when, allow-failure, needs, matrix, secrets, "
                             "secret-file, concurrency",
                             c->name.ptr);
        }
    }
    if (rc == 0)
        rc = merge_secrets(L, f, own, nown);
    if (rc < 0)
        return rc;
    if (s_run && s_from) {
        const struct vk_kdl_node *later = s_run->pos.offset > s_from->pos.offset ? s_run : s_from;
        return vk__wf_fail(L, VK_WF_ERR_EXCLUSIVE, VK_EPARSE, VK__WF_AT(later->pos),
                           "a fragment has either 'run' or 'from', not both");
    }
    if (!s_run && !s_from)
        return vk__wf_fail(L, VK_WF_ERR_MISSING, VK_EPARSE, VK__WF_AT(n->pos),
                           "a fragment needs 'run' (a script) or 'from' (an import)");
    if (!f->machine)
        f->machine = f->parent->machine;
    if (s_run)
        return 0;
    const struct vk_kdl_node *bad = s_timeout    ? s_timeout
                                    : s_retry    ? s_retry
                                    : s_env      ? s_env
                                    : s_network  ? s_network
                                    : s_checkout ? s_checkout
                                    : s_secrets  ? s_secrets
                                    : s_conc     ? s_conc
                                                 : s_qtimeout;
    if (bad)
        return vk__wf_fail(L, VK_WF_ERR_EXCLUSIVE, VK_EPARSE, VK__WF_AT(bad->pos),
                           "'%s' cannot be used with 'from'; set it in the imported file",
                           bad->name.ptr);
    f->type = VK_WF_GROUP;
    return vk__wf_load_import(L, s_from, &s_from->args[0], f);
}

/* ---------------------------------------------------------------- matrix */

/* Axis and variable names: letters, digits, '_' and '-', not starting with a digit. */
static bool matrix_key_ok(struct vk_kdl_str k)
{
    if (k.len == 0 || k.len > 64 || (k.ptr[0] >= '0' && k.ptr[0] <= '9'))
        return false;
    for (size_t i = 0; i < k.len; i++) {
        char c = k.ptr[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-'))
            return false;
    }
    return true;
}

/* A matrix value: a string or a whole number, as text. */
static int matrix_value(struct vk__wf_loader *L, const struct vk_kdl_node *n,
                        const struct vk_kdl_value *v, const char **out)
{
    if (v->kind == VK_KDL_INT) {
        char num[32];
        snprintf(num, sizeof(num), "%lld", (long long)v->i);
        *out = vk_pool_strndup(L->pool, num, strlen(num));
    } else if (v->kind == VK_KDL_STRING && v->str.len && !memchr(v->str.ptr, '\0', v->str.len)) {
        *out = vk__wf_strdup(L, v->str);
    } else {
        return vk__wf_fail(
            L, VK_WF_ERR_INVALID_VALUE, VK_EPARSE, VK__WF_AT(v->pos),
            "matrix values of '%s' are non-empty strings or whole numbers, not %s", n->name.ptr,
            v->kind == VK_KDL_STRING ? "an empty string" : vk_kdl_kind_name(v->kind));
    }
    return *out ? 0 : vk__wf_fail(L, VK_WF_ERR_NOMEM, VK_ENOMEM, 0, 0, "out of memory");
}

struct matrix {
    const char **axes;
    size_t naxes;
    struct vk__wf_cell *cells;
    size_t ncells, cap;
};

static const char *cell_get(const struct vk__wf_cell *c, const char *key)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->keys[i], key) == 0)
            return c->values[i];
    return NULL;
}

static bool is_axis(const struct matrix *m, const char *key)
{
    for (size_t i = 0; i < m->naxes; i++)
        if (strcmp(m->axes[i], key) == 0)
            return true;
    return false;
}

/* A new cell of up to `room` keys at the end of m->cells (at most VK_WF_MAX_MATRIX). */
static struct vk__wf_cell *cell_new(struct vk__wf_loader *L, struct matrix *m, size_t room,
                                    const struct vk_kdl_node *at)
{
    if (m->ncells == VK_WF_MAX_MATRIX) {
        vk__wf_fail(L, VK_WF_ERR_LIMIT, VK_ETOOBIG, VK__WF_AT(at->pos),
                    "the matrix makes more than %d copies", VK_WF_MAX_MATRIX);
        return NULL;
    }
    struct vk__wf_cell *c = &m->cells[m->ncells];
    c->keys = vk_pool_zalloc(L->pool, room * sizeof(*c->keys));
    c->values = vk_pool_zalloc(L->pool, room * sizeof(*c->values));
    if (!c->keys || !c->values) {
        vk__wf_fail(L, VK_WF_ERR_NOMEM, VK_ENOMEM, 0, 0, "out of memory");
        return NULL;
    }
    c->n = 0;
    m->ncells++;
    return c;
}

/* An `include` or `exclude` block: KEY "value" pairs into keys/values (its own arrays). */
static int matrix_pairs(struct vk__wf_loader *L, const struct vk_kdl_node *n,
                        const struct matrix *m, bool axes_only, struct vk__wf_cell *out)
{
    int rc = vk__wf_no_args(L, n);
    if (rc == 0)
        rc = vk__wf_no_props(L, n);
    if (rc < 0)
        return rc;
    if (!n->nchildren)
        return vk__wf_fail(L, VK_WF_ERR_MISSING, VK_EPARSE, VK__WF_AT(n->pos),
                           "'%s' needs a block of values: %s { %s \"…\" }", n->name.ptr,
                           n->name.ptr, m->naxes ? m->axes[0] : "cc");
    out->keys = vk_pool_zalloc(L->pool, n->nchildren * sizeof(*out->keys));
    out->values = vk_pool_zalloc(L->pool, n->nchildren * sizeof(*out->values));
    if (!out->keys || !out->values)
        return vk__wf_fail(L, VK_WF_ERR_NOMEM, VK_ENOMEM, 0, 0, "out of memory");
    out->n = 0;
    for (const struct vk_kdl_node *c = n->children; c; c = c->next) {
        if (!matrix_key_ok(c->name))
            return vk__wf_fail(L, VK_WF_ERR_INVALID_VALUE, VK_EPARSE, VK__WF_AT(c->pos),
                               "invalid matrix variable name '%s' (letters, digits, '_' and "
                               "'-', not starting with a digit)",
                               c->name.ptr);
        const char *key = vk__wf_strdup(L, c->name);
        if (!key)
            return VK_ENOMEM;
        if (axes_only && !is_axis(m, key))
            return vk__wf_fail(L, VK_WF_ERR_INVALID_VALUE, VK_EPARSE, VK__WF_AT(c->pos),
                               "'exclude' names '%s', which is not an axis of the matrix", key);
        if (cell_get(out, key))
            return vk__wf_fail(L, VK_WF_ERR_DUPLICATE, VK_EPARSE, VK__WF_AT(c->pos),
                               "'%s' is given twice in this '%s'", key, n->name.ptr);
        rc = vk__wf_no_props(L, c);
        if (rc == 0)
            rc = vk__wf_no_children(L, c);
        if (rc == 0 && c->nargs != 1)
            rc = vk__wf_fail(L, VK_WF_ERR_INVALID_VALUE, VK_EPARSE,
                             VK__WF_AT(c->nargs ? c->args[1].pos : c->pos),
                             "'%s' in '%s' takes one value", key, n->name.ptr);
        if (rc == 0)
            rc = matrix_value(L, c, &c->args[0], &out->values[out->n]);
        if (rc < 0)
            return rc;
        out->keys[out->n++] = key;
    }
    return 0;
}

/* Does cell `c` have every pair of `p` whose key is an axis? */
static bool cell_matches(const struct matrix *m, const struct vk__wf_cell *c,
                         const struct vk__wf_cell *p)
{
    for (size_t i = 0; i < p->n; i++) {
        if (!is_axis(m, p->keys[i]))
            continue;
        const char *v = cell_get(c, p->keys[i]);
        if (!v || strcmp(v, p->values[i]) != 0)
            return false;
    }
    return true;
}

/* Set key=value in cell `c` (room for it was made by cell_new/include). */
static void cell_set(struct vk__wf_cell *c, const char *key, const char *value)
{
    for (size_t i = 0; i < c->n; i++)
        if (strcmp(c->keys[i], key) == 0) {
            c->values[i] = value;
            return;
        }
    c->keys[c->n] = key;
    c->values[c->n++] = value;
}

/*
 * The `matrix` block `mn` of node `n`: axes (each a name with its values) in order, their
 * product less every `exclude` match, then each `include`: its variables are added to every
 * combination whose axes it matches, or it is a combination of its own when it matches none
 * (as GitHub Actions does).
 */
static int matrix_parse(struct vk__wf_loader *L, const struct vk_kdl_node *mn, struct matrix *m,
                        struct vk_wf_fragment *g)
{
    int rc = vk__wf_no_args(L, mn);
    if (rc == 0)
        rc = vk__wf_no_props(L, mn);
    if (rc < 0)
        return rc;
    size_t nax = 0, ninc = 0, nvars = 0;
    for (const struct vk_kdl_node *c = mn->children; c; c = c->next) {
        if (vk_kdl_str_eq(c->name, "include")) {
            ninc++;
            nvars += c->nchildren;
        } else if (!vk_kdl_str_eq(c->name, "exclude") && !vk_kdl_str_eq(c->name, "max-parallel") &&
                   !vk_kdl_str_eq(c->name, "fail-fast")) {
            nax++;
        }
    }
    if (nvars > 1024)
        return vk__wf_fail(L, VK_WF_ERR_LIMIT, VK_ETOOBIG, VK__WF_AT(mn->pos),
                           "a matrix's 'include' blocks hold at most 1024 values in all");
    if (nax == 0 && ninc == 0)
        return vk__wf_fail(L, VK_WF_ERR_MISSING, VK_EPARSE, VK__WF_AT(mn->pos),
                           "'matrix' needs at least one axis: matrix { cc \"gcc\" \"clang\" }");
    m->axes = vk_pool_zalloc(L->pool, (nax ? nax : 1) * sizeof(*m->axes));
    m->cells = vk_pool_zalloc(L->pool, VK_WF_MAX_MATRIX * sizeof(*m->cells));
    if (!m->axes || !m->cells)
        return vk__wf_fail(L, VK_WF_ERR_NOMEM, VK_ENOMEM, 0, 0, "out of memory");
    size_t room = nax + nvars;
    /* Axes: the product, built one axis at a time. */
    const struct vk_kdl_node *axis_node[64], *seen_max = NULL, *seen_ff = NULL;
    for (const struct vk_kdl_node *c = mn->children; c; c = c->next) {
        if (vk_kdl_str_eq(c->name, "include") || vk_kdl_str_eq(c->name, "exclude"))
            continue;
        if (vk_kdl_str_eq(c->name, "max-parallel")) {
            rc = load_max_parallel(L, c, &seen_max, &g->max_parallel);
            if (rc < 0)
                return rc;
            continue;
        }
        if (vk_kdl_str_eq(c->name, "fail-fast")) {
            rc = load_fail_fast(L, c, &seen_ff, &g->no_fail_fast);
            if (rc < 0)
                return rc;
            continue;
        }
        if (!matrix_key_ok(c->name))
            return vk__wf_fail(L, VK_WF_ERR_INVALID_VALUE, VK_EPARSE, VK__WF_AT(c->pos),
                               "invalid matrix axis name '%s' (letters, digits, '_' and '-', "
                               "not starting with a digit)",
                               c->name.ptr);
        if (m->naxes == VK_ARRAY_LEN(axis_node))
            return vk__wf_fail(L, VK_WF_ERR_LIMIT, VK_ETOOBIG, VK__WF_AT(c->pos),
                               "a matrix has at most %zu axes", VK_ARRAY_LEN(axis_node));
        for (size_t i = 0; i < m->naxes; i++)
            if (vk_kdl_str_eq(c->name, m->axes[i]))
                return vk__wf_fail(L, VK_WF_ERR_DUPLICATE, VK_EPARSE, VK__WF_AT(c->pos),
                                   "matrix axis '%s' is given twice (first at line %u)",
                                   c->name.ptr, axis_node[i]->pos.line);
        rc = vk__wf_no_props(L, c);
        if (rc == 0)
            rc = vk__wf_no_children(L, c);
        if (rc == 0 && c->nargs == 0)
            rc = vk__wf_fail(L, VK_WF_ERR_MISSING, VK_EPARSE, VK__WF_AT(c->pos),
                             "matrix axis '%s' needs at least one value: %s \"a\" \"b\"",
                             c->name.ptr, c->name.ptr);
        const char **vals = vk_pool_zalloc(L->pool, (c->nargs ? c->nargs : 1) * sizeof(*vals));
        if (rc == 0 && !vals)
            rc = vk__wf_fail(L, VK_WF_ERR_NOMEM, VK_ENOMEM, 0, 0, "out of memory");
        for (size_t i = 0; rc == 0 && i < c->nargs; i++) {
            rc = matrix_value(L, c, &c->args[i], &vals[i]);
            for (size_t j = 0; rc == 0 && j < i; j++)
                if (strcmp(vals[i], vals[j]) == 0)
                    rc = vk__wf_fail(L, VK_WF_ERR_DUPLICATE, VK_EPARSE, VK__WF_AT(c->args[i].pos),
                                     "matrix axis '%s' has the value '%s' twice", c->name.ptr,
                                     vals[i]);
        }
        if (rc < 0)
            return rc;
        const char *key = vk__wf_strdup(L, c->name);
        if (!key)
            return VK_ENOMEM;
        axis_node[m->naxes] = c;
        m->axes[m->naxes++] = key;
        /* Each existing combination times each value (the first axis starts from one). */
        size_t before = m->naxes == 1 ? 1 : m->ncells;
        struct vk__wf_cell *old = vk_pool_zalloc(L->pool, before * sizeof(*old));
        if (!old)
            return vk__wf_fail(L, VK_WF_ERR_NOMEM, VK_ENOMEM, 0, 0, "out of memory");
        if (m->naxes > 1)
            memcpy(old, m->cells, before * sizeof(*old));
        m->ncells = 0;
        for (size_t o = 0; o < before; o++) {
            for (size_t i = 0; i < c->nargs; i++) {
                struct vk__wf_cell *nc = cell_new(L, m, room, c);
                if (!nc)
                    return L->error && L->error->code ? L->error->code : VK_ETOOBIG;
                for (size_t k = 0; k < old[o].n; k++)
                    cell_set(nc, old[o].keys[k], old[o].values[k]);
                cell_set(nc, key, vals[i]);
            }
        }
    }
    /* Excludes, then includes, in the order written. */
    for (const struct vk_kdl_node *c = mn->children; c; c = c->next) {
        if (!vk_kdl_str_eq(c->name, "exclude"))
            continue;
        if (!m->naxes)
            return vk__wf_fail(L, VK_WF_ERR_INVALID_VALUE, VK_EPARSE, VK__WF_AT(c->pos),
                               "'exclude' needs axes to exclude from");
        struct vk__wf_cell ex;
        rc = matrix_pairs(L, c, m, true, &ex);
        if (rc < 0)
            return rc;
        size_t kept = 0;
        for (size_t i = 0; i < m->ncells; i++)
            if (!cell_matches(m, &m->cells[i], &ex))
                m->cells[kept++] = m->cells[i];
        m->ncells = kept;
    }
    for (const struct vk_kdl_node *c = mn->children; c; c = c->next) {
        if (!vk_kdl_str_eq(c->name, "include"))
            continue;
        struct vk__wf_cell inc;
        rc = matrix_pairs(L, c, m, false, &inc);
        if (rc < 0)
            return rc;
        bool added = false;
        size_t base = m->ncells;
        for (size_t i = 0; i < base; i++) {
            if (!cell_matches(m, &m->cells[i], &inc))
                continue;
            /* A matching include adds its variables and never changes an axis value. */
            for (size_t k = 0; k < inc.n; k++)
                if (!is_axis(m, inc.keys[k]))
                    cell_set(&m->cells[i], inc.keys[k], inc.values[k]);
            added = true;
        }
        if (!added) {
            struct vk__wf_cell *nc = cell_new(L, m, room, c);
            if (!nc)
                return L->error && L->error->code ? L->error->code : VK_ETOOBIG;
            for (size_t k = 0; k < inc.n; k++)
                cell_set(nc, inc.keys[k], inc.values[k]);
        }
    }
    if (m->ncells == 0)
        return vk__wf_fail(L, VK_WF_ERR_INVALID_VALUE, VK_EPARSE, VK__WF_AT(mn->pos),
                           "the matrix has no combination left after 'exclude'");
    return 0;
}

/* MATRIX_<KEY> (upper case, '-' as '_') for each key of `cell` into every inline fragment
 * of `f`'s subtree that does not set it itself. */
static int matrix_env(struct vk__wf_loader *L, struct vk_wf_fragment *f,
                      const struct vk__wf_cell *cell)
{
    if (f->type == VK_WF_GROUP) {
        for (size_t i = 0; i < f->nchildren; i++) {
            int rc = matrix_env(L, &f->children[i], cell);
            if (rc < 0)
                return rc;
        }
        return 0;
    }
    struct vk_wf_kv *kv = vk_pool_zalloc(L->pool, (f->nenv + cell->n) * sizeof(*kv));
    if (!kv)
        return vk__wf_fail(L, VK_WF_ERR_NOMEM, VK_ENOMEM, 0, 0, "out of memory");
    if (f->nenv)
        memcpy(kv, f->env, f->nenv * sizeof(*kv));
    size_t n = f->nenv;
    for (size_t i = 0; i < cell->n; i++) {
        char name[80];
        int w = snprintf(name, sizeof(name), "MATRIX_%s", cell->keys[i]);
        for (int j = 7; j < w; j++)
            name[j] = name[j] == '-' ? '_' : (char)toupper((unsigned char)name[j]);
        bool own = false;
        for (size_t k = 0; k < f->nenv && !own; k++)
            own = strcmp(f->env[k].key, name) == 0;
        if (own)
            continue;
        kv[n].key = vk_pool_strndup(L->pool, name, strlen(name));
        if (!kv[n].key)
            return vk__wf_fail(L, VK_WF_ERR_NOMEM, VK_ENOMEM, 0, 0, "out of memory");
        kv[n].value = cell->values[i];
        kv[n].pos = f->pos;
        n++;
    }
    f->env = kv;
    f->nenv = n;
    return 0;
}

/*
 * Node `n` (a fragment or parallel) with the `matrix` block `mn`: `g` becomes a parallel
 * group (is_matrix) with one copy of `n` per combination, each loaded with `{matrix.KEY}`
 * filled in, named "NAME (v1, v2)" unless its name uses a matrix value itself, and given
 * MATRIX_<KEY> in its environment.
 */
static int load_matrix(struct vk__wf_loader *L, const struct vk_kdl_node *n,
                       const struct vk_kdl_node *mn, struct vk_wf_fragment *g)
{
    if (L->matrix)
        return vk__wf_fail(L, VK_WF_ERR_INVALID_VALUE, VK_EPARSE, VK__WF_AT(mn->pos),
                           "a matrix cannot be inside another matrix: put the axes together "
                           "in one 'matrix'");
    for (const struct vk_kdl_node *c = n->children; c; c = c->next)
        if (c != mn && vk_kdl_str_eq(c->name, "matrix"))
            return vk__wf_fail(L, VK_WF_ERR_DUPLICATE, VK_EPARSE, VK__WF_AT(c->pos),
                               "'matrix' is given twice (first at line %u)", mn->pos.line);
    struct matrix m = {0};
    int rc = matrix_parse(L, mn, &m, g);
    if (rc < 0)
        return rc;
    bool is_frag = vk_kdl_str_eq(n->name, "fragment");
    const char *raw_name = NULL;
    for (const struct vk_kdl_node *c = n->children; c; c = c->next)
        if (vk_kdl_str_eq(c->name, "name") && c->nargs == 1 && c->args[0].kind == VK_KDL_STRING)
            raw_name = vk__wf_strdup(L, c->args[0].str);
    g->type = VK_WF_GROUP;
    g->is_parallel = true;
    g->is_matrix = true;
    g->name = raw_name;
    g->machine = g->parent->machine;
    g->network = g->parent->network;
    g->secrets = g->parent->secrets; /* its copies add their own (load_fragment) */
    g->nsecrets = g->parent->nsecrets;
    struct checkout co;
    CHECKOUT_GET(&co, g->parent);
    CHECKOUT_SET(g, &co);
    g->children = alloc_children(L, m.ncells);
    if (!g->children)
        return VK_ENOMEM;
    for (size_t i = 0; i < m.ncells; i++) {
        rc = count_fragment(L, n);
        if (rc < 0)
            return rc;
        struct vk_wf_fragment *f = &g->children[i];
        f->sequence = (uint32_t)i;
        f->parent = g;
        f->pos = g->pos;
        f->source_url = g->source_url;
        g->nchildren++;
        L->matrix = &m.cells[i];
        rc = is_frag ? load_fragment(L, n, f) : load_parallel(L, n, f);
        L->matrix = NULL;
        if (rc < 0)
            return rc;
        if (!raw_name || !strstr(raw_name, "{matrix.")) {
            struct vk_buf b = VK_BUF_INIT(VK_MAX_SMALL);
            int e = vk_buf_addf(&b, "%s%s(", raw_name ? raw_name : "", raw_name ? " " : "");
            for (size_t k = 0; e == 0 && k < m.cells[i].n; k++)
                e = vk_buf_addf(&b, "%s%s", k ? ", " : "", m.cells[i].values[k]);
            if (e == 0)
                e = vk_buf_addch(&b, ')');
            f->name = e == 0 ? vk_pool_strndup(L->pool, b.data, b.len) : NULL;
            vk_buf_release(&b);
            if (!f->name)
                return vk__wf_fail(L, VK_WF_ERR_NOMEM, VK_ENOMEM, 0, 0, "out of memory");
        }
        f->nmatrix = m.cells[i].n;
        f->matrix = vk_pool_zalloc(L->pool, f->nmatrix * sizeof(*f->matrix));
        if (!f->matrix)
            return vk__wf_fail(L, VK_WF_ERR_NOMEM, VK_ENOMEM, 0, 0, "out of memory");
        for (size_t k = 0; k < f->nmatrix; k++) {
            f->matrix[k].key = m.cells[i].keys[k];
            f->matrix[k].value = m.cells[i].values[k];
            f->matrix[k].pos = vk__wf_pos(L, mn->pos);
        }
        rc = matrix_env(L, f, &m.cells[i]);
        if (rc < 0)
            return rc;
    }
    /* The node's `when` and `allow-failure` are the group's too (the same in every copy). */
    g->when = g->children[0].when;
    g->allow_failure = g->children[0].allow_failure;
    /* And its `needs`: the group waits, then its copies start (max-parallel applies). */
    g->needs = g->children[0].needs;
    g->needs_pos = g->children[0].needs_pos;
    g->nneeds = g->children[0].nneeds;
    for (size_t i = 0; i < g->nchildren; i++)
        g->children[i].nneeds = 0;
    return 0;
}

int vk__wf_load_children(struct vk__wf_loader *L, const struct vk_kdl_node *first,
                         struct vk_wf_fragment *g)
{
    size_t n = 0;
    for (const struct vk_kdl_node *c = first; c; c = c->next) {
        if (vk_kdl_str_eq(c->name, "fragment") || vk_kdl_str_eq(c->name, "parallel"))
            n++;
    }
    if (n == 0)
        return 0;
    g->children = alloc_children(L, n);
    if (!g->children)
        return VK_ENOMEM;
    for (const struct vk_kdl_node *c = first; c; c = c->next) {
        bool is_frag = vk_kdl_str_eq(c->name, "fragment");
        if (!is_frag && !vk_kdl_str_eq(c->name, "parallel"))
            continue;
        int rc = count_fragment(L, c);
        if (rc < 0)
            return rc;
        struct vk_wf_fragment *f = &g->children[g->nchildren];
        f->sequence = (uint32_t)g->nchildren;
        f->parent = g;
        f->pos = vk__wf_pos(L, c->pos);
        f->source_url = L->cur->source_url;
        g->nchildren++;
        const struct vk_kdl_node *mn = NULL;
        for (const struct vk_kdl_node *k = c->children; k && !mn; k = k->next)
            if (vk_kdl_str_eq(k->name, "matrix"))
                mn = k;
        if (mn)
            rc = load_matrix(L, c, mn, f); /* inside a matrix copy: refused */
        else
            rc = is_frag ? load_fragment(L, c, f) : load_parallel(L, c, f);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int load_chain(struct vk__wf_loader *L, const struct vk_kdl_node *n)
{
    struct vk_workflow *wf = L->wf;
    int rc = vk__wf_no_args(L, n);
    if (rc == 0)
        rc = vk__wf_no_props(L, n);
    if (rc < 0)
        return rc;
    const struct vk_kdl_node *s_machine = NULL, *s_env = NULL, *s_network = NULL,
                             *s_checkout = NULL, *s_conc = NULL;
    struct checkout co;
    size_t nfrag = 0;
    for (const struct vk_kdl_node *c = n->children; rc == 0 && c; c = c->next) {
        if (vk_kdl_str_eq(c->name, "fragment") || vk_kdl_str_eq(c->name, "parallel")) {
            nfrag++;
        } else if (vk_kdl_str_eq(c->name, "machine")) {
            rc = once(L, c, &s_machine);
            if (rc == 0)
                rc = nonempty_string(L, c, &wf->machine);
        } else if (vk_kdl_str_eq(c->name, "env")) {
            rc = once(L, c, &s_env);
            if (rc == 0)
                rc = load_env(L, c, &wf->env, &wf->nenv);
        } else if (vk_kdl_str_eq(c->name, "network")) {
            rc = once(L, c, &s_network);
            if (rc == 0)
                rc = load_network(L, c, &wf->network);
        } else if (vk_kdl_str_eq(c->name, "checkout")) {
            rc = once(L, c, &s_checkout);
            if (rc == 0)
                rc = load_checkout(L, c, &co);
            if (rc == 0)
                CHECKOUT_SET(wf, &co);
        } else if (vk_kdl_str_eq(c->name, "secrets") || vk_kdl_str_eq(c->name, "secret-file")) {
            rc = load_secrets(L, c, vk_kdl_str_eq(c->name, "secret-file"), &wf->secrets,
                              &wf->nsecrets);
        } else if (vk_kdl_str_eq(c->name, "concurrency")) {
            rc = vk__wf_load_concurrency(L, c, &s_conc, &wf->concurrency);
        } else {
            rc = vk__wf_fail(L, VK_WF_ERR_UNKNOWN_NODE, VK_EPARSE, VK__WF_AT(c->pos),
                             "unknown node '%s' in 'chain'; expected one of: machine, env, "
                             "network, checkout, secrets, secret-file, concurrency, fragment, "
                             "parallel",
                             c->name.ptr);
        }
    }
    if (rc < 0)
        return rc;
    if (!wf->machine)
        return vk__wf_fail(L, VK_WF_ERR_NO_MACHINE, VK_EPARSE, VK__WF_AT(n->pos),
                           "'chain' has no 'machine': add machine \"<group>\", the worker group "
                           "that runs fragments without a machine of their own");
    if (nfrag == 0)
        return vk__wf_fail(L, VK_WF_ERR_MISSING, VK_EPARSE, VK__WF_AT(n->pos),
                           "'chain' holds no fragments; add fragment { run \"…\" }");
    struct vk_wf_fragment *root = &wf->root;
    root->type = VK_WF_GROUP;
    root->name = "chain";
    root->machine = wf->machine;
    root->network = wf->network;
    root->secrets = wf->secrets;
    root->nsecrets = wf->nsecrets;
    CHECKOUT_GET(&co, wf);
    CHECKOUT_SET(root, &co);
    root->pos = vk__wf_pos(L, n->pos);
    rc = vk__wf_load_children(L, n->children, root);
    return rc < 0 ? rc : vk__wf_resolve_needs(L);
}

static int load_version(struct vk__wf_loader *L, const struct vk_kdl_node *n)
{
    if (n->nargs == 1 && n->args[0].kind != VK_KDL_STRING)
        return vk__wf_fail(L, VK_WF_ERR_INVALID_VALUE, VK_EPARSE, VK__WF_AT(n->args[0].pos),
                           "'version' must be a string: version \"%s\"", VK_WF_VERSION);
    int rc = vk__wf_one_string(L, n, &L->wf->version);
    if (rc == 0 && strcmp(L->wf->version, VK_WF_VERSION) != 0)
        rc =
            vk__wf_fail(L, VK_WF_ERR_INVALID_VALUE, VK_EPARSE, VK__WF_AT(n->args[0].pos),
                        "unsupported version '%s'; expected \"%s\"", L->wf->version, VK_WF_VERSION);
    return rc;
}

/* The top-level nodes of a workflow file. */
int vk__wf_load_document(struct vk__wf_loader *L, const struct vk_kdl_doc *doc);
int vk__wf_load_document(struct vk__wf_loader *L, const struct vk_kdl_doc *doc)
{
    const struct vk_kdl_node *s_version = NULL, *s_name = NULL, *s_triggers = NULL, *s_chain = NULL,
                             *s_qtimeout = NULL;
    int rc = 0;
    for (const struct vk_kdl_node *c = doc->nodes; rc == 0 && c; c = c->next) {
        if (vk_kdl_str_eq(c->name, "version")) {
            rc = once(L, c, &s_version);
            if (rc == 0)
                rc = load_version(L, c);
        } else if (vk_kdl_str_eq(c->name, "name")) {
            rc = once(L, c, &s_name);
            if (rc == 0)
                rc = nonempty_string(L, c, &L->wf->name);
        } else if (vk_kdl_str_eq(c->name, "triggers")) {
            rc = once(L, c, &s_triggers);
            if (rc == 0)
                rc = vk__wf_load_triggers(L, c);
        } else if (vk_kdl_str_eq(c->name, "queue-timeout")) {
            rc = load_queue_timeout(L, c, &s_qtimeout, &L->wf->queue_timeout_ms);
        } else if (vk_kdl_str_eq(c->name, "chain")) {
            rc = once(L, c, &s_chain);
            if (rc == 0)
                rc = load_chain(L, c);
        } else if (vk_kdl_str_eq(c->name, "fragment") || vk_kdl_str_eq(c->name, "parallel")) {
            rc = vk__wf_fail(L, VK_WF_ERR_UNKNOWN_NODE, VK_EPARSE, VK__WF_AT(c->pos),
                             "'%s' must be inside 'chain' (only fragment files, which are "
                             "imported, hold fragments at the top level)",
                             c->name.ptr);
        } else {
            rc = vk__wf_fail(L, VK_WF_ERR_UNKNOWN_NODE, VK_EPARSE, VK__WF_AT(c->pos),
                             "unknown node '%s'; expected one of: version, name, queue-timeout, "
                             "triggers, chain",
                             c->name.ptr);
        }
    }
    if (rc < 0)
        return rc;
    if (!s_version)
        return vk__wf_fail(L, VK_WF_ERR_MISSING, VK_EPARSE, 0, 0,
                           "missing 'version': add version \"%s\" at the top", VK_WF_VERSION);
    if (!s_triggers)
        return vk__wf_fail(L, VK_WF_ERR_MISSING, VK_EPARSE, 0, 0,
                           "missing 'triggers': add for example triggers \"push\"");
    if (!s_chain)
        return vk__wf_fail(L, VK_WF_ERR_MISSING, VK_EPARSE, 0, 0,
                           "missing 'chain': add chain { machine \"…\"; fragment { run \"…\" } }");
    return 0;
}
