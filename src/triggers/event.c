/*
 * event.c — turn a verified webhook body into struct vk_triggers_event: the JSON
 * field helpers every provider uses (bounded, control characters refused,
 * errors naming the field), the generic provider, and the conversion to the
 * workflow matcher's struct vk_wf_event.
 */
#include "triggers_int.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ZERO_SHA "0000000000000000000000000000000000000000"

json_t *vk__triggers_get(json_t *obj, const char *path)
{
    char key[128];
    const char *p = path;
    while (obj && json_is_object(obj)) {
        size_t n = strcspn(p, ".");
        if (n >= sizeof(key))
            return NULL;
        memcpy(key, p, n);
        key[n] = '\0';
        obj = json_object_get(obj, key);
        if (!p[n])
            return json_is_null(obj) ? NULL : obj;
        p += n + 1;
    }
    return NULL;
}

const char *vk__triggers_dup(struct vk__triggers_ctx *c, const char *s)
{
    return s ? vk_pool_strndup(&c->ev->pool, s, strlen(s)) : NULL;
}

static int nomem(struct vk__triggers_ctx *c)
{
    return vk_err_set(c->err, VK_ENOMEM, "out of memory while reading the webhook");
}

/* Checks every string taken from a payload: bounded, no control characters. */
static int check_text(struct vk__triggers_ctx *c, const char *field, const char *s, size_t n,
                      size_t max)
{
    if (n > max)
        return vk_err_set(c->err, VK_ETOOBIG, "field '%s' is too long (%zu bytes, at most %zu)",
                          field, n, max);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return vk_err_set(c->err, VK_EINVAL, "field '%s' contains a control character", field);
    return 0;
}

int vk__triggers_str(struct vk__triggers_ctx *c, json_t *obj, const char *path, size_t max,
                     bool required, const char **out)
{
    *out = NULL;
    json_t *v = vk__triggers_get(obj, path);
    if (!v) {
        if (required)
            return vk_err_set(c->err, VK_EINVAL, "missing field '%s'", path);
        return 0;
    }
    if (!json_is_string(v))
        return vk_err_set(c->err, VK_EINVAL, "field '%s' must be a string", path);
    size_t n = json_string_length(v);
    int rc = check_text(c, path, json_string_value(v), n, max);
    if (rc < 0)
        return rc;
    if (required && n == 0)
        return vk_err_set(c->err, VK_EINVAL, "field '%s' must not be empty", path);
    *out = vk_pool_strndup(&c->ev->pool, json_string_value(v), n);
    return *out ? 0 : nomem(c);
}

static int sha_common(struct vk__triggers_ctx *c, json_t *obj, const char *path, bool required,
                      size_t minlen, const char **out)
{
    int rc = vk__triggers_str(c, obj, path, VK_TRIGGERS_MAX_SHA, required, out);
    if (rc < 0 || !*out)
        return rc;
    size_t n = strlen(*out);
    bool full = n == 40 || n == 64;
    if (!vk_hex_is(*out, n) || n < minlen || (minlen == 40 && !full))
        return vk_err_set(c->err, VK_EINVAL, "field '%s' is not a commit id (%s hex digits)", path,
                          minlen == 40 ? "40 or 64" : "4 to 64");
    char *s = (char *)*out; /* our own pool copy */
    for (size_t i = 0; i < n; i++)
        s[i] = (char)tolower((unsigned char)s[i]);
    return 0;
}

int vk__triggers_sha(struct vk__triggers_ctx *c, json_t *obj, const char *path, bool required,
                     const char **out)
{
    return sha_common(c, obj, path, required, 40, out);
}

int vk__triggers_short_sha(struct vk__triggers_ctx *c, json_t *obj, const char *path, bool required,
                           const char **out)
{
    return sha_common(c, obj, path, required, 4, out);
}

int vk__triggers_int(struct vk__triggers_ctx *c, json_t *obj, const char *path, int64_t *out)
{
    json_t *v = vk__triggers_get(obj, path);
    if (!v)
        return vk_err_set(c->err, VK_EINVAL, "missing field '%s'", path);
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return vk_err_set(c->err, VK_EINVAL, "field '%s' must be a non-negative integer", path);
    *out = (int64_t)json_integer_value(v);
    return 0;
}

bool vk__triggers_bool(json_t *obj, const char *path)
{
    return json_is_true(vk__triggers_get(obj, path));
}

int vk__triggers_url(struct vk__triggers_ctx *c, json_t *obj, const char *path)
{
    const char *u = NULL;
    int rc = vk__triggers_str(c, obj, path, VK_TRIGGERS_MAX_URL, false, &u);
    if (rc < 0 || !u || !*u)
        return rc;
    struct vk_triggers_event *ev = c->ev;
    for (size_t i = 0; i < ev->nrepo_urls; i++)
        if (strcmp(ev->repo_urls[i], u) == 0)
            return 0;
    if (ev->nrepo_urls < VK_TRIGGERS_MAX_URLS)
        ev->repo_urls[ev->nrepo_urls++] = u;
    return 0;
}

int vk__triggers_need_url(struct vk__triggers_ctx *c, const char *what)
{
    if (c->ev->nrepo_urls == 0)
        return vk_err_set(c->err, VK_EINVAL, "missing field '%s'", what);
    return 0;
}

bool vk__triggers_zero(const char *sha)
{
    if (!sha || !*sha)
        return true;
    for (; *sha; sha++)
        if (*sha != '0')
            return false;
    return true;
}

int vk__triggers_set_ref(struct vk__triggers_ctx *c, const char *ref, const char *field)
{
    struct vk_triggers_event *ev = c->ev;
    ev->ref = ref;
    if (strncmp(ref, "refs/heads/", 11) == 0 && ref[11]) {
        ev->kind = VK_TRIGGERS_EV_PUSH;
        ev->branch = ref + 11;
    } else if (strncmp(ref, "refs/tags/", 10) == 0 && ref[10]) {
        ev->kind = VK_TRIGGERS_EV_TAG;
        ev->tag = ref + 10;
    } else if (strncmp(ref, "refs/", 5) == 0) {
        ev->kind = VK_TRIGGERS_EV_OTHER; /* refs/notes/..., refs/pull/... */
    } else {
        return vk_err_set(c->err, VK_EINVAL, "field '%s' is not a full ref ('refs/heads/…')",
                          field);
    }
    return 0;
}

void vk__triggers_finish_push(struct vk__triggers_ctx *c)
{
    struct vk_triggers_event *ev = c->ev;
    if (!ev->before)
        ev->before = ZERO_SHA;
    if (!ev->after)
        ev->after = ZERO_SHA;
    if (vk__triggers_zero(ev->before))
        ev->created = true;
    if (vk__triggers_zero(ev->after))
        ev->deleted = true;
    ev->commit_sha = ev->deleted ? NULL : ev->after;
}

static int add_path(struct vk__triggers_ctx *c, const char *field, const char *s, size_t n)
{
    int rc = check_text(c, field, s, n, VK_TRIGGERS_MAX_PATH);
    if (rc < 0)
        return rc;
    if (n == 0)
        return 0;
    if (c->npaths >= VK_TRIGGERS_MAX_PATHS * 4) {
        c->paths_overflow = true; /* the caller computes them with git */
        return 0;
    }
    if (vk_array_grow(&c->paths, &c->cap, c->npaths + 1, 64, sizeof(*c->paths)) < 0)
        return nomem(c);
    char *copy = vk_mem_alloc(n + 1);
    if (!copy)
        return nomem(c);
    memcpy(copy, s, n);
    copy[n] = '\0';
    c->paths[c->npaths++] = copy;
    return 0;
}

int vk__triggers_add_paths(struct vk__triggers_ctx *c, json_t *obj, const char *path)
{
    json_t *arr = vk__triggers_get(obj, path);
    if (!arr)
        return 0;
    if (!json_is_array(arr))
        return vk_err_set(c->err, VK_EINVAL, "field '%s' must be an array of strings", path);
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        if (!json_is_string(v))
            return vk_err_set(c->err, VK_EINVAL, "field '%s' must be an array of strings", path);
        int rc = add_path(c, path, json_string_value(v), json_string_length(v));
        if (rc < 0)
            return rc;
    }
    return 0;
}

int vk__triggers_commit_paths(struct vk__triggers_ctx *c, json_t *obj, const char *path)
{
    json_t *arr = vk__triggers_get(obj, path);
    if (!arr)
        return 0;
    if (!json_is_array(arr))
        return vk_err_set(c->err, VK_EINVAL, "field '%s' must be an array", path);
    static const char *const lists[] = {"added", "modified", "removed"};
    size_t i;
    json_t *commit;
    json_array_foreach(arr, i, commit)
    {
        if (!json_is_object(commit))
            return vk_err_set(c->err, VK_EINVAL, "field '%s' must be an array of objects", path);
        for (size_t k = 0; k < VK_ARRAY_LEN(lists); k++) {
            char field[64];
            snprintf(field, sizeof(field), "%s[].%s", path, lists[k]);
            json_t *l = json_object_get(commit, lists[k]);
            if (!l || json_is_null(l))
                continue;
            if (!json_is_array(l))
                return vk_err_set(c->err, VK_EINVAL, "field '%s' must be an array of strings",
                                  field);
            size_t j;
            json_t *v;
            json_array_foreach(l, j, v)
            {
                if (!json_is_string(v))
                    return vk_err_set(c->err, VK_EINVAL, "field '%s' must be an array of strings",
                                      field);
                int rc = add_path(c, field, json_string_value(v), json_string_length(v));
                if (rc < 0)
                    return rc;
            }
        }
    }
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sort, deduplicate and copy `v` into the event's pool. */
static int store_paths(struct vk_triggers_event *ev, char **v, size_t n)
{
    if (n)
        qsort(v, n, sizeof(*v), cmp_str);
    size_t distinct = 0;
    for (size_t i = 0; i < n; i++)
        if (i == 0 || strcmp(v[i], v[i - 1]) != 0)
            distinct++;
    if (distinct > VK_TRIGGERS_MAX_PATHS)
        return VK_ETOOBIG;
    const char **items = vk_pool_zalloc(&ev->pool, (distinct ? distinct : 1) * sizeof(*items));
    if (!items)
        return VK_ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && strcmp(v[i], v[i - 1]) == 0)
            continue;
        items[k] = vk_pool_strndup(&ev->pool, v[i], strlen(v[i]));
        if (!items[k])
            return VK_ENOMEM;
        k++;
    }
    ev->paths = items;
    ev->npaths = k;
    return 0;
}

int vk_triggers_event_set_paths(struct vk_triggers_event *ev, const char *const *paths, size_t n,
                                struct vk_err *err)
{
    if (n > VK_TRIGGERS_MAX_PATHS * 4)
        return vk_err_set(err, VK_ETOOBIG, "too many changed paths (%zu)", n);
    char **v = vk_mem_alloc((n ? n : 1) * sizeof(*v));
    if (!v)
        return vk_err_set(err, VK_ENOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        if (strlen(paths[i]) > VK_TRIGGERS_MAX_PATH) {
            vk_mem_free(v);
            return vk_err_set(err, VK_ETOOBIG, "changed path too long");
        }
        v[i] = (char *)paths[i]; /* only read: store_paths copies */
    }
    int rc = store_paths(ev, v, n);
    vk_mem_free(v);
    if (rc == VK_ETOOBIG)
        return vk_err_set(err, rc, "too many changed paths (more than %u)", VK_TRIGGERS_MAX_PATHS);
    if (rc < 0)
        return vk_err_set(err, rc, "out of memory");
    ev->paths_complete = true;
    return 0;
}

/* ---------------------------------------------------------------- Generic provider */

/*
 * Our own documented body (docs/triggers.md):
 * {"event": "push"|"tag"|"pull_request"|"ping", "ref", "before", "after",
 *  "deleted", "repository": {"url"}, "changed_paths": [...], "sender",
 *  "pull_request": {"number", "action", "head_sha", "head_branch", "base_branch",
 *  "head_repository"}} — a pull request whose head_repository is not repository.url (or
 *  has none) is from a fork: it gets no secrets unless the repository allows it.
 */
bool vk__triggers_differs(json_t *obj, const char *a, const char *b)
{
    json_t *x = vk__triggers_get(obj, a), *y = vk__triggers_get(obj, b);
    if (json_is_string(x) && json_is_string(y))
        return !json_equal(x, y) || json_string_length(x) == 0;
    if (json_is_integer(x) && json_is_integer(y))
        return json_integer_value(x) != json_integer_value(y);
    return true;
}

static int parse_generic(struct vk__triggers_ctx *c)
{
    struct vk_triggers_event *ev = c->ev;
    json_t *r = c->root;
    const char *event = NULL;
    int rc = vk__triggers_str(c, r, "event", VK_TRIGGERS_MAX_TEXT, true, &event);
    if (rc < 0)
        return rc;
    ev->event_name = event;
    if ((rc = vk__triggers_str(c, r, "sender", VK_TRIGGERS_MAX_TEXT, false, &ev->sender)) < 0)
        return rc;
    if (strcmp(event, "ping") == 0) {
        ev->kind = VK_TRIGGERS_EV_PING;
        return vk__triggers_url(c, r, "repository.url");
    }
    bool push = strcmp(event, "push") == 0, tag = strcmp(event, "tag") == 0;
    bool pr = strcmp(event, "pull_request") == 0;
    if (!push && !tag && !pr) {
        ev->kind = VK_TRIGGERS_EV_OTHER;
        return 0;
    }
    if ((rc = vk__triggers_url(c, r, "repository.url")) < 0 ||
        (rc = vk__triggers_need_url(c, "repository.url")) < 0)
        return rc;
    if (pr) {
        ev->kind = VK_TRIGGERS_EV_PULL_REQUEST;
        if ((rc = vk__triggers_int(c, r, "pull_request.number", &ev->pr_number)) < 0 ||
            (rc = vk__triggers_str(c, r, "pull_request.action", VK_TRIGGERS_MAX_TEXT, true,
                                   &ev->pr_action)) < 0 ||
            (rc = vk__triggers_sha(c, r, "pull_request.head_sha", true, &ev->pr_head_sha)) < 0 ||
            (rc = vk__triggers_str(c, r, "pull_request.head_branch", VK_TRIGGERS_MAX_REF, false,
                                   &ev->pr_head_branch)) < 0 ||
            (rc = vk__triggers_str(c, r, "pull_request.base_branch", VK_TRIGGERS_MAX_REF, true,
                                   &ev->pr_base_branch)) < 0)
            return rc;
        ev->branch = ev->pr_base_branch;
        ev->commit_sha = ev->pr_head_sha;
        ev->pr_from_fork =
            vk__triggers_differs(r, "pull_request.head_repository", "repository.url");
    } else {
        const char *ref = NULL;
        if ((rc = vk__triggers_str(c, r, "ref", VK_TRIGGERS_MAX_REF, true, &ref)) < 0)
            return rc;
        if (strncmp(ref, "refs/", 5) != 0) {
            /* a short name: a branch for "push", a tag for "tag" */
            char full[VK_TRIGGERS_MAX_REF + 16];
            snprintf(full, sizeof(full), "%s%s", tag ? "refs/tags/" : "refs/heads/", ref);
            ref = vk__triggers_dup(c, full);
            if (!ref)
                return nomem(c);
        }
        if ((rc = vk__triggers_set_ref(c, ref, "ref")) < 0)
            return rc;
        if ((push && ev->kind != VK_TRIGGERS_EV_PUSH) || (tag && ev->kind != VK_TRIGGERS_EV_TAG))
            return vk_err_set(c->err, VK_EINVAL, "field 'ref' does not fit event '%s'", event);
        if ((rc = vk__triggers_sha(c, r, "after", !vk__triggers_bool(r, "deleted"), &ev->after)) <
                0 ||
            (rc = vk__triggers_sha(c, r, "before", false, &ev->before)) < 0)
            return rc;
        ev->deleted = vk__triggers_bool(r, "deleted");
        vk__triggers_finish_push(c);
        if (vk__triggers_get(r, "changed_paths")) {
            if ((rc = vk__triggers_add_paths(c, r, "changed_paths")) < 0)
                return rc;
            ev->paths_complete = true;
        }
    }
    return 0;
}

/* ---------------------------------------------------------------- Entry point */

static const char *event_header(enum vk_triggers_provider p)
{
    switch (p) {
    case VK_TRIGGERS_GITHUB:
        return "X-GitHub-Event";
    case VK_TRIGGERS_GITLAB:
        return "X-Gitlab-Event";
    case VK_TRIGGERS_GITEA:
        return "X-Gitea-Event";
    case VK_TRIGGERS_BITBUCKET:
        return "X-Event-Key";
    case VK_TRIGGERS_GENERIC:
        break;
    }
    return NULL;
}

static const char *delivery_header(enum vk_triggers_provider p)
{
    switch (p) {
    case VK_TRIGGERS_GITHUB:
        return "X-GitHub-Delivery";
    case VK_TRIGGERS_GITLAB:
        return "X-Gitlab-Event-UUID";
    case VK_TRIGGERS_GITEA:
        return "X-Gitea-Delivery";
    case VK_TRIGGERS_BITBUCKET:
        return "X-Request-UUID";
    case VK_TRIGGERS_GENERIC:
        return "X-Vulcan-Delivery";
    }
    return NULL;
}

static const char *header(struct vk__triggers_ctx *c, const char *name)
{
    return c->header ? c->header(c->hctx, name) : NULL;
}

static int header_text(struct vk__triggers_ctx *c, const char *name, const char **out)
{
    const char *v = header(c, name);
    *out = NULL;
    if (!v)
        return 0;
    int rc = check_text(c, name, v, strlen(v), VK_TRIGGERS_MAX_TEXT);
    if (rc < 0)
        return rc;
    *out = vk__triggers_dup(c, v);
    return *out ? 0 : nomem(c);
}

static int read_delivery(struct vk__triggers_ctx *c)
{
    struct vk_triggers_event *ev = c->ev;
    int rc = header_text(c, delivery_header(ev->provider), &ev->delivery_id);
    if (rc < 0 || ev->delivery_id || ev->provider != VK_TRIGGERS_BITBUCKET)
        return rc;
    /* Bitbucket without X-Request-UUID: the hook's id plus the body's hash,
     * so a redelivery of the same body is recognised */
    const char *hook = NULL;
    if ((rc = header_text(c, "X-Hook-UUID", &hook)) < 0 || !hook)
        return rc;
    char hex[65], id[VK_TRIGGERS_MAX_TEXT + 80];
    if (vk_sha256_hex(c->body, c->len, hex) < 0)
        return vk_err_set(c->err, VK_EINTERNAL, "cannot hash the body");
    snprintf(id, sizeof(id), "%s:%.32s", hook, hex);
    ev->delivery_id = vk__triggers_dup(c, id);
    return ev->delivery_id ? 0 : nomem(c);
}

static int dispatch(struct vk__triggers_ctx *c)
{
    struct vk_triggers_event *ev = c->ev;
    int rc = read_delivery(c);
    if (rc < 0)
        return rc;
    if (ev->provider == VK_TRIGGERS_GENERIC)
        return parse_generic(c);
    const char *hname = event_header(ev->provider);
    const char *event = NULL;
    if ((rc = header_text(c, hname, &event)) < 0)
        return rc;
    if (!event || !*event)
        return vk_err_set(c->err, VK_EINVAL, "missing header '%s'", hname);
    ev->event_name = event;
    switch (ev->provider) {
    case VK_TRIGGERS_GITHUB:
        return vk__triggers_github(c, event, false);
    case VK_TRIGGERS_GITEA:
        return vk__triggers_github(c, event, true);
    case VK_TRIGGERS_GITLAB:
        return vk__triggers_gitlab(c, event);
    case VK_TRIGGERS_BITBUCKET:
        return vk__triggers_bitbucket(c, event);
    case VK_TRIGGERS_GENERIC:
        break;
    }
    return VK_EINTERNAL;
}

int vk_triggers_hook_parse(enum vk_triggers_provider provider, vk_triggers_header_fn *hdr,
                           void *ctx, const char *body, size_t len, struct vk_triggers_event **out,
                           struct vk_err *err)
{
    *out = NULL;
    if (provider > VK_TRIGGERS_GENERIC)
        return vk_err_set(err, VK_EINVAL, "unknown webhook provider");
    if (len > VK_TRIGGERS_MAX_BODY)
        return vk_err_set(err, VK_ETOOBIG, "webhook body too large (%zu bytes, at most %u)", len,
                          VK_TRIGGERS_MAX_BODY);
    if (!body || len == 0)
        return vk_err_set(err, VK_EINVAL, "empty webhook body");
    json_error_t jerr;
    json_t *root = json_loadb(body, len, 0, &jerr);
    if (!root)
        return vk_err_set(err, VK_EINVAL, "webhook body is not valid JSON: %s (line %d)", jerr.text,
                          jerr.line);
    int rc;
    struct vk__triggers_ctx c = {
        .root = root, .header = hdr, .hctx = ctx, .body = body, .len = len, .err = err};
    if (!json_is_object(root)) {
        rc = vk_err_set(err, VK_EINVAL, "webhook body must be a JSON object");
        goto out;
    }
    c.ev = vk_mem_calloc(1, sizeof(*c.ev));
    if (!c.ev) {
        rc = vk_err_set(err, VK_ENOMEM, "out of memory");
        goto out;
    }
    vk_pool_init(&c.ev->pool, 0);
    c.ev->provider = provider;
    rc = dispatch(&c);
    if (rc == 0 && c.ev->kind != VK_TRIGGERS_EV_PUSH && c.ev->kind != VK_TRIGGERS_EV_PULL_REQUEST &&
        c.ev->kind != VK_TRIGGERS_EV_TAG)
        c.ev->paths_complete = false;
    if (rc == 0 && c.paths_overflow)
        c.ev->paths_complete = false;
    if (rc == 0 && c.ev->paths_complete) {
        rc = store_paths(c.ev, c.paths, c.npaths);
        if (rc == VK_ETOOBIG) {
            c.ev->paths_complete = false; /* let git compute them */
            rc = 0;
        } else if (rc < 0) {
            rc = nomem(&c);
        }
    }
out:
    for (size_t i = 0; i < c.npaths; i++)
        vk_mem_free(c.paths[i]);
    vk_mem_free(c.paths);
    json_decref(root);
    if (rc < 0) {
        vk_triggers_event_free(c.ev);
        return rc;
    }
    if (!c.ev->paths_complete) {
        c.ev->paths = NULL;
        c.ev->npaths = 0;
    }
    *out = c.ev;
    return 0;
}

void vk_triggers_event_free(struct vk_triggers_event *ev)
{
    if (!ev)
        return;
    vk_pool_release(&ev->pool);
    vk_mem_free(ev);
}

bool vk_triggers_event_matches_repo(const struct vk_triggers_event *ev, const char *url)
{
    for (size_t i = 0; ev && i < ev->nrepo_urls; i++)
        if (vk_triggers_url_same(ev->repo_urls[i], url))
            return true;
    return false;
}

int vk_triggers_event_to_wf(const struct vk_triggers_event *ev, struct vk_wf_event *out)
{
    memset(out, 0, sizeof(*out));
    switch (ev->kind) {
    case VK_TRIGGERS_EV_PUSH:
        if (ev->deleted)
            return VK_ENOTFOUND;
        out->type = VK_WF_TRIG_PUSH;
        out->branch = ev->branch;
        break;
    case VK_TRIGGERS_EV_TAG:
        if (ev->deleted)
            return VK_ENOTFOUND;
        out->type = VK_WF_TRIG_TAG;
        out->tag = ev->tag;
        break;
    case VK_TRIGGERS_EV_PULL_REQUEST:
        out->type = VK_WF_TRIG_PULL_REQUEST;
        out->branch = ev->pr_base_branch;
        out->action = ev->pr_action;
        break;
    case VK_TRIGGERS_EV_PING:
    case VK_TRIGGERS_EV_OTHER:
        return VK_ENOTFOUND;
    }
    if (ev->paths_complete) {
        static const char *const none[1] = {NULL};
        out->paths = ev->paths ? ev->paths : none;
        out->npaths = ev->npaths;
    }
    return 0;
}
