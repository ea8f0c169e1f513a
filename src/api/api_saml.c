/*
 * Single sign-on with SAML 2.0 (docs/security.md "Single sign-on (SAML 2.0)").
 *
 * SP-initiated Web Browser SSO. GET /api/v1/sso/saml/login sends the browser to the IdP's
 * SingleSignOnService with an AuthnRequest (HTTP-Redirect binding) whose random ID, the
 * random RelayState and the console page to return to are kept in this process's memory for
 * 10 minutes; the RelayState also goes to the browser in a cookie. The IdP posts the
 * Response to POST /api/v1/sso/saml/acs (HTTP-POST binding: a cross-site form, so this route
 * alone is exempt from the Origin check; it is not a JSON route). The ACS takes the pending
 * request of the RelayState (one use), verifies the Response (vk_auth_saml_verify: the IdP
 * certificate, InResponseTo, Audience, Recipient/Destination, time limits, wrapping),
 * refuses an assertion ID seen before, and keeps the verified claims for GET
 * /api/v1/sso/saml/finish, where the browser is sent next: a top-level GET carries the
 * SameSite=Lax cookie that the IdP's cross-site POST may not, and the login is finished only
 * when cookie and RelayState agree (so a Response posted by someone else's page, login CSRF,
 * logs nobody in). There the user is found by (source "saml:<IdP entity id>", NameID) or
 * created, its teams set to the groups attribute (shared with OIDC), and a session opened.
 */
#include "api_int.h"
#include "vulcan/auth_saml.h"

#include <openssl/sha.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PENDING_MAX 256
#define PENDING_PER_ADDR 16
#define PENDING_LIFE_MS (10LL * 60 * 1000)
#define STATE_LEN 43
#define NEXT_MAX 256
#define URL_MAX 1024
#define USED_MAX 4096
#define FORM_MAX (512 * 1024)
#define STATE_COOKIE "vulcan_saml_state"
#define ACS_PATH "/api/v1/sso/saml/acs"

struct pending {
    char id[STATE_LEN + 2]; /* the AuthnRequest's ID: "_" and 43 random characters */
    char relay[STATE_LEN + 1];
    char next[NEXT_MAX];
    char addr[64];      /* the client address that started it */
    int64_t created_ms; /* 0: a free slot */
    json_t *claims;     /* verified by the ACS, waiting for /finish; NULL before */
};

struct used {
    unsigned char h[SHA256_DIGEST_LENGTH]; /* SHA-256 of the assertion ID */
    int64_t until_s;                       /* 0: free */
};

struct vk__api_saml {
    struct vk_auth_saml_idp *idp;
    char source[URL_MAX + 8]; /* "saml:<entity id>" */
    pthread_mutex_t lock;     /* guards everything below */
    struct pending pending[PENDING_MAX];
    struct used used[USED_MAX];
};

int vk__api_saml_init(struct vk_api *api, struct vk_err *err)
{
    const struct vk_api_opts *o = &api->opts;
    if (!o->saml_idp_metadata)
        return 0;
    if (!o->require_auth)
        return vk_err_set(err, VK_EINVAL,
                          "--saml-idp-metadata needs authentication (not --no-auth)");
    struct vk_auth_saml_idp *idp = NULL;
    int rc = vk_auth_saml_idp_load(o->saml_idp_metadata, o->saml_idp_metadata_len, &idp, err);
    if (rc < 0) {
        char why[sizeof(err->msg)];
        snprintf(why, sizeof(why), "%s", err->msg);
        return vk_err_set(err, rc, "--saml-idp-metadata: %s", why);
    }
    api->saml = vk_mem_xalloc(sizeof(*api->saml));
    memset(api->saml, 0, sizeof(*api->saml));
    api->saml->idp = idp;
    pthread_mutex_init(&api->saml->lock, NULL);
    snprintf(api->saml->source, sizeof(api->saml->source), "saml:%s",
             vk_auth_saml_idp_entity_id(idp));
    return 0;
}

void vk__api_saml_release(struct vk_api *api)
{
    struct vk__api_saml *s = api->saml;
    if (!s)
        return;
    for (size_t i = 0; i < PENDING_MAX; i++)
        json_decref(s->pending[i].claims);
    vk_auth_saml_idp_free(s->idp);
    pthread_mutex_destroy(&s->lock);
    vk_auth_wipe(s, sizeof(*s));
    vk_mem_free(s);
    api->saml = NULL;
}

static void acs_url(const struct vk_api *api, char out[URL_MAX])
{
    snprintf(out, URL_MAX, "%s" ACS_PATH, api->issuer);
}

static void sp_entity_id(const struct vk_api *api, char out[URL_MAX])
{
    if (api->opts.saml_sp_entity_id && *api->opts.saml_sp_entity_id)
        snprintf(out, URL_MAX, "%s", api->opts.saml_sp_entity_id);
    else
        snprintf(out, URL_MAX, "%s/api/v1/sso/saml/metadata", api->issuer);
}

static void state_cookie(const struct vk_api *api, struct vk_http_req *req, const char *state,
                         int max_age_s)
{
    bool secure = api->opts.tls ||
                  (api->opts.public_url && strncmp(api->opts.public_url, "https://", 8) == 0);
    char c[160];
    snprintf(c, sizeof(c), "%s=%s; Path=/api/v1/sso/saml/; HttpOnly; SameSite=Lax; Max-Age=%d%s",
             STATE_COOKIE, state, max_age_s, secure ? "; Secure" : "");
    if (vk_http_set_header(req, "Set-Cookie", c) != 0)
        vk_log_write(VK_LOG_WARN, "api", "cannot set the SAML state cookie", NULL);
}

static void no_saml(struct vk_http_req *req)
{
    vk_http_reply_error(req, 404, "not_found",
                        "this server has no SAML single sign-on (start it with "
                        "--saml-idp-metadata)");
}

static void free_slot(struct pending *p)
{
    json_decref(p->claims);
    vk_auth_wipe(p, sizeof(*p));
}

static void h_metadata(struct vk_http_req *req, void *ctx)
{
    struct vk_api *api = ctx;
    if (!api->saml) {
        no_saml(req);
        return;
    }
    char eid[URL_MAX], acs[URL_MAX];
    sp_entity_id(api, eid);
    acs_url(api, acs);
    for (const char *p = eid; *p; p++)
        if (*p == '"' || *p == '<' || *p == '>' || *p == '&') {
            vk_http_reply_error(req, 500, "internal", "the SP entity id holds XML characters");
            return;
        }
    char *xml = vk_pool_alloc(vk_http_pool(req), 4 * URL_MAX);
    int n = xml ? snprintf(xml, 4 * URL_MAX,
                           "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                           "<md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" "
                           "entityID=\"%s\">\n"
                           "  <md:SPSSODescriptor AuthnRequestsSigned=\"false\" "
                           "WantAssertionsSigned=\"true\" protocolSupportEnumeration=\""
                           "urn:oasis:names:tc:SAML:2.0:protocol\">\n"
                           "    <md:NameIDFormat>urn:oasis:names:tc:SAML:2.0:nameid-format:"
                           "persistent</md:NameIDFormat>\n"
                           "    <md:NameIDFormat>urn:oasis:names:tc:SAML:1.1:nameid-format:"
                           "emailAddress</md:NameIDFormat>\n"
                           "    <md:AssertionConsumerService Binding=\"urn:oasis:names:tc:"
                           "SAML:2.0:bindings:HTTP-POST\" Location=\"%s\" index=\"0\" "
                           "isDefault=\"true\"/>\n"
                           "  </md:SPSSODescriptor>\n"
                           "</md:EntityDescriptor>\n",
                           eid, acs)
                : -1;
    if (n < 0 || n >= 4 * URL_MAX) {
        vk_http_reply_error(req, 500, "internal", "the metadata is too long");
        return;
    }
    vk_http_reply(req, 200, "application/samlmetadata+xml", xml, (size_t)n);
}

static void h_login(struct vk_http_req *req, void *ctx)
{
    struct vk_api *api = ctx;
    struct vk__api_saml *s = api->saml;
    if (!s) {
        no_saml(req);
        return;
    }
    const char *next = vk_http_query(req, "next");
    if (next && *next && !vk__api_sso_next_ok(next)) {
        vk_http_reply_error(req, 400, "bad_request",
                            "'next' must be a console location starting with '#/' (at most %d "
                            "printable characters)",
                            NEXT_MAX - 1);
        return;
    }
    struct pending p = {.created_ms = vk_time_now_ms()};
    snprintf(p.next, sizeof(p.next), "%s", next && *next ? next : "#/");
    const char *ra = vk_http_remote_addr(req);
    snprintf(p.addr, sizeof(p.addr), "%s", ra ? ra : "?");
    p.id[0] = '_'; /* an xs:ID starts with a letter or '_' */
    if (vk_auth_random_text(p.id + 1, STATE_LEN) < 0 ||
        vk_auth_random_text(p.relay, STATE_LEN) < 0) {
        vk_http_reply_error(req, 503, "unavailable", "the random generator failed");
        return;
    }
    char eid[URL_MAX], acs[URL_MAX];
    sp_entity_id(api, eid);
    acs_url(api, acs);
    const char *sso = vk_auth_saml_idp_sso_url(s->idp);
    char *areq = NULL;
    struct vk_err err;
    vk_err_clear(&err);
    if (vk_auth_saml_authn_request(p.id, eid, acs, sso, vk_time_now_ms() / 1000, &areq, &err) < 0) {
        vk_http_reply_error(req, 500, "internal", "%s", err.msg);
        return;
    }
    size_t cap = strlen(sso) + strlen(areq) + 128;
    char *loc = vk_pool_alloc(vk_http_pool(req), cap);
    int n = loc ? snprintf(loc, cap, "%s%cSAMLRequest=%s&RelayState=%s", sso,
                           strchr(sso, '?') ? '&' : '?', areq, p.relay)
                : -1;
    free(areq);
    if (n < 0 || (size_t)n >= cap) {
        vk_http_reply_error(req, 500, "internal", "out of memory");
        return;
    }
    pthread_mutex_lock(&s->lock);
    size_t slot = vk__api_pending_slot(
        s->pending, PENDING_MAX, sizeof(s->pending[0]), offsetof(struct pending, created_ms),
        offsetof(struct pending, addr), p.addr, p.created_ms, PENDING_LIFE_MS, PENDING_PER_ADDR);
    free_slot(&s->pending[slot]);
    s->pending[slot] = p;
    pthread_mutex_unlock(&s->lock);
    if (vk_http_set_header(req, "Location", loc) != 0 ||
        vk_http_set_header(req, "Cache-Control", "no-store") != 0) {
        vk_http_reply_error(req, 500, "internal", "cannot set the redirect");
        return;
    }
    state_cookie(api, req, p.relay, (int)(PENDING_LIFE_MS / 1000));
    vk_auth_wipe(&p, sizeof(p));
    vk_http_reply_empty(req, 302);
}

/* Take the pending login of RelayState `relay` (one use): `verified` picks the ones the
 * ACS has verified (for /finish) or not (for the ACS). False when unknown or expired. */
static bool take(struct vk__api_saml *s, const char *relay, bool verified, struct pending *out)
{
    if (!relay || strlen(relay) != STATE_LEN)
        return false;
    int64_t now = vk_time_now_ms();
    bool found = false;
    pthread_mutex_lock(&s->lock);
    for (size_t i = 0; i < PENDING_MAX; i++) {
        struct pending *p = &s->pending[i];
        if (p->created_ms && vk_auth_equal(p->relay, relay, STATE_LEN)) {
            found = p->created_ms + PENDING_LIFE_MS >= now && (p->claims != NULL) == verified;
            *out = *p;
            if (!found)
                json_decref(p->claims);
            out->claims = found ? p->claims : NULL;
            vk_auth_wipe(p, sizeof(*p));
            break;
        }
    }
    pthread_mutex_unlock(&s->lock);
    return found;
}

/* Put verified `p` back for /finish. */
static void keep(struct vk__api_saml *s, const struct pending *p)
{
    pthread_mutex_lock(&s->lock);
    size_t slot = 0;
    for (size_t i = 0; i < PENDING_MAX; i++) {
        if (!s->pending[i].created_ms) {
            slot = i;
            break;
        }
        if (s->pending[i].created_ms < s->pending[slot].created_ms)
            slot = i;
    }
    free_slot(&s->pending[slot]);
    s->pending[slot] = *p;
    pthread_mutex_unlock(&s->lock);
}

/* Record assertion `id` as used until `until_s`; false when it was used before. */
static bool first_use(struct vk__api_saml *s, const char *id, int64_t until_s, int64_t now_s)
{
    unsigned char h[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)id, strlen(id), h);
    bool fresh = true;
    pthread_mutex_lock(&s->lock);
    size_t slot = 0;
    for (size_t i = 0; i < USED_MAX; i++) {
        struct used *u = &s->used[i];
        if (u->until_s > now_s && memcmp(u->h, h, sizeof(h)) == 0) {
            fresh = false;
            break;
        }
        if (u->until_s < s->used[slot].until_s)
            slot = i; /* a free or expired one, else the one that expires first */
    }
    if (fresh) {
        memcpy(s->used[slot].h, h, sizeof(h));
        s->used[slot].until_s = until_s > now_s ? until_s : now_s + 1;
    }
    pthread_mutex_unlock(&s->lock);
    return fresh;
}

/* The percent-decoded value of field `name` of form `body` (from the pool), or NULL. */
static char *form_value(struct vk_pool *pool, const char *body, size_t len, const char *name)
{
    size_t nl = strlen(name);
    const char *p = body, *end = body + len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *fe = amp ? amp : end;
        if ((size_t)(fe - p) > nl && memcmp(p, name, nl) == 0 && p[nl] == '=') {
            const char *v = p + nl + 1;
            char *out = vk_pool_alloc(pool, (size_t)(fe - v) + 1);
            if (!out)
                return NULL;
            size_t o = 0;
            for (const char *q = v; q < fe; q++) {
                if (*q == '+') {
                    out[o++] = ' ';
                } else if (*q == '%' && fe - q >= 3) {
                    char hx[3] = {q[1], q[2], 0};
                    char *e = NULL;
                    long c = strtol(hx, &e, 16);
                    if (e != hx + 2 || c == 0)
                        return NULL;
                    out[o++] = (char)c;
                    q += 2;
                } else if (*q == '%') {
                    return NULL;
                } else {
                    out[o++] = *q;
                }
            }
            out[o] = '\0';
            return out;
        }
        p = fe + 1;
    }
    return NULL;
}

static void h_acs(struct vk_http_req *req, void *ctx)
{
    struct vk_api *api = ctx;
    struct vk__api_saml *s = api->saml;
    if (!s) {
        no_saml(req);
        return;
    }
    const char *addr = vk_http_remote_addr(req);
    struct vk_err err;
    vk_err_clear(&err);
    size_t blen = 0;
    const char *body = vk_http_body(req, &blen);
    struct vk_pool *pool = vk_http_pool(req);
    const char *resp = form_value(pool, body, blen, "SAMLResponse");
    const char *relay = form_value(pool, body, blen, "RelayState");
    struct pending p;
    if (!resp || !*resp) {
        vk_err_set(&err, VK_EAUTH, "no SAMLResponse in the form");
        vk__api_sso_refuse(req, addr, &err, VK_EAUTH);
        return;
    }
    if (!take(s, relay, false, &p)) {
        vk_err_set(&err, VK_EAUTH,
                   "unknown, used or expired RelayState (IdP-initiated logins are not "
                   "accepted; start the login again)");
        vk__api_sso_refuse(req, addr, &err, VK_EAUTH);
        return;
    }
    char eid[URL_MAX], acs[URL_MAX];
    sp_entity_id(api, eid);
    acs_url(api, acs);
    int64_t now_s = vk_time_now_ms() / 1000;
    struct vk_auth_saml_check chk = {
        .sp_entity_id = eid, .acs_url = acs, .request_id = p.id, .now_s = now_s};
    json_t *claims = NULL;
    int rc = vk_auth_saml_verify(s->idp, resp, strlen(resp), &chk, &claims, &err);
    if (rc == 0 &&
        !first_use(s, vk__api_get_str(claims, "assertion_id"),
                   (int64_t)json_integer_value(json_object_get(claims, "expires_s")), now_s))
        rc = vk_err_set(&err, VK_EAUTH, "the assertion was used before (replay)");
    const char *fmt = vk__api_get_str(claims, "name_id_format");
    if (rc == 0 && fmt && strcmp(fmt, "urn:oasis:names:tc:SAML:2.0:nameid-format:transient") == 0)
        rc = vk_err_set(&err, VK_EAUTH,
                        "the IdP sent a transient NameID: configure a persistent or "
                        "emailAddress NameID for this service provider");
    if (rc < 0) {
        json_decref(claims);
        vk_auth_wipe(&p, sizeof(p));
        vk__api_sso_refuse(req, addr, &err, rc);
        return;
    }
    p.claims = claims;
    char loc[URL_MAX];
    snprintf(loc, sizeof(loc), "/api/v1/sso/saml/finish?state=%s", p.relay);
    keep(s, &p);
    vk_auth_wipe(&p, sizeof(p));
    if (vk_http_set_header(req, "Location", loc) != 0 ||
        vk_http_set_header(req, "Cache-Control", "no-store") != 0) {
        vk_http_reply_error(req, 500, "internal", "cannot set the redirect");
        return;
    }
    vk_http_reply_empty(req, 303);
}

/* The first value of the first of `names` among the attributes, or NULL. */
static const char *first_attr(json_t *attrs, const char *const *names)
{
    for (; *names; names++) {
        const char *v = json_string_value(json_array_get(json_object_get(attrs, *names), 0));
        if (v && *v)
            return v;
    }
    return NULL;
}

static int set_str(json_t *o, const char *key, const char *v)
{
    return v ? json_object_set_new(o, key, json_string(v)) : 0;
}

static void h_finish(struct vk_http_req *req, void *ctx)
{
    struct vk_api *api = ctx;
    struct vk__api_saml *s = api->saml;
    if (!s) {
        no_saml(req);
        return;
    }
    const char *addr = vk_http_remote_addr(req);
    struct vk_err err;
    vk_err_clear(&err);
    const char *state = vk_http_query(req, "state");
    const char *mine = vk__api_cookie(req, STATE_COOKIE);
    if (!state || !mine || strlen(mine) != strlen(state) ||
        !vk_auth_equal(mine, state, strlen(state))) {
        vk_err_set(&err, VK_EAUTH,
                   "this browser did not start the login of this RelayState (no matching "
                   "SAML state cookie); start the login again");
        vk__api_sso_refuse(req, addr, &err, VK_EAUTH);
        return;
    }
    state_cookie(api, req, "", 0);
    struct pending p;
    if (!take(s, state, true, &p)) {
        vk_err_set(&err, VK_EAUTH, "unknown, used or expired login (start the login again)");
        vk__api_sso_refuse(req, addr, &err, VK_EAUTH);
        return;
    }
    static const char *const logins[] = {"uid", "username", "preferred_username",
                                         "urn:oid:0.9.2342.19200300.100.1.1", NULL};
    static const char *const emails[] = {"email", "mail", "urn:oid:0.9.2342.19200300.100.1.3",
                                         NULL};
    static const char *const names[] = {"displayName", "name", "cn",
                                        "urn:oid:2.16.840.1.113730.3.1.241", NULL};
    json_t *attrs = json_object_get(p.claims, "attributes");
    json_t *c = json_object();
    int rc = c && set_str(c, "sub", vk__api_get_str(p.claims, "sub")) == 0 &&
                     set_str(c, "preferred_username", first_attr(attrs, logins)) == 0 &&
                     set_str(c, "email", first_attr(attrs, emails)) == 0 &&
                     set_str(c, "name", first_attr(attrs, names)) == 0
                 ? 0
                 : vk_err_set(&err, VK_ENOMEM, "out of memory");
    char next[NEXT_MAX];
    snprintf(next, sizeof(next), "%s", p.next);
    struct vk_pool *pool = vk_http_pool(req);
    struct vk_store_user u;
    if (rc == 0)
        rc = vk__api_sso_user(api, s->source, c, pool, &u, &err);
    if (rc == 0 && u.disabled)
        rc = vk_err_set(&err, VK_EAUTH, "the user is disabled");
    const char *ga = api->opts.saml_groups_attribute && *api->opts.saml_groups_attribute
                         ? api->opts.saml_groups_attribute
                         : "groups";
    if (rc == 0)
        rc = vk__api_sso_teams(api, json_object_get(attrs, ga), api->opts.saml_org, "saml-org", &u,
                               pool, &err);
    json_decref(c);
    json_decref(p.claims);
    vk_auth_wipe(&p, sizeof(p));
    char csrf[VK__API_CSRF_MAX];
    int64_t expires = 0;
    if (rc == 0)
        rc = vk__api_session_open(api, req, &u, "saml", csrf, &expires, &err);
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

int vk__api_saml_routes(struct vk_api *api, struct vk_err *err)
{
    struct vk_http_route_opts form = {.max_body = FORM_MAX};
    int rc =
        vk_http_route(api->http, "GET", "/api/v1/sso/saml/metadata", h_metadata, api, NULL, err);
    if (rc == 0)
        rc = vk_http_route(api->http, "GET", "/api/v1/sso/saml/login", h_login, api, NULL, err);
    if (rc == 0)
        rc = vk_http_route(api->http, "POST", ACS_PATH, h_acs, api, &form, err);
    if (rc == 0)
        rc = vk_http_route(api->http, "GET", "/api/v1/sso/saml/finish", h_finish, api, NULL, err);
    return rc;
}
