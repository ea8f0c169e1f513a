/* The route table on its own: specificity, parameters, decoding, Allow. */
#include "http/http_int.h"
#include "vk_test.h"

#include <string.h>

static void h1(struct vk_http_req *req, void *ctx)
{
    (void)req;
    (void)ctx;
}

static const char *match(struct vk__http_router *r, const char *method, const char *path,
                         struct vk_pool *pool, const char *param, const char **value,
                         enum vk__http_match *m)
{
    const struct vk__http_route *rt;
    struct vk__http_kv *kv;
    size_t n;
    *m = vk__http_router_match(r, method, path, pool, &rt, &kv, &n, NULL);
    if (*m != VK__HTTP_MATCH_OK)
        return NULL;
    *value = NULL;
    for (size_t i = 0; param && i < n; i++)
        if (strcmp(kv[i].name, param) == 0)
            *value = kv[i].value;
    return rt->pattern;
}

static void test_specificity(void **state)
{
    (void)state;
    struct vk__http_router r;
    vk__http_router_init(&r);
    struct vk_err err;
    /* Registered least specific first on purpose. */
    const char *pats[] = {"/*",
                          "/api/v1/*",
                          "/api/v1/workers/{id}",
                          "/api/v1/workers/register",
                          "/api/v1/workers/{id}/busy",
                          "/"};
    for (size_t i = 0; i < VK_ARRAY_LEN(pats); i++)
        assert_int_equal(vk__http_router_add(&r, "GET", pats[i], h1, NULL, NULL, &err), 0);
    assert_int_equal(
        vk__http_router_add(&r, "POST", "/api/v1/workers/register", h1, NULL, NULL, &err), 0);
    struct vk_pool pool;
    vk_pool_init(&pool, 0);
    enum vk__http_match m;
    const char *v;
    assert_string_equal(match(&r, "GET", "/api/v1/workers/register", &pool, NULL, &v, &m),
                        "/api/v1/workers/register");
    assert_string_equal(match(&r, "GET", "/api/v1/workers/w1", &pool, "id", &v, &m),
                        "/api/v1/workers/{id}");
    assert_string_equal(v, "w1");
    assert_string_equal(match(&r, "GET", "/api/v1/workers/w%2F1/busy", &pool, "id", &v, &m),
                        "/api/v1/workers/{id}/busy");
    assert_string_equal(v, "w/1");
    assert_string_equal(match(&r, "GET", "/api/v1/chains/x", &pool, "*", &v, &m), "/api/v1/*");
    assert_string_equal(v, "chains/x");
    assert_string_equal(match(&r, "GET", "/api/v1/workers/w1/busy/x", &pool, "*", &v, &m),
                        "/api/v1/*");
    assert_string_equal(match(&r, "GET", "/", &pool, NULL, &v, &m), "/");
    assert_string_equal(match(&r, "HEAD", "/app.js", &pool, "*", &v, &m), "/*");
    assert_string_equal(v, "app.js");
    /* Empty segment never matches a parameter. */
    assert_string_equal(match(&r, "GET", "/api/v1/workers/", &pool, "*", &v, &m), "/api/v1/*");
    /* POST on the literal; PUT on a known path is BAD_METHOD with Allow. */
    assert_string_equal(match(&r, "POST", "/api/v1/workers/register", &pool, NULL, &v, &m),
                        "/api/v1/workers/register");
    struct vk_buf allow = VK_BUF_INIT(256);
    const struct vk__http_route *rt;
    struct vk__http_kv *kv;
    size_t n;
    assert_int_equal(
        vk__http_router_match(&r, "PUT", "/api/v1/workers/register", &pool, &rt, &kv, &n, &allow),
        VK__HTTP_MATCH_BAD_METHOD);
    assert_string_equal(allow.data, "GET, HEAD, POST");
    vk_buf_release(&allow);
    /* Only prefix routes match: 404, not 405. */
    assert_int_equal(vk__http_router_match(&r, "POST", "/x", &pool, &rt, &kv, &n, NULL),
                     VK__HTTP_MATCH_NOT_FOUND);
    assert_int_equal(
        vk__http_router_match(&r, "GET", "/api/v1/workers/%GG", &pool, &rt, &kv, &n, NULL),
        VK__HTTP_MATCH_BAD_PATH);
    assert_int_equal(vk__http_router_match(&r, "GET", "relative", &pool, &rt, &kv, &n, NULL),
                     VK__HTTP_MATCH_NOT_FOUND);
    vk_pool_release(&pool);
    vk__http_router_release(&r);
}

static void test_decode(void **state)
{
    (void)state;
    struct vk_pool pool;
    vk_pool_init(&pool, 0);
    assert_string_equal(vk__http_decode(&pool, "a%20b+c", 7, false), "a b+c");
    assert_string_equal(vk__http_decode(&pool, "a%20b+c", 7, true), "a b c");
    assert_string_equal(vk__http_decode(&pool, "%e2%82%AC", 9, false), "\xe2\x82\xac");
    assert_null(vk__http_decode(&pool, "%", 1, false));
    assert_null(vk__http_decode(&pool, "%4", 2, false));
    assert_null(vk__http_decode(&pool, "%4g", 3, false));
    assert_null(vk__http_decode(&pool, "%00", 3, false));
    assert_string_equal(vk__http_decode(&pool, "", 0, false), "");
    vk_pool_release(&pool);
}

static void test_many_segments(void **state)
{
    (void)state;
    struct vk__http_router r;
    vk__http_router_init(&r);
    struct vk_err err;
    assert_int_equal(vk__http_router_add(&r, "GET", "/*", h1, NULL, NULL, &err), 0);
    char path[1024] = "";
    for (int i = 0; i < 100; i++)
        strcat(path, "/a");
    struct vk_pool pool;
    vk_pool_init(&pool, 0);
    const struct vk__http_route *rt;
    struct vk__http_kv *kv;
    size_t n;
    /* Too deep for the matcher: refused, never overflows. */
    assert_int_equal(vk__http_router_match(&r, "GET", path, &pool, &rt, &kv, &n, NULL),
                     VK__HTTP_MATCH_NOT_FOUND);
    vk_pool_release(&pool);
    vk__http_router_release(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_specificity),
        cmocka_unit_test(test_decode),
        cmocka_unit_test(test_many_segments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
