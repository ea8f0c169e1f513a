/*
 * The outputs file of a fragment ($VULCAN_OUTPUT): `NAME=VALUE` lines and the heredoc form
 * `NAME<<DELIM` … `DELIM`, as GitHub Actions' $GITHUB_OUTPUT. Shared by the worker (which
 * parses the file) and the server (which checks the names and sizes a worker sends again).
 */
#include "vulcan/util.h"

#include <stdio.h>
#include <string.h>

bool vk_output_name_ok(const char *name, size_t len)
{
    if (len == 0 || len > VK_OUTPUTS_MAX_NAME || (name[0] >= '0' && name[0] <= '9'))
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return false;
    }
    return true;
}

/* The next line of data[*at..len) without its "\n" / "\r\n"; false at the end. */
static bool next_line(const char *data, size_t len, size_t *at, const char **line, size_t *n)
{
    if (*at >= len)
        return false;
    const char *p = data + *at;
    const char *nl = memchr(p, '\n', len - *at);
    size_t k = nl ? (size_t)(nl - p) : len - *at;
    *at += k + (nl ? 1 : 0);
    if (k && p[k - 1] == '\r')
        k--;
    *line = p;
    *n = k;
    return true;
}

static int set(struct vk_pool *pool, struct vk_output **out, size_t *n, size_t *cap,
               const char *name, size_t nlen, const char *value, size_t vlen, unsigned lineno,
               char *why, size_t why_size)
{
    if (vlen > VK_OUTPUTS_MAX_VALUE) {
        snprintf(why, why_size, "line %u: the value of '%.*s' holds more than %u KiB", lineno,
                 (int)nlen, name, VK_OUTPUTS_MAX_VALUE >> 10);
        return VK_ETOOBIG;
    }
    char *v = vk_pool_strndup(pool, value, vlen);
    if (!v)
        return VK_ENOMEM;
    for (size_t i = 0; i < *n; i++)
        if (strlen((*out)[i].name) == nlen && memcmp((*out)[i].name, name, nlen) == 0) {
            (*out)[i].value = v; /* a later NAME wins */
            return 0;
        }
    if (*n >= VK_OUTPUTS_MAX_COUNT) {
        snprintf(why, why_size, "line %u: more than %d outputs", lineno, VK_OUTPUTS_MAX_COUNT);
        return VK_ETOOBIG;
    }
    if (vk_array_pool_grow(pool, out, cap, *n + 1, 16, sizeof(**out)) < 0)
        return VK_ENOMEM;
    (*out)[*n].name = vk_pool_strndup(pool, name, nlen);
    (*out)[*n].value = v;
    if (!(*out)[*n].name)
        return VK_ENOMEM;
    (*n)++;
    return 0;
}

int vk_outputs_parse(const char *data, size_t len, struct vk_pool *pool, struct vk_output **out,
                     size_t *n, char *why, size_t why_size)
{
    *out = NULL;
    *n = 0;
    why[0] = '\0';
    if (len > VK_OUTPUTS_MAX_BYTES) {
        snprintf(why, why_size, "the file holds more than %u KiB", VK_OUTPUTS_MAX_BYTES >> 10);
        return VK_ETOOBIG;
    }
    if (memchr(data, '\0', len)) {
        snprintf(why, why_size, "the file holds a NUL byte");
        return VK_EINVAL;
    }
    size_t at = 0, cap = 0, k;
    unsigned lineno = 0;
    const char *line;
    while (next_line(data, len, &at, &line, &k)) {
        lineno++;
        if (k == 0)
            continue;
        const char *eq = memchr(line, '=', k);
        const char *hd = NULL;
        for (size_t i = 0; i + 1 < k && !hd; i++)
            if (line[i] == '<' && line[i + 1] == '<')
                hd = line + i;
        if (hd && (!eq || hd < eq)) {
            size_t nlen = (size_t)(hd - line), dlen = k - nlen - 2;
            const char *delim = hd + 2;
            if (!vk_output_name_ok(line, nlen) || dlen == 0) {
                snprintf(why, why_size,
                         "line %u: expected NAME<<DELIMITER with NAME of [A-Za-z_][A-Za-z0-9_]*",
                         lineno);
                return VK_EINVAL;
            }
            unsigned start = lineno;
            size_t vstart = at, vend = at;
            bool closed = false;
            const char *l2;
            size_t k2;
            while (!closed && next_line(data, len, &at, &l2, &k2)) {
                lineno++;
                if (k2 == dlen && memcmp(l2, delim, dlen) == 0)
                    closed = true;
                else
                    vend = (size_t)(l2 - data) + k2;
            }
            if (!closed) {
                snprintf(why, why_size, "line %u: '%.*s<<%.*s' has no closing line '%.*s'", start,
                         (int)nlen, line, (int)dlen, delim, (int)dlen, delim);
                return VK_EINVAL;
            }
            int rc = set(pool, out, n, &cap, line, nlen, data + vstart,
                         vend > vstart ? vend - vstart : 0, start, why, why_size);
            if (rc < 0)
                return rc;
        } else if (eq) {
            size_t nlen = (size_t)(eq - line);
            if (!vk_output_name_ok(line, nlen)) {
                snprintf(why, why_size,
                         "line %u: '%.*s' is not an output name ([A-Za-z_][A-Za-z0-9_]*)", lineno,
                         (int)(nlen > 64 ? 64 : nlen), line);
                return VK_EINVAL;
            }
            int rc =
                set(pool, out, n, &cap, line, nlen, eq + 1, k - nlen - 1, lineno, why, why_size);
            if (rc < 0)
                return rc;
        } else {
            snprintf(why, why_size, "line %u: expected NAME=VALUE or NAME<<DELIMITER", lineno);
            return VK_EINVAL;
        }
    }
    return 0;
}
