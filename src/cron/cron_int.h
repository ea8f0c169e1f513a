/*
 * cron_int.h — private to the cron module: proleptic Gregorian date arithmetic
 * shared by the TZif reader (tz.c) and the fire-time search (next.c).
 */
#ifndef VULCAN_CRON_INT_H
#define VULCAN_CRON_INT_H

#include "vulcan/cron.h"

#include <stdbool.h>
#include <stdint.h>

/** Days since 1970-01-01 of a proleptic Gregorian date (month 1-12). */
int64_t vk__cron_days_from_civil(int64_t y, unsigned m, unsigned d);

/** The date of `days` since 1970-01-01. */
void vk__cron_civil_from_days(int64_t days, int64_t *y, unsigned *m, unsigned *d);

/** 0 = Sunday. */
unsigned vk__cron_weekday(int64_t days);

bool vk__cron_leap(int64_t y);
unsigned vk__cron_month_days(int64_t y, unsigned m);

#endif /* VULCAN_CRON_INT_H */
