/* vulcan kdl: format and check KDL 2.0 documents. */
#include "cli/cli.h"
#include "vulcan/kdl.h"
#include "vulcan/util.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

static const char kdl_usage[] =
    "usage: vulcan kdl <fmt|check> [options] FILE\n"
    "\n"
    "Work with KDL 2.0 documents (https://kdl.dev). FILE may be '-' for standard input.\n"
    "\n"
    "Commands:\n"
    "  fmt [--canonical] FILE   print the document formatted\n"
    "  check FILE...            parse the documents and report the first error of each\n"
    "\n"
    "Errors print as FILE:LINE:COL: error: MESSAGE with the source line and a caret;\n"
    "the exit status is 1 when a document is invalid, 2 on bad usage.\n";

static const char fmt_usage[] =
    "usage: vulcan kdl fmt [--canonical] FILE\n"
    "\n"
    "Parse FILE ('-' for standard input) and print it: comments dropped, one node per\n"
    "line, 4-space indents, strings bare when they may be, numbers in decimal.\n"
    "\n"
    "Options:\n"
    "  --canonical   the canonical form of the KDL test suite: properties sorted by\n"
    "                key (without it they keep their source order)\n"
    "  -h, --help    show this help\n";

static const char check_usage[] = "usage: vulcan kdl check FILE...\n"
                                  "\n"
                                  "Parse each FILE ('-' for standard input); print nothing "
                                  "for valid documents and\n"
                                  "a diagnostic for each invalid one. Exit 1 if any is "
                                  "invalid.\n";

/* Read `path` ('-' = stdin) into `b`. */
static int read_input(const char *path, struct vk_buf *b, struct vk_err *err)
{
    if (strcmp(path, "-") != 0)
        return vk_buf_read_file(b, path, err);
    char chunk[65536];
    for (;;) {
        ssize_t n = read(STDIN_FILENO, chunk, sizeof(chunk));
        if (n < 0)
            return vk_err_errno(err, "read standard input");
        if (n == 0)
            return 0;
        int rc = vk_buf_add(b, chunk, (size_t)n);
        if (rc)
            return vk_err_set(err, rc, "standard input: %s", vk_err_name(rc));
    }
}

/* Parse `path`; on error print the diagnostic and return 1. On success *doc is set. */
static int load(const char *path, struct vk_kdl_doc **doc)
{
    struct vk_buf src = VK_BUF_INIT(VK_MAX_FILE);
    struct vk_buf diag = VK_BUF_INIT(VK_MAX_SMALL);
    struct vk_err err;
    int status = 1;
    const char *name = strcmp(path, "-") == 0 ? "<stdin>" : path;
    vk_err_clear(&err);
    *doc = NULL;
    if (read_input(path, &src, &err) != 0) {
        if (strcmp(path, "-") == 0)
            fprintf(stderr, "vulcan kdl: %s: %s\n", name, err.msg);
        else
            fprintf(stderr, "vulcan kdl: %s\n", err.msg);
        goto out;
    }
    if (vk_kdl_parse(src.data, src.len, doc, &err) != 0) {
        if (vk_diag_render(&diag, name, src.data, src.len, &err) == 0)
            fputs(diag.data, stderr);
        else
            fprintf(stderr, "%s:%u:%u: error: %s\n", name, err.line, err.col, err.msg);
        goto out;
    }
    status = 0;
out:
    vk_buf_release(&src);
    vk_buf_release(&diag);
    return status;
}

static int cmd_fmt(int argc, char **argv)
{
    bool canonical = false;
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(fmt_usage, stdout);
            return 0;
        }
        if (strcmp(a, "--canonical") == 0) {
            canonical = true;
        } else if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "vulcan kdl fmt: unknown option '%s'\n%s", a, fmt_usage);
            return 2;
        } else if (path) {
            fprintf(stderr, "vulcan kdl fmt: only one FILE may be given\n");
            return 2;
        } else {
            path = a;
        }
    }
    if (!path) {
        fputs(fmt_usage, stderr);
        return 2;
    }
    struct vk_kdl_doc *doc = NULL;
    if (load(path, &doc) != 0)
        return 1;
    struct vk_buf out = VK_BUF_INIT((size_t)1 << 30);
    int status = 0;
    int rc = vk_kdl_write_opts(doc, canonical ? 0 : VK_KDL_WRITE_SOURCE_ORDER, &out);
    if (rc) {
        fprintf(stderr, "vulcan kdl fmt: %s\n", vk_err_name(rc));
        status = 1;
    } else if (out.len && fwrite(out.data, 1, out.len, stdout) != out.len) {
        fprintf(stderr, "vulcan kdl fmt: write error\n");
        status = 1;
    }
    if (fflush(stdout) != 0)
        status = 1;
    vk_buf_release(&out);
    vk_kdl_doc_free(doc);
    return status;
}

static int cmd_check(int argc, char **argv)
{
    int status = 0;
    int nfiles = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(check_usage, stdout);
            return 0;
        }
        if (a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "vulcan kdl check: unknown option '%s'\n%s", a, check_usage);
            return 2;
        }
    }
    for (int i = 1; i < argc; i++) {
        struct vk_kdl_doc *doc = NULL;
        nfiles++;
        if (load(argv[i], &doc) != 0)
            status = 1;
        vk_kdl_doc_free(doc);
    }
    if (nfiles == 0) {
        fputs(check_usage, stderr);
        return 2;
    }
    return status;
}

int vk__cli_kdl(int argc, char **argv)
{
    if (argc < 2) {
        fputs(kdl_usage, stderr);
        return 2;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "-h") == 0 || strcmp(sub, "--help") == 0 || strcmp(sub, "help") == 0) {
        fputs(kdl_usage, stdout);
        return 0;
    }
    if (strcmp(sub, "fmt") == 0)
        return cmd_fmt(argc - 1, argv + 1);
    if (strcmp(sub, "check") == 0)
        return cmd_check(argc - 1, argv + 1);
    fprintf(stderr, "vulcan kdl: '%s' is not a kdl command\n%s", sub, kdl_usage);
    return 2;
}
