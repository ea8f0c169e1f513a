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
 *
 * `needs` (docs/workflow.md, "Needs"): a fragment's turn comes as above, and it starts only
 * when its unmet-needs counter is 0 as well. When its turn comes first it is marked
 * needs_wait and holds its place (a sequence does not go past it); every fragment that
 * reaches a final status lowers the counters of its dependents through the edge index
 * (vk_store_tx_needs_done: its own edges, not a scan), and a dependent whose counter is 0
 * and whose turn has come starts then. A dependent of a fragment that did not succeed is
 * skipped at once ("skipped: needs `build`, which failed") unless its `when` says
 * otherwise. Conditions and $NEEDS_<X>_… are evaluated when it starts.
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
    /* `needs` work left for drain(): fragments that became final (their dependents' counters
     * go down), dependents whose counters reached 0 (they may start), and dependents
     * skipped while holding their turn (their way up must be walked). */
    struct idq {
        char (*id)[VK_UUID_LEN];
        size_t head, n, cap;
    } done, release, walk;
};

static int idq_push(struct sched *s, struct idq *q, const char *id)
{
    if (vk_array_pool_grow(&s->pool, &q->id, &q->cap, q->n + 1, 16, sizeof(*q->id)) < 0)
        return vk_err_set(s->err, VK_ENOMEM, "out of memory");
    snprintf(q->id[q->n++], VK_UUID_LEN, "%s", id);
    return 0;
}

static const char *idq_pop(struct idq *q)
{
    return q->head < q->n ? q->id[q->head++] : NULL;
}

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
    int rc = vk_store_tx_fragment_update(s->tx, id, &u, s->err);
    if (rc == 0 && vk_store_frag_status_final(st))
        rc = idq_push(s, &s->done, id);
    return rc;
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
    if (rc == 0)
        rc = idq_push(s, &s->done, f->id);
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
static int condition_holds(struct sched *s, const struct vk_store_fragment *f,
                           const char *needs_env, bool *holds, const char **why)
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
    /* $NEEDS_<X>_…: after the fragment's env (a workflow cannot fake them), before the
     * context. */
    json_t *nenv = needs_env && *needs_env ? json_loads(needs_env, 0, NULL) : NULL;
    if (json_is_object(nenv)) {
        if (!json_is_object(env)) {
            json_decref(env);
            env = json_object();
        }
        json_object_update(env, nenv);
    }
    json_decref(nenv);
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

static int activate(struct sched *s, const struct vk_store_fragment *f, const char *inherit,
                    enum act_result *res);

/* Activate children of group `g` from index `from`: all of them (parallel), or the first
 * that does not finish at once (sequential). *res: ACT_DONE when nothing is active.
 * `inherit`: the $NEEDS_… environment of `g` (its own needs and its groups'), or NULL. */
static int activate_children(struct sched *s, const struct vk_store_fragment *g,
                             const char *inherit, enum act_result *res)
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
        rc = activate(s, &kids[i], inherit, &r);
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

/* What a needed fragment's end means to those that need it ($NEEDS_<X>_RESULT). An allowed
 * failure counts as a success, as it does for its group. */
static const char *need_result(const struct vk_store_fragment *n)
{
    switch (n->status) {
    case VK_STORE_FRAG_COMPLETED:
        return "success";
    case VK_STORE_FRAG_FAILED:
        return n->allow_failure ? "success" : "failure";
    case VK_STORE_FRAG_SKIPPED:
        return "skipped";
    case VK_STORE_FRAG_CANCELLED:
        return "cancelled";
    default:
        return "pending";
    }
}

static const char *need_verb(const char *result)
{
    return strcmp(result, "failure") == 0   ? "failed"
           : strcmp(result, "skipped") == 0 ? "was skipped"
                                            : "was cancelled";
}

static int add_upper(struct vk_buf *b, const char *x)
{
    int rc = 0;
    for (const char *p = x; rc == 0 && *p; p++) {
        char c = *p;
        c = (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
        rc = vk_buf_addch(b, (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ? c : '_');
    }
    return rc;
}

/* "NEEDS_<X>_<NAME>": both upper-cased, every byte but a letter or digit as '_' (output
 * names are case-insensitive, as GitHub's are). */
static int needs_key(struct vk_buf *b, const char *x, const char *name)
{
    vk_buf_reset(b);
    int rc = vk_buf_adds(b, "NEEDS_");
    if (rc == 0)
        rc = add_upper(b, x);
    if (rc == 0)
        rc = vk_buf_addch(b, '_');
    if (rc == 0)
        rc = add_upper(b, name);
    return rc;
}

/*
 * The needs of f, whose counter is 0: whether it may start (*why: why it is skipped, in the
 * pool) and its $NEEDS_… environment (the inherited one, then its own needs' results and
 * outputs) as JSON text in the pool (*env, NULL when empty). *need_failed: one of its needs
 * failed (which lets a `when "failure"` fragment run).
 */
static int needs_env(struct sched *s, const struct vk_store_fragment *f, const char *inherit,
                     const char **env, const char **why, bool *need_failed)
{
    *env = inherit;
    *why = NULL;
    *need_failed = false;
    if (!f->needs_json)
        return 0;
    struct vk_store_fragment *needs = NULL;
    size_t n = 0;
    int rc = vk_store_tx_needs_of(s->tx, f->id, &s->pool, &needs, &n, s->err);
    if (rc < 0)
        return rc;
    json_t *o = inherit ? json_loads(inherit, 0, NULL) : NULL;
    if (!json_is_object(o)) {
        json_decref(o);
        o = json_object();
    }
    struct vk_buf key = VK_BUF_INIT(VK_MAX_SMALL);
    const struct vk_store_fragment *bad = NULL;
    int e = o ? 0 : VK_ENOMEM;
    for (size_t i = 0; e == 0 && i < n; i++) {
        const char *res = need_result(&needs[i]);
        const char *x = needs[i].name ? needs[i].name : needs[i].id;
        if (strcmp(res, "success") != 0 && !bad)
            bad = &needs[i];
        *need_failed |= strcmp(res, "failure") == 0;
        json_t *out = needs[i].outputs_json ? json_loads(needs[i].outputs_json, 0, NULL) : NULL;
        const char *k;
        json_t *v;
        json_object_foreach(out, k, v)
        {
            if (e == 0 && json_is_string(v))
                e = needs_key(&key, x, k);
            if (e == 0 && json_is_string(v))
                e = json_object_set(o, key.data, v) ? VK_ENOMEM : 0;
        }
        json_decref(out);
        /* After the outputs: an output named RESULT does not hide the result. */
        if (e == 0)
            e = needs_key(&key, x, "RESULT");
        if (e == 0)
            e = json_object_set_new(o, key.data, json_string(res)) ? VK_ENOMEM : 0;
    }
    vk_buf_release(&key);
    char *js = e == 0 ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(o);
    if (!js)
        return vk_err_set(s->err, VK_ENOMEM, "out of memory");
    char msg[256];
    if (bad && f->run_when == VK_STORE_WHEN_SUCCESS) {
        snprintf(msg, sizeof(msg), "skipped: needs `%.160s`, which %s",
                 bad->name ? bad->name : bad->id, need_verb(need_result(bad)));
        *why = pool_strdup(s, msg);
    } else if (strlen(js) > VK_ORCH_MAX_NEEDS_ENV) {
        snprintf(msg, sizeof(msg),
                 "skipped: the results and outputs of its needs hold more than %d KiB, more "
                 "than its environment may",
                 VK_ORCH_MAX_NEEDS_ENV >> 10);
        *why = pool_strdup(s, msg);
    }
    *env = pool_strdup(s, js);
    free(js);
    if (!*env)
        return vk_err_set(s->err, VK_ENOMEM, "out of memory");
    return 0;
}

static int activate(struct sched *s, const struct vk_store_fragment *f, const char *inherit,
                    enum act_result *res)
{
    *res = ACT_DONE;
    if (f->status != VK_STORE_FRAG_PENDING)
        return 0; /* already handled (e.g. skipped by a failure) */
    if (f->unmet_needs > 0) {
        /* Its turn has come, its needs have not ended: it holds its place and the last of
         * them to end starts it (release). */
        *res = ACT_ACTIVE;
        if (f->needs_wait)
            return 0;
        struct vk_store_fragment_update u = {0};
        u.set = VK_STORE_SET_NEEDS_WAIT;
        u.needs_wait = true;
        return vk_store_tx_fragment_update(s->tx, f->id, &u, s->err);
    }
    const char *nenv = NULL, *why = NULL;
    bool need_failed = false;
    int rc = needs_env(s, f, inherit, &nenv, &why, &need_failed);
    if (rc < 0)
        return rc;
    if (why)
        return skip_subtree(s, f, why);
    bool holds;
    rc = condition_holds(s, f, nenv, &holds, &why);
    if (rc < 0)
        return rc;
    if (!holds)
        return skip_subtree(s, f, why ? why : "skipped: condition false");
    if (f->run_when == VK_STORE_WHEN_FAILURE && s->chain.status != VK_STORE_CHAIN_FAILED &&
        !need_failed)
        return skip_subtree(s, f, "skipped: when \"failure\", and nothing failed");
    if (nenv) {
        struct vk_store_fragment_update u = {0};
        u.set = VK_STORE_SET_NEEDS_ENV;
        u.needs_env_json = nenv;
        rc = vk_store_tx_fragment_update(s->tx, f->id, &u, s->err);
        if (rc < 0)
            return rc;
    }
    if (f->type == VK_STORE_FRAG_INLINE) {
        rc = set_status(s, f->id, VK_STORE_FRAG_READY);

        if (rc == 0)
            rc = vk_store_tx_notify_ready(s->tx, f->machine, s->err);
        /* `cancel-in-progress` on the fragment: after the commit (vk__orch_report). */
        if (rc == 0 && f->concurrency_group && f->concurrency_cancel && s->ended &&
            s->ended->ncancel < (int)VK_ARRAY_LEN(s->ended->cancel_for)) {
            snprintf(s->ended->cancel_for[s->ended->ncancel], VK_UUID_LEN, "%s", f->id);
            snprintf(s->ended->cancel_chain[s->ended->ncancel++], VK_UUID_LEN, "%s", f->chain_id);
        }
        *res = ACT_ACTIVE;
        return rc;
    }
    rc = set_status(s, f->id, VK_STORE_FRAG_RUNNING);
    if (rc < 0)
        return rc;
    rc = activate_children(s, f, nenv, res);
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
    /* a chain of a repository may be followed (`chain` triggers): queued with its end */
    if (rc == 0 && s->chain.repository_id[0])
        rc = vk_store_tx_treq_follow(s->tx, s->chain.id,
                                     cs == VK_STORE_CHAIN_COMPLETED ? "completed" : "failed",
                                     s->now, s->err);
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
    /* What the bulk skip ended lowers the counters of what it kept (`when` failure/always):
     * those whose needs have all ended now start (drain). */
    struct vk_store_fragment *deps = NULL;
    size_t n = 0;
    if (rc == 0)
        rc = vk_store_tx_needs_settle(s->tx, s->chain.id, &s->pool, &deps, &n, s->err);
    for (size_t i = 0; rc == 0 && i < n; i++)
        if (deps[i].status == VK_STORE_FRAG_PENDING && deps[i].unmet_needs == 0 &&
            deps[i].needs_wait)
            rc = idq_push(s, &s->release, deps[i].id);
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

/* Fragment f (a copy: it is changed) reached a final status: walk up from it. In a sequence
 * the next siblings start, in a max-parallel group the next child; a group left with no
 * unfinished child closes, and its parent is looked at in turn; at the top the chain ends. */
static int walk_up(struct sched *s, struct vk_store_fragment f)
{
    struct vk_store_tx *tx = s->tx;
    struct vk_err *err = s->err;
    int rc = 0;
    while (rc == 0) {
        const char *parent = f.parent_id[0] ? f.parent_id : NULL;
        struct vk_store_fragment p = {0};
        if (parent) {
            rc = vk_store_tx_fragment_get(tx, parent, &s->pool, &p, err);
            if (rc < 0)
                break;
        }
        bool parallel = parent ? p.is_parallel : false;
        const char *inherit = parent ? p.needs_env_json : NULL;
        if (!parallel && may_go_on(s)) {
            /* Sequential: activate the following siblings until one stays active, each
             * one indexed read (not the whole group on every result). */
            bool active = false;
            struct vk_store_fragment cur = f, next;
            while (rc == 0 && !active) {
                rc = vk_store_tx_next_sibling(tx, &cur, &s->pool, &next, err);
                if (rc == VK_ENOTFOUND) {
                    rc = 0;
                    break;
                }
                enum act_result r = ACT_DONE;
                if (rc == 0)
                    rc = activate(s, &next, inherit, &r);
                active = rc == 0 && r == ACT_ACTIVE;
                cur = next;
            }
            if (rc < 0 || active)
                break;
        }
        if (parallel && p.max_parallel > 0 && may_go_on(s)) {
            /* A child ended: the next one not started takes its place (one indexed read
             * per candidate, not the whole group per result). */
            bool active = false;
            while (rc == 0 && !active) {
                struct vk_store_fragment next;
                rc = vk_store_tx_first_pending_child(tx, parent, &s->pool, &next, err);
                if (rc == VK_ENOTFOUND) {
                    rc = 0;
                    break;
                }
                enum act_result r = ACT_DONE;
                if (rc == 0)
                    rc = activate(s, &next, inherit, &r);
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
            rc = finish_chain(s);
            break;
        }
        enum vk_store_frag_status st = VK_STORE_FRAG_COMPLETED;
        rc = group_final_status(s, f.chain_id, parent, &st);
        if (rc == 0)
            rc = set_status(s, parent, st);
        f = p;
        f.status = st;
        /* A group that failed under a `fail-fast #false` one fails its way up from here. */
        if (rc == 0 && st == VK_STORE_FRAG_FAILED && !f.allow_failure)
            rc = on_failure(s, &f);
    }
    return rc;
}

/* Fragment `id` is final: lower its dependents' counters. A dependent of a fragment that
 * did not succeed is skipped now when its `when` is "success" (and its way up walked when
 * its turn had come); one whose counter reached 0 while it held its turn may start. */
static int needs_done(struct sched *s, const char *id)
{
    struct vk_store_fragment *deps = NULL;
    size_t n = 0;
    int rc = vk_store_tx_needs_done(s->tx, id, &s->pool, &deps, &n, s->err);
    if (rc < 0 || n == 0)
        return rc;
    struct vk_store_fragment need;
    rc = vk_store_tx_fragment_get(s->tx, id, &s->pool, &need, s->err);
    const char *res = rc == 0 ? need_result(&need) : "";
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const struct vk_store_fragment *d = &deps[i];
        if (d->status != VK_STORE_FRAG_PENDING)
            continue;
        if (strcmp(res, "success") != 0 && d->run_when == VK_STORE_WHEN_SUCCESS) {
            char why[256];
            snprintf(why, sizeof(why), "skipped: needs `%.160s`, which %s",
                     need.name ? need.name : need.id, need_verb(res));
            rc = skip_subtree(s, d, why);
            if (rc == 0 && d->needs_wait)
                rc = idq_push(s, &s->walk, d->id);
        } else if (d->unmet_needs == 0 && d->needs_wait) {
            rc = idq_push(s, &s->release, d->id);
        }
    }
    return rc;
}

/* Start dependent `id` whose needs have all ended and whose turn had come. */
static int release(struct sched *s, const char *id)
{
    struct vk_store_fragment f, p;
    int rc = vk_store_tx_fragment_get(s->tx, id, &s->pool, &f, s->err);
    if (rc < 0 || f.status != VK_STORE_FRAG_PENDING || !f.needs_wait || f.unmet_needs > 0 ||
        !may_go_on(s))
        return rc;
    const char *inherit = NULL;
    if (f.parent_id[0]) {
        rc = vk_store_tx_fragment_get(s->tx, f.parent_id, &s->pool, &p, s->err);
        inherit = p.needs_env_json;
    }
    enum act_result r = ACT_DONE;
    if (rc == 0)
        rc = activate(s, &f, inherit, &r);
    if (rc == 0 && r == ACT_DONE) /* skipped, or a group all of whose children were */
        rc = vk_store_tx_fragment_get(s->tx, id, &s->pool, &f, s->err);
    if (rc == 0 && r == ACT_DONE)
        rc = walk_up(s, f);
    return rc;
}

/* Do the `needs` work the event left (only `done` when `only_done`). */
static int drain(struct sched *s, bool only_done)
{
    int rc = 0;
    const char *id;
    while (rc == 0) {
        if ((id = idq_pop(&s->done)))
            rc = needs_done(s, id);
        else if (only_done)
            break;
        else if ((id = idq_pop(&s->walk))) {
            struct vk_store_fragment f;
            rc = vk_store_tx_fragment_get(s->tx, id, &s->pool, &f, s->err);
            if (rc == 0)
                rc = walk_up(s, f);
        } else if ((id = idq_pop(&s->release)))
            rc = release(s, id);
        else
            break;
    }
    return rc;
}

/*
 * The most common result of all, one child of a parallel group (without max-parallel)
 * ending while a sibling is unfinished: nothing starts and nothing closes. Two indexed
 * reads answer it, without the chain's row (its env, context and commit message) that
 * the walk below reads first (issue 16). 1: that is the case, 0: walk, or a VK code.
 */
static int sibling_unfinished(struct vk_store_tx *tx, const struct vk_store_fragment *f,
                              struct vk_pool *pool, struct vk_err *err)
{
    if (!f->parent_id[0] || (f->status == VK_STORE_FRAG_FAILED && !f->allow_failure))
        return 0;
    struct vk_store_fragment p;
    int rc = vk_store_tx_fragment_get(tx, f->parent_id, pool, &p, err);
    if (rc < 0)
        return rc;
    if (!p.is_parallel || p.max_parallel > 0)
        return 0;
    /* A fragment others need must have its dependents' counters lowered: the walk. */
    bool needed = false;
    rc = vk_store_tx_is_needed(tx, f->id, &needed, err);
    if (rc < 0 || needed)
        return rc;
    bool left = false;
    rc = vk_store_tx_has_unfinished(tx, f->chain_id, f->parent_id, &left, err);
    return rc < 0 ? rc : left;
}

int vk__orch_after_final(struct vk_store_tx *tx, const char *frag_id, int64_t now,
                         struct vk__orch_ended *ended, struct vk_err *err)
{
    struct vk_store_fragment f;
    struct sched s;
    struct vk_pool tmp;
    vk_pool_init(&tmp, 4096);
    int rc = vk_store_tx_fragment_get(tx, frag_id, &tmp, &f, err);
    if (rc == 0) {
        rc = sibling_unfinished(tx, &f, &tmp, err);
        if (rc != 0) {
            memset(&s, 0, sizeof(s));
            rc = rc > 0 ? 0 : rc;
            goto out;
        }
    }
    if (rc == 0)
        rc = sched_init(&s, tx, f.chain_id, now, err);
    else
        memset(&s, 0, sizeof(s));
    if (rc < 0)
        goto out;
    s.ended = ended;
    /* Its dependents first, so that those it skips say so ("needs `build`, which failed")
     * before a failure of the chain skips what is left. */
    rc = idq_push(&s, &s.done, f.id);
    if (rc == 0)
        rc = drain(&s, true);
    if (rc == 0 && f.status == VK_STORE_FRAG_FAILED && !f.allow_failure)
        rc = on_failure(&s, &f);
    if (rc == 0)
        rc = walk_up(&s, f);
    if (rc == 0)
        rc = drain(&s, false);
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
        rc = activate(&s, &top[i], NULL, &r);
        active = r == ACT_ACTIVE;
    }
    if (rc == 0 && !active)
        rc = finish_chain(&s); /* everything skipped */
    if (rc == 0)
        rc = drain(&s, false);
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
