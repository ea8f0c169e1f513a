/*
 * webhook.c — the trigger service's half of a webhook (the HTTP layer verified it,
 * checked that it names the repository, filtered out redeliveries, pings and deleted
 * refs, and queued it with the headers the parser looked at): parse it again, read
 * the workflows at the event's commit from the mirror cache, compute the changed
 * paths when a path filter needs them and the payload did not list them, start the
 * chains whose triggers match (and failed chains for workflows that do not load), and
 * after a push to the default branch refresh the repository's schedules.
 */
#include "service_int.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

/* ---------------------------------------------------------------- Recorded headers */

const char *vk_triggers_header_json(void *ctx, const char *name)
{
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)ctx, k, v)
    {
        if (strcasecmp(k, name) == 0 && json_is_string(v))
            return json_string_value(v);
    }
    return NULL;
}

const char *vk_triggers_header_record(void *ctx, const char *name)
{
    struct vk_triggers_header_log *log = ctx;
    const char *v = log->inner(log->inner_ctx, name);
    if (v && log->seen)
        (void)json_object_set_new(log->seen, name, json_string(v));
    return v;
}

/* ---------------------------------------------------------------- Handling */

int vk__trig_webhook(struct vk_triggers_service *svc, const struct vk_store_treq *rq, int *status,
                     json_t **result, struct vk_err *err)
{
    struct vk_pool pool;
    vk_pool_init(&pool, 0);
    struct vk_store_repo repo;
    enum vk_triggers_provider prov;
    json_t *params = NULL, *chains = NULL, *skipped = NULL;
    struct vk_triggers_event *ev = NULL;
    struct vk_git_mirror *m = NULL;
    struct vk__trig_set set = {0};
    char sha[VK_GIT_SHA_LEN] = "";
    int rc = vk_store_repo_get(svc->opts.store, rq->repository_id, &pool, &repo, err);
    if (rc == VK_ENOTFOUND) { /* deleted since: nothing to build */
        rc = vk__trig_refuse(404, "not_found", "the repository was deleted", status, result);
        goto out;
    }
    if (rc)
        goto out;
    if (vk_triggers_provider_parse(rq->provider, &prov) != 0 || !rq->params) {
        rc = vk_err_set(err, VK_EINVAL, "a webhook request without provider or headers");
        goto out;
    }
    params = json_loads(rq->params, 0, NULL);
    json_t *headers = json_object_get(params, "headers");
    if (!json_is_object(headers)) {
        rc = vk_err_set(err, VK_EINVAL, "a webhook request without headers");
        goto out;
    }
    rc = vk_triggers_hook_parse(prov, vk_triggers_header_json, headers, rq->body, rq->body_len, &ev,
                                err);
    if (rc) {
        if (rc != VK_ENOMEM)
            rc = vk__trig_refuse(400, "bad_request", err->msg, status, result);
        goto out;
    }
    struct vk_wf_event wfev;
    if (vk_triggers_event_to_wf(ev, &wfev) != 0) { /* the HTTP layer filters these out */
        *status = 200;
        *result = json_pack("{s:[], s:[], s:s}", "chains", "skipped", "note", "event not acted on");
        if (!*result)
            rc = vk_err_set(err, VK_ENOMEM, "out of memory");
        goto out;
    }
    rc = vk__trig_mirror_open(svc, repo.url, &m, err);
    if (rc == 0 && vk_git_valid_sha(ev->commit_sha))
        snprintf(sha, sizeof(sha), "%s", ev->commit_sha);
    else if (rc == 0)
        rc = vk_git_resolve_commit(m, ev->commit_sha, sha, err); /* Bitbucket's short sha */
    if (rc == 0)
        rc = vk__trig_load(m, &repo, sha, NULL, &set, err);
    if (rc == 0 && !ev->paths_complete && vk__trig_needs_paths(&set, wfev.type)) {
        struct vk_git_paths paths;
        vk_git_paths_init(&paths);
        char base[VK_GIT_SHA_LEN] = "";
        if (ev->kind == VK_TRIGGERS_EV_PULL_REQUEST)
            rc = vk_git_resolve_branch(m, ev->pr_base_branch, base, err);
        else if (ev->before)
            snprintf(base, sizeof(base), "%s", ev->before);
        if (rc == 0)
            rc = vk_git_changed_paths(m, base[0] ? base : NULL, sha, &paths, err);
        if (rc == 0)
            rc = vk_triggers_event_set_paths(ev, paths.items, paths.n, err);
        if (rc == 0)
            rc = vk_triggers_event_to_wf(ev, &wfev);
        vk_git_paths_release(&paths);
    }
    if (rc) {
        rc = vk__trig_git_error(err, rc, rq->id, status, result);
        goto out;
    }
    char marker[16];
    if ((ev->kind == VK_TRIGGERS_EV_PUSH || ev->kind == VK_TRIGGERS_EV_PULL_REQUEST) &&
        vk__trig_skip_marker(set.commit_message, marker)) {
        /* GitHub, GitLab and Gitea start nothing for such a commit; neither do we */
        char note[96];
        snprintf(note, sizeof(note), "skipped: the head commit's message says %s", marker);
        skipped = json_array();
        for (size_t i = 0; skipped && i < set.n; i++)
            if (vk__trig_skip(skipped, set.items[i].file, note) != 0)
                rc = vk_err_set(err, VK_ENOMEM, "out of memory");
        *status = 200;
        *result = rc == 0 && skipped
                      ? json_pack("{s:[], s:o, s:s}", "chains", "skipped", skipped, "note", note)
                      : NULL;
        skipped = NULL;
        if (!*result)
            rc = vk_err_set(err, VK_ENOMEM, "out of memory");
        goto out;
    }
    char ref[VK_TRIGGERS_MAX_REF + 16];
    struct vk_orch_context c = {
        .tenant_id = repo.tenant_id,
        .repository_id = repo.id,
        .repository_url = repo.url,
        .commit_sha = sha,
        .branch = ev->branch,
        .trigger = vk_wf_trigger_type_name(wfev.type),
        .trigger_ref = ev->ref,
        .pr_number = ev->pr_number,
        .tag = ev->tag,
        .trace_id = rq->trace_id,
        .trigger_request_id = rq->id,
    };
    if (ev->kind == VK_TRIGGERS_EV_PULL_REQUEST) {
        /* The chain builds the PR's head: BRANCH is the source branch (so that a condition
         * such as $BRANCH == 'main' does not hold for a PR into main); the ref names the
         * target branch. */
        if (ev->pr_head_branch)
            c.branch = ev->pr_head_branch;
        c.from_fork = ev->pr_from_fork;
        snprintf(ref, sizeof(ref), "refs/heads/%s", ev->pr_base_branch ? ev->pr_base_branch : "");
        c.trigger_ref = ref;
    }
    chains = json_array();
    skipped = json_array();
    if (!chains || !skipped) {
        rc = vk_err_set(err, VK_ENOMEM, "out of memory");
        goto out;
    }
    rc = vk__trig_submit(svc, &set, &c, &wfev, chains, skipped, err);
    if (rc) {
        if (rc != VK_EDB && rc != VK_ENOMEM)
            rc = vk__trig_error(err, rc, status, result);
        goto out;
    }
    if (json_array_size(chains) > 0 && svc->m.webhook_to_chain) {
        double s = (double)(vk_time_now_ms() - rq->created_at) / 1e3;
        vk_metrics_histogram_observe(
            vk_metrics_histogram_with(svc->m.webhook_to_chain, rq->provider), s < 0 ? 0 : s);
    }
    if (ev->kind == VK_TRIGGERS_EV_PUSH && ev->branch &&
        strcmp(ev->branch, repo.default_branch) == 0) {
        struct vk_err e2;
        vk_err_clear(&e2);
        if (vk__trig_schedules_from_set(svc, &repo, &set, &e2) != 0)
            vk_log_write(VK_LOG_WARN, "triggers", "cannot refresh schedules", "repository_id",
                         repo.id, "error", e2.msg, NULL);
    }
    *result = json_pack("{s:o, s:o}", "chains", chains, "skipped", skipped);
    chains = skipped = NULL;
    if (!*result)
        rc = vk_err_set(err, VK_ENOMEM, "out of memory");
    *status = 200;
out:
    json_decref(chains);
    json_decref(skipped);
    json_decref(params);
    vk_triggers_event_free(ev);
    vk__trig_set_release(&set);
    vk_git_mirror_free(m);
    vk_pool_release(&pool);
    return rc;
}
