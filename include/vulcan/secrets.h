/*
 * secrets — envelope encryption of stored secrets (DESIGN §8, docs/secrets.md).
 *
 * Every value is sealed with AES-256-GCM under a data key of its own (32 random bytes,
 * fresh at every write); the data key is wrapped (AES-256-GCM again) by the key-encryption
 * key (KEK) read from --secrets-key-file. The associated data of both binds the org, the
 * scope, the scope's id (repository or environment), the name and the secret's version,
 * so a row copied to another name, scope or org, or an older version put back, does not
 * open. A key check value (an HMAC of a fixed text under the KEK) lets the server refuse
 * to start with the wrong key file instead of serving secrets it cannot open.
 *
 * Memory: struct vk_secret_key and opened values hold key material: wipe them with
 * vk_secret_key_wipe() / vk_auth_wipe() (vk_secret_open() output is the caller's).
 * Thread-safety: the functions keep no state; a loaded key may be shared read-only.
 */
#ifndef VULCAN_SECRETS_H
#define VULCAN_SECRETS_H

#include "vulcan/util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VK_SECRET_KEY_LEN 32                 /**< bytes of the KEK and of a data key */
#define VK_SECRET_NONCE_LEN 12               /**< AES-GCM nonce */
#define VK_SECRET_TAG_LEN 16                 /**< AES-GCM tag */
#define VK_SECRET_WRAPPED_LEN (12 + 32 + 16) /**< nonce, wrapped data key, tag */
#define VK_SECRET_KCV_LEN 16                 /**< bytes of the key check value */
#define VK_SECRET_MIN_VALUE 6                /**< shorter values cannot be masked safely */
#define VK_SECRET_MAX_VALUE 65536            /**< 64 KiB */
#define VK_SECRET_MAX_NAME 128               /**< bytes of a name */
#define VK_SECRET_MAX_PER_JOB 100            /**< names one fragment may use */

/** The key-encryption key. */
struct vk_secret_key {
    unsigned char kek[VK_SECRET_KEY_LEN];
};

/** Where a secret lives; the scope's id is the repository's (or environment's) id. */
struct vk_secret_where {
    const char *org_id;   /**< the tenant's id */
    const char *scope;    /**< "org", "repository" or "environment" */
    const char *scope_id; /**< "" for org scope */
    const char *name;
    int64_t version; /**< 1 for the first write, +1 at every change */
};

/** A sealed value as stored: `ct` is the ciphertext followed by its tag (n + 16 bytes). */
struct vk_secret_sealed {
    unsigned char nonce[VK_SECRET_NONCE_LEN];
    unsigned char wrapped[VK_SECRET_WRAPPED_LEN];
    unsigned char *ct; /**< owned: vk_mem_free() (or vk_secret_sealed_release()) */
    size_t ct_len;
};

/** `name` is 1..VK_SECRET_MAX_NAME of [A-Z_][A-Z0-9_]*. */
bool vk_secret_name_valid(const char *name);

/**
 * Check a value's size: VK_SECRET_MIN_VALUE..VK_SECRET_MAX_VALUE bytes with no NUL.
 * Returns 0 or VK_EINVAL with a message saying what to do.
 */
int vk_secret_value_check(const void *value, size_t n, struct vk_err *err) VK_MUST_CHECK;

/**
 * Load the KEK from `path`. When the file is absent and `create` is set, make it: 32 bytes
 * from the OpenSSL CSPRNG, mode 0600, never replacing a file made meanwhile. Refuses
 * (VK_EPERM) a file that group or others may read or write, and (VK_EINVAL) one that does
 * not hold exactly 32 bytes; the message says what to do. *created (may be NULL) says
 * whether the file was made now. Returns 0, VK_EPERM, VK_EINVAL, VK_ENOTFOUND, VK_EIO.
 */
int vk_secret_key_load(const char *path, bool create, struct vk_secret_key *out, bool *created,
                       struct vk_err *err) VK_MUST_CHECK;

/** Make a new random key in `out`. Returns 0 or VK_EIO (no randomness). */
int vk_secret_key_generate(struct vk_secret_key *out, struct vk_err *err) VK_MUST_CHECK;

/** Write `k` to a new file `path` (O_EXCL, 0600, fsynced). Returns 0, VK_EEXIST, VK_EIO. */
int vk_secret_key_write(const char *path, const struct vk_secret_key *k,
                        struct vk_err *err) VK_MUST_CHECK;

/** Overwrite a key with zeros. */
void vk_secret_key_wipe(struct vk_secret_key *k);

/** The key check value of `k` (HMAC-SHA256 of a fixed text, first 16 bytes). */
void vk_secret_key_check_value(const struct vk_secret_key *k, unsigned char out[VK_SECRET_KCV_LEN]);

/**
 * Seal `value`/`n` for `where` under `kek`: a fresh data key and nonces. On success `out`
 * owns its ciphertext. Returns 0, VK_EINVAL (bad name or value size), VK_ENOMEM, VK_EIO.
 */
int vk_secret_seal(const struct vk_secret_key *kek, const struct vk_secret_where *where,
                   const void *value, size_t n, struct vk_secret_sealed *out,
                   struct vk_err *err) VK_MUST_CHECK;

/**
 * Open a sealed value: *out is a new NUL-terminated buffer of *n bytes (the caller wipes
 * and frees it). VK_EPERM when the tag does not verify: another key, or a row that was
 * changed or moved to another org, scope, name or version.
 */
int vk_secret_open(const struct vk_secret_key *kek, const struct vk_secret_where *where,
                   const unsigned char nonce[VK_SECRET_NONCE_LEN],
                   const unsigned char wrapped[VK_SECRET_WRAPPED_LEN], const unsigned char *ct,
                   size_t ct_len, char **out, size_t *n, struct vk_err *err) VK_MUST_CHECK;

/**
 * Re-wrap a data key from `old_kek` to `new_kek` (key rotation); the value itself is not
 * touched. VK_EPERM when `old_kek` does not open it.
 */
int vk_secret_rewrap(const struct vk_secret_key *old_kek, const struct vk_secret_key *new_kek,
                     const struct vk_secret_where *where,
                     const unsigned char wrapped[VK_SECRET_WRAPPED_LEN],
                     unsigned char out[VK_SECRET_WRAPPED_LEN], struct vk_err *err) VK_MUST_CHECK;

/** Free a sealed value's ciphertext. Accepts NULL. */
void vk_secret_sealed_release(struct vk_secret_sealed *s);

#endif /* VULCAN_SECRETS_H */
