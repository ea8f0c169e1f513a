/* Server routing, parameters, JSON bodies, limits and errors, over real HTTP. */
#include "http_test.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>

static void h_echo(struct vk_http_req *req, void *ctx)
{
    (void)ctx;
    json_t *o = json_object();
    json_object_set_new(o, "method", json_string(vk_http_method(req)));
    json_object_set_new(o, "pattern", json_string(vk_http_route_pattern(req)));
    const char *id = vk_http_param(req, "id");
    if (id)
        json_object_set_new(o, "id", json_string(id));
    const char *rest = vk_http_param(req, "*");
    if (rest)
        json_object_set_new(o, "rest", json_string(rest));
    const char *att = vk_http_query(req, "attempt");
    if (att)
        json_object_set_new(o, "attempt", json_string(att));
    const char *q = vk_http_query(req, "q");
    if (q)
        json_object_set_new(o, "q", json_string(q));
    const char *flag = vk_http_query(req, "flag");
    if (flag)
        json_object_set_new(o, "flag", json_string(flag));
    const char *tp = vk_http_traceparent(req);
    if (tp)
        json_object_set_new(o, "traceparent", json_string(tp));
    const char *xh = vk_http_header(req, "x-test-header");
    if (xh)
        json_object_set_new(o, "x", json_string(xh));
    size_t len;
    vk_http_body(req, &len);
    json_object_set_new(o, "body_len", json_integer((json_int_t)len));
    json_object_set_new(o, "remote", json_string(vk_http_remote_addr(req)));
    json_t *j = vk_http_json(req);
    if (j)
        json_object_set(o, "json", j);
    char *p = vk_pool_strndup(vk_http_pool(req), "pool", 4);
    /* Handler threads use VK_ASSERT: cmocka's asserts only work on the test thread. */
    VK_ASSERT(p != NULL);
    VK_ASSERT(vk_http_set_header(req, "X-Reply", p) == 0);
    VK_ASSERT(vk_http_reply_json(req, 200, o) == 0);
    /* A second reply is refused. */
    VK_ASSERT(vk_http_reply_empty(req, 204) == VK_ECONFLICT);
}

static void h_error(struct vk_http_req *req, void *ctx)
{
    (void)ctx;
    vk_http_reply_error(req, 409, "stale_attempt", "attempt %d is stale", 3);
}

static void h_raw(struct vk_http_req *req, void *ctx)
{
    (void)ctx;
    vk_http_reply(req, 200, "text/plain", "hello\0world", 11);
}

static void h_empty(struct vk_http_req *req, void *ctx)
{
    (void)ctx;
    vk_http_reply_empty(req, 204);
}

static void h_noreply(struct vk_http_req *req, void *ctx)
{
    (void)req;
    (void)ctx;
}

struct fixture {
    struct vk_http_server *srv;
    struct vk_http_client *cl;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    f->srv = test_server_new(NULL);
    struct vk_err err;
    struct vk_http_route_opts json = {.json = true, .max_body = 4096};
    struct vk_http_route_opts small = {.max_body = 100};
    assert_int_equal(vk_http_route(f->srv, "GET", "/api/v1/chains/{id}", h_echo, NULL, NULL, &err),
                     0);
    assert_int_equal(
        vk_http_route(f->srv, "POST", "/api/v1/chains/{id}/cancel", h_echo, NULL, NULL, &err), 0);
    assert_int_equal(vk_http_route(f->srv, "GET", "/api/v1/chains", h_echo, NULL, NULL, &err), 0);
    assert_int_equal(vk_http_route(f->srv, "POST", "/api/v1/chains", h_echo, NULL, &json, &err), 0);
    assert_int_equal(
        vk_http_route(f->srv, "POST", "/api/v1/work/{id}/log", h_echo, NULL, &small, &err), 0);
    assert_int_equal(
        vk_http_route(f->srv, "GET", "/api/v1/chains/special", h_echo, NULL, NULL, &err), 0);
    assert_int_equal(vk_http_route(f->srv, "POST", "/hooks/*", h_echo, NULL, NULL, &err), 0);
    assert_int_equal(vk_http_route(f->srv, "GET", "/*", h_echo, NULL, NULL, &err), 0);
    assert_int_equal(vk_http_route(f->srv, "GET", "/err", h_error, NULL, NULL, &err), 0);
    assert_int_equal(vk_http_route(f->srv, "GET", "/raw", h_raw, NULL, NULL, &err), 0);
    assert_int_equal(vk_http_route(f->srv, "DELETE", "/raw", h_empty, NULL, NULL, &err), 0);
    assert_int_equal(vk_http_route(f->srv, "GET", "/noreply", h_noreply, NULL, NULL, &err), 0);
    test_server_start(f->srv);
    f->cl = test_client(f->srv, 5000);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    vk_http_client_free(f->cl);
    vk_http_server_free(f->srv);
    free(f);
    return 0;
}

static json_t *call_json(struct fixture *f, const char *method, const char *path, const char *body,
                         long *status)
{
    char *text = NULL;
    *status = test_call(f->cl, method, path, body, &text);
    json_error_t je;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &je);
    if (!j)
        fail_msg("not JSON (%ld): '%s'", *status, text);
    free(text);
    return j;
}

static const char *sget(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static void test_params_and_query(void **state)
{
    struct fixture *f = *state;
    long st;
    json_t *j =
        call_json(f, "GET", "/api/v1/chains/abc%20d%2Fe?attempt=3&q=a+b%26c&flag", NULL, &st);
    assert_int_equal(st, 200);
    assert_string_equal(sget(j, "pattern"), "/api/v1/chains/{id}");
    assert_string_equal(sget(j, "id"), "abc d/e");
    assert_string_equal(sget(j, "attempt"), "3");
    assert_string_equal(sget(j, "q"), "a b&c");
    assert_string_equal(sget(j, "flag"), "");
    assert_string_equal(sget(j, "remote"), "127.0.0.1");
    json_decref(j);

    /* Literal beats parameter; a shorter literal route is distinct. */
    j = call_json(f, "GET", "/api/v1/chains/special", NULL, &st);
    assert_string_equal(sget(j, "pattern"), "/api/v1/chains/special");
    json_decref(j);
    j = call_json(f, "GET", "/api/v1/chains", NULL, &st);
    assert_string_equal(sget(j, "pattern"), "/api/v1/chains");
    json_decref(j);

    /* Prefix routes. */
    j = call_json(f, "POST", "/hooks/generic/42", "{}", &st);
    assert_int_equal(st, 200);
    assert_string_equal(sget(j, "pattern"), "/hooks/*");
    assert_string_equal(sget(j, "rest"), "generic/42");
    json_decref(j);
    j = call_json(f, "GET", "/index.html", NULL, &st);
    assert_string_equal(sget(j, "pattern"), "/*");
    assert_string_equal(sget(j, "rest"), "index.html");
    json_decref(j);
    j = call_json(f, "GET", "/", NULL, &st);
    assert_string_equal(sget(j, "pattern"), "/*");
    json_decref(j);
}

static void test_not_found_and_method(void **state)
{
    struct fixture *f = *state;
    long st;
    json_t *j = call_json(f, "POST", "/nope", "{}", &st);
    assert_int_equal(st, 404);
    assert_string_equal(sget(j, "error"), "not_found");
    assert_non_null(strstr(sget(j, "message"), "/nope"));
    json_decref(j);

    /* Known path, wrong method: 405 with Allow. */
    struct vk_http_response resp;
    struct vk_err err;
    assert_int_equal(
        vk_http_client_request(f->cl, "PUT", "/api/v1/chains", NULL, "x", 1, 0, &resp, &err), 0);
    assert_int_equal(resp.status, 405);
    assert_string_equal(resp.content_type, "application/json");
    assert_non_null(strstr(resp.body.data, "method_not_allowed"));
    vk_http_response_release(&resp);

    int fd = test_connect(f->srv);
    const char *rq = "PATCH /raw HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n";
    test_send(fd, rq, strlen(rq));
    const char *ans = test_read_all(fd, 500);
    assert_non_null(strstr(ans, "405"));
    assert_non_null(strstr(ans, "Allow: GET, HEAD, DELETE"));
    close(fd);

    /* Bad escapes in a path parameter. */
    j = call_json(f, "GET", "/api/v1/chains/a%zz", NULL, &st);
    assert_int_equal(st, 400);
    json_decref(j);
    j = call_json(f, "GET", "/api/v1/chains/a%00b", NULL, &st);
    assert_int_equal(st, 400);
    json_decref(j);
}

static void test_json_bodies(void **state)
{
    struct fixture *f = *state;
    long st;
    json_t *j = call_json(f, "POST", "/api/v1/chains", "{\"content\":\"x\",\"n\":[1,2]}", &st);
    assert_int_equal(st, 200);
    assert_int_equal(
        json_integer_value(json_array_get(json_object_get(json_object_get(j, "json"), "n"), 1)), 2);
    json_decref(j);

    j = call_json(f, "POST", "/api/v1/chains", "{\"content\":", &st);
    assert_int_equal(st, 400);
    assert_string_equal(sget(j, "error"), "bad_request");
    assert_true(strncmp(sget(j, "message"), "invalid JSON: ", 14) == 0);
    json_decref(j);

    /* No body and no Content-Type; a JSON body sent as text/plain, as a cross-site form
     * can (issue 13): 415, the handler is not called. */
    j = call_json(f, "POST", "/api/v1/chains", NULL, &st);
    assert_int_equal(st, 415);
    json_decref(j);
    struct vk_http_response r;
    struct vk_err e0;
    assert_int_equal(vk_http_client_request(f->cl, "POST", "/api/v1/chains", "text/plain",
                                            "{\"content\":\"x\"}", 15, 0, &r, &e0),
                     0);
    assert_int_equal(r.status, 415);
    vk_http_response_release(&r);
    assert_int_equal(vk_http_client_request(f->cl, "POST", "/api/v1/chains",
                                            "application/vnd.vulcan+json; charset=utf-8",
                                            "{\"content\":\"x\"}", 15, 0, &r, &e0),
                     0);
    assert_int_equal(r.status, 200);
    vk_http_response_release(&r);

    /* The helper: round trip through the client's JSON call. */
    json_t *in = json_pack("{s:s}", "content", "y");
    json_t *answer = NULL;
    struct vk_err err;
    assert_int_equal(
        vk_http_client_json(f->cl, "POST", "/api/v1/chains", in, 0, &st, &answer, &err), 0);
    assert_int_equal(st, 200);
    assert_string_equal(sget(json_object_get(answer, "json"), "content"), "y");
    json_decref(answer);
    json_decref(in);

    /* Error helper. */
    assert_int_equal(vk_http_client_json(f->cl, "GET", "/err", NULL, 0, &st, &answer, &err), 0);
    assert_int_equal(st, 409);
    assert_string_equal(sget(answer, "error"), "stale_attempt");
    assert_string_equal(sget(answer, "message"), "attempt 3 is stale");
    json_decref(answer);

    /* Empty answer: NULL. */
    assert_int_equal(vk_http_client_json(f->cl, "DELETE", "/raw", NULL, 0, &st, &answer, &err), 0);
    assert_int_equal(st, 204);
    assert_null(answer);

    /* Non-JSON answer: VK_EPARSE. */
    assert_int_equal(vk_http_client_json(f->cl, "GET", "/raw", NULL, 0, &st, &answer, &err),
                     VK_EPARSE);
    assert_null(answer);
}

static void test_raw_reply_and_headers(void **state)
{
    struct fixture *f = *state;
    struct vk_http_response resp;
    struct vk_err err;
    assert_int_equal(vk_http_client_request(f->cl, "GET", "/raw", NULL, NULL, 0, 0, &resp, &err),
                     0);
    assert_int_equal(resp.status, 200);
    assert_string_equal(resp.content_type, "text/plain");
    assert_int_equal(resp.body.len, 11);
    assert_memory_equal(resp.body.data, "hello\0world", 11);
    vk_http_response_release(&resp);

    assert_int_equal(
        vk_http_client_set_header(f->cl, "traceparent",
                                  "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
        0);
    assert_int_equal(vk_http_client_set_header(f->cl, "X-Test-Header", "v1"), 0);
    assert_int_equal(vk_http_client_set_header(f->cl, "X-Bad", "a\r\nb"), VK_EINVAL);
    long st;
    json_t *j = call_json(f, "GET", "/api/v1/chains/1", NULL, &st);
    assert_string_equal(sget(j, "traceparent"),
                        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    assert_string_equal(sget(j, "x"), "v1");
    json_decref(j);
    assert_int_equal(vk_http_client_set_header(f->cl, "X-Test-Header", NULL), 0);
    assert_int_equal(vk_http_client_set_header(f->cl, "traceparent", NULL), 0);
    j = call_json(f, "GET", "/api/v1/chains/1", NULL, &st);
    assert_null(json_object_get(j, "x"));
    json_decref(j);

    /* The reply header set by the handler arrives. */
    int fd = test_connect(f->srv);
    const char *rq = "GET /api/v1/chains/7 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    test_send(fd, rq, strlen(rq));
    const char *ans = test_read_all(fd, 1000);
    assert_non_null(strstr(ans, "X-Reply: pool"));
    close(fd);

    /* HEAD is answered by GET routes, without a body. */
    assert_int_equal(vk_http_client_request(f->cl, "HEAD", "/raw", NULL, NULL, 0, 0, &resp, &err),
                     0);
    assert_int_equal(resp.status, 200);
    assert_int_equal(resp.body.len, 0);
    vk_http_response_release(&resp);

    /* A handler that forgets to reply yields 500. */
    char *body = NULL;
    assert_int_equal(test_call(f->cl, "GET", "/noreply", NULL, &body), 500);
    assert_non_null(strstr(body, "internal"));
    free(body);
}

static void test_body_limit_content_length(void **state)
{
    struct fixture *f = *state;
    char big[101];
    memset(big, 'x', sizeof(big));
    struct vk_http_response resp;
    struct vk_err err;
    assert_int_equal(vk_http_client_request(f->cl, "POST", "/api/v1/work/1/log?attempt=1",
                                            "application/octet-stream", big, 100, 0, &resp, &err),
                     0);
    assert_int_equal(resp.status, 200);
    vk_http_response_release(&resp);
    assert_int_equal(vk_http_client_request(f->cl, "POST", "/api/v1/work/1/log?attempt=1",
                                            "application/octet-stream", big, 101, 0, &resp, &err),
                     0);
    assert_int_equal(resp.status, 413);
    assert_non_null(strstr(resp.body.data, "payload_too_large"));
    vk_http_response_release(&resp);

    /* A huge announced body is refused before it is sent. */
    int fd = test_connect(f->srv);
    const char *rq = "POST /api/v1/work/1/log HTTP/1.1\r\nHost: x\r\n"
                     "Content-Length: 99999999999\r\n\r\nxxxx";
    test_send(fd, rq, strlen(rq));
    const char *ans = test_read_all(fd, 1000);
    assert_true(strncmp(ans, "HTTP/1.1 413", 12) == 0);
    close(fd);

    /* The client still works on the same server afterwards. */
    assert_int_equal(test_call(f->cl, "GET", "/raw", NULL, NULL), 200);
}

static void test_body_limit_chunked(void **state)
{
    struct fixture *f = *state;
    int fd = test_connect(f->srv);
    const char *hd = "POST /api/v1/work/1/log HTTP/1.1\r\nHost: x\r\n"
                     "Transfer-Encoding: chunked\r\n\r\n";
    test_send(fd, hd, strlen(hd));
    /* 60 + 60 bytes: past the 100-byte cap on the second chunk. */
    char chunk[80];
    snprintf(chunk, sizeof(chunk), "3c\r\n%060d\r\n", 0);
    test_send(fd, chunk, strlen(chunk));
    usleep(50000);
    test_send(fd, chunk, strlen(chunk));
    const char *ans = test_read_all(fd, 1000);
    assert_true(strncmp(ans, "HTTP/1.1 413", 12) == 0);
    assert_non_null(strstr(ans, "payload_too_large"));
    close(fd);

    /* A small chunked body is accepted. */
    fd = test_connect(f->srv);
    test_send(fd, hd, strlen(hd));
    test_send(fd, chunk, strlen(chunk));
    const char *end = "0\r\n\r\n";
    test_send(fd, end, strlen(end));
    ans = test_read_all(fd, 300);
    assert_true(strncmp(ans, "HTTP/1.1 200", 12) == 0);
    assert_non_null(strstr(ans, "\"body_len\":60"));
    close(fd);
}

static void test_route_registration(void **state)
{
    struct fixture *f = *state;
    struct vk_err err;
    assert_int_equal(vk_http_route_count(f->srv), 12);
    const char *m, *p;
    assert_int_equal(vk_http_route_at(f->srv, 0, &m, &p), 0);
    assert_string_equal(m, "GET");
    assert_string_equal(p, "/api/v1/chains/{id}");
    assert_int_equal(vk_http_route_at(f->srv, 7, &m, &p), 0);
    assert_string_equal(p, "/*");
    assert_int_equal(vk_http_route_at(f->srv, 12, &m, &p), VK_ENOTFOUND);
    /* After start: refused. */
    assert_int_equal(vk_http_route(f->srv, "GET", "/late", h_raw, NULL, NULL, &err), VK_EINVAL);

    struct vk_http_server *s = test_server_new(NULL);
    assert_int_equal(vk_http_route(s, "GET", "/a/{x}", h_raw, NULL, NULL, &err), 0);
    assert_int_equal(vk_http_route(s, "GET", "/a/{x}", h_raw, NULL, NULL, &err), VK_EEXIST);
    assert_int_equal(vk_http_route(s, "GET", "a", h_raw, NULL, NULL, &err), VK_EINVAL);
    assert_int_equal(vk_http_route(s, "GET", "/a//b", h_raw, NULL, NULL, &err), VK_EINVAL);
    assert_int_equal(vk_http_route(s, "GET", "/*/b", h_raw, NULL, NULL, &err), VK_EINVAL);
    assert_int_equal(vk_http_route(s, "GET", "/{a-b}", h_raw, NULL, NULL, &err), VK_EINVAL);
    assert_int_equal(vk_http_route(s, "GET", "/{a}/{a}", h_raw, NULL, NULL, &err), VK_EINVAL);
    assert_int_equal(vk_http_route(s, "get", "/x", h_raw, NULL, NULL, &err), VK_EINVAL);
    struct vk_http_route_opts huge = {.max_body = VK_HTTP_HARD_MAX_BODY + 1};
    assert_int_equal(vk_http_route(s, "GET", "/x", h_raw, NULL, &huge, &err), VK_EINVAL);
    vk_http_server_free(s); /* never started */
}

/* ---- Request deadline, per-address limit, pulled bodies (issue 14 items 3, 5). */

static int connect_port(struct vk_http_server *srv)
{
    int fd = test_connect(srv);
    struct timeval tv = {.tv_sec = 0, .tv_usec = 200000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    return fd;
}

static struct vk_http_server *limited_server(unsigned per_address, unsigned timeout_s)
{
    struct vk_http_server_opts o = {
        .listen = "127.0.0.1:0", .per_addr_limit = per_address, .req_timeout_s = timeout_s};
    struct vk_http_server *srv = NULL;
    struct vk_err err;
    assert_int_equal(vk_http_server_new(&o, &srv, &err), 0);
    assert_int_equal(vk_http_route(srv, "POST", "/echo", h_raw, NULL, NULL, &err), 0);
    test_server_start(srv);
    return srv;
}

/* A body sent a byte every 200 ms (never idle) is cut at the 1 s deadline with a 408. */
static void test_request_deadline(void **state)
{
    (void)state;
    struct vk_http_server *srv = limited_server(0, 1);
    int fd = connect_port(srv);
    const char *head = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n";
    assert_int_equal(send(fd, head, strlen(head), 0), (ssize_t)strlen(head));
    int64_t t0 = vk_time_mono_ns();
    char buf[512];
    size_t got = 0;
    for (int i = 0; i < 40; i++) {
        if (send(fd, "x", 1, MSG_NOSIGNAL) != 1)
            break;
        ssize_t n = recv(fd, buf + got, sizeof(buf) - 1 - got, 0);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
            break;
        if (n > 0)
            got += (size_t)n;
    }
    int64_t ms = (vk_time_mono_ns() - t0) / 1000000;
    buf[got] = '\0';
    close(fd);
    assert_non_null(strstr(buf, "HTTP/1.1 408 Request Timeout"));
    assert_non_null(strstr(buf, "request_timeout"));
    assert_true(ms >= 800 && ms < 3000);
    vk_http_server_free(srv);
}

/* The 4th connection from one address is answered 429 and closed; the first 3 are served. */
static void test_per_address_limit(void **state)
{
    (void)state;
    struct vk_http_server *srv = limited_server(3, 0);
    int fds[4];
    /* Three connections the server has surely counted (each answered a request and is
     * kept alive), then a fourth: refused before its request is read. Connecting all four
     * at once raced with the server's counting under a sanitizer's slowness. */
    const char *req = "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n";
    for (int i = 0; i < 3; i++) {
        char buf[256] = {0};
        fds[i] = connect_port(srv);
        assert_int_equal(send(fds[i], req, strlen(req), 0), (ssize_t)strlen(req));
        assert_true(recv(fds[i], buf, sizeof(buf) - 1, 0) > 0);
        assert_non_null(strstr(buf, "HTTP/1.1 200"));
    }
    fds[3] = connect_port(srv);
    const char *busy = test_read_all(fds[3], 2000);
    assert_non_null(strstr(busy, "HTTP/1.1 429 Too Many Requests"));
    assert_non_null(strstr(busy, "too many connections from your address"));
    /* The three still work. */
    for (int i = 0; i < 3; i++) {
        char buf[256] = {0};
        assert_int_equal(send(fds[i], req, strlen(req), 0), (ssize_t)strlen(req));
        assert_true(recv(fds[i], buf, sizeof(buf) - 1, 0) > 0);
        assert_non_null(strstr(buf, "HTTP/1.1 200"));
    }
    for (int i = 0; i < 4; i++)
        close(fds[i]);
    vk_http_server_free(srv);
}

struct pulled {
    atomic_int calls, freed;
    size_t max_seen;
};

static ssize_t pull_digits(void *ctx, uint64_t pos, char *buf, size_t max)
{
    struct pulled *p = ctx;
    atomic_fetch_add(&p->calls, 1);
    if (max > p->max_seen)
        p->max_seen = max;
    for (size_t i = 0; i < max; i++)
        buf[i] = (char)('0' + (pos + i) % 10);
    return (ssize_t)max;
}

static void pulled_free(void *ctx)
{
    struct pulled *p = ctx;
    atomic_fetch_add(&p->freed, 1);
}

static void h_pull(struct vk_http_req *req, void *ctx)
{
    (void)vk_http_reply_pull(req, 200, "text/plain", 1000000, 4096, pull_digits, ctx, pulled_free);
}

/* A pulled body arrives whole, block by block, and its context is freed once. */
static void test_pulled_body(void **state)
{
    (void)state;
    struct pulled p = {.calls = 0};
    struct vk_http_server *srv = test_server_new(NULL);
    struct vk_err err;
    assert_int_equal(vk_http_route(srv, "GET", "/pull", h_pull, &p, NULL, &err), 0);
    test_server_start(srv);
    struct vk_http_client *cl = test_client(srv, 10000);
    struct vk_http_response resp;
    assert_int_equal(vk_http_client_request(cl, "GET", "/pull", NULL, NULL, 0, 0, &resp, &err), 0);
    assert_int_equal(resp.status, 200);
    assert_int_equal(resp.body.len, 1000000);
    for (size_t i = 0; i < resp.body.len; i++)
        if (resp.body.data[i] != (char)('0' + i % 10))
            fail_msg("byte %zu is '%c'", i, resp.body.data[i]);
    vk_http_response_release(&resp);
    vk_http_client_free(cl);
    assert_true(p.max_seen <= 4096);
    assert_true(atomic_load(&p.calls) >= 1000000 / 4096);
    vk_http_server_free(srv);
    assert_int_equal(atomic_load(&p.freed), 1);
}

static void test_listen_addresses(void **state)
{
    (void)state;
    struct vk_err err;
    struct vk_http_server *s = test_server_new("[::1]:0");
    assert_int_equal(vk_http_route(s, "GET", "/raw", h_raw, NULL, NULL, &err), 0);
    test_server_start(s);
    char url[64];
    snprintf(url, sizeof(url), "http://[::1]:%u", vk_http_server_port(s));
    struct vk_http_client_opts o = {.base_url = url};
    struct vk_http_client *cl = NULL;
    assert_int_equal(vk_http_client_new(&o, &cl, &err), 0);
    assert_int_equal(test_call(cl, "GET", "/raw", NULL, NULL), 200);
    vk_http_client_free(cl);

    /* Port in use. */
    char busy[64];
    snprintf(busy, sizeof(busy), "[::1]:%u", vk_http_server_port(s));
    struct vk_http_server *s2 = test_server_new(busy);
    assert_int_equal(vk_http_server_start(s2, &err), VK_EIO);
    assert_non_null(strstr(err.msg, "cannot listen"));
    vk_http_server_free(s2);
    vk_http_server_free(s);

    struct vk_http_server_opts bad = {.listen = "nonsense"};
    assert_int_equal(vk_http_server_new(&bad, &s, &err), 0);
    assert_int_equal(vk_http_server_start(s, &err), VK_EINVAL);
    vk_http_server_free(s);
    bad.listen = "127.0.0.1:99999";
    assert_int_equal(vk_http_server_new(&bad, &s, &err), 0);
    assert_int_equal(vk_http_server_start(s, &err), VK_EINVAL);
    vk_http_server_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_params_and_query),
        cmocka_unit_test(test_not_found_and_method),
        cmocka_unit_test(test_json_bodies),
        cmocka_unit_test(test_raw_reply_and_headers),
        cmocka_unit_test(test_body_limit_content_length),
        cmocka_unit_test(test_body_limit_chunked),
        cmocka_unit_test(test_route_registration),
        cmocka_unit_test(test_listen_addresses),
        cmocka_unit_test(test_request_deadline),
        cmocka_unit_test(test_per_address_limit),
        cmocka_unit_test(test_pulled_body),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
