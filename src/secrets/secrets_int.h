/*
 * secrets_int.h — private to the secrets module: the bounded process runner that the
 * provider runner and the shipped providers (which run age and pass) share.
 */
#ifndef VULCAN_SECRETS_INT_H
#define VULCAN_SECRETS_INT_H

#include "vulcan/secret_provider.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/** After the program exits, how long a descendant may keep its stdout open. */
#define VK__SECRETS_GRACE_MS 500

/** What to run. Everything borrowed. */
struct vk__secrets_cmd {
    char *const *argv; /**< argv[0]: absolute path, run as is (no PATH search, no shell) */
    char *const *envp; /**< the whole environment */
    const char *in;    /**< written to stdin, which is then closed; NULL: stdin from in_fd */
    size_t in_len;
    int in_fd;      /**< with in NULL: this descriptor as stdin; -1: /dev/null */
    size_t out_max; /**< stdout past this many bytes kills the program (VK_ETOOBIG) */
    size_t err_max; /**< the head of stderr kept; the rest is read and dropped */
    int64_t timeout_ms;
};

/** What it did. out and err are vk_bufs owned by the caller (released by it). */
struct vk__secrets_result {
    struct vk_buf out;
    struct vk_buf err;
    int status; /**< exit status, or -1 when killed by a signal */
    int signal; /**< the signal that killed it, or 0 */
};

/** Set up an empty result for `cmd`'s caps. */
void vk__secrets_result_init(struct vk__secrets_result *r, size_t out_max, size_t err_max);

/** Wipe (stdout may hold a secret) and free the result's buffers. */
void vk__secrets_result_release(struct vk__secrets_result *r);

/**
 * Run `cmd` in its own process group with its three pipes as its only descriptors,
 * signal mask empty and SIGPIPE at its default; feed stdin, collect stdout and the head
 * of stderr until both close and the program has exited. The calling thread never gets
 * SIGPIPE from it. Returns 0 when it ran to its end (status in r, whatever it is), or
 * VK_ETIMEDOUT (out of time), VK_ETOOBIG (stdout past out_max), VK_ECONFLICT (it exited
 * but a descendant kept its stdout or stderr open past VK__SECRETS_GRACE_MS), VK_EIO or
 * VK_ENOMEM with a message in `err`; in all these cases the process group is killed
 * and r->out is emptied. The message never contains output.
 */
int vk__secrets_exec(const struct vk__secrets_cmd *cmd, struct vk__secrets_result *r,
                     struct vk_err *err) VK_MUST_CHECK;

/**
 * A short excerpt of `b` safe to put in a message: its first non-empty line, at most
 * `max` bytes (max < cap), bytes outside printable ASCII as '?'. Into `out` (cap bytes).
 */
void vk__secrets_excerpt(const struct vk_buf *b, size_t max, char *out, size_t cap);

/**
 * Parse `len` bytes of provider-protocol JSON: an object whose "value" is a string of
 * VK_SECRET_VALUE_MIN..VK_SECRET_VALUE_MAX bytes. On success `out` returns owned the
 * value. The message never contains the input.
 */
int vk__secrets_parse_value(const char *text, size_t len, struct vk_secret_value *out,
                            struct vk_err *err) VK_MUST_CHECK;

/**
 * Check `len` bytes of a value (bounds, no NUL) and copy them into `out` (returns owned).
 */
int vk__secrets_value_set(struct vk_secret_value *out, const char *p, size_t len,
                          struct vk_err *err) VK_MUST_CHECK;

#endif
