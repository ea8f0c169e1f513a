/*
 * Suspended requests (long-poll): replies from other threads, deadlines,
 * client disconnects, many at once, and the graceful stop. The "owner" here
 * follows the rule documented in http.h: a list under a lock, callbacks take
 * the lock, replies are made while holding it.
 */
#include "http_test.h"
#include "multi.h"

#include <stdatomic.h>
#include <stdlib.h>

#define MAXW 2048

struct owner {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct vk_http_req *waiting[MAXW];
    size_t n;
    atomic_int timeouts, closes, parked, conflicts;
    int64_t timeout_ms;
    bool timeout_replies;     /* on_timeout replies itself (else the server's 204) */
    bool reply_in_handler;    /* reply from a thread before the handler returns */
    struct vk_http_req *kept; /* a request we hold a reference to */
};

static void remove_locked(struct owner *o, struct vk_http_req *req)
{
    for (size_t i = 0; i < o->n; i++)
        if (o->waiting[i] == req) {
            o->waiting[i] = o->waiting[--o->n];
            return;
        }
}

static void on_timeout(struct vk_http_req *req, void *ctx)
{
    struct owner *o = ctx;
    pthread_mutex_lock(&o->mu);
    remove_locked(o, req);
    atomic_fetch_add(&o->timeouts, 1);
    if (o->timeout_replies)
        VK_ASSERT(vk_http_reply_error(req, 299, "timeout_reply", "from on_timeout") == 0);
    pthread_mutex_unlock(&o->mu);
}

static void on_close(struct vk_http_req *req, void *ctx)
{
    struct owner *o = ctx;
    pthread_mutex_lock(&o->mu);
    remove_locked(o, req);
    atomic_fetch_add(&o->closes, 1);
    pthread_cond_broadcast(&o->cv);
    pthread_mutex_unlock(&o->mu);
}

static void *reply_now(void *arg)
{
    struct vk_http_req *req = arg;
    VK_ASSERT(vk_http_reply_error(req, 201, "early", "before the handler returned") == 0);
    vk_http_req_unref(req);
    return NULL;
}

static void h_wait(struct vk_http_req *req, void *ctx)
{
    struct owner *o = ctx;
    if (vk_http_query(req, "keep")) {
        vk_http_req_ref(req);
        o->kept = req;
    }
    if (o->reply_in_handler) {
        VK_ASSERT(vk_http_suspend(req, o->timeout_ms, on_timeout, on_close, o) == 0);
        VK_ASSERT(vk_http_suspend(req, 1, NULL, NULL, NULL) == VK_EINVAL);
        pthread_t t;
        vk_http_req_ref(req);
        pthread_create(&t, NULL, reply_now, req);
        pthread_join(t, NULL); /* the reply happened while we still run */
        return;
    }
    pthread_mutex_lock(&o->mu);
    VK_ASSERT(o->n < MAXW);
    o->waiting[o->n++] = req;
    VK_ASSERT(vk_http_suspend(req, o->timeout_ms, on_timeout, on_close, o) == 0);
    atomic_fetch_add(&o->parked, 1);
    pthread_cond_broadcast(&o->cv);
    pthread_mutex_unlock(&o->mu);
}

struct fixture {
    struct vk_http_server *srv;
    struct owner o;
};

static struct fixture *fx_new(void)
{
    struct fixture *f = calloc(1, sizeof(*f));
    pthread_mutex_init(&f->o.mu, NULL);
    pthread_cond_init(&f->o.cv, NULL);
    f->srv = test_server_new(NULL);
    struct vk_err err;
    assert_int_equal(vk_http_route(f->srv, "GET", "/wait/{i}", h_wait, &f->o, NULL, &err), 0);
    test_server_start(f->srv);
    return f;
}

static void fx_free(struct fixture *f)
{
    vk_http_server_free(f->srv);
    pthread_mutex_destroy(&f->o.mu);
    pthread_cond_destroy(&f->o.cv);
    free(f);
}

/* Wait until `n` requests are parked in the owner's list (10 s at most: 500 connections
 * under ThreadSanitizer, next to a PostgreSQL cluster starting, took more than 2 s). */
static void wait_parked(struct owner *o, size_t n)
{
    pthread_mutex_lock(&o->mu);
    for (int i = 0; o->n < n && i < 5000; i++) {
        pthread_mutex_unlock(&o->mu);
        usleep(2000);
        pthread_mutex_lock(&o->mu);
    }
    size_t have = o->n;
    pthread_mutex_unlock(&o->mu);
    assert_int_equal(have, n);
}

/* Reply to every waiting request with {"error":"i<index>"} (status 200). */
static size_t complete_all(struct owner *o)
{
    size_t done = 0;
    pthread_mutex_lock(&o->mu);
    while (o->n > 0) {
        struct vk_http_req *req = o->waiting[--o->n];
        char code[32];
        snprintf(code, sizeof(code), "i%s", vk_http_param(req, "i"));
        if (vk_http_reply_error(req, 200, code, "done") == 0)
            done++;
    }
    pthread_mutex_unlock(&o->mu);
    return done;
}

static void *completer(void *arg)
{
    struct owner *o = arg;
    usleep(50000);
    complete_all(o);
    return NULL;
}

static void test_reply_from_other_thread(void **state)
{
    (void)state;
    struct fixture *f = fx_new();
    struct vk_http_client *cl = test_client(f->srv, 5000);
    pthread_t t;
    pthread_create(&t, NULL, completer, &f->o);
    char *body = NULL;
    int64_t t0 = vk_time_mono_ns();
    assert_int_equal(test_call(cl, "GET", "/wait/7", NULL, &body), 200);
    assert_true(vk_time_mono_ns() - t0 >= 40 * 1000000LL);
    assert_non_null(strstr(body, "\"i7\""));
    free(body);
    pthread_join(t, NULL);
    /* Keep-alive connection still usable after a suspended request. */
    pthread_create(&t, NULL, completer, &f->o);
    assert_int_equal(test_call(cl, "GET", "/wait/8", NULL, NULL), 200);
    pthread_join(t, NULL);
    assert_int_equal(atomic_load(&f->o.timeouts), 0);
    vk_http_client_free(cl);
    fx_free(f);
}

static void test_reply_before_handler_returns(void **state)
{
    (void)state;
    struct fixture *f = fx_new();
    f->o.reply_in_handler = true;
    f->o.timeout_ms = 5000;
    struct vk_http_client *cl = test_client(f->srv, 5000);
    char *body = NULL;
    assert_int_equal(test_call(cl, "GET", "/wait/1", NULL, &body), 201);
    assert_non_null(strstr(body, "early"));
    free(body);
    assert_int_equal(atomic_load(&f->o.timeouts), 0);
    vk_http_client_free(cl);
    fx_free(f);
}

static void test_timeout(void **state)
{
    (void)state;
    struct fixture *f = fx_new();
    f->o.timeout_ms = 150;
    struct vk_http_client *cl = test_client(f->srv, 5000);
    int64_t t0 = vk_time_mono_ns();
    assert_int_equal(test_call(cl, "GET", "/wait/1", NULL, NULL), 204);
    int64_t ms = (vk_time_mono_ns() - t0) / 1000000;
    assert_true(ms >= 140 && ms < 2000);
    assert_int_equal(atomic_load(&f->o.timeouts), 1);

    f->o.timeout_replies = true;
    char *body = NULL;
    assert_int_equal(test_call(cl, "GET", "/wait/2", NULL, &body), 299);
    assert_non_null(strstr(body, "timeout_reply"));
    free(body);
    assert_int_equal(atomic_load(&f->o.timeouts), 2);
    assert_int_equal(atomic_load(&f->o.closes), 0);
    vk_http_client_free(cl);
    fx_free(f);
}

static int closes_ge1(void *arg)
{
    return atomic_load(&((struct owner *)arg)->closes) >= 1;
}

static void test_client_disconnect(void **state)
{
    (void)state;
    struct fixture *f = fx_new();
    f->o.timeout_ms = 0; /* no deadline: only the disconnect ends it */
    struct vk_http_client *cl = test_client(f->srv, 200);
    struct vk_http_response resp;
    struct vk_err err;
    assert_int_equal(
        vk_http_client_request(cl, "GET", "/wait/1?keep=1", NULL, NULL, 0, 200, &resp, &err),
        VK_ETIMEDOUT);
    assert_true(test_wait_for(closes_ge1, &f->o, 3000));
    pthread_mutex_lock(&f->o.mu);
    assert_int_equal(f->o.n, 0);
    pthread_mutex_unlock(&f->o.mu);
    /* With a reference the pointer stays valid; a late reply is refused. */
    assert_non_null(f->o.kept);
    assert_string_equal(vk_http_param(f->o.kept, "i"), "1");
    assert_int_equal(vk_http_reply_empty(f->o.kept, 200), VK_ECONFLICT);
    vk_http_req_unref(f->o.kept);
    f->o.kept = NULL;

    /* Raw socket: send a request then close at once. */
    int fd = test_connect(f->srv);
    const char *rq = "GET /wait/2 HTTP/1.1\r\nHost: x\r\n\r\n";
    test_send(fd, rq, strlen(rq));
    wait_parked(&f->o, 1);
    close(fd);
    for (int i = 0; i < 3000 && atomic_load(&f->o.closes) < 2; i++)
        usleep(1000);
    assert_int_equal(atomic_load(&f->o.closes), 2);
    assert_int_equal(atomic_load(&f->o.timeouts), 0);

    /* The server is fine afterwards. */
    vk_http_client_free(cl);
    cl = test_client(f->srv, 5000);
    pthread_t t;
    pthread_create(&t, NULL, completer, &f->o);
    assert_int_equal(test_call(cl, "GET", "/wait/3", NULL, NULL), 200);
    pthread_join(t, NULL);
    vk_http_client_free(cl);
    fx_free(f);
}

static void test_many_concurrent(void **state)
{
    (void)state;
    enum { N = 500 };
    struct fixture *f = fx_new();
    f->o.timeout_ms = 30000;
    struct multi_run *r = multi_start(vk_http_server_port(f->srv), N, "/wait/%d", 20000, 0);
    wait_parked(&f->o, N);
    pthread_t t;
    pthread_create(&t, NULL, completer, &f->o);
    pthread_join(t, NULL);
    multi_join(r);
    for (size_t i = 0; i < N; i++) {
        char want[32];
        snprintf(want, sizeof(want), "\"i%zu\"", i);
        if (r->items[i].status != 200 || !strstr(r->items[i].body, want))
            fail_msg("request %zu: status %ld code %d body '%s'", i, r->items[i].status,
                     r->items[i].code, r->items[i].body);
    }
    multi_free(r);
    assert_int_equal(atomic_load(&f->o.timeouts), 0);
    fx_free(f);
}

/* Replies, deadlines and disconnects racing each other: every request ends
 * exactly once, nothing leaks or crashes (run under ASan). */
static void *racer(void *arg)
{
    struct owner *o = arg;
    for (int round = 0; round < 200; round++) {
        pthread_mutex_lock(&o->mu);
        if (o->n > 0) {
            struct vk_http_req *req = o->waiting[--o->n];
            /* VK_ECONFLICT: the client left and on_close waits for our lock;
             * the pointer is still valid until on_close returns. */
            int rc = vk_http_reply_empty(req, 200);
            VK_ASSERT(rc == 0 || rc == VK_ECONFLICT);
            if (rc == VK_ECONFLICT)
                atomic_fetch_add(&o->conflicts, 1);
        }
        pthread_mutex_unlock(&o->mu);
        usleep(300);
    }
    complete_all(o);
    return NULL;
}

static void test_race_reply_timeout_disconnect(void **state)
{
    (void)state;
    enum { N = 300 };
    struct fixture *f = fx_new();
    f->o.timeout_ms = 40; /* deadlines fire while the racer replies */
    /* Client timeouts around the deadline: some clients leave first. */
    struct multi_run *r = multi_start(vk_http_server_port(f->srv), N, "/wait/%d", 30, 80);
    pthread_t t;
    pthread_create(&t, NULL, racer, &f->o);
    multi_join(r);
    pthread_join(t, NULL);
    size_t ok = 0, timed = 0, gone = 0;
    for (size_t i = 0; i < N; i++) {
        if (r->items[i].status == 200)
            ok++;
        else if (r->items[i].status == 204)
            timed++;
        else
            gone++;
    }
    print_message("race: %zu replied, %zu timed out, %zu client gone (server: %d timeouts, %d "
                  "closes, %d replies refused after a disconnect)\n",
                  ok, timed, gone, atomic_load(&f->o.timeouts), atomic_load(&f->o.closes),
                  atomic_load(&f->o.conflicts));
    assert_int_equal(ok + timed + gone, N);
    multi_free(r);
    /* Parked requests left by clients that never connected fully end by themselves. */
    fx_free(f);
}

static void test_graceful_stop(void **state)
{
    (void)state;
    enum { N = 20 };
    struct fixture *f = fx_new();
    f->o.timeout_ms = 60000;
    struct multi_run *r = multi_start(vk_http_server_port(f->srv), N, "/wait/%d", 20000, 0);
    wait_parked(&f->o, N);
    f->o.timeout_replies = true; /* half answer from on_timeout ... */
    int64_t t0 = vk_time_mono_ns();
    vk_http_server_stop(f->srv);
    int64_t ms = (vk_time_mono_ns() - t0) / 1000000;
    multi_join(r);
    assert_true(ms < 2000 * VK_TEST_SLOWDOWN);
    for (size_t i = 0; i < N; i++)
        assert_int_equal(r->items[i].status, 299);
    assert_int_equal(atomic_load(&f->o.timeouts), N);
    multi_free(r);
    vk_http_server_stop(f->srv); /* idempotent */

    /* ... and without a callback reply the server answers 503. */
    fx_free(f);
    f = fx_new();
    f->o.timeout_ms = 0;
    r = multi_start(vk_http_server_port(f->srv), 5, "/wait/%d", 20000, 0);
    wait_parked(&f->o, 5);
    vk_http_server_stop(f->srv);
    multi_join(r);
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(r->items[i].status, 503);
        assert_non_null(strstr(r->items[i].body, "unavailable"));
    }
    multi_free(r);
    fx_free(f);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reply_from_other_thread),
        cmocka_unit_test(test_reply_before_handler_returns),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_client_disconnect),
        cmocka_unit_test(test_many_concurrent),
        cmocka_unit_test(test_race_reply_timeout_disconnect),
        cmocka_unit_test(test_graceful_stop),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
