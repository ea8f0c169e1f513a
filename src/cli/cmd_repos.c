/*
 * vulcan repos add|update|ls|rm: register, change, list and remove the repositories a
 * server builds (POST/GET /api/v1/repos, PATCH/DELETE /api/v1/repos/{id}).
 */
#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>

static const char usage_text[] =
    "usage: vulcan repos add URL --provider P --secret S [--glob G] [--branch B]\n"
    "                            [--allow-url-imports] [--status-token T]\n"
    "                            [--status-api-url URL] [--server URL] [--json]\n"
    "       vulcan repos update ID [--url URL] [--provider P] [--secret S] [--glob G]\n"
    "                            [--branch B] [--status-token T] [--status-api-url URL]\n"
    "                            [--allow-fork-secrets yes|no] [--protected-refs GLOBS]\n"
    "                            [--server URL] [--json]\n"
    "       vulcan repos ls [--server URL] [--json]\n"
    "       vulcan repos rm ID [--server URL]\n"
    "\n"
    "Manage the repositories a Vulcan server builds. A registered repository's\n"
    "webhooks (POST /hooks/<provider>, or /hooks/generic/ID) start chains for the\n"
    "workflows in its workflow glob whose triggers match.\n"
    "\n"
    "  --provider P          github, gitlab, gitea, bitbucket or generic (default generic)\n"
    "  --secret S            the webhook secret (never shown again)   VULCAN_WEBHOOK_SECRET\n"
    "  --glob G              the workflow files (default .vulcan/*.kdl)\n"
    "  --branch B            the default branch: schedules come from it (default main)\n"
    "  --allow-url-imports   let workflows import fragments from http(s) URLs\n"
    "  --status-token T      the provider token commit statuses are posted with (never\n"
    "                        shown again; '' removes it)          VULCAN_STATUS_TOKEN\n"
    "  --status-api-url URL  the provider's API (GitHub Enterprise, self-hosted GitLab or\n"
    "                        Gitea; '' for the provider's default)\n"
    "  --allow-fork-secrets yes|no  pull requests from forks get secrets (default no)\n"
    "  --protected-refs GLOBS  comma-separated branch globs whose chains get protected\n"
    "                        secrets ('' for the default branch, the default)\n"
    "  --server URL          the server (default $VULCAN_SERVER, else http://127.0.0.1:8080)\n"
    "  --json                print the server's JSON answer\n"
    "\n"
    "Exit status: 0 success, 1 failure, 2 bad usage.\n";

static int request(const char *server, const char *method, const char *path, json_t *body,
                   long want, json_t **answer)
{
    struct vk_http_client *cl = NULL;
    struct vk_err err;
    vk_err_clear(&err);
    long http = 0;
    *answer = NULL;
    if (vk__cli_client("repos", server, &cl))
        return 1;
    int rc = vk_http_client_json(cl, method, path, body, 30000, &http, answer, &err);
    vk_http_client_free(cl);
    if (rc < 0) {
        fprintf(stderr, "vulcan repos: %s\n", err.msg);
        return 1;
    }
    if (http != want) {
        const char *msg = json_string_value(json_object_get(*answer, "message"));
        fprintf(stderr, "vulcan repos: the server answered %ld: %s\n", http,
                msg ? msg : "no message");
        return 1;
    }
    return 0;
}

/* The commit-status settings into `body`: "" clears (null). Returns 0 or -1. */
static int set_status_fields(json_t *body, const char *token, const char *api_url)
{
    int bad = 0;
    if (token)
        bad |= json_object_set_new(body, "status_token", *token ? json_string(token) : json_null());
    if (api_url)
        bad |= json_object_set_new(body, "status_api_url",
                                   *api_url ? json_string(api_url) : json_null());
    return bad;
}

static int cmd_update(const char *server_default, int argc, char **argv)
{
    const char *server = server_default, *url = NULL, *provider = NULL, *secret = NULL,
               *glob = NULL, *branch = NULL, *token = NULL, *api_url = NULL, *fork = NULL,
               *prot = NULL;
    bool json = false;
    struct vk__cli_opt opts[] = {
        {"server", 0, VK_CLI_STR, &server, "VULCAN_SERVER", false, 0, 0},
        {"url", 0, VK_CLI_STR, &url, NULL, false, 0, 0},
        {"provider", 0, VK_CLI_STR, &provider, NULL, false, 0, 0},
        {"secret", 0, VK_CLI_STR, &secret, "VULCAN_WEBHOOK_SECRET", false, 0, 0},
        {"glob", 0, VK_CLI_STR, &glob, NULL, false, 0, 0},
        {"branch", 0, VK_CLI_STR, &branch, NULL, false, 0, 0},
        {"status-token", 0, VK_CLI_STR, &token, "VULCAN_STATUS_TOKEN", false, 0, 0},
        {"status-api-url", 0, VK_CLI_STR, &api_url, NULL, false, 0, 0},
        {"allow-fork-secrets", 0, VK_CLI_STR, &fork, NULL, false, 0, 0},
        {"protected-refs", 0, VK_CLI_STR, &prot, NULL, false, 0, 0},
        {"json", 0, VK_CLI_FLAG, &json, NULL, false, 0, 0},
    };
    const char *pos[1];
    int npos = 0;
    int rc =
        vk__cli_opts_parse("repos update", argc, argv, opts, VK_ARRAY_LEN(opts), pos, &npos, 1);
    if (rc)
        return rc;
    if (npos != 1 || !vk_uuid_valid(pos[0])) {
        fputs("vulcan repos update: one repository ID is needed (see 'vulcan repos ls')\n", stderr);
        return 2;
    }
    json_t *body = json_object();
    int bad = !body;
    const char *const names[] = {"url", "provider", "webhook_secret", "workflow_glob",
                                 "default_branch"};
    const char *const vals[] = {url, provider, secret, glob, branch};
    for (size_t i = 0; i < VK_ARRAY_LEN(names); i++)
        if (vals[i])
            bad |= json_object_set_new(body, names[i], json_string(vals[i]));
    bad |= set_status_fields(body, token, api_url);
    if (fork && strcmp(fork, "yes") != 0 && strcmp(fork, "no") != 0) {
        fputs("vulcan repos update: --allow-fork-secrets takes yes or no\n", stderr);
        json_decref(body);
        return 2;
    }
    if (fork)
        bad |= json_object_set_new(body, "allow_fork_secrets", json_boolean(*fork == 'y'));
    if (prot)
        bad |= json_object_set_new(body, "protected_refs", *prot ? json_string(prot) : json_null());
    body = vk_http_json_checked(body, bad);
    if (!body) {
        fputs("vulcan repos update: out of memory\n", stderr);
        return 1;
    }
    char path[128];
    snprintf(path, sizeof(path), "/api/v1/repos/%s", pos[0]);
    json_t *a = NULL;
    rc = request(server, "PATCH", path, body, 200, &a);
    if (rc == 0 && json)
        rc = vk__cli_print_json("repos update", a);
    json_decref(a);
    json_decref(body);
    return rc;
}

static int cmd_add(const char *server_default, int argc, char **argv)
{
    const char *server = server_default, *provider = "generic", *secret = NULL, *glob = NULL,
               *branch = NULL, *token = NULL, *api_url = NULL;
    bool url_imports = false, json = false;
    struct vk__cli_opt opts[] = {
        {"server", 0, VK_CLI_STR, &server, "VULCAN_SERVER", false, 0, 0},
        {"provider", 0, VK_CLI_STR, &provider, NULL, false, 0, 0},
        {"secret", 0, VK_CLI_STR, &secret, "VULCAN_WEBHOOK_SECRET", false, 0, 0},
        {"glob", 0, VK_CLI_STR, &glob, NULL, false, 0, 0},
        {"branch", 0, VK_CLI_STR, &branch, NULL, false, 0, 0},
        {"allow-url-imports", 0, VK_CLI_FLAG, &url_imports, NULL, false, 0, 0},
        {"status-token", 0, VK_CLI_STR, &token, "VULCAN_STATUS_TOKEN", false, 0, 0},
        {"status-api-url", 0, VK_CLI_STR, &api_url, NULL, false, 0, 0},
        {"json", 0, VK_CLI_FLAG, &json, NULL, false, 0, 0},
    };
    const char *pos[1];
    int npos = 0;
    int rc = vk__cli_opts_parse("repos add", argc, argv, opts, VK_ARRAY_LEN(opts), pos, &npos, 1);
    if (rc)
        return rc;
    if (npos != 1) {
        fputs("vulcan repos add: one repository URL is needed\n", stderr);
        return 2;
    }
    json_t *body = json_pack("{s:s, s:s, s:b}", "url", pos[0], "provider", provider,
                             "allow_url_imports", url_imports);
    int bad = !body;
    if (secret)
        bad |= json_object_set_new(body, "webhook_secret", json_string(secret));
    if (glob)
        bad |= json_object_set_new(body, "workflow_glob", json_string(glob));
    if (branch)
        bad |= json_object_set_new(body, "default_branch", json_string(branch));
    bad |= set_status_fields(body, token, api_url);
    body = vk_http_json_checked(body, bad);
    if (!body) {
        fputs("vulcan repos add: out of memory\n", stderr);
        return 1;
    }
    json_t *a = NULL;
    rc = request(server, "POST", "/api/v1/repos", body, 201, &a);
    if (rc == 0) {
        if (json)
            rc = vk__cli_print_json("repos add", a);
        else
            printf("%s\n", json_string_value(json_object_get(a, "id")));
        if (!secret && !json)
            fputs("vulcan repos: no --secret given: the repository accepts no webhooks\n", stderr);
    }
    json_decref(a);
    json_decref(body);
    return rc;
}

static int cmd_ls(const char *server_default, int argc, char **argv)
{
    const char *server = server_default;
    bool json = false;
    struct vk__cli_opt opts[] = {
        {"server", 0, VK_CLI_STR, &server, "VULCAN_SERVER", false, 0, 0},
        {"json", 0, VK_CLI_FLAG, &json, NULL, false, 0, 0},
    };
    const char *pos[1];
    int npos = 0;
    int rc = vk__cli_opts_parse("repos ls", argc, argv, opts, VK_ARRAY_LEN(opts), pos, &npos, 0);
    if (rc)
        return rc;
    json_t *a = NULL;
    rc = request(server, "GET", "/api/v1/repos", NULL, 200, &a);
    if (rc == 0 && json) {
        rc = vk__cli_print_json("repos ls", a);
    } else if (rc == 0) {
        json_t *repos = json_object_get(a, "repos");
        printf("%-36s  %-9s  %-10s  %s\n", "ID", "PROVIDER", "BRANCH", "URL");
        for (size_t i = 0; i < json_array_size(repos); i++) {
            json_t *r = json_array_get(repos, i);
            printf("%-36s  %-9s  %-10s  %s%s\n", json_string_value(json_object_get(r, "id")),
                   json_string_value(json_object_get(r, "provider")),
                   json_string_value(json_object_get(r, "default_branch")),
                   json_string_value(json_object_get(r, "url")),
                   json_is_true(json_object_get(r, "has_secret")) ? "" : "  (no secret)");
        }
    }
    json_decref(a);
    return rc;
}

static int cmd_rm(const char *server_default, int argc, char **argv)
{
    const char *server = server_default;
    struct vk__cli_opt opts[] = {
        {"server", 0, VK_CLI_STR, &server, "VULCAN_SERVER", false, 0, 0},
    };
    const char *pos[1];
    int npos = 0;
    int rc = vk__cli_opts_parse("repos rm", argc, argv, opts, VK_ARRAY_LEN(opts), pos, &npos, 1);
    if (rc)
        return rc;
    if (npos != 1 || !vk_uuid_valid(pos[0])) {
        fputs("vulcan repos rm: one repository ID is needed (see 'vulcan repos ls')\n", stderr);
        return 2;
    }
    char path[128];
    snprintf(path, sizeof(path), "/api/v1/repos/%s", pos[0]);
    json_t *a = NULL;
    rc = request(server, "DELETE", path, NULL, 204, &a);
    json_decref(a);
    return rc;
}

int vk__cli_repos(int argc, char **argv)
{
    if (argc < 2 || vk__cli_wants_help(argc, argv)) {
        fputs(usage_text, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *server = vk__cli_default_server();
    const char *sub = argv[1];
    if (strcmp(sub, "add") == 0)
        return cmd_add(server, argc - 1, argv + 1);
    if (strcmp(sub, "update") == 0)
        return cmd_update(server, argc - 1, argv + 1);
    if (strcmp(sub, "ls") == 0 || strcmp(sub, "list") == 0)
        return cmd_ls(server, argc - 1, argv + 1);
    if (strcmp(sub, "rm") == 0 || strcmp(sub, "remove") == 0)
        return cmd_rm(server, argc - 1, argv + 1);
    fprintf(stderr, "vulcan repos: unknown subcommand '%s' (add, update, ls, rm)\n", sub);
    return 2;
}
