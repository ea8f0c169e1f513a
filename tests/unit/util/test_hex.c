/* Unit tests for util's hex text (encoding, digit values, checks, decoding) and SHA-256. */
#include "vk_test.h"
#include "vulcan/util.h"

#include <string.h>

static void test_hex_encode(void **state)
{
    const unsigned char b[] = {0x00, 0x01, 0x7f, 0x80, 0xab, 0xff};
    char out[2 * sizeof(b) + 1];
    memset(out, 'x', sizeof(out));
    vk_hex_encode(b, sizeof(b), out);
    assert_string_equal(out, "00017f80abff");
    vk_hex_encode(b, 0, out);
    assert_string_equal(out, "");
}

static void test_hex_value(void **state)
{
    const char *all = "0123456789abcdefABCDEF";
    const int want[] = {0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  10,
                        11, 12, 13, 14, 15, 10, 11, 12, 13, 14, 15};
    for (size_t i = 0; all[i]; i++)
        assert_int_equal(vk_hex_value(all[i]), want[i]);
    for (int c = -128; c < 256; c++) {
        if (!strchr(all, c) || c == 0)
            assert_int_equal(vk_hex_value(c), -1);
    }
    /* A negative char (a byte >= 0x80 where char is signed) is not a digit. */
    assert_int_equal(vk_hex_value((char)0xe4), -1);
}

static void test_hex_is(void **state)
{
    assert_true(vk_hex_is("", 0));
    assert_true(vk_hex_is("09afAF", 6));
    assert_true(vk_hex_is("09afAFzz", 6)); /* only the first n count */
    assert_false(vk_hex_is("09afg", 5));
    assert_false(vk_hex_is("0 1", 3));
    assert_false(vk_hex_is("\xe4", 1));
}

static void test_hex_decode(void **state)
{
    unsigned char out[4];
    assert_int_equal(vk_hex_decode("00ff7Fa0", 8, out, VK_HEX_ANY_CASE), 0);
    assert_memory_equal(out, "\x00\xff\x7f\xa0", 4);
    assert_int_equal(vk_hex_decode("00ff7fa0", 8, out, VK_HEX_LOWER), 0);
    assert_memory_equal(out, "\x00\xff\x7f\xa0", 4);
    /* Not NUL-terminated: only `len` characters are read. */
    assert_int_equal(vk_hex_decode("abZZ", 2, out, VK_HEX_LOWER), 0);
    assert_int_equal(out[0], 0xab);
    assert_int_equal(vk_hex_decode("", 0, out, VK_HEX_ANY_CASE), 0);
    /* Odd length, a bad digit, uppercase where only lowercase is allowed. */
    assert_int_equal(vk_hex_decode("abc", 3, out, VK_HEX_ANY_CASE), VK_EINVAL);
    assert_int_equal(vk_hex_decode("0g", 2, out, VK_HEX_ANY_CASE), VK_EINVAL);
    assert_int_equal(vk_hex_decode("g0", 2, out, VK_HEX_ANY_CASE), VK_EINVAL);
    assert_int_equal(vk_hex_decode("-1", 2, out, VK_HEX_ANY_CASE), VK_EINVAL);
    assert_int_equal(vk_hex_decode("aB", 2, out, VK_HEX_LOWER), VK_EINVAL);
    assert_int_equal(vk_hex_decode("Ab", 2, out, VK_HEX_ANY_CASE), 0);
    assert_int_equal(out[0], 0xab);
}

static void test_hex_round_trip(void **state)
{
    unsigned char b[256], back[256];
    char text[513];
    for (size_t i = 0; i < sizeof(b); i++)
        b[i] = (unsigned char)i;
    vk_hex_encode(b, sizeof(b), text);
    assert_int_equal(strlen(text), 512);
    assert_true(vk_hex_is(text, 512));
    assert_int_equal(vk_hex_decode(text, 512, back, VK_HEX_LOWER), 0);
    assert_memory_equal(b, back, sizeof(b));
}

/* The FIPS 180-2 examples, and the empty input with a NULL pointer. */
static void test_sha256_hex(void **state)
{
    char h[VK_SHA256_HEX_LEN];
    assert_int_equal(vk_sha256_hex("abc", 3, h), 0);
    assert_string_equal(h, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_int_equal(vk_sha256_hex("", 0, h), 0);
    assert_string_equal(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert_int_equal(vk_sha256_hex(NULL, 0, h), 0);
    assert_string_equal(h, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    const char *m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    assert_int_equal(vk_sha256_hex(m, strlen(m), h), 0);
    assert_string_equal(h, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hex_encode),     cmocka_unit_test(test_hex_value),
        cmocka_unit_test(test_hex_is),         cmocka_unit_test(test_hex_decode),
        cmocka_unit_test(test_hex_round_trip), cmocka_unit_test(test_sha256_hex),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
