/*
 * Does following a log keep up with a fragment that writes 20 MB/s?
 *
 * An in-process server (store, orchestrator, API on 127.0.0.1:0) gets a chain;
 * the benchmark claims its fragment as a worker and uploads log chunks over
 * HTTP (POST /api/v1/work/{id}/log, 64 KiB each) on a 20 MB/s schedule for
 * SECONDS seconds, then posts the result. Meanwhile two followers read it:
 *   - an SSE client (GET /api/v1/fragments/{id}/log?follow=1) in a thread, and
 *   - `vulcan logs -f FRAGMENT` as a child process, its stdout counted.
 * Each reports the MB/s delivered (bytes over the time from the first upload to
 * its end event) and how long after the last upload it had everything.
 *
 *   logs_follow [--seconds N] [--rate MBPS] [--vulcan PATH] [--database URL]
 */
#include "vulcan/api.h"
#include "vulcan/http.h"
#include "vulcan/orchestrator.h"
#include "vulcan/store.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define CHUNK (64u * 1024u)

struct bench {
    char base[64];
    char wid[VK_UUID_LEN], fid[VK_UUID_LEN];
    int attempt;
    double seconds, rate_mb;
    int64_t t_start_ns, t_last_upload_ns;
    long long total;
};

static void die(const char *what, const char *msg)
{
    fprintf(stderr, "logs_follow: %s: %s\n", what, msg);
    exit(1);
}

static struct vk_http_client *client(const char *base)
{
    struct vk_http_client_opts o = {.base_url = base, .timeout_ms = 60000};
    struct vk_http_client *cl = NULL;
    struct vk_err err;
    if (vk_http_client_new(&o, &cl, &err) < 0)
        die("client", err.msg);
    return cl;
}

static json_t *jcall(struct vk_http_client *cl, const char *method, const char *path, json_t *body,
                     long want)
{
    long st = 0;
    json_t *a = NULL;
    struct vk_err err;
    if (vk_http_client_json(cl, method, path, body, 30000, &st, &a, &err) < 0)
        die(path, err.msg);
    if (st != want)
        die(path, "unexpected status");
    return a;
}

/* ---------------------------------------------------------------- producer */

static void *producer(void *arg)
{
    struct bench *b = arg;
    struct vk_http_client *cl = client(b->base);
    char *chunk = malloc(CHUNK);
    /* Lines of printable text, 100 bytes each, so every follower byte maps 1:1. */
    for (size_t i = 0; i < CHUNK; i++)
        chunk[i] = i % 100 == 99 ? '\n' : (char)('a' + (i * 7) % 26);
    double bytes_per_ns = b->rate_mb * 1e6 / 1e9;
    long long off = 0, goal = (long long)(b->seconds * b->rate_mb * 1e6);
    b->t_start_ns = vk_time_mono_ns();
    while (off < goal) {
        /* Keep to the schedule: upload when the writer would have produced the bytes. */
        int64_t due = b->t_start_ns + (int64_t)((double)off / bytes_per_ns);
        int64_t now = vk_time_mono_ns();
        if (due > now) {
            struct timespec ts = {(due - now) / 1000000000, (due - now) % 1000000000};
            nanosleep(&ts, NULL);
        }
        char path[256];
        snprintf(path, sizeof(path), "/api/v1/work/%s/log?attempt=%d&offset=%lld", b->fid,
                 b->attempt, off);
        struct vk_http_response resp;
        struct vk_err err;
        if (vk_http_client_request(cl, "POST", path, "application/octet-stream", chunk, CHUNK, 0,
                                   &resp, &err) < 0)
            die("upload", err.msg);
        if (resp.status != 204)
            die("upload", "refused");
        vk_http_response_release(&resp);
        off += CHUNK;
    }
    b->t_last_upload_ns = vk_time_mono_ns();
    b->total = off;
    json_t *r = json_pack("{s:s, s:s, s:i, s:b, s:i}", "worker_id", b->wid, "fragment_id", b->fid,
                          "attempt", b->attempt, "success", 1, "exit_code", 0);
    json_decref(jcall(cl, "POST", "/api/v1/work/result", r, 200));
    json_decref(r);
    free(chunk);
    vk_http_client_free(cl);
    return NULL;
}

/* ---------------------------------------------------------------- SSE follower */

struct sse {
    struct vk_buf in;
    long long text_bytes;
    bool ended;
    int64_t t_end_ns;
};

static int on_chunk(void *ctx, const char *data, size_t len)
{
    struct sse *s = ctx;
    if (vk_buf_add(&s->in, data, len) < 0)
        return VK_ETOOBIG;
    size_t start = 0;
    char *end;
    while ((end = memmem(s->in.data + start, s->in.len - start, "\n\n", 2)) != NULL) {
        char *ev = s->in.data + start;
        char *d = memmem(ev, (size_t)(end - ev), "\ndata: ", 7);
        if (strncmp(ev, "id: ", 4) == 0 && d) {
            json_error_t je;
            json_t *j = json_loadb(d + 7, (size_t)(end - d - 7), JSON_ALLOW_NUL, &je);
            s->text_bytes += (long long)json_string_length(json_object_get(j, "text"));
            json_decref(j);
        } else if (strncmp(ev, "event: end", 10) == 0) {
            s->ended = true;
            s->t_end_ns = vk_time_mono_ns();
        }
        start = (size_t)(end - s->in.data) + 2;
    }
    memmove(s->in.data, s->in.data + start, s->in.len - start);
    s->in.len -= start;
    return s->ended ? VK_ECONFLICT : 0;
}

static void *sse_follower(void *arg)
{
    struct bench *b = arg;
    struct sse *s = calloc(1, sizeof(*s));
    vk_buf_init(&s->in, 64u << 20);
    struct vk_http_client *cl = client(b->base);
    char path[256];
    snprintf(path, sizeof(path), "/api/v1/fragments/%s/log?follow=1", b->fid);
    long st = 0;
    struct vk_err err;
    int rc = vk_http_client_stream(cl, path, 0, on_chunk, s, &st, &err);
    if (rc < 0 && rc != VK_ECONFLICT)
        die("follow", err.msg);
    vk_http_client_free(cl);
    vk_buf_release(&s->in);
    return s;
}

/* ---------------------------------------------------------------- main */

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    struct bench b = {.seconds = 5, .rate_mb = 20};
    const char *db = "sqlite::memory:";
    char vulcan[4096];
    snprintf(vulcan, sizeof(vulcan), "%s", argv[0]);
    char *slash = strrchr(vulcan, '/');
    if (slash)
        snprintf(slash + 1, sizeof(vulcan) - (size_t)(slash + 1 - vulcan), "../vulcan");
    else
        snprintf(vulcan, sizeof(vulcan), "../vulcan");
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--seconds") == 0)
            b.seconds = atof(argv[i + 1]);
        else if (strcmp(argv[i], "--rate") == 0)
            b.rate_mb = atof(argv[i + 1]);
        else if (strcmp(argv[i], "--vulcan") == 0)
            snprintf(vulcan, sizeof(vulcan), "%s", argv[i + 1]);
        else if (strcmp(argv[i], "--database") == 0)
            db = argv[i + 1];
    }
    struct vk_store *store = NULL;
    struct vk_orch *orch = NULL;
    struct vk_api *api = NULL;
    struct vk_err err;
    if (vk_store_open(db, &store, &err) < 0 || vk_orch_new(store, NULL, &orch, &err) < 0)
        die("store", err.msg);
    struct vk_api_opts ao = {.listen = "127.0.0.1:0", .store = store, .orch = orch};
    if (vk_api_new(&ao, &api, &err) < 0)
        die("api", err.msg);
    vk_orch_set_ready_hook(orch, vk_api_wake, api);
    if (vk_orch_start(orch, &err) < 0 || vk_api_start(api, &err) < 0)
        die("start", err.msg);
    snprintf(b.base, sizeof(b.base), "http://127.0.0.1:%u", vk_api_port(api));
    struct vk_http_client *cl = client(b.base);
    json_t *body = json_pack(
        "{s:s}", "content",
        "version \"0.1\"\nname \"firehose\"\ntriggers \"manual\"\nchain {\n machine \"default\"\n"
        " fragment { name \"firehose\"; run \"yes\"; }\n}\n");
    json_decref(jcall(cl, "POST", "/api/v1/parse", body, 201));
    json_decref(body);
    body =
        json_pack("{s:s, s:s, s:s}", "machine_group", "default", "name", "bench", "version", "1");
    json_t *a = jcall(cl, "POST", "/api/v1/workers/register", body, 200);
    json_decref(body);
    snprintf(b.wid, sizeof(b.wid), "%s", json_string_value(json_object_get(a, "worker_id")));
    json_decref(a);
    body = json_pack("{s:s, s:i}", "worker_id", b.wid, "wait_s", 5);
    a = jcall(cl, "POST", "/api/v1/work/request", body, 200);
    json_decref(body);
    snprintf(b.fid, sizeof(b.fid), "%s", json_string_value(json_object_get(a, "fragment_id")));
    b.attempt = (int)json_integer_value(json_object_get(a, "attempt"));
    json_decref(a);

    /* `vulcan logs -f`, stdout into a pipe we count. */
    int fds[2];
    if (pipe(fds) < 0)
        die("pipe", "failed");
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execl(vulcan, "vulcan", "logs", "-f", "--server", b.base, b.fid, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    pthread_t tp, ts;
    pthread_create(&ts, NULL, sse_follower, &b);
    usleep(100 * 1000); /* both followers connected */
    pthread_create(&tp, NULL, producer, &b);
    long long cli_bytes = 0;
    int64_t cli_end = 0;
    char buf[65536];
    ssize_t r;
    while ((r = read(fds[0], buf, sizeof(buf))) > 0)
        cli_bytes += r;
    cli_end = vk_time_mono_ns();
    close(fds[0]);
    int wst = 0;
    waitpid(pid, &wst, 0);
    pthread_join(tp, NULL);
    struct sse *s = NULL;
    pthread_join(ts, (void **)&s);

    double produced_s = (double)(b.t_last_upload_ns - b.t_start_ns) / 1e9;
    printf("producer: %.1f MB in %.2f s = %.1f MB/s (64 KiB uploads over HTTP, %s)\n",
           (double)b.total / 1e6, produced_s, (double)b.total / 1e6 / produced_s,
           vk_store_backend(store));
    double sse_s = (double)(s->t_end_ns - b.t_start_ns) / 1e9;
    printf(
        "SSE follow:      %.1f MB delivered, %.1f MB/s, complete %.0f ms after the last upload%s\n",
        (double)s->text_bytes / 1e6, (double)s->text_bytes / 1e6 / sse_s,
        (double)(s->t_end_ns - b.t_last_upload_ns) / 1e6,
        s->text_bytes == b.total ? "" : " (INCOMPLETE)");
    double cli_s = (double)(cli_end - b.t_start_ns) / 1e9;
    printf("vulcan logs -f:  %.1f MB delivered, %.1f MB/s, complete %.0f ms after the last upload, "
           "exit %d%s\n",
           (double)cli_bytes / 1e6, (double)cli_bytes / 1e6 / cli_s,
           (double)(cli_end - b.t_last_upload_ns) / 1e6, WIFEXITED(wst) ? WEXITSTATUS(wst) : -1,
           cli_bytes == b.total ? "" : " (INCOMPLETE)");
    bool ok = s->text_bytes == b.total && cli_bytes == b.total;
    free(s);
    vk_http_client_free(cl);
    vk_api_stop(api);
    vk_orch_stop(orch);
    vk_api_free(api);
    vk_orch_free(orch);
    vk_store_close(store);
    return ok ? 0 : 1;
}
