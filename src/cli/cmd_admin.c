/*
 * vulcan admin: recovery on the database itself, for when nobody can log in
 * (docs/security.md), and the server's first-start bootstrap of a site admin.
 */
#include "cli/cli.h"
#include "vulcan/auth.h"
#include "vulcan/store_identity.h"
#include "vulcan/telemetry.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char usage_text[] =
    "usage: vulcan admin create-user  --database URL LOGIN [--site-admin]\n"
    "                                 [--org ORG --role ROLE]\n"
    "       vulcan admin create-token --database URL --user LOGIN [--org ORG]\n"
    "                                 [--scopes read,write,admin] [--name NAME]\n"
    "                                 [--expires-in DURATION]\n"
    "       vulcan admin set-password --database URL LOGIN   (the password on stdin)\n"
    "       vulcan admin rotate-job-key [--data-dir DIR]\n"
    "       vulcan admin rotate-secrets-key --database URL [--data-dir DIR]\n"
    "       vulcan admin rotate-audit-key [--data-dir DIR] [--audit-key-file F]\n"
    "                                 [--secrets-key-file F] [--old-key-out PATH]\n"
    "       vulcan admin create-registration-token --database URL [--org ORG]\n"
    "                                 [--groups G1,G2] [--uses N] [--expires-in DURATION]\n"
    "                                 [--name NAME]\n"
    "       vulcan admin backup --out DIR [--data-dir DIR] [--database URL]\n"
    "       vulcan admin restore --from DIR --data-dir DIR [--force]\n"
    "\n"
    "Work on the database directly, without a server or any credential: for the first\n"
    "user of an installation and for recovery when nobody can log in. Anyone who can\n"
    "open the database can do this; keep its URL and files as secret as its data.\n"
    "\n"
    "  create-user LOGIN   a local user (no password; SSO users are made on login)\n"
    "    --site-admin      the user may create orgs and users\n"
    "    --org ORG --role ROLE  grant ROLE (reader, developer, maintainer, admin) on org\n"
    "                      ORG (its slug, e.g. default)\n"
    "  create-token        print a new personal access token of --user (shown once)\n"
    "    --scopes LIST     read, write, admin (default read,write)\n"
    "    --org ORG         the token acts in org ORG only\n"
    "    --expires-in D    e.g. 720h, 12h (default: never)\n"
    "    --name NAME       what the token is for (shown in token lists)\n"
    "  set-password LOGIN  read a new password (8-1024 bytes; one line, its newline\n"
    "                      dropped) from stdin and set it: LOGIN can log in to the\n"
    "                      console. Also reset-password. Passwords never go in argv.\n"
    "  create-registration-token  print a new worker registration token (vk_reg_,\n"
    "                      shown once) for 'vulcan worker --registration-token-file'\n"
    "    --org ORG         the org its workers serve (default: default)\n"
    "    --groups LIST     the machine groups its workers may serve (default: any)\n"
    "    --uses N          registrations it allows; a worker that restarts registers\n"
    "                      again (default: unlimited)\n"
    "    --expires-in D    e.g. 24h (default: never)\n"
    "  rotate-job-key      make a new job OIDC signing key in DIR/job-oidc-key.pem; the\n"
    "                      old one becomes job-oidc-key.pem.previous, still published in\n"
    "                      the JWKS; restart the servers afterwards\n"
    "    --data-dir DIR    the server's data directory (default ./vulcan-data)\n"
    "                                                              VULCAN_DATA_DIR\n"
    "  rotate-secrets-key  re-wrap every secret under a new key (servers stopped);\n"
    "                      the old key file is kept as F.old (docs/secrets.md)\n"
    "  rotate-audit-key    make a new audit signing key; the keyring DIR/audit.key.pub\n"
    "                      keeps the old public keys (docs/audit.md)\n"
    "  backup              copy a live server's database and key files (see backup --help)\n"
    "  restore             put a backup into a data directory (see restore --help)\n"
    "  --database URL      sqlite:PATH or postgres://...           VULCAN_DATABASE\n"
    "\n"
    "Exit status: 0 done, 1 refused or failed, 2 bad usage.\n";

static int fail(const char *what, const struct vk_err *err)
{
    fprintf(stderr, "vulcan admin %s: %s\n", what, err->msg);
    return 1;
}

static int org_id_of(struct vk_store *s, const char *slug, char id[VK_UUID_LEN], struct vk_err *err)
{
    struct vk_pool pool;
    vk_pool_init(&pool, 1024);
    struct vk_store_org o;
    int rc = vk_store_org_find(s, slug, &pool, &o, err);
    if (rc == 0)
        memcpy(id, o.id, VK_UUID_LEN);
    vk_pool_release(&pool);
    return rc;
}

static int create_user(struct vk_store *s, const char *login, bool site_admin, const char *org,
                       const char *role)
{
    struct vk_err err;
    vk_err_clear(&err);
    enum vk_auth_role r = VK_ROLE_NONE;
    if ((org != NULL) != (role != NULL)) {
        fputs("vulcan admin create-user: --org and --role go together\n", stderr);
        return 2;
    }
    if (role && vk_auth_role_parse(role, &r, &err) < 0) {
        fprintf(stderr, "vulcan admin create-user: --role: %s\n", err.msg);
        return 2;
    }
    struct vk_store_grant g = {.role = r};
    if (org && org_id_of(s, org, g.org_id, &err) < 0)
        return fail("create-user", &err);
    struct vk_store_user u = {.login = login, .site_admin = site_admin};
    if (vk_store_user_create(s, &u, &err) < 0)
        return fail("create-user", &err);
    memcpy(g.user_id, u.id, VK_UUID_LEN);
    if (org && vk_store_grant_create(s, &g, &err) < 0)
        return fail("create-user", &err);
    printf("created user '%s' (%s)%s%s%s%s\n", login, u.id, site_admin ? ", site admin" : "",
           org ? ", " : "", org ? role : "", org ? " of the org" : "");
    return 0;
}

static int create_token(struct vk_store *s, const char *login, const char *org, const char *scopes,
                        const char *name, const char *expires)
{
    struct vk_err err;
    vk_err_clear(&err);
    unsigned sc = 0;
    if (vk_auth_scopes_parse(scopes, &sc, &err) < 0) {
        fprintf(stderr, "vulcan admin create-token: --scopes: %s\n", err.msg);
        return 2;
    }
    int64_t exp = 0;
    if (expires && (vk_time_duration_parse(expires, strlen(expires), &exp) < 0 || exp <= 0)) {
        fprintf(stderr,
                "vulcan admin create-token: --expires-in: '%s' is not a duration such "
                "as 720h or 12h\n",
                expires);
        return 2;
    }
    struct vk_pool pool;
    vk_pool_init(&pool, 1024);
    struct vk_store_user u;
    char oid[VK_UUID_LEN] = "", token[VK_AUTH_TOKEN_MAX], id[VK_UUID_LEN];
    int rc = vk_store_user_find(s, login, &pool, &u, &err);
    if (rc == VK_ENOTFOUND)
        vk_err_set(&err, rc, "no user '%s' (vulcan admin create-user makes one)", login);
    if (rc == 0 && org)
        rc = org_id_of(s, org, oid, &err);
    if (rc == 0)
        rc = vk_store_token_issue(s, u.id, sc, oid, exp ? vk_time_now_ms() + exp : 0,
                                  name ? name : "vulcan admin create-token", token, id, &err);
    vk_pool_release(&pool);
    if (rc < 0)
        return fail("create-token", &err);
    puts(token);
    return 0;
}

static int set_password(struct vk_store *s, const char *login)
{
    char pw[VK_AUTH_PASSWORD_MAX + 2];
    size_t n = fread(pw, 1, sizeof(pw) - 1, stdin);
    pw[n] = '\0';
    if (n && pw[n - 1] == '\n')
        pw[--n] = '\0';
    if (n && pw[n - 1] == '\r')
        pw[--n] = '\0';
    struct vk_err err;
    vk_err_clear(&err);
    char phc[VK_AUTH_PHC_MAX];
    struct vk_pool pool;
    vk_pool_init(&pool, 1024);
    struct vk_store_user u;
    int rc = strlen(pw) != n ? vk_err_set(&err, VK_EINVAL, "the password holds a NUL byte")
                             : vk_auth_password_hash(pw, n, NULL, phc, &err);
    vk_auth_wipe(pw, sizeof(pw));
    if (rc == VK_EINVAL) {
        fprintf(stderr, "vulcan admin set-password: %s\n", err.msg);
        vk_pool_release(&pool);
        return 2;
    }
    if (rc == 0)
        rc = vk_store_user_find(s, login, &pool, &u, &err);
    if (rc == VK_ENOTFOUND)
        vk_err_set(&err, rc, "no user '%s' (vulcan admin create-user makes one)", login);
    if (rc == 0)
        rc = vk_store_user_set_password(s, u.id, phc, &err);
    vk_pool_release(&pool);
    if (rc < 0)
        return fail("set-password", &err);
    printf("password of '%s' set\n", login);
    return 0;
}

static int create_registration(struct vk_store *s, const char *org, const char *groups,
                               long long uses, const char *name, const char *expires)
{
    struct vk_err err;
    vk_err_clear(&err);
    int64_t exp = 0;
    if (expires && (vk_time_duration_parse(expires, strlen(expires), &exp) < 0 || exp <= 0)) {
        fprintf(stderr,
                "vulcan admin create-registration-token: --expires-in: '%s' is not a duration "
                "such as 24h\n",
                expires);
        return 2;
    }
    char oid[VK_UUID_LEN], token[VK_AUTH_TOKEN_MAX], id[VK_UUID_LEN];
    int rc = org_id_of(s, org ? org : "default", oid, &err);
    if (rc == VK_ENOTFOUND)
        vk_err_set(&err, rc, "no org '%s'", org ? org : "default");
    if (rc == 0)
        rc = vk_store_registration_issue(s, oid, groups, uses, exp ? vk_time_now_ms() + exp : 0,
                                         name ? name : "vulcan admin create-registration-token",
                                         token, id, &err);
    if (rc < 0)
        return fail("create-registration-token", &err);
    puts(token);
    vk_auth_wipe(token, sizeof(token));
    return 0;
}

/*
 * rotate-job-key: the job OIDC issuer's key file becomes FILE.previous (replacing an older
 * one) and a new key is made in its place. Servers load both at start and publish both in
 * their JWKS, signing with the new one: restart them (one at a time is fine).
 */
static int rotate_job_key(int argc, char **argv)
{
    const char *data_dir = "./vulcan-data";
    struct vk__cli_opt opts[] = {
        {"data-dir", 0, VK_CLI_STR, &data_dir, "VULCAN_DATA_DIR", true, 0, 0},
    };
    const char *pos[1];
    int npos = 0;
    int rc = vk__cli_opts_parse("admin rotate-job-key", argc - 1, argv + 1, opts,
                                VK_ARRAY_LEN(opts), pos, &npos, 0);
    if (rc)
        return rc;
    char path[4096], prev[4096 + 16];
    snprintf(path, sizeof(path), "%s/job-oidc-key.pem", data_dir);
    snprintf(prev, sizeof(prev), "%s" VK_AUTH_SIGNER_PREVIOUS, path);
    struct vk_err err;
    vk_err_clear(&err);
    struct vk_auth_signer *old = NULL, *cur = NULL;
    /* The current key must be a good one before it is kept as the previous. */
    if (vk_auth_signer_load(path, false, &old, &err) < 0) {
        fprintf(stderr, "vulcan admin rotate-job-key: %s: %s\n", path, err.msg);
        return 1;
    }
    char old_kid[64];
    snprintf(old_kid, sizeof(old_kid), "%s", vk_auth_signer_kid(old));
    vk_auth_signer_free(old);
    if (rename(path, prev) != 0) {
        fprintf(stderr, "vulcan admin rotate-job-key: cannot rename %s: %s\n", path,
                strerror(errno));
        return 1;
    }
    if (vk_auth_signer_load(path, true, &cur, &err) < 0) {
        fprintf(stderr, "vulcan admin rotate-job-key: cannot make the new key %s: %s\n", path,
                err.msg);
        if (rename(prev, path) != 0)
            fprintf(stderr, "vulcan admin rotate-job-key: and cannot put %s back: %s\n", prev,
                    strerror(errno));
        return 1;
    }
    printf("new key %s (kid %s); the previous one (kid %s) is %s and stays in the JWKS.\n"
           "Restart the servers that use %s (one at a time is fine). Rotate again no\n"
           "sooner than 5 minutes after the last restart: tokens live 5 minutes.\n",
           path, vk_auth_signer_kid(cur), old_kid, prev, data_dir);
    vk_auth_signer_free(cur);
    return 0;
}

int vk__cli_admin(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "backup") == 0) /* their own --help */
        return vk__cli_admin_backup(argc - 1, argv + 1);
    if (argc >= 2 && strcmp(argv[1], "restore") == 0)
        return vk__cli_admin_restore(argc - 1, argv + 1);
    if (argc < 2 || vk__cli_wants_help(argc, argv)) {
        fputs(usage_text, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *sub = argv[1];
    if (strcmp(sub, "rotate-job-key") == 0)
        return rotate_job_key(argc, argv);
    if (strcmp(sub, "rotate-secrets-key") == 0)
        return vk__cli_rotate_secrets_key(argc - 1, argv + 1);
    if (strcmp(sub, "rotate-audit-key") == 0)
        return vk__cli_rotate_audit_key(argc - 1, argv + 1);
    bool is_user = strcmp(sub, "create-user") == 0, is_token = strcmp(sub, "create-token") == 0,
         is_reg = strcmp(sub, "create-registration-token") == 0,
         is_pw = strcmp(sub, "set-password") == 0 || strcmp(sub, "reset-password") == 0;
    if (!is_user && !is_token && !is_reg && !is_pw) {
        fprintf(stderr, "vulcan admin: '%s' is not a subcommand; see 'vulcan admin --help'\n", sub);
        return 2;
    }
    const char *database = NULL, *user = NULL, *org = NULL, *role = NULL, *scopes = "read,write",
               *name = NULL, *expires = NULL, *groups = NULL;
    long long uses = -1;
    bool site_admin = false;
    struct vk__cli_opt opts[] = {
        {"database", 0, VK_CLI_STR, &database, "VULCAN_DATABASE", false, 0, 0},
        {"user", 0, VK_CLI_STR, &user, NULL, false, 0, 0},
        {"org", 0, VK_CLI_STR, &org, NULL, false, 0, 0},
        {"role", 0, VK_CLI_STR, &role, NULL, false, 0, 0},
        {"scopes", 0, VK_CLI_STR, &scopes, NULL, false, 0, 0},
        {"name", 0, VK_CLI_STR, &name, NULL, false, 0, 0},
        {"expires-in", 0, VK_CLI_STR, &expires, NULL, false, 0, 0},
        {"site-admin", 0, VK_CLI_FLAG, &site_admin, NULL, false, 0, 0},
        {"groups", 0, VK_CLI_STR, &groups, NULL, false, 0, 0},
        {"uses", 0, VK_CLI_INT, &uses, NULL, false, 1, 1000000000},
    };
    const char *pos[1];
    int npos = 0;
    char cmd[48];
    snprintf(cmd, sizeof(cmd), "admin %s", sub);
    int rc = vk__cli_opts_parse(cmd, argc - 1, argv + 1, opts, VK_ARRAY_LEN(opts), pos, &npos,
                                is_user || is_pw ? 1 : 0);
    if (rc)
        return rc;
    if (!database || ((is_user || is_pw) && npos != 1) || (is_token && !user)) {
        fprintf(stderr, "vulcan %s: %s needed; see 'vulcan admin --help'\n", cmd,
                !database ? "--database URL is"
                : is_user ? "one LOGIN is"
                          : "--user LOGIN is");
        return 2;
    }
    struct vk_err err;
    vk_err_clear(&err);
    struct vk_store *s = NULL;
    if (vk_store_open(database, &s, &err) < 0)
        return fail(sub, &err);
    rc = is_pw     ? set_password(s, pos[0])
         : is_user ? create_user(s, pos[0], site_admin, org, role)
         : is_reg  ? create_registration(s, org, groups, uses, name, expires)
                   : create_token(s, user, org, scopes, name, expires);
    vk_store_close(s);
    return rc;
}

int vk__cli_bootstrap(struct vk_store *store, const char *data_dir)
{
    char token[VK_AUTH_TOKEN_MAX];
    bool created = false;
    struct vk_err err;
    vk_err_clear(&err);
    if (vk_store_bootstrap_admin(store, "admin", token, &created, &err) < 0) {
        fprintf(stderr, "vulcan server: cannot create the first admin: %s\n", err.msg);
        return 1;
    }
    if (!created)
        return 0;
    char path[4096];
    snprintf(path, sizeof(path), "%s/initial-admin-token", data_dir);
    (void)mkdir(data_dir, 0700);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    size_t n = strlen(token);
    bool ok = fd >= 0 && write(fd, token, n) == (ssize_t)n && write(fd, "\n", 1) == 1;
    int e = errno;
    if (fd >= 0 && close(fd) != 0)
        ok = false;
    memset(token, 0, sizeof(token));
    if (!ok) {
        fprintf(stderr,
                "vulcan server: cannot write the initial admin token to %s: %s; make one with "
                "'vulcan admin create-token --database URL --user admin --scopes "
                "read,write,admin'\n",
                path, strerror(e));
        return 0; /* the server still works; the recovery command makes a token */
    }
    vk_log_write(VK_LOG_WARN, "server",
                 "created the site admin 'admin'; their token is in the file named here "
                 "(readable by this user only): keep it, delete the file",
                 "path", path, NULL);
    return 0;
}
