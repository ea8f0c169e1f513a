/*
 * store requests: the trigger service's queue (schema: migration 3 in schema.c).
 * Claims are one UPDATE of the oldest queued (or orphaned running) row; on PostgreSQL
 * its sub-select skips rows other replicas hold locked. A running row is orphaned when
 * its claim is stale or the replica that claimed it no longer renews its liveness lease
 * (the leases table, lease.c).
 */
#include "store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const kinds[] = {"webhook", "manual", "workflows", "refresh", "follow"};
static const char *const statuses[] = {"queued", "running", "done"};

const char *vk_store_treq_kind_name(enum vk_store_treq_kind k)
{
    return (unsigned)k < VK_ARRAY_LEN(kinds) ? kinds[k] : "unknown";
}

const char *vk_store_treq_status_name(enum vk_store_treq_status st)
{
    return (unsigned)st < VK_ARRAY_LEN(statuses) ? statuses[st] : "unknown";
}

static int parse_name(const char *const *names, size_t n, const char *s, int *out)
{
    for (size_t i = 0; s && i < n; i++) {
        if (strcmp(names[i], s) == 0) {
            *out = (int)i;
            return 0;
        }
    }
    return VK_EINVAL;
}

#define TREQ_COLS                                                                                  \
    "id, tenant_id, repository_id, kind, provider, delivery_id, params, trace_id, status, "        \
    "attempts, claimed_by, claimed_at, result_status, result, created_at, finished_at"

static int read_treq(struct vk__res *r, struct vk_pool *pool, struct vk_store_treq *out,
                     struct vk_err *err)
{
    const struct vk_store_ops *ops = r->conn->store->ops;
    memset(out, 0, sizeof(*out));
    vk__col_id(r, 0, out->id);
    vk__col_id(r, 1, out->tenant_id);
    vk__col_id(r, 2, out->repository_id);
    int kind = 0, status = 0;
    if (parse_name(kinds, VK_ARRAY_LEN(kinds), ops->res_text(r, 3), &kind) != 0 ||
        parse_name(statuses, VK_ARRAY_LEN(statuses), ops->res_text(r, 8), &status) != 0)
        return vk_err_set(err, VK_EDB, "trigger request '%s' has an unknown kind or status",
                          out->id);
    out->kind = (enum vk_store_treq_kind)kind;
    out->status = (enum vk_store_treq_status)status;
    const char **strs[] = {&out->provider, &out->delivery_id, &out->params, &out->trace_id};
    const int cols[] = {4, 5, 6, 7};
    for (size_t i = 0; i < VK_ARRAY_LEN(cols); i++) {
        *strs[i] = vk__col_str(r, cols[i], pool);
        if (!*strs[i] && !ops->res_null(r, cols[i]))
            return vk_err_set(err, VK_ENOMEM, "out of memory");
    }
    out->attempts = (int)vk__col_int(r, 9);
    out->claimed_by = vk__col_str(r, 10, pool);
    out->claimed_at = vk__col_int(r, 11);
    out->result_status = (int)vk__col_int(r, 12);
    out->result = vk__col_str(r, 13, pool);
    out->created_at = vk__col_int(r, 14);
    out->finished_at = vk__col_int(r, 15);
    if ((!out->claimed_by && !ops->res_null(r, 10)) || (!out->result && !ops->res_null(r, 13)))
        return vk_err_set(err, VK_ENOMEM, "out of memory");
    return 0;
}

/* The body of request `id` into out->body (a copy in `pool`). */
static int read_body(struct vk__conn *c, const char *id, struct vk_pool *pool,
                     struct vk_store_treq *out, struct vk_err *err)
{
    struct vk_store *s = c->store;
    struct vk__param p[] = {vk__text(id)};
    struct vk__res *r = NULL;
    if (c->res.handle)
        s->ops->res_free(&c->res);
    int rc = s->ops->query(c, VK__STMT_NONE, "SELECT body FROM trigger_requests WHERE id = $1", p,
                           1, VK__Q_BINARY, &r, err);
    if (rc)
        return rc;
    rc = vk__next(r, err);
    if (rc > 0) {
        rc = 0;
        size_t len = 0;
        const void *b = s->ops->res_null(r, 0) ? NULL : s->ops->res_blob(r, 0, &len);
        char *copy = vk_pool_alloc(pool, len + 1);
        if (!copy) {
            rc = vk_err_set(err, VK_ENOMEM, "out of memory");
        } else {
            if (len)
                memcpy(copy, b, len);
            copy[len] = '\0';
            out->body = copy;
            out->body_len = len;
        }
    } else if (rc == 0) {
        rc = vk_err_set(err, VK_ENOTFOUND, "trigger request '%s' not found", id);
    }
    vk__res_free(r);
    return rc;
}

int vk_store_treq_create(struct vk_store *s, struct vk_store_treq *rq, int64_t now_ms,
                         struct vk_err *err)
{
    if (!rq->tenant_id[0] || (unsigned)rq->kind >= VK_ARRAY_LEN(kinds))
        return vk_err_set(err, VK_EINVAL, "a trigger request needs a tenant and a kind");
    if (rq->body_len > VK_STORE_TREQ_MAX_BODY)
        return vk_err_set(err, VK_ETOOBIG, "a webhook body of more than %u bytes",
                          VK_STORE_TREQ_MAX_BODY);
    if (rq->params && strlen(rq->params) > VK_STORE_TREQ_MAX_PARAMS)
        return vk_err_set(err, VK_ETOOBIG, "trigger request parameters of more than %u bytes",
                          VK_STORE_TREQ_MAX_PARAMS);
    if (vk_uuid_v7(rq->id) != 0)
        return vk_err_set(err, VK_EIO, "cannot make an id");
    rq->created_at = now_ms;
    rq->status = VK_STORE_TREQ_QUEUED;
    struct vk__conn *c = NULL;
    int rc = vk__store_begin(s, &c, err);
    if (rc)
        return rc;
    /* Remembered with the request or not at all (a process killed between the two would
     * answer the provider's redelivery "handled before" for an event never queued). */
    for (size_t k = 0; rc == 0 && k < VK_ARRAY_LEN(rq->dedup); k++) {
        if (!rq->dedup[k] || !rq->provider)
            continue;
        struct vk__param d[] = {vk__text(rq->provider), vk__text(rq->dedup[k]), vk__int(now_ms)};
        int64_t changes = 0;
        rc = vk__exec(c, VK__STMT_NONE,
                      "INSERT INTO webhook_deliveries (provider, delivery_id, received_at)"
                      " VALUES ($1, $2, $3) ON CONFLICT (provider, delivery_id) DO NOTHING",
                      d, 3, &changes, err);
        if (rc == 0 && changes == 0)
            rc = vk_err_set(err, VK_EEXIST, "this delivery was handled before");
        /* Now and then, forget deliveries older than the keep time. */
        if (rc == 0 && k == 0 && strtoul(rq->id + VK_UUID_LEN - 3, NULL, 16) % 64 == 0) {
            struct vk__param q[] = {vk__int(now_ms - VK_STORE_DELIVERY_KEEP_MS)};
            rc = vk__exec(c, VK__STMT_NONE, "DELETE FROM webhook_deliveries WHERE received_at < $1",
                          q, 1, NULL, err);
        }
    }
    struct vk__param p[] = {
        vk__text(rq->id),          vk__text(rq->tenant_id),
        vk__id(rq->repository_id), vk__text(kinds[rq->kind]),
        vk__text(rq->provider),    vk__text(rq->delivery_id),
        vk__text(rq->params),      rq->body ? vk__blob(rq->body, rq->body_len) : vk__text(NULL),
        vk__text(rq->trace_id),    vk__int(now_ms)};
    if (rc == 0)
        rc = vk__exec(c, VK__STMT_NONE,
                      "INSERT INTO trigger_requests (id, tenant_id, repository_id, kind, provider,"
                      " delivery_id, params, body, trace_id, status, created_at)"
                      " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'queued', $10)",
                      p, (int)VK_ARRAY_LEN(p), NULL, err);
    if (rc == VK_EINVAL)
        vk_err_set(err, rc, "unknown tenant or repository for the trigger request");
    return vk__store_end(s, c, rc, err);
}

/* Which rows a claim may take: queued ones, and running ones whose handler died (claimed
 * before $3, or by a replica whose liveness lease expired before $2 or is gone). */
#define CLAIMABLE                                                                                  \
    " FROM trigger_requests WHERE status = 'queued' OR (status = 'running' AND (claimed_at < $3"   \
    " OR (replica IS NOT NULL AND NOT EXISTS (SELECT 1 FROM leases WHERE leases.name ="            \
    " '" VK_STORE_REPLICA_LEASE "' || trigger_requests.replica AND leases.expires_at >= $2))))"    \
    " ORDER BY created_at, id LIMIT 1"

int vk_store_tx_treq_follow(struct vk_store_tx *tx, const char *chain_id, const char *status,
                            int64_t now_ms, struct vk_err *err)
{
    char id[VK_UUID_LEN];
    if (!vk_uuid_valid(chain_id) || (strcmp(status, "completed") != 0 && strcmp(status, "failed")))
        return vk_err_set(err, VK_EINVAL, "a follow request needs a chain id and its end");
    if (vk_uuid_v7(id) != 0)
        return vk_err_set(err, VK_EIO, "the random generator failed");
    char text[128]; /* both are checked above: nothing to escape */
    snprintf(text, sizeof(text), "{\"chain_id\":\"%s\",\"status\":\"%s\"}", chain_id, status);
    struct vk__param p[] = {vk__text(id), vk__text(text), vk__int(now_ms), vk__text(chain_id)};
    int rc = vk__exec(tx->conn, VK__STMT_NONE,
                      "INSERT INTO trigger_requests (id, tenant_id, repository_id, kind, params,"
                      " trace_id, status, created_at) SELECT $1, tenant_id, repository_id,"
                      " 'follow', $2, trace_id, 'queued', $3 FROM chains WHERE id = $4 AND"
                      " repository_id IS NOT NULL",
                      p, 4, NULL, err);
    return rc;
}

int vk_store_treq_claim(struct vk_store *s, const char *claimer, const char *replica,
                        int64_t now_ms, int64_t stale_before_ms, struct vk_pool *pool,
                        struct vk_store_treq *out, struct vk_err *err)
{
    struct vk__conn *c = NULL;
    int rc = vk__store_begin(s, &c, err);
    if (rc)
        return rc;
    struct vk__param p[] = {vk__text(claimer), vk__int(now_ms), vk__int(stale_before_ms),
                            vk__id(replica)};
    struct vk__res *r = NULL;
    rc = vk__query(c, VK__STMT_NONE,
                   VK__SQL(s,
                           "UPDATE trigger_requests SET status = 'running', claimed_by = $1,"
                           " claimed_at = $2, replica = $4, attempts = attempts + 1"
                           " WHERE id = (SELECT id" CLAIMABLE " FOR UPDATE SKIP LOCKED)"
                           " RETURNING " TREQ_COLS,
                           "UPDATE trigger_requests SET status = 'running', claimed_by = $1,"
                           " claimed_at = $2, replica = $4, attempts = attempts + 1"
                           " WHERE id = (SELECT id" CLAIMABLE ") RETURNING " TREQ_COLS),
                   p, 4, &r, err);
    if (rc == 0) {
        rc = vk__next(r, err);
        if (rc > 0)
            rc = read_treq(r, pool, out, err);
        else if (rc == 0)
            rc = VK_ENOTFOUND;
        vk__res_free(r);
    }
    if (rc == 0 && out->kind == VK_STORE_TREQ_WEBHOOK)
        rc = read_body(c, out->id, pool, out, err);
    return vk__store_end(s, c, rc, err);
}

int vk_store_treq_finish(struct vk_store *s, const char *id, const char *claimer, int result_status,
                         const char *result, int64_t now_ms, struct vk_err *err)
{
    if (result && strlen(result) > VK_STORE_TREQ_MAX_PARAMS)
        return vk_err_set(err, VK_ETOOBIG, "a trigger request result of more than %u bytes",
                          VK_STORE_TREQ_MAX_PARAMS);
    struct vk__conn *c = NULL;
    int rc = vk__store_begin(s, &c, err);
    if (rc)
        return rc;
    struct vk__param p[] = {vk__text(id), vk__text(claimer), vk__int(result_status),
                            vk__text(result), vk__int(now_ms)};
    int64_t changes = 0;
    rc = vk__exec(c, VK__STMT_NONE,
                  "UPDATE trigger_requests SET status = 'done', result_status = $3, result = $4,"
                  " finished_at = $5 WHERE id = $1 AND status = 'running' AND claimed_by = $2",
                  p, 5, &changes, err);
    if (rc == 0 && changes == 0) {
        int64_t one = 0;
        rc = vk__query_int(c, VK__STMT_NONE, "SELECT 1 FROM trigger_requests WHERE id = $1", p, 1,
                           &one, err);
        if (rc == 0)
            rc = vk_err_set(err, VK_ECONFLICT, "trigger request '%s' is held by another handler",
                            id);
        else if (rc == VK_ENOTFOUND)
            vk_err_set(err, rc, "trigger request '%s' not found", id);
    }
    return vk__store_end(s, c, rc, err);
}

int vk_store_treq_get(struct vk_store *s, const char *id, struct vk_pool *pool,
                      struct vk_store_treq *out, struct vk_err *err)
{
    if (!vk_uuid_valid(id))
        return vk_err_set(err, VK_ENOTFOUND, "trigger request '%.64s' not found", id ? id : "");
    struct vk__conn *c = NULL;
    int rc = vk__store_conn_get(s, &c, err);
    if (rc)
        return rc;
    struct vk__param p[] = {vk__text(id)};
    struct vk__res *r = NULL;
    rc = vk__query(c, VK__STMT_NONE, "SELECT " TREQ_COLS " FROM trigger_requests WHERE id = $1", p,
                   1, &r, err);
    if (rc == 0) {
        rc = vk__next(r, err);
        if (rc > 0)
            rc = read_treq(r, pool, out, err);
        else if (rc == 0)
            rc = vk_err_set(err, VK_ENOTFOUND, "trigger request '%s' not found", id);
        vk__res_free(r);
    }
    vk__store_conn_put(s, c);
    return rc;
}

int vk_store_treq_prune(struct vk_store *s, int64_t before_ms, int64_t *n, struct vk_err *err)
{
    struct vk__conn *c = NULL;
    int rc = vk__store_begin(s, &c, err);
    if (rc)
        return rc;
    struct vk__param p[] = {vk__int(before_ms)};
    int64_t changes = 0;
    rc = vk__exec(c, VK__STMT_NONE,
                  "DELETE FROM trigger_requests WHERE status = 'done' AND finished_at < $1", p, 1,
                  &changes, err);
    if (n)
        *n = changes;
    return vk__store_end(s, c, rc, err);
}
