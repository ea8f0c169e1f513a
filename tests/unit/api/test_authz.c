/*
 * The authorisation matrix (issue 13), generated from GET /api/v1/openapi.json with
 * require_auth on: every operation whose x-vulcan-role is an org role is tried
 * anonymously, with a malformed, an expired and a revoked token, with a token of each
 * role, with a token restricted to another org, with an admin's token whose scopes only
 * allow reading, and by a user of another org. Each answer is the one the role says:
 * 401 without a valid credential, 404 for a caller the org does not exist for, 403 below
 * the role, and past the gate (whatever the handler answers) at or above it. An
 * operation added with a role is tried here without anyone writing a case for it.
 */
#include "api_test.h"
#include "vulcan/store_identity.h"

#include <ctype.h>
#include <curl/curl.h>
#include <strings.h>

struct who {
    const char *name;
    char token[VK_AUTH_TOKEN_MAX]; /* "" anonymous */
    enum vk_auth_role acts;        /* the role it should act with in `default` */
    int want_below;                /* answer below the route's role: 401, 404 or 403 */
};

struct authz {
    struct env *e;
    struct who who[12];
    size_t n;
    char other_org[VK_UUID_LEN];
};

static void user_with(struct env *e, const char *login, const char *org, enum vk_auth_role role,
                      char id[VK_UUID_LEN])
{
    struct vk_err err = {0};
    struct vk_store_user u = {.login = login};
    if (vk_store_user_create(e->store, &u, &err))
        fail_msg("user %s: %s", login, err.msg);
    memcpy(id, u.id, VK_UUID_LEN);
    if (role == VK_ROLE_NONE)
        return;
    struct vk_store_grant g = {.role = role};
    memcpy(g.org_id, org, VK_UUID_LEN);
    memcpy(g.user_id, u.id, VK_UUID_LEN);
    if (vk_store_grant_create(e->store, &g, &err))
        fail_msg("grant %s: %s", login, err.msg);
}

static struct who *add(struct authz *az, const char *name, enum vk_auth_role acts, int below)
{
    struct who *w = &az->who[az->n++];
    w->name = name;
    w->acts = acts;
    w->want_below = below;
    return w;
}

static void token_for(struct authz *az, struct who *w, const char *user, unsigned scopes,
                      int64_t expires_at, const char *org, bool revoke)
{
    struct vk_store_credential c = {.scopes = scopes, .expires_at = expires_at};
    memcpy(c.user_id, user, VK_UUID_LEN);
    if (org)
        memcpy(c.org_id, org, VK_UUID_LEN);
    assert_int_equal(vk_auth_token_new(VK_AUTH_PAT, w->token, c.hash), 0);
    c.kind = VK_AUTH_PAT;
    struct vk_err err = {0};
    if (vk_store_credential_create(az->e->store, &c, &err))
        fail_msg("token: %s", err.msg);
    if (revoke)
        assert_int_equal(
            vk_store_credential_revoke(az->e->store, c.id, NULL, vk_time_now_ms(), &err), 0);
}

static int az_setup(void **state)
{
    struct env *e = calloc(1, sizeof(*e));
    struct vk_err err;
    vk_err_clear(&err);
    char url[512];
    env_store_url(url, sizeof(url));
    if (vk_store_open(url, &e->store, &err) != 0)
        fail_msg("store: %s", err.msg);
    struct vk_orch_opts oo = {.worker_timeout_ms = 60000};
    if (vk_orch_new(e->store, &oo, &e->orch, &err) != 0)
        fail_msg("orch: %s", err.msg);
    struct vk_api_opts ao = {
        .listen = "127.0.0.1:0", .store = e->store, .orch = e->orch, .require_auth = true};
    if (vk_api_new(&ao, &e->api, &err) != 0)
        fail_msg("api: %s", err.msg);
    if (vk_orch_start(e->orch, &err) != 0 || vk_api_start(e->api, &err) != 0)
        fail_msg("start: %s", err.msg);
    snprintf(e->base, sizeof(e->base), "http://127.0.0.1:%u", vk_api_port(e->api));
    e->cl = env_client(e);

    struct authz *az = calloc(1, sizeof(*az));
    az->e = e;
    struct vk_pool pool;
    vk_pool_init(&pool, 0);
    struct vk_store_org def, other = {.slug = "other"};
    assert_int_equal(vk_store_org_find(e->store, "default", &pool, &def, &err), 0);
    assert_int_equal(vk_store_org_create(e->store, &other, &err), 0);
    memcpy(az->other_org, other.id, VK_UUID_LEN);
    char r[VK_UUID_LEN], d[VK_UUID_LEN], m[VK_UUID_LEN], a[VK_UUID_LEN], x[VK_UUID_LEN];
    user_with(e, "reader", def.id, VK_ROLE_READER, r);
    user_with(e, "developer", def.id, VK_ROLE_DEVELOPER, d);
    user_with(e, "maintainer", def.id, VK_ROLE_MAINTAINER, m);
    user_with(e, "admin", def.id, VK_ROLE_ADMIN, a);
    user_with(e, "outsider", other.id, VK_ROLE_ADMIN, x);
    int64_t now = vk_time_now_ms();
    add(az, "anonymous", VK_ROLE_NONE, 401);
    struct who *w = add(az, "malformed token", VK_ROLE_NONE, 401);
    snprintf(w->token, sizeof(w->token), "vk_pat_notatoken");
    token_for(az, add(az, "expired token", VK_ROLE_NONE, 401), a, VK_SCOPE_ALL, now - 1, NULL,
              false);
    token_for(az, add(az, "revoked token", VK_ROLE_NONE, 401), a, VK_SCOPE_ALL, 0, NULL, true);
    token_for(az, add(az, "reader", VK_ROLE_READER, 403), r, VK_SCOPE_ALL, 0, NULL, false);
    token_for(az, add(az, "developer", VK_ROLE_DEVELOPER, 403), d, VK_SCOPE_ALL, 0, NULL, false);
    token_for(az, add(az, "maintainer", VK_ROLE_MAINTAINER, 403), m, VK_SCOPE_ALL, 0, NULL, false);
    token_for(az, add(az, "admin", VK_ROLE_ADMIN, 403), a, VK_SCOPE_ALL, 0, NULL, false);
    token_for(az, add(az, "admin, read scope", VK_ROLE_READER, 403), a, VK_SCOPE_READ, 0, NULL,
              false);
    token_for(az, add(az, "admin, token of another org", VK_ROLE_NONE, 404), a, VK_SCOPE_ALL, 0,
              other.id, false);
    token_for(az, add(az, "admin of another org", VK_ROLE_NONE, 404), x, VK_SCOPE_ALL, 0, NULL,
              false);
    vk_pool_release(&pool);
    *state = az;
    return 0;
}

static int az_teardown(void **state)
{
    struct authz *az = *state;
    struct env *e = az->e;
    free(az);
    void *es = e;
    return env_teardown(&es);
}

struct answer {
    long status;
    char code[64];
    char message[300];
    char www[200];
};

static size_t on_header(char *b, size_t size, size_t n, void *ctx)
{
    struct answer *a = ctx;
    size_t len = size * n;
    if (len > 18 && strncasecmp(b, "WWW-Authenticate:", 17) == 0) {
        size_t k = len - 17;
        while (k && (b[17 + k - 1] == '\r' || b[17 + k - 1] == '\n'))
            k--;
        snprintf(a->www, sizeof(a->www), "%.*s", (int)k, b + 17);
    }
    return len;
}

static size_t on_body(char *b, size_t size, size_t n, void *ctx)
{
    struct vk_buf *buf = ctx;
    return vk_buf_add(buf, b, size * n) == 0 ? size * n : 0;
}

/* One request with libcurl directly (for the WWW-Authenticate header). */
static void ask(const char *base, const char *method, const char *path, const char *token,
                struct answer *a)
{
    memset(a, 0, sizeof(*a));
    CURL *h = curl_easy_init();
    assert_non_null(h);
    char url[1024], auth[128];
    snprintf(url, sizeof(url), "%s%s", base, path);
    struct curl_slist *hd = curl_slist_append(NULL, "Content-Type: application/json");
    if (token && *token) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
        hd = curl_slist_append(hd, auth);
    }
    struct vk_buf body = VK_BUF_INIT(1u << 20);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hd);
    if (strcmp(method, "GET") != 0 && strcmp(method, "DELETE") != 0)
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, "{}");
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, a);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 20000L);
    CURLcode rc = curl_easy_perform(h);
    if (rc != CURLE_OK)
        fail_msg("%s %s: %s", method, path, curl_easy_strerror(rc));
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &a->status);
    json_error_t je;
    json_t *o = body.len ? json_loadb(body.data, body.len, 0, &je) : NULL;
    if (o) {
        snprintf(a->code, sizeof(a->code), "%s", js(o, "error") ? js(o, "error") : "");
        snprintf(a->message, sizeof(a->message), "%s", js(o, "message") ? js(o, "message") : "");
        json_decref(o);
    }
    vk_buf_release(&body);
    curl_slist_free_all(hd);
    curl_easy_cleanup(h);
}

static enum vk_auth_role role_named(const char *name)
{
    enum vk_auth_role r = VK_ROLE_NONE;
    struct vk_err err;
    return name && vk_auth_role_parse(name, &r, &err) == 0 ? r : VK_ROLE_NONE;
}

/* A concrete path for a pattern: {org} becomes `default` (the org every caller here is
 * granted in), every other {param} a fresh UUID. */
static void concrete(const char *pattern, char *out, size_t cap)
{
    size_t o = 0;
    for (const char *p = pattern; *p && o + 40 < cap;) {
        if (strncmp(p, "{org}", 5) == 0) {
            o += (size_t)snprintf(out + o, cap - o, "default");
            p += 5;
        } else if (*p == '{') {
            const char *end = strchr(p, '}');
            char id[VK_UUID_LEN];
            assert_int_equal(vk_uuid_v7(id), 0);
            o += (size_t)snprintf(out + o, cap - o, "%s", id);
            p = end ? end + 1 : p + strlen(p);
        } else {
            out[o++] = *p++;
        }
    }
    out[o] = '\0';
}

static void test_matrix(void **state)
{
    struct authz *az = *state;
    json_t *doc = NULL;
    /* The document itself needs a reader. */
    struct answer a;
    ask(az->e->base, "GET", "/api/v1/openapi.json", az->who[4].token, &a);
    assert_int_equal(a.status, 200);
    assert_int_equal(call(az->e->cl, "GET", "/api/v1/openapi.json", NULL, &doc), 401);
    json_decref(doc);
    {
        /* the reader's client */
        struct vk_http_client *cl = env_client(az->e);
        char hv[128];
        snprintf(hv, sizeof(hv), "Bearer %s", az->who[4].token);
        assert_int_equal(vk_http_client_set_header(cl, "Authorization", hv), 0);
        assert_int_equal(call(cl, "GET", "/api/v1/openapi.json", NULL, &doc), 200);
        vk_http_client_free(cl);
    }
    const char *path;
    json_t *item;
    size_t ops = 0, cases = 0;
    int wrong = 0;
    json_object_foreach(json_object_get(doc, "paths"), path, item)
    {
        const char *m;
        json_t *op;
        json_object_foreach(item, m, op)
        {
            const char *rname = js(op, "x-vulcan-role");
            /* `user`: any valid token of a user, whatever its org or role. */
            bool any_user = rname && strcmp(rname, "user") == 0;
            enum vk_auth_role need = any_user ? VK_ROLE_READER : role_named(rname);
            if (need == VK_ROLE_NONE)
                continue; /* anonymous, signature and the worker protocol: other tests */
            if (strcmp(path, "/metrics") == 0)
                continue; /* served only with metrics on */
            char method[8], p[512];
            size_t k = 0;
            for (; m[k] && k + 1 < sizeof(method); k++)
                method[k] = (char)toupper((unsigned char)m[k]);
            method[k] = '\0';
            concrete(path, p, sizeof(p));
            ops++;
            for (size_t i = 0; i < az->n; i++) {
                const struct who *w = &az->who[i];
                int want = w->acts == VK_ROLE_NONE ? w->want_below : w->acts < need ? 403 : 0;
                if (any_user)
                    want = w->want_below == 401 ? 401 : 0;
                ask(az->e->base, method, p, w->token, &a);
                cases++;
                bool gated = a.status == 401 || a.status == 403 ||
                             (a.status == 404 && strcmp(a.message, "not found") == 0);
                bool ok = want == 0 ? !gated : a.status == want;
                if (ok && want == 401)
                    ok = strcmp(a.code, "unauthenticated") == 0 && strstr(a.www, "Bearer");
                if (ok && want == 403)
                    ok = strstr(a.message, vk_auth_role_name(need)) != NULL;
                if (!ok) {
                    print_message("%s %s as %s: %ld %s (%s), want %d\n", method, path, w->name,
                                  a.status, a.code, a.message, want);
                    wrong++;
                }
            }
        }
    }
    print_message("%zu operations x %zu callers = %zu answers\n", ops, az->n, cases);
    assert_true(ops >= 20);
    assert_int_equal(wrong, 0);
    json_decref(doc);
}

/* Why a credential was refused is said, without any of its secret. */
static void test_messages(void **state)
{
    struct authz *az = *state;
    struct answer a;
    ask(az->e->base, "GET", "/api/v1/chains", "", &a);
    assert_int_equal(a.status, 401);
    assert_non_null(strstr(a.message, "needs a token"));
    assert_non_null(strstr(a.www, "realm=\"vulcan\""));
    ask(az->e->base, "GET", "/api/v1/chains", az->who[2].token, &a);
    assert_non_null(strstr(a.message, "token expired"));
    assert_null(strstr(a.message, az->who[2].token + VK_AUTH_PREFIX_LEN));
    assert_non_null(strstr(a.www, "invalid_token"));
    ask(az->e->base, "GET", "/api/v1/chains", az->who[3].token, &a);
    assert_non_null(strstr(a.message, "token revoked"));
    ask(az->e->base, "POST", "/api/v1/chains/x/cancel", az->who[4].token, &a);
    assert_int_equal(a.status, 403);
    assert_non_null(strstr(a.message, "needs the developer role; this token acts as reader"));
    ask(az->e->base, "POST", "/api/v1/repos", az->who[8].token, &a);
    assert_int_equal(a.status, 403);
    assert_non_null(strstr(a.message, "its scopes allow no more"));
    /* Health and the console answer anyone. */
    ask(az->e->base, "GET", "/health", "", &a);
    assert_int_equal(a.status, 200);
}

/* The first attack of the issue: an anonymous POST /api/v1/parse ran a script on a worker.
 * Now it is refused before its body is read, and no chain exists. */
static void test_anonymous_submit_refused(void **state)
{
    struct authz *az = *state;
    json_t *o = NULL;
    const char *kdl = "{\"workflow\":\"version \\\"0.1\\\"\\ntriggers \\\"push\\\"\\nchain {\\n"
                      "machine \\\"default\\\"\\nfragment { run \\\"id\\\" }\\n}\\n\"}";
    assert_int_equal(call(az->e->cl, "POST", "/api/v1/parse", kdl, &o), 401);
    assert_string_equal(js(o, "error"), "unauthenticated");
    json_decref(o);
    struct vk_pool pool;
    vk_pool_init(&pool, 0);
    struct vk_store_chain_filter f = {.limit = 10};
    struct vk_store_chain *chains = NULL;
    size_t n = 9;
    char cursor[VK_STORE_CURSOR_LEN];
    struct vk_err err;
    assert_int_equal(vk_store_chain_list(az->e->store, &f, &pool, &chains, &n, cursor, &err), 0);
    assert_int_equal(n, 0);
    vk_pool_release(&pool);
}

/* Routes of one org ({org}) act in the org of the slug: a caller with a role in `other` is
 * served there and nowhere else; an org without a role for the caller and an org that
 * does not exist answer the same 404, so slugs cannot be probed. */
static void test_org_by_slug(void **state)
{
    struct authz *az = *state;
    const char *outsider = az->who[10].token, *admin = az->who[7].token;
    const char *scoped = az->who[9].token; /* the admin's token restricted to `other` */
    struct answer a, b;
    ask(az->e->base, "GET", "/api/v1/orgs/other/teams", outsider, &a);
    assert_int_equal(a.status, 200);
    ask(az->e->base, "GET", "/api/v1/orgs/other/grants", outsider, &a);
    assert_int_equal(a.status, 200);
    ask(az->e->base, "GET", "/api/v1/orgs/default/teams", outsider, &a);
    assert_int_equal(a.status, 404);
    ask(az->e->base, "GET", "/api/v1/orgs/nosuchorg/teams", outsider, &b);
    assert_int_equal(b.status, 404);
    assert_string_equal(a.message, b.message);
    assert_string_equal(a.code, b.code);
    /* The admin of `default` has no role in `other`; their token restricted to `other`
     * acts there with nothing either (the user holds no grant in it). */
    ask(az->e->base, "GET", "/api/v1/orgs/other/teams", admin, &a);
    assert_int_equal(a.status, 404);
    ask(az->e->base, "GET", "/api/v1/orgs/other/teams", scoped, &a);
    assert_int_equal(a.status, 404);
    char longslug[200];
    memset(longslug, 'a', sizeof(longslug));
    memcpy(longslug, "/api/v1/orgs/", 13);
    snprintf(longslug + 150, sizeof(longslug) - 150, "/teams");
    ask(az->e->base, "GET", longslug, admin, &a);
    assert_int_equal(a.status, 404);
    /* The reader of `default` reads its teams, may not change them. */
    ask(az->e->base, "GET", "/api/v1/orgs/default/teams", az->who[4].token, &a);
    assert_int_equal(a.status, 200);
    ask(az->e->base, "POST", "/api/v1/orgs/default/teams", az->who[4].token, &a);
    assert_int_equal(a.status, 403);
    assert_non_null(strstr(a.message, "needs the admin role"));
}

/* The `user` routes need a valid token and nothing else; the answers are the caller's. */
static void test_user_routes(void **state)
{
    struct authz *az = *state;
    struct answer a;
    ask(az->e->base, "GET", "/api/v1/user", "", &a);
    assert_int_equal(a.status, 401);
    ask(az->e->base, "GET", "/api/v1/user", az->who[3].token, &a);
    assert_int_equal(a.status, 401);
    assert_non_null(strstr(a.message, "token revoked"));
    ask(az->e->base, "GET", "/api/v1/user", az->who[10].token, &a);
    assert_int_equal(a.status, 200);
    ask(az->e->base, "GET", "/api/v1/tokens", az->who[8].token, &a);
    assert_int_equal(a.status, 200);
    /* Not a site admin: no users, no orgs. */
    ask(az->e->base, "POST", "/api/v1/users", az->who[7].token, &a);
    assert_int_equal(a.status, 403);
    assert_non_null(strstr(a.message, "site admin"));
    ask(az->e->base, "POST", "/api/v1/orgs", az->who[7].token, &a);
    assert_int_equal(a.status, 403);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_matrix, az_setup, az_teardown),
        cmocka_unit_test_setup_teardown(test_messages, az_setup, az_teardown),
        cmocka_unit_test_setup_teardown(test_anonymous_submit_refused, az_setup, az_teardown),
        cmocka_unit_test_setup_teardown(test_org_by_slug, az_setup, az_teardown),
        cmocka_unit_test_setup_teardown(test_user_routes, az_setup, az_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
