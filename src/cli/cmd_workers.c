/*
 * vulcan workers ls|show|revoke: the workers a server knows, with their groups,
 * status, heartbeat age and current fragment; revoking one.
 */
#include "cli/cli.h"

#include <string.h>

static const char usage_text[] =
    "usage: vulcan workers ls [--json] [--server URL]\n"
    "       vulcan workers show WORKER [--json] [--server URL]\n"
    "       vulcan workers revoke WORKER [--json] [--server URL]\n"
    "\n"
    "List the workers of a server (newest registration first): name, machine groups,\n"
    "status (alive, dead, stopped), last heartbeat and the fragment each is running.\n"
    "revoke (the admin role): the worker's token and its running fragment's job token\n"
    "stop working at once, the fragment goes to another worker, and the worker exits.\n"
    "--server defaults to $VULCAN_SERVER, else http://127.0.0.1:8080.\n";

static const char *jstr(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static void row(json_t *w, bool color)
{
    char groups[128] = "";
    size_t i, off = 0;
    json_t *g;
    json_array_foreach(json_object_get(w, "machine_groups"), i, g)
    {
        int n = snprintf(groups + off, sizeof(groups) - off, "%s%s", i ? "," : "",
                         json_string_value(g) ? json_string_value(g) : "");
        if (n < 0 || (size_t)n >= sizeof(groups) - off)
            break;
        off += (size_t)n;
    }
    char age[32];
    vk__cli_age(jstr(w, "last_heartbeat"), age, sizeof(age));
    const char *st = jstr(w, "status"), *cur = jstr(w, "current_fragment_id");
    printf("%-36s  %-16.16s  %-16.16s  %s%-8s%s  %-10s  %s\n", jstr(w, "id"),
           jstr(w, "name") ? jstr(w, "name") : "-", groups, vk__cli_status_color(st, color),
           st ? st : "?", color ? "\033[0m" : "", age, cur ? cur : "idle");
}

int vk__cli_workers(int argc, char **argv)
{
    if (vk__cli_wants_help(argc, argv) || argc < 2) {
        fputs(usage_text, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *sub = argv[1];
    bool revoke = strcmp(sub, "revoke") == 0;
    bool show = revoke || strcmp(sub, "show") == 0 || strcmp(sub, "get") == 0;
    if (!show && strcmp(sub, "ls") != 0 && strcmp(sub, "list") != 0) {
        fprintf(stderr, "vulcan workers: '%s' is not a subcommand; see 'vulcan workers --help'\n",
                sub);
        return 2;
    }
    const char *server = vk__cli_default_server();
    bool json = false;
    struct vk__cli_opt opts[] = {
        {"server", 0, VK_CLI_STR, &server, "VULCAN_SERVER", false, 0, 0},
        {"json", 0, VK_CLI_FLAG, &json, NULL, false, 0, 0},
    };
    const char *pos[1];
    int npos = 0;
    int rc = vk__cli_opts_parse("workers", argc - 1, argv + 1, opts, VK_ARRAY_LEN(opts), pos, &npos,
                                show ? 1 : 0);
    if (rc)
        return rc;
    if (show && npos != 1) {
        fprintf(stderr, "vulcan workers %s: one WORKER id is needed\n", sub);
        return 2;
    }
    struct vk_http_client *cl = NULL;
    if (vk__cli_client("workers", server, &cl))
        return 1;
    char path[256];
    if (revoke) {
        snprintf(path, sizeof(path), "/api/v1/workers/%.64s/revoke", pos[0]);
        long http = 0;
        json_t *ans = NULL;
        rc = vk__cli_call("workers", cl, "POST", path, NULL, &http, &ans);
        if (rc == 0 && json) {
            rc = vk__cli_print_json("workers", ans);
        } else if (rc == 0) {
            const char *frag = jstr(ans, "requeued_fragment_id");
            printf("revoked worker %s%s%s\n", pos[0],
                   frag ? "; its fragment went back to the "
                          "queue: "
                        : "",
                   frag ? frag : "");
        }
        json_decref(ans);
        vk_http_client_free(cl);
        return rc;
    }
    if (show)
        snprintf(path, sizeof(path), "/api/v1/workers/%.64s", pos[0]);
    else
        snprintf(path, sizeof(path), "/api/v1/workers");
    long http = 0;
    json_t *ans = NULL;
    rc = vk__cli_call("workers", cl, "GET", path, NULL, &http, &ans);
    if (rc == 0 && json) {
        rc = vk__cli_print_json("workers", ans);
    } else if (rc == 0) {
        bool color = vk__cli_use_color(1);
        printf("%-36s  %-16s  %-16s  %-8s  %-10s  %s\n", "WORKER", "NAME", "GROUPS", "STATUS",
               "HEARTBEAT", "CURRENT FRAGMENT");
        if (show) {
            row(ans, color);
        } else {
            size_t i;
            json_t *w;
            json_array_foreach(json_object_get(ans, "workers"), i, w)
            {
                row(w, color);
            }
            if (json_array_size(json_object_get(ans, "workers")) == 0)
                puts("(no workers)");
        }
    }
    json_decref(ans);
    vk_http_client_free(cl);
    return rc;
}
