/*
 * libFuzzer target for SAML Response verification (vk_auth_saml_verify): any input, taken as
 * the XML of a Response posted by an IdP (base64-encoded here, as the HTTP-POST binding
 * carries it), is checked against fixed IdP metadata whose signing certificate's private
 * key is kept nowhere. It must never crash, hang or read past its input, and never verify:
 * the answer is always an error with a message (VK_EAUTH, VK_ETOOBIG or VK_ENOMEM). See
 * docs/fuzzing.md.
 */
#include "vulcan/auth_saml.h"
#include "vulcan/util.h"

#include <openssl/evp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct vk_auth_saml_idp *idp;

static const char metadata[] =
    "<md:EntityDescriptor xmlns:md=\"urn:oasis:names:tc:SAML:2.0:metadata\" "
    "entityID=\"https://idp.example.com/\"><md:IDPSSODescriptor "
    "protocolSupportEnumeration=\"urn:oasis:names:tc:SAML:2.0:protocol\"><md:KeyDescriptor "
    "use=\"signing\"><ds:KeyInfo xmlns:ds=\"http://www.w3.org/2000/09/xmldsig#\"><ds:X509Data>"
    "<ds:X509Certificate>"
    "MIIDBzCCAe+gAwIBAgIUGbOPnA1hK24ruEpbp/HF0I0kl/MwDQYJKoZIhvcNAQELBQAwEzERMA8G"
    "A1UEAwwIZnV6ei1pZHAwHhcNMjYxMjA0MDEyNzQ4WhcNMzYxMjAxMDEyNzQ4WjATMREwDwYDVQQD"
    "DAhmdXp6LWlkcDCCASIwDQYJKoZIhvcNAQEBBQADggEPADCCAQoCggEBAKCR/Gl/OfMnYNs+ATsA"
    "WM63dyjK8BzpvBK6fmlZs7Zmg5wCoRD5Rzmxin3jZtL4eUafc9PrN+npgl2uFRk1SLdXsSD/M72s"
    "/S/g1odrDMKQ9bBhTPo0N0bI6EtWHI7OEnj7p1lenfU/i2X8E0Lrd3raa/LckIwfe7M4OjcPedF6"
    "hYZ3uihRDX78r1iu0vJt8Ni3YLkdREEk4Cd3KZGd7SY86hnTan42az5/22CW9kv1XaqWekboxGcw"
    "pBTY3sa3pxm7nWKNmxv6Gf4x9u/wReO2ja1aHIumbp4qDiQz402vizdKbgNpiczEHhV6Bz6aWDCb"
    "leHRPegWUcgabnbFugUCAwEAAaNTMFEwHQYDVR0OBBYEFO+W8gEx+QXIezsCn1uFS4sa3GKHMB8G"
    "A1UdIwQYMBaAFO+W8gEx+QXIezsCn1uFS4sa3GKHMA8GA1UdEwEB/wQFMAMBAf8wDQYJKoZIhvcN"
    "AQELBQADggEBAHL3lfzKH5UZKkvKVOVwPOr/uoJoRtcOrsb9wmJB6IPOq7dAGYrQUNNQMSOBiAeg"
    "FhnUhlprt4ieUSSy8fY47pc9YQZTHxg3+IlN7O6qix/xMw09T/8P7EERgHr6o9bOGiAv2AGr9Wvn"
    "07jP9qE9GT5SaOBA+A8DSmBaUag9ZirOB+dS481x6kYHRD2X1qk9UYawMvOtja1qgPDuOG6To7Oa"
    "JnFel636nRB4k4Cc+XdxDT1CBjmfVjouEWxAzwGzWu5YK9LhWgE9/DMLakBL/eCGdkR0A1OsFVUv"
    "08o9fD8UPTgB+AmRC+dl2llLEOvYkG+TpGk3n+oMKMqABBEHGCU="
    "</ds:X509Certificate></ds:X509Data></ds:KeyInfo></md:KeyDescriptor>"
    "<md:SingleSignOnService Binding=\"urn:oasis:names:tc:SAML:2.0:bindings:HTTP-Redirect\" "
    "Location=\"https://idp.example.com/sso\"/></md:IDPSSODescriptor></md:EntityDescriptor>";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct vk_err err;
    vk_err_clear(&err);
    if (!idp && vk_auth_saml_idp_load(metadata, sizeof(metadata) - 1, &idp, &err) < 0)
        abort();
    if (size > VK_AUTH_SAML_RESPONSE_MAX)
        return 0;
    char *b64 = malloc(size / 3 * 4 + 8);
    if (!b64)
        return 0;
    int n = EVP_EncodeBlock((unsigned char *)b64, data, (int)size);
    struct vk_auth_saml_check chk = {.sp_entity_id = "https://ci.example.com/sp",
                                     .acs_url = "https://ci.example.com/api/v1/sso/saml/acs",
                                     .request_id = "_req",
                                     .now_s = 1800000000};
    json_t *claims = NULL;
    int rc = vk_auth_saml_verify(idp, b64, (size_t)n, &chk, &claims, &err);
    free(b64);
    if (rc == 0 || claims || (rc != VK_EAUTH && rc != VK_ETOOBIG && rc != VK_ENOMEM) ||
        err.msg[0] == '\0')
        abort();
    return 0;
}
