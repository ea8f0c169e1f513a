/*
 * provider.c — the secret provider runner: `--secret-provider NAME=PATH [ARG...]`
 * parsing and checking, the JSON request on stdin, the `{"value": "..."}` answer on
 * stdout, and the errors that never carry a partial value (secret_provider.h).
 */
#include "secrets_int.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The request's own cap: a job's claims are a few hundred bytes. */
#define MAX_REQUEST (64u * 1024u)
#define MAX_ARG 4096u
#define EXCERPT 120u

void vk_secret_providers_init(struct vk_secret_providers *p)
{
    memset(p, 0, sizeof(*p));
    p->timeout_ms = VK_SECRET_PROVIDER_DEFAULT_TIMEOUT_MS;
}

static void free_argv(char **argv)
{
    if (!argv)
        return;
    for (char **a = argv; *a; a++)
        vk_mem_free(*a);
    vk_mem_free(argv);
}

void vk_secret_providers_release(struct vk_secret_providers *p)
{
    for (size_t i = 0; i < p->n; i++)
        free_argv(p->items[i].argv);
    vk_mem_free(p->items);
    vk_secret_providers_init(p);
}

static bool name_ok(const char *s, size_t n)
{
    if (n == 0 || n > VK_SECRET_PROVIDER_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
        if (!alnum && (i == 0 || (c != '_' && c != '-')))
            return false;
    }
    return true;
}

const struct vk_secret_provider *vk_secret_providers_find(const struct vk_secret_providers *p,
                                                          const char *name)
{
    for (size_t i = 0; name && i < p->n; i++)
        if (strcmp(p->items[i].name, name) == 0)
            return &p->items[i];
    return NULL;
}

/* Accepts "NAME=PATH [ARG...]" as documented in the header; checks PATH on disk now so
 * that a typo stops the server at start rather than failing every claim later. */
int vk_secret_providers_add(struct vk_secret_providers *p, const char *spec, struct vk_err *err)
{
    const char *eq = strchr(spec, '=');
    if (!eq)
        return vk_err_set(err, VK_EINVAL,
                          "secret provider '%.64s' is not NAME=PATH (for example "
                          "age=/usr/bin/vulcan secret-provider age --dir DIR --identity FILE)",
                          spec);
    size_t nlen = (size_t)(eq - spec);
    if (!name_ok(spec, nlen))
        return vk_err_set(err, VK_EINVAL,
                          "secret provider name '%.*s' must be 1 to %d of [a-z0-9_-], starting "
                          "with a letter or digit",
                          (int)(nlen > 64 ? 64 : nlen), spec, VK_SECRET_PROVIDER_NAME_MAX);
    char name[VK_SECRET_PROVIDER_NAME_MAX + 1];
    memcpy(name, spec, nlen);
    name[nlen] = '\0';
    if (vk_secret_providers_find(p, name))
        return vk_err_set(err, VK_EINVAL, "secret provider '%s' is configured twice", name);
    if (p->n >= VK_SECRET_PROVIDERS_MAX)
        return vk_err_set(err, VK_ETOOBIG, "more than %d secret providers",
                          VK_SECRET_PROVIDERS_MAX);

    char **argv = vk_mem_calloc(VK_SECRET_PROVIDER_MAX_ARGS + 2, sizeof(char *));
    if (!argv)
        return vk_err_set(err, VK_ENOMEM, "out of memory");
    size_t argc = 0;
    int rc = 0;
    for (const char *s = eq + 1; *s;) {
        s += strspn(s, " \t");
        size_t w = strcspn(s, " \t");
        if (!w)
            break;
        if (argc == VK_SECRET_PROVIDER_MAX_ARGS + 1) {
            rc = vk_err_set(err, VK_ETOOBIG, "secret provider '%s' has more than %d arguments",
                            name, VK_SECRET_PROVIDER_MAX_ARGS);
            goto fail;
        }
        if (w > MAX_ARG) {
            rc = vk_err_set(err, VK_ETOOBIG, "secret provider '%s' has a word longer than %u bytes",
                            name, MAX_ARG);
            goto fail;
        }
        argv[argc] = vk_mem_alloc(w + 1);
        if (!argv[argc]) {
            rc = vk_err_set(err, VK_ENOMEM, "out of memory");
            goto fail;
        }
        memcpy(argv[argc], s, w);
        argv[argc++][w] = '\0';
        s += w;
    }
    if (argc == 0) {
        rc = vk_err_set(err, VK_EINVAL, "secret provider '%s' has no PATH after '='", name);
        goto fail;
    }
    if (argv[0][0] != '/') {
        rc = vk_err_set(err, VK_EINVAL,
                        "secret provider '%s': '%s' is not an absolute path (no PATH search "
                        "is done; write the full path)",
                        name, argv[0]);
        goto fail;
    }
    struct stat st;
    if (stat(argv[0], &st) < 0) {
        rc = vk_err_set(err, VK_EINVAL, "secret provider '%s': cannot use '%s': %s", name, argv[0],
                        strerror(errno));
        goto fail;
    }
    if (!S_ISREG(st.st_mode) || access(argv[0], X_OK) < 0) {
        rc = vk_err_set(err, VK_EINVAL,
                        "secret provider '%s': '%s' is not an executable file (chmod +x it)", name,
                        argv[0]);
        goto fail;
    }
    if (p->n == p->cap) {
        rc = vk_array_grow(&p->items, &p->cap, p->n + 1, 4, sizeof(*p->items));
        if (rc < 0) {
            vk_err_set(err, rc, "out of memory");
            goto fail;
        }
    }
    struct vk_secret_provider *it = &p->items[p->n++];
    memcpy(it->name, name, nlen + 1);
    it->argv = argv;
    return 0;
fail:
    free_argv(argv);
    return rc;
}

int vk_secret_providers_set_timeout(struct vk_secret_providers *p, const char *text,
                                    struct vk_err *err)
{
    int64_t ms = 0;
    if (vk_time_duration_parse(text, strlen(text), &ms) < 0 ||
        ms < VK_SECRET_PROVIDER_MIN_TIMEOUT_MS || ms > VK_SECRET_PROVIDER_MAX_TIMEOUT_MS)
        return vk_err_set(err, VK_EINVAL,
                          "secret provider timeout '%.64s' is not a duration from 100ms to 5m "
                          "such as \"10s\"",
                          text);
    p->timeout_ms = ms;
    return 0;
}

void vk_secret_value_release(struct vk_secret_value *v)
{
    if (v->data) {
        explicit_bzero(v->data, v->len);
        vk_mem_free(v->data);
    }
    v->data = NULL;
    v->len = 0;
}

int vk__secrets_value_set(struct vk_secret_value *out, const char *p, size_t len,
                          struct vk_err *err)
{
    out->data = NULL;
    out->len = 0;
    if (len < VK_SECRET_VALUE_MIN)
        return vk_err_set(
            err, VK_EINVAL,
            "gave a value of %zu bytes, shorter than %u (too short to be masked safely)", len,
            VK_SECRET_VALUE_MIN);
    if (len > VK_SECRET_VALUE_MAX)
        return vk_err_set(err, VK_ETOOBIG, "gave a value longer than %u bytes",
                          VK_SECRET_VALUE_MAX);
    if (memchr(p, '\0', len))
        return vk_err_set(err, VK_EINVAL, "gave a value containing a NUL byte");
    out->data = vk_mem_alloc(len + 1);
    if (!out->data)
        return vk_err_set(err, VK_ENOMEM, "out of memory");
    memcpy(out->data, p, len);
    out->data[len] = '\0';
    out->len = len;
    return 0;
}

/* jansson's error text quotes the input near the error ("near 'hunter2'"): only the
 * position goes into our message. */
int vk__secrets_parse_value(const char *text, size_t len, struct vk_secret_value *out,
                            struct vk_err *err)
{
    json_error_t je;
    out->data = NULL;
    out->len = 0;
    if (len == 0)
        return vk_err_set(err, VK_EPARSE, "printed nothing on stdout (expected {\"value\": ...})");
    json_t *doc = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!doc)
        return vk_err_set(err, VK_EPARSE,
                          "printed no valid JSON on stdout (error at line %d, column %d; "
                          "expected {\"value\": ...})",
                          je.line, je.column);
    int rc = 0;
    json_t *v = json_is_object(doc) ? json_object_get(doc, "value") : NULL;
    if (!json_is_object(doc))
        rc = vk_err_set(err, VK_EPARSE, "printed JSON that is not an object");
    else if (!v)
        rc = vk_err_set(err, VK_EPARSE, "printed an object without \"value\"");
    else if (!json_is_string(v))
        rc = vk_err_set(err, VK_EPARSE, "printed a \"value\" that is not a string");
    else
        rc = vk__secrets_value_set(out, json_string_value(v), json_string_length(v), err);
    json_decref(doc);
    return rc;
}

static int set_str(json_t *o, const char *k, const char *v)
{
    json_t *s = v ? json_string(v) : json_null();
    return s ? json_object_set_new(o, k, s) : -1;
}

/* The request JSON (DESIGN §8) as text; NULL strings become null. */
static int build_request(const struct vk_secret_request *req, char **text, size_t *len,
                         struct vk_err *err)
{
    *text = NULL;
    if (req->claims && !json_is_object(req->claims))
        return vk_err_set(err, VK_EINVAL,
                          "the claims of a secret provider request must be an "
                          "object");
    json_t *o = json_object();
    json_t *claims = req->claims ? json_deep_copy(req->claims) : json_object();
    int bad = !o || !claims;
    bad |= set_str(o, "org", req->org);
    bad |= set_str(o, "repository", req->repository);
    bad |= set_str(o, "name", req->name);
    bad |= set_str(o, "ref", req->ref);
    bad |= set_str(o, "environment", req->environment);
    bad |= set_str(o, "key", req->key);
    int rc = 0;
    if (!bad && claims) {
        bad = json_object_set_new(o, "claims", claims) < 0;
        claims = NULL; /* taken by json_object_set_new(), even when it fails */
    }
    json_decref(claims);
    if (bad) {
        /* set_str fails on strings that are not UTF-8, json_string() returning NULL */
        rc = vk_err_set(err, VK_EINVAL, "a secret provider request field is not UTF-8 text");
    } else {
        char *s = json_dumps(o, JSON_COMPACT);
        if (!s) {
            rc = vk_err_set(err, VK_ENOMEM, "out of memory");
        } else if (strlen(s) > MAX_REQUEST) {
            free(s);
            rc = vk_err_set(err, VK_ETOOBIG, "secret provider request larger than %u bytes",
                            MAX_REQUEST);
        } else {
            *len = strlen(s);
            *text = s; /* jansson's malloc */
        }
    }
    json_decref(o);
    return rc;
}

static const char *signame(int sig)
{
    switch (sig) {
    case SIGKILL:
        return "SIGKILL";
    case SIGTERM:
        return "SIGTERM";
    case SIGSEGV:
        return "SIGSEGV";
    case SIGABRT:
        return "SIGABRT";
    case SIGPIPE:
        return "SIGPIPE";
    default:
        return "a signal";
    }
}

int vk_secret_provider_run(const struct vk_secret_provider *prov, int64_t timeout_ms,
                           const struct vk_secret_request *req, struct vk_secret_value *out,
                           struct vk_err *err)
{
    out->data = NULL;
    out->len = 0;
    char *request = NULL;
    size_t rlen = 0;
    struct vk_err e;
    vk_err_clear(&e);
    int rc = build_request(req, &request, &rlen, &e);
    if (rc)
        return vk_err_set(err, rc, "secret provider '%s': %s", prov->name, e.msg);

    /* A minimal environment: the provider finds its tools and its home, nothing else of
     * the server's (no tokens, no database URL). */
    char home[4200];
    const char *h = getenv("HOME");
    snprintf(home, sizeof(home), "HOME=%s", h && h[0] == '/' && strlen(h) < 4096 ? h : "/");
    char *envp[] = {"PATH=/usr/local/bin:/usr/bin:/bin", home, "LC_ALL=C", NULL};
    struct vk__secrets_cmd cmd = {.argv = prov->argv,
                                  .envp = envp,
                                  .in = request,
                                  .in_len = rlen,
                                  .in_fd = -1,
                                  .out_max = VK_SECRET_PROVIDER_MAX_OUTPUT,
                                  .err_max = VK_SECRET_PROVIDER_MAX_STDERR,
                                  .timeout_ms = timeout_ms};
    struct vk__secrets_result r;
    vk__secrets_result_init(&r, cmd.out_max, cmd.err_max);
    rc = vk__secrets_exec(&cmd, &r, &e);
    explicit_bzero(request, rlen);
    free(request);
    char excerpt[EXCERPT + 1];
    vk__secrets_excerpt(&r.err, EXCERPT, excerpt, sizeof(excerpt));
    const char *sep = excerpt[0] ? ": " : "";
    if (rc) {
        vk_err_set(err, rc, "secret provider '%s' %s%s%s", prov->name, e.msg, sep, excerpt);
    } else if (r.signal) {
        rc = vk_err_set(err, VK_EINVAL, "secret provider '%s' was killed by %s%s%s", prov->name,
                        signame(r.signal), sep, excerpt);
    } else if (r.status != 0) {
        rc = vk_err_set(err, VK_EINVAL, "secret provider '%s' failed with exit status %d%s%s",
                        prov->name, r.status, sep, excerpt);
    } else {
        rc = vk__secrets_parse_value(r.out.data, r.out.len, out, &e);
        if (rc)
            vk_err_set(err, rc, "secret provider '%s' %s", prov->name, e.msg);
    }
    vk__secrets_result_release(&r);
    return rc;
}

int vk_secret_providers_resolve(const struct vk_secret_providers *p, const char *name,
                                const struct vk_secret_request *req, struct vk_secret_value *out,
                                struct vk_err *err)
{
    out->data = NULL;
    out->len = 0;
    const struct vk_secret_provider *prov = vk_secret_providers_find(p, name);
    if (!prov)
        return vk_err_set(err, VK_ENOTFOUND,
                          "secret provider '%.64s' is not configured (--secret-provider "
                          "NAME=PATH on the server)",
                          name ? name : "");
    return vk_secret_provider_run(prov, p->timeout_ms, req, out, err);
}
