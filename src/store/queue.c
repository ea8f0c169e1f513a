/*
 * store queue: the orchestrator's fine-grained transaction operations, claiming ready work,
 * graceful hand-back, queue metrics and group status.
 */
#include "store_int.h"
#include "vulcan/store_identity.h"

#include <stdio.h>
#include <string.h>

static int nomem(struct vk_err *err)
{
    return vk_err_set(err, VK_ENOMEM, "out of memory");
}

/* Run a query expected to return one fragment row. */
static int one_frag(struct vk__conn *c, int id, const char *sql, const struct vk__param *p, int np,
                    const char *what, struct vk_pool *pool, struct vk_store_fragment *out,
                    struct vk_err *err)
{
    struct vk__res *r = NULL;
    int rc = vk__query(c, id, sql, p, np, &r, err);
    if (rc)
        return rc;
    rc = vk__next(r, err);
    if (rc == 0)
        rc = vk_err_set(err, VK_ENOTFOUND, "fragment '%s' not found", what);
    if (rc > 0)
        rc = vk__read_frag(r, 0, pool, out, err);
    vk__res_free(r);
    return rc;
}

/* ---------------------------------------------------------------- Transaction operations */

int vk_store_tx_fragment_get(struct vk_store_tx *tx, const char *id, struct vk_pool *pool,
                             struct vk_store_fragment *out, struct vk_err *err)
{
    struct vk__param p[] = {vk__text(id)};
    return one_frag(tx->conn, VK__STMT_FRAG_GET_LOCK,
                    VK__SQL(tx->store,
                            "SELECT " VK__FRAG_COLS " FROM fragments f JOIN chains c"
                            " ON c.id = f.chain_id WHERE f.id = $1 FOR UPDATE OF c",
                            "SELECT " VK__FRAG_COLS " FROM fragments f WHERE f.id = $1"),
                    p, 1, id, pool, out, err);
}

int vk_store_fragment_get(struct vk_store *s, const char *id, struct vk_pool *pool,
                          struct vk_store_fragment *out, struct vk_err *err)
{
    struct vk__conn *c = NULL;
    int rc = vk__store_conn_get(s, &c, err);
    if (rc)
        return rc;
    struct vk__param p[] = {vk__text(id)};
    rc = one_frag(c, VK__STMT_NONE, "SELECT " VK__FRAG_COLS " FROM fragments f WHERE f.id = $1", p,
                  1, id, pool, out, err);
    vk__store_conn_put(s, c);
    return rc;
}

int vk_store_tx_chain_get(struct vk_store_tx *tx, const char *id, struct vk_pool *pool,
                          struct vk_store_chain *out, struct vk_err *err)
{
    struct vk__param p[] = {vk__text(id)};
    struct vk__res *r = NULL;
    int rc = vk__query(tx->conn, VK__STMT_CHAIN_GET_LOCK,
                       VK__SQL(tx->store,
                               "SELECT " VK__CHAIN_COLS " FROM chains c WHERE c.id = $1"
                               " FOR UPDATE",
                               "SELECT " VK__CHAIN_COLS " FROM chains c WHERE c.id = $1"),
                       p, 1, &r, err);
    if (rc)
        return rc;
    rc = vk__next(r, err);
    if (rc == 0)
        rc = vk_err_set(err, VK_ENOTFOUND, "chain '%s' not found", id);
    if (rc > 0)
        rc = vk__read_chain(r, 0, pool, out, err);
    vk__res_free(r);
    return rc;
}

int vk_store_tx_children(struct vk_store_tx *tx, const char *chain_id, const char *parent_id,
                         struct vk_pool *pool, struct vk_store_fragment **out, size_t *n,
                         struct vk_err *err)
{
    struct vk__res *r = NULL;
    int rc;
    if (parent_id && *parent_id) {
        struct vk__param p[] = {vk__text(parent_id)};
        rc = vk__query(tx->conn, VK__STMT_CHILDREN,
                       "SELECT " VK__FRAG_COLS " FROM fragments f WHERE f.parent_id = $1"
                       " ORDER BY f.sequence",
                       p, 1, &r, err);
    } else {
        struct vk__param p[] = {vk__text(chain_id)};
        rc = vk__query(tx->conn, VK__STMT_TOPLEVEL,
                       "SELECT " VK__FRAG_COLS " FROM fragments f WHERE f.chain_id = $1"
                       " AND f.parent_id IS NULL ORDER BY f.sequence",
                       p, 1, &r, err);
    }
    if (rc)
        return rc;
    rc = vk__read_frags(r, pool, out, n, err);
    vk__res_free(r);
    return rc;
}

int vk_store_tx_first_pending_child(struct vk_store_tx *tx, const char *parent_id,
                                    struct vk_pool *pool, struct vk_store_fragment *out,
                                    struct vk_err *err)
{
    struct vk__param p[] = {vk__text(parent_id)};
    struct vk__res *r = NULL;
    int rc = vk__query(tx->conn, VK__STMT_NONE,
                       "SELECT " VK__FRAG_COLS " FROM fragments f WHERE f.parent_id = $1"
                       " AND f.status = 'pending' ORDER BY f.sequence LIMIT 1",
                       p, 1, &r, err);
    if (rc == 0)
        rc = vk__next(r, err);
    if (rc == 0)
        rc = VK_ENOTFOUND;
    else if (rc > 0)
        rc = vk__read_frag(r, 0, pool, out, err);
    vk__res_free(r);
    return rc;
}

int vk_store_tx_next_sibling(struct vk_store_tx *tx, const struct vk_store_fragment *f,
                             struct vk_pool *pool, struct vk_store_fragment *out,
                             struct vk_err *err)
{
    struct vk__res *r = NULL;
    int rc;
    if (f->parent_id[0]) {
        /* fragments_by_parent (parent_id, sequence): one seek. */
        struct vk__param p[] = {vk__text(f->parent_id), vk__int(f->sequence)};
        rc = vk__query(tx->conn, VK__STMT_NONE,
                       "SELECT " VK__FRAG_COLS " FROM fragments f WHERE f.parent_id = $1"
                       " AND f.sequence > $2 ORDER BY f.sequence LIMIT 1",
                       p, 2, &r, err);
    } else {
        /* fragments_by_chain (chain_id, position): the pre-order from f on passes only
         * f's own subtree before its next top-level sibling. */
        struct vk__param p[] = {vk__text(f->chain_id), vk__int(f->position)};
        rc = vk__query(tx->conn, VK__STMT_NONE,
                       "SELECT " VK__FRAG_COLS " FROM fragments f WHERE f.chain_id = $1"
                       " AND f.position > $2 AND f.parent_id IS NULL ORDER BY f.position LIMIT 1",
                       p, 2, &r, err);
    }
    if (rc == 0)
        rc = vk__next(r, err);
    if (rc == 0)
        rc = VK_ENOTFOUND;
    else if (rc > 0)
        rc = vk__read_frag(r, 0, pool, out, err);
    vk__res_free(r);
    return rc;
}

int vk_store_tx_count_unfinished(struct vk_store_tx *tx, const char *chain_id,
                                 const char *parent_id, int64_t *count, struct vk_err *err)
{
    if (parent_id && *parent_id) {
        struct vk__param p[] = {vk__text(parent_id)};
        return vk__query_int(tx->conn, VK__STMT_COUNT_CHILDREN,
                             "SELECT COUNT(*) FROM fragments WHERE parent_id = $1"
                             " AND status IN ('pending', 'ready', 'running')",
                             p, 1, count, err);
    }
    struct vk__param p[] = {vk__text(chain_id)};
    return vk__query_int(tx->conn, VK__STMT_COUNT_TOPLEVEL,
                         "SELECT COUNT(*) FROM fragments WHERE chain_id = $1 AND parent_id IS NULL"
                         " AND status IN ('pending', 'ready', 'running')",
                         p, 1, count, err);
}

int vk_store_tx_has_unfinished(struct vk_store_tx *tx, const char *chain_id, const char *parent_id,
                               bool *any, struct vk_err *err)
{
    struct vk__res *r = NULL;
    int rc;
    /* From the last sequence down (index fragments_by_parent / fragments_by_chain's
     * parent_id IS NULL rows): the first unfinished one answers. */
    if (parent_id && *parent_id) {
        struct vk__param p[] = {vk__text(parent_id)};
        rc = vk__query(tx->conn, VK__STMT_ANY_CHILDREN,
                       "SELECT 1 FROM fragments WHERE parent_id = $1"
                       " AND status IN ('pending', 'ready', 'running')"
                       " ORDER BY sequence DESC LIMIT 1",
                       p, 1, &r, err);
    } else {
        struct vk__param p[] = {vk__text(chain_id)};
        rc = vk__query(tx->conn, VK__STMT_ANY_TOPLEVEL,
                       "SELECT 1 FROM fragments WHERE chain_id = $1 AND parent_id IS NULL"
                       " AND status IN ('pending', 'ready', 'running') LIMIT 1",
                       p, 1, &r, err);
    }
    if (rc)
        return rc;
    rc = vk__next(r, err);
    vk__res_free(r);
    if (rc < 0)
        return rc;
    *any = rc > 0;
    return 0;
}

int vk_store_tx_fragment_update(struct vk_store_tx *tx, const char *id,
                                const struct vk_store_fragment_update *u, struct vk_err *err)
{
    struct vk__param p[12];
    int np = 0;
    struct vk_buf sql = VK_BUF_INIT(VK_MAX_SMALL);
    int rc = vk_buf_adds(&sql, "UPDATE fragments SET id = id");
#define SETCOL(bit, col, param)                                                                    \
    if (rc == 0 && (u->set & (bit))) {                                                             \
        p[np++] = (param);                                                                         \
        rc = vk_buf_addf(&sql, ", " col " = $%d", np);                                             \
    }
    SETCOL(VK_STORE_SET_STATUS, "status", vk__text(vk_store_frag_status_name(u->status)));
    SETCOL(VK_STORE_SET_ATTEMPT, "attempt", vk__int(u->attempt));
    SETCOL(VK_STORE_SET_WORKER, "worker_id", vk__id(u->worker_id));
    SETCOL(VK_STORE_SET_READY_AT, "ready_at", vk__time(u->ready_at));
    SETCOL(VK_STORE_SET_STARTED_AT, "started_at", vk__time(u->started_at));
    SETCOL(VK_STORE_SET_FINISHED_AT, "finished_at", vk__time(u->finished_at));
    SETCOL(VK_STORE_SET_EXIT_CODE, "exit_code",
           u->has_exit_code ? vk__int(u->exit_code) : vk__text(NULL));
    SETCOL(VK_STORE_SET_ERROR, "error", vk__text(u->error));
    SETCOL(VK_STORE_SET_RETRIES_USED, "retries_used", vk__int(u->retries_used));
    SETCOL(VK_STORE_SET_CANCEL_REQUESTED, "cancel_requested", vk__int(u->cancel_requested));
    SETCOL(VK_STORE_SET_NEEDS_WAIT, "needs_wait", vk__int(u->needs_wait));
    SETCOL(VK_STORE_SET_NEEDS_ENV, "needs_env_json", vk__text(u->needs_env_json));
#undef SETCOL
    if (rc == 0) {
        p[np++] = vk__text(id);
        rc = vk_buf_addf(&sql, " WHERE id = $%d", np);
    }
    if (rc) {
        vk_buf_release(&sql);
        return nomem(err);
    }
    int64_t changes = 0;
    rc = vk__exec(tx->conn, VK__STMT_NONE, sql.data, p, np, &changes, err);
    vk_buf_release(&sql);
    if (rc == 0 && changes == 0)
        rc = vk_err_set(err, VK_ENOTFOUND, "fragment '%s' not found", id);
    return rc;
}

int vk_store_tx_fragment_requeue(struct vk_store_tx *tx, const char *id, bool is_retry,
                                 int64_t now_ms, struct vk_err *err)
{
    struct vk__param p[] = {vk__text(id), vk__int(is_retry ? 1 : 0), vk__int(now_ms)};
    int64_t changes = 0;
    int rc = vk__exec(tx->conn, VK__STMT_REQUEUE,
                      "UPDATE fragments SET status = 'ready', attempt = attempt + 1,"
                      " retries_used = retries_used + $2, worker_id = NULL, ready_at = $3,"
                      " started_at = NULL, finished_at = NULL, exit_code = NULL, error = NULL,"
                      " cancel_requested = 0, job_hash = NULL WHERE id = $1",
                      p, 3, &changes, err);
    if (rc == 0 && changes == 0)
        rc = vk_err_set(err, VK_ENOTFOUND, "fragment '%s' not found", id);
    return rc;
}

int vk_store_tx_chain_set(struct vk_store_tx *tx, const char *chain_id,
                          enum vk_store_chain_status status, int64_t started_at,
                          int64_t finished_at, const char *error, struct vk_err *err)
{
    struct vk__param p[] = {vk__text(chain_id), vk__text(vk_store_chain_status_name(status)),
                            vk__time(started_at), vk__time(finished_at), vk__text(error)};
    int64_t changes = 0;
    int rc =
        vk__exec(tx->conn, VK__STMT_CHAIN_SET,
                 VK__SQL(tx->store,
                         "UPDATE chains SET status = $2,"
                         " started_at = COALESCE($3::bigint, started_at),"
                         " finished_at = COALESCE($4::bigint, finished_at),"
                         " error = COALESCE($5::text, error) WHERE id = $1",
                         "UPDATE chains SET status = $2, started_at = COALESCE($3, started_at),"
                         " finished_at = COALESCE($4, finished_at),"
                         " error = COALESCE($5, error) WHERE id = $1"),
                 p, 5, &changes, err);
    if (rc == 0 && changes == 0)
        rc = vk_err_set(err, VK_ENOTFOUND, "chain '%s' not found", chain_id);
    return rc;
}

int vk_store_tx_chain_skip_pending(struct vk_store_tx *tx, const char *chain_id, int64_t now_ms,
                                   const char *why, int64_t *count, struct vk_err *err)
{
    struct vk__param p[] = {vk__text(chain_id), vk__int(now_ms), vk__text(why)};
    int64_t changes = 0;
    /* Kept: a not-started node with `when` failure/always whose parent has started (or
     * that is top-level), and everything under a kept node. */
    int rc =
        vk__exec(tx->conn, VK__STMT_SKIP_PENDING,
                 "WITH RECURSIVE keep(id) AS ("
                 " SELECT f.id FROM fragments f LEFT JOIN fragments p ON p.id = f.parent_id"
                 " WHERE f.chain_id = $1 AND f.status IN ('pending', 'ready')"
                 " AND f.run_when <> 0 AND (p.id IS NULL OR p.status NOT IN ('pending', 'ready'))"
                 " UNION SELECT f.id FROM fragments f JOIN keep k ON f.parent_id = k.id)"
                 " UPDATE fragments SET status = 'skipped', finished_at = $2, error = $3"
                 " WHERE chain_id = $1 AND status IN ('pending', 'ready')"
                 " AND id NOT IN (SELECT id FROM keep)",
                 p, 3, &changes, err);
    if (count)
        *count = changes;
    return rc;
}

/* Explain why a fenced update of fragment `id` changed nothing. */
static int why_not(struct vk__conn *c, const char *id, int attempt, const char *worker_id,
                   struct vk_err *err)
{
    struct vk__param p[] = {vk__text(id)};
    struct vk__res *r = NULL;
    int rc =
        vk__query(c, VK__STMT_FINISH_CHECK,
                  "SELECT status, attempt, worker_id FROM fragments WHERE id = $1", p, 1, &r, err);
    if (rc)
        return rc;
    rc = vk__next(r, err);
    if (rc == 0)
        rc = vk_err_set(err, VK_ENOTFOUND, "fragment '%s' not found", id);
    if (rc > 0) {
        const char *st = c->store->ops->res_text(r, 0);
        int cur = (int)vk__col_int(r, 1);
        char wid[VK_UUID_LEN];
        vk__col_id(r, 2, wid);
        if (cur != attempt)
            rc = vk_err_set(err, VK_ECONFLICT,
                            "fragment '%s': attempt %d is stale (current attempt is %d)", id,
                            attempt, cur);
        else if (st && strcmp(st, "running") != 0)
            rc = vk_err_set(err, VK_ECONFLICT, "fragment '%s' is not running (%s)", id, st);
        else
            rc = vk_err_set(err, VK_ECONFLICT, "fragment '%s' is assigned to another worker (%s)",
                            id, worker_id ? worker_id : "");
    }
    vk__res_free(r);
    return rc;
}

int vk_store_tx_fragment_finish(struct vk_store_tx *tx, const char *fragment_id, int attempt,
                                const char *worker_id, enum vk_store_frag_status status,
                                bool has_exit_code, int exit_code, const char *error,
                                int64_t now_ms, struct vk_err *err)
{
    if (!vk_store_frag_status_final(status))
        return vk_err_set(err, VK_EINVAL, "'%s' is not a final status",
                          vk_store_frag_status_name(status));
    struct vk__param p[] = {vk__text(fragment_id),
                            vk__int(attempt),
                            vk__id(worker_id),
                            vk__text(vk_store_frag_status_name(status)),
                            has_exit_code ? vk__int(exit_code) : vk__text(NULL),
                            vk__text(error),
                            vk__int(now_ms)};
    int64_t changes = 0;
    int rc = vk__exec(tx->conn, VK__STMT_FINISH,
                      VK__SQL(tx->store,
                              "UPDATE fragments SET status = $4, exit_code = $5::integer,"
                              " error = $6::text, finished_at = $7, job_hash = NULL WHERE id = $1"
                              " AND status = 'running' AND attempt = $2"
                              " AND ($3::text IS NULL OR worker_id = $3::text)",
                              "UPDATE fragments SET status = $4, exit_code = $5, error = $6,"
                              " finished_at = $7, job_hash = NULL WHERE id = $1"
                              " AND status = 'running'"
                              " AND attempt = $2 AND ($3 IS NULL OR worker_id = $3)"),
                      p, 7, &changes, err);
    if (rc == 0 && changes == 0)
        rc = why_not(tx->conn, fragment_id, attempt, worker_id, err);
    return rc;
}

/* ---------------------------------------------------------------- Claim */

/* Build the claim statement for `n` groups into `sql`. */
static int claim_sql(struct vk_store *s, size_t n, struct vk_buf *sql)
{
    /* started_at never precedes ready_at: `now` was read before the statement, and the
     * transaction that made the fragment ready may have committed after that. */
    /* $3: the attempt's job token hash (NULL without one); $4...: the machine groups. */
    int rc = vk_buf_adds(sql, "UPDATE fragments SET status = 'running', worker_id = $1,"
                              " started_at = CASE WHEN ready_at > $2 THEN ready_at ELSE $2 END,"
                              " job_hash = $3 WHERE id = (SELECT id FROM fragments"
                              " WHERE status = 'ready' AND machine IN (");
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = vk_buf_addf(sql, "%s$%zu", i ? ", " : "", i + 4);
    /* A worker claims only its org's work (a worker of no org: any, as before orgs), and
     * nothing a concurrency group holds back (VK__CONCURRENCY_CLAIM, concurrency.c). */
    if (rc == 0)
        rc = vk_buf_adds(
            sql, ") AND EXISTS (SELECT 1 FROM chains c, workers w"
                 " WHERE c.id = fragments.chain_id AND w.id = $1"
                 " AND (w.tenant_id IS NULL OR c.tenant_id = w.tenant_id))" VK__CONCURRENCY_CLAIM
                 " ORDER BY priority DESC, ready_at, id LIMIT 1");
    if (rc == 0 && s->dialect == VK__PG)
        rc = vk_buf_adds(sql, " FOR UPDATE SKIP LOCKED");
    if (rc == 0)
        rc = vk_buf_adds(sql, ") AND status = 'ready'"
                              /* A worker declared dead (or stopped) while its long-poll
                               * waited must not get work: nobody would ever reap it. */
                              " AND EXISTS (SELECT 1 FROM workers w WHERE w.id = $1"
                              " AND w.status = 'alive') RETURNING " VK__FRAG_RCOLS);
    return rc;
}

static int claim(struct vk_store *s, const char *worker_id, const char *const *groups,
                 size_t ngroups, int64_t now_ms, struct vk_store_credential *job,
                 char token[VK_AUTH_TOKEN_MAX], struct vk_pool *pool, struct vk_store_work *out,
                 struct vk_err *err)
{
    if (ngroups == 0 || ngroups > VK_STORE_MAX_GROUPS)
        return vk_err_set(err, VK_EINVAL, "a claim needs 1 to %d machine groups",
                          VK_STORE_MAX_GROUPS);
    if (!worker_id || !*worker_id)
        return vk_err_set(err, VK_EINVAL, "a claim needs a worker id");
    /* The job token is made before the statement that stores its hash: a claim that finds
     * nothing (most long-poll wake-ups) costs 32 random bytes and one hash, no write. */
    if (job && vk_auth_token_new(VK_AUTH_JOB, token, job->hash) < 0)
        return vk_err_set(err, VK_EIO, "the random generator failed");
    struct vk__param p[3 + VK_STORE_MAX_GROUPS];
    p[0] = vk__text(worker_id);
    p[1] = vk__int(now_ms);
    p[2] = vk__text(job ? job->hash : NULL);
    for (size_t i = 0; i < ngroups; i++)
        p[3 + i] = vk__text(groups[i]);
    struct vk_buf sql = VK_BUF_INIT(VK_MAX_SMALL);
    struct vk__conn *c = NULL;
    int rc;
    /* PostgreSQL: one autocommit statement (SKIP LOCKED); SQLite: a short write transaction. */
    if (s->dialect == VK__PG)
        rc = vk__store_conn_get(s, &c, err);
    else
        rc = vk__store_begin(s, &c, err);
    if (rc) {
        vk_buf_release(&sql);
        return rc;
    }
    memset(out, 0, sizeof(*out));
    /* The SQL text is only needed the first time a connection prepares it. */
    int id = VK__STMT_CLAIM_1 + (int)ngroups - 1;
    if (!c->stmts[id] && claim_sql(s, ngroups, &sql) != 0) {
        rc = nomem(err);
        goto out;
    }
    rc = one_frag(c, VK__STMT_CLAIM_1 + (int)ngroups - 1, sql.data, p, (int)ngroups + 3, "", pool,
                  &out->fragment, err);
    if (rc == VK_ENOTFOUND)
        vk_err_set(err, rc, "no ready fragment");
    if (rc == 0) {
        struct vk__param cp[] = {vk__text(out->fragment.chain_id)};
        struct vk__res *r = NULL;
        rc = vk__query(c, VK__STMT_WORK_CHAIN,
                       "SELECT " VK__CHAIN_COLS " FROM chains c WHERE c.id = $1", cp, 1, &r, err);
        if (rc == 0) {
            rc = vk__next(r, err);
            if (rc == 0)
                rc = vk_err_set(err, VK_EINTERNAL, "chain of fragment '%s' vanished",
                                out->fragment.id);
            if (rc > 0)
                rc = vk__read_chain(r, 0, pool, &out->chain, err);
        }
    }
    if (rc == 0 && job) {
        const struct vk_store_fragment *f = &out->fragment;
        job->kind = VK_AUTH_JOB;
        job->attempt = f->attempt;
        job->expires_at = 0; /* it ends with the attempt */
        job->created_at = f->started_at;
        snprintf(job->worker_id, sizeof(job->worker_id), "%s", worker_id);
        snprintf(job->fragment_id, sizeof(job->fragment_id), "%s", f->id);
    }
out:
    if (s->dialect == VK__PG)
        vk__store_conn_put(s, c);
    else
        rc = vk__store_end(s, c, rc, err);
    vk_buf_release(&sql);
    if (rc < 0 && job)
        vk_auth_wipe(token, VK_AUTH_TOKEN_MAX);
    return rc;
}

int vk_store_claim(struct vk_store *s, const char *worker_id, const char *const *groups,
                   size_t ngroups, int64_t now_ms, struct vk_pool *pool, struct vk_store_work *out,
                   struct vk_err *err)
{
    return claim(s, worker_id, groups, ngroups, now_ms, NULL, NULL, pool, out, err);
}

int vk_store_claim_job(struct vk_store *s, const char *worker_id, const char *const *groups,
                       size_t ngroups, int64_t now_ms, struct vk_store_credential *job,
                       char token[VK_AUTH_TOKEN_MAX], struct vk_pool *pool,
                       struct vk_store_work *out, struct vk_err *err)
{
    return claim(s, worker_id, groups, ngroups, now_ms, job, token, pool, out, err);
}

int vk_store_requeue_fragment(struct vk_store *s, const char *fragment_id, int attempt,
                              const char *worker_id, int64_t now_ms, struct vk_err *err)
{
    struct vk_store_tx tx = {.store = s};
    int rc = vk__store_begin(s, &tx.conn, err);
    if (rc)
        return rc;
    struct vk__param p[] = {vk__text(fragment_id), vk__int(attempt), vk__text(worker_id),
                            vk__int(now_ms)};
    struct vk__res *r = NULL;
    rc = vk__query(tx.conn, VK__STMT_NONE,
                   "UPDATE fragments SET status = 'ready', attempt = attempt + 1,"
                   " handbacks = handbacks + 1, worker_id = NULL, ready_at = $4,"
                   " started_at = NULL, job_hash = NULL WHERE id = $1 AND status = 'running'"
                   " AND attempt = $2 AND worker_id = $3 RETURNING machine",
                   p, 4, &r, err);
    if (rc == 0)
        rc = vk__next(r, err);
    if (rc > 0) {
        char machine[VK__NOTE_LEN];
        snprintf(machine, sizeof(machine), "%s", s->ops->res_text(r, 0));
        vk__res_free(r);
        rc = vk__store_notify(&tx, machine, err);
    } else if (rc == 0) {
        vk__res_free(r);
        rc = why_not(tx.conn, fragment_id, attempt, worker_id, err);
    }
    rc = vk__store_end(s, tx.conn, rc, err);
    if (rc == 0)
        for (int i = 0; i < tx.nnotes; i++)
            vk__store_note_local(s, tx.notes[i]);
    return rc;
}

/* ---------------------------------------------------------------- Metrics */

static int count(struct vk_store *s, struct vk__conn *c, const char *sql_all, const char *sql_group,
                 const char *group, int64_t *out, struct vk_err *err)
{
    struct vk__param p[] = {vk__text(group)};
    return vk__query_int(c, VK__STMT_NONE, group ? sql_group : sql_all, p, group ? 1 : 0, out, err);
}

int vk_store_queue_metrics(struct vk_store *s, const char *group, struct vk_store_queue_metrics *m,
                           struct vk_err *err)
{
    struct vk__conn *c = NULL;
    int rc = vk__store_conn_get(s, &c, err);
    if (rc)
        return rc;
    memset(m, 0, sizeof(*m));
    rc = count(s, c, "SELECT COUNT(*) FROM fragments WHERE status = 'pending'",
               "SELECT COUNT(*) FROM fragments WHERE status = 'pending' AND machine = $1", group,
               &m->pending, err);
    if (rc == 0)
        rc = count(s, c, "SELECT COUNT(*) FROM fragments WHERE status = 'ready'",
                   "SELECT COUNT(*) FROM fragments WHERE status = 'ready' AND machine = $1", group,
                   &m->ready, err);
    if (rc == 0)
        rc = count(s, c, "SELECT COUNT(*) FROM fragments WHERE status = 'running'",
                   "SELECT COUNT(*) FROM fragments WHERE status = 'running' AND machine = $1",
                   group, &m->running, err);
    if (rc == 0)
        rc = count(s, c, "SELECT COUNT(*) FROM workers WHERE status = 'alive'",
                   "SELECT COUNT(*) FROM workers w JOIN worker_groups g ON g.worker_id = w.id"
                   " WHERE w.status = 'alive' AND g.machine = $1",
                   group, &m->workers_alive, err);
    vk__store_conn_put(s, c);
    return rc;
}

int vk_store_group_status(struct vk_store *s, const char *group, int64_t *alive, int64_t *busy,
                          int64_t *dead, struct vk_err *err)
{
    struct vk__conn *c = NULL;
    int rc = vk__store_conn_get(s, &c, err);
    if (rc)
        return rc;
    struct vk__param p[] = {vk__text(group)};
    struct vk__res *r = NULL;
    rc = vk__query(c, VK__STMT_NONE,
                   "SELECT COALESCE(SUM(CASE WHEN w.status = 'alive' THEN 1 ELSE 0 END), 0),"
                   " COALESCE(SUM(CASE WHEN w.status = 'alive' AND EXISTS (SELECT 1 FROM"
                   " fragments f WHERE f.worker_id = w.id AND f.status = 'running')"
                   " THEN 1 ELSE 0 END), 0),"
                   " COALESCE(SUM(CASE WHEN w.status = 'dead' THEN 1 ELSE 0 END), 0)"
                   " FROM workers w JOIN worker_groups g ON g.worker_id = w.id"
                   " WHERE g.machine = $1",
                   p, 1, &r, err);
    if (rc == 0) {
        rc = vk__next(r, err);
        if (rc > 0) {
            *alive = vk__col_int(r, 0);
            *busy = vk__col_int(r, 1);
            *dead = vk__col_int(r, 2);
            rc = 0;
        } else if (rc == 0) {
            rc = vk_err_set(err, VK_EINTERNAL, "no row from an aggregate");
        }
    }
    vk__store_conn_put(s, c);
    return rc;
}

int vk_store_wait_reason(struct vk_store *s, const char *group, char *buf, size_t size,
                         struct vk_err *err)
{
    int64_t alive = 0, busy = 0, dead = 0;
    int rc = vk_store_group_status(s, group, &alive, &busy, &dead, err);
    if (rc < 0)
        return rc;
    if (alive == 0 && dead == 0)
        snprintf(buf, size, "no worker of machine group '%s' has ever registered", group);
    else if (alive == 0)
        snprintf(buf, size, "all %lld workers of machine group '%s' are dead", (long long)dead,
                 group);
    else if (busy >= alive)
        snprintf(buf, size, "all %lld workers of machine group '%s' are busy", (long long)alive,
                 group);
    else
        snprintf(buf, size,
                 "waiting for one of %lld idle workers of machine group '%s' to pick it up",
                 (long long)(alive - busy), group);
    return 0;
}

int vk_store_queue_expired(struct vk_store *s, int64_t now_ms, int64_t default_ms, size_t max,
                           struct vk_pool *pool, struct vk_store_expired **out, size_t *n,
                           struct vk_err *err)
{
    *out = NULL;
    *n = 0;
    if (max == 0)
        return 0;
    struct vk__conn *c = NULL;
    int rc = vk__store_conn_get(s, &c, err);
    if (rc)
        return rc;
    struct vk__param p[] = {vk__int(now_ms), vk__int(default_ms), vk__int((int64_t)max)};
    struct vk__res *r = NULL;
    rc = vk__query(c, VK__STMT_NONE,
                   "SELECT id, machine, CASE WHEN queue_timeout_ms > 0 THEN queue_timeout_ms"
                   " ELSE $2 END FROM fragments WHERE status = 'ready' AND ready_at <= $1 -"
                   " (CASE WHEN queue_timeout_ms > 0 THEN queue_timeout_ms ELSE $2 END)"
                   " ORDER BY ready_at, id LIMIT $3",
                   p, 3, &r, err);
    if (rc == 0) {
        struct vk_store_expired *a = vk_pool_zalloc(pool, sizeof(*a) * max);
        if (!a)
            rc = nomem(err);
        while (rc == 0 && *n < max && (rc = vk__next(r, err)) > 0) {
            vk__col_id(r, 0, a[*n].id);
            a[*n].machine = vk__col_str(r, 1, pool);
            a[*n].queue_timeout_ms = vk__col_int(r, 2);
            rc = a[*n].machine ? 0 : nomem(err);
            (*n)++;
        }
        if (rc > 0)
            rc = 0;
        *out = a;
        vk__res_free(r);
    }
    vk__store_conn_put(s, c);
    return rc;
}
