/*
 * Who is asking, and may they (docs/security.md). Every route's need comes from the
 * x-vulcan-role of its operation in the embedded web/openapi.json, read once when the API
 * is made: a route the document gives no role makes vk_api_new() fail, so nothing is ever
 * served without one. The gate (vk_http_server_opts.gate) runs when a request's headers
 * are in, before its body is read: it finds the caller's credential, their role in the org
 * and answers 401, 403 or 404 itself when they may not; else it attaches the principal for
 * the handler.
 */
#include "api_int.h"
#include "vulcan/store_identity.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const struct {
    const char *name;
    enum vk__api_need need;
    enum vk_auth_role role;
} need_names[] = {
    {"anonymous", VK__NEED_ANONYMOUS, VK_ROLE_NONE},
    {"signature", VK__NEED_SIGNATURE, VK_ROLE_NONE},
    {"registration", VK__NEED_REGISTRATION, VK_ROLE_NONE},
    {"worker", VK__NEED_WORKER, VK_ROLE_NONE},
    {"job", VK__NEED_JOB, VK_ROLE_NONE},
    {"reader", VK__NEED_ROLE, VK_ROLE_READER},
    {"developer", VK__NEED_ROLE, VK_ROLE_DEVELOPER},
    {"maintainer", VK__NEED_ROLE, VK_ROLE_MAINTAINER},
    {"admin", VK__NEED_ROLE, VK_ROLE_ADMIN},
    {"site-admin", VK__NEED_SITE_ADMIN, VK_ROLE_ADMIN},
    {"user", VK__NEED_USER, VK_ROLE_NONE},
};

int vk__api_auth_init(struct vk_api *api, struct vk_err *err)
{
    const struct vk__api_asset *a = vk__api_asset_find("openapi.json");
    json_error_t je;
    json_t *doc = a ? json_loadb((const char *)a->data, a->len, 0, &je) : NULL;
    if (!doc)
        return vk_err_set(err, VK_EINTERNAL, "the embedded openapi.json does not load");
    json_t *paths = json_object_get(doc, "paths");
    size_t n = vk_http_route_count(api->http);
    api->needs = vk_mem_xcalloc(n ? n : 1, sizeof(*api->needs));
    api->nneeds = n;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        const char *method = NULL, *pattern = NULL;
        if (vk_http_route_at(api->http, i, &method, &pattern) < 0)
            break;
        char m[16];
        size_t k = 0;
        for (; method[k] && k + 1 < sizeof(m); k++)
            m[k] = (char)tolower((unsigned char)method[k]);
        m[k] = '\0';
        const char *role = json_string_value(
            json_object_get(json_object_get(json_object_get(paths, pattern), m), "x-vulcan-role"));
        struct vk__api_route_need *rn = &api->needs[i];
        rn->method = method;
        rn->pattern = pattern;
        size_t j = 0;
        while (role && j < VK_ARRAY_LEN(need_names) && strcmp(role, need_names[j].name) != 0)
            j++;
        if (!role || j == VK_ARRAY_LEN(need_names)) {
            rc = vk_err_set(err, VK_EINTERNAL,
                            "route %s %s has no known x-vulcan-role in "
                            "web/openapi.json",
                            method, pattern);
            break;
        }
        rn->need = need_names[j].need;
        rn->role = need_names[j].role;
        rn->name = need_names[j].name;
    }
    json_decref(doc);
    /* A server on a wildcard address with no names to go by cannot tell its own Host
     * from a rebinding one: it accepts any (and cmd_server.c warns). */
    const char *l = api->opts.listen ? api->opts.listen : "";
    bool wildcard = strncmp(l, "0.0.0.0:", 8) == 0 || strncmp(l, "[::]:", 5) == 0 ||
                    strncmp(l, ":", 1) == 0 || strncmp(l, "*:", 2) == 0;
    const char *ah = api->opts.allowed_hosts;
    api->check_host = !(ah && strcmp(ah, "*") == 0) &&
                      (!wildcard || (api->opts.public_url && *api->opts.public_url) || (ah && *ah));
    if (rc == 0 && api->opts.require_auth) {
        struct vk_pool pool;
        vk_pool_init(&pool, 1024);
        struct vk_store_org org;
        rc = vk_store_org_find(api->opts.store, "default", &pool, &org, err);
        if (rc == 0)
            memcpy(api->default_org, org.id, VK_UUID_LEN);
        vk_pool_release(&pool);
    }
    return rc;
}

void vk__api_auth_release(struct vk_api *api)
{
    vk_mem_free(api->needs);
    api->needs = NULL;
    api->nneeds = 0;
}

static const struct vk__api_route_need *need_of(const struct vk_api *api, const char *method,
                                                const char *pattern)
{
    for (size_t i = 0; pattern && i < api->nneeds; i++)
        if (strcmp(api->needs[i].pattern, pattern) == 0 &&
            strcmp(api->needs[i].method, method) == 0)
            return &api->needs[i];
    return NULL;
}

static const struct vk__api_route_need *find_need(const struct vk_api *api,
                                                  const struct vk_http_req *req)
{
    return need_of(api, vk_http_method(req), vk_http_route_pattern(req));
}

bool vk__api_may(const struct vk_api *api, const struct vk_http_req *req, const char *method,
                 const char *pattern)
{
    if (!api->opts.require_auth)
        return true;
    const struct vk__api_principal *p = vk_http_req_principal(req);
    const struct vk__api_route_need *rn = need_of(api, method, pattern);
    return p && rn && rn->need == VK__NEED_ROLE && p->role >= rn->role;
}

static int refuse(struct vk_http_refusal *no, int status, const char *code, const char *www,
                  const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static int refuse(struct vk_http_refusal *no, int status, const char *code, const char *www,
                  const char *fmt, ...)
{
    no->status = status;
    no->code = code;
    no->www_authenticate = www;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(no->message, sizeof(no->message), fmt, ap);
    va_end(ap);
    return 1;
}

#define WWW_NONE "Bearer realm=\"vulcan\""
#define WWW_BAD "Bearer realm=\"vulcan\", error=\"invalid_token\""

/* The bearer token of the request, or NULL; *len its length. */
static const char *bearer(const struct vk_http_req *req, size_t *len)
{
    const char *h = vk_http_header(req, "Authorization");
    if (!h || strncasecmp(h, "Bearer ", 7) != 0)
        return NULL;
    h += 7;
    while (*h == ' ')
        h++;
    size_t n = strlen(h);
    while (n && h[n - 1] == ' ')
        n--;
    *len = n;
    return h;
}

/*
 * The bearer token `tok` (`len` bytes) of kind `want` into *cred: 0, or a refusal that says
 * why with the token's fingerprint only (401), or 503 when the store fails. The one check
 * of every personal access, registration, worker and job token.
 */
static int check_bearer(struct vk_api *api, struct vk_http_req *req, const char *tok, size_t len,
                        enum vk_auth_kind want, struct vk_store_credential *cred,
                        struct vk_http_refusal *no)
{
    enum vk_auth_kind kind;
    char hash[VK_AUTH_HASH_MAX];
    struct vk_err err;
    vk_err_clear(&err);
    if (vk_auth_token_parse(tok, len, want, &kind, hash, &err) < 0)
        return refuse(no, 401, "unauthenticated", WWW_BAD, "%s", err.msg);
    int rc = vk_store_credential_check(api->opts.store, kind, hash, vk_time_now_ms(),
                                       vk_http_pool(req), cred, &err);
    if (rc == VK_EAUTH) {
        char fp[VK_AUTH_FP_MAX];
        vk_auth_fingerprint(kind, hash, fp);
        return refuse(no, 401, "unauthenticated", WWW_BAD, "%s (%s)", err.msg, fp);
    }
    if (rc < 0)
        return refuse(no, 503, "store_unavailable", NULL, "%s", err.msg);
    return 0;
}

/*
 * The worker protocol (docs/security.md, "Workers and jobs"): registration needs a
 * registration token, the worker's own calls its worker token, log chunks and results the
 * job token of that attempt. The gate checks the token is valid and of the route's kind;
 * which worker or attempt it may speak for is the handler's check (api_worker.c), against
 * the credential attached here.
 */
static int gate_agent(struct vk_api *api, struct vk_http_req *req,
                      const struct vk__api_route_need *rn, struct vk_http_refusal *no)
{
    enum vk_auth_kind want = rn->need == VK__NEED_REGISTRATION ? VK_AUTH_REGISTRATION
                             : rn->need == VK__NEED_WORKER     ? VK_AUTH_WORKER
                                                               : VK_AUTH_JOB;
    size_t len = 0;
    const char *tok = bearer(req, &len);
    if (!tok)
        return refuse(no, 401, "unauthenticated", WWW_NONE, "%s %s needs a %s (Bearer %s...)",
                      rn->method, rn->pattern, vk_auth_kind_name(want), vk_auth_kind_prefix(want));
    struct vk__api_principal *p = vk_pool_zalloc(vk_http_pool(req), sizeof(*p));
    if (!p)
        return refuse(no, 500, "internal", NULL, "out of memory");
    if (check_bearer(api, req, tok, len, want, &p->cred, no))
        return 1;
    memcpy(p->org_id, p->cred.org_id[0] ? p->cred.org_id : api->default_org, VK_UUID_LEN);
    vk_http_req_set_principal(req, p);
    return 0;
}

const struct vk_store_credential *vk__api_agent_cred(const struct vk_http_req *req)
{
    const struct vk__api_principal *p = vk_http_req_principal(req);
    return p && (p->cred.kind == VK_AUTH_REGISTRATION || p->cred.kind == VK_AUTH_WORKER ||
                 p->cred.kind == VK_AUTH_JOB)
               ? &p->cred
               : NULL;
}

bool vk__api_group_allowed(const char *list, const char *group)
{
    if (!list || !*list)
        return true;
    size_t n = strlen(group);
    for (const char *s = list; *s;) {
        const char *e = strchr(s, ',');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        while (len && *s == ' ')
            s++, len--;
        while (len && s[len - 1] == ' ')
            len--;
        if (len == n && memcmp(s, group, n) == 0)
            return true;
        if (!e)
            break;
        s = e + 1;
    }
    return false;
}

/* ---------------------------------------------------------------- Browsers */

/* The host part of an authority "name", "name:port", "[v6]" or "[v6]:port" into `out`
 * (lowercase, brackets kept). False when it does not fit or is empty. */
static bool host_of(const char *authority, size_t len, char *out, size_t cap)
{
    size_t n = len;
    if (len && authority[0] == '[') {
        const char *e = memchr(authority, ']', len);
        if (!e)
            return false;
        n = (size_t)(e - authority) + 1;
    } else {
        const char *c = memchr(authority, ':', len);
        if (c)
            n = (size_t)(c - authority);
    }
    if (n == 0 || n >= cap)
        return false;
    for (size_t i = 0; i < n; i++)
        out[i] = (char)tolower((unsigned char)authority[i]);
    out[n] = '\0';
    return true;
}

/* The authority of an http(s) URL (borrowed, `*len` bytes), or NULL. */
static const char *url_authority(const char *url, size_t *len, size_t *scheme_len)
{
    if (!url)
        return NULL;
    size_t s = strncmp(url, "https://", 8) == 0 ? 8 : strncmp(url, "http://", 7) == 0 ? 7 : 0;
    if (!s)
        return NULL;
    const char *a = url + s;
    *len = strcspn(a, "/?#");
    *scheme_len = s;
    return *len ? a : NULL;
}

static bool loopback_name(const char *h)
{
    if (strcmp(h, "localhost") == 0 || strcmp(h, "[::1]") == 0)
        return true;
    if (strncmp(h, "127.", 4) != 0)
        return false;
    return strspn(h, "0123456789.") == strlen(h);
}

static bool in_list(const char *list, const char *h)
{
    for (const char *s = list; s && *s;) {
        size_t len = strcspn(s, ",");
        char name[256];
        while (len && *s == ' ')
            s++, len--;
        if (host_of(s, len, name, sizeof(name))) {
            size_t k = strlen(name);
            while (k && name[k - 1] == ' ')
                name[--k] = '\0';
            if (strcmp(name, h) == 0)
                return true;
        }
        s += len;
        if (*s == ',')
            s++;
    }
    return false;
}

bool vk__api_host_ok(const struct vk_api *api, const struct vk_http_req *req)
{
    if (!api->check_host)
        return true;
    const char *host = vk_http_header(req, "Host");
    char h[256], mine[256];
    if (!host || !host_of(host, strlen(host), h, sizeof(h)))
        return false;
    if (loopback_name(h))
        return true;
    const char *l = api->opts.listen;
    if (l && host_of(l, strlen(l), mine, sizeof(mine)) && strcmp(mine, h) == 0)
        return true;
    size_t alen, slen;
    const char *a = url_authority(api->opts.public_url, &alen, &slen);
    if (a && host_of(a, alen, mine, sizeof(mine)) && strcmp(mine, h) == 0)
        return true;
    return in_list(api->opts.allowed_hosts, h);
}

bool vk__api_same_origin(const struct vk_api *api, const struct vk_http_req *req,
                         const char *origin)
{
    size_t olen, oslen;
    const char *oa = url_authority(origin, &olen, &oslen);
    /* An origin is scheme://authority and nothing more ("null" is no origin). */
    if (!oa || oa[olen] != '\0')
        return false;
    size_t plen, pslen;
    const char *pa = url_authority(api->opts.public_url, &plen, &pslen);
    if (pa && pslen == oslen && strncmp(origin, api->opts.public_url, pslen) == 0 && plen == olen &&
        strncasecmp(pa, oa, olen) == 0)
        return true;
    const char *host = vk_http_header(req, "Host");
    return host && strlen(host) == olen && strncasecmp(host, oa, olen) == 0;
}

const char *vk__api_cookie(struct vk_http_req *req, const char *name)
{
    const char *h = vk_http_header(req, "Cookie");
    size_t nlen = strlen(name);
    for (const char *s = h; s && *s;) {
        while (*s == ' ' || *s == ';')
            s++;
        size_t len = strcspn(s, ";");
        if (len > nlen && strncmp(s, name, nlen) == 0 && s[nlen] == '=') {
            size_t vlen = len - nlen - 1;
            char *v = vk_pool_alloc(vk_http_pool(req), vlen + 1);
            if (!v)
                return NULL;
            memcpy(v, s + nlen + 1, vlen);
            v[vlen] = '\0';
            return v;
        }
        s += len;
    }
    return NULL;
}

static bool unsafe_method(const char *m)
{
    return strcmp(m, "GET") != 0 && strcmp(m, "HEAD") != 0 && strcmp(m, "OPTIONS") != 0;
}

/*
 * What protects a browser's user (docs/security.md "Browsers"): a Host that is not this
 * server's is refused (DNS rebinding), and so is a state-changing request whose Origin is
 * another site's (a page elsewhere posting a form or a fetch to this server). Requests
 * without an Origin header (curl, the CLI, workers, webhooks) pass this check.
 */
static int gate_browser(struct vk_api *api, struct vk_http_req *req,
                        const struct vk__api_route_need *rn, struct vk_http_refusal *no)
{
    bool infra = strncmp(rn->pattern, "/health", 7) == 0 || strcmp(rn->pattern, "/metrics") == 0;
    if (!infra && !vk__api_host_ok(api, req))
        return refuse(no, 421, "misdirected_request", NULL,
                      "this server does not answer for Host '%.100s' (add it with "
                      "--public-url or --allowed-hosts)",
                      vk_http_header(req, "Host") ? vk_http_header(req, "Host") : "");
    const char *origin = vk_http_header(req, "Origin");
    /* The SAML ACS takes the IdP's cross-site form post (HTTP-POST binding): its CSRF
     * safety is the one-use RelayState and the state cookie checked at /finish (api_saml.c). */
    bool idp_post = strcmp(rn->pattern, "/api/v1/sso/saml/acs") == 0;
    if (origin && !idp_post && unsafe_method(rn->method) && !vk__api_same_origin(api, req, origin))
        return refuse(no, 403, "cross_origin", NULL,
                      "%s %s from another origin (%.100s) is refused", rn->method, rn->pattern,
                      origin);
    return 0;
}

/*
 * A console session (cookie vulcan_session): a state-changing request must also carry the
 * session's X-CSRF-Token and a same-origin Origin, so that only the console's own pages can
 * act with it. Fills p->cred; returns 0 or a refusal.
 */
int vk__api_session_of(struct vk_api *api, struct vk_http_req *req,
                       struct vk_store_credential *cred, struct vk_err *err)
{
    const char *cookie = vk__api_cookie(req, VK__API_SESSION_COOKIE);
    if (!cookie)
        return vk_err_set(err, VK_EAUTH, "not logged in");
    enum vk_auth_kind kind;
    char hash[VK_AUTH_HASH_MAX];
    if (vk_auth_token_parse(cookie, strlen(cookie), VK_AUTH_SESSION, &kind, hash, err) < 0) {
        char why[sizeof(err->msg)];
        snprintf(why, sizeof(why), "%s", err->msg);
        return vk_err_set(err, VK_EAUTH, "session cookie: %s", why);
    }
    return vk_store_credential_check(api->opts.store, kind, hash, vk_time_now_ms(),
                                     vk_http_pool(req), cred, err);
}

bool vk__api_csrf_ok(const struct vk_http_req *req, const struct vk_store_credential *cred)
{
    const char *csrf = vk_http_header(req, "X-CSRF-Token");
    const char *want = cred->csrf ? cred->csrf : "";
    size_t n = strlen(want);
    return csrf && n && strlen(csrf) == n && vk_auth_equal(csrf, want, n);
}

static int gate_session(struct vk_api *api, struct vk_http_req *req,
                        const struct vk__api_route_need *rn, struct vk__api_principal *p,
                        struct vk_http_refusal *no)
{
    struct vk_err err;
    vk_err_clear(&err);
    int rc = vk__api_session_of(api, req, &p->cred, &err);
    if (rc == VK_EAUTH)
        return refuse(no, 401, "unauthenticated", NULL, "%s; log in again", err.msg);
    if (rc < 0)
        return refuse(no, 503, "store_unavailable", NULL, "%s", err.msg);
    if (unsafe_method(rn->method)) {
        if (!vk_http_header(req, "Origin"))
            return refuse(no, 403, "csrf", NULL,
                          "%s %s with a session cookie needs a same-origin Origin header",
                          rn->method, rn->pattern);
        if (!vk__api_csrf_ok(req, &p->cred))
            return refuse(no, 403, "csrf", NULL,
                          "%s %s with a session cookie needs the session's X-CSRF-Token",
                          rn->method, rn->pattern);
    }
    p->cred.scopes = VK_SCOPE_ALL; /* a session is its user, capped by nothing but roles */
    return 0;
}

/*
 * The org a request acts in: the org named by the `{org}` of its path (by slug), else
 * `default`. An unknown slug gives VK_ENOTFOUND, which the gate answers like "no role"
 * (404 "not found"), so a caller cannot probe which orgs exist.
 */
int vk__api_request_org(struct vk_api *api, struct vk_http_req *req, char org_id[VK_UUID_LEN],
                        struct vk_err *err)
{
    const char *slug = vk_http_param(req, "org");
    if (!slug) {
        memcpy(org_id, api->default_org, VK_UUID_LEN);
        return 0;
    }
    if (strlen(slug) > VK_STORE_MAX_SLUG)
        return vk_err_set(err, VK_ENOTFOUND, "org not found");
    struct vk_store_org o;
    int rc = vk_store_org_find(api->opts.store, slug, vk_http_pool(req), &o, err);
    if (rc == 0)
        memcpy(org_id, o.id, VK_UUID_LEN);
    return rc;
}

int vk__api_gate(struct vk_http_req *req, void *ctx, struct vk_http_refusal *no)
{
    struct vk_api *api = ctx;
    const struct vk__api_route_need *rn = find_need(api, req);
    if (!rn)
        return refuse(no, 500, "internal", NULL, "route without a role");
    if (gate_browser(api, req, rn, no))
        return 1;
    if (rn->need == VK__NEED_ANONYMOUS || rn->need == VK__NEED_SIGNATURE)
        return 0;
    if (!api->opts.require_auth)
        return 0;
    if (rn->need == VK__NEED_REGISTRATION || rn->need == VK__NEED_WORKER ||
        rn->need == VK__NEED_JOB)
        return gate_agent(api, req, rn, no);
    size_t len = 0;
    const char *tok = bearer(req, &len);
    bool cookie = !tok && vk__api_cookie(req, VK__API_SESSION_COOKIE);
    if (!tok && !cookie)
        return refuse(no, 401, "unauthenticated", WWW_NONE,
                      "%s %s needs a token: send Authorization: Bearer vk_pat_... (or log in "
                      "to the console)",
                      rn->method, rn->pattern);
    struct vk_err err;
    vk_err_clear(&err);
    struct vk_pool *pool = vk_http_pool(req);
    struct vk__api_principal *p = vk_pool_zalloc(pool, sizeof(*p));
    if (!p)
        return refuse(no, 500, "internal", NULL, "out of memory");
    if (cookie ? gate_session(api, req, rn, p, no)
               : check_bearer(api, req, tok, len, VK_AUTH_PAT, &p->cred, no))
        return 1;
    struct vk_store_user u;
    int rc = vk_store_user_get(api->opts.store, p->cred.user_id, pool, &u, &err);
    if (rc < 0)
        return refuse(no, 503, "store_unavailable", NULL, "%s", err.msg);
    memcpy(p->user_id, u.id, VK_UUID_LEN);
    p->login = u.login;
    p->site_admin = u.site_admin;
    /* Known from here even when refused below: the audit log names who was refused. The
     * handler never runs for a refused request, so nothing else sees it. */
    vk_http_req_set_principal(req, p);
    rc = vk__api_request_org(api, req, p->org_id, &err);
    if (rc == VK_ENOTFOUND)
        return refuse(no, 404, "not_found", NULL, "not found");
    if (rc < 0)
        return refuse(no, 503, "store_unavailable", NULL, "%s", err.msg);
    enum vk_auth_role role = VK_ROLE_NONE;
    /* A token restricted to another org acts in no other. */
    if (!p->cred.org_id[0] || strcmp(p->cred.org_id, p->org_id) == 0) {
        if (vk_store_role_of(api->opts.store, p->user_id, p->org_id, NULL, &role, &err) < 0)
            return refuse(no, 503, "store_unavailable", NULL, "%s", err.msg);
        if (u.site_admin)
            role = VK_ROLE_ADMIN;
    }
    enum vk_auth_role cap = vk_auth_scopes_cap(p->cred.scopes);
    p->role = role < cap ? role : cap;
    if (rn->need == VK__NEED_USER) {
        vk_http_req_set_principal(req, p);
        return 0;
    }
    if (rn->need == VK__NEED_SITE_ADMIN && !(u.site_admin && cap == VK_ROLE_ADMIN))
        return refuse(no, 403, "forbidden", NULL,
                      "%s %s needs a site admin's token with the admin scope", rn->method,
                      rn->pattern);
    if (role == VK_ROLE_NONE)
        return refuse(no, 404, "not_found", NULL, "not found");
    if (p->role < rn->role)
        return refuse(no, 403, "forbidden", NULL,
                      "%s %s needs the %s role; this token acts as %s%s", rn->method, rn->pattern,
                      rn->name, vk_auth_role_name(p->role),
                      cap < role ? " (its scopes allow no more)" : "");
    vk_http_req_set_principal(req, p);
    return 0;
}
