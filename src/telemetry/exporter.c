/*
 * The tracer: hands out spans and exports ended ones over OTLP/HTTP (JSON)
 * from one background thread.
 *
 * Callers only ever take `lock` for a few pointer operations (append to the
 * queue); the export thread takes the whole batch out under the lock and does
 * the encoding and the HTTP request without it, so a slow or absent collector
 * never delays vk_trace_end_span(). A full queue drops the span and counts it.
 * A failed request is retried with exponential backoff (the backoff carries
 * over to the next batch while the collector stays down, so we don't hammer
 * it); after max_attempts the batch is dropped and counted. The first success
 * resets the backoff: that is the recovery.
 */
#include "telemetry_int.h"

#include <curl/curl.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef VK_VERSION
#define VK_VERSION "0.0.0"
#endif

#define URL_MAX 2048
#define RESPONSE_MAX (64u * 1024u)

struct vk_tracer {
    char *url; /* NULL: no export */
    char *service_name;
    char *service_version;
    size_t queue_max;
    size_t batch_max;
    unsigned flush_interval_ms;
    unsigned timeout_ms;
    unsigned retry_initial_ms;
    unsigned retry_max_ms;
    unsigned max_attempts;

    pthread_mutex_t lock;
    pthread_cond_t wake; /* the export thread waits here */
    pthread_cond_t done; /* vk_trace_flush() waits here */
    struct vk_span *head;
    struct vk_span **tail;
    size_t qlen;
    uint64_t enqueued; /* spans ever queued */
    uint64_t finished; /* queued spans exported or dropped since */
    unsigned flush_waiters;
    atomic_bool stop;
    int64_t stop_deadline_ns; /* monotonic */
    bool has_thread;
    pthread_t thread;
    unsigned fail_streak; /* export thread only */
    CURL *curl;           /* export thread only */

    /* Random bytes for ids: RAND_bytes costs about a microsecond per call
     * whatever the size, so ids are cut from a block drawn in one call. */
    pthread_mutex_t id_lock;
    size_t id_left;
    uint8_t id_pool[4096];

    atomic_uint_fast64_t started;
    atomic_uint_fast64_t exported;
    atomic_uint_fast64_t dropped_queue;
    atomic_uint_fast64_t dropped_export;
    atomic_uint_fast64_t requests_ok;
    atomic_uint_fast64_t requests_failed;
    struct vk_counter_child *m_exported;
    struct vk_counter_child *m_dropped_queue;
    struct vk_counter_child *m_dropped_export;
};

/* ---------------------------------------------------------------- time */

static void abs_deadline(struct timespec *ts, int64_t mono_ns)
{
    ts->tv_sec = (time_t)(mono_ns / 1000000000);
    ts->tv_nsec = (long)(mono_ns % 1000000000);
}

/* Wait on `cond` (monotonic clock) until `deadline_ns`. Caller holds t->lock. */
static void wait_until(struct vk_tracer *t, pthread_cond_t *cond, int64_t deadline_ns)
{
    struct timespec ts;
    abs_deadline(&ts, deadline_ns);
    pthread_cond_timedwait(cond, &t->lock, &ts);
}

/* ---------------------------------------------------------------- HTTP */

static size_t discard_body(char *p, size_t size, size_t n, void *arg)
{
    size_t *total = arg;
    *total += size * n;
    return *total > RESPONSE_MAX ? 0 : size * n;
}

enum post_result { POST_OK, POST_RETRY, POST_FATAL };

/* POST one encoded batch. A 2xx is success; 429, 502, 503, 504 and transport
 * errors may succeed later (the OTLP/HTTP spec's retryable set); any other
 * status will not. */
static enum post_result post(struct vk_tracer *t, const struct vk_buf *body, unsigned timeout_ms)
{
    size_t got = 0;
    long status = 0;
    struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    if (!hdrs)
        return POST_RETRY;
    CURL *c = t->curl;
    curl_easy_setopt(c, CURLOPT_URL, t->url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body->data);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body->len);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &got);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)(timeout_ms < 2000 ? timeout_ms : 2000));
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_USERAGENT, "vulcan/" VK_VERSION);
    CURLcode cc = curl_easy_perform(c);
    if (cc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(hdrs);
    if (cc != CURLE_OK)
        return POST_RETRY;
    if (status >= 200 && status < 300)
        return POST_OK;
    if (status == 429 || status == 502 || status == 503 || status == 504)
        return POST_RETRY;
    return POST_FATAL;
}

/* ---------------------------------------------------------------- export thread */

static unsigned backoff_ms(const struct vk_tracer *t)
{
    unsigned ms = t->retry_initial_ms;
    for (unsigned i = 1; i < t->fail_streak && ms < t->retry_max_ms; i++)
        ms *= 2;
    return ms < t->retry_max_ms ? ms : t->retry_max_ms;
}

static void count_dropped_export(struct vk_tracer *t, size_t n)
{
    atomic_fetch_add(&t->dropped_export, n);
    vk_metrics_counter_add(t->m_dropped_export, n);
}

/* Send `n` spans, retrying. Runs without the lock but for the backoff sleeps.
 * Returns true when the collector took them. */
static bool export_batch(struct vk_tracer *t, struct vk_span **spans, size_t n, struct vk_buf *body)
{
    vk_buf_reset(body);
    if (vk_trace_otlp_encode_json(t->service_name, t->service_version, spans, n, body) < 0)
        return false;
    for (unsigned attempt = 0; attempt < t->max_attempts; attempt++) {
        if (t->fail_streak > 0) {
            int64_t until = vk_time_mono_ns() + (int64_t)backoff_ms(t) * 1000000;
            pthread_mutex_lock(&t->lock);
            while (!t->stop && vk_time_mono_ns() < until)
                wait_until(t, &t->wake, until);
            bool stopping = t->stop;
            pthread_mutex_unlock(&t->lock);
            /* At shutdown we still try once, within the shutdown deadline. */
            if (stopping && attempt > 0)
                return false;
        }
        unsigned timeout = t->timeout_ms;
        if (t->stop) {
            int64_t left = (t->stop_deadline_ns - vk_time_mono_ns()) / 1000000;
            if (left <= 0)
                return false;
            if ((unsigned)left < timeout)
                timeout = (unsigned)left;
        }
        enum post_result r = post(t, body, timeout);
        if (r == POST_OK) {
            atomic_fetch_add(&t->requests_ok, 1);
            t->fail_streak = 0;
            return true;
        }
        atomic_fetch_add(&t->requests_failed, 1);
        if (t->fail_streak < 64)
            t->fail_streak++;
        if (r == POST_FATAL)
            return false;
    }
    return false;
}

static void *export_main(void *arg)
{
    struct vk_tracer *t = arg;
    struct vk_buf body = VK_BUF_INIT(VK_MAX_BODY);
    struct vk_span **batch = vk_mem_xcalloc(t->batch_max, sizeof(*batch));
    int64_t next_flush = vk_time_mono_ns() + (int64_t)t->flush_interval_ms * 1000000;

    pthread_mutex_lock(&t->lock);
    for (;;) {
        bool due = t->qlen >= t->batch_max || t->flush_waiters > 0 || t->stop ||
                   (t->qlen > 0 && vk_time_mono_ns() >= next_flush);
        if (t->stop && (t->qlen == 0 || vk_time_mono_ns() >= t->stop_deadline_ns))
            break;
        if (!due || t->qlen == 0) {
            if (vk_time_mono_ns() >= next_flush)
                next_flush = vk_time_mono_ns() + (int64_t)t->flush_interval_ms * 1000000;
            wait_until(t, &t->wake, next_flush);
            continue;
        }
        size_t n = 0;
        while (n < t->batch_max && t->head) {
            batch[n++] = t->head;
            t->head = t->head->next;
        }
        if (!t->head)
            t->tail = &t->head;
        t->qlen -= n;
        pthread_mutex_unlock(&t->lock);

        if (export_batch(t, batch, n, &body)) {
            atomic_fetch_add(&t->exported, n);
            vk_metrics_counter_add(t->m_exported, n);
        } else {
            count_dropped_export(t, n);
        }
        for (size_t i = 0; i < n; i++)
            vk_mem_free(batch[i]);
        next_flush = vk_time_mono_ns() + (int64_t)t->flush_interval_ms * 1000000;

        pthread_mutex_lock(&t->lock);
        t->finished += n;
        pthread_cond_broadcast(&t->done);
    }
    /* Shutdown deadline passed (or nothing left): drop what remains. */
    size_t left = 0;
    while (t->head) {
        struct vk_span *s = t->head;
        t->head = s->next;
        vk_mem_free(s);
        left++;
    }
    t->tail = &t->head;
    t->qlen = 0;
    t->finished += left;
    pthread_cond_broadcast(&t->done);
    pthread_mutex_unlock(&t->lock);
    count_dropped_export(t, left);
    vk_mem_free(batch);
    vk_buf_release(&body);
    return NULL;
}

/* ---------------------------------------------------------------- lifecycle */

static char *build_url(const char *endpoint, struct vk_err *err)
{
    size_t len = strlen(endpoint);
    while (len > 0 && endpoint[len - 1] == '/')
        len--;
    if (len == 0 || len > URL_MAX ||
        (strncmp(endpoint, "http://", 7) != 0 && strncmp(endpoint, "https://", 8) != 0)) {
        vk_err_set(err, VK_EINVAL, "invalid OTLP endpoint '%.200s': want http(s)://host:port",
                   endpoint);
        return NULL;
    }
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)endpoint[i] <= ' ' || endpoint[i] == 0x7f) {
            vk_err_set(err, VK_EINVAL, "invalid OTLP endpoint '%.200s'", endpoint);
            return NULL;
        }
    }
    const char *suffix = "/v1/traces";
    bool has = len >= 10 && memcmp(endpoint + len - 10, suffix, 10) == 0;
    char *url = vk_mem_alloc(len + 11);
    if (!url) {
        vk_err_set(err, VK_ENOMEM, "out of memory");
        return NULL;
    }
    memcpy(url, endpoint, len);
    strcpy(url + len, has ? "" : suffix);
    return url;
}

static void tracer_destroy(struct vk_tracer *t)
{
    OPENSSL_cleanse(t->id_pool, sizeof(t->id_pool));
    pthread_mutex_destroy(&t->id_lock);
    if (t->curl)
        curl_easy_cleanup(t->curl);
    if (t->url)
        curl_global_cleanup();
    pthread_cond_destroy(&t->done);
    pthread_cond_destroy(&t->wake);
    pthread_mutex_destroy(&t->lock);
    vk_mem_free(t->url);
    vk_mem_free(t->service_name);
    vk_mem_free(t->service_version);
    vk_mem_free(t);
}

static int register_metrics(struct vk_tracer *t, struct vk_metrics *reg, struct vk_err *err)
{
    struct vk_metric *exported, *dropped;
    int rc = vk_metrics_counter(reg, VK_METRIC_SPANS_EXPORTED_TOTAL,
                                "Spans accepted by the OTLP collector.", NULL, &exported, err);
    if (rc == 0)
        rc = vk_metrics_counter(reg, VK_METRIC_SPANS_DROPPED_TOTAL,
                                "Spans dropped: queue_full (exporter behind) or export_failed "
                                "(collector unreachable or refusing).",
                                "reason", &dropped, err);
    if (rc < 0)
        return rc;
    t->m_exported = vk_metrics_counter_with(exported);
    t->m_dropped_queue = vk_metrics_counter_with(dropped, "queue_full");
    t->m_dropped_export = vk_metrics_counter_with(dropped, "export_failed");
    return 0;
}

int vk_trace_new(const struct vk_tracer_config *cfg, struct vk_tracer **out, struct vk_err *err)
{
    *out = NULL;
    struct vk_tracer *t = vk_mem_calloc(1, sizeof(*t));
    if (!t)
        return vk_err_set(err, VK_ENOMEM, "out of memory");
    pthread_mutex_init(&t->lock, NULL);
    pthread_mutex_init(&t->id_lock, NULL);
    vk_time_cond_init(&t->wake);
    vk_time_cond_init(&t->done);
    t->tail = &t->head;
    t->queue_max = cfg->queue_max ? cfg->queue_max : 2048;
    t->batch_max = cfg->batch_max ? cfg->batch_max : 256;
    t->flush_interval_ms = cfg->flush_interval_ms ? cfg->flush_interval_ms : 1000;
    t->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : 5000;
    t->retry_initial_ms = cfg->retry_initial_ms ? cfg->retry_initial_ms : 100;
    t->retry_max_ms = cfg->retry_max_ms ? cfg->retry_max_ms : 5000;
    t->max_attempts = cfg->max_attempts ? cfg->max_attempts : 3;
    if (t->batch_max > 65536 || t->queue_max > (1u << 24)) {
        tracer_destroy(t);
        return vk_err_set(err, VK_EINVAL, "tracer queue or batch size too large");
    }
    t->service_name = vk_mem_alloc(256);
    t->service_version = vk_mem_alloc(128);
    if (!t->service_name || !t->service_version) {
        tracer_destroy(t);
        return vk_err_set(err, VK_ENOMEM, "out of memory");
    }
    vk__telemetry_copy_utf8(t->service_name, 256, cfg->service_name ? cfg->service_name : "vulcan");
    vk__telemetry_copy_utf8(t->service_version, 128,
                            cfg->service_version ? cfg->service_version : VK_VERSION);
    int rc = 0;
    if (cfg->metrics) {
        rc = register_metrics(t, cfg->metrics, err);
        if (rc < 0) {
            tracer_destroy(t);
            return rc;
        }
    }
    if (cfg->endpoint) {
        char *url = build_url(cfg->endpoint, err);
        if (!url) {
            rc = err ? err->code : VK_EINVAL;
            tracer_destroy(t);
            return rc;
        }
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            vk_mem_free(url);
            tracer_destroy(t);
            return vk_err_set(err, VK_EIO, "cannot initialise libcurl");
        }
        t->url = url;
        t->curl = curl_easy_init();
        if (!t->curl) {
            tracer_destroy(t);
            return vk_err_set(err, VK_ENOMEM, "cannot create a curl handle");
        }
        int prc = pthread_create(&t->thread, NULL, export_main, t);
        if (prc != 0) {
            tracer_destroy(t);
            return vk_err_set(err, VK_EIO, "cannot start the trace export thread: %s",
                              strerror(prc));
        }
        t->has_thread = true;
    }
    *out = t;
    return 0;
}

void vk_trace_free(struct vk_tracer *t, unsigned timeout_ms)
{
    if (!t)
        return;
    if (t->has_thread) {
        pthread_mutex_lock(&t->lock);
        t->stop = true;
        t->stop_deadline_ns = vk_time_mono_ns() + (int64_t)timeout_ms * 1000000;
        pthread_cond_broadcast(&t->wake);
        pthread_mutex_unlock(&t->lock);
        pthread_join(t->thread, NULL);
    }
    tracer_destroy(t);
}

/* ---------------------------------------------------------------- spans */

/* Fill `out` with `n` random bytes, not all zero, from the tracer's block
 * (refilled with RAND_bytes). Falls back to RAND_bytes directly, then to the
 * clock (ids need to be unique, not secret) if OpenSSL has no entropy. */
static void random_id(struct vk_tracer *t, uint8_t *out, size_t n)
{
    for (int tries = 0; tries < 4; tries++) {
        bool ok = true;
        pthread_mutex_lock(&t->id_lock);
        if (t->id_left < n) {
            ok = RAND_bytes(t->id_pool, (int)sizeof(t->id_pool)) == 1;
            t->id_left = ok ? sizeof(t->id_pool) : 0;
        }
        if (ok) {
            uint8_t *p = t->id_pool + sizeof(t->id_pool) - t->id_left;
            memcpy(out, p, n);
            OPENSSL_cleanse(p, n);
            t->id_left -= n;
        }
        pthread_mutex_unlock(&t->id_lock);
        for (size_t i = 0; ok && i < n; i++)
            if (out[i])
                return;
    }
    int64_t now = vk__telemetry_now_ns() ^ vk_time_mono_ns();
    memset(out, 0, n);
    memcpy(out, &now, n < sizeof(now) ? n : sizeof(now));
    out[n - 1] |= 1;
}

struct vk_span *vk_trace_start_span(struct vk_tracer *t, const char *name, enum vk_span_kind kind,
                                    const struct vk_trace_ctx *parent)
{
    uint8_t trace_id[VK_TRACE_ID_SIZE] = {0};
    uint8_t span_id[VK_SPAN_ID_SIZE];
    if (!t)
        return NULL;
    if (!vk__telemetry_ctx_valid(parent))
        random_id(t, trace_id, sizeof(trace_id));
    random_id(t, span_id, sizeof(span_id));
    struct vk_span *s = vk_mem_xalloc(sizeof(*s));
    vk__telemetry_span_init(s, name, kind, parent, trace_id, span_id);
    atomic_fetch_add_explicit(&t->started, 1, memory_order_relaxed);
    return s;
}

struct vk_span *vk_trace_start_span_as(struct vk_tracer *t, const char *name,
                                       enum vk_span_kind kind, const struct vk_trace_ctx *self,
                                       const uint8_t *parent_span_id, int64_t start_ns)
{
    if (!t || !vk__telemetry_ctx_valid(self))
        return NULL;
    struct vk_span *s = vk_mem_xalloc(sizeof(*s));
    vk__telemetry_span_init(s, name, kind, self, self->trace_id, self->span_id);
    /* span_init made `self` the parent; set the real one (or none). */
    s->has_parent = false;
    memset(s->parent_span_id, 0, VK_SPAN_ID_SIZE);
    if (parent_span_id) {
        for (size_t i = 0; i < VK_SPAN_ID_SIZE && !s->has_parent; i++)
            s->has_parent = parent_span_id[i] != 0;
        if (s->has_parent)
            memcpy(s->parent_span_id, parent_span_id, VK_SPAN_ID_SIZE);
    }
    if (start_ns > 0)
        s->start_ns = start_ns;
    atomic_fetch_add_explicit(&t->started, 1, memory_order_relaxed);
    return s;
}

void vk_trace_span_set_start(struct vk_span *s, int64_t start_ns)
{
    if (s && start_ns > 0 && start_ns < s->start_ns)
        s->start_ns = start_ns;
}

void vk_trace_end_span(struct vk_tracer *t, struct vk_span *s)
{
    vk_trace_end_span_at(t, s, 0);
}

void vk_trace_end_span_at(struct vk_tracer *t, struct vk_span *s, int64_t end_ns)
{
    if (!s)
        return;
    s->end_ns = end_ns > 0 ? end_ns : vk__telemetry_now_ns();
    if (s->end_ns < s->start_ns)
        s->end_ns = s->start_ns;
    if (!t || !t->url || !(s->ctx.flags & VK_TRACE_FLAG_SAMPLED)) {
        vk_mem_free(s);
        return;
    }
    s->next = NULL;
    pthread_mutex_lock(&t->lock);
    if (t->qlen >= t->queue_max || t->stop) {
        pthread_mutex_unlock(&t->lock);
        vk_mem_free(s);
        atomic_fetch_add_explicit(&t->dropped_queue, 1, memory_order_relaxed);
        vk_metrics_counter_inc(t->m_dropped_queue);
        return;
    }
    *t->tail = s;
    t->tail = &s->next;
    t->qlen++;
    t->enqueued++;
    if (t->qlen == t->batch_max)
        pthread_cond_signal(&t->wake);
    pthread_mutex_unlock(&t->lock);
}

int vk_trace_flush(struct vk_tracer *t, unsigned timeout_ms)
{
    if (!t || !t->has_thread)
        return 0;
    int64_t deadline = vk_time_mono_ns() + (int64_t)timeout_ms * 1000000;
    int rc = 0;
    pthread_mutex_lock(&t->lock);
    uint64_t target = t->enqueued;
    t->flush_waiters++;
    pthread_cond_signal(&t->wake);
    while (t->finished < target) {
        if (vk_time_mono_ns() >= deadline) {
            rc = VK_ETIMEDOUT;
            break;
        }
        wait_until(t, &t->done, deadline);
    }
    t->flush_waiters--;
    pthread_mutex_unlock(&t->lock);
    return rc;
}

void vk_trace_stats(struct vk_tracer *t, struct vk_trace_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (!t)
        return;
    out->started = atomic_load(&t->started);
    out->exported = atomic_load(&t->exported);
    out->dropped_queue = atomic_load(&t->dropped_queue);
    out->dropped_export = atomic_load(&t->dropped_export);
    out->requests_ok = atomic_load(&t->requests_ok);
    out->requests_failed = atomic_load(&t->requests_failed);
}
