/*
 * Server-side masking (DESIGN §8, docs/secrets.md "Masking"): the second pass
 * over a log, after the worker's. Each running attempt that has a log or a
 * registered value has an entry: a streaming masker with the attempt's values
 * (the job token at claim, each ID token issued by GET /api/v1/id-token, the
 * attempt's secrets once they are wired in at claim) and the two offsets that
 * tie the worker's stream to what is stored. The worker numbers its chunks by
 * its own byte offsets; masking makes the stored log shorter ("***" replaces 6
 * bytes or more), so `in_off` counts the worker's bytes consumed and `out_off`
 * the bytes stored. A chunk already consumed (a retry) is accepted and ignored;
 * a chunk past `in_off` is refused, as the store refuses a hole.
 *
 * The entry goes when the attempt ends (its result or hand-back): what the
 * masker still holds back is stored first. Entries of attempts that ended
 * without a result (a dead worker, a cancelled chain) are swept when idle.
 *
 * The registry is memory only. After a server restart (or for a claim made by
 * another replica) an entry is made again from the first chunk of the attempt
 * that arrives, with the attempt's stored secrets opened again; the job token
 * (stored only as a hash), the ID tokens issued before (not stored at all) and
 * providers' values cannot be re-derived; the worker's pass still masks them.
 *
 * Locking: `mask.lock` guards the list and the reference counts; each entry's
 * `mu` guards its masker, offsets and pending output, and is held across the
 * store append so that one attempt's chunks are stored in order.
 */
#include "api_int.h"

#include <stdio.h>
#include <string.h>

#define MASK_MAX_ENTRIES 65536u
#define MASK_SWEEP_IDLE_MS (10 * 60 * 1000)
#define MASK_SWEEP_EVERY_MS (60 * 1000)

struct vk__api_mask_entry {
    struct vk__api_mask_entry *next;
    char fragment_id[VK_UUID_LEN];
    int attempt;
    int refs;  /* guarded by mask.lock */
    bool gone; /* unlinked: the last reference frees it */
    int64_t used_ms;
    pthread_mutex_t mu;
    struct vk_mask *mask;
    int64_t in_off;      /* bytes of the worker's stream consumed */
    int64_t out_off;     /* bytes of the stored log */
    struct vk_buf ready; /* masked bytes not stored yet (a failed store append) */
};

void vk__api_mask_init(struct vk_api *api)
{
    pthread_mutex_init(&api->mask.lock, NULL);
    api->mask.head = NULL;
    api->mask.n = 0;
    api->mask.swept_ms = vk_time_now_ms();
}

static void entry_free(struct vk__api_mask_entry *e)
{
    vk_mask_free(e->mask);
    if (e->ready.cap)
        explicit_bzero(e->ready.data, e->ready.cap);
    vk_buf_release(&e->ready);
    pthread_mutex_destroy(&e->mu);
    vk_mem_free(e);
}

void vk__api_mask_release(struct vk_api *api)
{
    struct vk__api_mask_entry *e = api->mask.head;
    while (e) {
        struct vk__api_mask_entry *next = e->next;
        entry_free(e);
        e = next;
    }
    api->mask.head = NULL;
    api->mask.n = 0;
    pthread_mutex_destroy(&api->mask.lock);
}

/* Unlink `e` (mask.lock held); it is freed now or by its last holder. */
static void entry_unlink(struct vk_api *api, struct vk__api_mask_entry *e)
{
    for (struct vk__api_mask_entry **pp = &api->mask.head; *pp; pp = &(*pp)->next) {
        if (*pp == e) {
            *pp = e->next;
            api->mask.n--;
            e->gone = true;
            break;
        }
    }
    if (e->refs == 0)
        entry_free(e);
}

static void entry_put(struct vk_api *api, struct vk__api_mask_entry *e)
{
    pthread_mutex_lock(&api->mask.lock);
    e->refs--;
    if (e->gone && e->refs == 0)
        entry_free(e);
    pthread_mutex_unlock(&api->mask.lock);
}

/*
 * The entry of (fragment, attempt), referenced; created when `create` (an entry of an
 * older attempt of the fragment goes). NULL when absent, or VK_ETOOBIG in *rc when full.
 */
static struct vk__api_mask_entry *entry_get(struct vk_api *api, const char *fid, int attempt,
                                            bool create, bool *created, int *rc)
{
    *rc = 0;
    *created = false;
    pthread_mutex_lock(&api->mask.lock);
    struct vk__api_mask_entry *e = api->mask.head, *found = NULL;
    while (e) {
        struct vk__api_mask_entry *next = e->next;
        if (strcmp(e->fragment_id, fid) == 0) {
            if (e->attempt == attempt)
                found = e;
            else if (e->attempt < attempt && create)
                entry_unlink(api, e);
        }
        e = next;
    }
    if (!found && create) {
        if (api->mask.n >= MASK_MAX_ENTRIES) {
            *rc = VK_ETOOBIG;
        } else {
            found = vk_mem_calloc(1, sizeof(*found));
            if (found)
                found->mask = vk_mask_new();
            if (!found) {
                *rc = VK_ENOMEM;
            } else {
                snprintf(found->fragment_id, sizeof(found->fragment_id), "%s", fid);
                found->attempt = attempt;
                pthread_mutex_init(&found->mu, NULL);
                vk_buf_init(&found->ready, 2u * VK_STORE_MAX_LOG_CHUNK + VK_MASK_MAX_FORM_BYTES);
                found->next = api->mask.head;
                api->mask.head = found;
                api->mask.n++;
                *created = true;
            }
        }
    }
    if (found) {
        found->refs++;
        found->used_ms = vk_time_now_ms();
    }
    pthread_mutex_unlock(&api->mask.lock);
    return found;
}

/* Store e->ready at e->out_off, in pieces the store accepts (e->mu held). */
static int store_ready(struct vk_api *api, struct vk__api_mask_entry *e, struct vk_err *err)
{
    size_t done = 0;
    int rc = 0;
    if (e->ready.len == 0) /* nothing new (a retry, or held back): the store still says
                            * whether the attempt is current */
        return vk_store_log_append(api->opts.store, e->fragment_id, e->attempt, e->out_off, "", 0,
                                   NULL, err);
    while (done < e->ready.len) {
        size_t k = e->ready.len - done;
        if (k > VK_STORE_MAX_LOG_CHUNK)
            k = VK_STORE_MAX_LOG_CHUNK;
        rc = vk_store_log_append(api->opts.store, e->fragment_id, e->attempt, e->out_off,
                                 e->ready.data + done, k, NULL, err);
        if (rc < 0)
            break;
        e->out_off += (int64_t)k;
        done += k;
    }
    if (done > 0) {
        memmove(e->ready.data, e->ready.data + done, e->ready.len - done);
        e->ready.len -= done;
        e->ready.data[e->ready.len] = '\0';
    }
    return rc;
}

static void to_ready(void *ctx, const char *data, size_t len)
{
    struct vk__api_mask_entry *e = ctx;
    if (vk_buf_add(&e->ready, data, len) < 0)
        e->in_off = -1; /* cannot happen within the cap; poisons the entry (see below) */
}

/* Entries idle for MASK_SWEEP_IDLE_MS whose attempt no longer runs (ended without a result). */
static void sweep(struct vk_api *api)
{
    int64_t now = vk_time_now_ms();
    char ids[64][VK_UUID_LEN];
    int atts[64];
    size_t n = 0;
    pthread_mutex_lock(&api->mask.lock);
    if (now - api->mask.swept_ms >= MASK_SWEEP_EVERY_MS) {
        api->mask.swept_ms = now;
        for (struct vk__api_mask_entry *e = api->mask.head; e && n < 64; e = e->next) {
            if (now - e->used_ms >= MASK_SWEEP_IDLE_MS && e->refs == 0) {
                snprintf(ids[n], sizeof(ids[n]), "%s", e->fragment_id);
                atts[n++] = e->attempt;
            }
        }
    }
    pthread_mutex_unlock(&api->mask.lock);
    for (size_t i = 0; i < n; i++) {
        struct vk_pool pool;
        vk_pool_init(&pool, 4096);
        struct vk_store_fragment f;
        int rc = vk_store_fragment_get(api->opts.store, ids[i], &pool, &f, NULL);
        bool ended = rc == VK_ENOTFOUND ||
                     (rc == 0 && (f.status != VK_STORE_FRAG_RUNNING || f.attempt != atts[i]));
        vk_pool_release(&pool);
        if (ended)
            vk__api_mask_end(api, ids[i], atts[i]);
    }
}

int vk__api_mask_add(struct vk_api *api, const char *fragment_id, int attempt, const char *value,
                     size_t n)
{
    bool created;
    int rc;
    struct vk__api_mask_entry *e = entry_get(api, fragment_id, attempt, true, &created, &rc);
    if (!e)
        return rc;
    pthread_mutex_lock(&e->mu);
    rc = vk_mask_add(e->mask, value, n);
    pthread_mutex_unlock(&e->mu);
    entry_put(api, e);
    return rc;
}

int vk__api_mask_append(struct vk_api *api, const char *fragment_id, int attempt, int64_t offset,
                        const char *data, size_t len, int64_t *in_total, struct vk_err *err)
{
    sweep(api); /* here, not at claim: it reads the store, and claims hold api->lock */
    bool created;
    int rc;
    struct vk__api_mask_entry *e = entry_get(api, fragment_id, attempt, true, &created, &rc);
    if (!e)
        return vk_err_set(err, rc == VK_ETOOBIG ? VK_EAGAIN : rc,
                          "too many attempts are writing logs at once");
    pthread_mutex_lock(&e->mu);
    /* The claim was not seen here (a restart, or another replica): the attempt's stored
     * secrets are opened again. Failing that the log is still taken: the worker masks. */
    if (created && vk__api_mask_stored_secrets(api, fragment_id, attempt, e->mask) < 0)
        vk_log_write(VK_LOG_WARN, "api", "cannot open an attempt's secrets again for masking",
                     "fragment_id", fragment_id, NULL);
    if (created || (e->in_off == 0 && e->out_off == 0 && offset > 0)) {
        /* No entry had seen this attempt's log (registered at claim but no chunk yet, or
         * lost in a restart): start from what is stored. An unmasked log has the worker's
         * offsets; a masked one is shorter than the worker's stream. */
        size_t got = 0;
        int64_t total = 0;
        rc =
            vk_store_log_read(api->opts.store, fragment_id, attempt, 0, NULL, 0, &got, &total, err);
        if (rc == 0 && total > 0) {
            e->out_off = total;
            e->in_off = offset <= total ? total : offset;
        }
        if (rc < 0)
            goto out;
    }
    if (e->in_off < 0) {
        rc = vk_err_set(err, VK_EINTERNAL, "the log of this attempt cannot be masked any more");
        goto out;
    }
    if (offset > e->in_off) {
        rc = vk_err_set(err, VK_EINVAL, "log offset %lld is past the end of the log (%lld)",
                        (long long)offset, (long long)e->in_off);
        goto out;
    }
    /* A retry of bytes already consumed is accepted; what it overlaps is skipped. */
    size_t skip = (size_t)(e->in_off - offset);
    if (skip < len) {
        rc = vk_mask_write(e->mask, data + skip, len - skip, to_ready, e);
        if (rc < 0) {
            vk_err_set(err, rc, "out of memory while masking the log");
            goto out;
        }
        if (e->in_off >= 0)
            e->in_off += (int64_t)(len - skip);
    }
    rc = store_ready(api, e, err);
out:
    if (in_total)
        *in_total = e->in_off;
    pthread_mutex_unlock(&e->mu);
    pthread_mutex_lock(&api->mask.lock);
    e->refs--;
    if (rc == VK_ECONFLICT && !e->gone)
        entry_unlink(api, e); /* a stale attempt: its log is refused for good */
    else if (e->gone && e->refs == 0)
        entry_free(e);
    pthread_mutex_unlock(&api->mask.lock);
    return rc;
}

void vk__api_mask_end(struct vk_api *api, const char *fragment_id, int attempt)
{
    vk__api_mask_end_outputs(api, fragment_id, attempt, NULL);
}

/* Each string value of `outputs` masked with the entry's values (its log is flushed first,
 * so the masker starts clean); a value that cannot be masked becomes "***". */
static void mask_outputs(struct vk__api_mask_entry *e, json_t *outputs)
{
    const char *k;
    json_t *v;
    struct vk_buf b = VK_BUF_INIT(2 * VK_OUTPUTS_MAX_VALUE);
    json_object_foreach(outputs, k, v)
    {
        if (!json_is_string(v))
            continue;
        vk_buf_reset(&b);
        const char *s = json_string_value(v);
        int rc = vk_mask_buf(e->mask, s, strlen(s), &b);
        json_string_set(v, rc == 0 ? (b.data ? b.data : "") : "***");
    }
    vk_buf_release(&b);
}

void vk__api_mask_end_outputs(struct vk_api *api, const char *fragment_id, int attempt,
                              json_t *outputs)
{
    bool created;
    int rc;
    struct vk__api_mask_entry *e = entry_get(api, fragment_id, attempt, false, &created, &rc);
    if (!e)
        return;
    pthread_mutex_lock(&e->mu);
    vk_mask_flush(e->mask, to_ready, e);
    struct vk_err err;
    vk_err_clear(&err);
    if (store_ready(api, e, &err) < 0 && err.code != VK_ECONFLICT)
        vk_log_write(VK_LOG_WARN, "api", "cannot store the end of a masked log", "fragment_id",
                     fragment_id, "error", err.msg, NULL);
    if (outputs)
        mask_outputs(e, outputs);
    pthread_mutex_unlock(&e->mu);
    pthread_mutex_lock(&api->mask.lock);
    e->refs--;
    if (!e->gone)
        entry_unlink(api, e); /* frees it when nobody else holds it */
    else if (e->refs == 0)
        entry_free(e);
    pthread_mutex_unlock(&api->mask.lock);
}

size_t vk__api_mask_entries(struct vk_api *api)
{
    pthread_mutex_lock(&api->mask.lock);
    size_t n = api->mask.n;
    pthread_mutex_unlock(&api->mask.lock);
    return n;
}
