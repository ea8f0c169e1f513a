/*
 * store chains: tenants, repositories, chain creation (with the whole fragment tree in one
 * transaction), chain lookup, filtered listing with cursor pagination, and cancel.
 */
#include "store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FRAG_BATCH 64 /* rows per multi-row INSERT */
#define FRAG_INSERT_COLS 27
#define EDGE_BATCH 256 /* needs edges per multi-row INSERT */

static int nomem(struct vk_err *err)
{
    return vk_err_set(err, VK_ENOMEM, "out of memory");
}

static int new_id(char id[VK_UUID_LEN], struct vk_err *err)
{
    if (vk_uuid_v7(id) != 0)
        return vk_err_set(err, VK_EIO, "cannot generate an id");
    return 0;
}

/* ---------------------------------------------------------------- Tenants */

int vk_store_tenant_ensure(struct vk_store *s, const char *name, char id[VK_UUID_LEN],
                           struct vk_err *err)
{
    if (!name || !*name || strlen(name) > 200)
        return vk_err_set(err, VK_EINVAL, "bad tenant name");
    char nid[VK_UUID_LEN];
    int rc = new_id(nid, err);
    if (rc)
        return rc;
    struct vk__conn *c = NULL;
    rc = vk__store_begin(s, &c, err);
    if (rc)
        return rc;
    struct vk__param p[] = {vk__text(nid), vk__text(name), vk__int(vk_time_now_ms())};
    rc = vk__exec(c, VK__STMT_NONE,
                  "INSERT INTO tenants (id, name, created_at) VALUES ($1, $2, $3)"
                  " ON CONFLICT (name) DO NOTHING",
                  p, 3, NULL, err);
    struct vk__res *r = NULL;
    if (rc == 0)
        rc = vk__query(c, VK__STMT_NONE, "SELECT id FROM tenants WHERE name = $1", &p[1], 1, &r,
                       err);
    if (rc == 0) {
        rc = vk__next(r, err);
        if (rc > 0) {
            vk__col_id(r, 0, id);
            rc = 0;
        } else if (rc == 0) {
            rc = vk_err_set(err, VK_EINTERNAL, "tenant '%s' vanished", name);
        }
    }
    return vk__store_end(s, c, rc, err);
}

/* ---------------------------------------------------------------- Repositories */

#define REPO_COLS                                                                                  \
    "id, tenant_id, url, provider, webhook_secret, workflow_glob, default_branch, "                \
    "allow_url_imports, created_at, status_token, status_api_url"
#define REPO_READ_COLS REPO_COLS ", allow_fork_secrets, protected_refs"

static int read_repo(struct vk__res *r, struct vk_pool *pool, struct vk_store_repo *o,
                     struct vk_err *err)
{
    memset(o, 0, sizeof(*o));
    vk__col_id(r, 0, o->id);
    vk__col_id(r, 1, o->tenant_id);
    o->url = vk__col_str(r, 2, pool);
    o->provider = vk__col_str(r, 3, pool);
    bool null_secret = r->conn->store->ops->res_null(r, 4);
    o->webhook_secret = vk__col_str(r, 4, pool);
    o->workflow_glob = vk__col_str(r, 5, pool);
    o->default_branch = vk__col_str(r, 6, pool);
    o->allow_url_imports = vk__col_int(r, 7) != 0;
    o->created_at = vk__col_int(r, 8);
    o->status_token = vk__col_str(r, 9, pool);
    o->status_api_url = vk__col_str(r, 10, pool);
    o->allow_fork_secrets = vk__col_int(r, 11) != 0;
    o->protected_refs = vk__col_str(r, 12, pool);
    if ((!o->protected_refs && !r->conn->store->ops->res_null(r, 12)) || !o->url || !o->provider ||
        !o->workflow_glob || !o->default_branch || (!null_secret && !o->webhook_secret) ||
        (!o->status_token && !r->conn->store->ops->res_null(r, 9)) ||
        (!o->status_api_url && !r->conn->store->ops->res_null(r, 10)))
        return nomem(err);
    return 0;
}

int vk_store_repo_create(struct vk_store *s, struct vk_store_repo *repo, struct vk_err *err)
{
    if (!repo->url || !*repo->url || !repo->tenant_id[0])
        return vk_err_set(err, VK_EINVAL, "a repository needs a tenant and a url");
    int rc = new_id(repo->id, err);
    if (rc)
        return rc;
    repo->created_at = vk_time_now_ms();
    struct vk__param p[] = {
        vk__text(repo->id),
        vk__text(repo->tenant_id),
        vk__text(repo->url),
        vk__text(repo->provider ? repo->provider : "generic"),
        vk__text(repo->webhook_secret),
        vk__text(repo->workflow_glob ? repo->workflow_glob : ".vulcan/*.kdl"),
        vk__text(repo->default_branch ? repo->default_branch : "main"),
        vk__int(repo->allow_url_imports),
        vk__int(repo->created_at),
        vk__text(repo->status_token),
        vk__text(repo->status_api_url),
    };
    struct vk__conn *c = NULL;
    rc = vk__store_begin(s, &c, err);
    if (rc)
        return rc;
    rc = vk__exec(c, VK__STMT_NONE,
                  "INSERT INTO repositories (" REPO_COLS ") VALUES ($1, $2, $3, $4, $5, $6, $7,"
                  " $8, $9, $10, $11)",
                  p, (int)VK_ARRAY_LEN(p), NULL, err);
    if (rc == VK_EEXIST)
        vk_err_set(err, rc, "repository '%s' exists already", repo->url);
    else if (rc == VK_EINVAL)
        vk_err_set(err, rc, "unknown tenant '%s'", repo->tenant_id);
    return vk__store_end(s, c, rc, err);
}

static int repo_one(struct vk_store *s, const char *sql, const char *arg, struct vk_pool *pool,
                    struct vk_store_repo *out, struct vk_err *err)
{
    struct vk__conn *c = NULL;
    int rc = vk__store_conn_get(s, &c, err);
    if (rc)
        return rc;
    struct vk__param p[] = {vk__text(arg)};
    struct vk__res *r = NULL;
    rc = vk__query(c, VK__STMT_NONE, sql, p, 1, &r, err);
    if (rc == 0) {
        rc = vk__next(r, err);
        if (rc > 0)
            rc = read_repo(r, pool, out, err);
        else if (rc == 0)
            rc = vk_err_set(err, VK_ENOTFOUND, "repository '%s' not found", arg);
    }
    vk__store_conn_put(s, c);
    return rc;
}

int vk_store_repo_get(struct vk_store *s, const char *id, struct vk_pool *pool,
                      struct vk_store_repo *out, struct vk_err *err)
{
    return repo_one(s, "SELECT " REPO_READ_COLS " FROM repositories WHERE id = $1", id, pool, out,
                    err);
}

int vk_store_repo_find_by_url(struct vk_store *s, const char *url, struct vk_pool *pool,
                              struct vk_store_repo *out, struct vk_err *err)
{
    return repo_one(s,
                    "SELECT " REPO_READ_COLS " FROM repositories WHERE url = $1"
                    " ORDER BY created_at LIMIT 1",
                    url, pool, out, err);
}

int vk_store_repo_list(struct vk_store *s, struct vk_pool *pool, struct vk_store_repo **out,
                       size_t *n, struct vk_err *err)
{
    struct vk__conn *c = NULL;
    int rc = vk__store_conn_get(s, &c, err);
    if (rc)
        return rc;
    struct vk__res *r = NULL;
    size_t cap = 0, len = 0;
    struct vk_store_repo *a = NULL;
    rc = vk__query(c, VK__STMT_NONE, "SELECT " REPO_READ_COLS " FROM repositories ORDER BY url, id",
                   NULL, 0, &r, err);
    while (rc == 0 && (rc = vk__next(r, err)) > 0) {
        if (vk_array_pool_grow(pool, &a, &cap, len + 1, 16, sizeof(*a)) < 0) {
            rc = nomem(err);
            break;
        }
        rc = read_repo(r, pool, &a[len++], err);
    }
    vk__store_conn_put(s, c);
    if (rc < 0)
        return rc;
    *out = a;
    *n = len;
    return 0;
}

/* ---------------------------------------------------------------- Chain creation */

/* Check the specs; fill seq[] with sequence numbers among siblings. */
static int check_specs(const struct vk_store_chain *ch, const struct vk_store_fragment_spec *sp,
                       size_t n, int *seq, struct vk_err *err)
{
    int *next = vk_mem_calloc(n + 1, sizeof(int));
    if (!next)
        return nomem(err);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        int par = sp[i].parent;
        if (par < -1 || par >= (int)i)
            rc = vk_err_set(err, VK_EINVAL, "fragment %zu: parent %d is not an earlier fragment", i,
                            par);
        else if (par >= 0 && sp[par].type != VK_STORE_FRAG_GROUP)
            rc = vk_err_set(err, VK_EINVAL, "fragment %zu: parent %d is not a group", i, par);
        else if (!sp[i].machine && !ch->default_machine)
            rc = vk_err_set(err, VK_EINVAL, "fragment %zu has no machine", i);
        else if (sp[i].type == VK_STORE_FRAG_INLINE && !sp[i].run_script)
            rc = vk_err_set(err, VK_EINVAL, "fragment %zu has no script", i);
        else
            seq[i] = next[par + 1]++;
        for (size_t k = 0; rc == 0 && k < sp[i].nneeds; k++)
            if (sp[i].needs[k] < 0 || (size_t)sp[i].needs[k] >= n || (size_t)sp[i].needs[k] == i)
                rc = vk_err_set(err, VK_EINVAL, "fragment %zu needs %d, not another fragment", i,
                                sp[i].needs[k]);
    }
    vk_mem_free(next);
    return rc;
}

/* Insert fragments [from, from + k) with one multi-row INSERT. */
static int insert_batch(struct vk__conn *c, const struct vk_store_chain *ch,
                        const struct vk_store_fragment_spec *sp, size_t from, size_t k,
                        char (*ids)[VK_UUID_LEN], const int *seq, struct vk__param *p,
                        struct vk_err *err)
{
    struct vk_buf sql = VK_BUF_INIT(VK_MAX_BODY);
    int rc = vk_buf_adds(&sql, "INSERT INTO fragments (id, chain_id, parent_id, sequence,"
                               " position, type, is_parallel, name, run_script, machine,"
                               " condition, source_url, timeout_ms, retries, max_attempts,"
                               " priority, env_json, queue_timeout_ms, max_parallel, fail_fast,"
                               " run_when, allow_failure, secrets_json, is_matrix, matrix_values,"
                               " needs_json, unmet_needs, status) VALUES ");
    int np = 0;
    for (size_t j = 0; j < k && rc == 0; j++) {
        size_t i = from + j;
        const struct vk_store_fragment_spec *f = &sp[i];
        rc = vk_buf_adds(&sql, j ? ",(" : "(");
        for (int col = 0; col < FRAG_INSERT_COLS && rc == 0; col++)
            rc = vk_buf_addf(&sql, "$%d,", np + col + 1);
        if (rc == 0)
            rc = vk_buf_adds(&sql, "'pending')");
        p[np++] = vk__text(ids[i]);
        p[np++] = vk__text(ch->id);
        p[np++] = f->parent >= 0 ? vk__text(ids[f->parent]) : vk__text(NULL);
        p[np++] = vk__int(seq[i]);
        p[np++] = vk__int((int64_t)i);
        p[np++] = vk__text(f->type == VK_STORE_FRAG_GROUP ? "group" : "inline");
        p[np++] = vk__int(f->is_parallel);
        p[np++] = vk__text(f->name);
        p[np++] = vk__text(f->run_script);
        p[np++] = vk__text(f->machine ? f->machine : ch->default_machine);
        p[np++] = vk__text(f->condition);
        p[np++] = vk__text(f->source_url);
        p[np++] = vk__int(f->timeout_ms);
        p[np++] = vk__int(f->retries);
        p[np++] = vk__int(f->max_attempts > 0 ? f->max_attempts : 3);
        p[np++] = vk__int(ch->priority);
        p[np++] = vk__text(f->env_json);
        p[np++] = vk__int(f->queue_timeout_ms);
        p[np++] = vk__int(f->max_parallel);
        p[np++] = vk__int(f->no_fail_fast ? 0 : 1);
        p[np++] = vk__int((int64_t)f->run_when);
        p[np++] = vk__int(f->allow_failure ? 1 : 0);
        p[np++] = vk__text(f->secrets_json);
        p[np++] = vk__int(f->is_matrix ? 1 : 0);
        p[np++] = vk__text(f->matrix_values);
        p[np++] = vk__text(f->needs_json);
        p[np++] = vk__int((int64_t)f->nneeds);
    }
    if (rc == 0)
        rc = vk__exec(c, k == FRAG_BATCH ? VK__STMT_FRAG_INSERT_BATCH : VK__STMT_NONE, sql.data, p,
                      np, NULL, err);
    else
        rc = nomem(err);
    vk_buf_release(&sql);
    return rc;
}

/* The needs edges of every spec, EDGE_BATCH rows per INSERT. */
static int insert_edges(struct vk__conn *c, const struct vk_store_chain *ch,
                        const struct vk_store_fragment_spec *sp, size_t n, char (*ids)[VK_UUID_LEN],
                        struct vk_err *err)
{
    struct vk__param *p = vk_mem_calloc(EDGE_BATCH * 4, sizeof(*p));
    struct vk_buf sql = VK_BUF_INIT(VK_MAX_BODY);
    int rc = p ? 0 : nomem(err);
    size_t rows = 0;
    int np = 0;
    for (size_t i = 0; i <= n && rc == 0; i++) {
        for (size_t k = 0; i < n && k < sp[i].nneeds && rc == 0; k++) {
            if (rows == 0)
                rc = vk_buf_adds(&sql, "INSERT INTO fragment_needs (need_id, fragment_id,"
                                       " chain_id, ord) VALUES ");
            if (rc == 0)
                rc = vk_buf_addf(&sql, "%s($%d,$%d,$%d,$%d)", rows ? "," : "", np + 1, np + 2,
                                 np + 3, np + 4);
            p[np++] = vk__text(ids[sp[i].needs[k]]);
            p[np++] = vk__text(ids[i]);
            p[np++] = vk__text(ch->id);
            p[np++] = vk__int((int64_t)k);
            if (rc == 0 && ++rows == EDGE_BATCH) {
                rc = vk__exec(c, VK__STMT_NONE, sql.data, p, np, NULL, err);
                vk_buf_reset(&sql);
                rows = 0;
                np = 0;
            }
        }
        if (i == n && rows && rc == 0)
            rc = vk__exec(c, VK__STMT_NONE, sql.data, p, np, NULL, err);
    }
    if (rc == VK_ENOMEM && !err->msg[0])
        rc = nomem(err);
    vk_buf_release(&sql);
    vk_mem_free(p);
    return rc;
}

/*
 * The chain a trigger request made already for the same workflow file (the request is
 * being handled again after its first handler died): its id into ch->id, VK_EEXIST.
 */
static int existing_chain(struct vk_store *s, struct vk_store_chain *ch, struct vk_err *err)
{
    struct vk__conn *c = NULL;
    int rc = vk__store_conn_get(s, &c, err);
    if (rc)
        return rc;
    struct vk__param p[] = {vk__text(ch->trigger_request_id), vk__text(ch->source_file)};
    struct vk__res *r = NULL;
    rc = vk__query(c, VK__STMT_NONE,
                   "SELECT id FROM chains WHERE trigger_request_id = $1 AND source_file = $2", p, 2,
                   &r, err);
    if (rc == 0) {
        rc = vk__next(r, err);
        if (rc > 0) {
            vk__col_id(r, 0, ch->id);
            rc = vk_err_set(err, VK_EEXIST, "trigger request '%s' made chain '%s' already",
                            ch->trigger_request_id, ch->id);
        } else if (rc == 0) {
            rc = vk_err_set(err, VK_EEXIST, "the chain exists already");
        }
        vk__res_free(r);
    }
    vk__store_conn_put(s, c);
    return rc;
}

int vk_store_chain_create(struct vk_store *s, struct vk_store_chain *ch,
                          const struct vk_store_fragment_spec *specs, size_t n,
                          char (*frag_ids)[VK_UUID_LEN], struct vk_err *err)
{
    if (n > VK_STORE_MAX_FRAGMENTS)
        return vk_err_set(err, VK_ETOOBIG, "chain has %zu fragments (at most %d)", n,
                          VK_STORE_MAX_FRAGMENTS);
    if (!ch->tenant_id[0] || !ch->trigger || !ch->default_machine)
        return vk_err_set(err, VK_EINVAL, "a chain needs a tenant, a trigger and a machine");
    int rc = 0;
    struct vk__conn *c = NULL;
    char(*ids)[VK_UUID_LEN] = frag_ids;
    int *seq = vk_mem_calloc(n + 1, sizeof(int));
    struct vk__param *p = vk_mem_calloc(FRAG_BATCH * FRAG_INSERT_COLS, sizeof(*p));
    if (!ids)
        ids = vk_mem_calloc(n + 1, VK_UUID_LEN);
    if (!seq || !p || !ids) {
        rc = nomem(err);
        goto out;
    }
    rc = check_specs(ch, specs, n, seq, err);
    if (rc)
        goto out;
    rc = new_id(ch->id, err);
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = new_id(ids[i], err);
    if (rc)
        goto out;
    ch->status = VK_STORE_CHAIN_PENDING;
    ch->created_at = vk_time_now_ms();
    /* A commit message is kept up to VK_STORE_MAX_COMMIT_MESSAGE bytes, cut before a UTF-8
     * continuation byte so the text stays valid. */
    char msg_buf[VK_STORE_MAX_COMMIT_MESSAGE + 1];
    const char *msg = ch->commit_message;
    if (msg && strlen(msg) > VK_STORE_MAX_COMMIT_MESSAGE) {
        size_t k = VK_STORE_MAX_COMMIT_MESSAGE;
        while (k && ((unsigned char)msg[k] & 0xC0) == 0x80)
            k--;
        memcpy(msg_buf, msg, k);
        msg_buf[k] = '\0';
        msg = msg_buf;
    }
    struct vk__param cp[] = {
        vk__text(ch->id),
        vk__text(ch->tenant_id),
        vk__id(ch->repository_id),
        vk__text(ch->source_file),
        vk__text(ch->repository_url),
        vk__text(ch->commit_sha),
        vk__text(ch->branch),
        vk__text(ch->trigger),
        vk__text(ch->trigger_ref),
        vk__time(ch->pr_number),
        vk__text(ch->tag),
        vk__text(ch->default_machine),
        vk__text(ch->env_json),
        vk__text(ch->definition),
        vk__int(ch->priority),
        vk__text(ch->trace_id),
        vk__int(ch->created_at),
        vk__id(ch->trigger_request_id),
        vk__text(msg),
        vk__text(ch->commit_author),
        vk__int(ch->from_fork),
    };
    rc = vk__store_begin(s, &c, err);
    if (rc)
        goto out;
    rc = vk__exec(c, VK__STMT_CHAIN_INSERT,
                  "INSERT INTO chains (id, tenant_id, repository_id, source_file, repository_url,"
                  " commit_sha, branch, trigger_type, trigger_ref, pr_number, tag,"
                  " default_machine, env_json, definition, priority, trace_id, created_at,"
                  " trigger_request_id, commit_message, commit_author, from_fork, status)"
                  " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15,"
                  " $16, $17, $18, $19, $20, $21, 'pending')",
                  cp, (int)VK_ARRAY_LEN(cp), NULL, err);
    if (rc == VK_EINVAL)
        vk_err_set(err, rc, "unknown tenant or repository for the chain");
    for (size_t i = 0; i < n && rc == 0; i += FRAG_BATCH) {
        size_t k = n - i < FRAG_BATCH ? n - i : FRAG_BATCH;
        rc = insert_batch(c, ch, specs, i, k, ids, seq, p, err);
    }
    if (rc == 0)
        rc = insert_edges(c, ch, specs, n, ids, err);
    if (rc == 0)
        rc = vk__concurrency_set(c, ch, specs, n, ids, err);
    rc = vk__store_end(s, c, rc, err);
    if (rc == VK_EEXIST && ch->trigger_request_id[0])
        rc = existing_chain(s, ch, err);
out:
    if (ids != frag_ids)
        vk_mem_free(ids);
    vk_mem_free(seq);
    vk_mem_free(p);
    return rc;
}

/* ---------------------------------------------------------------- Chain lookup */

int vk_store_chain_get(struct vk_store *s, const char *id, struct vk_pool *pool,
                       struct vk_store_chain *chain, struct vk_store_fragment **frags,
                       size_t *nfrags, struct vk_err *err)
{
    struct vk__conn *c = NULL;
    int rc = vk__store_conn_get(s, &c, err);
    if (rc)
        return rc;
    struct vk__param p[] = {vk__text(id)};
    struct vk__res *r = NULL;
    rc = vk__query(c, VK__STMT_CHAIN_GET,
                   "SELECT " VK__CHAIN_COLS ", c.definition FROM chains c WHERE c.id = $1", p, 1,
                   &r, err);
    if (rc)
        goto out;
    rc = vk__next(r, err);
    if (rc == 0)
        rc = vk_err_set(err, VK_ENOTFOUND, "chain '%s' not found", id);
    if (rc < 0)
        goto out;
    rc = vk__read_chain(r, 0, pool, chain, err);
    if (rc == 0 && !s->ops->res_null(r, VK__CHAIN_NCOLS)) {
        chain->definition = vk__col_str(r, VK__CHAIN_NCOLS, pool);
        if (!chain->definition)
            rc = nomem(err);
    }
    if (rc || !frags)
        goto out;
    rc = vk__query(c, VK__STMT_FRAGS_OF_CHAIN,
                   "SELECT " VK__FRAG_COLS " FROM fragments f WHERE f.chain_id = $1"
                   " ORDER BY f.position",
                   p, 1, &r, err);
    if (rc == 0)
        rc = vk__read_frags(r, pool, frags, nfrags, err);
out:
    vk__store_conn_put(s, c);
    return rc;
}

/* ---------------------------------------------------------------- Listing */

/* Cursor text: "<created_at>:<id>". */
static int parse_cursor(const char *cur, int64_t *ms, char id[VK_UUID_LEN], struct vk_err *err)
{
    char *end = NULL;
    if (strlen(cur) >= VK_STORE_CURSOR_LEN || *cur < '0' || *cur > '9')
        goto bad;
    long long v = strtoll(cur, &end, 10);
    if (*end != ':' || !vk_uuid_valid(end + 1))
        goto bad;
    *ms = v;
    snprintf(id, VK_UUID_LEN, "%s", end + 1);
    return 0;
bad:
    return vk_err_set(err, VK_EINVAL, "bad cursor");
}

static int add_filter(struct vk_buf *sql, struct vk__param *p, int *np, const char *col,
                      const char *val)
{
    if (!val || !*val)
        return 0;
    p[*np] = vk__text(val);
    (*np)++;
    return vk_buf_addf(sql, " AND c.%s = $%d", col, *np);
}

int vk_store_chain_list(struct vk_store *s, const struct vk_store_chain_filter *f,
                        struct vk_pool *pool, struct vk_store_chain **out, size_t *n,
                        char next_cursor[VK_STORE_CURSOR_LEN], struct vk_err *err)
{
    int limit = f->limit ? f->limit : 50;
    enum vk_store_chain_status st;
    int64_t cur_ms = 0;
    char cur_id[VK_UUID_LEN] = "";
    next_cursor[0] = '\0';
    *out = NULL;
    *n = 0;
    if (limit < 1 || limit > VK_STORE_MAX_LIST)
        return vk_err_set(err, VK_EINVAL, "limit must be between 1 and %d", VK_STORE_MAX_LIST);
    if (f->status && *f->status && vk_store_chain_status_parse(f->status, &st) != 0)
        return vk_err_set(err, VK_EINVAL, "unknown chain status '%.32s'", f->status);
    if (f->cursor && *f->cursor && parse_cursor(f->cursor, &cur_ms, cur_id, err) != 0)
        return VK_EINVAL;
    struct vk__param p[8];
    int np = 0;
    struct vk_buf sql = VK_BUF_INIT(VK_MAX_SMALL);
    int rc = vk_buf_adds(&sql, "SELECT " VK__CHAIN_COLS " FROM chains c WHERE 1 = 1");
    if (rc == 0)
        rc = add_filter(&sql, p, &np, "status", f->status);
    if (rc == 0)
        rc = add_filter(&sql, p, &np, "repository_id", f->repository_id);
    if (rc == 0)
        rc = add_filter(&sql, p, &np, "branch", f->branch);
    if (rc == 0)
        rc = add_filter(&sql, p, &np, "trigger_type", f->trigger);
    if (rc == 0 && f->since_ms) {
        p[np++] = vk__int(f->since_ms);
        rc = vk_buf_addf(&sql, " AND c.created_at >= $%d", np);
    }
    if (rc == 0 && cur_id[0]) {
        p[np++] = vk__int(cur_ms);
        p[np++] = vk__text(cur_id);
        rc = vk_buf_addf(&sql, " AND (c.created_at < $%d OR (c.created_at = $%d AND c.id < $%d))",
                         np - 1, np - 1, np);
    }
    if (rc == 0) {
        p[np++] = vk__int(limit + 1);
        rc = vk_buf_addf(&sql, " ORDER BY c.created_at DESC, c.id DESC LIMIT $%d", np);
    }
    if (rc) {
        vk_buf_release(&sql);
        return nomem(err);
    }
    struct vk__conn *c = NULL;
    rc = vk__store_conn_get(s, &c, err);
    if (rc) {
        vk_buf_release(&sql);
        return rc;
    }
    struct vk__res *r = NULL;
    struct vk_store_chain *a = vk_pool_alloc(pool, sizeof(*a) * (size_t)(limit + 1));
    size_t len = 0;
    rc = a ? vk__query(c, VK__STMT_NONE, sql.data, p, np, &r, err) : nomem(err);
    while (rc == 0 && (rc = vk__next(r, err)) > 0)
        rc = vk__read_chain(r, 0, pool, &a[len++], err);
    vk__store_conn_put(s, c);
    vk_buf_release(&sql);
    if (rc < 0)
        return rc;
    if (len > (size_t)limit) {
        len = (size_t)limit;
        snprintf(next_cursor, VK_STORE_CURSOR_LEN, "%lld:%s", (long long)a[len - 1].created_at,
                 a[len - 1].id);
    }
    *out = a;
    *n = len;
    return 0;
}

/* ---------------------------------------------------------------- Cancel */

int vk_store_chain_unsettled(struct vk_store *s, size_t limit, struct vk_pool *pool, char ***ids,
                             size_t *n, struct vk_err *err)
{
    *ids = NULL;
    *n = 0;
    struct vk__conn *c = NULL;
    int rc = vk__store_conn_get(s, &c, err);
    if (rc)
        return rc;
    struct vk__param p[] = {vk__int((int64_t)limit)};
    struct vk__res *r = NULL;
    rc = vk__query(c, VK__STMT_NONE,
                   "SELECT id FROM chains c WHERE"
                   " (c.status IN ('failed', 'cancelled', 'completed') AND c.finished_at IS NULL)"
                   " OR (c.status IN ('failed', 'cancelled') AND EXISTS (SELECT 1 FROM fragments f"
                   " WHERE f.chain_id = c.id AND f.type = 'group' AND f.status = 'running'))"
                   " ORDER BY c.created_at, c.id LIMIT $1",
                   p, 1, &r, err);
    size_t cap = 0, len = 0;
    char **a = NULL;
    while (rc == 0 && (rc = vk__next(r, err)) > 0) {
        if (vk_array_pool_grow(pool, &a, &cap, len + 1, 16, sizeof(*a)) < 0 ||
            !(a[len] = (char *)vk__col_str(r, 0, pool))) {
            rc = nomem(err);
            break;
        }
        len++;
    }
    vk__res_free(r);
    vk__store_conn_put(s, c);
    if (rc < 0)
        return rc;
    *ids = a;
    *n = len;
    return 0;
}

int vk_store_chain_cancel(struct vk_store *s, const char *chain_id, int64_t now_ms,
                          size_t *nflagged, struct vk_err *err)
{
    return vk_store_chain_cancel_reason(s, chain_id, now_ms, NULL, nflagged, err);
}

int vk_store_chain_cancel_reason(struct vk_store *s, const char *chain_id, int64_t now_ms,
                                 const char *reason, size_t *nflagged, struct vk_err *err)
{
    struct vk__conn *c = NULL;
    int rc = vk__store_begin(s, &c, err);
    if (rc)
        return rc;
    struct vk__param p[] = {vk__text(chain_id), vk__int(now_ms), vk__text(reason)};
    int64_t flagged = 0;
    struct vk__res *r = NULL;
    rc = vk__query(c, VK__STMT_NONE,
                   VK__SQL(s, "SELECT status FROM chains WHERE id = $1 FOR UPDATE",
                           "SELECT status FROM chains WHERE id = $1"),
                   p, 1, &r, err);
    if (rc)
        goto out;
    rc = vk__next(r, err);
    if (rc == 0)
        rc = vk_err_set(err, VK_ENOTFOUND, "chain '%s' not found", chain_id);
    if (rc < 0)
        goto out;
    enum vk_store_chain_status st = VK_STORE_CHAIN_PENDING;
    rc = vk_store_chain_status_parse(s->ops->res_text(r, 0), &st);
    vk__res_free(r);
    if (rc == 0 && st != VK_STORE_CHAIN_PENDING && st != VK_STORE_CHAIN_RUNNING)
        rc = vk_err_set(err, VK_ECONFLICT, "chain '%s' has finished already (%s)", chain_id,
                        vk_store_chain_status_name(st));
    if (rc)
        goto out;
    rc = vk__exec(c, VK__STMT_NONE,
                  "UPDATE fragments SET cancel_requested = 1 WHERE chain_id = $1"
                  " AND status = 'running' AND type = 'inline'",
                  p, 1, &flagged, err);
    if (rc == 0)
        rc = vk__exec(c, VK__STMT_NONE,
                      "UPDATE fragments SET status = 'cancelled', finished_at = $2"
                      " WHERE chain_id = $1 AND (status IN ('pending', 'ready')"
                      " OR (type = 'group' AND status = 'running'))",
                      p, 2, NULL, err);
    if (rc == 0)
        rc = vk__exec(c, VK__STMT_NONE,
                      "UPDATE chains SET status = 'cancelled', finished_at = $2,"
                      " started_at = COALESCE(started_at, $2), error = COALESCE($3, error)"
                      " WHERE id = $1",
                      p, 3, NULL, err);
out:
    rc = vk__store_end(s, c, rc, err);
    if (rc == 0 && nflagged)
        *nflagged = (size_t)flagged;
    return rc;
}
