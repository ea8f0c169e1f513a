/* vulcan: one executable, git-style subcommands. */
#include "cli/cli.h"

#include <stdio.h>
#include <string.h>

static int cmd_version(int argc, char **argv)
{
    if (vk__cli_wants_help(argc, argv)) {
        puts("usage: vulcan version\n\nPrint the version of this vulcan binary.");
        return 0;
    }
    printf("vulcan %s\n", VK_VERSION);
    return 0;
}

/* Client commands: they take the global options --token, --token-file and --ca-cert. */
static const char *const client_cmds[] = {"submit",  "repos", "trigger", "chains", "logs",
                                          "workers", "login", "secrets", "audit"};

static const struct vk_cli_cmd commands[] = {
    {"version", "print the version", cmd_version},
    {"kdl", "format and check KDL documents", vk__cli_kdl},
    {"parse", "validate workflow files and show their expanded chains", vk__cli_parse},
    {"worker", "run a worker that pulls and runs fragments", vk__cli_worker},
    {"run", "run a workflow locally from start to end", vk__cli_run},
    {"server", "run the server: API, orchestrator, local workers", vk__cli_server},
    {"submit", "send a workflow to a server and (--follow) watch it run", vk__cli_submit},
    {"repos", "register, list and remove repositories (webhooks, schedules)", vk__cli_repos},
    {"trigger", "run a repository's workflows by hand, with inputs", vk__cli_trigger},
    {"chains", "list, show, cancel and rerun chains on a server", vk__cli_chains},
    {"logs", "print or follow (-f) the output of a fragment or a chain", vk__cli_logs},
    {"workers", "list the workers of a server", vk__cli_workers},
    {"admin", "create users and tokens on the database (recovery)", vk__cli_admin},
    {"whoami", "who $VULCAN_TOKEN belongs to, and their orgs", vk__cli_whoami},
    {"tokens", "create, list and revoke your personal access tokens", vk__cli_tokens},
    {"users", "create users (site admins)", vk__cli_users},
    {"orgs", "create and list orgs", vk__cli_orgs},
    {"teams", "create teams of an org, add and remove members", vk__cli_teams},
    {"grants", "grant roles in an org or repository to users and teams", vk__cli_grants},
    {"registration-tokens", "make, list and revoke worker registration tokens", vk__cli_regtokens},
    {"login", "check and store a server URL and token for the client commands", vk__cli_login},
    {"logout", "remove the stored credentials", vk__cli_logout},
    {"secret-provider", "the age and pass secret providers; test a configured provider",
     vk__cli_secret_provider},
    {"secrets", "set, list and remove write-only secrets of an org or repository", vk__cli_secrets},
    {"audit", "list, export and verify the tamper-evident audit log", vk__cli_audit},
};

static void usage(FILE *f)
{
    fputs("usage: vulcan <command> [options] [args]\n\n"
          "Vulcan CI: a self-hosted continuous-integration system.\n\n"
          "Commands:\n",
          f);
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(f, "  %-20s %s\n", commands[i].name, commands[i].summary);
    fputs("\nClient commands (submit, repos, trigger, chains, logs, workers, whoami, tokens,\n"
          "users, orgs, teams, grants, registration-tokens, login, secrets, audit) also take,\n"
          "anywhere on the line: --token T (visible in ps; prefer the others), --token-file\n"
          "FILE, --ca-cert FILE (PEM CA certificates for an https:// server; $VULCAN_CA_CERT).\n"
          "Without --token or --token-file: $VULCAN_TOKEN, else the server and token that\n"
          "'vulcan login' stored.\n"
          "\nRun 'vulcan <command> --help' for a command's options.\n"
          "Documentation: docs/ in the source tree.\n",
          f);
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *name = argv[1];
    if (strcmp(name, "-h") == 0 || strcmp(name, "--help") == 0 || strcmp(name, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(name, "--version") == 0)
        return cmd_version(1, argv + 1);
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
        if (strcmp(commands[i].name, name) != 0)
            continue;
        int sub_argc = argc - 1;
        for (size_t k = 0; k < sizeof(client_cmds) / sizeof(client_cmds[0]); k++) {
            if (strcmp(client_cmds[k], name) == 0) {
                int rc = vk__cli_global_opts(name, &sub_argc, argv + 1);
                if (rc)
                    return rc;
            }
        }
        return commands[i].fn(sub_argc, argv + 1);
    }
    fprintf(stderr, "vulcan: '%s' is not a command; see 'vulcan --help'\n", name);
    return 2;
}
