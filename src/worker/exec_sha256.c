/*
 * exec_sha256.c — hex SHA-256 of a URL, to name mirror directories. Uses
 * OpenSSL's libcrypto, which the project links anyway.
 */
#include "exec_int.h"

#include <openssl/evp.h>

void vk__exec_sha256_hex(const void *data, size_t len, char out[65])
{
    static const char hex[] = "0123456789abcdef";
    unsigned char md[32];
    unsigned int mdlen = 0;
    /* EVP_Digest only fails on allocation failure inside OpenSSL; abort then, as
     * for any small fixed-size allocation. */
    VK_ASSERT(EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) == 1 && mdlen == 32);
    for (int i = 0; i < 32; i++) {
        out[2 * i] = hex[md[i] >> 4];
        out[2 * i + 1] = hex[md[i] & 15];
    }
    out[64] = '\0';
}
