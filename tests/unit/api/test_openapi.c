/*
 * The OpenAPI document stays true: every route the server registers (method
 * and pattern) is described in GET /api/v1/openapi.json, every described
 * operation exists, and the document is well-formed OpenAPI 3 with unique
 * operation ids and only local references that resolve.
 */
#include "api_test.h"

#include <ctype.h>

static json_t *fetch_doc(struct env *e)
{
    json_t *doc = NULL;
    assert_int_equal(call(e->cl, "GET", "/api/v1/openapi.json", NULL, &doc), 200);
    assert_non_null(doc);
    return doc;
}

static void lower(const char *in, char *out, size_t cap)
{
    size_t i = 0;
    for (; in[i] && i + 1 < cap; i++)
        out[i] = (char)tolower((unsigned char)in[i]);
    out[i] = '\0';
}

static void test_every_route_is_documented(void **state)
{
    struct env *e = *state;
    json_t *doc = fetch_doc(e);
    assert_non_null(strstr(js(doc, "openapi"), "3."));
    json_t *paths = json_object_get(doc, "paths");
    size_t n = vk_http_route_count(e->api->http);
    assert_true(n > 20);
    int missing = 0;
    for (size_t i = 0; i < n; i++) {
        const char *method, *pattern;
        assert_int_equal(vk_http_route_at(e->api->http, i, &method, &pattern), 0);
        char m[16];
        lower(method, m, sizeof(m));
        json_t *op = json_object_get(json_object_get(paths, pattern), m);
        if (!json_is_object(op)) {
            print_message("not in web/openapi.json: %s %s\n", method, pattern);
            missing++;
            continue;
        }
        assert_true(json_is_object(json_object_get(op, "responses")));
        assert_non_null(js(op, "summary"));
    }
    assert_int_equal(missing, 0);
    json_decref(doc);
}

/* Operations of the document that the server does not serve (routes of parts this build
 * does not register are listed in `optional`). */
static void test_every_documented_route_exists(void **state)
{
    struct env *e = *state;
    json_t *doc = fetch_doc(e);
    json_t *paths = json_object_get(doc, "paths");
    /* Served by other parts of the server (triggers, webhooks) which may not be built into
     * every configuration: their absence is allowed, but not an unknown path. */
    const char *optional[] = {"/api/v1/repos", "/hooks/", "/metrics"};
    const char *p;
    json_t *item;
    int unknown = 0;
    json_t *opids = json_object();
    json_object_foreach(paths, p, item)
    {
        const char *m;
        json_t *op;
        json_object_foreach(item, m, op)
        {
            const char *opid = js(op, "operationId");
            assert_non_null(opid);
            assert_null(json_object_get(opids, opid)); /* unique */
            json_object_set_new(opids, opid, json_true());
            bool found = false;
            for (size_t i = 0; i < vk_http_route_count(e->api->http) && !found; i++) {
                const char *method, *pattern;
                assert_int_equal(vk_http_route_at(e->api->http, i, &method, &pattern), 0);
                char lm[16];
                lower(method, lm, sizeof(lm));
                found = strcmp(lm, m) == 0 && strcmp(pattern, p) == 0;
            }
            bool opt = false;
            for (size_t i = 0; i < VK_ARRAY_LEN(optional); i++)
                opt |= strncmp(p, optional[i], strlen(optional[i])) == 0;
            if (!found && !opt) {
                print_message("documented but not served: %s %s\n", m, p);
                unknown++;
            }
        }
    }
    json_decref(opids);
    assert_int_equal(unknown, 0);
    json_decref(doc);
}

/* Every "$ref" points at an existing #/components/... entry. */
static void check_refs(json_t *doc, json_t *node)
{
    if (json_is_object(node)) {
        const char *k;
        json_t *v;
        json_object_foreach(node, k, v)
        {
            if (strcmp(k, "$ref") == 0) {
                const char *ref = json_string_value(v);
                assert_non_null(ref);
                assert_int_equal(strncmp(ref, "#/components/", 13), 0);
                char sect[64], name[128];
                assert_int_equal(sscanf(ref + 13, "%63[^/]/%127s", sect, name), 2);
                assert_non_null(json_object_get(
                    json_object_get(json_object_get(doc, "components"), sect), name));
            } else {
                check_refs(doc, v);
            }
        }
    } else if (json_is_array(node)) {
        size_t i;
        json_t *v;
        json_array_foreach(node, i, v)
        {
            check_refs(doc, v);
        }
    }
}

static void test_document_is_consistent(void **state)
{
    struct env *e = *state;
    json_t *doc = fetch_doc(e);
    assert_non_null(js(json_object_get(doc, "info"), "title"));
    check_refs(doc, doc);
    /* Path parameters in a pattern are declared as parameters of each operation. */
    const char *p;
    json_t *item;
    json_object_foreach(json_object_get(doc, "paths"), p, item)
    {
        const char *m;
        json_t *op;
        json_object_foreach(item, m, op)
        {
            for (const char *b = strchr(p, '{'); b; b = strchr(b + 1, '{')) {
                const char *end = strchr(b, '}');
                assert_non_null(end);
                bool declared = false;
                size_t i;
                json_t *par;
                json_array_foreach(json_object_get(op, "parameters"), i, par)
                {
                    const char *nm = js(par, "name");
                    declared |= nm && strlen(nm) == (size_t)(end - b - 1) &&
                                strncmp(nm, b + 1, (size_t)(end - b - 1)) == 0 &&
                                strcmp(js(par, "in"), "path") == 0;
                }
                if (!declared)
                    fail_msg("%s %s: path parameter %.*s is not declared", m, p, (int)(end - b - 1),
                             b + 1);
            }
        }
    }
    json_decref(doc);
}

/*
 * Every operation names the principal it needs (issue 13): a route added without a role
 * fails here. Only what DESIGN §7 lets answer anonymously may be `anonymous` (health, the
 * console's files, /.well-known), only webhooks `signature`, only the worker protocol the
 * worker-protocol tokens.
 */
static bool protocol(const char *path)
{
    static const char *const p[] = {"/api/v1/workers/register", "/api/v1/workers/heartbeat",
                                    "/api/v1/workers/deregister", "/api/v1/workers/{id}/busy",
                                    "/api/v1/id-token"};
    for (size_t i = 0; i < VK_ARRAY_LEN(p); i++)
        if (strcmp(path, p[i]) == 0)
            return true;
    return strncmp(path, "/api/v1/work/", 13) == 0;
}

static void test_every_operation_has_a_role(void **state)
{
    struct env *e = *state;
    json_t *doc = fetch_doc(e);
    static const char *const roles[] = {"anonymous", "signature",  "registration", "worker",
                                        "job",       "reader",     "developer",    "maintainer",
                                        "admin",     "site-admin", "user"};
    json_t *schemes = json_object_get(json_object_get(doc, "components"), "securitySchemes");
    assert_non_null(json_object_get(schemes, "bearerToken"));
    assert_non_null(json_object_get(schemes, "session"));
    const char *path;
    json_t *item;
    int bad = 0;
    json_object_foreach(json_object_get(doc, "paths"), path, item)
    {
        const char *m;
        json_t *op;
        json_object_foreach(item, m, op)
        {
            if (!json_is_object(op) || !json_object_get(op, "responses"))
                continue;
            const char *role = js(op, "x-vulcan-role");
            size_t k = 0;
            while (role && k < VK_ARRAY_LEN(roles) && strcmp(role, roles[k]) != 0)
                k++;
            const char *why = NULL;
            if (!role || k == VK_ARRAY_LEN(roles))
                why = "no x-vulcan-role, or an unknown one";
            else if (strcmp(role, "anonymous") == 0 && strncmp(path, "/health", 7) != 0 &&
                     strncmp(path, "/.well-known/", 13) != 0 && strcmp(path, "/") != 0 &&
                     strcmp(path, "/{file}") != 0 && strcmp(path, "/api/v1/login") != 0 &&
                     strcmp(path, "/api/v1/logout") != 0 && strcmp(path, "/api/v1/session") != 0 &&
                     strcmp(path, "/api/v1/sso/oidc/login") != 0 &&
                     strcmp(path, "/api/v1/sso/oidc/callback") != 0 &&
                     strncmp(path, "/api/v1/sso/saml/", 17) != 0)
                why = "anonymous outside /health, /.well-known, the console's files and its login "
                      "routes";
            else if ((strcmp(role, "signature") == 0) != (strncmp(path, "/hooks/", 7) == 0))
                why = "signature is for webhooks, and webhooks are signature";
            else if ((k >= 2 && k <= 4) != protocol(path))
                why = "registration, worker and job are the worker protocol's only";
            else if (strcmp(role, "user") == 0 && strcmp(path, "/api/v1/user") != 0 &&
                     strncmp(path, "/api/v1/tokens", 14) != 0 &&
                     !(strcmp(path, "/api/v1/orgs") == 0 && strcmp(m, "get") == 0))
                why = "user (no org role needed) is for /api/v1/user, /api/v1/tokens and GET "
                      "/api/v1/orgs only";
            else if (strstr(path, "{org}") && (k < 5 || k > 8))
                why = "a route of one org ({org}) needs a role in it";
            if (why) {
                print_message("%s %s: %s\n", m, path, why);
                bad++;
            }
        }
    }
    assert_int_equal(bad, 0);
    json_decref(doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_every_route_is_documented, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_every_documented_route_exists, env_setup,
                                        env_teardown),
        cmocka_unit_test_setup_teardown(test_document_is_consistent, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_every_operation_has_a_role, env_setup, env_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
