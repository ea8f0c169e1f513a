/*
 * Telemetry hot paths: ns per counter increment (1 and 2 threads), per child
 * lookup, per histogram observation, and per span start+end with the exporter
 * queueing to a loopback OTLP sink (libmicrohttpd, answers 200 to everything).
 *
 *   build/bench/telemetry [scale]     (scale multiplies the iteration counts; default 1)
 */
#include "vulcan/telemetry.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct job {
    struct vk_counter_child *c;
    struct vk_histogram_child *h;
    long iters;
    int64_t ns;
};

static void *count_loop(void *p)
{
    struct job *j = p;
    int64_t t0 = vk_time_mono_ns();
    for (long i = 0; i < j->iters; i++)
        vk_metrics_counter_inc(j->c);
    j->ns = vk_time_mono_ns() - t0;
    return NULL;
}

static void *observe_loop(void *p)
{
    struct job *j = p;
    int64_t t0 = vk_time_mono_ns();
    for (long i = 0; i < j->iters; i++)
        vk_metrics_histogram_observe(j->h, (double)(i & 1023) * 0.001);
    j->ns = vk_time_mono_ns() - t0;
    return NULL;
}

/* Run `fn` on `n` threads at once; returns the mean ns per operation per thread. */
static double run_threads(void *(*fn)(void *), struct job *proto, int n)
{
    pthread_t th[8];
    struct job jobs[8];
    double total = 0;
    for (int i = 0; i < n; i++) {
        jobs[i] = *proto;
        pthread_create(&th[i], NULL, fn, &jobs[i]);
    }
    for (int i = 0; i < n; i++) {
        pthread_join(th[i], NULL);
        total += (double)jobs[i].ns / (double)jobs[i].iters;
    }
    return total / n;
}

static enum MHD_Result sink(void *cls, struct MHD_Connection *conn, const char *url,
                            const char *method, const char *version, const char *body,
                            size_t *body_len, void **con_cls)
{
    static int marker;
    if (!*con_cls) {
        *con_cls = &marker;
        return MHD_YES;
    }
    if (*body_len) {
        *body_len = 0;
        return MHD_YES;
    }
    struct MHD_Response *r =
        MHD_create_response_from_buffer(2, (void *)"{}", MHD_RESPMEM_PERSISTENT);
    enum MHD_Result ret = MHD_queue_response(conn, 200, r);
    MHD_destroy_response(r);
    return ret;
}

static void bench_spans(long n)
{
    struct sockaddr_in sa = {0};
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct MHD_Daemon *d =
        MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, sink, NULL,
                         MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "cannot start the OTLP sink\n");
        exit(1);
    }
    char ep[64];
    snprintf(ep, sizeof(ep), "http://127.0.0.1:%u",
             (unsigned)MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT)->port);
    struct vk_tracer *t;
    struct vk_err err;
    struct vk_tracer_config cfg = {.endpoint = ep, .queue_max = 1u << 16, .batch_max = 512};
    if (vk_trace_new(&cfg, &t, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    struct vk_trace_ctx parent;
    int64_t t0 = vk_time_mono_ns();
    for (long i = 0; i < n; i++) {
        struct vk_span *s =
            vk_trace_start_span(t, "fragment.run", VK_SPAN_INTERNAL, i ? &parent : NULL);
        if (i == 0)
            parent = s->ctx;
        vk_trace_span_set_str(s, "machine_group", "default");
        vk_trace_span_set_int(s, "attempt", 1);
        vk_trace_end_span(t, s);
    }
    int64_t ns = vk_time_mono_ns() - t0;
    int64_t f0 = vk_time_mono_ns();
    if (vk_trace_flush(t, 60000) < 0)
        fprintf(stderr, "flush timed out\n");
    int64_t flush_ns = vk_time_mono_ns() - f0;
    struct vk_trace_stats st;
    vk_trace_stats(t, &st);
    printf("span start+2 attrs+end (queued): %8.1f ns/span  (%ld spans; exported %llu, dropped "
           "queue_full %llu, export_failed %llu; drain after loop %.1f ms, %llu requests)\n",
           (double)ns / (double)n, n, (unsigned long long)st.exported,
           (unsigned long long)st.dropped_queue, (unsigned long long)st.dropped_export,
           (double)flush_ns / 1e6, (unsigned long long)st.requests_ok);
    vk_trace_free(t, 1000);
    MHD_stop_daemon(d);
}

int main(int argc, char **argv)
{
    long scale = argc > 1 ? atol(argv[1]) : 1;
    if (scale < 1)
        scale = 1;
    struct vk_metrics *reg = vk_metrics_new(0);
    struct vk_metric *c, *h;
    struct vk_err err;
    if (vk_metrics_counter(reg, "bench_total", "b", "status", &c, &err) < 0 ||
        vk_metrics_histogram(reg, "bench_seconds", "b", "group", NULL, 0, &h, &err) < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    struct job j = {.c = vk_metrics_counter_with(c, "completed"),
                    .h = vk_metrics_histogram_with(h, "default"),
                    .iters = 20000000L * scale};
    printf("counter inc, 1 thread:           %8.2f ns/op\n", run_threads(count_loop, &j, 1));
    printf("counter inc, 2 threads (shared): %8.2f ns/op per thread\n",
           run_threads(count_loop, &j, 2));
    j.iters = 5000000L * scale;
    printf("histogram observe, 1 thread:     %8.2f ns/op (15 default buckets)\n",
           run_threads(observe_loop, &j, 1));
    printf("histogram observe, 2 threads:    %8.2f ns/op per thread\n",
           run_threads(observe_loop, &j, 2));

    long lookups = 2000000L * scale;
    int64_t t0 = vk_time_mono_ns();
    for (long i = 0; i < lookups; i++)
        vk_metrics_counter_inc(vk_metrics_counter_with(c, (i & 1) ? "completed" : "failed"));
    printf("child lookup + inc (existing):   %8.2f ns/op\n",
           (double)(vk_time_mono_ns() - t0) / (double)lookups);

    struct vk_buf out = VK_BUF_INIT(VK_MAX_BODY);
    t0 = vk_time_mono_ns();
    if (vk_metrics_render(reg, &out, &err) < 0)
        return 1;
    printf("render (2 families, 3 series):   %8.2f us\n", (double)(vk_time_mono_ns() - t0) / 1e3);
    vk_buf_release(&out);
    vk_metrics_free(reg);

    bench_spans(200000L * scale);
    return 0;
}
