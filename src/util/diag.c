/* Compiler-style diagnostics and UTF-8 decoding. */
#include "vulcan/util.h"

#include <string.h>

size_t vk_utf8_decode(const unsigned char *s, size_t len, uint32_t *cp)
{
    if (len == 0)
        return 0;
    unsigned char c = s[0];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    size_t n;
    uint32_t v, min;
    if ((c & 0xe0) == 0xc0) {
        n = 2;
        v = c & 0x1f;
        min = 0x80;
    } else if ((c & 0xf0) == 0xe0) {
        n = 3;
        v = c & 0x0f;
        min = 0x800;
    } else if ((c & 0xf8) == 0xf0) {
        n = 4;
        v = c & 0x07;
        min = 0x10000;
    } else {
        return 0;
    }
    if (len < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        v = (v << 6) | (s[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff))
        return 0;
    *cp = v;
    return n;
}

int vk_diag_render(struct vk_buf *out, const char *file, const char *src, size_t len,
                   const struct vk_err *err)
{
    int rc;
    const char *f = file ? file : "<input>";
    if (!src || err->line == 0) {
        if (err->line)
            return vk_buf_addf(out, "%s:%u:%u: error: %s\n", f, err->line, err->col, err->msg);
        return vk_buf_addf(out, "%s: error: %s\n", f, err->msg);
    }
    rc = vk_buf_addf(out, "%s:%u:%u: error: %s\n", f, err->line, err->col, err->msg);
    if (rc < 0)
        return rc;
    /* Find the start of the line. Lines end at \n, \r\n or \r. */
    size_t pos = 0;
    uint32_t line = 1;
    while (pos < len && line < err->line) {
        if (src[pos] == '\n') {
            line++;
        } else if (src[pos] == '\r') {
            if (pos + 1 < len && src[pos + 1] == '\n')
                pos++;
            line++;
        }
        pos++;
    }
    if (line != err->line)
        return 0;
    size_t end = pos;
    while (end < len && src[end] != '\n' && src[end] != '\r')
        end++;
    /* Show at most 200 bytes of the line, replacing tabs so the caret lines up. */
    size_t show = end - pos > 200 ? 200 : end - pos;
    rc = vk_buf_addf(out, "%5u | ", err->line);
    for (size_t i = 0; rc == 0 && i < show; i++) {
        unsigned char c = (unsigned char)src[pos + i];
        rc = vk_buf_addch(out, c == '\t' ? ' ' : (c < 0x20 || c == 0x7f) ? '?' : (char)c);
    }
    if (rc == 0)
        rc = vk_buf_adds(out, "\n      | ");
    /* Advance one space per code point before the column. */
    size_t i = 0;
    for (uint32_t col = 1; rc == 0 && col < err->col && i < show; col++) {
        uint32_t cp;
        size_t n = vk_utf8_decode((const unsigned char *)src + pos + i, show - i, &cp);
        i += n ? n : 1;
        rc = vk_buf_addch(out, ' ');
    }
    if (rc == 0)
        rc = vk_buf_adds(out, "^\n");
    return rc;
}
