/*
 * submit_latency — submit -> completed of a trivial chain, one after another (issues 13, 16).
 *
 *   submit_latency [-r RUNS] [--sandbox none|bwrap|both] [--auth] [--keep] [VULCAN_BIN]
 *
 * Defaults: 30 runs, both sandboxes. For each configuration: a real `vulcan server
 * --workers 0` over SQLite in a temporary directory and one real `vulcan worker
 * --concurrency 1` with that sandbox; once the worker has registered and had 1 s to park
 * its long-poll, RUNS times in turn: submit a one-fragment chain (`run "true"`) with
 * POST /api/v1/parse and poll GET /api/v1/chains/{id} every millisecond until it is
 * final. The figure is the client's CLOCK_MONOTONIC from just before the submit to the
 * answer that says `completed` (p50, p90, max), what a user waiting on a trivial chain
 * sees; the submit round trip and the server's own created -> finished (1 ms resolution)
 * are printed next to it.
 *
 * --auth: each sandbox runs twice in turn, without and with credentials (the admin token
 * on every call, the worker with a registration token, every fragment with its job
 * token), and the ratio of the p50s is printed: the trust layer's cost on the latency
 * path (issue 13: within 5%).
 *
 * Prints figures; never fails on a target (exit 1 only when it cannot run).
 */
#include "dispatch_common.h"

struct lat_figs {
    double p50, p90, max, submit_p50, server_p50;
    int completed;
};

/* One configuration; 0 or -1. */
static int run_config(const char *bin, int runs, const char *sandbox, bool auth, bool keep,
                      struct lat_figs *fg)
{
    memset(fg, 0, sizeof(*fg));
    struct bench_server s;
    pid_t wp = -1;
    int rc = -1;
    char *wf = bench_workflow(1, "true");
    double *lat = calloc((size_t)runs, sizeof(double));
    double *sub = calloc((size_t)runs, sizeof(double));
    double *srv = calloc((size_t)runs, sizeof(double));
    if (auth)
        setenv("VK_BENCH_AUTH", "1", 1);
    int up = bench_server_start(&s, bin);
    if (auth)
        unsetenv("VK_BENCH_AUTH");
    if (!wf || !lat || !sub || !srv || up != 0 || (auth && bench_server_auth(&s, bin) != 0))
        goto out;
    char extra[64];
    snprintf(extra, sizeof(extra), "--sandbox %s", sandbox);
    setenv("VK_BENCH_WORKER_ARGS", extra, 1); /* after the default --sandbox none: wins */
    wp = bench_worker_start(&s, bin, 0, 1, 30);
    unsetenv("VK_BENCH_WORKER_ARGS");
    if (wp < 0)
        goto out;
    long long pending, running, alive = 0;
    for (int i = 0; i < 500 && alive < 1; i++) {
        if (bench_queue(s.cl, &pending, &running, &alive) != 0)
            goto out;
        if (alive < 1)
            usleep(20000);
    }
    if (alive < 1) {
        fprintf(stderr, "the worker did not register (log: %s/worker-0.log)\n", s.dir);
        goto out;
    }
    usleep(1000000);
    for (int r = 0; r < runs; r++) {
        char cid[64], path[128];
        int64_t t0 = vk_time_mono_ns();
        if (bench_submit(s.cl, wf, cid) != 0)
            goto out;
        sub[r] = (double)(vk_time_mono_ns() - t0) / 1e6;
        snprintf(path, sizeof(path), "/api/v1/chains/%s", cid);
        for (;;) {
            json_t *c = NULL;
            if (bench_json(s.cl, "GET", path, NULL, &c) != 200) {
                json_decref(c);
                goto out;
            }
            const char *st = json_string_value(json_object_get(c, "status"));
            bool done = st && (strcmp(st, "completed") == 0 || strcmp(st, "failed") == 0 ||
                               strcmp(st, "cancelled") == 0);
            if (done) {
                lat[r] = (double)(vk_time_mono_ns() - t0) / 1e6;
                int64_t cr = bench_api_time(json_object_get(c, "created_at"));
                int64_t fin = bench_api_time(json_object_get(c, "finished_at"));
                srv[r] = cr > 0 && fin >= cr ? (double)(fin - cr) : 0;
                fg->completed += strcmp(st, "completed") == 0;
            }
            json_decref(c);
            if (done)
                break;
            if (vk_time_mono_ns() - t0 > 60LL * 1000000000LL) {
                fprintf(stderr, "chain %s did not finish in 60 s\n", cid);
                goto out;
            }
            usleep(1000);
        }
    }
    fg->p50 = bench_pct(lat, (size_t)runs, 50);
    fg->p90 = bench_pct(lat, (size_t)runs, 90);
    fg->max = bench_pct(lat, (size_t)runs, 100);
    fg->submit_p50 = bench_pct(sub, (size_t)runs, 50);
    fg->server_p50 = bench_pct(srv, (size_t)runs, 50);
    rc = 0;
out:
    if (wp > 0) {
        kill(wp, SIGTERM);
        bench_stop(wp, 10000);
    }
    unsetenv("VULCAN_REGISTRATION_TOKEN");
    if (keep)
        fprintf(stderr, "kept %s\n", s.dir);
    if (up == 0)
        bench_server_stop(&s, keep);
    free(wf);
    free(lat);
    free(sub);
    free(srv);
    return rc;
}

static void print_config(const char *label, int runs, const struct lat_figs *f)
{
    printf("%s\n", label);
    printf("  submit -> completed   p50 %6.2f ms   p90 %6.2f ms   max %6.2f ms   (%d/%d "
           "completed)\n",
           f->p50, f->p90, f->max, f->completed, runs);
    printf("  submit round trip     p50 %6.2f ms;  server created -> finished p50 %.0f ms\n",
           f->submit_p50, f->server_p50);
}

int main(int argc, char **argv)
{
    int runs = 30;
    bool auth = false, keep = false;
    const char *which = "both", *binarg = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-r") == 0 && i + 1 < argc)
            runs = atoi(argv[++i]);
        else if (strcmp(argv[i], "--sandbox") == 0 && i + 1 < argc)
            which = argv[++i];
        else if (strcmp(argv[i], "--auth") == 0)
            auth = true;
        else if (strcmp(argv[i], "--keep") == 0)
            keep = true;
        else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            printf("usage: submit_latency [-r RUNS] [--sandbox none|bwrap|both] [--auth] "
                   "[--keep] [VULCAN_BIN]\n");
            return 0;
        } else
            binarg = argv[i];
    }
    if (runs < 1 || runs > 10000 ||
        (strcmp(which, "none") != 0 && strcmp(which, "bwrap") != 0 && strcmp(which, "both") != 0)) {
        fprintf(stderr, "submit_latency: -r 1..10000, --sandbox none|bwrap|both\n");
        return 1;
    }
    char bin[PATH_MAX];
    bench_vulcan_bin(binarg, bin);
    char load[64];
    bench_loadavg(load);
    printf("submit -> completed, %d sequential one-fragment chains `true`; vulcan = %s\n", runs,
           bin);
    printf("load average before: %s\n\n", load);
    const char *boxes[2] = {"none", "bwrap"};
    int failed = 0;
    for (int b = 0; b < 2; b++) {
        if (strcmp(which, "both") != 0 && strcmp(which, boxes[b]) != 0)
            continue;
        struct lat_figs off, on;
        char label[128];
        snprintf(label, sizeof(label), "1 worker x concurrency 1, --sandbox %s, SQLite", boxes[b]);
        if (run_config(bin, runs, boxes[b], false, keep, &off) != 0) {
            printf("%s: FAILED to run\n", label);
            failed++;
            continue;
        }
        print_config(label, runs, &off);
        if (!auth)
            continue;
        snprintf(label, sizeof(label),
                 "1 worker x concurrency 1, --sandbox %s, SQLite, credentials", boxes[b]);
        if (run_config(bin, runs, boxes[b], true, keep, &on) != 0) {
            printf("%s: FAILED to run\n", label);
            failed++;
            continue;
        }
        print_config(label, runs, &on);
        printf("  credentials / without: p50 %.3fx\n", on.p50 / off.p50);
    }
    bench_loadavg(load);
    printf("\nload average after: %s\n", load);
    return failed ? 1 : 0;
}
