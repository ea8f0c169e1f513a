/* Streamed responses: chunks from another thread, backpressure, disconnect, stop. */
#include "http_test.h"

#include <stdatomic.h>
#include <stdlib.h>

struct owner {
    pthread_mutex_t mu;
    struct vk_http_stream *st;
    atomic_int closed_by_peer;
    atomic_int have_stream;
    int backpressure_rc[3];
};

static void st_on_close(struct vk_http_stream *st, void *ctx)
{
    struct owner *o = ctx;
    (void)st;
    atomic_fetch_add(&o->closed_by_peer, 1);
}

static void h_stream(struct vk_http_req *req, void *ctx)
{
    struct owner *o = ctx;
    struct vk_http_stream_opts so = {.max_queue = 64, .on_close = st_on_close, .ctx = o};
    struct vk_http_stream *st = NULL;
    VK_ASSERT(vk_http_reply_stream(req, 200, "text/event-stream", &so, &st) == 0);
    /* Backpressure is visible at once: nothing drains before we return. */
    o->backpressure_rc[0] = vk_http_stream_write(st, "data: hello\n\n", 13);
    char big[65];
    memset(big, 'x', sizeof(big));
    o->backpressure_rc[1] = vk_http_stream_write(st, big, 60);
    o->backpressure_rc[2] = vk_http_stream_write(st, big, 65);
    VK_ASSERT(vk_http_reply_empty(req, 200) == VK_ECONFLICT);
    pthread_mutex_lock(&o->mu);
    o->st = st;
    pthread_mutex_unlock(&o->mu);
    atomic_store(&o->have_stream, 1);
}

static int have_stream(void *arg)
{
    return atomic_load(&((struct owner *)arg)->have_stream);
}

static int peer_closed(void *arg)
{
    return atomic_load(&((struct owner *)arg)->closed_by_peer) > 0;
}

struct producer {
    struct owner *o;
    int chunks;
    int64_t first_written_ns, closed_ns;
    bool close_at_end;
};

static void *produce(void *arg)
{
    struct producer *p = arg;
    VK_ASSERT(test_wait_for(have_stream, p->o, 5000));
    for (int i = 0; i < p->chunks; i++) {
        char line[64];
        int n = snprintf(line, sizeof(line), "data: chunk %d\n\n", i);
        /* Bounded wait when the queue is full (it holds 64 bytes). */
        VK_ASSERT(vk_http_stream_write_wait(p->o->st, line, (size_t)n, 5000) == 0);
        if (i == 0)
            p->first_written_ns = vk_time_mono_ns();
        usleep(20000);
    }
    p->closed_ns = vk_time_mono_ns();
    if (p->close_at_end) {
        vk_http_stream_close(p->o->st);
        p->o->st = NULL;
    }
    return NULL;
}

struct sink {
    char data[4096];
    size_t len;
    int calls;
    int64_t first_ns;
    int stop_after; /* stop the transfer after this many calls (0: never) */
};

static int on_chunk(void *ctx, const char *data, size_t len)
{
    struct sink *s = ctx;
    if (s->calls++ == 0)
        s->first_ns = vk_time_mono_ns();
    if (s->len + len < sizeof(s->data)) {
        memcpy(s->data + s->len, data, len);
        s->len += len;
        s->data[s->len] = '\0';
    }
    if (s->stop_after && s->calls >= s->stop_after)
        return VK_EAGAIN; /* any VK code: stop */
    return 0;
}

struct fixture {
    struct vk_http_server *srv;
    struct owner o;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    pthread_mutex_init(&f->o.mu, NULL);
    f->srv = test_server_new(NULL);
    struct vk_err err;
    assert_int_equal(vk_http_route(f->srv, "GET", "/follow", h_stream, &f->o, NULL, &err), 0);
    test_server_start(f->srv);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    vk_http_server_free(f->srv);
    pthread_mutex_destroy(&f->o.mu);
    free(f);
    return 0;
}

static void reset(struct owner *o)
{
    atomic_store(&o->have_stream, 0);
    atomic_store(&o->closed_by_peer, 0);
    o->st = NULL;
}

static void test_stream_chunks(void **state)
{
    struct fixture *f = *state;
    reset(&f->o);
    struct producer p = {.o = &f->o, .chunks = 6, .close_at_end = true};
    pthread_t t;
    pthread_create(&t, NULL, produce, &p);
    struct vk_http_client *cl = test_client(f->srv, 5000);
    struct sink s = {0};
    long status = 0;
    struct vk_err err;
    assert_int_equal(vk_http_client_stream(cl, "/follow", 10000, on_chunk, &s, &status, &err), 0);
    pthread_join(t, NULL);
    assert_int_equal(status, 200);
    assert_int_equal(f->o.backpressure_rc[0], 0);
    assert_int_equal(f->o.backpressure_rc[1], VK_EAGAIN);
    assert_int_equal(f->o.backpressure_rc[2], VK_ETOOBIG);
    assert_string_equal(s.data, "data: hello\n\ndata: chunk 0\n\ndata: chunk 1\n\ndata: chunk 2\n\n"
                                "data: chunk 3\n\ndata: chunk 4\n\ndata: chunk 5\n\n");
    /* Data arrived as it was written, not at the end. */
    assert_true(s.calls >= 3);
    assert_true(s.first_ns < p.closed_ns);
    assert_int_equal(atomic_load(&f->o.closed_by_peer), 0);
    vk_http_client_free(cl);
}

static void test_stream_client_disconnect(void **state)
{
    struct fixture *f = *state;
    reset(&f->o);
    struct vk_http_client *cl = test_client(f->srv, 5000);
    struct sink s = {.stop_after = 1};
    struct vk_err err;
    /* The client reads "hello", then leaves while the stream is idle. */
    assert_int_equal(vk_http_client_stream(cl, "/follow", 10000, on_chunk, &s, NULL, &err),
                     VK_EAGAIN);
    vk_http_client_free(cl); /* closes the kept-alive connection */
    assert_true(test_wait_for(peer_closed, &f->o, 3000));
    assert_true(vk_http_stream_gone(f->o.st));
    assert_int_equal(vk_http_stream_write(f->o.st, "x", 1), VK_EIO);
    vk_http_stream_close(f->o.st);
    f->o.st = NULL;
}

static void *stopper(void *arg)
{
    struct fixture *f = arg;
    VK_ASSERT(test_wait_for(have_stream, &f->o, 5000));
    usleep(50000);
    vk_http_server_stop(f->srv);
    return NULL;
}

static void test_stream_server_stop(void **state)
{
    struct fixture *f = *state;
    reset(&f->o);
    pthread_t t;
    pthread_create(&t, NULL, stopper, f);
    struct vk_http_client *cl = test_client(f->srv, 5000);
    struct sink s = {0};
    long status = 0;
    struct vk_err err;
    assert_int_equal(vk_http_client_stream(cl, "/follow", 10000, on_chunk, &s, &status, &err), 0);
    pthread_join(t, NULL);
    assert_int_equal(status, 200);
    assert_string_equal(s.data, "data: hello\n\n");
    assert_int_equal(atomic_load(&f->o.closed_by_peer), 1);
    assert_int_equal(vk_http_stream_write(f->o.st, "x", 1), VK_EIO);
    vk_http_stream_close(f->o.st);
    f->o.st = NULL;
    vk_http_client_free(cl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stream_chunks), cmocka_unit_test(test_stream_client_disconnect),
        cmocka_unit_test(test_stream_server_stop), /* last: stops the server */
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
