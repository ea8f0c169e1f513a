/* The rows of the audit log (vulcan/store_audit.h): per-org hash chains and checkpoints. */
#include "store_int.h"
#include "vulcan/store_audit.h"

#include <stdio.h>
#include <string.h>

#define REC_COLS                                                                                   \
    "tenant_id, seq, at, actor, source, action, target, outcome, details, request_id, trace_id,"   \
    " prev_hash, hash"
#define CP_COLS "tenant_id, seq, at, hash, key_id, signature"

static const char zero_hash[VK_STORE_AUDIT_HASH_LEN] =
    "0000000000000000000000000000000000000000000000000000000000000000";

static int nomem(struct vk_err *err)
{
    return vk_err_set(err, VK_ENOMEM, "out of memory");
}

static void copy_hash(char out[VK_STORE_AUDIT_HASH_LEN], const char *t)
{
    snprintf(out, VK_STORE_AUDIT_HASH_LEN, "%s", t ? t : "");
}

/* The head of one org's chain and its last checkpoint, as the append goes. */
struct head {
    char tenant[VK_UUID_LEN];
    int64_t seq;
    char hash[VK_STORE_AUDIT_HASH_LEN];
    int64_t cp_seq, cp_at;
};

/* Lock `tenant`'s chain for this transaction (PostgreSQL; SQLite's write transaction is
 * already exclusive) and read its head and last checkpoint. */
static int read_head(struct vk__conn *c, const char *tenant, struct head *h, struct vk_err *err)
{
    memset(h, 0, sizeof(*h));
    snprintf(h->tenant, sizeof(h->tenant), "%s", tenant);
    copy_hash(h->hash, zero_hash);
    struct vk__param p[] = {vk__text(tenant)};
    int rc = 0;
    if (c->store->dialect == VK__PG) {
        int64_t ignored = 0;
        rc = vk__query_int(c, VK__STMT_NONE,
                           "SELECT 1 FROM (SELECT pg_advisory_xact_lock(7406001, hashtext($1)))"
                           " AS l",
                           p, 1, &ignored, err);
        if (rc)
            return rc;
    }
    struct vk__res *r = NULL;
    rc = vk__query(c, VK__STMT_NONE,
                   "SELECT seq, hash FROM audit_log WHERE tenant_id = $1 ORDER BY seq DESC LIMIT 1",
                   p, 1, &r, err);
    if (rc)
        return rc;
    rc = vk__next(r, err);
    if (rc > 0) {
        h->seq = vk__col_int(r, 0);
        copy_hash(h->hash, c->store->ops->res_text(r, 1));
        rc = 0;
    }
    vk__res_free(r);
    if (rc)
        return rc;
    rc = vk__query(c, VK__STMT_NONE,
                   "SELECT seq, at FROM audit_checkpoints WHERE tenant_id = $1"
                   " ORDER BY seq DESC LIMIT 1",
                   p, 1, &r, err);
    if (rc)
        return rc;
    rc = vk__next(r, err);
    if (rc > 0) {
        h->cp_seq = vk__col_int(r, 0);
        h->cp_at = vk__col_int(r, 1);
        rc = 0;
    }
    vk__res_free(r);
    return rc;
}

static int insert_checkpoint(struct vk__conn *c, const struct vk_store_audit_checkpoint *cp,
                             struct vk_err *err)
{
    struct vk__param p[] = {vk__text(cp->tenant_id), vk__int(cp->seq),     vk__int(cp->at),
                            vk__text(cp->hash),      vk__text(cp->key_id), vk__text(cp->signature)};
    return vk__exec(c, VK__STMT_NONE,
                    "INSERT INTO audit_checkpoints (" CP_COLS ") VALUES ($1, $2, $3, $4, $5, $6)",
                    p, 6, NULL, err);
}

/* Sign and insert a checkpoint of head `h` at time `now`. */
static int checkpoint(struct vk__conn *c, struct head *h, int64_t now, vk_store_audit_sign_fn *sign,
                      void *ctx, struct vk_err *err)
{
    struct vk_pool pool;
    vk_pool_init(&pool, 0);
    struct vk_store_audit_checkpoint cp = {.seq = h->seq, .at = now};
    snprintf(cp.tenant_id, sizeof(cp.tenant_id), "%s", h->tenant);
    copy_hash(cp.hash, h->hash);
    int rc = sign(ctx, &cp, &pool, err);
    if (rc == 0 && (!cp.key_id || !cp.signature))
        rc = vk_err_set(err, VK_EINTERNAL, "the audit signer gave no signature");
    if (rc == 0)
        rc = insert_checkpoint(c, &cp, err);
    vk_pool_release(&pool);
    if (rc == 0) {
        h->cp_seq = h->seq;
        h->cp_at = now;
    }
    return rc;
}

static bool due(const struct head *h, const struct vk_store_audit_policy *pol, int64_t now)
{
    if (!pol || h->seq <= h->cp_seq)
        return false;
    if (pol->every > 0 && h->seq - h->cp_seq >= pol->every)
        return true;
    /* the first checkpoint of a chain counts from its first record */
    return pol->after_ms > 0 && h->cp_at > 0 && now - h->cp_at >= pol->after_ms;
}

int vk_store_audit_append(struct vk_store *s, struct vk_store_audit_rec *recs, size_t n,
                          vk_store_audit_seal_fn *seal, vk_store_audit_sign_fn *sign, void *ctx,
                          const struct vk_store_audit_policy *policy, size_t *checkpoints,
                          struct vk_err *err)
{
    if (checkpoints)
        *checkpoints = 0;
    if (n == 0)
        return 0;
    if (n > VK_STORE_AUDIT_MAX_BATCH || !seal)
        return vk_err_set(err, VK_EINVAL, "an audit append takes 1 to %d records and a sealer",
                          VK_STORE_AUDIT_MAX_BATCH);
    struct head *heads = vk_mem_calloc(n, sizeof(*heads));
    if (!heads)
        return nomem(err);
    size_t nheads = 0, signed_n = 0;
    struct vk__conn *c = NULL;
    int rc = vk__store_begin(s, &c, err);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        struct vk_store_audit_rec *r = &recs[i];
        if (!r->actor || !r->action || !r->outcome) {
            rc = vk_err_set(err, VK_EINVAL, "an audit record needs an actor, action and outcome");
            break;
        }
        struct head *h = NULL;
        for (size_t k = 0; k < nheads && !h; k++)
            if (strcmp(heads[k].tenant, r->tenant_id) == 0)
                h = &heads[k];
        if (!h) {
            h = &heads[nheads++];
            rc = read_head(c, r->tenant_id, h, err);
            if (rc)
                break;
        }
        r->seq = h->seq + 1;
        copy_hash(r->prev_hash, h->hash);
        r->hash[0] = '\0';
        rc = seal(ctx, r, err);
        if (rc == 0 && strlen(r->hash) != VK_STORE_AUDIT_HASH_LEN - 1)
            rc = vk_err_set(err, VK_EINTERNAL, "the audit sealer gave no hash");
        if (rc)
            break;
        struct vk__param p[] = {
            vk__text(r->tenant_id),  vk__int(r->seq),       vk__int(r->at),
            vk__text(r->actor),      vk__text(r->source),   vk__text(r->action),
            vk__text(r->target),     vk__text(r->outcome),  vk__text(r->details),
            vk__text(r->request_id), vk__text(r->trace_id), vk__text(r->prev_hash),
            vk__text(r->hash)};
        rc = vk__exec(c, VK__STMT_NONE,
                      "INSERT INTO audit_log (" REC_COLS ") VALUES"
                      " ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
                      p, 13, NULL, err);
        if (rc)
            break;
        h->seq = r->seq;
        copy_hash(h->hash, r->hash);
        if (h->cp_at == 0)
            h->cp_at = r->at; /* no checkpoint yet: the 'after_ms' clock starts here */
        if (sign && due(h, policy, r->at)) {
            rc = checkpoint(c, h, r->at, sign, ctx, err);
            signed_n += rc == 0;
        }
    }
    if (c)
        rc = vk__store_end(s, c, rc, err);
    vk_mem_free(heads);
    if (rc == 0 && checkpoints)
        *checkpoints = signed_n;
    return rc;
}

int vk_store_audit_checkpoint_all(struct vk_store *s, vk_store_audit_sign_fn *sign, void *ctx,
                                  size_t *checkpoints, struct vk_err *err)
{
    if (checkpoints)
        *checkpoints = 0;
    struct vk_pool pool;
    vk_pool_init(&pool, 0);
    const char **orgs = NULL;
    size_t norgs = 0, done = 0;
    int rc = vk_store_audit_orgs(s, &pool, &orgs, &norgs, err);
    for (size_t i = 0; rc == 0 && i < norgs; i++) {
        struct vk__conn *c = NULL;
        rc = vk__store_begin(s, &c, err);
        if (rc)
            break;
        struct head h;
        rc = read_head(c, orgs[i], &h, err);
        if (rc == 0 && h.seq > h.cp_seq) {
            rc = checkpoint(c, &h, vk_time_now_ms(), sign, ctx, err);
            done += rc == 0;
        }
        rc = vk__store_end(s, c, rc, err);
    }
    vk_pool_release(&pool);
    if (checkpoints)
        *checkpoints = done;
    return rc;
}

static int read_rec(struct vk__res *r, struct vk_pool *pool, struct vk_store_audit_rec *o)
{
    const struct vk_store_ops *ops = r->conn->store->ops;
    memset(o, 0, sizeof(*o));
    vk__col_id(r, 0, o->tenant_id);
    o->seq = vk__col_int(r, 1);
    o->at = vk__col_int(r, 2);
    o->actor = vk__col_str(r, 3, pool);
    o->source = vk__col_str(r, 4, pool);
    o->action = vk__col_str(r, 5, pool);
    o->target = vk__col_str(r, 6, pool);
    o->outcome = vk__col_str(r, 7, pool);
    o->details = vk__col_str(r, 8, pool);
    o->request_id = vk__col_str(r, 9, pool);
    o->trace_id = vk__col_str(r, 10, pool);
    copy_hash(o->prev_hash, ops->res_text(r, 11));
    copy_hash(o->hash, ops->res_text(r, 12));
    return o->actor && o->action && o->outcome ? 0 : VK_ENOMEM;
}

/* The filters of vk_store_audit_list(): an absent one is a NULL (or 0) that always passes;
 * the casts tell PostgreSQL the type of a parameter that is NULL. */
#define AUDIT_WHERE                                                                                \
    " AND (CAST($2 AS TEXT) IS NULL OR actor = CAST($2 AS TEXT))"                                  \
    " AND (CAST($3 AS TEXT) IS NULL OR action = CAST($3 AS TEXT))"                                 \
    " AND (CAST($4 AS TEXT) IS NULL OR action LIKE CAST($4 AS TEXT) ESCAPE '!')"                   \
    " AND (CAST($5 AS TEXT) IS NULL OR target = CAST($5 AS TEXT))"                                 \
    " AND at >= CAST($6 AS BIGINT) AND (CAST($7 AS BIGINT) = 0 OR at < CAST($7 AS BIGINT))"        \
    " AND seq > CAST($8 AS BIGINT) AND (CAST($9 AS BIGINT) = 0 OR seq < CAST($9 AS BIGINT))"

int vk_store_audit_list(struct vk_store *s, const char *tenant_id,
                        const struct vk_store_audit_filter *f, struct vk_pool *pool,
                        struct vk_store_audit_rec **out, size_t *n, struct vk_err *err)
{
    *out = NULL;
    *n = 0;
    struct vk_store_audit_filter none = {0};
    if (!f)
        f = &none;
    size_t limit =
        f->limit && f->limit < VK_STORE_AUDIT_MAX_LIST ? f->limit : VK_STORE_AUDIT_MAX_LIST;
    size_t alen = f->action ? strlen(f->action) : 0;
    bool prefix = alen > 0 && f->action[alen - 1] == '.';
    char like[2 * 96 + 2] = ""; /* an action is at most 96 bytes, each may be escaped */
    if (prefix) {
        if (alen > 96)
            return vk_err_set(err, VK_EINVAL, "action filter too long");
        size_t o = 0;
        for (size_t i = 0; i < alen; i++) { /* '_', '%' and '!' match themselves */
            if (f->action[i] == '_' || f->action[i] == '%' || f->action[i] == '!')
                like[o++] = '!';
            like[o++] = f->action[i];
        }
        like[o++] = '%';
        like[o] = '\0';
    }
    struct vk__param p[] = {vk__text(tenant_id),
                            vk__text(f->actor),
                            vk__text(prefix ? NULL : f->action),
                            vk__text(prefix ? like : NULL),
                            vk__text(f->target),
                            vk__int(f->since),
                            vk__int(f->until),
                            vk__int(f->after_seq),
                            vk__int(f->before_seq),
                            vk__int((int64_t)limit)};
    const char *sql = f->newest_first
                          ? "SELECT " REC_COLS " FROM audit_log WHERE tenant_id = $1" AUDIT_WHERE
                            " ORDER BY seq DESC LIMIT $10"
                          : "SELECT " REC_COLS " FROM audit_log WHERE tenant_id = $1" AUDIT_WHERE
                            " ORDER BY seq LIMIT $10";
    struct vk__conn *c = NULL;
    int rc = vk__store_conn_get(s, &c, err);
    if (rc)
        return rc;
    struct vk__res *r = NULL;
    rc = vk__query(c, VK__STMT_NONE, sql, p, VK_ARRAY_LEN(p), &r, err);
    size_t cap = 0;
    while (rc == 0 && (rc = vk__next(r, err)) > 0) {
        rc = 0;
        if (vk_array_pool_grow(pool, out, &cap, *n + 1, 64, sizeof(**out)) < 0 ||
            read_rec(r, pool, &(*out)[*n]) != 0) {
            rc = nomem(err);
            break;
        }
        (*n)++;
    }
    vk__res_free(r);
    vk__store_conn_put(s, c);
    return rc < 0 ? rc : 0;
}

int vk_store_audit_checkpoints(struct vk_store *s, const char *tenant_id, int64_t after_seq,
                               size_t limit, struct vk_pool *pool,
                               struct vk_store_audit_checkpoint **out, size_t *n,
                               struct vk_err *err)
{
    *out = NULL;
    *n = 0;
    if (!limit || limit > VK_STORE_AUDIT_MAX_LIST)
        limit = VK_STORE_AUDIT_MAX_LIST;
    struct vk__param p[] = {vk__text(tenant_id), vk__int(after_seq), vk__int((int64_t)limit)};
    struct vk__conn *c = NULL;
    int rc = vk__store_conn_get(s, &c, err);
    if (rc)
        return rc;
    struct vk__res *r = NULL;
    rc = vk__query(c, VK__STMT_NONE,
                   "SELECT " CP_COLS " FROM audit_checkpoints WHERE tenant_id = $1 AND seq > $2"
                   " ORDER BY seq LIMIT $3",
                   p, 3, &r, err);
    size_t cap = 0;
    while (rc == 0 && (rc = vk__next(r, err)) > 0) {
        rc = 0;
        if (vk_array_pool_grow(pool, out, &cap, *n + 1, 16, sizeof(**out)) < 0) {
            rc = nomem(err);
            break;
        }
        struct vk_store_audit_checkpoint *cp = &(*out)[*n];
        memset(cp, 0, sizeof(*cp));
        vk__col_id(r, 0, cp->tenant_id);
        cp->seq = vk__col_int(r, 1);
        cp->at = vk__col_int(r, 2);
        copy_hash(cp->hash, s->ops->res_text(r, 3));
        cp->key_id = vk__col_str(r, 4, pool);
        cp->signature = vk__col_str(r, 5, pool);
        if (!cp->key_id || !cp->signature) {
            rc = nomem(err);
            break;
        }
        (*n)++;
    }
    vk__res_free(r);
    vk__store_conn_put(s, c);
    return rc < 0 ? rc : 0;
}

int vk_store_audit_orgs(struct vk_store *s, struct vk_pool *pool, const char ***ids, size_t *n,
                        struct vk_err *err)
{
    *ids = NULL;
    *n = 0;
    struct vk__conn *c = NULL;
    int rc = vk__store_conn_get(s, &c, err);
    if (rc)
        return rc;
    struct vk__res *r = NULL;
    rc = vk__query(c, VK__STMT_NONE,
                   "SELECT tenant_id FROM audit_log UNION SELECT tenant_id FROM audit_checkpoints"
                   " ORDER BY 1 LIMIT 10000",
                   NULL, 0, &r, err);
    size_t cap = 0;
    while (rc == 0 && (rc = vk__next(r, err)) > 0) {
        rc = 0;
        const char *id = vk__col_str(r, 0, pool);
        if (!id || vk_array_pool_grow(pool, ids, &cap, *n + 1, 16, sizeof(**ids)) < 0) {
            rc = nomem(err);
            break;
        }
        (*ids)[(*n)++] = id;
    }
    vk__res_free(r);
    vk__store_conn_put(s, c);
    return rc < 0 ? rc : 0;
}
