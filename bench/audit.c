/*
 * Audit benchmark (issue 20): for SQLite (a file in a temporary directory) and for
 * PostgreSQL when VK_BENCH_PG_URL is set (scripts/pg-test.sh bench/audit), the rate at which
 *   - the store appends sealed records in batches of 256 (one transaction each, a signed
 *     checkpoint every 1000), from one writer;
 *   - the recorder takes events from 4 threads and writes them (queue to store);
 *   - `verify` recomputes the chain and checks its checkpoints.
 * Usage: bench/audit [records]      (default 20000)
 */
#include "vulcan/audit.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void die(const char *what, const struct vk_err *err)
{
    fprintf(stderr, "bench/audit: %s: %s\n", what, err->msg);
    exit(1);
}

static double secs(int64_t t0)
{
    return (double)(vk_time_mono_ns() - t0) / 1e9;
}

struct feeder {
    struct vk_audit *a;
    const char *org;
    int n;
};

static void *feed(void *arg)
{
    struct feeder *f = arg;
    json_t *d =
        json_pack("{s:s, s:s, s:i}", "method", "POST", "route", "/api/v1/parse", "status", 201);
    for (int i = 0; i < f->n; i++) {
        struct vk_audit_event ev = {.org = f->org,
                                    .actor = "user:bench",
                                    .source = "127.0.0.1",
                                    .action = "chain.create",
                                    .target = "/api/v1/parse",
                                    .outcome = "success",
                                    .details = d};
        vk_audit_record(f->a, &ev);
    }
    json_decref(d);
    return NULL;
}

static void bench(const char *label, const char *url, const struct vk_audit_key *k,
                  const char *keyring, int n)
{
    struct vk_store *s = NULL;
    struct vk_err err = {0};
    if (vk_store_open(url, &s, &err))
        die("open", &err);
    char org[VK_UUID_LEN], org2[VK_UUID_LEN];
    if (vk_uuid_v7(org) || vk_uuid_v7(org2))
        die("uuid", &err);
    /* 1. the store, batches of 256 */
    struct vk_store_audit_rec recs[256];
    struct vk_store_audit_policy pol = {1000, 0};
    int64_t t0 = vk_time_mono_ns();
    for (int done = 0; done < n;) {
        int b = n - done < 256 ? n - done : 256;
        for (int i = 0; i < b; i++) {
            memset(&recs[i], 0, sizeof(recs[i]));
            snprintf(recs[i].tenant_id, sizeof(recs[i].tenant_id), "%s", org);
            recs[i].at = vk_time_now_ms();
            recs[i].actor = "user:bench";
            recs[i].source = "127.0.0.1";
            recs[i].action = "chain.create";
            recs[i].target = "/api/v1/parse";
            recs[i].outcome = "success";
            recs[i].details = "{\"method\":\"POST\",\"route\":\"/api/v1/parse\",\"status\":201}";
        }
        if (vk_store_audit_append(s, recs, (size_t)b, vk_audit_seal_cb, vk_audit_sign_cb, (void *)k,
                                  &pol, NULL, &err))
            die("append", &err);
        done += b;
    }
    double dt = secs(t0);
    printf("%-9s store append    %9.0f records/s  (%d records, batches of 256)\n", label, n / dt,
           n);
    /* 2. the recorder: 4 threads queue, one writer */
    struct vk_audit_opts o = {.store = s, .key = k, .queue = (size_t)n + 16};
    struct vk_audit *a = NULL;
    if (vk_audit_new(&o, &a, &err))
        die("recorder", &err);
    pthread_t th[4];
    struct feeder fd = {a, org2, n / 4};
    t0 = vk_time_mono_ns();
    for (int i = 0; i < 4; i++)
        pthread_create(&th[i], NULL, feed, &fd);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    double queued = secs(t0);
    if (vk_audit_flush(a, 600000))
        fprintf(stderr, "bench/audit: flush timed out\n");
    dt = secs(t0);
    struct vk_audit_stats st;
    vk_audit_stats(a, &st);
    printf("%-9s recorder        %9.0f records/s  (%llu written, %llu dropped; queueing "
           "%.2f us/event)\n",
           label, (double)st.written / dt, (unsigned long long)st.written,
           (unsigned long long)st.dropped, queued * 1e6 / (4.0 * fd.n));
    vk_audit_free(a);
    /* 3. verify */
    struct vk_audit_keyring *r = NULL;
    if (vk_audit_keyring_load(keyring, &r, &err))
        die("keyring", &err);
    struct vk_audit_report rep;
    memset(&rep, 0, sizeof(rep));
    t0 = vk_time_mono_ns();
    if (vk_audit_verify_store(s, r, &rep, &err))
        die("verify", &err);
    dt = secs(t0);
    printf("%-9s verify          %9.0f records/s  (%zu records, %zu checkpoints, %zu problems)\n",
           label, rep.records / dt, rep.records, rep.checkpoints, rep.nproblems);
    fflush(stdout);
    vk_audit_keyring_free(r);
    vk_store_close(s);
}

int main(int argc, char **argv)
{
    int n = argc > 1 ? atoi(argv[1]) : 20000;
    if (n < 256 || n > 10000000)
        n = 20000;
    char dir[] = "/tmp/vk-bench-audit-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    char url[300], key[300], ring[310];
    snprintf(url, sizeof(url), "sqlite:%s/bench.db", dir);
    snprintf(key, sizeof(key), "%s/audit.key", dir);
    snprintf(ring, sizeof(ring), "%s.pub", key);
    struct vk_audit_key *k = NULL;
    struct vk_err err = {0};
    if (vk_audit_key_load(key, true, ring, &k, &err))
        die("key", &err);
    bench("sqlite", url, k, ring, n);
    const char *pg = getenv("VK_BENCH_PG_URL");
    if (pg && *pg)
        bench("postgres", pg, k, ring, n);
    else
        printf("postgres  (skipped: set VK_BENCH_PG_URL, or run scripts/pg-test.sh bench/audit)\n");
    vk_audit_key_free(k);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "bench/audit: cannot remove %s\n", dir);
    return 0;
}
