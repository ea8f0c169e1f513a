/* Private to the telemetry module: helpers shared by trace.c, otlp.c and exporter.c. */
#ifndef VULCAN_TELEMETRY_INT_H
#define VULCAN_TELEMETRY_INT_H

#include "vulcan/telemetry.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/**
 * Append `v` (borrowed; NULL counts as out of memory) as JSON text with jansson's
 * `flags` to `out`. Returns 0, VK_ENOMEM or VK_ETOOBIG: a failed append releases `out`,
 * as vk_buf does, and when jansson runs out of memory `out` is as it was. Never leaves
 * a partial text where json_dumps() could: jansson skips over a failed write of an
 * object key.
 */
int vk__telemetry_json_add(struct vk_buf *out, const json_t *v, size_t flags);

/** Wall-clock nanoseconds since the Unix epoch. */
int64_t vk__telemetry_now_ns(void);

/** Copy `src` into `dst` (cap bytes) as valid UTF-8; returns the length written. */
size_t vk__telemetry_copy_utf8(char *dst, size_t cap, const char *src);

/** True when `ctx` (may be NULL) has a non-zero trace id and span id. */
bool vk__telemetry_ctx_valid(const struct vk_trace_ctx *ctx);

/**
 * Set up a span's ids, name, kind and start time (the attribute bytes are left
 * as they are). With a valid `parent` the span joins its trace; else it starts
 * the trace `trace_id`. `span_id` is the span's own id (non-zero).
 */
void vk__telemetry_span_init(struct vk_span *s, const char *name, enum vk_span_kind kind,
                             const struct vk_trace_ctx *parent,
                             const uint8_t trace_id[VK_TRACE_ID_SIZE],
                             const uint8_t span_id[VK_SPAN_ID_SIZE]);

#endif
