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
 *   4. a delivery id seen before: 200, nothing more;
 *   5. ping, ignored events and deletions: 200, nothing more;
 *   6. read the workflows at the event's commit from the mirror cache, start the chains
 *      whose triggers match (and failed chains for workflows that do not load), and after
 *      a push to the default branch refresh the repository's schedules.
 * The git work runs on the HTTP thread that received the request: with a warm mirror it is
 * one `git cat-file --batch` process for the listing and every workflow file
 * (vk_git_read_files()); run the server with enough --http-threads for slow remotes.
 */
#include "api_int.h"
#include "vulcan/telemetry.h"

#include <stdio.h>
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
    json_t *o = json_pack("{s:o, s:o}", "chains", chains, "skipped", skipped);
    if (note)
        json_object_set_new(o, "note", json_string(note));
    vk_http_reply_json(req, 200, o);
}

static void reply_git_error(struct vk_http_req *req, const struct vk_err *err, int rc)
{
    if (rc == VK_EDB || rc == VK_ENOMEM) {
        vk__api_reply_err(req, err, rc);
        return;
    }
    vk_http_reply_error(req, 502, "git_error", "cannot read the repository: %s", err->msg);
}

/* Steps 6: chains for a verified, normalised event. Replies. Returns 0 when it replied
 * with success, else the error code (after replying). */
static int run_event(struct vk_api *api, struct vk_http_req *req, const struct vk_store_repo *repo,
                     struct vk_triggers_event *ev, struct vk_wf_event *wfev, const char *trace,
                     size_t *nchains)
{
    struct vk_err err;
    vk_err_clear(&err);
    struct vk_git_mirror *m = NULL;
    struct vk__api_trig_set set = {0};
    json_t *chains = json_array(), *skipped = json_array();
    char sha[65] = "";
    int rc = vk__api_mirror_open(api, repo->url, &m, &err);
    if (rc == 0 && vk_git_valid_sha(ev->commit_sha))
        snprintf(sha, sizeof(sha), "%s", ev->commit_sha);
    else if (rc == 0)
        rc = vk_git_resolve_commit(m, ev->commit_sha, sha, &err); /* Bitbucket's short sha */
    if (rc == 0)
        rc = vk__api_trig_load(api, m, repo, sha, NULL, &set, &err);
    if (rc == 0 && !ev->paths_complete && vk__api_trig_needs_paths(&set, wfev->type)) {
        struct vk_git_paths paths;
        vk_git_paths_init(&paths);
        char base[65] = "";
        if (ev->kind == VK_TRIGGERS_EV_PULL_REQUEST)
            rc = vk_git_resolve_branch(m, ev->pr_base_branch, base, &err);
        else if (ev->before)
            snprintf(base, sizeof(base), "%s", ev->before);
        if (rc == 0)
            rc = vk_git_changed_paths(m, base[0] ? base : NULL, sha, &paths, &err);
        if (rc == 0)
            rc = vk_triggers_event_set_paths(ev, paths.items, paths.n, &err);
        if (rc == 0)
            rc = vk_triggers_event_to_wf(ev, wfev);
        vk_git_paths_release(&paths);
    }
    if (rc) {
        reply_git_error(req, &err, rc);
        goto out;
    }
    char ref[VK_TRIGGERS_MAX_REF + 16];
    struct vk_orch_context c = {
        .tenant_id = repo->tenant_id,
        .repository_id = repo->id,
        .repository_url = repo->url,
        .commit_sha = sha,
        .branch = ev->branch,
        .trigger = vk_wf_trigger_type_name(wfev->type),
        .trigger_ref = ev->ref,
        .pr_number = ev->pr_number,
        .tag = ev->tag,
        .trace_id = trace,
    };
    if (ev->kind == VK_TRIGGERS_EV_PULL_REQUEST) {
        /* The chain builds the PR's head: BRANCH is the source branch (so that a condition
         * such as $BRANCH == 'main' does not hold for a PR into main); the ref names the
         * target branch. */
        if (ev->pr_head_branch)
            c.branch = ev->pr_head_branch;
        snprintf(ref, sizeof(ref), "refs/heads/%s", ev->pr_base_branch ? ev->pr_base_branch : "");
        c.trigger_ref = ref;
    }
    rc = vk__api_trig_submit(api, &set, &c, wfev, chains, skipped, &err);
    if (rc) {
        vk__api_reply_err(req, &err, rc);
        goto out;
    }
    if (ev->kind == VK_TRIGGERS_EV_PUSH && ev->branch &&
        strcmp(ev->branch, repo->default_branch) == 0) {
        struct vk_err e2;
        vk_err_clear(&e2);
        if (vk__api_cron_refresh_set(api, repo, &set, &e2) != 0)
            vk_log_write(VK_LOG_WARN, "triggers", "cannot refresh schedules", "repository_id",
                         repo->id, "error", e2.msg, NULL);
    }
    *nchains = json_array_size(chains);
    reply_result(req, chains, skipped, NULL);
    chains = skipped = NULL;
out:
    json_decref(chains);
    json_decref(skipped);
    vk__api_trig_set_release(&set);
    vk_git_mirror_free(m);
    return rc;
}

/* Verdicts (label values of vulcan_webhook_deliveries_total). */
#define V_ACCEPTED "accepted"
#define V_IGNORED "ignored"
#define V_BAD_SIGNATURE "bad_signature"
#define V_INVALID "invalid"
#define V_ERROR "error"

/* One delivery, steps 1-6. Replies; returns the verdict and, through *nchains, the number
 * of chains started. `trace` (may be NULL) is the traceparent the chains hang from. */
static const char *handle_delivery(struct vk_api *api, struct vk_http_req *req,
                                   enum vk_triggers_provider prov, const char *repo_id,
                                   const char *trace, size_t *nchains)
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
    /* 2. Verify. */
    const struct vk_store_repo *repo = NULL;
    for (size_t i = 0; i < ncand && !repo; i++) {
        if (cand[i].webhook_secret && vk_triggers_hook_verify(prov, header_fn, req, body, len,
                                                              cand[i].webhook_secret, &err) == 0)
            repo = &cand[i];
    }
    if (!repo) {
        vk_http_reply_error(req, 401, "unauthorized", "%s",
                            err.msg[0] ? err.msg : "the repository has no webhook secret");
        return V_BAD_SIGNATURE;
    }
    /* 3. Normalise. */
    struct vk_triggers_event *ev = NULL;
    rc = vk_triggers_hook_parse(prov, header_fn, req, body, len, &ev, &err);
    if (rc) {
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
    /* 4. Redelivery. */
    const char *pname = vk_triggers_provider_name(prov);
    if (ev->delivery_id) {
        bool seen = false;
        rc = vk_store_delivery_seen(api->opts.store, pname, ev->delivery_id, vk_time_now_ms(),
                                    &seen, &err);
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
    /* 6. Chains. */
    rc = run_event(api, req, repo, ev, &wfev, trace, nchains);
    if (rc)
        verdict = V_ERROR;
    if (rc && ev->delivery_id) {
        /* Let the provider's retry be handled. */
        struct vk_err e2;
        if (vk_store_delivery_forget(api->opts.store, pname, ev->delivery_id, &e2) != 0)
            vk_log_write(VK_LOG_WARN, "triggers", "cannot forget a failed delivery", "error",
                         e2.msg, NULL);
    }
out:
    vk_triggers_event_free(ev);
    return verdict;
}

/* A delivery with its telemetry: the request span (the chains' parent), the delivery
 * counter and, when chains started, the webhook-to-chain latency. Nothing of the body or
 * the signature is logged or put on the span. */
static void handle(struct vk_api *api, struct vk_http_req *req, enum vk_triggers_provider prov,
                   const char *repo_id)
{
    int64_t t0 = vk_time_mono_ns();
    struct vk_span *span = vk__api_span_start(api, req);
    char tp[VK_TRACEPARENT_LEN] = "";
    vk_trace_span_traceparent(span, tp);
    const char *pname = vk_triggers_provider_name(prov);
    vk_trace_span_set_str(span, "vulcan.webhook.provider", pname);
    size_t nchains = 0;
    const char *verdict = handle_delivery(api, req, prov, repo_id, tp[0] ? tp : NULL, &nchains);
    if (api->m.webhook_deliveries_total) {
        vk_metrics_counter_inc(
            vk_metrics_counter_with(api->m.webhook_deliveries_total, pname, verdict));
        if (nchains > 0)
            vk_metrics_histogram_observe(vk_metrics_histogram_with(api->m.webhook_to_chain, pname),
                                         (double)(vk_time_mono_ns() - t0) / 1e9);
    }
    vk_trace_span_set_str(span, "vulcan.webhook.verdict", verdict);
    vk_trace_span_set_int(span, "vulcan.chains", (int64_t)nchains);
    if (span && strcmp(verdict, V_ERROR) == 0)
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
