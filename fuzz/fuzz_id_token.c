/*
 * libFuzzer target for ID token verification (vk_auth_id_token_verify): any input, taken
 * as a token from an identity provider, is checked against a fixed JWKS (an RSA and a P-256
 * public key whose private halves are not kept anywhere) from an exact-size copy. It must
 * never crash, hang or read past its input, and never verify: the answer is always an
 * error with a message (VK_EAUTH, VK_ETOOBIG or VK_ENOMEM). See docs/fuzzing.md.
 */
#include "vulcan/auth_oidc.h"
#include "vulcan/util.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static json_t *jwks;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!jwks) {
        json_error_t je;
        jwks = json_loads(
            "{\"keys\":[{\"kty\":\"RSA\",\"kid\":\"r1\",\"e\":\"AQAB\",\"n\":"
            "\"nAglnsfOZwIVGeZ3uPb7HlTr_3kIdOIDTUi9asEyR6AC5yxnBuIlvHohcI7FTaSzyjjCSPnUNru5yc"
            "QK1n2fx6Nq2Yjr78H3nVYttXQbf20g77Nwtr4hjghz4E9SFQC3X5S1waCgpLkUv34SQ0gsLvm554JZE2"
            "OJYBKhMDjyHXIDtwff3w_Q4Xwc2aVsyBAWBzQwZteG9soRuO_xCb-27ZWVpfu00fMRTPb5hoz_H8GJOv"
            "BCyDWt5yz696k063Fx8TLRtsxqR1PcA_yq0l5snYHDmxY9h-Noj9xjFB7Ie1ZpFFZY5H4_qt-AsDv1qZ"
            "sPZmOuJ7VS-oDaHuX1qrMQAw\"},{\"kty\":\"EC\",\"kid\":\"e1\",\"crv\":\"P-256\","
            "\"x\":\"5d2W4XEJUcNJmL8nBcLKmcq8D_QV2yT8sdNB3YPdea4\","
            "\"y\":\"a_Yqk4JvGvTTuhn1Xbjz2VnUpZCtz5HXEV2Gvi1k634\"}]}",
            0, &je);
        if (!jwks)
            abort();
    }
    char *copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    struct vk_auth_id_token_check chk = {
        .issuer = "https://idp.example.com", .client_id = "vulcan", .nonce = "n", .now_s = 1};
    json_t *claims = NULL;
    struct vk_err err;
    vk_err_clear(&err);
    int rc = vk_auth_id_token_verify(copy, size, jwks, &chk, &claims, &err);
    free(copy);
    if (rc == 0 || claims || (rc != VK_EAUTH && rc != VK_ETOOBIG && rc != VK_ENOMEM) ||
        err.msg[0] == '\0')
        abort();
    return 0;
}
