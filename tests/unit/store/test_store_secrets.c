/*
 * The secret store (schema version 9) and its envelope encryption: a value round-trips;
 * a row copied to another name, scope or version does not open; a wrong key is refused by
 * the key check; a rotation re-wraps every data key so that the new key opens them all and
 * the old one none; the key file's mode and size are checked. Run against SQLite and
 * PostgreSQL (pg-test.sh).
 */
#include "store/store_int.h"
#include "store_test.h"
#include "vulcan/secrets.h"
#include "vulcan/store_secrets.h"

#include <sys/stat.h>

static int setup(void **state)
{
    return fx_setup("vk_tsec", state);
}

/* Seal `value` as `name` at org scope (version `ver`) and store it. */
static void put_secret(struct fx *f, const struct vk_secret_key *k, const char *name,
                       const char *value, int64_t ver, bool prot)
{
    struct vk_err err = {0};
    struct vk_secret_where w = {f->tenant, "org", "", name, ver};
    struct vk_secret_sealed sealed;
    assert_int_equal(vk_secret_seal(k, &w, value, strlen(value), &sealed, &err), 0);
    struct vk_store_secret sec = {.scope = "org",
                                  .scope_id = "",
                                  .name = name,
                                  .is_protected = prot,
                                  .value = sealed.ct,
                                  .value_len = sealed.ct_len,
                                  .nonce = sealed.nonce,
                                  .nonce_len = VK_SECRET_NONCE_LEN,
                                  .wrapped_key = sealed.wrapped,
                                  .wrapped_len = VK_SECRET_WRAPPED_LEN,
                                  .version = ver,
                                  .key_version = 1,
                                  .created_by = "alice",
                                  .updated_by = "alice"};
    memcpy(sec.tenant_id, f->tenant, VK_UUID_LEN);
    if (vk_store_secret_put(f->s, &sec, ver - 1, &err))
        fail_msg("put %s: %s", name, err.msg);
    vk_secret_sealed_release(&sealed);
}

/* Open stored row `sec` as if it lived at `name` / version `ver`. */
static int open_as(const struct vk_secret_key *k, struct fx *f, const struct vk_store_secret *sec,
                   const char *name, int64_t ver, char **v, size_t *n)
{
    struct vk_err err = {0};
    struct vk_secret_where w = {f->tenant, sec->scope, sec->scope_id, name, ver};
    return vk_secret_open(k, &w, sec->nonce, sec->wrapped_key, sec->value, sec->value_len, v, n,
                          &err);
}

static void test_round_trip_and_aad(void **state)
{
    struct fx *f = *state;
    struct vk_err err = {0};
    struct vk_secret_key k;
    assert_int_equal(vk_secret_key_generate(&k, &err), 0);
    put_secret(f, &k, "NPM_TOKEN", "npm_abcdefghijklmnop", 1, false);
    struct vk_store_secret sec;
    assert_int_equal(
        vk_store_secret_get(f->s, f->tenant, "org", "", "NPM_TOKEN", &f->pool, &sec, &err), 0);
    assert_string_equal(sec.created_by, "alice");
    assert_int_equal((int)sec.value_len, 20 + VK_SECRET_TAG_LEN);
    /* the stored bytes are not the value */
    assert_null(memmem(sec.value, sec.value_len, "npm_abc", 7));
    char *v = NULL;
    size_t n = 0;
    assert_int_equal(open_as(&k, f, &sec, "NPM_TOKEN", 1, &v, &n), 0);
    assert_int_equal((int)n, 20);
    assert_string_equal(v, "npm_abcdefghijklmnop");
    vk_mem_free(v);
    /* the same row under another name, or at an older version, does not open */
    assert_int_equal(open_as(&k, f, &sec, "OTHER_NAME", 1, &v, &n), VK_EPERM);
    assert_null(v);
    assert_int_equal(open_as(&k, f, &sec, "NPM_TOKEN", 2, &v, &n), VK_EPERM);
    /* nor in another org */
    struct vk_secret_where w = {"00000000-0000-0000-0000-000000000000", "org", "", "NPM_TOKEN", 1};
    assert_int_equal(
        vk_secret_open(&k, &w, sec.nonce, sec.wrapped_key, sec.value, sec.value_len, &v, &n, &err),
        VK_EPERM);
    /* another key does not open it */
    struct vk_secret_key other;
    assert_int_equal(vk_secret_key_generate(&other, &err), 0);
    assert_int_equal(open_as(&other, f, &sec, "NPM_TOKEN", 1, &v, &n), VK_EPERM);
    /* a flipped ciphertext byte is caught */
    unsigned char *ct = (unsigned char *)sec.value;
    ct[0] ^= 1;
    assert_int_equal(open_as(&k, f, &sec, "NPM_TOKEN", 1, &v, &n), VK_EPERM);
    vk_secret_key_wipe(&k);
    vk_secret_key_wipe(&other);
}

static void test_versions_and_list(void **state)
{
    struct fx *f = *state;
    struct vk_err err = {0};
    struct vk_secret_key k;
    assert_int_equal(vk_secret_key_generate(&k, &err), 0);
    put_secret(f, &k, "B_TOKEN", "first-value", 1, false);
    put_secret(f, &k, "A_TOKEN", "another-value", 1, true);
    /* a second create is refused; a stale replace too */
    struct vk_store_secret sec = {.scope = "org",
                                  .scope_id = "",
                                  .name = "B_TOKEN",
                                  .value = (const unsigned char *)"x",
                                  .value_len = 1,
                                  .nonce = (const unsigned char *)"x",
                                  .nonce_len = 1,
                                  .wrapped_key = (const unsigned char *)"x",
                                  .wrapped_len = 1,
                                  .version = 2,
                                  .key_version = 1};
    memcpy(sec.tenant_id, f->tenant, VK_UUID_LEN);
    assert_int_equal(vk_store_secret_put(f->s, &sec, 0, &err), VK_EEXIST);
    assert_int_equal(vk_store_secret_put(f->s, &sec, 7, &err), VK_ECONFLICT);
    put_secret(f, &k, "B_TOKEN", "second-value", 2, false);
    struct vk_store_secret *rows = NULL;
    size_t n = 0;
    assert_int_equal(vk_store_secret_list(f->s, f->tenant, "org", "", &f->pool, &rows, &n, &err),
                     0);
    assert_int_equal((int)n, 2);
    assert_string_equal(rows[0].name, "A_TOKEN");
    assert_true(rows[0].is_protected);
    assert_int_equal((int)rows[1].version, 2);
    char *v = NULL;
    size_t len = 0;
    assert_int_equal(open_as(&k, f, &rows[1], "B_TOKEN", 2, &v, &len), 0);
    assert_string_equal(v, "second-value");
    vk_mem_free(v);
    assert_int_equal(vk_store_secret_delete(f->s, f->tenant, "org", "", "B_TOKEN", &err), 0);
    assert_int_equal(vk_store_secret_delete(f->s, f->tenant, "org", "", "B_TOKEN", &err),
                     VK_ENOTFOUND);
    vk_secret_key_wipe(&k);
}

static void test_resolve_narrowest(void **state)
{
    struct fx *f = *state;
    struct vk_err err = {0};
    struct vk_store_repo repo = {.url = "https://example.test/r.git", .provider = "generic"};
    memcpy(repo.tenant_id, f->tenant, VK_UUID_LEN);
    assert_int_equal(vk_store_repo_create(f->s, &repo, &err), 0);
    struct vk_store_secret org = {.scope = "org",
                                  .scope_id = "",
                                  .name = "TOKEN",
                                  .value = (const unsigned char *)"org-ct",
                                  .value_len = 6,
                                  .nonce = (const unsigned char *)"n",
                                  .nonce_len = 1,
                                  .wrapped_key = (const unsigned char *)"w",
                                  .wrapped_len = 1,
                                  .version = 1,
                                  .key_version = 1};
    memcpy(org.tenant_id, f->tenant, VK_UUID_LEN);
    assert_int_equal(vk_store_secret_put(f->s, &org, 0, &err), 0);
    struct vk_store_secret got;
    assert_int_equal(
        vk_store_secret_resolve(f->s, f->tenant, repo.id, "TOKEN", &f->pool, &got, &err), 0);
    assert_string_equal(got.scope, "org");
    struct vk_store_secret rs = org;
    rs.scope = "repository";
    rs.scope_id = repo.id;
    memcpy(rs.repository_id, repo.id, VK_UUID_LEN);
    rs.value = (const unsigned char *)"repo-ct";
    rs.value_len = 7;
    assert_int_equal(vk_store_secret_put(f->s, &rs, 0, &err), 0);
    assert_int_equal(
        vk_store_secret_resolve(f->s, f->tenant, repo.id, "TOKEN", &f->pool, &got, &err), 0);
    assert_string_equal(got.scope, "repository");
    assert_int_equal((int)got.value_len, 7);
    /* a chain without a repository sees the org's only */
    assert_int_equal(vk_store_secret_resolve(f->s, f->tenant, "", "TOKEN", &f->pool, &got, &err),
                     0);
    assert_string_equal(got.scope, "org");
    assert_int_equal(
        vk_store_secret_resolve(f->s, f->tenant, repo.id, "NONE", &f->pool, &got, &err),
        VK_ENOTFOUND);
    /* deleting the repository deletes its secrets */
    assert_int_equal(vk_store_repo_delete(f->s, repo.id, &err), 0);
    struct vk_store_secret *rows = NULL;
    size_t n = 9;
    assert_int_equal(
        vk_store_secret_list(f->s, f->tenant, "repository", repo.id, &f->pool, &rows, &n, &err), 0);
    assert_int_equal((int)n, 0);
}

struct rot {
    struct vk_secret_key *old_k, *new_k;
    const char *org;
};

static int rewrap_cb(void *ctx, const struct vk_store_secret *sec, unsigned char *out,
                     struct vk_err *err)
{
    struct rot *r = ctx;
    if (sec->wrapped_len != VK_SECRET_WRAPPED_LEN)
        return vk_err_set(err, VK_EINVAL, "bad wrapped key");
    struct vk_secret_where w = {r->org, sec->scope, sec->scope_id, sec->name, sec->version};
    return vk_secret_rewrap(r->old_k, r->new_k, &w, sec->wrapped_key, out, err);
}

static void test_key_check_and_rotation(void **state)
{
    struct fx *f = *state;
    struct vk_err err = {0};
    struct vk_secret_key k, k2;
    assert_int_equal(vk_secret_key_generate(&k, &err), 0);
    assert_int_equal(vk_secret_key_generate(&k2, &err), 0);
    unsigned char kcv[VK_SECRET_KCV_LEN], kcv2[VK_SECRET_KCV_LEN];
    vk_secret_key_check_value(&k, kcv);
    vk_secret_key_check_value(&k2, kcv2);
    int ver = 0;
    assert_int_equal(vk_store_secret_key_check(f->s, kcv, sizeof(kcv), &ver, &err), 0);
    assert_int_equal(ver, 1);
    assert_int_equal(vk_store_secret_key_check(f->s, kcv, sizeof(kcv), &ver, &err), 0);
    /* the wrong key is refused */
    assert_int_equal(vk_store_secret_key_check(f->s, kcv2, sizeof(kcv2), &ver, &err), VK_EPERM);
    char names[20][16];
    for (int i = 0; i < 20; i++) {
        snprintf(names[i], sizeof(names[i]), "S_%02d", i);
        char val[32];
        snprintf(val, sizeof(val), "value-number-%02d", i);
        put_secret(f, &k, names[i], val, 1, false);
    }
    struct rot r = {&k, &k2, f->tenant};
    size_t count = 0;
    assert_int_equal(
        vk_store_secret_rewrap_all(f->s, rewrap_cb, &r, kcv2, sizeof(kcv2), &count, &err), 0);
    assert_int_equal((int)count, 20);
    assert_int_equal(vk_store_secret_key_check(f->s, kcv2, sizeof(kcv2), &ver, &err), 0);
    assert_int_equal(ver, 2);
    assert_int_equal(vk_store_secret_key_check(f->s, kcv, sizeof(kcv), &ver, &err), VK_EPERM);
    struct vk_store_secret *rows = NULL;
    size_t n = 0;
    assert_int_equal(vk_store_secret_list(f->s, f->tenant, "org", "", &f->pool, &rows, &n, &err),
                     0);
    assert_int_equal((int)n, 20);
    for (size_t i = 0; i < n; i++) {
        char *v = NULL;
        size_t len = 0;
        char want[32];
        snprintf(want, sizeof(want), "value-number-%02d", (int)i);
        assert_int_equal(rows[i].key_version, 2);
        assert_int_equal(open_as(&k2, f, &rows[i], rows[i].name, 1, &v, &len), 0);
        assert_string_equal(v, want);
        vk_mem_free(v);
        assert_int_equal(open_as(&k, f, &rows[i], rows[i].name, 1, &v, &len), VK_EPERM);
    }
    vk_secret_key_wipe(&k);
    vk_secret_key_wipe(&k2);
}

static void test_key_file(void **state)
{
    (void)state;
    struct vk_err err = {0};
    char path[512];
    snprintf(path, sizeof(path), "%s/secrets.key", tmp_root);
    unlink(path);
    struct vk_secret_key k, k2;
    bool created = false;
    assert_int_equal(vk_secret_key_load(path, false, &k, &created, &err), VK_ENOTFOUND);
    assert_int_equal(vk_secret_key_load(path, true, &k, &created, &err), 0);
    assert_true(created);
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal((int)(st.st_mode & 0777), 0600);
    assert_int_equal((int)st.st_size, 32);
    assert_int_equal(vk_secret_key_load(path, true, &k2, &created, &err), 0);
    assert_false(created);
    assert_memory_equal(k.kek, k2.kek, 32);
    assert_int_equal(chmod(path, 0640), 0);
    assert_int_equal(vk_secret_key_load(path, true, &k2, &created, &err), VK_EPERM);
    assert_non_null(strstr(err.msg, "chmod 600"));
    assert_int_equal(chmod(path, 0600), 0);
    FILE *fp = fopen(path, "a");
    fputs("x", fp);
    fclose(fp);
    assert_int_equal(vk_secret_key_load(path, true, &k2, &created, &err), VK_EINVAL);
    assert_non_null(strstr(err.msg, "33 bytes, not 32"));
    unlink(path);
}

static void test_names_and_sizes(void **state)
{
    (void)state;
    struct vk_err err = {0};
    assert_true(vk_secret_name_valid("NPM_TOKEN"));
    assert_true(vk_secret_name_valid("_X1"));
    assert_false(vk_secret_name_valid("1X"));
    assert_false(vk_secret_name_valid("npm_token"));
    assert_false(vk_secret_name_valid("A-B"));
    assert_false(vk_secret_name_valid(""));
    assert_int_equal(vk_secret_value_check("12345", 5, &err), VK_EINVAL);
    assert_int_equal(vk_secret_value_check("123456", 6, &err), 0);
    assert_int_equal(vk_secret_value_check(NULL, VK_SECRET_MAX_VALUE, &err), 0);
    assert_int_equal(vk_secret_value_check(NULL, VK_SECRET_MAX_VALUE + 1, &err), VK_EINVAL);
    assert_int_equal(vk_secret_value_check("abc\0defg", 8, &err), VK_EINVAL);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    snprintf(tmp_root, sizeof(tmp_root), "%s/vk-store-secrets-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmp_root)) {
        perror("mkdtemp");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        T(test_round_trip_and_aad),      T(test_versions_and_list),
        T(test_resolve_narrowest),       T(test_key_check_and_rotation),
        cmocka_unit_test(test_key_file), cmocka_unit_test(test_names_and_sizes),
    };
    int failed = cmocka_run_group_tests_name(
        is_pg() ? "store_secrets_postgres" : "store_secrets_sqlite", tests, NULL, NULL);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp_root);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", tmp_root);
    return failed ? 1 : 0;
}
