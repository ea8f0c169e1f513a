/*
 * store workers: registration, heartbeats (with the list of fragments to cancel),
 * lookup, listing, and the reaper that declares silent workers dead and re-queues or
 * fails their running fragments.
 */
#include "store_int.h"

#include <stdio.h>
#include <string.h>

static int nomem(struct vk_err *err)
{
    return vk_err_set(err, VK_ENOMEM, "out of memory");
}

static int check_groups(const char *const *groups, size_t n, struct vk_err *err)
{
    if (n == 0 || n > VK_STORE_MAX_GROUPS)
        return vk_err_set(err, VK_EINVAL, "a worker needs 1 to %d machine groups",
                          VK_STORE_MAX_GROUPS);
    for (size_t i = 0; i < n; i++)
        if (!groups[i] || !*groups[i] || strlen(groups[i]) >= VK__NOTE_LEN)
            return vk_err_set(err, VK_EINVAL, "bad machine group name");
    return 0;
}

int vk_store_worker_register(struct vk_store *s, const char *tenant_id, const char *name,
                             const char *version, const char *const *groups, size_t ngroups,
                             int64_t now_ms, char id[VK_UUID_LEN], struct vk_err *err)
{
    int rc = check_groups(groups, ngroups, err);
    if (rc)
        return rc;
    if (!name || !*name || strlen(name) > 200)
        return vk_err_set(err, VK_EINVAL, "bad worker name");
    if (vk_uuid_v4(id) != 0)
        return vk_err_set(err, VK_EIO, "cannot generate an id");
    struct vk__conn *c = NULL;
    rc = vk__store_begin(s, &c, err);
    if (rc)
        return rc;
    struct vk__param p[] = {vk__text(id), vk__id(tenant_id), vk__text(name), vk__text(version),
                            vk__int(now_ms)};
    rc = vk__exec(c, VK__STMT_NONE,
                  "INSERT INTO workers (id, tenant_id, name, version, status, last_heartbeat,"
                  " registered_at) VALUES ($1, $2, $3, $4, 'alive', $5, $5)",
                  p, 5, NULL, err);
    for (size_t i = 0; i < ngroups && rc == 0; i++) {
        struct vk__param gp[] = {vk__text(id), vk__text(groups[i])};
        rc = vk__exec(c, VK__STMT_NONE,
                      "INSERT INTO worker_groups (worker_id, machine) VALUES ($1, $2)"
                      " ON CONFLICT DO NOTHING",
                      gp, 2, NULL, err);
    }
    return vk__store_end(s, c, rc, err);
}

int vk_store_worker_heartbeat(struct vk_store *s, const char *id, int64_t now_ms,
                              struct vk_pool *pool, const char ***cancel, size_t *ncancel,
                              struct vk_err *err)
{
    *cancel = NULL;
    *ncancel = 0;
    struct vk__conn *c = NULL;
    int rc = vk__store_begin(s, &c, err);
    if (rc)
        return rc;
    struct vk__param p[] = {vk__text(id), vk__int(now_ms)};
    int64_t changes = 0;
    rc = vk__exec(c, VK__STMT_HEARTBEAT,
                  "UPDATE workers SET last_heartbeat = $2 WHERE id = $1 AND status = 'alive'", p, 2,
                  &changes, err);
    if (rc == 0 && changes == 0) {
        struct vk__res *r = NULL;
        rc = vk__query(c, VK__STMT_NONE, "SELECT status FROM workers WHERE id = $1", p, 1, &r, err);
        if (rc == 0) {
            rc = vk__next(r, err);
            if (rc == 0)
                rc = vk_err_set(err, VK_ENOTFOUND, "worker '%s' not found", id);
            else if (rc > 0)
                rc = vk_err_set(err, VK_ECONFLICT, "worker '%s' is %s: register again", id,
                                s->ops->res_text(r, 0));
        }
    }
    struct vk__res *r = NULL;
    if (rc == 0)
        rc = vk__query(c, VK__STMT_CANCEL_LIST,
                       "SELECT f.id FROM fragments f JOIN chains c ON c.id = f.chain_id"
                       " WHERE f.worker_id = $1 AND f.status = 'running'"
                       " AND (f.cancel_requested = 1 OR c.status = 'cancelled') ORDER BY f.id",
                       p, 1, &r, err);
    size_t cap = 0;
    while (rc == 0 && (rc = vk__next(r, err)) > 0) {
        if (vk_array_pool_grow(pool, cancel, &cap, *ncancel + 1, 4, sizeof(**cancel)) < 0) {
            rc = nomem(err);
            break;
        }
        const char *fid = vk__col_str(r, 0, pool);
        if (!fid) {
            rc = nomem(err);
            break;
        }
        (*cancel)[(*ncancel)++] = fid;
        rc = 0;
    }
    return vk__store_end(s, c, rc < 0 ? rc : 0, err);
}

#define WORKER_COLS                                                                                \
    "w.id, w.tenant_id, w.name, w.version, w.status, w.last_heartbeat, w.registered_at,"           \
    " (SELECT f.id FROM fragments f WHERE f.worker_id = w.id AND f.status = 'running'"             \
    " ORDER BY f.started_at LIMIT 1)"

static int read_worker(struct vk__res *r, struct vk_pool *pool, struct vk_store_worker *w,
                       struct vk_err *err)
{
    memset(w, 0, sizeof(*w));
    vk__col_id(r, 0, w->id);
    vk__col_id(r, 1, w->tenant_id);
    w->name = vk__col_str(r, 2, pool);
    w->version = r->conn->store->ops->res_null(r, 3) ? NULL : vk__col_str(r, 3, pool);
    const char *st = r->conn->store->ops->res_text(r, 4);
    w->status = !st || strcmp(st, "alive") == 0 ? VK_STORE_WORKER_ALIVE
                : strcmp(st, "dead") == 0       ? VK_STORE_WORKER_DEAD
                                                : VK_STORE_WORKER_STOPPED;
    w->last_heartbeat = vk__col_int(r, 5);
    w->registered_at = vk__col_int(r, 6);
    vk__col_id(r, 7, w->current_fragment_id);
    return w->name ? 0 : nomem(err);
}

/* Attach machine groups to workers ws[0..n) from one query. */
static int load_groups(struct vk__conn *c, const char *only, struct vk_pool *pool,
                       struct vk_store_worker *ws, size_t n, struct vk_err *err)
{
    struct vk__param p[] = {vk__text(only)};
    struct vk__res *r = NULL;
    int rc = vk__query(c, VK__STMT_NONE,
                       only ? "SELECT worker_id, machine FROM worker_groups WHERE worker_id = $1"
                              " ORDER BY machine"
                            : "SELECT worker_id, machine FROM worker_groups"
                              " ORDER BY worker_id, machine",
                       p, only ? 1 : 0, &r, err);
    while (rc == 0 && (rc = vk__next(r, err)) > 0) {
        char wid[VK_UUID_LEN];
        vk__col_id(r, 0, wid);
        rc = 0;
        for (size_t i = 0; i < n; i++) {
            struct vk_store_worker *w = &ws[i];
            if (strcmp(w->id, wid) != 0)
                continue;
            if (w->ngroups == VK_STORE_MAX_GROUPS)
                break;
            if (!w->groups) {
                w->groups = vk_pool_zalloc(pool, VK_STORE_MAX_GROUPS * sizeof(char *));
                if (!w->groups)
                    return nomem(err);
            }
            const char *g = vk__col_str(r, 1, pool);
            if (!g)
                return nomem(err);
            w->groups[w->ngroups++] = g;
            break;
        }
    }
    return rc < 0 ? rc : 0;
}

int vk_store_worker_get(struct vk_store *s, const char *id, struct vk_pool *pool,
                        struct vk_store_worker *out, struct vk_err *err)
{
    struct vk__conn *c = NULL;
    int rc = vk__store_conn_get(s, &c, err);
    if (rc)
        return rc;
    struct vk__param p[] = {vk__text(id)};
    struct vk__res *r = NULL;
    rc = vk__query(c, VK__STMT_NONE, "SELECT " WORKER_COLS " FROM workers w WHERE w.id = $1", p, 1,
                   &r, err);
    if (rc == 0) {
        rc = vk__next(r, err);
        if (rc == 0)
            rc = vk_err_set(err, VK_ENOTFOUND, "worker '%s' not found", id);
        if (rc > 0)
            rc = read_worker(r, pool, out, err);
    }
    if (rc == 0)
        rc = load_groups(c, id, pool, out, 1, err);
    vk__store_conn_put(s, c);
    return rc;
}

int vk_store_worker_list(struct vk_store *s, struct vk_pool *pool, struct vk_store_worker **out,
                         size_t *n, struct vk_err *err)
{
    struct vk__conn *c = NULL;
    int rc = vk__store_conn_get(s, &c, err);
    if (rc)
        return rc;
    struct vk__res *r = NULL;
    size_t cap = 0, len = 0;
    struct vk_store_worker *a = NULL;
    rc = vk__query(c, VK__STMT_NONE,
                   "SELECT " WORKER_COLS " FROM workers w ORDER BY w.registered_at DESC, w.id",
                   NULL, 0, &r, err);
    while (rc == 0 && (rc = vk__next(r, err)) > 0) {
        if (vk_array_pool_grow(pool, &a, &cap, len + 1, 16, sizeof(*a)) < 0) {
            rc = nomem(err);
            break;
        }
        rc = read_worker(r, pool, &a[len++], err);
    }
    if (rc == 0 && len)
        rc = load_groups(c, NULL, pool, a, len, err);
    vk__store_conn_put(s, c);
    if (rc < 0)
        return rc;
    *out = a;
    *n = len;
    return 0;
}

int vk_store_worker_stop(struct vk_store *s, const char *id, struct vk_err *err)
{
    struct vk_store_tx tx = {.store = s};
    int rc = vk__store_begin(s, &tx.conn, err);
    if (rc)
        return rc;
    struct vk__param p[] = {vk__text(id), vk__int(vk_time_now_ms())};
    int64_t changes = 0;
    rc = vk__exec(tx.conn, VK__STMT_NONE, "UPDATE workers SET status = 'stopped' WHERE id = $1", p,
                  1, &changes, err);
    if (rc == 0 && changes == 0)
        rc = vk_err_set(err, VK_ENOTFOUND, "worker '%s' not found", id);
    /* A worker that says goodbye gives back what it still holds (a work item that
     * reached it while it was stopping, a result it could not deliver): re-queued as
     * a hand-back, which does not count against max_attempts. */
    struct vk__res *r = NULL;
    if (rc == 0)
        rc = vk__query(tx.conn, VK__STMT_NONE,
                       "UPDATE fragments SET status = 'ready', attempt = attempt + 1,"
                       " handbacks = handbacks + 1, worker_id = NULL, ready_at = $2,"
                       " started_at = NULL WHERE worker_id = $1 AND status = 'running'"
                       " RETURNING machine",
                       p, 2, &r, err);
    /* Collect the groups first: on PostgreSQL a notification is a statement on the
     * same connection, which would end this result. */
    char groups[VK_STORE_MAX_GROUPS][VK__NOTE_LEN];
    int ngroups = 0;
    while (rc == 0) {
        int more = vk__next(r, err);
        if (more <= 0) {
            rc = more;
            break;
        }
        const char *g = s->ops->res_text(r, 0);
        bool seen = false;
        for (int i = 0; i < ngroups && !seen; i++)
            seen = strcmp(groups[i], g) == 0;
        if (!seen && ngroups < VK_STORE_MAX_GROUPS)
            snprintf(groups[ngroups++], VK__NOTE_LEN, "%s", g);
    }
    vk__res_free(r);
    for (int i = 0; rc == 0 && i < ngroups; i++)
        rc = vk__store_notify(&tx, groups[i], err);
    rc = vk__store_end(s, tx.conn, rc, err);
    if (rc == 0)
        for (int i = 0; i < tx.nnotes; i++)
            vk__store_note_local(s, tx.notes[i]);
    return rc;
}

int vk_store_worker_reconcile(struct vk_store *s, const char *id, const char *const *running,
                              size_t n, int64_t claimed_before_ms, int64_t now_ms,
                              size_t *nrequeued, struct vk_err *err)
{
    if (nrequeued)
        *nrequeued = 0;
    struct vk_store_tx tx = {.store = s};
    int rc = vk__store_begin(s, &tx.conn, err);
    if (rc)
        return rc;
    /* Collect the candidates first: the re-queue statements reuse the connection. */
    enum { MAX_HELD = 256 };
    char(*lost)[VK_UUID_LEN] = vk_mem_calloc(MAX_HELD, VK_UUID_LEN);
    char groups[VK_STORE_MAX_GROUPS][VK__NOTE_LEN];
    int nlost = 0, ngroups = 0;
    if (!lost) {
        vk__store_end(s, tx.conn, VK_ENOMEM, err);
        return nomem(err);
    }
    struct vk__param p[] = {vk__text(id), vk__int(claimed_before_ms)};
    struct vk__res *r = NULL;
    rc = vk__query(tx.conn, VK__STMT_NONE,
                   "SELECT id FROM fragments WHERE worker_id = $1 AND status = 'running'"
                   " AND started_at < $2",
                   p, 2, &r, err);
    while (rc == 0) {
        int more = vk__next(r, err);
        if (more <= 0) {
            rc = more;
            break;
        }
        char fid[VK_UUID_LEN];
        vk__col_id(r, 0, fid);
        bool listed = false;
        for (size_t i = 0; i < n && !listed; i++)
            listed = running[i] && strcmp(running[i], fid) == 0;
        if (!listed && nlost < MAX_HELD)
            memcpy(lost[nlost++], fid, VK_UUID_LEN);
    }
    vk__res_free(r);
    for (int i = 0; rc == 0 && i < nlost; i++) {
        struct vk__param q[] = {vk__text(lost[i]), vk__text(id), vk__int(now_ms)};
        r = NULL;
        rc = vk__query(tx.conn, VK__STMT_NONE,
                       "UPDATE fragments SET status = 'ready', attempt = attempt + 1,"
                       " handbacks = handbacks + 1, worker_id = NULL, ready_at = $3,"
                       " started_at = NULL WHERE id = $1 AND worker_id = $2"
                       " AND status = 'running' RETURNING machine",
                       q, 3, &r, err);
        if (rc == 0 && (rc = vk__next(r, err)) > 0) {
            const char *g = s->ops->res_text(r, 0);
            bool seen = false;
            for (int k = 0; k < ngroups && !seen; k++)
                seen = strcmp(groups[k], g) == 0;
            if (!seen && ngroups < VK_STORE_MAX_GROUPS)
                snprintf(groups[ngroups++], VK__NOTE_LEN, "%s", g);
            if (nrequeued)
                (*nrequeued)++;
            rc = 0;
        }
        vk__res_free(r);
    }
    for (int i = 0; rc == 0 && i < ngroups; i++)
        rc = vk__store_notify(&tx, groups[i], err);
    vk_mem_free(lost);
    rc = vk__store_end(s, tx.conn, rc, err);
    if (rc == 0)
        for (int i = 0; i < tx.nnotes; i++)
            vk__store_note_local(s, tx.notes[i]);
    return rc;
}

/* ---------------------------------------------------------------- Reaper */

struct dead {
    char id[VK_UUID_LEN];
    char name[128];
};

static int add_change(struct vk_pool *pool, struct vk_store_reap_result *res, size_t *cap,
                      const char *fid, const char *cid, const char *machine,
                      enum vk_store_frag_status st)
{
    if (vk_array_pool_grow(pool, &res->changes, cap, res->nchanges + 1, 16, sizeof(*res->changes)) <
        0)
        return VK_ENOMEM;
    struct vk_store_frag_change *ch = &res->changes[res->nchanges++];
    snprintf(ch->fragment_id, sizeof(ch->fragment_id), "%s", fid);
    snprintf(ch->chain_id, sizeof(ch->chain_id), "%s", cid);
    ch->status = st;
    ch->machine = vk_pool_strndup(pool, machine, strlen(machine));
    return ch->machine ? 0 : VK_ENOMEM;
}

/* Re-queue or fail the running fragments of one dead worker. */
static int reap_one(struct vk_store_tx *tx, const struct dead *d, int64_t now_ms, int limit,
                    struct vk_pool *pool, struct vk_store_reap_result *res, size_t *cap,
                    struct vk_err *err)
{
    struct vk__conn *c = tx->conn;
    struct vk__param p[] = {vk__text(d->id)};
    struct vk__res *r = NULL;
    struct row {
        char id[VK_UUID_LEN], chain[VK_UUID_LEN], machine[VK__NOTE_LEN];
        int attempt, handbacks, max;
    } rows[32];
    int rc;
    /* In batches: updated rows leave the running set, so re-running the query advances. */
    for (;;) {
        int nrows = 0;
        rc = vk__query(c, VK__STMT_NONE,
                       "SELECT id, chain_id, machine, attempt, handbacks, max_attempts"
                       " FROM fragments WHERE worker_id = $1 AND status = 'running'"
                       " ORDER BY id LIMIT 32",
                       p, 1, &r, err);
        while (rc == 0 && (rc = vk__next(r, err)) > 0) {
            struct row *w = &rows[nrows++];
            vk__col_id(r, 0, w->id);
            vk__col_id(r, 1, w->chain);
            snprintf(w->machine, sizeof(w->machine), "%s", c->store->ops->res_text(r, 2));
            w->attempt = (int)vk__col_int(r, 3);
            w->handbacks = (int)vk__col_int(r, 4);
            w->max = (int)vk__col_int(r, 5);
            rc = 0;
        }
        vk__res_free(r);
        if (rc < 0)
            return rc;
        if (nrows == 0)
            return 0;
        for (int i = 0; i < nrows; i++) {
            struct row *w = &rows[i];
            int max = limit > 0 ? limit : w->max;
            int used = w->attempt - w->handbacks;
            enum vk_store_frag_status st;
            if (used >= max) {
                char msg[300];
                snprintf(msg, sizeof(msg),
                         "worker '%s' (%s) stopped responding; gave up after %d attempts", d->name,
                         d->id, used);
                struct vk__param u[] = {vk__text(w->id), vk__text(msg), vk__int(now_ms)};
                rc = vk__exec(c, VK__STMT_NONE,
                              "UPDATE fragments SET status = 'failed', error = $2,"
                              " finished_at = $3 WHERE id = $1",
                              u, 3, NULL, err);
                st = VK_STORE_FRAG_FAILED;
            } else {
                rc = vk_store_tx_fragment_requeue(tx, w->id, false, now_ms, err);
                if (rc == 0)
                    rc = vk__store_notify(tx, w->machine, err);
                st = VK_STORE_FRAG_READY;
            }
            if (rc == 0 && add_change(pool, res, cap, w->id, w->chain, w->machine, st) != 0)
                rc = nomem(err);
            if (rc)
                return rc;
        }
    }
}

int vk_store_reap_workers(struct vk_store *s, int64_t now_ms, int64_t timeout_ms, int max_attempts,
                          struct vk_pool *pool, struct vk_store_reap_result *result,
                          struct vk_err *err)
{
    memset(result, 0, sizeof(*result));
    struct vk_store_tx tx = {.store = s};
    int rc = vk__store_begin(s, &tx.conn, err);
    if (rc)
        return rc;
    struct vk__param p[] = {vk__int(now_ms - timeout_ms)};
    struct vk__res *r = NULL;
    struct dead *dead = NULL;
    size_t ndead = 0, dcap = 0, ccap = 0;
    rc = vk__query(tx.conn, VK__STMT_NONE,
                   "UPDATE workers SET status = 'dead' WHERE status = 'alive'"
                   " AND last_heartbeat < $1 RETURNING id, name",
                   p, 1, &r, err);
    while (rc == 0 && (rc = vk__next(r, err)) > 0) {
        rc = 0;
        if (vk_array_grow(&dead, &dcap, ndead + 1, 8, sizeof(*dead)) < 0) {
            rc = nomem(err);
            break;
        }
        vk__col_id(r, 0, dead[ndead].id);
        snprintf(dead[ndead].name, sizeof(dead[ndead].name), "%s", s->ops->res_text(r, 1));
        ndead++;
    }
    vk__res_free(r);
    if (rc > 0)
        rc = 0;
    for (size_t i = 0; i < ndead && rc == 0; i++)
        rc = reap_one(&tx, &dead[i], now_ms, max_attempts, pool, result, &ccap, err);
    vk_mem_free(dead);
    rc = vk__store_end(s, tx.conn, rc, err);
    if (rc == 0) {
        result->nworkers = ndead;
        for (int i = 0; i < tx.nnotes; i++)
            vk__store_note_local(s, tx.notes[i]);
    } else {
        memset(result, 0, sizeof(*result));
    }
    return rc;
}
