/*
 * vulcan chains ls|show|cancel|rerun|logs: chains on a server, as tables for
 * people or JSON (--json) for scripts. Also the helpers the other client
 * commands share (server URL, colours, JSON GET with error reporting).
 *
 * Exit status: 0 success; 1 the server refused or failed, or (show --wait,
 * rerun --follow) the chain did not complete; 2 bad usage.
 */
#include "cli/cli.h"
#include "vulcan/auth.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------- Shared client helpers */

bool vk__cli_use_color(int fd)
{
    const char *nc = getenv("NO_COLOR");
    return isatty(fd) && !(nc && *nc);
}

const char *vk__cli_status_color(const char *status, bool color)
{
    if (!color || !status)
        return "";
    if (strcmp(status, "completed") == 0 || strcmp(status, "alive") == 0)
        return "\033[32m";
    if (strcmp(status, "failed") == 0 || strcmp(status, "dead") == 0)
        return "\033[31m";
    if (strcmp(status, "running") == 0)
        return "\033[33m";
    return "\033[2m";
}

int vk__cli_call(const char *cmd, struct vk_http_client *cl, const char *method, const char *path,
                 json_t *body, long *status, json_t **answer)
{
    struct vk_err err;
    vk_err_clear(&err);
    *answer = NULL;
    if (vk_http_client_json(cl, method, path, body, 30000, status, answer, &err) < 0) {
        fprintf(stderr, "vulcan %s: %s\n", cmd, err.msg);
        return 1;
    }
    if (*status >= 400) {
        json_t *m = json_object_get(*answer, "message");
        fprintf(stderr, "vulcan %s: %s\n", cmd,
                json_is_string(m) ? json_string_value(m) : "the server refused");
        return 1;
    }
    return 0;
}

int vk__cli_print_json(const char *cmd, json_t *j)
{
    char *s = vk_http_json_text(j, JSON_INDENT(2), NULL);
    if (!s) {
        fprintf(stderr, "vulcan %s: out of memory\n", cmd);
        return 1;
    }
    puts(s);
    free(s);
    return 0;
}

/* "3s ago", "5m ago", or the date. */
void vk__cli_age(const char *rfc3339, char *buf, size_t cap)
{
    int64_t t = 0;
    if (!rfc3339 || vk_time_parse(rfc3339, &t) != 0) {
        snprintf(buf, cap, "-");
        return;
    }
    int64_t d = (vk_time_now_ms() - t) / 1000;
    if (d < 0)
        d = 0;
    if (d < 60)
        snprintf(buf, cap, "%llds ago", (long long)d);
    else if (d < 3600)
        snprintf(buf, cap, "%lldm ago", (long long)(d / 60));
    else if (d < 86400)
        snprintf(buf, cap, "%lldh ago", (long long)(d / 3600));
    else
        snprintf(buf, cap, "%.10s", rfc3339);
}

static const char *jstr(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static void duration(json_t *ms, char *buf, size_t cap)
{
    if (!json_is_integer(ms)) {
        snprintf(buf, cap, "-");
        return;
    }
    double s = (double)json_integer_value(ms) / 1e3;
    if (s < 60)
        snprintf(buf, cap, "%.1fs", s);
    else
        snprintf(buf, cap, "%dm%02ds", (int)(s / 60), (int)s % 60);
}

/* ---------------------------------------------------------------- ls */

static const char ls_usage[] =
    "usage: vulcan chains ls [--status S] [--repository ID] [--branch B] [--trigger T]\n"
    "                        [--since TIME] [--limit N] [--all] [--json] [--server URL]\n"
    "\n"
    "List chains, newest first.\n"
    "\n"
    "  --status S        pending, running, completed, failed or cancelled\n"
    "  --repository ID   chains of one repository\n"
    "  --branch B        --trigger T   exact matches\n"
    "  --since TIME      created at or after TIME (2026-01-31T12:00:00Z)\n"
    "  --limit N         rows per page (default 20, at most 200)\n"
    "  --all             every page (follows the server's cursor)\n"
    "  --json            {\"chains\": [...], \"next_cursor\": ...}\n";

/* Append "?k=v" or "&k=v", percent-encoding v. */
static void append_q(struct vk_buf *b, const char *k, const char *v)
{
    if (!v || !*v)
        return;
    int rc = vk_buf_addf(b, "%s%s=", b->len ? "&" : "?", k);
    for (const unsigned char *p = (const unsigned char *)v; rc == 0 && *p; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            strchr("-._~", *p))
            rc = vk_buf_addch(b, (char)*p);
        else
            rc = vk_buf_addf(b, "%%%02X", *p);
    }
    if (rc < 0)
        vk_buf_reset(b);
}

static int chains_ls(const char *server, int argc, char **argv)
{
    if (vk__cli_wants_help(argc, argv)) {
        fputs(ls_usage, stdout);
        return 0;
    }
    const char *status = NULL, *repo = NULL, *branch = NULL, *trigger = NULL, *since = NULL;
    long long limit = 20;
    bool all = false, json = false;
    struct vk__cli_opt opts[] = {
        {"server", 0, VK_CLI_STR, &server, "VULCAN_SERVER", false, 0, 0},
        {"status", 0, VK_CLI_STR, &status, NULL, false, 0, 0},
        {"repository", 0, VK_CLI_STR, &repo, NULL, false, 0, 0},
        {"branch", 0, VK_CLI_STR, &branch, NULL, false, 0, 0},
        {"trigger", 0, VK_CLI_STR, &trigger, NULL, false, 0, 0},
        {"since", 0, VK_CLI_STR, &since, NULL, false, 0, 0},
        {"limit", 'n', VK_CLI_INT, &limit, NULL, false, 1, 200},
        {"all", 'a', VK_CLI_FLAG, &all, NULL, false, 0, 0},
        {"json", 0, VK_CLI_FLAG, &json, NULL, false, 0, 0},
    };
    const char *pos[1];
    int npos = 0;
    int rc = vk__cli_opts_parse("chains ls", argc, argv, opts, VK_ARRAY_LEN(opts), pos, &npos, 0);
    if (rc)
        return rc;
    struct vk_http_client *cl = NULL;
    if (vk__cli_client("chains ls", server, &cl))
        return 1;
    bool color = vk__cli_use_color(1);
    json_t *rows = json_array();
    char cursor[128] = "";
    int status_code = 0;
    json_t *next = json_null();
    for (;;) {
        struct vk_buf q = VK_BUF_INIT(8192);
        append_q(&q, "status", status);
        append_q(&q, "repository", repo);
        append_q(&q, "branch", branch);
        append_q(&q, "trigger", trigger);
        append_q(&q, "since", since);
        append_q(&q, "cursor", cursor);
        char path[9000];
        snprintf(path, sizeof(path), "/api/v1/chains%s%slimit=%lld", q.data, q.len ? "&" : "?",
                 limit);
        vk_buf_release(&q);
        long http = 0;
        json_t *ans = NULL;
        if (vk__cli_call("chains ls", cl, "GET", path, NULL, &http, &ans)) {
            json_decref(ans);
            status_code = 1;
            break;
        }
        if (json_array_extend(rows, json_object_get(ans, "chains")) < 0) {
            fputs("vulcan chains ls: out of memory\n", stderr);
            json_decref(ans);
            status_code = 1;
            break;
        }
        const char *nc = jstr(ans, "next_cursor");
        json_decref(next);
        next = nc ? json_string(nc) : json_null();
        snprintf(cursor, sizeof(cursor), "%s", nc ? nc : "");
        json_decref(ans);
        if (!all || !nc)
            break;
    }
    if (status_code == 0 && json) {
        json_t *o = json_pack("{s:O, s:O}", "chains", rows, "next_cursor", next);
        status_code = vk__cli_print_json("chains ls", o);
        json_decref(o);
    } else if (status_code == 0) {
        printf("%-36s  %-10s  %-24s  %-16s  %-12s  %-10s  %9s\n", "CHAIN", "STATUS", "WORKFLOW",
               "BRANCH", "TRIGGER", "CREATED", "DURATION");
        size_t i;
        json_t *c;
        json_array_foreach(rows, i, c)
        {
            const char *st = jstr(c, "status"), *src = jstr(c, "source_file");
            const char *base = src ? strrchr(src, '/') : NULL;
            char age[32], dur[32];
            vk__cli_age(jstr(c, "created_at"), age, sizeof(age));
            duration(json_object_get(c, "duration_ms"), dur, sizeof(dur));
            printf("%-36s  %s%-10s%s  %-24.24s  %-16.16s  %-12.12s  %-10s  %9s\n", jstr(c, "id"),
                   vk__cli_status_color(st, color), st ? st : "?", color ? "\033[0m" : "",
                   base ? base + 1 : (src ? src : "-"), jstr(c, "branch") ? jstr(c, "branch") : "-",
                   jstr(c, "trigger") ? jstr(c, "trigger") : "-", age, dur);
        }
        if (json_array_size(rows) == 0)
            puts("(no chains)");
        else if (!all && json_is_string(next))
            fprintf(stderr, "(more: --all, or --limit)\n");
    }
    json_decref(next);
    json_decref(rows);
    vk_http_client_free(cl);
    return status_code;
}

/* ---------------------------------------------------------------- show */

/* One line per fragment of the tree whose `key` (waiting_reason, error) is set. */
static void reason_rows(json_t *list, const char *key)
{
    size_t i;
    json_t *f;
    json_array_foreach(list, i, f)
    {
        const char *why = jstr(f, key);
        if (why)
            printf("  %s: %s\n", jstr(f, "name") ? jstr(f, "name") : jstr(f, "id"), why);
        reason_rows(json_object_get(f, "children"), key);
    }
}

static int chains_show(const char *server, int argc, char **argv)
{
    if (vk__cli_wants_help(argc, argv)) {
        puts("usage: vulcan chains show CHAIN [-v] [--json] [--server URL]\n\n"
             "Show a chain: its state and its fragment tree (id, name, status, duration,\n"
             "attempt, exit code) and why waiting fragments wait. Fragment ids are shown by\n"
             "their last 8 hex digits, which 'vulcan logs' accepts; -v shows them in full.\n"
             "Exit 0 when shown, 1 on error.");
        return 0;
    }
    bool json = false, verbose = false;
    struct vk__cli_opt opts[] = {
        {"server", 0, VK_CLI_STR, &server, "VULCAN_SERVER", false, 0, 0},
        {"json", 0, VK_CLI_FLAG, &json, NULL, false, 0, 0},
        {"verbose", 'v', VK_CLI_FLAG, &verbose, NULL, false, 0, 0},
    };
    const char *pos[1];
    int npos = 0;
    int rc = vk__cli_opts_parse("chains show", argc, argv, opts, VK_ARRAY_LEN(opts), pos, &npos, 1);
    if (rc)
        return rc;
    if (npos != 1) {
        fputs("vulcan chains show: one CHAIN id is needed\n", stderr);
        return 2;
    }
    struct vk_http_client *cl = NULL;
    if (vk__cli_client("chains show", server, &cl))
        return 1;
    char id[VK_UUID_LEN];
    rc = vk__cli_chain_id(cl, "chains show", pos[0], id);
    if (rc) {
        vk_http_client_free(cl);
        return rc;
    }
    char path[256];
    snprintf(path, sizeof(path), "/api/v1/chains/%.64s", id);
    long http = 0;
    json_t *c = NULL;
    rc = vk__cli_call("chains show", cl, "GET", path, NULL, &http, &c);
    if (rc == 0 && json) {
        rc = vk__cli_print_json("chains show", c);
    } else if (rc == 0) {
        bool color = vk__cli_use_color(1);
        const char *st = jstr(c, "status");
        printf("chain     %s\nstatus    %s%s%s\nworkflow  %s\n", jstr(c, "id"),
               vk__cli_status_color(st, color), st, color ? "\033[0m" : "",
               jstr(c, "source_file") ? jstr(c, "source_file") : "-");
        const char *keys[] = {"repository_url", "branch", "commit_sha", "trigger", "created_at"};
        for (size_t i = 0; i < VK_ARRAY_LEN(keys); i++) {
            if (jstr(c, keys[i]))
                printf("%-10s %s\n", keys[i], jstr(c, keys[i]));
        }
        vk__cli_print_summary(c, verbose ? 36 : 8);
        json_t *frags = json_object_get(c, "fragments");
        char *dump = vk_http_json_text(frags, JSON_COMPACT, NULL);
        if (dump && strstr(dump, "\"waiting_reason\":\"")) {
            puts("\nwaiting:");
            reason_rows(frags, "waiting_reason");
        }
        /* Failures and skips say why (queue timeout, the fragment that failed, ...). */
        if (dump && strstr(dump, "\"error\":\"")) {
            puts("\nreasons:");
            reason_rows(frags, "error");
        }
        free(dump);
    }
    json_decref(c);
    vk_http_client_free(cl);
    return rc;
}

/* ---------------------------------------------------------------- cancel, rerun */

static int chains_action(const char *server, const char *action, int argc, char **argv)
{
    bool rerun = strcmp(action, "rerun") == 0;
    char cmd[32];
    snprintf(cmd, sizeof(cmd), "chains %s", action);
    if (vk__cli_wants_help(argc, argv)) {
        if (rerun)
            puts("usage: vulcan chains rerun CHAIN [--follow] [--json] [--server URL]\n\n"
                 "Run a chain again as a new chain and print its id. With --follow, show it\n"
                 "run and exit 0 only if it completed.");
        else
            puts("usage: vulcan chains cancel CHAIN [--json] [--server URL]\n\n"
                 "Cancel a chain: pending work is dropped, running fragments are stopped.\n"
                 "Exit 1 when the chain does not exist or had finished already.");
        return 0;
    }
    bool json = false, follow = false;
    struct vk__cli_opt opts[] = {
        {"server", 0, VK_CLI_STR, &server, "VULCAN_SERVER", false, 0, 0},
        {"json", 0, VK_CLI_FLAG, &json, NULL, false, 0, 0},
        {"follow", 'f', VK_CLI_FLAG, &follow, NULL, false, 0, 0},
    };
    const char *pos[1];
    int npos = 0;
    int rc = vk__cli_opts_parse(cmd, argc, argv, opts, VK_ARRAY_LEN(opts) - (rerun ? 0 : 1), pos,
                                &npos, 1);
    if (rc)
        return rc;
    if (npos != 1) {
        fprintf(stderr, "vulcan %s: one CHAIN id is needed\n", cmd);
        return 2;
    }
    struct vk_http_client *cl = NULL;
    if (vk__cli_client(cmd, server, &cl))
        return 1;
    char id[VK_UUID_LEN];
    rc = vk__cli_chain_id(cl, cmd, pos[0], id);
    if (rc) {
        vk_http_client_free(cl);
        return rc;
    }
    char path[256];
    snprintf(path, sizeof(path), "/api/v1/chains/%.64s/%s", id, action);
    long http = 0;
    json_t *ans = NULL;
    rc = vk__cli_call(cmd, cl, "POST", path, NULL, &http, &ans);
    if (rc == 0 && json)
        rc = vk__cli_print_json(cmd, ans);
    else if (rc == 0 && rerun)
        printf("%s\n", jstr(ans, "chain_id"));
    else if (rc == 0)
        printf("chain %s cancelled\n", id);
    fflush(stdout);
    if (rc == 0 && rerun && follow && jstr(ans, "chain_id"))
        rc = vk__cli_follow_verdict(cl, cmd, jstr(ans, "chain_id"), true);
    json_decref(ans);
    vk_http_client_free(cl);
    return rc;
}

/* ---------------------------------------------------------------- dispatch */

static const char usage_text[] =
    "usage: vulcan chains <ls|show|cancel|rerun|logs> [options]\n"
    "\n"
    "  ls                 list chains (filters, pages)\n"
    "  show CHAIN         a chain and its fragment tree\n"
    "  cancel CHAIN       cancel a chain\n"
    "  rerun CHAIN        run a chain again (--follow to watch it)\n"
    "  logs CHAIN [-f]    the output of every fragment (same as 'vulcan logs CHAIN')\n"
    "\n"
    "Every subcommand takes --server URL (default $VULCAN_SERVER, else\n"
    "http://127.0.0.1:8080) and --json; see 'vulcan chains <sub> --help'.\n";

int vk__cli_chains(int argc, char **argv)
{
    const char *server = vk__cli_default_server();
    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        fputs(usage_text, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "ls") == 0 || strcmp(sub, "list") == 0)
        return chains_ls(server, argc - 1, argv + 1);
    if (strcmp(sub, "show") == 0 || strcmp(sub, "get") == 0)
        return chains_show(server, argc - 1, argv + 1);
    if (strcmp(sub, "cancel") == 0 || strcmp(sub, "rerun") == 0)
        return chains_action(server, sub, argc - 1, argv + 1);
    if (strcmp(sub, "logs") == 0)
        return vk__cli_logs(argc - 1, argv + 1);
    fprintf(stderr, "vulcan chains: '%s' is not a subcommand; see 'vulcan chains --help'\n", sub);
    return 2;
}
