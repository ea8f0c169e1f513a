/*
 * Server-side masking of log ingest (api_mask.c): a value registered for an attempt is
 * "***" in the stored log (and so in the SSE stream, which reads it), also when it is cut
 * between two uploads; a retried chunk is ignored although the stored log is shorter than
 * the worker's stream; a hole is refused; the held-back tail is stored at the result and
 * the entry goes; after the entry is lost (a restart) the worker's offsets still fit.
 */
#include "api_test.h"

static const char SECRET[] = "s3cr3t-VALUE-42";

static char *stored(struct env *e, const char *fid)
{
    char path[160];
    snprintf(path, sizeof(path), "/api/v1/fragments/%s/log", fid);
    char *body = NULL;
    size_t len = 0;
    assert_int_equal(get_raw(e->cl, path, &body, &len, NULL, 0), 200);
    return body;
}

static void expect_stored(struct env *e, const char *fid, const char *want)
{
    char *s = stored(e, fid);
    assert_string_equal(s, want);
    vk_mem_free(s);
}

static void test_ingest_masked(void **state)
{
    struct env *e = *state;
    char id[VK_UUID_LEN], wid[VK_UUID_LEN], fid[VK_UUID_LEN];
    submit(e, "mask.kdl", "main", "true", id);
    worker_register(e, wid);
    int a = worker_claim(e->cl, wid, fid);
    assert_int_equal(vk__api_mask_add(e->api, fid, a, SECRET, strlen(SECRET)), 0);
    assert_int_equal(vk__api_mask_add(e->api, fid, a, "short", 5), VK_EINVAL);
    assert_int_equal(vk__api_mask_entries(e->api), 1);
    /* Cut inside the value: nothing of it is stored until it is decided. */
    assert_int_equal(worker_log(e->cl, fid, a, 0, "a s3cr3t-VA", 11), 204);
    expect_stored(e, fid, "a ");
    assert_int_equal(worker_log(e->cl, fid, a, 0, "a s3cr3t-VA", 11), 204); /* a retry */
    expect_stored(e, fid, "a ");
    assert_int_equal(worker_log(e->cl, fid, a, 11, "LUE-42 b\n", 9), 204);
    expect_stored(e, fid, "a *** b\n");
    /* Overlapping retry: only the new part is taken. */
    assert_int_equal(worker_log(e->cl, fid, a, 14, "-42 b\nnext s3cr3t-VALUE-42\n", 27), 204);
    expect_stored(e, fid, "a *** b\nnext ***\n");
    /* A hole (past the worker bytes taken) is refused. */
    assert_int_equal(worker_log(e->cl, fid, a, 500, "x", 1), 400);
    /* The end of the stream is a prefix of the value: stored as it is at the result. */
    assert_int_equal(worker_log(e->cl, fid, a, 41, "tail s3cr3t", 11), 204);
    expect_stored(e, fid, "a *** b\nnext ***\ntail ");
    assert_int_equal(worker_result(e->cl, wid, fid, a, true), 200);
    expect_stored(e, fid, "a *** b\nnext ***\ntail s3cr3t");
    assert_int_equal(vk__api_mask_entries(e->api), 0);
}

static void test_entry_lost(void **state)
{
    struct env *e = *state;
    char id[VK_UUID_LEN], wid[VK_UUID_LEN], fid[VK_UUID_LEN];
    submit(e, "lost.kdl", "main", "true", id);
    worker_register(e, wid);
    int a = worker_claim(e->cl, wid, fid);
    assert_int_equal(vk__api_mask_add(e->api, fid, a, SECRET, strlen(SECRET)), 0);
    assert_int_equal(worker_log(e->cl, fid, a, 0, "x s3cr3t-VALUE-42\n", 18), 204);
    expect_stored(e, fid, "x ***\n");
    /* What a restart does: the entry is gone (with nothing held back). */
    vk__api_mask_end(e->api, fid, a);
    assert_int_equal(vk__api_mask_entries(e->api), 0);
    /* The worker goes on at its offset 18; the stored log is 6 bytes long. */
    assert_int_equal(worker_log(e->cl, fid, a, 18, "more\n", 5), 204);
    expect_stored(e, fid, "x ***\nmore\n");
    assert_int_equal(worker_log(e->cl, fid, a, 18, "more\n", 5), 204); /* a retry */
    assert_int_equal(worker_log(e->cl, fid, a, 23, "end\n", 4), 204);
    expect_stored(e, fid, "x ***\nmore\nend\n");
    assert_int_equal(worker_result(e->cl, wid, fid, a, true), 200);
    assert_int_equal(vk__api_mask_entries(e->api), 0);
}

/* Without a registered value the log is stored byte for byte at the worker's offsets. */
static void test_no_values(void **state)
{
    struct env *e = *state;
    char id[VK_UUID_LEN], wid[VK_UUID_LEN], fid[VK_UUID_LEN];
    submit(e, "plain.kdl", "main", "true", id);
    worker_register(e, wid);
    int a = worker_claim(e->cl, wid, fid);
    assert_int_equal(worker_log(e->cl, fid, a, 0, "s3cr3t-VALUE-42 one\n", 20), 204);
    assert_int_equal(worker_log(e->cl, fid, a, 9, "LUE-42 one\ntwo\n", 15), 204);
    expect_stored(e, fid, "s3cr3t-VALUE-42 one\ntwo\n");
    assert_int_equal(worker_result(e->cl, wid, fid, a, true), 200);
    /* A stale attempt's log is refused as before (409), and leaves no entry. */
    assert_int_equal(worker_log(e->cl, fid, a + 1, 0, "late\n", 5), 409);
    assert_int_equal(vk__api_mask_entries(e->api), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_ingest_masked, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_entry_lost, env_setup, env_teardown),
        cmocka_unit_test_setup_teardown(test_no_values, env_setup, env_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
