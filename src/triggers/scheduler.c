/*
 * scheduler.c — the trigger service's cron scheduler: cron schedules of repositories'
 * default-branch workflows.
 *
 * Schedules live in the store (one row per `schedule cron=… timezone=…` trigger of a
 * workflow file). They are refreshed from the default branch head on the scheduler's
 * first pass, after a push to the default branch (by the webhook handler, from the
 * workflows it loaded anyway) and by refresh requests (queued when a repository is
 * created or changed). A pass (vk_triggers_cron_run(), every opts.cron_interval_ms on
 * the scheduler thread) lists the rows whose next_fire_ms has come and asks
 * vk_cron_plan() what to do with each: fire the latest missed slot once, or re-plan.
 * The slot is claimed with one conditional UPDATE, so with several replicas on one
 * database only one starts the chain.
 */
#include "service_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define MAX_DUE 200 /* schedules looked at in one pass; the rest wait for the next */

/* ---------------------------------------------------------------- Refresh */

int vk__trig_schedules_from_set(struct vk_triggers_service *svc, const struct vk_store_repo *repo,
                                const struct vk__trig_set *set, struct vk_err *err)
{
    int64_t now = vk__trig_now(svc);
    size_t cap = 0;
    for (size_t i = 0; i < set->n; i++)
        cap += set->items[i].wf ? set->items[i].wf->ntriggers : 0;
    struct vk_store_schedule *items = vk_mem_xcalloc(cap ? cap : 1, sizeof(*items));
    size_t n = 0;
    for (size_t i = 0; i < set->n; i++) {
        const struct vk_workflow *wf = set->items[i].wf;
        for (size_t t = 0; wf && t < wf->ntriggers; t++) {
            const struct vk_wf_trigger *tr = &wf->triggers[t];
            if (tr->type != VK_WF_TRIG_SCHEDULE || !tr->cron)
                continue;
            const char *zone = tr->timezone ? tr->timezone : "UTC";
            struct vk_cron_plan plan;
            struct vk_err e2;
            vk_err_clear(&e2);
            if (vk_cron_plan(tr->cron, zone, now, now, &plan, &e2) != 0) {
                vk_log_write(VK_LOG_WARN, "cron", "schedule ignored", "file", set->items[i].file,
                             "error", e2.msg, NULL);
                continue;
            }
            items[n].workflow_file = set->items[i].file;
            items[n].cron = tr->cron;
            items[n].timezone = zone;
            items[n].next_fire_ms = plan.next_ms; /* INT64_MAX: never due, kept anyway */
            items[n].last_fired_ms = now;
            n++;
        }
    }
    int rc = vk_store_schedules_replace(svc->opts.store, repo->id, items, n, now, err);
    vk_mem_free(items);
    return rc;
}

/* Refresh one repository from its default branch head. *nschedules (may be NULL). */
static int refresh_repo(struct vk_triggers_service *svc, const struct vk_store_repo *repo,
                        struct vk_err *err)
{
    struct vk_git_mirror *m = NULL;
    struct vk__trig_set set = {0};
    char sha[VK_GIT_SHA_LEN];
    int rc = vk__trig_mirror_open(svc, repo->url, &m, err);
    if (rc == 0)
        rc = vk_git_resolve_branch(m, repo->default_branch, sha, err);
    if (rc == 0)
        rc = vk__trig_load(m, repo, sha, NULL, &set, err);
    if (rc == VK_ENOTFOUND) /* no default branch (yet): no schedules */
        rc = 0;
    if (rc == 0)
        rc = vk__trig_schedules_from_set(svc, repo, &set, err);
    vk__trig_set_release(&set);
    vk_git_mirror_free(m);
    return rc;
}

int vk__trig_refresh(struct vk_triggers_service *svc, const struct vk_store_treq *rq, int *status,
                     json_t **result, struct vk_err *err)
{
    struct vk_pool pool;
    vk_pool_init(&pool, 0);
    struct vk_store_repo repo;
    int rc = vk_store_repo_get(svc->opts.store, rq->repository_id, &pool, &repo, err);
    if (rc == 0)
        rc = refresh_repo(svc, &repo, err);
    if (rc == 0 || rc == VK_ENOTFOUND) {
        *status = rc ? 404 : 200;
        *result = rc ? json_pack("{s:s, s:s}", "error", "not_found", "message", err->msg)
                     : json_pack("{s:s}", "status", "refreshed");
        rc = *result ? 0 : vk_err_set(err, VK_ENOMEM, "out of memory");
    } else if (rc != VK_EDB && rc != VK_ENOMEM) {
        /* a git failure: recorded, not retried (the next push or pass refreshes again) */
        vk_log_write(VK_LOG_WARN, "cron", "cannot refresh schedules", "repository_id", repo.id,
                     "error", err->msg, NULL);
        rc = vk__trig_git_error(err, rc, rq->id, status, result);
    }
    vk_pool_release(&pool);
    return rc;
}

int vk_triggers_request_refresh(struct vk_store *store, const char *tenant_id, const char *repo_id,
                                struct vk_err *err)
{
    struct vk_store_treq rq = {.kind = VK_STORE_TREQ_REFRESH};
    snprintf(rq.tenant_id, sizeof(rq.tenant_id), "%s", tenant_id ? tenant_id : "");
    snprintf(rq.repository_id, sizeof(rq.repository_id), "%s", repo_id ? repo_id : "");
    return vk_store_treq_create(store, &rq, vk_time_now_ms(), err);
}

/* The first pass: refresh every repository (schedules may have changed while no
 * scheduler ran). */
static void refresh_all(struct vk_triggers_service *svc)
{
    struct vk_pool pool;
    vk_pool_init(&pool, 0);
    struct vk_err err;
    vk_err_clear(&err);
    struct vk_store_repo *repos = NULL;
    size_t nrepos = 0;
    if (vk_store_repo_list(svc->opts.store, &pool, &repos, &nrepos, &err) != 0) {
        vk_log_write(VK_LOG_WARN, "cron", "cannot list repositories", "error", err.msg, NULL);
        pthread_mutex_lock(&svc->lock);
        svc->refresh_all = true; /* try again next pass */
        pthread_mutex_unlock(&svc->lock);
    }
    for (size_t i = 0; i < nrepos; i++) {
        vk_err_clear(&err);
        if (refresh_repo(svc, &repos[i], &err) != 0)
            vk_log_write(VK_LOG_WARN, "cron", "cannot refresh schedules", "repository_id",
                         repos[i].id, "error", err.msg, NULL);
    }
    vk_pool_release(&pool);
}

/* ---------------------------------------------------------------- Firing */

static int fire(struct vk_triggers_service *svc, const struct vk_store_schedule *s, int64_t slot,
                struct vk_err *err)
{
    struct vk_pool pool;
    vk_pool_init(&pool, 0);
    struct vk_store_repo repo;
    struct vk_git_mirror *m = NULL;
    struct vk__trig_set set = {0};
    json_t *chains = json_array(), *skipped = json_array();
    char sha[VK_GIT_SHA_LEN];
    int rc = chains && skipped ? 0 : vk_err_set(err, VK_ENOMEM, "out of memory");
    if (rc == 0)
        rc = vk_store_repo_get(svc->opts.store, s->repository_id, &pool, &repo, err);
    if (rc == 0)
        rc = vk__trig_mirror_open(svc, repo.url, &m, err);
    if (rc == 0)
        rc = vk_git_resolve_branch(m, repo.default_branch, sha, err);
    if (rc == 0)
        rc = vk__trig_load(m, &repo, sha, s->workflow_file, &set, err);
    if (rc == 0) {
        struct vk_wf_event wfev = {.type = VK_WF_TRIG_SCHEDULE, .cron = s->cron};
        char ref[VK_GIT_MAX_REF + 16];
        snprintf(ref, sizeof(ref), "refs/heads/%s", repo.default_branch);
        struct vk_orch_context c = {
            .tenant_id = repo.tenant_id,
            .repository_id = repo.id,
            .repository_url = repo.url,
            .commit_sha = sha,
            .branch = repo.default_branch,
            .trigger = "schedule",
            .trigger_ref = ref,
        };
        rc = vk__trig_submit(svc, &set, &c, &wfev, chains, skipped, err);
    }
    if (rc == 0) {
        char at[VK_TIME_LEN];
        vk_time_format(slot, at);
        vk_log_write(VK_LOG_INFO, "cron",
                     json_array_size(chains) ? "schedule fired" : "schedule skipped", "file",
                     s->workflow_file, "cron", s->cron, "slot", at, NULL);
    }
    json_decref(chains);
    json_decref(skipped);
    vk__trig_set_release(&set);
    vk_git_mirror_free(m);
    vk_pool_release(&pool);
    return rc;
}

/* Look at one due schedule: claim its latest slot and fire, or just re-plan. */
static int due_one(struct vk_triggers_service *svc, const struct vk_store_schedule *s, int64_t now,
                   size_t *fired, struct vk_err *err)
{
    struct vk_cron_plan plan;
    struct vk_err e2;
    vk_err_clear(&e2);
    if (vk_cron_plan(s->cron, s->timezone, s->last_fired_ms, now, &plan, &e2) != 0)
        return vk_store_schedule_set_next(svc->opts.store, s->id, INT64_MAX, err); /* park */
    if (!plan.due)
        return vk_store_schedule_set_next(svc->opts.store, s->id, plan.next_ms, err);
    bool claimed = false;
    int rc =
        vk_store_schedule_claim(svc->opts.store, s->id, plan.slot_ms, plan.next_ms, &claimed, err);
    if (rc || !claimed)
        return rc;
    if (fire(svc, s, plan.slot_ms, &e2) != 0)
        vk_log_write(VK_LOG_WARN, "cron", "schedule could not start its chain", "file",
                     s->workflow_file, "error", e2.msg, NULL);
    else
        (*fired)++;
    return 0;
}

int vk_triggers_cron_run(struct vk_triggers_service *svc, size_t *fired, struct vk_err *err)
{
    size_t nfired = 0;
    if (fired)
        *fired = 0;
    pthread_mutex_lock(&svc->lock);
    bool all = svc->refresh_all;
    svc->refresh_all = false;
    pthread_mutex_unlock(&svc->lock);
    if (all)
        refresh_all(svc);
    int64_t now = vk__trig_now(svc);
    struct vk_pool pool;
    vk_pool_init(&pool, 0);
    struct vk_store_schedule *due = NULL;
    size_t n = 0;
    int rc = vk_store_schedules_list(svc->opts.store, NULL, now, MAX_DUE, &pool, &due, &n, err);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = due_one(svc, &due[i], now, &nfired, err);
    vk_pool_release(&pool);
    if (fired)
        *fired = nfired;
    return rc;
}

/* ---------------------------------------------------------------- Thread */

static void *cron_main(void *arg)
{
    struct vk_triggers_service *svc = arg;
    int64_t interval = svc->opts.cron_interval_ms > 0 ? svc->opts.cron_interval_ms
                                                      : VK_TRIGGERS_DEFAULT_CRON_INTERVAL_MS;
    pthread_mutex_lock(&svc->lock);
    while (!svc->stopping) {
        pthread_mutex_unlock(&svc->lock);
        struct vk_err err;
        vk_err_clear(&err);
        /* One replica plans for all (its lease, DESIGN §13); the slot claim below stays
         * conditional, so a lease moving mid-pass still fires a slot once. */
        bool lead = !svc->opts.orch || vk_orch_leads(svc->opts.orch, VK_ORCH_CRON);
        if (lead && vk_triggers_cron_run(svc, NULL, &err) != 0)
            vk_log_write(VK_LOG_WARN, "cron", "scheduler pass failed", "error", err.msg, NULL);
        pthread_mutex_lock(&svc->lock);
        struct timespec ts = vk_time_deadline(interval);
        while (!svc->stopping && pthread_cond_timedwait(&svc->cond, &svc->lock, &ts) != ETIMEDOUT)
            ;
    }
    pthread_mutex_unlock(&svc->lock);
    return NULL;
}

int vk__trig_cron_start(struct vk_triggers_service *svc, struct vk_err *err)
{
    if (svc->opts.cron_interval_ms < 0)
        return 0;
    if (pthread_create(&svc->cron_thread, NULL, cron_main, svc) != 0)
        return vk_err_set(err, VK_EIO, "cannot start the scheduler thread");
    svc->cron_started = true;
    return 0;
}

void vk__trig_cron_join(struct vk_triggers_service *svc)
{
    if (svc->cron_started)
        pthread_join(svc->cron_thread, NULL);
    svc->cron_started = false;
}
