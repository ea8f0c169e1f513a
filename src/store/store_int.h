/*
 * store internals: the backend vtable (struct vk_store_ops), connections, the connection
 * pool, parameters and result rows. Private to src/store/.
 *
 * The domain operations (chains.c, queue.c, workers.c, logs.c) are written once against
 * this small driver interface; sqlite.c and pg.c implement it. SQL text uses $1, $2...
 * placeholders in both dialects (sqlite.c rewrites them to ?1, ?2... when preparing).
 * A statement with a stable id (enum vk__stmt) is prepared once per connection and
 * reused; id VK__STMT_NONE runs unprepared (dynamic SQL such as filtered listings).
 */
#ifndef VULCAN_STORE_INT_H
#define VULCAN_STORE_INT_H

#include "vulcan/store.h"

#include <pthread.h>

enum vk__dialect { VK__SQLITE = 0, VK__PG = 1 };

/* Prepared statement ids; one cache slot per id on every connection. */
enum vk__stmt {
    VK__STMT_NONE = -1,
    VK__STMT_CHAIN_INSERT = 0,
    VK__STMT_FRAG_INSERT_BATCH,
    VK__STMT_CHAIN_GET,
    VK__STMT_CHAIN_GET_LOCK,
    VK__STMT_FRAGS_OF_CHAIN,
    VK__STMT_FRAG_GET,
    VK__STMT_FRAG_GET_LOCK,
    VK__STMT_CHILDREN,
    VK__STMT_TOPLEVEL,
    VK__STMT_COUNT_CHILDREN,
    VK__STMT_COUNT_TOPLEVEL,
    VK__STMT_ANY_CHILDREN,
    VK__STMT_ANY_TOPLEVEL,
    VK__STMT_FINISH,
    VK__STMT_FINISH_CHECK,
    VK__STMT_REQUEUE,
    VK__STMT_CHAIN_SET,
    VK__STMT_SKIP_PENDING,
    VK__STMT_NOTIFY,
    VK__STMT_WORK_CHAIN,
    VK__STMT_HEARTBEAT,
    VK__STMT_CANCEL_LIST,
    VK__STMT_LOG_TAIL,
    VK__STMT_LOG_INSERT,
    VK__STMT_LOG_READ,
    VK__STMT_LOG_ATTEMPT,
    VK__STMT_JOB_CHECK,
    VK__STMT_CRED_CHECK,
    VK__STMT_NEEDS_DONE,
    VK__STMT_NEEDS_MARK,
    VK__STMT_NEEDS_OF,
    VK__STMT_CLAIM_1, /* + (ngroups - 1), up to VK_STORE_MAX_GROUPS */
    VK__STMT_COUNT = VK__STMT_CLAIM_1 + VK_STORE_MAX_GROUPS
};

enum vk__ptype { VK__P_NULL = 0, VK__P_TEXT, VK__P_INT, VK__P_BLOB };

struct vk__param {
    enum vk__ptype type;
    const char *s; /* VK__P_TEXT: NUL-terminated */
    int64_t i;
    const void *b; /* VK__P_BLOB */
    size_t len;
};

/* Query flags. */
#define VK__Q_BINARY 1 /* PostgreSQL: results in binary format (for BYTEA/int8 columns) */

struct vk__conn;

/* The result of one statement; embedded in its connection (one open result per connection). */
struct vk__res {
    struct vk__conn *conn;
    void *handle;    /* sqlite3_stmt * or PGresult * */
    int row;         /* PG: current row, -1 before the first */
    int nrows;       /* PG: rows in the result */
    int step;        /* SQLite: result of the pending first step */
    bool started;    /* SQLite: res_next called at least once */
    bool binary;     /* PG: binary results */
    int64_t changes; /* rows changed by an INSERT/UPDATE/DELETE */
};

struct vk__conn {
    struct vk_store *store;
    void *db;     /* sqlite3 * or PGconn * */
    void **stmts; /* [VK__STMT_COUNT]: sqlite3_stmt *, or non-NULL when prepared on PG */
    struct vk__res res;
    bool broken;   /* the connection failed: the pool discards it */
    bool in_tx;    /* an explicit transaction is open */
    bool write_lk; /* SQLite: this connection holds the store's writer mutex */
    struct vk__conn *next;
};

/* The backend vtable. Every function returns 0 or a VK_E* code with details in err. */
struct vk_store_ops {
    const char *name;
    enum vk__dialect dialect;
    /* Parse the URL and set up backend state in store->be. */
    int (*open)(struct vk_store *s, const char *url, struct vk_err *err);
    void (*close)(struct vk_store *s);
    /* Make a new connection (c->db), or close one. */
    int (*connect)(struct vk_store *s, struct vk__conn *c, struct vk_err *err);
    void (*disconnect)(struct vk__conn *c);
    /* True when an idle pooled connection is still usable. */
    bool (*healthy)(struct vk__conn *c);
    /* Transactions on a connection; begin(write) takes SQLite's writer lock. */
    int (*begin)(struct vk__conn *c, bool write, struct vk_err *err);
    int (*commit)(struct vk__conn *c, struct vk_err *err);
    void (*rollback)(struct vk__conn *c);
    /* Run a script of several statements without parameters (migrations). */
    int (*exec_script)(struct vk__conn *c, const char *sql, struct vk_err *err);
    /* Run one statement; on success *res is the connection's result (free with res_free). */
    int (*query)(struct vk__conn *c, int id, const char *sql, const struct vk__param *p, int np,
                 int flags, struct vk__res **res, struct vk_err *err);
    /* 1: a row is available; 0: no more rows; <0: error. */
    int (*res_next)(struct vk__res *r, struct vk_err *err);
    bool (*res_null)(struct vk__res *r, int col);
    int64_t (*res_int)(struct vk__res *r, int col);
    const char *(*res_text)(struct vk__res *r, int col); /* NULL when NULL */
    const void *(*res_blob)(struct vk__res *r, int col, size_t *len);
    void (*res_free)(struct vk__res *r);
    /* Wait for ready notifications (PostgreSQL LISTEN); NULL for SQLite. */
    int (*wait_notify)(struct vk_store *s, int timeout_ms, struct vk_pool *pool,
                       const char ***groups, size_t *n, struct vk_err *err);
};

extern const struct vk_store_ops vk__store_sqlite_ops;
extern const struct vk_store_ops vk__store_pg_ops;

#define VK__NOTE_MAX 64
#define VK__NOTE_LEN 128

struct vk_store {
    const struct vk_store_ops *ops;
    enum vk__dialect dialect;
    void *be; /* backend state */
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct vk__conn *idle;
    int nconns;
    int maxconns;
    pthread_mutex_t write_lock; /* SQLite: serialises this process's writers */
    /* In-process ready notifications (SQLite), guarded by `lock`. */
    pthread_cond_t note_cond;
    char notes[VK__NOTE_MAX][VK__NOTE_LEN];
    int nnotes;
};

struct vk_store_tx {
    struct vk_store *store;
    struct vk__conn *conn;
    /* Groups to announce in-process at commit (SQLite). */
    char notes[8][VK__NOTE_LEN];
    int nnotes;
    bool notes_overflow;
};

/* ---- pool (store.c) */
int vk__store_conn_get(struct vk_store *s, struct vk__conn **out, struct vk_err *err);
void vk__store_conn_put(struct vk_store *s, struct vk__conn *c);
/* Begin a write transaction on a pooled connection, reconnecting once when it was dead. */
int vk__store_begin(struct vk_store *s, struct vk__conn **out, struct vk_err *err);
struct vk_store_credential;
/* Insert credential `k` on `c` (inside the caller's transaction), as
 * vk_store_credential_create does (identity.c). */
int vk__store_cred_insert(struct vk__conn *c, struct vk_store_credential *k, struct vk_err *err);
/* Commit (or roll back when rc != 0) and give the connection back. Returns rc or commit's. */
int vk__store_end(struct vk_store *s, struct vk__conn *c, int rc, struct vk_err *err);

/* ---- query helpers (store.c) */
/* Run a statement and discard its rows; *changes (may be NULL) gets the rows changed. */
int vk__exec(struct vk__conn *c, int id, const char *sql, const struct vk__param *p, int np,
             int64_t *changes, struct vk_err *err);
/* Run a statement returning at most one row with one integer column; VK_ENOTFOUND if none. */
int vk__query_int(struct vk__conn *c, int id, const char *sql, const struct vk__param *p, int np,
                  int64_t *out, struct vk_err *err);
int vk__query(struct vk__conn *c, int id, const char *sql, const struct vk__param *p, int np,
              struct vk__res **res, struct vk_err *err);
int vk__next(struct vk__res *r, struct vk_err *err);
void vk__res_free(struct vk__res *r);
/* Column accessors that copy into a pool. */
const char *vk__col_str(struct vk__res *r, int col, struct vk_pool *pool);
void vk__col_id(struct vk__res *r, int col, char out[VK_UUID_LEN]);
int64_t vk__col_int(struct vk__res *r, int col);

static inline struct vk__param vk__text(const char *s)
{
    struct vk__param p = {VK__P_TEXT, s, 0, NULL, 0};
    if (!s)
        p.type = VK__P_NULL;
    return p;
}
/* A text parameter where "" means NULL (ids). */
static inline struct vk__param vk__id(const char *s)
{
    return vk__text(s && *s ? s : NULL);
}
static inline struct vk__param vk__int(int64_t i)
{
    struct vk__param p = {VK__P_INT, NULL, i, NULL, 0};
    return p;
}
/* An integer parameter where 0 means NULL (times). */
static inline struct vk__param vk__time(int64_t i)
{
    struct vk__param p = {i ? VK__P_INT : VK__P_NULL, NULL, i, NULL, 0};
    return p;
}
static inline struct vk__param vk__blob(const void *b, size_t len)
{
    struct vk__param p = {VK__P_BLOB, NULL, 0, b, len};
    return p;
}

/* Pick the dialect's SQL. */
#define VK__SQL(s, pg, lite) ((s)->dialect == VK__PG ? (pg) : (lite))

/* ---- model row readers (rows.c) */
/* Column lists: the readers expect exactly these columns in this order. */
#define VK__CHAIN_COLS                                                                             \
    "c.id, c.tenant_id, c.repository_id, c.source_file, c.repository_url, c.commit_sha, "          \
    "c.branch, c.trigger_type, c.trigger_ref, c.pr_number, c.tag, c.default_machine, c.env_json, " \
    "c.priority, c.status, c.error, c.trace_id, c.created_at, c.started_at, c.finished_at, "       \
    "c.trigger_request_id, c.commit_message, c.commit_author, c.from_fork, "                       \
    "c.concurrency_group, c.concurrency_cancel"
#define VK__CHAIN_NCOLS 26
#define VK__FRAG_COLS                                                                              \
    "f.id, f.chain_id, f.parent_id, f.sequence, f.position, f.type, f.is_parallel, f.name, "       \
    "f.run_script, f.machine, f.condition, f.source_url, f.timeout_ms, f.retries, "                \
    "f.retries_used, f.status, f.attempt, f.max_attempts, f.handbacks, f.cancel_requested, "       \
    "f.worker_id, f.ready_at, f.started_at, f.finished_at, f.exit_code, f.error, f.env_json, "     \
    "f.queue_timeout_ms, f.max_parallel, f.fail_fast, f.run_when, f.allow_failure, "               \
    "f.secrets_json, f.is_matrix, f.matrix_values, f.needs_json, f.unmet_needs, f.needs_wait, "    \
    "f.needs_env_json, f.outputs_json, f.concurrency_group, f.concurrency_cancel"
#define VK__FRAG_NCOLS 42
/* Same columns without the "f." prefix, for RETURNING. */
#define VK__FRAG_RCOLS                                                                             \
    "id, chain_id, parent_id, sequence, position, type, is_parallel, name, "                       \
    "run_script, machine, condition, source_url, timeout_ms, retries, "                            \
    "retries_used, status, attempt, max_attempts, handbacks, cancel_requested, "                   \
    "worker_id, ready_at, started_at, finished_at, exit_code, error, env_json, queue_timeout_ms, " \
    "max_parallel, fail_fast, run_when, allow_failure, secrets_json, is_matrix, matrix_values, "   \
    "needs_json, unmet_needs, needs_wait, needs_env_json, outputs_json, concurrency_group, "       \
    "concurrency_cancel"

int vk__read_chain(struct vk__res *r, int col0, struct vk_pool *pool, struct vk_store_chain *out,
                   struct vk_err *err);
int vk__read_frag(struct vk__res *r, int col0, struct vk_pool *pool, struct vk_store_fragment *out,
                  struct vk_err *err);
/* Read every remaining row of `r` as fragments into a pool array. */
int vk__read_frags(struct vk__res *r, struct vk_pool *pool, struct vk_store_fragment **out,
                   size_t *n, struct vk_err *err);

/* ---- migrations (schema.c) */
int vk__store_migrate(struct vk_store *s, struct vk_err *err);

/* ---- notifications (store.c) */
void vk__store_note_local(struct vk_store *s, const char *group);
int vk__store_notify(struct vk_store_tx *tx, const char *group, struct vk_err *err);

/* ---- concurrency groups (concurrency.c) */
/* In chain_create's transaction: the group keys of chain `ch` and of its fragments `sp`
 * (ids[i] is sp[i]'s id). Nothing is written when neither has a group. */
int vk__concurrency_set(struct vk__conn *c, const struct vk_store_chain *ch,
                        const struct vk_store_fragment_spec *sp, size_t n, char (*ids)[VK_UUID_LEN],
                        struct vk_err *err);
/* The claim's conditions (appended inside the candidate's WHERE, `fragments` being it). */
#define VK__CONCURRENCY_CLAIM                                                                      \
    " AND (fragments.chain_concurrency_key IS NULL OR (NOT EXISTS (SELECT 1 FROM chains c,"        \
    " chains o WHERE c.id = fragments.chain_id AND o.concurrency_key ="                            \
    " fragments.chain_concurrency_key AND o.status IN ('pending', 'running') AND"                  \
    " (o.created_at < c.created_at OR (o.created_at = c.created_at AND o.id < c.id)))"             \
    " AND NOT EXISTS (SELECT 1 FROM fragments r WHERE r.chain_concurrency_key ="                   \
    " fragments.chain_concurrency_key AND r.status = 'running'"                                    \
    " AND r.chain_id <> fragments.chain_id)))"                                                     \
    " AND (fragments.concurrency_key IS NULL OR (NOT EXISTS (SELECT 1 FROM fragments g"            \
    " WHERE g.concurrency_key = fragments.concurrency_key AND g.status = 'running')"               \
    " AND NOT EXISTS (SELECT 1 FROM fragments g WHERE g.concurrency_key ="                         \
    " fragments.concurrency_key AND g.status = 'ready' AND (g.ready_at < fragments.ready_at"       \
    " OR (g.ready_at = fragments.ready_at AND g.id < fragments.id)))))"

#endif /* VULCAN_STORE_INT_H */
