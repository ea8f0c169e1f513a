/*
 * util — the low-level primitives every other Vulcan module stands on.
 *
 * Errors (struct vk_err, VK_E* codes), a bounded string buffer (struct vk_buf),
 * an arena allocator (struct vk_pool), checked allocation, growing arrays, hex
 * text, SHA-256, UUIDs, UTC time and rendering of "file:line:col: error: ..."
 * diagnostics with a caret.
 *
 * Thread-safety: every function here is safe to call from several threads as
 * long as each object (buffer, pool, error) is used by one thread at a time.
 * The allocation-failure hook is process-wide and meant for tests only.
 */
#ifndef VULCAN_UTIL_H
#define VULCAN_UTIL_H

#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

/* ---------------------------------------------------------------- Macros */

#if defined(__GNUC__) || defined(__clang__)
#define VK_MUST_CHECK __attribute__((warn_unused_result))
#define VK_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#define VK_NORETURN __attribute__((noreturn))
#else
#define VK_MUST_CHECK
#define VK_PRINTF(fmt, args)
#define VK_NORETURN
#endif

/** Abort with a message when `cond` is false. For programmer errors only; stays on in release. */
#define VK_ASSERT(cond)                                                                            \
    do {                                                                                           \
        if (!(cond))                                                                               \
            vk_err_assert_fail(#cond, __FILE__, __LINE__);                                         \
    } while (0)

#define VK_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

VK_NORETURN void vk_err_assert_fail(const char *expr, const char *file, int line);

/* ---------------------------------------------------------------- Errors */

/** Error codes. Functions return 0 on success or one of these (negative). */
enum vk_errcode {
    VK_OK = 0,
    VK_ENOMEM = -1,     /**< out of memory */
    VK_EINVAL = -2,     /**< invalid argument or value */
    VK_EIO = -3,        /**< I/O error (file, socket, pipe) */
    VK_EPARSE = -4,     /**< syntax error in some input */
    VK_ETOOBIG = -5,    /**< an input-derived size exceeded its cap */
    VK_ENOTFOUND = -6,  /**< the thing asked for does not exist */
    VK_EEXIST = -7,     /**< the thing to create exists already */
    VK_ECONFLICT = -8,  /**< state changed under us (stale attempt, lost race) */
    VK_EDB = -9,        /**< database error */
    VK_ETIMEDOUT = -10, /**< an operation ran out of time */
    VK_EPERM = -11,     /**< not allowed */
    VK_EAGAIN = -12,    /**< temporarily unavailable; try again */
    VK_ECYCLE = -13,    /**< a cycle (for example in imports) */
    VK_EVERSION = -14,  /**< incompatible version (schema newer than binary, ...) */
    VK_EINTERNAL = -15, /**< a bug: should never happen */
    VK_EAUTH = -16      /**< no valid credential: unauthenticated (HTTP 401) */
};

/**
 * Error details. `line`/`col` are 1-based and 0 when the error is not tied to a
 * position in some source text. `msg` follows the message style: lowercase, no
 * trailing full stop, subject in single quotes.
 */
struct vk_err {
    int code;
    uint32_t line;
    uint32_t col;
    char msg[256];
};

/** Reset `err` (may be NULL) to "no error". */
void vk_err_clear(struct vk_err *err);

/** Record an error in `err` (may be NULL). Returns `code`, so `return vk_err_set(...)` works. */
int vk_err_set(struct vk_err *err, int code, const char *fmt, ...) VK_PRINTF(3, 4);

/** Like vk_err_set() but also records a source position. Returns `code`. */
int vk_err_setpos(struct vk_err *err, int code, uint32_t line, uint32_t col, const char *fmt, ...)
    VK_PRINTF(5, 6);

/** va_list variant of vk_err_setpos(). */
int vk_err_vsetpos(struct vk_err *err, int code, uint32_t line, uint32_t col, const char *fmt,
                   va_list ap);

/**
 * Map the current errno to a VK code and record "<what>: <strerror>" in `err`.
 * Call it straight after the failing system call. Returns the VK code.
 */
int vk_err_errno(struct vk_err *err, const char *what);

/** A short, static, lowercase name for a VK code ("out of memory", ...). */
const char *vk_err_name(int code);

/**
 * The HTTP status that answers a failure of `code` (VK_ENOTFOUND 404, VK_ECONFLICT 409,
 * VK_EINVAL/VK_EPARSE 400, VK_EAUTH 401, VK_EPERM 403, VK_ETOOBIG 413, VK_EDB/VK_EIO/VK_EAGAIN 503,
 * else 500) and, through *name (may be NULL; a static string), its error code for JSON answers
 * ("not_found", "conflict", "bad_request", "unauthenticated", "forbidden", "too_large",
 * "unavailable", "internal").
 */
int vk_err_http(int code, const char **name);

/* ---------------------------------------------------------------- Memory */

/**
 * Allocation wrappers. vk_mem_alloc/vk_mem_calloc/vk_mem_realloc return NULL on failure and
 * are what input-sized allocations use. vk_mem_xalloc/vk_mem_xcalloc/vk_mem_xrealloc/vk_mem_xstrdup
 * abort on failure and are for small, fixed-size allocations only.
 * All returned memory is released with vk_mem_free() (which accepts NULL).
 */
void *vk_mem_alloc(size_t n) VK_MUST_CHECK;
void *vk_mem_calloc(size_t nmemb, size_t size) VK_MUST_CHECK;
void *vk_mem_realloc(void *p, size_t n) VK_MUST_CHECK;
void vk_mem_free(void *p);
void *vk_mem_xalloc(size_t n);
void *vk_mem_xcalloc(size_t nmemb, size_t size);
void *vk_mem_xrealloc(void *p, size_t n);
char *vk_mem_xstrdup(const char *s);
char *vk_mem_xstrndup(const char *s, size_t n);

/**
 * Test hook: make the `n`th vk_mem_alloc/vk_mem_calloc/vk_mem_realloc from now on fail
 * (1 = the next one), or 0 to switch failures off. Returns the number of
 * fallible allocations made since the last call. Process-wide; tests only.
 */
unsigned long vk_mem_fail_after(unsigned long n);

/* ---------------------------------------------------------------- Buffer */

/**
 * A growable byte buffer with a required maximum size. Always NUL-terminated;
 * `len` excludes the terminator; may hold embedded NULs. A failed append
 * (VK_ENOMEM, VK_ETOOBIG) releases the buffer, leaving it empty but usable.
 *
 * `data` is never NULL once the buffer is initialised: a buffer that owns no memory
 * (`cap` 0: after VK_BUF_INIT, vk_buf_init, vk_buf_release, vk_buf_take or a failed
 * append) points at the shared vk_buf_empty, so `data` can be read as "" without a
 * check. Never write through `data` while `cap` is 0 (grow first), and never free
 * `data` yourself: use vk_buf_release() or take it with vk_buf_take().
 */
struct vk_buf {
    char *data;
    size_t len;
    size_t cap;
    size_t max;
};

/** Common caps. */
#define VK_MAX_SMALL (64u * 1024u)
#define VK_MAX_BODY (8u * 1024u * 1024u)
#define VK_MAX_FILE (64u * 1024u * 1024u)

/** The empty string every empty buffer points at. Shared by all threads; never written. */
extern char vk_buf_empty[1];

#define VK_BUF_INIT(maxlen)                                                                        \
    {                                                                                              \
        vk_buf_empty, 0, 0, (maxlen)                                                               \
    }

/** Set up an empty buffer of at most `max` bytes (`data` is vk_buf_empty). */
void vk_buf_init(struct vk_buf *b, size_t max);
/** Free the contents; the buffer is empty (`data` is vk_buf_empty) and usable again. */
void vk_buf_release(struct vk_buf *b);
/** Set `len` to 0, keeping the memory. */
void vk_buf_reset(struct vk_buf *b);
/** Make room for `extra` more bytes. Returns 0, VK_ENOMEM or VK_ETOOBIG. */
int vk_buf_grow(struct vk_buf *b, size_t extra) VK_MUST_CHECK;
int vk_buf_add(struct vk_buf *b, const void *p, size_t n) VK_MUST_CHECK;
int vk_buf_adds(struct vk_buf *b, const char *s) VK_MUST_CHECK;
int vk_buf_addch(struct vk_buf *b, char c) VK_MUST_CHECK;
int vk_buf_addf(struct vk_buf *b, const char *fmt, ...) VK_MUST_CHECK VK_PRINTF(2, 3);
int vk_buf_vaddf(struct vk_buf *b, const char *fmt, va_list ap) VK_MUST_CHECK;
/**
 * Returns owned: the bytes (NUL-terminated, never NULL, always heap memory to free with
 * vk_mem_free(), also for an empty buffer); the buffer is left empty and owns no memory.
 */
char *vk_buf_take(struct vk_buf *b, size_t *len);
/**
 * Read a whole file into `b` (appending). Fails with VK_ETOOBIG past b->max.
 * Returns 0 or a VK code with details in `err`.
 */
int vk_buf_read_file(struct vk_buf *b, const char *path, struct vk_err *err) VK_MUST_CHECK;

/* ---------------------------------------------------------------- Pool */

/**
 * An arena: many small allocations freed at once. Used for one parse, one
 * request. Not thread-safe. Allocations are 16-byte aligned.
 */
struct vk_pool_chunk;
struct vk_pool {
    struct vk_pool_chunk *chunks;
    char *cur;
    char *end;
    size_t chunk_size;
    size_t total; /**< bytes obtained from the system */
};

/** Set up an empty pool; `chunk_size` 0 picks a default (64 KiB). */
void vk_pool_init(struct vk_pool *p, size_t chunk_size);
/** Free every allocation made from the pool; the pool is empty and usable again. */
void vk_pool_release(struct vk_pool *p);
/** Allocate `n` bytes (uninitialised). Returns NULL when out of memory. */
void *vk_pool_alloc(struct vk_pool *p, size_t n) VK_MUST_CHECK;
/** Allocate `n` zeroed bytes. Returns NULL when out of memory. */
void *vk_pool_zalloc(struct vk_pool *p, size_t n) VK_MUST_CHECK;
/** Copy `n` bytes of `s` plus a NUL terminator into the pool. NULL when out of memory. */
char *vk_pool_strndup(struct vk_pool *p, const char *s, size_t n) VK_MUST_CHECK;

/* ---------------------------------------------------------------- Arrays */

/*
 * Growth of an array the caller keeps as a pointer `T *items` and a capacity
 * `size_t cap` (NULL and 0 when nothing is allocated). `itemsp` is the address of
 * that pointer (a `T **`, passed without a cast; object pointers share one
 * representation on every platform we build for). When `need` > *cap the capacity
 * becomes `first` (for an empty array) or twice *cap, doubled again until it
 * holds `need` elements of `elem_size` bytes; the first *cap elements are kept and
 * the new ones are uninitialised. When `need` <= *cap nothing happens.
 */

/**
 * Grow a heap array (freed with vk_mem_free()). Returns 0, VK_ETOOBIG when the size
 * in bytes would not fit in a size_t, or VK_ENOMEM; on error *itemsp and *cap are
 * unchanged and the array is still the caller's.
 */
int vk_array_grow(void *itemsp, size_t *cap, size_t need, size_t first,
                  size_t elem_size) VK_MUST_CHECK;

/** Like vk_array_grow() but aborts on failure, as vk_mem_xrealloc() does: for small tables only. */
void vk_array_xgrow(void *itemsp, size_t *cap, size_t need, size_t first, size_t elem_size);

/**
 * Like vk_array_grow() for an array allocated from `pool`: the new array comes from the
 * pool, the old one is copied and left to it. Returns 0, VK_ETOOBIG or VK_ENOMEM (the
 * array is then unchanged).
 */
int vk_array_pool_grow(struct vk_pool *pool, void *itemsp, size_t *cap, size_t need, size_t first,
                       size_t elem_size) VK_MUST_CHECK;

/* ---------------------------------------------------------------- Hex */

/** The digits vk_hex_decode() accepts. */
enum vk_hex_case {
    VK_HEX_ANY_CASE = 0, /**< 0-9, a-f and A-F */
    VK_HEX_LOWER = 1     /**< 0-9 and a-f only (the W3C trace context grammar) */
};

/**
 * Write the `n` bytes at `p` (borrowed) as 2n lowercase hex digits and a NUL into `out`,
 * which has room for 2n + 1 bytes.
 */
void vk_hex_encode(const void *p, size_t n, char *out);

/** The value 0..15 of the hex digit `c` (either case), or -1 when `c` is not a hex digit. */
int vk_hex_value(int c);

/** True when the `n` characters at `s` are all hex digits (either case); true when n is 0. */
bool vk_hex_is(const char *s, size_t n);

/**
 * Decode the `len` hex digits at `s` (need not be NUL-terminated) into len / 2 bytes at
 * `out`. Returns 0, or VK_EINVAL when `len` is odd or a character is not a digit `accept`
 * allows (`out` may then be partly written).
 */
int vk_hex_decode(const char *s, size_t len, void *out, enum vk_hex_case accept) VK_MUST_CHECK;

/* ---------------------------------------------------------------- SHA-256 */

/** Text form of a SHA-256 digest: 64 lowercase hex digits plus NUL. */
#define VK_SHA256_HEX_LEN 65

/**
 * Write the SHA-256 of the `len` bytes at `p` (borrowed; may be NULL when len is 0) as
 * VK_SHA256_HEX_LEN - 1 lowercase hex digits and a NUL into `out`.
 * Returns 0, or VK_EINTERNAL when libcrypto cannot compute the digest: it could not
 * allocate its digest context, or no loaded provider offers SHA-256. `out` is then "".
 */
int vk_sha256_hex(const void *p, size_t len, char out[VK_SHA256_HEX_LEN]) VK_MUST_CHECK;

/* ---------------------------------------------------------------- Ids, time */

/** Text form of a UUID: 36 characters plus NUL. */
#define VK_UUID_LEN 37

/** Write a random (v4) UUID in lowercase text form into `out`. Returns 0 or VK_EIO. */
int vk_uuid_v4(char out[VK_UUID_LEN]) VK_MUST_CHECK;
/** Write a time-ordered (v7) UUID: sorts by creation time. Returns 0 or VK_EIO. */
int vk_uuid_v7(char out[VK_UUID_LEN]) VK_MUST_CHECK;
/** True when `s` is a UUID in canonical text form (any case). */
bool vk_uuid_valid(const char *s);

/** Milliseconds since the Unix epoch (UTC, wall clock). */
int64_t vk_time_now_ms(void);
/**
 * Initialise `cond` so that its timed waits measure CLOCK_MONOTONIC (a wall-clock step
 * neither shortens nor stretches them). Pair with vk_time_deadline().
 */
void vk_time_cond_init(pthread_cond_t *cond);

/**
 * The CLOCK_MONOTONIC instant `ms` milliseconds from now (`ms` <= 0: now), as
 * pthread_cond_timedwait() takes it on a condition made with vk_time_cond_init().
 */
struct timespec vk_time_deadline(int64_t ms);

/** Monotonic clock in nanoseconds, for measuring durations. */
int64_t vk_time_mono_ns(void);
/** Format `ms` since the epoch as "YYYY-MM-DDTHH:MM:SS.mmmZ" (25 bytes with NUL). */
#define VK_TIME_LEN 25
void vk_time_format(int64_t ms, char out[VK_TIME_LEN]);
/** Parse the vk_time_format() form (also without ".mmm"). Returns 0 or VK_EINVAL. */
int vk_time_parse(const char *s, int64_t *ms) VK_MUST_CHECK;

/**
 * Parse a duration such as "90", "90s", "10m", "1h30m", "250ms" into milliseconds.
 * A bare number means seconds. Returns 0 or VK_EINVAL.
 */
int vk_time_duration_parse(const char *s, size_t len, int64_t *ms) VK_MUST_CHECK;

/* ---------------------------------------------------------------- Diagnostics */

/**
 * Append a compiler-style diagnostic to `out`:
 *
 *     FILE:LINE:COL: error: MSG
 *        3 | the source line
 *          |      ^
 *
 * `src`/`len` is the whole source text (borrowed) used to show the line; when
 * NULL or err->line is 0 only the first line is written ("FILE: error: MSG").
 * `col` counts Unicode code points from 1. Returns 0 or a vk_buf error.
 */
int vk_diag_render(struct vk_buf *out, const char *file, const char *src, size_t len,
                   const struct vk_err *err) VK_MUST_CHECK;

/** Decode one UTF-8 code point at `s` (`len` bytes available). Returns its byte length
 *  (1..4) and stores the code point in *cp, or returns 0 for an invalid sequence. */
size_t vk_utf8_decode(const unsigned char *s, size_t len, uint32_t *cp);

/* ---------------------------------------------------------------- Glob */

/**
 * Glob match of `s` against `pattern`, both NUL-terminated: `*` matches any run
 * of characters but '/', `**` any run including '/', a `**` segment followed
 * by '/' also matches zero directories (pattern src, `**`, a joined by '/'
 * matches "src/a"), `?` matches one
 * character but '/', `\` quotes the next character; everything else is literal.
 * Bounded work: at most O(len(s) * len(pattern)) steps.
 */
bool vk_glob_match(const char *pattern, const char *s);

/* ---------------------------------------------------------------- Outputs (outputs.c) */

/* A fragment's outputs, written to $VULCAN_OUTPUT (docs/workflow.md, "Outputs"). */
#define VK_OUTPUTS_MAX_BYTES (1u << 20) /**< the whole file of one attempt */
#define VK_OUTPUTS_MAX_VALUE (1u << 16) /**< one value (it becomes an environment string) */
#define VK_OUTPUTS_MAX_NAME 128         /**< bytes in a name */
#define VK_OUTPUTS_MAX_COUNT 256        /**< names in one fragment's outputs */

/** A name of [A-Za-z_][A-Za-z0-9_]*, at most VK_OUTPUTS_MAX_NAME bytes. */
bool vk_output_name_ok(const char *name, size_t len);

struct vk_output {
    const char *name, *value; /**< in the caller's pool */
};

/**
 * Parse the text of $VULCAN_OUTPUT: `NAME=VALUE` lines and the heredoc form `NAME<<DELIM`,
 * its lines, then a line `DELIM` (the value is the lines between, joined by "\n"), as
 * GitHub's $GITHUB_OUTPUT; "\r\n" ends a line too, empty lines are ignored, a later
 * NAME replaces an earlier one. Refused (VK_EINVAL, the line in `why`): a bad name, a line
 * that is neither form, a heredoc without its end, a NUL byte; VK_ETOOBIG: more than the
 * limits above. *out (in `pool`) holds *n outputs in the order first written.
 */
int vk_outputs_parse(const char *data, size_t len, struct vk_pool *pool, struct vk_output **out,
                     size_t *n, char *why, size_t why_size) VK_MUST_CHECK;

#endif /* VULCAN_UTIL_H */
