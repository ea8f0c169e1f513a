/*
 * agent_poll.c — the worker's long-poll request (POST /api/v1/work/request).
 *
 * vk_http_client cannot be interrupted while the server holds a long-poll
 * (up to wait_s seconds), but a stopping worker must stop asking for work at
 * once. So this one request uses its own curl easy handle with a progress
 * callback that aborts the transfer when the stop flag is set (libcurl calls
 * it several times a second even when no data moves). The handle is kept
 * between requests, so the connection is reused.
 */
#include "agent_int.h"

#include <curl/curl.h>
#include <stdio.h>
#include <string.h>

#define POLL_MAX_URL 4096u

struct agent_poller {
    CURL *curl;
    char *base;
    char *ca_file; /* NULL: the system's CAs */
    char errbuf[CURL_ERROR_SIZE];
};

struct poll_xfer {
    struct vk_buf *body;
    const atomic_bool *abort_flag;
    bool too_big;
};

static pthread_once_t poll_curl_once = PTHREAD_ONCE_INIT;
static CURLcode poll_curl_rc;

static void poll_curl_init(void)
{
    poll_curl_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int vk__agent_poller_new(const char *base_url, const char *ca_file, struct agent_poller **out,
                         struct vk_err *err)
{
    *out = NULL;
    pthread_once(&poll_curl_once, poll_curl_init);
    if (poll_curl_rc != CURLE_OK)
        return vk_err_set(err, VK_EIO, "curl_global_init failed: %s",
                          curl_easy_strerror(poll_curl_rc));
    struct agent_poller *p = vk_mem_calloc(1, sizeof(*p));
    if (!p)
        return vk_err_set(err, VK_ENOMEM, "out of memory");
    p->curl = curl_easy_init();
    if (!p->curl) {
        vk_mem_free(p);
        return vk_err_set(err, VK_ENOMEM, "curl_easy_init failed");
    }
    p->base = vk_mem_xstrdup(base_url);
    p->ca_file = ca_file && *ca_file ? vk_mem_xstrdup(ca_file) : NULL;
    size_t n = strlen(p->base);
    while (n > 0 && p->base[n - 1] == '/')
        p->base[--n] = '\0';
    *out = p;
    return 0;
}

void vk__agent_poller_free(struct agent_poller *p)
{
    if (!p)
        return;
    curl_easy_cleanup(p->curl);
    vk_mem_free(p->base);
    vk_mem_free(p->ca_file);
    vk_mem_free(p);
}

static size_t poll_on_write(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct poll_xfer *x = ud;
    size_t n = size * nmemb;
    if (vk_buf_add(x->body, ptr, n) < 0) {
        x->too_big = true;
        return 0;
    }
    return n;
}

static int poll_on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                            curl_off_t ulnow)
{
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    struct poll_xfer *x = ud;
    return x->abort_flag && atomic_load(x->abort_flag) ? 1 : 0;
}

int vk__agent_poll_post(struct agent_poller *p, const char *path, const char *json_body,
                        const char *token, long timeout_ms, const atomic_bool *abort_flag,
                        long *status, struct vk_buf *body, struct vk_err *err)
{
    vk_buf_init(body, AGENT_MAX_ITEM);
    *status = 0;
    char url[POLL_MAX_URL];
    int un = snprintf(url, sizeof(url), "%s%s", p->base, path);
    if (un < 0 || (size_t)un >= sizeof(url))
        return vk_err_set(err, VK_ETOOBIG, "request URL too long");
    if (abort_flag && atomic_load(abort_flag))
        return VK_EAGAIN;

    struct curl_slist *hdrs = NULL, *tmp;
    tmp = curl_slist_append(hdrs, "Content-Type: application/json");
    if (!tmp)
        return vk_err_set(err, VK_ENOMEM, "out of memory");
    hdrs = tmp;
    tmp = curl_slist_append(hdrs, "Expect:");
    if (!tmp) {
        curl_slist_free_all(hdrs);
        return vk_err_set(err, VK_ENOMEM, "out of memory");
    }
    hdrs = tmp;
    if (token && *token) {
        char auth[32 + VK_AUTH_TOKEN_MAX];
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
        tmp = curl_slist_append(hdrs, auth);
        vk_auth_wipe(auth, sizeof(auth));
        if (!tmp) {
            curl_slist_free_all(hdrs);
            return vk_err_set(err, VK_ENOMEM, "out of memory");
        }
        hdrs = tmp;
    }

    struct poll_xfer x = {.body = body, .abort_flag = abort_flag};
    CURL *c = p->curl;
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, json_body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(json_body));
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, poll_on_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &x);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, poll_on_progress);
    curl_easy_setopt(c, CURLOPT_XFERINFODATA, &x);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, p->errbuf);
    curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "vulcan-worker/" VK_VERSION);
    vk_http_curl_tls(c, p->ca_file);
    p->errbuf[0] = '\0';

    CURLcode cc = curl_easy_perform(c);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(hdrs);
    if (cc == CURLE_OK)
        return 0;
    vk_buf_release(body);
    if (cc == CURLE_ABORTED_BY_CALLBACK)
        return VK_EAGAIN;
    if (x.too_big)
        return vk_err_set(err, VK_ETOOBIG, "work item larger than %u bytes", AGENT_MAX_ITEM);
    const char *why = p->errbuf[0] ? p->errbuf : curl_easy_strerror(cc);
    if (cc == CURLE_OPERATION_TIMEDOUT)
        return vk_err_set(err, VK_ETIMEDOUT, "request to '%s' timed out: %s", url, why);
    if (cc == CURLE_OUT_OF_MEMORY)
        return vk_err_set(err, VK_ENOMEM, "out of memory");
    char tls_msg[256];
    if (vk_http_tls_explain((int)cc, p->base, why, p->ca_file, tls_msg, sizeof(tls_msg)))
        return vk_err_set(err, VK_EIO, "%s", tls_msg);
    return vk_err_set(err, VK_EIO, "request to '%s' failed: %s", url, why);
}
