/* The recorder: a bounded queue of events and the thread that appends them (vulcan/audit.h). */
#include "audit_int.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define BATCH 256

/* One queued event, copied into fixed fields (truncated). */
struct slot {
    char org[VK_UUID_LEN];
    char actor[128], source[64], action[96], target[256], outcome[24];
    char details[1024];
    char request_id[48], trace_id[48];
    int64_t at;
};

struct vk_audit {
    struct vk_audit_opts opts;
    pthread_mutex_t lock;
    pthread_cond_t wake, drained;
    struct slot *ring;
    size_t cap, head, count; /* head: the oldest */
    uint64_t queued, done;   /* events ever queued; ever written or failed */
    bool stopping;
    pthread_t thread;
    struct vk_audit_stats stats;
    struct vk__audit_sink *sink; /* the live copy, or NULL */
    char last_error[256];
};

static void copy(char *dst, size_t cap, const char *src)
{
    snprintf(dst, cap, "%s", src ? src : "");
}

/* `details` (an object, or anything else: none) as canonical JSON into `buf`; one that does
 * not fit becomes {"truncated":true}. */
static void dump_details(json_t *details, char *buf, size_t cap)
{
    buf[0] = '\0';
    if (!json_is_object(details))
        return;
    size_t n = json_dumpb(details, buf, cap - 1, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);
    if (n == 0 || n >= cap - 1)
        copy(buf, cap, "{\"truncated\":true}");
    else
        buf[n] = '\0';
}

/* `ev` into a slot; `actor` when the event names none. */
static void to_slot(const struct vk_audit_event *ev, const char *actor, struct slot *s)
{
    copy(s->org, sizeof(s->org), ev->org);
    copy(s->actor, sizeof(s->actor), ev->actor ? ev->actor : actor);
    copy(s->source, sizeof(s->source), ev->source);
    copy(s->action, sizeof(s->action), ev->action ? ev->action : "unknown");
    copy(s->target, sizeof(s->target), ev->target);
    copy(s->outcome, sizeof(s->outcome), ev->outcome ? ev->outcome : "success");
    copy(s->request_id, sizeof(s->request_id), ev->request_id);
    copy(s->trace_id, sizeof(s->trace_id), ev->trace_id);
    dump_details(ev->details, s->details, sizeof(s->details));
    s->at = ev->at ? ev->at : vk_time_now_ms();
}

static const char *opt(const char *s)
{
    return s[0] ? s : NULL;
}

static void to_rec(const struct slot *s, struct vk_store_audit_rec *r)
{
    memset(r, 0, sizeof(*r));
    copy(r->tenant_id, sizeof(r->tenant_id), s->org);
    r->at = s->at;
    r->actor = s->actor;
    r->source = opt(s->source);
    r->action = s->action;
    r->target = opt(s->target);
    r->outcome = s->outcome;
    r->details = opt(s->details);
    r->request_id = opt(s->request_id);
    r->trace_id = opt(s->trace_id);
}

static int write_batch(struct vk_audit *a, struct slot *batch, size_t n, size_t *cps,
                       struct vk_err *err)
{
    struct vk_store_audit_rec recs[BATCH];
    for (size_t i = 0; i < n; i++)
        to_rec(&batch[i], &recs[i]);
    struct vk_store_audit_policy pol = {a->opts.checkpoint_every, a->opts.checkpoint_ms};
    int rc = vk_store_audit_append(a->opts.store, recs, n, vk_audit_seal_cb,
                                   a->opts.key ? vk_audit_sign_cb : NULL, (void *)a->opts.key, &pol,
                                   cps, err);
    for (size_t i = 0; rc == 0 && i < n; i++) /* stored: now copied */
        vk__audit_sink_push(a->sink, &recs[i]);
    return rc;
}

static void *writer(void *arg)
{
    struct vk_audit *a = arg;
    struct slot *batch = vk_mem_xcalloc(BATCH, sizeof(*batch));
    pthread_mutex_lock(&a->lock);
    for (;;) {
        while (a->count == 0 && !a->stopping)
            pthread_cond_wait(&a->wake, &a->lock);
        if (a->count == 0 && a->stopping)
            break;
        size_t n = 0;
        while (n < BATCH && a->count > 0) {
            batch[n++] = a->ring[a->head];
            a->head = (a->head + 1) % a->cap;
            a->count--;
        }
        pthread_mutex_unlock(&a->lock);
        struct vk_err err;
        vk_err_clear(&err);
        size_t cps = 0;
        int rc = write_batch(a, batch, n, &cps, &err);
        for (int tries = 0; rc == VK_EDB && tries < 3; tries++) { /* a busy or lost connection */
            struct timespec ts = {0, 50 * 1000 * 1000};
            nanosleep(&ts, NULL);
            vk_err_clear(&err);
            rc = write_batch(a, batch, n, &cps, &err);
        }
        pthread_mutex_lock(&a->lock);
        if (rc == 0) {
            a->stats.written += n;
            a->stats.checkpoints += cps;
        } else {
            a->stats.failed += n;
            copy(a->last_error, sizeof(a->last_error), err.msg);
        }
        a->done += n;
        pthread_cond_broadcast(&a->drained);
    }
    pthread_mutex_unlock(&a->lock);
    vk_mem_free(batch);
    return NULL;
}

int vk_audit_new(const struct vk_audit_opts *opts, struct vk_audit **out, struct vk_err *err)
{
    if (!opts || !opts->store)
        return vk_err_set(err, VK_EINVAL, "the audit recorder needs a store");
    struct vk_audit *a = vk_mem_calloc(1, sizeof(*a));
    if (!a)
        return vk_err_set(err, VK_ENOMEM, "out of memory");
    a->opts = *opts;
    if (a->opts.checkpoint_every <= 0)
        a->opts.checkpoint_every = 1000;
    if (a->opts.checkpoint_ms <= 0)
        a->opts.checkpoint_ms = 10 * 60 * 1000;
    a->cap = a->opts.queue ? a->opts.queue : 16384;
    a->ring = vk_mem_calloc(a->cap, sizeof(*a->ring));
    if (!a->ring) {
        vk_mem_free(a);
        return vk_err_set(err, VK_ENOMEM, "out of memory");
    }
    int rc =
        vk__audit_sink_new(opts->copy_file, opts->copy_syslog, opts->copy_queue, &a->sink, err);
    if (rc) {
        vk_mem_free(a->ring);
        vk_mem_free(a);
        return rc;
    }
    pthread_mutex_init(&a->lock, NULL);
    pthread_cond_init(&a->wake, NULL);
    vk_time_cond_init(&a->drained);
    if (pthread_create(&a->thread, NULL, writer, a) != 0) {
        pthread_cond_destroy(&a->drained);
        pthread_cond_destroy(&a->wake);
        pthread_mutex_destroy(&a->lock);
        vk__audit_sink_free(a->sink);
        vk_mem_free(a->ring);
        vk_mem_free(a);
        return vk_err_set(err, VK_EINTERNAL, "cannot start the audit writer");
    }
    *out = a;
    return 0;
}

void vk_audit_record(struct vk_audit *a, const struct vk_audit_event *ev)
{
    if (!a || !ev)
        return;
    struct slot s;
    to_slot(ev, "anonymous", &s);
    pthread_mutex_lock(&a->lock);
    if (a->count == a->cap || a->stopping) {
        a->stats.dropped++;
    } else {
        a->ring[(a->head + a->count) % a->cap] = s;
        a->count++;
        a->queued++;
        pthread_cond_signal(&a->wake);
    }
    pthread_mutex_unlock(&a->lock);
}

int vk_audit_flush(struct vk_audit *a, int64_t timeout_ms)
{
    if (!a)
        return 0;
    struct timespec deadline = vk_time_deadline(timeout_ms);
    pthread_mutex_lock(&a->lock);
    uint64_t want = a->queued;
    int rc = 0;
    while (a->done < want && rc == 0)
        if (pthread_cond_timedwait(&a->drained, &a->lock, &deadline) == ETIMEDOUT)
            rc = a->done < want ? VK_ETIMEDOUT : 0;
    pthread_mutex_unlock(&a->lock);
    return rc;
}

void vk_audit_stats(struct vk_audit *a, struct vk_audit_stats *out)
{
    memset(out, 0, sizeof(*out));
    if (!a)
        return;
    pthread_mutex_lock(&a->lock);
    *out = a->stats;
    pthread_mutex_unlock(&a->lock);
    vk__audit_sink_stats(a->sink, &out->copied, &out->copy_dropped, &out->copy_failed);
}

void vk_audit_last_error(struct vk_audit *a, char *buf, size_t cap)
{
    if (!a) {
        copy(buf, cap, "");
        return;
    }
    pthread_mutex_lock(&a->lock);
    copy(buf, cap, a->last_error);
    pthread_mutex_unlock(&a->lock);
}

void vk_audit_free(struct vk_audit *a)
{
    if (!a)
        return;
    pthread_mutex_lock(&a->lock);
    a->stopping = true;
    pthread_cond_signal(&a->wake);
    pthread_mutex_unlock(&a->lock);
    pthread_join(a->thread, NULL);
    if (a->opts.key) {
        struct vk_err err;
        vk_err_clear(&err);
        size_t n = 0;
        if (vk_store_audit_checkpoint_all(a->opts.store, vk_audit_sign_cb, (void *)a->opts.key, &n,
                                          &err) < 0)
            n = 0; /* the next start signs what this one could not */
    }
    vk__audit_sink_free(a->sink); /* after the writer: it pushed its last records */
    pthread_cond_destroy(&a->drained);
    pthread_cond_destroy(&a->wake);
    pthread_mutex_destroy(&a->lock);
    vk_mem_free(a->ring);
    vk_mem_free(a);
}

int vk_audit_record_now(struct vk_store *store, const struct vk_audit_key *key,
                        const struct vk_audit_event *ev, struct vk_err *err)
{
    struct slot s;
    to_slot(ev, "system", &s);
    struct vk_store_audit_rec rec;
    to_rec(&s, &rec);
    struct vk_store_audit_policy pol = {1, 0}; /* a checkpoint right after */
    return vk_store_audit_append(store, &rec, 1, vk_audit_seal_cb, key ? vk_audit_sign_cb : NULL,
                                 (void *)key, &pol, NULL, err);
}
