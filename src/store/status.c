/*
 * store status: the commit-status outbox (schema: migration 4 in schema.c, where the
 * trigger on chains that fills it is). Claims are one UPDATE of the oldest due rows; on
 * PostgreSQL its sub-select skips rows other replicas hold locked. Ending a claim is
 * fenced by the claimer and the row's seq, so a newer status that arrived meanwhile is
 * never deleted with the older one.
 */
#include "store_int.h"

#include <string.h>

#define JOB_COLS                                                                                   \
    "o.chain_id, o.seq, o.status, o.attempts, o.first_failed_at, c.commit_sha, c.source_file,"     \
    " c.definition, c.error, c.created_at, c.started_at, c.finished_at, r.url, r.provider,"        \
    " r.status_token, r.status_api_url"

static int read_job(struct vk__res *r, struct vk_pool *pool, struct vk_store_status_job *j,
                    struct vk_err *err)
{
    const struct vk_store_ops *ops = r->conn->store->ops;
    memset(j, 0, sizeof(*j));
    vk__col_id(r, 0, j->chain_id);
    j->seq = vk__col_int(r, 1);
    if (vk_store_chain_status_parse(ops->res_text(r, 2), &j->status) != 0)
        return vk_err_set(err, VK_EDB, "status report of chain '%s' has an unknown status",
                          j->chain_id);
    j->attempts = (int)vk__col_int(r, 3);
    j->first_failed_at = vk__col_int(r, 4);
    const char **strs[] = {&j->commit_sha, &j->source_file, &j->definition,   &j->error,
                           &j->repo_url,   &j->provider,    &j->status_token, &j->status_api_url};
    const int cols[] = {5, 6, 7, 8, 12, 13, 14, 15};
    for (size_t i = 0; i < VK_ARRAY_LEN(cols); i++) {
        *strs[i] = vk__col_str(r, cols[i], pool);
        if (!*strs[i] && !ops->res_null(r, cols[i]))
            return vk_err_set(err, VK_ENOMEM, "out of memory");
    }
    j->created_at = vk__col_int(r, 9);
    j->started_at = vk__col_int(r, 10);
    j->finished_at = vk__col_int(r, 11);
    if (!j->status_token) /* a repository without a token reports nothing */
        j->repo_url = j->provider = j->status_api_url = NULL;
    return 0;
}

int vk_store_status_claim(struct vk_store *s, const char *claimer, int64_t now_ms,
                          int64_t stale_before_ms, int max, struct vk_pool *pool,
                          struct vk_store_status_job **jobs, size_t *n, struct vk_err *err)
{
    *jobs = NULL;
    *n = 0;
    if (!claimer || !*claimer || max < 1 || max > VK_STORE_STATUS_MAX_CLAIM)
        return vk_err_set(err, VK_EINVAL, "a status claim needs a claimer and 1 to %d rows",
                          VK_STORE_STATUS_MAX_CLAIM);
    struct vk__conn *c = NULL;
    int rc = vk__store_begin(s, &c, err);
    if (rc)
        return rc;
    struct vk__param p[] = {vk__text(claimer), vk__int(now_ms), vk__int(stale_before_ms),
                            vk__int(max)};
    char(*ids)[VK_UUID_LEN] = vk_mem_calloc((size_t)max, VK_UUID_LEN);
    if (!ids)
        rc = vk_err_set(err, VK_ENOMEM, "out of memory");
    struct vk__res *r = NULL;
    if (rc == 0)
        rc = vk__query(c, VK__STMT_NONE,
                       VK__SQL(s,
                               "UPDATE status_outbox SET claimed_by = $1, claimed_at = $2"
                               " WHERE chain_id IN (SELECT chain_id FROM status_outbox"
                               " WHERE next_at <= $2 AND (claimed_by IS NULL OR claimed_at < $3)"
                               " ORDER BY next_at, chain_id LIMIT $4 FOR UPDATE SKIP LOCKED)"
                               " RETURNING chain_id",
                               "UPDATE status_outbox SET claimed_by = $1, claimed_at = $2"
                               " WHERE chain_id IN (SELECT chain_id FROM status_outbox"
                               " WHERE next_at <= $2 AND (claimed_by IS NULL OR claimed_at < $3)"
                               " ORDER BY next_at, chain_id LIMIT $4) RETURNING chain_id"),
                       p, 4, &r, err);
    size_t nids = 0;
    while (rc == 0 && (rc = vk__next(r, err)) > 0) {
        if (nids < (size_t)max)
            vk__col_id(r, 0, ids[nids++]);
        rc = 0;
    }
    vk__res_free(r);
    r = NULL;
    size_t cap = 0, len = 0;
    struct vk_store_status_job *a = NULL;
    for (size_t i = 0; rc == 0 && i < nids; i++) {
        struct vk__param q[] = {vk__text(ids[i])};
        rc = vk__query(c, VK__STMT_NONE,
                       "SELECT " JOB_COLS " FROM status_outbox o JOIN chains c ON c.id = o.chain_id"
                       " LEFT JOIN repositories r ON r.id = c.repository_id WHERE o.chain_id = $1",
                       q, 1, &r, err);
        if (rc == 0 && (rc = vk__next(r, err)) > 0) {
            rc = 0;
            if (vk_array_pool_grow(pool, &a, &cap, len + 1, 8, sizeof(*a)) < 0)
                rc = vk_err_set(err, VK_ENOMEM, "out of memory");
            else
                rc = read_job(r, pool, &a[len++], err);
        }
        vk__res_free(r);
        r = NULL;
    }
    vk_mem_free(ids);
    rc = vk__store_end(s, c, rc, err);
    if (rc == 0) {
        *jobs = a;
        *n = len;
    }
    return rc;
}

/* Release `claimer`'s claim of the row (its status changed: due again at once). */
static int release(struct vk__conn *c, const char *chain_id, const char *claimer,
                   struct vk_err *err)
{
    struct vk__param p[] = {vk__text(chain_id), vk__text(claimer)};
    return vk__exec(c, VK__STMT_NONE,
                    "UPDATE status_outbox SET claimed_by = NULL, claimed_at = NULL"
                    " WHERE chain_id = $1 AND claimed_by = $2",
                    p, 2, NULL, err);
}

int vk_store_status_done(struct vk_store *s, const char *chain_id, const char *claimer, int64_t seq,
                         bool *newer, struct vk_err *err)
{
    struct vk__conn *c = NULL;
    int rc = vk__store_begin(s, &c, err);
    if (rc)
        return rc;
    struct vk__param p[] = {vk__text(chain_id), vk__text(claimer), vk__int(seq)};
    int64_t changes = 0;
    rc = vk__exec(c, VK__STMT_NONE,
                  "DELETE FROM status_outbox WHERE chain_id = $1 AND claimed_by = $2 AND seq = $3",
                  p, 3, &changes, err);
    if (rc == 0 && changes == 0)
        rc = release(c, chain_id, claimer, err);
    if (newer)
        *newer = rc == 0 && changes == 0;
    return vk__store_end(s, c, rc, err);
}

int vk_store_status_retry(struct vk_store *s, const char *chain_id, const char *claimer,
                          int64_t seq, int64_t next_at_ms, int64_t failed_at_ms, struct vk_err *err)
{
    struct vk__conn *c = NULL;
    int rc = vk__store_begin(s, &c, err);
    if (rc)
        return rc;
    struct vk__param p[] = {vk__text(chain_id), vk__text(claimer), vk__int(seq),
                            vk__int(next_at_ms), vk__int(failed_at_ms)};
    int64_t changes = 0;
    rc = vk__exec(c, VK__STMT_NONE,
                  "UPDATE status_outbox SET claimed_by = NULL, claimed_at = NULL,"
                  " attempts = attempts + 1, next_at = $4,"
                  " first_failed_at = COALESCE(first_failed_at, $5)"
                  " WHERE chain_id = $1 AND claimed_by = $2 AND seq = $3",
                  p, 5, &changes, err);
    if (rc == 0 && changes == 0)
        rc = release(c, chain_id, claimer, err);
    return vk__store_end(s, c, rc, err);
}

int vk_store_status_backlog(struct vk_store *s, int64_t *n, struct vk_err *err)
{
    struct vk__conn *c = NULL;
    int rc = vk__store_conn_get(s, &c, err);
    if (rc)
        return rc;
    rc = vk__query_int(c, VK__STMT_NONE, "SELECT COUNT(*) FROM status_outbox", NULL, 0, n, err);
    vk__store_conn_put(s, c);
    return rc;
}
