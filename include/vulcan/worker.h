/*
 * worker — the worker agent: the process side of the pull protocol
 * (DESIGN.md §4, §5, docs/worker.md).
 *
 * A vk_worker registers with a Vulcan server for one or more machine groups,
 * heartbeats on its own thread, long-polls for work and runs up to
 * `concurrency` fragment attempts at once, each through vk_exec_run() (one
 * shared struct vk_exec_env). A slot's output is streamed to the server in
 * order, with byte offsets, at least every second or every 64 KiB; then the
 * result is posted (retried on network errors for up to 5 minutes).
 *
 * It never gives up on the server: registration, polling, uploads and results
 * are retried with exponential backoff (0.5 s doubling to 60 s, with jitter);
 * when the server has forgotten the worker (404/409 on heartbeat or work
 * request) the agent registers again under a new id and goes on.
 *
 * Shutdown: vk_worker_stop() (async-signal-safe) stops asking for work at
 * once (an in-flight long-poll is aborted), lets running attempts finish
 * within the grace period, then cancels the rest and reports them with
 * `handback: true` (re-queued by the server without counting an attempt),
 * deregisters and makes vk_worker_run() return. A second vk_worker_stop()
 * shortens the grace period to zero.
 *
 * Threads: vk_worker_run() runs on the caller's thread (it supervises) and
 * starts one heartbeat thread and, per slot, one slot thread plus one log
 * uploader thread while an attempt runs; all with 256 KiB stacks. Each
 * thread has its own HTTP client. The module installs no signal handlers.
 *
 * Thread-safety: vk_worker_new/run/free from one thread; vk_worker_stop() from
 * any thread or a signal handler, at any time between new and free.
 */
#ifndef VULCAN_WORKER_H
#define VULCAN_WORKER_H

#include "vulcan/executor.h"
#include "vulcan/util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------- Types */

struct vk_worker;

/** Defaults and caps. */
#define VK_WORKER_DEFAULT_SERVER "http://127.0.0.1:8080"
#define VK_WORKER_DEFAULT_WORK_DIR "./vulcan-work"
#define VK_WORKER_DEFAULT_WAIT_S 30
#define VK_WORKER_DEFAULT_GRACE_MS 60000
#define VK_WORKER_DEFAULT_TIMEOUT_MS (60 * 60 * 1000)
#define VK_WORKER_MAX_CONCURRENCY 256
#define VK_WORKER_MAX_GROUPS 64
#define VK_WORKER_MAX_NAME 128
#define VK_WORKER_MAX_WAIT_S 300
/** grace_ms value meaning "no grace": cancel and hand back at once. */
#define VK_WORKER_NO_GRACE (-1)

/**
 * Options of vk_worker_new(). Zero / NULL means "default" for every field.
 * Borrowed only during vk_worker_new() (everything is copied).
 */
struct vk_worker_opts {
    const char *server_url;         /**< base URL (default VK_WORKER_DEFAULT_SERVER) */
    const char *const *groups;      /**< machine groups served; at least one, each non-empty */
    size_t ngroups;                 /**< number of entries in `groups` (1..VK_WORKER_MAX_GROUPS) */
    const char *name;               /**< worker name (default "<hostname>-<pid>") */
    const char *version;            /**< version reported at registration (default VK_VERSION) */
    unsigned concurrency;           /**< attempts run at once (default 1, max 256) */
    const char *work_dir;           /**< executor work root (default VK_WORKER_DEFAULT_WORK_DIR) */
    enum vk_exec_sandbox sandbox;   /**< DEFAULT = auto */
    unsigned wait_s;                /**< long-poll wait asked of the server (default 30, max 300) */
    int64_t grace_ms;               /**< shutdown grace (default 60 s; VK_WORKER_NO_GRACE: none) */
    int64_t default_timeout_ms;     /**< script timeout when the work item says 0 (default 1 h) */
    uint64_t output_cap;            /**< output bytes per attempt (default 16 MiB) */
    uint64_t memory_limit_bytes;    /**< cgroup memory limit per attempt, 0 = none */
    uint32_t pids_limit;            /**< cgroup pids limit per attempt, 0 = none */
    uint32_t cpu_millis;            /**< cgroup CPU quota in millicores, 0 = none */
    bool keep_workspace;            /**< leave workspaces in place (debugging) */
    bool no_cgroups;                /**< never use cgroups (= cgroups NEVER) */
    const char *const *bind_ro;     /**< extra read-only sandbox paths (`--sandbox-ro`), nbind_ro */
    size_t nbind_ro;                /**< at most VK_EXEC_MAX_BINDS */
    const char *const *bind_rw;     /**< extra writable sandbox paths (`--sandbox-rw`) */
    size_t nbind_rw;                /**< at most VK_EXEC_MAX_BINDS */
    bool no_network;                /**< fail fragments with `network #true` instead of
                                         running them (they would run without network) */
    enum vk_exec_cgroups cgroups;   /**< per-attempt cgroups: AUTO (only with limits, default),
                                         ALWAYS, NEVER */
    enum vk_exec_shell shell;       /**< AUTO (sh for plain scripts, default), BASH, SH */
    const char *otlp_endpoint;      /**< OTLP/HTTP collector for the worker's spans (execute,
                                         checkout, upload log); NULL: none */
    const char *metrics_listen;     /**< "ADDR:PORT": serve GET /metrics there; NULL: none */
    const char *ca_file;            /**< PEM CA certificates an https:// server is verified
                                         against (`--ca-cert`; copied); NULL: the system's */
    const char *registration_token; /**< `vk_reg_...` for a server with --require-auth (copied,
                                         and the copy wiped at vk_worker_free); NULL: none */
};

/** Counters since vk_worker_new(), for tests and status output. */
struct vk_worker_stats {
    uint64_t registrations;  /**< successful registrations (1 + re-registrations) */
    uint64_t attempts_run;   /**< attempts handed to the executor */
    uint64_t results_posted; /**< results the server acknowledged (any 2xx/4xx answer) */
    uint64_t handbacks;      /**< attempts reported with handback: true */
    uint64_t log_bytes_sent; /**< output bytes the server acknowledged */
};

/* ---------------------------------------------------------------- Lifecycle */

/**
 * Create a worker: validates and copies `opts`, sets up the executor env
 * (work_dir created if missing, bubblewrap probed, cgroups detected) and the
 * stop pipe. Nothing is sent to the server yet. On success *out is owned by
 * the caller (vk_worker_free()). Returns 0, or VK_EINVAL (bad option: no
 * group, bad URL, sandbox bwrap unavailable is NOT an error here) / VK_EIO /
 * VK_ENOMEM with details in *err.
 */
int vk_worker_new(const struct vk_worker_opts *opts, struct vk_worker **out,
                  struct vk_err *err) VK_MUST_CHECK;

/** Free a worker that is not running. Accepts NULL. */
void vk_worker_free(struct vk_worker *w);

/* ---------------------------------------------------------------- Operations */

/**
 * Run the agent until vk_worker_stop(): register (retrying forever), then
 * heartbeat, poll and run work; on stop, shut down gracefully as described
 * above. Call at most once per worker. Returns 0 after a graceful stop, or
 * VK_EIO / VK_ENOMEM when a thread cannot be started (details in *err).
 *
 * Credentials (docs/security.md, "Workers and jobs"): the registration token is sent to
 * register; the worker token the server answers with goes with every later worker call,
 * and each work item's job token with that attempt's log chunks and result. When the
 * server refuses a credential (401 on registration, heartbeat or work request; 403 on
 * registration) retrying cannot help: the worker stops at once, with no grace, handing
 * back what it ran, and vk_worker_run() returns VK_EAUTH with the server's reason.
 */
int vk_worker_run(struct vk_worker *w, struct vk_err *err) VK_MUST_CHECK;

/**
 * Begin graceful shutdown; a second call sets the grace period to zero.
 * Async-signal-safe (an atomic increment and one write(2) to a pipe; errno
 * is preserved). May be called before vk_worker_run() (it then returns at once).
 */
void vk_worker_stop(struct vk_worker *w);

/** Copy the current counters into *out. Thread-safe. */
void vk_worker_get_stats(struct vk_worker *w, struct vk_worker_stats *out);

/**
 * Copy the current worker id ("" before registration) into `out` (`cap` bytes,
 * NUL-terminated, truncated). Thread-safe.
 */
void vk_worker_id(struct vk_worker *w, char *out, size_t cap);

#endif /* VULCAN_WORKER_H */
