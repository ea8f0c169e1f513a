/*
 * vulcan parse FILE... [--base-path DIR] [--json] [--quiet] [--allow-http] [--no-imports]
 * Validate workflow files and print their expanded chains (tree or JSON).
 */
#include "cli/cli.h"
#include "vulcan/workflow.h"

#include <stdio.h>
#include <string.h>

static const char usage_text[] =
    "usage: vulcan parse FILE... [--base-path DIR] [--json] [--quiet]\n"
    "                            [--allow-http] [--no-imports]\n"
    "\n"
    "Validate workflow files and show their expanded chains: imports resolved,\n"
    "machines resolved, conditions checked, sequence numbers assigned.\n"
    "\n"
    "  --base-path DIR  resolve the relative imports of FILE against DIR\n"
    "                   (default: the directory of FILE)\n"
    "  --json           print the chain as JSON (docs/parse-json.md); with several\n"
    "                   files, a JSON array with one object per valid file\n"
    "  --quiet          print nothing on success\n"
    "  --allow-http     allow plain http:// imports (default: https only)\n"
    "  --no-imports     refuse every import\n"
    "\n"
    "Errors go to stderr as FILE:LINE:COL: error: ... with the source line and a\n"
    "caret. With several files each gets a verdict. Exit status: 0 when every file\n"
    "is valid, 1 when any is not, 2 on bad usage.\n";

int vk__cli_parse(int argc, char **argv)
{
    if (vk__cli_wants_help(argc, argv)) {
        fputs(usage_text, stdout);
        return 0;
    }
    struct vk_wf_options opts;
    memset(&opts, 0, sizeof(opts));
    bool json = false, quiet = false, dashdash = false;
    const char *files[256];
    int nfiles = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!dashdash && strcmp(a, "--") == 0) {
            dashdash = true;
        } else if (!dashdash && strcmp(a, "--json") == 0) {
            json = true;
        } else if (!dashdash && (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0)) {
            quiet = true;
        } else if (!dashdash && strcmp(a, "--allow-http") == 0) {
            opts.allow_http = true;
        } else if (!dashdash && strcmp(a, "--no-imports") == 0) {
            opts.fetch = vk_wf_fetch_refuse;
        } else if (!dashdash && strcmp(a, "--base-path") == 0) {
            if (i + 1 >= argc) {
                fputs("vulcan parse: --base-path needs a directory\n", stderr);
                return 2;
            }
            opts.base_path = argv[++i];
        } else if (!dashdash && strncmp(a, "--base-path=", 12) == 0) {
            opts.base_path = a + 12;
        } else if (!dashdash && a[0] == '-' && a[1] != '\0') {
            fprintf(stderr, "vulcan parse: unknown option '%s'; see 'vulcan parse --help'\n", a);
            return 2;
        } else {
            if (nfiles == (int)VK_ARRAY_LEN(files)) {
                fputs("vulcan parse: too many files (at most 256)\n", stderr);
                return 2;
            }
            files[nfiles++] = a;
        }
    }
    if (nfiles == 0) {
        fputs("vulcan parse: no FILE given; see 'vulcan parse --help'\n", stderr);
        return 2;
    }

    int status = 0;
    bool many = nfiles > 1;
    bool first_json = true;
    if (json && many && !quiet)
        fputs("[\n", stdout);
    for (int i = 0; i < nfiles; i++) {
        struct vk_workflow *wf = NULL;
        struct vk_wf_error err;
        vk_wf_error_init(&err);
        int rc = vk_workflow_load_file(files[i], &opts, &wf, &err);
        if (rc < 0) {
            fputs(err.rendered ? err.rendered : err.msg, stderr);
            if (!err.rendered)
                fputc('\n', stderr);
            if (many)
                fprintf(stderr, "%s: error\n", files[i]);
            vk_wf_error_release(&err);
            status = 1;
            continue;
        }
        if (!quiet) {
            struct vk_buf out = VK_BUF_INIT(VK_MAX_FILE);
            rc = json ? vk_workflow_to_json(wf, &out) : vk_workflow_to_text(wf, &out);
            if (rc < 0) {
                fprintf(stderr, "%s: error: cannot render: %s\n", files[i], vk_err_name(rc));
                status = 1;
            } else if (json && many) {
                /* Indent is cosmetic; strip the final newline and separate with commas. */
                if (out.len && out.data[out.len - 1] == '\n')
                    out.data[--out.len] = '\0';
                printf("%s%s", first_json ? "" : ",\n", out.data);
                first_json = false;
            } else {
                if (many)
                    printf("%s: ok\n", files[i]);
                fwrite(out.data, 1, out.len, stdout);
            }
            vk_buf_release(&out);
        }
        vk_workflow_free(wf);
    }
    if (json && many && !quiet)
        fputs(first_json ? "]\n" : "\n]\n", stdout);
    return status;
}
