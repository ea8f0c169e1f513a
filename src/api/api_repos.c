/*
 * Repositories: POST/GET /api/v1/repos, GET/PATCH/DELETE /api/v1/repos/{id},
 * GET /api/v1/repos/{id}/workflows (the workflows at the default branch head, with their
 * manual inputs) and POST /api/v1/repos/{id}/trigger (a manual run).
 *
 * The webhook secret is write-only: answers say only whether one is set.
 */
#include "api_int.h"
#include "vulcan/telemetry.h"

#include <stdio.h>
#include <string.h>

#define MAX_SECRET 1024
#define MAX_GLOB 1024

/* ---------------------------------------------------------------- JSON */

static json_t *repo_json(const struct vk_store_repo *r)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:b, s:o}", "id", r->id, "url", r->url,
                     "provider", r->provider, "workflow_glob", r->workflow_glob, "default_branch",
                     r->default_branch, "allow_url_imports", r->allow_url_imports, "has_secret",
                     r->webhook_secret && *r->webhook_secret, "created_at",
                     vk__api_time(r->created_at));
}

static bool bad(struct vk_http_req *req, const char *fmt, const char *what)
{
    vk_http_reply_error(req, 400, "bad_request", fmt, what);
    return false;
}

/* Check the fields present in `body` and fill `u` (set bits) and `r` (values). */
static bool read_fields(struct vk_http_req *req, json_t *body, struct vk_store_repo_update *u)
{
    static const char *const known[] = {"url",           "provider",       "webhook_secret",
                                        "workflow_glob", "default_branch", "allow_url_imports"};
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
        u->allow_url_imports = json_is_true(v);
        u->set |= VK_STORE_REPO_SET_URL_IMPORTS;
    }
    return true;
}

static void reply_store_err(struct vk_http_req *req, const struct vk_err *err, int rc)
{
    if (rc == VK_EEXIST)
        vk_http_reply_error(req, 409, "conflict", "%s", err->msg);
    else
        vk__api_reply_err(req, err, rc);
}

/* ---------------------------------------------------------------- CRUD */

static void h_create(struct vk_http_req *req, void *ctx)
{
    struct vk_api *api = ctx;
    json_t *body = vk_http_json(req);
    struct vk_store_repo_update u;
    if (!json_is_object(body)) {
        vk_http_reply_error(req, 400, "bad_request", "the body must be a JSON object");
        return;
    }
    if (!read_fields(req, body, &u))
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
    };
    snprintf(r.tenant_id, sizeof(r.tenant_id), "%s", vk_orch_default_tenant(api->opts.orch));
    struct vk_err err;
    vk_err_clear(&err);
    int rc = vk_store_repo_create(api->opts.store, &r, &err);
    if (rc) {
        reply_store_err(req, &err, rc);
        return;
    }
    vk__api_cron_want_refresh(api, r.id);
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
    json_t *body = vk_http_json(req);
    struct vk_store_repo_update u;
    if (!json_is_object(body)) {
        vk_http_reply_error(req, 400, "bad_request", "the body must be a JSON object");
        return;
    }
    if (!read_fields(req, body, &u))
        return;
    const char *id = vk_http_param(req, "id");
    struct vk_err err;
    vk_err_clear(&err);
    int rc = vk_store_repo_update(api->opts.store, id, &u, &err);
    if (rc) {
        reply_store_err(req, &err, rc);
        return;
    }
    if (u.set & (VK_STORE_REPO_SET_URL | VK_STORE_REPO_SET_GLOB | VK_STORE_REPO_SET_BRANCH))
        vk__api_cron_want_refresh(api, id);
    h_get(req, ctx);
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

/* ---------------------------------------------------------------- Workflows */

static const struct vk_wf_trigger *manual_trigger(const struct vk_workflow *wf)
{
    for (size_t t = 0; wf && t < wf->ntriggers; t++) {
        if (wf->triggers[t].type == VK_WF_TRIG_MANUAL)
            return &wf->triggers[t];
    }
    return NULL;
}

static json_t *inputs_json(const struct vk_wf_trigger *t)
{
    json_t *a = json_array();
    for (size_t i = 0; t && i < t->ninputs; i++) {
        const struct vk_wf_input *in = &t->inputs[i];
        json_t *ch = json_array();
        for (size_t c = 0; c < in->choices.n; c++)
            json_array_append_new(ch, json_string(in->choices.items[c]));
        json_array_append_new(a, json_pack("{s:s, s:o, s:o, s:o, s:b}", "name", in->name,
                                           "description", vk__api_str(in->description), "default",
                                           vk__api_str(in->default_value), "choices", ch,
                                           "required", in->required));
    }
    return a;
}

/* Open the mirror and resolve `commit` (4..64 hex digits) or the head of `branch`. */
static int resolve(struct vk_api *api, const struct vk_store_repo *r, const char *branch,
                   const char *commit, struct vk_git_mirror **m, char sha[65], struct vk_err *err)
{
    int rc = vk__api_mirror_open(api, r->url, m, err);
    if (rc)
        return rc;
    if (commit)
        return vk_git_resolve_commit(*m, commit, sha, err);
    return vk_git_resolve_branch(*m, branch, sha, err);
}

static void reply_git(struct vk_http_req *req, const struct vk_err *err, int rc)
{
    if (rc == VK_ENOTFOUND || rc == VK_EINVAL || rc == VK_ENOMEM || rc == VK_EDB)
        vk__api_reply_err(req, err, rc);
    else
        vk_http_reply_error(req, 502, "git_error", "cannot read the repository: %s", err->msg);
}

static void h_workflows(struct vk_http_req *req, void *ctx)
{
    struct vk_api *api = ctx;
    struct vk_store_repo r;
    if (!get_repo(api, req, &r))
        return;
    const char *branch = vk_http_query(req, "branch");
    if (!branch || !*branch)
        branch = r.default_branch;
    if (!vk_git_valid_branch(branch)) {
        vk_http_reply_error(req, 400, "bad_request", "invalid branch name");
        return;
    }
    struct vk_err err;
    vk_err_clear(&err);
    struct vk_git_mirror *m = NULL;
    struct vk__api_trig_set set = {0};
    char sha[65];
    int rc = resolve(api, &r, branch, NULL, &m, sha, &err);
    if (rc == 0)
        rc = vk__api_trig_load(api, m, &r, sha, NULL, &set, &err);
    if (rc) {
        reply_git(req, &err, rc);
        vk_git_mirror_free(m);
        return;
    }
    json_t *a = json_array();
    for (size_t i = 0; i < set.n; i++) {
        const struct vk__api_trig_item *it = &set.items[i];
        const struct vk_wf_trigger *mt = manual_trigger(it->wf);
        json_t *o = json_pack("{s:s, s:o, s:b, s:o}", "file", it->file, "name",
                              vk__api_str(it->wf ? it->wf->name : NULL), "manual", mt != NULL,
                              "inputs", inputs_json(mt));
        if (!it->wf)
            json_object_set_new(o, "error", json_string(it->error));
        json_array_append_new(a, o);
    }
    vk__api_trig_set_release(&set);
    vk_git_mirror_free(m);
    vk_http_reply_json(
        req, 200, json_pack("{s:o, s:s, s:s}", "workflows", a, "branch", branch, "commit", sha));
}

/* ---------------------------------------------------------------- Manual runs */

/* A manual run; `trace` (may be NULL) is the traceparent its chains hang from. */
static void trigger_run(struct vk_api *api, struct vk_http_req *req, const char *trace)
{
    json_t *body = vk_http_json(req);
    if (!json_is_object(body)) {
        vk_http_reply_error(req, 400, "bad_request", "the body must be a JSON object");
        return;
    }
    struct vk_store_repo r;
    if (!get_repo(api, req, &r))
        return;
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
    const char *branch = json_is_string(jb) ? json_string_value(jb) : r.default_branch;
    const char *commit = json_is_string(jc) ? json_string_value(jc) : NULL;
    const char *only = json_is_string(jw) ? json_string_value(jw) : NULL;
    if (!vk_git_valid_branch(branch)) {
        vk_http_reply_error(req, 400, "bad_request", "invalid branch name");
        return;
    }
    char *inputs = json_is_object(ji) ? json_dumps(ji, JSON_COMPACT) : NULL;
    struct vk_err err;
    vk_err_clear(&err);
    struct vk_git_mirror *m = NULL;
    struct vk__api_trig_set set = {0};
    json_t *chains = json_array(), *skipped = json_array();
    struct vk_pool *pool = vk_http_pool(req);
    char sha[65], ref[VK_TRIGGERS_MAX_REF + 16];
    snprintf(ref, sizeof(ref), "refs/heads/%s", branch);
    int rc = resolve(api, &r, branch, commit, &m, sha, &err);
    if (rc == 0)
        rc = vk__api_trig_load(api, m, &r, sha, only, &set, &err);
    if (rc) {
        reply_git(req, &err, rc);
        goto out;
    }
    for (size_t i = 0; i < set.n; i++) {
        struct vk__api_trig_item *it = &set.items[i];
        struct vk_cond_var *vars = NULL;
        size_t nvars = 0;
        if (it->wf && !manual_trigger(it->wf)) {
            if (only) {
                vk_http_reply_error(req, 400, "bad_request", "workflow '%s' has no manual trigger",
                                    it->file);
                goto out;
            }
            json_array_append_new(
                skipped, json_pack("{s:s, s:s}", "file", it->file, "reason", "no manual trigger"));
            continue;
        }
        if (!it->wf && !only) {
            json_array_append_new(skipped, json_pack("{s:s, s:s}", "file", it->file, "reason",
                                                     "the workflow does not load"));
            continue;
        }
        if (it->wf) {
            rc = vk_triggers_inputs_resolve_json(it->wf, inputs, inputs ? strlen(inputs) : 0, pool,
                                                 &vars, &nvars, &err);
            if (rc == VK_ENOMEM) {
                vk__api_reply_err(req, &err, rc);
                goto out;
            }
            if (rc) {
                if (only) {
                    vk_http_reply_error(req, 400, "bad_input", "%s", err.msg);
                    goto out;
                }
                json_array_append_new(skipped,
                                      json_pack("{s:s, s:s}", "file", it->file, "reason", err.msg));
                continue;
            }
        }
        struct vk_orch_context c = {
            .tenant_id = r.tenant_id,
            .repository_id = r.id,
            .repository_url = r.url,
            .commit_sha = sha,
            .branch = branch,
            .trigger = "manual",
            .trigger_ref = ref,
            .env = vars,
            .nenv = nvars,
            .trace_id = trace,
        };
        struct vk__api_trig_set one = {.items = it, .n = 1};
        rc = vk__api_trig_submit(api, &one, &c, NULL, chains, skipped, &err);
        if (rc) {
            vk__api_reply_err(req, &err, rc);
            goto out;
        }
    }
    vk_http_reply_json(
        req, json_array_size(chains) ? 201 : 200,
        json_pack("{s:O, s:O, s:s}", "chains", chains, "skipped", skipped, "commit", sha));
out:
    free(inputs);
    json_decref(chains);
    json_decref(skipped);
    vk__api_trig_set_release(&set);
    vk_git_mirror_free(m);
}

static void h_trigger(struct vk_http_req *req, void *ctx)
{
    struct vk_api *api = ctx;
    struct vk_span *span = vk__api_span_start(api, req);
    char tp[VK_TRACEPARENT_LEN] = "";
    vk_trace_span_traceparent(span, tp);
    trigger_run(api, req, tp[0] ? tp : NULL);
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
