/* The libcurl client: errors (refused, timeout, too big, bad input), methods. */
#include "http_test.h"

#include <stdlib.h>

static void h_big(struct vk_http_req *req, void *ctx)
{
    (void)ctx;
    char buf[100];
    memset(buf, 'b', sizeof(buf));
    vk_http_reply(req, 200, "text/plain", buf, sizeof(buf));
}

static void h_method(struct vk_http_req *req, void *ctx)
{
    (void)ctx;
    size_t len;
    const char *body = vk_http_body(req, &len);
    vk_http_reply_error(req, 200, vk_http_method(req), "%zu:%s", len, body);
}

static void h_hang(struct vk_http_req *req, void *ctx)
{
    (void)ctx;
    VK_ASSERT(vk_http_suspend(req, 1000, NULL, NULL, NULL) == 0);
}

static unsigned free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    socklen_t sl = sizeof(sa);
    getsockname(fd, (struct sockaddr *)&sa, &sl);
    close(fd); /* nobody listens there now */
    return ntohs(sa.sin_port);
}

static void test_connection_refused(void **state)
{
    (void)state;
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u", free_port());
    struct vk_http_client_opts o = {.base_url = url};
    struct vk_http_client *cl = NULL;
    struct vk_err err;
    assert_int_equal(vk_http_client_new(&o, &cl, &err), 0);
    struct vk_http_response resp;
    assert_int_equal(vk_http_client_request(cl, "GET", "/health", NULL, NULL, 0, 0, &resp, &err),
                     VK_EIO);
    assert_non_null(strstr(err.msg, url));
    assert_non_null(strstr(err.msg, "/health"));
    json_t *answer = (json_t *)1;
    long status = -1;
    assert_int_equal(vk_http_client_json(cl, "GET", "/health", NULL, 0, &status, &answer, &err),
                     VK_EIO);
    assert_null(answer);
    vk_http_client_free(cl);
}

static void test_bad_input(void **state)
{
    (void)state;
    struct vk_http_client *cl = NULL;
    struct vk_err err;
    struct vk_http_client_opts o = {.base_url = NULL};
    assert_int_equal(vk_http_client_new(&o, &cl, &err), VK_EINVAL);
    o.base_url = "ftp://x";
    assert_int_equal(vk_http_client_new(&o, &cl, &err), VK_EINVAL);
    o.base_url = "http://127.0.0.1:1/";
    assert_int_equal(vk_http_client_new(&o, &cl, &err), 0);
    struct vk_http_response resp;
    assert_int_equal(vk_http_client_request(cl, "GET", "nope", NULL, NULL, 0, 0, &resp, &err),
                     VK_EINVAL);
    assert_int_equal(vk_http_client_request(cl, "GET", "/a b", NULL, NULL, 0, 0, &resp, &err),
                     VK_EINVAL);
    assert_int_equal(vk_http_client_request(cl, "GET", "/a\r\nX: y", NULL, NULL, 0, 0, &resp, &err),
                     VK_EINVAL);
    assert_int_equal(vk_http_client_set_header(cl, "Bad Name", "v"), VK_EINVAL);
    assert_int_equal(vk_http_client_set_header(cl, "", "v"), VK_EINVAL);
    vk_http_client_free(cl);
    vk_http_client_free(NULL);
}

static void test_against_server(void **state)
{
    (void)state;
    struct vk_http_server *srv = test_server_new(NULL);
    struct vk_err err;
    assert_int_equal(vk_http_route(srv, "GET", "/big", h_big, NULL, NULL, &err), 0);
    assert_int_equal(vk_http_route(srv, "GET", "/hang", h_hang, NULL, NULL, &err), 0);
    const char *methods[] = {"POST", "PUT", "PATCH", "DELETE"};
    for (size_t i = 0; i < VK_ARRAY_LEN(methods); i++)
        assert_int_equal(vk_http_route(srv, methods[i], "/m", h_method, NULL, NULL, &err), 0);
    test_server_start(srv);

    /* Response cap. */
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u", vk_http_server_port(srv));
    struct vk_http_client_opts o = {.base_url = url, .max_response = 10};
    struct vk_http_client *small = NULL;
    assert_int_equal(vk_http_client_new(&o, &small, &err), 0);
    struct vk_http_response resp;
    assert_int_equal(vk_http_client_request(small, "GET", "/big", NULL, NULL, 0, 0, &resp, &err),
                     VK_ETOOBIG);
    vk_http_client_free(small);

    /* Timeout. */
    struct vk_http_client *cl = test_client(srv, 5000);
    int64_t t0 = vk_time_mono_ns();
    assert_int_equal(vk_http_client_request(cl, "GET", "/hang", NULL, NULL, 0, 150, &resp, &err),
                     VK_ETIMEDOUT);
    int64_t ms = (vk_time_mono_ns() - t0) / 1000000;
    assert_true(ms >= 140 && ms < 900 * VK_TEST_SLOWDOWN);
    assert_non_null(strstr(err.msg, "timed out"));

    /* Methods with bodies; the same client (and connection) is reused. */
    for (size_t i = 0; i < VK_ARRAY_LEN(methods); i++) {
        assert_int_equal(
            vk_http_client_request(cl, methods[i], "/m", "text/plain", "abc", 3, 0, &resp, &err),
            0);
        assert_int_equal(resp.status, 200);
        char want[64];
        snprintf(want, sizeof(want), "{\"error\":\"%s\",\"message\":\"3:abc\"}", methods[i]);
        assert_string_equal(resp.body.data, want);
        vk_http_response_release(&resp);
    }
    /* Empty POST body. */
    assert_int_equal(vk_http_client_request(cl, "POST", "/m", NULL, NULL, 0, 0, &resp, &err), 0);
    assert_string_equal(resp.body.data, "{\"error\":\"POST\",\"message\":\"0:\"}");
    vk_http_response_release(&resp);
    vk_http_client_free(cl);
    vk_http_server_free(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connection_refused),
        cmocka_unit_test(test_bad_input),
        cmocka_unit_test(test_against_server),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
