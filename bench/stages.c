/*
 * stages — where the milliseconds of submit -> completed go (issue 16).
 *
 *   stages [-r RUNS] [--sandbox none|bwrap|both] [--keep] [VULCAN_BIN]
 *
 * The same runs as bench/submit_latency (a real `vulcan server --workers 0` over SQLite,
 * one real `vulcan worker --concurrency 1` per sandbox, RUNS one-fragment chains `true`
 * submitted one after another and polled every millisecond until final), with tracing on:
 * the server and the worker export their spans over OTLP/HTTP to a receiver inside this
 * program. Every timestamp is CLOCK_REALTIME on the same host, so the client's clock, the
 * server's spans (dispatch, chain) and the worker's (execute and its children workspace,
 * set-up, script, clean-up, result) line up. For each run the stages are the differences
 * of consecutive timestamps; the p50 of each is printed (the p50s do not add up exactly
 * to the p50 of the total). Tracing itself costs a little (bench/dispatch's tracing
 * figures in docs/benchmarks.md): the totals here are a few per cent above
 * submit_latency's.
 *
 * Prints figures; never fails on a target (exit 1 only when it cannot run).
 */
#include "dispatch_common.h"

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <strings.h>

/* ---------------------------------------------------------------- OTLP receiver */

#define RX_MAX_BODY (8u << 20)

struct span_rec {
    char name[32];
    char trace[33], id[17], parent[17];
    char chain_id[64];
    int64_t start, end;
};

struct receiver {
    int fd;
    int port;
    pthread_t thread;
    pthread_mutex_t mu;
    struct span_rec *spans;
    size_t n, cap;
    atomic_bool stop;
};

static const char *js(json_t *v)
{
    const char *s = json_string_value(v);
    return s ? s : "";
}

static const char *attr_str(json_t *attrs, const char *key)
{
    size_t i;
    json_t *a;
    json_array_foreach(attrs, i, a)
    {
        if (strcmp(js(json_object_get(a, "key")), key) == 0)
            return json_string_value(json_object_get(json_object_get(a, "value"), "stringValue"));
    }
    return NULL;
}

static void rx_add_body(struct receiver *rx, const char *body, size_t len)
{
    json_t *doc = json_loadb(body, len, 0, NULL);
    json_t *rss = json_object_get(doc, "resourceSpans");
    size_t i, j, k;
    json_t *rs, *ss, *sp;
    pthread_mutex_lock(&rx->mu);
    json_array_foreach(rss, i, rs)
    {
        json_array_foreach(json_object_get(rs, "scopeSpans"), j, ss)
        {
            json_array_foreach(json_object_get(ss, "spans"), k, sp)
            {
                if (rx->n == rx->cap) {
                    size_t cap = rx->cap ? rx->cap * 2 : 256;
                    struct span_rec *v = realloc(rx->spans, cap * sizeof(*v));
                    if (!v)
                        break;
                    rx->spans = v;
                    rx->cap = cap;
                }
                struct span_rec *r = &rx->spans[rx->n++];
                memset(r, 0, sizeof(*r));
                snprintf(r->name, sizeof(r->name), "%s", js(json_object_get(sp, "name")));
                snprintf(r->trace, sizeof(r->trace), "%s", js(json_object_get(sp, "traceId")));
                snprintf(r->id, sizeof(r->id), "%s", js(json_object_get(sp, "spanId")));
                snprintf(r->parent, sizeof(r->parent), "%s",
                         js(json_object_get(sp, "parentSpanId")));
                const char *cid = attr_str(json_object_get(sp, "attributes"), "vulcan.chain_id");
                snprintf(r->chain_id, sizeof(r->chain_id), "%s", cid ? cid : "");
                const char *st = json_string_value(json_object_get(sp, "startTimeUnixNano"));
                const char *en = json_string_value(json_object_get(sp, "endTimeUnixNano"));
                r->start = st ? strtoll(st, NULL, 10) : 0;
                r->end = en ? strtoll(en, NULL, 10) : 0;
            }
        }
    }
    pthread_mutex_unlock(&rx->mu);
    json_decref(doc);
}

/* One keep-alive connection: requests with a Content-Length body, each answered 200. */
static void *rx_conn(void *arg)
{
    void **a = arg;
    struct receiver *rx = a[0];
    int fd = (int)(intptr_t)a[1];
    free(a);
    char *buf = malloc(RX_MAX_BODY + 8192);
    size_t have = 0;
    while (buf && !atomic_load(&rx->stop)) {
        char *hend = NULL;
        while (!(hend = memmem(buf, have, "\r\n\r\n", 4))) {
            if (have >= 8192)
                goto done;
            struct pollfd p = {.fd = fd, .events = POLLIN};
            if (poll(&p, 1, 200) == 0) {
                if (atomic_load(&rx->stop))
                    goto done;
                continue;
            }
            ssize_t n = read(fd, buf + have, 8192 - have);
            if (n <= 0)
                goto done;
            have += (size_t)n;
        }
        size_t hlen = (size_t)(hend - buf) + 4, clen = 0;
        *hend = '\0';
        for (char *l = buf; l;) {
            if (strncasecmp(l, "Content-Length:", 15) == 0)
                clen = strtoul(l + 15, NULL, 10);
            char *nl = strstr(l, "\r\n");
            l = nl ? nl + 2 : NULL;
        }
        if (clen > RX_MAX_BODY)
            goto done;
        while (have < hlen + clen) {
            ssize_t n = read(fd, buf + have, hlen + clen - have);
            if (n <= 0)
                goto done;
            have += (size_t)n;
        }
        rx_add_body(rx, buf + hlen, clen);
        static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                                 "Content-Length: 2\r\n\r\n{}";
        if (write(fd, ok, sizeof(ok) - 1) != (ssize_t)sizeof(ok) - 1)
            goto done;
        memmove(buf, buf + hlen + clen, have - hlen - clen);
        have -= hlen + clen;
    }
done:
    free(buf);
    close(fd);
    return NULL;
}

static void *rx_main(void *arg)
{
    struct receiver *rx = arg;
    while (!atomic_load(&rx->stop)) {
        struct pollfd p = {.fd = rx->fd, .events = POLLIN};
        if (poll(&p, 1, 200) <= 0)
            continue;
        int c = accept(rx->fd, NULL, NULL);
        if (c < 0)
            continue;
        void **a = malloc(2 * sizeof(void *));
        pthread_t t;
        if (!a) {
            close(c);
            continue;
        }
        a[0] = rx;
        a[1] = (void *)(intptr_t)c;
        if (pthread_create(&t, NULL, rx_conn, a) != 0) {
            free(a);
            close(c);
            continue;
        }
        pthread_detach(t);
    }
    return NULL;
}

static int rx_start(struct receiver *rx)
{
    memset(rx, 0, sizeof(*rx));
    pthread_mutex_init(&rx->mu, NULL);
    rx->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    if (rx->fd < 0 || bind(rx->fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        listen(rx->fd, 64) != 0 || getsockname(rx->fd, (struct sockaddr *)&sa, &sl) != 0)
        return -1;
    rx->port = ntohs(sa.sin_port);
    return pthread_create(&rx->thread, NULL, rx_main, rx) == 0 ? 0 : -1;
}

static void rx_stop(struct receiver *rx)
{
    atomic_store(&rx->stop, true);
    pthread_join(rx->thread, NULL);
    close(rx->fd);
    usleep(300000); /* the connection threads see `stop` within 200 ms */
}

/* ---------------------------------------------------------------- Runs */

struct run_times {
    char cid[64];
    int64_t t0, t1, t_done; /* client: before submit, submit answered, completed seen */
};

enum {
    ST_SUBMIT,   /* HTTP submit: parse, store, commit (client round trip) */
    ST_CLAIM,    /* submit answered -> claim handed over (dispatch span end) */
    ST_TOWORKER, /* claim handed over -> the worker's execute span starts */
    ST_PREP,     /* execute start -> executor start (job token, log uploader) */
    ST_WS,       /* workspace */
    ST_SETUP,    /* cgroup, command line */
    ST_SCRIPT,   /* spawn (bwrap's set-up) + script + exit */
    ST_CLEAN,    /* clean-up */
    ST_TORESULT, /* clean-up end -> result post starts */
    ST_RESULT,   /* result POST round trip */
    ST_SEEN,     /* result answered -> the client sees completed (poll: <= 1 ms + a GET) */
    ST_TOTAL,
    ST_N
};
static const char *const st_names[ST_N] = {"HTTP submit (parse, store, commit)",
                                           "submit answered -> claimed (wake-up, claim)",
                                           "claim reply -> worker has the item",
                                           "worker: job token, log uploader",
                                           "executor: workspace",
                                           "executor: set-up (cgroup, argv)",
                                           "executor: spawn + script + exit",
                                           "executor: clean-up",
                                           "worker: -> result post",
                                           "result POST (store, completion)",
                                           "result answered -> client sees it",
                                           "total submit -> completed"};

static const struct span_rec *find(const struct receiver *rx, const char *name, const char *cid,
                                   const char *parent)
{
    for (size_t i = 0; i < rx->n; i++) {
        const struct span_rec *r = &rx->spans[i];
        if (strcmp(r->name, name) != 0)
            continue;
        if (cid && strcmp(r->chain_id, cid) != 0)
            continue;
        if (parent && strcmp(r->parent, parent) != 0)
            continue;
        return r;
    }
    return NULL;
}

static void report(const char *label, struct receiver *rx, const struct run_times *rt, int runs)
{
    double *v[ST_N];
    int have = 0;
    for (int s = 0; s < ST_N; s++)
        v[s] = calloc((size_t)runs, sizeof(double));
    pthread_mutex_lock(&rx->mu);
    for (int r = 0; r < runs; r++) {
        const struct span_rec *d = find(rx, "dispatch", rt[r].cid, NULL);
        const struct span_rec *e = find(rx, "execute", rt[r].cid, NULL);
        if (!d || !e)
            continue;
        const struct span_rec *ws = find(rx, "workspace", NULL, e->id);
        const struct span_rec *su = find(rx, "set-up", NULL, e->id);
        const struct span_rec *sc = find(rx, "script", NULL, e->id);
        const struct span_rec *cl = find(rx, "clean-up", NULL, e->id);
        const struct span_rec *rs = find(rx, "result", NULL, e->id);
        if (!ws || !su || !sc || !cl || !rs)
            continue;
        int64_t t[ST_N + 1] = {rt[r].t0, rt[r].t1, d->end,  e->start,  ws->start, ws->end,
                               su->end,  sc->end,  cl->end, rs->start, rs->end,   rt[r].t_done};
        for (int s = 0; s < ST_TOTAL; s++)
            v[s][have] = (double)(t[s + 1] - t[s]) / 1e6;
        v[ST_TOTAL][have] = (double)(rt[r].t_done - rt[r].t0) / 1e6;
        have++;
    }
    pthread_mutex_unlock(&rx->mu);
    printf("%s (%d of %d runs with every span)\n", label, have, runs);
    for (int s = 0; s < ST_N; s++) {
        printf("  %-44s p50 %7.3f ms   p90 %7.3f ms\n", st_names[s],
               have ? bench_pct(v[s], (size_t)have, 50) : 0,
               have ? bench_pct(v[s], (size_t)have, 90) : 0);
        free(v[s]);
    }
}

static int run_config(const char *bin, int runs, const char *sandbox, bool keep)
{
    struct receiver rx;
    if (rx_start(&rx) != 0) {
        fprintf(stderr, "cannot start the OTLP receiver\n");
        return -1;
    }
    char otlp[128];
    snprintf(otlp, sizeof(otlp), "--otlp-endpoint http://127.0.0.1:%d", rx.port);
    const char *user_s = getenv("VK_BENCH_SERVER_ARGS"), *user_w = getenv("VK_BENCH_WORKER_ARGS");
    char *saved_s = user_s ? strdup(user_s) : NULL, *saved_w = user_w ? strdup(user_w) : NULL;
    char extra[1024];
    snprintf(extra, sizeof(extra), "%s %s", otlp, saved_s ? saved_s : "");
    setenv("VK_BENCH_SERVER_ARGS", extra, 1);
    struct bench_server s;
    pid_t wp = -1;
    int rc = -1;
    char *wf = bench_workflow(1, "true");
    struct run_times *rt = calloc((size_t)runs, sizeof(*rt));
    int up = bench_server_start(&s, bin);
    if (!wf || !rt || up != 0)
        goto out;
    snprintf(extra, sizeof(extra), "--sandbox %s %s %s", sandbox, otlp, saved_w ? saved_w : "");
    setenv("VK_BENCH_WORKER_ARGS", extra, 1);
    wp = bench_worker_start(&s, bin, 0, 1, 30);
    if (wp < 0)
        goto out;
    long long pending, running, alive = 0;
    for (int i = 0; i < 500 && alive < 1; i++) {
        if (bench_queue(s.cl, &pending, &running, &alive) != 0)
            goto out;
        if (alive < 1)
            usleep(20000);
    }
    if (alive < 1)
        goto out;
    usleep(1000000);
    for (int r = 0; r < runs; r++) {
        char path[128];
        rt[r].t0 = bench_real_ns();
        if (bench_submit(s.cl, wf, rt[r].cid) != 0)
            goto out;
        rt[r].t1 = bench_real_ns();
        snprintf(path, sizeof(path), "/api/v1/chains/%s", rt[r].cid);
        for (;;) {
            json_t *c = NULL;
            if (bench_json(s.cl, "GET", path, NULL, &c) != 200) {
                json_decref(c);
                goto out;
            }
            const char *st = json_string_value(json_object_get(c, "status"));
            bool done = st && (strcmp(st, "completed") == 0 || strcmp(st, "failed") == 0 ||
                               strcmp(st, "cancelled") == 0);
            json_decref(c);
            if (done) {
                rt[r].t_done = bench_real_ns();
                break;
            }
            if (bench_real_ns() - rt[r].t0 > 60LL * 1000000000LL)
                goto out;
            usleep(1000);
        }
    }
    rc = 0;
out:
    if (wp > 0) {
        kill(wp, SIGTERM);
        bench_stop(wp, 10000);
    }
    if (up == 0)
        bench_server_stop(&s, keep);
    if (saved_s)
        setenv("VK_BENCH_SERVER_ARGS", saved_s, 1);
    else
        unsetenv("VK_BENCH_SERVER_ARGS");
    if (saved_w)
        setenv("VK_BENCH_WORKER_ARGS", saved_w, 1);
    else
        unsetenv("VK_BENCH_WORKER_ARGS");
    rx_stop(&rx);
    if (rc == 0) {
        char label[128];
        snprintf(label, sizeof(label), "--sandbox %s, 1 worker x concurrency 1, SQLite, tracing on",
                 sandbox);
        report(label, &rx, rt, runs);
    }
    free(saved_s);
    free(saved_w);
    free(wf);
    free(rt);
    free(rx.spans);
    return rc;
}

int main(int argc, char **argv)
{
    int runs = 30;
    bool keep = false;
    const char *which = "both", *binarg = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-r") == 0 && i + 1 < argc)
            runs = atoi(argv[++i]);
        else if (strcmp(argv[i], "--sandbox") == 0 && i + 1 < argc)
            which = argv[++i];
        else if (strcmp(argv[i], "--keep") == 0)
            keep = true;
        else if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0) {
            printf("usage: stages [-r RUNS] [--sandbox none|bwrap|both] [--keep] [VULCAN_BIN]\n");
            return 0;
        } else
            binarg = argv[i];
    }
    if (runs < 1 || runs > 10000 ||
        (strcmp(which, "none") != 0 && strcmp(which, "bwrap") != 0 && strcmp(which, "both") != 0)) {
        fprintf(stderr, "stages: -r 1..10000, --sandbox none|bwrap|both\n");
        return 1;
    }
    char bin[PATH_MAX];
    bench_vulcan_bin(binarg, bin);
    char load[64];
    bench_loadavg(load);
    printf("submit -> completed by stage, %d sequential one-fragment chains `true`; vulcan = %s\n",
           runs, bin);
    printf("load average before: %s\n\n", load);
    const char *boxes[2] = {"none", "bwrap"};
    int failed = 0;
    for (int b = 0; b < 2; b++) {
        if (strcmp(which, "both") != 0 && strcmp(which, boxes[b]) != 0)
            continue;
        if (run_config(bin, runs, boxes[b], keep) != 0) {
            printf("--sandbox %s: FAILED to run\n", boxes[b]);
            failed++;
        }
    }
    bench_loadavg(load);
    printf("\nload average after: %s\n", load);
    return failed ? 1 : 0;
}
