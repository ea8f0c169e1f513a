/*
 * triggers — what starts a chain: webhooks from Git hosts (GitHub, GitLab,
 * Gitea, Bitbucket Cloud and our own generic format) and manual triggers with
 * inputs; cron schedules are in vulcan/cron.h, reading workflow files out of a
 * repository at a commit in vulcan/git.h.
 *
 * Everything here is a pure library function (no HTTP, no store): the HTTP
 * route and the orchestrator call them in this order for a webhook request:
 *
 *   1. vk_triggers_hook_verify()            raw body + headers + the repository's secret
 *   2. vk_triggers_hook_parse()             → struct vk_triggers_event (normalised)
 *   3. vk_triggers_event_matches_repo() against the registered repository URL
 *   4. vk_triggers_event_to_wf()       → struct vk_wf_event for the workflow matcher
 *   5. struct vk_git_mirror        list/read workflow files at ev->commit_sha
 *
 * (docs/triggers.md has the whole recipe and the generic webhook format.)
 *
 * Invariants: every string a parsed event holds is NUL-terminated, free of
 * control characters and bounded (VK_TRIGGERS_MAX_* below); shas are lowercase hex.
 * Time zones are read from TZif files, never through setenv("TZ")/tzset().
 *
 * Thread-safety: no function keeps global mutable state. A parsed event, a
 * loaded time zone and a mirror handle are each used by one thread at a time
 * (a loaded zone is immutable and may be shared for reading). Different mirror
 * handles on the same cache directory may be used from several threads and
 * processes at once: clones and fetches are serialised with flock().
 */
#ifndef VULCAN_TRIGGERS_H
#define VULCAN_TRIGGERS_H

#include "vulcan/git.h"
#include "vulcan/util.h"
#include "vulcan/workflow.h"

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

#endif /* VULCAN_TRIGGERS_H */
