/*
 * The `concurrency` node of a chain or an inline fragment (docs/workflow.md, "Concurrency
 * groups"):
 *
 *     concurrency group="deploy-{branch}" cancel-in-progress=#true
 *
 * The group is checked here: placeholders are `{branch}`, `{repo}`, `{workflow}` (left in
 * the text and filled in when a chain is made, vk_wf_concurrency_expand()) and, in a
 * matrix copy, `{matrix.KEY}` (filled in now, like every other string of the copy).
 */
#include "wf_int.h"

#include <string.h>

static const char *const placeholders[] = {"branch", "repo", "workflow"};

/* The placeholder at `p` ("{name}"): its index in `placeholders`, -1 when unknown. */
static int placeholder(const char *p, size_t len, size_t *plen)
{
    for (size_t i = 0; i < VK_ARRAY_LEN(placeholders); i++) {
        size_t n = strlen(placeholders[i]);
        if (len >= n + 2 && p[0] == '{' && memcmp(p + 1, placeholders[i], n) == 0 &&
            p[n + 1] == '}') {
            *plen = n + 2;
            return (int)i;
        }
    }
    return -1;
}

/* Check the group text as written (before `{matrix.…}` is filled in), so that columns
 * point into the file. */
static int check_group(struct vk__wf_loader *L, const struct vk_kdl_value *v)
{
    const char *s = v->str.ptr;
    size_t len = v->str.len;
    if (len == 0)
        return vk__wf_fail(L, VK_WF_ERR_INVALID_VALUE, VK_EPARSE, VK__WF_AT(v->pos),
                           "the concurrency group cannot be empty");
    if (len > VK_WF_MAX_CONCURRENCY_GROUP)
        return vk__wf_fail(L, VK_WF_ERR_LIMIT, VK_EPARSE, VK__WF_AT(v->pos),
                           "the concurrency group is longer than %d bytes",
                           VK_WF_MAX_CONCURRENCY_GROUP);
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch < 0x20 || ch == 0x7f)
            return vk__wf_fail(L, VK_WF_ERR_INVALID_VALUE, VK_EPARSE, v->pos.line,
                               vk__wf_value_col(L, v, i),
                               "the concurrency group contains a control character");
        if (ch == '}')
            return vk__wf_fail(L, VK_WF_ERR_INVALID_VALUE, VK_EPARSE, v->pos.line,
                               vk__wf_value_col(L, v, i),
                               "a '}' without its '{' in the concurrency group");
        if (ch != '{')
            continue;
        size_t plen = 0;
        if (placeholder(s + i, len - i, &plen) >= 0) {
            i += plen - 1;
            continue;
        }
        const char *end = memchr(s + i, '}', len - i);
        static const char mx[] = "{matrix.";
        bool is_matrix = len - i > sizeof(mx) - 1 && memcmp(s + i, mx, sizeof(mx) - 1) == 0;
        if (end && is_matrix && L->matrix) { /* checked and filled in by vk__wf_string_value */
            i = (size_t)(end - s);
            continue;
        }
        int n = end ? (int)(end - (s + i) + 1) : (int)(len - i);
        if (end && is_matrix)
            return vk__wf_fail(L, VK_WF_ERR_INVALID_VALUE, VK_EPARSE, v->pos.line,
                               vk__wf_value_col(L, v, i),
                               "'%.*s' in the concurrency group needs a matrix: only the "
                               "copies of a fragment with 'matrix' have matrix values",
                               n, s + i);
        return vk__wf_fail(L, VK_WF_ERR_INVALID_VALUE, VK_EPARSE, v->pos.line,
                           vk__wf_value_col(L, v, i),
                           end ? "unknown placeholder '%.*s' in the concurrency group; "
                                 "expected {branch}, {repo}, {workflow} or {matrix.KEY}"
                               : "'%.*s' in the concurrency group has no closing '}'",
                           n, s + i);
    }
    return 0;
}

int vk__wf_load_concurrency(struct vk__wf_loader *L, const struct vk_kdl_node *n,
                            const struct vk_kdl_node **seen, const struct vk_wf_concurrency **out)
{
    if (*seen)
        return vk__wf_fail(L, VK_WF_ERR_DUPLICATE, VK_EPARSE, VK__WF_AT(n->pos),
                           "duplicate 'concurrency' (first at line %u)", (*seen)->pos.line);
    *seen = n;
    int rc = vk__wf_no_children(L, n);
    if (rc == 0 && n->nargs)
        rc = vk__wf_fail(L, VK_WF_ERR_INVALID_VALUE, VK_EPARSE, VK__WF_AT(n->args[0].pos),
                         "'concurrency' takes properties, not arguments: concurrency "
                         "group=\"deploy-{branch}\" cancel-in-progress=#true");
    if (rc < 0)
        return rc;
    struct vk_wf_concurrency *c = vk_pool_zalloc(L->pool, sizeof(*c));
    if (!c)
        return vk__wf_fail(L, VK_WF_ERR_NOMEM, VK_ENOMEM, 0, 0, "out of memory");
    c->pos = vk__wf_pos(L, n->pos);
    for (uint32_t i = 0; rc == 0 && i < n->nprops; i++) {
        const struct vk_kdl_prop *p = &n->props[i];
        const struct vk_kdl_value *v = &p->value;
        if (vk_kdl_str_eq(p->key, "group")) {
            if (v->kind != VK_KDL_STRING)
                rc = vk__wf_fail(L, VK_WF_ERR_INVALID_VALUE, VK_EPARSE, VK__WF_AT(v->pos),
                                 "'group' takes a string such as \"deploy-{branch}\", not %s",
                                 vk_kdl_kind_name(v->kind));
            if (rc == 0)
                rc = check_group(L, v);
            if (rc == 0)
                rc = vk__wf_string_value(L, n, v, &c->group);
        } else if (vk_kdl_str_eq(p->key, "cancel-in-progress")) {
            if (v->kind != VK_KDL_BOOL)
                rc = vk__wf_fail(L, VK_WF_ERR_INVALID_VALUE, VK_EPARSE, VK__WF_AT(v->pos),
                                 "'cancel-in-progress' takes #true or #false, not %s",
                                 vk_kdl_kind_name(v->kind));
            else
                c->cancel_in_progress = v->b;
        } else {
            rc = vk__wf_fail(L, VK_WF_ERR_INVALID_VALUE, VK_EPARSE, VK__WF_AT(p->pos),
                             "unknown property '%s' of 'concurrency'; expected group=\"…\" "
                             "and cancel-in-progress=#true|#false",
                             p->key.ptr);
        }
    }
    if (rc < 0)
        return rc;
    if (!c->group)
        return vk__wf_fail(L, VK_WF_ERR_MISSING, VK_EPARSE, VK__WF_AT(n->pos),
                           "'concurrency' needs a group: concurrency group=\"deploy-{branch}\"");
    if (strlen(c->group) > VK_WF_MAX_CONCURRENCY_GROUP)
        return vk__wf_fail(L, VK_WF_ERR_LIMIT, VK_EPARSE, VK__WF_AT(n->pos),
                           "the concurrency group is longer than %d bytes once its matrix "
                           "values are filled in",
                           VK_WF_MAX_CONCURRENCY_GROUP);
    *out = c;
    return 0;
}

int vk_wf_concurrency_expand(const char *group, const char *branch, const char *repo,
                             const char *workflow, char *out, size_t cap)
{
    const char *vals[] = {branch ? branch : "", repo ? repo : "", workflow ? workflow : ""};
    size_t o = 0, len = strlen(group);
    if (cap == 0)
        return VK_ETOOBIG;
    size_t max = cap - 1 < VK_WF_MAX_CONCURRENCY_GROUP ? cap - 1 : VK_WF_MAX_CONCURRENCY_GROUP;
    for (size_t i = 0; i < len;) {
        size_t plen = 0;
        int k = group[i] == '{' ? placeholder(group + i, len - i, &plen) : -1;
        const char *add = k >= 0 ? vals[k] : group + i;
        size_t n = k >= 0 ? strlen(vals[k]) : 1;
        if (o + n > max) {
            out[0] = '\0';
            return VK_ETOOBIG;
        }
        memcpy(out + o, add, n);
        o += n;
        i += k >= 0 ? plen : 1;
    }
    out[o] = '\0';
    return 0;
}
