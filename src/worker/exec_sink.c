/*
 * exec_sink.c — the attempt's output stream (cap, prefixes, notices) and the
 * small string vectors used to build argv/envp arrays.
 */
#include "exec_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* Hand bytes to the callback, through the masker when there is one. A chunk the
 * masker cannot take (out of memory) is dropped rather than passed on unmasked. */
static void deliver(struct vk__exec_sink *s, const char *data, size_t n)
{
    if (!s->cb)
        return;
    if (!s->mask) {
        s->cb(s->ctx, data, n);
        return;
    }
    if (vk_mask_write(s->mask, data, n, s->cb, s->ctx) != 0)
        s->mask_failed = true;
}

void vk__exec_sink_finish(struct vk__exec_sink *s)
{
    if (s->mask && s->cb)
        vk_mask_flush(s->mask, s->cb, s->ctx);
}

/* Deliver `len` bytes, or the part that still fits under the cap. */
void vk__exec_sink_write(struct vk__exec_sink *s, const char *data, size_t len)
{
    if (len == 0)
        return;
    uint64_t delivered = s->total - s->dropped;
    size_t n = len;
    if (delivered >= s->cap)
        n = 0;
    else if ((uint64_t)len > s->cap - delivered)
        n = (size_t)(s->cap - delivered);
    s->total += len;
    s->dropped += len - n;
    if (n > 0)
        deliver(s, data, n);
}

/* Split `data` at newlines and put `prefix` before each line start. */
void vk__exec_sink_write_prefixed(struct vk__exec_sink *s, const char *prefix, bool *bol,
                                  const char *data, size_t len)
{
    size_t plen = strlen(prefix);
    while (len > 0) {
        if (*bol) {
            vk__exec_sink_write(s, prefix, plen);
            *bol = false;
        }
        const char *nl = memchr(data, '\n', len);
        size_t n = nl ? (size_t)(nl - data) + 1 : len;
        vk__exec_sink_write(s, data, n);
        if (nl)
            *bol = true;
        data += n;
        len -= n;
    }
}

/* Notices bypass the cap so that the reader always learns why things happened. */
void vk__exec_sink_notice(struct vk__exec_sink *s, const char *fmt, ...)
{
    char line[768];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof line)
        n = (int)sizeof line - 1;
    if (n > 0)
        deliver(s, line, (size_t)n);
}

void vk__exec_strv_release(struct vk__exec_strv *sv)
{
    if (!sv)
        return;
    vk_mem_free(sv->v);
    sv->v = NULL;
    sv->n = 0;
    sv->cap = 0;
}

int vk__exec_strv_push(struct vk__exec_strv *sv, char *s)
{
    if (!s)
        return VK_ENOMEM; /* a failed pool allocation upstream */
    if (vk_array_grow(&sv->v, &sv->cap, sv->n + 2, 32, sizeof(*sv->v)) < 0)
        return VK_ENOMEM;
    sv->v[sv->n] = s;
    sv->n++;
    sv->v[sv->n] = NULL;
    return 0;
}

char *vk__exec_pool_printf(struct vk_pool *pool, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    char *p = vk_pool_alloc(pool, (size_t)n + 1);
    if (!p)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return p;
}

int vk__exec_strv_pushf(struct vk__exec_strv *sv, struct vk_pool *pool, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return VK_EINVAL;
    char *p = vk_pool_alloc(pool, (size_t)n + 1);
    if (!p)
        return VK_ENOMEM;
    va_start(ap, fmt);
    vsnprintf(p, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return vk__exec_strv_push(sv, p);
}
