/*
 * libFuzzer target: the HTTP request path of the API, end to end. Each input is one raw
 * HTTP/1.1 request (request line, headers, body: anything) written to a real API server
 * on loopback: libmicrohttpd's parsing, the server's own header checks (smuggling, Host,
 * limits), the router, query and path parameters, JSON bodies and the API's handlers over
 * an in-memory SQLite store. There is no trigger service, so nothing clones or fetches.
 *
 * The first byte picks the server: even, one without authentication (every handler is
 * reachable); odd, one with --require-auth (the gate, tokens, cookies, CSRF). In the rest
 * these placeholders are replaced before sending, so that routes with ids reach records:
 *   @C  a chain's id          @F  one of its fragments' ids     @O  the default org's id
 *   @T  an admin's personal access token (valid on the auth server)
 *
 * It checks that an answer, when there is one, is an HTTP/1.x status line with a status
 * of 100-599 other than 500 (a handler's unexpected failure), and every 512 inputs that
 * both servers still answer GET /health: a request must never crash or wedge them.
 */
#include "vulcan/api.h"
#include "vulcan/auth.h"
#include "vulcan/store_identity.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_INPUT (256 * 1024)
#define ANSWER_WAIT_MS 250

struct srv {
    struct vk_store *store;
    struct vk_orch *orch;
    struct vk_api *api;
    uint16_t port;
};

static struct srv g_open, g_auth;
static char g_chain[VK_UUID_LEN], g_frag[VK_UUID_LEN], g_org[VK_UUID_LEN];
static char g_token[VK_AUTH_TOKEN_MAX];
static unsigned long g_runs;

static void die(const char *what, const struct vk_err *err)
{
    fprintf(stderr, "fuzz_http: %s: %s\n", what, err ? err->msg : "");
    abort();
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The value of header `name` (lower case, with its colon) in the head `h` of `n` bytes. */
static const char *header_in(const char *h, size_t n, const char *name)
{
    size_t nl = strlen(name);
    for (size_t i = 0; i + 2 + nl <= n; i++)
        if (h[i] == '\n' && strncasecmp(h + i + 1, name, nl) == 0)
            return h + i + 1 + nl;
    return NULL;
}

/* True when `ans` holds one whole answer (past any 1xx interim ones). */
static bool complete(const char *ans, size_t n)
{
    size_t off = 0;
    for (;;) {
        const char *end = memmem(ans + off, n - off, "\r\n\r\n", 4);
        if (!end)
            return false;
        size_t head = (size_t)(end - (ans + off)) + 4;
        if (n - off >= 10 && memcmp(ans + off, "HTTP/1.", 7) == 0 && ans[off + 9] == '1') {
            off += head; /* 100 Continue */
            continue;
        }
        const char *h = ans + off;
        if (n - off >= 12 && (memcmp(h + 9, "204", 3) == 0 || memcmp(h + 9, "304", 3) == 0))
            return true;
        const char *te = header_in(h, head, "transfer-encoding:");
        if (te && memmem(te, head - (size_t)(te - h), "chunked", 7))
            return n - off >= head + 5 && memcmp(ans + n - 5, "0\r\n\r\n", 5) == 0;
        const char *cl = header_in(h, head, "content-length:");
        if (!cl)
            return false; /* to the end of the connection */
        unsigned long long len = strtoull(cl, NULL, 10);
        return n - off - head >= len;
    }
}

/* Send `req` to 127.0.0.1:`port`, close our side, read the answer (at most `cap` bytes
 * kept) until it is whole, the server closes or ANSWER_WAIT_MS pass. Returns the bytes
 * kept. */
static size_t exchange(uint16_t port, const char *req, size_t len, char *ans, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        abort();
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        perror("fuzz_http: connect");
        abort();
    }
    size_t off = 0;
    while (off < len) {
        ssize_t w = send(fd, req + off, len - off, MSG_NOSIGNAL);
        if (w <= 0)
            break; /* the server may close early on a bad request */
        off += (size_t)w;
    }
    (void)shutdown(fd, SHUT_WR);
    size_t got = 0;
    int64_t deadline = now_ms() + ANSWER_WAIT_MS;
    for (;;) {
        int64_t left = deadline - now_ms();
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            break;
        char buf[16384];
        ssize_t r = recv(fd, buf, sizeof buf, 0);
        if (r <= 0)
            break;
        size_t keep = got + (size_t)r < cap ? (size_t)r : cap - got;
        memcpy(ans + got, buf, keep);
        got += keep;
        if (got == cap || complete(ans, got))
            break;
    }
    /* Reset rather than linger in TIME_WAIT: a run makes many connections. */
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    (void)setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(fd);
    return got;
}

/* The status of an answer, or -1 when it is not an HTTP/1.x status line. */
static int status_of(const char *ans, size_t n)
{
    if (n < 12 || memcmp(ans, "HTTP/1.", 7) != 0 || ans[8] != ' ')
        return -1;
    int st = 0;
    for (int i = 9; i < 12; i++) {
        if (ans[i] < '0' || ans[i] > '9')
            return -1;
        st = st * 10 + (ans[i] - '0');
    }
    return st;
}

static void start(struct srv *s, bool require_auth)
{
    struct vk_err err;
    vk_err_clear(&err);
    if (vk_store_open("sqlite::memory:", &s->store, &err) != 0)
        die("store", &err);
    if (vk_orch_new(s->store, NULL, &s->orch, &err) != 0)
        die("orchestrator", &err);
    struct vk_api_opts ao = {.listen = "127.0.0.1:0",
                             .store = s->store,
                             .orch = s->orch,
                             .max_wait_s = 1,
                             .hook_wait_ms = 50,
                             .trigger_wait_ms = 50,
                             .require_auth = require_auth};
    if (vk_api_new(&ao, &s->api, &err) != 0)
        die("api", &err);
    vk_orch_set_ready_hook(s->orch, vk_api_wake, s->api);
    if (vk_orch_start(s->orch, &err) != 0 || vk_api_start(s->api, &err) != 0)
        die("start", &err);
    s->port = vk_api_port(s->api);
}

/* A chain on the open server (through the API itself), for @C and @F. */
static void make_chain(void)
{
    static const char doc[] = "version \\\"0.1\\\"\\ntriggers \\\"manual\\\"\\nchain {\\n"
                              "  machine \\\"default\\\"\\n  fragment { name \\\"a\\\"; run "
                              "\\\"true\\\"; }\\n}\\n";
    char req[1024], ans[65536];
    int n = snprintf(req, sizeof req,
                     "POST /api/v1/parse HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
                     "application/json\r\nContent-Length: %zu\r\nConnection: close\r\n\r\n"
                     "{\"content\":\"%s\"}",
                     sizeof doc - 1 + 14, doc);
    size_t got = exchange(g_open.port, req, (size_t)n, ans, sizeof ans - 1);
    ans[got] = '\0';
    const char *body = strstr(ans, "\r\n\r\n");
    json_error_t je;
    json_t *j = body ? json_loads(body + 4, 0, &je) : NULL;
    const char *cid = j ? json_string_value(json_object_get(j, "chain_id")) : NULL;
    if (!cid || strlen(cid) >= sizeof g_chain) {
        fprintf(stderr, "fuzz_http: cannot make a chain: %s\n", ans);
        abort();
    }
    snprintf(g_chain, sizeof g_chain, "%s", cid);
    json_decref(j);
    n = snprintf(req, sizeof req,
                 "GET /api/v1/chains/%s HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
                 g_chain);
    got = exchange(g_open.port, req, (size_t)n, ans, sizeof ans - 1);
    ans[got] = '\0';
    body = strstr(ans, "\r\n\r\n");
    j = body ? json_loads(body + 4, 0, &je) : NULL;
    const char *fid = j ? json_string_value(json_object_get(
                              json_array_get(json_object_get(j, "fragments"), 0), "id"))
                        : NULL;
    snprintf(g_frag, sizeof g_frag, "%s", fid ? fid : g_chain);
    json_decref(j);
}

/* An admin of the default org on the auth server with a token, for @T and @O. */
static void make_admin(void)
{
    struct vk_err err;
    vk_err_clear(&err);
    if (vk_store_tenant_ensure(g_auth.store, "default", g_org, &err) != 0)
        die("org", &err);
    struct vk_store_user u = {.login = "fuzz-admin"};
    if (vk_store_user_create(g_auth.store, &u, &err) != 0)
        die("user", &err);
    struct vk_store_grant g = {.role = VK_ROLE_ADMIN};
    memcpy(g.org_id, g_org, VK_UUID_LEN);
    memcpy(g.user_id, u.id, VK_UUID_LEN);
    if (vk_store_grant_create(g_auth.store, &g, &err) != 0)
        die("grant", &err);
    char id[VK_UUID_LEN];
    if (vk_store_token_issue(g_auth.store, u.id, VK_SCOPE_ALL, NULL, 0, "fuzz", g_token, id,
                             &err) != 0)
        die("token", &err);
}

static void check_health(const struct srv *s)
{
    static const char req[] = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    char ans[4096];
    size_t got = exchange(s->port, req, sizeof req - 1, ans, sizeof ans);
    if (status_of(ans, got) != 200) {
        fprintf(stderr, "fuzz_http: /health no longer answers 200 on port %u\n", s->port);
        abort();
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    signal(SIGPIPE, SIG_IGN);
    /* The servers' records (refused requests are warnings) would drown the fuzzer's. */
    int devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    vk_log_configure(VK_LOG_ERROR, VK_LOG_TEXT, devnull >= 0 ? devnull : -1);
    start(&g_open, false);
    start(&g_auth, true);
    make_chain();
    make_admin();
    return 0;
}

/* Expand the placeholders of `in` into `out` (at most `cap`). Returns the length. */
static size_t expand(const uint8_t *in, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o < cap; i++) {
        const char *rep = NULL;
        if (in[i] == '@' && i + 1 < n) {
            switch (in[i + 1]) {
            case 'C':
                rep = g_chain;
                break;
            case 'F':
                rep = g_frag;
                break;
            case 'O':
                rep = g_org;
                break;
            case 'T':
                rep = g_token;
                break;
            default:
                break;
            }
        }
        if (!rep) {
            out[o++] = (char)in[i];
            continue;
        }
        size_t rl = strlen(rep);
        if (o + rl > cap)
            break;
        memcpy(out + o, rep, rl);
        o += rl;
        i++;
    }
    return o;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > MAX_INPUT)
        return 0;
    static char req[MAX_INPUT * 4], ans[65536];
    const struct srv *s = (data[0] & 1) ? &g_auth : &g_open;
    size_t len = expand(data + 1, size - 1, req, sizeof req);
    int64_t t0 = now_ms();
    size_t got = exchange(s->port, req, len, ans, sizeof ans);
    if (getenv("FUZZ_HTTP_DEBUG"))
        fprintf(stderr, "fuzz_http: %lld ms, %zu bytes: %.*s\n", (long long)(now_ms() - t0), got,
                (int)(got < 300 ? got : 300), ans);
    if (got > 0) {
        int st = status_of(ans, got);
        if (st < 100 || st > 599 || st == 500) {
            fprintf(stderr, "fuzz_http: answer %.*s\n", (int)(got < 200 ? got : 200), ans);
            abort();
        }
    }
    if (++g_runs % 512 == 0) {
        check_health(&g_open);
        check_health(&g_auth);
    }
    return 0;
}
