/*
 * Benchmark: KDL parse throughput and memory on a ~5 MB workflow-like document
 * generated in memory (chains, steps, fragments, multi-line scripts, comments,
 * properties, numbers). Prints the tree's struct sizes, best and median MB/s
 * over several runs, the document's pool size against the input size, and the
 * process's peak RSS growth while parsing.
 *
 * Peak RSS: the generator's buffer is freed before parsing, so the process's
 * high-water mark (getrusage) already covers part of the parse and would hide
 * it. On Linux the mark is reset first (/proc/self/clear_refs "5") and the
 * growth is VmHWM after the runs minus VmRSS before them; elsewhere the
 * getrusage difference is printed and says so.
 *
 *   bench/kdl_parse [SIZE_MB] [RUNS] [dense]     defaults: 5 and 9
 *
 * "dense" generates many short entries per node instead (the worst case for the
 * tree's memory: each value is a fixed-size struct).
 */
#include "vulcan/kdl.h"
#include "vulcan/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

/*
 * One workflow in the language of DESIGN.md section 2: header comment, version, triggers
 * block, a chain with env, fragments with multi-line scripts, a parallel group, imports,
 * conditions, timeouts and retries.
 */
static int gen_workflow(struct vk_buf *b, unsigned w)
{
    int rc =
        vk_buf_addf(b,
                    "/*\n * Workflow %u: build, test and deploy the service.\n"
                    " * Generated for the parser benchmark; shaped like .vulcan/ci.kdl.\n */\n"
                    "version \"0.1\"\n"
                    "name \"ci-%u\"                                // shown in the console\n"
                    "triggers {\n"
                    "    push { branches \"main\" \"releases/**\"; paths-ignore \"docs/**\" }\n"
                    "    pull_request { types \"opened\" \"synchronize\"; branches \"main\" }\n"
                    "    schedule cron=\"0 2 * * 1-5\" timezone=\"Europe/Amsterdam\"\n"
                    "}\n\n"
                    "chain priority=%u {\n"
                    "    machine \"default\"                      // default worker group\n"
                    "    env { NODE_ENV \"test\"; JOBS 4; RATIO 0.75; VERBOSE #false }\n\n"
                    "    fragment {\n"
                    "        name \"setup\"\n"
                    "        run \"\"\"\n"
                    "            set -eu\n"
                    "            git submodule update --init --recursive\n"
                    "            npm ci --prefer-offline --no-audit\n"
                    "            \"\"\"\n"
                    "    }\n\n",
                    w, w, w % 10);
    for (unsigned s = 0; rc == 0 && s < 3; s++) {
        rc =
            vk_buf_addf(b,
                        "    parallel {\n"
                        "        fragment { run \"npm test -- --shard=%u/3\"; name \"unit-%u\" }\n"
                        "        fragment { run \"npm run lint\"; machine \"small\" }\n"
                        "        fragment { from \"fragments/e2e-%u.kdl\" }   // import\n"
                        "        /- fragment { run \"flaky.sh\" }           // disabled for now\n"
                        "    }\n\n"
                        "    fragment {\n"
                        "        name \"package-%u\"\n"
                        "        condition \"$TRIGGER == 'push' && $BRANCH =~ 'releases/*'\"\n"
                        "        run \"\"\"\n"
                        "            ./configure --prefix=/usr --enable-shard-%u\n"
                        "            make -j\"$(nproc)\" all check\n"
                        "            tar czf \"out/pkg-$COMMIT_SHA.tar.gz\" build/\n"
                        "            echo \"package %u done\" >> \"$LOG_FILE\"\n"
                        "            \"\"\"\n"
                        "        timeout \"20m\"                      // worker default otherwise\n"
                        "        retry 1\n"
                        "    }\n\n",
                        s + 1, s, s, s, s, s);
    }
    if (rc == 0)
        rc = vk_buf_addf(b,
                         "    fragment {\n"
                         "        name \"deploy\"\n"
                         "        condition \"$TRIGGER == 'push' && $BRANCH == 'main'\"\n"
                         "        run #\"\"\"\n"
                         "            ./deploy.sh --sha \"$COMMIT_SHA\" --region eu-west-%u\n"
                         "            \"\"\"#\n"
                         "        timeout \"10m\"; retry 0\n"
                         "    }\n"
                         "}\n\n",
                         w % 3);
    return rc;
}

/* A dense variant: many short arguments and properties per node (the worst case for memory). */
static int gen_dense(struct vk_buf *b, unsigned c)
{
    int rc = vk_buf_addf(b, "chain \"pipeline-%u\" concurrency=2 timeout=3600 retries=1 {\n", c);
    for (unsigned s = 0; rc == 0 && s < 8; s++)
        rc = vk_buf_addf(b,
                         "    step \"s-%u-%u\" cpu=2 memory=0x4000_0000 {\n"
                         "        needs \"s-%u\" \"setup\"; when \"branch == 'main'\"\n"
                         "        artifact path=#\"out/*.tar.gz\"# keep=7 (days)30 size=1.5e9\n"
                         "    }\n",
                         c, s, s);
    if (rc == 0)
        rc = vk_buf_adds(b, "}\n");
    return rc;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : (x > y ? 1 : 0);
}

static long peak_rss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* A "Vm...:" line of /proc/self/status in KiB, -1 when unavailable. */
static long proc_status_kb(const char *key)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (!f)
        return -1;
    char line[256];
    long v = -1;
    size_t kn = strlen(key);
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, key, kn) == 0 && line[kn] == ':') {
            v = atol(line + kn + 1);
            break;
        }
    fclose(f);
    return v;
}

/* Reset the peak-RSS mark to the current RSS (Linux); false when not possible. */
static bool reset_peak_rss(void)
{
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f)
        return false;
    bool ok = fputs("5", f) >= 0;
    if (fclose(f) != 0)
        ok = false;
    return ok && proc_status_kb("VmHWM") >= 0;
}

int main(int argc, char **argv)
{
    double size_mb = argc > 1 ? atof(argv[1]) : 5.0;
    int runs = argc > 2 ? atoi(argv[2]) : 9;
    bool dense = argc > 3 && strcmp(argv[3], "dense") == 0;
    if (size_mb <= 0 || size_mb > 512 || runs < 1 || runs > 1000) {
        fprintf(stderr, "usage: kdl_parse [SIZE_MB (0-512)] [RUNS (1-1000)] [dense]\n");
        return 2;
    }
    size_t target = (size_t)(size_mb * 1024 * 1024);
    struct vk_buf src = VK_BUF_INIT(target + (1u << 20));
    for (unsigned c = 0; src.len < target; c++) {
        if ((dense ? gen_dense(&src, c) : gen_workflow(&src, c)) != 0) {
            fprintf(stderr, "kdl_parse: cannot build the document\n");
            return 1;
        }
    }
    /* An exact-size copy: the parser must not rely on a NUL after the input. */
    char *input = malloc(src.len);
    if (!input)
        return 1;
    memcpy(input, src.data, src.len);
    size_t len = src.len;
    vk_buf_release(&src);

    bool exact = reset_peak_rss();
    long rss_before = exact ? proc_status_kb("VmRSS") : peak_rss_kb();
    double *mbs = calloc((size_t)runs, sizeof(double));
    if (!mbs)
        return 1;
    size_t pool_bytes = 0, nodes = 0;
    for (int r = 0; r < runs; r++) {
        struct vk_kdl_doc *doc = NULL;
        struct vk_err err;
        int64_t t0 = vk_time_mono_ns();
        int rc = vk_kdl_parse(input, len, &doc, &err);
        int64_t t1 = vk_time_mono_ns();
        if (rc != 0) {
            fprintf(stderr, "kdl_parse: parse failed at %u:%u: %s\n", err.line, err.col, err.msg);
            return 1;
        }
        mbs[r] = (double)len / (1024.0 * 1024.0) / ((double)(t1 - t0) / 1e9);
        pool_bytes = doc->pool.total;
        nodes = doc->nnodes;
        vk_kdl_doc_free(doc);
    }
    long rss_after = exact ? proc_status_kb("VmHWM") : peak_rss_kb();
    qsort(mbs, (size_t)runs, sizeof(double), cmp_double);
    printf("kdl_parse: %s input %.2f MB (%zu top-level nodes), %d runs\n",
           dense ? "dense" : "workflow", (double)len / (1024.0 * 1024.0), nodes, runs);
    printf("kdl_parse: sizeof value %zu, prop %zu, node %zu bytes\n", sizeof(struct vk_kdl_value),
           sizeof(struct vk_kdl_prop), sizeof(struct vk_kdl_node));
    printf("kdl_parse: throughput best %.1f MB/s, median %.1f MB/s\n", mbs[runs - 1],
           mbs[runs / 2]);
    printf("kdl_parse: document pool %.2f MB = %.2fx input\n",
           (double)pool_bytes / (1024.0 * 1024.0), (double)pool_bytes / (double)len);
    printf("kdl_parse: peak RSS growth while parsing %.2f MB = %.2fx input%s\n",
           (double)(rss_after - rss_before) / 1024.0,
           (double)(rss_after - rss_before) * 1024.0 / (double)len,
           exact ? "" : " (getrusage: lower bound)");
    free(mbs);
    free(input);
    return 0;
}
