/*
 * Job identity (DESIGN §7, docs/security.md "Job identity"): with --require-auth the server
 * is an OpenID Connect issuer for its jobs. A running fragment finds in its environment
 * VULCAN_ID_TOKEN_REQUEST_URL and VULCAN_ID_TOKEN_REQUEST_TOKEN (its attempt's job token);
 * `GET $URL?audience=AUD` with the token as Bearer answers {"value": JWT}, an ES256 token
 * of at most 5 minutes naming the org, repository, ref, commit, workflow, chain, fragment,
 * attempt, trigger, machine group and worker. A cloud or Vault trusts it through
 * /.well-known/openid-configuration and /.well-known/jwks.json, with no stored secret.
 */
#include "api_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ID_TOKEN_LIFE_S 300
#define MAX_AUDIENCE 256

int vk__api_oidc_init(struct vk_api *api, struct vk_err *err)
{
    if (!api->opts.require_auth || !api->opts.job_key_file)
        return 0;
    int rc = vk_auth_signer_load(api->opts.job_key_file, true, &api->signer, err);
    if (rc < 0)
        return rc;
    /* After `vulcan admin rotate-job-key` the previous key stays in the JWKS, so tokens it
     * signed (and those of replicas not restarted yet) keep verifying. */
    char prev[4096];
    int w = snprintf(prev, sizeof(prev), "%s" VK_AUTH_SIGNER_PREVIOUS, api->opts.job_key_file);
    if (w < 0 || (size_t)w >= sizeof(prev))
        return vk_err_set(err, VK_ETOOBIG, "the job key's path is too long");
    rc = vk_auth_signer_load(prev, false, &api->signer_prev, err);
    if (rc == VK_ENOTFOUND) {
        vk_err_clear(err);
        rc = 0;
    }
    return rc;
}

void vk__api_oidc_release(struct vk_api *api)
{
    vk_auth_signer_free(api->signer);
    vk_auth_signer_free(api->signer_prev);
    api->signer = api->signer_prev = NULL;
}

void vk__api_oidc_start(struct vk_api *api)
{
    const char *pub = api->opts.public_url;
    if (pub && *pub) {
        size_t n = strlen(pub);
        while (n && pub[n - 1] == '/')
            n--;
        snprintf(api->issuer, sizeof(api->issuer), "%.*s", (int)n, pub);
        return;
    }
    /* The listen address as clients reach it; a wildcard means this host's loopback. */
    const char *l = api->opts.listen;
    const char *colon = strrchr(l, ':');
    size_t hn = colon ? (size_t)(colon - l) : strlen(l);
    bool wild = hn == 0 || (hn == 7 && strncmp(l, "0.0.0.0", 7) == 0) ||
                (hn == 4 && strncmp(l, "[::]", 4) == 0);
    snprintf(api->issuer, sizeof(api->issuer), "%s://%.*s:%u", api->opts.tls ? "https" : "http",
             wild ? 9 : (int)hn, wild ? "127.0.0.1" : l, (unsigned)vk_api_port(api));
}

bool vk__api_oidc_env(struct vk_api *api, json_t *env, const char *job_token)
{
    if (!api->signer || !job_token)
        return true;
    char url[sizeof(api->issuer) + 32];
    snprintf(url, sizeof(url), "%s/api/v1/id-token", api->issuer);
    return json_object_set_new(env, "VULCAN_ID_TOKEN_REQUEST_URL", json_string(url)) == 0 &&
           json_object_set_new(env, "VULCAN_ID_TOKEN_REQUEST_TOKEN", json_string(job_token)) == 0;
}

static bool no_issuer(struct vk_api *api, struct vk_http_req *req)
{
    if (api->signer)
        return false;
    vk_http_reply_error(req, 404, "not_found",
                        "this server is no OIDC issuer (it runs without --require-auth)");
    return true;
}

static void h_discovery(struct vk_http_req *req, void *ctx)
{
    struct vk_api *api = ctx;
    if (no_issuer(api, req))
        return;
    char jwks[sizeof(api->issuer) + 32];
    snprintf(jwks, sizeof(jwks), "%s/.well-known/jwks.json", api->issuer);
    json_t *claims = json_pack("[s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s,s]", "iss", "sub", "aud",
                               "iat", "nbf", "exp", "jti", "org", "repository", "repository_url",
                               "ref", "sha", "workflow", "chain_id", "fragment_id", "attempt",
                               "trigger", "environment", "machine_group", "worker_id", "fragment");
    vk_http_reply_json(
        req, 200,
        json_pack("{s:s, s:s, s:[s], s:[s], s:[s], s:[s], s:o}", "issuer", api->issuer, "jwks_uri",
                  jwks, "id_token_signing_alg_values_supported", "ES256",
                  "response_types_supported", "id_token", "subject_types_supported", "public",
                  "scopes_supported", "openid", "claims_supported", claims));
}

static void h_jwks(struct vk_http_req *req, void *ctx)
{
    struct vk_api *api = ctx;
    if (no_issuer(api, req))
        return;
    json_error_t je;
    json_t *keys = json_array();
    json_t *k = json_loads(vk_auth_signer_jwk(api->signer), 0, &je);
    bool bad = !keys || !k || json_array_append_new(keys, k) < 0;
    if (!bad && api->signer_prev) {
        json_t *p = json_loads(vk_auth_signer_jwk(api->signer_prev), 0, &je);
        bad = !p || json_array_append_new(keys, p) < 0;
    }
    if (bad)
        json_decref(keys);
    vk_http_reply_json(req, 200, bad ? NULL : json_pack("{s:o}", "keys", keys));
}

/* `s` (NULL: "") with ':' kept out of a `sub` component (it separates them). */
static const char *part(struct vk_pool *pool, const char *s)
{
    if (!s || !strchr(s, ':'))
        return s ? s : "";
    char *c = vk_pool_strndup(pool, s, strlen(s));
    for (char *p = c; c && *p; p++)
        if (*p == ':')
            *p = '_';
    return c ? c : "";
}

json_t *vk__api_job_claims(const struct vk_store_chain *c, const struct vk_store_fragment *f,
                           const char *org_slug, const char *worker_id, struct vk_pool *pool)
{
    char ref[600];
    if (c->tag && *c->tag)
        snprintf(ref, sizeof(ref), "refs/tags/%s", c->tag);
    else if (c->trigger_ref && *c->trigger_ref)
        snprintf(ref, sizeof(ref), "%s", c->trigger_ref);
    else if (c->branch && *c->branch)
        snprintf(ref, sizeof(ref), "refs/heads/%s", c->branch);
    else
        ref[0] = '\0';
    const char *repo = c->repository_url && *c->repository_url ? c->repository_url : "";
    const char *wf = c->source_file ? c->source_file : "";
    char sub[2400];
    snprintf(sub, sizeof(sub), "org:%s:repo:%s:ref:%s:workflow:%s:fragment:%s", org_slug,
             part(pool, repo), part(pool, ref), part(pool, wf), part(pool, f->name));
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:s, s:s, s:s, s:s, s:s}",
                     "sub", sub, "org", org_slug, "repository", repo, "repository_url", repo, "ref",
                     ref, "sha", c->commit_sha ? c->commit_sha : "", "workflow", wf, "chain_id",
                     c->id, "fragment_id", f->id, "attempt", f->attempt, "trigger",
                     c->trigger ? c->trigger : "", "environment", "", "machine_group",
                     f->machine ? f->machine : "", "worker_id", worker_id ? worker_id : "",
                     "fragment", f->name ? f->name : "");
}

static void h_id_token(struct vk_http_req *req, void *ctx)
{
    struct vk_api *api = ctx;
    if (no_issuer(api, req))
        return;
    const struct vk_store_credential *jc = vk__api_agent_cred(req);
    const char *aud = vk_http_query(req, "audience");
    if (!aud || !*aud)
        aud = api->issuer;
    size_t alen = strlen(aud);
    for (size_t i = 0; i < alen; i++) {
        if ((unsigned char)aud[i] < 0x21 || aud[i] == 0x7f || aud[i] == '"' || aud[i] == '\\')
            alen = MAX_AUDIENCE + 1;
    }
    if (!jc || alen > MAX_AUDIENCE) {
        vk_http_reply_error(req, 400, "bad_request",
                            "'audience' must be at most %d printable characters", MAX_AUDIENCE);
        return;
    }
    struct vk_pool *pool = vk_http_pool(req);
    struct vk_store_fragment f;
    struct vk_store_chain c;
    struct vk_store_org org;
    struct vk_err err;
    vk_err_clear(&err);
    int rc = vk_store_fragment_get(api->opts.store, jc->fragment_id, pool, &f, &err);
    if (rc == 0)
        rc = vk_store_chain_get(api->opts.store, f.chain_id, pool, &c, NULL, NULL, &err);
    if (rc == 0)
        rc = vk_store_org_get(api->opts.store, c.tenant_id, pool, &org, &err);
    if (rc < 0) {
        vk__api_reply_err(req, &err, rc);
        return;
    }
    if (f.status != VK_STORE_FRAG_RUNNING || f.attempt != jc->attempt) {
        vk_http_reply_error(req, 409, "stale_attempt", "the attempt of this job token has ended");
        return;
    }
    json_t *claims = vk__api_job_claims(&c, &f, org.slug, jc->worker_id, pool);
    char jti[33];
    if (vk_auth_random_text(jti, 32) < 0) {
        json_decref(claims);
        vk_http_reply_error(req, 503, "unavailable", "the random generator failed");
        return;
    }
    int64_t now = vk_time_now_ms() / 1000;
    if (claims &&
        (json_object_set_new(claims, "iss", json_string(api->issuer)) ||
         json_object_set_new(claims, "aud", json_string(aud)) ||
         json_object_set_new(claims, "iat", json_integer((json_int_t)now)) ||
         json_object_set_new(claims, "nbf", json_integer((json_int_t)now)) ||
         json_object_set_new(claims, "exp", json_integer((json_int_t)(now + ID_TOKEN_LIFE_S))) ||
         json_object_set_new(claims, "jti", json_string(jti)))) {
        json_decref(claims);
        claims = NULL;
    }
    size_t len = 0;
    char *text = claims ? vk_http_json_text(claims, JSON_COMPACT, &len) : NULL;
    json_decref(claims);
    char *jwt = NULL;
    rc = text ? vk_auth_jwt_sign(api->signer, text, len, &jwt, &err)
              : vk_err_set(&err, VK_ENOMEM, "out of memory");
    free(text);
    if (rc < 0) {
        vk__api_reply_err(req, &err, rc);
        return;
    }
    /* Masked in the attempt's log like the job token; unmaskable means not issued. */
    rc = vk__api_mask_add(api, f.id, f.attempt, jwt, strlen(jwt));
    if (rc < 0) {
        vk_auth_wipe(jwt, strlen(jwt));
        free(jwt);
        vk_http_reply_error(req, 503, "unavailable", "the ID token cannot be masked (%s)",
                            vk_err_name(rc));
        return;
    }
    vk_log_write(VK_LOG_INFO, "api", "job id token issued", "fragment_id", f.id, "audience", aud,
                 "jti", jti, NULL);
    if (vk_http_set_header(req, "Cache-Control", "no-store") != 0)
        vk_log_write(VK_LOG_WARN, "api", "cannot set Cache-Control", NULL);
    json_t *o = json_pack("{s:s}", "value", jwt);
    vk_auth_wipe(jwt, strlen(jwt));
    free(jwt);
    vk_http_reply_json(req, 200, o);
}

int vk__api_oidc_routes(struct vk_api *api, struct vk_err *err)
{
    int rc = vk_http_route(api->http, "GET", "/.well-known/openid-configuration", h_discovery, api,
                           NULL, err);
    if (rc == 0)
        rc = vk_http_route(api->http, "GET", "/.well-known/jwks.json", h_jwks, api, NULL, err);
    if (rc == 0)
        rc = vk_http_route(api->http, "GET", "/api/v1/id-token", h_id_token, api, NULL, err);
    return rc;
}
