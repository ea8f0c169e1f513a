/* Arena allocator: bump allocation in chunks, freed all at once. */
#include "vulcan/util.h"

#include <string.h>

struct vk_pool_chunk {
    struct vk_pool_chunk *next;
    size_t size;
    /* Payload follows at ALIGN16(sizeof(struct vk_pool_chunk)). */
};

#define ALIGN16(n) (((n) + 15u) & ~(size_t)15u)

void vk_pool_init(struct vk_pool *p, size_t chunk_size)
{
    p->chunks = NULL;
    p->cur = NULL;
    p->end = NULL;
    p->chunk_size = chunk_size ? chunk_size : 64 * 1024;
    p->total = 0;
}

void vk_pool_release(struct vk_pool *p)
{
    struct vk_pool_chunk *c = p->chunks;
    while (c) {
        struct vk_pool_chunk *next = c->next;
        vk_mem_free(c);
        c = next;
    }
    p->chunks = NULL;
    p->cur = NULL;
    p->end = NULL;
    p->total = 0;
}

void *vk_pool_alloc(struct vk_pool *p, size_t n)
{
    n = ALIGN16(n ? n : 1);
    if ((size_t)(p->end - p->cur) >= n && p->cur) {
        void *r = p->cur;
        p->cur += n;
        return r;
    }
    size_t hdr = ALIGN16(sizeof(struct vk_pool_chunk));
    if (n > p->chunk_size / 4) {
        /* Large block: its own chunk, linked behind the current one so the
         * current chunk's free space stays usable. */
        if (n > SIZE_MAX - hdr)
            return NULL;
        struct vk_pool_chunk *c = vk_mem_alloc(hdr + n);
        if (!c)
            return NULL;
        c->size = hdr + n;
        p->total += c->size;
        if (p->chunks) {
            c->next = p->chunks->next;
            p->chunks->next = c;
        } else {
            c->next = NULL;
            p->chunks = c;
        }
        return (char *)c + hdr;
    }
    struct vk_pool_chunk *c = vk_mem_alloc(hdr + p->chunk_size);
    if (!c)
        return NULL;
    c->size = hdr + p->chunk_size;
    c->next = p->chunks;
    p->chunks = c;
    p->total += c->size;
    p->cur = (char *)c + hdr;
    p->end = p->cur + p->chunk_size;
    void *r = p->cur;
    p->cur += n;
    return r;
}

void *vk_pool_zalloc(struct vk_pool *p, size_t n)
{
    void *r = vk_pool_alloc(p, n);
    if (r)
        memset(r, 0, n ? n : 1);
    return r;
}

char *vk_pool_strndup(struct vk_pool *p, const char *s, size_t n)
{
    if (n == SIZE_MAX)
        return NULL;
    char *r = vk_pool_alloc(p, n + 1);
    if (!r)
        return NULL;
    if (n)
        memcpy(r, s, n);
    r[n] = '\0';
    return r;
}
