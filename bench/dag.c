/*
 * dag — a `needs` DAG of N fragments with 5 N edges (issue 17: 2,000 fragments, 10,000
 * edges): load time, the scheduler's cost per event, and submit -> completed.
 *
 *   dag [-n N] [--small M] [--concurrency C] [--no-server] [VULCAN_BIN]
 *
 * Defaults: N = 2000, M = 500, C = 8. The workflow is one `parallel` group of fragments
 * f0 … f(N-1); each fi needs 5 distinct earlier ones chosen at random (fewer for the first
 * five; the last ones make up the difference, so the chain has exactly 5 N edges).
 *
 * 1. Load: vk_workflow_load_buffer (what `vulcan parse` does: KDL, names, cycle search),
 *    the median of 5, and the wall time of `vulcan parse FILE` once.
 * 2. Per event, in process (SQLite file store, as a server has): vk_orch_submit, then
 *    claim every ready fragment and record its result with vk_orch_result until the chain
 *    ends. Each result lowers the counters of its dependents and starts those whose needs
 *    have all ended; the time of vk_orch_result per result (mean, p50, p99) for M and for
 *    N fragments: flat (the same per event at both sizes) means no scan of the chain.
 * 3. End to end: a real `vulcan server` and one `vulcan worker --sandbox none
 *    --concurrency C`; POST /api/v1/parse, then GET /api/v1/chains/{id} until it is final.
 *
 * Prints figures; never fails on a target (exit 1 only when it cannot run).
 */
#include "dispatch_common.h"
#include "vulcan/orchestrator.h"
#include "vulcan/store.h"
#include "vulcan/workflow.h"

#define DEGREE 5

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint32_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 16);
}

/* The workflow text (owned): N fragments, DEGREE * N needs edges to earlier fragments. */
static char *dag_workflow(size_t n, size_t *edges)
{
    size_t *k = calloc(n, sizeof(*k));
    size_t total = 0;
    for (size_t i = 0; k && i < n; i++)
        total += k[i] = i < DEGREE ? i : DEGREE;
    for (size_t i = n; k && i-- > DEGREE + 1 && total < DEGREE * n;)
        if (k[i] < i)
            k[i]++, total++;
    struct vk_buf b = VK_BUF_INIT(64u << 20);
    int rc = k ? vk_buf_adds(&b, "version \"0.1\"\nname \"dag\"\ntriggers \"manual\"\n"
                                 "chain {\n    machine \"default\"\n    parallel {\n")
               : VK_ENOMEM;
    size_t *pick = calloc(DEGREE + 2, sizeof(*pick));
    for (size_t i = 0; rc == 0 && i < n; i++) {
        rc = vk_buf_addf(&b, "        fragment { name \"f%zu\"; run \"true\";", i);
        size_t got = 0;
        while (rc == 0 && got < k[i]) {
            size_t j = next_rand() % i;
            bool dup = false;
            for (size_t x = 0; x < got && !dup; x++)
                dup = pick[x] == j;
            if (!dup)
                pick[got++] = j;
        }
        for (size_t x = 0; rc == 0 && x < got; x++)
            rc = vk_buf_addf(&b, "%s\"f%zu\"", x ? " " : " needs ", pick[x]);
        if (rc == 0)
            rc = vk_buf_adds(&b, got ? "; }\n" : " }\n");
    }
    if (rc == 0)
        rc = vk_buf_adds(&b, "    }\n}\n");
    free(k);
    free(pick);
    *edges = total;
    if (rc != 0) {
        vk_buf_release(&b);
        return NULL;
    }
    return vk_buf_take(&b, NULL);
}

static double load_ms(const char *text)
{
    double t[5];
    for (int r = 0; r < 5; r++) {
        struct vk_workflow *wf = NULL;
        struct vk_wf_error e;
        vk_wf_error_init(&e);
        int64_t t0 = vk_time_mono_ns();
        int rc = vk_workflow_load_buffer(text, strlen(text), "dag.kdl", NULL, &wf, &e);
        t[r] = (double)(vk_time_mono_ns() - t0) / 1e6;
        if (rc != 0) {
            fprintf(stderr, "load: %s\n", e.rendered ? e.rendered : e.msg);
            vk_wf_error_release(&e);
            return -1;
        }
        vk_workflow_free(wf);
    }
    return bench_pct(t, 5, 50);
}

struct event_figs {
    double submit_ms, mean_us, p50_us, p99_us, total_ms;
    size_t results;
    bool completed;
};

/* Part 2 for one size: submit in process, then claim + result until the chain ends. */
static int events(const char *text, size_t n, struct event_figs *fg)
{
    memset(fg, 0, sizeof(*fg));
    char dir[] = "/tmp/vk-bench-dag-XXXXXX";
    if (!mkdtemp(dir))
        return -1;
    char url[128];
    snprintf(url, sizeof(url), "sqlite:%s/vulcan.db", dir);
    struct vk_store *store = NULL;
    struct vk_orch *orch = NULL;
    struct vk_workflow *wf = NULL;
    struct vk_wf_error we;
    vk_wf_error_init(&we);
    struct vk_err err;
    vk_err_clear(&err);
    static const char *const groups[] = {"default"};
    char wid[VK_UUID_LEN], cid[VK_UUID_LEN];
    double *lat = calloc(n + 1, sizeof(*lat));
    int rc = -1;
    if (!lat || vk_store_open(url, &store, &err) != 0 ||
        vk_orch_new(store, NULL, &orch, &err) != 0 ||
        vk_store_worker_register(store, NULL, "bench", "1", groups, 1, vk_time_now_ms(), wid,
                                 &err) != 0 ||
        vk_workflow_load_buffer(text, strlen(text), "dag.kdl", NULL, &wf, &we) != 0) {
        fprintf(stderr, "setup: %s%s\n", err.msg, we.msg);
        goto out;
    }
    struct vk_orch_context ctx = {.branch = "main", .trigger = "manual"};
    int64_t t0 = vk_time_mono_ns();
    if (vk_orch_submit(orch, wf, text, &ctx, cid, NULL, &err) != 0) {
        fprintf(stderr, "submit: %s\n", err.msg);
        goto out;
    }
    fg->submit_ms = (double)(vk_time_mono_ns() - t0) / 1e6;
    int64_t start = vk_time_mono_ns();
    for (;;) {
        struct vk_pool pool;
        vk_pool_init(&pool, 0);
        struct vk_store_work w;
        int c = vk_orch_claim(orch, wid, groups, 1, &pool, &w, &err);
        if (c == VK_ENOTFOUND) {
            vk_pool_release(&pool);
            break;
        }
        if (c != 0) {
            fprintf(stderr, "claim: %s\n", err.msg);
            vk_pool_release(&pool);
            goto out;
        }
        struct vk_orch_result r = {.worker_id = wid,
                                   .fragment_id = w.fragment.id,
                                   .attempt = w.fragment.attempt,
                                   .success = true,
                                   .has_exit_code = true};
        int64_t a = vk_time_mono_ns();
        c = vk_orch_result(orch, &r, NULL, &err);
        lat[fg->results++] = (double)(vk_time_mono_ns() - a) / 1e3;
        vk_pool_release(&pool);
        if (c != 0) {
            fprintf(stderr, "result: %s\n", err.msg);
            goto out;
        }
    }
    fg->total_ms = (double)(vk_time_mono_ns() - start) / 1e6;
    struct vk_pool pool;
    vk_pool_init(&pool, 0);
    struct vk_store_chain ch;
    struct vk_store_fragment *frags = NULL;
    size_t nf = 0;
    if (vk_store_chain_get(store, cid, &pool, &ch, &frags, &nf, &err) == 0)
        fg->completed = ch.status == VK_STORE_CHAIN_COMPLETED;
    vk_pool_release(&pool);
    fg->mean_us = bench_mean(lat, fg->results);
    fg->p50_us = bench_pct(lat, fg->results, 50);
    fg->p99_us = bench_pct(lat, fg->results, 99);
    rc = fg->results == n ? 0 : -1;
    if (rc)
        fprintf(stderr, "%zu results for %zu fragments\n", fg->results, n);
out:
    vk_workflow_free(wf);
    vk_wf_error_release(&we);
    vk_orch_free(orch);
    vk_store_close(store);
    free(lat);
    bench_rmrf(dir);
    return rc;
}

/* Part 3: a real server and worker. */
static int end_to_end(const char *bin, const char *text, int conc, double *ms, bool *completed)
{
    struct bench_server s;
    pid_t wp = -1;
    int rc = -1;
    *completed = false;
    int up = bench_server_start(&s, bin);
    if (up != 0)
        goto out;
    wp = bench_worker_start(&s, bin, 0, conc, 30);
    long long pending, running, alive = 0;
    for (int i = 0; wp > 0 && i < 500 && alive < 1; i++) {
        if (bench_queue(s.cl, &pending, &running, &alive) != 0)
            goto out;
        if (alive < 1)
            usleep(20000);
    }
    if (alive < 1) {
        fprintf(stderr, "the worker did not register (log: %s/worker-0.log)\n", s.dir);
        goto out;
    }
    usleep(500000);
    char cid[64], path[128];
    int64_t t0 = vk_time_mono_ns();
    if (bench_submit(s.cl, text, cid) != 0)
        goto out;
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
        *completed = st && strcmp(st, "completed") == 0;
        json_decref(c);
        if (done)
            break;
        if (vk_time_mono_ns() - t0 > 600LL * 1000000000LL) {
            fprintf(stderr, "chain %s did not finish in 10 min\n", cid);
            goto out;
        }
        usleep(50000);
    }
    *ms = (double)(vk_time_mono_ns() - t0) / 1e6;
    rc = 0;
out:
    if (wp > 0) {
        kill(wp, SIGTERM);
        bench_stop(wp, 10000);
    }
    if (up == 0)
        bench_server_stop(&s, false);
    return rc;
}

int main(int argc, char **argv)
{
    size_t n = 2000, small = 500;
    int conc = 8;
    bool server = true;
    const char *binarg = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-n") == 0 && i + 1 < argc)
            n = (size_t)atol(argv[++i]);
        else if (strcmp(argv[i], "--small") == 0 && i + 1 < argc)
            small = (size_t)atol(argv[++i]);
        else if (strcmp(argv[i], "--concurrency") == 0 && i + 1 < argc)
            conc = atoi(argv[++i]);
        else if (strcmp(argv[i], "--no-server") == 0)
            server = false;
        else
            binarg = argv[i];
    }
    char bin[PATH_MAX];
    bench_vulcan_bin(binarg, bin);
    size_t e_small = 0, e_big = 0;
    char *t_small = dag_workflow(small, &e_small);
    char *t_big = dag_workflow(n, &e_big);
    if (!t_small || !t_big)
        return 1;
    printf("dag: %zu fragments, %zu needs edges (and %zu / %zu for the comparison)\n", n, e_big,
           small, e_small);
    double l_small = load_ms(t_small), l_big = load_ms(t_big);
    if (l_small < 0 || l_big < 0)
        return 1;
    printf("  load (vk_workflow_load_buffer, median of 5)   %zu: %7.2f ms   %zu: %7.2f ms\n", small,
           l_small, n, l_big);
    char file[] = "/tmp/vk-bench-dag-XXXXXX.kdl";
    int fd = mkstemps(file, 4);
    if (fd >= 0 && write(fd, t_big, strlen(t_big)) == (ssize_t)strlen(t_big)) {
        close(fd);
        char cmd[PATH_MAX * 2 + 64];
        snprintf(cmd, sizeof(cmd), "'%s' parse '%s' >/dev/null", bin, file);
        int64_t t0 = vk_time_mono_ns();
        int st = system(cmd);
        printf("  vulcan parse (the whole process, %zu)         %7.2f ms%s\n", n,
               (double)(vk_time_mono_ns() - t0) / 1e6, st == 0 ? "" : "  (failed)");
        unlink(file);
    }
    struct event_figs fs, fb;
    if (events(t_small, small, &fs) != 0 || events(t_big, n, &fb) != 0)
        return 1;
    printf("  in process, SQLite file: submit (rows + edges)  %zu: %7.1f ms   %zu: %7.1f ms\n",
           small, fs.submit_ms, n, fb.submit_ms);
    printf("  per result (vk_orch_result)   %zu: mean %6.1f us p50 %6.1f us p99 %6.1f us\n", small,
           fs.mean_us, fs.p50_us, fs.p99_us);
    printf("                                %zu: mean %6.1f us p50 %6.1f us p99 %6.1f us\n", n,
           fb.mean_us, fb.p50_us, fb.p99_us);
    printf("  ratio of the means %zu/%zu: %.2f (1.00 is flat)   claim+result loop %.0f / %.0f ms, "
           "%s\n",
           n, small, fb.mean_us / fs.mean_us, fs.total_ms, fb.total_ms,
           fs.completed && fb.completed ? "both completed" : "NOT completed");
    if (server) {
        double ms = 0;
        bool ok = false;
        if (end_to_end(bin, t_big, conc, &ms, &ok) == 0)
            printf("  server + 1 worker (--sandbox none, concurrency %d): submit -> %s %.2f s "
                   "(%.2f ms per fragment)\n",
                   conc, ok ? "completed" : "final (NOT completed)", ms / 1e3, ms / (double)n);
    }
    free(t_small);
    free(t_big);
    return 0;
}
