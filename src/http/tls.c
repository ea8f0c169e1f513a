/*
 * HTTPS for the server: libmicrohttpd with GnuTLS, the certificate handed over by a
 * certificate callback (MHD_OPTION_HTTPS_CERT_CALLBACK) so that it can be replaced while
 * the server runs (SIGHUP in `vulcan server`). A replaced certificate and key are kept
 * until the server is freed: sessions still using them hold borrowed pointers, and a
 * reload is rare (a count bounded by how often someone sends SIGHUP).
 *
 * The callback gets no context pointer from libmicrohttpd, so the TLS state is
 * process-wide: one TLS server per process (vulcan server has one).
 */
#include "http_int.h"

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <string.h>

#define TLS_MAX_CHAIN 16u

struct tls_pair {
    struct tls_pair *next; /* older pairs */
    gnutls_pcert_st pcert[TLS_MAX_CHAIN];
    unsigned n;
    gnutls_privkey_t key;
};

struct vk__http_tls {
    struct tls_pair *cur; /* head; the rest are replaced pairs */
};

static pthread_mutex_t tls_mu = PTHREAD_MUTEX_INITIALIZER;
static struct vk__http_tls *tls_active; /* the one TLS server of the process */

bool vk_http_tls_supported(void)
{
    return MHD_is_feature_supported(MHD_FEATURE_TLS) == MHD_YES;
}

static void pair_free(struct tls_pair *p)
{
    for (unsigned i = 0; i < p->n; i++)
        gnutls_pcert_deinit(&p->pcert[i]);
    if (p->key)
        gnutls_privkey_deinit(p->key);
    vk_mem_free(p);
}

/* Parse and match `cert_pem` and `key_pem` into a new pair (NULL `out`: only check). */
static int pair_new(const char *cert_pem, const char *key_pem, struct tls_pair **out,
                    struct vk_err *err)
{
    if (!cert_pem || !*cert_pem || !key_pem || !*key_pem)
        return vk_err_set(err, VK_EINVAL, "TLS needs both a certificate and a key");
    gnutls_datum_t cd = {.data = (unsigned char *)cert_pem, .size = (unsigned)strlen(cert_pem)};
    gnutls_datum_t kd = {.data = (unsigned char *)key_pem, .size = (unsigned)strlen(key_pem)};
    /* gnutls checks that the key is the certificate's (GNUTLS_E_CERTIFICATE_KEY_MISMATCH). */
    gnutls_certificate_credentials_t cred;
    int g = gnutls_certificate_allocate_credentials(&cred);
    if (g < 0)
        return vk_err_set(err, VK_ENOMEM, "out of memory");
    g = gnutls_certificate_set_x509_key_mem2(cred, &cd, &kd, GNUTLS_X509_FMT_PEM, NULL, 0);
    gnutls_certificate_free_credentials(cred);
    if (g < 0)
        return vk_err_set(err, VK_EINVAL, "the TLS certificate and key do not make a pair: %s",
                          gnutls_strerror(g));
    if (!out)
        return 0;
    struct tls_pair *p = vk_mem_xcalloc(1, sizeof(*p));
    p->n = TLS_MAX_CHAIN;
    g = gnutls_pcert_list_import_x509_raw(p->pcert, &p->n, &cd, GNUTLS_X509_FMT_PEM, 0);
    if (g < 0) {
        p->n = 0;
        pair_free(p);
        return vk_err_set(err, VK_EINVAL, "cannot read the TLS certificate (at most %u): %s",
                          TLS_MAX_CHAIN, gnutls_strerror(g));
    }
    g = gnutls_privkey_init(&p->key);
    if (g >= 0)
        g = gnutls_privkey_import_x509_raw(p->key, &kd, GNUTLS_X509_FMT_PEM, NULL, 0);
    if (g < 0) {
        pair_free(p);
        return vk_err_set(err, VK_EINVAL, "cannot read the TLS key: %s", gnutls_strerror(g));
    }
    *out = p;
    return 0;
}

int vk_http_tls_check(const char *cert_pem, const char *key_pem, struct vk_err *err)
{
    return pair_new(cert_pem, key_pem, NULL, err);
}

int vk__http_tls_new(struct vk_http_server *srv, const char *cert_pem, const char *key_pem,
                     struct vk_err *err)
{
    if (!vk_http_tls_supported())
        return vk_err_set(err, VK_EINVAL, "this libmicrohttpd was built without TLS support");
    struct tls_pair *p = NULL;
    int rc = pair_new(cert_pem, key_pem, &p, err);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&tls_mu);
    if (tls_active) {
        pthread_mutex_unlock(&tls_mu);
        pair_free(p);
        return vk_err_set(err, VK_EINVAL, "only one TLS server per process");
    }
    srv->tls = vk_mem_xcalloc(1, sizeof(*srv->tls));
    srv->tls->cur = p;
    tls_active = srv->tls;
    pthread_mutex_unlock(&tls_mu);
    return 0;
}

void vk__http_tls_free(struct vk_http_server *srv)
{
    if (!srv->tls)
        return;
    pthread_mutex_lock(&tls_mu);
    if (tls_active == srv->tls)
        tls_active = NULL;
    pthread_mutex_unlock(&tls_mu);
    for (struct tls_pair *p = srv->tls->cur, *next; p; p = next) {
        next = p->next;
        pair_free(p);
    }
    vk_mem_free(srv->tls);
    srv->tls = NULL;
}

int vk_http_server_tls_reload(struct vk_http_server *srv, const char *cert_pem, const char *key_pem,
                              struct vk_err *err)
{
    if (!srv->tls)
        return vk_err_set(err, VK_EINVAL, "the server was started without TLS");
    struct tls_pair *p = NULL;
    int rc = pair_new(cert_pem, key_pem, &p, err);
    if (rc < 0)
        return rc;
    pthread_mutex_lock(&tls_mu);
    p->next = srv->tls->cur;
    srv->tls->cur = p;
    pthread_mutex_unlock(&tls_mu);
    return 0;
}

/* Called by GnuTLS in a polling thread for every handshake: the current pair. */
int vk__http_tls_retrieve(gnutls_session_t session, const gnutls_datum_t *req_ca_dn, int nreqs,
                          const gnutls_pk_algorithm_t *pk_algos, int pk_algos_length,
                          gnutls_pcert_st **pcert, unsigned int *pcert_length,
                          gnutls_privkey_t *pkey)
{
    (void)session;
    (void)req_ca_dn;
    (void)nreqs;
    (void)pk_algos;
    (void)pk_algos_length;
    pthread_mutex_lock(&tls_mu);
    struct tls_pair *p = tls_active ? tls_active->cur : NULL;
    if (p) {
        *pcert = p->pcert;
        *pcert_length = p->n;
        *pkey = p->key;
    }
    pthread_mutex_unlock(&tls_mu);
    return p ? 0 : -1;
}
