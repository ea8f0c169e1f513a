/*
 * vulcan login --server URL [--token-file FILE]: check a token against the server and store
 * server, token and CA file in the credentials file (creds.c) for the client commands.
 * vulcan logout: remove that file.
 *
 * Exit status: 0 success; 1 the server refused the token, cannot be reached, or the file
 * cannot be written; 2 bad usage.
 */
#include "cli/cli.h"
#include "vulcan/auth.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static const char login_usage[] =
    "usage: vulcan login [--server URL] [--token-file FILE | --token T] [--ca-cert FILE]\n"
    "\n"
    "Check a token with the server (GET /api/v1/workers) and store the server URL, the\n"
    "token and the CA file in $XDG_CONFIG_HOME/vulcan/credentials (default\n"
    "~/.config/vulcan/credentials, mode 0600, directory 0700). The client commands then\n"
    "use that server by default, and send its token to it when neither --token,\n"
    "--token-file nor $VULCAN_TOKEN is given.\n"
    "\n"
    "  --server URL      the server (default $VULCAN_SERVER, else the stored one, else\n"
    "                    http://127.0.0.1:8080)\n"
    "  --token-file FILE a file holding the token (e.g. <data-dir>/initial-admin-token)\n"
    "  --token T         the token itself (other users can see it in ps)\n"
    "  --ca-cert FILE    PEM CA certificates for an https:// server (stored as an\n"
    "                    absolute path)\n"
    "Without --token or --token-file: $VULCAN_TOKEN, else a line read from standard input.\n";

static const char logout_usage[] = "usage: vulcan logout\n"
                                   "\n"
                                   "Remove the credentials file 'vulcan login' wrote.\n";

/* Make `dir` and its missing parents, the last one 0700. */
static int make_dirs(const char *dir)
{
    char p[4096];
    snprintf(p, sizeof(p), "%s", dir);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/')
            continue;
        *s = '\0';
        if (mkdir(p, 0755) != 0 && errno != EEXIST)
            return -1;
        *s = '/';
    }
    if (mkdir(p, 0700) != 0 && errno != EEXIST)
        return -1;
    return chmod(p, 0700);
}

/* Write `text` to `path` through a 0600 temporary file renamed into place. */
static int write_private(const char *path, const char *text)
{
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.tmp%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return -1;
    size_t len = strlen(text), off = 0;
    while (off < len) {
        ssize_t n = write(fd, text + off, len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            close(fd);
            unlink(tmp);
            return -1;
        }
        off += (size_t)n;
    }
    if (fchmod(fd, 0600) != 0 || fsync(fd) != 0 || close(fd) != 0 || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* A token typed or piped on standard input. */
static int read_stdin_token(char tok[VK_AUTH_TOKEN_MAX])
{
    if (isatty(STDIN_FILENO))
        fputs("Token: ", stderr);
    char line[VK_AUTH_TOKEN_MAX + 8];
    if (!fgets(line, sizeof(line), stdin))
        return 1;
    size_t n = strlen(line);
    while (n && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' '))
        n--;
    int rc = n == 0 || n >= VK_AUTH_TOKEN_MAX;
    if (!rc) {
        memcpy(tok, line, n);
        tok[n] = '\0';
    }
    vk_auth_wipe(line, sizeof(line));
    return rc;
}

int vk__cli_login(int argc, char **argv)
{
    if (vk__cli_wants_help(argc, argv)) {
        fputs(login_usage, stdout);
        return 0;
    }
    const char *server = vk__cli_default_server();
    struct vk__cli_opt opts[] = {
        {"server", 0, VK_CLI_STR, &server, "VULCAN_SERVER", false, 0, 0},
    };
    const char *pos[1];
    int npos = 0;
    int rc = vk__cli_opts_parse("login", argc, argv, opts, VK_ARRAY_LEN(opts), pos, &npos, 0);
    if (rc)
        return rc;
    char tok[VK_AUTH_TOKEN_MAX];
    const char *from = NULL;
    if (vk__cli_token_for("login", server, tok, &from) != 0)
        return 1;
    if (!tok[0] || (from && strcmp(from, "the credentials file") == 0)) {
        if (read_stdin_token(tok) != 0) {
            fputs("vulcan login: no token (give --token-file FILE, or one line on stdin)\n",
                  stderr);
            return 2;
        }
    }
    const char *ca = vk__cli_ca_for(server);
    char ca_abs[PATH_MAX];
    if (ca && !realpath(ca, ca_abs)) {
        fprintf(stderr, "vulcan login: cannot find --ca-cert '%s': %s\n", ca, strerror(errno));
        vk_auth_wipe(tok, sizeof(tok));
        return 1;
    }

    /* Check it: GET /api/v1/workers needs a reader of an org under --require-auth. */
    int status = 1;
    struct vk_http_client_opts co = {.base_url = server, .ca_file = ca ? ca_abs : NULL};
    struct vk_http_client *cl = NULL;
    struct vk_err err;
    vk_err_clear(&err);
    char hv[VK_AUTH_TOKEN_MAX + 16];
    snprintf(hv, sizeof(hv), "Bearer %s", tok);
    json_t *ans = NULL, *doc = NULL;
    char *text = NULL;
    long http = 0;
    if (vk_http_client_new(&co, &cl, &err) < 0) {
        fprintf(stderr, "vulcan login: %s\n", err.msg);
        goto out;
    }
    if (vk_http_client_set_header(cl, "Authorization", hv) < 0) {
        fprintf(stderr, "vulcan login: %s is not a token\n", from ? from : "standard input");
        goto out;
    }
    if (vk__cli_call("login", cl, "GET", "/api/v1/workers", NULL, &http, &ans))
        goto out;

    char path[4096], dir[4096];
    if (vk__cli_creds_path(dir, sizeof(dir), true) != 0 ||
        vk__cli_creds_path(path, sizeof(path), false) != 0) {
        fputs("vulcan login: neither XDG_CONFIG_HOME nor HOME says where to store it\n", stderr);
        goto out;
    }
    doc = json_pack("{s:s, s:s}", "server", server, "token", tok);
    if (doc && ca && json_object_set_new(doc, "ca_cert", json_string(ca_abs)) != 0) {
        json_decref(doc);
        doc = NULL;
    }
    text = doc ? json_dumps(doc, JSON_INDENT(1)) : NULL;
    if (!text) {
        fputs("vulcan login: out of memory\n", stderr);
        goto out;
    }
    if (make_dirs(dir) != 0 || write_private(path, text) != 0) {
        fprintf(stderr, "vulcan login: cannot write '%s': %s\n", path, strerror(errno));
        goto out;
    }
    printf("Logged in to %s; credentials stored in %s\n", server, path);
    status = 0;
out:
    if (text) {
        vk_auth_wipe(text, strlen(text));
        free(text);
    }
    json_decref(doc);
    json_decref(ans);
    vk_http_client_free(cl);
    vk_auth_wipe(hv, sizeof(hv));
    vk_auth_wipe(tok, sizeof(tok));
    return status;
}

int vk__cli_logout(int argc, char **argv)
{
    if (vk__cli_wants_help(argc, argv)) {
        fputs(logout_usage, stdout);
        return 0;
    }
    if (argc > 1) {
        fputs("vulcan logout: takes no arguments\n", stderr);
        return 2;
    }
    char path[4096];
    if (vk__cli_creds_path(path, sizeof(path), false) != 0) {
        fputs("vulcan logout: neither XDG_CONFIG_HOME nor HOME is set\n", stderr);
        return 1;
    }
    if (unlink(path) != 0) {
        if (errno == ENOENT) {
            printf("Not logged in (no %s)\n", path);
            return 0;
        }
        fprintf(stderr, "vulcan logout: cannot remove '%s': %s\n", path, strerror(errno));
        return 1;
    }
    printf("Removed %s\n", path);
    return 0;
}
