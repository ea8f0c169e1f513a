/*
 * Private to the http module: the server, request and stream structures.
 *
 * Locking: one mutex per server (srv->mu) guards every request's state, the
 * live-request list, the timer heap, the watch slots and every stream queue.
 * Critical sections are short and never call user code or libmicrohttpd.
 *
 * A request (struct vk_http_req) is reference counted: the MHD connection
 * holds one until the completion callback; a suspended (parked) request holds
 * one until it leaves the PARKED state; owners may add their own. A stream
 * has its own count: the owner's handle and the connection's.
 */
#ifndef VK_HTTP_INT_H
#define VK_HTTP_INT_H

#include "vulcan/http.h"

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>

/* ---------------------------------------------------------------- Router */

enum vk__http_seg_kind { SEG_LIT = 0, SEG_PARAM = 1, SEG_REST = 2 };

struct vk__http_seg {
    enum vk__http_seg_kind kind;
    char *text; /* literal text or parameter name */
    size_t len;
};

struct vk__http_route {
    char *method;
    char *pattern;
    struct vk__http_seg *segs;
    size_t nsegs;
    vk_http_handler_fn handler;
    void *ctx;
    size_t max_body;
    bool json;
    size_t order; /* registration index */
};

struct vk__http_router {
    struct vk__http_route **routes; /* sorted by specificity (stable) */
    size_t n, cap;
};

/* One decoded name/value pair (path params, query). */
struct vk__http_kv {
    const char *name;
    const char *value;
};

enum vk__http_match {
    VK__HTTP_MATCH_OK = 0,
    VK__HTTP_MATCH_NOT_FOUND,
    VK__HTTP_MATCH_BAD_METHOD,
    VK__HTTP_MATCH_BAD_PATH
};

void vk__http_router_init(struct vk__http_router *r);
void vk__http_router_release(struct vk__http_router *r);
int vk__http_router_add(struct vk__http_router *r, const char *method, const char *pattern,
                        vk_http_handler_fn handler, void *ctx,
                        const struct vk_http_route_opts *opts, struct vk_err *err);
/*
 * Match `method` `path`. On OK, *route is set and the params are allocated
 * from `pool` into *params / *nparams. On BAD_METHOD, `allow` (may be NULL)
 * receives "GET, POST". BAD_PATH: a parameter had bad %-escapes or a NUL.
 */
enum vk__http_match vk__http_router_match(const struct vk__http_router *r, const char *method,
                                          const char *path, struct vk_pool *pool,
                                          const struct vk__http_route **route,
                                          struct vk__http_kv **params, size_t *nparams,
                                          struct vk_buf *allow);
/* Percent-decode `len` bytes of `s` into the pool ('+' → ' ' when `plus`).
 * Returns NULL on a bad escape, a decoded NUL or out of memory. */
char *vk__http_decode(struct vk_pool *pool, const char *s, size_t len, bool plus);

/* ---------------------------------------------------------------- Requests */

enum vk__http_rstate {
    RS_NEW = 0,  /* headers/body being read */
    RS_HANDLER,  /* the handler is running */
    RS_PARKED,   /* suspended by vk_http_suspend, waiting for a reply */
    RS_EXPIRING, /* on_timeout is running (deadline or stop) */
    RS_CLOSING,  /* client went away while parked; connection will be dropped */
    RS_REPLIED,  /* a response waits to be queued by the polling thread */
    RS_QUEUED,   /* the response was handed to MHD */
    RS_DONE      /* MHD completed the request */
};

enum vk__http_susp { SUSP_NONE = 0, SUSP_SUSPENDING, SUSP_SUSPENDED };

struct vk__http_hdr {
    struct vk__http_hdr *next;
    char *name;
    char *value;
};

/*
 * One client connection (MHD's socket context, from its accept to its close): the request
 * deadline. While a request is being read (headers and body) the connection is on
 * srv->reading, in deadline order (every deadline is its start plus the same timeout, so
 * appending keeps the order); once its handler runs it is off the list until the response
 * is done and the next request is awaited. Past its deadline it moves to srv->dying (same
 * order: the same grace for all) until MHD closes it. All under srv->mu.
 */
/* Connections from one client address (srv->addrs, a hash table; srv->mu). */
struct vk__http_addr {
    struct vk__http_addr *next; /* in its bucket */
    unsigned char key[17];      /* family, then the 4 or 16 address bytes */
    unsigned bucket;
    unsigned n;
};

#define VK__HTTP_ADDR_BUCKETS 1024u

struct vk__http_conn {
    struct vk__http_conn *prev, *next;
    struct vk__http_conn_list *list; /* &srv->reading, &srv->dying or NULL */
    struct vk__http_addr *addr;      /* its address's count (NULL: unknown) */
    int fd;
    bool expired; /* the deadline passed: 408 sent, reading shut; no handler may run */
    int64_t deadline_ns;
};

struct vk__http_conn_list {
    struct vk__http_conn *head, *tail;
};

struct vk_http_req {
    struct vk_http_server *srv;
    struct MHD_Connection *conn;
    struct vk__http_conn *cx; /* its connection's (NULL when MHD gave none) */
    atomic_int refs;
    struct vk_http_req *live_prev, *live_next; /* srv->live list */

    /* Under srv->mu. */
    enum vk__http_rstate state;
    enum vk__http_susp susp;
    bool wake_pending; /* a wake-up arrived while SUSPENDING */
    bool park_request; /* vk_http_suspend called in the handler */
    int slot;          /* watch slot, -1 when not watched */
    size_t heap_idx;   /* deadline heap index, SIZE_MAX when none */
    int64_t deadline_ns;
    struct MHD_Response *pending; /* RS_REPLIED: the response to queue */
    unsigned pending_status;
    struct vk_http_stream *stream;

    /* Owner-only (handler, then owner of a parked request). */
    vk_http_req_fn on_timeout, on_close;
    void *cb_ctx;
    struct vk__http_hdr *resp_headers;
    int early_status; /* reply decided while reading (404/405/413...) */

    /* Immutable after the handler starts. */
    struct vk_pool pool;
    const void *principal; /* set by the gate */
    const struct vk__http_route *route;
    const char *method;
    const char *path;
    struct vk__http_kv *params;
    size_t nparams;
    struct vk__http_kv *query;
    size_t nquery;
    struct vk_buf body;
    json_t *json;
    char remote[48];
    int64_t start_ns; /* vk_time_mono_ns() when the request arrived (for on_complete) */
};

struct vk_http_stream {
    atomic_int refs;
    struct vk_http_server *srv;
    struct vk_http_req *req; /* NULL once the connection is done (srv->mu) */
    pthread_cond_t room;     /* signalled when the queue drains (srv->mu) */
    char *q;
    size_t qhead, qlen, qcap, qmax;
    bool owner_closed, peer_gone, server_ending, notified;
    vk_http_stream_fn on_close;
    void *ctx;
};

/* ---------------------------------------------------------------- Server */

struct vk__http_slot {
    struct vk_http_req *req;
    uint32_t gen;
    int next_free;
};

struct vk_http_server {
    struct vk_http_server_opts opts;
    char *listen;
    struct vk__http_router router;
    struct MHD_Daemon *daemon;
    int listen_fd;
    uint16_t port;
    bool started, stopped;
    atomic_bool refuse_new; /* stopping: the accept policy refuses new connections */

    pthread_mutex_t mu;
    pthread_cond_t idle; /* live_count reached 0 */
    bool stopping;
    struct vk_http_req *live; /* every request MHD has not completed */
    size_t live_count;

    /* Connections whose request is being read, and those past their deadline that MHD has
     * not closed yet; earliest deadline first (srv->mu). */
    struct vk__http_conn_list reading, dying;
    struct vk__http_addr *addrs[VK__HTTP_ADDR_BUCKETS];

    /* TLS (tls.c): NULL without. */
    struct vk__http_tls *tls;

    /* Timer/watch thread (watch.c). */
    pthread_t watcher;
    bool watcher_running, watcher_quit;
    int epfd, wakefd;
    struct vk_http_req **heap;
    size_t heap_len, heap_cap;
    struct vk__http_slot *slots;
    int nslots, slot_free;
};

/* tls.c: parse cert and key into srv->tls (vk_http_server_new); free it. */
int vk__http_tls_new(struct vk_http_server *srv, const char *cert_pem, const char *key_pem,
                     struct vk_err *err);
void vk__http_tls_free(struct vk_http_server *srv);
/* The gnutls_certificate_retrieve_function2 for MHD_OPTION_HTTPS_CERT_CALLBACK. */
int vk__http_tls_retrieve(gnutls_session_t session, const gnutls_datum_t *req_ca_dn, int nreqs,
                          const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
                          gnutls_pcert_st **pcert, unsigned int *pcert_length,
                          gnutls_privkey_t *pkey);

/* request.c */
struct vk_http_req *vk__http_req_new(struct vk_http_server *srv, struct MHD_Connection *conn);
void vk__http_req_free(struct vk_http_req *req);
/* Under srv->mu: the connection must be resumed by the caller (after unlocking)
 * when this returns true. */
bool vk__http_wake_locked(struct vk_http_req *req);
/* Suspend the connection from a polling thread (handler wrapper or stream
 * reader), resolving wake-ups that arrive meanwhile. `with_deadline`: arm
 * req->deadline_ns. */
void vk__http_conn_suspend(struct vk_http_req *req, bool with_deadline);
/* Build the {"error","message"} response. */
struct MHD_Response *vk__http_error_response(const char *code, const char *msg);
/* Complete a parked request as the server: run on_timeout, then send
 * `fallback` status if nobody replied. Takes over the park reference. */
void vk__http_expire(struct vk_http_req *req, unsigned fallback);
/* Hand a response to a request in any replyable state; see request.c. */
int vk__http_submit(struct vk_http_req *req, struct MHD_Response *resp, unsigned status,
                    struct vk_http_stream *st);

/* watch.c — all under srv->mu unless said otherwise. */
int vk__http_watch_init(struct vk_http_server *srv, struct vk_err *err);
int vk__http_watch_start(struct vk_http_server *srv, struct vk_err *err); /* unlocked */
void vk__http_watch_stop(struct vk_http_server *srv);                     /* unlocked */
void vk__http_watch_release(struct vk_http_server *srv);
void vk__http_watch_add(struct vk_http_req *req, bool with_deadline);
void vk__http_watch_del(struct vk_http_req *req);
/* The request deadline (server.c): start the clock of `cx` (list it), or stop it. */
void vk__http_conn_arm(struct vk_http_server *srv, struct vk__http_conn *cx);
void vk__http_conn_disarm(struct vk_http_server *srv, struct vk__http_conn *cx);
/* Expire every connection whose request deadline passed; the milliseconds until the
 * next, or -1 (watch thread, takes srv->mu). */
int64_t vk__http_conn_expire(struct vk_http_server *srv);
/* Wake the watch thread (its timeout changed). */
void vk__http_watch_wake(struct vk_http_server *srv);

/* stream.c */
ssize_t vk__http_stream_read(void *cls, uint64_t pos, char *buf, size_t max);
void vk__http_stream_unref(struct vk_http_stream *st);
/* The connection is gone (completion callback): detach and tell the owner. */
void vk__http_stream_detach(struct vk_http_stream *st, bool ok);
/* Under srv->mu: the server is stopping; end the stream after its data. */
bool vk__http_stream_end_locked(struct vk_http_stream *st);

#endif /* VK_HTTP_INT_H */
