/*
 * Concurrency groups in the orchestrator: `cancel-in-progress` (cancel the chains a newer
 * chain or fragment pushes out of its group) and waking the workers of waiters when a
 * group is given up. Who may run is decided by the store's claim (src/store/concurrency.c).
 */
#include "orch_int.h"
#include "vulcan/telemetry.h"

#include <stdio.h>
#include <string.h>

void vk__orch_repo_name(const char *url, char *out, size_t cap)
{
    if (!cap)
        return;
    out[0] = '\0';
    if (!url || !*url)
        return;
    const char *p = strstr(url, "://");
    if (p) {
        p += 3;
        const char *slash = strchr(p, '/');
        p = slash ? slash : p + strlen(p);
    } else {
        const char *colon = strchr(url, ':'), *slash = strchr(url, '/'); /* git@host:o/n.git */
        p = colon && (!slash || colon < slash) ? colon + 1 : url;
    }
    while (*p == '/')
        p++;
    size_t n = strlen(p);
    while (n && p[n - 1] == '/')
        n--;
    if (n >= 4 && memcmp(p + n - 4, ".git", 4) == 0)
        n -= 4;
    if (n >= cap)
        n = cap - 1;
    memcpy(out, p, n);
    out[n] = '\0';
}

/* The group's name for the messages: the chain's, or its fragment's. */
static void group_name(struct vk_orch *o, const char *chain_id, const char *fragment_id,
                       struct vk_pool *pool, char *out, size_t cap)
{
    struct vk_store_chain c;
    struct vk_store_fragment f;
    struct vk_err err;
    vk_err_clear(&err);
    const char *g = NULL;
    if (fragment_id && vk_store_fragment_get(o->store, fragment_id, pool, &f, &err) == 0)
        g = f.concurrency_group;
    else if (!fragment_id &&
             vk_store_chain_get(o->store, chain_id, pool, &c, NULL, NULL, &err) == 0)
        g = c.concurrency_group;
    snprintf(out, cap, "%s", g ? g : "");
}

/* Rounds of VK_STORE_MAX_CONCURRENCY_OLDER cancels one cancel-in-progress makes at most. */
#define MAX_ROUNDS 16

void vk__orch_concurrency_cancel(struct vk_orch *o, const char *chain_id, const char *fragment_id)
{
    struct vk_pool pool;
    vk_pool_init(&pool, 4096);
    struct vk_err err;
    vk_err_clear(&err);
    char group[VK_STORE_MAX_CONCURRENCY_GROUP + 1] = "";
    int rc = 0;
    size_t n = 0;
    for (int round = 0; rc == 0 && round < MAX_ROUNDS && (round == 0 || n > 0); round++) {
        char(*ids)[VK_UUID_LEN] = NULL;
        rc = vk_store_concurrency_older(o->store, chain_id, fragment_id, &pool, &ids, &n, &err);
        if (rc == 0 && n && !group[0])
            group_name(o, chain_id, fragment_id, &pool, group, sizeof group);
        size_t done = 0;
        for (size_t i = 0; rc == 0 && i < n; i++) {
            char why[VK_STORE_MAX_CONCURRENCY_GROUP + 128];
            snprintf(why, sizeof why, "cancelled by chain %s (concurrency group `%s`)", chain_id,
                     group);
            struct vk_err e2;
            vk_err_clear(&e2);
            int r2 =
                vk_store_chain_cancel_reason(o->store, ids[i], vk_time_now_ms(), why, NULL, &e2);
            if (r2 == 0) {
                done++;
                vk_log_write(VK_LOG_INFO, "orchestrator",
                             "chain cancelled by its concurrency group", "chain_id", ids[i], "by",
                             chain_id, "group", group, NULL);
                vk__orch_report_cancel(o, ids[i]);
                vk__orch_concurrency_wake(o, ids[i]);
            } else if (r2 != VK_ECONFLICT) { /* VK_ECONFLICT: it ended meanwhile */
                vk_log_write(VK_LOG_WARN, "orchestrator", "cancel-in-progress failed", "chain_id",
                             ids[i], "error", e2.msg, NULL);
            }
        }
        /* A fragment's group lists running chains too; one that could not be cancelled
         * would come back every round. */
        if (done == 0)
            break;
    }
    if (rc < 0)
        vk_log_write(VK_LOG_WARN, "orchestrator", "cancel-in-progress failed", "chain_id", chain_id,
                     "error", err.msg, NULL);
    vk_pool_release(&pool);
}

void vk__orch_concurrency_wake(struct vk_orch *o, const char *chain_id)
{
    struct vk_err err;
    vk_err_clear(&err);
    struct vk_store_tx *tx = NULL;
    int rc = vk_store_tx_begin(o->store, &tx, &err);
    if (rc < 0)
        return;
    rc = vk_store_tx_concurrency_wake(tx, chain_id, NULL, &err);
    if (rc < 0)
        vk_store_tx_rollback(tx);
    else
        rc = vk_store_tx_commit(tx, &err);
    if (rc < 0) /* the workers' next poll finds the work anyway */
        vk_log_write(VK_LOG_WARN, "orchestrator", "waking the waiters of a concurrency group",
                     "chain_id", chain_id, "error", err.msg, NULL);
}

bool vk__orch_concurrency_why(struct vk_orch *o, const char *fragment_id, char *out, size_t cap)
{
    struct vk_pool pool;
    vk_pool_init(&pool, 1024);
    struct vk_store_fragment f;
    struct vk_err err;
    vk_err_clear(&err);
    char holder[VK_UUID_LEN], group[VK_STORE_MAX_CONCURRENCY_GROUP + 1];
    bool found =
        vk_store_fragment_get(o->store, fragment_id, &pool, &f, &err) == 0 &&
        (vk_store_concurrency_holder(o->store, f.chain_id, NULL, holder, group, sizeof group,
                                     &err) == 0 ||
         (f.concurrency_group && vk_store_concurrency_holder(o->store, f.chain_id, f.id, holder,
                                                             group, sizeof group, &err) == 0));
    if (found)
        snprintf(out, cap, "waiting for concurrency group `%s` (chain %s)", group, holder);
    vk_pool_release(&pool);
    return found;
}
