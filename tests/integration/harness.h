/*
 * Integration-test harness: real `vulcan server`, `vulcan worker` and `vulcan run`
 * processes on 127.0.0.1, each test in its own temporary directory and, on
 * PostgreSQL, its own database.
 *
 * Environment: VK_BINARY_DIR (where the `vulcan` binary is), VK_TEST_BACKEND
 * (`sqlite`, the default, or `postgres`), VK_TEST_PG_URL (the cluster that
 * scripts/pg-test.sh started; required for postgres: the test fails without it),
 * VKT_KEEP=1 keeps the temporary directory and prints where it is.
 *
 * Use vkt_setup/vkt_teardown as the cmocka setup and teardown of every test.
 * Teardown always stops every process the test started (SIGTERM, then SIGKILL),
 * kills the scripts they left behind (the test process is a child subreaper, so
 * orphans become its children), drops the test database and removes the temp
 * directory, also after a failed assertion. It fails the test when a `vulcan`
 * process that was not killed on purpose did not exit with status 0 (under
 * ASan that includes LeakSanitizer's reports at exit), printing its log.
 *
 * Every helper that can go wrong fails the current test (cmocka fail_msg) with
 * the server log's tail, so tests read as straight-line scripts.
 *
 * Thread-safety: none; one test at a time per process.
 */
#ifndef VULCAN_TESTS_INTEGRATION_HARNESS_H
#define VULCAN_TESTS_INTEGRATION_HARNESS_H

#include "vk_test.h"
#include "vulcan/http.h"
#include "vulcan/util.h"

#include <jansson.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* ---------------------------------------------------------------- Types */

#define VKT_MAX_PROCS 8

/** One child process: a server or a worker. */
struct vkt_proc {
    pid_t pid;     /**< 0 when not running */
    char name[64]; /**< worker name, or "server" */
    char log[PATH_MAX];
    bool killed; /**< ended by the test on purpose (SIGKILL): exit status not checked */
    bool exited; /**< reaped */
    int status;  /**< waitpid status once exited */
};

struct vkt {
    bool postgres;
    char tmp[512];
    char bin[PATH_MAX];
    char db_url[1024];
    char pg_db[64]; /**< the per-test database ("" for SQLite) */
    char pg_admin[1024];
    uint16_t port;
    char url[64];
    struct vk_http_client *cl;
    struct vkt_proc server;
    const char *server_args[24]; /**< extra arguments of the last start, for restarts */
    int server_starts;
    struct vkt_proc workers[VKT_MAX_PROCS];
    int nworkers;
};

/* ---------------------------------------------------------------- Lifecycle */

/** cmocka setup: temp dir, database, a free port. *state becomes the struct vkt. */
int vkt_setup(void **state);

/** cmocka teardown: stop and check every process, clean up. */
int vkt_teardown(void **state);

/** Run only the tests matching $VKT_FILTER (a cmocka pattern like "test_nested*") when set. */
void vkt_filter(void);

/* ---------------------------------------------------------------- Processes */

/**
 * Start `vulcan server` on the test's port and database with `extra` arguments
 * (NULL-terminated, may be NULL; borrowed, kept for vkt_server_restart) and wait
 * until /health answers.
 */
void vkt_server_start(struct vkt *t, const char *const *extra);

/** Start the server again with the arguments of the last start (same port and database). */
void vkt_server_restart(struct vkt *t);

/** SIGTERM the server and require a clean exit (status 0) within 20 s. */
void vkt_server_stop(struct vkt *t);

/** SIGKILL the server and reap it. */
void vkt_server_kill9(struct vkt *t);

/**
 * Start `vulcan worker` named `name` for group `group` with `--sandbox none --wait 2`
 * and `extra` arguments after those (NULL-terminated, may be NULL), so `extra` may
 * override them or add `--group`s. Returns the worker's index.
 */
int vkt_worker_start(struct vkt *t, const char *name, const char *group, const char *const *extra);

/**
 * Start another `vulcan` process named `name` with `args` (argv without the program,
 * NULL-terminated; for example a second `server` with other --roles), tracked like a
 * worker: its index works with vkt_worker_signal/vkt_worker_wait, and teardown stops
 * and checks it before the main server.
 */
int vkt_proc_start(struct vkt *t, const char *name, const char *const *args);

/** A free TCP port on 127.0.0.1 (for more servers than the main one). */
uint16_t vkt_free_port(void);

/** GET `path` of `base` (any server's URL) and return the HTTP status, 0 without answer. */
long vkt_status_of(const char *base, const char *path);

/** Send `sig` to worker `i`; SIGKILL also marks it killed on purpose and reaps it. */
void vkt_worker_signal(struct vkt *t, int i, int sig);

/**
 * Wait up to `timeout_ms` for worker `i` to exit; returns its exit code, or
 * 128+signal. Fails the test when it does not exit in time.
 */
int vkt_worker_wait(struct vkt *t, int i, int64_t timeout_ms);

/** The server-side id of the registered, alive worker named `name` (waits up to 15 s). */
void vkt_worker_id(struct vkt *t, const char *name, char id[VK_UUID_LEN]);

/**
 * Run `vulcan ARGS...` (argv without the program; NULL-terminated) to the end, at
 * most `timeout_ms`, with stdout and stderr in *out (returns owned, NUL-terminated;
 * free with free()). Returns the exit status (128+signal when killed).
 */
int vkt_run_vulcan(struct vkt *t, const char *const *args, int64_t timeout_ms, char **out);

/* ---------------------------------------------------------------- API */

/**
 * POST (body non-NULL; the body is stolen) or GET (body NULL) `path` as JSON; returns
 * the HTTP status and, in *answer (may be NULL), the parsed answer (returns owned).
 */
long vkt_api(struct vkt *t, const char *path, json_t *body, json_t **answer);

/** Submit workflow text through POST /api/v1/parse (branch main, trigger push). */
void vkt_submit(struct vkt *t, const char *kdl, char chain_id[VK_UUID_LEN]);

/** GET a chain (returns owned). */
json_t *vkt_chain(struct vkt *t, const char *chain_id);

/**
 * Poll a chain until it is completed, failed or cancelled and its finished_at is set (a
 * failed chain waits for its running fragments); returns it (owned). Fails after
 * `timeout_ms` (scaled by vkt_slow()).
 */
json_t *vkt_chain_wait(struct vkt *t, const char *chain_id, int64_t timeout_ms);

/**
 * Poll a chain until the fragment named `name` has `status`; returns the chain
 * (owned). Fails after `timeout_ms`.
 */
json_t *vkt_frag_wait(struct vkt *t, const char *chain_id, const char *name, const char *status,
                      int64_t timeout_ms);

/** The fragment named `name` anywhere in a chain's tree (returns borrowed); fails if absent. */
json_t *vkt_frag(json_t *chain, const char *name);

/** A string member (returns borrowed; "" when null or absent). */
const char *vkt_str(json_t *o, const char *key);

/** An RFC 3339 time member in ms since the epoch; fails when absent. */
int64_t vkt_time(json_t *o, const char *key);

/** An integer member; fails when absent. */
long long vkt_int(json_t *o, const char *key);

/**
 * A fragment attempt's log from byte `offset` (attempt 0: the current one), in *len
 * bytes (returns owned, NUL-terminated; free with free()).
 */
char *vkt_log(struct vkt *t, const char *frag_id, int attempt, int64_t offset, size_t *len);

/** Print a JSON value (a chain, an answer) for a failure's context. */
void vkt_dump(const char *title, json_t *o);

/** Like assert_true(cond), but prints `ctx` (a chain, usually) when it fails. */
#define VKT_CHECK(ctx, cond)                                                                       \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            vkt_dump("context", (ctx));                                                            \
            fail_msg("%s:%d: check failed: %s", __FILE__, __LINE__, #cond);                        \
        }                                                                                          \
    } while (0)

/* ---------------------------------------------------------------- Files */

/** Write `text` to `<tmp>/<name>`; returns the path (static buffer, valid until the next call). */
const char *vkt_write(struct vkt *t, const char *name, const char *text);

/** Read a whole file (returns owned, NUL-terminated, or NULL when it cannot be read). */
char *vkt_read(const char *path, size_t *len);

/** Milliseconds of a monotonic clock. */
int64_t vkt_now(void);

/** Sleep `ms` milliseconds. */
void vkt_sleep(int64_t ms);

/** Scale for timeouts: 3 under sanitizers (VK_TEST_SLOW or an ASan build), else 1. */
int vkt_slow(void);

#endif
