/* The workflow loader: every rule of DESIGN §2 and every error kind. */
#include "vk_test.h"
#include "vulcan/workflow.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HEAD "version \"0.1\"\ntriggers \"push\"\n"

static struct vk_workflow *load_ok(const char *src)
{
    struct vk_workflow *wf = NULL;
    struct vk_wf_error e;
    vk_wf_error_init(&e);
    int rc = vk_workflow_load_buffer(src, strlen(src), "dir/t.kdl", NULL, &wf, &e);
    if (rc != 0)
        fail_msg("load failed: %s", e.rendered ? e.rendered : e.msg);
    vk_wf_error_release(&e);
    return wf;
}

struct bad {
    const char *src;
    enum vk_wf_errkind kind;
    uint32_t line, col;
    const char *msg; /* exact message */
};

static void check_show(const struct bad *b)
{
    struct vk_workflow *wf = NULL;
    struct vk_wf_error e;
    vk_wf_error_init(&e);
    int rc = vk_workflow_load_buffer(b->src, strlen(b->src), "t.kdl", NULL, &wf, &e);
    if (rc == 0) {
        print_error("LOADED: %s\n", b->src);
    } else if (e.kind != b->kind || e.line != b->line || e.col != b->col ||
               strcmp(e.msg, b->msg) != 0) {
        print_error("exp %s %u:%u %s\ngot %s\n", vk_wf_errkind_name(b->kind), b->line, b->col,
                    b->msg, e.rendered);
    }
    vk_workflow_free(wf);
    vk_wf_error_release(&e);
}

static void check_bad(const struct bad *b)
{
    struct vk_workflow *wf = NULL;
    struct vk_wf_error e;
    vk_wf_error_init(&e);
    int rc = vk_workflow_load_buffer(b->src, strlen(b->src), "t.kdl", NULL, &wf, &e);
    if (rc == 0)
        fail_msg("loaded but should fail: %s", b->src);
    assert_null(wf);
    if (e.kind != b->kind || e.line != b->line || e.col != b->col || strcmp(e.msg, b->msg) != 0)
        print_error("for:\n%s\nexpected %s at %u:%u '%s'\ngot      %s at %u:%u '%s'", b->src,
                    vk_wf_errkind_name(b->kind), b->line, b->col, b->msg,
                    vk_wf_errkind_name(e.kind), e.line, e.col, e.msg);
    assert_string_equal(e.file, "t.kdl");
    assert_non_null(e.rendered);
    char head[1200];
    if (b->line)
        snprintf(head, sizeof(head), "t.kdl:%u:%u: error: %s\n", b->line, b->col, b->msg);
    else
        snprintf(head, sizeof(head), "t.kdl: error: %s\n", b->msg);
    assert_memory_equal(e.rendered, head, strlen(head));
    if (b->line) {
        /* the caret sits under the column */
        const char *caret = strrchr(e.rendered, '^');
        const char *bar = strrchr(e.rendered, '|');
        assert_non_null(caret);
        assert_true(bar && caret > bar);
        assert_int_equal((size_t)(caret - bar) - 1, b->col);
    }
    vk_wf_error_release(&e);
}

static void test_minimal(void **state)
{
    (void)state;
    struct vk_workflow *wf = load_ok(HEAD "chain { machine \"m\"; fragment { run \"x\" } }\n");
    assert_string_equal(wf->name, "t");
    assert_string_equal(wf->file, "dir/t.kdl");
    assert_string_equal(wf->version, "0.1");
    assert_string_equal(wf->machine, "m");
    assert_int_equal(wf->ntriggers, 1);
    assert_int_equal(wf->triggers[0].type, VK_WF_TRIG_PUSH);
    assert_int_equal(wf->root.nchildren, 1);
    const struct vk_wf_fragment *f = &wf->root.children[0];
    assert_int_equal(f->type, VK_WF_INLINE);
    assert_string_equal(f->run, "x");
    assert_string_equal(f->machine, "m");
    assert_null(f->name);
    assert_null(f->source_url);
    assert_int_equal(f->pos.line, 3);
    assert_int_equal(f->pos.col, 22);
    assert_string_equal(f->pos.file, "dir/t.kdl");
    assert_ptr_equal(f->parent, &wf->root);
    vk_workflow_free(wf);
}

static int visit(void *ctx, const struct vk_wf_fragment *f, unsigned depth)
{
    char *s = ctx;
    char one[64];
    snprintf(one, sizeof(one), "%u:%s:%u ", depth, f->name ? f->name : "-", f->sequence);
    strcat(s, one);
    return 0;
}

static int stop_at_b(void *ctx, const struct vk_wf_fragment *f, unsigned depth)
{
    (void)ctx;
    (void)depth;
    return f->name && strcmp(f->name, "b") == 0 ? 42 : 0;
}

static void test_full(void **state)
{
    (void)state;
    const char *src = "version \"0.1\"\n"
                      "name \"ci\"\n"
                      "triggers \"push\" \"pull_request\"\n"
                      "chain {\n"
                      "    machine \"default\"\n"
                      "    env { NODE_ENV \"test\"; B \"2\" }\n"
                      "    fragment { run \"npm ci\"; name \"a\" }\n"
                      "    parallel {\n"
                      "        name \"p\"\n"
                      "        machine \"big\"\n"
                      "        fragment { run \"npm test\"; name \"b\" }\n"
                      "        fragment { run \"lint\"; machine \"small\"; name \"c\" }\n"
                      "        parallel { name \"q\"; fragment { name \"d\"; run \"x\" } }\n"
                      "    }\n"
                      "    fragment {\n"
                      "        name \"deploy\"\n"
                      "        condition \"$TRIGGER == 'push' && $BRANCH == 'main'\"\n"
                      "        run \"\"\"\n"
                      "            ./deploy.sh\n"
                      "            echo done\n"
                      "            \"\"\"\n"
                      "        timeout \"1h30m\"\n"
                      "        retry 2\n"
                      "        env { K \"v\" }\n"
                      "    }\n"
                      "}\n";
    struct vk_workflow *wf = load_ok(src);
    assert_string_equal(wf->name, "ci");
    assert_int_equal(wf->nenv, 2);
    assert_string_equal(wf->env[1].key, "B");
    assert_string_equal(wf->env[1].value, "2");
    assert_int_equal(wf->ntriggers, 2);
    assert_int_equal(vk_workflow_count_fragments(wf), 7);
    const struct vk_wf_fragment *p = &wf->root.children[1];
    assert_int_equal(p->type, VK_WF_GROUP);
    assert_true(p->is_parallel);
    assert_int_equal(p->sequence, 1);
    assert_string_equal(p->machine, "big");
    assert_string_equal(p->children[0].machine, "big");   /* nearest group's */
    assert_string_equal(p->children[1].machine, "small"); /* own */
    assert_string_equal(p->children[2].children[0].machine, "big");
    assert_true(p->children[2].is_parallel);
    const struct vk_wf_fragment *d = &wf->root.children[2];
    assert_int_equal(d->sequence, 2);
    assert_string_equal(d->machine, "default");
    assert_string_equal(d->run, "./deploy.sh\necho done");
    assert_int_equal(d->timeout_ms, 5400000);
    assert_int_equal(d->retries, 2);
    assert_int_equal(d->nenv, 1);
    assert_string_equal(d->condition_src, "$TRIGGER == 'push' && $BRANCH == 'main'");
    struct vk_cond_var v[] = {{"TRIGGER", "push"}, {"BRANCH", "main"}};
    struct vk_cond_vars vars = {v, 2};
    bool r = false;
    assert_int_equal(vk_cond_eval(d->condition, vk_cond_lookup_kv, &vars, &r), 0);
    assert_true(r);
    v[1].value = "dev";
    assert_int_equal(vk_cond_eval(d->condition, vk_cond_lookup_kv, &vars, &r), 0);
    assert_false(r);
    char order[256] = "";
    assert_int_equal(vk_workflow_walk(wf, visit, order), 0);
    assert_string_equal(order, "0:a:0 0:p:1 1:b:0 1:c:1 1:q:2 2:d:0 0:deploy:2 ");
    assert_int_equal(vk_workflow_walk(wf, stop_at_b, NULL), 42);
    vk_workflow_free(wf);
}

static void test_triggers_block(void **state)
{
    (void)state;
    const char *src =
        "version \"0.1\"\n"
        "triggers {\n"
        "    push { branches \"main\" \"releases/**\"; paths \"src/**\"; paths-ignore \"docs/**\" "
        "}\n"
        "    pull_request { types \"opened\" \"closed\"; branches \"main\" }\n"
        "    tag { patterns \"v*\"; ignore \"v*-rc*\" }\n"
        "    schedule cron=\"0 2 * * 1-5\" timezone=\"Europe/Amsterdam\"\n"
        "    schedule cron=\"@daily\"\n"
        "    manual { input \"environment\" { choice \"staging\" \"production\"; default "
        "\"staging\"; required #true; description \"where\" }; input \"x\" }\n"
        "}\n"
        "chain { machine \"m\"; fragment { run \"x\" } }\n";
    struct vk_workflow *wf = load_ok(src);
    assert_int_equal(wf->ntriggers, 6);
    const struct vk_wf_trigger *t = wf->triggers;
    assert_int_equal(t[0].branches.n, 2);
    assert_string_equal(t[0].branches.items[1], "releases/**");
    assert_string_equal(t[0].paths_ignore.items[0], "docs/**");
    assert_int_equal(t[1].types.n, 2);
    assert_string_equal(t[2].tags_ignore.items[0], "v*-rc*");
    assert_string_equal(t[3].cron, "0 2 * * 1-5");
    assert_string_equal(t[3].timezone, "Europe/Amsterdam");
    assert_null(t[4].timezone);
    assert_int_equal(t[5].ninputs, 2);
    assert_string_equal(t[5].inputs[0].name, "environment");
    assert_int_equal(t[5].inputs[0].choices.n, 2);
    assert_string_equal(t[5].inputs[0].default_value, "staging");
    assert_string_equal(t[5].inputs[0].description, "where");
    assert_true(t[5].inputs[0].required);
    assert_false(t[5].inputs[1].required);
    assert_int_equal(t[3].pos.line, 6);
    assert_int_equal(t[3].pos.col, 5);
    vk_workflow_free(wf);
}

static void test_default_name(void **state)
{
    (void)state;
    const char *src = HEAD "chain { machine \"m\"; fragment { run \"x\" } }\n";
    struct vk_workflow *wf = NULL;
    assert_int_equal(vk_workflow_load_buffer(src, strlen(src), NULL, NULL, &wf, NULL), 0);
    assert_string_equal(wf->name, "workflow");
    assert_string_equal(wf->file, "<input>");
    vk_workflow_free(wf);
    assert_int_equal(
        vk_workflow_load_buffer(src, strlen(src), "/a/b/deploy.prod.kdl", NULL, &wf, NULL), 0);
    assert_string_equal(wf->name, "deploy.prod");
    vk_workflow_free(wf);
}

#define C1 "chain { machine \"m\"; fragment { run \"x\" } }\n"

static const struct bad bads[] = {
    /* syntax */
    {"version \"0.1\n", VK_WF_ERR_SYNTAX, 1, 9, NULL},
    /* missing required */
    {"triggers \"push\"\n" C1, VK_WF_ERR_MISSING, 0, 0,
     "missing 'version': add version \"0.1\" at the top"},
    {"version \"0.1\"\n" C1, VK_WF_ERR_MISSING, 0, 0,
     "missing 'triggers': add for example triggers \"push\""},
    {HEAD, VK_WF_ERR_MISSING, 0, 0,
     "missing 'chain': add chain { machine \"…\"; fragment { run \"…\" } }"},
    {HEAD "chain { machine \"m\" }\n", VK_WF_ERR_MISSING, 3, 1,
     "'chain' holds no fragments; add fragment { run \"…\" }"},
    {HEAD "chain { machine \"m\"; fragment { name \"a\" } }\n", VK_WF_ERR_MISSING, 3, 22,
     "a fragment needs 'run' (a script) or 'from' (an import)"},
    {HEAD "chain { machine \"m\"; fragment }\n", VK_WF_ERR_MISSING, 3, 22,
     "'fragment' needs a block: fragment { run \"…\" }"},
    {HEAD "chain { machine \"m\"; parallel { name \"p\" } }\n", VK_WF_ERR_MISSING, 3, 22,
     "'parallel' holds no fragments"},
    {HEAD "chain { machine; fragment { run \"x\" } }\n", VK_WF_ERR_MISSING, 3, 9,
     "'machine' needs a value: machine \"…\""},
    /* no machine */
    {HEAD "chain {\n  fragment { run \"x\" }\n}\n", VK_WF_ERR_NO_MACHINE, 3, 1,
     "'chain' has no 'machine': add machine \"<group>\", the worker group that runs fragments "
     "without a machine of their own"},
    /* network */
    {HEAD "chain { machine \"m\"; fragment { run \"x\"; network \"yes\" } }\n",
     VK_WF_ERR_INVALID_VALUE, 3, 50,
     "'network' takes one boolean: #true (share the host network) or #false (none, the "
     "default)"},
    {HEAD "chain { machine \"m\"; fragment { run \"x\"; network } }\n", VK_WF_ERR_INVALID_VALUE, 3,
     42,
     "'network' takes one boolean: #true (share the host network) or #false (none, the "
     "default)"},
    {HEAD "chain { machine \"m\"; fragment { run \"x\"; network #true #false } }\n",
     VK_WF_ERR_INVALID_VALUE, 3, 56,
     "'network' takes one boolean: #true (share the host network) or #false (none, the "
     "default)"},
    {HEAD "chain { machine \"m\"; network #true; network #false; fragment { run \"x\" } }\n",
     VK_WF_ERR_DUPLICATE, 3, 37, "duplicate 'network' (first at line 3)"},
    {HEAD "chain { machine \"m\"; fragment { from \"a.kdl\"; network #true } }\n",
     VK_WF_ERR_EXCLUSIVE, 3, 47,
     "'network' cannot be used with 'from'; set it in the imported file"},
    {HEAD "chain { machine \"m\"; fragment { run \"x\"; checkout { depth 0 } } }\n",
     VK_WF_ERR_INVALID_VALUE, 3, 59,
     "'depth' takes one whole number from 1 to 1000000 (the commits of history checked out)"},
    {HEAD "chain { machine \"m\"; fragment { run \"x\"; checkout { tags #true } } }\n",
     VK_WF_ERR_UNKNOWN_NODE, 3, 53,
     "unknown node 'tags' in 'checkout'; expected: depth, ref, submodules, lfs"},
    /* checkout { submodules …; lfs … } and checkout #false (issue 12 item 7) */
    {HEAD "chain { machine \"m\"; fragment { run \"x\"; checkout { submodules \"all\" } } }\n",
     VK_WF_ERR_INVALID_VALUE, 3, 64,
     "'submodules' takes #true (the submodules of the repository), \"recursive\" (theirs too) "
     "or #false (none, the default)"},
    {HEAD "chain { machine \"m\"; fragment { run \"x\"; checkout { submodules } } }\n",
     VK_WF_ERR_INVALID_VALUE, 3, 53,
     "'submodules' takes #true (the submodules of the repository), \"recursive\" (theirs too) "
     "or #false (none, the default)"},
    {HEAD "chain { machine \"m\"; checkout { submodules #true; submodules #false }; "
          "fragment { run \"x\" } }\n",
     VK_WF_ERR_DUPLICATE, 3, 51, "duplicate 'submodules' (first at line 3)"},
    {HEAD "chain { machine \"m\"; fragment { run \"x\"; checkout { lfs \"yes\" } } }\n",
     VK_WF_ERR_INVALID_VALUE, 3, 57,
     "'lfs' takes one boolean: #true (fetch the Git LFS files) or #false (leave their "
     "pointers, the default)"},
    {HEAD "chain { machine \"m\"; fragment { run \"x\"; checkout #false { depth 1 } } }\n",
     VK_WF_ERR_EXCLUSIVE, 3, 58,
     "'checkout' takes either #false (no checkout) or a block, not both"},
    {HEAD "chain { machine \"m\"; checkout #true; fragment { run \"x\" } }\n",
     VK_WF_ERR_INVALID_VALUE, 3, 31,
     "'checkout' takes #false (no checkout at all) or a block checkout { depth …; ref …; "
     "submodules …; lfs … }"},
    {HEAD "chain { machine \"m\"; checkout \"no\"; fragment { run \"x\" } }\n",
     VK_WF_ERR_INVALID_VALUE, 3, 31,
     "'checkout' takes #false (no checkout at all) or a block checkout { depth …; ref …; "
     "submodules …; lfs … }"},
    {HEAD "chain { machine \"m\"; checkout #false #false; fragment { run \"x\" } }\n",
     VK_WF_ERR_INVALID_VALUE, 3, 38, "'checkout' takes one value, found 2"},
    {HEAD "chain { machine \"m\"; fragment { from \"a.kdl\"; checkout #false } }\n",
     VK_WF_ERR_EXCLUSIVE, 3, 47,
     "'checkout' cannot be used with 'from'; set it in the imported file"},
    {HEAD "chain { machine \"m\"; fragment { run \"x\"; checkout { ref \"main\" } } }\n",
     VK_WF_ERR_INVALID_VALUE, 3, 57,
     "'ref' takes \"merge\" (a pull request builds its head merged into its base, the default) "
     "or \"head\" (the head itself)"},
    /* unknown nodes */
    {HEAD "chain { machine \"m\"; fragment { run \"x\"; script \"y\" } }\n", VK_WF_ERR_UNKNOWN_NODE,
     3, 42,
     "unknown node 'script' in 'fragment'; expected one of: run, from, name, machine, "
     "condition, timeout, queue-timeout, retry, env, network, checkout, when, allow-failure, "
     "needs, matrix, secrets, secret-file, concurrency"},
    {HEAD "jobs {}\n" C1, VK_WF_ERR_UNKNOWN_NODE, 3, 1,
     "unknown node 'jobs'; expected one of: version, name, queue-timeout, "
     "triggers, chain"},
    {HEAD "chain { machine \"m\"; step { run \"x\" } }\n", VK_WF_ERR_UNKNOWN_NODE, 3, 22,
     "unknown node 'step' in 'chain'; expected one of: machine, env, network, checkout, secrets, "
     "secret-file, concurrency, fragment, parallel"},
    /* secrets */
    {HEAD "chain { machine \"m\"; secrets \"npm\"; fragment { run \"x\" } }\n",
     VK_WF_ERR_INVALID_VALUE, 3, 30,
     "'secrets' takes secret names as strings of [A-Z_][A-Z0-9_]* (for example \"NPM_TOKEN\")"},
    {HEAD "chain { machine \"m\"; fragment { run \"x\"; secret-file 1 } }\n",
     VK_WF_ERR_INVALID_VALUE, 3, 54,
     "'secret-file' takes secret names as strings of [A-Z_][A-Z0-9_]* (for example "
     "\"NPM_TOKEN\")"},
    {HEAD "chain { machine \"m\"; fragment { run \"x\"; secrets } }\n", VK_WF_ERR_MISSING, 3, 42,
     "'secrets' needs one or more secret names: secrets \"NPM_TOKEN\""},
    {HEAD "chain { machine \"m\"; fragment { run \"x\"; secrets \"A\"; secret-file \"A\" } }\n",
     VK_WF_ERR_DUPLICATE, 3, 67, "secret 'A' is named twice here (first at line 3)"},
    {HEAD "chain { machine \"m\"; fragment { from \"a.kdl\"; secrets \"A\" } }\n",
     VK_WF_ERR_EXCLUSIVE, 3, 47,
     "'secrets' cannot be used with 'from'; set it in the imported file"},
    {HEAD "chain { machine \"m\"; parallel { retry 1; fragment { run \"x\" } } }\n",
     VK_WF_ERR_UNKNOWN_NODE, 3, 33,
     "unknown node 'retry' in 'parallel'; expected one of: fragment, parallel, name, machine, "
     "condition, max-parallel, fail-fast, when, allow-failure, needs, matrix"},
    {HEAD "fragment { run \"x\" }\n" C1, VK_WF_ERR_UNKNOWN_NODE, 3, 1,
     "'fragment' must be inside 'chain' (only fragment files, which are imported, hold "
     "fragments at the top level)"},
    /* invalid values */
    {"version 0.1\ntriggers \"push\"\n" C1, VK_WF_ERR_INVALID_VALUE, 1, 9,
     "'version' must be a string: version \"0.1\""},
    {"version \"0.2\"\ntriggers \"push\"\n" C1, VK_WF_ERR_INVALID_VALUE, 1, 9,
     "unsupported version '0.2'; expected \"0.1\""},
    {HEAD "chain { machine \"m\"; fragment { run \"  \" } }\n", VK_WF_ERR_INVALID_VALUE, 3, 37,
     "'run' cannot be empty"},
    {HEAD "chain { machine \"m\"; fragment { run 5 } }\n", VK_WF_ERR_INVALID_VALUE, 3, 37,
     "'run' takes a string, not integer"},
    {HEAD "chain { machine \"m\"; fragment { run \"a\" \"b\" } }\n", VK_WF_ERR_INVALID_VALUE, 3, 41,
     "'run' takes one value, found 2"},
    {HEAD "chain { machine \"m\"; fragment { run \"a\"; retry 11 } }\n", VK_WF_ERR_INVALID_VALUE, 3,
     48, "'retry' takes one whole number from 0 to 10"},
    {HEAD "chain { machine \"m\"; fragment { run \"a\"; retry \"1\" } }\n", VK_WF_ERR_INVALID_VALUE,
     3, 48, "'retry' takes one whole number from 0 to 10"},
    {HEAD "chain { machine \"m\"; fragment { run \"a\"; timeout \"10 parsecs\" } }\n",
     VK_WF_ERR_INVALID_VALUE, 3, 50,
     "invalid timeout '10 parsecs'; expected a duration from 1s to 7 days such as \"90s\", "
     "\"10m\" or \"1h30m\""},
    {HEAD "chain { machine \"m\"; fragment { run \"a\"; timeout 600 } }\n", VK_WF_ERR_INVALID_VALUE,
     3, 50, "'timeout' takes a duration string such as \"10m\" or \"1h30m\", not integer"},
    {HEAD "chain { machine \"m\"; fragment \"x\" { run \"a\" } }\n", VK_WF_ERR_INVALID_VALUE, 3, 31,
     "'fragment' takes no arguments"},
    {HEAD "chain { machine \"m\"; fragment { run \"a\" x=1 } }\n", VK_WF_ERR_INVALID_VALUE, 3, 41,
     "'run' takes no properties ('x=' is not allowed)"},
    {HEAD "chain { machine \"m\"; env { \"1X\" \"a\" }; fragment { run \"a\" } }\n",
     VK_WF_ERR_INVALID_VALUE, 3, 28,
     "invalid environment variable name '1X' (letters, digits and '_', not starting with a "
     "digit)"},
    {HEAD "chain { machine \"m\"; env { X 1 }; fragment { run \"a\" } }\n", VK_WF_ERR_INVALID_VALUE,
     3, 30, "'X' takes a string, not integer"},
    /* duplicates */
    {HEAD "chain { machine \"m\"; fragment { run \"a\"; run \"b\" } }\n", VK_WF_ERR_DUPLICATE, 3,
     42, "duplicate 'run' (first at line 3)"},
    {HEAD "chain {\n machine \"m\"\n machine \"n\"\n fragment { run \"a\" } }\n",
     VK_WF_ERR_DUPLICATE, 5, 2, "duplicate 'machine' (first at line 4)"},
    {"version \"0.1\"\nversion \"0.1\"\ntriggers \"push\"\n" C1, VK_WF_ERR_DUPLICATE, 2, 1,
     "duplicate 'version' (first at line 1)"},
    {HEAD "chain { machine \"m\"; env { A \"1\"; A \"2\" }; fragment { run \"a\" } }\n",
     VK_WF_ERR_DUPLICATE, 3, 35, "environment variable 'A' is set twice (first at line 3)"},
    /* mutual exclusion */
    {HEAD "chain { machine \"m\"; fragment { run \"a\"; from \"b.kdl\" } }\n", VK_WF_ERR_EXCLUSIVE,
     3, 42, "a fragment has either 'run' or 'from', not both"},
    {HEAD "chain { machine \"m\"; fragment { from \"b.kdl\"; retry 1 } }\n", VK_WF_ERR_EXCLUSIVE, 3,
     47,
     "'retry' cannot be used with 'from'; set it in the imported "
     "file"},
    /* conditions: the column points inside the string */
    {HEAD "chain { machine \"m\"; fragment { run \"a\"; condition \"$A == 'x' &&\" } }\n",
     VK_WF_ERR_CONDITION, 3, 65,
     "invalid condition: expected a value ($VAR, 'text', '!' or '('), found the end of the "
     "condition"},
    {HEAD "chain { machine \"m\"; fragment { run \"a\"; condition \"always()\" } }\n",
     VK_WF_ERR_CONDITION, 3, 53,
     "invalid condition: 'always()': conditions have no functions; a fragment runs only when "
     "everything before it succeeded, and there is no way to run one after a failure or a cancel; "
     "compare variables instead, e.g. $BRANCH == 'main'"},
    {HEAD "chain { machine \"m\"; fragment { run \"a\"; condition \"$A = 'x'\" } }\n",
     VK_WF_ERR_CONDITION, 3, 56, "invalid condition: unexpected '='; expected '==' or '=~'"},
    {HEAD "chain { machine \"m\"; fragment { run \"a\"; condition \"\\\"é\\\" = 'x'\" } }\n",
     VK_WF_ERR_CONDITION, 3, 59, "invalid condition: unexpected '='; expected '==' or '=~'"},
    {HEAD "chain { machine \"m\"; fragment { run \"a\"; condition #\"$A = 'x'\"# } }\n",
     VK_WF_ERR_CONDITION, 3, 57, "invalid condition: unexpected '='; expected '==' or '=~'"},
    {HEAD "chain { machine \"m\"; parallel { condition \"(\"; fragment { run \"a\" } } }\n",
     VK_WF_ERR_CONDITION, 3, 45,
     "invalid condition: expected a value ($VAR, 'text', '!' or '('), found the end of the "
     "condition"},
    /* triggers */
    {"version \"0.1\"\ntriggers \"push\" \"cron\"\n" C1, VK_WF_ERR_TRIGGER, 2, 17,
     "unknown trigger 'cron': write schedule cron=\"…\""},
    /* issue 12: names of other CI systems get a hint, not only a list */
    {"version \"0.1\"\ntriggers \"push\" \"workflow_dispatch\"\n" C1, VK_WF_ERR_TRIGGER, 2, 17,
     "unknown trigger 'workflow_dispatch': a run by hand is 'manual' (manual { input … } for "
     "inputs)"},
    {"version \"0.1\"\ntriggers { workflow_dispatch }\n" C1, VK_WF_ERR_TRIGGER, 2, 12,
     "unknown trigger 'workflow_dispatch': a run by hand is 'manual' (manual { input … } for "
     "inputs)"},
    {"version \"0.1\"\ntriggers { push { branches \"main\"; tags \"v*\" } }\n" C1,
     VK_WF_ERR_UNKNOWN_NODE, 2, 36,
     "'tags' is not a push filter: tags are a trigger of their own, tag { patterns \"v*\"; "
     "ignore \"v*-rc*\" } beside push"},
    {"version \"0.1\"\ntriggers { commit }\n" C1, VK_WF_ERR_TRIGGER, 2, 12,
     "unknown trigger 'commit'; expected one of: push, pull_request, tag, schedule, manual, chain"},
    {"version \"0.1\"\ntriggers \"push\" \"push\"\n" C1, VK_WF_ERR_TRIGGER, 2, 17,
     "trigger 'push' is declared twice (first at line 2)"},
    {"version \"0.1\"\ntriggers 1\n" C1, VK_WF_ERR_TRIGGER, 2, 10,
     "a trigger must be a string, not integer; expected one of: push, pull_request, tag, "
     "schedule, manual, chain"},
    {"version \"0.1\"\ntriggers\n" C1, VK_WF_ERR_MISSING, 2, 1,
     "'triggers' names no trigger; expected one of: push, pull_request, tag, schedule, manual, "
     "chain"},
    {"version \"0.1\"\ntriggers { push { branches \"a\"; branches-ignore \"b\" } }\n" C1,
     VK_WF_ERR_TRIGGER, 2, 33,
     "'branches' and 'branches-ignore' cannot both filter one event; use 'branches' with '!' "
     "patterns instead"},
    {"version \"0.1\"\ntriggers { push { tag \"v*\" } }\n" C1, VK_WF_ERR_UNKNOWN_NODE, 2, 19,
     "unknown filter 'tag' in 'push'; expected one of: branches, branches-ignore, paths, "
     "paths-ignore"},
    {"version \"0.1\"\ntriggers { pull_request { types \"merged\" } }\n" C1, VK_WF_ERR_TRIGGER, 2,
     33,
     "unknown pull_request type 'merged'; expected one of: opened, synchronize, reopened, "
     "closed, edited, assigned, unassigned, labeled, unlabeled, ready_for_review, "
     "converted_to_draft, review_requested, review_request_removed, locked, unlocked"},
    {"version \"0.1\"\ntriggers { schedule cron=\"0 2 * * 8\" }\n" C1, VK_WF_ERR_TRIGGER, 2, 35,
     "invalid cron expression: day of week out of range: expected 0-7"},
    {"version \"0.1\"\ntriggers { schedule cron=\"0 2 * *\" }\n" C1, VK_WF_ERR_TRIGGER, 2, 33,
     "invalid cron expression: expected 5 cron fields (minute hour day-of-month month "
     "day-of-week), found 4"},
    {"version \"0.1\"\ntriggers { schedule cron=\"@daily\" timezone=\"Mars/Olympus\" }\n" C1,
     VK_WF_ERR_TRIGGER, 2, 44,
     "unknown time zone 'Mars/Olympus'; expected an IANA name such as 'Europe/Amsterdam' or "
     "'UTC'"},
    {"version \"0.1\"\ntriggers { schedule cron=\"@daily\" timezone=\"../../etc/passwd\" }\n" C1,
     VK_WF_ERR_TRIGGER, 2, 44,
     "unknown time zone '../../etc/passwd'; expected an IANA name such as 'Europe/Amsterdam' "
     "or 'UTC'"},
    {"version \"0.1\"\ntriggers { schedule timezone=\"UTC\" }\n" C1, VK_WF_ERR_MISSING, 2, 12,
     "'schedule' needs cron=\"…\" (for example cron=\"0 2 * * 1-5\")"},
    {"version \"0.1\"\ntriggers { schedule cron=\"@daily\" at=\"x\" }\n" C1, VK_WF_ERR_TRIGGER, 2,
     35, "unknown property 'at' of 'schedule'; expected one of: cron, timezone"},
    {"version \"0.1\"\ntriggers { manual { input \"e\" { choice \"a\"; default \"b\" } } }\n" C1,
     VK_WF_ERR_INVALID_VALUE, 2, 53, "default 'b' of input 'e' is not one of its choices"},
    {"version \"0.1\"\ntriggers { manual { input \"e\"; input \"e\" } }\n" C1, VK_WF_ERR_DUPLICATE,
     2, 32, "input 'e' is declared twice"},
    {"version \"0.1\"\ntriggers { manual { input \"e\" { required \"yes\" } } }\n" C1,
     VK_WF_ERR_INVALID_VALUE, 2, 42, "'required' takes one argument, #true or #false"},
    /* invalid URLs (no fetch happens) */
    {HEAD "chain { machine \"m\"; fragment { from \"ftp://x/y.kdl\" } }\n", VK_WF_ERR_INVALID_URL,
     3, 38,
     "unsupported import location 'ftp://x/y.kdl'; expected a relative path, file://, "
     "https:// or http://"},
    {HEAD "chain { machine \"m\"; fragment { from \"http://example.com/a.kdl\" } }\n",
     VK_WF_ERR_INVALID_URL, 3, 38, "plain http:// imports are not allowed; use https://"},
    {HEAD "chain { machine \"m\"; fragment { from \"https:///a.kdl\" } }\n", VK_WF_ERR_INVALID_URL,
     3, 38, "invalid URL 'https:///a.kdl'"},
    {HEAD "chain { machine \"m\"; fragment { from \"file://rel/a.kdl\" } }\n",
     VK_WF_ERR_INVALID_URL, 3, 38,
     "invalid file URL 'file://rel/a.kdl': expected file:///absolute/path"},
};

static void test_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < VK_ARRAY_LEN(bads); i++) {
        if (!bads[i].msg) {
            /* syntax errors: the KDL parser's message; check kind and position only */
            struct vk_workflow *wf = NULL;
            struct vk_wf_error e;
            vk_wf_error_init(&e);
            assert_int_equal(
                vk_workflow_load_buffer(bads[i].src, strlen(bads[i].src), "t.kdl", NULL, &wf, &e),
                VK_EPARSE);
            assert_int_equal(e.kind, VK_WF_ERR_SYNTAX);
            assert_int_equal(e.line, bads[i].line);
            assert_true(e.msg[0] != '\0');
            assert_non_null(strstr(e.rendered, "t.kdl:1:"));
            vk_wf_error_release(&e);
            continue;
        }
        if (getenv("VK_SHOW"))
            check_show(&bads[i]);
        else
            check_bad(&bads[i]);
    }
}

static void test_rendered(void **state)
{
    (void)state;
    const char *src = HEAD "chain {\n    machine \"m\"\n    fragment { run \"x\"; retry -1 }\n}\n";
    struct vk_workflow *wf = NULL;
    struct vk_wf_error e;
    vk_wf_error_init(&e);
    assert_int_equal(vk_workflow_load_buffer(src, strlen(src), "ci.kdl", NULL, &wf, &e), VK_EPARSE);
    assert_string_equal(e.rendered, "ci.kdl:5:31: error: 'retry' takes one whole number from 0 "
                                    "to 10\n"
                                    "    5 |     fragment { run \"x\"; retry -1 }\n"
                                    "      |                               ^\n");
    assert_string_equal(vk_wf_errkind_name(e.kind), "invalid value");
    vk_wf_error_release(&e);
    assert_null(e.rendered);
}

static void test_limits(void **state)
{
    (void)state;
    const char *src = HEAD "chain { machine \"m\"; fragment { run \"a\" }; fragment { run \"b\" }; "
                           "fragment { run \"c\" } }\n";
    struct vk_wf_options o;
    memset(&o, 0, sizeof(o));
    o.max_fragments = 2;
    struct vk_workflow *wf = NULL;
    struct vk_wf_error e;
    vk_wf_error_init(&e);
    assert_int_equal(vk_workflow_load_buffer(src, strlen(src), "t.kdl", &o, &wf, &e), VK_ETOOBIG);
    assert_int_equal(e.kind, VK_WF_ERR_LIMIT);
    assert_string_equal(e.msg, "too many fragments: the limit is 2");
    assert_int_equal(e.col, 66);
    vk_wf_error_release(&e);
}

static void test_io_error(void **state)
{
    (void)state;
    struct vk_workflow *wf = NULL;
    struct vk_wf_error e;
    vk_wf_error_init(&e);
    assert_int_equal(vk_workflow_load_file("/nonexistent/x.kdl", NULL, &wf, &e), VK_EIO);
    assert_int_equal(e.kind, VK_WF_ERR_IO);
    assert_int_equal(e.line, 0);
    assert_string_equal(e.file, "/nonexistent/x.kdl");
    assert_non_null(strstr(e.rendered, "/nonexistent/x.kdl: error: "));
    vk_wf_error_release(&e);
}

static void test_alloc_failure(void **state)
{
    (void)state;
    const char *src = "version \"0.1\"\ntriggers { push { branches \"main\" }; manual { input "
                      "\"a\" { choice \"x\" } } }\n"
                      "chain { machine \"m\"; env { A \"1\" }\n"
                      "fragment { run \"a\"; condition \"$A == 'x' || !$B\" }\n"
                      "parallel { fragment { run \"b\" }; fragment { run \"c\"; env { X \"y\" } } }"
                      " }\n";
    bool done = false;
    for (unsigned long n = 1; n < 400 && !done; n++) {
        struct vk_workflow *wf = NULL;
        struct vk_wf_error e;
        vk_wf_error_init(&e);
        vk_mem_fail_after(n);
        int rc = vk_workflow_load_buffer(src, strlen(src), "t.kdl", NULL, &wf, &e);
        vk_mem_fail_after(0);
        if (rc == 0) {
            done = true;
        } else {
            assert_int_equal(rc, VK_ENOMEM);
            assert_null(wf);
        }
        vk_workflow_free(wf);
        vk_wf_error_release(&e);
    }
    assert_true(done);
}

/* `network`: chain default, fragment override, inherited through parallel and imports. */
static void test_network(void **state)
{
    (void)state;
    struct vk_workflow *wf = load_ok(HEAD "chain {\n"
                                          "    machine \"m\"\n"
                                          "    network #true\n"
                                          "    fragment { run \"a\" }\n"
                                          "    fragment { run \"b\"; network #false }\n"
                                          "    parallel { fragment { run \"c\" } }\n"
                                          "}\n");
    assert_true(wf->network);
    assert_true(wf->root.children[0].network);
    assert_false(wf->root.children[1].network);
    assert_true(wf->root.children[2].children[0].network);
    vk_workflow_free(wf);
    wf = load_ok(HEAD "chain { machine \"m\"; fragment { run \"a\" }; fragment { run \"b\"; "
                      "network #true } }\n");
    assert_false(wf->network);
    assert_false(wf->root.children[0].network);
    assert_true(wf->root.children[1].network);
    vk_workflow_free(wf);
    /* checkout { depth N }: the chain's, overridden by a fragment's */
    wf = load_ok(HEAD "chain { machine \"m\"; checkout { depth 5 }; fragment { run \"a\" }; "
                      "fragment { run \"b\"; checkout { depth 1 } } }\n");
    assert_int_equal(wf->checkout_depth, 5);
    assert_int_equal(wf->root.children[0].checkout_depth, 5);
    assert_int_equal(wf->root.children[1].checkout_depth, 1);
    vk_workflow_free(wf);
}

/* `matrix`: the product of the axes, exclude and include, names, {matrix.KEY} and
 * MATRIX_<KEY>, a matrix of a parallel group, and the errors (issue 17). */
static const char *matrix_env(const struct vk_wf_fragment *f, const char *key)
{
    for (size_t i = 0; i < f->nenv; i++)
        if (strcmp(f->env[i].key, key) == 0)
            return f->env[i].value;
    return NULL;
}

static void test_matrix(void **state)
{
    (void)state;
    struct vk_workflow *wf =
        load_ok(HEAD "chain {\n"
                     "    machine \"m\"\n"
                     "    fragment {\n"
                     "        name \"test\"\n"
                     "        matrix {\n"
                     "            cc \"gcc\" \"clang\"\n"
                     "            os \"deb\" \"ubu\"\n"
                     "            exclude { cc \"clang\"; os \"ubu\"; }\n"
                     "            include { cc \"gcc\"; flags \"-O3\"; }\n"
                     "            include { cc \"tcc\"; os 12; }\n"
                     "        }\n"
                     "        machine \"{matrix.os}\"\n"
                     "        env { CC \"{matrix.cc}\"; MATRIX_OS \"mine\"; }\n"
                     "        run \"make CC={matrix.cc} {nomatrix.x}\"\n"
                     "    }\n"
                     "    parallel { name \"p-{matrix.n}\"; matrix { n 1 2; }\n"
                     "        fragment { run \"echo {matrix.n}\" } }\n"
                     "}\n");
    assert_int_equal(wf->root.nchildren, 2);
    const struct vk_wf_fragment *g = &wf->root.children[0];
    assert_int_equal(g->type, VK_WF_GROUP);
    assert_true(g->is_parallel);
    assert_true(g->is_matrix);
    assert_string_equal(g->name, "test");
    assert_int_equal(g->nchildren, 4);
    static const char *const names[] = {"test (gcc, deb, -O3)", "test (gcc, ubu, -O3)",
                                        "test (clang, deb)", "test (tcc, 12)"};
    static const char *const machines[] = {"deb", "ubu", "deb", "12"};
    static const char *const ccs[] = {"gcc", "gcc", "clang", "tcc"};
    for (size_t i = 0; i < 4; i++) {
        const struct vk_wf_fragment *c = &g->children[i];
        assert_int_equal(c->type, VK_WF_INLINE);
        assert_int_equal(c->sequence, i);
        assert_string_equal(c->name, names[i]);
        assert_string_equal(c->machine, machines[i]);
        assert_string_equal(matrix_env(c, "CC"), ccs[i]);
        assert_string_equal(matrix_env(c, "MATRIX_CC"), ccs[i]);
        assert_string_equal(matrix_env(c, "MATRIX_OS"), "mine"); /* its own env wins */
        char run[64];
        snprintf(run, sizeof(run), "make CC=%s {nomatrix.x}", ccs[i]);
        assert_string_equal(c->run, run);
        assert_string_equal(c->matrix[0].key, "cc");
        assert_string_equal(c->matrix[0].value, ccs[i]);
    }
    assert_null(matrix_env(&g->children[2], "MATRIX_FLAGS"));
    assert_string_equal(matrix_env(&g->children[0], "MATRIX_FLAGS"), "-O3");
    assert_int_equal(g->children[3].nmatrix, 2); /* an include of its own: cc and os only */
    /* A matrix of a parallel group: each copy is the group, its fragments get the values. */
    const struct vk_wf_fragment *p = &wf->root.children[1];
    assert_true(p->is_matrix);
    assert_int_equal(p->nchildren, 2);
    assert_string_equal(p->children[1].name, "p-2"); /* its name uses the matrix: kept */
    assert_true(p->children[1].is_parallel);
    assert_string_equal(p->children[1].children[0].run, "echo 2");
    assert_string_equal(matrix_env(&p->children[1].children[0], "MATRIX_N"), "2");
    assert_int_equal(vk_workflow_count_fragments(wf), 1 + 4 + 1 + 2 * 2);
    assert_int_equal(g->max_parallel, 0);
    assert_false(g->no_fail_fast);
    vk_workflow_free(wf);
    /* when and allow-failure, on fragments, groups and a matrix (its group too). */
    wf = load_ok(HEAD "chain { machine \"m\"; fragment { run \"a\"; when \"always\"; "
                      "allow-failure #true }\n"
                      "    parallel { when \"failure\"; fragment { run \"b\" } }\n"
                      "    fragment { matrix { x 1 2; }; run \"c\"; when \"failure\" }\n"
                      "    fragment { run \"d\"; when \"success\"; allow-failure #false } }\n");
    assert_int_equal(wf->root.children[0].when, VK_WF_WHEN_ALWAYS);
    assert_true(wf->root.children[0].allow_failure);
    assert_int_equal(wf->root.children[1].when, VK_WF_WHEN_FAILURE);
    assert_int_equal(wf->root.children[1].children[0].when, VK_WF_WHEN_SUCCESS);
    assert_int_equal(wf->root.children[2].when, VK_WF_WHEN_FAILURE);
    assert_int_equal(wf->root.children[2].children[1].when, VK_WF_WHEN_FAILURE);
    assert_int_equal(wf->root.children[3].when, VK_WF_WHEN_SUCCESS);
    assert_false(wf->root.children[3].allow_failure);
    vk_workflow_free(wf);
    static const struct bad policy_bad[] = {
        {HEAD "chain { machine \"m\"; fragment { run \"a\"; when \"sometimes\" } }\n",
         VK_WF_ERR_INVALID_VALUE, 3, 47,
         "'when' takes \"success\", \"failure\" or \"always\", not 'sometimes'"},
        {HEAD "chain { machine \"m\"; fragment { run \"a\"; allow-failure \"yes\" } }\n",
         VK_WF_ERR_INVALID_VALUE, 3, 56, "'allow-failure' takes #true or #false"},
        {HEAD "chain { machine \"m\"; fragment { run \"a\"; when \"always\"; when \"always\" } }\n",
         VK_WF_ERR_DUPLICATE, 3, 57, "duplicate 'when' (first at line 3)"},
    };
    for (size_t i = 0; i < VK_ARRAY_LEN(policy_bad); i++)
        check_bad(&policy_bad[i]);
    wf = load_ok(HEAD
                 "chain { machine \"m\"; fragment { matrix { n 1 2 3; max-parallel 2; "
                 "fail-fast #false; }; run \"x\" }\n"
                 "    parallel { max-parallel 1; fail-fast #true; fragment { run \"a\" } } }\n");
    assert_int_equal(wf->root.children[0].max_parallel, 2);
    assert_true(wf->root.children[0].no_fail_fast);
    assert_int_equal(wf->root.children[0].nchildren, 3);
    assert_int_equal(wf->root.children[0].children[0].max_parallel,
                     0); /* the group's, not a copy's */
    assert_int_equal(wf->root.children[1].max_parallel, 1);
    assert_false(wf->root.children[1].no_fail_fast);
    vk_workflow_free(wf);

    static const struct bad bad[] = {
        {HEAD "chain { machine \"m\"; fragment { matrix { cc \"a\"; }; run \"{matrix.os}\" } }\n",
         VK_WF_ERR_INVALID_VALUE, 3, 58, "unknown matrix variable 'os'; this matrix has: cc"},
        {HEAD "chain { machine \"m\"; fragment { matrix { cc \"a\" \"a\"; }; run \"x\" } }\n",
         VK_WF_ERR_DUPLICATE, 3, 49, "matrix axis 'cc' has the value 'a' twice"},
        {HEAD "chain { machine \"m\"; fragment { matrix { cc \"a\"; cc \"b\"; }; run \"x\" } }\n",
         VK_WF_ERR_DUPLICATE, 3, 50, "matrix axis 'cc' is given twice (first at line 3)"},
        {HEAD "chain { machine \"m\"; fragment { matrix { }; run \"x\" } }\n", VK_WF_ERR_MISSING, 3,
         33, "'matrix' needs at least one axis: matrix { cc \"gcc\" \"clang\" }"},
        {HEAD "chain { machine \"m\"; fragment { matrix { cc \"a\"; exclude { os \"x\"; } }; "
              "run \"x\" } }\n",
         VK_WF_ERR_INVALID_VALUE, 3, 60,
         "'exclude' names 'os', which is not an axis of the matrix"},
        {HEAD "chain { machine \"m\"; fragment { matrix { cc \"a\"; exclude { cc \"a\"; } }; "
              "run \"x\" } }\n",
         VK_WF_ERR_INVALID_VALUE, 3, 33, "the matrix has no combination left after 'exclude'"},
        {HEAD "chain { machine \"m\"; fragment { matrix { cc #true; }; run \"x\" } }\n",
         VK_WF_ERR_INVALID_VALUE, 3, 45,
         "matrix values of 'cc' are non-empty strings or whole numbers, not boolean"},
        {HEAD "chain { machine \"m\"; fragment { matrix { cc \"a\"; fail-fast 1; }; run \"x\" "
              "} }\n",
         VK_WF_ERR_INVALID_VALUE, 3, 60, "'fail-fast' takes #true or #false"},
        {HEAD "chain { machine \"m\"; fragment { matrix { cc \"a\"; max-parallel 0; }; run \"x\" "
              "} }\n",
         VK_WF_ERR_INVALID_VALUE, 3, 63, "'max-parallel' takes one whole number from 1 to 256"},
        {HEAD "chain { machine \"m\"; parallel { max-parallel 2; max-parallel 3; fragment { run "
              "\"x\" } } }\n",
         VK_WF_ERR_DUPLICATE, 3, 49, "duplicate 'max-parallel' (first at line 3)"},
        {HEAD "chain { machine \"m\"; parallel { matrix { a \"1\"; }; fragment { matrix { b "
              "\"2\"; }; run \"x\" } } }\n",
         VK_WF_ERR_INVALID_VALUE, 3, 63,
         "a matrix cannot be inside another matrix: put the axes together in one 'matrix'"},
        {HEAD "chain { machine \"m\"; fragment { matrix { a \"1\"; }; matrix { b \"2\"; }; run "
              "\"x\" } }\n",
         VK_WF_ERR_DUPLICATE, 3, 52, "'matrix' is given twice (first at line 3)"},
    };
    for (size_t i = 0; i < VK_ARRAY_LEN(bad); i++) {
        check_bad(&bad[i]);
    }
    /* More than VK_WF_MAX_MATRIX copies. */
    struct vk_buf big = VK_BUF_INIT(VK_MAX_SMALL);
    assert_int_equal(vk_buf_adds(&big, HEAD "chain { machine \"m\"; fragment { matrix {"), 0);
    for (int axis = 0; axis < 3; axis++) {
        assert_int_equal(vk_buf_addf(&big, " a%d", axis), 0);
        for (int v = 0; v < 7; v++)
            assert_int_equal(vk_buf_addf(&big, " \"%d\"", v), 0);
        assert_int_equal(vk_buf_adds(&big, ";"), 0);
    }
    assert_int_equal(vk_buf_adds(&big, " }; run \"x\" } }\n"), 0);
    struct vk_workflow *none = NULL;
    struct vk_wf_error e;
    vk_wf_error_init(&e);
    assert_int_equal(vk_workflow_load_buffer(big.data, big.len, "t.kdl", NULL, &none, &e),
                     VK_ETOOBIG);
    assert_int_equal(e.kind, VK_WF_ERR_LIMIT);
    assert_string_equal(e.msg, "the matrix makes more than 256 copies");
    vk_wf_error_release(&e);
    vk_buf_release(&big);
    /* 256 copies of a 100 KiB script: 25 MiB from a 100 KiB document, refused. */
    struct vk_buf wide = VK_BUF_INIT(VK_MAX_FILE);
    assert_int_equal(vk_buf_adds(&wide, HEAD "chain { machine \"m\"; fragment { matrix { a"), 0);
    for (int v = 0; v < 16; v++)
        assert_int_equal(vk_buf_addf(&wide, " \"%d\"", v), 0);
    assert_int_equal(vk_buf_adds(&wide, "; b"), 0);
    for (int v = 0; v < 16; v++)
        assert_int_equal(vk_buf_addf(&wide, " \"%d\"", v), 0);
    assert_int_equal(vk_buf_adds(&wide, "; }; run \""), 0);
    for (int i = 0; i < 100 * 1024; i++)
        assert_int_equal(vk_buf_addch(&wide, 'x'), 0);
    assert_int_equal(vk_buf_adds(&wide, "\" } }\n"), 0);
    vk_wf_error_init(&e);
    assert_int_equal(vk_workflow_load_buffer(wide.data, wide.len, "t.kdl", NULL, &none, &e),
                     VK_ETOOBIG);
    assert_int_equal(e.kind, VK_WF_ERR_LIMIT);
    assert_string_equal(e.msg, "the matrix copies hold more than 16 MiB of text");
    vk_wf_error_release(&e);
    vk_buf_release(&wide);
}

/* checkout { submodules; lfs } and checkout #false: accepted forms, inheritance, and a
 * node's checkout replacing the inherited one as a whole (issue 12 item 7). */
static void test_checkout(void **state)
{
    (void)state;
    struct vk_workflow *wf = load_ok(HEAD "chain { machine \"m\"; fragment { run \"a\" } }\n");
    assert_int_equal(wf->root.children[0].checkout_submodules, VK_WF_SUBMODULES_NONE);
    assert_false(wf->root.children[0].checkout_lfs);
    assert_false(wf->root.children[0].checkout_none);
    vk_workflow_free(wf);
    wf = load_ok(HEAD "chain {\n"
                      "    machine \"m\"\n"
                      "    checkout { depth 3; submodules #true; lfs #true; }\n"
                      "    fragment { run \"a\" }\n"
                      "    fragment { run \"b\"; checkout { submodules \"recursive\" } }\n"
                      "    fragment { run \"c\"; checkout #false }\n"
                      "    parallel { fragment { run \"d\" } }\n"
                      "    fragment { run \"e\"; checkout { submodules #false; lfs #false } }\n"
                      "}\n");
    assert_int_equal(wf->checkout_submodules, VK_WF_SUBMODULES_ON);
    assert_true(wf->checkout_lfs);
    assert_false(wf->checkout_none);
    const struct vk_wf_fragment *a = &wf->root.children[0], *b = &wf->root.children[1],
                                *c = &wf->root.children[2], *d = &wf->root.children[3].children[0],
                                *e = &wf->root.children[4];
    assert_int_equal(a->checkout_submodules, VK_WF_SUBMODULES_ON);
    assert_true(a->checkout_lfs);
    assert_int_equal(a->checkout_depth, 3);
    /* b's block replaces the chain's: no lfs, full history */
    assert_int_equal(b->checkout_submodules, VK_WF_SUBMODULES_RECURSIVE);
    assert_false(b->checkout_lfs);
    assert_int_equal(b->checkout_depth, 0);
    assert_true(c->checkout_none);
    assert_int_equal(c->checkout_submodules, VK_WF_SUBMODULES_NONE);
    assert_false(c->checkout_lfs);
    assert_int_equal(d->checkout_submodules, VK_WF_SUBMODULES_ON);
    assert_true(d->checkout_lfs);
    assert_false(d->checkout_none);
    assert_int_equal(e->checkout_submodules, VK_WF_SUBMODULES_NONE);
    assert_false(e->checkout_lfs);
    vk_workflow_free(wf);
    /* the chain's #false, a fragment's block checks out again */
    wf = load_ok(HEAD "chain { machine \"m\"; checkout #false; fragment { run \"a\" }; "
                      "fragment { run \"b\"; checkout { depth 1 } } }\n");
    assert_true(wf->checkout_none);
    assert_true(wf->root.children[0].checkout_none);
    assert_false(wf->root.children[1].checkout_none);
    assert_int_equal(wf->root.children[1].checkout_depth, 1);
    vk_workflow_free(wf);
}

/* `secrets` and `secret-file`: the chain's reach every inline fragment (inside parallel
 * groups too), a fragment's own are added, and win for a name in both. */
static void test_secrets(void **state)
{
    (void)state;
    struct vk_workflow *wf =
        load_ok(HEAD "chain {\n machine \"m\"\n secrets \"NPM_TOKEN\" \"KUBE\"\n"
                     " fragment { run \"a\" }\n"
                     " fragment { run \"b\"; secret-file \"KUBE\"; secrets \"OWN_1\" }\n"
                     " parallel { fragment { run \"c\" } }\n}\n");
    assert_int_equal(wf->nsecrets, 2);
    const struct vk_wf_fragment *a = &wf->root.children[0], *b = &wf->root.children[1],
                                *c = &wf->root.children[2].children[0];
    assert_int_equal(a->nsecrets, 2);
    assert_string_equal(a->secrets[0].name, "NPM_TOKEN");
    assert_false(a->secrets[1].file);
    assert_int_equal(a->secrets[0].pos.line, 5);
    assert_int_equal(a->secrets[0].pos.col, 10);
    assert_int_equal(b->nsecrets, 3);
    assert_string_equal(b->secrets[0].name, "NPM_TOKEN");
    assert_string_equal(b->secrets[1].name, "KUBE");
    assert_true(b->secrets[1].file);
    assert_string_equal(b->secrets[2].name, "OWN_1");
    assert_int_equal(c->nsecrets, 2);
    vk_workflow_free(wf);
}

/* `needs`: resolution to nodes (a matrix by its name is its group), and the load errors:
 * unknown and ambiguous names, cycles through needs and through sequences, with places
 * (issue 17). */
static void test_needs(void **state)
{
    (void)state;
    struct vk_workflow *wf =
        load_ok(HEAD "chain { machine \"m\"\n"
                     "  parallel {\n"
                     "    fragment { name \"lint\"; run \"l\" }\n"
                     "    fragment { name \"b\"; matrix { cc \"gcc\" \"clang\" }; "
                     "needs \"lint\"; run \"x\" }\n"
                     "    fragment { name \"rel\"; needs \"b\" \"lint\"; run \"r\" }\n"
                     "  }\n"
                     "  fragment { name \"after\"; needs \"rel\"; run \"a\" }\n"
                     "}\n");
    const struct vk_wf_fragment *p = &wf->root.children[0], *lint = &p->children[0],
                                *b = &p->children[1], *rel = &p->children[2];
    assert_true(b->is_matrix);
    assert_int_equal(b->nneeds, 1); /* on the matrix group, not on its copies */
    assert_ptr_equal(b->needs_frag[0], lint);
    assert_int_equal(b->children[0].nneeds, 0);
    assert_int_equal(rel->nneeds, 2);
    assert_ptr_equal(rel->needs_frag[0], b);
    assert_ptr_equal(rel->needs_frag[1], lint);
    assert_int_equal(rel->needs_pos[1].line, 7);
    assert_int_equal(rel->needs_pos[1].col, 38);
    assert_int_equal(wf->root.children[1].needs_frag[0]->index, rel->index);
    assert_int_equal(lint->index, 1);
    assert_int_equal(rel->index, 5);
    vk_workflow_free(wf);
    /* Duplicate names are fine while nothing needs them. */
    wf = load_ok(HEAD "chain { machine \"m\"; fragment { name \"x\"; run \"1\" }; fragment { name "
                      "\"x\"; run \"2\" } }\n");
    vk_workflow_free(wf);
#define P3 HEAD "chain { machine \"m\"; parallel { "
    const struct bad bad[] = {
        {HEAD "chain { machine \"m\"; fragment { name \"a\"; needs \"zz\"; run \"x\" } }\n",
         VK_WF_ERR_INVALID_VALUE, 3, 49,
         "unknown fragment 'zz' in 'needs': no fragment or group of this chain is named so"},
        {HEAD "chain { machine \"m\"; fragment { name \"a\"; needs \"a\"; run \"x\" } }\n",
         VK_WF_ERR_CYCLE, 3, 49, "needs cycle: `a` needs `a`"},
        {HEAD "chain { machine \"m\"; fragment { name \"a\"; needs \"b\"; run \"x\" }\n"
              "fragment { name \"b\"; run \"y\" } }\n",
         VK_WF_ERR_CYCLE, 3, 49,
         "needs cycle: `b` comes after `a` in its sequence → `a` needs `b`"},
        {P3 "fragment { name \"a\"; needs \"c\"; run \"x\" }\n"
            "fragment { name \"b\"; needs \"a\"; run \"x\" }\n"
            "fragment { name \"c\"; needs \"b\"; run \"x\" } } }\n",
         VK_WF_ERR_CYCLE, 4, 28, "needs cycle: `b` needs `a` → `c` needs `b` → `a` needs `c`"},
        {HEAD "chain { machine \"m\"; parallel { name \"g\"; needs \"k\"; fragment { name \"k\"; "
              "run \"x\" } } }\n",
         VK_WF_ERR_CYCLE, 3, 49, "needs cycle: `k` is inside `g` → `g` needs `k`"},
        {HEAD "chain { machine \"m\"; fragment { name \"x\"; run \"1\" }\n"
              "fragment { name \"x\"; run \"2\" }\nfragment { needs \"x\"; run \"3\" } }\n",
         VK_WF_ERR_DUPLICATE, 5, 18,
         "'needs' names 'x', which more than one fragment is named (t.kdl:3 and t.kdl:4); a "
         "name that 'needs' refers to must be unique in the chain"},
        {HEAD "chain { machine \"m\"; fragment { name \"a\"; needs \"b\" \"b\"; run \"x\" } }\n",
         VK_WF_ERR_DUPLICATE, 3, 53, "'needs' names 'b' twice"},
        {HEAD "chain { machine \"m\"; fragment { name \"a\"; needs; run \"x\" } }\n",
         VK_WF_ERR_MISSING, 3, 43, "'needs' needs at least one value: needs \"…\""},
        {HEAD "chain { machine \"m\"; fragment { needs \"b\"; needs \"c\"; run \"x\" } }\n",
         VK_WF_ERR_DUPLICATE, 3, 44,
         "duplicate 'needs' (first at line 3): list every name in one needs \"a\" \"b\""},
        {HEAD "chain { machine \"m\"; fragment { name \"b\"; run \"y\" }; parallel { max-parallel "
              "1; fragment { needs \"b\"; run \"x\" } } }\n",
         VK_WF_ERR_INVALID_VALUE, 3, 98,
         "'needs' cannot be used on a child of a group with max-parallel ('parallel'): put it on "
         "the group"},
    };
#undef P3
    for (size_t i = 0; i < VK_ARRAY_LEN(bad); i++)
        check_bad(&bad[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_minimal),        cmocka_unit_test(test_full),
        cmocka_unit_test(test_triggers_block), cmocka_unit_test(test_default_name),
        cmocka_unit_test(test_errors),         cmocka_unit_test(test_rendered),
        cmocka_unit_test(test_limits),         cmocka_unit_test(test_io_error),
        cmocka_unit_test(test_alloc_failure),  cmocka_unit_test(test_network),
        cmocka_unit_test(test_checkout),       cmocka_unit_test(test_matrix),
        cmocka_unit_test(test_secrets),        cmocka_unit_test(test_needs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
