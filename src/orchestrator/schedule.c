/*
 * The chain state machine, run inside one store transaction per event.
 *
 * activate(): a fragment's turn has come (its predecessor finished, or its
 * parallel parent started). Its condition is evaluated now; false skips it and
 * its subtree. An inline fragment becomes ready; a group becomes running and
 * activates its first child (sequential) or all children (parallel).
 *
 * after_final(): a fragment reached a final status. Walk up: the parent group
 * finishes when no child is unfinished (its status: failed if a child failed,
 * else completed if a child completed, else skipped); in a sequential group the
 * next sibling is activated instead, and in a parallel group with max-parallel
 * the next child not yet started. At the top the chain finishes. A failure
 * fails the chain at once and skips everything not started; running siblings
 * finish and are recorded, and their groups close when they do. Inside a group
 * with `fail-fast #false` a failure stops only its own way up to that group (what
 * has not started there is skipped); the group's other children go on, and the
 * group's own failure, when it closes, is handled the same way one level up.
 */
#include "orch_int.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

/* Everything one event needs about its chain: the row and condition variables. */
struct sched {
    struct vk_store_tx *tx;
    struct vk_pool pool;
    struct vk_store_chain chain;
    struct vk_cond_var *vars; /* the chain's env, then the context (the last nctx) */
    size_t nvars, nctx;
    bool vars_ready;
    int64_t now;
    struct vk_err *err;
    struct vk__orch_ended *ended; /* may be NULL: what finished, for telemetry */
};

enum act_result { ACT_ACTIVE, ACT_DONE };

static int sched_init(struct sched *s, struct vk_store_tx *tx, const char *chain_id, int64_t now,
                      struct vk_err *err)
{
    memset(s, 0, sizeof(*s));
    s->tx = tx;
    s->now = now;
    s->err = err;
    vk_pool_init(&s->pool, 16 * 1024);
    return vk_store_tx_chain_get(tx, chain_id, &s->pool, &s->chain, err);
}

static void sched_release(struct sched *s)
{
    vk_pool_release(&s->pool);
}

static const char *pool_strdup(struct sched *s, const char *v)
{
    return v ? vk_pool_strndup(&s->pool, v, strlen(v)) : NULL;
}

/* Condition variables: the chain's context, then its env (which may override nothing
 * of the context: context names win, so a workflow cannot fake $BRANCH). */
static int build_vars(struct sched *s)
{
    if (s->vars_ready)
        return 0;
    const struct vk_store_chain *c = &s->chain;
    json_t *env = NULL;
    size_t nenv = 0;
    if (c->env_json && *c->env_json) {
        env = json_loads(c->env_json, 0, NULL);
        if (json_is_object(env))
            nenv = json_object_size(env);
    }
    s->vars = vk_pool_zalloc(&s->pool, sizeof(*s->vars) * (nenv + 11));
    if (!s->vars) {
        json_decref(env);
        return vk_err_set(s->err, VK_ENOMEM, "out of memory");
    }
    size_t n = 0;
    if (nenv) {
        const char *k;
        json_t *v;
        json_object_foreach(env, k, v)
        {
            if (!json_is_string(v))
                continue;
            s->vars[n].name = pool_strdup(s, k);
            s->vars[n].value = pool_strdup(s, json_string_value(v));
            n++;
        }
    }
    json_decref(env);
    char pr[24] = "";
    if (c->pr_number)
        snprintf(pr, sizeof(pr), "%lld", (long long)c->pr_number);
    const char *ctx[][2] = {
        {"BRANCH", c->branch},
        {"TRIGGER", c->trigger},
        {"EVENT", c->trigger},
        {"COMMIT_SHA", c->commit_sha},
        {"PR_NUMBER", pr},
        {"TAG", c->tag},
        {"REPOSITORY_URL", c->repository_url},
        {"COMMIT_MESSAGE", c->commit_message},
        {"COMMIT_AUTHOR", c->commit_author},
    };
    for (size_t i = 0; i < VK_ARRAY_LEN(ctx); i++) {
        s->vars[n].name = ctx[i][0];
        s->vars[n].value = pool_strdup(s, ctx[i][1] ? ctx[i][1] : "");
        n++;
    }
    s->nvars = n;
    s->nctx = VK_ARRAY_LEN(ctx);
    s->vars_ready = true;
    return 0;
}

static int set_status(struct sched *s, const char *id, enum vk_store_frag_status st)
{
    struct vk_store_fragment_update u = {0};
    u.set = VK_STORE_SET_STATUS;
    u.status = st;
    if (st == VK_STORE_FRAG_READY) {
        u.set |= VK_STORE_SET_READY_AT;
        u.ready_at = s->now;
    } else if (st == VK_STORE_FRAG_RUNNING) {
        u.set |= VK_STORE_SET_STARTED_AT;
        u.started_at = s->now;
    } else if (vk_store_frag_status_final(st)) {
        u.set |= VK_STORE_SET_FINISHED_AT;
        u.finished_at = s->now;
    }
    return vk_store_tx_fragment_update(s->tx, id, &u, s->err);
}

/* Mark a fragment and its whole subtree skipped (a false condition, an empty group). */
static int skip_subtree(struct sched *s, const struct vk_store_fragment *f, const char *why)
{
    struct vk_store_fragment_update u = {0};
    u.set = VK_STORE_SET_STATUS | VK_STORE_SET_FINISHED_AT | (why ? VK_STORE_SET_ERROR : 0);
    u.status = VK_STORE_FRAG_SKIPPED;
    u.finished_at = s->now;
    u.error = why;
    int rc = vk_store_tx_fragment_update(s->tx, f->id, &u, s->err);
    if (rc == 0 && s->ended && f->type == VK_STORE_FRAG_INLINE)
        s->ended->skipped++;
    if (rc < 0 || f->type != VK_STORE_FRAG_GROUP)
        return rc;
    struct vk_store_fragment *kids = NULL;
    size_t n = 0;
    rc = vk_store_tx_children(s->tx, f->chain_id, f->id, &s->pool, &kids, &n, s->err);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = skip_subtree(s, &kids[i], NULL);
    return rc;
}

/* Variables a condition read, for the skip reason (issue 12 item 13). */
#define SEEN_MAX 6
struct seen_lookup {
    struct vk_cond_vars *vars;
    const char *name[SEEN_MAX], *value[SEEN_MAX];
    size_t n;
};

static const char *seen_lookup(void *ctx, const char *name)
{
    struct seen_lookup *sl = ctx;
    const char *v = vk_cond_lookup_kv(sl->vars, name);
    bool known = false;
    for (size_t i = 0; i < sl->n && !known; i++)
        known = strcmp(sl->name[i], name) == 0;
    if (!known && sl->n < SEEN_MAX) {
        sl->name[sl->n] = name;
        sl->value[sl->n++] = v;
    }
    return v;
}

/*
 * Evaluate f's condition. Variables: the chain's env, then the fragment's own env (which
 * wins over the chain's), then the context (which wins over both: a workflow cannot fake
 * $BRANCH). When it is false, *why (in the pool) says so with the variables it read:
 * "skipped: condition false (`$BRANCH == 'main'`, BRANCH=feature)".
 */
static int condition_holds(struct sched *s, const struct vk_store_fragment *f, bool *holds,
                           const char **why)
{
    *holds = true;
    *why = NULL;
    if (!f->condition || !*f->condition)
        return 0;
    int rc = build_vars(s);
    if (rc < 0)
        return rc;
    struct vk_cond *c = NULL;
    struct vk_err cerr;
    vk_err_clear(&cerr);
    rc = vk_cond_parse(f->condition, strlen(f->condition), &s->pool, &c, &cerr);
    if (rc < 0) {
        /* Conditions were checked at load time; a stored one that no longer parses
         * (e.g. written by another version) is treated as false, with the reason. */
        *holds = false;
        *why = "skipped: its condition does not parse with this version of vulcan";
        return 0;
    }
    struct vk_cond_vars vars = {s->vars, s->nvars};
    json_t *env = f->env_json && *f->env_json ? json_loads(f->env_json, 0, NULL) : NULL;
    if (json_is_object(env) && json_object_size(env) > 0) {
        size_t nf = json_object_size(env);
        struct vk_cond_var *all =
            vk_pool_zalloc(&s->pool, sizeof(*all) * (s->nvars + nf + s->nctx));
        if (!all) {
            json_decref(env);
            return vk_err_set(s->err, VK_ENOMEM, "out of memory");
        }
        size_t n = s->nvars;
        memcpy(all, s->vars, sizeof(*all) * n);
        const char *k;
        json_t *v;
        json_object_foreach(env, k, v)
        {
            if (json_is_string(v)) {
                all[n].name = pool_strdup(s, k);
                all[n++].value = pool_strdup(s, json_string_value(v));
            }
        }
        memcpy(all + n, s->vars + (s->nvars - s->nctx), sizeof(*all) * s->nctx);
        vars.vars = all;
        vars.n = n + s->nctx;
    }
    json_decref(env);
    struct seen_lookup sl = {.vars = &vars};
    rc = vk_cond_eval(c, seen_lookup, &sl, holds);
    if (rc < 0 || *holds)
        return rc;
    char msg[512];
    int len = snprintf(msg, sizeof(msg), "skipped: condition false (`%.160s`", f->condition);
    for (size_t i = 0; i < sl.n && len > 0 && (size_t)len < sizeof(msg); i++)
        len += snprintf(msg + len, sizeof(msg) - (size_t)len,
                        sl.value[i] ? ", %s=%.60s" : ", %s unset", sl.name[i],
                        sl.value[i] ? sl.value[i] : "");
    if (len > 0 && (size_t)len < sizeof(msg) - 1)
        snprintf(msg + len, sizeof(msg) - (size_t)len, ")");
    *why = pool_strdup(s, msg);
    return 0;
}

static int activate(struct sched *s, const struct vk_store_fragment *f, enum act_result *res);

/* Activate children of group `g` from index `from`: all of them (parallel), or the first
 * that does not finish at once (sequential). *res: ACT_DONE when nothing is active. */
static int activate_children(struct sched *s, const struct vk_store_fragment *g,
                             enum act_result *res)
{
    struct vk_store_fragment *kids = NULL;
    size_t n = 0;
    int rc = vk_store_tx_children(s->tx, g->chain_id, g->id, &s->pool, &kids, &n, s->err);
    if (rc < 0)
        return rc;
    *res = ACT_DONE;
    int active = 0;
    for (size_t i = 0; i < n; i++) {
        enum act_result r;
        rc = activate(s, &kids[i], &r);
        if (rc < 0)
            return rc;
        if (r == ACT_ACTIVE) {
            *res = ACT_ACTIVE;
            /* Sequential: one at a time; max-parallel: that many (the rest stay pending,
             * and each child that ends starts the next: after_final). */
            if (!g->is_parallel || (g->max_parallel > 0 && ++active >= g->max_parallel))
                break;
        }
    }
    return 0;
}

/* Status a group gets when its children are all final. */
static int group_final_status(struct sched *s, const char *chain_id, const char *group_id,
                              enum vk_store_frag_status *st)
{
    struct vk_store_fragment *kids = NULL;
    size_t n = 0;
    int rc = vk_store_tx_children(s->tx, chain_id, group_id, &s->pool, &kids, &n, s->err);
    if (rc < 0)
        return rc;
    bool failed = false, completed = false, cancelled = false;
    for (size_t i = 0; i < n; i++) {
        bool allowed = kids[i].status == VK_STORE_FRAG_FAILED && kids[i].allow_failure;
        failed |= kids[i].status == VK_STORE_FRAG_FAILED && !allowed;
        completed |= kids[i].status == VK_STORE_FRAG_COMPLETED || allowed;
        cancelled |= kids[i].status == VK_STORE_FRAG_CANCELLED;
    }
    *st = failed      ? VK_STORE_FRAG_FAILED
          : cancelled ? VK_STORE_FRAG_CANCELLED
          : completed ? VK_STORE_FRAG_COMPLETED
                      : VK_STORE_FRAG_SKIPPED;
    return 0;
}

static int activate(struct sched *s, const struct vk_store_fragment *f, enum act_result *res)
{
    *res = ACT_DONE;
    if (f->status != VK_STORE_FRAG_PENDING)
        return 0; /* already handled (e.g. skipped by a failure) */
    bool holds;
    const char *why = NULL;
    int rc = condition_holds(s, f, &holds, &why);
    if (rc < 0)
        return rc;
    if (!holds)
        return skip_subtree(s, f, why ? why : "skipped: condition false");
    if (f->run_when == VK_STORE_WHEN_FAILURE && s->chain.status != VK_STORE_CHAIN_FAILED)
        return skip_subtree(s, f, "skipped: when \"failure\", and nothing failed");
    if (f->type == VK_STORE_FRAG_INLINE) {
        rc = set_status(s, f->id, VK_STORE_FRAG_READY);
        if (rc == 0)
            rc = vk_store_tx_notify_ready(s->tx, f->machine, s->err);
        *res = ACT_ACTIVE;
        return rc;
    }
    rc = set_status(s, f->id, VK_STORE_FRAG_RUNNING);
    if (rc < 0)
        return rc;
    rc = activate_children(s, f, res);
    if (rc < 0 || *res == ACT_ACTIVE)
        return rc;
    /* Every child finished at once (all skipped): the group is done too. */
    enum vk_store_frag_status st = VK_STORE_FRAG_COMPLETED;
    rc = group_final_status(s, f->chain_id, f->id, &st);
    if (rc == 0)
        rc = set_status(s, f->id, st);
    return rc;
}

/* The chain's top level finished: record the chain's final status. */
static int finish_chain(struct sched *s)
{
    if (s->chain.status == VK_STORE_CHAIN_CANCELLED || s->chain.status == VK_STORE_CHAIN_COMPLETED)
        return 0;
    enum vk_store_frag_status st = VK_STORE_FRAG_COMPLETED;
    int rc = group_final_status(s, s->chain.id, NULL, &st);
    if (rc < 0)
        return rc;
    enum vk_store_chain_status cs =
        (st == VK_STORE_FRAG_FAILED || s->chain.status == VK_STORE_CHAIN_FAILED)
            ? VK_STORE_CHAIN_FAILED
            : VK_STORE_CHAIN_COMPLETED;
    rc = vk_store_tx_chain_set(s->tx, s->chain.id, cs, 0, s->now, NULL, s->err);
    if (rc == 0 && s->ended) {
        struct vk__orch_ended *e = s->ended;
        e->chain_ended = true;
        snprintf(e->chain_id, sizeof(e->chain_id), "%s", s->chain.id);
        e->status = cs;
        e->created_at = s->chain.created_at;
        e->finished_at = s->now;
        snprintf(e->trace, sizeof(e->trace), "%s", s->chain.trace_id ? s->chain.trace_id : "");
    }
    return rc;
}

/*
 * Close every running group under `parent` (NULL: the chain's top level) left with no
 * unfinished child, innermost first. After a failure skipped what had not started, a
 * group whose children were all pending is finished but nothing would ever walk up
 * from it (no child of it will report a result): without this pass it stayed
 * `running` and kept its chain from finishing (issue 12 item 1).
 */
static int close_idle_groups(struct sched *s, const char *parent)
{
    struct vk_store_fragment *kids = NULL;
    size_t n = 0;
    int rc = vk_store_tx_children(s->tx, s->chain.id, parent, &s->pool, &kids, &n, s->err);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (kids[i].type != VK_STORE_FRAG_GROUP || kids[i].status != VK_STORE_FRAG_RUNNING)
            continue;
        rc = close_idle_groups(s, kids[i].id);
        bool left = false;
        if (rc == 0)
            rc = vk_store_tx_has_unfinished(s->tx, s->chain.id, kids[i].id, &left, s->err);
        if (rc < 0 || left)
            continue;
        enum vk_store_frag_status st = VK_STORE_FRAG_SKIPPED;
        rc = group_final_status(s, s->chain.id, kids[i].id, &st);
        if (rc == 0)
            rc = set_status(s, kids[i].id, st);
    }
    return rc;
}

/* A fragment failed for good: fail the chain now and skip what has not started. */
static int fail_chain(struct sched *s, const struct vk_store_fragment *f)
{
    if (s->chain.status != VK_STORE_CHAIN_RUNNING && s->chain.status != VK_STORE_CHAIN_PENDING)
        return 0;
    char msg[256];
    snprintf(msg, sizeof(msg), "fragment '%s' failed", f->name ? f->name : f->id);
    int64_t skipped = 0;
    /* Each skipped fragment says why: "skipped: `unit (gcc)` failed" (issue 12 item 13). */
    char why[256];
    snprintf(why, sizeof(why), "skipped: `%s` failed", f->name ? f->name : f->id);
    int rc = vk_store_tx_chain_skip_pending(s->tx, s->chain.id, s->now, why, &skipped, s->err);
    if (rc == 0 && s->ended)
        s->ended->skipped += skipped;
    if (rc == 0)
        rc = close_idle_groups(s, NULL);
    if (rc == 0)
        rc = vk_store_tx_chain_set(s->tx, s->chain.id, VK_STORE_CHAIN_FAILED, 0, 0, msg, s->err);
    s->chain.status = VK_STORE_CHAIN_FAILED;
    return rc;
}

static bool chain_active(const struct sched *s)
{
    return s->chain.status == VK_STORE_CHAIN_RUNNING || s->chain.status == VK_STORE_CHAIN_PENDING;
}

/* Whether the next nodes may start: a live chain, or a failed one (what is still pending
 * then is what fail_chain kept: `when` failure or always). Not a cancelled one. */
static bool may_go_on(const struct sched *s)
{
    return chain_active(s) || s->chain.status == VK_STORE_CHAIN_FAILED;
}

/* Skip every child of group `g` that has not started: "skipped: `x` failed". */
static int skip_pending_children(struct sched *s, const struct vk_store_fragment *g,
                                 const char *why)
{
    struct vk_store_fragment *kids = NULL;
    size_t n = 0;
    int rc = vk_store_tx_children(s->tx, g->chain_id, g->id, &s->pool, &kids, &n, s->err);
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (kids[i].status == VK_STORE_FRAG_PENDING && kids[i].run_when == VK_STORE_WHEN_SUCCESS)
            rc = skip_subtree(s, &kids[i], why);
    return rc;
}

/*
 * Fragment or group `x` failed for good. Without a `fail-fast #false` group above it the
 * chain fails now (fail_chain). Under one (the nearest, A), only the way from x up to A
 * stops: every group on that way skips what it has not started; A's other children go on,
 * and when A closes failed, this runs again for A.
 */
static int on_failure(struct sched *s, const struct vk_store_fragment *x)
{
    if (!chain_active(s))
        return 0;
    struct vk_store_fragment p;
    char id[VK_UUID_LEN];
    snprintf(id, sizeof(id), "%s", x->parent_id);
    bool under = false;
    int rc = 0;
    while (rc == 0 && id[0] && !under) {
        rc = vk_store_tx_fragment_get(s->tx, id, &s->pool, &p, s->err);
        if (rc == 0) {
            under = p.no_fail_fast;
            snprintf(id, sizeof(id), "%s", p.parent_id);
        }
    }
    if (rc < 0)
        return rc;
    if (!under)
        return fail_chain(s, x);
    char why[256];
    snprintf(why, sizeof(why), "skipped: `%s` failed", x->name ? x->name : x->id);
    snprintf(id, sizeof(id), "%s", x->parent_id);
    while (rc == 0 && id[0]) {
        rc = vk_store_tx_fragment_get(s->tx, id, &s->pool, &p, s->err);
        if (rc < 0 || p.no_fail_fast)
            break; /* A itself goes on */
        rc = skip_pending_children(s, &p, why);
        snprintf(id, sizeof(id), "%s", p.parent_id);
    }
    return rc;
}

int vk__orch_after_final(struct vk_store_tx *tx, const char *frag_id, int64_t now,
                         struct vk__orch_ended *ended, struct vk_err *err)
{
    struct vk_store_fragment f;
    struct sched s;
    struct vk_pool tmp;
    vk_pool_init(&tmp, 4096);
    int rc = vk_store_tx_fragment_get(tx, frag_id, &tmp, &f, err);
    if (rc == 0)
        rc = sched_init(&s, tx, f.chain_id, now, err);
    else
        memset(&s, 0, sizeof(s));
    if (rc < 0)
        goto out;
    s.ended = ended;
    if (f.status == VK_STORE_FRAG_FAILED && !f.allow_failure)
        rc = on_failure(&s, &f);

    /* Walk up from f. */
    while (rc == 0) {
        const char *parent = f.parent_id[0] ? f.parent_id : NULL;
        struct vk_store_fragment p = {0};
        if (parent) {
            rc = vk_store_tx_fragment_get(tx, parent, &s.pool, &p, err);
            if (rc < 0)
                break;
        }
        bool parallel = parent ? p.is_parallel : false;
        if (!parallel && may_go_on(&s)) {
            /* Sequential: activate the following siblings until one stays active. */
            struct vk_store_fragment *sib = NULL;
            size_t n = 0;
            rc = vk_store_tx_children(tx, f.chain_id, parent, &s.pool, &sib, &n, err);
            bool active = false;
            for (size_t i = 0; rc == 0 && i < n && !active; i++) {
                if (sib[i].sequence <= f.sequence)
                    continue;
                enum act_result r;
                rc = activate(&s, &sib[i], &r);
                active = r == ACT_ACTIVE;
            }
            if (rc < 0 || active)
                break;
        }
        if (parallel && p.max_parallel > 0 && may_go_on(&s)) {
            /* A child ended: the next one not started takes its place (one indexed read
             * per candidate, not the whole group per result). */
            bool active = false;
            while (rc == 0 && !active) {
                struct vk_store_fragment next;
                rc = vk_store_tx_first_pending_child(tx, parent, &s.pool, &next, err);
                if (rc == VK_ENOTFOUND) {
                    rc = 0;
                    break;
                }
                enum act_result r = ACT_DONE;
                if (rc == 0)
                    rc = activate(&s, &next, &r);
                active = rc == 0 && r == ACT_ACTIVE;
            }
            if (rc < 0 || active)
                break;
        }
        /* Existence, not a count: O(1) per result even in a parallel group of
         * thousands (a count would visit every child on every result). */
        bool left = false;
        rc = vk_store_tx_has_unfinished(tx, f.chain_id, parent, &left, err);
        if (rc < 0 || left)
            break;
        if (!parent) {
            rc = finish_chain(&s);
            break;
        }
        enum vk_store_frag_status st = VK_STORE_FRAG_COMPLETED;
        rc = group_final_status(&s, f.chain_id, parent, &st);
        if (rc == 0)
            rc = set_status(&s, parent, st);
        f = p;
        f.status = st;
        /* A group that failed under a `fail-fast #false` one fails its way up from here. */
        if (rc == 0 && st == VK_STORE_FRAG_FAILED && !f.allow_failure)
            rc = on_failure(&s, &f);
    }
out:
    sched_release(&s);
    vk_pool_release(&tmp);
    return rc;
}

int vk__orch_start_chain(struct vk_store_tx *tx, const char *chain_id, int64_t now,
                         struct vk__orch_ended *ended, struct vk_err *err)
{
    struct sched s;
    int rc = sched_init(&s, tx, chain_id, now, err);
    s.ended = ended;
    if (rc < 0)
        goto out;
    if (s.chain.status != VK_STORE_CHAIN_PENDING)
        goto out;
    rc = vk_store_tx_chain_set(tx, chain_id, VK_STORE_CHAIN_RUNNING, now, 0, NULL, err);
    if (rc < 0)
        goto out;
    s.chain.status = VK_STORE_CHAIN_RUNNING;
    struct vk_store_fragment *top = NULL;
    size_t n = 0;
    rc = vk_store_tx_children(tx, chain_id, NULL, &s.pool, &top, &n, err);
    bool active = false;
    for (size_t i = 0; rc == 0 && i < n && !active; i++) {
        enum act_result r;
        rc = activate(&s, &top[i], &r);
        active = r == ACT_ACTIVE;
    }
    if (rc == 0 && !active)
        rc = finish_chain(&s); /* everything skipped */
out:
    sched_release(&s);
    return rc;
}

int vk__orch_repair_chain(struct vk_store_tx *tx, const char *chain_id, int64_t now,
                          struct vk_err *err)
{
    struct sched s;
    int rc = sched_init(&s, tx, chain_id, now, err);
    if (rc < 0)
        goto out;
    enum vk_store_chain_status cs = s.chain.status;
    if (cs == VK_STORE_CHAIN_PENDING || cs == VK_STORE_CHAIN_RUNNING)
        goto out; /* live: its own events settle it */
    if (cs != VK_STORE_CHAIN_COMPLETED)
        rc = close_idle_groups(&s, NULL);
    bool left = false;
    if (rc == 0)
        rc = vk_store_tx_has_unfinished(tx, chain_id, NULL, &left, err);
    /* A fragment still running on a live worker finishes the chain when its result comes. */
    if (rc == 0 && !left && !s.chain.finished_at)
        rc = vk_store_tx_chain_set(tx, chain_id, cs, 0, now, NULL, err);
out:
    sched_release(&s);
    return rc;
}
