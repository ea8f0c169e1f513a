/*
 * The server's timer thread: deadlines of parked requests (a binary min-heap)
 * and client-disconnect detection for suspended connections (libmicrohttpd
 * does not poll suspended sockets, so we watch them in our own epoll set for
 * EPOLLRDHUP/EPOLLHUP/EPOLLERR).
 *
 * epoll events carry a (slot, generation) pair rather than a pointer, so an
 * event that was already dequeued when another thread unwatched (and maybe
 * freed) its request is recognised as stale under srv->mu and ignored.
 */
#include "http_int.h"

#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define WAKE_TOKEN UINT64_MAX

int vk__http_watch_init(struct vk_http_server *srv, struct vk_err *err)
{
    srv->epfd = -1;
    srv->wakefd = -1;
    srv->heap = NULL;
    srv->heap_len = srv->heap_cap = 0;
    srv->slots = NULL;
    srv->nslots = 0;
    srv->slot_free = -1;
    srv->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (srv->epfd < 0)
        return vk_err_errno(err, "epoll_create1");
    srv->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (srv->wakefd < 0)
        return vk_err_errno(err, "eventfd");
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = WAKE_TOKEN};
    if (epoll_ctl(srv->epfd, EPOLL_CTL_ADD, srv->wakefd, &ev) < 0)
        return vk_err_errno(err, "epoll_ctl");
    return 0;
}

void vk__http_watch_release(struct vk_http_server *srv)
{
    if (srv->epfd >= 0)
        close(srv->epfd);
    if (srv->wakefd >= 0)
        close(srv->wakefd);
    srv->epfd = srv->wakefd = -1;
    vk_mem_free(srv->heap);
    vk_mem_free(srv->slots);
    srv->heap = NULL;
    srv->slots = NULL;
}

static void wake(struct vk_http_server *srv)
{
    uint64_t one = 1;
    ssize_t n = write(srv->wakefd, &one, sizeof(one));
    (void)n; /* EAGAIN means a wake-up is pending already */
}

void vk__http_watch_wake(struct vk_http_server *srv)
{
    wake(srv);
}

/* ---------------------------------------------------------------- Heap */

static void heap_set(struct vk_http_server *srv, size_t i, struct vk_http_req *r)
{
    srv->heap[i] = r;
    r->heap_idx = i;
}

static void heap_up(struct vk_http_server *srv, size_t i)
{
    struct vk_http_req *r = srv->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (srv->heap[parent]->deadline_ns <= r->deadline_ns)
            break;
        heap_set(srv, i, srv->heap[parent]);
        i = parent;
    }
    heap_set(srv, i, r);
}

static void heap_down(struct vk_http_server *srv, size_t i)
{
    struct vk_http_req *r = srv->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= srv->heap_len)
            break;
        if (c + 1 < srv->heap_len && srv->heap[c + 1]->deadline_ns < srv->heap[c]->deadline_ns)
            c++;
        if (srv->heap[c]->deadline_ns >= r->deadline_ns)
            break;
        heap_set(srv, i, srv->heap[c]);
        i = c;
    }
    heap_set(srv, i, r);
}

static void heap_remove(struct vk_http_server *srv, struct vk_http_req *r)
{
    size_t i = r->heap_idx;
    r->heap_idx = SIZE_MAX;
    srv->heap_len--;
    if (i == srv->heap_len)
        return;
    struct vk_http_req *last = srv->heap[srv->heap_len];
    heap_set(srv, i, last);
    heap_down(srv, i);
    heap_up(srv, last->heap_idx);
}

/* ---------------------------------------------------------------- Watch */

void vk__http_watch_add(struct vk_http_req *req, bool with_deadline)
{
    struct vk_http_server *srv = req->srv;
    if (with_deadline) {
        vk_array_xgrow(&srv->heap, &srv->heap_cap, srv->heap_len + 1, 64, sizeof(*srv->heap));
        srv->heap[srv->heap_len] = req;
        req->heap_idx = srv->heap_len++;
        heap_up(srv, req->heap_idx);
        if (srv->heap[0] == req)
            wake(srv);
    }
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci)
        return;
    if (srv->slot_free < 0) {
        size_t cap = (size_t)srv->nslots;
        vk_array_xgrow(&srv->slots, &cap, cap + 1, 64, sizeof(*srv->slots));
        VK_ASSERT(cap <= INT_MAX);
        int n = (int)cap;
        for (int i = srv->nslots; i < n; i++) {
            srv->slots[i].req = NULL;
            srv->slots[i].gen = 0;
            srv->slots[i].next_free = i + 1 < n ? i + 1 : -1;
        }
        srv->slot_free = srv->nslots;
        srv->nslots = n;
    }
    int s = srv->slot_free;
    srv->slot_free = srv->slots[s].next_free;
    srv->slots[s].req = req;
    srv->slots[s].gen++;
    req->slot = s;
    struct epoll_event ev = {.events = EPOLLRDHUP | EPOLLONESHOT,
                             .data.u64 = ((uint64_t)srv->slots[s].gen << 32) | (uint32_t)s};
    if (epoll_ctl(srv->epfd, EPOLL_CTL_ADD, ci->connect_fd, &ev) < 0) {
        /* Not watchable (should not happen): only the deadline applies. */
        srv->slots[s].req = NULL;
        srv->slots[s].next_free = srv->slot_free;
        srv->slot_free = s;
        req->slot = -1;
    }
}

void vk__http_watch_del(struct vk_http_req *req)
{
    struct vk_http_server *srv = req->srv;
    if (req->heap_idx != SIZE_MAX)
        heap_remove(srv, req);
    if (req->slot >= 0) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (ci)
            epoll_ctl(srv->epfd, EPOLL_CTL_DEL, ci->connect_fd, NULL);
        int s = req->slot;
        srv->slots[s].req = NULL;
        srv->slots[s].gen++;
        srv->slots[s].next_free = srv->slot_free;
        srv->slot_free = s;
        req->slot = -1;
    }
}

/* ---------------------------------------------------------------- Thread */

/* The client of a suspended connection went away. */
static void on_hangup(struct vk_http_server *srv, uint64_t token)
{
    uint32_t s = (uint32_t)token, gen = (uint32_t)(token >> 32);
    pthread_mutex_lock(&srv->mu);
    if ((int)s >= srv->nslots || srv->slots[s].gen != gen || !srv->slots[s].req) {
        pthread_mutex_unlock(&srv->mu);
        return;
    }
    struct vk_http_req *req = srv->slots[s].req;
    if (req->stream) {
        /* An idle stream: let the reader end it with an error. */
        req->stream->peer_gone = true;
        bool resume = vk__http_wake_locked(req);
        struct MHD_Connection *conn = req->conn;
        pthread_mutex_unlock(&srv->mu);
        if (resume)
            MHD_resume_connection(conn);
        return;
    }
    if (req->state != RS_PARKED) {
        vk__http_watch_del(req);
        pthread_mutex_unlock(&srv->mu);
        return;
    }
    req->state = RS_CLOSING;
    bool resume = vk__http_wake_locked(req);
    pthread_mutex_unlock(&srv->mu);
    /* We took over the park reference: req stays valid through on_close. */
    if (req->on_close)
        req->on_close(req, req->cb_ctx);
    if (resume)
        MHD_resume_connection(req->conn);
    vk_http_req_unref(req);
}

/* Pop every request whose deadline passed and expire it (outside the lock). */
static int64_t run_deadlines(struct vk_http_server *srv)
{
    for (;;) {
        pthread_mutex_lock(&srv->mu);
        int64_t now = vk_time_mono_ns();
        if (srv->heap_len == 0) {
            pthread_mutex_unlock(&srv->mu);
            return -1;
        }
        struct vk_http_req *req = srv->heap[0];
        if (req->deadline_ns > now) {
            int64_t ms = (req->deadline_ns - now + 999999) / 1000000;
            pthread_mutex_unlock(&srv->mu);
            return ms;
        }
        heap_remove(srv, req);
        if (req->state != RS_PARKED) {
            pthread_mutex_unlock(&srv->mu);
            continue;
        }
        req->state = RS_EXPIRING;
        pthread_mutex_unlock(&srv->mu);
        vk__http_expire(req, MHD_HTTP_NO_CONTENT);
    }
}

static void *watch_main(void *arg)
{
    struct vk_http_server *srv = arg;
    struct epoll_event evs[64];
    int64_t timeout = -1;
    for (;;) {
        int n = epoll_wait(srv->epfd, evs, (int)VK_ARRAY_LEN(evs),
                           timeout > INT32_MAX ? INT32_MAX : (int)timeout);
        if (n < 0 && errno != EINTR)
            break;
        for (int i = 0; i < n; i++) {
            if (evs[i].data.u64 == WAKE_TOKEN) {
                uint64_t v;
                ssize_t r = read(srv->wakefd, &v, sizeof(v));
                (void)r;
                continue;
            }
            on_hangup(srv, evs[i].data.u64);
        }
        pthread_mutex_lock(&srv->mu);
        bool quit = srv->watcher_quit;
        pthread_mutex_unlock(&srv->mu);
        if (quit)
            break;
        timeout = run_deadlines(srv);
        int64_t conn_ms = vk__http_conn_expire(srv);
        if (conn_ms >= 0 && (timeout < 0 || conn_ms < timeout))
            timeout = conn_ms;
    }
    return NULL;
}

int vk__http_watch_start(struct vk_http_server *srv, struct vk_err *err)
{
    int rc = pthread_create(&srv->watcher, NULL, watch_main, srv);
    if (rc != 0) {
        errno = rc;
        return vk_err_errno(err, "pthread_create");
    }
    srv->watcher_running = true;
    return 0;
}

void vk__http_watch_stop(struct vk_http_server *srv)
{
    if (!srv->watcher_running)
        return;
    pthread_mutex_lock(&srv->mu);
    srv->watcher_quit = true;
    wake(srv);
    pthread_mutex_unlock(&srv->mu);
    pthread_join(srv->watcher, NULL);
    srv->watcher_running = false;
}
