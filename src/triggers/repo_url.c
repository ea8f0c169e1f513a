/*
 * repo_url.c — normalise repository URLs so that the clone URL a webhook
 * carries and the URL a user registered compare equal whatever the transport:
 * "https://User:tok@GitHub.com:443/Owner/Repo.git/", "git@github.com:owner/repo"
 * and "ssh://git@github.com/owner/repo" all become "github.com/owner/repo".
 */
#include "triggers_int.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

struct out {
    char *p;
    size_t n, cap;
    bool overflow;
};

static void put(struct out *o, const char *s, size_t n, bool lower)
{
    for (size_t i = 0; i < n; i++) {
        if (o->n + 1 >= o->cap) {
            o->overflow = true;
            return;
        }
        char c = s[i];
        o->p[o->n++] = lower ? (char)tolower((unsigned char)c) : c;
    }
    o->p[o->n] = '\0';
}

/*
 * Append path[0..n) with a leading '/', repeated slashes folded, and then the
 * trailing slashes and one ".git" suffix removed. Fails on an empty path.
 */
static int put_path(struct out *o, const char *path, size_t n, bool lower)
{
    size_t start = o->n;
    bool slash = false;
    put(o, "/", 1, false);
    for (size_t i = 0; i < n; i++) {
        if (path[i] == '/') {
            slash = true;
            continue;
        }
        if (slash && o->n > start + 1)
            put(o, "/", 1, false);
        slash = false;
        put(o, path + i, 1, lower);
    }
    if (o->overflow)
        return VK_ETOOBIG;
    if (o->n >= start + 5 && strncasecmp(o->p + o->n - 4, ".git", 4) == 0 &&
        o->p[o->n - 5] != '/') {
        o->n -= 4;
        while (o->n > start + 1 && o->p[o->n - 1] == '/')
            o->n--;
    }
    o->p[o->n] = '\0';
    return o->n > start + 1 ? 0 : VK_EINVAL;
}

static int default_port(const char *scheme, size_t n, const char *port, size_t pn)
{
    static const struct {
        const char *scheme, *port;
    } defs[] = {{"http", "80"},  {"https", "443"},  {"ssh", "22"},
                {"git", "9418"}, {"git+ssh", "22"}, {"ssh+git", "22"}};
    for (size_t i = 0; i < VK_ARRAY_LEN(defs); i++)
        if (strlen(defs[i].scheme) == n && strncasecmp(defs[i].scheme, scheme, n) == 0)
            return strlen(defs[i].port) == pn && memcmp(defs[i].port, port, pn) == 0;
    return 0;
}

/* Append "host[:port]" from an authority without user info. */
static int put_host(struct out *o, const char *scheme, size_t sn, const char *h, size_t n)
{
    const char *port = NULL;
    size_t hn = n;
    if (n && h[0] == '[') {
        const char *close = memchr(h, ']', n);
        if (!close)
            return VK_EINVAL;
        hn = (size_t)(close - h) + 1;
        if (hn < n) {
            if (h[hn] != ':')
                return VK_EINVAL;
            port = h + hn + 1;
        }
    } else {
        const char *colon = memchr(h, ':', n);
        if (colon) {
            hn = (size_t)(colon - h);
            port = colon + 1;
        }
    }
    if (hn == 0)
        return VK_EINVAL;
    for (size_t i = 0; i < hn; i++)
        if (h[i] == '/' || h[i] == '@' || h[i] == '\\')
            return VK_EINVAL;
    put(o, h, hn, true);
    if (port) {
        size_t pn = n - (size_t)(port - h);
        for (size_t i = 0; i < pn; i++)
            if (port[i] < '0' || port[i] > '9')
                return VK_EINVAL;
        while (pn > 1 && port[0] == '0') {
            port++;
            pn--;
        }
        if (pn && !default_port(scheme, sn, port, pn)) {
            put(o, ":", 1, false);
            put(o, port, pn, false);
        }
    }
    return o->overflow ? VK_ETOOBIG : 0;
}

static bool scheme_known(const char *s, size_t n)
{
    static const char *const known[] = {"http", "https", "ssh", "git", "git+ssh", "ssh+git"};
    for (size_t i = 0; i < VK_ARRAY_LEN(known); i++)
        if (strlen(known[i]) == n && strncasecmp(known[i], s, n) == 0)
            return true;
    return false;
}

int vk_triggers_url_normalize(const char *url, char *out, size_t outsz)
{
    if (!url || !out || outsz == 0)
        return VK_EINVAL;
    out[0] = '\0';
    size_t len = strnlen(url, VK_TRIGGERS_MAX_URL + 1);
    if (len == 0)
        return VK_EINVAL;
    if (len > VK_TRIGGERS_MAX_URL)
        return VK_ETOOBIG;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)url[i] <= 0x20 || url[i] == 0x7f)
            return VK_EINVAL;
    struct out o = {out, 0, outsz, false};
    int rc;

    const char *sep = strstr(url, "://");
    if (sep) {
        size_t sn = (size_t)(sep - url);
        const char *rest = sep + 3;
        if (sn == 4 && strncasecmp(url, "file", 4) == 0) {
            /* file:///path or file://localhost/path */
            if (strncasecmp(rest, "localhost/", 10) == 0)
                rest += 9;
            if (rest[0] != '/')
                return VK_EINVAL;
            rc = put_path(&o, rest, strcspn(rest, "?#"), false);
            goto done;
        }
        if (!scheme_known(url, sn))
            return VK_EINVAL;
        size_t rn = strcspn(rest, "?#");
        size_t an = strcspn(rest, "/?#");
        if (an > rn)
            an = rn;
        const char *auth = rest;
        const char *at = NULL;
        for (size_t i = 0; i < an; i++)
            if (auth[i] == '@')
                at = auth + i;
        if (at) {
            an -= (size_t)(at + 1 - auth);
            auth = at + 1;
        }
        rc = put_host(&o, url, sn, auth, an);
        if (rc == 0)
            rc = put_path(&o, auth + an, rn - (size_t)(auth + an - rest), true);
        goto done;
    }
    if (url[0] == '/') {
        rc = put_path(&o, url, strcspn(url, "?#"), false);
        goto done;
    }
    /* scp-like: [user@]host:path — a '/' before the ':' makes it a relative path */
    {
        size_t colon = strcspn(url, ":/");
        const char *host = url;
        if (url[0] == '[') {
            const char *close = strchr(url, ']');
            if (!close || close[1] != ':')
                return VK_EINVAL;
            colon = (size_t)(close - url) + 1;
        } else {
            const char *at = memchr(url, '@', colon);
            if (url[colon] != ':')
                return VK_EINVAL;
            if (at)
                host = at + 1;
            /* user@[v6]:path */
            if (host[0] == '[') {
                const char *close = strchr(host, ']');
                if (!close || close[1] != ':')
                    return VK_EINVAL;
                colon = (size_t)(close - url) + 1;
            }
        }
        size_t hn = (size_t)(url + colon - host);
        if (hn == 0 || memchr(host, '@', hn))
            return VK_EINVAL;
        rc = put_host(&o, "ssh", 3, host, hn);
        if (rc == 0) {
            const char *path = url + colon + 1;
            rc = put_path(&o, path, strcspn(path, "?#"), true);
        }
    }
done:
    if (rc == 0 && o.overflow)
        rc = VK_ETOOBIG;
    if (rc < 0)
        out[0] = '\0';
    return rc;
}

bool vk_triggers_url_same(const char *a, const char *b)
{
    char na[VK_TRIGGERS_MAX_URL + 1], nb[VK_TRIGGERS_MAX_URL + 1];
    if (vk_triggers_url_normalize(a, na, sizeof(na)) < 0 ||
        vk_triggers_url_normalize(b, nb, sizeof(nb)) < 0)
        return false;
    return strcmp(na, nb) == 0;
}
