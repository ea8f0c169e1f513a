/*
 * store concurrency: the concurrency groups of chains and fragments (docs/workflow.md,
 * "Concurrency groups"; the claim's conditions are VK__CONCURRENCY_CLAIM in store_int.h).
 *
 * A group's key is "<org id>\n<repository>\n<group>", the repository being its id, else
 * (a chain sent without a registered repository) "url:" and the URL it checks out, else
 * "": a group has no control characters and an org id is a UUID, so two orgs (or two
 * repositories) never share a key whatever their groups are called. Chains carry their key in
 * chains.concurrency_key and every inline fragment of such a chain carries it too
 * (fragments.chain_concurrency_key); a fragment with a group of its own has it in
 * fragments.concurrency_key. Each question below is one seek on the key's index (migration 14),
 * never a scan of the chains.
 */
#include "store_int.h"

#include <stdio.h>
#include <string.h>

#define MAX_URL 4096 /* longest repository URL in a key */
#define MAX_KEY (VK_UUID_LEN + 2 + MAX_URL + 8 + VK_STORE_MAX_CONCURRENCY_GROUP)
#define MAX_WAKE 16

static int nomem(struct vk_err *err)
{
    return vk_err_set(err, VK_ENOMEM, "out of memory");
}

static int make_key(const struct vk_store_chain *ch, const char *group, char key[MAX_KEY],
                    struct vk_err *err)
{
    size_t n = strlen(group);
    bool ctl = false;
    for (size_t i = 0; i < n && !ctl; i++)
        ctl = (unsigned char)group[i] < 0x20 || group[i] == 0x7f;
    if (n == 0 || n > VK_STORE_MAX_CONCURRENCY_GROUP || ctl)
        return vk_err_set(err, VK_EINVAL,
                          "a concurrency group has 1 to %d bytes and no control characters",
                          VK_STORE_MAX_CONCURRENCY_GROUP);
    const char *url = ch->repository_url ? ch->repository_url : "";
    if (strlen(url) > MAX_URL)
        return vk_err_set(err, VK_EINVAL, "the repository URL is too long");
    if (ch->repository_id[0])
        snprintf(key, MAX_KEY, "%s\n%s\n%s", ch->tenant_id, ch->repository_id, group);
    else
        snprintf(key, MAX_KEY, "%s\n%s%s\n%s", ch->tenant_id, *url ? "url:" : "", url, group);
    return 0;
}

int vk__concurrency_set(struct vk__conn *c, const struct vk_store_chain *ch,
                        const struct vk_store_fragment_spec *sp, size_t n, char (*ids)[VK_UUID_LEN],
                        struct vk_err *err)
{
    char key[MAX_KEY];
    int rc = 0;
    if (ch->concurrency_group) {
        rc = make_key(ch, ch->concurrency_group, key, err);
        struct vk__param p[] = {vk__text(ch->id), vk__text(ch->concurrency_group), vk__text(key),
                                vk__int(ch->concurrency_cancel ? 1 : 0)};
        if (rc == 0)
            rc = vk__exec(c, VK__STMT_NONE,
                          "UPDATE chains SET concurrency_group = $2, concurrency_key = $3,"
                          " concurrency_cancel = $4 WHERE id = $1",
                          p, 4, NULL, err);
        struct vk__param fp[] = {vk__text(ch->id), vk__text(key)};
        if (rc == 0)
            rc = vk__exec(c, VK__STMT_NONE,
                          "UPDATE fragments SET chain_concurrency_key = $2"
                          " WHERE chain_id = $1 AND type = 'inline'",
                          fp, 2, NULL, err);
    }
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (!sp[i].concurrency_group || sp[i].type != VK_STORE_FRAG_INLINE)
            continue;
        rc = make_key(ch, sp[i].concurrency_group, key, err);
        struct vk__param p[] = {vk__text(ids[i]), vk__text(sp[i].concurrency_group), vk__text(key),
                                vk__int(sp[i].concurrency_cancel ? 1 : 0)};
        if (rc == 0)
            rc = vk__exec(c, VK__STMT_NONE,
                          "UPDATE fragments SET concurrency_group = $2, concurrency_key = $3,"
                          " concurrency_cancel = $4 WHERE id = $1",
                          p, 4, NULL, err);
    }
    return rc;
}

/* Run `sql` ($1 = `id`) and copy the first row's columns 0 (an id) and 1 (text) out.
 * Returns 1 when there was a row, 0 when none, < 0 on error. */
static int first_row(struct vk__conn *c, const char *sql, const char *id, char holder[VK_UUID_LEN],
                     char *group, size_t gcap, struct vk_err *err)
{
    struct vk__param p[] = {vk__text(id)};
    struct vk__res *r = NULL;
    int rc = vk__query(c, VK__STMT_NONE, sql, p, 1, &r, err);
    if (rc == 0)
        rc = vk__next(r, err);
    if (rc > 0) {
        vk__col_id(r, 0, holder);
        const char *g = c->store->ops->res_text(r, 1);
        snprintf(group, gcap, "%s", g ? g : "");
    }
    vk__res_free(r);
    return rc;
}

int vk_store_concurrency_holder(struct vk_store *s, const char *chain_id, const char *fragment_id,
                                char holder[VK_UUID_LEN], char *group, size_t gcap,
                                struct vk_err *err)
{
    static const char *const chain_sql[] = {
        /* an older chain of the group that has not ended */
        "SELECT o.id, c.concurrency_group FROM chains c, chains o WHERE c.id = $1"
        " AND c.concurrency_key IS NOT NULL AND o.concurrency_key = c.concurrency_key"
        " AND o.status IN ('pending', 'running') AND (o.created_at < c.created_at"
        " OR (o.created_at = c.created_at AND o.id < c.id)) ORDER BY o.created_at, o.id LIMIT 1",
        /* another chain of the group still running a script (cancelled, being stopped) */
        "SELECT r.chain_id, c.concurrency_group FROM chains c, fragments r WHERE c.id = $1"
        " AND c.concurrency_key IS NOT NULL AND r.chain_concurrency_key = c.concurrency_key"
        " AND r.status = 'running' AND r.chain_id <> c.id LIMIT 1"};
    static const char *const frag_sql[] = {
        "SELECT g.chain_id, f.concurrency_group FROM fragments f, fragments g WHERE f.id = $1"
        " AND f.concurrency_key IS NOT NULL AND g.concurrency_key = f.concurrency_key"
        " AND g.status = 'running' AND g.id <> f.id LIMIT 1",
        "SELECT g.chain_id, f.concurrency_group FROM fragments f, fragments g WHERE f.id = $1"
        " AND f.concurrency_key IS NOT NULL AND g.concurrency_key = f.concurrency_key"
        " AND g.status = 'ready' AND (g.ready_at < f.ready_at OR (g.ready_at = f.ready_at"
        " AND g.id < f.id)) ORDER BY g.ready_at, g.id LIMIT 1"};
    struct vk__conn *c = NULL;
    int rc = vk__store_conn_get(s, &c, err);
    if (rc)
        return rc;
    const char *const *sql = fragment_id ? frag_sql : chain_sql;
    for (int i = 0; i < 2 && rc == 0; i++)
        rc = first_row(c, sql[i], fragment_id ? fragment_id : chain_id, holder, group, gcap, err);
    vk__store_conn_put(s, c);
    if (rc == 0)
        return vk_err_set(err, VK_ENOTFOUND, "no concurrency group holds it back");
    return rc < 0 ? rc : 0;
}

int vk_store_concurrency_older(struct vk_store *s, const char *chain_id, const char *fragment_id,
                               struct vk_pool *pool, char (**ids)[VK_UUID_LEN], size_t *n,
                               struct vk_err *err)
{
    *ids = NULL;
    *n = 0;
    struct vk__conn *c = NULL;
    int rc = vk__store_conn_get(s, &c, err);
    if (rc)
        return rc;
    struct vk__param p[] = {vk__text(fragment_id ? fragment_id : chain_id),
                            vk__int(VK_STORE_MAX_CONCURRENCY_OLDER)};
    struct vk__res *r = NULL;
    rc = vk__query(
        c, VK__STMT_NONE,
        fragment_id ? "SELECT DISTINCT g.chain_id FROM fragments f, fragments g WHERE f.id = $1"
                      " AND f.concurrency_key IS NOT NULL AND g.concurrency_key = f.concurrency_key"
                      " AND g.status IN ('ready', 'running') AND g.chain_id <> f.chain_id"
                      " AND EXISTS (SELECT 1 FROM chains o WHERE o.id = g.chain_id"
                      " AND o.status IN ('pending', 'running')) LIMIT $2"
                    : "SELECT o.id FROM chains c, chains o WHERE c.id = $1"
                      " AND c.concurrency_key IS NOT NULL AND o.concurrency_key = c.concurrency_key"
                      " AND o.status IN ('pending', 'running') AND (o.created_at < c.created_at"
                      " OR (o.created_at = c.created_at AND o.id < c.id))"
                      " ORDER BY o.created_at, o.id LIMIT $2",
        p, 2, &r, err);
    char(*a)[VK_UUID_LEN] = NULL;
    if (rc == 0 && !(a = vk_pool_zalloc(pool, VK_STORE_MAX_CONCURRENCY_OLDER * sizeof(*a))))
        rc = nomem(err);
    while (rc == 0 && *n < VK_STORE_MAX_CONCURRENCY_OLDER && (rc = vk__next(r, err)) > 0) {
        vk__col_id(r, 0, a[*n]);
        (*n)++;
        rc = 0;
    }
    if (rc > 0)
        rc = 0;
    vk__res_free(r);
    vk__store_conn_put(s, c);
    *ids = a;
    return rc;
}

int vk_store_tx_concurrency_wake(struct vk_store_tx *tx, const char *chain_id,
                                 const char *fragment_id, struct vk_err *err)
{
    char machines[MAX_WAKE][VK__NOTE_LEN];
    size_t nm = 0;
    int rc = 0;
    static const char *const sql[] = {
        /* chains waiting for the chain's group */
        "SELECT DISTINCT r.machine FROM chains c, fragments r WHERE c.id = $1"
        " AND c.concurrency_key IS NOT NULL AND r.chain_concurrency_key = c.concurrency_key"
        " AND r.status = 'ready' LIMIT 16",
        /* fragments waiting for the fragment's group */
        "SELECT DISTINCT g.machine FROM fragments f, fragments g WHERE f.id = $1"
        " AND f.concurrency_key IS NOT NULL AND g.concurrency_key = f.concurrency_key"
        " AND g.status = 'ready' LIMIT 16",
        /* fragments waiting for the group of any fragment of the chain (a cancel) */
        "SELECT DISTINCT g.machine FROM fragments f, fragments g WHERE f.chain_id = $1"
        " AND f.concurrency_key IS NOT NULL AND g.concurrency_key = f.concurrency_key"
        " AND g.status = 'ready' LIMIT 16"};
    for (int pass = 0; pass < 2 && rc == 0; pass++) {
        const char *id = pass == 0 ? chain_id : fragment_id ? fragment_id : chain_id;
        const char *q = pass == 0 ? sql[0] : fragment_id ? sql[1] : sql[2];
        struct vk__param p[] = {vk__text(id)};
        struct vk__res *r = NULL;
        rc = vk__query(tx->conn, VK__STMT_NONE, q, p, 1, &r, err);
        while (rc == 0 && (rc = vk__next(r, err)) > 0) {
            const char *m = tx->store->ops->res_text(r, 0);
            bool dup = !m || strlen(m) >= VK__NOTE_LEN;
            for (size_t i = 0; i < nm && !dup; i++)
                dup = strcmp(machines[i], m) == 0;
            if (!dup && nm < MAX_WAKE)
                snprintf(machines[nm++], VK__NOTE_LEN, "%s", m);
            rc = 0;
        }
        if (rc > 0)
            rc = 0;
        vk__res_free(r);
    }
    for (size_t i = 0; i < nm && rc == 0; i++)
        rc = vk__store_notify(tx, machines[i], err);
    return rc;
}
