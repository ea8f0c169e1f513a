/*
 * telemetry — structured logs (and, later, metrics and traces).
 *
 * A log record is one line on the configured stream (stderr by default):
 * a JSON object `{"time","level","component","msg", fields...}` or, with
 * VK_LOG_TEXT, logfmt (`time=… level=info component=api msg="…" key=value`)
 * for terminals. Records below the configured level are dropped cheaply.
 *
 * The log configuration is process-wide configuration (set once at start-up
 * by the executable; libraries only emit). Emitting is thread-safe: each
 * record is written with one write(2), so lines never interleave.
 *
 * Never pass a secret, a token or a webhook body as a field.
 */
#ifndef VULCAN_TELEMETRY_H
#define VULCAN_TELEMETRY_H

#include "vulcan/util.h"

#include <stdbool.h>

/* ---------------------------------------------------------------- Types */

enum vk_log_level {
    VK_LOG_DEBUG = 0,
    VK_LOG_INFO = 1,
    VK_LOG_WARN = 2,
    VK_LOG_ERROR = 3,
    VK_LOG_OFF = 4
};

enum vk_log_format { VK_LOG_JSON = 0, VK_LOG_TEXT = 1 };

/* ---------------------------------------------------------------- Configuration */

/**
 * Set the minimum level, the format and the file descriptor records go to
 * (-1 keeps the current one; the default is 2, stderr). Call at start-up,
 * before threads start.
 */
void vk_log_configure(enum vk_log_level level, enum vk_log_format format, int fd);

/** Parse "debug", "info", "warn"/"warning", "error", "off". Returns 0 or VK_EINVAL. */
int vk_log_level_parse(const char *s, enum vk_log_level *out) VK_MUST_CHECK;

/** Parse "json" or "text". Returns 0 or VK_EINVAL. */
int vk_log_format_parse(const char *s, enum vk_log_format *out) VK_MUST_CHECK;

/** True when records at `level` are written (to skip building expensive fields). */
bool vk_log_enabled(enum vk_log_level level);

/* ---------------------------------------------------------------- Operations */

/**
 * Emit one record. After `msg` come field pairs `const char *key, const char *value`,
 * ended by a NULL key; a NULL value is skipped. Borrows everything.
 *
 *     vk_log(VK_LOG_INFO, "orchestrator", "fragment claimed",
 *            "fragment_id", id, "worker_id", wid, NULL);
 */
void vk_log(enum vk_log_level level, const char *component, const char *msg, ...);

/** va_list variant of vk_log(); `ap` holds the field pairs. */
void vk_logv(enum vk_log_level level, const char *component, const char *msg, va_list ap);

#endif /* VULCAN_TELEMETRY_H */
