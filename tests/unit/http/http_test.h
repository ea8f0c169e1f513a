/*
 * Shared helpers for the http tests: start a real server on 127.0.0.1:0,
 * make a client for it, and talk raw HTTP over a socket when the client
 * cannot produce the request we need (chunked uploads, abrupt closes).
 */
#ifndef VK_HTTP_TEST_H
#define VK_HTTP_TEST_H

#include "vk_test.h"
#include "vulcan/http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static inline struct vk_http_server *test_server_new(const char *listen)
{
    /* These tests load the server with hundreds of connections from loopback: the
     * per-address limit (default 64) has tests of its own (test_server.c, cli_connections). */
    struct vk_http_server_opts o = {.listen = listen ? listen : "127.0.0.1:0",
                                    .per_addr_limit = 4096};
    struct vk_http_server *srv = NULL;
    struct vk_err err;
    int rc = vk_http_server_new(&o, &srv, &err);
    if (rc != 0)
        fail_msg("server_new: %s", err.msg);
    return srv;
}

static inline void test_server_start(struct vk_http_server *srv)
{
    struct vk_err err;
    if (vk_http_server_start(srv, &err) != 0)
        fail_msg("server_start: %s", err.msg);
    assert_true(vk_http_server_port(srv) > 0);
}

static inline struct vk_http_client *test_client(struct vk_http_server *srv, long timeout_ms)
{
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%u", vk_http_server_port(srv));
    struct vk_http_client_opts o = {.base_url = url, .timeout_ms = timeout_ms};
    struct vk_http_client *cl = NULL;
    struct vk_err err;
    if (vk_http_client_new(&o, &cl, &err) != 0)
        fail_msg("client_new: %s", err.msg);
    return cl;
}

/* GET/POST and return the status; *body (may be NULL) gets the body (owned). */
static inline long test_call(struct vk_http_client *cl, const char *method, const char *path,
                             const char *body, char **out)
{
    struct vk_http_response resp;
    struct vk_err err;
    int rc = vk_http_client_request(cl, method, path, body ? "application/json" : NULL, body,
                                    body ? strlen(body) : 0, 0, &resp, &err);
    if (rc != 0)
        fail_msg("%s %s: %s", method, path, err.msg);
    long st = resp.status;
    if (out)
        *out = vk_buf_take(&resp.body, NULL);
    vk_http_response_release(&resp);
    return st;
}

/* Raw TCP connection to the server. */
static inline int test_connect(struct vk_http_server *srv)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(vk_http_server_port(srv))};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    return fd;
}

static inline void test_send(int fd, const char *s, size_t n)
{
    while (n > 0) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w <= 0)
            return; /* the server may have answered and closed */
        s += w;
        n -= (size_t)w;
    }
}

/* Read until the peer closes or `ms` pass; returns what was read (static buffer). */
static inline const char *test_read_all(int fd, int ms)
{
    static char buf[65536];
    size_t len = 0;
    while (len + 1 < sizeof(buf)) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, ms) <= 0)
            break;
        ssize_t r = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
        if (r <= 0)
            break;
        len += (size_t)r;
    }
    buf[len] = '\0';
    return buf;
}

/* Poll `flag` (an atomic or volatile int read through the function) up to `ms`. */
static inline int test_wait_for(int (*check)(void *), void *arg, int ms)
{
    for (int i = 0; i < ms; i++) {
        if (check(arg))
            return 1;
        usleep(1000);
    }
    return check(arg);
}

#endif /* VK_HTTP_TEST_H */
