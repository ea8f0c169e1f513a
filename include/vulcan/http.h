/*
 * http — a thin HTTP router over libmicrohttpd (server) and a small libcurl
 * client (worker, CLI).
 *
 * Server. A vk_http_server listens on one address, runs a small, fixed number
 * of libmicrohttpd polling threads (epoll; never a thread per connection), and
 * dispatches each request to the handler of the most specific matching route.
 * Every route has a body-size cap (default 1 MiB): a larger Content-Length or a
 * chunked body that grows past it gets 413 without reading further. JSON routes
 * get the body parsed with jansson before the handler runs (malformed → 400).
 * Errors are JSON: {"error": "<code>", "message": "<text>"}. Unknown paths give
 * 404, a known path with another method 405 with an Allow header.
 *
 * Long-poll. A handler may call vk_http_suspend() and return without a reply.
 * The connection then costs no thread; it is completed later, from any
 * thread, by exactly one reply function, or by the server when its deadline
 * passes (on_timeout), when the client disconnects (on_close) or when the
 * server stops. See "Suspended requests: ownership" below: the rules there are
 * what makes timeouts, replies and disconnects race-free.
 *
 * Streaming. vk_http_reply_stream() answers with a chunked body that its owner
 * feeds from any thread (Server-Sent Events for `logs -f`); while no data is
 * queued the connection is suspended; the queue is bounded.
 *
 * Thread-safety. Route registration happens before vk_http_server_start(),
 * from one thread. Handlers run on the server's polling threads (several may
 * run at once when opts.threads > 1), so they must not block for long. The
 * reply functions, vk_http_req_ref/unref and the stream functions are
 * thread-safe. A request's accessors, arena (vk_http_pool) and
 * vk_http_set_header() belong to whoever currently owns the request: the
 * handler while it runs, then the owner of the suspended request; they are not
 * for concurrent use.
 *
 * Client. A vk_http_client talks to one base URL with one reused CURL easy
 * handle (keep-alive). It is NOT thread-safe: use one client per thread.
 */
#ifndef VULCAN_HTTP_H
#define VULCAN_HTTP_H

#include "vulcan/util.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ================================================================ Types */

struct vk_http_server;
struct vk_http_req;
struct vk_http_stream;
struct vk_http_client;

/** Default and hard caps. */
#define VK_HTTP_DEFAULT_MAX_BODY (1024u * 1024u)     /**< per-route body cap when 0 is given */
#define VK_HTTP_HARD_MAX_BODY (256u * 1024u * 1024u) /**< largest cap a route may ask for */
#define VK_HTTP_DEFAULT_STREAM_QUEUE (256u * 1024u)  /**< bytes a stream may hold unsent */

/** A route handler. Runs on a server thread. It must reply, or suspend, before returning. */
typedef void (*vk_http_handler_fn)(struct vk_http_req *req, void *ctx);

/** on_timeout / on_close callback of a suspended request (see vk_http_suspend()). */
typedef void (*vk_http_req_fn)(struct vk_http_req *req, void *ctx);

/** Called once when the client of a stream goes away before the owner closed it. */
typedef void (*vk_http_stream_fn)(struct vk_http_stream *st, void *ctx);

/**
 * Called once per response handed to the network (any status, also the server's own
 * 404/405/413 answers), on a polling thread: `status` is the HTTP status and
 * `duration_ns` the monotonic time since the request's headers arrived (for a
 * suspended request, including its wait; for a stream, up to its first byte). The
 * request's accessors may be used (vk_http_route_pattern() is NULL when no route
 * matched). It must be quick and must not reply. `ctx` is opts.on_complete_ctx.
 */
typedef void (*vk_http_complete_fn)(const struct vk_http_req *req, int status, int64_t duration_ns,
                                    void *ctx);

/**
 * What a gate answers instead of the handler: `status` (401, 403, 404…), an error `code`
 * ("unauthenticated"; static or the gate's pool), a `message`, and an optional
 * WWW-Authenticate header value.
 */
struct vk_http_refusal {
    int status;
    const char *code;
    char message[256];
    const char *www_authenticate; /**< NULL: none */
};

/**
 * Called for every request that matched a route, on a polling thread, once its headers
 * are in and before its body is read (so an unauthenticated client never gets its body
 * accepted). Return 0 to go on to the handler, or non-zero with *refusal filled to answer
 * the request with it at once. The gate may attach data to the request with
 * vk_http_req_set_principal(). `ctx` is opts.gate_ctx.
 */
typedef int (*vk_http_gate_fn)(struct vk_http_req *req, void *ctx, struct vk_http_refusal *refusal);

/** Server options. Zero fields take the documented default. */
struct vk_http_server_opts {
    const char *listen;        /**< "ADDR:PORT": "127.0.0.1:8080", "[::1]:0", ":8080" (all
                                *   IPv4); port 0 picks a free port. Required. */
    unsigned threads;          /**< polling threads (default 2); each multiplexes with epoll */
    unsigned connection_limit; /**< simultaneous connections (default 10000); more wait in
                                *   the listen backlog */
    unsigned per_addr_limit;   /**< simultaneous connections from one client address
                                *   (default 64); the next 16 are answered 429 (plain
                                *   HTTP) and closed, more closed at once when accepted */
    unsigned req_timeout_s;    /**< a request's headers and body must be in within this
                                *   many seconds of its first byte being awaited, however
                                *   steadily they trickle (default 60); then 408 (plain
                                *   HTTP) and the connection is closed */
    size_t connection_memory;  /**< per-connection memory for headers (default 32 KiB) */
    unsigned idle_timeout_s;   /**< close idle/slow connections after this (default 60); never
                                *   applies to suspended requests or streams */
    unsigned listen_backlog;   /**< listen(2) backlog (default 1024) */
    unsigned stop_grace_ms;    /**< vk_http_server_stop() waits this long for requests still
                                *   being handled or sent (default 5000) */
    vk_http_complete_fn on_complete; /**< optional: told of every response (metrics) */
    void *on_complete_ctx;           /**< passed to on_complete */
    vk_http_gate_fn gate;            /**< optional: admits or refuses each routed request */
    void *gate_ctx;                  /**< passed to gate */
    const char *tls_cert_pem;        /**< PEM certificate chain (server first; borrowed until
                                      *   vk_http_server_new returns): serve HTTPS. NULL: HTTP */
    const char *tls_key_pem;         /**< PEM private key of the certificate (borrowed likewise;
                                      *   required with tls_cert_pem) */
};

/** Per-route options. */
struct vk_http_route_opts {
    size_t max_body; /**< body cap in bytes; 0 means VK_HTTP_DEFAULT_MAX_BODY */
    bool json;       /**< parse the body as JSON before the handler; an empty or malformed
                      *   body is answered 400 and the handler is not called */
};

/** Stream options. Zero fields take the documented default. */
struct vk_http_stream_opts {
    size_t max_queue;           /**< unsent bytes held (default VK_HTTP_DEFAULT_STREAM_QUEUE) */
    vk_http_stream_fn on_close; /**< client went away (may be NULL) */
    void *ctx;                  /**< passed to on_close */
};

/* ================================================================ Server lifecycle */

/**
 * Create a server (not yet listening). Borrows `opts` (the listen string is
 * copied). On success *out is owned by the caller; free it with
 * vk_http_server_free(). Returns 0 or VK_EINVAL (bad address or option) /
 * VK_ENOMEM with details in *err.
 */
int vk_http_server_new(const struct vk_http_server_opts *opts, struct vk_http_server **out,
                       struct vk_err *err) VK_MUST_CHECK;

/**
 * Bind, raise RLIMIT_NOFILE's soft limit to the hard limit, and start the
 * polling threads and the timer thread. Returns 0, VK_EIO (cannot bind, cannot
 * start) or VK_EINVAL (already started) with details in *err.
 */
int vk_http_server_start(struct vk_http_server *srv, struct vk_err *err) VK_MUST_CHECK;

/** True when libmicrohttpd was built with TLS (GnuTLS). */
bool vk_http_tls_supported(void);

/**
 * Check that `cert_pem` (a PEM chain, server certificate first) and `key_pem` (its private
 * key) parse and belong together, without a server. Borrows both. Returns 0, or VK_EINVAL
 * with the reason in *err.
 */
int vk_http_tls_check(const char *cert_pem, const char *key_pem, struct vk_err *err) VK_MUST_CHECK;

/**
 * Replace the certificate and key of a server made with tls_cert_pem: new handshakes use
 * them, connections already open keep theirs. Borrows both (parsed here). Thread-safe.
 * Returns 0; VK_EINVAL (no TLS on this server, or the PEM does not parse or match) with
 * the old certificate kept; details in *err.
 */
int vk_http_server_tls_reload(struct vk_http_server *srv, const char *cert_pem, const char *key_pem,
                              struct vk_err *err) VK_MUST_CHECK;

/** The bound TCP port (useful with port 0), or 0 before start. */
uint16_t vk_http_server_port(const struct vk_http_server *srv);

/**
 * Graceful stop: stop accepting, complete every suspended request through its
 * on_timeout callback (called from the stopping thread; a request whose
 * callback does not reply, or that has none, gets 503), end every stream after
 * its queued data, wait up to opts.stop_grace_ms for requests in progress,
 * then close all connections and join the threads. Idempotent. Must not be
 * called from a handler or callback.
 */
void vk_http_server_stop(struct vk_http_server *srv);

/**
 * Stop (if needed) and free. Accepts NULL. Every reference taken with
 * vk_http_req_ref() and every stream handle must have been released before.
 */
void vk_http_server_free(struct vk_http_server *srv);

/* ================================================================ Routes */

/**
 * Register `handler` for `method` (an upper-case token such as "GET"; GET
 * routes also answer HEAD) and `pattern`. A pattern is "/" or a list of
 * "/segment": a literal, a parameter "{name}" (one whole segment, name of
 * [A-Za-z0-9_]), or a final "*" that matches the rest of the path, including
 * nothing (available as parameter "*", not decoded). When several routes
 * match, the most specific wins, comparing segment by segment: literal before
 * parameter before "*". Borrows `method`, `pattern` and `opts` (may be NULL
 * for defaults); `ctx` is passed to the handler. Only before start.
 * Returns 0, VK_EINVAL (bad pattern, cap above VK_HTTP_HARD_MAX_BODY, server
 * started) or VK_EEXIST (same method and pattern twice) with details in *err.
 */
int vk_http_route(struct vk_http_server *srv, const char *method, const char *pattern,
                  vk_http_handler_fn handler, void *ctx, const struct vk_http_route_opts *opts,
                  struct vk_err *err) VK_MUST_CHECK;

/** Number of registered routes. */
size_t vk_http_route_count(const struct vk_http_server *srv);

/**
 * The `i`th registered route, in registration order. Returns borrowed method
 * and pattern (valid until the server is freed) through the out-parameters.
 * Returns 0 or VK_ENOTFOUND when `i` is out of range.
 */
int vk_http_route_at(const struct vk_http_server *srv, size_t i, const char **method,
                     const char **pattern) VK_MUST_CHECK;

/* ================================================================ Request accessors */

/*
 * All accessors return borrowed strings valid until the request is completed
 * (the reply function returned, or on_timeout/on_close returned) unless the
 * caller holds a reference (vk_http_req_ref), which keeps the decoded values
 * (method, path, params, query, body, JSON, remote address) but not headers.
 */

/** The method, e.g. "GET". */
const char *vk_http_method(const struct vk_http_req *req);
/** The path as sent (still percent-encoded), without the query string. */
const char *vk_http_path(const struct vk_http_req *req);
/** The pattern of the route that matched, e.g. "/api/v1/work/{id}/log". */
const char *vk_http_route_pattern(const struct vk_http_req *req);
/** A path parameter, percent-decoded, or NULL when the route has none by that name. */
const char *vk_http_param(const struct vk_http_req *req, const char *name);
/** A query parameter ("+" and %XX decoded); "" for "?flag"; NULL when absent. First wins. */
const char *vk_http_query(const struct vk_http_req *req, const char *name);
/** A request header by name (case-insensitive), or NULL. Not after completion. */
const char *vk_http_header(const struct vk_http_req *req, const char *name);
/** The W3C trace context header ("traceparent"), or NULL. */
const char *vk_http_traceparent(const struct vk_http_req *req);
/** The raw body (NUL-terminated, may hold NULs; "" when none); its length in *len. */
const char *vk_http_body(const struct vk_http_req *req, size_t *len);
/** The parsed JSON body on json routes, else NULL. Returns borrowed (the request owns it). */
json_t *vk_http_json(const struct vk_http_req *req);
/** The peer address in numeric text form, e.g. "127.0.0.1" or "::1". */
const char *vk_http_remote_addr(const struct vk_http_req *req);
/** The request's arena: allocations are freed with the request. Owner only, see above. */
struct vk_pool *vk_http_pool(struct vk_http_req *req);
/** Attach `p` (borrowed: usually in the request's pool) for the handler: the principal a
 *  gate found. */
void vk_http_req_set_principal(struct vk_http_req *req, const void *p);
/** What the gate attached, or NULL. */
const void *vk_http_req_principal(const struct vk_http_req *req);

/* ================================================================ Replies */

/*
 * Every request is completed exactly once. The reply functions are
 * thread-safe and return 0 when their response is the one sent, or
 * VK_ECONFLICT when the request was already completed or its client went away
 * (the response is dropped; bodies handed over are still freed), or VK_ENOMEM.
 * `status` must be 100..999.
 */

/** Add a response header for the reply to come. Borrows both strings (copied). 0/VK_ENOMEM. */
int vk_http_set_header(struct vk_http_req *req, const char *name, const char *value) VK_MUST_CHECK;

/** Reply with `len` bytes at `ptr` (borrowed, copied) of `content_type` (may be NULL). */
int vk_http_reply(struct vk_http_req *req, int status, const char *content_type, const void *ptr,
                  size_t len);

/**
 * Reply with a JSON body. Takes ownership of `body`. When `body` is NULL (its builder ran
 * out of memory) or cannot be encoded, answers 500 {"error":"internal","message":"out of
 * memory"} instead, never "null" or a partial body, and returns VK_ENOMEM (VK_ECONFLICT
 * when the request was completed already).
 */
int vk_http_reply_json(struct vk_http_req *req, int status, json_t *body);

/**
 * As vk_http_reply_json(), for a body that holds secrets (a work item): every string of
 * `body` is overwritten with zeros before it is freed, and so is the serialized text when
 * libmicrohttpd is done sending it. Consumes `body`.
 */
int vk_http_reply_json_wiped(struct vk_http_req *req, int status, json_t *body) VK_MUST_CHECK;

/**
 * Reply {"error": code, "message": <printf of fmt>}. Borrows `code` and `fmt`. Out of
 * memory: the 500 of vk_http_reply_json().
 */
int vk_http_reply_error(struct vk_http_req *req, int status, const char *code, const char *fmt, ...)
    VK_PRINTF(4, 5);

/**
 * A pulled body's reader: copy up to `max` bytes of the body from byte `pos` into `buf` and
 * return how many (> 0). Called on a polling thread, one call at a time, only while the
 * client takes bytes; it must not wait long (a store read is fine, the network is not).
 * Return < 0 to end the response with an error (the connection is closed).
 */
typedef ssize_t (*vk_http_body_fn)(void *ctx, uint64_t pos, char *buf, size_t max);

/**
 * Reply with a body of exactly `size` bytes (Content-Length) that `read` produces in
 * blocks of at most `block` bytes (0: 64 KiB) as the client reads, so a large body is
 * never held whole in memory. Takes `ctx`: `free_ctx` (may be NULL) is called on it
 * once, when the response is done or could not be made (also on error returns).
 */
int vk_http_reply_pull(struct vk_http_req *req, int status, const char *content_type, uint64_t size,
                       size_t block, vk_http_body_fn read, void *ctx, void (*free_ctx)(void *ctx));

/** Reply with no body (e.g. 204). */
int vk_http_reply_empty(struct vk_http_req *req, int status);

/* ================================================================ Suspended requests */

/*
 * Suspended requests: ownership.
 *
 * A handler calls vk_http_suspend() and returns. From that moment the caller
 * "owns" the suspended request and may hand the pointer to other threads.
 * Exactly one of these completes it:
 *
 *   1. a reply function, from any thread (even before the handler returned);
 *   2. the deadline: on_timeout(req, ctx) runs on the server's timer thread
 *      (or the thread calling vk_http_server_stop()); it normally replies
 *      (e.g. 204); if it does not, the server sends 204 (503 when stopping);
 *   3. client disconnect: on_close(req, ctx) runs on the timer thread; any
 *      reply from then on returns VK_ECONFLICT; the connection is closed after
 *      on_close returns.
 *
 * The server guarantees: at most one of on_timeout/on_close is called, only
 * while no reply has been accepted, never with a server lock held, and the
 * request stays valid until that callback returns. After a reply function
 * returns, or after the callback returns, the pointer may be freed at any
 * moment, so the owner must not touch it again.
 *
 * Hence the rule for owners that keep suspended requests in a list (the
 * dispatcher): protect the list with your lock; in on_timeout/on_close take
 * that lock and remove the request; reply while holding the lock (the reply
 * function never calls back into your code). If you must reply outside your
 * lock (e.g. after a slow claim), take a reference with vk_http_req_ref()
 * while holding your lock, and vk_http_req_unref() after replying: a
 * reference keeps the memory valid (replies then return VK_ECONFLICT if the
 * client went away) but not the connection.
 */

/**
 * Suspend `req` from its handler (only there, once). Replies are then
 * accepted from any thread. `timeout_ms` > 0 sets a deadline handled by the
 * server (≤ 0: none, only a reply, disconnect or stop completes it).
 * `on_timeout`, `on_close` may be NULL; `ctx` is passed to both.
 * Returns 0, or VK_EINVAL when not called from the handler or called twice.
 */
int vk_http_suspend(struct vk_http_req *req, int64_t timeout_ms, vk_http_req_fn on_timeout,
                    vk_http_req_fn on_close, void *ctx) VK_MUST_CHECK;

/**
 * Take a suspended request away from its deadline and its disconnect watch, for an owner
 * about to do slow work before replying (e.g. a claim whose secrets come from a provider).
 * On 0 neither on_timeout nor on_close will be called any more, the caller holds the
 * request's park reference, and it must reply (from any thread) and then call
 * vk_http_detained_end() exactly once. Call it while holding the lock your callbacks take
 * (the rule above), so that 0 also means no callback is under way. Returns 0, or
 * VK_ECONFLICT when the request is not parked (a reply was accepted, or a callback has
 * begun and owns it: leave it to that callback).
 */
int vk_http_detain(struct vk_http_req *req) VK_MUST_CHECK;

/**
 * End a detained request: closes its connection if no reply was accepted, then drops the
 * park reference. `req` must not be touched after it.
 */
void vk_http_detained_end(struct vk_http_req *req);

/** Take a reference that keeps `req`'s memory valid. Thread-safe. */
void vk_http_req_ref(struct vk_http_req *req);
/** Release a reference from vk_http_req_ref(). Thread-safe. Accepts NULL. */
void vk_http_req_unref(struct vk_http_req *req);

/* ================================================================ Streams */

/**
 * Reply with a streamed body (chunked transfer encoding) of `content_type`
 * (e.g. "text/event-stream"). On success *out returns owned a stream handle:
 * the owner writes to it from any thread and must release it with
 * vk_http_stream_close() exactly once, whatever happens to the client.
 * Borrows `opts` (may be NULL). Returns 0, VK_ECONFLICT (request already
 * completed; *out is NULL) or VK_ENOMEM.
 */
int vk_http_reply_stream(struct vk_http_req *req, int status, const char *content_type,
                         const struct vk_http_stream_opts *opts,
                         struct vk_http_stream **out) VK_MUST_CHECK;

/**
 * Queue `len` bytes at `ptr` (borrowed, copied) and wake the connection.
 * Never blocks. Returns 0; VK_EAGAIN when the queue lacks room (backpressure:
 * retry later, or use vk_http_stream_write_wait); VK_ETOOBIG when `len`
 * exceeds the queue size; VK_EIO when the client went away or the server is
 * stopping (nothing more will be sent); VK_ENOMEM.
 */
int vk_http_stream_write(struct vk_http_stream *st, const void *ptr, size_t len) VK_MUST_CHECK;

/**
 * Like vk_http_stream_write() but waits up to `timeout_ms` for room.
 * Returns VK_ETIMEDOUT when there was no room in time. Not from a handler.
 */
int vk_http_stream_write_wait(struct vk_http_stream *st, const void *ptr, size_t len,
                              int64_t timeout_ms) VK_MUST_CHECK;

/** True when the client went away or the server is stopping: writes will fail. */
bool vk_http_stream_gone(struct vk_http_stream *st);

/**
 * End the response after the queued data and release the owner's handle
 * (never use `st` afterwards). Thread-safe. Accepts NULL.
 */
void vk_http_stream_close(struct vk_http_stream *st);

/* ================================================================ JSON text */

/**
 * Returns owned: `v` (borrowed) as JSON text with jansson's dump `flags`, NUL-terminated
 * (free with free()), and its length in *len (may be NULL); NULL when `v` is NULL or out
 * of memory. Use it instead of json_dumps(), which can return a text with a hole in it
 * when memory runs out (jansson skips over a failed write of an object key).
 */
char *vk_http_json_text(const json_t *v, size_t flags, size_t *len) VK_MUST_CHECK;

/**
 * The end of a JSON builder: returns `v` (takes ownership) when `failed` is 0, else
 * frees it and returns NULL. A builder ORs the results of its json_object_set_new() and
 * json_array_append_new() calls (each -1 on failure, a NULL value included) into
 * `failed`, so that running out of memory yields NULL, which vk_http_reply_json()
 * answers with 500, rather than an object with members missing.
 */
json_t *vk_http_json_checked(json_t *v, int failed);

/* ================================================================ Client */

/** Client options. Zero fields take the documented default. */
struct vk_http_client_opts {
    const char *base_url;    /**< "http://127.0.0.1:8080" (copied). Required. */
    long connect_timeout_ms; /**< default 5000 */
    long timeout_ms;         /**< whole-request default when a call passes 0 (30000) */
    size_t max_response;     /**< response body cap (default VK_MAX_BODY) */
    /**
     * PEM file of the CA certificates that https:// servers are verified against (copied);
     * NULL: the system's trust store. Certificates are always verified.
     */
    const char *ca_file;
};

/** A response. Release it with vk_http_response_release(). */
struct vk_http_response {
    long status;
    char content_type[128]; /**< "" when absent; truncated if longer */
    struct vk_buf body;
};

/** Receives one chunk of a streamed body; return 0 to go on, a VK code to stop. */
typedef int (*vk_http_chunk_fn)(void *ctx, const char *data, size_t len);

/**
 * Create a client. Borrows `opts`. curl_global_init runs once per process.
 * On success *out is owned by the caller (vk_http_client_free()).
 * Returns 0, VK_EINVAL (no base URL) or VK_ENOMEM with details in *err.
 */
int vk_http_client_new(const struct vk_http_client_opts *opts, struct vk_http_client **out,
                       struct vk_err *err) VK_MUST_CHECK;

/**
 * Make libcurl easy handle `curl` (a `CURL *`) verify the peer's certificate and host name,
 * against `ca_file` (borrowed; libcurl copies it; NULL or "": the system's CAs). For code that
 * drives its own handle (the worker's long poll); clients made here do it themselves.
 */
void vk_http_curl_tls(void *curl, const char *ca_file);

/**
 * When libcurl result `curl_code` is a certificate or TLS handshake failure, write into `buf`
 * (`cap` bytes) a message naming `server`, libcurl's reason `why` (may be NULL) and
 * `--ca-cert`, and return `buf`; otherwise return NULL. Borrows every argument.
 */
const char *vk_http_tls_explain(int curl_code, const char *server, const char *why,
                                const char *ca_file, char *buf, size_t cap);

/** Free a client and its connection. Accepts NULL. */
void vk_http_client_free(struct vk_http_client *cl);

/**
 * Send header `name: value` with every later request (e.g. Authorization,
 * traceparent); `value` NULL removes it. Borrows both (copied).
 * Returns 0, VK_EINVAL (bad characters) or VK_ENOMEM.
 */
int vk_http_client_set_header(struct vk_http_client *cl, const char *name,
                              const char *value) VK_MUST_CHECK;

/** Release a response's body. Accepts a zeroed response. */
void vk_http_response_release(struct vk_http_response *resp);

/**
 * Send `method` `path` (appended to the base URL) with `body_len` bytes of
 * `body` (borrowed; may be NULL) of `content_type` (may be NULL), waiting up
 * to `timeout_ms` (0 = the client default). *resp is initialised here and
 * filled for any HTTP status; release it with vk_http_response_release().
 * Returns 0; VK_EIO (cannot connect, connection broken; the message names the
 * URL), VK_ETIMEDOUT, VK_ETOOBIG (response above max_response) or VK_ENOMEM,
 * with details in *err.
 */
int vk_http_client_request(struct vk_http_client *cl, const char *method, const char *path,
                           const char *content_type, const void *body, size_t body_len,
                           long timeout_ms, struct vk_http_response *resp,
                           struct vk_err *err) VK_MUST_CHECK;

/**
 * JSON round trip: sends `req_body` (borrowed; NULL sends no body) and parses
 * the answer. *status receives the HTTP status; *answer returns owned the
 * parsed body, or NULL when the body is empty. Any HTTP status is a success
 * here (an error answer is the {"error", "message"} object). Returns 0, the
 * errors of vk_http_client_request(), or VK_EPARSE when the answer is not JSON.
 */
int vk_http_client_json(struct vk_http_client *cl, const char *method, const char *path,
                        json_t *req_body, long timeout_ms, long *status, json_t **answer,
                        struct vk_err *err) VK_MUST_CHECK;

/**
 * Streaming GET: `on_chunk` receives the body as it arrives (also the body of
 * an error answer: check *status afterwards). `timeout_ms` 0 means no overall
 * limit. *status receives the HTTP status (may be NULL).
 * Returns 0 when the stream ended, the callback's code when it stopped the
 * transfer, or the errors of vk_http_client_request().
 */
int vk_http_client_stream(struct vk_http_client *cl, const char *path, long timeout_ms,
                          vk_http_chunk_fn on_chunk, void *ctx, long *status,
                          struct vk_err *err) VK_MUST_CHECK;

#endif /* VULCAN_HTTP_H */
