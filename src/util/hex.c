/* Hexadecimal text: lowercase encoding, digit values, checks and decoding. */
#include "vulcan/util.h"

static const char digits[] = "0123456789abcdef";

/* Accepts any `n` bytes at `p`; `out` has room for 2n + 1 bytes. */
void vk_hex_encode(const void *p, size_t n, char *out)
{
    const unsigned char *in = p;
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

/* Accepts any int: a char of either signedness, or an unsigned char value. */
int vk_hex_value(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

bool vk_hex_is(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (vk_hex_value(s[i]) < 0)
            return false;
    return true;
}

/* Accepts `len` characters at `s` (not NUL-terminated); `out` has room for len / 2 bytes. */
int vk_hex_decode(const char *s, size_t len, void *out, enum vk_hex_case accept)
{
    unsigned char *o = out;
    if (len % 2)
        return VK_EINVAL;
    for (size_t i = 0; i < len; i++)
        if (accept == VK_HEX_LOWER && s[i] >= 'A' && s[i] <= 'F')
            return VK_EINVAL;
    for (size_t i = 0; i < len / 2; i++) {
        int hi = vk_hex_value(s[2 * i]);
        int lo = vk_hex_value(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return VK_EINVAL;
        o[i] = (unsigned char)(hi << 4 | lo);
    }
    return 0;
}
