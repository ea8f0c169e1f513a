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

static const struct vk__api_route_need *find_need(const struct vk_api *api,
                                                  const struct vk_http_req *req)
{
    const char *method = vk_http_method(req), *pattern = vk_http_route_pattern(req);
    for (size_t i = 0; pattern && i < api->nneeds; i++)
        if (strcmp(api->needs[i].pattern, pattern) == 0 &&
            strcmp(api->needs[i].method, method) == 0)
            return &api->needs[i];
    return NULL;
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
    enum vk_auth_kind kind;
    char hash[VK_AUTH_HASH_MAX];
    struct vk_err err;
    vk_err_clear(&err);
    if (vk_auth_token_parse(tok, len, want, &kind, hash, &err) < 0)
        return refuse(no, 401, "unauthenticated", WWW_BAD, "%s", err.msg);
    struct vk_pool *pool = vk_http_pool(req);
    struct vk__api_principal *p = vk_pool_alloc(pool, sizeof(*p));
    if (!p)
        return refuse(no, 500, "internal", NULL, "out of memory");
    memset(p, 0, sizeof(*p));
    int rc = vk_store_credential_check(api->opts.store, kind, hash, vk_time_now_ms(), pool,
                                       &p->cred, &err);
    if (rc == VK_EAUTH) {
        char fp[VK_AUTH_FP_MAX];
        vk_auth_fingerprint(kind, hash, fp);
        return refuse(no, 401, "unauthenticated", WWW_BAD, "%s (%s)", err.msg, fp);
    }
    if (rc < 0)
        return refuse(no, 503, "store_unavailable", NULL, "%s", err.msg);
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

/*
 * The org a request acts in: the org named by the `{org}` of its path (by slug), else
 * `default`. An unknown slug gives VK_ENOTFOUND, which the gate answers like "no role"
 * (404 "not found"), so a caller cannot probe which orgs exist.
 */
static int request_org(struct vk_api *api, struct vk_http_req *req, char org_id[VK_UUID_LEN],
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
    if (rn->need == VK__NEED_ANONYMOUS || rn->need == VK__NEED_SIGNATURE)
        return 0;
    if (!api->opts.require_auth)
        return 0;
    if (rn->need == VK__NEED_REGISTRATION || rn->need == VK__NEED_WORKER ||
        rn->need == VK__NEED_JOB)
        return gate_agent(api, req, rn, no);
    size_t len = 0;
    const char *tok = bearer(req, &len);
    if (!tok)
        return refuse(no, 401, "unauthenticated", WWW_NONE,
                      "%s %s needs a token: send Authorization: Bearer vk_pat_...", rn->method,
                      rn->pattern);
    enum vk_auth_kind kind;
    char hash[VK_AUTH_HASH_MAX];
    struct vk_err err;
    vk_err_clear(&err);
    if (vk_auth_token_parse(tok, len, VK_AUTH_PAT, &kind, hash, &err) < 0)
        return refuse(no, 401, "unauthenticated", WWW_BAD, "%s", err.msg);
    struct vk_pool *pool = vk_http_pool(req);
    struct vk__api_principal *p = vk_pool_alloc(pool, sizeof(*p));
    if (!p)
        return refuse(no, 500, "internal", NULL, "out of memory");
    memset(p, 0, sizeof(*p));
    int rc = vk_store_credential_check(api->opts.store, kind, hash, vk_time_now_ms(), pool,
                                       &p->cred, &err);
    if (rc == VK_EAUTH) {
        char fp[VK_AUTH_FP_MAX];
        vk_auth_fingerprint(kind, hash, fp);
        return refuse(no, 401, "unauthenticated", WWW_BAD, "%s (%s)", err.msg, fp);
    }
    struct vk_store_user u;
    if (rc == 0)
        rc = vk_store_user_get(api->opts.store, p->cred.user_id, pool, &u, &err);
    if (rc < 0)
        return refuse(no, 503, "store_unavailable", NULL, "%s", err.msg);
    memcpy(p->user_id, u.id, VK_UUID_LEN);
    p->login = u.login;
    p->site_admin = u.site_admin;
    rc = request_org(api, req, p->org_id, &err);
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
