/* The rows of the secret store (vulcan/store_secrets.h). Values arrive sealed. */
#include "store_int.h"
#include "vulcan/store_secrets.h"

#include <stdio.h>
#include <string.h>

#define SECRET_COLS                                                                                \
    "id, tenant_id, scope, scope_id, repository_id, environment, name, protected, provider,"       \
    " provider_key, value, nonce, wrapped_key, version, key_version, created_by, created_at,"      \
    " updated_by, updated_at"

static int nomem(struct vk_err *err)
{
    return vk_err_set(err, VK_ENOMEM, "out of memory");
}

static const unsigned char *blob(struct vk__res *r, int col, struct vk_pool *pool, size_t *len,
                                 bool *bad)
{
    const struct vk_store_ops *ops = r->conn->store->ops;
    *len = 0;
    if (ops->res_null(r, col))
        return NULL;
    size_t n = 0;
    const void *b = ops->res_blob(r, col, &n);
    unsigned char *d = vk_pool_alloc(pool, n ? n : 1);
    if (!d) {
        *bad = true;
        return NULL;
    }
    if (n)
        memcpy(d, b, n);
    *len = n;
    return d;
}

static int read_secret(struct vk__res *r, struct vk_pool *pool, struct vk_store_secret *o,
                       struct vk_err *err)
{
    memset(o, 0, sizeof(*o));
    bool bad = false;
    vk__col_id(r, 0, o->id);
    vk__col_id(r, 1, o->tenant_id);
    o->scope = vk__col_str(r, 2, pool);
    o->scope_id = vk__col_str(r, 3, pool);
    vk__col_id(r, 4, o->repository_id);
    o->environment = vk__col_str(r, 5, pool);
    o->name = vk__col_str(r, 6, pool);
    o->is_protected = vk__col_int(r, 7) != 0;
    o->provider = vk__col_str(r, 8, pool);
    o->provider_key = vk__col_str(r, 9, pool);
    o->value = blob(r, 10, pool, &o->value_len, &bad);
    o->nonce = blob(r, 11, pool, &o->nonce_len, &bad);
    o->wrapped_key = blob(r, 12, pool, &o->wrapped_len, &bad);
    o->version = vk__col_int(r, 13);
    o->key_version = (int)vk__col_int(r, 14);
    o->created_by = vk__col_str(r, 15, pool);
    o->created_at = vk__col_int(r, 16);
    o->updated_by = vk__col_str(r, 17, pool);
    o->updated_at = vk__col_int(r, 18);
    if (bad || !o->scope || !o->name)
        return nomem(err);
    return 0;
}

/* Run a binary-result SELECT of SECRET_COLS on `c`; rows into `out` (at most `max`). */
static int select_rows(struct vk__conn *c, const char *sql, const struct vk__param *p, int np,
                       struct vk_pool *pool, struct vk_store_secret **out, size_t *n, size_t max,
                       struct vk_err *err)
{
    *out = NULL;
    *n = 0;
    if (c->res.handle)
        c->store->ops->res_free(&c->res);
    struct vk__res *r = NULL;
    int rc = c->store->ops->query(c, VK__STMT_NONE, sql, p, np, VK__Q_BINARY, &r, err);
    size_t cap = 0;
    while (rc == 0 && (rc = vk__next(r, err)) > 0) {
        rc = 0;
        if (*n >= max)
            break;
        if (vk_array_pool_grow(pool, out, &cap, *n + 1, 16, sizeof(**out)) < 0) {
            rc = nomem(err);
            break;
        }
        rc = read_secret(r, pool, &(*out)[*n], err);
        if (rc == 0)
            (*n)++;
    }
    vk__res_free(r);
    return rc < 0 ? rc : 0;
}

static int query_rows(struct vk_store *s, const char *sql, const struct vk__param *p, int np,
                      struct vk_pool *pool, struct vk_store_secret **out, size_t *n, size_t max,
                      struct vk_err *err)
{
    struct vk__conn *c = NULL;
    int rc = vk__store_conn_get(s, &c, err);
    if (rc)
        return rc;
    rc = select_rows(c, sql, p, np, pool, out, n, max, err);
    vk__store_conn_put(s, c);
    return rc;
}

int vk_store_secret_get(struct vk_store *s, const char *tenant_id, const char *scope,
                        const char *scope_id, const char *name, struct vk_pool *pool,
                        struct vk_store_secret *out, struct vk_err *err)
{
    struct vk__param p[] = {vk__text(tenant_id), vk__text(scope),
                            vk__text(scope_id ? scope_id : ""), vk__text(name)};
    struct vk_store_secret *rows = NULL;
    size_t n = 0;
    int rc = query_rows(s,
                        "SELECT " SECRET_COLS " FROM secrets WHERE tenant_id = $1 AND scope = $2"
                        " AND scope_id = $3 AND name = $4",
                        p, 4, pool, &rows, &n, 1, err);
    if (rc)
        return rc;
    if (n == 0)
        return vk_err_set(err, VK_ENOTFOUND, "no secret '%s' here", name);
    *out = rows[0];
    return 0;
}

int vk_store_secret_put(struct vk_store *s, struct vk_store_secret *sec, int64_t expected_version,
                        struct vk_err *err)
{
    int64_t now = vk_time_now_ms();
    struct vk__conn *c = NULL;
    int rc = vk__store_begin(s, &c, err);
    if (rc)
        return rc;
    const char *scope_id = sec->scope_id ? sec->scope_id : "";
    struct vk__param val[] = {
        sec->value ? vk__blob(sec->value, sec->value_len) : vk__text(NULL),
        sec->nonce ? vk__blob(sec->nonce, sec->nonce_len) : vk__text(NULL),
        sec->wrapped_key ? vk__blob(sec->wrapped_key, sec->wrapped_len) : vk__text(NULL),
    };
    if (expected_version == 0) {
        int64_t count = 0;
        struct vk__param q[] = {vk__text(sec->tenant_id), vk__text(sec->scope), vk__text(scope_id)};
        rc = vk__query_int(c, VK__STMT_NONE,
                           "SELECT COUNT(*) FROM secrets WHERE tenant_id = $1 AND scope = $2"
                           " AND scope_id = $3",
                           q, 3, &count, err);
        if (rc == 0 && count >= VK_STORE_MAX_SECRETS)
            rc = vk_err_set(err, VK_ETOOBIG, "this scope has %d secrets already (the most)",
                            VK_STORE_MAX_SECRETS);
        if (rc == 0 && vk_uuid_v7(sec->id) != 0)
            rc = vk_err_set(err, VK_EIO, "cannot generate an id");
        if (rc == 0) {
            struct vk__param p[] = {vk__text(sec->id),
                                    vk__text(sec->tenant_id),
                                    vk__text(sec->scope),
                                    vk__text(scope_id),
                                    vk__id(sec->repository_id),
                                    vk__text(sec->environment),
                                    vk__text(sec->name),
                                    vk__int(sec->is_protected),
                                    vk__text(sec->provider),
                                    vk__text(sec->provider_key),
                                    val[0],
                                    val[1],
                                    val[2],
                                    vk__int(sec->version),
                                    vk__int(sec->key_version),
                                    vk__text(sec->created_by),
                                    vk__int(now),
                                    vk__text(sec->updated_by),
                                    vk__int(now)};
            rc = vk__exec(c, VK__STMT_NONE,
                          "INSERT INTO secrets (" SECRET_COLS ") VALUES ($1, $2, $3, $4, $5, $6,"
                          " $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19)",
                          p, (int)VK_ARRAY_LEN(p), NULL, err);
            if (rc == VK_EEXIST)
                vk_err_set(err, rc, "secret '%s' exists already", sec->name);
        }
        return vk__store_end(s, c, rc, err);
    }
    struct vk__param p[] = {vk__text(sec->tenant_id),
                            vk__text(sec->scope),
                            vk__text(scope_id),
                            vk__text(sec->name),
                            vk__int(expected_version),
                            vk__int(sec->is_protected),
                            vk__text(sec->provider),
                            vk__text(sec->provider_key),
                            val[0],
                            val[1],
                            val[2],
                            vk__int(sec->version),
                            vk__int(sec->key_version),
                            vk__text(sec->updated_by),
                            vk__int(now)};
    int64_t changes = 0;
    rc = vk__exec(c, VK__STMT_NONE,
                  "UPDATE secrets SET protected = $6, provider = $7, provider_key = $8,"
                  " value = $9, nonce = $10, wrapped_key = $11, version = $12,"
                  " key_version = $13, updated_by = $14, updated_at = $15"
                  " WHERE tenant_id = $1 AND scope = $2 AND scope_id = $3 AND name = $4"
                  " AND version = $5",
                  p, (int)VK_ARRAY_LEN(p), &changes, err);
    if (rc == 0 && changes == 0)
        rc = vk_err_set(err, VK_ECONFLICT, "secret '%s' changed meanwhile", sec->name);
    return vk__store_end(s, c, rc, err);
}

int vk_store_secret_delete(struct vk_store *s, const char *tenant_id, const char *scope,
                           const char *scope_id, const char *name, struct vk_err *err)
{
    struct vk__conn *c = NULL;
    int rc = vk__store_begin(s, &c, err);
    if (rc)
        return rc;
    struct vk__param p[] = {vk__text(tenant_id), vk__text(scope),
                            vk__text(scope_id ? scope_id : ""), vk__text(name)};
    int64_t changes = 0;
    rc = vk__exec(c, VK__STMT_NONE,
                  "DELETE FROM secrets WHERE tenant_id = $1 AND scope = $2 AND scope_id = $3"
                  " AND name = $4",
                  p, 4, &changes, err);
    if (rc == 0 && changes == 0)
        rc = vk_err_set(err, VK_ENOTFOUND, "no secret '%s' here", name);
    return vk__store_end(s, c, rc, err);
}

int vk_store_secret_list(struct vk_store *s, const char *tenant_id, const char *scope,
                         const char *scope_id, struct vk_pool *pool, struct vk_store_secret **out,
                         size_t *n, struct vk_err *err)
{
    struct vk__param p[] = {vk__text(tenant_id), vk__text(scope),
                            vk__text(scope_id ? scope_id : "")};
    return query_rows(s,
                      "SELECT " SECRET_COLS " FROM secrets WHERE tenant_id = $1 AND scope = $2"
                      " AND scope_id = $3 ORDER BY name",
                      p, 3, pool, out, n, VK_STORE_MAX_SECRETS, err);
}

int vk_store_secret_resolve(struct vk_store *s, const char *tenant_id, const char *repository_id,
                            const char *name, struct vk_pool *pool, struct vk_store_secret *out,
                            struct vk_err *err)
{
    struct vk__param p[] = {vk__text(tenant_id), vk__text(repository_id ? repository_id : ""),
                            vk__text(name)};
    struct vk_store_secret *rows = NULL;
    size_t n = 0;
    int rc = query_rows(s,
                        "SELECT " SECRET_COLS " FROM secrets WHERE tenant_id = $1 AND name = $3"
                        " AND (scope = 'org' OR (scope = 'repository' AND scope_id = $2"
                        " AND $2 <> ''))"
                        " ORDER BY CASE scope WHEN 'repository' THEN 0 ELSE 1 END",
                        p, 3, pool, &rows, &n, 1, err);
    if (rc)
        return rc;
    if (n == 0)
        return vk_err_set(err, VK_ENOTFOUND, "no secret '%s'", name);
    *out = rows[0];
    return 0;
}

/* The newest key generation on `c`: *version 0 when none. */
static int newest_key(struct vk__conn *c, struct vk_pool *pool, int *version,
                      const unsigned char **kcv, size_t *kcv_len, struct vk_err *err)
{
    *version = 0;
    *kcv = NULL;
    *kcv_len = 0;
    if (c->res.handle)
        c->store->ops->res_free(&c->res);
    struct vk__res *r = NULL;
    int rc = c->store->ops->query(c, VK__STMT_NONE,
                                  "SELECT version, check_value FROM secret_keys"
                                  " ORDER BY version DESC LIMIT 1",
                                  NULL, 0, VK__Q_BINARY, &r, err);
    if (rc == 0 && (rc = vk__next(r, err)) > 0) {
        rc = 0;
        bool bad = false;
        *version = (int)vk__col_int(r, 0);
        *kcv = blob(r, 1, pool, kcv_len, &bad);
        if (bad)
            rc = nomem(err);
    }
    vk__res_free(r);
    return rc < 0 ? rc : 0;
}

int vk_store_secret_key_check(struct vk_store *s, const unsigned char *kcv, size_t n, int *version,
                              struct vk_err *err)
{
    struct vk_pool pool;
    vk_pool_init(&pool, 256);
    struct vk__conn *c = NULL;
    int rc = vk__store_begin(s, &c, err);
    if (rc) {
        vk_pool_release(&pool);
        return rc;
    }
    int v = 0;
    const unsigned char *have = NULL;
    size_t have_len = 0;
    rc = newest_key(c, &pool, &v, &have, &have_len, err);
    if (rc == 0 && v == 0) {
        struct vk__param p[] = {vk__int(1), vk__blob(kcv, n), vk__int(vk_time_now_ms())};
        rc = vk__exec(c, VK__STMT_NONE,
                      "INSERT INTO secret_keys (version, check_value, created_at)"
                      " VALUES ($1, $2, $3)",
                      p, 3, NULL, err);
        v = 1;
    } else if (rc == 0 && (have_len != n || memcmp(have, kcv, n) != 0)) {
        rc = vk_err_set(err, VK_EPERM,
                        "the secrets key is not the one this database's secrets are sealed "
                        "with (key generation %d)",
                        v);
    }
    if (version)
        *version = v;
    rc = vk__store_end(s, c, rc, err);
    vk_pool_release(&pool);
    return rc;
}

int vk_store_secret_rewrap_all(struct vk_store *s, vk_store_secret_rewrap_fn *fn, void *ctx,
                               const unsigned char *new_kcv, size_t kcv_len, size_t *count,
                               struct vk_err *err)
{
    if (count)
        *count = 0;
    struct vk_pool pool;
    vk_pool_init(&pool, 65536);
    struct vk__conn *c = NULL;
    int rc = vk__store_begin(s, &c, err);
    if (rc) {
        vk_pool_release(&pool);
        return rc;
    }
    int v = 0;
    const unsigned char *have = NULL;
    size_t have_len = 0;
    struct vk_store_secret *rows = NULL;
    size_t n = 0;
    rc = newest_key(c, &pool, &v, &have, &have_len, err);
    if (rc == 0)
        rc = select_rows(c,
                         "SELECT " SECRET_COLS " FROM secrets WHERE value IS NOT NULL ORDER BY id",
                         NULL, 0, &pool, &rows, &n, (size_t)-1, err);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        unsigned char wrapped[128];
        rc = fn(ctx, &rows[i], wrapped, err);
        if (rc)
            break;
        struct vk__param p[] = {vk__blob(wrapped, rows[i].wrapped_len), vk__int(v + 1),
                                vk__text(rows[i].id), vk__int(rows[i].version)};
        int64_t changes = 0;
        rc = vk__exec(c, VK__STMT_NONE,
                      "UPDATE secrets SET wrapped_key = $1, key_version = $2"
                      " WHERE id = $3 AND version = $4",
                      p, 4, &changes, err);
        if (rc == 0 && changes != 1)
            rc = vk_err_set(err, VK_ECONFLICT, "secret '%s' changed during the rotation",
                            rows[i].name);
    }
    if (rc == 0) {
        struct vk__param p[] = {vk__int(v + 1), vk__blob(new_kcv, kcv_len),
                                vk__int(vk_time_now_ms())};
        rc = vk__exec(c, VK__STMT_NONE,
                      "INSERT INTO secret_keys (version, check_value, created_at)"
                      " VALUES ($1, $2, $3)",
                      p, 3, NULL, err);
    }
    if (rc == 0 && count)
        *count = n;
    rc = vk__store_end(s, c, rc, err);
    vk_pool_release(&pool);
    return rc;
}
