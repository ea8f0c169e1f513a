/*
 * Read-only views the console and the CLI need beyond the lead's routes:
 * GET /api/v1/workers/{id} (one worker: groups, status, last heartbeat, heartbeat age and
 * current fragment).
 */
#include "api_int.h"

#include <string.h>

static void h_worker_get(struct vk_http_req *req, void *ctx)
{
    struct vk_api *api = ctx;
    const char *id = vk_http_param(req, "id");
    struct vk_store_worker w;
    struct vk_err err;
    vk_err_clear(&err);
    int rc = id && vk_uuid_valid(id)
                 ? vk_store_worker_get(api->opts.store, id, vk_http_pool(req), &w, &err)
                 : vk_err_set(&err, VK_ENOTFOUND, "no worker '%s'", id ? id : "");
    if (rc < 0) {
        vk__api_reply_err(req, &err, rc);
        return;
    }
    json_t *groups = vk__api_str_array(w.groups, w.ngroups);
    int64_t age = w.last_heartbeat ? vk_time_now_ms() - w.last_heartbeat : -1;
    json_t *o = json_pack(
        "{s:s, s:s?, s:s?, s:o, s:s, s:o, s:o, s:o, s:o}", "id", w.id, "name", w.name, "version",
        w.version, "machine_groups", groups, "status", vk_store_worker_status_name(w.status),
        "last_heartbeat", vk__api_time(w.last_heartbeat), "heartbeat_age_ms",
        age >= 0 ? json_integer(age) : json_null(), "registered_at", vk__api_time(w.registered_at),
        "current_fragment_id",
        w.current_fragment_id[0] ? json_string(w.current_fragment_id) : json_null());
    vk_http_reply_json(req, 200, o);
}

int vk__api_read_routes(struct vk_api *api, struct vk_err *err)
{
    return vk_http_route(api->http, "GET", "/api/v1/workers/{id}", h_worker_get, api, NULL, err);
}
