/*
 * Store benchmark: prints, for SQLite (a file in a temporary directory) and for
 * PostgreSQL when VK_BENCH_PG_URL is set, the rate of
 *   - chain creation (fragments/s, chains of 1,000 fragments),
 *   - claim + complete cycles (claim one ready fragment, then finish it fenced by attempt in
 *     a transaction), from 1 and from 4 threads,
 *   - log appends (MB/s, 64 KiB chunks).
 * Usage: bench/store [cycles]        scripts/pg-test.sh bench/store   (both backends)
 */
#include "vulcan/store.h"

#include "store/store_int.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHAIN_FRAGS 1000
#define CHAINS 5
#define LOG_CHUNK (64 * 1024)
#define LOG_TOTAL (32 * 1024 * 1024)

static void die(const char *what, const struct vk_err *err)
{
    fprintf(stderr, "bench/store: %s: %s\n", what, err->msg);
    exit(1);
}

static double secs(int64_t t0)
{
    return (double)(vk_time_mono_ns() - t0) / 1e9;
}

static void create_chain(struct vk_store *s, const char *tenant, int n, const char *machine,
                         char cid[VK_UUID_LEN])
{
    struct vk_store_chain ch = {0};
    struct vk_err err = {0};
    memcpy(ch.tenant_id, tenant, VK_UUID_LEN);
    ch.trigger = "push";
    ch.default_machine = machine;
    ch.repository_url = "https://example.com/r.git";
    ch.commit_sha = "0123456789abcdef0123456789abcdef01234567";
    struct vk_store_fragment_spec *sp = calloc((size_t)n, sizeof(*sp));
    for (int i = 0; i < n; i++) {
        sp[i].parent = -1;
        sp[i].run_script = "make test";
        sp[i].name = "step";
    }
    if (vk_store_chain_create(s, &ch, sp, (size_t)n, NULL, &err) != 0)
        die("chain_create", &err);
    free(sp);
    memcpy(cid, ch.id, VK_UUID_LEN);
}

static void make_ready(struct vk_store *s, const char *cid)
{
    struct vk__conn *c = NULL;
    struct vk_err err = {0};
    struct vk__param p[] = {vk__text(cid)};
    if (vk__store_conn_get(s, &c, &err) != 0 ||
        vk__exec(c, VK__STMT_NONE,
                 "UPDATE fragments SET status = 'ready', ready_at = position + 1"
                 " WHERE chain_id = $1",
                 p, 1, NULL, &err) != 0)
        die("make ready", &err);
    vk__store_conn_put(s, c);
}

struct cycler {
    struct vk_store *s;
    const char *group;
    char worker[VK_UUID_LEN];
    int todo;
    int done;
};

static void *cycle(void *arg)
{
    struct cycler *c = arg;
    struct vk_pool pool;
    struct vk_err err = {0};
    const char *g[] = {c->group};
    vk_pool_init(&pool, 0);
    while (c->done < c->todo) {
        struct vk_store_work w;
        int rc = vk_store_claim(c->s, c->worker, g, 1, vk_time_now_ms(), &pool, &w, &err);
        if (rc == VK_ENOTFOUND)
            break;
        if (rc)
            die("claim", &err);
        struct vk_store_tx *tx = NULL;
        if (vk_store_tx_begin(c->s, &tx, &err) != 0)
            die("tx_begin", &err);
        if (vk_store_tx_fragment_finish(tx, w.fragment.id, w.fragment.attempt, c->worker,
                                        VK_STORE_FRAG_COMPLETED, true, 0, NULL, vk_time_now_ms(),
                                        &err) != 0)
            die("finish", &err);
        if (vk_store_tx_commit(tx, &err) != 0)
            die("commit", &err);
        vk_pool_release(&pool);
        c->done++;
    }
    vk_pool_release(&pool);
    return NULL;
}

static double run_cycles(struct vk_store *s, const char *tenant, const char *group, int nthreads,
                         int total)
{
    struct vk_err err = {0};
    /* Queue `total` ready fragments, in chains of at most VK_STORE_MAX_FRAGMENTS. */
    for (int left = total; left > 0; left -= VK_STORE_MAX_FRAGMENTS) {
        char cid[VK_UUID_LEN];
        create_chain(s, tenant, left < VK_STORE_MAX_FRAGMENTS ? left : VK_STORE_MAX_FRAGMENTS,
                     group, cid);
        make_ready(s, cid);
    }
    struct cycler cl[8];
    pthread_t th[8];
    const char *g[] = {group};
    for (int i = 0; i < nthreads; i++) {
        memset(&cl[i], 0, sizeof(cl[i]));
        cl[i].s = s;
        cl[i].group = group;
        cl[i].todo = total;
        if (vk_store_worker_register(s, NULL, "bench", "1", g, 1, vk_time_now_ms(), cl[i].worker,
                                     &err) != 0)
            die("register", &err);
    }
    int64_t t0 = vk_time_mono_ns();
    for (int i = 0; i < nthreads; i++)
        pthread_create(&th[i], NULL, cycle, &cl[i]);
    int done = 0;
    for (int i = 0; i < nthreads; i++) {
        pthread_join(th[i], NULL);
        done += cl[i].done;
    }
    double dt = secs(t0);
    if (done != total) {
        fprintf(stderr, "bench/store: %d of %d cycles done\n", done, total);
        exit(1);
    }
    return done / dt;
}

static void bench(const char *label, const char *url, int cycles)
{
    struct vk_store *s = NULL;
    struct vk_err err = {0};
    char tenant[VK_UUID_LEN], cid[VK_UUID_LEN];
    if (vk_store_open(url, &s, &err) != 0)
        die("open", &err);
    if (vk_store_tenant_ensure(s, "bench", tenant, &err) != 0)
        die("tenant", &err);

    int64_t t0 = vk_time_mono_ns();
    for (int i = 0; i < CHAINS; i++)
        create_chain(s, tenant, CHAIN_FRAGS, "idle", cid);
    double dt = secs(t0);
    printf("%-9s chain create   %10.0f fragments/s  (%d chains of %d fragments, %.1f ms each)\n",
           label, CHAINS * CHAIN_FRAGS / dt, CHAINS, CHAIN_FRAGS, dt * 1000 / CHAINS);
    fflush(stdout);

    double r1 = run_cycles(s, tenant, "g1", 1, cycles);
    printf("%-9s claim+complete %10.0f cycles/s     (1 thread, %d cycles)\n", label, r1, cycles);
    fflush(stdout);
    double r4 = run_cycles(s, tenant, "g4", 4, cycles);
    printf("%-9s claim+complete %10.0f cycles/s     (4 threads, %d cycles)\n", label, r4, cycles);
    fflush(stdout);

    /* Log appends to one fragment. */
    char fid[1][VK_UUID_LEN];
    struct vk_store_chain ch = {0};
    memcpy(ch.tenant_id, tenant, VK_UUID_LEN);
    ch.trigger = "push";
    ch.default_machine = "logs";
    struct vk_store_fragment_spec sp = {.parent = -1, .run_script = "yes"};
    if (vk_store_chain_create(s, &ch, &sp, 1, fid, &err) != 0)
        die("chain_create", &err);
    char *chunk = malloc(LOG_CHUNK);
    for (int i = 0; i < LOG_CHUNK; i++)
        chunk[i] = (char)('a' + i % 26);
    t0 = vk_time_mono_ns();
    for (int64_t off = 0; off < LOG_TOTAL; off += LOG_CHUNK)
        if (vk_store_log_append(s, fid[0], 1, off, chunk, LOG_CHUNK, NULL, &err) != 0)
            die("log append", &err);
    dt = secs(t0);
    printf("%-9s log append     %10.1f MB/s          (%d MiB in %d KiB chunks)\n", label,
           LOG_TOTAL / dt / 1e6, LOG_TOTAL >> 20, LOG_CHUNK >> 10);
    size_t nread = 0;
    int64_t total = 0;
    t0 = vk_time_mono_ns();
    for (int64_t off = 0; off < LOG_TOTAL; off += LOG_CHUNK)
        if (vk_store_log_read(s, fid[0], 1, off, chunk, LOG_CHUNK, &nread, &total, &err) != 0 ||
            nread != LOG_CHUNK)
            die("log read", &err);
    dt = secs(t0);
    printf("%-9s log read       %10.1f MB/s\n", label, LOG_TOTAL / dt / 1e6);
    fflush(stdout);
    free(chunk);
    vk_store_close(s);
}

int main(int argc, char **argv)
{
    int cycles = argc > 1 ? atoi(argv[1]) : 10000;
    if (cycles < 1 || cycles > 1000000)
        cycles = 10000;
    char dir[] = "/tmp/vk-bench-store-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char url[300];
    snprintf(url, sizeof(url), "sqlite:%s/bench.db", dir);
    bench("sqlite", url, cycles);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench/store: cannot remove %s\n", dir);
    const char *pg = getenv("VK_BENCH_PG_URL");
    if (pg && *pg)
        bench("postgres", pg, cycles);
    else
        printf("postgres  (skipped: set VK_BENCH_PG_URL, or run scripts/pg-test.sh bench/store)\n");
    return 0;
}
