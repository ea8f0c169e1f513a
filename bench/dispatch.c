/*
 * dispatch — end-to-end dispatch throughput (issue 5, part 1).
 *
 *   dispatch [-n FRAGMENTS] [-w WORKERS] [-c CONCURRENCY] [--serial-too|--no-serial]
 *            [--auth] [--keep] [VULCAN_BIN]
 *
 * Defaults: 2000 fragments, 2 workers x concurrency 4, then (unless --no-serial)
 * the same with 1 worker x concurrency 1. The vulcan binary comes from the
 * argument, $VULCAN_BIN, or <dir of this program>/../vulcan.
 *
 * 1. Baseline: FRAGMENTS x posix_spawn("/bin/sh -c true") + waitpid, serially,
 *    in this process: wall time and the scripts' CPU (RUSAGE_CHILDREN).
 * 2. For each configuration: a real `vulcan server --workers 0` over SQLite in
 *    a temporary directory, real `vulcan worker --sandbox none` processes; when
 *    every worker has registered and had 1 s to start its long-polls, submit one
 *    workflow whose chain is one `parallel` group of FRAGMENTS `fragment { run
 *    "true" }` and poll GET /api/v1/queue/metrics every 100 ms until nothing is
 *    pending or running. Wall time = the chain's finished_at (server clock,
 *    ms) minus CLOCK_REALTIME just before the submit. CPU = utime+stime of the
 *    server and the workers from /proc/PID/stat before and after (their own
 *    threads only: cutime/cstime, the scripts' CPU, are reported apart).
 *    Then the fragment tree gives, per fragment, ready->started (claim) and
 *    started->finished (run on the worker, from claim to the result's commit).
 *
 * --auth: the main configuration runs twice in turn, without and with `--require-auth`
 * (workers with a registration token, every fragment with its job token), and the ratio
 * of the two is printed: the cost of the trust layer (issue 13: within 5%).
 *
 * Prints figures; never fails on a target (exit 1 only when it cannot run).
 */
#include "dispatch_common.h"

#include <sys/resource.h>
#include <sys/time.h>

struct run_figs {
    double wall_ms, submit_ms, server_cpu, worker_cpu, script_cpu;
    double claim_p50, claim_p99, run_p50, run_p99, run_mean;
    size_t completed;
    long server_rss_kb, worker_rss_kb;
};

static double tv_ms(struct timeval tv)
{
    return (double)tv.tv_sec * 1000.0 + (double)tv.tv_usec / 1000.0;
}

static int baseline(char *const argv[], int n, double *wall_ms, double *cpu_ms)
{
    struct rusage r0, r1;
    getrusage(RUSAGE_CHILDREN, &r0);
    int64_t t0 = vk_time_mono_ns();
    for (int i = 0; i < n; i++) {
        pid_t pid;
        int st;
        if (posix_spawn(&pid, argv[0], NULL, NULL, argv, environ) != 0)
            return -1;
        waitpid(pid, &st, 0);
    }
    *wall_ms = (double)(vk_time_mono_ns() - t0) / 1e6;
    getrusage(RUSAGE_CHILDREN, &r1);
    *cpu_ms = tv_ms(r1.ru_utime) + tv_ms(r1.ru_stime) - tv_ms(r0.ru_utime) - tv_ms(r0.ru_stime);
    return 0;
}

/* Walk the fragment tree: collect per-inline-fragment durations. */
static void collect(json_t *frags, double *claim, double *run, size_t *n, size_t cap,
                    size_t *completed)
{
    size_t i;
    json_t *f;
    json_array_foreach(frags, i, f)
    {
        json_t *kids = json_object_get(f, "children");
        if (json_is_array(kids) && json_array_size(kids)) {
            collect(kids, claim, run, n, cap, completed);
            continue;
        }
        const char *st = json_string_value(json_object_get(f, "status"));
        if (st && strcmp(st, "completed") == 0)
            (*completed)++;
        int64_t ra = bench_api_time(json_object_get(f, "ready_at"));
        int64_t sa = bench_api_time(json_object_get(f, "started_at"));
        int64_t fa = bench_api_time(json_object_get(f, "finished_at"));
        if (ra < 0 || sa < 0 || fa < 0 || *n >= cap)
            continue;
        claim[*n] = (double)(sa - ra);
        run[*n] = (double)(fa - sa);
        (*n)++;
    }
}

static int run_config(const char *bin, int nfrag, int nworkers, int conc, bool keep, bool auth,
                      struct run_figs *fg)
{
    memset(fg, 0, sizeof(*fg));
    struct bench_server s;
    pid_t wp[64];
    int started = 0, rc = -1;
    char *wf = NULL;
    double *claim = NULL, *run = NULL;
    json_t *chain = NULL;
    if (auth)
        setenv("VK_BENCH_AUTH", "1", 1);
    int up = bench_server_start(&s, bin);
    if (auth)
        unsetenv("VK_BENCH_AUTH");
    if (up != 0 || (auth && bench_server_auth(&s, bin) != 0))
        goto out;
    for (; started < nworkers; started++) {
        wp[started] = bench_worker_start(&s, bin, started, conc, 30);
        if (wp[started] < 0)
            goto out;
    }
    long long pending, running, alive = 0;
    for (int i = 0; i < 500 && alive < nworkers; i++) {
        if (bench_queue(s.cl, &pending, &running, &alive) != 0)
            goto out;
        if (alive < nworkers)
            usleep(20000);
    }
    if (alive < nworkers) {
        fprintf(stderr, "only %lld of %d workers registered\n", alive, nworkers);
        goto out;
    }
    usleep(1000000); /* let every slot park its long-poll */
    wf = bench_workflow((size_t)nfrag, "true");
    if (!wf)
        goto out;

    double s0 = 0, c0 = 0, w0[64] = {0}, wc0[64] = {0}, s1 = 0, c1 = 0;
    bench_proc_cpu(s.pid, &s0, &c0);
    for (int i = 0; i < nworkers; i++)
        bench_proc_cpu(wp[i], &w0[i], &wc0[i]);
    int64_t t0_real = bench_real_ns();
    int64_t t0 = vk_time_mono_ns();
    char cid[64];
    if (bench_submit(s.cl, wf, cid) != 0)
        goto out;
    fg->submit_ms = (double)(vk_time_mono_ns() - t0) / 1e6;
    int64_t deadline = t0 + 600LL * 1000000000LL;
    for (;;) {
        usleep(100000);
        if (bench_queue(s.cl, &pending, &running, &alive) != 0)
            goto out;
        if (pending == 0 && running == 0)
            break;
        if (vk_time_mono_ns() > deadline) {
            fprintf(stderr, "timed out: %lld pending, %lld running\n", pending, running);
            goto out;
        }
    }
    double mono_wall = (double)(vk_time_mono_ns() - t0) / 1e6;
    bench_proc_cpu(s.pid, &s1, &c1);
    fg->server_cpu = s1 - s0;
    fg->server_rss_kb = bench_proc_status(s.pid, "VmHWM");
    for (int i = 0; i < nworkers; i++) {
        double w1 = 0, wc1 = 0;
        bench_proc_cpu(wp[i], &w1, &wc1);
        fg->worker_cpu += w1 - w0[i];
        fg->script_cpu += wc1 - wc0[i];
        long hwm = bench_proc_status(wp[i], "VmHWM");
        if (hwm > fg->worker_rss_kb)
            fg->worker_rss_kb = hwm;
    }

    char path[128];
    snprintf(path, sizeof(path), "/api/v1/chains/%s", cid);
    if (bench_json(s.cl, "GET", path, NULL, &chain) != 200)
        goto out;
    const char *status = json_string_value(json_object_get(chain, "status"));
    int64_t fin = bench_api_time(json_object_get(chain, "finished_at"));
    fg->wall_ms = fin > 0 ? (double)fin - (double)t0_real / 1e6 : mono_wall;
    claim = calloc((size_t)nfrag, sizeof(double));
    run = calloc((size_t)nfrag, sizeof(double));
    size_t n = 0;
    if (!claim || !run)
        goto out;
    collect(json_object_get(chain, "fragments"), claim, run, &n, (size_t)nfrag, &fg->completed);
    fg->run_mean = bench_mean(run, n);
    fg->claim_p50 = bench_pct(claim, n, 50);
    fg->claim_p99 = bench_pct(claim, n, 99);
    fg->run_p50 = bench_pct(run, n, 50);
    fg->run_p99 = bench_pct(run, n, 99);
    if (!status || strcmp(status, "completed") != 0 || fg->completed != (size_t)nfrag)
        fprintf(stderr, "warning: chain %s, %zu of %d fragments completed\n", status ? status : "?",
                fg->completed, nfrag);
    rc = 0;
out:
    for (int i = 0; i < started; i++)
        kill(wp[i], SIGTERM);
    for (int i = 0; i < started; i++)
        bench_stop(wp[i], 10000);
    unsetenv("VULCAN_REGISTRATION_TOKEN");
    if (keep)
        fprintf(stderr, "kept %s\n", s.dir);
    bench_server_stop(&s, keep);
    json_decref(chain);
    free(claim);
    free(run);
    free(wf);
    return rc;
}

static void print_config(const char *label, int n, const struct run_figs *f, double base_ms)
{
    double machinery = f->server_cpu + f->worker_cpu;
    printf("%s\n", label);
    printf("  end to end              %9.0f ms   %7.0f fragments/s   %.2fx the shell loop\n",
           f->wall_ms, (double)n / (f->wall_ms / 1000.0), f->wall_ms / base_ms);
    printf("  submit (parse+store)    %9.1f ms   (POST /api/v1/parse round trip)\n", f->submit_ms);
    printf("  CPU beyond the scripts  %9.3f ms/fragment  (server %.3f + workers %.3f)\n",
           machinery / n, f->server_cpu / n, f->worker_cpu / n);
    printf("  scripts' own CPU        %9.3f ms/fragment  (workers' cutime+cstime)\n",
           f->script_cpu / n);
    printf(
        "  ready->claimed (queued) p50 %5.0f ms   p99 %5.0f ms  (server clock, 1 ms resolution)\n",
        f->claim_p50, f->claim_p99);
    printf("  claimed->result stored  p50 %5.0f ms   p99 %5.0f ms   mean %.1f ms\n", f->run_p50,
           f->run_p99, f->run_mean);
    printf("  peak RSS                server %ld kB, worker %ld kB;  %zu/%d completed\n",
           f->server_rss_kb, f->worker_rss_kb, f->completed, n);
}

int main(int argc, char **argv)
{
    int n = 2000, workers = 2, conc = 4;
    bool serial = true, keep = false, auth = false;
    const char *binarg = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-n") == 0 && i + 1 < argc)
            n = atoi(argv[++i]);
        else if (strcmp(argv[i], "-w") == 0 && i + 1 < argc)
            workers = atoi(argv[++i]);
        else if (strcmp(argv[i], "-c") == 0 && i + 1 < argc)
            conc = atoi(argv[++i]);
        else if (strcmp(argv[i], "--no-serial") == 0)
            serial = false;
        else if (strcmp(argv[i], "--auth") == 0)
            auth = true;
        else if (strcmp(argv[i], "--keep") == 0)
            keep = true;
        else if (argv[i][0] != '-')
            binarg = argv[i];
        else {
            fprintf(stderr, "usage: dispatch [-n FRAGMENTS] [-w WORKERS] [-c CONCURRENCY] "
                            "[--no-serial] [--auth] "
                            "[--keep] [VULCAN_BIN]\n");
            return 2;
        }
    }
    if (n < 2 || workers < 1 || workers > 64 || conc < 1) {
        fprintf(stderr, "dispatch: need -n >= 2, 1 <= -w <= 64, -c >= 1\n");
        return 2;
    }
    char bin[PATH_MAX];
    bench_vulcan_bin(binarg, bin);
    if (access(bin, X_OK) != 0) {
        fprintf(stderr, "dispatch: no vulcan binary at '%s' (pass it or set VULCAN_BIN)\n", bin);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    char load[64];
    bench_loadavg(load);
    printf("dispatch throughput: %d fragments `true`, one parallel group; vulcan = %s\n", n, bin);
    printf("load average before: %s\n\n", load);

    double base_ms, base_cpu, bash_ms = 0, bash_cpu = 0;
    char *sh_argv[] = {"/bin/sh", "-c", "true", NULL};
    char *bash_argv[] = {"/bin/bash", "-e", "-o", "pipefail", "-c", "true", NULL};
    if (baseline(sh_argv, n, &base_ms, &base_cpu) != 0) {
        perror("posix_spawn");
        return 1;
    }
    printf("baseline: serial loop of %d x posix_spawn(/bin/sh -c true) + waitpid\n", n);
    printf("  end to end              %9.0f ms   %7.0f runs/s   %.3f ms/run, script CPU %.3f "
           "ms/run\n",
           base_ms, n / (base_ms / 1000.0), base_ms / n, base_cpu / n);
    /* The executor runs scripts with bash when it is installed: show that shell's own cost. */
    if (access("/bin/bash", X_OK) == 0 && baseline(bash_argv, n, &bash_ms, &bash_cpu) == 0)
        printf("  same with /bin/bash -e -o pipefail -c true (the executor's shell): %.0f ms, "
               "%.3f ms/run, script CPU %.3f ms/run\n",
               bash_ms, bash_ms / n, bash_cpu / n);
    printf("\n");

    struct run_figs f;
    char label[128];
    snprintf(label, sizeof(label), "vulcan: %d worker(s) x concurrency %d (sandbox none, SQLite)",
             workers, conc);
    if (auth) {
        /* Off, on, off, on: two of each in turn, so a noisy moment hits both sides. */
        struct run_figs off[2], on[2];
        int bad = 0;
        for (int r = 0; r < 2 && !bad; r++)
            bad = run_config(bin, n, workers, conc, keep, false, &off[r]) ||
                  run_config(bin, n, workers, conc, keep, true, &on[r]);
        if (bad) {
            printf("%s: FAILED to run\n", label);
        } else {
            for (int r = 0; r < 2; r++) {
                print_config(label, n, &off[r], base_ms);
                char l2[160];
                snprintf(l2, sizeof(l2), "%s, --require-auth", label);
                print_config(l2, n, &on[r], base_ms);
            }
            double woff = off[0].wall_ms + off[1].wall_ms, won = on[0].wall_ms + on[1].wall_ms;
            double coff =
                off[0].server_cpu + off[0].worker_cpu + off[1].server_cpu + off[1].worker_cpu;
            double con = on[0].server_cpu + on[0].worker_cpu + on[1].server_cpu + on[1].worker_cpu;
            printf("\n--require-auth / without: end to end %.3fx, machinery CPU %.3fx "
                   "(%.3f vs %.3f ms/fragment)\n",
                   won / woff, con / coff, con / 2 / n, coff / 2 / n);
        }
    } else if (run_config(bin, n, workers, conc, keep, false, &f) == 0) {
        print_config(label, n, &f, base_ms);
    } else {
        printf("%s: FAILED to run\n", label);
    }
    if (serial) {
        printf("\n");
        if (run_config(bin, n, 1, 1, keep, false, &f) == 0)
            print_config("vulcan: 1 worker x concurrency 1 (per-fragment cost without concurrency)",
                         n, &f, base_ms);
        else
            printf("1 x 1: FAILED to run\n");
    }
    bench_loadavg(load);
    printf("\nload average after: %s\n", load);
    return 0;
}
