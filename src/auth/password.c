/*
 * auth passwords: Argon2id through libargon2 (include/vulcan/auth.h).
 */
#include "vulcan/auth.h"

#include <argon2.h>
#include <openssl/rand.h>
#include <string.h>

#define SALT_LEN 16
#define HASH_LEN 32

struct vk_auth_kdf vk_auth_kdf_default(void)
{
    struct vk_auth_kdf k = {.t_cost = 2, .m_cost = 19 * 1024, .threads = 1};
    return k;
}

int vk_auth_password_hash(const char *password, size_t len, const struct vk_auth_kdf *kdf,
                          char out[VK_AUTH_PHC_MAX], struct vk_err *err)
{
    struct vk_auth_kdf k = kdf ? *kdf : vk_auth_kdf_default();
    if (len < VK_AUTH_PASSWORD_MIN)
        return vk_err_set(err, VK_EINVAL, "password too short (at least %d characters)",
                          VK_AUTH_PASSWORD_MIN);
    if (len > VK_AUTH_PASSWORD_MAX)
        return vk_err_set(err, VK_EINVAL, "password too long (at most %d bytes)",
                          VK_AUTH_PASSWORD_MAX);
    unsigned char salt[SALT_LEN];
    if (RAND_bytes(salt, sizeof(salt)) != 1)
        return vk_err_set(err, VK_EIO, "cannot read random bytes for a salt");
    size_t need = argon2_encodedlen(k.t_cost, k.m_cost, k.threads, SALT_LEN, HASH_LEN, Argon2_id);
    if (need > VK_AUTH_PHC_MAX)
        return vk_err_set(err, VK_EINVAL, "argon2 parameters make a hash longer than %d bytes",
                          VK_AUTH_PHC_MAX);
    int rc = argon2id_hash_encoded(k.t_cost, k.m_cost, k.threads, password, len, salt, SALT_LEN,
                                   HASH_LEN, out, VK_AUTH_PHC_MAX);
    if (rc == ARGON2_MEMORY_ALLOCATION_ERROR)
        return vk_err_set(err, VK_ENOMEM, "out of memory hashing a password");
    if (rc != ARGON2_OK)
        return vk_err_set(err, VK_EINTERNAL, "argon2id: %s", argon2_error_message(rc));
    return 0;
}

/* A hash of a password nobody knows, with the default cost: verified against when the
 * login does not exist or has no password, so that both take as long as a wrong one. */
static const char DUMMY[] = "$argon2id$v=19$m=19456,t=2,p=1$"
                            "dnVsY2FuLWR1bW15LXNhbHQ$"
                            "Ug5ObTRpFpdoR0CW2k1l0U2vG8Hc3uw6oKr9S7T2eQY";

int vk_auth_password_verify(const char *phc, const char *password, size_t len)
{
    if (!password || len > VK_AUTH_PASSWORD_MAX)
        len = 0;
    bool real = phc && strncmp(phc, "$argon2id$", 10) == 0 && strlen(phc) < VK_AUTH_PHC_MAX;
    int rc = argon2id_verify(real ? phc : DUMMY, password ? password : "", len);
    return real && rc == ARGON2_OK ? 0 : VK_EAUTH;
}
