/*
 * store_audit — the rows of the audit log (DESIGN §9, docs/audit.md). Part of the store
 * module, with its conventions (ids are UUID text; times ms; strings of returned structs are
 * borrowed from the caller's pool).
 *
 * Each org has its own hash chain: records numbered 1, 2, … (`seq`) per org, each holding
 * the previous record's hash. The store does not hash or sign: vk_store_audit_append() asks
 * the caller (the audit module) to seal each record once its place in the chain is known,
 * and to sign a checkpoint when one is due, inside the one transaction that appends them.
 * The store refuses UPDATE and DELETE of audit rows (triggers on both backends), so a
 * record is changed only by someone who can also drop those triggers; `vulcan audit verify`
 * then names it.
 */
#ifndef VULCAN_STORE_AUDIT_H
#define VULCAN_STORE_AUDIT_H

#include "vulcan/store.h"

#define VK_STORE_AUDIT_HASH_LEN 65 /**< SHA-256 in hex and a NUL */
#define VK_STORE_AUDIT_MAX_BATCH 512
#define VK_STORE_AUDIT_MAX_LIST 1000

/** One audit record. */
struct vk_store_audit_rec {
    char tenant_id[VK_UUID_LEN]; /**< the org whose chain holds it */
    int64_t seq;                 /**< 1, 2, … within the org; set by append */
    int64_t at;                  /**< ms since the epoch */
    const char *actor;   /**< "user:alice", "token:ID", "worker:ID", "anonymous", "system" */
    const char *source;  /**< the client address, or NULL */
    const char *action;  /**< "repo.create", "auth.login_failed", … */
    const char *target;  /**< what it acted on (a path, a name), or NULL */
    const char *outcome; /**< "success", "denied", "unauthenticated", "failure" */
    const char *details; /**< a JSON object (never a secret or a body), or NULL */
    const char *request_id, *trace_id;       /**< or NULL */
    char prev_hash[VK_STORE_AUDIT_HASH_LEN]; /**< set by append: the previous record's hash */
    char hash[VK_STORE_AUDIT_HASH_LEN];      /**< set by the seal callback */
};

/** A signed checkpoint: the chain's head hash at `seq`, signed with the audit key `key_id`. */
struct vk_store_audit_checkpoint {
    char tenant_id[VK_UUID_LEN];
    int64_t seq, at;
    char hash[VK_STORE_AUDIT_HASH_LEN];
    const char *key_id;    /**< the signing key's id (hex) */
    const char *signature; /**< base64 */
};

/** Fill rec->hash from its fields and rec->prev_hash. 0, or an error that aborts the append. */
typedef int vk_store_audit_seal_fn(void *ctx, struct vk_store_audit_rec *rec, struct vk_err *err);
/** Sign `cp` (fields but key_id/signature set): set those two, allocated in `pool`. */
typedef int vk_store_audit_sign_fn(void *ctx, struct vk_store_audit_checkpoint *cp,
                                   struct vk_pool *pool, struct vk_err *err);

/** When append signs a checkpoint: after `every` records of an org, or `after_ms` after the
 *  org's last checkpoint (0: that rule off). */
struct vk_store_audit_policy {
    int64_t every;
    int64_t after_ms;
};

/**
 * Append `n` records (at most VK_STORE_AUDIT_MAX_BATCH, any orgs) in one transaction: each
 * gets its org's next seq and prev_hash, then `seal` fills its hash; when the policy says a
 * checkpoint is due after a record, `sign` signs one (NULL `sign`: never). Orgs' appends are
 * serialized across replicas (PostgreSQL: a transaction lock per org). All or nothing.
 * *checkpoints (may be NULL) gets how many were signed.
 */
int vk_store_audit_append(struct vk_store *s, struct vk_store_audit_rec *recs, size_t n,
                          vk_store_audit_seal_fn *seal, vk_store_audit_sign_fn *sign, void *ctx,
                          const struct vk_store_audit_policy *policy, size_t *checkpoints,
                          struct vk_err *err) VK_MUST_CHECK;

/** Sign a checkpoint of each org's head that has records after its last checkpoint. */
int vk_store_audit_checkpoint_all(struct vk_store *s, vk_store_audit_sign_fn *sign, void *ctx,
                                  size_t *checkpoints, struct vk_err *err) VK_MUST_CHECK;

/** What vk_store_audit_list() returns: all given filters must hold. */
struct vk_store_audit_filter {
    const char *actor, *action, *target; /**< exact; an action ending in '.' is a prefix */
    int64_t since, until;                /**< `at` in [since, until); 0: unbounded */
    int64_t after_seq;                   /**< seq > after_seq (paging, ascending) */
    int64_t before_seq;                  /**< seq < before_seq (paging, descending); 0: none */
    bool newest_first;
    size_t limit; /**< at most VK_STORE_AUDIT_MAX_LIST; 0: that */
};

/** An org's records (`tenant_id`), in seq order (or newest first). */
int vk_store_audit_list(struct vk_store *s, const char *tenant_id,
                        const struct vk_store_audit_filter *f, struct vk_pool *pool,
                        struct vk_store_audit_rec **out, size_t *n,
                        struct vk_err *err) VK_MUST_CHECK;

/** An org's checkpoints with seq > after_seq, ascending, at most `limit` (≤ MAX_LIST). */
int vk_store_audit_checkpoints(struct vk_store *s, const char *tenant_id, int64_t after_seq,
                               size_t limit, struct vk_pool *pool,
                               struct vk_store_audit_checkpoint **out, size_t *n,
                               struct vk_err *err) VK_MUST_CHECK;

/** The orgs that have audit records or checkpoints (ids, at most 10000). */
int vk_store_audit_orgs(struct vk_store *s, struct vk_pool *pool, const char ***ids, size_t *n,
                        struct vk_err *err) VK_MUST_CHECK;

#endif /* VULCAN_STORE_AUDIT_H */
