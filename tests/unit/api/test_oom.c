/*
 * Out of memory while a route builds its JSON: the answer is the whole 200 or a 500
 * {"error":"internal","message":"out of memory"}, never "200 null" or an object with
 * members missing. Each jansson allocation the server makes for a request is failed in
 * turn (json_fail.h; the test's own client thread is not counted).
 */
#include "api_test.h"
#include "json_fail.h"

#define OOM_BODY "{\"error\":\"internal\",\"message\":\"out of memory\"}"

static int oom_setup(void **state)
{
    json_fail_install(); /* before the server's threads start */
    return env_setup(state);
}

static int oom_teardown(void **state)
{
    int rc = env_teardown(state);
    json_fail_uninstall();
    return rc;
}

/* GET `path` failing the 1st, 2nd, ... allocation; returns how many answers were 500. */
static unsigned long fail_each(struct env *e, const char *path)
{
    char *want = NULL, *body = NULL;
    size_t len = 0;
    assert_int_equal(get_raw(e->cl, path, &want, &len, NULL, 0), 200);
    unsigned long n500 = 0;
    for (unsigned long n = 1;; n++) {
        json_fail_after(n, true);
        long st = get_raw(e->cl, path, &body, &len, NULL, 0);
        bool fired = json_fail_fired();
        json_fail_after(0, true);
        if (st == 500) {
            assert_string_equal(body, OOM_BODY);
            n500++;
        } else {
            /* The failure hit something else (a log record): the answer is whole. */
            assert_int_equal(st, 200);
            assert_string_equal(body, want);
        }
        free(body);
        if (!fired)
            break;
        assert_true(n < 100000);
    }
    free(want);
    return n500;
}

static void test_oom_read_routes(void **state)
{
    struct env *e = *state;
    char id[VK_UUID_LEN], wid[VK_UUID_LEN];
    submit(e, "oom.kdl", "main", "echo hi", id);
    worker_register(e, wid);
    char path[256];
    /* Cancelled, so nothing in the chain's answer changes from one request to the next. */
    snprintf(path, sizeof(path), "/api/v1/chains/%s/cancel", id);
    assert_int_equal(call(e->cl, "POST", path, NULL, NULL), 200);
    snprintf(path, sizeof(path), "/api/v1/chains/%s", id);
    assert_true(fail_each(e, path) > 10);
    assert_true(fail_each(e, "/api/v1/chains") > 10);
    assert_true(fail_each(e, "/api/v1/workers") > 5);
    assert_true(fail_each(e, "/health") > 2);
}

/* The work item a worker claims: a 500 gives the fragment back, so the next request gets
 * it; it is never lost to a reply that could not be built. */
static void test_oom_work_item(void **state)
{
    struct env *e = *state;
    char id[VK_UUID_LEN], wid[VK_UUID_LEN];
    submit(e, "oom-work.kdl", "main", "echo hi", id);
    worker_register(e, wid);
    char req[128];
    snprintf(req, sizeof(req), "{\"worker_id\":\"%s\",\"wait_s\":0}", wid);
    /* The server parses the request body first, with the same allocations as here. Those
     * are not failed: jansson's parser can turn a failed allocation into a syntax error or
     * a truncated string, which no server can tell from a bad request. */
    json_fail_after(0, false);
    json_decref(json_loadb(req, strlen(req), JSON_DECODE_ANY, NULL));
    unsigned long parse = json_fail_after(0, true);
    unsigned long n500 = 0;
    for (unsigned long n = parse + 1;; n++) {
        json_fail_after(n, true);
        struct vk_http_response resp;
        struct vk_err err;
        assert_int_equal(vk_http_client_request(e->cl, "POST", "/api/v1/work/request",
                                                "application/json", req, strlen(req), 0, &resp,
                                                &err),
                         0);
        json_fail_after(0, true);
        long st = resp.status;
        if (st == 500) {
            assert_string_equal(resp.body.data, OOM_BODY);
            n500++;
        }
        if (st == 200) {
            json_t *w = json_loadb(resp.body.data, resp.body.len, 0, NULL);
            assert_non_null(w);
            assert_non_null(js(w, "fragment_id"));
            assert_string_equal(js(w, "chain_id"), id);
            /* Each 500 handed the fragment back (attempt + 1, not held against it). */
            assert_int_equal(json_integer_value(json_object_get(w, "attempt")), n500 + 1);
            assert_non_null(json_object_get(json_object_get(w, "env"), "VULCAN_CHAIN_ID"));
            json_decref(w);
        }
        vk_http_response_release(&resp);
        if (st == 200)
            break;
        assert_int_equal(st, 500); /* a 204 would mean the fragment was lost */
        assert_true(n < 100000);
    }
    assert_true(n500 > 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_oom_read_routes, oom_setup, oom_teardown),
        cmocka_unit_test_setup_teardown(test_oom_work_item, oom_setup, oom_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
