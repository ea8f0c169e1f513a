/*
 * tz.c — IANA time zones read straight from TZif files (RFC 8536), without
 * setenv("TZ")/tzset() (process-wide and not thread-safe).
 *
 * A zone is its transition table (64-bit times of the v2+ data block, or the
 * 32-bit v1 block when that is all a file has), its local time types, and the
 * POSIX TZ string of the footer, which rules every instant after the last
 * transition (Debian's "slim" zone files stop their tables early and rely on
 * it; the "fat" ones stop in 2037).
 */
#include "cron_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define TZ_DIR "/usr/share/zoneinfo"
#define TZ_MAX_FILE (1u << 20)
#define TZ_MAX_TIMES 100000
#define TZ_MAX_TYPES 256
#define TZ_MAX_CHARS 4096

/* ---------------------------------------------------------------- Calendar */

/* Howard Hinnant's days_from_civil / civil_from_days (public domain algorithms). */
int64_t vk__cron_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

void vk__cron_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

unsigned vk__cron_weekday(int64_t days)
{
    int64_t w = (days + 4) % 7; /* 1970-01-01 was a Thursday */
    return (unsigned)(w < 0 ? w + 7 : w);
}

bool vk__cron_leap(int64_t y)
{
    return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
}

unsigned vk__cron_month_days(int64_t y, unsigned m)
{
    static const unsigned char days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && vk__cron_leap(y) ? 29 : days[m - 1];
}

static int64_t floor_div(int64_t a, int64_t b)
{
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

/* ---------------------------------------------------------------- Types */

/* A POSIX rule date: Jn (julian, no leap day), n (zero-based, leap day counted), Mm.w.d. */
struct rule_date {
    char kind; /* 'J', 'N' or 'M' */
    int n, m, w, d;
    int32_t time; /* seconds after local midnight; may be negative or > 24h */
};

struct posix_tz {
    bool valid;
    int32_t std_off; /* east positive */
    int32_t dst_off;
    bool has_dst;
    struct rule_date start, end;
};

struct vk_tz {
    char *name;
    int64_t *times; /* transition instants, ascending */
    uint8_t *idx;   /* type after each transition */
    size_t ntimes;
    int32_t *offs;
    uint8_t *isdst;
    size_t ntypes;
    struct posix_tz footer;
};

/* ---------------------------------------------------------------- POSIX TZ strings */

static const char *posix_name(const char *p)
{
    if (*p == '<') {
        const char *q = strchr(p, '>');
        return q && q - p >= 4 ? q + 1 : NULL;
    }
    const char *q = p;
    while ((*q >= 'A' && *q <= 'Z') || (*q >= 'a' && *q <= 'z'))
        q++;
    return q - p >= 3 ? q : NULL;
}

static const char *posix_num(const char *p, int lo, int hi, int *out)
{
    if (*p < '0' || *p > '9')
        return NULL;
    int v = 0;
    while (*p >= '0' && *p <= '9') {
        v = v * 10 + (*p++ - '0');
        if (v > hi)
            return NULL;
    }
    if (v < lo)
        return NULL;
    *out = v;
    return p;
}

/* [+-]hh[:mm[:ss]] with hours up to `maxh` → seconds. */
static const char *posix_time(const char *p, int maxh, int32_t *out)
{
    int sign = 1, h = 0, m = 0, s = 0;
    if (*p == '+' || *p == '-')
        sign = *p++ == '-' ? -1 : 1;
    if (!(p = posix_num(p, 0, maxh, &h)))
        return NULL;
    if (*p == ':') {
        if (!(p = posix_num(p + 1, 0, 59, &m)))
            return NULL;
        if (*p == ':' && !(p = posix_num(p + 1, 0, 59, &s)))
            return NULL;
    }
    *out = sign * (h * 3600 + m * 60 + s);
    return p;
}

static const char *posix_rule(const char *p, struct rule_date *r)
{
    if (*p == 'J') {
        r->kind = 'J';
        p = posix_num(p + 1, 1, 365, &r->n);
    } else if (*p == 'M') {
        r->kind = 'M';
        if ((p = posix_num(p + 1, 1, 12, &r->m)) && *p == '.' &&
            (p = posix_num(p + 1, 1, 5, &r->w)) && *p == '.')
            p = posix_num(p + 1, 0, 6, &r->d);
        else
            p = NULL;
    } else {
        r->kind = 'N';
        p = posix_num(p, 0, 365, &r->n);
    }
    if (!p)
        return NULL;
    r->time = 7200;
    if (*p == '/')
        p = posix_time(p + 1, 167, &r->time); /* RFC 8536 allows -167..167 hours */
    return p;
}

static int posix_parse(const char *s, struct posix_tz *tz)
{
    memset(tz, 0, sizeof(*tz));
    const char *p = posix_name(s);
    int32_t off;
    if (!p || !(p = posix_time(p, 24, &off)))
        return VK_EPARSE;
    tz->std_off = -off; /* POSIX counts west of Greenwich as positive */
    if (*p) {
        if (!(p = posix_name(p)))
            return VK_EPARSE;
        tz->has_dst = true;
        tz->dst_off = tz->std_off + 3600;
        if (*p && *p != ',') {
            if (!(p = posix_time(p, 24, &off)))
                return VK_EPARSE;
            tz->dst_off = -off;
        }
        if (*p == ',') {
            if (!(p = posix_rule(p + 1, &tz->start)) || *p != ',' ||
                !(p = posix_rule(p + 1, &tz->end)))
                return VK_EPARSE;
        } else {
            /* no rule: the US rules, as glibc assumes */
            tz->start = (struct rule_date){'M', 0, 3, 2, 0, 7200};
            tz->end = (struct rule_date){'M', 0, 11, 1, 0, 7200};
        }
    }
    if (*p)
        return VK_EPARSE;
    tz->valid = true;
    return 0;
}

/* Seconds from the start of year `y` (local) to the rule's day at 00:00. */
static int64_t rule_day(const struct rule_date *r, int64_t y)
{
    int64_t jan1 = vk__cron_days_from_civil(y, 1, 1);
    int64_t day;
    if (r->kind == 'J') {
        day = r->n - 1 + (vk__cron_leap(y) && r->n >= 60 ? 1 : 0);
    } else if (r->kind == 'N') {
        day = r->n;
    } else {
        int64_t first = vk__cron_days_from_civil(y, (unsigned)r->m, 1);
        int dom = 1 + (int)((r->d - (int)vk__cron_weekday(first) + 7) % 7) + (r->w - 1) * 7;
        while (dom > (int)vk__cron_month_days(y, (unsigned)r->m))
            dom -= 7;
        day = first + dom - 1 - jan1;
    }
    return (jan1 + day) * 86400;
}

static int32_t posix_offset(const struct posix_tz *tz, int64_t t, bool *isdst)
{
    *isdst = false;
    if (!tz->has_dst)
        return tz->std_off;
    int64_t y;
    unsigned m, d;
    vk__cron_civil_from_days(floor_div(t + tz->std_off, 86400), &y, &m, &d);
    /* start is given in standard local time, end in daylight local time */
    int64_t start = rule_day(&tz->start, y) + tz->start.time - tz->std_off;
    int64_t end = rule_day(&tz->end, y) + tz->end.time - tz->dst_off;
    bool dst = start < end ? (t >= start && t < end) : !(t >= end && t < start);
    *isdst = dst;
    return dst ? tz->dst_off : tz->std_off;
}

/* ---------------------------------------------------------------- Lookup */

int32_t vk_cron_tz_offset(const struct vk_tz *tz, int64_t t, bool *isdst)
{
    bool dummy;
    if (!isdst)
        isdst = &dummy;
    *isdst = false;
    if (!tz)
        return 0;
    if (tz->ntimes == 0 || t < tz->times[0]) {
        if (tz->ntimes == 0 && tz->footer.valid)
            return posix_offset(&tz->footer, t, isdst);
        /* before the first transition: the first type (RFC 8536 §3.2) */
        *isdst = tz->isdst[0];
        return tz->offs[0];
    }
    if (t >= tz->times[tz->ntimes - 1] && tz->footer.valid)
        return posix_offset(&tz->footer, t, isdst);
    size_t lo = 0, hi = tz->ntimes; /* last transition <= t */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (tz->times[mid] <= t)
            lo = mid;
        else
            hi = mid;
    }
    *isdst = tz->isdst[tz->idx[lo]];
    return tz->offs[tz->idx[lo]];
}

const char *vk_cron_tz_name(const struct vk_tz *tz)
{
    return tz ? tz->name : "UTC";
}

void vk_cron_tz_free(struct vk_tz *tz)
{
    if (!tz)
        return;
    vk_mem_free(tz->name);
    vk_mem_free(tz->times);
    vk_mem_free(tz->idx);
    vk_mem_free(tz->offs);
    vk_mem_free(tz->isdst);
    vk_mem_free(tz);
}

/* ---------------------------------------------------------------- TZif */

struct reader {
    const unsigned char *p;
    size_t len, off;
};

static bool need(struct reader *r, size_t n)
{
    return r->len - r->off >= n;
}

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static int64_t be64(const unsigned char *p)
{
    return (int64_t)((uint64_t)be32(p) << 32 | be32(p + 4));
}

struct header {
    int version;
    uint32_t isutcnt, isstdcnt, leapcnt, timecnt, typecnt, charcnt;
};

static int read_header(struct reader *r, struct header *h)
{
    if (!need(r, 44) || memcmp(r->p + r->off, "TZif", 4) != 0)
        return VK_EPARSE;
    const unsigned char *p = r->p + r->off;
    h->version = p[4] ? p[4] - '0' : 1;
    h->isutcnt = be32(p + 20);
    h->isstdcnt = be32(p + 24);
    h->leapcnt = be32(p + 28);
    h->timecnt = be32(p + 32);
    h->typecnt = be32(p + 36);
    h->charcnt = be32(p + 40);
    r->off += 44;
    if (h->typecnt == 0 || h->typecnt > TZ_MAX_TYPES || h->timecnt > TZ_MAX_TIMES ||
        h->charcnt > TZ_MAX_CHARS || h->leapcnt > 10000 ||
        (h->isutcnt && h->isutcnt != h->typecnt) || (h->isstdcnt && h->isstdcnt != h->typecnt))
        return VK_EPARSE;
    return 0;
}

static size_t block_size(const struct header *h, size_t tsize)
{
    return h->timecnt * tsize + h->timecnt + h->typecnt * 6 + h->charcnt +
           h->leapcnt * (tsize + 4) + h->isstdcnt + h->isutcnt;
}

static int read_block(struct reader *r, const struct header *h, size_t tsize, struct vk_tz *tz)
{
    if (!need(r, block_size(h, tsize)))
        return VK_EPARSE;
    const unsigned char *p = r->p + r->off;
    tz->ntimes = h->timecnt;
    tz->ntypes = h->typecnt;
    tz->times = vk_mem_alloc((h->timecnt ? h->timecnt : 1) * sizeof(*tz->times));
    tz->idx = vk_mem_alloc(h->timecnt ? h->timecnt : 1);
    tz->offs = vk_mem_alloc(h->typecnt * sizeof(*tz->offs));
    tz->isdst = vk_mem_alloc(h->typecnt);
    if (!tz->times || !tz->idx || !tz->offs || !tz->isdst)
        return VK_ENOMEM;
    for (size_t i = 0; i < h->timecnt; i++) {
        tz->times[i] = tsize == 8 ? be64(p) : (int64_t)(int32_t)be32(p);
        p += tsize;
        if (i > 0 && tz->times[i] <= tz->times[i - 1])
            return VK_EPARSE;
    }
    for (size_t i = 0; i < h->timecnt; i++) {
        tz->idx[i] = *p++;
        if (tz->idx[i] >= h->typecnt)
            return VK_EPARSE;
    }
    for (size_t i = 0; i < h->typecnt; i++) {
        int32_t off = (int32_t)be32(p);
        if (off < -25 * 3600 || off > 26 * 3600 || p[4] > 1)
            return VK_EPARSE;
        tz->offs[i] = off;
        tz->isdst[i] = p[4];
        p += 6;
    }
    r->off += block_size(h, tsize);
    return 0;
}

static void reset_tables(struct vk_tz *tz)
{
    vk_mem_free(tz->times);
    vk_mem_free(tz->idx);
    vk_mem_free(tz->offs);
    vk_mem_free(tz->isdst);
    tz->times = NULL;
    tz->idx = NULL;
    tz->offs = NULL;
    tz->isdst = NULL;
}

int vk_cron_tz_parse(const void *data, size_t len, const char *name, struct vk_tz **out,
                     struct vk_err *err)
{
    *out = NULL;
    if (!name)
        name = "<tzif>";
    if (len > TZ_MAX_FILE)
        return vk_err_set(err, VK_ETOOBIG, "time zone file '%s' too large", name);
    struct vk_tz *tz = vk_mem_calloc(1, sizeof(*tz));
    if (!tz)
        return vk_err_set(err, VK_ENOMEM, "out of memory");
    struct reader r = {data, len, 0};
    struct header h;
    int rc = read_header(&r, &h);
    if (rc == 0)
        rc = read_block(&r, &h, 4, tz);
    if (rc == 0 && h.version >= 2) {
        reset_tables(tz);
        rc = read_header(&r, &h);
        if (rc == 0)
            rc = read_block(&r, &h, 8, tz);
        /* footer: "\n<POSIX TZ>\n" */
        if (rc == 0) {
            if (!need(&r, 1) || r.p[r.off] != '\n') {
                rc = VK_EPARSE;
            } else {
                const char *f = (const char *)r.p + r.off + 1;
                const char *nl = memchr(f, '\n', len - r.off - 1);
                char spec[256];
                if (!nl || (size_t)(nl - f) >= sizeof(spec)) {
                    rc = VK_EPARSE;
                } else if (nl > f) {
                    memcpy(spec, f, (size_t)(nl - f));
                    spec[nl - f] = '\0';
                    rc = posix_parse(spec, &tz->footer);
                }
            }
        }
    }
    if (rc == 0) {
        tz->name = vk_mem_alloc(strlen(name) + 1);
        if (!tz->name)
            rc = VK_ENOMEM;
        else
            memcpy(tz->name, name, strlen(name) + 1);
    }
    if (rc < 0) {
        vk_cron_tz_free(tz);
        if (rc == VK_ENOMEM)
            return vk_err_set(err, rc, "out of memory");
        return vk_err_set(err, VK_EPARSE, "'%s' is not a valid TZif file", name);
    }
    *out = tz;
    return 0;
}

int vk_cron_tz_posix(const char *spec, const char *name, struct vk_tz **out, struct vk_err *err)
{
    *out = NULL;
    if (!spec)
        return vk_err_set(err, VK_EPARSE, "no POSIX TZ string");
    struct vk_tz *tz = vk_mem_calloc(1, sizeof(*tz));
    if (!tz)
        return vk_err_set(err, VK_ENOMEM, "out of memory");
    tz->offs = vk_mem_calloc(1, sizeof(*tz->offs));
    tz->isdst = vk_mem_calloc(1, 1);
    const char *nm = name ? name : spec;
    tz->name = vk_mem_alloc(strlen(nm) + 1);
    if (!tz->offs || !tz->isdst || !tz->name) {
        vk_cron_tz_free(tz);
        return vk_err_set(err, VK_ENOMEM, "out of memory");
    }
    memcpy(tz->name, nm, strlen(nm) + 1);
    tz->ntypes = 1;
    if (strlen(spec) > 255 || posix_parse(spec, &tz->footer) < 0) {
        vk_cron_tz_free(tz);
        return vk_err_set(err, VK_EPARSE, "invalid POSIX TZ string '%.64s'", spec);
    }
    tz->offs[0] = tz->footer.std_off;
    *out = tz;
    return 0;
}

int vk_cron_tz_load(const char *name, struct vk_tz **out, struct vk_err *err)
{
    *out = NULL;
    if (!name || !vk_cron_tz_valid(name))
        return vk_err_set(err, VK_EINVAL, "unknown time zone '%.128s'", name ? name : "");
    char path[256];
    snprintf(path, sizeof(path), "%s/%s", TZ_DIR, name);
    struct vk_buf b = VK_BUF_INIT(TZ_MAX_FILE);
    int rc = vk_buf_read_file(&b, path, err);
    if (rc < 0) {
        vk_buf_release(&b);
        if (rc == VK_ENOTFOUND)
            return vk_err_set(err, rc, "unknown time zone '%s'", name);
        return rc;
    }
    rc = vk_cron_tz_parse(b.data, b.len, name, out, err);
    vk_buf_release(&b);
    return rc;
}
