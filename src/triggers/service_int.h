/*
 * service_int.h — private to the trigger service (src/triggers/service*.c,
 * load.c, webhook.c, manual.c, scheduler.c).
 */
#ifndef VULCAN_TRIGGERS_SERVICE_INT_H
#define VULCAN_TRIGGERS_SERVICE_INT_H

#include "vulcan/triggers.h"

#include <jansson.h>
#include <pthread.h>
#include <stdbool.h>

struct vk_triggers_service {
    struct vk_triggers_opts opts;
    char mirrors[4096]; /* DATA_DIR/mirrors */
    char instance[VK_UUID_LEN];
    struct vk_metrics_std m; /* handles in opts.metrics (all NULL without) */
    pthread_mutex_t lock;    /* guards everything below */
    pthread_cond_t cond;     /* request threads and the scheduler wait on it */
    bool started, stopping;
    unsigned wakes; /* requests announced in-process, not yet looked for */
    pthread_t *threads;
    unsigned nthreads;
    pthread_t cron_thread;
    bool cron_started;
    bool refresh_all;        /* the scheduler's first pass refreshes every repository */
    pthread_t status_thread; /* the commit-status reporter (status.c) */
    bool status_started;
    char public_url[VK_TRIGGERS_STATUS_MAX_PUBLIC_URL + 1]; /* links of statuses */
    int64_t next_prune; /* when finished requests are pruned next (vk_time_now_ms) */
};

/* The scheduler's clock. */
int64_t vk__trig_now(struct vk_triggers_service *svc);

/* Open a handle on the mirror of `url` under DATA_DIR/mirrors. */
int vk__trig_mirror_open(struct vk_triggers_service *svc, const char *url,
                         struct vk_git_mirror **out, struct vk_err *err);

/* ---------------------------------------------------------------- Workflow sets (load.c) */

/* One workflow file read at a commit: its text, and the loaded workflow or the error. */
struct vk__trig_item {
    char *file;
    struct vk_buf text;
    struct vk_workflow *wf; /* NULL when it did not load */
    char *error;            /* the rendered load error when wf is NULL */
};

struct vk__trig_set {
    struct vk__trig_item *items;
    size_t n;
    char *commit_message; /* the commit's message and "Name <email>" (NULL when unknown) */
    char *commit_author;
};

/* True when the commit message asks CI to skip it: "[skip ci]" or "[ci skip]" anywhere
 * (case-insensitive), as GitHub, GitLab and Gitea honour; the marker found into `which`. */
bool vk__trig_skip_marker(const char *message, char which[16]);

/* Read and load the workflow files of `repo` at `sha` (all matching its glob, or only
 * `only_file`: VK_ENOTFOUND when it is not there). A file that does not load is an item
 * with `error`, not a failure. */
int vk__trig_load(struct vk_git_mirror *m, const struct vk_store_repo *repo, const char *sha,
                  const char *only_file, struct vk__trig_set *set, struct vk_err *err);
void vk__trig_set_release(struct vk__trig_set *set);
/* True when a loaded workflow has a trigger of `type` with a paths filter. */
bool vk__trig_needs_paths(const struct vk__trig_set *set, enum vk_wf_trigger_type type);
/* Start a chain per item whose triggers match `wfev` (NULL: every item) in context `tmpl`
 * (source_file is set per item), a failed chain per item that did not load; append the
 * chain ids to `chains` and {"file","reason"} to `skipped`. */
int vk__trig_submit(struct vk_triggers_service *svc, const struct vk__trig_set *set,
                    const struct vk_orch_context *tmpl, const struct vk_wf_event *wfev,
                    json_t *chains, json_t *skipped, struct vk_err *err);
/* Append {"file", "reason"} to `skipped`. Returns 0 or VK_ENOMEM. */
int vk__trig_skip(json_t *skipped, const char *file, const char *reason);

/* ---------------------------------------------------------------- Outcomes */

/*
 * The outcome of a request: an HTTP status and a JSON object. A handler returns 0 with
 * *status and *result (owned) set, also for refusals (400, 404, 502...); a negative code
 * only when the request could not be handled at all (the service then records 500 or,
 * for a store error, leaves the request to be taken again).
 */
typedef int (*vk__trig_handler_fn)(struct vk_triggers_service *svc, const struct vk_store_treq *rq,
                                   int *status, json_t **result, struct vk_err *err);

int vk__trig_webhook(struct vk_triggers_service *svc, const struct vk_store_treq *rq, int *status,
                     json_t **result, struct vk_err *err); /* webhook.c */
int vk__trig_manual(struct vk_triggers_service *svc, const struct vk_store_treq *rq, int *status,
                    json_t **result, struct vk_err *err); /* manual.c */
int vk__trig_workflows(struct vk_triggers_service *svc, const struct vk_store_treq *rq, int *status,
                       json_t **result, struct vk_err *err); /* manual.c */
int vk__trig_refresh(struct vk_triggers_service *svc, const struct vk_store_treq *rq, int *status,
                     json_t **result, struct vk_err *err); /* scheduler.c */
int vk__trig_follow(struct vk_triggers_service *svc, const struct vk_store_treq *rq, int *status,
                    json_t **result, struct vk_err *err); /* follow.c */

/* {"error": code, "message": msg} with the status a VK code answers. Returns 0 or VK_ENOMEM. */
int vk__trig_error(const struct vk_err *e, int code, int *status, json_t **result);
/* {"error": name, "message": msg} with `status`. Returns 0 or VK_ENOMEM. */
int vk__trig_refuse(int status, const char *name, const char *msg, int *out_status,
                    json_t **result);
/* A git failure: 502 git_error with a fixed message naming `request_id` (the full text
 * goes to the server log only); a URL policy refusal (VK_EPERM): 403 url_not_allowed with
 * its reason; store and memory errors keep their own status. */
int vk__trig_git_error(const struct vk_err *e, int code, const char *request_id, int *status,
                       json_t **result);

/* ---------------------------------------------------------------- Scheduler (scheduler.c) */

/* Replace the schedules of `repo` by those of the loaded workflows in `set`. */
int vk__trig_schedules_from_set(struct vk_triggers_service *svc, const struct vk_store_repo *repo,
                                const struct vk__trig_set *set, struct vk_err *err);
/* The scheduler thread: start / stop (with the service's lock not held). */
int vk__trig_cron_start(struct vk_triggers_service *svc, struct vk_err *err);
void vk__trig_cron_join(struct vk_triggers_service *svc);

/* ---------------------------------------------------------------- Commit statuses (status.c) */

/* The reporter thread: start / stop (with the service's lock not held). */
int vk__trig_status_start(struct vk_triggers_service *svc, struct vk_err *err);
void vk__trig_status_join(struct vk_triggers_service *svc);

#endif /* VULCAN_TRIGGERS_SERVICE_INT_H */
