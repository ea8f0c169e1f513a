/*
 * auth tokens: generation, form check, hashing and fingerprints (include/vulcan/auth.h).
 */
#include "vulcan/auth.h"

#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <string.h>

static const char B62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

static const struct {
    const char *prefix, *name;
} KINDS[VK_AUTH_KIND_COUNT] = {
    [VK_AUTH_PAT] = {"vk_pat_", "personal access token"},
    [VK_AUTH_SESSION] = {"vk_ses_", "console session"},
    [VK_AUTH_REGISTRATION] = {"vk_reg_", "worker registration token"},
    [VK_AUTH_WORKER] = {"vk_wrk_", "worker token"},
    [VK_AUTH_JOB] = {"vk_job_", "job token"},
};

const char *vk_auth_kind_prefix(enum vk_auth_kind kind)
{
    return (unsigned)kind < VK_AUTH_KIND_COUNT ? KINDS[kind].prefix : "vk_???_";
}

const char *vk_auth_kind_name(enum vk_auth_kind kind)
{
    return (unsigned)kind < VK_AUTH_KIND_COUNT ? KINDS[kind].name : "token";
}

bool vk_auth_equal(const void *a, const void *b, size_t n)
{
    return CRYPTO_memcmp(a, b, n) == 0;
}

void vk_auth_wipe(void *p, size_t n)
{
    if (p && n)
        OPENSSL_cleanse(p, n);
}

int vk_auth_random_text(char *out, size_t n)
{
    unsigned char r[64];
    size_t have = 0, used = 0;
    /* Rejection sampling: 248 = 4 * 62, so b % 62 is uniform for b < 248. */
    for (size_t i = 0; i < n;) {
        if (used == have) {
            if (RAND_bytes(r, (int)sizeof(r)) != 1)
                return VK_EIO;
            have = sizeof(r);
            used = 0;
        }
        unsigned char b = r[used++];
        if (b < 248)
            out[i++] = B62[b % 62];
    }
    out[n] = '\0';
    OPENSSL_cleanse(r, sizeof(r));
    return 0;
}

/* CRC-32 (IEEE 802.3, reflected), bit by bit: it runs once per token of 50 bytes. */
static uint32_t crc32(const char *p, size_t n)
{
    uint32_t c = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++) {
        c ^= (unsigned char)p[i];
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
    }
    return ~c;
}

static void check_digits(const char *p, size_t n, char out[VK_AUTH_CHECK_LEN])
{
    uint64_t v = crc32(p, n);
    for (int i = VK_AUTH_CHECK_LEN - 1; i >= 0; i--) {
        out[i] = B62[v % 62];
        v /= 62;
    }
}

static int hash_token(const char *token, size_t len, char hash[VK_AUTH_HASH_MAX])
{
    return vk_sha256_hex(token, len, hash);
}

int vk_auth_token_new(enum vk_auth_kind kind, char token[VK_AUTH_TOKEN_MAX],
                      char hash[VK_AUTH_HASH_MAX])
{
    VK_ASSERT((unsigned)kind < VK_AUTH_KIND_COUNT);
    char t[VK_AUTH_TOKEN_MAX];
    memcpy(t, KINDS[kind].prefix, VK_AUTH_PREFIX_LEN);
    if (vk_auth_random_text(t + VK_AUTH_PREFIX_LEN, VK_AUTH_BODY_LEN) != 0)
        return VK_EIO;
    check_digits(t, VK_AUTH_PREFIX_LEN + VK_AUTH_BODY_LEN,
                 t + VK_AUTH_PREFIX_LEN + VK_AUTH_BODY_LEN);
    t[VK_AUTH_TOKEN_LEN] = '\0';
    if (hash_token(t, VK_AUTH_TOKEN_LEN, hash) != 0) {
        OPENSSL_cleanse(t, sizeof(t));
        return VK_EIO;
    }
    memcpy(token, t, sizeof(t));
    OPENSSL_cleanse(t, sizeof(t));
    return 0;
}

static bool is_b62(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

int vk_auth_token_parse(const char *token, size_t len, enum vk_auth_kind want,
                        enum vk_auth_kind *kind, char hash[VK_AUTH_HASH_MAX], struct vk_err *err)
{
    if (!token || len < VK_AUTH_PREFIX_LEN || memcmp(token, "vk_", 3) != 0 || token[6] != '_')
        return vk_err_set(err, VK_EAUTH, "malformed token (a Vulcan token starts with 'vk_')");
    int k = -1;
    for (int i = 0; i < VK_AUTH_KIND_COUNT; i++)
        if (memcmp(token, KINDS[i].prefix, VK_AUTH_PREFIX_LEN) == 0)
            k = i;
    if (k < 0)
        return vk_err_set(err, VK_EAUTH, "unknown token prefix");
    if (len != VK_AUTH_TOKEN_LEN)
        return vk_err_set(err, VK_EAUTH, "malformed %s (it has %d characters)", KINDS[k].name,
                          VK_AUTH_TOKEN_LEN);
    for (size_t i = VK_AUTH_PREFIX_LEN; i < len; i++)
        if (!is_b62(token[i]))
            return vk_err_set(err, VK_EAUTH, "malformed %s (a character is not a letter or digit)",
                              KINDS[k].name);
    char want_check[VK_AUTH_CHECK_LEN];
    check_digits(token, VK_AUTH_PREFIX_LEN + VK_AUTH_BODY_LEN, want_check);
    if (memcmp(want_check, token + VK_AUTH_PREFIX_LEN + VK_AUTH_BODY_LEN, VK_AUTH_CHECK_LEN) != 0)
        return vk_err_set(err, VK_EAUTH, "%s check digits do not match (mistyped or truncated?)",
                          KINDS[k].name);
    if (want != VK_AUTH_KIND_COUNT && (enum vk_auth_kind)k != want)
        return vk_err_set(err, VK_EAUTH, "a %s is not accepted here (a %s is needed)",
                          KINDS[k].name, vk_auth_kind_name(want));
    if (hash_token(token, len, hash) != 0)
        return vk_err_set(err, VK_EINTERNAL, "cannot hash the token");
    if (kind)
        *kind = (enum vk_auth_kind)k;
    return 0;
}

void vk_auth_fingerprint(enum vk_auth_kind kind, const char *hash, char out[VK_AUTH_FP_MAX])
{
    size_t o = 0;
    memcpy(out, vk_auth_kind_prefix(kind), VK_AUTH_PREFIX_LEN);
    o = VK_AUTH_PREFIX_LEN;
    out[o++] = '.';
    bool end = !hash;
    for (size_t i = 0; i < 8; i++) {
        end = end || hash[i] == '\0'; /* a short hash: never read past its end */
        out[o++] = !end && vk_hex_value((unsigned char)hash[i]) >= 0 ? hash[i] : '?';
    }
    out[o] = '\0';
}
