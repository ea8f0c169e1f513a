/*
 * agent_int.h — private to the worker agent (agent*.c): the worker and slot
 * structs and the functions the agent files share.
 *
 * Locks: w->mu guards the registration state (worker_id, gen, hb_interval_s)
 * and hb_stop; w->cond is broadcast on every stop event and used for backoff
 * sleeps. w->reg_mu serialises registrations (held across the network calls).
 * slot->mu guards the slot's running attempt and its upload buffer;
 * slot->cond wakes the uploader and the output callback (backpressure).
 * Lock order: reg_mu before mu; never hold two slot locks, or a slot lock and
 * w->mu, at once.
 */
#ifndef VK_WORKER_AGENT_INT_H
#define VK_WORKER_AGENT_INT_H

#include "vulcan/auth.h"
#include "vulcan/executor.h"
#include "vulcan/http.h"
#include "vulcan/telemetry.h"
#include "vulcan/worker.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#define AGENT_COMPONENT "worker"
#define AGENT_MAX_ID 128           /* worker ids and fragment ids */
#define AGENT_STACK (256u * 1024u) /* thread stack size */
#define AGENT_BACKOFF_MIN_MS 500
#define AGENT_BACKOFF_MAX_MS 60000
#define AGENT_CHUNK_MIN (64u * 1024u)   /* send at once when this much is buffered */
#define AGENT_CHUNK_MAX (1024u * 1024u) /* bytes per log request (server cap) */
#define AGENT_FLUSH_MS 1000             /* send at most this long after the first unsent byte */
#define AGENT_BACKPRESSURE (8u * 1024u * 1024u)
#define AGENT_BACKPRESSURE_WAIT_MS 250
#define AGENT_RESULT_RETRY_MS (5 * 60 * 1000)
#define AGENT_HANDBACK_RETRY_MS (30 * 1000)
#define AGENT_REQUEST_TIMEOUT_MS 30000L
#define AGENT_MAX_ITEM                                                                             \
    (16u * 1024u * 1024u) /* work item JSON: a script, env and up to 100                           \
                           * secrets of 64 KiB (secret-file) */

struct agent_poller;

/* Exponential backoff with jitter; one per thread (not shared). */
struct agent_backoff {
    int64_t next_ms;
    int64_t max_ms;
    uint64_t rng;
    unsigned failures; /* consecutive failures, for logging */
};

struct agent_slot {
    struct vk_worker *w;
    unsigned index;
    pthread_t thread;
    bool started;
    atomic_bool done; /* the slot thread is about to exit */

    struct vk_http_client *cl;     /* slot thread: results, re-registration */
    struct vk_http_client *log_cl; /* uploader thread */
    struct agent_poller *poller;   /* slot thread: long-poll (abortable) */

    pthread_mutex_t mu;
    pthread_cond_t cond;
    /* The running attempt ("" when idle). */
    char fragment_id[AGENT_MAX_ID + 1];
    uint32_t attempt;
    struct vk_exec_cancel cancel;
    struct vk_exec_slot *xslot; /* the executor's state kept between attempts (its cgroup) */
    atomic_bool handback;       /* grace expired: cancel and hand back */
    bool cancelled_by_server;   /* the heartbeat's cancel list named it */

    /* Upload state (slot->mu). */
    pthread_t up_thread;
    bool up_started;       /* the uploader thread runs (started at the first output; slot thread) */
    bool up_failed;        /* it could not be started for this attempt (slot thread) */
    struct vk_buf pending; /* output not yet taken by the uploader */
    size_t inflight;       /* bytes the uploader holds, not yet acknowledged */
    int64_t first_unsent_ns; /* when `pending` became non-empty */
    bool up_finished;        /* the run ended: flush and exit */
    bool up_abandon;         /* drop everything and exit (handback) */
    bool up_stale;           /* the server refused the attempt (409) */
    uint64_t up_offset;      /* bytes acknowledged by the server */
    uint64_t up_dropped;     /* bytes lost (buffer cap, gave up) */
};

/* The worker's telemetry (agent_telemetry.c): spans and its own /metrics. */
struct agent_telemetry {
    struct vk_tracer *tracer;    /* always set (exports only with an endpoint) */
    struct vk_metrics *reg;      /* NULL without --metrics-listen */
    struct vk_http_server *http; /* serves GET /metrics */
    struct vk_metric *fragments, *run_duration, *uploads, *log_bytes;
};

struct vk_worker {
    /* Options (owned copies). */
    char *server_url;
    char *ca_file; /* NULL: the system's CAs */
    char **groups;
    size_t ngroups;
    char *name;
    char *version;
    unsigned concurrency;
    unsigned wait_s;
    int64_t grace_ms;
    int64_t default_timeout_ms;
    bool no_network; /* --no-network: fail fragments that ask for the network */
    uint64_t output_cap;
    uint64_t memory_limit_bytes;
    uint32_t pids_limit;
    uint32_t cpu_millis;
    bool keep_workspace;

    struct vk_exec_env env;
    int stop_pipe[2];
    atomic_int stop_requests; /* vk_worker_stop() calls */
    atomic_bool stopping;     /* the supervisor began shutdown */
    atomic_bool ran;

    pthread_mutex_t reg_mu;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    char worker_id[AGENT_MAX_ID + 1];
    char token[VK_AUTH_TOKEN_MAX]; /* the worker token ("" without --require-auth) */
    char *reg_token;               /* the registration token (owned; wiped at free), or NULL */
    atomic_bool fatal;             /* a credential was refused: stop, return VK_EAUTH */
    char fatal_why[512];           /* the server's reason (written once, before `fatal`) */
    uint64_t gen;                  /* bumped at every successful registration */
    int hb_interval_s;
    bool hb_stop;

    struct agent_slot *slots;
    struct vk_http_client *main_cl; /* registration and deregistration */
    struct vk_http_client *hb_cl;   /* heartbeat thread */

    atomic_uint_fast64_t st_registrations;
    atomic_uint_fast64_t st_attempts;
    atomic_uint_fast64_t st_results;
    atomic_uint_fast64_t st_handbacks;
    atomic_uint_fast64_t st_log_bytes;
    struct agent_telemetry tel;
};

/* agent.c */
uint64_t vk__agent_current(struct vk_worker *w, char id[AGENT_MAX_ID + 1]);
/* The current worker token ("" when none). */
void vk__agent_token(struct vk_worker *w, char token[VK_AUTH_TOKEN_MAX]);
/* Send `token` as Bearer with `cl`'s later requests (NULL or "": none). 0 or VK_ENOMEM. */
int vk__agent_auth(struct vk_http_client *cl, const char *token);
/* A credential was refused for good: log `why`, stop with no grace (vk_worker_run returns
 * VK_EAUTH). Thread-safe; the first reason is kept. */
void vk__agent_fatal(struct vk_worker *w, const char *why);
int vk__agent_register(struct vk_worker *w, struct vk_http_client *cl, uint64_t seen_gen);
bool vk__agent_sleep(struct vk_worker *w, int64_t ms, const atomic_bool *abort_flag);
void vk__agent_backoff_init(struct agent_backoff *b, int64_t max_ms, uint64_t seed);
int64_t vk__agent_backoff_next(struct agent_backoff *b);
void vk__agent_backoff_reset(struct agent_backoff *b);
int vk__agent_thread_start(pthread_t *t, void *(*fn)(void *), void *arg);
int vk__agent_client_new(struct vk_worker *w, struct vk_http_client **out, struct vk_err *err);

/* agent_telemetry.c: set up (tracer; /metrics server when asked) in vk_worker_new, free in
 * vk_worker_free; record one attempt's outcome. */
int vk__agent_telemetry_init(struct vk_worker *w, const struct vk_worker_opts *o,
                             struct vk_err *err);
void vk__agent_telemetry_free(struct vk_worker *w);
void vk__agent_telemetry_attempt(struct vk_worker *w, const char *status, double seconds,
                                 uint64_t log_bytes);

/* agent_slot.c */
void *vk__agent_slot_main(void *arg);

/* agent_upload.c: the per-slot output uploader. */
int vk__agent_upload_start(struct agent_slot *s);
void vk__agent_upload_output(void *ctx, const char *data, size_t len);
void vk__agent_upload_finish(struct agent_slot *s, bool abandon);

/* agent_poll.c: a POST whose transfer stops when *abort_flag becomes true; `token` (NULL or
 * "": none) is sent as Bearer. */
int vk__agent_poller_new(const char *base_url, const char *ca_file, struct agent_poller **out,
                         struct vk_err *err);
void vk__agent_poller_free(struct agent_poller *p);
/* Returns 0 (any HTTP status in *status, body in *body), VK_EAGAIN when aborted,
 * VK_EIO / VK_ETIMEDOUT / VK_ETOOBIG / VK_ENOMEM. *body is initialised here. */
int vk__agent_poll_post(struct agent_poller *p, const char *path, const char *json_body,
                        const char *token, long timeout_ms, const atomic_bool *abort_flag,
                        long *status, struct vk_buf *body, struct vk_err *err);

#endif
