/* Envelope encryption of secrets with OpenSSL EVP AES-256-GCM (vulcan/secrets.h). */
#include "vulcan/secrets.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KCV_TEXT "vulcan secrets key check v1"

bool vk_secret_name_valid(const char *name)
{
    if (!name || !*name || strlen(name) > VK_SECRET_MAX_NAME)
        return false;
    if (!(name[0] == '_' || (name[0] >= 'A' && name[0] <= 'Z')))
        return false;
    for (const char *p = name; *p; p++)
        if (!(*p == '_' || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')))
            return false;
    return true;
}

int vk_secret_value_check(const void *value, size_t n, struct vk_err *err)
{
    if (n < VK_SECRET_MIN_VALUE)
        return vk_err_set(err, VK_EINVAL,
                          "a secret value must be at least %d bytes (shorter values cannot be "
                          "masked in logs): use a longer value",
                          VK_SECRET_MIN_VALUE);
    if (n > VK_SECRET_MAX_VALUE)
        return vk_err_set(err, VK_EINVAL,
                          "a secret value must be at most %d bytes (64 KiB): store a larger "
                          "file encrypted in the repository and its key as the secret",
                          VK_SECRET_MAX_VALUE);
    if (value && memchr(value, '\0', n))
        return vk_err_set(err, VK_EINVAL,
                          "a secret value cannot contain a NUL byte: encode binary values "
                          "(base64) and decode them in the script");
    return 0;
}

void vk_secret_key_wipe(struct vk_secret_key *k)
{
    if (k)
        OPENSSL_cleanse(k, sizeof(*k));
}

int vk_secret_key_generate(struct vk_secret_key *out, struct vk_err *err)
{
    if (RAND_bytes(out->kek, sizeof(out->kek)) != 1)
        return vk_err_set(err, VK_EIO, "no randomness for a secrets key");
    return 0;
}

static int write_all(int fd, const unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int vk_secret_key_write(const char *path, const struct vk_secret_key *k, struct vk_err *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return vk_err_set(err, errno == EEXIST ? VK_EEXIST : VK_EIO,
                          "cannot create the secrets key file '%s': %s", path, strerror(errno));
    int bad = fchmod(fd, 0600) != 0 || write_all(fd, k->kek, sizeof(k->kek)) != 0 || fsync(fd) != 0;
    int e = errno;
    if (close(fd) != 0)
        bad = 1;
    if (bad) {
        unlink(path);
        return vk_err_set(err, VK_EIO, "cannot write the secrets key file '%s': %s", path,
                          strerror(e));
    }
    return 0;
}

int vk_secret_key_load(const char *path, bool create, struct vk_secret_key *out, bool *created,
                       struct vk_err *err)
{
    if (created)
        *created = false;
    memset(out, 0, sizeof(*out));
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0 && errno == ENOENT && create) {
        struct vk_secret_key k;
        int rc = vk_secret_key_generate(&k, err);
        if (rc == 0)
            rc = vk_secret_key_write(path, &k, err);
        vk_secret_key_wipe(&k);
        if (rc == VK_EEXIST) /* made meanwhile: read that one */
            rc = 0;
        else if (rc == 0 && created)
            *created = true;
        if (rc)
            return rc;
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    }
    if (fd < 0)
        return vk_err_set(err, errno == ENOENT ? VK_ENOTFOUND : VK_EIO,
                          "cannot open the secrets key file '%s': %s", path, strerror(errno));
    struct stat st;
    int rc = 0;
    if (fstat(fd, &st) != 0) {
        rc = vk_err_set(err, VK_EIO, "cannot stat the secrets key file '%s': %s", path,
                        strerror(errno));
    } else if (!S_ISREG(st.st_mode)) {
        rc = vk_err_set(err, VK_EINVAL, "the secrets key file '%s' is not a regular file", path);
    } else if (st.st_mode & 077) {
        rc = vk_err_set(err, VK_EPERM,
                        "the secrets key file '%s' has mode %04o: group and others must not "
                        "have access; run chmod 600 '%s' (and check who could read it)",
                        path, (unsigned)(st.st_mode & 07777), path);
    } else if (st.st_size != VK_SECRET_KEY_LEN) {
        rc = vk_err_set(err, VK_EINVAL,
                        "the secrets key file '%s' holds %lld bytes, not %d: restore the right "
                        "file, or (only when no secret is stored yet) remove it so that a new "
                        "one is made",
                        path, (long long)st.st_size, VK_SECRET_KEY_LEN);
    } else {
        size_t got = 0;
        while (got < sizeof(out->kek)) {
            ssize_t r = read(fd, out->kek + got, sizeof(out->kek) - got);
            if (r < 0 && errno == EINTR)
                continue;
            if (r <= 0)
                break;
            got += (size_t)r;
        }
        if (got != sizeof(out->kek)) {
            vk_secret_key_wipe(out);
            rc = vk_err_set(err, VK_EIO, "cannot read the secrets key file '%s'", path);
        }
    }
    close(fd);
    return rc;
}

void vk_secret_key_check_value(const struct vk_secret_key *k, unsigned char out[VK_SECRET_KCV_LEN])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    if (!HMAC(EVP_sha256(), k->kek, sizeof(k->kek), (const unsigned char *)KCV_TEXT,
              sizeof(KCV_TEXT) - 1, mac, &n) ||
        n < VK_SECRET_KCV_LEN)
        memset(mac, 0, sizeof(mac));
    memcpy(out, mac, VK_SECRET_KCV_LEN);
    OPENSSL_cleanse(mac, sizeof(mac));
}

/* The associated data: a label and each field NUL-terminated (no field holds a NUL). */
static int make_aad(const struct vk_secret_where *w, char *out, size_t cap, size_t *n)
{
    int len =
        snprintf(out, cap, "vulcan-secret-v1%c%s%c%s%c%s%c%s%c%lld", 0, w->org_id ? w->org_id : "",
                 0, w->scope ? w->scope : "", 0, w->scope_id ? w->scope_id : "", 0,
                 w->name ? w->name : "", 0, (long long)w->version);
    if (len < 0 || (size_t)len >= cap)
        return -1;
    *n = (size_t)len;
    return 0;
}

/* AES-256-GCM of `in`/`n` under `key` with `nonce` and `aad`: `out` gets n bytes and `tag`. */
static int gcm_seal(const unsigned char *key, const unsigned char *nonce, const char *aad,
                    size_t aad_len, const unsigned char *in, size_t n, unsigned char *out,
                    unsigned char tag[VK_SECRET_TAG_LEN])
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int len = 0, ok = c != NULL;
    ok = ok && EVP_EncryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1;
    ok = ok && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, VK_SECRET_NONCE_LEN, NULL) == 1;
    ok = ok && EVP_EncryptInit_ex(c, NULL, NULL, key, nonce) == 1;
    ok = ok && EVP_EncryptUpdate(c, NULL, &len, (const unsigned char *)aad, (int)aad_len) == 1;
    ok = ok && EVP_EncryptUpdate(c, out, &len, in, (int)n) == 1;
    ok = ok && EVP_EncryptFinal_ex(c, out + len, &len) == 1;
    ok = ok && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, VK_SECRET_TAG_LEN, tag) == 1;
    EVP_CIPHER_CTX_free(c);
    return ok ? 0 : -1;
}

/* Returns 0, or -1 when the tag does not verify (or OpenSSL fails). */
static int gcm_open(const unsigned char *key, const unsigned char *nonce, const char *aad,
                    size_t aad_len, const unsigned char *in, size_t n,
                    const unsigned char tag[VK_SECRET_TAG_LEN], unsigned char *out)
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int len = 0, ok = c != NULL;
    unsigned char t[VK_SECRET_TAG_LEN];
    memcpy(t, tag, sizeof(t));
    ok = ok && EVP_DecryptInit_ex(c, EVP_aes_256_gcm(), NULL, NULL, NULL) == 1;
    ok = ok && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, VK_SECRET_NONCE_LEN, NULL) == 1;
    ok = ok && EVP_DecryptInit_ex(c, NULL, NULL, key, nonce) == 1;
    ok = ok && EVP_DecryptUpdate(c, NULL, &len, (const unsigned char *)aad, (int)aad_len) == 1;
    ok = ok && EVP_DecryptUpdate(c, out, &len, in, (int)n) == 1;
    ok = ok && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, VK_SECRET_TAG_LEN, t) == 1;
    ok = ok && EVP_DecryptFinal_ex(c, out + len, &len) == 1;
    EVP_CIPHER_CTX_free(c);
    if (!ok)
        OPENSSL_cleanse(out, n);
    return ok ? 0 : -1;
}

/* Unwrap the data key of `wrapped` into `dk`. */
static int unwrap(const struct vk_secret_key *kek, const char *aad, size_t aad_len,
                  const unsigned char wrapped[VK_SECRET_WRAPPED_LEN],
                  unsigned char dk[VK_SECRET_KEY_LEN])
{
    return gcm_open(kek->kek, wrapped, aad, aad_len, wrapped + VK_SECRET_NONCE_LEN,
                    VK_SECRET_KEY_LEN, wrapped + VK_SECRET_NONCE_LEN + VK_SECRET_KEY_LEN, dk);
}

static int wrap(const struct vk_secret_key *kek, const char *aad, size_t aad_len,
                const unsigned char dk[VK_SECRET_KEY_LEN],
                unsigned char wrapped[VK_SECRET_WRAPPED_LEN])
{
    if (RAND_bytes(wrapped, VK_SECRET_NONCE_LEN) != 1)
        return -1;
    return gcm_seal(kek->kek, wrapped, aad, aad_len, dk, VK_SECRET_KEY_LEN,
                    wrapped + VK_SECRET_NONCE_LEN,
                    wrapped + VK_SECRET_NONCE_LEN + VK_SECRET_KEY_LEN);
}

#define AAD_MAX (64 + VK_UUID_LEN * 2 + VK_SECRET_MAX_NAME + 32)

int vk_secret_seal(const struct vk_secret_key *kek, const struct vk_secret_where *where,
                   const void *value, size_t n, struct vk_secret_sealed *out, struct vk_err *err)
{
    memset(out, 0, sizeof(*out));
    if (!vk_secret_name_valid(where->name))
        return vk_err_set(err, VK_EINVAL, "a secret name must match [A-Z_][A-Z0-9_]*");
    int rc = vk_secret_value_check(value, n, err);
    if (rc)
        return rc;
    char aad[AAD_MAX];
    size_t aad_len = 0;
    if (make_aad(where, aad, sizeof(aad), &aad_len) != 0)
        return vk_err_set(err, VK_EINVAL, "secret location too long");
    unsigned char dk[VK_SECRET_KEY_LEN];
    out->ct = vk_mem_alloc(n + VK_SECRET_TAG_LEN);
    if (!out->ct)
        return vk_err_set(err, VK_ENOMEM, "out of memory");
    out->ct_len = n + VK_SECRET_TAG_LEN;
    int bad = RAND_bytes(dk, sizeof(dk)) != 1 || RAND_bytes(out->nonce, sizeof(out->nonce)) != 1;
    bad = bad || gcm_seal(dk, out->nonce, aad, aad_len, value, n, out->ct, out->ct + n) != 0;
    bad = bad || wrap(kek, aad, aad_len, dk, out->wrapped) != 0;
    OPENSSL_cleanse(dk, sizeof(dk));
    if (bad) {
        vk_secret_sealed_release(out);
        return vk_err_set(err, VK_EIO, "cannot seal the secret (OpenSSL)");
    }
    return 0;
}

int vk_secret_open(const struct vk_secret_key *kek, const struct vk_secret_where *where,
                   const unsigned char nonce[VK_SECRET_NONCE_LEN],
                   const unsigned char wrapped[VK_SECRET_WRAPPED_LEN], const unsigned char *ct,
                   size_t ct_len, char **out, size_t *n, struct vk_err *err)
{
    *out = NULL;
    *n = 0;
    if (ct_len < VK_SECRET_TAG_LEN || ct_len > VK_SECRET_MAX_VALUE + VK_SECRET_TAG_LEN)
        return vk_err_set(err, VK_EPERM, "secret %s: the stored value is damaged", where->name);
    char aad[AAD_MAX];
    size_t aad_len = 0;
    if (make_aad(where, aad, sizeof(aad), &aad_len) != 0)
        return vk_err_set(err, VK_EINVAL, "secret location too long");
    unsigned char dk[VK_SECRET_KEY_LEN];
    if (unwrap(kek, aad, aad_len, wrapped, dk) != 0)
        return vk_err_set(err, VK_EPERM,
                          "secret %s does not open: sealed under another key, or the row was "
                          "changed or moved",
                          where->name);
    size_t len = ct_len - VK_SECRET_TAG_LEN;
    char *v = vk_mem_alloc(len + 1);
    if (!v) {
        OPENSSL_cleanse(dk, sizeof(dk));
        return vk_err_set(err, VK_ENOMEM, "out of memory");
    }
    int rc = gcm_open(dk, nonce, aad, aad_len, ct, len, ct + len, (unsigned char *)v);
    OPENSSL_cleanse(dk, sizeof(dk));
    if (rc != 0) {
        vk_mem_free(v);
        return vk_err_set(err, VK_EPERM, "secret %s does not open: the stored value was changed",
                          where->name);
    }
    v[len] = '\0';
    *out = v;
    *n = len;
    return 0;
}

int vk_secret_rewrap(const struct vk_secret_key *old_kek, const struct vk_secret_key *new_kek,
                     const struct vk_secret_where *where,
                     const unsigned char wrapped[VK_SECRET_WRAPPED_LEN],
                     unsigned char out[VK_SECRET_WRAPPED_LEN], struct vk_err *err)
{
    char aad[AAD_MAX];
    size_t aad_len = 0;
    if (make_aad(where, aad, sizeof(aad), &aad_len) != 0)
        return vk_err_set(err, VK_EINVAL, "secret location too long");
    unsigned char dk[VK_SECRET_KEY_LEN];
    if (unwrap(old_kek, aad, aad_len, wrapped, dk) != 0)
        return vk_err_set(err, VK_EPERM, "secret %s does not open with the current key",
                          where->name);
    int rc = wrap(new_kek, aad, aad_len, dk, out);
    OPENSSL_cleanse(dk, sizeof(dk));
    if (rc != 0)
        return vk_err_set(err, VK_EIO, "cannot wrap secret %s (OpenSSL)", where->name);
    return 0;
}

void vk_secret_sealed_release(struct vk_secret_sealed *s)
{
    if (!s)
        return;
    vk_mem_free(s->ct);
    s->ct = NULL;
    s->ct_len = 0;
}
