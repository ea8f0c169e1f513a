/* The hash chain: canonical JSON, sealing, JSON forms, verification (vulcan/audit.h). */
#include "audit_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define CANON_FLAGS (JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII)

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

/* The canonical object of `rec` (without its own hash); NULL when details are not an object
 * or out of memory (*bad_details tells which). */
static json_t *canonical(const struct vk_store_audit_rec *rec, bool *bad_details)
{
    *bad_details = false;
    json_t *details = json_null();
    if (rec->details) {
        json_decref(details);
        details = json_loads(rec->details, JSON_REJECT_DUPLICATES, NULL);
        if (!json_is_object(details)) {
            json_decref(details);
            *bad_details = true;
            return NULL;
        }
    }
    return json_pack("{s:i, s:o, s:o, s:I, s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:s}", "v", 1,
                     "org", json_string(rec->tenant_id), "actor", str_or_null(rec->actor), "seq",
                     (json_int_t)rec->seq, "at", (json_int_t)rec->at, "source",
                     str_or_null(rec->source), "action", str_or_null(rec->action), "target",
                     str_or_null(rec->target), "outcome", str_or_null(rec->outcome), "details",
                     details, "request_id", str_or_null(rec->request_id), "trace_id",
                     str_or_null(rec->trace_id), "prev_hash", rec->prev_hash);
}

/* SHA-256 hex of the canonical form of `rec` into `out`. VK_EINVAL: details not an object. */
static int hash_of(const struct vk_store_audit_rec *rec, char out[VK_STORE_AUDIT_HASH_LEN])
{
    bool bad = false;
    json_t *o = canonical(rec, &bad);
    if (!o)
        return bad ? VK_EINVAL : VK_ENOMEM;
    char *text = json_dumps(o, CANON_FLAGS);
    json_decref(o);
    if (!text)
        return VK_ENOMEM;
    int rc = vk_sha256_hex(text, strlen(text), out);
    free(text);
    return rc;
}

int vk_audit_seal(struct vk_store_audit_rec *rec, struct vk_err *err)
{
    int rc = hash_of(rec, rec->hash);
    if (rc == VK_EINVAL)
        return vk_err_set(err, rc, "audit details must be a JSON object");
    if (rc)
        return vk_err_set(err, VK_ENOMEM, "out of memory");
    return 0;
}

json_t *vk_audit_rec_json(const struct vk_store_audit_rec *rec)
{
    char t[VK_TIME_LEN];
    vk_time_format(rec->at, t);
    json_t *details = rec->details ? json_loads(rec->details, 0, NULL) : NULL;
    json_t *o = json_pack(
        "{s:s, s:s, s:I, s:I, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:s, s:s}", "type",
        "record", "org", rec->tenant_id, "seq", (json_int_t)rec->seq, "at", (json_int_t)rec->at,
        "time", t, "actor", str_or_null(rec->actor), "source", str_or_null(rec->source), "action",
        str_or_null(rec->action), "target", str_or_null(rec->target), "outcome",
        str_or_null(rec->outcome), "details", details ? details : json_null(), "request_id",
        str_or_null(rec->request_id), "trace_id", str_or_null(rec->trace_id), "prev_hash",
        rec->prev_hash, "hash", rec->hash);
    return o;
}

json_t *vk_audit_checkpoint_json(const struct vk_store_audit_checkpoint *cp)
{
    return json_pack("{s:s, s:s, s:I, s:I, s:s, s:s, s:s}", "type", "checkpoint", "org",
                     cp->tenant_id, "seq", (json_int_t)cp->seq, "at", (json_int_t)cp->at, "hash",
                     cp->hash, "key_id", cp->key_id ? cp->key_id : "", "signature",
                     cp->signature ? cp->signature : "");
}

/* A string field of `o` into the pool; *ok false when present but not a string (or, when
 * `required`, absent or null). */
static const char *field(json_t *o, const char *key, bool required, struct vk_pool *pool, bool *ok,
                         const char **bad)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) {
        if (required && *ok) {
            *ok = false;
            *bad = key;
        }
        return NULL;
    }
    if (!json_is_string(v)) {
        if (*ok) {
            *ok = false;
            *bad = key;
        }
        return NULL;
    }
    const char *s = vk_pool_strndup(pool, json_string_value(v), json_string_length(v));
    if (!s && *ok) {
        *ok = false;
        *bad = "(out of memory)";
    }
    return s;
}

static bool int_field(json_t *o, const char *key, int64_t *out)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_integer(v))
        return false;
    *out = json_integer_value(v);
    return true;
}

static bool hash_field(json_t *o, const char *key, char out[VK_STORE_AUDIT_HASH_LEN])
{
    const char *s = json_string_value(json_object_get(o, key));
    if (!s || strlen(s) != VK_STORE_AUDIT_HASH_LEN - 1)
        return false;
    memcpy(out, s, VK_STORE_AUDIT_HASH_LEN);
    return true;
}

static bool org_field(json_t *o, char out[VK_UUID_LEN])
{
    const char *s = json_string_value(json_object_get(o, "org"));
    if (!s || strlen(s) >= VK_UUID_LEN)
        return false;
    snprintf(out, VK_UUID_LEN, "%s", s);
    return true;
}

int vk_audit_rec_from_json(json_t *o, struct vk_pool *pool, struct vk_store_audit_rec *rec,
                           struct vk_err *err)
{
    memset(rec, 0, sizeof(*rec));
    bool ok = true;
    const char *bad = NULL;
    if (!org_field(o, rec->tenant_id))
        ok = false, bad = "org";
    else if (!int_field(o, "seq", &rec->seq))
        ok = false, bad = "seq";
    else if (!int_field(o, "at", &rec->at))
        ok = false, bad = "at";
    else if (!hash_field(o, "prev_hash", rec->prev_hash))
        ok = false, bad = "prev_hash";
    else if (!hash_field(o, "hash", rec->hash))
        ok = false, bad = "hash";
    rec->actor = field(o, "actor", true, pool, &ok, &bad);
    rec->source = field(o, "source", false, pool, &ok, &bad);
    rec->action = field(o, "action", true, pool, &ok, &bad);
    rec->target = field(o, "target", false, pool, &ok, &bad);
    rec->outcome = field(o, "outcome", true, pool, &ok, &bad);
    rec->request_id = field(o, "request_id", false, pool, &ok, &bad);
    rec->trace_id = field(o, "trace_id", false, pool, &ok, &bad);
    json_t *d = json_object_get(o, "details");
    if (ok && d && !json_is_null(d)) {
        if (!json_is_object(d)) {
            ok = false;
            bad = "details";
        } else {
            char *text = json_dumps(d, CANON_FLAGS);
            rec->details = text ? vk_pool_strndup(pool, text, strlen(text)) : NULL;
            free(text);
            if (!rec->details)
                return vk_err_set(err, VK_ENOMEM, "out of memory");
        }
    }
    if (!ok)
        return vk_err_set(err, VK_EINVAL, "record: '%s' is missing or of the wrong type", bad);
    return 0;
}

int vk_audit_checkpoint_from_json(json_t *o, struct vk_pool *pool,
                                  struct vk_store_audit_checkpoint *cp, struct vk_err *err)
{
    memset(cp, 0, sizeof(*cp));
    bool ok = true;
    const char *bad = NULL;
    if (!org_field(o, cp->tenant_id))
        ok = false, bad = "org";
    else if (!int_field(o, "seq", &cp->seq))
        ok = false, bad = "seq";
    else if (!int_field(o, "at", &cp->at))
        ok = false, bad = "at";
    else if (!hash_field(o, "hash", cp->hash))
        ok = false, bad = "hash";
    cp->key_id = field(o, "key_id", true, pool, &ok, &bad);
    cp->signature = field(o, "signature", true, pool, &ok, &bad);
    if (!ok)
        return vk_err_set(err, VK_EINVAL, "checkpoint: '%s' is missing or of the wrong type", bad);
    return 0;
}

/* ---------------------------------------------------------------- Verification */

static void problem(struct vk_audit_verifier *v, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void problem(struct vk_audit_verifier *v, const char *fmt, ...)
{
    struct vk_audit_report *r = v->report;
    if (r->nproblems < VK_AUDIT_MAX_PROBLEMS) {
        char *out = r->problems[r->nproblems];
        int n = snprintf(out, sizeof(r->problems[0]), "org %s: ", v->org);
        va_list ap;
        va_start(ap, fmt);
        if (n > 0 && (size_t)n < sizeof(r->problems[0]))
            vsnprintf(out + n, sizeof(r->problems[0]) - (size_t)n, fmt, ap);
        va_end(ap);
    }
    r->nproblems++;
}

static const char zeros[VK_STORE_AUDIT_HASH_LEN] =
    "0000000000000000000000000000000000000000000000000000000000000000";

void vk_audit_verify_org(struct vk_audit_verifier *v, const struct vk_audit_keyring *keys,
                         const char *org, struct vk_audit_report *report)
{
    memset(v, 0, sizeof(*v));
    v->keys = keys;
    v->report = report;
    snprintf(v->org, sizeof(v->org), "%s", org);
    v->next_seq = 1;
    memcpy(v->prev, zeros, sizeof(zeros));
    v->prev_ok = true;
    report->orgs++;
}

void vk_audit_verify_record(struct vk_audit_verifier *v, const struct vk_store_audit_rec *rec)
{
    v->report->records++;
    if (rec->seq > v->next_seq) {
        if (rec->seq == v->next_seq + 1)
            problem(v, "record %lld is missing (deleted)", (long long)v->next_seq);
        else
            problem(v, "records %lld to %lld are missing (deleted)", (long long)v->next_seq,
                    (long long)rec->seq - 1);
    } else if (rec->seq < v->next_seq) {
        problem(v, "record %lld appears twice or out of order", (long long)rec->seq);
    } else if (strcmp(rec->prev_hash, v->prev) != 0 && v->prev_ok) {
        problem(v, "record %lld does not link to record %lld (prev_hash differs)",
                (long long)rec->seq, (long long)rec->seq - 1);
    }
    char h[VK_STORE_AUDIT_HASH_LEN];
    int rc = hash_of(rec, h);
    v->prev_ok = rc == 0 && strcmp(h, rec->hash) == 0;
    if (rc == VK_EINVAL)
        problem(v, "record %lld was altered: its details are not a JSON object",
                (long long)rec->seq);
    else if (rc == 0 && !v->prev_ok)
        problem(v, "record %lld was altered: its hash does not match its contents",
                (long long)rec->seq);
    memcpy(v->prev, rec->hash, sizeof(v->prev));
    v->next_seq = rec->seq + 1;
}

void vk_audit_verify_checkpoint(struct vk_audit_verifier *v,
                                const struct vk_store_audit_checkpoint *cp)
{
    v->report->checkpoints++;
    int rc = vk__audit_check_signature(v->keys, cp);
    if (rc == VK_ENOTFOUND) {
        problem(v, "checkpoint at record %lld is signed by an unknown key %s", (long long)cp->seq,
                cp->key_id ? cp->key_id : "");
        return;
    }
    if (rc) {
        problem(v, "checkpoint at record %lld has a bad signature (checkpoint altered)",
                (long long)cp->seq);
        return;
    }
    if (cp->seq != v->next_seq - 1) {
        problem(v, "checkpoint at record %lld signs a record that is missing", (long long)cp->seq);
        return;
    }
    if (strcmp(cp->hash, v->prev) != 0) {
        problem(v,
                "checkpoint at record %lld does not match the chain: records up to %lld were "
                "rewritten",
                (long long)cp->seq, (long long)cp->seq);
        return;
    }
    v->cp_seq = cp->seq;
}

void vk_audit_verify_end(struct vk_audit_verifier *v)
{
    if (v->next_seq - 1 > v->cp_seq)
        v->report->unsigned_tail += v->next_seq - 1 - v->cp_seq;
}

/* The checkpoints of one org, read a page at a time. */
struct cp_cursor {
    struct vk_store *store;
    const char *org;
    struct vk_pool pool;
    struct vk_store_audit_checkpoint *cps;
    size_t n, i;
    int64_t after;
    bool done;
};

/* Verify every checkpoint of the cursor with seq <= upto. */
static int cp_flush(struct cp_cursor *c, struct vk_audit_verifier *v, int64_t upto,
                    struct vk_err *err)
{
    for (;;) {
        if (c->i == c->n) {
            if (c->done)
                return 0;
            vk_pool_release(&c->pool);
            vk_pool_init(&c->pool, 0);
            c->i = 0;
            int rc = vk_store_audit_checkpoints(c->store, c->org, c->after, 0, &c->pool, &c->cps,
                                                &c->n, err);
            if (rc)
                return rc;
            c->done = c->n < VK_STORE_AUDIT_MAX_LIST;
            if (c->n == 0)
                return 0;
        }
        const struct vk_store_audit_checkpoint *cp = &c->cps[c->i];
        if (cp->seq > upto)
            return 0;
        vk_audit_verify_checkpoint(v, cp);
        c->after = cp->seq;
        c->i++;
    }
}

int vk_audit_verify_store(struct vk_store *store, const struct vk_audit_keyring *keys,
                          struct vk_audit_report *report, struct vk_err *err)
{
    struct vk_pool opool;
    vk_pool_init(&opool, 0);
    const char **orgs = NULL;
    size_t norgs = 0;
    int rc = vk_store_audit_orgs(store, &opool, &orgs, &norgs, err);
    for (size_t i = 0; rc == 0 && i < norgs; i++) {
        struct vk_audit_verifier v;
        vk_audit_verify_org(&v, keys, orgs[i], report);
        struct cp_cursor cur = {.store = store, .org = orgs[i]};
        vk_pool_init(&cur.pool, 0);
        int64_t after = 0;
        for (;;) {
            struct vk_pool pool;
            vk_pool_init(&pool, 0);
            struct vk_store_audit_filter f = {.after_seq = after, .limit = VK_STORE_AUDIT_MAX_LIST};
            struct vk_store_audit_rec *recs = NULL;
            size_t n = 0;
            rc = vk_store_audit_list(store, orgs[i], &f, &pool, &recs, &n, err);
            for (size_t k = 0; rc == 0 && k < n; k++) {
                rc = cp_flush(&cur, &v, recs[k].seq - 1, err); /* of records that are gone */
                if (rc)
                    break;
                vk_audit_verify_record(&v, &recs[k]);
                rc = cp_flush(&cur, &v, recs[k].seq, err);
            }
            if (n)
                after = recs[n - 1].seq;
            vk_pool_release(&pool);
            if (rc || n < VK_STORE_AUDIT_MAX_LIST)
                break;
        }
        if (rc == 0)
            rc = cp_flush(&cur, &v, INT64_MAX, err);
        vk_pool_release(&cur.pool);
        vk_audit_verify_end(&v);
    }
    vk_pool_release(&opool);
    return rc;
}

int vk_audit_verify_jsonl(FILE *f, const struct vk_audit_keyring *keys,
                          struct vk_audit_report *report, struct vk_err *err)
{
    struct vk_audit_verifier v;
    bool open = false;
    char *line = malloc(VK_AUDIT_MAX_LINE + 2);
    long lineno = 0;
    int rc = line ? 0 : vk_err_set(err, VK_ENOMEM, "out of memory");
    /* bounded: a line longer than VK_AUDIT_MAX_LINE is refused, never read whole */
    while (rc == 0 && fgets(line, VK_AUDIT_MAX_LINE + 2, f)) {
        lineno++;
        size_t len = strlen(line);
        if (len > VK_AUDIT_MAX_LINE) {
            rc = vk_err_set(err, VK_EINVAL, "line %ld: longer than %d bytes", lineno,
                            VK_AUDIT_MAX_LINE);
            break;
        }
        if (len == 0 || line[0] == '\n')
            continue;
        json_error_t je;
        json_t *o = json_loadb(line, len, 0, &je);
        const char *type = json_string_value(json_object_get(o, "type"));
        struct vk_pool pool;
        vk_pool_init(&pool, 0);
        if (!type) {
            rc = vk_err_set(err, VK_EINVAL, "line %ld: not a record or checkpoint (%s)", lineno,
                            o ? "no \"type\"" : je.text);
        } else if (strcmp(type, "record") == 0) {
            struct vk_store_audit_rec rec;
            rc = vk_audit_rec_from_json(o, &pool, &rec, err);
            if (rc == 0 && (!open || strcmp(v.org, rec.tenant_id) != 0)) {
                if (open)
                    vk_audit_verify_end(&v);
                vk_audit_verify_org(&v, keys, rec.tenant_id, report);
                open = true;
            }
            if (rc == 0)
                vk_audit_verify_record(&v, &rec);
        } else if (strcmp(type, "checkpoint") == 0) {
            struct vk_store_audit_checkpoint cp;
            rc = vk_audit_checkpoint_from_json(o, &pool, &cp, err);
            if (rc == 0 && (!open || strcmp(v.org, cp.tenant_id) != 0)) {
                if (open)
                    vk_audit_verify_end(&v);
                vk_audit_verify_org(&v, keys, cp.tenant_id, report);
                open = true;
            }
            if (rc == 0)
                vk_audit_verify_checkpoint(&v, &cp);
        } else {
            rc = vk_err_set(err, VK_EINVAL, "line %ld: unknown type '%s'", lineno, type);
        }
        if (rc && err && strncmp(err->msg, "line ", 5) != 0) {
            char why[sizeof(err->msg)];
            snprintf(why, sizeof(why), "%s", err->msg);
            vk_err_set(err, rc, "line %ld: %s", lineno, why);
        }
        vk_pool_release(&pool);
        json_decref(o);
    }
    free(line);
    if (rc == 0 && ferror(f))
        rc = vk_err_set(err, VK_EIO, "read error");
    if (open)
        vk_audit_verify_end(&v);
    return rc;
}
