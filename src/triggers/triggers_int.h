/*
 * Private helpers shared by the files of the triggers module.
 */
#ifndef VULCAN_TRIGGERS_INT_H
#define VULCAN_TRIGGERS_INT_H

#include "vulcan/triggers.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---------------------------------------------------------------- Webhook parsing */

#include <jansson.h>

/** State of one vk_triggers_hook_parse(): the event being filled and the error sink. */
struct vk__triggers_ctx {
    struct vk_triggers_event *ev;
    json_t *root;
    vk_triggers_header_fn *header;
    void *hctx;
    const char *body;
    size_t len;
    struct vk_err *err;
    /* changed paths gathered before sorting (heap, freed by the parser) */
    char **paths;
    size_t npaths, cap;
    bool paths_overflow;
};

/**
 * Look up the dotted `path` ("repository.clone_url") under `obj`. JSON null
 * counts as absent. Returns borrowed (valid while the document lives) value or NULL.
 */
json_t *vk__triggers_get(json_t *obj, const char *path);
/* Whether the values at paths `a` and `b` of `obj` are not both present and equal (strings
 * or integers): a pull request is from a fork unless its payload shows otherwise. */
bool vk__triggers_differs(json_t *obj, const char *a, const char *b);

/**
 * Read the string at `path` under `obj` into *out (copied into the event's
 * pool; NULL when absent and not `required`). Checks the length against `max`
 * and refuses control characters. Errors name the field.
 */
int vk__triggers_str(struct vk__triggers_ctx *c, json_t *obj, const char *path, size_t max,
                     bool required, const char **out);

/** A full commit name (40 or 64 hex digits, lowercased into the pool). */
int vk__triggers_sha(struct vk__triggers_ctx *c, json_t *obj, const char *path, bool required,
                     const char **out);

/** A commit name of 4..64 hex digits (Bitbucket abbreviates pull request commits). */
int vk__triggers_short_sha(struct vk__triggers_ctx *c, json_t *obj, const char *path, bool required,
                           const char **out);

/** An integer at `path` (required). */
int vk__triggers_int(struct vk__triggers_ctx *c, json_t *obj, const char *path, int64_t *out);

/** A boolean at `path` (false when absent). */
bool vk__triggers_bool(json_t *obj, const char *path);

/** Add the repository URL at `path` (when present and a string) to the event's list. */
int vk__triggers_url(struct vk__triggers_ctx *c, json_t *obj, const char *path);

/** Require at least one repository URL; the message names `what`. */
int vk__triggers_need_url(struct vk__triggers_ctx *c, const char *what);

/** Set ref, kind (push, tag or other), branch or tag from a full ref. */
int vk__triggers_set_ref(struct vk__triggers_ctx *c, const char *ref, const char *field);

/** Copy a string into the event's pool (NULL when out of memory). */
const char *vk__triggers_dup(struct vk__triggers_ctx *c, const char *s);

/** Add every string of the array at `path` (absent: nothing) to the changed paths. */
int vk__triggers_add_paths(struct vk__triggers_ctx *c, json_t *obj, const char *path);

/** Add the added/modified/removed lists of every commit in the array at `path`. */
int vk__triggers_commit_paths(struct vk__triggers_ctx *c, json_t *obj, const char *path);

/** Fill created/deleted/commit_sha from before/after (all-zero names). */
void vk__triggers_finish_push(struct vk__triggers_ctx *c);

/** True for an all-zero commit name. */
bool vk__triggers_zero(const char *sha);

/** Provider parsers: fill c->ev from c->root; `event` is the event header value. */
int vk__triggers_github(struct vk__triggers_ctx *c, const char *event, bool gitea);
int vk__triggers_gitlab(struct vk__triggers_ctx *c, const char *event);
int vk__triggers_bitbucket(struct vk__triggers_ctx *c, const char *event);

#endif
