/*
 * The repository URL policy (issue 14 item 1): schemes, hosts that look like options,
 * literal addresses in every spelling a resolver takes, the non-public ranges (also
 * inside IPv4-mapped, NAT64 and 6to4 addresses) and the operator's allowed ranges.
 */
#include "vk_test.h"
#include "vulcan/git.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

static int check(const struct vk_git_url_policy *p, const char *url, struct vk_git_url_target *t)
{
    struct vk_err err;
    vk_err_clear(&err);
    return vk_git_url_check_static(p, url, t, &err);
}

static const char *v4(const struct vk_git_url_policy *p, const char *a)
{
    struct sockaddr_in s = {.sin_family = AF_INET};
    assert_int_equal(inet_pton(AF_INET, a, &s.sin_addr), 1);
    return vk_git_addr_refused(p, (struct sockaddr *)&s);
}

static const char *v6(const struct vk_git_url_policy *p, const char *a)
{
    struct sockaddr_in6 s = {.sin6_family = AF_INET6};
    assert_int_equal(inet_pton(AF_INET6, a, &s.sin6_addr), 1);
    return vk_git_addr_refused(p, (struct sockaddr *)&s);
}

static void test_schemes(void **state)
{
    (void)state;
    struct vk_git_url_policy p;
    vk_git_url_policy_init(&p);
    struct vk_git_url_target t;
    assert_int_equal(check(&p, "https://example.com/r.git", &t), 0);
    assert_int_equal(t.scheme, VK_GIT_SCHEME_HTTPS);
    assert_string_equal(t.host, "example.com");
    assert_int_equal(t.port, 443);
    assert_int_equal(check(&p, "ssh://git@example.com:2222/r.git", &t), 0);
    assert_int_equal(t.port, 2222);
    assert_int_equal(check(&p, "git@example.com:o/r.git", &t), 0);
    assert_int_equal(t.scheme, VK_GIT_SCHEME_SSH);
    assert_string_equal(t.host, "example.com");
    assert_int_equal(check(&p, "https://u:p@w@example.com/r", &t), 0);
    assert_string_equal(t.host, "example.com");
    assert_int_equal(check(&p, "http://example.com/r.git", &t), VK_EPERM);
    assert_int_equal(check(&p, "git://example.com/r.git", &t), VK_EPERM);
    assert_int_equal(check(&p, "file:///srv/r.git", &t), VK_EPERM);
    assert_int_equal(check(&p, "/srv/r.git", &t), VK_EPERM);
    assert_int_equal(check(&p, "r.git", &t), VK_EPERM);
    assert_int_equal(check(&p, "gopher://example.com/r", &t), VK_EPERM);
    assert_int_equal(check(&p, "ext::sh -c true", &t), VK_EPERM);
    assert_int_equal(check(&p, "fd::3", &t), VK_EPERM);
    assert_int_equal(check(&p, "ssh://-oProxyCommand=x/r", &t), VK_EPERM);
    assert_int_equal(check(&p, "-oProxyCommand=x:r", &t), VK_EPERM);
    assert_int_equal(check(&p, "ssh://-oProxyCommand=x@example.com/r", &t), VK_EPERM);
    assert_int_equal(check(&p, "https://exa%6dple.com/r", &t), VK_EPERM);
    assert_int_equal(check(&p, "https://example.com:99999/r", &t), VK_EPERM);
    struct vk_err err;
    vk_err_clear(&err);
    assert_int_equal(vk_git_url_policy_schemes(&p, "https,http,file", &err), 0);
    assert_int_equal(check(&p, "http://example.com/r.git", &t), 0);
    assert_int_equal(check(&p, "/srv/r.git", &t), 0);
    assert_int_equal(t.scheme, VK_GIT_SCHEME_FILE);
    assert_int_equal(check(&p, "ssh://example.com/r.git", &t), VK_EPERM);
    assert_int_equal(vk_git_url_policy_schemes(&p, "https,ftp", &err), VK_EINVAL);
    assert_int_equal(vk_git_url_policy_schemes(&p, "", &err), VK_EINVAL);
}

static void test_literal_hosts(void **state)
{
    (void)state;
    struct vk_git_url_policy p;
    vk_git_url_policy_init(&p);
    struct vk_git_url_target t;
    static const char *const refused[] = {
        "https://127.0.0.1/r",
        "https://127.1/r",
        "https://2130706433/r",
        "https://0x7f000001/r",
        "https://0177.0.0.1/r",
        "https://169.254.169.254/r",
        "https://10.1.2.3/r",
        "https://172.16.0.1/r",
        "https://192.168.1.1/r",
        "https://100.64.0.1/r",
        "https://0.0.0.0/r",
        "https://224.0.0.1/r",
        "https://[::1]/r",
        "https://[::]/r",
        "https://[fe80::1]/r",
        "https://[fd00::1]/r",
        "https://[ff02::1]/r",
        "https://[::ffff:127.0.0.1]/r",
        "https://[64:ff9b::a9fe:a9fe]/r",
        "https://[2002:7f00:1::]/r",
        "https://localhost/r",
        "https://LOCALHOST./r",
        "https://x.localhost/r",
        "git@127.0.0.1:r",
        "ssh://[::1]:22/r",
    };
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        if (check(&p, refused[i], &t) != VK_EPERM)
            fail_msg("%s was not refused", refused[i]);
    }
    assert_int_equal(check(&p, "https://93.184.216.34/r", &t), 0);
    assert_string_equal(t.addr, "93.184.216.34");
    assert_int_equal(check(&p, "https://[2606:2800:220:1::1]:8443/r", &t), 0);
    assert_string_equal(t.host, "2606:2800:220:1::1");
    assert_int_equal(t.port, 8443);
}

static void test_ranges(void **state)
{
    (void)state;
    struct vk_git_url_policy p;
    vk_git_url_policy_init(&p);
    assert_non_null(v4(&p, "127.0.0.1"));
    assert_non_null(v4(&p, "169.254.169.254"));
    assert_non_null(v4(&p, "172.31.255.255"));
    assert_null(v4(&p, "172.32.0.1"));
    assert_null(v4(&p, "8.8.8.8"));
    assert_non_null(v6(&p, "fe80::1"));
    assert_non_null(v6(&p, "::ffff:10.0.0.1"));
    assert_null(v6(&p, "2001:4860:4860::8888"));
    struct vk_err err;
    vk_err_clear(&err);
    assert_int_equal(vk_git_url_policy_ranges(&p, "127.0.0.0/8, 10.1.0.0/16,fd00::/8", &err), 0);
    assert_int_equal(p.nranges, 3);
    assert_null(v4(&p, "127.0.0.1"));
    assert_null(v4(&p, "10.1.200.3"));
    assert_non_null(v4(&p, "10.2.0.1"));
    assert_null(v6(&p, "fd12::1"));
    assert_non_null(v6(&p, "fe80::1"));
    assert_null(v6(&p, "::ffff:127.0.0.1")); /* mapped: allowed as IPv4 */
    assert_non_null(v4(&p, "169.254.169.254"));
    struct vk_git_url_target t;
    assert_int_equal(check(&p, "https://localhost:8443/r", &t), 0);
    assert_int_equal(vk_git_url_policy_ranges(&p, "10.0.0.0/33", &err), VK_EINVAL);
    assert_int_equal(vk_git_url_policy_ranges(&p, "example.com", &err), VK_EINVAL);
    assert_int_equal(vk_git_url_policy_ranges(&p, "10.0.0.0/", &err), VK_EINVAL);
    vk_git_url_policy_init(&p);
    assert_int_equal(vk_git_url_policy_ranges(&p, "192.0.2.7", &err), 0);
    assert_int_equal(p.ranges[0].bits, 32);
}

static void test_resolved(void **state)
{
    (void)state;
    struct vk_git_url_policy p;
    vk_git_url_policy_init(&p);
    struct vk_git_url_target t;
    struct vk_err err;
    vk_err_clear(&err);
    /* "localhost" is refused without asking a resolver; a resolvable name that /etc/hosts
     * maps to loopback is refused after resolution */
    assert_int_equal(vk_git_url_check(&p, "https://localhost/r", &t, &err), VK_EPERM);
    assert_int_equal(vk_git_url_check(&p, "file:///r", &t, &err), VK_EPERM);
    assert_int_equal(vk_git_url_policy_ranges(&p, "127.0.0.0/8,::1", &err), 0);
    assert_int_equal(vk_git_url_check(&p, "https://127.0.0.1:9/r", &t, &err), 0);
    assert_string_equal(t.addr, "127.0.0.1");
    assert_int_equal(t.port, 9);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_schemes),
        cmocka_unit_test(test_literal_hosts),
        cmocka_unit_test(test_ranges),
        cmocka_unit_test(test_resolved),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
