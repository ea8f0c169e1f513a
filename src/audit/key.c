/* The audit signing key (Ed25519) and the keyring of public keys (vulcan/audit.h). */
#include "audit_int.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_KEYS 64
#define SIG_LEN 64

struct vk_audit_key {
    EVP_PKEY *pkey;
    char id[VK_AUDIT_KEY_ID_LEN];
};

struct vk_audit_keyring {
    EVP_PKEY *keys[MAX_KEYS];
    char ids[MAX_KEYS][VK_AUDIT_KEY_ID_LEN];
    size_t n;
};

/* The id of a key: 16 hex digits of the SHA-256 of its raw public key. */
static int key_id(EVP_PKEY *k, char out[VK_AUDIT_KEY_ID_LEN])
{
    unsigned char raw[32];
    size_t len = sizeof(raw);
    char hex[VK_SHA256_HEX_LEN];
    if (EVP_PKEY_get_raw_public_key(k, raw, &len) != 1 || len != sizeof(raw) ||
        vk_sha256_hex(raw, len, hex) != 0)
        return VK_EINVAL;
    snprintf(out, VK_AUDIT_KEY_ID_LEN, "%.16s", hex);
    return 0;
}

static char *public_pem(EVP_PKEY *k)
{
    BIO *b = BIO_new(BIO_s_mem());
    char *out = NULL;
    if (b && PEM_write_bio_PUBKEY(b, k) == 1) {
        char *data = NULL;
        long n = BIO_get_mem_data(b, &data);
        if (n > 0 && (out = malloc((size_t)n + 1))) {
            memcpy(out, data, (size_t)n);
            out[n] = '\0';
        }
    }
    BIO_free(b);
    return out;
}

static EVP_PKEY *generate(void)
{
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
    EVP_PKEY *k = NULL;
    if (!c || EVP_PKEY_keygen_init(c) != 1 || EVP_PKEY_keygen(c, &k) != 1)
        k = NULL;
    EVP_PKEY_CTX_free(c);
    return k;
}

/* Write `k` as PKCS#8 PEM to a new file `path` (O_EXCL, 0600). */
static int write_private(const char *path, EVP_PKEY *k, struct vk_err *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return vk_err_set(err, VK_EIO, "cannot create '%s': %s", path, strerror(errno));
    FILE *f = fdopen(fd, "w");
    if (!f) {
        close(fd);
        unlink(path);
        return vk_err_set(err, VK_EIO, "cannot write '%s'", path);
    }
    bool ok = PEM_write_PrivateKey(f, k, NULL, NULL, 0, NULL, NULL) == 1;
    ok = fflush(f) == 0 && fsync(fileno(f)) == 0 && ok;
    ok = fclose(f) == 0 && ok;
    if (!ok) {
        unlink(path);
        return vk_err_set(err, VK_EIO, "cannot write '%s'", path);
    }
    return 0;
}

static int read_private(const char *path, EVP_PKEY **out, struct vk_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT)
            return vk_err_set(err, VK_ENOTFOUND, "no audit key '%s'", path);
        return vk_err_set(err, VK_EIO, "cannot open '%s': %s", path, strerror(errno));
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return vk_err_set(err, VK_EIO, "'%s' is not a regular file", path);
    }
    if ((st.st_mode & 0077) != 0) {
        close(fd);
        return vk_err_set(err, VK_EPERM,
                          "audit key '%s' is readable by others (mode %03o): chmod 600 it", path,
                          (unsigned)(st.st_mode & 0777));
    }
    FILE *f = fdopen(fd, "r");
    if (!f) {
        close(fd);
        return vk_err_set(err, VK_EIO, "cannot read '%s'", path);
    }
    EVP_PKEY *k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    if (!k || EVP_PKEY_id(k) != EVP_PKEY_ED25519) {
        EVP_PKEY_free(k);
        return vk_err_set(err, VK_EINVAL, "'%s' is not an Ed25519 private key (PEM)", path);
    }
    *out = k;
    return 0;
}

/* Append the public key of `k` to `keyring` unless a key of the same id is there. */
static int keyring_ensure(const char *keyring, EVP_PKEY *k, const char *id, struct vk_err *err)
{
    struct vk_audit_keyring *r = NULL;
    struct vk_err ignored;
    vk_err_clear(&ignored);
    if (vk_audit_keyring_load(keyring, &r, &ignored) == 0) {
        bool have = false;
        for (size_t i = 0; i < r->n && !have; i++)
            have = strcmp(r->ids[i], id) == 0;
        vk_audit_keyring_free(r);
        if (have)
            return 0;
    }
    char *pem = public_pem(k);
    if (!pem)
        return vk_err_set(err, VK_ENOMEM, "out of memory");
    int fd = open(keyring, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600); /* like the data dir */
    int rc = 0;
    if (fd < 0) {
        rc = vk_err_set(err, VK_EIO, "cannot open '%s': %s", keyring, strerror(errno));
    } else {
        size_t n = strlen(pem);
        if (write(fd, pem, n) != (ssize_t)n || fsync(fd) != 0)
            rc = vk_err_set(err, VK_EIO, "cannot write '%s': %s", keyring, strerror(errno));
        close(fd);
    }
    free(pem);
    return rc;
}

int vk_audit_key_load(const char *path, bool create, const char *keyring_path,
                      struct vk_audit_key **out, struct vk_err *err)
{
    EVP_PKEY *k = NULL;
    int rc = read_private(path, &k, err);
    if (rc == VK_ENOTFOUND && create) {
        k = generate();
        if (!k)
            return vk_err_set(err, VK_EINTERNAL, "cannot make an Ed25519 key");
        rc = write_private(path, k, err);
        if (rc == VK_EIO && read_private(path, &k, NULL) == 0) /* made meanwhile by another */
            rc = 0;
    }
    if (rc) {
        EVP_PKEY_free(k);
        return rc;
    }
    struct vk_audit_key *key = vk_mem_calloc(1, sizeof(*key));
    if (!key) {
        EVP_PKEY_free(k);
        return vk_err_set(err, VK_ENOMEM, "out of memory");
    }
    key->pkey = k;
    rc = key_id(k, key->id);
    if (rc)
        rc = vk_err_set(err, rc, "'%s': not an Ed25519 key", path);
    if (rc == 0 && keyring_path)
        rc = keyring_ensure(keyring_path, k, key->id, err);
    if (rc) {
        vk_audit_key_free(key);
        return rc;
    }
    *out = key;
    return 0;
}

void vk_audit_key_free(struct vk_audit_key *k)
{
    if (!k)
        return;
    EVP_PKEY_free(k->pkey);
    vk_mem_free(k);
}

const char *vk_audit_key_id(const struct vk_audit_key *k)
{
    return k->id;
}

int vk_audit_key_rotate(const char *path, const char *keyring_path,
                        char new_id[VK_AUDIT_KEY_ID_LEN], struct vk_err *err)
{
    struct vk_audit_key *old = NULL;
    int rc = vk_audit_key_load(path, false, keyring_path, &old, err); /* its key is kept */
    if (rc)
        return rc;
    vk_audit_key_free(old);
    EVP_PKEY *k = generate();
    if (!k)
        return vk_err_set(err, VK_EINTERNAL, "cannot make an Ed25519 key");
    char tmp[4096], id[VK_AUDIT_KEY_ID_LEN];
    snprintf(tmp, sizeof(tmp), "%s.new", path);
    unlink(tmp); /* a rotation that died before its rename */
    rc = key_id(k, id) ? vk_err_set(err, VK_EINTERNAL, "bad new key") : 0;
    if (rc == 0)
        rc = keyring_ensure(keyring_path, k, id, err); /* first: a key never signs unknown */
    if (rc == 0)
        rc = write_private(tmp, k, err);
    if (rc == 0 && rename(tmp, path) != 0) {
        rc = vk_err_set(err, VK_EIO, "cannot rename '%s': %s", tmp, strerror(errno));
        unlink(tmp);
    }
    EVP_PKEY_free(k);
    if (rc == 0 && new_id)
        memcpy(new_id, id, VK_AUDIT_KEY_ID_LEN);
    return rc;
}

/* The signed message of `cp`, into `buf`. */
static int message(const struct vk_store_audit_checkpoint *cp, char *buf, size_t cap)
{
    int n = snprintf(buf, cap, "vulcan-audit-checkpoint-v1\n%s\n%lld\n%lld\n%s", cp->tenant_id,
                     (long long)cp->seq, (long long)cp->at, cp->hash);
    return n > 0 && (size_t)n < cap ? n : -1;
}

int vk_audit_sign(const struct vk_audit_key *k, struct vk_store_audit_checkpoint *cp,
                  struct vk_pool *pool, struct vk_err *err)
{
    char msg[256];
    int n = message(cp, msg, sizeof(msg));
    unsigned char sig[SIG_LEN];
    size_t siglen = sizeof(sig);
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    bool ok = n > 0 && c && EVP_DigestSignInit(c, NULL, NULL, NULL, k->pkey) == 1 &&
              EVP_DigestSign(c, sig, &siglen, (const unsigned char *)msg, (size_t)n) == 1;
    EVP_MD_CTX_free(c);
    if (!ok)
        return vk_err_set(err, VK_EINTERNAL, "cannot sign the audit checkpoint");
    char *b64 = vk_pool_alloc(pool, 4 * ((siglen + 2) / 3) + 1);
    if (!b64)
        return vk_err_set(err, VK_ENOMEM, "out of memory");
    EVP_EncodeBlock((unsigned char *)b64, sig, (int)siglen);
    cp->signature = b64;
    cp->key_id = vk_pool_strndup(pool, k->id, strlen(k->id));
    return cp->key_id ? 0 : vk_err_set(err, VK_ENOMEM, "out of memory");
}

int vk_audit_seal_cb(void *ctx, struct vk_store_audit_rec *rec, struct vk_err *err)
{
    (void)ctx;
    return vk_audit_seal(rec, err);
}

int vk_audit_sign_cb(void *key, struct vk_store_audit_checkpoint *cp, struct vk_pool *pool,
                     struct vk_err *err)
{
    return vk_audit_sign(key, cp, pool, err);
}

int vk_audit_keyring_load(const char *path, struct vk_audit_keyring **out, struct vk_err *err)
{
    FILE *f = fopen(path, "re");
    if (!f) {
        if (errno == ENOENT)
            return vk_err_set(err, VK_ENOTFOUND, "no audit keyring '%s'", path);
        return vk_err_set(err, VK_EIO, "cannot open '%s': %s", path, strerror(errno));
    }
    struct vk_audit_keyring *r = vk_mem_calloc(1, sizeof(*r));
    if (!r) {
        fclose(f);
        return vk_err_set(err, VK_ENOMEM, "out of memory");
    }
    EVP_PKEY *k;
    while (r->n < MAX_KEYS && (k = PEM_read_PUBKEY(f, NULL, NULL, NULL))) {
        if (EVP_PKEY_id(k) != EVP_PKEY_ED25519 || key_id(k, r->ids[r->n]) != 0) {
            EVP_PKEY_free(k);
            continue;
        }
        r->keys[r->n++] = k;
    }
    fclose(f);
    if (r->n == 0) {
        vk_audit_keyring_free(r);
        return vk_err_set(err, VK_EINVAL, "'%s' holds no Ed25519 public key (PEM)", path);
    }
    *out = r;
    return 0;
}

void vk_audit_keyring_free(struct vk_audit_keyring *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++)
        EVP_PKEY_free(r->keys[i]);
    vk_mem_free(r);
}

size_t vk_audit_keyring_size(const struct vk_audit_keyring *r)
{
    return r ? r->n : 0;
}

int vk__audit_check_signature(const struct vk_audit_keyring *keys,
                              const struct vk_store_audit_checkpoint *cp)
{
    EVP_PKEY *k = NULL;
    for (size_t i = 0; keys && i < keys->n && !k; i++)
        if (cp->key_id && strcmp(keys->ids[i], cp->key_id) == 0)
            k = keys->keys[i];
    if (!k)
        return VK_ENOTFOUND;
    size_t blen = cp->signature ? strlen(cp->signature) : 0;
    unsigned char sig[SIG_LEN + 3];
    if (blen != 4 * ((SIG_LEN + 2) / 3))
        return VK_EPERM;
    if (EVP_DecodeBlock(sig, (const unsigned char *)cp->signature, (int)blen) != SIG_LEN + 2)
        return VK_EPERM; /* 88 base64 characters decode to 66 bytes: 64 and the padding */
    char msg[256];
    int n = message(cp, msg, sizeof(msg));
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    bool ok = n > 0 && c && EVP_DigestVerifyInit(c, NULL, NULL, NULL, k) == 1 &&
              EVP_DigestVerify(c, sig, SIG_LEN, (const unsigned char *)msg, (size_t)n) == 1;
    EVP_MD_CTX_free(c);
    return ok ? 0 : VK_EPERM;
}
