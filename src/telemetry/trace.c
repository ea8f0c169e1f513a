/*
 * Trace contexts and spans: W3C traceparent (version 00), random ids, and the
 * span operations. The tracer and its exporter live in exporter.c.
 */
#include "telemetry_int.h"

#include <openssl/rand.h>
#include <string.h>
#include <time.h>

/* ---------------------------------------------------------------- ids */

static bool all_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return false;
    return true;
}

static int random_nonzero(uint8_t *out, size_t n)
{
    for (int tries = 0; tries < 4; tries++) {
        if (RAND_bytes(out, (int)n) != 1)
            return VK_EIO;
        if (!all_zero(out, n))
            return 0;
    }
    return VK_EIO;
}

int vk_trace_id_random(uint8_t out[VK_TRACE_ID_SIZE])
{
    return random_nonzero(out, VK_TRACE_ID_SIZE);
}

int vk_trace_span_id_random(uint8_t out[VK_SPAN_ID_SIZE])
{
    return random_nonzero(out, VK_SPAN_ID_SIZE);
}

void vk_trace_id_hex(const uint8_t id[VK_TRACE_ID_SIZE], char out[VK_TRACE_ID_HEX_LEN])
{
    vk_hex_encode(id, VK_TRACE_ID_SIZE, out);
}

void vk_trace_span_id_hex(const uint8_t id[VK_SPAN_ID_SIZE], char out[VK_SPAN_ID_HEX_LEN])
{
    vk_hex_encode(id, VK_SPAN_ID_SIZE, out);
}

/* ---------------------------------------------------------------- traceparent */

/* `n` bytes from 2n lowercase hex digits: the W3C grammar (HEXDIGLC) refuses uppercase. */
static bool parse_hex(const char *s, size_t n, uint8_t *out)
{
    return vk_hex_decode(s, 2 * n, out, VK_HEX_LOWER) == 0;
}

/* Accepts the header value with optional surrounding spaces/tabs (OWS). The
 * layout is fixed: version(2) '-' trace-id(32) '-' parent-id(16) '-' flags(2)
 * = 55 characters. Version 00 must end there; a later version may append
 * "-…" which we ignore, as the spec asks. */
int vk_trace_parent_parse(const char *s, size_t len, struct vk_trace_ctx *out)
{
    struct vk_trace_ctx ctx;
    uint8_t version;
    if (!s)
        return VK_EINVAL;
    while (len > 0 && (s[0] == ' ' || s[0] == '\t')) {
        s++;
        len--;
    }
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    if (len < 55 || len > 512)
        return VK_EINVAL;
    if (s[2] != '-' || s[35] != '-' || s[52] != '-')
        return VK_EINVAL;
    if (!parse_hex(s, 1, &version) || version == 0xff)
        return VK_EINVAL;
    if (version == 0 && len != 55)
        return VK_EINVAL;
    if (version != 0 && len > 55 && s[55] != '-')
        return VK_EINVAL;
    if (!parse_hex(s + 3, VK_TRACE_ID_SIZE, ctx.trace_id) ||
        !parse_hex(s + 36, VK_SPAN_ID_SIZE, ctx.span_id) || !parse_hex(s + 53, 1, &ctx.flags))
        return VK_EINVAL;
    if (all_zero(ctx.trace_id, VK_TRACE_ID_SIZE) || all_zero(ctx.span_id, VK_SPAN_ID_SIZE))
        return VK_EINVAL;
    *out = ctx;
    return 0;
}

void vk_trace_parent_format(const struct vk_trace_ctx *ctx, char out[VK_TRACEPARENT_LEN])
{
    out[0] = '0';
    out[1] = '0';
    out[2] = '-';
    vk_hex_encode(ctx->trace_id, VK_TRACE_ID_SIZE, out + 3);
    out[35] = '-';
    vk_hex_encode(ctx->span_id, VK_SPAN_ID_SIZE, out + 36);
    out[52] = '-';
    vk_hex_encode(&ctx->flags, 1, out + 53);
}

/* ---------------------------------------------------------------- spans */

int64_t vk__telemetry_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Copy at most `cap - 1` bytes of `src` (NULL is "") into `dst`, replacing
 * each byte of invalid UTF-8 by '?' and cutting at a character boundary.
 * Returns the length written. */
size_t vk__telemetry_copy_utf8(char *dst, size_t cap, const char *src)
{
    size_t o = 0;
    size_t len = src ? strlen(src) : 0;
    size_t i = 0;
    if (cap == 0)
        return 0;
    while (i < len) {
        uint32_t cp;
        size_t n = vk_utf8_decode((const unsigned char *)src + i, len - i, &cp);
        size_t w = n ? n : 1;
        if (o + w + 1 > cap)
            break;
        if (n == 0)
            dst[o] = '?';
        else
            memcpy(dst + o, src + i, n);
        o += w;
        i += w;
    }
    dst[o] = '\0';
    return o;
}

bool vk__telemetry_ctx_valid(const struct vk_trace_ctx *ctx)
{
    return ctx && !all_zero(ctx->trace_id, VK_TRACE_ID_SIZE) &&
           !all_zero(ctx->span_id, VK_SPAN_ID_SIZE);
}

void vk__telemetry_span_init(struct vk_span *s, const char *name, enum vk_span_kind kind,
                             const struct vk_trace_ctx *parent,
                             const uint8_t trace_id[VK_TRACE_ID_SIZE],
                             const uint8_t span_id[VK_SPAN_ID_SIZE])
{
    memset(s, 0, offsetof(struct vk_span, attr_bytes));
    s->kind = kind;
    vk__telemetry_copy_utf8(s->name, sizeof(s->name), name);
    if (vk__telemetry_ctx_valid(parent)) {
        memcpy(s->ctx.trace_id, parent->trace_id, VK_TRACE_ID_SIZE);
        memcpy(s->parent_span_id, parent->span_id, VK_SPAN_ID_SIZE);
        s->has_parent = true;
        s->ctx.flags = parent->flags;
    } else {
        memcpy(s->ctx.trace_id, trace_id, VK_TRACE_ID_SIZE);
        s->ctx.flags = VK_TRACE_FLAG_SAMPLED;
    }
    memcpy(s->ctx.span_id, span_id, VK_SPAN_ID_SIZE);
    s->start_ns = vk__telemetry_now_ns();
}

/* Reserve a key in the span's storage; NULL (and counted) when full. */
static struct vk_span_attr *add_attr(struct vk_span *s, const char *key)
{
    if (s->nattrs >= VK_SPAN_MAX_ATTRS || !key || !*key) {
        s->dropped_attrs++;
        return NULL;
    }
    size_t room = VK_SPAN_ATTR_BYTES - s->attr_used;
    size_t klen = strlen(key);
    if (klen >= 128 || klen + 2 > room) {
        s->dropped_attrs++;
        return NULL;
    }
    char *k = s->attr_bytes + s->attr_used;
    s->attr_used += vk__telemetry_copy_utf8(k, klen + 1, key) + 1;
    struct vk_span_attr *a = &s->attrs[s->nattrs];
    a->key = k;
    a->str = NULL;
    a->num = 0;
    return a;
}

void vk_trace_span_set_str(struct vk_span *s, const char *key, const char *value)
{
    if (!s)
        return;
    size_t used = s->attr_used;
    struct vk_span_attr *a = add_attr(s, key);
    if (!a)
        return;
    size_t room = VK_SPAN_ATTR_BYTES - s->attr_used;
    if (room < 1) {
        s->attr_used = used;
        s->dropped_attrs++;
        return;
    }
    char *v = s->attr_bytes + s->attr_used;
    s->attr_used += vk__telemetry_copy_utf8(v, room, value ? value : "") + 1;
    a->type = VK_ATTR_STRING;
    a->str = v;
    s->nattrs++;
}

void vk_trace_span_set_int(struct vk_span *s, const char *key, int64_t value)
{
    if (!s)
        return;
    struct vk_span_attr *a = add_attr(s, key);
    if (!a)
        return;
    a->type = VK_ATTR_INT;
    a->num = value;
    s->nattrs++;
}

void vk_trace_span_set_status(struct vk_span *s, enum vk_span_status status, const char *msg)
{
    if (!s)
        return;
    s->status = status;
    s->status_msg[0] = '\0';
    if (status == VK_SPAN_ERROR && msg)
        vk__telemetry_copy_utf8(s->status_msg, sizeof(s->status_msg), msg);
}

void vk_trace_span_traceparent(const struct vk_span *s, char out[VK_TRACEPARENT_LEN])
{
    if (!s) {
        out[0] = '\0';
        return;
    }
    vk_trace_parent_format(&s->ctx, out);
}
