/*
 * api — the HTTP face of the server: the worker protocol (DESIGN §5), the
 * parser API, chains, fragments' logs, workers, repositories, webhooks, the
 * console, health and metrics. It only parses, calls and replies: git work
 * (webhooks after their verification, manual runs, workflow listings) is
 * queued for the trigger service (vulcan/triggers.h) and the client waits,
 * suspended, for its outcome.
 *
 * A vk_api owns its HTTP server and the long-poll dispatcher: a worker asking
 * for work when none is ready is suspended (no thread held) and woken the
 * moment the orchestrator reports ready work of one of its machine groups
 * (vk_api_wake, wired as the orchestrator's ready hook), or answered 204 when
 * its wait runs out.
 *
 * Thread-safety: vk_api_wake() may be called from any thread; the rest is
 * called by the thread that owns the vk_api.
 */
#ifndef VULCAN_API_H
#define VULCAN_API_H

#include "vulcan/orchestrator.h"
#include "vulcan/store.h"
#include "vulcan/telemetry.h"
#include "vulcan/triggers.h"
#include "vulcan/util.h"

struct vk_secret_key; /* vulcan/secrets.h */
struct vk_audit;      /* vulcan/audit.h */

#include <stdint.h>

struct vk_api;
struct vk_secret_providers;

#define VK_API_DEFAULT_HOOK_WAIT_MS 8000     /**< webhooks: answer 202 after this */
#define VK_API_DEFAULT_TRIGGER_WAIT_MS 30000 /**< manual runs 202, listings 503 after this */
#define VK_API_DEFAULT_MAX_LOG (16LL * 1024 * 1024 + 64 * 1024)

struct vk_api_opts {
    const char *listen;                   /**< "ADDR:PORT" (required; port 0 picks one) */
    struct vk_store *store;               /**< borrowed */
    struct vk_orch *orch;                 /**< borrowed */
    int heartbeat_interval_s;             /**< told to workers (default 5) */
    int max_wait_s;                       /**< cap on a work request's wait_s (default 60) */
    unsigned http_threads;                /**< HTTP polling threads (default 2) */
    unsigned max_connections;             /**< simultaneous connections (default 10000) */
    unsigned max_connections_per_address; /**< from one client address (default 64) */
    unsigned request_timeout_s;           /**< headers and body must be in within this
                                           *   (default 60): then 408 and closed */
    bool no_api;                          /**< serve only /health*, /metrics and (unless no_console)
                                           *   the console: no JSON API, worker protocol or webhooks */
    bool no_console;                      /**< do not serve the web console (GET / and its files) */
    struct vk_triggers_service *triggers; /**< borrowed, may be NULL: this process's trigger
                                           *   service, told of queued requests and telling
                                           *   their outcomes at once (without one, outcomes
                                           *   of other replicas' services are polled) */
    int64_t hook_wait_ms;                 /**< default VK_API_DEFAULT_HOOK_WAIT_MS */
    int64_t trigger_wait_ms;              /**< default VK_API_DEFAULT_TRIGGER_WAIT_MS */
    struct vk_metrics *metrics; /**< borrowed, may be NULL: with it, `GET /metrics` serves it,
                                 *   HTTP and webhook metrics are recorded and the queue and
                                 *   worker gauges are registered (docs/observability.md) */
    struct vk_tracer *tracer;   /**< borrowed, may be NULL: request and dispatch spans */
    struct vk_audit *audit;     /**< borrowed, may be NULL: every state-changing request, refusal
                                 *   and login goes to this audit recorder (docs/audit.md) */
    bool require_auth;          /**< user routes need a personal access token and the role
                                 *   their operation names (docs/security.md); off: only
                                 *   every route's role is checked to exist */
    const char *public_url;     /**< the URL people and browsers use (may be NULL): its host
                                 *   is an accepted Host, its origin the console's, and an
                                 *   https:// one makes session cookies Secure */
    const char *allowed_hosts;  /**< more accepted Host names, comma-separated (may be NULL);
                                 *   see docs/security.md "Browsers" */
    int64_t max_log_bytes;      /**< a log attempt's stored size (default
                                 *   VK_API_DEFAULT_MAX_LOG: the worker's 16 MiB cap and room
                                 *   for its notice); past it the server truncates, says so in
                                 *   the log once, and answers 413 */
    const char *job_key_file;   /**< with require_auth: the job OIDC issuer's ES256 key (PEM,
                                 *   0600; made when missing); NULL: no issuer */
    /* Console login with OpenID Connect (docs/security.md "Single sign-on"): all borrowed
     * for the API's life; oidc_issuer NULL: no SSO. Needs require_auth. */
    const char *oidc_issuer;        /**< the provider's issuer URL (discovery under it) */
    const char *oidc_client_id;     /**< this server's client id at the provider */
    const char *oidc_client_secret; /**< its secret (never logged) */
    const char *oidc_groups_claim;  /**< the ID token claim naming teams; NULL: "groups" */
    const char *oidc_org;           /**< the org whose teams groups map to; NULL: "default" */
    const char *oidc_ca_file;       /**< CA certificates for an https provider; NULL: system */
    /* Console login with SAML 2.0 (docs/security.md "Single sign-on (SAML 2.0)"): all
     * borrowed for the API's life; saml_idp_metadata NULL: no SAML. Needs require_auth. */
    const char *saml_idp_metadata;     /**< the IdP's metadata XML (its content, not a path) */
    size_t saml_idp_metadata_len;      /**< its length */
    const char *saml_sp_entity_id;     /**< this server's entity id; NULL: PUBLIC_URL/api/v1/
                                        *   sso/saml/metadata */
    const char *saml_groups_attribute; /**< the attribute naming teams; NULL: "groups" */
    const char *saml_org;              /**< the org whose teams groups map to; NULL: "default" */
    const char *tls_cert_pem;          /**< PEM certificate chain: serve HTTPS (borrowed until
                                        *   vk_api_new returns; not kept). NULL: plain HTTP */
    const char *tls_key_pem;           /**< PEM key of tls_cert_pem (borrowed likewise) */
    bool tls;                          /**< the API is served over TLS (set by vk_api_new when
                                        *   tls_cert_pem is given): later console cookies get
                                        *   `Secure` */
    /** Borrowed, may be NULL: the URLs of POST/PATCH /repos must pass its checks that
     * need no resolver (vk_git_url_check_static; the trigger service does the rest). */
    const struct vk_git_url_policy *url_policy;
    /** The secrets key-encryption key (borrowed for the API's life; checked against the
     * store by the caller); NULL: the secrets routes answer 503, work items carry none. */
    const struct vk_secret_key *secrets_key;
    /** Its generation (vk_store_secret_key_check). */
    int secrets_key_version;
    /** The secret providers (borrowed for the API's life); NULL or empty: a
     * provider-backed secret fails the attempt that needs it. */
    const struct vk_secret_providers *secret_providers;
};

/** Create the API and register its routes. Borrows `opts`. */
int vk_api_new(const struct vk_api_opts *opts, struct vk_api **out,
               struct vk_err *err) VK_MUST_CHECK;

/**
 * Replace the TLS certificate and key (SIGHUP): new connections use them. Borrows both.
 * Returns 0, or VK_EINVAL (no TLS, or a bad pair: the old one stays) with details in *err.
 */
int vk_api_tls_reload(struct vk_api *api, const char *cert_pem, const char *key_pem,
                      struct vk_err *err) VK_MUST_CHECK;

/** Start listening. Returns 0 or VK_EIO. */
int vk_api_start(struct vk_api *api, struct vk_err *err) VK_MUST_CHECK;

/** The bound port, after start. */
uint16_t vk_api_port(const struct vk_api *api);

/** Stop serving: waiting workers get their 204 now. Idempotent. */
void vk_api_stop(struct vk_api *api);

/** Stop and free. Accepts NULL. */
void vk_api_free(struct vk_api *api);

/**
 * Fragments of machine group `group` became ready: hand them to waiting
 * workers. A vk_orch_ready_fn; pass the vk_api as ctx. Thread-safe.
 */
void vk_api_wake(void *api, const char *group);

#endif /* VULCAN_API_H */
