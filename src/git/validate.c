/*
 * validate.c — what may reach a git command line. Server and worker use these
 * same rules (the server's trigger service before it reads a mirror, the
 * worker before it checks a commit out).
 */
#include "git_int.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

bool vk_git_valid_sha(const char *s)
{
    size_t n = s ? strnlen(s, VK_GIT_SHA_LEN) : 0;
    return (n == 40 || n == 64) && vk_hex_is(s, n);
}

bool vk_git_valid_short_sha(const char *s)
{
    size_t n = s ? strnlen(s, VK_GIT_SHA_LEN) : 0;
    return n >= 4 && n <= 64 && vk_hex_is(s, n);
}

bool vk__git_zero(const char *sha)
{
    size_t n = sha ? strnlen(sha, VK_GIT_SHA_LEN) : 0;
    return (n == 40 || n == 64) && strspn(sha, "0") == n;
}

/* git check-ref-format's rules, plus: nothing an option or revision parser could take. */
bool vk_git_valid_branch(const char *s)
{
    size_t n = s ? strnlen(s, VK_GIT_MAX_REF + 1) : 0;
    if (n == 0 || n > VK_GIT_MAX_REF || s[0] == '-' || s[0] == '/' || s[0] == '.' ||
        s[n - 1] == '/' || s[n - 1] == '.' || strstr(s, "..") || strstr(s, "@{") ||
        strstr(s, "//") || strstr(s, "/.") || (n >= 5 && strcmp(s + n - 5, ".lock") == 0) ||
        strcmp(s, "@") == 0 || strstr(s, ".lock/"))
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c == 0x7f || strchr("~^:?*[\\", c))
            return false;
    }
    return true;
}

bool vk_git_valid_path(const char *p)
{
    size_t n = p ? strnlen(p, VK_GIT_MAX_PATH + 1) : 0;
    if (n == 0 || n > VK_GIT_MAX_PATH || p[0] == '/')
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)p[i] < 0x20 || p[i] == 0x7f)
            return false;
    /* no empty, "." or ".." segment */
    for (const char *s = p; *s;) {
        size_t seg = strcspn(s, "/");
        if (seg == 0 || (seg == 1 && s[0] == '.') || (seg == 2 && s[0] == '.' && s[1] == '.'))
            return false;
        s += seg;
        if (*s == '/')
            s++;
    }
    return true;
}

bool vk_git_valid_url(const char *u)
{
    size_t n = u ? strnlen(u, VK_GIT_MAX_URL + 1) : 0;
    if (n == 0 || n > VK_GIT_MAX_URL || u[0] == '-')
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)u[i] <= 0x20 || u[i] == 0x7f)
            return false;
    /* git's "ext::" and "fd::" transports run commands: git takes a leading run of scheme
     * characters followed by "::" as "<transport>::"; refuse that, and any other "::"
     * unless inside the brackets of an IPv6 host ("https://[fe80::1]/x") */
    size_t i = 0;
    if (isalpha((unsigned char)u[0]))
        while (isalnum((unsigned char)u[i]) || u[i] == '+' || u[i] == '-' || u[i] == '.')
            i++;
    if (u[i] == ':' && u[i + 1] == ':')
        return false;
    int depth = 0;
    for (i = 0; i < n; i++) {
        depth += u[i] == '[' ? 1 : u[i] == ']' ? -1 : 0;
        if (u[i] == ':' && u[i + 1] == ':' && depth != 1)
            return false;
    }
    return true;
}

void vk_git_redact_url(const char *url, char *out, size_t cap)
{
    if (!cap)
        return;
    const char *scheme = strstr(url, "://");
    const char *host = scheme ? scheme + 3 : url;
    const char *slash = strchr(host, '/');
    const char *at = strchr(host, '@');
    if (scheme && at && (!slash || at < slash))
        snprintf(out, cap, "%.*s***%s", (int)(host - url), url, at);
    else
        snprintf(out, cap, "%s", url);
}

int vk__git_check_glob(const char *glob, size_t *pn, struct vk_err *err)
{
    size_t gn = strnlen(glob, VK__GIT_MAX_GLOB + 1);
    if (gn == 0 || gn > VK__GIT_MAX_GLOB || glob[0] == '/')
        return vk_err_set(err, VK_EINVAL, "invalid workflow glob '%.100s'", glob);
    for (size_t i = 0; i < gn; i++)
        if ((unsigned char)glob[i] < 0x20)
            return vk_err_set(err, VK_EINVAL, "invalid workflow glob");
    /* the directory part before the first wildcard ("" when none) */
    size_t first = strcspn(glob, "*?[\\");
    size_t dir = 0;
    for (size_t i = 0; i < first; i++)
        if (glob[i] == '/')
            dir = i;
    *pn = dir;
    return 0;
}

size_t vk__git_slashes(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '/';
    return n;
}
