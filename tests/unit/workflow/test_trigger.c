/* Trigger matching (events x filters) and cron validation. */
#include "vk_test.h"
#include "vulcan/workflow.h"

#include <stdio.h>
#include <string.h>

static struct vk_workflow *load(const char *triggers)
{
    char src[2048];
    snprintf(src, sizeof(src),
             "version \"0.1\"\ntriggers %s\nchain { machine \"m\"; fragment { run \"x\" } }\n",
             triggers);
    struct vk_workflow *wf = NULL;
    struct vk_wf_error e;
    vk_wf_error_init(&e);
    if (vk_workflow_load_buffer(src, strlen(src), "t.kdl", NULL, &wf, &e) != 0)
        fail_msg("%s", e.rendered);
    return wf;
}

#define PUSH VK_WF_TRIG_PUSH
#define PR VK_WF_TRIG_PULL_REQUEST
#define TAG VK_WF_TRIG_TAG
#define SCHED VK_WF_TRIG_SCHEDULE
#define MANUAL VK_WF_TRIG_MANUAL
#define NOPATHS ((const char *[]){NULL}), 0

struct row {
    const char *filters;
    enum vk_wf_trigger_type type;
    const char *branch, *tag, *action;
    const char *paths[4]; /* NULL-terminated; all NULL with unknown=true: paths not known */
    bool unknown;
    bool expect;
};

static const struct row rows[] = {
    /* simple form */
    {"\"push\"", PUSH, "main", NULL, NULL, {NULL}, true, true},
    {"\"push\"", PR, "main", NULL, "opened", {NULL}, true, false},
    {"\"push\" \"pull_request\"", PR, "main", NULL, "opened", {NULL}, true, true},
    {"\"pull_request\"", PR, "main", NULL, "closed", {NULL}, true, false},
    {"\"pull_request\"", PR, "main", NULL, "synchronize", {NULL}, true, true},
    {"\"pull_request\"", PR, "main", NULL, "reopened", {NULL}, true, true},
    {"\"tag\"", TAG, NULL, "v1", NULL, {NULL}, true, true},
    {"\"tag\"", PUSH, "main", NULL, NULL, {NULL}, true, false},
    {"\"manual\"", MANUAL, NULL, NULL, NULL, {NULL}, true, true},
    {"\"schedule\"", SCHED, NULL, NULL, NULL, {NULL}, true, true},
    /* branches */
    {"{ push { branches \"main\" \"releases/**\" } }",
     PUSH,
     "main",
     NULL,
     NULL,
     {NULL},
     true,
     true},
    {"{ push { branches \"main\" \"releases/**\" } }",
     PUSH,
     "refs/heads/main",
     NULL,
     NULL,
     {NULL},
     true,
     true},
    {"{ push { branches \"main\" \"releases/**\" } }",
     PUSH,
     "dev",
     NULL,
     NULL,
     {NULL},
     true,
     false},
    {"{ push { branches \"main\" \"releases/**\" } }",
     PUSH,
     "releases/1.0/hotfix",
     NULL,
     NULL,
     {NULL},
     true,
     true},
    {"{ push { branches \"feature/*\" } }", PUSH, "feature/a/b", NULL, NULL, {NULL}, true, false},
    {"{ push { branches \"feature/*\" } }", PUSH, "feature/a", NULL, NULL, {NULL}, true, true},
    {"{ push { branches-ignore \"wip/**\" } }", PUSH, "wip/x", NULL, NULL, {NULL}, true, false},
    {"{ push { branches-ignore \"wip/**\" } }", PUSH, "main", NULL, NULL, {NULL}, true, true},
    {"{ push { branches \"releases/**\" \"!releases/**-alpha\" } }",
     PUSH,
     "releases/2-alpha",
     NULL,
     NULL,
     {NULL},
     true,
     false},
    {"{ push { branches \"releases/**\" \"!releases/**-alpha\" } }",
     PUSH,
     "releases/2",
     NULL,
     NULL,
     {NULL},
     true,
     true},
    /* paths */
    {"{ push { paths \"src/**\" } }", PUSH, "main", NULL, NULL, {"src/a.c", NULL}, false, true},
    {"{ push { paths \"src/**\" } }", PUSH, "main", NULL, NULL, {"docs/a.md", NULL}, false, false},
    {"{ push { paths \"src/**\" } }",
     PUSH,
     "main",
     NULL,
     NULL,
     {"docs/a.md", "src/x/y.c"},
     false,
     true},
    {"{ push { paths \"src/**\" } }", PUSH, "main", NULL, NULL, {NULL}, false, false},
    {"{ push { paths \"src/**\" } }", PUSH, "main", NULL, NULL, {NULL}, true, true},
    {"{ push { paths-ignore \"docs/**\" } }",
     PUSH,
     "main",
     NULL,
     NULL,
     {"docs/a.md", NULL},
     false,
     false},
    {"{ push { paths-ignore \"docs/**\" } }",
     PUSH,
     "main",
     NULL,
     NULL,
     {"docs/a.md", "README"},
     false,
     true},
    {"{ push { paths \"src/**\"; paths-ignore \"docs/**\" } }",
     PUSH,
     "main",
     NULL,
     NULL,
     {"src/a.c", "docs/b.md"},
     false,
     true},
    {"{ push { paths \"src/**\"; paths-ignore \"docs/**\" } }",
     PUSH,
     "main",
     NULL,
     NULL,
     {"docs/b.md", NULL},
     false,
     false},
    {"{ push { branches \"main\"; paths \"*.md\" } }",
     PUSH,
     "main",
     NULL,
     NULL,
     {"docs/a.md", NULL},
     false,
     false},
    {"{ push { branches \"main\"; paths \"**/*.md\" } }",
     PUSH,
     "main",
     NULL,
     NULL,
     {"a.md", NULL},
     false,
     true},
    {"{ push { branches \"main\"; paths \"**.md\" } }",
     PUSH,
     "dev",
     NULL,
     NULL,
     {"a.md", NULL},
     false,
     false},
    /* pull requests */
    {"{ pull_request { branches \"main\" } }", PR, "main", NULL, "opened", {NULL}, true, true},
    {"{ pull_request { branches \"main\" } }", PR, "dev", NULL, "opened", {NULL}, true, false},
    {"{ pull_request { types \"closed\" } }", PR, "main", NULL, "closed", {NULL}, true, true},
    {"{ pull_request { types \"closed\" } }", PR, "main", NULL, "opened", {NULL}, true, false},
    {"{ pull_request { types \"labeled\" \"opened\"; paths \"api/**\" } }",
     PR,
     "x",
     NULL,
     "labeled",
     {"api/v1.yaml", NULL},
     false,
     true},
    {"{ pull_request { types \"labeled\" \"opened\"; paths \"api/**\" } }",
     PR,
     "x",
     NULL,
     "labeled",
     {"web/index.html", NULL},
     false,
     false},
    {"{ pull_request }", PR, "x", NULL, NULL, {NULL}, true, true},
    /* tags */
    {"{ tag { patterns \"v*\"; ignore \"v*-rc*\" } }",
     TAG,
     NULL,
     "v1.2.0",
     NULL,
     {NULL},
     true,
     true},
    {"{ tag { patterns \"v*\"; ignore \"v*-rc*\" } }",
     TAG,
     NULL,
     "v1.2.0-rc1",
     NULL,
     {NULL},
     true,
     false},
    {"{ tag { patterns \"v*\"; ignore \"v*-rc*\" } }",
     TAG,
     NULL,
     "refs/tags/v2",
     NULL,
     {NULL},
     true,
     true},
    {"{ tag { patterns \"v*\"; ignore \"v*-rc*\" } }",
     TAG,
     NULL,
     "release-1",
     NULL,
     {NULL},
     true,
     false},
    {"{ tag { patterns \"v*\"; ignore \"v*-rc*\" } }", PUSH, "v1", NULL, NULL, {NULL}, true, false},
    {"{ tag }", TAG, NULL, "anything/at/all", NULL, {NULL}, true, true},
    /* several triggers: any may match */
    {"{ push { branches \"main\" }; tag { patterns \"v*\" }; manual }",
     TAG,
     NULL,
     "v3",
     NULL,
     {NULL},
     true,
     true},
    {"{ push { branches \"main\" }; tag { patterns \"v*\" }; manual }",
     PUSH,
     "dev",
     NULL,
     NULL,
     {NULL},
     true,
     false},
    {"{ push { branches \"main\" }; tag { patterns \"v*\" }; manual }",
     MANUAL,
     NULL,
     NULL,
     NULL,
     {NULL},
     true,
     true},
    {"{ schedule cron=\"0 2 * * *\" }", SCHED, NULL, NULL, NULL, {NULL}, true, true},
    {"{ push }", SCHED, NULL, NULL, NULL, {NULL}, true, false},
};

static void test_matcher_table(void **state)
{
    (void)state;
    assert_true(VK_ARRAY_LEN(rows) >= 30);
    for (size_t i = 0; i < VK_ARRAY_LEN(rows); i++) {
        const struct row *r = &rows[i];
        struct vk_workflow *wf = load(r->filters);
        size_t n = 0;
        while (n < 4 && r->paths[n])
            n++;
        struct vk_wf_event ev = {.type = r->type,
                                 .branch = r->branch,
                                 .tag = r->tag,
                                 .paths = r->unknown ? NULL : r->paths,
                                 .npaths = n,
                                 .action = r->action};
        bool got = vk_workflow_triggered(wf, &ev);
        if (got != r->expect)
            fail_msg("row %zu: triggers %s, event %s branch=%s tag=%s action=%s: expected %d", i,
                     r->filters, vk_wf_trigger_type_name(r->type), r->branch ? r->branch : "",
                     r->tag ? r->tag : "", r->action ? r->action : "", r->expect);
        vk_workflow_free(wf);
    }
}

static void test_schedule_cron_match(void **state)
{
    (void)state;
    struct vk_workflow *wf = load("{ schedule cron=\"0 2 * * *\"; schedule cron=\"@hourly\" }");
    struct vk_wf_event ev = {.type = SCHED, .cron = "@hourly"};
    assert_true(vk_workflow_triggered(wf, &ev));
    ev.cron = "5 5 * * *";
    assert_false(vk_workflow_triggered(wf, &ev));
    vk_workflow_free(wf);
}

/* chain workflow="…" status="…": the ended chain's workflow, how it ended, its branch. */
static void test_chain_trigger(void **state)
{
    (void)state;
    struct vk_workflow *wf =
        load("{ chain workflow=\"build\" { branches \"main\" }; chain workflow=\"lint\" "
             "status=\"failed\"; chain workflow=\"nightly\" status=\"finished\" }");
    assert_int_equal(wf->ntriggers, 3);
    assert_string_equal(wf->triggers[0].follow_status, "completed");
    static const struct {
        const char *workflow, *status, *branch;
        bool expect;
    } ev_rows[] = {
        {"build", "completed", "main", true}, {"build", "failed", "main", false},
        {"build", "completed", "dev", false}, {"lint", "failed", "dev", true},
        {"lint", "completed", "dev", false},  {"nightly", "failed", "x", true},
        {"nightly", "completed", "x", true},  {"deploy", "completed", "main", false},
    };
    for (size_t i = 0; i < VK_ARRAY_LEN(ev_rows); i++) {
        struct vk_wf_event ev = {.type = VK_WF_TRIG_CHAIN,
                                 .branch = ev_rows[i].branch,
                                 .workflow = ev_rows[i].workflow,
                                 .status = ev_rows[i].status};
        if (vk_workflow_triggered(wf, &ev) != ev_rows[i].expect)
            fail_msg("row %zu: %s %s %s: expected %d", i, ev_rows[i].workflow, ev_rows[i].status,
                     ev_rows[i].branch, ev_rows[i].expect);
    }
    char why[256];
    struct vk_wf_event ev = {
        .type = VK_WF_TRIG_CHAIN, .branch = "main", .workflow = "build", .status = "failed"};
    assert_false(vk_wf_trigger_explain(&wf->triggers[0], &ev, why, sizeof(why)));
    assert_string_equal(why, "chain: follows completed chains of 'build', this one failed");
    /* a push never starts a chain-triggered workflow */
    struct vk_wf_event push = {.type = PUSH, .branch = "main"};
    assert_false(vk_workflow_triggered(wf, &push));
    vk_workflow_free(wf);

    static const struct {
        const char *triggers, *msg;
    } bad[] = {
        {"\"chain\"", "'chain' needs the workflow it follows: triggers { chain "
                      "workflow=\"build\" status=\"completed\" }"},
        {"{ chain status=\"failed\" }",
         "'chain' needs the workflow it follows: chain workflow=\"build\" status=\"completed\""},
        {"{ chain workflow=\"b\" status=\"cancelled\" }",
         "unknown chain status 'cancelled'; expected one of: completed, failed, finished "
         "(either)"},
        {"{ chain workflow=\"b\" when=\"x\" }",
         "unknown property 'when' of 'chain'; expected one of: workflow, status"},
        {"{ chain workflow=\"b\" { paths \"x\" } }",
         "unknown filter 'paths' in 'chain'; expected one of: branches, branches-ignore"},
        {"{ workflow_run }", NULL},
    };
    for (size_t i = 0; i < VK_ARRAY_LEN(bad); i++) {
        char src[1024];
        snprintf(src, sizeof(src),
                 "version \"0.1\"\ntriggers %s\nchain { machine \"m\"; fragment { run \"x\" "
                 "} }\n",
                 bad[i].triggers);
        struct vk_workflow *w = NULL;
        struct vk_wf_error e;
        vk_wf_error_init(&e);
        assert_int_equal(vk_workflow_load_buffer(src, strlen(src), "t.kdl", NULL, &w, &e),
                         VK_EPARSE);
        if (bad[i].msg)
            assert_string_equal(e.msg, bad[i].msg);
        else
            assert_non_null(strstr(e.msg, "chain workflow="));
        assert_int_equal(e.line, 2);
        vk_wf_error_release(&e);
    }
}

static void test_cron(void **state)
{
    (void)state;
    struct vk_cron c;
    struct vk_err e;
    assert_int_equal(vk_cron_parse("0 2 * * 1-5", &c, NULL), 0);
    assert_int_equal(c.minutes, 1);
    assert_int_equal(c.hours, 1u << 2);
    assert_int_equal(c.weekdays, 0x3e);
    assert_true(c.dom_any);
    assert_false(c.dow_any);
    assert_int_equal(vk_cron_parse("*/15 0-23/6 1,15 JAN-mar SUN,sat", &c, NULL), 0);
    assert_int_equal(c.minutes, (1ull << 0) | (1ull << 15) | (1ull << 30) | (1ull << 45));
    assert_int_equal(c.hours, (1u << 0) | (1u << 6) | (1u << 12) | (1u << 18));
    assert_int_equal(c.days, (1u << 1) | (1u << 15));
    assert_int_equal(c.months, (1u << 1) | (1u << 2) | (1u << 3));
    assert_int_equal(c.weekdays, 0x41);
    assert_int_equal(vk_cron_parse("0 0 * * 7", &c, NULL), 0);
    assert_int_equal(c.weekdays, 1);
    assert_int_equal(vk_cron_parse("5/20 * * * *", &c, NULL), 0);
    assert_int_equal(c.minutes, (1ull << 5) | (1ull << 25) | (1ull << 45));
    const char *macros[] = {"@yearly", "@annually", "@monthly", "@weekly",
                            "@daily",  "@midnight", "@hourly"};
    for (size_t i = 0; i < VK_ARRAY_LEN(macros); i++)
        assert_int_equal(vk_cron_parse(macros[i], NULL, NULL), 0);
    assert_int_equal(vk_cron_parse("@weekly", &c, NULL), 0);
    assert_int_equal(c.weekdays, 1);

    static const struct {
        const char *expr;
        uint32_t col;
        const char *msg;
    } bad[] = {
        {"@reboot", 1,
         "unknown cron macro; expected one of: @yearly, @annually, @monthly, @weekly, @daily, "
         "@midnight, @hourly"},
        {"60 * * * *", 1, "minute out of range: expected 0-59"},
        {"* 24 * * *", 3, "hour out of range: expected 0-23"},
        {"* * 0 * *", 5, "day of month out of range: expected 1-31"},
        {"* * * 13 *", 7, "month out of range: expected 1-12"},
        {"* * * FOO *", 7, "invalid month: expected a number 1-12"},
        {"* * * * MON-FRIDAY", 16, "unexpected character in day of week: expected a number 0-7"},
        {"5-1 * * * *", 1, "invalid minute range: the start is after the end (5-1)"},
        {"*/0 * * * *", 3, "invalid minute step: expected a number 1-59"},
        {"1, * * * *", 2, "invalid minute: a list cannot end with ','"},
        {"* * * * * *", 11,
         "too many cron fields: expected 5 (minute hour day-of-month month day-of-week)"},
        {"", 1, "expected 5 cron fields (minute hour day-of-month month day-of-week), found 0"},
        {"a * * * *", 1, "invalid minute: expected a number 0-59"},
        {"99999999999 * * * *", 1, "invalid minute: expected a number 0-59"},
    };
    for (size_t i = 0; i < VK_ARRAY_LEN(bad); i++) {
        vk_err_clear(&e);
        if (vk_cron_parse(bad[i].expr, NULL, &e) != VK_EINVAL)
            fail_msg("'%s' accepted", bad[i].expr);
        if (e.col != bad[i].col || strcmp(e.msg, bad[i].msg) != 0)
            fail_msg("'%s': expected %u '%s', got %u '%s'", bad[i].expr, bad[i].col, bad[i].msg,
                     e.col, e.msg);
    }
}

static void test_timezone(void **state)
{
    (void)state;
    assert_true(vk_cron_tz_valid("Europe/Amsterdam"));
    assert_true(vk_cron_tz_valid("UTC"));
    assert_false(vk_cron_tz_valid("Europe")); /* a directory */
    assert_false(vk_cron_tz_valid("Mars/Base"));
    assert_false(vk_cron_tz_valid("../zoneinfo/UTC")); /* no ".." */
    assert_false(vk_cron_tz_valid("/etc/passwd"));
    assert_false(vk_cron_tz_valid(""));
    assert_false(vk_cron_tz_valid("UTC "));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matcher_table), cmocka_unit_test(test_schedule_cron_match),
        cmocka_unit_test(test_chain_trigger), cmocka_unit_test(test_cron),
        cmocka_unit_test(test_timezone),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
