/*
 * Status badge: GET /api/v1/repos/{id}/badge.svg?branch=B.
 *
 * The badge shows the status of the newest chain of the repository (and
 * branch, when given): passing, failing, running (pending or running),
 * cancelled, or unknown (no chain yet, or no such repository). Like the
 * badges of public badge services it is always answered 200 with an image,
 * because an image tag shows nothing for an error status; the state is also
 * in the X-Vulcan-Badge header. Caches must not keep it (Cache-Control:
 * no-cache).
 */
#include "api_int.h"

#include <stdio.h>
#include <string.h>

struct badge_style {
    const char *text;
    const char *color;
};

static struct badge_style style_for(const struct vk_store_chain *c)
{
    if (!c)
        return (struct badge_style){"unknown", "#9f9f9f"};
    switch (c->status) {
    case VK_STORE_CHAIN_COMPLETED:
        return (struct badge_style){"passing", "#4c1"};
    case VK_STORE_CHAIN_FAILED:
        return (struct badge_style){"failing", "#e05d44"};
    case VK_STORE_CHAIN_CANCELLED:
        return (struct badge_style){"cancelled", "#9f9f9f"};
    case VK_STORE_CHAIN_PENDING:
    case VK_STORE_CHAIN_RUNNING:
        return (struct badge_style){"running", "#dfb317"};
    }
    return (struct badge_style){"unknown", "#9f9f9f"};
}

/* Width in pixels of `s` in 11px Verdana, roughly (ASCII labels only). */
static int text_width(const char *s)
{
    int w = 0;
    for (; *s; s++)
        w += strchr("il.:|", *s) ? 3 : strchr("mw", *s) ? 10 : 7;
    return w;
}

/* Render the SVG into buf. Inputs are fixed labels, never user text. */
static int render(char *buf, size_t cap, const char *label, const struct badge_style *st)
{
    int lw = text_width(label) + 12, rw = text_width(st->text) + 12;
    return snprintf(
        buf, cap,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"20\" role=\"img\" "
        "aria-label=\"%s: %s\"><title>%s: %s</title>"
        "<linearGradient id=\"s\" x2=\"0\" y2=\"100%%\"><stop offset=\"0\" stop-color=\"#bbb\" "
        "stop-opacity=\".1\"/><stop offset=\"1\" stop-opacity=\".1\"/></linearGradient>"
        "<clipPath id=\"r\"><rect width=\"%d\" height=\"20\" rx=\"3\" fill=\"#fff\"/></clipPath>"
        "<g clip-path=\"url(#r)\"><rect width=\"%d\" height=\"20\" fill=\"#555\"/>"
        "<rect x=\"%d\" width=\"%d\" height=\"20\" fill=\"%s\"/>"
        "<rect width=\"%d\" height=\"20\" fill=\"url(#s)\"/></g>"
        "<g fill=\"#fff\" text-anchor=\"middle\" font-family=\"Verdana,Geneva,DejaVu Sans,"
        "sans-serif\" font-size=\"11\">"
        "<text x=\"%d\" y=\"15\" fill=\"#010101\" fill-opacity=\".3\">%s</text>"
        "<text x=\"%d\" y=\"14\">%s</text>"
        "<text x=\"%d\" y=\"15\" fill=\"#010101\" fill-opacity=\".3\">%s</text>"
        "<text x=\"%d\" y=\"14\">%s</text></g></svg>\n",
        lw + rw, label, st->text, label, st->text, lw + rw, lw, lw, rw, st->color, lw + rw, lw / 2,
        label, lw / 2, label, lw + rw / 2, st->text, lw + rw / 2, st->text);
}

static void h_badge(struct vk_http_req *req, void *ctx)
{
    struct vk_api *api = ctx;
    const char *id = vk_http_param(req, "id");
    const char *branch = vk_http_query(req, "branch");
    if (branch && strlen(branch) > 1024) {
        vk_http_reply_error(req, 400, "bad_request", "'branch' is longer than 1024 bytes");
        return;
    }
    const struct vk_store_chain *latest = NULL;
    struct vk_err err;
    vk_err_clear(&err);
    if (id && vk_uuid_valid(id)) {
        struct vk_store_repo repo;
        int rc = vk_store_repo_get(api->opts.store, id, vk_http_pool(req), &repo, &err);
        if (rc == 0) {
            struct vk_store_chain_filter f = {
                .repository_id = id, .branch = branch && *branch ? branch : NULL, .limit = 1};
            struct vk_store_chain *chains = NULL;
            size_t n = 0;
            char next[VK_STORE_CURSOR_LEN];
            rc = vk_store_chain_list(api->opts.store, &f, vk_http_pool(req), &chains, &n, next,
                                     &err);
            if (rc == 0 && n > 0)
                latest = &chains[0];
        }
        if (rc < 0 && rc != VK_ENOTFOUND) {
            vk__api_reply_err(req, &err, rc);
            return;
        }
    }
    struct badge_style st = style_for(latest);
    char svg[2048];
    int len = render(svg, sizeof(svg), "vulcan", &st);
    if (vk_http_set_header(req, "Cache-Control", "no-cache") < 0 ||
        vk_http_set_header(req, "X-Vulcan-Badge", st.text) < 0 || len < 0 ||
        (size_t)len >= sizeof(svg)) {
        vk_http_reply_error(req, 500, "internal", "cannot render the badge");
        return;
    }
    vk_http_reply(req, 200, "image/svg+xml", svg, (size_t)len);
}

int vk__api_badge_routes(struct vk_api *api, struct vk_err *err)
{
    return vk_http_route(api->http, "GET", "/api/v1/repos/{id}/badge.svg", h_badge, api, NULL, err);
}
