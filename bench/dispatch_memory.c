/*
 * dispatch_memory — resident memory of the server and a worker (issue 5, part 3).
 *
 *   dispatch_memory [-n WAITERS] [VULCAN_BIN]        (default 1000 waiters)
 *
 * 1. A real `vulcan server --workers 0` (SQLite in a temporary directory):
 *    VmRSS 1 s after /health answers (idle).
 * 2. WAITERS workers registered (POST /api/v1/workers/register, one by one),
 *    then one long-poll each (POST /api/v1/work/request, wait_s 60), all at once
 *    from one curl multi handle in this process (one connection per request).
 *    When every request has been sent and none was answered for 2 s, the
 *    server's VmRSS, VmHWM, thread count, open descriptors, and the CPU it used
 *    while they all waited for 3 s. Then every connection is closed and the RSS
 *    read again 1 s later.
 * 3. An idle `vulcan worker --sandbox none` (concurrency 1, then 4) against that
 *    server: VmRSS 2 s after start.
 *
 * The soft RLIMIT_NOFILE is raised to the hard limit first (the server inherits it).
 */
#include "dispatch_common.h"

#include <curl/curl.h>
#include <dirent.h>
#include <sys/resource.h>

static int count_fds(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
    DIR *d = opendir(path);
    if (!d)
        return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

/* Where the RSS is: anonymous vs file-backed (shared libraries), PSS, and the
 * file mappings holding the most resident pages. */
static void print_smaps(pid_t pid)
{
    char path[64], line[512], name[256] = "";
    snprintf(path, sizeof(path), "/proc/%d/smaps", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    struct {
        char name[256];
        long kb;
    } top[64];
    memset(top, 0, sizeof(top));
    int ntop = 0;
    long anon = 0, pss = 0, rss = 0;
    while (fgets(line, sizeof(line), f)) {
        unsigned long a, b;
        char perms[8];
        int off = 0;
        if (sscanf(line, "%lx-%lx %7s %*s %*s %*s %n", &a, &b, perms, &off) == 3 && off > 0) {
            snprintf(name, sizeof(name), "%s", line + off);
            name[strcspn(name, "\n")] = '\0';
            continue;
        }
        long v;
        if (sscanf(line, "Rss: %ld", &v) == 1) {
            rss += v;
            if (name[0] == '/') {
                int i = 0;
                while (i < ntop && strcmp(top[i].name, name) != 0)
                    i++;
                if (i == ntop && ntop < 64) {
                    snprintf(top[ntop].name, sizeof(top[ntop].name), "%s", name);
                    top[ntop++].kb = 0;
                }
                if (i < ntop)
                    top[i].kb += v;
            }
        } else if (sscanf(line, "Pss: %ld", &v) == 1) {
            pss += v;
        } else if (sscanf(line, "Anonymous: %ld", &v) == 1) {
            anon += v;
        }
    }
    fclose(f);
    printf("      RSS %ld kB = anonymous %ld kB + file-backed %ld kB; PSS %ld kB\n", rss, anon,
           rss - anon, pss);
    printf("      file-backed RSS by object:");
    for (int k = 0; k < 6 && ntop > 0; k++) {
        int best = 0;
        for (int i = 1; i < ntop; i++)
            if (top[i].kb > top[best].kb)
                best = i;
        const char *base = strrchr(top[best].name, '/');
        printf("%s %s %ld", k ? "," : "", base ? base + 1 : top[best].name, top[best].kb);
        top[best] = top[--ntop];
    }
    printf(" kB\n");
}

static size_t discard(char *p, size_t s, size_t n, void *ud)
{
    (void)p;
    (void)ud;
    return s * n;
}

static void print_proc(const char *label, pid_t pid)
{
    printf("  %-34s VmRSS %6ld kB   VmHWM %6ld kB   threads %ld   fds %d\n", label,
           bench_proc_status(pid, "VmRSS"), bench_proc_status(pid, "VmHWM"),
           bench_proc_status(pid, "Threads"), count_fds(pid));
}

/* Drive `m` for `ms`; returns how many transfers finished meanwhile. */
static int drive(CURLM *m, int ms, int *running)
{
    int done = 0;
    int64_t end = vk_time_mono_ns() + (int64_t)ms * 1000000;
    while (vk_time_mono_ns() < end) {
        curl_multi_perform(m, running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left)))
            if (msg->msg == CURLMSG_DONE)
                done++;
        int nfds;
        curl_multi_poll(m, NULL, 0, 50, &nfds);
    }
    return done;
}

static int waiters(struct bench_server *s, int n)
{
    char **ids = calloc((size_t)n, sizeof(char *));
    CURL **easy = calloc((size_t)n, sizeof(CURL *));
    char **bodies = calloc((size_t)n, sizeof(char *));
    CURLM *m = curl_multi_init();
    struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    hdrs = curl_slist_append(hdrs, "Expect:");
    int rc = -1, added = 0;
    if (!ids || !easy || !bodies || !m || !hdrs)
        goto out;
    int64_t t0 = vk_time_mono_ns();
    for (int i = 0; i < n; i++) {
        char name[32];
        snprintf(name, sizeof(name), "sim-%d", i);
        json_t *reg = json_pack("{s:s, s:s, s:s}", "machine_group", "default", "name", name,
                                "version", "bench");
        json_t *a = NULL;
        long st = bench_json(s->cl, "POST", "/api/v1/workers/register", reg, &a);
        json_decref(reg);
        const char *wid = json_string_value(json_object_get(a, "worker_id"));
        if (st != 200 || !wid) {
            fprintf(stderr, "register %d: HTTP %ld\n", i, st);
            json_decref(a);
            goto out;
        }
        ids[i] = strdup(wid);
        json_decref(a);
    }
    printf("  registered %d workers in %.0f ms\n", n, (double)(vk_time_mono_ns() - t0) / 1e6);
    char url[128];
    snprintf(url, sizeof(url), "%s/api/v1/work/request", s->url);
    for (int i = 0; i < n; i++) {
        bodies[i] = malloc(128);
        easy[i] = curl_easy_init();
        if (!bodies[i] || !easy[i])
            goto out;
        snprintf(bodies[i], 128, "{\"worker_id\":\"%s\",\"wait_s\":60}", ids[i]);
        curl_easy_setopt(easy[i], CURLOPT_URL, url);
        curl_easy_setopt(easy[i], CURLOPT_POSTFIELDS, bodies[i]);
        curl_easy_setopt(easy[i], CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(easy[i], CURLOPT_TIMEOUT_MS, 90000L);
        curl_easy_setopt(easy[i], CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(easy[i], CURLOPT_FORBID_REUSE, 1L);
        curl_easy_setopt(easy[i], CURLOPT_WRITEFUNCTION, discard);
        curl_multi_add_handle(m, easy[i]);
        added++;
    }
    int running = 0, done = 0;
    t0 = vk_time_mono_ns();
    /* Send them all, then wait until nothing is answered for 2 s. */
    for (int k = 0; k < 60; k++) {
        int d = drive(m, 2000, &running);
        done += d;
        if (d == 0 && k > 0)
            break;
    }
    printf("  %d long-polls open (%d answered early) after %.0f ms\n", running, done,
           (double)(vk_time_mono_ns() - t0) / 1e6);
    double c0, cc, c1;
    bench_proc_cpu(s->pid, &c0, &cc);
    drive(m, 3000, &running);
    bench_proc_cpu(s->pid, &c1, &cc);
    char label[64];
    snprintf(label, sizeof(label), "server, %d long-polls waiting:", running);
    print_proc(label, s->pid);
    print_smaps(s->pid);
    printf("  server CPU while they waited 3 s:  %.0f ms\n", c1 - c0);
    rc = 0;
out:
    for (int i = 0; i < added; i++) {
        curl_multi_remove_handle(m, easy[i]);
        curl_easy_cleanup(easy[i]);
    }
    if (m)
        curl_multi_cleanup(m);
    curl_slist_free_all(hdrs);
    for (int i = 0; ids && i < n; i++)
        free(ids[i]);
    for (int i = 0; bodies && i < n; i++)
        free(bodies[i]);
    free(ids);
    free(bodies);
    free(easy);
    return rc;
}

int main(int argc, char **argv)
{
    int n = 1000;
    const char *binarg = NULL;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "-n") == 0 && i + 1 < argc)
            n = atoi(argv[++i]);
        else if (argv[i][0] != '-')
            binarg = argv[i];
        else {
            fprintf(stderr, "usage: dispatch_memory [-n WAITERS] [VULCAN_BIN]\n");
            return 2;
        }
    }
    if (n < 1 || n > 15000) {
        fprintf(stderr, "dispatch_memory: -n between 1 and 15000\n");
        return 2;
    }
    char bin[PATH_MAX];
    bench_vulcan_bin(binarg, bin);
    if (access(bin, X_OK) != 0) {
        fprintf(stderr, "dispatch_memory: no vulcan binary at '%s'\n", bin);
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    getrlimit(RLIMIT_NOFILE, &rl);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    char load[64];
    bench_loadavg(load);
    printf("dispatch memory; RLIMIT_NOFILE %llu; load average before: %s\n",
           (unsigned long long)rl.rlim_cur, load);

    struct bench_server s;
    if (bench_server_start(&s, bin) != 0)
        return 1;
    usleep(1000000);
    print_proc("server, idle (1 s after start):", s.pid);
    print_smaps(s.pid);
    int rc = waiters(&s, n);
    usleep(1000000);
    print_proc("server, 1 s after they all closed:", s.pid);

    /* `vulcan worker`, then `vulcan-worker` when it was built (the lean executable). */
    for (int full = 1; full >= 0 && rc == 0; full--) {
        setenv("VK_BENCH_FULL_WORKER", full ? "1" : "0", 1);
        for (int conc = 1; conc <= 4; conc += 3) {
            pid_t w = bench_worker_start(&s, bin, conc + 4 * !full, conc, 30);
            if (w < 0) {
                rc = -1;
                break;
            }
            usleep(2000000);
            char exe[PATH_MAX + 32], link[64], label[96];
            snprintf(link, sizeof(link), "/proc/%d/exe", (int)w);
            ssize_t el = readlink(link, exe, sizeof(exe) - 1);
            exe[el > 0 ? el : 0] = '\0';
            const char *base = strrchr(exe, '/');
            snprintf(label, sizeof(label), "%s, idle 2 s, concurrency %d:",
                     base && strcmp(base + 1, "vulcan-worker") == 0 ? "vulcan-worker" : "worker",
                     conc);
            print_proc(label, w);
            print_smaps(w);
            bench_stop(w, 10000);
        }
    }
    unsetenv("VK_BENCH_FULL_WORKER");
    bench_server_stop(&s, false);
    bench_loadavg(load);
    printf("load average after: %s\n", load);
    curl_global_cleanup();
    return rc ? 1 : 0;
}
