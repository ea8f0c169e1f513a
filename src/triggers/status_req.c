/*
 * status_req.c — the commit-status request of each provider (pure functions, no I/O):
 * the API base URL, the repository's path at the provider, and the path, headers and
 * JSON body of the POST (docs/triggers.md, "Commit statuses").
 *
 *   GitHub     POST /repos/{owner}/{repo}/statuses/{sha}        Authorization: Bearer
 *   GitLab     POST /projects/{url-encoded path}/statuses/{sha} PRIVATE-TOKEN
 *   Gitea      POST /repos/{owner}/{repo}/statuses/{sha}        Authorization: token
 *   Bitbucket  POST /repositories/{ws}/{slug}/commit/{sha}/statuses/build  Bearer
 */
#include "triggers_int.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#ifndef VK_VERSION
#define VK_VERSION "0.0.0"
#endif

/* The parts of a repository URL that the status APIs need (case kept). */
struct url_parts {
    bool http;        /* http:// or https:// (the API is on the same origin) */
    char origin[512]; /* "https://host[:port]" for http(s), "https://host" else, or "" */
    const char *path; /* into the URL: the path without its leading slashes */
    size_t path_len;  /* without trailing slashes and ".git" */
};

static bool host_ok(const char *h, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strchr("/?#\\@%", h[i]))
            return false;
    return true;
}

static int split_url(const char *url, struct url_parts *u, struct vk_err *err)
{
    memset(u, 0, sizeof(*u));
    size_t len = url ? strnlen(url, VK_TRIGGERS_MAX_URL + 1) : 0;
    if (len == 0 || len > VK_TRIGGERS_MAX_URL)
        return vk_err_set(err, VK_EINVAL, "bad repository url");
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)url[i] <= 0x20 || url[i] == 0x7f)
            return vk_err_set(err, VK_EINVAL, "bad repository url");
    const char *host = NULL, *path = NULL;
    size_t host_len = 0;
    bool keep_port = false;
    const char *sep = strstr(url, "://");
    if (sep) {
        size_t sn = (size_t)(sep - url);
        const char *auth = sep + 3;
        path = strchr(auth, '/');
        if (!path)
            return vk_err_set(err, VK_EINVAL, "repository url '%s' has no path", url);
        const char *at = memchr(auth, '@', (size_t)(path - auth));
        host = at ? at + 1 : auth;
        host_len = (size_t)(path - host);
        if (!host_ok(host, host_len))
            return vk_err_set(err, VK_EINVAL, "bad repository url host");
        u->http = (sn == 4 && strncasecmp(url, "http", 4) == 0) ||
                  (sn == 5 && strncasecmp(url, "https", 5) == 0);
        keep_port = u->http;
        if (u->http) {
            if (host_len == 0 ||
                (size_t)snprintf(u->origin, sizeof(u->origin), "%.*s%.*s", (int)(sn + 3), url,
                                 (int)host_len, host) >= sizeof(u->origin))
                return vk_err_set(err, VK_EINVAL, "bad repository url host");
            host = NULL; /* done */
        }
    } else if (url[0] == '/') {
        path = url;
    } else {
        /* scp-like [user@]host:path */
        const char *colon = strchr(url, ':');
        const char *slash = strchr(url, '/');
        if (!colon || (slash && slash < colon))
            return vk_err_set(err, VK_EINVAL, "bad repository url '%s'", url);
        const char *at = memchr(url, '@', (size_t)(colon - url));
        host = at ? at + 1 : url;
        host_len = (size_t)(colon - host);
        path = colon + 1;
        if (!host_ok(host, host_len))
            return vk_err_set(err, VK_EINVAL, "bad repository url host");
    }
    if (host && host_len) {
        size_t hn = host_len;
        const char *colon = host[0] == '[' ? NULL : memchr(host, ':', host_len);
        if (colon && !keep_port)
            hn = (size_t)(colon - host);
        if ((size_t)snprintf(u->origin, sizeof(u->origin), "https://%.*s", (int)hn, host) >=
            sizeof(u->origin))
            return vk_err_set(err, VK_EINVAL, "bad repository url host");
    }
    while (*path == '/')
        path++;
    size_t pn = strcspn(path, "?#");
    while (pn > 0 && path[pn - 1] == '/')
        pn--;
    if (pn > 4 && strncasecmp(path + pn - 4, ".git", 4) == 0)
        pn -= 4;
    while (pn > 0 && path[pn - 1] == '/')
        pn--;
    u->path = path;
    u->path_len = pn;
    return 0;
}

static bool seg_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '~' || c == '-';
}

/* Check the segments of p[0..n) (folding repeated slashes) into out; count them. */
static int clean_path(const char *p, size_t n, char *out, size_t outn, size_t *nseg,
                      struct vk_err *err)
{
    size_t o = 0, segs = 0, seg_start = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && p[i] != '/') {
            if (!seg_char(p[i]))
                return vk_err_set(err, VK_EINVAL,
                                  "the repository path may hold only letters, digits and . _ ~ -");
            if (o + 2 >= outn)
                return vk_err_set(err, VK_ETOOBIG, "the repository path is too long");
            out[o++] = p[i];
            continue;
        }
        if (o == seg_start) /* empty segment: a repeated slash */
            continue;
        size_t sl = o - seg_start;
        if ((sl == 1 && out[seg_start] == '.') ||
            (sl == 2 && out[seg_start] == '.' && out[seg_start + 1] == '.'))
            return vk_err_set(err, VK_EINVAL, "the repository path has a '.' or '..' segment");
        segs++;
        if (i < n)
            out[o++] = '/';
        seg_start = o;
    }
    while (o > 0 && out[o - 1] == '/')
        o--;
    out[o] = '\0';
    *nseg = segs;
    return 0;
}

int vk_triggers_status_repo_path(enum vk_triggers_provider p, const char *repo_url, char *out,
                                 size_t n, struct vk_err *err)
{
    struct url_parts u;
    int rc = split_url(repo_url, &u, err);
    if (rc)
        return rc;
    char clean[VK_TRIGGERS_MAX_URL + 1];
    size_t segs = 0;
    rc = clean_path(u.path, u.path_len, clean, sizeof(clean), &segs, err);
    if (rc)
        return rc;
    if (segs < 2)
        return vk_err_set(err, VK_EINVAL, "repository url '%s' does not name owner/repo", repo_url);
    const char *start = clean;
    if (p != VK_TRIGGERS_GITLAB) { /* the last two segments */
        const char *last = strrchr(clean, '/');
        start = last - 1;
        while (start > clean && start[-1] != '/')
            start--;
    }
    if (strlen(start) >= n)
        return vk_err_set(err, VK_ETOOBIG, "the repository path is too long");
    memcpy(out, start, strlen(start) + 1);
    return 0;
}

int vk_triggers_status_api_url(enum vk_triggers_provider p, const char *repo_url, char *out,
                               size_t n, struct vk_err *err)
{
    const char *fixed = p == VK_TRIGGERS_GITHUB      ? "https://api.github.com"
                        : p == VK_TRIGGERS_GITLAB    ? "https://gitlab.com/api/v4"
                        : p == VK_TRIGGERS_BITBUCKET ? "https://api.bitbucket.org/2.0"
                                                     : NULL;
    if (fixed) {
        if (strlen(fixed) >= n)
            return vk_err_set(err, VK_ETOOBIG, "no room for the API URL");
        memcpy(out, fixed, strlen(fixed) + 1);
        return 0;
    }
    if (p != VK_TRIGGERS_GITEA)
        return vk_err_set(err, VK_EINVAL, "provider '%s' has no commit status API",
                          vk_triggers_provider_name(p));
    struct url_parts u;
    int rc = split_url(repo_url, &u, err);
    if (rc)
        return rc;
    if (!u.origin[0])
        return vk_err_set(err, VK_EINVAL,
                          "cannot derive the Gitea API URL from '%s': set status_api_url",
                          repo_url);
    /* A Gitea served under a sub-path (https://host/git/owner/repo): keep the prefix. */
    size_t prefix = 0;
    if (u.http) {
        size_t slashes = 0;
        for (size_t i = u.path_len; i > 0; i--)
            if (u.path[i - 1] == '/' && ++slashes == 2) {
                prefix = i - 1;
                break;
            }
    }
    if ((size_t)snprintf(out, n, "%s%s%.*s/api/v1", u.origin, prefix ? "/" : "", (int)prefix,
                         u.path) >= n)
        return vk_err_set(err, VK_ETOOBIG, "no room for the API URL");
    return 0;
}

int64_t vk_triggers_status_backoff(int64_t base_ms, int attempt)
{
    int64_t d = base_ms > 0 ? base_ms : 1;
    for (int i = 1; i < attempt && d < VK_TRIGGERS_STATUS_MAX_BACKOFF_MS; i++)
        d *= 2;
    return d < VK_TRIGGERS_STATUS_MAX_BACKOFF_MS ? d : VK_TRIGGERS_STATUS_MAX_BACKOFF_MS;
}

/* ---------------------------------------------------------------- Building */

/* Copy at most `max` bytes of `s` into out (max + 1 bytes), cut at a UTF-8 boundary and
 * with control characters replaced by spaces. */
static void cut_text(const char *s, size_t max, char *out)
{
    size_t o = 0, n = s ? strlen(s) : 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp = 0;
        size_t k = vk_utf8_decode((const unsigned char *)s + i, n - i, &cp);
        if (k == 0) { /* not UTF-8: one byte becomes '?' */
            k = 1;
            cp = '?';
        }
        if (o + k > max)
            break;
        if (cp < 0x20 || cp == 0x7f) {
            out[o++] = ' ';
        } else if (k == 1) {
            out[o++] = (char)cp;
        } else {
            memcpy(out + o, s + i, k);
            o += k;
        }
        i += k;
    }
    out[o] = '\0';
}

static const char *state_of(enum vk_triggers_provider p, enum vk_store_chain_status st)
{
    /* pending, running, completed, failed, cancelled */
    static const char *const github[] = {"pending", "pending", "success", "failure", "error"};
    static const char *const gitlab[] = {"pending", "running", "success", "failed", "canceled"};
    static const char *const bitbucket[] = {"INPROGRESS", "INPROGRESS", "SUCCESSFUL", "FAILED",
                                            "STOPPED"};
    if ((unsigned)st > VK_STORE_CHAIN_CANCELLED)
        return NULL;
    switch (p) {
    case VK_TRIGGERS_GITHUB:
    case VK_TRIGGERS_GITEA: /* Gitea's states are GitHub's (and "warning") */
        return github[st];
    case VK_TRIGGERS_GITLAB:
        return gitlab[st];
    case VK_TRIGGERS_BITBUCKET:
        return bitbucket[st];
    case VK_TRIGGERS_GENERIC:
        break;
    }
    return NULL;
}

static void add_header(struct vk_triggers_status_req *r, const char *name, const char *fmt,
                       const char *arg)
{
    VK_ASSERT(r->nheaders < VK_ARRAY_LEN(r->header_names));
    r->header_names[r->nheaders] = name;
    snprintf(r->header_values[r->nheaders], sizeof(r->header_values[0]), fmt, arg);
    r->nheaders++;
}

static bool valid_sha(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n != 40 && n != 64)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

/* The Bitbucket key: "vulcan-<name>", or when longer than 40 bytes its first 31 bytes and
 * 8 hex digits of the name's SHA-256, so that long names stay distinct. */
static int bitbucket_key(const char *name, char out[VK_TRIGGERS_STATUS_MAX_KEY + 1])
{
    char full[VK_TRIGGERS_STATUS_MAX_NAME + 16];
    snprintf(full, sizeof(full), "vulcan-%s", name);
    if (strlen(full) <= VK_TRIGGERS_STATUS_MAX_KEY) {
        memcpy(out, full, strlen(full) + 1);
        return 0;
    }
    char hex[VK_SHA256_HEX_LEN];
    int rc = vk_sha256_hex(name, strlen(name), hex);
    if (rc)
        return rc;
    char head[32];
    cut_text(full, 31, head);
    snprintf(out, VK_TRIGGERS_STATUS_MAX_KEY + 1, "%s-%.8s", head, hex);
    return 0;
}

static int check_token(const char *t, struct vk_err *err)
{
    size_t n = t ? strnlen(t, VK_TRIGGERS_STATUS_MAX_TOKEN + 1) : 0;
    if (n == 0)
        return vk_err_set(err, VK_EINVAL, "no status token");
    if (n > VK_TRIGGERS_STATUS_MAX_TOKEN)
        return vk_err_set(err, VK_ETOOBIG, "the status token is longer than %d bytes",
                          VK_TRIGGERS_STATUS_MAX_TOKEN);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)t[i] < 0x21 || t[i] == 0x7f)
            return vk_err_set(err, VK_EINVAL, "the status token has a space or control character");
    return 0;
}

int vk_triggers_status_build(const struct vk_triggers_status *st,
                             struct vk_triggers_status_req *out, struct vk_err *err)
{
    memset(out, 0, sizeof(*out));
    const char *state = state_of(st->provider, st->status);
    if (!state)
        return vk_err_set(err, VK_EINVAL, "provider '%s' has no commit status API",
                          vk_triggers_provider_name(st->provider));
    if (!valid_sha(st->sha))
        return vk_err_set(err, VK_EINVAL, "'%s' is not a commit id", st->sha ? st->sha : "");
    int rc = check_token(st->token, err);
    if (rc)
        return rc;
    if (st->api_url && *st->api_url) {
        size_t n = strlen(st->api_url);
        while (n > 0 && st->api_url[n - 1] == '/')
            n--;
        if (n >= sizeof(out->base))
            return vk_err_set(err, VK_ETOOBIG, "the status API URL is too long");
        memcpy(out->base, st->api_url, n);
        out->base[n] = '\0';
    } else {
        rc = vk_triggers_status_api_url(st->provider, st->repo_url, out->base, sizeof(out->base),
                                        err);
        if (rc)
            return rc;
    }
    char repo[VK_TRIGGERS_MAX_URL + 1];
    rc = vk_triggers_status_repo_path(st->provider, st->repo_url, repo, sizeof(repo), err);
    if (rc)
        return rc;
    char name[VK_TRIGGERS_STATUS_MAX_NAME + 16], wf[VK_TRIGGERS_STATUS_MAX_NAME + 1];
    char desc[VK_TRIGGERS_STATUS_MAX_DESC + 1];
    cut_text(st->workflow && *st->workflow ? st->workflow : "chain",
             VK_TRIGGERS_STATUS_MAX_NAME - 7, wf);
    snprintf(name, sizeof(name), "vulcan/%s", wf);
    cut_text(st->description, VK_TRIGGERS_STATUS_MAX_DESC, desc);
    const char *target = st->target_url && *st->target_url ? st->target_url : NULL;

    json_t *body = json_object();
    int bad = body ? 0 : -1;
    size_t plen = 0;
    switch (st->provider) {
    case VK_TRIGGERS_GITHUB:
    case VK_TRIGGERS_GITEA:
        plen =
            (size_t)snprintf(out->path, sizeof(out->path), "/repos/%s/statuses/%s", repo, st->sha);
        bad |= json_object_set_new(body, "context", json_string(name));
        break;
    case VK_TRIGGERS_GITLAB: {
        char enc[3 * sizeof(repo)];
        size_t o = 0;
        for (const char *c = repo; *c && o + 4 < sizeof(enc); c++) {
            if (*c == '/') {
                memcpy(enc + o, "%2F", 3);
                o += 3;
            } else {
                enc[o++] = *c;
            }
        }
        enc[o] = '\0';
        plen = (size_t)snprintf(out->path, sizeof(out->path), "/projects/%s/statuses/%s", enc,
                                st->sha);
        bad |= json_object_set_new(body, "name", json_string(name));
        break;
    }
    case VK_TRIGGERS_BITBUCKET: {
        char key[VK_TRIGGERS_STATUS_MAX_KEY + 1];
        if (bitbucket_key(wf, key) != 0)
            bad = -1;
        plen = (size_t)snprintf(out->path, sizeof(out->path),
                                "/repositories/%s/commit/%s/statuses/build", repo, st->sha);
        bad |= json_object_set_new(body, "key", json_string(key));
        bad |= json_object_set_new(body, "name", json_string(name));
        break;
    }
    case VK_TRIGGERS_GENERIC:
        break;
    }
    if (plen >= sizeof(out->path)) {
        json_decref(body);
        return vk_err_set(err, VK_ETOOBIG, "the status path is too long");
    }
    bad |= json_object_set_new(body, "state", json_string(state));
    bad |= json_object_set_new(body, "description", json_string(desc));
    if (target)
        bad |=
            json_object_set_new(body, st->provider == VK_TRIGGERS_BITBUCKET ? "url" : "target_url",
                                json_string(target));
    if (!bad)
        out->body = json_dumps(body, JSON_COMPACT | JSON_SORT_KEYS);
    json_decref(body);
    if (!out->body)
        return vk_err_set(err, VK_ENOMEM, "out of memory");

    switch (st->provider) {
    case VK_TRIGGERS_GITHUB:
        add_header(out, "Authorization", "Bearer %s", st->token);
        add_header(out, "Accept", "%s", "application/vnd.github+json");
        add_header(out, "X-GitHub-Api-Version", "%s", "2022-11-28");
        break;
    case VK_TRIGGERS_GITLAB:
        add_header(out, "PRIVATE-TOKEN", "%s", st->token);
        break;
    case VK_TRIGGERS_GITEA:
        add_header(out, "Authorization", "token %s", st->token);
        break;
    case VK_TRIGGERS_BITBUCKET:
        add_header(out, "Authorization", "Bearer %s", st->token);
        break;
    case VK_TRIGGERS_GENERIC:
        break;
    }
    add_header(out, "User-Agent", "%s", "vulcan-ci/" VK_VERSION);
    return 0;
}

void vk_triggers_status_req_release(struct vk_triggers_status_req *req)
{
    if (!req)
        return;
    free(req->body);
    req->body = NULL;
}
