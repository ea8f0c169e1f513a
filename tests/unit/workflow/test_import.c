/*
 * Imports: relative paths, file:// URLs, --base-path, cycles, limits, the
 * fetcher interface, and http:// imports from a real libmicrohttpd server on
 * 127.0.0.1 (good, nested, redirected, slow past the time limit, oversized).
 */
#include "vk_test.h"
#include "vulcan/workflow.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmpdir[256];
static char oldcwd[1024];

static void put(const char *name, const char *text)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    char *slash = strrchr(path, '/');
    *slash = '\0';
    mkdir(path, 0700);
    *slash = '/';
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/vk-wf-import-XXXXXX");
    if (!mkdtemp(tmpdir) || !getcwd(oldcwd, sizeof(oldcwd)) || chdir(tmpdir) != 0)
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[600];
    if (chdir(oldcwd) != 0)
        return -1;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

#define WF(chain) "version \"0.1\"\ntriggers \"push\"\nchain {\n    machine \"m\"\n" chain "}\n"

static int load(const char *file, const struct vk_wf_options *o, struct vk_workflow **wf,
                struct vk_wf_error *e)
{
    vk_wf_error_init(e);
    return vk_workflow_load_file(file, o, wf, e);
}

static void test_relative(void **state)
{
    (void)state;
    put("ci.kdl", WF("    fragment { run \"a\" }\n"
                     "    fragment { from \"frag/x.kdl\"; name \"x\"; machine \"big\"; condition "
                     "\"$B == 'main'\" }\n"));
    put("frag/x.kdl", "fragment { run \"x1\" }\nparallel {\n    fragment { from \"y.kdl\" }\n    "
                      "fragment { run \"x2\"; machine \"own\" }\n}\n");
    put("frag/y.kdl", "fragment { run \"y1\" }\n");
    struct vk_workflow *wf = NULL;
    struct vk_wf_error e;
    if (load("ci.kdl", NULL, &wf, &e) != 0)
        fail_msg("%s", e.rendered);
    assert_int_equal(vk_workflow_count_fragments(wf), 7);
    const struct vk_wf_fragment *g = &wf->root.children[1];
    assert_int_equal(g->type, VK_WF_GROUP);
    assert_false(g->is_parallel);
    assert_int_equal(g->sequence, 1);
    assert_string_equal(g->name, "x");
    assert_string_equal(g->import_from, "frag/x.kdl");
    assert_string_equal(g->condition_src, "$B == 'main'");
    assert_null(g->source_url);
    assert_int_equal(g->nchildren, 2);
    assert_string_equal(g->children[0].run, "x1");
    assert_string_equal(g->children[0].machine, "big");
    assert_string_equal(g->children[0].source_url, "frag/x.kdl");
    assert_string_equal(g->children[0].pos.file, "frag/x.kdl");
    assert_int_equal(g->children[0].pos.line, 1);
    const struct vk_wf_fragment *p = &g->children[1];
    assert_true(p->is_parallel);
    assert_string_equal(p->children[0].children[0].run, "y1");
    assert_string_equal(p->children[0].children[0].source_url, "frag/y.kdl");
    assert_string_equal(p->children[0].children[0].machine, "big");
    assert_string_equal(p->children[1].machine, "own");
    vk_workflow_free(wf);

    /* the same through an absolute file:// URL and an absolute path */
    char text[1024];
    snprintf(text, sizeof(text),
             WF("    fragment { from \"file://%s/frag/y.kdl\" }\n"
                "    fragment { from \"%s/frag/y.kdl\" }\n"),
             tmpdir, tmpdir);
    put("abs.kdl", text);
    if (load("abs.kdl", NULL, &wf, &e) != 0)
        fail_msg("%s", e.rendered);
    char want[512];
    snprintf(want, sizeof(want), "%s/frag/y.kdl", tmpdir);
    assert_string_equal(wf->root.children[0].children[0].source_url, want);
    assert_string_equal(wf->root.children[1].children[0].source_url, want);
    vk_workflow_free(wf);
}

static void test_base_path(void **state)
{
    (void)state;
    put("lib/z.kdl", "fragment { run \"z\" }\n");
    const char *src = WF("    fragment { from \"z.kdl\" }\n");
    struct vk_wf_options o;
    memset(&o, 0, sizeof(o));
    o.base_path = "lib";
    struct vk_workflow *wf = NULL;
    struct vk_wf_error e;
    vk_wf_error_init(&e);
    if (vk_workflow_load_buffer(src, strlen(src), "sub/w.kdl", &o, &wf, &e) != 0)
        fail_msg("%s", e.rendered);
    assert_string_equal(wf->root.children[0].children[0].source_url, "lib/z.kdl");
    vk_workflow_free(wf);
    /* without it the file's own directory is used, and there is no sub/z.kdl */
    assert_int_equal(vk_workflow_load_buffer(src, strlen(src), "sub/w.kdl", NULL, &wf, &e),
                     VK_ENOTFOUND);
    assert_int_equal(e.kind, VK_WF_ERR_FETCH);
    assert_string_equal(e.msg, "cannot import 'sub/z.kdl': no such file");
    assert_string_equal(e.file, "sub/w.kdl");
    assert_int_equal(e.line, 5);
    assert_int_equal(e.col, 21);
    vk_wf_error_release(&e);
}

static void test_cycles(void **state)
{
    (void)state;
    put("a.kdl", WF("    fragment { run \"a\" }\n    fragment { from \"b.kdl\" }\n"));
    put("b.kdl", "fragment { from \"c/../a.kdl\" }\n");
    struct vk_workflow *wf = NULL;
    struct vk_wf_error e;
    assert_int_equal(load("a.kdl", NULL, &wf, &e), VK_ECYCLE);
    assert_null(wf);
    assert_int_equal(e.kind, VK_WF_ERR_CYCLE);
    assert_string_equal(e.msg, "circular import: a.kdl \u2192 b.kdl \u2192 a.kdl");
    assert_string_equal(e.file, "b.kdl");
    assert_int_equal(e.line, 1);
    assert_int_equal(e.col, 17);
    assert_non_null(strstr(e.rendered, "b.kdl:1:17: error: circular import: a.kdl"));
    vk_wf_error_release(&e);

    /* a longer cycle that does not start at the top file */
    put("top.kdl", WF("    fragment { from \"p.kdl\" }\n"));
    put("p.kdl", "fragment { from \"q.kdl\" }\n");
    put("q.kdl", "fragment { from \"r.kdl\" }\n");
    put("r.kdl", "fragment { from \"./p.kdl\" }\n");
    assert_int_equal(load("top.kdl", NULL, &wf, &e), VK_ECYCLE);
    assert_string_equal(e.msg, "circular import: p.kdl \u2192 q.kdl \u2192 r.kdl \u2192 p.kdl");
    vk_wf_error_release(&e);

    /* self-import */
    put("self.kdl", WF("    fragment { from \"self.kdl\" }\n"));
    assert_int_equal(load("self.kdl", NULL, &wf, &e), VK_ECYCLE);
    assert_string_equal(e.msg, "circular import: self.kdl \u2192 self.kdl");
    vk_wf_error_release(&e);

    /* importing the same file twice side by side is not a cycle */
    put("twice.kdl", WF("    fragment { from \"q2.kdl\" }\n    fragment { from \"q2.kdl\" }\n"));
    put("q2.kdl", "fragment { run \"q\" }\n");
    assert_int_equal(load("twice.kdl", NULL, &wf, &e), 0);
    vk_workflow_free(wf);
}

static void test_imported_errors(void **state)
{
    (void)state;
    struct vk_workflow *wf = NULL;
    struct vk_wf_error e;
    put("i1.kdl", WF("    fragment { from \"bad1.kdl\" }\n"));
    put("bad1.kdl", "fragment { run \"x\" }\nversion \"0.1\"\n");
    assert_int_equal(load("i1.kdl", NULL, &wf, &e), VK_EPARSE);
    assert_int_equal(e.kind, VK_WF_ERR_UNKNOWN_NODE);
    assert_string_equal(e.file, "bad1.kdl");
    assert_int_equal(e.line, 2);
    assert_int_equal(e.col, 1);
    assert_string_equal(e.msg, "unknown node 'version' in an imported file; expected one of: "
                               "fragment, parallel, param");
    assert_non_null(strstr(e.rendered, "    2 | version \"0.1\"\n"));
    vk_wf_error_release(&e);

    put("i2.kdl", WF("    fragment { from \"bad2.kdl\" }\n"));
    put("bad2.kdl", "fragment { run \"x }\n");
    assert_int_equal(load("i2.kdl", NULL, &wf, &e), VK_EPARSE);
    assert_int_equal(e.kind, VK_WF_ERR_SYNTAX);
    assert_string_equal(e.file, "bad2.kdl");
    vk_wf_error_release(&e);

    put("i3.kdl", WF("    fragment { from \"empty.kdl\" }\n"));
    put("empty.kdl", "// nothing here\n");
    assert_int_equal(load("i3.kdl", NULL, &wf, &e), VK_EPARSE);
    assert_int_equal(e.kind, VK_WF_ERR_MISSING);
    assert_string_equal(e.file, "i3.kdl");
    assert_string_equal(e.msg, "imported file 'empty.kdl' holds no fragments");
    vk_wf_error_release(&e);

    put("i4.kdl", WF("    fragment { from \"frag\" }\n"));
    assert_int_equal(load("i4.kdl", NULL, &wf, &e), VK_EIO);
    assert_int_equal(e.kind, VK_WF_ERR_FETCH);
    assert_string_equal(e.msg, "cannot import 'frag': not a regular file");
    vk_wf_error_release(&e);

    /* fragments in imported files get the same checks */
    put("i5.kdl", WF("    fragment { from \"bad5.kdl\" }\n"));
    put("bad5.kdl", "fragment { run \"x\"; from \"y\" }\n");
    assert_int_equal(load("i5.kdl", NULL, &wf, &e), VK_EPARSE);
    assert_int_equal(e.kind, VK_WF_ERR_EXCLUSIVE);
    assert_string_equal(e.file, "bad5.kdl");
    vk_wf_error_release(&e);
}

/* `from "…" { with { … } }` fills the imported file's `{with.NAME}`; its `param`
 * declarations say which names exist and which have defaults. */
static void test_with(void **state)
{
    (void)state;
    put("p/test.kdl", "param \"target\"\nparam \"opt\" default=\"-O2\"\n"
                      "fragment {\n    name \"test {with.target}\"\n"
                      "    machine \"{with.target}\"\n    env { CFLAGS \"{with.opt}\" }\n"
                      "    run \"make TARGET={with.target} && echo {with.opt}\"\n}\n"
                      "fragment { from \"inner.kdl\" { with { who \"{with.target}-inner\" } } }\n");
    put("p/inner.kdl", "param \"who\"\nfragment { run \"echo {with.who}\" }\n");
    put("w.kdl",
        WF("    fragment { from \"p/test.kdl\" { with { target \"x86_64\" } } }\n"
           "    fragment { from \"p/test.kdl\" { with { target \"arm64\"; opt \"-O0\" } } }\n"
           "    fragment { run \"echo {with.kept}\" }\n"));
    struct vk_workflow *wf = NULL;
    struct vk_wf_error e;
    if (load("w.kdl", NULL, &wf, &e) != 0)
        fail_msg("%s", e.rendered);
    const struct vk_wf_fragment *a = &wf->root.children[0].children[0];
    assert_string_equal(a->name, "test x86_64");
    assert_string_equal(a->machine, "x86_64");
    assert_string_equal(a->run, "make TARGET=x86_64 && echo -O2");
    assert_int_equal(a->nenv, 1);
    assert_string_equal(a->env[0].value, "-O2");
    assert_string_equal(wf->root.children[0].children[1].children[0].run, "echo x86_64-inner");
    const struct vk_wf_fragment *b = &wf->root.children[1].children[0];
    assert_string_equal(b->name, "test arm64");
    assert_string_equal(b->run, "make TARGET=arm64 && echo -O0");
    assert_string_equal(wf->root.children[1].children[1].children[0].run, "echo arm64-inner");
    /* the top-level file is not an import: its braces are its own */
    assert_string_equal(wf->root.children[2].run, "echo {with.kept}");
    vk_workflow_free(wf);

    static const struct {
        const char *top, *file;
        unsigned line, col;
        enum vk_wf_errkind kind;
        const char *msg;
    } bad[] = {
        {"    fragment { from \"p/test.kdl\" }\n", "w2.kdl", 5, 21, VK_WF_ERR_MISSING,
         "'p/test.kdl' needs parameter 'target': from \"…\" { with { target \"…\" } }"},
        {"    fragment { from \"p/test.kdl\" { with { target \"x\"; arch \"y\" } } }\n", "w2.kdl",
         5, 55, VK_WF_ERR_INVALID_VALUE,
         "unknown parameter 'arch'; 'p/test.kdl' declares: target, opt"},
        {"    fragment { from \"p/test.kdl\" { with { target \"x\"; target \"y\" } } }\n", "w2.kdl",
         5, 55, VK_WF_ERR_DUPLICATE, "parameter 'target' given twice (first at line 5)"},
        {"    fragment { from \"p/test.kdl\" { using { target \"x\" } } }\n", "w2.kdl", 5, 36,
         VK_WF_ERR_UNKNOWN_NODE, "unknown node 'using' in 'from'; expected: with"},
        {"    fragment { from \"p/test.kdl\" { with { target 1 } } }\n", "w2.kdl", 5, 50,
         VK_WF_ERR_INVALID_VALUE, "'target' takes a string, not integer"},
        {"    fragment { from \"p/undeclared.kdl\" }\n", "p/undeclared.kdl", 1, 22,
         VK_WF_ERR_INVALID_VALUE, "unknown import variable 'x'; this import has: (none)"},
        {"    fragment { from \"p/badparam.kdl\" }\n", "p/badparam.kdl", 1, 7,
         VK_WF_ERR_INVALID_VALUE,
         "'param' takes one name: a letter or '_', then letters, digits, '_' or '-' (param "
         "\"target\" default=\"x86_64\")"},
        {"    fragment { from \"p/twice.kdl\" }\n", "p/twice.kdl", 2, 1, VK_WF_ERR_DUPLICATE,
         "parameter 'a' declared twice (first at line 1)"},
    };
    put("p/undeclared.kdl", "fragment { run \"echo {with.x}\" }\n");
    put("p/badparam.kdl", "param \"1x\"\nfragment { run \"true\" }\n");
    put("p/twice.kdl", "param \"a\" default=\"1\"\nparam \"a\"\nfragment { run \"true\" }\n");
    int failed = 0;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char text[1024];
        snprintf(text, sizeof(text), WF("%s"), bad[i].top);
        put("w2.kdl", text);
        assert_int_equal(load("w2.kdl", NULL, &wf, &e), VK_EPARSE);
        if (strcmp(e.msg, bad[i].msg) != 0 || strcmp(e.file, bad[i].file) != 0 ||
            e.line != bad[i].line || e.col != bad[i].col || e.kind != bad[i].kind) {
            print_message("case %zu: got %s:%u:%u (%d) %s\n", i, e.file, (unsigned)e.line,
                          (unsigned)e.col, (int)e.kind, e.msg);
            failed++;
        }
        vk_wf_error_release(&e);
    }
    assert_int_equal(failed, 0);
}

static void test_limits(void **state)
{
    (void)state;
    put("d0.kdl", WF("    fragment { from \"d1.kdl\" }\n"));
    put("d1.kdl", "fragment { from \"d2.kdl\" }\n");
    put("d2.kdl", "fragment { from \"d3.kdl\" }\n");
    put("d3.kdl", "fragment { run \"deep\" }\n");
    struct vk_wf_options o;
    memset(&o, 0, sizeof(o));
    struct vk_workflow *wf = NULL;
    struct vk_wf_error e;
    assert_int_equal(load("d0.kdl", &o, &wf, &e), 0);
    vk_workflow_free(wf);
    o.max_import_depth = 2;
    assert_int_equal(load("d0.kdl", &o, &wf, &e), VK_ETOOBIG);
    assert_int_equal(e.kind, VK_WF_ERR_LIMIT);
    assert_string_equal(e.msg, "imports nested deeper than 2 levels");
    assert_string_equal(e.file, "d2.kdl");
    vk_wf_error_release(&e);
    o.max_import_depth = 0;
    o.max_import_size = 10;
    assert_int_equal(load("d0.kdl", &o, &wf, &e), VK_ETOOBIG);
    assert_int_equal(e.kind, VK_WF_ERR_FETCH);
    assert_string_equal(e.msg, "cannot import 'd1.kdl': larger than 10 bytes");
    vk_wf_error_release(&e);
    o.max_import_size = 0;
    o.max_imports = 2;
    assert_int_equal(load("d0.kdl", &o, &wf, &e), VK_ETOOBIG);
    assert_string_equal(e.msg, "more than 2 imports");
    vk_wf_error_release(&e);
}

struct counting {
    int calls;
    char last[256];
};

static int counting_fetch(void *ctx, const struct vk_wf_fetch_req *req, struct vk_buf *out,
                          struct vk_err *err)
{
    struct counting *c = ctx;
    c->calls++;
    snprintf(c->last, sizeof(c->last), "%s", req->location);
    if (req->is_url)
        return vk_err_set(err, VK_EPERM, "only local imports");
    return vk_buf_adds(out, "fragment { run \"served\" }\n");
}

static void test_fetcher(void **state)
{
    (void)state;
    const char *src = WF("    fragment { from \"virtual/one.kdl\" }\n");
    struct counting c = {0, ""};
    struct vk_wf_options o;
    memset(&o, 0, sizeof(o));
    o.fetch = counting_fetch;
    o.fetch_ctx = &c;
    struct vk_workflow *wf = NULL;
    struct vk_wf_error e;
    vk_wf_error_init(&e);
    assert_int_equal(vk_workflow_load_buffer(src, strlen(src), "w.kdl", &o, &wf, &e), 0);
    assert_int_equal(c.calls, 1);
    assert_string_equal(c.last, "virtual/one.kdl");
    assert_string_equal(wf->root.children[0].children[0].run, "served");
    vk_workflow_free(wf);

    const char *src2 = WF("    fragment { from \"https://example.com/x.kdl\" }\n");
    assert_int_equal(vk_workflow_load_buffer(src2, strlen(src2), "w.kdl", &o, &wf, &e), VK_EPERM);
    assert_int_equal(e.kind, VK_WF_ERR_FETCH);
    assert_string_equal(e.msg, "import refused 'https://example.com/x.kdl': only local imports");
    vk_wf_error_release(&e);

    o.fetch = vk_wf_fetch_refuse;
    assert_int_equal(vk_workflow_load_buffer(src, strlen(src), "w.kdl", &o, &wf, &e), VK_EPERM);
    assert_string_equal(e.msg, "import refused 'virtual/one.kdl': imports are not allowed here");
    vk_wf_error_release(&e);
}

/* ---------------------------------------------------------------- HTTP */

static char big_body[2 * 1024 * 1024];

static enum MHD_Result serve(void *cls, struct MHD_Connection *conn, const char *url,
                             const char *method, const char *version, const char *upload,
                             size_t *upload_size, void **con_cls)
{
    (void)cls;
    (void)method;
    (void)version;
    (void)upload;
    (void)upload_size;
    (void)con_cls;
    const char *body = NULL;
    unsigned status = MHD_HTTP_OK;
    const char *location = NULL;
    if (strcmp(url, "/good.kdl") == 0) {
        body = "fragment { name \"remote\"; run \"echo remote\" }\n";
    } else if (strcmp(url, "/dir/nested.kdl") == 0) {
        body = "fragment { from \"../good.kdl\" }\nfragment { run \"nested\" }\n";
    } else if (strcmp(url, "/dir/local.kdl") == 0) {
        body = "fragment { from \"/etc/passwd\" }\n";
    } else if (strcmp(url, "/redirect") == 0) {
        status = MHD_HTTP_FOUND;
        location = "/good.kdl";
        body = "";
    } else if (strcmp(url, "/loop") == 0) {
        status = MHD_HTTP_FOUND;
        location = "/loop";
        body = "";
    } else if (strcmp(url, "/slow.kdl") == 0) {
        usleep(1500 * 1000);
        body = "fragment { run \"late\" }\n";
    } else if (strcmp(url, "/big.kdl") == 0) {
        struct MHD_Response *r =
            MHD_create_response_from_buffer(sizeof(big_body), big_body, MHD_RESPMEM_PERSISTENT);
        enum MHD_Result ok = MHD_queue_response(conn, MHD_HTTP_OK, r);
        MHD_destroy_response(r);
        return ok;
    } else {
        status = MHD_HTTP_NOT_FOUND;
        body = "not found";
    }
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_MUST_COPY);
    if (location)
        MHD_add_response_header(r, "Location", location);
    enum MHD_Result ok = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return ok;
}

static int http_load(const char *url, long timeout_ms, struct vk_workflow **wf,
                     struct vk_wf_error *e)
{
    char src[512];
    snprintf(src, sizeof(src), WF("    fragment { from \"%s\" }\n"), url);
    struct vk_wf_options o;
    memset(&o, 0, sizeof(o));
    o.allow_http = true;
    o.import_timeout_ms = timeout_ms;
    vk_wf_error_init(e);
    return vk_workflow_load_buffer(src, strlen(src), "w.kdl", &o, wf, e);
}

static void test_http(void **state)
{
    (void)state;
    memset(big_body, ' ', sizeof(big_body));
    memcpy(big_body, "fragment { run \"big\" }\n", 23);
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = 0;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    struct MHD_Daemon *d =
        MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0, NULL,
                         NULL, serve, NULL, MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_END);
    assert_non_null(d);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    assert_non_null(info);
    unsigned port = info->port;
    assert_true(port > 0);
    char url[256];
    struct vk_workflow *wf = NULL;
    struct vk_wf_error e;

    /* good */
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/good.kdl", port);
    if (http_load(url, 0, &wf, &e) != 0)
        fail_msg("%s", e.rendered);
    const struct vk_wf_fragment *f = &wf->root.children[0].children[0];
    assert_string_equal(f->name, "remote");
    assert_string_equal(f->source_url, url);
    assert_string_equal(f->pos.file, url);
    vk_workflow_free(wf);

    /* nested: relative import inside a fetched document resolves against its URL */
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/dir/nested.kdl", port);
    if (http_load(url, 0, &wf, &e) != 0)
        fail_msg("%s", e.rendered);
    f = &wf->root.children[0].children[0].children[0];
    char want[512];
    snprintf(want, sizeof(want), "http://127.0.0.1:%u/good.kdl", port);
    assert_string_equal(f->source_url, want);
    vk_workflow_free(wf);

    /* redirect followed */
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/redirect", port);
    assert_int_equal(http_load(url, 0, &wf, &e), 0);
    assert_string_equal(wf->root.children[0].children[0].name, "remote");
    vk_workflow_free(wf);

    /* a fetched document may not read local files */
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/dir/local.kdl", port);
    assert_int_equal(http_load(url, 0, &wf, &e), VK_EPARSE);
    assert_int_equal(e.kind, VK_WF_ERR_INVALID_URL);
    assert_string_equal(e.msg, "a document fetched from a URL can import only relative paths or "
                               "URLs, not '/etc/passwd'");
    vk_wf_error_release(&e);

    /* slow: longer than the time limit */
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/slow.kdl", port);
    int64_t t0 = vk_time_mono_ns();
    assert_int_equal(http_load(url, 300, &wf, &e), VK_ETIMEDOUT);
    assert_true(vk_time_mono_ns() - t0 < 1200 * 1000000LL);
    assert_int_equal(e.kind, VK_WF_ERR_FETCH);
    snprintf(want, sizeof(want), "cannot import '%s': no complete answer within 300 ms", url);
    assert_string_equal(e.msg, want);
    vk_wf_error_release(&e);

    /* oversized: 2 MiB against the default 1 MiB */
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/big.kdl", port);
    assert_int_equal(http_load(url, 0, &wf, &e), VK_ETOOBIG);
    assert_int_equal(e.kind, VK_WF_ERR_FETCH);
    snprintf(want, sizeof(want), "cannot import '%s': larger than 1048576 bytes", url);
    assert_string_equal(e.msg, want);
    vk_wf_error_release(&e);

    /* 404 and redirect loops */
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/nope.kdl", port);
    assert_int_equal(http_load(url, 0, &wf, &e), VK_ENOTFOUND);
    snprintf(want, sizeof(want), "cannot import '%s': the server answered HTTP 404", url);
    assert_string_equal(e.msg, want);
    vk_wf_error_release(&e);
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/loop", port);
    assert_int_equal(http_load(url, 0, &wf, &e), VK_EIO);
    snprintf(want, sizeof(want), "cannot import '%s': more than 3 redirects", url);
    assert_string_equal(e.msg, want);
    vk_wf_error_release(&e);

    MHD_stop_daemon(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_relative), cmocka_unit_test(test_base_path),
        cmocka_unit_test(test_cycles),   cmocka_unit_test(test_imported_errors),
        cmocka_unit_test(test_limits),   cmocka_unit_test(test_fetcher),
        cmocka_unit_test(test_http),     cmocka_unit_test(test_with),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
