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
    atomic_bool stopping;
    pthread_mutex_t lock; /* guards the stop condition */
    pthread_cond_t cond;
};

/*
 * Start a chain that is pending: mark it running and activate its first
 * top-level fragments. Runs inside `tx`.
 */
int vk__orch_start_chain(struct vk_store_tx *tx, const char *chain_id, int64_t now,
                         struct vk_err *err);

/*
 * Fragment `frag_id` just reached a final status (completed, failed, skipped,
 * cancelled) inside `tx`: propagate to its parents and activate what follows.
 */
int vk__orch_after_final(struct vk_store_tx *tx, const char *frag_id, int64_t now,
                         struct vk_err *err);

#endif
