/*
 * telemetry — structured logs, metrics and traces.
 *
 * Logs. A log record is one line on the configured stream (stderr by default):
 * a JSON object `{"time","level","component","msg", fields...}` or, with
 * VK_LOG_TEXT, logfmt (`time=… level=info component=api msg="…" key=value`)
 * for terminals. Records below the configured level are dropped cheaply.
 * The log configuration is process-wide configuration (set once at start-up
 * by the executable; libraries only emit). Emitting is thread-safe: each
 * record is written with one write(2), so lines never interleave.
 * Never pass a secret, a token or a webhook body as a field.
 *
 * Metrics. A registry (struct vk_metrics) owned by the executable holds metric
 * families (counter, gauge, histogram), each with up to VK_METRICS_MAX_LABELS
 * label names. A caller obtains a child (one label combination) once and then
 * updates it with atomics: vk_metrics_counter_inc() is one atomic add on a per-thread
 * stripe, vk_metrics_histogram_observe() a few. Children live as long as the registry.
 * Each family holds at most `max_series` children; lookups beyond that return
 * the family's overflow child, whose label values are all "__overflow__".
 * vk_metrics_render() writes the Prometheus text exposition format 0.0.4.
 * Thread-safety: registering, looking up children, updating and rendering are
 * all safe from any thread; registration is meant for start-up.
 *
 * Traces. W3C `traceparent` parsing and formatting, and a tracer (struct
 * vk_tracer) owned by the executable that hands out spans and exports ended
 * spans over OTLP/HTTP (JSON encoding) from a background thread. Ending a
 * span only enqueues it: the caller never waits for the network. When the
 * bounded queue is full or the collector keeps failing, spans are dropped and
 * counted. A span is used by one thread at a time; the tracer is thread-safe.
 */
#ifndef VULCAN_TELEMETRY_H
#define VULCAN_TELEMETRY_H

#include "vulcan/util.h"

#include <stdbool.h>

/* ---------------------------------------------------------------- Types */

enum vk_log_level {
    VK_LOG_DEBUG = 0,
    VK_LOG_INFO = 1,
    VK_LOG_WARN = 2,
    VK_LOG_ERROR = 3,
    VK_LOG_OFF = 4
};

enum vk_log_format { VK_LOG_JSON = 0, VK_LOG_TEXT = 1 };

/* ---------------------------------------------------------------- Configuration */

/**
 * Set the minimum level, the format and the file descriptor records go to
 * (-1 keeps the current one; the default is 2, stderr). Call at start-up,
 * before threads start.
 */
void vk_log_configure(enum vk_log_level level, enum vk_log_format format, int fd);

/** Parse "debug", "info", "warn"/"warning", "error", "off". Returns 0 or VK_EINVAL. */
int vk_log_level_parse(const char *s, enum vk_log_level *out) VK_MUST_CHECK;

/** Parse "json" or "text". Returns 0 or VK_EINVAL. */
int vk_log_format_parse(const char *s, enum vk_log_format *out) VK_MUST_CHECK;

/** True when records at `level` are written (to skip building expensive fields). */
bool vk_log_enabled(enum vk_log_level level);

/* ---------------------------------------------------------------- Operations */

/**
 * Emit one record. After `msg` come field pairs `const char *key, const char *value`,
 * ended by a NULL key; a NULL value is skipped. Borrows everything.
 *
 *     vk_log_write(VK_LOG_INFO, "orchestrator", "fragment claimed",
 *            "fragment_id", id, "worker_id", wid, NULL);
 */
void vk_log_write(enum vk_log_level level, const char *component, const char *msg, ...);

/** va_list variant of vk_log_write(); `ap` holds the field pairs. */
void vk_log_vwrite(enum vk_log_level level, const char *component, const char *msg, va_list ap);

/* ================================================================ Metrics */

/* ---------------------------------------------------------------- Types */

/** A metrics registry: the set of families rendered at `GET /metrics`. */
struct vk_metrics;
/** One metric family (a name, a type, label names, its children). */
struct vk_metric;
/** One label combination of a counter, gauge or histogram family. */
struct vk_counter_child;
struct vk_gauge_child;
struct vk_histogram_child;
/** Where a gauge callback writes its samples during one scrape. */
struct vk_metric_sink;

/** At most this many label names per family. */
#define VK_METRICS_MAX_LABELS 4
/** Default cap on children (label combinations) per family. */
#define VK_METRICS_DEFAULT_MAX_SERIES 1000
/** At most this many histogram bucket bounds (+Inf is implicit). */
#define VK_METRICS_MAX_BUCKETS 32
/** Label values longer than this are truncated (bytes). */
#define VK_METRICS_MAX_VALUE_LEN 128
/** The label value every label of the overflow child carries. */
#define VK_METRICS_OVERFLOW_VALUE "__overflow__"

/**
 * Called at scrape time to emit the current samples of a callback gauge with
 * vk_metrics_sink_add(). Runs on the scraping thread, one scrape at a time per
 * registry; it must not register metrics or render.
 */
typedef void (*vk_metrics_collect_fn)(void *arg, struct vk_metric_sink *sink);

/** Default histogram bounds in seconds: 0.001 … 60 (15 bounds). */
extern const double vk_metrics_buckets_default[15];
/** Bounds for long durations in seconds (chains): 0.1 … 7200 (15 bounds). */
extern const double vk_metrics_buckets_long[15];

/* ---------------------------------------------------------------- Lifecycle */

/**
 * Returns owned: a new empty registry (free with vk_metrics_free()). Each family
 * keeps at most `max_series` children (0 picks VK_METRICS_DEFAULT_MAX_SERIES).
 * Aborts when out of memory (a small fixed-size allocation).
 */
struct vk_metrics *vk_metrics_new(size_t max_series);

/** Free the registry, its families and their children. Accepts NULL. */
void vk_metrics_free(struct vk_metrics *reg);

/* ---------------------------------------------------------------- Registration */

/**
 * Register a counter, gauge or histogram family in `reg`. `name` must match
 * [a-zA-Z_:][a-zA-Z0-9_:]*; `help` is one line of text; `labels` is a
 * comma-separated list of at most VK_METRICS_MAX_LABELS label names (each
 * [a-zA-Z_][a-zA-Z0-9_]*, not starting with "__", distinct; "le" is not
 * allowed on histograms), or NULL / "" for none. Histograms take `bounds`, a
 * strictly increasing list of `nbounds` finite values (NULL picks
 * vk_metrics_buckets_default). Borrows every argument.
 *
 * Registering the same name again with the same type, labels and bounds
 * returns the existing family; any difference is VK_EEXIST. On success
 * *out is returned borrowed (valid until vk_metrics_free()).
 * Returns 0, VK_EINVAL (bad name, labels or bounds), VK_EEXIST or VK_ENOMEM.
 */
int vk_metrics_counter(struct vk_metrics *reg, const char *name, const char *help,
                       const char *labels, struct vk_metric **out,
                       struct vk_err *err) VK_MUST_CHECK;
int vk_metrics_gauge(struct vk_metrics *reg, const char *name, const char *help, const char *labels,
                     struct vk_metric **out, struct vk_err *err) VK_MUST_CHECK;
int vk_metrics_histogram(struct vk_metrics *reg, const char *name, const char *help,
                         const char *labels, const double *bounds, size_t nbounds,
                         struct vk_metric **out, struct vk_err *err) VK_MUST_CHECK;

/**
 * Register a gauge family whose samples come from `fn(arg, sink)`, called at
 * each render (for example: ready fragments per machine group, read from the
 * store). Borrows `arg` (it must outlive the registry). Same rules and
 * returns as vk_metrics_gauge().
 */
int vk_metrics_gauge_fn(struct vk_metrics *reg, const char *name, const char *help,
                        const char *labels, vk_metrics_collect_fn fn, void *arg,
                        struct vk_metric **out, struct vk_err *err) VK_MUST_CHECK;

/* ---------------------------------------------------------------- Children */

/**
 * Return the child of `m` for the given label values, creating it on first
 * use. Pass exactly as many `const char *` values as the family has label
 * names (none for a family without labels); NULL counts as "". Values are
 * copied, truncated to VK_METRICS_MAX_VALUE_LEN bytes, and invalid UTF-8 is
 * replaced by '?'. Returns borrowed (valid until vk_metrics_free()), never
 * NULL: past the series cap (or when out of memory) the overflow child.
 * Looking up an existing child takes no lock. Obtain children once, outside
 * hot loops. `m` must be a family of the matching type (programmer error).
 */
struct vk_counter_child *vk_metrics_counter_with(struct vk_metric *m, ...);
struct vk_gauge_child *vk_metrics_gauge_with(struct vk_metric *m, ...);
struct vk_histogram_child *vk_metrics_histogram_with(struct vk_metric *m, ...);

/** Array variants: `values` holds `n` label values (`n` must equal the label count). */
struct vk_counter_child *vk_metrics_counter_withv(struct vk_metric *m, const char *const *values,
                                                  size_t n);
struct vk_gauge_child *vk_metrics_gauge_withv(struct vk_metric *m, const char *const *values,
                                              size_t n);
struct vk_histogram_child *vk_metrics_histogram_withv(struct vk_metric *m,
                                                      const char *const *values, size_t n);

/** Number of lookups that went to the overflow child of `m` (past the series cap). */
uint64_t vk_metrics_overflows(const struct vk_metric *m);

/* ---------------------------------------------------------------- Updates */

/** Add 1 / `n` to a counter child. One relaxed atomic add; accepts NULL (no-op). */
void vk_metrics_counter_inc(struct vk_counter_child *c);
void vk_metrics_counter_add(struct vk_counter_child *c, uint64_t n);
/** Current total of a counter child (sum over its stripes). */
uint64_t vk_metrics_counter_value(const struct vk_counter_child *c);

/** Set / add to / read a gauge child. Accept NULL (no-op, 0). */
void vk_metrics_gauge_set(struct vk_gauge_child *g, double v);
void vk_metrics_gauge_add(struct vk_gauge_child *g, double delta);
double vk_metrics_gauge_value(const struct vk_gauge_child *g);

/**
 * Record one observation (NaN is ignored). Accepts NULL (no-op). The sample
 * lands in the first bucket whose bound is >= v; _sum and _count follow.
 */
void vk_metrics_histogram_observe(struct vk_histogram_child *h, double v);
/** Number of observations and their sum so far. */
uint64_t vk_metrics_histogram_count(const struct vk_histogram_child *h);
double vk_metrics_histogram_sum(const struct vk_histogram_child *h);

/**
 * From a gauge callback: emit one sample with `value` and the family's label
 * values (as many `const char *` as the family has labels). Samples past the
 * series cap are dropped. Borrows everything.
 */
void vk_metrics_sink_add(struct vk_metric_sink *sink, double value, ...);

/* ---------------------------------------------------------------- Rendering */

/**
 * Append every family of `reg`, in registration order, to `out` in the
 * Prometheus text exposition format 0.0.4 (`# HELP`, `# TYPE`, samples with
 * escaped label values; histograms as cumulative `_bucket{le=…}` lines ending
 * with le="+Inf", then `_sum` and `_count`). Children appear sorted by label
 * values. Families without children are rendered with HELP and TYPE only
 * (a family without labels always has its one child).
 * Returns 0 or a vk_buf error (VK_ENOMEM, VK_ETOOBIG) with details in `err`.
 */
int vk_metrics_render(struct vk_metrics *reg, struct vk_buf *out, struct vk_err *err) VK_MUST_CHECK;

/** The Content-Type of vk_metrics_render() output. */
#define VK_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* ---------------------------------------------------------------- Vulcan's metrics */

/*
 * The names Vulcan's components use (docs/observability.md lists them with
 * their labels and meaning). vk_metrics_std_register() registers the counters
 * and histograms; the gauges are callbacks the server registers itself with
 * vk_metrics_gauge_fn() and these names and labels.
 *
 * Labels: chains_total {status} · fragments_total {status} ·
 * webhook_deliveries_total {provider, verdict} · http_requests_total {method, route, status} ·
 * fragment_queue_wait {machine_group} · fragment_run_duration {machine_group, status} ·
 * chain_duration {status} · http_request_duration {method, route} · webhook_to_chain {provider} ·
 * fragments_ready {machine_group} · fragments_running {machine_group} · workers {status} ·
 * spans_exported_total (none) · spans_dropped_total {reason}.
 */
#define VK_METRIC_CHAINS_TOTAL "vulcan_chains_total"
#define VK_METRIC_FRAGMENTS_TOTAL "vulcan_fragments_total"
#define VK_METRIC_WEBHOOK_DELIVERIES_TOTAL "vulcan_webhook_deliveries_total"
#define VK_METRIC_HTTP_REQUESTS_TOTAL "vulcan_http_requests_total"
#define VK_METRIC_FRAGMENT_QUEUE_WAIT "vulcan_fragment_queue_wait_seconds"
#define VK_METRIC_FRAGMENT_RUN_DURATION "vulcan_fragment_run_duration_seconds"
#define VK_METRIC_CHAIN_DURATION "vulcan_chain_duration_seconds"
#define VK_METRIC_HTTP_REQUEST_DURATION "vulcan_http_request_duration_seconds"
#define VK_METRIC_WEBHOOK_TO_CHAIN "vulcan_webhook_to_chain_seconds"
#define VK_METRIC_FRAGMENTS_READY "vulcan_fragments_ready"
#define VK_METRIC_FRAGMENTS_RUNNING "vulcan_fragments_running"
#define VK_METRIC_WORKERS "vulcan_workers"
#define VK_METRIC_SPANS_EXPORTED_TOTAL "vulcan_trace_spans_exported_total"
#define VK_METRIC_SPANS_DROPPED_TOTAL "vulcan_trace_spans_dropped_total"

/** Handles to the families vk_metrics_std_register() creates (borrowed from the registry). */
struct vk_metrics_std {
    struct vk_metric *chains_total;
    struct vk_metric *fragments_total;
    struct vk_metric *webhook_deliveries_total;
    struct vk_metric *http_requests_total;
    struct vk_metric *fragment_queue_wait;
    struct vk_metric *fragment_run_duration;
    struct vk_metric *chain_duration;
    struct vk_metric *http_request_duration;
    struct vk_metric *webhook_to_chain;
};

/**
 * Register Vulcan's counters and histograms (the VK_METRIC_* names above, but
 * the gauges and the tracer's own) in `reg` and fill `out`. Idempotent.
 * Returns 0 or a registration error.
 */
int vk_metrics_std_register(struct vk_metrics *reg, struct vk_metrics_std *out,
                            struct vk_err *err) VK_MUST_CHECK;

/* ================================================================ Traces */

/* ---------------------------------------------------------------- Types */

#define VK_TRACE_ID_SIZE 16
#define VK_SPAN_ID_SIZE 8
/** A traceparent header value: 55 characters plus NUL. */
#define VK_TRACEPARENT_LEN 56
/** Hex text of a trace id (32 + NUL) and of a span id (16 + NUL). */
#define VK_TRACE_ID_HEX_LEN 33
#define VK_SPAN_ID_HEX_LEN 17
/** The `sampled` bit of the trace flags. */
#define VK_TRACE_FLAG_SAMPLED 0x01u

/** Span limits: longer names/values are truncated, further attributes dropped and counted. */
#define VK_SPAN_NAME_MAX 128
#define VK_SPAN_MAX_ATTRS 16
#define VK_SPAN_ATTR_BYTES 2048
#define VK_SPAN_STATUS_MSG_MAX 256

/** A position in a trace: what a traceparent header carries. */
struct vk_trace_ctx {
    uint8_t trace_id[VK_TRACE_ID_SIZE];
    uint8_t span_id[VK_SPAN_ID_SIZE];
    uint8_t flags;
};

/** Span kinds, numbered as in OTLP. */
enum vk_span_kind {
    VK_SPAN_INTERNAL = 1,
    VK_SPAN_SERVER = 2,
    VK_SPAN_CLIENT = 3,
    VK_SPAN_PRODUCER = 4,
    VK_SPAN_CONSUMER = 5
};

/** Span status codes, numbered as in OTLP. */
enum vk_span_status { VK_SPAN_UNSET = 0, VK_SPAN_OK = 1, VK_SPAN_ERROR = 2 };

enum vk_span_attr_type { VK_ATTR_STRING = 0, VK_ATTR_INT = 1 };

/** One attribute; `key` and `str` point into the span's own storage. */
struct vk_span_attr {
    const char *key;
    enum vk_span_attr_type type;
    const char *str;
    int64_t num;
};

/**
 * A span. Read the fields freely; change them only through vk_span_*().
 * `ctx.span_id` is this span's id; `parent_span_id` is all zero for a root.
 * Times are nanoseconds since the Unix epoch (end_ns is 0 until ended).
 */
struct vk_span {
    struct vk_trace_ctx ctx;
    uint8_t parent_span_id[VK_SPAN_ID_SIZE];
    bool has_parent;
    enum vk_span_kind kind;
    char name[VK_SPAN_NAME_MAX];
    int64_t start_ns;
    int64_t end_ns;
    enum vk_span_status status;
    char status_msg[VK_SPAN_STATUS_MSG_MAX];
    unsigned nattrs;
    unsigned dropped_attrs;
    struct vk_span_attr attrs[VK_SPAN_MAX_ATTRS];
    size_t attr_used;
    char attr_bytes[VK_SPAN_ATTR_BYTES];
    struct vk_span *next; /**< the tracer's queue link; not for callers */
};

/** A tracer: hands out spans, exports ended ones. */
struct vk_tracer;

/** Tracer settings; zero fields pick the defaults in brackets. */
struct vk_tracer_config {
    const char *endpoint;        /**< OTLP/HTTP base URL ("http://host:4318"); NULL: no export */
    const char *service_name;    /**< resource service.name ["vulcan"] */
    const char *service_version; /**< resource service.version [VK_VERSION] */
    size_t queue_max;            /**< ended spans waiting for export [2048] */
    size_t batch_max;            /**< spans per request; a full batch is sent at once [256] */
    unsigned flush_interval_ms;  /**< send what is queued at least this often [1000] */
    unsigned timeout_ms;         /**< one HTTP request [5000] */
    unsigned retry_initial_ms;   /**< first backoff after a failed request [100] */
    unsigned retry_max_ms;       /**< backoff cap (doubles per failure) [5000] */
    unsigned max_attempts;       /**< tries per batch before its spans are dropped [3] */
    struct vk_metrics *metrics;  /**< if set: exported/dropped counters are registered there */
};

/** Counters of a tracer (monotonic). */
struct vk_trace_stats {
    uint64_t started;         /**< spans started */
    uint64_t exported;        /**< spans accepted by the collector */
    uint64_t dropped_queue;   /**< spans dropped because the queue was full */
    uint64_t dropped_export;  /**< spans dropped after failing every attempt (or at shutdown) */
    uint64_t requests_ok;     /**< successful export requests */
    uint64_t requests_failed; /**< failed export requests (each attempt) */
};

/* ---------------------------------------------------------------- traceparent */

/**
 * Parse a W3C traceparent header value (`len` bytes at `s`, surrounding spaces
 * and tabs allowed): "00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>",
 * lowercase hex, ids not all zero, version not "ff"; a future version may carry
 * more fields after a '-'. Borrows `s`. Returns 0 or VK_EINVAL.
 */
int vk_trace_parent_parse(const char *s, size_t len, struct vk_trace_ctx *out) VK_MUST_CHECK;

/** Format `ctx` as a version-00 traceparent value into `out`. */
void vk_trace_parent_format(const struct vk_trace_ctx *ctx, char out[VK_TRACEPARENT_LEN]);

/** Lowercase hex of a trace id / span id. */
void vk_trace_id_hex(const uint8_t id[VK_TRACE_ID_SIZE], char out[VK_TRACE_ID_HEX_LEN]);
void vk_trace_span_id_hex(const uint8_t id[VK_SPAN_ID_SIZE], char out[VK_SPAN_ID_HEX_LEN]);

/** Fill `out` with random non-zero ids (OpenSSL RAND_bytes). Returns 0 or VK_EIO. */
int vk_trace_id_random(uint8_t out[VK_TRACE_ID_SIZE]) VK_MUST_CHECK;
int vk_trace_span_id_random(uint8_t out[VK_SPAN_ID_SIZE]) VK_MUST_CHECK;

/* ---------------------------------------------------------------- Tracer */

/**
 * Create a tracer. Borrows `cfg` (its strings are copied; cfg->metrics must
 * outlive the tracer). With an endpoint, starts the export thread, which POSTs
 * batches to "<endpoint>/v1/traces" (an endpoint already ending in
 * "/v1/traces" is used as it is). On success *out is returned owned (free with
 * vk_trace_free()). Returns 0, VK_EINVAL (bad endpoint), VK_ENOMEM or VK_EIO.
 */
int vk_trace_new(const struct vk_tracer_config *cfg, struct vk_tracer **out,
                 struct vk_err *err) VK_MUST_CHECK;

/**
 * Export what is queued (waiting at most `timeout_ms`), stop the thread and
 * free the tracer; spans still queued are dropped and counted. Accepts NULL.
 */
void vk_trace_free(struct vk_tracer *t, unsigned timeout_ms);

/**
 * Start a span named `name` (borrowed, copied) of `kind`. With `parent` (for
 * example parsed from an incoming traceparent, or another span's ctx) the span
 * joins that trace and inherits its flags; without, it starts a new sampled
 * trace. Returns owned: the span, to be passed to vk_trace_end_span(); NULL
 * when `t` is NULL (every vk_span_* function accepts NULL).
 */
struct vk_span *vk_trace_start_span(struct vk_tracer *t, const char *name, enum vk_span_kind kind,
                                    const struct vk_trace_ctx *parent);

/**
 * Start a span whose identity was handed out earlier (e.g. a chain: its span id
 * is fixed when the chain is created, so fragment spans can name it as parent
 * long before it ends). `self` gives the trace and span ids; `parent_span_id`
 * (VK_SPAN_ID_SIZE bytes, may be NULL) its parent; `start_ns` (nanoseconds since
 * the epoch; 0 = now) when it began. Returns owned, like vk_trace_start_span();
 * NULL when `t` is NULL or `self` is not a valid context.
 */
struct vk_span *vk_trace_start_span_as(struct vk_tracer *t, const char *name,
                                       enum vk_span_kind kind, const struct vk_trace_ctx *self,
                                       const uint8_t *parent_span_id, int64_t start_ns);

/** Move a span's start back to `start_ns` (work that began before the span was made);
 *  a later time is ignored. Accepts NULL. */
void vk_trace_span_set_start(struct vk_span *s, int64_t start_ns);

/** Add a string / integer attribute (borrowed, copied; invalid UTF-8 becomes '?'). */
void vk_trace_span_set_str(struct vk_span *s, const char *key, const char *value);
void vk_trace_span_set_int(struct vk_span *s, const char *key, int64_t value);
/** Set the status; `msg` (may be NULL) is kept for VK_SPAN_ERROR only. */
void vk_trace_span_set_status(struct vk_span *s, enum vk_span_status status, const char *msg);
/** The traceparent to send downstream for a child of `s` ("" when `s` is NULL). */
void vk_trace_span_traceparent(const struct vk_span *s, char out[VK_TRACEPARENT_LEN]);

/**
 * End the span now and hand it to the exporter. Takes ownership of `s`
 * (accepts NULL). Never blocks on I/O: when the queue is full (or there is
 * no endpoint, or the span is not sampled) the span is freed at once, and
 * counted as dropped in the first case.
 */
void vk_trace_end_span(struct vk_tracer *t, struct vk_span *s);
/** vk_trace_end_span for work that ended at `end_ns` (CLOCK_REALTIME ns; <= 0: now), not
 *  before the span's start. */
void vk_trace_end_span_at(struct vk_tracer *t, struct vk_span *s, int64_t end_ns);

/**
 * Wait until every span ended before this call has been exported or dropped,
 * at most `timeout_ms`. Returns 0 or VK_ETIMEDOUT. For tests and shutdown.
 */
int vk_trace_flush(struct vk_tracer *t, unsigned timeout_ms) VK_MUST_CHECK;

/** Copy the tracer's counters into `out`. */
void vk_trace_stats(struct vk_tracer *t, struct vk_trace_stats *out);

/**
 * Append the OTLP/HTTP JSON request body for `n` spans (an
 * ExportTraceServiceRequest with one resource and one scope) to `out`.
 * Borrows everything. Returns 0, VK_ENOMEM or VK_ETOOBIG.
 */
int vk_trace_otlp_encode_json(const char *service_name, const char *service_version,
                              struct vk_span *const *spans, size_t n,
                              struct vk_buf *out) VK_MUST_CHECK;

#endif /* VULCAN_TELEMETRY_H */
