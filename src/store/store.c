/*
 * store: opening by URL, the connection pool, transactions, query helpers, status names
 * and ready notifications. Shared by both backends.
 */
#include "store_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---------------------------------------------------------------- Names */

static const char *const chain_names[] = {"pending", "running", "completed", "failed", "cancelled"};
static const char *const frag_names[] = {"pending", "ready",   "running",  "completed",
                                         "failed",  "skipped", "cancelled"};
static const char *const worker_names[] = {"alive", "dead", "stopped"};

const char *vk_store_chain_status_name(enum vk_store_chain_status s)
{
    return (unsigned)s < VK_ARRAY_LEN(chain_names) ? chain_names[s] : "unknown";
}

const char *vk_store_frag_status_name(enum vk_store_frag_status s)
{
    return (unsigned)s < VK_ARRAY_LEN(frag_names) ? frag_names[s] : "unknown";
}

const char *vk_store_worker_status_name(enum vk_store_worker_status s)
{
    return (unsigned)s < VK_ARRAY_LEN(worker_names) ? worker_names[s] : "unknown";
}

int vk_store_chain_status_parse(const char *s, enum vk_store_chain_status *out)
{
    for (size_t i = 0; s && i < VK_ARRAY_LEN(chain_names); i++) {
        if (strcmp(s, chain_names[i]) == 0) {
            *out = (enum vk_store_chain_status)i;
            return 0;
        }
    }
    return VK_EINVAL;
}

int vk_store_frag_status_parse(const char *s, enum vk_store_frag_status *out)
{
    for (size_t i = 0; s && i < VK_ARRAY_LEN(frag_names); i++) {
        if (strcmp(s, frag_names[i]) == 0) {
            *out = (enum vk_store_frag_status)i;
            return 0;
        }
    }
    return VK_EINVAL;
}

bool vk_store_frag_status_final(enum vk_store_frag_status s)
{
    return s == VK_STORE_FRAG_COMPLETED || s == VK_STORE_FRAG_FAILED ||
           s == VK_STORE_FRAG_SKIPPED || s == VK_STORE_FRAG_CANCELLED;
}

/* ---------------------------------------------------------------- Lifecycle */

int vk_store_open(const char *url, struct vk_store **out, struct vk_err *err)
{
    const struct vk_store_ops *ops = NULL;
    *out = NULL;
    if (!url)
        return vk_err_set(err, VK_EINVAL, "no database url");
    if (strncmp(url, "sqlite:", 7) == 0)
        ops = &vk__store_sqlite_ops;
    else if (strncmp(url, "postgres://", 11) == 0 || strncmp(url, "postgresql://", 13) == 0)
        ops = &vk__store_pg_ops;
    else
        return vk_err_set(err, VK_EINVAL,
                          "unsupported database url '%.64s' (use sqlite:PATH or postgres://...)",
                          url);
    struct vk_store *s = vk_mem_xcalloc(1, sizeof(*s));
    s->ops = ops;
    s->dialect = ops->dialect;
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->cond, NULL);
    vk_time_cond_init(&s->note_cond); /* timed waits: vk_time_deadline() */
    pthread_mutex_init(&s->write_lock, NULL);
    int rc = ops->open(s, url, err);
    if (rc) {
        s->ops = NULL;
        vk_store_close(s);
        return rc;
    }
    rc = vk__store_migrate(s, err);
    if (rc) {
        vk_store_close(s);
        return rc;
    }
    *out = s;
    return 0;
}

void vk_store_close(struct vk_store *s)
{
    if (!s)
        return;
    while (s->idle) {
        struct vk__conn *c = s->idle;
        s->idle = c->next;
        s->ops->disconnect(c);
        vk_mem_free(c);
    }
    if (s->ops)
        s->ops->close(s);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->cond);
    pthread_cond_destroy(&s->note_cond);
    pthread_mutex_destroy(&s->write_lock);
    vk_mem_free(s);
}

const char *vk_store_backend(const struct vk_store *s)
{
    return s->ops->name;
}

/* ---------------------------------------------------------------- Pool */

int vk__store_conn_get(struct vk_store *s, struct vk__conn **out, struct vk_err *err)
{
    pthread_mutex_lock(&s->lock);
    for (;;) {
        if (s->idle) {
            struct vk__conn *c = s->idle;
            s->idle = c->next;
            c->next = NULL;
            pthread_mutex_unlock(&s->lock);
            if (s->ops->healthy(c)) {
                *out = c;
                return 0;
            }
            s->ops->disconnect(c);
            vk_mem_free(c);
            pthread_mutex_lock(&s->lock);
            s->nconns--;
            continue;
        }
        if (s->nconns < s->maxconns) {
            s->nconns++;
            pthread_mutex_unlock(&s->lock);
            struct vk__conn *c = vk_mem_xcalloc(1, sizeof(*c));
            c->store = s;
            int rc = s->ops->connect(s, c, err);
            if (rc) {
                vk_mem_free(c);
                pthread_mutex_lock(&s->lock);
                s->nconns--;
                pthread_cond_signal(&s->cond);
                pthread_mutex_unlock(&s->lock);
                return rc;
            }
            *out = c;
            return 0;
        }
        pthread_cond_wait(&s->cond, &s->lock);
    }
}

void vk__store_conn_put(struct vk_store *s, struct vk__conn *c)
{
    if (!c)
        return;
    if (c->res.handle)
        s->ops->res_free(&c->res);
    if (c->in_tx)
        s->ops->rollback(c);
    if (c->broken) {
        s->ops->disconnect(c);
        vk_mem_free(c);
        pthread_mutex_lock(&s->lock);
        s->nconns--;
    } else {
        pthread_mutex_lock(&s->lock);
        c->next = s->idle;
        s->idle = c;
    }
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

int vk__store_begin(struct vk_store *s, struct vk__conn **out, struct vk_err *err)
{
    int rc = 0;
    /* BEGIN has no effect, so retrying it on a fresh connection is always safe. */
    for (int tries = 0; tries < 2; tries++) {
        struct vk__conn *c = NULL;
        rc = vk__store_conn_get(s, &c, err);
        if (rc)
            return rc;
        rc = s->ops->begin(c, true, err);
        if (rc == 0) {
            *out = c;
            return 0;
        }
        bool retry = c->broken;
        vk__store_conn_put(s, c);
        if (!retry)
            break;
    }
    return rc;
}

int vk__store_end(struct vk_store *s, struct vk__conn *c, int rc, struct vk_err *err)
{
    if (c->res.handle)
        s->ops->res_free(&c->res);
    if (rc == 0)
        rc = s->ops->commit(c, err);
    else
        s->ops->rollback(c);
    vk__store_conn_put(s, c);
    return rc;
}

/* ---------------------------------------------------------------- Query helpers */

int vk__query(struct vk__conn *c, int id, const char *sql, const struct vk__param *p, int np,
              struct vk__res **res, struct vk_err *err)
{
    if (c->res.handle)
        c->store->ops->res_free(&c->res);
    return c->store->ops->query(c, id, sql, p, np, 0, res, err);
}

int vk__next(struct vk__res *r, struct vk_err *err)
{
    return r->conn->store->ops->res_next(r, err);
}

void vk__res_free(struct vk__res *r)
{
    if (r && r->handle)
        r->conn->store->ops->res_free(r);
}

int vk__exec(struct vk__conn *c, int id, const char *sql, const struct vk__param *p, int np,
             int64_t *changes, struct vk_err *err)
{
    struct vk__res *r = NULL;
    int rc = vk__query(c, id, sql, p, np, &r, err);
    if (rc)
        return rc;
    while ((rc = vk__next(r, err)) > 0)
        ;
    if (changes)
        *changes = r->changes;
    vk__res_free(r);
    return rc < 0 ? rc : 0;
}

int vk__query_int(struct vk__conn *c, int id, const char *sql, const struct vk__param *p, int np,
                  int64_t *out, struct vk_err *err)
{
    struct vk__res *r = NULL;
    int rc = vk__query(c, id, sql, p, np, &r, err);
    if (rc)
        return rc;
    rc = vk__next(r, err);
    if (rc > 0) {
        *out = vk__col_int(r, 0);
        rc = 0;
    } else if (rc == 0) {
        rc = VK_ENOTFOUND;
    }
    vk__res_free(r);
    return rc;
}

const char *vk__col_str(struct vk__res *r, int col, struct vk_pool *pool)
{
    const char *t = r->conn->store->ops->res_text(r, col);
    if (!t)
        return NULL;
    return vk_pool_strndup(pool, t, strlen(t));
}

void vk__col_id(struct vk__res *r, int col, char out[VK_UUID_LEN])
{
    const char *t = r->conn->store->ops->res_text(r, col);
    size_t n = t ? strlen(t) : 0;
    if (n >= VK_UUID_LEN)
        n = VK_UUID_LEN - 1;
    if (n)
        memcpy(out, t, n);
    out[n] = '\0';
}

int64_t vk__col_int(struct vk__res *r, int col)
{
    return r->conn->store->ops->res_int(r, col);
}

int vk_store_schema_version(struct vk_store *s, int *version, struct vk_err *err)
{
    struct vk__conn *c = NULL;
    int rc = vk__store_conn_get(s, &c, err);
    if (rc)
        return rc;
    int64_t v = 0;
    rc = vk__query_int(c, VK__STMT_NONE, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                       NULL, 0, &v, err);
    vk__store_conn_put(s, c);
    *version = (int)v;
    return rc;
}

/* ---------------------------------------------------------------- Transactions */

int vk_store_tx_begin(struct vk_store *s, struct vk_store_tx **out, struct vk_err *err)
{
    struct vk_store_tx *tx = vk_mem_xcalloc(1, sizeof(*tx));
    tx->store = s;
    int rc = vk__store_begin(s, &tx->conn, err);
    if (rc) {
        vk_mem_free(tx);
        *out = NULL;
        return rc;
    }
    *out = tx;
    return 0;
}

static void deliver_notes(struct vk_store_tx *tx)
{
    for (int i = 0; i < tx->nnotes; i++)
        vk__store_note_local(tx->store, tx->notes[i]);
    if (tx->notes_overflow)
        vk__store_note_local(tx->store, "*");
}

int vk_store_tx_commit(struct vk_store_tx *tx, struct vk_err *err)
{
    int rc = vk__store_end(tx->store, tx->conn, 0, err);
    if (rc == 0)
        deliver_notes(tx);
    vk_mem_free(tx);
    return rc;
}

void vk_store_tx_rollback(struct vk_store_tx *tx)
{
    if (!tx)
        return;
    vk__store_end(tx->store, tx->conn, VK_EINTERNAL, NULL);
    vk_mem_free(tx);
}

/* ---------------------------------------------------------------- Notifications */

void vk__store_note_local(struct vk_store *s, const char *group)
{
    pthread_mutex_lock(&s->lock);
    bool have = false;
    for (int i = 0; i < s->nnotes && !have; i++)
        have = strcmp(s->notes[i], group) == 0;
    if (!have && s->nnotes < VK__NOTE_MAX) {
        snprintf(s->notes[s->nnotes], VK__NOTE_LEN, "%s", group);
        s->nnotes++;
    }
    pthread_cond_broadcast(&s->note_cond);
    pthread_mutex_unlock(&s->lock);
}

int vk__store_notify(struct vk_store_tx *tx, const char *group, struct vk_err *err)
{
    if (!group || strlen(group) >= VK__NOTE_LEN)
        return vk_err_set(err, VK_EINVAL, "bad machine group for notification");
    if (tx->store->dialect == VK__PG) {
        struct vk__param p[] = {vk__text(group)};
        return vk__exec(tx->conn, VK__STMT_NOTIFY, "SELECT pg_notify('vulcan_ready', $1)", p, 1,
                        NULL, err);
    }
    for (int i = 0; i < tx->nnotes; i++)
        if (strcmp(tx->notes[i], group) == 0)
            return 0;
    if (tx->nnotes < (int)VK_ARRAY_LEN(tx->notes))
        snprintf(tx->notes[tx->nnotes++], VK__NOTE_LEN, "%s", group);
    else
        tx->notes_overflow = true;
    return 0;
}

int vk_store_tx_notify_ready(struct vk_store_tx *tx, const char *group, struct vk_err *err)
{
    return vk__store_notify(tx, group, err);
}

int vk_store_wait_ready(struct vk_store *s, int timeout_ms, struct vk_pool *pool,
                        const char ***groups, size_t *n, struct vk_err *err)
{
    if (s->ops->wait_notify)
        return s->ops->wait_notify(s, timeout_ms, pool, groups, n, err);
    *groups = NULL;
    *n = 0;
    pthread_mutex_lock(&s->lock);
    if (s->nnotes == 0 && timeout_ms > 0) {
        struct timespec ts = vk_time_deadline(timeout_ms);
        while (s->nnotes == 0) {
            if (pthread_cond_timedwait(&s->note_cond, &s->lock, &ts) != 0)
                break;
        }
    }
    int rc = 0;
    if (s->nnotes) {
        const char **g = vk_pool_alloc(pool, sizeof(*g) * (size_t)s->nnotes);
        if (!g) {
            rc = vk_err_set(err, VK_ENOMEM, "out of memory");
        } else {
            for (int i = 0; i < s->nnotes; i++) {
                g[i] = vk_pool_strndup(pool, s->notes[i], strlen(s->notes[i]));
                if (!g[i]) {
                    rc = vk_err_set(err, VK_ENOMEM, "out of memory");
                    break;
                }
            }
            if (rc == 0) {
                *groups = g;
                *n = (size_t)s->nnotes;
                s->nnotes = 0;
            }
        }
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}
