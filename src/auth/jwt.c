/*
 * auth jwt: the ES256 key of the job OIDC issuer and compact JWS signing
 * (include/vulcan/auth.h, "Job identity").
 */
#include "vulcan/auth.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEY_FILE_MAX (16 * 1024)

struct vk_auth_signer {
    EVP_PKEY *key;
    char kid[44];  /* base64url of the RFC 7638 thumbprint (32 bytes) */
    char jwk[256]; /* the public JWK, JSON */
};

size_t vk_auth_b64url(const void *data, size_t n, char *out, size_t cap)
{
    static const char A[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const unsigned char *p = data;
    size_t need = (n * 4 + 2) / 3;
    if (cap < need + 1) {
        if (cap)
            out[0] = '\0';
        return 0;
    }
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
        out[o++] = A[v >> 18 & 63];
        out[o++] = A[v >> 12 & 63];
        out[o++] = A[v >> 6 & 63];
        out[o++] = A[v & 63];
    }
    if (n - i == 1) {
        unsigned v = (unsigned)p[i] << 16;
        out[o++] = A[v >> 18 & 63];
        out[o++] = A[v >> 12 & 63];
    } else if (n - i == 2) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8;
        out[o++] = A[v >> 18 & 63];
        out[o++] = A[v >> 12 & 63];
        out[o++] = A[v >> 6 & 63];
    }
    out[o] = '\0';
    return o;
}

/* The public coordinates (32 bytes each) of a P-256 key. */
static int coords(EVP_PKEY *k, unsigned char x[32], unsigned char y[32])
{
    BIGNUM *bx = NULL, *by = NULL;
    int ok = EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_X, &bx) == 1 &&
             EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_EC_PUB_Y, &by) == 1 &&
             BN_bn2binpad(bx, x, 32) == 32 && BN_bn2binpad(by, y, 32) == 32;
    BN_free(bx);
    BN_free(by);
    return ok ? 0 : -1;
}

static int describe(struct vk_auth_signer *s, struct vk_err *err)
{
    char cname[32] = "";
    size_t clen = 0;
    if (EVP_PKEY_get_utf8_string_param(s->key, OSSL_PKEY_PARAM_GROUP_NAME, cname, sizeof(cname),
                                       &clen) != 1 ||
        strcmp(cname, "prime256v1") != 0)
        return vk_err_set(err, VK_EINVAL, "the job signing key is not a P-256 (ES256) key");
    unsigned char x[32], y[32];
    if (coords(s->key, x, y) < 0)
        return vk_err_set(err, VK_EINTERNAL, "cannot read the job signing key's public part");
    char bx[48], by[48];
    vk_auth_b64url(x, 32, bx, sizeof(bx));
    vk_auth_b64url(y, 32, by, sizeof(by));
    /* RFC 7638: the thumbprint of the required members in lexicographic order. */
    char canon[160];
    int n = snprintf(canon, sizeof(canon),
                     "{\"crv\":\"P-256\",\"kty\":\"EC\",\"x\":\"%s\",\"y\":\"%s\"}", bx, by);
    unsigned char d[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)canon, (size_t)n, d);
    vk_auth_b64url(d, sizeof(d), s->kid, sizeof(s->kid));
    snprintf(s->jwk, sizeof(s->jwk),
             "{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"%s\",\"y\":\"%s\",\"kid\":\"%s\","
             "\"alg\":\"ES256\",\"use\":\"sig\"}",
             bx, by, s->kid);
    return 0;
}

static int create_key(const char *path, struct vk_err *err)
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    if (!k)
        return vk_err_set(err, VK_EIO, "cannot make a P-256 key");
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        EVP_PKEY_free(k);
        return errno == EEXIST ? 0 : vk_err_errno(err, path); /* another replica won */
    }
    FILE *f = fdopen(fd, "w");
    int ok = f && PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) == 1;
    if (f)
        ok = fclose(f) == 0 && ok;
    else
        close(fd);
    EVP_PKEY_free(k);
    if (!ok) {
        unlink(path);
        return vk_err_set(err, VK_EIO, "cannot write the job signing key to %s", path);
    }
    return 0;
}

int vk_auth_signer_load(const char *path, bool create, struct vk_auth_signer **out,
                        struct vk_err *err)
{
    *out = NULL;
    if (create) {
        int rc = access(path, F_OK) == 0 ? 0 : create_key(path, err);
        if (rc < 0)
            return rc;
    }
    struct stat st;
    if (stat(path, &st) != 0)
        return errno == ENOENT ? vk_err_set(err, VK_ENOTFOUND, "no key file %s", path)
                               : vk_err_errno(err, path);
    if (st.st_size > KEY_FILE_MAX)
        return vk_err_set(err, VK_ETOOBIG, "%s is not a key file (too large)", path);
    if (st.st_mode & 077)
        return vk_err_set(err, VK_EPERM, "%s can be read by other users (mode %03o): chmod 600 it",
                          path, (unsigned)(st.st_mode & 0777));
    FILE *f = fopen(path, "r");
    if (!f)
        return vk_err_errno(err, path);
    EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (!k)
        return vk_err_set(err, VK_EINVAL, "%s holds no private key in PEM form", path);
    struct vk_auth_signer *s = calloc(1, sizeof(*s));
    if (!s) {
        EVP_PKEY_free(k);
        return vk_err_set(err, VK_ENOMEM, "out of memory");
    }
    s->key = k;
    int rc = describe(s, err);
    if (rc < 0) {
        vk_auth_signer_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void vk_auth_signer_free(struct vk_auth_signer *s)
{
    if (!s)
        return;
    EVP_PKEY_free(s->key);
    free(s);
}

const char *vk_auth_signer_kid(const struct vk_auth_signer *s)
{
    return s->kid;
}

const char *vk_auth_signer_jwk(const struct vk_auth_signer *s)
{
    return s->jwk;
}

int vk_auth_jwt_sign(const struct vk_auth_signer *s, const char *payload, size_t len, char **out,
                     struct vk_err *err)
{
    *out = NULL;
    if (len > VK_AUTH_JWT_PAYLOAD_MAX)
        return vk_err_set(err, VK_ETOOBIG, "JWT payload larger than %d bytes",
                          VK_AUTH_JWT_PAYLOAD_MAX);
    char header[128];
    int hn = snprintf(header, sizeof(header), "{\"alg\":\"ES256\",\"typ\":\"JWT\",\"kid\":\"%s\"}",
                      s->kid);
    size_t cap = ((size_t)hn + len) * 4 / 3 + 8 + 90;
    char *jws = malloc(cap);
    if (!jws)
        return vk_err_set(err, VK_ENOMEM, "out of memory");
    size_t o = vk_auth_b64url(header, (size_t)hn, jws, cap);
    jws[o++] = '.';
    o += vk_auth_b64url(payload, len, jws + o, cap - o);
    unsigned char der[80];
    size_t dlen = sizeof(der);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, s->key) == 1 &&
             EVP_DigestSign(ctx, der, &dlen, (const unsigned char *)jws, o) == 1;
    EVP_MD_CTX_free(ctx);
    /* JWS wants r || s, 32 bytes each, not the DER of ECDSA-Sig-Value. */
    const unsigned char *dp = der;
    ECDSA_SIG *sig = ok ? d2i_ECDSA_SIG(NULL, &dp, (long)dlen) : NULL;
    unsigned char rs[64];
    ok = sig && BN_bn2binpad(ECDSA_SIG_get0_r(sig), rs, 32) == 32 &&
         BN_bn2binpad(ECDSA_SIG_get0_s(sig), rs + 32, 32) == 32;
    ECDSA_SIG_free(sig);
    if (!ok) {
        free(jws);
        return vk_err_set(err, VK_EINTERNAL, "signing the JWT failed");
    }
    jws[o++] = '.';
    vk_auth_b64url(rs, sizeof(rs), jws + o, cap - o);
    *out = jws;
    return 0;
}
