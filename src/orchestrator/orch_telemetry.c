/*
 * Orchestrator telemetry: chain and fragment counters and histograms, the chain's trace
 * text and its span (docs/observability.md).
 *
 * Everything here runs after the store transaction it describes committed, so a rolled-back
 * transaction records nothing; each function does nothing without opts.metrics/opts.tracer.
 */
#include "orch_int.h"

#include <stdio.h>
#include <string.h>

int vk__orch_telemetry_init(struct vk_orch *o, struct vk_err *err)
{
    if (!o->opts.metrics)
        return 0;
    return vk_metrics_std_register(o->opts.metrics, &o->m, err);
}

/* ---------------------------------------------------------------- Trace text */

int vk_orch_chain_trace(const char *s, struct vk_trace_ctx *chain, struct vk_trace_ctx *parent)
{
    const size_t tp_len = VK_TRACEPARENT_LEN - 1;
    if (!s)
        return VK_EINVAL;
    size_t n = strnlen(s, VK_ORCH_TRACE_MAX);
    if (n < tp_len || vk_trace_parent_parse(s, tp_len, chain) != 0)
        return VK_EINVAL;
    struct vk_trace_ctx p;
    memset(&p, 0, sizeof(p));
    memcpy(p.trace_id, chain->trace_id, VK_TRACE_ID_SIZE);
    p.flags = chain->flags;
    if (n != tp_len) {
        if (n != tp_len + 1 + 2 * VK_SPAN_ID_SIZE || s[tp_len] != '/' ||
            vk_hex_decode(s + tp_len + 1, 2 * VK_SPAN_ID_SIZE, p.span_id, VK_HEX_LOWER) != 0)
            return VK_EINVAL;
    }
    if (parent)
        *parent = p;
    return 0;
}

void vk__orch_trace_new(struct vk_orch *o, const char *parent_tp, char out[VK_ORCH_TRACE_MAX])
{
    out[0] = '\0';
    if (!o->opts.tracer)
        return;
    struct vk_trace_ctx parent, chain;
    memset(&chain, 0, sizeof(chain));
    bool has = parent_tp && vk_trace_parent_parse(parent_tp, strlen(parent_tp), &parent) == 0;
    if (has) {
        memcpy(chain.trace_id, parent.trace_id, VK_TRACE_ID_SIZE);
        chain.flags = parent.flags;
    } else {
        if (vk_trace_id_random(chain.trace_id) != 0)
            return;
        chain.flags = VK_TRACE_FLAG_SAMPLED;
    }
    if (vk_trace_span_id_random(chain.span_id) != 0)
        return;
    char tp[VK_TRACEPARENT_LEN];
    vk_trace_parent_format(&chain, tp);
    if (has) {
        char ph[VK_SPAN_ID_HEX_LEN];
        vk_trace_span_id_hex(parent.span_id, ph);
        snprintf(out, VK_ORCH_TRACE_MAX, "%s/%s", tp, ph);
    } else {
        snprintf(out, VK_ORCH_TRACE_MAX, "%s", tp);
    }
}

/* ---------------------------------------------------------------- Reports */

/* The chain's span, ended now. Its id was fixed when the chain was created (fragment
 * dispatch spans already name it as their parent) and it began at created_at. */
static void chain_span(struct vk_orch *o, const struct vk__orch_ended *e, const char *status)
{
    struct vk_trace_ctx chain, parent;
    if (!o->opts.tracer || vk_orch_chain_trace(e->trace, &chain, &parent) != 0)
        return;
    struct vk_span *sp =
        vk_trace_start_span_as(o->opts.tracer, "chain", VK_SPAN_INTERNAL, &chain, parent.span_id,
                               e->created_at > 0 ? e->created_at * 1000000 : 0);
    if (!sp)
        return;
    vk_trace_span_set_str(sp, "vulcan.chain_id", e->chain_id);
    vk_trace_span_set_str(sp, "vulcan.chain.status", status);
    if (e->status == VK_STORE_CHAIN_FAILED)
        vk_trace_span_set_status(sp, VK_SPAN_ERROR, "chain failed");
    else if (e->status == VK_STORE_CHAIN_COMPLETED)
        vk_trace_span_set_status(sp, VK_SPAN_OK, NULL);
    vk_trace_end_span(o->opts.tracer, sp);
}

void vk__orch_report(struct vk_orch *o, const struct vk__orch_ended *e)
{
    /* Not telemetry, but due after every commit that made fragments ready. */
    for (int i = 0; i < e->ncancel; i++)
        vk__orch_concurrency_cancel(o, e->cancel_chain[i], e->cancel_for[i]);
    if (e->skipped > 0 && o->m.fragments_total)
        vk_metrics_counter_add(vk_metrics_counter_with(o->m.fragments_total, "skipped"),
                               (uint64_t)e->skipped);
    if (!e->chain_ended)
        return;
    const char *st = vk_store_chain_status_name(e->status);
    if (o->m.chains_total) {
        vk_metrics_counter_inc(vk_metrics_counter_with(o->m.chains_total, st));
        if (e->created_at > 0 && e->finished_at >= e->created_at)
            vk_metrics_histogram_observe(vk_metrics_histogram_with(o->m.chain_duration, st),
                                         (double)(e->finished_at - e->created_at) / 1000.0);
    }
    chain_span(o, e, st);
}

void vk__orch_report_claim(struct vk_orch *o, const struct vk_store_fragment *f)
{
    if (!o->m.fragment_queue_wait || f->ready_at <= 0 || f->started_at < f->ready_at)
        return;
    vk_metrics_histogram_observe(vk_metrics_histogram_with(o->m.fragment_queue_wait, f->machine),
                                 (double)(f->started_at - f->ready_at) / 1000.0);
}

void vk__orch_report_fragment(struct vk_orch *o, const struct vk_store_fragment *f,
                              enum vk_store_frag_status st, int64_t now)
{
    if (!o->m.fragments_total || !vk_store_frag_status_final(st))
        return;
    const char *name = vk_store_frag_status_name(st);
    vk_metrics_counter_inc(vk_metrics_counter_with(o->m.fragments_total, name));
    if (f->started_at > 0 && now >= f->started_at)
        vk_metrics_histogram_observe(
            vk_metrics_histogram_with(o->m.fragment_run_duration, f->machine, name),
            (double)(now - f->started_at) / 1000.0);
}

void vk__orch_report_dead(struct vk_orch *o, enum vk_store_frag_status st,
                          const struct vk__orch_ended *e)
{
    if (o->m.fragments_total && vk_store_frag_status_final(st))
        vk_metrics_counter_inc(
            vk_metrics_counter_with(o->m.fragments_total, vk_store_frag_status_name(st)));
    vk__orch_report(o, e);
}

void vk__orch_report_cancel(struct vk_orch *o, const char *chain_id)
{
    if (!o->m.chains_total && !o->opts.tracer)
        return;
    struct vk_pool pool;
    vk_pool_init(&pool, 16 * 1024);
    struct vk_store_chain c;
    struct vk_store_fragment *frags = NULL;
    size_t n = 0;
    struct vk_err err;
    vk_err_clear(&err);
    if (vk_store_chain_get(o->store, chain_id, &pool, &c, &frags, &n, &err) == 0 &&
        c.status == VK_STORE_CHAIN_CANCELLED) {
        struct vk__orch_ended e = {.chain_ended = true,
                                   .status = c.status,
                                   .created_at = c.created_at,
                                   .finished_at = c.finished_at};
        snprintf(e.chain_id, sizeof(e.chain_id), "%s", c.id);
        snprintf(e.trace, sizeof(e.trace), "%s", c.trace_id ? c.trace_id : "");
        int64_t cancelled = 0;
        for (size_t i = 0; i < n; i++)
            cancelled +=
                frags[i].type == VK_STORE_FRAG_INLINE && frags[i].status == VK_STORE_FRAG_CANCELLED;
        if (o->m.fragments_total && cancelled > 0)
            vk_metrics_counter_add(vk_metrics_counter_with(o->m.fragments_total, "cancelled"),
                                   (uint64_t)cancelled);
        vk__orch_report(o, &e);
    }
    vk_pool_release(&pool);
}
