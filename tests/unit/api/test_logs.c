/*
 * The followed log (Server-Sent Events): live output while the fragment runs,
 * status and end events, UTF-8 cut by an upload boundary, invalid bytes,
 * resuming with ?offset= and Last-Event-ID, a new attempt, the follower cap's
 * bookkeeping, and a client that goes away.
 */
#include "api_test.h"

#include <pthread.h>

/* What a follower received, parsed. */
struct got {
    struct vk_buf raw;
    struct vk_buf text; /* the "text" of every log event, in order */
    char events[64][16];
    size_t nevents;
    char last_id[64];
    long long log_events_before_final; /* log events seen before the final status */
    bool final_seen;
    int stop_after_events; /* > 0: stop the transfer after this many events */
};

static void parse(struct got *g)
{
    char *p = g->raw.data;
    char *end;
    size_t consumed = 0;
    while ((end = strstr(p, "\n\n")) != NULL) {
        *end = '\0';
        char ev[16] = "";
        const char *data = NULL;
        for (char *line = strtok(p, "\n"); line; line = strtok(NULL, "\n")) {
            if (strncmp(line, "event: ", 7) == 0)
                snprintf(ev, sizeof(ev), "%s", line + 7);
            else if (strncmp(line, "data: ", 6) == 0)
                data = line + 6;
            else if (strncmp(line, "id: ", 4) == 0)
                snprintf(g->last_id, sizeof(g->last_id), "%s", line + 4);
        }
        if (ev[0] && g->nevents < 64)
            snprintf(g->events[g->nevents++], 16, "%s", ev);
        json_error_t je;
        json_t *d = data ? json_loads(data, JSON_ALLOW_NUL, &je) : NULL;
        if (data && !d)
            fail_msg("event data is not JSON: %s", data);
        if (strcmp(ev, "log") == 0) {
            json_t *t = json_object_get(d, "text");
            assert_true(json_is_string(t));
            assert_int_equal(vk_buf_add(&g->text, json_string_value(t), json_string_length(t)), 0);
            if (!g->final_seen)
                g->log_events_before_final++;
        } else if (strcmp(ev, "status") == 0 || strcmp(ev, "end") == 0) {
            const char *st = js(d, "status");
            if (st && strcmp(st, "running") != 0)
                g->final_seen = true;
        }
        json_decref(d);
        p = end + 2;
        consumed = (size_t)(p - g->raw.data);
    }
    if (consumed) {
        memmove(g->raw.data, g->raw.data + consumed, g->raw.len - consumed);
        g->raw.len -= consumed;
        g->raw.data[g->raw.len] = '\0';
    }
}

static int on_chunk(void *ctx, const char *data, size_t len)
{
    struct got *g = ctx;
    if (vk_buf_add(&g->raw, data, len) < 0)
        return VK_ETOOBIG;
    parse(g);
    if (g->stop_after_events && (int)g->nevents >= g->stop_after_events)
        return VK_ECONFLICT;
    return 0;
}

static long follow(struct vk_http_client *cl, const char *path, struct got *g)
{
    vk_buf_init(&g->raw, 16u << 20);
    vk_buf_init(&g->text, 16u << 20);
    long st = 0;
    struct vk_err err;
    int rc = vk_http_client_stream(cl, path, 20000, on_chunk, g, &st, &err);
    assert_true(rc == 0 || rc == VK_ECONFLICT);
    return st;
}

static void got_release(struct got *g)
{
    vk_buf_release(&g->raw);
    vk_buf_release(&g->text);
}

struct producer {
    struct env *e;
    char wid[VK_UUID_LEN], fid[VK_UUID_LEN];
    int attempt;
    char failure[600]; /* what went wrong in the thread ("" when nothing): asserted after join */
};

/* One request from the producer thread, which must not call cmocka: a failure is recorded. */
static bool produce_call(struct producer *p, struct vk_http_client *cl, const char *path,
                         const char *type, const void *body, size_t len, long want)
{
    struct vk_http_response resp;
    struct vk_err err;
    if (vk_http_client_request(cl, "POST", path, type, body, len, 0, &resp, &err) != 0) {
        snprintf(p->failure, sizeof(p->failure), "POST %s: %s", path, err.msg);
        return false;
    }
    long st = resp.status;
    vk_http_response_release(&resp);
    if (st != want)
        snprintf(p->failure, sizeof(p->failure), "POST %s: status %ld, expected %ld", path, st,
                 want);
    return st == want;
}

static void *produce(void *arg)
{
    struct producer *p = arg;
    struct vk_http_client *cl = NULL;
    struct vk_http_client_opts o = {.base_url = p->e->base, .timeout_ms = 30000};
    struct vk_err err;
    if (vk_http_client_new(&o, &cl, &err) != 0) {
        snprintf(p->failure, sizeof(p->failure), "client: %s", err.msg);
        return NULL;
    }
    /* Pieces with pauses; "é" (c3 a9) is cut between two uploads; one invalid byte. */
    const char *pieces[] = {"first line\n", "x\xc3", "\xa9y\n", "bad \xff byte\n", "last\n"};
    long long off = 0;
    bool ok = true;
    for (size_t i = 0; ok && i < VK_ARRAY_LEN(pieces); i++) {
        usleep(250 * 1000);
        size_t n = strlen(pieces[i]);
        char path[256];
        snprintf(path, sizeof(path), "/api/v1/work/%s/log?attempt=%d&offset=%lld", p->fid,
                 p->attempt, off);
        ok = produce_call(p, cl, path, "application/octet-stream", pieces[i], n, 204);
        off += (long long)n;
    }
    usleep(200 * 1000);
    char body[256];
    snprintf(body, sizeof(body),
             "{\"worker_id\":\"%s\",\"fragment_id\":\"%s\",\"attempt\":%d,\"success\":true,"
             "\"exit_code\":0}",
             p->wid, p->fid, p->attempt);
    if (ok)
        (void)produce_call(p, cl, "/api/v1/work/result", "application/json", body, strlen(body),
                           200);
    vk_http_client_free(cl);
    return NULL;
}

static void test_follow_live(void **state)
{
    struct env *e = *state;
    char id[VK_UUID_LEN];
    struct producer p = {.e = e};
    submit(e, "follow.kdl", "main", "true", id);
    worker_register(e, p.wid);
    p.attempt = worker_claim(e->cl, p.wid, p.fid);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, produce, &p), 0);
    char path[256];
    snprintf(path, sizeof(path), "/api/v1/fragments/%s/log?follow=1", p.fid);
    struct got g = {.nevents = 0};
    int64_t t0 = vk_time_now_ms();
    assert_int_equal(follow(e->cl, path, &g), 200);
    pthread_join(th, NULL);
    if (p.failure[0])
        fail_msg("producer: %s", p.failure);
    /* Output arrived while the fragment ran, in several events, and the stream ended by itself. */
    assert_true(g.log_events_before_final >= 3);
    assert_string_equal(g.events[0], "status");
    assert_string_equal(g.events[g.nevents - 1], "end");
    assert_string_equal(g.events[g.nevents - 2], "status");
    assert_string_equal(g.text.data, "first line\nx\xc3\xa9y\nbad \xef\xbf\xbd byte\nlast\n");
    assert_true(vk_time_now_ms() - t0 < 10000);
    /* The last id resumes after everything: attempt 1, byte 32. */
    assert_string_equal(g.last_id, "1:32");
    got_release(&g);

    /* Resume: from an offset, and with Last-Event-ID (what EventSource sends). */
    snprintf(path, sizeof(path), "/api/v1/fragments/%s/log?follow=1&offset=11", p.fid);
    memset(&g, 0, sizeof(g));
    assert_int_equal(follow(e->cl, path, &g), 200);
    assert_string_equal(g.text.data, "x\xc3\xa9y\nbad \xef\xbf\xbd byte\nlast\n");
    got_release(&g);
    struct vk_http_client *c2 = env_client(e);
    assert_int_equal(vk_http_client_set_header(c2, "Last-Event-ID", "1:27"), 0);
    snprintf(path, sizeof(path), "/api/v1/fragments/%s/log?follow=1", p.fid);
    memset(&g, 0, sizeof(g));
    assert_int_equal(follow(c2, path, &g), 200);
    assert_string_equal(g.text.data, "last\n");
    got_release(&g);
    assert_int_equal(vk_http_client_set_header(c2, "Last-Event-ID", "garbage"), 0);
    assert_int_equal(call(c2, "GET", path, NULL, NULL), 400);
    vk_http_client_free(c2);
    /* An attempt that does not exist yet. */
    snprintf(path, sizeof(path), "/api/v1/fragments/%s/log?follow=1&attempt=9", p.fid);
    assert_int_equal(call(e->cl, "GET", path, NULL, NULL), 404);
}

static void test_follow_new_attempt(void **state)
{
    struct env *e = *state;
    char id[VK_UUID_LEN], wid[VK_UUID_LEN], fid[VK_UUID_LEN], fid2[VK_UUID_LEN];
    submit(e, "handback.kdl", "main", "true", id);
    worker_register(e, wid);
    int attempt = worker_claim(e->cl, wid, fid);
    assert_int_equal(worker_log(e->cl, fid, attempt, 0, "one\n", 4), 204);
    /* Follow from another thread's point of view: read the first events, then hand back. */
    char path[256];
    snprintf(path, sizeof(path), "/api/v1/fragments/%s/log?follow=1&attempt=1", fid);
    /* A graceful hand-back puts the fragment back as attempt 2. */
    char body[256];
    snprintf(body, sizeof(body),
             "{\"worker_id\":\"%s\",\"fragment_id\":\"%s\",\"attempt\":%d,\"success\":false,"
             "\"handback\":true}",
             wid, fid, attempt);
    assert_int_equal(call(e->cl, "POST", "/api/v1/work/result", body, NULL), 200);
    int a2 = worker_claim(e->cl, wid, fid2);
    assert_string_equal(fid2, fid);
    assert_int_equal(a2, 2);
    assert_int_equal(worker_log(e->cl, fid, a2, 0, "two\n", 4), 204);
    /* ?attempt=1 is over: its log, then end. */
    struct got g = {.nevents = 0};
    assert_int_equal(follow(e->cl, path, &g), 200);
    assert_string_equal(g.text.data, "one\n");
    assert_string_equal(g.events[g.nevents - 1], "end");
    got_release(&g);
    /* The latest attempt, resumed from Last-Event-ID of attempt 1: attempt 1's rest, an
     * "attempt" event, then attempt 2 as it goes. */
    struct vk_http_client *c2 = env_client(e);
    assert_int_equal(vk_http_client_set_header(c2, "Last-Event-ID", "1:2"), 0);
    snprintf(path, sizeof(path), "/api/v1/fragments/%s/log?follow=1", fid);
    memset(&g, 0, sizeof(g));
    assert_int_equal(worker_result(e->cl, wid, fid, a2, false), 200);
    assert_int_equal(follow(c2, path, &g), 200);
    assert_string_equal(g.text.data, "e\ntwo\n");
    bool saw_attempt = false;
    for (size_t i = 0; i < g.nevents; i++)
        saw_attempt |= strcmp(g.events[i], "attempt") == 0;
    assert_true(saw_attempt);
    assert_string_equal(g.last_id, "2:4");
    got_release(&g);
    vk_http_client_free(c2);
}

static void test_follow_client_goes_away(void **state)
{
    struct env *e = *state;
    char id[VK_UUID_LEN], wid[VK_UUID_LEN], fid[VK_UUID_LEN];
    submit(e, "gone.kdl", "main", "true", id);
    worker_register(e, wid);
    int attempt = worker_claim(e->cl, wid, fid);
    assert_int_equal(worker_log(e->cl, fid, attempt, 0, "a\n", 2), 204);
    char path[256];
    snprintf(path, sizeof(path), "/api/v1/fragments/%s/log?follow=1", fid);
    /* Several followers that leave after two events: their threads must end. */
    for (int i = 0; i < 5; i++) {
        struct vk_http_client *c = env_client(e);
        struct got g = {.stop_after_events = 2};
        assert_int_equal(follow(c, path, &g), 200);
        got_release(&g);
        vk_http_client_free(c);
    }
    int waited = 0;
    for (;;) {
        pthread_mutex_lock(&e->api->follow.lock);
        unsigned n = e->api->follow.n;
        pthread_mutex_unlock(&e->api->follow.lock);
        if (n == 0)
            break;
        assert_true(++waited < 100);
        usleep(50 * 1000);
    }
    /* One still following when the API stops (teardown) must not hang or leak. */
    struct vk_http_client *c = env_client(e);
    struct got g = {.stop_after_events = 2};
    assert_int_equal(follow(c, path, &g), 200);
    got_release(&g);
    vk_http_client_free(c);
}

/*
 * Regression (issue 12, for the fix of the last session): the log routes took a write
 * transaction (SQLite BEGIN IMMEDIATE, a chain row lock on PostgreSQL) just to read a
 * fragment. With the chain locked by a transaction that lasts, a log read and the first
 * events of a follow must still answer at once.
 */
static void test_log_reads_take_no_lock(void **state)
{
    struct env *e = *state;
    char id[VK_UUID_LEN], wid[VK_UUID_LEN], fid[VK_UUID_LEN];
    submit(e, "locked.kdl", "main", "true", id);
    worker_register(e, wid);
    int attempt = worker_claim(e->cl, wid, fid);
    assert_int_equal(worker_log(e->cl, fid, attempt, 0, "held\n", 5), 204);
    /* sqlite::memory: has one connection, so the lock cannot be held meanwhile: the
     * unit_api_test_logs_file and _pg runs (tests/unit/api/CMakeLists.txt) check this */
    const char *b = getenv("VK_TEST_STORE_BACKEND");
    if (!b) {
        print_message("(checked by the file and PostgreSQL runs of this test)\n");
        return;
    }
    struct vk_store_tx *tx = NULL;
    struct vk_err err = {0};
    struct vk_pool pool;
    vk_pool_init(&pool, 0);
    struct vk_store_fragment f;
    assert_int_equal(vk_store_tx_begin(e->store, &tx, &err), 0);
    assert_int_equal(vk_store_tx_fragment_get(tx, fid, &pool, &f, &err), 0); /* locks the chain */
    char path[256];
    snprintf(path, sizeof(path), "/api/v1/fragments/%s/log", fid);
    int64_t t0 = vk_time_mono_ns();
    char *body = NULL;
    struct vk_http_response resp;
    if (vk_http_client_request(e->cl, "GET", path, NULL, NULL, 0, 5000 * VK_TEST_SLOWDOWN, &resp,
                               &err) != 0)
        fail_msg("the log read waited for the chain's lock: %s", err.msg);
    int64_t ms = (vk_time_mono_ns() - t0) / 1000000;
    assert_int_equal(resp.status, 200);
    body = vk_buf_take(&resp.body, NULL);
    vk_http_response_release(&resp);
    print_message("log read with the chain locked: %lld ms\n", (long long)ms);
    assert_string_equal(body, "held\n");
    free(body);
    /* before the fix this waited for the lock: the busy timeout (5 s) or the transaction */
    assert_true(ms < 1000 * VK_TEST_SLOWDOWN);
    vk_store_tx_rollback(tx);
    vk_pool_release(&pool);
}

/* GET a log path; returns the status, *body (owned) and *len the body. */
static long get_log(struct env *e, const char *path, char **body, size_t *len)
{
    struct vk_http_response resp;
    struct vk_err err = {0};
    if (vk_http_client_request(e->cl, "GET", path, NULL, NULL, 0, 30000, &resp, &err) != 0)
        fail_msg("GET %s: %s", path, err.msg);
    long st = resp.status;
    *len = resp.body.len;
    *body = vk_buf_take(&resp.body, NULL);
    vk_http_response_release(&resp);
    return st;
}

/*
 * Issue 14 item 3: the plain log is streamed from the store in 64 KiB blocks. A log of
 * several chunks of odd sizes (the store's chunks do not line up with the blocks) reads
 * back byte for byte, whole and from an offset inside a chunk, on every backend.
 */
static void test_whole_log_streamed(void **state)
{
    struct env *e = *state;
    char id[VK_UUID_LEN], wid[VK_UUID_LEN], fid[VK_UUID_LEN];
    submit(e, "big.kdl", "main", "true", id);
    worker_register(e, wid);
    int attempt = worker_claim(e->cl, wid, fid);
    enum { TOTAL = 5 * 1024 * 1024 + 123, CHUNK = 700001 };
    char *log = malloc(TOTAL);
    for (size_t i = 0; i < TOTAL; i++)
        log[i] = (char)('a' + (i * 7 + i / 4093) % 26);
    for (size_t off = 0; off < TOTAL; off += CHUNK) {
        size_t n = TOTAL - off < CHUNK ? TOTAL - off : CHUNK;
        assert_int_equal(worker_log(e->cl, fid, attempt, (long long)off, log + off, n), 204);
    }
    char path[256], *body = NULL;
    size_t len = 0;
    snprintf(path, sizeof(path), "/api/v1/fragments/%s/log", fid);
    assert_int_equal(get_log(e, path, &body, &len), 200);
    assert_int_equal(len, TOTAL);
    assert_memory_equal(body, log, TOTAL);
    free(body);
    snprintf(path, sizeof(path), "/api/v1/fragments/%s/log?offset=%d", fid, CHUNK + 3);
    assert_int_equal(get_log(e, path, &body, &len), 200);
    assert_int_equal(len, TOTAL - (CHUNK + 3));
    assert_memory_equal(body, log + CHUNK + 3, len);
    free(body);
    snprintf(path, sizeof(path), "/api/v1/fragments/%s/log?offset=%d", fid, TOTAL + 10);
    assert_int_equal(get_log(e, path, &body, &len), 200);
    assert_int_equal(len, 0);
    free(body);
    free(log);
}

static void test_sse_encoding(void **state)
{
    /* complete_prefix and json_text are static in api_logs.c: check them through a
     * stored log with every byte value, followed to its end. */
    struct env *e = *state;
    char id[VK_UUID_LEN], wid[VK_UUID_LEN], fid[VK_UUID_LEN];
    submit(e, "bytes.kdl", "main", "true", id);
    worker_register(e, wid);
    int attempt = worker_claim(e->cl, wid, fid);
    unsigned char all[256];
    for (int i = 0; i < 256; i++)
        all[i] = (unsigned char)i;
    assert_int_equal(worker_log(e->cl, fid, attempt, 0, all, sizeof(all)), 204);
    assert_int_equal(worker_result(e->cl, wid, fid, attempt, true), 200);
    char path[256];
    snprintf(path, sizeof(path), "/api/v1/fragments/%s/log?follow=1", fid);
    struct got g = {.nevents = 0};
    assert_int_equal(follow(e->cl, path, &g), 200);
    /* ASCII (with controls and NUL) comes through; each byte >= 0x80 is U+FFFD. */
    assert_int_equal(g.text.len, 128 + 128 * 3);
    assert_memory_equal(g.text.data, all, 128);
    for (size_t i = 128; i < g.text.len; i += 3)
        assert_memory_equal(g.text.data + i, "\xef\xbf\xbd", 3);
    assert_string_equal(g.last_id, "1:256");
    got_release(&g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_follow_live, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_follow_new_attempt, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_follow_client_goes_away, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_log_reads_take_no_lock, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_whole_log_streamed, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_sse_encoding, env_setup, env_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
