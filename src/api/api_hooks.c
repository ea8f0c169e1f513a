/*
 * Webhooks: POST /hooks/github, /hooks/gitlab, /hooks/gitea, /hooks/bitbucket and
 * /hooks/generic/{repo_id} (docs/triggers.md).
 *
 * Order of work, so that nothing unverified is acted on:
 *   1. find the candidate repositories: for the generic hook the one in the path; else the
 *      registered repositories whose URL equals (after normalisation) one of the URLs in
 *      the body's repository/project object (malformed JSON: 400; none: 404);
 *   2. verify the signature with each candidate's secret, in constant time (none: 401);
 *   3. normalise the event (400 on a bad payload), check it names that repository;
 *   4. a delivery id (or signed body) seen before: 200, nothing more; the keys are
 *      remembered in the transaction that queues the request, never apart from it;
 *   5. ping, ignored events and deletions: 200, nothing more;
 *   6. queue a trigger request with the body and the headers the parser looked at: the
 *      trigger service reads the workflows at the event's commit and starts the chains
 *      (and failed chains for workflows that do not load); the client waits, suspended,
 *      for that outcome, at most opts.hook_wait_ms, then gets 202 with the request's id.
 * The HTTP thread never runs git: steps 1-5 are store reads and pure functions.
 */
#include "api_int.h"
#include "vulcan/telemetry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_HOOK_BODY (1024u * 1024u) /* what providers send is far smaller */
#define MAX_CANDIDATES 32             /* URL strings looked at in a body */

static const char *header_fn(void *ctx, const char *name)
{
    return vk_http_header(ctx, name);
}

/* ---------------------------------------------------------------- Finding the repository */

struct cands {
    const char *urls[MAX_CANDIDATES];
    size_t n;
};

/* Collect URL-looking strings of `v` (the repository/project object) to depth 3. */
static void collect_urls(json_t *v, int depth, struct cands *c)
{
    if (depth > 3 || c->n == MAX_CANDIDATES)
        return;
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        if (json_string_length(v) <= VK_TRIGGERS_MAX_URL &&
            (strstr(s, "://") || s[0] == '/' || (strchr(s, '@') && strchr(s, ':'))))
            c->urls[c->n++] = s;
        return;
    }
    const char *k;
    json_t *x;
    if (json_is_object(v)) {
        json_object_foreach(v, k, x)
        {
            collect_urls(x, depth + 1, c);
        }
    }
}

/* The registered repositories one of whose URLs is in `body`. *n (<= max) of them. */
static int find_candidates(struct vk_api *api, json_t *body, struct vk_pool *pool,
                           struct vk_store_repo *out, size_t max, size_t *n, struct vk_err *err)
{
    struct cands c = {.n = 0};
    static const char *const keys[] = {"repository", "project"};
    for (size_t i = 0; i < VK_ARRAY_LEN(keys); i++)
        collect_urls(json_object_get(body, keys[i]), 0, &c);
    *n = 0;
    if (c.n == 0)
        return 0;
    struct vk_store_repo *repos = NULL;
    size_t nrepos = 0;
    int rc = vk_store_repo_list(api->opts.store, pool, &repos, &nrepos, err);
    if (rc)
        return rc;
    for (size_t r = 0; r < nrepos && *n < max; r++) {
        for (size_t u = 0; u < c.n; u++) {
            if (vk_triggers_url_same(repos[r].url, c.urls[u])) {
                out[(*n)++] = repos[r];
                break;
            }
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- Handling */

static void reply_result(struct vk_http_req *req, json_t *chains, json_t *skipped, const char *note)
{
    json_t *o =
        chains && skipped ? json_pack("{s:o, s:o}", "chains", chains, "skipped", skipped) : NULL;
    if (o && note && json_object_set_new(o, "note", json_string(note)) != 0) {
        json_decref(o);
        o = NULL;
    }
    if (!o) {
        vk_http_reply_error(req, 500, "internal", "out of memory");
        return;
    }
    vk_http_reply_json(req, 200, o);
}

/* Verdicts (label values of vulcan_webhook_deliveries_total). */
#define V_ACCEPTED "accepted"
#define V_IGNORED "ignored"
#define V_BAD_SIGNATURE "bad_signature"
#define V_INVALID "invalid"
#define V_ERROR "error"

/* One delivery, steps 1-6. Replies (or leaves the reply to step 6, then NULL is returned:
 * the outcome counts it); else returns the verdict. `trace` (may be NULL) is the
 * traceparent the chains hang from. */
static const char *handle_delivery(struct vk_api *api, struct vk_http_req *req,
                                   enum vk_triggers_provider prov, const char *repo_id,
                                   const char *trace)
{
    const char *verdict = V_ACCEPTED;
    struct vk_err err;
    vk_err_clear(&err);
    struct vk_pool *pool = vk_http_pool(req);
    size_t len = 0;
    const char *body = vk_http_body(req, &len);
    struct vk_store_repo cand[4];
    size_t ncand = 0;
    int rc;

    /* 1. Candidates. */
    if (repo_id) {
        rc = vk_store_repo_get(api->opts.store, repo_id, pool, &cand[0], &err);
        if (rc) {
            vk__api_reply_err(req, &err, rc);
            return rc == VK_ENOTFOUND || rc == VK_EINVAL ? V_INVALID : V_ERROR;
        }
        ncand = 1;
    } else {
        json_error_t je;
        json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, &je);
        if (!json_is_object(j)) {
            json_decref(j);
            vk_http_reply_error(req, 400, "bad_request", "the body is not a JSON object%s%s",
                                j ? "" : ": ", j ? "" : je.text);
            return V_INVALID;
        }
        rc = find_candidates(api, j, pool, cand, VK_ARRAY_LEN(cand), &ncand, &err);
        json_decref(j);
        if (rc) {
            vk__api_reply_err(req, &err, rc);
            return V_ERROR;
        }
        if (ncand == 0) {
            vk_http_reply_error(req, 404, "unknown_repository",
                                "no registered repository matches this %s webhook",
                                vk_triggers_provider_name(prov));
            return V_INVALID;
        }
    }
    /* 2. Verify, recording the headers looked at (the trigger service parses again). */
    json_t *headers = json_object();
    if (!headers) {
        vk_http_reply_error(req, 500, "internal", "out of memory");
        return V_ERROR;
    }
    struct vk_triggers_header_log hlog = {.inner = header_fn, .inner_ctx = req, .seen = headers};
    const struct vk_store_repo *repo = NULL;
    for (size_t i = 0; i < ncand && !repo; i++) {
        if (cand[i].webhook_secret &&
            vk_triggers_hook_verify(prov, vk_triggers_header_record, &hlog, body, len,
                                    cand[i].webhook_secret, &err) == 0)
            repo = &cand[i];
    }
    if (!repo) {
        json_decref(headers);
        vk_http_reply_error(req, 401, "unauthorized", "%s",
                            err.msg[0] ? err.msg : "the repository has no webhook secret");
        return V_BAD_SIGNATURE;
    }
    /* 3. Normalise. */
    struct vk_triggers_event *ev = NULL;
    rc = vk_triggers_hook_parse(prov, vk_triggers_header_record, &hlog, body, len, &ev, &err);
    if (rc) {
        json_decref(headers);
        if (rc == VK_ENOMEM)
            vk__api_reply_err(req, &err, rc);
        else
            vk_http_reply_error(req, 400, "bad_request", "%s", err.msg);
        return rc == VK_ENOMEM ? V_ERROR : V_INVALID;
    }
    if (ev->nrepo_urls > 0 && !vk_triggers_event_matches_repo(ev, repo->url)) {
        vk_http_reply_error(req, 404, "unknown_repository",
                            "the event is for another repository than '%s'", repo->url);
        verdict = V_INVALID;
        goto out;
    }
    /* 4. Redelivery, by its id and by its signed body: only the body is signed, so a
     * captured delivery resent without (or with another) id is the same delivery
     * (issue 14 item 7). Both are remembered for VK_STORE_DELIVERY_KEEP_MS. */
    const char *pname = vk_triggers_provider_name(prov);
    char digest[VK_SHA256_HEX_LEN + 48], hex[VK_SHA256_HEX_LEN];
    if (vk_sha256_hex(body ? body : "", len, hex) < 0) {
        vk_http_reply_error(req, 500, "internal", "cannot hash the delivery");
        verdict = V_ERROR;
        goto out;
    }
    snprintf(digest, sizeof(digest), "body:%.36s:%s", repo->id, hex);
    const char *keys[2] = {digest, ev->delivery_id};
    for (size_t k = 0; k < 2 && keys[k]; k++) {
        bool seen = false;
        rc = vk_store_delivery_known(api->opts.store, pname, keys[k], &seen, &err);
        if (rc) {
            vk__api_reply_err(req, &err, rc);
            verdict = V_ERROR;
            goto out;
        }
        if (seen) {
            reply_result(req, json_array(), json_array(), "redelivery: handled before");
            verdict = V_IGNORED;
            goto out;
        }
    }
    /* 5. Events that start nothing. */
    struct vk_wf_event wfev;
    if (vk_triggers_event_to_wf(ev, &wfev) != 0) {
        const char *why = ev->kind == VK_TRIGGERS_EV_PING ? "ping"
                          : ev->deleted                   ? "ref deleted: nothing to build"
                                                          : "event not acted on";
        reply_result(req, json_array(), json_array(), why);
        verdict = V_IGNORED;
        goto out;
    }
    /* 6. The trigger service does the rest; the outcome is the reply. */
    json_t *params = json_pack("{s:O}", "headers", headers);
    char *ptext = params ? json_dumps(params, JSON_COMPACT) : NULL;
    json_decref(params);
    if (!ptext) {
        vk_http_reply_error(req, 500, "internal", "out of memory");
        verdict = V_ERROR;
        goto out;
    }
    /* The keys are remembered in the transaction that queues the request (never one
     * without the other); two copies racing past the check above meet there. */
    struct vk_store_treq rq = {.kind = VK_STORE_TREQ_WEBHOOK,
                               .provider = pname,
                               .delivery_id = ev->delivery_id,
                               .dedup = {digest, ev->delivery_id},
                               .params = ptext,
                               .body = body,
                               .body_len = len,
                               .trace_id = trace};
    snprintf(rq.tenant_id, sizeof(rq.tenant_id), "%s", repo->tenant_id);
    snprintf(rq.repository_id, sizeof(rq.repository_id), "%s", repo->id);
    int64_t wait =
        api->opts.hook_wait_ms > 0 ? api->opts.hook_wait_ms : VK_API_DEFAULT_HOOK_WAIT_MS;
    rc = vk__api_treq_submit(api, req, &rq, wait, VK__API_TREQ_LATE_202, pname);
    free(ptext);
    if (rc == VK_EEXIST) {
        reply_result(req, json_array(), json_array(), "redelivery: handled before");
        verdict = V_IGNORED;
    } else {
        verdict = rc ? V_ERROR : NULL;
    }
out:
    json_decref(headers);
    vk_triggers_event_free(ev);
    return verdict;
}

/* A delivery with its telemetry: the request span (the chains' parent) and the delivery
 * counter (for a queued delivery, counted when its outcome is answered). Nothing of the
 * body or the signature is logged or put on the span. */
static void handle(struct vk_api *api, struct vk_http_req *req, enum vk_triggers_provider prov,
                   const char *repo_id)
{
    struct vk_span *span = vk__api_span_start(api, req);
    char tp[VK_TRACEPARENT_LEN] = "";
    vk_trace_span_traceparent(span, tp);
    const char *pname = vk_triggers_provider_name(prov);
    vk_trace_span_set_str(span, "vulcan.webhook.provider", pname);
    const char *verdict = handle_delivery(api, req, prov, repo_id, tp[0] ? tp : NULL);
    if (verdict && api->m.webhook_deliveries_total)
        vk_metrics_counter_inc(
            vk_metrics_counter_with(api->m.webhook_deliveries_total, pname, verdict));
    vk_trace_span_set_str(span, "vulcan.webhook.verdict", verdict ? verdict : "queued");
    if (span && verdict && strcmp(verdict, V_ERROR) == 0)
        vk_trace_span_set_status(span, VK_SPAN_ERROR, "webhook not handled");
    vk_trace_end_span(api->opts.tracer, span);
}

static void h_github(struct vk_http_req *req, void *ctx)
{
    handle(ctx, req, VK_TRIGGERS_GITHUB, NULL);
}

static void h_gitlab(struct vk_http_req *req, void *ctx)
{
    handle(ctx, req, VK_TRIGGERS_GITLAB, NULL);
}

static void h_gitea(struct vk_http_req *req, void *ctx)
{
    handle(ctx, req, VK_TRIGGERS_GITEA, NULL);
}

static void h_bitbucket(struct vk_http_req *req, void *ctx)
{
    handle(ctx, req, VK_TRIGGERS_BITBUCKET, NULL);
}

static void h_generic(struct vk_http_req *req, void *ctx)
{
    handle(ctx, req, VK_TRIGGERS_GENERIC, vk_http_param(req, "repo_id"));
}

int vk__api_hook_routes(struct vk_api *api, struct vk_err *err)
{
    const struct vk_http_route_opts o = {.max_body = MAX_HOOK_BODY};
    static const struct {
        const char *path;
        vk_http_handler_fn fn;
    } routes[] = {
        {"/hooks/github", h_github},
        {"/hooks/gitlab", h_gitlab},
        {"/hooks/gitea", h_gitea},
        {"/hooks/bitbucket", h_bitbucket},
        {"/hooks/generic/{repo_id}", h_generic},
    };
    for (size_t i = 0; i < VK_ARRAY_LEN(routes); i++) {
        int rc = vk_http_route(api->http, "POST", routes[i].path, routes[i].fn, api, &o, err);
        if (rc)
            return rc;
    }
    return 0;
}
