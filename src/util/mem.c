/* Allocation wrappers with a test hook that fails the Nth fallible allocation. */
#include "vulcan/util.h"

#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Process-wide test hook; see vk_mem_fail_after(). */
static struct {
    atomic_ulong countdown; /* 0 = never fail */
    atomic_ulong count;
} alloc_hook;

static bool should_fail(void)
{
    atomic_fetch_add(&alloc_hook.count, 1);
    unsigned long c = atomic_load(&alloc_hook.countdown);
    if (c == 0)
        return false;
    if (c == 1) {
        atomic_store(&alloc_hook.countdown, 0);
        return true;
    }
    atomic_store(&alloc_hook.countdown, c - 1);
    return false;
}

unsigned long vk_mem_fail_after(unsigned long n)
{
    atomic_store(&alloc_hook.countdown, n);
    return atomic_exchange(&alloc_hook.count, 0);
}

void *vk_mem_alloc(size_t n)
{
    if (should_fail())
        return NULL;
    return malloc(n ? n : 1);
}

void *vk_mem_calloc(size_t nmemb, size_t size)
{
    if (should_fail())
        return NULL;
    return calloc(nmemb ? nmemb : 1, size ? size : 1);
}

void *vk_mem_realloc(void *p, size_t n)
{
    if (should_fail())
        return NULL;
    return realloc(p, n ? n : 1);
}

void vk_mem_free(void *p)
{
    free(p);
}

VK_NORETURN static void oom(void)
{
    fputs("vulcan: out of memory\n", stderr);
    abort();
}

void *vk_mem_xalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom();
    return p;
}

void *vk_mem_xcalloc(size_t nmemb, size_t size)
{
    void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);
    if (!p)
        oom();
    return p;
}

void *vk_mem_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom();
    return q;
}

char *vk_mem_xstrdup(const char *s)
{
    return vk_mem_xstrndup(s, strlen(s));
}

char *vk_mem_xstrndup(const char *s, size_t n)
{
    char *p = vk_mem_xalloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}
