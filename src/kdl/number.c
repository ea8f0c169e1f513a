/*
 * KDL numbers: decimal integers and floats, hexadecimal, octal and binary
 * integers, with '_' separators. Integers that fit int64_t become VK_KDL_INT;
 * larger ones VK_KDL_BIGINT with their decimal digits (hex/octal/binary ones
 * are converted here, up to MAX_RADIX_DIGITS digits). Decimals with a fraction
 * or an exponent become VK_KDL_FLOAT with strtod's double and the source text.
 */
#include "parse_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Bound on the digits of a big hex/octal/binary integer (its conversion is quadratic). */
#define MAX_RADIX_DIGITS 4096
/* Base-1e9 limbs for MAX_RADIX_DIGITS hex digits: 4096 * log10(16) / 9 < 550. */
#define MAX_LIMBS 560

/* The value of a digit in any base up to 16; 99 (beyond every base) for anything else. */
static int digit_val(unsigned char c)
{
    int v = vk_hex_value(c);
    return v < 0 ? 99 : v;
}

/* Store the decimal text `neg`+`digits` (no leading zeros unless "0") as a BIGINT. */
static int set_bigint(struct vk__kdl_parser *p, bool neg, const char *digits, size_t n,
                      struct vk_kdl_value *v)
{
    char *t = vk__kdl_str_alloc(p, n + 2);
    if (!t)
        return VK_ENOMEM;
    size_t k = 0;
    if (neg)
        t[k++] = '-';
    memcpy(t + k, digits, n);
    k += n;
    t[k] = '\0';
    v->kind = VK_KDL_BIGINT;
    v->num.ptr = t;
    v->num.len = k;
    return 0;
}

/* Set an integer with magnitude `mag` (fits uint64) and sign `neg`. */
static int set_int(struct vk__kdl_parser *p, bool neg, uint64_t mag, struct vk_kdl_value *v)
{
    if (!neg && mag <= (uint64_t)INT64_MAX) {
        v->kind = VK_KDL_INT;
        v->i = (int64_t)mag;
        return 0;
    }
    if (neg && mag <= (uint64_t)INT64_MAX + 1u) {
        v->kind = VK_KDL_INT;
        v->i = mag == (uint64_t)INT64_MAX + 1u ? INT64_MIN : -(int64_t)mag;
        return 0;
    }
    char d[24];
    int n = snprintf(d, sizeof(d), "%llu", (unsigned long long)mag);
    return set_bigint(p, neg, d, (size_t)n, v);
}

/* A hex/octal/binary integer too big for uint64: convert its digits to decimal. */
static int radix_big(struct vk__kdl_parser *p, size_t start, const unsigned char *d, size_t n,
                     unsigned base, bool neg, struct vk_kdl_value *v)
{
    uint32_t limbs[MAX_LIMBS]; /* little-endian, base 1e9 */
    size_t nl = 0;
    size_t nd = 0;
    for (size_t i = 0; i < n; i++) {
        if (d[i] == '_')
            continue;
        if (++nd > MAX_RADIX_DIGITS)
            return vk__kdl_fail(p, start, "integer too long (more than %d digits)",
                                MAX_RADIX_DIGITS);
        uint64_t carry = (uint64_t)digit_val(d[i]);
        for (size_t k = 0; k < nl; k++) {
            uint64_t x = (uint64_t)limbs[k] * base + carry;
            limbs[k] = (uint32_t)(x % 1000000000u);
            carry = x / 1000000000u;
        }
        while (carry) {
            limbs[nl++] = (uint32_t)(carry % 1000000000u);
            carry /= 1000000000u;
        }
    }
    /* nl >= 1: the value does not fit in 64 bits. */
    size_t cap = nl * 9 + 1;
    char *t = vk__kdl_str_alloc(p, cap + 1);
    if (!t)
        return VK_ENOMEM;
    size_t k = 0;
    if (neg)
        t[k++] = '-';
    k += (size_t)snprintf(t + k, cap + 1 - k, "%u", (unsigned)limbs[nl - 1]);
    for (size_t i = nl - 1; i-- > 0;)
        k += (size_t)snprintf(t + k, cap + 1 - k, "%09u", (unsigned)limbs[i]);
    v->kind = VK_KDL_BIGINT;
    v->num.ptr = t;
    v->num.len = k;
    return 0;
}

static int radix_int(struct vk__kdl_parser *p, size_t start, size_t i, size_t end, unsigned base,
                     bool neg, struct vk_kdl_value *v)
{
    const unsigned char *s = p->s;
    static const char *const names[17] = {[2] = "binary", [8] = "octal", [16] = "hexadecimal"};
    if (i >= end || digit_val(s[i]) >= (int)base)
        return vk__kdl_fail(p, start, "invalid %s number: a digit must follow the prefix",
                            names[base]);
    uint64_t mag = 0;
    bool big = false;
    for (size_t k = i; k < end; k++) {
        unsigned char c = s[k];
        if (c == '_')
            continue;
        int dv = digit_val(c);
        if (dv >= (int)base)
            return vk__kdl_fail(p, k, "invalid character '%c' in %s number", c, names[base]);
        if (mag > (UINT64_MAX - (uint64_t)dv) / base)
            big = true;
        else
            mag = mag * base + (uint64_t)dv;
    }
    if (big)
        return radix_big(p, start, s + i, end - i, base, neg, v);
    return set_int(p, neg, mag, v);
}

/* Scan digits and '_' from `i` (first must be a digit); returns the end. */
static size_t digits(const unsigned char *s, size_t i, size_t end)
{
    while (i < end && ((s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
        i++;
    return i;
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

int vk__kdl_parse_number(struct vk__kdl_parser *p, size_t start, size_t end, struct vk_kdl_value *v)
{
    const unsigned char *s = p->s;
    size_t i = start;
    bool neg = false;
    if (s[i] == '+' || s[i] == '-') {
        neg = s[i] == '-';
        i++;
    }
    if (i + 1 < end && s[i] == '0') {
        unsigned char x = s[i + 1];
        if (x == 'x')
            return radix_int(p, start, i + 2, end, 16, neg, v);
        if (x == 'o')
            return radix_int(p, start, i + 2, end, 8, neg, v);
        if (x == 'b')
            return radix_int(p, start, i + 2, end, 2, neg, v);
    }
    if (i >= end || !is_digit(s[i]))
        return vk__kdl_fail(p, start, "invalid number: it must start with a digit");
    size_t int_start = i;
    i = digits(s, i, end);
    size_t int_end = i;
    bool is_float = false;
    if (i < end && s[i] == '.') {
        i++;
        if (i >= end || !is_digit(s[i]))
            return vk__kdl_fail(p, start, "invalid number: a digit must follow '.'");
        i = digits(s, i, end);
        is_float = true;
    }
    if (i < end && (s[i] == 'e' || s[i] == 'E')) {
        i++;
        if (i < end && (s[i] == '+' || s[i] == '-'))
            i++;
        if (i >= end || !is_digit(s[i]))
            return vk__kdl_fail(p, start, "invalid number: a digit must follow the exponent");
        i = digits(s, i, end);
        is_float = true;
    }
    if (i < end) {
        char c = (char)s[i];
        if (c > 0x20 && c < 0x7f)
            return vk__kdl_fail(p, i, "invalid character '%c' in number", c);
        return vk__kdl_fail(p, i, "invalid character in number");
    }
    if (!is_float) {
        uint64_t mag = 0;
        bool big = false;
        size_t nd = 0;
        for (size_t k = int_start; k < int_end; k++) {
            if (s[k] == '_')
                continue;
            nd++;
            uint64_t dv = (uint64_t)(s[k] - '0');
            if (mag > (UINT64_MAX - dv) / 10)
                big = true;
            else
                mag = mag * 10 + dv;
        }
        if (!big)
            return set_int(p, neg, mag, v);
        /* Decimal digits without '_' and leading zeros. */
        char *t = vk__kdl_str_alloc(p, nd + 2);
        if (!t)
            return VK_ENOMEM;
        size_t k = 0;
        if (neg)
            t[k++] = '-';
        bool lead = true;
        for (size_t j = int_start; j < int_end; j++) {
            if (s[j] == '_' || (lead && s[j] == '0'))
                continue;
            lead = false;
            t[k++] = (char)s[j];
        }
        t[k] = '\0';
        v->kind = VK_KDL_BIGINT;
        v->num.ptr = t;
        v->num.len = k;
        return 0;
    }
    /* Float: the text without '_', for strtod and for printing. */
    char *t = vk__kdl_str_alloc(p, end - start + 1);
    if (!t)
        return VK_ENOMEM;
    size_t k = 0;
    for (size_t j = start; j < end; j++)
        if (s[j] != '_')
            t[k++] = (char)s[j];
    t[k] = '\0';
    v->kind = VK_KDL_FLOAT;
    v->num.ptr = t;
    v->num.len = k;
    v->f = strtod(t, NULL);
    return 0;
}
