/*
 * vulcan trigger REPO_ID: start a repository's workflows by hand
 * (POST /api/v1/repos/{id}/trigger), with inputs, and (--follow) watch the chain run.
 */
#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char usage_text[] =
    "usage: vulcan trigger REPO_ID [--branch B] [--commit SHA] [--workflow FILE]\n"
    "                      [--input NAME=VALUE]... [--follow] [--server URL] [--json]\n"
    "\n"
    "Run a registered repository's workflows by hand: those with a `manual` trigger\n"
    "(or only --workflow), at the head of --branch (read by the server with git) or\n"
    "at --commit. Inputs are checked against the workflow's `manual { input … }`\n"
    "declarations and become variables of conditions and scripts. Prints the ids of\n"
    "the chains started.\n"
    "\n"
    "  --branch B          the branch (default: the repository's default branch)\n"
    "  --commit SHA        build this commit of the branch instead of its head\n"
    "  --workflow FILE     only this workflow file, e.g. .vulcan/deploy.kdl\n"
    "  --input NAME=VALUE  an input (repeatable)\n"
    "  --follow, -f        show the chain run, live; exit 0 only if it completed\n"
    "  --server URL        the server (default $VULCAN_SERVER, else http://127.0.0.1:8080)\n"
    "  --json              print the server's JSON answer\n"
    "\n"
    "Exit status: 0 success, 1 failure (or nothing started), 2 bad usage.\n";

int vk__cli_trigger(int argc, char **argv)
{
    if (vk__cli_wants_help(argc, argv)) {
        fputs(usage_text, stdout);
        return 0;
    }
    const char *server = vk__cli_default_server(), *branch = NULL, *commit = NULL, *workflow = NULL;
    bool follow = false, json = false;
    struct vk__cli_list inputs = {.n = 0};
    struct vk__cli_opt opts[] = {
        {"server", 0, VK_CLI_STR, &server, "VULCAN_SERVER", false, 0, 0},
        {"branch", 'b', VK_CLI_STR, &branch, NULL, false, 0, 0},
        {"commit", 0, VK_CLI_STR, &commit, NULL, false, 0, 0},
        {"workflow", 'w', VK_CLI_STR, &workflow, NULL, false, 0, 0},
        {"input", 'i', VK_CLI_LIST, &inputs, NULL, false, 0, 0},
        {"follow", 'f', VK_CLI_FLAG, &follow, NULL, false, 0, 0},
        {"json", 0, VK_CLI_FLAG, &json, NULL, false, 0, 0},
    };
    const char *pos[1];
    int npos = 0;
    int rc = vk__cli_opts_parse("trigger", argc, argv, opts, VK_ARRAY_LEN(opts), pos, &npos, 1);
    if (rc)
        return rc;
    int status = 2;
    struct vk_http_client *cl = NULL;
    json_t *body = json_object(), *in = json_object(), *answer = NULL;
    int bad = 0;
    struct vk_err err;
    vk_err_clear(&err);
    if (npos != 1 || !vk_uuid_valid(pos[0])) {
        fputs("vulcan trigger: one repository ID is needed (see 'vulcan repos ls')\n", stderr);
        goto out;
    }
    for (size_t i = 0; i < inputs.n; i++) {
        char *eq = strchr(inputs.items[i], '=');
        if (!eq || eq == inputs.items[i]) {
            fprintf(stderr, "vulcan trigger: --input needs NAME=VALUE, not '%s'\n",
                    inputs.items[i]);
            goto out;
        }
        *eq = '\0';
        bad |= json_object_set_new(in, inputs.items[i], json_string(eq + 1));
    }
    bad |= json_object_set(body, "inputs", in);
    if (branch)
        bad |= json_object_set_new(body, "branch", json_string(branch));
    if (commit)
        bad |= json_object_set_new(body, "commit", json_string(commit));
    if (workflow)
        bad |= json_object_set_new(body, "workflow", json_string(workflow));
    status = 1;
    if (bad) {
        fputs("vulcan trigger: out of memory\n", stderr);
        goto out;
    }
    char path[128];
    snprintf(path, sizeof(path), "/api/v1/repos/%s/trigger", pos[0]);
    long http = 0;
    if (vk__cli_client("trigger", server, &cl))
        goto out;
    if (vk_http_client_json(cl, "POST", path, body, 120000, &http, &answer, &err) < 0) {
        fprintf(stderr, "vulcan trigger: %s\n", err.msg);
        goto out;
    }
    if (http != 200 && http != 201) {
        const char *msg = json_string_value(json_object_get(answer, "message"));
        fprintf(stderr, "vulcan trigger: the server answered %ld: %s\n", http,
                msg ? msg : "no message");
        goto out;
    }
    json_t *chains = json_object_get(answer, "chains");
    json_t *skipped = json_object_get(answer, "skipped");
    if (json) {
        if (vk__cli_print_json("trigger", answer))
            goto out;
    } else {
        for (size_t i = 0; i < json_array_size(chains); i++)
            printf("%s\n", json_string_value(json_array_get(chains, i)));
        for (size_t i = 0; i < json_array_size(skipped); i++) {
            json_t *s = json_array_get(skipped, i);
            fprintf(stderr, "skipped %s: %s\n", json_string_value(json_object_get(s, "file")),
                    json_string_value(json_object_get(s, "reason")));
        }
    }
    fflush(stdout);
    if (json_array_size(chains) == 0) {
        fputs("vulcan trigger: no chain was started\n", stderr);
        goto out;
    }
    status = 0;
    for (size_t i = 0; follow && i < json_array_size(chains); i++) {
        if (vk__cli_follow_verdict(cl, "trigger", json_string_value(json_array_get(chains, i)),
                                   true) != 0)
            status = 1;
    }
out:
    json_decref(answer);
    json_decref(in);
    json_decref(body);
    vk_http_client_free(cl);
    vk__cli_opts_release(opts, VK_ARRAY_LEN(opts));
    return status;
}
