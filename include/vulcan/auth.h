/*
 * auth: the credentials, roles and scopes of Vulcan's trust layer (docs/security.md).
 *
 * This module holds what every part that checks a principal shares and that needs no
 * database: the format of tokens, their hashing, Argon2id password hashes, the role
 * order and the token scopes. Where credentials are stored and how a request is matched
 * to a principal is in the store and the API.
 *
 * Tokens. Every credential is `<prefix><body><check>`: a fixed prefix naming its kind
 * (`vk_pat_` personal access token, `vk_ses_` console session, `vk_reg_` worker
 * registration, `vk_wrk_` worker, `vk_job_` job), a body of 43 random base62 characters
 * (256 bits from OpenSSL's generator) and 6 base62 characters of a CRC-32 of prefix and
 * body. The prefix lets secret scanners spot a leaked token; the check lets the server
 * refuse a mistyped token without a database lookup. Only the SHA-256 of the whole token
 * (lowercase hex) is ever stored; a token is found by that hash, so comparing the secret
 * is the database's exact-match lookup on a value an attacker cannot choose. The
 * *fingerprint* (prefix plus the first 8 hex digits of the hash) is what logs, lists and
 * errors show: it names a token without revealing any of its secret.
 *
 * Passwords are Argon2id (libargon2) in the PHC string format, with a per-hash random
 * salt; verification is constant-time inside libargon2.
 *
 * Thread-safety: every function is reentrant; there is no state.
 */
#ifndef VULCAN_AUTH_H
#define VULCAN_AUTH_H

#include "vulcan/util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------- Tokens */

/** The kinds of credential, each with its own token prefix. */
enum vk_auth_kind {
    VK_AUTH_PAT = 0,          /**< `vk_pat_`: a user's personal access token */
    VK_AUTH_SESSION = 1,      /**< `vk_ses_`: a console session (the cookie's value) */
    VK_AUTH_REGISTRATION = 2, /**< `vk_reg_`: lets a worker register in an org */
    VK_AUTH_WORKER = 3,       /**< `vk_wrk_`: a registered worker's own token */
    VK_AUTH_JOB = 4,          /**< `vk_job_`: one claimed attempt of one fragment */
    VK_AUTH_KIND_COUNT
};

#define VK_AUTH_PREFIX_LEN 7 /* "vk_pat_" */
#define VK_AUTH_BODY_LEN 43  /* 256 bits */
#define VK_AUTH_CHECK_LEN 6  /* CRC-32 */
#define VK_AUTH_TOKEN_LEN (VK_AUTH_PREFIX_LEN + VK_AUTH_BODY_LEN + VK_AUTH_CHECK_LEN) /* 56 */
#define VK_AUTH_TOKEN_MAX (VK_AUTH_TOKEN_LEN + 1)   /**< buffer size with the NUL */
#define VK_AUTH_HASH_MAX 65                         /**< SHA-256 hex with the NUL */
#define VK_AUTH_FP_MAX (VK_AUTH_PREFIX_LEN + 8 + 2) /**< "vk_pat_" "…" 8 hex, NUL */

/** The prefix of `kind` ("vk_pat_"); a static string. */
const char *vk_auth_kind_prefix(enum vk_auth_kind kind);

/** A short lowercase name of `kind` ("personal access token"); a static string. */
const char *vk_auth_kind_name(enum vk_auth_kind kind);

/**
 * Make a new token of `kind` into `token` and its stored hash into `hash`.
 * Returns 0, or VK_EIO when the random generator fails (nothing is written then).
 */
int vk_auth_token_new(enum vk_auth_kind kind, char token[VK_AUTH_TOKEN_MAX],
                      char hash[VK_AUTH_HASH_MAX]) VK_MUST_CHECK;

/**
 * Check the form of `token` (`len` bytes, borrowed; not NUL-terminated necessarily) and,
 * when it is well-formed, return its kind in *kind and its stored hash in `hash`.
 * Errors (VK_EAUTH, with a message that says which without quoting the token):
 * "malformed token" (length, characters), "unknown token prefix", "token check digits do
 * not match (mistyped or truncated?)". When `want` is not VK_AUTH_KIND_COUNT a token of
 * another kind is refused as "a <kind name> is not accepted here".
 */
int vk_auth_token_parse(const char *token, size_t len, enum vk_auth_kind want,
                        enum vk_auth_kind *kind, char hash[VK_AUTH_HASH_MAX],
                        struct vk_err *err) VK_MUST_CHECK;

/** Write the fingerprint of a token of `kind` whose hash is `hash` (borrowed; NULL or
 *  shorter than 8 digits gives '?' for the missing ones): "vk_pat_.1a2b3c4d". */
void vk_auth_fingerprint(enum vk_auth_kind kind, const char *hash, char out[VK_AUTH_FP_MAX]);

/**
 * Fill `out` with `n` random base62 characters and a NUL (`out` has n + 1 bytes): CSRF
 * tokens, OAuth `state`, `nonce` and PKCE verifiers. Returns 0 or VK_EIO.
 */
int vk_auth_random_text(char *out, size_t n) VK_MUST_CHECK;

/** Constant-time equality of two byte strings of the same length `n`. */
bool vk_auth_equal(const void *a, const void *b, size_t n);

/** Overwrite `n` bytes at `p` (may be NULL) with zeros in a way the compiler keeps: a
 *  token or password read into memory is wiped once it is no longer needed. */
void vk_auth_wipe(void *p, size_t n);

/* ---------------------------------------------------------------- Passwords */

#define VK_AUTH_PHC_MAX 128       /**< an encoded Argon2id hash with the NUL */
#define VK_AUTH_PASSWORD_MIN 8    /**< shortest password accepted for a new hash */
#define VK_AUTH_PASSWORD_MAX 1024 /**< longest password accepted (bytes) */

/** Argon2id cost. The defaults (vk_auth_kdf_default) follow OWASP's 2024 advice. */
struct vk_auth_kdf {
    uint32_t t_cost;  /**< passes */
    uint32_t m_cost;  /**< memory in KiB */
    uint32_t threads; /**< lanes */
};

/** t=2, m=19 MiB, 1 lane. */
struct vk_auth_kdf vk_auth_kdf_default(void);

/**
 * Hash `password` (`len` bytes, borrowed) into the PHC string `out`. `kdf` may be NULL for
 * the defaults. Errors: VK_EINVAL "password too short (at least 8 characters)" or "too
 * long", VK_EIO when the random generator fails, VK_ENOMEM, VK_EINTERNAL for other
 * libargon2 failures.
 */
int vk_auth_password_hash(const char *password, size_t len, const struct vk_auth_kdf *kdf,
                          char out[VK_AUTH_PHC_MAX], struct vk_err *err) VK_MUST_CHECK;

/**
 * Verify `password` against the PHC string `phc` (borrowed). Returns 0 when it matches,
 * VK_EAUTH when it does not (or `phc` is NULL, empty or not an Argon2id hash: an account
 * without a password never matches). The time taken does not depend on where the
 * password differs. Pass `phc` NULL for an unknown login: the same work is done against a
 * fixed hash so that the answer's timing does not say whether the login exists.
 */
int vk_auth_password_verify(const char *phc, const char *password, size_t len) VK_MUST_CHECK;

/* ---------------------------------------------------------------- Roles and scopes */

/** The four roles, in order: each may do what the ones below it may. */
enum vk_auth_role {
    VK_ROLE_NONE = 0,       /**< no grant: the resource does not exist for this caller */
    VK_ROLE_READER = 1,     /**< see chains, fragments, logs, workers, repositories */
    VK_ROLE_DEVELOPER = 2,  /**< + submit, trigger, cancel, rerun */
    VK_ROLE_MAINTAINER = 3, /**< + repositories, schedules, secrets, environments */
    VK_ROLE_ADMIN = 4       /**< + members, teams, grants, registration tokens, settings */
};

/** "reader" … "admin" ("none" for VK_ROLE_NONE); a static string. */
const char *vk_auth_role_name(enum vk_auth_role role);

/** Parse a role name (exact, lowercase). Returns 0, or VK_EINVAL naming the four roles. */
int vk_auth_role_parse(const char *name, enum vk_auth_role *out, struct vk_err *err) VK_MUST_CHECK;

/** Token scopes (a bit set). A token's role is capped by its scopes. */
enum vk_auth_scope {
    VK_SCOPE_READ = 1,  /**< act as at most a reader */
    VK_SCOPE_WRITE = 2, /**< at most a maintainer */
    VK_SCOPE_ADMIN = 4  /**< up to admin (and site-admin routes for a site admin) */
};

#define VK_SCOPE_ALL (VK_SCOPE_READ | VK_SCOPE_WRITE | VK_SCOPE_ADMIN)
#define VK_AUTH_SCOPES_MAX 20 /**< "read,write,admin" with the NUL */

/**
 * Parse a comma-separated scope list ("read,write"; spaces around names allowed) into
 * *out. Errors: VK_EINVAL for an empty list or an unknown name (named, with the three
 * valid ones).
 */
int vk_auth_scopes_parse(const char *text, unsigned *out, struct vk_err *err) VK_MUST_CHECK;

/** Format `scopes` as "read,write,admin" (in that order) into `out`. */
void vk_auth_scopes_format(unsigned scopes, char out[VK_AUTH_SCOPES_MAX]);

/** The highest role a credential with `scopes` may act with (VK_ROLE_NONE for none). */
enum vk_auth_role vk_auth_scopes_cap(unsigned scopes);

/* ---------------------------------------------------------------- Job identity (JWT) */

/*
 * The job OIDC issuer's signing key: one ES256 (P-256) private key in a PEM file of mode
 * 0600, and compact JWS (RFC 7515) signed with it. The key id (`kid`) is the RFC 7638
 * thumbprint of the public key, so every replica holding the same file names it alike.
 * Thread-safety: a loaded signer is read-only; vk_auth_jwt_sign may run on many threads.
 */
struct vk_auth_signer;

#define VK_AUTH_JWT_PAYLOAD_MAX (16 * 1024)
/** Appended to the key file's path: the key before the last rotation, still published. */
#define VK_AUTH_SIGNER_PREVIOUS ".previous"

/**
 * Load the key in `path`; with `create` make the file first when it does not exist (mode
 * 0600, O_EXCL: when several replicas start at once one key wins and all load it). On
 * success *out is owned by the caller (vk_auth_signer_free). Errors: VK_ENOTFOUND (no
 * file, `create` false), VK_EPERM (the file is readable by group or others), VK_EINVAL
 * (not a P-256 private key in PEM), VK_ETOOBIG, VK_EIO, VK_ENOMEM.
 */
int vk_auth_signer_load(const char *path, bool create, struct vk_auth_signer **out,
                        struct vk_err *err) VK_MUST_CHECK;

/** Free a signer. Accepts NULL. */
void vk_auth_signer_free(struct vk_auth_signer *s);

/** The key id (43 base64url characters); borrowed from `s`. */
const char *vk_auth_signer_kid(const struct vk_auth_signer *s);

/** The public key as a JWK (JSON object text with kty, crv, x, y, kid, alg, use); borrowed. */
const char *vk_auth_signer_jwk(const struct vk_auth_signer *s);

/**
 * Sign the JSON object text `payload` (`len` bytes, at most VK_AUTH_JWT_PAYLOAD_MAX) as a
 * JWT with header {"alg":"ES256","typ":"JWT","kid":...}. *out is owned by the caller
 * (free()). Errors: VK_ETOOBIG, VK_ENOMEM, VK_EINTERNAL.
 */
int vk_auth_jwt_sign(const struct vk_auth_signer *s, const char *payload, size_t len, char **out,
                     struct vk_err *err) VK_MUST_CHECK;

/** Base64url without padding of `n` bytes into `out` (`cap` bytes with the NUL); returns
 *  the length written, 0 (and "" when cap > 0) when it does not fit. */
size_t vk_auth_b64url(const void *data, size_t n, char *out, size_t cap);

#endif
