/*
 * auth_saml: the service-provider side of SAML 2.0 Web Browser SSO (docs/security.md
 * "Single sign-on (SAML 2.0)").
 *
 * The identity provider is described by its metadata (an EntityDescriptor with an
 * IDPSSODescriptor): its entity id, its HTTP-Redirect SingleSignOnService and its signing
 * certificates. An AuthnRequest is made for the HTTP-Redirect binding (DEFLATE, base64,
 * unsigned); the Response comes back through the HTTP-POST binding and is verified with
 * xmlsec1 (OpenSSL) against the metadata's certificates only: a key or certificate inside
 * the Response's KeyInfo is never used. Wrapping is refused by construction: the one
 * Assertion used is the element the verified signature's single same-document Reference
 * points at (or the child of the signed Response), its ID is unique in the document, and
 * nothing outside it is read but what the Response signature covers. DTDs (entities) are
 * refused; EncryptedAssertion is not supported.
 *
 * Thread-safety: vk_auth_saml_idp_load/free and vk_auth_saml_verify may run in any thread;
 * an idp is read-only after loading and may be shared.
 */
#ifndef VULCAN_AUTH_SAML_H
#define VULCAN_AUTH_SAML_H

#include "vulcan/util.h"

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#define VK_AUTH_SAML_RESPONSE_MAX (256 * 1024)  /**< longest decoded Response accepted */
#define VK_AUTH_SAML_METADATA_MAX (1024 * 1024) /**< longest IdP metadata accepted */
#define VK_AUTH_SAML_SKEW_S 120                 /**< clock skew allowed on the time limits */
#define VK_AUTH_SAML_CERTS_MAX 8                /**< signing certificates kept from metadata */

/** A loaded identity provider (opaque; read-only once loaded). */
struct vk_auth_saml_idp;

/**
 * Load IdP metadata `xml` (`len` bytes, borrowed). *out is owned by the caller
 * (vk_auth_saml_idp_free). VK_EPARSE with a message for metadata without an entityID, an
 * HTTP-Redirect SingleSignOnService or a usable signing certificate; VK_ETOOBIG above
 * VK_AUTH_SAML_METADATA_MAX.
 */
int vk_auth_saml_idp_load(const char *xml, size_t len, struct vk_auth_saml_idp **out,
                          struct vk_err *err) VK_MUST_CHECK;
void vk_auth_saml_idp_free(struct vk_auth_saml_idp *idp);
/** Borrowed strings, valid for the idp's life. */
const char *vk_auth_saml_idp_entity_id(const struct vk_auth_saml_idp *idp);
const char *vk_auth_saml_idp_sso_url(const struct vk_auth_saml_idp *idp);

/**
 * The value of the SAMLRequest query parameter (DEFLATE, base64, percent-encoded) of an
 * AuthnRequest with `id` from `sp_entity_id` to `destination` asking for the HTTP-POST
 * binding to `acs_url`, issued at `now_s`. *out is owned by the caller (free()).
 */
int vk_auth_saml_authn_request(const char *id, const char *sp_entity_id, const char *acs_url,
                               const char *destination, int64_t now_s, char **out,
                               struct vk_err *err) VK_MUST_CHECK;

/** What a Response must say. Every string is borrowed. */
struct vk_auth_saml_check {
    const char *sp_entity_id; /**< the Audience */
    const char *acs_url;      /**< Destination and SubjectConfirmationData Recipient */
    const char *request_id;   /**< InResponseTo (of the Response and the confirmation) */
    int64_t now_s;            /**< the time now, seconds since the epoch */
    int64_t skew_s;           /**< allowed skew; 0: VK_AUTH_SAML_SKEW_S */
};

/**
 * Verify the base64 SAMLResponse `b64` (`len` bytes, borrowed) against `idp` and `check`.
 * On success *claims (owned by the caller) is {"sub": NameID, "assertion_id": ID,
 * "expires_s": the latest second it may be used, "name_id_format": the NameID's Format when
 * given, "attributes": {name: [values...]}}, with
 * only what the verified signature covers. Errors, each VK_EAUTH naming which check failed
 * (never quoting the Response): not a Response, status not Success, DTD present, no or
 * several assertions, unsigned, signature invalid or by another key, wrapping (duplicate
 * IDs, a reference elsewhere), wrong issuer, Destination, Recipient, InResponseTo,
 * Audience, expired or not yet valid, no bearer confirmation, no NameID. VK_ETOOBIG above
 * VK_AUTH_SAML_RESPONSE_MAX, VK_ENOMEM.
 */
int vk_auth_saml_verify(const struct vk_auth_saml_idp *idp, const char *b64, size_t len,
                        const struct vk_auth_saml_check *check, json_t **claims,
                        struct vk_err *err) VK_MUST_CHECK;

#endif
