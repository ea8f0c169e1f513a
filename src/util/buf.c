/*
 * Bounded, always NUL-terminated byte buffer. An empty buffer that owns no memory
 * (cap == 0) points at vk_buf_empty, so `data` is never NULL; anything that writes
 * into `data` or frees it first checks cap, as git's strbuf does with its slopbuf.
 */
#include "vulcan/util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

char vk_buf_empty[1];

void vk_buf_init(struct vk_buf *b, size_t max)
{
    b->data = vk_buf_empty;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

/* Accepts an initialised buffer, or an all-zero one (data NULL). */
void vk_buf_release(struct vk_buf *b)
{
    if (b->cap)
        vk_mem_free(b->data);
    VK_ASSERT(vk_buf_empty[0] == '\0');
    b->data = vk_buf_empty;
    b->len = 0;
    b->cap = 0;
}

void vk_buf_reset(struct vk_buf *b)
{
    b->len = 0;
    if (b->cap)
        b->data[0] = '\0';
    else
        b->data = vk_buf_empty;
}

int vk_buf_grow(struct vk_buf *b, size_t extra)
{
    if (extra > b->max || b->len > b->max - extra) {
        vk_buf_release(b);
        return VK_ETOOBIG;
    }
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (cap > b->max + 1)
        cap = b->max + 1;
    char *p = vk_mem_realloc(b->cap ? b->data : NULL, cap);
    if (!p) {
        vk_buf_release(b);
        return VK_ENOMEM;
    }
    if (!b->cap)
        p[0] = '\0'; /* new memory: still reads as "" */
    b->data = p;
    b->cap = cap;
    return 0;
}

int vk_buf_add(struct vk_buf *b, const void *p, size_t n)
{
    int rc = vk_buf_grow(b, n);
    if (rc < 0)
        return rc;
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int vk_buf_adds(struct vk_buf *b, const char *s)
{
    return vk_buf_add(b, s, strlen(s));
}

int vk_buf_addch(struct vk_buf *b, char c)
{
    return vk_buf_add(b, &c, 1);
}

int vk_buf_vaddf(struct vk_buf *b, const char *fmt, va_list ap)
{
    va_list cp;
    va_copy(cp, ap);
    int n = vsnprintf(NULL, 0, fmt, cp);
    va_end(cp);
    if (n < 0)
        return VK_EINVAL;
    int rc = vk_buf_grow(b, (size_t)n);
    if (rc < 0)
        return rc;
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

int vk_buf_addf(struct vk_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = vk_buf_vaddf(b, fmt, ap);
    va_end(ap);
    return rc;
}

char *vk_buf_take(struct vk_buf *b, size_t *len)
{
    char *p = b->cap ? b->data : vk_mem_xstrndup("", 0);
    if (len)
        *len = b->len;
    b->data = vk_buf_empty;
    b->len = 0;
    b->cap = 0;
    return p;
}

int vk_buf_read_file(struct vk_buf *b, const char *path, struct vk_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return vk_err_errno(err, path);
    int rc = 0;
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode)) {
        rc = vk_err_set(err, VK_EINVAL, "'%s' is a directory", path);
        goto out;
    }
    for (;;) {
        rc = vk_buf_grow(b, 65536 < b->max - b->len ? 65536 : b->max - b->len);
        if (rc < 0) {
            rc = vk_err_set(err, rc, "cannot read '%s': %s", path, vk_err_name(rc));
            goto out;
        }
        size_t room = b->cap - b->len - 1;
        if (room == 0) {
            /* Full to the cap: any further byte makes the file too big. */
            char probe;
            ssize_t n = read(fd, &probe, 1);
            if (n > 0) {
                vk_buf_release(b);
                rc = vk_err_set(err, VK_ETOOBIG, "'%s' is larger than %zu bytes", path, b->max);
            }
            goto out;
        }
        ssize_t n = read(fd, b->data + b->len, room);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = vk_err_errno(err, path);
            goto out;
        }
        if (n == 0)
            break;
        b->len += (size_t)n;
        b->data[b->len] = '\0';
    }
out:
    close(fd);
    return rc;
}
