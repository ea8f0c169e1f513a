/*
 * Webhook-to-chain benchmark: a running in-process server (SQLite file store, or
 * PostgreSQL when VK_BENCH_PG_URL is set), a local git repository with 3 workflows, and
 * GitHub push webhooks (the tests/fixtures/github/push.json payload, pointed at the local
 * repository) each with a distinct delivery id. Prints the latency of one webhook, from
 * sending it to the answer listing its chains (p50, p99, warm mirror cache), and the
 * webhooks per second sustained by several concurrent senders.
 *
 * Usage: webhooks [SOURCE_DIR] (default "."; the fixtures are read from there)
 *        environment: VK_BENCH_N (latency samples, 300), VK_BENCH_THREADS (senders, 4),
 *        VK_BENCH_TOTAL (webhooks in the throughput run, 1000), VK_BENCH_AUDIT (set: the
 *        server records every request in the audit log, as `vulcan server` does).
 */
#include "../tests/triggers/trig_env.h"
#include "vulcan/telemetry.h"

#include <pthread.h>

static struct te T;
static char *body;
static char sig[128];

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int make_repo(void)
{
    snprintf(T.work, sizeof(T.work), "%s/work", T.tmp);
    snprintf(T.bare, sizeof(T.bare), "%s/repo.git", T.tmp);
    snprintf(T.repo_url, sizeof(T.repo_url), "file://%s", T.bare);
    if (te_sh("git init -q -b main %s && mkdir -p %s/.vulcan %s/src", T.work, T.work, T.work))
        return -1;
    int rc = te_write(&T, ".vulcan/ci.kdl",
                      WF_HEAD "triggers {\n    push { branches \"main\" }\n}\n" WF_CHAIN);
    rc |= te_write(&T, ".vulcan/lint.kdl", WF_HEAD "triggers \"push\" \"pull_request\"\n" WF_CHAIN);
    rc |= te_write(&T, ".vulcan/release.kdl",
                   WF_HEAD "triggers {\n    tag { patterns \"v*\" }\n}\n" WF_CHAIN);
    rc |= te_write(&T, "src/a.c", "int a;\n");
    if (rc || te_sh(TE_GIT "add -A && " TE_GIT "commit -q -m A", T.work, T.work) ||
        te_rev(&T, "HEAD", T.a))
        return -1;
    if (te_write(&T, "src/a.c", "int a = 1;\n") ||
        te_sh(TE_GIT "add -A && " TE_GIT "commit -q -m C", T.work, T.work) ||
        te_rev(&T, "HEAD", T.c))
        return -1;
    memcpy(T.b, T.a, sizeof(T.b));
    return te_sh("git clone -q --bare %s %s", T.work, T.bare);
}

static struct vk_http_client *client(void)
{
    struct vk_http_client_opts co = {.base_url = T.base_url, .timeout_ms = 60000};
    struct vk_http_client *cl = NULL;
    struct vk_err err = {0};
    if (vk_http_client_new(&co, &cl, &err) ||
        vk_http_client_set_header(cl, "X-GitHub-Event", "push") ||
        vk_http_client_set_header(cl, "X-Hub-Signature-256", sig)) {
        fprintf(stderr, "client: %s\n", err.msg);
        exit(1);
    }
    return cl;
}

/* One webhook with delivery id `id`; returns its latency in ns (-1 on error). The body
 * carries the id too, each signed on its own: the server knows a body it has seen before
 * as a redelivery, whatever its delivery id (issue 14). */
static int64_t post(struct vk_http_client *cl, const char *id)
{
    struct vk_err err = {0};
    struct vk_http_response resp;
    size_t blen = strlen(body);
    char *mine = malloc(blen + 96), msig[128];
    if (!mine || body[0] != '{')
        exit(1);
    int n = snprintf(mine, blen + 96, "{\"vulcan_bench\":\"%.60s\",%s", id, body + 1);
    if (vk_triggers_hook_sign(VK_TRIGGERS_GITHUB, mine, (size_t)n, TE_SECRET, msig, sizeof(msig)) !=
            0 ||
        vk_http_client_set_header(cl, "X-GitHub-Delivery", id) ||
        vk_http_client_set_header(cl, "X-Hub-Signature-256", msig)) {
        free(mine);
        return -1;
    }
    int64_t t0 = vk_time_mono_ns();
    int rc = vk_http_client_request(cl, "POST", "/hooks/github", "application/json", mine,
                                    (size_t)n, 0, &resp, &err);
    free(mine);
    int64_t dt = vk_time_mono_ns() - t0;
    bool ok = rc == 0 && resp.status == 200 && strstr(resp.body.data, "\"chains\":[\"") != NULL;
    if (rc == 0 && !ok)
        fprintf(stderr, "webhook %s: %ld %s\n", id, resp.status, resp.body.data);
    if (rc == 0)
        vk_http_response_release(&resp);
    else
        fprintf(stderr, "webhook %s: %s\n", id, err.msg);
    return ok ? dt : -1;
}

struct sender {
    int idx, n, failed;
};

static void *send_main(void *arg)
{
    struct sender *s = arg;
    struct vk_http_client *cl = client();
    for (int i = 0; i < s->n; i++) {
        char id[64];
        snprintf(id, sizeof(id), "tput-%d-%d", s->idx, i);
        if (post(cl, id) < 0)
            s->failed++;
    }
    vk_http_client_free(cl);
    return NULL;
}

static int env_int(const char *name, int def)
{
    const char *v = getenv(name);
    return v && atoi(v) > 0 ? atoi(v) : def;
}

int main(int argc, char **argv)
{
    setenv("VK_SOURCE_DIR", argc > 1 ? argv[1] : ".", 1);
    if (getenv("VK_BENCH_PG_URL")) {
        setenv("VK_TEST_STORE_BACKEND", "postgres", 1);
        setenv("VK_TEST_PG_URL", getenv("VK_BENCH_PG_URL"), 1);
    }
    vk_log_configure(VK_LOG_WARN, VK_LOG_TEXT, 2);
    int n = env_int("VK_BENCH_N", 300), threads = env_int("VK_BENCH_THREADS", 4),
        total = env_int("VK_BENCH_TOTAL", 1000);
    snprintf(T.tmp, sizeof(T.tmp), "%s/vk-bench-hooks-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(T.tmp) || make_repo() || te_server(&T, "bench", 4) || te_register(&T))
        return 1;
    body = te_fixture_body(&T, "github/push");
    if (!body || vk_triggers_hook_sign(VK_TRIGGERS_GITHUB, body, strlen(body), TE_SECRET, sig,
                                       sizeof(sig)) != 0) {
        fprintf(stderr, "cannot read the fixture (pass the source directory)\n");
        return 1;
    }
    /* Warm the mirror cache (the first webhook clones). */
    struct vk_http_client *cl = client();
    int64_t cold = post(cl, "warm-0");
    for (int i = 1; i < 10; i++) {
        char id[32];
        snprintf(id, sizeof(id), "warm-%d", i);
        if (post(cl, id) < 0)
            return 1;
    }
    /* Latency, one at a time. */
    int64_t *lat = calloc((size_t)n, sizeof(*lat));
    for (int i = 0; i < n; i++) {
        char id[32];
        snprintf(id, sizeof(id), "lat-%d", i);
        lat[i] = post(cl, id);
        if (lat[i] < 0)
            return 1;
    }
    vk_http_client_free(cl);
    qsort(lat, (size_t)n, sizeof(*lat), cmp64);
    printf("webhook-to-chain (github push, 3 workflows, 2 chains each, %s store, warm mirror):\n",
           vk_store_backend(T.store));
    printf("  first webhook (clones the mirror): %.1f ms\n", (double)cold / 1e6);
    printf("  latency over %d webhooks: p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms\n", n,
           (double)lat[n / 2] / 1e6, (double)lat[n * 9 / 10] / 1e6, (double)lat[n * 99 / 100] / 1e6,
           (double)lat[n - 1] / 1e6);
    free(lat);

    /* Throughput: `threads` senders, distinct delivery ids. */
    pthread_t th[64];
    struct sender s[64];
    if (threads > 64)
        threads = 64;
    int64_t t0 = vk_time_mono_ns();
    for (int i = 0; i < threads; i++) {
        s[i] = (struct sender){.idx = i, .n = total / threads};
        pthread_create(&th[i], NULL, send_main, &s[i]);
    }
    int failed = 0, sent = 0;
    for (int i = 0; i < threads; i++) {
        pthread_join(th[i], NULL);
        failed += s[i].failed;
        sent += s[i].n;
    }
    double secs = (double)(vk_time_mono_ns() - t0) / 1e9;
    printf("  sustained: %d webhooks from %d senders in %.2f s: %.0f webhooks/s (%d failed)\n",
           sent, threads, secs, sent / secs, failed);
    te_stop(&T);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", T.tmp);
    if (system(cmd) != 0)
        return 1;
    return failed ? 1 : 0;
}
