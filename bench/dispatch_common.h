/*
 * dispatch_common.h — helpers shared by the dispatch benchmarks
 * (bench/dispatch.c, bench/dispatch_latency.c, bench/dispatch_memory.c).
 *
 * Not a library header: every bench/<name>.c is its own program, so these are
 * `static inline` (unused ones cost nothing and raise no warning). They start
 * and stop real `vulcan` processes, read /proc/PID/{stat,status}, make and
 * remove temporary directories, and talk to a server with vk_http_client.
 * Single-threaded use only (except the pure helpers: percentiles, clocks).
 */
#ifndef VK_BENCH_DISPATCH_COMMON_H
#define VK_BENCH_DISPATCH_COMMON_H

#include "vulcan/http.h"
#include "vulcan/util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

/* ---------------------------------------------------------------- Clocks, stats */

static inline int64_t bench_real_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of `v` (sorted here, in place); p in [0, 100]. */
static inline double bench_pct(double *v, size_t n, double p)
{
    if (n == 0)
        return 0;
    qsort(v, n, sizeof(*v), bench_cmp_double);
    size_t k = (size_t)(p / 100.0 * (double)n + 0.999999);
    if (k < 1)
        k = 1;
    if (k > n)
        k = n;
    return v[k - 1];
}

static inline double bench_mean(const double *v, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += v[i];
    return n ? s / (double)n : 0;
}

static inline void bench_loadavg(char out[64])
{
    out[0] = '\0';
    FILE *f = fopen("/proc/loadavg", "r");
    if (!f)
        return;
    if (!fgets(out, 64, f))
        out[0] = '\0';
    fclose(f);
    out[strcspn(out, "\n")] = '\0';
}

/* ---------------------------------------------------------------- /proc */

/* CPU of a process in ms: its own threads (utime+stime) and its waited-for
 * children (cutime+cstime). Returns 0 or -1. */
static inline int bench_proc_cpu(pid_t pid, double *self_ms, double *children_ms)
{
    char path[64], buf[2048];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')'); /* comm may hold spaces */
    if (!p)
        return -1;
    unsigned long long ut, st;
    long long cut, cst;
    /* After ')': state(3) ppid pgrp session tty_nr tpgid flags minflt cminflt majflt
     * cmajflt utime(14) stime cutime cstime. */
    if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %lld %lld", &ut, &st,
               &cut, &cst) != 4)
        return -1;
    double tick = 1000.0 / (double)sysconf(_SC_CLK_TCK);
    *self_ms = (double)(ut + st) * tick;
    *children_ms = (double)(cut + cst) * tick;
    return 0;
}

/* A "Key:   123 kB" field of /proc/PID/status, in kB (-1 when absent). */
static inline long bench_proc_status(pid_t pid, const char *key)
{
    char path[64], line[256];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long v = -1;
    size_t kl = strlen(key);
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
            v = strtol(line + kl + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return v;
}

/* ---------------------------------------------------------------- Files, processes */

/* The vulcan binary: argv value, else $VULCAN_BIN, else <dir of this program>/../vulcan. */
static inline void bench_vulcan_bin(const char *arg, char out[PATH_MAX])
{
    const char *env = getenv("VULCAN_BIN");
    if (arg && *arg) {
        snprintf(out, PATH_MAX, "%s", arg);
        return;
    }
    if (env && *env) {
        snprintf(out, PATH_MAX, "%s", env);
        return;
    }
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
    if (n <= 0) {
        snprintf(out, PATH_MAX, "./vulcan");
        return;
    }
    self[n] = '\0';
    char *d = dirname(self); /* <build>/bench */
    snprintf(out, PATH_MAX, "%s/../vulcan", d);
}

static inline int bench_rm_one(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(p);
    return 0;
}

static inline void bench_rmrf(const char *dir)
{
    if (dir && *dir)
        nftw(dir, bench_rm_one, 32, FTW_DEPTH | FTW_PHYS);
}

/* A free TCP port on 127.0.0.1 (bind to 0, read it, close: racy but fine here). */
static inline int bench_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(a);
    int port = -1;
    if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    close(fd);
    return port;
}

/* Start argv[0] with stdout and stderr appended to `log`. Returns the pid or -1. */
static inline pid_t bench_spawn(char *const argv[], const char *log)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    pid_t pid = -1;
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) {
        fprintf(stderr, "cannot start %s: %s\n", argv[0], strerror(rc));
        return -1;
    }
    return pid;
}

/* SIGTERM, wait up to `ms`, then SIGKILL. */
static inline void bench_stop(pid_t pid, int ms)
{
    if (pid <= 0)
        return;
    kill(pid, SIGTERM);
    for (int i = 0; i < ms / 10; i++) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid)
            return;
        usleep(10000);
    }
    kill(pid, SIGKILL);
    int st;
    waitpid(pid, &st, 0);
}

/* ---------------------------------------------------------------- Server */

struct bench_server {
    pid_t pid;
    int port;
    char url[64];
    char dir[PATH_MAX];
    struct vk_http_client *cl;
};

static inline int bench_health_wait(struct vk_http_client *cl, int ms)
{
    for (int i = 0; i < ms / 20; i++) {
        struct vk_http_response r;
        struct vk_err err;
        if (vk_http_client_request(cl, "GET", "/health", NULL, NULL, 0, 1000, &r, &err) == 0) {
            long st = r.status;
            vk_http_response_release(&r);
            if (st == 200)
                return 0;
        }
        usleep(20000);
    }
    return -1;
}

/*
 * Append the whitespace-separated words of environment variable `var` (e.g.
 * VK_BENCH_SERVER_ARGS="--otlp-endpoint http://127.0.0.1:4318") to the NULL-terminated
 * `argv` (room for `cap` entries), splitting a copy kept in `buf`. Returns 0, or -1 when
 * they do not fit.
 */
static inline int bench_extra_args(char **argv, size_t cap, const char *var, char *buf,
                                   size_t bufsz)
{
    const char *v = getenv(var);
    size_t n = 0;
    while (argv[n])
        n++;
    if (!v || !*v)
        return 0;
    if (strlen(v) >= bufsz)
        return -1;
    snprintf(buf, bufsz, "%s", v);
    char *save = NULL;
    for (char *w = strtok_r(buf, " \t", &save); w; w = strtok_r(NULL, " \t", &save)) {
        if (n + 1 >= cap)
            return -1;
        argv[n++] = w;
    }
    argv[n] = NULL;
    return 0;
}

/* Start `vulcan server --workers 0` over SQLite in a fresh temporary directory
 * (plus the words of $VK_BENCH_SERVER_ARGS). */
static inline int bench_server_start(struct bench_server *s, const char *bin)
{
    memset(s, 0, sizeof(*s));
    s->pid = -1;
    snprintf(s->dir, sizeof(s->dir), "/tmp/vk-bench-XXXXXX");
    if (!mkdtemp(s->dir)) {
        perror("mkdtemp");
        return -1;
    }
    s->port = bench_free_port();
    snprintf(s->url, sizeof(s->url), "http://127.0.0.1:%d", s->port);
    char listen[64], db[PATH_MAX + 64], log[PATH_MAX + 64];
    snprintf(listen, sizeof(listen), "127.0.0.1:%d", s->port);
    snprintf(db, sizeof(db), "sqlite:%s/vulcan.db", s->dir);
    snprintf(log, sizeof(log), "%s/server.log", s->dir);
    /* Without credentials unless $VK_BENCH_AUTH (bench/dispatch --auth) is set. Every waiter
     * is on loopback (dispatch_memory: 1000 of them): no per-address connection limit. */
    char *argv[32] = {(char *)bin,
                      "server",
                      "--listen",
                      listen,
                      "--database",
                      db,
                      "--data-dir",
                      s->dir,
                      "--workers",
                      "0",
                      "--max-connections-per-address",
                      "100000",
                      "--log-format",
                      "json",
                      getenv("VK_BENCH_AUTH") ? NULL : "--no-auth",
                      NULL};
    char extra[1024];
    if (bench_extra_args(argv, VK_ARRAY_LEN(argv), "VK_BENCH_SERVER_ARGS", extra, sizeof(extra)) !=
        0) {
        fprintf(stderr, "VK_BENCH_SERVER_ARGS is too long\n");
        return -1;
    }
    s->pid = bench_spawn(argv, log);
    if (s->pid < 0)
        return -1;
    struct vk_http_client_opts o = {
        .base_url = s->url, .timeout_ms = 60000, .max_response = 64u * 1024u * 1024u};
    struct vk_err err;
    if (vk_http_client_new(&o, &s->cl, &err) != 0) {
        fprintf(stderr, "client: %s\n", err.msg);
        return -1;
    }
    if (bench_health_wait(s->cl, 10000) != 0) {
        fprintf(stderr, "the server did not come up (log: %s)\n", log);
        return -1;
    }
    return 0;
}

static inline void bench_server_stop(struct bench_server *s, bool keep_dir)
{
    bench_stop(s->pid, 10000);
    s->pid = -1;
    vk_http_client_free(s->cl);
    s->cl = NULL;
    if (!keep_dir)
        bench_rmrf(s->dir);
}

/*
 * For a server started with --require-auth (in $VK_BENCH_SERVER_ARGS): send the initial
 * admin token with s->cl's requests and put a fresh registration token in this process's
 * $VULCAN_REGISTRATION_TOKEN, which the workers started next inherit. Returns 0 or -1.
 */
static inline int bench_server_auth(struct bench_server *s, const char *bin)
{
    char path[PATH_MAX + 64], tok[128] = "", cmd[2 * PATH_MAX + 128];
    snprintf(path, sizeof(path), "%s/initial-admin-token", s->dir);
    FILE *f = fopen(path, "r");
    if (!f || !fgets(tok, sizeof(tok), f)) {
        fprintf(stderr, "no initial admin token in %s\n", s->dir);
        if (f)
            fclose(f);
        return -1;
    }
    fclose(f);
    tok[strcspn(tok, "\r\n")] = '\0';
    char hv[160];
    snprintf(hv, sizeof(hv), "Bearer %s", tok);
    if (vk_http_client_set_header(s->cl, "Authorization", hv) != 0)
        return -1;
    snprintf(cmd, sizeof(cmd),
             "'%s' admin create-registration-token --database 'sqlite:%s/vulcan.db'", bin, s->dir);
    FILE *p = popen(cmd, "r");
    char reg[128] = "";
    bool ok = p && fgets(reg, sizeof(reg), p);
    if (p && pclose(p) != 0)
        ok = false;
    if (!ok) {
        fprintf(stderr, "cannot make a registration token\n");
        return -1;
    }
    reg[strcspn(reg, "\r\n")] = '\0';
    return setenv("VULCAN_REGISTRATION_TOKEN", reg, 1);
}

/* Start `vulcan worker` (sandbox none) with its own work dir under the server's dir
 * (plus the words of $VK_BENCH_WORKER_ARGS). */
static inline pid_t bench_worker_start(const struct bench_server *s, const char *bin, int index,
                                       int concurrency, int wait_s)
{
    char wd[PATH_MAX + 32], log[PATH_MAX + 32], conc[16], name[32], wait[16];
    snprintf(wd, sizeof(wd), "%s/work-%d", s->dir, index);
    snprintf(log, sizeof(log), "%s/worker-%d.log", s->dir, index);
    snprintf(conc, sizeof(conc), "%d", concurrency);
    snprintf(name, sizeof(name), "bench-%d", index);
    snprintf(wait, sizeof(wait), "%d", wait_s);
    /* `vulcan-worker` next to `bin` when it is there, as `vulcan server --workers` does;
     * VK_BENCH_FULL_WORKER=1 runs `vulcan worker` instead. */
    char lean[PATH_MAX + 32];
    snprintf(lean, sizeof(lean), "%s", bin);
    char *slash = strrchr(lean, '/');
    const char *full = getenv("VK_BENCH_FULL_WORKER");
    bool use_lean = slash && !(full && strcmp(full, "1") == 0);
    if (use_lean) {
        snprintf(slash + 1, sizeof(lean) - (size_t)(slash + 1 - lean), "vulcan-worker");
        use_lean = access(lean, X_OK) == 0;
    }
    char *argv[40] = {(char *)bin,
                      use_lean ? lean : "worker",
                      "--server",
                      (char *)s->url,
                      "--group",
                      "default",
                      "--concurrency",
                      conc,
                      "--work-dir",
                      wd,
                      "--sandbox",
                      "none",
                      "--name",
                      name,
                      "--wait",
                      wait,
                      "--log-format",
                      "json",
                      NULL};
    char extra[1024];
    if (bench_extra_args(argv, VK_ARRAY_LEN(argv), "VK_BENCH_WORKER_ARGS", extra, sizeof(extra)) !=
        0) {
        fprintf(stderr, "VK_BENCH_WORKER_ARGS is too long\n");
        return -1;
    }
    /* vulcan-worker takes the worker's options after its own name. */
    return use_lean ? bench_spawn(argv + 1, log) : bench_spawn(argv, log);
}

/* JSON round trip; returns the HTTP status (0 on transport error), *answer owned. */
static inline long bench_json(struct vk_http_client *cl, const char *method, const char *path,
                              json_t *body, json_t **answer)
{
    long status = 0;
    struct vk_err err;
    json_t *a = NULL;
    if (vk_http_client_json(cl, method, path, body, 0, &status, &a, &err) != 0) {
        fprintf(stderr, "%s %s: %s\n", method, path, err.msg);
        status = 0;
    }
    if (answer)
        *answer = a;
    else
        json_decref(a);
    return status;
}

/* Queue metrics of group "default": ready+pending, running, alive workers. */
static inline int bench_queue(struct vk_http_client *cl, long long *pending, long long *running,
                              long long *workers)
{
    json_t *a = NULL;
    long st = bench_json(cl, "GET", "/api/v1/queue/metrics?machine_group=default", NULL, &a);
    if (st != 200) {
        json_decref(a);
        return -1;
    }
    *pending = json_integer_value(json_object_get(a, "pending_fragments"));
    *running = json_integer_value(json_object_get(a, "running_fragments"));
    *workers = json_integer_value(json_object_get(a, "active_workers"));
    json_decref(a);
    return 0;
}

/* A workflow: one `parallel` group of `n` fragments running `script` (n > 1), or
 * a single fragment (n == 1). Returns owned (free()). */
static inline char *bench_workflow(size_t n, const char *script)
{
    size_t cap = 256 + n * (strlen(script) + 32);
    char *s = malloc(cap);
    if (!s)
        return NULL;
    size_t len = (size_t)snprintf(s, cap,
                                  "version \"0.1\"\nname \"bench\"\ntriggers \"manual\"\n"
                                  "chain {\n    machine \"default\"\n%s",
                                  n > 1 ? "    parallel {\n" : "");
    for (size_t i = 0; i < n && len < cap; i++)
        len += (size_t)snprintf(s + len, cap - len, "        fragment { run \"%s\" }\n", script);
    int w = len < cap ? snprintf(s + len, cap - len, "%s}\n", n > 1 ? "    }\n" : "") : -1;
    if (w < 0 || (size_t)w >= cap - len) {
        free(s);
        return NULL;
    }
    return s;
}

/* POST /api/v1/parse; copies the chain id. Returns 0 or -1. */
static inline int bench_submit(struct vk_http_client *cl, const char *wf, char id[64])
{
    json_t *body =
        json_pack("{s:s, s:s, s:s}", "content", wf, "branch", "main", "trigger", "manual");
    json_t *a = NULL;
    long st = bench_json(cl, "POST", "/api/v1/parse", body, &a);
    json_decref(body);
    const char *cid = json_string_value(json_object_get(a, "chain_id"));
    int rc = -1;
    if (st == 201 && cid) {
        snprintf(id, 64, "%s", cid);
        rc = 0;
    } else {
        char *dump = a ? json_dumps(a, 0) : NULL;
        fprintf(stderr, "submit failed: HTTP %ld %s\n", st, dump ? dump : "");
        free(dump);
    }
    json_decref(a);
    return rc;
}

/* An API time ("2026-01-01T00:00:00.123Z") in ms since the epoch; -1 if null. */
static inline int64_t bench_api_time(json_t *v)
{
    int64_t ms;
    if (!json_is_string(v) || vk_time_parse(json_string_value(v), &ms) != 0)
        return -1;
    return ms;
}

#endif
