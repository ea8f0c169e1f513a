/*
 * The default import fetcher: regular local files, and http(s) URLs with
 * libcurl under the request's size, time, redirect and protocol limits.
 */
#include "vulcan/workflow.h"

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static int fetch_file(const struct vk_wf_fetch_req *req, struct vk_buf *out, struct vk_err *err)
{
    /* O_NONBLOCK: opening a FIFO must not hang; we refuse anything but regular files. */
    int fd = open(req->location, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        if (errno == ENOENT)
            return vk_err_set(err, VK_ENOTFOUND, "no such file");
        return vk_err_errno(err, "open");
    }
    int rc = 0;
    struct stat st;
    if (fstat(fd, &st) < 0) {
        rc = vk_err_errno(err, "stat");
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = vk_err_set(err, VK_EIO, "not a regular file");
        goto out;
    }
    if ((uint64_t)st.st_size > req->max_size) {
        rc = vk_err_set(err, VK_ETOOBIG, "larger than %zu bytes", req->max_size);
        goto out;
    }
    for (;;) {
        char chunk[16384];
        ssize_t n = read(fd, chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = vk_err_errno(err, "read");
            goto out;
        }
        if (n == 0)
            break;
        if (out->len + (size_t)n > req->max_size) {
            rc = vk_err_set(err, VK_ETOOBIG, "larger than %zu bytes", req->max_size);
            goto out;
        }
        rc = vk_buf_add(out, chunk, (size_t)n);
        if (rc < 0) {
            vk_err_set(err, rc, "%s", vk_err_name(rc));
            goto out;
        }
    }
out:
    close(fd);
    return rc;
}

struct sink {
    struct vk_buf *out;
    size_t max;
    bool too_big;
    bool nomem;
};

static size_t on_data(char *p, size_t size, size_t nmemb, void *ud)
{
    struct sink *s = ud;
    size_t n = size * nmemb;
    if (s->out->len + n > s->max) {
        s->too_big = true;
        return 0;
    }
    if (vk_buf_add(s->out, p, n) < 0) {
        s->nomem = true;
        return 0;
    }
    return n;
}

struct guard {
    vk_wf_addr_check_fn *check;
    void *ctx;
    const char *why; /* the last refusal */
};

static curl_socket_t open_socket(void *ud, curlsocktype purpose, struct curl_sockaddr *a)
{
    struct guard *g = ud;
    (void)purpose;
    const char *why = g->check(g->ctx, &a->addr, a->addrlen);
    if (why) {
        g->why = why;
        return CURL_SOCKET_BAD;
    }
    return socket(a->family, a->socktype | SOCK_CLOEXEC, a->protocol);
}

static int fetch_url(const struct vk_wf_fetch_req *req, vk_wf_addr_check_fn *check, void *check_ctx,
                     struct vk_buf *out, struct vk_err *err)
{
    char ebuf[CURL_ERROR_SIZE] = "";
    struct guard g = {check, check_ctx, NULL};
    struct sink s = {out, req->max_size, false, false};
    const char *protos = req->allow_http ? "http,https" : "https";
    CURL *h = curl_easy_init();
    if (!h)
        return vk_err_set(err, VK_ENOMEM, "cannot start a download");
    curl_easy_setopt(h, CURLOPT_URL, req->location);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, protos);
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, protos);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, req->max_redirects > 0 ? 1L : 0L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, (long)req->max_redirects);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, req->timeout_ms);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, req->timeout_ms);
    curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)req->max_size);
    curl_easy_setopt(h, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, ebuf);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "vulcan/" VK_VERSION);
    if (check) {
        curl_easy_setopt(h, CURLOPT_OPENSOCKETFUNCTION, open_socket);
        curl_easy_setopt(h, CURLOPT_OPENSOCKETDATA, &g);
        curl_easy_setopt(h, CURLOPT_PROXY, ""); /* the address checked is the one reached */
    }
    CURLcode cc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
    if (cc == CURLE_OK)
        return 0;
    if (g.why)
        return vk_err_set(err, VK_EPERM, "the import's host is a %s address", g.why);
    if (s.nomem)
        return vk_err_set(err, VK_ENOMEM, "out of memory");
    if (s.too_big || cc == CURLE_FILESIZE_EXCEEDED)
        return vk_err_set(err, VK_ETOOBIG, "larger than %zu bytes", req->max_size);
    switch (cc) {
    case CURLE_OPERATION_TIMEDOUT:
        return vk_err_set(err, VK_ETIMEDOUT, "no complete answer within %ld ms", req->timeout_ms);
    case CURLE_TOO_MANY_REDIRECTS:
        return vk_err_set(err, VK_EIO, "more than %d redirects", req->max_redirects);
    case CURLE_UNSUPPORTED_PROTOCOL:
        return vk_err_set(err, VK_EPERM, "a redirect to a scheme that is not allowed (%s only)",
                          protos);
    case CURLE_HTTP_RETURNED_ERROR:
        return vk_err_set(err, status == 404 || status == 410 ? VK_ENOTFOUND : VK_EIO,
                          "the server answered HTTP %ld", status);
    default:
        return vk_err_set(err, VK_EIO, "%s", ebuf[0] ? ebuf : curl_easy_strerror(cc));
    }
}

int vk_wf_fetch_default(void *ctx, const struct vk_wf_fetch_req *req, struct vk_buf *out,
                        struct vk_err *err)
{
    (void)ctx;
    if (req->is_url)
        return fetch_url(req, NULL, NULL, out, err);
    return fetch_file(req, out, err);
}

int vk_wf_fetch_url_checked(const struct vk_wf_fetch_req *req, vk_wf_addr_check_fn *check,
                            void *check_ctx, struct vk_buf *out, struct vk_err *err)
{
    if (!req->is_url)
        return vk_err_set(err, VK_EINVAL, "not a URL");
    return fetch_url(req, check, check_ctx, out, err);
}

int vk_wf_fetch_refuse(void *ctx, const struct vk_wf_fetch_req *req, struct vk_buf *out,
                       struct vk_err *err)
{
    (void)ctx;
    (void)req;
    (void)out;
    return vk_err_set(err, VK_EPERM, "imports are not allowed here");
}
