/*
 * secret_provider.h — secret providers: external programs that hand the server one
 * secret value each time they run (DESIGN §8, docs/secrets.md "Providers").
 *
 * A provider is configured with `--secret-provider NAME=PATH [ARG...]`: an absolute path
 * to an executable and optional fixed arguments, split on spaces, never given to a shell.
 * For each value the runner starts it with that argv, a minimal environment (PATH, HOME,
 * LC_ALL=C), its own process group, no descriptor but its three pipes, writes one JSON
 * request on its stdin
 *
 *     {"org": "...", "repository": "...", "name": "NPM_TOKEN", "ref": "...",
 *      "environment": null, "key": "...", "claims": {...}}
 *
 * and reads one JSON object `{"value": "..."}` from its stdout. The value is accepted only
 * when the provider exits 0, its stdout is valid JSON of bounded size that closes at exit,
 * and the value is a string of VK_SECRET_VALUE_MIN to VK_SECRET_VALUE_MAX bytes; anything
 * else (non-zero exit, a signal, garbage, a missing or non-string or too short or too long
 * value, output past VK_SECRET_PROVIDER_MAX_OUTPUT, a timeout, a stdout kept open by a
 * child after the provider exited) fails with a message naming the provider and the
 * reason, a short sanitized excerpt of its stderr, and never a partial value. On a
 * timeout the whole process group is killed.
 *
 * The two providers shipped with the binary (`vulcan secret-provider age|pass`) are the
 * functions vk_secret_provider_age() and vk_secret_provider_pass() below.
 *
 * Thread-safety: a `struct vk_secret_providers` is built once at start and then only
 * read; vk_secret_provider_run() may be called from many threads at once. A run blocks
 * its caller for at most the timeout (plus a bounded clean-up).
 */
#ifndef VULCAN_SECRET_PROVIDER_H
#define VULCAN_SECRET_PROVIDER_H

#include "vulcan/util.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------- Types */

/** Bounds of a secret value (DESIGN §8: shorter values cannot be masked safely). */
#define VK_SECRET_VALUE_MIN 6u
#define VK_SECRET_VALUE_MAX (64u * 1024u)

/**
 * The most a provider may write on stdout: room for the largest value with every byte
 * escaped as `\u00XX` (6 bytes) and the JSON around it. Past it the provider is killed.
 */
#define VK_SECRET_PROVIDER_MAX_OUTPUT (6u * VK_SECRET_VALUE_MAX + 4096u)

/** The head of a provider's stderr kept for error messages; the rest is read and dropped. */
#define VK_SECRET_PROVIDER_MAX_STDERR 4096u

/** Default and bounds of the run timeout (`--secret-provider-timeout`). */
#define VK_SECRET_PROVIDER_DEFAULT_TIMEOUT_MS 10000
#define VK_SECRET_PROVIDER_MIN_TIMEOUT_MS 100
#define VK_SECRET_PROVIDER_MAX_TIMEOUT_MS 300000

/** A provider name: `[a-z0-9][a-z0-9_-]*`, at most this many bytes. */
#define VK_SECRET_PROVIDER_NAME_MAX 32

/** At most this many fixed arguments after PATH, each at most 4096 bytes. */
#define VK_SECRET_PROVIDER_MAX_ARGS 16

/** At most this many providers. */
#define VK_SECRET_PROVIDERS_MAX 32

/** One configured provider. */
struct vk_secret_provider {
    char name[VK_SECRET_PROVIDER_NAME_MAX + 1];
    char **argv; /**< owned, NULL-terminated: argv[0] is the absolute path */
};

/** The configured providers and their timeout. */
struct vk_secret_providers {
    struct vk_secret_provider *items; /**< owned */
    size_t n;
    size_t cap;
    int64_t timeout_ms; /**< VK_SECRET_PROVIDER_DEFAULT_TIMEOUT_MS after init */
};

/**
 * What a provider is asked for. Every string is borrowed; NULL is sent as JSON null.
 * `claims` (borrowed, may be NULL for {}) must be a JSON object: the job's claims, the
 * same as in its OIDC ID token.
 */
struct vk_secret_request {
    const char *org;
    const char *repository;
    const char *name; /**< the secret's name, e.g. NPM_TOKEN */
    const char *ref;
    const char *environment;
    const char *key; /**< the secret definition's `key`: what the provider looks up */
    const json_t *claims;
};

/** A value: `len` bytes at `data`, NUL-terminated, no NUL inside. */
struct vk_secret_value {
    char *data;
    size_t len;
};

/* ---------------------------------------------------------------- Lifecycle */

/** Set up an empty list with the default timeout. */
void vk_secret_providers_init(struct vk_secret_providers *p);

/** Free the contents (accepts an initialised empty list); `p` is empty and usable again. */
void vk_secret_providers_release(struct vk_secret_providers *p);

/**
 * Parse one `--secret-provider` value, "NAME=PATH [ARG...]" (words split on spaces and
 * tabs; no quoting, no expansion), check it and add it to `p`. PATH must be absolute and
 * name an executable regular file. Borrows `spec`. Returns 0, or VK_EINVAL (bad name,
 * relative or missing or non-executable path, duplicate name) / VK_ETOOBIG (too many
 * providers or arguments, too long) with a message saying what to do in `err`.
 */
int vk_secret_providers_add(struct vk_secret_providers *p, const char *spec,
                            struct vk_err *err) VK_MUST_CHECK;

/**
 * Parse a `--secret-provider-timeout` duration ("10s", "500ms", ...) into p->timeout_ms.
 * Borrows `text`. Returns 0 or VK_EINVAL (not a duration from 100ms to 5m) with `err`.
 */
int vk_secret_providers_set_timeout(struct vk_secret_providers *p, const char *text,
                                    struct vk_err *err) VK_MUST_CHECK;

/** Returns borrowed (valid until `p` is released) the provider called `name`, or NULL. */
const struct vk_secret_provider *vk_secret_providers_find(const struct vk_secret_providers *p,
                                                          const char *name);

/** Wipe and free the value's bytes; `v` is empty again. Accepts an empty value. */
void vk_secret_value_release(struct vk_secret_value *v);

/* ---------------------------------------------------------------- Operations */

/**
 * Run `prov` (borrowed) once for `req` (borrowed), giving up after `timeout_ms`. On
 * success `out` holds the value (returns owned: release it with
 * vk_secret_value_release()). On failure `out` is empty and `err` says why, as
 * "secret provider 'NAME' ...". Returns 0, VK_ETIMEDOUT, VK_ETOOBIG (output or value too
 * large), VK_EPARSE (not the JSON of the protocol), VK_EINVAL (bad request, value too
 * short, exit status not 0), VK_EIO (cannot start it) or VK_ENOMEM.
 */
int vk_secret_provider_run(const struct vk_secret_provider *prov, int64_t timeout_ms,
                           const struct vk_secret_request *req, struct vk_secret_value *out,
                           struct vk_err *err) VK_MUST_CHECK;

/**
 * vk_secret_provider_run() of the provider called `name` in `p` with p->timeout_ms.
 * An unknown name gives VK_ENOTFOUND.
 */
int vk_secret_providers_resolve(const struct vk_secret_providers *p, const char *name,
                                const struct vk_secret_request *req, struct vk_secret_value *out,
                                struct vk_err *err) VK_MUST_CHECK;

/* ---------------------------------------------------------------- Shipped providers */

/** Options of the `age` provider. All borrowed. */
struct vk_secret_age_opts {
    const char *dir;      /**< the directory of encrypted files (required) */
    const char *identity; /**< the age identity file that decrypts them (required) */
    const char *age;      /**< the age executable; NULL: /usr/bin/age */
    int64_t timeout_ms;   /**< for age itself; 0: VK_SECRET_PROVIDER_DEFAULT_TIMEOUT_MS */
};

/**
 * The `age` provider: `request` (borrowed, `len` bytes of JSON) names a file by its
 * `key`, relative to o->dir (no absolute path, no `.` or `..` component, no symbolic
 * link leading out of the directory); the file is decrypted with `age --decrypt -i
 * IDENTITY` and its content, less one trailing newline, is the value. Returns 0 with the
 * value in `out` (returns owned), or a VK code with `err`.
 */
int vk_secret_provider_age(const struct vk_secret_age_opts *o, const char *request, size_t len,
                           struct vk_secret_value *out, struct vk_err *err) VK_MUST_CHECK;

/** Options of the `pass` provider. All borrowed, all may be NULL. */
struct vk_secret_pass_opts {
    const char *store;     /**< PASSWORD_STORE_DIR; NULL: pass's default (~/.password-store) */
    const char *gnupghome; /**< GNUPGHOME; NULL: gpg's default (~/.gnupg) */
    const char *pass;      /**< the pass executable; NULL: /usr/bin/pass */
    int64_t timeout_ms;    /**< for pass itself; 0: VK_SECRET_PROVIDER_DEFAULT_TIMEOUT_MS */
};

/**
 * The `pass` provider: the request's `key` is a pass name (`[A-Za-z0-9._@+/-]`, no `.`
 * or `..` component, not starting with `-` or `/`); the value is the first line of
 * `pass show -- KEY`. Returns 0 with the value in `out` (returns owned), or a VK code.
 */
int vk_secret_provider_pass(const struct vk_secret_pass_opts *o, const char *request, size_t len,
                            struct vk_secret_value *out, struct vk_err *err) VK_MUST_CHECK;

#endif
