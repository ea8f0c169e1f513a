/*
 * Issue 12: a SIGTERM'd server must never abort. libmicrohttpd aborted with "Failed to
 * remove listen FD from epoll set" when the listen socket returned by MHD_quiesce_daemon
 * was closed while a polling thread still had it in its epoll set. Start and stop servers
 * many times in a row with 4 polling threads, each time with long-polls suspended, live
 * streams and a stream of short requests still arriving while it stops.
 */
#include "http_test.h"
#include "multi.h"

#include <stdatomic.h>

struct env {
    struct vk_http_server *srv;
    pthread_mutex_t lock;
    struct vk_http_stream *streams[8];
    size_t nstreams;
};

static void h_ok(struct vk_http_req *req, void *ctx)
{
    (void)ctx;
    vk_http_reply(req, 200, "text/plain", "ok", 2);
}

static void h_wait(struct vk_http_req *req, void *ctx)
{
    (void)ctx;
    VK_ASSERT(vk_http_suspend(req, 60000, NULL, NULL, NULL) == 0); /* only stop ends it */
}

static void h_stream(struct vk_http_req *req, void *ctx)
{
    struct env *e = ctx;
    struct vk_http_stream *st = NULL;
    if (vk_http_reply_stream(req, 200, "text/event-stream", NULL, &st) != 0)
        return;
    pthread_mutex_lock(&e->lock);
    if (e->nstreams < VK_ARRAY_LEN(e->streams)) {
        e->streams[e->nstreams++] = st;
        st = NULL;
    }
    pthread_mutex_unlock(&e->lock);
    if (st)
        vk_http_stream_close(st);
}

struct pounder {
    uint16_t port;
    atomic_bool stop;
    pthread_t thread;
};

/* Short requests on fresh connections until told to stop: some arrive mid-stop. */
static void *pound(void *arg)
{
    struct pounder *p = arg;
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/ok", p->port);
    CURL *h = curl_easy_init();
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 2000L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_FORBID_REUSE, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, multi_write);
    struct multi_item sink = {0};
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &sink);
    while (!atomic_load(&p->stop)) {
        sink.len = 0;
        (void)curl_easy_perform(h);
    }
    curl_easy_cleanup(h);
    return NULL;
}

/* VK_STOP_ROUNDS (default 25; `make soak` runs more). */
static int rounds(void)
{
    const char *s = getenv("VK_STOP_ROUNDS");
    int n = s ? atoi(s) : 0;
    return n > 0 ? n : 25;
}

/* VK_STOP_THREADS polling threads (default 4). */
static unsigned threads(void)
{
    const char *s = getenv("VK_STOP_THREADS");
    int n = s ? atoi(s) : 0;
    return n > 0 && n <= 64 ? (unsigned)n : 4;
}

static void test_stop_under_load(void **state)
{
    (void)state;
    for (int round = 0; round < rounds(); round++) {
        struct env e = {.nstreams = 0};
        pthread_mutex_init(&e.lock, NULL);
        struct vk_http_server_opts o = {
            .listen = "127.0.0.1:0", .threads = threads(), .stop_grace_ms = 200};
        struct vk_err err;
        assert_int_equal(vk_http_server_new(&o, &e.srv, &err), 0);
        assert_int_equal(vk_http_route(e.srv, "GET", "/ok", h_ok, &e, NULL, &err), 0);
        assert_int_equal(vk_http_route(e.srv, "GET", "/wait", h_wait, &e, NULL, &err), 0);
        assert_int_equal(vk_http_route(e.srv, "GET", "/stream", h_stream, &e, NULL, &err), 0);
        test_server_start(e.srv);
        uint16_t port = vk_http_server_port(e.srv);

        /* long-polls and streams, held open until the stop */
        struct multi_run *waits = multi_start(port, 6, "/wait?i=%d", 10000, 0);
        struct multi_run *streams = multi_start(port, 6, "/stream?i=%d", 10000, 0);
        struct pounder p[4] = {{.port = port}, {.port = port}, {.port = port}, {.port = port}};
        for (size_t i = 0; i < VK_ARRAY_LEN(p); i++)
            assert_int_equal(pthread_create(&p[i].thread, NULL, pound, &p[i]), 0);
        /* let them connect (a round stops at a different moment each time) */
        struct timespec ts = {0, (10 + round % 5 * 10) * 1000000L};
        nanosleep(&ts, NULL);
        pthread_mutex_lock(&e.lock);
        for (size_t i = 0; i < e.nstreams; i++)
            if (vk_http_stream_write(e.streams[i], "data: x\n\n", 9) != 0)
                continue; /* a stream whose client went: fine here */
        pthread_mutex_unlock(&e.lock);

        vk_http_server_stop(e.srv); /* with requests still arriving: must not abort */
        for (size_t i = 0; i < VK_ARRAY_LEN(p); i++) {
            atomic_store(&p[i].stop, true);
            pthread_join(p[i].thread, NULL);
        }
        multi_join(waits);
        multi_join(streams);
        multi_free(waits);
        multi_free(streams);
        for (size_t i = 0; i < e.nstreams; i++)
            vk_http_stream_close(e.streams[i]);
        vk_http_server_free(e.srv);
        pthread_mutex_destroy(&e.lock);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_stop_under_load)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
