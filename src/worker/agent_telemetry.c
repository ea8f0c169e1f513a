/*
 * agent_telemetry.c — the worker's telemetry: its tracer (service "vulcan-worker"; spans
 * are exported only with opts.otlp_endpoint) and, with opts.metrics_listen, a small HTTP
 * server answering GET /metrics with the worker's own registry:
 *
 *   vulcan_worker_fragments_total{status}               attempts run, by outcome
 *   vulcan_worker_fragment_run_duration_seconds{status} their run time
 *   vulcan_worker_log_uploads_total                     attempts whose output was uploaded
 *   vulcan_worker_log_bytes_total                       output bytes the server acknowledged
 *   vulcan_trace_spans_exported_total, vulcan_trace_spans_dropped_total{reason}
 */
#include "agent_int.h"

#include <stdio.h>
#include <string.h>

#define MAX_METRICS_TEXT (1024u * 1024u)

#ifndef VK_WORKER_LEAN
static void h_metrics(struct vk_http_req *req, void *ctx)
{
    struct vk_worker *w = ctx;
    struct vk_buf out;
    vk_buf_init(&out, MAX_METRICS_TEXT);
    struct vk_err err;
    vk_err_clear(&err);
    if (vk_metrics_render(w->tel.reg, &out, &err) < 0)
        vk_http_reply_error(req, 500, "internal", "%s", err.msg);
    else
        vk_http_reply(req, 200, VK_METRICS_CONTENT_TYPE, out.data, out.len);
    vk_buf_release(&out);
}

static int metrics_init(struct vk_worker *w, const char *listen, struct vk_err *err)
{
    struct agent_telemetry *t = &w->tel;
    t->reg = vk_metrics_new(0);
    int rc = vk_metrics_counter(t->reg, "vulcan_worker_fragments_total",
                                "Fragment attempts this worker ran, by outcome.", "status",
                                &t->fragments, err);
    if (rc == 0)
        rc = vk_metrics_histogram(t->reg, "vulcan_worker_fragment_run_duration_seconds",
                                  "Run time of fragment attempts on this worker.", "status",
                                  vk_metrics_buckets_long, VK_ARRAY_LEN(vk_metrics_buckets_long),
                                  &t->run_duration, err);
    if (rc == 0)
        rc = vk_metrics_counter(t->reg, "vulcan_worker_log_uploads_total",
                                "Attempts whose output was uploaded.", NULL, &t->uploads, err);
    if (rc == 0)
        rc = vk_metrics_counter(t->reg, "vulcan_worker_log_bytes_total",
                                "Output bytes the server acknowledged.", NULL, &t->log_bytes, err);
    if (rc != 0)
        return rc;
    struct vk_http_server_opts ho = {.listen = listen, .threads = 1};
    rc = vk_http_server_new(&ho, &t->http, err);
    if (rc == 0)
        rc = vk_http_route(t->http, "GET", "/metrics", h_metrics, w, NULL, err);
    if (rc == 0)
        rc = vk_http_server_start(t->http, err);
    if (rc == 0) {
        char port[16];
        snprintf(port, sizeof(port), "%u", vk_http_server_port(t->http));
        vk_log_write(VK_LOG_INFO, AGENT_COMPONENT, "serving metrics", "listen", listen, "port",
                     port, NULL);
    }
    return rc;
}
#endif

int vk__agent_telemetry_init(struct vk_worker *w, const struct vk_worker_opts *o,
                             struct vk_err *err)
{
    int rc = 0;
#ifdef VK_WORKER_LEAN
    /* vulcan-worker links no HTTP server (src/cli/lean/worker_main.c runs `vulcan worker`
     * for --metrics-listen); a library user of the lean build is told so. */
    if (o->metrics_listen && *o->metrics_listen)
        return vk_err_set(err, VK_EINVAL,
                          "this worker build has no metrics listener: run `vulcan worker`");
#else
    if (o->metrics_listen && *o->metrics_listen)
        rc = metrics_init(w, o->metrics_listen, err);
#endif
    if (rc != 0)
        return rc;
    struct vk_tracer_config tc = {
        .endpoint = o->otlp_endpoint && *o->otlp_endpoint ? o->otlp_endpoint : NULL,
        .service_name = "vulcan-worker",
        .metrics = w->tel.reg,
    };
    return vk_trace_new(&tc, &w->tel.tracer, err);
}

void vk__agent_telemetry_free(struct vk_worker *w)
{
    struct agent_telemetry *t = &w->tel;
#ifndef VK_WORKER_LEAN
    vk_http_server_free(t->http); /* before the registry it renders */
#endif
    t->http = NULL;
    vk_trace_free(t->tracer, 2000); /* export what is queued, up to 2 s */
    t->tracer = NULL;
    vk_metrics_free(t->reg);
    t->reg = NULL;
}

void vk__agent_telemetry_attempt(struct vk_worker *w, const char *status, double seconds,
                                 uint64_t log_bytes)
{
    struct agent_telemetry *t = &w->tel;
    if (!t->reg)
        return;
    vk_metrics_counter_inc(vk_metrics_counter_with(t->fragments, status));
    vk_metrics_histogram_observe(vk_metrics_histogram_with(t->run_duration, status), seconds);
    if (log_bytes > 0) {
        vk_metrics_counter_inc(vk_metrics_counter_with(t->uploads));
        vk_metrics_counter_add(vk_metrics_counter_with(t->log_bytes), log_bytes);
    }
}
