/* Unit tests for auth_oidc: an external provider's ID token verified against its JWKS
 * (RS256 and ES256 keys made here with OpenSSL), and every bad token refused. */
#include "vk_test.h"
#include "vulcan/auth.h"
#include "vulcan/auth_oidc.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ISS "https://idp.example.com"
#define CID "vulcan"
#define NONCE "n0nce-of-this-login"
#define NOW 1700000000LL

static EVP_PKEY *rsa, *ec;
static json_t *jwks;

static char *b64(const void *p, size_t n)
{
    size_t cap = n * 4 / 3 + 4;
    char *o = malloc(cap);
    assert_non_null(o);
    vk_auth_b64url(p, n, o, cap);
    return o;
}

static char *bn_b64(EVP_PKEY *k, const char *param, int pad)
{
    BIGNUM *bn = NULL;
    assert_int_equal(EVP_PKEY_get_bn_param(k, param, &bn), 1);
    unsigned char buf[600];
    int n = pad ? BN_bn2binpad(bn, buf, pad) : BN_bn2bin(bn, buf);
    BN_free(bn);
    return b64(buf, (size_t)n);
}

static int setup(void **state)
{
    (void)state;
    rsa = EVP_RSA_gen(2048);
    ec = EVP_EC_gen("P-256");
    assert_non_null(rsa);
    assert_non_null(ec);
    char *n = bn_b64(rsa, OSSL_PKEY_PARAM_RSA_N, 0), *e = bn_b64(rsa, OSSL_PKEY_PARAM_RSA_E, 0);
    char *x = bn_b64(ec, OSSL_PKEY_PARAM_EC_PUB_X, 32),
         *y = bn_b64(ec, OSSL_PKEY_PARAM_EC_PUB_Y, 32);
    jwks = json_pack("{s:[{s:s, s:s, s:s, s:s, s:s}, {s:s, s:s, s:s, s:s, s:s}]}", "keys", "kty",
                     "RSA", "kid", "r1", "use", "sig", "n", n, "e", e, "kty", "EC", "kid", "e1",
                     "crv", "P-256", "x", x, "y", y);
    assert_non_null(jwks);
    free(n);
    free(e);
    free(x);
    free(y);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
    json_decref(jwks);
    return 0;
}

/* A compact JWS of `header` and `claims` (both JSON text) signed with `key` (NULL: an
 * empty signature); ES256 signatures are converted from DER to r||s. Owned. */
static char *sign(const char *header, const char *claims, EVP_PKEY *key)
{
    char *h = b64(header, strlen(header)), *c = b64(claims, strlen(claims));
    size_t cap = strlen(h) + strlen(c) + 1200;
    char *out = malloc(cap);
    assert_non_null(out);
    snprintf(out, cap, "%s.%s", h, c);
    free(h);
    free(c);
    unsigned char sig[600];
    size_t sn = 0;
    if (key) {
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        sn = sizeof(sig);
        assert_int_equal(EVP_DigestSignInit(md, NULL, EVP_sha256(), NULL, key), 1);
        assert_int_equal(EVP_DigestSign(md, sig, &sn, (const unsigned char *)out, strlen(out)), 1);
        EVP_MD_CTX_free(md);
        if (key == ec) {
            const unsigned char *p = sig;
            ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)sn);
            assert_non_null(es);
            BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, 32);
            BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + 32, 32);
            ECDSA_SIG_free(es);
            sn = 64;
        }
    }
    char *s = b64(sig, sn);
    strcat(out, ".");
    strcat(out, s);
    free(s);
    return out;
}

static char *claims_text(const char *iss, const char *aud_json, const char *azp, long long exp,
                         long long iat, const char *nonce)
{
    static char bufs[16][1024]; /* the last 16 stay valid (a table of cases) */
    static unsigned next;
    char *buf = bufs[next++ % 16];
    size_t cap = sizeof(bufs[0]);
    int n = snprintf(buf, cap,
                     "{\"iss\":\"%s\",\"sub\":\"user-42\",\"aud\":%s,\"exp\":%lld,\"iat\":%lld,"
                     "\"nonce\":\"%s\",\"preferred_username\":\"alice\",\"groups\":[\"devs\"]",
                     iss, aud_json, exp, iat, nonce);
    if (azp)
        n += snprintf(buf + n, cap - (size_t)n, ",\"azp\":\"%s\"", azp);
    snprintf(buf + n, cap - (size_t)n, "}");
    return buf;
}

static const char *good_claims(void)
{
    return claims_text(ISS, "\"" CID "\"", NULL, NOW + 300, NOW - 5, NONCE);
}

/* Verify `jwt`; returns the code and leaves the message in *msg. */
static int verify(const char *jwt, char msg[256])
{
    struct vk_auth_id_token_check chk = {
        .issuer = ISS, .client_id = CID, .nonce = NONCE, .now_s = NOW};
    json_t *claims = NULL;
    struct vk_err err;
    vk_err_clear(&err);
    int rc = vk_auth_id_token_verify(jwt, strlen(jwt), jwks, &chk, &claims, &err);
    snprintf(msg, 256, "%s", err.msg);
    if (rc == 0) {
        assert_non_null(claims);
        assert_string_equal(json_string_value(json_object_get(claims, "sub")), "user-42");
    } else {
        assert_null(claims);
    }
    json_decref(claims);
    return rc;
}

static void expect_refused(const char *jwt, const char *why)
{
    char msg[256];
    assert_int_equal(verify(jwt, msg), VK_EAUTH);
    if (!strstr(msg, why))
        fail_msg("'%s' does not say '%s'", msg, why);
}

static void test_good_rs256_and_es256(void **state)
{
    (void)state;
    char msg[256];
    char *t = sign("{\"alg\":\"RS256\",\"kid\":\"r1\"}", good_claims(), rsa);
    assert_int_equal(verify(t, msg), 0);
    free(t);
    t = sign("{\"alg\":\"ES256\",\"kid\":\"e1\",\"typ\":\"JWT\"}", good_claims(), ec);
    assert_int_equal(verify(t, msg), 0);
    free(t);
    /* Without a kid: the only key of the algorithm's type. */
    t = sign("{\"alg\":\"ES256\"}", good_claims(), ec);
    assert_int_equal(verify(t, msg), 0);
    free(t);
    /* Several audiences with azp naming this client; a little clock skew. */
    t = sign("{\"alg\":\"RS256\",\"kid\":\"r1\"}",
             claims_text(ISS, "[\"other\",\"" CID "\"]", CID, NOW - 30, NOW + 30, NONCE), rsa);
    assert_int_equal(verify(t, msg), 0);
    free(t);
}

static void test_bad_signature(void **state)
{
    (void)state;
    char *t = sign("{\"alg\":\"RS256\",\"kid\":\"r1\"}", good_claims(), rsa);
    char *last = strrchr(t, '.');
    last[10] = last[10] == 'A' ? 'B' : 'A';
    expect_refused(t, "signature does not verify");
    free(t);
    /* Signed by a key that is not the provider's. */
    EVP_PKEY *other = EVP_EC_gen("P-256");
    t = sign("{\"alg\":\"ES256\",\"kid\":\"e1\"}", good_claims(), other);
    expect_refused(t, "signature does not verify");
    free(t);
    EVP_PKEY_free(other);
    /* A payload changed after signing. */
    t = sign("{\"alg\":\"ES256\",\"kid\":\"e1\"}", good_claims(), ec);
    char *forged = sign("{\"alg\":\"ES256\",\"kid\":\"e1\"}",
                        claims_text(ISS, "\"" CID "\"", NULL, NOW + 99999, NOW, NONCE), NULL);
    char *d1 = strchr(t, '.'), *d2 = strrchr(t, '.'), *f1 = strchr(forged, '.');
    char *f2 = strrchr(forged, '.');
    char mixed[4096];
    snprintf(mixed, sizeof(mixed), "%.*s%.*s%s", (int)(d1 - t), t, (int)(f2 - f1), f1, d2);
    expect_refused(mixed, "signature does not verify");
    free(t);
    free(forged);
}

static void test_alg_none_and_hs256(void **state)
{
    (void)state;
    char *t = sign("{\"alg\":\"none\"}", good_claims(), NULL);
    expect_refused(t, "algorithm is not allowed");
    free(t);
    t = sign("{\"alg\":\"HS256\",\"kid\":\"r1\"}", good_claims(), rsa);
    expect_refused(t, "algorithm is not allowed");
    free(t);
    t = sign("{\"kid\":\"r1\"}", good_claims(), rsa);
    expect_refused(t, "algorithm is not allowed");
    free(t);
    /* RS256 named, but the kid is the EC key: no RSA key of that kid. */
    t = sign("{\"alg\":\"RS256\",\"kid\":\"e1\"}", good_claims(), rsa);
    expect_refused(t, "no RS256 key");
    free(t);
    t = sign("{\"alg\":\"RS256\",\"kid\":\"unknown\"}", good_claims(), rsa);
    expect_refused(t, "no RS256 key");
    free(t);
}

static void test_claims_refused(void **state)
{
    (void)state;
    const char *hdr = "{\"alg\":\"RS256\",\"kid\":\"r1\"}";
    struct {
        const char *claims;
        const char *why;
    } cases[] = {
        {claims_text(ISS, "\"" CID "\"", NULL, NOW + 300, NOW, "another-nonce"), "nonce"},
        {claims_text(ISS, "\"someone-else\"", NULL, NOW + 300, NOW, NONCE), "audience"},
        {claims_text(ISS, "[\"a\",\"b\"]", NULL, NOW + 300, NOW, NONCE), "audience"},
        {claims_text(ISS, "[\"other\",\"" CID "\"]", NULL, NOW + 300, NOW, NONCE), "azp"},
        {claims_text(ISS, "[\"other\",\"" CID "\"]", "other", NOW + 300, NOW, NONCE), "azp"},
        {claims_text(ISS, "\"" CID "\"", NULL, NOW - 61, NOW - 600, NONCE), "expired"},
        {claims_text(ISS, "\"" CID "\"", NULL, NOW + 900, NOW + 300, NONCE), "future"},
        {claims_text("https://evil.example.com", "\"" CID "\"", NULL, NOW + 300, NOW, NONCE),
         "issuer"},
        {"{\"iss\":\"" ISS "\",\"aud\":\"" CID "\",\"exp\":1800000000,\"iat\":1700000000,"
         "\"nonce\":\"" NONCE "\"}",
         "subject"},
        {"{\"iss\":\"" ISS "\",\"sub\":\"x\",\"aud\":\"" CID "\",\"nonce\":\"" NONCE "\"}",
         "no exp"},
    };
    for (size_t i = 0; i < VK_ARRAY_LEN(cases); i++) {
        char *t = sign(hdr, cases[i].claims, rsa);
        expect_refused(t, cases[i].why);
        free(t);
    }
}

static void test_malformed(void **state)
{
    (void)state;
    expect_refused("", "malformed");
    expect_refused("abc", "malformed");
    expect_refused("a.b.c.d", "malformed");
    expect_refused("!!!.e30.", "malformed");
    expect_refused("e30.e30.", "algorithm"); /* {} header */
    char *big = malloc(VK_AUTH_ID_TOKEN_MAX + 2);
    memset(big, 'A', VK_AUTH_ID_TOKEN_MAX + 1);
    big[VK_AUTH_ID_TOKEN_MAX + 1] = '\0';
    char msg[256];
    assert_int_equal(verify(big, msg), VK_ETOOBIG);
    free(big);
}

static void test_b64url_decode(void **state)
{
    (void)state;
    unsigned char out[16];
    assert_int_equal(vk_auth_b64url_decode("aGk", 3, out, sizeof(out)), 2);
    assert_memory_equal(out, "hi", 2);
    assert_int_equal(vk_auth_b64url_decode("aGk=", 4, out, sizeof(out)), 2);
    assert_int_equal(vk_auth_b64url_decode("a", 1, out, sizeof(out)), -1);
    assert_int_equal(vk_auth_b64url_decode("a+b/", 4, out, sizeof(out)), -1);
    assert_int_equal(vk_auth_b64url_decode("AAAAAAAA", 8, out, 2), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_rs256_and_es256),
        cmocka_unit_test(test_bad_signature),
        cmocka_unit_test(test_alg_none_and_hs256),
        cmocka_unit_test(test_claims_refused),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_b64url_decode),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
