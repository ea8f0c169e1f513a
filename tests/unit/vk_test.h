/*
 * Common includes for cmocka unit tests. cmocka.h needs <setjmp.h>, <stdarg.h>,
 * <stddef.h> and <stdint.h> before it; clang-format's include sorting would
 * reorder them, so they live here, in the order cmocka needs.
 */
#ifndef VULCAN_VK_TEST_H
#define VULCAN_VK_TEST_H

/* clang-format off */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
/* clang-format on */

#include <stdlib.h>

/*
 * VK_TEST_SLOWDOWN: the factor every wall-clock upper bound of a test is multiplied by.
 * Sanitizers slow code down (ASan about 3x, TSan 5-15x) and `ctest -j` shares the cores,
 * so a bound that holds on an idle machine must not fail there. The environment
 * variable VK_TEST_SLOWDOWN (an integer >= 1) wins; else 4 under ASan, 10 under TSan,
 * 2 otherwise (parallel ctest on 2 shared cores).
 */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define VK__TEST_SAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define VK__TEST_SAN 1
#endif
#endif
#if defined(__SANITIZE_THREAD__)
#define VK__TEST_DEFAULT_SLOWDOWN 10
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define VK__TEST_DEFAULT_SLOWDOWN 10
#endif
#endif
#ifndef VK__TEST_DEFAULT_SLOWDOWN
#ifdef VK__TEST_SAN
#define VK__TEST_DEFAULT_SLOWDOWN 4
#else
#define VK__TEST_DEFAULT_SLOWDOWN 2
#endif
#endif

static inline long vk_test_slowdown(void)
{
    const char *s = getenv("VK_TEST_SLOWDOWN");
    long v = s ? strtol(s, NULL, 10) : 0;
    return v >= 1 && v <= 1000 ? v : VK__TEST_DEFAULT_SLOWDOWN;
}
#define VK_TEST_SLOWDOWN vk_test_slowdown()

#include "vk_sh.h"

/* vk_test_sh(): vk_test_sh_status() that fails the test when the command fails. */
#define vk_test_sh(...)                                                                            \
    do {                                                                                           \
        if (vk_test_sh_status(__VA_ARGS__) != 0)                                                   \
            fail_msg("a set-up command failed");                                                   \
    } while (0)

#endif
