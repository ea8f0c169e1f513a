/*
 * api — the HTTP face of the server: the worker protocol (DESIGN §5), the
 * parser API, chains, fragments' logs, workers, health.
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
#include "vulcan/util.h"

#include <stdint.h>

struct vk_api;

/** A clock: Unix milliseconds. */
typedef int64_t vk_api_clock_fn(void *ctx);

struct vk_api_opts {
    const char *listen;         /**< "ADDR:PORT" (required; port 0 picks one) */
    struct vk_store *store;     /**< borrowed */
    struct vk_orch *orch;       /**< borrowed */
    int heartbeat_interval_s;   /**< told to workers (default 5) */
    int max_wait_s;             /**< cap on a work request's wait_s (default 60) */
    unsigned http_threads;      /**< HTTP polling threads (default 2) */
    const char *data_dir;       /**< server state; git mirrors in DATA_DIR/mirrors (default
                                 *   "./vulcan-data"; copied) */
    vk_api_clock_fn *now_fn;    /**< the scheduler's clock (default: vk_time_now_ms) */
    void *now_ctx;              /**< passed to now_fn */
    int64_t cron_interval_ms;   /**< how often the scheduler looks for due schedules (default
                                 *   15000); < 0: no scheduler thread (call vk_api_cron_run) */
    struct vk_metrics *metrics; /**< borrowed, may be NULL: with it, `GET /metrics` serves it,
                                 *   HTTP and webhook metrics are recorded and the queue and
                                 *   worker gauges are registered (docs/observability.md) */
    struct vk_tracer *tracer;   /**< borrowed, may be NULL: request and dispatch spans */
};

/** Create the API and register its routes. Borrows `opts`. */
int vk_api_new(const struct vk_api_opts *opts, struct vk_api **out,
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

/**
 * Run the scheduler once now, as its thread does every opts.cron_interval_ms: refresh the
 * schedules of repositories that asked for it (all of them on the first run), then start
 * a chain for each schedule whose slot came (a schedule missed while the server was down
 * runs once, at its latest slot). Each slot is claimed in the store, so with several
 * servers on one database it fires exactly once. *fired (may be NULL) receives the number
 * of chains started. Returns 0 or the first store error.
 */
int vk_api_cron_run(struct vk_api *api, size_t *fired, struct vk_err *err) VK_MUST_CHECK;

#endif /* VULCAN_API_H */
