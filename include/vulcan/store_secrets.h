/*
 * store_secrets — the rows of the secret store (DESIGN §8, docs/secrets.md). Part of the
 * store module, with its conventions (ids are UUID text, "" none; times ms; strings and
 * blobs of returned structs are borrowed from the caller's pool).
 *
 * The store never sees a value in clear: it keeps what vulcan/secrets.h sealed (the
 * ciphertext, its nonce, the wrapped data key and the key generation) and the key check
 * value of each key generation. Writes are compare-and-set on the secret's version, since
 * the version is bound into the sealed value.
 */
#ifndef VULCAN_STORE_SECRETS_H
#define VULCAN_STORE_SECRETS_H

#include "vulcan/store.h"

#define VK_STORE_MAX_SECRETS 1000 /**< secrets of one scope */

/** One secret row. */
struct vk_store_secret {
    char id[VK_UUID_LEN];
    char tenant_id[VK_UUID_LEN];
    const char *scope;               /**< "org", "repository", "environment" */
    const char *scope_id;            /**< "" for org scope, else the repository's (or
                                      *   environment's) id */
    char repository_id[VK_UUID_LEN]; /**< repository scope: its id, else "" */
    const char *environment;         /**< environment scope: its name; NULL now */
    const char *name;
    bool is_protected;                   /**< only to chains of protected refs */
    const char *provider, *provider_key; /**< a provider-backed secret (then no value) */
    const unsigned char *value;          /**< ciphertext and tag; NULL for a provider secret */
    size_t value_len;
    const unsigned char *nonce; /**< VK_SECRET_NONCE_LEN bytes */
    size_t nonce_len;
    const unsigned char *wrapped_key; /**< VK_SECRET_WRAPPED_LEN bytes */
    size_t wrapped_len;
    int64_t version;                     /**< 1, 2, ...: bound into the sealed value */
    int key_version;                     /**< the key generation that wraps the data key */
    const char *created_by, *updated_by; /**< logins, may be NULL */
    int64_t created_at, updated_at;
};

/** Get one secret by its place. Returns 0, VK_ENOTFOUND, VK_EDB. */
int vk_store_secret_get(struct vk_store *s, const char *tenant_id, const char *scope,
                        const char *scope_id, const char *name, struct vk_pool *pool,
                        struct vk_store_secret *out, struct vk_err *err) VK_MUST_CHECK;

/**
 * Write `sec` (its version is the new one). `expected_version` 0: create (VK_EEXIST when
 * there is one, VK_ETOOBIG past VK_STORE_MAX_SECRETS in the scope); else replace the row
 * whose version is `expected_version` (VK_ECONFLICT when it changed meanwhile, VK_ENOTFOUND
 * when it is gone). created_* are kept on a replace. Fills sec->id on create.
 */
int vk_store_secret_put(struct vk_store *s, struct vk_store_secret *sec, int64_t expected_version,
                        struct vk_err *err) VK_MUST_CHECK;

/** Delete one secret. Returns 0, VK_ENOTFOUND, VK_EDB. */
int vk_store_secret_delete(struct vk_store *s, const char *tenant_id, const char *scope,
                           const char *scope_id, const char *name,
                           struct vk_err *err) VK_MUST_CHECK;

/** The secrets of one scope by name (at most VK_STORE_MAX_SECRETS). */
int vk_store_secret_list(struct vk_store *s, const char *tenant_id, const char *scope,
                         const char *scope_id, struct vk_pool *pool, struct vk_store_secret **out,
                         size_t *n, struct vk_err *err) VK_MUST_CHECK;

/**
 * The secret an attempt of a chain of `tenant_id` / `repository_id` ("" none) gets under
 * `name`: the narrowest scope wins (repository over org). VK_ENOTFOUND when neither has it.
 */
int vk_store_secret_resolve(struct vk_store *s, const char *tenant_id, const char *repository_id,
                            const char *name, struct vk_pool *pool, struct vk_store_secret *out,
                            struct vk_err *err) VK_MUST_CHECK;

/**
 * Check the key in use against the store. With no key generation recorded yet, record
 * `kcv` as generation 1. Else compare it with the newest generation's check value:
 * VK_EPERM when it differs (the wrong key file). *version (may be NULL) gets the generation.
 */
int vk_store_secret_key_check(struct vk_store *s, const unsigned char *kcv, size_t n, int *version,
                              struct vk_err *err) VK_MUST_CHECK;

/**
 * Re-wrap every secret for a new key generation in one transaction: `fn` gets each row
 * with a value and writes its new wrapped key into `out` (VK_SECRET_WRAPPED_LEN bytes);
 * any error from it rolls everything back. Then `new_kcv` is recorded as the next
 * generation. *count (may be NULL) gets the rows re-wrapped.
 */
typedef int vk_store_secret_rewrap_fn(void *ctx, const struct vk_store_secret *sec,
                                      unsigned char *out, struct vk_err *err);
int vk_store_secret_rewrap_all(struct vk_store *s, vk_store_secret_rewrap_fn *fn, void *ctx,
                               const unsigned char *new_kcv, size_t kcv_len, size_t *count,
                               struct vk_err *err) VK_MUST_CHECK;

#endif /* VULCAN_STORE_SECRETS_H */
