/*
 * Identity in the store (schema version 6, DESIGN §7): orgs, users, teams with parents,
 * grants and the role they add up to, credentials and why one is refused, login-failure
 * windows. Run against SQLite and PostgreSQL (pg-test.sh).
 */
#include "store/store_int.h"
#include "store_test.h"
#include "vulcan/store_identity.h"

static int setup(void **state)
{
    return fx_setup("vk_ti", state);
}

static void make_user(struct fx *f, const char *login, struct vk_store_user *u)
{
    memset(u, 0, sizeof(*u));
    u->login = login;
    struct vk_err err = {0};
    if (vk_store_user_create(f->s, u, &err))
        fail_msg("user_create %s: %s", login, err.msg);
}

static void make_org(struct fx *f, const char *slug, struct vk_store_org *o)
{
    memset(o, 0, sizeof(*o));
    o->slug = slug;
    struct vk_err err = {0};
    if (vk_store_org_create(f->s, o, &err))
        fail_msg("org_create %s: %s", slug, err.msg);
}

static enum vk_auth_role role(struct fx *f, const char *user, const char *org, const char *repo)
{
    enum vk_auth_role r = VK_ROLE_ADMIN;
    struct vk_err err = {0};
    if (vk_store_role_of(f->s, user, org, repo, &r, &err))
        fail_msg("role_of: %s", err.msg);
    return r;
}

static void grant(struct fx *f, const char *org, const char *user, const char *team,
                  const char *repo, enum vk_auth_role r)
{
    struct vk_store_grant g;
    memset(&g, 0, sizeof(g));
    snprintf(g.org_id, sizeof(g.org_id), "%s", org);
    snprintf(g.user_id, sizeof(g.user_id), "%s", user ? user : "");
    snprintf(g.team_id, sizeof(g.team_id), "%s", team ? team : "");
    snprintf(g.repository_id, sizeof(g.repository_id), "%s", repo ? repo : "");
    g.role = r;
    struct vk_err err = {0};
    if (vk_store_grant_create(f->s, &g, &err))
        fail_msg("grant_create: %s", err.msg);
}

static void test_orgs_and_users(void **state)
{
    struct fx *f = *state;
    struct vk_err err = {0};
    struct vk_store_org o, got;
    /* The default tenant is an org. */
    assert_int_equal(vk_store_org_find(f->s, "default", &f->pool, &got, &err), 0);
    assert_string_equal(got.id, f->tenant);
    assert_false(got.sso_only);
    make_org(f, "acme", &o);
    assert_int_equal(vk_store_org_get(f->s, o.id, &f->pool, &got, &err), 0);
    assert_string_equal(got.slug, "acme");
    assert_false(got.sso_only);
    /* sso_only is set and cleared per org (docs/security.md "SSO-only orgs"). */
    assert_int_equal(vk_store_org_set_sso_only(f->s, o.id, true, &err), 0);
    assert_int_equal(vk_store_org_get(f->s, o.id, &f->pool, &got, &err), 0);
    assert_true(got.sso_only);
    assert_int_equal(vk_store_org_find(f->s, "default", &f->pool, &got, &err), 0);
    assert_false(got.sso_only);
    assert_int_equal(vk_store_org_set_sso_only(f->s, o.id, false, &err), 0);
    assert_int_equal(vk_store_org_get(f->s, o.id, &f->pool, &got, &err), 0);
    assert_false(got.sso_only);
    assert_int_equal(
        vk_store_org_set_sso_only(f->s, "00000000-0000-0000-0000-000000000000", true, &err),
        VK_ENOTFOUND);
    memset(&got, 0, sizeof(got));
    got.slug = "acme";
    assert_int_equal(vk_store_org_create(f->s, &got, &err), VK_EEXIST);
    assert_non_null(strstr(err.msg, "exists already"));
    const char *bad[] = {
        "",    "Acme", "-x",
        "a b", "a/b",  "x1234567890123456789012345678901234567890123456789012345678901234"};
    for (size_t i = 0; i < VK_ARRAY_LEN(bad); i++) {
        got.slug = bad[i];
        assert_int_equal(vk_store_org_create(f->s, &got, &err), VK_EINVAL);
    }
    assert_int_equal(vk_store_org_find(f->s, "nope", &f->pool, &got, &err), VK_ENOTFOUND);

    bool any = true;
    assert_int_equal(vk_store_user_any(f->s, &any, &err), 0);
    assert_false(any);
    struct vk_store_user u, gu;
    make_user(f, "alice", &u);
    assert_int_equal(vk_store_user_any(f->s, &any, &err), 0);
    assert_true(any);
    assert_int_equal(vk_store_user_find(f->s, "alice", &f->pool, &gu, &err), 0);
    assert_string_equal(gu.id, u.id);
    assert_string_equal(gu.source, "local");
    assert_null(gu.password_hash);
    assert_false(gu.site_admin);
    assert_int_equal(vk_store_user_set_password(f->s, u.id, "$argon2id$v=19$x", &err), 0);
    assert_int_equal(vk_store_user_set_disabled(f->s, u.id, true, &err), 0);
    assert_int_equal(vk_store_user_get(f->s, u.id, &f->pool, &gu, &err), 0);
    assert_string_equal(gu.password_hash, "$argon2id$v=19$x");
    assert_true(gu.disabled);
    struct vk_store_user dup = {.login = "alice"};
    assert_int_equal(vk_store_user_create(f->s, &dup, &err), VK_EEXIST);
    struct vk_store_user badu = {.login = "al ice"};
    assert_int_equal(vk_store_user_create(f->s, &badu, &err), VK_EINVAL);
    assert_int_equal(vk_store_user_find(f->s, "bob", &f->pool, &gu, &err), VK_ENOTFOUND);
    assert_int_equal(vk_store_user_set_disabled(f->s, f->tenant, true, &err), VK_ENOTFOUND);
}

static void test_teams_nest_without_cycles(void **state)
{
    struct fx *f = *state;
    struct vk_err err = {0};
    struct vk_store_org other;
    make_org(f, "other", &other);
    char eng[VK_UUID_LEN], be[VK_UUID_LEN], db[VK_UUID_LEN], x[VK_UUID_LEN];
    assert_int_equal(vk_store_team_create(f->s, f->tenant, "eng", NULL, eng, &err), 0);
    assert_int_equal(vk_store_team_create(f->s, f->tenant, "backend", eng, be, &err), 0);
    assert_int_equal(vk_store_team_create(f->s, f->tenant, "db", be, db, &err), 0);
    assert_int_equal(vk_store_team_create(f->s, f->tenant, "eng", NULL, x, &err), VK_EEXIST);
    assert_int_equal(vk_store_team_create(f->s, other.id, "eng", NULL, x, &err), 0);
    assert_int_equal(vk_store_team_create(f->s, other.id, "sub", eng, x, &err), VK_EINVAL);
    assert_non_null(strstr(err.msg, "another org"));
    assert_int_equal(vk_store_team_create(f->s, "no-such-org", "t", NULL, x, &err), VK_EINVAL);
    /* A cycle, directly or through a descendant, is refused. */
    assert_int_equal(vk_store_team_set_parent(f->s, eng, db, &err), VK_EINVAL);
    assert_non_null(strstr(err.msg, "under itself"));
    assert_int_equal(vk_store_team_set_parent(f->s, eng, eng, &err), VK_EINVAL);
    assert_int_equal(vk_store_team_set_parent(f->s, db, eng, &err), 0);
    assert_int_equal(vk_store_team_set_parent(f->s, db, NULL, &err), 0);
    assert_int_equal(vk_store_team_set_parent(f->s, "nope", NULL, &err), VK_ENOTFOUND);
    /* Depth: a chain of VK_STORE_MAX_TEAM_DEPTH teams, then one more is refused. */
    char prev[VK_UUID_LEN], cur[VK_UUID_LEN], name[16];
    memcpy(prev, db, VK_UUID_LEN);
    for (int i = 2; i <= VK_STORE_MAX_TEAM_DEPTH; i++) {
        snprintf(name, sizeof(name), "d%d", i);
        if (vk_store_team_create(f->s, f->tenant, name, prev, cur, &err))
            fail_msg("depth %d: %s", i, err.msg);
        memcpy(prev, cur, VK_UUID_LEN);
    }
    assert_int_equal(vk_store_team_create(f->s, f->tenant, "toodeep", prev, cur, &err), VK_EINVAL);
    assert_non_null(strstr(err.msg, "at most"));
    /* Moving the whole 16-deep chain under another team would exceed it too. */
    assert_int_equal(vk_store_team_set_parent(f->s, db, be, &err), VK_EINVAL);
}

static void test_roles_add_up(void **state)
{
    struct fx *f = *state;
    struct vk_err err = {0};
    struct vk_store_user alice, bob, carol;
    make_user(f, "alice", &alice);
    make_user(f, "bob", &bob);
    make_user(f, "carol", &carol);
    struct vk_store_org other;
    make_org(f, "other", &other);
    struct vk_store_repo r1 = {.url = "https://example.com/one.git"};
    struct vk_store_repo r2 = {.url = "https://example.com/two.git"};
    struct vk_store_repo ro = {.url = "https://example.com/other.git"};
    memcpy(r1.tenant_id, f->tenant, VK_UUID_LEN);
    memcpy(r2.tenant_id, f->tenant, VK_UUID_LEN);
    memcpy(ro.tenant_id, other.id, VK_UUID_LEN);
    assert_int_equal(vk_store_repo_create(f->s, &r1, &err), 0);
    assert_int_equal(vk_store_repo_create(f->s, &r2, &err), 0);
    assert_int_equal(vk_store_repo_create(f->s, &ro, &err), 0);

    assert_int_equal(role(f, alice.id, f->tenant, NULL), VK_ROLE_NONE);
    grant(f, f->tenant, alice.id, NULL, NULL, VK_ROLE_READER);
    assert_int_equal(role(f, alice.id, f->tenant, NULL), VK_ROLE_READER);
    assert_int_equal(role(f, alice.id, f->tenant, r1.id), VK_ROLE_READER);
    assert_int_equal(role(f, alice.id, other.id, NULL), VK_ROLE_NONE);
    /* A repository grant counts on that repository only. */
    grant(f, f->tenant, alice.id, NULL, r1.id, VK_ROLE_MAINTAINER);
    assert_int_equal(role(f, alice.id, f->tenant, r1.id), VK_ROLE_MAINTAINER);
    assert_int_equal(role(f, alice.id, f->tenant, r2.id), VK_ROLE_READER);
    assert_int_equal(role(f, alice.id, f->tenant, NULL), VK_ROLE_READER);

    /* Teams: bob is in db, under backend, under eng; eng is granted developer. */
    char eng[VK_UUID_LEN], be[VK_UUID_LEN], db[VK_UUID_LEN], ot[VK_UUID_LEN];
    assert_int_equal(vk_store_team_create(f->s, f->tenant, "eng", NULL, eng, &err), 0);
    assert_int_equal(vk_store_team_create(f->s, f->tenant, "backend", eng, be, &err), 0);
    assert_int_equal(vk_store_team_create(f->s, f->tenant, "db", be, db, &err), 0);
    assert_int_equal(vk_store_team_create(f->s, other.id, "o", NULL, ot, &err), 0);
    assert_int_equal(vk_store_team_add_member(f->s, db, bob.id, &err), 0);
    assert_int_equal(vk_store_team_add_member(f->s, db, bob.id, &err), 0); /* idempotent */
    assert_int_equal(vk_store_team_add_member(f->s, db, "nope", &err), VK_EINVAL);
    /* Listings: the org's teams by name (not another org's), a team's direct members. */
    struct vk_store_team *tl = NULL;
    size_t nt = 0;
    assert_int_equal(vk_store_team_list(f->s, f->tenant, &f->pool, &tl, &nt, &err), 0);
    assert_int_equal(nt, 3);
    assert_string_equal(tl[0].name, "backend");
    assert_string_equal(tl[0].parent_id, eng);
    assert_string_equal(tl[1].name, "db");
    assert_int_equal(tl[1].members, 1);
    assert_string_equal(tl[2].name, "eng");
    assert_string_equal(tl[2].parent_id, "");
    assert_int_equal(tl[2].members, 0);
    struct vk_store_user *ml = NULL;
    size_t nm = 0;
    assert_int_equal(vk_store_team_members(f->s, db, &f->pool, &ml, &nm, &err), 0);
    assert_int_equal(nm, 1);
    assert_string_equal(ml[0].login, bob.login);
    assert_null(ml[0].password_hash);
    assert_int_equal(vk_store_team_members(f->s, eng, &f->pool, &ml, &nm, &err), 0);
    assert_int_equal(nm, 0);
    assert_int_equal(role(f, bob.id, f->tenant, NULL), VK_ROLE_NONE);
    grant(f, f->tenant, NULL, eng, NULL, VK_ROLE_DEVELOPER);
    assert_int_equal(role(f, bob.id, f->tenant, NULL), VK_ROLE_DEVELOPER);
    assert_int_equal(role(f, bob.id, f->tenant, r2.id), VK_ROLE_DEVELOPER);
    grant(f, f->tenant, NULL, be, r2.id, VK_ROLE_ADMIN);
    assert_int_equal(role(f, bob.id, f->tenant, r2.id), VK_ROLE_ADMIN);
    assert_int_equal(role(f, bob.id, f->tenant, r1.id), VK_ROLE_DEVELOPER);
    assert_int_equal(role(f, carol.id, f->tenant, NULL), VK_ROLE_NONE);
    /* Leaving the team takes it away at once. */
    assert_int_equal(vk_store_team_remove_member(f->s, db, bob.id, &err), 0);
    assert_int_equal(role(f, bob.id, f->tenant, r2.id), VK_ROLE_NONE);
    assert_int_equal(vk_store_team_remove_member(f->s, db, bob.id, &err), VK_ENOTFOUND);

    /* Granting again raises, never lowers, and keeps one row. */
    grant(f, f->tenant, alice.id, NULL, NULL, VK_ROLE_ADMIN);
    grant(f, f->tenant, alice.id, NULL, NULL, VK_ROLE_READER);
    assert_int_equal(role(f, alice.id, f->tenant, NULL), VK_ROLE_ADMIN);
    struct vk_store_grant *gl = NULL;
    size_t n = 0;
    assert_int_equal(vk_store_grant_list(f->s, f->tenant, &f->pool, &gl, &n, &err), 0);
    assert_int_equal(n, 4); /* alice org, alice r1, eng, backend r2 */

    /* Refused grants. */
    struct vk_store_grant g;
    memset(&g, 0, sizeof(g));
    memcpy(g.org_id, f->tenant, VK_UUID_LEN);
    g.role = VK_ROLE_READER;
    assert_int_equal(vk_store_grant_create(f->s, &g, &err), VK_EINVAL); /* nobody */
    memcpy(g.user_id, carol.id, VK_UUID_LEN);
    memcpy(g.team_id, eng, VK_UUID_LEN);
    assert_int_equal(vk_store_grant_create(f->s, &g, &err), VK_EINVAL); /* both */
    memset(g.user_id, 0, sizeof(g.user_id));
    memcpy(g.team_id, ot, VK_UUID_LEN);
    assert_int_equal(vk_store_grant_create(f->s, &g, &err), VK_EINVAL); /* another org's team */
    assert_non_null(strstr(err.msg, "another org"));
    memcpy(g.user_id, carol.id, VK_UUID_LEN);
    memset(g.team_id, 0, sizeof(g.team_id));
    memcpy(g.repository_id, ro.id, VK_UUID_LEN);
    assert_int_equal(vk_store_grant_create(f->s, &g, &err), VK_EINVAL); /* another org's repo */
    memset(g.repository_id, 0, sizeof(g.repository_id));
    g.role = VK_ROLE_NONE;
    assert_int_equal(vk_store_grant_create(f->s, &g, &err), VK_EINVAL);
    assert_int_equal(role(f, carol.id, f->tenant, NULL), VK_ROLE_NONE);

    /* Orgs a user can see: where any grant reaches them. */
    struct vk_store_org *orgs = NULL;
    assert_int_equal(vk_store_org_list(f->s, alice.id, &f->pool, &orgs, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(orgs[0].slug, "default");
    assert_int_equal(vk_store_org_list(f->s, carol.id, &f->pool, &orgs, &n, &err), 0);
    assert_int_equal(n, 0);
    assert_int_equal(vk_store_org_list(f->s, NULL, &f->pool, &orgs, &n, &err), 0);
    assert_int_equal(n, 2);
    /* Deleting a grant, in its org only. */
    assert_int_equal(vk_store_grant_delete(f->s, other.id, gl[0].id, &err), VK_ENOTFOUND);
    assert_int_equal(vk_store_grant_delete(f->s, f->tenant, gl[0].id, &err), 0);
}

static void new_cred(struct fx *f, enum vk_auth_kind kind, struct vk_store_credential *c,
                     char token[VK_AUTH_TOKEN_MAX])
{
    assert_int_equal(vk_auth_token_new(kind, token, c->hash), 0);
    c->kind = kind;
    struct vk_err err = {0};
    if (vk_store_credential_create(f->s, c, &err))
        fail_msg("credential_create: %s", err.msg);
}

static int check(struct fx *f, enum vk_auth_kind kind, const char *hash, int64_t now,
                 struct vk_store_credential *out, struct vk_err *err)
{
    return vk_store_credential_check(f->s, kind, hash, now, &f->pool, out, err);
}

static void test_credentials(void **state)
{
    struct fx *f = *state;
    struct vk_err err = {0};
    struct vk_store_user u;
    make_user(f, "alice", &u);
    int64_t now = vk_time_now_ms();
    char tok[VK_AUTH_TOKEN_MAX];
    struct vk_store_credential pat = {.name = "laptop", .scopes = VK_SCOPE_READ | VK_SCOPE_WRITE};
    memcpy(pat.user_id, u.id, VK_UUID_LEN);
    pat.expires_at = now + 3600 * 1000;
    new_cred(f, VK_AUTH_PAT, &pat, tok);
    struct vk_store_credential got;
    assert_int_equal(check(f, VK_AUTH_PAT, pat.hash, now, &got, &err), 0);
    assert_string_equal(got.id, pat.id);
    assert_string_equal(got.user_id, u.id);
    assert_int_equal(got.scopes, VK_SCOPE_READ | VK_SCOPE_WRITE);
    assert_string_equal(got.name, "laptop");
    assert_int_equal(got.last_used_at, now);
    /* Used again within a minute: no write; a minute later: written. */
    assert_int_equal(check(f, VK_AUTH_PAT, pat.hash, now + 1000, &got, &err), 0);
    assert_int_equal(got.last_used_at, now);
    assert_int_equal(check(f, VK_AUTH_PAT, pat.hash, now + 61000, &got, &err), 0);
    assert_int_equal(got.last_used_at, now + 61000);

    /* Why a credential is refused, each with its own message. */
    assert_int_equal(check(f, VK_AUTH_SESSION, pat.hash, now, &got, &err), VK_EAUTH);
    assert_string_equal(err.msg, "unknown token");
    char other_hash[VK_AUTH_HASH_MAX];
    memcpy(other_hash, pat.hash, sizeof(other_hash));
    other_hash[0] = other_hash[0] == 'a' ? 'b' : 'a';
    assert_int_equal(check(f, VK_AUTH_PAT, other_hash, now, &got, &err), VK_EAUTH);
    assert_string_equal(err.msg, "unknown token");
    assert_int_equal(check(f, VK_AUTH_PAT, "' OR 1=1 --", now, &got, &err), VK_EAUTH);
    assert_int_equal(check(f, VK_AUTH_PAT, pat.hash, pat.expires_at, &got, &err), VK_EAUTH);
    assert_string_equal(err.msg, "token expired");
    assert_int_equal(vk_store_user_set_disabled(f->s, u.id, true, &err), 0);
    assert_int_equal(check(f, VK_AUTH_PAT, pat.hash, now, &got, &err), VK_EAUTH);
    assert_string_equal(err.msg, "the token's user is disabled");
    assert_int_equal(vk_store_user_set_disabled(f->s, u.id, false, &err), 0);
    assert_int_equal(vk_store_credential_revoke(f->s, pat.id, f->tenant, now, &err), VK_ENOTFOUND);
    assert_int_equal(vk_store_credential_revoke(f->s, pat.id, u.id, now, &err), 0);
    assert_int_equal(vk_store_credential_revoke(f->s, pat.id, NULL, now + 5, &err), 0);
    assert_int_equal(check(f, VK_AUTH_PAT, pat.hash, now, &got, &err), VK_EAUTH);
    assert_string_equal(err.msg, "token revoked");

    /* A session dies after its idle time. */
    struct vk_store_credential ses = {.csrf = "csrf-value", .idle_ms = 30 * 60 * 1000};
    memcpy(ses.user_id, u.id, VK_UUID_LEN);
    new_cred(f, VK_AUTH_SESSION, &ses, tok);
    assert_int_equal(check(f, VK_AUTH_SESSION, ses.hash, now + 60000, &got, &err), 0);
    assert_string_equal(got.csrf, "csrf-value");
    assert_int_equal(check(f, VK_AUTH_SESSION, ses.hash, now + 60000 + ses.idle_ms + 1, &got, &err),
                     VK_EAUTH);
    assert_string_equal(err.msg, "session expired after inactivity");

    /* A registration token with two uses. */
    struct vk_store_credential reg = {.groups = "default,linux", .uses_left = 2};
    memcpy(reg.org_id, f->tenant, VK_UUID_LEN);
    new_cred(f, VK_AUTH_REGISTRATION, &reg, tok);
    assert_int_equal(vk_store_registration_use(f->s, reg.id, &err), 0);
    assert_int_equal(vk_store_registration_use(f->s, reg.id, &err), 0);
    assert_int_equal(vk_store_registration_use(f->s, reg.id, &err), VK_EAUTH);
    assert_string_equal(err.msg, "registration token used up");
    assert_int_equal(vk_store_registration_use(f->s, pat.id, &err), VK_ENOTFOUND);
    struct vk_store_credential unl = {.uses_left = -1};
    memcpy(unl.org_id, f->tenant, VK_UUID_LEN);
    new_cred(f, VK_AUTH_REGISTRATION, &unl, tok);
    for (int i = 0; i < 3; i++)
        assert_int_equal(vk_store_registration_use(f->s, unl.id, &err), 0);
    assert_int_equal(check(f, VK_AUTH_REGISTRATION, reg.hash, now, &got, &err), 0);
    assert_string_equal(got.groups, "default,linux");
    assert_int_equal(got.uses_left, 0);

    /* Worker and job tokens: a job token lives while its attempt runs on its worker;
     * both are revoked by fragment and by worker. Real claims of a real fragment. */
    struct vk_store_chain ch = {.source_file = "ci.kdl",
                                .trigger = "manual",
                                .default_machine = "default",
                                .definition = "version \"0.1\""};
    memcpy(ch.tenant_id, f->tenant, VK_UUID_LEN);
    struct vk_store_fragment_spec sp = {.parent = -1, .run_script = "true", .machine = "default"};
    char fids[1][VK_UUID_LEN], wid[VK_UUID_LEN];
    assert_int_equal(vk_store_chain_create(f->s, &ch, &sp, 1, fids, &err), 0);
    const char *fid = fids[0];
    struct vk_store_tx *tx = NULL;
    struct vk_store_fragment_update up = {.set = VK_STORE_SET_STATUS | VK_STORE_SET_READY_AT,
                                          .status = VK_STORE_FRAG_READY,
                                          .ready_at = now};
    assert_int_equal(vk_store_tx_begin(f->s, &tx, &err), 0);
    assert_int_equal(vk_store_tx_fragment_update(tx, fid, &up, &err), 0);
    assert_int_equal(vk_store_tx_commit(tx, &err), 0);
    const char *g[] = {"default"};
    assert_int_equal(vk_store_worker_register(f->s, f->tenant, "w", "1", g, 1, now, wid, &err), 0);
    struct vk_store_work work;
    struct vk_store_credential wrk = {0}, job = {0};
    char jtok[VK_AUTH_TOKEN_MAX];
    assert_int_equal(vk_store_claim_job(f->s, wid, g, 1, now, &job, jtok, &f->pool, &work, &err),
                     0);
    assert_string_equal(job.fragment_id, fid);
    assert_int_equal(job.attempt, 1);
    assert_int_equal(strncmp(jtok, "vk_job_", 7), 0);
    memcpy(wrk.worker_id, wid, VK_UUID_LEN);
    memcpy(wrk.org_id, f->tenant, VK_UUID_LEN);
    new_cred(f, VK_AUTH_WORKER, &wrk, tok);
    assert_int_equal(check(f, VK_AUTH_JOB, job.hash, now, &got, &err), 0);
    assert_int_equal(got.attempt, 1);
    assert_string_equal(got.fragment_id, fid);
    assert_string_equal(got.worker_id, wid);
    assert_string_equal(got.org_id, f->tenant);
    assert_int_equal(got.last_used_at, 0); /* job tokens write nothing when used */
    /* A job token of the right shape that no claim made. */
    struct vk_store_credential other = {0};
    assert_int_equal(vk_auth_token_new(VK_AUTH_JOB, tok, other.hash), 0);
    assert_int_equal(check(f, VK_AUTH_JOB, other.hash, now, &got, &err), VK_EAUTH);
    /* The attempt ends (handed back): its token dies without a credential write; the next
     * claim makes another token, and the first stays refused. */
    assert_int_equal(vk_store_requeue_fragment(f->s, fid, 1, wid, now, &err), 0);
    assert_int_equal(check(f, VK_AUTH_JOB, job.hash, now, &got, &err), VK_EAUTH);
    assert_string_equal(err.msg, "unknown token, or the attempt of this job token has ended");
    struct vk_store_credential job2 = {0};
    assert_int_equal(vk_store_claim_job(f->s, wid, g, 1, now, &job2, jtok, &f->pool, &work, &err),
                     0);
    assert_int_equal(job2.attempt, 2);
    assert_int_equal(check(f, VK_AUTH_JOB, job.hash, now, &got, &err), VK_EAUTH);
    assert_int_equal(check(f, VK_AUTH_JOB, job2.hash, now, &got, &err), 0);
    assert_int_equal(got.attempt, 2);
    /* Revoked by fragment. */
    assert_int_equal(vk_store_credential_revoke_for(f->s, fid, NULL, now, &err), 0);
    assert_int_equal(check(f, VK_AUTH_JOB, job2.hash, now, &got, &err), VK_EAUTH);
    assert_int_equal(check(f, VK_AUTH_WORKER, wrk.hash, now, &got, &err), 0);
    /* Revoked by worker: its own token and its running attempt's. */
    assert_int_equal(vk_store_requeue_fragment(f->s, fid, 2, wid, now, &err), 0);
    struct vk_store_credential job3 = {0};
    assert_int_equal(vk_store_claim_job(f->s, wid, g, 1, now, &job3, jtok, &f->pool, &work, &err),
                     0);
    assert_int_equal(check(f, VK_AUTH_JOB, job3.hash, now, &got, &err), 0);
    assert_int_equal(vk_store_credential_revoke_for(f->s, NULL, wid, now, &err), 0);
    assert_int_equal(check(f, VK_AUTH_WORKER, wrk.hash, now, &got, &err), VK_EAUTH);
    assert_string_equal(err.msg, "token revoked");
    assert_int_equal(check(f, VK_AUTH_JOB, job3.hash, now, &got, &err), VK_EAUTH);

    /* Each kind needs its owner. */
    struct vk_store_credential bad = {0};
    assert_int_equal(vk_auth_token_new(VK_AUTH_PAT, tok, bad.hash), 0);
    const enum vk_auth_kind kinds[] = {VK_AUTH_PAT, VK_AUTH_SESSION, VK_AUTH_REGISTRATION,
                                       VK_AUTH_WORKER, VK_AUTH_JOB};
    for (size_t i = 0; i < VK_ARRAY_LEN(kinds); i++) {
        bad.kind = kinds[i];
        assert_int_equal(vk_store_credential_create(f->s, &bad, &err), VK_EINVAL);
        assert_non_null(strstr(err.msg, " needs "));
    }
    memcpy(bad.user_id, u.id, VK_UUID_LEN);
    bad.kind = VK_AUTH_PAT;
    memcpy(bad.hash, pat.hash, sizeof(bad.hash));
    assert_int_equal(vk_store_credential_create(f->s, &bad, &err), VK_EEXIST);

    /* Listing: the user's tokens newest first, revoked ones marked. */
    struct vk_store_credential *list = NULL;
    size_t n = 0;
    assert_int_equal(
        vk_store_credential_list(f->s, VK_AUTH_PAT, u.id, NULL, &f->pool, &list, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(list[0].revoked_at, now);
    assert_int_equal(vk_store_credential_list(f->s, VK_AUTH_REGISTRATION, NULL, f->tenant, &f->pool,
                                              &list, &n, &err),
                     0);
    assert_int_equal(n, 2);
}

static void test_login_failures(void **state)
{
    struct fx *f = *state;
    struct vk_err err = {0};
    int64_t n = 0, now = 1000000;
    const int64_t win = 15 * 60 * 1000;
    for (int i = 1; i <= 3; i++) {
        assert_int_equal(vk_store_login_failure_add(f->s, "login:alice", now + i, win, &n, &err),
                         0);
        assert_int_equal(n, i);
    }
    assert_int_equal(vk_store_login_failure_count(f->s, "login:alice", now + 10, win, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_int_equal(vk_store_login_failure_count(f->s, "addr:192.0.2.1", now, win, &n, &err), 0);
    assert_int_equal(n, 0);
    /* After the window a new one starts. */
    assert_int_equal(
        vk_store_login_failure_count(f->s, "login:alice", now + win + 1, win, &n, &err), 0);
    assert_int_equal(n, 0);
    assert_int_equal(vk_store_login_failure_add(f->s, "login:alice", now + win + 1, win, &n, &err),
                     0);
    assert_int_equal(n, 1);
    assert_int_equal(vk_store_login_failure_clear(f->s, "login:alice", &err), 0);
    assert_int_equal(
        vk_store_login_failure_count(f->s, "login:alice", now + win + 2, win, &n, &err), 0);
    assert_int_equal(n, 0);
}

/* Migration 8: SSO users are found by (source, subject), which is unique. */
static void test_sso_subject(void **state)
{
    struct fx *f = *state;
    struct vk_err err = {0};
    struct vk_store_user a = {.login = "alice",
                              .email = "alice@example.com",
                              .source = "oidc:https://idp.example.com",
                              .subject = "sub-1"},
                         got;
    assert_int_equal(vk_store_user_create(f->s, &a, &err), 0);
    assert_int_equal(vk_store_user_find_subject(f->s, "oidc:https://idp.example.com", "sub-1",
                                                &f->pool, &got, &err),
                     0);
    assert_string_equal(got.id, a.id);
    assert_string_equal(got.subject, "sub-1");
    assert_string_equal(got.source, "oidc:https://idp.example.com");
    /* Another provider's same subject is another person; a local user has no subject. */
    assert_int_equal(vk_store_user_find_subject(f->s, "oidc:https://other.example.com", "sub-1",
                                                &f->pool, &got, &err),
                     VK_ENOTFOUND);
    struct vk_store_user l;
    make_user(f, "local-bob", &l);
    assert_int_equal(vk_store_user_get(f->s, l.id, &f->pool, &got, &err), 0);
    assert_null(got.subject);
    assert_int_equal(vk_store_user_find_subject(f->s, "local", "", &f->pool, &got, &err),
                     VK_ENOTFOUND);
    struct vk_store_user dup = {
        .login = "alice2", .source = "oidc:https://idp.example.com", .subject = "sub-1"};
    assert_int_not_equal(vk_store_user_create(f->s, &dup, &err), 0);
    struct vk_store_user other = {
        .login = "alice3", .source = "oidc:https://other.example.com", .subject = "sub-1"};
    assert_int_equal(vk_store_user_create(f->s, &other, &err), 0);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    snprintf(tmp_root, sizeof(tmp_root), "%s/vk-store-identity-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmp_root)) {
        perror("mkdtemp");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        T(test_orgs_and_users), T(test_teams_nest_without_cycles),
        T(test_roles_add_up),   T(test_credentials),
        T(test_login_failures), T(test_sso_subject),
    };
    int failed = cmocka_run_group_tests_name(
        is_pg() ? "store_identity_postgres" : "store_identity_sqlite", tests, NULL, NULL);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp_root);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", tmp_root);
    return failed ? 1 : 0;
}
