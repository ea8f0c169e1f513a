/*
 * vulcan secrets set|ls|rm (PUT/GET/DELETE /api/v1/orgs/{org}/secrets, /api/v1/repos/{id}/
 * secrets), the server's secrets key (load, make, check) and `vulcan admin
 * rotate-secrets-key`. A value comes from stdin or --from-file, never from argv, so it is
 * in no `ps` and no shell history.
 */
#include "cli/cli.h"
#include "vulcan/secrets.h"
#include "vulcan/store.h"
#include "vulcan/store_secrets.h"
#include "vulcan/telemetry.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char usage_text[] =
    "usage: vulcan secrets set [--org SLUG | --repo ID] [--protected] [--from-file PATH] NAME\n"
    "       vulcan secrets set [--org SLUG | --repo ID] --provider P --key K NAME\n"
    "       vulcan secrets ls  [--org SLUG | --repo ID] [--json]\n"
    "       vulcan secrets rm  [--org SLUG | --repo ID] NAME\n"
    "\n"
    "Manage write-only secrets (docs/secrets.md). A workflow names the ones it uses with\n"
    "`secrets \"NAME\"` (environment variables) or `secret-file \"NAME\"` (a 0600 file).\n"
    "Values are never shown again: `ls` lists names, scope and who changed them when.\n"
    "\n"
    "  NAME               [A-Z_][A-Z0-9_]*, for example NPM_TOKEN\n"
    "  --org SLUG         the org's secrets (default: default)\n"
    "  --repo ID          one repository's secrets (they win over the org's)\n"
    "  --protected        only chains of protected refs get it (repository setting)\n"
    "  --from-file PATH   read the value from PATH; else from stdin (6 bytes to 64 KiB;\n"
    "                     one trailing newline from a terminal or pipe is dropped, a\n"
    "                     file is taken as it is). Never give a value in argv.\n"
    "  --provider P --key K  a secret resolved by provider P (--secret-provider) at claim\n"
    "  --server URL       the server (default $VULCAN_SERVER, else the login's)\n"
    "  --json             print the server's JSON answer\n"
    "\n"
    "Exit status: 0 success, 1 failure, 2 bad usage.\n";

static const char set_usage[] =
    "usage: vulcan secrets set [--org SLUG | --repo ID] [--protected] [--from-file PATH] NAME\n"
    "       vulcan secrets set [--org SLUG | --repo ID] --provider P --key K NAME\n"
    "The value is read from stdin (or --from-file), never from the command line.\n";
static const char ls_usage[] = "usage: vulcan secrets ls [--org SLUG | --repo ID] [--json]\n";
static const char rm_usage[] = "usage: vulcan secrets rm [--org SLUG | --repo ID] NAME\n";

/* The API path of the secrets of --org / --repo, with "/NAME" when `name`. */
static int base_path(const char *cmd, const char *org, const char *repo, const char *name,
                     char *out, size_t cap)
{
    if (org && repo) {
        fprintf(stderr, "vulcan %s: --org and --repo exclude each other\n", cmd);
        return 2;
    }
    if (repo && !vk_uuid_valid(repo)) {
        fprintf(stderr, "vulcan %s: --repo needs a repository id (see 'vulcan repos ls')\n", cmd);
        return 2;
    }
    if (org &&
        (strlen(org) > 64 || strspn(org, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(org))) {
        fprintf(stderr, "vulcan %s: --org needs an org slug ([a-z0-9-])\n", cmd);
        return 2;
    }
    if (name && !vk_secret_name_valid(name)) {
        fprintf(stderr,
                "vulcan %s: '%.200s' is not a secret name: use [A-Z_][A-Z0-9_]* (for example "
                "NPM_TOKEN)\n",
                cmd, name);
        return 2;
    }
    if (repo)
        snprintf(out, cap, "/api/v1/repos/%s/secrets%s%s", repo, name ? "/" : "", name ? name : "");
    else
        snprintf(out, cap, "/api/v1/orgs/%s/secrets%s%s", org ? org : "default", name ? "/" : "",
                 name ? name : "");
    return 0;
}

/* Read the value from `path` (NULL: stdin) into `b`, bounded. 0, or 1 after saying why. */
static int read_value(const char *path, struct vk_buf *b)
{
    int fd = path ? open(path, O_RDONLY | O_CLOEXEC) : 0;
    if (fd < 0) {
        fprintf(stderr, "vulcan secrets set: cannot open '%s': %s\n", path, strerror(errno));
        return 1;
    }
    if (!path && isatty(0))
        fputs("Value (then Enter and Ctrl-D): ", stderr);
    char chunk[8192];
    int rc = 0;
    for (;;) {
        ssize_t r = read(fd, chunk, sizeof(chunk));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            fprintf(stderr, "vulcan secrets set: cannot read the value: %s\n", strerror(errno));
            rc = 1;
            break;
        }
        if (r == 0)
            break;
        if (b->len + (size_t)r > VK_SECRET_MAX_VALUE + 2) {
            fprintf(stderr, "vulcan secrets set: the value is longer than %d bytes (64 KiB)\n",
                    VK_SECRET_MAX_VALUE);
            rc = 1;
            break;
        }
        if (vk_buf_add(b, chunk, (size_t)r) < 0) {
            fputs("vulcan secrets set: out of memory\n", stderr);
            rc = 1;
            break;
        }
    }
    explicit_bzero(chunk, sizeof(chunk));
    if (path)
        close(fd);
    if (rc == 0 && !path && b->len && b->data[b->len - 1] == '\n') {
        b->data[--b->len] = '\0';
        if (b->len && b->data[b->len - 1] == '\r')
            b->data[--b->len] = '\0';
    }
    return rc;
}

static int call(const char *cmd, const char *server, const char *method, const char *path,
                json_t *body, json_t **answer)
{
    struct vk_http_client *cl = NULL;
    if (vk__cli_client(cmd, server, &cl))
        return 1;
    long status = 0;
    int rc = vk__cli_call(cmd, cl, method, path, body, &status, answer);
    vk_http_client_free(cl);
    return rc;
}

static int cmd_set(const char *server, int argc, char **argv)
{
    const char *org = NULL, *repo = NULL, *from = NULL, *provider = NULL, *key = NULL;
    bool prot = false, json = false;
    struct vk__cli_opt opts[] = {
        {"server", 0, VK_CLI_STR, &server, "VULCAN_SERVER", false, 0, 0},
        {"org", 0, VK_CLI_STR, &org, NULL, false, 0, 0},
        {"repo", 0, VK_CLI_STR, &repo, NULL, false, 0, 0},
        {"from-file", 0, VK_CLI_STR, &from, NULL, false, 0, 0},
        {"provider", 0, VK_CLI_STR, &provider, NULL, false, 0, 0},
        {"key", 0, VK_CLI_STR, &key, NULL, false, 0, 0},
        {"protected", 0, VK_CLI_FLAG, &prot, NULL, false, 0, 0},
        {"json", 0, VK_CLI_FLAG, &json, NULL, false, 0, 0},
    };
    if (vk__cli_wants_help(argc, argv)) {
        fputs(set_usage, stdout);
        return 0;
    }
    const char *pos[2];
    int npos = 0;
    int rc = vk__cli_opts_parse("secrets set", argc, argv, opts, VK_ARRAY_LEN(opts), pos, &npos, 2);
    if (rc)
        return rc;
    if (npos != 1) {
        fputs(npos > 1 ? "vulcan secrets set: one NAME only: the value is read from stdin or "
                         "--from-file, never from the command line\n"
                       : "vulcan secrets set: a NAME is needed\n",
              stderr);
        return 2;
    }
    if ((provider != NULL) != (key != NULL) || (provider && from)) {
        fputs("vulcan secrets set: --provider and --key go together, without --from-file\n",
              stderr);
        return 2;
    }
    char path[256];
    if ((rc = base_path("secrets set", org, repo, pos[0], path, sizeof(path))) != 0)
        return rc;
    struct vk_buf v = VK_BUF_INIT(VK_SECRET_MAX_VALUE + 16);
    if (!provider && read_value(from, &v) != 0) {
        if (v.data)
            explicit_bzero(v.data, v.len);
        vk_buf_release(&v);
        return 1;
    }
    struct vk_err err;
    vk_err_clear(&err);
    if (!provider && vk_secret_value_check(v.data, v.len, &err) < 0) {
        fprintf(stderr, "vulcan secrets set: %s\n", err.msg);
        if (v.data)
            explicit_bzero(v.data, v.len);
        vk_buf_release(&v);
        return 1;
    }
    json_t *body = json_object();
    int bad = !body;
    if (provider) {
        bad |= json_object_set_new(body, "provider", json_string(provider));
        bad |= json_object_set_new(body, "key", json_string(key));
    } else {
        bad |= json_object_set_new(body, "value", json_stringn(v.data, v.len));
    }
    bad |= json_object_set_new(body, "protected", json_boolean(prot));
    if (v.data)
        explicit_bzero(v.data, v.len);
    vk_buf_release(&v);
    body = vk_http_json_checked(body, bad);
    if (!body) {
        fputs("vulcan secrets set: out of memory (or the value is not UTF-8 text)\n", stderr);
        return 1;
    }
    json_t *a = NULL;
    rc = call("secrets set", server, "PUT", path, body, &a);
    /* jansson keeps its own copy of the value: wipe it before freeing */
    json_t *jv = json_object_get(body, "value");
    if (jv)
        explicit_bzero((char *)json_string_value(jv), json_string_length(jv));
    json_decref(body);
    if (rc == 0 && json)
        rc = vk__cli_print_json("secrets set", a);
    else if (rc == 0)
        printf("secret %s set (version %lld)\n", pos[0],
               (long long)json_integer_value(json_object_get(a, "version")));
    json_decref(a);
    return rc;
}

static int cmd_ls(const char *server, int argc, char **argv)
{
    const char *org = NULL, *repo = NULL;
    bool json = false;
    struct vk__cli_opt opts[] = {
        {"server", 0, VK_CLI_STR, &server, "VULCAN_SERVER", false, 0, 0},
        {"org", 0, VK_CLI_STR, &org, NULL, false, 0, 0},
        {"repo", 0, VK_CLI_STR, &repo, NULL, false, 0, 0},
        {"json", 0, VK_CLI_FLAG, &json, NULL, false, 0, 0},
    };
    if (vk__cli_wants_help(argc, argv)) {
        fputs(ls_usage, stdout);
        return 0;
    }
    const char *pos[1];
    int npos = 0;
    int rc = vk__cli_opts_parse("secrets ls", argc, argv, opts, VK_ARRAY_LEN(opts), pos, &npos, 0);
    if (rc)
        return rc;
    char path[256];
    if ((rc = base_path("secrets ls", org, repo, NULL, path, sizeof(path))) != 0)
        return rc;
    json_t *a = NULL;
    rc = call("secrets ls", server, "GET", path, NULL, &a);
    if (rc == 0 && json) {
        rc = vk__cli_print_json("secrets ls", a);
    } else if (rc == 0) {
        json_t *list = json_object_get(a, "secrets"), *s;
        size_t i;
        printf("%-32s %-10s %-9s %-7s %-16s %s\n", "NAME", "SCOPE", "PROTECTED", "VERSION",
               "UPDATED BY", "UPDATED AT");
        json_array_foreach(list, i, s)
        {
            const char *by = json_string_value(json_object_get(s, "updated_by"));
            const char *at = json_string_value(json_object_get(s, "updated_at"));
            printf("%-32s %-10s %-9s %-7lld %-16s %s\n",
                   json_string_value(json_object_get(s, "name")),
                   json_string_value(json_object_get(s, "scope")),
                   json_is_true(json_object_get(s, "protected")) ? "yes" : "no",
                   (long long)json_integer_value(json_object_get(s, "version")), by ? by : "-",
                   at ? at : "-");
        }
    }
    json_decref(a);
    return rc;
}

static int cmd_rm(const char *server, int argc, char **argv)
{
    const char *org = NULL, *repo = NULL;
    struct vk__cli_opt opts[] = {
        {"server", 0, VK_CLI_STR, &server, "VULCAN_SERVER", false, 0, 0},
        {"org", 0, VK_CLI_STR, &org, NULL, false, 0, 0},
        {"repo", 0, VK_CLI_STR, &repo, NULL, false, 0, 0},
    };
    if (vk__cli_wants_help(argc, argv)) {
        fputs(rm_usage, stdout);
        return 0;
    }
    const char *pos[1];
    int npos = 0;
    int rc = vk__cli_opts_parse("secrets rm", argc, argv, opts, VK_ARRAY_LEN(opts), pos, &npos, 1);
    if (rc)
        return rc;
    if (npos != 1) {
        fputs("vulcan secrets rm: one NAME is needed\n", stderr);
        return 2;
    }
    char path[256];
    if ((rc = base_path("secrets rm", org, repo, pos[0], path, sizeof(path))) != 0)
        return rc;
    json_t *a = NULL;
    rc = call("secrets rm", server, "DELETE", path, NULL, &a);
    json_decref(a);
    if (rc == 0)
        printf("secret %s removed\n", pos[0]);
    return rc;
}

int vk__cli_secrets(int argc, char **argv)
{
    if (argc < 2 || (vk__cli_wants_help(argc, argv) && strncmp(argv[1], "-", 1) == 0)) {
        fputs(usage_text, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *server = vk__cli_default_server();
    const char *sub = argv[1];
    if (strcmp(sub, "set") == 0)
        return cmd_set(server, argc - 1, argv + 1);
    if (strcmp(sub, "ls") == 0 || strcmp(sub, "list") == 0)
        return cmd_ls(server, argc - 1, argv + 1);
    if (strcmp(sub, "rm") == 0 || strcmp(sub, "remove") == 0)
        return cmd_rm(server, argc - 1, argv + 1);
    fprintf(stderr, "vulcan secrets: '%.100s' is not a subcommand (set, ls, rm)\n", sub);
    return 2;
}

/* ---------------------------------------------------------------- The server's key */

static void key_path(const char *data_dir, const char *file, char *out, size_t cap)
{
    if (file && *file)
        snprintf(out, cap, "%s", file);
    else
        snprintf(out, cap, "%s/secrets.key", data_dir);
}

int vk__cli_secrets_key(struct vk_store *store, const char *data_dir, const char *file,
                        struct vk_secret_key *key, int *version)
{
    char path[4200];
    key_path(data_dir, file, path, sizeof(path));
    struct vk_err err;
    vk_err_clear(&err);
    if (!file || !*file)
        (void)mkdir(data_dir, 0700);
    bool created = false;
    int rc = vk_secret_key_load(path, true, key, &created, &err);
    if (rc < 0) {
        fprintf(stderr, "vulcan server: --secrets-key-file: %s\n", err.msg);
        return 1;
    }
    unsigned char kcv[VK_SECRET_KCV_LEN];
    vk_secret_key_check_value(key, kcv);
    rc = vk_store_secret_key_check(store, kcv, sizeof(kcv), version, &err);
    if (rc == VK_EPERM) {
        char pending[4300];
        snprintf(pending, sizeof(pending), "%s.new", path);
        bool half = access(pending, F_OK) == 0;
        fprintf(stderr,
                "vulcan server: --secrets-key-file '%s': %s. Refusing to start: give the key "
                "file the secrets were sealed with%s\n",
                path, err.msg,
                half ? " (a rotation was interrupted after the database changed: move '.new' "
                       "over the key file)"
                     : "");
        vk_secret_key_wipe(key);
        return 1;
    }
    if (rc < 0) {
        fprintf(stderr, "vulcan server: cannot check the secrets key: %s\n", err.msg);
        vk_secret_key_wipe(key);
        return 1;
    }
    if (created)
        vk_log_write(VK_LOG_INFO, "server", "made a new secrets key file (keep a backup)", "path",
                     path, NULL);
    return 0;
}

struct rot_ctx {
    const struct vk_secret_key *old_k, *new_k;
};

static int rewrap_one(void *ctx, const struct vk_store_secret *sec, unsigned char *out,
                      struct vk_err *err)
{
    struct rot_ctx *r = ctx;
    if (sec->wrapped_len != VK_SECRET_WRAPPED_LEN || !sec->wrapped_key)
        return vk_err_set(err, VK_EINVAL, "secret %s: the stored data key is damaged", sec->name);
    struct vk_secret_where w = {sec->tenant_id, sec->scope, sec->scope_id, sec->name, sec->version};
    return vk_secret_rewrap(r->old_k, r->new_k, &w, sec->wrapped_key, out, err);
}

int vk__cli_rotate_secrets_key(int argc, char **argv)
{
    static const char usage[] =
        "usage: vulcan admin rotate-secrets-key --database URL [--data-dir DIR]\n"
        "                                 [--secrets-key-file F] [--old-key-out PATH]\n"
        "Make a new secrets key, re-wrap every secret's data key under it in one\n"
        "transaction, and put it in place of the key file; the old key is kept as\n"
        "F.old (or --old-key-out) and opens nothing after. Stop the servers first\n"
        "and start them again after: a running server keeps the old key.\n";
    if (vk__cli_wants_help(argc, argv)) {
        fputs(usage, stdout);
        return 0;
    }
    const char *database = NULL, *data_dir = "./vulcan-data", *file = NULL, *old_out = NULL;
    struct vk__cli_opt opts[] = {
        {"database", 0, VK_CLI_STR, &database, "VULCAN_DATABASE", false, 0, 0},
        {"data-dir", 0, VK_CLI_STR, &data_dir, "VULCAN_DATA_DIR", false, 0, 0},
        {"secrets-key-file", 0, VK_CLI_STR, &file, "VULCAN_SECRETS_KEY_FILE", false, 0, 0},
        {"old-key-out", 0, VK_CLI_STR, &old_out, NULL, false, 0, 0},
    };
    const char *pos[1];
    int npos = 0;
    int rc = vk__cli_opts_parse("admin rotate-secrets-key", argc, argv, opts, VK_ARRAY_LEN(opts),
                                pos, &npos, 0);
    if (rc)
        return rc;
    char dbbuf[4200];
    if (!database) {
        snprintf(dbbuf, sizeof(dbbuf), "sqlite:%s/vulcan.db", data_dir);
        database = dbbuf;
    }
    char path[4200], next[4300], old[4300];
    key_path(data_dir, file, path, sizeof(path));
    snprintf(next, sizeof(next), "%s.new", path);
    snprintf(old, sizeof(old), "%s", old_out && *old_out ? old_out : path);
    if (!old_out || !*old_out)
        strncat(old, ".old", sizeof(old) - strlen(old) - 1);
    struct vk_err err;
    vk_err_clear(&err);
    struct vk_secret_key k_old, k_new;
    memset(&k_new, 0, sizeof(k_new));
    struct vk_store *s = NULL;
    int status = 1;
    if (vk_secret_key_load(path, false, &k_old, NULL, &err) < 0) {
        fprintf(stderr, "vulcan admin rotate-secrets-key: %s\n", err.msg);
        return 1;
    }
    if (access(old, F_OK) == 0) {
        fprintf(stderr,
                "vulcan admin rotate-secrets-key: '%s' exists: move the previous old key away "
                "first (or give --old-key-out)\n",
                old);
        goto out;
    }
    if (vk_store_open(database, &s, &err) < 0) {
        fprintf(stderr, "vulcan admin rotate-secrets-key: cannot open the store: %s\n", err.msg);
        goto out;
    }
    unsigned char kcv[VK_SECRET_KCV_LEN], kcv_new[VK_SECRET_KCV_LEN];
    vk_secret_key_check_value(&k_old, kcv);
    int gen = 0;
    if (vk_store_secret_key_check(s, kcv, sizeof(kcv), &gen, &err) < 0) {
        fprintf(stderr, "vulcan admin rotate-secrets-key: '%s': %s\n", path, err.msg);
        goto out;
    }
    /* The new key goes to F.new first: a crash before the database commits leaves the
     * old key valid; after it, the server names F.new. */
    unlink(next);
    if (vk_secret_key_generate(&k_new, &err) < 0 || vk_secret_key_write(next, &k_new, &err) < 0) {
        fprintf(stderr, "vulcan admin rotate-secrets-key: %s\n", err.msg);
        goto out;
    }
    vk_secret_key_check_value(&k_new, kcv_new);
    struct rot_ctx rc_ctx = {&k_old, &k_new};
    size_t count = 0;
    if (vk_store_secret_rewrap_all(s, rewrap_one, &rc_ctx, kcv_new, sizeof(kcv_new), &count, &err) <
        0) {
        fprintf(stderr, "vulcan admin rotate-secrets-key: nothing changed: %s\n", err.msg);
        unlink(next);
        goto out;
    }
    if (link(path, old) != 0 || rename(next, path) != 0) {
        fprintf(stderr,
                "vulcan admin rotate-secrets-key: the database uses the new key, but it could "
                "not be put in place (%s): move '%s' over '%s' by hand\n",
                strerror(errno), next, path);
        goto out;
    }
    printf("re-wrapped %zu secret(s) under key generation %d; the old key is in %s (it opens "
           "nothing now: delete it once backups are done)\n",
           count, gen + 1, old);
    status = 0;
out:
    vk_store_close(s);
    vk_secret_key_wipe(&k_old);
    vk_secret_key_wipe(&k_new);
    return status;
}
