/*
 * store schema: numbered migrations applied at open time.
 *
 * The runner creates schema_migrations when missing, reads the highest applied version,
 * refuses a database newer than this binary (VK_EVERSION), and applies the missing
 * migrations inside one transaction, recording each. On PostgreSQL the whole run holds a
 * session advisory lock so that two servers starting at once do not race; on SQLite
 * BEGIN IMMEDIATE gives the same exclusion.
 *
 * Both backends store ids as TEXT, times as BIGINT milliseconds since the epoch (UTC),
 * booleans as INTEGER 0/1; only the blob type differs (BLOB / BYTEA).
 */
#include "store_int.h"

#include <stdio.h>
#include <string.h>

#define MIGRATION_LOCK_KEY "7240011"

struct migration {
    int version;
    const char *name;
    const char *sql; /* "BLOB" is rewritten to "BYTEA" for PostgreSQL */
};

/*
 * Migration 4: the commit-status outbox. Every change of a chain's status (its creation
 * included) upserts the chain's row in status_outbox in the same transaction, by a trigger
 * on chains, whatever code path made the change: nothing is lost on a crash. Only chains
 * of a repository with a status token and a provider that has a status API get a row; a
 * row holds the newest status only (seq counts the changes), so a reporter that falls
 * behind reports the latest state once (src/store/status.c, src/triggers/status*.c).
 */
#define STATUS_COLUMNS                                                                             \
    "ALTER TABLE repositories ADD COLUMN status_token TEXT;"                                       \
    "ALTER TABLE repositories ADD COLUMN status_api_url TEXT;"                                     \
    "CREATE TABLE status_outbox ("                                                                 \
    " chain_id TEXT PRIMARY KEY REFERENCES chains(id) ON DELETE CASCADE,"                          \
    " status TEXT NOT NULL, seq BIGINT NOT NULL DEFAULT 1, next_at BIGINT NOT NULL DEFAULT 0,"     \
    " attempts INTEGER NOT NULL DEFAULT 0, first_failed_at BIGINT, claimed_by TEXT,"               \
    " claimed_at BIGINT);"                                                                         \
    "CREATE INDEX status_outbox_due ON status_outbox (next_at, chain_id);"
#define STATUS_UPSERT                                                                              \
    "INSERT INTO status_outbox (chain_id, status) SELECT NEW.id, NEW.status FROM repositories r"   \
    " WHERE r.id = NEW.repository_id AND r.status_token IS NOT NULL"                               \
    " AND r.provider IN ('github', 'gitlab', 'gitea', 'bitbucket')"                                \
    " ON CONFLICT (chain_id) DO UPDATE SET status = excluded.status,"                              \
    " seq = status_outbox.seq + 1, next_at = 0, attempts = 0, first_failed_at = NULL;"
#define STATUS_SQLITE                                                                              \
    STATUS_COLUMNS                                                                                 \
    "CREATE TRIGGER chains_status_created AFTER INSERT ON chains"                                  \
    " WHEN NEW.repository_id IS NOT NULL AND NEW.commit_sha IS NOT NULL BEGIN " STATUS_UPSERT      \
    " END;"                                                                                        \
    "CREATE TRIGGER chains_status_changed AFTER UPDATE OF status ON chains"                        \
    " WHEN NEW.repository_id IS NOT NULL AND NEW.commit_sha IS NOT NULL"                           \
    " AND OLD.status <> NEW.status BEGIN " STATUS_UPSERT " END;"
#define STATUS_PG                                                                                  \
    STATUS_COLUMNS                                                                                 \
    "CREATE FUNCTION vulcan_status_outbox() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN"         \
    " IF NEW.repository_id IS NULL OR NEW.commit_sha IS NULL THEN RETURN NULL; END IF;"            \
    " IF TG_OP = 'UPDATE' AND OLD.status = NEW.status THEN RETURN NULL; END IF; " STATUS_UPSERT    \
    " RETURN NULL; END $f$;"                                                                       \
    "CREATE TRIGGER chains_status_outbox AFTER INSERT OR UPDATE OF status ON chains"               \
    " FOR EACH ROW EXECUTE FUNCTION vulcan_status_outbox();"

/* DESIGN §7. Tenants are the orgs (their `name` is the slug). A grant names exactly one
 * of a user and a team; a credential is found by the hash of its token only. */
#define IDENTITY_SQL                                                                               \
    "ALTER TABLE tenants ADD COLUMN display_name TEXT;"                                            \
    "ALTER TABLE tenants ADD COLUMN sso_only INTEGER NOT NULL DEFAULT 0;"                          \
    "CREATE TABLE users ("                                                                         \
    " id TEXT PRIMARY KEY, login TEXT NOT NULL UNIQUE, name TEXT, email TEXT,"                     \
    " source TEXT NOT NULL DEFAULT 'local', password_hash TEXT,"                                   \
    " site_admin INTEGER NOT NULL DEFAULT 0, disabled INTEGER NOT NULL DEFAULT 0,"                 \
    " created_at BIGINT NOT NULL);"                                                                \
    "CREATE TABLE teams ("                                                                         \
    " id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,"      \
    " name TEXT NOT NULL, parent_id TEXT REFERENCES teams(id) ON DELETE SET NULL,"                 \
    " created_at BIGINT NOT NULL, UNIQUE (tenant_id, name));"                                      \
    "CREATE INDEX teams_by_parent ON teams (parent_id);"                                           \
    "CREATE TABLE team_members ("                                                                  \
    " team_id TEXT NOT NULL REFERENCES teams(id) ON DELETE CASCADE,"                               \
    " user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,"                               \
    " PRIMARY KEY (team_id, user_id));"                                                            \
    "CREATE INDEX team_members_by_user ON team_members (user_id);"                                 \
    "CREATE TABLE grants ("                                                                        \
    " id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,"      \
    " user_id TEXT REFERENCES users(id) ON DELETE CASCADE,"                                        \
    " team_id TEXT REFERENCES teams(id) ON DELETE CASCADE,"                                        \
    " repository_id TEXT REFERENCES repositories(id) ON DELETE CASCADE,"                           \
    " role TEXT NOT NULL, created_at BIGINT NOT NULL,"                                             \
    " CHECK ((user_id IS NULL) <> (team_id IS NULL)));"                                            \
    "CREATE INDEX grants_by_user ON grants (user_id, tenant_id);"                                  \
    "CREATE INDEX grants_by_team ON grants (team_id, tenant_id);"                                  \
    "CREATE INDEX grants_by_tenant ON grants (tenant_id, created_at);"                             \
    "CREATE TABLE credentials ("                                                                   \
    " id TEXT PRIMARY KEY, kind TEXT NOT NULL, hash TEXT NOT NULL UNIQUE, name TEXT,"              \
    " user_id TEXT REFERENCES users(id) ON DELETE CASCADE,"                                        \
    " tenant_id TEXT REFERENCES tenants(id) ON DELETE CASCADE, worker_id TEXT,"                    \
    " fragment_id TEXT, attempt INTEGER NOT NULL DEFAULT 0, scopes INTEGER NOT NULL DEFAULT 0,"    \
    " groups_list TEXT, uses_left BIGINT NOT NULL DEFAULT -1, csrf TEXT,"                          \
    " idle_ms BIGINT NOT NULL DEFAULT 0, created_at BIGINT NOT NULL, expires_at BIGINT,"           \
    " last_used_at BIGINT, revoked_at BIGINT);"                                                    \
    "CREATE INDEX credentials_by_user ON credentials (user_id, kind, created_at);"                 \
    "CREATE INDEX credentials_by_tenant ON credentials (tenant_id, kind, created_at);"             \
    "CREATE INDEX credentials_by_fragment ON credentials (fragment_id) WHERE fragment_id IS NOT "  \
    "NULL;"                                                                                        \
    "CREATE INDEX credentials_by_worker ON credentials (worker_id) WHERE worker_id IS NOT NULL;"   \
    "CREATE TABLE login_failures ("                                                                \
    " key TEXT PRIMARY KEY, count BIGINT NOT NULL, window_start BIGINT NOT NULL);"                 \
    "UPDATE workers SET tenant_id = (SELECT id FROM tenants WHERE name = 'default')"               \
    " WHERE tenant_id IS NULL;"

/* DESIGN §8. A secret lives at one scope: the org (scope_id ''), a repository or (later) an
 * environment (scope_id its id). `value` is the AES-256-GCM ciphertext and tag under the
 * row's data key, `wrapped_key` that data key wrapped by the key-encryption key of
 * generation `key_version`; a provider-backed secret has `provider` and `provider_key`
 * instead of a value. secret_keys holds each key generation's check value (never a key).
 * Chains remember whether they were made for a pull request from a fork. */
#define SECRETS_SQL                                                                                \
    "CREATE TABLE secrets ("                                                                       \
    " id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id) ON DELETE CASCADE,"      \
    " scope TEXT NOT NULL CHECK (scope IN ('org', 'repository', 'environment')),"                  \
    " scope_id TEXT NOT NULL DEFAULT '',"                                                          \
    " repository_id TEXT REFERENCES repositories(id) ON DELETE CASCADE, environment TEXT,"         \
    " name TEXT NOT NULL, value BLOB, nonce BLOB, wrapped_key BLOB,"                               \
    " version BIGINT NOT NULL DEFAULT 1, key_version INTEGER NOT NULL DEFAULT 1,"                  \
    " protected INTEGER NOT NULL DEFAULT 0, provider TEXT, provider_key TEXT,"                     \
    " created_by TEXT, created_at BIGINT NOT NULL, updated_by TEXT, updated_at BIGINT NOT NULL,"   \
    " UNIQUE (tenant_id, scope, scope_id, name),"                                                  \
    " CHECK ((value IS NULL) = (provider IS NOT NULL)));"                                          \
    "CREATE INDEX secrets_by_repo ON secrets (repository_id) WHERE repository_id IS NOT NULL;"     \
    "CREATE TABLE secret_keys ("                                                                   \
    " version INTEGER PRIMARY KEY, check_value BLOB NOT NULL, created_at BIGINT NOT NULL);"        \
    "ALTER TABLE repositories ADD COLUMN allow_fork_secrets INTEGER NOT NULL DEFAULT 0;"           \
    "ALTER TABLE repositories ADD COLUMN protected_refs TEXT;"                                     \
    "ALTER TABLE chains ADD COLUMN from_fork INTEGER NOT NULL DEFAULT 0;"                          \
    "ALTER TABLE fragments ADD COLUMN secrets_json TEXT"

/* DESIGN §9: the audit log, one hash chain per org (src/store/audit.c), and the signed
 * checkpoints of each chain's head. No foreign key: records outlive their org. Rows are
 * never updated or deleted (the triggers refuse it); `vulcan audit verify` proves it. */
#define AUDIT_TABLES_SQL                                                                           \
    "CREATE TABLE audit_log ("                                                                     \
    " tenant_id TEXT NOT NULL, seq BIGINT NOT NULL, at BIGINT NOT NULL, actor TEXT NOT NULL,"      \
    " source TEXT, action TEXT NOT NULL, target TEXT, outcome TEXT NOT NULL, details TEXT,"        \
    " request_id TEXT, trace_id TEXT, prev_hash TEXT NOT NULL, hash TEXT NOT NULL,"                \
    " PRIMARY KEY (tenant_id, seq));"                                                              \
    "CREATE INDEX audit_log_by_at ON audit_log (tenant_id, at);"                                   \
    "CREATE TABLE audit_checkpoints ("                                                             \
    " tenant_id TEXT NOT NULL, seq BIGINT NOT NULL, at BIGINT NOT NULL, hash TEXT NOT NULL,"       \
    " key_id TEXT NOT NULL, signature TEXT NOT NULL, PRIMARY KEY (tenant_id, seq));"
#define AUDIT_SQLITE_TRIGGER(table, op)                                                            \
    "CREATE TRIGGER " table "_no_" op " BEFORE " op " ON " table                                   \
    " BEGIN SELECT RAISE(ABORT, 'audit records cannot be changed or deleted'); END;"
#define AUDIT_SQL                                                                                  \
    AUDIT_TABLES_SQL                                                                               \
    AUDIT_SQLITE_TRIGGER("audit_log", "UPDATE")                                                    \
    AUDIT_SQLITE_TRIGGER("audit_log", "DELETE")                                                    \
    AUDIT_SQLITE_TRIGGER("audit_checkpoints", "UPDATE")                                            \
    AUDIT_SQLITE_TRIGGER("audit_checkpoints", "DELETE")
#define AUDIT_PG_TRIGGER(table)                                                                    \
    "CREATE TRIGGER " table "_immutable BEFORE UPDATE OR DELETE ON " table                         \
    " FOR EACH ROW EXECUTE FUNCTION vulcan_audit_immutable();"                                     \
    "CREATE TRIGGER " table "_no_truncate BEFORE TRUNCATE ON " table                               \
    " FOR EACH STATEMENT EXECUTE FUNCTION vulcan_audit_immutable();"
#define AUDIT_PG                                                                                   \
    AUDIT_TABLES_SQL                                                                               \
    "CREATE FUNCTION vulcan_audit_immutable() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN"       \
    " RAISE EXCEPTION 'audit records cannot be changed or deleted'; END $f$;" AUDIT_PG_TRIGGER(    \
        "audit_log") AUDIT_PG_TRIGGER("audit_checkpoints")

static const struct migration migrations[] = {
    {1, "initial schema",
     "CREATE TABLE tenants ("
     " id TEXT PRIMARY KEY, name TEXT NOT NULL UNIQUE, created_at BIGINT NOT NULL);"
     "CREATE TABLE repositories ("
     " id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id),"
     " url TEXT NOT NULL, provider TEXT NOT NULL, webhook_secret TEXT,"
     " workflow_glob TEXT NOT NULL, default_branch TEXT NOT NULL,"
     " allow_url_imports INTEGER NOT NULL DEFAULT 0, created_at BIGINT NOT NULL,"
     " UNIQUE (tenant_id, url));"
     "CREATE INDEX repositories_by_url ON repositories (url);"
     "CREATE TABLE chains ("
     " id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id),"
     " repository_id TEXT REFERENCES repositories(id) ON DELETE SET NULL,"
     " source_file TEXT, repository_url TEXT, commit_sha TEXT, branch TEXT,"
     " trigger_type TEXT NOT NULL, trigger_ref TEXT, pr_number BIGINT, tag TEXT,"
     " default_machine TEXT NOT NULL, env_json TEXT, definition TEXT,"
     " priority INTEGER NOT NULL DEFAULT 0, status TEXT NOT NULL, error TEXT, trace_id TEXT,"
     " created_at BIGINT NOT NULL, started_at BIGINT, finished_at BIGINT);"
     "CREATE INDEX chains_by_created ON chains (created_at, id);"
     "CREATE INDEX chains_by_repo ON chains (repository_id, created_at);"
     "CREATE INDEX chains_by_status ON chains (status, created_at);"
     "CREATE TABLE fragments ("
     " id TEXT PRIMARY KEY, chain_id TEXT NOT NULL REFERENCES chains(id) ON DELETE CASCADE,"
     " parent_id TEXT REFERENCES fragments(id) ON DELETE CASCADE,"
     " sequence INTEGER NOT NULL, position INTEGER NOT NULL, type TEXT NOT NULL,"
     " is_parallel INTEGER NOT NULL DEFAULT 0, name TEXT, run_script TEXT,"
     " machine TEXT NOT NULL, condition TEXT, source_url TEXT,"
     " timeout_ms BIGINT NOT NULL DEFAULT 0, retries INTEGER NOT NULL DEFAULT 0,"
     " retries_used INTEGER NOT NULL DEFAULT 0, status TEXT NOT NULL,"
     " attempt INTEGER NOT NULL DEFAULT 1, max_attempts INTEGER NOT NULL DEFAULT 3,"
     " handbacks INTEGER NOT NULL DEFAULT 0, cancel_requested INTEGER NOT NULL DEFAULT 0,"
     " priority INTEGER NOT NULL DEFAULT 0, worker_id TEXT, ready_at BIGINT,"
     " started_at BIGINT, finished_at BIGINT, exit_code INTEGER, error TEXT, env_json TEXT);"
     "CREATE INDEX fragments_by_chain ON fragments (chain_id, position);"
     "CREATE INDEX fragments_by_parent ON fragments (parent_id, sequence);"
     "CREATE INDEX fragments_ready ON fragments (machine, priority DESC, ready_at, id)"
     " WHERE status = 'ready';"
     "CREATE INDEX fragments_running ON fragments (worker_id) WHERE status = 'running';"
     "CREATE INDEX fragments_pending ON fragments (machine) WHERE status = 'pending';"
     "CREATE TABLE workers ("
     " id TEXT PRIMARY KEY, tenant_id TEXT, name TEXT NOT NULL, version TEXT,"
     " status TEXT NOT NULL, last_heartbeat BIGINT NOT NULL, registered_at BIGINT NOT NULL);"
     "CREATE INDEX workers_by_status ON workers (status, last_heartbeat);"
     "CREATE TABLE worker_groups ("
     " worker_id TEXT NOT NULL REFERENCES workers(id) ON DELETE CASCADE,"
     " machine TEXT NOT NULL, PRIMARY KEY (worker_id, machine));"
     "CREATE INDEX worker_groups_by_machine ON worker_groups (machine);"
     "CREATE TABLE log_chunks ("
     " fragment_id TEXT NOT NULL REFERENCES fragments(id) ON DELETE CASCADE,"
     " attempt INTEGER NOT NULL, off BIGINT NOT NULL, data BLOB NOT NULL,"
     " PRIMARY KEY (fragment_id, attempt, off));"},
    {2, "triggers: webhook deliveries and schedules",
     "CREATE TABLE webhook_deliveries ("
     " provider TEXT NOT NULL, delivery_id TEXT NOT NULL, received_at BIGINT NOT NULL,"
     " PRIMARY KEY (provider, delivery_id));"
     "CREATE INDEX webhook_deliveries_by_time ON webhook_deliveries (received_at);"
     "CREATE TABLE schedules ("
     " id TEXT PRIMARY KEY,"
     " repository_id TEXT NOT NULL REFERENCES repositories(id) ON DELETE CASCADE,"
     " workflow_file TEXT NOT NULL, cron TEXT NOT NULL, timezone TEXT NOT NULL,"
     " next_fire_ms BIGINT NOT NULL, last_fired_ms BIGINT NOT NULL, created_at BIGINT NOT NULL,"
     " UNIQUE (repository_id, workflow_file, cron, timezone));"
     "CREATE INDEX schedules_due ON schedules (next_fire_ms);"},
    {3, "trigger requests: work for the trigger service",
     "CREATE TABLE trigger_requests ("
     " id TEXT PRIMARY KEY, tenant_id TEXT NOT NULL REFERENCES tenants(id),"
     " repository_id TEXT REFERENCES repositories(id) ON DELETE CASCADE,"
     " kind TEXT NOT NULL, provider TEXT, delivery_id TEXT, params TEXT, body BLOB,"
     " trace_id TEXT, status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0,"
     " claimed_by TEXT, claimed_at BIGINT, result_status INTEGER, result TEXT,"
     " created_at BIGINT NOT NULL, finished_at BIGINT);"
     "CREATE INDEX trigger_requests_queue ON trigger_requests (status, created_at, id);"
     "CREATE INDEX trigger_requests_by_time ON trigger_requests (created_at);"
     "ALTER TABLE chains ADD COLUMN trigger_request_id TEXT;"
     "CREATE UNIQUE INDEX chains_by_trigger_request ON chains (trigger_request_id, source_file);"},
    {4, "commit statuses: repository tokens and the status outbox", STATUS_SQLITE},
    {5, "queue timeout per fragment",
     "ALTER TABLE fragments ADD COLUMN queue_timeout_ms BIGINT NOT NULL DEFAULT 0"},
    {6, "identity: users, teams, grants, credentials", IDENTITY_SQL},
    {7, "the head commit's message and author on chains",
     "ALTER TABLE chains ADD COLUMN commit_message TEXT;"
     "ALTER TABLE chains ADD COLUMN commit_author TEXT"},
    {8, "the SSO subject of users",
     "ALTER TABLE users ADD COLUMN subject TEXT;"
     "CREATE UNIQUE INDEX users_by_subject ON users (source, subject)"},
    /* A job token is the running attempt's own column: the claim sets it, the end of the
     * attempt clears it, a check is one indexed read; no credential row per attempt. The
     * tokens of attempts running across the upgrade move over. */
    {9, "job tokens on the fragment they run",
     "ALTER TABLE fragments ADD COLUMN job_hash TEXT;"
     "UPDATE fragments SET job_hash = (SELECT c.hash FROM credentials c WHERE c.kind = 'job'"
     " AND c.fragment_id = fragments.id AND c.attempt = fragments.attempt"
     " AND c.worker_id = fragments.worker_id AND c.revoked_at IS NULL) WHERE status = 'running';"
     "DELETE FROM credentials WHERE kind = 'job';"
     "CREATE UNIQUE INDEX fragments_by_job_hash ON fragments (job_hash) WHERE job_hash IS NOT "
     "NULL"},
    {10, "failure policies: max-parallel, fail-fast, when, allow-failure",
     "ALTER TABLE fragments ADD COLUMN max_parallel INTEGER NOT NULL DEFAULT 0;"
     "ALTER TABLE fragments ADD COLUMN fail_fast INTEGER NOT NULL DEFAULT 1;"
     "ALTER TABLE fragments ADD COLUMN run_when INTEGER NOT NULL DEFAULT 0;"
     "ALTER TABLE fragments ADD COLUMN allow_failure INTEGER NOT NULL DEFAULT 0"},
    {11, "secrets: the store, key check values, exposure settings", SECRETS_SQL},
    /* `needs` (issue 17): a counter of unmet needs per fragment and the edges, indexed by
     * the needed fragment, so a result lowers its dependents' counters without a scan. */
    {12, "needs: unmet-needs counters, the needs edges, outputs",
     "ALTER TABLE fragments ADD COLUMN needs_json TEXT;"
     "ALTER TABLE fragments ADD COLUMN unmet_needs INTEGER NOT NULL DEFAULT 0;"
     "ALTER TABLE fragments ADD COLUMN needs_wait INTEGER NOT NULL DEFAULT 0;"
     "ALTER TABLE fragments ADD COLUMN needs_env_json TEXT;"
     "ALTER TABLE fragments ADD COLUMN outputs_json TEXT;"
     "CREATE TABLE fragment_needs ("
     " need_id TEXT NOT NULL REFERENCES fragments(id) ON DELETE CASCADE,"
     " fragment_id TEXT NOT NULL REFERENCES fragments(id) ON DELETE CASCADE,"
     " chain_id TEXT NOT NULL REFERENCES chains(id) ON DELETE CASCADE,"
     " ord INTEGER NOT NULL, done INTEGER NOT NULL DEFAULT 0,"
     " PRIMARY KEY (need_id, fragment_id));"
     "CREATE INDEX fragment_needs_by_fragment ON fragment_needs (fragment_id, ord);"
     "CREATE INDEX fragment_needs_by_chain ON fragment_needs (chain_id) WHERE done = 0"},
    /* Concurrency groups (src/store/concurrency.c): the group as shown and its key (org,
     * repository and group, so a group never crosses them); on fragments also the key of
     * their chain's group, so a claim asks one index whether another chain of the group
     * still runs a script (a cancelled chain until its worker has stopped it). */
    {14, "concurrency groups of chains and fragments",
     "ALTER TABLE chains ADD COLUMN concurrency_group TEXT;"
     "ALTER TABLE chains ADD COLUMN concurrency_key TEXT;"
     "ALTER TABLE chains ADD COLUMN concurrency_cancel INTEGER NOT NULL DEFAULT 0;"
     "ALTER TABLE fragments ADD COLUMN concurrency_group TEXT;"
     "ALTER TABLE fragments ADD COLUMN concurrency_key TEXT;"
     "ALTER TABLE fragments ADD COLUMN concurrency_cancel INTEGER NOT NULL DEFAULT 0;"
     "ALTER TABLE fragments ADD COLUMN chain_concurrency_key TEXT;"
     "CREATE INDEX chains_by_concurrency ON chains (concurrency_key, status, created_at, id)"
     " WHERE concurrency_key IS NOT NULL;"
     "CREATE INDEX fragments_by_concurrency ON fragments (concurrency_key, status, ready_at, id)"
     " WHERE concurrency_key IS NOT NULL;"
     "CREATE INDEX fragments_by_chain_concurrency ON fragments (chain_concurrency_key, status)"
     " WHERE chain_concurrency_key IS NOT NULL"},
    /* 12-14 are taken by needs/outputs, `with` and chain triggers, concurrency groups. */
    {15, "matrix metadata on fragments: the matrix group, each copy's combination",
     "ALTER TABLE fragments ADD COLUMN is_matrix INTEGER NOT NULL DEFAULT 0;"
     "ALTER TABLE fragments ADD COLUMN matrix_values TEXT"},
    /* DESIGN §13: who does the work one replica does for all (reaper, cron), until when. */
    {18, "leases of the singletons",
     "CREATE TABLE leases ("
     " name TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_at BIGINT NOT NULL,"
     " acquired_at BIGINT NOT NULL, changes BIGINT NOT NULL DEFAULT 0)"},
    /* A trigger request claimed by a replica killed with -9 is taken over once that
     * replica's liveness lease expired (requests.c), not after VK_TRIGGERS_STALE_MS. */
    {19, "trigger requests: the replica that claimed each",
     "ALTER TABLE trigger_requests ADD COLUMN replica TEXT"},
    {20, "the audit log: hash-chained records and signed checkpoints", AUDIT_SQL},
};

/* Migrations whose PostgreSQL text differs beyond BLOB (triggers are written differently). */
static const struct migration pg_migrations[] = {
    {4, "commit statuses: repository tokens and the status outbox", STATUS_PG},
    {20, "the audit log: hash-chained records and signed checkpoints", AUDIT_PG},
};

/* The text of migration `m` for the store's dialect. */
static const char *migration_sql(const struct vk_store *s, const struct migration *m)
{
    for (size_t i = 0; s->dialect == VK__PG && i < VK_ARRAY_LEN(pg_migrations); i++)
        if (pg_migrations[i].version == m->version)
            return pg_migrations[i].sql;
    return m->sql;
}

/* Returns owned: `sql` with BLOB replaced by BYTEA for PostgreSQL (or a plain copy). */
static char *dialect_sql(struct vk_store *s, const char *sql)
{
    size_t n = strlen(sql);
    char *out = vk_mem_xalloc(n * 2 + 1);
    char *o = out;
    for (const char *p = sql; *p;) {
        if (s->dialect == VK__PG && strncmp(p, "BLOB", 4) == 0) {
            memcpy(o, "BYTEA", 5);
            o += 5;
            p += 4;
        } else {
            *o++ = *p++;
        }
    }
    *o = '\0';
    return out;
}

static int apply(struct vk_store *s, struct vk__conn *c, struct vk_err *err)
{
    int rc = s->ops->begin(c, true, err);
    if (rc)
        return rc;
    rc = s->ops->exec_script(c,
                             "CREATE TABLE IF NOT EXISTS schema_migrations ("
                             " version INTEGER PRIMARY KEY, name TEXT NOT NULL,"
                             " applied_at BIGINT NOT NULL)",
                             err);
    if (rc)
        goto out;
    int64_t cur = 0;
    rc = vk__query_int(c, VK__STMT_NONE, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                       NULL, 0, &cur, err);
    if (rc)
        goto out;
    if (cur > VK_STORE_SCHEMA_VERSION) {
        rc = vk_err_set(err, VK_EVERSION,
                        "database schema version %lld is newer than this binary supports (%d): "
                        "upgrade vulcan",
                        (long long)cur, VK_STORE_SCHEMA_VERSION);
        goto out;
    }
    for (size_t i = 0; i < VK_ARRAY_LEN(migrations); i++) {
        const struct migration *m = &migrations[i];
        /* Applied or not by its own row, not by the highest: a migration numbered below
         * one applied already (branches that added migrations side by side) still runs. */
        struct vk__param q[] = {vk__int(m->version)};
        int64_t done = 0;
        rc = vk__query_int(c, VK__STMT_NONE,
                           "SELECT COUNT(*) FROM schema_migrations WHERE version = $1", q, 1, &done,
                           err);
        if (rc)
            goto out;
        if (done)
            continue;
        char *sql = dialect_sql(s, migration_sql(s, m));
        rc = s->ops->exec_script(c, sql, err);
        vk_mem_free(sql);
        if (rc) {
            char why[sizeof(err->msg)];
            snprintf(why, sizeof(why), "%s", err ? err->msg : "");
            vk_err_set(err, rc, "migration %d (%s) failed: %s", m->version, m->name, why);
            goto out;
        }
        struct vk__param p[] = {vk__int(m->version), vk__text(m->name), vk__int(vk_time_now_ms())};
        rc = vk__exec(c, VK__STMT_NONE,
                      "INSERT INTO schema_migrations (version, name, applied_at)"
                      " VALUES ($1, $2, $3)",
                      p, 3, NULL, err);
        if (rc)
            goto out;
    }
out:
    if (rc == 0)
        return s->ops->commit(c, err);
    s->ops->rollback(c);
    return rc;
}

int vk__store_migrate(struct vk_store *s, struct vk_err *err)
{
    struct vk__conn *c = NULL;
    int rc = vk__store_conn_get(s, &c, err);
    if (rc)
        return rc;
    if (s->dialect == VK__PG) {
        rc = s->ops->exec_script(c, "SELECT pg_advisory_lock(" MIGRATION_LOCK_KEY ")", err);
        if (rc)
            goto out;
    }
    rc = apply(s, c, err);
    if (s->dialect == VK__PG)
        (void)s->ops->exec_script(c, "SELECT pg_advisory_unlock(" MIGRATION_LOCK_KEY ")", NULL);
out:
    vk__store_conn_put(s, c);
    return rc;
}
