/*
 * Masking benchmark (issue 15): the cost of masking a fragment's output.
 *   1. the masker alone: MB/s of vk_mask_write over build-log-like text in 4 KiB and
 *      64 KiB writes, with 0, 1 and 100 values (40-byte tokens, half of them sharing the
 *      prefix "ghp_", each with all its derived forms);
 *   2. through the executor: a script printing VK_BENCH_MASK_MB (default 200) MB of such
 *      text as fast as it can, with no masker and with 100 values; the MB/s reached and
 *      the CPU the worker side (this process) spent, as a share of one core at 20 MB/s.
 * Usage: bench/mask [MB for part 1, default 256]
 */
#include "vulcan/mask.h"

#include "vulcan/executor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define NVALUES 100
#define VALUE_LEN 40

static unsigned long long rng = 88172645463325252ULL;

static unsigned rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng >> 16);
}

/* Lines like a compiler's and a test runner's: paths, flags, numbers, hex. */
static char *make_text(size_t n)
{
    static const char *words[] = {
        "CC", "src/util/buf.c", "-O2",     "-Wall",     "PASS", "test_", "ok", "warning:", "[",
        "%]", "0x7ff",          "Linking", "libvulcan", "ms",   "=="};
    char *t = malloc(n + 256);
    size_t o = 0;
    while (o < n) {
        int nw = 4 + (int)(rnd() % 10);
        for (int i = 0; i < nw && o < n; i++) {
            const char *w = words[rnd() % (sizeof words / sizeof *words)];
            size_t k = strlen(w);
            memcpy(t + o, w, k);
            o += k;
            o += (size_t)sprintf(t + o, "%u ", rnd() % 100000);
        }
        t[o++] = '\n';
    }
    return t;
}

static void make_values(struct vk_mask *m, int n)
{
    static const char alpha[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    for (int i = 0; i < n; i++) {
        char v[VALUE_LEN + 1];
        int k = 0;
        if (i % 2 == 0)
            k = sprintf(v, "ghp_");
        for (; k < VALUE_LEN; k++)
            v[k] = alpha[rnd() % 62];
        v[VALUE_LEN] = 0;
        if (vk_mask_add(m, v, VALUE_LEN) != 0) {
            fprintf(stderr, "bench/mask: cannot add a value\n");
            exit(1);
        }
    }
}

static size_t sunk;
static void sink(void *ctx, const char *data, size_t len)
{
    (void)ctx;
    (void)data;
    sunk += len;
}

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static void engine(const char *text, size_t n, int values, size_t chunk)
{
    struct vk_mask *m = vk_mask_new();
    make_values(m, values);
    sunk = 0;
    int64_t t0 = vk_time_mono_ns();
    for (size_t i = 0; i < n; i += chunk) {
        size_t k = n - i < chunk ? n - i : chunk;
        if (vk_mask_write(m, text + i, k, sink, NULL) != 0)
            exit(1);
    }
    vk_mask_flush(m, sink, NULL);
    double s = (double)(vk_time_mono_ns() - t0) / 1e9;
    double mbs = (double)n / 1e6 / s;
    if (values == 0)
        printf("    0 values, %5zu-byte writes: pass-through (the bytes are handed on, not "
               "copied)\n",
               chunk);
    else
        printf("  %3d values (%4zu forms), %5zu-byte writes: %8.1f MB/s  (%.2f%% of a core at "
               "20 MB/s)\n",
               values, vk_mask_forms(m), chunk, mbs, 20.0 / mbs * 100.0);
    vk_mask_free(m);
}

static void executor(const char *file, size_t mb, int values)
{
    char root[] = "/tmp/vk-bench-mask-XXXXXX";
    if (!mkdtemp(root))
        exit(1);
    char work[64];
    snprintf(work, sizeof work, "%s/work", root);
    struct vk_exec_config cfg = {.work_dir = work};
    struct vk_exec_env env;
    struct vk_err err;
    if (vk_exec_env_init(&env, &cfg, &err) != 0) {
        fprintf(stderr, "bench/mask: %s\n", err.msg);
        exit(1);
    }
    char script[512];
    snprintf(script, sizeof script, "for i in $(seq %zu); do cat '%s'; done\n", mb / 8, file);
    struct vk_mask *m = NULL;
    if (values) {
        m = vk_mask_new();
        make_values(m, values);
    }
    struct vk_exec_spec spec = {.fragment_id = "bench-mask",
                                .attempt = 1,
                                .script = script,
                                .sandbox = VK_EXEC_SANDBOX_NONE,
                                .output_cap = (uint64_t)mb * 2 * 1000 * 1000,
                                .mask = m};
    struct vk_exec_result r;
    sunk = 0;
    double c0 = cpu_s();
    int64_t t0 = vk_time_mono_ns();
    if (vk_exec_run(&env, &spec, sink, NULL, NULL, &r, &err) != 0 || r.exit_code != 0) {
        fprintf(stderr, "bench/mask: run failed: %s\n", err.msg);
        exit(1);
    }
    double s = (double)(vk_time_mono_ns() - t0) / 1e9, c = cpu_s() - c0;
    double mb_out = (double)r.output_bytes / 1e6;
    printf("  %3d values: %7.1f MB in %.2f s = %7.1f MB/s; worker CPU %.2f s = %.1f%% of a core "
           "at 20 MB/s\n",
           values, mb_out, s, mb_out / s, c, c / mb_out * 20.0 * 100.0);
    vk_mask_free(m);
    vk_exec_env_release(&env);
    char rm[128];
    snprintf(rm, sizeof rm, "rm -rf '%s'", root);
    if (system(rm) != 0)
        fprintf(stderr, "bench/mask: cannot remove %s\n", root);
}

int main(int argc, char **argv)
{
    size_t mb = argc > 1 ? (size_t)atol(argv[1]) : 256;
    size_t n = mb * 1000 * 1000;
    char *text = make_text(n);
    printf("masker alone, %zu MB of build-log text:\n", mb);
    int counts[] = {0, 1, NVALUES};
    size_t chunks[] = {4096, 65536};
    for (size_t i = 0; i < 3; i++)
        for (size_t j = 0; j < 2; j++)
            engine(text, n, counts[i], chunks[j]);

    const char *e = getenv("VK_BENCH_MASK_MB");
    size_t emb = e ? (size_t)atol(e) : 200;
    char file[] = "/tmp/vk-bench-mask-text-XXXXXX";
    int fd = mkstemp(file);
    size_t fbytes = 8 * 1000 * 1000;
    if (fd < 0 || write(fd, text, fbytes) != (ssize_t)fbytes)
        exit(1);
    close(fd);
    printf("through the executor (a script printing %zu MB as fast as it can):\n", emb);
    executor(file, emb, 0);
    executor(file, emb, NVALUES);
    unlink(file);
    free(text);
    return 0;
}
