/*
 * Single sign-on with OpenID Connect (docs/security.md "Single sign-on (OpenID Connect)").
 *
 * GET /api/v1/sso/oidc/login sends the browser to the provider's authorization endpoint
 * (authorization code flow with PKCE S256, a random state and nonce). The state, nonce, PKCE
 * verifier and the console page to return to are kept in this process's memory for 10
 * minutes and used once. GET /api/v1/sso/oidc/callback takes the state back, exchanges the
 * code at the token endpoint (client_secret_basic), verifies the ID token against the
 * provider's JWKS (vk_auth_id_token_verify: RS256/ES256, iss, aud, azp, exp, iat, nonce),
 * finds the user by (source "oidc:<issuer>", sub) or creates it, sets its membership in the
 * teams of the configured org to exactly the groups of the groups claim that exist as
 * teams, opens a console session and redirects to the console.
 *
 * Discovery is fetched at start and again, when it failed, at the next login; JWKS is
 * fetched for every callback (logins are rare; a rotated key is seen at once).
 *
 * Both routes talk to the provider, so neither runs on an HTTP thread (issue 14 item 2):
 * the handler suspends its request (libmicrohttpd suspend/resume, no deadline) and hands
 * it to the SSO thread, which does the work and replies; at most JOBS_MAX wait, more get
 * 503. A slow or dead provider then delays logins, never the API.
 */
#include "api_int.h"
#include "vulcan/auth_oidc.h"

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PENDING_MAX 256
#define PENDING_PER_ADDR 16
#define PENDING_LIFE_MS (10LL * 60 * 1000)
#define STATE_LEN 43
#define VERIFIER_LEN 64
#define NEXT_MAX 256
#define URL_MAX 1024
#define HTTP_TIMEOUT_MS 10000
#define GROUPS_MAX 256
#define STATE_COOKIE "vulcan_sso_state"
#define JOBS_MAX 32

/* The login's state also goes to the browser in a short-lived cookie, and the callback
 * needs both: a callback URL from someone else's login (login CSRF, RFC 6749 10.12) is
 * refused in a browser that did not start it. */
static void state_cookie(const struct vk_api *api, struct vk_http_req *req, const char *state,
                         int max_age_s)
{
    bool secure = api->opts.tls ||
                  (api->opts.public_url && strncmp(api->opts.public_url, "https://", 8) == 0);
    char c[160];
    snprintf(c, sizeof(c), "%s=%s; Path=/api/v1/sso/oidc/; HttpOnly; SameSite=Lax; Max-Age=%d%s",
             STATE_COOKIE, state, max_age_s, secure ? "; Secure" : "");
    if (vk_http_set_header(req, "Set-Cookie", c) != 0)
        vk_log_write(VK_LOG_WARN, "api", "cannot set the SSO state cookie", NULL);
}

struct pending {
    char state[STATE_LEN + 1];
    char nonce[STATE_LEN + 1];
    char verifier[VERIFIER_LEN + 1];
    char next[NEXT_MAX];
    char addr[64];      /* the client address that started it */
    int64_t created_ms; /* 0: a free slot */
};

size_t vk__api_pending_slot(const void *slots, size_t n, size_t stride, size_t created_off,
                            size_t addr_off, const char *addr, int64_t now_ms, int64_t life_ms,
                            size_t per_addr)
{
    const char *base = slots;
    size_t slot = 0, mine = 0, own_oldest = n;
    bool free_found = false;
    int64_t slot_created = 0, own_created = 0;
    for (size_t i = 0; i < n; i++) {
        int64_t created;
        memcpy(&created, base + i * stride + created_off, sizeof(created));
        const char *a = base + i * stride + addr_off;
        bool live = created != 0 && created + life_ms >= now_ms;
        if (!live && !free_found) {
            slot = i;
            free_found = true;
        } else if (live && strcmp(a, addr) == 0) {
            mine++;
            if (own_oldest == n || created < own_created) {
                own_oldest = i;
                own_created = created;
            }
        }
        if (i == 0)
            slot_created = created;
        if (!free_found && live && created < slot_created) {
            slot = i;
            slot_created = created;
        }
    }
    return mine >= per_addr ? own_oldest : slot;
}

struct vk__api_sso {
    pthread_mutex_t lock; /* guards everything below */
    bool discovered;
    char issuer[URL_MAX];
    char authorization_endpoint[URL_MAX];
    char token_endpoint[URL_MAX];
    char jwks_uri[URL_MAX];
    char source[URL_MAX + 8]; /* "oidc:<issuer>" */
    struct pending pending[PENDING_MAX];
    /* requests handed to the SSO thread: a ring of suspended requests, each referenced */
    pthread_cond_t cond;
    pthread_t thread;
    bool thread_started, stopping;
    struct {
        struct vk_http_req *req; /* NULL: the discovery at start */
        bool login;              /* GET …/login, else the callback */
    } jobs[JOBS_MAX];
    size_t head, n;
};

static void *sso_main(void *arg);

json_t *vk__api_sso_methods(const struct vk_api *api)
{
    json_t *a = json_array();
    if (a && api->sso && json_array_append_new(a, json_string("oidc")) != 0)
        json_array_clear(a);
    if (a && api->saml && json_array_append_new(a, json_string("saml")) != 0)
        json_array_clear(a);
    return a;
}

int vk__api_sso_init(struct vk_api *api, struct vk_err *err)
{
    const struct vk_api_opts *o = &api->opts;
    if (!o->oidc_issuer || !*o->oidc_issuer)
        return 0;
    if (!o->require_auth)
        return vk_err_set(err, VK_EINVAL, "--oidc-issuer needs authentication (not --no-auth)");
    if (!o->oidc_client_id || !*o->oidc_client_id || !o->oidc_client_secret ||
        !*o->oidc_client_secret)
        return vk_err_set(err, VK_EINVAL,
                          "--oidc-issuer needs --oidc-client-id and --oidc-client-secret-file");
    if (strlen(o->oidc_issuer) >= URL_MAX ||
        (strncmp(o->oidc_issuer, "https://", 8) != 0 && strncmp(o->oidc_issuer, "http://", 7) != 0))
        return vk_err_set(err, VK_EINVAL, "--oidc-issuer must be an http(s) URL below %d bytes",
                          URL_MAX);
    api->sso = vk_mem_xalloc(sizeof(*api->sso));
    memset(api->sso, 0, sizeof(*api->sso));
    pthread_mutex_init(&api->sso->lock, NULL);
    pthread_cond_init(&api->sso->cond, NULL);
    snprintf(api->sso->issuer, sizeof(api->sso->issuer), "%s", o->oidc_issuer);
    snprintf(api->sso->source, sizeof(api->sso->source), "oidc:%s", o->oidc_issuer);
    if (pthread_create(&api->sso->thread, NULL, sso_main, api) != 0)
        return vk_err_set(err, VK_EIO, "cannot start the SSO thread");
    api->sso->thread_started = true;
    return 0;
}

void vk__api_sso_stop(struct vk_api *api)
{
    struct vk__api_sso *s = api->sso;
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    s->stopping = true;
    pthread_cond_broadcast(&s->cond);
    bool join = s->thread_started;
    s->thread_started = false;
    pthread_mutex_unlock(&s->lock);
    if (join)
        pthread_join(s->thread, NULL);
}

void vk__api_sso_release(struct vk_api *api)
{
    if (!api->sso)
        return;
    vk__api_sso_stop(api);
    pthread_cond_destroy(&api->sso->cond);
    pthread_mutex_destroy(&api->sso->lock);
    vk_auth_wipe(api->sso, sizeof(*api->sso));
    vk_mem_free(api->sso);
    api->sso = NULL;
}

/* Split absolute URL `url` into its origin (a client's base URL) and its path ("/" when
 * none). False when it does not fit. */
static bool split_url(const char *url, char base[URL_MAX], char path[URL_MAX])
{
    const char *host = strstr(url, "://");
    const char *slash = host ? strchr(host + 3, '/') : NULL;
    size_t bn = slash ? (size_t)(slash - url) : strlen(url);
    if (bn >= URL_MAX || (slash && strlen(slash) >= URL_MAX))
        return false;
    snprintf(base, URL_MAX, "%.*s", (int)bn, url);
    snprintf(path, URL_MAX, "%s", slash ? slash : "/");
    return true;
}

/* GET `url` (absolute) as JSON into *out (owned). 0, or VK_EIO naming what failed. */
static int get_json(const struct vk_api *api, const char *url, const char *what, json_t **out,
                    struct vk_err *err)
{
    char b[URL_MAX], path[URL_MAX];
    *out = NULL;
    if (!split_url(url, b, path))
        return vk_err_set(err, VK_EIO, "the identity provider's %s URL is too long", what);
    struct vk_http_client_opts co = {
        .base_url = b, .timeout_ms = HTTP_TIMEOUT_MS, .ca_file = api->opts.oidc_ca_file};
    struct vk_http_client *cl = NULL;
    long status = 0;
    int rc = vk_http_client_new(&co, &cl, err);
    if (rc == 0)
        rc = vk_http_client_json(cl, "GET", path, NULL, 0, &status, out, err);
    vk_http_client_free(cl);
    if (rc == 0 && (status != 200 || !json_is_object(*out))) {
        json_decref(*out);
        *out = NULL;
        rc = vk_err_set(err, VK_EIO, "the identity provider's %s answered %ld", what, status);
    } else if (rc < 0) {
        char why[sizeof(err->msg)];
        snprintf(why, sizeof(why), "%s", err->msg);
        vk_err_set(err, VK_EIO, "cannot fetch the identity provider's %s: %s", what, why);
        rc = VK_EIO;
    }
    return rc;
}

static bool copy_url(char *dst, size_t cap, json_t *o, const char *key)
{
    const char *v = vk__api_get_str(o, key);
    if (!v || strlen(v) >= cap || (strncmp(v, "https://", 8) != 0 && strncmp(v, "http://", 7) != 0))
        return false;
    snprintf(dst, cap, "%s", v);
    return true;
}

/* Fetch discovery unless done. Caller holds no lock. */
static int discover(struct vk_api *api, struct vk_err *err)
{
    struct vk__api_sso *s = api->sso;
    pthread_mutex_lock(&s->lock);
    bool done = s->discovered;
    pthread_mutex_unlock(&s->lock);
    if (done)
        return 0;
    char url[URL_MAX + 64];
    size_t n = strlen(s->issuer);
    while (n && s->issuer[n - 1] == '/')
        n--;
    snprintf(url, sizeof(url), "%.*s/.well-known/openid-configuration", (int)n, s->issuer);
    json_t *d = NULL;
    int rc = get_json(api, url, "discovery document", &d, err);
    if (rc < 0)
        return rc;
    const char *iss = vk__api_get_str(d, "issuer");
    pthread_mutex_lock(&s->lock);
    if (!iss || strcmp(iss, s->issuer) != 0)
        rc = vk_err_set(err, VK_EIO,
                        "the identity provider's discovery names issuer '%.200s', not '%.200s'",
                        iss ? iss : "", s->issuer);
    else if (!copy_url(s->authorization_endpoint, URL_MAX, d, "authorization_endpoint") ||
             !copy_url(s->token_endpoint, URL_MAX, d, "token_endpoint") ||
             !copy_url(s->jwks_uri, URL_MAX, d, "jwks_uri"))
        rc = vk_err_set(err, VK_EIO,
                        "the identity provider's discovery lacks an http(s) "
                        "authorization_endpoint, token_endpoint or jwks_uri");
    else
        s->discovered = true;
    pthread_mutex_unlock(&s->lock);
    json_decref(d);
    return rc;
}

void vk__api_sso_start(struct vk_api *api)
{
    struct vk__api_sso *s = api->sso;
    if (!s)
        return;
    /* on the SSO thread, first of its jobs: a provider that hangs delays nothing else */
    pthread_mutex_lock(&s->lock);
    if (s->n < JOBS_MAX) {
        s->jobs[(s->head + s->n) % JOBS_MAX].req = NULL;
        s->n++;
        pthread_cond_signal(&s->cond);
    }
    pthread_mutex_unlock(&s->lock);
}

static void discover_at_start(struct vk_api *api)
{
    struct vk_err err;
    vk_err_clear(&err);
    if (discover(api, &err) < 0)
        vk_log_write(VK_LOG_WARN, "api", "OIDC discovery failed; retried at the next SSO login",
                     "error", err.msg, NULL);
}

/* Percent-encode `s` for a query or form value into `out` (false when it does not fit). */
bool vk__api_sso_urlenc(const char *s, char *out, size_t cap)
{
    static const char H[] = "0123456789ABCDEF";
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        bool plain = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                     (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' || *p == '~';
        if (o + (plain ? 1 : 3) >= cap)
            return false;
        if (plain) {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = H[*p >> 4];
            out[o++] = H[*p & 15];
        }
    }
    out[o] = '\0';
    return true;
}

static void redirect_uri(const struct vk_api *api, char out[URL_MAX])
{
    snprintf(out, URL_MAX, "%s/api/v1/sso/oidc/callback", api->issuer);
}

/* A console location: "#/" then printable characters other than quotes and backslashes. */
bool vk__api_sso_next_ok(const char *n)
{
    if (!n || strlen(n) >= NEXT_MAX || strncmp(n, "#/", 2) != 0)
        return false;
    for (const char *p = n; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f || *p == '"' || *p == '\\' ||
            *p == '<' || *p == '>')
            return false;
    return true;
}

/* A browser (it navigated here: Accept names text/html) gets a page saying why, with a way
 * back to the login page; other clients get the JSON error. */
bool vk__api_sso_wants_html(struct vk_http_req *req)
{
    const char *a = vk_http_header(req, "Accept");
    return a && strstr(a, "text/html") != NULL;
}

void vk__api_sso_page(struct vk_http_req *req, int status, const char *msg)
{
    char esc[sizeof(((struct vk_err *)0)->msg) * 6];
    size_t o = 0;
    for (const char *p = msg; *p && o + 7 < sizeof(esc); p++) {
        const char *e = *p == '<'    ? "&lt;"
                        : *p == '>'  ? "&gt;"
                        : *p == '&'  ? "&amp;"
                        : *p == '"'  ? "&quot;"
                        : *p == '\'' ? "&#39;"
                                     : NULL;
        if (e) {
            memcpy(esc + o, e, strlen(e));
            o += strlen(e);
        } else {
            esc[o++] = *p;
        }
    }
    esc[o] = '\0';
    char page[sizeof(esc) + 512];
    int n = snprintf(page, sizeof(page),
                     "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
                     "<title>Single sign-on failed</title></head><body><main>"
                     "<h1>Single sign-on failed</h1><p id=\"sso-error\">%s</p>"
                     "<p><a href=\"/#/login\">Back to the login page</a></p></main></body></html>",
                     esc);
    if (vk_http_set_header(req, "Content-Security-Policy", "default-src 'none'") != 0 ||
        vk_http_set_header(req, "Cache-Control", "no-store") != 0)
        vk_log_write(VK_LOG_WARN, "api", "cannot set the page's headers", NULL);
    vk_http_reply(req, status, "text/html; charset=utf-8", page,
                  n > 0 && (size_t)n < sizeof(page) ? (size_t)n : 0);
}

static void no_sso(struct vk_http_req *req)
{
    vk_http_reply_error(req, 404, "not_found",
                        "this server has no single sign-on (start it with --oidc-issuer)");
}

static void do_login(struct vk_http_req *req, struct vk_api *api)
{
    struct vk__api_sso *s = api->sso;
    const char *next = vk_http_query(req, "next");
    if (next && *next && !vk__api_sso_next_ok(next)) {
        vk_http_reply_error(req, 400, "bad_request",
                            "'next' must be a console location starting with '#/' (at most %d "
                            "printable characters)",
                            NEXT_MAX - 1);
        return;
    }
    struct vk_err err;
    vk_err_clear(&err);
    int rc = discover(api, &err);
    if (rc < 0) {
        vk_log_write(VK_LOG_WARN, "api", "SSO login impossible", "error", err.msg, NULL);
        if (vk__api_sso_wants_html(req))
            vk__api_sso_page(req, 502, err.msg);
        else
            vk_http_reply_error(req, 502, "bad_gateway", "%s", err.msg);
        return;
    }
    struct pending p = {.created_ms = vk_time_now_ms()};
    snprintf(p.next, sizeof(p.next), "%s", next && *next ? next : "#/");
    const char *ra = vk_http_remote_addr(req);
    snprintf(p.addr, sizeof(p.addr), "%s", ra ? ra : "?");
    if (vk_auth_random_text(p.state, STATE_LEN) < 0 ||
        vk_auth_random_text(p.nonce, STATE_LEN) < 0 ||
        vk_auth_random_text(p.verifier, VERIFIER_LEN) < 0) {
        vk_http_reply_error(req, 503, "unavailable", "the random generator failed");
        return;
    }
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)p.verifier, VERIFIER_LEN, d);
    char challenge[48];
    vk_auth_b64url(d, sizeof(d), challenge, sizeof(challenge));
    char ru[URL_MAX], eru[URL_MAX * 3], cid[768];
    redirect_uri(api, ru);
    if (!vk__api_sso_urlenc(ru, eru, sizeof(eru)) ||
        !vk__api_sso_urlenc(api->opts.oidc_client_id, cid, sizeof(cid))) {
        vk_http_reply_error(req, 500, "internal", "the redirect URI or client id is too long");
        return;
    }
    size_t cap = URL_MAX * 6;
    char *loc = vk_pool_alloc(vk_http_pool(req), cap);
    pthread_mutex_lock(&s->lock);
    size_t slot = vk__api_pending_slot(
        s->pending, PENDING_MAX, sizeof(s->pending[0]), offsetof(struct pending, created_ms),
        offsetof(struct pending, addr), p.addr, p.created_ms, PENDING_LIFE_MS, PENDING_PER_ADDR);
    s->pending[slot] = p;
    int n = loc ? snprintf(loc, cap,
                           "%s%cresponse_type=code&client_id=%s&redirect_uri=%s"
                           "&scope=openid%%20profile%%20email%%20groups&state=%s&nonce=%s"
                           "&code_challenge=%s&code_challenge_method=S256",
                           s->authorization_endpoint,
                           strchr(s->authorization_endpoint, '?') ? '&' : '?', cid, eru, p.state,
                           p.nonce, challenge)
                : -1;
    pthread_mutex_unlock(&s->lock);
    if (n < 0 || (size_t)n >= cap) {
        vk_http_reply_error(req, 500, "internal", "the authorization URL is too long");
        return;
    }
    if (vk_http_set_header(req, "Location", loc) != 0 ||
        vk_http_set_header(req, "Cache-Control", "no-store") != 0) {
        vk_http_reply_error(req, 500, "internal", "cannot set the redirect");
        return;
    }
    state_cookie(api, req, p.state, (int)(PENDING_LIFE_MS / 1000));
    vk_auth_wipe(&p, sizeof(p));
    vk_http_reply_empty(req, 302);
}

/* Take the pending login of `state` (one use). False when unknown or older than 10 min. */
static bool take(struct vk__api_sso *s, const char *state, struct pending *out)
{
    if (!state || strlen(state) != STATE_LEN)
        return false;
    int64_t now = vk_time_now_ms();
    bool found = false;
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < PENDING_MAX; i++) {
        struct pending *p = &s->pending[i];
        if (p->created_ms && vk_auth_equal(p->state, state, STATE_LEN)) {
            found = p->created_ms + PENDING_LIFE_MS >= now;
            *out = *p;
            vk_auth_wipe(p, sizeof(*p));
            break;
        }
    }
    pthread_mutex_unlock(&s->lock);
    return found;
}

/* Exchange `code` for the token response; *id_token points into *resp (owned). */
static int exchange(struct vk_api *api, const char *code, const struct pending *p, json_t **resp,
                    struct vk_err *err)
{
    struct vk__api_sso *s = api->sso;
    char ru[URL_MAX], eru[URL_MAX * 3], ecode[2048 * 3], cid[768], csec[1536];
    redirect_uri(api, ru);
    *resp = NULL;
    if (!code || strlen(code) > 2048 || !vk__api_sso_urlenc(ru, eru, sizeof(eru)) ||
        !vk__api_sso_urlenc(code, ecode, sizeof(ecode)) ||
        !vk__api_sso_urlenc(api->opts.oidc_client_id, cid, sizeof(cid)) ||
        !vk__api_sso_urlenc(api->opts.oidc_client_secret, csec, sizeof(csec)))
        return vk_err_set(err, VK_EINVAL,
                          "the authorization code or client credentials are "
                          "too long");
    char body[sizeof(ecode) + sizeof(eru) + 256];
    snprintf(body, sizeof(body),
             "grant_type=authorization_code&code=%s&redirect_uri=%s&code_verifier=%s", ecode, eru,
             p->verifier);
    /* client_secret_basic (RFC 6749 2.3.1: each part form-encoded first). */
    char pair[sizeof(cid) + sizeof(csec) + 2];
    int pn = snprintf(pair, sizeof(pair), "%s:%s", cid, csec);
    char b64[sizeof(pair) * 4 / 3 + 8], auth[sizeof(b64) + 8];
    EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)pair, pn);
    snprintf(auth, sizeof(auth), "Basic %s", b64);
    vk_auth_wipe(pair, sizeof(pair));
    vk_auth_wipe(csec, sizeof(csec));
    char url[URL_MAX], ub[URL_MAX], upath[URL_MAX];
    pthread_mutex_lock(&s->lock);
    snprintf(url, sizeof(url), "%s", s->token_endpoint);
    pthread_mutex_unlock(&s->lock);
    if (!split_url(url, ub, upath))
        return vk_err_set(err, VK_EIO, "the token endpoint URL is too long");
    struct vk_http_client_opts co = {
        .base_url = ub, .timeout_ms = HTTP_TIMEOUT_MS, .ca_file = api->opts.oidc_ca_file};
    struct vk_http_client *cl = NULL;
    struct vk_http_response r = {0};
    int rc = vk_http_client_new(&co, &cl, err);
    if (rc == 0)
        rc = vk_http_client_set_header(cl, "Authorization", auth) == 0 &&
                     vk_http_client_set_header(cl, "Accept", "application/json") == 0
                 ? 0
                 : vk_err_set(err, VK_ENOMEM, "out of memory");
    vk_auth_wipe(auth, sizeof(auth));
    vk_auth_wipe(b64, sizeof(b64));
    if (rc == 0)
        rc = vk_http_client_request(cl, "POST", upath, "application/x-www-form-urlencoded", body,
                                    strlen(body), 0, &r, err);
    vk_http_client_free(cl);
    vk_auth_wipe(body, sizeof(body));
    if (rc < 0) {
        char why[sizeof(err->msg)];
        snprintf(why, sizeof(why), "%s", err->msg);
        return vk_err_set(err, VK_EIO, "cannot reach the identity provider's token endpoint: %s",
                          why);
    }
    json_error_t je;
    json_t *o = json_loadb(r.body.data ? r.body.data : "", r.body.len, 0, &je);
    long status = r.status;
    vk_http_response_release(&r);
    if (status != 200 || !json_is_object(o)) {
        const char *e = vk__api_get_str(o, "error");
        vk_err_set(err, VK_EAUTH, "the identity provider refused the code (%ld %.100s)", status,
                   e ? e : "");
        json_decref(o);
        return VK_EAUTH;
    }
    *resp = o;
    return 0;
}

/* A login made of `s`: the characters a login may hold, others dropped, at most 56 bytes. */
static void login_of(const char *s, char out[64])
{
    size_t o = 0;
    for (; s && *s && o < 56; s++)
        if ((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
            *s == '.' || *s == '_' || *s == '@' || *s == '-')
            out[o++] = *s;
    out[o] = '\0';
}

/* The user of the verified `claims`, found by subject or made now. */
int vk__api_sso_user(struct vk_api *api, const char *source, json_t *claims, struct vk_pool *pool,
                     struct vk_store_user *u, struct vk_err *err)
{
    const char *sub = vk__api_get_str(claims, "sub");
    int rc = vk_store_user_find_subject(api->opts.store, source, sub, pool, u, err);
    if (rc != VK_ENOTFOUND)
        return rc;
    char login[64];
    login_of(vk__api_get_str(claims, "preferred_username"), login);
    if (!*login)
        login_of(vk__api_get_str(claims, "email"), login);
    if (!*login)
        login_of(sub, login);
    if (!*login)
        return vk_err_set(err, VK_EAUTH,
                          "the identity provider names no usable login (a user name or email)");
    const char *email = vk__api_get_str(claims, "email");
    const char *name = vk__api_get_str(claims, "name");
    struct vk_store_user nu = {.login = login,
                               .name = name && strlen(name) <= 256 ? name : NULL,
                               .email = email && strlen(email) <= 256 ? email : NULL,
                               .source = source,
                               .subject = sub};
    rc = vk_store_user_create(api->opts.store, &nu, err);
    if (rc == VK_EEXIST &&
        vk_store_user_find_subject(api->opts.store, source, sub, pool, u, err) == 0)
        return 0; /* the same person's login in another tab made it first */
    for (int i = 0; rc == VK_EEXIST && i < 3; i++) {
        /* The login belongs to someone else (a local user, another provider): never take it
         * over; use "<login>-<random>". */
        char sfx[7], l2[64];
        if (vk_auth_random_text(sfx, 6) < 0)
            return vk_err_set(err, VK_EIO, "the random generator failed");
        snprintf(l2, sizeof(l2), "%.56s-%s", login, sfx);
        nu.login = l2;
        rc = vk_store_user_create(api->opts.store, &nu, err);
        if (rc == 0)
            snprintf(login, sizeof(login), "%s", l2);
    }
    if (rc < 0)
        return rc;
    vk_log_write(VK_LOG_INFO, "api", "SSO user created", "login", login, "source", source, NULL);
    return vk_store_user_get(api->opts.store, nu.id, pool, u, err);
}

static bool in_groups(const json_t *groups, const char *name)
{
    size_t i;
    const json_t *g;
    json_array_foreach(groups, i, g) if (json_is_string(g) &&
                                         strcmp(json_string_value(g), name) == 0) return true;
    return false;
}

/* Membership of `u` in the teams of the SSO org: exactly the claimed groups. */
int vk__api_sso_teams(struct vk_api *api, json_t *groups, const char *org_slug, const char *flag,
                      const struct vk_store_user *u, struct vk_pool *pool, struct vk_err *err)
{
    if (groups && !json_is_array(groups))
        groups = NULL;
    if (json_array_size(groups) > GROUPS_MAX)
        return vk_err_set(err, VK_EINVAL, "the identity provider names more than %d groups",
                          GROUPS_MAX);
    struct vk_store_org org;
    const char *slug = org_slug && *org_slug ? org_slug : "default";
    int rc = vk_store_org_find(api->opts.store, slug, pool, &org, err);
    if (rc == VK_ENOTFOUND)
        rc = vk_err_set(err, VK_EINTERNAL,
                        "the org of --%s ('%s') does not exist: an admin must create it", flag,
                        slug);
    struct vk_store_team *teams = NULL;
    size_t n = 0;
    if (rc == 0)
        rc = vk_store_team_list(api->opts.store, org.id, pool, &teams, &n, err);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (in_groups(groups, teams[i].name)) {
            rc = vk_store_team_add_member(api->opts.store, teams[i].id, u->id, err);
        } else {
            rc = vk_store_team_remove_member(api->opts.store, teams[i].id, u->id, err);
            if (rc == VK_ENOTFOUND)
                rc = 0;
        }
    }
    return rc;
}

void vk__api_sso_refuse(struct vk_http_req *req, const char *addr, const struct vk_err *err, int rc)
{
    vk_log_write(VK_LOG_WARN, "api", "SSO login refused", "address", addr, "reason", err->msg,
                 NULL);
    bool auth = rc == VK_EAUTH || rc == VK_EINVAL || rc == VK_ETOOBIG;
    if (vk__api_sso_wants_html(req)) {
        char msg[sizeof(err->msg) + 32];
        snprintf(msg, sizeof(msg), "%s", err->msg);
        vk__api_sso_page(req, auth ? 401 : 500, msg);
    } else if (auth) {
        vk_http_reply_error(req, 401, "unauthenticated", "single sign-on failed: %s", err->msg);
    } else {
        vk__api_reply_err(req, err, rc);
    }
}

static void do_callback(struct vk_http_req *req, struct vk_api *api)
{
    struct vk__api_sso *s = api->sso;
    const char *addr = vk_http_remote_addr(req);
    struct vk_err err;
    vk_err_clear(&err);
    struct pending p;
    const char *state = vk_http_query(req, "state");
    const char *mine = vk__api_cookie(req, STATE_COOKIE);
    if (state &&
        (!mine || strlen(mine) != strlen(state) || !vk_auth_equal(mine, state, strlen(state)))) {
        vk_err_set(&err, VK_EAUTH,
                   "this browser did not start the login of this state (no matching "
                   "SSO state cookie); start the login again");
        vk__api_sso_refuse(req, addr, &err, VK_EAUTH);
        return;
    }
    state_cookie(api, req, "", 0);
    if (!take(s, state, &p)) {
        vk_err_set(&err, VK_EAUTH, "unknown, used or expired state (start the login again)");
        vk__api_sso_refuse(req, addr, &err, VK_EAUTH);
        return;
    }
    const char *perr = vk_http_query(req, "error");
    const char *code = vk_http_query(req, "code");
    int rc = 0;
    if (perr)
        rc = vk_err_set(&err, VK_EAUTH, "the identity provider answered '%.100s'", perr);
    else if (!code || !*code)
        rc = vk_err_set(&err, VK_EAUTH, "no authorization code");
    json_t *tok = NULL, *jwks = NULL, *claims = NULL;
    if (rc == 0)
        rc = exchange(api, code, &p, &tok, &err);
    const char *idt = rc == 0 ? vk__api_get_str(tok, "id_token") : NULL;
    if (rc == 0 && !idt)
        rc = vk_err_set(&err, VK_EAUTH, "the token response has no id_token");
    char jwks_uri[URL_MAX];
    pthread_mutex_lock(&s->lock);
    snprintf(jwks_uri, sizeof(jwks_uri), "%s", s->jwks_uri);
    pthread_mutex_unlock(&s->lock);
    if (rc == 0)
        rc = get_json(api, jwks_uri, "JWKS", &jwks, &err);
    if (rc == 0) {
        struct vk_auth_id_token_check chk = {.issuer = s->issuer,
                                             .client_id = api->opts.oidc_client_id,
                                             .nonce = p.nonce,
                                             .now_s = vk_time_now_ms() / 1000};
        rc = vk_auth_id_token_verify(idt, strlen(idt), jwks, &chk, &claims, &err);
    }
    json_decref(tok);
    json_decref(jwks);
    char next[NEXT_MAX];
    snprintf(next, sizeof(next), "%s", p.next);
    vk_auth_wipe(&p, sizeof(p));
    struct vk_pool *pool = vk_http_pool(req);
    struct vk_store_user u;
    if (rc == 0)
        rc = vk__api_sso_user(api, s->source, claims, pool, &u, &err);
    if (rc == 0 && u.disabled)
        rc = vk_err_set(&err, VK_EAUTH, "the user is disabled");
    if (rc == 0)
        rc = vk__api_sso_teams(
            api,
            json_object_get(claims, api->opts.oidc_groups_claim && *api->opts.oidc_groups_claim
                                        ? api->opts.oidc_groups_claim
                                        : "groups"),
            api->opts.oidc_org, "oidc-org", &u, pool, &err);
    json_decref(claims);
    char csrf[VK__API_CSRF_MAX];
    int64_t expires = 0;
    if (rc == 0)
        rc = vk__api_session_open(api, req, &u, "oidc", csrf, &expires, &err);
    if (rc < 0) {
        vk__api_sso_refuse(req, addr, &err, rc);
        return;
    }
    char loc[NEXT_MAX + 2];
    snprintf(loc, sizeof(loc), "/%s", next);
    if (vk_http_set_header(req, "Location", loc) != 0) {
        vk_http_reply_error(req, 500, "internal", "cannot set the redirect");
        return;
    }
    vk_http_reply_empty(req, 302);
}

/* ---------------------------------------------------------------- The SSO thread */

static void *sso_main(void *arg)
{
    struct vk_api *api = arg;
    struct vk__api_sso *s = api->sso;
    pthread_mutex_lock(&s->lock);
    for (;;) {
        while (!s->n && !s->stopping)
            pthread_cond_wait(&s->cond, &s->lock);
        if (!s->n)
            break; /* stopping, nothing left */
        struct vk_http_req *req = s->jobs[s->head].req;
        bool login = s->jobs[s->head].login, stopping = s->stopping;
        s->head = (s->head + 1) % JOBS_MAX;
        s->n--;
        pthread_mutex_unlock(&s->lock);
        if (!req) {
            if (!stopping)
                discover_at_start(api);
            pthread_mutex_lock(&s->lock);
            continue;
        }
        if (stopping)
            vk_http_reply_error(req, 503, "unavailable", "the server is stopping");
        else if (login)
            do_login(req, api);
        else
            do_callback(req, api);
        vk_http_req_unref(req);
        pthread_mutex_lock(&s->lock);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

/* Suspend `req` and hand it to the SSO thread (503 when JOBS_MAX already wait). */
static void hand_off(struct vk_http_req *req, struct vk_api *api, bool login)
{
    struct vk__api_sso *s = api->sso;
    if (!s) {
        no_sso(req);
        return;
    }
    pthread_mutex_lock(&s->lock);
    if (s->n == JOBS_MAX || s->stopping || !s->thread_started) {
        pthread_mutex_unlock(&s->lock);
        if (vk_http_set_header(req, "Retry-After", "2") != 0) {
            /* out of memory: the answer is still right without the header */
        }
        vk_http_reply_error(req, 503, "unavailable",
                            "too many single sign-on logins at once; try again");
        return;
    }
    if (vk_http_suspend(req, 0, NULL, NULL, NULL) != 0) {
        pthread_mutex_unlock(&s->lock);
        vk_http_reply_error(req, 500, "internal", "cannot hand the login over");
        return;
    }
    vk_http_req_ref(req); /* the SSO thread's, released after its reply */
    s->jobs[(s->head + s->n) % JOBS_MAX].req = req;
    s->jobs[(s->head + s->n) % JOBS_MAX].login = login;
    s->n++;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

static void h_login(struct vk_http_req *req, void *ctx)
{
    hand_off(req, ctx, true);
}

static void h_callback(struct vk_http_req *req, void *ctx)
{
    hand_off(req, ctx, false);
}

int vk__api_sso_routes(struct vk_api *api, struct vk_err *err)
{
    int rc = vk_http_route(api->http, "GET", "/api/v1/sso/oidc/login", h_login, api, NULL, err);
    if (rc == 0)
        rc = vk_http_route(api->http, "GET", "/api/v1/sso/oidc/callback", h_callback, api, NULL,
                           err);
    return rc;
}
