/*
 * Streamed responses: a bounded byte queue fed by the owner from any thread
 * and drained by libmicrohttpd's content-reader callback on the polling
 * thread. When the queue is empty the reader suspends the connection (so an
 * idle stream costs no CPU); a write, a close or a disconnect resumes it.
 */
#include "http_int.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#define STREAM_BLOCK 8192u

void vk__http_stream_unref(struct vk_http_stream *st)
{
    if (!st)
        return;
    if (atomic_fetch_sub_explicit(&st->refs, 1, memory_order_acq_rel) != 1)
        return;
    pthread_cond_destroy(&st->room);
    vk_mem_free(st->q);
    vk_mem_free(st);
}

int vk_http_reply_stream(struct vk_http_req *req, int status, const char *content_type,
                         const struct vk_http_stream_opts *opts, struct vk_http_stream **out)
{
    *out = NULL;
    VK_ASSERT(status >= 100 && status <= 999);
    struct vk_http_stream *st = vk_mem_calloc(1, sizeof(*st));
    if (!st)
        return VK_ENOMEM;
    atomic_init(&st->refs, 2); /* the owner's and the connection's */
    st->srv = req->srv;
    st->req = req;
    st->qmax = opts && opts->max_queue ? opts->max_queue : VK_HTTP_DEFAULT_STREAM_QUEUE;
    st->on_close = opts ? opts->on_close : NULL;
    st->ctx = opts ? opts->ctx : NULL;
    vk_time_cond_init(&st->room);

    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, STREAM_BLOCK,
                                                                  vk__http_stream_read, st, NULL);
    if (!resp)
        goto fail;
    if (content_type &&
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, content_type) != MHD_YES)
        goto fail_resp;
    for (struct vk__http_hdr *h = req->resp_headers; h; h = h->next)
        if (MHD_add_response_header(resp, h->name, h->value) != MHD_YES)
            goto fail_resp;
    /* Proxies must not buffer an event stream. */
    MHD_add_response_header(resp, "X-Accel-Buffering", "no");
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    int rc = vk__http_submit(req, resp, (unsigned)status, st);
    if (rc < 0) {
        pthread_cond_destroy(&st->room);
        vk_mem_free(st);
        return rc;
    }
    *out = st;
    return 0;

fail_resp:
    MHD_destroy_response(resp);
fail:
    pthread_cond_destroy(&st->room);
    vk_mem_free(st);
    return VK_ENOMEM;
}

/* Polling thread: hand MHD up to `max` queued bytes, or end, or suspend. */
ssize_t vk__http_stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct vk_http_stream *st = cls;
    struct vk_http_server *srv = st->srv;
    (void)pos;
    pthread_mutex_lock(&srv->mu);
    struct vk_http_req *req = st->req;
    if (st->qlen > 0) {
        size_t n = st->qlen < max ? st->qlen : max;
        memcpy(buf, st->q + st->qhead, n);
        st->qhead += n;
        st->qlen -= n;
        if (st->qlen == 0)
            st->qhead = 0;
        pthread_cond_broadcast(&st->room);
        pthread_mutex_unlock(&srv->mu);
        return (ssize_t)n;
    }
    if (st->peer_gone || !req) {
        pthread_mutex_unlock(&srv->mu);
        return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    if (st->owner_closed || st->server_ending) {
        pthread_mutex_unlock(&srv->mu);
        return MHD_CONTENT_READER_END_OF_STREAM;
    }
    req->susp = SUSP_SUSPENDING;
    req->wake_pending = false;
    pthread_mutex_unlock(&srv->mu);
    vk__http_conn_suspend(req, false);
    return 0;
}

/* Make room for `len` more bytes (under srv->mu). */
static int queue_room(struct vk_http_stream *st, size_t len)
{
    if (st->qhead + st->qlen + len <= st->qcap)
        return 0;
    if (st->qhead) {
        memmove(st->q, st->q + st->qhead, st->qlen);
        st->qhead = 0;
        if (st->qlen + len <= st->qcap)
            return 0;
    }
    size_t cap = st->qcap ? st->qcap : 4096;
    while (cap < st->qlen + len)
        cap *= 2;
    if (cap > st->qmax)
        cap = st->qmax;
    char *q = vk_mem_realloc(st->q, cap);
    if (!q)
        return VK_ENOMEM;
    st->q = q;
    st->qcap = cap;
    return 0;
}

/* Under srv->mu. Returns 0, or the write's error; sets *resume. */
static int write_locked(struct vk_http_stream *st, const void *ptr, size_t len, bool *resume)
{
    *resume = false;
    if (st->owner_closed)
        return VK_EINVAL;
    if (st->peer_gone || st->server_ending || !st->req)
        return VK_EIO;
    if (len > st->qmax)
        return VK_ETOOBIG;
    if (st->qlen + len > st->qmax)
        return VK_EAGAIN;
    if (len == 0)
        return 0;
    int rc = queue_room(st, len);
    if (rc < 0)
        return rc;
    memcpy(st->q + st->qhead + st->qlen, ptr, len);
    st->qlen += len;
    *resume = vk__http_wake_locked(st->req);
    return 0;
}

int vk_http_stream_write(struct vk_http_stream *st, const void *ptr, size_t len)
{
    struct vk_http_server *srv = st->srv;
    bool resume;
    pthread_mutex_lock(&srv->mu);
    int rc = write_locked(st, ptr, len, &resume);
    struct MHD_Connection *conn = resume ? st->req->conn : NULL;
    pthread_mutex_unlock(&srv->mu);
    /* We moved the connection out of SUSPENDED, so it cannot complete
     * before this resume: `conn` is valid. */
    if (resume)
        MHD_resume_connection(conn);
    return rc;
}

int vk_http_stream_write_wait(struct vk_http_stream *st, const void *ptr, size_t len,
                              int64_t timeout_ms)
{
    struct vk_http_server *srv = st->srv;
    struct timespec until = vk_time_deadline(timeout_ms);
    bool resume;
    pthread_mutex_lock(&srv->mu);
    int rc;
    for (;;) {
        rc = write_locked(st, ptr, len, &resume);
        if (rc != VK_EAGAIN)
            break;
        if (pthread_cond_timedwait(&st->room, &srv->mu, &until) == ETIMEDOUT) {
            rc = write_locked(st, ptr, len, &resume);
            if (rc == VK_EAGAIN)
                rc = VK_ETIMEDOUT;
            break;
        }
    }
    struct MHD_Connection *conn = resume ? st->req->conn : NULL;
    pthread_mutex_unlock(&srv->mu);
    if (resume)
        MHD_resume_connection(conn);
    return rc;
}

bool vk_http_stream_gone(struct vk_http_stream *st)
{
    pthread_mutex_lock(&st->srv->mu);
    bool gone = st->peer_gone || st->server_ending || !st->req;
    pthread_mutex_unlock(&st->srv->mu);
    return gone;
}

void vk_http_stream_close(struct vk_http_stream *st)
{
    if (!st)
        return;
    struct vk_http_server *srv = st->srv;
    pthread_mutex_lock(&srv->mu);
    st->owner_closed = true;
    bool resume = st->req ? vk__http_wake_locked(st->req) : false;
    struct MHD_Connection *conn = resume ? st->req->conn : NULL;
    pthread_cond_broadcast(&st->room);
    pthread_mutex_unlock(&srv->mu);
    if (resume)
        MHD_resume_connection(conn);
    vk__http_stream_unref(st);
}

bool vk__http_stream_end_locked(struct vk_http_stream *st)
{
    st->server_ending = true;
    pthread_cond_broadcast(&st->room);
    return st->req ? vk__http_wake_locked(st->req) : false;
}

void vk__http_stream_detach(struct vk_http_stream *st, bool ok)
{
    struct vk_http_server *srv = st->srv;
    pthread_mutex_lock(&srv->mu);
    st->req = NULL;
    st->peer_gone = true;
    bool notify = !st->owner_closed && !st->notified && st->on_close;
    st->notified = true;
    pthread_cond_broadcast(&st->room);
    pthread_mutex_unlock(&srv->mu);
    (void)ok;
    if (notify)
        st->on_close(st, st->ctx);
    vk__http_stream_unref(st); /* the connection's */
}
