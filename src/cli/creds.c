/*
 * The client commands' credentials and TLS trust, in one place (docs/api.md, "Client
 * options"): the global options --token, --token-file and --ca-cert, which main.c takes
 * out of argv for every client command wherever they stand; $VULCAN_TOKEN and
 * $VULCAN_CA_CERT; and the credentials file `vulcan login` writes
 * ($XDG_CONFIG_HOME/vulcan/credentials, JSON {"server", "token", "ca_cert"}).
 *
 * Token precedence: --token, --token-file, $VULCAN_TOKEN, then the credentials file,
 * whose token is only ever sent to the server it was stored for. CA: --ca-cert,
 * $VULCAN_CA_CERT, then the credentials file's (for its server).
 */
#include "cli/cli.h"
#include "vulcan/auth.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CREDS_MAX_FILE (16u * 1024u)
#define CREDS_MAX_PATH 4096u

static struct {
    char *token; /* --token (copied; argv wiped) */
    const char *token_file;
    const char *ca_file; /* --ca-cert */
} global;

static struct {
    bool loaded;
    char *server;
    char *token;
    char *ca_cert;
} stored;

/* ---------------------------------------------------------------- Global options */

static void keep_token(char *v)
{
    if (global.token) {
        vk_auth_wipe(global.token, strlen(global.token));
        vk_mem_free(global.token);
    }
    global.token = vk_mem_xstrdup(v);
    memset(v, 'x', strlen(v)); /* ps shows x's from now on */
}

int vk__cli_global_opts(const char *cmd, int *argc, char **argv)
{
    static const char *const names[] = {"--token", "--token-file", "--ca-cert"};
    int out = 1;
    int i = 1;
    for (; i < *argc; i++) {
        char *a = argv[i];
        if (strcmp(a, "--") == 0)
            break;
        size_t which = VK_ARRAY_LEN(names);
        char *val = NULL;
        for (size_t k = 0; k < VK_ARRAY_LEN(names); k++) {
            size_t n = strlen(names[k]);
            if (strncmp(a, names[k], n) == 0 && (a[n] == '\0' || a[n] == '=')) {
                which = k;
                val = a[n] == '=' ? a + n + 1 : NULL;
                break;
            }
        }
        if (which == VK_ARRAY_LEN(names)) {
            argv[out++] = a;
            continue;
        }
        if (!val) {
            if (i + 1 >= *argc) {
                fprintf(stderr, "vulcan %s: %s needs a value\n", cmd, names[which]);
                return 2;
            }
            val = argv[++i];
        }
        if (which == 0)
            keep_token(val);
        else if (which == 1)
            global.token_file = val;
        else
            global.ca_file = val;
    }
    for (; i < *argc; i++)
        argv[out++] = argv[i];
    argv[out] = NULL;
    *argc = out;
    return 0;
}

/* ---------------------------------------------------------------- Credentials file */

int vk__cli_creds_path(char *buf, size_t cap, bool dir_only)
{
    const char *xdg = getenv("XDG_CONFIG_HOME");
    const char *home = getenv("HOME");
    int n;
    if (xdg && xdg[0] == '/')
        n = snprintf(buf, cap, "%s/vulcan%s", xdg, dir_only ? "" : "/credentials");
    else if (home && *home)
        n = snprintf(buf, cap, "%s/.config/vulcan%s", home, dir_only ? "" : "/credentials");
    else
        return VK_EINVAL;
    return n < 0 || (size_t)n >= cap ? VK_ETOOBIG : 0;
}

/* Compare two server URLs, ignoring trailing slashes. */
static bool same_server(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    while (la && a[la - 1] == '/')
        la--;
    while (lb && b[lb - 1] == '/')
        lb--;
    return la == lb && strncmp(a, b, la) == 0;
}

static char *jdup(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s && *s ? vk_mem_xstrdup(s) : NULL;
}

/* Read the credentials file once; a missing file is no error, a broken one a warning. */
static void load_stored(void)
{
    if (stored.loaded)
        return;
    stored.loaded = true;
    char path[CREDS_MAX_PATH];
    if (vk__cli_creds_path(path, sizeof(path), false) != 0)
        return;
    struct stat st;
    if (stat(path, &st) != 0)
        return;
    if (st.st_mode & 077)
        fprintf(stderr, "vulcan: warning: '%s' can be read by other users; chmod 600 it\n", path);
    struct vk_buf b = VK_BUF_INIT(CREDS_MAX_FILE);
    struct vk_err err;
    vk_err_clear(&err);
    if (vk_buf_read_file(&b, path, &err) < 0) {
        fprintf(stderr, "vulcan: warning: cannot read '%s': %s\n", path, err.msg);
        vk_buf_release(&b);
        return;
    }
    json_error_t je;
    json_t *j = b.data ? json_loadb(b.data, b.len, 0, &je) : NULL;
    vk_auth_wipe(b.data, b.len);
    vk_buf_release(&b);
    if (!json_is_object(j)) {
        fprintf(stderr, "vulcan: warning: '%s' is not a credentials file; run 'vulcan login'\n",
                path);
        json_decref(j);
        return;
    }
    stored.server = jdup(j, "server");
    stored.token = jdup(j, "token");
    stored.ca_cert = jdup(j, "ca_cert");
    json_t *t = json_object_get(j, "token");
    if (json_is_string(t))
        vk_auth_wipe((char *)json_string_value(t), json_string_length(t));
    json_decref(j);
}

const char *vk__cli_default_server(void)
{
    load_stored();
    return stored.server ? stored.server : VK_CLI_DEFAULT_SERVER;
}

/* ---------------------------------------------------------------- Clients */

/* Read a token file into `tok` (VK_AUTH_TOKEN_MAX), trailing white space cut. */
static int read_token_file(const char *cmd, const char *path, char *tok)
{
    struct vk_buf b = VK_BUF_INIT(4096);
    struct vk_err err;
    vk_err_clear(&err);
    if (vk_buf_read_file(&b, path, &err) < 0) {
        fprintf(stderr, "vulcan %s: cannot read the token file '%s': %s\n", cmd, path, err.msg);
        vk_buf_release(&b);
        return 1;
    }
    size_t n = b.len;
    while (n && (b.data[n - 1] == '\n' || b.data[n - 1] == '\r' || b.data[n - 1] == ' ' ||
                 b.data[n - 1] == '\t'))
        n--;
    int rc = 0;
    if (n == 0 || n >= VK_AUTH_TOKEN_MAX) {
        fprintf(stderr, "vulcan %s: the token file '%s' does not hold a token\n", cmd, path);
        rc = 1;
    } else {
        memcpy(tok, b.data, n);
        tok[n] = '\0';
    }
    vk_auth_wipe(b.data, b.len);
    vk_buf_release(&b);
    return rc;
}

int vk__cli_token_for(const char *cmd, const char *server, char tok[VK_AUTH_TOKEN_MAX],
                      const char **from)
{
    tok[0] = '\0';
    *from = NULL;
    const char *src = NULL;
    if (global.token) {
        src = global.token;
        *from = "--token";
    } else if (global.token_file) {
        *from = "--token-file";
        return read_token_file(cmd, global.token_file, tok);
    } else if (getenv("VULCAN_TOKEN") && *getenv("VULCAN_TOKEN")) {
        src = getenv("VULCAN_TOKEN");
        *from = "VULCAN_TOKEN";
    } else {
        load_stored();
        if (stored.token && stored.server && same_server(stored.server, server)) {
            src = stored.token;
            *from = "the credentials file";
        }
    }
    if (!src)
        return 0;
    if (strlen(src) >= VK_AUTH_TOKEN_MAX) {
        fprintf(stderr, "vulcan %s: %s is not a token\n", cmd, *from);
        return 1;
    }
    snprintf(tok, VK_AUTH_TOKEN_MAX, "%s", src);
    return 0;
}

const char *vk__cli_ca_for(const char *server)
{
    if (global.ca_file && *global.ca_file)
        return global.ca_file;
    const char *env = getenv("VULCAN_CA_CERT");
    if (env && *env)
        return env;
    load_stored();
    if (stored.ca_cert && stored.server && same_server(stored.server, server))
        return stored.ca_cert;
    return NULL;
}

int vk__cli_client(const char *cmd, const char *server, struct vk_http_client **out)
{
    struct vk_http_client_opts co = {
        .base_url = server, .max_response = 64u * 1024u * 1024u, .ca_file = vk__cli_ca_for(server)};
    struct vk_err err;
    vk_err_clear(&err);
    *out = NULL;
    if (vk_http_client_new(&co, out, &err) < 0) {
        fprintf(stderr, "vulcan %s: %s\n", cmd, err.msg);
        return 1;
    }
    /* A server with --require-auth wants a token (docs/security.md). */
    char tok[VK_AUTH_TOKEN_MAX];
    const char *from = NULL;
    if (vk__cli_token_for(cmd, server, tok, &from) != 0) {
        vk_http_client_free(*out);
        *out = NULL;
        return 1;
    }
    if (tok[0]) {
        char hv[VK_AUTH_TOKEN_MAX + 16];
        snprintf(hv, sizeof(hv), "Bearer %s", tok);
        int rc = vk_http_client_set_header(*out, "Authorization", hv);
        vk_auth_wipe(hv, sizeof(hv));
        vk_auth_wipe(tok, sizeof(tok));
        if (rc < 0) {
            fprintf(stderr, "vulcan %s: %s is not a token\n", cmd, from);
            vk_http_client_free(*out);
            *out = NULL;
            return 1;
        }
    }
    return 0;
}
