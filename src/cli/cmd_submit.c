/*
 * vulcan submit FILE: send a workflow to a server (POST /api/v1/parse), print
 * the new chain's id, and with --follow show it run and exit with its result.
 */
#include "cli/cli.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char usage_text[] =
    "usage: vulcan submit FILE [--server URL] [--branch B] [--trigger T] [--env K=V]...\n"
    "                          [--commit SHA] [--repository URL] [--priority N]\n"
    "                          [--follow] [--json]\n"
    "\n"
    "Send a workflow file to a Vulcan server, which stores it as a new chain and\n"
    "starts it. Prints the chain id (or, with --json, the server's answer).\n"
    "\n"
    "  --server URL      the server (default $VULCAN_SERVER, else http://127.0.0.1:8080)\n"
    "  --branch B        $BRANCH of the chain (default main)\n"
    "  --trigger T       $TRIGGER (default manual)\n"
    "  --env K=V         a variable for conditions and scripts (repeatable)\n"
    "  --commit SHA      check this commit out of --repository on the workers\n"
    "  --repository URL  the repository the workers check out\n"
    "  --priority N      higher runs first (default 0)\n"
    "  --follow, -f      show the chain run, live; exit 0 only if it completed\n"
    "  --json            print the server's JSON answer\n"
    "\n"
    "The server refuses workflows with imports (`from`): it never reads files or\n"
    "URLs on a client's behalf. Exit status: 0 success, 1 failure, 2 bad usage.\n";

int vk__cli_submit(int argc, char **argv)
{
    if (vk__cli_wants_help(argc, argv)) {
        fputs(usage_text, stdout);
        return 0;
    }
    const char *server = vk__cli_default_server(), *branch = "main", *trigger = "manual",
               *commit = NULL, *repo = NULL;
    long long priority = 0;
    bool follow = false, json = false;
    struct vk__cli_list envs = {.n = 0};
    struct vk__cli_opt opts[] = {
        {"server", 0, VK_CLI_STR, &server, "VULCAN_SERVER", false, 0, 0},
        {"branch", 0, VK_CLI_STR, &branch, NULL, false, 0, 0},
        {"trigger", 0, VK_CLI_STR, &trigger, NULL, false, 0, 0},
        {"commit", 0, VK_CLI_STR, &commit, NULL, false, 0, 0},
        {"repository", 0, VK_CLI_STR, &repo, NULL, false, 0, 0},
        {"priority", 0, VK_CLI_INT, &priority, NULL, false, -1000, 1000},
        {"env", 'e', VK_CLI_LIST, &envs, NULL, false, 0, 0},
        {"follow", 'f', VK_CLI_FLAG, &follow, NULL, false, 0, 0},
        {"json", 0, VK_CLI_FLAG, &json, NULL, false, 0, 0},
    };
    const char *pos[1];
    int npos = 0;
    int rc = vk__cli_opts_parse("submit", argc, argv, opts, VK_ARRAY_LEN(opts), pos, &npos, 1);
    if (rc)
        return rc;
    int status = 2;
    struct vk_buf src = VK_BUF_INIT(1024 * 1024);
    struct vk_http_client *cl = NULL;
    json_t *body = NULL, *answer = NULL;
    struct vk_err err;
    vk_err_clear(&err);
    if (npos != 1) {
        fputs("vulcan submit: one workflow FILE is needed; see 'vulcan submit --help'\n", stderr);
        goto out;
    }
    json_t *env = json_object();
    body = json_pack("{s:o}", "env", env);
    if (!body) {
        fputs("vulcan submit: out of memory\n", stderr);
        status = 1;
        goto out;
    }
    int bad = 0;
    for (size_t i = 0; i < envs.n; i++) {
        char *eq = strchr(envs.items[i], '=');
        if (!eq || eq == envs.items[i]) {
            fprintf(stderr, "vulcan submit: --env needs KEY=VALUE, not '%s'\n", envs.items[i]);
            goto out;
        }
        *eq = '\0';
        bad |= json_object_set_new(env, envs.items[i], json_string(eq + 1));
    }
    status = 1;
    if (vk_buf_read_file(&src, pos[0], &err) < 0) {
        fprintf(stderr, "vulcan submit: %s\n", err.msg);
        goto out;
    }
    /* No content: the file is not UTF-8 (jansson refuses it), or out of memory. */
    json_object_set_new(body, "content", json_stringn(src.data, src.len));
    bad |= json_object_set_new(body, "source_file_path", json_string(pos[0]));
    bad |= json_object_set_new(body, "branch", json_string(branch));
    bad |= json_object_set_new(body, "trigger", json_string(trigger));
    bad |= json_object_set_new(body, "priority", json_integer(priority));
    if (commit)
        bad |= json_object_set_new(body, "commit_sha", json_string(commit));
    if (repo)
        bad |= json_object_set_new(body, "repository_url", json_string(repo));
    if (!json_is_string(json_object_get(body, "content"))) {
        fprintf(stderr, "vulcan submit: '%s' is not UTF-8 text\n", pos[0]);
        goto out;
    }
    if (bad) {
        fputs("vulcan submit: out of memory\n", stderr);
        goto out;
    }
    long http = 0;
    if (vk__cli_client("submit", server, &cl))
        goto out;
    if (vk_http_client_json(cl, "POST", "/api/v1/parse", body, 30000, &http, &answer, &err) < 0) {
        fprintf(stderr, "vulcan submit: %s\n", err.msg);
        goto out;
    }
    if (http != 201) {
        const char *diag = json_string_value(json_object_get(answer, "diagnostic"));
        const char *msg = json_string_value(json_object_get(answer, "message"));
        if (diag)
            fputs(diag, stderr);
        else
            fprintf(stderr, "vulcan submit: the server answered %ld: %s\n", http,
                    msg ? msg : "no message");
        goto out;
    }
    const char *chain_id = json_string_value(json_object_get(answer, "chain_id"));
    if (json) {
        if (vk__cli_print_json("submit", answer))
            goto out;
    } else {
        printf("%s\n", chain_id);
    }
    fflush(stdout);
    status = 0;
    if (follow && chain_id)
        status = vk__cli_follow_verdict(cl, "submit", chain_id, true);
out:
    json_decref(answer);
    json_decref(body);
    vk_http_client_free(cl);
    vk_buf_release(&src);
    vk__cli_opts_release(opts, VK_ARRAY_LEN(opts));
    return status;
}
