/* Private to the API: shared between its files. */
#ifndef VULCAN_API_INT_H
#define VULCAN_API_INT_H

#include "vulcan/api.h"
#include "vulcan/http.h"
#include "vulcan/mask.h"
#include "vulcan/store_identity.h"
#include "vulcan/telemetry.h"

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>

/* A worker waiting in a long-poll. Lives on the heap; owned by the dispatcher list. */
struct vk__api_waiter {
    struct vk__api_waiter *prev, *next;
    struct vk_api *api;
    struct vk_http_req *req;
    char worker_id[VK_UUID_LEN];
    char org_id[VK_UUID_LEN]; /* the worker's org: its job tokens act there */
    size_t ngroups;
    char *groups[VK_STORE_MAX_GROUPS];
    bool parked; /* req is suspended with the callbacks below and in the list */
};

/* Claims whose work item asks secret providers are answered on threads of their own
 * (api_worker.c), at most this many at once; past that, inline. */
#define VK__API_MAX_RESOLVERS 32
/* Wait for those threads to end and start no more (vk_api_stop, vk_api_free). */
void vk__api_resolve_wait(struct vk_api *api);

/* Log followers (api_logs.c): one thread per `?follow=1` stream, bounded. */
struct vk__api_follow_set {
    bool ready;           /* lock and cond are initialised */
    pthread_mutex_t lock; /* guards the fields below */
    pthread_cond_t cond;  /* signalled when `n` drops or `stopping` is set */
    unsigned n;           /* live follower threads */
    char keys[256][48];   /* the user holding each slot ("" without credentials) */
    char addrs[256][48];  /* the client address holding each slot ("" free) */
    bool stopping;        /* no new followers; live ones end */
};

/* What a route needs (its operation's x-vulcan-role in web/openapi.json; api_auth.c). */
enum vk__api_need {
    VK__NEED_ANONYMOUS,
    VK__NEED_SIGNATURE, /* a webhook: its handler checks the signature */
    VK__NEED_REGISTRATION,
    VK__NEED_WORKER,
    VK__NEED_JOB,
    VK__NEED_ROLE, /* at least `role` in the org ({org} of the path, else `default`) */
    VK__NEED_SITE_ADMIN,
    VK__NEED_USER /* any valid token of an enabled user, no org role needed */
};

struct vk__api_route_need {
    const char *method, *pattern; /* borrowed from the router */
    const char *name;             /* the x-vulcan-role text */
    enum vk__api_need need;
    enum vk_auth_role role;
};

/* Who a request comes from, attached by the gate (in the request's pool). */
struct vk__api_principal {
    struct vk_store_credential cred;
    char user_id[VK_UUID_LEN];
    const char *login;
    bool site_admin;
    char org_id[VK_UUID_LEN];
    enum vk_auth_role role; /* in org_id, capped by the token's scopes */
};

/* The server-side masking registry (api_mask.c). */
struct vk__api_mask_entry;
struct vk__api_mask_set {
    pthread_mutex_t lock; /* guards the list, its length, the entries' reference counts */
    struct vk__api_mask_entry *head;
    size_t n;
    int64_t swept_ms;
};

struct vk_api {
    struct vk_api_opts opts;
    struct vk__api_route_need *needs; /* one per registered route, in route order */
    size_t nneeds;
    char default_org[VK_UUID_LEN];
    bool check_host;               /* Host must be one of the accepted names (vk__api_host_ok) */
    struct vk_auth_signer *signer; /* the job OIDC issuer's key, or NULL (api_oidc.c) */
    struct vk_auth_signer *signer_prev; /* the key before the last rotation, or NULL: in
                                         * the JWKS, never used to sign */
    char issuer[512];                   /* its `iss`: the public URL, else the listen URL */
    struct vk__api_sso *sso;            /* OpenID Connect login, or NULL (api_sso.c) */
    struct vk__api_saml *saml;          /* SAML 2.0 login, or NULL (api_saml.c) */
    struct vk_http_server *http;
    pthread_mutex_t lock; /* guards the waiter list */
    struct vk__api_waiter *head, *tail;
    pthread_mutex_t resolve_lock; /* guards the three below */
    pthread_cond_t resolve_cond;  /* signalled when `resolvers` drops */
    unsigned resolvers;           /* live resolver threads (api_worker.c) */
    bool resolve_stopping;
    struct vk__api_follow_set follow;
    struct vk__api_mask_set mask; /* per-attempt maskers of log ingest (api_mask.c) */
    struct vk_metrics_std m;      /* handles in opts.metrics (all NULL without metrics) */
    /* Clients waiting for trigger requests (api_treq.c). */
    pthread_mutex_t treq_lock; /* guards the list and the flags */
    pthread_cond_t treq_cond;  /* wakes the poller */
    struct vk__api_treq_wait *treq_head;
    pthread_t treq_poller;
    bool treq_started, treq_stopping;
};

/*
 * Where a new pending SSO login (OIDC or SAML) goes among `n` slots of `stride` bytes, each
 * with an int64_t creation time at `created_off` (0: free) and its client address string at
 * `addr_off`: a free or expired slot, else the oldest; but an address that has `per_addr`
 * live logins already replaces its own oldest, so one client starting logins in a loop
 * cannot push out everyone else's (api_sso.c).
 */
size_t vk__api_pending_slot(const void *slots, size_t n, size_t stride, size_t created_off,
                            size_t addr_off, const char *addr, int64_t now_ms, int64_t life_ms,
                            size_t per_addr);

/* ---------------------------------------------------------------- Masking (api_mask.c) */

void vk__api_mask_init(struct vk_api *api);
void vk__api_mask_release(struct vk_api *api);
/*
 * Register `value` (`n` bytes, borrowed; VK_MASK_MIN_VALUE..VK_MASK_MAX_VALUE) for the
 * attempt: the attempt's log is masked with it on ingest from then on. Called at claim
 * with the job token and when an ID token is issued. Returns 0, VK_EINVAL (size),
 * VK_ETOOBIG (registry full, or the attempt's forms too big), VK_ENOMEM.
 */
int vk__api_mask_add(struct vk_api *api, const char *fragment_id, int attempt, const char *value,
                     size_t n) VK_MUST_CHECK;
/*
 * Ingest `len` bytes at the worker's stream offset `offset` of the attempt's log: masked
 * with its values, then stored. A retry of bytes already taken is ignored; `offset` past
 * the end is VK_EINVAL. *in_total (may be NULL) receives the worker bytes taken so far.
 * Returns 0 or the store's error (VK_ECONFLICT for a stale attempt), VK_EAGAIN when the
 * registry is full, VK_ENOMEM.
 */
int vk__api_mask_append(struct vk_api *api, const char *fragment_id, int attempt, int64_t offset,
                        const char *data, size_t len, int64_t *in_total,
                        struct vk_err *err) VK_MUST_CHECK;
/* The attempt ended: store what its masker holds back and drop its entry (absent: nothing). */
void vk__api_mask_end(struct vk_api *api, const char *fragment_id, int attempt);
/* The same, and then each value of the object `outputs` (may be NULL) masked in place with
 * the attempt's values. */
void vk__api_mask_end_outputs(struct vk_api *api, const char *fragment_id, int attempt,
                              json_t *outputs);
/* Entries in the registry (tests, metrics). */
size_t vk__api_mask_entries(struct vk_api *api);

/* ---------------------------------------------------------------- Telemetry (api_metrics.c) */

/* With opts.metrics: register the standard metrics, the gauges and GET /metrics. */
int vk__api_metrics_routes(struct vk_api *api, struct vk_err *err);
/* The HTTP layer's on_complete hook: vulcan_http_requests_total and its histogram. */
void vk__api_http_complete(const struct vk_http_req *req, int status, int64_t duration_ns,
                           void *ctx);
/* Start the server span of a request ("METHOD /route/pattern"), child of the request's
 * traceparent when valid. NULL without a tracer. End it with vk__api_span_end(). */
struct vk_span *vk__api_span_start(struct vk_api *api, struct vk_http_req *req);
/* Record the answer's status (0: not known) on `span` (may be NULL) and end it. */
void vk__api_span_end(struct vk_api *api, struct vk_span *span, int status);
/* Hex ids of `span` for log fields ("" when NULL). */
struct vk__api_trace_ids {
    char trace_id[VK_TRACE_ID_HEX_LEN];
    char span_id[VK_SPAN_ID_HEX_LEN];
};
void vk__api_trace_ids(const struct vk_span *span, struct vk__api_trace_ids *out);

/* Route registration, per file. */
int vk__api_worker_routes(struct vk_api *api, struct vk_err *err);
int vk__api_chain_routes(struct vk_api *api, struct vk_err *err);
int vk__api_log_routes(struct vk_api *api, struct vk_err *err);      /* api_logs.c */
int vk__api_read_routes(struct vk_api *api, struct vk_err *err);     /* api_read.c */
int vk__api_badge_routes(struct vk_api *api, struct vk_err *err);    /* api_badge.c */
int vk__api_openapi_routes(struct vk_api *api, struct vk_err *err);  /* api_openapi.c */
int vk__api_console_routes(struct vk_api *api, struct vk_err *err);  /* api_console.c */
int vk__api_identity_routes(struct vk_api *api, struct vk_err *err); /* api_identity.c */
int vk__api_secret_routes(struct vk_api *api, struct vk_err *err);   /* api_secrets.c */
/* The attempt's secrets into item["secrets"] ([{"name", "value", "file"}]), opened with the
 * server's key or asked of their secret provider, and filtered by the exposure rules
 * (forks, protected refs); the names withheld and why into env VULCAN_SECRETS_WITHHELD.
 * Returns 0; 1 when a provider failed, with `fail` saying why (the attempt must fail, and
 * item gets no secret); -1 when out of memory (api_secrets.c). May block for the
 * providers' timeout: call it without api->lock when vk__api_work_needs_providers(). */
int vk__api_work_secrets(struct vk_api *api, const struct vk_store_work *w, struct vk_pool *pool,
                         json_t *item, json_t *env, struct vk_err *fail);
/* Register with `m` the stored secrets the attempt (fragment, attempt) was given, for a log
 * whose claim this process did not see (after a restart, or a claim on another replica).
 * A provider's value cannot be had again without asking it, so it is not (the worker's
 * pass masks it). Returns 0 or a store error (api_secrets.c). */
struct vk_mask;
int vk__api_mask_stored_secrets(struct vk_api *api, const char *fragment_id, int attempt,
                                struct vk_mask *m);
/* Whether the claim `w` may ask a secret provider (the server has providers and the
 * fragment names secrets): then its work item is built off the waiter lock. */
bool vk__api_work_needs_providers(struct vk_api *api, const struct vk_store_work *w);

/* Read every route's need from the embedded OpenAPI document; VK_EINTERNAL naming a route
 * without one (api_auth.c). */
int vk__api_auth_init(struct vk_api *api, struct vk_err *err);
void vk__api_auth_release(struct vk_api *api);
/* The HTTP gate: authenticate and authorise a request before its body is read. */
int vk__api_gate(struct vk_http_req *req, void *ctx, struct vk_http_refusal *no);

/* Whether the request's Host header names this server: loopback names, the listen address,
 * the public URL's host or an allowed host (docs/security.md "Browsers"). */
bool vk__api_host_ok(const struct vk_api *api, const struct vk_http_req *req);
/* Whether `origin` (an Origin header's value) is this server's own origin for `req`: the
 * scheme and authority of the public URL, or of the request's own Host. */
bool vk__api_same_origin(const struct vk_api *api, const struct vk_http_req *req,
                         const char *origin);
/* The valid console session of the request's cookie into *cred: 0, VK_EAUTH (no cookie,
 * "session cookie: <why>" for a malformed one, or why the store refuses it), VK_EDB. */
int vk__api_session_of(struct vk_api *api, struct vk_http_req *req,
                       struct vk_store_credential *cred, struct vk_err *err);
/* Whether the request carries the X-CSRF-Token of session `cred` (constant time). */
bool vk__api_csrf_ok(const struct vk_http_req *req, const struct vk_store_credential *cred);
/* The value of cookie `name` in the request (borrowed from its pool), or NULL. */
const char *vk__api_cookie(struct vk_http_req *req, const char *name);
/* Console sessions: POST /api/v1/login, POST /api/v1/logout, GET /api/v1/session
 * (api_session.c). */
int vk__api_session_routes(struct vk_api *api, struct vk_err *err);
#define VK__API_CSRF_MAX 44 /* a session's CSRF token with the NUL */
/* Make a console session for user `u` (logged in `how`: "password", "oidc"), set its cookie
 * on the answer of `req` and fill its CSRF token and expiry. 0, VK_EIO, VK_EDB. */
int vk__api_session_open(struct vk_api *api, struct vk_http_req *req, const struct vk_store_user *u,
                         const char *how, char csrf[VK__API_CSRF_MAX], int64_t *expires_at,
                         struct vk_err *err);
/* SSO with OpenID Connect (api_sso.c). */
struct vk__api_sso;
int vk__api_sso_init(struct vk_api *api, struct vk_err *err);
void vk__api_sso_start(struct vk_api *api); /* after the issuer URL is known */
/* End the SSO thread (the login it is doing finishes; waiting ones get 503). Before the
 * HTTP server stops. Idempotent. */
void vk__api_sso_stop(struct vk_api *api);
void vk__api_sso_release(struct vk_api *api);
int vk__api_sso_routes(struct vk_api *api, struct vk_err *err);
/* The SSO methods the login page offers: "oidc", "saml" or none (a new array). */
json_t *vk__api_sso_methods(const struct vk_api *api);
/* Shared by both SSO protocols (api_sso.c). The user of an identity provider's verified
 * `claims` ({sub, preferred_username?, email?, name?}) under `source` ("oidc:<issuer>",
 * "saml:<entity id>"), found by subject or made now (a login taken already gets a random
 * suffix, never someone else's account). */
int vk__api_sso_user(struct vk_api *api, const char *source, json_t *claims, struct vk_pool *pool,
                     struct vk_store_user *u, struct vk_err *err);
/* Set `u`'s membership in the teams of org `org_slug` (NULL: default; `flag` names the
 * option in errors) to exactly the team names in `groups` (a JSON array, or NULL). */
int vk__api_sso_teams(struct vk_api *api, json_t *groups, const char *org_slug, const char *flag,
                      const struct vk_store_user *u, struct vk_pool *pool, struct vk_err *err);
/* A console location for after the login: "#/" then printable characters (no quotes). */
bool vk__api_sso_next_ok(const char *n);
/* Whether the client is a browser that navigated here (Accept names text/html). */
bool vk__api_sso_wants_html(struct vk_http_req *req);
/* Answer with a small HTML page saying `msg` (escaped) and linking to the login page. */
void vk__api_sso_page(struct vk_http_req *req, int status, const char *msg);
/* Log and answer a refused SSO login (401 page or JSON; 500 for store errors). */
void vk__api_sso_refuse(struct vk_http_req *req, const char *addr, const struct vk_err *err,
                        int rc);
/* Percent-encode `s` for a query value; false when it does not fit in `cap`. */
bool vk__api_sso_urlenc(const char *s, char *out, size_t cap);
/* SAML 2.0 login (api_saml.c): load the IdP metadata (vk_api_new), routes. */
struct vk__api_saml;
int vk__api_saml_init(struct vk_api *api, struct vk_err *err);
void vk__api_saml_release(struct vk_api *api);
int vk__api_saml_routes(struct vk_api *api, struct vk_err *err);
#define VK__API_SESSION_COOKIE "vulcan_session"

/* Job identity (api_oidc.c): load the key (vk_api_new), settle the issuer URL once the
 * port is known (vk_api_start), routes, and the two variables of a work item's env
 * (false when out of memory; nothing without an issuer or a job token). */
int vk__api_oidc_init(struct vk_api *api, struct vk_err *err);
void vk__api_oidc_release(struct vk_api *api);
void vk__api_oidc_start(struct vk_api *api);
int vk__api_oidc_routes(struct vk_api *api, struct vk_err *err);
bool vk__api_oidc_env(struct vk_api *api, json_t *env, const char *job_token);
/* The job's claims, as in its OIDC ID token but without iss, aud and the times: sub, org,
 * repository, ref, sha, workflow, chain, fragment, attempt, trigger, environment, machine
 * group, worker (api_oidc.c). Also what a secret provider is told. Returns owned, or NULL
 * when out of memory. */
json_t *vk__api_job_claims(const struct vk_store_chain *c, const struct vk_store_fragment *f,
                           const char *org_slug, const char *worker_id, struct vk_pool *pool);

/* With require_auth: the registration, worker or job credential the gate checked for a
 * worker-protocol request (borrowed from the request's pool); NULL without one. */
const struct vk_store_credential *vk__api_agent_cred(const struct vk_http_req *req);
/* Whether machine group `group` is in the comma-separated `list` (NULL/"": every group). */
bool vk__api_group_allowed(const char *list, const char *group);

/* Whether the caller of REQ may call METHOD PATTERN (a registered route) in the org REQ
 * acted in: its role there (capped by the credential's scopes) against the route's. True
 * on a server without credentials; false for a route with no role or a non-role need. It
 * only tells clients what to offer: the gate checks every call itself. */
bool vk__api_may(const struct vk_api *api, const struct vk_http_req *req, const char *method,
                 const char *pattern);

/* The org a request acts in: its {org} path parameter's (VK_ENOTFOUND when there is no such
 * org), else the default org (api_auth.c). */
int vk__api_request_org(struct vk_api *api, struct vk_http_req *req, char org_id[VK_UUID_LEN],
                        struct vk_err *err);

/* ---- the audit log (api_audit.c, docs/audit.md) */
/* Record what request `req` did, answered `status` (from the completion hook): every
 * state-changing request but the worker protocol's own traffic, and every refusal. */
void vk__api_audit_request(struct vk_api *api, const struct vk_http_req *req, int status);
/* Record `action` by `actor` (NULL: the request's principal) with `outcome`, now: for
 * handlers that know more than the hook (a login's name). `details` borrowed, may be NULL. */
void vk__api_audit(struct vk_api *api, const struct vk_http_req *req, const char *action,
                   const char *actor, const char *outcome, json_t *details);
int vk__api_audit_routes(struct vk_api *api, struct vk_err *err);

/* End every log follower and wait for their threads (api_logs.c). Idempotent. */
void vk__api_logs_stop(struct vk_api *api);
/* Release what vk__api_log_routes set up (after vk__api_logs_stop). */
void vk__api_logs_release(struct vk_api *api);

/* Files embedded from web/ at build time (generated by cmake/Embed.cmake). */
struct vk__api_asset {
    const char *name; /* "index.html", "app.js"... */
    const unsigned char *data;
    size_t len;
};
extern const struct vk__api_asset vk__api_assets[];
extern const size_t vk__api_nassets;

/* An embedded asset by name, or NULL. */
const struct vk__api_asset *vk__api_asset_find(const char *name);
/* Reply with an embedded asset (ETag, 304, content type by extension). */
void vk__api_reply_asset(struct vk_http_req *req, const struct vk__api_asset *a);

/* Map a store/orchestrator error to an HTTP reply. Returns the status sent. */
int vk__api_reply_err(struct vk_http_req *req, const struct vk_err *err, int code);

/* JSON helpers: a string or null; a time in ms as an RFC 3339 string or null; an array of
 * `n` strings. Each is NULL when out of memory; builders check with vk_http_json_checked(). */
json_t *vk__api_str(const char *s);
json_t *vk__api_time(int64_t ms);
json_t *vk__api_str_array(const char *const *items, size_t n);

/* A JSON string member of `o`, or NULL when absent or not a string. */
const char *vk__api_get_str(json_t *o, const char *key);

/* ---------------------------------------------------------------- Triggers */
/* Repositories and webhooks (api_repos.c, api_hooks.c) hand git work to the trigger service
 * through trigger requests (api_treq.c). */
#include "vulcan/triggers.h"

int vk__api_repo_routes(struct vk_api *api, struct vk_err *err); /* api_repos.c */
int vk__api_hook_routes(struct vk_api *api, struct vk_err *err); /* api_hooks.c */
int vk__api_treq_routes(struct vk_api *api, struct vk_err *err); /* api_treq.c */

/* What a client gets when the trigger service did not answer within its wait. */
enum vk__api_treq_late {
    VK__API_TREQ_LATE_202, /* 202 with the request's id: it is done later */
    VK__API_TREQ_LATE_503  /* 503: there is no later for a listing */
};

/*
 * Queue `rq` (vk_store_treq_create) and suspend `req` until its outcome is known, at most
 * `wait_ms`; the outcome is the reply. `provider` (may be NULL) names a webhook's provider
 * for the deliveries counter. Replies itself on every path but one: VK_EEXIST when one of
 * rq->dedup was remembered already (nothing queued; the caller answers the redelivery).
 * Returns 0 when the request is waiting, else the error it answered.
 */
int vk__api_treq_submit(struct vk_api *api, struct vk_http_req *req, struct vk_store_treq *rq,
                        int64_t wait_ms, enum vk__api_treq_late late, const char *provider);
/* The trigger service's done hook (a vk_triggers_done_fn; ctx is the vk_api). */
void vk__api_treq_done(void *ctx, const char *id, int status, const char *result);
/* The poller thread for requests handled by other replicas: start in vk_api_start, stop in
 * vk_api_stop (idempotent). */
int vk__api_treq_start(struct vk_api *api, struct vk_err *err);
void vk__api_treq_stop(struct vk_api *api);

#endif
