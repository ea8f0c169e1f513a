/*
 * service.c — the trigger service's lifecycle and request threads.
 *
 * A request thread claims the oldest queued trigger request of the store (from this
 * process or any other replica), hands it to the handler of its kind, and records the
 * outcome (an HTTP status and a JSON body) fenced by its claim; then the done hook tells
 * this process's HTTP layer, which answers the client still waiting for it. An idle
 * thread sleeps until vk_triggers_wake() (a request queued in this process) or, at the
 * latest, opts.poll_ms (requests queued by other replicas).
 *
 * Failures: a store error leaves the request running; once its claim is older than
 * VK_TRIGGERS_STALE_MS, or the replica that claimed it stopped renewing its liveness
 * lease (killed: vk_orch_replica()), any thread of any replica takes it over (chains it made
 * already are not made again: vk_orch_context.trigger_request_id). A request claimed
 * VK_TRIGGERS_MAX_ATTEMPTS times is given up with a 500. A webhook that failed forgets its delivery
 * id, so that the provider's redelivery is handled.
 */
#include "service_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PRUNE_EVERY_MS (10 * 60 * 1000)

int64_t vk__trig_now(struct vk_triggers_service *svc)
{
    return svc->opts.now_fn ? svc->opts.now_fn(svc->opts.now_ctx) : vk_time_now_ms();
}

/* ---------------------------------------------------------------- Outcomes */

int vk__trig_refuse(int status, const char *name, const char *msg, int *out_status, json_t **result)
{
    *out_status = status;
    *result = json_pack("{s:s, s:s}", "error", name, "message", msg ? msg : "");
    return *result ? 0 : VK_ENOMEM;
}

int vk__trig_error(const struct vk_err *e, int code, int *status, json_t **result)
{
    const char *name = NULL;
    int st = vk_err_http(code, &name);
    return vk__trig_refuse(st, name, e && e->msg[0] ? e->msg : vk_err_name(code), status, result);
}

int vk__trig_git_error(const struct vk_err *e, int code, const char *request_id, int *status,
                       json_t **result)
{
    if (code == VK_EDB || code == VK_ENOMEM)
        return code; /* not the repository's fault: handled again later */
    const char *msg = e && e->msg[0] ? e->msg : vk_err_name(code);
    if (code == VK_EPERM) /* the URL policy's own words: nothing fetched is in them */
        return vk__trig_refuse(403, "url_not_allowed", msg, status, result);
    /* What git or the remote said stays in the server log: an internal service's answer
     * (tokens, bodies) or the difference between an open and a closed port must not
     * reach the caller. */
    vk_log_write(VK_LOG_WARN, "triggers", "cannot fetch the repository", "request_id",
                 request_id ? request_id : "", "error", msg, NULL);
    char fixed[160];
    snprintf(fixed, sizeof(fixed), "cannot fetch the repository: see the server log, request id %s",
             request_id ? request_id : "-");
    return vk__trig_refuse(502, "git_error", fixed, status, result);
}

/* ---------------------------------------------------------------- Handling one request */

static vk__trig_handler_fn handler_of(enum vk_store_treq_kind k)
{
    switch (k) {
    case VK_STORE_TREQ_WEBHOOK:
        return vk__trig_webhook;
    case VK_STORE_TREQ_MANUAL:
        return vk__trig_manual;
    case VK_STORE_TREQ_WORKFLOWS:
        return vk__trig_workflows;
    case VK_STORE_TREQ_REFRESH:
        return vk__trig_refresh;
    case VK_STORE_TREQ_FOLLOW:
        return vk__trig_follow;
    }
    return NULL;
}

/*
 * Claim one request and handle it. Returns 0 when one was handled, VK_ENOTFOUND when
 * there was none, or a store error.
 */
static int handle_next(struct vk_triggers_service *svc, const char *claimer, struct vk_err *err)
{
    struct vk_pool pool;
    vk_pool_init(&pool, 0);
    struct vk_store_treq rq;
    int64_t now = vk_time_now_ms();
    int rc = vk_store_treq_claim(svc->opts.store, claimer, vk_orch_replica(svc->opts.orch), now,
                                 now - VK_TRIGGERS_STALE_MS, &pool, &rq, err);
    if (rc) {
        vk_pool_release(&pool);
        return rc;
    }
    int status = 500;
    json_t *result = NULL;
    struct vk_err herr;
    vk_err_clear(&herr);
    vk__trig_handler_fn fn = handler_of(rq.kind);
    if (rq.attempts > VK_TRIGGERS_MAX_ATTEMPTS) {
        rc = vk__trig_refuse(500, "internal", "the trigger request failed too often; see the log",
                             &status, &result);
    } else if (!fn) {
        rc = vk__trig_refuse(500, "internal", "unknown trigger request", &status, &result);
    } else {
        rc = fn(svc, &rq, &status, &result, &herr);
        if (rc == VK_EDB) { /* leave it claimed: taken over once stale */
            vk_log_write(VK_LOG_WARN, "triggers", "trigger request interrupted", "request_id",
                         rq.id, "error", herr.msg, NULL);
            json_decref(result);
            vk_pool_release(&pool);
            return vk_err_set(err, rc, "%s", herr.msg);
        }
        if (rc) {
            json_decref(result);
            result = NULL;
            vk_log_write(VK_LOG_ERROR, "triggers", "trigger request failed", "request_id", rq.id,
                         "kind", vk_store_treq_kind_name(rq.kind), "error",
                         herr.msg[0] ? herr.msg : vk_err_name(rc), NULL);
            rc = vk__trig_error(&herr, rc, &status, &result);
        }
    }
    char *text = result ? json_dumps(result, JSON_COMPACT) : NULL;
    json_decref(result);
    const char *outcome = text;
    if (!outcome) {
        status = 500;
        outcome = "{\"error\":\"internal\",\"message\":\"out of memory\"}";
    }
    if (status >= 500 && rq.kind == VK_STORE_TREQ_WEBHOOK && rq.delivery_id) {
        /* let the provider's redelivery be handled */
        struct vk_err e2;
        if (vk_store_delivery_forget(svc->opts.store, rq.provider, rq.delivery_id, &e2) != 0)
            vk_log_write(VK_LOG_WARN, "triggers", "cannot forget a failed delivery", "error",
                         e2.msg, NULL);
    }
    rc = vk_store_treq_finish(svc->opts.store, rq.id, claimer, status, outcome, vk_time_now_ms(),
                              err);
    if (rc == 0 && svc->opts.on_done)
        svc->opts.on_done(svc->opts.on_done_ctx, rq.id, status, outcome);
    else if (rc == VK_ECONFLICT) /* taken over meanwhile: the other handler's outcome wins */
        rc = 0;
    free(text);
    vk_pool_release(&pool);
    return rc;
}

int vk_triggers_run_pending(struct vk_triggers_service *svc, size_t *n, struct vk_err *err)
{
    size_t done = 0;
    char claimer[VK_UUID_LEN + 16];
    snprintf(claimer, sizeof(claimer), "%s-run", svc->instance);
    int rc;
    while ((rc = handle_next(svc, claimer, err)) == 0)
        done++;
    if (n)
        *n = done;
    return rc == VK_ENOTFOUND ? 0 : rc;
}

/* ---------------------------------------------------------------- Threads */

struct thread_arg {
    struct vk_triggers_service *svc;
    unsigned index;
};

/* Sleep until woken, stopping, or `ms` passed. Returns false when stopping. */
static bool idle(struct vk_triggers_service *svc, int64_t ms)
{
    struct timespec ts = vk_time_deadline(ms);
    pthread_mutex_lock(&svc->lock);
    while (!svc->stopping && svc->wakes == 0) {
        if (pthread_cond_timedwait(&svc->cond, &svc->lock, &ts) == ETIMEDOUT)
            break;
    }
    if (svc->wakes > 0)
        svc->wakes--;
    bool go_on = !svc->stopping;
    pthread_mutex_unlock(&svc->lock);
    return go_on;
}

static void prune_now_and_then(struct vk_triggers_service *svc)
{
    int64_t now = vk_time_now_ms();
    pthread_mutex_lock(&svc->lock);
    bool due = now >= svc->next_prune;
    if (due)
        svc->next_prune = now + PRUNE_EVERY_MS;
    pthread_mutex_unlock(&svc->lock);
    if (!due)
        return;
    struct vk_err err;
    vk_err_clear(&err);
    if (vk_store_treq_prune(svc->opts.store, now - VK_STORE_TREQ_KEEP_MS, NULL, &err) != 0)
        vk_log_write(VK_LOG_WARN, "triggers", "cannot prune old trigger requests", "error", err.msg,
                     NULL);
}

static void *request_main(void *p)
{
    struct thread_arg *a = p;
    struct vk_triggers_service *svc = a->svc;
    char claimer[VK_UUID_LEN + 16];
    snprintf(claimer, sizeof(claimer), "%s-%u", svc->instance, a->index);
    vk_mem_free(a);
    int64_t poll = svc->opts.poll_ms > 0 ? svc->opts.poll_ms : VK_TRIGGERS_DEFAULT_POLL_MS;
    for (;;) {
        pthread_mutex_lock(&svc->lock);
        bool stop = svc->stopping;
        pthread_mutex_unlock(&svc->lock);
        if (stop)
            break;
        struct vk_err err;
        vk_err_clear(&err);
        int rc = handle_next(svc, claimer, &err);
        if (rc == 0)
            continue; /* there may be more */
        if (rc != VK_ENOTFOUND) {
            vk_log_write(VK_LOG_WARN, "triggers", "cannot take trigger requests", "error", err.msg,
                         NULL);
            if (!idle(svc, 1000))
                break;
            continue;
        }
        prune_now_and_then(svc);
        if (!idle(svc, poll))
            break;
    }
    return NULL;
}

/* ---------------------------------------------------------------- Lifecycle */

int vk_triggers_service_new(const struct vk_triggers_opts *opts, struct vk_triggers_service **out,
                            struct vk_err *err)
{
    *out = NULL;
    if (!opts || !opts->store || !opts->orch)
        return vk_err_set(err, VK_EINVAL, "the trigger service needs a store and an orchestrator");
    const char *data = opts->data_dir && *opts->data_dir ? opts->data_dir : "./vulcan-data";
    struct vk_triggers_service *svc = vk_mem_calloc(1, sizeof(*svc));
    if (!svc)
        return vk_err_set(err, VK_ENOMEM, "out of memory");
    svc->opts = *opts;
    svc->opts.data_dir = NULL; /* copied into mirrors */
    if ((size_t)snprintf(svc->mirrors, sizeof(svc->mirrors), "%s/mirrors", data) >=
        sizeof(svc->mirrors)) {
        vk_mem_free(svc);
        return vk_err_set(err, VK_EINVAL, "data directory path too long");
    }
    if (vk_uuid_v4(svc->instance) != 0) {
        vk_mem_free(svc);
        return vk_err_set(err, VK_EIO, "cannot make an id");
    }
    if (opts->metrics && vk_metrics_std_register(opts->metrics, &svc->m, err) != 0) {
        vk_mem_free(svc);
        return VK_EINVAL;
    }
    pthread_mutex_init(&svc->lock, NULL);
    vk_time_cond_init(&svc->cond);
    svc->refresh_all = true;
    vk_triggers_set_public_url(svc, opts->public_url);
    svc->opts.public_url = NULL; /* copied into public_url */
    *out = svc;
    return 0;
}

void vk_triggers_set_done_hook(struct vk_triggers_service *svc, vk_triggers_done_fn fn, void *ctx)
{
    svc->opts.on_done = fn;
    svc->opts.on_done_ctx = ctx;
}

int vk_triggers_service_start(struct vk_triggers_service *svc, struct vk_err *err)
{
    if (svc->started)
        return vk_err_set(err, VK_EINVAL, "the trigger service runs already");
    unsigned n = svc->opts.threads ? svc->opts.threads : VK_TRIGGERS_DEFAULT_THREADS;
    svc->threads = vk_mem_calloc(n, sizeof(*svc->threads));
    if (!svc->threads)
        return vk_err_set(err, VK_ENOMEM, "out of memory");
    svc->started = true;
    for (unsigned i = 0; i < n; i++) {
        struct thread_arg *a = vk_mem_xcalloc(1, sizeof(*a));
        a->svc = svc;
        a->index = i;
        if (pthread_create(&svc->threads[i], NULL, request_main, a) != 0) {
            vk_mem_free(a);
            vk_triggers_service_stop(svc);
            return vk_err_set(err, VK_EIO, "cannot start a trigger service thread");
        }
        svc->nthreads++;
    }
    int rc = vk__trig_cron_start(svc, err);
    if (rc == 0)
        rc = vk__trig_status_start(svc, err);
    if (rc)
        vk_triggers_service_stop(svc);
    return rc;
}

void vk_triggers_wake(struct vk_triggers_service *svc)
{
    if (!svc)
        return;
    pthread_mutex_lock(&svc->lock);
    if (svc->wakes < 1000)
        svc->wakes++;
    pthread_cond_broadcast(&svc->cond);
    pthread_mutex_unlock(&svc->lock);
}

void vk_triggers_service_stop(struct vk_triggers_service *svc)
{
    if (!svc)
        return;
    pthread_mutex_lock(&svc->lock);
    svc->stopping = true;
    pthread_cond_broadcast(&svc->cond);
    pthread_mutex_unlock(&svc->lock);
    for (unsigned i = 0; i < svc->nthreads; i++)
        pthread_join(svc->threads[i], NULL);
    svc->nthreads = 0;
    vk__trig_cron_join(svc);
    vk__trig_status_join(svc);
}

void vk_triggers_service_free(struct vk_triggers_service *svc)
{
    if (!svc)
        return;
    vk_triggers_service_stop(svc);
    vk_mem_free(svc->threads);
    pthread_cond_destroy(&svc->cond);
    pthread_mutex_destroy(&svc->lock);
    vk_mem_free(svc);
}
