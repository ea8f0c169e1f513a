/* Repository URL normalisation and comparison (table-driven). */
#include "vk_test.h"
#include "vulcan/triggers.h"

#include <string.h>

struct row {
    const char *url;
    const char *norm; /* NULL: invalid */
};

static const struct row rows[] = {
    {"https://github.com/owner/repo.git", "github.com/owner/repo"},
    {"https://github.com/owner/repo", "github.com/owner/repo"},
    {"https://github.com/owner/repo/", "github.com/owner/repo"},
    {"https://github.com/owner/repo.git/", "github.com/owner/repo"},
    {"http://github.com/owner/repo", "github.com/owner/repo"},
    {"HTTPS://GitHub.COM/Owner/Repo.GIT", "github.com/owner/repo"},
    {"https://user:token@github.com/owner/repo.git", "github.com/owner/repo"},
    {"https://x-access-token@github.com:443/owner/repo", "github.com/owner/repo"},
    {"http://github.com:80/owner/repo", "github.com/owner/repo"},
    {"https://github.com//owner///repo", "github.com/owner/repo"},
    {"https://github.com/owner/repo?tab=readme#top", "github.com/owner/repo"},
    {"git@github.com:owner/repo.git", "github.com/owner/repo"},
    {"git@github.com:owner/repo", "github.com/owner/repo"},
    {"github.com:owner/repo.git", "github.com/owner/repo"},
    {"ssh://git@github.com/owner/repo.git", "github.com/owner/repo"},
    {"ssh://git@github.com:22/owner/repo.git", "github.com/owner/repo"},
    {"git+ssh://git@github.com/owner/repo", "github.com/owner/repo"},
    {"git://github.com/owner/repo.git", "github.com/owner/repo"},
    {"git://github.com:9418/owner/repo.git", "github.com/owner/repo"},
    {"ssh://git@gitea.example.org:2222/team/app.git", "gitea.example.org:2222/team/app"},
    {"https://gitea.example.org:8443/team/app", "gitea.example.org:8443/team/app"},
    {"https://gitlab.example.com/group/sub/project.git", "gitlab.example.com/group/sub/project"},
    {"git@gitlab.example.com:group/sub/project.git", "gitlab.example.com/group/sub/project"},
    {"https://bitbucket.org/team/repo", "bitbucket.org/team/repo"},
    {"git@bitbucket.org:team/repo.git", "bitbucket.org/team/repo"},
    {"https://[::1]:8080/o/r.git", "[::1]:8080/o/r"},
    {"git@[::1]:o/r.git", "[::1]/o/r"},
    {"ssh://host/~user/repo.git", "host/~user/repo"},
    {"https://example.com/o/r.github", "example.com/o/r.github"},
    {"https://example.com/.git", "example.com/.git"}, /* a repository named ".git" */
    {"file:///srv/git/Repo.git", "/srv/git/Repo"},
    {"file:///srv/git/Repo/", "/srv/git/Repo"},
    {"file://localhost/srv/git/Repo", "/srv/git/Repo"},
    {"/srv/git/Repo.git", "/srv/git/Repo"},
    {"/srv/git//Repo", "/srv/git/Repo"},
    /* invalid */
    {"", NULL},
    {"https://github.com/", NULL},
    {"https://github.com", NULL},
    {"https:///owner/repo", NULL},
    {"ftp://example.com/o/r", NULL},
    {"ext::sh -c touch% /tmp/x", NULL},
    {"https://github.com/owner/re po", NULL},
    {"https://github.com/owner/repo\n", NULL},
    {"https://github.com:abc/owner/repo", NULL},
    {"relative/path/repo", NULL},
    {"git@github.com", NULL},
};

static void test_normalize_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < VK_ARRAY_LEN(rows); i++) {
        char out[VK_TRIGGERS_MAX_URL + 1];
        int rc = vk_triggers_url_normalize(rows[i].url, out, sizeof(out));
        if (rows[i].norm) {
            if (rc != 0)
                fail_msg("row %zu '%s': rc %d", i, rows[i].url, rc);
            if (strcmp(out, rows[i].norm) != 0)
                fail_msg("row %zu '%s': got '%s', want '%s'", i, rows[i].url, out, rows[i].norm);
        } else if (rc == 0) {
            fail_msg("row %zu '%s': accepted as '%s'", i, rows[i].url, out);
        }
    }
}

static void test_same(void **state)
{
    (void)state;
    assert_true(vk_triggers_url_same("https://github.com/o/r.git", "git@github.com:o/r"));
    assert_true(vk_triggers_url_same("ssh://git@GITHUB.com/O/R/", "http://github.com/o/r"));
    assert_true(vk_triggers_url_same("file:///tmp/x/repo", "/tmp/x/repo.git"));
    assert_false(vk_triggers_url_same("file:///tmp/x/Repo", "/tmp/x/repo"));
    assert_false(vk_triggers_url_same("https://github.com/o/r", "https://gitlab.com/o/r"));
    assert_false(vk_triggers_url_same("https://github.com/o/r", "https://github.com/o/r2"));
    assert_false(vk_triggers_url_same("https://github.com/o/r", "https://github.com:8443/o/r"));
    assert_false(vk_triggers_url_same("https://github.com/o/r", "https://github.com/o"));
    assert_false(vk_triggers_url_same("", ""));
    assert_false(vk_triggers_url_same(NULL, "https://github.com/o/r"));
}

static void test_limits(void **state)
{
    (void)state;
    char url[VK_TRIGGERS_MAX_URL + 10];
    strcpy(url, "https://h/");
    memset(url + 10, 'a', sizeof(url) - 11);
    url[sizeof(url) - 1] = '\0';
    char out[VK_TRIGGERS_MAX_URL + 1];
    assert_int_equal(vk_triggers_url_normalize(url, out, sizeof(out)), VK_ETOOBIG);
    assert_int_equal(vk_triggers_url_normalize("https://github.com/o/r", out, 10), VK_ETOOBIG);
    assert_string_equal(out, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_normalize_table),
        cmocka_unit_test(test_same),
        cmocka_unit_test(test_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
