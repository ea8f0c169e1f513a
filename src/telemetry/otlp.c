/*
 * OTLP/HTTP JSON encoding of spans (the protobuf JSON mapping OTLP defines):
 * ids as lowercase hex, 64-bit integers as decimal strings, enums as numbers.
 */
#include "telemetry_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* Append `s` as a JSON string. Input is valid UTF-8 (spans are sanitised when
 * set); control characters are escaped. */
static int add_json_str(struct vk_buf *out, const char *s)
{
    int rc = vk_buf_addch(out, '"');
    const char *run = s;
    for (const char *p = s; rc == 0 && *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        rc = vk_buf_add(out, run, (size_t)(p - run));
        if (rc == 0) {
            if (c == '"' || c == '\\')
                rc = vk_buf_addf(out, "\\%c", c);
            else if (c == '\n')
                rc = vk_buf_adds(out, "\\n");
            else
                rc = vk_buf_addf(out, "\\u%04x", c);
        }
        run = p + 1;
    }
    if (rc == 0)
        rc = vk_buf_adds(out, run);
    if (rc == 0)
        rc = vk_buf_addch(out, '"');
    return rc;
}

static int add_kv_str(struct vk_buf *out, const char *key, const char *value)
{
    int rc = vk_buf_adds(out, "{\"key\":");
    if (rc == 0)
        rc = add_json_str(out, key);
    if (rc == 0)
        rc = vk_buf_adds(out, ",\"value\":{\"stringValue\":");
    if (rc == 0)
        rc = add_json_str(out, value);
    if (rc == 0)
        rc = vk_buf_adds(out, "}}");
    return rc;
}

static int add_span(struct vk_buf *out, const struct vk_span *s)
{
    char tid[VK_TRACE_ID_HEX_LEN], sid[VK_SPAN_ID_HEX_LEN], pid[VK_SPAN_ID_HEX_LEN];
    vk_trace_id_hex(s->ctx.trace_id, tid);
    vk_trace_span_id_hex(s->ctx.span_id, sid);
    int rc = vk_buf_addf(out, "{\"traceId\":\"%s\",\"spanId\":\"%s\",", tid, sid);
    if (rc == 0 && s->has_parent) {
        vk_trace_span_id_hex(s->parent_span_id, pid);
        rc = vk_buf_addf(out, "\"parentSpanId\":\"%s\",", pid);
    }
    if (rc == 0)
        rc = vk_buf_adds(out, "\"name\":");
    if (rc == 0)
        rc = add_json_str(out, s->name);
    if (rc == 0)
        rc = vk_buf_addf(out,
                         ",\"kind\":%d,\"startTimeUnixNano\":\"%" PRId64
                         "\",\"endTimeUnixNano\":\"%" PRId64 "\",\"attributes\":[",
                         (int)s->kind, s->start_ns, s->end_ns);
    for (unsigned i = 0; rc == 0 && i < s->nattrs; i++) {
        const struct vk_span_attr *a = &s->attrs[i];
        if (i)
            rc = vk_buf_addch(out, ',');
        if (rc == 0 && a->type == VK_ATTR_STRING) {
            rc = add_kv_str(out, a->key, a->str);
        } else if (rc == 0) {
            rc = vk_buf_adds(out, "{\"key\":");
            if (rc == 0)
                rc = add_json_str(out, a->key);
            if (rc == 0)
                rc = vk_buf_addf(out, ",\"value\":{\"intValue\":\"%" PRId64 "\"}}", a->num);
        }
    }
    if (rc == 0)
        rc = vk_buf_addf(out, "],\"droppedAttributesCount\":%u,\"status\":{\"code\":%d",
                         s->dropped_attrs, (int)s->status);
    if (rc == 0 && s->status_msg[0]) {
        rc = vk_buf_adds(out, ",\"message\":");
        if (rc == 0)
            rc = add_json_str(out, s->status_msg);
    }
    if (rc == 0)
        rc = vk_buf_adds(out, "}}");
    return rc;
}

int vk_trace_otlp_encode_json(const char *service_name, const char *service_version,
                              struct vk_span *const *spans, size_t n, struct vk_buf *out)
{
    char name[256], version[128];
    vk__telemetry_copy_utf8(name, sizeof(name), service_name ? service_name : "vulcan");
    vk__telemetry_copy_utf8(version, sizeof(version), service_version ? service_version : "");
    int rc = vk_buf_adds(out, "{\"resourceSpans\":[{\"resource\":{\"attributes\":[");
    if (rc == 0)
        rc = add_kv_str(out, "service.name", name);
    if (rc == 0)
        rc = vk_buf_addch(out, ',');
    if (rc == 0)
        rc = add_kv_str(out, "service.version", version);
    if (rc == 0)
        rc = vk_buf_adds(out, "]},\"scopeSpans\":[{\"scope\":{\"name\":\"vulcan\",\"version\":");
    if (rc == 0)
        rc = add_json_str(out, version);
    if (rc == 0)
        rc = vk_buf_adds(out, "},\"spans\":[");
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (i)
            rc = vk_buf_addch(out, ',');
        if (rc == 0)
            rc = add_span(out, spans[i]);
    }
    if (rc == 0)
        rc = vk_buf_adds(out, "]}]}]}");
    return rc;
}
