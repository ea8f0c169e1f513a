/*
 * store backend: PostgreSQL through libpq (struct vk_store_ops for postgres:// URLs).
 *
 * A small pool of connections; statements with a stable id are prepared once per
 * connection (PQprepare) and then run with PQexecPrepared; everything else goes through
 * PQexecParams. All values are parameters, never spliced into SQL text.
 * A connection that failed is marked broken and dropped by the pool; an idle connection
 * whose socket became readable (the server said goodbye, e.g. on restart) is replaced
 * before use, so the next operation after a restart reconnects.
 * Ready notifications use a dedicated LISTEN connection (wait_notify).
 */
#include "store_int.h"

#include <arpa/inet.h>
#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PG_POOL 8
#define NOTIFY_CHANNEL "vulcan_ready"

struct pg_be {
    char *url;
    pthread_mutex_t listen_lock;
    PGconn *listen;
};

static void ignore_notice(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
}

/* Copy libpq's message without its trailing newline. */
static int pg_err(struct vk__conn *c, const PGresult *res, const char *what, struct vk_err *err)
{
    int code = VK_EDB;
    const char *msg = NULL;
    if (res) {
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
        if (state && strcmp(state, "23505") == 0)
            code = VK_EEXIST;
        else if (state && (strncmp(state, "23", 2) == 0 || strncmp(state, "22", 2) == 0))
            code = VK_EINVAL;
    }
    if (PQstatus(c->db) != CONNECTION_OK) {
        c->broken = true;
        code = VK_EDB;
    }
    if (!msg)
        msg = PQerrorMessage(c->db);
    char buf[200];
    snprintf(buf, sizeof(buf), "%s", msg ? msg : "unknown error");
    buf[strcspn(buf, "\n")] = '\0'; /* libpq adds hints on further lines */
    size_t n = strlen(buf);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    if (c->broken)
        return vk_err_set(err, code, "postgres: connection lost during %s: %s", what, buf);
    return vk_err_set(err, code, "postgres: %s: %s", what, buf);
}

static int pg_open(struct vk_store *s, const char *url, struct vk_err *err)
{
    if (strlen(url) > 4096)
        return vk_err_set(err, VK_ETOOBIG, "database url too long");
    char *msg = NULL;
    PQconninfoOption *opts = PQconninfoParse(url, &msg);
    if (!opts) {
        vk_err_set(err, VK_EINVAL, "bad postgres url: %s", msg ? msg : "out of memory");
        PQfreemem(msg);
        return VK_EINVAL;
    }
    PQconninfoFree(opts);
    struct pg_be *be = vk_mem_xcalloc(1, sizeof(*be));
    be->url = vk_mem_xstrdup(url);
    pthread_mutex_init(&be->listen_lock, NULL);
    s->be = be;
    s->maxconns = PG_POOL;
    return 0;
}

static void pg_close(struct vk_store *s)
{
    struct pg_be *be = s->be;
    if (!be)
        return;
    if (be->listen)
        PQfinish(be->listen);
    pthread_mutex_destroy(&be->listen_lock);
    vk_mem_free(be->url);
    vk_mem_free(be);
    s->be = NULL;
}

static PGconn *pg_dial(struct pg_be *be, struct vk_err *err)
{
    PGconn *db = PQconnectdb(be->url);
    if (!db) {
        vk_err_set(err, VK_ENOMEM, "out of memory");
        return NULL;
    }
    if (PQstatus(db) != CONNECTION_OK) {
        char buf[200];
        snprintf(buf, sizeof(buf), "%s", PQerrorMessage(db));
        buf[strcspn(buf, "\n")] = '\0';
        size_t n = strlen(buf);
        while (n && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
            buf[--n] = '\0';
        vk_err_set(err, VK_EDB, "postgres: cannot connect: %s", buf);
        PQfinish(db);
        return NULL;
    }
    PQsetNoticeProcessor(db, ignore_notice, NULL);
    return db;
}

static int pg_connect(struct vk_store *s, struct vk__conn *c, struct vk_err *err)
{
    c->db = pg_dial(s->be, err);
    if (!c->db)
        return err ? err->code : VK_EDB;
    c->stmts = vk_mem_xcalloc(VK__STMT_COUNT, sizeof(void *));
    return 0;
}

static void pg_disconnect(struct vk__conn *c)
{
    if (c->db)
        PQfinish(c->db);
    c->db = NULL;
    vk_mem_free(c->stmts);
    c->stmts = NULL;
}

static bool pg_healthy(struct vk__conn *c)
{
    if (PQstatus(c->db) != CONNECTION_OK || PQtransactionStatus(c->db) != PQTRANS_IDLE)
        return false;
    /* An idle connection has nothing to read unless the server is closing it. */
    struct pollfd pfd = {.fd = PQsocket(c->db), .events = POLLIN};
    return poll(&pfd, 1, 0) == 0;
}

static int simple(struct vk__conn *c, const char *sql, struct vk_err *err)
{
    PGresult *res = PQexec(c->db, sql);
    int rc = 0;
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        rc = pg_err(c, res, sql, err);
    PQclear(res);
    return rc;
}

static int pg_begin(struct vk__conn *c, bool write, struct vk_err *err)
{
    (void)write;
    int rc = simple(c, "BEGIN", err);
    if (rc == 0)
        c->in_tx = true;
    return rc;
}

static void pg_rollback(struct vk__conn *c)
{
    c->in_tx = false;
    if (PQstatus(c->db) != CONNECTION_OK) {
        c->broken = true;
        return;
    }
    if (PQtransactionStatus(c->db) != PQTRANS_IDLE)
        simple(c, "ROLLBACK", NULL);
}

static int pg_commit(struct vk__conn *c, struct vk_err *err)
{
    PGresult *res = PQexec(c->db, "COMMIT");
    int rc = 0;
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        rc = pg_err(c, res, "commit", err);
    else if (strcmp(PQcmdStatus(res), "COMMIT") != 0)
        rc = vk_err_set(err, VK_EDB, "postgres: transaction was rolled back");
    PQclear(res);
    c->in_tx = false;
    if (rc)
        pg_rollback(c);
    return rc;
}

static int pg_exec_script(struct vk__conn *c, const char *sql, struct vk_err *err)
{
    return simple(c, sql, err);
}

#define SMALL_PARAMS 32

static int pg_query(struct vk__conn *c, int id, const char *sql, const struct vk__param *p, int np,
                    int flags, struct vk__res **out, struct vk_err *err)
{
    const char *vals_s[SMALL_PARAMS];
    int lens_s[SMALL_PARAMS], fmts_s[SMALL_PARAMS];
    char nums_s[SMALL_PARAMS][24];
    const char **vals = vals_s;
    int *lens = lens_s, *fmts = fmts_s;
    char(*nums)[24] = nums_s;
    PGresult *res = NULL;
    int rc = 0;
    if (np > SMALL_PARAMS) {
        vals = vk_mem_alloc(sizeof(*vals) * (size_t)np);
        lens = vk_mem_alloc(sizeof(*lens) * (size_t)np);
        fmts = vk_mem_alloc(sizeof(*fmts) * (size_t)np);
        nums = vk_mem_alloc(sizeof(*nums) * (size_t)np);
        if (!vals || !lens || !fmts || !nums) {
            rc = vk_err_set(err, VK_ENOMEM, "out of memory");
            goto out;
        }
    }
    for (int i = 0; i < np; i++) {
        lens[i] = 0;
        fmts[i] = 0;
        switch (p[i].type) {
        case VK__P_NULL:
            vals[i] = NULL;
            break;
        case VK__P_TEXT:
            vals[i] = p[i].s;
            break;
        case VK__P_INT:
            snprintf(nums[i], sizeof(nums[i]), "%lld", (long long)p[i].i);
            vals[i] = nums[i];
            break;
        default:
            vals[i] = p[i].len ? p[i].b : "";
            lens[i] = (int)p[i].len;
            fmts[i] = 1;
            break;
        }
    }
    int rfmt = (flags & VK__Q_BINARY) ? 1 : 0;
    if (id >= 0) {
        char name[16];
        snprintf(name, sizeof(name), "vk%d", id);
        if (!c->stmts[id]) {
            res = PQprepare(c->db, name, sql, np, NULL);
            if (PQresultStatus(res) != PGRES_COMMAND_OK) {
                rc = pg_err(c, res, "prepare", err);
                goto out;
            }
            PQclear(res);
            c->stmts[id] = c; /* any non-NULL marker */
        }
        res = PQexecPrepared(c->db, name, np, vals, lens, fmts, rfmt);
    } else {
        res = PQexecParams(c->db, sql, np, NULL, vals, lens, fmts, rfmt);
    }
    ExecStatusType st = PQresultStatus(res);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        rc = pg_err(c, res, "query", err);
        goto out;
    }
    struct vk__res *r = &c->res;
    memset(r, 0, sizeof(*r));
    r->conn = c;
    r->handle = res;
    res = NULL;
    r->row = -1;
    r->nrows = PQntuples(r->handle);
    r->binary = rfmt == 1;
    const char *ct = PQcmdTuples(r->handle);
    r->changes = ct && *ct ? strtoll(ct, NULL, 10) : 0;
    *out = r;
out:
    PQclear(res);
    if (vals != vals_s) {
        vk_mem_free(vals);
        vk_mem_free(lens);
        vk_mem_free(fmts);
        vk_mem_free(nums);
    }
    return rc;
}

static int pg_next(struct vk__res *r, struct vk_err *err)
{
    (void)err;
    if (r->row + 1 >= r->nrows)
        return 0;
    r->row++;
    return 1;
}

static bool pg_null(struct vk__res *r, int col)
{
    return PQgetisnull(r->handle, r->row, col) != 0;
}

static int64_t pg_int(struct vk__res *r, int col)
{
    if (PQgetisnull(r->handle, r->row, col))
        return 0;
    const char *v = PQgetvalue(r->handle, r->row, col);
    if (!r->binary)
        return strtoll(v, NULL, 10);
    int len = PQgetlength(r->handle, r->row, col);
    const unsigned char *b = (const unsigned char *)v;
    uint64_t x = 0;
    for (int i = 0; i < len && i < 8; i++)
        x = (x << 8) | b[i];
    if (len == 4)
        return (int32_t)(uint32_t)x;
    if (len == 2)
        return (int16_t)(uint16_t)x;
    return (int64_t)x;
}

static const char *pg_text(struct vk__res *r, int col)
{
    if (PQgetisnull(r->handle, r->row, col))
        return NULL;
    return PQgetvalue(r->handle, r->row, col);
}

static const void *pg_blob(struct vk__res *r, int col, size_t *len)
{
    *len = (size_t)PQgetlength(r->handle, r->row, col);
    return PQgetvalue(r->handle, r->row, col);
}

static void pg_free(struct vk__res *r)
{
    PQclear(r->handle);
    r->handle = NULL;
}

/* Add `name` to the pool array unless present. */
static int add_group(struct vk_pool *pool, const char ***groups, size_t *n, size_t *cap,
                     const char *name)
{
    for (size_t i = 0; i < *n; i++)
        if (strcmp((*groups)[i], name) == 0)
            return 0;
    if (vk_array_pool_grow(pool, groups, cap, *n + 1, 8, sizeof(**groups)) < 0)
        return VK_ENOMEM;
    const char *copy = vk_pool_strndup(pool, name, strlen(name));
    if (!copy)
        return VK_ENOMEM;
    (*groups)[(*n)++] = copy;
    return 0;
}

static int drain(PGconn *db, struct vk_pool *pool, const char ***groups, size_t *n, size_t *cap)
{
    PGnotify *nt;
    int rc = 0;
    while ((nt = PQnotifies(db)) != NULL) {
        if (rc == 0 && *n < 256)
            rc = add_group(pool, groups, n, cap, nt->extra ? nt->extra : "");
        PQfreemem(nt);
    }
    return rc;
}

static int pg_wait_notify(struct vk_store *s, int timeout_ms, struct vk_pool *pool,
                          const char ***groups, size_t *n, struct vk_err *err)
{
    struct pg_be *be = s->be;
    size_t cap = 0;
    int rc = 0;
    *groups = NULL;
    *n = 0;
    pthread_mutex_lock(&be->listen_lock);
    if (be->listen && PQstatus(be->listen) != CONNECTION_OK) {
        PQfinish(be->listen);
        be->listen = NULL;
    }
    if (!be->listen) {
        be->listen = pg_dial(be, err);
        if (!be->listen) {
            rc = VK_EDB;
            goto out;
        }
        PGresult *res = PQexec(be->listen, "LISTEN " NOTIFY_CHANNEL);
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            rc = vk_err_set(err, VK_EDB, "postgres: listen: %s", PQerrorMessage(be->listen));
            PQclear(res);
            PQfinish(be->listen);
            be->listen = NULL;
            goto out;
        }
        PQclear(res);
    }
    if (PQconsumeInput(be->listen) == 0)
        goto lost;
    if (drain(be->listen, pool, groups, n, &cap))
        goto nomem;
    if (*n == 0 && timeout_ms > 0) {
        struct pollfd pfd = {.fd = PQsocket(be->listen), .events = POLLIN};
        int pr = poll(&pfd, 1, timeout_ms);
        if (pr > 0) {
            if (PQconsumeInput(be->listen) == 0)
                goto lost;
            if (drain(be->listen, pool, groups, n, &cap))
                goto nomem;
        }
    }
    goto out;
nomem:
    rc = vk_err_set(err, VK_ENOMEM, "out of memory");
    goto out;
lost:
    rc =
        vk_err_set(err, VK_EDB, "postgres: listen connection lost: %s", PQerrorMessage(be->listen));
    PQfinish(be->listen);
    be->listen = NULL;
out:
    pthread_mutex_unlock(&be->listen_lock);
    return rc;
}

const struct vk_store_ops vk__store_pg_ops = {
    .name = "postgres",
    .dialect = VK__PG,
    .open = pg_open,
    .close = pg_close,
    .connect = pg_connect,
    .disconnect = pg_disconnect,
    .healthy = pg_healthy,
    .begin = pg_begin,
    .commit = pg_commit,
    .rollback = pg_rollback,
    .exec_script = pg_exec_script,
    .query = pg_query,
    .res_next = pg_next,
    .res_null = pg_null,
    .res_int = pg_int,
    .res_text = pg_text,
    .res_blob = pg_blob,
    .res_free = pg_free,
    .wait_notify = pg_wait_notify,
};
