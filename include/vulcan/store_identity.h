/*
 * store_identity — who may do what: organisations, users, teams, grants, credentials and
 * login-failure counters (DESIGN §7, docs/security.md). Part of the store module: the same
 * conventions as vulcan/store.h (ids are UUID text, "" none; times are ms, 0 none;
 * strings of returned structs are borrowed from the caller's pool).
 *
 * Organisations are the store's tenants: `slug` is the tenant's `name` column (what
 * chains, repositories and workers already reference), `display_name` what people read.
 *
 * Roles. A user's role on an org (or on one repository of it) is the highest of the grants
 * made to the user directly and to every team the user belongs to or that is an ancestor
 * of one (a member of a child team has what its parents were granted). A grant on the org
 * covers all its repositories; a grant on a repository covers that one. Site admin is a
 * flag on the user that this module reports but does not turn into a role: the caller
 * decides what a site admin may do.
 *
 * Credentials are stored by the SHA-256 of the token (vk_auth_token_new()); the token itself
 * is never given to the store. vk_store_credential_check() is the one lookup every
 * authenticated request makes: it says why a credential is not valid (unknown, expired,
 * revoked, idle) without saying anything about the secret.
 *
 * Thread-safety: as the rest of the store.
 */
#ifndef VULCAN_STORE_IDENTITY_H
#define VULCAN_STORE_IDENTITY_H

#include "vulcan/auth.h"
#include "vulcan/store.h"

#define VK_STORE_MAX_LOGIN 64      /**< bytes of a login or a team name */
#define VK_STORE_MAX_SLUG 64       /**< bytes of an org slug */
#define VK_STORE_MAX_TEAM_DEPTH 16 /**< a team's ancestors, itself included */

/* ---------------------------------------------------------------- Organisations */

struct vk_store_org {
    char id[VK_UUID_LEN];
    const char *slug;         /**< [a-z0-9-], 1..64, unique */
    const char *display_name; /**< NULL: the slug */
    bool sso_only;            /**< only SSO logins may act in this org */
    int64_t created_at;
};

/**
 * Create an org; fills o->id and o->created_at. Errors: VK_EINVAL (a slug that is not 1-64
 * of [a-z0-9-] starting with a letter or digit), VK_EEXIST (the slug is taken), VK_EDB.
 */
int vk_store_org_create(struct vk_store *store, struct vk_store_org *o,
                        struct vk_err *err) VK_MUST_CHECK;

/** Find an org by slug. Returns 0, VK_ENOTFOUND, VK_EDB. */
int vk_store_org_find(struct vk_store *store, const char *slug, struct vk_pool *pool,
                      struct vk_store_org *out, struct vk_err *err) VK_MUST_CHECK;

/** Turn org `id`'s sso_only on or off. Returns 0, VK_ENOTFOUND, VK_EDB. */
int vk_store_org_set_sso_only(struct vk_store *store, const char *id, bool on,
                              struct vk_err *err) VK_MUST_CHECK;

/** Get an org by id. Returns 0, VK_ENOTFOUND, VK_EDB. */
int vk_store_org_get(struct vk_store *store, const char *id, struct vk_pool *pool,
                     struct vk_store_org *out, struct vk_err *err) VK_MUST_CHECK;

/**
 * The orgs where `user_id` holds any grant (directly or through a team), by slug; every org
 * when `user_id` is NULL. *out is an array of *n in `pool`. Returns 0, VK_EDB.
 */
int vk_store_org_list(struct vk_store *store, const char *user_id, struct vk_pool *pool,
                      struct vk_store_org **out, size_t *n, struct vk_err *err) VK_MUST_CHECK;

/* ---------------------------------------------------------------- Users */

struct vk_store_user {
    char id[VK_UUID_LEN];
    const char *login;         /**< 1..64 of [A-Za-z0-9._@-], unique (case-sensitive) */
    const char *name;          /**< may be NULL */
    const char *email;         /**< may be NULL */
    const char *source;        /**< "local", "oidc:<issuer>", "saml:<entity id>"; NULL: local */
    const char *password_hash; /**< an Argon2id PHC string; NULL: no password login */
    const char *subject;       /**< SSO users: the provider's `sub`, unique per source; NULL */
    bool site_admin;
    bool disabled; /**< a disabled user's credentials are all refused */
    int64_t created_at;
};

/**
 * Create a user; fills u->id and u->created_at. Errors: VK_EINVAL (bad login), VK_EEXIST
 * (the login is taken), VK_EDB.
 */
int vk_store_user_create(struct vk_store *store, struct vk_store_user *u,
                         struct vk_err *err) VK_MUST_CHECK;

/** Get a user by id. Returns 0, VK_ENOTFOUND, VK_EDB. */
int vk_store_user_get(struct vk_store *store, const char *id, struct vk_pool *pool,
                      struct vk_store_user *out, struct vk_err *err) VK_MUST_CHECK;

/** Find a user by login. Returns 0, VK_ENOTFOUND, VK_EDB. */
int vk_store_user_find(struct vk_store *store, const char *login, struct vk_pool *pool,
                       struct vk_store_user *out, struct vk_err *err) VK_MUST_CHECK;

/** Find the SSO user of `source` ("oidc:<issuer>") whose provider subject is `subject`.
 *  Returns 0, VK_ENOTFOUND, VK_EDB. */
int vk_store_user_find_subject(struct vk_store *store, const char *source, const char *subject,
                               struct vk_pool *pool, struct vk_store_user *out,
                               struct vk_err *err) VK_MUST_CHECK;

/** Replace a user's password hash (NULL removes password login). 0, VK_ENOTFOUND, VK_EDB. */
int vk_store_user_set_password(struct vk_store *store, const char *id, const char *phc,
                               struct vk_err *err) VK_MUST_CHECK;

/** Disable or enable a user. Returns 0, VK_ENOTFOUND, VK_EDB. */
int vk_store_user_set_disabled(struct vk_store *store, const char *id, bool disabled,
                               struct vk_err *err) VK_MUST_CHECK;

/** Whether any user exists (bootstrap creates the first site admin). 0 or VK_EDB. */
int vk_store_user_any(struct vk_store *store, bool *any, struct vk_err *err) VK_MUST_CHECK;

/* ---------------------------------------------------------------- Teams */

/**
 * Create team `name` in org `org_id`, under `parent_id` ("" or NULL: none; it must be a
 * team of the same org, and the new team at most VK_STORE_MAX_TEAM_DEPTH deep). Fills
 * `id`. Errors: VK_EINVAL (bad name, unknown org, parent of another org, too deep),
 * VK_EEXIST (the org has a team of that name), VK_EDB.
 */
int vk_store_team_create(struct vk_store *store, const char *org_id, const char *name,
                         const char *parent_id, char id[VK_UUID_LEN],
                         struct vk_err *err) VK_MUST_CHECK;

/**
 * Move team `team_id` under `parent_id` ("" or NULL: to the top). Refuses a parent of
 * another org and a parent that is the team itself or one of its descendants (a cycle),
 * with VK_EINVAL naming it. Returns 0, VK_ENOTFOUND, VK_EINVAL, VK_EDB.
 */
int vk_store_team_set_parent(struct vk_store *store, const char *team_id, const char *parent_id,
                             struct vk_err *err) VK_MUST_CHECK;

/** Add a user to a team (idempotent). Returns 0, VK_EINVAL (unknown team/user), VK_EDB. */
int vk_store_team_add_member(struct vk_store *store, const char *team_id, const char *user_id,
                             struct vk_err *err) VK_MUST_CHECK;

/** Remove a user from a team. Returns 0, VK_ENOTFOUND (not a member), VK_EDB. */
int vk_store_team_remove_member(struct vk_store *store, const char *team_id, const char *user_id,
                                struct vk_err *err) VK_MUST_CHECK;

struct vk_store_team {
    char id[VK_UUID_LEN];
    char org_id[VK_UUID_LEN];
    const char *name;
    char parent_id[VK_UUID_LEN]; /**< "": a top team */
    int64_t members;             /**< direct members */
    int64_t created_at;
};

/** The teams of org `org_id`, by name. *out is an array of *n in `pool`. 0, VK_EDB. */
int vk_store_team_list(struct vk_store *store, const char *org_id, struct vk_pool *pool,
                       struct vk_store_team **out, size_t *n, struct vk_err *err) VK_MUST_CHECK;

/** The direct members of team `team_id`, by login (password_hash not read: NULL).
 *  *out is an array of *n in `pool`. Returns 0, VK_EDB. */
int vk_store_team_members(struct vk_store *store, const char *team_id, struct vk_pool *pool,
                          struct vk_store_user **out, size_t *n, struct vk_err *err) VK_MUST_CHECK;

/* ---------------------------------------------------------------- Grants */

struct vk_store_grant {
    char id[VK_UUID_LEN];
    char org_id[VK_UUID_LEN];
    char user_id[VK_UUID_LEN]; /**< exactly one of user_id and team_id is set */
    char team_id[VK_UUID_LEN];
    char repository_id[VK_UUID_LEN]; /**< "": the whole org */
    enum vk_auth_role role;          /**< reader .. admin */
    int64_t created_at;
};

/**
 * Grant a role; fills g->id and g->created_at. Errors: VK_EINVAL (not exactly one of user
 * and team, VK_ROLE_NONE, a team or repository of another org, unknown ids), VK_EDB.
 * Granting what a user or team already holds on the same scope adds nothing: the existing
 * grant's id is returned with the higher of the two roles.
 */
int vk_store_grant_create(struct vk_store *store, struct vk_store_grant *g,
                          struct vk_err *err) VK_MUST_CHECK;

/** Delete grant `id` of org `org_id`. Returns 0, VK_ENOTFOUND, VK_EDB. */
int vk_store_grant_delete(struct vk_store *store, const char *org_id, const char *id,
                          struct vk_err *err) VK_MUST_CHECK;

/** The grants of org `org_id`. *out is an array of *n in `pool`. Returns 0, VK_EDB. */
int vk_store_grant_list(struct vk_store *store, const char *org_id, struct vk_pool *pool,
                        struct vk_store_grant **out, size_t *n, struct vk_err *err) VK_MUST_CHECK;

/**
 * The role of `user_id` on org `org_id`, or on repository `repository_id` of it when that
 * is not NULL/"" (org grants count there too). VK_ROLE_NONE when nothing is granted (the
 * org, for this user, does not exist). Returns 0, VK_EDB.
 */
int vk_store_role_of(struct vk_store *store, const char *user_id, const char *org_id,
                     const char *repository_id, enum vk_auth_role *role,
                     struct vk_err *err) VK_MUST_CHECK;

/* ---------------------------------------------------------------- Credentials */

struct vk_store_credential {
    char id[VK_UUID_LEN];
    enum vk_auth_kind kind;
    char hash[VK_AUTH_HASH_MAX];   /**< SHA-256 hex of the token */
    const char *name;              /**< what the owner called it; may be NULL */
    char user_id[VK_UUID_LEN];     /**< personal access tokens and sessions */
    char org_id[VK_UUID_LEN];      /**< an org restriction; registration and worker tokens */
    char worker_id[VK_UUID_LEN];   /**< worker tokens; job tokens: the claiming worker */
    char fragment_id[VK_UUID_LEN]; /**< job tokens */
    int attempt;                   /**< job tokens */
    unsigned scopes;               /**< VK_SCOPE_* bits (personal access tokens) */
    const char *groups;            /**< registration tokens: machine groups, comma-separated */
    int64_t uses_left;             /**< registration tokens: -1 unlimited */
    const char *csrf;              /**< sessions: the X-CSRF-Token value */
    int64_t idle_ms; /**< sessions: refused when unused this long (0: no idle limit) */
    int64_t created_at, expires_at, last_used_at, revoked_at; /**< expires_at 0: never */
};

/**
 * Store a credential (c->hash and c->kind set by the caller); fills c->id and created_at.
 * Errors: VK_EINVAL (no hash, a kind without its owner: a personal access token or a
 * session without a user, a registration token without an org, a worker token without a
 * worker, a job token without fragment and attempt), VK_EEXIST (the hash exists: a
 * random-generator failure), VK_EDB.
 */
int vk_store_credential_create(struct vk_store *store, struct vk_store_credential *c,
                               struct vk_err *err) VK_MUST_CHECK;

/**
 * vk_store_claim that also makes the job token of the attempt it starts, written to
 * `token`, and stores its hash as the claimed fragment's `job_hash` in the claim's own
 * statement (one write, no credential row). `job` is filled: kind, hash, worker_id,
 * fragment_id, attempt, created_at (the start), expires_at 0 (it ends with the attempt).
 * The token is made before the statement, so a claim that finds nothing costs one random
 * draw and one hash. Returns as vk_store_claim; `token` is wiped on an error.
 */
int vk_store_claim_job(struct vk_store *store, const char *worker_id, const char *const *groups,
                       size_t ngroups, int64_t now_ms, struct vk_store_credential *job,
                       char token[VK_AUTH_TOKEN_MAX], struct vk_pool *pool,
                       struct vk_store_work *out, struct vk_err *err) VK_MUST_CHECK;

/**
 * The lookup of every authenticated request: the credential of kind `kind` whose hash is
 * `hash`, valid at `now_ms`; a job token only while its attempt runs (the `running`
 * fragment whose job_hash it is: "unknown token, or the attempt of this job token has
 * ended" otherwise), with the fragment's id as its id and its worker's org as its org. Its
 * last_used_at is updated (never for job tokens; at most once a minute, so a busy token does not
 * write on every request). Errors (VK_EAUTH, each with its own message and never anything of the
 * secret): "unknown token", "token expired", "token revoked", "session expired after inactivity",
 * "the token's user is disabled"; VK_EDB.
 */
int vk_store_credential_check(struct vk_store *store, enum vk_auth_kind kind, const char *hash,
                              int64_t now_ms, struct vk_pool *pool, struct vk_store_credential *out,
                              struct vk_err *err) VK_MUST_CHECK;

/**
 * Take one use of registration token `id` (atomic; unlimited tokens are unchanged).
 * Returns 0, VK_EAUTH "registration token used up", VK_ENOTFOUND, VK_EDB.
 */
int vk_store_registration_use(struct vk_store *store, const char *id,
                              struct vk_err *err) VK_MUST_CHECK;

/**
 * Revoke credential `id` at `now_ms`; when `user_id` is not NULL/"" only a credential of
 * that user is found (a user revokes their own tokens). Revoking twice is not an error.
 * Returns 0, VK_ENOTFOUND, VK_EDB.
 */
int vk_store_credential_revoke(struct vk_store *store, const char *id, const char *user_id,
                               int64_t now_ms, struct vk_err *err) VK_MUST_CHECK;

/**
 * Revoke the job token of fragment `fragment_id` (its attempt ended) and, when
 * `worker_id` is not NULL/"", every credential of that worker and the job tokens of its
 * running attempts (a revoked worker).
 * Returns 0, VK_EDB.
 */
int vk_store_credential_revoke_for(struct vk_store *store, const char *fragment_id,
                                   const char *worker_id, int64_t now_ms,
                                   struct vk_err *err) VK_MUST_CHECK;

/**
 * The credentials of kind `kind` owned by user `user_id` (or of org `org_id` when
 * `user_id` is NULL/""), newest first, revoked ones included (revoked_at set).
 * *out is an array of *n in `pool`. Returns 0, VK_EDB.
 */
int vk_store_credential_list(struct vk_store *store, enum vk_auth_kind kind, const char *user_id,
                             const char *org_id, struct vk_pool *pool,
                             struct vk_store_credential **out, size_t *n,
                             struct vk_err *err) VK_MUST_CHECK;

/**
 * Make a personal access token for user `user_id` with `scopes` (VK_SCOPE_*), optionally
 * restricted to org `org_id` (NULL/"") and expiring at `expires_at` (0: never), named
 * `name` (may be NULL). The token is written to `token` (shown once; only its hash is
 * stored), the credential's id to `id`. Returns 0, VK_EINVAL (no scopes, unknown user),
 * VK_EIO (random generator), VK_EDB.
 */
int vk_store_token_issue(struct vk_store *store, const char *user_id, unsigned scopes,
                         const char *org_id, int64_t expires_at, const char *name,
                         char token[VK_AUTH_TOKEN_MAX], char id[VK_UUID_LEN],
                         struct vk_err *err) VK_MUST_CHECK;

/**
 * Make a worker registration token for org `org_id`: workers that present it may register
 * only in the machine groups of `groups` (comma-separated; NULL/"": any group), at most
 * `uses` times (-1: unlimited), until `expires_at` (0: never). Named `name` (may be NULL).
 * The token goes to `token` (shown once), the credential's id to `id`. Returns 0,
 * VK_EINVAL (no org, uses 0 or below -1, groups longer than 4096 bytes, unknown org),
 * VK_EIO, VK_EDB.
 */
int vk_store_registration_issue(struct vk_store *store, const char *org_id, const char *groups,
                                int64_t uses, int64_t expires_at, const char *name,
                                char token[VK_AUTH_TOKEN_MAX], char id[VK_UUID_LEN],
                                struct vk_err *err) VK_MUST_CHECK;

/**
 * On a database without any user: create the site admin `login` with the admin role on
 * the `default` org (created when missing) and a token of theirs with every scope and no
 * expiry, written to `token`; *created says whether this call did it (false when a user
 * existed already, also when another replica won the race). Returns 0, VK_EDB.
 */
int vk_store_bootstrap_admin(struct vk_store *store, const char *login,
                             char token[VK_AUTH_TOKEN_MAX], bool *created,
                             struct vk_err *err) VK_MUST_CHECK;

/* ---------------------------------------------------------------- Login failures */

/**
 * Count a failed login under `key` ("login:alice", "addr:192.0.2.1") in a window of
 * `window_ms` that starts at the first failure; *count receives the failures in the
 * current window, this one included. Returns 0, VK_EDB.
 */
int vk_store_login_failure_add(struct vk_store *store, const char *key, int64_t now_ms,
                               int64_t window_ms, int64_t *count, struct vk_err *err) VK_MUST_CHECK;

/** The failures under `key` in the current window (0 after it). Returns 0, VK_EDB. */
int vk_store_login_failure_count(struct vk_store *store, const char *key, int64_t now_ms,
                                 int64_t window_ms, int64_t *count,
                                 struct vk_err *err) VK_MUST_CHECK;

/** Forget the failures under `key` (a successful login). Returns 0, VK_EDB. */
int vk_store_login_failure_clear(struct vk_store *store, const char *key,
                                 struct vk_err *err) VK_MUST_CHECK;

#endif
