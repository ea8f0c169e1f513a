/*
 * Requests: lifetime (reference counts), accessors, replies, suspension.
 *
 * Every reply goes through vk__http_submit(), which stores the MHD response in
 * the request under srv->mu and, when the connection is suspended, resumes it;
 * the polling thread then queues the response (libmicrohttpd only accepts
 * MHD_queue_response from its own thread, inside the access callback). The
 * state machine (http_int.h, enum vk__http_rstate) makes the first reply win
 * and every later one return VK_ECONFLICT.
 */
#include "http_int.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#define REQ_POOL_CHUNK 2048u

struct vk_http_req *vk__http_req_new(struct vk_http_server *srv, struct MHD_Connection *conn)
{
    struct vk_http_req *req = vk_mem_calloc(1, sizeof(*req));
    if (!req)
        return NULL;
    req->srv = srv;
    req->conn = conn;
    atomic_init(&req->refs, 1); /* the connection's */
    req->state = RS_NEW;
    req->susp = SUSP_NONE;
    req->slot = -1;
    req->heap_idx = SIZE_MAX;
    vk_pool_init(&req->pool, REQ_POOL_CHUNK);
    vk_buf_init(&req->body, VK_HTTP_HARD_MAX_BODY);
    req->method = "";
    req->path = "";
    req->start_ns = vk_time_mono_ns();
    return req;
}

void vk__http_req_free(struct vk_http_req *req)
{
    if (!req)
        return;
    if (req->pending)
        MHD_destroy_response(req->pending);
    struct vk__http_hdr *h = req->resp_headers;
    while (h) {
        struct vk__http_hdr *next = h->next;
        vk_mem_free(h->name);
        vk_mem_free(h->value);
        vk_mem_free(h);
        h = next;
    }
    json_decref(req->json);
    vk_buf_release(&req->body);
    vk_pool_release(&req->pool);
    vk_mem_free(req);
}

void vk_http_req_ref(struct vk_http_req *req)
{
    atomic_fetch_add_explicit(&req->refs, 1, memory_order_relaxed);
}

void vk_http_req_unref(struct vk_http_req *req)
{
    if (!req)
        return;
    if (atomic_fetch_sub_explicit(&req->refs, 1, memory_order_acq_rel) == 1)
        vk__http_req_free(req);
}

/* ---------------------------------------------------------------- Accessors */

const char *vk_http_method(const struct vk_http_req *req)
{
    return req->method;
}

const char *vk_http_path(const struct vk_http_req *req)
{
    return req->path;
}

const char *vk_http_route_pattern(const struct vk_http_req *req)
{
    return req->route ? req->route->pattern : NULL;
}

const char *vk_http_param(const struct vk_http_req *req, const char *name)
{
    for (size_t i = 0; i < req->nparams; i++)
        if (strcmp(req->params[i].name, name) == 0)
            return req->params[i].value;
    return NULL;
}

const char *vk_http_query(const struct vk_http_req *req, const char *name)
{
    for (size_t i = 0; i < req->nquery; i++)
        if (strcmp(req->query[i].name, name) == 0)
            return req->query[i].value;
    return NULL;
}

const char *vk_http_header(const struct vk_http_req *req, const char *name)
{
    struct vk_http_server *srv = req->srv;
    const char *v = NULL;
    pthread_mutex_lock(&srv->mu);
    if (req->state != RS_DONE && req->conn)
        v = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
    pthread_mutex_unlock(&srv->mu);
    return v;
}

const char *vk_http_traceparent(const struct vk_http_req *req)
{
    return vk_http_header(req, "traceparent");
}

const char *vk_http_body(const struct vk_http_req *req, size_t *len)
{
    if (len)
        *len = req->body.len;
    return req->body.data;
}

void vk_http_req_set_principal(struct vk_http_req *req, const void *p)
{
    req->principal = p;
}

const void *vk_http_req_principal(const struct vk_http_req *req)
{
    return req->principal;
}

json_t *vk_http_json(const struct vk_http_req *req)
{
    return req->json;
}

const char *vk_http_remote_addr(const struct vk_http_req *req)
{
    return req->remote;
}

struct vk_pool *vk_http_pool(struct vk_http_req *req)
{
    return &req->pool;
}

/* ---------------------------------------------------------------- Replies */

bool vk__http_wake_locked(struct vk_http_req *req)
{
    if (req->susp == SUSP_SUSPENDED) {
        vk__http_watch_del(req);
        req->susp = SUSP_NONE;
        return true;
    }
    if (req->susp == SUSP_SUSPENDING)
        req->wake_pending = true;
    return false;
}

int vk__http_submit(struct vk_http_req *req, struct MHD_Response *resp, unsigned status,
                    struct vk_http_stream *st)
{
    struct vk_http_server *srv = req->srv;
    pthread_mutex_lock(&srv->mu);
    enum vk__http_rstate prev = req->state;
    if (prev != RS_NEW && prev != RS_HANDLER && prev != RS_PARKED && prev != RS_EXPIRING) {
        pthread_mutex_unlock(&srv->mu);
        MHD_destroy_response(resp);
        return VK_ECONFLICT;
    }
    req->pending = resp;
    req->pending_status = status;
    req->state = RS_REPLIED;
    if (st) {
        req->stream = st;
        if (srv->stopping)
            st->server_ending = true;
    }
    bool resume = false;
    if (prev == RS_PARKED || prev == RS_EXPIRING)
        resume = vk__http_wake_locked(req);
    struct MHD_Connection *conn = req->conn;
    pthread_mutex_unlock(&srv->mu);
    /* Still alive: a parked request holds the park reference, an expiring one
     * the expirer's, and a handler's request the connection's. */
    if (resume)
        MHD_resume_connection(conn);
    if (prev == RS_PARKED)
        vk_http_req_unref(req);
    return 0;
}

/* Apply the owner's response headers; consumes the list. */
static int add_headers(struct vk_http_req *req, struct MHD_Response *resp, const char *ctype)
{
    if (ctype && MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype) != MHD_YES)
        return VK_ENOMEM;
    for (struct vk__http_hdr *h = req->resp_headers; h; h = h->next)
        if (MHD_add_response_header(resp, h->name, h->value) != MHD_YES)
            return VK_EINVAL;
    return 0;
}

static void check_status(int status)
{
    VK_ASSERT(status >= 100 && status <= 999);
}

int vk_http_set_header(struct vk_http_req *req, const char *name, const char *value)
{
    struct vk__http_hdr *h = vk_mem_calloc(1, sizeof(*h));
    if (!h)
        return VK_ENOMEM;
    h->name = vk_mem_xstrdup(name);
    h->value = vk_mem_xstrdup(value);
    /* Append, to keep the caller's order. */
    struct vk__http_hdr **pp = &req->resp_headers;
    while (*pp)
        pp = &(*pp)->next;
    *pp = h;
    return 0;
}

/* Build a buffer response taking ownership of `data` (malloc'd, freed by MHD). */
static int reply_owned(struct vk_http_req *req, int status, const char *ctype, char *data,
                       size_t len)
{
    check_status(status);
    struct MHD_Response *resp = MHD_create_response_from_buffer(
        len, data, data ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!resp) {
        free(data);
        return VK_ENOMEM;
    }
    int rc = add_headers(req, resp, ctype);
    if (rc < 0) {
        MHD_destroy_response(resp);
        return rc;
    }
    return vk__http_submit(req, resp, (unsigned)status, NULL);
}

int vk_http_reply(struct vk_http_req *req, int status, const char *content_type, const void *ptr,
                  size_t len)
{
    char *copy = NULL;
    if (len) {
        copy = malloc(len);
        if (!copy)
            return VK_ENOMEM;
        memcpy(copy, ptr, len);
    }
    return reply_owned(req, status, content_type, copy, len);
}

/* ---------------------------------------------------------------- Pulled bodies */

#define PULL_BLOCK (64u * 1024u)

struct pull {
    vk_http_body_fn read;
    void *ctx;
    void (*free_ctx)(void *ctx);
};

static ssize_t pull_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct pull *p = cls;
    ssize_t n = p->read(p->ctx, pos, buf, max);
    /* 0 would make MHD ask again at once: a reader with nothing to give has failed. */
    return n > 0 ? n : MHD_CONTENT_READER_END_WITH_ERROR;
}

static void pull_free(void *cls)
{
    struct pull *p = cls;
    if (p->free_ctx)
        p->free_ctx(p->ctx);
    vk_mem_free(p);
}

int vk_http_reply_pull(struct vk_http_req *req, int status, const char *content_type, uint64_t size,
                       size_t block, vk_http_body_fn read, void *ctx, void (*free_ctx)(void *ctx))
{
    check_status(status);
    struct pull *p = vk_mem_calloc(1, sizeof(*p));
    if (!p) {
        if (free_ctx)
            free_ctx(ctx);
        return VK_ENOMEM;
    }
    *p = (struct pull){.read = read, .ctx = ctx, .free_ctx = free_ctx};
    /* MHD_SIZE_UNKNOWN is all ones: a size that large is not a size. */
    if (size == MHD_SIZE_UNKNOWN)
        size--;
    struct MHD_Response *resp = MHD_create_response_from_callback(size, block ? block : PULL_BLOCK,
                                                                  pull_read, p, pull_free);
    if (!resp) {
        pull_free(p);
        return VK_ENOMEM;
    }
    int rc = add_headers(req, resp, content_type);
    if (rc < 0) {
        MHD_destroy_response(resp); /* frees p */
        return rc;
    }
    return vk__http_submit(req, resp, (unsigned)status, NULL);
}

/* The answer when a reply's JSON cannot be built or encoded: fixed text, so it needs no
 * memory but the response's. Never written (MHD only reads a persistent buffer). */
static char oom_json[] = "{\"error\":\"internal\",\"message\":\"out of memory\"}";

/* Answer 500 out of memory instead of the reply the owner wanted; returns VK_ENOMEM
 * (VK_ECONFLICT when the request is completed already). */
static int reply_oom(struct vk_http_req *req)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(sizeof(oom_json) - 1, oom_json, MHD_RESPMEM_PERSISTENT);
    if (!resp)
        return VK_ENOMEM;
    if (MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json") !=
        MHD_YES) {
        MHD_destroy_response(resp);
        return VK_ENOMEM;
    }
    int rc = vk__http_submit(req, resp, 500, NULL);
    return rc < 0 ? rc : VK_ENOMEM;
}

int vk_http_reply_json(struct vk_http_req *req, int status, json_t *body)
{
    check_status(status);
    size_t len = 0;
    char *text = vk_http_json_text(body, JSON_COMPACT | JSON_ENCODE_ANY, &len);
    json_decref(body);
    if (!text)
        return reply_oom(req);
    return reply_owned(req, status, "application/json", text, len);
}

/* Every string of `j` overwritten with zeros in place (jansson's own copies). */
static void wipe_strings(json_t *j)
{
    if (json_is_string(j)) {
        explicit_bzero((char *)json_string_value(j), json_string_length(j));
    } else if (json_is_object(j)) {
        const char *k;
        json_t *v;
        json_object_foreach(j, k, v)
        {
            wipe_strings(v);
        }
    } else if (json_is_array(j)) {
        size_t i;
        json_t *v;
        json_array_foreach(j, i, v)
        {
            wipe_strings(v);
        }
    }
}

/* A body that is wiped when libmicrohttpd is done with it. */
struct wiped_body {
    size_t len;
    char data[];
};

static void wiped_free(void *cls)
{
    struct wiped_body *b = cls;
    explicit_bzero(b->data, b->len);
    free(b);
}

int vk_http_reply_json_wiped(struct vk_http_req *req, int status, json_t *body)
{
    check_status(status);
    size_t len = 0;
    char *text = body ? vk_http_json_text(body, JSON_COMPACT | JSON_ENCODE_ANY, &len) : NULL;
    wipe_strings(body);
    json_decref(body);
    struct wiped_body *b = text ? malloc(sizeof(*b) + len + 1) : NULL;
    if (text) {
        if (b) {
            b->len = len;
            memcpy(b->data, text, len);
        }
        explicit_bzero(text, len);
        free(text);
    }
    if (!b)
        return reply_oom(req);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer_with_free_callback_cls(len, b->data, wiped_free, b);
    if (!resp) {
        wiped_free(b);
        return VK_ENOMEM;
    }
    int rc = add_headers(req, resp, "application/json");
    if (rc < 0) {
        MHD_destroy_response(resp);
        return rc;
    }
    return vk__http_submit(req, resp, (unsigned)status, NULL);
}

int vk_http_reply_error(struct vk_http_req *req, int status, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    json_t *o = json_pack("{s:s, s:s}", "error", code, "message", msg);
    if (!o) /* invalid UTF-8 in the message: send it without */
        o = json_pack("{s:s, s:s}", "error", code, "message", "(message not valid UTF-8)");
    return vk_http_reply_json(req, status, o); /* NULL still: out of memory, a 500 */
}

int vk_http_reply_empty(struct vk_http_req *req, int status)
{
    return reply_owned(req, status, NULL, NULL, 0);
}

struct MHD_Response *vk__http_error_response(const char *code, const char *msg)
{
    json_t *o = json_pack("{s:s, s:s}", "error", code, "message", msg);
    if (!o && msg) {
        /* Not UTF-8 (a path or header quoted from the request, or one cut short by a
         * bound): send it with every non-ASCII byte as '?' rather than no answer. */
        char safe[1024];
        size_t i = 0;
        for (; msg[i] && i + 1 < sizeof safe; i++)
            safe[i] = (unsigned char)msg[i] < 0x80 ? msg[i] : '?';
        safe[i] = '\0';
        o = json_pack("{s:s, s:s}", "error", code, "message", safe);
    }
    size_t len = 0;
    char *text = vk_http_json_text(o, JSON_COMPACT, &len);
    json_decref(o);
    if (!text)
        return NULL;
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, text, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(text);
        return NULL;
    }
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
    return resp;
}

/* ---------------------------------------------------------------- Suspension */

int vk_http_suspend(struct vk_http_req *req, int64_t timeout_ms, vk_http_req_fn on_timeout,
                    vk_http_req_fn on_close, void *ctx)
{
    struct vk_http_server *srv = req->srv;
    pthread_mutex_lock(&srv->mu);
    if (req->state != RS_HANDLER || req->park_request) {
        pthread_mutex_unlock(&srv->mu);
        return VK_EINVAL;
    }
    req->park_request = true;
    req->on_timeout = on_timeout;
    req->on_close = on_close;
    req->cb_ctx = ctx;
    req->deadline_ns = timeout_ms > 0 ? vk_time_mono_ns() + timeout_ms * 1000000 : 0;
    pthread_mutex_unlock(&srv->mu);
    return 0;
}

void vk__http_conn_suspend(struct vk_http_req *req, bool with_deadline)
{
    struct vk_http_server *srv = req->srv;
    struct MHD_Connection *conn = req->conn;
    /* Caller set susp = SUSPENDING under the lock: a wake-up from now on only
     * sets wake_pending, so MHD_resume_connection can never precede this. */
    MHD_suspend_connection(conn);
    pthread_mutex_lock(&srv->mu);
    if (req->wake_pending) {
        req->wake_pending = false;
        req->susp = SUSP_NONE;
        pthread_mutex_unlock(&srv->mu);
        MHD_resume_connection(conn);
        return;
    }
    req->susp = SUSP_SUSPENDED;
    vk__http_watch_add(req, with_deadline);
    pthread_mutex_unlock(&srv->mu);
}

void vk__http_expire(struct vk_http_req *req, unsigned fallback)
{
    struct vk_http_server *srv = req->srv;
    if (req->on_timeout)
        req->on_timeout(req, req->cb_ctx);
    pthread_mutex_lock(&srv->mu);
    bool still = req->state == RS_EXPIRING;
    pthread_mutex_unlock(&srv->mu);
    if (still) {
        struct MHD_Response *resp =
            fallback == MHD_HTTP_NO_CONTENT
                ? MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT)
                : vk__http_error_response("unavailable", "server is stopping");
        if (resp) {
            int rc = vk__http_submit(req, resp, fallback, NULL);
            (void)rc; /* VK_ECONFLICT: a reply from another thread won */
        }
    }
    vk_http_detained_end(req);
}

int vk_http_detain(struct vk_http_req *req)
{
    struct vk_http_server *srv = req->srv;
    pthread_mutex_lock(&srv->mu);
    if (req->state != RS_PARKED) {
        pthread_mutex_unlock(&srv->mu);
        return VK_ECONFLICT;
    }
    /* As an expirer does: the park reference is now the caller's, and neither the
     * deadline nor a disconnect calls back (both look for RS_PARKED). A watch added
     * later by a connection still being suspended finds it not parked and drops it. */
    req->state = RS_EXPIRING;
    vk__http_watch_del(req);
    pthread_mutex_unlock(&srv->mu);
    return 0;
}

void vk_http_detained_end(struct vk_http_req *req)
{
    struct vk_http_server *srv = req->srv;
    /* A request left EXPIRING here (no reply, or out of memory) would hang: close it. */
    pthread_mutex_lock(&srv->mu);
    bool resume = false;
    if (req->state == RS_EXPIRING) {
        req->state = RS_CLOSING;
        resume = vk__http_wake_locked(req);
    }
    struct MHD_Connection *conn = req->conn;
    pthread_mutex_unlock(&srv->mu);
    if (resume)
        MHD_resume_connection(conn);
    vk_http_req_unref(req); /* the park reference */
}
