/*
 * Secrets (DESIGN §8, docs/secrets.md): PUT/DELETE /api/v1/orgs/{org}/secrets/{name},
 * GET /api/v1/orgs/{org}/secrets, and the same under /api/v1/repos/{id}/secrets.
 *
 * Write-only: no answer, log line or error ever holds a value; listings give names,
 * scope, flags, version and who changed them when. Values are sealed here (envelope
 * encryption, vulcan/secrets.h) before they reach the store.
 */
#include "api_int.h"
#include "vulcan/mask.h"
#include "vulcan/secret_provider.h"
#include "vulcan/secrets.h"
#include "vulcan/store_secrets.h"

#include <stdio.h>
#include <string.h>

#define MAX_PROVIDER 64
#define MAX_PROVIDER_KEY 1024

/* Where a request's secrets live: the org, and for a repository route the repository. */
struct place {
    char org_id[VK_UUID_LEN];
    const char *scope;               /* "org" or "repository" */
    char scope_id[VK_UUID_LEN];      /* "" for the org */
    char repository_id[VK_UUID_LEN]; /* "" for the org */
    const char *login;               /* who acts, NULL without credentials */
};

/* Resolve the request's place, answering (and returning false) when it cannot be used. */
static bool place_of(struct vk_api *api, struct vk_http_req *req, bool manage, struct place *pl)
{
    memset(pl, 0, sizeof(*pl));
    const struct vk__api_principal *p = vk_http_req_principal(req);
    memcpy(pl->org_id, p ? p->org_id : api->default_org, VK_UUID_LEN);
    pl->login = p ? p->login : NULL;
    pl->scope = "org";
    const char *slug = vk_http_param(req, "org");
    if (!p && slug) { /* without credentials the gate did not look the org up */
        struct vk_store_org o;
        struct vk_err err;
        vk_err_clear(&err);
        int rc = strlen(slug) > VK_STORE_MAX_SLUG
                     ? vk_err_set(&err, VK_ENOTFOUND, "org not found")
                     : vk_store_org_find(api->opts.store, slug, vk_http_pool(req), &o, &err);
        if (rc < 0) {
            vk__api_reply_err(req, &err, rc);
            return false;
        }
        memcpy(pl->org_id, o.id, VK_UUID_LEN);
    }
    const char *repo_id = vk_http_param(req, "id");
    if (!repo_id)
        return true;
    if (!vk_uuid_valid(repo_id)) {
        vk_http_reply_error(req, 404, "not_found", "no such repository");
        return false;
    }
    struct vk_store_repo repo;
    struct vk_err err;
    vk_err_clear(&err);
    int rc = vk_store_repo_get(api->opts.store, repo_id, vk_http_pool(req), &repo, &err);
    if (rc == 0 && api->opts.require_auth && p && strcmp(repo.tenant_id, p->org_id) != 0)
        rc = vk_err_set(&err, VK_ENOTFOUND, "no such repository");
    if (rc == 0 && api->opts.require_auth && p && p->user_id[0] && !p->site_admin) {
        /* The gate checked the org role; a repository grant may add to it. */
        enum vk_auth_role role = VK_ROLE_NONE;
        rc = vk_store_role_of(api->opts.store, p->user_id, p->org_id, repo.id, &role, &err);
        enum vk_auth_role cap = vk_auth_scopes_cap(p->cred.scopes);
        role = role < cap ? role : cap;
        if (rc == 0 && role == VK_ROLE_NONE)
            rc = vk_err_set(&err, VK_ENOTFOUND, "no such repository");
        else if (rc == 0 && role < (manage ? VK_ROLE_MAINTAINER : VK_ROLE_DEVELOPER))
            rc = vk_err_set(&err, VK_EPERM, "managing this repository's secrets needs the %s role",
                            manage ? "maintainer" : "developer");
    }
    if (rc < 0) {
        vk__api_reply_err(req, &err, rc);
        return false;
    }
    memcpy(pl->org_id, repo.tenant_id, VK_UUID_LEN);
    pl->scope = "repository";
    memcpy(pl->scope_id, repo.id, VK_UUID_LEN);
    memcpy(pl->repository_id, repo.id, VK_UUID_LEN);
    return true;
}

static bool have_key(struct vk_api *api, struct vk_http_req *req)
{
    if (api->opts.secrets_key)
        return true;
    vk_http_reply_error(req, 503, "secrets_unavailable",
                        "this server has no secrets key (--secrets-key-file)");
    return false;
}

static bool name_ok(struct vk_http_req *req, const char **name)
{
    *name = vk_http_param(req, "name");
    if (*name && vk_secret_name_valid(*name))
        return true;
    vk_http_reply_error(req, 400, "bad_request",
                        "a secret name is 1 to %d characters of [A-Z_][A-Z0-9_]*, starting with "
                        "a letter or '_' (for example NPM_TOKEN)",
                        VK_SECRET_MAX_NAME);
    return false;
}

static json_t *secret_json(const struct vk_store_secret *s)
{
    json_t *o = json_object();
    int bad = !o;
    bad |= json_object_set_new(o, "name", vk__api_str(s->name));
    bad |= json_object_set_new(o, "scope", vk__api_str(s->scope));
    bad |= json_object_set_new(o, "repository",
                               s->repository_id[0] ? json_string(s->repository_id) : json_null());
    bad |= json_object_set_new(o, "environment", vk__api_str(s->environment));
    bad |= json_object_set_new(o, "protected", json_boolean(s->is_protected));
    bad |= json_object_set_new(o, "provider", vk__api_str(s->provider));
    bad |= json_object_set_new(o, "version", json_integer(s->version));
    bad |= json_object_set_new(o, "created_by", vk__api_str(s->created_by));
    bad |= json_object_set_new(o, "created_at", vk__api_time(s->created_at));
    bad |= json_object_set_new(o, "updated_by", vk__api_str(s->updated_by));
    bad |= json_object_set_new(o, "updated_at", vk__api_time(s->updated_at));
    return vk_http_json_checked(o, bad);
}

/* The body of a PUT: {"value": "...", "protected": bool} or {"provider", "key", "protected"}. */
struct put_body {
    const char *value;
    size_t len;
    const char *provider, *key;
    bool is_protected;
};

static bool parse_put(struct vk_http_req *req, struct put_body *b)
{
    memset(b, 0, sizeof(*b));
    json_t *body = vk_http_json(req);
    if (!json_is_object(body)) {
        vk_http_reply_error(req, 400, "bad_request", "expected a JSON object");
        return false;
    }
    const char *k;
    json_t *v;
    json_object_foreach(body, k, v)
    {
        if (strcmp(k, "value") != 0 && strcmp(k, "protected") != 0 && strcmp(k, "provider") != 0 &&
            strcmp(k, "key") != 0) {
            vk_http_reply_error(req, 400, "bad_request", "unknown field '%.64s'", k);
            return false;
        }
    }
    json_t *val = json_object_get(body, "value"), *prov = json_object_get(body, "provider"),
           *key = json_object_get(body, "key"), *prot = json_object_get(body, "protected");
    if (prot && !json_is_boolean(prot)) {
        vk_http_reply_error(req, 400, "bad_request", "'protected' must be true or false");
        return false;
    }
    b->is_protected = json_is_true(prot);
    if (!val == !prov) {
        vk_http_reply_error(req, 400, "bad_request",
                            "give exactly one of 'value' (the secret) and 'provider' with 'key' "
                            "(a secret provider's)");
        return false;
    }
    struct vk_err err;
    vk_err_clear(&err);
    if (val) {
        if (!json_is_string(val) || key) {
            vk_http_reply_error(req, 400, "bad_request",
                                "'value' must be a string (and goes without 'key')");
            return false;
        }
        b->value = json_string_value(val);
        b->len = json_string_length(val);
        if (vk_secret_value_check(b->value, b->len, &err) < 0) {
            vk_http_reply_error(req, 400, "bad_request", "%s", err.msg);
            return false;
        }
        return true;
    }
    if (!json_is_string(prov) || !json_is_string(key) || json_string_length(prov) == 0 ||
        json_string_length(prov) > MAX_PROVIDER || json_string_length(key) == 0 ||
        json_string_length(key) > MAX_PROVIDER_KEY ||
        strlen(json_string_value(key)) != json_string_length(key) ||
        strspn(json_string_value(prov), "abcdefghijklmnopqrstuvwxyz0123456789-_") !=
            json_string_length(prov)) {
        vk_http_reply_error(req, 400, "bad_request",
                            "'provider' is a provider's name (1-%d of [a-z0-9_-]) and 'key' what "
                            "it looks up (1-%d bytes)",
                            MAX_PROVIDER, MAX_PROVIDER_KEY);
        return false;
    }
    b->provider = json_string_value(prov);
    b->key = json_string_value(key);
    return true;
}

static void h_put(struct vk_http_req *req, void *ctx)
{
    struct vk_api *api = ctx;
    const char *name = NULL;
    struct place pl;
    struct put_body b;
    if (!have_key(api, req) || !name_ok(req, &name) || !place_of(api, req, true, &pl) ||
        !parse_put(req, &b))
        return;
    struct vk_pool *pool = vk_http_pool(req);
    struct vk_err err;
    vk_err_clear(&err);
    int rc = 0;
    bool created = false;
    struct vk_store_secret sec;
    /* The version is sealed into the value: read it, seal for the next, write if unchanged. */
    for (int tries = 0; tries < 3; tries++) {
        struct vk_store_secret old;
        int64_t expected = 0;
        rc = vk_store_secret_get(api->opts.store, pl.org_id, pl.scope, pl.scope_id, name, pool,
                                 &old, &err);
        if (rc == 0)
            expected = old.version;
        else if (rc != VK_ENOTFOUND)
            break;
        memset(&sec, 0, sizeof(sec));
        memcpy(sec.tenant_id, pl.org_id, VK_UUID_LEN);
        memcpy(sec.repository_id, pl.repository_id, VK_UUID_LEN);
        sec.scope = pl.scope;
        sec.scope_id = pl.scope_id;
        sec.name = name;
        sec.is_protected = b.is_protected;
        sec.version = expected + 1;
        sec.key_version = api->opts.secrets_key_version;
        sec.created_by = sec.updated_by = pl.login;
        struct vk_secret_sealed sealed = {0};
        if (b.value) {
            struct vk_secret_where w = {pl.org_id, pl.scope, pl.scope_id, name, sec.version};
            rc = vk_secret_seal(api->opts.secrets_key, &w, b.value, b.len, &sealed, &err);
            if (rc)
                break;
            sec.value = sealed.ct;
            sec.value_len = sealed.ct_len;
            sec.nonce = sealed.nonce;
            sec.nonce_len = VK_SECRET_NONCE_LEN;
            sec.wrapped_key = sealed.wrapped;
            sec.wrapped_len = VK_SECRET_WRAPPED_LEN;
        } else {
            sec.provider = b.provider;
            sec.provider_key = b.key;
        }
        rc = vk_store_secret_put(api->opts.store, &sec, expected, &err);
        vk_secret_sealed_release(&sealed);
        created = expected == 0;
        if (rc != VK_ECONFLICT && rc != VK_EEXIST)
            break;
    }
    if (rc == 0)
        rc = vk_store_secret_get(api->opts.store, pl.org_id, pl.scope, pl.scope_id, name, pool,
                                 &sec, &err);
    if (rc < 0) {
        vk__api_reply_err(req, &err, rc);
        return;
    }
    vk_log_write(VK_LOG_INFO, "api", created ? "secret created" : "secret updated", "name", name,
                 "scope", pl.scope, "repository_id", pl.repository_id[0] ? pl.repository_id : NULL,
                 "by", pl.login, NULL);
    vk_http_reply_json(req, created ? 201 : 200, secret_json(&sec));
}

static void h_delete(struct vk_http_req *req, void *ctx)
{
    struct vk_api *api = ctx;
    const char *name = NULL;
    struct place pl;
    if (!name_ok(req, &name) || !place_of(api, req, true, &pl))
        return;
    struct vk_err err;
    vk_err_clear(&err);
    int rc = vk_store_secret_delete(api->opts.store, pl.org_id, pl.scope, pl.scope_id, name, &err);
    if (rc < 0) {
        vk__api_reply_err(req, &err, rc);
        return;
    }
    vk_log_write(VK_LOG_INFO, "api", "secret deleted", "name", name, "scope", pl.scope,
                 "repository_id", pl.repository_id[0] ? pl.repository_id : NULL, "by", pl.login,
                 NULL);
    vk_http_reply_empty(req, 204);
}

static void h_list(struct vk_http_req *req, void *ctx)
{
    struct vk_api *api = ctx;
    struct place pl;
    if (!place_of(api, req, false, &pl))
        return;
    struct vk_err err;
    vk_err_clear(&err);
    struct vk_store_secret *rows = NULL;
    size_t n = 0;
    int rc = vk_store_secret_list(api->opts.store, pl.org_id, pl.scope, pl.scope_id,
                                  vk_http_pool(req), &rows, &n, &err);
    if (rc < 0) {
        vk__api_reply_err(req, &err, rc);
        return;
    }
    json_t *a = json_array();
    int bad = !a;
    for (size_t i = 0; i < n && !bad; i++)
        bad |= json_array_append_new(a, secret_json(&rows[i]));
    json_t *o = json_object();
    bad |= !o || json_object_set_new(o, "secrets", a);
    /* What the caller may do here, so a console offers no button the server refuses. */
    bool repo = vk_http_param(req, "id") != NULL;
    bool set = vk__api_may(api, req, "PUT",
                           repo ? "/api/v1/repos/{id}/secrets/{name}"
                                : "/api/v1/orgs/{org}/secrets/{name}");
    bool del = vk__api_may(api, req, "DELETE",
                           repo ? "/api/v1/repos/{id}/secrets/{name}"
                                : "/api/v1/orgs/{org}/secrets/{name}");
    bad |=
        !o || json_object_set_new(o, "actions", json_pack("{s:b,s:b}", "set", set, "delete", del));
    vk_http_reply_json(req, 200, vk_http_json_checked(o, bad));
}

int vk__api_secret_routes(struct vk_api *api, struct vk_err *err)
{
    /* A 64 KiB value may grow six-fold when every byte is escaped (\u00XX). */
    const struct vk_http_route_opts json = {.max_body = 6 * VK_SECRET_MAX_VALUE + 4096,
                                            .json = true};
    struct {
        const char *method, *pattern;
        vk_http_handler_fn fn;
        const struct vk_http_route_opts *opts;
    } routes[] = {
        {"GET", "/api/v1/orgs/{org}/secrets", h_list, NULL},
        {"PUT", "/api/v1/orgs/{org}/secrets/{name}", h_put, &json},
        {"DELETE", "/api/v1/orgs/{org}/secrets/{name}", h_delete, NULL},
        {"GET", "/api/v1/repos/{id}/secrets", h_list, NULL},
        {"PUT", "/api/v1/repos/{id}/secrets/{name}", h_put, &json},
        {"DELETE", "/api/v1/repos/{id}/secrets/{name}", h_delete, NULL},
    };
    for (size_t i = 0; i < VK_ARRAY_LEN(routes); i++) {
        int rc = vk_http_route(api->http, routes[i].method, routes[i].pattern, routes[i].fn, api,
                               routes[i].opts, err);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ---------------------------------------------------------------- Work items */

/* Whether chain `c` of repository `repo` (NULL: none) runs for a protected ref: a push,
 * schedule, manual run or tag whose branch (or tag) matches the repository's protected_refs
 * globs (default: its default branch). A pull request never does: it runs its head. */
static bool protected_ref(const struct vk_store_chain *c, const struct vk_store_repo *repo)
{
    if (!repo || !c->trigger || strcmp(c->trigger, "pull_request") == 0)
        return false;
    bool tag = strcmp(c->trigger, "tag") == 0;
    const char *ref = tag ? c->tag : c->branch;
    if (!ref || !*ref)
        return false;
    if (!repo->protected_refs || !*repo->protected_refs)
        return !tag && repo->default_branch && strcmp(ref, repo->default_branch) == 0;
    char globs[1100];
    snprintf(globs, sizeof(globs), "%s", repo->protected_refs);
    char *save = NULL;
    for (char *g = strtok_r(globs, ",", &save); g; g = strtok_r(NULL, ",", &save)) {
        while (*g == ' ')
            g++;
        size_t n = strlen(g);
        while (n && g[n - 1] == ' ')
            g[--n] = '\0';
        if (*g && vk_glob_match(g, ref))
            return true;
    }
    return false;
}

/* Append `name` to the comma-separated `list` (bounded). */
static void note(char *list, size_t cap, const char *name, const char *why)
{
    size_t len = strlen(list);
    snprintf(list + len, cap - len, "%s%s(%s)", len ? "," : "", name, why);
}

/* Ask the secret's provider for its value (docs/secrets.md "Providers"). Returns 0 with the
 * value in `out` (owned), or <0 with `fail` saying why the attempt cannot run. */
static int provider_value(struct vk_api *api, const struct vk_store_work *w,
                          const struct vk_store_secret *s, struct vk_pool *pool,
                          struct vk_secret_value *out, struct vk_err *fail)
{
    const struct vk_store_fragment *f = &w->fragment;
    const struct vk_store_chain *c = &w->chain;
    const struct vk_secret_providers *ps = api->opts.secret_providers;
    if (!ps || !vk_secret_providers_find(ps, s->provider))
        return vk_err_set(fail, VK_ENOTFOUND,
                          "secret '%s' comes from secret provider '%s', which this server does "
                          "not have: start it with --secret-provider %s=PATH",
                          s->name, s->provider, s->provider);
    struct vk_store_org org;
    struct vk_err err;
    vk_err_clear(&err);
    if (vk_store_org_get(api->opts.store, c->tenant_id, pool, &org, &err) < 0)
        return vk_err_set(fail, VK_EDB, "cannot read the chain's org for secret '%s': %s", s->name,
                          err.msg);
    json_t *claims = vk__api_job_claims(c, f, org.slug, f->worker_id, pool);
    if (!claims)
        return vk_err_set(fail, VK_ENOMEM, "out of memory");
    const char *ref = json_string_value(json_object_get(claims, "ref"));
    struct vk_secret_request rq = {
        .org = org.slug,
        .repository = c->repository_url && *c->repository_url ? c->repository_url : NULL,
        .name = s->name,
        .ref = ref && *ref ? ref : NULL,
        .environment = NULL,
        .key = s->provider_key,
        .claims = claims,
    };
    int64_t t0 = vk_time_now_ms();
    int rc = vk_secret_providers_resolve(ps, s->provider, &rq, out, &err);
    json_decref(claims);
    if (rc < 0) {
        vk_log_write(VK_LOG_WARN, "api", "a secret provider failed", "name", s->name, "provider",
                     s->provider, "fragment_id", f->id, "error", err.msg, NULL);
        return vk_err_set(fail, rc, "secret '%s': %s", s->name, err.msg);
    }
    char ms[24];
    snprintf(ms, sizeof(ms), "%lld", (long long)(vk_time_now_ms() - t0));
    vk_log_write(VK_LOG_INFO, "api", "secret from a provider", "name", s->name, "provider",
                 s->provider, "fragment_id", f->id, "duration_ms", ms, NULL);
    return 0;
}

bool vk__api_work_needs_providers(struct vk_api *api, const struct vk_store_work *w)
{
    return api->opts.secret_providers && api->opts.secret_providers->n > 0 &&
           w->fragment.secrets_json && *w->fragment.secrets_json;
}

/* What collect() does with each value an attempt may have: 0, or -1 to record it withheld
 * as `why` (the value is still the caller's to wipe). */
typedef int take_fn(void *ctx, const char *name, bool file, const char *v, size_t n,
                    const char **why);

/*
 * Each secret the attempt `w` names and may have, opened with the server's key or (with
 * `ask`) asked of its provider, given to `take`; the names withheld and why in `withheld`.
 * Returns 0, 1 when a provider failed (`fail` says why; stop: nothing must be sent).
 */
static int collect(struct vk_api *api, const struct vk_store_work *w, struct vk_pool *pool,
                   bool ask, take_fn *take, void *ctx, char *withheld, size_t cap,
                   struct vk_err *fail)
{
    const struct vk_store_fragment *f = &w->fragment;
    const struct vk_store_chain *c = &w->chain;
    json_t *want =
        f->secrets_json && *f->secrets_json ? json_loads(f->secrets_json, 0, NULL) : NULL;
    if (!json_is_array(want)) {
        json_decref(want);
        return 0;
    }
    struct vk_err err;
    vk_err_clear(&err);
    struct vk_store_repo repo;
    bool has_repo = c->repository_id[0] &&
                    vk_store_repo_get(api->opts.store, c->repository_id, pool, &repo, &err) == 0;
    bool fork_ok = !c->from_fork || (has_repo && repo.allow_fork_secrets);
    bool prot_ok = protected_ref(c, has_repo ? &repo : NULL);
    int failed = 0;
    size_t i;
    json_t *e;
    json_array_foreach(want, i, e)
    {
        const char *name = json_string_value(json_object_get(e, "name"));
        bool file = json_is_true(json_object_get(e, "file"));
        if (!name || !vk_secret_name_valid(name) || i >= VK_SECRET_MAX_PER_JOB)
            continue;
        if (!api->opts.secrets_key) {
            note(withheld, cap, name, "no key");
            continue;
        }
        if (!fork_ok) {
            note(withheld, cap, name, "fork");
            continue;
        }
        struct vk_store_secret s;
        int rc = vk_store_secret_resolve(api->opts.store, c->tenant_id, c->repository_id, name,
                                         pool, &s, &err);
        if (rc < 0) {
            note(withheld, cap, name, rc == VK_ENOTFOUND ? "unknown" : "error");
            continue;
        }
        if (s.is_protected && !prot_ok) {
            note(withheld, cap, name, "protected");
            continue;
        }
        /* A provider's value, or a stored one opened with the server's key. */
        struct vk_secret_value v = {NULL, 0};
        if (s.provider) {
            if (!ask)
                continue;
            if (provider_value(api, w, &s, pool, &v, fail) < 0) {
                failed = 1; /* the attempt cannot run: never with part of its secrets */
                break;
            }
        } else if (!s.value || s.nonce_len != VK_SECRET_NONCE_LEN ||
                   s.wrapped_len != VK_SECRET_WRAPPED_LEN) {
            note(withheld, cap, name, "damaged");
            continue;
        } else {
            struct vk_secret_where where = {s.tenant_id, s.scope, s.scope_id, s.name, s.version};
            rc = vk_secret_open(api->opts.secrets_key, &where, s.nonce, s.wrapped_key, s.value,
                                s.value_len, &v.data, &v.len, &err);
            if (rc < 0) {
                vk_log_write(VK_LOG_ERROR, "api", "a secret does not open", "name", name,
                             "fragment_id", f->id, "error", err.msg, NULL);
                note(withheld, cap, name, "does not open");
                continue;
            }
        }
        const char *why = NULL;
        if (take(ctx, name, file, v.data, v.len, &why) < 0)
            note(withheld, cap, name, why);
        vk_secret_value_release(&v);
    }
    json_decref(want);
    return failed;
}

struct work_take {
    struct vk_api *api;
    const struct vk_store_fragment *f;
    json_t *out;
    int bad;
};

static int work_take(void *ctx, const char *name, bool file, const char *v, size_t n,
                     const char **why)
{
    struct work_take *t = ctx;
    /* The server masks it in the attempt's log as well (api_mask.c): a value it cannot
     * register is withheld rather than sent to be printed unmasked there. */
    if (vk__api_mask_add(t->api, t->f->id, t->f->attempt, v, n) < 0) {
        vk_log_write(VK_LOG_ERROR, "api", "cannot register a secret for masking", "name", name,
                     "fragment_id", t->f->id, NULL);
        *why = "cannot be masked";
        return -1;
    }
    json_t *o = json_object();
    t->bad |= !o || json_object_set_new(o, "name", json_string(name)) ||
              json_object_set_new(o, "value", json_stringn(v, n)) ||
              json_object_set_new(o, "file", json_boolean(file)) ||
              json_array_append_new(t->out, o);
    return 0;
}

int vk__api_work_secrets(struct vk_api *api, const struct vk_store_work *w, struct vk_pool *pool,
                         json_t *item, json_t *env, struct vk_err *fail)
{
    if (!w->fragment.secrets_json || !*w->fragment.secrets_json)
        return 0;
    struct work_take t = {api, &w->fragment, json_array(), 0};
    char withheld[2048] = "";
    if (!t.out)
        return -1;
    if (collect(api, w, pool, true, work_take, &t, withheld, sizeof(withheld), fail) == 1) {
        /* Wipe the values already taken: the work item is never sent. */
        size_t j;
        json_t *o;
        json_array_foreach(t.out, j, o)
        {
            json_t *val = json_object_get(o, "value");
            if (json_is_string(val)) /* jansson keeps its own copy: overwrite it in place */
                vk_auth_wipe((char *)json_string_value(val), json_string_length(val));
        }
        json_decref(t.out);
        return 1;
    }
    int bad = t.bad;
    if (withheld[0]) {
        /* Names only: the script can tell why a variable is missing. */
        bad |= json_object_set_new(env, "VULCAN_SECRETS_WITHHELD", json_string(withheld));
        vk_log_write(VK_LOG_INFO, "api", "secrets withheld from an attempt", "fragment_id",
                     w->fragment.id, "chain_id", w->chain.id, "secrets", withheld, NULL);
    }
    if (json_array_size(t.out) > 0)
        bad |= json_object_set_new(item, "secrets", t.out);
    else
        json_decref(t.out);
    return bad ? -1 : 0;
}

static int mask_take(void *ctx, const char *name, bool file, const char *v, size_t n,
                     const char **why)
{
    (void)name;
    (void)file;
    *why = "cannot be masked";
    return vk_mask_add(ctx, v, n) < 0 ? -1 : 0;
}

int vk__api_mask_stored_secrets(struct vk_api *api, const char *fragment_id, int attempt,
                                struct vk_mask *m)
{
    struct vk_pool pool;
    vk_pool_init(&pool, 8192);
    struct vk_store_work w;
    struct vk_err err;
    vk_err_clear(&err);
    int rc = vk_store_fragment_get(api->opts.store, fragment_id, &pool, &w.fragment, &err);
    if (rc == 0 && w.fragment.attempt != attempt)
        rc = VK_ECONFLICT; /* a later attempt: this log is refused anyway */
    if (rc == 0 && w.fragment.secrets_json && *w.fragment.secrets_json)
        rc = vk_store_chain_get(api->opts.store, w.fragment.chain_id, &pool, &w.chain, NULL, NULL,
                                &err);
    else if (rc == 0)
        rc = 1; /* names no secret */
    if (rc == 0) {
        char withheld[2048] = "";
        (void)collect(api, &w, &pool, false, mask_take, m, withheld, sizeof(withheld), NULL);
        if (strstr(withheld, "(cannot be masked)"))
            vk_log_write(VK_LOG_WARN, "api", "a secret cannot be masked again", "fragment_id",
                         fragment_id, "secrets", withheld, NULL);
    }
    vk_pool_release(&pool);
    return rc < 0 && rc != VK_ECONFLICT ? rc : 0;
}
