/*
 * store backend: SQLite 3 (struct vk_store_ops for "sqlite:PATH" and "sqlite::memory:").
 *
 * Each pooled connection has WAL mode, a busy timeout, foreign keys on and
 * synchronous=NORMAL. Writers of this process are serialised by the store's writer mutex
 * before BEGIN IMMEDIATE, so threads never spin in SQLite's busy handler against each
 * other; the busy timeout only matters between processes. ":memory:" uses a single
 * connection (the pool then acts as the mutex that shares it between threads).
 */
#include "store_int.h"

#include <errno.h>
#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BUSY_TIMEOUT_MS 10000
#define SQLITE_POOL 8

/* Per-connection statement slots after the shared ones: transaction control. */
enum { ST_BEGIN_IMM = VK__STMT_COUNT, ST_BEGIN, ST_COMMIT, ST_ROLLBACK, ST_TOTAL };
/* c->stmts[ST_CACHE] holds the connection's struct text_cache (not a statement). */
enum { ST_CACHE = ST_TOTAL, ST_ALLOC };

/*
 * Statements run without an id (VK__STMT_NONE: dynamic SQL such as partial
 * updates, or rarely used queries) are kept prepared per connection, keyed by
 * their text, in a small LRU: the hot ones (worker lookups, status updates) are
 * then parsed once per connection instead of on every call.
 */
#define TEXT_CACHE_N 32
#define TEXT_CACHE_MAX_SQL 2048 /* longer texts (batch inserts) are not kept */

struct text_cache {
    struct {
        char *sql; /* owned; NULL = free slot */
        size_t len;
        uint64_t hash;
        uint64_t used; /* LRU tick */
        sqlite3_stmt *st;
    } e[TEXT_CACHE_N];
    uint64_t tick;
};

static uint64_t text_hash(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static void text_cache_free(struct text_cache *tc)
{
    if (!tc)
        return;
    for (int i = 0; i < TEXT_CACHE_N; i++) {
        if (tc->e[i].sql) {
            sqlite3_finalize(tc->e[i].st);
            vk_mem_free(tc->e[i].sql);
        }
    }
    vk_mem_free(tc);
}
static const char *const tx_sql[] = {"BEGIN IMMEDIATE", "BEGIN", "COMMIT", "ROLLBACK"};

struct sqlite_be {
    char *path; /* file name, or ":memory:" */
    bool memory;
};

static int db_err(struct vk__conn *c, int rc, const char *what, struct vk_err *err)
{
    sqlite3 *db = c->db;
    int code = VK_EDB;
    int ext = db ? sqlite3_extended_errcode(db) : rc;
    if (ext == SQLITE_CONSTRAINT_UNIQUE || ext == SQLITE_CONSTRAINT_PRIMARYKEY)
        code = VK_EEXIST;
    else if ((rc & 0xff) == SQLITE_CONSTRAINT)
        code = VK_EINVAL;
    else if ((rc & 0xff) == SQLITE_BUSY || (rc & 0xff) == SQLITE_LOCKED)
        code = VK_EAGAIN;
    else if ((rc & 0xff) == SQLITE_NOMEM)
        code = VK_ENOMEM;
    return vk_err_set(err, code, "sqlite: %s: %s", what,
                      db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
}

/* Create every missing directory above `path` (mkdir -p of its dirname). */
static int make_parent_dirs(const char *path, struct vk_err *err)
{
    char *p = vk_mem_xstrdup(path);
    int rc = 0;
    for (char *q = p + 1; *q; q++) {
        if (*q != '/')
            continue;
        *q = '\0';
        if (mkdir(p, 0700) != 0 && errno != EEXIST) {
            rc = vk_err_errno(err, "mkdir");
            vk_err_set(err, rc, "cannot create directory '%s'", p);
            break;
        }
        *q = '/';
    }
    vk_mem_free(p);
    return rc;
}

/*
 * The database holds webhook secrets and credential hashes: it is made 0600 before SQLite
 * opens it (SQLite gives its -wal and -shm files the database file's mode), and an older
 * one readable by others is made so (when this user owns it).
 */
static int private_file(const char *path, struct vk_err *err)
{
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0 && errno != ELOOP)
        return vk_err_set(err, VK_EIO, "cannot open database file '%s': %s", path, strerror(errno));
    if (fd < 0)
        return 0; /* a symlink the operator made: left as it is */
    struct stat st;
    if (fstat(fd, &st) == 0 && (st.st_mode & 077) && st.st_uid == geteuid())
        (void)fchmod(fd, st.st_mode & 0700);
    close(fd);
    return 0;
}

/* SQLite's allocation statistics take a global mutex on every malloc; we never read them. */
static void configure_once(void)
{
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

static int lite_open(struct vk_store *s, const char *url, struct vk_err *err)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, configure_once);
    const char *rest = url + strlen("sqlite:");
    if (strncmp(rest, "//", 2) == 0)
        rest += 2;
    if (*rest == '\0')
        return vk_err_set(err, VK_EINVAL, "database url '%s' has no path", url);
    if (strlen(rest) > 4096)
        return vk_err_set(err, VK_ETOOBIG, "database path too long");
    struct sqlite_be *be = vk_mem_xcalloc(1, sizeof(*be));
    if (strcmp(rest, ":memory:") == 0) {
        be->memory = true;
        be->path = vk_mem_xstrdup(":memory:");
        s->maxconns = 1;
    } else {
        be->path = vk_mem_xstrdup(rest);
        s->maxconns = SQLITE_POOL;
        int rc = make_parent_dirs(be->path, err);
        if (rc == 0)
            rc = private_file(be->path, err);
        if (rc) {
            vk_mem_free(be->path);
            vk_mem_free(be);
            return rc;
        }
    }
    s->be = be;
    return 0;
}

static void lite_close(struct vk_store *s)
{
    struct sqlite_be *be = s->be;
    if (!be)
        return;
    vk_mem_free(be->path);
    vk_mem_free(be);
    s->be = NULL;
}

static void lite_disconnect(struct vk__conn *c)
{
    if (c->stmts) {
        for (int i = 0; i < ST_TOTAL; i++)
            sqlite3_finalize(c->stmts[i]);
        text_cache_free(c->stmts[ST_CACHE]);
        vk_mem_free(c->stmts);
        c->stmts = NULL;
    }
    sqlite3_close_v2(c->db);
    c->db = NULL;
}

static int lite_connect(struct vk_store *s, struct vk__conn *c, struct vk_err *err)
{
    struct sqlite_be *be = s->be;
    sqlite3 *db = NULL;
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    int rc = sqlite3_open_v2(be->path, &db, flags, NULL);
    c->db = db;
    if (rc != SQLITE_OK) {
        rc = vk_err_set(err, VK_EDB, "sqlite: cannot open '%s': %s", be->path,
                        db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        lite_disconnect(c);
        return rc;
    }
    sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
    sqlite3_extended_result_codes(db, 1);
    const char *pragmas = be->memory ? "PRAGMA foreign_keys=ON;"
                                     : "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
                                       "PRAGMA wal_autocheckpoint=4000;"
                                       "PRAGMA foreign_keys=ON;";
    /* Switching a new file to WAL takes an exclusive lock, and SQLite answers BUSY
     * at once (without the busy handler) while another process opens or migrates
     * the same file: two servers starting together. Retry within the busy timeout. */
    for (int waited = 0;; waited += 10) {
        rc = sqlite3_exec(db, pragmas, NULL, NULL, NULL);
        if ((rc & 0xff) != SQLITE_BUSY && (rc & 0xff) != SQLITE_LOCKED)
            break;
        if (waited >= BUSY_TIMEOUT_MS)
            break;
        sqlite3_sleep(10);
    }
    if (rc != SQLITE_OK) {
        rc = db_err(c, rc, "cannot configure connection", err);
        lite_disconnect(c);
        return rc;
    }
    c->stmts = vk_mem_xcalloc(ST_ALLOC, sizeof(void *));
    c->stmts[ST_CACHE] = vk_mem_xcalloc(1, sizeof(struct text_cache));
    for (int i = ST_BEGIN_IMM; i < ST_TOTAL; i++) {
        sqlite3_stmt *st = NULL;
        rc = sqlite3_prepare_v2(db, tx_sql[i - ST_BEGIN_IMM], -1, &st, NULL);
        if (rc != SQLITE_OK) {
            rc = db_err(c, rc, "prepare", err);
            lite_disconnect(c);
            return rc;
        }
        c->stmts[i] = st;
    }
    return 0;
}

static bool lite_healthy(struct vk__conn *c)
{
    return c->db != NULL;
}

static int run(struct vk__conn *c, const char *sql, struct vk_err *err)
{
    int rc = sqlite3_exec(c->db, sql, NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return db_err(c, rc, sql, err);
    return 0;
}

/* Run one of the prepared transaction-control statements. */
static int run_tx(struct vk__conn *c, int slot, struct vk_err *err)
{
    sqlite3_stmt *st = c->stmts[slot];
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc != SQLITE_DONE)
        return db_err(c, rc, tx_sql[slot - ST_BEGIN_IMM], err);
    return 0;
}

static int lite_begin(struct vk__conn *c, bool write, struct vk_err *err)
{
    if (write) {
        pthread_mutex_lock(&c->store->write_lock);
        c->write_lk = true;
    }
    int rc = run_tx(c, write ? ST_BEGIN_IMM : ST_BEGIN, err);
    if (rc) {
        if (c->write_lk) {
            c->write_lk = false;
            pthread_mutex_unlock(&c->store->write_lock);
        }
        return rc;
    }
    c->in_tx = true;
    return 0;
}

static void unlock_writer(struct vk__conn *c)
{
    c->in_tx = false;
    if (c->write_lk) {
        c->write_lk = false;
        pthread_mutex_unlock(&c->store->write_lock);
    }
}

static void lite_rollback(struct vk__conn *c)
{
    if (!sqlite3_get_autocommit(c->db))
        (void)run_tx(c, ST_ROLLBACK, NULL);
    unlock_writer(c);
}

static int lite_commit(struct vk__conn *c, struct vk_err *err)
{
    int rc = run_tx(c, ST_COMMIT, err);
    if (rc) {
        lite_rollback(c);
        return rc;
    }
    unlock_writer(c);
    return 0;
}

static int lite_exec_script(struct vk__conn *c, const char *sql, struct vk_err *err)
{
    return run(c, sql, err);
}

/* Prepare `sql` with $N placeholders rewritten to SQLite's ?N. */
static int prepare(struct vk__conn *c, const char *sql, sqlite3_stmt **out, struct vk_err *err)
{
    size_t n = strlen(sql);
    char *q = vk_mem_alloc(n + 1);
    if (!q)
        return vk_err_set(err, VK_ENOMEM, "out of memory");
    for (size_t i = 0; i <= n; i++)
        q[i] = sql[i] == '$' ? '?' : sql[i];
    int rc = sqlite3_prepare_v2(c->db, q, (int)n, out, NULL);
    vk_mem_free(q);
    if (rc != SQLITE_OK)
        return db_err(c, rc, "prepare", err);
    return 0;
}

/*
 * The cached statement for `sql` (prepared now when missing; the least
 * recently used entry makes room). Returns 0 with *out set, or an error.
 * Texts too long to keep give *out a fresh statement and *owned = true.
 */
static int cached_stmt(struct vk__conn *c, const char *sql, sqlite3_stmt **out, bool *owned,
                       struct vk_err *err)
{
    struct text_cache *tc = c->stmts[ST_CACHE];
    size_t n = strlen(sql);
    *owned = false;
    if (!tc || n > TEXT_CACHE_MAX_SQL) {
        *owned = true;
        return prepare(c, sql, out, err);
    }
    uint64_t h = text_hash(sql, n);
    int victim = 0;
    for (int i = 0; i < TEXT_CACHE_N; i++) {
        if (tc->e[i].sql && tc->e[i].hash == h && tc->e[i].len == n &&
            memcmp(tc->e[i].sql, sql, n) == 0) {
            tc->e[i].used = ++tc->tick;
            *out = tc->e[i].st;
            return 0;
        }
        if (!tc->e[victim].sql)
            continue;
        if (!tc->e[i].sql || tc->e[i].used < tc->e[victim].used)
            victim = i;
    }
    sqlite3_stmt *st = NULL;
    int rc = prepare(c, sql, &st, err);
    if (rc)
        return rc;
    char *copy = vk_mem_alloc(n + 1);
    if (!copy) {
        *owned = true; /* run it once, keep nothing */
        *out = st;
        return 0;
    }
    memcpy(copy, sql, n + 1);
    if (tc->e[victim].sql) {
        sqlite3_finalize(tc->e[victim].st);
        vk_mem_free(tc->e[victim].sql);
    }
    tc->e[victim].sql = copy;
    tc->e[victim].len = n;
    tc->e[victim].hash = h;
    tc->e[victim].used = ++tc->tick;
    tc->e[victim].st = st;
    *out = st;
    return 0;
}

static int lite_query(struct vk__conn *c, int id, const char *sql, const struct vk__param *p,
                      int np, int flags, struct vk__res **res, struct vk_err *err)
{
    (void)flags;
    sqlite3_stmt *st = id >= 0 ? c->stmts[id] : NULL;
    bool owned = false; /* finalize after use (not kept by the connection) */
    int rc;
    if (id < 0) {
        rc = cached_stmt(c, sql, &st, &owned, err);
        if (rc)
            return rc;
    } else if (!st) {
        rc = prepare(c, sql, &st, err);
        if (rc)
            return rc;
        c->stmts[id] = st;
    }
    for (int i = 0; i < np; i++) {
        switch (p[i].type) {
        case VK__P_NULL:
            rc = sqlite3_bind_null(st, i + 1);
            break;
        case VK__P_TEXT:
            rc = sqlite3_bind_text(st, i + 1, p[i].s, -1, SQLITE_STATIC);
            break;
        case VK__P_INT:
            rc = sqlite3_bind_int64(st, i + 1, p[i].i);
            break;
        default:
            rc = sqlite3_bind_blob64(st, i + 1, p[i].len ? p[i].b : "", p[i].len, SQLITE_STATIC);
            break;
        }
        if (rc != SQLITE_OK) {
            rc = db_err(c, rc, "bind", err);
            goto fail;
        }
    }
    struct vk__res *r = &c->res;
    memset(r, 0, sizeof(*r));
    r->conn = c;
    r->handle = st;
    r->row = owned ? -1 : 0; /* remembers whether to finalize */
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        r->step = 1;
    } else if (rc == SQLITE_DONE) {
        r->step = 0;
        r->changes = sqlite3_changes64(c->db);
    } else {
        rc = db_err(c, rc, "query", err);
        goto fail;
    }
    *res = r;
    return 0;
fail:
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    if (owned)
        sqlite3_finalize(st);
    c->res.handle = NULL;
    return rc;
}

static int lite_next(struct vk__res *r, struct vk_err *err)
{
    if (!r->started) {
        r->started = true;
        return r->step;
    }
    if (r->step == 0)
        return 0;
    int rc = sqlite3_step(r->handle);
    if (rc == SQLITE_ROW)
        return 1;
    r->step = 0;
    if (rc == SQLITE_DONE)
        return 0;
    return db_err(r->conn, rc, "step", err);
}

static bool lite_null(struct vk__res *r, int col)
{
    return sqlite3_column_type(r->handle, col) == SQLITE_NULL;
}

static int64_t lite_int(struct vk__res *r, int col)
{
    return sqlite3_column_int64(r->handle, col);
}

static const char *lite_text(struct vk__res *r, int col)
{
    if (sqlite3_column_type(r->handle, col) == SQLITE_NULL)
        return NULL;
    return (const char *)sqlite3_column_text(r->handle, col);
}

static const void *lite_blob(struct vk__res *r, int col, size_t *len)
{
    const void *b = sqlite3_column_blob(r->handle, col);
    *len = (size_t)sqlite3_column_bytes(r->handle, col);
    return b;
}

static void lite_free(struct vk__res *r)
{
    if (!r->handle)
        return;
    if (r->row < 0) {
        sqlite3_finalize(r->handle);
    } else {
        sqlite3_reset(r->handle);
        sqlite3_clear_bindings(r->handle);
    }
    r->handle = NULL;
}

const struct vk_store_ops vk__store_sqlite_ops = {
    .name = "sqlite",
    .dialect = VK__SQLITE,
    .open = lite_open,
    .close = lite_close,
    .connect = lite_connect,
    .disconnect = lite_disconnect,
    .healthy = lite_healthy,
    .begin = lite_begin,
    .commit = lite_commit,
    .rollback = lite_rollback,
    .exec_script = lite_exec_script,
    .query = lite_query,
    .res_next = lite_next,
    .res_null = lite_null,
    .res_int = lite_int,
    .res_text = lite_text,
    .res_blob = lite_blob,
    .res_free = lite_free,
    .wait_notify = NULL,
};
