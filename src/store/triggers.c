/*
 * store triggers: repository update and delete, webhook deliveries (redelivery detection)
 * and cron schedules (refresh, due listing, exactly-once claims across replicas).
 * Schema: migration 2 in schema.c.
 */
#include "store_int.h"

#include <stdio.h>
#include <string.h>

#define MAX_FIELD 4096 /* bytes of a repository url, glob, branch, provider, secret */

static int nomem(struct vk_err *err)
{
    return vk_err_set(err, VK_ENOMEM, "out of memory");
}

/* ---------------------------------------------------------------- Repositories */

static int check_field(const char *name, const char *v, bool required, struct vk_err *err)
{
    if (!v)
        return required ? vk_err_set(err, VK_EINVAL, "'%s' may not be null", name) : 0;
    if (required && !*v)
        return vk_err_set(err, VK_EINVAL, "'%s' may not be empty", name);
    if (strlen(v) > MAX_FIELD)
        return vk_err_set(err, VK_EINVAL, "'%s' is longer than %d bytes", name, MAX_FIELD);
    return 0;
}

/* Accepts any subset of fields; builds "UPDATE repositories SET a = $2, ... WHERE id = $1". */
int vk_store_repo_update(struct vk_store *s, const char *id, const struct vk_store_repo_update *u,
                         struct vk_err *err)
{
    if (!id || !*id)
        return vk_err_set(err, VK_EINVAL, "a repository id is required");
    static const struct {
        unsigned bit;
        const char *col;
        bool required;
    } cols[] = {
        {VK_STORE_REPO_SET_URL, "url", true},
        {VK_STORE_REPO_SET_PROVIDER, "provider", true},
        {VK_STORE_REPO_SET_SECRET, "webhook_secret", false},
        {VK_STORE_REPO_SET_GLOB, "workflow_glob", true},
        {VK_STORE_REPO_SET_BRANCH, "default_branch", true},
        {VK_STORE_REPO_SET_URL_IMPORTS, "allow_url_imports", true},
        {VK_STORE_REPO_SET_STATUS_TOKEN, "status_token", false},
        {VK_STORE_REPO_SET_STATUS_API, "status_api_url", false},
        {VK_STORE_REPO_SET_FORK_SECRETS, "allow_fork_secrets", true},
        {VK_STORE_REPO_SET_PROTECTED_REFS, "protected_refs", false},
    };
    const char *vals[] = {u->url,           u->provider,       u->webhook_secret,
                          u->workflow_glob, u->default_branch, NULL,
                          u->status_token,  u->status_api_url, NULL,
                          u->protected_refs};
    struct vk__param p[1 + VK_ARRAY_LEN(cols)];
    char sql[512];
    size_t len = (size_t)snprintf(sql, sizeof(sql), "UPDATE repositories SET ");
    int np = 0;
    p[np++] = vk__text(id);
    for (size_t i = 0; i < VK_ARRAY_LEN(cols); i++) {
        if (!(u->set & cols[i].bit))
            continue;
        if (cols[i].bit == VK_STORE_REPO_SET_URL_IMPORTS) {
            p[np++] = vk__int(u->allow_url_imports ? 1 : 0);
        } else if (cols[i].bit == VK_STORE_REPO_SET_FORK_SECRETS) {
            p[np++] = vk__int(u->allow_fork_secrets ? 1 : 0);
        } else {
            int rc = check_field(cols[i].col, vals[i], cols[i].required, err);
            if (rc)
                return rc;
            p[np++] = vk__text(vals[i]);
        }
        len += (size_t)snprintf(sql + len, sizeof(sql) - len, "%s%s = $%d", np > 2 ? ", " : "",
                                cols[i].col, np);
    }
    struct vk__conn *c = NULL;
    int rc = vk__store_begin(s, &c, err);
    if (rc)
        return rc;
    int64_t changes = 0;
    if (np == 1) /* nothing to change: still tell whether it exists */
        rc = vk__query_int(c, VK__STMT_NONE, "SELECT 1 FROM repositories WHERE id = $1", p, 1,
                           &changes, err);
    else {
        snprintf(sql + len, sizeof(sql) - len, " WHERE id = $1");
        rc = vk__exec(c, VK__STMT_NONE, sql, p, np, &changes, err);
    }
    if (rc == VK_EEXIST)
        vk_err_set(err, rc, "repository '%s' exists already", u->url ? u->url : "");
    else if (rc == 0 && changes == 0)
        rc = VK_ENOTFOUND;
    if (rc == VK_ENOTFOUND)
        vk_err_set(err, rc, "repository '%s' not found", id);
    return vk__store_end(s, c, rc, err);
}

int vk_store_repo_delete(struct vk_store *s, const char *id, struct vk_err *err)
{
    if (!id || !*id)
        return vk_err_set(err, VK_EINVAL, "a repository id is required");
    struct vk__conn *c = NULL;
    int rc = vk__store_begin(s, &c, err);
    if (rc)
        return rc;
    struct vk__param p[] = {vk__text(id)};
    int64_t changes = 0;
    /* Chains keep their rows (repository_id is cleared by ON DELETE SET NULL); say it here
     * too so that the result does not depend on the backend enforcing foreign keys. */
    rc = vk__exec(c, VK__STMT_NONE,
                  "UPDATE chains SET repository_id = NULL WHERE repository_id = $1", p, 1, NULL,
                  err);
    if (rc == 0)
        rc = vk__exec(c, VK__STMT_NONE, "DELETE FROM schedules WHERE repository_id = $1", p, 1,
                      NULL, err);
    if (rc == 0)
        rc = vk__exec(c, VK__STMT_NONE, "DELETE FROM repositories WHERE id = $1", p, 1, &changes,
                      err);
    if (rc == 0 && changes == 0)
        rc = vk_err_set(err, VK_ENOTFOUND, "repository '%s' not found", id);
    return vk__store_end(s, c, rc, err);
}

/* ---------------------------------------------------------------- Deliveries */

static int check_delivery(const char *provider, const char *id, struct vk_err *err)
{
    if (!provider || !*provider || strlen(provider) > 64)
        return vk_err_set(err, VK_EINVAL, "bad webhook provider");
    if (!id || !*id || strlen(id) > VK_STORE_MAX_DELIVERY_ID)
        return vk_err_set(err, VK_EINVAL, "a delivery id must have 1 to %d bytes",
                          VK_STORE_MAX_DELIVERY_ID);
    return 0;
}

/* FNV-1a of the id: decides, without shared state, which inserts also prune. */
static uint32_t hash_str(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

int vk_store_delivery_seen(struct vk_store *s, const char *provider, const char *delivery_id,
                           int64_t now_ms, bool *seen, struct vk_err *err)
{
    int rc = check_delivery(provider, delivery_id, err);
    if (rc)
        return rc;
    struct vk__conn *c = NULL;
    rc = vk__store_begin(s, &c, err);
    if (rc)
        return rc;
    struct vk__param p[] = {vk__text(provider), vk__text(delivery_id), vk__int(now_ms)};
    int64_t changes = 0;
    rc = vk__exec(c, VK__STMT_NONE,
                  "INSERT INTO webhook_deliveries (provider, delivery_id, received_at)"
                  " VALUES ($1, $2, $3) ON CONFLICT (provider, delivery_id) DO NOTHING",
                  p, 3, &changes, err);
    if (rc == 0 && changes == 1 && hash_str(delivery_id) % 64 == 0) {
        struct vk__param q[] = {vk__int(now_ms - VK_STORE_DELIVERY_KEEP_MS)};
        rc = vk__exec(c, VK__STMT_NONE, "DELETE FROM webhook_deliveries WHERE received_at < $1", q,
                      1, NULL, err);
    }
    rc = vk__store_end(s, c, rc, err);
    if (rc == 0)
        *seen = changes == 0;
    return rc;
}

int vk_store_delivery_known(struct vk_store *s, const char *provider, const char *delivery_id,
                            bool *known, struct vk_err *err)
{
    *known = false;
    int rc = check_delivery(provider, delivery_id, err);
    if (rc)
        return rc;
    struct vk__conn *c = NULL;
    rc = vk__store_conn_get(s, &c, err);
    if (rc)
        return rc;
    struct vk__param p[] = {vk__text(provider), vk__text(delivery_id)};
    int64_t n = 0;
    rc = vk__query_int(c, VK__STMT_NONE,
                       "SELECT COUNT(*) FROM webhook_deliveries WHERE provider = $1 AND"
                       " delivery_id = $2",
                       p, 2, &n, err);
    vk__store_conn_put(s, c);
    *known = rc == 0 && n > 0;
    return rc;
}

int vk_store_delivery_forget(struct vk_store *s, const char *provider, const char *delivery_id,
                             struct vk_err *err)
{
    int rc = check_delivery(provider, delivery_id, err);
    if (rc)
        return rc;
    struct vk__conn *c = NULL;
    rc = vk__store_begin(s, &c, err);
    if (rc)
        return rc;
    struct vk__param p[] = {vk__text(provider), vk__text(delivery_id)};
    rc = vk__exec(c, VK__STMT_NONE,
                  "DELETE FROM webhook_deliveries WHERE provider = $1 AND delivery_id = $2", p, 2,
                  NULL, err);
    return vk__store_end(s, c, rc, err);
}

int vk_store_delivery_prune(struct vk_store *s, int64_t before_ms, int64_t *n, struct vk_err *err)
{
    struct vk__conn *c = NULL;
    int rc = vk__store_begin(s, &c, err);
    if (rc)
        return rc;
    struct vk__param p[] = {vk__int(before_ms)};
    int64_t changes = 0;
    rc = vk__exec(c, VK__STMT_NONE, "DELETE FROM webhook_deliveries WHERE received_at < $1", p, 1,
                  &changes, err);
    rc = vk__store_end(s, c, rc, err);
    if (rc == 0 && n)
        *n = changes;
    return rc;
}

/* ---------------------------------------------------------------- Schedules */

#define SCHED_COLS                                                                                 \
    "id, repository_id, workflow_file, cron, timezone, next_fire_ms, last_fired_ms, created_at"

static int read_sched(struct vk__res *r, struct vk_pool *pool, struct vk_store_schedule *o,
                      struct vk_err *err)
{
    memset(o, 0, sizeof(*o));
    vk__col_id(r, 0, o->id);
    vk__col_id(r, 1, o->repository_id);
    o->workflow_file = vk__col_str(r, 2, pool);
    o->cron = vk__col_str(r, 3, pool);
    o->timezone = vk__col_str(r, 4, pool);
    o->next_fire_ms = vk__col_int(r, 5);
    o->last_fired_ms = vk__col_int(r, 6);
    o->created_at = vk__col_int(r, 7);
    if (!o->workflow_file || !o->cron || !o->timezone)
        return nomem(err);
    return 0;
}

/* Read every remaining row of `r` into a pool array. */
static int read_scheds(struct vk__res *r, struct vk_pool *pool, struct vk_store_schedule **out,
                       size_t *n, struct vk_err *err)
{
    size_t cap = 0, len = 0;
    struct vk_store_schedule *a = NULL;
    int rc;
    while ((rc = vk__next(r, err)) > 0) {
        if (vk_array_pool_grow(pool, &a, &cap, len + 1, 16, sizeof(*a)) < 0)
            return nomem(err);
        rc = read_sched(r, pool, &a[len++], err);
        if (rc)
            return rc;
    }
    if (rc < 0)
        return rc;
    *out = a;
    *n = len;
    return 0;
}

static bool same_key(const struct vk_store_schedule *a, const struct vk_store_schedule *b)
{
    return strcmp(a->workflow_file, b->workflow_file) == 0 && strcmp(a->cron, b->cron) == 0 &&
           strcmp(a->timezone, b->timezone) == 0;
}

static int check_sched(const struct vk_store_schedule *it, struct vk_err *err)
{
    int rc = check_field("workflow_file", it->workflow_file, true, err);
    if (rc == 0)
        rc = check_field("cron", it->cron, true, err);
    if (rc == 0)
        rc = check_field("timezone", it->timezone, true, err);
    return rc;
}

int vk_store_schedules_replace(struct vk_store *s, const char *repo_id,
                               const struct vk_store_schedule *items, size_t n, int64_t now_ms,
                               struct vk_err *err)
{
    if (!repo_id || !*repo_id)
        return vk_err_set(err, VK_EINVAL, "a repository id is required");
    if (n > VK_STORE_MAX_SCHEDULES)
        return vk_err_set(err, VK_ETOOBIG, "more than %d schedules in one repository",
                          VK_STORE_MAX_SCHEDULES);
    for (size_t i = 0; i < n; i++) {
        int rc = check_sched(&items[i], err);
        if (rc)
            return rc;
    }
    struct vk_pool pool;
    vk_pool_init(&pool, 0);
    struct vk__conn *c = NULL;
    int rc = vk__store_begin(s, &c, err);
    if (rc) {
        vk_pool_release(&pool);
        return rc;
    }
    struct vk__param rp[] = {vk__text(repo_id)};
    int64_t one = 0;
    rc = vk__query_int(c, VK__STMT_NONE, "SELECT 1 FROM repositories WHERE id = $1", rp, 1, &one,
                       err);
    if (rc == VK_ENOTFOUND)
        vk_err_set(err, rc, "repository '%s' not found", repo_id);
    struct vk_store_schedule *old = NULL;
    size_t nold = 0;
    struct vk__res *r = NULL;
    if (rc == 0)
        rc = vk__query(c, VK__STMT_NONE,
                       "SELECT " SCHED_COLS " FROM schedules WHERE repository_id = $1", rp, 1, &r,
                       err);
    if (rc == 0)
        rc = read_scheds(r, &pool, &old, &nold, err);
    vk__res_free(r);
    /* Delete what is no longer wanted. */
    for (size_t i = 0; rc == 0 && i < nold; i++) {
        bool keep = false;
        for (size_t j = 0; j < n && !keep; j++)
            keep = same_key(&old[i], &items[j]);
        if (keep)
            continue;
        struct vk__param p[] = {vk__text(old[i].id)};
        rc = vk__exec(c, VK__STMT_NONE, "DELETE FROM schedules WHERE id = $1", p, 1, NULL, err);
    }
    /* Insert what is new; existing rows (and their fire times) stay. */
    for (size_t j = 0; rc == 0 && j < n; j++) {
        char id[VK_UUID_LEN];
        if (vk_uuid_v7(id) != 0) {
            rc = vk_err_set(err, VK_EIO, "cannot generate an id");
            break;
        }
        const struct vk_store_schedule *it = &items[j];
        struct vk__param p[] = {
            vk__text(id),
            vk__text(repo_id),
            vk__text(it->workflow_file),
            vk__text(it->cron),
            vk__text(it->timezone),
            vk__int(it->next_fire_ms),
            vk__int(it->last_fired_ms ? it->last_fired_ms : now_ms),
            vk__int(now_ms),
        };
        rc = vk__exec(c, VK__STMT_NONE,
                      "INSERT INTO schedules (" SCHED_COLS ") VALUES ($1, $2, $3, $4, $5, $6, $7,"
                      " $8) ON CONFLICT (repository_id, workflow_file, cron, timezone) DO NOTHING",
                      p, 8, NULL, err);
    }
    rc = vk__store_end(s, c, rc, err);
    vk_pool_release(&pool);
    return rc;
}

int vk_store_schedules_list(struct vk_store *s, const char *repo_id, int64_t due_before_ms,
                            int limit, struct vk_pool *pool, struct vk_store_schedule **out,
                            size_t *n, struct vk_err *err)
{
    if (limit <= 0 || limit > VK_STORE_MAX_SCHEDULES)
        limit = VK_STORE_MAX_SCHEDULES;
    struct vk__param p[] = {vk__id(repo_id), vk__int(due_before_ms), vk__int(limit)};
    struct vk__conn *c = NULL;
    int rc = vk__store_conn_get(s, &c, err);
    if (rc)
        return rc;
    struct vk__res *r = NULL;
    rc = vk__query(c, VK__STMT_NONE,
                   "SELECT " SCHED_COLS " FROM schedules"
                   " WHERE (CAST($1 AS TEXT) IS NULL OR repository_id = CAST($1 AS TEXT))"
                   " AND (CAST($2 AS BIGINT) = 0 OR next_fire_ms <= CAST($2 AS BIGINT))"
                   " ORDER BY next_fire_ms, id LIMIT $3",
                   p, 3, &r, err);
    if (rc == 0)
        rc = read_scheds(r, pool, out, n, err);
    vk__store_conn_put(s, c);
    return rc;
}

int vk_store_schedule_claim(struct vk_store *s, const char *id, int64_t slot_ms, int64_t next_ms,
                            bool *claimed, struct vk_err *err)
{
    *claimed = false;
    struct vk__conn *c = NULL;
    int rc = vk__store_begin(s, &c, err);
    if (rc)
        return rc;
    struct vk__param p[] = {vk__text(id), vk__int(slot_ms), vk__int(next_ms)};
    int64_t changes = 0;
    rc = vk__exec(c, VK__STMT_NONE,
                  "UPDATE schedules SET last_fired_ms = $2, next_fire_ms = $3"
                  " WHERE id = $1 AND last_fired_ms < $2",
                  p, 3, &changes, err);
    rc = vk__store_end(s, c, rc, err);
    if (rc == 0)
        *claimed = changes == 1;
    return rc;
}

int vk_store_schedule_set_next(struct vk_store *s, const char *id, int64_t next_ms,
                               struct vk_err *err)
{
    struct vk__conn *c = NULL;
    int rc = vk__store_begin(s, &c, err);
    if (rc)
        return rc;
    struct vk__param p[] = {vk__text(id), vk__int(next_ms)};
    rc = vk__exec(c, VK__STMT_NONE, "UPDATE schedules SET next_fire_ms = $2 WHERE id = $1", p, 2,
                  NULL, err);
    return vk__store_end(s, c, rc, err);
}
