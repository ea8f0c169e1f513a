/*
 * The audit log (schema version 20) with its hash chain and signed checkpoints, on SQLite
 * and PostgreSQL (pg-test.sh): per-org chains append and verify clean; the store refuses
 * UPDATE and DELETE; with the triggers out of the way (as someone who owns the database),
 * a changed byte is named as that record, a deleted record as a gap, and a chain rewritten
 * consistently from some record is caught by the checkpoint after it; an export verifies
 * with only the keyring, and a changed line in it does not; checkpoints of a rotated key
 * still verify; the recorder writes what it is given and counts what it drops.
 */
#include "store/store_int.h"
#include "store_test.h"
#include "vulcan/audit.h"

#include <sys/stat.h>

static int setup(void **state)
{
    return fx_setup("vk_taud", state);
}

static char keyfile[300], keyring[300];
static const char other_org[] = "0193a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";

static struct vk_audit_key *key_for_test(void)
{
    static int n;
    snprintf(keyfile, sizeof(keyfile), "%s/audit%d.key", tmp_root, ++n);
    snprintf(keyring, sizeof(keyring), "%s/audit%d-keys.pub", tmp_root, n);
    struct vk_audit_key *k = NULL;
    struct vk_err err = {0};
    if (vk_audit_key_load(keyfile, true, keyring, &k, &err))
        fail_msg("key: %s", err.msg);
    return k;
}

static struct vk_audit_keyring *ring(void)
{
    struct vk_audit_keyring *r = NULL;
    struct vk_err err = {0};
    if (vk_audit_keyring_load(keyring, &r, &err))
        fail_msg("keyring: %s", err.msg);
    return r;
}

static void append(struct fx *f, struct vk_audit_key *k, const char *org, int n, int64_t at0)
{
    struct vk_store_audit_rec recs[32];
    char details[32][64];
    assert_true(n <= 32);
    for (int i = 0; i < n; i++) {
        memset(&recs[i], 0, sizeof(recs[i]));
        snprintf(recs[i].tenant_id, sizeof(recs[i].tenant_id), "%s", org);
        recs[i].at = at0 + i;
        recs[i].actor = "user:alice";
        recs[i].source = "127.0.0.1";
        recs[i].action = i % 2 ? "repo.create" : "secret.update";
        recs[i].target = "/api/v1/repos";
        recs[i].outcome = "success";
        snprintf(details[i], sizeof(details[i]), "{\"status\":201,\"n\":%d}", i);
        recs[i].details = details[i];
    }
    struct vk_store_audit_policy pol = {5, 0};
    struct vk_err err = {0};
    if (vk_store_audit_append(f->s, recs, (size_t)n, vk_audit_seal_cb, vk_audit_sign_cb, k, &pol,
                              NULL, &err))
        fail_msg("append: %s", err.msg);
}

static struct vk_audit_report verify(struct fx *f, struct vk_audit_keyring *r)
{
    struct vk_audit_report rep;
    memset(&rep, 0, sizeof(rep));
    struct vk_err err = {0};
    if (vk_audit_verify_store(f->s, r, &rep, &err))
        fail_msg("verify: %s", err.msg);
    return rep;
}

/* Run `sql` as the database's owner would, around the store's refusal. */
static int raw(struct fx *f, const char *sql)
{
    struct vk__conn *c = NULL;
    struct vk_err err = {0};
    assert_int_equal(vk__store_conn_get(f->s, &c, &err), 0);
    int rc = c->store->ops->exec_script(c, sql, &err);
    vk__store_conn_put(f->s, c);
    return rc;
}

static void untrigger(struct fx *f)
{
    if (is_pg())
        assert_int_equal(raw(f, "ALTER TABLE audit_log DISABLE TRIGGER USER"), 0);
    else
        assert_int_equal(
            raw(f, "DROP TRIGGER audit_log_no_UPDATE; DROP TRIGGER audit_log_no_DELETE"), 0);
}

static bool has_problem(const struct vk_audit_report *rep, const char *text)
{
    for (size_t i = 0; i < rep->nproblems && i < VK_AUDIT_MAX_PROBLEMS; i++)
        if (strstr(rep->problems[i], text))
            return true;
    return false;
}

static void print_report(const struct vk_audit_report *rep)
{
    for (size_t i = 0; i < rep->nproblems && i < VK_AUDIT_MAX_PROBLEMS; i++)
        print_message("  %s\n", rep->problems[i]);
}

static void test_chain_and_checkpoints(void **state)
{
    struct fx *f = *state;
    struct vk_audit_key *k = key_for_test();
    struct stat st;
    assert_int_equal(stat(keyfile, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    append(f, k, f->tenant, 7, 1000);
    append(f, k, other_org, 3, 2000);
    append(f, k, f->tenant, 5, 3000);
    struct vk_audit_keyring *r = ring();
    struct vk_audit_report rep = verify(f, r);
    print_report(&rep);
    assert_int_equal(rep.nproblems, 0);
    assert_int_equal(rep.records, 15);
    assert_int_equal(rep.orgs, 2);
    assert_int_equal(rep.checkpoints, 2);   /* the default org at 5 and 10 */
    assert_int_equal(rep.unsigned_tail, 5); /* 11, 12 and the other org's 3 */

    struct vk_store_audit_filter flt = {.action = "repo.", .newest_first = true, .limit = 3};
    struct vk_store_audit_rec *recs = NULL;
    size_t n = 0;
    struct vk_err err = {0};
    assert_int_equal(vk_store_audit_list(f->s, f->tenant, &flt, &f->pool, &recs, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_true(recs[0].seq > recs[1].seq);
    assert_string_equal(recs[0].action, "repo.create");
    assert_int_equal(strlen(recs[0].hash), 64);
    /* '_' in a prefix is itself, not any character */
    struct vk_store_audit_filter us = {.action = "secret_.", .limit = 3};
    assert_int_equal(vk_store_audit_list(f->s, f->tenant, &us, &f->pool, &recs, &n, &err), 0);
    assert_int_equal(n, 0);

    /* the store refuses changes and deletions */
    assert_int_not_equal(raw(f, "UPDATE audit_log SET actor = 'mallory' WHERE seq = 2"), 0);
    assert_int_not_equal(raw(f, "DELETE FROM audit_log WHERE seq = 2"), 0);
    assert_int_not_equal(raw(f, "DELETE FROM audit_checkpoints"), 0);
    rep = verify(f, r);
    assert_int_equal(rep.nproblems, 0);

    /* with the triggers gone: one byte of one record's details */
    untrigger(f);
    char sql[256];
    snprintf(sql, sizeof(sql),
             "UPDATE audit_log SET details = '{\"n\":3,\"status\":501}' WHERE tenant_id = '%s'"
             " AND seq = 4",
             f->tenant);
    assert_int_equal(raw(f, sql), 0);
    rep = verify(f, r);
    print_report(&rep);
    assert_true(has_problem(&rep, "record 4 was altered"));
    /* a deleted record is a gap */
    snprintf(sql, sizeof(sql), "DELETE FROM audit_log WHERE tenant_id = '%s' AND seq = 8",
             f->tenant);
    assert_int_equal(raw(f, sql), 0);
    rep = verify(f, r);
    print_report(&rep);
    assert_true(has_problem(&rep, "record 8 is missing"));
    vk_audit_keyring_free(r);
    vk_audit_key_free(k);
}

/* Rewrite records 2.. of an org consistently, as someone who can write the database. */
static void test_rewrite_caught_by_checkpoint(void **state)
{
    struct fx *f = *state;
    struct vk_audit_key *k = key_for_test();
    append(f, k, f->tenant, 7, 1000);
    untrigger(f);
    struct vk_store_audit_rec *recs = NULL;
    size_t n = 0;
    struct vk_err err = {0};
    assert_int_equal(vk_store_audit_list(f->s, f->tenant, NULL, &f->pool, &recs, &n, &err), 0);
    assert_int_equal(n, 7);
    char prev[VK_STORE_AUDIT_HASH_LEN];
    memcpy(prev, recs[0].hash, sizeof(prev));
    for (size_t i = 1; i < n; i++) {
        struct vk_store_audit_rec r = recs[i];
        r.actor = "user:mallory";
        memcpy(r.prev_hash, prev, sizeof(prev));
        assert_int_equal(vk_audit_seal(&r, &err), 0);
        memcpy(prev, r.hash, sizeof(prev));
        char sql[512];
        snprintf(sql, sizeof(sql),
                 "UPDATE audit_log SET actor = 'user:mallory', prev_hash = '%s', hash = '%s'"
                 " WHERE tenant_id = '%s' AND seq = %lld",
                 r.prev_hash, r.hash, f->tenant, (long long)r.seq);
        assert_int_equal(raw(f, sql), 0);
    }
    struct vk_audit_keyring *kr = ring();
    struct vk_audit_report rep = verify(f, kr);
    print_report(&rep);
    assert_false(has_problem(&rep, "altered"));
    assert_true(has_problem(&rep, "checkpoint at record 5 does not match the chain"));
    vk_audit_keyring_free(kr);
    vk_audit_key_free(k);
}

/* An export (JSON lines) verifies with the keyring alone; a changed line does not. */
static void test_export_and_rotation(void **state)
{
    struct fx *f = *state;
    struct vk_audit_key *k = key_for_test();
    append(f, k, f->tenant, 6, 1000);
    char new_id[VK_AUDIT_KEY_ID_LEN];
    struct vk_err err = {0};
    char old_id[VK_AUDIT_KEY_ID_LEN];
    snprintf(old_id, sizeof(old_id), "%s", vk_audit_key_id(k));
    assert_int_equal(vk_audit_key_rotate(keyfile, keyring, new_id, &err), 0);
    assert_string_not_equal(new_id, old_id);
    vk_audit_key_free(k);
    k = NULL;
    assert_int_equal(vk_audit_key_load(keyfile, false, keyring, &k, &err), 0);
    assert_string_equal(vk_audit_key_id(k), new_id);
    append(f, k, f->tenant, 6, 2000); /* checkpoint at 10 with the new key */
    struct vk_audit_keyring *r = ring();
    assert_int_equal(vk_audit_keyring_size(r), 2);

    char path[400];
    snprintf(path, sizeof(path), "%s/export.jsonl", tmp_root);
    FILE *out = fopen(path, "w");
    assert_non_null(out);
    struct vk_store_audit_rec *recs = NULL;
    struct vk_store_audit_checkpoint *cps = NULL;
    size_t n = 0, ncp = 0, j = 0;
    assert_int_equal(vk_store_audit_list(f->s, f->tenant, NULL, &f->pool, &recs, &n, &err), 0);
    assert_int_equal(vk_store_audit_checkpoints(f->s, f->tenant, 0, 0, &f->pool, &cps, &ncp, &err),
                     0);
    assert_int_equal(ncp, 2);
    assert_string_not_equal(cps[0].key_id, cps[1].key_id);
    for (size_t i = 0; i < n; i++) {
        json_t *o = vk_audit_rec_json(&recs[i]);
        assert_non_null(o);
        assert_int_equal(json_dumpf(o, out, JSON_COMPACT), 0);
        fputc('\n', out);
        json_decref(o);
        for (; j < ncp && cps[j].seq == recs[i].seq; j++) {
            o = vk_audit_checkpoint_json(&cps[j]);
            assert_int_equal(json_dumpf(o, out, JSON_COMPACT), 0);
            fputc('\n', out);
            json_decref(o);
        }
    }
    fclose(out);
    FILE *in = fopen(path, "r");
    struct vk_audit_report rep;
    memset(&rep, 0, sizeof(rep));
    assert_int_equal(vk_audit_verify_jsonl(in, r, &rep, &err), 0);
    fclose(in);
    print_report(&rep);
    assert_int_equal(rep.nproblems, 0);
    assert_int_equal(rep.records, 12);
    assert_int_equal(rep.checkpoints, 2);

    /* one changed character of one line */
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "sed -i '3s/secret.update/secret.delete/' '%s'", path);
    assert_int_equal(system(cmd), 0);
    in = fopen(path, "r");
    memset(&rep, 0, sizeof(rep));
    assert_int_equal(vk_audit_verify_jsonl(in, r, &rep, &err), 0);
    fclose(in);
    print_report(&rep);
    assert_true(has_problem(&rep, "record 3 was altered"));
    vk_audit_keyring_free(r);
    vk_audit_key_free(k);
}

static void test_recorder(void **state)
{
    struct fx *f = *state;
    struct vk_audit_key *k = key_for_test();
    struct vk_audit_opts o = {.store = f->s, .key = k, .checkpoint_every = 50, .queue = 300};
    struct vk_audit *a = NULL;
    struct vk_err err = {0};
    assert_int_equal(vk_audit_new(&o, &a, &err), 0);
    json_t *d = json_pack("{s:i}", "status", 200);
    for (int i = 0; i < 200; i++) {
        struct vk_audit_event ev = {.org = f->tenant,
                                    .actor = "token:x",
                                    .action = "chain.create",
                                    .outcome = "success",
                                    .details = d};
        vk_audit_record(a, &ev);
    }
    json_decref(d);
    assert_int_equal(vk_audit_flush(a, 10000), 0);
    struct vk_audit_stats st;
    vk_audit_stats(a, &st);
    assert_int_equal(st.written, 200);
    assert_int_equal(st.dropped, 0);
    assert_int_equal(st.failed, 0);
    assert_int_equal(st.checkpoints, 4);
    vk_audit_free(a); /* nothing after 200: no new checkpoint */
    struct vk_audit_event one = {.org = other_org, .action = "admin.backup"};
    assert_int_equal(vk_audit_record_now(f->s, k, &one, &err), 0);
    struct vk_audit_keyring *r = ring();
    struct vk_audit_report rep = verify(f, r);
    print_report(&rep);
    assert_int_equal(rep.nproblems, 0);
    assert_int_equal(rep.records, 201);
    assert_int_equal(rep.checkpoints, 5);
    assert_int_equal(rep.unsigned_tail, 0);
    vk_audit_keyring_free(r);
    vk_audit_key_free(k);
}

/* A key file readable by others is refused; a keyring without keys is an error. */
static void test_key_files(void **state)
{
    (void)state;
    struct vk_audit_key *k = key_for_test();
    vk_audit_key_free(k);
    assert_int_equal(chmod(keyfile, 0644), 0);
    struct vk_err err = {0};
    assert_int_equal(vk_audit_key_load(keyfile, false, NULL, &k, &err), VK_EPERM);
    char empty[320];
    snprintf(empty, sizeof(empty), "%s/empty.pub", tmp_root);
    FILE *e = fopen(empty, "w");
    fputs("not a key\n", e);
    fclose(e);
    struct vk_audit_keyring *r = NULL;
    assert_int_equal(vk_audit_keyring_load(empty, &r, &err), VK_EINVAL);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    snprintf(tmp_root, sizeof(tmp_root), "%s/vk-store-audit-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmp_root)) {
        perror("mkdtemp");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        T(test_chain_and_checkpoints),    T(test_rewrite_caught_by_checkpoint),
        T(test_export_and_rotation),      T(test_recorder),
        cmocka_unit_test(test_key_files),
    };
    int failed = cmocka_run_group_tests_name(
        is_pg() ? "store_audit_postgres" : "store_audit_sqlite", tests, NULL, NULL);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp_root);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", tmp_root);
    return failed ? 1 : 0;
}
