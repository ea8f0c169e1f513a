/*
 * API tests, one group per route: the happy path, not found, bad input, and
 * pagination across pages; against a real server, orchestrator and store.
 */
#include "api_test.h"

#define NOID "00000000-0000-4000-8000-000000000000"

static void test_health(void **state)
{
    struct env *e = *state;
    json_t *a = NULL;
    assert_int_equal(call(e->cl, "GET", "/health", NULL, &a), 200);
    assert_string_equal(js(a, "status"), "ok");
    json_decref(a);
    assert_int_equal(call(e->cl, "GET", "/health/ready", NULL, &a), 200);
    assert_string_equal(js(a, "status"), "ready");
    assert_string_equal(js(a, "store"), vk_store_backend(e->store));
    json_decref(a);
    assert_int_equal(call(e->cl, "POST", "/health", "{}", NULL), 405);
}

/* Without require_auth there is nobody to act for: the identity routes answer 403. */
static void test_identity_needs_auth(void **state)
{
    struct env *e = *state;
    static const char *const routes[][3] = {
        {"GET", "/api/v1/user", NULL},
        {"POST", "/api/v1/tokens", "{\"scopes\":\"read\"}"},
        {"GET", "/api/v1/orgs", NULL},
        {"POST", "/api/v1/orgs", "{\"slug\":\"x\"}"},
        {"POST", "/api/v1/users", "{\"login\":\"x\"}"},
        {"GET", "/api/v1/orgs/default/teams", NULL},
        {"GET", "/api/v1/orgs/default/registration-tokens", NULL},
    };
    for (size_t i = 0; i < VK_ARRAY_LEN(routes); i++) {
        json_t *a = NULL;
        assert_int_equal(call(e->cl, routes[i][0], routes[i][1], routes[i][2], &a), 403);
        assert_non_null(strstr(js(a, "message"), "runs with --no-auth"));
        json_decref(a);
    }
}

static void test_parse_validate(void **state)
{
    struct env *e = *state;
    json_t *a = NULL;
    const char *ok =
        "{\"content\":\"version \\\"0.1\\\"\\nname \\\"x\\\"\\ntriggers \\\"manual\\\"\\n"
        "chain {\\n machine \\\"default\\\"\\n fragment { run \\\"true\\\"; }\\n}\\n\"}";
    assert_int_equal(call(e->cl, "POST", "/api/v1/validate", ok, &a), 200);
    assert_true(json_is_true(json_object_get(a, "valid")));
    assert_int_equal(json_integer_value(json_object_get(a, "fragment_count")), 1);
    json_decref(a);
    assert_int_equal(call(e->cl, "POST", "/api/v1/parse", ok, &a), 201);
    assert_non_null(js(a, "chain_id"));
    json_decref(a);
    /* Bad input: no content, a workflow error with a position, malformed JSON. */
    assert_int_equal(call(e->cl, "POST", "/api/v1/parse", "{}", &a), 400);
    assert_string_equal(js(a, "error"), "bad_request");
    json_decref(a);
    assert_int_equal(call(e->cl, "POST", "/api/v1/validate", "{\"content\":\"chain {\"}", &a), 400);
    assert_string_equal(js(a, "error"), "invalid_workflow");
    assert_true(json_integer_value(json_object_get(a, "line")) >= 1);
    json_decref(a);
    assert_int_equal(call(e->cl, "POST", "/api/v1/parse", "{not json", NULL), 400);
    assert_int_equal(call(e->cl, "POST", "/api/v1/parse", "{\"content\":\"x\",\"env\":[]}", NULL),
                     400);
}

/* Collect every chain id of a listing with `limit`, page by page. */
static size_t list_all(struct env *e, const char *filter, int limit, char ids[][VK_UUID_LEN],
                       size_t cap, size_t *pages)
{
    char cursor[128] = "";
    size_t n = 0;
    *pages = 0;
    for (;;) {
        char path[512];
        snprintf(path, sizeof(path), "/api/v1/chains?limit=%d%s%s%s", limit, filter,
                 cursor[0] ? "&cursor=" : "", cursor);
        json_t *a = NULL;
        assert_int_equal(call(e->cl, "GET", path, NULL, &a), 200);
        (*pages)++;
        json_t *arr = json_object_get(a, "chains");
        assert_true(json_array_size(arr) <= (size_t)limit);
        size_t i;
        json_t *c;
        json_array_foreach(arr, i, c)
        {
            assert_true(n < cap);
            snprintf(ids[n++], VK_UUID_LEN, "%s", js_req(c, "id"));
        }
        const char *next = js(a, "next_cursor");
        snprintf(cursor, sizeof(cursor), "%s", next ? next : "");
        json_decref(a);
        if (!cursor[0])
            break;
        assert_true(*pages < 100);
    }
    return n;
}

static void test_chain_list(void **state)
{
    struct env *e = *state;
    char made[7][VK_UUID_LEN];
    for (int i = 0; i < 7; i++) {
        submit(e, "list.kdl", i % 2 ? "dev" : "main", "true", made[i]);
        usleep(3000); /* distinct created_at: the order within one millisecond is by id */
    }
    /* Pagination across pages: 7 "list" chains of branch main/dev among others; pages of 2. */
    char ids[64][VK_UUID_LEN];
    size_t pages = 0;
    size_t n = list_all(e, "&branch=dev", 2, ids, 64, &pages);
    assert_int_equal(n, 3);
    assert_int_equal(pages, 2);
    /* Newest first, no duplicates, exactly the dev ones. */
    assert_string_equal(ids[0], made[5]);
    assert_string_equal(ids[1], made[3]);
    assert_string_equal(ids[2], made[1]);
    n = list_all(e, "&branch=main", 3, ids, 64, &pages);
    assert_int_equal(n, 4);
    assert_int_equal(pages, 2);
    for (size_t i = 0; i + 1 < n; i++)
        assert_string_not_equal(ids[i], ids[i + 1]);
    /* Filters: status, trigger, since, repository. */
    json_t *a = NULL;
    assert_int_equal(
        call(e->cl, "GET", "/api/v1/chains?trigger=manual&status=running&limit=200", NULL, &a),
        200);
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(a, "chains"), i, c)
    {
        assert_string_equal(js(c, "status"), "running");
        assert_string_equal(js(c, "trigger"), "manual");
    }
    assert_int_equal(json_array_size(json_object_get(a, "chains")), 7);
    json_decref(a);
    assert_int_equal(call(e->cl, "GET", "/api/v1/chains?status=completed", NULL, &a), 200);
    assert_int_equal(json_array_size(json_object_get(a, "chains")), 0);
    json_decref(a);
    assert_int_equal(call(e->cl, "GET", "/api/v1/chains?trigger=push", NULL, &a), 200);
    assert_int_equal(json_array_size(json_object_get(a, "chains")), 0);
    json_decref(a);
    assert_int_equal(call(e->cl, "GET", "/api/v1/chains?since=2999-01-01T00:00:00Z", NULL, &a),
                     200);
    assert_int_equal(json_array_size(json_object_get(a, "chains")), 0);
    assert_true(json_is_null(json_object_get(a, "next_cursor")));
    json_decref(a);
    assert_int_equal(call(e->cl, "GET", "/api/v1/chains?repository=" NOID, NULL, &a), 200);
    assert_int_equal(json_array_size(json_object_get(a, "chains")), 0);
    json_decref(a);
    /* Bad input. */
    assert_int_equal(call(e->cl, "GET", "/api/v1/chains?limit=0", NULL, NULL), 400);
    assert_int_equal(call(e->cl, "GET", "/api/v1/chains?limit=201", NULL, NULL), 400);
    assert_int_equal(call(e->cl, "GET", "/api/v1/chains?limit=x", NULL, NULL), 400);
    assert_int_equal(call(e->cl, "GET", "/api/v1/chains?since=yesterday", NULL, NULL), 400);
    assert_int_equal(call(e->cl, "GET", "/api/v1/chains?cursor=garbage", NULL, NULL), 400);
    assert_int_equal(call(e->cl, "GET", "/api/v1/chains?status=sleeping", NULL, NULL), 400);
}

static void test_chain_get_cancel_rerun(void **state)
{
    struct env *e = *state;
    char id[VK_UUID_LEN];
    submit(e, "get.kdl", "main", "echo hi", id);
    char path[256];
    snprintf(path, sizeof(path), "/api/v1/chains/%s", id);
    json_t *a = NULL;
    assert_int_equal(call(e->cl, "GET", path, NULL, &a), 200);
    assert_string_equal(js(a, "id"), id);
    json_t *frags = json_object_get(a, "fragments");
    assert_int_equal(json_array_size(frags), 1);
    json_t *f = json_array_get(frags, 0);
    assert_string_equal(js(f, "name"), "step");
    assert_int_equal(json_integer_value(json_object_get(f, "attempt")), 1);
    assert_non_null(json_object_get(f, "exit_code"));
    assert_non_null(json_object_get(f, "worker_id"));
    /* Nobody serves "default" here: the fragment says why it waits. */
    assert_non_null(strstr(js(f, "waiting_reason"), "no worker"));
    json_decref(a);
    assert_int_equal(call(e->cl, "GET", "/api/v1/chains/" NOID, NULL, &a), 404);
    assert_string_equal(js(a, "error"), "not_found");
    json_decref(a);
    assert_int_equal(call(e->cl, "GET", "/api/v1/chains/not-a-uuid", NULL, NULL), 404);

    snprintf(path, sizeof(path), "/api/v1/chains/%s/cancel", id);
    assert_int_equal(call(e->cl, "POST", path, NULL, &a), 200);
    assert_string_equal(js(a, "status"), "cancelled");
    json_decref(a);
    assert_int_equal(call(e->cl, "POST", path, NULL, NULL), 409); /* finished already */
    assert_int_equal(call(e->cl, "POST", "/api/v1/chains/" NOID "/cancel", NULL, NULL), 404);
    assert_int_equal(call(e->cl, "GET", path, NULL, NULL), 405);

    snprintf(path, sizeof(path), "/api/v1/chains/%s/rerun", id);
    assert_int_equal(call(e->cl, "POST", path, NULL, &a), 201);
    assert_string_equal(js(a, "rerun_of"), id);
    assert_string_not_equal(js(a, "chain_id"), id);
    json_decref(a);
    assert_int_equal(call(e->cl, "POST", "/api/v1/chains/" NOID "/rerun", NULL, NULL), 404);
}

static void test_worker_protocol_and_workers(void **state)
{
    struct env *e = *state;
    char id[VK_UUID_LEN], wid[VK_UUID_LEN], fid[VK_UUID_LEN];
    submit(e, "work.kdl", "main", "echo hi", id);
    worker_register(e, wid);
    assert_int_equal(call(e->cl, "POST", "/api/v1/workers/register", "{\"name\":\"x\"}", NULL),
                     400);
    int attempt = worker_claim(e->cl, wid, fid);
    assert_int_equal(attempt, 1);
    char path[256], body[256];
    json_t *a = NULL;
    /* Heartbeat, busy, queue metrics. */
    snprintf(body, sizeof(body), "{\"worker_id\":\"%s\"}", wid);
    assert_int_equal(call(e->cl, "POST", "/api/v1/workers/heartbeat", body, &a), 200);
    json_decref(a);
    assert_int_equal(
        call(e->cl, "POST", "/api/v1/workers/heartbeat", "{\"worker_id\":\"" NOID "\"}", NULL),
        404);
    snprintf(path, sizeof(path), "/api/v1/workers/%s/busy", wid);
    assert_int_equal(call(e->cl, "GET", path, NULL, &a), 200);
    assert_true(json_is_true(json_object_get(a, "busy")));
    assert_string_equal(js(a, "fragment_id"), fid);
    json_decref(a);
    assert_int_equal(call(e->cl, "GET", "/api/v1/workers/" NOID "/busy", NULL, NULL), 404);
    assert_int_equal(call(e->cl, "GET", "/api/v1/queue/metrics?machine_group=default", NULL, &a),
                     200);
    assert_true(json_integer_value(json_object_get(a, "running_fragments")) >= 1);
    json_decref(a);
    /* Workers: list and get. */
    assert_int_equal(call(e->cl, "GET", "/api/v1/workers", NULL, &a), 200);
    assert_true(json_array_size(json_object_get(a, "workers")) >= 1);
    json_decref(a);
    snprintf(path, sizeof(path), "/api/v1/workers/%s", wid);
    assert_int_equal(call(e->cl, "GET", path, NULL, &a), 200);
    assert_string_equal(js(a, "id"), wid);
    assert_string_equal(js(a, "status"), "alive");
    assert_string_equal(js(a, "current_fragment_id"), fid);
    assert_string_equal(json_string_value(json_array_get(json_object_get(a, "machine_groups"), 0)),
                        "default");
    assert_true(json_integer_value(json_object_get(a, "heartbeat_age_ms")) >= 0);
    assert_non_null(js(a, "last_heartbeat"));
    json_decref(a);
    assert_int_equal(call(e->cl, "GET", "/api/v1/workers/" NOID, NULL, NULL), 404);
    assert_int_equal(call(e->cl, "GET", "/api/v1/workers/nope", NULL, NULL), 404);
    /* Log and result, fenced by attempt. */
    assert_int_equal(worker_log(e->cl, fid, 1, 0, "hello\n", 6), 204);
    assert_int_equal(worker_log(e->cl, fid, 2, 0, "stale\n", 6), 409);
    assert_int_equal(worker_result(e->cl, wid, fid, 2, true), 409);
    assert_int_equal(worker_result(e->cl, wid, fid, 1, true), 200);
    /* Nothing else is ready: an immediate answer with wait_s 0. */
    snprintf(body, sizeof(body), "{\"worker_id\":\"%s\",\"wait_s\":0}", wid);
    assert_int_equal(call(e->cl, "POST", "/api/v1/work/request", body, NULL), 204);
    snprintf(body, sizeof(body), "{\"worker_id\":\"%s\"}", wid);
    assert_int_equal(call(e->cl, "POST", "/api/v1/workers/deregister", body, NULL), 204);
    snprintf(path, sizeof(path), "/api/v1/workers/%s", wid);
    assert_int_equal(call(e->cl, "GET", path, NULL, &a), 200);
    assert_string_equal(js(a, "status"), "stopped");
    json_decref(a);
}

static void test_fragment_log_whole(void **state)
{
    struct env *e = *state;
    char id[VK_UUID_LEN], wid[VK_UUID_LEN], fid[VK_UUID_LEN];
    submit(e, "log.kdl", "main", "echo hi", id);
    worker_register(e, wid);
    int attempt = worker_claim(e->cl, wid, fid);
    const char bytes[] = "one\ntwo\n\xff\x00three\n";
    assert_int_equal(worker_log(e->cl, fid, attempt, 0, bytes, sizeof(bytes) - 1), 204);
    char path[256], *body = NULL;
    size_t len = 0;
    snprintf(path, sizeof(path), "/api/v1/fragments/%s/log", fid);
    assert_int_equal(get_raw(e->cl, path, &body, &len, NULL, 0), 200);
    assert_int_equal(len, sizeof(bytes) - 1);
    assert_memory_equal(body, bytes, len); /* byte-exact, NUL and invalid UTF-8 included */
    free(body);
    snprintf(path, sizeof(path), "/api/v1/fragments/%s/log?offset=4&attempt=1", fid);
    assert_int_equal(get_raw(e->cl, path, &body, &len, NULL, 0), 200);
    assert_int_equal(len, sizeof(bytes) - 1 - 4);
    assert_memory_equal(body, "two\n", 4);
    free(body);
    snprintf(path, sizeof(path), "/api/v1/fragments/%s/log?attempt=7", fid);
    assert_int_equal(get_raw(e->cl, path, &body, &len, NULL, 0), 200);
    assert_int_equal(len, 0);
    free(body);
    const char *bad[] = {"offset=-1", "offset=x", "attempt=0", "attempt=a", "follow=maybe"};
    for (size_t i = 0; i < VK_ARRAY_LEN(bad); i++) {
        snprintf(path, sizeof(path), "/api/v1/fragments/%s/log?%s", fid, bad[i]);
        assert_int_equal(call(e->cl, "GET", path, NULL, NULL), 400);
    }
    assert_int_equal(call(e->cl, "GET", "/api/v1/fragments/" NOID "/log", NULL, NULL), 404);
    assert_int_equal(call(e->cl, "GET", "/api/v1/fragments/" NOID "/log?follow=1", NULL, NULL),
                     404);
    assert_int_equal(call(e->cl, "GET", "/api/v1/fragments/zzz/log", NULL, NULL), 404);
    assert_int_equal(worker_result(e->cl, wid, fid, attempt, true), 200);
}

static void test_badge(void **state)
{
    struct env *e = *state;
    char *svg = NULL, ct[128];
    size_t len;
    /* Unknown repository: 200 with an "unknown" badge (an image tag cannot show errors). */
    assert_int_equal(get_raw(e->cl, "/api/v1/repos/" NOID "/badge.svg", &svg, &len, ct, 128), 200);
    assert_string_equal(ct, "image/svg+xml");
    assert_non_null(strstr(svg, "<svg"));
    assert_non_null(strstr(svg, ">unknown<"));
    free(svg);
    /* A repository with chains on two branches. */
    struct vk_store_repo r = {.url = "https://git.example/acme/badge.git",
                              .provider = "generic",
                              .workflow_glob = ".vulcan/*.kdl",
                              .default_branch = "main"};
    struct vk_err err;
    char tenant[VK_UUID_LEN];
    assert_int_equal(vk_store_tenant_ensure(e->store, "default", tenant, &err), 0);
    memcpy(r.tenant_id, tenant, VK_UUID_LEN);
    assert_int_equal(vk_store_repo_create(e->store, &r, &err), 0);
    char path[256];
    snprintf(path, sizeof(path), "/api/v1/repos/%s/badge.svg", r.id);
    assert_int_equal(get_raw(e->cl, path, &svg, &len, NULL, 0), 200);
    assert_non_null(strstr(svg, ">unknown<")); /* no chain yet */
    free(svg);
    struct vk_store_chain c = {.repository_id = "", .branch = "main", .trigger = "push"};
    memcpy(c.repository_id, r.id, VK_UUID_LEN);
    memcpy(c.tenant_id, tenant, VK_UUID_LEN);
    c.default_machine = "default";
    struct vk_store_fragment_spec spec = {
        .parent = -1, .name = "s", .run_script = "true", .machine = "default"};
    assert_int_equal(vk_store_chain_create(e->store, &c, &spec, 1, NULL, &err), 0);
    assert_int_equal(get_raw(e->cl, path, &svg, &len, NULL, 0), 200);
    assert_non_null(strstr(svg, ">running<"));
    free(svg);
    assert_int_equal(vk_store_chain_cancel(e->store, c.id, vk_time_now_ms(), NULL, &err), 0);
    assert_int_equal(get_raw(e->cl, path, &svg, &len, NULL, 0), 200);
    assert_non_null(strstr(svg, ">cancelled<"));
    free(svg);
    /* Per branch: another branch has nothing. */
    snprintf(path, sizeof(path), "/api/v1/repos/%s/badge.svg?branch=feature%%2Fx", r.id);
    assert_int_equal(get_raw(e->cl, path, &svg, &len, NULL, 0), 200);
    assert_non_null(strstr(svg, ">unknown<"));
    free(svg);
    /* A finished chain of the branch: completed → passing, failed → failing. */
    struct vk_store_chain c2 = c;
    c2.branch = "release";
    assert_int_equal(vk_store_chain_create(e->store, &c2, &spec, 1, NULL, &err), 0);
    struct vk_store_tx *tx = NULL;
    assert_int_equal(vk_store_tx_begin(e->store, &tx, &err), 0);
    assert_int_equal(vk_store_tx_chain_set(tx, c2.id, VK_STORE_CHAIN_COMPLETED, vk_time_now_ms(),
                                           vk_time_now_ms(), NULL, &err),
                     0);
    assert_int_equal(vk_store_tx_commit(tx, &err), 0);
    snprintf(path, sizeof(path), "/api/v1/repos/%s/badge.svg?branch=release", r.id);
    assert_int_equal(get_raw(e->cl, path, &svg, &len, NULL, 0), 200);
    assert_non_null(strstr(svg, ">passing<"));
    free(svg);
    assert_int_equal(vk_store_tx_begin(e->store, &tx, &err), 0);
    assert_int_equal(vk_store_tx_chain_set(tx, c2.id, VK_STORE_CHAIN_FAILED, 0, 0, "x", &err), 0);
    assert_int_equal(vk_store_tx_commit(tx, &err), 0);
    assert_int_equal(get_raw(e->cl, path, &svg, &len, NULL, 0), 200);
    assert_non_null(strstr(svg, ">failing<"));
    free(svg);
    /* Bad input: an absurd branch. */
    char big[1200 + 80];
    snprintf(big, sizeof(big), "/api/v1/repos/%s/badge.svg?branch=%01100d", r.id, 0);
    assert_int_equal(call(e->cl, "GET", big, NULL, NULL), 400);
}

static void test_console(void **state)
{
    struct env *e = *state;
    char *body = NULL, ct[128];
    size_t len;
    assert_int_equal(get_raw(e->cl, "/", &body, &len, ct, sizeof(ct)), 200);
    assert_non_null(strstr(ct, "text/html"));
    assert_non_null(strstr(body, "app.js"));
    free(body);
    const struct {
        const char *path, *type;
    } files[] = {{"/app.js", "text/javascript"},
                 {"/style.css", "text/css"},
                 {"/ansi.js", "text/javascript"},
                 {"/favicon.svg", "image/svg+xml"}};
    for (size_t i = 0; i < VK_ARRAY_LEN(files); i++) {
        assert_int_equal(get_raw(e->cl, files[i].path, &body, &len, ct, sizeof(ct)), 200);
        assert_non_null(strstr(ct, files[i].type));
        assert_true(len > 0);
        /* The bytes are the file of web/, embedded at build time. */
        const struct vk__api_asset *a = vk__api_asset_find(files[i].path + 1);
        assert_non_null(a);
        assert_int_equal(a->len, len);
        assert_memory_equal(a->data, body, len);
        free(body);
    }
    /* Revalidation: the ETag gives 304. */
    struct vk_http_client *c2 = env_client(e);
    const struct vk__api_asset *a = vk__api_asset_find("app.js");
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < a->len; i++) {
        h ^= a->data[i];
        h *= 1099511628211ull;
    }
    char etag[32];
    snprintf(etag, sizeof(etag), "\"%016llx\"", (unsigned long long)h);
    assert_int_equal(vk_http_client_set_header(c2, "If-None-Match", etag), 0);
    assert_int_equal(get_raw(c2, "/app.js", &body, &len, NULL, 0), 304);
    free(body);
    vk_http_client_free(c2);
    assert_int_equal(call(e->cl, "GET", "/nope.js", NULL, NULL), 404);
    assert_int_equal(call(e->cl, "GET", "/..%2Fetc%2Fpasswd", NULL, NULL), 404);
    assert_int_equal(call(e->cl, "POST", "/app.js", "{}", NULL), 405);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_health, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_identity_needs_auth, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_parse_validate, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_chain_list, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_chain_get_cancel_rerun, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_worker_protocol_and_workers, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_fragment_log_whole, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_badge, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_console, env_setup, env_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
