/*
 * OTLP/HTTP JSON encoding of spans (the protobuf JSON mapping OTLP defines):
 * ids as lowercase hex, 64-bit integers as decimal strings, enums as numbers.
 * The document is built with jansson, which does the escaping; every string is
 * valid UTF-8 because spans are sanitised when set.
 */
#include "telemetry_int.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>

struct json_sink {
    struct vk_buf *out;
    int rc;
};

/* After the first failed write every later one fails too: jansson goes on after a
 * failed write of an object key, which would leave a hole in the text. */
static int json_sink_add(const char *p, size_t n, void *arg)
{
    struct json_sink *k = arg;
    if (k->rc == 0)
        k->rc = vk_buf_add(k->out, p, n);
    return k->rc ? -1 : 0;
}

int vk__telemetry_json_add(struct vk_buf *out, const json_t *v, size_t flags)
{
    struct json_sink k = {.out = out, .rc = 0};
    size_t before = out->len;
    int rc = v ? json_dump_callback(v, json_sink_add, &k, flags) : -1;
    if (k.rc < 0)
        return k.rc;
    if (rc < 0 && out->cap) {
        /* jansson ran out of memory itself: take back what it wrote */
        out->len = before;
        out->data[before] = '\0';
    }
    return rc < 0 ? VK_ENOMEM : 0;
}

/* {"key": key, "value": {"stringValue": value}}, or NULL. */
static json_t *kv_str(const char *key, const char *value)
{
    return json_pack("{s:s, s:{s:s}}", "key", key, "value", "stringValue", value);
}

/* One attribute, or NULL when out of memory. */
static json_t *attr_json(const struct vk_span_attr *a)
{
    if (a->type == VK_ATTR_STRING)
        return kv_str(a->key, a->str);
    char num[24];
    snprintf(num, sizeof(num), "%" PRId64, a->num);
    return json_pack("{s:s, s:{s:s}}", "key", a->key, "value", "intValue", num);
}

/* One span, or NULL when out of memory. */
static json_t *span_json(const struct vk_span *s)
{
    char tid[VK_TRACE_ID_HEX_LEN], sid[VK_SPAN_ID_HEX_LEN], pid[VK_SPAN_ID_HEX_LEN];
    char start[24], end[24];
    vk_trace_id_hex(s->ctx.trace_id, tid);
    vk_trace_span_id_hex(s->ctx.span_id, sid);
    vk_trace_span_id_hex(s->parent_span_id, pid);
    snprintf(start, sizeof(start), "%" PRId64, s->start_ns);
    snprintf(end, sizeof(end), "%" PRId64, s->end_ns);
    json_t *attrs = json_array();
    int bad = 0;
    for (unsigned i = 0; i < s->nattrs; i++)
        bad |= json_array_append_new(attrs, attr_json(&s->attrs[i]));
    if (bad) {
        json_decref(attrs);
        return NULL;
    }
    /* Optional members are set one by one: jansson's "s*" would also leave out a member
     * whose string it could not allocate. */
    json_t *status = json_pack("{s:i}", "code", (int)s->status);
    if (s->status_msg[0])
        bad |= json_object_set_new(status, "message", json_string(s->status_msg));
    json_t *o = json_pack("{s:s, s:s}", "traceId", tid, "spanId", sid);
    if (s->has_parent)
        bad |= json_object_set_new(o, "parentSpanId", json_string(pid));
    bad |= json_object_update_new(
        o, json_pack("{s:s, s:i, s:s, s:s, s:o, s:I, s:o}", "name", s->name, "kind", (int)s->kind,
                     "startTimeUnixNano", start, "endTimeUnixNano", end, "attributes", attrs,
                     "droppedAttributesCount", (json_int_t)s->dropped_attrs, "status", status));
    if (bad) {
        json_decref(o);
        return NULL;
    }
    return o;
}

int vk_trace_otlp_encode_json(const char *service_name, const char *service_version,
                              struct vk_span *const *spans, size_t n, struct vk_buf *out)
{
    char name[256], version[128];
    vk__telemetry_copy_utf8(name, sizeof(name), service_name ? service_name : "vulcan");
    vk__telemetry_copy_utf8(version, sizeof(version), service_version ? service_version : "");
    json_t *list = json_array();
    int bad = 0;
    for (size_t i = 0; i < n; i++)
        bad |= json_array_append_new(list, span_json(spans[i]));
    if (bad) {
        json_decref(list);
        return VK_ENOMEM;
    }
    json_t *doc =
        json_pack("{s:[{s:{s:[oo]}, s:[{s:{s:s, s:s}, s:o}]}]}", "resourceSpans", "resource",
                  "attributes", kv_str("service.name", name), kv_str("service.version", version),
                  "scopeSpans", "scope", "name", "vulcan", "version", version, "spans", list);
    int rc = vk__telemetry_json_add(out, doc, JSON_COMPACT);
    json_decref(doc);
    return rc;
}
