/*
 * orchestrator — turns chain state into a ready queue and keeps it moving
 * (DESIGN §3, §4).
 *
 * Submitting a workflow stores its chain and fragment tree and starts it: the
 * first fragments whose conditions hold become `ready`. Workers claim ready
 * fragments (vk_orch_claim); when a result arrives (vk_orch_result) the
 * orchestrator records it, fenced by attempt, and computes what becomes ready
 * next, inside one store transaction: the next sibling of a sequential group,
 * or the group's end when its last child finished; a false condition skips a
 * fragment and its subtree; a failure (after its retries) fails the chain and
 * skips everything not yet started. Readiness is only ever computed when
 * something finishes, never by scanning the queue.
 *
 * A reaper thread declares silent workers dead and re-queues or fails their
 * fragments; a listener thread turns the store's ready notifications (from
 * this process or, on PostgreSQL, from other replicas) into calls of the
 * ready hook, which the API uses to wake long-polling workers at once.
 *
 * No in-memory state is authoritative: everything lives in the store, so
 * several replicas can share one PostgreSQL database.
 *
 * Thread-safety: every function may be called from any thread at once.
 */
#ifndef VULCAN_ORCHESTRATOR_H
#define VULCAN_ORCHESTRATOR_H

#include "vulcan/store.h"
#include "vulcan/telemetry.h"
#include "vulcan/util.h"
#include "vulcan/workflow.h"

#include <stdbool.h>
#include <stdint.h>

/* ---------------------------------------------------------------- Types */

struct vk_orch;

/** Called (from the listener thread) when fragments of machine group `group` became ready. */
typedef void vk_orch_ready_fn(void *ctx, const char *group);

/** `vulcan server --queue-timeout` default: 24 hours. */
#define VK_ORCH_DEFAULT_QUEUE_TIMEOUT_MS (24LL * 3600 * 1000)
/** Most bytes of the $NEEDS_… environment (results and outputs of its needs) one fragment
 *  gets; more skips it, saying so. */
#define VK_ORCH_MAX_NEEDS_ENV (1 << 20)

struct vk_orch_opts {
    int64_t worker_timeout_ms;  /**< a worker silent this long is dead (default 30000) */
    int max_attempts;           /**< attempts before a fragment whose workers died fails (3) */
    int64_t reap_interval_ms;   /**< how often the reaper looks (default timeout / 4, <= 5000) */
    vk_orch_ready_fn *on_ready; /**< may be NULL */
    void *on_ready_ctx;
    struct vk_metrics *metrics; /**< borrowed, may be NULL: chain/fragment counters and
                                 *   histograms are recorded there (docs/observability.md) */
    struct vk_tracer *tracer;   /**< borrowed, may be NULL: chain spans are ended there */
    bool no_reaper;             /**< vk_orch_start() starts no reaper: another process has
                                 *   the orchestrator role (`vulcan server --roles`) */
    bool deny_network;          /**< `--sandbox-network deny`: vk_orch_submit() refuses a
                                 *   workflow with a `network #true` fragment (VK_EPERM) */
    int64_t queue_timeout_ms;   /**< a fragment `ready` this long without its own
                                 *   `queue-timeout` fails (default 24 h) */
    /** Lead the singletons under leases in the store (`vulcan server`: several replicas may
     * share it). false: this process leads every singleton it runs without asking (`vulcan
     * run`, tests). */
    bool leases;
    unsigned singletons;  /**< with `leases`: bit (1u << s) of each vk_orch_singleton this
                           *   process runs and may lead (its roles) */
    int64_t lease_ttl_ms; /**< a lease not renewed this long moves (default 3000; renewed
                           *   every ttl / 4) */
};

/** The work one replica does for all (DESIGN §13), each under a lease of its name. */
enum vk_orch_singleton { VK_ORCH_REAPER, VK_ORCH_CRON, VK_ORCH_SINGLETONS };

/**
 * Fail every fragment `ready` longer than its queue timeout (its own, else
 * opts.queue_timeout_ms) at time `now`: its error is "queue timeout (30m) reached: " and
 * the waiting reason (vk_store_wait_reason); the chain goes on as after any failure.
 * vk_orch_reap() calls this on every pass.
 */
int vk_orch_expire_queued(struct vk_orch *o, int64_t now, struct vk_err *err) VK_MUST_CHECK;

/** The context a chain runs in (what conditions and scripts see). Borrowed. */
struct vk_orch_context {
    const char *tenant_id; /**< NULL: the "default" tenant */
    const char *source_file;
    const char *repository_id; /**< NULL: none */
    const char *repository_url;
    const char *commit_sha;
    const char *branch;
    const char *trigger;        /**< default "manual" */
    const char *commit_message; /**< the commit's message, NULL when unknown ($COMMIT_MESSAGE) */
    const char *commit_author;  /**< "Name <email>", NULL when unknown ($COMMIT_AUTHOR) */
    const char *trigger_ref;
    int64_t pr_number;
    bool from_fork; /**< a pull request whose head repository is not the base repository */
    const char *tag;
    const struct vk_cond_var
        *env; /**< extra environment (manual inputs, --env), wins over the workflow's */
    size_t nenv;
    int priority;
    /** The W3C traceparent of the span that caused the chain (an API request, a webhook),
     *  or NULL. With a tracer, the chain gets a span id of its own, child of that span
     *  (a new trace when NULL); see vk_orch_chain_trace(). */
    const char *trace_id;
    /** The trigger request the chain is made for, or NULL: with one, a request handled
     *  again makes each workflow's chain once (vk_orch_submit() then answers VK_EEXIST
     *  with the existing chain's id). */
    const char *trigger_request_id;
};

/**
 * Chains and traces. The chain's `trace_id` column holds text of at most
 * VK_ORCH_TRACE_MAX - 1 bytes: the traceparent of the chain's own span
 * ("00-<trace id>-<chain span id>-<flags>"), followed, when the chain has a parent
 * span, by "/" and that parent's 16 hex span id. The chain span itself is exported
 * when the chain reaches a final status (start: created_at).
 */
#define VK_ORCH_TRACE_MAX 80

/**
 * Parse a chain's stored trace text `s` (may be NULL): *chain receives the chain
 * span's context, *parent (may be NULL) the parent span's (trace id of the chain,
 * span id all zero when there is none). Returns 0, or VK_EINVAL when `s` is NULL or
 * not of that form (older rows, other writers).
 */
int vk_orch_chain_trace(const char *s, struct vk_trace_ctx *chain,
                        struct vk_trace_ctx *parent) VK_MUST_CHECK;

/** The result of one attempt, as a worker reports it. Borrowed. */
struct vk_orch_result {
    const char *worker_id;
    const char *fragment_id;
    int attempt;
    bool success;
    bool has_exit_code;
    int exit_code;
    const char *error; /**< may be NULL */
};

/* ---------------------------------------------------------------- Lifecycle */

/**
 * Create an orchestrator over `store` (borrowed; must outlive it); makes sure the
 * "default" tenant exists. Borrows `opts` (may be NULL). On success *out is owned
 * by the caller (vk_orch_free()). Returns 0, VK_ENOMEM or VK_EDB.
 */
int vk_orch_new(struct vk_store *store, const struct vk_orch_opts *opts, struct vk_orch **out,
                struct vk_err *err) VK_MUST_CHECK;

/**
 * Set the ready hook (replacing opts.on_ready), before vk_orch_start(): the API
 * that wakes waiting workers is usually created after the orchestrator.
 */
void vk_orch_set_ready_hook(struct vk_orch *o, vk_orch_ready_fn *fn, void *ctx);

/**
 * Start the reaper thread (unless opts.no_reaper) and, when a ready hook is set, the
 * ready-listener thread. Returns 0 or VK_EIO.
 */
int vk_orch_start(struct vk_orch *o, struct vk_err *err) VK_MUST_CHECK;

/** Stop the threads (idempotent). */
void vk_orch_stop(struct vk_orch *o);

/** Stop and free. Accepts NULL. */
void vk_orch_free(struct vk_orch *o);

/* ---------------------------------------------------------------- Chains */

/**
 * Store `wf` as a new chain in context `ctx` and start it. `definition`
 * (may be NULL) is the workflow's source text, kept for rerun. The chain id is
 * written to `chain_id`; *nfragments (may be NULL) receives the fragment count.
 * Returns 0, VK_ETOOBIG, VK_EINVAL, VK_EDB, or VK_EEXIST when ctx->trigger_request_id
 * made this source file's chain already (its id is in `chain_id`; it was started).
 */
int vk_orch_submit(struct vk_orch *o, const struct vk_workflow *wf, const char *definition,
                   const struct vk_orch_context *ctx, char chain_id[VK_UUID_LEN],
                   size_t *nfragments, struct vk_err *err) VK_MUST_CHECK;

/**
 * Store a chain that failed before it could run (its workflow did not load),
 * so the user sees why nothing ran: status failed, error `message`.
 */
int vk_orch_submit_failed(struct vk_orch *o, const struct vk_orch_context *ctx,
                          const char *definition, const char *message, char chain_id[VK_UUID_LEN],
                          struct vk_err *err) VK_MUST_CHECK;

/**
 * Cancel a chain: pending work is cancelled, running fragments are told through
 * their workers' heartbeats. Returns 0, VK_ENOTFOUND, VK_ECONFLICT (already
 * finished), VK_EDB.
 */
int vk_orch_cancel(struct vk_orch *o, const char *chain_id, struct vk_err *err) VK_MUST_CHECK;

/**
 * Start a new chain from the stored definition and context of `chain_id`.
 * Returns 0, VK_ENOTFOUND, VK_EINVAL (no stored definition), VK_EPARSE, VK_EDB.
 */
int vk_orch_rerun(struct vk_orch *o, const char *chain_id, char new_id[VK_UUID_LEN],
                  struct vk_err *err) VK_MUST_CHECK;

/* ---------------------------------------------------------------- Work */

/**
 * Claim the next ready fragment for a worker serving `groups`. Fills *out
 * (strings in `pool`). Returns 0, VK_ENOTFOUND (nothing ready), VK_EDB.
 */
struct vk_store_credential;
/**
 * vk_orch_claim that also makes and stores the claimed attempt's job token `job` (NULL:
 * none) into `token` (VK_AUTH_TOKEN_MAX bytes), as vk_store_claim_job (vulcan/store_identity.h)
 * describes.
 */
int vk_orch_claim_job(struct vk_orch *o, const char *worker_id, const char *const *groups,
                      size_t ngroups, struct vk_store_credential *job, char *token,
                      struct vk_pool *pool, struct vk_store_work *out,
                      struct vk_err *err) VK_MUST_CHECK;

int vk_orch_claim(struct vk_orch *o, const char *worker_id, const char *const *groups,
                  size_t ngroups, struct vk_pool *pool, struct vk_store_work *out,
                  struct vk_err *err) VK_MUST_CHECK;

/**
 * Record a result and advance the chain. *status (may be NULL) receives the
 * fragment's status afterwards (ready again when a retry was scheduled).
 * Returns 0, VK_ENOTFOUND, VK_ECONFLICT (stale attempt or other worker), VK_EDB.
 */
int vk_orch_result(struct vk_orch *o, const struct vk_orch_result *r,
                   enum vk_store_frag_status *status, struct vk_err *err) VK_MUST_CHECK;

/**
 * Settle the chains an old defect or a crash left unsettled: a failed or cancelled chain
 * with a group still `running` although nothing under it can run, or a final chain without
 * finished_at (issue 12 item 1; such rows survived restarts). Idempotent; vk_orch_start()
 * runs it once when it starts the reaper. *n (may be NULL) receives the number of chains
 * looked at. Returns 0, VK_EDB.
 */
int vk_orch_repair(struct vk_orch *o, size_t *n, struct vk_err *err) VK_MUST_CHECK;

/** Run the reaper once now (also done periodically by the reaper thread). */
int vk_orch_reap(struct vk_orch *o, struct vk_err *err) VK_MUST_CHECK;

/** The name of singleton `s` ("reaper", "cron"): its lease's name. Returns static. */
const char *vk_orch_singleton_name(enum vk_orch_singleton s);

/**
 * Whether this process leads singleton `s` now: always without opts.leases; with them, while
 * it holds the lease (renewed by a thread of vk_orch_start(); a renewal that fails gives it
 * up at once, so a replica cut off from the store stops acting for all). Thread-safe.
 */
bool vk_orch_leads(struct vk_orch *o, enum vk_orch_singleton s);

/** This process's lease holder name ("HOST:PID:RANDOM"). Returns borrowed. */
const char *vk_orch_holder(const struct vk_orch *o);

/**
 * With opts.leases, this replica's holder name, whose liveness lease
 * (VK_STORE_REPLICA_LEASE + holder) the lease thread renews every ttl / 4 from
 * vk_orch_start() on: work this replica claimed in the store (trigger requests) is taken
 * over by another replica once that lease expired (the replica was killed). Never
 * released on a clean stop, so nothing is taken over while it still finishes. NULL
 * without opts.leases (one process: nobody to take over from). Returns borrowed.
 */
const char *vk_orch_replica(const struct vk_orch *o);

/** The id of the "default" tenant. Returns borrowed (valid until vk_orch_free()). */
const char *vk_orch_default_tenant(const struct vk_orch *o);

/** The store this orchestrator works on. Returns borrowed. */
struct vk_store *vk_orch_store(struct vk_orch *o);

#endif /* VULCAN_ORCHESTRATOR_H */
