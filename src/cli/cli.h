/*
 * The `vulcan` command: private interface between main.c and the cmd_*.c files.
 * Each subcommand is `int vk__cli_<name>(int argc, char **argv)`, where argv[0]
 * is the subcommand's name; it returns the process exit status (0 success,
 * 1 failure of the thing asked, 2 bad usage) and handles its own --help.
 */
#ifndef VULCAN_CLI_H
#define VULCAN_CLI_H

#include "vulcan/auth.h"
#include "vulcan/http.h"
#include "vulcan/util.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

typedef int vk_cli_fn(int argc, char **argv);

struct vk_cli_cmd {
    const char *name;
    const char *summary;
    vk_cli_fn *fn;
};

/* Subcommands (one file each). Add a line here and in main.c's table. */
vk_cli_fn vk__cli_kdl;
vk_cli_fn vk__cli_parse;
vk_cli_fn vk__cli_worker;
vk_cli_fn vk__cli_run;
vk_cli_fn vk__cli_server;
vk_cli_fn vk__cli_submit;
vk_cli_fn vk__cli_repos;           /* cmd_repos.c */
vk_cli_fn vk__cli_trigger;         /* cmd_trigger.c */
vk_cli_fn vk__cli_chains;          /* cmd_chains.c */
vk_cli_fn vk__cli_logs;            /* cmd_logs.c */
vk_cli_fn vk__cli_workers;         /* cmd_workers.c */
vk_cli_fn vk__cli_admin;           /* cmd_admin.c */
vk_cli_fn vk__cli_whoami;          /* cmd_identity.c */
vk_cli_fn vk__cli_tokens;          /* cmd_identity.c */
vk_cli_fn vk__cli_users;           /* cmd_identity.c */
vk_cli_fn vk__cli_orgs;            /* cmd_identity.c */
vk_cli_fn vk__cli_teams;           /* cmd_identity.c */
vk_cli_fn vk__cli_grants;          /* cmd_identity.c */
vk_cli_fn vk__cli_regtokens;       /* cmd_identity.c: registration-tokens */
vk_cli_fn vk__cli_login;           /* cmd_login.c */
vk_cli_fn vk__cli_logout;          /* cmd_login.c */
vk_cli_fn vk__cli_secret_provider; /* cmd_secret_provider.c */
vk_cli_fn vk__cli_secrets;         /* cmd_secrets.c */

/* `vulcan admin rotate-secrets-key` (cmd_secrets.c, called by cmd_admin.c). */
vk_cli_fn vk__cli_rotate_secrets_key;
/* `vulcan audit` and `vulcan admin rotate-audit-key` (cmd_audit.c). */
vk_cli_fn vk__cli_audit;
vk_cli_fn vk__cli_rotate_audit_key;
/* `vulcan admin backup` and `vulcan admin restore` (cmd_backup.c); argv[0] is the subcommand. */
vk_cli_fn vk__cli_admin_backup;
vk_cli_fn vk__cli_admin_restore;

struct vk_store;
struct vk_audit;
struct vk_audit_key;
/** The audit key file (`key_file`, else DATA_DIR/audit.key) and its keyring (KEY.pub). */
void vk__cli_audit_paths(const char *data_dir, const char *key_file, char *key, size_t kcap,
                         char *ring, size_t rcap);
/**
 * The server's audit recorder: load (or make) the audit key and start a recorder on `store`
 * that signs a checkpoint every `every` records and copies each record to `copy_file` and
 * `copy_syslog` (NULL: none). Returns 0, or 2 after printing why.
 */
int vk__cli_audit_open(struct vk_store *store, const char *data_dir, const char *key_file,
                       long long every, const char *copy_file, const char *copy_syslog,
                       struct vk_audit_key **key, struct vk_audit **audit);
/**
 * First start of a database: make the site admin `admin` and write their token to
 * DATA_DIR/initial-admin-token (0600, never overwritten), saying where. Returns 0, or 1
 * after printing why the store failed (cmd_admin.c).
 */
int vk__cli_bootstrap(struct vk_store *store, const char *data_dir);

struct vk_secret_key;
/**
 * The server's secrets key: load `file` (NULL: DATA_DIR/secrets.key), made 0600 when
 * absent, and check it against the store's key check value. Returns 0, or 1 after printing
 * what to do (wrong mode or size, wrong key: the server refuses to start) (cmd_secrets.c).
 */
int vk__cli_secrets_key(struct vk_store *store, const char *data_dir, const char *file,
                        struct vk_secret_key *key, int *version);

/* ---------------------------------------------------------------- Client helpers (cmd_chains.c) */

/** True when `fd` is a terminal and NO_COLOR is unset or empty. */
bool vk__cli_use_color(int fd);

/** The ANSI colour that starts a status name ("" without colour). Returns a static string. */
const char *vk__cli_status_color(const char *status, bool color);

/* ---------------------------------------------------------------- Credentials (creds.c) */

#define VK_CLI_DEFAULT_SERVER "http://127.0.0.1:8080"

/**
 * Take the global client options --token T, --token-file FILE and --ca-cert FILE (also
 * `--opt=value`) out of argv (argv[0] is the command; up to a "--"), shifting the rest down
 * and updating *argc. A --token value is copied and wiped in argv. Returns 0, or 2 after
 * printing a usage error.
 */
int vk__cli_global_opts(const char *cmd, int *argc, char **argv);

/**
 * Path of the credentials file ($XDG_CONFIG_HOME/vulcan/credentials, else
 * ~/.config/vulcan/credentials), or with `dir_only` its directory, into `buf`. Returns 0,
 * VK_EINVAL (neither variable set) or VK_ETOOBIG.
 */
int vk__cli_creds_path(char *buf, size_t cap, bool dir_only);

/**
 * The server client commands use without --server or $VULCAN_SERVER: the credentials
 * file's, else VK_CLI_DEFAULT_SERVER. Returns borrowed (valid for the process).
 */
const char *vk__cli_default_server(void);

/**
 * The token to send to `server` (--token, --token-file, $VULCAN_TOKEN, the credentials
 * file's when stored for `server`) into `tok` ("" none); *from names where it came from
 * (static). Returns 0, or 1 after printing why (unreadable token file, not a token).
 */
int vk__cli_token_for(const char *cmd, const char *server, char tok[VK_AUTH_TOKEN_MAX],
                      const char **from);

/** The CA file for `server` (--ca-cert, $VULCAN_CA_CERT, the credentials file's) or NULL. */
const char *vk__cli_ca_for(const char *server);

/**
 * A client for `server` with the CA file and the token above; prints the error and returns
 * 1 on failure, else 0.
 */
int vk__cli_client(const char *cmd, const char *server, struct vk_http_client **out);

/**
 * A JSON call; prints the server's message (or the transport error) and returns 1 when it
 * failed or the status is 400 or more, else 0. *answer returns owned the body (may be NULL).
 */
int vk__cli_call(const char *cmd, struct vk_http_client *cl, const char *method, const char *path,
                 json_t *body, long *status, json_t **answer);

/**
 * Print `j` (borrowed) as indented JSON with a newline. Returns 0, or 1 after saying
 * "vulcan CMD: out of memory" when `j` is NULL (its builder ran out of memory) or cannot
 * be encoded.
 */
int vk__cli_print_json(const char *cmd, json_t *j);

/**
 * The chain id `arg` stands for (cmd_logs.c): a full id as it is, or a unique start or end
 * of one (4+ hex digits) among the 1000 most recent chains, into `id`. Returns 0, or the
 * exit status (1 no match or a server error, 2 not an id or ambiguous) after printing why.
 */
int vk__cli_chain_id(struct vk_http_client *cl, const char *cmd, const char *arg,
                     char id[VK_UUID_LEN]);

/** "3s ago", "5m ago"... of an RFC 3339 time, or "-". */
void vk__cli_age(const char *rfc3339, char *buf, size_t cap);

/* ---------------------------------------------------------------- Options */

enum vk__cli_opt_kind { VK_CLI_STR, VK_CLI_INT, VK_CLI_FLAG, VK_CLI_LIST, VK_CLI_KEEP };

/** Values of a repeatable option (`--group a --group b`, or `a,b` from env/config). */
struct vk__cli_list {
    char *items[32];
    size_t n;
};

/**
 * The string values a config file gave (`const char *` options point into them): owned by
 * the command, freed by vk__cli_opts_release(). An options table that has one names it in
 * an entry `{"", 0, VK_CLI_KEEP, &keep, NULL, false, 0, 0}` (not an option: no flag, no
 * setting reaches it); without one, those values live until the process exits.
 */
struct vk__cli_keep {
    char *items[128];
    size_t n;
};

/**
 * One option: `--name` (and `-shortc`), its kind, where it is stored (`const char *`,
 * `long long`, `bool`, `struct vk__cli_list`, or for VK_CLI_KEEP `struct vk__cli_keep`), an
 * optional environment variable, whether a config file may set it, and the range of an
 * integer.
 */
struct vk__cli_opt {
    const char *name;
    char shortc;
    enum vk__cli_opt_kind kind;
    void *dst;
    const char *env;
    bool config;
    long long min, max;
};

/**
 * Parse argv (argv[0] is the command) against `opts`: config file (`--config`),
 * then environment, then flags. Positional arguments go to `pos` (at most
 * `maxpos`). Returns 0, or 2 after printing a usage error.
 */
int vk__cli_opts_parse(const char *cmd, int argc, char **argv, struct vk__cli_opt *opts, size_t n,
                       const char **pos, int *npos, int maxpos);

/** Free the values of list options and the config file's strings (VK_CLI_KEEP). */
void vk__cli_opts_release(struct vk__cli_opt *opts, size_t n);

/* ---------------------------------------------------------------- Local workers */

/** Worker processes started by `vulcan server --workers N` and `vulcan run`. */
struct vk__cli_local {
    pid_t pids[64];
    char *argv[64][40]; /* 4 + 2 x 8 groups + 4 + extra arguments + NULL */
    int n;
    int64_t restart_at[64];            /* backoff for workers that keep dying */
    int log_fd;                        /* the workers' stdout and stderr; -1: inherited */
    char reg_token[VK_AUTH_TOKEN_MAX]; /* given to the workers as $VULCAN_REGISTRATION_TOKEN ("":
                                          none) */
    char reg_id[VK_UUID_LEN];          /* its credential id, revoked when the server stops */
};

/** An empty set of local workers whose output goes to `log_fd` (borrowed; -1: inherited). */
void vk__cli_local_init(struct vk__cli_local *l, int log_fd);

/**
 * Start `n` more `vulcan worker` processes for `server_url`, serving `groups`, each in
 * its own work directory under `work_root`. `extra` (NULL-terminated, may be NULL)
 * is appended to every worker's arguments. Returns 0, VK_EINVAL (more than 64 workers in
 * all, or more than 8 groups) or VK_EIO.
 */
int vk__cli_local_add(struct vk__cli_local *l, int n, const char *server_url,
                      const char *const *groups, size_t ngroups, const char *work_root,
                      const char *const *extra, struct vk_err *err);

/** Restart local workers that exited unexpectedly (with a back-off). */
void vk__cli_local_check(struct vk__cli_local *l);

/** SIGTERM every local worker, wait up to `grace_ms`, then SIGKILL and reap. */
void vk__cli_local_stop(struct vk__cli_local *l, int64_t grace_ms);

/* ---------------------------------------------------------------- Following chains */

struct vk_http_client;

/** Called between polls: waits (NULL: 150 ms), handles signals; < 0 stops following. */
typedef int vk__cli_tick_fn(void *ctx);

/**
 * Follow chain `chain_id` through the API until it is final: print state changes
 * and each fragment's output with its name as prefix. *final returns owned the
 * last chain JSON (NULL on error). Returns 0 or a VK code with details in `err`.
 */
int vk__cli_follow(struct vk_http_client *cl, const char *chain_id, bool color,
                   vk__cli_tick_fn *tick, void *tick_ctx, json_t **final,
                   struct vk_err *err) VK_MUST_CHECK;

/**
 * Follow `chain_id` to the end (vk__cli_follow with a plain 150 ms wait between
 * polls), print the summary when `summary`, and return the exit status a script
 * can use: 0 when the chain completed, else 1 (errors are printed as "vulcan CMD: ...").
 */
int vk__cli_follow_verdict(struct vk_http_client *cl, const char *cmd, const char *chain_id,
                           bool summary);

/**
 * Print the fragment table and the chain's verdict from a chain JSON. `id_width`: 0 no
 * id column, 8 the ids' last 8 digits (their short form), else full ids.
 */
void vk__cli_print_summary(json_t *chain, int id_width);

/** True when argv holds -h or --help before any "--". */
bool vk__cli_wants_help(int argc, char **argv);

#endif
