/*
 * Trigger requests from the HTTP side: a route that needs git (a webhook, a manual run,
 * a workflow listing) queues a trigger request in the store (one INSERT on the HTTP
 * thread) and suspends its client — no thread is held — until the request's outcome is
 * known, then answers with it: at once when this process's trigger service handled it
 * (its done hook), within POLL_MS when another replica's did (a poller thread reads the
 * outcomes of the requests clients wait for). A client whose wait runs out gets 202
 * with the request's id (GET /api/v1/trigger-requests/{id} tells the outcome later), or
 * 503 for listings, which have no later.
 */
#include "api_int.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define POLL_MS 50

struct vk__api_treq_wait {
    struct vk__api_treq_wait *prev, *next;
    struct vk_api *api;
    struct vk_http_req *req;
    char id[VK_UUID_LEN];
    enum vk__api_treq_late late;
    char provider[16]; /* webhooks: counted when answered */
};

/* ---------------------------------------------------------------- Answers */

static void unlink_waiter(struct vk_api *api, struct vk__api_treq_wait *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        api->treq_head = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->prev = w->next = NULL;
}

static void count_webhook(struct vk_api *api, const struct vk__api_treq_wait *w, int status)
{
    if (!w->provider[0] || !api->m.webhook_deliveries_total)
        return;
    const char *verdict = status >= 500 ? "error" : status >= 400 ? "invalid" : "accepted";
    vk_metrics_counter_inc(
        vk_metrics_counter_with(api->m.webhook_deliveries_total, w->provider, verdict));
}

/* Answer `w` with the outcome. Call with api->treq_lock held, `w` unlinked. */
static void answer(struct vk__api_treq_wait *w, int status, const char *result)
{
    count_webhook(w->api, w, status);
    vk_http_reply(w->req, status, "application/json", result, strlen(result));
    vk_mem_free(w);
}

static struct vk__api_treq_wait *find(struct vk_api *api, const char *id)
{
    for (struct vk__api_treq_wait *w = api->treq_head; w; w = w->next) {
        if (strcmp(w->id, id) == 0)
            return w;
    }
    return NULL;
}

void vk__api_treq_done(void *ctx, const char *id, int status, const char *result)
{
    struct vk_api *api = ctx;
    pthread_mutex_lock(&api->treq_lock);
    struct vk__api_treq_wait *w = find(api, id);
    if (w) {
        unlink_waiter(api, w);
        answer(w, status, result);
    }
    pthread_mutex_unlock(&api->treq_lock);
}

static void on_timeout(struct vk_http_req *req, void *ctx)
{
    struct vk__api_treq_wait *w = ctx;
    struct vk_api *api = w->api;
    pthread_mutex_lock(&api->treq_lock);
    unlink_waiter(api, w);
    if (w->late == VK__API_TREQ_LATE_503) {
        if (vk_http_set_header(req, "Retry-After", "5") != 0) {
            /* out of memory: the answer is still right without the header */
        }
        vk_http_reply_error(req, 503, "unavailable",
                            "the trigger service did not answer in time; try again");
    } else {
        count_webhook(api, w, 202);
        char loc[96];
        snprintf(loc, sizeof(loc), "/api/v1/trigger-requests/%s", w->id);
        json_t *o =
            json_pack("{s:s, s:s, s:s}", "trigger_request", w->id, "status", "queued", "url", loc);
        vk_http_reply_json(req, 202, o);
    }
    pthread_mutex_unlock(&api->treq_lock);
    vk_mem_free(w);
}

static void on_close(struct vk_http_req *req, void *ctx)
{
    struct vk__api_treq_wait *w = ctx;
    struct vk_api *api = w->api;
    (void)req;
    pthread_mutex_lock(&api->treq_lock);
    unlink_waiter(api, w);
    pthread_mutex_unlock(&api->treq_lock);
    vk_mem_free(w);
}

int vk__api_treq_submit(struct vk_api *api, struct vk_http_req *req, struct vk_store_treq *rq,
                        int64_t wait_ms, enum vk__api_treq_late late, const char *provider)
{
    struct vk_err err;
    vk_err_clear(&err);
    int rc = vk_store_treq_create(api->opts.store, rq, vk_time_now_ms(), &err);
    if (rc == VK_EEXIST && (rq->dedup[0] || rq->dedup[1]))
        return rc; /* a delivery handled before: the caller answers */
    if (rc) {
        vk__api_reply_err(req, &err, rc);
        return rc;
    }
    struct vk__api_treq_wait *w = vk_mem_calloc(1, sizeof(*w));
    if (!w || vk_http_suspend(req, wait_ms, on_timeout, on_close, w) != 0) {
        vk_mem_free(w);
        vk_http_reply_error(req, 500, "internal", "cannot wait for the trigger service");
        return VK_ENOMEM;
    }
    w->api = api;
    w->req = req;
    w->late = late;
    snprintf(w->id, sizeof(w->id), "%s", rq->id);
    if (provider)
        snprintf(w->provider, sizeof(w->provider), "%s", provider);
    pthread_mutex_lock(&api->treq_lock);
    w->next = api->treq_head;
    if (api->treq_head)
        api->treq_head->prev = w;
    api->treq_head = w;
    pthread_cond_signal(&api->treq_cond);
    pthread_mutex_unlock(&api->treq_lock);
    vk_triggers_wake(api->opts.triggers);
    return 0;
}

/* ---------------------------------------------------------------- Poller */

/* The outcomes of requests handled elsewhere (another replica), for their waiters. */
static void poll_once(struct vk_api *api)
{
    char ids[64][VK_UUID_LEN];
    size_t n = 0;
    pthread_mutex_lock(&api->treq_lock);
    for (struct vk__api_treq_wait *w = api->treq_head; w && n < VK_ARRAY_LEN(ids); w = w->next)
        memcpy(ids[n++], w->id, VK_UUID_LEN);
    pthread_mutex_unlock(&api->treq_lock);
    for (size_t i = 0; i < n; i++) {
        struct vk_pool pool;
        vk_pool_init(&pool, 4096);
        struct vk_store_treq rq;
        struct vk_err err;
        vk_err_clear(&err);
        if (vk_store_treq_get(api->opts.store, ids[i], &pool, &rq, &err) == 0 &&
            rq.status == VK_STORE_TREQ_DONE && rq.result)
            vk__api_treq_done(api, rq.id, rq.result_status, rq.result);
        vk_pool_release(&pool);
    }
}

static void *poller_main(void *arg)
{
    struct vk_api *api = arg;
    pthread_mutex_lock(&api->treq_lock);
    while (!api->treq_stopping) {
        if (!api->treq_head) {
            pthread_cond_wait(&api->treq_cond, &api->treq_lock);
            continue;
        }
        struct timespec ts = vk_time_deadline(POLL_MS);
        while (!api->treq_stopping &&
               pthread_cond_timedwait(&api->treq_cond, &api->treq_lock, &ts) != ETIMEDOUT)
            ;
        if (api->treq_stopping)
            break;
        pthread_mutex_unlock(&api->treq_lock);
        poll_once(api);
        pthread_mutex_lock(&api->treq_lock);
    }
    pthread_mutex_unlock(&api->treq_lock);
    return NULL;
}

int vk__api_treq_start(struct vk_api *api, struct vk_err *err)
{
    if (pthread_create(&api->treq_poller, NULL, poller_main, api) != 0)
        return vk_err_set(err, VK_EIO, "cannot start the trigger request poller");
    api->treq_started = true;
    return 0;
}

void vk__api_treq_stop(struct vk_api *api)
{
    pthread_mutex_lock(&api->treq_lock);
    api->treq_stopping = true;
    pthread_cond_broadcast(&api->treq_cond);
    bool join = api->treq_started;
    api->treq_started = false;
    pthread_mutex_unlock(&api->treq_lock);
    if (join)
        pthread_join(api->treq_poller, NULL);
}

/* ---------------------------------------------------------------- GET /trigger-requests/{id} */

static void h_get(struct vk_http_req *req, void *ctx)
{
    struct vk_api *api = ctx;
    struct vk_store_treq rq;
    struct vk_err err;
    vk_err_clear(&err);
    int rc =
        vk_store_treq_get(api->opts.store, vk_http_param(req, "id"), vk_http_pool(req), &rq, &err);
    if (rc) {
        vk__api_reply_err(req, &err, rc);
        return;
    }
    json_t *result = rq.result ? json_loads(rq.result, 0, NULL) : NULL;
    json_t *o = json_pack(
        "{s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:o}", "id", rq.id, "kind",
        vk_store_treq_kind_name(rq.kind), "status", vk_store_treq_status_name(rq.status),
        "repository_id", vk__api_str(rq.repository_id[0] ? rq.repository_id : NULL), "created_at",
        vk__api_time(rq.created_at), "finished_at", vk__api_time(rq.finished_at), "result_status",
        rq.result_status ? json_integer(rq.result_status) : json_null(), "result",
        result ? result : json_null());
    vk_http_reply_json(req, 200, o);
}

int vk__api_treq_routes(struct vk_api *api, struct vk_err *err)
{
    return vk_http_route(api->http, "GET", "/api/v1/trigger-requests/{id}", h_get, api, NULL, err);
}
