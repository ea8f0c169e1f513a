/*
 * Repositories: POST/GET /api/v1/repos, GET/PATCH/DELETE /api/v1/repos/{id},
 * GET /api/v1/repos/{id}/workflows (the workflows at the default branch head, with their
 * manual inputs) and POST /api/v1/repos/{id}/trigger (a manual run). The last two need
 * git: they are trigger requests, answered with the trigger service's outcome.
 *
 * The webhook secret and the commit-status token are write-only: answers say only
 * whether one is set (has_secret, has_status_token).
 */
#include "api_int.h"
#include "vulcan/telemetry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SECRET 1024
#define MAX_GLOB 1024

/* ---------------------------------------------------------------- JSON */

static json_t *repo_json(const struct vk_store_repo *r)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:b, s:b, s:o, s:o, s:b, s:o}", "id", r->id,
                     "url", r->url, "provider", r->provider, "workflow_glob", r->workflow_glob,
                     "default_branch", r->default_branch, "allow_url_imports", r->allow_url_imports,
                     "has_secret", r->webhook_secret && *r->webhook_secret, "has_status_token",
                     r->status_token && *r->status_token, "status_api_url",
                     vk__api_str(r->status_api_url), "created_at", vk__api_time(r->created_at),
                     "allow_fork_secrets", r->allow_fork_secrets, "protected_refs",
                     vk__api_str(r->protected_refs));
}

/* A status token: printable, no spaces (it goes into an HTTP header). */
static bool token_ok(json_t *v)
{
    if (!json_is_string(v) || json_string_length(v) > VK_TRIGGERS_STATUS_MAX_TOKEN)
        return false;
    const char *t = json_string_value(v);
    for (size_t i = 0; i < json_string_length(v); i++)
        if ((unsigned char)t[i] < 0x21 || t[i] == 0x7f)
            return false;
    return true;
}

/* A status API base URL: http(s), no spaces, control characters, query or fragment. */
static bool api_url_ok(json_t *v)
{
    if (!json_is_string(v) || json_string_length(v) > VK_TRIGGERS_MAX_URL)
        return false;
    const char *u = json_string_value(v);
    if (strncmp(u, "https://", 8) != 0 && strncmp(u, "http://", 7) != 0)
        return false;
    for (size_t i = 0; i < json_string_length(v); i++)
        if ((unsigned char)u[i] < 0x21 || u[i] == 0x7f || u[i] == '?' || u[i] == '#')
            return false;
    return strlen(u) == json_string_length(v);
}

static bool bad(struct vk_http_req *req, const char *fmt, const char *what)
{
    vk_http_reply_error(req, 400, "bad_request", fmt, what);
    return false;
}

/* Check the fields present in `body` and fill `u` (set bits) and `r` (values). */
static bool read_fields(struct vk_api *api, struct vk_http_req *req, json_t *body,
                        struct vk_store_repo_update *u)
{
    static const char *const known[] = {"url",           "provider",       "webhook_secret",
                                        "workflow_glob", "default_branch", "allow_url_imports",
                                        "status_token",  "status_api_url", "allow_fork_secrets",
                                        "protected_refs"};
    const char *k;
    json_t *v;
    json_object_foreach(body, k, v)
    {
        bool ok = false;
        for (size_t i = 0; i < VK_ARRAY_LEN(known) && !ok; i++)
            ok = strcmp(k, known[i]) == 0;
        if (!ok)
            return bad(req, "unknown field '%s'", k);
    }
    memset(u, 0, sizeof(*u));
    if ((v = json_object_get(body, "url"))) {
        char norm[VK_TRIGGERS_MAX_URL + 1];
        if (!json_is_string(v) ||
            vk_triggers_url_normalize(json_string_value(v), norm, sizeof(norm)) != 0 ||
            json_string_value(v)[0] == '-')
            return bad(req, "'%s' must be a repository URL (https, ssh, git, file:// or a path)",
                       "url");
        /* the policy's checks that need no resolver; the rest before every fetch, on the
         * trigger service's threads (a DNS lookup may take seconds) */
        struct vk_git_url_target t;
        struct vk_err perr;
        vk_err_clear(&perr);
        if (api->opts.url_policy &&
            vk_git_url_check_static(api->opts.url_policy, json_string_value(v), &t, &perr) != 0) {
            vk_http_reply_error(req, 400, "url_not_allowed", "%s", perr.msg);
            return false;
        }
        u->url = json_string_value(v);
        u->set |= VK_STORE_REPO_SET_URL;
    }
    if ((v = json_object_get(body, "provider"))) {
        enum vk_triggers_provider p;
        if (!json_is_string(v) || vk_triggers_provider_parse(json_string_value(v), &p) != 0)
            return bad(req, "'%s' must be github, gitlab, gitea, bitbucket or generic", "provider");
        u->provider = json_string_value(v);
        u->set |= VK_STORE_REPO_SET_PROVIDER;
    }
    if ((v = json_object_get(body, "webhook_secret"))) {
        if (!json_is_null(v) && (!json_is_string(v) || json_string_length(v) > MAX_SECRET))
            return bad(req, "'%s' must be a string of at most 1024 bytes, or null",
                       "webhook_secret");
        u->webhook_secret =
            json_is_string(v) && json_string_length(v) ? json_string_value(v) : NULL;
        u->set |= VK_STORE_REPO_SET_SECRET;
    }
    if ((v = json_object_get(body, "workflow_glob"))) {
        if (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > MAX_GLOB ||
            json_string_value(v)[0] == '-')
            return bad(req, "'%s' must be a non-empty glob such as .vulcan/*.kdl", "workflow_glob");
        u->workflow_glob = json_string_value(v);
        u->set |= VK_STORE_REPO_SET_GLOB;
    }
    if ((v = json_object_get(body, "default_branch"))) {
        if (!json_is_string(v) || !vk_git_valid_branch(json_string_value(v)))
            return bad(req, "'%s' must be a valid branch name", "default_branch");
        u->default_branch = json_string_value(v);
        u->set |= VK_STORE_REPO_SET_BRANCH;
    }
    if ((v = json_object_get(body, "allow_url_imports"))) {
        if (!json_is_boolean(v))
            return bad(req, "'%s' must be true or false", "allow_url_imports");
        /* URL imports make the server download from the network: a maintainer's call
         * (the caller's role in the org; any caller of a server with --no-auth) */
        const struct vk__api_principal *who = vk_http_req_principal(req);
        if (json_is_true(v) && who && who->role < VK_ROLE_MAINTAINER) {
            vk_http_reply_error(req, 403, "forbidden",
                                "turning allow_url_imports on needs the maintainer role; this "
                                "token acts as %s",
                                vk_auth_role_name(who->role));
            return false;
        }
        u->allow_url_imports = json_is_true(v);
        u->set |= VK_STORE_REPO_SET_URL_IMPORTS;
    }
    if ((v = json_object_get(body, "status_token"))) {
        if (!json_is_null(v) && !token_ok(v))
            return bad(req, "'%s' must be a token of at most 1024 printable bytes, or null",
                       "status_token");
        u->status_token = json_is_string(v) && json_string_length(v) ? json_string_value(v) : NULL;
        u->set |= VK_STORE_REPO_SET_STATUS_TOKEN;
    }
    if ((v = json_object_get(body, "status_api_url"))) {
        if (!json_is_null(v) && !api_url_ok(v))
            return bad(req, "'%s' must be an http(s) URL without query or fragment, or null",
                       "status_api_url");
        u->status_api_url = json_is_string(v) ? json_string_value(v) : NULL;
        u->set |= VK_STORE_REPO_SET_STATUS_API;
    }
    if ((v = json_object_get(body, "allow_fork_secrets"))) {
        if (!json_is_boolean(v))
            return bad(req, "'%s' must be true or false", "allow_fork_secrets");
        u->allow_fork_secrets = json_is_true(v);
        u->set |= VK_STORE_REPO_SET_FORK_SECRETS;
    }
    if ((v = json_object_get(body, "protected_refs"))) {
        if (!json_is_null(v) &&
            (!json_is_string(v) || json_string_length(v) == 0 || json_string_length(v) > MAX_GLOB ||
             strlen(json_string_value(v)) != json_string_length(v)))
            return bad(req,
                       "'%s' must be comma-separated branch globs such as main,release/*, "
                       "or null (the default branch)",
                       "protected_refs");
        u->protected_refs = json_is_string(v) ? json_string_value(v) : NULL;
        u->set |= VK_STORE_REPO_SET_PROTECTED_REFS;
    }
    return true;
}

/* The request's JSON object body into `u`; else a 400 is sent and false returned. */
static bool read_body(struct vk_api *api, struct vk_http_req *req, struct vk_store_repo_update *u)
{
    json_t *body = vk_http_json(req);
    if (!json_is_object(body)) {
        vk_http_reply_error(req, 400, "bad_request", "the body must be a JSON object");
        return false;
    }
    return read_fields(api, req, body, u);
}

static void reply_store_err(struct vk_http_req *req, const struct vk_err *err, int rc)
{
    if (rc == VK_EEXIST)
        vk_http_reply_error(req, 409, "conflict", "%s", err->msg);
    else
        vk__api_reply_err(req, err, rc);
}

/* The repository's schedules may have changed: ask the trigger service to read them. */
static void want_refresh(struct vk_api *api, const char *tenant_id, const char *repo_id)
{
    struct vk_err err;
    vk_err_clear(&err);
    if (vk_triggers_request_refresh(api->opts.store, tenant_id, repo_id, &err) != 0)
        vk_log_write(VK_LOG_WARN, "api", "cannot queue a schedule refresh", "repository_id",
                     repo_id, "error", err.msg, NULL);
    else
        vk_triggers_wake(api->opts.triggers);
}

/* ---------------------------------------------------------------- CRUD */

static void h_create(struct vk_http_req *req, void *ctx)
{
    struct vk_api *api = ctx;
    struct vk_store_repo_update u;
    if (!read_body(api, req, &u))
        return;
    if (!(u.set & VK_STORE_REPO_SET_URL)) {
        vk_http_reply_error(req, 400, "bad_request", "'url' is required");
        return;
    }
    struct vk_store_repo r = {
        .url = u.url,
        .provider = u.provider ? u.provider : "generic",
        .webhook_secret = u.webhook_secret,
        .workflow_glob = u.workflow_glob ? u.workflow_glob : VK_GIT_DEFAULT_GLOB,
        .default_branch = u.default_branch ? u.default_branch : "main",
        .allow_url_imports = u.allow_url_imports,
        .status_token = u.status_token,
        .status_api_url = u.status_api_url,
    };
    snprintf(r.tenant_id, sizeof(r.tenant_id), "%s", vk_orch_default_tenant(api->opts.orch));
    struct vk_err err;
    vk_err_clear(&err);
    int rc = vk_store_repo_create(api->opts.store, &r, &err);
    /* The secrets' exposure settings are not in the row made: set them after. */
    u.set &= VK_STORE_REPO_SET_FORK_SECRETS | VK_STORE_REPO_SET_PROTECTED_REFS;
    if (rc == 0 && u.set)
        rc = vk_store_repo_update(api->opts.store, r.id, &u, &err);
    r.allow_fork_secrets = u.allow_fork_secrets;
    r.protected_refs = u.protected_refs;
    if (rc) {
        reply_store_err(req, &err, rc);
        return;
    }
    want_refresh(api, r.tenant_id, r.id);
    vk_log_write(VK_LOG_INFO, "api", "repository created", "repository_id", r.id, "url", r.url,
                 NULL);
    vk_http_reply_json(req, 201, repo_json(&r));
}

static void h_list(struct vk_http_req *req, void *ctx)
{
    struct vk_api *api = ctx;
    struct vk_store_repo *repos = NULL;
    size_t n = 0;
    struct vk_err err;
    vk_err_clear(&err);
    int rc = vk_store_repo_list(api->opts.store, vk_http_pool(req), &repos, &n, &err);
    if (rc) {
        vk__api_reply_err(req, &err, rc);
        return;
    }
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, repo_json(&repos[i]));
    vk_http_reply_json(req, 200, json_pack("{s:o}", "repos", a));
}

static bool get_repo(struct vk_api *api, struct vk_http_req *req, struct vk_store_repo *r)
{
    struct vk_err err;
    vk_err_clear(&err);
    int rc =
        vk_store_repo_get(api->opts.store, vk_http_param(req, "id"), vk_http_pool(req), r, &err);
    if (rc)
        vk__api_reply_err(req, &err, rc);
    return rc == 0;
}

static void h_get(struct vk_http_req *req, void *ctx)
{
    struct vk_store_repo r;
    if (get_repo(ctx, req, &r))
        vk_http_reply_json(req, 200, repo_json(&r));
}

static void h_patch(struct vk_http_req *req, void *ctx)
{
    struct vk_api *api = ctx;
    struct vk_store_repo_update u;
    if (!read_body(api, req, &u))
        return;
    const char *id = vk_http_param(req, "id");
    struct vk_err err;
    vk_err_clear(&err);
    int rc = vk_store_repo_update(api->opts.store, id, &u, &err);
    if (rc) {
        reply_store_err(req, &err, rc);
        return;
    }
    struct vk_store_repo r;
    if (!get_repo(api, req, &r))
        return;
    if (u.set & (VK_STORE_REPO_SET_URL | VK_STORE_REPO_SET_GLOB | VK_STORE_REPO_SET_BRANCH))
        want_refresh(api, r.tenant_id, r.id);
    vk_http_reply_json(req, 200, repo_json(&r));
}

static void h_delete(struct vk_http_req *req, void *ctx)
{
    struct vk_api *api = ctx;
    struct vk_err err;
    vk_err_clear(&err);
    int rc = vk_store_repo_delete(api->opts.store, vk_http_param(req, "id"), &err);
    if (rc) {
        vk__api_reply_err(req, &err, rc);
        return;
    }
    vk_http_reply_empty(req, 204);
}

/* ---------------------------------------------------------------- Workflows and manual runs */

/* Queue a trigger request of `kind` for the repository in the path, with `params`. */
static void submit(struct vk_api *api, struct vk_http_req *req, enum vk_store_treq_kind kind,
                   json_t *params, const char *trace, enum vk__api_treq_late late)
{
    struct vk_store_repo r;
    if (!get_repo(api, req, &r)) {
        json_decref(params);
        return;
    }
    char *text = params ? json_dumps(params, JSON_COMPACT) : NULL;
    json_decref(params);
    if (!text) {
        vk_http_reply_error(req, 500, "internal", "out of memory");
        return;
    }
    struct vk_store_treq rq = {.kind = kind, .params = text, .trace_id = trace};
    snprintf(rq.tenant_id, sizeof(rq.tenant_id), "%s", r.tenant_id);
    snprintf(rq.repository_id, sizeof(rq.repository_id), "%s", r.id);
    int64_t wait =
        api->opts.trigger_wait_ms > 0 ? api->opts.trigger_wait_ms : VK_API_DEFAULT_TRIGGER_WAIT_MS;
    (void)vk__api_treq_submit(api, req, &rq, wait, late, NULL);
    free(text);
}

static void h_workflows(struct vk_http_req *req, void *ctx)
{
    const char *branch = vk_http_query(req, "branch");
    if (branch && *branch && !vk_git_valid_branch(branch)) {
        vk_http_reply_error(req, 400, "bad_request", "invalid branch name");
        return;
    }
    json_t *params = branch && *branch ? json_pack("{s:s}", "branch", branch) : json_object();
    submit(ctx, req, VK_STORE_TREQ_WORKFLOWS, params, NULL, VK__API_TREQ_LATE_503);
}

static void h_trigger(struct vk_http_req *req, void *ctx)
{
    struct vk_api *api = ctx;
    json_t *body = vk_http_json(req);
    if (!json_is_object(body)) {
        vk_http_reply_error(req, 400, "bad_request", "the body must be a JSON object");
        return;
    }
    json_t *jb = json_object_get(body, "branch"), *jc = json_object_get(body, "commit");
    json_t *jw = json_object_get(body, "workflow"), *ji = json_object_get(body, "inputs");
    if ((jb && !json_is_null(jb) && !json_is_string(jb)) ||
        (jc && !json_is_null(jc) && !json_is_string(jc)) ||
        (jw && !json_is_null(jw) && !json_is_string(jw)) ||
        (ji && !json_is_null(ji) && !json_is_object(ji))) {
        vk_http_reply_error(req, 400, "bad_request",
                            "expected {branch, commit?, workflow?, inputs{}} with strings");
        return;
    }
    if (json_is_string(jb) && !vk_git_valid_branch(json_string_value(jb))) {
        vk_http_reply_error(req, 400, "bad_request", "invalid branch name");
        return;
    }
    if (json_is_string(jc) && !vk_git_valid_short_sha(json_string_value(jc))) {
        vk_http_reply_error(req, 400, "bad_request", "invalid commit id");
        return;
    }
    struct vk_span *span = vk__api_span_start(api, req);
    char tp[VK_TRACEPARENT_LEN] = "";
    vk_trace_span_traceparent(span, tp);
    json_t *params = json_pack("{s:O?, s:O?, s:O?, s:O?}", "branch", jb, "commit", jc, "workflow",
                               jw, "inputs", ji);
    submit(api, req, VK_STORE_TREQ_MANUAL, params, tp[0] ? tp : NULL, VK__API_TREQ_LATE_202);
    vk__api_span_end(api, span, 0);
}

int vk__api_repo_routes(struct vk_api *api, struct vk_err *err)
{
    const struct vk_http_route_opts json = {.json = true, .max_body = 64 * 1024};
    const struct vk_http_route_opts trig = {.json = true, .max_body = 512 * 1024};
    int rc = vk_http_route(api->http, "POST", "/api/v1/repos", h_create, api, &json, err);
    if (rc == 0)
        rc = vk_http_route(api->http, "GET", "/api/v1/repos", h_list, api, NULL, err);
    if (rc == 0)
        rc = vk_http_route(api->http, "GET", "/api/v1/repos/{id}", h_get, api, NULL, err);
    if (rc == 0)
        rc = vk_http_route(api->http, "PATCH", "/api/v1/repos/{id}", h_patch, api, &json, err);
    if (rc == 0)
        rc = vk_http_route(api->http, "DELETE", "/api/v1/repos/{id}", h_delete, api, NULL, err);
    if (rc == 0)
        rc = vk_http_route(api->http, "GET", "/api/v1/repos/{id}/workflows", h_workflows, api, NULL,
                           err);
    if (rc == 0)
        rc = vk_http_route(api->http, "POST", "/api/v1/repos/{id}/trigger", h_trigger, api, &trig,
                           err);
    return rc;
}
