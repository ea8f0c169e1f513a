/* Unit tests for auth: token form and check digits, hashing, fingerprints, Argon2id
 * passwords, roles and scopes. */
#include "vk_test.h"
#include "vulcan/auth.h"

#include <string.h>

static void test_token_new_and_parse(void **state)
{
    for (int k = 0; k < VK_AUTH_KIND_COUNT; k++) {
        char tok[VK_AUTH_TOKEN_MAX], hash[VK_AUTH_HASH_MAX], again[VK_AUTH_HASH_MAX];
        assert_int_equal(vk_auth_token_new((enum vk_auth_kind)k, tok, hash), 0);
        assert_int_equal(strlen(tok), VK_AUTH_TOKEN_LEN);
        assert_memory_equal(tok, vk_auth_kind_prefix((enum vk_auth_kind)k), VK_AUTH_PREFIX_LEN);
        assert_int_equal(strlen(hash), 64);
        /* The stored hash is the SHA-256 of the whole token. */
        char want[VK_SHA256_HEX_LEN];
        assert_int_equal(vk_sha256_hex(tok, strlen(tok), want), 0);
        assert_string_equal(hash, want);
        enum vk_auth_kind got = VK_AUTH_KIND_COUNT;
        struct vk_err err;
        assert_int_equal(
            vk_auth_token_parse(tok, strlen(tok), VK_AUTH_KIND_COUNT, &got, again, &err), 0);
        assert_int_equal(got, k);
        assert_string_equal(again, hash);
        assert_int_equal(
            vk_auth_token_parse(tok, strlen(tok), (enum vk_auth_kind)k, &got, again, &err), 0);
    }
}

static void test_tokens_differ(void **state)
{
    /* 256 random bits: two tokens never collide, and every body character is used. */
    char seen[256] = {0};
    char prev[VK_AUTH_TOKEN_MAX] = "";
    for (int i = 0; i < 200; i++) {
        char tok[VK_AUTH_TOKEN_MAX], hash[VK_AUTH_HASH_MAX];
        assert_int_equal(vk_auth_token_new(VK_AUTH_PAT, tok, hash), 0);
        assert_string_not_equal(tok, prev);
        for (size_t j = VK_AUTH_PREFIX_LEN; j < VK_AUTH_PREFIX_LEN + VK_AUTH_BODY_LEN; j++)
            seen[(unsigned char)tok[j]] = 1;
        memcpy(prev, tok, sizeof(tok));
    }
    int distinct = 0;
    for (int c = 0; c < 256; c++)
        distinct += seen[c];
    assert_int_equal(distinct, 62);
}

static void expect_refused(const char *tok, enum vk_auth_kind want, const char *msg_part)
{
    char hash[VK_AUTH_HASH_MAX];
    struct vk_err err;
    vk_err_clear(&err);
    int rc = vk_auth_token_parse(tok, strlen(tok), want, NULL, hash, &err);
    assert_int_equal(rc, VK_EAUTH);
    if (!strstr(err.msg, msg_part))
        fail_msg("'%s': message '%s' lacks '%s'", tok, err.msg, msg_part);
    /* A message never quotes the token's secret part. */
    if (strlen(tok) > 12)
        assert_null(strstr(err.msg, tok + 7));
}

static void test_token_refusals(void **state)
{
    char tok[VK_AUTH_TOKEN_MAX], hash[VK_AUTH_HASH_MAX];
    assert_int_equal(vk_auth_token_new(VK_AUTH_PAT, tok, hash), 0);

    expect_refused("", VK_AUTH_KIND_COUNT, "malformed token");
    expect_refused("Bearer", VK_AUTH_KIND_COUNT, "malformed token");
    expect_refused("ghp_0123456789012345678901234567890123456789", VK_AUTH_KIND_COUNT,
                   "malformed token");
    char t[VK_AUTH_TOKEN_MAX + 4];

    memcpy(t, tok, sizeof(tok));
    memcpy(t, "vk_xyz_", 7);
    expect_refused(t, VK_AUTH_KIND_COUNT, "unknown token prefix");

    memcpy(t, tok, sizeof(tok));
    t[VK_AUTH_TOKEN_LEN - 1] = '\0'; /* truncated */
    expect_refused(t, VK_AUTH_KIND_COUNT, "malformed personal access token");

    memcpy(t, tok, sizeof(tok));
    t[20] = '-';
    expect_refused(t, VK_AUTH_KIND_COUNT, "not a letter or digit");

    /* One mistyped character of the body: the check digits catch it. */
    memcpy(t, tok, sizeof(tok));
    t[20] = t[20] == 'a' ? 'b' : 'a';
    expect_refused(t, VK_AUTH_KIND_COUNT, "check digits do not match");

    /* Two characters swapped. */
    memcpy(t, tok, sizeof(tok));
    for (size_t i = 8; i < 40; i++) {
        if (t[i] != t[i + 1]) {
            char c = t[i];
            t[i] = t[i + 1];
            t[i + 1] = c;
            break;
        }
    }
    expect_refused(t, VK_AUTH_KIND_COUNT, "check digits do not match");

    /* A valid token of the wrong kind. */
    expect_refused(tok, VK_AUTH_WORKER, "a personal access token is not accepted here");

    /* A NUL inside: len counts it, so it is malformed, not a shorter token. */
    memcpy(t, tok, sizeof(tok));
    t[30] = '\0';
    assert_int_equal(
        vk_auth_token_parse(t, VK_AUTH_TOKEN_LEN, VK_AUTH_KIND_COUNT, NULL, hash, NULL), VK_EAUTH);
}

static void test_fingerprint(void **state)
{
    char fp[VK_AUTH_FP_MAX];
    vk_auth_fingerprint(VK_AUTH_WORKER,
                        "1a2b3c4d5e6f00000000000000000000000000000000000000000000000000ff", fp);
    assert_string_equal(fp, "vk_wrk_.1a2b3c4d");
    vk_auth_fingerprint(VK_AUTH_JOB, "zz", fp);
    assert_string_equal(fp, "vk_job_.????????");
}

static void test_random_text(void **state)
{
    char a[33], b[33];
    assert_int_equal(vk_auth_random_text(a, 32), 0);
    assert_int_equal(vk_auth_random_text(b, 32), 0);
    assert_int_equal(strlen(a), 32);
    assert_string_not_equal(a, b);
    assert_true(vk_auth_equal(a, a, 32));
    assert_false(vk_auth_equal(a, b, 32));
}

/* A cheap cost so the test stays fast; the defaults are checked separately once. */
static const struct vk_auth_kdf FAST = {.t_cost = 1, .m_cost = 64, .threads = 1};

static void test_password_hash_verify(void **state)
{
    char phc[VK_AUTH_PHC_MAX];
    struct vk_err err;
    assert_int_equal(vk_auth_password_hash("correct horse", 13, &FAST, phc, &err), 0);
    assert_true(strncmp(phc, "$argon2id$v=19$m=64,t=1,p=1$", 28) == 0);
    assert_int_equal(vk_auth_password_verify(phc, "correct horse", 13), 0);
    assert_int_equal(vk_auth_password_verify(phc, "correct horsf", 13), VK_EAUTH);
    assert_int_equal(vk_auth_password_verify(phc, "correct hors", 12), VK_EAUTH);
    assert_int_equal(vk_auth_password_verify(phc, "", 0), VK_EAUTH);
    /* Two hashes of one password differ (random salt) and both verify. */
    char phc2[VK_AUTH_PHC_MAX];
    assert_int_equal(vk_auth_password_hash("correct horse", 13, &FAST, phc2, &err), 0);
    assert_string_not_equal(phc, phc2);
    assert_int_equal(vk_auth_password_verify(phc2, "correct horse", 13), 0);
    /* No account, no password, or a hash of another kind never matches. */
    assert_int_equal(vk_auth_password_verify(NULL, "correct horse", 13), VK_EAUTH);
    assert_int_equal(vk_auth_password_verify("", "correct horse", 13), VK_EAUTH);
    assert_int_equal(vk_auth_password_verify("$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaA",
                                             "correct horse", 13),
                     VK_EAUTH);
    assert_int_equal(vk_auth_password_verify("$argon2id$garbage", "x", 1), VK_EAUTH);
}

static void test_password_bounds(void **state)
{
    char phc[VK_AUTH_PHC_MAX];
    struct vk_err err;
    assert_int_equal(vk_auth_password_hash("short", 5, &FAST, phc, &err), VK_EINVAL);
    assert_non_null(strstr(err.msg, "at least 8"));
    static char big[VK_AUTH_PASSWORD_MAX + 2];
    memset(big, 'a', sizeof(big) - 1);
    assert_int_equal(vk_auth_password_hash(big, VK_AUTH_PASSWORD_MAX + 1, &FAST, phc, &err),
                     VK_EINVAL);
    assert_int_equal(vk_auth_password_hash(big, VK_AUTH_PASSWORD_MAX, &FAST, phc, &err), 0);
    assert_int_equal(vk_auth_password_verify(phc, big, VK_AUTH_PASSWORD_MAX + 1), VK_EAUTH);
    /* A NUL inside the password is part of it. */
    assert_int_equal(vk_auth_password_hash("pass\0word", 9, &FAST, phc, &err), 0);
    assert_int_equal(vk_auth_password_verify(phc, "pass\0word", 9), 0);
    assert_int_equal(vk_auth_password_verify(phc, "pass", 4), VK_EAUTH);
}

static void test_password_defaults(void **state)
{
    char phc[VK_AUTH_PHC_MAX];
    struct vk_err err;
    assert_int_equal(vk_auth_password_hash("a default-cost password", 23, NULL, phc, &err), 0);
    assert_true(strncmp(phc, "$argon2id$v=19$m=19456,t=2,p=1$", 31) == 0);
    assert_int_equal(vk_auth_password_verify(phc, "a default-cost password", 23), 0);
}

static void test_roles(void **state)
{
    enum vk_auth_role r;
    struct vk_err err;
    const char *names[] = {"reader", "developer", "maintainer", "admin"};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(vk_auth_role_parse(names[i], &r, &err), 0);
        assert_int_equal(r, i + 1);
        assert_string_equal(vk_auth_role_name(r), names[i]);
    }
    assert_true(VK_ROLE_READER < VK_ROLE_DEVELOPER && VK_ROLE_DEVELOPER < VK_ROLE_MAINTAINER &&
                VK_ROLE_MAINTAINER < VK_ROLE_ADMIN);
    assert_int_equal(vk_auth_role_parse("Admin", &r, &err), VK_EINVAL);
    assert_non_null(strstr(err.msg, "unknown role 'Admin'"));
    assert_int_equal(vk_auth_role_parse("none", &r, &err), VK_EINVAL);
    assert_int_equal(vk_auth_role_parse(NULL, &r, &err), VK_EINVAL);
}

static void test_scopes(void **state)
{
    unsigned s = 0;
    struct vk_err err;
    char out[VK_AUTH_SCOPES_MAX];
    assert_int_equal(vk_auth_scopes_parse("read", &s, &err), 0);
    assert_int_equal(s, VK_SCOPE_READ);
    assert_int_equal(vk_auth_scopes_parse("admin, read ,write", &s, &err), 0);
    assert_int_equal(s, VK_SCOPE_ALL);
    vk_auth_scopes_format(s, out);
    assert_string_equal(out, "read,write,admin");
    vk_auth_scopes_format(VK_SCOPE_WRITE, out);
    assert_string_equal(out, "write");
    vk_auth_scopes_format(0, out);
    assert_string_equal(out, "");
    assert_int_equal(vk_auth_scopes_parse("read,deploy", &s, &err), VK_EINVAL);
    assert_non_null(strstr(err.msg, "unknown scope 'deploy'"));
    assert_int_equal(vk_auth_scopes_parse("", &s, &err), VK_EINVAL);
    assert_int_equal(vk_auth_scopes_parse("read,", &s, &err), VK_EINVAL);
    assert_int_equal(vk_auth_scopes_parse("read write", &s, &err), VK_EINVAL);
    assert_int_equal(vk_auth_scopes_cap(VK_SCOPE_READ), VK_ROLE_READER);
    assert_int_equal(vk_auth_scopes_cap(VK_SCOPE_READ | VK_SCOPE_WRITE), VK_ROLE_MAINTAINER);
    assert_int_equal(vk_auth_scopes_cap(VK_SCOPE_ADMIN), VK_ROLE_ADMIN);
    assert_int_equal(vk_auth_scopes_cap(0), VK_ROLE_NONE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_token_new_and_parse),
        cmocka_unit_test(test_tokens_differ),
        cmocka_unit_test(test_token_refusals),
        cmocka_unit_test(test_fingerprint),
        cmocka_unit_test(test_random_text),
        cmocka_unit_test(test_password_hash_verify),
        cmocka_unit_test(test_password_bounds),
        cmocka_unit_test(test_password_defaults),
        cmocka_unit_test(test_roles),
        cmocka_unit_test(test_scopes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
