/*
 * Orchestrator telemetry against a real (in-memory SQLite) store: chain and fragment
 * counters and histograms after results, skips and cancel; the chain's stored trace text
 * (its own span id, child of the causing span) and its parser.
 */
#include "vk_test.h"
#include "vulcan/orchestrator.h"

#include <stdio.h>
#include <string.h>

struct fixture {
    struct vk_store *store;
    struct vk_metrics *reg;
    struct vk_metrics_std m;
    struct vk_tracer *tracer;
    struct vk_orch *orch;
    char worker[VK_UUID_LEN];
};

static const char *const groups[] = {"default"};

static int setup(void **state)
{
    struct fixture *fx = vk_mem_xcalloc(1, sizeof(*fx));
    struct vk_err err;
    assert_int_equal(vk_store_open("sqlite::memory:", &fx->store, &err), 0);
    fx->reg = vk_metrics_new(0);
    assert_int_equal(vk_metrics_std_register(fx->reg, &fx->m, &err), 0);
    struct vk_tracer_config tc = {.service_name = "test"}; /* no endpoint: nothing exported */
    assert_int_equal(vk_trace_new(&tc, &fx->tracer, &err), 0);
    struct vk_orch_opts opts = {.metrics = fx->reg, .tracer = fx->tracer};
    assert_int_equal(vk_orch_new(fx->store, &opts, &fx->orch, &err), 0);
    assert_int_equal(vk_store_worker_register(fx->store, NULL, "w1", "test", groups, 1,
                                              vk_time_now_ms(), fx->worker, &err),
                     0);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *fx = *state;
    vk_orch_free(fx->orch);
    vk_trace_free(fx->tracer, 0);
    vk_metrics_free(fx->reg);
    vk_store_close(fx->store);
    vk_mem_free(fx);
    return 0;
}

static void submit(struct fixture *fx, const char *kdl, const char *tp, char id[VK_UUID_LEN])
{
    struct vk_workflow *wf = NULL;
    struct vk_wf_error we;
    vk_wf_error_init(&we);
    if (vk_workflow_load_buffer(kdl, strlen(kdl), "test.kdl", NULL, &wf, &we) != 0)
        fail_msg("workflow: %s", we.rendered ? we.rendered : we.msg);
    struct vk_orch_context ctx = {.trigger = "manual", .trace_id = tp};
    struct vk_err err;
    if (vk_orch_submit(fx->orch, wf, kdl, &ctx, id, NULL, &err) != 0)
        fail_msg("submit: %s", err.msg);
    vk_workflow_free(wf);
}

/* Claim the next fragment and report `ok`; false when nothing was ready. */
static bool run_one(struct fixture *fx, bool ok, char trace[VK_ORCH_TRACE_MAX])
{
    struct vk_pool pool;
    vk_pool_init(&pool, 0);
    struct vk_store_work w;
    struct vk_err err;
    int rc = vk_orch_claim(fx->orch, fx->worker, groups, 1, &pool, &w, &err);
    if (rc == 0) {
        if (trace)
            snprintf(trace, VK_ORCH_TRACE_MAX, "%s", w.chain.trace_id ? w.chain.trace_id : "");
        struct vk_orch_result r = {.worker_id = fx->worker,
                                   .fragment_id = w.fragment.id,
                                   .attempt = w.fragment.attempt,
                                   .success = ok,
                                   .has_exit_code = true,
                                   .exit_code = ok ? 0 : 1};
        assert_int_equal(vk_orch_result(fx->orch, &r, NULL, &err), 0);
    }
    vk_pool_release(&pool);
    return rc == 0;
}

static uint64_t counter(struct vk_metric *m, const char *v)
{
    return vk_metrics_counter_value(vk_metrics_counter_with(m, v));
}

static const char three[] = "version \"0.1\"\ntriggers \"manual\"\nchain {\n  machine \"default\"\n"
                            "  fragment { run \"a\" }\n  fragment { run \"b\" }\n"
                            "  fragment { run \"c\"; condition \"$BRANCH == 'x'\" }\n}\n";

static void test_counts_results_and_skips(void **state)
{
    struct fixture *fx = *state;
    char id[VK_UUID_LEN];
    submit(fx, three, NULL, id);
    assert_true(run_one(fx, true, NULL));
    assert_true(run_one(fx, true, NULL));
    assert_false(run_one(fx, true, NULL)); /* the third is skipped: its condition is false */
    assert_int_equal(counter(fx->m.chains_total, "completed"), 1);
    assert_int_equal(counter(fx->m.fragments_total, "completed"), 2);
    assert_int_equal(counter(fx->m.fragments_total, "skipped"), 1);
    assert_int_equal(
        vk_metrics_histogram_count(vk_metrics_histogram_with(fx->m.chain_duration, "completed")),
        1);
    assert_int_equal(
        vk_metrics_histogram_count(vk_metrics_histogram_with(fx->m.fragment_queue_wait, "default")),
        2);
    assert_int_equal(vk_metrics_histogram_count(vk_metrics_histogram_with(
                         fx->m.fragment_run_duration, "default", "completed")),
                     2);

    /* A failure fails the chain and skips the rest. */
    submit(fx, three, NULL, id);
    assert_true(run_one(fx, false, NULL));
    assert_false(run_one(fx, true, NULL));
    assert_int_equal(counter(fx->m.chains_total, "failed"), 1);
    assert_int_equal(counter(fx->m.fragments_total, "failed"), 1);
    assert_true(counter(fx->m.fragments_total, "skipped") >= 3);

    /* Cancel: counted once, as cancelled. */
    submit(fx, three, NULL, id);
    struct vk_err err;
    assert_int_equal(vk_orch_cancel(fx->orch, id, &err), 0);
    assert_int_equal(counter(fx->m.chains_total, "cancelled"), 1);
    assert_int_equal(counter(fx->m.chains_total, "completed"), 1);
}

static void test_chain_trace_text(void **state)
{
    struct fixture *fx = *state;
    const char *tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    char id[VK_UUID_LEN], trace[VK_ORCH_TRACE_MAX];
    submit(fx, three, tp, id);
    assert_true(run_one(fx, true, trace));
    struct vk_trace_ctx chain, parent;
    assert_int_equal(vk_orch_chain_trace(trace, &chain, &parent), 0);
    char hex[VK_TRACE_ID_HEX_LEN], sp[VK_SPAN_ID_HEX_LEN];
    vk_trace_id_hex(chain.trace_id, hex);
    assert_string_equal(hex, "4bf92f3577b34da6a3ce929d0e0e4736"); /* joins the caller's trace */
    vk_trace_span_id_hex(parent.span_id, sp);
    assert_string_equal(sp, "00f067aa0ba902b7"); /* child of the caller's span */
    vk_trace_span_id_hex(chain.span_id, sp);
    assert_string_not_equal(sp, "00f067aa0ba902b7"); /* with a span id of its own */

    assert_true(run_one(fx, true, NULL)); /* finish the first chain */
    assert_false(run_one(fx, true, NULL));

    /* Without a parent: a new trace, and no parent id. */
    submit(fx, three, NULL, id);
    assert_true(run_one(fx, true, trace));
    assert_int_equal(strlen(trace), VK_TRACEPARENT_LEN - 1);
    assert_int_equal(vk_orch_chain_trace(trace, &chain, &parent), 0);
    static const uint8_t zero[VK_SPAN_ID_SIZE];
    assert_memory_equal(parent.span_id, zero, VK_SPAN_ID_SIZE);

    /* Malformed text is refused. */
    assert_int_equal(vk_orch_chain_trace(NULL, &chain, NULL), VK_EINVAL);
    assert_int_equal(vk_orch_chain_trace("abc", &chain, NULL), VK_EINVAL);
    char bad[VK_ORCH_TRACE_MAX];
    snprintf(bad, sizeof(bad), "%s/00f067aa0ba902bZ", tp);
    assert_int_equal(vk_orch_chain_trace(bad, &chain, NULL), VK_EINVAL);
    snprintf(bad, sizeof(bad), "%s-00f067aa0ba902b7", tp);
    assert_int_equal(vk_orch_chain_trace(bad, &chain, NULL), VK_EINVAL);
}

static void test_without_telemetry(void **state)
{
    (void)state;
    /* NULL metrics and tracer: everything still runs, no trace text is stored. */
    struct fixture fx = {0};
    struct vk_err err;
    assert_int_equal(vk_store_open("sqlite::memory:", &fx.store, &err), 0);
    assert_int_equal(vk_orch_new(fx.store, NULL, &fx.orch, &err), 0);
    assert_int_equal(vk_store_worker_register(fx.store, NULL, "w1", "test", groups, 1,
                                              vk_time_now_ms(), fx.worker, &err),
                     0);
    char id[VK_UUID_LEN], trace[VK_ORCH_TRACE_MAX];
    submit(&fx, three, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", id);
    assert_true(run_one(&fx, true, trace));
    assert_string_equal(trace, "");
    assert_true(run_one(&fx, true, NULL));
    assert_int_equal(vk_orch_cancel(fx.orch, id, &err), VK_ECONFLICT);
    vk_orch_free(fx.orch);
    vk_store_close(fx.store);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_counts_results_and_skips, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chain_trace_text, setup, teardown),
        cmocka_unit_test(test_without_telemetry),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
