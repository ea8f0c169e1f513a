/*
 * auth id_token: verifying an external provider's OpenID Connect ID token against its JWKS
 * (include/vulcan/auth_oidc.h).
 */
#include "vulcan/auth.h"
#include "vulcan/auth_oidc.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <stdlib.h>
#include <string.h>

#define PART_MAX (24 * 1024) /* a decoded header, payload or signature */
#define RSA_MAX_BYTES 1024   /* an 8192-bit modulus */

long vk_auth_b64url_decode(const char *in, size_t n, unsigned char *out, size_t cap)
{
    while (n && in[n - 1] == '=')
        n--;
    size_t o = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        int v = c >= 'A' && c <= 'Z'   ? c - 'A'
                : c >= 'a' && c <= 'z' ? c - 'a' + 26
                : c >= '0' && c <= '9' ? c - '0' + 52
                : c == '-'             ? 62
                : c == '_'             ? 63
                                       : -1;
        if (v < 0)
            return -1;
        acc = (acc << 6 | (unsigned)v) & 0xffffff;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o >= cap)
                return -1;
            out[o++] = (unsigned char)(acc >> bits & 0xff);
        }
    }
    if (bits >= 6) /* one stray character: not the encoding of whole bytes */
        return -1;
    return (long)o;
}

/* A JSON object decoded from base64url part `p` (`n` bytes); NULL when it is not one. */
static json_t *json_part(const char *p, size_t n)
{
    unsigned char *buf = malloc(PART_MAX);
    if (!buf)
        return NULL;
    long m = vk_auth_b64url_decode(p, n, buf, PART_MAX);
    json_error_t je;
    json_t *o =
        m > 0 ? json_loadb((const char *)buf, (size_t)m, JSON_REJECT_DUPLICATES, &je) : NULL;
    free(buf);
    if (o && !json_is_object(o)) {
        json_decref(o);
        o = NULL;
    }
    return o;
}

/* The bytes of base64url JWK member `name` of `k` into `out`; -1 when absent or bad. */
static long jwk_bytes(const json_t *k, const char *name, unsigned char *out, size_t cap)
{
    const char *s = json_string_value(json_object_get(k, name));
    return s ? vk_auth_b64url_decode(s, strlen(s), out, cap) : -1;
}

static EVP_PKEY *fromdata(const char *type, OSSL_PARAM_BLD *b)
{
    EVP_PKEY *key = NULL;
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(b);
    EVP_PKEY_CTX *ctx = params ? EVP_PKEY_CTX_new_from_name(NULL, type, NULL) : NULL;
    if (!ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) != 1)
        key = NULL;
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return key;
}

/* An RSA public key from JWK n and e; NULL when they are bad or the modulus is short. */
static EVP_PKEY *rsa_key(const json_t *k)
{
    unsigned char n[RSA_MAX_BYTES], e[16];
    long nn = jwk_bytes(k, "n", n, sizeof(n)), ne = jwk_bytes(k, "e", e, sizeof(e));
    if (nn < 256 || ne < 1) /* at least 2048 bits */
        return NULL;
    BIGNUM *bn = BN_bin2bn(n, (int)nn, NULL), *be = BN_bin2bn(e, (int)ne, NULL);
    OSSL_PARAM_BLD *b = OSSL_PARAM_BLD_new();
    EVP_PKEY *key = NULL;
    if (bn && be && b && OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_N, bn) == 1 &&
        OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_E, be) == 1)
        key = fromdata("RSA", b);
    OSSL_PARAM_BLD_free(b);
    BN_free(bn);
    BN_free(be);
    return key;
}

/* A P-256 public key from JWK x and y; NULL when they are bad or not on the curve. */
static EVP_PKEY *ec_key(const json_t *k)
{
    const char *crv = json_string_value(json_object_get(k, "crv"));
    unsigned char pt[65];
    pt[0] = 0x04; /* uncompressed */
    if (!crv || strcmp(crv, "P-256") != 0 || jwk_bytes(k, "x", pt + 1, 32) != 32 ||
        jwk_bytes(k, "y", pt + 33, 32) != 32)
        return NULL;
    OSSL_PARAM_BLD *b = OSSL_PARAM_BLD_new();
    EVP_PKEY *key = NULL;
    if (b && OSSL_PARAM_BLD_push_utf8_string(b, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) == 1 &&
        OSSL_PARAM_BLD_push_octet_string(b, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt)) == 1)
        key = fromdata("EC", b);
    OSSL_PARAM_BLD_free(b);
    return key;
}

/* The key of `jwks` for `alg` and `kid` (NULL: the only key of that type). */
static EVP_PKEY *find_key(const json_t *jwks, bool rsa, const char *kid, struct vk_err *err)
{
    const json_t *keys = json_object_get(jwks, "keys");
    const json_t *found = NULL;
    size_t candidates = 0, i;
    const json_t *k;
    json_array_foreach(keys, i, k)
    {
        const char *kty = json_string_value(json_object_get(k, "kty"));
        const char *kk = json_string_value(json_object_get(k, "kid"));
        const char *use = json_string_value(json_object_get(k, "use"));
        const char *kalg = json_string_value(json_object_get(k, "alg"));
        if (!kty || strcmp(kty, rsa ? "RSA" : "EC") != 0 || (use && strcmp(use, "sig") != 0) ||
            (kalg && strcmp(kalg, rsa ? "RS256" : "ES256") != 0))
            continue;
        if (kid ? kk && strcmp(kk, kid) == 0 : true) {
            found = k;
            candidates++;
        }
    }
    if (!found || (!kid && candidates != 1)) {
        vk_err_set(err, VK_EAUTH,
                   kid ? "the provider's JWKS has no %s key with the token's kid"
                       : "the token names no kid and the provider's JWKS has not exactly one %s "
                         "key",
                   rsa ? "RS256" : "ES256");
        return NULL;
    }
    EVP_PKEY *key = rsa ? rsa_key(found) : ec_key(found);
    if (!key)
        vk_err_set(err, VK_EAUTH, "the provider's %s key is not usable", rsa ? "RSA" : "EC");
    return key;
}

/* Verify `sig` (`sn` bytes) over `data` with `key`; ES256 signatures are r||s. */
static bool sig_ok(EVP_PKEY *key, bool rsa, const char *data, size_t dn, const unsigned char *sig,
                   size_t sn)
{
    unsigned char der[80];
    const unsigned char *s = sig;
    size_t slen = sn;
    if (!rsa) {
        if (sn != 64)
            return false;
        ECDSA_SIG *es = ECDSA_SIG_new();
        BIGNUM *r = BN_bin2bn(sig, 32, NULL), *ss = BN_bin2bn(sig + 32, 32, NULL);
        if (!es || !r || !ss || ECDSA_SIG_set0(es, r, ss) != 1) {
            ECDSA_SIG_free(es);
            BN_free(r);
            BN_free(ss);
            return false;
        }
        unsigned char *p = der;
        int n = i2d_ECDSA_SIG(es, NULL) <= (int)sizeof(der) ? i2d_ECDSA_SIG(es, &p) : -1;
        ECDSA_SIG_free(es);
        if (n <= 0)
            return false;
        s = der;
        slen = (size_t)n;
    }
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    bool ok = md && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key) == 1 &&
              EVP_DigestVerify(md, s, slen, (const unsigned char *)data, dn) == 1;
    EVP_MD_CTX_free(md);
    return ok;
}

static bool str_eq_ct(const char *a, const char *b)
{
    size_t n = strlen(a);
    return n == strlen(b) && vk_auth_equal(a, b, n);
}

/* The audience, azp, time, subject and nonce checks of OIDC Core 3.1.3.7. */
static int check_claims(const json_t *c, const struct vk_auth_id_token_check *chk,
                        struct vk_err *err)
{
    const char *iss = json_string_value(json_object_get(c, "iss"));
    if (!iss || !chk->issuer || strcmp(iss, chk->issuer) != 0)
        return vk_err_set(err, VK_EAUTH, "the ID token's issuer is not the configured provider");
    const json_t *aud = json_object_get(c, "aud");
    bool has = false;
    size_t naud = 0;
    if (json_is_string(aud)) {
        naud = 1;
        has = strcmp(json_string_value(aud), chk->client_id) == 0;
    } else if (json_is_array(aud)) {
        size_t i;
        const json_t *a;
        naud = json_array_size(aud);
        json_array_foreach(aud, i, a) has |=
            json_is_string(a) && strcmp(json_string_value(a), chk->client_id) == 0;
    }
    if (!has)
        return vk_err_set(err, VK_EAUTH, "the ID token's audience is not this client");
    const char *azp = json_string_value(json_object_get(c, "azp"));
    if ((naud > 1 || azp) && (!azp || strcmp(azp, chk->client_id) != 0))
        return vk_err_set(err, VK_EAUTH,
                          "the ID token's authorized party (azp) is not this "
                          "client");
    int64_t leeway = chk->leeway_s > 0 ? chk->leeway_s : VK_AUTH_ID_TOKEN_LEEWAY_S;
    const json_t *exp = json_object_get(c, "exp"), *iat = json_object_get(c, "iat");
    if (!json_is_number(exp) || !json_is_number(iat))
        return vk_err_set(err, VK_EAUTH, "the ID token has no exp or iat");
    if ((int64_t)json_number_value(exp) + leeway <= chk->now_s)
        return vk_err_set(err, VK_EAUTH, "the ID token has expired");
    if ((int64_t)json_number_value(iat) - leeway > chk->now_s)
        return vk_err_set(err, VK_EAUTH, "the ID token is issued in the future");
    const char *sub = json_string_value(json_object_get(c, "sub"));
    if (!sub || !*sub || strlen(sub) > 255)
        return vk_err_set(err, VK_EAUTH, "the ID token has no subject (sub) of 1-255 bytes");
    const char *nonce = json_string_value(json_object_get(c, "nonce"));
    if (!chk->nonce || !nonce || !str_eq_ct(nonce, chk->nonce))
        return vk_err_set(err, VK_EAUTH, "the ID token's nonce is not the one of this login");
    return 0;
}

int vk_auth_id_token_verify(const char *jwt, size_t len, const json_t *jwks,
                            const struct vk_auth_id_token_check *chk, json_t **claims,
                            struct vk_err *err)
{
    *claims = NULL;
    if (len > VK_AUTH_ID_TOKEN_MAX)
        return vk_err_set(err, VK_ETOOBIG, "the ID token is longer than %d bytes",
                          VK_AUTH_ID_TOKEN_MAX);
    if (!chk || !chk->client_id)
        return vk_err_set(err, VK_EINVAL, "no client id to check the ID token against");
    const char *d1 = memchr(jwt, '.', len);
    const char *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - jwt)) : NULL;
    if (!d1 || !d2 || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - jwt)))
        return vk_err_set(err, VK_EAUTH, "malformed ID token (not a compact JWS)");
    json_t *hdr = json_part(jwt, (size_t)(d1 - jwt));
    if (!hdr)
        return vk_err_set(err, VK_EAUTH, "malformed ID token (its header is not JSON)");
    const char *alg = json_string_value(json_object_get(hdr, "alg"));
    const char *kid = json_string_value(json_object_get(hdr, "kid"));
    bool rsa = alg && strcmp(alg, "RS256") == 0;
    if (!alg || (!rsa && strcmp(alg, "ES256") != 0) || json_object_get(hdr, "crit")) {
        json_decref(hdr);
        return vk_err_set(err, VK_EAUTH,
                          "the ID token's algorithm is not allowed (only RS256 and ES256)");
    }
    EVP_PKEY *key = find_key(jwks, rsa, kid, err);
    json_decref(hdr);
    if (!key)
        return VK_EAUTH;
    unsigned char *sig = malloc(PART_MAX);
    long sn = sig ? vk_auth_b64url_decode(d2 + 1, len - (size_t)(d2 + 1 - jwt), sig, PART_MAX) : -1;
    bool ok = sn > 0 && sig_ok(key, rsa, jwt, (size_t)(d2 - jwt), sig, (size_t)sn);
    free(sig);
    EVP_PKEY_free(key);
    if (!ok)
        return vk_err_set(err, VK_EAUTH, "the ID token's signature does not verify");
    json_t *c = json_part(d1 + 1, (size_t)(d2 - d1 - 1));
    if (!c)
        return vk_err_set(err, VK_EAUTH, "malformed ID token (its payload is not JSON)");
    int rc = check_claims(c, chk, err);
    if (rc < 0) {
        json_decref(c);
        return rc;
    }
    *claims = c;
    return 0;
}
