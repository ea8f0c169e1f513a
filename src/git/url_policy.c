/*
 * url_policy.c — which repository URLs the server may fetch (issue 14 item 1): a scheme
 * allow-list, a refusal of option-looking hosts and of remote-helper forms, and after DNS
 * resolution a refusal of every address that is not publicly routable (loopback,
 * link-local with the cloud metadata address, private, shared, unspecified, multicast,
 * reserved) unless it lies in a range the operator allowed.
 */
#include "git_int.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

/* ---------------------------------------------------------------- Configuration */

void vk_git_url_policy_init(struct vk_git_url_policy *p)
{
    memset(p, 0, sizeof(*p));
    p->schemes = VK_GIT_SCHEMES_DEFAULT;
}

static const struct {
    const char *name;
    unsigned bit;
} schemes[] = {
    {"https", VK_GIT_SCHEME_HTTPS}, {"ssh", VK_GIT_SCHEME_SSH},   {"http", VK_GIT_SCHEME_HTTP},
    {"git", VK_GIT_SCHEME_GIT},     {"file", VK_GIT_SCHEME_FILE},
};

int vk_git_url_policy_schemes(struct vk_git_url_policy *p, const char *csv, struct vk_err *err)
{
    unsigned set = 0;
    for (const char *s = csv ? csv : ""; *s;) {
        size_t n = strcspn(s, ",");
        size_t i = 0;
        while (i < VK_ARRAY_LEN(schemes) &&
               !(strlen(schemes[i].name) == n && strncasecmp(s, schemes[i].name, n) == 0))
            i++;
        if (n && i == VK_ARRAY_LEN(schemes))
            return vk_err_set(err, VK_EINVAL,
                              "unknown repository scheme '%.*s' (https, ssh, http, git, file)",
                              (int)(n > 32 ? 32 : n), s);
        if (n)
            set |= schemes[i].bit;
        s += n + (s[n] == ',');
    }
    if (!set)
        return vk_err_set(err, VK_EINVAL, "no repository scheme allowed");
    p->schemes = set;
    return 0;
}

static bool parse_cidr(const char *s, size_t n, struct vk_git_cidr *c)
{
    char buf[INET6_ADDRSTRLEN + 8];
    if (n == 0 || n >= sizeof(buf))
        return false;
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *slash = strchr(buf, '/');
    long bits = -1;
    if (slash) {
        *slash = '\0';
        char *end;
        if (!isdigit((unsigned char)slash[1]))
            return false;
        bits = strtol(slash + 1, &end, 10);
        if (*end)
            return false;
    }
    memset(c, 0, sizeof(*c));
    if (inet_pton(AF_INET, buf, c->addr) == 1) {
        c->family = AF_INET;
        if (bits < 0)
            bits = 32;
        if (bits > 32)
            return false;
    } else if (inet_pton(AF_INET6, buf, c->addr) == 1) {
        c->family = AF_INET6;
        if (bits < 0)
            bits = 128;
        if (bits > 128)
            return false;
    } else {
        return false;
    }
    c->bits = (unsigned)bits;
    return true;
}

int vk_git_url_policy_ranges(struct vk_git_url_policy *p, const char *csv, struct vk_err *err)
{
    if (!csv)
        return 0;
    for (const char *s = csv; *s;) {
        while (*s == ' ')
            s++;
        size_t n = strcspn(s, ", ");
        if (n) {
            if (p->nranges == VK_GIT_MAX_RANGES)
                return vk_err_set(err, VK_ETOOBIG, "more than %d allowed repository host ranges",
                                  VK_GIT_MAX_RANGES);
            if (!parse_cidr(s, n, &p->ranges[p->nranges]))
                return vk_err_set(err, VK_EINVAL,
                                  "'%.*s' is not an address range such as 10.1.0.0/16 or fd00::/8",
                                  (int)(n > 64 ? 64 : n), s);
            p->nranges++;
        }
        s += n;
        while (*s == ',' || *s == ' ')
            s++;
    }
    return 0;
}

/* ---------------------------------------------------------------- Addresses */

static bool in_prefix(const unsigned char *a, const unsigned char *net, unsigned bits)
{
    unsigned full = bits / 8, rest = bits % 8;
    if (memcmp(a, net, full) != 0)
        return false;
    if (!rest)
        return true;
    unsigned char mask = (unsigned char)(0xff << (8 - rest));
    return (a[full] & mask) == (net[full] & mask);
}

/* Why the IPv4 address `a` (network order bytes) is not public, or NULL. */
static const char *v4_class(const unsigned char *a)
{
    static const struct {
        unsigned char net[4];
        unsigned bits;
        const char *why;
    } v4[] = {
        {{0, 0, 0, 0}, 8, "unspecified"},      {{10, 0, 0, 0}, 8, "private"},
        {{100, 64, 0, 0}, 10, "shared (CGN)"}, {{127, 0, 0, 0}, 8, "loopback"},
        {{169, 254, 0, 0}, 16, "link-local"},  {{172, 16, 0, 0}, 12, "private"},
        {{192, 0, 0, 0}, 24, "reserved"},      {{192, 168, 0, 0}, 16, "private"},
        {{198, 18, 0, 0}, 15, "reserved"},     {{224, 0, 0, 0}, 4, "multicast"},
        {{240, 0, 0, 0}, 4, "reserved"},
    };
    for (size_t i = 0; i < VK_ARRAY_LEN(v4); i++)
        if (in_prefix(a, v4[i].net, v4[i].bits))
            return v4[i].why;
    return NULL;
}

/* Why the IPv6 address `a` is not public, or NULL; embedded IPv4 addresses are judged as
 * IPv4. */
static const char *v6_class(const unsigned char *a)
{
    static const unsigned char zero[16] = {0};
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    static const unsigned char nat64[12] = {0, 0x64, 0xff, 0x9b};
    if (memcmp(a, zero, 15) == 0)
        return a[15] == 1 ? "loopback" : a[15] == 0 ? "unspecified" : "reserved";
    if (memcmp(a, mapped, 12) == 0 || memcmp(a, nat64, 12) == 0 || memcmp(a, zero, 12) == 0) {
        const char *w = v4_class(a + 12);
        return w ? w : NULL;
    }
    if (a[0] == 0x20 && a[1] == 0x02) /* 6to4: 2002:V4ADDR::/48 */
        return v4_class(a + 2);
    if (a[0] == 0xfe && (a[1] & 0xc0) == 0x80)
        return "link-local";
    if (a[0] == 0xfe && (a[1] & 0xc0) == 0xc0)
        return "site-local";
    if ((a[0] & 0xfe) == 0xfc)
        return "private (unique local)";
    if (a[0] == 0xff)
        return "multicast";
    return NULL;
}

static bool in_ranges(const struct vk_git_url_policy *p, int family, const unsigned char *a)
{
    for (size_t i = 0; i < p->nranges; i++)
        if (p->ranges[i].family == family && in_prefix(a, p->ranges[i].addr, p->ranges[i].bits))
            return true;
    return false;
}

const char *vk_git_addr_refused(const struct vk_git_url_policy *p, const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const unsigned char *a = (const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr;
        const char *why = v4_class(a);
        return why && !in_ranges(p, AF_INET, a) ? why : NULL;
    }
    if (sa->sa_family == AF_INET6) {
        const unsigned char *a =
            (const unsigned char *)&((const struct sockaddr_in6 *)sa)->sin6_addr;
        const char *why = v6_class(a);
        if (!why || in_ranges(p, AF_INET6, a))
            return NULL;
        /* an embedded IPv4 address may be allowed as IPv4 */
        static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(a, mapped, 12) == 0 && in_ranges(p, AF_INET, a + 12))
            return NULL;
        return why;
    }
    return "not an internet";
}

/* ---------------------------------------------------------------- URLs */

static bool host_char(char c)
{
    return isalnum((unsigned char)c) || c == '-' || c == '.' || c == '_';
}

/* Copy the host of `s` (n bytes, possibly "[v6]") to t->host; false when not a host. */
static bool take_host(const char *s, size_t n, struct vk_git_url_target *t)
{
    if (n >= 2 && s[0] == '[' && s[n - 1] == ']') {
        s++;
        n -= 2;
        for (size_t i = 0; i < n; i++)
            if (!isxdigit((unsigned char)s[i]) && s[i] != ':' && s[i] != '.')
                return false;
    } else {
        for (size_t i = 0; i < n; i++)
            if (!host_char(s[i]))
                return false;
    }
    if (n == 0 || n >= sizeof(t->host) || s[0] == '-' || s[0] == '.')
        return false;
    memcpy(t->host, s, n);
    t->host[n] = '\0';
    /* one trailing dot ("localhost.") names the same host */
    if (n > 1 && t->host[n - 1] == '.')
        t->host[n - 1] = '\0';
    return true;
}

static int refuse(struct vk_err *err, const char *why)
{
    return vk_err_set(err, VK_EPERM, "the repository URL is not allowed: %s", why);
}

/* Split `url` into scheme, host and port. */
static int parse(const char *url, struct vk_git_url_target *t, struct vk_err *err)
{
    memset(t, 0, sizeof(*t));
    if (!vk_git_valid_url(url))
        return refuse(err, "not a usable URL (no options, spaces or '<transport>::' forms)");
    const char *sep = strstr(url, "://");
    const char *rest;
    if (sep) {
        size_t n = (size_t)(sep - url);
        static const struct {
            const char *name;
            unsigned bit;
            unsigned port;
        } known[] = {{"https", VK_GIT_SCHEME_HTTPS, 443}, {"http", VK_GIT_SCHEME_HTTP, 80},
                     {"ssh", VK_GIT_SCHEME_SSH, 22},      {"git+ssh", VK_GIT_SCHEME_SSH, 22},
                     {"ssh+git", VK_GIT_SCHEME_SSH, 22},  {"git", VK_GIT_SCHEME_GIT, 9418},
                     {"file", VK_GIT_SCHEME_FILE, 0}};
        size_t i = 0;
        while (i < VK_ARRAY_LEN(known) &&
               !(strlen(known[i].name) == n && strncasecmp(url, known[i].name, n) == 0))
            i++;
        if (i == VK_ARRAY_LEN(known))
            return refuse(err, "unknown scheme (https, ssh, http, git or file)");
        t->scheme = known[i].bit;
        t->port = known[i].port;
        rest = sep + 3;
        if (t->scheme == VK_GIT_SCHEME_FILE)
            return 0;
        size_t auth = strcspn(rest, "/?#");
        const char *at = NULL; /* the last '@' ends the user information */
        for (size_t k = 0; k < auth; k++)
            if (rest[k] == '@')
                at = rest + k;
        if (at && rest[0] == '-')
            return refuse(err, "the user name looks like an option");
        const char *h = at ? at + 1 : rest;
        size_t hn = auth - (size_t)(h - rest);
        const char *colon = NULL;
        if (hn && h[0] == '[') {
            const char *close = memchr(h, ']', hn);
            if (!close)
                return refuse(err, "a malformed host");
            if (close + 1 < h + hn) {
                if (close[1] != ':')
                    return refuse(err, "a malformed host");
                colon = close + 1;
            }
        } else {
            colon = memchr(h, ':', hn);
        }
        size_t name_n = colon ? (size_t)(colon - h) : hn;
        if (!take_host(h, name_n, t))
            return refuse(err, "the host is missing or looks like an option");
        if (colon) {
            size_t pn = hn - name_n - 1;
            unsigned long port = 0;
            for (size_t k = 0; k < pn; k++) {
                if (!isdigit((unsigned char)colon[1 + k]) || k >= 5)
                    return refuse(err, "a malformed port");
                port = port * 10 + (unsigned long)(colon[1 + k] - '0');
            }
            if (pn && (port == 0 || port > 65535))
                return refuse(err, "a malformed port");
            if (pn)
                t->port = (unsigned)port;
        }
        return 0;
    }
    /* scp-like "[user@]host:path" (a ':' before any '/'), else a local path */
    size_t colon = strcspn(url, ":/");
    if (url[colon] == ':') {
        t->scheme = VK_GIT_SCHEME_SSH;
        t->port = 22;
        const char *at = memchr(url, '@', colon);
        const char *h = at ? at + 1 : url;
        if (!take_host(h, colon - (size_t)(h - url), t))
            return refuse(err, "the host is missing or looks like an option");
        return 0;
    }
    t->scheme = VK_GIT_SCHEME_FILE;
    return 0;
}

static bool scheme_allowed(const struct vk_git_url_policy *p, unsigned scheme)
{
    unsigned set = p->schemes ? p->schemes : VK_GIT_SCHEMES_DEFAULT;
    return (set & scheme) != 0;
}

static const char *scheme_name(unsigned scheme)
{
    for (size_t i = 0; i < VK_ARRAY_LEN(schemes); i++)
        if (schemes[i].bit == scheme)
            return schemes[i].name;
    return "?";
}

/* Judge a literal address or a reserved name without resolving anything. */
static int check_literal(const struct vk_git_url_policy *p, struct vk_git_url_target *t,
                         bool *literal, struct vk_err *err)
{
    struct sockaddr_in6 s6 = {.sin6_family = AF_INET6};
    struct sockaddr_in s4 = {.sin_family = AF_INET};
    const char *why = NULL;
    char msg[160];
    *literal = true;
    /* inet_aton also takes "127.1", "0x7f000001" and "2130706433", as resolvers do */
    if (inet_aton(t->host, &s4.sin_addr) == 1) {
        why = vk_git_addr_refused(p, (struct sockaddr *)&s4);
        inet_ntop(AF_INET, &s4.sin_addr, t->addr, sizeof(t->addr));
    } else if (inet_pton(AF_INET6, t->host, &s6.sin6_addr) == 1) {
        why = vk_git_addr_refused(p, (struct sockaddr *)&s6);
        inet_ntop(AF_INET6, &s6.sin6_addr, t->addr, sizeof(t->addr));
    } else {
        *literal = false;
        size_t n = strlen(t->host);
        /* RFC 6761: localhost and its subdomains are loopback, whatever DNS says */
        if (strcasecmp(t->host, "localhost") == 0 ||
            (n > 10 && strcasecmp(t->host + n - 10, ".localhost") == 0)) {
            s4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            why = vk_git_addr_refused(p, (struct sockaddr *)&s4);
        }
    }
    if (!why)
        return 0;
    t->addr[0] = '\0';
    snprintf(msg, sizeof(msg), "the host is a %s address (see --allow-repo-hosts)", why);
    return refuse(err, msg);
}

int vk_git_url_check_static(const struct vk_git_url_policy *p, const char *url,
                            struct vk_git_url_target *t, struct vk_err *err)
{
    int rc = parse(url, t, err);
    if (rc)
        return rc;
    if (!scheme_allowed(p, t->scheme)) {
        char msg[160];
        if (t->scheme == VK_GIT_SCHEME_FILE)
            snprintf(msg, sizeof(msg), "local repositories need --allow-file-repos");
        else
            snprintf(msg, sizeof(msg), "the %s scheme is not allowed (see --repo-schemes)",
                     scheme_name(t->scheme));
        return refuse(err, msg);
    }
    if (t->scheme == VK_GIT_SCHEME_FILE)
        return 0;
    bool literal;
    return check_literal(p, t, &literal, err);
}

int vk_git_url_check(const struct vk_git_url_policy *p, const char *url,
                     struct vk_git_url_target *t, struct vk_err *err)
{
    int rc = vk_git_url_check_static(p, url, t, err);
    if (rc || t->scheme == VK_GIT_SCHEME_FILE || t->addr[0])
        return rc; /* refused, local, or a literal address already judged */
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int gai = getaddrinfo(t->host, NULL, &hints, &res);
    if (gai != 0 || !res)
        return vk_err_set(err, VK_EIO, "cannot resolve the repository host '%s': %s", t->host,
                          gai_strerror(gai));
    /* every address must be allowed: the resolver's order is not ours to trust */
    const char *why = NULL;
    for (struct addrinfo *ai = res; ai && !why; ai = ai->ai_next) {
        why = vk_git_addr_refused(p, ai->ai_addr);
        if (!why && !t->addr[0]) {
            const void *a = ai->ai_family == AF_INET
                                ? (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr
                                : (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
            inet_ntop(ai->ai_family, a, t->addr, sizeof(t->addr));
        }
    }
    freeaddrinfo(res);
    if (why) {
        t->addr[0] = '\0';
        char msg[160];
        snprintf(msg, sizeof(msg), "the host resolves to a %s address (see --allow-repo-hosts)",
                 why);
        return refuse(err, msg);
    }
    return 0;
}
