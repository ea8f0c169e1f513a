/*
 * The live copy of the audit log (vulcan/audit.h): each record the recorder has stored goes,
 * on a thread of its own with a bounded queue, to a file (JSON lines, as `vulcan audit
 * export` writes records) and/or to syslog: RFC 5424 messages (facility 13, "log audit";
 * severity notice) over UDP, or over TCP with octet-counting framing (RFC 6587), reconnected
 * when the connection drops. A slow or absent receiver never holds up the store: when the
 * queue is full, records are dropped from the copy (never from the store) and counted.
 */
#include "audit_int.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_MSG 8192

struct vk__audit_sink {
    FILE *file;
    bool tcp, have_syslog;
    char host[256], port[16], hostname[256];
    int fd;
    int64_t retry_at; /* monotonic ms: no reconnect before */
    pthread_mutex_t lock;
    pthread_cond_t wake;
    char **ring;
    size_t cap, head, count;
    bool stopping;
    pthread_t thread;
    uint64_t sent, dropped, failed;
};

static int64_t mono_ms(void)
{
    return vk_time_mono_ns() / 1000000;
}

/* "tcp://HOST:PORT" or "udp://HOST:PORT" ([v6] allowed). */
static int parse_url(struct vk__audit_sink *s, const char *url, struct vk_err *err)
{
    const char *rest = NULL;
    if (strncmp(url, "tcp://", 6) == 0)
        s->tcp = true, rest = url + 6;
    else if (strncmp(url, "udp://", 6) == 0)
        rest = url + 6;
    if (!rest)
        return vk_err_set(err, VK_EINVAL,
                          "audit syslog '%s': expected tcp://HOST:PORT or "
                          "udp://HOST:PORT",
                          url);
    const char *colon = strrchr(rest, ':');
    size_t hl = colon ? (size_t)(colon - rest) : 0;
    if (hl >= 2 && rest[0] == '[' && rest[hl - 1] == ']')
        rest++, hl -= 2;
    if (!colon || hl == 0 || hl >= sizeof(s->host) || !colon[1] || strlen(colon + 1) > 5 ||
        strspn(colon + 1, "0123456789") != strlen(colon + 1))
        return vk_err_set(err, VK_EINVAL,
                          "audit syslog '%s': expected tcp://HOST:PORT or "
                          "udp://HOST:PORT",
                          url);
    snprintf(s->host, sizeof(s->host), "%.*s", (int)hl, rest);
    snprintf(s->port, sizeof(s->port), "%s", colon + 1);
    return 0;
}

/* Connect (TCP within 2 s) or make the UDP socket; -1 when it cannot (tried again later). */
static int open_socket(struct vk__audit_sink *s)
{
    struct addrinfo hints = {.ai_socktype = s->tcp ? SOCK_STREAM : SOCK_DGRAM}, *ai = NULL;
    if (getaddrinfo(s->host, s->port, &hints, &ai) != 0 || !ai)
        return -1;
    int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    int rc = fd < 0 ? -1 : connect(fd, ai->ai_addr, ai->ai_addrlen);
    if (rc < 0 && fd >= 0 && errno == EINPROGRESS) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int soerr = 0;
        socklen_t sl = sizeof(soerr);
        rc = poll(&p, 1, 2000) == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == 0 &&
                     soerr == 0
                 ? 0
                 : -1;
    }
    freeaddrinfo(ai);
    if (rc < 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags >= 0)
        (void)fcntl(fd, F_SETFL, flags & ~O_NONBLOCK); /* sends block, bounded by SO_SNDTIMEO */
    struct timeval tv = {2, 0};
    (void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    return fd;
}

static bool send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return false;
        p += w;
        n -= (size_t)w;
    }
    return true;
}

/* Send one RFC 5424 message; false when it could not (the connection is then dropped). */
static bool send_syslog(struct vk__audit_sink *s, const char *msg, size_t len)
{
    /* A syslog receiver never writes: a readable TCP socket is one the peer closed. Found
     * before sending, the record goes to a new connection (or counts as failed) instead of
     * into a socket that only fails on the next send. */
    struct pollfd p = {.fd = s->fd, .events = POLLIN | POLLRDHUP};
    if (s->fd >= 0 && s->tcp && poll(&p, 1, 0) == 1) {
        close(s->fd);
        s->fd = -1;
        s->retry_at = 0;
    }
    if (s->fd < 0) {
        if (mono_ms() < s->retry_at)
            return false;
        s->fd = open_socket(s);
        if (s->fd < 0) {
            s->retry_at = mono_ms() + 1000;
            return false;
        }
    }
    bool ok;
    if (s->tcp) {
        char head[24];
        int hn = snprintf(head, sizeof(head), "%zu ", len);
        ok = send_all(s->fd, head, (size_t)hn) && send_all(s->fd, msg, len);
    } else {
        ok = send(s->fd, msg, len, MSG_NOSIGNAL) == (ssize_t)len;
    }
    if (!ok) {
        close(s->fd);
        s->fd = -1;
    }
    return ok;
}

/* One queued line: the record's JSON, and its RFC 5424 header before it ("\0"-separated). */
static void deliver(struct vk__audit_sink *s, char *item)
{
    const char *json = item + strlen(item) + 1;
    bool ok = true;
    if (s->file) {
        ok = fputs(json, s->file) >= 0 && fputc('\n', s->file) != EOF && fflush(s->file) == 0;
    }
    if (s->have_syslog) {
        char msg[MAX_MSG];
        int n = snprintf(msg, sizeof(msg), "%s%s", item, json);
        if (n > 0 && (size_t)n >= sizeof(msg))
            n = (int)sizeof(msg) - 1; /* receivers cut long messages anyway */
        bool sent = n > 0 && send_syslog(s, msg, (size_t)n);
        if (!sent && s->tcp && s->fd < 0 && mono_ms() >= s->retry_at)
            sent = send_syslog(s, msg, (size_t)n); /* once more on a fresh connection */
        ok = ok && sent;
    }
    pthread_mutex_lock(&s->lock);
    if (ok)
        s->sent++;
    else
        s->failed++;
    pthread_mutex_unlock(&s->lock);
}

static void *sink_main(void *arg)
{
    struct vk__audit_sink *s = arg;
    pthread_mutex_lock(&s->lock);
    for (;;) {
        while (s->count == 0 && !s->stopping)
            pthread_cond_wait(&s->wake, &s->lock);
        if (s->count == 0)
            break;
        char *item = s->ring[s->head];
        s->head = (s->head + 1) % s->cap;
        s->count--;
        pthread_mutex_unlock(&s->lock);
        deliver(s, item);
        free(item);
        pthread_mutex_lock(&s->lock);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

int vk__audit_sink_new(const char *file, const char *syslog_url, size_t queue,
                       struct vk__audit_sink **out, struct vk_err *err)
{
    *out = NULL;
    if ((!file || !*file) && (!syslog_url || !*syslog_url))
        return 0;
    struct vk__audit_sink *s = vk_mem_calloc(1, sizeof(*s));
    if (!s)
        return vk_err_set(err, VK_ENOMEM, "out of memory");
    s->fd = -1;
    s->cap = queue ? queue : 4096;
    int rc = 0;
    if (syslog_url && *syslog_url) {
        rc = parse_url(s, syslog_url, err);
        s->have_syslog = rc == 0;
        if (gethostname(s->hostname, sizeof(s->hostname) - 1) != 0 || !s->hostname[0])
            snprintf(s->hostname, sizeof(s->hostname), "-");
        for (char *p = s->hostname; *p; p++)
            if (*p <= ' ' || *p > '~')
                *p = '_';
    }
    if (rc == 0 && file && *file) {
        int fd = open(file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
        s->file = fd >= 0 ? fdopen(fd, "a") : NULL;
        if (!s->file) {
            rc = vk_err_set(err, VK_EIO, "audit copy '%s': %s", file, strerror(errno));
            if (fd >= 0)
                close(fd);
        }
    }
    if (rc == 0 && !(s->ring = vk_mem_calloc(s->cap, sizeof(*s->ring))))
        rc = vk_err_set(err, VK_ENOMEM, "out of memory");
    if (rc == 0) {
        pthread_mutex_init(&s->lock, NULL);
        pthread_cond_init(&s->wake, NULL);
        if (pthread_create(&s->thread, NULL, sink_main, s) != 0) {
            pthread_cond_destroy(&s->wake);
            pthread_mutex_destroy(&s->lock);
            rc = vk_err_set(err, VK_EINTERNAL, "cannot start the audit copy");
        }
    }
    if (rc) {
        if (s->file)
            fclose(s->file);
        vk_mem_free(s->ring);
        vk_mem_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

/* MSGID: printable ASCII without spaces, at most 32 (RFC 5424 6.2.7). */
static void msgid(const char *action, char out[33])
{
    size_t i = 0;
    for (; action && action[i] && i < 32; i++)
        out[i] = action[i] > ' ' && action[i] <= '~' ? action[i] : '_';
    out[i] = '\0';
    if (!i)
        snprintf(out, 33, "-");
}

void vk__audit_sink_push(struct vk__audit_sink *s, const struct vk_store_audit_rec *rec)
{
    if (!s)
        return;
    json_t *o = vk_audit_rec_json(rec);
    char *json = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    char head[512] = "";
    if (s->have_syslog) {
        char t[VK_TIME_LEN], id[33];
        vk_time_format(rec->at, t);
        msgid(rec->action, id);
        snprintf(head, sizeof(head), "<109>1 %s %.200s vulcan %d %s - ", t, s->hostname,
                 (int)getpid(), id);
    }
    size_t hl = strlen(head), jl = json ? strlen(json) : 0;
    char *item = json ? malloc(hl + 1 + jl + 1) : NULL;
    if (item) {
        memcpy(item, head, hl + 1);
        memcpy(item + hl + 1, json, jl + 1);
    }
    free(json);
    pthread_mutex_lock(&s->lock);
    if (!item || s->count == s->cap || s->stopping) {
        s->dropped++;
        free(item);
    } else {
        s->ring[(s->head + s->count) % s->cap] = item;
        s->count++;
        pthread_cond_signal(&s->wake);
    }
    pthread_mutex_unlock(&s->lock);
}

void vk__audit_sink_stats(struct vk__audit_sink *s, uint64_t *sent, uint64_t *dropped,
                          uint64_t *failed)
{
    *sent = *dropped = *failed = 0;
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    *sent = s->sent;
    *dropped = s->dropped;
    *failed = s->failed;
    pthread_mutex_unlock(&s->lock);
}

void vk__audit_sink_free(struct vk__audit_sink *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->lock);
    s->stopping = true;
    pthread_cond_signal(&s->wake);
    pthread_mutex_unlock(&s->lock);
    pthread_join(s->thread, NULL); /* delivers what is queued (each send bounded by 2 s) */
    if (s->fd >= 0)
        close(s->fd);
    if (s->file)
        fclose(s->file);
    pthread_cond_destroy(&s->wake);
    pthread_mutex_destroy(&s->lock);
    vk_mem_free(s->ring);
    vk_mem_free(s);
}
