/*
 * agent_upload.c — streams one attempt's output to the server.
 *
 * The executor's output callback appends to slot->pending (bounded by the
 * output cap plus 1 MiB). The slot's uploader thread takes the whole pending
 * buffer once 64 KiB are waiting or 1 s has passed since the first unsent
 * byte, and posts it in pieces of at most 1 MiB to
 * /api/v1/work/{fragment_id}/log?attempt=N&offset=B. A piece that fails on
 * the network or with a 5xx is retried at the same offset (the server accepts
 * an already-stored range idempotently). 409 means the attempt is stale:
 * uploading stops and the run is cancelled. When more than 8 MiB are unsent
 * the callback waits up to 250 ms for room (backpressure on the script).
 */
#include "agent_int.h"
#include "vulcan/telemetry.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#define UPLOAD_GIVE_UP_MS (5 * 60 * 1000) /* after the run ended, failing continuously */

static struct timespec abs_ns(int64_t mono_ns)
{
    struct timespec ts = {.tv_sec = (time_t)(mono_ns / 1000000000),
                          .tv_nsec = (long)(mono_ns % 1000000000)};
    return ts;
}

static void *uploader_main(void *arg);

/* Start the uploader thread at the first output of the attempt (slot thread only). */
static void start_uploader(struct agent_slot *s)
{
    if (s->up_started || s->up_failed)
        return;
    if (vk__agent_thread_start(&s->up_thread, uploader_main, s) != 0) {
        vk_log_write(VK_LOG_ERROR, AGENT_COMPONENT, "cannot start the log uploader; output is lost",
                     "fragment_id", s->fragment_id, NULL);
        s->up_failed = true;
        pthread_mutex_lock(&s->mu);
        s->up_abandon = true;
        pthread_mutex_unlock(&s->mu);
        return;
    }
    s->up_started = true;
}

void vk__agent_upload_output(void *ctx, const char *data, size_t len)
{
    struct agent_slot *s = ctx;
    /* The output callback runs on the slot thread, as start and finish do. */
    start_uploader(s);
    pthread_mutex_lock(&s->mu);
    if (s->up_stale || s->up_abandon) {
        pthread_mutex_unlock(&s->mu);
        return;
    }
    if (s->pending.len + s->inflight > AGENT_BACKPRESSURE) {
        struct timespec until = abs_ns(vk_time_mono_ns() + AGENT_BACKPRESSURE_WAIT_MS * 1000000LL);
        while (s->pending.len + s->inflight > AGENT_BACKPRESSURE && !s->up_stale &&
               !s->up_abandon) {
            if (pthread_cond_timedwait(&s->cond, &s->mu, &until) == ETIMEDOUT)
                break;
        }
    }
    bool was_empty = s->pending.len == 0;
    if (len > s->pending.max - s->pending.len) {
        /* Only past the output cap plus slack (the executor caps output):
         * drop the new bytes, keep what is buffered. */
        s->up_dropped += len;
    } else if (vk_buf_add(&s->pending, data, len) < 0) {
        s->up_dropped += len; /* out of memory: vk_buf_add released the buffer */
        was_empty = true;
    } else if (was_empty) {
        s->first_unsent_ns = vk_time_mono_ns();
    }
    if (was_empty || s->pending.len >= AGENT_CHUNK_MIN)
        pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->mu);
}

/* Post one piece at the current offset. Returns 0 (acknowledged), VK_ECONFLICT
 * (stale or not allowed: stop), VK_EINVAL (refused for good), or VK_EIO (retry). */
static int send_piece(struct agent_slot *s, const char *fid, uint32_t attempt, uint64_t offset,
                      const char *p, size_t n, char *why, size_t whylen)
{
    char path[VK_EXEC_MAX_ID + 96];
    snprintf(path, sizeof(path), "/api/v1/work/%s/log?attempt=%u&offset=%llu", fid, attempt,
             (unsigned long long)offset);
    struct vk_http_response resp;
    struct vk_err err;
    vk_err_clear(&err);
    int rc = vk_http_client_request(s->log_cl, "POST", path, "application/octet-stream", p, n,
                                    AGENT_REQUEST_TIMEOUT_MS, &resp, &err);
    if (rc != 0) {
        snprintf(why, whylen, "%s", err.msg);
        return VK_EIO;
    }
    long st = resp.status;
    vk_http_response_release(&resp);
    snprintf(why, whylen, "status %ld", st);
    if (st >= 200 && st < 300)
        return 0;
    /* Stale, gone, or the job token refused (a revoked worker): nothing this attempt sends
     * will be taken, so it stops. */
    if (st == 409 || st == 404 || st == 401 || st == 403)
        return VK_ECONFLICT;
    if (st >= 400 && st < 500 && st != 408 && st != 429)
        return VK_EINVAL;
    return VK_EIO;
}

/* Send `buf` entirely (retrying); called without the slot lock. Returns false
 * when uploading must stop (stale, refused, abandoned or given up). */
static bool send_all(struct agent_slot *s, const char *fid, uint32_t attempt,
                     const struct vk_buf *buf, struct agent_backoff *b)
{
    size_t done = 0;
    int64_t failing_since = 0;
    while (done < buf->len) {
        size_t n = buf->len - done;
        if (n > AGENT_CHUNK_MAX)
            n = AGENT_CHUNK_MAX;
        pthread_mutex_lock(&s->mu);
        uint64_t off = s->up_offset;
        bool abandon = s->up_abandon;
        bool finished = s->up_finished;
        pthread_mutex_unlock(&s->mu);
        if (abandon)
            return false;
        char why[300];
        int rc = send_piece(s, fid, attempt, off, buf->data + done, n, why, sizeof(why));
        if (rc == 0) {
            done += n;
            failing_since = 0;
            vk__agent_backoff_reset(b);
            atomic_fetch_add(&s->w->st_log_bytes, n);
            pthread_mutex_lock(&s->mu);
            s->up_offset += n;
            s->inflight -= n;
            pthread_cond_broadcast(&s->cond);
            pthread_mutex_unlock(&s->mu);
            continue;
        }
        if (rc == VK_ECONFLICT || rc == VK_EINVAL) {
            vk_log_write(VK_LOG_WARN, AGENT_COMPONENT,
                         rc == VK_ECONFLICT
                             ? "log refused: the attempt is stale; cancelling the run"
                             : "log refused; output of this attempt is not uploaded",
                         "fragment_id", fid, "error", why, NULL);
            pthread_mutex_lock(&s->mu);
            s->up_stale = true;
            if (rc == VK_ECONFLICT)
                vk_exec_cancel_request(&s->cancel);
            pthread_cond_broadcast(&s->cond);
            pthread_mutex_unlock(&s->mu);
            return false;
        }
        int64_t now = vk_time_mono_ns();
        if (!failing_since)
            failing_since = now;
        int64_t limit_ms = UPLOAD_GIVE_UP_MS;
        if (atomic_load(&s->w->stop_requests) >= 2)
            limit_ms = 10000; /* told twice to stop: do not hold the exit for long */
        if (finished && now - failing_since > limit_ms * 1000000) {
            vk_log_write(VK_LOG_ERROR, AGENT_COMPONENT, "giving up uploading output", "fragment_id",
                         fid, "error", why, NULL);
            return false;
        }
        int64_t delay = vk__agent_backoff_next(b);
        vk_log_write(b->failures == 1 ? VK_LOG_WARN : VK_LOG_DEBUG, AGENT_COMPONENT,
                     "log upload failed; retrying", "fragment_id", fid, "error", why, NULL);
        pthread_mutex_lock(&s->mu);
        struct timespec until = abs_ns(vk_time_mono_ns() + delay * 1000000);
        while (!s->up_abandon) {
            if (pthread_cond_timedwait(&s->cond, &s->mu, &until) == ETIMEDOUT)
                break;
        }
        pthread_mutex_unlock(&s->mu);
    }
    return true;
}

static void *uploader_main(void *arg)
{
    struct agent_slot *s = arg;
    char fid[AGENT_MAX_ID + 1];
    struct agent_backoff b;
    vk__agent_backoff_init(&b, 10000, (uint64_t)vk_time_mono_ns() ^ (s->index + 99u));
    pthread_mutex_lock(&s->mu);
    memcpy(fid, s->fragment_id, sizeof(fid));
    uint32_t attempt = s->attempt;
    for (;;) {
        if (s->up_abandon || s->up_stale)
            break;
        if (s->pending.len == 0) {
            if (s->up_finished)
                break;
            pthread_cond_wait(&s->cond, &s->mu);
            continue;
        }
        if (!s->up_finished && s->pending.len < AGENT_CHUNK_MIN) {
            int64_t due = s->first_unsent_ns + (int64_t)AGENT_FLUSH_MS * 1000000;
            if (vk_time_mono_ns() < due) {
                struct timespec until = abs_ns(due);
                (void)pthread_cond_timedwait(&s->cond, &s->mu, &until);
                continue;
            }
        }
        /* Take the whole pending buffer; the callback starts a fresh one. */
        struct vk_buf sending = s->pending;
        vk_buf_init(&s->pending, sending.max);
        s->inflight += sending.len;
        pthread_mutex_unlock(&s->mu);
        bool go_on = send_all(s, fid, attempt, &sending, &b);
        vk_buf_release(&sending);
        pthread_mutex_lock(&s->mu);
        if (!go_on) {
            s->up_dropped += s->inflight + s->pending.len;
            if (!s->up_stale)
                s->up_abandon = true; /* drop the rest too */
            break;
        }
    }
    s->inflight = 0;
    vk_buf_release(&s->pending);
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

int vk__agent_upload_start(struct agent_slot *s)
{
    pthread_mutex_lock(&s->mu);
    vk_buf_release(&s->pending);
    s->inflight = 0;
    s->first_unsent_ns = 0;
    s->up_finished = false;
    s->up_abandon = false;
    s->up_stale = false;
    s->up_offset = 0;
    s->up_dropped = 0;
    pthread_mutex_unlock(&s->mu);
    /* The thread itself starts with the first output: an attempt that prints
     * nothing (common for short steps) costs no thread. */
    s->up_started = false;
    s->up_failed = false;
    return 0;
}

void vk__agent_upload_finish(struct agent_slot *s, bool abandon)
{
    if (!s->up_started) {
        /* No output came (or the thread could not start): nothing to send. */
        pthread_mutex_lock(&s->mu);
        s->up_finished = true;
        s->up_abandon = true;
        vk_buf_release(&s->pending);
        pthread_mutex_unlock(&s->mu);
        return;
    }
    pthread_mutex_lock(&s->mu);
    s->up_finished = true;
    if (abandon)
        s->up_abandon = true;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->up_thread, NULL);
    s->up_started = false;
    /* Once the uploader is gone, late output (none is expected) is dropped. */
    pthread_mutex_lock(&s->mu);
    s->up_abandon = true;
    pthread_mutex_unlock(&s->mu);
}
