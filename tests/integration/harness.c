/*
 * Integration-test harness (see harness.h): child processes, the per-test
 * database, polling the API, and the clean-up that runs whatever happened.
 */
#include "harness.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#if defined(__has_feature)
#if __has_feature(address_sanitizer)
#define VKT_ASAN 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__)
#define VKT_ASAN 1
#endif

/* ---------------------------------------------------------------- Small things */

int64_t vkt_now(void)
{
    return vk_time_mono_ns() / 1000000;
}

void vkt_sleep(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

int vkt_slow(void)
{
#ifdef VKT_ASAN
    return 3;
#else
    const char *s = getenv("VK_TEST_SLOW");
    return s && *s && strcmp(s, "0") != 0 ? 3 : 1;
#endif
}

char *vkt_read(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 4096, n = 0;
    char *p = malloc(cap);
    for (; p;) {
        if (n + 4096 + 1 > cap) {
            char *bigger = realloc(p, cap * 2);
            if (!bigger) {
                free(p);
                p = NULL;
                break;
            }
            p = bigger;
            cap *= 2;
        }
        size_t got = fread(p + n, 1, cap - n - 1, f);
        if (got == 0)
            break;
        n += got;
    }
    fclose(f);
    if (!p)
        return NULL;
    p[n] = '\0';
    if (len)
        *len = n;
    return p;
}

const char *vkt_write(struct vkt *t, const char *name, const char *text)
{
    static char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%s/%s", t->tmp, name) >= (int)sizeof(path))
        fail_msg("path too long");
    FILE *f = fopen(path, "wb");
    if (!f) {
        fail_msg("cannot write '%s': %s", path, strerror(errno));
        return NULL;
    }
    fputs(text, f);
    fclose(f);
    return path;
}

/* Print the last `max` bytes of a log file, for a failure's context. */
static void print_tail(const char *title, const char *path, size_t max)
{
    size_t len = 0;
    char *s = vkt_read(path, &len);
    if (!s)
        return;
    const char *p = len > max ? s + len - max : s;
    printf("---- %s (%s, last %zu bytes) ----\n%s\n---- end ----\n", title, path,
           len > max ? max : len, p);
    fflush(stdout);
    free(s);
}

static struct vkt *current; /* for failure context: the test running now */

static void context(void)
{
    if (current && current->server.log[0])
        print_tail("server log", current->server.log, 6000);
}

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        context();                                                                                 \
        fail_msg(__VA_ARGS__);                                                                     \
    } while (0)

/* ---------------------------------------------------------------- Processes */

static pid_t spawn(struct vkt *t, const char *const *argv, const char *log)
{
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0)
        FAIL("fork: %s", strerror(errno));
    if (pid > 0)
        return pid;
    int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    int nul = open("/dev/null", O_RDONLY);
    if (fd < 0 || nul < 0)
        _exit(126);
    dup2(nul, 0);
    dup2(fd, 1);
    dup2(fd, 2);
    close(fd);
    close(nul);
    /* Own process group: a stray signal to the test's group does not reach it. And it
     * dies with the test process, should CTest kill that on a timeout. */
    setpgid(0, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    /* In the test's own directory, outside the source tree: `vulcan run` inside a git
     * work tree would run against a snapshot of it (Vulcan's own sources here). */
    if (chdir(t->tmp) != 0)
        _exit(126);
    execv(t->bin, (char *const *)argv);
    fprintf(stderr, "cannot run '%s': %s\n", t->bin, strerror(errno));
    _exit(127);
}

/* Reap `p` if it exited; true when it is gone. */
static bool proc_poll(struct vkt_proc *p)
{
    if (p->pid <= 0 || p->exited)
        return true;
    int st;
    pid_t r = waitpid(p->pid, &st, WNOHANG);
    if (r == p->pid || (r < 0 && errno == ECHILD)) {
        p->exited = true;
        p->status = r == p->pid ? st : 0;
        return true;
    }
    return false;
}

static bool proc_wait(struct vkt_proc *p, int64_t timeout_ms)
{
    int64_t end = vkt_now() + timeout_ms;
    while (!proc_poll(p)) {
        if (vkt_now() >= end)
            return false;
        vkt_sleep(10);
    }
    return true;
}

static int exit_code(int st)
{
    return WIFEXITED(st) ? WEXITSTATUS(st) : WIFSIGNALED(st) ? 128 + WTERMSIG(st) : -1;
}

static void proc_kill9(struct vkt_proc *p)
{
    if (p->pid > 0 && !p->exited) {
        kill(p->pid, SIGKILL);
        p->killed = true;
        proc_wait(p, 10000);
    }
}

/* Stop `p` gracefully; true when it exited 0 (or was killed on purpose earlier). */
static bool proc_stop(struct vkt_proc *p, int64_t grace_ms)
{
    if (p->pid <= 0)
        return true;
    if (!p->exited)
        kill(p->pid, SIGTERM);
    if (!proc_wait(p, grace_ms)) {
        printf("%s (pid %d) did not stop within %lld ms of SIGTERM; killing it\n", p->name,
               (int)p->pid, (long long)grace_ms);
        kill(p->pid, SIGKILL);
        proc_wait(p, 10000);
        return false;
    }
    if (p->killed)
        return true;
    return exit_code(p->status) == 0;
}

static void check_sanitizer_log(struct vkt_proc *p, bool *ok)
{
    size_t len = 0;
    char *s = p->log[0] ? vkt_read(p->log, &len) : NULL;
    if (s && (strstr(s, "ERROR: AddressSanitizer") || strstr(s, "ERROR: LeakSanitizer") ||
              strstr(s, "runtime error:") || strstr(s, "WARNING: ThreadSanitizer"))) {
        printf("%s: sanitizer report in its log\n", p->name);
        *ok = false;
    }
    free(s);
}

static void kill_orphans(void)
{
    /* Scripts of killed workers were re-parented to us (child subreaper). */
    for (int round = 0; round < 50; round++) {
        int found = 0;
        DIR *d = opendir("/proc");
        struct dirent *e;
        while (d && (e = readdir(d)) != NULL) {
            char *end;
            long pid = strtol(e->d_name, &end, 10);
            if (*end || pid <= 0)
                continue;
            char path[64], buf[512];
            snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
            int fd = open(path, O_RDONLY);
            if (fd < 0)
                continue;
            ssize_t n = read(fd, buf, sizeof(buf) - 1);
            close(fd);
            if (n <= 0)
                continue;
            buf[n] = '\0';
            const char *rp = strrchr(buf, ')');
            char state;
            int ppid;
            if (!rp || sscanf(rp + 1, " %c %d", &state, &ppid) != 2 || ppid != (int)getpid())
                continue;
            found++;
            kill((pid_t)pid, SIGKILL);
        }
        if (d)
            closedir(d);
        while (waitpid(-1, NULL, WNOHANG) > 0)
            found++;
        if (!found)
            break;
        vkt_sleep(20);
    }
}

/* ---------------------------------------------------------------- Database */

static PGconn *pg_admin(struct vkt *t)
{
    PGconn *db = PQconnectdb(t->pg_admin);
    if (PQstatus(db) != CONNECTION_OK) {
        printf("cannot connect to '%s': %s\n", t->pg_admin, PQerrorMessage(db));
        PQfinish(db);
        return NULL;
    }
    return db;
}

static int pg_exec(PGconn *db, const char *sql)
{
    PGresult *r = PQexec(db, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        printf("'%s': %s\n", sql, PQerrorMessage(db));
    PQclear(r);
    return ok ? 0 : -1;
}

static int db_create(struct vkt *t)
{
    const char *backend = getenv("VK_TEST_BACKEND");
    t->postgres = backend && strcmp(backend, "postgres") == 0;
    if (!t->postgres) {
        snprintf(t->db_url, sizeof(t->db_url), "sqlite:%s/vulcan.db", t->tmp);
        return 0;
    }
    const char *base = getenv("VK_TEST_PG_URL");
    if (!base || !*base) {
        printf("VK_TEST_BACKEND=postgres needs VK_TEST_PG_URL (run through scripts/pg-test.sh)\n");
        return -1;
    }
    /* postgres://user@host:port/dbname[?...]: swap the database name. */
    const char *hostpart = strstr(base, "://");
    const char *slash = hostpart ? strchr(hostpart + 3, '/') : NULL;
    if (!slash || strchr(slash, '?')) {
        printf("VK_TEST_PG_URL '%s' is not postgres://USER@HOST:PORT/DB\n", base);
        return -1;
    }
    char uuid[VK_UUID_LEN];
    if (vk_uuid_v4(uuid) != 0)
        return -1;
    snprintf(t->pg_db, sizeof(t->pg_db), "vkt_%.8s%.4s", uuid, uuid + 9);
    snprintf(t->pg_admin, sizeof(t->pg_admin), "%s", base);
    snprintf(t->db_url, sizeof(t->db_url), "%.*s/%s", (int)(slash - base), base, t->pg_db);
    PGconn *db = pg_admin(t);
    if (!db)
        return -1;
    char sql[128];
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", t->pg_db);
    int rc = pg_exec(db, sql);
    PQfinish(db);
    return rc;
}

static void db_drop(struct vkt *t)
{
    if (!t->pg_db[0])
        return;
    PGconn *db = pg_admin(t);
    if (!db)
        return;
    char sql[128];
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", t->pg_db);
    (void)pg_exec(db, sql);
    PQfinish(db);
}

/* ---------------------------------------------------------------- Lifecycle */

static uint16_t free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t al = sizeof(a);
    uint16_t port = 0;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &al) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

static int setup(struct vkt *t)
{
    /* The environment of the test runner must not configure the processes under test. */
    const char *unset[] = {"VULCAN_SERVER",         "VULCAN_DATABASE",
                           "VULCAN_LISTEN",         "VULCAN_DATA_DIR",
                           "VULCAN_WORKERS",        "VULCAN_WORK_DIR",
                           "VULCAN_WORKER_GROUPS",  "VULCAN_LOG_LEVEL",
                           "VULCAN_SANDBOX",        "VULCAN_WORKER_CONCURRENCY",
                           "VULCAN_ROLES",          "VULCAN_MAX_ATTEMPTS",
                           "VULCAN_WORKER_TIMEOUT", "VULCAN_WORKER_SANDBOX",
                           "VULCAN_LOG_FORMAT"};
    for (size_t i = 0; i < VK_ARRAY_LEN(unset); i++)
        unsetenv(unset[i]);
    setenv("NO_COLOR", "1", 1);
    /* Orphaned scripts of killed workers become our children, so teardown can end them. */
    prctl(PR_SET_CHILD_SUBREAPER, 1);
    signal(SIGPIPE, SIG_IGN);

    const char *bdir = getenv("VK_BINARY_DIR");
    snprintf(t->bin, sizeof(t->bin), "%s/vulcan", bdir && *bdir ? bdir : ".");
    if (access(t->bin, X_OK) != 0) {
        printf("no vulcan binary at '%s' (set VK_BINARY_DIR)\n", t->bin);
        return -1;
    }
    const char *tmpdir = getenv("TMPDIR");
    snprintf(t->tmp, sizeof(t->tmp), "%s/vkt.XXXXXX", tmpdir && *tmpdir ? tmpdir : "/tmp");
    if (!mkdtemp(t->tmp)) {
        printf("mkdtemp: %s\n", strerror(errno));
        t->tmp[0] = '\0';
        return -1;
    }
    chmod(t->tmp, 0755); /* the sandboxed scripts may run as another user */
    if (db_create(t) != 0)
        return -1;
    t->port = free_port();
    if (!t->port)
        return -1;
    snprintf(t->url, sizeof(t->url), "http://127.0.0.1:%u", t->port);
    struct vk_http_client_opts co = {.base_url = t->url, .timeout_ms = 60000};
    struct vk_err err;
    if (vk_http_client_new(&co, &t->cl, &err) != 0) {
        printf("http client: %s\n", err.msg);
        return -1;
    }
    return 0;
}

int vkt_setup(void **state)
{
    struct vkt *t = calloc(1, sizeof(*t));
    if (!t)
        return -1;
    current = t;
    *state = t;
    if (setup(t) != 0) {
        /* cmocka runs no teardown after a failed setup: clean up here. */
        (void)vkt_teardown(state);
        return -1;
    }
    return 0;
}

void vkt_filter(void)
{
    const char *f = getenv("VKT_FILTER");
    if (f && *f)
        cmocka_set_test_filter(f);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

int vkt_teardown(void **state)
{
    struct vkt *t = *state;
    if (!t)
        return 0;
    bool ok = true;
    int64_t grace = 20000 * vkt_slow();
    /* Workers first (they deregister from a live server), then the server. */
    for (int i = 0; i < t->nworkers; i++)
        if (t->workers[i].pid > 0 && !t->workers[i].exited)
            kill(t->workers[i].pid, SIGTERM);
    for (int i = 0; i < t->nworkers; i++) {
        struct vkt_proc *p = &t->workers[i];
        if (!proc_stop(p, grace)) {
            printf("worker '%s' did not exit cleanly (status %d)\n", p->name, exit_code(p->status));
            print_tail(p->name, p->log, 8000);
            ok = false;
        }
        check_sanitizer_log(p, &ok);
    }
    if (!proc_stop(&t->server, grace)) {
        printf("the server did not exit cleanly (status %d)\n", exit_code(t->server.status));
        print_tail("server", t->server.log, 8000);
        ok = false;
    }
    check_sanitizer_log(&t->server, &ok);
    kill_orphans();
    vk_http_client_free(t->cl);
    db_drop(t);
    const char *keep = getenv("VKT_KEEP");
    if (t->tmp[0]) {
        if (keep && *keep)
            printf("kept %s\n", t->tmp);
        else
            nftw(t->tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    }
    current = NULL;
    free(t);
    *state = NULL;
    return ok ? 0 : -1;
}

/* ---------------------------------------------------------------- Server */

static void server_spawn(struct vkt *t)
{
    const char *argv[64];
    size_t n = 0;
    char listen[32], data[PATH_MAX];
    snprintf(listen, sizeof(listen), "127.0.0.1:%u", t->port);
    snprintf(data, sizeof(data), "%s/data", t->tmp);
    mkdir(data, 0755);
    argv[n++] = "vulcan";
    argv[n++] = "server";
    argv[n++] = "--no-auth"; /* the worker-protocol tests speak without credentials */
    argv[n++] = "--listen";
    argv[n++] = listen;
    argv[n++] = "--database";
    argv[n++] = t->db_url;
    argv[n++] = "--data-dir";
    argv[n++] = data;
    argv[n++] = "--log-format";
    argv[n++] = "json";
    argv[n++] = "--log-level";
    argv[n++] = "debug";
    for (size_t i = 0; t->server_args[i] && n < VK_ARRAY_LEN(argv) - 1; i++)
        argv[n++] = t->server_args[i];
    argv[n] = NULL;
    struct vkt_proc *p = &t->server;
    memset(p, 0, sizeof(*p));
    snprintf(p->name, sizeof(p->name), "server");
    snprintf(p->log, sizeof(p->log), "%s/server-%d.log", t->tmp, ++t->server_starts);
    p->pid = spawn(t, argv, p->log);

    int64_t end = vkt_now() + 20000 * vkt_slow();
    for (;;) {
        struct vk_http_response r;
        struct vk_err err;
        if (vk_http_client_request(t->cl, "GET", "/health", NULL, NULL, 0, 2000, &r, &err) == 0) {
            long st = r.status;
            vk_http_response_release(&r);
            if (st == 200)
                return;
        }
        if (proc_poll(p))
            FAIL("the server exited with status %d before answering /health", exit_code(p->status));
        if (vkt_now() > end)
            FAIL("the server did not answer /health in time");
        vkt_sleep(20);
    }
}

void vkt_server_start(struct vkt *t, const char *const *extra)
{
    size_t n = 0;
    for (; extra && extra[n] && n < VK_ARRAY_LEN(t->server_args) - 1; n++)
        t->server_args[n] = extra[n];
    t->server_args[n] = NULL;
    server_spawn(t);
}

void vkt_server_restart(struct vkt *t)
{
    if (t->server.pid > 0 && !t->server.exited)
        FAIL("vkt_server_restart: the server is still running");
    server_spawn(t);
}

void vkt_server_stop(struct vkt *t)
{
    struct vkt_proc *p = &t->server;
    if (!proc_stop(p, 20000 * vkt_slow()))
        FAIL("the server did not exit cleanly on SIGTERM (status %d)", exit_code(p->status));
}

void vkt_server_kill9(struct vkt *t)
{
    proc_kill9(&t->server);
}

/* ---------------------------------------------------------------- Workers */

int vkt_worker_start(struct vkt *t, const char *name, const char *group, const char *const *extra)
{
    if (t->nworkers == VKT_MAX_PROCS)
        FAIL("too many workers");
    int i = t->nworkers++;
    struct vkt_proc *p = &t->workers[i];
    memset(p, 0, sizeof(*p));
    snprintf(p->name, sizeof(p->name), "%s", name);
    snprintf(p->log, sizeof(p->log), "%s/worker-%s.log", t->tmp, name);
    char work[PATH_MAX];
    snprintf(work, sizeof(work), "%s/work-%s", t->tmp, name);
    const char *argv[48];
    size_t n = 0;
    argv[n++] = "vulcan";
    argv[n++] = "worker";
    argv[n++] = "--server";
    argv[n++] = t->url;
    argv[n++] = "--group";
    argv[n++] = group;
    argv[n++] = "--work-dir";
    argv[n++] = work;
    argv[n++] = "--name";
    argv[n++] = name;
    argv[n++] = "--sandbox";
    argv[n++] = "none";
    argv[n++] = "--wait";
    argv[n++] = "2";
    argv[n++] = "--grace";
    argv[n++] = "5";
    argv[n++] = "--log-level";
    argv[n++] = "debug";
    for (size_t k = 0; extra && extra[k] && n < VK_ARRAY_LEN(argv) - 1; k++)
        argv[n++] = extra[k];
    argv[n] = NULL;
    p->pid = spawn(t, argv, p->log);
    return i;
}

int vkt_proc_start(struct vkt *t, const char *name, const char *const *args)
{
    if (t->nworkers == VKT_MAX_PROCS)
        FAIL("too many processes");
    int i = t->nworkers++;
    struct vkt_proc *p = &t->workers[i];
    memset(p, 0, sizeof(*p));
    snprintf(p->name, sizeof(p->name), "%s", name);
    snprintf(p->log, sizeof(p->log), "%s/proc-%s.log", t->tmp, name);
    const char *argv[48];
    size_t n = 0;
    argv[n++] = "vulcan";
    for (size_t k = 0; args && args[k] && n < VK_ARRAY_LEN(argv) - 1; k++)
        argv[n++] = args[k];
    argv[n] = NULL;
    p->pid = spawn(t, argv, p->log);
    return i;
}

uint16_t vkt_free_port(void)
{
    return free_port();
}

long vkt_status_of(const char *base, const char *path)
{
    struct vk_http_client *cl = NULL;
    struct vk_http_client_opts o = {.base_url = base, .timeout_ms = 5000};
    struct vk_err err;
    if (vk_http_client_new(&o, &cl, &err) != 0)
        return 0;
    struct vk_http_response r;
    long st = 0;
    if (vk_http_client_request(cl, "GET", path, NULL, NULL, 0, 5000, &r, &err) == 0) {
        st = r.status;
        vk_http_response_release(&r);
    }
    vk_http_client_free(cl);
    return st;
}

void vkt_worker_signal(struct vkt *t, int i, int sig)
{
    struct vkt_proc *p = &t->workers[i];
    if (sig == SIGKILL) {
        proc_kill9(p);
        return;
    }
    if (p->pid > 0 && !p->exited)
        kill(p->pid, sig);
}

int vkt_worker_wait(struct vkt *t, int i, int64_t timeout_ms)
{
    struct vkt_proc *p = &t->workers[i];
    if (!proc_wait(p, timeout_ms)) {
        print_tail(p->name, p->log, 4000);
        FAIL("worker '%s' did not exit within %lld ms", p->name, (long long)timeout_ms);
    }
    return exit_code(p->status);
}

void vkt_worker_id(struct vkt *t, const char *name, char id[VK_UUID_LEN])
{
    int64_t end = vkt_now() + 15000 * vkt_slow();
    for (;;) {
        json_t *ans = NULL;
        long st = vkt_api(t, "/api/v1/workers", NULL, &ans);
        json_t *list = json_object_get(ans, "workers");
        size_t i;
        json_t *w;
        bool found = false;
        json_array_foreach(list, i, w)
        {
            if (st == 200 && strcmp(vkt_str(w, "name"), name) == 0 &&
                strcmp(vkt_str(w, "status"), "alive") == 0) {
                snprintf(id, VK_UUID_LEN, "%s", vkt_str(w, "id"));
                found = true;
            }
        }
        json_decref(ans);
        if (found)
            return;
        if (vkt_now() > end)
            FAIL("worker '%s' did not register", name);
        vkt_sleep(50);
    }
}

int vkt_run_vulcan(struct vkt *t, const char *const *args, int64_t timeout_ms, char **out)
{
    const char *argv[32];
    size_t n = 0;
    argv[n++] = "vulcan";
    for (size_t k = 0; args[k] && n < VK_ARRAY_LEN(argv) - 1; k++)
        argv[n++] = args[k];
    argv[n] = NULL;
    char log[PATH_MAX];
    static int runs;
    snprintf(log, sizeof(log), "%s/run-%d.out", t->tmp, ++runs);
    struct vkt_proc p = {.pid = 0};
    snprintf(p.name, sizeof(p.name), "vulcan %s", args[0]);
    snprintf(p.log, sizeof(p.log), "%s", log);
    p.pid = spawn(t, argv, log);
    if (!proc_wait(&p, timeout_ms)) {
        kill(p.pid, SIGKILL);
        proc_wait(&p, 10000);
        print_tail(p.name, log, 4000);
        fail_msg("'vulcan %s' did not finish within %lld ms", args[0], (long long)timeout_ms);
    }
    *out = vkt_read(log, NULL);
    if (!*out)
        *out = strdup("");
    bool ok = true;
    check_sanitizer_log(&p, &ok);
    if (!ok) {
        print_tail(p.name, log, 8000);
        fail_msg("'vulcan %s' reported a sanitizer error", args[0]);
    }
    return exit_code(p.status);
}

/* ---------------------------------------------------------------- API */

long vkt_api(struct vkt *t, const char *path, json_t *body, json_t **answer)
{
    long status = 0;
    json_t *ans = NULL;
    struct vk_err err;
    vk_err_clear(&err);
    int rc =
        vk_http_client_json(t->cl, body ? "POST" : "GET", path, body, 30000, &status, &ans, &err);
    json_decref(body);
    if (rc != 0)
        FAIL("%s %s: %s", body ? "POST" : "GET", path, err.msg);
    if (answer)
        *answer = ans;
    else
        json_decref(ans);
    return status;
}

void vkt_submit(struct vkt *t, const char *kdl, char chain_id[VK_UUID_LEN])
{
    json_t *ans = NULL;
    long st = vkt_api(t, "/api/v1/parse",
                      json_pack("{s:s, s:s, s:s, s:s}", "content", kdl, "source_file_path",
                                "test.kdl", "branch", "main", "trigger", "push"),
                      &ans);
    if (st != 201) {
        char *s = json_dumps(ans, 0);
        printf("parse answer: %s\n", s ? s : "(none)");
        free(s);
        json_decref(ans);
        FAIL("POST /api/v1/parse answered %ld", st);
    }
    snprintf(chain_id, VK_UUID_LEN, "%s", vkt_str(ans, "chain_id"));
    json_decref(ans);
}

json_t *vkt_chain(struct vkt *t, const char *chain_id)
{
    char path[128];
    snprintf(path, sizeof(path), "/api/v1/chains/%s", chain_id);
    json_t *ans = NULL;
    long st = vkt_api(t, path, NULL, &ans);
    if (st != 200) {
        json_decref(ans);
        FAIL("GET %s answered %ld", path, st);
    }
    return ans;
}

void vkt_dump(const char *title, json_t *o)
{
    char *s = json_dumps(o, JSON_INDENT(1));
    printf("---- %s ----\n%s\n", title, s ? s : "(null)");
    fflush(stdout);
    free(s);
}

static bool is_final(const char *st)
{
    return strcmp(st, "completed") == 0 || strcmp(st, "failed") == 0 ||
           strcmp(st, "cancelled") == 0;
}

json_t *vkt_chain_wait(struct vkt *t, const char *chain_id, int64_t timeout_ms)
{
    int64_t end = vkt_now() + timeout_ms * vkt_slow();
    for (;;) {
        json_t *c = vkt_chain(t, chain_id);
        /* A failed chain is final at once, but its running fragments still finish and
         * are recorded: finished_at is set when the last of them did. */
        if (is_final(vkt_str(c, "status")) && *vkt_str(c, "finished_at"))
            return c;
        if (vkt_now() > end) {
            vkt_dump("chain", c);
            json_decref(c);
            for (int i = 0; i < t->nworkers; i++)
                print_tail(t->workers[i].name, t->workers[i].log, 3000);
            FAIL("chain %s did not finish within %lld ms", chain_id, (long long)timeout_ms);
        }
        json_decref(c);
        vkt_sleep(50);
    }
}

static json_t *find_frag(json_t *list, const char *name)
{
    size_t i;
    json_t *f;
    json_array_foreach(list, i, f)
    {
        if (strcmp(vkt_str(f, "name"), name) == 0)
            return f;
        json_t *in = find_frag(json_object_get(f, "children"), name);
        if (in)
            return in;
    }
    return NULL;
}

json_t *vkt_frag(json_t *chain, const char *name)
{
    json_t *f = find_frag(json_object_get(chain, "fragments"), name);
    if (!f) {
        vkt_dump("chain", chain);
        fail_msg("no fragment named '%s' in the chain", name);
    }
    return f;
}

json_t *vkt_frag_wait(struct vkt *t, const char *chain_id, const char *name, const char *status,
                      int64_t timeout_ms)
{
    int64_t end = vkt_now() + timeout_ms * vkt_slow();
    for (;;) {
        json_t *c = vkt_chain(t, chain_id);
        if (strcmp(vkt_str(vkt_frag(c, name), "status"), status) == 0)
            return c;
        if (vkt_now() > end) {
            vkt_dump("chain", c);
            json_decref(c);
            FAIL("fragment '%s' was not %s within %lld ms", name, status, (long long)timeout_ms);
        }
        json_decref(c);
        vkt_sleep(20);
    }
}

const char *vkt_str(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : "";
}

int64_t vkt_time(json_t *o, const char *key)
{
    int64_t ms = 0;
    const char *s = vkt_str(o, key);
    if (!*s || vk_time_parse(s, &ms) != 0) {
        vkt_dump("object", o);
        fail_msg("'%s' is not a time: '%s'", key, s);
    }
    return ms;
}

long long vkt_int(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v)) {
        vkt_dump("object", o);
        fail_msg("'%s' is not an integer", key);
    }
    return (long long)json_integer_value(v);
}

char *vkt_log(struct vkt *t, const char *frag_id, int attempt, int64_t offset, size_t *len)
{
    char path[256];
    int n = snprintf(path, sizeof(path), "/api/v1/fragments/%s/log?offset=%lld", frag_id,
                     (long long)offset);
    if (attempt > 0)
        snprintf(path + n, sizeof(path) - (size_t)n, "&attempt=%d", attempt);
    struct vk_http_response r;
    struct vk_err err;
    if (vk_http_client_request(t->cl, "GET", path, NULL, NULL, 0, 60000, &r, &err) != 0)
        FAIL("GET %s: %s", path, err.msg);
    if (r.status != 200) {
        long st = r.status;
        vk_http_response_release(&r);
        FAIL("GET %s answered %ld", path, st);
    }
    char *s = malloc(r.body.len + 1);
    if (r.body.len)
        memcpy(s, r.body.data, r.body.len);
    s[r.body.len] = '\0';
    if (len)
        *len = r.body.len;
    vk_http_response_release(&r);
    return s;
}
