/*
 * Managing identity (DESIGN §7 "Routes", docs/security.md "Managing users, orgs and
 * tokens"): the caller (GET /api/v1/user), their personal access tokens, users and orgs
 * (site admins), and an org's teams, grants and worker registration tokens (its admins).
 *
 * The gate has checked the route's x-vulcan-role and attached the principal; the `{org}`
 * of a path is resolved there (an unknown slug is 404 like no role). Every route here
 * refuses to give more than the caller has: a token's scopes are at most the scopes of the
 * token that minted it (its org restriction at least as narrow, its expiry no later), a
 * grant's role at most the caller's role in that org. Without --require-auth there is no principal:
 * every route answers 403 "identity routes need credentials: this server runs with --no-auth".
 *
 * Token values are in answers once (201 of a create) and never in logs or listings.
 */
#include "api_int.h"
#include "vulcan/store_identity.h"

#include <stdio.h>
#include <string.h>

#define MAX_NAME 128                       /* a token's or an org's display name, a user's name */
#define MAX_EMAIL 254                      /* RFC 5321 */
#define MAX_EXPIRES_S (10LL * 366 * 86400) /* ten years */
#define MAX_GROUP 64                       /* a machine group's name */

/* ---------------------------------------------------------------- Helpers */

/* The principal, or NULL after answering 403 (no --require-auth: nobody to act for). */
static const struct vk__api_principal *who(struct vk_api *api, struct vk_http_req *req)
{
    const struct vk__api_principal *p = vk_http_req_principal(req);
    if (!api->opts.require_auth || !p || !p->user_id[0]) {
        vk_http_reply_error(req, 403, "forbidden",
                            "identity routes need credentials: this server runs with "
                            "--no-auth and has no users");
        return NULL;
    }
    return p;
}

static bool bad(struct vk_http_req *req, const char *fmt, const char *what)
{
    vk_http_reply_error(req, 400, "bad_request", fmt, what);
    return false;
}

/* Only the members named in `known` (NULL-terminated) may be in `body`. */
static bool only(struct vk_http_req *req, json_t *body, const char *const *known)
{
    if (!json_is_object(body))
        return bad(req, "%s", "expected a JSON object");
    const char *k;
    json_t *v;
    json_object_foreach(body, k, v)
    {
        bool ok = false;
        for (size_t i = 0; known[i] && !ok; i++)
            ok = strcmp(k, known[i]) == 0;
        if (!ok)
            return bad(req, "unknown field '%s'", k);
    }
    return true;
}

/* Optional string member `key` of at most `max` bytes (no NUL inside) into *out (NULL when
 * absent or null). */
static bool opt_str(struct vk_http_req *req, json_t *body, const char *key, size_t max,
                    const char **out)
{
    json_t *v = json_object_get(body, key);
    *out = NULL;
    if (!v || json_is_null(v))
        return true;
    if (!json_is_string(v) || json_string_length(v) > max ||
        strlen(json_string_value(v)) != json_string_length(v)) {
        char msg[96];
        snprintf(msg, sizeof(msg), "'%s' must be a string of at most %zu bytes", key, max);
        return bad(req, "%s", msg);
    }
    *out = json_string_value(v);
    return true;
}

static bool req_str(struct vk_http_req *req, json_t *body, const char *key, size_t max,
                    const char **out)
{
    if (!opt_str(req, body, key, max, out))
        return false;
    if (!*out || !**out)
        return bad(req, "'%s' is required", key);
    return true;
}

/* Optional `expires_in_s` (1 s to ten years) as an absolute time in ms; 0 when absent. */
static bool expires(struct vk_http_req *req, json_t *body, int64_t *at)
{
    json_t *v = json_object_get(body, "expires_in_s");
    *at = 0;
    if (!v || json_is_null(v))
        return true;
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > MAX_EXPIRES_S)
        return bad(req, "%s", "'expires_in_s' must be an integer from 1 to 316224000 (ten years)");
    *at = vk_time_now_ms() + (int64_t)json_integer_value(v) * 1000;
    return true;
}

static int store_fail(struct vk_http_req *req, const struct vk_err *err, int rc)
{
    if (rc == VK_EEXIST) {
        vk_http_reply_error(req, 409, "conflict", "%s", err->msg);
        return 409;
    }
    return vk__api_reply_err(req, err, rc);
}

static void fingerprint_of(const char *token, enum vk_auth_kind kind, char fp[VK_AUTH_FP_MAX])
{
    enum vk_auth_kind k;
    char hash[VK_AUTH_HASH_MAX] = "";
    struct vk_err ignored;
    if (vk_auth_token_parse(token, strlen(token), kind, &k, hash, &ignored) < 0)
        hash[0] = '\0';
    vk_auth_fingerprint(kind, hash, fp);
}

static json_t *fp_json(const struct vk_store_credential *c)
{
    char fp[VK_AUTH_FP_MAX];
    vk_auth_fingerprint(c->kind, c->hash, fp);
    return json_string(fp);
}

/* The slug of org `id` ("" none) for an answer; NULL when it is gone. */
static const char *org_slug(struct vk_api *api, struct vk_http_req *req, const char *id)
{
    if (!id || !*id)
        return NULL;
    struct vk_store_org o;
    struct vk_err err;
    vk_err_clear(&err);
    return vk_store_org_get(api->opts.store, id, vk_http_pool(req), &o, &err) == 0 ? o.slug : NULL;
}

/* ---------------------------------------------------------------- The caller */

/* The orgs of `p` with the role held in each (a site admin's: every org, as admin). */
static json_t *orgs_json(struct vk_api *api, struct vk_http_req *req,
                         const struct vk__api_principal *p, bool all, struct vk_err *err, int *rc)
{
    struct vk_store_org *orgs = NULL;
    size_t n = 0;
    *rc = vk_store_org_list(api->opts.store, all ? NULL : p->user_id, vk_http_pool(req), &orgs, &n,
                            err);
    if (*rc < 0)
        return NULL;
    json_t *a = json_array();
    int failed = 0;
    for (size_t i = 0; i < n && *rc == 0; i++) {
        enum vk_auth_role role = VK_ROLE_NONE;
        *rc = vk_store_role_of(api->opts.store, p->user_id, orgs[i].id, NULL, &role, err);
        if (p->site_admin)
            role = VK_ROLE_ADMIN;
        failed |= json_array_append_new(
            a, json_pack("{s:s, s:s, s:o, s:s, s:b, s:o}", "id", orgs[i].id, "slug", orgs[i].slug,
                         "name", vk__api_str(orgs[i].display_name), "role", vk_auth_role_name(role),
                         "sso_only", orgs[i].sso_only, "created_at",
                         vk__api_time(orgs[i].created_at)));
    }
    if (*rc < 0) {
        json_decref(a);
        return NULL;
    }
    return vk_http_json_checked(a, failed);
}

static void h_user(struct vk_http_req *req, void *ctx)
{
    struct vk_api *api = ctx;
    const struct vk__api_principal *p = who(api, req);
    if (!p)
        return;
    struct vk_store_user u;
    struct vk_err err;
    vk_err_clear(&err);
    int rc = vk_store_user_get(api->opts.store, p->user_id, vk_http_pool(req), &u, &err);
    json_t *orgs = rc == 0 ? orgs_json(api, req, p, false, &err, &rc) : NULL;
    if (rc < 0) {
        vk__api_reply_err(req, &err, rc);
        return;
    }
    char scopes[VK_AUTH_SCOPES_MAX];
    vk_auth_scopes_format(p->cred.scopes, scopes);
    vk_http_reply_json(req, 200,
                       json_pack("{s:s, s:s, s:o, s:o, s:s, s:b, s:s, s:o, s:o}", "id", u.id,
                                 "login", u.login, "name", vk__api_str(u.name), "email",
                                 vk__api_str(u.email), "source", u.source ? u.source : "local",
                                 "site_admin", u.site_admin, "scopes", scopes, "token_org",
                                 vk__api_str(org_slug(api, req, p->cred.org_id)), "orgs", orgs));
}

/* ---------------------------------------------------------------- Personal access tokens */

/* Scopes as "read,write" or ["read", "write"]. */
static bool scopes_of(struct vk_http_req *req, json_t *v, unsigned *out)
{
    struct vk_err err;
    vk_err_clear(&err);
    *out = 0;
    if (json_is_string(v) && json_string_length(v) < 64) {
        if (vk_auth_scopes_parse(json_string_value(v), out, &err) == 0)
            return true;
        return bad(req, "%s", err.msg);
    }
    if (json_is_array(v) && json_array_size(v) > 0 && json_array_size(v) <= 3) {
        size_t i;
        json_t *s;
        json_array_foreach(v, i, s)
        {
            unsigned one = 0;
            if (!json_is_string(s) || json_string_length(s) > 16)
                return bad(req, "%s", "'scopes' must hold the names read, write or admin");
            if (vk_auth_scopes_parse(json_string_value(s), &one, &err) < 0)
                return bad(req, "%s", err.msg);
            *out |= one;
        }
        return true;
    }
    return bad(req, "%s", "'scopes' must be \"read,write\" or an array such as [\"read\"]");
}

static void h_token_create(struct vk_http_req *req, void *ctx)
{
    struct vk_api *api = ctx;
    const struct vk__api_principal *p = who(api, req);
    if (!p)
        return;
    json_t *body = vk_http_json(req);
    static const char *const known[] = {"name", "scopes", "expires_in_s", "org", NULL};
    const char *name = NULL, *org = NULL;
    unsigned scopes = 0;
    int64_t exp = 0;
    if (!only(req, body, known) || !opt_str(req, body, "name", MAX_NAME, &name) ||
        !opt_str(req, body, "org", VK_STORE_MAX_SLUG, &org) || !expires(req, body, &exp))
        return;
    json_t *js = json_object_get(body, "scopes");
    if (!js) {
        bad(req, "%s", "'scopes' is required (\"read\", \"read,write\"...)");
        return;
    }
    if (!scopes_of(req, js, &scopes))
        return;
    if (scopes & ~p->cred.scopes) {
        char want[VK_AUTH_SCOPES_MAX], have[VK_AUTH_SCOPES_MAX];
        vk_auth_scopes_format(scopes, want);
        vk_auth_scopes_format(p->cred.scopes, have);
        vk_http_reply_error(req, 403, "forbidden",
                            "a token can only be given scopes its maker's token has: asked for "
                            "%s, this token has %s",
                            want, have);
        return;
    }
    /* A personal access token never makes one that outlives it (a short-lived token must
     * not become a permanent one). A console session is its user, logged in with a
     * password or SSO: like GitHub's settings page, it may make tokens of any lifetime. */
    if (p->cred.kind == VK_AUTH_PAT && p->cred.expires_at > 0 &&
        (exp == 0 || exp > p->cred.expires_at)) {
        char at[VK_TIME_LEN];
        vk_time_format(p->cred.expires_at, at);
        vk_http_reply_error(req, 403, "forbidden",
                            "this token expires at %s: a token it makes cannot outlive it "
                            "(give expires_in_s)",
                            at);
        return;
    }
    /* An org restriction: an org the caller is in; never wider than the caller's own. */
    struct vk_err err;
    vk_err_clear(&err);
    char org_id[VK_UUID_LEN] = "";
    if (org) {
        struct vk_store_org o;
        enum vk_auth_role role = VK_ROLE_NONE;
        int rc = vk_store_org_find(api->opts.store, org, vk_http_pool(req), &o, &err);
        if (rc == 0 && !p->site_admin)
            rc = vk_store_role_of(api->opts.store, p->user_id, o.id, NULL, &role, &err);
        if (rc == VK_ENOTFOUND || (rc == 0 && !p->site_admin && role == VK_ROLE_NONE)) {
            vk_http_reply_error(req, 404, "not_found", "org '%s' not found", org);
            return;
        }
        if (rc < 0) {
            vk__api_reply_err(req, &err, rc);
            return;
        }
        memcpy(org_id, o.id, VK_UUID_LEN);
    }
    if (p->cred.org_id[0]) {
        if (org_id[0] && strcmp(org_id, p->cred.org_id) != 0) {
            vk_http_reply_error(req, 403, "forbidden",
                                "this token is restricted to one org: a token it makes is too");
            return;
        }
        memcpy(org_id, p->cred.org_id, VK_UUID_LEN);
    }
    char token[VK_AUTH_TOKEN_MAX], id[VK_UUID_LEN];
    int rc = vk_store_token_issue(api->opts.store, p->user_id, scopes, org_id, exp, name, token, id,
                                  &err);
    if (rc < 0) {
        store_fail(req, &err, rc);
        return;
    }
    char fp[VK_AUTH_FP_MAX], sc[VK_AUTH_SCOPES_MAX];
    fingerprint_of(token, VK_AUTH_PAT, fp);
    vk_auth_scopes_format(scopes, sc);
    vk_log_write(VK_LOG_INFO, "api", "token created", "user", p->login, "token", fp, "scopes", sc,
                 NULL);
    vk_http_reply_json(req, 201,
                       json_pack("{s:s, s:s, s:s, s:s, s:o, s:o}", "id", id, "token", token,
                                 "fingerprint", fp, "scopes", sc, "org",
                                 vk__api_str(org_slug(api, req, org_id)), "expires_at",
                                 vk__api_time(exp)));
    vk_auth_wipe(token, sizeof(token));
}

static json_t *cred_json(struct vk_api *api, struct vk_http_req *req,
                         const struct vk_store_credential *c)
{
    char sc[VK_AUTH_SCOPES_MAX];
    vk_auth_scopes_format(c->scopes, sc);
    return json_pack(
        "{s:s, s:o, s:o, s:s, s:o, s:o, s:o, s:o, s:o}", "id", c->id, "name", vk__api_str(c->name),
        "fingerprint", fp_json(c), "scopes", sc, "org", vk__api_str(org_slug(api, req, c->org_id)),
        "created_at", vk__api_time(c->created_at), "last_used_at", vk__api_time(c->last_used_at),
        "expires_at", vk__api_time(c->expires_at), "revoked_at", vk__api_time(c->revoked_at));
}

static void h_token_list(struct vk_http_req *req, void *ctx)
{
    struct vk_api *api = ctx;
    const struct vk__api_principal *p = who(api, req);
    if (!p)
        return;
    struct vk_store_credential *cs = NULL;
    size_t n = 0;
    struct vk_err err;
    vk_err_clear(&err);
    int rc = vk_store_credential_list(api->opts.store, VK_AUTH_PAT, p->user_id, NULL,
                                      vk_http_pool(req), &cs, &n, &err);
    if (rc < 0) {
        vk__api_reply_err(req, &err, rc);
        return;
    }
    json_t *a = json_array();
    int failed = 0;
    for (size_t i = 0; i < n; i++)
        failed |= json_array_append_new(a, cred_json(api, req, &cs[i]));
    vk_http_reply_json(req, 200, json_pack("{s:o}", "tokens", vk_http_json_checked(a, failed)));
}

static void h_token_delete(struct vk_http_req *req, void *ctx)
{
    struct vk_api *api = ctx;
    const struct vk__api_principal *p = who(api, req);
    if (!p)
        return;
    const char *id = vk_http_param(req, "id");
    struct vk_err err;
    vk_err_clear(&err);
    /* Only the caller's own: another's is "not found". */
    int rc = strlen(id) < VK_UUID_LEN ? vk_store_credential_revoke(api->opts.store, id, p->user_id,
                                                                   vk_time_now_ms(), &err)
                                      : vk_err_set(&err, VK_ENOTFOUND, "token not found");
    if (rc == VK_ENOTFOUND) {
        vk_http_reply_error(req, 404, "not_found", "token not found");
        return;
    }
    if (rc < 0) {
        vk__api_reply_err(req, &err, rc);
        return;
    }
    vk_log_write(VK_LOG_INFO, "api", "token revoked", "user", p->login, "token_id", id, NULL);
    vk_http_reply_empty(req, 204);
}

/* ---------------------------------------------------------------- Users and orgs */

static void h_user_create(struct vk_http_req *req, void *ctx)
{
    struct vk_api *api = ctx;
    const struct vk__api_principal *p = who(api, req);
    if (!p)
        return;
    json_t *body = vk_http_json(req);
    static const char *const known[] = {"login", "password", "email", "name", "site_admin", NULL};
    struct vk_store_user u = {0};
    const char *password = NULL;
    if (!only(req, body, known) || !req_str(req, body, "login", VK_STORE_MAX_LOGIN, &u.login) ||
        !opt_str(req, body, "password", VK_AUTH_PASSWORD_MAX, &password) ||
        !opt_str(req, body, "email", MAX_EMAIL, &u.email) ||
        !opt_str(req, body, "name", MAX_NAME, &u.name))
        return;
    json_t *sa = json_object_get(body, "site_admin");
    if (sa && !json_is_boolean(sa)) {
        bad(req, "%s", "'site_admin' must be true or false");
        return;
    }
    u.site_admin = json_is_true(sa); /* the caller is a site admin: this is not more */
    struct vk_err err;
    vk_err_clear(&err);
    char phc[VK_AUTH_PHC_MAX];
    if (password) {
        int rc = vk_auth_password_hash(password, strlen(password), NULL, phc, &err);
        if (rc < 0) {
            vk__api_reply_err(req, &err, rc);
            return;
        }
        u.password_hash = phc;
    }
    int rc = vk_store_user_create(api->opts.store, &u, &err);
    if (rc < 0) {
        store_fail(req, &err, rc);
        return;
    }
    vk_log_write(VK_LOG_INFO, "api", "user created", "login", u.login, "by", p->login, "site_admin",
                 u.site_admin ? "true" : "false", NULL);
    vk_http_reply_json(req, 201, json_pack("{s:s, s:s}", "id", u.id, "login", u.login));
}

static void h_org_create(struct vk_http_req *req, void *ctx)
{
    struct vk_api *api = ctx;
    const struct vk__api_principal *p = who(api, req);
    if (!p)
        return;
    json_t *body = vk_http_json(req);
    static const char *const known[] = {"slug", "name", NULL};
    struct vk_store_org o = {0};
    if (!only(req, body, known) || !req_str(req, body, "slug", VK_STORE_MAX_SLUG, &o.slug) ||
        !opt_str(req, body, "name", MAX_NAME, &o.display_name))
        return;
    struct vk_err err;
    vk_err_clear(&err);
    int rc = vk_store_org_create(api->opts.store, &o, &err);
    /* The creator administers it. */
    struct vk_store_grant g = {.role = VK_ROLE_ADMIN};
    memcpy(g.org_id, o.id, VK_UUID_LEN);
    memcpy(g.user_id, p->user_id, VK_UUID_LEN);
    if (rc == 0)
        rc = vk_store_grant_create(api->opts.store, &g, &err);
    if (rc < 0) {
        store_fail(req, &err, rc);
        return;
    }
    vk_log_write(VK_LOG_INFO, "api", "org created", "org", o.slug, "by", p->login, NULL);
    vk_http_reply_json(req, 201, json_pack("{s:s, s:s}", "id", o.id, "slug", o.slug));
}

static void h_org_list(struct vk_http_req *req, void *ctx)
{
    struct vk_api *api = ctx;
    const struct vk__api_principal *p = who(api, req);
    if (!p)
        return;
    struct vk_err err;
    vk_err_clear(&err);
    int rc = 0;
    bool all = p->site_admin && vk_auth_scopes_cap(p->cred.scopes) == VK_ROLE_ADMIN;
    json_t *orgs = orgs_json(api, req, p, all, &err, &rc);
    if (rc < 0) {
        vk__api_reply_err(req, &err, rc);
        return;
    }
    vk_http_reply_json(req, 200, json_pack("{s:o}", "orgs", orgs));
}

/* PATCH /api/v1/orgs/{org} {"sso_only": bool}: an org admin makes SSO the only login of
 * the org's members (docs/security.md "SSO-only orgs"). */
static void h_org_patch(struct vk_http_req *req, void *ctx)
{
    struct vk_api *api = ctx;
    const struct vk__api_principal *p = who(api, req);
    if (!p)
        return;
    json_t *body = vk_http_json(req);
    static const char *const known[] = {"sso_only", NULL};
    if (!only(req, body, known))
        return;
    json_t *v = json_object_get(body, "sso_only");
    if (!json_is_boolean(v)) {
        bad(req, "%s", "'sso_only' must be true or false");
        return;
    }
    struct vk_err err;
    vk_err_clear(&err);
    struct vk_store_org o;
    int rc = vk_store_org_set_sso_only(api->opts.store, p->org_id, json_is_true(v), &err);
    if (rc == 0)
        rc = vk_store_org_get(api->opts.store, p->org_id, vk_http_pool(req), &o, &err);
    if (rc < 0) {
        store_fail(req, &err, rc);
        return;
    }
    vk_log_write(VK_LOG_INFO, "api", "org settings changed", "org", o.slug, "sso_only",
                 o.sso_only ? "true" : "false", "by", p->login, NULL);
    vk_http_reply_json(req, 200,
                       json_pack("{s:s, s:s, s:o, s:b}", "id", o.id, "slug", o.slug, "name",
                                 vk__api_str(o.display_name), "sso_only", o.sso_only));
}

/* ---------------------------------------------------------------- Teams */

/* Team `ref` (its name or id) of the principal's org into *out; 404 answered when none. */
static bool team_find(struct vk_api *api, struct vk_http_req *req, const char *org_id,
                      const char *ref, struct vk_store_team *out)
{
    struct vk_store_team *ts = NULL;
    size_t n = 0;
    struct vk_err err;
    vk_err_clear(&err);
    int rc = vk_store_team_list(api->opts.store, org_id, vk_http_pool(req), &ts, &n, &err);
    if (rc < 0) {
        vk__api_reply_err(req, &err, rc);
        return false;
    }
    for (size_t i = 0; i < n; i++)
        if (strcmp(ts[i].name, ref) == 0 || strcmp(ts[i].id, ref) == 0) {
            *out = ts[i];
            return true;
        }
    vk_http_reply_error(req, 404, "not_found", "team '%.64s' not found in this org", ref);
    return false;
}

static void h_team_create(struct vk_http_req *req, void *ctx)
{
    struct vk_api *api = ctx;
    const struct vk__api_principal *p = who(api, req);
    if (!p)
        return;
    json_t *body = vk_http_json(req);
    static const char *const known[] = {"name", "parent", NULL};
    const char *name = NULL, *parent = NULL;
    if (!only(req, body, known) || !req_str(req, body, "name", VK_STORE_MAX_LOGIN, &name) ||
        !opt_str(req, body, "parent", VK_UUID_LEN + VK_STORE_MAX_LOGIN, &parent))
        return;
    struct vk_store_team pt = {0};
    if (parent && *parent && !team_find(api, req, p->org_id, parent, &pt))
        return;
    char id[VK_UUID_LEN];
    struct vk_err err;
    vk_err_clear(&err);
    int rc = vk_store_team_create(api->opts.store, p->org_id, name, pt.id, id, &err);
    if (rc < 0) {
        store_fail(req, &err, rc);
        return;
    }
    vk_http_reply_json(req, 201, json_pack("{s:s, s:s}", "id", id, "name", name));
}

static void h_team_list(struct vk_http_req *req, void *ctx)
{
    struct vk_api *api = ctx;
    const struct vk__api_principal *p = who(api, req);
    if (!p)
        return;
    struct vk_store_team *ts = NULL;
    size_t n = 0;
    struct vk_err err;
    vk_err_clear(&err);
    int rc = vk_store_team_list(api->opts.store, p->org_id, vk_http_pool(req), &ts, &n, &err);
    if (rc < 0) {
        vk__api_reply_err(req, &err, rc);
        return;
    }
    json_t *a = json_array();
    int failed = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const char *parent = NULL;
        for (size_t j = 0; j < n && ts[i].parent_id[0]; j++)
            if (strcmp(ts[j].id, ts[i].parent_id) == 0)
                parent = ts[j].name;
        struct vk_store_user *ms = NULL;
        size_t nm = 0;
        rc = vk_store_team_members(api->opts.store, ts[i].id, vk_http_pool(req), &ms, &nm, &err);
        json_t *logins = json_array();
        for (size_t j = 0; j < nm; j++)
            failed |= json_array_append_new(logins, json_string(ms[j].login));
        failed |= json_array_append_new(
            a, json_pack("{s:s, s:s, s:o, s:o, s:o}", "id", ts[i].id, "name", ts[i].name, "parent",
                         vk__api_str(parent), "members", vk_http_json_checked(logins, failed),
                         "created_at", vk__api_time(ts[i].created_at)));
    }
    if (rc < 0) {
        json_decref(a);
        vk__api_reply_err(req, &err, rc);
        return;
    }
    vk_http_reply_json(req, 200, json_pack("{s:o}", "teams", vk_http_json_checked(a, failed)));
}

static void h_team_member(struct vk_http_req *req, void *ctx)
{
    struct vk_api *api = ctx;
    const struct vk__api_principal *p = who(api, req);
    if (!p)
        return;
    bool add = strcmp(vk_http_method(req), "PUT") == 0;
    const char *login = vk_http_param(req, "login");
    struct vk_store_team t;
    if (!team_find(api, req, p->org_id, vk_http_param(req, "team"), &t))
        return;
    struct vk_store_user u;
    struct vk_err err;
    vk_err_clear(&err);
    int rc = strlen(login) <= VK_STORE_MAX_LOGIN
                 ? vk_store_user_find(api->opts.store, login, vk_http_pool(req), &u, &err)
                 : vk_err_set(&err, VK_ENOTFOUND, "user not found");
    if (rc == VK_ENOTFOUND) {
        vk_http_reply_error(req, 404, "not_found", "user '%.64s' not found", login);
        return;
    }
    if (rc == 0)
        rc = add ? vk_store_team_add_member(api->opts.store, t.id, u.id, &err)
                 : vk_store_team_remove_member(api->opts.store, t.id, u.id, &err);
    if (rc == VK_ENOTFOUND) {
        vk_http_reply_error(req, 404, "not_found", "'%s' is not a member of team '%s'", u.login,
                            t.name);
        return;
    }
    if (rc < 0) {
        store_fail(req, &err, rc);
        return;
    }
    vk_log_write(VK_LOG_INFO, "api", add ? "team member added" : "team member removed", "team",
                 t.name, "login", u.login, "by", p->login, NULL);
    vk_http_reply_empty(req, 204);
}

/* ---------------------------------------------------------------- Grants */

static void h_grant_create(struct vk_http_req *req, void *ctx)
{
    struct vk_api *api = ctx;
    const struct vk__api_principal *p = who(api, req);
    if (!p)
        return;
    json_t *body = vk_http_json(req);
    static const char *const known[] = {"user", "team", "role", "repository", NULL};
    const char *login = NULL, *team = NULL, *role_name = NULL, *repo = NULL;
    if (!only(req, body, known) || !opt_str(req, body, "user", VK_STORE_MAX_LOGIN, &login) ||
        !opt_str(req, body, "team", VK_UUID_LEN + VK_STORE_MAX_LOGIN, &team) ||
        !req_str(req, body, "role", 16, &role_name) ||
        !opt_str(req, body, "repository", VK_UUID_LEN - 1, &repo))
        return;
    if (!login == !team) {
        bad(req, "%s", "a grant is to exactly one of 'user' (a login) and 'team' (a name)");
        return;
    }
    struct vk_store_grant g = {0};
    struct vk_err err;
    vk_err_clear(&err);
    if (vk_auth_role_parse(role_name, &g.role, &err) < 0 || g.role == VK_ROLE_NONE) {
        bad(req, "%s", err.msg[0] ? err.msg : "unknown role");
        return;
    }
    /* Never more than the caller has in this org (at most admin: site admin is no role). */
    if (g.role > p->role) {
        vk_http_reply_error(req, 403, "forbidden",
                            "cannot grant %s: this token acts as %s in this org",
                            vk_auth_role_name(g.role), vk_auth_role_name(p->role));
        return;
    }
    memcpy(g.org_id, p->org_id, VK_UUID_LEN);
    if (repo)
        snprintf(g.repository_id, sizeof(g.repository_id), "%s", repo);
    if (team) {
        struct vk_store_team t;
        if (!team_find(api, req, p->org_id, team, &t))
            return;
        memcpy(g.team_id, t.id, VK_UUID_LEN);
    } else {
        struct vk_store_user u;
        int rc = vk_store_user_find(api->opts.store, login, vk_http_pool(req), &u, &err);
        if (rc == VK_ENOTFOUND) {
            vk_http_reply_error(req, 404, "not_found", "user '%s' not found", login);
            return;
        }
        if (rc < 0) {
            vk__api_reply_err(req, &err, rc);
            return;
        }
        memcpy(g.user_id, u.id, VK_UUID_LEN);
    }
    int rc = vk_store_grant_create(api->opts.store, &g, &err);
    if (rc < 0) {
        store_fail(req, &err, rc);
        return;
    }
    vk_log_write(VK_LOG_INFO, "api", "grant created", "grant_id", g.id, "role",
                 vk_auth_role_name(g.role), "user", login, "team", team, "by", p->login, NULL);
    vk_http_reply_json(req, 201,
                       json_pack("{s:s, s:s}", "id", g.id, "role", vk_auth_role_name(g.role)));
}

static void h_grant_list(struct vk_http_req *req, void *ctx)
{
    struct vk_api *api = ctx;
    const struct vk__api_principal *p = who(api, req);
    if (!p)
        return;
    struct vk_pool *pool = vk_http_pool(req);
    struct vk_store_grant *gs = NULL;
    struct vk_store_team *ts = NULL;
    size_t n = 0, nt = 0;
    struct vk_err err;
    vk_err_clear(&err);
    int rc = vk_store_grant_list(api->opts.store, p->org_id, pool, &gs, &n, &err);
    if (rc == 0)
        rc = vk_store_team_list(api->opts.store, p->org_id, pool, &ts, &nt, &err);
    json_t *a = json_array();
    int failed = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        const char *login = NULL, *team = NULL;
        if (gs[i].user_id[0]) {
            struct vk_store_user u;
            rc = vk_store_user_get(api->opts.store, gs[i].user_id, pool, &u, &err);
            login = rc == 0 ? u.login : NULL;
        }
        for (size_t j = 0; j < nt && gs[i].team_id[0]; j++)
            if (strcmp(ts[j].id, gs[i].team_id) == 0)
                team = ts[j].name;
        failed |= json_array_append_new(
            a, json_pack("{s:s, s:o, s:o, s:s, s:o, s:o}", "id", gs[i].id, "user",
                         vk__api_str(login), "team", vk__api_str(team), "role",
                         vk_auth_role_name(gs[i].role), "repository",
                         vk__api_str(gs[i].repository_id[0] ? gs[i].repository_id : NULL),
                         "created_at", vk__api_time(gs[i].created_at)));
    }
    if (rc < 0) {
        json_decref(a);
        vk__api_reply_err(req, &err, rc);
        return;
    }
    vk_http_reply_json(req, 200, json_pack("{s:o}", "grants", vk_http_json_checked(a, failed)));
}

static void h_grant_delete(struct vk_http_req *req, void *ctx)
{
    struct vk_api *api = ctx;
    const struct vk__api_principal *p = who(api, req);
    if (!p)
        return;
    const char *id = vk_http_param(req, "id");
    struct vk_err err;
    vk_err_clear(&err);
    int rc = strlen(id) < VK_UUID_LEN ? vk_store_grant_delete(api->opts.store, p->org_id, id, &err)
                                      : vk_err_set(&err, VK_ENOTFOUND, "grant not found");
    if (rc < 0) {
        vk__api_reply_err(req, &err, rc);
        return;
    }
    vk_log_write(VK_LOG_INFO, "api", "grant deleted", "grant_id", id, "by", p->login, NULL);
    vk_http_reply_empty(req, 204);
}

/* ---------------------------------------------------------------- Registration tokens */

static bool group_ok(const char *g, size_t len)
{
    if (len == 0 || len > MAX_GROUP || strlen(g) != len)
        return false;
    for (size_t i = 0; i < len; i++) {
        char ch = g[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '-'))
            return false;
    }
    return true;
}

static void h_reg_create(struct vk_http_req *req, void *ctx)
{
    struct vk_api *api = ctx;
    const struct vk__api_principal *p = who(api, req);
    if (!p)
        return;
    json_t *body = vk_http_json(req);
    static const char *const known[] = {"groups", "expires_in_s", "uses", "name", NULL};
    const char *name = NULL;
    int64_t exp = 0;
    if (!only(req, body, known) || !opt_str(req, body, "name", MAX_NAME, &name) ||
        !expires(req, body, &exp))
        return;
    json_t *jg = json_object_get(body, "groups");
    char groups[VK_STORE_MAX_GROUPS * (MAX_GROUP + 1) + 1] = "";
    if (jg && !json_is_null(jg)) {
        if (!json_is_array(jg) || json_array_size(jg) > VK_STORE_MAX_GROUPS) {
            bad(req, "%s", "'groups' must be an array of at most 16 machine group names");
            return;
        }
        size_t i, off = 0;
        json_t *g;
        json_array_foreach(jg, i, g)
        {
            if (!json_is_string(g) || !group_ok(json_string_value(g), json_string_length(g))) {
                bad(req, "%s", "a machine group is 1 to 64 letters, digits and '.', '_', '-'");
                return;
            }
            off += (size_t)snprintf(groups + off, sizeof(groups) - off, "%s%s", i ? "," : "",
                                    json_string_value(g));
        }
    }
    json_t *ju = json_object_get(body, "uses");
    int64_t uses = -1;
    if (ju && !json_is_null(ju)) {
        if (!json_is_integer(ju) || json_integer_value(ju) < -1 || json_integer_value(ju) == 0 ||
            json_integer_value(ju) > 1000000) {
            bad(req, "%s", "'uses' must be from 1 to 1000000, or -1 for unlimited");
            return;
        }
        uses = (int64_t)json_integer_value(ju);
    }
    char token[VK_AUTH_TOKEN_MAX], id[VK_UUID_LEN];
    struct vk_err err;
    vk_err_clear(&err);
    int rc = vk_store_registration_issue(api->opts.store, p->org_id, groups, uses, exp, name, token,
                                         id, &err);
    if (rc < 0) {
        store_fail(req, &err, rc);
        return;
    }
    char fp[VK_AUTH_FP_MAX];
    fingerprint_of(token, VK_AUTH_REGISTRATION, fp);
    vk_log_write(VK_LOG_INFO, "api", "registration token created", "token", fp, "groups",
                 groups[0] ? groups : "*", "by", p->login, NULL);
    vk_http_reply_json(req, 201,
                       json_pack("{s:s, s:s, s:s}", "id", id, "token", token, "fingerprint", fp));
    vk_auth_wipe(token, sizeof(token));
}

static json_t *groups_json(const char *list)
{
    json_t *a = json_array();
    int failed = 0;
    for (const char *s = list; s && *s;) {
        const char *e = strchr(s, ',');
        size_t len = e ? (size_t)(e - s) : strlen(s);
        failed |= json_array_append_new(a, json_stringn(s, len));
        if (!e)
            break;
        s = e + 1;
    }
    return vk_http_json_checked(a, failed);
}

static void h_reg_list(struct vk_http_req *req, void *ctx)
{
    struct vk_api *api = ctx;
    const struct vk__api_principal *p = who(api, req);
    if (!p)
        return;
    struct vk_store_credential *cs = NULL;
    size_t n = 0;
    struct vk_err err;
    vk_err_clear(&err);
    int rc = vk_store_credential_list(api->opts.store, VK_AUTH_REGISTRATION, NULL, p->org_id,
                                      vk_http_pool(req), &cs, &n, &err);
    if (rc < 0) {
        vk__api_reply_err(req, &err, rc);
        return;
    }
    json_t *a = json_array();
    int failed = 0;
    for (size_t i = 0; i < n; i++)
        failed |= json_array_append_new(
            a, json_pack("{s:s, s:o, s:o, s:o, s:I, s:o, s:o, s:o, s:o}", "id", cs[i].id, "name",
                         vk__api_str(cs[i].name), "fingerprint", fp_json(&cs[i]), "groups",
                         groups_json(cs[i].groups), "uses_left", (json_int_t)cs[i].uses_left,
                         "created_at", vk__api_time(cs[i].created_at), "last_used_at",
                         vk__api_time(cs[i].last_used_at), "expires_at",
                         vk__api_time(cs[i].expires_at), "revoked_at",
                         vk__api_time(cs[i].revoked_at)));
    vk_http_reply_json(req, 200,
                       json_pack("{s:o}", "registration_tokens", vk_http_json_checked(a, failed)));
}

static void h_reg_delete(struct vk_http_req *req, void *ctx)
{
    struct vk_api *api = ctx;
    const struct vk__api_principal *p = who(api, req);
    if (!p)
        return;
    const char *id = vk_http_param(req, "id");
    struct vk_store_credential *cs = NULL;
    size_t n = 0;
    struct vk_err err;
    vk_err_clear(&err);
    /* Only a registration token of this org. */
    int rc = vk_store_credential_list(api->opts.store, VK_AUTH_REGISTRATION, NULL, p->org_id,
                                      vk_http_pool(req), &cs, &n, &err);
    bool found = false;
    for (size_t i = 0; rc == 0 && i < n && !found; i++)
        found = strcmp(cs[i].id, id) == 0;
    if (rc == 0 && !found)
        rc = vk_err_set(&err, VK_ENOTFOUND, "registration token not found");
    if (rc == 0)
        rc = vk_store_credential_revoke(api->opts.store, id, NULL, vk_time_now_ms(), &err);
    if (rc < 0) {
        vk__api_reply_err(req, &err, rc);
        return;
    }
    vk_log_write(VK_LOG_INFO, "api", "registration token revoked", "token_id", id, "by", p->login,
                 NULL);
    vk_http_reply_empty(req, 204);
}

/* ---------------------------------------------------------------- Routes */

int vk__api_identity_routes(struct vk_api *api, struct vk_err *err)
{
    const struct vk_http_route_opts json = {.max_body = 16 * 1024, .json = true};
    struct {
        const char *method, *pattern;
        vk_http_handler_fn fn;
        const struct vk_http_route_opts *opts;
    } routes[] = {
        {"GET", "/api/v1/user", h_user, NULL},
        {"POST", "/api/v1/tokens", h_token_create, &json},
        {"GET", "/api/v1/tokens", h_token_list, NULL},
        {"DELETE", "/api/v1/tokens/{id}", h_token_delete, NULL},
        {"POST", "/api/v1/users", h_user_create, &json},
        {"POST", "/api/v1/orgs", h_org_create, &json},
        {"GET", "/api/v1/orgs", h_org_list, NULL},
        {"PATCH", "/api/v1/orgs/{org}", h_org_patch, &json},
        {"POST", "/api/v1/orgs/{org}/teams", h_team_create, &json},
        {"GET", "/api/v1/orgs/{org}/teams", h_team_list, NULL},
        {"PUT", "/api/v1/orgs/{org}/teams/{team}/members/{login}", h_team_member, NULL},
        {"DELETE", "/api/v1/orgs/{org}/teams/{team}/members/{login}", h_team_member, NULL},
        {"POST", "/api/v1/orgs/{org}/grants", h_grant_create, &json},
        {"GET", "/api/v1/orgs/{org}/grants", h_grant_list, NULL},
        {"DELETE", "/api/v1/orgs/{org}/grants/{id}", h_grant_delete, NULL},
        {"POST", "/api/v1/orgs/{org}/registration-tokens", h_reg_create, &json},
        {"GET", "/api/v1/orgs/{org}/registration-tokens", h_reg_list, NULL},
        {"DELETE", "/api/v1/orgs/{org}/registration-tokens/{id}", h_reg_delete, NULL},
    };
    for (size_t i = 0; i < VK_ARRAY_LEN(routes); i++) {
        int rc = vk_http_route(api->http, routes[i].method, routes[i].pattern, routes[i].fn, api,
                               routes[i].opts, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}
