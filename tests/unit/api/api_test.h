/*
 * Shared set-up of the API tests: a real store (sqlite::memory:, or the URL in
 * VK_TEST_STORE_URL), a real orchestrator and the API on 127.0.0.1:0, and a
 * client; helpers for JSON calls and for acting as a worker.
 */
#ifndef VK_API_TEST_H
#define VK_API_TEST_H

#include "api/api_int.h"
#include "vk_test.h"
#include "vulcan/api.h"
#include "vulcan/http.h"
#include "vulcan/orchestrator.h"
#include "vulcan/store.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct env {
    struct vk_store *store;
    struct vk_orch *orch;
    struct vk_api *api;
    struct vk_http_client *cl;
    char base[64];
};

static inline struct vk_http_client *env_client(struct env *e)
{
    struct vk_http_client_opts o = {
        .base_url = e->base, .timeout_ms = 30000, .max_response = 64u * 1024u * 1024u};
    struct vk_http_client *cl = NULL;
    struct vk_err err;
    if (vk_http_client_new(&o, &cl, &err) != 0)
        fail_msg("client: %s", err.msg);
    return cl;
}

/*
 * The store of a test: VK_TEST_STORE_BACKEND=file gives a fresh SQLite file per test,
 * postgres a fresh database per test on the cluster of scripts/pg-test.sh (VK_TEST_PG_URL);
 * else VK_TEST_STORE_URL, else sqlite::memory: (one connection: no concurrency at all).
 */
static inline void env_store_url(char *url, size_t n)
{
    static int seq;
    const char *b = getenv("VK_TEST_STORE_BACKEND");
    const char *given = getenv("VK_TEST_STORE_URL");
    seq++;
    if (b && strcmp(b, "file") == 0) {
        char dir[256];
        snprintf(dir, sizeof(dir), "%s/vk-api-XXXXXX",
                 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        if (!mkdtemp(dir))
            fail_msg("mkdtemp failed");
        snprintf(url, n, "sqlite:%s/api.db", dir);
    } else if (b && strcmp(b, "postgres") == 0) {
        const char *base = getenv("VK_TEST_PG_URL");
        if (!base || !*base)
            fail_msg("VK_TEST_PG_URL is not set: run this test through scripts/pg-test.sh");
        PGconn *db = PQconnectdb(base);
        char sql[128], name[64];
        snprintf(name, sizeof(name), "vk_api_%d_%d", (int)getpid(), seq);
        snprintf(sql, sizeof(sql), "CREATE DATABASE %s", name);
        PGresult *r = PQstatus(db) == CONNECTION_OK ? PQexec(db, sql) : NULL;
        bool ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
        PQclear(r);
        PQfinish(db);
        if (!ok)
            fail_msg("cannot create a database on %s", base);
        const char *slash = strrchr(base, '/');
        snprintf(url, n, "%.*s/%s", (int)(slash - base), base, name);
    } else {
        snprintf(url, n, "%s", given && *given ? given : "sqlite::memory:");
    }
}

static inline int env_setup(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    struct vk_err err;
    vk_err_clear(&err);
    char url[1024];
    env_store_url(url, sizeof(url));
    if (vk_store_open(url, &e->store, &err) != 0)
        fail_msg("store: %s", err.msg);
    if (vk_orch_new(e->store, NULL, &e->orch, &err) != 0)
        fail_msg("orch: %s", err.msg);
    struct vk_api_opts ao = {.listen = "127.0.0.1:0", .store = e->store, .orch = e->orch};
    if (vk_api_new(&ao, &e->api, &err) != 0)
        fail_msg("api: %s", err.msg);
    vk_orch_set_ready_hook(e->orch, vk_api_wake, e->api);
    if (vk_orch_start(e->orch, &err) != 0 || vk_api_start(e->api, &err) != 0)
        fail_msg("start: %s", err.msg);
    snprintf(e->base, sizeof(e->base), "http://127.0.0.1:%u", vk_api_port(e->api));
    e->cl = env_client(e);
    *state = e;
    return 0;
}

static inline int env_teardown(void **state)
{
    struct env *e = *state;
    vk_http_client_free(e->cl);
    vk_api_stop(e->api);
    vk_orch_stop(e->orch);
    vk_api_free(e->api);
    vk_orch_free(e->orch);
    vk_store_close(e->store);
    free(e);
    return 0;
}

/* A JSON call (body is JSON text or NULL); returns the status, *out the parsed answer. */
static inline long call(struct vk_http_client *cl, const char *method, const char *path,
                        const char *body, json_t **out)
{
    struct vk_http_response resp;
    struct vk_err err;
    vk_err_clear(&err);
    int rc = vk_http_client_request(cl, method, path, body ? "application/json" : NULL, body,
                                    body ? strlen(body) : 0, 0, &resp, &err);
    if (rc != 0)
        fail_msg("%s %s: %s", method, path, err.msg);
    long st = resp.status;
    if (out) {
        json_error_t je;
        *out = resp.body.len ? json_loadb(resp.body.data, resp.body.len, 0, &je) : NULL;
    }
    vk_http_response_release(&resp);
    return st;
}

/* GET returning the raw body (owned, NUL-terminated) and its length. */
static inline long get_raw(struct vk_http_client *cl, const char *path, char **body, size_t *len,
                           char *ctype, size_t ctcap)
{
    struct vk_http_response resp;
    struct vk_err err;
    vk_err_clear(&err);
    if (vk_http_client_request(cl, "GET", path, NULL, NULL, 0, 0, &resp, &err) != 0)
        fail_msg("GET %s: %s", path, err.msg);
    long st = resp.status;
    if (ctype)
        snprintf(ctype, ctcap, "%s", resp.content_type);
    *body = vk_buf_take(&resp.body, len);
    vk_http_response_release(&resp);
    return st;
}

static inline const char *js(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* A string member that must be there (fails the test when it is not). */
static inline const char *js_req(json_t *o, const char *k)
{
    const char *v = js(o, k);
    assert_non_null(v);
    return v ? v : "";
}

/* Submit a workflow with one fragment per script (sequential); returns the chain id. */
static inline void submit(struct env *e, const char *name, const char *branch, const char *script,
                          char id[VK_UUID_LEN])
{
    char wf[2048];
    snprintf(wf, sizeof(wf),
             "version \"0.1\"\nname \"%s\"\ntriggers \"manual\"\nchain {\n"
             "    machine \"default\"\n    fragment {\n        name \"step\"\n"
             "        run \"%s\"\n    }\n}\n",
             name, script);
    json_t *b = json_pack("{s:s, s:s, s:s, s:s}", "content", wf, "source_file_path", name, "branch",
                          branch, "trigger", "manual");
    char *s = json_dumps(b, 0);
    json_decref(b);
    json_t *ans = NULL;
    long st = call(e->cl, "POST", "/api/v1/parse", s, &ans);
    free(s);
    if (st != 201)
        fail_msg("submit: %ld", st);
    snprintf(id, VK_UUID_LEN, "%s", js_req(ans, "chain_id"));
    json_decref(ans);
}

/* Register a worker of group "default". */
static inline void worker_register(struct env *e, char wid[VK_UUID_LEN])
{
    json_t *ans = NULL;
    long st = call(e->cl, "POST", "/api/v1/workers/register",
                   "{\"machine_group\":\"default\",\"name\":\"t\",\"version\":\"1\"}", &ans);
    assert_int_equal(st, 200);
    snprintf(wid, VK_UUID_LEN, "%s", js_req(ans, "worker_id"));
    json_decref(ans);
}

/* Claim the next fragment; returns its attempt and writes its id. */
static inline int worker_claim(struct vk_http_client *cl, const char *wid, char fid[VK_UUID_LEN])
{
    char body[128];
    snprintf(body, sizeof(body), "{\"worker_id\":\"%s\",\"wait_s\":5}", wid);
    json_t *w = NULL;
    long st = call(cl, "POST", "/api/v1/work/request", body, &w);
    if (st != 200)
        fail_msg("work request: %ld", st);
    snprintf(fid, VK_UUID_LEN, "%s", js_req(w, "fragment_id"));
    int attempt = (int)json_integer_value(json_object_get(w, "attempt"));
    json_decref(w);
    return attempt;
}

static inline long worker_log(struct vk_http_client *cl, const char *fid, int attempt,
                              long long offset, const void *data, size_t len)
{
    char path[256];
    snprintf(path, sizeof(path), "/api/v1/work/%s/log?attempt=%d&offset=%lld", fid, attempt,
             offset);
    struct vk_http_response resp;
    struct vk_err err;
    if (vk_http_client_request(cl, "POST", path, "application/octet-stream", data, len, 0, &resp,
                               &err) != 0)
        fail_msg("log: %s", err.msg);
    long st = resp.status;
    vk_http_response_release(&resp);
    return st;
}

static inline long worker_result(struct vk_http_client *cl, const char *wid, const char *fid,
                                 int attempt, bool ok)
{
    char body[256];
    snprintf(body, sizeof(body),
             "{\"worker_id\":\"%s\",\"fragment_id\":\"%s\",\"attempt\":%d,\"success\":%s,"
             "\"exit_code\":%d}",
             wid, fid, attempt, ok ? "true" : "false", ok ? 0 : 3);
    return call(cl, "POST", "/api/v1/work/result", body, NULL);
}

#endif
