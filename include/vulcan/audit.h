/*
 * audit — the tamper-evident audit log (DESIGN §9, docs/audit.md).
 *
 * Records: each org has a hash chain of records (vulcan/store_audit.h). A record's hash is
 * the SHA-256, in hex, of its canonical JSON: the object
 *   {"action","actor","at","details","org","outcome","prev_hash","request_id","seq",
 *    "source","target","trace_id","v":1}
 * with keys sorted, no spaces, non-ASCII escaped (jansson's JSON_COMPACT | JSON_SORT_KEYS |
 * JSON_ENSURE_ASCII), absent strings as null, `details` the record's details object (or
 * null). `prev_hash` is the previous record's hash, 64 zeros for the first (seq 1).
 *
 * Checkpoints: every N records (default 1000) or T after the last (default 10 minutes), and
 * when the recorder stops, the head's hash is signed with the server's audit key (Ed25519):
 * the signed message is "vulcan-audit-checkpoint-v1\n<org>\n<seq>\n<at>\n<hash>". Someone
 * who can write the database can recompute a consistent chain, but not the signature.
 *
 * Keys: the private key is a PEM file (PKCS#8) made 0600 on first start; every public key
 * ever used is appended to a keyring file (PEM, SubjectPublicKeyInfo) next to it, which is
 * all `vulcan audit verify` needs. A key's id is the first 16 hex digits of the SHA-256 of
 * its raw 32-byte public key.
 *
 * Thread-safety: a loaded key and keyring are read-only; vk_audit_record() may be called
 * from any thread (it copies, never blocks on the store, and drops when its queue is full).
 */
#ifndef VULCAN_AUDIT_H
#define VULCAN_AUDIT_H

#include "vulcan/store_audit.h"
#include "vulcan/util.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VK_AUDIT_KEY_ID_LEN 17 /**< 16 hex digits and a NUL */

/* ---------------------------------------------------------------- Hashing */

/** Fill rec->hash from its fields and rec->prev_hash. VK_EINVAL when `details` is not a JSON
 *  object; VK_ENOMEM. */
int vk_audit_seal(struct vk_store_audit_rec *rec, struct vk_err *err) VK_MUST_CHECK;

/** The record as JSON (owned): the canonical fields plus "hash" and "time" (RFC 3339). */
json_t *vk_audit_rec_json(const struct vk_store_audit_rec *rec);

/** A checkpoint as JSON (owned): {org, seq, at, hash, key_id, signature}. */
json_t *vk_audit_checkpoint_json(const struct vk_store_audit_checkpoint *cp);

/** Read a record from JSON `o` (as vk_audit_rec_json wrote it); strings into `pool`.
 *  VK_EINVAL naming the field that is missing or of the wrong type. */
int vk_audit_rec_from_json(json_t *o, struct vk_pool *pool, struct vk_store_audit_rec *rec,
                           struct vk_err *err) VK_MUST_CHECK;
int vk_audit_checkpoint_from_json(json_t *o, struct vk_pool *pool,
                                  struct vk_store_audit_checkpoint *cp,
                                  struct vk_err *err) VK_MUST_CHECK;

/* ---------------------------------------------------------------- Keys */

struct vk_audit_key;     /**< a private signing key */
struct vk_audit_keyring; /**< public keys that verify checkpoints */

/**
 * Load the private key at `path`; with `create`, make one (mode 0600, never over an
 * existing file) when there is none. Then make sure its public key is in the keyring file
 * `keyring_path` (NULL: do not touch one), appending it when missing (made 0600, like every file of
 * the data directory: public keys are no secret, copy the file where auditors keep it). Errors:
 * VK_ENOTFOUND (no file and not `create`), VK_EPERM (mode not 0600 or 0400), VK_EINVAL (not an
 * Ed25519 PEM key), VK_EIO.
 */
int vk_audit_key_load(const char *path, bool create, const char *keyring_path,
                      struct vk_audit_key **out, struct vk_err *err) VK_MUST_CHECK;
void vk_audit_key_free(struct vk_audit_key *k);
/** The key's id; borrowed. */
const char *vk_audit_key_id(const struct vk_audit_key *k);

/**
 * Replace the private key at `path` by a new one (written beside it and renamed over, 0600)
 * and append its public key to `keyring_path`, so checkpoints of the old key still verify.
 * `new_id` (may be NULL) gets the new key's id.
 */
int vk_audit_key_rotate(const char *path, const char *keyring_path,
                        char new_id[VK_AUDIT_KEY_ID_LEN], struct vk_err *err) VK_MUST_CHECK;

/** Sign checkpoint `cp` (fills key_id and signature, in `pool`). */
int vk_audit_sign(const struct vk_audit_key *k, struct vk_store_audit_checkpoint *cp,
                  struct vk_pool *pool, struct vk_err *err) VK_MUST_CHECK;

/** vk_audit_seal() and vk_audit_sign() as the callbacks of vk_store_audit_append() (the
 *  sealer's `ctx` is unused; the signer's is the key, a `const struct vk_audit_key *`). */
int vk_audit_seal_cb(void *ctx, struct vk_store_audit_rec *rec, struct vk_err *err);
int vk_audit_sign_cb(void *key, struct vk_store_audit_checkpoint *cp, struct vk_pool *pool,
                     struct vk_err *err);

/** Load every public key of a keyring file. VK_ENOTFOUND, VK_EINVAL (no key in it), VK_EIO. */
int vk_audit_keyring_load(const char *path, struct vk_audit_keyring **out,
                          struct vk_err *err) VK_MUST_CHECK;
void vk_audit_keyring_free(struct vk_audit_keyring *r);
/** How many keys it holds. */
size_t vk_audit_keyring_size(const struct vk_audit_keyring *r);

/* ---------------------------------------------------------------- Verification */

#define VK_AUDIT_MAX_PROBLEMS 32

/** What a verification found. */
struct vk_audit_report {
    size_t records, checkpoints, orgs;
    size_t nproblems; /**< all of them; the first VK_AUDIT_MAX_PROBLEMS are kept */
    char problems[VK_AUDIT_MAX_PROBLEMS][256]; /**< "org X: record 7 was altered: …" */
    int64_t unsigned_tail; /**< records after the last checkpoint, summed over orgs */
};

/** A verification in progress: feed one org's records and checkpoints in seq order (a
 *  checkpoint after the record it signs). */
struct vk_audit_verifier {
    const struct vk_audit_keyring *keys;
    struct vk_audit_report *report;
    char org[VK_UUID_LEN];
    int64_t next_seq; /**< the seq expected next */
    char prev[VK_STORE_AUDIT_HASH_LEN];
    bool prev_ok;   /**< the last record's stored hash matched its contents */
    int64_t cp_seq; /**< the last good checkpoint's seq */
};

/** Start an org (`report` zeroed by the caller before the first org). */
void vk_audit_verify_org(struct vk_audit_verifier *v, const struct vk_audit_keyring *keys,
                         const char *org, struct vk_audit_report *report);
void vk_audit_verify_record(struct vk_audit_verifier *v, const struct vk_store_audit_rec *rec);
void vk_audit_verify_checkpoint(struct vk_audit_verifier *v,
                                const struct vk_store_audit_checkpoint *cp);
/** End the org: counts the records after its last checkpoint. */
void vk_audit_verify_end(struct vk_audit_verifier *v);

/** Verify every org's chain in `store`. 0 (read the report), or a store error. */
int vk_audit_verify_store(struct vk_store *store, const struct vk_audit_keyring *keys,
                          struct vk_audit_report *report, struct vk_err *err) VK_MUST_CHECK;

/** Verify an export (JSON lines, as `vulcan audit export` writes) read from `f`. 0, or
 *  VK_EINVAL naming the line that is not a record or checkpoint, VK_EIO. */
int vk_audit_verify_jsonl(FILE *f, const struct vk_audit_keyring *keys,
                          struct vk_audit_report *report, struct vk_err *err) VK_MUST_CHECK;

/* ---------------------------------------------------------------- The recorder */

/** One event to record; every string is borrowed and copied (truncated to its field). */
struct vk_audit_event {
    const char *org; /**< the org's id */
    const char *actor, *source, *action, *target, *outcome;
    json_t *details; /**< an object, borrowed; never a secret or a body; or NULL */
    const char *request_id, *trace_id;
    int64_t at; /**< 0: now */
};

struct vk_audit_opts {
    struct vk_store *store;
    const struct vk_audit_key *key; /**< borrowed; NULL: no checkpoints */
    int64_t checkpoint_every;       /**< 0: 1000 */
    int64_t checkpoint_ms;          /**< 0: 10 minutes */
    size_t queue;                   /**< events waiting at most; 0: 16384 */
    /* The live copy of each stored record, for a SIEM; both may be given, or neither. */
    const char *copy_file;   /**< append JSON lines (as an export's records) to this file */
    const char *copy_syslog; /**< "tcp://HOST:PORT" or "udp://HOST:PORT": RFC 5424 messages
                              *   (facility 13 "log audit", MSGID the action, MSG the JSON;
                              *   TCP with octet-counting framing, reconnected) */
    size_t copy_queue;       /**< records waiting for the copy at most; 0: 4096 */
};

struct vk_audit;

/** Start a recorder (its writer thread, and the live copy's). VK_EINVAL: a bad copy_syslog;
 *  VK_EIO: copy_file cannot be opened. */
int vk_audit_new(const struct vk_audit_opts *opts, struct vk_audit **out,
                 struct vk_err *err) VK_MUST_CHECK;

/** Queue `ev`. Never blocks; when the queue is full the event is dropped and counted. */
void vk_audit_record(struct vk_audit *a, const struct vk_audit_event *ev);

/** Wait until every event queued before the call is in the store (or failed), at most
 *  `timeout_ms`. 0, or VK_ETIMEDOUT. */
int vk_audit_flush(struct vk_audit *a, int64_t timeout_ms);

/** Counters since start. */
struct vk_audit_stats {
    uint64_t written, dropped, failed, checkpoints;
    uint64_t copied, copy_dropped, copy_failed; /**< the live copy's: sent, queue full, lost */
};
void vk_audit_stats(struct vk_audit *a, struct vk_audit_stats *out);

/** The last store error of the writer ("" none), copied into `buf`. */
void vk_audit_last_error(struct vk_audit *a, char *buf, size_t cap);

/** Write what is queued, sign a checkpoint of every org's head, stop. Accepts NULL. */
void vk_audit_free(struct vk_audit *a);

/** Record `ev` at once, in the caller's thread, and sign a checkpoint of its org's head
 *  (for the admin commands, which run without a server). */
int vk_audit_record_now(struct vk_store *store, const struct vk_audit_key *key,
                        const struct vk_audit_event *ev, struct vk_err *err) VK_MUST_CHECK;

#endif /* VULCAN_AUDIT_H */
