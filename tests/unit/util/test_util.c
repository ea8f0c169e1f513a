/* Unit tests for util: buffers, pools, errors, ids, time, durations, diagnostics. */
#include "vk_test.h"
#include "vulcan/util.h"

#include <string.h>

static void test_buf_basic(void **state)
{
    struct vk_buf b = VK_BUF_INIT(16);
    assert_int_equal(vk_buf_adds(&b, "hello"), 0);
    assert_int_equal(vk_buf_addf(&b, " %d", 42), 0);
    assert_string_equal(b.data, "hello 42");
    assert_int_equal(b.len, 8);
    /* Past the cap: error, and the buffer is released. */
    assert_int_equal(vk_buf_adds(&b, "0123456789"), VK_ETOOBIG);
    assert_ptr_equal(b.data, vk_buf_empty);
    assert_int_equal(b.len, 0);
    assert_int_equal(vk_buf_adds(&b, "again"), 0);
    size_t n;
    char *s = vk_buf_take(&b, &n);
    assert_string_equal(s, "again");
    assert_int_equal(n, 5);
    assert_ptr_equal(b.data, vk_buf_empty);
    vk_mem_free(s);
    /* Exactly at the cap is fine. */
    assert_int_equal(vk_buf_adds(&b, "0123456789abcdef"), 0);
    assert_int_equal(vk_buf_addch(&b, 'x'), VK_ETOOBIG);
    vk_buf_release(&b);
}

static void test_buf_oom(void **state)
{
    struct vk_buf b = VK_BUF_INIT(1024);
    vk_mem_fail_after(1);
    assert_int_equal(vk_buf_adds(&b, "x"), VK_ENOMEM);
    assert_ptr_equal(b.data, vk_buf_empty);
    assert_string_equal(b.data, "");
    assert_int_equal(vk_buf_adds(&b, "y"), 0);
    assert_string_equal(b.data, "y");
    vk_buf_release(&b);
}

/* An empty buffer reads as "" without a NULL check, and owns no memory. */
static void assert_empty(const struct vk_buf *b)
{
    assert_ptr_equal(b->data, vk_buf_empty);
    assert_string_equal(b->data, "");
    assert_int_equal(b->len, 0);
    assert_int_equal(b->cap, 0);
}

static void test_buf_empty(void **state)
{
    struct vk_buf a = VK_BUF_INIT(64);
    assert_empty(&a);
    struct vk_buf b;
    vk_buf_init(&b, 64);
    assert_empty(&b);
    assert_int_equal(b.max, 64);
    /* Reset and release of an empty buffer write nothing into the shared string. */
    vk_buf_reset(&b);
    assert_empty(&b);
    vk_buf_release(&b);
    vk_buf_release(&b);
    assert_empty(&b);
    /* Growing from it allocates, even for no bytes. */
    assert_int_equal(vk_buf_grow(&b, 0), 0);
    assert_ptr_not_equal(b.data, vk_buf_empty);
    assert_true(b.cap > 0);
    assert_string_equal(b.data, "");
    vk_buf_release(&b);
    assert_empty(&b);
    assert_int_equal(vk_buf_add(&b, "", 0), 0);
    assert_ptr_not_equal(b.data, vk_buf_empty);
    assert_int_equal(vk_buf_adds(&b, "abc"), 0);
    vk_buf_reset(&b);
    assert_string_equal(b.data, "");
    assert_true(b.cap > 0);
    vk_buf_release(&b);
    assert_empty(&b);
    /* An all-zero buffer (data NULL) can be released and reset. */
    struct vk_buf z;
    memset(&z, 0, sizeof(z));
    vk_buf_release(&z);
    assert_empty(&z);
    memset(&z, 0, sizeof(z));
    vk_buf_reset(&z);
    assert_empty(&z);
    assert_string_equal(vk_buf_empty, "");
}

static void test_buf_take(void **state)
{
    /* From an empty buffer: a fresh heap "" the caller frees, never the shared string. */
    struct vk_buf b = VK_BUF_INIT(64);
    size_t n = 99;
    char *s = vk_buf_take(&b, &n);
    assert_ptr_not_equal(s, vk_buf_empty);
    assert_string_equal(s, "");
    assert_int_equal(n, 0);
    vk_mem_free(s);
    assert_empty(&b);
    /* Grown but holding nothing: the buffer's own memory. */
    assert_int_equal(vk_buf_grow(&b, 8), 0);
    char *mem = b.data;
    s = vk_buf_take(&b, NULL);
    assert_ptr_equal(s, mem);
    assert_string_equal(s, "");
    vk_mem_free(s);
    assert_empty(&b);
    /* With content. */
    assert_int_equal(vk_buf_addf(&b, "%s-%d", "x", 1), 0);
    s = vk_buf_take(&b, &n);
    assert_string_equal(s, "x-1");
    assert_int_equal(n, 3);
    vk_mem_free(s);
    assert_empty(&b);
}

static void test_buf_failed_append(void **state)
{
    /* Every failed append leaves the buffer empty, pointing at the shared string. */
    struct vk_buf b = VK_BUF_INIT(4);
    assert_int_equal(vk_buf_adds(&b, "abc"), 0);
    assert_int_equal(vk_buf_addf(&b, "%s", "toolong"), VK_ETOOBIG);
    assert_empty(&b);
    assert_int_equal(vk_buf_addch(&b, 'a'), 0);
    vk_mem_fail_after(1);
    assert_int_equal(vk_buf_addf(&b, "%s", "bcdefgh"), VK_ETOOBIG);
    vk_mem_fail_after(0);
    assert_empty(&b);
    vk_mem_fail_after(1);
    assert_int_equal(vk_buf_adds(&b, "ab"), VK_ENOMEM);
    assert_empty(&b);
    struct vk_err err;
    assert_int_equal(vk_buf_read_file(&b, "/nonexistent/vulcan-test", &err), VK_ENOTFOUND);
    assert_empty(&b);
    vk_buf_release(&b);
    assert_string_equal(vk_buf_empty, "");
}

static void test_pool(void **state)
{
    struct vk_pool p;
    vk_pool_init(&p, 256);
    char *a = vk_pool_strndup(&p, "abc", 3);
    assert_string_equal(a, "abc");
    assert_int_equal((uintptr_t)a % 16, 0);
    for (int i = 0; i < 100; i++) {
        char *q = vk_pool_zalloc(&p, 40);
        assert_non_null(q);
        assert_int_equal(q[39], 0);
    }
    char *big = vk_pool_alloc(&p, 10000);
    assert_non_null(big);
    memset(big, 1, 10000);
    assert_string_equal(a, "abc");
    vk_pool_release(&p);
    vk_pool_release(&p);
}

static void test_err(void **state)
{
    struct vk_err e;
    assert_int_equal(vk_err_set(&e, VK_EINVAL, "bad '%s'", "x"), VK_EINVAL);
    assert_string_equal(e.msg, "bad 'x'");
    assert_int_equal(e.line, 0);
    assert_int_equal(vk_err_setpos(&e, VK_EPARSE, 3, 7, "oops"), VK_EPARSE);
    assert_int_equal(e.line, 3);
    assert_int_equal(e.col, 7);
    assert_int_equal(vk_err_set(NULL, VK_EIO, "ignored"), VK_EIO);
    assert_string_equal(vk_err_name(VK_ENOMEM), "out of memory");
}

static void test_uuid(void **state)
{
    char a[VK_UUID_LEN], b[VK_UUID_LEN];
    assert_int_equal(vk_uuid_v4(a), 0);
    assert_int_equal(vk_uuid_v4(b), 0);
    assert_true(vk_uuid_valid(a));
    assert_string_not_equal(a, b);
    assert_int_equal(a[14], '4');
    assert_int_equal(vk_uuid_v7(a), 0);
    assert_true(vk_uuid_valid(a));
    assert_int_equal(a[14], '7');
    assert_false(vk_uuid_valid("not-a-uuid"));
    assert_false(vk_uuid_valid("0123456789abcdef0123456789abcdef0123"));
}

static void test_time(void **state)
{
    char s[VK_TIME_LEN];
    vk_time_format(1700000000123, s);
    assert_string_equal(s, "2023-11-14T22:13:20.123Z");
    int64_t ms;
    assert_int_equal(vk_time_parse(s, &ms), 0);
    assert_int_equal(ms, 1700000000123);
    assert_int_equal(vk_time_parse("2023-11-14T22:13:20Z", &ms), 0);
    assert_int_equal(ms, 1700000000000);
    assert_int_equal(vk_time_parse("2023-11-14 22:13:20", &ms), VK_EINVAL);
    assert_true(vk_time_now_ms() > 1700000000000);
}

static void test_duration(void **state)
{
    int64_t ms;
    assert_int_equal(vk_time_duration_parse("90", 2, &ms), 0);
    assert_int_equal(ms, 90000);
    assert_int_equal(vk_time_duration_parse("10m", 3, &ms), 0);
    assert_int_equal(ms, 600000);
    assert_int_equal(vk_time_duration_parse("1h30m", 5, &ms), 0);
    assert_int_equal(ms, 5400000);
    assert_int_equal(vk_time_duration_parse("250ms", 5, &ms), 0);
    assert_int_equal(ms, 250);
    assert_int_equal(vk_time_duration_parse("", 0, &ms), VK_EINVAL);
    assert_int_equal(vk_time_duration_parse("1h30", 4, &ms), VK_EINVAL);
    assert_int_equal(vk_time_duration_parse("abc", 3, &ms), VK_EINVAL);
    assert_int_equal(vk_time_duration_parse("99999999999999999999s", 21, &ms), VK_EINVAL);
}

static void test_diag(void **state)
{
    const char *src = "first\n\tsecond é line\nthird";
    struct vk_err e;
    vk_err_setpos(&e, VK_EPARSE, 2, 11, "unexpected 'l'");
    struct vk_buf out = VK_BUF_INIT(4096);
    assert_int_equal(vk_diag_render(&out, "a.kdl", src, strlen(src), &e), 0);
    assert_string_equal(out.data, "a.kdl:2:11: error: unexpected 'l'\n"
                                  "    2 |  second é line\n"
                                  "      |           ^\n");
    vk_buf_reset(&out);
    vk_err_set(&e, VK_EIO, "cannot read");
    assert_int_equal(vk_diag_render(&out, "b.kdl", NULL, 0, &e), 0);
    assert_string_equal(out.data, "b.kdl: error: cannot read\n");
    vk_buf_release(&out);
}

static void test_utf8(void **state)
{
    uint32_t cp;
    assert_int_equal(vk_utf8_decode((const unsigned char *)"\xc3\xa9", 2, &cp), 2);
    assert_int_equal(cp, 0xe9);
    assert_int_equal(vk_utf8_decode((const unsigned char *)"\xf0\x9f\x98\x80", 4, &cp), 4);
    assert_int_equal(cp, 0x1f600);
    assert_int_equal(vk_utf8_decode((const unsigned char *)"\xc0\x80", 2, &cp), 0);
    assert_int_equal(vk_utf8_decode((const unsigned char *)"\xed\xa0\x80", 3, &cp), 0);
    assert_int_equal(vk_utf8_decode((const unsigned char *)"\xe2\x82", 2, &cp), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf_basic),
        cmocka_unit_test(test_buf_oom),
        cmocka_unit_test(test_buf_empty),
        cmocka_unit_test(test_buf_take),
        cmocka_unit_test(test_buf_failed_append),
        cmocka_unit_test(test_pool),
        cmocka_unit_test(test_err),
        cmocka_unit_test(test_uuid),
        cmocka_unit_test(test_time),
        cmocka_unit_test(test_duration),
        cmocka_unit_test(test_diag),
        cmocka_unit_test(test_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
