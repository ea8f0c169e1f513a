/* Private to the API: shared between api.c, api_worker.c and api_chains.c. */
#ifndef VULCAN_API_INT_H
#define VULCAN_API_INT_H

#include "vulcan/api.h"
#include "vulcan/http.h"

#include <jansson.h>
#include <pthread.h>

/* A worker waiting in a long-poll. Lives on the heap; owned by the dispatcher list. */
struct vk__api_waiter {
    struct vk__api_waiter *prev, *next;
    struct vk_api *api;
    struct vk_http_req *req;
    char worker_id[VK_UUID_LEN];
    size_t ngroups;
    char *groups[VK_STORE_MAX_GROUPS];
};

struct vk_api {
    struct vk_api_opts opts;
    struct vk_http_server *http;
    pthread_mutex_t lock; /* guards the waiter list */
    struct vk__api_waiter *head, *tail;
};

/* Route registration, per file. */
int vk__api_worker_routes(struct vk_api *api, struct vk_err *err);
int vk__api_chain_routes(struct vk_api *api, struct vk_err *err);

/* Map a store/orchestrator error to an HTTP reply. */
void vk__api_reply_err(struct vk_http_req *req, const struct vk_err *err, int code);

/* JSON helpers: a string or null; a time in ms as an RFC 3339 string or null. */
json_t *vk__api_str(const char *s);
json_t *vk__api_time(int64_t ms);

/* A JSON string member of `o`, or NULL when absent or not a string. */
const char *vk__api_get_str(json_t *o, const char *key);

#endif
