/* Unit tests for util's array growth: heap, aborting and pool variants. */
#include "vk_test.h"
#include "vulcan/util.h"

#include <stdio.h>
#include <string.h>

struct item {
    int a;
    char b[12];
};

static void test_array_grow(void **state)
{
    struct item *v = NULL;
    size_t cap = 0;
    /* Enough room: nothing happens, not even for an empty array. */
    assert_int_equal(vk_array_grow(&v, &cap, 0, 16, sizeof(*v)), 0);
    assert_null(v);
    assert_int_equal(cap, 0);
    /* From empty: `first`. */
    assert_int_equal(vk_array_grow(&v, &cap, 1, 16, sizeof(*v)), 0);
    assert_non_null(v);
    assert_int_equal(cap, 16);
    for (int i = 0; i < 16; i++)
        v[i].a = i;
    struct item *before = v;
    assert_int_equal(vk_array_grow(&v, &cap, 16, 16, sizeof(*v)), 0);
    assert_ptr_equal(v, before);
    assert_int_equal(cap, 16);
    /* One more: doubled, contents kept. */
    assert_int_equal(vk_array_grow(&v, &cap, 17, 16, sizeof(*v)), 0);
    assert_int_equal(cap, 32);
    for (int i = 0; i < 16; i++)
        assert_int_equal(v[i].a, i);
    /* Far more: doubled until it fits. */
    assert_int_equal(vk_array_grow(&v, &cap, 200, 16, sizeof(*v)), 0);
    assert_int_equal(cap, 256);
    vk_mem_free(v);

    /* From empty with need > first. */
    v = NULL;
    cap = 0;
    assert_int_equal(vk_array_grow(&v, &cap, 9, 4, sizeof(*v)), 0);
    assert_int_equal(cap, 16);
    vk_mem_free(v);
}

static void test_array_grow_errors(void **state)
{
    int *v = NULL;
    size_t cap = 0;
    assert_int_equal(vk_array_grow(&v, &cap, 4, 4, sizeof(*v)), 0);
    v[3] = 7;
    int *before = v;
    /* Out of memory: the array and its capacity stay as they were. */
    vk_mem_fail_after(1);
    assert_int_equal(vk_array_grow(&v, &cap, 5, 4, sizeof(*v)), VK_ENOMEM);
    assert_ptr_equal(v, before);
    assert_int_equal(cap, 4);
    assert_int_equal(v[3], 7);
    /* Sizes that overflow: in elements, and in bytes. */
    assert_int_equal(vk_array_grow(&v, &cap, SIZE_MAX, 4, sizeof(*v)), VK_ETOOBIG);
    assert_int_equal(vk_array_grow(&v, &cap, SIZE_MAX / 2, 4, sizeof(*v)), VK_ETOOBIG);
    assert_ptr_equal(v, before);
    assert_int_equal(cap, 4);
    vk_mem_free(v);
    char *bytes = NULL;
    size_t bcap = 0;
    assert_int_equal(vk_array_grow(&bytes, &bcap, SIZE_MAX, 1, 1), VK_ETOOBIG);
    assert_null(bytes);
    assert_int_equal(bcap, 0);
}

static void test_array_xgrow(void **state)
{
    const char **v = NULL;
    size_t cap = 0;
    vk_array_xgrow(&v, &cap, 1, 64, sizeof(*v));
    assert_int_equal(cap, 64);
    v[0] = "kept";
    /* Not subject to the allocation-failure hook, like vk_mem_xrealloc. */
    vk_mem_fail_after(1);
    vk_array_xgrow(&v, &cap, 65, 64, sizeof(*v));
    vk_mem_fail_after(0);
    assert_int_equal(cap, 128);
    assert_string_equal(v[0], "kept");
    vk_mem_free(v);
}

static void test_array_pool_grow(void **state)
{
    struct vk_pool pool;
    vk_pool_init(&pool, 256);
    struct item *v = NULL;
    size_t cap = 0, len = 0;
    for (int i = 0; i < 100; i++) {
        assert_int_equal(vk_array_pool_grow(&pool, &v, &cap, len + 1, 8, sizeof(*v)), 0);
        v[len].a = i;
        snprintf(v[len].b, sizeof(v[len].b), "n%d", i);
        len++;
    }
    assert_int_equal(cap, 128);
    for (int i = 0; i < 100; i++) {
        assert_int_equal(v[i].a, i);
        char want[12];
        snprintf(want, sizeof(want), "n%d", i);
        assert_string_equal(v[i].b, want);
    }
    /* Out of memory: unchanged. */
    struct item *before = v;
    assert_int_equal(vk_array_pool_grow(&pool, &v, &cap, 128, 8, sizeof(*v)), 0);
    vk_mem_fail_after(1);
    assert_int_equal(vk_array_pool_grow(&pool, &v, &cap, 129, 8, sizeof(*v)), VK_ENOMEM);
    vk_mem_fail_after(0);
    assert_ptr_equal(v, before);
    assert_int_equal(cap, 128);
    assert_int_equal(vk_array_pool_grow(&pool, &v, &cap, SIZE_MAX, 8, sizeof(*v)), VK_ETOOBIG);
    assert_int_equal(cap, 128);
    vk_pool_release(&pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_array_grow),
        cmocka_unit_test(test_array_grow_errors),
        cmocka_unit_test(test_array_xgrow),
        cmocka_unit_test(test_array_pool_grow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
