/*
 * manual.c — the trigger service's manual runs (POST /api/v1/repos/{id}/trigger) and
 * workflow listings (GET /api/v1/repos/{id}/workflows): both read the workflows of a
 * branch head (or a given commit) from the mirror cache.
 */
#include "service_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct vk_wf_trigger *manual_trigger(const struct vk_workflow *wf)
{
    for (size_t t = 0; wf && t < wf->ntriggers; t++) {
        if (wf->triggers[t].type == VK_WF_TRIG_MANUAL)
            return &wf->triggers[t];
    }
    return NULL;
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *inputs_json(const struct vk_wf_trigger *t)
{
    json_t *a = json_array();
    for (size_t i = 0; a && t && i < t->ninputs; i++) {
        const struct vk_wf_input *in = &t->inputs[i];
        json_t *ch = json_array();
        for (size_t c = 0; ch && c < in->choices.n; c++) {
            if (json_array_append_new(ch, json_string(in->choices.items[c])) != 0) {
                json_decref(ch);
                ch = NULL;
            }
        }
        json_t *o =
            ch ? json_pack("{s:s, s:o, s:o, s:o, s:b}", "name", in->name, "description",
                           str_or_null(in->description), "default", str_or_null(in->default_value),
                           "choices", ch, "required", in->required)
               : NULL;
        if (!o || json_array_append_new(a, o) != 0) {
            json_decref(a);
            return NULL;
        }
    }
    return a;
}

/* A string member of `params`, NULL when absent or null; *bad when of another type. */
static const char *param(json_t *params, const char *key, bool *bad)
{
    json_t *v = json_object_get(params, key);
    if (v && !json_is_null(v) && !json_is_string(v))
        *bad = true;
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Open the mirror and resolve `commit` (4..64 hex digits) or the head of `branch`. */
static int resolve(struct vk_triggers_service *svc, const struct vk_store_repo *r,
                   const char *branch, const char *commit, struct vk_git_mirror **m,
                   char sha[VK_GIT_SHA_LEN], struct vk_err *err)
{
    int rc = vk__trig_mirror_open(svc, r->url, m, err);
    if (rc)
        return rc;
    if (commit)
        return vk_git_resolve_commit(*m, commit, sha, err);
    return vk_git_resolve_branch(*m, branch, sha, err);
}

/* A git failure while resolving or reading: not-found and bad input keep their status. */
static int git_outcome(const struct vk_err *e, int rc, const char *request_id, int *status,
                       json_t **result)
{
    if (rc == VK_ENOTFOUND || rc == VK_EINVAL)
        return vk__trig_error(e, rc, status, result);
    return vk__trig_git_error(e, rc, request_id, status, result);
}

int vk__trig_workflows(struct vk_triggers_service *svc, const struct vk_store_treq *rq, int *status,
                       json_t **result, struct vk_err *err)
{
    struct vk_pool pool;
    vk_pool_init(&pool, 0);
    struct vk_store_repo r;
    struct vk_git_mirror *m = NULL;
    struct vk__trig_set set = {0};
    json_t *params = rq->params ? json_loads(rq->params, 0, NULL) : NULL, *a = NULL;
    char sha[VK_GIT_SHA_LEN];
    int rc = vk_store_repo_get(svc->opts.store, rq->repository_id, &pool, &r, err);
    if (rc) {
        if (rc == VK_ENOTFOUND)
            rc = vk__trig_error(err, rc, status, result);
        goto out;
    }
    bool bad = false;
    const char *branch = param(params, "branch", &bad);
    if (!branch)
        branch = r.default_branch;
    if (bad || !vk_git_valid_branch(branch)) {
        rc = vk__trig_refuse(400, "bad_request", "invalid branch name", status, result);
        goto out;
    }
    rc = resolve(svc, &r, branch, NULL, &m, sha, err);
    if (rc == 0)
        rc = vk__trig_load(m, &r, sha, NULL, &set, err);
    if (rc) {
        rc = git_outcome(err, rc, rq->id, status, result);
        goto out;
    }
    a = json_array();
    for (size_t i = 0; a && i < set.n; i++) {
        const struct vk__trig_item *it = &set.items[i];
        const struct vk_wf_trigger *mt = manual_trigger(it->wf);
        json_t *o = json_pack("{s:s, s:o, s:b, s:o*}", "file", it->file, "name",
                              str_or_null(it->wf ? it->wf->name : NULL), "manual", mt != NULL,
                              "inputs", inputs_json(mt));
        if (o && !it->wf && json_object_set_new(o, "error", json_string(it->error)) != 0) {
            json_decref(o);
            o = NULL;
        }
        if (!o || json_array_append_new(a, o) != 0) {
            rc = vk_err_set(err, VK_ENOMEM, "out of memory");
            goto out;
        }
    }
    if (!a) {
        rc = vk_err_set(err, VK_ENOMEM, "out of memory");
        goto out;
    }
    *result = json_pack("{s:o, s:s, s:s}", "workflows", a, "branch", branch, "commit", sha);
    a = NULL;
    *status = 200;
    if (!*result)
        rc = vk_err_set(err, VK_ENOMEM, "out of memory");
out:
    json_decref(a);
    json_decref(params);
    vk__trig_set_release(&set);
    vk_git_mirror_free(m);
    vk_pool_release(&pool);
    return rc;
}

/* One workflow of a manual run: resolve its inputs and start it, or say why not. */
static int run_one(struct vk_triggers_service *svc, const struct vk_store_treq *rq,
                   const struct vk_store_repo *r, struct vk__trig_item *it, const char *only,
                   const char *inputs, const char *branch, const char *sha, const char *ref,
                   struct vk_pool *pool, json_t *chains, json_t *skipped, int *status,
                   json_t **result, struct vk_err *err)
{
    struct vk_cond_var *vars = NULL;
    size_t nvars = 0;
    if (it->wf && !manual_trigger(it->wf)) {
        if (only) {
            char msg[600];
            snprintf(msg, sizeof(msg), "workflow '%s' has no manual trigger", it->file);
            return vk__trig_refuse(400, "bad_request", msg, status, result);
        }
        return vk__trig_skip(skipped, it->file, "no manual trigger");
    }
    if (!it->wf && !only)
        return vk__trig_skip(skipped, it->file, "the workflow does not load");
    if (it->wf) {
        int rc = vk_triggers_inputs_resolve_json(it->wf, inputs, inputs ? strlen(inputs) : 0, pool,
                                                 &vars, &nvars, err);
        if (rc == VK_ENOMEM)
            return rc;
        if (rc && only)
            return vk__trig_refuse(400, "bad_input", err->msg, status, result);
        if (rc)
            return vk__trig_skip(skipped, it->file, err->msg);
    }
    struct vk_orch_context c = {
        .tenant_id = r->tenant_id,
        .repository_id = r->id,
        .repository_url = r->url,
        .commit_sha = sha,
        .branch = branch,
        .trigger = "manual",
        .trigger_ref = ref,
        .env = vars,
        .nenv = nvars,
        .trace_id = rq->trace_id,
        .trigger_request_id = rq->id,
    };
    struct vk__trig_set one = {.items = it, .n = 1};
    int rc = vk__trig_submit(svc, &one, &c, NULL, chains, skipped, err);
    if (rc && rc != VK_EDB && rc != VK_ENOMEM)
        return vk__trig_error(err, rc, status, result);
    return rc;
}

int vk__trig_manual(struct vk_triggers_service *svc, const struct vk_store_treq *rq, int *status,
                    json_t **result, struct vk_err *err)
{
    struct vk_pool pool;
    vk_pool_init(&pool, 0);
    struct vk_store_repo r;
    struct vk_git_mirror *m = NULL;
    struct vk__trig_set set = {0};
    json_t *params = rq->params ? json_loads(rq->params, 0, NULL) : NULL;
    json_t *chains = json_array(), *skipped = json_array();
    char *inputs = NULL;
    char sha[VK_GIT_SHA_LEN], ref[VK_GIT_MAX_REF + 16];
    int rc = vk_store_repo_get(svc->opts.store, rq->repository_id, &pool, &r, err);
    if (rc) {
        if (rc == VK_ENOTFOUND)
            rc = vk__trig_error(err, rc, status, result);
        goto out;
    }
    if (!chains || !skipped) {
        rc = vk_err_set(err, VK_ENOMEM, "out of memory");
        goto out;
    }
    bool bad = false;
    const char *branch = param(params, "branch", &bad);
    const char *commit = param(params, "commit", &bad);
    const char *only = param(params, "workflow", &bad);
    json_t *ji = json_object_get(params, "inputs");
    if (!branch)
        branch = r.default_branch;
    if (bad || (ji && !json_is_null(ji) && !json_is_object(ji))) {
        rc = vk__trig_refuse(400, "bad_request",
                             "expected {branch, commit?, workflow?, inputs{}} with strings", status,
                             result);
        goto out;
    }
    if (!vk_git_valid_branch(branch)) {
        rc = vk__trig_refuse(400, "bad_request", "invalid branch name", status, result);
        goto out;
    }
    inputs = json_is_object(ji) ? json_dumps(ji, JSON_COMPACT) : NULL;
    snprintf(ref, sizeof(ref), "refs/heads/%s", branch);
    rc = resolve(svc, &r, branch, commit, &m, sha, err);
    if (rc == 0)
        rc = vk__trig_load(m, &r, sha, only, &set, err);
    if (rc) {
        rc = git_outcome(err, rc, rq->id, status, result);
        goto out;
    }
    *status = 0;
    for (size_t i = 0; i < set.n && rc == 0 && *status == 0; i++)
        rc = run_one(svc, rq, &r, &set.items[i], only, inputs, branch, sha, ref, &pool, chains,
                     skipped, status, result, err);
    if (rc || *status) /* an error, or a refusal recorded in *result */
        goto out;
    *status = json_array_size(chains) ? 201 : 200;
    *result = json_pack("{s:O, s:O, s:s}", "chains", chains, "skipped", skipped, "commit", sha);
    if (!*result)
        rc = vk_err_set(err, VK_ENOMEM, "out of memory");
out:
    free(inputs);
    json_decref(chains);
    json_decref(skipped);
    json_decref(params);
    vk__trig_set_release(&set);
    vk_git_mirror_free(m);
    vk_pool_release(&pool);
    return rc;
}
