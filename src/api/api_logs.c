/*
 * A fragment's log: GET /api/v1/fragments/{id}/log.
 *
 * Without `follow` the stored log of the latest attempt (or `?attempt=N`) is
 * returned whole as text, from `?offset=B` on.
 *
 * With `?follow=1` the answer is a Server-Sent Events stream:
 *
 *   event: status   data: {"status","attempt","exit_code","error"}   on start and each change
 *   event: log      data: {"attempt","offset","next","text"}   id: ATTEMPT:NEXT
 *   event: attempt  data: {"attempt"}   the fragment went back to the queue; its new
 *                                       attempt's log follows from offset 0
 *   event: end      data: {"status","attempt","offset"}   final status reached, all sent
 *
 * `text` is the bytes [offset, next) as a JSON string: valid UTF-8 passes
 * through, each invalid byte becomes U+FFFD (the plain endpoint is the
 * byte-exact one), and a UTF-8 sequence cut by the end of what is stored is
 * held back until its remaining bytes arrive. A client resumes with
 * `Last-Event-ID: A:N` (what EventSource sends by itself) or `?offset=N`.
 *
 * Each stream has a thread of its own (at most MAX_FOLLOWERS at once, 503
 * beyond) that reads new bytes from the store, at once while there is more,
 * else every POLL_MS; it looks at the fragment's status when no new bytes came
 * or every STATUS_MS. Writes wait for room in the stream's queue
 * (backpressure), so a slow client slows its own thread only.
 */
#include "api_int.h"
#include "vulcan/telemetry.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PULL_BLOCK (64u * 1024u) /* one store read of the plain log */
#define MAX_FOLLOWERS 256u
/* A follower's store read, and its stream's queue: what a slow follower holds (a few times
 * 8 KiB besides the queue), for at most MAX_FOLLOWERS of them (issue 14 item 3: 128 slow
 * followers of a 60 MiB log took 436 MB with 256 KiB reads and a 2 MiB queue). */
#define READ_CHUNK (8u * 1024u)
#define POLL_MS 100
#define STATUS_MS 500
#define KEEPALIVE_MS 15000
#define STREAM_QUEUE (64u * 1024u)
/* The largest log event (every byte as \u00XX, and its header) fits in the queue. */
_Static_assert(READ_CHUNK * 7 + 4096 <= STREAM_QUEUE, "a log event fits in a stream's queue");

/* ---------------------------------------------------------------- Parameters */

struct log_params {
    char id[VK_UUID_LEN];
    int attempt; /* 0: the latest */
    bool fixed;  /* ?attempt=N was given (not only Last-Event-ID) */
    int64_t offset;
    bool follow;
};

static int parse_int(const char *s, long long min, long long max, long long *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end || errno || v < min || v > max)
        return VK_EINVAL;
    *out = v;
    return 0;
}

/* Query parameters and Last-Event-ID ("A:N"). Replies 400/404 and returns < 0 on bad input. */
static int read_params(struct vk_http_req *req, struct log_params *p)
{
    const char *id = vk_http_param(req, "id");
    if (!id || !vk_uuid_valid(id)) {
        vk_http_reply_error(req, 404, "not_found", "no fragment '%s'", id ? id : "");
        return VK_ENOTFOUND;
    }
    snprintf(p->id, sizeof(p->id), "%s", id);
    const char *a = vk_http_query(req, "attempt");
    const char *o = vk_http_query(req, "offset");
    const char *f = vk_http_query(req, "follow");
    long long v;
    if (a) {
        if (parse_int(a, 1, 1000000, &v) < 0) {
            vk_http_reply_error(req, 400, "bad_request", "'attempt' must be a positive integer");
            return VK_EINVAL;
        }
        p->attempt = (int)v;
        p->fixed = true;
    }
    if (o) {
        if (parse_int(o, 0, INT64_MAX, &v) < 0) {
            vk_http_reply_error(req, 400, "bad_request", "'offset' must be a byte offset");
            return VK_EINVAL;
        }
        p->offset = v;
    }
    if (f) {
        if (strcmp(f, "") == 0 || strcmp(f, "1") == 0 || strcmp(f, "true") == 0)
            p->follow = true;
        else if (strcmp(f, "0") != 0 && strcmp(f, "false") != 0) {
            vk_http_reply_error(req, 400, "bad_request", "'follow' must be 1 or 0");
            return VK_EINVAL;
        }
    }
    const char *last = p->follow ? vk_http_header(req, "Last-Event-ID") : NULL;
    if (last && *last) {
        const char *colon = strchr(last, ':');
        char abuf[16];
        long long la, lo;
        size_t alen = colon ? (size_t)(colon - last) : 0;
        if (!colon || alen == 0 || alen >= sizeof(abuf)) {
            vk_http_reply_error(req, 400, "bad_request", "'Last-Event-ID' must be ATTEMPT:OFFSET");
            return VK_EINVAL;
        }
        memcpy(abuf, last, alen);
        abuf[alen] = '\0';
        if (parse_int(abuf, 1, 1000000, &la) < 0 || parse_int(colon + 1, 0, INT64_MAX, &lo) < 0) {
            vk_http_reply_error(req, 400, "bad_request", "'Last-Event-ID' must be ATTEMPT:OFFSET");
            return VK_EINVAL;
        }
        p->attempt = (int)la;
        p->offset = lo;
    }
    return 0;
}

/* The fragment's current attempt and status (a plain read). */
static int fragment_state(struct vk_api *api, const char *id, int *attempt,
                          enum vk_store_frag_status *status, struct vk_err *err)
{
    struct vk_pool pool;
    vk_pool_init(&pool, 4096);
    struct vk_store_fragment f;
    int rc = vk_store_fragment_get(api->opts.store, id, &pool, &f, err);
    if (rc == 0) {
        *attempt = f.attempt;
        *status = f.status;
    }
    vk_pool_release(&pool);
    return rc;
}

/* ---------------------------------------------------------------- Whole log */

/* The plain log as a pulled body: each block is one store read of at most PULL_BLOCK bytes
 * made as the client takes them, so a reader costs one block however large the log is and
 * however slowly it reads (issue 14 item 3). The length is what was stored when the request
 * came; bytes appended later are for the next read (or a follower). */
struct log_body {
    struct vk_store *store;
    char id[VK_UUID_LEN];
    int attempt;
    int64_t from; /* the first byte sent */
};

static ssize_t log_body_read(void *ctx, uint64_t pos, char *buf, size_t max)
{
    struct log_body *b = ctx;
    size_t got = 0;
    int64_t total = 0;
    struct vk_err err;
    vk_err_clear(&err);
    if (max > PULL_BLOCK)
        max = PULL_BLOCK;
    int rc = vk_store_log_read(b->store, b->id, b->attempt, b->from + (int64_t)pos, buf, max, &got,
                               &total, &err);
    if (rc < 0 || got == 0) {
        vk_log_write(VK_LOG_WARN, "api", "a log read ended early", "fragment_id", b->id, "error",
                     rc < 0 ? err.msg : "fewer bytes stored than announced", NULL);
        return -1;
    }
    return (ssize_t)got;
}

static void reply_whole(struct vk_api *api, struct vk_http_req *req, const struct log_params *p)
{
    int attempt = p->attempt;
    struct vk_err err;
    vk_err_clear(&err);
    int rc = 0;
    if (!attempt) {
        enum vk_store_frag_status st = VK_STORE_FRAG_PENDING;
        rc = fragment_state(api, p->id, &attempt, &st, &err);
        if (rc < 0) {
            vk__api_reply_err(req, &err, rc);
            return;
        }
    }
    /* A zero-byte read gives the stored length. */
    char probe[1];
    size_t got = 0;
    int64_t total = 0;
    rc = vk_store_log_read(api->opts.store, p->id, attempt, 0, probe, 0, &got, &total, &err);
    if (rc < 0) {
        vk__api_reply_err(req, &err, rc);
        return;
    }
    char num[32];
    snprintf(num, sizeof(num), "%d", attempt);
    if (vk_http_set_header(req, "X-Vulcan-Attempt", num) == 0) {
        snprintf(num, sizeof(num), "%lld", (long long)total);
        (void)!vk_http_set_header(req, "X-Vulcan-Log-Length", num);
    }
    int64_t from = p->offset < total ? p->offset : total;
    if (from == total) {
        vk_http_reply(req, 200, "text/plain; charset=utf-8", "", 0);
        return;
    }
    struct log_body *b = vk_mem_calloc(1, sizeof(*b));
    if (!b) {
        vk_http_reply_error(req, 503, "unavailable", "out of memory");
        return;
    }
    b->store = api->opts.store;
    memcpy(b->id, p->id, VK_UUID_LEN);
    b->attempt = attempt;
    b->from = from;
    if (vk_http_reply_pull(req, 200, "text/plain; charset=utf-8", (uint64_t)(total - from),
                           PULL_BLOCK, log_body_read, b, vk_mem_free) == VK_ENOMEM)
        vk_http_reply_error(req, 503, "unavailable", "out of memory");
}

/* ---------------------------------------------------------------- SSE encoding */

/* Length of the longest prefix of s[0..len) that does not end inside a UTF-8 sequence that
 * could still be completed by bytes to come. */
static size_t complete_prefix(const unsigned char *s, size_t len)
{
    size_t back = len < 3 ? len : 3;
    for (size_t k = 1; k <= back; k++) {
        unsigned char c = s[len - k];
        if ((c & 0xC0) == 0x80)
            continue; /* continuation byte: look further back */
        size_t need = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 ? 3 : c >= 0xC2 && c < 0xE0 ? 2 : 1;
        if (c >= 0xF5)
            need = 1;
        return need > k ? len - k : len;
    }
    return len;
}

/* Append `len` bytes as the body of a JSON string (no quotes). */
static int json_text(struct vk_buf *b, const unsigned char *s, size_t len)
{
    int rc = vk_buf_grow(b, len + len / 8 + 16);
    size_t i = 0;
    while (rc == 0 && i < len) {
        /* Runs of plain printable ASCII are copied at once. */
        size_t j = i;
        while (j < len && s[j] >= 0x20 && s[j] < 0x80 && s[j] != '"' && s[j] != '\\')
            j++;
        if (j > i) {
            rc = vk_buf_add(b, s + i, j - i);
            i = j;
            continue;
        }
        unsigned char c = s[i];
        if (c >= 0x80) {
            uint32_t cp;
            size_t n = vk_utf8_decode(s + i, len - i, &cp);
            if (n) {
                rc = vk_buf_add(b, s + i, n);
                i += n;
            } else {
                rc = vk_buf_adds(b, "\\ufffd");
                i++;
            }
            continue;
        }
        char esc[7];
        switch (c) {
        case '"':
            rc = vk_buf_adds(b, "\\\"");
            break;
        case '\\':
            rc = vk_buf_adds(b, "\\\\");
            break;
        case '\n':
            rc = vk_buf_adds(b, "\\n");
            break;
        case '\r':
            rc = vk_buf_adds(b, "\\r");
            break;
        case '\t':
            rc = vk_buf_adds(b, "\\t");
            break;
        default:
            memcpy(esc, "\\u00", 4);
            vk_hex_encode(&c, 1, esc + 4);
            rc = vk_buf_adds(b, esc);
            break;
        }
        i++;
    }
    return rc;
}

/* ---------------------------------------------------------------- Followers */

struct follower {
    struct vk_api *api;
    struct vk_http_stream *st;
    char id[VK_UUID_LEN];
    int attempt;
    bool fixed_attempt; /* ?attempt=N: end when the fragment moves past it */
    int64_t offset;
    enum vk_store_frag_status status;
    struct vk_buf ev;    /* the event being written */
    unsigned char *data; /* READ_CHUNK bytes */
    int64_t last_write_ms;
    int slot; /* its entry in api->follow.keys and .addrs, or -1 */
};

/* One user, and one client address (whoever it holds them for), holds at most this many
 * live followers, so that nobody takes every slot: not one user from many addresses, nor one
 * address with many users' tokens (issue 14 item 6). Under the per-address connection limit
 * (64 by default), so that an address at its followers' limit can still do the rest. */
#define MAX_FOLLOWERS_PER_CALLER 32u
_Static_assert(VK_ARRAY_LEN(((struct vk__api_follow_set *)0)->keys) == MAX_FOLLOWERS &&
                   VK_ARRAY_LEN(((struct vk__api_follow_set *)0)->addrs) == MAX_FOLLOWERS,
               "one key per follower slot");

static void follow_keys(struct vk_http_req *req, char user[48], char addr[48])
{
    const struct vk__api_principal *p = vk_http_req_principal(req);
    snprintf(user, 48, "%.47s", p && p->user_id[0] ? p->user_id : "");
    const char *a = vk_http_remote_addr(req);
    snprintf(addr, 48, "%.47s", a && *a ? a : "?");
}

static void release_slot(struct vk_api *api, int slot)
{
    if (slot >= 0)
        api->follow.keys[slot][0] = api->follow.addrs[slot][0] = '\0';
}

static bool stopping(struct vk_api *api)
{
    pthread_mutex_lock(&api->follow.lock);
    bool s = api->follow.stopping;
    pthread_mutex_unlock(&api->follow.lock);
    return s;
}

/* Sleep up to `ms`, waking early when the API stops. */
static void nap(struct vk_api *api, int ms)
{
    struct timespec ts = vk_time_deadline(ms);
    pthread_mutex_lock(&api->follow.lock);
    while (!api->follow.stopping) {
        if (pthread_cond_timedwait(&api->follow.cond, &api->follow.lock, &ts) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&api->follow.lock);
}

/* Send fw->ev, waiting for room while the client and the API are there. */
static int send_event(struct follower *fw)
{
    int rc;
    do {
        if (stopping(fw->api))
            return VK_EIO;
        rc = vk_http_stream_write_wait(fw->st, fw->ev.data, fw->ev.len, 200);
    } while (rc == VK_ETIMEDOUT);
    vk_buf_reset(&fw->ev);
    fw->last_write_ms = vk_time_now_ms();
    return rc;
}

/* Takes ownership of `data`; NULL (its builder ran out of memory) is VK_ENOMEM. */
static int send_json_event(struct follower *fw, const char *event, json_t *data)
{
    char *s = vk_http_json_text(data, JSON_COMPACT, NULL);
    json_decref(data);
    if (!s)
        return VK_ENOMEM;
    int rc = vk_buf_addf(&fw->ev, "event: %s\ndata: %s\n\n", event, s);
    free(s);
    return rc < 0 ? rc : send_event(fw);
}

static int send_status(struct follower *fw, const struct vk_store_fragment *f)
{
    json_t *o = json_pack("{s:s, s:i}", "status", vk_store_frag_status_name(fw->status), "attempt",
                          fw->attempt);
    int bad = 0;
    if (f) {
        bad |= json_object_set_new(o, "exit_code",
                                   f->has_exit_code ? json_integer(f->exit_code) : json_null());
        bad |= json_object_set_new(o, "error", vk__api_str(f->error));
    }
    return send_json_event(fw, "status", vk_http_json_checked(o, bad));
}

/*
 * Send the bytes stored after fw->offset, up to READ_CHUNK. *more is set when the read was
 * full (more may be waiting). `final`: the fragment has ended, so a trailing partial UTF-8
 * sequence will never be completed and is sent as is.
 */
static int send_new_bytes(struct follower *fw, bool final, bool *more)
{
    size_t got = 0;
    int64_t total = 0;
    struct vk_err err;
    *more = false;
    int rc = vk_store_log_read(fw->api->opts.store, fw->id, fw->attempt, fw->offset, fw->data,
                               READ_CHUNK, &got, &total, &err);
    if (rc < 0 || got == 0)
        return rc;
    size_t n = final ? got : complete_prefix(fw->data, got);
    if (n == 0)
        return 0; /* only the start of a character: wait for the rest */
    *more = got == READ_CHUNK || fw->offset + (int64_t)got < total;
    int64_t next = fw->offset + (int64_t)n;
    rc = vk_buf_addf(&fw->ev,
                     "id: %d:%lld\nevent: log\ndata: {\"attempt\":%d,\"offset\":%lld,"
                     "\"next\":%lld,\"text\":\"",
                     fw->attempt, (long long)next, fw->attempt, (long long)fw->offset,
                     (long long)next);
    if (rc == 0)
        rc = json_text(&fw->ev, fw->data, n);
    if (rc == 0)
        rc = vk_buf_adds(&fw->ev, "\"}\n\n");
    if (rc < 0)
        return rc;
    rc = send_event(fw);
    if (rc == 0)
        fw->offset = next;
    return rc;
}

/* Read the fragment (one row; the follower polls it). */
static int load_fragment(struct follower *fw, struct vk_pool *pool, struct vk_store_fragment **out)
{
    struct vk_err err;
    *out = vk_pool_alloc(pool, sizeof(**out));
    if (!*out)
        return VK_ENOMEM;
    return vk_store_fragment_get(fw->api->opts.store, fw->id, pool, *out, &err);
}

/* Drain what is stored, then say how it ended. */
static int finish(struct follower *fw)
{
    bool more = true;
    int rc = 0;
    while (rc == 0 && more)
        rc = send_new_bytes(fw, true, &more);
    if (rc < 0)
        return rc;
    json_t *o = json_pack("{s:s, s:i, s:I}", "status", vk_store_frag_status_name(fw->status),
                          "attempt", fw->attempt, "offset", (json_int_t)fw->offset);
    return send_json_event(fw, "end", o);
}

/* The fragment went back to the queue (retry, dead worker): drain the old attempt and go on
 * with the new one from its first byte. */
static int finish_attempt_switch(struct follower *fw, const struct vk_store_fragment *f)
{
    bool more = true;
    int rc = 0;
    while (rc == 0 && more)
        rc = send_new_bytes(fw, true, &more);
    if (rc < 0)
        return rc;
    fw->attempt = f->attempt;
    fw->offset = 0;
    rc = send_json_event(fw, "attempt", json_pack("{s:i}", "attempt", fw->attempt));
    if (rc == 0) {
        fw->status = f->status;
        rc = send_status(fw, f);
    }
    return rc;
}

static int follow_loop(struct follower *fw)
{
    int rc = send_status(fw, NULL);
    int64_t last_check = vk_time_now_ms();
    while (rc == 0) {
        if (vk_http_stream_gone(fw->st) || stopping(fw->api))
            return VK_EIO;
        bool more = false;
        rc = send_new_bytes(fw, false, &more);
        if (rc < 0)
            break;
        int64_t now = vk_time_now_ms();
        if (more && now - last_check < STATUS_MS)
            continue;
        last_check = now;
        struct vk_pool pool;
        vk_pool_init(&pool, 16384);
        struct vk_store_fragment *f = NULL;
        rc = load_fragment(fw, &pool, &f);
        if (rc == 0 && f->attempt != fw->attempt) {
            if (fw->fixed_attempt) {
                /* The asked-for attempt is over: drain it and end. */
                fw->status =
                    f->status == VK_STORE_FRAG_CANCELLED ? f->status : VK_STORE_FRAG_FAILED;
                vk_pool_release(&pool);
                return finish(fw);
            }
            rc = finish_attempt_switch(fw, f);
        } else if (rc == 0) {
            if (f->status != fw->status) {
                fw->status = f->status;
                rc = send_status(fw, f);
            }
            if (rc == 0 && vk_store_frag_status_final(f->status)) {
                vk_pool_release(&pool);
                return finish(fw);
            }
        }
        vk_pool_release(&pool);
        if (rc == 0 && !more) {
            if (vk_time_now_ms() - fw->last_write_ms >= KEEPALIVE_MS) {
                rc = vk_buf_adds(&fw->ev, ": keep-alive\n\n");
                if (rc == 0)
                    rc = send_event(fw);
            }
            if (rc == 0)
                nap(fw->api, POLL_MS);
        }
    }
    return rc;
}

static void follower_free(struct follower *fw)
{
    vk_buf_release(&fw->ev);
    vk_mem_free(fw->data);
    vk_mem_free(fw);
}

static void *follower_main(void *arg)
{
    struct follower *fw = arg;
    struct vk_api *api = fw->api;
    (void)follow_loop(fw);
    vk_http_stream_close(fw->st);
    int slot = fw->slot;
    follower_free(fw);
    pthread_mutex_lock(&api->follow.lock);
    api->follow.n--;
    release_slot(api, slot);
    pthread_cond_broadcast(&api->follow.cond);
    pthread_mutex_unlock(&api->follow.lock);
    return NULL;
}

static void start_follow(struct vk_api *api, struct vk_http_req *req, const struct log_params *p)
{
    struct vk_err err;
    vk_err_clear(&err);
    int attempt = 0;
    enum vk_store_frag_status status = VK_STORE_FRAG_PENDING;
    int rc = fragment_state(api, p->id, &attempt, &status, &err);
    if (rc < 0) {
        vk__api_reply_err(req, &err, rc);
        return;
    }
    if (p->attempt > attempt) {
        vk_http_reply_error(req, 404, "not_found", "fragment '%s' has no attempt %d yet", p->id,
                            p->attempt);
        return;
    }
    struct follower *fw = vk_mem_calloc(1, sizeof(*fw));
    unsigned char *data = vk_mem_alloc(READ_CHUNK);
    if (!fw || !data) {
        vk_mem_free(fw);
        vk_mem_free(data);
        vk_http_reply_error(req, 503, "unavailable", "out of memory");
        return;
    }
    fw->data = data;
    fw->api = api;
    memcpy(fw->id, p->id, VK_UUID_LEN);
    fw->fixed_attempt = p->fixed;
    fw->attempt = p->attempt ? p->attempt : attempt;
    fw->offset = p->offset;
    /* An older attempt is over whatever the fragment does now. */
    fw->status = fw->attempt == attempt ? status : VK_STORE_FRAG_FAILED;
    vk_buf_init(&fw->ev, READ_CHUNK * 7 + 4096); /* worst case: every byte as \u00XX */

    char user[48], addr[48];
    follow_keys(req, user, addr);
    fw->slot = -1;
    pthread_mutex_lock(&api->follow.lock);
    bool full = api->follow.n >= MAX_FOLLOWERS, stop = api->follow.stopping;
    unsigned by_user = 0, by_addr = 0;
    int free_slot = -1;
    for (int i = 0; i < (int)MAX_FOLLOWERS; i++) {
        if (!api->follow.addrs[i][0]) {
            free_slot = free_slot < 0 ? i : free_slot;
            continue;
        }
        by_user += user[0] && strcmp(api->follow.keys[i], user) == 0;
        by_addr += strcmp(api->follow.addrs[i], addr) == 0;
    }
    bool greedy = by_user >= MAX_FOLLOWERS_PER_CALLER || by_addr >= MAX_FOLLOWERS_PER_CALLER;
    if (!full && !stop && !greedy && free_slot >= 0) {
        api->follow.n++;
        fw->slot = free_slot;
        memcpy(api->follow.keys[free_slot], user, sizeof(user));
        memcpy(api->follow.addrs[free_slot], addr, sizeof(addr));
    }
    pthread_mutex_unlock(&api->follow.lock);
    if (fw->slot < 0) {
        follower_free(fw);
        if (greedy && !stop && by_user >= MAX_FOLLOWERS_PER_CALLER)
            vk_http_reply_error(req, 429, "too_many_requests",
                                "you follow %u logs already (at most %u at once); close one",
                                by_user, MAX_FOLLOWERS_PER_CALLER);
        else if (greedy && !stop)
            vk_http_reply_error(req, 429, "too_many_requests",
                                "your address follows %u logs already (at most %u at once); "
                                "close one",
                                by_addr, MAX_FOLLOWERS_PER_CALLER);
        else
            vk_http_reply_error(req, 503, "unavailable",
                                stop ? "the server is stopping"
                                     : "too many log followers (at most %u); try again later",
                                MAX_FOLLOWERS);
        return;
    }
    const struct vk_http_stream_opts so = {.max_queue = STREAM_QUEUE};
    rc = vk_http_reply_stream(req, 200, "text/event-stream; charset=utf-8", &so, &fw->st);
    if (rc == 0) {
        /* The first bytes tell EventSource how long to wait before reconnecting. */
        rc = vk_http_stream_write(fw->st, "retry: 2000\n\n", 13);
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        pthread_attr_setstacksize(&attr, 256 * 1024);
        pthread_t th;
        if (rc == 0 && pthread_create(&th, &attr, follower_main, fw) == 0) {
            pthread_attr_destroy(&attr);
            return;
        }
        pthread_attr_destroy(&attr);
        vk_http_stream_close(fw->st);
    }
    int slot = fw->slot;
    follower_free(fw);
    pthread_mutex_lock(&api->follow.lock);
    api->follow.n--;
    release_slot(api, slot);
    pthread_cond_broadcast(&api->follow.cond);
    pthread_mutex_unlock(&api->follow.lock);
    if (rc == VK_ECONFLICT || rc == 0)
        return; /* the client went away, or the stream was answered */
    vk_log_write(VK_LOG_WARN, "api", "cannot start a log follower", "fragment_id", p->id, NULL);
}

static void h_fragment_log(struct vk_http_req *req, void *ctx)
{
    struct vk_api *api = ctx;
    struct log_params p = {.attempt = 0};
    if (read_params(req, &p) < 0)
        return;
    if (p.follow)
        start_follow(api, req, &p);
    else
        reply_whole(api, req, &p);
}

int vk__api_log_routes(struct vk_api *api, struct vk_err *err)
{
    if (!api->follow.ready) {
        pthread_mutex_init(&api->follow.lock, NULL);
        vk_time_cond_init(&api->follow.cond);
        api->follow.ready = true;
    }
    return vk_http_route(api->http, "GET", "/api/v1/fragments/{id}/log", h_fragment_log, api, NULL,
                         err);
}

void vk__api_logs_stop(struct vk_api *api)
{
    if (!api->follow.ready)
        return;
    pthread_mutex_lock(&api->follow.lock);
    api->follow.stopping = true;
    pthread_cond_broadcast(&api->follow.cond);
    while (api->follow.n > 0)
        pthread_cond_wait(&api->follow.cond, &api->follow.lock);
    pthread_mutex_unlock(&api->follow.lock);
}

void vk__api_logs_release(struct vk_api *api)
{
    if (!api->follow.ready)
        return;
    pthread_cond_destroy(&api->follow.cond);
    pthread_mutex_destroy(&api->follow.lock);
    api->follow.ready = false;
}
