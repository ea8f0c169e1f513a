/*
 * Structured log records: JSON lines or logfmt, one write(2) per record. Strings are
 * quoted and escaped by jansson (JSON records, and quoted logfmt values).
 */
#include "telemetry_int.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* Process-wide log configuration (written at start-up, read by every thread). */
static struct {
    atomic_int level;
    atomic_int format;
    atomic_int fd;
} log_config = {VK_LOG_INFO, VK_LOG_JSON, 2};

#define LOG_LINE_MAX (16u * 1024u)

static const char *level_names[] = {"debug", "info", "warn", "error", "off"};

void vk_log_configure(enum vk_log_level level, enum vk_log_format format, int fd)
{
    atomic_store(&log_config.level, (int)level);
    atomic_store(&log_config.format, (int)format);
    if (fd >= 0)
        atomic_store(&log_config.fd, fd);
}

int vk_log_level_parse(const char *s, enum vk_log_level *out)
{
    for (int i = 0; i <= VK_LOG_OFF; i++) {
        if (strcasecmp(s, level_names[i]) == 0) {
            *out = (enum vk_log_level)i;
            return 0;
        }
    }
    if (strcasecmp(s, "warning") == 0) {
        *out = VK_LOG_WARN;
        return 0;
    }
    return VK_EINVAL;
}

int vk_log_format_parse(const char *s, enum vk_log_format *out)
{
    if (strcasecmp(s, "json") == 0)
        *out = VK_LOG_JSON;
    else if (strcasecmp(s, "text") == 0 || strcasecmp(s, "logfmt") == 0)
        *out = VK_LOG_TEXT;
    else
        return VK_EINVAL;
    return 0;
}

bool vk_log_enabled(enum vk_log_level level)
{
    return (int)level >= atomic_load(&log_config.level) && level < VK_LOG_OFF;
}

/* Append `s` as a quoted JSON string, escaped by jansson. Bytes that are not UTF-8 become
 * '?', as in spans: jansson refuses them, and they would make the record invalid JSON. */
static int add_json_str(struct vk_buf *b, const char *s)
{
    json_t *j = json_string(s);
    char *fixed = NULL;
    if (!j) {
        size_t n = strlen(s) + 1;
        fixed = vk_mem_alloc(n);
        if (!fixed)
            return VK_ENOMEM;
        vk__telemetry_copy_utf8(fixed, n, s);
        j = json_string(fixed);
    }
    int rc = vk__telemetry_json_add(b, j, JSON_ENCODE_ANY);
    json_decref(j);
    vk_mem_free(fixed);
    return rc;
}

static bool logfmt_needs_quotes(const char *s)
{
    if (!*s)
        return true;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p <= ' ' || *p == '"' || *p == '=' || *p == '\\' || *p == 0x7f)
            return true;
    }
    return false;
}

static int add_field(struct vk_buf *b, bool json, const char *key, const char *value)
{
    int rc;
    if (json) {
        rc = vk_buf_addch(b, ',');
        if (rc == 0)
            rc = add_json_str(b, key);
        if (rc == 0)
            rc = vk_buf_addch(b, ':');
        if (rc == 0)
            rc = add_json_str(b, value);
        return rc;
    }
    rc = vk_buf_addf(b, " %s=", key);
    if (rc == 0 && logfmt_needs_quotes(value)) {
        rc = add_json_str(b, value);
    } else if (rc == 0) {
        rc = vk_buf_adds(b, value);
    }
    return rc;
}

void vk_log_vwrite(enum vk_log_level level, const char *component, const char *msg, va_list ap)
{
    if (!vk_log_enabled(level))
        return;
    bool json = atomic_load(&log_config.format) == VK_LOG_JSON;
    char ts[VK_TIME_LEN];
    vk_time_format(vk_time_now_ms(), ts);

    struct vk_buf b = VK_BUF_INIT(LOG_LINE_MAX);
    int rc;
    if (json)
        rc = vk_buf_addf(&b, "{\"time\":\"%s\",\"level\":\"%s\"", ts, level_names[level]);
    else
        rc = vk_buf_addf(&b, "time=%s level=%s", ts, level_names[level]);
    if (rc == 0)
        rc = add_field(&b, json, "component", component ? component : "vulcan");
    if (rc == 0)
        rc = add_field(&b, json, "msg", msg);
    for (;;) {
        const char *key = va_arg(ap, const char *);
        if (!key || rc != 0)
            break;
        const char *value = va_arg(ap, const char *);
        if (value)
            rc = add_field(&b, json, key, value);
    }
    if (rc == 0 && json)
        rc = vk_buf_addch(&b, '}');
    if (rc == 0)
        rc = vk_buf_addch(&b, '\n');
    if (rc != 0) {
        /* Too long or out of memory: say so rather than lose the record silently. */
        vk_buf_release(&b);
        if (vk_buf_addf(&b,
                        json ? "{\"time\":\"%s\",\"level\":\"error\",\"msg\":\"log record "
                               "dropped: %s\"}\n"
                             : "time=%s level=error msg=\"log record dropped: %s\"\n",
                        ts, vk_err_name(rc)) != 0)
            return;
    }
    int fd = atomic_load(&log_config.fd);
    size_t off = 0;
    while (off < b.len) {
        ssize_t n = write(fd, b.data + off, b.len - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    vk_buf_release(&b);
}

void vk_log_write(enum vk_log_level level, const char *component, const char *msg, ...)
{
    va_list ap;
    va_start(ap, msg);
    vk_log_vwrite(level, component, msg, ap);
    va_end(ap);
}
