/*
 * Growth of caller-held arrays (a `T *` and a `size_t` capacity) by doubling,
 * on the heap or in a pool. The pointer is passed by address as `void *` and
 * read and written with memcpy, so callers need no casts.
 */
#include "vulcan/util.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *load(const void *itemsp)
{
    void *p;
    memcpy(&p, itemsp, sizeof(p));
    return p;
}

static void store(void *itemsp, void *p)
{
    memcpy(itemsp, &p, sizeof(p));
}

/* Whether and how far to grow: 0 when `need` fits in `cap`; else 1 with the capacity for
 * `need` elements in *out (`first` doubled from empty, or `cap` doubled, until they fit),
 * or VK_ETOOBIG when that would not fit in a size_t. */
static int plan(size_t cap, size_t need, size_t first, size_t elem_size, size_t *out)
{
    VK_ASSERT(first > 0 && elem_size > 0);
    if (need <= cap)
        return 0;
    size_t n = cap ? cap : first;
    while (n < need) {
        if (n > SIZE_MAX / 2)
            return VK_ETOOBIG;
        n *= 2;
    }
    if (n > SIZE_MAX / elem_size)
        return VK_ETOOBIG;
    *out = n;
    return 1;
}

int vk_array_grow(void *itemsp, size_t *cap, size_t need, size_t first, size_t elem_size)
{
    size_t n;
    int rc = plan(*cap, need, first, elem_size, &n);
    if (rc <= 0)
        return rc;
    void *p = vk_mem_realloc(load(itemsp), n * elem_size);
    if (!p)
        return VK_ENOMEM;
    store(itemsp, p);
    *cap = n;
    return 0;
}

void vk_array_xgrow(void *itemsp, size_t *cap, size_t need, size_t first, size_t elem_size)
{
    size_t n;
    int rc = plan(*cap, need, first, elem_size, &n);
    if (rc == 0)
        return;
    if (rc < 0) {
        fputs("vulcan: array too large\n", stderr);
        abort();
    }
    store(itemsp, vk_mem_xrealloc(load(itemsp), n * elem_size));
    *cap = n;
}

int vk_array_pool_grow(struct vk_pool *pool, void *itemsp, size_t *cap, size_t need, size_t first,
                       size_t elem_size)
{
    size_t n;
    int rc = plan(*cap, need, first, elem_size, &n);
    if (rc <= 0)
        return rc;
    void *p = vk_pool_alloc(pool, n * elem_size);
    if (!p)
        return VK_ENOMEM;
    if (*cap)
        memcpy(p, load(itemsp), *cap * elem_size);
    store(itemsp, p);
    *cap = n;
    return 0;
}
