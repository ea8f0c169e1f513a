/*
 * Console sessions (docs/security.md "Browsers"): a local user logs in with a password and
 * gets the `vulcan_session` cookie (HttpOnly, SameSite=Lax, Secure under TLS) holding a
 * vk_ses_ token, whose hash and CSRF token are stored as a credential with an idle and an
 * absolute expiry; GET /api/v1/session tells the console who it is and the CSRF token it
 * must send with every state-changing request; logout revokes the session.
 *
 * Failed logins are counted per login and per client address in a window; past the limit
 * every attempt (right or wrong) is answered 429 until the window ends, so a password
 * cannot be guessed faster than the limit. A login that does not exist costs the same
 * Argon2id work as one that does.
 */
#include "api_int.h"

#include <stdio.h>
#include <string.h>

#define SESSION_IDLE_MS (8LL * 3600 * 1000)      /* unused this long: log in again */
#define SESSION_LIFE_MS (7LL * 24 * 3600 * 1000) /* at most this long in all */
#define FAIL_WINDOW_MS (15LL * 60 * 1000)
#define FAIL_PER_LOGIN 10
#define FAIL_PER_ADDR 50
#define CSRF_LEN (VK__API_CSRF_MAX - 1)

static void set_cookie(struct vk_api *api, struct vk_http_req *req, const char *value,
                       int64_t max_age_s)
{
    bool secure = api->opts.tls ||
                  (api->opts.public_url && strncmp(api->opts.public_url, "https://", 8) == 0);
    char c[256];
    snprintf(c, sizeof(c), "%s=%s; Path=/; HttpOnly; SameSite=Lax; Max-Age=%lld%s",
             VK__API_SESSION_COOKIE, value, (long long)max_age_s, secure ? "; Secure" : "");
    if (vk_http_set_header(req, "Set-Cookie", c) != 0)
        vk_log_write(VK_LOG_WARN, "api", "cannot set the session cookie", NULL);
    vk_auth_wipe(c, sizeof(c));
    if (vk_http_set_header(req, "Cache-Control", "no-store") != 0)
        vk_log_write(VK_LOG_WARN, "api", "cannot set Cache-Control", NULL);
}

/* The failure counters of a login attempt: "login:NAME" and "addr:IP". */
static void fail_keys(struct vk_http_req *req, const char *login, char lk[96], char ak[80])
{
    snprintf(lk, 96, "login:%.80s", login);
    const char *addr = vk_http_remote_addr(req);
    snprintf(ak, 80, "addr:%.64s", addr ? addr : "?");
}

int vk__api_session_open(struct vk_api *api, struct vk_http_req *req, const struct vk_store_user *u,
                         const char *how, char csrf[VK__API_CSRF_MAX], int64_t *expires_at,
                         struct vk_err *err)
{
    int64_t now = vk_time_now_ms();
    char token[VK_AUTH_TOKEN_MAX];
    struct vk_store_credential c = {.kind = VK_AUTH_SESSION,
                                    .name = "console session",
                                    .scopes = VK_SCOPE_ALL,
                                    .csrf = csrf,
                                    .idle_ms = SESSION_IDLE_MS,
                                    .expires_at = now + SESSION_LIFE_MS};
    memcpy(c.user_id, u->id, VK_UUID_LEN);
    int rc = vk_auth_token_new(VK_AUTH_SESSION, token, c.hash) < 0 ||
                     vk_auth_random_text(csrf, CSRF_LEN) < 0
                 ? vk_err_set(err, VK_EIO, "the random generator failed")
                 : vk_store_credential_create(api->opts.store, &c, err);
    if (rc < 0) {
        vk_auth_wipe(token, sizeof(token));
        return rc;
    }
    set_cookie(api, req, token, SESSION_LIFE_MS / 1000);
    vk_auth_wipe(token, sizeof(token));
    char fp[VK_AUTH_FP_MAX];
    vk_auth_fingerprint(VK_AUTH_SESSION, c.hash, fp);
    vk_log_write(VK_LOG_INFO, "api", "logged in", "login", u->login, "with", how, "address",
                 vk_http_remote_addr(req), "session", fp, NULL);
    *expires_at = c.expires_at;
    return 0;
}

/* A password login in the audit log: auth.login, or auth.login_failed and why. The login
 * name is the one given (a failed one may not exist); never the password. */
static void login_audit(struct vk_api *api, struct vk_http_req *req, const char *login,
                        const char *outcome, const char *why)
{
    char actor[VK_STORE_MAX_LOGIN + 8];
    snprintf(actor, sizeof(actor), "user:%s", login);
    json_t *d = why ? json_pack("{s:s}", "reason", why) : NULL;
    vk__api_audit(api, req, why ? "auth.login_failed" : "auth.login", actor, outcome, d);
    json_decref(d);
}

static void h_login(struct vk_http_req *req, void *ctx)
{
    struct vk_api *api = ctx;
    if (!api->opts.require_auth) {
        vk_http_reply_error(req, 404, "not_found",
                            "this server runs without --require-auth: there is nothing to log "
                            "in to");
        return;
    }
    json_t *body = vk_http_json(req);
    const char *login = vk__api_get_str(body, "login");
    json_t *pw = json_object_get(body, "password");
    if (!login || !*login || strlen(login) > VK_STORE_MAX_LOGIN || !json_is_string(pw) ||
        json_string_length(pw) > VK_AUTH_PASSWORD_MAX) {
        vk_http_reply_error(req, 400, "bad_request",
                            "'login' (1-64 bytes) and 'password' (at most %d bytes) are required",
                            VK_AUTH_PASSWORD_MAX);
        return;
    }
    struct vk_err err;
    vk_err_clear(&err);
    int64_t now = vk_time_now_ms();
    char lk[96], ak[80];
    fail_keys(req, login, lk, ak);
    int64_t nl = 0, na = 0;
    int rc = vk_store_login_failure_count(api->opts.store, lk, now, FAIL_WINDOW_MS, &nl, &err);
    if (rc == 0)
        rc = vk_store_login_failure_count(api->opts.store, ak, now, FAIL_WINDOW_MS, &na, &err);
    if (rc < 0) {
        vk__api_reply_err(req, &err, rc);
        return;
    }
    if (nl >= FAIL_PER_LOGIN || na >= FAIL_PER_ADDR) {
        char ra[16];
        snprintf(ra, sizeof(ra), "%lld", (long long)(FAIL_WINDOW_MS / 1000));
        if (vk_http_set_header(req, "Retry-After", ra) != 0)
            vk_log_write(VK_LOG_WARN, "api", "cannot set Retry-After", NULL);
        vk_log_write(VK_LOG_WARN, "api", "login refused: too many failures", "login", login,
                     "address", vk_http_remote_addr(req), NULL);
        login_audit(api, req, login, "denied", "too many failed logins");
        vk_http_reply_error(req, 429, "too_many_requests",
                            "too many failed logins; try again in %lld minutes",
                            (long long)(FAIL_WINDOW_MS / 60000));
        return;
    }
    struct vk_store_user u;
    rc = vk_store_user_find(api->opts.store, login, vk_http_pool(req), &u, &err);
    if (rc < 0 && rc != VK_ENOTFOUND) {
        vk__api_reply_err(req, &err, rc);
        return;
    }
    bool found = rc == 0;
    /* The same Argon2id work whether the login exists or not (vk_auth_password_verify). */
    bool ok = vk_auth_password_verify(found ? u.password_hash : NULL, json_string_value(pw),
                                      json_string_length(pw)) == 0 &&
              found && !u.disabled;
    if (!ok) {
        int64_t c1 = 0, c2 = 0;
        if (vk_store_login_failure_add(api->opts.store, lk, now, FAIL_WINDOW_MS, &c1, &err) < 0 ||
            vk_store_login_failure_add(api->opts.store, ak, now, FAIL_WINDOW_MS, &c2, &err) < 0)
            vk_log_write(VK_LOG_WARN, "api", "cannot count a failed login", "error", err.msg, NULL);
        vk_log_write(VK_LOG_WARN, "api", "login failed", "login", login, "address",
                     vk_http_remote_addr(req), NULL);
        login_audit(api, req, login, "unauthenticated", "wrong login or password");
        vk_http_reply_error(req, 401, "unauthenticated", "wrong login or password");
        return;
    }
    if (vk_store_login_failure_clear(api->opts.store, lk, &err) < 0)
        vk_log_write(VK_LOG_WARN, "api", "cannot reset the failed logins", "error", err.msg, NULL);
    /* A member of an sso_only org logs in through its SSO only; site admins are the
     * break-glass path (docs/security.md "SSO-only orgs"). Asked only once the password
     * is right, so a guesser learns nothing about memberships. */
    const char *sso_org = NULL;
    if (!u.site_admin) {
        struct vk_store_org *orgs = NULL;
        size_t norgs = 0;
        rc = vk_store_org_list(api->opts.store, u.id, vk_http_pool(req), &orgs, &norgs, &err);
        if (rc < 0) {
            vk__api_reply_err(req, &err, rc);
            return;
        }
        for (size_t i = 0; i < norgs && !sso_org; i++)
            if (orgs[i].sso_only)
                sso_org = orgs[i].slug;
    }
    if (sso_org) {
        vk_log_write(VK_LOG_WARN, "api", "password login refused: the org is SSO-only", "login",
                     login, "org", sso_org, "address", vk_http_remote_addr(req), NULL);
        login_audit(api, req, login, "denied", "the org allows single sign-on only");
        vk_http_reply_error(req, 403, "sso_required",
                            "org '%s' allows single sign-on only: log in with SSO", sso_org);
        return;
    }
    char csrf[VK__API_CSRF_MAX];
    int64_t expires_at = 0;
    rc = vk__api_session_open(api, req, &u, "password", csrf, &expires_at, &err);
    if (rc < 0) {
        vk__api_reply_err(req, &err, rc);
        return;
    }
    login_audit(api, req, u.login, "success", NULL);
    vk_http_reply_json(req, 200,
                       json_pack("{s:s, s:b, s:s, s:o}", "login", u.login, "site_admin",
                                 u.site_admin, "csrf_token", csrf, "expires_at",
                                 vk__api_time(expires_at)));
}

static void h_logout(struct vk_http_req *req, void *ctx)
{
    struct vk_api *api = ctx;
    struct vk_store_credential c;
    struct vk_err err;
    vk_err_clear(&err);
    int rc = vk__api_session_of(api, req, &c, &err);
    if (rc == 0) {
        /* Only the console's own page may end its session (the same rule as any other
         * state-changing call with the cookie). */
        if (!vk__api_csrf_ok(req, &c)) {
            vk_http_reply_error(req, 403, "csrf", "logging out needs the session's X-CSRF-Token");
            return;
        }
        rc = vk_store_credential_revoke(api->opts.store, c.id, NULL, vk_time_now_ms(), &err);
        if (rc < 0) {
            vk__api_reply_err(req, &err, rc);
            return;
        }
    }
    set_cookie(api, req, "", 0);
    vk_http_reply_empty(req, 204);
}

static void h_session(struct vk_http_req *req, void *ctx)
{
    struct vk_api *api = ctx;
    struct vk_store_credential c;
    struct vk_err err;
    vk_err_clear(&err);
    int rc = api->opts.require_auth ? vk__api_session_of(api, req, &c, &err) : VK_EAUTH;
    struct vk_store_user u;
    if (rc == 0)
        rc = vk_store_user_get(api->opts.store, c.user_id, vk_http_pool(req), &u, &err);
    if (rc < 0 && rc != VK_EAUTH && rc != VK_ENOTFOUND) {
        vk__api_reply_err(req, &err, rc);
        return;
    }
    if (vk_http_set_header(req, "Cache-Control", "no-store") != 0)
        vk_log_write(VK_LOG_WARN, "api", "cannot set Cache-Control", NULL);
    if (rc < 0) {
        vk_http_reply_json(req, 200,
                           json_pack("{s:b, s:b, s:o}", "authenticated", false, "require_auth",
                                     api->opts.require_auth, "sso", vk__api_sso_methods(api)));
        return;
    }
    vk_http_reply_json(req, 200,
                       json_pack("{s:b, s:b, s:s, s:b, s:s?, s:o, s:o}", "authenticated", true,
                                 "require_auth", true, "login", u.login, "site_admin", u.site_admin,
                                 "csrf_token", c.csrf, "expires_at", vk__api_time(c.expires_at),
                                 "sso", vk__api_sso_methods(api)));
}

int vk__api_session_routes(struct vk_api *api, struct vk_err *err)
{
    const struct vk_http_route_opts json = {.max_body = 8 * 1024, .json = true};
    const struct vk_http_route_opts small = {.max_body = 1024};
    int rc = vk_http_route(api->http, "POST", "/api/v1/login", h_login, api, &json, err);
    if (rc == 0)
        rc = vk_http_route(api->http, "POST", "/api/v1/logout", h_logout, api, &small, err);
    if (rc == 0)
        rc = vk_http_route(api->http, "GET", "/api/v1/session", h_session, api, NULL, err);
    return rc;
}
