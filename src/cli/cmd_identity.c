/*
 * Managing identity on a server with --require-auth (docs/security.md, "Managing users,
 * orgs and tokens"): vulcan whoami, tokens, users, orgs, teams, grants and
 * registration-tokens. Each is a thin client of the /api/v1 identity routes; the caller's
 * token comes from $VULCAN_TOKEN (never argv). A password is read from stdin
 * (--password-stdin), never from argv either. Token values are printed once, when made.
 */
#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_EXPIRES_S (10LL * 366 * 86400)

static const char common_opts[] =
    "\n"
    "Common options: --server URL (default $VULCAN_SERVER, else http://127.0.0.1:8080),\n"
    "--json (the server's answer as JSON). The token: --token-file, $VULCAN_TOKEN or what\n"
    "'vulcan login' stored.\n";

static const char *jstr(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static const char *dash(const char *s)
{
    return s && *s ? s : "-";
}

/* Percent-encode a path segment into `out` (cap bytes). Returns false when it does not fit
 * or `s` is empty. */
static bool seg(const char *s, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;
    if (!s || !*s)
        return false;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                     (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' || *p == '~';
        if (o + (plain ? 1 : 3) >= cap)
            return false;
        if (plain) {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 15];
        }
    }
    out[o] = '\0';
    return true;
}

/* "3600", "90s", "15m", "24h", "30d" as seconds; -1 when not one. */
static long long duration_s(const char *s)
{
    char *end = NULL;
    long long v = strtoll(s, &end, 10);
    if (end == s || v <= 0)
        return -1;
    long long mul = 1;
    if (*end == 's' || *end == '\0')
        mul = 1;
    else if (*end == 'm')
        mul = 60;
    else if (*end == 'h')
        mul = 3600;
    else if (*end == 'd')
        mul = 86400;
    else
        return -1;
    if (*end && end[1])
        return -1;
    if (v > MAX_EXPIRES_S / mul)
        return -1;
    return v * mul;
}

/* One call to the server; *ans owned by the caller (may be NULL). Returns the exit status. */
static int call(const char *cmd, const char *server, const char *method, const char *path,
                json_t *body, json_t **ans)
{
    struct vk_http_client *cl = NULL;
    *ans = NULL;
    if (vk__cli_client(cmd, server, &cl)) {
        json_decref(body);
        return 1;
    }
    long http = 0;
    int rc = vk__cli_call(cmd, cl, method, path, body, &http, ans);
    json_decref(body);
    vk_http_client_free(cl);
    return rc;
}

/* Call, then print the answer as JSON (--json) or with `show`. */
static int call_show(const char *cmd, const char *server, bool json, const char *method,
                     const char *path, json_t *body, void (*show)(json_t *ans, void *arg),
                     void *arg)
{
    json_t *ans = NULL;
    int rc = call(cmd, server, method, path, body, &ans);
    if (rc == 0 && json)
        rc = ans ? vk__cli_print_json(cmd, ans) : (puts("{}"), 0);
    else if (rc == 0 && show)
        show(ans, arg);
    json_decref(ans);
    return rc;
}

static void say(json_t *ans, void *arg)
{
    (void)ans;
    puts((const char *)arg);
}

static int usage(const char *text, int argc)
{
    fputs(text, argc < 2 ? stderr : stdout);
    fputs(common_opts, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
}

static int not_sub(const char *cmd, const char *sub)
{
    fprintf(stderr, "vulcan %s: '%s' is not a subcommand; see 'vulcan %s --help'\n", cmd, sub, cmd);
    return 2;
}

static int need_pos(const char *cmd, const char *sub, int npos, int want, const char *what)
{
    if (npos == want)
        return 0;
    fprintf(stderr, "vulcan %s %s: %s %s needed\n", cmd, sub, what, want == 1 ? "is" : "are");
    return 2;
}

/* ---------------------------------------------------------------- whoami */

static void show_user(json_t *u, void *arg)
{
    (void)arg;
    printf("%s%s%s%s\n", dash(jstr(u, "login")), jstr(u, "name") ? " (" : "",
           jstr(u, "name") ? jstr(u, "name") : "", jstr(u, "name") ? ")" : "");
    printf("id          %s\n", dash(jstr(u, "id")));
    printf("email       %s\n", dash(jstr(u, "email")));
    printf("site admin  %s\n", json_is_true(json_object_get(u, "site_admin")) ? "yes" : "no");
    printf("this token  scopes %s%s%s\n", dash(jstr(u, "scopes")),
           jstr(u, "token_org") ? ", only in org " : "",
           jstr(u, "token_org") ? jstr(u, "token_org") : "");
    printf("orgs       ");
    size_t i;
    json_t *o;
    json_array_foreach(json_object_get(u, "orgs"), i, o)
    {
        printf(" %s (%s)", dash(jstr(o, "slug")), dash(jstr(o, "role")));
    }
    puts(json_array_size(json_object_get(u, "orgs")) ? "" : " (none)");
}

int vk__cli_whoami(int argc, char **argv)
{
    static const char text[] = "usage: vulcan whoami [--json] [--server URL]\n"
                               "\n"
                               "Who $VULCAN_TOKEN belongs to: login, site admin, the token's "
                               "scopes, and the\norgs with the role held in each.\n";
    if (vk__cli_wants_help(argc, argv)) {
        fputs(text, stdout);
        fputs(common_opts, stdout);
        return 0;
    }
    const char *server = "http://127.0.0.1:8080";
    bool json = false;
    struct vk__cli_opt opts[] = {
        {"server", 0, VK_CLI_STR, &server, "VULCAN_SERVER", false, 0, 0},
        {"json", 0, VK_CLI_FLAG, &json, NULL, false, 0, 0},
    };
    const char *pos[1];
    int npos = 0;
    int rc = vk__cli_opts_parse("whoami", argc, argv, opts, VK_ARRAY_LEN(opts), pos, &npos, 0);
    if (rc)
        return rc;
    return call_show("whoami", server, json, "GET", "/api/v1/user", NULL, show_user, NULL);
}

/* ---------------------------------------------------------------- tokens */

static void show_token_made(json_t *a, void *arg)
{
    (void)arg;
    /* The value alone on stdout (for $(...)); what it is on stderr. */
    printf("%s\n", dash(jstr(a, "token")));
    fprintf(stderr, "token %s (%s), scopes %s%s%s; shown once, keep it safe\n", dash(jstr(a, "id")),
            dash(jstr(a, "fingerprint")), dash(jstr(a, "scopes")), jstr(a, "org") ? ", org " : "",
            jstr(a, "org") ? jstr(a, "org") : "");
}

static void cred_state(json_t *t, char *buf, size_t cap)
{
    if (jstr(t, "revoked_at"))
        snprintf(buf, cap, "revoked");
    else if (jstr(t, "expires_at")) {
        int64_t at = 0;
        bool past = vk_time_parse(jstr(t, "expires_at"), &at) == 0 && at <= vk_time_now_ms();
        snprintf(buf, cap, "%s", past ? "expired" : "active");
    } else
        snprintf(buf, cap, "active");
}

static void show_tokens(json_t *a, void *arg)
{
    (void)arg;
    printf("%-36s  %-20s  %-17s  %-16s  %-8s  %-10s  %s\n", "TOKEN", "NAME", "FINGERPRINT",
           "SCOPES", "STATE", "LAST USED", "EXPIRES");
    size_t i;
    json_t *t;
    json_t *list = json_object_get(a, "tokens");
    json_array_foreach(list, i, t)
    {
        char used[32], st[16];
        vk__cli_age(jstr(t, "last_used_at"), used, sizeof(used));
        cred_state(t, st, sizeof(st));
        printf("%-36s  %-20.20s  %-17s  %-16s  %-8s  %-10s  %s\n", dash(jstr(t, "id")),
               dash(jstr(t, "name")), dash(jstr(t, "fingerprint")), dash(jstr(t, "scopes")), st,
               used, jstr(t, "expires_at") ? jstr(t, "expires_at") : "never");
    }
    if (json_array_size(list) == 0)
        puts("(no tokens)");
}

int vk__cli_tokens(int argc, char **argv)
{
    static const char text[] =
        "usage: vulcan tokens create [NAME] [--scopes read,write] [--expires-in 30d] [--org ORG]\n"
        "       vulcan tokens ls\n"
        "       vulcan tokens revoke TOKEN_ID\n"
        "\n"
        "Your personal access tokens. create prints the new token (once) on stdout: its\n"
        "scopes (read, write, admin; default read) are at most those of $VULCAN_TOKEN, and\n"
        "--org restricts it to one org. --expires-in takes seconds or 90m, 24h, 30d.\n"
        "A revoked token is refused from the next request on.\n";
    if (vk__cli_wants_help(argc, argv) || argc < 2)
        return usage(text, argc);
    const char *sub = argv[1];
    const char *server = "http://127.0.0.1:8080", *scopes = "read", *expires = NULL, *org = NULL;
    bool json = false;
    struct vk__cli_opt opts[] = {
        {"server", 0, VK_CLI_STR, &server, "VULCAN_SERVER", false, 0, 0},
        {"json", 0, VK_CLI_FLAG, &json, NULL, false, 0, 0},
        {"scopes", 0, VK_CLI_STR, &scopes, NULL, false, 0, 0},
        {"expires-in", 0, VK_CLI_STR, &expires, NULL, false, 0, 0},
        {"org", 0, VK_CLI_STR, &org, NULL, false, 0, 0},
    };
    const char *pos[2];
    int npos = 0;
    int rc =
        vk__cli_opts_parse("tokens", argc - 1, argv + 1, opts, VK_ARRAY_LEN(opts), pos, &npos, 1);
    if (rc)
        return rc;
    if (strcmp(sub, "create") == 0) {
        long long exp = expires ? duration_s(expires) : 0;
        if (exp < 0) {
            fprintf(stderr, "vulcan tokens create: --expires-in is seconds or 90m, 24h, 30d (at "
                            "most ten years)\n");
            return 2;
        }
        json_t *body = json_pack("{s:s}", "scopes", scopes);
        if (body && npos == 1)
            json_object_set_new(body, "name", json_string(pos[0]));
        if (body && exp > 0)
            json_object_set_new(body, "expires_in_s", json_integer(exp));
        if (body && org)
            json_object_set_new(body, "org", json_string(org));
        return call_show("tokens", server, json, "POST", "/api/v1/tokens", body, show_token_made,
                         NULL);
    }
    if (strcmp(sub, "ls") == 0 || strcmp(sub, "list") == 0)
        return call_show("tokens", server, json, "GET", "/api/v1/tokens", NULL, show_tokens, NULL);
    if (strcmp(sub, "revoke") == 0) {
        char id[128], path[256];
        rc = need_pos("tokens", sub, npos, 1, "one TOKEN_ID");
        if (rc)
            return rc;
        if (!seg(pos[0], id, sizeof(id))) {
            fprintf(stderr, "vulcan tokens revoke: not a token id\n");
            return 2;
        }
        snprintf(path, sizeof(path), "/api/v1/tokens/%s", id);
        return call_show("tokens", server, json, "DELETE", path, NULL, say, "revoked");
    }
    return not_sub("tokens", sub);
}

/* ---------------------------------------------------------------- users */

/* A password from stdin: its first line, at most VK_AUTH_PASSWORD_MAX bytes. */
static int read_password(char *buf, size_t cap)
{
    size_t n = 0;
    for (;;) {
        ssize_t r = read(0, buf + n, cap - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
        if (memchr(buf, '\n', n) || n == cap - 1)
            break;
    }
    buf[n] = '\0';
    char *nl = strpbrk(buf, "\r\n");
    if (nl)
        *nl = '\0';
    if (n == cap - 1 && !nl) {
        fprintf(stderr, "vulcan users create: the password is longer than %d bytes\n",
                VK_AUTH_PASSWORD_MAX);
        return 2;
    }
    if (!*buf) {
        fprintf(stderr, "vulcan users create: --password-stdin read no password\n");
        return 2;
    }
    return 0;
}

static void show_created(json_t *a, void *arg)
{
    printf("created %s %s (%s)\n", (const char *)arg,
           dash(jstr(a, "login")  ? jstr(a, "login")
                : jstr(a, "slug") ? jstr(a, "slug")
                                  : jstr(a, "name")),
           dash(jstr(a, "id")));
}

int vk__cli_users(int argc, char **argv)
{
    static const char text[] =
        "usage: vulcan users create LOGIN [--password-stdin] [--email E] [--name N] "
        "[--site-admin]\n"
        "\n"
        "Create a local user (a site admin's token with the admin scope). --password-stdin\n"
        "reads the password (8 to 1024 bytes) from the first line of stdin; it is never\n"
        "taken from the command line. Without one the user cannot log in with a password\n"
        "(give them a token with 'vulcan admin create-token', or use SSO).\n";
    if (vk__cli_wants_help(argc, argv) || argc < 2)
        return usage(text, argc);
    const char *sub = argv[1];
    if (strcmp(sub, "create") != 0)
        return not_sub("users", sub);
    const char *server = "http://127.0.0.1:8080", *email = NULL, *name = NULL;
    bool json = false, pw = false, site_admin = false;
    struct vk__cli_opt opts[] = {
        {"server", 0, VK_CLI_STR, &server, "VULCAN_SERVER", false, 0, 0},
        {"json", 0, VK_CLI_FLAG, &json, NULL, false, 0, 0},
        {"password-stdin", 0, VK_CLI_FLAG, &pw, NULL, false, 0, 0},
        {"email", 0, VK_CLI_STR, &email, NULL, false, 0, 0},
        {"name", 0, VK_CLI_STR, &name, NULL, false, 0, 0},
        {"site-admin", 0, VK_CLI_FLAG, &site_admin, NULL, false, 0, 0},
    };
    const char *pos[1];
    int npos = 0;
    int rc =
        vk__cli_opts_parse("users", argc - 1, argv + 1, opts, VK_ARRAY_LEN(opts), pos, &npos, 1);
    if (rc == 0)
        rc = need_pos("users", sub, npos, 1, "one LOGIN");
    if (rc)
        return rc;
    json_t *body = json_pack("{s:s, s:b}", "login", pos[0], "site_admin", site_admin);
    if (body && email)
        json_object_set_new(body, "email", json_string(email));
    if (body && name)
        json_object_set_new(body, "name", json_string(name));
    if (pw) {
        char buf[VK_AUTH_PASSWORD_MAX + 2];
        rc = read_password(buf, sizeof(buf));
        if (rc == 0 && body)
            json_object_set_new(body, "password", json_string(buf));
        vk_auth_wipe(buf, sizeof(buf));
        if (rc) {
            json_decref(body);
            return rc;
        }
    }
    return call_show("users", server, json, "POST", "/api/v1/users", body, show_created, "user");
}

/* ---------------------------------------------------------------- orgs */

static void show_orgs(json_t *a, void *arg)
{
    (void)arg;
    printf("%-24s  %-24s  %-10s  %s\n", "ORG", "NAME", "ROLE", "ID");
    size_t i;
    json_t *o;
    json_array_foreach(json_object_get(a, "orgs"), i, o)
    {
        printf("%-24s  %-24.24s  %-10s  %s\n", dash(jstr(o, "slug")), dash(jstr(o, "name")),
               dash(jstr(o, "role")), dash(jstr(o, "id")));
    }
    if (json_array_size(json_object_get(a, "orgs")) == 0)
        puts("(no orgs)");
}

static void show_org_set(json_t *a, void *arg)
{
    (void)arg;
    printf("org %s: sso_only %s\n", dash(jstr(a, "slug")),
           json_is_true(json_object_get(a, "sso_only")) ? "on" : "off");
}

int vk__cli_orgs(int argc, char **argv)
{
    static const char text[] = "usage: vulcan orgs create SLUG [--name NAME]\n"
                               "       vulcan orgs ls\n"
                               "       vulcan orgs set SLUG --sso-only on|off\n"
                               "\n"
                               "create (a site admin): a new org; you become its admin. ls: "
                               "the orgs you hold a\nrole in (every org for a site admin). set "
                               "(an org admin): --sso-only on\nrefuses password logins to the "
                               "org's members, site admins excepted\n(docs/security.md "
                               "\"SSO-only orgs\").\n";
    if (vk__cli_wants_help(argc, argv) || argc < 2)
        return usage(text, argc);
    const char *sub = argv[1];
    const char *server = "http://127.0.0.1:8080", *name = NULL, *sso_only = NULL;
    bool json = false;
    struct vk__cli_opt opts[] = {
        {"server", 0, VK_CLI_STR, &server, "VULCAN_SERVER", false, 0, 0},
        {"json", 0, VK_CLI_FLAG, &json, NULL, false, 0, 0},
        {"name", 0, VK_CLI_STR, &name, NULL, false, 0, 0},
        {"sso-only", 0, VK_CLI_STR, &sso_only, NULL, false, 0, 0},
    };
    const char *pos[1];
    int npos = 0;
    int rc =
        vk__cli_opts_parse("orgs", argc - 1, argv + 1, opts, VK_ARRAY_LEN(opts), pos, &npos, 1);
    if (rc)
        return rc;
    if (strcmp(sub, "create") == 0) {
        rc = need_pos("orgs", sub, npos, 1, "one SLUG");
        if (rc)
            return rc;
        json_t *body = json_pack("{s:s}", "slug", pos[0]);
        if (body && name)
            json_object_set_new(body, "name", json_string(name));
        return call_show("orgs", server, json, "POST", "/api/v1/orgs", body, show_created, "org");
    }
    if (strcmp(sub, "ls") == 0 || strcmp(sub, "list") == 0)
        return call_show("orgs", server, json, "GET", "/api/v1/orgs", NULL, show_orgs, NULL);
    if (strcmp(sub, "set") == 0) {
        rc = need_pos("orgs", sub, npos, 1, "one SLUG");
        if (rc)
            return rc;
        bool on = sso_only && strcmp(sso_only, "on") == 0;
        if (!sso_only || (!on && strcmp(sso_only, "off") != 0)) {
            fputs("vulcan orgs set: --sso-only on|off is required\n", stderr);
            return 2;
        }
        char o[3 * 64 + 1], path[256];
        if (!seg(pos[0], o, sizeof(o))) {
            fputs("vulcan orgs set: SLUG must be an org's slug\n", stderr);
            return 2;
        }
        snprintf(path, sizeof(path), "/api/v1/orgs/%s", o);
        return call_show("orgs", server, json, "PATCH", path, json_pack("{s:b}", "sso_only", on),
                         show_org_set, NULL);
    }
    return not_sub("orgs", sub);
}

/* ---------------------------------------------------------------- Org-scoped commands */

/* "/api/v1/orgs/ORG/<rest>" with ORG percent-encoded. */
static bool org_path(const char *cmd, const char *org, const char *rest, char *out, size_t cap)
{
    char o[3 * 64 + 1];
    if (!seg(org, o, sizeof(o)) ||
        (size_t)snprintf(out, cap, "/api/v1/orgs/%s/%s", o, rest) >= cap) {
        fprintf(stderr, "vulcan %s: --org must be an org's slug\n", cmd);
        return false;
    }
    return true;
}

static void show_teams(json_t *a, void *arg)
{
    (void)arg;
    printf("%-24s  %-24s  %-36s  %s\n", "TEAM", "PARENT", "ID", "MEMBERS");
    size_t i;
    json_t *t;
    json_array_foreach(json_object_get(a, "teams"), i, t)
    {
        char members[256] = "";
        size_t j, off = 0;
        json_t *m;
        json_array_foreach(json_object_get(t, "members"), j, m)
        {
            int n = snprintf(members + off, sizeof(members) - off, "%s%s", j ? "," : "",
                             json_string_value(m) ? json_string_value(m) : "");
            if (n < 0 || (size_t)n >= sizeof(members) - off)
                break;
            off += (size_t)n;
        }
        printf("%-24s  %-24s  %-36s  %s\n", dash(jstr(t, "name")), dash(jstr(t, "parent")),
               dash(jstr(t, "id")), members[0] ? members : "-");
    }
    if (json_array_size(json_object_get(a, "teams")) == 0)
        puts("(no teams)");
}

int vk__cli_teams(int argc, char **argv)
{
    static const char text[] =
        "usage: vulcan teams create NAME [--parent TEAM] [--org ORG]\n"
        "       vulcan teams ls [--org ORG]\n"
        "       vulcan teams add-member TEAM LOGIN [--org ORG]\n"
        "       vulcan teams remove-member TEAM LOGIN [--org ORG]\n"
        "\n"
        "The teams of an org (--org, default $VULCAN_ORG, else 'default'). Members of a team\n"
        "have what it and its parent teams were granted ('vulcan grants add'). ls needs\n"
        "the reader role, the others admin.\n";
    if (vk__cli_wants_help(argc, argv) || argc < 2)
        return usage(text, argc);
    const char *sub = argv[1];
    const char *server = "http://127.0.0.1:8080", *org = "default", *parent = NULL;
    bool json = false;
    struct vk__cli_opt opts[] = {
        {"server", 0, VK_CLI_STR, &server, "VULCAN_SERVER", false, 0, 0},
        {"json", 0, VK_CLI_FLAG, &json, NULL, false, 0, 0},
        {"org", 0, VK_CLI_STR, &org, "VULCAN_ORG", false, 0, 0},
        {"parent", 0, VK_CLI_STR, &parent, NULL, false, 0, 0},
    };
    const char *pos[2];
    int npos = 0;
    int rc =
        vk__cli_opts_parse("teams", argc - 1, argv + 1, opts, VK_ARRAY_LEN(opts), pos, &npos, 2);
    if (rc)
        return rc;
    char path[512];
    if (strcmp(sub, "create") == 0) {
        rc = need_pos("teams", sub, npos, 1, "one NAME");
        if (rc)
            return rc;
        if (!org_path("teams", org, "teams", path, sizeof(path)))
            return 2;
        json_t *body = json_pack("{s:s}", "name", pos[0]);
        if (body && parent)
            json_object_set_new(body, "parent", json_string(parent));
        return call_show("teams", server, json, "POST", path, body, show_created, "team");
    }
    if (strcmp(sub, "ls") == 0 || strcmp(sub, "list") == 0) {
        if (!org_path("teams", org, "teams", path, sizeof(path)))
            return 2;
        return call_show("teams", server, json, "GET", path, NULL, show_teams, NULL);
    }
    bool add = strcmp(sub, "add-member") == 0;
    if (add || strcmp(sub, "remove-member") == 0) {
        rc = need_pos("teams", sub, npos, 2, "TEAM and LOGIN");
        if (rc)
            return rc;
        char t[3 * 64 + 1], l[3 * 64 + 1], rest[512];
        if (!seg(pos[0], t, sizeof(t)) || !seg(pos[1], l, sizeof(l))) {
            fprintf(stderr, "vulcan teams %s: TEAM and LOGIN are at most 64 bytes\n", sub);
            return 2;
        }
        snprintf(rest, sizeof(rest), "teams/%s/members/%s", t, l);
        if (!org_path("teams", org, rest, path, sizeof(path)))
            return 2;
        return call_show("teams", server, json, add ? "PUT" : "DELETE", path, NULL, say,
                         add ? "added" : "removed");
    }
    return not_sub("teams", sub);
}

static void show_grants(json_t *a, void *arg)
{
    (void)arg;
    printf("%-36s  %-10s  %-24s  %-24s  %s\n", "GRANT", "ROLE", "USER", "TEAM", "REPOSITORY");
    size_t i;
    json_t *g;
    json_array_foreach(json_object_get(a, "grants"), i, g)
    {
        printf("%-36s  %-10s  %-24s  %-24s  %s\n", dash(jstr(g, "id")), dash(jstr(g, "role")),
               dash(jstr(g, "user")), dash(jstr(g, "team")),
               jstr(g, "repository") ? jstr(g, "repository") : "(whole org)");
    }
    if (json_array_size(json_object_get(a, "grants")) == 0)
        puts("(no grants)");
}

static void show_grant_made(json_t *a, void *arg)
{
    (void)arg;
    printf("granted %s (%s)\n", dash(jstr(a, "role")), dash(jstr(a, "id")));
}

int vk__cli_grants(int argc, char **argv)
{
    static const char text[] =
        "usage: vulcan grants add ROLE (--user LOGIN | --team TEAM) [--repository ID] [--org "
        "ORG]\n"
        "       vulcan grants ls [--org ORG]\n"
        "       vulcan grants rm GRANT_ID [--org ORG]\n"
        "\n"
        "Roles in an org (--org, default $VULCAN_ORG, else 'default'), or in one repository\n"
        "of it: reader, developer, maintainer, admin. You cannot grant more than your own\n"
        "role. Needs the admin role in the org.\n";
    if (vk__cli_wants_help(argc, argv) || argc < 2)
        return usage(text, argc);
    const char *sub = argv[1];
    const char *server = "http://127.0.0.1:8080", *org = "default", *user = NULL, *team = NULL,
               *repo = NULL;
    bool json = false;
    struct vk__cli_opt opts[] = {
        {"server", 0, VK_CLI_STR, &server, "VULCAN_SERVER", false, 0, 0},
        {"json", 0, VK_CLI_FLAG, &json, NULL, false, 0, 0},
        {"org", 0, VK_CLI_STR, &org, "VULCAN_ORG", false, 0, 0},
        {"user", 0, VK_CLI_STR, &user, NULL, false, 0, 0},
        {"team", 0, VK_CLI_STR, &team, NULL, false, 0, 0},
        {"repository", 0, VK_CLI_STR, &repo, NULL, false, 0, 0},
    };
    const char *pos[1];
    int npos = 0;
    int rc =
        vk__cli_opts_parse("grants", argc - 1, argv + 1, opts, VK_ARRAY_LEN(opts), pos, &npos, 1);
    if (rc)
        return rc;
    char path[512];
    if (strcmp(sub, "add") == 0) {
        rc = need_pos("grants", sub, npos, 1, "one ROLE");
        if (rc)
            return rc;
        if (!user == !team) {
            fprintf(stderr, "vulcan grants add: give one of --user LOGIN and --team TEAM\n");
            return 2;
        }
        if (!org_path("grants", org, "grants", path, sizeof(path)))
            return 2;
        json_t *body = json_pack("{s:s}", "role", pos[0]);
        if (body)
            json_object_set_new(body, user ? "user" : "team", json_string(user ? user : team));
        if (body && repo)
            json_object_set_new(body, "repository", json_string(repo));
        return call_show("grants", server, json, "POST", path, body, show_grant_made, NULL);
    }
    if (strcmp(sub, "ls") == 0 || strcmp(sub, "list") == 0) {
        if (!org_path("grants", org, "grants", path, sizeof(path)))
            return 2;
        return call_show("grants", server, json, "GET", path, NULL, show_grants, NULL);
    }
    if (strcmp(sub, "rm") == 0 || strcmp(sub, "delete") == 0) {
        rc = need_pos("grants", sub, npos, 1, "one GRANT_ID");
        if (rc)
            return rc;
        char id[128], rest[256];
        if (!seg(pos[0], id, sizeof(id))) {
            fprintf(stderr, "vulcan grants rm: not a grant id\n");
            return 2;
        }
        snprintf(rest, sizeof(rest), "grants/%s", id);
        if (!org_path("grants", org, rest, path, sizeof(path)))
            return 2;
        return call_show("grants", server, json, "DELETE", path, NULL, say, "deleted");
    }
    return not_sub("grants", sub);
}

static void show_reg_made(json_t *a, void *arg)
{
    (void)arg;
    printf("%s\n", dash(jstr(a, "token")));
    fprintf(stderr,
            "registration token %s (%s); shown once: give it to a worker as "
            "VULCAN_REGISTRATION_TOKEN\n",
            dash(jstr(a, "id")), dash(jstr(a, "fingerprint")));
}

static void show_regs(json_t *a, void *arg)
{
    (void)arg;
    printf("%-36s  %-18s  %-17s  %-20s  %-9s  %-8s  %s\n", "TOKEN", "NAME", "FINGERPRINT", "GROUPS",
           "USES LEFT", "STATE", "EXPIRES");
    size_t i;
    json_t *t;
    json_t *list = json_object_get(a, "registration_tokens");
    json_array_foreach(list, i, t)
    {
        char groups[128] = "", uses[24], st[16];
        size_t j, off = 0;
        json_t *g;
        json_array_foreach(json_object_get(t, "groups"), j, g)
        {
            int n = snprintf(groups + off, sizeof(groups) - off, "%s%s", j ? "," : "",
                             json_string_value(g) ? json_string_value(g) : "");
            if (n < 0 || (size_t)n >= sizeof(groups) - off)
                break;
            off += (size_t)n;
        }
        json_int_t u = json_integer_value(json_object_get(t, "uses_left"));
        if (u < 0)
            snprintf(uses, sizeof(uses), "unlimited");
        else
            snprintf(uses, sizeof(uses), "%lld", (long long)u);
        cred_state(t, st, sizeof(st));
        printf("%-36s  %-18.18s  %-17s  %-20.20s  %-9s  %-8s  %s\n", dash(jstr(t, "id")),
               dash(jstr(t, "name")), dash(jstr(t, "fingerprint")), groups[0] ? groups : "(any)",
               uses, st, jstr(t, "expires_at") ? jstr(t, "expires_at") : "never");
    }
    if (json_array_size(list) == 0)
        puts("(no registration tokens)");
}

int vk__cli_regtokens(int argc, char **argv)
{
    static const char text[] =
        "usage: vulcan registration-tokens create [--group G]... [--uses N] [--expires-in 7d]\n"
        "                                         [--name NAME] [--org ORG]\n"
        "       vulcan registration-tokens ls [--org ORG]\n"
        "       vulcan registration-tokens revoke TOKEN_ID [--org ORG]\n"
        "\n"
        "Worker registration tokens of an org (--org, default $VULCAN_ORG, else 'default';\n"
        "the admin role). A worker started with VULCAN_REGISTRATION_TOKEN registers in that\n"
        "org, only in the --group machine groups (none: any), at most --uses times (default\n"
        "unlimited). create prints the token once on stdout; ls never shows values.\n";
    if (vk__cli_wants_help(argc, argv) || argc < 2)
        return usage(text, argc);
    const char *sub = argv[1];
    const char *server = "http://127.0.0.1:8080", *org = "default", *expires = NULL, *name = NULL;
    long long uses = -1;
    bool json = false;
    struct vk__cli_list groups = {0};
    struct vk__cli_opt opts[] = {
        {"server", 0, VK_CLI_STR, &server, "VULCAN_SERVER", false, 0, 0},
        {"json", 0, VK_CLI_FLAG, &json, NULL, false, 0, 0},
        {"org", 0, VK_CLI_STR, &org, "VULCAN_ORG", false, 0, 0},
        {"group", 0, VK_CLI_LIST, &groups, NULL, false, 0, 0},
        {"uses", 0, VK_CLI_INT, &uses, NULL, false, -1, 1000000},
        {"expires-in", 0, VK_CLI_STR, &expires, NULL, false, 0, 0},
        {"name", 0, VK_CLI_STR, &name, NULL, false, 0, 0},
    };
    const char *pos[1];
    int npos = 0;
    const char *cmd = "registration-tokens";
    int rc = vk__cli_opts_parse(cmd, argc - 1, argv + 1, opts, VK_ARRAY_LEN(opts), pos, &npos, 1);
    if (rc)
        return rc;
    char path[512];
    if (strcmp(sub, "create") == 0) {
        long long exp = expires ? duration_s(expires) : 0;
        if (exp < 0) {
            fprintf(stderr, "vulcan %s create: --expires-in is seconds or 90m, 24h, 30d\n", cmd);
            rc = 2;
        } else if (uses == 0) {
            fprintf(stderr, "vulcan %s create: --uses is 1 or more, or -1 for unlimited\n", cmd);
            rc = 2;
        } else if (!org_path(cmd, org, "registration-tokens", path, sizeof(path))) {
            rc = 2;
        }
        if (rc) {
            vk__cli_opts_release(opts, VK_ARRAY_LEN(opts));
            return rc;
        }
        json_t *body = json_pack("{s:I}", "uses", (json_int_t)uses);
        json_t *ga = json_array();
        for (size_t i = 0; i < groups.n; i++)
            json_array_append_new(ga, json_string(groups.items[i]));
        if (body)
            json_object_set_new(body, "groups", ga);
        else
            json_decref(ga);
        if (body && exp > 0)
            json_object_set_new(body, "expires_in_s", json_integer(exp));
        if (body && name)
            json_object_set_new(body, "name", json_string(name));
        vk__cli_opts_release(opts, VK_ARRAY_LEN(opts));
        return call_show(cmd, server, json, "POST", path, body, show_reg_made, NULL);
    }
    vk__cli_opts_release(opts, VK_ARRAY_LEN(opts));
    if (strcmp(sub, "ls") == 0 || strcmp(sub, "list") == 0) {
        if (!org_path(cmd, org, "registration-tokens", path, sizeof(path)))
            return 2;
        return call_show(cmd, server, json, "GET", path, NULL, show_regs, NULL);
    }
    if (strcmp(sub, "revoke") == 0) {
        rc = need_pos(cmd, sub, npos, 1, "one TOKEN_ID");
        if (rc)
            return rc;
        char id[128], rest[256];
        if (!seg(pos[0], id, sizeof(id))) {
            fprintf(stderr, "vulcan %s revoke: not a token id\n", cmd);
            return 2;
        }
        snprintf(rest, sizeof(rest), "registration-tokens/%s", id);
        if (!org_path(cmd, org, rest, path, sizeof(path)))
            return 2;
        return call_show(cmd, server, json, "DELETE", path, NULL, say, "revoked");
    }
    return not_sub(cmd, sub);
}
