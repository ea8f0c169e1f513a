/*
 * cron — cron schedules: the 5-field expression language (parsed when a
 * workflow is loaded, so `vulcan parse` reports a bad one with its column),
 * IANA time zones read from TZif files (never through setenv("TZ")/tzset()),
 * and the fire times of a schedule in a zone, with daylight-saving rules and
 * catch-up after downtime. The trigger service's scheduler (vulcan/triggers.h)
 * runs schedules with these.
 *
 * Thread-safety: no global mutable state. A parsed expression is a value; a
 * loaded zone is immutable and may be shared for reading by any thread.
 */
#ifndef VULCAN_CRON_H
#define VULCAN_CRON_H

#include "vulcan/util.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------- Expressions */

/**
 * A validated cron expression: bit i set means value i allowed. Minutes 0-59,
 * hours 0-23, days of month 1-31, months 1-12, weekdays 0-6 (0 = Sunday; 7 is
 * folded into 0). `dom_any`/`dow_any` record a `*` (for the usual rule: when
 * both fields are restricted, a day matches if either matches).
 */
struct vk_cron {
    uint64_t minutes;
    uint32_t hours;
    uint32_t days;
    uint16_t months;
    uint8_t weekdays;
    bool dom_any, dow_any;
};

/**
 * Parse a 5-field cron expression (numbers, `*`, ranges a-b, lists a,b, steps
 * /n, names JAN-DEC and SUN-SAT, the macros @yearly @annually @monthly @weekly
 * @daily @midnight @hourly). `out` may be NULL to validate only. On error, `err`
 * gets VK_EINVAL with err->col the 1-based column in `expr` and err->line 1.
 */
int vk_cron_parse(const char *expr, struct vk_cron *out, struct vk_err *err) VK_MUST_CHECK;

/**
 * True when `name` is an IANA zone name that exists as a regular file under
 * /usr/share/zoneinfo (no "..", no leading '/', letters, digits, "/_+-" only).
 */
bool vk_cron_tz_valid(const char *name);

/* ---------------------------------------------------------------- Time zones and fire times */

/** A time zone read from a TZif file: opaque, immutable after loading. */
struct vk_tz;

/**
 * Load the IANA zone `name` ("Europe/Amsterdam", "UTC") from
 * /usr/share/zoneinfo (names checked with vk_cron_tz_valid()). Reads the
 * TZif v2+ 64-bit data (or v1 data when that is all there is) and the POSIX
 * TZ footer used after the last transition. On success *out is returned owned
 * (vk_cron_tz_free()). Returns 0, VK_EINVAL (bad name), VK_ENOTFOUND, VK_EPARSE
 * (not a valid TZif file), VK_ETOOBIG, VK_EIO or VK_ENOMEM.
 */
int vk_cron_tz_load(const char *name, struct vk_tz **out, struct vk_err *err) VK_MUST_CHECK;

/** Like vk_cron_tz_load() for TZif bytes at `data` (borrowed); `name` (borrowed) names it. */
int vk_cron_tz_parse(const void *data, size_t len, const char *name, struct vk_tz **out,
                     struct vk_err *err) VK_MUST_CHECK;

/** Free a zone. Accepts NULL. */
void vk_cron_tz_free(struct vk_tz *tz);

/** The zone's name. Returns borrowed (valid until vk_cron_tz_free()). */
const char *vk_cron_tz_name(const struct vk_tz *tz);

/**
 * The UTC offset in seconds (east positive) at `unix_s` seconds since the
 * epoch; `isdst` (may be NULL) tells whether daylight saving time is in
 * effect. `tz` NULL means UTC.
 */
int32_t vk_cron_tz_offset(const struct vk_tz *tz, int64_t unix_s, bool *isdst);

/**
 * Make a zone from a POSIX TZ string alone, such as "CET-1CEST,M3.5.0,M10.5.0/3"
 * (the form of a TZif footer; rules Jn, n and Mm.w.d with optional /time,
 * including RFC 8536's negative and >24 h times). `spec` and `name` (NULL: the
 * spec) are borrowed. On success *out is returned owned (vk_cron_tz_free()).
 * Returns 0, VK_EPARSE or VK_ENOMEM.
 */
int vk_cron_tz_posix(const char *spec, const char *name, struct vk_tz **out,
                     struct vk_err *err) VK_MUST_CHECK;

/**
 * The first fire time of `c` strictly after `after_ms` (Unix milliseconds),
 * evaluated at minute resolution in the local time of `zone` (NULL: UTC),
 * stored in *next_ms (always a whole minute of local time).
 * Daylight-saving rules (Vixie cron / GitHub semantics: every slot runs once):
 * a local time skipped by a spring-forward change fires once, at the first
 * instant after the gap (02:30 on the spring-forward day in Europe/Amsterdam
 * fires at 03:00 CEST; several skipped slots collapse into that one run); a
 * local time repeated by a fall-back change fires once, at its first
 * occurrence. Returns 0, or VK_ENOTFOUND when the expression never fires in
 * the next 30 years (e.g. `0 0 31 2 *`).
 */
int vk_cron_next(const struct vk_cron *c, const struct vk_tz *zone, int64_t after_ms,
                 int64_t *next_ms) VK_MUST_CHECK;

/**
 * Catch-up after downtime: when at least one fire time f of `c` lies in
 * (`last_run_ms`, `now_ms`], set *due to true and *fire_ms to the LATEST such
 * f — a server that was down runs each missed schedule once, not once per
 * missed slot; else *due is false. For a schedule that never ran, pass the
 * time it was created as `last_run_ms`. Returns 0 (or VK_EINVAL when
 * last_run_ms > now_ms).
 */
int vk_cron_missed(const struct vk_cron *c, const struct vk_tz *zone, int64_t last_run_ms,
                   int64_t now_ms, bool *due, int64_t *fire_ms) VK_MUST_CHECK;

/* ---------------------------------------------------------------- Scheduling */

/** What a scheduler does with one schedule now (vk_cron_plan()). */
struct vk_cron_plan {
    bool due;        /**< a slot came since it last fired: fire it (once) */
    int64_t slot_ms; /**< when due: the latest slot in (last fired, now] */
    int64_t next_ms; /**< the first slot after now; INT64_MAX when it never fires again */
};

/**
 * The scheduling rule, for a schedule `expr` in the IANA zone `zone_name`
 * (NULL or "": UTC) that last fired (or was created) at `last_fired_ms`: it is
 * due when a slot lies in (last_fired_ms, now_ms], and then fires once, for
 * the latest such slot (a server that was down runs a missed schedule once,
 * not once per missed slot); its next fire time is the first slot after
 * now_ms. The scheduler claims `slot_ms` in its store before firing, so that
 * several replicas fire each slot once. Returns 0; VK_EINVAL when the
 * expression or the zone is unusable (out->next_ms is INT64_MAX: park it);
 * VK_ENOMEM.
 */
int vk_cron_plan(const char *expr, const char *zone_name, int64_t last_fired_ms, int64_t now_ms,
                 struct vk_cron_plan *out, struct vk_err *err) VK_MUST_CHECK;

#endif /* VULCAN_CRON_H */
