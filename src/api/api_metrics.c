/*
 * Telemetry of the API (docs/observability.md): GET /metrics, the gauges read from the
 * store at scrape time, the HTTP request metrics (fed by the HTTP layer's on_complete hook)
 * and the server spans of requests that start work.
 *
 * Label values stay bounded: methods outside the standard set become "other", paths are
 * the route PATTERN ("/api/v1/chains/{id}", "unmatched" for 404s), never the path sent.
 */
#include "api_int.h"

#include <stdio.h>
#include <string.h>

#define MAX_METRICS_TEXT (16u * 1024u * 1024u)
#define MAX_GAUGE_GROUPS 64

/* ---------------------------------------------------------------- GET /metrics */

static void h_metrics(struct vk_http_req *req, void *ctx)
{
    struct vk_api *api = ctx;
    struct vk_buf out;
    vk_buf_init(&out, MAX_METRICS_TEXT);
    struct vk_err err;
    vk_err_clear(&err);
    int rc = vk_metrics_render(api->opts.metrics, &out, &err);
    if (rc < 0)
        vk__api_reply_err(req, &err, rc);
    else
        vk_http_reply(req, 200, VK_METRICS_CONTENT_TYPE, out.data, out.len);
    vk_buf_release(&out);
}

/* ---------------------------------------------------------------- Gauges */

/* The machine groups to report: those of registered workers, and "default". */
struct groups {
    const char *name[MAX_GAUGE_GROUPS];
    size_t n;
};

static void groups_add(struct groups *g, const char *name)
{
    if (!name || !*name || g->n == MAX_GAUGE_GROUPS)
        return;
    for (size_t i = 0; i < g->n; i++) {
        if (strcmp(g->name[i], name) == 0)
            return;
    }
    g->name[g->n++] = name;
}

/* Emit ready (running when `running`) fragments per machine group. One COUNT query per
 * group on the status/machine index; scrapes come every few seconds at most. */
static void collect_fragments(struct vk_api *api, struct vk_metric_sink *sink, bool running)
{
    struct vk_pool pool;
    vk_pool_init(&pool, 8192);
    struct vk_store_worker *ws = NULL;
    size_t nw = 0;
    struct vk_err err;
    vk_err_clear(&err);
    struct groups g = {.n = 0};
    groups_add(&g, "default");
    if (vk_store_worker_list(api->opts.store, &pool, &ws, &nw, &err) == 0) {
        for (size_t i = 0; i < nw; i++) {
            for (size_t j = 0; j < ws[i].ngroups; j++)
                groups_add(&g, ws[i].groups[j]);
        }
    }
    for (size_t i = 0; i < g.n; i++) {
        struct vk_store_queue_metrics m;
        if (vk_store_queue_metrics(api->opts.store, g.name[i], &m, &err) == 0)
            vk_metrics_sink_add(sink, (double)(running ? m.running : m.ready), g.name[i]);
    }
    vk_pool_release(&pool);
}

static void collect_ready(void *arg, struct vk_metric_sink *sink)
{
    collect_fragments(arg, sink, false);
}

static void collect_running(void *arg, struct vk_metric_sink *sink)
{
    collect_fragments(arg, sink, true);
}

static void collect_workers(void *arg, struct vk_metric_sink *sink)
{
    struct vk_api *api = arg;
    struct vk_pool pool;
    vk_pool_init(&pool, 8192);
    struct vk_store_worker *ws = NULL;
    size_t nw = 0;
    struct vk_err err;
    vk_err_clear(&err);
    if (vk_store_worker_list(api->opts.store, &pool, &ws, &nw, &err) == 0) {
        static const enum vk_store_worker_status all[] = {
            VK_STORE_WORKER_ALIVE, VK_STORE_WORKER_DEAD, VK_STORE_WORKER_STOPPED};
        for (size_t s = 0; s < VK_ARRAY_LEN(all); s++) {
            size_t n = 0;
            for (size_t i = 0; i < nw; i++)
                n += ws[i].status == all[s];
            vk_metrics_sink_add(sink, (double)n, vk_store_worker_status_name(all[s]));
        }
    }
    vk_pool_release(&pool);
}

int vk__api_metrics_routes(struct vk_api *api, struct vk_err *err)
{
    struct vk_metrics *reg = api->opts.metrics;
    if (!reg)
        return 0;
    struct vk_metric *g;
    int rc = vk_metrics_std_register(reg, &api->m, err);
    if (rc == 0)
        rc = vk_metrics_gauge_fn(reg, VK_METRIC_FRAGMENTS_READY,
                                 "Fragments waiting for a worker, per machine group.",
                                 "machine_group", collect_ready, api, &g, err);
    if (rc == 0)
        rc = vk_metrics_gauge_fn(reg, VK_METRIC_FRAGMENTS_RUNNING,
                                 "Fragments running now, per machine group.", "machine_group",
                                 collect_running, api, &g, err);
    if (rc == 0)
        rc = vk_metrics_gauge_fn(reg, VK_METRIC_WORKERS, "Registered workers, per status.",
                                 "status", collect_workers, api, &g, err);
    if (rc == 0)
        rc = vk_http_route(api->http, "GET", "/metrics", h_metrics, api, NULL, err);
    return rc;
}

/* ---------------------------------------------------------------- HTTP requests */

static const char *method_label(const char *m)
{
    static const char *const known[] = {"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"};
    for (size_t i = 0; m && i < VK_ARRAY_LEN(known); i++) {
        if (strcmp(m, known[i]) == 0)
            return known[i];
    }
    return "other";
}

void vk__api_http_complete(const struct vk_http_req *req, int status, int64_t duration_ns,
                           void *ctx)
{
    struct vk_api *api = ctx;
    vk__api_audit_request(api, req, status); /* api_audit.c */
    if (!api->m.http_requests_total)
        return;
    const char *method = method_label(vk_http_method(req));
    const char *route = vk_http_route_pattern(req);
    if (!route || !*route)
        route = "unmatched";
    char st[16];
    snprintf(st, sizeof(st), "%d", status);
    vk_metrics_counter_inc(vk_metrics_counter_with(api->m.http_requests_total, method, route, st));
    vk_metrics_histogram_observe(
        vk_metrics_histogram_with(api->m.http_request_duration, method, route),
        (double)duration_ns / 1e9);
}

/* ---------------------------------------------------------------- Spans */

struct vk_span *vk__api_span_start(struct vk_api *api, struct vk_http_req *req)
{
    if (!api->opts.tracer)
        return NULL;
    const char *tp = vk_http_traceparent(req);
    struct vk_trace_ctx parent;
    bool has = tp && vk_trace_parent_parse(tp, strlen(tp), &parent) == 0;
    const char *method = method_label(vk_http_method(req));
    const char *route = vk_http_route_pattern(req);
    char name[VK_SPAN_NAME_MAX];
    snprintf(name, sizeof(name), "%s %s", method, route ? route : "");
    struct vk_span *s =
        vk_trace_start_span(api->opts.tracer, name, VK_SPAN_SERVER, has ? &parent : NULL);
    vk_trace_span_set_str(s, "http.request.method", method);
    vk_trace_span_set_str(s, "http.route", route);
    return s;
}

void vk__api_span_end(struct vk_api *api, struct vk_span *span, int status)
{
    if (!span)
        return;
    if (status > 0)
        vk_trace_span_set_int(span, "http.response.status_code", status);
    if (status >= 500)
        vk_trace_span_set_status(span, VK_SPAN_ERROR, "server error");
    vk_trace_end_span(api->opts.tracer, span);
}

void vk__api_trace_ids(const struct vk_span *span, struct vk__api_trace_ids *out)
{
    out->trace_id[0] = out->span_id[0] = '\0';
    if (!span)
        return;
    vk_trace_id_hex(span->ctx.trace_id, out->trace_id);
    vk_trace_span_id_hex(span->ctx.span_id, out->span_id);
}
