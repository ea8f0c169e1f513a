/*
 * Worker agent tests against a fake protocol server: real HTTP on loopback
 * (the server side of vulcan/http.h) implementing the worker protocol in a
 * simplified in-memory way: register, heartbeat (with cancel ids the test
 * sets), long-poll work/request (scripted items handed out once), log (bytes
 * recorded by offset), result (recorded), deregister.
 */
#include "vk_test.h"
#include "vulcan/http.h"
#include "vulcan/telemetry.h"
#include "vulcan/worker.h"
#include "worker/exec_int.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAXQ 16

struct fake_log {
    char id[64];
    struct vk_buf data;
    int chunks;
    int64_t first_ms;
    bool bad_offset;
};

struct fake_result {
    json_t *body;
    int64_t t_ms;
    int seq;
};

struct fake {
    struct vk_http_server *srv;
    uint16_t port;
    pthread_mutex_t mu;
    int seq; /* event order */
    int registers;
    json_t *last_register;
    char cur_id[64];
    int heartbeats;
    bool hb_409_once;
    char cancel_id[64];
    json_t *items[MAXQ];
    int nitems;
    struct vk_http_req *waiters[MAXQ];
    int nwaiters;
    char handed_id[MAXQ][64];
    int64_t handed_ms[MAXQ];
    int nhanded;
    struct fake_log logs[MAXQ];
    int nlogs;
    char refuse_log_id[64];
    struct fake_result results[MAXQ];
    int nresults;
    int deregisters;
    int deregister_seq;
};

static char g_work[256];

static int64_t now_ms(void)
{
    return vk_time_mono_ns() / 1000000;
}

/* ---------------------------------------------------------------- Fake server */

static bool id_ok(struct fake *f, json_t *body)
{
    json_t *id = json_object_get(body, "worker_id");
    return json_is_string(id) && f->cur_id[0] && strcmp(json_string_value(id), f->cur_id) == 0;
}

static void h_register(struct vk_http_req *req, void *ctx)
{
    struct fake *f = ctx;
    pthread_mutex_lock(&f->mu);
    f->registers++;
    json_decref(f->last_register);
    f->last_register = json_incref(vk_http_json(req));
    snprintf(f->cur_id, sizeof(f->cur_id), "w-%d", f->registers);
    json_t *ans = json_pack("{s:s, s:i}", "worker_id", f->cur_id, "heartbeat_interval_s", 1);
    vk_http_reply_json(req, 200, ans);
    pthread_mutex_unlock(&f->mu);
}

static void h_heartbeat(struct vk_http_req *req, void *ctx)
{
    struct fake *f = ctx;
    pthread_mutex_lock(&f->mu);
    f->heartbeats++;
    if (!id_ok(f, vk_http_json(req))) {
        vk_http_reply_error(req, 404, "not_found", "unknown worker");
    } else if (f->hb_409_once) {
        f->hb_409_once = false;
        f->cur_id[0] = '\0'; /* declared dead: forgotten, with its long-polls */
        while (f->nwaiters > 0)
            vk_http_reply_error(f->waiters[--f->nwaiters], 409, "conflict", "worker declared dead");
        vk_http_reply_error(req, 409, "conflict", "worker declared dead");
    } else {
        json_t *cancel = json_array();
        if (f->cancel_id[0])
            json_array_append_new(cancel, json_string(f->cancel_id));
        vk_http_reply_json(req, 200,
                           json_pack("{s:s, s:s, s:o}", "status", "ok", "timestamp",
                                     "2026-01-01T00:00:00Z", "cancel", cancel));
    }
    pthread_mutex_unlock(&f->mu);
}

/* With f->mu held: hand `item` (taken) to `req`. */
static void hand_out(struct fake *f, struct vk_http_req *req, json_t *item)
{
    if (f->nhanded < MAXQ) {
        snprintf(f->handed_id[f->nhanded], 64, "%s",
                 json_string_value(json_object_get(item, "fragment_id")));
        f->handed_ms[f->nhanded++] = now_ms();
    }
    vk_http_reply_json(req, 200, item);
}

static void remove_waiter(struct fake *f, struct vk_http_req *req)
{
    for (int i = 0; i < f->nwaiters; i++) {
        if (f->waiters[i] == req) {
            f->waiters[i] = f->waiters[--f->nwaiters];
            return;
        }
    }
}

static void w_timeout(struct vk_http_req *req, void *ctx)
{
    struct fake *f = ctx;
    pthread_mutex_lock(&f->mu);
    remove_waiter(f, req);
    vk_http_reply_empty(req, 204);
    pthread_mutex_unlock(&f->mu);
}

static void w_close(struct vk_http_req *req, void *ctx)
{
    struct fake *f = ctx;
    pthread_mutex_lock(&f->mu);
    remove_waiter(f, req);
    pthread_mutex_unlock(&f->mu);
}

static void h_work(struct vk_http_req *req, void *ctx)
{
    struct fake *f = ctx;
    json_t *body = vk_http_json(req);
    pthread_mutex_lock(&f->mu);
    if (!id_ok(f, body)) {
        vk_http_reply_error(req, 404, "not_found", "unknown worker");
    } else if (f->nitems > 0) {
        json_t *item = f->items[0];
        memmove(f->items, f->items + 1, (size_t)(--f->nitems) * sizeof(json_t *));
        hand_out(f, req, item);
    } else if (f->nwaiters == MAXQ) {
        vk_http_reply_empty(req, 204);
    } else {
        json_int_t wait = json_integer_value(json_object_get(body, "wait_s"));
        if (vk_http_suspend(req, (wait > 0 ? wait : 1) * 1000, w_timeout, w_close, f) == 0)
            f->waiters[f->nwaiters++] = req;
        else
            vk_http_reply_empty(req, 500);
    }
    pthread_mutex_unlock(&f->mu);
}

static void h_log(struct vk_http_req *req, void *ctx)
{
    struct fake *f = ctx;
    const char *id = vk_http_param(req, "id");
    const char *off = vk_http_query(req, "offset");
    const char *att = vk_http_query(req, "attempt");
    size_t len = 0;
    const char *data = vk_http_body(req, &len);
    pthread_mutex_lock(&f->mu);
    if (!off || !att) {
        vk_http_reply_error(req, 400, "bad_request", "offset and attempt required");
    } else if (strcmp(f->refuse_log_id, id) == 0) {
        vk_http_reply_error(req, 409, "stale", "stale attempt");
    } else {
        struct fake_log *l = NULL;
        for (int i = 0; i < f->nlogs; i++)
            if (strcmp(f->logs[i].id, id) == 0)
                l = &f->logs[i];
        if (!l && f->nlogs < MAXQ) {
            l = &f->logs[f->nlogs++];
            snprintf(l->id, sizeof(l->id), "%s", id);
            vk_buf_init(&l->data, 64u * 1024u * 1024u);
            l->first_ms = now_ms();
        }
        unsigned long long o = strtoull(off, NULL, 10);
        if (o != l->data.len) {
            l->bad_offset = true;
        } else if (vk_buf_add(&l->data, data, len) != 0) {
            fail_msg("fake log overflow");
        }
        l->chunks++;
        vk_http_reply_empty(req, 204);
    }
    pthread_mutex_unlock(&f->mu);
}

static void h_result(struct vk_http_req *req, void *ctx)
{
    struct fake *f = ctx;
    json_t *body = vk_http_json(req);
    pthread_mutex_lock(&f->mu);
    if (f->nresults < MAXQ) {
        struct fake_result *r = &f->results[f->nresults++];
        r->body = json_incref(body);
        r->t_ms = now_ms();
        r->seq = ++f->seq;
    }
    bool ok = json_is_true(json_object_get(body, "success"));
    vk_http_reply_json(req, 200,
                       json_pack("{s:s}", "fragment_status", ok ? "completed" : "failed"));
    pthread_mutex_unlock(&f->mu);
}

static void h_deregister(struct vk_http_req *req, void *ctx)
{
    struct fake *f = ctx;
    pthread_mutex_lock(&f->mu);
    f->deregisters++;
    f->deregister_seq = ++f->seq;
    vk_http_reply_empty(req, 204);
    pthread_mutex_unlock(&f->mu);
}

static uint16_t free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    socklen_t sl = sizeof(sa);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

static struct fake *fake_new(void)
{
    struct fake *f = calloc(1, sizeof(*f));
    pthread_mutex_init(&f->mu, NULL);
    f->port = free_port();
    return f;
}

static void fake_start(struct fake *f)
{
    char listen[32];
    snprintf(listen, sizeof(listen), "127.0.0.1:%u", f->port);
    struct vk_http_server_opts o = {.listen = listen, .stop_grace_ms = 1000};
    struct vk_err err;
    if (vk_http_server_new(&o, &f->srv, &err) != 0)
        fail_msg("server_new: %s", err.msg);
    struct vk_http_route_opts js = {.json = true};
    struct vk_http_route_opts raw = {.max_body = 2u * 1024u * 1024u};
    assert_int_equal(
        vk_http_route(f->srv, "POST", "/api/v1/workers/register", h_register, f, &js, &err), 0);
    assert_int_equal(
        vk_http_route(f->srv, "POST", "/api/v1/workers/heartbeat", h_heartbeat, f, &js, &err), 0);
    assert_int_equal(
        vk_http_route(f->srv, "POST", "/api/v1/workers/deregister", h_deregister, f, &js, &err), 0);
    assert_int_equal(vk_http_route(f->srv, "POST", "/api/v1/work/request", h_work, f, &js, &err),
                     0);
    assert_int_equal(vk_http_route(f->srv, "POST", "/api/v1/work/result", h_result, f, &js, &err),
                     0);
    assert_int_equal(vk_http_route(f->srv, "POST", "/api/v1/work/{id}/log", h_log, f, &raw, &err),
                     0);
    if (vk_http_server_start(f->srv, &err) != 0)
        fail_msg("server_start: %s", err.msg);
}

static void fake_free(struct fake *f)
{
    vk_http_server_free(f->srv);
    json_decref(f->last_register);
    for (int i = 0; i < f->nitems; i++)
        json_decref(f->items[i]);
    for (int i = 0; i < f->nlogs; i++)
        vk_buf_release(&f->logs[i].data);
    for (int i = 0; i < f->nresults; i++)
        json_decref(f->results[i].body);
    pthread_mutex_destroy(&f->mu);
    free(f);
}

/* Queue a work item (taken); a waiting long-poll gets it at once. */
static void fake_push_item(struct fake *f, json_t *item)
{
    assert_non_null(item);
    pthread_mutex_lock(&f->mu);
    if (f->nwaiters > 0) {
        struct vk_http_req *req = f->waiters[--f->nwaiters];
        hand_out(f, req, item);
    } else {
        assert_true(f->nitems < MAXQ);
        f->items[f->nitems++] = item;
    }
    pthread_mutex_unlock(&f->mu);
}

static void fake_push(struct fake *f, const char *id, const char *script, int timeout_s)
{
    json_t *item =
        json_pack("{s:s, s:s, s:i, s:s, s:s, s:{s:s, s:s}, s:i, s:n, s:n, s:s, s:s}", "fragment_id",
                  id, "chain_id", "chain-1", "attempt", 1, "name", id, "run_script", script, "env",
                  "VULCAN_FRAGMENT_ID", id, "GREETING", "hi there", "timeout_s", timeout_s,
                  "repository_url", "commit_sha", "branch", "main", "machine", "linux");
    fake_push_item(f, item);
}

static bool wait_for(struct fake *f, int *counter, int n, int64_t timeout_ms)
{
    int64_t end = now_ms() + timeout_ms;
    for (;;) {
        pthread_mutex_lock(&f->mu);
        int v = *counter;
        pthread_mutex_unlock(&f->mu);
        if (v >= n)
            return true;
        if (now_ms() > end)
            return false;
        usleep(20000);
    }
}

/* The recorded result for fragment `id` (borrowed), or NULL. */
static struct fake_result *result_of(struct fake *f, const char *id)
{
    for (int i = 0; i < f->nresults; i++)
        if (strcmp(json_string_value(json_object_get(f->results[i].body, "fragment_id")), id) == 0)
            return &f->results[i];
    return NULL;
}

static struct fake_log *log_of(struct fake *f, const char *id)
{
    for (int i = 0; i < f->nlogs; i++)
        if (strcmp(f->logs[i].id, id) == 0)
            return &f->logs[i];
    return NULL;
}

static const char *rstr(struct fake_result *r, const char *k)
{
    return json_string_value(json_object_get(r->body, k));
}

static json_int_t rnum(struct fake_result *r, const char *k)
{
    return json_integer_value(json_object_get(r->body, k));
}

static bool rbool(struct fake_result *r, const char *k)
{
    return json_is_true(json_object_get(r->body, k));
}

/* ---------------------------------------------------------------- Agent harness */

struct agent {
    struct vk_worker *w;
    pthread_t thread;
    int rc;
    atomic_bool returned;
    int64_t returned_ms;
};

static void *agent_main(void *arg)
{
    struct agent *a = arg;
    struct vk_err err;
    a->rc = vk_worker_run(a->w, &err);
    a->returned_ms = now_ms();
    atomic_store(&a->returned, true);
    return NULL;
}

static struct agent *agent_start(struct fake *f, unsigned concurrency, int64_t grace_ms,
                                 unsigned wait_s)
{
    struct agent *a = calloc(1, sizeof(*a));
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u", f->port);
    const char *groups[] = {"linux", "arm"};
    struct vk_worker_opts o = {.server_url = url,
                               .groups = groups,
                               .ngroups = 2,
                               .name = "test-worker",
                               .concurrency = concurrency,
                               .work_dir = g_work,
                               .sandbox = VK_EXEC_SANDBOX_NONE,
                               .wait_s = wait_s ? wait_s : 2,
                               .grace_ms = grace_ms,
                               .no_cgroups = true};
    struct vk_err err;
    if (vk_worker_new(&o, &a->w, &err) != 0)
        fail_msg("worker_new: %s", err.msg);
    assert_int_equal(pthread_create(&a->thread, NULL, agent_main, a), 0);
    return a;
}

/* Stop the agent and wait; returns how long vk_worker_run took to return. */
static int64_t agent_stop(struct agent *a)
{
    int64_t t0 = now_ms();
    vk_worker_stop(a->w);
    pthread_join(a->thread, NULL);
    assert_int_equal(a->rc, 0);
    return a->returned_ms - t0;
}

static void agent_free(struct agent *a)
{
    vk_worker_free(a->w);
    free(a);
}

/* ---------------------------------------------------------------- Tests */

/* The fake counts a registration when it answers; the agent takes the id from the answer
 * a moment later (long enough to see under ThreadSanitizer): wait for `want`. */
static void wait_id(struct agent *a, const char *want)
{
    char id[64] = "";
    for (int i = 0; i < 500 * VK_TEST_SLOWDOWN; i++) {
        vk_worker_id(a->w, id, sizeof(id));
        if (strcmp(id, want) == 0)
            break;
        usleep(10000);
    }
    assert_string_equal(id, want);
}

static void test_register_retry_when_server_starts_late(void **state)
{
    (void)state;
    struct fake *f = fake_new();
    struct agent *a = agent_start(f, 1, 0, 2);
    usleep(1000000); /* the agent keeps failing to connect meanwhile */
    assert_int_equal(f->registers, 0);
    fake_start(f);
    assert_true(wait_for(f, &f->registers, 1, 8000));
    pthread_mutex_lock(&f->mu);
    json_t *r = f->last_register;
    assert_string_equal(json_string_value(json_object_get(r, "machine_group")), "linux");
    json_t *groups = json_object_get(r, "machine_groups");
    assert_int_equal(json_array_size(groups), 2);
    assert_string_equal(json_string_value(json_array_get(groups, 1)), "arm");
    assert_string_equal(json_string_value(json_object_get(r, "name")), "test-worker");
    assert_true(json_is_string(json_object_get(r, "version")));
    pthread_mutex_unlock(&f->mu);
    wait_id(a, "w-1");
    /* It heartbeats with the id it got. */
    int hb = f->heartbeats;
    assert_true(wait_for(f, &f->heartbeats, hb + 1, 3000));
    agent_stop(a);
    assert_int_equal(f->deregisters, 1);
    agent_free(a);
    fake_free(f);
}

static void test_output_complete_in_order(void **state)
{
    (void)state;
    struct fake *f = fake_new();
    fake_start(f);
    struct agent *a = agent_start(f, 1, 0, 2);
    assert_true(wait_for(f, &f->registers, 1, 5000));
    /* ~190 KB of numbered lines, then the environment it got. */
    fake_push(f, "frag-out",
              "i=0; while [ $i -lt 20000 ]; do echo \"line $i\"; i=$((i+1)); done\n"
              "echo \"env:$GREETING:$VULCAN_FRAGMENT_ID:${HOSTNAME_NOT_SET:-unset}\"",
              0);
    assert_true(wait_for(f, &f->nresults, 1, 20000));
    pthread_mutex_lock(&f->mu);
    struct fake_result *r = result_of(f, "frag-out");
    assert_non_null(r);
    assert_true(rbool(r, "success"));
    assert_int_equal(rnum(r, "exit_code"), 0);
    assert_string_equal(rstr(r, "error_message"), "");
    assert_string_equal(rstr(r, "worker_id"), "w-1");
    assert_int_equal(rnum(r, "attempt"), 1);
    assert_false(rbool(r, "handback"));
    struct fake_log *l = log_of(f, "frag-out");
    assert_non_null(l);
    assert_false(l->bad_offset);
    struct vk_buf want = VK_BUF_INIT(1u << 24);
    for (int i = 0; i < 20000; i++)
        assert_int_equal(vk_buf_addf(&want, "line %d\n", i), 0);
    assert_int_equal(vk_buf_adds(&want, "env:hi there:frag-out:unset\n"), 0);
    assert_int_equal(l->data.len, want.len);
    assert_memory_equal(l->data.data, want.data, want.len);
    vk_buf_release(&want);
    pthread_mutex_unlock(&f->mu);
    struct vk_worker_stats st;
    vk_worker_get_stats(a->w, &st);
    assert_int_equal(st.attempts_run, 1);
    assert_int_equal(st.results_posted, 1);
    agent_stop(a);
    agent_free(a);
    fake_free(f);
}

/* Attempts that print nothing start no uploader and send no log request; the slot's
 * upload state is reset between attempts (quiet, loud, quiet on one slot). */
static void test_quiet_attempts_send_no_log(void **state)
{
    (void)state;
    struct fake *f = fake_new();
    fake_start(f);
    struct agent *a = agent_start(f, 1, 0, 2);
    assert_true(wait_for(f, &f->registers, 1, 5000));
    fake_push(f, "frag-quiet1", "true", 0);
    fake_push(f, "frag-loud", "echo loud", 0);
    fake_push(f, "frag-quiet2", "true\n", 0);
    assert_true(wait_for(f, &f->nresults, 3, 15000));
    pthread_mutex_lock(&f->mu);
    const char *ids[] = {"frag-quiet1", "frag-loud", "frag-quiet2"};
    for (int i = 0; i < 3; i++) {
        struct fake_result *r = result_of(f, ids[i]);
        assert_non_null(r);
        assert_true(rbool(r, "success"));
    }
    assert_null(log_of(f, "frag-quiet1"));
    assert_null(log_of(f, "frag-quiet2"));
    struct fake_log *l = log_of(f, "frag-loud");
    assert_non_null(l);
    assert_int_equal(l->data.len, 5);
    assert_memory_equal(l->data.data, "loud\n", 5);
    pthread_mutex_unlock(&f->mu);
    struct vk_worker_stats st;
    vk_worker_get_stats(a->w, &st);
    assert_int_equal(st.attempts_run, 3);
    assert_int_equal(st.log_bytes_sent, 5);
    agent_stop(a);
    agent_free(a);
    fake_free(f);
}

static void test_output_arrives_progressively(void **state)
{
    (void)state;
    struct fake *f = fake_new();
    fake_start(f);
    struct agent *a = agent_start(f, 1, 0, 2);
    assert_true(wait_for(f, &f->registers, 1, 5000));
    fake_push(f, "frag-slow", "for i in 1 2 3; do echo $i; sleep 1; done", 0);
    assert_true(wait_for(f, &f->nresults, 1, 15000));
    pthread_mutex_lock(&f->mu);
    struct fake_log *l = log_of(f, "frag-slow");
    struct fake_result *r = result_of(f, "frag-slow");
    assert_non_null(l);
    assert_non_null(r);
    assert_true(rbool(r, "success"));
    assert_false(l->bad_offset);
    assert_int_equal(l->data.len, 6);
    assert_memory_equal(l->data.data, "1\n2\n3\n", 6);
    /* The first chunk came at least a second before the script ended. */
    assert_true(r->t_ms - l->first_ms >= 1000);
    assert_true(l->chunks >= 2);
    assert_true(l->first_ms - f->handed_ms[0] < 2000);
    pthread_mutex_unlock(&f->mu);
    agent_stop(a);
    agent_free(a);
    fake_free(f);
}

static void test_result_fields(void **state)
{
    (void)state;
    struct fake *f = fake_new();
    fake_start(f);
    struct agent *a = agent_start(f, 3, 0, 2);
    assert_true(wait_for(f, &f->registers, 1, 5000));
    fake_push(f, "frag-fail", "echo failing; exit 3", 0);
    fake_push(f, "frag-timeout", "sleep 10", 1);
    fake_push(f, "frag-signal", "kill -9 $$", 0);
    assert_true(wait_for(f, &f->nresults, 3, 15000));
    pthread_mutex_lock(&f->mu);
    struct fake_result *r = result_of(f, "frag-fail");
    assert_false(rbool(r, "success"));
    assert_int_equal(rnum(r, "exit_code"), 3);
    assert_string_equal(rstr(r, "error_message"), "exit status 3");
    r = result_of(f, "frag-timeout");
    assert_false(rbool(r, "success"));
    assert_string_equal(rstr(r, "error_message"), "timed out after 1s");
    r = result_of(f, "frag-signal");
    assert_false(rbool(r, "success"));
    assert_int_equal(rnum(r, "exit_code"), -1);
    assert_string_equal(rstr(r, "error_message"), "killed by signal 9");
    pthread_mutex_unlock(&f->mu);
    agent_stop(a);
    agent_free(a);
    fake_free(f);
}

static void test_cancel_via_heartbeat(void **state)
{
    (void)state;
    struct fake *f = fake_new();
    fake_start(f);
    struct agent *a = agent_start(f, 1, 0, 2);
    assert_true(wait_for(f, &f->registers, 1, 5000));
    fake_push(f, "frag-cancel", "echo started; sleep 30", 0);
    assert_true(wait_for(f, &f->nhanded, 1, 5000));
    usleep(300000);
    int64_t t0 = now_ms();
    pthread_mutex_lock(&f->mu);
    snprintf(f->cancel_id, sizeof(f->cancel_id), "frag-cancel");
    pthread_mutex_unlock(&f->mu);
    assert_true(wait_for(f, &f->nresults, 1, 10000));
    /* heartbeat every 1 s, then SIGTERM ends sleep at once */
    assert_true(now_ms() - t0 < 4000);
    pthread_mutex_lock(&f->mu);
    struct fake_result *r = result_of(f, "frag-cancel");
    assert_false(rbool(r, "success"));
    assert_string_equal(rstr(r, "error_message"), "cancelled");
    assert_false(rbool(r, "handback"));
    struct fake_log *l = log_of(f, "frag-cancel");
    assert_non_null(l);
    assert_memory_equal(l->data.data, "started\n", 8);
    pthread_mutex_unlock(&f->mu);
    agent_stop(a);
    agent_free(a);
    fake_free(f);
}

static void test_stale_log_cancels_run(void **state)
{
    (void)state;
    struct fake *f = fake_new();
    fake_start(f);
    snprintf(f->refuse_log_id, sizeof(f->refuse_log_id), "frag-stale");
    struct agent *a = agent_start(f, 1, 0, 2);
    assert_true(wait_for(f, &f->registers, 1, 5000));
    int64_t t0 = now_ms();
    fake_push(f, "frag-stale", "while true; do echo tick; sleep 0.2; done", 0);
    assert_true(wait_for(f, &f->nresults, 1, 10000));
    assert_true(now_ms() - t0 < 5000);
    pthread_mutex_lock(&f->mu);
    struct fake_result *r = result_of(f, "frag-stale");
    assert_string_equal(rstr(r, "error_message"), "cancelled");
    assert_null(log_of(f, "frag-stale"));
    pthread_mutex_unlock(&f->mu);
    agent_stop(a);
    agent_free(a);
    fake_free(f);
}

static void test_register_again_after_409(void **state)
{
    (void)state;
    struct fake *f = fake_new();
    fake_start(f);
    struct agent *a = agent_start(f, 1, 0, 2);
    assert_true(wait_for(f, &f->registers, 1, 5000));
    pthread_mutex_lock(&f->mu);
    f->hb_409_once = true;
    pthread_mutex_unlock(&f->mu);
    assert_true(wait_for(f, &f->registers, 2, 8000));
    usleep(300000);
    pthread_mutex_lock(&f->mu);
    assert_int_equal(f->registers, 2); /* once, although two threads saw the id vanish */
    pthread_mutex_unlock(&f->mu);
    wait_id(a, "w-2");
    fake_push(f, "frag-after", "echo ok", 0);
    assert_true(wait_for(f, &f->nresults, 1, 10000));
    pthread_mutex_lock(&f->mu);
    struct fake_result *r = result_of(f, "frag-after");
    assert_true(rbool(r, "success"));
    assert_string_equal(rstr(r, "worker_id"), "w-2");
    pthread_mutex_unlock(&f->mu);
    struct vk_worker_stats st;
    vk_worker_get_stats(a->w, &st);
    assert_int_equal(st.registrations, 2);
    agent_stop(a);
    agent_free(a);
    fake_free(f);
}

static void test_concurrency_two_overlap(void **state)
{
    (void)state;
    struct fake *f = fake_new();
    fake_start(f);
    struct agent *a = agent_start(f, 2, 0, 2);
    assert_true(wait_for(f, &f->registers, 1, 5000));
    usleep(200000); /* both slots are polling */
    int64_t t0 = now_ms();
    fake_push(f, "frag-a", "sleep 1.5; echo a", 0);
    fake_push(f, "frag-b", "sleep 1.5; echo b", 0);
    assert_true(wait_for(f, &f->nresults, 2, 10000));
    int64_t took = now_ms() - t0;
    pthread_mutex_lock(&f->mu);
    assert_int_equal(f->nhanded, 2);
    /* Both were handed out before either finished: they ran at the same time. */
    int64_t first_result = f->results[0].t_ms;
    assert_true(f->handed_ms[1] < first_result);
    assert_true(f->handed_ms[0] < first_result);
    /* the overlap above is what proves they ran at once; this only says nothing hung */
    assert_true(took < 2900 * VK_TEST_SLOWDOWN);
    assert_true(rbool(result_of(f, "frag-a"), "success"));
    assert_true(rbool(result_of(f, "frag-b"), "success"));
    assert_memory_equal(log_of(f, "frag-a")->data.data, "a\n", 2);
    assert_memory_equal(log_of(f, "frag-b")->data.data, "b\n", 2);
    pthread_mutex_unlock(&f->mu);
    agent_stop(a);
    agent_free(a);
    fake_free(f);
}

static void test_stop_idle_is_prompt(void **state)
{
    (void)state;
    struct fake *f = fake_new();
    fake_start(f);
    struct agent *a = agent_start(f, 2, 0, 30); /* long-polls of 30 s */
    assert_true(wait_for(f, &f->registers, 1, 5000));
    usleep(300000);
    int64_t took = agent_stop(a);
    assert_true(took < 2500 * VK_TEST_SLOWDOWN);
    assert_int_equal(f->deregisters, 1);
    agent_free(a);
    fake_free(f);
}

static void test_stop_lets_running_fragment_finish(void **state)
{
    (void)state;
    struct fake *f = fake_new();
    fake_start(f);
    struct agent *a = agent_start(f, 1, 0, 2); /* default grace 60 s */
    assert_true(wait_for(f, &f->registers, 1, 5000));
    fake_push(f, "frag-grace", "sleep 2; echo finished", 0);
    assert_true(wait_for(f, &f->nhanded, 1, 5000));
    usleep(300000);
    int64_t took = agent_stop(a);
    assert_true(took >= 1200);
    assert_true(took < 8000 * VK_TEST_SLOWDOWN);
    pthread_mutex_lock(&f->mu);
    assert_int_equal(f->nresults, 1);
    struct fake_result *r = result_of(f, "frag-grace");
    assert_true(rbool(r, "success"));
    assert_false(rbool(r, "handback"));
    assert_memory_equal(log_of(f, "frag-grace")->data.data, "finished\n", 9);
    assert_int_equal(f->deregisters, 1);
    assert_true(f->deregister_seq > r->seq);
    assert_int_equal(f->nhanded, 1); /* no new work taken while stopping */
    pthread_mutex_unlock(&f->mu);
    agent_free(a);
    fake_free(f);
}

static void test_stop_hands_back_after_grace(void **state)
{
    (void)state;
    struct fake *f = fake_new();
    fake_start(f);
    struct agent *a = agent_start(f, 1, 500, 2);
    assert_true(wait_for(f, &f->registers, 1, 5000));
    fake_push(f, "frag-long", "echo begin; sleep 30", 0);
    assert_true(wait_for(f, &f->nhanded, 1, 5000));
    usleep(300000);
    int64_t took = agent_stop(a);
    assert_true(took >= 400);
    assert_true(took < 6000 * VK_TEST_SLOWDOWN);
    pthread_mutex_lock(&f->mu);
    assert_int_equal(f->nresults, 1);
    struct fake_result *r = result_of(f, "frag-long");
    assert_true(rbool(r, "handback"));
    assert_int_equal(rnum(r, "attempt"), 1);
    assert_int_equal(f->deregisters, 1);
    assert_true(f->deregister_seq > r->seq);
    pthread_mutex_unlock(&f->mu);
    struct vk_worker_stats st;
    vk_worker_get_stats(a->w, &st);
    assert_int_equal(st.handbacks, 1);
    agent_free(a);
    fake_free(f);
}

static void test_second_stop_skips_grace(void **state)
{
    (void)state;
    struct fake *f = fake_new();
    fake_start(f);
    struct agent *a = agent_start(f, 1, 0, 2); /* grace 60 s */
    assert_true(wait_for(f, &f->registers, 1, 5000));
    fake_push(f, "frag-long2", "sleep 30", 0);
    assert_true(wait_for(f, &f->nhanded, 1, 5000));
    usleep(300000);
    int64_t t0 = now_ms();
    vk_worker_stop(a->w);
    usleep(200000);
    vk_worker_stop(a->w);
    pthread_join(a->thread, NULL);
    assert_true(a->returned_ms - t0 < 5000);
    pthread_mutex_lock(&f->mu);
    struct fake_result *r = result_of(f, "frag-long2");
    assert_non_null(r);
    assert_true(rbool(r, "handback"));
    pthread_mutex_unlock(&f->mu);
    agent_free(a);
    fake_free(f);
}

static void test_bad_options(void **state)
{
    (void)state;
    struct vk_worker *w = NULL;
    struct vk_err err;
    struct vk_worker_opts o = {.work_dir = g_work};
    assert_int_equal(vk_worker_new(&o, &w, &err), VK_EINVAL);
    const char *groups[] = {"g"};
    o.groups = groups;
    o.ngroups = 1;
    o.server_url = "ftp://x";
    assert_int_equal(vk_worker_new(&o, &w, &err), VK_EINVAL);
    o.server_url = NULL;
    assert_int_equal(vk_worker_new(&o, &w, &err), 0);
    /* stop before run: run returns at once without talking to anyone */
    vk_worker_stop(w);
    assert_int_equal(vk_worker_run(w, &err), 0);
    vk_worker_free(w);
}

static void test_result_survives_server_restart(void **state)
{
    (void)state;
    struct fake *f = fake_new();
    fake_start(f);
    struct agent *a = agent_start(f, 1, 0, 2);
    assert_true(wait_for(f, &f->registers, 1, 5000));
    fake_push(f, "frag-restart", "echo a; sleep 2; echo b", 0);
    assert_true(wait_for(f, &f->nhanded, 1, 5000));
    usleep(300000);
    /* The server goes away while the script runs, and forgets the worker. */
    vk_http_server_free(f->srv);
    f->srv = NULL;
    pthread_mutex_lock(&f->mu);
    f->cur_id[0] = '\0';
    f->nwaiters = 0;
    pthread_mutex_unlock(&f->mu);
    usleep(2700000); /* the script ends meanwhile; posting its result fails */
    assert_int_equal(f->nresults, 0);
    fake_start(f);
    assert_true(wait_for(f, &f->nresults, 1, 10000));
    pthread_mutex_lock(&f->mu);
    struct fake_result *r = result_of(f, "frag-restart");
    assert_true(rbool(r, "success"));
    assert_string_equal(rstr(r, "worker_id"), "w-1");
    pthread_mutex_unlock(&f->mu);
    /* and it registers again with the server that forgot it */
    assert_true(wait_for(f, &f->registers, 2, 5000));
    agent_stop(a);
    agent_free(a);
    fake_free(f);
}

static void test_invalid_item_reported(void **state)
{
    (void)state;
    struct fake *f = fake_new();
    fake_start(f);
    struct agent *a = agent_start(f, 1, 0, 2);
    assert_true(wait_for(f, &f->registers, 1, 5000));
    fake_push_item(f, json_pack("{s:s, s:i}", "fragment_id", "frag-noscript", "attempt", 2));
    assert_true(wait_for(f, &f->nresults, 1, 8000));
    pthread_mutex_lock(&f->mu);
    struct fake_result *r = result_of(f, "frag-noscript");
    assert_false(rbool(r, "success"));
    assert_int_equal(rnum(r, "attempt"), 2);
    assert_string_equal(rstr(r, "error_message"), "invalid work item: work item has no run_script");
    pthread_mutex_unlock(&f->mu);
    /* numbers and booleans in env become text; null is skipped */
    fake_push_item(f, json_pack("{s:s, s:i, s:s, s:{s:i, s:b, s:n}}", "fragment_id", "frag-env",
                                "attempt", 1, "run_script", "echo \"$N/$B/${Z-unset}\"", "env", "N",
                                5, "B", 1, "Z"));
    assert_true(wait_for(f, &f->nresults, 2, 8000));
    pthread_mutex_lock(&f->mu);
    assert_true(rbool(result_of(f, "frag-env"), "success"));
    struct fake_log *l = log_of(f, "frag-env");
    assert_non_null(l);
    assert_string_equal(l->data.data, "5/true/unset\n");
    pthread_mutex_unlock(&f->mu);
    agent_stop(a);
    agent_free(a);
    fake_free(f);
}

/* The job token, each secrets[].value and the variables carrying them are masked before
 * the output leaves the worker; a secret that cannot be masked fails the attempt. */
static void test_secrets_masked_before_upload(void **state)
{
    (void)state;
    struct fake *f = fake_new();
    fake_start(f);
    struct agent *a = agent_start(f, 1, 0, 2);
    assert_true(wait_for(f, &f->registers, 1, 5000));
    const char *secret = "npm_s3cr3t/+=value"; /* 18 bytes: base64 without padding */
    fake_push_item(f, json_pack("{s:s, s:i, s:s, s:s, s:{s:s, s:s, s:s}, s:[{s:s, s:s, s:b}, "
                                "{s:s, s:s, s:b}]}",
                                "fragment_id", "frag-sec", "attempt", 1, "job_token",
                                "vk_job_0123456789abcdefXYZ", "run_script",
                                "echo \"a $NPM_TOKEN b\"; printf %s \"$NPM_TOKEN\" | base64; "
                                "printf 'jt=%s\\n' \"$VULCAN_ID_TOKEN_REQUEST_TOKEN\" >&2; "
                                "echo \"kc=$KUBECONFIG\"; echo 'clusters: [prod]'; echo plain",
                                "env", "NPM_TOKEN", secret, "VULCAN_ID_TOKEN_REQUEST_TOKEN",
                                "vk_job_0123456789abcdefXYZ", "KUBECONFIG", "/k", "secrets", "name",
                                "NPM_TOKEN", "value", secret, "file", 0, "name", "KUBECONFIG",
                                "value", "apiVersion: v1\nclusters: [prod]\n", "file", 1));
    assert_true(wait_for(f, &f->nresults, 1, 8000));
    pthread_mutex_lock(&f->mu);
    assert_true(rbool(result_of(f, "frag-sec"), "success"));
    struct fake_log *l = log_of(f, "frag-sec");
    assert_non_null(l);
    /* A secret-file's variable is its path (not masked): the worker's own file for the
     * attempt, whatever the item's env said; the file's lines are masked. */
    char want[1024];
    snprintf(want, sizeof(want),
             "a *** b\n***\njt=***\nkc=%s/run/frag-sec-1/secrets/KUBECONFIG\n***\nplain\n", g_work);
    assert_string_equal(l->data.data, want);
    pthread_mutex_unlock(&f->mu);
    fake_push_item(f, json_pack("{s:s, s:i, s:s, s:[{s:s, s:s}]}", "fragment_id", "frag-short",
                                "attempt", 1, "run_script", "echo never", "secrets", "name", "PIN",
                                "value", "1234"));
    assert_true(wait_for(f, &f->nresults, 2, 8000));
    pthread_mutex_lock(&f->mu);
    struct fake_result *r = result_of(f, "frag-short");
    assert_false(rbool(r, "success"));
    assert_non_null(strstr(rstr(r, "error_message"), "secret 'PIN' cannot be masked"));
    assert_null(log_of(f, "frag-short"));
    pthread_mutex_unlock(&f->mu);
    agent_stop(a);
    agent_free(a);
    fake_free(f);
}

static int setup(void **state)
{
    (void)state;
    snprintf(g_work, sizeof(g_work), "/tmp/vk-agent-test-XXXXXX");
    if (!mkdtemp(g_work))
        return -1;
    vk_log_configure(VK_LOG_ERROR, VK_LOG_TEXT, -1);
    if (getenv("VK_TEST_VERBOSE"))
        vk_log_configure(VK_LOG_DEBUG, VK_LOG_TEXT, -1);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    (void)vk__exec_rmtree(g_work, NULL);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_options),
        cmocka_unit_test(test_secrets_masked_before_upload),
        cmocka_unit_test(test_register_retry_when_server_starts_late),
        cmocka_unit_test(test_output_complete_in_order),
        cmocka_unit_test(test_quiet_attempts_send_no_log),
        cmocka_unit_test(test_output_arrives_progressively),
        cmocka_unit_test(test_result_fields),
        cmocka_unit_test(test_cancel_via_heartbeat),
        cmocka_unit_test(test_stale_log_cancels_run),
        cmocka_unit_test(test_register_again_after_409),
        cmocka_unit_test(test_concurrency_two_overlap),
        cmocka_unit_test(test_stop_idle_is_prompt),
        cmocka_unit_test(test_stop_lets_running_fragment_finish),
        cmocka_unit_test(test_stop_hands_back_after_grace),
        cmocka_unit_test(test_second_stop_skips_grace),
        cmocka_unit_test(test_result_survives_server_restart),
        cmocka_unit_test(test_invalid_item_reported),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
