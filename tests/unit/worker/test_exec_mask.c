/*
 * The executor's masking (spec.mask): real shells print secrets the ways scripts do, and
 * the callback sees "***" for each: each line of a PEM key (CRLF too, under a prefix),
 * the whole key JSON-escaped, a value with characters JSON and URLs escape (Python's
 * json.dumps and urllib.parse.quote, jansson-style), base64, a split across writes with
 * a sleep between. The ordinary output around them is unchanged. These are the forms the
 * job and ID tokens of tests/cli/test_masking.sh cannot show (their characters are plain).
 */
#include "test_exec_common.h"

static const char PEM[] = "-----BEGIN OPENSSH PRIVATE KEY-----\n"
                          "b3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n"
                          "QyNTUxOQAAACBkZmFrZWtleWZha2VrZXlmYWtla2V5ZmFrZWtleWZha2VrZXkAAAAJgAAA\n"
                          "-----END OPENSSH PRIVATE KEY-----";
static const char ODD[] = "p@ss \"w/rd\"\\ caf\xc3\xa9:S3cr3t!";

static void test_mask_forms(void **state)
{
    (void)state;
    if (access("/usr/bin/python3", X_OK) != 0)
        skip();
    struct vk_mask *m = vk_mask_new();
    assert_int_equal(vk_mask_add(m, PEM, strlen(PEM)), 0);
    assert_int_equal(vk_mask_add(m, ODD, strlen(ODD)), 0);
    char pem_env[sizeof PEM + 16], odd_env[sizeof ODD + 16];
    snprintf(pem_env, sizeof pem_env, "KEY=%s", PEM);
    snprintf(odd_env, sizeof odd_env, "ODD=%s", ODD);
    const char *env[] = {pem_env, odd_env};
    struct vk_exec_spec s = base_spec(
        "maskforms",
        "echo start\n"
        "printf '%s\\n' \"$KEY\"\n"
        "printf '%s\\n' \"$KEY\" | sed 's/^/> /'\n"
        "printf '%s\\n' \"$KEY\" | sed 's/$/\\r/' | sed -n 2p\n"
        "python3 -c 'import json,os; print(json.dumps({\"k\": os.environ[\"KEY\"]}))'\n"
        "python3 -c 'import json,os; print(json.dumps(os.environ[\"ODD\"]))'\n"
        "python3 -c 'import json,os; print(json.dumps(os.environ[\"ODD\"], ensure_ascii=False))'\n"
        "python3 -c 'import os,urllib.parse; print(urllib.parse.quote(os.environ[\"ODD\"]))'\n"
        "printf %s \"$ODD\" | base64 -w0; echo\n"
        "printf 'x=%s' \"${ODD%%S3cr3t!}\"; sleep 0.3; printf 'S3cr3t!=y\\n'\n"
        "echo end\n");
    s.env = env;
    s.nenv = 2;
    s.mask = m;
    struct collected c;
    struct vk_exec_result r;
    assert_int_equal(run(&s, &c, &r), 0);
    assert_int_equal(r.exit_code, 0);
    /* base64 of ODD (26 bytes): its last character mixes value bits with padding bits
     * and is left, as is the '=' (4 bits of the value, not a secret). */
    const char *want = "start\n"
                       "***\n"
                       "> ***\n> ***\n> ***\n> ***\n"
                       "***\r\n"
                       "{\"k\": \"***\"}\n"
                       "\"***\"\n"
                       "\"***\"\n"
                       "***\n"
                       "***E=\n"
                       "x=***=y\n"
                       "end\n";
    assert_string_equal(outs(&c), want);
    assert_null(strstr(outs(&c), "S3cr3t"));
    assert_null(strstr(outs(&c), "b3BlbnNz"));
    assert_true(c.calls >= 2); /* the split really came in two pieces */
    vk_buf_release(&c.b);
    vk_mask_free(m);
}

/* Without a masker the bytes pass unchanged (the cost is one pointer test). */
static void test_no_mask(void **state)
{
    (void)state;
    struct vk_exec_spec s = base_spec("nomask", "echo 'hunter2-SECRET'\n");
    struct collected c;
    struct vk_exec_result r;
    assert_int_equal(run(&s, &c, &r), 0);
    assert_string_equal(outs(&c), "hunter2-SECRET\n");
    vk_buf_release(&c.b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mask_forms),
        cmocka_unit_test(test_no_mask),
    };
    return cmocka_run_group_tests(tests, env_setup, env_teardown);
}
