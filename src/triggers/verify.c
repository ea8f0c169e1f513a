/*
 * verify.c — webhook signatures (HMAC-SHA256 over the raw body, or GitLab's
 * shared token), compared in constant time, and the header lookup shared by the
 * module.
 */
#include "triggers_int.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>
#include <strings.h>

const char *vk_triggers_header_kv(void *ctx, const char *name)
{
    const struct vk_triggers_headers *h = ctx;
    for (size_t i = 0; h && i < h->n; i++)
        if (h->items[i].name && strcasecmp(h->items[i].name, name) == 0)
            return h->items[i].value;
    return NULL;
}

const char *vk_triggers_provider_name(enum vk_triggers_provider p)
{
    switch (p) {
    case VK_TRIGGERS_GITHUB:
        return "github";
    case VK_TRIGGERS_GITLAB:
        return "gitlab";
    case VK_TRIGGERS_GITEA:
        return "gitea";
    case VK_TRIGGERS_BITBUCKET:
        return "bitbucket";
    case VK_TRIGGERS_GENERIC:
        return "generic";
    }
    return "unknown";
}

int vk_triggers_provider_parse(const char *name, enum vk_triggers_provider *out)
{
    static const enum vk_triggers_provider all[] = {VK_TRIGGERS_GITHUB, VK_TRIGGERS_GITLAB,
                                                    VK_TRIGGERS_GITEA, VK_TRIGGERS_BITBUCKET,
                                                    VK_TRIGGERS_GENERIC};
    for (size_t i = 0; name && i < VK_ARRAY_LEN(all); i++) {
        if (strcmp(name, vk_triggers_provider_name(all[i])) == 0) {
            *out = all[i];
            return 0;
        }
    }
    return VK_EINVAL;
}

const char *vk_triggers_kind_name(enum vk_triggers_kind k)
{
    switch (k) {
    case VK_TRIGGERS_EV_PUSH:
        return "push";
    case VK_TRIGGERS_EV_TAG:
        return "tag";
    case VK_TRIGGERS_EV_PULL_REQUEST:
        return "pull_request";
    case VK_TRIGGERS_EV_PING:
        return "ping";
    case VK_TRIGGERS_EV_OTHER:
        break;
    }
    return "other";
}

/* Which header carries the signature and whether it has the "sha256=" prefix. */
static const char *sig_header(enum vk_triggers_provider p, bool *prefixed)
{
    *prefixed = true;
    switch (p) {
    case VK_TRIGGERS_GITHUB:
        return "X-Hub-Signature-256";
    case VK_TRIGGERS_GITEA:
        *prefixed = false;
        return "X-Gitea-Signature";
    case VK_TRIGGERS_BITBUCKET:
        return "X-Hub-Signature";
    case VK_TRIGGERS_GITLAB:
        *prefixed = false;
        return "X-Gitlab-Token";
    case VK_TRIGGERS_GENERIC:
        return "X-Vulcan-Signature";
    }
    return NULL;
}

static int hmac256(const char *secret, const char *body, size_t len, unsigned char md[32])
{
    unsigned int mdlen = 0;
    if (!HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)body, len, md,
              &mdlen) ||
        mdlen != 32)
        return VK_EINTERNAL;
    return 0;
}

/*
 * GitLab sends the secret itself. Comparing SHA-256 digests of both sides
 * keeps the comparison constant-time even when the lengths differ.
 */
static int verify_token(const char *given, const char *secret, struct vk_err *err)
{
    unsigned char a[EVP_MAX_MD_SIZE], b[EVP_MAX_MD_SIZE];
    unsigned int na = 0, nb = 0;
    if (EVP_Digest(given, strlen(given), a, &na, EVP_sha256(), NULL) != 1 ||
        EVP_Digest(secret, strlen(secret), b, &nb, EVP_sha256(), NULL) != 1)
        return vk_err_set(err, VK_EPERM, "cannot compute the token digest");
    if (CRYPTO_memcmp(a, b, 32) != 0)
        return vk_err_set(err, VK_EPERM, "wrong webhook token in 'X-Gitlab-Token'");
    return 0;
}

int vk_triggers_hook_verify(enum vk_triggers_provider provider, vk_triggers_header_fn *header,
                            void *ctx, const char *body, size_t len, const char *secret,
                            struct vk_err *err)
{
    bool prefixed;
    const char *name = sig_header(provider, &prefixed);
    if (!name)
        return vk_err_set(err, VK_EPERM, "unknown webhook provider");
    if (!secret || !*secret)
        return vk_err_set(err, VK_EPERM, "no webhook secret configured for this repository");
    if (!body && len)
        return vk_err_set(err, VK_EPERM, "no request body");
    const char *sig = header ? header(ctx, name) : NULL;
    if (!sig || !*sig)
        return vk_err_set(err, VK_EPERM, "missing signature header '%s'", name);
    if (provider == VK_TRIGGERS_GITLAB)
        return verify_token(sig, secret, err);

    if (prefixed) {
        if (strncmp(sig, "sha256=", 7) != 0)
            return vk_err_set(err, VK_EPERM, "signature in '%s' must start with 'sha256='", name);
        sig += 7;
    }
    unsigned char want[32], got[32];
    if (strlen(sig) != 64 || vk_hex_decode(sig, 64, got, VK_HEX_ANY_CASE) != 0)
        return vk_err_set(err, VK_EPERM, "malformed signature in '%s': expected 64 hex digits",
                          name);
    if (hmac256(secret, body ? body : "", len, want) < 0)
        return vk_err_set(err, VK_EPERM, "cannot compute the signature");
    if (CRYPTO_memcmp(want, got, 32) != 0)
        return vk_err_set(err, VK_EPERM, "wrong signature in '%s'", name);
    return 0;
}

int vk_triggers_hook_sign(enum vk_triggers_provider provider, const char *body, size_t len,
                          const char *secret, char *out, size_t outsz)
{
    bool prefixed;
    if (!sig_header(provider, &prefixed) || !secret || !*secret)
        return VK_EINVAL;
    if (provider == VK_TRIGGERS_GITLAB) {
        size_t n = strlen(secret);
        if (n + 1 > outsz)
            return VK_ETOOBIG;
        memcpy(out, secret, n + 1);
        return 0;
    }
    unsigned char md[32];
    if (hmac256(secret, body ? body : "", len, md) < 0)
        return VK_EINTERNAL;
    size_t need = (prefixed ? 7 : 0) + 64 + 1;
    if (need > outsz)
        return VK_ETOOBIG;
    if (prefixed)
        memcpy(out, "sha256=", 7);
    vk_hex_encode(md, 32, out + (prefixed ? 7 : 0));
    return 0;
}
