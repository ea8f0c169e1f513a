/*
 * The server: listening socket, libmicrohttpd daemon and its callbacks
 * (access handler, completion), request start-up (routing, query, limits,
 * JSON) and the graceful stop.
 */
#include "http_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define DEF_THREADS 2u
#define DEF_CONN_LIMIT 10000u
#define DEF_PER_ADDRESS 64u
/* Connections of an address past its limit answered 429 (then closed) before libmicrohttpd
 * closes any more at accept without a word. */
#define PER_ADDRESS_429 16u
#define DEF_REQUEST_TIMEOUT_S 60u
#define DEF_CONN_MEMORY (36u * 1024u)
#define DEF_IDLE_TIMEOUT_S 60u
#define DEF_BACKLOG 1024u
#define DEF_STOP_GRACE_MS 5000u
#define MAX_QUERY_PARAMS 64u

/* ---------------------------------------------------------------- Lifecycle */

int vk_http_server_new(const struct vk_http_server_opts *opts, struct vk_http_server **out,
                       struct vk_err *err)
{
    *out = NULL;
    if (!opts || !opts->listen || !*opts->listen)
        return vk_err_set(err, VK_EINVAL, "http server needs a listen address");
    struct vk_http_server *srv = vk_mem_calloc(1, sizeof(*srv));
    if (!srv)
        return vk_err_set(err, VK_ENOMEM, "out of memory");
    srv->opts = *opts;
    srv->listen = vk_mem_xstrdup(opts->listen);
    srv->opts.listen = srv->listen;
    if (!srv->opts.threads)
        srv->opts.threads = DEF_THREADS;
    if (!srv->opts.connection_limit)
        srv->opts.connection_limit = DEF_CONN_LIMIT;
    if (!srv->opts.per_addr_limit)
        srv->opts.per_addr_limit = DEF_PER_ADDRESS;
    if (!srv->opts.req_timeout_s)
        srv->opts.req_timeout_s = DEF_REQUEST_TIMEOUT_S;
    if (!srv->opts.connection_memory)
        srv->opts.connection_memory = DEF_CONN_MEMORY;
    if (!srv->opts.idle_timeout_s)
        srv->opts.idle_timeout_s = DEF_IDLE_TIMEOUT_S;
    if (!srv->opts.listen_backlog)
        srv->opts.listen_backlog = DEF_BACKLOG;
    if (!srv->opts.stop_grace_ms)
        srv->opts.stop_grace_ms = DEF_STOP_GRACE_MS;
    srv->listen_fd = -1;
    srv->opts.tls_cert_pem = srv->opts.tls_key_pem = NULL; /* parsed below, not kept */
    vk__http_router_init(&srv->router);
    pthread_mutex_init(&srv->mu, NULL);
    vk_time_cond_init(&srv->idle);
    int rc = vk__http_watch_init(srv, err);
    if (rc == 0 && (opts->tls_cert_pem || opts->tls_key_pem))
        rc = vk__http_tls_new(srv, opts->tls_cert_pem, opts->tls_key_pem, err);
    if (rc < 0) {
        vk_http_server_free(srv);
        return rc;
    }
    *out = srv;
    return 0;
}

void vk_http_server_free(struct vk_http_server *srv)
{
    if (!srv)
        return;
    vk_http_server_stop(srv);
    vk__http_watch_release(srv);
    vk__http_router_release(&srv->router);
    pthread_cond_destroy(&srv->idle);
    pthread_mutex_destroy(&srv->mu);
    if (srv->listen_fd >= 0)
        close(srv->listen_fd);
    vk__http_tls_free(srv);
    for (size_t i = 0; i < VK__HTTP_ADDR_BUCKETS; i++) /* empty once MHD closed everything */
        while (srv->addrs[i]) {
            struct vk__http_addr *e = srv->addrs[i];
            srv->addrs[i] = e->next;
            vk_mem_free(e);
        }
    vk_mem_free(srv->listen);
    vk_mem_free(srv);
}

int vk_http_route(struct vk_http_server *srv, const char *method, const char *pattern,
                  vk_http_handler_fn handler, void *ctx, const struct vk_http_route_opts *opts,
                  struct vk_err *err)
{
    if (srv->started)
        return vk_err_set(err, VK_EINVAL, "route '%s': server already started",
                          pattern ? pattern : "");
    return vk__http_router_add(&srv->router, method, pattern, handler, ctx, opts, err);
}

size_t vk_http_route_count(const struct vk_http_server *srv)
{
    return srv->router.n;
}

int vk_http_route_at(const struct vk_http_server *srv, size_t i, const char **method,
                     const char **pattern)
{
    for (size_t k = 0; k < srv->router.n; k++) {
        const struct vk__http_route *rt = srv->router.routes[k];
        if (rt->order == i) {
            *method = rt->method;
            *pattern = rt->pattern;
            return 0;
        }
    }
    return VK_ENOTFOUND;
}

uint16_t vk_http_server_port(const struct vk_http_server *srv)
{
    return srv->port;
}

/* ---------------------------------------------------------------- Listening */

/* Split "host:port", "[v6]:port" or ":port" and open a listening socket. */
static int open_listener(struct vk_http_server *srv, struct vk_err *err)
{
    const char *spec = srv->listen;
    char host[256];
    const char *colon;
    if (spec[0] == '[') {
        const char *close_b = strchr(spec, ']');
        if (!close_b || close_b[1] != ':' || (size_t)(close_b - spec - 1) >= sizeof(host))
            return vk_err_set(err, VK_EINVAL, "bad listen address '%s'", spec);
        memcpy(host, spec + 1, (size_t)(close_b - spec - 1));
        host[close_b - spec - 1] = '\0';
        colon = close_b + 1;
    } else {
        colon = strrchr(spec, ':');
        if (!colon || (size_t)(colon - spec) >= sizeof(host))
            return vk_err_set(err, VK_EINVAL, "bad listen address '%s' (want ADDR:PORT)", spec);
        memcpy(host, spec, (size_t)(colon - spec));
        host[colon - spec] = '\0';
        if (!host[0])
            strcpy(host, "0.0.0.0");
    }
    const char *port = colon + 1;
    char *end = NULL;
    errno = 0;
    unsigned long pnum = strtoul(port, &end, 10);
    if (!*port || *end || errno || pnum > 65535)
        return vk_err_set(err, VK_EINVAL, "bad port in listen address '%s'", spec);

    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    int gai = getaddrinfo(host, port, &hints, &ai);
    if (gai != 0)
        return vk_err_set(err, VK_EINVAL, "cannot resolve listen address '%s': %s", spec,
                          gai_strerror(gai));
    int rc = 0;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        rc = vk_err_errno(err, "socket");
        goto out;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (ai->ai_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 ||
        listen(fd, (int)srv->opts.listen_backlog) < 0) {
        int e = errno;
        rc = vk_err_set(err, VK_EIO, "cannot listen on '%s': %s", spec, strerror(e));
        close(fd);
        goto out;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0)
        srv->port = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                   : ((struct sockaddr_in *)&ss)->sin_port);
    srv->listen_fd = fd;
out:
    freeaddrinfo(ai);
    return rc;
}

/* ---------------------------------------------------------------- Request start */

static size_t no_unescape(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    return strlen(s);
}

struct query_ctx {
    struct vk_http_req *req;
    size_t n;
    bool bad;
};

static enum MHD_Result count_query(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    struct query_ctx *q = cls;
    (void)kind;
    (void)key;
    (void)value;
    q->n++;
    return MHD_YES;
}

static enum MHD_Result store_query(void *cls, enum MHD_ValueKind kind, const char *key,
                                   const char *value)
{
    struct query_ctx *q = cls;
    struct vk_http_req *req = q->req;
    (void)kind;
    if (req->nquery >= q->n)
        return MHD_NO;
    const char *k = vk__http_decode(&req->pool, key, strlen(key), true);
    const char *v = value ? vk__http_decode(&req->pool, value, strlen(value), true) : "";
    if (!k || !v) {
        q->bad = true;
        return MHD_NO;
    }
    req->query[req->nquery].name = k;
    req->query[req->nquery].value = v;
    req->nquery++;
    return MHD_YES;
}

static void set_remote(struct vk_http_req *req)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    snprintf(req->remote, sizeof(req->remote), "?");
    if (!ci || !ci->client_addr)
        return;
    const struct sockaddr *sa = ci->client_addr;
    socklen_t len =
        sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    getnameinfo(sa, len, req->remote, sizeof(req->remote), NULL, 0, NI_NUMERICHOST);
}

/* Reply early from the polling thread (before any handler). */
static void early_error_h(struct vk_http_req *req, unsigned status, const char *code,
                          const char *msg, const char *header, const char *value)
{
    /* Set first: even when no answer can be made (out of memory), the request is refused
     * and its handler never runs (the connection is closed instead). */
    req->early_status = (int)status;
    struct MHD_Response *resp = vk__http_error_response(code, msg);
    if (!resp)
        return;
    if (header && value)
        MHD_add_response_header(resp, header, value);
    int rc = vk__http_submit(req, resp, status, NULL);
    (void)rc;
}

static void early_error(struct vk_http_req *req, unsigned status, const char *code, const char *msg,
                        const char *allow)
{
    early_error_h(req, status, code, msg, MHD_HTTP_HEADER_ALLOW, allow);
}

/* First call of the access handler: headers are in. Route and check limits. */
/* Content-Type application/json or application/<something>+json, with parameters. */
static bool is_json_type(const char *ct)
{
    if (!ct)
        return false;
    while (*ct == ' ')
        ct++;
    size_t n = strcspn(ct, "; ");
    if (n == 16 && strncasecmp(ct, "application/json", 16) == 0)
        return true;
    return n > 17 && strncasecmp(ct, "application/", 12) == 0 &&
           strncasecmp(ct + n - 5, "+json", 5) == 0;
}

static void begin(struct vk_http_req *req, const char *url, const char *method)
{
    struct vk_http_server *srv = req->srv;
    char msg[320];
    set_remote(req);
    req->method = vk_pool_strndup(&req->pool, method, strlen(method));
    req->path = vk_pool_strndup(&req->pool, url, strlen(url));
    if (!req->method || !req->path) {
        early_error(req, 500, "internal", "out of memory", NULL);
        return;
    }
    struct vk_buf allow = VK_BUF_INIT(1024);
    enum vk__http_match m = vk__http_router_match(&srv->router, req->method, req->path, &req->pool,
                                                  &req->route, &req->params, &req->nparams, &allow);
    switch (m) {
    case VK__HTTP_MATCH_OK:
        break;
    case VK__HTTP_MATCH_NOT_FOUND:
        snprintf(msg, sizeof(msg), "no route for '%.20s %.256s'", req->method, req->path);
        early_error(req, 404, "not_found", msg, NULL);
        goto out;
    case VK__HTTP_MATCH_BAD_METHOD:
        snprintf(msg, sizeof(msg), "method '%.20s' not allowed on '%.256s'", req->method,
                 req->path);
        early_error(req, 405, "method_not_allowed", msg, allow.data);
        goto out;
    case VK__HTTP_MATCH_BAD_PATH:
        early_error(req, 400, "bad_request", "invalid percent-encoding in path", NULL);
        goto out;
    }

    struct query_ctx q = {.req = req};
    MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, count_query, &q);
    if (q.n > MAX_QUERY_PARAMS) {
        early_error(req, 400, "bad_request", "too many query parameters", NULL);
        goto out;
    }
    if (q.n) {
        req->query = vk_pool_alloc(&req->pool, q.n * sizeof(*req->query));
        if (!req->query) {
            early_error(req, 500, "internal", "out of memory", NULL);
            goto out;
        }
        MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, store_query, &q);
        if (q.bad) {
            early_error(req, 400, "bad_request", "invalid percent-encoding in query", NULL);
            goto out;
        }
    }

    if (srv->opts.gate) {
        struct vk_http_refusal no = {0};
        if (srv->opts.gate(req, srv->opts.gate_ctx, &no) != 0) {
            unsigned st = no.status >= 400 && no.status <= 599 ? (unsigned)no.status : 403;
            early_error_h(req, st, no.code ? no.code : "forbidden", no.message,
                          MHD_HTTP_HEADER_WWW_AUTHENTICATE, no.www_authenticate);
            goto out;
        }
    }
    if (req->route->json && !is_json_type(MHD_lookup_connection_value(
                                req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE))) {
        /* A browser's cross-site form can send text/plain with a JSON-looking body, never
         * application/json without asking the server first (CORS preflight). */
        early_error(req, 415, "unsupported_media_type",
                    "this route takes a JSON body: send Content-Type: application/json", NULL);
        goto out;
    }
    req->body.max = req->route->max_body;
    const char *cl =
        MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
    if (cl) {
        char *end = NULL;
        errno = 0;
        unsigned long long n = strtoull(cl, &end, 10);
        if (errno || end == cl || n > req->route->max_body) {
            snprintf(msg, sizeof(msg), "request body larger than %zu bytes", req->route->max_body);
            early_error(req, 413, "payload_too_large", msg, NULL);
            goto out;
        }
    }
out:
    vk_buf_release(&allow);
}

/* ---------------------------------------------------------------- Access handler */

/*
 * Refuse a request in the middle of its body. libmicrohttpd 0.9 accepts a
 * response only before the body is read or after all of it was, and we will
 * not read past the cap; so write a complete "Connection: close" response
 * to the socket ourselves and have MHD close the connection (MHD_NO). This is
 * safe: MHD has written nothing for this request but perhaps a complete
 * "100 Continue", and the previous response on the connection was finished
 * before this request was read.
 */
static enum MHD_Result reject_mid_upload(struct vk_http_req *req, const char *status_line,
                                         const char *code, const char *msg)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    json_t *o = json_pack("{s:s, s:s}", "error", code, "message", msg);
    char *body = vk_http_json_text(o, JSON_COMPACT, NULL);
    json_decref(o);
    if (ci && body && !req->srv->tls) { /* with TLS, plain bytes would only garble it */
        char out[512];
        int n = snprintf(out, sizeof(out),
                         "HTTP/1.1 %s\r\nContent-Type: application/json\r\n"
                         "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                         status_line, strlen(body), body);
        if (n > 0 && (size_t)n < sizeof(out)) {
            ssize_t w = send(ci->connect_fd, out, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT);
            (void)w; /* best effort: the connection is closed either way */
            shutdown(ci->connect_fd, SHUT_WR);
        }
    }
    free(body);
    pthread_mutex_lock(&req->srv->mu);
    req->state = RS_CLOSING;
    pthread_mutex_unlock(&req->srv->mu);
    return MHD_NO;
}

/* Queue the pending response (polling thread). */
static enum MHD_Result queue_pending(struct vk_http_req *req)
{
    struct vk_http_server *srv = req->srv;
    pthread_mutex_lock(&srv->mu);
    struct MHD_Response *resp = req->pending;
    unsigned status = req->pending_status;
    req->pending = NULL;
    req->state = RS_QUEUED;
    if (req->cx)
        vk__http_conn_disarm(srv, req->cx); /* the request is answered */
    pthread_mutex_unlock(&srv->mu);
    if (!resp)
        return MHD_NO;
    enum MHD_Result r = MHD_queue_response(req->conn, status, resp);
    MHD_destroy_response(resp);
    if (srv->opts.on_complete)
        srv->opts.on_complete(req, (int)status, vk_time_mono_ns() - req->start_ns,
                              srv->opts.on_complete_ctx);
    return r;
}

/* After the handler returned: queue its reply, park the request, or 500. */
static enum MHD_Result after_handler(struct vk_http_req *req)
{
    struct vk_http_server *srv = req->srv;
    pthread_mutex_lock(&srv->mu);
    if (req->state == RS_HANDLER && req->park_request) {
        vk_http_req_ref(req); /* the park reference */
        if (srv->stopping) {
            req->state = RS_EXPIRING;
            pthread_mutex_unlock(&srv->mu);
            vk__http_expire(req, MHD_HTTP_SERVICE_UNAVAILABLE);
            return queue_pending(req);
        }
        req->state = RS_PARKED;
        req->susp = SUSP_SUSPENDING;
        req->wake_pending = false;
        bool deadline = req->deadline_ns > 0;
        pthread_mutex_unlock(&srv->mu);
        vk__http_conn_suspend(req, deadline);
        return MHD_YES;
    }
    enum vk__http_rstate st = req->state;
    pthread_mutex_unlock(&srv->mu);
    if (st == RS_HANDLER) {
        struct MHD_Response *resp =
            vk__http_error_response("internal", "the handler did not reply");
        if (!resp || vk__http_submit(req, resp, 500, NULL) < 0)
            return MHD_NO;
    }
    return queue_pending(req);
}

static enum MHD_Result run_handler(struct vk_http_req *req)
{
    struct vk_http_server *srv = req->srv;
    const struct vk__http_route *rt = req->route;
    if (rt->json) {
        char msg[300];
        if (req->body.len == 0) {
            early_error(req, 400, "bad_request", "request body must be JSON", NULL);
            return queue_pending(req);
        }
        json_error_t je;
        req->json = json_loadb(req->body.data, req->body.len, JSON_DECODE_ANY, &je);
        /* Out of memory, or so early that jansson gave no reason (it could not set up its
         * lexer): not the client's fault. */
        if (!req->json && (json_error_code(&je) == json_error_out_of_memory || !je.text[0])) {
            early_error(req, 500, "internal", "out of memory", NULL);
            return queue_pending(req);
        }
        if (!req->json) {
            snprintf(msg, sizeof(msg), "invalid JSON: %s (line %d, column %d)", je.text, je.line,
                     je.column);
            early_error(req, 400, "bad_request", msg, NULL);
            return queue_pending(req);
        }
    }
    pthread_mutex_lock(&srv->mu);
    if (req->cx && req->cx->expired) {
        /* Its deadline passed as the last byte came: the 408 is sent already. */
        pthread_mutex_unlock(&srv->mu);
        return MHD_NO;
    }
    req->state = RS_HANDLER;
    if (req->cx)
        vk__http_conn_disarm(srv, req->cx); /* in: the deadline no longer applies */
    pthread_mutex_unlock(&srv->mu);
    rt->handler(req, rt->ctx);
    return after_handler(req);
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls)
{
    struct vk_http_server *srv = cls;
    struct vk_http_req *req = *con_cls;
    (void)version;
    if (!req) {
        const union MHD_ConnectionInfo *sc =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
        struct vk__http_conn *cx = sc ? sc->socket_context : NULL;
        pthread_mutex_lock(&srv->mu);
        bool answered = cx && cx->expired;
        pthread_mutex_unlock(&srv->mu);
        if (answered)
            return MHD_NO; /* 429 or 408 sent: nothing more on this connection */
        req = vk__http_req_new(srv, conn);
        if (!req)
            return MHD_NO;
        *con_cls = req;
        req->cx = cx;
        pthread_mutex_lock(&srv->mu);
        req->live_next = srv->live;
        if (srv->live)
            srv->live->live_prev = req;
        srv->live = req;
        srv->live_count++;
        pthread_mutex_unlock(&srv->mu);
        begin(req, url, method);
        if (req->early_status)
            return queue_pending(req);
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        pthread_mutex_lock(&srv->mu);
        bool expired = req->cx && req->cx->expired;
        pthread_mutex_unlock(&srv->mu);
        if (expired)
            return MHD_NO;
        if (req->early_status || req->state != RS_NEW)
            return MHD_YES;
        if (n > req->body.max - req->body.len) {
            char msg[96];
            snprintf(msg, sizeof(msg), "request body larger than %zu bytes", req->body.max);
            return reject_mid_upload(req, "413 Payload Too Large", "payload_too_large", msg);
        }
        if (vk_buf_add(&req->body, upload_data, n) < 0)
            return reject_mid_upload(req, "500 Internal Server Error", "internal", "out of memory");
        return MHD_YES;
    }
    pthread_mutex_lock(&srv->mu);
    enum vk__http_rstate st = req->state;
    pthread_mutex_unlock(&srv->mu);
    switch (st) {
    case RS_NEW:
        return run_handler(req);
    case RS_REPLIED:
        return queue_pending(req);
    case RS_CLOSING:
        return MHD_NO;
    default:
        return MHD_YES;
    }
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct vk_http_server *srv = cls;
    struct vk_http_req *req = *con_cls;
    (void)conn;
    if (!req)
        return;
    *con_cls = NULL;
    pthread_mutex_lock(&srv->mu);
    bool was_parked = req->state == RS_PARKED;
    req->state = RS_DONE;
    vk__http_watch_del(req);
    req->susp = SUSP_NONE;
    struct vk_http_stream *st = req->stream;
    if (req->live_prev)
        req->live_prev->live_next = req->live_next;
    else
        srv->live = req->live_next;
    if (req->live_next)
        req->live_next->live_prev = req->live_prev;
    req->live_prev = req->live_next = NULL;
    if (req->cx && toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
        vk__http_conn_arm(srv, req->cx); /* the clock of the next request on the connection */
    if (--srv->live_count == 0)
        pthread_cond_broadcast(&srv->idle);
    pthread_mutex_unlock(&srv->mu);
    if (was_parked) {
        /* Should not happen (MHD does not close suspended connections), but
         * if it does the owner must still learn of it. */
        if (req->on_close)
            req->on_close(req, req->cb_ctx);
        vk_http_req_unref(req);
    }
    if (st)
        vk__http_stream_detach(st, toe == MHD_REQUEST_TERMINATED_COMPLETED_OK);
    vk_http_req_unref(req);
}

/* ---------------------------------------------------------------- Request deadline */

#define DYING_GRACE_NS (1000 * 1000 * 1000) /* after the 408, before the abort */

static void conn_unlink(struct vk__http_conn *cx)
{
    struct vk__http_conn_list *l = cx->list;
    if (!l)
        return;
    if (cx->prev)
        cx->prev->next = cx->next;
    else
        l->head = cx->next;
    if (cx->next)
        cx->next->prev = cx->prev;
    else
        l->tail = cx->prev;
    cx->prev = cx->next = NULL;
    cx->list = NULL;
}

/* Append (the latest deadline); wake the watcher when it is the list's first. */
static void conn_push(struct vk_http_server *srv, struct vk__http_conn_list *l,
                      struct vk__http_conn *cx, int64_t deadline_ns)
{
    conn_unlink(cx);
    cx->deadline_ns = deadline_ns;
    cx->prev = l->tail;
    cx->next = NULL;
    if (l->tail)
        l->tail->next = cx;
    else
        l->head = cx;
    l->tail = cx;
    cx->list = l;
    if (l->head == cx)
        vk__http_watch_wake(srv); /* its timeout was for something later, or none */
}

void vk__http_conn_arm(struct vk_http_server *srv, struct vk__http_conn *cx)
{
    if (!cx->expired)
        conn_push(srv, &srv->reading, cx,
                  vk_time_mono_ns() + (int64_t)srv->opts.req_timeout_s * 1000000000);
}

void vk__http_conn_disarm(struct vk_http_server *srv, struct vk__http_conn *cx)
{
    if (cx->list == &srv->reading)
        conn_unlink(cx);
}

#define TIMEOUT_BODY                                                                               \
    "{\"error\":\"request_timeout\",\"message\":\"the request took too long to arrive\"}"
static const char timeout_reply[] = "HTTP/1.1 408 Request Timeout\r\n"
                                    "Content-Type: application/json\r\n"
                                    "Content-Length: 75\r\nConnection: close\r\n\r\n" TIMEOUT_BODY;
_Static_assert(sizeof(TIMEOUT_BODY) - 1 == 75, "the 408's Content-Length");

/*
 * A client that trickles its headers or body (a byte every 20 s keeps MHD's idle timeout
 * at bay) is cut at the deadline: a 408 written to the socket ourselves (plain HTTP only:
 * MHD has sent nothing for this request, as in reject_mid_upload), then the reading side
 * shut, so that MHD's next read sees the end and it closes the connection itself. MHD may
 * miss that end when it comes with a byte of the client's (it takes a short read as "no
 * more for now" under edge-triggered epoll, and each new byte is data again), so a
 * connection still open DYING_GRACE_NS later is aborted (connect(AF_UNSPEC): a reset, and
 * every later read fails). The fd is MHD's until its close notification, which takes
 * srv->mu before MHD closes the fd.
 */
int64_t vk__http_conn_expire(struct vk_http_server *srv)
{
    int64_t ms = -1;
    pthread_mutex_lock(&srv->mu);
    int64_t now = vk_time_mono_ns();
    struct vk__http_conn *cx;
    while ((cx = srv->reading.head) && cx->deadline_ns <= now) {
        cx->expired = true;
        conn_push(srv, &srv->dying, cx, now + DYING_GRACE_NS);
        if (cx->fd < 0)
            continue;
        if (!srv->tls) {
            ssize_t w =
                send(cx->fd, timeout_reply, sizeof(timeout_reply) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
            (void)w; /* best effort: the connection is closed either way */
        }
        shutdown(cx->fd, SHUT_RD);
    }
    while ((cx = srv->dying.head) && cx->deadline_ns <= now) {
        conn_unlink(cx);
        if (cx->fd >= 0) {
            struct sockaddr sa = {.sa_family = AF_UNSPEC};
            (void)!connect(cx->fd, &sa, sizeof(sa));
        }
    }
    for (int i = 0; i < 2; i++) {
        cx = i ? srv->dying.head : srv->reading.head;
        if (cx) {
            int64_t left = (cx->deadline_ns - now + 999999) / 1000000;
            ms = ms < 0 || left < ms ? left : ms;
        }
    }
    pthread_mutex_unlock(&srv->mu);
    return ms;
}

/* ---------------------------------------------------------------- Per-address counts */

static size_t addr_key(const struct sockaddr *sa, unsigned char key[17])
{
    memset(key, 0, 17);
    if (sa->sa_family == AF_INET) {
        key[0] = 4;
        memcpy(key + 1, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return 5;
    }
    if (sa->sa_family == AF_INET6) {
        key[0] = 6;
        memcpy(key + 1, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        return 17;
    }
    return 0;
}

/* Count one more connection of `sa` (srv->mu); NULL when unknown or out of memory. */
static struct vk__http_addr *addr_add(struct vk_http_server *srv, const struct sockaddr *sa)
{
    unsigned char key[17];
    size_t n = addr_key(sa, key);
    if (!n)
        return NULL;
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < n; i++)
        h = (h ^ key[i]) * 16777619u;
    unsigned bucket = h % VK__HTTP_ADDR_BUCKETS;
    struct vk__http_addr **b = &srv->addrs[bucket];
    struct vk__http_addr *e = *b;
    while (e && memcmp(e->key, key, sizeof(key)) != 0)
        e = e->next;
    if (!e) {
        e = vk_mem_calloc(1, sizeof(*e));
        if (!e)
            return NULL;
        memcpy(e->key, key, sizeof(key));
        e->bucket = bucket;
        e->next = *b;
        *b = e;
    }
    e->n++;
    return e;
}

static void addr_del(struct vk_http_server *srv, struct vk__http_addr *e)
{
    if (!e || --e->n > 0)
        return;
    for (struct vk__http_addr **pp = &srv->addrs[e->bucket]; *pp; pp = &(*pp)->next) {
        if (*pp == e) {
            *pp = e->next;
            vk_mem_free(e);
            return;
        }
    }
}

#define BUSY_BODY                                                                                  \
    "{\"error\":\"too_many_requests\",\"message\":\"too many connections from your address\"}"
static const char busy_reply[] = "HTTP/1.1 429 Too Many Requests\r\n"
                                 "Content-Type: application/json\r\nRetry-After: 1\r\n"
                                 "Content-Length: 80\r\nConnection: close\r\n\r\n" BUSY_BODY;
_Static_assert(sizeof(BUSY_BODY) - 1 == 80, "the 429's Content-Length");

/* MHD_OPTION_NOTIFY_CONNECTION: a connection's socket context is its deadline. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    struct vk_http_server *srv = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        struct vk__http_conn *cx = vk_mem_calloc(1, sizeof(*cx));
        *socket_context = cx;
        if (!cx)
            return; /* no deadline for this one; MHD's idle timeout still applies */
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        cx->fd = ci ? ci->connect_fd : -1;
        const union MHD_ConnectionInfo *ai =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        pthread_mutex_lock(&srv->mu);
        cx->addr = ai && ai->client_addr ? addr_add(srv, ai->client_addr) : NULL;
        if (cx->addr && cx->addr->n > srv->opts.per_addr_limit && cx->fd >= 0) {
            /* Over its address's limit: answered 429 at once, and closed like a request
             * past its deadline (libmicrohttpd closes those past the next few itself). */
            if (!srv->tls) {
                ssize_t w =
                    send(cx->fd, busy_reply, sizeof(busy_reply) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
                (void)w;
            }
            shutdown(cx->fd, SHUT_RD);
            cx->expired = true;
            conn_push(srv, &srv->dying, cx, vk_time_mono_ns() + DYING_GRACE_NS);
        } else {
            vk__http_conn_arm(srv, cx);
        }
        pthread_mutex_unlock(&srv->mu);
        return;
    }
    struct vk__http_conn *cx = *socket_context;
    *socket_context = NULL;
    if (!cx)
        return;
    pthread_mutex_lock(&srv->mu);
    conn_unlink(cx);
    addr_del(srv, cx->addr);
    pthread_mutex_unlock(&srv->mu);
    vk_mem_free(cx);
}

/* ---------------------------------------------------------------- Start, stop */

static void raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* The accept policy: refuse connections once the server is stopping. */
static enum MHD_Result on_accept(void *cls, const struct sockaddr *addr, socklen_t len)
{
    struct vk_http_server *srv = cls;
    (void)addr;
    (void)len;
    return atomic_load(&srv->refuse_new) ? MHD_NO : MHD_YES;
}

int vk_http_server_start(struct vk_http_server *srv, struct vk_err *err)
{
    if (srv->started)
        return vk_err_set(err, VK_EINVAL, "http server already started");
    raise_nofile();
    int rc = open_listener(srv, err);
    if (rc < 0)
        return rc;
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    if (getsockname(srv->listen_fd, (struct sockaddr *)&ss, &sl) == 0 && ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    struct MHD_OptionItem ops[] = {
        {MHD_OPTION_LISTEN_SOCKET, srv->listen_fd, NULL},
        {MHD_OPTION_CONNECTION_LIMIT, (intptr_t)srv->opts.connection_limit, NULL},
        {MHD_OPTION_PER_IP_CONNECTION_LIMIT, (intptr_t)(srv->opts.per_addr_limit + PER_ADDRESS_429),
         NULL},
        {MHD_OPTION_CONNECTION_MEMORY_LIMIT, (intptr_t)srv->opts.connection_memory, NULL},
        {MHD_OPTION_CONNECTION_TIMEOUT, (intptr_t)srv->opts.idle_timeout_s, NULL},
        {MHD_OPTION_END, 0, NULL}, /* thread pool, below */
        {MHD_OPTION_END, 0, NULL}};
    if (srv->opts.threads > 1)
        ops[5] =
            (struct MHD_OptionItem){MHD_OPTION_THREAD_POOL_SIZE, (intptr_t)srv->opts.threads, NULL};
    rc = vk__http_watch_start(srv, err);
    if (rc < 0)
        return rc;
    if (srv->tls)
        srv->daemon = MHD_start_daemon(
            flags | MHD_USE_TLS, 0, on_accept, srv, on_access, srv, MHD_OPTION_ARRAY, ops,
            MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv, MHD_OPTION_NOTIFY_CONNECTION,
            on_connection, srv, MHD_OPTION_UNESCAPE_CALLBACK, no_unescape, NULL,
            MHD_OPTION_HTTPS_CERT_CALLBACK, vk__http_tls_retrieve, MHD_OPTION_END);
    else
        srv->daemon = MHD_start_daemon(
            flags, 0, on_accept, srv, on_access, srv, MHD_OPTION_ARRAY, ops,
            MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv, MHD_OPTION_NOTIFY_CONNECTION,
            on_connection, srv, MHD_OPTION_UNESCAPE_CALLBACK, no_unescape, NULL, MHD_OPTION_END);
    if (!srv->daemon) {
        vk__http_watch_stop(srv);
        return vk_err_set(err, VK_EIO, "cannot start the http server on '%s'", srv->listen);
    }
    srv->started = true;
    return 0;
}

/* Complete every parked request and end every stream (the stopping thread). */
static void drain(struct vk_http_server *srv)
{
    pthread_mutex_lock(&srv->mu);
    srv->stopping = true;
    size_t n = srv->live_count, k = 0;
    struct vk_http_req **expire = vk_mem_xcalloc(n ? n : 1, sizeof(*expire));
    struct MHD_Connection **resume = vk_mem_xcalloc(n ? n : 1, sizeof(*resume));
    size_t nres = 0;
    for (struct vk_http_req *r = srv->live; r; r = r->live_next) {
        if (r->state == RS_PARKED) {
            r->state = RS_EXPIRING; /* we take over the park reference */
            expire[k++] = r;
        } else if (r->stream && vk__http_stream_end_locked(r->stream)) {
            resume[nres++] = r->conn;
        }
    }
    pthread_mutex_unlock(&srv->mu);
    for (size_t i = 0; i < nres; i++)
        MHD_resume_connection(resume[i]);
    for (size_t i = 0; i < k; i++)
        vk__http_expire(expire[i], MHD_HTTP_SERVICE_UNAVAILABLE);
    vk_mem_free(expire);
    vk_mem_free(resume);
}

void vk_http_server_stop(struct vk_http_server *srv)
{
    if (!srv->started || srv->stopped)
        return;
    srv->stopped = true;
    /* Stop taking connections: the accept policy refuses every new one from now on.
     * Not MHD_quiesce_daemon(): with epoll polling threads it races with those threads,
     * which remove the listen socket from their epoll sets themselves, and libmicrohttpd
     * aborts the process when it loses that race ("Failed to remove listen FD from epoll
     * set"; once in a parallel ctest run, issue 12). */
    atomic_store(&srv->refuse_new, true);
    drain(srv);

    struct timespec until = vk_time_deadline(srv->opts.stop_grace_ms);
    pthread_mutex_lock(&srv->mu);
    while (srv->live_count > 0)
        if (pthread_cond_timedwait(&srv->idle, &srv->mu, &until) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&srv->mu);

    vk__http_watch_stop(srv);
    MHD_stop_daemon(srv->daemon); /* joins the polling threads, closes the listen socket */
    srv->daemon = NULL;
    srv->listen_fd = -1;
}
