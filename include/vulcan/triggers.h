/*
 * triggers — what starts a chain, in two layers.
 *
 * The library (pure functions, no I/O): webhooks from Git hosts (GitHub,
 * GitLab, Gitea, Bitbucket Cloud and our own generic format) verified in
 * constant time and normalised, repository URL matching, and the inputs of
 * manual runs. The HTTP layer calls them for a webhook in this order:
 *
 *   1. vk_triggers_hook_verify()         raw body + headers + the repository's secret
 *   2. vk_triggers_hook_parse()          → struct vk_triggers_event (normalised)
 *   3. vk_triggers_event_matches_repo()  against the registered repository URL
 *   4. vk_triggers_event_to_wf()         → struct vk_wf_event for the workflow matcher
 *
 * The trigger service (struct vk_triggers_service, the `triggers` role of
 * `vulcan server`): everything after verification that needs git. It handles
 * the trigger requests of the store (vk_store_treq_*: a verified webhook, a
 * manual run, a listing of workflows, a schedule refresh) on its own threads:
 * reads the workflow files of the commit from the server's mirror cache
 * (vulcan/git.h), matches their triggers, starts chains through the
 * orchestrator, and records the outcome in the request. It also runs the cron
 * scheduler (the timing rules are vulcan/cron.h's). The HTTP threads that
 * queued a request never wait on git: they wait, suspended, for its outcome.
 * Any replica's service may handle any request; nothing is in memory only.
 *
 * (docs/triggers.md has the whole recipe and the generic webhook format.)
 *
 * Invariants: every string a parsed event holds is NUL-terminated, free of
 * control characters and bounded (VK_TRIGGERS_MAX_* below); shas are
 * lowercase hex.
 *
 * Thread-safety: no library function keeps global mutable state; a parsed
 * event is used by one thread at a time. The service's functions may be
 * called from any thread.
 */
#ifndef VULCAN_TRIGGERS_H
#define VULCAN_TRIGGERS_H

#include "vulcan/git.h"
#include "vulcan/orchestrator.h"
#include "vulcan/store.h"
#include "vulcan/telemetry.h"
#include "vulcan/util.h"
#include "vulcan/workflow.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ================================================================ Webhooks */

/* ---------------------------------------------------------------- Limits */

#define VK_TRIGGERS_MAX_BODY (25u * 1024u * 1024u) /**< GitHub's own payload cap */
#define VK_TRIGGERS_MAX_URL 2048                   /**< a repository URL */
#define VK_TRIGGERS_MAX_REF 1024                   /**< a ref, branch or tag name */
#define VK_TRIGGERS_MAX_TEXT 1024                  /**< sender, action, delivery id, names */
#define VK_TRIGGERS_MAX_PATH 4096                  /**< one changed path */
#define VK_TRIGGERS_MAX_PATHS 20000                /**< distinct changed paths kept */
#define VK_TRIGGERS_MAX_URLS 8                     /**< repository URLs kept per event */
#define VK_TRIGGERS_MAX_SHA 64                     /**< SHA-256 object names */

/* ---------------------------------------------------------------- Types */

enum vk_triggers_provider {
    VK_TRIGGERS_GITHUB,
    VK_TRIGGERS_GITLAB,
    VK_TRIGGERS_GITEA,
    VK_TRIGGERS_BITBUCKET,
    VK_TRIGGERS_GENERIC
};

enum vk_triggers_kind {
    VK_TRIGGERS_EV_OTHER, /**< an event we do not act on (issues, stars, ...) */
    VK_TRIGGERS_EV_PUSH,  /**< commits pushed to a branch (or the branch deleted) */
    VK_TRIGGERS_EV_TAG,   /**< a tag pushed (or deleted) */
    VK_TRIGGERS_EV_PULL_REQUEST,
    VK_TRIGGERS_EV_PING /**< GitHub's `ping` after a hook is created; generic "ping" */
};

/**
 * Look up the request header `name` (match case-insensitively). Returns
 * borrowed (valid during the call that was given the callback) value, or
 * NULL when the request has no such header.
 */
typedef const char *vk_triggers_header_fn(void *ctx, const char *name);

/** A header for vk_triggers_header_kv(). */
struct vk_triggers_header {
    const char *name;
    const char *value;
};

/** Context for vk_triggers_header_kv(): an array of headers. */
struct vk_triggers_headers {
    const struct vk_triggers_header *items;
    size_t n;
};

/** A vk_triggers_header_fn over a struct vk_triggers_headers (pass it as `ctx`); first match wins.
 */
const char *vk_triggers_header_kv(void *ctx, const char *name);

/**
 * A webhook normalised across providers. Strings are NULL when the payload
 * does not carry them. Everything lives in `pool` (free with
 * vk_triggers_event_free()).
 *
 * - `ref` is the full ref as sent ("refs/heads/main", "refs/tags/v1");
 *   `branch` is the short branch name: for pushes the pushed branch, for pull
 *   requests the BASE (target) branch, as branch filters match in GitHub
 *   Actions; `tag` the short tag name of tag events.
 * - `after`/`before` are the new and old commit of a push (lowercase hex;
 *   all zeros for "none"). `commit_sha` is what a chain builds: `after` for
 *   pushes and tags, the head commit for pull requests (Bitbucket sends an
 *   abbreviated one there: resolve it with vk_git_resolve_commit()); NULL for
 *   deletions and pings.
 * - `paths` is the union of added/modified/removed files found in the payload,
 *   sorted and without duplicates. `paths_complete` is false when the payload
 *   cannot list every changed file (no commit list, a truncated one, a new
 *   branch, Bitbucket, pull requests): then compute them with
 *   vk_git_changed_paths() and store them with vk_triggers_event_set_paths().
 */
struct vk_triggers_event {
    enum vk_triggers_provider provider;
    enum vk_triggers_kind kind;
    const char *event_name;  /**< the event header's value ("push", "Merge Request Hook") */
    const char *delivery_id; /**< for redelivery detection; NULL when absent */
    const char *repo_urls[VK_TRIGGERS_MAX_URLS]; /**< clone, HTML, SSH URLs; distinct strings */
    size_t nrepo_urls;
    const char *repo_name; /**< "owner/name" or "group/project" when present */
    const char *ref;
    const char *branch;
    const char *tag;
    const char *after;
    const char *before;
    const char *commit_sha;
    bool created; /**< the ref did not exist before (before is all zeros) */
    bool deleted; /**< the ref was deleted (after all zeros or the provider says so) */
    bool forced;  /**< a force push, when the provider says so */
    /* pull requests */
    int64_t pr_number;          /**< GitHub/Gitea/Bitbucket number, GitLab iid; 0 otherwise */
    const char *pr_action;      /**< opened, synchronize, reopened, closed, edited, ... */
    const char *pr_head_sha;    /**< the PR's head commit */
    const char *pr_head_branch; /**< source branch */
    const char *pr_base_branch; /**< target branch (also in `branch`) */
    bool pr_merged;             /**< closed by merging, when the provider says so */
    bool pr_from_fork;          /**< the head repository is not the base repository (or the
                                 *   payload does not show it is): no secrets (DESIGN §8) */
    /* changed files */
    const char **paths;
    size_t npaths;
    bool paths_complete;
    const char *sender; /**< login / username of who caused the event */
    struct vk_pool pool;
};

/* ---------------------------------------------------------------- Operations */

/** "github", "gitlab", "gitea", "bitbucket", "generic". */
const char *vk_triggers_provider_name(enum vk_triggers_provider p);

/** Parse a provider name (as in /hooks/<name>). Returns 0 or VK_EINVAL. */
int vk_triggers_provider_parse(const char *name, enum vk_triggers_provider *out) VK_MUST_CHECK;

/** "push", "tag", "pull_request", "ping", "other". */
const char *vk_triggers_kind_name(enum vk_triggers_kind k);

/**
 * Check that the request really comes from the provider, in constant time,
 * before anything else looks at the body:
 *
 *   github     X-Hub-Signature-256: sha256=<hex HMAC-SHA256(secret, body)>
 *   gitea      X-Gitea-Signature:   <hex HMAC-SHA256(secret, body)>
 *   bitbucket  X-Hub-Signature:     sha256=<hex HMAC-SHA256(secret, body)>
 *   gitlab     X-Gitlab-Token:      <the secret itself>
 *   generic    X-Vulcan-Signature:  sha256=<hex HMAC-SHA256(secret, body)>
 *
 * Hex digits may be upper or lower case. `body`/`len` are the raw request
 * bytes (borrowed; need not be NUL-terminated). `secret` (borrowed) must be
 * non-empty: a repository without a secret accepts no webhooks.
 * Returns 0, or VK_EPERM (missing, malformed or wrong signature, no secret)
 * with the reason in `err`; never says which byte differed.
 */
int vk_triggers_hook_verify(enum vk_triggers_provider provider, vk_triggers_header_fn *header,
                            void *ctx, const char *body, size_t len, const char *secret,
                            struct vk_err *err) VK_MUST_CHECK;

/**
 * Compute the signature header value a provider would send for `body` with
 * `secret` ("sha256=<hex>" or, for Gitea, "<hex>"; for GitLab the secret
 * itself) into `out` (at least 72 + strlen(secret) bytes when GitLab).
 * For tests, the CLI and clients of the generic hook. Returns 0, VK_EINVAL
 * (no secret) or VK_ETOOBIG (`out` too small).
 */
int vk_triggers_hook_sign(enum vk_triggers_provider provider, const char *body, size_t len,
                          const char *secret, char *out, size_t outsz) VK_MUST_CHECK;

/**
 * Normalise a verified webhook. The event type comes from the provider's
 * header (X-GitHub-Event, X-Gitlab-Event, X-Gitea-Event, X-Event-Key; the
 * generic provider's body field "event"), the delivery id from X-GitHub-Delivery,
 * X-Gitlab-Event-UUID, X-Gitea-Delivery, X-Request-UUID (else X-Hook-UUID plus
 * a hash of the body) or X-Vulcan-Delivery. Events we do not act on give
 * kind VK_TRIGGERS_EV_OTHER and succeed. Borrows `body`. On success *out is a new
 * event owned by the caller (vk_triggers_event_free()).
 * Returns 0; VK_EINVAL (no event header, body not a JSON object, a required
 * field missing or of the wrong type, a malformed sha — the message names the
 * field, e.g. "field 'repository.clone_url' must be a string"); VK_ETOOBIG
 * (body or a field over its cap); VK_ENOMEM.
 */
int vk_triggers_hook_parse(enum vk_triggers_provider provider, vk_triggers_header_fn *header,
                           void *ctx, const char *body, size_t len, struct vk_triggers_event **out,
                           struct vk_err *err) VK_MUST_CHECK;

/** Free an event and everything in it. Accepts NULL. */
void vk_triggers_event_free(struct vk_triggers_event *ev);

/**
 * Replace the event's changed paths with a copy of `paths` (borrowed), sorted
 * and deduplicated, and mark them complete. Returns 0, VK_ETOOBIG or VK_ENOMEM.
 */
int vk_triggers_event_set_paths(struct vk_triggers_event *ev, const char *const *paths, size_t n,
                                struct vk_err *err) VK_MUST_CHECK;

/** True when any of the event's repository URLs is vk_triggers_url_same() as `url`. */
bool vk_triggers_event_matches_repo(const struct vk_triggers_event *ev, const char *url);

/**
 * Fill `out` for vk_workflow_triggered(): push → push (branch), tag → tag,
 * pull_request → pull_request (branch = base branch, action). The strings are
 * returned borrowed (valid until vk_triggers_event_free(ev)). `paths` is NULL
 * (unknown: path filters pass) unless `paths_complete`.
 * Returns 0, or VK_ENOTFOUND when the event starts no workflow: ping, other
 * events, and deleted branches or tags.
 */
int vk_triggers_event_to_wf(const struct vk_triggers_event *ev,
                            struct vk_wf_event *out) VK_MUST_CHECK;

/* ================================================================ Repository URLs */

/**
 * Normalise a repository URL for comparison (not for cloning):
 * https://, http://, ssh://, git://, git+ssh:// and scp-like `[user@]host:path`
 * all become "host[:port]/path" with credentials, query and fragment dropped,
 * the host and (network URLs being case-insensitive on every supported
 * provider) the path lowercased, default ports (80, 443, 22, 9418) dropped,
 * repeated slashes folded, a trailing "/" and ".git" removed. `file://` URLs
 * and absolute local paths become the path (case kept), also without ".git"
 * and trailing "/". Writes a NUL-terminated string to `out`.
 * Returns 0, VK_EINVAL (empty, control characters or spaces, no host or path)
 * or VK_ETOOBIG (longer than VK_TRIGGERS_MAX_URL or `outsz`).
 */
int vk_triggers_url_normalize(const char *url, char *out, size_t outsz) VK_MUST_CHECK;

/** True when both URLs normalise to the same string; false when either is invalid. */
bool vk_triggers_url_same(const char *a, const char *b);

/* ================================================================ Manual trigger inputs */

#define VK_TRIG_MAX_INPUTS 64      /**< inputs accepted in one request */
#define VK_TRIG_MAX_INPUT_LEN 4096 /**< bytes of one input value */

/**
 * Check the inputs of a manual trigger against the workflow's
 * `manual { input … }` declarations: every given name must be declared; a
 * `choice` input takes only one of its choices; a missing (or empty) input
 * gets its default; a `required` input without value or default is an error.
 * `given` (borrowed) has `ngiven` name/value pairs (a name given twice is an
 * error). On success *out is an array of every declared input in declaration
 * order (inputs with neither value nor default are left out), allocated with
 * its strings from `pool` (borrows the pool; the result lives as long as it).
 * Returns 0; VK_EPERM (the workflow has no manual trigger); VK_EINVAL (the
 * message names the input); VK_ETOOBIG; VK_ENOMEM.
 */
int vk_triggers_inputs_resolve(const struct vk_workflow *wf, const struct vk_cond_var *given,
                               size_t ngiven, struct vk_pool *pool, struct vk_cond_var **out,
                               size_t *nout, struct vk_err *err) VK_MUST_CHECK;

/**
 * Like vk_triggers_inputs_resolve() with the inputs as a JSON object text
 * `{"name": "value", …}` (borrowed; values may be strings, integers or
 * booleans, which become "true"/"false"). NULL or an empty `json` means no inputs.
 */
int vk_triggers_inputs_resolve_json(const struct vk_workflow *wf, const char *json, size_t len,
                                    struct vk_pool *pool, struct vk_cond_var **out, size_t *nout,
                                    struct vk_err *err) VK_MUST_CHECK;

/* ================================================================ Recorded headers */

/**
 * A vk_triggers_header_fn that looks `name` up in the JSON object `ctx` (a
 * json_t *, borrowed) of header names and string values, case-insensitively:
 * how the trigger service replays the headers a webhook arrived with.
 */
const char *vk_triggers_header_json(void *ctx, const char *name);

/**
 * A recorder around another header function: every header looked up through
 * vk_triggers_header_record() that exists is also put into `seen` (a JSON
 * object). Verify and parse a webhook through it, and `seen` holds exactly
 * the headers the trigger service needs to parse it again.
 */
struct vk_triggers_header_log {
    vk_triggers_header_fn *inner; /**< the request's own lookup */
    void *inner_ctx;
    json_t *seen; /**< borrowed JSON object; values are added to it */
};

/** The recorder's vk_triggers_header_fn; `ctx` is a struct vk_triggers_header_log. */
const char *vk_triggers_header_record(void *ctx, const char *name);

/* ================================================================ The trigger service */

struct vk_triggers_service;

/** A clock: Unix milliseconds. */
typedef int64_t (*vk_triggers_clock_fn)(void *ctx);

/**
 * Told (on a service thread, after the outcome is committed) that request `id`
 * ended with `status` and the JSON text `result` (borrowed for the call).
 */
typedef void (*vk_triggers_done_fn)(void *ctx, const char *id, int status, const char *result);

/** Defaults. */
#define VK_TRIGGERS_DEFAULT_THREADS 2
#define VK_TRIGGERS_DEFAULT_CRON_INTERVAL_MS 15000
#define VK_TRIGGERS_DEFAULT_POLL_MS 250         /**< look for requests of other replicas */
#define VK_TRIGGERS_STALE_MS (15LL * 60 * 1000) /**< a claim older than this is taken over */
#define VK_TRIGGERS_MAX_ATTEMPTS 3              /**< claims before a request is given up */
#define VK_TRIGGERS_MAX_FOLLOW_DEPTH                                                               \
    3 /**< `chain` triggers: a chain made by following                                             \
       *   this deep is followed no further */

struct vk_triggers_opts {
    struct vk_store *store;      /**< borrowed, required */
    struct vk_orch *orch;        /**< borrowed, required: chains are started through it */
    const char *data_dir;        /**< git mirrors in DATA_DIR/mirrors (default ./vulcan-data) */
    unsigned threads;            /**< request threads (default VK_TRIGGERS_DEFAULT_THREADS) */
    int64_t poll_ms;             /**< how often idle threads look for requests queued elsewhere
                                  *   (default VK_TRIGGERS_DEFAULT_POLL_MS) */
    int64_t cron_interval_ms;    /**< scheduler pass interval (default 15000); < 0: no
                                  *   scheduler thread (call vk_triggers_cron_run()) */
    vk_triggers_clock_fn now_fn; /**< the scheduler's clock (default vk_time_now_ms) */
    void *now_ctx;               /**< passed to now_fn */
    vk_triggers_done_fn on_done; /**< may be NULL (see vk_triggers_set_done_hook()) */
    void *on_done_ctx;
    struct vk_metrics *metrics; /**< borrowed, may be NULL: webhook-to-chain latency */
    /* Commit statuses (see "Commit statuses" below). */
    const char *public_url;    /**< the console's URL for status links (copied; may be set
                                *   later with vk_triggers_set_public_url()) */
    int64_t status_poll_ms;    /**< reporter pass interval (default 500); < 0: no reporter
                                *   thread (call vk_triggers_status_run()) */
    int64_t status_retry_ms;   /**< the first retry's delay (default 1000), doubled per
                                *   failure up to VK_TRIGGERS_STATUS_MAX_BACKOFF_MS */
    int64_t status_give_up_ms; /**< a status still failing this long after its first
                                *   failure is given up, logged (default 1 hour) */
    long status_timeout_ms;    /**< one post's timeout (default 10000) */
    /** Borrowed, may be NULL (no policy: local tools and tests): checked before every
     * clone and fetch of a mirror and every URL import (docs/security.md). */
    const struct vk_git_url_policy *url_policy;
};

/**
 * Create a service (no thread yet). Borrows `opts` (data_dir is copied). On
 * success *out is returned owned (vk_triggers_service_free()).
 * Returns 0, VK_EINVAL, VK_ENOMEM.
 */
int vk_triggers_service_new(const struct vk_triggers_opts *opts, struct vk_triggers_service **out,
                            struct vk_err *err) VK_MUST_CHECK;

/** Set the done hook (replacing opts.on_done), before vk_triggers_service_start(). */
void vk_triggers_set_done_hook(struct vk_triggers_service *svc, vk_triggers_done_fn fn, void *ctx);

/** Start the request threads and (unless opts.cron_interval_ms < 0) the scheduler. */
int vk_triggers_service_start(struct vk_triggers_service *svc, struct vk_err *err) VK_MUST_CHECK;

/** A request was queued in this process: wake an idle thread now. Thread-safe. */
void vk_triggers_wake(struct vk_triggers_service *svc);

/** Stop the threads (a request in progress finishes first). Idempotent. */
void vk_triggers_service_stop(struct vk_triggers_service *svc);

/** Stop and free. Accepts NULL. */
void vk_triggers_service_free(struct vk_triggers_service *svc);

/**
 * Handle queued requests on the calling thread until none is left; *n (may be
 * NULL) receives how many were handled. For tests and tools without threads.
 */
int vk_triggers_run_pending(struct vk_triggers_service *svc, size_t *n,
                            struct vk_err *err) VK_MUST_CHECK;

/**
 * Run the scheduler once now, as its thread does every opts.cron_interval_ms:
 * handle the refresh requests of repositories (and, on the first pass, refresh
 * every repository), then start a chain for each schedule whose slot came (a
 * schedule missed while the server was down runs once, at its latest slot).
 * Each slot is claimed in the store, so with several replicas on one database
 * it fires exactly once. *fired (may be NULL) receives the number of chains
 * started. Returns 0 or the first store error.
 */
int vk_triggers_cron_run(struct vk_triggers_service *svc, size_t *fired,
                         struct vk_err *err) VK_MUST_CHECK;

/* ================================================================ Commit statuses */

/*
 * Each chain of a repository that has a status token is reported to the provider the
 * repository came from, with a link to the chain in the console: when it is created
 * (pending), when it starts (running) and when it ends (success, failure, error for a
 * cancel). The store's outbox (vk_store_status_*) is written in the same transaction as
 * each status change; the reporter thread of the trigger service (any replica) claims
 * its rows, posts the newest status of each chain, retries failures (network errors,
 * 408, 429, 5xx) with exponential backoff and gives up after opts.status_give_up_ms
 * (logged); other answers (401, 404, 422...) are logged and dropped. A chain's own
 * result never depends on its report.
 *
 * The functions below build the request (pure, no I/O): the API base URL, the
 * repository's path at the provider, the path, headers and JSON body.
 */

#define VK_TRIGGERS_STATUS_MAX_TOKEN 1024     /**< bytes of a status token */
#define VK_TRIGGERS_STATUS_MAX_PUBLIC_URL 200 /**< bytes of the console's public URL */
#define VK_TRIGGERS_STATUS_MAX_DESC 140       /**< bytes of a description (GitHub's limit) */
#define VK_TRIGGERS_STATUS_MAX_NAME 100       /**< bytes of a context / name */
#define VK_TRIGGERS_STATUS_MAX_KEY 40         /**< bytes of a Bitbucket key */
#define VK_TRIGGERS_STATUS_MAX_BACKOFF_MS (5LL * 60 * 1000) /**< the longest retry delay */
#define VK_TRIGGERS_STATUS_DEFAULT_GIVE_UP_MS (60LL * 60 * 1000)

/** What to report. Strings are borrowed. */
struct vk_triggers_status {
    enum vk_triggers_provider provider; /**< github, gitlab, gitea or bitbucket */
    const char *api_url;                /**< API base URL; NULL/"": the provider's default */
    const char *repo_url;               /**< the registered repository URL */
    const char *token;
    const char *sha; /**< 40 or 64 lowercase hex digits */
    enum vk_store_chain_status status;
    const char *workflow;    /**< the workflow's name (context "vulcan/<name>") */
    const char *target_url;  /**< the chain's page in the console */
    const char *description; /**< cut to VK_TRIGGERS_STATUS_MAX_DESC bytes */
};

/** A request to send: POST base + path with the headers and the JSON body. */
struct vk_triggers_status_req {
    char base[VK_TRIGGERS_MAX_URL + 1];
    char path[VK_TRIGGERS_MAX_URL + 256];
    const char *header_names[6];
    char header_values[6][VK_TRIGGERS_STATUS_MAX_TOKEN + 64];
    size_t nheaders;
    char *body; /**< JSON text, owned (vk_triggers_status_req_release()) */
};

/**
 * The provider's default API base URL for `repo_url` into `out` (`n` bytes):
 * https://api.github.com, https://gitlab.com/api/v4, https://api.bitbucket.org/2.0, and for
 * Gitea the repository's host (and the path before owner/repo) + /api/v1 (https unless
 * the repository URL is http). Returns 0, VK_EINVAL (generic provider, or a Gitea URL
 * without a host), VK_ETOOBIG.
 */
int vk_triggers_status_api_url(enum vk_triggers_provider p, const char *repo_url, char *out,
                               size_t n, struct vk_err *err) VK_MUST_CHECK;

/**
 * The repository's path at the provider, from `repo_url` (case kept, `.git` and slashes
 * dropped) into `out`: "owner/repo" (GitHub, Gitea; Bitbucket "workspace/slug": the last
 * two path segments), or GitLab's whole project path ("group/sub/project"). Segments may
 * hold only letters, digits and . _ ~ - (not "." or ".."). Returns 0, VK_EINVAL, VK_ETOOBIG.
 */
int vk_triggers_status_repo_path(enum vk_triggers_provider p, const char *repo_url, char *out,
                                 size_t n, struct vk_err *err) VK_MUST_CHECK;

/**
 * Build the request reporting `st` (borrowed) into *out (initialised here; release it with
 * vk_triggers_status_req_release(), also after a failure). Every field is checked and
 * bounded: the token (no control characters, at most VK_TRIGGERS_STATUS_MAX_TOKEN), the
 * sha, the repository path; the workflow name and description are cut at a character
 * boundary. Returns 0, VK_EINVAL, VK_ETOOBIG, VK_ENOMEM.
 */
int vk_triggers_status_build(const struct vk_triggers_status *st,
                             struct vk_triggers_status_req *out, struct vk_err *err) VK_MUST_CHECK;

/** Free the body of a built request. Accepts a zeroed request. */
void vk_triggers_status_req_release(struct vk_triggers_status_req *req);

/**
 * The delay before retry number `attempt` (1 for the first failure) with first delay
 * `base_ms`: base_ms * 2^(attempt-1), at most VK_TRIGGERS_STATUS_MAX_BACKOFF_MS.
 */
int64_t vk_triggers_status_backoff(int64_t base_ms, int attempt);

/** Set the console URL of status links (copied; cut to VK_TRIGGERS_STATUS_MAX_PUBLIC_URL
 *  bytes, trailing slashes dropped). Thread-safe. */
void vk_triggers_set_public_url(struct vk_triggers_service *svc, const char *url);

/**
 * Run one reporter pass on the calling thread, as the reporter thread does every
 * opts.status_poll_ms: claim the due status reports and post each. *posted (may be NULL)
 * receives the number of reports ended (reported, dropped or given up). Returns 0 or a
 * store error.
 */
int vk_triggers_status_run(struct vk_triggers_service *svc, size_t *posted,
                           struct vk_err *err) VK_MUST_CHECK;

/**
 * Queue a schedule refresh of repository `repo_id` (after it was created or its
 * URL, glob or default branch changed). A vk_store_treq_create() of kind
 * VK_STORE_TREQ_REFRESH, usable without a service. Returns 0 or a store error.
 */
int vk_triggers_request_refresh(struct vk_store *store, const char *tenant_id, const char *repo_id,
                                struct vk_err *err) VK_MUST_CHECK;

#endif /* VULCAN_TRIGGERS_H */
