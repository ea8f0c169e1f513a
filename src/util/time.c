/* UUIDs, UTC time and durations. */
#include "vulcan/util.h"

#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* 8-4-4-4-12 hex digits; each group's NUL is overwritten by the next dash. */
static void uuid_format(const unsigned char b[16], char out[VK_UUID_LEN])
{
    static const size_t group[] = {4, 2, 2, 2, 6};
    size_t in = 0, o = 0;
    for (size_t g = 0; g < VK_ARRAY_LEN(group); g++) {
        if (g)
            out[o++] = '-';
        vk_hex_encode(b + in, group[g], out + o);
        in += group[g];
        o += 2 * group[g];
    }
}

int vk_uuid_v4(char out[VK_UUID_LEN])
{
    unsigned char b[16];
    if (RAND_bytes(b, sizeof(b)) != 1)
        return VK_EIO;
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    uuid_format(b, out);
    return 0;
}

int vk_uuid_v7(char out[VK_UUID_LEN])
{
    unsigned char b[16];
    if (RAND_bytes(b, sizeof(b)) != 1)
        return VK_EIO;
    uint64_t ms = (uint64_t)vk_time_now_ms();
    for (int i = 0; i < 6; i++)
        b[i] = (unsigned char)(ms >> (40 - 8 * i));
    b[6] = (unsigned char)((b[6] & 0x0f) | 0x70);
    b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
    uuid_format(b, out);
    return 0;
}

bool vk_uuid_valid(const char *s)
{
    if (!s)
        return false;
    for (int i = 0; i < 36; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return false;
        } else if (vk_hex_value(c) < 0) {
            return false;
        }
    }
    return s[36] == '\0';
}

int64_t vk_time_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t vk_time_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void vk_time_format(int64_t ms, char out[VK_TIME_LEN])
{
    time_t secs = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
    int milli = (int)(ms - (int64_t)secs * 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    /* Years past 9999 do not occur; the larger scratch buffer keeps the compiler's
     * truncation check quiet without a cast dance. */
    char tmp[96];
    snprintf(tmp, sizeof(tmp), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, milli);
    memcpy(out, tmp, VK_TIME_LEN - 1);
    out[VK_TIME_LEN - 1] = '\0';
}

int vk_time_parse(const char *s, int64_t *ms)
{
    int y, mo, d, h, mi, sec, milli = 0, n = 0;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &sec, &n) != 6 || n != 19)
        return VK_EINVAL;
    const char *p = s + n;
    if (*p == '.') {
        int digits = 0;
        p++;
        while (*p >= '0' && *p <= '9') {
            if (digits < 3)
                milli = milli * 10 + (*p - '0');
            digits++;
            p++;
        }
        if (digits == 0)
            return VK_EINVAL;
        for (; digits < 3; digits++)
            milli *= 10;
    }
    if (strcmp(p, "Z") != 0)
        return VK_EINVAL;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return VK_EINVAL;
    struct tm tm = {0};
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    *ms = (int64_t)timegm(&tm) * 1000 + milli;
    return 0;
}

int vk_time_duration_parse(const char *s, size_t len, int64_t *ms)
{
    size_t i = 0;
    int64_t total = 0;
    bool any = false;
    if (len == 0)
        return VK_EINVAL;
    while (i < len) {
        if (s[i] < '0' || s[i] > '9')
            return VK_EINVAL;
        int64_t v = 0;
        while (i < len && s[i] >= '0' && s[i] <= '9') {
            if (v > (INT64_MAX / 10) / 1000)
                return VK_EINVAL;
            v = v * 10 + (s[i] - '0');
            i++;
        }
        int64_t unit;
        if (i == len) {
            if (any)
                return VK_EINVAL; /* "1h30" is ambiguous */
            unit = 1000;
        } else if (len - i >= 2 && s[i] == 'm' && s[i + 1] == 's') {
            unit = 1;
            i += 2;
        } else if (s[i] == 'h') {
            unit = 3600000;
            i++;
        } else if (s[i] == 'm') {
            unit = 60000;
            i++;
        } else if (s[i] == 's') {
            unit = 1000;
            i++;
        } else if (s[i] == 'd') {
            unit = 86400000;
            i++;
        } else {
            return VK_EINVAL;
        }
        if (v > (INT64_MAX - total) / unit)
            return VK_EINVAL;
        total += v * unit;
        any = true;
    }
    *ms = total;
    return 0;
}

void vk_time_cond_init(pthread_cond_t *cond)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(cond, &ca);
    pthread_condattr_destroy(&ca);
}

struct timespec vk_time_deadline(int64_t ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    if (ms <= 0)
        return ts;
    ts.tv_sec += (time_t)(ms / 1000);
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}
