/*
 * store — persistent state of Vulcan CI: tenants, repositories, chains and
 * their fragment trees, workers, the ready queue and fragment logs.
 *
 * One interface, two backends chosen by URL at vk_store_open():
 *   sqlite:PATH            a file (created with its directory when missing), WAL mode
 *   sqlite::memory:        a private in-memory database shared by the threads of this process
 *   postgres://... / postgresql://...   PostgreSQL (libpq URI with its usual parameters)
 * Callers never see SQL. The schema is migrated at open time (see docs/store.md).
 *
 * Conventions:
 * - Ids are UUIDs in text form (char[VK_UUID_LEN]); an empty string means "none" (SQL NULL).
 * - Times are int64 milliseconds since the Unix epoch (UTC); 0 means "not set" (SQL NULL).
 * - Strings in model structs are `const char *`; NULL means SQL NULL. Structs filled by the
 *   store point into a caller-provided struct vk_pool: they are "returned borrowed (valid
 *   until the pool is released)". Structs passed in are borrowed for the call only.
 * - Attempts: a fragment's `attempt` is 1 when it is created and is incremented each time the
 *   fragment goes back to `ready` (retry after a failure, re-queue after its worker died,
 *   graceful hand-back). Claiming does not change it; the claim returns it, and every result
 *   or log for the fragment must carry it (stale attempts get VK_ECONFLICT). Hand-backs are
 *   counted in `handbacks` and do not count against max_attempts: the reaper gives up when
 *   attempt - handbacks >= max_attempts.
 *
 * Thread-safety: a struct vk_store may be used by any number of threads at once (it holds a
 * connection pool). A struct vk_store_tx belongs to the thread that began it, and holds one
 * connection (and on SQLite the write lock) until commit or rollback: keep transactions short.
 */
#ifndef VULCAN_STORE_H
#define VULCAN_STORE_H

#include "vulcan/util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------- Types */

struct vk_store;
struct vk_store_tx;

/** Schema version this binary knows (the highest migration number). */
#define VK_STORE_SCHEMA_VERSION 20

/** Caps on input-derived sizes. */
#define VK_STORE_MAX_FRAGMENTS 10000      /**< fragments in one chain */
#define VK_STORE_MAX_GROUPS 16            /**< machine groups of one worker / one claim */
#define VK_STORE_MAX_LOG_CHUNK (1u << 20) /**< bytes in one log append */
#define VK_STORE_MAX_LIST 200             /**< rows in one chain listing */
#define VK_STORE_MAX_COMMIT_MESSAGE 4096  /**< bytes of a chain's commit message kept */
#define VK_STORE_CURSOR_LEN 64            /**< bytes of an opaque listing cursor, with NUL */

enum vk_store_chain_status {
    VK_STORE_CHAIN_PENDING = 0,
    VK_STORE_CHAIN_RUNNING,
    VK_STORE_CHAIN_COMPLETED,
    VK_STORE_CHAIN_FAILED,
    VK_STORE_CHAIN_CANCELLED
};

enum vk_store_frag_status {
    VK_STORE_FRAG_PENDING = 0,
    VK_STORE_FRAG_READY,
    VK_STORE_FRAG_RUNNING,
    VK_STORE_FRAG_COMPLETED,
    VK_STORE_FRAG_FAILED,
    VK_STORE_FRAG_SKIPPED,
    VK_STORE_FRAG_CANCELLED
};

enum vk_store_frag_type { VK_STORE_FRAG_INLINE = 0, VK_STORE_FRAG_GROUP };

enum vk_store_worker_status {
    VK_STORE_WORKER_ALIVE = 0,
    VK_STORE_WORKER_DEAD,
    VK_STORE_WORKER_STOPPED
};

/** A repository (DESIGN §3). */
struct vk_store_repo {
    char id[VK_UUID_LEN];
    char tenant_id[VK_UUID_LEN];
    const char *url;
    const char *provider;       /**< github, gitlab, gitea, bitbucket, generic */
    const char *webhook_secret; /**< may be NULL */
    const char *workflow_glob;  /**< a glob such as .vulcan/NAME.kdl */
    const char *default_branch;
    bool allow_url_imports;
    int64_t created_at;
    const char *status_token;   /**< commit statuses: the provider's access token, may be NULL */
    const char *status_api_url; /**< commit statuses: the provider's API base URL; NULL: the
                                 *   provider's default (vk_triggers_status_api_url()) */
    bool allow_fork_secrets;    /**< pull requests from forks get secrets (default false) */
    const char *protected_refs; /**< comma-separated branch globs whose chains get protected
                                 *   secrets; NULL: the default branch */
};

/** One run of one workflow. */
struct vk_store_chain {
    char id[VK_UUID_LEN];
    char tenant_id[VK_UUID_LEN];
    char repository_id[VK_UUID_LEN]; /**< "" when the chain has no repository */
    const char *source_file;
    const char *repository_url;
    const char *commit_sha;
    const char *branch;
    const char *trigger;        /**< push, pull_request, tag, schedule, manual */
    const char *commit_message; /**< the commit's message (at most VK_STORE_MAX_COMMIT_MESSAGE
                                 *   bytes, cut at a character), NULL when unknown */
    const char *commit_author;  /**< "Name <email>" of the commit, NULL when unknown */
    const char *trigger_ref;
    int64_t pr_number; /**< 0 when none */
    const char *tag;
    const char *default_machine;
    const char *env_json;   /**< JSON object text, may be NULL */
    const char *definition; /**< the workflow source text, kept for rerun; may be NULL */
    int priority;           /**< higher is claimed first */
    enum vk_store_chain_status status;
    const char *error;
    const char *trace_id;
    int64_t created_at, started_at, finished_at;
    /** The trigger request that made the chain, "" when none. With one, creating a second
     *  chain of the same request and source_file is VK_EEXIST (a request handled again
     *  after its handler died makes each chain once). */
    char trigger_request_id[VK_UUID_LEN];
    bool from_fork; /**< made for a pull request whose head repository is not the base one:
                     *   its attempts get no secrets unless the repository allows it */
    /** The chain's concurrency group (filled in: "deploy-main"), NULL when none; scoped to
     *  tenant_id and repository_id by the store (concurrency.c). */
    const char *concurrency_group;
    bool concurrency_cancel; /**< `cancel-in-progress`: it cancels the older chains */
};

/** When a fragment runs (`when` of the workflow), as stored in fragments.run_when. */
enum vk_store_when {
    VK_STORE_WHEN_SUCCESS = 0, /**< only while nothing has failed (the default) */
    VK_STORE_WHEN_FAILURE = 1, /**< only once something has failed */
    VK_STORE_WHEN_ALWAYS = 2   /**< either way */
};

/** A fragment of a chain (a node of its tree). */
struct vk_store_fragment {
    char id[VK_UUID_LEN];
    char chain_id[VK_UUID_LEN];
    char parent_id[VK_UUID_LEN]; /**< "" for top-level fragments */
    int sequence;                /**< 0, 1, 2... among siblings */
    int position;                /**< index in the chain's pre-order */
    enum vk_store_frag_type type;
    bool is_parallel; /**< a group whose children run concurrently */
    const char *name;
    const char *run_script; /**< NULL for groups */
    const char *machine;
    const char *condition;
    const char *source_url;
    int64_t timeout_ms;       /**< 0: the worker's default */
    int64_t queue_timeout_ms; /**< longest wait in `ready`; 0: the server's default */
    int retries;              /**< re-runs allowed after a script failure */
    int retries_used;
    enum vk_store_frag_status status;
    int attempt; /**< see "Attempts" above */
    int max_attempts;
    int handbacks;
    bool cancel_requested;
    char worker_id[VK_UUID_LEN]; /**< "" when not assigned */
    int64_t ready_at, started_at, finished_at;
    bool has_exit_code;
    int exit_code;
    const char *error;
    const char *env_json;
    int max_parallel;            /**< parallel groups: most children active at once; 0: no limit */
    bool no_fail_fast;           /**< groups: a failure inside fails this group only when it closes,
                                  *   without skipping its other children (`fail-fast #false`) */
    enum vk_store_when run_when; /**< `when` */
    bool allow_failure;          /**< its failure fails neither its group nor the chain */
    const char *secrets_json;    /**< [{"name", "file"}]: the secrets it uses; NULL: none */
    bool is_matrix;              /**< a parallel group made by `matrix`, a child per copy */
    const char *matrix_values;   /**< a matrix copy: {"cc": "gcc", ...} in the matrix's order
                                  *   (JSON object text); NULL: not a copy */
    const char *needs_json;      /**< `needs`: ["build", …] as written; NULL: none */
    int unmet_needs;             /**< needed fragments not final yet */
    bool needs_wait;             /**< its turn came while unmet_needs > 0: the last needed one
                                  *   to end starts it */
    const char *needs_env_json;  /**< {"NEEDS_BUILD_RESULT": …}: set when it becomes ready */
    const char *outputs_json;    /**< {"NAME": "VALUE"} its attempt wrote to $VULCAN_OUTPUT */
    const char *concurrency_group; /**< its own concurrency group (filled in), NULL: none */
    bool concurrency_cancel;       /**< `cancel-in-progress` of that group */
};

/**
 * A fragment to create: vk_store_chain_create() takes an array of these in pre-order.
 * `parent` is the index of the parent spec in the same array (-1 for top-level) and must
 * be smaller than the spec's own index. Sequence numbers are computed from the order.
 */
struct vk_store_fragment_spec {
    int parent;
    enum vk_store_frag_type type;
    bool is_parallel;
    const char *name;
    const char *run_script;
    const char *machine; /**< NULL: the chain's default machine */
    const char *condition;
    const char *source_url;
    int64_t timeout_ms;
    int64_t queue_timeout_ms; /**< 0: the server's default */
    int retries;
    int max_attempts; /**< 0: 3 */
    const char *env_json;
    int max_parallel;  /**< as in struct vk_store_fragment */
    bool no_fail_fast; /**< as in struct vk_store_fragment */
    enum vk_store_when run_when;
    bool allow_failure;
    const char *secrets_json; /**< [{"name": "A", "file": false}, ...] or NULL */

    bool is_matrix;            /**< as in struct vk_store_fragment */
    const char *matrix_values; /**< as in struct vk_store_fragment */
    const char *needs_json;    /**< as in struct vk_store_fragment */
    const int *needs;          /**< indexes (in the same array) of the specs it needs */
    size_t nneeds;
    const char *concurrency_group; /**< inline only: its concurrency group, or NULL */
    bool concurrency_cancel;
};

/** A worker agent. */
struct vk_store_worker {
    char id[VK_UUID_LEN];
    char tenant_id[VK_UUID_LEN]; /**< "" when none */
    const char **groups;         /**< machine groups, sorted */
    size_t ngroups;
    const char *name;
    const char *version;
    enum vk_store_worker_status status;
    int64_t last_heartbeat, registered_at;
    char current_fragment_id[VK_UUID_LEN]; /**< a running fragment assigned to it, or "" */
};

/** What a worker needs to run a claimed fragment: the fragment and its chain. */
struct vk_store_work {
    struct vk_store_fragment fragment; /**< status running, worker_id set, attempt current */
    struct vk_store_chain chain;       /**< `definition` is not loaded (NULL) */
};

/** One stored log chunk (for tests and export). */
struct vk_store_log_chunk {
    char fragment_id[VK_UUID_LEN];
    int attempt;
    int64_t offset;
    const unsigned char *data;
    size_t len;
};

/** Chain listing filters; NULL / "" / 0 fields do not filter. */
struct vk_store_chain_filter {
    const char *status; /**< a chain status name */
    const char *repository_id;
    const char *branch;
    const char *trigger;
    int64_t since_ms;   /**< created_at >= since_ms */
    const char *cursor; /**< from a previous page's next_cursor; NULL for the first page */
    int limit;          /**< 1..VK_STORE_MAX_LIST; 0 means 50 */
};

/** A change the reaper or a cancel made to a fragment, for the orchestrator to propagate. */
struct vk_store_frag_change {
    char fragment_id[VK_UUID_LEN];
    char chain_id[VK_UUID_LEN];
    enum vk_store_frag_status status; /**< the new status */
    const char *machine;
};

/** Result of vk_store_reap_workers(). */
struct vk_store_reap_result {
    size_t nworkers;                      /**< workers marked dead */
    struct vk_store_frag_change *changes; /**< re-queued (ready) or failed fragments */
    size_t nchanges;
};

/** Queue metrics for one machine group (or all groups). */
struct vk_store_queue_metrics {
    int64_t pending; /**< pending fragments */
    int64_t ready;
    int64_t running;
    int64_t workers_alive;
};

/** Fields for vk_store_tx_fragment_update(): only the fields named in `set` are written. */
enum {
    VK_STORE_SET_STATUS = 1 << 0,
    VK_STORE_SET_ATTEMPT = 1 << 1,
    VK_STORE_SET_WORKER = 1 << 2, /**< worker_id; "" writes NULL */
    VK_STORE_SET_READY_AT = 1 << 3,
    VK_STORE_SET_STARTED_AT = 1 << 4,
    VK_STORE_SET_FINISHED_AT = 1 << 5,
    VK_STORE_SET_EXIT_CODE = 1 << 6, /**< uses has_exit_code / exit_code */
    VK_STORE_SET_ERROR = 1 << 7,
    VK_STORE_SET_RETRIES_USED = 1 << 8,
    VK_STORE_SET_CANCEL_REQUESTED = 1 << 9,
    VK_STORE_SET_NEEDS_WAIT = 1 << 10,
    VK_STORE_SET_NEEDS_ENV = 1 << 11
};

struct vk_store_fragment_update {
    unsigned set; /**< VK_STORE_SET_* bits */
    enum vk_store_frag_status status;
    int attempt;
    const char *worker_id;
    int64_t ready_at, started_at, finished_at;
    bool has_exit_code;
    int exit_code;
    const char *error;
    int retries_used;
    bool cancel_requested;
    bool needs_wait;
    const char *needs_env_json;
};

/* ---------------------------------------------------------------- Names */

/** Status names ("pending", "ready"...). Return static strings. */
const char *vk_store_chain_status_name(enum vk_store_chain_status s);
const char *vk_store_frag_status_name(enum vk_store_frag_status s);
const char *vk_store_worker_status_name(enum vk_store_worker_status s);
/** Parse a status name. Returns 0 or VK_EINVAL. */
int vk_store_chain_status_parse(const char *s, enum vk_store_chain_status *out) VK_MUST_CHECK;
int vk_store_frag_status_parse(const char *s, enum vk_store_frag_status *out) VK_MUST_CHECK;
/** True for completed, failed, skipped and cancelled. */
bool vk_store_frag_status_final(enum vk_store_frag_status s);

/* ---------------------------------------------------------------- Lifecycle */

/**
 * Open the store at `url` (see the top of this file), creating the SQLite file and its
 * directory when missing, and migrate the schema. Borrows `url`. On success *out is a new
 * store owned by the caller; free it with vk_store_close().
 * Errors: VK_EINVAL (bad URL), VK_EVERSION (database schema newer than this binary),
 * VK_EDB / VK_EIO (cannot connect or migrate), VK_ENOMEM.
 */
int vk_store_open(const char *url, struct vk_store **out, struct vk_err *err) VK_MUST_CHECK;

/** Close the store and all its connections. Accepts NULL. No transaction may be open. */
void vk_store_close(struct vk_store *store);

/* ---------------------------------------------------------------- Leases */

/**
 * Hold the lease `name` for `holder` until now_ms + ttl_ms: taken when nobody holds it or
 * its holder's lease expired before now_ms, renewed when `holder` holds it, refused
 * otherwise. One conditional statement, so two replicas never both hold it (clocks of the
 * replicas must agree to well within ttl_ms). *held receives the outcome; *taken (may be
 * NULL) whether this call took it from another holder or from nobody. Borrows the strings.
 * Returns 0, VK_EDB.
 */
int vk_store_lease_hold(struct vk_store *store, const char *name, const char *holder,
                        int64_t ttl_ms, int64_t now_ms, bool *held, bool *taken,
                        struct vk_err *err) VK_MUST_CHECK;

/** Give the lease `name` up if `holder` holds it (a clean stop: the next replica takes it
 * at once). Returns 0, VK_EDB. */
int vk_store_lease_release(struct vk_store *store, const char *name, const char *holder,
                           struct vk_err *err) VK_MUST_CHECK;

/** Delete the leases whose name starts with `prefix` (borrowed) that expired before
 * `expired_before_ms` (replicas long gone). Returns 0, VK_EDB. */
int vk_store_lease_prune(struct vk_store *store, const char *prefix, int64_t expired_before_ms,
                         struct vk_err *err) VK_MUST_CHECK;

/* ---------------------------------------------------------------- Backup (SQLite) */

/**
 * Copy the SQLite database at `src` (a live server may be writing it) to the new file
 * `dst` (created 0600; must not exist) with SQLite's online backup in one step: the copy
 * is the one snapshot of a read transaction, and in WAL mode the server's writers are
 * not held up meanwhile. The copy is a single file (journal mode DELETE, no WAL).
 * Borrows both. Returns 0, VK_ENOTFOUND (no `src`), VK_EEXIST (`dst` exists), VK_EIO,
 * VK_EDB; on failure `dst` is removed.
 */
int vk_store_sqlite_backup(const char *src, const char *dst, struct vk_err *err) VK_MUST_CHECK;

/** What vk_store_sqlite_inspect() found. */
struct vk_store_sqlite_info {
    int64_t schema_version;
    int64_t chains;
    int64_t secrets; /**< -1 when the schema has no secrets table */
};

/**
 * Check the SQLite database file `path` before it is used (read-only): SQLite's
 * integrity check passes, it is a Vulcan database, and its schema is not newer than this
 * binary. Fills `info`. Returns 0, VK_EDB (unsound, not ours), VK_EVERSION.
 */
int vk_store_sqlite_inspect(const char *path, struct vk_store_sqlite_info *info,
                            struct vk_err *err) VK_MUST_CHECK;

/** "sqlite" or "postgres". Returns a static string. */
const char *vk_store_backend(const struct vk_store *store);

/** The schema version recorded in the database. */
int vk_store_schema_version(struct vk_store *store, int *version, struct vk_err *err) VK_MUST_CHECK;

/* ---------------------------------------------------------------- Tenants, repositories */

/**
 * Find the tenant called `name`, creating it when missing; write its id to `id`.
 * Returns 0, VK_EINVAL or VK_EDB.
 */
int vk_store_tenant_ensure(struct vk_store *store, const char *name, char id[VK_UUID_LEN],
                           struct vk_err *err) VK_MUST_CHECK;

/**
 * Create a repository from `repo` (its id and created_at are ignored; the new id is written
 * back into repo->id, created_at into repo->created_at). Borrows the strings.
 * Returns 0, VK_EEXIST (same tenant and url), VK_EINVAL, VK_EDB.
 */
int vk_store_repo_create(struct vk_store *store, struct vk_store_repo *repo,
                         struct vk_err *err) VK_MUST_CHECK;

/** Get a repository by id into *out (strings in `pool`). Returns 0, VK_ENOTFOUND, VK_EDB. */
int vk_store_repo_get(struct vk_store *store, const char *id, struct vk_pool *pool,
                      struct vk_store_repo *out, struct vk_err *err) VK_MUST_CHECK;

/** Find a repository of any tenant by url. Returns 0, VK_ENOTFOUND, VK_EDB. */
int vk_store_repo_find_by_url(struct vk_store *store, const char *url, struct vk_pool *pool,
                              struct vk_store_repo *out, struct vk_err *err) VK_MUST_CHECK;

/** List all repositories ordered by url; *out is an array in `pool`. */
int vk_store_repo_list(struct vk_store *store, struct vk_pool *pool, struct vk_store_repo **out,
                       size_t *n, struct vk_err *err) VK_MUST_CHECK;

/* ---------------------------------------------------------------- Chains */

/**
 * Create a chain and its whole fragment tree in one transaction. `chain` supplies the
 * chain's fields (id, status and created_at are set by the store and written back; status
 * starts `pending`). `specs` are `n` fragment specs in pre-order (see struct
 * vk_store_fragment_spec). Every fragment starts `pending` with attempt 1. When `frag_ids`
 * is not NULL it receives the `n` new fragment ids in spec order.
 * Returns 0, VK_EINVAL (bad parent index, missing machine), VK_ETOOBIG (n over
 * VK_STORE_MAX_FRAGMENTS), VK_EEXIST (chain->trigger_request_id made a chain of this
 * source_file already: its id is written to chain->id), VK_EDB.
 */
int vk_store_chain_create(struct vk_store *store, struct vk_store_chain *chain,
                          const struct vk_store_fragment_spec *specs, size_t n,
                          char (*frag_ids)[VK_UUID_LEN], struct vk_err *err) VK_MUST_CHECK;

/**
 * Get a chain by id and, when `frags` is not NULL, its fragments in pre-order (by position).
 * Everything is allocated in `pool`. Returns 0, VK_ENOTFOUND, VK_EDB.
 */
int vk_store_chain_get(struct vk_store *store, const char *id, struct vk_pool *pool,
                       struct vk_store_chain *chain, struct vk_store_fragment **frags,
                       size_t *nfrags, struct vk_err *err) VK_MUST_CHECK;

/**
 * Get one fragment by id, without a transaction or any lock (a plain read, for
 * readers such as log followers). Strings in `pool`. Returns 0, VK_ENOTFOUND, VK_EDB.
 */
int vk_store_fragment_get(struct vk_store *store, const char *id, struct vk_pool *pool,
                          struct vk_store_fragment *out, struct vk_err *err) VK_MUST_CHECK;

/**
 * List chains newest first (created_at, then id, descending) matching `filter`.
 * *out is an array of *n chains in `pool` (without `definition`). When more rows follow,
 * `next_cursor` receives an opaque cursor for the next page, else "".
 * Returns 0, VK_EINVAL (bad cursor or filter), VK_EDB.
 */
int vk_store_chain_list(struct vk_store *store, const struct vk_store_chain_filter *filter,
                        struct vk_pool *pool, struct vk_store_chain **out, size_t *n,
                        char next_cursor[VK_STORE_CURSOR_LEN], struct vk_err *err) VK_MUST_CHECK;

/**
 * Chains a crash or an old defect may have left unsettled, oldest first, at most `limit`:
 * a final chain (failed, cancelled, completed) whose finished_at is NULL, or a failed or
 * cancelled chain with a group still `running`. *ids is an array of *n ids in `pool`.
 * The orchestrator repairs them at start (vk_orch_repair()). Returns 0, VK_EDB.
 */
int vk_store_chain_unsettled(struct vk_store *store, size_t limit, struct vk_pool *pool,
                             char ***ids, size_t *n, struct vk_err *err) VK_MUST_CHECK;

/**
 * Cancel a chain: pending and ready fragments (and groups not yet finished) become
 * `cancelled`; running inline fragments get `cancel_requested` (their workers learn it from
 * the heartbeat; their results are still recorded when they arrive); the chain itself becomes
 * `cancelled` at once with finished_at = now_ms. `*nflagged` (may be NULL) receives the
 * number of running fragments flagged. Returns 0, VK_ENOTFOUND, VK_ECONFLICT (the chain had
 * finished already), VK_EDB.
 */
int vk_store_chain_cancel(struct vk_store *store, const char *chain_id, int64_t now_ms,
                          size_t *nflagged, struct vk_err *err) VK_MUST_CHECK;

/**
 * vk_store_chain_cancel() that also sets the chain's `error` to `reason` (may be NULL:
 * left as it is), e.g. "cancelled by chain <id> (concurrency group `deploy-main`)".
 */
int vk_store_chain_cancel_reason(struct vk_store *store, const char *chain_id, int64_t now_ms,
                                 const char *reason, size_t *nflagged,
                                 struct vk_err *err) VK_MUST_CHECK;

/* ---------------------------------------------------------------- Concurrency groups */

/*
 * A chain (vk_store_chain.concurrency_group) or an inline fragment (its spec's) may belong
 * to a concurrency group, scoped by the store to the chain's org and repository. The claim
 * (vk_store_claim()) decides in one statement, from committed rows only, so replicas on one
 * database agree:
 * - a fragment of a chain in a group is claimed only when no older chain of the group
 *   (created_at, then id) is pending or running, and no other chain of the group has a
 *   running fragment (a cancelled chain holds its group until its worker stopped it);
 * - a fragment in a group is claimed only when no other fragment of the group runs and no
 *   other one has been ready longer (ready_at, then id).
 * Waiters run in that order; every one is kept (none is dropped for a newer one).
 */

/** Longest concurrency group the store keeps, bytes. */
#define VK_STORE_MAX_CONCURRENCY_GROUP 256
/** Most chains vk_store_concurrency_older() returns. */
#define VK_STORE_MAX_CONCURRENCY_OLDER 64

/**
 * Who `chain_id`'s fragment `fragment_id` (NULL: the chain as a whole) waits for: the chain
 * that holds the group into `holder`, its group into `group` (`gcap` bytes), and 0;
 * VK_ENOTFOUND when it waits for no group. Returns VK_EDB on a database error.
 */
int vk_store_concurrency_holder(struct vk_store *store, const char *chain_id,
                                const char *fragment_id, char holder[VK_UUID_LEN], char *group,
                                size_t gcap, struct vk_err *err) VK_MUST_CHECK;

/**
 * The chains of `chain_id`'s group created before it that are still pending or running,
 * oldest first, at most VK_STORE_MAX_CONCURRENCY_OLDER, into `ids` (a pool array of *n).
 * With `fragment_id`, the pending or running chains (other than `chain_id`) with a
 * running or ready fragment of that fragment's group instead.
 */
int vk_store_concurrency_older(struct vk_store *store, const char *chain_id,
                               const char *fragment_id, struct vk_pool *pool,
                               char (**ids)[VK_UUID_LEN], size_t *n,
                               struct vk_err *err) VK_MUST_CHECK;

/**
 * Announce (vk_store_tx_notify_ready()) the machine groups of the ready fragments that wait
 * for the group of chain `chain_id` and for the group of its fragment `fragment_id` (call it
 * when that fragment ended); with `fragment_id` NULL, for the groups of all the chain's
 * fragments (call it when the chain was cancelled).
 */
int vk_store_tx_concurrency_wake(struct vk_store_tx *tx, const char *chain_id,
                                 const char *fragment_id, struct vk_err *err) VK_MUST_CHECK;

/* ---------------------------------------------------------------- Transactions */

/**
 * Begin a write transaction (SQLite: BEGIN IMMEDIATE; PostgreSQL: READ COMMITTED with row
 * locks taken by the getters below). On success *tx is owned by the caller and must be
 * ended with vk_store_tx_commit() or vk_store_tx_rollback(). While it is open, the same
 * thread must not call other functions of this store (they would wait for the connection or
 * the SQLite writer lock the transaction holds). Returns 0 or VK_EDB.
 */
int vk_store_tx_begin(struct vk_store *store, struct vk_store_tx **tx,
                      struct vk_err *err) VK_MUST_CHECK;

/** Commit and free `tx` (also on failure, after rolling back). Returns 0 or VK_EDB. */
int vk_store_tx_commit(struct vk_store_tx *tx, struct vk_err *err) VK_MUST_CHECK;

/** Roll back and free `tx`. Accepts NULL. */
void vk_store_tx_rollback(struct vk_store_tx *tx);

/**
 * Get a fragment by id. On PostgreSQL this locks its chain's row (SELECT ... FOR UPDATE),
 * so two transactions working on the same chain serialise. Strings in `pool`.
 * Returns 0, VK_ENOTFOUND, VK_EDB.
 */
int vk_store_tx_fragment_get(struct vk_store_tx *tx, const char *id, struct vk_pool *pool,
                             struct vk_store_fragment *out, struct vk_err *err) VK_MUST_CHECK;

/** Get a chain (without `definition`) and lock its row. Returns 0, VK_ENOTFOUND, VK_EDB. */
int vk_store_tx_chain_get(struct vk_store_tx *tx, const char *id, struct vk_pool *pool,
                          struct vk_store_chain *out, struct vk_err *err) VK_MUST_CHECK;

/**
 * The first child (by sequence) of group `parent_id` still `pending` into *out (strings in
 * `pool`): one indexed read, for a max-parallel group's next child when one ends. Returns
 * 0, VK_ENOTFOUND (none left), VK_EDB.
 */
int vk_store_tx_first_pending_child(struct vk_store_tx *tx, const char *parent_id,
                                    struct vk_pool *pool, struct vk_store_fragment *out,
                                    struct vk_err *err) VK_MUST_CHECK;

/**
 * The sibling that follows `f` (next sequence under the same parent, or the next top-level
 * fragment of f's chain) into *out (strings in `pool`): one indexed read, for a sequential
 * group's next step when one ends. Returns 0, VK_ENOTFOUND (f is the last), VK_EDB.
 */
int vk_store_tx_next_sibling(struct vk_store_tx *tx, const struct vk_store_fragment *f,
                             struct vk_pool *pool, struct vk_store_fragment *out,
                             struct vk_err *err) VK_MUST_CHECK;

/**
 * List the children of fragment `parent_id` of chain `chain_id`, or the chain's top-level
 * fragments when `parent_id` is NULL or "", ordered by sequence. Array in `pool`.
 */
int vk_store_tx_children(struct vk_store_tx *tx, const char *chain_id, const char *parent_id,
                         struct vk_pool *pool, struct vk_store_fragment **out, size_t *n,
                         struct vk_err *err) VK_MUST_CHECK;

/** Count children (or top-level fragments) still pending, ready or running. */
int vk_store_tx_count_unfinished(struct vk_store_tx *tx, const char *chain_id,
                                 const char *parent_id, int64_t *count,
                                 struct vk_err *err) VK_MUST_CHECK;

/**
 * Whether any child (or top-level fragment) is still pending, ready or
 * running: *any. Stops at the first one, scanning from the last sequence
 * (children are claimed roughly in sequence order, so the last ones finish
 * last): about O(1) per call while a big parallel group runs, where
 * vk_store_tx_count_unfinished() visits every child.
 */
int vk_store_tx_has_unfinished(struct vk_store_tx *tx, const char *chain_id, const char *parent_id,
                               bool *any, struct vk_err *err) VK_MUST_CHECK;

/** Write the fields of `u` named in u->set to fragment `id`. Returns 0, VK_ENOTFOUND, VK_EDB. */
int vk_store_tx_fragment_update(struct vk_store_tx *tx, const char *id,
                                const struct vk_store_fragment_update *u,
                                struct vk_err *err) VK_MUST_CHECK;

/**
 * Put fragment `id` back to `ready` for another attempt: attempt + 1, worker cleared, times,
 * exit code and error cleared, ready_at = now_ms; when `is_retry` retries_used + 1.
 * Returns 0, VK_ENOTFOUND, VK_EDB.
 */
int vk_store_tx_fragment_requeue(struct vk_store_tx *tx, const char *id, bool is_retry,
                                 int64_t now_ms, struct vk_err *err) VK_MUST_CHECK;

/**
 * Set a chain's status, and its started_at / finished_at when not 0, and its error when not
 * NULL. Returns 0, VK_ENOTFOUND, VK_EDB.
 */
int vk_store_tx_chain_set(struct vk_store_tx *tx, const char *chain_id,
                          enum vk_store_chain_status status, int64_t started_at,
                          int64_t finished_at, const char *error, struct vk_err *err) VK_MUST_CHECK;

/** Mark every pending or ready fragment of the chain `skipped` (one statement), with `why`
 * as their error (NULL: none), but those that run after a failure: a not-started node with
 * run_when failure or always whose parent has started (or that is top-level), and what is
 * under it. */
int vk_store_tx_chain_skip_pending(struct vk_store_tx *tx, const char *chain_id, int64_t now_ms,
                                   const char *why, int64_t *count,
                                   struct vk_err *err) VK_MUST_CHECK;

/**
 * Record the end of a running fragment, fenced: succeeds only when the fragment is running,
 * its attempt equals `attempt` and (when `worker_id` is not NULL/"") it is assigned to
 * `worker_id`. Sets status (completed or failed), exit code (`has_exit_code`), error (may
 * be NULL) and finished_at. Returns 0, VK_ENOTFOUND, VK_ECONFLICT (stale attempt, other
 * worker, not running), VK_EINVAL (status not final), VK_EDB.
 */
int vk_store_tx_fragment_finish(struct vk_store_tx *tx, const char *fragment_id, int attempt,
                                const char *worker_id, enum vk_store_frag_status status,
                                bool has_exit_code, int exit_code, const char *error,
                                int64_t now_ms, struct vk_err *err) VK_MUST_CHECK;

/* ---------------------------------------------------------------- Needs (needs.c) */

/**
 * Fragment `need_id` reached a final status: each fragment that needs it has its unmet
 * counter lowered by one, once per edge however often this is called. The dependents whose
 * counter changed into *out (fresh rows in `pool`). Cost: the edges out of `need_id`, by
 * index; never a scan of the chain.
 */
int vk_store_tx_needs_done(struct vk_store_tx *tx, const char *need_id, struct vk_pool *pool,
                           struct vk_store_fragment **out, size_t *n,
                           struct vk_err *err) VK_MUST_CHECK;

/** Whether some fragment needs `id` and has not counted it yet (one indexed read). */
int vk_store_tx_is_needed(struct vk_store_tx *tx, const char *id, bool *needed,
                          struct vk_err *err) VK_MUST_CHECK;

/**
 * After a bulk change of status (vk_store_tx_chain_skip_pending): lower the counters for
 * every edge of the chain whose needed fragment is final and was not counted yet; the
 * fragments whose counter changed into *out. Linear in the chain's edges (failure only).
 */
int vk_store_tx_needs_settle(struct vk_store_tx *tx, const char *chain_id, struct vk_pool *pool,
                             struct vk_store_fragment **out, size_t *n,
                             struct vk_err *err) VK_MUST_CHECK;

/** The fragments `fragment_id` needs, in the order of its `needs`, into *out. */
int vk_store_tx_needs_of(struct vk_store_tx *tx, const char *fragment_id, struct vk_pool *pool,
                         struct vk_store_fragment **out, size_t *n,
                         struct vk_err *err) VK_MUST_CHECK;

/**
 * Record the outputs of a running attempt (fenced like vk_store_tx_fragment_finish; NULL
 * clears them). Returns 0, VK_ECONFLICT (not that running attempt), VK_EDB.
 */
int vk_store_fragment_set_outputs(struct vk_store *s, const char *fragment_id, int attempt,
                                  const char *worker_id, const char *outputs_json,
                                  struct vk_err *err) VK_MUST_CHECK;

/**
 * Announce that fragments of machine group `group` became ready. PostgreSQL: NOTIFY
 * vulcan_ready, delivered to every replica's vk_store_wait_ready() at commit. SQLite: queued
 * in-process and delivered at commit. Borrows `group`.
 */
int vk_store_tx_notify_ready(struct vk_store_tx *tx, const char *group,
                             struct vk_err *err) VK_MUST_CHECK;

/* ---------------------------------------------------------------- Queue */

/**
 * Claim the next ready fragment whose machine is one of `groups` (highest chain priority
 * first, then oldest ready_at) for `worker_id`: it becomes running, assigned, started_at =
 * now_ms. Returns 0 and fills *out (strings in `pool`), VK_ENOTFOUND when nothing is ready,
 * VK_EINVAL (no groups, too many), VK_EDB.
 */
int vk_store_claim(struct vk_store *store, const char *worker_id, const char *const *groups,
                   size_t ngroups, int64_t now_ms, struct vk_pool *pool, struct vk_store_work *out,
                   struct vk_err *err) VK_MUST_CHECK;

/**
 * Graceful hand-back: if fragment `fragment_id` is running on `worker_id` at `attempt`, put
 * it back to ready (attempt + 1, handbacks + 1, so it does not count against max_attempts).
 * Returns 0, VK_ENOTFOUND, VK_ECONFLICT, VK_EDB.
 */
int vk_store_requeue_fragment(struct vk_store *store, const char *fragment_id, int attempt,
                              const char *worker_id, int64_t now_ms,
                              struct vk_err *err) VK_MUST_CHECK;

/** Counts for machine group `group`, or for all groups when NULL. */
int vk_store_queue_metrics(struct vk_store *store, const char *group,
                           struct vk_store_queue_metrics *out, struct vk_err *err) VK_MUST_CHECK;

/**
 * Why does work of `group` wait? *alive: alive workers of the group; *busy: those of them
 * running a fragment; *dead: dead workers of the group.
 */
int vk_store_group_status(struct vk_store *store, const char *group, int64_t *alive, int64_t *busy,
                          int64_t *dead, struct vk_err *err) VK_MUST_CHECK;

/**
 * Why a `ready` fragment of `group` waits, in words, into `buf` (of `size` bytes), from
 * vk_store_group_status(): "no worker of machine group 'X' has ever registered", "all N
 * workers of machine group 'X' are busy", "all N workers of machine group 'X' are dead",
 * or "waiting for one of N idle workers of machine group 'X' to pick it up". Workers are
 * never deleted (dead ones stay as rows), so "never registered" means exactly that. The
 * API's waiting_reason and the queue timeout's error use this one text.
 */
int vk_store_wait_reason(struct vk_store *store, const char *group, char *buf, size_t size,
                         struct vk_err *err) VK_MUST_CHECK;

/** A `ready` fragment that waited longer than its queue timeout (vk_store_queue_expired). */
struct vk_store_expired {
    char id[VK_UUID_LEN];
    const char *machine;      /**< in the caller's pool */
    int64_t queue_timeout_ms; /**< the timeout that applied (its own or the default) */
};

/**
 * Up to `max` fragments `ready` since before now_ms minus their queue timeout (their own
 * queue_timeout_ms, or `default_ms` when it is 0), oldest first, into *out (allocated in
 * `pool`). Reads the partial index fragments_ready only.
 */
int vk_store_queue_expired(struct vk_store *store, int64_t now_ms, int64_t default_ms, size_t max,
                           struct vk_pool *pool, struct vk_store_expired **out, size_t *n,
                           struct vk_err *err) VK_MUST_CHECK;

/**
 * Wait up to `timeout_ms` for ready notifications (see vk_store_tx_notify_ready) and return
 * the distinct group names received, in `pool`. Returns 0 (with *n possibly 0 when the wait
 * timed out), VK_EDB. Meant for one waiting thread per store.
 */
int vk_store_wait_ready(struct vk_store *store, int timeout_ms, struct vk_pool *pool,
                        const char ***groups, size_t *n, struct vk_err *err) VK_MUST_CHECK;

/* ---------------------------------------------------------------- Workers */

/**
 * Register a new worker (alive) serving `groups`; its id is written to `id`.
 * `tenant_id` may be NULL. Returns 0, VK_EINVAL (no group, too many), VK_EDB.
 */
int vk_store_worker_register(struct vk_store *store, const char *tenant_id, const char *name,
                             const char *version, const char *const *groups, size_t ngroups,
                             int64_t now_ms, char id[VK_UUID_LEN],
                             struct vk_err *err) VK_MUST_CHECK;

/**
 * Record a heartbeat. *cancel receives the ids (in `pool`) of fragments running on this
 * worker that should stop (chain cancelled or cancel requested). Returns 0, VK_ENOTFOUND,
 * VK_ECONFLICT (the worker was declared dead or stopped: register again), VK_EDB.
 */
int vk_store_worker_heartbeat(struct vk_store *store, const char *id, int64_t now_ms,
                              struct vk_pool *pool, const char ***cancel, size_t *ncancel,
                              struct vk_err *err) VK_MUST_CHECK;

/** Get a worker by id (strings in `pool`). Returns 0, VK_ENOTFOUND, VK_EDB. */
int vk_store_worker_get(struct vk_store *store, const char *id, struct vk_pool *pool,
                        struct vk_store_worker *out, struct vk_err *err) VK_MUST_CHECK;

/** List workers (newest registration first); array in `pool`. */
int vk_store_worker_list(struct vk_store *store, struct vk_pool *pool, struct vk_store_worker **out,
                         size_t *n, struct vk_err *err) VK_MUST_CHECK;

/**
 * Mark a worker stopped (it said goodbye) and hand back what it still holds (re-queued
 * without counting an attempt). Returns 0, VK_ENOTFOUND, VK_EDB.
 */
int vk_store_worker_stop(struct vk_store *store, const char *id, struct vk_err *err) VK_MUST_CHECK;

/**
 * Reconcile what worker `id` says it runs (`running`, `n` fragment ids, borrowed) with
 * what the store assigned to it: a fragment running on it since before `claimed_before_ms`
 * that it does not list was never received (the claim's reply was lost, e.g. the server
 * died after committing it) and is re-queued as a hand-back (attempt + 1, not counted).
 * Fragments claimed later are left alone: their reply may still be on its way.
 * *nrequeued (may be NULL) receives how many were re-queued. Returns 0, VK_EDB.
 */
int vk_store_worker_reconcile(struct vk_store *store, const char *id, const char *const *running,
                              size_t n, int64_t claimed_before_ms, int64_t now_ms,
                              size_t *nrequeued, struct vk_err *err) VK_MUST_CHECK;

/**
 * Mark dead every alive worker whose last heartbeat is older than now_ms - timeout_ms and,
 * in the same transaction, re-queue their running fragments (ready, attempt + 1, worker
 * cleared) or, when attempt - handbacks reached the limit (`max_attempts` when > 0, else the
 * fragment's own max_attempts), fail them with "worker '<name>' (<id>) stopped responding;
 * gave up after N attempts". Ready notifications are sent for re-queued fragments. Changes
 * are returned in *result (arrays in `pool`) so the orchestrator can propagate failures.
 */
int vk_store_reap_workers(struct vk_store *store, int64_t now_ms, int64_t timeout_ms,
                          int max_attempts, struct vk_pool *pool,
                          struct vk_store_reap_result *result, struct vk_err *err) VK_MUST_CHECK;

/* ---------------------------------------------------------------- Logs */

/**
 * Append `len` bytes at byte `offset` of the log of (fragment, attempt). Idempotent: when
 * offset equals the stored length the bytes are appended; a range already stored is
 * accepted and ignored (an overlapping tail is appended); offset past the stored length is
 * VK_EINVAL. VK_ECONFLICT when `attempt` is not the fragment's current attempt.
 * `*total` (may be NULL) receives the stored length afterwards. Borrows `data`.
 * Returns 0, VK_ENOTFOUND, VK_ECONFLICT, VK_EINVAL, VK_ETOOBIG (len over
 * VK_STORE_MAX_LOG_CHUNK), VK_EDB.
 */
int vk_store_log_append(struct vk_store *store, const char *fragment_id, int attempt,
                        int64_t offset, const void *data, size_t len, int64_t *total,
                        struct vk_err *err) VK_MUST_CHECK;

/**
 * Read up to `max` bytes of the log of (fragment, attempt) from byte `offset` into `buf`.
 * *nread receives the number of bytes copied, *total the stored length. Reading at or past
 * the end gives *nread 0. Returns 0 or VK_EDB.
 */
int vk_store_log_read(struct vk_store *store, const char *fragment_id, int attempt, int64_t offset,
                      void *buf, size_t max, size_t *nread, int64_t *total,
                      struct vk_err *err) VK_MUST_CHECK;

/* ---------------------------------------------------------------- Triggers */

/*
 * Repository changes, webhook deliveries and cron schedules (schema version 2).
 *
 * Deleting a repository keeps its chains (their history stays visible) but clears their
 * repository_id (ON DELETE SET NULL; repository_url stays); its schedules are deleted.
 *
 * Webhook deliveries are remembered for VK_STORE_DELIVERY_KEEP_MS so that a redelivered
 * webhook creates nothing new; older rows are pruned now and then by
 * vk_store_delivery_seen() itself.
 *
 * A schedule row is one `schedule cron=… timezone=…` trigger of one workflow file of a
 * repository's default branch. `last_fired_ms` is the slot that fired last (or the time the
 * row was created); `next_fire_ms` the next slot. Firing a slot is claimed with one
 * conditional UPDATE (vk_store_schedule_claim()), so with several replicas on one database
 * each slot fires exactly once.
 */

#define VK_STORE_DELIVERY_KEEP_MS (7LL * 24 * 3600 * 1000) /**< deliveries kept 7 days */
#define VK_STORE_MAX_DELIVERY_ID 1024                      /**< bytes of a delivery id */
#define VK_STORE_MAX_SCHEDULES 1000                        /**< schedules of one repository */

/** Fields for vk_store_repo_update(): only the fields named in `set` are written. */
enum {
    VK_STORE_REPO_SET_URL = 1 << 0,
    VK_STORE_REPO_SET_PROVIDER = 1 << 1,
    VK_STORE_REPO_SET_SECRET = 1 << 2, /**< NULL webhook_secret writes NULL */
    VK_STORE_REPO_SET_GLOB = 1 << 3,
    VK_STORE_REPO_SET_BRANCH = 1 << 4,
    VK_STORE_REPO_SET_URL_IMPORTS = 1 << 5,
    VK_STORE_REPO_SET_STATUS_TOKEN = 1 << 6,  /**< NULL status_token writes NULL */
    VK_STORE_REPO_SET_STATUS_API = 1 << 7,    /**< NULL status_api_url writes NULL (the default) */
    VK_STORE_REPO_SET_FORK_SECRETS = 1 << 8,  /**< allow_fork_secrets */
    VK_STORE_REPO_SET_PROTECTED_REFS = 1 << 9 /**< NULL protected_refs: the default branch */
};

struct vk_store_repo_update {
    unsigned set; /**< VK_STORE_REPO_SET_* bits */
    const char *url;
    const char *provider;
    const char *webhook_secret;
    const char *workflow_glob;
    const char *default_branch;
    bool allow_url_imports;
    const char *status_token;
    const char *status_api_url;
    bool allow_fork_secrets;
    const char *protected_refs;
};

/** A cron schedule of a repository's workflow. */
struct vk_store_schedule {
    char id[VK_UUID_LEN];
    char repository_id[VK_UUID_LEN];
    const char *workflow_file;
    const char *cron;
    const char *timezone; /**< IANA name; "UTC" when the workflow gave none */
    int64_t next_fire_ms;
    int64_t last_fired_ms;
    int64_t created_at;
};

/**
 * Change the fields of repository `id` named in u->set (borrowed). Required fields (url,
 * provider, glob, branch) may not be set to NULL or "". Returns 0, VK_ENOTFOUND,
 * VK_EEXIST (the new url is taken in the tenant), VK_EINVAL, VK_EDB.
 */
int vk_store_repo_update(struct vk_store *store, const char *id,
                         const struct vk_store_repo_update *u, struct vk_err *err) VK_MUST_CHECK;

/**
 * Delete repository `id` and its schedules; its chains stay, without repository_id.
 * Returns 0, VK_ENOTFOUND, VK_EDB.
 */
int vk_store_repo_delete(struct vk_store *store, const char *id, struct vk_err *err) VK_MUST_CHECK;

/**
 * Record webhook delivery (`provider`, `delivery_id`) received at `now_ms`, unless it was
 * recorded before: one INSERT … ON CONFLICT DO NOTHING, so two concurrent deliveries of the
 * same id see exactly one "new". *seen is true when it was known already. About one call in
 * 64 also deletes deliveries older than VK_STORE_DELIVERY_KEEP_MS. Borrows the strings.
 * Returns 0, VK_EINVAL (empty or longer than VK_STORE_MAX_DELIVERY_ID), VK_EDB.
 */
int vk_store_delivery_seen(struct vk_store *store, const char *provider, const char *delivery_id,
                           int64_t now_ms, bool *seen, struct vk_err *err) VK_MUST_CHECK;

/**
 * Forget a delivery (when handling it failed, so that the provider's retry is handled).
 * Returns 0 (also when it was not recorded) or VK_EDB.
 */
/** Whether the delivery key `delivery_id` of `provider` is remembered (a read: nothing is
 * recorded). Returns 0, VK_EINVAL, VK_EDB. */
int vk_store_delivery_known(struct vk_store *store, const char *provider, const char *delivery_id,
                            bool *known, struct vk_err *err) VK_MUST_CHECK;

int vk_store_delivery_forget(struct vk_store *store, const char *provider, const char *delivery_id,
                             struct vk_err *err) VK_MUST_CHECK;

/** Delete deliveries received before `before_ms`; *n (may be NULL) gets the count. */
int vk_store_delivery_prune(struct vk_store *store, int64_t before_ms, int64_t *n,
                            struct vk_err *err) VK_MUST_CHECK;

/**
 * Replace the schedules of repository `repo_id` by the `n` given ones (borrowed; their
 * id, repository_id and created_at are ignored), in one transaction: rows whose
 * (workflow_file, cron, timezone) is still wanted are KEPT as they are (their last and
 * next fire times survive a refresh); rows no longer wanted are deleted; new ones are
 * inserted with the given next_fire_ms and last_fired_ms (0: now_ms). Duplicates in
 * `items` count once. Returns 0, VK_ENOTFOUND (no such repository), VK_EINVAL,
 * VK_ETOOBIG (n over VK_STORE_MAX_SCHEDULES), VK_EDB.
 */
int vk_store_schedules_replace(struct vk_store *store, const char *repo_id,
                               const struct vk_store_schedule *items, size_t n, int64_t now_ms,
                               struct vk_err *err) VK_MUST_CHECK;

/**
 * List schedules ordered by next_fire_ms then id: of repository `repo_id`, or of every
 * repository when it is NULL or ""; only those with next_fire_ms <= `due_before_ms` when
 * that is not 0. At most `limit` rows (0: VK_STORE_MAX_SCHEDULES). *out is an array of
 * *n schedules in `pool`. Returns 0 or VK_EDB.
 */
int vk_store_schedules_list(struct vk_store *store, const char *repo_id, int64_t due_before_ms,
                            int limit, struct vk_pool *pool, struct vk_store_schedule **out,
                            size_t *n, struct vk_err *err) VK_MUST_CHECK;

/**
 * Claim slot `slot_ms` of schedule `id`: UPDATE schedules SET last_fired_ms = slot,
 * next_fire_ms = next WHERE id = $id AND last_fired_ms < slot. *claimed is true only for
 * the one caller whose UPDATE changed the row: that caller starts the chain.
 * Returns 0 or VK_EDB (a missing row is simply not claimed).
 */
int vk_store_schedule_claim(struct vk_store *store, const char *id, int64_t slot_ms,
                            int64_t next_ms, bool *claimed, struct vk_err *err) VK_MUST_CHECK;

/**
 * Move the next fire time of schedule `id` (when nothing was due, e.g. a stale plan) without
 * touching last_fired_ms. Returns 0 or VK_EDB.
 */
int vk_store_schedule_set_next(struct vk_store *store, const char *id, int64_t next_ms,
                               struct vk_err *err) VK_MUST_CHECK;

/* ---------------------------------------------------------------- Trigger requests */

/*
 * Work for the trigger service (schema version 3): everything that needs git on the
 * server (a verified webhook, a manual run, a listing of a repository's workflows, a
 * refresh of its schedules) is a row here, written by whoever received the request (an
 * HTTP thread: one INSERT, no git) and handled by a trigger service thread of any
 * replica, which claims it (PostgreSQL: FOR UPDATE SKIP LOCKED) and records the outcome
 * as an HTTP status and a JSON body. A request claimed by a handler that died (claimed
 * before `stale_before_ms`) is claimed again; chains it made already are not made twice
 * (vk_store_chain.trigger_request_id). Finished requests are kept VK_STORE_TREQ_KEEP_MS.
 */

#define VK_STORE_TREQ_KEEP_MS (7LL * 24 * 3600 * 1000) /**< finished requests kept 7 days */
#define VK_STORE_TREQ_MAX_BODY (1u << 20)              /**< bytes of a webhook body */
#define VK_STORE_TREQ_MAX_PARAMS (512u * 1024u)        /**< bytes of params / result JSON */

enum vk_store_treq_kind {
    VK_STORE_TREQ_WEBHOOK = 0, /**< a verified webhook: provider, params {"headers"}, body */
    VK_STORE_TREQ_MANUAL,      /**< a manual run: params {branch, commit, workflow, inputs} */
    VK_STORE_TREQ_WORKFLOWS,   /**< list the workflows of a branch: params {branch} */
    VK_STORE_TREQ_REFRESH,     /**< refresh the schedules from the default branch */
    VK_STORE_TREQ_FOLLOW       /**< a chain of a repository ended: start the workflows whose
                                *   `chain` trigger follows it; params {chain_id, status} */
};

enum vk_store_treq_status { VK_STORE_TREQ_QUEUED = 0, VK_STORE_TREQ_RUNNING, VK_STORE_TREQ_DONE };

/** A trigger request. Strings NULL when absent; see the conventions at the top. */
struct vk_store_treq {
    char id[VK_UUID_LEN];
    char tenant_id[VK_UUID_LEN];
    char repository_id[VK_UUID_LEN];
    enum vk_store_treq_kind kind;
    const char *provider;    /**< webhooks: the provider name */
    const char *delivery_id; /**< webhooks: the delivery id, when the provider sent one */
    const char *dedup[2];    /**< webhooks (create only, may be NULL): keys remembered as
                              *   delivered (webhook_deliveries of `provider`) in the same
                              *   transaction as the request, so that a process dying in
                              *   between leaves neither; a key remembered already makes
                              *   vk_store_treq_create() queue nothing and return VK_EEXIST */
    const char *params;      /**< JSON object text, at most VK_STORE_TREQ_MAX_PARAMS */
    const void *body;        /**< webhooks: the raw body (not loaded by list/get; see claim) */
    size_t body_len;
    const char *trace_id; /**< W3C traceparent the request's chains hang from */
    enum vk_store_treq_status status;
    int attempts; /**< times it was claimed */
    const char *claimed_by;
    int64_t claimed_at;
    int result_status;  /**< when done: an HTTP status (200, 201, 400, 404, 502...) */
    const char *result; /**< when done: JSON object text */
    int64_t created_at, finished_at;
};

const char *vk_store_treq_kind_name(enum vk_store_treq_kind k);
const char *vk_store_treq_status_name(enum vk_store_treq_status s);

/**
 * Inside `tx` (the transaction that gives chain `chain_id` its final `status`, so that
 * a crash loses neither or both): queue a VK_STORE_TREQ_FOLLOW request for it when the
 * chain belongs to a repository (nothing otherwise). Returns 0, VK_EDB.
 */
int vk_store_tx_treq_follow(struct vk_store_tx *tx, const char *chain_id, const char *status,
                            int64_t now_ms, struct vk_err *err) VK_MUST_CHECK;

/**
 * Queue a request: rq's kind, tenant_id, repository_id (may be ""), provider,
 * delivery_id, params, body and trace_id are stored (borrowed); the new id and
 * created_at (`now_ms`) are written back; status becomes queued. Returns 0, VK_EINVAL,
 * VK_ETOOBIG (body or params over their caps), VK_EDB.
 */
int vk_store_treq_create(struct vk_store *store, struct vk_store_treq *rq, int64_t now_ms,
                         struct vk_err *err) VK_MUST_CHECK;

/** The prefix of a replica's liveness lease name (the orchestrator renews
 * VK_STORE_REPLICA_LEASE + its holder name while the replica lives). */
#define VK_STORE_REPLICA_LEASE "replica:"

/**
 * Claim the oldest queued request, or a running one whose handler died, for `claimer`
 * (borrowed, an id of the handling thread) of `replica` (borrowed, the claiming replica's
 * lease holder name, or NULL in a single process): it becomes running, attempts + 1.
 * A running request's handler died when it was claimed before `stale_before_ms`, or by a
 * replica whose lease VK_STORE_REPLICA_LEASE + replica expired before `now_ms` (a replica
 * killed with -9: taken over within the lease's ttl, not after stale_before_ms). *out
 * (strings and body in `pool`) is the claimed row, body included. Returns 0, VK_ENOTFOUND
 * when there is nothing to do, VK_EDB.
 */
int vk_store_treq_claim(struct vk_store *store, const char *claimer, const char *replica,
                        int64_t now_ms, int64_t stale_before_ms, struct vk_pool *pool,
                        struct vk_store_treq *out, struct vk_err *err) VK_MUST_CHECK;

/**
 * Record the outcome of request `id`, fenced by `claimer` (the claim it holds): done,
 * `result_status`, `result` (JSON text, borrowed), finished_at. Returns 0, VK_ENOTFOUND,
 * VK_ECONFLICT (claimed by another handler since: its outcome wins), VK_ETOOBIG, VK_EDB.
 */
int vk_store_treq_finish(struct vk_store *store, const char *id, const char *claimer,
                         int result_status, const char *result, int64_t now_ms,
                         struct vk_err *err) VK_MUST_CHECK;

/** Get request `id` (without its body) into *out (strings in `pool`). 0, VK_ENOTFOUND, VK_EDB. */
int vk_store_treq_get(struct vk_store *store, const char *id, struct vk_pool *pool,
                      struct vk_store_treq *out, struct vk_err *err) VK_MUST_CHECK;

/** Delete requests finished before `before_ms`; *n (may be NULL) gets the count. */
int vk_store_treq_prune(struct vk_store *store, int64_t before_ms, int64_t *n,
                        struct vk_err *err) VK_MUST_CHECK;

/* ---------------------------------------------------------------- Commit statuses */

/*
 * The commit-status outbox (schema version 4). A trigger on the chains table writes, in
 * the same transaction as every change of a chain's status (its creation included), the
 * chain's row here: one row per chain holding its newest status and `seq`, the number of
 * changes so far (so a reporter that fell behind reports only the latest state). Only
 * chains with a repository, a commit, and a repository that has a status token and a
 * provider with a status API (github, gitlab, gitea, bitbucket) get a row.
 *
 * A reporter claims due rows (vk_store_status_claim(); PostgreSQL skips rows another
 * replica holds), posts them, and ends each claim with vk_store_status_done() (reported,
 * or given up) or vk_store_status_retry() (try again later). Both are fenced by the claim
 * and by `seq`: when the chain changed meanwhile, the row stays for its newer status and
 * is due at once. A claim older than `stale_before_ms` (its reporter died) is taken over:
 * a status is reported at least once, and by one reporter at a time.
 */

#define VK_STORE_STATUS_MAX_CLAIM 64 /**< rows in one claim */

/** A claimed status report: the outbox row, its chain and its repository. */
struct vk_store_status_job {
    char chain_id[VK_UUID_LEN];
    int64_t seq;                       /**< fences done / retry */
    enum vk_store_chain_status status; /**< the status to report */
    int attempts;                      /**< failed posts of this status so far */
    int64_t first_failed_at;           /**< when the first post of this status failed, or 0 */
    const char *commit_sha;
    const char *source_file; /**< may be NULL */
    const char *definition;  /**< the workflow text, may be NULL */
    const char *error;       /**< the chain's error, may be NULL */
    int64_t created_at, started_at, finished_at;
    /* The chain's repository now; all NULL when it was deleted (or lost its token). */
    const char *repo_url;
    const char *provider;
    const char *status_token;
    const char *status_api_url;
};

/**
 * Claim up to `max` (1..VK_STORE_STATUS_MAX_CLAIM) outbox rows that are due (next attempt
 * at or before `now_ms`) and not claimed, or claimed before `stale_before_ms`, for
 * `claimer` (borrowed: an id unique to the calling thread). *jobs is an array of *n jobs
 * in `pool` (*n may be 0). Returns 0, VK_EINVAL, VK_EDB.
 */
int vk_store_status_claim(struct vk_store *store, const char *claimer, int64_t now_ms,
                          int64_t stale_before_ms, int max, struct vk_pool *pool,
                          struct vk_store_status_job **jobs, size_t *n,
                          struct vk_err *err) VK_MUST_CHECK;

/**
 * End `claimer`'s claim of chain `chain_id`'s row: deleted when its seq is still `seq`
 * (that status was reported, or given up), else released for the newer status (*newer,
 * may be NULL, is then true). A claim taken over by another reporter is left alone.
 * Returns 0 or VK_EDB.
 */
int vk_store_status_done(struct vk_store *store, const char *chain_id, const char *claimer,
                         int64_t seq, bool *newer, struct vk_err *err) VK_MUST_CHECK;

/**
 * Release `claimer`'s claim of chain `chain_id`'s row for another try at `next_at_ms`:
 * attempts + 1, first_failed_at set when not yet (to `failed_at_ms`). When its seq is no
 * longer `seq` the row is only released (its newer status is due at once).
 * Returns 0 or VK_EDB.
 */
int vk_store_status_retry(struct vk_store *store, const char *chain_id, const char *claimer,
                          int64_t seq, int64_t next_at_ms, int64_t failed_at_ms,
                          struct vk_err *err) VK_MUST_CHECK;

/** The number of outbox rows (reports not yet done) into *n. Returns 0 or VK_EDB. */
int vk_store_status_backlog(struct vk_store *store, int64_t *n, struct vk_err *err) VK_MUST_CHECK;

#endif /* VULCAN_STORE_H */
