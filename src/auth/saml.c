/*
 * auth saml: SAML 2.0 service-provider checks with xmlsec1 (include/vulcan/auth_saml.h).
 */
#include "vulcan/auth_saml.h"

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/valid.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xmlsec/crypto.h>
#include <xmlsec/errors.h>
#include <xmlsec/keys.h>
#include <xmlsec/xmldsig.h>
#include <xmlsec/xmlsec.h>
#include <xmlsec/xmltree.h>
#include <zlib.h>

#define NS_SAMLP "urn:oasis:names:tc:SAML:2.0:protocol"
#define NS_SAML "urn:oasis:names:tc:SAML:2.0:assertion"
#define NS_MD "urn:oasis:names:tc:SAML:2.0:metadata"
#define NS_DS "http://www.w3.org/2000/09/xmldsig#"
#define BINDING_REDIRECT "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect"
#define BINDING_POST "urn:oasis:names:tc:SAML:2.0:bindings:HTTP-POST"
#define STATUS_SUCCESS "urn:oasis:names:tc:SAML:2.0:status:Success"
#define CM_BEARER "urn:oasis:names:tc:SAML:2.0:cm:bearer"
#define URL_MAX 1024
#define VALUE_MAX 1024 /* an attribute value, a NameID */
#define ATTRS_MAX 64
#define VALUES_MAX 256

struct vk_auth_saml_idp {
    char entity_id[URL_MAX];
    char sso_url[URL_MAX];
    xmlSecKeyPtr keys[VK_AUTH_SAML_CERTS_MAX];
    size_t nkeys;
};

/* ---------------------------------------------------------------- Library set-up */

static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_rc; /* written once, under init_once */

/* xmlsec prints its errors to stderr by default; a library returns them instead. */
static void quiet_errors(const char *file, int line, const char *func, const char *obj,
                         const char *subj, int reason, const char *msg)
{
    (void)file, (void)line, (void)func, (void)obj, (void)subj, (void)reason, (void)msg;
}

static void quiet_xml(void *ctx, const char *msg, ...)
{
    (void)ctx, (void)msg;
}

static void init_libs(void)
{
    xmlInitParser();
    if (xmlSecInit() < 0 || xmlSecCryptoAppInit(NULL) < 0 || xmlSecCryptoInit() < 0) {
        init_rc = -1;
        return;
    }
    xmlSecErrorsSetCallback(quiet_errors);
}

static int libs(struct vk_err *err)
{
    pthread_once(&init_once, init_libs);
    return init_rc == 0 ? 0 : vk_err_set(err, VK_EINTERNAL, "xmlsec1 cannot be initialised");
}

/* ---------------------------------------------------------------- Small helpers */

/* Parse `len` bytes of XML without network, DTDs or entity substitution; a document that
 * declares a DTD is refused (no entity tricks). NULL with *err set. */
static xmlDocPtr parse(const char *xml, size_t len, const char *what, struct vk_err *err)
{
    xmlSetGenericErrorFunc(NULL, quiet_xml);
    xmlDocPtr doc = xmlReadMemory(xml, (int)len, NULL, NULL,
                                  XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
    if (!doc) {
        vk_err_set(err, VK_EAUTH, "the %s is not well-formed XML", what);
        return NULL;
    }
    if (doc->intSubset || doc->extSubset || !xmlDocGetRootElement(doc)) {
        xmlFreeDoc(doc);
        vk_err_set(err, VK_EAUTH, "the %s declares a DTD (refused) or has no root element", what);
        return NULL;
    }
    return doc;
}

static bool is(const xmlNode *n, const char *ns, const char *name)
{
    return n && n->type == XML_ELEMENT_NODE && n->ns && n->ns->href &&
           strcmp((const char *)n->ns->href, ns) == 0 && strcmp((const char *)n->name, name) == 0;
}

/* The first child element `ns`:`name` of `n`; *count (when not NULL) how many there are. */
static xmlNodePtr child(const xmlNode *n, const char *ns, const char *name, int *count)
{
    xmlNodePtr first = NULL;
    int c = 0;
    for (xmlNodePtr k = n ? n->children : NULL; k; k = k->next)
        if (is(k, ns, name)) {
            if (!first)
                first = k;
            c++;
        }
    if (count)
        *count = c;
    return first;
}

/* Elements `ns`:`name` anywhere under `n` (itself included). */
static int count_all(const xmlNode *n, const char *ns, const char *name)
{
    int c = 0;
    for (; n; n = n->next) {
        if (n->type != XML_ELEMENT_NODE)
            continue;
        if (is(n, ns, name))
            c++;
        c += count_all(n->children, ns, name);
    }
    return c;
}

/* Attributes named ID, Id, id (any namespace, xml:id too) whose value is `id`, anywhere. */
static int count_ids(const xmlNode *n, const char *id)
{
    int c = 0;
    for (; n; n = n->next) {
        if (n->type != XML_ELEMENT_NODE)
            continue;
        for (xmlAttrPtr a = n->properties; a; a = a->next) {
            if (strcmp((const char *)a->name, "ID") != 0 &&
                strcmp((const char *)a->name, "Id") != 0 &&
                strcmp((const char *)a->name, "id") != 0)
                continue;
            xmlChar *v = xmlNodeListGetString(n->doc, a->children, 1);
            if (v && strcmp((const char *)v, id) == 0)
                c++;
            xmlFree(v);
        }
        c += count_ids(n->children, id);
    }
    return c;
}

/* An attribute (no namespace) copied into `out`; false when absent or too long. */
static bool attr(const xmlNode *n, const char *name, char *out, size_t cap)
{
    xmlChar *v = n ? xmlGetNoNsProp(n, (const xmlChar *)name) : NULL;
    bool ok = v && strlen((const char *)v) < cap;
    if (ok)
        snprintf(out, cap, "%s", (const char *)v);
    xmlFree(v);
    return ok;
}

/* The text of `n`, leading and trailing white space dropped; false when too long. */
static bool text(const xmlNode *n, char *out, size_t cap)
{
    xmlChar *v = n ? xmlNodeGetContent(n) : NULL;
    if (!v)
        return false;
    const char *s = (const char *)v;
    while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
        s++;
    size_t l = strlen(s);
    while (l && (s[l - 1] == ' ' || s[l - 1] == '\t' || s[l - 1] == '\r' || s[l - 1] == '\n'))
        l--;
    bool ok = l < cap;
    if (ok)
        snprintf(out, cap, "%.*s", (int)l, s);
    xmlFree(v);
    return ok;
}

/* Standard base64, white space skipped. The decoded length, or -1. */
static long b64_decode(const char *in, size_t n, unsigned char *out, size_t cap)
{
    size_t o = 0;
    unsigned acc = 0;
    int bits = 0, pad = 0;
    for (size_t i = 0; i < n; i++) {
        char c = in[i];
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n')
            continue;
        if (c == '=') {
            pad++;
            continue;
        }
        int v = c >= 'A' && c <= 'Z'   ? c - 'A'
                : c >= 'a' && c <= 'z' ? c - 'a' + 26
                : c >= '0' && c <= '9' ? c - '0' + 52
                : c == '+'             ? 62
                : c == '/'             ? 63
                                       : -1;
        if (v < 0 || pad)
            return -1;
        acc = (acc << 6 | (unsigned)v) & 0xffffff;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (o >= cap)
                return -1;
            out[o++] = (unsigned char)(acc >> bits);
        }
    }
    return pad > 2 ? -1 : (long)o;
}

/* xs:dateTime in UTC ("2026-12-04T01:12:09Z", fractions allowed) as seconds, or -1. */
static int64_t parse_time(const char *s)
{
    int y, mo, d, h, mi, se, used = 0;
    if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &se, &used) != 6 ||
        used != 19 || y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 ||
        mi > 59 || se > 60)
        return -1;
    const char *p = s + used;
    if (*p == '.') {
        p++;
        if (*p < '0' || *p > '9')
            return -1;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    if (strcmp(p, "Z") != 0 && strcmp(p, "") != 0 && strcmp(p, "+00:00") != 0)
        return -1;
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = se};
    return (int64_t)timegm(&tm);
}

static bool time_attr(const xmlNode *n, const char *name, int64_t *out)
{
    char v[64];
    if (!attr(n, name, v, sizeof(v)))
        return false;
    *out = parse_time(v);
    return *out >= 0;
}

/* ---------------------------------------------------------------- Metadata */

static xmlNodePtr find(xmlNodePtr n, const char *ns, const char *name)
{
    for (; n; n = n->next) {
        if (is(n, ns, name))
            return n;
        xmlNodePtr f = n->type == XML_ELEMENT_NODE ? find(n->children, ns, name) : NULL;
        if (f)
            return f;
    }
    return NULL;
}

static void add_certs(struct vk_auth_saml_idp *idp, xmlNodePtr n)
{
    for (; n && idp->nkeys < VK_AUTH_SAML_CERTS_MAX; n = n->next) {
        if (n->type != XML_ELEMENT_NODE)
            continue;
        if (is(n, NS_DS, "X509Certificate")) {
            xmlChar *v = xmlNodeGetContent(n);
            size_t vl = v ? strlen((const char *)v) : 0;
            unsigned char *der = vl ? malloc(vl) : NULL;
            long dl = der ? b64_decode((const char *)v, vl, der, vl) : -1;
            xmlSecKeyPtr k =
                dl > 0 ? xmlSecCryptoAppKeyLoadMemory(der, (xmlSecSize)dl,
                                                      xmlSecKeyDataFormatCertDer, NULL, NULL, NULL)
                       : NULL;
            if (k)
                idp->keys[idp->nkeys++] = k;
            free(der);
            xmlFree(v);
        } else {
            add_certs(idp, n->children);
        }
    }
}

int vk_auth_saml_idp_load(const char *xml, size_t len, struct vk_auth_saml_idp **out,
                          struct vk_err *err)
{
    *out = NULL;
    if (len > VK_AUTH_SAML_METADATA_MAX)
        return vk_err_set(err, VK_ETOOBIG, "the IdP metadata is larger than %d bytes",
                          VK_AUTH_SAML_METADATA_MAX);
    int rc = libs(err);
    if (rc < 0)
        return rc;
    xmlDocPtr doc = parse(xml, len, "IdP metadata", err);
    if (!doc)
        return VK_EPARSE;
    struct vk_auth_saml_idp *idp = calloc(1, sizeof(*idp));
    if (!idp) {
        xmlFreeDoc(doc);
        return vk_err_set(err, VK_ENOMEM, "out of memory");
    }
    xmlNodePtr sso = find(xmlDocGetRootElement(doc), NS_MD, "IDPSSODescriptor");
    xmlNodePtr ent = sso ? sso->parent : NULL;
    if (!sso || !is(ent, NS_MD, "EntityDescriptor") ||
        !attr(ent, "entityID", idp->entity_id, sizeof(idp->entity_id)) || !idp->entity_id[0])
        rc = vk_err_set(err, VK_EPARSE,
                        "the IdP metadata has no EntityDescriptor with an entityID and an "
                        "IDPSSODescriptor");
    for (xmlNodePtr k = sso ? sso->children : NULL; rc == 0 && k; k = k->next) {
        char b[256];
        if (is(k, NS_MD, "SingleSignOnService") && attr(k, "Binding", b, sizeof(b)) &&
            strcmp(b, BINDING_REDIRECT) == 0 && !idp->sso_url[0] &&
            !attr(k, "Location", idp->sso_url, sizeof(idp->sso_url)))
            idp->sso_url[0] = '\0';
        if (is(k, NS_MD, "KeyDescriptor") &&
            (!attr(k, "use", b, sizeof(b)) || strcmp(b, "signing") == 0))
            add_certs(idp, k->children);
    }
    if (rc == 0 && strncmp(idp->sso_url, "https://", 8) != 0 &&
        strncmp(idp->sso_url, "http://", 7) != 0)
        rc = vk_err_set(err, VK_EPARSE,
                        "the IdP metadata has no http(s) SingleSignOnService for the "
                        "HTTP-Redirect binding");
    if (rc == 0 && idp->nkeys == 0)
        rc = vk_err_set(err, VK_EPARSE,
                        "the IdP metadata has no signing certificate that loads "
                        "(KeyDescriptor/KeyInfo/X509Data/X509Certificate)");
    xmlFreeDoc(doc);
    if (rc < 0) {
        vk_auth_saml_idp_free(idp);
        return rc;
    }
    *out = idp;
    return 0;
}

void vk_auth_saml_idp_free(struct vk_auth_saml_idp *idp)
{
    if (!idp)
        return;
    for (size_t i = 0; i < idp->nkeys; i++)
        xmlSecKeyDestroy(idp->keys[i]);
    free(idp);
}

const char *vk_auth_saml_idp_entity_id(const struct vk_auth_saml_idp *idp)
{
    return idp->entity_id;
}

const char *vk_auth_saml_idp_sso_url(const struct vk_auth_saml_idp *idp)
{
    return idp->sso_url;
}

/* ---------------------------------------------------------------- AuthnRequest */

/* `s` escaped for an XML attribute value; false when it does not fit. */
static bool xml_esc(const char *s, char *out, size_t cap)
{
    size_t o = 0;
    for (; *s; s++) {
        const char *e = *s == '&'   ? "&amp;"
                        : *s == '<' ? "&lt;"
                        : *s == '>' ? "&gt;"
                        : *s == '"' ? "&quot;"
                                    : NULL;
        size_t el = e ? strlen(e) : 1;
        if (o + el >= cap)
            return false;
        if (e)
            memcpy(out + o, e, el);
        else
            out[o] = *s;
        o += el;
    }
    out[o] = '\0';
    return true;
}

int vk_auth_saml_authn_request(const char *id, const char *sp_entity_id, const char *acs_url,
                               const char *destination, int64_t now_s, char **out,
                               struct vk_err *err)
{
    *out = NULL;
    char eid[URL_MAX * 6], eacs[URL_MAX * 6], edst[URL_MAX * 6], eis[URL_MAX * 6];
    if (!xml_esc(id, eid, sizeof(eid)) || !xml_esc(acs_url, eacs, sizeof(eacs)) ||
        !xml_esc(destination, edst, sizeof(edst)) || !xml_esc(sp_entity_id, eis, sizeof(eis)))
        return vk_err_set(err, VK_ETOOBIG, "the AuthnRequest's URLs are too long");
    time_t t = (time_t)now_s;
    struct tm tm;
    gmtime_r(&t, &tm);
    char when[32];
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
    char xml[sizeof(eid) * 4 + 1024];
    int n = snprintf(xml, sizeof(xml),
                     "<samlp:AuthnRequest xmlns:samlp=\"" NS_SAMLP "\" xmlns:saml=\"" NS_SAML
                     "\" ID=\"%s\" Version=\"2.0\" IssueInstant=\"%s\" Destination=\"%s\" "
                     "ProtocolBinding=\"" BINDING_POST "\" AssertionConsumerServiceURL=\"%s\">"
                     "<saml:Issuer>%s</saml:Issuer>"
                     "<samlp:NameIDPolicy AllowCreate=\"true\"/></samlp:AuthnRequest>",
                     eid, when, edst, eacs, eis);
    if (n < 0 || (size_t)n >= sizeof(xml))
        return vk_err_set(err, VK_ETOOBIG, "the AuthnRequest is too long");
    unsigned char z[sizeof(xml) + 64];
    z_stream zs = {0};
    if (deflateInit2(&zs, Z_BEST_COMPRESSION, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return vk_err_set(err, VK_ENOMEM, "zlib cannot start");
    zs.next_in = (Bytef *)xml;
    zs.avail_in = (uInt)n;
    zs.next_out = z;
    zs.avail_out = sizeof(z);
    int zr = deflate(&zs, Z_FINISH);
    size_t zl = zs.total_out;
    deflateEnd(&zs);
    if (zr != Z_STREAM_END)
        return vk_err_set(err, VK_EINTERNAL, "cannot deflate the AuthnRequest");
    char *b64 = malloc(zl * 4 / 3 + 8);
    char *enc = malloc(zl * 4 + 16);
    if (!b64 || !enc) {
        free(b64);
        free(enc);
        return vk_err_set(err, VK_ENOMEM, "out of memory");
    }
    EVP_EncodeBlock((unsigned char *)b64, z, (int)zl);
    size_t o = 0;
    for (const char *p = b64; *p; p++) {
        if (*p == '+' || *p == '/' || *p == '=') {
            o += (size_t)sprintf(enc + o, "%%%02X", (unsigned)*p);
        } else {
            enc[o++] = *p;
        }
    }
    enc[o] = '\0';
    free(b64);
    *out = enc;
    return 0;
}

/* ---------------------------------------------------------------- Response */

/* Verify ds:Signature `sig`, a child of `signed_el` whose ID is `id`, with one of the
 * IdP's keys: its single Reference must be "#id". */
static int verify_sig(const struct vk_auth_saml_idp *idp, xmlNodePtr signed_el, xmlNodePtr sig,
                      const char *id, const char *what, struct vk_err *err)
{
    if (count_ids(xmlDocGetRootElement(signed_el->doc), id) != 1)
        return vk_err_set(err, VK_EAUTH,
                          "the %s's ID is not unique in the document (signature wrapping)", what);
    xmlAttrPtr ida = xmlHasProp(signed_el, (const xmlChar *)"ID");
    if (!ida)
        return vk_err_set(err, VK_EAUTH, "the signed %s has no ID", what);
    if (!xmlGetID(signed_el->doc, (const xmlChar *)id) &&
        !xmlAddID(NULL, signed_el->doc, (const xmlChar *)id, ida))
        return vk_err_set(err, VK_ENOMEM, "cannot register the %s's ID", what);
    xmlAttrPtr reg = xmlGetID(signed_el->doc, (const xmlChar *)id);
    if (!reg || reg->parent != signed_el)
        return vk_err_set(err, VK_EAUTH, "the %s's ID names another element (signature wrapping)",
                          what);
    char want[VALUE_MAX + 2], uri[VALUE_MAX + 2];
    snprintf(want, sizeof(want), "#%s", id);
    int nref = 0;
    xmlNodePtr ref0 = child(child(sig, NS_DS, "SignedInfo", NULL), NS_DS, "Reference", &nref);
    if (nref != 1 || !attr(ref0, "URI", uri, sizeof(uri)) || strcmp(uri, want) != 0)
        return vk_err_set(err, VK_EAUTH,
                          "%s: the signature does not cover exactly the signed element (its one "
                          "Reference must be #ID: signature wrapping)",
                          what);
    const char *why = "the signature does not verify with the IdP's certificate";
    for (size_t i = 0; i < idp->nkeys; i++) {
        xmlSecDSigCtxPtr ctx = xmlSecDSigCtxCreate(NULL);
        if (!ctx)
            return vk_err_set(err, VK_ENOMEM, "out of memory");
        /* The IdP's key only: KeyInfo in the message is never read for a key. */
        ctx->signKey = xmlSecKeyDuplicate(idp->keys[i]);
        ctx->enabledReferenceUris = xmlSecTransformUriTypeSameDocument;
        int e = ctx->signKey ? 0 : -1;
        e |= xmlSecDSigCtxEnableSignatureTransform(ctx, xmlSecTransformExclC14NId);
        e |= xmlSecDSigCtxEnableSignatureTransform(ctx, xmlSecTransformInclC14NId);
        e |= xmlSecDSigCtxEnableSignatureTransform(ctx, xmlSecTransformRsaSha256Id);
        e |= xmlSecDSigCtxEnableSignatureTransform(ctx, xmlSecTransformRsaSha384Id);
        e |= xmlSecDSigCtxEnableSignatureTransform(ctx, xmlSecTransformRsaSha512Id);
        e |= xmlSecDSigCtxEnableSignatureTransform(ctx, xmlSecTransformEcdsaSha256Id);
        e |= xmlSecDSigCtxEnableSignatureTransform(ctx, xmlSecTransformEcdsaSha384Id);
        e |= xmlSecDSigCtxEnableReferenceTransform(ctx, xmlSecTransformExclC14NId);
        e |= xmlSecDSigCtxEnableReferenceTransform(ctx, xmlSecTransformInclC14NId);
        e |= xmlSecDSigCtxEnableReferenceTransform(ctx, xmlSecTransformEnvelopedId);
        e |= xmlSecDSigCtxEnableReferenceTransform(ctx, xmlSecTransformSha256Id);
        e |= xmlSecDSigCtxEnableReferenceTransform(ctx, xmlSecTransformSha384Id);
        e |= xmlSecDSigCtxEnableReferenceTransform(ctx, xmlSecTransformSha512Id);
        if (e != 0) {
            xmlSecDSigCtxDestroy(ctx);
            return vk_err_set(err, VK_EINTERNAL, "cannot set up the signature check");
        }
        int vr = xmlSecDSigCtxVerify(ctx, sig);
        bool good = vr == 0 && ctx->status == xmlSecDSigStatusSucceeded;
        if (vr < 0)
            why = "the signature cannot be checked (malformed, or an algorithm not allowed: "
                  "RSA or ECDSA with SHA-256/384/512 only)";
        if (good) {
            xmlSecSize nrefs = xmlSecPtrListGetSize(&ctx->signedInfoReferences);
            xmlSecDSigReferenceCtxPtr ref =
                nrefs == 1 ? xmlSecPtrListGetItem(&ctx->signedInfoReferences, 0) : NULL;
            good = ref && ref->status == xmlSecDSigStatusSucceeded && ref->uri &&
                   strcmp((const char *)ref->uri, want) == 0;
            if (!good)
                why = "the signature does not cover exactly the signed element (its one "
                      "Reference must be #ID: signature wrapping)";
        }
        xmlSecDSigCtxDestroy(ctx);
        if (good)
            return 0;
    }
    return vk_err_set(err, VK_EAUTH, "%s: %s", what, why);
}

struct conds {
    int64_t now, skew, expires;
};

/* A NotBefore/NotOnOrAfter pair on `n`: false with *err set when outside now±skew. */
static bool window(const xmlNode *n, bool need_end, struct conds *c, const char *what,
                   struct vk_err *err)
{
    int64_t nb = 0, noa = 0;
    bool has_nb = xmlHasProp(n, (const xmlChar *)"NotBefore") != NULL;
    bool has_noa = xmlHasProp(n, (const xmlChar *)"NotOnOrAfter") != NULL;
    if ((has_nb && !time_attr(n, "NotBefore", &nb)) ||
        (has_noa && !time_attr(n, "NotOnOrAfter", &noa))) {
        vk_err_set(err, VK_EAUTH, "the %s has a malformed time", what);
        return false;
    }
    if (need_end && !has_noa) {
        vk_err_set(err, VK_EAUTH, "the %s has no NotOnOrAfter", what);
        return false;
    }
    if (has_nb && nb > c->now + c->skew) {
        vk_err_set(err, VK_EAUTH, "the %s is not yet valid (NotBefore)", what);
        return false;
    }
    if (has_noa && noa + c->skew <= c->now) {
        vk_err_set(err, VK_EAUTH, "the %s has expired (NotOnOrAfter)", what);
        return false;
    }
    if (has_noa && (c->expires == 0 || noa + c->skew < c->expires))
        c->expires = noa + c->skew;
    return true;
}

static int check_subject(const xmlNode *as, const struct vk_auth_saml_check *chk, struct conds *c,
                         char sub[VALUE_MAX], struct vk_err *err)
{
    xmlNodePtr subj = child(as, NS_SAML, "Subject", NULL);
    xmlNodePtr nid = child(subj, NS_SAML, "NameID", NULL);
    if (!nid || !text(nid, sub, VALUE_MAX) || !sub[0])
        return vk_err_set(err, VK_EAUTH, "the assertion has no Subject/NameID");
    int rc = 0;
    for (xmlNodePtr k = subj->children; k; k = k->next) {
        char m[128], v[URL_MAX];
        if (!is(k, NS_SAML, "SubjectConfirmation") || !attr(k, "Method", m, sizeof(m)) ||
            strcmp(m, CM_BEARER) != 0)
            continue;
        xmlNodePtr d = child(k, NS_SAML, "SubjectConfirmationData", NULL);
        struct conds tc = *c;
        if (!d)
            rc = vk_err_set(err, VK_EAUTH, "the bearer confirmation has no data");
        else if (!attr(d, "Recipient", v, sizeof(v)) || strcmp(v, chk->acs_url) != 0)
            rc = vk_err_set(err, VK_EAUTH,
                            "the confirmation's Recipient is not this server's ACS URL");
        else if (!attr(d, "InResponseTo", v, sizeof(v)) || strcmp(v, chk->request_id) != 0)
            rc = vk_err_set(err, VK_EAUTH,
                            "the confirmation's InResponseTo is not the pending request");
        else if (!window(d, true, &tc, "subject confirmation", err))
            rc = VK_EAUTH;
        else {
            *c = tc;
            return 0;
        }
    }
    return rc ? rc : vk_err_set(err, VK_EAUTH, "the assertion has no bearer SubjectConfirmation");
}

static int check_conditions(const xmlNode *as, const struct vk_auth_saml_check *chk,
                            struct conds *c, struct vk_err *err)
{
    int n = 0;
    xmlNodePtr cond = child(as, NS_SAML, "Conditions", &n);
    if (!cond || n != 1)
        return vk_err_set(err, VK_EAUTH, "the assertion needs exactly one Conditions");
    if (!window(cond, false, c, "assertion's Conditions", err))
        return VK_EAUTH;
    int restrictions = 0;
    for (xmlNodePtr r = cond->children; r; r = r->next) {
        if (!is(r, NS_SAML, "AudienceRestriction"))
            continue;
        restrictions++;
        bool ours = false;
        for (xmlNodePtr a = r->children; a && !ours; a = a->next) {
            char v[URL_MAX];
            ours = is(a, NS_SAML, "Audience") && text(a, v, sizeof(v)) &&
                   strcmp(v, chk->sp_entity_id) == 0;
        }
        if (!ours)
            return vk_err_set(err, VK_EAUTH,
                              "the assertion's Audience is not this server's entity id");
    }
    if (!restrictions)
        return vk_err_set(err, VK_EAUTH, "the assertion has no AudienceRestriction");
    return 0;
}

static int attributes(const xmlNode *as, json_t *out, struct vk_err *err)
{
    size_t nattr = 0;
    for (xmlNodePtr st = as->children; st; st = st->next) {
        if (!is(st, NS_SAML, "AttributeStatement"))
            continue;
        for (xmlNodePtr a = st->children; a; a = a->next) {
            char name[256];
            if (!is(a, NS_SAML, "Attribute") || !attr(a, "Name", name, sizeof(name)))
                continue;
            if (++nattr > ATTRS_MAX)
                return vk_err_set(err, VK_EAUTH, "the assertion has more than %d attributes",
                                  ATTRS_MAX);
            json_t *vals = json_object_get(out, name);
            if (!vals) {
                vals = json_array();
                if (!vals || json_object_set_new(out, name, vals) != 0)
                    return vk_err_set(err, VK_ENOMEM, "out of memory");
            }
            for (xmlNodePtr v = a->children; v; v = v->next) {
                char t[VALUE_MAX];
                if (!is(v, NS_SAML, "AttributeValue"))
                    continue;
                if (json_array_size(vals) >= VALUES_MAX)
                    return vk_err_set(err, VK_EAUTH,
                                      "an attribute of the assertion has more than %d values",
                                      VALUES_MAX);
                if (text(v, t, sizeof(t)) && json_array_append_new(vals, json_string(t)) != 0)
                    return vk_err_set(err, VK_ENOMEM, "out of memory");
            }
        }
    }
    return 0;
}

static int check_response(const struct vk_auth_saml_idp *idp, xmlDocPtr doc,
                          const struct vk_auth_saml_check *chk, json_t **claims, struct vk_err *err)
{
    xmlNodePtr resp = xmlDocGetRootElement(doc);
    char v[URL_MAX], rid[VALUE_MAX], aid[VALUE_MAX];
    if (!is(resp, NS_SAMLP, "Response"))
        return vk_err_set(err, VK_EAUTH, "not a SAML 2.0 Response");
    if (!attr(resp, "Version", v, sizeof(v)) || strcmp(v, "2.0") != 0)
        return vk_err_set(err, VK_EAUTH, "the Response is not SAML version 2.0");
    if (xmlHasProp(resp, (const xmlChar *)"Destination") &&
        (!attr(resp, "Destination", v, sizeof(v)) || strcmp(v, chk->acs_url) != 0))
        return vk_err_set(err, VK_EAUTH, "the Response's Destination is not this server's ACS URL");
    if (xmlHasProp(resp, (const xmlChar *)"InResponseTo") &&
        (!attr(resp, "InResponseTo", v, sizeof(v)) || strcmp(v, chk->request_id) != 0))
        return vk_err_set(err, VK_EAUTH, "the Response's InResponseTo is not the pending request");
    xmlNodePtr iss = child(resp, NS_SAML, "Issuer", NULL);
    if (iss && (!text(iss, v, sizeof(v)) || strcmp(v, idp->entity_id) != 0))
        return vk_err_set(err, VK_EAUTH, "the Response's Issuer is not the IdP's entity id");
    xmlNodePtr sc = child(child(resp, NS_SAMLP, "Status", NULL), NS_SAMLP, "StatusCode", NULL);
    if (!sc || !attr(sc, "Value", v, sizeof(v)) || strcmp(v, STATUS_SUCCESS) != 0)
        return vk_err_set(err, VK_EAUTH, "the IdP answered status '%.120s'",
                          sc && attr(sc, "Value", v, sizeof(v)) ? v : "(none)");
    if (count_all(resp, NS_SAML, "EncryptedAssertion"))
        return vk_err_set(err, VK_EAUTH, "encrypted assertions are not supported");
    int direct = 0;
    xmlNodePtr as = child(resp, NS_SAML, "Assertion", &direct);
    if (direct != 1 || count_all(resp, NS_SAML, "Assertion") != 1)
        return vk_err_set(err, VK_EAUTH,
                          "the Response must hold exactly one Assertion, as its child");
    int nrs = 0, nas = 0;
    xmlNodePtr rsig = child(resp, NS_DS, "Signature", &nrs);
    xmlNodePtr asig = child(as, NS_DS, "Signature", &nas);
    if (nrs > 1 || nas > 1)
        return vk_err_set(err, VK_EAUTH, "more than one signature on one element");
    if (!rsig && !asig)
        return vk_err_set(err, VK_EAUTH, "the Response and its assertion are unsigned");
    if (count_all(resp, NS_DS, "Signature") != nrs + nas)
        return vk_err_set(err, VK_EAUTH,
                          "a signature elsewhere than on the Response or the "
                          "assertion (signature wrapping)");
    if (!attr(as, "ID", aid, sizeof(aid)) || !aid[0])
        return vk_err_set(err, VK_EAUTH, "the assertion has no ID");
    int rc = 0;
    if (rsig) {
        if (!attr(resp, "ID", rid, sizeof(rid)) || !rid[0])
            return vk_err_set(err, VK_EAUTH, "the signed Response has no ID");
        /* SAML bindings 3.5.5.2: a signed Response must name its Destination. */
        if (!xmlHasProp(resp, (const xmlChar *)"Destination"))
            return vk_err_set(err, VK_EAUTH, "the signed Response has no Destination");
        rc = verify_sig(idp, resp, rsig, rid, "Response", err);
    }
    if (rc == 0 && asig)
        rc = verify_sig(idp, as, asig, aid, "assertion", err);
    if (rc < 0)
        return rc;
    /* From here on only the (signed) assertion is read. */
    if (!attr(as, "Version", v, sizeof(v)) || strcmp(v, "2.0") != 0)
        return vk_err_set(err, VK_EAUTH, "the assertion is not SAML version 2.0");
    iss = child(as, NS_SAML, "Issuer", NULL);
    if (!iss || !text(iss, v, sizeof(v)) || strcmp(v, idp->entity_id) != 0)
        return vk_err_set(err, VK_EAUTH, "the assertion's Issuer is not the IdP's entity id");
    struct conds c = {.now = chk->now_s, .skew = chk->skew_s ? chk->skew_s : VK_AUTH_SAML_SKEW_S};
    char sub[VALUE_MAX];
    rc = check_conditions(as, chk, &c, err);
    if (rc == 0)
        rc = check_subject(as, chk, &c, sub, err);
    if (rc < 0)
        return rc;
    json_t *attrs = json_object();
    json_t *o = attrs ? json_pack("{s:s, s:s, s:I, s:o}", "sub", sub, "assertion_id", aid,
                                  "expires_s", (json_int_t)c.expires, "attributes", attrs)
                      : NULL;
    if (!o)
        return vk_err_set(err, VK_ENOMEM, "out of memory");
    char fmt[256];
    if (attr(child(child(as, NS_SAML, "Subject", NULL), NS_SAML, "NameID", NULL), "Format", fmt,
             sizeof(fmt)) &&
        json_object_set_new(o, "name_id_format", json_string(fmt)) != 0)
        rc = vk_err_set(err, VK_ENOMEM, "out of memory");
    if (rc == 0)
        rc = attributes(as, attrs, err);
    if (rc < 0) {
        json_decref(o);
        return rc;
    }
    *claims = o;
    return 0;
}

int vk_auth_saml_verify(const struct vk_auth_saml_idp *idp, const char *b64, size_t len,
                        const struct vk_auth_saml_check *chk, json_t **claims, struct vk_err *err)
{
    *claims = NULL;
    if (len > VK_AUTH_SAML_RESPONSE_MAX * 4 / 3 + 4096)
        return vk_err_set(err, VK_ETOOBIG, "the SAMLResponse is larger than %d bytes",
                          VK_AUTH_SAML_RESPONSE_MAX);
    int rc = libs(err);
    if (rc < 0)
        return rc;
    unsigned char *xml = malloc(VK_AUTH_SAML_RESPONSE_MAX);
    if (!xml)
        return vk_err_set(err, VK_ENOMEM, "out of memory");
    long n = b64_decode(b64, len, xml, VK_AUTH_SAML_RESPONSE_MAX);
    if (n <= 0) {
        free(xml);
        return vk_err_set(err, VK_EAUTH, "the SAMLResponse is not base64 (or too large)");
    }
    xmlDocPtr doc = parse((const char *)xml, (size_t)n, "SAMLResponse", err);
    free(xml);
    if (!doc)
        return VK_EAUTH;
    rc = check_response(idp, doc, chk, claims, err);
    xmlFreeDoc(doc);
    return rc;
}
