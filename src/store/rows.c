/*
 * store rows: reading chain and fragment rows (in the column order of VK__CHAIN_COLS and
 * VK__FRAG_COLS) into model structs whose strings live in a caller's pool.
 */
#include "store_int.h"

#include <string.h>

static int nomem(struct vk_err *err)
{
    return vk_err_set(err, VK_ENOMEM, "out of memory");
}

/* Copy a nullable text column; sets *bad when the copy failed for lack of memory. */
static const char *str(struct vk__res *r, int col, struct vk_pool *pool, bool *bad)
{
    if (r->conn->store->ops->res_null(r, col))
        return NULL;
    const char *s = vk__col_str(r, col, pool);
    if (!s)
        *bad = true;
    return s;
}

int vk__read_chain(struct vk__res *r, int k, struct vk_pool *pool, struct vk_store_chain *c,
                   struct vk_err *err)
{
    bool bad = false;
    memset(c, 0, sizeof(*c));
    vk__col_id(r, k + 0, c->id);
    vk__col_id(r, k + 1, c->tenant_id);
    vk__col_id(r, k + 2, c->repository_id);
    c->source_file = str(r, k + 3, pool, &bad);
    c->repository_url = str(r, k + 4, pool, &bad);
    c->commit_sha = str(r, k + 5, pool, &bad);
    c->branch = str(r, k + 6, pool, &bad);
    c->trigger = str(r, k + 7, pool, &bad);
    c->trigger_ref = str(r, k + 8, pool, &bad);
    c->pr_number = vk__col_int(r, k + 9);
    c->tag = str(r, k + 10, pool, &bad);
    c->default_machine = str(r, k + 11, pool, &bad);
    c->env_json = str(r, k + 12, pool, &bad);
    c->priority = (int)vk__col_int(r, k + 13);
    const char *st = r->conn->store->ops->res_text(r, k + 14);
    if (vk_store_chain_status_parse(st, &c->status) != 0)
        return vk_err_set(err, VK_EDB, "chain '%s' has unknown status '%s'", c->id, st ? st : "");
    c->error = str(r, k + 15, pool, &bad);
    c->trace_id = str(r, k + 16, pool, &bad);
    c->created_at = vk__col_int(r, k + 17);
    c->started_at = vk__col_int(r, k + 18);
    c->finished_at = vk__col_int(r, k + 19);
    vk__col_id(r, k + 20, c->trigger_request_id);
    c->commit_message = str(r, k + 21, pool, &bad);
    c->commit_author = str(r, k + 22, pool, &bad);
    c->from_fork = vk__col_int(r, k + 23) != 0;
    c->concurrency_group = str(r, k + 24, pool, &bad);
    c->concurrency_cancel = vk__col_int(r, k + 25) != 0;
    return bad ? nomem(err) : 0;
}

int vk__read_frag(struct vk__res *r, int k, struct vk_pool *pool, struct vk_store_fragment *f,
                  struct vk_err *err)
{
    bool bad = false;
    const struct vk_store_ops *ops = r->conn->store->ops;
    memset(f, 0, sizeof(*f));
    vk__col_id(r, k + 0, f->id);
    vk__col_id(r, k + 1, f->chain_id);
    vk__col_id(r, k + 2, f->parent_id);
    f->sequence = (int)vk__col_int(r, k + 3);
    f->position = (int)vk__col_int(r, k + 4);
    const char *type = ops->res_text(r, k + 5);
    f->type = type && strcmp(type, "group") == 0 ? VK_STORE_FRAG_GROUP : VK_STORE_FRAG_INLINE;
    f->is_parallel = vk__col_int(r, k + 6) != 0;
    f->name = str(r, k + 7, pool, &bad);
    f->run_script = str(r, k + 8, pool, &bad);
    f->machine = str(r, k + 9, pool, &bad);
    f->condition = str(r, k + 10, pool, &bad);
    f->source_url = str(r, k + 11, pool, &bad);
    f->timeout_ms = vk__col_int(r, k + 12);
    f->retries = (int)vk__col_int(r, k + 13);
    f->retries_used = (int)vk__col_int(r, k + 14);
    const char *st = ops->res_text(r, k + 15);
    if (vk_store_frag_status_parse(st, &f->status) != 0)
        return vk_err_set(err, VK_EDB, "fragment '%s' has unknown status '%s'", f->id,
                          st ? st : "");
    f->attempt = (int)vk__col_int(r, k + 16);
    f->max_attempts = (int)vk__col_int(r, k + 17);
    f->handbacks = (int)vk__col_int(r, k + 18);
    f->cancel_requested = vk__col_int(r, k + 19) != 0;
    vk__col_id(r, k + 20, f->worker_id);
    f->ready_at = vk__col_int(r, k + 21);
    f->started_at = vk__col_int(r, k + 22);
    f->finished_at = vk__col_int(r, k + 23);
    f->has_exit_code = !ops->res_null(r, k + 24);
    f->exit_code = (int)vk__col_int(r, k + 24);
    f->error = str(r, k + 25, pool, &bad);
    f->env_json = str(r, k + 26, pool, &bad);
    f->queue_timeout_ms = vk__col_int(r, k + 27);
    f->max_parallel = (int)vk__col_int(r, k + 28);
    f->no_fail_fast = vk__col_int(r, k + 29) == 0;
    int64_t w = vk__col_int(r, k + 30);
    f->run_when = w == VK_STORE_WHEN_FAILURE  ? VK_STORE_WHEN_FAILURE
                  : w == VK_STORE_WHEN_ALWAYS ? VK_STORE_WHEN_ALWAYS
                                              : VK_STORE_WHEN_SUCCESS;
    f->allow_failure = vk__col_int(r, k + 31) != 0;
    f->secrets_json = str(r, k + 32, pool, &bad);
    f->is_matrix = vk__col_int(r, k + 33) != 0;
    f->matrix_values = str(r, k + 34, pool, &bad);
    f->needs_json = str(r, k + 35, pool, &bad);
    f->unmet_needs = (int)vk__col_int(r, k + 36);
    f->needs_wait = vk__col_int(r, k + 37) != 0;
    f->needs_env_json = str(r, k + 38, pool, &bad);
    f->outputs_json = str(r, k + 39, pool, &bad);
    f->concurrency_group = str(r, k + 40, pool, &bad);
    f->concurrency_cancel = vk__col_int(r, k + 41) != 0;
    return bad ? nomem(err) : 0;
}

int vk__read_frags(struct vk__res *r, struct vk_pool *pool, struct vk_store_fragment **out,
                   size_t *n, struct vk_err *err)
{
    size_t cap = 0, len = 0;
    struct vk_store_fragment *a = NULL;
    int rc;
    /* Allocated up front: an empty result is a non-NULL array too. */
    if (vk_array_pool_grow(pool, &a, &cap, 1, 16, sizeof(*a)) < 0)
        return nomem(err);
    while ((rc = vk__next(r, err)) > 0) {
        if (vk_array_pool_grow(pool, &a, &cap, len + 1, 16, sizeof(*a)) < 0)
            return nomem(err);
        rc = vk__read_frag(r, 0, pool, &a[len], err);
        if (rc)
            return rc;
        len++;
    }
    if (rc < 0)
        return rc;
    *out = a;
    *n = len;
    return 0;
}
