/* Manual trigger inputs against a workflow's `manual { input … }` declarations. */
#include "vk_test.h"
#include "vulcan/triggers.h"

#include <stdio.h>
#include <string.h>

static struct vk_workflow *load(const char *triggers)
{
    char src[2048];
    snprintf(
        src, sizeof(src),
        "version \"0.1\"\ntriggers {\n%s\n}\nchain { machine \"m\"; fragment { run \"x\" } }\n",
        triggers);
    struct vk_workflow *wf = NULL;
    struct vk_wf_error e;
    vk_wf_error_init(&e);
    if (vk_workflow_load_buffer(src, strlen(src), "t.kdl", NULL, &wf, &e) != 0)
        fail_msg("%s", e.rendered);
    return wf;
}

#define MANUAL                                                                                     \
    "push\n"                                                                                       \
    "manual {\n"                                                                                   \
    "  input \"environment\" { choice \"staging\" \"production\"; default \"staging\" }\n"         \
    "  input \"version\" { required #true }\n"                                                     \
    "  input \"dry_run\" { default \"false\" }\n"                                                  \
    "  input \"note\"\n"                                                                           \
    "}"

static const char *get(const struct vk_cond_var *v, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i].name, name) == 0)
            return v[i].value;
    return NULL;
}

static void test_resolve(void **state)
{
    (void)state;
    struct vk_workflow *wf = load(MANUAL);
    struct vk_pool pool;
    vk_pool_init(&pool, 0);
    struct vk_err err = {0};
    struct vk_cond_var *out = NULL;
    size_t n = 0;

    /* defaults filled, declaration order, undeclared-and-unset left out */
    const struct vk_cond_var given[] = {{"version", "1.4.2"}};
    assert_int_equal(vk_triggers_inputs_resolve(wf, given, 1, &pool, &out, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_string_equal(out[0].name, "environment");
    assert_string_equal(out[0].value, "staging");
    assert_string_equal(out[1].name, "version");
    assert_string_equal(out[1].value, "1.4.2");
    assert_string_equal(out[2].name, "dry_run");
    assert_string_equal(out[2].value, "false");
    assert_null(get(out, n, "note"));

    /* the result feeds the condition evaluator directly */
    struct vk_cond *c = NULL;
    const char *cond = "$environment == 'staging' && $version =~ '1.*'";
    assert_int_equal(vk_cond_parse(cond, strlen(cond), &pool, &c, &err), 0);
    struct vk_cond_vars vars = {out, n};
    bool yes = false;
    assert_int_equal(vk_cond_eval(c, vk_cond_lookup_kv, &vars, &yes), 0);
    assert_true(yes);

    /* a valid choice, a free-form input */
    const struct vk_cond_var g2[] = {
        {"environment", "production"}, {"version", "2"}, {"note", "hotfix"}};
    assert_int_equal(vk_triggers_inputs_resolve(wf, g2, 3, &pool, &out, &n, &err), 0);
    assert_int_equal(n, 4);
    assert_string_equal(get(out, n, "environment"), "production");
    assert_string_equal(get(out, n, "note"), "hotfix");

    /* errors name the input */
    const struct vk_cond_var bad_choice[] = {{"environment", "prod"}, {"version", "1"}};
    assert_int_equal(vk_triggers_inputs_resolve(wf, bad_choice, 2, &pool, &out, &n, &err),
                     VK_EINVAL);
    assert_non_null(strstr(err.msg, "'environment'"));
    assert_non_null(strstr(err.msg, "'prod'"));
    assert_int_equal(vk_triggers_inputs_resolve(wf, NULL, 0, &pool, &out, &n, &err), VK_EINVAL);
    assert_string_equal(err.msg, "missing required input 'version'");
    const struct vk_cond_var empty_req[] = {{"version", ""}};
    assert_int_equal(vk_triggers_inputs_resolve(wf, empty_req, 1, &pool, &out, &n, &err),
                     VK_EINVAL);
    const struct vk_cond_var unknown[] = {{"version", "1"}, {"region", "eu"}};
    assert_int_equal(vk_triggers_inputs_resolve(wf, unknown, 2, &pool, &out, &n, &err), VK_EINVAL);
    assert_string_equal(err.msg, "unknown input 'region'");
    const struct vk_cond_var twice[] = {{"version", "1"}, {"version", "2"}};
    assert_int_equal(vk_triggers_inputs_resolve(wf, twice, 2, &pool, &out, &n, &err), VK_EINVAL);
    assert_non_null(strstr(err.msg, "twice"));
    const struct vk_cond_var ctl[] = {{"version", "1\x1b[2J"}};
    assert_int_equal(vk_triggers_inputs_resolve(wf, ctl, 1, &pool, &out, &n, &err), VK_EINVAL);

    vk_pool_release(&pool);
    vk_workflow_free(wf);
}

static void test_resolve_json(void **state)
{
    (void)state;
    struct vk_workflow *wf = load(MANUAL);
    struct vk_pool pool;
    vk_pool_init(&pool, 0);
    struct vk_err err = {0};
    struct vk_cond_var *out = NULL;
    size_t n = 0;
    const char *j = "{\"version\": 3, \"dry_run\": true}";
    assert_int_equal(vk_triggers_inputs_resolve_json(wf, j, strlen(j), &pool, &out, &n, &err), 0);
    assert_string_equal(get(out, n, "version"), "3");
    assert_string_equal(get(out, n, "dry_run"), "true");
    assert_string_equal(get(out, n, "environment"), "staging");
    static const char *const bad[] = {"[1]",
                                      "{\"version\": 1.5}",
                                      "{\"version\": null}",
                                      "{\"version\": {}}",
                                      "{",
                                      "{\"version\":\"1\",\"version\":\"2\"}",
                                      "{\"version\": \"a\\u0000b\"}"};
    for (size_t i = 0; i < VK_ARRAY_LEN(bad); i++)
        if (vk_triggers_inputs_resolve_json(wf, bad[i], strlen(bad[i]), &pool, &out, &n, &err) !=
            VK_EINVAL)
            fail_msg("'%s' accepted", bad[i]);
    /* no body: only defaults, and the required input is missing */
    assert_int_equal(vk_triggers_inputs_resolve_json(wf, NULL, 0, &pool, &out, &n, &err),
                     VK_EINVAL);
    vk_pool_release(&pool);
    vk_workflow_free(wf);

    /* a workflow without a manual trigger refuses; the simple form takes no inputs */
    wf = load("push");
    vk_pool_init(&pool, 0);
    assert_int_equal(vk_triggers_inputs_resolve_json(wf, "{}", 2, &pool, &out, &n, &err), VK_EPERM);
    vk_workflow_free(wf);
    wf = load("manual");
    assert_int_equal(vk_triggers_inputs_resolve_json(wf, "{}", 2, &pool, &out, &n, &err), 0);
    assert_int_equal(n, 0);
    assert_int_equal(vk_triggers_inputs_resolve_json(wf, "{\"x\":\"1\"}", 9, &pool, &out, &n, &err),
                     VK_EINVAL);
    vk_pool_release(&pool);
    vk_workflow_free(wf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_resolve),
        cmocka_unit_test(test_resolve_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
