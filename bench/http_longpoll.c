/*
 * Long-poll benchmark for the http module.
 *
 * The server runs in a forked child (so its memory is measured alone, from
 * /proc/PID/status VmRSS). It parks every GET /wait request; a dispatcher
 * thread in the child replies to them with the CLOCK_MONOTONIC time of the
 * reply call (the clock is shared by both processes), so the parent measures
 * reply-call → client-receipt latency.
 *
 *   1. RSS of the idle server.
 *   2. N (default 1000) concurrent long-polls from one curl multi thread;
 *      RSS with all of them parked; then wake all at once: latency p50/p99.
 *   3. Single wake-ups: one waiting client, woken 2 ms after it parked,
 *      ITER (default 500) times: latency p50/p99.
 *
 * Usage: http_longpoll [N] [ITER]
 */
#include "vulcan/http.h"

#include <curl/curl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#define MAXW 20000

/* ---------------------------------------------------------------- Child: server */

struct disp {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct vk_http_req **w;
    size_t n;
    bool wake_all, quit;
};

static void remove_locked(struct disp *d, struct vk_http_req *req)
{
    for (size_t i = 0; i < d->n; i++)
        if (d->w[i] == req) {
            d->w[i] = d->w[--d->n];
            return;
        }
}

static void on_gone(struct vk_http_req *req, void *ctx)
{
    struct disp *d = ctx;
    pthread_mutex_lock(&d->mu);
    remove_locked(d, req);
    pthread_mutex_unlock(&d->mu);
}

static void h_wait(struct vk_http_req *req, void *ctx)
{
    struct disp *d = ctx;
    pthread_mutex_lock(&d->mu);
    if (d->n == MAXW) {
        pthread_mutex_unlock(&d->mu);
        vk_http_reply_error(req, 503, "busy", "too many waiters");
        return;
    }
    if (vk_http_suspend(req, 60000, on_gone, on_gone, d) != 0) {
        pthread_mutex_unlock(&d->mu);
        vk_http_reply_error(req, 500, "internal", "suspend failed");
        return;
    }
    d->w[d->n++] = req;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
}

static void h_wake_all(struct vk_http_req *req, void *ctx)
{
    struct disp *d = ctx;
    pthread_mutex_lock(&d->mu);
    d->wake_all = true;
    pthread_cond_broadcast(&d->cv);
    pthread_mutex_unlock(&d->mu);
    vk_http_reply_empty(req, 202);
}

static void h_stats(struct vk_http_req *req, void *ctx)
{
    struct disp *d = ctx;
    pthread_mutex_lock(&d->mu);
    json_int_t n = (json_int_t)d->n;
    pthread_mutex_unlock(&d->mu);
    vk_http_reply_json(req, 200, json_pack("{s:I}", "waiting", n));
}

/* Reply to waiters: a "single" waiter 2 ms after it parked, all on wake_all. */
static void *dispatcher(void *arg)
{
    struct disp *d = arg;
    pthread_mutex_lock(&d->mu);
    for (;;) {
        while (!d->quit && d->n == 0)
            pthread_cond_wait(&d->cv, &d->mu);
        if (d->quit)
            break;
        bool single = vk_http_query(d->w[0], "single") != NULL;
        if (!single && !d->wake_all) {
            pthread_cond_wait(&d->cv, &d->mu);
            continue;
        }
        if (single) {
            pthread_mutex_unlock(&d->mu);
            usleep(2000);
            pthread_mutex_lock(&d->mu);
        }
        d->wake_all = false;
        while (d->n > 0) {
            struct vk_http_req *req = d->w[--d->n];
            char body[64];
            int len = snprintf(body, sizeof(body), "%lld", (long long)vk_time_mono_ns());
            vk_http_reply(req, 200, "text/plain", body, (size_t)len);
        }
    }
    pthread_mutex_unlock(&d->mu);
    return NULL;
}

static int child_main(int port_fd, int quit_fd)
{
    struct disp d = {.w = calloc(MAXW, sizeof(struct vk_http_req *))};
    pthread_mutex_init(&d.mu, NULL);
    pthread_cond_init(&d.cv, NULL);
    /* Every client is on loopback: lift the per-address limit (default 64). */
    struct vk_http_server_opts o = {.listen = "127.0.0.1:0", .per_addr_limit = MAXW + 16};
    struct vk_http_server *srv = NULL;
    struct vk_err err;
    if (vk_http_server_new(&o, &srv, &err) != 0 ||
        vk_http_route(srv, "GET", "/wait", h_wait, &d, NULL, &err) != 0 ||
        vk_http_route(srv, "POST", "/wake", h_wake_all, &d, NULL, &err) != 0 ||
        vk_http_route(srv, "GET", "/stats", h_stats, &d, NULL, &err) != 0 ||
        vk_http_server_start(srv, &err) != 0) {
        fprintf(stderr, "server: %s\n", err.msg);
        return 1;
    }
    pthread_t t;
    pthread_create(&t, NULL, dispatcher, &d);
    uint16_t port = vk_http_server_port(srv);
    if (write(port_fd, &port, sizeof(port)) != sizeof(port))
        return 1;
    char c;
    while (read(quit_fd, &c, 1) > 0)
        ;
    vk_http_server_stop(srv);
    pthread_mutex_lock(&d.mu);
    d.quit = true;
    pthread_cond_broadcast(&d.cv);
    pthread_mutex_unlock(&d.mu);
    pthread_join(t, NULL);
    vk_http_server_free(srv);
    free(d.w);
    return 0;
}

/* ---------------------------------------------------------------- Parent: clients */

static long rss_kb(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    long kb = -1;
    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

struct item {
    char body[64];
    size_t len;
    int64_t recv_ns;
    long status;
};

static size_t on_body(char *p, size_t sz, size_t nm, void *ud)
{
    struct item *it = ud;
    size_t n = sz * nm;
    if (it->len == 0)
        it->recv_ns = vk_time_mono_ns();
    size_t c = n < sizeof(it->body) - 1 - it->len ? n : sizeof(it->body) - 1 - it->len;
    memcpy(it->body + it->len, p, c);
    it->len += c;
    it->body[it->len] = '\0';
    return n;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void report(const char *what, int64_t *lat, size_t n)
{
    if (n == 0) {
        printf("%s: no samples\n", what);
        return;
    }
    qsort(lat, n, sizeof(*lat), cmp_i64);
    printf("%s: n=%zu p50=%.3f ms p99=%.3f ms max=%.3f ms\n", what, n, lat[n / 2] / 1e6,
           lat[(n * 99) / 100 >= n ? n - 1 : (n * 99) / 100] / 1e6, lat[n - 1] / 1e6);
}

static long waiting(struct vk_http_client *cl)
{
    json_t *a = NULL;
    long st = 0;
    struct vk_err err;
    if (vk_http_client_json(cl, "GET", "/stats", NULL, 5000, &st, &a, &err) != 0)
        return -1;
    long n = (long)json_integer_value(json_object_get(a, "waiting"));
    json_decref(a);
    return n;
}

static int run_many(unsigned port, pid_t pid, size_t n, struct vk_http_client *ctl)
{
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/wait", port);
    struct item *items = calloc(n, sizeof(*items));
    CURL **hs = calloc(n, sizeof(*hs));
    CURLM *m = curl_multi_init();
    for (size_t i = 0; i < n; i++) {
        hs[i] = curl_easy_init();
        curl_easy_setopt(hs[i], CURLOPT_URL, url);
        curl_easy_setopt(hs[i], CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(hs[i], CURLOPT_TIMEOUT_MS, 60000L);
        curl_easy_setopt(hs[i], CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(hs[i], CURLOPT_WRITEDATA, &items[i]);
        curl_easy_setopt(hs[i], CURLOPT_PRIVATE, &items[i]);
        curl_multi_add_handle(m, hs[i]);
    }
    int running = 1;
    int64_t t0 = vk_time_mono_ns();
    long rss_wait = -1;
    bool woke = false;
    int64_t woke_ns = 0;
    while (running) {
        curl_multi_perform(m, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            struct item *it;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&it);
            curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &it->status);
        }
        if (!woke && vk_time_mono_ns() - t0 > 200000000LL) {
            long w = waiting(ctl);
            if (w == (long)n) {
                usleep(300000); /* let the server settle */
                rss_wait = rss_kb(pid);
                printf("parked %zu long-polls in %.0f ms; server RSS with them waiting: %ld kB\n",
                       n, (vk_time_mono_ns() - t0) / 1e6, rss_wait);
                struct vk_http_response r;
                struct vk_err err;
                woke_ns = vk_time_mono_ns();
                if (vk_http_client_request(ctl, "POST", "/wake", NULL, NULL, 0, 5000, &r, &err) ==
                    0)
                    vk_http_response_release(&r);
                woke = true;
            } else {
                t0 = vk_time_mono_ns() - 150000000LL; /* ask again in 50 ms */
            }
        }
        if (running)
            curl_multi_poll(m, NULL, 0, 50, NULL);
    }
    int64_t *lat = calloc(n, sizeof(*lat));
    size_t k = 0, ok = 0;
    int64_t last = 0;
    for (size_t i = 0; i < n; i++) {
        if (items[i].status != 200)
            continue;
        ok++;
        long long sent = atoll(items[i].body);
        lat[k++] = items[i].recv_ns - sent;
        if (items[i].recv_ns > last)
            last = items[i].recv_ns;
    }
    printf("woke %zu/%zu; all received %.1f ms after the wake request\n", ok, n,
           (last - woke_ns) / 1e6);
    report("wake-all latency (reply call -> client receipt)", lat, k);
    for (size_t i = 0; i < n; i++) {
        curl_multi_remove_handle(m, hs[i]);
        curl_easy_cleanup(hs[i]);
    }
    curl_multi_cleanup(m);
    free(hs);
    free(items);
    free(lat);
    return ok == n ? 0 : 1;
}

static int run_single(unsigned port, size_t iters)
{
    char base[64];
    snprintf(base, sizeof(base), "http://127.0.0.1:%u", port);
    struct vk_http_client_opts o = {.base_url = base, .timeout_ms = 10000};
    struct vk_http_client *cl = NULL;
    struct vk_err err;
    if (vk_http_client_new(&o, &cl, &err) != 0)
        return 1;
    int64_t *lat = calloc(iters, sizeof(*lat));
    size_t k = 0;
    for (size_t i = 0; i < iters; i++) {
        struct vk_http_response r;
        if (vk_http_client_request(cl, "GET", "/wait?single=1", NULL, NULL, 0, 0, &r, &err) != 0) {
            fprintf(stderr, "single: %s\n", err.msg);
            break;
        }
        int64_t now = vk_time_mono_ns();
        if (r.status == 200)
            lat[k++] = now - atoll(r.body.data);
        vk_http_response_release(&r);
    }
    report("single wake-up latency (reply call -> client receipt)", lat, k);
    free(lat);
    vk_http_client_free(cl);
    return k == iters ? 0 : 1;
}

int main(int argc, char **argv)
{
    size_t n = argc > 1 ? (size_t)atol(argv[1]) : 1000;
    size_t iters = argc > 2 ? (size_t)atol(argv[2]) : 500;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    int port_pipe[2], quit_pipe[2];
    if (pipe(port_pipe) || pipe(quit_pipe))
        return 1;
    pid_t pid = fork();
    if (pid == 0) {
        close(port_pipe[0]);
        close(quit_pipe[1]);
        _exit(child_main(port_pipe[1], quit_pipe[0]));
    }
    close(port_pipe[1]);
    close(quit_pipe[0]);
    uint16_t port = 0;
    if (read(port_pipe[0], &port, sizeof(port)) != sizeof(port)) {
        fprintf(stderr, "server did not start\n");
        return 1;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    usleep(200000);
    printf("server pid %d port %u; idle server RSS: %ld kB\n", (int)pid, port, rss_kb(pid));

    char base[64];
    snprintf(base, sizeof(base), "http://127.0.0.1:%u", port);
    struct vk_http_client_opts o = {.base_url = base};
    struct vk_http_client *ctl = NULL;
    struct vk_err err;
    if (vk_http_client_new(&o, &ctl, &err) != 0)
        return 1;
    int rc = run_many(port, pid, n, ctl);
    usleep(300000);
    printf("server RSS after the wake-up: %ld kB\n", rss_kb(pid));
    rc |= run_single(port, iters);
    vk_http_client_free(ctl);

    close(quit_pipe[1]); /* the child stops its server and exits */
    int status = 0;
    waitpid(pid, &status, 0);
    curl_global_cleanup();
    return rc || !WIFEXITED(status) || WEXITSTATUS(status) != 0;
}
