/*
 * The worker protocol (DESIGN §5): register, heartbeat, long-poll work
 * requests, log upload and results fenced by attempt, busy, queue metrics.
 *
 * Long-poll dispatcher: a work request that finds nothing ready is suspended
 * and put at the tail of the waiter list (FIFO). vk_api_wake(group) walks the
 * list and claims work for each waiter serving `group` until the group has no
 * more ready work. Replies happen under the list lock (the HTTP layer's rule
 * for suspended requests), and so do claims for waiters, which keeps the list
 * and the suspended requests consistent without reference counting.
 */
#include "api_int.h"
#include "vulcan/telemetry.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_NAME 256

/* ---------------------------------------------------------------- Work items */

/* Add the string members of the object in `json_text` (NULL, "" or not an object: none).
 * Returns 0, or -1 when out of memory. */
static int env_merge(json_t *env, const char *json_text)
{
    if (!json_text || !*json_text)
        return 0;
    json_error_t je;
    json_t *o = json_loads(json_text, 0, &je);
    /* Malformed text is ignored; running out of memory is not (jansson gives no reason
     * when it could not even start). */
    int bad = !o && (json_error_code(&je) == json_error_out_of_memory || !je.text[0]);
    const char *k;
    json_t *v;
    if (json_is_object(o)) {
        json_object_foreach(o, k, v)
        {
            if (json_is_string(v))
                bad |= json_object_set(env, k, v);
        }
    }
    json_decref(o);
    return bad ? -1 : 0;
}

/* Returns 0, or -1 when out of memory. */
static int env_set(json_t *env, const char *k, const char *v)
{
    return json_object_set_new(env, k, json_string(v ? v : ""));
}

/*
 * The "dispatch" span of a claim: from the fragment becoming ready to its hand-over, child
 * of the chain's span (a trace of its own when the chain has none). Writes the traceparent
 * the worker's spans hang from into `tp` (the chain's own context without a tracer; "" when
 * there is none either) and logs the claim with the trace ids.
 */
static void dispatch_trace(struct vk_api *api, const struct vk_store_work *w, const char *worker_id,
                           char tp[VK_TRACEPARENT_LEN])
{
    const struct vk_store_fragment *f = &w->fragment;
    struct vk_trace_ctx chain;
    bool has_chain = vk_orch_chain_trace(w->chain.trace_id, &chain, NULL) == 0;
    tp[0] = '\0';
    struct vk_span *s = vk_trace_start_span(api->opts.tracer, "dispatch", VK_SPAN_PRODUCER,
                                            has_chain ? &chain : NULL);
    if (s) {
        /* The span covers the queue wait: it began when the fragment became ready. */
        vk_trace_span_set_start(s, f->ready_at * 1000000);
        vk_trace_span_set_str(s, "vulcan.chain_id", w->chain.id);
        vk_trace_span_set_str(s, "vulcan.fragment_id", f->id);
        vk_trace_span_set_str(s, "vulcan.fragment.name", f->name);
        vk_trace_span_set_str(s, "vulcan.worker_id", worker_id);
        vk_trace_span_set_str(s, "vulcan.machine_group", f->machine);
        vk_trace_span_set_int(s, "vulcan.attempt", f->attempt);
        vk_trace_span_traceparent(s, tp);
    } else if (has_chain) {
        vk_trace_parent_format(&chain, tp);
    }
    struct vk__api_trace_ids ids;
    vk__api_trace_ids(s, &ids);
    char att[16];
    snprintf(att, sizeof(att), "%d", f->attempt);
    vk_log_write(VK_LOG_INFO, "api", "fragment claimed", "chain_id", w->chain.id, "fragment_id",
                 f->id, "worker_id", worker_id, "attempt", att, "trace_id",
                 ids.trace_id[0] ? ids.trace_id : NULL, "span_id",
                 ids.span_id[0] ? ids.span_id : NULL, NULL);
    vk_trace_end_span(api->opts.tracer, s);
}

/* The JSON work item a worker receives for a claimed fragment; `job_token` (NULL without
 * require_auth) is the attempt's credential for its log and result. */
static json_t *work_json(struct vk_api *api, const struct vk_store_work *w, const char *worker_id,
                         const char *job_token, struct vk_pool *pool, struct vk_err *fail)
{
    const struct vk_store_fragment *f = &w->fragment;
    const struct vk_store_chain *c = &w->chain;
    json_t *env = json_object();
    int bad = env_merge(env, c->env_json);
    bad |= env_merge(env, f->env_json);
    bad |= env_merge(env, f->needs_env_json); /* $NEEDS_<X>_…, set when it became ready */
    char num[32];
    bad |= env_set(env, "CI", "true");
    bad |= env_set(env, "VULCAN", "true");
    bad |= env_set(env, "BRANCH", c->branch);
    bad |= env_set(env, "TRIGGER", c->trigger);
    bad |= env_set(env, "COMMIT_SHA", c->commit_sha);
    bad |= env_set(env, "TAG", c->tag);
    bad |= env_set(env, "COMMIT_MESSAGE", c->commit_message);
    bad |= env_set(env, "COMMIT_AUTHOR", c->commit_author);
    bad |= env_set(env, "REPOSITORY_URL", c->repository_url);
    snprintf(num, sizeof(num), "%lld", (long long)c->pr_number);
    bad |= env_set(env, "PR_NUMBER", c->pr_number ? num : "");
    bad |= env_set(env, "VULCAN_CHAIN_ID", c->id);
    bad |= env_set(env, "VULCAN_FRAGMENT_ID", f->id);
    bad |= env_set(env, "VULCAN_FRAGMENT_NAME", f->name);
    snprintf(num, sizeof(num), "%d", f->attempt);
    bad |= env_set(env, "VULCAN_ATTEMPT", num);
    bad |= env_set(env, "VULCAN_WORKER_ID", worker_id);
    bad |= env_set(env, "VULCAN_MACHINE", f->machine);
    json_t *o = json_object();
    bad |= json_object_set_new(o, "fragment_id", json_string(f->id));
    bad |= json_object_set_new(o, "chain_id", json_string(c->id));
    bad |= json_object_set_new(o, "attempt", json_integer(f->attempt));
    bad |= json_object_set_new(o, "name", vk__api_str(f->name));
    bad |= json_object_set_new(o, "run_script", vk__api_str(f->run_script));
    bad |= json_object_set_new(o, "env", env);
    bad |= json_object_set_new(o, "timeout_s", json_integer((f->timeout_ms + 999) / 1000));
    bad |= json_object_set_new(o, "repository_url", vk__api_str(c->repository_url));
    bad |= json_object_set_new(o, "commit_sha", vk__api_str(c->commit_sha));
    bad |= json_object_set_new(o, "branch", vk__api_str(c->branch));
    bad |= json_object_set_new(o, "machine", vk__api_str(f->machine));
    if (job_token) {
        bad |= json_object_set_new(o, "job_token", json_string(job_token));
        bad |= !vk__api_oidc_env(api, env, job_token);
    }
    int sr = vk__api_work_secrets(api, w, pool, o, env, fail);
    if (sr == 1) { /* a secret provider failed: `fail` says why, and nothing is sent */
        json_decref(o);
        return NULL;
    }
    bad |= sr != 0;
    char tp[VK_TRACEPARENT_LEN];
    dispatch_trace(api, w, worker_id, tp);
    /* trace_id: the trace's 32 hex digits; trace_parent: what the worker's spans and
     * requests use as their parent (the dispatch span). */
    bad |= json_object_set_new(o, "trace_id", tp[0] ? json_stringn(tp + 3, 32) : json_null());
    bad |= json_object_set_new(o, "trace_parent", tp[0] ? json_string(tp) : json_null());
    return vk_http_json_checked(o, bad);
}

/* Give back a claimed fragment without counting an attempt, so it is not lost. */
static void hand_back(struct vk_api *api, const struct vk_store_work *work, const char *worker_id)
{
    struct vk_err err;
    vk_err_clear(&err);
    if (vk_store_requeue_fragment(api->opts.store, work->fragment.id, work->fragment.attempt,
                                  worker_id, vk_time_now_ms(), &err) < 0)
        vk_log_write(VK_LOG_ERROR, "api", "cannot hand back a fragment", "fragment_id",
                     work->fragment.id, "error", err.msg, NULL);
}

/*
 * Build the work item of the claim `work` and answer the waiter's request with it. When a
 * secret provider fails the attempt fails with the provider's reason (as a result from the
 * worker would: retries apply) and the worker gets 204, to ask again.
 */
static void answer_claim(struct vk_api *api, struct vk__api_waiter *w,
                         const struct vk_store_work *work, const char *token, struct vk_pool *pool)
{
    struct vk_err fail;
    vk_err_clear(&fail);
    json_t *item = work_json(api, work, w->worker_id, token, pool, &fail);
    if (!item && fail.code) {
        const struct vk_store_fragment *f = &work->fragment;
        vk__api_mask_end(api, f->id, f->attempt);
        struct vk_orch_result r = {.worker_id = w->worker_id,
                                   .fragment_id = f->id,
                                   .attempt = f->attempt,
                                   .error = fail.msg};
        enum vk_store_frag_status st;
        struct vk_err err;
        vk_err_clear(&err);
        if (vk_orch_result(api->opts.orch, &r, &st, &err) < 0) {
            vk_log_write(VK_LOG_ERROR, "api", "cannot fail an attempt", "fragment_id", f->id,
                         "error", err.msg, NULL);
            hand_back(api, work, w->worker_id);
        } else {
            vk_log_write(VK_LOG_WARN, "api", "attempt failed at claim", "fragment_id", f->id,
                         "worker_id", w->worker_id, "fragment_status",
                         vk_store_frag_status_name(st), "error", fail.msg, NULL);
        }
        vk_http_reply_empty(w->req, 204);
        return;
    }
    /* NULL (out of memory) is answered with a 500 and gives the fragment back below. */
    if (vk_http_reply_json_wiped(w->req, 200, item) != 0) {
        /* No work item, or the worker went away between claim and reply: the wake loop
         * goes on to the next waiter, which claims it again. */
        hand_back(api, work, w->worker_id);
    }
}

/* A claim whose work item asks secret providers, answered on a thread of its own. */
struct resolve_job {
    struct vk__api_waiter *w; /* owned; w->req detained (parked) or suspended without callbacks */
    bool detained;
    struct vk_pool pool; /* holds `work` */
    struct vk_store_work work;
    bool auth;
    char token[VK_AUTH_TOKEN_MAX];
};

static void waiter_free(struct vk__api_waiter *w);
static void waiter_unlink(struct vk_api *api, struct vk__api_waiter *w);

static void *resolve_main(void *arg)
{
    struct resolve_job *j = arg;
    struct vk__api_waiter *w = j->w;
    struct vk_api *api = w->api;
    struct vk_http_req *req = w->req;
    answer_claim(api, w, &j->work, j->auth ? j->token : NULL, &j->pool);
    if (j->detained)
        vk_http_detained_end(req);
    else
        vk_http_req_unref(req);
    vk_auth_wipe(j->token, sizeof(j->token));
    vk_pool_release(&j->pool);
    waiter_free(w);
    vk_mem_free(j);
    pthread_mutex_lock(&api->resolve_lock);
    api->resolvers--;
    pthread_cond_broadcast(&api->resolve_cond);
    pthread_mutex_unlock(&api->resolve_lock);
    return NULL;
}

/*
 * Hand the claim to a resolver thread: the waiter leaves the list for good (2), or, when
 * its parked request was completed by its deadline or its client meanwhile, the fragment
 * goes back and the request's callback frees the waiter (-2). 0: no thread to be had, the
 * caller answers inline. Called with api->lock held.
 */
static int hand_off(struct vk__api_waiter *w, struct vk_pool *pool,
                    const struct vk_store_work *work, bool auth, const char *token)
{
    struct vk_api *api = w->api;
    pthread_mutex_lock(&api->resolve_lock);
    bool room = !api->resolve_stopping && api->resolvers < VK__API_MAX_RESOLVERS;
    if (room)
        api->resolvers++;
    pthread_mutex_unlock(&api->resolve_lock);
    struct resolve_job *j = room ? vk_mem_calloc(1, sizeof(*j)) : NULL;
    if (!j)
        goto no_thread;
    if (w->parked) {
        if (vk_http_detain(w->req) != 0) {
            /* Its deadline or its client ended it first: that callback frees the waiter. */
            hand_back(api, work, w->worker_id);
            vk_mem_free(j);
            pthread_mutex_lock(&api->resolve_lock);
            api->resolvers--;
            pthread_cond_broadcast(&api->resolve_cond);
            pthread_mutex_unlock(&api->resolve_lock);
            return -2;
        }
        j->detained = true;
        waiter_unlink(api, w); /* before the thread can free it */
        w->parked = false;
    } else if (vk_http_suspend(w->req, 0, NULL, NULL, NULL) != 0) {
        vk_mem_free(j);
        goto no_thread;
    } else {
        vk_http_req_ref(w->req);
    }
    j->w = w;
    j->pool = *pool; /* the chunks move; the caller must not release its pool */
    j->work = *work;
    j->auth = auth;
    snprintf(j->token, sizeof(j->token), "%s", token);
    pthread_attr_t attr;
    pthread_t t;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int prc = pthread_create(&t, &attr, resolve_main, j);
    pthread_attr_destroy(&attr);
    if (prc != 0) {
        /* Answer here after all, and complete the request as the thread would have. */
        struct vk_http_req *req = w->req;
        answer_claim(api, w, &j->work, auth ? j->token : NULL, &j->pool);
        if (j->detained)
            vk_http_detained_end(req);
        else
            vk_http_req_unref(req);
        vk_auth_wipe(j->token, sizeof(j->token));
        vk_pool_release(&j->pool);
        vk_mem_free(j);
        waiter_free(w);
        pthread_mutex_lock(&api->resolve_lock);
        api->resolvers--;
        pthread_cond_broadcast(&api->resolve_cond);
        pthread_mutex_unlock(&api->resolve_lock);
    }
    return 2;
no_thread:
    if (room) {
        pthread_mutex_lock(&api->resolve_lock);
        api->resolvers--;
        pthread_cond_broadcast(&api->resolve_cond);
        pthread_mutex_unlock(&api->resolve_lock);
    }
    return 0;
}

void vk__api_resolve_wait(struct vk_api *api)
{
    pthread_mutex_lock(&api->resolve_lock);
    api->resolve_stopping = true;
    while (api->resolvers > 0)
        pthread_cond_wait(&api->resolve_cond, &api->resolve_lock);
    pthread_mutex_unlock(&api->resolve_lock);
}

/*
 * Try to claim work for the waiter `w` and answer it. Returns 1 when the waiter was
 * answered, 2 when a resolver thread took it over (and frees it), -2 when nothing is left
 * to do for it (its own callback frees it), 0 when nothing was ready, <0 on a store error.
 * Called with api->lock held.
 */
static int serve_waiter(struct vk__api_waiter *w)
{
    struct vk_api *api = w->api;
    struct vk_pool pool;
    vk_pool_init(&pool, 8192);
    struct vk_store_work work;
    struct vk_err err;
    vk_err_clear(&err);
    /* With require_auth the claim stores the attempt's job token hash on the fragment in
     * its own statement. It is good while that attempt runs on this worker: a result, a
     * hand-back, a dead or revoked worker or a later attempt end it. */
    char token[VK_AUTH_TOKEN_MAX] = "";
    struct vk_store_credential job = {.kind = VK_AUTH_JOB};
    bool auth = api->opts.require_auth;
    snprintf(job.org_id, sizeof(job.org_id), "%s", w->org_id);
    int rc = vk_orch_claim_job(api->opts.orch, w->worker_id, (const char *const *)w->groups,
                               w->ngroups, auth ? &job : NULL, token, &pool, &work, &err);
    if (rc == VK_ENOTFOUND) {
        rc = 0;
    } else if (rc == 0) {
        /* The server masks the job token in the attempt's log too (api_mask.c). A token
         * that cannot be registered is no reason to lose the claim: the worker masks it. */
        if (auth && vk__api_mask_add(api, work.fragment.id, work.fragment.attempt, token,
                                     strlen(token)) < 0)
            vk_log_write(VK_LOG_WARN, "api", "cannot register the job token for masking",
                         "fragment_id", work.fragment.id, NULL);
        /* A provider may take seconds: never under the waiter lock, which every claim and
         * wake-up takes. */
        rc = vk__api_work_needs_providers(api, &work) ? hand_off(w, &pool, &work, auth, token) : 0;
        if (rc == 2 || rc == -2) {
            vk_auth_wipe(token, sizeof(token));
            if (rc == -2)
                vk_pool_release(&pool);
            return rc;
        }
        answer_claim(api, w, &work, auth ? token : NULL, &pool);
        rc = 1;
    } else {
        vk_log_write(VK_LOG_WARN, "api", "claim failed", "worker_id", w->worker_id, "error",
                     err.msg, NULL);
    }
    vk_auth_wipe(token, sizeof(token));
    vk_pool_release(&pool);
    return rc;
}

static void waiter_unlink(struct vk_api *api, struct vk__api_waiter *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        api->head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    else
        api->tail = w->prev;
    w->prev = w->next = NULL;
}

static void waiter_free(struct vk__api_waiter *w)
{
    for (size_t i = 0; i < w->ngroups; i++)
        vk_mem_free(w->groups[i]);
    vk_mem_free(w);
}

static bool waiter_serves(const struct vk__api_waiter *w, const char *group)
{
    for (size_t i = 0; i < w->ngroups; i++) {
        if (!group || strcmp(w->groups[i], group) == 0)
            return true;
    }
    return false;
}

void vk_api_wake(void *ctx, const char *group)
{
    struct vk_api *api = ctx;
    pthread_mutex_lock(&api->lock);
    struct vk__api_waiter *w = api->head;
    while (w) {
        struct vk__api_waiter *next = w->next;
        if (waiter_serves(w, group)) {
            int rc = serve_waiter(w);
            if (rc == 1) {
                waiter_unlink(api, w);
                waiter_free(w);
            } else if (rc == 2) {
                /* a resolver thread took it out of the list and frees it */
            } else if (rc == -2) {
                break; /* its callback is waiting for this lock to unlink and free it */
            } else if (group) {
                break; /* nothing (more) ready in this group */
            }
        }
        w = next;
    }
    pthread_mutex_unlock(&api->lock);
}

static void waiter_timeout(struct vk_http_req *req, void *ctx)
{
    struct vk__api_waiter *w = ctx;
    struct vk_api *api = w->api;
    pthread_mutex_lock(&api->lock);
    waiter_unlink(api, w);
    vk_http_reply_empty(req, 204);
    pthread_mutex_unlock(&api->lock);
    waiter_free(w);
}

static void waiter_closed(struct vk_http_req *req, void *ctx)
{
    struct vk__api_waiter *w = ctx;
    struct vk_api *api = w->api;
    pthread_mutex_lock(&api->lock);
    waiter_unlink(api, w);
    pthread_mutex_unlock(&api->lock);
    waiter_free(w);
}

/* ---------------------------------------------------------------- Handlers */

/*
 * With require_auth, whether the request's worker token is worker `id`'s: a worker speaks
 * only for itself. Answers 403 when not. Without require_auth there is no credential and
 * every caller passes (docs/security.md).
 */
static bool worker_is_caller(struct vk_http_req *req, const char *id)
{
    const struct vk_store_credential *c = vk__api_agent_cred(req);
    if (!c || strcmp(c->worker_id, id) == 0)
        return true;
    vk_http_reply_error(req, 403, "forbidden", "this worker token is not worker '%s''s", id);
    return false;
}

/*
 * With require_auth, whether the request's job token is that of `fragment_id`'s attempt
 * `attempt` claimed by `worker_id` (NULL: not checked). Answers 403 for another fragment or
 * worker, 409 for another attempt of the same fragment (a late worker whose claim was
 * handed to another).
 */
static bool job_is_caller(struct vk_http_req *req, const char *fragment_id, int64_t attempt,
                          const char *worker_id)
{
    const struct vk_store_credential *c = vk__api_agent_cred(req);
    if (!c)
        return true;
    if (strcmp(c->fragment_id, fragment_id) != 0 ||
        (worker_id && strcmp(c->worker_id, worker_id) != 0)) {
        vk_http_reply_error(req, 403, "forbidden",
                            "this job token is not for fragment '%s' on this worker", fragment_id);
        return false;
    }
    if (c->attempt != attempt) {
        vk_http_reply_error(req, 409, "stale_attempt",
                            "this job token is for attempt %d of fragment '%s', not %lld",
                            c->attempt, fragment_id, (long long)attempt);
        return false;
    }
    return true;
}

/* The worker behind a request's worker_id, answered 404/409 when it cannot work. */
static bool load_worker(struct vk_api *api, struct vk_http_req *req, const char *id,
                        struct vk_store_worker *w)
{
    if (!id || !vk_uuid_valid(id)) {
        vk_http_reply_error(req, 400, "bad_request", "'worker_id' must be a worker id");
        return false;
    }
    struct vk_err err;
    vk_err_clear(&err);
    int rc = vk_store_worker_get(api->opts.store, id, vk_http_pool(req), w, &err);
    if (rc < 0) {
        vk__api_reply_err(req, &err, rc);
        return false;
    }
    if (w->status != VK_STORE_WORKER_ALIVE) {
        vk_http_reply_error(req, 409, "worker_gone", "worker '%s' was declared %s; register again",
                            id, vk_store_worker_status_name(w->status));
        return false;
    }
    return true;
}

static void h_register(struct vk_http_req *req, void *ctx)
{
    struct vk_api *api = ctx;
    json_t *body = vk_http_json(req);
    const char *groups[VK_STORE_MAX_GROUPS];
    size_t n = 0;
    json_t *list = json_object_get(body, "machine_groups");
    if (json_is_array(list)) {
        size_t i;
        json_t *v;
        json_array_foreach(list, i, v)
        {
            if (!json_is_string(v) || json_string_length(v) == 0 ||
                json_string_length(v) > MAX_NAME) {
                vk_http_reply_error(req, 400, "bad_request",
                                    "'machine_groups' must hold non-empty names");
                return;
            }
            if (n == VK_STORE_MAX_GROUPS) {
                vk_http_reply_error(req, 400, "bad_request",
                                    "a worker serves at most %d machine groups",
                                    VK_STORE_MAX_GROUPS);
                return;
            }
            groups[n++] = json_string_value(v);
        }
    }
    const char *one = vk__api_get_str(body, "machine_group");
    if (n == 0 && one && *one && strlen(one) <= MAX_NAME)
        groups[n++] = one;
    if (n == 0) {
        vk_http_reply_error(req, 400, "bad_request", "'machine_group' is required");
        return;
    }
    const char *name = vk__api_get_str(body, "name");
    const char *version = vk__api_get_str(body, "version");
    if ((name && strlen(name) > MAX_NAME) || (version && strlen(version) > MAX_NAME)) {
        vk_http_reply_error(req, 400, "bad_request", "'name' and 'version' are too long");
        return;
    }
    char id[VK_UUID_LEN];
    struct vk_err err;
    vk_err_clear(&err);
    const struct vk_store_credential *reg = vk__api_agent_cred(req);
    const char *org = vk_orch_default_tenant(api->opts.orch);
    if (reg) {
        for (size_t i = 0; i < n; i++) {
            if (!vk__api_group_allowed(reg->groups, groups[i])) {
                vk_http_reply_error(req, 403, "forbidden",
                                    "this registration token does not allow machine group "
                                    "'%s' (it allows: %s)",
                                    groups[i], reg->groups);
                return;
            }
        }
        int rc = vk_store_registration_use(api->opts.store, reg->id, &err);
        if (rc == VK_EAUTH || rc == VK_ENOTFOUND) {
            vk_http_reply_error(req, 401, "unauthenticated", "%s", err.msg);
            return;
        }
        if (rc < 0) {
            vk__api_reply_err(req, &err, rc);
            return;
        }
        org = reg->org_id;
    }
    int rc =
        vk_store_worker_register(api->opts.store, org, name ? name : "worker",
                                 version ? version : "", groups, n, vk_time_now_ms(), id, &err);
    /* The worker's own token, for every later call; shown once, only its hash is kept. */
    char token[VK_AUTH_TOKEN_MAX] = "";
    if (rc == 0 && reg) {
        struct vk_store_credential c = {.kind = VK_AUTH_WORKER, .name = name};
        memcpy(c.worker_id, id, VK_UUID_LEN);
        snprintf(c.org_id, sizeof(c.org_id), "%s", org);
        rc = vk_auth_token_new(VK_AUTH_WORKER, token, c.hash) < 0
                 ? vk_err_set(&err, VK_EIO, "the random generator failed")
                 : vk_store_credential_create(api->opts.store, &c, &err);
        if (rc < 0 && vk_store_worker_stop(api->opts.store, id, NULL) < 0)
            vk_log_write(VK_LOG_WARN, "api", "cannot stop a worker without a token", "worker_id",
                         id, NULL);
    }
    if (rc < 0) {
        vk_auth_wipe(token, sizeof(token));
        vk__api_reply_err(req, &err, rc);
        return;
    }
    char fp[VK_AUTH_FP_MAX] = "";
    if (reg)
        vk_auth_fingerprint(VK_AUTH_REGISTRATION, reg->hash, fp);
    vk_log_write(VK_LOG_INFO, "api", "worker registered", "worker_id", id, "name", name,
                 "machine_group", groups[0], "registration_token", reg ? fp : NULL, NULL);
    json_t *o = json_pack("{s:s, s:i}", "worker_id", id, "heartbeat_interval_s",
                          api->opts.heartbeat_interval_s);
    if (o && reg && json_object_set_new(o, "worker_token", json_string(token)) < 0) {
        json_decref(o);
        o = NULL;
    }
    vk_auth_wipe(token, sizeof(token));
    vk_http_reply_json(req, 200, o);
}

static void h_heartbeat(struct vk_http_req *req, void *ctx)
{
    struct vk_api *api = ctx;
    const char *id = vk__api_get_str(vk_http_json(req), "worker_id");
    if (!id || !vk_uuid_valid(id)) {
        vk_http_reply_error(req, 400, "bad_request", "'worker_id' must be a worker id");
        return;
    }
    if (!worker_is_caller(req, id))
        return;
    const char **cancel = NULL;
    size_t n = 0;
    struct vk_err err;
    vk_err_clear(&err);
    int64_t now = vk_time_now_ms();
    int rc =
        vk_store_worker_heartbeat(api->opts.store, id, now, vk_http_pool(req), &cancel, &n, &err);
    if (rc < 0) {
        vk__api_reply_err(req, &err, rc);
        return;
    }
    /* A worker that lists what it runs lets the server find claims whose reply never
     * reached it (the server died between commit and reply): those are handed back.
     * Claims younger than the grace may still be on their way and are left alone. */
    json_t *running = json_object_get(vk_http_json(req), "running");
    if (json_is_array(running) && json_array_size(running) <= 256) {
        const char *ids[256];
        size_t nr = 0, i;
        json_t *v;
        json_array_foreach(running, i, v)
        {
            if (json_is_string(v))
                ids[nr++] = json_string_value(v);
        }
        int64_t grace = 3 * 1000 * (int64_t)api->opts.heartbeat_interval_s;
        if (grace < 10000)
            grace = 10000;
        size_t requeued = 0;
        if (vk_store_worker_reconcile(api->opts.store, id, ids, nr, now - grace, now, &requeued,
                                      &err) < 0)
            vk_log_write(VK_LOG_WARN, "api", "cannot reconcile a worker's fragments", "worker_id",
                         id, "error", err.msg, NULL);
        else if (requeued)
            vk_log_write(VK_LOG_WARN, "api", "re-queued fragments a worker never received",
                         "worker_id", id, NULL);
    }
    vk_http_reply_json(req, 200,
                       json_pack("{s:s, s:o, s:o}", "status", "ok", "timestamp", vk__api_time(now),
                                 "cancel", vk__api_str_array(cancel, n)));
}

static void h_deregister(struct vk_http_req *req, void *ctx)
{
    struct vk_api *api = ctx;
    const char *id = vk__api_get_str(vk_http_json(req), "worker_id");
    if (!id || !vk_uuid_valid(id)) {
        vk_http_reply_error(req, 400, "bad_request", "'worker_id' must be a worker id");
        return;
    }
    if (!worker_is_caller(req, id))
        return;
    struct vk_err err;
    vk_err_clear(&err);
    int rc = vk_store_worker_stop(api->opts.store, id, &err);
    /* A worker that left needs none of its credentials any more. */
    if (rc == 0 && vk__api_agent_cred(req))
        rc = vk_store_credential_revoke_for(api->opts.store, NULL, id, vk_time_now_ms(), &err);
    if (rc < 0) {
        vk__api_reply_err(req, &err, rc);
        return;
    }
    vk_log_write(VK_LOG_INFO, "api", "worker said goodbye", "worker_id", id, NULL);
    vk_http_reply_empty(req, 204);
}

static void h_work_request(struct vk_http_req *req, void *ctx)
{
    struct vk_api *api = ctx;
    json_t *body = vk_http_json(req);
    struct vk_store_worker worker;
    const char *wid = vk__api_get_str(body, "worker_id");
    if (wid && vk_uuid_valid(wid) && !worker_is_caller(req, wid))
        return;
    if (!load_worker(api, req, wid, &worker))
        return;
    json_t *ws = json_object_get(body, "wait_s");
    int64_t wait_s = json_is_integer(ws) ? json_integer_value(ws) : 30;
    if (wait_s < 0)
        wait_s = 0;
    if (wait_s > api->opts.max_wait_s)
        wait_s = api->opts.max_wait_s;

    struct vk__api_waiter *w = vk_mem_calloc(1, sizeof(*w));
    if (!w) {
        vk_http_reply_error(req, 503, "unavailable", "out of memory");
        return;
    }
    w->api = api;
    w->req = req;
    snprintf(w->worker_id, sizeof(w->worker_id), "%s", worker.id);
    snprintf(w->org_id, sizeof(w->org_id), "%s",
             worker.tenant_id[0] ? worker.tenant_id : vk_orch_default_tenant(api->opts.orch));
    for (size_t i = 0; i < worker.ngroups && i < VK_STORE_MAX_GROUPS; i++)
        w->groups[w->ngroups++] = vk_mem_xstrdup(worker.groups[i]);

    pthread_mutex_lock(&api->lock);
    int rc = serve_waiter(w);
    if (rc == 2) { /* a resolver thread answers it, and frees the waiter */
        pthread_mutex_unlock(&api->lock);
        return;
    }
    if (rc != 0 || wait_s == 0) {
        if (rc == 0)
            vk_http_reply_empty(req, 204);
        else if (rc < 0)
            vk_http_reply_error(req, 503, "unavailable", "cannot claim work now");
        pthread_mutex_unlock(&api->lock);
        waiter_free(w);
        return;
    }
    /* Nothing ready: wait. Suspending under the lock means a wake cannot slip in
     * between the failed claim and the waiter joining the list. */
    if (vk_http_suspend(req, wait_s * 1000, waiter_timeout, waiter_closed, w) != 0) {
        vk_http_reply_empty(req, 204);
        pthread_mutex_unlock(&api->lock);
        waiter_free(w);
        return;
    }
    w->parked = true;
    w->prev = api->tail;
    if (api->tail)
        api->tail->next = w;
    else
        api->head = w;
    api->tail = w;
    pthread_mutex_unlock(&api->lock);
}

/* Attempts past this are not real: a cast of 4294967297 to int must never become 1. */
#define MAX_ATTEMPT 1000000
#define MAX_LOG_OFFSET (INT64_C(1) << 40)

/* Query parameter `name` as an integer in 0..max; answers 400 when it is not one. */
static bool parse_int_query(struct vk_http_req *req, const char *name, int64_t max, int64_t *out,
                            bool required)
{
    const char *s = vk_http_query(req, name);
    if (!s) {
        if (required)
            vk_http_reply_error(req, 400, "bad_request", "query parameter '%s' is required", name);
        *out = 0;
        return !required;
    }
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || v < 0 || errno == ERANGE || v > max) {
        vk_http_reply_error(req, 400, "bad_request", "'%s' must be an integer from 0 to %lld", name,
                            (long long)max);
        return false;
    }
    *out = v;
    return true;
}

static void h_log_append(struct vk_http_req *req, void *ctx)
{
    struct vk_api *api = ctx;
    const char *id = vk_http_param(req, "id");
    int64_t attempt, offset;
    if (!id || !vk_uuid_valid(id)) {
        vk_http_reply_error(req, 404, "not_found", "no fragment '%s'", id ? id : "");
        return;
    }
    if (!parse_int_query(req, "attempt", MAX_ATTEMPT, &attempt, true) ||
        !parse_int_query(req, "offset", MAX_LOG_OFFSET, &offset, false) ||
        !job_is_caller(req, id, attempt, NULL))
        return;
    size_t len;
    const char *body = vk_http_body(req, &len);
    struct vk_err err;
    vk_err_clear(&err);
    /* The server keeps its own cap whatever a worker sends (issue 14 item 4): the bytes up
     * to it are stored, then one notice; anything past it is refused with 413. */
    int64_t cap = api->opts.max_log_bytes > 0 ? api->opts.max_log_bytes : VK_API_DEFAULT_MAX_LOG;
    if (offset >= cap) {
        vk_http_reply_error(req, 413, "log_too_large",
                            "the log of this attempt is capped at %lld bytes by the server",
                            (long long)cap);
        return;
    }
    bool cut = (int64_t)len > cap - offset;
    if (cut)
        len = (size_t)(cap - offset);
    /* Masked on ingest (api_mask.c), before it is stored and before followers read it. The
     * cap counts the worker's bytes; the stored log is never longer than those. */
    int64_t taken = 0;
    int rc = vk__api_mask_append(api, id, (int)attempt, offset, body, len, &taken, &err);
    if (rc == 0 && cut && taken == cap) {
        char note[160];
        int n = snprintf(note, sizeof(note),
                         "\n[vulcan] log truncated by the server at %lld bytes (its cap)\n",
                         (long long)cap);
        rc = vk__api_mask_append(api, id, (int)attempt, cap, note, (size_t)n, NULL, &err);
    }
    if (rc < 0) {
        vk__api_reply_err(req, &err, rc);
        return;
    }
    if (cut) {
        vk_http_reply_error(req, 413, "log_too_large",
                            "the log of this attempt is capped at %lld bytes by the server; the "
                            "rest was dropped",
                            (long long)cap);
        return;
    }
    vk_http_reply_empty(req, 204);
}

/* A result's `outputs`: an object of at most VK_OUTPUTS_MAX_COUNT names of
 * [A-Za-z_][A-Za-z0-9_]*, string values without NUL of at most VK_OUTPUTS_MAX_VALUE bytes,
 * VK_OUTPUTS_MAX_BYTES in all. */
static bool outputs_ok(json_t *o, char *why, size_t n)
{
    if (!json_is_object(o)) {
        snprintf(why, n, "'outputs' must be an object of NAME: \"VALUE\"");
        return false;
    }
    if (json_object_size(o) > VK_OUTPUTS_MAX_COUNT) {
        snprintf(why, n, "'outputs' has more than %d names", VK_OUTPUTS_MAX_COUNT);
        return false;
    }
    size_t total = 0;
    const char *k;
    json_t *v;
    json_object_foreach(o, k, v)
    {
        if (!vk_output_name_ok(k, strlen(k))) {
            snprintf(why, n, "output name '%.64s' is not [A-Za-z_][A-Za-z0-9_]* (at most %d bytes)",
                     k, VK_OUTPUTS_MAX_NAME);
            return false;
        }
        if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v)) {
            snprintf(why, n, "output '%s' must be a string without NUL bytes", k);
            return false;
        }
        if (json_string_length(v) > VK_OUTPUTS_MAX_VALUE) {
            snprintf(why, n, "output '%s' holds more than %u KiB", k, VK_OUTPUTS_MAX_VALUE >> 10);
            return false;
        }
        total += strlen(k) + json_string_length(v);
    }
    if (total > VK_OUTPUTS_MAX_BYTES) {
        snprintf(why, n, "'outputs' hold more than %u KiB in all", VK_OUTPUTS_MAX_BYTES >> 10);
        return false;
    }
    return true;
}

static void h_result(struct vk_http_req *req, void *ctx)
{
    struct vk_api *api = ctx;
    json_t *body = vk_http_json(req);
    const char *wid = vk__api_get_str(body, "worker_id");
    const char *fid = vk__api_get_str(body, "fragment_id");
    json_t *att = json_object_get(body, "attempt");
    if (!wid || !vk_uuid_valid(wid) || !fid || !vk_uuid_valid(fid) || !json_is_integer(att)) {
        vk_http_reply_error(req, 400, "bad_request",
                            "'worker_id', 'fragment_id' and 'attempt' are required");
        return;
    }
    json_t *ec = json_object_get(body, "exit_code");
    if (json_integer_value(att) < 1 || json_integer_value(att) > MAX_ATTEMPT ||
        (json_is_integer(ec) &&
         (json_integer_value(ec) < INT32_MIN || json_integer_value(ec) > INT32_MAX))) {
        vk_http_reply_error(req, 400, "bad_request",
                            "'attempt' must be from 1 to %d and 'exit_code' a 32-bit integer",
                            MAX_ATTEMPT);
        return;
    }
    if (!job_is_caller(req, fid, json_integer_value(att), wid))
        return;
    /* Outputs: a worker is hostile like any client; checked again here (names, sizes, NUL). */
    json_t *outputs = json_object_get(body, "outputs");
    char bad_out[200];
    if (outputs && !json_is_null(outputs) && !outputs_ok(outputs, bad_out, sizeof(bad_out))) {
        vk_http_reply_error(req, 400, "bad_outputs", "%s", bad_out);
        return;
    }
    struct vk_err err;
    vk_err_clear(&err);
    int rc;
    /* The attempt's log is complete: what the masker holds back is stored before the final
     * status is, so a follower that sees the status has the whole log. The outputs are
     * masked with the attempt's secrets before they are stored. */
    json_t *masked = json_is_object(outputs) ? json_deep_copy(outputs) : NULL;
    vk__api_mask_end_outputs(api, fid, (int)json_integer_value(att), masked);
    if (json_is_true(json_object_get(body, "handback"))) {
        rc = vk_store_requeue_fragment(api->opts.store, fid, (int)json_integer_value(att), wid,
                                       vk_time_now_ms(), &err);
        if (rc < 0) {
            vk__api_reply_err(req, &err, rc);
            return;
        }
        vk_log_write(VK_LOG_INFO, "api", "fragment handed back", "fragment_id", fid, "worker_id",
                     wid, NULL);
        vk_api_wake(api, NULL);
        vk_http_reply_json(req, 200, json_pack("{s:s}", "fragment_status", "ready"));
        return;
    }
    char *otext = masked && json_object_size(masked) ? json_dumps(masked, JSON_COMPACT) : NULL;
    json_decref(masked);
    rc = vk_store_fragment_set_outputs(api->opts.store, fid, (int)json_integer_value(att), wid,
                                       otext, &err);
    free(otext);
    if (rc < 0 && rc != VK_ECONFLICT) {
        vk__api_reply_err(req, &err, rc);
        return;
    }
    /* Not that running attempt: nothing was stored, and the result below says why
     * (404, 409) as it always did. */
    vk_err_clear(&err);
    const char *msg = vk__api_get_str(body, "error_message");
    struct vk_orch_result r = {
        .worker_id = wid,
        .fragment_id = fid,
        .attempt = (int)json_integer_value(att),
        .success = json_is_true(json_object_get(body, "success")),
        .has_exit_code = json_is_integer(ec),
        .exit_code = json_is_integer(ec) ? (int)json_integer_value(ec) : 0,
        .error = msg && *msg ? msg : NULL,
    };
    enum vk_store_frag_status st;
    rc = vk_orch_result(api->opts.orch, &r, &st, &err);
    if (rc < 0) {
        vk__api_reply_err(req, &err, rc);
        return;
    }
    /* The worker sends the traceparent of its claim's dispatch span. */
    const char *tph = vk_http_traceparent(req);
    struct vk_trace_ctx tc;
    char tid[VK_TRACE_ID_HEX_LEN] = "", sid[VK_SPAN_ID_HEX_LEN] = "";
    if (tph && vk_trace_parent_parse(tph, strlen(tph), &tc) == 0) {
        vk_trace_id_hex(tc.trace_id, tid);
        vk_trace_span_id_hex(tc.span_id, sid);
    }
    vk_log_write(VK_LOG_INFO, "api", "fragment result", "fragment_id", fid, "worker_id", wid,
                 "fragment_status", vk_store_frag_status_name(st), "trace_id", tid[0] ? tid : NULL,
                 "span_id", sid[0] ? sid : NULL, NULL);
    vk_http_reply_json(req, 200,
                       json_pack("{s:s}", "fragment_status", vk_store_frag_status_name(st)));
}

static void h_busy(struct vk_http_req *req, void *ctx)
{
    struct vk_api *api = ctx;
    const char *id = vk_http_param(req, "id");
    if (id && vk_uuid_valid(id) && !worker_is_caller(req, id))
        return;
    struct vk_store_worker w;
    struct vk_err err;
    vk_err_clear(&err);
    int rc = id && vk_uuid_valid(id)
                 ? vk_store_worker_get(api->opts.store, id, vk_http_pool(req), &w, &err)
                 : vk_err_set(&err, VK_ENOTFOUND, "no worker '%s'", id ? id : "");
    if (rc < 0) {
        vk__api_reply_err(req, &err, rc);
        return;
    }
    bool busy = w.current_fragment_id[0] != '\0';
    vk_http_reply_json(req, 200,
                       json_pack("{s:b, s:o}", "busy", busy, "fragment_id",
                                 busy ? json_string(w.current_fragment_id) : json_null()));
}

static void h_queue_metrics(struct vk_http_req *req, void *ctx)
{
    struct vk_api *api = ctx;
    const char *group = vk_http_query(req, "machine_group");
    struct vk_store_queue_metrics m;
    struct vk_err err;
    vk_err_clear(&err);
    int rc = vk_store_queue_metrics(api->opts.store, group && *group ? group : NULL, &m, &err);
    if (rc < 0) {
        vk__api_reply_err(req, &err, rc);
        return;
    }
    vk_http_reply_json(req, 200,
                       json_pack("{s:I, s:I, s:I, s:I}", "pending_fragments",
                                 (json_int_t)(m.pending + m.ready), "ready_fragments",
                                 (json_int_t)m.ready, "running_fragments", (json_int_t)m.running,
                                 "active_workers", (json_int_t)m.workers_alive));
}

static void h_workers(struct vk_http_req *req, void *ctx)
{
    struct vk_api *api = ctx;
    struct vk_store_worker *ws = NULL;
    size_t n = 0;
    struct vk_err err;
    vk_err_clear(&err);
    int rc = vk_store_worker_list(api->opts.store, vk_http_pool(req), &ws, &n, &err);
    if (rc < 0) {
        vk__api_reply_err(req, &err, rc);
        return;
    }
    json_t *arr = json_array();
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *groups = vk__api_str_array(ws[i].groups, ws[i].ngroups);
        bad |= json_array_append_new(
            arr, json_pack("{s:s, s:s?, s:s?, s:o, s:s, s:o, s:o, s:o}", "id", ws[i].id, "name",
                           ws[i].name, "version", ws[i].version, "machine_groups", groups, "status",
                           vk_store_worker_status_name(ws[i].status), "last_heartbeat",
                           vk__api_time(ws[i].last_heartbeat), "registered_at",
                           vk__api_time(ws[i].registered_at), "current_fragment_id",
                           ws[i].current_fragment_id[0] ? json_string(ws[i].current_fragment_id)
                                                        : json_null()));
    }
    vk_http_reply_json(req, 200, vk_http_json_checked(json_pack("{s:o}", "workers", arr), bad));
}

/*
 * POST /api/v1/workers/{id}/revoke (admin): the worker's token and its running attempt's
 * job token stop working at once, its fragment is handed to another worker (not counted as
 * an attempt), and the worker, refused at its next call, exits.
 */
static void h_revoke(struct vk_http_req *req, void *ctx)
{
    struct vk_api *api = ctx;
    const char *id = vk_http_param(req, "id");
    struct vk_store_worker w;
    struct vk_err err;
    vk_err_clear(&err);
    int rc = id && vk_uuid_valid(id)
                 ? vk_store_worker_get(api->opts.store, id, vk_http_pool(req), &w, &err)
                 : vk_err_set(&err, VK_ENOTFOUND, "no worker '%s'", id ? id : "");
    if (rc == 0)
        rc = vk_store_credential_revoke_for(api->opts.store, w.current_fragment_id, w.id,
                                            vk_time_now_ms(), &err);
    if (rc == 0 && w.status == VK_STORE_WORKER_ALIVE)
        rc = vk_store_worker_stop(api->opts.store, w.id, &err);
    if (rc < 0) {
        vk__api_reply_err(req, &err, rc);
        return;
    }
    const struct vk__api_principal *p = vk_http_req_principal(req);
    vk_log_write(VK_LOG_WARN, "api", "worker revoked", "worker_id", w.id, "by",
                 p && p->login ? p->login : NULL, "fragment_id",
                 w.current_fragment_id[0] ? w.current_fragment_id : NULL, NULL);
    vk_api_wake(api, NULL);
    vk_http_reply_json(
        req, 200,
        json_pack("{s:s, s:s, s:o}", "worker_id", w.id, "status", "stopped", "requeued_fragment_id",
                  w.current_fragment_id[0] ? json_string(w.current_fragment_id) : json_null()));
}

int vk__api_worker_routes(struct vk_api *api, struct vk_err *err)
{
    const struct vk_http_route_opts json = {.max_body = 64 * 1024, .json = true};
    const struct vk_http_route_opts raw = {.max_body = VK_STORE_MAX_LOG_CHUNK};
    const struct vk_http_route_opts small = {.max_body = 4096};
    /* A result carries the attempt's outputs: VK_OUTPUTS_MAX_BYTES, 6 times over when every
     * byte is a \u escape, and the rest of the result. */
    const struct vk_http_route_opts result = {.max_body = 6 * VK_OUTPUTS_MAX_BYTES + 64 * 1024,
                                              .json = true};
    struct {
        const char *method, *pattern;
        vk_http_handler_fn fn;
        const struct vk_http_route_opts *opts;
    } routes[] = {
        {"POST", "/api/v1/workers/register", h_register, &json},
        {"POST", "/api/v1/workers/heartbeat", h_heartbeat, &json},
        {"POST", "/api/v1/workers/deregister", h_deregister, &json},
        {"POST", "/api/v1/work/request", h_work_request, &json},
        {"POST", "/api/v1/work/{id}/log", h_log_append, &raw},
        {"POST", "/api/v1/work/result", h_result, &result},
        {"GET", "/api/v1/workers/{id}/busy", h_busy, NULL},
        {"POST", "/api/v1/workers/{id}/revoke", h_revoke, &small},
        {"GET", "/api/v1/workers", h_workers, NULL},
        {"GET", "/api/v1/queue/metrics", h_queue_metrics, NULL},
    };
    for (size_t i = 0; i < VK_ARRAY_LEN(routes); i++) {
        int rc = vk_http_route(api->http, routes[i].method, routes[i].pattern, routes[i].fn, api,
                               routes[i].opts, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}
