/*
 * The parser API and chains: POST /api/v1/parse and /validate, chain list,
 * chain with its fragment tree (and why waiting fragments wait), cancel,
 * rerun. (A fragment's log is in api_logs.c.)
 */
#include "api_int.h"
#include "vulcan/telemetry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_WORKFLOW (1024u * 1024u)

/* ---------------------------------------------------------------- Parse */

static void reply_wf_error(struct vk_http_req *req, const struct vk_wf_error *we)
{
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:i, s:i}", "error", "invalid_workflow", "message",
                          we->msg, "kind", vk_wf_errkind_name(we->kind), "file", we->file, "line",
                          (int)we->line, "col", (int)we->col);
    int bad = 0;
    if (we->rendered)
        bad |= json_object_set_new(o, "diagnostic", json_string(we->rendered));
    vk_http_reply_json(req, 400, vk_http_json_checked(o, bad));
}

/* Load the workflow in a parse/validate body. Imports are refused: the server
 * does not fetch files or URLs on behalf of an API caller. */
static struct vk_workflow *load_body(struct vk_http_req *req, json_t *body)
{
    json_t *content = json_object_get(body, "content");
    if (!json_is_string(content)) {
        vk_http_reply_error(req, 400, "bad_request", "'content' (the workflow text) is required");
        return NULL;
    }
    if (json_string_length(content) > MAX_WORKFLOW) {
        vk_http_reply_error(req, 413, "too_large", "the workflow is larger than %u bytes",
                            MAX_WORKFLOW);
        return NULL;
    }
    const char *file = vk__api_get_str(body, "source_file_path");
    struct vk_wf_options opts = {.fetch = vk_wf_fetch_refuse};
    struct vk_workflow *wf = NULL;
    struct vk_wf_error we;
    vk_wf_error_init(&we);
    int rc = vk_workflow_load_buffer(json_string_value(content), json_string_length(content),
                                     file ? file : "workflow.kdl", &opts, &wf, &we);
    if (rc != 0) {
        reply_wf_error(req, &we);
        vk_wf_error_release(&we);
        return NULL;
    }
    return wf;
}

static void h_validate(struct vk_http_req *req, void *ctx)
{
    struct vk_workflow *wf = load_body(req, vk_http_json(req));
    if (!wf)
        return;
    json_t *o = json_pack("{s:b, s:s, s:I}", "valid", 1, "name", wf->name, "fragment_count",
                          (json_int_t)vk_workflow_count_fragments(wf));
    vk_workflow_free(wf);
    vk_http_reply_json(req, 200, o);
}

/* POST /api/v1/parse under `span` (may be NULL). Replies; returns the status sent. */
static int parse_and_submit(struct vk_api *api, struct vk_http_req *req, struct vk_span *span)
{
    json_t *body = vk_http_json(req);
    const char *strs[] = {"source_file_path", "repository_url", "commit_sha", "branch",
                          "trigger",          "trigger_ref",    "tag"};
    for (size_t i = 0; i < VK_ARRAY_LEN(strs); i++) {
        json_t *v = json_object_get(body, strs[i]);
        if (v && !json_is_null(v) && (!json_is_string(v) || json_string_length(v) > 4096)) {
            vk_http_reply_error(req, 400, "bad_request",
                                "'%s' must be a string of at most 4096 "
                                "bytes",
                                strs[i]);
            return 400;
        }
    }
    /* the server's local workers clone it on this host: the same URL policy as repositories */
    const char *rurl = vk__api_get_str(body, "repository_url");
    struct vk_git_url_target t;
    struct vk_err perr;
    vk_err_clear(&perr);
    if (rurl && *rurl && api->opts.url_policy &&
        vk_git_url_check_static(api->opts.url_policy, rurl, &t, &perr) != 0) {
        vk_http_reply_error(req, 400, "url_not_allowed", "%s", perr.msg);
        return 400;
    }
    json_t *env = json_object_get(body, "env");
    if (env && !json_is_object(env)) {
        vk_http_reply_error(req, 400, "bad_request", "'env' must be an object of strings");
        return 400;
    }
    struct vk_cond_var vars[64];
    size_t nvars = 0;
    const char *k;
    json_t *v;
    json_object_foreach(env, k, v)
    {
        if (!json_is_string(v) || nvars == VK_ARRAY_LEN(vars)) {
            vk_http_reply_error(req, 400, "bad_request",
                                "'env' must be an object of at most 64 strings");
            return 400;
        }
        vars[nvars].name = k;
        vars[nvars].value = json_string_value(v);
        nvars++;
    }
    /* Priority jumps the queue of everyone in the org: from -1000 to 1000, and above 0
     * only for a maintainer (the caller's role; any caller of a server with --no-auth). */
    json_t *prio = json_object_get(body, "priority");
    const struct vk__api_principal *who = vk_http_req_principal(req);
    if (prio && !json_is_null(prio) &&
        (!json_is_integer(prio) || json_integer_value(prio) < -1000 ||
         json_integer_value(prio) > 1000)) {
        vk_http_reply_error(req, 400, "bad_request",
                            "'priority' must be an integer from -1000 "
                            "to 1000");
        return 400;
    }
    if (json_integer_value(prio) > 0 && who && who->role < VK_ROLE_MAINTAINER) {
        vk_http_reply_error(req, 403, "forbidden",
                            "a priority above 0 needs the maintainer role; this token acts as %s",
                            vk_auth_role_name(who->role));
        return 403;
    }
    struct vk_workflow *wf = load_body(req, body);
    if (!wf)
        return 400; /* load_body replied (a workflow error, or the body's limits) */
    struct vk_orch_context c = {
        .source_file = vk__api_get_str(body, "source_file_path"),
        .repository_url = vk__api_get_str(body, "repository_url"),
        .commit_sha = vk__api_get_str(body, "commit_sha"),
        .branch = vk__api_get_str(body, "branch"),
        .trigger = vk__api_get_str(body, "trigger"),
        .trigger_ref = vk__api_get_str(body, "trigger_ref"),
        .tag = vk__api_get_str(body, "tag"),
        .priority = json_is_integer(prio) ? (int)json_integer_value(prio) : 0,
        .env = vars,
        .nenv = nvars,
        .trace_id = NULL,
    };
    char tp[VK_TRACEPARENT_LEN];
    if (span) {
        vk_trace_span_traceparent(span, tp);
        c.trace_id = tp;
    }
    json_t *pr = json_object_get(body, "pr_number");
    if (json_is_integer(pr))
        c.pr_number = json_integer_value(pr);
    char id[VK_UUID_LEN];
    size_t n = 0;
    struct vk_err err;
    vk_err_clear(&err);
    int rc = vk_orch_submit(api->opts.orch, wf, json_string_value(json_object_get(body, "content")),
                            &c, id, &n, &err);
    vk_workflow_free(wf);
    if (rc < 0)
        return vk__api_reply_err(req, &err, rc);
    struct vk__api_trace_ids ids;
    vk__api_trace_ids(span, &ids);
    vk_trace_span_set_str(span, "vulcan.chain_id", id);
    vk_log_write(VK_LOG_INFO, "api", "chain created", "chain_id", id, "trace_id",
                 ids.trace_id[0] ? ids.trace_id : NULL, "span_id",
                 ids.span_id[0] ? ids.span_id : NULL, NULL);
    vk_http_reply_json(req, 201,
                       json_pack("{s:s, s:I}", "chain_id", id, "fragment_count", (json_int_t)n));
    return 201;
}

static void h_parse(struct vk_http_req *req, void *ctx)
{
    struct vk_api *api = ctx;
    struct vk_span *span = vk__api_span_start(api, req);
    int status = parse_and_submit(api, req, span);
    vk__api_span_end(api, span, status);
}

/* ---------------------------------------------------------------- Chains */

static json_t *chain_json(const struct vk_store_chain *c)
{
    json_t *o = json_object();
    int bad = 0;
    bad |= json_object_set_new(o, "id", json_string(c->id));
    bad |= json_object_set_new(o, "status", json_string(vk_store_chain_status_name(c->status)));
    bad |= json_object_set_new(o, "source_file", vk__api_str(c->source_file));
    bad |= json_object_set_new(o, "repository_id",
                               c->repository_id[0] ? json_string(c->repository_id) : json_null());
    bad |= json_object_set_new(o, "repository_url", vk__api_str(c->repository_url));
    bad |= json_object_set_new(o, "commit_sha", vk__api_str(c->commit_sha));
    bad |= json_object_set_new(o, "branch", vk__api_str(c->branch));
    bad |= json_object_set_new(o, "trigger", vk__api_str(c->trigger));
    bad |= json_object_set_new(o, "trigger_ref", vk__api_str(c->trigger_ref));
    bad |= json_object_set_new(o, "pr_number",
                               c->pr_number ? json_integer(c->pr_number) : json_null());
    bad |= json_object_set_new(o, "tag", vk__api_str(c->tag));
    bad |= json_object_set_new(o, "default_machine", vk__api_str(c->default_machine));
    bad |= json_object_set_new(o, "priority", json_integer(c->priority));
    bad |= json_object_set_new(o, "error", vk__api_str(c->error));
    bad |= json_object_set_new(o, "created_at", vk__api_time(c->created_at));
    bad |= json_object_set_new(o, "started_at", vk__api_time(c->started_at));
    bad |= json_object_set_new(o, "finished_at", vk__api_time(c->finished_at));
    if (c->concurrency_group)
        bad |= json_object_set_new(o, "concurrency",
                                   json_pack("{s:s,s:b}", "group", c->concurrency_group,
                                             "cancel_in_progress", c->concurrency_cancel));
    int64_t end = c->finished_at ? c->finished_at : (c->started_at ? vk_time_now_ms() : 0);
    bad |= json_object_set_new(o, "duration_ms",
                               c->started_at ? json_integer(end - c->started_at) : json_null());
    return vk_http_json_checked(o, bad);
}

/* Why a fragment of `group` waits, cached per group for one request. */
struct wait_cache {
    const char *group[16];
    char why[16][160];
    size_t n;
    const char *chain_wait; /* the chain waits for its concurrency group: why; else NULL */
    struct vk_pool *pool;   /* the request's */
};

/* "waiting for concurrency group `G` (chain ID)" into `buf` when chain `chain_id` (with
 * `fragment_id`: that fragment) waits for its group; NULL when it does not. */
static const char *group_wait(struct vk_api *api, const char *chain_id, const char *fragment_id,
                              char *buf, size_t cap)
{
    char holder[VK_UUID_LEN], group[VK_STORE_MAX_CONCURRENCY_GROUP + 1];
    struct vk_err err;
    vk_err_clear(&err);
    if (vk_store_concurrency_holder(api->opts.store, chain_id, fragment_id, holder, group,
                                    sizeof group, &err) != 0)
        return NULL;
    snprintf(buf, cap, "waiting for concurrency group `%s` (chain %s)", group, holder);
    return buf;
}

static const char *wait_reason(struct vk_api *api, struct wait_cache *wc,
                               const struct vk_store_fragment *f)
{
    if (f->status == VK_STORE_FRAG_PENDING)
        return "waiting for the fragments before it";
    if (f->status != VK_STORE_FRAG_READY || !f->machine)
        return NULL;
    if (wc->chain_wait)
        return wc->chain_wait;
    if (f->concurrency_group) {
        /* One lookup per ready fragment with a group of its own (few: it is one index seek). */
        char *buf = vk_pool_alloc(wc->pool, 480);
        if (buf && group_wait(api, f->chain_id, f->id, buf, 480))
            return buf;
    }
    for (size_t i = 0; i < wc->n; i++) {
        if (strcmp(wc->group[i], f->machine) == 0)
            return wc->why[i];
    }
    if (wc->n == VK_ARRAY_LEN(wc->group))
        return "waiting for a worker";
    size_t i = wc->n++;
    wc->group[i] = f->machine;
    struct vk_err err;
    if (vk_store_wait_reason(api->opts.store, f->machine, wc->why[i], sizeof(wc->why[i]), &err) < 0)
        snprintf(wc->why[i], sizeof(wc->why[i]), "waiting for a worker");
    return wc->why[i];
}

static json_t *fragment_json(struct vk_api *api, struct wait_cache *wc,
                             const struct vk_store_fragment *f)
{
    json_t *o = json_object();
    int bad = 0;
    bad |= json_object_set_new(o, "id", json_string(f->id));
    bad |= json_object_set_new(o, "name", vk__api_str(f->name));
    bad |= json_object_set_new(o, "type",
                               json_string(f->type == VK_STORE_FRAG_GROUP ? "group" : "inline"));
    bad |= json_object_set_new(o, "is_parallel", json_boolean(f->is_parallel));
    bad |= json_object_set_new(o, "sequence", json_integer(f->sequence));
    bad |= json_object_set_new(o, "run_script", vk__api_str(f->run_script));
    bad |= json_object_set_new(o, "machine", vk__api_str(f->machine));
    bad |= json_object_set_new(o, "condition", vk__api_str(f->condition));
    bad |= json_object_set_new(o, "source_url", vk__api_str(f->source_url));
    bad |= json_object_set_new(o, "status", json_string(vk_store_frag_status_name(f->status)));
    bad |= json_object_set_new(o, "attempt", json_integer(f->attempt));
    bad |= json_object_set_new(o, "retries", json_integer(f->retries));
    bad |= json_object_set_new(o, "retries_used", json_integer(f->retries_used));
    static const char *const whens[] = {"success", "failure", "always"};
    bad |= json_object_set_new(o, "when", json_string(whens[f->run_when]));
    bad |= json_object_set_new(o, "allow_failure", json_boolean(f->allow_failure));
    if (f->is_matrix)
        bad |= json_object_set_new(o, "matrix", json_true());
    if (f->matrix_values) { /* a matrix copy: its combination, as the store keeps it */
        json_t *mv = json_loads(f->matrix_values, 0, NULL);
        bad |= json_object_set_new(o, "matrix_values", json_is_object(mv) ? mv : json_object());
        if (mv && !json_is_object(mv))
            json_decref(mv);
    }
    if (f->concurrency_group)
        bad |= json_object_set_new(o, "concurrency",
                                   json_pack("{s:s,s:b}", "group", f->concurrency_group,
                                             "cancel_in_progress", f->concurrency_cancel));
    if (f->type == VK_STORE_FRAG_GROUP) {
        bad |= json_object_set_new(o, "max_parallel", json_integer(f->max_parallel));
        bad |= json_object_set_new(o, "fail_fast", json_boolean(!f->no_fail_fast));
    }
    bad |= json_object_set_new(o, "worker_id",
                               f->worker_id[0] ? json_string(f->worker_id) : json_null());
    bad |= json_object_set_new(o, "ready_at", vk__api_time(f->ready_at));
    bad |= json_object_set_new(o, "started_at", vk__api_time(f->started_at));
    bad |= json_object_set_new(o, "finished_at", vk__api_time(f->finished_at));
    bad |= json_object_set_new(o, "exit_code",
                               f->has_exit_code ? json_integer(f->exit_code) : json_null());
    bad |= json_object_set_new(o, "error", vk__api_str(f->error));
    const char *why = wait_reason(api, wc, f);
    if (f->status == VK_STORE_FRAG_PENDING && f->needs_wait && f->unmet_needs > 0)
        why = "waiting for its needs to end";
    bad |= json_object_set_new(o, "waiting_reason", vk__api_str(why));
    /* `needs` (names as written) and `outputs`, when there are. */
    json_t *needs = f->needs_json ? json_loads(f->needs_json, 0, NULL) : NULL;
    if (json_is_array(needs) && json_array_size(needs))
        bad |= json_object_set(o, "needs", needs);
    json_decref(needs);
    json_t *outs = f->outputs_json ? json_loads(f->outputs_json, 0, NULL) : NULL;
    if (json_is_object(outs) && json_object_size(outs))
        bad |= json_object_set(o, "outputs", outs);
    json_decref(outs);
    if (f->type == VK_STORE_FRAG_GROUP)
        bad |= json_object_set_new(o, "children", json_array());
    return vk_http_json_checked(o, bad);
}

static void h_chain_get(struct vk_http_req *req, void *ctx)
{
    struct vk_api *api = ctx;
    const char *id = vk_http_param(req, "id");
    struct vk_store_chain c;
    struct vk_store_fragment *frags = NULL;
    size_t n = 0;
    struct vk_err err;
    vk_err_clear(&err);
    int rc = id && vk_uuid_valid(id)
                 ? vk_store_chain_get(api->opts.store, id, vk_http_pool(req), &c, &frags, &n, &err)
                 : vk_err_set(&err, VK_ENOTFOUND, "no chain '%s'", id ? id : "");
    if (rc < 0) {
        vk__api_reply_err(req, &err, rc);
        return;
    }
    json_t *o = chain_json(&c);
    struct wait_cache wc = {.n = 0, .pool = vk_http_pool(req)};
    char chain_wait[480];
    if (c.concurrency_group &&
        (c.status == VK_STORE_CHAIN_PENDING || c.status == VK_STORE_CHAIN_RUNNING))
        wc.chain_wait = group_wait(api, c.id, NULL, chain_wait, sizeof chain_wait);
    int bad = json_object_set_new(o, "waiting_reason", vk__api_str(wc.chain_wait));
    json_t *top = json_array();
    /* Fragments come in pre-order: a parent always precedes its children, so one
     * pass with a stack of open groups builds the tree. */
    json_t **objs = vk_mem_calloc(n ? n : 1, sizeof(*objs));
    bad |= !objs;
    for (size_t i = 0; objs && i < n; i++) {
        objs[i] = fragment_json(api, &wc, &frags[i]);
        json_t *parent_list = top;
        for (size_t j = i; frags[i].parent_id[0] && j-- > 0;) {
            if (strcmp(frags[j].id, frags[i].parent_id) == 0) {
                parent_list = json_object_get(objs[j], "children");
                break;
            }
        }
        if (json_array_append_new(parent_list, objs[i]) < 0) {
            objs[i] = NULL; /* freed by jansson: its children have no list to go to */
            bad = 1;
        }
    }
    vk_mem_free(objs);
    bad |= json_object_set_new(o, "fragment_count", json_integer((json_int_t)n));
    bad |= json_object_set_new(o, "fragments", top);
    /* What the caller may do with it, so a console offers no button the server refuses. */
    bad |= json_object_set_new(
        o, "actions",
        json_pack("{s:b,s:b}", "cancel",
                  vk__api_may(api, req, "POST", "/api/v1/chains/{id}/cancel"), "rerun",
                  vk__api_may(api, req, "POST", "/api/v1/chains/{id}/rerun")));
    vk_http_reply_json(req, 200, vk_http_json_checked(o, bad));
}

static void h_chain_list(struct vk_http_req *req, void *ctx)
{
    struct vk_api *api = ctx;
    struct vk_store_chain_filter f = {
        .status = vk_http_query(req, "status"),
        .repository_id = vk_http_query(req, "repository"),
        .branch = vk_http_query(req, "branch"),
        .trigger = vk_http_query(req, "trigger"),
        .cursor = vk_http_query(req, "cursor"),
    };
    const char *limit = vk_http_query(req, "limit");
    if (limit) {
        char *end;
        long l = strtol(limit, &end, 10);
        if (!*limit || *end || l < 1 || l > VK_STORE_MAX_LIST) {
            vk_http_reply_error(req, 400, "bad_request", "'limit' must be 1..%d",
                                VK_STORE_MAX_LIST);
            return;
        }
        f.limit = (int)l;
    }
    const char *since = vk_http_query(req, "since");
    if (since && vk_time_parse(since, &f.since_ms) != 0) {
        vk_http_reply_error(req, 400, "bad_request",
                            "'since' must be a UTC time like 2026-01-31T12:00:00Z");
        return;
    }
    struct vk_store_chain *chains = NULL;
    size_t n = 0;
    char next[VK_STORE_CURSOR_LEN] = "";
    struct vk_err err;
    vk_err_clear(&err);
    int rc = vk_store_chain_list(api->opts.store, &f, vk_http_pool(req), &chains, &n, next, &err);
    if (rc < 0) {
        vk__api_reply_err(req, &err, rc);
        return;
    }
    json_t *arr = json_array();
    int bad = 0;
    for (size_t i = 0; i < n; i++)
        bad |= json_array_append_new(arr, chain_json(&chains[i]));
    json_t *o = json_pack("{s:o, s:o}", "chains", arr, "next_cursor",
                          next[0] ? json_string(next) : json_null());
    vk_http_reply_json(req, 200, vk_http_json_checked(o, bad));
}

static void h_chain_cancel(struct vk_http_req *req, void *ctx)
{
    struct vk_api *api = ctx;
    const char *id = vk_http_param(req, "id");
    struct vk_err err;
    vk_err_clear(&err);
    int rc = id && vk_uuid_valid(id) ? vk_orch_cancel(api->opts.orch, id, &err)
                                     : vk_err_set(&err, VK_ENOTFOUND, "no chain '%s'", id);
    if (rc < 0) {
        vk__api_reply_err(req, &err, rc);
        return;
    }
    vk_log_write(VK_LOG_INFO, "api", "chain cancelled", "chain_id", id, NULL);
    vk_http_reply_json(req, 200, json_pack("{s:s, s:s}", "chain_id", id, "status", "cancelled"));
}

static void h_chain_rerun(struct vk_http_req *req, void *ctx)
{
    struct vk_api *api = ctx;
    const char *id = vk_http_param(req, "id");
    char new_id[VK_UUID_LEN];
    struct vk_err err;
    vk_err_clear(&err);
    int rc = id && vk_uuid_valid(id) ? vk_orch_rerun(api->opts.orch, id, new_id, &err)
                                     : vk_err_set(&err, VK_ENOTFOUND, "no chain '%s'", id);
    if (rc < 0) {
        vk__api_reply_err(req, &err, rc);
        return;
    }
    vk_http_reply_json(req, 201, json_pack("{s:s, s:s}", "chain_id", new_id, "rerun_of", id));
}

int vk__api_chain_routes(struct vk_api *api, struct vk_err *err)
{
    const struct vk_http_route_opts json = {.max_body = MAX_WORKFLOW + 64 * 1024, .json = true};
    const struct vk_http_route_opts small = {.max_body = 4096};
    struct {
        const char *method, *pattern;
        vk_http_handler_fn fn;
        const struct vk_http_route_opts *opts;
    } routes[] = {
        {"POST", "/api/v1/parse", h_parse, &json},
        {"POST", "/api/v1/validate", h_validate, &json},
        {"GET", "/api/v1/chains", h_chain_list, NULL},
        {"GET", "/api/v1/chains/{id}", h_chain_get, NULL},
        {"POST", "/api/v1/chains/{id}/cancel", h_chain_cancel, &small},
        {"POST", "/api/v1/chains/{id}/rerun", h_chain_rerun, &small},
    };
    for (size_t i = 0; i < VK_ARRAY_LEN(routes); i++) {
        int rc = vk_http_route(api->http, routes[i].method, routes[i].pattern, routes[i].fn, api,
                               routes[i].opts, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}
