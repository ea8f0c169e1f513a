/*
 * `vulcan run FILE`: a workflow run locally from start to end by a real process
 * (its own in-memory store, server and workers): live output prefixed with the
 * fragments' names, a summary table, and the chain's status as exit status.
 */
#include "harness.h"

#include <stdio.h>
#include <string.h>

static void expect_in(const char *out, const char *text)
{
    if (!strstr(out, text)) {
        printf("---- output ----\n%s---- end ----\n", out);
        fail_msg("the output does not contain '%s'", text);
    }
}

static void expect_not_in(const char *out, const char *text)
{
    if (strstr(out, text)) {
        printf("---- output ----\n%s---- end ----\n", out);
        fail_msg("the output contains '%s'", text);
    }
}

/* The summary row of fragment `name` shows `status`. */
static void expect_row(const char *out, const char *name, const char *status)
{
    const char *table = strstr(out, "\nFRAGMENT ");
    if (!table) {
        printf("---- output ----\n%s---- end ----\n", out);
        fail_msg("no summary table");
    }
    char line[256];
    for (const char *p = table + 1; *p;) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        snprintf(line, sizeof(line), "%.*s", (int)n, p);
        char first[128], second[64];
        if (sscanf(line, "%127s %63s", first, second) == 2 && strcmp(first, name) == 0) {
            if (strcmp(second, status) != 0)
                fail_msg("summary row of '%s' says '%s', not '%s': %s", name, second, status, line);
            return;
        }
        p += n + (nl ? 1 : 0);
    }
    printf("---- output ----\n%s---- end ----\n", out);
    fail_msg("no summary row for '%s'", name);
}

static void test_run_success(void **state)
{
    struct vkt *t = *state;
    const char *wf = vkt_write(t, "ok.kdl",
                               "version \"0.1\"\ntriggers \"push\"\nchain {\n"
                               "  machine \"default\"\n"
                               "  env { GREETING \"hi there\" }\n"
                               "  fragment { name \"hello\"; run \"echo $GREETING from "
                               "$VULCAN_MACHINE on $BRANCH\" }\n"
                               "  parallel {\n"
                               "    fragment { name \"left\"; run \"echo left side\" }\n"
                               "    fragment { name \"right\"; run \"echo right side\" }\n"
                               "  }\n"
                               "  fragment { name \"multi\"; run \"echo line1; echo line2\" }\n"
                               "  fragment { name \"skipme\"; condition \"$BRANCH == 'nope'\"; run "
                               "\"echo should-not-run\" }\n"
                               "}\n");
    char path[700];
    snprintf(path, sizeof(path), "%s", wf);
    const char *args[] = {"run", path, "--sandbox", "none", "--branch", "main", NULL};
    char *out = NULL;
    int code = vkt_run_vulcan(t, args, 60000 * vkt_slow(), &out);
    if (code != 0)
        printf("%s", out);
    assert_int_equal(code, 0);
    expect_in(out, "[hello] hi there from default on main\n");
    expect_in(out, "[left] left side\n");
    expect_in(out, "[right] right side\n");
    expect_in(out, "[multi] line1\n[multi] line2\n");
    expect_not_in(out, "should-not-run");
    expect_row(out, "hello", "completed");
    expect_row(out, "left", "completed");
    expect_row(out, "right", "completed");
    expect_row(out, "multi", "completed");
    expect_row(out, "skipme", "skipped");
    expect_in(out, ": completed in ");
    free(out);
}

static void test_run_failure(void **state)
{
    struct vkt *t = *state;
    const char *wf = vkt_write(t, "fail.kdl",
                               "version \"0.1\"\ntriggers \"push\"\nchain {\n"
                               "  machine \"default\"\n"
                               "  fragment { name \"first\"; run \"echo fine\" }\n"
                               "  fragment { name \"boom\"; run \"echo about to fail; exit 4\" }\n"
                               "  fragment { name \"never\"; run \"echo should-not-run\" }\n"
                               "}\n");
    char path[700];
    snprintf(path, sizeof(path), "%s", wf);
    const char *args[] = {"run", path, "--sandbox", "none", NULL};
    char *out = NULL;
    int code = vkt_run_vulcan(t, args, 60000 * vkt_slow(), &out);
    if (code != 1)
        printf("%s", out);
    assert_int_equal(code, 1);
    expect_in(out, "[first] fine\n");
    expect_in(out, "[boom] about to fail\n");
    expect_in(out, "[boom] FAILED (exit 4)");
    expect_not_in(out, "should-not-run");
    expect_row(out, "first", "completed");
    expect_row(out, "boom", "failed");
    expect_row(out, "never", "skipped");
    expect_in(out, ": failed in ");
    free(out);

    /* A workflow that does not load: a diagnostic with its position, exit 1. */
    wf = vkt_write(t, "bad.kdl",
                   "version \"0.1\"\ntriggers \"push\"\nchain {\n  machine \"default\"\n"
                   "  fragment { name \"x\"; runn \"true\" }\n}\n");
    snprintf(path, sizeof(path), "%s", wf);
    const char *bad[] = {"run", path, "--sandbox", "none", NULL};
    code = vkt_run_vulcan(t, bad, 30000 * vkt_slow(), &out);
    assert_int_equal(code, 1);
    expect_in(out, "bad.kdl:5:");
    expect_in(out, "runn");
    free(out);
}

/* The example users are told to try first, with the default (sandboxed when possible) run. */
static void test_run_example_hello(void **state)
{
    struct vkt *t = *state;
    const char *src = getenv("VK_SOURCE_DIR");
    assert_non_null(src);
    char path[700];
    snprintf(path, sizeof(path), "%s/examples/hello.kdl", src);
    const char *args[] = {"run", path, "--branch", "main", NULL};
    char *out = NULL;
    int code = vkt_run_vulcan(t, args, 60000 * vkt_slow(), &out);
    if (code != 0)
        printf("%s", out);
    assert_int_equal(code, 0);
    expect_in(out, "[prepare] hello from Vulcan CI\n");
    expect_in(out, "[prepare] branch=main trigger=manual attempt=1\n");
    expect_in(out, "[unit-tests] test 3 passed\n");
    expect_in(out, "[lint] lint: 0 warnings\n");
    expect_in(out, "[deploy] deploying (only on main)\n");
    expect_row(out, "deploy", "completed");
    free(out);

    /* On another branch the deploy condition is false. */
    const char *other[] = {"run", path, "--branch", "feature/x", NULL};
    code = vkt_run_vulcan(t, other, 60000 * vkt_slow(), &out);
    assert_int_equal(code, 0);
    expect_not_in(out, "deploying");
    expect_row(out, "deploy", "skipped");
    free(out);
}

/* Read "start|end NAME NANOS" lines written by the scripts. */
static long long stamp(const char *log, const char *what, const char *name)
{
    char key[64];
    snprintf(key, sizeof(key), "%s %s ", what, name);
    const char *p = strstr(log, key);
    if (!p) {
        printf("%s", log);
        fail_msg("no '%s' stamp", key);
    }
    return atoll(p + strlen(key));
}

/* A sequential group (an import) inside a parallel group: its fragments run one after
 * the other while their parallel sibling runs alongside. The server API refuses
 * imports, so this runs through `vulcan run`; the times come from the scripts. */
static void test_run_sequence_in_parallel(void **state)
{
    struct vkt *t = *state;
    char stamps[700];
    snprintf(stamps, sizeof(stamps), "%s/stamps.txt", t->tmp);
    char step[2048], doc[8192];
    const char *fmt = "echo start %s $(date +%%s%%N) >> %s; sleep %s; echo end %s $(date "
                      "+%%s%%N) >> %s";
    char a[2048], b[2048];
    snprintf(a, sizeof(a), fmt, "a", stamps, "0.4", "a", stamps);
    snprintf(b, sizeof(b), fmt, "b", stamps, "0.4", "b", stamps);
    snprintf(doc, sizeof(doc),
             "fragment { name \"a\"; run \"%s\" }\nfragment { name \"b\"; run \"%s\" }\n", a, b);
    vkt_write(t, "seq.kdl", doc);
    snprintf(step, sizeof(step), fmt, "solo", stamps, "1", "solo", stamps);
    snprintf(doc, sizeof(doc),
             "version \"0.1\"\ntriggers \"push\"\nchain {\n  machine \"default\"\n"
             "  parallel {\n"
             "    fragment { name \"solo\"; run \"%s\" }\n"
             "    fragment { name \"seq\"; from \"seq.kdl\" }\n"
             "  }\n"
             "  fragment { name \"after\"; run \"echo end-of-chain\" }\n}\n",
             step);
    char path[700];
    snprintf(path, sizeof(path), "%s", vkt_write(t, "nested.kdl", doc));
    const char *args[] = {"run", path, "--sandbox", "none", NULL};
    char *out = NULL;
    int code = vkt_run_vulcan(t, args, 60000 * vkt_slow(), &out);
    if (code != 0)
        printf("%s", out);
    assert_int_equal(code, 0);
    expect_in(out, "[after] end-of-chain\n");
    free(out);
    char *log = vkt_read(stamps, NULL);
    assert_non_null(log);
    long long as = stamp(log, "start", "a"), ae = stamp(log, "end", "a");
    long long bs = stamp(log, "start", "b"), be = stamp(log, "end", "b");
    long long ss = stamp(log, "start", "solo"), se = stamp(log, "end", "solo");
    free(log);
    assert_true(ae <= bs);           /* in sequence */
    assert_true(ss < ae && as < se); /* alongside the sibling */
    assert_true(ss < be && bs < se);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_run_success, vkt_setup, vkt_teardown),
        cmocka_unit_test_setup_teardown(test_run_failure, vkt_setup, vkt_teardown),
        cmocka_unit_test_setup_teardown(test_run_example_hello, vkt_setup, vkt_teardown),
        cmocka_unit_test_setup_teardown(test_run_sequence_in_parallel, vkt_setup, vkt_teardown),
    };
    vkt_filter();
    return cmocka_run_group_tests_name("integration_run", tests, NULL, NULL);
}
