/*
 * follow.c — chains that follow chains. When a chain of a repository reaches completed or
 * failed, the transaction that records it queues a `follow` request (store:
 * vk_store_tx_treq_follow); this handler reads the workflows of the repository at the
 * ended chain's commit and starts each whose `chain workflow="NAME" status="…"` trigger
 * matches: NAME is the ended chain's workflow name, the status how it ended, the
 * branch filters its branch. The follower runs at the same commit and sees
 * $VULCAN_UPSTREAM_CHAIN_ID, $VULCAN_UPSTREAM_WORKFLOW, $VULCAN_UPSTREAM_STATUS and
 * $VULCAN_CHAIN_DEPTH. A workflow never follows its own chains, workflows that do not
 * load start nothing here (their errors show on pushes and manual runs), and a chain
 * made by following at VK_TRIGGERS_MAX_FOLLOW_DEPTH is followed no further.
 */
#include "service_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The ended chain's workflow name: the name its file loads with at the commit, else the
 * file's base name without ".kdl" (the loader's default). */
static void upstream_name(const struct vk__trig_set *set, const char *file, char *out, size_t cap)
{
    for (size_t i = 0; i < set->n; i++) {
        if (set->items[i].wf && strcmp(set->items[i].file, file) == 0) {
            snprintf(out, cap, "%s", set->items[i].wf->name);
            return;
        }
    }
    const char *base = strrchr(file, '/');
    base = base ? base + 1 : file;
    size_t n = strlen(base);
    if (n > 4 && strcmp(base + n - 4, ".kdl") == 0)
        n -= 4;
    snprintf(out, cap, "%.*s", (int)n, base);
}

/* How deep the ended chain was made by following ($VULCAN_CHAIN_DEPTH of its env). */
static int depth_of(const struct vk_store_chain *c)
{
    if (!c->trigger || strcmp(c->trigger, "chain") != 0 || !c->env_json)
        return 0;
    json_t *env = json_loads(c->env_json, 0, NULL);
    const char *d = json_string_value(json_object_get(env, "VULCAN_CHAIN_DEPTH"));
    int depth = d ? atoi(d) : 1;
    json_decref(env);
    return depth < 1 ? 1 : depth;
}

int vk__trig_follow(struct vk_triggers_service *svc, const struct vk_store_treq *rq, int *status,
                    json_t **result, struct vk_err *err)
{
    struct vk_pool pool;
    vk_pool_init(&pool, 0);
    struct vk_store_chain up;
    struct vk_store_repo r;
    struct vk_git_mirror *m = NULL;
    struct vk__trig_set set = {0};
    struct vk__trig_item *keep = NULL;
    json_t *params = rq->params ? json_loads(rq->params, 0, NULL) : NULL;
    json_t *chains = json_array(), *skipped = json_array();
    const char *chain_id = json_string_value(json_object_get(params, "chain_id"));
    const char *ended = json_string_value(json_object_get(params, "status"));
    int rc = 0;
    if (!chains || !skipped) {
        rc = vk_err_set(err, VK_ENOMEM, "out of memory");
        goto out;
    }
    if (!chain_id || !ended) {
        rc = vk__trig_refuse(400, "bad_request", "expected {chain_id, status}", status, result);
        goto out;
    }
    rc = vk_store_chain_get(svc->opts.store, chain_id, &pool, &up, NULL, NULL, err);
    if (rc == 0)
        rc = vk_store_repo_get(svc->opts.store, up.repository_id, &pool, &r, err);
    if (rc == VK_ENOTFOUND) { /* deleted since: nothing to follow */
        rc = 0;
        *status = 200;
        *result = json_pack("{s:[], s:[]}", "chains", "skipped");
        goto out;
    }
    if (rc)
        goto out;
    int depth = depth_of(&up) + 1;
    if (depth > VK_TRIGGERS_MAX_FOLLOW_DEPTH) {
        char why[96];
        snprintf(why, sizeof(why), "chains follow chains at most %d deep",
                 VK_TRIGGERS_MAX_FOLLOW_DEPTH);
        *status = 200;
        *result =
            json_pack("{s:[], s:[{s:s, s:s}]}", "chains", "skipped", "file", "*", "reason", why);
        goto out;
    }
    char sha[VK_GIT_SHA_LEN];
    rc = vk__trig_mirror_open(svc, r.url, &m, err);
    if (rc == 0)
        rc = vk_git_resolve_commit(m, up.commit_sha ? up.commit_sha : "", sha, err);
    if (rc == 0)
        rc = vk__trig_load(m, &r, sha, NULL, &set, err);
    if (rc) {
        rc = vk__trig_git_error(err, rc, rq->id, status, result);
        goto out;
    }
    char name[256];
    upstream_name(&set, up.source_file ? up.source_file : "", name, sizeof(name));
    /* only workflows that load, never the ended chain's own */
    keep = calloc(set.n ? set.n : 1, sizeof(*keep));
    if (!keep) {
        rc = vk_err_set(err, VK_ENOMEM, "out of memory");
        goto out;
    }
    struct vk__trig_set some = {
        .items = keep, .commit_message = set.commit_message, .commit_author = set.commit_author};
    for (size_t i = 0; i < set.n; i++)
        if (set.items[i].wf && strcmp(set.items[i].file, up.source_file ? up.source_file : ""))
            keep[some.n++] = set.items[i];
    char depth_text[16];
    snprintf(depth_text, sizeof(depth_text), "%d", depth);
    struct vk_cond_var env[] = {
        {"VULCAN_UPSTREAM_CHAIN_ID", up.id},
        {"VULCAN_UPSTREAM_WORKFLOW", name},
        {"VULCAN_UPSTREAM_STATUS", ended},
        {"VULCAN_CHAIN_DEPTH", depth_text},
    };
    struct vk_orch_context c = {
        .tenant_id = r.tenant_id,
        .repository_id = r.id,
        .repository_url = r.url,
        .commit_sha = sha,
        .branch = up.branch,
        .trigger = "chain",
        .trigger_ref = up.trigger_ref,
        .pr_number = up.pr_number,
        .from_fork = up.from_fork,
        .tag = up.tag,
        .env = env,
        .nenv = VK_ARRAY_LEN(env),
        .trace_id = rq->trace_id,
        .trigger_request_id = rq->id,
    };
    struct vk_wf_event ev = {
        .type = VK_WF_TRIG_CHAIN, .branch = up.branch, .workflow = name, .status = ended};
    rc = vk__trig_submit(svc, &some, &c, &ev, chains, skipped, err);
    if (rc == 0) {
        *status = json_array_size(chains) ? 201 : 200;
        *result = json_pack("{s:O, s:O, s:s}", "chains", chains, "skipped", skipped, "commit", sha);
        if (!*result)
            rc = vk_err_set(err, VK_ENOMEM, "out of memory");
    }
out:
    free(keep); /* its items are set's, released below */
    json_decref(chains);
    json_decref(skipped);
    json_decref(params);
    vk__trig_set_release(&set);
    vk_git_mirror_free(m);
    vk_pool_release(&pool);
    return rc;
}
