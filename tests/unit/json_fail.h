/*
 * A jansson allocator for tests that fails the Nth allocation, like
 * vk_mem_fail_after() does for ours. Install it before any thread that uses
 * jansson starts (json_set_alloc_funcs is not thread-safe); arm it any time.
 */
#ifndef VULCAN_JSON_FAIL_H
#define VULCAN_JSON_FAIL_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>

static struct {
    atomic_ulong countdown; /* 0: never fail */
    atomic_ulong count;     /* allocations counted since the last arming */
    atomic_bool others_only;
    pthread_t installer; /* written once, before others_only is ever set */
} json_fail;

static void *json_fail_malloc(size_t n)
{
    if (atomic_load(&json_fail.others_only) && pthread_equal(pthread_self(), json_fail.installer))
        return malloc(n);
    atomic_fetch_add(&json_fail.count, 1);
    unsigned long c = atomic_load(&json_fail.countdown);
    while (c > 0) {
        if (atomic_compare_exchange_weak(&json_fail.countdown, &c, c - 1))
            return c == 1 ? NULL : malloc(n);
    }
    return malloc(n);
}

/* Route jansson's allocations through json_fail_malloc (on the calling thread, first). */
static inline void json_fail_install(void)
{
    json_fail.installer = pthread_self();
    json_set_alloc_funcs(json_fail_malloc, free);
}

static inline void json_fail_uninstall(void)
{
    json_set_alloc_funcs(malloc, free);
}

/*
 * Fail the `n`th jansson allocation from now (1: the next one; 0: none). With
 * `others_only`, count only allocations made by threads other than the one that
 * installed the allocator (a test's server threads, not its client). Returns the
 * number of allocations counted since the previous call.
 */
static inline unsigned long json_fail_after(unsigned long n, bool others_only)
{
    atomic_store(&json_fail.countdown, 0);
    atomic_store(&json_fail.others_only, others_only);
    unsigned long was = atomic_exchange(&json_fail.count, 0);
    atomic_store(&json_fail.countdown, n);
    return was;
}

/* True when the armed failure has happened (or none was armed). */
static inline bool json_fail_fired(void)
{
    return atomic_load(&json_fail.countdown) == 0;
}

#endif
