/* Private to the orchestrator: shared between orch.c, schedule.c and submit.c. */
#ifndef VULCAN_ORCH_INT_H
#define VULCAN_ORCH_INT_H

#include "vulcan/orchestrator.h"

#include <pthread.h>
#include <stdatomic.h>

struct vk_orch {
    struct vk_store *store;
    struct vk_orch_opts opts;
    char tenant[VK_UUID_LEN]; /* the "default" tenant */
    pthread_t reaper, listener;
    bool started;
    bool reaper_on, listener_on; /* which threads vk_orch_start() started */
    atomic_bool stopping;
    pthread_mutex_t lock; /* guards the stop condition */
    pthread_cond_t cond;
    struct vk_metrics_std m; /* handles in opts.metrics (all NULL without metrics) */
    /* Leadership of the singletons (lead.c). */
    char holder[96];
    pthread_t leaser;
    bool leaser_on;
    atomic_bool leads[VK_ORCH_SINGLETONS];
    struct vk_metric *leader_changes; /* vulcan_leader_changes_total{singleton}, or NULL */
};

/* Set up leadership (the holder name, the metric); start and stop its thread (lead.c). */
int vk__orch_lead_init(struct vk_orch *o, struct vk_err *err);
int vk__orch_lead_start(struct vk_orch *o, struct vk_err *err);
void vk__orch_lead_stop(struct vk_orch *o);

/*
 * What a transaction finished, reported by vk__orch_report() after the commit (so a
 * rolled-back transaction records nothing): the chain that reached its final status, if
 * any, and the inline fragments skipped on the way.
 */
struct vk__orch_ended {
    bool chain_ended;
    char chain_id[VK_UUID_LEN];
    enum vk_store_chain_status status;
    int64_t created_at, finished_at; /* ms */
    char trace[VK_ORCH_TRACE_MAX];   /* the chain's stored trace text ("" when none) */
    int64_t skipped;                 /* inline fragments skipped */
    /* Fragments that became ready with a `cancel-in-progress` concurrency group: after the
     * commit, the other chains holding or waiting for their group are cancelled. */
    char cancel_for[8][VK_UUID_LEN];
    char cancel_chain[8][VK_UUID_LEN]; /* the chain of cancel_for[i] */
    int ncancel;
};

/*
 * Start a chain that is pending: mark it running and activate its first
 * top-level fragments. Runs inside `tx`.
 */
int vk__orch_start_chain(struct vk_store_tx *tx, const char *chain_id, int64_t now,
                         struct vk__orch_ended *ended, struct vk_err *err);

/*
 * Fragment `frag_id` just reached a final status (completed, failed, skipped,
 * cancelled) inside `tx`: propagate to its parents and activate what follows.
 */
int vk__orch_after_final(struct vk_store_tx *tx, const char *frag_id, int64_t now,
                         struct vk__orch_ended *ended, struct vk_err *err);

/*
 * Settle a chain an old defect or a crash left unsettled (see vk_store_chain_unsettled()):
 * close its groups that have no unfinished child and give a final chain with nothing left
 * running its finished_at. Does nothing to a pending or running chain. Runs inside `tx`.
 */
int vk__orch_repair_chain(struct vk_store_tx *tx, const char *chain_id, int64_t now,
                          struct vk_err *err);

/* ---------------------------------------------------------------- Concurrency (concurrency.c) */

/* The {repo} of a concurrency group: the repository URL's path without its host, leading
 * '/' and trailing ".git" ("acme/app"), "" for NULL. */
void vk__orch_repo_name(const char *url, char *out, size_t cap);
/* Cancel, as `vulcan chains cancel` does, the chains that chain `chain_id` (with
 * `fragment_id`: that fragment of it) pushes out of its `cancel-in-progress` group, each
 * shown as "cancelled by chain <id> (concurrency group `G`)". Failures are logged. */
void vk__orch_concurrency_cancel(struct vk_orch *o, const char *chain_id, const char *fragment_id);
/* True, with "waiting for concurrency group `G` (chain ID)" in `out`, when the ready
 * fragment `fragment_id` waits for its chain's concurrency group or its own. */
bool vk__orch_concurrency_why(struct vk_orch *o, const char *fragment_id, char *out, size_t cap);
/* After chain `chain_id` was cancelled: wake the workers of what waits for its groups. */
void vk__orch_concurrency_wake(struct vk_orch *o, const char *chain_id);

/* ---------------------------------------------------------------- Telemetry (orch_telemetry.c)
 * Every function accepts an orchestrator without metrics or tracer (then does nothing). */

/* Register the standard metrics when opts.metrics is set. */
int vk__orch_telemetry_init(struct vk_orch *o, struct vk_err *err);
/* The trace text a new chain stores, from the causing span's traceparent (may be NULL):
 * "" without a tracer. */
void vk__orch_trace_new(struct vk_orch *o, const char *parent_tp, char out[VK_ORCH_TRACE_MAX]);
/* After a commit: count the ended chain (chains_total, chain_duration, its span) and the
 * skipped fragments. */
void vk__orch_report(struct vk_orch *o, const struct vk__orch_ended *e);
/* A claimed fragment: its queue wait (started_at - ready_at). */
void vk__orch_report_claim(struct vk_orch *o, const struct vk_store_fragment *f);
/* After a cancel committed: count the chain as cancelled (one chain read). */
void vk__orch_report_cancel(struct vk_orch *o, const char *chain_id);
/* After the reaper gave up on a fragment (status `st`) and committed its consequences. */
void vk__orch_report_dead(struct vk_orch *o, enum vk_store_frag_status st,
                          const struct vk__orch_ended *e);
/* A fragment reached final status `st` after running (claim to result). */
void vk__orch_report_fragment(struct vk_orch *o, const struct vk_store_fragment *f,
                              enum vk_store_frag_status st, int64_t now);

#endif
