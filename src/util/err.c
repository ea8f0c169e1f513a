/* Error reporting: fixed-size messages so reporting never allocates. */
#include "vulcan/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void vk_err_assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "vulcan: assertion failed: %s (%s:%d)\n", expr, file, line);
    abort();
}

void vk_err_clear(struct vk_err *err)
{
    if (!err)
        return;
    err->code = 0;
    err->line = 0;
    err->col = 0;
    err->msg[0] = '\0';
}

int vk_err_vsetpos(struct vk_err *err, int code, uint32_t line, uint32_t col, const char *fmt,
                   va_list ap)
{
    if (!err)
        return code;
    err->code = code;
    err->line = line;
    err->col = col;
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    return code;
}

int vk_err_setpos(struct vk_err *err, int code, uint32_t line, uint32_t col, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vk_err_vsetpos(err, code, line, col, fmt, ap);
    va_end(ap);
    return code;
}

int vk_err_set(struct vk_err *err, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vk_err_vsetpos(err, code, 0, 0, fmt, ap);
    va_end(ap);
    return code;
}

int vk_err_errno(struct vk_err *err, const char *what)
{
    int e = errno;
    int code;
    switch (e) {
    case ENOMEM:
        code = VK_ENOMEM;
        break;
    case ENOENT:
    case ENOTDIR:
        code = VK_ENOTFOUND;
        break;
    case EEXIST:
        code = VK_EEXIST;
        break;
    case EACCES:
    case EPERM:
        code = VK_EPERM;
        break;
    case EINVAL:
        code = VK_EINVAL;
        break;
    case ETIMEDOUT:
        code = VK_ETIMEDOUT;
        break;
    case EAGAIN:
        code = VK_EAGAIN;
        break;
    case EFBIG:
        code = VK_ETOOBIG;
        break;
    default:
        code = VK_EIO;
        break;
    }
    return vk_err_set(err, code, "%s: %s", what, strerror(e));
}

const char *vk_err_name(int code)
{
    switch (code) {
    case VK_OK:
        return "success";
    case VK_ENOMEM:
        return "out of memory";
    case VK_EINVAL:
        return "invalid value";
    case VK_EIO:
        return "i/o error";
    case VK_EPARSE:
        return "parse error";
    case VK_ETOOBIG:
        return "too big";
    case VK_ENOTFOUND:
        return "not found";
    case VK_EEXIST:
        return "already exists";
    case VK_ECONFLICT:
        return "conflict";
    case VK_EDB:
        return "database error";
    case VK_ETIMEDOUT:
        return "timed out";
    case VK_EPERM:
        return "not permitted";
    case VK_EAGAIN:
        return "try again";
    case VK_EAUTH:
        return "not authenticated";
    case VK_ECYCLE:
        return "cycle";
    case VK_EVERSION:
        return "incompatible version";
    default:
        return "internal error";
    }
}

int vk_err_http(int code, const char **name)
{
    static const struct {
        int code, status;
        const char *name;
    } map[] = {
        {VK_ENOTFOUND, 404, "not_found"}, {VK_ECONFLICT, 409, "conflict"},
        {VK_EINVAL, 400, "bad_request"},  {VK_EPARSE, 400, "bad_request"},
        {VK_ETOOBIG, 413, "too_large"},   {VK_EAUTH, 401, "unauthenticated"},
        {VK_EPERM, 403, "forbidden"},     {VK_EDB, 503, "unavailable"},
        {VK_EIO, 503, "unavailable"},     {VK_EAGAIN, 503, "unavailable"},
    };
    for (size_t i = 0; i < VK_ARRAY_LEN(map); i++) {
        if (map[i].code == code) {
            if (name)
                *name = map[i].name;
            return map[i].status;
        }
    }
    if (name)
        *name = "internal";
    return 500;
}
