/* $VULCAN_OUTPUT parsing (issue 17): both forms, CRLF, a later name winning, and every
 * refusal with its line. */
#include "vk_test.h"
#include "vulcan/util.h"

#include <string.h>

static size_t parse(const char *text, struct vk_pool *pool, struct vk_output **o, int want,
                    const char *why_has)
{
    size_t n = 0;
    char why[200];
    int rc = vk_outputs_parse(text, strlen(text), pool, o, &n, why, sizeof(why));
    assert_int_equal(rc, want);
    if (why_has && !strstr(why, why_has))
        fail_msg("'%s' does not say '%s'", why, why_has);
    return n;
}

static void test_forms(void **state)
{
    (void)state;
    struct vk_pool pool;
    vk_pool_init(&pool, 0);
    struct vk_output *o = NULL;
    size_t n = parse("A=1\r\n\nB=x=y\nNOTES<<EOF\nline 1\n\nline 3\nEOF\nA=2\nE=\n_x<<Z\nZ\n",
                     &pool, &o, 0, NULL);
    assert_int_equal(n, 5);
    assert_string_equal(o[0].name, "A");
    assert_string_equal(o[0].value, "2"); /* a later A wins, in A's place */
    assert_string_equal(o[1].value, "x=y");
    assert_string_equal(o[2].name, "NOTES");
    assert_string_equal(o[2].value, "line 1\n\nline 3");
    assert_string_equal(o[3].name, "E");
    assert_string_equal(o[3].value, "");
    assert_string_equal(o[4].name, "_x");
    assert_string_equal(o[4].value, "");
    /* `=` before `<<`: a plain value that holds "<<". */
    n = parse("A=b<<c\n", &pool, &o, 0, NULL);
    assert_string_equal(o[0].value, "b<<c");
    n = parse("", &pool, &o, 0, NULL);
    assert_int_equal(n, 0);
    vk_pool_release(&pool);
}

static void test_refused(void **state)
{
    (void)state;
    struct vk_pool pool;
    vk_pool_init(&pool, 0);
    struct vk_output *o = NULL;
    parse("A=1\nno equals\n", &pool, &o, VK_EINVAL, "line 2: expected NAME=VALUE");
    parse("1A=1\n", &pool, &o, VK_EINVAL, "'1A' is not an output name");
    parse("a-b=1\n", &pool, &o, VK_EINVAL, "'a-b' is not an output name");
    parse("=1\n", &pool, &o, VK_EINVAL, "is not an output name");
    parse("N<<EOF\nx\n", &pool, &o, VK_EINVAL, "line 1: 'N<<EOF' has no closing line 'EOF'");
    parse("N<<\nx\n", &pool, &o, VK_EINVAL, "line 1: expected NAME<<DELIMITER");
    size_t n = 0;
    char why[200];
    assert_int_equal(vk_outputs_parse("A=x\0y\n", 6, &pool, &o, &n, why, sizeof(why)), VK_EINVAL);
    assert_non_null(strstr(why, "NUL"));
    /* Sizes: a value, the whole file, the count. */
    struct vk_buf b = VK_BUF_INIT(4u << 20);
    assert_int_equal(vk_buf_adds(&b, "V="), 0);
    for (unsigned i = 0; i <= VK_OUTPUTS_MAX_VALUE; i++)
        assert_int_equal(vk_buf_addch(&b, 'v'), 0);
    assert_int_equal(vk_outputs_parse(b.data, b.len, &pool, &o, &n, why, sizeof(why)), VK_ETOOBIG);
    vk_buf_reset(&b);
    for (unsigned i = 0; i <= VK_OUTPUTS_MAX_BYTES; i++)
        assert_int_equal(vk_buf_addch(&b, '\n'), 0);
    assert_int_equal(vk_outputs_parse(b.data, b.len, &pool, &o, &n, why, sizeof(why)), VK_ETOOBIG);
    vk_buf_reset(&b);
    for (int i = 0; i <= VK_OUTPUTS_MAX_COUNT; i++)
        assert_int_equal(vk_buf_addf(&b, "K%d=1\n", i), 0);
    assert_int_equal(vk_outputs_parse(b.data, b.len, &pool, &o, &n, why, sizeof(why)), VK_ETOOBIG);
    assert_non_null(strstr(why, "more than 256 outputs"));
    vk_buf_release(&b);
    assert_true(vk_output_name_ok("_A9", 3));
    assert_false(vk_output_name_ok("", 0));
    vk_pool_release(&pool);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_forms),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
