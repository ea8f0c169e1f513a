/*
 * auth_oidc: checking an OpenID Connect ID token from an external identity provider
 * (docs/security.md "Single sign-on (OpenID Connect)").
 *
 * The relying-party side of SSO: a compact JWS signed by the provider is verified against
 * the provider's JWKS with OpenSSL, and its claims are checked. Only RS256 and ES256 are
 * accepted (never "none", never HS*: a shared-secret algorithm would let anyone who knows
 * the public key forge tokens). The key is chosen by the header's `kid` (or, without one,
 * the only key of the algorithm's type).
 *
 * Thread-safety: reentrant; no state.
 */
#ifndef VULCAN_AUTH_OIDC_H
#define VULCAN_AUTH_OIDC_H

#include "vulcan/util.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define VK_AUTH_ID_TOKEN_MAX (32 * 1024) /**< longest ID token accepted (bytes) */
#define VK_AUTH_ID_TOKEN_LEEWAY_S 60     /**< clock skew allowed on exp and iat */

/** What an ID token must say. Every string is borrowed. */
struct vk_auth_id_token_check {
    const char *issuer;    /**< `iss` must equal it exactly */
    const char *client_id; /**< in `aud`; `azp` must equal it when `aud` has several */
    const char *nonce;     /**< `nonce` must equal it (constant-time) */
    int64_t now_s;         /**< the time now, seconds since the epoch */
    int64_t leeway_s;      /**< allowed skew; 0: VK_AUTH_ID_TOKEN_LEEWAY_S */
};

/**
 * Verify ID token `jwt` (`len` bytes, borrowed) against `jwks` (a JWK set object
 * {"keys": [...]}, borrowed) and `check`. On success *claims is the payload object, owned
 * by the caller (json_decref). Errors, each VK_EAUTH with a message saying which check
 * failed (never quoting the token): malformed token, algorithm not allowed, no key for the
 * kid, bad signature, wrong issuer, wrong audience, wrong azp, expired, issued in the
 * future, missing sub, wrong nonce. VK_ETOOBIG above VK_AUTH_ID_TOKEN_MAX, VK_ENOMEM.
 */
int vk_auth_id_token_verify(const char *jwt, size_t len, const json_t *jwks,
                            const struct vk_auth_id_token_check *check, json_t **claims,
                            struct vk_err *err) VK_MUST_CHECK;

/**
 * Decode base64url (with or without padding) `in` (`n` bytes) into `out` (`cap` bytes).
 * Returns the decoded length, or -1 for a character outside the alphabet or no room.
 */
long vk_auth_b64url_decode(const char *in, size_t n, unsigned char *out, size_t cap);

#endif
