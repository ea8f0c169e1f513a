/*
 * The web console: the files of web/, embedded at build time
 * (cmake/Embed.cmake), served at GET / (index.html) and GET /{file}.
 *
 * Every answer carries a strong ETag (a hash of the bytes) and
 * Cache-Control: no-cache, so browsers revalidate and get 304 after an
 * upgrade-free reload; and a Content-Security-Policy that allows only this
 * origin: the console loads nothing from elsewhere and runs no inline script.
 */
#include "api_int.h"

#include <stdio.h>
#include <string.h>

const struct vk__api_asset *vk__api_asset_find(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < vk__api_nassets; i++) {
        if (strcmp(vk__api_assets[i].name, name) == 0)
            return &vk__api_assets[i];
    }
    return NULL;
}

static const char *content_type(const char *name)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {".html", "text/html; charset=utf-8"},
        {".js", "text/javascript; charset=utf-8"},
        {".css", "text/css; charset=utf-8"},
        {".json", "application/json"},
        {".svg", "image/svg+xml"},
        {".png", "image/png"},
        {".ico", "image/x-icon"},
        {".txt", "text/plain; charset=utf-8"},
    };
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot && i < VK_ARRAY_LEN(types); i++) {
        if (strcmp(dot, types[i].ext) == 0)
            return types[i].type;
    }
    return "application/octet-stream";
}

/* FNV-1a 64 of the bytes: enough to tell versions of a file apart. */
static void etag_of(const struct vk__api_asset *a, char out[24])
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < a->len; i++) {
        h ^= a->data[i];
        h *= 1099511628211ull;
    }
    snprintf(out, 24, "\"%016llx\"", (unsigned long long)h);
}

/* Reply with asset `a` (or 304 when the client holds this version). */
void vk__api_reply_asset(struct vk_http_req *req, const struct vk__api_asset *a)
{
    char etag[24];
    etag_of(a, etag);
    const char *inm = vk_http_header(req, "If-None-Match");
    int rc = vk_http_set_header(req, "ETag", etag);
    if (rc == 0)
        rc = vk_http_set_header(req, "Cache-Control", "no-cache");
    if (rc == 0)
        rc = vk_http_set_header(req, "X-Content-Type-Options", "nosniff");
    if (rc == 0 && strstr(content_type(a->name), "text/html"))
        rc = vk_http_set_header(req, "Content-Security-Policy",
                                "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                                "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; "
                                "base-uri 'none'; form-action 'self'");
    if (rc < 0) {
        vk_http_reply_error(req, 503, "unavailable", "out of memory");
        return;
    }
    if (inm && strcmp(inm, etag) == 0) {
        vk_http_reply_empty(req, 304);
        return;
    }
    vk_http_reply(req, 200, content_type(a->name), a->data, a->len);
}

static void h_index(struct vk_http_req *req, void *ctx)
{
    const struct vk__api_asset *a = vk__api_asset_find("index.html");
    if (!a) {
        vk_http_reply_error(req, 404, "not_found", "this build has no console");
        return;
    }
    vk__api_reply_asset(req, a);
}

static void h_file(struct vk_http_req *req, void *ctx)
{
    const char *name = vk_http_param(req, "file");
    const struct vk__api_asset *a = vk__api_asset_find(name);
    if (!a) {
        vk_http_reply_error(req, 404, "not_found", "no route or file '%s'", vk_http_path(req));
        return;
    }
    vk__api_reply_asset(req, a);
}

int vk__api_console_routes(struct vk_api *api, struct vk_err *err)
{
    int rc = vk_http_route(api->http, "GET", "/", h_index, api, NULL, err);
    if (rc == 0)
        rc = vk_http_route(api->http, "GET", "/{file}", h_file, api, NULL, err);
    return rc;
}
