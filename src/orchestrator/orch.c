/* Orchestrator lifecycle, claiming, results, cancel, and the reaper/listener threads. */
#include "orch_int.h"
#include "vulcan/store_identity.h"
#include "vulcan/telemetry.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

int vk_orch_new(struct vk_store *store, const struct vk_orch_opts *opts, struct vk_orch **out,
                struct vk_err *err)
{
    struct vk_orch *o = vk_mem_calloc(1, sizeof(*o));
    if (!o)
        return vk_err_set(err, VK_ENOMEM, "out of memory");
    o->store = store;
    int rc = vk_store_tenant_ensure(store, "default", o->tenant, err);
    if (rc < 0) {
        vk_mem_free(o);
        return rc;
    }
    if (opts)
        o->opts = *opts;
    rc = vk__orch_telemetry_init(o, err);
    if (rc < 0) {
        vk_mem_free(o);
        return rc;
    }
    if (o->opts.worker_timeout_ms <= 0)
        o->opts.worker_timeout_ms = 30000;
    if (o->opts.queue_timeout_ms <= 0)
        o->opts.queue_timeout_ms = VK_ORCH_DEFAULT_QUEUE_TIMEOUT_MS;
    if (o->opts.max_attempts <= 0)
        o->opts.max_attempts = 3;
    if (o->opts.reap_interval_ms <= 0) {
        o->opts.reap_interval_ms = o->opts.worker_timeout_ms / 4;
        if (o->opts.reap_interval_ms > 5000)
            o->opts.reap_interval_ms = 5000;
        if (o->opts.reap_interval_ms < 100)
            o->opts.reap_interval_ms = 100;
    }
    rc = vk__orch_lead_init(o, err);
    if (rc < 0) {
        vk_mem_free(o);
        return rc;
    }
    pthread_mutex_init(&o->lock, NULL);
    vk_time_cond_init(&o->cond);
    *out = o;
    return 0;
}

const char *vk_orch_default_tenant(const struct vk_orch *o)
{
    return o->tenant;
}

struct vk_store *vk_orch_store(struct vk_orch *o)
{
    return o->store;
}

/* Sleep up to `ms` unless the orchestrator is stopping. Returns false when stopping. */
static bool nap(struct vk_orch *o, int64_t ms)
{
    struct timespec ts = vk_time_deadline(ms);
    pthread_mutex_lock(&o->lock);
    while (!atomic_load(&o->stopping)) {
        if (pthread_cond_timedwait(&o->cond, &o->lock, &ts) == ETIMEDOUT)
            break;
    }
    bool go_on = !atomic_load(&o->stopping);
    pthread_mutex_unlock(&o->lock);
    return go_on;
}

static void *reaper_main(void *arg)
{
    struct vk_orch *o = arg;
    while (nap(o, o->opts.reap_interval_ms)) {
        struct vk_err err;
        vk_err_clear(&err);
        if (!vk_orch_leads(o, VK_ORCH_REAPER))
            continue; /* another replica reaps for all */
        if (vk_orch_reap(o, &err) < 0)
            vk_log_write(VK_LOG_WARN, "orchestrator", "reaper failed", "error", err.msg, NULL);
    }
    return NULL;
}

/* Turns store notifications (this process, or other replicas on PostgreSQL) into
 * ready-hook calls. */
static void *listener_main(void *arg)
{
    struct vk_orch *o = arg;
    while (!atomic_load(&o->stopping)) {
        struct vk_pool pool;
        vk_pool_init(&pool, 4096);
        const char **groups = NULL;
        size_t n = 0;
        struct vk_err err;
        vk_err_clear(&err);
        int rc = vk_store_wait_ready(o->store, 250, &pool, &groups, &n, &err);
        if (rc < 0) {
            vk_log_write(VK_LOG_WARN, "orchestrator", "waiting for ready notifications failed",
                         "error", err.msg, NULL);
            vk_pool_release(&pool);
            nap(o, 1000);
            continue;
        }
        for (size_t i = 0; i < n && o->opts.on_ready; i++)
            o->opts.on_ready(o->opts.on_ready_ctx, groups[i]);
        vk_pool_release(&pool);
    }
    return NULL;
}

void vk_orch_set_ready_hook(struct vk_orch *o, vk_orch_ready_fn *fn, void *ctx)
{
    VK_ASSERT(!o->started);
    o->opts.on_ready = fn;
    o->opts.on_ready_ctx = ctx;
}

int vk_orch_start(struct vk_orch *o, struct vk_err *err)
{
    if (o->started)
        return 0;
    atomic_store(&o->stopping, false);
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setstacksize(&attr, 256 * 1024);
    o->reaper_on = !o->opts.no_reaper;
    if (o->reaper_on) {
        int rc = vk_orch_repair(o, NULL, err);
        if (rc < 0) {
            pthread_attr_destroy(&attr);
            o->reaper_on = false;
            return rc;
        }
    }
    o->listener_on = o->opts.on_ready != NULL;
    if (o->reaper_on && pthread_create(&o->reaper, &attr, reaper_main, o) != 0) {
        pthread_attr_destroy(&attr);
        o->reaper_on = o->listener_on = false;
        return vk_err_set(err, VK_EIO, "cannot start the reaper thread");
    }
    if (o->listener_on && pthread_create(&o->listener, &attr, listener_main, o) != 0) {
        pthread_attr_destroy(&attr);
        o->listener_on = false;
        o->started = true;
        vk_orch_stop(o);
        return vk_err_set(err, VK_EIO, "cannot start the listener thread");
    }
    pthread_attr_destroy(&attr);
    o->started = true;
    int rc = vk__orch_lead_start(o, err);
    if (rc < 0)
        vk_orch_stop(o);
    return rc;
}

void vk_orch_stop(struct vk_orch *o)
{
    pthread_mutex_lock(&o->lock);
    atomic_store(&o->stopping, true);
    pthread_cond_broadcast(&o->cond);
    pthread_mutex_unlock(&o->lock);
    if (o->started) {
        vk__orch_lead_stop(o); /* gives the leases up: the next replica takes them at once */
        if (o->reaper_on)
            pthread_join(o->reaper, NULL);
        if (o->listener_on)
            pthread_join(o->listener, NULL);
        o->reaper_on = o->listener_on = false;
        o->started = false;
    }
}

void vk_orch_free(struct vk_orch *o)
{
    if (!o)
        return;
    vk_orch_stop(o);
    pthread_mutex_destroy(&o->lock);
    pthread_cond_destroy(&o->cond);
    vk_mem_free(o);
}

int vk_orch_claim(struct vk_orch *o, const char *worker_id, const char *const *groups,
                  size_t ngroups, struct vk_pool *pool, struct vk_store_work *out,
                  struct vk_err *err)
{
    return vk_orch_claim_job(o, worker_id, groups, ngroups, NULL, NULL, pool, out, err);
}

int vk_orch_claim_job(struct vk_orch *o, const char *worker_id, const char *const *groups,
                      size_t ngroups, struct vk_store_credential *job, char *token,
                      struct vk_pool *pool, struct vk_store_work *out, struct vk_err *err)
{
    int64_t now = vk_time_now_ms();
    int rc = job ? vk_store_claim_job(o->store, worker_id, groups, ngroups, now, job, token, pool,
                                      out, err)
                 : vk_store_claim(o->store, worker_id, groups, ngroups, now, pool, out, err);
    if (rc == 0)
        vk__orch_report_claim(o, &out->fragment);
    return rc;
}

/* Record a result (fenced by attempt) and advance the chain, all in one transaction. */
int vk_orch_result(struct vk_orch *o, const struct vk_orch_result *r,
                   enum vk_store_frag_status *status, struct vk_err *err)
{
    struct vk_pool pool;
    vk_pool_init(&pool, 4096);
    struct vk_store_tx *tx = NULL;
    struct vk__orch_ended ended = {0};
    int rc = vk_store_tx_begin(o->store, &tx, err);
    if (rc < 0)
        goto out;
    struct vk_store_fragment f;
    rc = vk_store_tx_fragment_get(tx, r->fragment_id, &pool, &f, err);
    if (rc < 0)
        goto fail;
    /* Read the clock once the chain is locked (the get above locks it): a result that
     * waited for another one must not record an earlier time than it. */
    int64_t now = vk_time_now_ms();
    if (f.type != VK_STORE_FRAG_INLINE) {
        rc = vk_err_set(err, VK_EINVAL, "fragment '%s' is a group", r->fragment_id);
        goto fail;
    }
    enum vk_store_frag_status st = r->success ? VK_STORE_FRAG_COMPLETED : VK_STORE_FRAG_FAILED;
    /* A cancelled chain's running fragment is recorded as cancelled when it stopped
     * because of the cancel (it failed), as completed when it finished anyway. */
    if (!r->success && f.cancel_requested)
        st = VK_STORE_FRAG_CANCELLED;
    rc = vk_store_tx_fragment_finish(tx, r->fragment_id, r->attempt, r->worker_id, st,
                                     r->has_exit_code, r->exit_code, r->error, now, err);
    if (rc < 0)
        goto fail;
    if (st == VK_STORE_FRAG_FAILED && f.retries_used < f.retries) {
        /* `retry N`: run the script again, as a new attempt. */
        rc = vk_store_tx_fragment_requeue(tx, r->fragment_id, true, now, err);
        if (rc == 0)
            rc = vk_store_tx_notify_ready(tx, f.machine, err);
        st = VK_STORE_FRAG_READY;
    } else {
        rc = vk__orch_after_final(tx, r->fragment_id, now, &ended, err);
    }
    /* A group it held (or its chain's) may be free now: wake who waits for it. */
    if (rc == 0)
        rc = vk_store_tx_concurrency_wake(tx, f.chain_id, f.id, err);
    if (rc < 0)
        goto fail;
    rc = vk_store_tx_commit(tx, err);
    if (rc == 0 && status)
        *status = st;
    if (rc == 0) {
        vk__orch_report_fragment(o, &f, st, now);
        vk__orch_report(o, &ended);
    }
    goto out;
fail:
    vk_store_tx_rollback(tx);
out:
    vk_pool_release(&pool);
    return rc;
}

int vk_orch_cancel(struct vk_orch *o, const char *chain_id, struct vk_err *err)
{
    int rc = vk_store_chain_cancel(o->store, chain_id, vk_time_now_ms(), NULL, err);
    if (rc == 0) {
        vk__orch_report_cancel(o, chain_id);
        vk__orch_concurrency_wake(o, chain_id);
    }
    return rc;
}

/* "30m", "2s", "1h30m": a queue timeout as the error shows it. */
static void duration_text(int64_t ms, char *buf, size_t size)
{
    int64_t s = ms / 1000, h = s / 3600, m = s / 60 % 60, sec = s % 60;
    int n = 0;
    if (h)
        n += snprintf(buf + n, size - (size_t)n, "%lldh", (long long)h);
    if (m && n >= 0 && (size_t)n < size)
        n += snprintf(buf + n, size - (size_t)n, "%lldm", (long long)m);
    if ((sec || !(h || m)) && n >= 0 && (size_t)n < size)
        snprintf(buf + n, size - (size_t)n, "%llds", (long long)sec);
}

/* Fail one fragment that waited too long in `ready`, with the waiting reason, and advance
 * its chain through the ordinary failure path (the rest skipped, the chain failed). */
static int expire_one(struct vk_orch *o, const struct vk_store_expired *x, int64_t now,
                      struct vk_err *err)
{
    char why[VK_STORE_MAX_CONCURRENCY_GROUP + 128], dur[32],
        msg[VK_STORE_MAX_CONCURRENCY_GROUP + 256];
    if (vk__orch_concurrency_why(o, x->id, why, sizeof why))
        ; /* it waited for a concurrency group */
    else if (vk_store_wait_reason(o->store, x->machine, why, sizeof(why), err) < 0)
        snprintf(why, sizeof(why), "waiting for a worker of machine group '%s'", x->machine);
    duration_text(x->queue_timeout_ms, dur, sizeof(dur));
    snprintf(msg, sizeof(msg), "queue timeout (%s) reached: %s", dur, why);
    struct vk_pool pool;
    vk_pool_init(&pool, 4096);
    struct vk_store_tx *tx = NULL;
    struct vk__orch_ended ended = {0};
    int rc = vk_store_tx_begin(o->store, &tx, err);
    if (rc < 0)
        goto out;
    struct vk_store_fragment f;
    rc = vk_store_tx_fragment_get(tx, x->id, &pool, &f, err);
    if (rc == 0 && f.status != VK_STORE_FRAG_READY) {
        vk_store_tx_rollback(tx); /* claimed or cancelled meanwhile */
        goto out;
    }
    struct vk_store_fragment_update u = {0};
    u.set = VK_STORE_SET_STATUS | VK_STORE_SET_FINISHED_AT | VK_STORE_SET_ERROR;
    u.status = VK_STORE_FRAG_FAILED;
    u.finished_at = now;
    u.error = msg;
    if (rc == 0)
        rc = vk_store_tx_fragment_update(tx, x->id, &u, err);
    if (rc == 0)
        rc = vk__orch_after_final(tx, x->id, now, &ended, err);
    if (rc < 0) {
        vk_store_tx_rollback(tx);
        goto out;
    }
    rc = vk_store_tx_commit(tx, err);
    if (rc == 0) {
        vk_log_write(VK_LOG_WARN, "orchestrator", "a fragment failed: queue timeout reached",
                     "fragment_id", x->id, "error", msg, NULL);
        vk__orch_report_fragment(o, &f, VK_STORE_FRAG_FAILED, now);
        vk__orch_report(o, &ended);
    }
out:
    vk_pool_release(&pool);
    return rc;
}

int vk_orch_expire_queued(struct vk_orch *o, int64_t now, struct vk_err *err)
{
    struct vk_pool pool;
    vk_pool_init(&pool, 4096);
    struct vk_store_expired *x = NULL;
    size_t n = 0;
    int rc =
        vk_store_queue_expired(o->store, now, o->opts.queue_timeout_ms, 100, &pool, &x, &n, err);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = expire_one(o, &x[i], now, err);
    vk_pool_release(&pool);
    return rc;
}

int vk_orch_reap(struct vk_orch *o, struct vk_err *err)
{
    struct vk_pool pool;
    vk_pool_init(&pool, 4096);
    struct vk_store_reap_result res = {0};
    int64_t now = vk_time_now_ms();
    int rc = vk_store_reap_workers(o->store, now, o->opts.worker_timeout_ms, o->opts.max_attempts,
                                   &pool, &res, err);
    if (rc == 0 && res.nworkers)
        vk_log_write(VK_LOG_WARN, "orchestrator", "declared silent workers dead", NULL);
    for (size_t i = 0; rc == 0 && i < res.nchanges; i++) {
        const struct vk_store_frag_change *c = &res.changes[i];
        vk_log_write(VK_LOG_WARN, "orchestrator",
                     c->status == VK_STORE_FRAG_READY ? "re-queued a fragment of a dead worker"
                                                      : "a fragment failed: its workers kept dying",
                     "fragment_id", c->fragment_id, "chain_id", c->chain_id, NULL);
        if (c->status == VK_STORE_FRAG_READY)
            continue;
        struct vk_store_tx *tx = NULL;
        struct vk__orch_ended ended = {0};
        rc = vk_store_tx_begin(o->store, &tx, err);
        if (rc < 0)
            break;
        rc = vk__orch_after_final(tx, c->fragment_id, now, &ended, err);
        if (rc < 0)
            vk_store_tx_rollback(tx);
        else
            rc = vk_store_tx_commit(tx, err);
        if (rc == 0)
            vk__orch_report_dead(o, c->status, &ended);
    }
    vk_pool_release(&pool);
    if (rc == 0)
        rc = vk_orch_expire_queued(o, now, err);
    return rc;
}

int vk_orch_repair(struct vk_orch *o, size_t *count, struct vk_err *err)
{
    /* One pass: a chain that stays listed (a fragment of it still runs on a live worker)
     * must not be met again, and an old defect left tens of rows, not thousands. */
    enum { MAX_CHAINS = 10000 };
    struct vk_pool pool;
    vk_pool_init(&pool, 4096);
    char **ids = NULL;
    size_t n = 0;
    int rc = vk_store_chain_unsettled(o->store, MAX_CHAINS, &pool, &ids, &n, err);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        struct vk_store_tx *tx = NULL;
        rc = vk_store_tx_begin(o->store, &tx, err);
        if (rc < 0)
            break;
        rc = vk__orch_repair_chain(tx, ids[i], vk_time_now_ms(), err);
        if (rc < 0)
            vk_store_tx_rollback(tx);
        else
            rc = vk_store_tx_commit(tx, err);
        if (rc == 0)
            vk_log_write(VK_LOG_WARN, "orchestrator", "repaired a chain left unsettled", "chain_id",
                         ids[i], NULL);
    }
    vk_pool_release(&pool);
    if (count)
        *count = rc == 0 ? n : 0;
    return rc;
}
