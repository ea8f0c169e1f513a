/*
 * `needs "a" "b"` on a fragment or group: parsing, and once the chain has loaded, the
 * resolution of every name to its node and the refusal of unknown or ambiguous names and
 * of cycles (docs/workflow.md, "Needs").
 *
 * A cycle is looked for in the "happens before" graph, not only among `needs`: each node
 * X has a start S(X) and an end E(X), with S(X) → E(X); a group starts before its
 * children start and ends after they end; in a sequence E(child i) → S(child i+1); and
 * `X needs Y` is E(Y) → S(X). A cycle there is a chain that can never finish (`a needs
 * b` where b comes after a in a sequence, or a group needing its own child), so it is a
 * load error naming the whole cycle. The search is an iterative depth-first search:
 * linear in nodes + edges, no recursion however deep the graph.
 */
#include "wf_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int vk__wf_load_needs(struct vk__wf_loader *L, const struct vk_kdl_node *c,
                      const struct vk_kdl_node **seen, struct vk_wf_fragment *f)
{
    if (*seen)
        return vk__wf_fail(L, VK_WF_ERR_DUPLICATE, VK_EPARSE, VK__WF_AT(c->pos),
                           "duplicate 'needs' (first at line %u): list every name in one "
                           "needs \"a\" \"b\"",
                           (*seen)->pos.line);
    *seen = c;
    struct vk_wf_strlist names = {0};
    int rc = vk__wf_string_list(L, c, &names);
    if (rc < 0)
        return rc;
    if (names.n > VK_WF_MAX_NEEDS)
        return vk__wf_fail(L, VK_WF_ERR_LIMIT, VK_EPARSE, VK__WF_AT(c->args[VK_WF_MAX_NEEDS].pos),
                           "'needs' lists more than %d names", VK_WF_MAX_NEEDS);
    f->needs_pos = vk_pool_zalloc(L->pool, names.n * sizeof(*f->needs_pos));
    if (!f->needs_pos)
        return vk__wf_fail(L, VK_WF_ERR_NOMEM, VK_ENOMEM, 0, 0, "out of memory");
    for (size_t i = 0; i < names.n; i++) {
        for (size_t k = 0; k < i; k++)
            if (strcmp(names.items[k], names.items[i]) == 0)
                return vk__wf_fail(L, VK_WF_ERR_DUPLICATE, VK_EPARSE, VK__WF_AT(c->args[i].pos),
                                   "'needs' names '%s' twice", names.items[i]);
        f->needs_pos[i] = vk__wf_pos(L, c->args[i].pos);
    }
    f->needs = names.items;
    f->nneeds = names.n;
    return 0;
}

/* ---------------------------------------------------------------- resolution */

struct resolver {
    struct vk__wf_loader *L;
    struct vk_wf_fragment **nodes; /* by index */
    size_t n, cap;
    size_t nedges;
    /* Names: an open-addressing table of node indexes (+1; 0 is empty). */
    uint32_t *slots;
    size_t nslots;
    /* Reverse needs (CSR): the nodes that need node i are dep[dep_at[i] .. dep_at[i+1]). */
    uint32_t *dep_at, *dep;
};

static int collect(struct resolver *r, struct vk_wf_fragment *g)
{
    for (size_t i = 0; i < g->nchildren; i++) {
        struct vk_wf_fragment *f = &g->children[i];
        if (vk_array_pool_grow(r->L->pool, &r->nodes, &r->cap, r->n + 1, 64, sizeof(*r->nodes)) < 0)
            return vk__wf_fail(r->L, VK_WF_ERR_NOMEM, VK_ENOMEM, 0, 0, "out of memory");
        f->index = (uint32_t)r->n;
        r->nodes[r->n++] = f;
        r->nedges += f->nneeds;
        int rc = collect(r, f);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static uint64_t hash(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* The slot of `name`: the one holding a node of that name, else the empty one to use. */
static uint32_t *slot_of(struct resolver *r, const char *name)
{
    size_t i = hash(name) & (r->nslots - 1);
    while (r->slots[i] && strcmp(r->nodes[r->slots[i] - 1]->name, name) != 0)
        i = (i + 1) & (r->nslots - 1);
    return &r->slots[i];
}

/* An error at a place of a (possibly imported) file: the loader's current file is the
 * top-level one by now, so a place elsewhere is reported under its own file name. */
VK_PRINTF(4, 5)
static int fail_at(struct resolver *r, enum vk_wf_errkind kind, struct vk_wf_pos p, const char *fmt,
                   ...)
{
    char msg[sizeof(((struct vk_wf_error *)0)->msg)];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    struct vk__wf_loader *L = r->L;
    struct vk__wf_file *cur = L->cur, other = {0};
    if (p.file && cur && cur->name && strcmp(p.file, cur->name) != 0) {
        other.name = p.file;
        L->cur = &other;
    }
    int rc = vk__wf_fail(L, kind, VK_EPARSE, p.line, p.col, "%s", msg);
    L->cur = cur;
    return rc;
}

static const char *label(struct resolver *r, const struct vk_wf_fragment *f)
{
    if (f->name)
        return f->name;
    char buf[64];
    snprintf(buf, sizeof(buf), "the %s at line %u", f->type == VK_WF_INLINE ? "fragment" : "group",
             f->pos.line);
    const char *s = vk_pool_strndup(r->L->pool, buf, strlen(buf));
    return s ? s : "?";
}

static int resolve_names(struct resolver *r)
{
    struct vk__wf_loader *L = r->L;
    r->nslots = 16;
    while (r->nslots < r->n * 2)
        r->nslots <<= 1;
    r->slots = vk_pool_zalloc(L->pool, r->nslots * sizeof(*r->slots));
    /* A second node of a name: dup[index of the first] = index of the second + 1. */
    uint32_t *dup = vk_pool_zalloc(L->pool, r->n * sizeof(*dup));
    if (!r->slots || !dup)
        return vk__wf_fail(L, VK_WF_ERR_NOMEM, VK_ENOMEM, 0, 0, "out of memory");
    for (size_t i = 0; i < r->n; i++) {
        if (!r->nodes[i]->name)
            continue;
        uint32_t *s = slot_of(r, r->nodes[i]->name);
        if (!*s)
            *s = (uint32_t)i + 1;
        else if (!dup[*s - 1])
            dup[*s - 1] = (uint32_t)i + 1;
    }
    for (size_t i = 0; i < r->n; i++) {
        struct vk_wf_fragment *f = r->nodes[i];
        if (!f->nneeds)
            continue;
        if (f->parent && f->parent->max_parallel > 0)
            return fail_at(r, VK_WF_ERR_INVALID_VALUE, f->needs_pos[0],
                           "'needs' cannot be used on a child of a group with max-parallel "
                           "('%s'): put it on the group",
                           f->parent->name ? f->parent->name : "parallel");
        f->needs_frag = vk_pool_zalloc(L->pool, f->nneeds * sizeof(*f->needs_frag));
        if (!f->needs_frag)
            return vk__wf_fail(L, VK_WF_ERR_NOMEM, VK_ENOMEM, 0, 0, "out of memory");
        for (size_t k = 0; k < f->nneeds; k++) {
            uint32_t s = *slot_of(r, f->needs[k]);
            if (!s)
                return fail_at(r, VK_WF_ERR_INVALID_VALUE, f->needs_pos[k],
                               "unknown fragment '%s' in 'needs': no fragment or group of "
                               "this chain is named so",
                               f->needs[k]);
            if (dup[s - 1]) {
                const struct vk_wf_fragment *a = r->nodes[s - 1], *b = r->nodes[dup[s - 1] - 1];
                char where[96];
                snprintf(where, sizeof(where), "%s:%u and %s:%u", a->pos.file ? a->pos.file : "?",
                         a->pos.line, b->pos.file ? b->pos.file : "?", b->pos.line);
                return fail_at(r, VK_WF_ERR_DUPLICATE, f->needs_pos[k],
                               "'needs' names '%s', which more than one fragment is named (%s); "
                               "a name that 'needs' refers to must be unique in the chain",
                               f->needs[k], where);
            }
            f->needs_frag[k] = r->nodes[s - 1];
        }
    }
    /* Reverse edges, for the cycle search. */
    r->dep_at = vk_pool_zalloc(L->pool, (r->n + 1) * sizeof(*r->dep_at));
    r->dep = vk_pool_zalloc(L->pool, (r->nedges + 1) * sizeof(*r->dep));
    if (!r->dep_at || !r->dep)
        return vk__wf_fail(L, VK_WF_ERR_NOMEM, VK_ENOMEM, 0, 0, "out of memory");
    for (size_t i = 0; i < r->n; i++)
        for (size_t k = 0; k < r->nodes[i]->nneeds; k++)
            r->dep_at[r->nodes[i]->needs_frag[k]->index + 1]++;
    for (size_t i = 0; i < r->n; i++)
        r->dep_at[i + 1] += r->dep_at[i];
    uint32_t *fill = vk_pool_zalloc(L->pool, (r->n + 1) * sizeof(*fill));
    if (!fill)
        return vk__wf_fail(L, VK_WF_ERR_NOMEM, VK_ENOMEM, 0, 0, "out of memory");
    for (size_t i = 0; i < r->n; i++)
        for (size_t k = 0; k < r->nodes[i]->nneeds; k++) {
            uint32_t y = r->nodes[i]->needs_frag[k]->index;
            r->dep[r->dep_at[y] + fill[y]++] = (uint32_t)i;
        }
    return 0;
}

/* Vertices: 2i is S(node i), 2i+1 is E(node i). Edge kinds, for the cycle's text. */
enum edge { E_RUN, E_INSIDE, E_CLOSE, E_AFTER, E_NEEDS, E_NONE };

static bool is_root(const struct resolver *r, const struct vk_wf_fragment *f)
{
    return f == &r->L->wf->root;
}

/* The k-th edge out of vertex v: *to and its kind; E_NONE when there is no k-th. */
static enum edge out_edge(const struct resolver *r, uint32_t v, uint32_t k, uint32_t *to)
{
    const struct vk_wf_fragment *f = r->nodes[v / 2];
    if (v % 2 == 0) { /* S(f): E(f), then S(each child) */
        if (k == 0) {
            *to = v + 1;
            return E_RUN;
        }
        if (k - 1 < f->nchildren) {
            *to = 2 * f->children[k - 1].index;
            return E_INSIDE;
        }
        return E_NONE;
    }
    const struct vk_wf_fragment *p = f->parent;
    if (p && !is_root(r, p)) {
        if (k == 0) {
            *to = 2 * p->index + 1;
            return E_CLOSE;
        }
        k--;
    }
    if (p && !p->is_parallel && f->sequence + 1 < p->nchildren) {
        if (k == 0) {
            *to = 2 * p->children[f->sequence + 1].index;
            return E_AFTER;
        }
        k--;
    }
    uint32_t a = r->dep_at[f->index], b = r->dep_at[f->index + 1];
    if (k < b - a) {
        *to = 2 * r->dep[a + k];
        return E_NEEDS;
    }
    return E_NONE;
}

/* The cycle stack[from..top] (closing back to stack[from]) as text, and the place of
 * its first `needs` edge. */
static int report_cycle(struct resolver *r, const uint32_t *stack, const uint8_t *kinds,
                        size_t from, size_t top)
{
    struct vk_buf b = VK_BUF_INIT(VK_MAX_SMALL);
    struct vk_wf_pos at = {0};
    bool have = false;
    int e = 0;
    for (size_t i = from; i <= top && e == 0; i++) {
        uint32_t u = stack[i], v = i < top ? stack[i + 1] : stack[from];
        const char *x = label(r, r->nodes[u / 2]), *y = label(r, r->nodes[v / 2]);
        const char *sep = b.len ? " → " : "";
        switch ((enum edge)kinds[i]) {
        case E_NEEDS: {
            const struct vk_wf_fragment *d = r->nodes[v / 2];
            for (size_t k = 0; k < d->nneeds && !have; k++)
                if (d->needs_frag[k] == r->nodes[u / 2]) {
                    at = d->needs_pos[k];
                    have = true;
                }
            e = vk_buf_addf(&b, "%s`%s` needs `%s`", sep, y, x);
            break;
        }
        case E_AFTER:
            e = vk_buf_addf(&b, "%s`%s` comes after `%s` in its sequence", sep, y, x);
            break;
        case E_INSIDE:
            e = vk_buf_addf(&b, "%s`%s` is inside `%s`", sep, y, x);
            break;
        case E_CLOSE:
            e = vk_buf_addf(&b, "%s`%s` ends after `%s`", sep, y, x);
            break;
        default:
            break;
        }
    }
    int rc = e == 0 ? fail_at(r, VK_WF_ERR_CYCLE, at, "needs cycle: %s", b.data ? b.data : "")
                    : vk__wf_fail(r->L, VK_WF_ERR_NOMEM, VK_ENOMEM, 0, 0, "out of memory");
    vk_buf_release(&b);
    return rc;
}

static int find_cycle(struct resolver *r)
{
    struct vk__wf_loader *L = r->L;
    size_t nv = 2 * r->n;
    uint8_t *color = vk_pool_zalloc(L->pool, nv); /* 0 new, 1 on the stack, 2 done */
    uint32_t *stack = vk_pool_zalloc(L->pool, nv * sizeof(*stack));
    uint32_t *next = vk_pool_zalloc(L->pool, nv * sizeof(*next)); /* edge to try next */
    uint8_t *kinds = vk_pool_zalloc(L->pool, nv);                 /* edge taken from it */
    size_t *depth = vk_pool_zalloc(L->pool, nv * sizeof(*depth)); /* its place on the stack */
    if (!color || !stack || !next || !kinds || !depth)
        return vk__wf_fail(L, VK_WF_ERR_NOMEM, VK_ENOMEM, 0, 0, "out of memory");
    for (uint32_t s = 0; s < nv; s++) {
        if (color[s])
            continue;
        size_t top = 0;
        stack[0] = s;
        color[s] = 1;
        depth[s] = 0;
        while (true) {
            uint32_t v = stack[top], to = 0;
            enum edge k = out_edge(r, v, next[v]++, &to);
            if (k == E_NONE) {
                color[v] = 2;
                if (top == 0)
                    break;
                top--;
                continue;
            }
            kinds[top] = (uint8_t)k;
            if (color[to] == 1)
                return report_cycle(r, stack, kinds, depth[to], top);
            if (color[to] == 0) {
                color[to] = 1;
                stack[++top] = to;
                depth[to] = top;
            }
        }
    }
    return 0;
}

int vk__wf_resolve_needs(struct vk__wf_loader *L)
{
    struct resolver r = {.L = L};
    int rc = collect(&r, &L->wf->root);
    if (rc < 0 || r.nedges == 0)
        return rc;
    if (r.nedges > VK_WF_MAX_NEEDS_EDGES)
        return vk__wf_fail(L, VK_WF_ERR_LIMIT, VK_ETOOBIG, 0, 0,
                           "the chain has %zu 'needs' edges; the limit is %d", r.nedges,
                           VK_WF_MAX_NEEDS_EDGES);
    rc = resolve_names(&r);
    if (rc == 0)
        rc = find_cycle(&r);
    return rc;
}
