/* Unit tests for auth_saml: IdP metadata loading, the AuthnRequest of the HTTP-Redirect
 * binding, and Responses signed here with xmlsec1 by the IdP's key (an RSA key and
 * certificate made with OpenSSL) verified, and every hostile one refused: unsigned, another
 * key (with its certificate in KeyInfo), tampered, wrapped, a signature of another element,
 * SHA-1, wrong audience, recipient, destination, issuer, InResponseTo, expired, not yet
 * valid, a failed status, a DTD, not base64, too large. (Replay of an assertion ID is the
 * API's check: tests/browser/saml.test.js.) */
#include "vk_test.h"
#include "vulcan/auth_saml.h"

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xmlsec/crypto.h>
#include <xmlsec/xmldsig.h>
#include <xmlsec/xmlsec.h>
#include <xmlsec/xmltree.h>
#include <zlib.h>

#define IDP "https://idp.example.com/"
#define SP "https://ci.example.com/api/v1/sso/saml/metadata"
#define ACS "https://ci.example.com/api/v1/sso/saml/acs"
#define REQ "_req0123456789"
#define NOW 1800000000LL
#define RSA_SHA256 "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
#define RSA_SHA1 "http://www.w3.org/2000/09/xmldsig#rsa-sha1"
#define SHA256 "http://www.w3.org/2001/04/xmlenc#sha256"
#define SHA1 "http://www.w3.org/2000/09/xmldsig#sha1"

static char *idp_key, *other_key, *idp_cert_b64, *other_cert_b64;
static struct vk_auth_saml_idp *idp;

/* A key and a self-signed certificate: the key as PEM, the certificate as base64 DER. */
static void make_key(char **key_pem, char **cert_b64)
{
    EVP_PKEY *k = EVP_RSA_gen(2048);
    assert_non_null(k);
    X509 *x = X509_new();
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 86400);
    X509_set_pubkey(x, k);
    X509_NAME *nm = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(nm, "CN", MBSTRING_ASC, (const unsigned char *)"idp", -1, -1, 0);
    X509_set_issuer_name(x, nm);
    assert_true(X509_sign(x, k, EVP_sha256()) > 0);
    unsigned char *der = NULL;
    int dl = i2d_X509(x, &der);
    assert_true(dl > 0);
    *cert_b64 = malloc((size_t)dl * 4 / 3 + 8);
    EVP_EncodeBlock((unsigned char *)*cert_b64, der, dl);
    OPENSSL_free(der);
    BIO *b = BIO_new(BIO_s_mem());
    assert_int_equal(PEM_write_bio_PrivateKey(b, k, NULL, NULL, 0, NULL, NULL), 1);
    char *p = NULL;
    long n = BIO_get_mem_data(b, &p);
    *key_pem = malloc((size_t)n + 1);
    memcpy(*key_pem, p, (size_t)n);
    (*key_pem)[n] = '\0';
    BIO_free(b);
    X509_free(x);
    EVP_PKEY_free(k);
}

static char *metadata(const char *cert_b64, const char *sso_binding)
{
    char *m = malloc(8192);
    snprintf(m, 8192,
             "<md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" "
             "entityID=\"" IDP "\"><md:IDPSSODescriptor protocolSupportEnumeration=\"urn:oasis:"
             "names:tc:SAML:2.0:protocol\">%s%s%s"
             "<md:SingleSignOnService Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:%s\" "
             "Location=\"https://idp.example.com/sso\"/></md:IDPSSODescriptor>"
             "</md:EntityDescriptor>",
             cert_b64 ? "<md:KeyDescriptor use=\"signing\"><ds:KeyInfo xmlns:ds=\"http://www.w3."
                        "org/2000/09/xmldsig#\"><ds:X509Data><ds:X509Certificate>"
                      : "",
             cert_b64 ? cert_b64 : "",
             cert_b64 ? "</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>" : "",
             sso_binding);
    return m;
}

static int setup(void **state)
{
    (void)state;
    make_key(&idp_key, &idp_cert_b64);
    make_key(&other_key, &other_cert_b64);
    char *m = metadata(idp_cert_b64, "HTTP-Redirect");
    struct vk_err err;
    vk_err_clear(&err);
    int rc = vk_auth_saml_idp_load(m, strlen(m), &idp, &err);
    free(m);
    if (rc != 0)
        fail_msg("metadata: %s", err.msg);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    vk_auth_saml_idp_free(idp);
    free(idp_key);
    free(other_key);
    free(idp_cert_b64);
    free(other_cert_b64);
    return 0;
}

struct ro {
    const char *audience, *recipient, *in_response_to, *issuer, *destination, *status;
    int64_t not_before, not_after;
    bool no_sig, sign_response, keyinfo_other;
    const char *key;               /* PEM; NULL: the IdP's */
    const char *sig_alg, *dig_alg; /* NULL: RSA-SHA256, SHA-256 */
    const char *ref;               /* the Reference URI; NULL: "#_a1" (or "#_r1") */
    int wrap;                      /* 1: the signed assertion into Extensions, an evil one in */
    bool tamper, dtd, two_signed, no_destination;
};

static const char *sig_tmpl(const struct ro *o, const char *ref, char *buf, size_t cap)
{
    snprintf(buf, cap,
             "<ds:Signature xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"><ds:SignedInfo>"
             "<ds:CanonicalizationMethod Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/>"
             "<ds:SignatureMethod Algorithm=\"%s\"/><ds:Reference URI=\"%s\"><ds:Transforms>"
             "<ds:Transform Algorithm=\"http://www.w3.org/2000/09/xmldsig#enveloped-signature\"/>"
             "<ds:Transform Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\"/>"
             "</ds:Transforms><ds:DigestMethod Algorithm=\"%s\"/><ds:DigestValue/>"
             "</ds:Reference></ds:SignedInfo><ds:SignatureValue/>%s%s%s</ds:Signature>",
             o->sig_alg ? o->sig_alg : RSA_SHA256, ref, o->dig_alg ? o->dig_alg : SHA256,
             o->keyinfo_other ? "<ds:KeyInfo><ds:X509Data><ds:X509Certificate>" : "",
             o->keyinfo_other ? other_cert_b64 : "",
             o->keyinfo_other ? "</ds:X509Certificate></ds:X509Data></ds:KeyInfo>" : "");
    return buf;
}

static char *iso(int64_t t, char out[32])
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return out;
}

static void assertion(const struct ro *o, const char *id, const char *who, const char *sig,
                      char *out, size_t cap)
{
    char ii[32], nb[32], na[32], na2[32];
    snprintf(out, cap,
             "<saml:Assertion xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"%s\" "
             "Version=\"2.0\" IssueInstant=\"%s\"><saml:Issuer>%s</saml:Issuer>%s"
             "<saml:Subject><saml:NameID Format=\"urn:oasis:names:tc:SAML:2.0:nameid-format:"
             "persistent\">%s</saml:NameID><saml:SubjectConfirmation Method=\"urn:oasis:names:"
             "tc:SAML:2.0:cm:bearer\"><saml:SubjectConfirmationData NotOnOrAfter=\"%s\" "
             "Recipient=\"%s\" InResponseTo=\"%s\"/></saml:SubjectConfirmation></saml:Subject>"
             "<saml:Conditions NotBefore=\"%s\" NotOnOrAfter=\"%s\"><saml:AudienceRestriction>"
             "<saml:Audience>%s</saml:Audience></saml:AudienceRestriction></saml:Conditions>"
             "<saml:AttributeStatement><saml:Attribute Name=\"uid\"><saml:AttributeValue>%s"
             "</saml:AttributeValue></saml:Attribute><saml:Attribute Name=\"groups\">"
             "<saml:AttributeValue>builders</saml:AttributeValue><saml:AttributeValue> ops "
             "</saml:AttributeValue></saml:Attribute></saml:AttributeStatement></saml:Assertion>",
             id, iso(NOW, ii), o->issuer ? o->issuer : IDP, sig ? sig : "", who,
             iso(o->not_after ? o->not_after : NOW + 300, na), o->recipient ? o->recipient : ACS,
             o->in_response_to ? o->in_response_to : REQ,
             iso(o->not_before ? o->not_before : NOW - 60, nb),
             iso(o->not_after ? o->not_after : NOW + 300, na2), o->audience ? o->audience : SP,
             who);
}

/* Sign the ds:Signature children of `root` (and below) with `key_pem`. */
static void sign_all(xmlDocPtr doc, const char *key_pem)
{
    xmlNodePtr stack[64];
    int sp = 0;
    stack[sp++] = xmlDocGetRootElement(doc);
    xmlNodePtr sigs[4];
    int ns = 0;
    while (sp) {
        xmlNodePtr n = stack[--sp];
        for (; n; n = n->next) {
            if (n->type != XML_ELEMENT_NODE)
                continue;
            xmlAttrPtr id = xmlHasProp(n, (const xmlChar *)"ID");
            if (id) {
                xmlChar *v = xmlGetProp(n, (const xmlChar *)"ID");
                if (!xmlGetID(doc, v))
                    xmlAddID(NULL, doc, v, id);
                xmlFree(v);
            }
            if (strcmp((const char *)n->name, "Signature") == 0 && ns < 4)
                sigs[ns++] = n;
            else if (n->children && sp < 64)
                stack[sp++] = n->children;
        }
    }
    /* Inner (assertion) signatures first: a Response signature covers them signed. */
    for (int i = ns - 1; i >= 0; i--) {
        xmlSecDSigCtxPtr ctx = xmlSecDSigCtxCreate(NULL);
        assert_non_null(ctx);
        ctx->signKey =
            xmlSecCryptoAppKeyLoadMemory((const xmlSecByte *)key_pem, (xmlSecSize)strlen(key_pem),
                                         xmlSecKeyDataFormatPem, NULL, NULL, NULL);
        assert_non_null(ctx->signKey);
        assert_int_equal(xmlSecDSigCtxSign(ctx, sigs[i]), 0);
        xmlSecDSigCtxDestroy(ctx);
    }
}

/* The base64 SAMLResponse of `o` (malloc'd). */
static char *make(const struct ro *o)
{
    static char a[16384], b[16384], sig[4096], sig2[4096], body[33000], xml[48000];
    const char *ar = o->ref ? o->ref : "#_a1";
    bool asig = !o->no_sig && !o->sign_response;
    assertion(o, "_a1", "alice", asig ? sig_tmpl(o, ar, sig, sizeof(sig)) : NULL, a, sizeof(a));
    if (o->two_signed)
        assertion(o, "_a2", "bob", sig_tmpl(o, "#_a2", sig2, sizeof(sig2)), b, sizeof(b));
    if (o->wrap == 1) {
        struct ro plain = *o;
        assertion(&plain, "_evil", "admin", NULL, b, sizeof(b));
        snprintf(body, sizeof(body), "<samlp:Extensions>%s</samlp:Extensions>%s", a, b);
    } else {
        snprintf(body, sizeof(body), "%s%s", a, o->two_signed ? b : "");
    }
    char rs[4096];
    int xn =
        snprintf(xml, sizeof(xml),
                 "<samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\" "
                 "xmlns:saml=\"urn:oasis:names:tc:SAML:2.0:assertion\" ID=\"_r1\" Version=\"2.0\" "
                 "IssueInstant=\"2027-01-15T08:00:00Z\"%s%s%s InResponseTo=\"%s\">"
                 "<saml:Issuer>%s</saml:Issuer>%s<samlp:Status><samlp:StatusCode Value=\"%s\"/>"
                 "</samlp:Status>%s</samlp:Response>",
                 o->no_destination ? "" : " Destination=\"",
                 o->no_destination ? "" : (o->destination ? o->destination : ACS),
                 o->no_destination ? "" : "\"", o->in_response_to ? o->in_response_to : REQ,
                 o->issuer ? o->issuer : IDP,
                 o->sign_response ? sig_tmpl(o, o->ref ? o->ref : "#_r1", rs, sizeof(rs)) : "",
                 o->status ? o->status : "urn:oasis:names:tc:SAML:2.0:status:Success", body);
    assert_true(xn > 0 && (size_t)xn < sizeof(xml));
    xmlDocPtr doc = xmlReadMemory(xml, (int)strlen(xml), NULL, NULL, 0);
    assert_non_null(doc);
    if (!o->no_sig)
        sign_all(doc, o->key ? o->key : idp_key);
    xmlChar *out = NULL;
    int n = 0;
    xmlDocDumpMemory(doc, &out, &n);
    xmlFreeDoc(doc);
    char *text = malloc((size_t)n + 256);
    snprintf(text, (size_t)n + 256, "%s%s", o->dtd ? "<!DOCTYPE r [<!ENTITY e \"x\">]>" : "",
             (const char *)out + (o->dtd ? strcspn((const char *)out, "\n") + 1 : 0));
    xmlFree(out);
    if (o->tamper) {
        char *p = strstr(text, ">alice</saml:NameID>");
        assert_non_null(p);
        memcpy(p + 1, "admin", 5);
    }
    size_t tl = strlen(text);
    char *b64 = malloc(tl * 4 / 3 + 8);
    EVP_EncodeBlock((unsigned char *)b64, (const unsigned char *)text, (int)tl);
    free(text);
    return b64;
}

static int verify(const struct ro *o, json_t **claims, struct vk_err *err)
{
    char *b64 = make(o);
    struct vk_auth_saml_check chk = {
        .sp_entity_id = SP, .acs_url = ACS, .request_id = REQ, .now_s = NOW};
    vk_err_clear(err);
    *claims = NULL;
    int rc = vk_auth_saml_verify(idp, b64, strlen(b64), &chk, claims, err);
    free(b64);
    return rc;
}

static void refused(const struct ro *o, const char *why)
{
    json_t *claims = NULL;
    struct vk_err err;
    int rc = verify(o, &claims, &err);
    if (rc != VK_EAUTH || claims || !strstr(err.msg, why))
        fail_msg("expected a refusal saying '%s', got %d '%s'", why, rc, err.msg);
}

static void test_good_assertion_signature(void **state)
{
    (void)state;
    struct ro o = {0};
    json_t *claims = NULL;
    struct vk_err err;
    int rc = verify(&o, &claims, &err);
    if (rc != 0)
        fail_msg("%s", err.msg);
    assert_string_equal(json_string_value(json_object_get(claims, "sub")), "alice");
    assert_string_equal(json_string_value(json_object_get(claims, "assertion_id")), "_a1");
    assert_int_equal(json_integer_value(json_object_get(claims, "expires_s")),
                     NOW + 300 + VK_AUTH_SAML_SKEW_S);
    json_t *g = json_object_get(json_object_get(claims, "attributes"), "groups");
    assert_int_equal(json_array_size(g), 2);
    assert_string_equal(json_string_value(json_array_get(g, 1)), "ops");
    json_decref(claims);
}

static void test_good_response_signature(void **state)
{
    (void)state;
    struct ro o = {.sign_response = true};
    json_t *claims = NULL;
    struct vk_err err;
    int rc = verify(&o, &claims, &err);
    if (rc != 0)
        fail_msg("%s", err.msg);
    json_decref(claims);
    /* A key in KeyInfo is not a reason to trust anything: the IdP's own signature with
     * another certificate named there still verifies against the metadata's. */
    /* Destination is optional on a Response that is not signed itself. */
    rc = verify(&(struct ro){.no_destination = true}, &claims, &err);
    if (rc != 0)
        fail_msg("%s", err.msg);
    json_decref(claims);
    struct ro k = {.keyinfo_other = true};
    rc = verify(&k, &claims, &err);
    if (rc != 0)
        fail_msg("%s", err.msg);
    json_decref(claims);
}

static void test_signature_attacks(void **state)
{
    (void)state;
    refused(&(struct ro){.no_sig = true}, "unsigned");
    refused(&(struct ro){.key = other_key}, "does not verify with the IdP's certificate");
    refused(&(struct ro){.key = other_key, .keyinfo_other = true},
            "does not verify with the IdP's certificate");
    refused(&(struct ro){.key = other_key, .sign_response = true, .keyinfo_other = true},
            "does not verify with the IdP's certificate");
    refused(&(struct ro){.tamper = true}, "does not verify");
    refused(&(struct ro){.wrap = 1}, "exactly one Assertion");
    refused(&(struct ro){.two_signed = true}, "exactly one Assertion");
    refused(&(struct ro){.ref = "#_r1"}, "does not cover exactly the signed element");
    refused(&(struct ro){.ref = ""}, "does not cover exactly the signed element");
    refused(&(struct ro){.sig_alg = RSA_SHA1, .dig_alg = SHA1}, "algorithm not allowed");
    refused(&(struct ro){.dtd = true}, "DTD");
}

static void test_condition_attacks(void **state)
{
    (void)state;
    refused(&(struct ro){.audience = "https://other.example.com/"}, "Audience");
    refused(&(struct ro){.recipient = "https://other.example.com/acs"}, "Recipient");
    refused(&(struct ro){.destination = "https://other.example.com/acs"}, "Destination");
    refused(&(struct ro){.sign_response = true, .no_destination = true}, "no Destination");
    refused(&(struct ro){.in_response_to = "_unknown"}, "InResponseTo");
    refused(&(struct ro){.issuer = "https://evil.example.com/"}, "Issuer");
    refused(&(struct ro){.not_before = NOW - 3600, .not_after = NOW - VK_AUTH_SAML_SKEW_S - 1},
            "expired");
    refused(&(struct ro){.not_before = NOW + VK_AUTH_SAML_SKEW_S + 60, .not_after = NOW + 3600},
            "not yet valid");
    refused(&(struct ro){.status = "urn:oasis:names:tc:SAML:2.0:status:Requester"}, "status");
    /* Within the skew both ways: accepted. */
    json_t *claims = NULL;
    struct vk_err err;
    assert_int_equal(
        verify(&(struct ro){.not_before = NOW + 60, .not_after = NOW - 60}, &claims, &err), 0);
    json_decref(claims);
}

static void test_not_a_response(void **state)
{
    (void)state;
    struct vk_auth_saml_check chk = {
        .sp_entity_id = SP, .acs_url = ACS, .request_id = REQ, .now_s = NOW};
    json_t *claims = NULL;
    struct vk_err err;
    vk_err_clear(&err);
    assert_int_equal(vk_auth_saml_verify(idp, "not*base64", 10, &chk, &claims, &err), VK_EAUTH);
    const char *x = "PHg+PC94Pg=="; /* <x></x> */
    assert_int_equal(vk_auth_saml_verify(idp, x, strlen(x), &chk, &claims, &err), VK_EAUTH);
    assert_non_null(strstr(err.msg, "not a SAML 2.0 Response"));
    size_t big = VK_AUTH_SAML_RESPONSE_MAX * 2;
    char *b = malloc(big);
    memset(b, 'A', big);
    assert_int_equal(vk_auth_saml_verify(idp, b, big, &chk, &claims, &err), VK_ETOOBIG);
    free(b);
    assert_null(claims);
}

static void test_metadata(void **state)
{
    (void)state;
    assert_string_equal(vk_auth_saml_idp_entity_id(idp), IDP);
    assert_string_equal(vk_auth_saml_idp_sso_url(idp), "https://idp.example.com/sso");
    struct vk_auth_saml_idp *x = NULL;
    struct vk_err err;
    vk_err_clear(&err);
    char *m = metadata(NULL, "HTTP-Redirect");
    assert_int_equal(vk_auth_saml_idp_load(m, strlen(m), &x, &err), VK_EPARSE);
    assert_non_null(strstr(err.msg, "no signing certificate"));
    free(m);
    m = metadata(idp_cert_b64, "HTTP-POST");
    assert_int_equal(vk_auth_saml_idp_load(m, strlen(m), &x, &err), VK_EPARSE);
    assert_non_null(strstr(err.msg, "HTTP-Redirect"));
    free(m);
    const char *dtd = "<!DOCTYPE x [<!ENTITY a \"b\">]><x/>";
    assert_int_equal(vk_auth_saml_idp_load(dtd, strlen(dtd), &x, &err), VK_EPARSE);
    assert_null(x);
}

static void test_authn_request(void **state)
{
    (void)state;
    char *q = NULL;
    struct vk_err err;
    vk_err_clear(&err);
    assert_int_equal(
        vk_auth_saml_authn_request(REQ, SP, ACS, "https://idp.example.com/sso", NOW, &q, &err), 0);
    /* Percent-decode, base64-decode, inflate. */
    char b64[4096];
    size_t o = 0;
    for (const char *p = q; *p && o + 1 < sizeof(b64); p++) {
        if (*p == '%') {
            char h[3] = {p[1], p[2], 0};
            b64[o++] = (char)strtol(h, NULL, 16);
            p += 2;
        } else {
            b64[o++] = *p;
        }
    }
    b64[o] = '\0';
    free(q);
    unsigned char z[4096];
    int zl = EVP_DecodeBlock(z, (const unsigned char *)b64, (int)o);
    assert_true(zl > 0);
    while (o && b64[o - 1] == '=') {
        zl--;
        o--;
    }
    char xml[8192];
    z_stream zs = {0};
    assert_int_equal(inflateInit2(&zs, -15), Z_OK);
    zs.next_in = z;
    zs.avail_in = (uInt)zl;
    zs.next_out = (Bytef *)xml;
    zs.avail_out = sizeof(xml) - 1;
    assert_int_equal(inflate(&zs, Z_FINISH), Z_STREAM_END);
    xml[zs.total_out] = '\0';
    inflateEnd(&zs);
    assert_non_null(strstr(xml, "ID=\"" REQ "\""));
    assert_non_null(strstr(xml, "AssertionConsumerServiceURL=\"" ACS "\""));
    assert_non_null(strstr(xml, "<saml:Issuer>" SP "</saml:Issuer>"));
    assert_non_null(strstr(xml, "IssueInstant=\"2027-01-15T08:00:00Z\""));
    /* Quotes in a URL cannot break out of the attribute. */
    assert_int_equal(
        vk_auth_saml_authn_request(REQ, SP, "https://x/\"><evil/>", "https://i/", NOW, &q, &err),
        0);
    free(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_assertion_signature),
        cmocka_unit_test(test_good_response_signature),
        cmocka_unit_test(test_signature_attacks),
        cmocka_unit_test(test_condition_attacks),
        cmocka_unit_test(test_not_a_response),
        cmocka_unit_test(test_metadata),
        cmocka_unit_test(test_authn_request),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
