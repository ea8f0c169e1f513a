/* The condition language and the glob matcher. */
#include "vk_test.h"
#include "vulcan/workflow.h"

#include <stdio.h>
#include <string.h>

static const struct vk_cond_var vars[] = {
    {"TRIGGER", "push"}, {"BRANCH", "main"},     {"TAG", "v1.2.3"},
    {"EMPTY", ""},       {"PATH_", "src/a/b.c"}, {"Q", "it's \"q\""},
};

static int eval_str(const char *src, bool *res)
{
    struct vk_pool pool;
    struct vk_cond *c = NULL;
    struct vk_err err;
    struct vk_cond_vars v = {vars, VK_ARRAY_LEN(vars)};
    vk_pool_init(&pool, 0);
    vk_err_clear(&err);
    int rc = vk_cond_parse(src, strlen(src), &pool, &c, &err);
    if (rc == 0)
        rc = vk_cond_eval(c, vk_cond_lookup_kv, &v, res);
    vk_pool_release(&pool);
    return rc;
}

static bool T(const char *src)
{
    bool r = false;
    int rc = eval_str(src, &r);
    if (rc != 0)
        fail_msg("condition '%s' did not parse (%d)", src, rc);
    return r;
}

/* Parse error: returns the column, copies the message. */
static uint32_t E(const char *src, char *msg, size_t msglen)
{
    struct vk_pool pool;
    struct vk_cond *c = NULL;
    struct vk_err err;
    vk_pool_init(&pool, 0);
    vk_err_clear(&err);
    int rc = vk_cond_parse(src, strlen(src), &pool, &c, &err);
    vk_pool_release(&pool);
    if (rc == 0)
        fail_msg("condition '%s' parsed but should not", src);
    assert_int_equal(rc, VK_EPARSE);
    assert_int_equal(err.line, 1);
    if (msg)
        snprintf(msg, msglen, "%s", err.msg);
    return err.col;
}

static void test_comparisons(void **state)
{
    (void)state;
    assert_true(T("$TRIGGER == 'push'"));
    assert_false(T("$TRIGGER == \"pull_request\""));
    assert_true(T("$TRIGGER != 'tag'"));
    assert_true(T("'main' == $BRANCH"));
    assert_true(T("${BRANCH} == 'main'"));
    assert_true(T("$TAG =~ 'v*'"));
    assert_false(T("$TAG =~ 'v2*'"));
    assert_true(T("$PATH_ =~ 'src/**'"));
    assert_false(T("$PATH_ =~ 'src/*'"));
    assert_true(T("$PATH_ =~ 'src/*/b.?'"));
}

static void test_precedence(void **state)
{
    (void)state;
    /* && binds tighter than ||: true || (false && false) */
    assert_true(T("$BRANCH == 'main' || $BRANCH == 'x' && $TRIGGER == 'y'"));
    /* (true || false) && false with parentheses */
    assert_false(T("($BRANCH == 'main' || $BRANCH == 'x') && $TRIGGER == 'y'"));
    /* false && x || true == (false && x) || true */
    assert_true(T("$BRANCH == 'x' && $TRIGGER == 'push' || $TAG == 'v1.2.3'"));
    /* ! binds to its operand, not the whole && */
    assert_true(T("!($BRANCH == 'x') && $TRIGGER == 'push'"));
    assert_false(T("!($BRANCH == 'main' && $TRIGGER == 'push')"));
    assert_true(T("!!($BRANCH == 'main')"));
    assert_true(T("!$EMPTY"));
    assert_false(T("!$BRANCH"));
    assert_true(T("$BRANCH"));
    assert_false(T("$EMPTY || $UNSET"));
}

static void test_quoting(void **state)
{
    (void)state;
    assert_true(T("$Q == 'it\\'s \"q\"'"));
    assert_true(T("$Q == \"it's \\\"q\\\"\""));
    assert_true(T("'a\\\\b' == \"a\\\\b\""));
    assert_true(T("'' == \"\""));
    assert_true(T("'&& || ! ( )' != ''"));
}

static void test_unset(void **state)
{
    (void)state;
    assert_true(T("$NOPE == ''"));
    assert_false(T("$NOPE != ''"));
    assert_true(T("$NOPE =~ '*'"));
    assert_false(T("$NOPE =~ '?*'"));
    /* without a lookup at all every variable is unset */
    struct vk_pool pool;
    struct vk_cond *c = NULL;
    bool r = false;
    vk_pool_init(&pool, 0);
    assert_int_equal(vk_cond_parse("$A == ''", 8, &pool, &c, NULL), 0);
    assert_int_equal(vk_cond_eval(c, NULL, NULL, &r), 0);
    assert_true(r);
    vk_pool_release(&pool);
}

static void test_errors(void **state)
{
    (void)state;
    char m[256];
    assert_int_equal(E("", m, sizeof(m)), 1);
    assert_string_equal(m, "empty condition");
    assert_int_equal(E("$A == ", m, sizeof(m)), 7);
    assert_string_equal(m, "expected a value ($VAR, 'text', '!' or '('), found the end of the "
                           "condition");
    assert_int_equal(E("$A == 'x' &&", m, sizeof(m)), 13);
    assert_int_equal(E("$A = 'x'", m, sizeof(m)), 4);
    assert_string_equal(m, "unexpected '='; expected '==' or '=~'");
    assert_int_equal(E("$A == 'x", m, sizeof(m)), 7);
    assert_string_equal(m, "unterminated string: missing closing '");
    assert_int_equal(E("($A == 'x'", m, sizeof(m)), 11);
    assert_string_equal(m, "expected ')' to close the '(' at column 1, found the end of the "
                           "condition");
    assert_int_equal(E("!$A == 'x'", m, sizeof(m)), 5);
    assert_string_equal(m, "'==' compares text, but its left side is a boolean; add "
                           "parentheses, e.g. !($A == 'x')");
    assert_int_equal(E("$A == $B == $C", m, sizeof(m)), 10);
    assert_string_equal(m, "comparisons cannot be chained; use '&&' or parentheses");
    assert_int_equal(E("$A & $B", m, sizeof(m)), 4);
    assert_int_equal(E("$ == 'x'", m, sizeof(m)), 1);
    assert_string_equal(m, "expected a variable name after '$'");
    assert_int_equal(E("BRANCH == 'x'", m, sizeof(m)), 1);
    /* issue 12 item 11: a function call says what to write instead */
    assert_int_equal(E("$A == 'x' && success()", m, sizeof(m)), 14);
    assert_string_equal(m,
                        "'success()': conditions have no functions; a fragment runs only when "
                        "everything before it succeeded, and there is no way to run one after a "
                        "failure or a cancel; compare variables instead, e.g. $BRANCH == 'main'");
    assert_int_equal(E("failure ()", m, sizeof(m)), 1);
    assert_string_equal(m,
                        "'failure()': conditions have no functions; a fragment runs only when "
                        "everything before it succeeded, and there is no way to run one after a "
                        "failure or a cancel; compare variables instead, e.g. $BRANCH == 'main'");
    assert_int_equal(E("$A == 'x' $B", m, sizeof(m)), 11);
    assert_string_equal(m, "found a variable after a complete condition; expected '&&' "
                           "or '||'");
    assert_int_equal(E("'é' == #", m, sizeof(m)), 8); /* columns count code points */
    assert_int_equal(E("$A == 'x\\n'", m, sizeof(m)), 9);
    /* nesting is bounded */
    char deep[300];
    memset(deep, '(', 200);
    strcpy(deep + 200, "$A");
    assert_int_equal(E(deep, m, sizeof(m)), 65);
    memset(deep, '!', 200);
    assert_true(E(deep, m, sizeof(m)) > 0);
}

static void test_glob(void **state)
{
    (void)state;
    static const struct {
        const char *pat, *s;
        bool m;
    } rows[] = {
        {"main", "main", true},
        {"main", "mainx", false},
        {"*", "feature", true},
        {"*", "feature/x", false},
        {"**", "feature/x/y", true},
        {"feature/*", "feature/x", true},
        {"feature/*", "feature/x/y", false},
        {"feature/**", "feature/x/y", true},
        {"releases/**", "releases/1.0", true},
        {"src/**/*.c", "src/a.c", true},
        {"src/**/*.c", "src/x/y/a.c", true},
        {"src/**/*.c", "src/x/y/a.h", false},
        {"**/*.md", "README.md", true},
        {"**/*.md", "docs/a/b.md", true},
        {"v?.*", "v1.2", true},
        {"v?.*", "v10.2", false},
        {"a?c", "a/c", false},
        {"*.kdl", ".vulcan/ci.kdl", false},
        {"\\*", "*", true},
        {"\\*", "a", false},
        {"", "", true},
        {"", "a", false},
        {"a*a*a*a*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false},
        {"?", "\xc3\xa9", true},
        {"**b", "a/b", true},
        {"a**/b", "ab", false},
    };
    for (size_t i = 0; i < VK_ARRAY_LEN(rows); i++) {
        if (vk_glob_match(rows[i].pat, rows[i].s) != rows[i].m)
            fail_msg("glob '%s' on '%s': expected %d", rows[i].pat, rows[i].s, rows[i].m);
    }
}

static void test_alloc_failure(void **state)
{
    (void)state;
    const char *src = "($A == 'x' || $B =~ 'y*') && !$C";
    for (unsigned long n = 1; n < 50; n++) {
        struct vk_pool pool;
        struct vk_cond *c = NULL;
        vk_pool_init(&pool, 256);
        vk_mem_fail_after(n);
        int rc = vk_cond_parse(src, strlen(src), &pool, &c, NULL);
        vk_mem_fail_after(0);
        vk_pool_release(&pool);
        assert_true(rc == 0 || rc == VK_ENOMEM);
        if (rc == 0)
            break;
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_comparisons),   cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_quoting),       cmocka_unit_test(test_unset),
        cmocka_unit_test(test_errors),        cmocka_unit_test(test_glob),
        cmocka_unit_test(test_alloc_failure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
