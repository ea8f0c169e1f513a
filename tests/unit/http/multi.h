/*
 * Test helper: run many HTTP requests at once from one background thread
 * with curl multi, and collect each status and body.
 */
#ifndef VK_HTTP_TEST_MULTI_H
#define VK_HTTP_TEST_MULTI_H

#include <curl/curl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

struct multi_item {
    char url[128];
    long timeout_ms;
    long status; /* 0 when the transfer failed */
    CURLcode code;
    char body[256];
    size_t len;
};

struct multi_run {
    struct multi_item *items;
    size_t n;
    pthread_t thread;
};

static size_t multi_write(char *p, size_t sz, size_t nm, void *ud)
{
    struct multi_item *it = ud;
    size_t n = sz * nm;
    size_t room = sizeof(it->body) - 1 - it->len;
    size_t c = n < room ? n : room;
    memcpy(it->body + it->len, p, c);
    it->len += c;
    it->body[it->len] = '\0';
    return n;
}

static void *multi_main(void *arg)
{
    struct multi_run *r = arg;
    CURLM *m = curl_multi_init();
    curl_multi_setopt(m, CURLMOPT_MAX_HOST_CONNECTIONS, 0L);
    CURL **hs = calloc(r->n, sizeof(*hs));
    for (size_t i = 0; i < r->n; i++) {
        CURL *h = curl_easy_init();
        curl_easy_setopt(h, CURLOPT_URL, r->items[i].url);
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, r->items[i].timeout_ms);
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_FORBID_REUSE, 1L);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, multi_write);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, &r->items[i]);
        curl_easy_setopt(h, CURLOPT_PRIVATE, &r->items[i]);
        curl_multi_add_handle(m, h);
        hs[i] = h;
    }
    int running = 1;
    while (running) {
        curl_multi_perform(m, &running);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(m, &left))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            struct multi_item *it;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&it);
            it->code = msg->data.result;
            if (msg->data.result == CURLE_OK)
                curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &it->status);
        }
        if (running)
            curl_multi_poll(m, NULL, 0, 100, NULL);
    }
    for (size_t i = 0; i < r->n; i++) {
        curl_multi_remove_handle(m, hs[i]);
        curl_easy_cleanup(hs[i]);
    }
    free(hs);
    curl_multi_cleanup(m);
    return NULL;
}

/* Start `n` GETs of base+path(i) in the background; request i times out
 * after timeout_ms + (i % 3) * step_ms. */
static struct multi_run *multi_start(unsigned port, size_t n, const char *fmt, long timeout_ms,
                                     long step_ms)
{
    struct multi_run *r = calloc(1, sizeof(*r));
    r->n = n;
    r->items = calloc(n, sizeof(*r->items));
    for (size_t i = 0; i < n; i++) {
        snprintf(r->items[i].url, sizeof(r->items[i].url), "http://127.0.0.1:%u", port);
        size_t l = strlen(r->items[i].url);
        snprintf(r->items[i].url + l, sizeof(r->items[i].url) - l, fmt, (int)i);
        r->items[i].timeout_ms = timeout_ms + (long)(i % 3) * step_ms;
    }
    pthread_create(&r->thread, NULL, multi_main, r);
    return r;
}

static void multi_join(struct multi_run *r)
{
    pthread_join(r->thread, NULL);
}

static void multi_free(struct multi_run *r)
{
    free(r->items);
    free(r);
}

#endif /* VK_HTTP_TEST_MULTI_H */
