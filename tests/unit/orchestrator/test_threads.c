/*
 * The orchestrator with its threads running, as the server runs it: the reaper and the
 * ready listener work while worker threads claim and report fragments, a submitter adds
 * and cancels chains and a scraper renders the metrics, all on one SQLite file (a pool
 * of connections). The other orchestrator tests call everything from one thread; this
 * one is what `make tsan` (ThreadSanitizer) watches for races in the orchestrator, the
 * store pool and the telemetry it records to.
 */
#include "vk_test.h"
#include "vulcan/orchestrator.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define NWORKERS 3
#define NCHAINS 12
#define NFRAGS 4 /* inline fragments per chain */

static const char *const groups[] = {"default"};

static const char kdl[] = "version \"0.1\"\ntriggers \"push\"\nchain {\n machine \"default\"\n"
                          " fragment { name \"a\"; run \"true\" }\n"
                          " parallel {\n  fragment { name \"b\"; run \"true\" }\n"
                          "  fragment { name \"c\"; run \"true\" }\n }\n"
                          " fragment { name \"d\"; run \"true\" }\n}\n";

struct fixture {
    char dir[64];
    struct vk_store *store;
    struct vk_metrics *reg;
    struct vk_metrics_std m;
    struct vk_tracer *tracer;
    struct vk_orch *orch;
    struct vk_workflow *wf;
    char chains[NCHAINS + 1][VK_UUID_LEN]; /* the last one is cancelled while it runs */
    atomic_int submitted;
    atomic_int ready_calls;
    atomic_bool cancelled; /* the cancel came before the chain's end */
    atomic_bool stop;
};

struct worker {
    struct fixture *fx;
    char id[VK_UUID_LEN];
    int results;
};

static void on_ready(void *ctx, const char *group)
{
    struct fixture *fx = ctx;
    (void)group;
    atomic_fetch_add(&fx->ready_calls, 1);
}

static void submit(struct fixture *fx, char id[VK_UUID_LEN])
{
    struct vk_orch_context ctx = {.branch = "main", .trigger = "push"};
    struct vk_err err;
    if (vk_orch_submit(fx->orch, fx->wf, kdl, &ctx, id, NULL, &err) != 0)
        fail_msg("submit: %s", err.msg);
}

static void register_worker(struct fixture *fx, const char *name, char id[VK_UUID_LEN])
{
    struct vk_err err;
    if (vk_store_worker_register(fx->store, NULL, name, "test", groups, 1, vk_time_now_ms(), id,
                                 &err) != 0)
        fail_msg("register: %s", err.msg);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct fixture *fx = w->fx;
    while (!atomic_load(&fx->stop)) {
        struct vk_pool pool;
        vk_pool_init(&pool, 0);
        struct vk_err err;
        const char **cancel = NULL;
        size_t ncancel = 0;
        VK_ASSERT(vk_store_worker_heartbeat(fx->store, w->id, vk_time_now_ms(), &pool, &cancel,
                                            &ncancel, &err) == 0);
        struct vk_store_work work;
        int rc = vk_orch_claim(fx->orch, w->id, groups, 1, &pool, &work, &err);
        VK_ASSERT(rc == 0 || rc == VK_ENOTFOUND);
        if (rc == 0) {
            struct vk_orch_result r = {.worker_id = w->id,
                                       .fragment_id = work.fragment.id,
                                       .attempt = work.fragment.attempt,
                                       .success = true,
                                       .has_exit_code = true,
                                       .exit_code = 0};
            VK_ASSERT(vk_orch_result(fx->orch, &r, NULL, &err) == 0);
            w->results++;
        } else {
            usleep(2000);
        }
        vk_pool_release(&pool);
    }
    return NULL;
}

static void *submitter_main(void *arg)
{
    struct fixture *fx = arg;
    for (int i = 1; i < NCHAINS; i++) {
        submit(fx, fx->chains[i]);
        atomic_fetch_add(&fx->submitted, 1);
        usleep(5000);
    }
    submit(fx, fx->chains[NCHAINS]);
    struct vk_err err;
    /* The workers may have run the whole chain already: then it stays completed. */
    int rc = vk_orch_cancel(fx->orch, fx->chains[NCHAINS], &err);
    VK_ASSERT(rc == 0 || rc == VK_ECONFLICT);
    atomic_store(&fx->cancelled, rc == 0);
    atomic_fetch_add(&fx->submitted, 1);
    return NULL;
}

static void *scraper_main(void *arg)
{
    struct fixture *fx = arg;
    while (!atomic_load(&fx->stop)) {
        struct vk_buf out = VK_BUF_INIT(1u << 20);
        struct vk_err err;
        VK_ASSERT(vk_metrics_render(fx->reg, &out, &err) == 0);
        vk_buf_release(&out);
        usleep(10000);
    }
    return NULL;
}

static int setup(void **state)
{
    struct fixture *fx = vk_mem_xcalloc(1, sizeof(*fx));
    snprintf(fx->dir, sizeof(fx->dir), "/tmp/vk-orch-threads.XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    char url[128];
    snprintf(url, sizeof(url), "sqlite:%s/vulcan.db", fx->dir);
    struct vk_err err;
    assert_int_equal(vk_store_open(url, &fx->store, &err), 0);
    fx->reg = vk_metrics_new(0);
    assert_int_equal(vk_metrics_std_register(fx->reg, &fx->m, &err), 0);
    struct vk_tracer_config tc = {.service_name = "test"}; /* no endpoint: nothing exported */
    assert_int_equal(vk_trace_new(&tc, &fx->tracer, &err), 0);
    /* A worker silent for 1 s is dead; the reaper looks every 100 ms. */
    struct vk_orch_opts opts = {.worker_timeout_ms = 1000,
                                .reap_interval_ms = 100,
                                .max_attempts = 3,
                                .metrics = fx->reg,
                                .tracer = fx->tracer};
    assert_int_equal(vk_orch_new(fx->store, &opts, &fx->orch, &err), 0);
    vk_orch_set_ready_hook(fx->orch, on_ready, fx);
    struct vk_wf_error we;
    vk_wf_error_init(&we);
    if (vk_workflow_load_buffer(kdl, strlen(kdl), "test.kdl", NULL, &fx->wf, &we) != 0)
        fail_msg("workflow: %s", we.rendered ? we.rendered : we.msg);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    vk_orch_free(fx->orch);
    vk_workflow_free(fx->wf);
    vk_trace_free(fx->tracer, 0);
    vk_metrics_free(fx->reg);
    vk_store_close(fx->store);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", fx->dir);
    assert_int_equal(system(cmd), 0);
    vk_mem_free(fx);
    return 0;
}

static bool chain_final(struct fixture *fx, const char *id, enum vk_store_chain_status *st)
{
    struct vk_pool pool;
    vk_pool_init(&pool, 0);
    struct vk_store_chain c;
    struct vk_err err;
    assert_int_equal(vk_store_chain_get(fx->store, id, &pool, &c, NULL, NULL, &err), 0);
    vk_pool_release(&pool);
    *st = c.status;
    return c.status != VK_STORE_CHAIN_PENDING && c.status != VK_STORE_CHAIN_RUNNING;
}

/* Every fragment of every chain runs to its end once, with the threads racing. */
static void test_threads_run_chains(void **state)
{
    struct fixture *fx = *state;
    struct vk_err err;
    assert_int_equal(vk_orch_start(fx->orch, &err), 0);

    /* A worker that claims the first fragment and is never heard of again: the reaper
     * declares it dead and re-queues the fragment while the others work. */
    char ghost[VK_UUID_LEN];
    register_worker(fx, "ghost", ghost);
    submit(fx, fx->chains[0]);
    atomic_fetch_add(&fx->submitted, 1);
    struct vk_pool pool;
    vk_pool_init(&pool, 0);
    struct vk_store_work work;
    assert_int_equal(vk_orch_claim(fx->orch, ghost, groups, 1, &pool, &work, &err), 0);
    char lost[VK_UUID_LEN];
    snprintf(lost, sizeof(lost), "%s", work.fragment.id);
    assert_int_equal(work.fragment.attempt, 1);
    vk_pool_release(&pool);

    struct worker ws[NWORKERS];
    pthread_t wt[NWORKERS], sub, scr;
    for (int i = 0; i < NWORKERS; i++) {
        ws[i] = (struct worker){.fx = fx};
        char name[16];
        snprintf(name, sizeof(name), "w%d", i);
        register_worker(fx, name, ws[i].id);
        assert_int_equal(pthread_create(&wt[i], NULL, worker_main, &ws[i]), 0);
    }
    assert_int_equal(pthread_create(&sub, NULL, submitter_main, fx), 0);
    assert_int_equal(pthread_create(&scr, NULL, scraper_main, fx), 0);

    /* Until every chain is final (30 s at most). */
    int64_t give_up = vk_time_mono_ns() + 30 * 1000000000LL;
    bool all = false;
    while (!all && vk_time_mono_ns() < give_up) {
        usleep(20000);
        if (atomic_load(&fx->submitted) < NCHAINS + 1)
            continue;
        all = true;
        for (int i = 0; all && i <= NCHAINS; i++) {
            enum vk_store_chain_status st;
            all = chain_final(fx, fx->chains[i], &st);
        }
    }
    atomic_store(&fx->stop, true);
    for (int i = 0; i < NWORKERS; i++)
        pthread_join(wt[i], NULL);
    pthread_join(sub, NULL);
    pthread_join(scr, NULL);
    vk_orch_stop(fx->orch);
    assert_true(all);

    int results = 0;
    for (int i = 0; i < NWORKERS; i++)
        results += ws[i].results;
    bool cancelled = atomic_load(&fx->cancelled);
    for (int i = 0; i <= NCHAINS; i++) {
        enum vk_store_chain_status st;
        assert_true(chain_final(fx, fx->chains[i], &st));
        assert_int_equal(st, i == NCHAINS && cancelled ? VK_STORE_CHAIN_CANCELLED
                                                       : VK_STORE_CHAIN_COMPLETED);
    }
    /* Each fragment of the completed chains was reported once, the lost one at attempt 2. */
    assert_true(results >= NCHAINS * NFRAGS);
    vk_pool_init(&pool, 0);
    struct vk_store_chain c;
    struct vk_store_fragment *f = NULL;
    size_t n = 0;
    assert_int_equal(vk_store_chain_get(fx->store, fx->chains[0], &pool, &c, &f, &n, &err), 0);
    bool found = false;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(f[i].id, lost) != 0)
            continue;
        found = true;
        assert_int_equal(f[i].status, VK_STORE_FRAG_COMPLETED);
        assert_int_equal(f[i].attempt, 2);
        assert_string_not_equal(f[i].worker_id, ghost);
    }
    assert_true(found);
    vk_pool_release(&pool);
    /* SQLite announces ready work in-process: the listener thread called the hook. */
    assert_true(atomic_load(&fx->ready_calls) > 0);
    assert_int_equal(
        vk_metrics_counter_value(vk_metrics_counter_with(fx->m.chains_total, "completed")),
        cancelled ? NCHAINS : NCHAINS + 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_threads_run_chains, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
