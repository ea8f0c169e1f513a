/*
 * HTTPS: the server with a certificate made by openssl for 127.0.0.1, the client verifying
 * it against a CA file (ca_file), the messages for certificates that do not verify, a
 * certificate/key pair that does not match, and replacing the certificate while serving.
 */
#include "http_test.h"

#include <stdlib.h>
#include <sys/stat.h>

static char dir[512];

/* Two CAs, a server certificate for 127.0.0.1 signed by each, and a stray key. */
static int setup(void **state)
{
    (void)state;
    const char *t = getenv("TMPDIR");
    snprintf(dir, sizeof(dir), "%s/vk-tls-XXXXXX", t && *t && strlen(t) < 400 ? t : "/tmp");
    if (!mkdtemp(dir))
        return -1;
    return vk_test_sh_status(
               "cd %s && printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' >ext.cnf && "
               "for n in 1 2; do "
               "openssl req -x509 -newkey rsa:2048 -nodes -keyout ca$n.key -out ca$n.pem -days 2 "
               "-subj /CN=ca$n && "
               "openssl req -newkey rsa:2048 -nodes -keyout srv$n.key -out srv$n.csr -subj "
               "/CN=localhost && "
               "openssl x509 -req -in srv$n.csr -CA ca$n.pem -CAkey ca$n.key -CAcreateserial "
               "-out srv$n.pem -days 2 -extfile ext.cnf || exit 1; done && "
               "openssl genrsa -out stray.key 2048",
               dir) == 0
               ? 0
               : -1;
}

static int teardown(void **state)
{
    (void)state;
    return vk_test_sh_status("rm -rf %s", dir) == 0 ? 0 : -1;
}

/* The contents of DIR/name, owned by the caller. */
static char *slurp(const char *name)
{
    char path[640];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    struct vk_buf b = VK_BUF_INIT(1u << 20);
    struct vk_err err;
    if (vk_buf_read_file(&b, path, &err) != 0)
        fail_msg("read %s: %s", path, err.msg);
    return b.data;
}

static void h_hello(struct vk_http_req *req, void *ctx)
{
    (void)ctx;
    vk_http_reply(req, 200, "text/plain", "hello", 5);
}

/* GET /hello over https with `ca` (a file in DIR, or NULL); the status, or the error. */
static int get(struct vk_http_server *srv, const char *ca, long *status, struct vk_err *err)
{
    char url[64], ca_path[640];
    snprintf(url, sizeof(url), "https://127.0.0.1:%u", vk_http_server_port(srv));
    snprintf(ca_path, sizeof(ca_path), "%s/%s", dir, ca ? ca : "");
    struct vk_http_client_opts o = {.base_url = url, .ca_file = ca ? ca_path : NULL};
    struct vk_http_client *cl = NULL;
    assert_int_equal(vk_http_client_new(&o, &cl, err), 0);
    struct vk_http_response resp;
    int rc = vk_http_client_request(cl, "GET", "/hello", NULL, NULL, 0, 5000, &resp, err);
    *status = resp.status;
    if (rc == 0)
        assert_memory_equal(resp.body.data, "hello", 5);
    vk_http_response_release(&resp);
    vk_http_client_free(cl);
    return rc;
}

static struct vk_http_server *tls_server(const char *cert, const char *key)
{
    char *c = slurp(cert), *k = slurp(key);
    struct vk_http_server_opts o = {.listen = "127.0.0.1:0", .tls_cert_pem = c, .tls_key_pem = k};
    struct vk_http_server *srv = NULL;
    struct vk_err err;
    if (vk_http_server_new(&o, &srv, &err) != 0)
        fail_msg("server_new: %s", err.msg);
    vk_mem_free(c);
    vk_mem_free(k); /* parsed: the server keeps no pointer to them */
    assert_int_equal(vk_http_route(srv, "GET", "/hello", h_hello, NULL, NULL, &err), 0);
    test_server_start(srv);
    return srv;
}

static void test_check_pairs(void **state)
{
    (void)state;
    assert_true(vk_http_tls_supported());
    char *c1 = slurp("srv1.pem"), *k1 = slurp("srv1.key"), *k2 = slurp("srv2.key");
    char *stray = slurp("stray.key");
    struct vk_err err;
    assert_int_equal(vk_http_tls_check(c1, k1, &err), 0);
    assert_int_equal(vk_http_tls_check(c1, k2, &err), VK_EINVAL);
    assert_non_null(strstr(err.msg, "do not make a pair"));
    assert_int_equal(vk_http_tls_check(c1, stray, &err), VK_EINVAL);
    assert_int_equal(vk_http_tls_check("not a certificate", k1, &err), VK_EINVAL);
    assert_int_equal(vk_http_tls_check(c1, "", &err), VK_EINVAL);
    assert_int_equal(vk_http_tls_check(NULL, k1, &err), VK_EINVAL);
    /* A server is not made with a pair that does not match. */
    struct vk_http_server_opts o = {.listen = "127.0.0.1:0", .tls_cert_pem = c1, .tls_key_pem = k2};
    struct vk_http_server *srv = NULL;
    assert_int_equal(vk_http_server_new(&o, &srv, &err), VK_EINVAL);
    assert_null(srv);
    vk_mem_free(c1);
    vk_mem_free(k1);
    vk_mem_free(k2);
    vk_mem_free(stray);
}

static void test_verify(void **state)
{
    (void)state;
    struct vk_http_server *srv = tls_server("srv1.pem", "srv1.key");
    long status = 0;
    struct vk_err err;
    assert_int_equal(get(srv, "ca1.pem", &status, &err), 0);
    assert_int_equal(status, 200);

    /* No CA file: the system's CAs do not know ca1. */
    assert_int_equal(get(srv, NULL, &status, &err), VK_EIO);
    char url[64];
    snprintf(url, sizeof(url), "https://127.0.0.1:%u", vk_http_server_port(srv));
    assert_non_null(strstr(err.msg, url));
    assert_non_null(strstr(err.msg, "does not verify"));
    assert_non_null(strstr(err.msg, "--ca-cert"));

    /* The wrong CA. */
    assert_int_equal(get(srv, "ca2.pem", &status, &err), VK_EIO);
    assert_non_null(strstr(err.msg, "does not verify against --ca-cert"));

    /* A CA file that does not exist. */
    assert_int_equal(get(srv, "missing.pem", &status, &err), VK_EIO);
    assert_non_null(strstr(err.msg, "--ca-cert"));

    /* Plain HTTP to the TLS port gets no answer. */
    struct vk_http_client_opts o = {.base_url = url + 0};
    char plain[64];
    snprintf(plain, sizeof(plain), "http://127.0.0.1:%u", vk_http_server_port(srv));
    o.base_url = plain;
    struct vk_http_client *cl = NULL;
    assert_int_equal(vk_http_client_new(&o, &cl, &err), 0);
    struct vk_http_response resp;
    assert_int_equal(vk_http_client_request(cl, "GET", "/hello", NULL, NULL, 0, 5000, &resp, &err),
                     VK_EIO);
    vk_http_response_release(&resp);
    vk_http_client_free(cl);

    /* Only one TLS server per process. */
    char *c = slurp("srv2.pem"), *k = slurp("srv2.key");
    struct vk_http_server_opts o2 = {.listen = "127.0.0.1:0", .tls_cert_pem = c, .tls_key_pem = k};
    struct vk_http_server *srv2 = NULL;
    assert_int_equal(vk_http_server_new(&o2, &srv2, &err), VK_EINVAL);
    assert_non_null(strstr(err.msg, "one TLS server"));
    vk_mem_free(c);
    vk_mem_free(k);
    vk_http_server_free(srv);
}

static void test_reload(void **state)
{
    (void)state;
    struct vk_http_server *srv = tls_server("srv1.pem", "srv1.key");
    long status = 0;
    struct vk_err err;
    assert_int_equal(get(srv, "ca1.pem", &status, &err), 0);

    char *c2 = slurp("srv2.pem"), *k2 = slurp("srv2.key"), *k1 = slurp("srv1.key");
    /* A bad pair is refused and the old certificate stays. */
    assert_int_equal(vk_http_server_tls_reload(srv, c2, k1, &err), VK_EINVAL);
    assert_int_equal(get(srv, "ca1.pem", &status, &err), 0);
    /* The new pair: new connections get it. */
    assert_int_equal(vk_http_server_tls_reload(srv, c2, k2, &err), 0);
    assert_int_equal(get(srv, "ca2.pem", &status, &err), 0);
    assert_int_equal(status, 200);
    assert_int_equal(get(srv, "ca1.pem", &status, &err), VK_EIO);
    vk_mem_free(c2);
    vk_mem_free(k2);
    vk_mem_free(k1);
    vk_http_server_free(srv);

    /* A plain server has nothing to reload. */
    struct vk_http_server *plain = test_server_new(NULL);
    assert_int_equal(vk_http_server_tls_reload(plain, "x", "y", &err), VK_EINVAL);
    vk_http_server_free(plain);
}

static void test_explain(void **state)
{
    (void)state;
    char buf[256];
    /* 7 is CURLE_COULDNT_CONNECT: not a TLS problem. */
    assert_null(vk_http_tls_explain(7, "https://x", "refused", NULL, buf, sizeof(buf)));
    /* 60 is CURLE_PEER_FAILED_VERIFICATION. */
    assert_ptr_equal(vk_http_tls_explain(60, "https://x", NULL, NULL, buf, sizeof(buf)), buf);
    assert_non_null(strstr(buf, "'https://x'"));
    assert_non_null(strstr(buf, "VULCAN_CA_CERT"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_pairs),
        cmocka_unit_test(test_verify),
        cmocka_unit_test(test_reload),
        cmocka_unit_test(test_explain),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
