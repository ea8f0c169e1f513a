/* Metrics registry: exposition text, escaping, histograms, caps, concurrency, promtool. */
#include "vk_test.h"
#include "vulcan/telemetry.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char *render(struct vk_metrics *reg)
{
    struct vk_buf out = VK_BUF_INIT(VK_MAX_BODY);
    struct vk_err err;
    assert_int_equal(vk_metrics_render(reg, &out, &err), 0);
    return vk_buf_take(&out, NULL);
}

static size_t count_lines_with(const char *text, const char *needle)
{
    size_t n = 0;
    for (const char *p = strstr(text, needle); p; p = strstr(p + 1, needle))
        n++;
    return n;
}

static void test_render_exact(void **state)
{
    struct vk_metrics *reg = vk_metrics_new(0);
    struct vk_metric *chains, *running, *wait;
    static const double bounds[] = {0.5, 1, 2.5};
    assert_int_equal(vk_metrics_counter(reg, "vulcan_chains_total", "Chains by final status.",
                                        "status", &chains, NULL),
                     0);
    assert_int_equal(
        vk_metrics_gauge(reg, "vulcan_fragments_running", "Running now.", NULL, &running, NULL), 0);
    assert_int_equal(vk_metrics_histogram(reg, "vulcan_fragment_queue_wait_seconds",
                                          "Ready to claimed.", "machine_group", bounds, 3, &wait,
                                          NULL),
                     0);
    /* Created in this order, rendered sorted by label value. */
    vk_metrics_counter_add(vk_metrics_counter_with(chains, "failed"), 2);
    vk_metrics_counter_inc(vk_metrics_counter_with(chains, "completed"));
    vk_metrics_counter_inc(vk_metrics_counter_with(chains, "completed"));
    vk_metrics_counter_inc(vk_metrics_counter_with(chains, "completed"));
    vk_metrics_gauge_set(vk_metrics_gauge_with(running), 4);
    vk_metrics_gauge_add(vk_metrics_gauge_with(running), -1.5);
    struct vk_histogram_child *h = vk_metrics_histogram_with(wait, "default");
    vk_metrics_histogram_observe(h, 0.25);
    vk_metrics_histogram_observe(h, 1);
    vk_metrics_histogram_observe(h, 3);
    char *text = render(reg);
    const char *want = "# HELP vulcan_chains_total Chains by final status.\n"
                       "# TYPE vulcan_chains_total counter\n"
                       "vulcan_chains_total{status=\"completed\"} 3\n"
                       "vulcan_chains_total{status=\"failed\"} 2\n"
                       "# HELP vulcan_fragments_running Running now.\n"
                       "# TYPE vulcan_fragments_running gauge\n"
                       "vulcan_fragments_running 2.5\n"
                       "# HELP vulcan_fragment_queue_wait_seconds Ready to claimed.\n"
                       "# TYPE vulcan_fragment_queue_wait_seconds histogram\n"
                       "vulcan_fragment_queue_wait_seconds_bucket{machine_group=\"default\","
                       "le=\"0.5\"} 1\n"
                       "vulcan_fragment_queue_wait_seconds_bucket{machine_group=\"default\","
                       "le=\"1\"} 2\n"
                       "vulcan_fragment_queue_wait_seconds_bucket{machine_group=\"default\","
                       "le=\"2.5\"} 2\n"
                       "vulcan_fragment_queue_wait_seconds_bucket{machine_group=\"default\","
                       "le=\"+Inf\"} 3\n"
                       "vulcan_fragment_queue_wait_seconds_sum{machine_group=\"default\"} 4.25\n"
                       "vulcan_fragment_queue_wait_seconds_count{machine_group=\"default\"} 3\n";
    assert_string_equal(text, want);
    vk_mem_free(text);
    vk_metrics_free(reg);
}

static void test_label_escaping(void **state)
{
    struct vk_metrics *reg = vk_metrics_new(0);
    struct vk_metric *m;
    assert_int_equal(
        vk_metrics_counter(reg, "t_total", "Help with \\ and\nnewline.", "route,verdict", &m, NULL),
        0);
    vk_metrics_counter_inc(vk_metrics_counter_with(m, "a\"b\\c\nd", "caf\xc3\xa9"));
    vk_metrics_counter_inc(vk_metrics_counter_with(m, "bad\xff\xfe", (const char *)NULL));
    char longv[300];
    memset(longv, 'x', sizeof(longv) - 1);
    longv[sizeof(longv) - 1] = '\0';
    vk_metrics_counter_inc(vk_metrics_counter_with(m, longv, "l"));
    char *text = render(reg);
    assert_non_null(strstr(text, "# HELP t_total Help with \\\\ and\\nnewline.\n"));
    assert_non_null(strstr(text, "t_total{route=\"a\\\"b\\\\c\\nd\",verdict=\"caf\xc3\xa9\"} 1\n"));
    assert_non_null(strstr(text, "t_total{route=\"bad??\",verdict=\"\"} 1\n"));
    /* Truncated to VK_METRICS_MAX_VALUE_LEN bytes. */
    char want[VK_METRICS_MAX_VALUE_LEN + 64];
    snprintf(want, sizeof(want), "t_total{route=\"%.*s\",verdict=\"l\"} 1\n",
             VK_METRICS_MAX_VALUE_LEN, longv);
    assert_non_null(strstr(text, want));
    /* The same sanitised value finds the same child. */
    assert_ptr_equal(vk_metrics_counter_with(m, "bad\xff\xfe", ""),
                     vk_metrics_counter_with(m, "bad??", (const char *)NULL));
    /* A multi-byte character is never cut in half. */
    char utf[VK_METRICS_MAX_VALUE_LEN + 2];
    memset(utf, 'y', VK_METRICS_MAX_VALUE_LEN - 1);
    memcpy(utf + VK_METRICS_MAX_VALUE_LEN - 1, "\xc3\xa9", 3);
    struct vk_counter_child *c = vk_metrics_counter_with(m, utf, "u");
    vk_metrics_counter_inc(c);
    vk_mem_free(text);
    text = render(reg);
    snprintf(want, sizeof(want), "t_total{route=\"%.*s\",verdict=\"u\"} 1\n",
             VK_METRICS_MAX_VALUE_LEN - 1, utf);
    assert_non_null(strstr(text, want));
    vk_mem_free(text);
    vk_metrics_free(reg);
}

static void test_histogram_buckets(void **state)
{
    struct vk_metrics *reg = vk_metrics_new(0);
    struct vk_metric *m;
    assert_int_equal(vk_metrics_histogram(reg, "d_seconds", "d", NULL, NULL, 0, &m, NULL), 0);
    struct vk_histogram_child *h = vk_metrics_histogram_with(m);
    /* Boundaries are inclusive (le): 0.001 lands in le="0.001". */
    vk_metrics_histogram_observe(h, 0.001);
    vk_metrics_histogram_observe(h, 0.0011);
    vk_metrics_histogram_observe(h, 0);
    vk_metrics_histogram_observe(h, -1);
    vk_metrics_histogram_observe(h, 60);
    vk_metrics_histogram_observe(h, 61);
    vk_metrics_histogram_observe(h, NAN); /* ignored */
    vk_metrics_histogram_observe(h, INFINITY);
    assert_int_equal(vk_metrics_histogram_count(h), 7);
    char *text = render(reg);
    assert_non_null(strstr(text, "d_seconds_bucket{le=\"0.001\"} 3\n"));
    assert_non_null(strstr(text, "d_seconds_bucket{le=\"0.0025\"} 4\n"));
    assert_non_null(strstr(text, "d_seconds_bucket{le=\"30\"} 4\n"));
    assert_non_null(strstr(text, "d_seconds_bucket{le=\"60\"} 5\n"));
    assert_non_null(strstr(text, "d_seconds_bucket{le=\"+Inf\"} 7\n"));
    assert_non_null(strstr(text, "d_seconds_sum +Inf\n"));
    assert_non_null(strstr(text, "d_seconds_count 7\n"));
    /* 15 default bounds + Inf. */
    assert_int_equal(count_lines_with(text, "d_seconds_bucket{"), 16);
    /* Cumulative: every bucket count is >= the previous. */
    unsigned long prev = 0;
    for (const char *p = strstr(text, "_bucket{"); p; p = strstr(p + 1, "_bucket{")) {
        const char *sp = strchr(p, ' ');
        unsigned long v = strtoul(sp + 1, NULL, 10);
        assert_true(v >= prev);
        prev = v;
    }
    vk_mem_free(text);

    /* Bad bounds are refused. */
    struct vk_metric *bad;
    struct vk_err err;
    static const double unsorted[] = {1, 0.5};
    static const double inf[] = {1, INFINITY};
    assert_int_equal(vk_metrics_histogram(reg, "b1", "b", NULL, unsorted, 2, &bad, &err),
                     VK_EINVAL);
    assert_int_equal(vk_metrics_histogram(reg, "b2", "b", NULL, inf, 2, &bad, &err), VK_EINVAL);
    assert_int_equal(vk_metrics_histogram(reg, "b3", "b", "le", NULL, 0, &bad, &err), VK_EINVAL);
    vk_metrics_free(reg);
}

static void test_registration(void **state)
{
    struct vk_metrics *reg = vk_metrics_new(0);
    struct vk_metric *a, *b;
    struct vk_err err;
    assert_int_equal(vk_metrics_counter(reg, "9bad", "h", NULL, &a, &err), VK_EINVAL);
    assert_int_equal(vk_metrics_counter(reg, "bad-name", "h", NULL, &a, &err), VK_EINVAL);
    assert_int_equal(vk_metrics_counter(reg, "ok_total", "h", "a,b,c,d,e", &a, &err), VK_EINVAL);
    assert_int_equal(vk_metrics_counter(reg, "ok_total", "h", "a,a", &a, &err), VK_EINVAL);
    assert_int_equal(vk_metrics_counter(reg, "ok_total", "h", "__x", &a, &err), VK_EINVAL);
    assert_int_equal(vk_metrics_counter(reg, "ok_total", "h", "a,", &a, &err), VK_EINVAL);
    assert_int_equal(vk_metrics_counter(reg, "ok_total", "h", "a-b", &a, &err), VK_EINVAL);
    assert_int_equal(vk_metrics_counter(reg, "ok_total", "h", "a, b", &a, &err), 0);
    assert_int_equal(vk_metrics_counter(reg, "ok_total", "h", "a,b", &b, &err), 0);
    assert_ptr_equal(a, b);
    assert_int_equal(vk_metrics_counter(reg, "ok_total", "h", "a", &b, &err), VK_EEXIST);
    assert_int_equal(vk_metrics_gauge(reg, "ok_total", "h", "a,b", &b, &err), VK_EEXIST);
    assert_non_null(strstr(err.msg, "'ok_total'"));

    struct vk_metrics_std std1, std2;
    assert_int_equal(vk_metrics_std_register(reg, &std1, &err), 0);
    assert_int_equal(vk_metrics_std_register(reg, &std2, &err), 0);
    assert_ptr_equal(std1.http_request_duration, std2.http_request_duration);
    vk_metrics_counter_inc(
        vk_metrics_counter_with(std1.http_requests_total, "GET", "/api/v1/chains", "200"));
    vk_metrics_histogram_observe(vk_metrics_histogram_with(std1.chain_duration, "completed"), 42);
    char *text = render(reg);
    assert_non_null(strstr(text, "vulcan_http_requests_total{method=\"GET\",route=\"/api/v1/"
                                 "chains\",status=\"200\"} 1\n"));
    assert_non_null(strstr(text, "vulcan_chain_duration_seconds_bucket{status=\"completed\","
                                 "le=\"60\"} 1\n"));
    vk_mem_free(text);
    vk_metrics_free(reg);
}

static void test_cardinality_cap(void **state)
{
    struct vk_metrics *reg = vk_metrics_new(0);
    struct vk_metric *m;
    assert_int_equal(vk_metrics_counter(reg, "req_total", "r", "route", &m, NULL), 0);
    char v[32];
    for (int i = 0; i < VK_METRICS_DEFAULT_MAX_SERIES; i++) {
        snprintf(v, sizeof(v), "r%04d", i);
        vk_metrics_counter_inc(vk_metrics_counter_with(m, v));
    }
    assert_int_equal(vk_metrics_overflows(m), 0);
    struct vk_counter_child *ov = vk_metrics_counter_with(m, "one-too-many");
    struct vk_counter_child *ov2 = vk_metrics_counter_with(m, "another");
    assert_ptr_equal(ov, ov2);
    vk_metrics_counter_add(ov, 5);
    /* An existing child is still found past the cap. */
    vk_metrics_counter_inc(vk_metrics_counter_with(m, "r0007"));
    assert_int_equal(vk_metrics_overflows(m), 2);
    char *text = render(reg);
    assert_int_equal(count_lines_with(text, "\nreq_total{"), VK_METRICS_DEFAULT_MAX_SERIES + 1);
    assert_non_null(strstr(text, "req_total{route=\"" VK_METRICS_OVERFLOW_VALUE "\"} 5\n"));
    assert_non_null(strstr(text, "req_total{route=\"r0007\"} 2\n"));
    assert_null(strstr(text, "one-too-many"));
    vk_mem_free(text);
    vk_metrics_free(reg);

    /* A small cap from vk_metrics_new(). */
    reg = vk_metrics_new(2);
    assert_int_equal(vk_metrics_gauge(reg, "g", "g", "k", &m, NULL), 0);
    assert_ptr_not_equal(vk_metrics_gauge_with(m, "a"), vk_metrics_gauge_with(m, "b"));
    assert_ptr_equal(vk_metrics_gauge_with(m, "c"), vk_metrics_gauge_with(m, "d"));
    vk_metrics_free(reg);
}

/* Gauge callback: emits one sample per group, as the server will from the store. */
struct groups {
    int calls;
};

static void collect_groups(void *arg, struct vk_metric_sink *sink)
{
    struct groups *g = arg;
    g->calls++;
    vk_metrics_sink_add(sink, 3, "default");
    vk_metrics_sink_add(sink, 0, "gpu \"big\"");
    vk_metrics_sink_add(sink, g->calls, "calls");
}

static void test_gauge_callback(void **state)
{
    struct vk_metrics *reg = vk_metrics_new(2);
    struct vk_metric *m;
    struct groups g = {0};
    assert_int_equal(vk_metrics_gauge_fn(reg, "vulcan_fragments_ready", "Ready fragments.",
                                         "machine_group", collect_groups, &g, &m, NULL),
                     0);
    char *text = render(reg);
    assert_string_equal(text, "# HELP vulcan_fragments_ready Ready fragments.\n"
                              "# TYPE vulcan_fragments_ready gauge\n"
                              "vulcan_fragments_ready{machine_group=\"default\"} 3\n"
                              "vulcan_fragments_ready{machine_group=\"gpu \\\"big\\\"\"} 0\n");
    vk_mem_free(text); /* the third sample is past the cap of 2 */
    text = render(reg);
    assert_int_equal(g.calls, 2);
    vk_mem_free(text);
    vk_metrics_free(reg);
}

/* 8 threads hammer shared and per-thread children, creating some concurrently. */
#define THREADS 8
#define ITERS 200000

struct worker_arg {
    struct vk_metric *c;
    struct vk_metric *h;
    struct vk_metric *g;
    int id;
};

static void *hammer(void *p)
{
    struct worker_arg *a = p;
    struct vk_counter_child *shared = vk_metrics_counter_with(a->c, "shared");
    struct vk_histogram_child *h = vk_metrics_histogram_with(a->h, "x");
    struct vk_gauge_child *g = vk_metrics_gauge_with(a->g);
    char name[16];
    for (int i = 0; i < ITERS; i++) {
        vk_metrics_counter_inc(shared);
        vk_metrics_histogram_observe(h, (i % 4) * 0.5); /* 0, .5, 1, 1.5 */
        vk_metrics_gauge_add(g, 1);
        if (i % 1000 == 0) {
            /* Racing creations of the same 50 children from every thread. */
            snprintf(name, sizeof(name), "k%d", (i / 1000) % 50);
            vk_metrics_counter_inc(vk_metrics_counter_with(a->c, name));
        }
    }
    return NULL;
}

static void test_concurrent_increments(void **state)
{
    struct vk_metrics *reg = vk_metrics_new(0);
    struct worker_arg args[THREADS];
    pthread_t th[THREADS];
    struct vk_metric *c, *h, *g;
    static const double bounds[] = {0.5, 1};
    assert_int_equal(vk_metrics_counter(reg, "c_total", "c", "k", &c, NULL), 0);
    assert_int_equal(vk_metrics_histogram(reg, "h_seconds", "h", "k", bounds, 2, &h, NULL), 0);
    assert_int_equal(vk_metrics_gauge(reg, "g", "g", NULL, &g, NULL), 0);
    for (int i = 0; i < THREADS; i++) {
        args[i] = (struct worker_arg){c, h, g, i};
        assert_int_equal(pthread_create(&th[i], NULL, hammer, &args[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(vk_metrics_counter_value(vk_metrics_counter_with(c, "shared")),
                     (uint64_t)THREADS * ITERS);
    uint64_t per_k = 0;
    char name[16];
    for (int k = 0; k < 50; k++) {
        snprintf(name, sizeof(name), "k%d", k);
        per_k += vk_metrics_counter_value(vk_metrics_counter_with(c, name));
    }
    assert_int_equal(per_k, (uint64_t)THREADS * (ITERS / 1000));
    struct vk_histogram_child *hc = vk_metrics_histogram_with(h, "x");
    assert_int_equal(vk_metrics_histogram_count(hc), (uint64_t)THREADS * ITERS);
    /* Every sum is a multiple of 0.5: exact in binary floating point. */
    assert_true(vk_metrics_histogram_sum(hc) == (double)THREADS * (ITERS / 4) * 3.0);
    assert_true(vk_metrics_gauge_value(vk_metrics_gauge_with(g)) == (double)THREADS * ITERS);
    char *text = render(reg);
    char want[128];
    snprintf(want, sizeof(want), "h_seconds_bucket{k=\"x\",le=\"0.5\"} %d\n", THREADS * ITERS / 2);
    assert_non_null(strstr(text, want));
    snprintf(want, sizeof(want), "h_seconds_bucket{k=\"x\",le=\"1\"} %d\n",
             THREADS * ITERS / 4 * 3);
    assert_non_null(strstr(text, want));
    assert_int_equal(count_lines_with(text, "\nc_total{"), 51);
    vk_mem_free(text);
    vk_metrics_free(reg);
}

/* Run `promtool check metrics` on `text`; returns its exit status, output in `out`. */
static int promtool_check(const char *text, char *out, size_t cap)
{
    char in_path[] = "/tmp/vk-metrics-XXXXXX";
    int fd = mkstemp(in_path);
    assert_true(fd >= 0);
    size_t len = strlen(text);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);
    char cmd[256];
    snprintf(cmd, sizeof(cmd), "promtool check metrics < %s 2>&1", in_path);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int status = pclose(p);
    unlink(in_path);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void test_promtool(void **state)
{
    /* Required, not optional: scripts/install-deps.sh installs Debian's `prometheus`. */
    int found = system("command -v promtool >/dev/null 2>&1");
    if (found != 0)
        fail_msg("promtool not found: install the Debian package 'prometheus'");

    struct vk_metrics *reg = vk_metrics_new(0);
    struct vk_metrics_std std;
    struct vk_err err;
    struct groups g = {0};
    struct vk_metric *ready, *workers;
    assert_int_equal(vk_metrics_std_register(reg, &std, &err), 0);
    assert_int_equal(vk_metrics_gauge_fn(reg, VK_METRIC_FRAGMENTS_READY,
                                         "Fragments ready to be claimed, by machine group.",
                                         "machine_group", collect_groups, &g, &ready, &err),
                     0);
    assert_int_equal(
        vk_metrics_gauge(reg, VK_METRIC_WORKERS, "Workers by status.", "status", &workers, &err),
        0);
    vk_metrics_gauge_set(vk_metrics_gauge_with(workers, "alive"), 3);
    vk_metrics_gauge_set(vk_metrics_gauge_with(workers, "dead"), 0.1);
    vk_metrics_counter_inc(vk_metrics_counter_with(std.chains_total, "completed"));
    vk_metrics_counter_inc(
        vk_metrics_counter_with(std.webhook_deliveries_total, "github", "accepted"));
    vk_metrics_counter_inc(
        vk_metrics_counter_with(std.http_requests_total, "POST", "/hooks/\"x\"\\\n", "401"));
    vk_metrics_histogram_observe(vk_metrics_histogram_with(std.fragment_queue_wait, "default"),
                                 0.02);
    vk_metrics_histogram_observe(
        vk_metrics_histogram_with(std.http_request_duration, "GET", "/metrics"), 0.0001);
    vk_metrics_histogram_observe(
        vk_metrics_histogram_with(std.fragment_run_duration, "gpu", "failed"), 1e9);
    vk_metrics_histogram_observe(vk_metrics_histogram_with(std.chain_duration, "failed"),
                                 1.0 / 3.0);
    struct vk_tracer *t;
    struct vk_tracer_config tc = {.metrics = reg};
    assert_int_equal(vk_trace_new(&tc, &t, &err), 0);
    char *text = render(reg);
    char out[8192];
    int rc = promtool_check(text, out, sizeof(out));
    if (rc != 0 || out[0])
        fail_msg("promtool exit %d: %s\n--- input ---\n%s", rc, out, text);
    vk_mem_free(text);

    /* The check is real: promtool rejects broken text. */
    rc = promtool_check("# TYPE x counter\nx{a=\"b} 1\n", out, sizeof(out));
    assert_int_not_equal(rc, 0);
    vk_trace_free(t, 0);
    vk_metrics_free(reg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_render_exact),          cmocka_unit_test(test_label_escaping),
        cmocka_unit_test(test_histogram_buckets),     cmocka_unit_test(test_registration),
        cmocka_unit_test(test_cardinality_cap),       cmocka_unit_test(test_gauge_callback),
        cmocka_unit_test(test_concurrent_increments), cmocka_unit_test(test_promtool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
