/*
 * Trigger declarations (simple and block form) and the event matcher.
 * Matching follows GitHub Actions' rules; see docs/workflow.md.
 */
#include "wf_int.h"

#include <stdio.h>
#include <string.h>

static const char *const type_names[] = {"push",     "pull_request", "tag",
                                         "schedule", "manual",       "chain"};

#define EXPECTED_TRIGGERS "expected one of: push, pull_request, tag, schedule, manual, chain"

static const char *const pr_actions[] = {"opened",
                                         "synchronize",
                                         "reopened",
                                         "closed",
                                         "edited",
                                         "assigned",
                                         "unassigned",
                                         "labeled",
                                         "unlabeled",
                                         "ready_for_review",
                                         "converted_to_draft",
                                         "review_requested",
                                         "review_request_removed",
                                         "locked",
                                         "unlocked"};

static const char *const default_pr_types[] = {"opened", "synchronize", "reopened"};

const char *vk_wf_trigger_type_name(enum vk_wf_trigger_type type)
{
    if ((unsigned)type < VK_ARRAY_LEN(type_names))
        return type_names[type];
    return "?";
}

/* Trigger names of other CI systems, and what to write here instead. */
static const struct {
    const char *name, *hint;
} foreign_triggers[] = {
    {"workflow_dispatch", "a run by hand is 'manual' (manual { input … } for inputs)"},
    {"dispatch", "a run by hand is 'manual'"},
    {"web", "a run by hand is 'manual'"},
    {"tags", "tags are their own trigger: tag { patterns \"v*\" }"},
    {"pull_request_target", "write 'pull_request'"},
    {"merge_request", "write 'pull_request' (merge requests of every provider)"},
    {"cron", "write schedule cron=\"…\""},
    {"workflow_run", "write chain workflow=\"NAME\" status=\"completed\""},
};

/* Fail on an unknown trigger `name`, with a hint when it is another system's. */
static int unknown_trigger(struct vk__wf_loader *L, struct vk_kdl_pos pos, const char *name)
{
    for (size_t i = 0; i < VK_ARRAY_LEN(foreign_triggers); i++) {
        if (strcmp(name, foreign_triggers[i].name) == 0)
            return vk__wf_fail(L, VK_WF_ERR_TRIGGER, VK_EPARSE, VK__WF_AT(pos),
                               "unknown trigger '%s': %s", name, foreign_triggers[i].hint);
    }
    return vk__wf_fail(L, VK_WF_ERR_TRIGGER, VK_EPARSE, VK__WF_AT(pos),
                       "unknown trigger '%s'; " EXPECTED_TRIGGERS, name);
}

static int type_of(struct vk_kdl_str s)
{
    for (size_t i = 0; i < VK_ARRAY_LEN(type_names); i++) {
        if (vk_kdl_str_eq(s, type_names[i]))
            return (int)i;
    }
    return -1;
}

/* ---------------------------------------------------------------- Loading */

static struct vk_wf_trigger *add_trigger(struct vk__wf_loader *L, enum vk_wf_trigger_type type,
                                         struct vk_kdl_pos pos, struct vk_kdl_str shown)
{
    struct vk_workflow *wf = L->wf;
    if (type != VK_WF_TRIG_SCHEDULE && type != VK_WF_TRIG_CHAIN) {
        for (size_t i = 0; i < wf->ntriggers; i++) {
            if (wf->triggers[i].type == type) {
                vk__wf_fail(L, VK_WF_ERR_TRIGGER, VK_EPARSE, VK__WF_AT(pos),
                            "trigger '%s' is declared twice (first at line %u)", type_names[type],
                            wf->triggers[i].pos.line);
                return NULL;
            }
        }
    }
    struct vk_wf_trigger *t = &wf->triggers[wf->ntriggers++];
    memset(t, 0, sizeof(*t));
    t->type = type;
    t->pos = vk__wf_pos(L, pos);
    (void)shown;
    return t;
}

/* Fill a filter list from a child node, rejecting duplicates. */
static int filter_list(struct vk__wf_loader *L, const struct vk_kdl_node *c,
                       struct vk_wf_strlist *dst)
{
    if (dst->n)
        return vk__wf_fail(L, VK_WF_ERR_DUPLICATE, VK_EPARSE, VK__WF_AT(c->pos),
                           "duplicate '%s' in this trigger", c->name.ptr);
    return vk__wf_string_list(L, c, dst);
}

static int check_actions(struct vk__wf_loader *L, const struct vk_kdl_node *c,
                         const struct vk_wf_strlist *types)
{
    for (size_t i = 0; i < types->n; i++) {
        bool ok = false;
        for (size_t k = 0; k < VK_ARRAY_LEN(pr_actions); k++)
            ok |= strcmp(types->items[i], pr_actions[k]) == 0;
        if (!ok)
            return vk__wf_fail(L, VK_WF_ERR_TRIGGER, VK_EPARSE, VK__WF_AT(c->args[i].pos),
                               "unknown pull_request type '%s'; expected one of: opened, "
                               "synchronize, reopened, closed, edited, assigned, unassigned, "
                               "labeled, unlabeled, ready_for_review, converted_to_draft, "
                               "review_requested, review_request_removed, locked, unlocked",
                               types->items[i]);
    }
    return 0;
}

/* push / pull_request / tag blocks: filter children. */
static int load_filters(struct vk__wf_loader *L, const struct vk_kdl_node *n,
                        struct vk_wf_trigger *t)
{
    int rc = vk__wf_no_args(L, n);
    if (rc == 0)
        rc = vk__wf_no_props(L, n);
    const struct vk_kdl_node *bi = NULL, *b = NULL;
    for (const struct vk_kdl_node *c = n->children; rc == 0 && c; c = c->next) {
        bool ev = t->type != VK_WF_TRIG_TAG;
        if (ev && vk_kdl_str_eq(c->name, "branches")) {
            rc = filter_list(L, c, &t->branches);
            b = c;
        } else if (ev && vk_kdl_str_eq(c->name, "branches-ignore")) {
            rc = filter_list(L, c, &t->branches_ignore);
            bi = c;
        } else if (ev && vk_kdl_str_eq(c->name, "paths")) {
            rc = filter_list(L, c, &t->paths);
        } else if (ev && vk_kdl_str_eq(c->name, "paths-ignore")) {
            rc = filter_list(L, c, &t->paths_ignore);
        } else if (t->type == VK_WF_TRIG_PULL_REQUEST && vk_kdl_str_eq(c->name, "types")) {
            rc = filter_list(L, c, &t->types);
            if (rc == 0)
                rc = check_actions(L, c, &t->types);
        } else if (!ev && vk_kdl_str_eq(c->name, "patterns")) {
            rc = filter_list(L, c, &t->tags);
        } else if (!ev && vk_kdl_str_eq(c->name, "ignore")) {
            rc = filter_list(L, c, &t->tags_ignore);
        } else if (t->type == VK_WF_TRIG_PUSH &&
                   (vk_kdl_str_eq(c->name, "tags") || vk_kdl_str_eq(c->name, "tags-ignore"))) {
            rc = vk__wf_fail(L, VK_WF_ERR_UNKNOWN_NODE, VK_EPARSE, VK__WF_AT(c->pos),
                             "'%s' is not a push filter: tags are a trigger of their own, "
                             "tag { patterns \"v*\"; ignore \"v*-rc*\" } beside push",
                             c->name.ptr);
        } else {
            const char *exp = t->type == VK_WF_TRIG_TAG ? "patterns, ignore"
                              : t->type == VK_WF_TRIG_PUSH
                                  ? "branches, branches-ignore, paths, paths-ignore"
                                  : "types, branches, branches-ignore, paths, paths-ignore";
            rc = vk__wf_fail(L, VK_WF_ERR_UNKNOWN_NODE, VK_EPARSE, VK__WF_AT(c->pos),
                             "unknown filter '%s' in '%s'; expected one of: %s", c->name.ptr,
                             type_names[t->type], exp);
        }
        if (rc == 0 && b && bi) {
            const struct vk_kdl_node *second = b->pos.offset > bi->pos.offset ? b : bi;
            rc = vk__wf_fail(L, VK_WF_ERR_TRIGGER, VK_EPARSE, VK__WF_AT(second->pos),
                             "'branches' and 'branches-ignore' cannot both filter one event; "
                             "use 'branches' with '!' patterns instead");
        }
    }
    return rc;
}

static int load_schedule(struct vk__wf_loader *L, const struct vk_kdl_node *n,
                         struct vk_wf_trigger *t)
{
    int rc = vk__wf_no_args(L, n);
    if (rc == 0)
        rc = vk__wf_no_children(L, n);
    for (size_t i = 0; rc == 0 && i < n->nprops; i++) {
        const struct vk_kdl_prop *p = &n->props[i];
        bool is_cron = vk_kdl_str_eq(p->key, "cron");
        if (!is_cron && !vk_kdl_str_eq(p->key, "timezone"))
            return vk__wf_fail(L, VK_WF_ERR_TRIGGER, VK_EPARSE, VK__WF_AT(p->pos),
                               "unknown property '%s' of 'schedule'; expected one of: cron, "
                               "timezone",
                               p->key.ptr);
        if (p->value.kind != VK_KDL_STRING)
            return vk__wf_fail(L, VK_WF_ERR_INVALID_VALUE, VK_EPARSE, VK__WF_AT(p->value.pos),
                               "'%s' must be a string, not %s", p->key.ptr,
                               vk_kdl_kind_name(p->value.kind));
        const char *v = vk__wf_strdup(L, p->value.str);
        if (!v)
            return VK_ENOMEM;
        if (is_cron) {
            struct vk_err e;
            vk_err_clear(&e);
            if (strlen(v) != p->value.str.len || vk_cron_parse(v, NULL, &e) < 0)
                return vk__wf_fail(L, VK_WF_ERR_TRIGGER, VK_EPARSE, p->value.pos.line,
                                   vk__wf_value_col(L, &p->value, e.col ? e.col - 1 : 0),
                                   "invalid cron expression: %s",
                                   e.msg[0] ? e.msg : "contains a NUL character");
            t->cron = v;
        } else {
            if (strlen(v) != p->value.str.len || !vk_cron_tz_valid(v))
                return vk__wf_fail(L, VK_WF_ERR_TRIGGER, VK_EPARSE, VK__WF_AT(p->value.pos),
                                   "unknown time zone '%s'; expected an IANA name such as "
                                   "'Europe/Amsterdam' or 'UTC'",
                                   v);
            t->timezone = v;
        }
    }
    if (rc == 0 && !t->cron)
        rc = vk__wf_fail(L, VK_WF_ERR_MISSING, VK_EPARSE, VK__WF_AT(n->pos),
                         "'schedule' needs cron=\"…\" (for example cron=\"0 2 * * 1-5\")");
    return rc;
}

/* chain workflow="NAME" status="completed|failed|finished" { branches …; branches-ignore … } */
static int load_chain(struct vk__wf_loader *L, const struct vk_kdl_node *n, struct vk_wf_trigger *t)
{
    int rc = vk__wf_no_args(L, n);
    if (rc < 0)
        return rc;
    t->follow_status = "completed";
    for (size_t i = 0; i < n->nprops; i++) {
        const struct vk_kdl_prop *p = &n->props[i];
        bool wf = vk_kdl_str_eq(p->key, "workflow");
        if (!wf && !vk_kdl_str_eq(p->key, "status"))
            return vk__wf_fail(L, VK_WF_ERR_TRIGGER, VK_EPARSE, VK__WF_AT(p->pos),
                               "unknown property '%s' of 'chain'; expected one of: workflow, "
                               "status",
                               p->key.ptr);
        const char *v = NULL;
        rc = vk__wf_string_value(L, n, &p->value, &v);
        if (rc < 0)
            return rc;
        if (wf) {
            if (!v[0])
                return vk__wf_fail(L, VK_WF_ERR_TRIGGER, VK_EPARSE, VK__WF_AT(p->value.pos),
                                   "'workflow' cannot be empty");
            t->follow_workflow = v;
        } else if (strcmp(v, "completed") == 0 || strcmp(v, "failed") == 0 ||
                   strcmp(v, "finished") == 0) {
            t->follow_status = v;
        } else {
            return vk__wf_fail(L, VK_WF_ERR_TRIGGER, VK_EPARSE, VK__WF_AT(p->value.pos),
                               "unknown chain status '%s'; expected one of: completed, failed, "
                               "finished (either)",
                               v);
        }
    }
    if (!t->follow_workflow)
        return vk__wf_fail(L, VK_WF_ERR_MISSING, VK_EPARSE, VK__WF_AT(n->pos),
                           "'chain' needs the workflow it follows: chain workflow=\"build\" "
                           "status=\"completed\"");
    const struct vk_kdl_node *bi = NULL, *b = NULL;
    for (const struct vk_kdl_node *c = n->children; rc == 0 && c; c = c->next) {
        if (vk_kdl_str_eq(c->name, "branches")) {
            rc = filter_list(L, c, &t->branches);
            b = c;
        } else if (vk_kdl_str_eq(c->name, "branches-ignore")) {
            rc = filter_list(L, c, &t->branches_ignore);
            bi = c;
        } else {
            rc = vk__wf_fail(L, VK_WF_ERR_UNKNOWN_NODE, VK_EPARSE, VK__WF_AT(c->pos),
                             "unknown filter '%s' in 'chain'; expected one of: branches, "
                             "branches-ignore",
                             c->name.ptr);
        }
        if (rc == 0 && b && bi)
            rc = vk__wf_fail(L, VK_WF_ERR_TRIGGER, VK_EPARSE, VK__WF_AT(c->pos),
                             "'branches' and 'branches-ignore' cannot both filter one event; "
                             "use 'branches' with '!' patterns instead");
    }
    return rc;
}

static int load_input(struct vk__wf_loader *L, const struct vk_kdl_node *n, struct vk_wf_input *in)
{
    int rc = vk__wf_no_props(L, n);
    if (rc < 0)
        return rc;
    if (n->nargs != 1 || n->args[0].kind != VK_KDL_STRING || n->args[0].str.len == 0)
        return vk__wf_fail(L, VK_WF_ERR_INVALID_VALUE, VK_EPARSE, VK__WF_AT(n->pos),
                           "'input' takes one argument, its name: input \"environment\" { … }");
    in->name = vk__wf_strdup(L, n->args[0].str);
    in->pos = vk__wf_pos(L, n->pos);
    if (!in->name)
        return VK_ENOMEM;
    const struct vk_kdl_node *def = NULL;
    bool seen_req = false;
    for (const struct vk_kdl_node *c = n->children; rc == 0 && c; c = c->next) {
        if (vk_kdl_str_eq(c->name, "choice")) {
            if (in->choices.n)
                return vk__wf_fail(L, VK_WF_ERR_DUPLICATE, VK_EPARSE, VK__WF_AT(c->pos),
                                   "duplicate 'choice' in input '%s'", in->name);
            rc = vk__wf_string_list(L, c, &in->choices);
        } else if (vk_kdl_str_eq(c->name, "default") || vk_kdl_str_eq(c->name, "description")) {
            bool is_def = c->name.ptr[0] == 'd' && c->name.ptr[1] == 'e' && c->name.ptr[2] == 'f';
            const char **dst = is_def ? &in->default_value : &in->description;
            if (*dst)
                return vk__wf_fail(L, VK_WF_ERR_DUPLICATE, VK_EPARSE, VK__WF_AT(c->pos),
                                   "duplicate '%s' in input '%s'", c->name.ptr, in->name);
            rc = vk__wf_one_string(L, c, dst);
            if (is_def)
                def = c;
        } else if (vk_kdl_str_eq(c->name, "required")) {
            if (seen_req)
                return vk__wf_fail(L, VK_WF_ERR_DUPLICATE, VK_EPARSE, VK__WF_AT(c->pos),
                                   "duplicate 'required' in input '%s'", in->name);
            seen_req = true;
            rc = vk__wf_no_props(L, c);
            if (rc == 0)
                rc = vk__wf_no_children(L, c);
            if (rc == 0 && (c->nargs != 1 || c->args[0].kind != VK_KDL_BOOL))
                rc = vk__wf_fail(L, VK_WF_ERR_INVALID_VALUE, VK_EPARSE,
                                 VK__WF_AT(c->nargs ? c->args[0].pos : c->pos),
                                 "'required' takes one argument, #true or #false");
            if (rc == 0)
                in->required = c->args[0].b;
        } else {
            rc = vk__wf_fail(L, VK_WF_ERR_UNKNOWN_NODE, VK_EPARSE, VK__WF_AT(c->pos),
                             "unknown node '%s' in input '%s'; expected one of: choice, "
                             "default, required, description",
                             c->name.ptr, in->name);
        }
    }
    if (rc == 0 && def && in->choices.n) {
        bool ok = false;
        for (size_t i = 0; i < in->choices.n; i++)
            ok |= strcmp(in->choices.items[i], in->default_value) == 0;
        if (!ok)
            rc = vk__wf_fail(L, VK_WF_ERR_INVALID_VALUE, VK_EPARSE, VK__WF_AT(def->args[0].pos),
                             "default '%s' of input '%s' is not one of its choices",
                             in->default_value, in->name);
    }
    return rc;
}

static int load_manual(struct vk__wf_loader *L, const struct vk_kdl_node *n,
                       struct vk_wf_trigger *t)
{
    int rc = vk__wf_no_args(L, n);
    if (rc == 0)
        rc = vk__wf_no_props(L, n);
    if (rc < 0)
        return rc;
    if (n->nchildren) {
        t->inputs = vk_pool_zalloc(L->pool, n->nchildren * sizeof(*t->inputs));
        if (!t->inputs)
            return vk__wf_fail(L, VK_WF_ERR_NOMEM, VK_ENOMEM, 0, 0, "out of memory");
    }
    for (const struct vk_kdl_node *c = n->children; rc == 0 && c; c = c->next) {
        if (!vk_kdl_str_eq(c->name, "input"))
            return vk__wf_fail(L, VK_WF_ERR_UNKNOWN_NODE, VK_EPARSE, VK__WF_AT(c->pos),
                               "unknown node '%s' in 'manual'; expected: input", c->name.ptr);
        struct vk_wf_input *in = &t->inputs[t->ninputs];
        rc = load_input(L, c, in);
        for (size_t i = 0; rc == 0 && i < t->ninputs; i++) {
            if (strcmp(t->inputs[i].name, in->name) == 0)
                rc = vk__wf_fail(L, VK_WF_ERR_DUPLICATE, VK_EPARSE, VK__WF_AT(c->pos),
                                 "input '%s' is declared twice", in->name);
        }
        t->ninputs++;
    }
    return rc;
}

int vk__wf_load_triggers(struct vk__wf_loader *L, const struct vk_kdl_node *n)
{
    int rc = vk__wf_no_props(L, n);
    if (rc < 0)
        return rc;
    if (n->nargs && n->has_block)
        return vk__wf_fail(L, VK_WF_ERR_TRIGGER, VK_EPARSE, VK__WF_AT(n->block_pos),
                           "'triggers' takes either a list (triggers \"push\") or a block "
                           "(triggers { push { … } }), not both");
    size_t cap = n->nargs + n->nchildren;
    if (cap == 0)
        return vk__wf_fail(L, VK_WF_ERR_MISSING, VK_EPARSE, VK__WF_AT(n->pos),
                           "'triggers' names no trigger; " EXPECTED_TRIGGERS);
    L->wf->triggers = vk_pool_zalloc(L->pool, cap * sizeof(*L->wf->triggers));
    if (!L->wf->triggers)
        return vk__wf_fail(L, VK_WF_ERR_NOMEM, VK_ENOMEM, 0, 0, "out of memory");
    for (size_t i = 0; i < n->nargs; i++) {
        const struct vk_kdl_value *v = &n->args[i];
        if (v->kind != VK_KDL_STRING)
            return vk__wf_fail(L, VK_WF_ERR_TRIGGER, VK_EPARSE, VK__WF_AT(v->pos),
                               "a trigger must be a string, not %s; " EXPECTED_TRIGGERS,
                               vk_kdl_kind_name(v->kind));
        int ty = type_of(v->str);
        if (ty < 0)
            return unknown_trigger(L, v->pos, v->str.ptr);
        if (ty == VK_WF_TRIG_CHAIN)
            return vk__wf_fail(L, VK_WF_ERR_MISSING, VK_EPARSE, VK__WF_AT(v->pos),
                               "'chain' needs the workflow it follows: triggers { chain "
                               "workflow=\"build\" status=\"completed\" }");
        if (!add_trigger(L, (enum vk_wf_trigger_type)ty, v->pos, v->str))
            return VK_EPARSE;
    }
    for (const struct vk_kdl_node *c = n->children; c; c = c->next) {
        int ty = type_of(c->name);
        if (ty < 0)
            return unknown_trigger(L, c->pos, c->name.ptr);
        struct vk_wf_trigger *t = add_trigger(L, (enum vk_wf_trigger_type)ty, c->pos, c->name);
        if (!t)
            return VK_EPARSE;
        switch (t->type) {
        case VK_WF_TRIG_PUSH:
        case VK_WF_TRIG_PULL_REQUEST:
        case VK_WF_TRIG_TAG:
            rc = load_filters(L, c, t);
            break;
        case VK_WF_TRIG_SCHEDULE:
            rc = load_schedule(L, c, t);
            break;
        case VK_WF_TRIG_MANUAL:
            rc = load_manual(L, c, t);
            break;
        case VK_WF_TRIG_CHAIN:
            rc = load_chain(L, c, t);
            break;
        }
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ---------------------------------------------------------------- Matching */

/* The last matching pattern decides; '!' patterns exclude. */
static bool list_match(const struct vk_wf_strlist *l, const char *s)
{
    bool r = false;
    for (size_t i = 0; i < l->n; i++) {
        const char *p = l->items[i];
        if (p[0] == '!') {
            if (vk_glob_match(p + 1, s))
                r = false;
        } else if (vk_glob_match(p, s)) {
            r = true;
        }
    }
    return r;
}

static const char *strip(const char *s, const char *prefix)
{
    if (!s)
        return "";
    size_t n = strlen(prefix);
    return strncmp(s, prefix, n) == 0 ? s + n : s;
}

static bool branch_ok(const struct vk_wf_trigger *t, const char *branch)
{
    if (t->branches.n && !list_match(&t->branches, branch))
        return false;
    if (t->branches_ignore.n && list_match(&t->branches_ignore, branch))
        return false;
    return true;
}

static bool paths_ok(const struct vk_wf_trigger *t, const struct vk_wf_event *ev)
{
    if (!ev->paths)
        return true;
    if (t->paths.n) {
        bool any = false;
        for (size_t i = 0; !any && i < ev->npaths; i++)
            any = ev->paths[i] && list_match(&t->paths, ev->paths[i]);
        if (!any)
            return false;
    }
    if (t->paths_ignore.n) {
        bool any = false;
        for (size_t i = 0; !any && i < ev->npaths; i++)
            any = ev->paths[i] && !list_match(&t->paths_ignore, ev->paths[i]);
        if (!any)
            return false;
    }
    return true;
}

static bool action_ok(const struct vk_wf_trigger *t, const char *action)
{
    const char *a = action ? action : "opened";
    if (t->types.n) {
        for (size_t i = 0; i < t->types.n; i++) {
            if (strcmp(t->types.items[i], a) == 0)
                return true;
        }
        return false;
    }
    for (size_t i = 0; i < VK_ARRAY_LEN(default_pr_types); i++) {
        if (strcmp(default_pr_types[i], a) == 0)
            return true;
    }
    return false;
}

/* "a, b, c" of a pattern list, into `out` (truncated with "…"). */
static void list_text(const struct vk_wf_strlist *l, char *out, size_t cap)
{
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < l->n && len + 1 < cap; i++) {
        int w = snprintf(out + len, cap - len, "%s%s", i ? ", " : "", l->items[i]);
        if (w < 0 || (size_t)w >= cap - len) {
            if (cap >= 4)
                snprintf(out + cap - 4, 4, "...");
            return;
        }
        len += (size_t)w;
    }
}

/* Why push/pull_request trigger `t` refuses the event's branch or paths ("" when not). */
static void why_branch_paths(const struct vk_wf_trigger *t, const struct vk_wf_event *ev,
                             const char *branch, char *why, size_t cap)
{
    char pats[512];
    if (t->branches.n && !list_match(&t->branches, branch)) {
        list_text(&t->branches, pats, sizeof(pats));
        snprintf(why, cap, "%s: branch '%s' is not in branches (%s)",
                 vk_wf_trigger_type_name(t->type), branch, pats);
    } else if (t->branches_ignore.n && list_match(&t->branches_ignore, branch)) {
        list_text(&t->branches_ignore, pats, sizeof(pats));
        snprintf(why, cap, "%s: branch '%s' matches branches-ignore (%s)",
                 vk_wf_trigger_type_name(t->type), branch, pats);
    } else if (!paths_ok(t, ev)) {
        bool in_paths = true;
        if (t->paths.n) {
            in_paths = false;
            for (size_t i = 0; !in_paths && i < ev->npaths; i++)
                in_paths = ev->paths[i] && list_match(&t->paths, ev->paths[i]);
        }
        const struct vk_wf_strlist *l = in_paths ? &t->paths_ignore : &t->paths;
        list_text(l, pats, sizeof(pats));
        snprintf(why, cap,
                 in_paths ? "%s: every changed path (%zu) matches paths-ignore (%s)"
                          : "%s: none of the %zu changed paths matches paths (%s)",
                 vk_wf_trigger_type_name(t->type), ev->npaths, pats);
    }
}

bool vk_wf_trigger_explain(const struct vk_wf_trigger *t, const struct vk_wf_event *ev, char *why,
                           size_t cap)
{
    if (cap)
        why[0] = '\0';
    if (vk_wf_trigger_matches(t, ev))
        return true;
    if (!cap || !t || !ev)
        return false;
    char pats[512];
    if (t->type != ev->type) {
        snprintf(why, cap, "a %s trigger does not fire on %s", vk_wf_trigger_type_name(t->type),
                 vk_wf_trigger_type_name(ev->type));
        return false;
    }
    if (t->type == VK_WF_TRIG_PULL_REQUEST && !action_ok(t, ev->action)) {
        if (t->types.n)
            list_text(&t->types, pats, sizeof(pats));
        else
            snprintf(pats, sizeof(pats), "opened, synchronize, reopened by default");
        snprintf(why, cap, "pull_request: action '%s' is not in types (%s)",
                 ev->action ? ev->action : "opened", pats);
        return false;
    }
    switch (t->type) {
    case VK_WF_TRIG_PULL_REQUEST: /* the action fits: the branch or the paths refused it */
    case VK_WF_TRIG_PUSH:
        why_branch_paths(t, ev, strip(ev->branch, "refs/heads/"), why, cap);
        break;
    case VK_WF_TRIG_TAG: {
        const char *tag = strip(ev->tag, "refs/tags/");
        bool in = !t->tags.n || list_match(&t->tags, tag);
        list_text(in ? &t->tags_ignore : &t->tags, pats, sizeof(pats));
        snprintf(why, cap,
                 in ? "tag: '%s' matches ignore (%s)" : "tag: '%s' is not in patterns (%s)", tag,
                 pats);
        break;
    }
    case VK_WF_TRIG_SCHEDULE:
        snprintf(why, cap, "schedule: cron '%s' is another schedule", t->cron ? t->cron : "");
        break;
    case VK_WF_TRIG_MANUAL:
        break;
    case VK_WF_TRIG_CHAIN:
        if (!ev->workflow || strcmp(t->follow_workflow, ev->workflow) != 0)
            snprintf(why, cap, "chain: follows workflow '%s', not '%s'", t->follow_workflow,
                     ev->workflow ? ev->workflow : "");
        else if (strcmp(t->follow_status, "finished") != 0 &&
                 (!ev->status || strcmp(t->follow_status, ev->status) != 0))
            snprintf(why, cap, "chain: follows %s chains of '%s', this one %s", t->follow_status,
                     t->follow_workflow, ev->status ? ev->status : "ended");
        else
            why_branch_paths(t, ev, strip(ev->branch, "refs/heads/"), why, cap);
        break;
    }
    return false;
}

bool vk_workflow_triggered_why(const struct vk_workflow *wf, const struct vk_wf_event *ev,
                               char *why, size_t cap)
{
    if (cap)
        why[0] = '\0';
    size_t len = 0, of_type = 0;
    for (size_t i = 0; wf && i < wf->ntriggers; i++) {
        const struct vk_wf_trigger *t = &wf->triggers[i];
        char one[768];
        if (vk_wf_trigger_explain(t, ev, one, sizeof(one))) {
            if (cap)
                why[0] = '\0';
            return true;
        }
        if (t->type != ev->type || !one[0] || len + 1 >= cap)
            continue;
        int w = snprintf(why + len, cap - len, "%s%s", of_type++ ? "; " : "", one);
        len = w < 0 ? len : len + (size_t)w >= cap ? cap - 1 : len + (size_t)w;
    }
    if (of_type == 0 && cap) {
        /* no trigger of the event's type: say which it has */
        len = (size_t)snprintf(why, cap, "no %s trigger (the workflow triggers on",
                               vk_wf_trigger_type_name(ev->type));
        for (size_t i = 0; wf && i < wf->ntriggers && len + 1 < cap; i++) {
            int w = snprintf(why + len, cap - len, "%s%s", i ? ", " : " ",
                             vk_wf_trigger_type_name(wf->triggers[i].type));
            len = w < 0 ? len : len + (size_t)w >= cap ? cap - 1 : len + (size_t)w;
        }
        if (len + 1 < cap)
            snprintf(why + len, cap - len, "%s)", wf && wf->ntriggers ? "" : " nothing");
    }
    return false;
}

bool vk_wf_trigger_matches(const struct vk_wf_trigger *t, const struct vk_wf_event *ev)
{
    if (!t || !ev || t->type != ev->type)
        return false;
    switch (t->type) {
    case VK_WF_TRIG_PUSH:
        return branch_ok(t, strip(ev->branch, "refs/heads/")) && paths_ok(t, ev);
    case VK_WF_TRIG_PULL_REQUEST:
        return action_ok(t, ev->action) && branch_ok(t, strip(ev->branch, "refs/heads/")) &&
               paths_ok(t, ev);
    case VK_WF_TRIG_TAG: {
        const char *tag = strip(ev->tag, "refs/tags/");
        if (t->tags.n && !list_match(&t->tags, tag))
            return false;
        return !(t->tags_ignore.n && list_match(&t->tags_ignore, tag));
    }
    case VK_WF_TRIG_SCHEDULE:
        return !t->cron || !ev->cron || strcmp(t->cron, ev->cron) == 0;
    case VK_WF_TRIG_MANUAL:
        return true;
    case VK_WF_TRIG_CHAIN:
        return ev->workflow && ev->status && strcmp(t->follow_workflow, ev->workflow) == 0 &&
               (strcmp(t->follow_status, "finished") == 0 ||
                strcmp(t->follow_status, ev->status) == 0) &&
               branch_ok(t, strip(ev->branch, "refs/heads/"));
    }
    return false;
}

bool vk_workflow_triggered(const struct vk_workflow *wf, const struct vk_wf_event *ev)
{
    for (size_t i = 0; wf && i < wf->ntriggers; i++) {
        if (vk_wf_trigger_matches(&wf->triggers[i], ev))
            return true;
    }
    return false;
}
