/*
 * dispatch_latency — dispatch latency with a long-polling idle worker (issue 5, part 2).
 *
 *   dispatch_latency [-r RUNS] [--only held|script] [VULCAN_BIN]      (default 500 runs)
 *
 * The server runs in this process, built exactly as `vulcan server` builds it
 * (SQLite file store, orchestrator, API on 127.0.0.1:<free port>, the
 * orchestrator's ready hook wired to vk_api_wake), except that the hook is
 * wrapped to take a CLOCK_MONOTONIC timestamp first. Each run submits a
 * one-fragment chain with vk_orch_submit() (what POST /api/v1/parse calls after
 * parsing), only once the worker's long-poll is parked in the API's waiter
 * list (checked under the API's own lock), so the worker is already waiting.
 *
 * "ready": the fragment becomes ready inside the submit's store transaction;
 * its commit lies between t_submit0 (before the call) and t_submit1 (after it
 * returned), and before the ready hook runs (the orchestrator's listener
 * thread calls it after the commit's notification), so "ready" is taken as
 * min(t_submit1, t_hook): a lower bound of the latency, tight to within the
 * submit's tail; the upper bound, from t_submit0, is printed too.
 *
 * A. ready -> held: this process is the worker (vk_http_client, its own
 *    thread): POST /api/v1/work/request {wait_s: 30}; "held" is when the
 *    200 reply with the work item has been received and parsed. Then a
 *    result is posted so the chain completes.
 * B. ready -> script running: a real `vulcan worker --sandbox none
 *    --concurrency 1`; the fragment's script is `echo x > FIFO`, a shell
 *    builtin (no extra process, unlike `date +%s%N`), and this process
 *    timestamps the moment the byte arrives on the FIFO (poll()).
 *
 * Also printed: ready -> hook (the orchestrator's notification reaching the
 * API) and hook -> held (claim, reply, transfer, JSON parse).
 */
#include "api/api_int.h"
#include "dispatch_common.h"
#include "vulcan/api.h"
#include "vulcan/orchestrator.h"
#include "vulcan/store.h"
#include "vulcan/telemetry.h"
#include "vulcan/workflow.h"

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>

struct inproc {
    char dir[PATH_MAX];
    struct vk_store *store;
    struct vk_orch *orch;
    struct vk_api *api;
    char url[64];
    atomic_llong hook_ns; /* last ready-hook call */
};

static void timed_wake(void *ctx, const char *group)
{
    struct inproc *p = ctx;
    atomic_store(&p->hook_ns, (long long)vk_time_mono_ns());
    vk_api_wake(p->api, group);
}

static int inproc_start(struct inproc *p)
{
    memset(p, 0, sizeof(*p));
    struct vk_err err;
    vk_err_clear(&err);
    snprintf(p->dir, sizeof(p->dir), "/tmp/vk-bench-XXXXXX");
    if (!mkdtemp(p->dir))
        return -1;
    char db[PATH_MAX + 32];
    snprintf(db, sizeof(db), "sqlite:%s/vulcan.db", p->dir);
    struct vk_orch_opts oo = {.worker_timeout_ms = 30000, .max_attempts = 3};
    if (vk_store_open(db, &p->store, &err) < 0 || vk_orch_new(p->store, &oo, &p->orch, &err) < 0)
        goto fail;
    struct vk_api_opts ao = {
        .listen = "127.0.0.1:0", .store = p->store, .orch = p->orch, .heartbeat_interval_s = 5};
    if (vk_api_new(&ao, &p->api, &err) < 0)
        goto fail;
    vk_orch_set_ready_hook(p->orch, timed_wake, p);
    if (vk_orch_start(p->orch, &err) < 0 || vk_api_start(p->api, &err) < 0)
        goto fail;
    snprintf(p->url, sizeof(p->url), "http://127.0.0.1:%u", vk_api_port(p->api));
    return 0;
fail:
    fprintf(stderr, "in-process server: %s\n", err.msg);
    return -1;
}

static void inproc_stop(struct inproc *p)
{
    if (p->api)
        vk_api_stop(p->api);
    if (p->orch)
        vk_orch_stop(p->orch);
    vk_api_free(p->api);
    vk_orch_free(p->orch);
    vk_store_close(p->store);
    bench_rmrf(p->dir);
}

/* Number of long-polls parked in the API's waiter list. */
static int parked(struct inproc *p)
{
    int n = 0;
    pthread_mutex_lock(&p->api->lock);
    for (struct vk__api_waiter *w = p->api->head; w; w = w->next)
        n++;
    pthread_mutex_unlock(&p->api->lock);
    return n;
}

static int wait_parked(struct inproc *p, int want, int ms)
{
    for (int i = 0; i < ms * 5; i++) {
        if (parked(p) >= want)
            return 0;
        usleep(200);
    }
    return -1;
}

static int submit(struct inproc *p, const struct vk_workflow *wf, const char *src, int64_t *t0,
                  int64_t *t1)
{
    struct vk_orch_context c = {.branch = "main", .trigger = "manual"};
    char id[VK_UUID_LEN];
    struct vk_err err;
    vk_err_clear(&err);
    atomic_store(&p->hook_ns, 0);
    *t0 = vk_time_mono_ns();
    int rc = vk_orch_submit(p->orch, wf, src, &c, id, NULL, &err);
    *t1 = vk_time_mono_ns();
    if (rc < 0)
        fprintf(stderr, "submit: %s\n", err.msg);
    return rc;
}

static struct vk_workflow *load_wf(const char *src)
{
    struct vk_wf_options o = {.fetch = vk_wf_fetch_refuse};
    struct vk_workflow *wf = NULL;
    struct vk_wf_error we;
    vk_wf_error_init(&we);
    if (vk_workflow_load_buffer(src, strlen(src), "bench.kdl", &o, &wf, &we) != 0) {
        fprintf(stderr, "workflow: %s\n", we.msg);
        vk_wf_error_release(&we);
        return NULL;
    }
    return wf;
}

struct series {
    double *submit, *to_hook, *hook_to, *total, *from_t0;
    size_t n;
};

static int series_init(struct series *s, size_t cap)
{
    memset(s, 0, sizeof(*s));
    s->submit = calloc(cap, sizeof(double));
    s->to_hook = calloc(cap, sizeof(double));
    s->hook_to = calloc(cap, sizeof(double));
    s->total = calloc(cap, sizeof(double));
    s->from_t0 = calloc(cap, sizeof(double));
    return s->submit && s->to_hook && s->hook_to && s->total && s->from_t0 ? 0 : -1;
}

static void series_free(struct series *s)
{
    free(s->submit);
    free(s->to_hook);
    free(s->hook_to);
    free(s->total);
    free(s->from_t0);
}

static void series_add(struct series *s, int64_t t0, int64_t t1, int64_t hook, int64_t end)
{
    /* The commit (the moment of readiness) precedes both the submit's return and
     * the hook call: take the earlier of the two. */
    int64_t ready = hook && hook < t1 ? hook : t1;
    s->submit[s->n] = (double)(t1 - t0) / 1e6;
    s->to_hook[s->n] = hook ? (double)(hook - ready) / 1e6 : 0;
    s->hook_to[s->n] = hook ? (double)(end - hook) / 1e6 : 0;
    s->total[s->n] = (double)(end - ready) / 1e6;
    s->from_t0[s->n] = (double)(end - t0) / 1e6;
    s->n++;
}

static void series_print(struct series *s, const char *what, const char *end)
{
    size_t n = s->n;
    printf("%s (%zu runs)\n", what, n);
    printf("  ready -> %-12s p50 %7.3f ms   p99 %7.3f ms   mean %7.3f   max %7.3f ms\n", end,
           bench_pct(s->total, n, 50), bench_pct(s->total, n, 99), bench_mean(s->total, n),
           bench_pct(s->total, n, 100));
    printf("  (upper bound, from before the submit call: p50 %.3f ms, p99 %.3f ms;\n"
           "   the submit call itself: p50 %.3f ms, p99 %.3f ms)\n",
           bench_pct(s->from_t0, n, 50), bench_pct(s->from_t0, n, 99), bench_pct(s->submit, n, 50),
           bench_pct(s->submit, n, 99));
    printf("    ready -> ready hook    p50 %7.3f ms   p99 %7.3f ms  (store notification thread)\n",
           bench_pct(s->to_hook, n, 50), bench_pct(s->to_hook, n, 99));
    printf("    hook -> %-14s p50 %7.3f ms   p99 %7.3f ms\n", end, bench_pct(s->hook_to, n, 50),
           bench_pct(s->hook_to, n, 99));
}

/* ---------------------------------------------------------------- A: fake worker */

struct poller {
    struct inproc *p;
    char worker_id[64];
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int go, done; /* requests asked / answered */
    int64_t held_ns;
    char fragment_id[64];
    int attempt;
    bool failed, quit;
};

static void *poller_main(void *arg)
{
    struct poller *pl = arg;
    struct vk_http_client_opts o = {.base_url = pl->p->url, .timeout_ms = 60000};
    struct vk_http_client *cl = NULL;
    struct vk_err err;
    if (vk_http_client_new(&o, &cl, &err) != 0) {
        pl->failed = true;
        return NULL;
    }
    char body[160];
    snprintf(body, sizeof(body), "{\"worker_id\":\"%s\",\"wait_s\":30}", pl->worker_id);
    for (;;) {
        pthread_mutex_lock(&pl->mu);
        while (pl->go == pl->done && !pl->quit)
            pthread_cond_wait(&pl->cv, &pl->mu);
        bool quit = pl->quit;
        pthread_mutex_unlock(&pl->mu);
        if (quit)
            break;
        json_t *a = NULL;
        long st = 0;
        json_t *req = json_loads(body, 0, NULL);
        int rc = vk_http_client_json(cl, "POST", "/api/v1/work/request", req, 60000, &st, &a, &err);
        int64_t t = vk_time_mono_ns();
        json_decref(req);
        pthread_mutex_lock(&pl->mu);
        pl->held_ns = t;
        pl->fragment_id[0] = '\0';
        const char *fid = json_string_value(json_object_get(a, "fragment_id"));
        if (rc == 0 && st == 200 && fid) {
            snprintf(pl->fragment_id, sizeof(pl->fragment_id), "%s", fid);
            pl->attempt = (int)json_integer_value(json_object_get(a, "attempt"));
        } else {
            pl->failed = true;
        }
        pl->done++;
        pthread_cond_broadcast(&pl->cv);
        pthread_mutex_unlock(&pl->mu);
        json_decref(a);
    }
    vk_http_client_free(cl);
    return NULL;
}

static int part_held(struct inproc *p, int runs)
{
    struct vk_http_client_opts o = {.base_url = p->url, .timeout_ms = 30000};
    struct vk_http_client *cl = NULL;
    struct vk_err err;
    struct series s;
    struct poller pl;
    memset(&pl, 0, sizeof(pl));
    pl.p = p;
    pthread_mutex_init(&pl.mu, NULL);
    pthread_cond_init(&pl.cv, NULL);
    pthread_t th;
    bool started = false;
    int rc = -1;
    const char *src = "version \"0.1\"\ntriggers \"manual\"\nchain {\n    machine \"default\"\n"
                      "    fragment { run \"true\" }\n}\n";
    struct vk_workflow *wf = load_wf(src);
    if (!wf || series_init(&s, (size_t)runs) != 0 || vk_http_client_new(&o, &cl, &err) != 0)
        goto out;
    json_t *a = NULL;
    json_t *reg = json_pack("{s:s, s:s, s:s}", "machine_group", "default", "name", "bench-fake",
                            "version", "bench");
    long st = bench_json(cl, "POST", "/api/v1/workers/register", reg, &a);
    json_decref(reg);
    const char *wid = json_string_value(json_object_get(a, "worker_id"));
    if (st != 200 || !wid) {
        json_decref(a);
        goto out;
    }
    snprintf(pl.worker_id, sizeof(pl.worker_id), "%s", wid);
    json_decref(a);
    if (pthread_create(&th, NULL, poller_main, &pl) != 0)
        goto out;
    started = true;
    for (int i = 0; i < runs; i++) {
        pthread_mutex_lock(&pl.mu);
        pl.go++;
        pthread_cond_broadcast(&pl.cv);
        pthread_mutex_unlock(&pl.mu);
        if (wait_parked(p, 1, 5000) != 0) {
            fprintf(stderr, "the long-poll did not park\n");
            goto out;
        }
        usleep(2000); /* idle: the poll has been parked a while */
        int64_t t0, t1;
        if (submit(p, wf, src, &t0, &t1) != 0)
            goto out;
        pthread_mutex_lock(&pl.mu);
        while (pl.done < pl.go)
            pthread_cond_wait(&pl.cv, &pl.mu);
        int64_t held = pl.held_ns;
        char fid[64];
        snprintf(fid, sizeof(fid), "%s", pl.fragment_id);
        int att = pl.attempt;
        pthread_mutex_unlock(&pl.mu);
        if (!fid[0]) {
            fprintf(stderr, "run %d: no work item\n", i);
            goto out;
        }
        series_add(&s, t0, t1, atomic_load(&p->hook_ns), held);
        json_t *res = json_pack("{s:s, s:s, s:i, s:b, s:i}", "worker_id", pl.worker_id,
                                "fragment_id", fid, "attempt", att, "success", 1, "exit_code", 0);
        long rst = bench_json(cl, "POST", "/api/v1/work/result", res, NULL);
        json_decref(res);
        if (rst != 200) {
            fprintf(stderr, "result: HTTP %ld\n", rst);
            goto out;
        }
    }
    series_print(&s, "A. long-polling fake worker (vk_http_client in this process)", "held");
    rc = 0;
out:
    if (started) {
        pthread_mutex_lock(&pl.mu);
        pl.quit = true;
        pthread_cond_broadcast(&pl.cv);
        pthread_mutex_unlock(&pl.mu);
        pthread_join(th, NULL);
    }
    vk_http_client_free(cl);
    vk_workflow_free(wf);
    series_free(&s);
    return rc;
}

/* ---------------------------------------------------------------- B: real worker */

static int part_script(struct inproc *p, const char *bin, int runs)
{
    char fifo[PATH_MAX + 16], wd[PATH_MAX + 16], log[PATH_MAX + 16], src[2 * PATH_MAX];
    snprintf(fifo, sizeof(fifo), "%s/fifo", p->dir);
    snprintf(wd, sizeof(wd), "%s/work", p->dir);
    snprintf(log, sizeof(log), "%s/worker.log", p->dir);
    snprintf(src, sizeof(src),
             "version \"0.1\"\ntriggers \"manual\"\nchain {\n    machine \"default\"\n"
             "    fragment { run \"echo x > %s\" }\n}\n",
             fifo);
    struct series s;
    int rc = -1;
    pid_t wpid = -1;
    struct vk_workflow *wf = load_wf(src);
    if (!wf || series_init(&s, (size_t)runs) != 0 || mkfifo(fifo, 0600) != 0)
        goto out;
    char *argv[] = {(char *)bin, "worker",        "--server", p->url,       "--group",
                    "default",   "--concurrency", "1",        "--work-dir", wd,
                    "--sandbox", "none",          "--name",   "bench-real", "--wait",
                    "30",        "--log-format",  "json",     NULL};
    wpid = bench_spawn(argv, log);
    if (wpid < 0)
        goto out;
    for (int i = 0; i < runs; i++) {
        if (wait_parked(p, 1, 10000) != 0) {
            fprintf(stderr, "the worker's long-poll did not park (log: %s)\n", log);
            goto out;
        }
        usleep(2000);
        int fd = open(fifo, O_RDONLY | O_NONBLOCK);
        if (fd < 0)
            goto out;
        int64_t t0, t1;
        if (submit(p, wf, src, &t0, &t1) != 0) {
            close(fd);
            goto out;
        }
        struct pollfd pf = {.fd = fd, .events = POLLIN};
        int pr = poll(&pf, 1, 10000);
        int64_t t = vk_time_mono_ns();
        char buf[16];
        ssize_t got = pr > 0 ? read(fd, buf, sizeof(buf)) : -1;
        close(fd);
        if (got <= 0) {
            fprintf(stderr, "run %d: the script did not write (log: %s)\n", i, log);
            goto out;
        }
        series_add(&s, t0, t1, atomic_load(&p->hook_ns), t);
    }
    series_print(&s,
                 "B. real `vulcan worker --sandbox none --concurrency 1`, script `echo x > FIFO`",
                 "script runs");
    rc = 0;
out:
    bench_stop(wpid, 10000);
    vk_workflow_free(wf);
    series_free(&s);
    return rc;
}

int main(int argc, char **argv)
{
    int runs = 500;
    const char *only = NULL, *binarg = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-r") == 0 && i + 1 < argc)
            runs = atoi(argv[++i]);
        else if (strcmp(argv[i], "--only") == 0 && i + 1 < argc)
            only = argv[++i];
        else if (argv[i][0] != '-')
            binarg = argv[i];
        else {
            fprintf(stderr,
                    "usage: dispatch_latency [-r RUNS] [--only held|script] [VULCAN_BIN]\n");
            return 2;
        }
    }
    if (runs < 1 || runs > 100000) {
        fprintf(stderr, "dispatch_latency: -r between 1 and 100000\n");
        return 2;
    }
    char bin[PATH_MAX];
    bench_vulcan_bin(binarg, bin);
    signal(SIGPIPE, SIG_IGN);
    vk_log_configure(VK_LOG_WARN, VK_LOG_JSON, 2);
    char load[64];
    bench_loadavg(load);
    printf("dispatch latency, idle long-polling worker; load average before: %s\n\n", load);
    struct inproc p;
    int rc = 0;
    if (inproc_start(&p) != 0)
        return 1;
    if (!only || strcmp(only, "held") == 0)
        rc |= part_held(&p, runs);
    if (!only || strcmp(only, "script") == 0) {
        if (access(bin, X_OK) != 0) {
            fprintf(stderr, "no vulcan binary at '%s' (pass it or set VULCAN_BIN)\n", bin);
            rc = -1;
        } else {
            if (!only)
                printf("\n");
            rc |= part_script(&p, bin, runs);
        }
    }
    inproc_stop(&p);
    bench_loadavg(load);
    printf("\nload average after: %s\n", load);
    return rc ? 1 : 0;
}
