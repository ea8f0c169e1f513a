/*
 * Private to the kdl module: character classes shared by the parser and the
 * writer. The byte table answers the common ASCII questions with one load;
 * code points >= 0x80 go through the small functions below.
 */
#ifndef VULCAN_KDL_INT_H
#define VULCAN_KDL_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Byte classes (bits). */
#define VK__KDL_C_IDENT 1u /* ASCII identifier character */
#define VK__KDL_C_SPACE 2u /* tab or space */
#define VK__KDL_C_NL 4u    /* \n \v \f \r */
#define VK__KDL_C_HIGH 8u  /* first byte of a multi-byte UTF-8 sequence (or invalid) */
#define VK__KDL_C_BAD 16u  /* disallowed ASCII control character */

extern const unsigned char vk__kdl_cls[256];

/** True for a unicode-space code point (whitespace that is not a newline). */
static inline bool vk__kdl_is_space(uint32_t c)
{
    if (c < 0x80)
        return c == 0x20 || c == 0x09;
    return c == 0xa0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200a) || c == 0x202f || c == 0x205f ||
           c == 0x3000;
}

/** True for a newline code point (CR LF counts as one newline, handled by callers). */
static inline bool vk__kdl_is_newline(uint32_t c)
{
    return (c >= 0x0a && c <= 0x0d) || c == 0x85 || c == 0x2028 || c == 0x2029;
}

/** True for a code point that may not appear literally in a document. */
static inline bool vk__kdl_is_disallowed(uint32_t c)
{
    return c <= 0x08 || (c >= 0x0e && c <= 0x1f) || c == 0x7f || (c >= 0xd800 && c <= 0xdfff) ||
           c == 0x200e || c == 0x200f || (c >= 0x202a && c <= 0x202e) ||
           (c >= 0x2066 && c <= 0x2069) || c == 0xfeff;
}

/** True when `c` may appear in an identifier string. */
static inline bool vk__kdl_is_ident_cp(uint32_t c)
{
    if (c < 0x80)
        return (vk__kdl_cls[c] & VK__KDL_C_IDENT) != 0;
    return !vk__kdl_is_space(c) && !vk__kdl_is_newline(c) && !vk__kdl_is_disallowed(c);
}

/**
 * True when the bytes `s`/`len` (valid UTF-8) look like the start of a number,
 * i.e. digit, sign digit, sign '.' digit or '.' digit: such a bare word is not
 * an identifier.
 */
static inline bool vk__kdl_numberish(const char *s, size_t len)
{
    size_t i = 0;
    if (i < len && (s[i] == '+' || s[i] == '-'))
        i++;
    if (i < len && s[i] == '.')
        i++;
    return i < len && s[i] >= '0' && s[i] <= '9';
}

/** True when `s`/`len` is one of the keywords a bare identifier may not be. */
bool vk__kdl_is_keyword(const char *s, size_t len);

#endif /* VULCAN_KDL_INT_H */
