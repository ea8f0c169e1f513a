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

#endif
