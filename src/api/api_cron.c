/*
 * The scheduler: cron schedules of repositories' default-branch workflows.
 *
 * Schedules live in the store (one row per `schedule cron=… timezone=…` trigger of a
 * workflow file). They are refreshed from the default branch head when the server starts,
 * after a push to the default branch (by the webhook, from the workflows it loaded anyway)
 * and after a repository is created or changed. A pass (vk_api_cron_run, every
 * opts.cron_interval_ms on the scheduler thread) lists the rows whose next_fire_ms has
 * come and, for each, computes the latest slot in (last_fired_ms, now]: a server that was
 * down fires a missed schedule once, not once per missed slot. The slot is claimed with
 * one conditional UPDATE, so with several replicas on one database only one starts the
 * chain. The in-memory state here (the refresh requests) is only a hint: losing it on a
 * restart is repaired by the refresh at start.
 */
#include "api_int.h"
#include "vulcan/telemetry.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define DEFAULT_INTERVAL_MS 15000
#define MAX_WANT 64
#define MAX_DUE 200 /* schedules looked at in one pass; the rest wait for the next */

struct vk__api_cron {
    pthread_mutex_t lock; /* guards everything below */
    pthread_cond_t cond;
    pthread_t thread;
    bool started, stopping;
    bool refresh_all;                 /* the first pass refreshes every repository */
    char want[MAX_WANT][VK_UUID_LEN]; /* repositories to refresh soon */
    size_t nwant;
    char mirrors[4096]; /* DATA_DIR/mirrors, copied from the options at init */
};

const char *vk__api_mirrors_dir(const struct vk_api *api)
{
    return api->cron ? api->cron->mirrors : "./vulcan-data/mirrors";
}

static int64_t now_ms(struct vk_api *api)
{
    return api->opts.now_fn ? api->opts.now_fn(api->opts.now_ctx) : vk_time_now_ms();
}

/* ---------------------------------------------------------------- Refresh */

static int add_schedule(struct vk_api *api, const char *file, const struct vk_wf_trigger *t,
                        int64_t now, struct vk_store_schedule *out, struct vk_err *err)
{
    struct vk_cron c;
    const char *zone_name = t->timezone ? t->timezone : "UTC";
    int rc = vk_cron_parse(t->cron, &c, err);
    if (rc)
        return rc;
    struct vk_tz *zone = NULL;
    rc = vk_cron_tz_load(zone_name, &zone, err);
    if (rc)
        return rc;
    int64_t next = INT64_MAX;
    if (vk_cron_next(&c, zone, now, &next) != 0)
        next = INT64_MAX; /* never fires: keep the row, it is never due */
    vk_cron_tz_free(zone);
    memset(out, 0, sizeof(*out));
    out->workflow_file = file;
    out->cron = t->cron;
    out->timezone = zone_name;
    out->next_fire_ms = next;
    out->last_fired_ms = now;
    (void)api;
    return 0;
}

int vk__api_cron_refresh_set(struct vk_api *api, const struct vk_store_repo *repo,
                             const struct vk__api_trig_set *set, struct vk_err *err)
{
    int64_t now = now_ms(api);
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
            struct vk_err e2;
            vk_err_clear(&e2);
            if (add_schedule(api, set->items[i].file, tr, now, &items[n], &e2) == 0)
                n++;
            else
                vk_log_write(VK_LOG_WARN, "cron", "schedule ignored", "file", set->items[i].file,
                             "error", e2.msg, NULL);
        }
    }
    int rc = vk_store_schedules_replace(api->opts.store, repo->id, items, n, now, err);
    vk_mem_free(items);
    return rc;
}

/* Refresh one repository from its default branch head. */
static int refresh_repo(struct vk_api *api, const struct vk_store_repo *repo, struct vk_err *err)
{
    struct vk_git_mirror *m = NULL;
    struct vk__api_trig_set set = {0};
    char sha[65];
    int rc = vk__api_mirror_open(api, repo->url, &m, err);
    if (rc == 0)
        rc = vk_git_resolve_branch(m, repo->default_branch, sha, err);
    if (rc == 0)
        rc = vk__api_trig_load(api, m, repo, sha, NULL, &set, err);
    if (rc == VK_ENOTFOUND) /* no default branch (yet): no schedules */
        rc = 0;
    if (rc == 0)
        rc = vk__api_cron_refresh_set(api, repo, &set, err);
    vk__api_trig_set_release(&set);
    vk_git_mirror_free(m);
    return rc;
}

void vk__api_cron_want_refresh(struct vk_api *api, const char *repo_id)
{
    struct vk__api_cron *cr = api->cron;
    if (!cr)
        return;
    pthread_mutex_lock(&cr->lock);
    if (cr->nwant < MAX_WANT)
        snprintf(cr->want[cr->nwant++], VK_UUID_LEN, "%s", repo_id);
    else
        cr->refresh_all = true;
    pthread_cond_signal(&cr->cond);
    pthread_mutex_unlock(&cr->lock);
}

static void refresh_pending(struct vk_api *api)
{
    struct vk__api_cron *cr = api->cron;
    char want[MAX_WANT][VK_UUID_LEN];
    pthread_mutex_lock(&cr->lock);
    bool all = cr->refresh_all;
    size_t n = cr->nwant;
    memcpy(want, cr->want, sizeof(want));
    cr->refresh_all = false;
    cr->nwant = 0;
    pthread_mutex_unlock(&cr->lock);

    struct vk_pool pool;
    vk_pool_init(&pool, 0);
    struct vk_err err;
    vk_err_clear(&err);
    struct vk_store_repo *repos = NULL;
    size_t nrepos = 0;
    if (all) {
        if (vk_store_repo_list(api->opts.store, &pool, &repos, &nrepos, &err) != 0) {
            vk_log_write(VK_LOG_WARN, "cron", "cannot list repositories", "error", err.msg, NULL);
            pthread_mutex_lock(&cr->lock);
            cr->refresh_all = true; /* try again next pass */
            pthread_mutex_unlock(&cr->lock);
        }
    } else if (n) {
        repos = vk_pool_alloc(&pool, n * sizeof(*repos));
        for (size_t i = 0; repos && i < n; i++) {
            if (vk_store_repo_get(api->opts.store, want[i], &pool, &repos[nrepos], &err) == 0)
                nrepos++;
        }
    }
    for (size_t i = 0; i < nrepos; i++) {
        vk_err_clear(&err);
        if (refresh_repo(api, &repos[i], &err) != 0)
            vk_log_write(VK_LOG_WARN, "cron", "cannot refresh schedules", "repository_id",
                         repos[i].id, "error", err.msg, NULL);
    }
    vk_pool_release(&pool);
}

/* ---------------------------------------------------------------- Firing */

static int fire(struct vk_api *api, const struct vk_store_schedule *s, int64_t slot,
                struct vk_err *err)
{
    struct vk_pool pool;
    vk_pool_init(&pool, 0);
    struct vk_store_repo repo;
    struct vk_git_mirror *m = NULL;
    struct vk__api_trig_set set = {0};
    json_t *chains = json_array(), *skipped = json_array();
    char sha[65];
    int rc = vk_store_repo_get(api->opts.store, s->repository_id, &pool, &repo, err);
    if (rc == 0)
        rc = vk__api_mirror_open(api, repo.url, &m, err);
    if (rc == 0)
        rc = vk_git_resolve_branch(m, repo.default_branch, sha, err);
    if (rc == 0)
        rc = vk__api_trig_load(api, m, &repo, sha, s->workflow_file, &set, err);
    if (rc == 0) {
        struct vk_wf_event wfev = {.type = VK_WF_TRIG_SCHEDULE, .cron = s->cron};
        char ref[VK_TRIGGERS_MAX_REF + 16];
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
        rc = vk__api_trig_submit(api, &set, &c, &wfev, chains, skipped, err);
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
    vk__api_trig_set_release(&set);
    vk_git_mirror_free(m);
    vk_pool_release(&pool);
    return rc;
}

/* Look at one due schedule: claim its latest slot and fire, or just re-plan. */
static int due_one(struct vk_api *api, const struct vk_store_schedule *s, int64_t now,
                   size_t *fired, struct vk_err *err)
{
    struct vk_cron c;
    struct vk_tz *zone = NULL;
    if (vk_cron_parse(s->cron, &c, err) != 0 || vk_cron_tz_load(s->timezone, &zone, err) != 0) {
        /* A row that cannot be planned any more: park it. */
        return vk_store_schedule_set_next(api->opts.store, s->id, INT64_MAX, err);
    }
    bool due = false;
    int64_t slot = 0, next = INT64_MAX;
    int rc = 0;
    if (s->last_fired_ms <= now &&
        vk_cron_missed(&c, zone, s->last_fired_ms, now, &due, &slot) != 0)
        due = false;
    if (vk_cron_next(&c, zone, now, &next) != 0)
        next = INT64_MAX;
    vk_cron_tz_free(zone);
    if (!due)
        return vk_store_schedule_set_next(api->opts.store, s->id, next, err);
    bool claimed = false;
    rc = vk_store_schedule_claim(api->opts.store, s->id, slot, next, &claimed, err);
    if (rc || !claimed)
        return rc;
    struct vk_err e2;
    vk_err_clear(&e2);
    if (fire(api, s, slot, &e2) != 0)
        vk_log_write(VK_LOG_WARN, "cron", "schedule could not start its chain", "file",
                     s->workflow_file, "error", e2.msg, NULL);
    else
        (*fired)++;
    return 0;
}

int vk_api_cron_run(struct vk_api *api, size_t *fired, struct vk_err *err)
{
    size_t nfired = 0;
    if (fired)
        *fired = 0;
    if (!api->cron)
        return vk_err_set(err, VK_EINVAL, "the scheduler is not set up");
    refresh_pending(api);
    int64_t now = now_ms(api);
    struct vk_pool pool;
    vk_pool_init(&pool, 0);
    struct vk_store_schedule *due = NULL;
    size_t n = 0;
    int rc = vk_store_schedules_list(api->opts.store, NULL, now, MAX_DUE, &pool, &due, &n, err);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = due_one(api, &due[i], now, &nfired, err);
    vk_pool_release(&pool);
    if (fired)
        *fired = nfired;
    return rc;
}

/* ---------------------------------------------------------------- Thread */

static void *cron_main(void *arg)
{
    struct vk_api *api = arg;
    struct vk__api_cron *cr = api->cron;
    int64_t interval =
        api->opts.cron_interval_ms > 0 ? api->opts.cron_interval_ms : DEFAULT_INTERVAL_MS;
    pthread_mutex_lock(&cr->lock);
    while (!cr->stopping) {
        pthread_mutex_unlock(&cr->lock);
        struct vk_err err;
        vk_err_clear(&err);
        if (vk_api_cron_run(api, NULL, &err) != 0)
            vk_log_write(VK_LOG_WARN, "cron", "scheduler pass failed", "error", err.msg, NULL);
        pthread_mutex_lock(&cr->lock);
        if (cr->stopping || cr->nwant || cr->refresh_all)
            continue;
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_sec += interval / 1000;
        ts.tv_nsec += (interval % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        while (!cr->stopping && !cr->nwant &&
               pthread_cond_timedwait(&cr->cond, &cr->lock, &ts) != ETIMEDOUT)
            ;
    }
    pthread_mutex_unlock(&cr->lock);
    return NULL;
}

int vk__api_cron_init(struct vk_api *api, struct vk_err *err)
{
    struct vk__api_cron *cr = vk_mem_calloc(1, sizeof(*cr));
    if (!cr)
        return vk_err_set(err, VK_ENOMEM, "out of memory");
    pthread_mutex_init(&cr->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&cr->cond, &ca);
    pthread_condattr_destroy(&ca);
    cr->refresh_all = true;
    const char *data =
        api->opts.data_dir && *api->opts.data_dir ? api->opts.data_dir : "./vulcan-data";
    if ((size_t)snprintf(cr->mirrors, sizeof(cr->mirrors), "%s/mirrors", data) >=
        sizeof(cr->mirrors)) {
        pthread_cond_destroy(&cr->cond);
        pthread_mutex_destroy(&cr->lock);
        vk_mem_free(cr);
        return vk_err_set(err, VK_EINVAL, "data directory path too long");
    }
    api->cron = cr;
    return 0;
}

int vk__api_cron_start(struct vk_api *api, struct vk_err *err)
{
    struct vk__api_cron *cr = api->cron;
    if (!cr || api->opts.cron_interval_ms < 0 || cr->started)
        return 0;
    if (pthread_create(&cr->thread, NULL, cron_main, api) != 0)
        return vk_err_set(err, VK_EIO, "cannot start the scheduler thread");
    cr->started = true;
    return 0;
}

void vk__api_cron_stop(struct vk_api *api)
{
    struct vk__api_cron *cr = api->cron;
    if (!cr)
        return;
    pthread_mutex_lock(&cr->lock);
    cr->stopping = true;
    pthread_cond_signal(&cr->cond);
    bool join = cr->started;
    cr->started = false;
    pthread_mutex_unlock(&cr->lock);
    if (join)
        pthread_join(cr->thread, NULL);
}

void vk__api_cron_free(struct vk_api *api)
{
    struct vk__api_cron *cr = api->cron;
    if (!cr)
        return;
    vk__api_cron_stop(api);
    pthread_cond_destroy(&cr->cond);
    pthread_mutex_destroy(&cr->lock);
    vk_mem_free(cr);
    api->cron = NULL;
}
