/*
 * HTTP client over libcurl: one easy handle per client, reset between
 * requests (curl_easy_reset keeps the connection cache, so keep-alive
 * survives). Not thread-safe: one client per thread.
 */
#include "vulcan/http.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#define DEF_CONNECT_TIMEOUT_MS 5000L
#define DEF_TIMEOUT_MS 30000L
#define MAX_URL 4096u

struct client_hdr {
    struct client_hdr *next;
    char *name;
    char *line; /* "Name: value" */
};

struct vk_http_client {
    CURL *curl;
    char *base;
    char *ca_file; /* NULL: the system's CAs */
    long connect_timeout_ms;
    long timeout_ms;
    size_t max_response;
    struct client_hdr *headers;
    char errbuf[CURL_ERROR_SIZE];
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init_once(void)
{
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int vk_http_client_new(const struct vk_http_client_opts *opts, struct vk_http_client **out,
                       struct vk_err *err)
{
    *out = NULL;
    if (!opts || !opts->base_url || !*opts->base_url)
        return vk_err_set(err, VK_EINVAL, "http client needs a base URL");
    if (strncmp(opts->base_url, "http://", 7) != 0 && strncmp(opts->base_url, "https://", 8) != 0)
        return vk_err_set(err, VK_EINVAL, "base URL '%s' is not http:// or https://",
                          opts->base_url);
    pthread_once(&curl_once, curl_init_once);
    if (curl_init_rc != CURLE_OK)
        return vk_err_set(err, VK_EIO, "curl_global_init failed: %s",
                          curl_easy_strerror(curl_init_rc));
    struct vk_http_client *cl = vk_mem_calloc(1, sizeof(*cl));
    if (!cl)
        return vk_err_set(err, VK_ENOMEM, "out of memory");
    cl->curl = curl_easy_init();
    if (!cl->curl) {
        vk_mem_free(cl);
        return vk_err_set(err, VK_ENOMEM, "curl_easy_init failed");
    }
    cl->base = vk_mem_xstrdup(opts->base_url);
    cl->ca_file = opts->ca_file && *opts->ca_file ? vk_mem_xstrdup(opts->ca_file) : NULL;
    size_t bl = strlen(cl->base);
    while (bl > 0 && cl->base[bl - 1] == '/')
        cl->base[--bl] = '\0';
    cl->connect_timeout_ms =
        opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms : DEF_CONNECT_TIMEOUT_MS;
    cl->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : DEF_TIMEOUT_MS;
    cl->max_response = opts->max_response ? opts->max_response : VK_MAX_BODY;
    *out = cl;
    return 0;
}

void vk_http_client_free(struct vk_http_client *cl)
{
    if (!cl)
        return;
    struct client_hdr *h = cl->headers;
    while (h) {
        struct client_hdr *next = h->next;
        vk_mem_free(h->name);
        vk_mem_free(h->line);
        vk_mem_free(h);
        h = next;
    }
    curl_easy_cleanup(cl->curl);
    vk_mem_free(cl->ca_file);
    vk_mem_free(cl->base);
    vk_mem_free(cl);
}

static bool header_text_ok(const char *s, bool name)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '\r' || c == '\n' || c == 0x7f || (c < 0x20 && c != '\t'))
            return false;
        if (name && (c == ':' || c == ' ' || c == '\t'))
            return false;
    }
    return true;
}

int vk_http_client_set_header(struct vk_http_client *cl, const char *name, const char *value)
{
    if (!name || !*name || !header_text_ok(name, true) || (value && !header_text_ok(value, false)))
        return VK_EINVAL;
    struct client_hdr **pp = &cl->headers;
    while (*pp && strcasecmp((*pp)->name, name) != 0)
        pp = &(*pp)->next;
    if (*pp) {
        struct client_hdr *old = *pp;
        *pp = old->next;
        vk_mem_free(old->name);
        vk_mem_free(old->line);
        vk_mem_free(old);
    }
    if (!value)
        return 0;
    struct client_hdr *h = vk_mem_calloc(1, sizeof(*h));
    if (!h)
        return VK_ENOMEM;
    size_t n = strlen(name) + strlen(value) + 3;
    h->line = vk_mem_alloc(n);
    if (!h->line) {
        vk_mem_free(h);
        return VK_ENOMEM;
    }
    snprintf(h->line, n, "%s: %s", name, value);
    h->name = vk_mem_xstrdup(name);
    h->next = cl->headers;
    cl->headers = h;
    return 0;
}

void vk_http_response_release(struct vk_http_response *resp)
{
    if (!resp)
        return;
    vk_buf_release(&resp->body);
}

/* ---------------------------------------------------------------- Transfer */

struct xfer {
    struct vk_http_response *resp;
    vk_http_chunk_fn on_chunk;
    void *ctx;
    int cb_rc; /* the chunk callback's stop code */
    bool too_big;
};

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct xfer *x = userdata;
    size_t n = size * nmemb;
    if (x->on_chunk) {
        int rc = x->on_chunk(x->ctx, ptr, n);
        if (rc != 0) {
            x->cb_rc = rc;
            return 0;
        }
        return n;
    }
    if (vk_buf_add(&x->resp->body, ptr, n) < 0) {
        x->too_big = true;
        return 0;
    }
    return n;
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *userdata)
{
    struct xfer *x = userdata;
    size_t n = size * nitems;
    static const char ct[] = "content-type:";
    if (n > sizeof(ct) - 1 && strncasecmp(buf, ct, sizeof(ct) - 1) == 0) {
        const char *v = buf + sizeof(ct) - 1;
        const char *e = buf + n;
        while (v < e && (*v == ' ' || *v == '\t'))
            v++;
        while (e > v && (e[-1] == '\r' || e[-1] == '\n' || e[-1] == ' '))
            e--;
        size_t len = (size_t)(e - v);
        if (len >= sizeof(x->resp->content_type))
            len = sizeof(x->resp->content_type) - 1;
        memcpy(x->resp->content_type, v, len);
        x->resp->content_type[len] = '\0';
    }
    return n;
}

/* One transfer. `body` NULL and `method` GET: no body. */
void vk_http_curl_tls(void *curl, const char *ca_file)
{
    /* Verification is libcurl's default; say so anyway so that a reset handle keeps it. */
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);
    if (ca_file && *ca_file)
        curl_easy_setopt(curl, CURLOPT_CAINFO, ca_file);
}

const char *vk_http_tls_explain(int curl_code, const char *server, const char *why,
                                const char *ca_file, char *buf, size_t cap)
{
    if (!buf || cap == 0)
        return NULL;
    if (!why)
        why = curl_easy_strerror((CURLcode)curl_code);
    switch ((CURLcode)curl_code) {
    case CURLE_PEER_FAILED_VERIFICATION:
        if (ca_file && *ca_file)
            snprintf(buf, cap,
                     "the TLS certificate of '%s' does not verify against --ca-cert '%s': %s",
                     server, ca_file, why);
        else
            snprintf(buf, cap,
                     "the TLS certificate of '%s' does not verify: %s (for a private CA, give "
                     "its certificate with --ca-cert FILE or VULCAN_CA_CERT)",
                     server, why);
        return buf;
    case CURLE_SSL_CACERT_BADFILE:
        snprintf(buf, cap, "cannot use --ca-cert '%s' to verify '%s': %s",
                 ca_file ? ca_file : "(system CAs)", server, why);
        return buf;
    case CURLE_SSL_CONNECT_ERROR:
        snprintf(buf, cap, "TLS handshake with '%s' failed: %s (is it an https:// server?)", server,
                 why);
        return buf;
    default:
        return NULL;
    }
}

static int perform(struct vk_http_client *cl, const char *method, const char *path,
                   const char *content_type, const void *body, size_t body_len, long timeout_ms,
                   struct xfer *x, struct vk_err *err)
{
    char url[MAX_URL];
    if (!path || path[0] != '/')
        return vk_err_set(err, VK_EINVAL, "request path '%s' must start with '/'",
                          path ? path : "");
    int un = snprintf(url, sizeof(url), "%s%s", cl->base, path);
    if (un < 0 || (size_t)un >= sizeof(url))
        return vk_err_set(err, VK_ETOOBIG, "request URL too long");
    for (const char *p = path; *p; p++)
        if ((unsigned char)*p <= 0x20 || *p == 0x7f)
            return vk_err_set(err, VK_EINVAL, "request path has a space or control character");

    CURL *c = cl->curl;
    curl_easy_reset(c);
    struct curl_slist *hdrs = NULL, *tmp;
    int rc = 0;
    char ctline[256];
    char tls_msg[256];
    bool own_expect = false; /* the caller set Expect (e.g. 100-continue): keep it */
    for (struct client_hdr *h = cl->headers; h; h = h->next) {
        own_expect = own_expect || strncasecmp(h->line, "Expect:", 7) == 0;
        tmp = curl_slist_append(hdrs, h->line);
        if (!tmp)
            goto nomem;
        hdrs = tmp;
    }
    if (content_type) {
        if (!header_text_ok(content_type, false) ||
            (size_t)snprintf(ctline, sizeof(ctline), "Content-Type: %s", content_type) >=
                sizeof(ctline)) {
            rc = vk_err_set(err, VK_EINVAL, "bad content type");
            goto out;
        }
        tmp = curl_slist_append(hdrs, ctline);
        if (!tmp)
            goto nomem;
        hdrs = tmp;
    }
    if (!own_expect) {
        tmp = curl_slist_append(hdrs, "Expect:"); /* no 100-continue round trip */
        if (!tmp)
            goto nomem;
        hdrs = tmp;
    }

    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, cl->connect_timeout_ms);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cl->errbuf);
    curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(c, CURLOPT_ACCEPT_ENCODING, NULL);
    vk_http_curl_tls(c, cl->ca_file);
    cl->errbuf[0] = '\0';
    if (strcmp(method, "GET") == 0 && !body) {
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else {
        if (strcmp(method, "POST") != 0)
            curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? (const char *)body : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? body_len : 0));
    }

    CURLcode cc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    x->resp->status = status;
    if (cc == CURLE_OK)
        goto out;
    if (x->cb_rc) {
        rc = x->cb_rc;
        goto out;
    }
    if (x->too_big) {
        rc = vk_err_set(err, VK_ETOOBIG, "response from '%s' larger than %zu bytes", url,
                        cl->max_response);
        goto out;
    }
    const char *why = cl->errbuf[0] ? cl->errbuf : curl_easy_strerror(cc);
    if (cc == CURLE_OPERATION_TIMEDOUT)
        rc = vk_err_set(err, VK_ETIMEDOUT, "request to '%s' timed out: %s", url, why);
    else if (cc == CURLE_OUT_OF_MEMORY)
        rc = vk_err_set(err, VK_ENOMEM, "out of memory");
    else if (vk_http_tls_explain((int)cc, cl->base, why, cl->ca_file, tls_msg, sizeof(tls_msg)))
        rc = vk_err_set(err, VK_EIO, "%s", tls_msg);
    else if (cc == CURLE_URL_MALFORMAT || cc == CURLE_UNSUPPORTED_PROTOCOL)
        rc = vk_err_set(err, VK_EINVAL, "bad URL '%s': %s", url, why);
    else
        rc = vk_err_set(err, VK_EIO, "request to '%s' failed: %s", url, why);
    goto out;
nomem:
    rc = vk_err_set(err, VK_ENOMEM, "out of memory");
out:
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    curl_slist_free_all(hdrs);
    return rc;
}

int vk_http_client_request(struct vk_http_client *cl, const char *method, const char *path,
                           const char *content_type, const void *body, size_t body_len,
                           long timeout_ms, struct vk_http_response *resp, struct vk_err *err)
{
    memset(resp, 0, sizeof(*resp));
    vk_buf_init(&resp->body, cl->max_response);
    struct xfer x = {.resp = resp};
    int rc = perform(cl, method, path, content_type, body, body_len,
                     timeout_ms > 0 ? timeout_ms : cl->timeout_ms, &x, err);
    if (rc < 0)
        vk_http_response_release(resp);
    return rc;
}

int vk_http_client_json(struct vk_http_client *cl, const char *method, const char *path,
                        json_t *req_body, long timeout_ms, long *status, json_t **answer,
                        struct vk_err *err)
{
    *answer = NULL;
    if (status)
        *status = 0;
    char *text = NULL;
    size_t len = 0;
    if (req_body) {
        text = vk_http_json_text(req_body, JSON_COMPACT | JSON_ENCODE_ANY, &len);
        if (!text)
            return vk_err_set(err, VK_ENOMEM, "cannot encode the request body");
    }
    struct vk_http_response resp;
    int rc = vk_http_client_request(cl, method, path, text ? "application/json" : NULL, text, len,
                                    timeout_ms, &resp, err);
    free(text);
    if (rc < 0)
        return rc;
    if (status)
        *status = resp.status;
    if (resp.body.len > 0) {
        json_error_t je;
        *answer = json_loadb(resp.body.data, resp.body.len, JSON_DECODE_ANY, &je);
        if (!*answer)
            rc = vk_err_set(err, VK_EPARSE, "answer to '%s %s' (status %ld) is not JSON: %s",
                            method, path, resp.status, je.text);
    }
    vk_http_response_release(&resp);
    return rc;
}

int vk_http_client_stream(struct vk_http_client *cl, const char *path, long timeout_ms,
                          vk_http_chunk_fn on_chunk, void *ctx, long *status, struct vk_err *err)
{
    struct vk_http_response resp;
    memset(&resp, 0, sizeof(resp));
    vk_buf_init(&resp.body, cl->max_response);
    struct xfer x = {.resp = &resp, .on_chunk = on_chunk, .ctx = ctx};
    int rc = perform(cl, "GET", path, NULL, NULL, 0, timeout_ms > 0 ? timeout_ms : 0, &x, err);
    if (status)
        *status = resp.status;
    vk_http_response_release(&resp);
    return rc;
}
