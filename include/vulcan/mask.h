/*
 * mask — a streaming masker for secret values in log output (DESIGN §8).
 *
 * Values are added once; every form a script may print them in is derived
 * here: the value itself; each line of a multi-line value (lines of
 * VK_MASK_MIN_VALUE bytes or more, a trailing CR dropped); base64 and base64url
 * at each of the three byte alignments (the stable inner part of the encoding,
 * so padded and unpadded text both match); percent-encoding (upper and lower
 * hex, with the reserved sets of RFC 3986, encodeURIComponent, Python's quote
 * and form encoding with '+' for space, and every byte as %XX); JSON string escaping as jansson,
 * JSON.stringify and Python's json emit it (short escapes, \u00XX in upper or
 * lower hex, non-ASCII raw or as \uXXXX, '/' raw or as "\/").
 *
 * Bytes are then written in chunks of any size; the output has "***" in place
 * of every occurrence of any form, overlapping or adjacent occurrences merged
 * into one "***". All forms are searched in one pass (an Aho–Corasick
 * automaton, rebuilt lazily after an add). Only as many bytes as could still
 * be the start of a form are held back between writes (at most the longest
 * form minus one); vk_mask_flush() emits them at the end of the stream.
 *
 * A value added in the middle of a stream is masked from the bytes not yet
 * emitted on: add values before the output they protect.
 *
 * Memory: forms and held-back bytes are wiped when freed. Thread-safety: one
 * masker is used by one thread at a time.
 */
#ifndef VULCAN_MASK_H
#define VULCAN_MASK_H

#include "vulcan/util.h"

#include <stddef.h>

/* ---------------------------------------------------------------- Types */

/** Shortest value that can be masked (shorter ones would mask ordinary text). */
#define VK_MASK_MIN_VALUE 6u
/** Longest value (the secrets limit, DESIGN §8). */
#define VK_MASK_MAX_VALUE (64u * 1024u)
/** Bytes of all derived forms of all values of one masker. */
#define VK_MASK_MAX_FORM_BYTES (64u * 1024u * 1024u)
/** What a masked occurrence becomes. */
#define VK_MASK_TEXT "***"

struct vk_mask;

/** Output of the masker: `len` (> 0) bytes at `data`, borrowed during the call. */
typedef void (*vk_mask_out_fn)(void *ctx, const char *data, size_t len);

/* ---------------------------------------------------------------- Lifecycle */

/** Returns owned: an empty masker (passes bytes through unchanged). Free with vk_mask_free(). */
struct vk_mask *vk_mask_new(void);
/** Wipe and free `m` (NULL is accepted). Held-back bytes are dropped, not emitted. */
void vk_mask_free(struct vk_mask *m);

/* ---------------------------------------------------------------- Operations */

/**
 * Add the value `value` (`n` bytes, borrowed; any bytes) and all its forms.
 * Adding a value twice is harmless. Returns 0, VK_EINVAL when `n` is below
 * VK_MASK_MIN_VALUE or above VK_MASK_MAX_VALUE, VK_ETOOBIG when the forms would
 * exceed VK_MASK_MAX_FORM_BYTES, VK_ENOMEM.
 */
int vk_mask_add(struct vk_mask *m, const char *value, size_t n) VK_MUST_CHECK;
/** The number of values added (duplicates counted once each time they were added). */
size_t vk_mask_values(const struct vk_mask *m);
/** The number of distinct forms searched for. */
size_t vk_mask_forms(const struct vk_mask *m);

/**
 * Mask `len` bytes at `data` (borrowed) of the stream and pass what is safe to
 * emit to `out` (zero or one call per write). Returns 0, or VK_ENOMEM (the
 * chunk is then dropped, nothing unmasked is emitted).
 */
int vk_mask_write(struct vk_mask *m, const char *data, size_t len, vk_mask_out_fn out,
                  void *ctx) VK_MUST_CHECK;
/** End of the stream: emit the held-back bytes (masked) to `out`; the masker starts afresh. */
void vk_mask_flush(struct vk_mask *m, vk_mask_out_fn out, void *ctx);
/** Bytes currently held back. */
size_t vk_mask_held(const struct vk_mask *m);

/**
 * One-shot: mask `len` bytes at `data` as a whole stream (write + flush) and
 * append the result to `out`. Returns 0, VK_ENOMEM or VK_ETOOBIG (from `out`).
 */
int vk_mask_buf(struct vk_mask *m, const char *data, size_t len, struct vk_buf *out) VK_MUST_CHECK;

#endif
