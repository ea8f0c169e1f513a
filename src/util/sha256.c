/* SHA-256 as hex text, over OpenSSL's libcrypto (EVP). */
#include "vulcan/util.h"

#include <openssl/evp.h>

/* Accepts any `len` bytes at `p` (NULL only when len is 0). */
int vk_sha256_hex(const void *p, size_t len, char out[VK_SHA256_HEX_LEN])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (EVP_Digest(len ? p : "", len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32) {
        out[0] = '\0';
        return VK_EINTERNAL;
    }
    vk_hex_encode(md, 32, out);
    return 0;
}
