/* Structured log records: format, escaping, levels. */
#include "vk_test.h"
#include "vulcan/telemetry.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* Capture what one call writes by pointing the log at a pipe. */
static void capture(char *out, size_t cap, enum vk_log_level min, enum vk_log_format fmt,
                    enum vk_log_level level, const char *msg, const char *k, const char *v)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    vk_log_configure(min, fmt, p[1]);
    vk_log_write(level, "test", msg, k, v, NULL);
    close(p[1]);
    ssize_t n = read(p[0], out, cap - 1);
    close(p[0]);
    out[n < 0 ? 0 : n] = '\0';
    vk_log_configure(VK_LOG_INFO, VK_LOG_JSON, 2);
}

static void test_json_record(void **state)
{
    char line[4096];
    capture(line, sizeof(line), VK_LOG_DEBUG, VK_LOG_JSON, VK_LOG_WARN, "say \"hi\"\n", "chain_id",
            "c1\x01");
    json_error_t e;
    json_t *o = json_loads(line, 0, &e);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "level")), "warn");
    assert_string_equal(json_string_value(json_object_get(o, "component")), "test");
    assert_string_equal(json_string_value(json_object_get(o, "msg")), "say \"hi\"\n");
    assert_string_equal(json_string_value(json_object_get(o, "chain_id")), "c1\x01");
    assert_non_null(json_object_get(o, "time"));
    assert_int_equal(line[strlen(line) - 1], '\n');
    json_decref(o);
}

/* Every record is valid JSON: control characters are escaped, and bytes that are not
 * UTF-8 become '?' (jansson would refuse them). */
static void test_json_escapes(void **state)
{
    char line[4096];
    capture(line, sizeof(line), VK_LOG_DEBUG, VK_LOG_JSON, VK_LOG_INFO, "tab\tdel\x7f\\/", "bad",
            "a\xff\xfe"
            "b \xc3\xa9");
    json_error_t e;
    json_t *o = json_loads(line, 0, &e);
    assert_non_null(o);
    assert_string_equal(json_string_value(json_object_get(o, "msg")), "tab\tdel\x7f\\/");
    assert_string_equal(json_string_value(json_object_get(o, "bad")), "a??b \xc3\xa9");
    json_decref(o);
    /* A quoted logfmt value uses the same escapes. */
    capture(line, sizeof(line), VK_LOG_DEBUG, VK_LOG_TEXT, VK_LOG_INFO, "m", "k", "a \"b\"\n\x01");
    assert_non_null(strstr(line, " k=\"a \\\"b\\\"\\n\\u0001\"\n"));
}

static void test_text_record(void **state)
{
    char line[4096];
    capture(line, sizeof(line), VK_LOG_DEBUG, VK_LOG_TEXT, VK_LOG_INFO, "started", "listen",
            "127.0.0.1:8080");
    assert_non_null(strstr(line, " level=info component=test msg=started listen=127.0.0.1:8080\n"));
    capture(line, sizeof(line), VK_LOG_DEBUG, VK_LOG_TEXT, VK_LOG_INFO, "two words", "k", "");
    assert_non_null(strstr(line, "msg=\"two words\" k=\"\"\n"));
}

static void test_levels(void **state)
{
    char line[4096];
    capture(line, sizeof(line), VK_LOG_WARN, VK_LOG_JSON, VK_LOG_INFO, "dropped", NULL, NULL);
    assert_string_equal(line, "");
    enum vk_log_level l;
    assert_int_equal(vk_log_level_parse("WARNING", &l), 0);
    assert_int_equal(l, VK_LOG_WARN);
    assert_int_equal(vk_log_level_parse("verbose", &l), VK_EINVAL);
    enum vk_log_format f;
    assert_int_equal(vk_log_format_parse("text", &f), 0);
    assert_int_equal(f, VK_LOG_TEXT);
    assert_int_equal(vk_log_format_parse("xml", &f), VK_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_record),
        cmocka_unit_test(test_json_escapes),
        cmocka_unit_test(test_text_record),
        cmocka_unit_test(test_levels),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
