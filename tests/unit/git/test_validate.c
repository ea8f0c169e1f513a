/*
 * One set of validators for server and worker (issue 11): what the server refused and
 * the worker accepted before (a branch named "@" or ".x", a URL with "::" after a '/')
 * is refused by both now, because both call these.
 */
#include "vk_test.h"
#include "vulcan/git.h"

#include <string.h>

static void test_sha(void **state)
{
    (void)state;
    assert_true(vk_git_valid_sha("0123456789abcdef0123456789abcdef01234567"));
    assert_true(
        vk_git_valid_sha("0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef"));
    assert_false(vk_git_valid_sha("0123abcdef"));
    assert_false(vk_git_valid_sha("0123456789abcdef0123456789abcdef0123456g"));
    assert_false(vk_git_valid_sha(NULL));
    assert_true(vk_git_valid_short_sha("0123abcdef"));
    assert_true(vk_git_valid_short_sha("abcd"));
    assert_false(vk_git_valid_short_sha("abc"));
    assert_false(vk_git_valid_short_sha("--upload-pack=x"));
    assert_false(vk_git_valid_short_sha(""));
}

static void test_branch(void **state)
{
    (void)state;
    static const char *const good[] = {"main", "feature/x-1", "releases/v1.2", "a@b", "x.y"};
    static const char *const bad[] = {"",      "-x",   "a..b", "a b",      "x.lock", "@",
                                      ".x",    "a/.b", "a//b", "/a",       "a/",     "a.",
                                      "a@{1}", "a~1",  "a^",   "a:b",      "a?",     "a*",
                                      "a[b",   "a\\b", "a\tb", "a.lock/b", "\x7f"};
    for (size_t i = 0; i < VK_ARRAY_LEN(good); i++)
        assert_true(vk_git_valid_branch(good[i]));
    for (size_t i = 0; i < VK_ARRAY_LEN(bad); i++) {
        if (vk_git_valid_branch(bad[i]))
            fail_msg("branch '%s' accepted", bad[i]);
    }
    char longest[VK_GIT_MAX_REF + 2];
    memset(longest, 'a', sizeof(longest) - 1);
    longest[sizeof(longest) - 1] = '\0';
    assert_false(vk_git_valid_branch(longest));
    longest[VK_GIT_MAX_REF] = '\0';
    assert_true(vk_git_valid_branch(longest));
}

static void test_url(void **state)
{
    (void)state;
    assert_true(vk_git_valid_url("https://example.com/r.git"));
    assert_true(vk_git_valid_url("git@example.com:r.git"));
    assert_true(vk_git_valid_url("/srv/git/r.git"));
    assert_false(vk_git_valid_url("--upload-pack=touch /tmp/x"));
    assert_false(vk_git_valid_url("ext::sh -c touch% /tmp/x"));
    assert_false(vk_git_valid_url("ext::sh"));
    assert_false(vk_git_valid_url("https://example.com/a::b")); /* the worker took this */
    assert_false(vk_git_valid_url("https://example.com/a b"));
    assert_false(vk_git_valid_url(""));
    assert_false(vk_git_valid_url(NULL));
}

static void test_path(void **state)
{
    (void)state;
    assert_true(vk_git_valid_path(".vulcan/ci.kdl"));
    assert_true(vk_git_valid_path("a/b/c"));
    assert_false(vk_git_valid_path("/etc/passwd"));
    assert_false(vk_git_valid_path("a/../b"));
    assert_false(vk_git_valid_path("./a"));
    assert_false(vk_git_valid_path("a//b"));
    assert_false(vk_git_valid_path("a\nb"));
    assert_false(vk_git_valid_path(""));
}

static void test_redact(void **state)
{
    (void)state;
    char out[128];
    vk_git_redact_url("https://user:secret@example.com/r.git", out, sizeof(out));
    assert_string_equal(out, "https://***@example.com/r.git");
    vk_git_redact_url("https://example.com/a@b", out, sizeof(out));
    assert_string_equal(out, "https://example.com/a@b");
    vk_git_redact_url("git@example.com:r.git", out, sizeof(out));
    assert_string_equal(out, "git@example.com:r.git");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sha),  cmocka_unit_test(test_branch), cmocka_unit_test(test_url),
        cmocka_unit_test(test_path), cmocka_unit_test(test_redact),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
