/* Time zones (TZif files, POSIX footers) and cron next-fire / missed-run times. */
#include "vk_test.h"
#include "vulcan/cron.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static int64_t T(const char *s)
{
    int64_t ms;
    if (vk_time_parse(s, &ms) != 0)
        fail_msg("bad time '%s'", s);
    return ms;
}

static struct vk_tz *zone(const char *name)
{
    struct vk_tz *tz = NULL;
    struct vk_err err = {0};
    if (vk_cron_tz_load(name, &tz, &err) != 0)
        fail_msg("%s: %s", name, err.msg);
    return tz;
}

/* ---------------------------------------------------------------- Zones */

static void test_offsets_known(void **state)
{
    (void)state;
    static const struct {
        const char *zone, *at;
        int32_t off;
        bool dst;
    } rows[] = {
        {"Europe/Amsterdam", "2026-07-01T12:00:00Z", 7200, true}, /* 14:00 local */
        {"Europe/Amsterdam", "2026-01-15T12:00:00Z", 3600, false},
        {"Europe/Amsterdam", "2026-03-29T00:59:59Z", 3600, false},
        {"Europe/Amsterdam", "2026-03-29T01:00:00Z", 7200, true},
        {"Europe/Amsterdam", "2026-10-25T00:59:59Z", 7200, true},
        {"Europe/Amsterdam", "2026-10-25T01:00:00Z", 3600, false},
        {"America/New_York", "2026-07-01T12:00:00Z", -14400, true},
        {"America/New_York", "2026-01-15T12:00:00Z", -18000, false},
        {"America/New_York", "2026-03-08T07:00:00Z", -14400, true},
        {"America/New_York", "2026-11-01T06:00:00Z", -18000, false},
        {"Asia/Kolkata", "2026-07-01T12:00:00Z", 19800, false},
        {"Asia/Kathmandu", "2026-07-01T12:00:00Z", 20700, false},
        {"Australia/Sydney", "2026-01-15T12:00:00Z", 39600, true},
        {"Australia/Sydney", "2026-07-01T12:00:00Z", 36000, false},
        {"UTC", "2026-07-01T12:00:00Z", 0, false},
        /* beyond the 2037 end of the transition tables: the POSIX footer */
        {"Europe/Amsterdam", "2045-07-01T12:00:00Z", 7200, true},
        {"Europe/Amsterdam", "2045-12-01T12:00:00Z", 3600, false},
        {"America/New_York", "2050-03-13T06:59:59Z", -18000, false}, /* 2nd Sunday: 13th */
        {"America/New_York", "2050-03-13T07:00:00Z", -14400, true},
        {"Australia/Sydney", "2060-01-01T00:00:00Z", 39600, true},
        /* before 1970 */
        {"Europe/Amsterdam", "1960-07-01T12:00:00Z", 3600, false},
    };
    for (size_t i = 0; i < VK_ARRAY_LEN(rows); i++) {
        struct vk_tz *tz = zone(rows[i].zone);
        bool dst = !rows[i].dst;
        int32_t off = vk_cron_tz_offset(tz, T(rows[i].at) / 1000, &dst);
        if (off != rows[i].off || dst != rows[i].dst)
            fail_msg("row %zu %s at %s: offset %d dst %d", i, rows[i].zone, rows[i].at, off, dst);
        assert_string_equal(vk_cron_tz_name(tz), rows[i].zone);
        vk_cron_tz_free(tz);
    }
    assert_int_equal(vk_cron_tz_offset(NULL, 1234567, NULL), 0);
}

/*
 * Cross-check against the C library (tzset is fine in this single-threaded
 * test): every 6 hours from 1900 to 2100 in several zones, both the table
 * and the footer part.
 */
static void test_offsets_match_libc(void **state)
{
    (void)state;
    static const char *const zones[] = {"Europe/Amsterdam",  "America/New_York", "Australia/Sydney",
                                        "America/Sao_Paulo", "Asia/Tehran",      "Pacific/Chatham",
                                        "Europe/Dublin",     "America/Santiago"};
    const char *old = getenv("TZ");
    char *saved = old ? strdup(old) : NULL;
    for (size_t z = 0; z < VK_ARRAY_LEN(zones); z++) {
        struct vk_tz *tz = zone(zones[z]);
        setenv("TZ", zones[z], 1);
        tzset();
        long mismatches = 0;
        for (int64_t t = -2208988800LL; t < 4102444800LL; t += 6 * 3600 + 17) {
            time_t tt = (time_t)t;
            struct tm tm;
            localtime_r(&tt, &tm);
            bool dst;
            int32_t off = vk_cron_tz_offset(tz, t, &dst);
            if (off != tm.tm_gmtoff && mismatches++ < 3)
                print_error("%s at %lld: ours %d libc %ld\n", zones[z], (long long)t, off,
                            tm.tm_gmtoff);
        }
        assert_int_equal(mismatches, 0);
        vk_cron_tz_free(tz);
    }
    if (saved) {
        setenv("TZ", saved, 1);
        free(saved);
    } else {
        unsetenv("TZ");
    }
    tzset();
}

static void test_posix_rules(void **state)
{
    (void)state;
    static const struct {
        const char *spec, *at;
        int32_t off;
    } rows[] = {
        {"CET-1CEST,M3.5.0,M10.5.0/3", "2031-03-30T00:59:59Z", 3600},
        {"CET-1CEST,M3.5.0,M10.5.0/3", "2031-03-30T01:00:00Z", 7200},
        {"CET-1CEST,M3.5.0,M10.5.0/3", "2031-10-26T00:59:59Z", 7200},
        {"CET-1CEST,M3.5.0,M10.5.0/3", "2031-10-26T01:00:00Z", 3600},
        /* southern hemisphere: DST across the new year */
        {"AEST-10AEDT,M10.1.0,M4.1.0/3", "2031-01-10T00:00:00Z", 39600},
        {"AEST-10AEDT,M10.1.0,M4.1.0/3", "2031-06-10T00:00:00Z", 36000},
        /* Jn and n forms; J60 is always March 1, 59 (zero-based) is Feb 29 in leap years */
        {"XST3XDT,J60/0,J300/0", "2032-03-01T02:59:59Z", -10800},
        {"XST3XDT,J60/0,J300/0", "2032-03-01T03:00:00Z", -7200},
        {"XST3XDT,59/0,300/0", "2032-02-29T03:00:00Z", -7200},
        {"XST3XDT,59/0,300/0", "2032-02-29T02:59:59Z", -10800},
        /* <+hh> names and minutes */
        {"<+0530>-5:30", "2031-06-01T00:00:00Z", 19800},
        {"<-03>3", "2031-06-01T00:00:00Z", -10800},
        /* no rule: the US rules */
        {"EST5EDT", "2031-07-01T00:00:00Z", -14400},
        /* negative and >24h times (RFC 8536) */
        {"<-02>2<-01>,M3.5.0/-1,M10.5.0/0", "2031-07-01T00:00:00Z", -3600},
    };
    for (size_t i = 0; i < VK_ARRAY_LEN(rows); i++) {
        struct vk_tz *tz = NULL;
        struct vk_err err = {0};
        if (vk_cron_tz_posix(rows[i].spec, NULL, &tz, &err) != 0)
            fail_msg("row %zu '%s': %s", i, rows[i].spec, err.msg);
        int32_t off = vk_cron_tz_offset(tz, T(rows[i].at) / 1000, NULL);
        if (off != rows[i].off)
            fail_msg("row %zu '%s' at %s: %d, want %d", i, rows[i].spec, rows[i].at, off,
                     rows[i].off);
        vk_cron_tz_free(tz);
    }
    static const char *const bad[] = {"",
                                      "C",
                                      "CET",
                                      "CET-1CEST,M13.5.0,M10.5.0",
                                      "CET-1CEST,M3.5.0",
                                      "CET-1x",
                                      "<+05",
                                      "CET-1CEST,J0,J10"};
    for (size_t i = 0; i < VK_ARRAY_LEN(bad); i++) {
        struct vk_tz *tz = NULL;
        if (vk_cron_tz_posix(bad[i], NULL, &tz, NULL) == 0)
            fail_msg("'%s' accepted", bad[i]);
        assert_null(tz);
    }
}

static void test_tz_load_errors(void **state)
{
    (void)state;
    struct vk_tz *tz = NULL;
    struct vk_err err = {0};
    assert_int_equal(vk_cron_tz_load("Mars/Olympus_Mons", &tz, &err), VK_EINVAL);
    assert_int_equal(vk_cron_tz_load("../etc/passwd", &tz, &err), VK_EINVAL);
    assert_int_equal(vk_cron_tz_load("/etc/passwd", &tz, &err), VK_EINVAL);
    assert_null(tz);
    /* truncated and corrupted TZif data */
    struct vk_buf b = VK_BUF_INIT(1 << 20);
    assert_int_equal(vk_buf_read_file(&b, "/usr/share/zoneinfo/Europe/Amsterdam", &err), 0);
    for (size_t cut = 0; cut < b.len; cut += 97) {
        int rc = vk_cron_tz_parse(b.data, cut, "cut", &tz, &err);
        if (rc == 0) {
            /* a v1 prefix can be complete: it must still answer sensibly */
            int32_t off = vk_cron_tz_offset(tz, 0, NULL);
            assert_true(off >= -26 * 3600 && off <= 26 * 3600);
            vk_cron_tz_free(tz);
            tz = NULL;
        } else {
            assert_int_equal(rc, VK_EPARSE);
            assert_null(tz);
        }
    }
    b.data[0] = 'X';
    assert_int_equal(vk_cron_tz_parse(b.data, b.len, "bad", &tz, &err), VK_EPARSE);
    vk_buf_release(&b);
}

/* ---------------------------------------------------------------- Next fire */

struct row {
    const char *cron, *zone, *after, *next; /* next NULL: never */
};

static const struct row rows[] = {
    /* UTC: month ends, years, leap days */
    {"0 2 * * *", NULL, "2026-01-31T12:00:00Z", "2026-02-01T02:00:00Z"},
    {"30 23 31 * *", NULL, "2026-01-31T23:30:00Z", "2026-03-31T23:30:00Z"},
    {"0 0 1 * *", NULL, "2026-12-31T23:59:59Z", "2027-01-01T00:00:00Z"},
    {"0 0 31 * *", NULL, "2026-04-01T00:00:00Z", "2026-05-31T00:00:00Z"},
    {"0 0 29 2 *", NULL, "2025-01-01T00:00:00Z", "2028-02-29T00:00:00Z"},
    {"0 0 29 2 *", NULL, "2028-02-29T00:00:00Z", "2032-02-29T00:00:00Z"},
    {"0 12 29 2 *", NULL, "2096-03-01T00:00:00Z", "2104-02-29T12:00:00Z"}, /* 2100 is no leap */
    {"59 23 28 2 *", NULL, "2027-02-28T23:59:00Z", "2028-02-28T23:59:00Z"},
    {"0 0 31 2 *", NULL, "2026-01-01T00:00:00Z", NULL},
    {"0 0 30 2 *", "Europe/Amsterdam", "2026-01-01T00:00:00Z", NULL},
    /* day-of-month OR day-of-week when both are restricted */
    {"0 9 13 * 5", NULL, "2026-02-01T00:00:00Z", "2026-02-06T09:00:00Z"},
    {"0 9 13 * 5", NULL, "2026-02-06T09:00:00Z", "2026-02-13T09:00:00Z"},
    {"0 9 13 * 5", NULL, "2026-02-13T09:00:00Z", "2026-02-20T09:00:00Z"},
    {"0 9 13 * fri", NULL, "2026-03-06T09:00:00Z", "2026-03-13T09:00:00Z"},
    {"0 0 13 * *", NULL, "2026-02-13T00:00:00Z", "2026-03-13T00:00:00Z"},
    {"15 10 * * MON", NULL, "2026-03-04T00:00:00Z", "2026-03-09T10:15:00Z"},
    {"0 0 * * 7", NULL, "2026-03-04T00:00:00Z", "2026-03-08T00:00:00Z"}, /* 7 = Sunday */
    {"0 0 1 1 *", NULL, "2026-03-04T00:00:00Z", "2027-01-01T00:00:00Z"},
    /* strictly after, minute resolution */
    {"*/15 * * * *", NULL, "2026-03-04T10:07:30Z", "2026-03-04T10:15:00Z"},
    {"0 10 * * *", NULL, "2026-03-04T10:00:00Z", "2026-03-05T10:00:00Z"},
    {"0 10 * * *", NULL, "2026-03-04T09:59:59.999Z", "2026-03-04T10:00:00Z"},
    {"@monthly", NULL, "2026-04-15T00:00:00Z", "2026-05-01T00:00:00Z"},
    {"@hourly", NULL, "2026-04-15T00:00:00.001Z", "2026-04-15T01:00:00Z"},
    {"0 0 1 * *", "UTC", "2026-02-28T23:59:00Z", "2026-03-01T00:00:00Z"},
    /* Europe/Amsterdam */
    {"0 12 * * *", "Europe/Amsterdam", "2026-07-01T00:00:00Z", "2026-07-01T10:00:00Z"},
    {"0 12 * * *", "Europe/Amsterdam", "2026-01-15T00:00:00Z", "2026-01-15T11:00:00Z"},
    {"0 0 1 * *", "Europe/Amsterdam", "2026-04-15T00:00:00Z", "2026-04-30T22:00:00Z"},
    /* spring forward 2026-03-29: 02:00-02:59 does not exist; runs once at 03:00 CEST */
    {"30 2 * * *", "Europe/Amsterdam", "2026-03-28T12:00:00Z", "2026-03-29T01:00:00Z"},
    {"30 2 * * *", "Europe/Amsterdam", "2026-03-29T01:00:00Z", "2026-03-30T00:30:00Z"},
    {"0 3 * * *", "Europe/Amsterdam", "2026-03-28T12:00:00Z", "2026-03-29T01:00:00Z"},
    {"*/20 2 * * *", "Europe/Amsterdam", "2026-03-28T12:00:00Z", "2026-03-29T01:00:00Z"},
    {"*/20 2 * * *", "Europe/Amsterdam", "2026-03-29T01:00:00Z", "2026-03-30T00:00:00Z"},
    /* fall back 2026-10-25: 02:00-02:59 happens twice; a fixed time runs at the first */
    {"30 2 * * *", "Europe/Amsterdam", "2026-10-24T12:00:00Z", "2026-10-25T00:30:00Z"},
    {"30 2 * * *", "Europe/Amsterdam", "2026-10-25T00:30:00Z", "2026-10-26T01:30:00Z"},
    {"0 2 * * *", "Europe/Amsterdam", "2026-10-25T00:30:00Z", "2026-10-26T01:00:00Z"},
    /* ... an every-hour schedule keeps its pace through the second pass */
    {"0 * * * *", "Europe/Amsterdam", "2026-10-25T00:30:00Z", "2026-10-25T01:00:00Z"},
    {"0 * * * *", "Europe/Amsterdam", "2026-10-25T01:00:00Z", "2026-10-25T02:00:00Z"},
    /* America/New_York: spring forward 2026-03-08, fall back 2026-11-01 */
    {"30 2 * * *", "America/New_York", "2026-03-07T12:00:00Z", "2026-03-08T07:00:00Z"},
    {"30 2 * * *", "America/New_York", "2026-03-08T07:00:00Z", "2026-03-09T06:30:00Z"},
    {"0 9 * * 1-5", "America/New_York", "2026-03-06T15:00:00Z", "2026-03-09T13:00:00Z"},
    {"30 1 * * *", "America/New_York", "2026-10-31T12:00:00Z", "2026-11-01T05:30:00Z"},
    {"30 1 * * *", "America/New_York", "2026-11-01T05:30:00Z", "2026-11-02T06:30:00Z"},
    {"*/30 * * * *", "America/New_York", "2026-11-01T05:45:00Z", "2026-11-01T06:00:00Z"},
    {"*/30 * * * *", "America/New_York", "2026-11-01T06:30:00Z", "2026-11-01T07:00:00Z"},
    {"0 0 * * *", "America/New_York", "2026-06-30T12:00:00Z", "2026-07-01T04:00:00Z"},
    /* beyond the tables: the footer rule (Amsterdam spring forward 2040-03-25) */
    {"30 2 * * *", "Europe/Amsterdam", "2040-03-24T12:00:00Z", "2040-03-25T01:00:00Z"},
    /* half-hour zone */
    {"0 9 * * *", "Asia/Kolkata", "2026-07-01T00:00:00Z", "2026-07-01T03:30:00Z"},
};

static void test_next_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < VK_ARRAY_LEN(rows); i++) {
        const struct row *r = &rows[i];
        struct vk_cron c;
        struct vk_err err = {0};
        if (vk_cron_parse(r->cron, &c, &err) != 0)
            fail_msg("row %zu '%s': %s", i, r->cron, err.msg);
        struct vk_tz *tz = r->zone ? zone(r->zone) : NULL;
        int64_t next = 0;
        int rc = vk_cron_next(&c, tz, T(r->after), &next);
        char got[VK_TIME_LEN] = "none";
        if (rc == 0)
            vk_time_format(next, got);
        if (!r->next) {
            if (rc != VK_ENOTFOUND)
                fail_msg("row %zu '%s' %s: got %s, want never", i, r->cron, r->after, got);
        } else if (rc != 0 || next != T(r->next)) {
            fail_msg("row %zu '%s' in %s after %s: got %s, want %s", i, r->cron,
                     r->zone ? r->zone : "UTC", r->after, got, r->next);
        }
        vk_cron_tz_free(tz);
    }
}

/* A day of fires in New York around the autumn change, hourly: 25 runs. */
static void test_hourly_through_fall_back(void **state)
{
    (void)state;
    struct vk_cron c;
    assert_int_equal(vk_cron_parse("0 * * * *", &c, NULL), 0);
    struct vk_tz *tz = zone("America/New_York");
    int64_t t = T("2026-11-01T03:59:00Z");   /* 23:59 EDT on Oct 31 */
    int64_t end = T("2026-11-02T05:00:00Z"); /* 00:00 EST on Nov 2 */
    int n = 0;
    int64_t prev = t;
    while (vk_cron_next(&c, tz, t, &t) == 0 && t < end) {
        assert_int_equal(t - prev > 0, 1);
        prev = t;
        n++;
    }
    assert_int_equal(n, 25);
    vk_cron_tz_free(tz);
}

/* ---------------------------------------------------------------- Missed runs */

/*
 * A fake clock drives a scheduler loop as the orchestrator will: on start it
 * runs a missed schedule once, then sleeps until each next fire time.
 */
static void test_missed_fake_clock(void **state)
{
    (void)state;
    struct vk_cron c;
    assert_int_equal(vk_cron_parse("*/30 * * * *", &c, NULL), 0);
    int64_t last_run = T("2026-03-01T03:00:00Z");
    /* the server was down until 05:10 on March 10: 442 slots were missed */
    int64_t now = T("2026-03-10T05:10:00Z");
    bool due = false;
    int64_t fire = 0;
    assert_int_equal(vk_cron_missed(&c, NULL, last_run, now, &due, &fire), 0);
    assert_true(due);
    assert_int_equal(fire, T("2026-03-10T05:00:00Z"));
    int runs = 1; /* the catch-up run */
    last_run = now;
    /* an hour of normal running afterwards */
    int64_t stop = T("2026-03-10T06:10:00Z");
    for (;;) {
        int64_t next;
        assert_int_equal(vk_cron_next(&c, NULL, last_run, &next), 0);
        if (next > stop)
            break;
        now = next; /* the fake clock jumps to the fire time */
        assert_int_equal(vk_cron_missed(&c, NULL, last_run, now, &due, &fire), 0);
        assert_true(due);
        assert_int_equal(fire, next);
        runs++;
        last_run = now;
    }
    assert_int_equal(runs, 3); /* catch-up, 05:30, 06:00 */
    /* nothing missed between two close instants */
    assert_int_equal(
        vk_cron_missed(&c, NULL, T("2026-03-10T06:01:00Z"), T("2026-03-10T06:29:59Z"), &due, &fire),
        0);
    assert_false(due);
    /* exactly on a slot counts as missed (the interval is (last, now]) */
    assert_int_equal(
        vk_cron_missed(&c, NULL, T("2026-03-10T06:01:00Z"), T("2026-03-10T06:30:00Z"), &due, &fire),
        0);
    assert_true(due);
    assert_int_equal(vk_cron_missed(&c, NULL, 10, 5, &due, &fire), VK_EINVAL);
}

static void test_missed_sparse(void **state)
{
    (void)state;
    struct vk_cron c;
    bool due;
    int64_t fire;
    assert_int_equal(vk_cron_parse("0 0 29 2 *", &c, NULL), 0);
    assert_int_equal(
        vk_cron_missed(&c, NULL, T("2024-02-29T00:00:00Z"), T("2030-01-01T00:00:00Z"), &due, &fire),
        0);
    assert_true(due);
    assert_int_equal(fire, T("2028-02-29T00:00:00Z"));
    assert_int_equal(
        vk_cron_missed(&c, NULL, T("2024-02-29T00:00:00Z"), T("2028-02-28T23:59:00Z"), &due, &fire),
        0);
    assert_false(due);
    /* a daily run missed across the Amsterdam spring gap is the 03:00 CEST one */
    struct vk_tz *tz = zone("Europe/Amsterdam");
    assert_int_equal(vk_cron_parse("30 2 * * *", &c, NULL), 0);
    assert_int_equal(
        vk_cron_missed(&c, tz, T("2026-03-28T01:30:00Z"), T("2026-03-29T05:00:00Z"), &due, &fire),
        0);
    assert_true(due);
    assert_int_equal(fire, T("2026-03-29T01:00:00Z"));
    /* weekly, down for three weeks: the latest Monday */
    assert_int_equal(vk_cron_parse("0 9 * * 1", &c, NULL), 0);
    assert_int_equal(
        vk_cron_missed(&c, tz, T("2026-06-01T07:00:00Z"), T("2026-06-24T00:00:00Z"), &due, &fire),
        0);
    assert_true(due);
    assert_int_equal(fire, T("2026-06-22T07:00:00Z"));
    vk_cron_tz_free(tz);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_offsets_known),     cmocka_unit_test(test_offsets_match_libc),
        cmocka_unit_test(test_posix_rules),       cmocka_unit_test(test_tz_load_errors),
        cmocka_unit_test(test_next_table),        cmocka_unit_test(test_hourly_through_fall_back),
        cmocka_unit_test(test_missed_fake_clock), cmocka_unit_test(test_missed_sparse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
