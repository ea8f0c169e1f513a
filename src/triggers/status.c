/*
 * status.c — the commit-status reporter of the trigger service.
 *
 * Every opts.status_poll_ms the reporter thread claims the due rows of the store's status
 * outbox (written by the store in the same transaction as each change of a chain's
 * status; PostgreSQL replicas skip each other's rows) and posts each chain's newest status
 * to its repository's provider (status_req.c builds the request). Then, fenced by the claim
 * and the row's change count:
 *   - 2xx: done;
 *   - a network error, a timeout, 408, 429 or 5xx: retried after
 *     vk_triggers_status_backoff() (1 s, 2 s, 4 s ... at most 5 min), given up and logged
 *     once the status has failed for opts.status_give_up_ms;
 *   - any other answer (401, 403, 404, 422...), a repository without a token any more,
 *     or one whose URL names no owner/repo: logged and dropped.
 * A chain's result never waits for or depends on its report. The token is never logged.
 */
#include "service_int.h"
#include "vulcan/http.h"
#include "vulcan/kdl.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define STATUS_STALE_MS (2LL * 60 * 1000) /* a claim older than this is taken over */
#define STATUS_BATCH 16
#define MAX_ANSWER (64u * 1024u)

void vk_triggers_set_public_url(struct vk_triggers_service *svc, const char *url)
{
    if (!svc)
        return;
    pthread_mutex_lock(&svc->lock);
    snprintf(svc->public_url, sizeof(svc->public_url), "%.*s", VK_TRIGGERS_STATUS_MAX_PUBLIC_URL,
             url ? url : "");
    size_t n = strlen(svc->public_url);
    while (n > 0 && svc->public_url[n - 1] == '/')
        svc->public_url[--n] = '\0';
    pthread_mutex_unlock(&svc->lock);
}

/* The workflow's `name`, else its file name without directory and extension. */
static void workflow_name(const struct vk_store_status_job *j, char *out, size_t n)
{
    out[0] = '\0';
    struct vk_kdl_doc *doc = NULL;
    if (j->definition && vk_kdl_parse(j->definition, strlen(j->definition), &doc, NULL) == 0) {
        for (const struct vk_kdl_node *nd = doc->nodes; nd; nd = nd->next) {
            if (vk_kdl_str_eq(nd->name, "name") && nd->nargs > 0 &&
                nd->args[0].kind == VK_KDL_STRING) {
                snprintf(out, n, "%s", nd->args[0].str.ptr);
                break;
            }
        }
    }
    vk_kdl_doc_free(doc);
    if (out[0] || !j->source_file)
        return;
    const char *base = strrchr(j->source_file, '/');
    base = base ? base + 1 : j->source_file;
    const char *dot = strrchr(base, '.');
    size_t len = dot && dot > base ? (size_t)(dot - base) : strlen(base);
    snprintf(out, n, "%.*s", (int)len, base);
}

static void describe(const struct vk_store_status_job *j, char *out, size_t n)
{
    int64_t secs = j->finished_at && j->started_at ? (j->finished_at - j->started_at) / 1000 : -1;
    switch (j->status) {
    case VK_STORE_CHAIN_PENDING:
        snprintf(out, n, "Queued");
        break;
    case VK_STORE_CHAIN_RUNNING:
        snprintf(out, n, "Running");
        break;
    case VK_STORE_CHAIN_COMPLETED:
        snprintf(out, n, secs >= 0 ? "Passed in %lld s" : "Passed", (long long)secs);
        break;
    case VK_STORE_CHAIN_FAILED:
        if (j->error && *j->error)
            snprintf(out, n, "Failed: %s", j->error);
        else
            snprintf(out, n, secs >= 0 ? "Failed after %lld s" : "Failed", (long long)secs);
        break;
    case VK_STORE_CHAIN_CANCELLED:
        snprintf(out, n, "Cancelled");
        break;
    }
}

enum verdict { V_DONE, V_RETRY, V_DROP };

/* Post `req`; *http receives the status (0 without an answer). */
static enum verdict post(struct vk_triggers_service *svc, const struct vk_triggers_status_req *req,
                         long *http, struct vk_err *err)
{
    *http = 0;
    long timeout = svc->opts.status_timeout_ms > 0 ? svc->opts.status_timeout_ms : 10000;
    struct vk_http_client_opts co = {.base_url = req->base,
                                     .connect_timeout_ms = timeout < 5000 ? timeout : 5000,
                                     .timeout_ms = timeout,
                                     .max_response = MAX_ANSWER};
    struct vk_http_client *cl = NULL;
    struct vk_http_response resp;
    memset(&resp, 0, sizeof(resp));
    enum verdict v = V_RETRY;
    int rc = vk_http_client_new(&co, &cl, err);
    for (size_t i = 0; rc == 0 && i < req->nheaders; i++)
        rc = vk_http_client_set_header(cl, req->header_names[i], req->header_values[i]);
    if (rc == VK_EINVAL) {
        v = V_DROP;
        vk_err_set(err, rc, "a header of the status request has characters HTTP refuses");
        goto out;
    }
    if (rc == 0)
        rc = vk_http_client_request(cl, "POST", req->path, "application/json", req->body,
                                    strlen(req->body), timeout, &resp, err);
    if (rc == 0) {
        *http = resp.status;
        if (resp.status >= 200 && resp.status < 300)
            v = V_DONE;
        else if (resp.status == 408 || resp.status == 429 || resp.status >= 500)
            v = V_RETRY;
        else
            v = V_DROP;
        if (v != V_DONE) {
            size_t shown = resp.body.len < 200 ? resp.body.len : 200;
            char text[201];
            memcpy(text, resp.body.data ? resp.body.data : "", shown);
            text[shown] = '\0';
            for (size_t i = 0; i < shown; i++)
                if ((unsigned char)text[i] < 0x20)
                    text[i] = ' ';
            vk_err_set(err, VK_EIO, "the provider answered %ld: %s", resp.status, text);
        }
    } else if (rc == VK_ETOOBIG) {
        v = V_DONE; /* it answered, at length: taken as received */
    }
out:
    vk_http_response_release(&resp);
    vk_http_client_free(cl);
    return v;
}

/* Report one claimed job and end its claim (*ended: done with it, not to be retried).
 * Returns 0 or a store error. */
static int report(struct vk_triggers_service *svc, const char *claimer,
                  const struct vk_store_status_job *j, bool *ended, struct vk_err *serr)
{
    *ended = true;
    struct vk_err err;
    vk_err_clear(&err);
    enum vk_triggers_provider p = VK_TRIGGERS_GENERIC;
    enum verdict v = V_DROP;
    long http = 0;
    struct vk_triggers_status_req req;
    memset(&req, 0, sizeof(req));
    if (!j->provider || vk_triggers_provider_parse(j->provider, &p) != 0 ||
        p == VK_TRIGGERS_GENERIC) {
        vk_err_set(&err, VK_EINVAL, "the repository has no status token or status API now");
    } else {
        char wf[VK_TRIGGERS_STATUS_MAX_NAME + 1], desc[VK_TRIGGERS_STATUS_MAX_DESC * 2];
        char target[VK_TRIGGERS_STATUS_MAX_PUBLIC_URL + 64];
        workflow_name(j, wf, sizeof(wf));
        describe(j, desc, sizeof(desc));
        pthread_mutex_lock(&svc->lock);
        snprintf(target, sizeof(target), "%s/#/chains/%s", svc->public_url, j->chain_id);
        pthread_mutex_unlock(&svc->lock);
        struct vk_triggers_status st = {.provider = p,
                                        .api_url = j->status_api_url,
                                        .repo_url = j->repo_url,
                                        .token = j->status_token,
                                        .sha = j->commit_sha,
                                        .status = j->status,
                                        .workflow = wf,
                                        .target_url = target[0] == '/' ? NULL : target,
                                        .description = desc};
        if (vk_triggers_status_build(&st, &req, &err) == 0)
            v = post(svc, &req, &http, &err);
    }
    vk_triggers_status_req_release(&req);
    const char *state = vk_store_chain_status_name(j->status);
    int64_t now = vk__trig_now(svc);
    char attempt[24];
    snprintf(attempt, sizeof(attempt), "%d", j->attempts + 1);
    if (v == V_RETRY) {
        int64_t give_up = svc->opts.status_give_up_ms > 0 ? svc->opts.status_give_up_ms
                                                          : VK_TRIGGERS_STATUS_DEFAULT_GIVE_UP_MS;
        if (j->first_failed_at && now - j->first_failed_at >= give_up) {
            vk_log_write(VK_LOG_ERROR, "triggers", "commit status given up", "chain_id",
                         j->chain_id, "provider", j->provider, "state", state, "attempts", attempt,
                         "error", err.msg, NULL);
            return vk_store_status_done(svc->opts.store, j->chain_id, claimer, j->seq, NULL, serr);
        }
        *ended = false;
        int64_t base = svc->opts.status_retry_ms > 0 ? svc->opts.status_retry_ms : 1000;
        int64_t delay = vk_triggers_status_backoff(base, j->attempts + 1);
        char in_ms[24];
        snprintf(in_ms, sizeof(in_ms), "%lld", (long long)delay);
        vk_log_write(VK_LOG_WARN, "triggers", "commit status failed, will retry", "chain_id",
                     j->chain_id, "provider", j->provider, "state", state, "attempt", attempt,
                     "retry_in_ms", in_ms, "error", err.msg, NULL);
        return vk_store_status_retry(svc->opts.store, j->chain_id, claimer, j->seq, now + delay,
                                     now, serr);
    }
    if (v == V_DONE)
        vk_log_write(VK_LOG_DEBUG, "triggers", "commit status reported", "chain_id", j->chain_id,
                     "provider", j->provider, "state", state, NULL);
    else
        vk_log_write(VK_LOG_WARN, "triggers", "commit status dropped", "chain_id", j->chain_id,
                     "provider", j->provider ? j->provider : "", "state", state, "error", err.msg,
                     NULL);
    return vk_store_status_done(svc->opts.store, j->chain_id, claimer, j->seq, NULL, serr);
}

static int status_pass(struct vk_triggers_service *svc, const char *claimer, size_t *ended,
                       struct vk_err *err)
{
    size_t done = 0;
    int rc = 0;
    for (;;) {
        struct vk_pool pool;
        vk_pool_init(&pool, 0);
        struct vk_store_status_job *jobs = NULL;
        size_t n = 0;
        int64_t now = vk__trig_now(svc);
        rc = vk_store_status_claim(svc->opts.store, claimer, now, now - STATUS_STALE_MS,
                                   STATUS_BATCH, &pool, &jobs, &n, err);
        for (size_t i = 0; rc == 0 && i < n; i++) {
            bool ended_one = false;
            rc = report(svc, claimer, &jobs[i], &ended_one, err);
            done += rc == 0 && ended_one;
        }
        vk_pool_release(&pool);
        if (rc || n < STATUS_BATCH)
            break;
    }
    if (ended)
        *ended = done;
    return rc;
}

int vk_triggers_status_run(struct vk_triggers_service *svc, size_t *posted, struct vk_err *err)
{
    char claimer[VK_UUID_LEN + 16];
    snprintf(claimer, sizeof(claimer), "%s-status-run", svc->instance);
    return status_pass(svc, claimer, posted, err);
}

static void *status_main(void *p)
{
    struct vk_triggers_service *svc = p;
    char claimer[VK_UUID_LEN + 16];
    snprintf(claimer, sizeof(claimer), "%s-status", svc->instance);
    int64_t every = svc->opts.status_poll_ms > 0 ? svc->opts.status_poll_ms : 500;
    for (;;) {
        struct vk_err err;
        vk_err_clear(&err);
        if (status_pass(svc, claimer, NULL, &err) != 0)
            vk_log_write(VK_LOG_WARN, "triggers", "cannot report commit statuses", "error", err.msg,
                         NULL);
        struct timespec ts = vk_time_deadline(every);
        pthread_mutex_lock(&svc->lock);
        while (!svc->stopping)
            if (pthread_cond_timedwait(&svc->cond, &svc->lock, &ts) == ETIMEDOUT)
                break;
        bool stop = svc->stopping;
        pthread_mutex_unlock(&svc->lock);
        if (stop)
            break;
    }
    return NULL;
}

int vk__trig_status_start(struct vk_triggers_service *svc, struct vk_err *err)
{
    if (svc->opts.status_poll_ms < 0)
        return 0;
    if (pthread_create(&svc->status_thread, NULL, status_main, svc) != 0)
        return vk_err_set(err, VK_EIO, "cannot start the commit status thread");
    svc->status_started = true;
    return 0;
}

void vk__trig_status_join(struct vk_triggers_service *svc)
{
    if (svc->status_started)
        pthread_join(svc->status_thread, NULL);
    svc->status_started = false;
}
