/* The `concurrency` node: what it loads into, and every error with its file:line:col. */
#include "vk_test.h"
#include "vulcan/workflow.h"

#include <stdio.h>
#include <string.h>

#define HEAD "version \"0.1\"\ntriggers \"push\"\n"

static struct vk_workflow *load(const char *src, struct vk_wf_error *e)
{
    struct vk_workflow *wf = NULL;
    vk_wf_error_init(e);
    int rc = vk_workflow_load_buffer(src, strlen(src), "t.kdl", NULL, &wf, e);
    if (rc != 0)
        assert_null(wf);
    return wf;
}

static void test_chain_and_fragment(void **state)
{
    (void)state;
    struct vk_wf_error e;
    struct vk_workflow *wf =
        load(HEAD "chain {\n  machine \"m\"\n"
                  "  concurrency group=\"deploy-{branch}\" cancel-in-progress=#true\n"
                  "  fragment { run \"x\"; concurrency group=\"db-{repo}-{workflow}\" }\n"
                  "  fragment { run \"y\" }\n}\n",
             &e);
    if (!wf)
        fail_msg("%s", e.rendered);
    assert_non_null(wf->concurrency);
    assert_string_equal(wf->concurrency->group, "deploy-{branch}");
    assert_true(wf->concurrency->cancel_in_progress);
    assert_int_equal(wf->concurrency->pos.line, 5);
    assert_int_equal(wf->concurrency->pos.col, 3);
    const struct vk_wf_fragment *f = &wf->root.children[0];
    assert_non_null(f->concurrency);
    assert_string_equal(f->concurrency->group, "db-{repo}-{workflow}");
    assert_false(f->concurrency->cancel_in_progress);
    assert_null(wf->root.children[1].concurrency);
    char out[VK_WF_MAX_CONCURRENCY_GROUP + 1];
    assert_int_equal(
        vk_wf_concurrency_expand(wf->concurrency->group, "main", "acme/app", "ci", out, sizeof out),
        0);
    assert_string_equal(out, "deploy-main");
    assert_int_equal(
        vk_wf_concurrency_expand(f->concurrency->group, NULL, "acme/app", "ci", out, sizeof out),
        0);
    assert_string_equal(out, "db-acme/app-ci");
    vk_workflow_free(wf);
    vk_wf_error_release(&e);
}

/* A matrix copy fills in {matrix.KEY}: each copy has a group of its own. */
static void test_matrix(void **state)
{
    (void)state;
    struct vk_wf_error e;
    struct vk_workflow *wf =
        load(HEAD "chain { machine \"m\"\n"
                  "  fragment { matrix { env \"staging\" \"prod\" }; run \"x\"\n"
                  "    concurrency group=\"deploy-{matrix.env}-{branch}\" } }\n",
             &e);
    if (!wf)
        fail_msg("%s", e.rendered);
    const struct vk_wf_fragment *g = &wf->root.children[0];
    assert_int_equal(g->nchildren, 2);
    assert_string_equal(g->children[0].concurrency->group, "deploy-staging-{branch}");
    assert_string_equal(g->children[1].concurrency->group, "deploy-prod-{branch}");
    vk_workflow_free(wf);
    vk_wf_error_release(&e);
}

/* The expansion is bounded: a long branch name cannot make a group without end. */
static void test_expand_bound(void **state)
{
    (void)state;
    char branch[400];
    memset(branch, 'b', sizeof branch - 1);
    branch[sizeof branch - 1] = '\0';
    char out[1024];
    assert_int_equal(vk_wf_concurrency_expand("d-{branch}", branch, NULL, "w", out, sizeof out),
                     VK_ETOOBIG);
    assert_string_equal(out, "");
    assert_int_equal(vk_wf_concurrency_expand("d-{branch}", "main", NULL, "w", out, 4), VK_ETOOBIG);
    assert_int_equal(vk_wf_concurrency_expand("{x}{repo}", "main", NULL, "w", out, sizeof out), 0);
    assert_string_equal(out, "{x}");
}

struct bad {
    const char *src;
    enum vk_wf_errkind kind;
    uint32_t line, col;
    const char *msg;
};

static void test_errors(void **state)
{
    (void)state;
    static const struct bad bads[] = {
        {HEAD "chain { machine \"m\"; concurrency; fragment { run \"x\" } }\n", VK_WF_ERR_MISSING,
         3, 22, "'concurrency' needs a group: concurrency group=\"deploy-{branch}\""},
        {HEAD "chain { machine \"m\"; concurrency cancel-in-progress=#true; fragment { run \"x\" "
              "} }\n",
         VK_WF_ERR_MISSING, 3, 22,
         "'concurrency' needs a group: concurrency group=\"deploy-{branch}\""},
        {HEAD "chain { machine \"m\"; concurrency group=\"d-{sha}\"; fragment { run \"x\" } }\n",
         VK_WF_ERR_INVALID_VALUE, 3, 43,
         "unknown placeholder '{sha}' in the concurrency group; expected {branch}, {repo}, "
         "{workflow} or {matrix.KEY}"},
        {HEAD "chain { machine \"m\"; concurrency group=\"d-{branch\"; fragment { run \"x\" } }\n",
         VK_WF_ERR_INVALID_VALUE, 3, 43, "'{branch' in the concurrency group has no closing '}'"},
        {HEAD "chain { machine \"m\"; fragment { run \"x\"; concurrency group=\"d-{matrix.os}\" } "
              "}\n",
         VK_WF_ERR_INVALID_VALUE, 3, 63,
         "'{matrix.os}' in the concurrency group needs a matrix: only the copies of a fragment "
         "with 'matrix' have matrix values"},
        {HEAD "chain { machine \"m\"; fragment { matrix { os \"a\" }; run \"x\"\n"
              "  concurrency group=\"d-{matrix.cc}\" } }\n",
         VK_WF_ERR_INVALID_VALUE, 4, 24, "unknown matrix variable 'cc'; this matrix has: os"},
        {HEAD "chain { machine \"m\"; concurrency group=\"\"; fragment { run \"x\" } }\n",
         VK_WF_ERR_INVALID_VALUE, 3, 40, "the concurrency group cannot be empty"},
        {HEAD "chain { machine \"m\"; concurrency group=1; fragment { run \"x\" } }\n",
         VK_WF_ERR_INVALID_VALUE, 3, 40,
         "'group' takes a string such as \"deploy-{branch}\", not integer"},
        {HEAD "chain { machine \"m\"; concurrency group=\"a\" cancel-in-progress=\"yes\"; "
              "fragment { run \"x\" } }\n",
         VK_WF_ERR_INVALID_VALUE, 3, 63, "'cancel-in-progress' takes #true or #false, not string"},
        {HEAD "chain { machine \"m\"; concurrency group=\"a\" queue=1; fragment { run \"x\" } }\n",
         VK_WF_ERR_INVALID_VALUE, 3, 44,
         "unknown property 'queue' of 'concurrency'; expected group=\"…\" and "
         "cancel-in-progress=#true|#false"},
        {HEAD "chain { machine \"m\"; concurrency \"a\"; fragment { run \"x\" } }\n",
         VK_WF_ERR_INVALID_VALUE, 3, 34,
         "'concurrency' takes properties, not arguments: concurrency group=\"deploy-{branch}\" "
         "cancel-in-progress=#true"},
        {HEAD "chain { machine \"m\"; concurrency group=\"a\"; concurrency group=\"b\"; fragment { "
              "run \"x\" } }\n",
         VK_WF_ERR_DUPLICATE, 3, 45, "duplicate 'concurrency' (first at line 3)"},
        {HEAD "chain { machine \"m\"; concurrency group=\"a\" { x }; fragment { run \"x\" } }\n",
         VK_WF_ERR_INVALID_VALUE, 3, 44, "'concurrency' takes no block { … }"},
        {HEAD "chain { machine \"m\"; fragment { from \"a.kdl\"; concurrency group=\"a\" } }\n",
         VK_WF_ERR_EXCLUSIVE, 3, 47,
         "'concurrency' cannot be used with 'from'; set it in the imported file"},
        {HEAD "chain { machine \"m\"; parallel { concurrency group=\"a\"; fragment { run \"x\" } } "
              "}\n",
         VK_WF_ERR_UNKNOWN_NODE, 3, 33,
         "unknown node 'concurrency' in 'parallel'; expected one of: fragment, parallel, name, "
         "machine, condition, max-parallel, fail-fast, when, allow-failure, needs, matrix"},
    };
    for (size_t i = 0; i < sizeof bads / sizeof bads[0]; i++) {
        const struct bad *b = &bads[i];
        struct vk_wf_error e;
        struct vk_workflow *wf = load(b->src, &e);
        if (wf)
            fail_msg("loaded but should fail: %s", b->src);
        if (e.kind != b->kind || e.line != b->line || e.col != b->col || strcmp(e.msg, b->msg) != 0)
            fail_msg("for:\n%s\nexpected %s at %u:%u '%s'\ngot      %s at %u:%u '%s'", b->src,
                     vk_wf_errkind_name(b->kind), b->line, b->col, b->msg,
                     vk_wf_errkind_name(e.kind), e.line, e.col, e.msg);
        char head[1200];
        snprintf(head, sizeof head, "t.kdl:%u:%u: error: ", b->line, b->col);
        assert_non_null(e.rendered);
        assert_memory_equal(e.rendered, head, strlen(head));
        vk_wf_error_release(&e);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chain_and_fragment),
        cmocka_unit_test(test_matrix),
        cmocka_unit_test(test_expand_bound),
        cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
