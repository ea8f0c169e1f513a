/*
 * vulcan server: the HTTP API, the orchestrator, the trigger service and the
 * console (and, with --workers N, local workers) in one process, over SQLite or
 * PostgreSQL; --roles runs any subset of them, so that they can run apart.
 */
#include "cli/cli.h"
#include "vulcan/api.h"
#include "vulcan/audit.h"
#include "vulcan/executor.h"
#include "vulcan/orchestrator.h"
#include "vulcan/secret_provider.h"
#include "vulcan/secrets.h"
#include "vulcan/store.h"
#include "vulcan/store_identity.h"
#include "vulcan/telemetry.h"
#include "vulcan/triggers.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static const char usage_text[] =
    "usage: vulcan server [--listen ADDR:PORT] [--database URL] [--data-dir DIR]\n"
    "                     [--roles LIST] [--workers N] [--groups LIST]\n"
    "                     [--worker-sandbox MODE] [--sandbox-network allow|deny]\n"
    "                     [--worker-timeout SECONDS] [--max-attempts N]\n"
    "                     [--queue-timeout DURATION]\n"
    "                     [--log-level LEVEL] [--log-format json|text] [--config FILE]\n"
    "                     [--otlp-endpoint URL] [--public-url URL] [--no-auth]\n"
    "                     [--tls-cert FILE --tls-key FILE] [--http-threads N]\n"
    "                     [--repo-schemes LIST] [--allow-repo-hosts CIDRS] [--allow-file-repos]\n"
    "                     [--oidc-issuer URL --oidc-client-id ID --oidc-client-secret-file FILE\n"
    "                      [--oidc-groups-claim NAME] [--oidc-org ORG] [--oidc-ca-cert FILE]]\n"
    "                     [--saml-idp-metadata FILE [--saml-sp-entity-id ID]\n"
    "                      [--saml-groups-attribute NAME] [--saml-org ORG]]\n"
    "\n"
    "Run the Vulcan CI server: the HTTP API with the worker protocol, the\n"
    "orchestrator (queue, scheduling, retries, dead-worker detection), the trigger\n"
    "service (webhooks, manual runs and cron schedules: everything that reads git)\n"
    "and the web console.\n"
    "\n"
    "  --listen ADDR:PORT       where to listen (default 127.0.0.1:8080)      VULCAN_LISTEN\n"
    "  --database URL           sqlite:PATH, sqlite::memory: or postgres://...  VULCAN_DATABASE\n"
    "                           (default sqlite:DATA_DIR/vulcan.db)\n"
    "  --data-dir DIR           state of this server (default ./vulcan-data)  VULCAN_DATA_DIR\n"
    "  --secrets-key-file F     the secrets key (32 bytes, 0600; default DIR/secrets.key, made\n"
    "                           when absent)                       VULCAN_SECRETS_KEY_FILE\n"
    "  --audit-key-file F       the audit log's signing key (Ed25519, 0600; default\n"
    "                           DIR/audit.key, made when absent; public keys in F.pub)\n"
    "                                                              VULCAN_AUDIT_KEY_FILE\n"
    "  --audit-checkpoint-every N  sign the audit chain's head every N records (default\n"
    "                           1000; also every 10 minutes and at stop)\n"
    "                                                    VULCAN_AUDIT_CHECKPOINT_EVERY\n"
    "  --audit-copy-file F      also append each audit record to F (JSON lines)\n"
    "                                                             VULCAN_AUDIT_COPY_FILE\n"
    "  --audit-syslog URL       also send each audit record to syslog: tcp://HOST:PORT or\n"
    "                           udp://HOST:PORT (RFC 5424, facility 13)  VULCAN_AUDIT_SYSLOG\n"
    "  --no-audit               record nothing in the audit log (for measuring its cost;\n"
    "                           a gap in the log is visible to no one)  VULCAN_NO_AUDIT\n"
    "  --roles LIST             parts to run, comma-separated: api, orchestrator,\n"
    "                           triggers, console (default all four)        VULCAN_ROLES\n"
    "                           Every process answers /health and /metrics.\n"
    "  --trigger-threads N      trigger service threads (default 2): they run git\n"
    "  --http-threads N         HTTP polling threads (default 4); they never wait on git,\n"
    "                           the network or a child process      VULCAN_HTTP_THREADS\n"
    "  --repo-schemes LIST      repository URL schemes the server fetches, of https, ssh,\n"
    "                           http, git (default https,ssh)        VULCAN_REPO_SCHEMES\n"
    "  --allow-repo-hosts LIST  address ranges (CIDR, comma-separated) repositories and URL\n"
    "                           imports may be fetched from although loopback, private or\n"
    "                           link-local; by default only public addresses\n"
    "                                                               VULCAN_ALLOW_REPO_HOSTS\n"
    "  --allow-file-repos       also file:// URLs and local paths: the server then reads\n"
    "                           repositories on its own file system  VULCAN_ALLOW_FILE_REPOS\n"
    "  --workers N              also start N local workers per machine group  VULCAN_WORKERS\n"
    "  --groups LIST            machine groups of the local workers, comma-separated:\n"
    "                           N workers serve all of them (at most 8)\n"
    "                                                          VULCAN_WORKER_GROUPS\n"
    "                           Without it, N workers serve 'default' and N more are\n"
    "                           started for each other group as soon as work of that\n"
    "                           group is ready (so 'machine \"ubuntu-24.04\"' just runs).\n"
    "  --worker-sandbox MODE    sandbox of local workers: auto, bwrap, none (default auto)\n"
    "  --worker-cgroups MODE    cgroups of local workers: auto, always, never (default auto;\n"
    "                           never: no pids/memory/cpu limits, see docs/security.md)\n"
    "  --sandbox-network POLICY allow or deny: may fragments ask for the host network\n"
    "                           with `network #true` (default allow)  VULCAN_SANDBOX_NETWORK\n"
    "  --worker-timeout SECONDS a worker silent this long is dead (default 30)\n"
    "  --max-attempts N         attempts before a fragment whose workers died fails (3)\n"
    "  --queue-timeout DURATION a fragment waiting this long for a worker fails, e.g.\n"
    "                           \"30m\"; workflows may set their own `queue-timeout`\n"
    "                           (default 24h)                      VULCAN_QUEUE_TIMEOUT\n"
    "  --log-level LEVEL        debug, info, warn, error (default info)      VULCAN_LOG_LEVEL\n"
    "  --log-format FORMAT      json or text (default: text on a terminal, else json)\n"
    "  --otlp-endpoint URL      send traces over OTLP/HTTP to URL (e.g. http://collector:4318)\n"
    "                           also passed to local workers              VULCAN_OTLP_ENDPOINT\n"
    "  --public-url URL         the console's URL in commit-status links, e.g.\n"
    "                           https://ci.example.com (default: the listen URL)  "
    "VULCAN_PUBLIC_URL\n"
    "  --allowed-hosts LIST     Host names besides loopback, the listen address and the\n"
    "                           public URL's that requests may use (DNS rebinding guard;\n"
    "                           '*': any)                            VULCAN_ALLOWED_HOSTS\n"
    "  --no-auth                serve without credentials: anyone who can reach the server\n"
    "                           runs code on its workers. Only for one person's machine on\n"
    "                           loopback. By default every route needs a token and a role\n"
    "                           and workers a registration token (docs/security.md)\n"
    "                                                                   VULCAN_NO_AUTH\n"
    "  --require-auth           the default; accepted for older scripts\n"
    "  --max-log-bytes N        a fragment attempt's stored log, whatever its worker sends\n"
    "                           (default 16 MiB + 64 KiB: the worker's own cap and its\n"
    "                           notice); past it one notice, the rest refused with 413\n"
    "                                                                  VULCAN_MAX_LOG_BYTES\n"
    "  --max-connections N      simultaneous client connections (default 10000; more\n"
    "                           wait to be accepted)               VULCAN_MAX_CONNECTIONS\n"
    "  --max-connections-per-address N  from one client address (default 64, plus 4 per\n"
    "                           local worker); the next 16 get 429, more are closed\n"
    "                                                 VULCAN_MAX_CONNECTIONS_PER_ADDRESS\n"
    "  --request-timeout SECONDS  a request's headers and body must arrive within this,\n"
    "                           however slowly they trickle (default 60); then 408\n"
    "                                                             VULCAN_REQUEST_TIMEOUT\n"
    "  --tls-cert FILE          serve HTTPS with this PEM certificate chain (server\n"
    "                           certificate first)                      VULCAN_TLS_CERT\n"
    "  --tls-key FILE           its PEM private key (mode 0600)          VULCAN_TLS_KEY\n"
    "                           Both are re-read on SIGHUP. Local workers verify the\n"
    "                           server against --tls-cert.\n"
    "  --oidc-issuer URL        console login with OpenID Connect at this provider (not\n"
    "                           with --no-auth; docs/security.md)      VULCAN_OIDC_ISSUER\n"
    "  --oidc-client-id ID      this server's client id there        VULCAN_OIDC_CLIENT_ID\n"
    "  --oidc-client-secret-file FILE  a file holding the client secret\n"
    "                                                   VULCAN_OIDC_CLIENT_SECRET_FILE\n"
    "  --oidc-groups-claim NAME the ID token claim listing teams (default groups)\n"
    "                                                        VULCAN_OIDC_GROUPS_CLAIM\n"
    "  --oidc-org ORG           the org whose teams the groups are (default default)\n"
    "                                                                 VULCAN_OIDC_ORG\n"
    "  --oidc-ca-cert FILE      PEM CA certificates for an https:// provider\n"
    "                           (default: the system's)              VULCAN_OIDC_CA_CERT\n"
    "                           The redirect URI to register at the provider is\n"
    "                           PUBLIC_URL/api/v1/sso/oidc/callback.\n"
    "  --saml-idp-metadata FILE console login with SAML 2.0 at the IdP of this metadata\n"
    "                           file (not with --no-auth)      VULCAN_SAML_IDP_METADATA\n"
    "  --saml-sp-entity-id ID   this server's entity id (default\n"
    "                           PUBLIC_URL/api/v1/sso/saml/metadata)\n"
    "                                                        VULCAN_SAML_SP_ENTITY_ID\n"
    "  --saml-groups-attribute NAME  the attribute listing teams (default groups)\n"
    "                                                    VULCAN_SAML_GROUPS_ATTRIBUTE\n"
    "  --saml-org ORG           the org whose teams the groups are (default default)\n"
    "                                                                 VULCAN_SAML_ORG\n"
    "                           The SP metadata for the IdP is at\n"
    "                           PUBLIC_URL/api/v1/sso/saml/metadata.\n"
    "  --secret-provider SPEC   NAME=PATH [ARG...]: an executable (absolute path, fixed\n"
    "                           arguments split on spaces, no shell) that resolves\n"
    "                           secrets defined with provider=NAME; repeatable\n"
    "                           (docs/secrets.md \"Providers\")  VULCAN_SECRET_PROVIDERS\n"
    "  --secret-provider-timeout D  a provider taking longer is killed (default 10s)\n"
    "                           VULCAN_SECRET_PROVIDER_TIMEOUT\n"
    "  --config FILE            a KDL file of settings, one per line: listen \"0.0.0.0:8080\"\n"
    "\n"
    "Flags win over VULCAN_* environment variables, which win over the config file.\n"
    "Metrics: GET /metrics (Prometheus text format). SIGTERM or SIGINT stops the\n"
    "server gracefully; SIGHUP re-reads the TLS certificate and key.\n"
    "Exit status 2: bad usage, or a TLS certificate or key that cannot be used.\n";

enum { ROLE_API = 1, ROLE_ORCH = 2, ROLE_TRIG = 4, ROLE_CONSOLE = 8 };

/* "api,orchestrator,triggers,console" (any non-empty subset, any order) into bits. */
static int parse_roles(const char *list, unsigned *out)
{
    static const struct {
        const char *name;
        unsigned bit;
    } names[] = {{"api", ROLE_API},
                 {"orchestrator", ROLE_ORCH},
                 {"triggers", ROLE_TRIG},
                 {"console", ROLE_CONSOLE}};
    *out = 0;
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ",");
        bool known = false;
        for (size_t i = 0; i < VK_ARRAY_LEN(names) && !known; i++) {
            if (n == strlen(names[i].name) && strncmp(p, names[i].name, n) == 0) {
                *out |= names[i].bit;
                known = true;
            }
        }
        if (!known) {
            fprintf(stderr,
                    "vulcan server: unknown role '%.*s' in --roles (api, orchestrator, "
                    "triggers, console)\n",
                    (int)n, p);
            return 2;
        }
        p += n + (p[n] == ',');
    }
    if (!*out) {
        fputs("vulcan server: --roles needs at least one of api, orchestrator, triggers, "
              "console\n",
              stderr);
        return 2;
    }
    return 0;
}

/*
 * Without --groups, local workers follow the work: the orchestrator's ready hook (its
 * listener thread) notes each machine group that got ready work, and the main loop starts
 * local workers for the groups they do not serve yet.
 */
struct auto_groups {
    pthread_mutex_t lock;
    struct vk_api *api;
    char names[48][128]; /* groups noted or served, in order */
    size_t n, served;    /* names[served..n) still need workers */
};

static void auto_ready(void *ctx, const char *group)
{
    struct auto_groups *ag = ctx;
    pthread_mutex_lock(&ag->lock);
    bool known = false;
    for (size_t i = 0; i < ag->n && !known; i++)
        known = strcmp(ag->names[i], group) == 0;
    if (!known && ag->n < VK_ARRAY_LEN(ag->names) && strlen(group) < sizeof(ag->names[0]))
        snprintf(ag->names[ag->n++], sizeof(ag->names[0]), "%s", group);
    pthread_mutex_unlock(&ag->lock);
    vk_api_wake(ag->api, group);
}

/* Start `per_group` local workers for each group noted since the last call. */
static void auto_start(struct auto_groups *ag, struct vk__cli_local *local, int per_group,
                       const char *url, const char *root, const char *const *extra)
{
    for (;;) {
        char group[128];
        pthread_mutex_lock(&ag->lock);
        bool more = ag->served < ag->n;
        if (more)
            snprintf(group, sizeof(group), "%s", ag->names[ag->served++]);
        pthread_mutex_unlock(&ag->lock);
        if (!more)
            return;
        struct vk_err err;
        vk_err_clear(&err);
        const char *g[] = {group};
        if (vk__cli_local_add(local, per_group, url, g, 1, root, extra, &err) < 0)
            vk_log_write(VK_LOG_WARN, "server", "cannot start local workers for a machine group",
                         "group", group, "error", err.msg, NULL);
        else
            vk_log_write(VK_LOG_INFO, "server", "started local workers for a machine group",
                         "group", group, NULL);
    }
}

/* Settings shared with `vulcan run`. */
static int setup_logging(const char *cmd, const char *level, const char *format)
{
    enum vk_log_level lv = VK_LOG_INFO;
    enum vk_log_format fm = isatty(2) ? VK_LOG_TEXT : VK_LOG_JSON;
    if (level && vk_log_level_parse(level, &lv) != 0) {
        fprintf(stderr, "vulcan %s: unknown log level '%s'\n", cmd, level);
        return 2;
    }
    if (format && vk_log_format_parse(format, &fm) != 0) {
        fprintf(stderr, "vulcan %s: unknown log format '%s' (json or text)\n", cmd, format);
        return 2;
    }
    vk_log_configure(lv, fm, 2);
    return 0;
}

/* "http://HOST:PORT" of `listen` (0.0.0.0 or no host: 127.0.0.1) with `port`. */
static void listen_url(const char *listen, unsigned port, bool tls, char *out, size_t n)
{
    char host[96];
    snprintf(host, sizeof(host), "%s", listen);
    char *colon = strrchr(host, ':');
    if (colon)
        *colon = '\0';
    if (!host[0] || strcmp(host, "0.0.0.0") == 0)
        snprintf(host, sizeof(host), "127.0.0.1");
    snprintf(out, n, "%s://%s:%u", tls ? "https" : "http", host, port);
}

/* True when `listen` ("ADDR:PORT") is a loopback address only. */
static bool listen_is_loopback(const char *listen)
{
    char host[96];
    snprintf(host, sizeof(host), "%s", listen);
    char *colon = strrchr(host, ':');
    if (colon)
        *colon = '\0';
    return strncmp(host, "127.", 4) == 0 || strcmp(host, "[::1]") == 0 ||
           strcmp(host, "::1") == 0 || strcmp(host, "localhost") == 0;
}

#define TLS_MAX_CERT (1024u * 1024u)
#define TLS_MAX_KEY (64u * 1024u)

/*
 * Read the PEM files `cert_path` and `key_path` into `cert` and `key` (released by the
 * caller), warning when the key can be read by others than its owner. Returns 0, or 2
 * after printing why (the same status whether at start or, logged, on SIGHUP).
 */
static int read_tls_files(const char *cert_path, const char *key_path, struct vk_buf *cert,
                          struct vk_buf *key, bool at_start)
{
    struct vk_err err;
    vk_err_clear(&err);
    vk_buf_init(cert, TLS_MAX_CERT);
    vk_buf_init(key, TLS_MAX_KEY);
    const char *which = cert_path;
    int rc = vk_buf_read_file(cert, cert_path, &err);
    if (rc == 0) {
        which = key_path;
        rc = vk_buf_read_file(key, key_path, &err);
    }
    if (rc == 0 && (!cert->data || !key->data)) {
        rc = VK_EINVAL;
        vk_err_set(&err, VK_EINVAL, "empty file");
        which = !cert->data ? cert_path : key_path;
    }
    if (rc < 0) {
        if (at_start)
            fprintf(stderr, "vulcan server: cannot read the TLS file '%s': %s\n", which, err.msg);
        else
            vk_log_write(VK_LOG_WARN, "server", "cannot re-read the TLS files; keeping the old",
                         "file", which, "error", err.msg, NULL);
        return 2;
    }
    struct stat st;
    if (stat(key_path, &st) == 0 && (st.st_mode & (S_IRGRP | S_IROTH)))
        vk_log_write(VK_LOG_WARN, "server",
                     "the TLS key file can be read by other users than its owner; chmod 600 it",
                     "file", key_path, NULL);
    return 0;
}

static void release_tls_files(struct vk_buf *cert, struct vk_buf *key)
{
    vk_auth_wipe(key->data, key->len);
    vk_buf_release(key);
    vk_buf_release(cert);
}

/* The server's own start and stop in the default org's audit log, by `system`. */
static void server_event(struct vk_audit *audit, struct vk_store *store, const char *action,
                         const char *roles, const char *url)
{
    if (!audit)
        return;
    struct vk_store_org org;
    struct vk_pool pool;
    vk_pool_init(&pool, 0);
    struct vk_err err;
    vk_err_clear(&err);
    if (vk_store_org_find(store, "default", &pool, &org, &err) == 0) {
        json_t *d = json_pack("{s:s, s:s, s:s}", "version", VK_VERSION, "roles", roles, "url", url);
        struct vk_audit_event ev = {
            .org = org.id, .actor = "system", .action = action, .outcome = "success", .details = d};
        vk_audit_record(audit, &ev);
        json_decref(d);
    }
    vk_pool_release(&pool);
}

int vk__cli_server(int argc, char **argv)
{
    if (vk__cli_wants_help(argc, argv)) {
        fputs(usage_text, stdout);
        return 0;
    }
    const char *listen = "127.0.0.1:8080", *database = NULL, *data_dir = "./vulcan-data";
    const char *roles = "api,orchestrator,triggers,console", *sandbox = "auto", *log_level = NULL,
               *log_format = NULL, *otlp = NULL, *public_url = NULL, *net_policy = "allow",
               *queue_timeout = "24h", *allowed_hosts = NULL, *repo_schemes = "https,ssh",
               *repo_hosts = NULL, *worker_cgroups = "auto";
    bool allow_file_repos = false;
    long long http_threads = 4;
    const char *tls_cert = NULL, *tls_key = NULL, *secrets_key_file = NULL, *audit_key_file = NULL;
    long long audit_every = 1000;
    const char *audit_copy_file = NULL, *audit_syslog = NULL;
    struct vk_secret_key secrets_key;
    int secrets_key_version = 0;
    const char *oidc_issuer = NULL, *oidc_client_id = NULL, *oidc_secret_file = NULL,
               *oidc_groups = NULL, *oidc_org = NULL, *oidc_ca = NULL;
    const char *saml_metadata = NULL, *saml_entity = NULL, *saml_groups = NULL, *saml_org = NULL;
    bool require_auth = false, no_auth = false, no_audit = false;
    long long workers = 0, worker_timeout = 30, max_attempts = 3, trigger_threads = 2,
              max_log_bytes = VK_API_DEFAULT_MAX_LOG, max_conns = 10000, per_address = 0,
              request_timeout = 60;
    struct vk__cli_list groups = {.n = 0}, provider_specs = {.n = 0};
    struct vk__cli_keep config_strings = {.n = 0}; /* the config file's string values */
    const char *provider_timeout = NULL;
    struct vk__cli_opt opts[] = {
        {"secret-provider", 0, VK_CLI_LIST, &provider_specs, "VULCAN_SECRET_PROVIDERS", true, 0, 0},
        {"secret-provider-timeout", 0, VK_CLI_STR, &provider_timeout,
         "VULCAN_SECRET_PROVIDER_TIMEOUT", true, 0, 0},
        {"groups", 0, VK_CLI_LIST, &groups, "VULCAN_WORKER_GROUPS", true, 0, 0},
        {"listen", 0, VK_CLI_STR, &listen, "VULCAN_LISTEN", true, 0, 0},
        {"database", 0, VK_CLI_STR, &database, "VULCAN_DATABASE", true, 0, 0},
        {"data-dir", 0, VK_CLI_STR, &data_dir, "VULCAN_DATA_DIR", true, 0, 0},
        {"roles", 0, VK_CLI_STR, &roles, "VULCAN_ROLES", true, 0, 0},
        {"workers", 0, VK_CLI_INT, &workers, "VULCAN_WORKERS", true, 0, 64},
        {"trigger-threads", 0, VK_CLI_INT, &trigger_threads, "VULCAN_TRIGGER_THREADS", true, 1, 64},
        {"http-threads", 0, VK_CLI_INT, &http_threads, "VULCAN_HTTP_THREADS", true, 1, 64},
        {"repo-schemes", 0, VK_CLI_STR, &repo_schemes, "VULCAN_REPO_SCHEMES", true, 0, 0},
        {"allow-repo-hosts", 0, VK_CLI_STR, &repo_hosts, "VULCAN_ALLOW_REPO_HOSTS", true, 0, 0},
        {"allow-file-repos", 0, VK_CLI_FLAG, &allow_file_repos, "VULCAN_ALLOW_FILE_REPOS", true, 0,
         0},
        {"worker-sandbox", 0, VK_CLI_STR, &sandbox, "VULCAN_WORKER_SANDBOX", true, 0, 0},
        {"worker-cgroups", 0, VK_CLI_STR, &worker_cgroups, "VULCAN_WORKER_CGROUPS", true, 0, 0},
        {"sandbox-network", 0, VK_CLI_STR, &net_policy, "VULCAN_SANDBOX_NETWORK", true, 0, 0},
        {"worker-timeout", 0, VK_CLI_INT, &worker_timeout, "VULCAN_WORKER_TIMEOUT", true, 1, 86400},
        {"max-attempts", 0, VK_CLI_INT, &max_attempts, "VULCAN_MAX_ATTEMPTS", true, 1, 100},
        {"queue-timeout", 0, VK_CLI_STR, &queue_timeout, "VULCAN_QUEUE_TIMEOUT", true, 0, 0},
        {"log-level", 0, VK_CLI_STR, &log_level, "VULCAN_LOG_LEVEL", true, 0, 0},
        {"log-format", 0, VK_CLI_STR, &log_format, "VULCAN_LOG_FORMAT", true, 0, 0},
        {"otlp-endpoint", 0, VK_CLI_STR, &otlp, "VULCAN_OTLP_ENDPOINT", true, 0, 0},
        {"public-url", 0, VK_CLI_STR, &public_url, "VULCAN_PUBLIC_URL", true, 0, 0},
        {"require-auth", 0, VK_CLI_FLAG, &require_auth, "VULCAN_REQUIRE_AUTH", true, 0, 0},
        {"no-auth", 0, VK_CLI_FLAG, &no_auth, "VULCAN_NO_AUTH", true, 0, 0},
        {"no-audit", 0, VK_CLI_FLAG, &no_audit, "VULCAN_NO_AUDIT", true, 0, 0},
        {"max-log-bytes", 0, VK_CLI_INT, &max_log_bytes, "VULCAN_MAX_LOG_BYTES", true, 4096,
         1LL << 36},
        {"max-connections", 0, VK_CLI_INT, &max_conns, "VULCAN_MAX_CONNECTIONS", true, 1, 1000000},
        {"max-connections-per-address", 0, VK_CLI_INT, &per_address,
         "VULCAN_MAX_CONNECTIONS_PER_ADDRESS", true, 1, 1000000},
        {"request-timeout", 0, VK_CLI_INT, &request_timeout, "VULCAN_REQUEST_TIMEOUT", true, 1,
         3600},
        {"allowed-hosts", 0, VK_CLI_STR, &allowed_hosts, "VULCAN_ALLOWED_HOSTS", true, 0, 0},
        {"tls-cert", 0, VK_CLI_STR, &tls_cert, "VULCAN_TLS_CERT", true, 0, 0},
        {"tls-key", 0, VK_CLI_STR, &tls_key, "VULCAN_TLS_KEY", true, 0, 0},
        {"oidc-issuer", 0, VK_CLI_STR, &oidc_issuer, "VULCAN_OIDC_ISSUER", true, 0, 0},
        {"oidc-client-id", 0, VK_CLI_STR, &oidc_client_id, "VULCAN_OIDC_CLIENT_ID", true, 0, 0},
        {"oidc-client-secret-file", 0, VK_CLI_STR, &oidc_secret_file,
         "VULCAN_OIDC_CLIENT_SECRET_FILE", true, 0, 0},
        {"oidc-groups-claim", 0, VK_CLI_STR, &oidc_groups, "VULCAN_OIDC_GROUPS_CLAIM", true, 0, 0},
        {"oidc-org", 0, VK_CLI_STR, &oidc_org, "VULCAN_OIDC_ORG", true, 0, 0},
        {"oidc-ca-cert", 0, VK_CLI_STR, &oidc_ca, "VULCAN_OIDC_CA_CERT", true, 0, 0},
        {"audit-key-file", 0, VK_CLI_STR, &audit_key_file, "VULCAN_AUDIT_KEY_FILE", true, 0, 0},
        {"audit-copy-file", 0, VK_CLI_STR, &audit_copy_file, "VULCAN_AUDIT_COPY_FILE", true, 0, 0},
        {"audit-syslog", 0, VK_CLI_STR, &audit_syslog, "VULCAN_AUDIT_SYSLOG", true, 0, 0},
        {"audit-checkpoint-every", 0, VK_CLI_INT, &audit_every, "VULCAN_AUDIT_CHECKPOINT_EVERY",
         true, 1, 1000000},
        {"secrets-key-file", 0, VK_CLI_STR, &secrets_key_file, "VULCAN_SECRETS_KEY_FILE", true, 0,
         0},
        {"saml-idp-metadata", 0, VK_CLI_STR, &saml_metadata, "VULCAN_SAML_IDP_METADATA", true, 0,
         0},
        {"saml-sp-entity-id", 0, VK_CLI_STR, &saml_entity, "VULCAN_SAML_SP_ENTITY_ID", true, 0, 0},
        {"saml-groups-attribute", 0, VK_CLI_STR, &saml_groups, "VULCAN_SAML_GROUPS_ATTRIBUTE", true,
         0, 0},
        {"saml-org", 0, VK_CLI_STR, &saml_org, "VULCAN_SAML_ORG", true, 0, 0},
        {"", 0, VK_CLI_KEEP, &config_strings, NULL, false, 0, 0},
    };
    const char *pos[1];
    int npos = 0;
    int rc = vk__cli_opts_parse("server", argc, argv, opts, VK_ARRAY_LEN(opts), pos, &npos, 0);
    if (rc)
        return rc;
    rc = setup_logging("server", log_level, log_format);
    if (rc)
        return rc;
    if (require_auth && no_auth) {
        fputs("vulcan server: --require-auth and --no-auth contradict each other\n", stderr);
        return 2;
    }
    require_auth = !no_auth;
    int64_t queue_timeout_ms = 0;
    if (vk_time_duration_parse(queue_timeout, strlen(queue_timeout), &queue_timeout_ms) < 0 ||
        queue_timeout_ms < 1000 || queue_timeout_ms > 30LL * 24 * 3600 * 1000) {
        fprintf(stderr,
                "vulcan server: --queue-timeout '%s' is not a duration from 1s to 30 days such "
                "as \"30m\" or \"24h\"\n",
                queue_timeout);
        return 2;
    }
    unsigned r = 0;
    if (parse_roles(roles, &r) != 0)
        return 2;
    /* what the server may fetch (docs/security.md "Repository URLs"); read-only from here */
    struct vk_git_url_policy url_policy;
    vk_git_url_policy_init(&url_policy);
    {
        struct vk_err perr;
        vk_err_clear(&perr);
        if (vk_git_url_policy_schemes(&url_policy, repo_schemes, &perr) != 0 ||
            (url_policy.schemes & VK_GIT_SCHEME_FILE)) {
            fprintf(stderr, "vulcan server: --repo-schemes: %s\n",
                    perr.msg[0] ? perr.msg : "use --allow-file-repos for file");
            return 2;
        }
        if (allow_file_repos)
            url_policy.schemes |= VK_GIT_SCHEME_FILE;
        if (repo_hosts && vk_git_url_policy_ranges(&url_policy, repo_hosts, &perr) != 0) {
            fprintf(stderr, "vulcan server: --allow-repo-hosts: %s\n", perr.msg);
            return 2;
        }
    }
    bool role_api = r & ROLE_API, role_orch = r & ROLE_ORCH, role_trig = r & ROLE_TRIG;
    bool role_console = r & ROLE_CONSOLE;
    if (public_url &&
        (strlen(public_url) > VK_TRIGGERS_STATUS_MAX_PUBLIC_URL ||
         (strncmp(public_url, "http://", 7) != 0 && strncmp(public_url, "https://", 8) != 0) ||
         strpbrk(public_url, " \t\r\n\"#?") != NULL)) {
        fprintf(stderr, "vulcan server: --public-url must be an http(s) URL of at most %d bytes\n",
                VK_TRIGGERS_STATUS_MAX_PUBLIC_URL);
        return 2;
    }
    if (strcmp(net_policy, "allow") != 0 && strcmp(net_policy, "deny") != 0) {
        fprintf(stderr, "vulcan server: --sandbox-network must be allow or deny, not '%s'\n",
                net_policy);
        return 2;
    }
    /* Checked at start, so that a typo stops the server rather than every provider-backed
     * secret failing at claim; resolved when an attempt is claimed (DESIGN §8). */
    struct vk_secret_providers providers;
    vk_secret_providers_init(&providers);
    {
        struct vk_err perr;
        vk_err_clear(&perr);
        for (size_t i = 0; i < provider_specs.n; i++) {
            if (vk_secret_providers_add(&providers, provider_specs.items[i], &perr) < 0) {
                fprintf(stderr, "vulcan server: --secret-provider: %s\n", perr.msg);
                vk_secret_providers_release(&providers);
                vk__cli_opts_release(opts, VK_ARRAY_LEN(opts));
                return 2;
            }
        }
        if (provider_timeout &&
            vk_secret_providers_set_timeout(&providers, provider_timeout, &perr) < 0) {
            fprintf(stderr, "vulcan server: --secret-provider-timeout: %s\n", perr.msg);
            vk_secret_providers_release(&providers);
            vk__cli_opts_release(opts, VK_ARRAY_LEN(opts));
            return 2;
        }
    }
    enum vk_exec_cgroups cg_mode;
    if (vk_exec_cgroups_parse(worker_cgroups, &cg_mode) != 0) {
        fprintf(stderr, "vulcan server: --worker-cgroups must be auto, always or never, not '%s'\n",
                worker_cgroups);
        return 2;
    }
    bool tls = (tls_cert && *tls_cert) || (tls_key && *tls_key);
    if (tls && (!tls_cert || !*tls_cert || !tls_key || !*tls_key)) {
        fputs("vulcan server: --tls-cert and --tls-key go together\n", stderr);
        return 2;
    }
    if (tls && !vk_http_tls_supported()) {
        fputs("vulcan server: --tls-cert: this build's libmicrohttpd has no TLS support "
              "(GnuTLS); build against one that has, or put a TLS proxy in front\n",
              stderr);
        return 2;
    }
    if (oidc_issuer && *oidc_issuer && !require_auth) {
        fputs("vulcan server: --oidc-issuer cannot go with --no-auth: there is nothing to log "
              "in to\n",
              stderr);
        return 2;
    }
    if (oidc_issuer && *oidc_issuer &&
        (!oidc_client_id || !*oidc_client_id || !oidc_secret_file || !*oidc_secret_file)) {
        fputs("vulcan server: --oidc-issuer needs --oidc-client-id and --oidc-client-secret-file\n",
              stderr);
        return 2;
    }
    struct vk_buf oidc_secret = VK_BUF_INIT(4096);
    if (oidc_issuer && *oidc_issuer) {
        struct vk_err serr;
        vk_err_clear(&serr);
        if (vk_buf_read_file(&oidc_secret, oidc_secret_file, &serr) < 0 || !oidc_secret.data) {
            fprintf(stderr, "vulcan server: cannot read --oidc-client-secret-file '%s': %s\n",
                    oidc_secret_file, oidc_secret.data ? serr.msg : "empty file");
            vk_buf_release(&oidc_secret);
            return 2;
        }
        while (oidc_secret.len && (oidc_secret.data[oidc_secret.len - 1] == '\n' ||
                                   oidc_secret.data[oidc_secret.len - 1] == '\r'))
            oidc_secret.data[--oidc_secret.len] = '\0';
    }
    if (saml_metadata && *saml_metadata && !require_auth) {
        fputs("vulcan server: --saml-idp-metadata cannot go with --no-auth: there is nothing to "
              "log in to\n",
              stderr);
        vk_buf_release(&oidc_secret);
        return 2;
    }
    struct vk_buf saml_xml = VK_BUF_INIT(1 << 20); /* VK_AUTH_SAML_METADATA_MAX */
    if (saml_metadata && *saml_metadata) {
        struct vk_err serr;
        vk_err_clear(&serr);
        if (vk_buf_read_file(&saml_xml, saml_metadata, &serr) < 0 || !saml_xml.data) {
            fprintf(stderr, "vulcan server: cannot read --saml-idp-metadata '%s': %s\n",
                    saml_metadata, saml_xml.data ? serr.msg : "empty file");
            vk_buf_release(&saml_xml);
            vk_buf_release(&oidc_secret);
            return 2;
        }
    }
    struct vk_buf cert_pem = VK_BUF_INIT(TLS_MAX_CERT), key_pem = VK_BUF_INIT(TLS_MAX_KEY);
    if (tls) {
        if (read_tls_files(tls_cert, tls_key, &cert_pem, &key_pem, true) != 0)
            return 2;
        struct vk_err terr;
        vk_err_clear(&terr);
        if (vk_http_tls_check(cert_pem.data, key_pem.data, &terr) < 0) {
            fprintf(stderr, "vulcan server: --tls-cert '%s' / --tls-key '%s': %s\n", tls_cert,
                    tls_key, terr.msg);
            release_tls_files(&cert_pem, &key_pem);
            return 2;
        }
    }
    if (!tls && !listen_is_loopback(listen))
        vk_log_write(VK_LOG_WARN, "server",
                     "listening beyond loopback without TLS: tokens, scripts and logs cross the "
                     "network in clear text; use --tls-cert and --tls-key",
                     "listen", listen, NULL);
    if (no_auth)
        vk_log_write(VK_LOG_WARN, "server",
                     listen_is_loopback(listen)
                         ? "--no-auth: anyone on this machine can run code on the workers"
                         : "--no-auth beyond loopback: ANYONE who can reach this address can "
                           "run code on the workers and read every log",
                     "listen", listen, NULL);
    if (workers > 0 && !role_api) {
        fputs("vulcan server: --workers needs the api role\n", stderr);
        return 2;
    }

    char dbbuf[4096];
    if (!database) {
        snprintf(dbbuf, sizeof(dbbuf), "sqlite:%s/vulcan.db", data_dir);
        database = dbbuf;
    }
    /* Signals are taken with sigtimedwait() by this thread; block them before any
     * thread starts so none of the library's threads receives them. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGCHLD);
    sigaddset(&set, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    struct vk_err err;
    vk_err_clear(&err);
    struct vk_store *store = NULL;
    struct vk_audit *audit = NULL;
    struct vk_audit_key *audit_key = NULL;
    struct vk_orch *orch = NULL;
    struct vk_api *api = NULL;
    struct vk_triggers_service *trig = NULL;
    struct vk__cli_local local;
    vk__cli_local_init(&local, -1);
    struct auto_groups ag = {.lock = PTHREAD_MUTEX_INITIALIZER, .n = 1, .served = 1};
    snprintf(ag.names[0], sizeof(ag.names[0]), "default");
    bool follow_work = workers > 0 && groups.n == 0;
    int status = 1;
    /* One registry and one tracer for the process; without --otlp-endpoint the tracer
     * still makes and propagates trace ids but exports nothing. */
    struct vk_metrics *metrics = vk_metrics_new(0);
    struct vk_tracer *tracer = NULL;
    struct vk_tracer_config tc = {.endpoint = otlp && *otlp ? otlp : NULL,
                                  .service_name = "vulcan-server",
                                  .metrics = metrics};
    rc = vk_trace_new(&tc, &tracer, &err);
    if (rc < 0) {
        fprintf(stderr, "vulcan server: --otlp-endpoint: %s\n", err.msg);
        status = 2;
        goto out;
    }

    rc = vk_store_open(database, &store, &err);
    if (rc < 0) {
        fprintf(stderr, "vulcan server: cannot open the store: %s\n", err.msg);
        goto out;
    }
    if (role_api && vk__cli_secrets_key(store, data_dir, secrets_key_file, &secrets_key,
                                        &secrets_key_version) != 0) {
        status = 2;
        goto out;
    }
    if (no_audit)
        vk_log_write(VK_LOG_WARN, "server", "--no-audit: nothing is recorded in the audit log",
                     NULL);
    else if (role_api &&
             vk__cli_audit_open(store, data_dir, audit_key_file, audit_every, audit_copy_file,
                                audit_syslog, &audit_key, &audit) != 0) {
        status = 2;
        goto out;
    }
    struct vk_orch_opts oo = {
        .worker_timeout_ms = worker_timeout * 1000,
        .queue_timeout_ms = queue_timeout_ms,
        .max_attempts = (int)max_attempts,
        .metrics = metrics,
        .tracer = tracer,
        .no_reaper = !role_orch,
        .leases = true,
        .singletons = (role_orch ? 1u << VK_ORCH_REAPER : 0) | (role_trig ? 1u << VK_ORCH_CRON : 0),
        .deny_network = strcmp(net_policy, "deny") == 0,
    };
    rc = vk_orch_new(store, &oo, &orch, &err);
    if (rc == 0 && role_api && vk__cli_bootstrap(store, data_dir) != 0)
        goto out;
    if (rc == 0 && role_trig) {
        /* The listen URL as far as known before listening (a port 0 is set once known). */
        char early_url[128] = "";
        const char *port = strrchr(listen, ':');
        if (port && strtoul(port + 1, NULL, 10) > 0)
            listen_url(listen, (unsigned)strtoul(port + 1, NULL, 10), tls, early_url,
                       sizeof(early_url));
        struct vk_triggers_opts to = {.store = store,
                                      .orch = orch,
                                      .data_dir = data_dir,
                                      .threads = (unsigned)trigger_threads,
                                      .metrics = metrics,
                                      .public_url = public_url ? public_url : early_url,
                                      .url_policy = &url_policy};
        rc = vk_triggers_service_new(&to, &trig, &err);
    }
    char job_key[4200];
    snprintf(job_key, sizeof(job_key), "%s/job-oidc-key.pem", data_dir);
    if (rc == 0 && require_auth && role_api)
        (void)mkdir(data_dir, 0700);
    if (rc == 0) {
        /* Workers must beat well within the timeout: a third of it, at most 5 s
         * (the API's default), at least 1 s. Every process listens, for /health and
         * /metrics; only the api and console roles add their routes. */
        long long beat = worker_timeout / 3;
        /* Local workers reach the server from loopback, each with a few connections (work,
         * heartbeat, log, result). */
        if (!per_address)
            per_address = 64 + 4 * workers;
        struct vk_api_opts ao = {.listen = listen,
                                 .store = store,
                                 .orch = orch,
                                 .triggers = trig,
                                 .http_threads = (unsigned)http_threads,
                                 .url_policy = &url_policy,
                                 .no_api = !role_api,
                                 .no_console = !role_console,
                                 .metrics = metrics,
                                 .tracer = tracer,
                                 .audit = audit,
                                 .require_auth = require_auth,
                                 .public_url = public_url,
                                 .allowed_hosts = allowed_hosts,
                                 .job_key_file = job_key,
                                 .oidc_issuer = oidc_issuer && *oidc_issuer ? oidc_issuer : NULL,
                                 .oidc_client_id = oidc_client_id,
                                 .oidc_client_secret = oidc_secret.data,
                                 .oidc_groups_claim = oidc_groups,
                                 .oidc_org = oidc_org,
                                 .oidc_ca_file = oidc_ca,
                                 .saml_idp_metadata =
                                     saml_metadata && *saml_metadata ? saml_xml.data : NULL,
                                 .saml_idp_metadata_len = saml_xml.len,
                                 .saml_sp_entity_id = saml_entity,
                                 .saml_groups_attribute = saml_groups,
                                 .saml_org = saml_org,
                                 .max_log_bytes = max_log_bytes,
                                 .max_connections = (unsigned)max_conns,
                                 .max_connections_per_address = (unsigned)per_address,
                                 .request_timeout_s = (unsigned)request_timeout,
                                 .tls_cert_pem = tls ? cert_pem.data : NULL,
                                 .tls_key_pem = tls ? key_pem.data : NULL,
                                 .tls = tls,
                                 .secrets_key = role_api ? &secrets_key : NULL,
                                 .secrets_key_version = secrets_key_version,
                                 .secret_providers = &providers,
                                 .heartbeat_interval_s = beat < 1   ? 1
                                                         : beat > 5 ? 5
                                                                    : (int)beat};
        rc = vk_api_new(&ao, &api, &err);
    }
    release_tls_files(&cert_pem, &key_pem); /* parsed by the http layer */
    if (rc < 0) {
        fprintf(stderr, "vulcan server: %s\n", err.msg);
        goto out;
    }
    ag.api = api;
    if (role_api && follow_work)
        vk_orch_set_ready_hook(orch, auto_ready, &ag);
    else if (role_api)
        vk_orch_set_ready_hook(orch, vk_api_wake, api);
    if (vk_orch_start(orch, &err) < 0 || (trig && vk_triggers_service_start(trig, &err) < 0)) {
        fprintf(stderr, "vulcan server: %s\n", err.msg);
        goto out;
    }
    if (vk_api_start(api, &err) < 0) {
        fprintf(stderr, "vulcan server: %s\n", err.msg); /* names the address */
        goto out;
    }
    char url[128] = "";
    listen_url(listen, vk_api_port(api), tls, url, sizeof(url));
    if (trig && !public_url) /* statuses link to the console at the listen URL */
        vk_triggers_set_public_url(trig, url);
    if ((strncmp(listen, "0.0.0.0:", 8) == 0 || strncmp(listen, "[::]:", 5) == 0) && !public_url &&
        !allowed_hosts)
        vk_log_write(VK_LOG_WARN, "server",
                     "listening on every address without --public-url or --allowed-hosts: any "
                     "Host header is accepted, so a browser can be turned against this server by "
                     "DNS rebinding; set --public-url",
                     NULL);
    vk_log_write(VK_LOG_INFO, "server", "vulcan server started", "url", url[0] ? url : NULL,
                 "store", vk_store_backend(store), "roles", roles, NULL);
    server_event(audit, store, "server.start", roles, url);
    for (size_t i = 0; i < providers.n; i++)
        vk_log_write(VK_LOG_INFO, "server", "secret provider configured", "name",
                     providers.items[i].name, "path", providers.items[i].argv[0], NULL);
    char root[4096];
    snprintf(root, sizeof(root), "%s/work", data_dir);
    const char *extra[14] = {
        "--sandbox",    sandbox,
        "--log-format", log_format ? log_format : (isatty(2) ? "text" : "json"),
        "--log-level",  log_level ? log_level : "info",
        "--cgroups",    worker_cgroups};
    size_t nextra = 8;
    if (otlp && *otlp) {
        extra[nextra++] = "--otlp-endpoint";
        extra[nextra++] = otlp;
    }
    char ca_abs[4096];
    if (tls && !getenv("VULCAN_CA_CERT")) {
        /* Local workers trust the server's own certificate (libcurl accepts a chain that
         * ends at a certificate in the CA file); an absolute path as they run elsewhere. */
        extra[nextra++] = "--ca-cert";
        extra[nextra++] = realpath(tls_cert, ca_abs) ? ca_abs : tls_cert;
    }
    extra[nextra] = NULL;
    if (workers > 0 && require_auth) {
        /* The local workers register with a token of their own, made now and revoked when
         * the server stops (docs/security.md). */
        char org[VK_UUID_LEN];
        rc = vk_store_tenant_ensure(store, "default", org, &err);
        if (rc == 0)
            rc = vk_store_registration_issue(store, org, NULL, -1, 0,
                                             "local workers of vulcan server", local.reg_token,
                                             local.reg_id, &err);
        if (rc < 0) {
            fprintf(stderr, "vulcan server: cannot make the local workers' token: %s\n", err.msg);
            goto out;
        }
    }
    if (workers > 0) {
        mkdir(data_dir, 0700);
        mkdir(root, 0700);
        const char *def[] = {"default"};
        if (vk__cli_local_add(&local, (int)workers, url,
                              groups.n ? (const char **)groups.items : def, groups.n ? groups.n : 1,
                              root, extra, &err) < 0) {
            fprintf(stderr, "vulcan server: %s\n", err.msg);
            goto out;
        }
    }
    for (;;) {
        struct timespec ts = {0, 200 * 1000000};
        int sig = sigtimedwait(&set, NULL, &ts);
        if (sig == SIGINT || sig == SIGTERM)
            break;
        if (sig == SIGHUP && tls) {
            struct vk_buf c, k;
            if (read_tls_files(tls_cert, tls_key, &c, &k, false) == 0) {
                if (vk_api_tls_reload(api, c.data, k.data, &err) < 0)
                    vk_log_write(VK_LOG_WARN, "server",
                                 "cannot use the new TLS certificate; keeping the old", "error",
                                 err.msg, NULL);
                else
                    vk_log_write(VK_LOG_INFO, "server", "TLS certificate reloaded", "cert",
                                 tls_cert, NULL);
            }
            release_tls_files(&c, &k);
        } else if (sig == SIGHUP) {
            vk_log_write(VK_LOG_INFO, "server", "SIGHUP: no TLS certificate to reload", NULL);
        }
        if (follow_work)
            auto_start(&ag, &local, (int)workers, url, root, extra);
        vk__cli_local_check(&local);
    }
    vk_log_write(VK_LOG_INFO, "server", "stopping", NULL);
    server_event(audit, store, "server.stop", roles, url);
    status = 0;
out:
    vk__cli_local_stop(&local, 10000);
    if (local.reg_id[0] &&
        vk_store_credential_revoke(store, local.reg_id, NULL, vk_time_now_ms(), &err) < 0)
        vk_log_write(VK_LOG_WARN, "server", "cannot revoke the local workers' token", "error",
                     err.msg, NULL);
    if (api)
        vk_api_stop(api);
    vk_triggers_service_stop(trig);
    if (orch)
        vk_orch_stop(orch);
    vk_api_free(api);
    vk_triggers_service_free(trig);
    vk_orch_free(orch);
    vk_audit_free(audit); /* after the API: it records every request until then */
    vk_audit_key_free(audit_key);
    vk_store_close(store);
    vk_secret_key_wipe(&secrets_key);
    vk_trace_free(tracer, 2000); /* export what is queued, up to 2 s */
    vk_metrics_free(metrics);
    vk__cli_opts_release(opts, VK_ARRAY_LEN(opts));
    vk_secret_providers_release(&providers);
    if (oidc_secret.data)
        vk_auth_wipe(oidc_secret.data, oidc_secret.len);
    vk_buf_release(&oidc_secret);
    vk_buf_release(&saml_xml);
    return status;
}
