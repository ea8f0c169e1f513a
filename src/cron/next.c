/*
 * cron_next.c — when does a cron schedule fire next, in a time zone.
 *
 * The search walks local wall-clock minutes ("local seconds": the wall time
 * read as if it were UTC) with field skipping (a month, day or hour that
 * cannot match is skipped whole), and maps each matching wall time to an
 * instant:
 *   - normal: the one instant with that wall time;
 *   - repeated by a fall-back change: its first occurrence;
 *   - skipped by a spring-forward change: the first instant after the gap.
 * That mapping never decreases as the wall time grows, so the first wall time
 * that maps after `after` gives the answer. Schedules that run every hour (the
 * hour field allows all 24) are interval-like: as in Vixie cron they also run
 * in the second pass of a repeated hour, so "every 15 minutes" keeps its
 * pace through the autumn change.
 */
#include "cron_int.h"

#include <string.h>

#define HOUR 3600
#define DAY 86400
#define WINDOW (26 * HOUR) /* |UTC offset| never exceeds 26 h */
#define YEARS 30           /* horizon of the search */

static int64_t floor_div(int64_t a, int64_t b)
{
    return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

static bool day_ok(const struct vk_cron *c, int64_t days, unsigned dom)
{
    bool d = c->days >> dom & 1;
    bool w = c->weekdays >> vk__cron_weekday(days) & 1;
    /* Vixie rule: when both fields are restricted, either may match */
    if (c->dom_any || c->dow_any)
        return d && w;
    return d || w;
}

/*
 * The first matching wall time >= `l` (a whole minute), or INT64_MIN past
 * the horizon year.
 */
static int64_t next_local(const struct vk_cron *c, int64_t l, int64_t ylimit)
{
    int64_t days = floor_div(l, DAY);
    int hour = (int)((l - days * DAY) / HOUR);
    int min = (int)((l - days * DAY) % HOUR / 60);
    for (;;) {
        int64_t y;
        unsigned m, d;
        vk__cron_civil_from_days(days, &y, &m, &d);
        if (y > ylimit)
            return INT64_MIN;
        if (!(c->months >> m & 1)) {
            days = m == 12 ? vk__cron_days_from_civil(y + 1, 1, 1)
                           : vk__cron_days_from_civil(y, m + 1, 1);
            hour = min = 0;
            continue;
        }
        if (!day_ok(c, days, d)) {
            days++;
            hour = min = 0;
            continue;
        }
        while (hour < 24 && !(c->hours >> hour & 1)) {
            hour++;
            min = 0;
        }
        if (hour == 24) {
            days++;
            hour = min = 0;
            continue;
        }
        while (min < 60 && !(c->minutes >> min & 1))
            min++;
        if (min == 60) {
            hour++;
            min = 0;
            if (hour == 24) {
                days++;
                hour = 0;
            }
            continue;
        }
        return days * DAY + hour * HOUR + min * 60;
    }
}

static int64_t wall(const struct vk_tz *tz, int64_t t)
{
    return t + vk_cron_tz_offset(tz, t, NULL);
}

/*
 * The instants whose wall time is `l`: out[0] the first, out[1] a second
 * occurrence (fall back) or out[0] the end of the gap when `l` was skipped.
 * Returns the number of real occurrences (0 for a gap, 1 or 2).
 */
static int instants(const struct vk_tz *tz, int64_t l, int64_t out[2])
{
    int32_t offs[3] = {vk_cron_tz_offset(tz, l - WINDOW, NULL), vk_cron_tz_offset(tz, l, NULL),
                       vk_cron_tz_offset(tz, l + WINDOW, NULL)};
    int64_t found[3] = {0, 0, 0};
    int n = 0;
    for (int i = 0; i < 3; i++) {
        int64_t t = l - offs[i];
        if (vk_cron_tz_offset(tz, t, NULL) != offs[i])
            continue;
        bool dup = false;
        for (int k = 0; k < n; k++)
            dup = dup || found[k] == t;
        if (!dup)
            found[n++] = t;
    }
    if (n == 0) {
        /* a gap: the first instant whose wall time is past `l` */
        int64_t lo = l - WINDOW, hi = l + WINDOW; /* wall(lo) <= l < wall(hi) */
        while (hi - lo > 1) {
            int64_t mid = lo + (hi - lo) / 2;
            if (wall(tz, mid) > l)
                hi = mid;
            else
                lo = mid;
        }
        out[0] = hi;
        return 0;
    }
    if (n >= 2 && found[1] < found[0]) {
        int64_t t = found[0];
        found[0] = found[1];
        found[1] = t;
    }
    if (n == 3 && found[2] < found[0])
        found[0] = found[2];
    out[0] = found[0];
    out[1] = n >= 2 ? found[1] : found[0];
    return n >= 2 ? 2 : 1;
}

int vk_cron_next(const struct vk_cron *c, const struct vk_tz *zone, int64_t after_ms,
                 int64_t *next_ms)
{
    if (!c || !c->minutes || !c->hours || !c->days || !c->months || !c->weekdays)
        return VK_ENOTFOUND;
    bool every_hour = (c->hours & 0xffffffu) == 0xffffffu;
    int64_t after = floor_div(after_ms, 1000);
    int64_t l = floor_div(wall(zone, after), 60) * 60;
    /* an every-hour schedule may still owe second-pass runs of earlier walls */
    if (every_hour)
        l -= 3 * HOUR;
    int64_t y;
    unsigned m, d;
    vk__cron_civil_from_days(floor_div(l, DAY), &y, &m, &d);
    int64_t ylimit = y + YEARS;
    int64_t best = INT64_MAX;
    for (long iter = 0; iter < 1000000; iter++) {
        l = next_local(c, l, ylimit);
        if (l == INT64_MIN)
            break;
        int64_t t[2];
        int n = instants(zone, l, t);
        /* t[0] never decreases with l: nothing later can beat `best` */
        if (t[0] * 1000 > after_ms) {
            if (t[0] < best)
                best = t[0];
            break;
        }
        if (n == 2 && every_hour && t[1] * 1000 > after_ms && t[1] < best)
            best = t[1];
        l += 60;
    }
    if (best == INT64_MAX)
        return VK_ENOTFOUND;
    *next_ms = best * 1000;
    return 0;
}

int vk_cron_missed(const struct vk_cron *c, const struct vk_tz *zone, int64_t last_run_ms,
                   int64_t now_ms, bool *due, int64_t *fire_ms)
{
    *due = false;
    if (last_run_ms > now_ms)
        return VK_EINVAL;
    /*
     * The latest fire time in (last_run, now]: look in growing windows
     * ending at now, then walk forward inside the first window that has one.
     */
    static const int64_t windows[] = {HOUR * 1000LL,          DAY * 1000LL,
                                      32 * DAY * 1000LL,      400 * DAY * 1000LL,
                                      9 * 366 * DAY * 1000LL, (int64_t)YEARS * 366 * DAY * 1000LL};
    for (size_t i = 0; i < VK_ARRAY_LEN(windows); i++) {
        int64_t from = now_ms - windows[i];
        bool last = from <= last_run_ms;
        if (last)
            from = last_run_ms;
        int64_t t;
        if (vk_cron_next(c, zone, from, &t) == 0 && t <= now_ms) {
            int64_t nt;
            for (long k = 0; k < 10000000 && vk_cron_next(c, zone, t, &nt) == 0 && nt <= now_ms;
                 k++)
                t = nt;
            *due = true;
            *fire_ms = t;
            return 0;
        }
        if (last)
            break;
    }
    return 0;
}

int vk_cron_plan(const char *expr, const char *zone_name, int64_t last_fired_ms, int64_t now_ms,
                 struct vk_cron_plan *out, struct vk_err *err)
{
    memset(out, 0, sizeof(*out));
    out->next_ms = INT64_MAX;
    struct vk_cron c;
    struct vk_tz *zone = NULL;
    int rc = vk_cron_parse(expr, &c, err);
    if (rc == 0)
        rc = vk_cron_tz_load(zone_name && *zone_name ? zone_name : "UTC", &zone, err);
    if (rc)
        return rc == VK_ENOMEM ? rc : VK_EINVAL;
    if (last_fired_ms <= now_ms &&
        vk_cron_missed(&c, zone, last_fired_ms, now_ms, &out->due, &out->slot_ms) != 0)
        out->due = false;
    if (vk_cron_next(&c, zone, now_ms, &out->next_ms) != 0)
        out->next_ms = INT64_MAX; /* never fires again */
    vk_cron_tz_free(zone);
    return 0;
}
