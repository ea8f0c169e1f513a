/*
 * Cron expressions (5 fields) and time-zone names for `schedule` triggers.
 * Validation only builds bit sets; computing the next fire time belongs to the
 * triggers module.
 */
#include "cron_int.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

struct field {
    const char *what;
    int lo, hi;
    const char *const *names; /* index i names value names_base + i */
    int names_base;
    int nnames;
};

static const char *const months[] = {"JAN", "FEB", "MAR", "APR", "MAY", "JUN",
                                     "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"};
static const char *const days[] = {"SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"};

static const struct field fields[5] = {
    {"minute", 0, 59, NULL, 0, 0},       {"hour", 0, 23, NULL, 0, 0},
    {"day of month", 1, 31, NULL, 0, 0}, {"month", 1, 12, months, 1, 12},
    {"day of week", 0, 7, days, 0, 7},
};

static const struct {
    const char *name;
    const char *expr;
} macros[] = {
    {"@yearly", "0 0 1 1 *"}, {"@annually", "0 0 1 1 *"}, {"@monthly", "0 0 1 * *"},
    {"@weekly", "0 0 * * 0"}, {"@daily", "0 0 * * *"},    {"@midnight", "0 0 * * *"},
    {"@hourly", "0 * * * *"},
};

/* Read a number or (where the field has names) a name at s[*i..end). */
static int value(const struct field *f, const char *s, size_t *i, size_t end, int *out)
{
    size_t j = *i;
    if (j < end && s[j] >= '0' && s[j] <= '9') {
        long v = 0;
        while (j < end && s[j] >= '0' && s[j] <= '9' && v < 1000)
            v = v * 10 + (s[j++] - '0');
        if (j < end && s[j] >= '0' && s[j] <= '9')
            return -1;
        *out = (int)v;
        *i = j;
        return 0;
    }
    if (f->names && j + 3 <= end) {
        for (int k = 0; k < f->nnames; k++) {
            if (strncasecmp(s + j, f->names[k], 3) == 0) {
                *out = f->names_base + k;
                *i = j + 3;
                return 0;
            }
        }
    }
    return -1;
}

static int field_err(struct vk_err *err, size_t off, const char *fmt, ...) VK_PRINTF(3, 4);
static int field_err(struct vk_err *err, size_t off, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vk_err_vsetpos(err, VK_EINVAL, 1, (uint32_t)off + 1, fmt, ap);
    va_end(ap);
    return rc;
}

/* Parse one field s[start..end) into the bit set *bits. */
static int parse_field(const struct field *f, const char *s, size_t start, size_t end,
                       uint64_t *bits, bool *any, struct vk_err *err)
{
    size_t i = start;
    *any = end - start == 1 && s[start] == '*';
    while (i < end) {
        size_t item = i;
        int lo, hi, step = 1;
        bool star = false;
        if (s[i] == '*') {
            lo = f->lo;
            hi = f->hi == 7 ? 6 : f->hi;
            star = true;
            i++;
        } else {
            if (value(f, s, &i, end, &lo) < 0)
                return field_err(err, item, "invalid %s: expected a number %d-%d", f->what, f->lo,
                                 f->hi);
            hi = lo;
            if (i < end && s[i] == '-') {
                i++;
                if (value(f, s, &i, end, &hi) < 0)
                    return field_err(err, i, "invalid %s range: expected a number %d-%d", f->what,
                                     f->lo, f->hi);
            }
        }
        if (i < end && s[i] == '/') {
            size_t so = ++i;
            int st;
            struct field num = {f->what, 1, f->hi, NULL, 0, 0};
            if (value(&num, s, &i, end, &st) < 0 || st < 1 || st > f->hi)
                return field_err(err, so, "invalid %s step: expected a number %d-%d", f->what, 1,
                                 f->hi);
            step = st;
            if (!star && hi == lo)
                hi = f->hi == 7 ? 6 : f->hi;
        }
        if (lo < f->lo || lo > f->hi || hi < f->lo || hi > f->hi)
            return field_err(err, item, "%s out of range: expected %d-%d", f->what, f->lo, f->hi);
        if (hi < lo)
            return field_err(err, item, "invalid %s range: the start is after the end (%d-%d)",
                             f->what, lo, hi);
        for (int v = lo; v <= hi; v += step)
            *bits |= (uint64_t)1 << (f->hi == 7 && v == 7 ? 0 : v);
        if (i < end) {
            if (s[i] != ',')
                return field_err(err, i, "unexpected character in %s: expected a number %d-%d",
                                 f->what, f->lo, f->hi);
            i++;
            if (i == end)
                return field_err(err, i - 1, "invalid %s: a list cannot end with ','", f->what);
        }
    }
    return 0;
}

int vk_cron_parse(const char *expr, struct vk_cron *out, struct vk_err *err)
{
    struct vk_cron c;
    memset(&c, 0, sizeof(c));
    size_t len = strlen(expr);
    if (len > 256)
        return vk_err_setpos(err, VK_EINVAL, 1, 1, "cron expression too long");
    size_t lead = 0;
    while (lead < len && (expr[lead] == ' ' || expr[lead] == '\t'))
        lead++;
    if (expr[lead] == '@') {
        size_t e = len;
        while (e > lead && (expr[e - 1] == ' ' || expr[e - 1] == '\t'))
            e--;
        for (size_t k = 0; k < VK_ARRAY_LEN(macros); k++) {
            if (strlen(macros[k].name) == e - lead &&
                strncasecmp(expr + lead, macros[k].name, e - lead) == 0) {
                int rc = vk_cron_parse(macros[k].expr, &c, err);
                if (rc == 0 && out)
                    *out = c;
                return rc;
            }
        }
        return vk_err_setpos(err, VK_EINVAL, 1, (uint32_t)lead + 1,
                             "unknown cron macro; expected one of: @yearly, @annually, @monthly, "
                             "@weekly, @daily, @midnight, @hourly");
    }
    uint64_t bits[5] = {0};
    bool any[5] = {false};
    size_t i = 0;
    int nf = 0;
    while (i < len) {
        while (i < len && (expr[i] == ' ' || expr[i] == '\t'))
            i++;
        if (i >= len)
            break;
        size_t start = i;
        while (i < len && expr[i] != ' ' && expr[i] != '\t')
            i++;
        if (nf == 5)
            return vk_err_setpos(err, VK_EINVAL, 1, (uint32_t)start + 1,
                                 "too many cron fields: expected 5 (minute hour day-of-month "
                                 "month day-of-week)");
        int rc = parse_field(&fields[nf], expr, start, i, &bits[nf], &any[nf], err);
        if (rc < 0)
            return rc;
        nf++;
    }
    if (nf != 5)
        return vk_err_setpos(err, VK_EINVAL, 1, (uint32_t)(len ? len : 1),
                             "expected 5 cron fields (minute hour day-of-month month "
                             "day-of-week), found %d",
                             nf);
    c.minutes = bits[0];
    c.hours = (uint32_t)bits[1];
    c.days = (uint32_t)bits[2];
    c.months = (uint16_t)bits[3];
    c.weekdays = (uint8_t)bits[4];
    c.dom_any = any[2];
    c.dow_any = any[4];
    if (out)
        *out = c;
    return 0;
}

bool vk_cron_tz_valid(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 128 || name[0] == '/' || strstr(name, ".."))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '/' || c == '_' || c == '+' || c == '-'))
            return false;
    }
    char path[192];
    snprintf(path, sizeof(path), "/usr/share/zoneinfo/%s", name);
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}
