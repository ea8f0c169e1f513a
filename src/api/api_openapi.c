/*
 * GET /api/v1/openapi.json: the OpenAPI 3 document of the whole API. It is
 * the file web/openapi.json, embedded at build time like the console; the
 * unit test tests/unit/api/test_openapi.c checks that every route the server
 * registers is described in it, so the two cannot drift apart.
 */
#include "api_int.h"

static void h_openapi(struct vk_http_req *req, void *ctx)
{
    const struct vk__api_asset *a = vk__api_asset_find("openapi.json");
    if (!a) {
        vk_http_reply_error(req, 404, "not_found", "this build has no OpenAPI document");
        return;
    }
    vk__api_reply_asset(req, a);
}

int vk__api_openapi_routes(struct vk_api *api, struct vk_err *err)
{
    return vk_http_route(api->http, "GET", "/api/v1/openapi.json", h_openapi, api, NULL, err);
}
