/* Turning a loaded workflow (or a stored chain, for rerun) into a new chain. */
#include "orch_int.h"
#include "vulcan/store_secrets.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

/* Pre-order flattening of the workflow tree into store specs. */
struct flatten {
    struct vk_store_fragment_spec *specs;
    size_t n, cap;
    struct vk_pool *pool;
    int parents[256];                     /* spec index of the open group at each depth */
    const struct vk_wf_fragment *network; /* the first inline fragment with `network #true` */
    bool chain_net_env;       /* the chain's env (or the submission's) sets VULCAN_NETWORK itself */
    int64_t queue_timeout_ms; /* the workflow's `queue-timeout` (0: none) */
    const char *branch, *repo, *workflow;      /* what a concurrency group's placeholders get */
    const struct vk_wf_concurrency *bad_group; /* one too long once filled in */
};

/* A concurrency group with {branch}, {repo} and {workflow} filled in, in `pool`; NULL
 * (with *too_long) when the result is too long, or out of memory. */
static const char *group_text(struct vk_pool *pool, const struct vk_wf_concurrency *c,
                              const char *branch, const char *repo, const char *workflow,
                              bool *too_long)
{
    char buf[VK_WF_MAX_CONCURRENCY_GROUP + 1];
    *too_long = vk_wf_concurrency_expand(c->group, branch, repo, workflow, buf, sizeof buf) != 0;
    return *too_long ? NULL : vk_pool_strndup(pool, buf, strlen(buf));
}

static bool kv_has(const struct vk_wf_kv *kv, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(kv[i].key, key) == 0)
            return true;
    return false;
}

static const char *env_json(struct vk_pool *pool, const struct vk_wf_kv *kv, size_t n,
                            const struct vk_cond_var *extra, size_t nextra)
{
    if (n == 0 && nextra == 0)
        return NULL;
    json_t *o = json_object();
    for (size_t i = 0; i < n; i++)
        json_object_set_new(o, kv[i].key, json_string(kv[i].value));
    for (size_t i = 0; i < nextra; i++)
        json_object_set_new(o, extra[i].name, json_string(extra[i].value ? extra[i].value : ""));
    char *s = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(o);
    if (!s)
        return NULL;
    char *r = vk_pool_strndup(pool, s, strlen(s));
    free(s);
    return r;
}

/* A matrix copy's combination as {"KEY": "VALUE", ...} in the matrix's order (axes, then
 * `include` variables), in the pool; NULL when out of memory. */
static const char *matrix_json(struct vk_pool *pool, const struct vk_wf_kv *kv, size_t n)
{
    json_t *o = json_object();
    int bad = !o;
    for (size_t i = 0; i < n && !bad; i++)
        bad |= json_object_set_new(o, kv[i].key, json_string(kv[i].value));
    char *s = bad ? NULL : json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (!s)
        return NULL;
    char *r = vk_pool_strndup(pool, s, strlen(s));
    free(s);
    return r;
}

/* [{"name": "A", "file": false}, ...] in the pool; NULL when out of memory. */
static const char *secrets_json(struct vk_pool *pool, const struct vk_wf_secret *sec, size_t n)
{
    json_t *a = json_array();
    int bad = !a;
    for (size_t i = 0; i < n && !bad; i++)
        bad |= json_array_append_new(
            a, json_pack("{s:s, s:b}", "name", sec[i].name, "file", sec[i].file ? 1 : 0));
    char *s = bad ? NULL : json_dumps(a, JSON_COMPACT);
    json_decref(a);
    if (!s)
        return NULL;
    char *r = vk_pool_strndup(pool, s, strlen(s));
    free(s);
    return r;
}

/* `needs` as ["a", "b"] in the pool, and the specs' indexes of the nodes named (the
 * loader numbered every node in pre-order, which is the order of the specs). */
static int needs_spec(struct vk_pool *pool, const struct vk_wf_fragment *f,
                      struct vk_store_fragment_spec *s)
{
    if (!f->nneeds)
        return 0;
    json_t *a = json_array();
    int *idx = vk_pool_zalloc(pool, f->nneeds * sizeof(*idx));
    int bad = !a || !idx;
    for (size_t i = 0; i < f->nneeds && !bad; i++) {
        bad |= json_array_append_new(a, json_string(f->needs[i]));
        idx[i] = (int)f->needs_frag[i]->index;
    }
    char *js = bad ? NULL : json_dumps(a, JSON_COMPACT);
    json_decref(a);
    if (!js)
        return VK_ENOMEM;
    s->needs_json = vk_pool_strndup(pool, js, strlen(js));
    free(js);
    s->needs = idx;
    s->nneeds = f->nneeds;
    return s->needs_json ? 0 : VK_ENOMEM;
}

/* The first secret a fragment of `wf` uses that neither the org nor the repository has,
 * as "FILE:L:C: ..." in `err` (VK_ENOTFOUND); 0 when every one is defined. */
struct secret_check {
    struct vk_orch *o;
    const struct vk_workflow *wf;
    const char *tenant_id, *repository_id;
    struct vk_pool *pool;
    struct vk_err *err;
    int rc;
    const char **seen; /* names found already (one lookup per name) */
    size_t nseen, cap;
};

static int check_visit(void *ctx, const struct vk_wf_fragment *f, unsigned depth)
{
    (void)depth;
    struct secret_check *sc = ctx;
    for (size_t i = 0; f->type == VK_WF_INLINE && i < f->nsecrets; i++) {
        bool known = false;
        for (size_t k = 0; k < sc->nseen && !known; k++)
            known = strcmp(sc->seen[k], f->secrets[i].name) == 0;
        if (known)
            continue;
        struct vk_store_secret row;
        struct vk_err e2;
        vk_err_clear(&e2);
        int rc = vk_store_secret_resolve(sc->o->store, sc->tenant_id, sc->repository_id,
                                         f->secrets[i].name, sc->pool, &row, &e2);
        if (rc == VK_ENOTFOUND) {
            const struct vk_wf_pos *p = &f->secrets[i].pos;
            sc->rc = vk_err_set(
                sc->err, VK_ENOTFOUND,
                "%s:%u:%u: error: unknown secret '%s': define it with 'vulcan "
                "secrets set %s%s' (org or repository scope) before running "
                "this chain",
                p->file ? p->file : sc->wf->file, p->line, p->col, f->secrets[i].name,
                sc->repository_id && *sc->repository_id ? "--repo <id> " : "", f->secrets[i].name);
            return 1;
        }
        if (rc < 0) {
            sc->rc = vk_err_set(sc->err, rc, "%s", e2.msg);
            return 1;
        }
        if (vk_array_pool_grow(sc->pool, &sc->seen, &sc->cap, sc->nseen + 1, 16,
                               sizeof(*sc->seen)) < 0) {
            sc->rc = vk_err_set(sc->err, VK_ENOMEM, "out of memory");
            return 1;
        }
        sc->seen[sc->nseen++] = f->secrets[i].name;
    }
    return 0;
}

static int visit(void *ctx, const struct vk_wf_fragment *f, unsigned depth)
{
    struct flatten *fl = ctx;
    if (depth >= VK_ARRAY_LEN(fl->parents))
        return VK_ETOOBIG;
    if (fl->n >= VK_STORE_MAX_FRAGMENTS)
        return VK_ETOOBIG;
    if (vk_array_grow(&fl->specs, &fl->cap, fl->n + 1, 64, sizeof(*fl->specs)) < 0)
        return VK_ENOMEM;
    struct vk_store_fragment_spec *s = &fl->specs[fl->n];
    memset(s, 0, sizeof(*s));
    s->parent = depth == 0 ? -1 : fl->parents[depth - 1];
    s->type = f->type == VK_WF_GROUP ? VK_STORE_FRAG_GROUP : VK_STORE_FRAG_INLINE;
    s->is_parallel = f->is_parallel;
    s->max_parallel = f->max_parallel;
    s->no_fail_fast = f->no_fail_fast;
    s->run_when = f->when == VK_WF_WHEN_FAILURE  ? VK_STORE_WHEN_FAILURE
                  : f->when == VK_WF_WHEN_ALWAYS ? VK_STORE_WHEN_ALWAYS
                                                 : VK_STORE_WHEN_SUCCESS;
    s->allow_failure = f->allow_failure;
    s->name = f->name;
    s->run_script = f->run;
    s->machine = f->machine;
    s->condition = f->condition_src;
    s->source_url = f->source_url;
    s->timeout_ms = f->timeout_ms;
    s->queue_timeout_ms = f->queue_timeout_ms ? f->queue_timeout_ms : fl->queue_timeout_ms;
    s->retries = f->retries;
    /* `network` travels in the fragment's environment as VULCAN_NETWORK (the script sees
     * it, the worker reads it): no store column. A user-set VULCAN_NETWORK never grants it. */
    struct vk_cond_var net = {"VULCAN_NETWORK", f->network ? "true" : "false"};
    bool add_net = f->type == VK_WF_INLINE &&
                   (f->network || fl->chain_net_env || kv_has(f->env, f->nenv, net.name));
    if (f->type == VK_WF_INLINE && f->network && !fl->network)
        fl->network = f;
    /* `checkout { … }` travels the same way: VULCAN_CHECKOUT_DEPTH, _REF, _SUBMODULES
     * ("true"/"recursive"), _LFS ("true"), and `checkout #false` as VULCAN_CHECKOUT=false. */
    char dep[16];
    snprintf(dep, sizeof dep, "%u", f->checkout_depth);
    struct vk_cond_var extra[6];
    size_t nextra = 0;
    bool inl = f->type == VK_WF_INLINE;
    if (add_net)
        extra[nextra++] = net;
    if (inl && f->checkout_none)
        extra[nextra++] = (struct vk_cond_var){"VULCAN_CHECKOUT", "false"};
    if (inl && f->checkout_depth > 0)
        extra[nextra++] = (struct vk_cond_var){"VULCAN_CHECKOUT_DEPTH", dep};
    if (inl && f->checkout_head)
        extra[nextra++] = (struct vk_cond_var){"VULCAN_CHECKOUT_REF", "head"};
    if (inl && f->checkout_submodules != VK_WF_SUBMODULES_NONE)
        extra[nextra++] = (struct vk_cond_var){
            "VULCAN_CHECKOUT_SUBMODULES",
            f->checkout_submodules == VK_WF_SUBMODULES_RECURSIVE ? "recursive" : "true"};
    if (inl && f->checkout_lfs)
        extra[nextra++] = (struct vk_cond_var){"VULCAN_CHECKOUT_LFS", "true"};
    s->env_json = env_json(fl->pool, f->env, f->nenv, nextra ? extra : NULL, nextra);
    if (inl && f->nsecrets) {
        s->secrets_json = secrets_json(fl->pool, f->secrets, f->nsecrets);
        if (!s->secrets_json)
            return VK_ENOMEM;
    }
    if (inl && f->concurrency) {
        bool too_long = false;
        s->concurrency_group =
            group_text(fl->pool, f->concurrency, fl->branch, fl->repo, fl->workflow, &too_long);
        s->concurrency_cancel = f->concurrency->cancel_in_progress;
        if (too_long)
            fl->bad_group = f->concurrency;
        if (!s->concurrency_group)
            return too_long ? VK_EINVAL : VK_ENOMEM;
    }
    if (f->index != fl->n) /* the loader's numbering is the walk's */
        return VK_EINVAL;
    if (needs_spec(fl->pool, f, s) < 0)
        return VK_ENOMEM;
    s->is_matrix = f->is_matrix;
    if (f->nmatrix) {
        s->matrix_values = matrix_json(fl->pool, f->matrix, f->nmatrix);
        if (!s->matrix_values)
            return VK_ENOMEM;
    }
    fl->parents[depth] = (int)fl->n;
    fl->n++;
    return 0;
}

static void fill_chain(struct vk_orch *o, struct vk_store_chain *c,
                       const struct vk_orch_context *ctx, char trace[VK_ORCH_TRACE_MAX])
{
    memset(c, 0, sizeof(*c));
    snprintf(c->tenant_id, sizeof(c->tenant_id), "%s", ctx->tenant_id ? ctx->tenant_id : o->tenant);
    if (ctx->repository_id)
        snprintf(c->repository_id, sizeof(c->repository_id), "%s", ctx->repository_id);
    c->source_file = ctx->source_file;
    c->repository_url = ctx->repository_url;
    c->commit_sha = ctx->commit_sha;
    c->branch = ctx->branch;
    c->trigger = ctx->trigger ? ctx->trigger : "manual";
    c->trigger_ref = ctx->trigger_ref;
    c->commit_message = ctx->commit_message;
    c->commit_author = ctx->commit_author;
    c->pr_number = ctx->pr_number;
    c->from_fork = ctx->from_fork;
    c->tag = ctx->tag;
    c->priority = ctx->priority;
    if (ctx->trigger_request_id)
        snprintf(c->trigger_request_id, sizeof(c->trigger_request_id), "%s",
                 ctx->trigger_request_id);
    vk__orch_trace_new(o, ctx->trace_id, trace);
    c->trace_id = trace[0] ? trace : NULL;
}

/* True when chain `id` is still pending (made, never started). */
static bool still_pending(struct vk_orch *o, const char *id)
{
    struct vk_pool pool;
    vk_pool_init(&pool, 1024);
    struct vk_store_chain c;
    bool pending = vk_store_chain_get(o->store, id, &pool, &c, NULL, NULL, NULL) == 0 &&
                   c.status == VK_STORE_CHAIN_PENDING;
    vk_pool_release(&pool);
    return pending;
}

/*
 * Create the chain rows, then start the chain in its own transaction. A chain its
 * trigger request made already (VK_EEXIST, its id in chain_id) is started when whoever
 * made it died before starting it, and VK_EEXIST is returned either way.
 */
static int create_and_start(struct vk_orch *o, struct vk_store_chain *chain,
                            const struct vk_store_fragment_spec *specs, size_t n,
                            char chain_id[VK_UUID_LEN], struct vk_err *err)
{
    int rc = vk_store_chain_create(o->store, chain, specs, n, NULL, err);
    bool again = rc == VK_EEXIST && chain->id[0];
    if (again && !still_pending(o, chain->id)) {
        snprintf(chain_id, VK_UUID_LEN, "%s", chain->id);
        return VK_EEXIST;
    }
    if (rc < 0 && !again)
        return rc;
    snprintf(chain_id, VK_UUID_LEN, "%s", chain->id);
    struct vk_store_tx *tx = NULL;
    rc = vk_store_tx_begin(o->store, &tx, err);
    if (rc < 0)
        return rc;
    struct vk__orch_ended ended = {0};
    rc = vk__orch_start_chain(tx, chain->id, vk_time_now_ms(), &ended, err);
    if (rc < 0) {
        vk_store_tx_rollback(tx);
        return rc;
    }
    rc = vk_store_tx_commit(tx, err);
    if (rc == 0)
        vk__orch_report(o, &ended);
    /* `cancel-in-progress`: the new chain waits (the claim) until the older ones it cancels
     * here have stopped. */
    if (rc == 0 && chain->concurrency_group && chain->concurrency_cancel)
        vk__orch_concurrency_cancel(o, chain->id, NULL);
    return rc == 0 && again ? VK_EEXIST : rc;
}

int vk_orch_submit(struct vk_orch *o, const struct vk_workflow *wf, const char *definition,
                   const struct vk_orch_context *ctx, char chain_id[VK_UUID_LEN],
                   size_t *nfragments, struct vk_err *err)
{
    struct vk_pool pool;
    vk_pool_init(&pool, 0);
    struct flatten fl = {0};
    fl.pool = &pool;
    fl.chain_net_env = kv_has(wf->env, wf->nenv, "VULCAN_NETWORK");
    for (size_t i = 0; ctx->env && i < ctx->nenv; i++)
        fl.chain_net_env |= ctx->env[i].name && strcmp(ctx->env[i].name, "VULCAN_NETWORK") == 0;
    fl.queue_timeout_ms = wf->queue_timeout_ms;
    char repo[256];
    vk__orch_repo_name(ctx->repository_url, repo, sizeof repo);
    fl.branch = ctx->branch;
    fl.repo = repo;
    fl.workflow = wf->name;
    int rc = vk_workflow_walk(wf, visit, &fl);
    const char *chain_group = NULL;
    bool too_long = false;
    if (rc == 0 && wf->concurrency) {
        chain_group =
            group_text(&pool, wf->concurrency, fl.branch, fl.repo, fl.workflow, &too_long);
        if (too_long)
            fl.bad_group = wf->concurrency;
        rc = chain_group ? 0 : too_long ? VK_EINVAL : VK_ENOMEM;
    }
    if (rc == VK_EINVAL && fl.bad_group) {
        const struct vk_wf_concurrency *g = fl.bad_group;
        rc = vk_err_set(err, VK_EINVAL,
                        "%s:%u:%u: the concurrency group '%s' is longer than %d bytes once "
                        "{branch}, {repo} and {workflow} are filled in",
                        g->pos.file ? g->pos.file : wf->file, g->pos.line, g->pos.col, g->group,
                        VK_WF_MAX_CONCURRENCY_GROUP);
        goto out;
    }
    if (rc != 0) {
        rc = rc == VK_ENOMEM ? vk_err_set(err, VK_ENOMEM, "out of memory")
                             : vk_err_set(err, VK_ETOOBIG,
                                          "the chain has more than %d fragments or is nested "
                                          "too deep",
                                          VK_STORE_MAX_FRAGMENTS);
        goto out;
    }
    if (o->opts.deny_network && fl.network) {
        const struct vk_wf_fragment *f = fl.network;
        rc = vk_err_set(err, VK_EPERM,
                        "%s:%u:%u: fragment '%s' asks for the network ('network #true') but "
                        "this server's policy is --sandbox-network deny",
                        f->pos.file ? f->pos.file : wf->file, f->pos.line, f->pos.col,
                        f->name ? f->name : "(unnamed)");
        goto out;
    }
    /* Every secret named must exist before anything runs; otherwise the chain is stored as
     * failed with the name's file:line:col (DESIGN §8). */
    struct vk_err serr;
    vk_err_clear(&serr);
    struct secret_check sc = {.o = o,
                              .wf = wf,
                              .tenant_id = ctx->tenant_id ? ctx->tenant_id : o->tenant,
                              .repository_id = ctx->repository_id,
                              .pool = &pool,
                              .err = &serr};
    (void)vk_workflow_walk(wf, check_visit, &sc);
    if (sc.rc == VK_ENOTFOUND) {
        rc = vk_orch_submit_failed(o, ctx, definition, serr.msg, chain_id, err);
        if (rc == 0 && nfragments)
            *nfragments = 0;
        goto out;
    }
    if (sc.rc < 0) {
        rc = vk_err_set(err, sc.rc, "%s", serr.msg);
        goto out;
    }
    struct vk_store_chain chain;
    char trace[VK_ORCH_TRACE_MAX];
    fill_chain(o, &chain, ctx, trace);
    chain.source_file = ctx->source_file ? ctx->source_file : wf->file;
    chain.default_machine = wf->machine;
    chain.definition = definition;
    chain.env_json = env_json(&pool, wf->env, wf->nenv, ctx->env, ctx->nenv);
    chain.concurrency_group = chain_group;
    chain.concurrency_cancel = wf->concurrency && wf->concurrency->cancel_in_progress;
    rc = create_and_start(o, &chain, fl.specs, fl.n, chain_id, err);
    if (rc == 0 && nfragments)
        *nfragments = fl.n;
out:
    vk_mem_free(fl.specs);
    vk_pool_release(&pool);
    return rc;
}

int vk_orch_submit_failed(struct vk_orch *o, const struct vk_orch_context *ctx,
                          const char *definition, const char *message, char chain_id[VK_UUID_LEN],
                          struct vk_err *err)
{
    struct vk_store_chain chain;
    char trace[VK_ORCH_TRACE_MAX];
    fill_chain(o, &chain, ctx, trace);
    chain.definition = definition;
    chain.default_machine = "default";
    int rc = vk_store_chain_create(o->store, &chain, NULL, 0, NULL, err);
    if (rc == VK_EEXIST && chain.id[0]) /* its trigger request made it already */
        snprintf(chain_id, VK_UUID_LEN, "%s", chain.id);
    if (rc < 0)
        return rc;
    snprintf(chain_id, VK_UUID_LEN, "%s", chain.id);
    struct vk_store_tx *tx = NULL;
    rc = vk_store_tx_begin(o->store, &tx, err);
    if (rc < 0)
        return rc;
    int64_t now = vk_time_now_ms();
    rc = vk_store_tx_chain_set(tx, chain.id, VK_STORE_CHAIN_FAILED, now, now, message, err);
    if (rc < 0) {
        vk_store_tx_rollback(tx);
        return rc;
    }
    rc = vk_store_tx_commit(tx, err);
    if (rc == 0) {
        struct vk__orch_ended ended = {.chain_ended = true,
                                       .status = VK_STORE_CHAIN_FAILED,
                                       .created_at = chain.created_at ? chain.created_at : now,
                                       .finished_at = now};
        snprintf(ended.chain_id, sizeof(ended.chain_id), "%s", chain.id);
        snprintf(ended.trace, sizeof(ended.trace), "%s", trace);
        vk__orch_report(o, &ended);
    }
    return rc;
}

/* A rerun's needs edges: each stored name (`needs_json`) to the index of the fragment of
 * that name (names a `needs` refers to are unique in a chain: the loader saw to it). */
static int rerun_needs(struct vk_pool *pool, const struct vk_store_fragment *frags,
                       struct vk_store_fragment_spec *specs, size_t n, struct vk_err *err)
{
    for (size_t i = 0; i < n; i++) {
        if (!specs[i].needs_json)
            continue;
        json_t *a = json_loads(specs[i].needs_json, 0, NULL);
        size_t k = json_is_array(a) ? json_array_size(a) : 0;
        int *idx = k ? vk_pool_zalloc(pool, k * sizeof(*idx)) : NULL;
        if (k && !idx) {
            json_decref(a);
            return vk_err_set(err, VK_ENOMEM, "out of memory");
        }
        for (size_t j = 0; j < k; j++) {
            const char *name = json_string_value(json_array_get(a, j));
            idx[j] = -1;
            for (size_t m = 0; name && m < n && idx[j] < 0; m++)
                if (frags[m].name && strcmp(frags[m].name, name) == 0)
                    idx[j] = (int)m;
            if (idx[j] < 0) {
                json_decref(a);
                return vk_err_set(err, VK_EINVAL,
                                  "fragment %zu needs '%s', which is not in the "
                                  "chain",
                                  i, name ? name : "?");
            }
        }
        json_decref(a);
        specs[i].needs = idx;
        specs[i].nneeds = k;
    }
    return 0;
}

int vk_orch_rerun(struct vk_orch *o, const char *chain_id, char new_id[VK_UUID_LEN],
                  struct vk_err *err)
{
    struct vk_pool pool;
    vk_pool_init(&pool, 0);
    struct vk_store_chain old;
    struct vk_store_fragment *frags = NULL;
    size_t n = 0;
    struct vk_store_fragment_spec *specs = NULL;
    int rc = vk_store_chain_get(o->store, chain_id, &pool, &old, &frags, &n, err);
    if (rc < 0)
        goto out;
    if (n == 0) {
        rc = vk_err_set(err, VK_EINVAL, "chain '%s' has no fragments to run again", chain_id);
        goto out;
    }
    /* The stored tree is the expanded one (imports included), in pre-order, so the
     * copy runs exactly what ran before without fetching anything again. */
    specs = vk_mem_calloc(n, sizeof(*specs));
    if (!specs) {
        rc = vk_err_set(err, VK_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        const struct vk_store_fragment *f = &frags[i];
        struct vk_store_fragment_spec *s = &specs[i];
        s->parent = -1;
        for (size_t j = i; f->parent_id[0] && j-- > 0;) {
            if (strcmp(frags[j].id, f->parent_id) == 0) {
                s->parent = (int)j;
                break;
            }
        }
        s->type = f->type;
        s->is_parallel = f->is_parallel;
        s->max_parallel = f->max_parallel;
        s->no_fail_fast = f->no_fail_fast;
        s->run_when = f->run_when;
        s->allow_failure = f->allow_failure;
        s->name = f->name;
        s->run_script = f->run_script;
        s->machine = f->machine;
        s->condition = f->condition;
        s->source_url = f->source_url;
        s->timeout_ms = f->timeout_ms;
        s->queue_timeout_ms = f->queue_timeout_ms;
        s->retries = f->retries;
        s->max_attempts = f->max_attempts;
        s->env_json = f->env_json;
        s->secrets_json = f->secrets_json;
        s->is_matrix = f->is_matrix;
        s->matrix_values = f->matrix_values;
        s->needs_json = f->needs_json;
        s->concurrency_group = f->concurrency_group;
        s->concurrency_cancel = f->concurrency_cancel;
    }
    rc = rerun_needs(&pool, frags, specs, n, err);
    if (rc < 0)
        goto out;
    struct vk_store_chain chain = old;
    memset(chain.id, 0, sizeof(chain.id));
    chain.trigger_request_id[0] = '\0'; /* a run of its own, not its request's */
    chain.status = VK_STORE_CHAIN_PENDING;
    chain.error = NULL;
    chain.started_at = chain.finished_at = chain.created_at = 0;
    char trace[VK_ORCH_TRACE_MAX];
    vk__orch_trace_new(o, NULL, trace); /* a run of its own: a new trace */
    chain.trace_id = trace[0] ? trace : NULL;
    rc = create_and_start(o, &chain, specs, n, new_id, err);
out:
    vk_mem_free(specs);
    vk_pool_release(&pool);
    return rc;
}
