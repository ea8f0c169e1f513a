/*
 * store needs: the unmet-needs counters and the edge table of `needs` (migration 12), and
 * a fragment's outputs. A result lowers the counters of the fragments that need it through
 * the edges' primary key (need_id, fragment_id): the cost is the result's own edges, never
 * a scan of the chain (docs/workflow.md, "Needs").
 */
#include "store_int.h"

#include <string.h>

#define FINAL_STATUSES "('completed', 'failed', 'skipped', 'cancelled')"

int vk_store_tx_needs_done(struct vk_store_tx *tx, const char *need_id, struct vk_pool *pool,
                           struct vk_store_fragment **out, size_t *n, struct vk_err *err)
{
    struct vk__param p[] = {vk__text(need_id)};
    struct vk__res *r = NULL;
    /* Lower first, then mark the edges counted: a second call finds none left. */
    int rc = vk__query(tx->conn, VK__STMT_NEEDS_DONE,
                       "UPDATE fragments SET unmet_needs = unmet_needs - 1 WHERE id IN"
                       " (SELECT fragment_id FROM fragment_needs WHERE need_id = $1 AND done = 0)"
                       " AND unmet_needs > 0 RETURNING " VK__FRAG_RCOLS,
                       p, 1, &r, err);
    if (rc)
        return rc;
    rc = vk__read_frags(r, pool, out, n, err);
    vk__res_free(r);
    if (rc == 0 && *n)
        rc = vk__exec(tx->conn, VK__STMT_NEEDS_MARK,
                      "UPDATE fragment_needs SET done = 1 WHERE need_id = $1 AND done = 0", p, 1,
                      NULL, err);
    return rc;
}

int vk_store_tx_is_needed(struct vk_store_tx *tx, const char *id, bool *needed, struct vk_err *err)
{
    struct vk__param p[] = {vk__text(id)};
    int64_t n = 0;
    int rc = vk__query_int(tx->conn, VK__STMT_NONE,
                           "SELECT COUNT(*) FROM (SELECT 1 FROM fragment_needs WHERE need_id = $1"
                           " AND done = 0 LIMIT 1) AS e",
                           p, 1, &n, err);
    *needed = rc == 0 && n > 0;
    return rc;
}

int vk_store_tx_needs_settle(struct vk_store_tx *tx, const char *chain_id, struct vk_pool *pool,
                             struct vk_store_fragment **out, size_t *n, struct vk_err *err)
{
    struct vk__param p[] = {vk__text(chain_id)};
    struct vk__res *r = NULL;
    int rc = vk__query(
        tx->conn, VK__STMT_NONE,
        "UPDATE fragments SET unmet_needs = unmet_needs - (SELECT COUNT(*) FROM"
        " fragment_needs e JOIN fragments d ON d.id = e.need_id WHERE"
        " e.fragment_id = fragments.id AND e.done = 0 AND d.status IN " FINAL_STATUSES
        ") WHERE id IN (SELECT e.fragment_id FROM fragment_needs e JOIN fragments d"
        " ON d.id = e.need_id WHERE e.chain_id = $1 AND e.done = 0 AND d.status IN " FINAL_STATUSES
        ") RETURNING " VK__FRAG_RCOLS,
        p, 1, &r, err);
    if (rc)
        return rc;
    rc = vk__read_frags(r, pool, out, n, err);
    vk__res_free(r);
    if (rc == 0 && *n)
        rc = vk__exec(tx->conn, VK__STMT_NONE,
                      "UPDATE fragment_needs SET done = 1 WHERE chain_id = $1 AND done = 0 AND"
                      " need_id IN (SELECT id FROM fragments WHERE chain_id = $1 AND status "
                      "IN " FINAL_STATUSES ")",
                      p, 1, NULL, err);
    return rc;
}

int vk_store_tx_needs_of(struct vk_store_tx *tx, const char *fragment_id, struct vk_pool *pool,
                         struct vk_store_fragment **out, size_t *n, struct vk_err *err)
{
    struct vk__param p[] = {vk__text(fragment_id)};
    struct vk__res *r = NULL;
    int rc = vk__query(tx->conn, VK__STMT_NEEDS_OF,
                       "SELECT " VK__FRAG_COLS " FROM fragment_needs e JOIN fragments f"
                       " ON f.id = e.need_id WHERE e.fragment_id = $1 ORDER BY e.ord",
                       p, 1, &r, err);
    if (rc)
        return rc;
    rc = vk__read_frags(r, pool, out, n, err);
    vk__res_free(r);
    return rc;
}

int vk_store_fragment_set_outputs(struct vk_store *s, const char *fragment_id, int attempt,
                                  const char *worker_id, const char *outputs_json,
                                  struct vk_err *err)
{
    struct vk__conn *c = NULL;
    int rc = vk__store_conn_get(s, &c, err);
    if (rc)
        return rc;
    struct vk__param p[] = {vk__text(outputs_json), vk__text(fragment_id), vk__int(attempt),
                            vk__text(worker_id)};
    int64_t changed = 0;
    rc = vk__exec(c, VK__STMT_NONE,
                  "UPDATE fragments SET outputs_json = $1 WHERE id = $2 AND attempt = $3"
                  " AND worker_id = $4 AND status = 'running'",
                  p, 4, &changed, err);
    vk__store_conn_put(s, c);
    if (rc == 0 && changed == 0)
        rc = vk_err_set(err, VK_ECONFLICT, "fragment '%s' attempt %d is not running on this worker",
                        fragment_id, attempt);
    return rc;
}
