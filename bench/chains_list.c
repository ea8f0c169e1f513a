/*
 * How fast does GET /api/v1/chains answer with 100,000 chains stored?
 *
 * For each store (SQLite in a temporary file; PostgreSQL too when
 * VK_BENCH_PG_URL is set, as scripts/pg-test.sh does), the benchmark fills
 * the store with N chains (one fragment each; branches main/dev/feature-K,
 * triggers push/manual/schedule, a tenth finished as completed or failed, a
 * third tied to one of 20 repositories), starts the API on 127.0.0.1:0 and
 * times listing requests over HTTP: the first page, pages deep in the
 * cursor walk, and filtered lists. It prints median, p95 and max per query
 * and checks them against the 50 ms goal.
 *
 *   chains_list [--chains N] [--database URL]...
 *   scripts/pg-test.sh build/bench/chains_list       (SQLite and PostgreSQL)
 */
#include "vulcan/api.h"
#include "vulcan/http.h"
#include "vulcan/orchestrator.h"
#include "vulcan/store.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define GOAL_MS 50.0
#define REPS 40

static void die(const char *what, const char *msg)
{
    fprintf(stderr, "chains_list: %s: %s\n", what, msg);
    exit(1);
}

struct fill {
    struct vk_store *store;
    const char *tenant;
    char (*repos)[VK_UUID_LEN];
    int from, to;
};

static void *fill_range(void *arg)
{
    struct fill *f = arg;
    static const char *branches[] = {"main", "dev", "feature-a", "feature-b", "release"};
    static const char *triggers[] = {"push", "manual", "schedule"};
    struct vk_err err;
    for (int i = f->from; i < f->to; i++) {
        struct vk_store_chain c;
        memset(&c, 0, sizeof(c));
        memcpy(c.tenant_id, f->tenant, VK_UUID_LEN);
        if (i % 3 == 0)
            memcpy(c.repository_id, f->repos[i % 20], VK_UUID_LEN);
        c.source_file = ".vulcan/ci.kdl";
        c.repository_url = "https://git.example/acme/app.git";
        c.branch = branches[i % 5];
        c.trigger = triggers[i % 3];
        c.default_machine = "default";
        struct vk_store_fragment_spec spec = {
            .parent = -1, .name = "build", .run_script = "make", .machine = "default"};
        if (vk_store_chain_create(f->store, &c, &spec, 1, NULL, &err) < 0)
            die("chain_create", err.msg);
        if (i % 10 == 0) {
            struct vk_store_tx *tx = NULL;
            if (vk_store_tx_begin(f->store, &tx, &err) < 0 ||
                vk_store_tx_chain_set(tx, c.id,
                                      i % 20 ? VK_STORE_CHAIN_COMPLETED : VK_STORE_CHAIN_FAILED,
                                      vk_time_now_ms(), vk_time_now_ms(), NULL, &err) < 0 ||
                vk_store_tx_commit(tx, &err) < 0)
                die("chain_set", err.msg);
        }
    }
    return NULL;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Time REPS GETs of `path`; print the figures; return the p95. */
static double timed(struct vk_http_client *cl, const char *label, const char *path, size_t *rows)
{
    double ms[REPS];
    for (int r = 0; r < REPS; r++) {
        int64_t t0 = vk_time_mono_ns();
        long st = 0;
        json_t *a = NULL;
        struct vk_err err;
        if (vk_http_client_json(cl, "GET", path, NULL, 30000, &st, &a, &err) < 0 || st != 200)
            die(path, st ? "status not 200" : err.msg);
        ms[r] = (double)(vk_time_mono_ns() - t0) / 1e6;
        *rows = json_array_size(json_object_get(a, "chains"));
        json_decref(a);
    }
    qsort(ms, REPS, sizeof(ms[0]), cmp_double);
    double p95 = ms[(REPS * 95) / 100 - 1];
    printf("  %-34s %4zu rows  median %6.2f ms  p95 %6.2f ms  max %6.2f ms  %s\n", label, *rows,
           ms[REPS / 2], p95, ms[REPS - 1], p95 <= GOAL_MS ? "ok" : "SLOWER THAN 50 ms");
    return p95;
}

static int run(const char *url, int n)
{
    struct vk_store *store = NULL;
    struct vk_orch *orch = NULL;
    struct vk_api *api = NULL;
    struct vk_err err;
    if (vk_store_open(url, &store, &err) < 0 || vk_orch_new(store, NULL, &orch, &err) < 0)
        die("store", err.msg);
    char tenant[VK_UUID_LEN];
    if (vk_store_tenant_ensure(store, "default", tenant, &err) < 0)
        die("tenant", err.msg);
    char repos[20][VK_UUID_LEN];
    for (int i = 0; i < 20; i++) {
        char u[128];
        snprintf(u, sizeof(u), "https://git.example/acme/r%d-%lld.git", i,
                 (long long)vk_time_now_ms());
        struct vk_store_repo r = {.url = u,
                                  .provider = "generic",
                                  .workflow_glob = ".vulcan/*.kdl",
                                  .default_branch = "main"};
        memcpy(r.tenant_id, tenant, VK_UUID_LEN);
        if (vk_store_repo_create(store, &r, &err) < 0)
            die("repo", err.msg);
        memcpy(repos[i], r.id, VK_UUID_LEN);
    }
    printf("%s: filling %d chains...\n", vk_store_backend(store), n);
    fflush(stdout);
    int64_t t0 = vk_time_mono_ns();
    bool pg = strcmp(vk_store_backend(store), "postgres") == 0;
    int nthreads = pg ? 4 : 1; /* SQLite has one writer anyway */
    pthread_t th[4];
    struct fill f[4];
    for (int t = 0; t < nthreads; t++) {
        f[t] = (struct fill){store, tenant, repos, n * t / nthreads, n * (t + 1) / nthreads};
        pthread_create(&th[t], NULL, fill_range, &f[t]);
    }
    for (int t = 0; t < nthreads; t++)
        pthread_join(th[t], NULL);
    printf("  filled in %.1f s\n", (double)(vk_time_mono_ns() - t0) / 1e9);

    struct vk_api_opts ao = {.listen = "127.0.0.1:0", .store = store, .orch = orch};
    if (vk_api_new(&ao, &api, &err) < 0 || vk_api_start(api, &err) < 0)
        die("api", err.msg);
    char base[64];
    snprintf(base, sizeof(base), "http://127.0.0.1:%u", vk_api_port(api));
    struct vk_http_client_opts co = {.base_url = base};
    struct vk_http_client *cl = NULL;
    if (vk_http_client_new(&co, &cl, &err) < 0)
        die("client", err.msg);
    double worst = 0, p;
    size_t rows = 0;
    char path[512];
#define MEASURE(label, pth)                                                                        \
    do {                                                                                           \
        p = timed(cl, label, pth, &rows);                                                          \
        worst = p > worst ? p : worst;                                                             \
    } while (0)
    MEASURE("first page (limit 50)", "/api/v1/chains");
    MEASURE("first page (limit 200)", "/api/v1/chains?limit=200");
    /* Walk 100 pages of 50 with the cursor, then time the page there. */
    char cursor[128] = "";
    for (int i = 0; i < 100; i++) {
        snprintf(path, sizeof(path), "/api/v1/chains?limit=50%s%s", cursor[0] ? "&cursor=" : "",
                 cursor);
        long st = 0;
        json_t *a = NULL;
        if (vk_http_client_json(cl, "GET", path, NULL, 30000, &st, &a, &err) < 0 || st != 200)
            die("walk", err.msg);
        json_t *nc = json_object_get(a, "next_cursor");
        snprintf(cursor, sizeof(cursor), "%s", json_is_string(nc) ? json_string_value(nc) : "");
        json_decref(a);
    }
    snprintf(path, sizeof(path), "/api/v1/chains?limit=50&cursor=%s", cursor);
    MEASURE("page 101 (cursor, 5,000 rows in)", path);
    MEASURE("status=failed", "/api/v1/chains?status=failed");
    MEASURE("status=pending", "/api/v1/chains?status=pending");
    MEASURE("branch=release", "/api/v1/chains?branch=release");
    MEASURE("trigger=schedule&branch=main", "/api/v1/chains?trigger=schedule&branch=main");
    snprintf(path, sizeof(path), "/api/v1/chains?repository=%s", repos[7]);
    MEASURE("repository=R", path);
    snprintf(path, sizeof(path), "/api/v1/chains?repository=%s&branch=feature-a&limit=1", repos[7]);
    MEASURE("repository=R&branch=feature-a&limit=1 (badge)", path);
    MEASURE("since=2999 (no rows)", "/api/v1/chains?since=2999-01-01T00:00:00Z");
#undef MEASURE
    printf("  worst p95: %.2f ms (goal %.0f ms): %s\n", worst, GOAL_MS,
           worst <= GOAL_MS ? "met" : "NOT MET");
    vk_http_client_free(cl);
    vk_api_stop(api);
    vk_api_free(api);
    vk_orch_free(orch);
    vk_store_close(store);
    return worst <= GOAL_MS ? 0 : 1;
}

int main(int argc, char **argv)
{
    int n = 100000;
    const char *urls[8];
    int nurls = 0;
    char tmpdir[] = "/tmp/vulcan-bench-XXXXXX";
    char sqlite[256] = "";
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--chains") == 0)
            n = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--database") == 0 && nurls < 8)
            urls[nurls++] = argv[i + 1];
    }
    if (nurls == 0) {
        if (!mkdtemp(tmpdir))
            die("mkdtemp", "failed");
        snprintf(sqlite, sizeof(sqlite), "sqlite:%s/bench.db", tmpdir);
        urls[nurls++] = sqlite;
        const char *pg = getenv("VK_BENCH_PG_URL");
        if (pg && *pg)
            urls[nurls++] = pg;
        else
            printf("(PostgreSQL skipped: run under scripts/pg-test.sh to include it)\n");
    }
    int rc = 0;
    for (int i = 0; i < nurls; i++)
        rc |= run(urls[i], n);
    if (sqlite[0]) {
        char cmd[512];
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0)
            fprintf(stderr, "chains_list: could not remove %s\n", tmpdir);
    }
    return rc;
}
