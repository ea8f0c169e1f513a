/*
 * Store operations of the triggers: repository update and delete, webhook deliveries,
 * schedules and their exactly-once claims (schema version 2), trigger requests and the
 * chains a request makes once (schema version 3). Run by CTest against SQLite
 * (a fresh file per test) and PostgreSQL (scripts/pg-test.sh; CREATE DATABASE per test).
 */
#include "store/store_int.h"
#include "store_test.h"

#include <pthread.h>

static int setup(void **state)
{
    return fx_setup("vk_tt", state);
}

static void make_repo(struct fx *f, const char *url, struct vk_store_repo *repo)
{
    memset(repo, 0, sizeof(*repo));
    repo->url = url;
    repo->provider = "github";
    repo->webhook_secret = "s3cret";
    memcpy(repo->tenant_id, f->tenant, VK_UUID_LEN);
    struct vk_err err = {0};
    if (vk_store_repo_create(f->s, repo, &err))
        fail_msg("repo_create: %s", err.msg);
}

/* ---------------------------------------------------------------- Tests */

static void test_schema_version(void **state)
{
    struct fx *f = *state;
    struct vk_err err = {0};
    int v = 0;
    assert_int_equal(vk_store_schema_version(f->s, &v, &err), 0);
    assert_int_equal(v, VK_STORE_SCHEMA_VERSION);
}

static void test_repo_update_delete(void **state)
{
    struct fx *f = *state;
    struct vk_err err = {0};
    struct vk_store_repo a, b, got;
    make_repo(f, "https://example.com/a.git", &a);
    make_repo(f, "https://example.com/b.git", &b);

    struct vk_store_repo_update u = {.set = VK_STORE_REPO_SET_GLOB | VK_STORE_REPO_SET_BRANCH |
                                            VK_STORE_REPO_SET_URL_IMPORTS |
                                            VK_STORE_REPO_SET_SECRET,
                                     .workflow_glob = "ci/*.kdl",
                                     .default_branch = "trunk",
                                     .allow_url_imports = true,
                                     .webhook_secret = NULL};
    assert_int_equal(vk_store_repo_update(f->s, a.id, &u, &err), 0);
    assert_int_equal(vk_store_repo_get(f->s, a.id, &f->pool, &got, &err), 0);
    assert_string_equal(got.workflow_glob, "ci/*.kdl");
    assert_string_equal(got.default_branch, "trunk");
    assert_true(got.allow_url_imports);
    assert_null(got.webhook_secret);
    assert_string_equal(got.url, "https://example.com/a.git");
    assert_string_equal(got.provider, "github");

    /* Taking another repository's url conflicts; empty required fields are refused. */
    struct vk_store_repo_update dup = {.set = VK_STORE_REPO_SET_URL, .url = b.url};
    assert_int_equal(vk_store_repo_update(f->s, a.id, &dup, &err), VK_EEXIST);
    struct vk_store_repo_update empty = {.set = VK_STORE_REPO_SET_BRANCH, .default_branch = ""};
    assert_int_equal(vk_store_repo_update(f->s, a.id, &empty, &err), VK_EINVAL);
    struct vk_store_repo_update none = {0};
    assert_int_equal(vk_store_repo_update(f->s, a.id, &none, &err), 0);
    assert_int_equal(vk_store_repo_update(f->s, "00000000-0000-7000-8000-000000000000", &u, &err),
                     VK_ENOTFOUND);

    /* A chain of the repository, and a schedule. */
    struct vk_store_chain ch = {0};
    memcpy(ch.tenant_id, f->tenant, VK_UUID_LEN);
    memcpy(ch.repository_id, a.id, VK_UUID_LEN);
    ch.repository_url = a.url;
    ch.trigger = "push";
    ch.default_machine = "default";
    struct vk_store_fragment_spec sp = {.parent = -1, .run_script = "true"};
    assert_int_equal(vk_store_chain_create(f->s, &ch, &sp, 1, NULL, &err), 0);
    struct vk_store_schedule sc = {.workflow_file = ".vulcan/n.kdl",
                                   .cron = "0 2 * * *",
                                   .timezone = "UTC",
                                   .next_fire_ms = 1000};
    assert_int_equal(vk_store_schedules_replace(f->s, a.id, &sc, 1, 500, &err), 0);

    assert_int_equal(vk_store_repo_delete(f->s, a.id, &err), 0);
    assert_int_equal(vk_store_repo_get(f->s, a.id, &f->pool, &got, &err), VK_ENOTFOUND);
    assert_int_equal(vk_store_repo_delete(f->s, a.id, &err), VK_ENOTFOUND);
    /* The chain stays, without its repository. */
    struct vk_store_chain c2;
    assert_int_equal(vk_store_chain_get(f->s, ch.id, &f->pool, &c2, NULL, NULL, &err), 0);
    assert_string_equal(c2.repository_id, "");
    assert_string_equal(c2.repository_url, "https://example.com/a.git");
    struct vk_store_schedule *list = NULL;
    size_t n = 9;
    assert_int_equal(vk_store_schedules_list(f->s, NULL, 0, 0, &f->pool, &list, &n, &err), 0);
    assert_int_equal(n, 0);
    /* The other repository is untouched. */
    assert_int_equal(vk_store_repo_get(f->s, b.id, &f->pool, &got, &err), 0);
}

static void test_deliveries(void **state)
{
    struct fx *f = *state;
    struct vk_err err = {0};
    bool seen = true;
    int64_t now = 1700000000000;
    assert_int_equal(vk_store_delivery_seen(f->s, "github", "d-1", now, &seen, &err), 0);
    assert_false(seen);
    assert_int_equal(vk_store_delivery_seen(f->s, "github", "d-1", now + 5, &seen, &err), 0);
    assert_true(seen);
    /* Same id from another provider is another delivery. */
    assert_int_equal(vk_store_delivery_seen(f->s, "gitea", "d-1", now, &seen, &err), 0);
    assert_false(seen);
    /* Forget lets a retry through. */
    assert_int_equal(vk_store_delivery_forget(f->s, "github", "d-1", &err), 0);
    assert_int_equal(vk_store_delivery_seen(f->s, "github", "d-1", now, &seen, &err), 0);
    assert_false(seen);
    /* Bad ids. */
    assert_int_equal(vk_store_delivery_seen(f->s, "github", "", now, &seen, &err), VK_EINVAL);
    char big[VK_STORE_MAX_DELIVERY_ID + 2];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(vk_store_delivery_seen(f->s, "github", big, now, &seen, &err), VK_EINVAL);
    /* Pruning: old rows go, a pruned id is new again. */
    assert_int_equal(vk_store_delivery_seen(f->s, "github", "old",
                                            now - VK_STORE_DELIVERY_KEEP_MS - 1, &seen, &err),
                     0);
    int64_t pruned = 0;
    assert_int_equal(vk_store_delivery_prune(f->s, now - VK_STORE_DELIVERY_KEEP_MS, &pruned, &err),
                     0);
    assert_int_equal(pruned, 1);
    assert_int_equal(vk_store_delivery_seen(f->s, "github", "d-1", now, &seen, &err), 0);
    assert_true(seen);
    /* Inserting many ids prunes by itself now and then (about one insert in 64). */
    assert_int_equal(vk_store_delivery_seen(f->s, "github", "old",
                                            now - VK_STORE_DELIVERY_KEEP_MS - 1, &seen, &err),
                     0);
    assert_false(seen);
    for (int i = 0; i < 400; i++) {
        char id[32];
        snprintf(id, sizeof(id), "bulk-%d", i);
        assert_int_equal(vk_store_delivery_seen(f->s, "github", id, now, &seen, &err), 0);
        assert_false(seen);
    }
    assert_int_equal(vk_store_delivery_seen(f->s, "github", "old", now, &seen, &err), 0);
    assert_false(seen); /* it had been pruned */
}

struct race {
    struct vk_store *s;
    const char *sched_id;
    int64_t slot, next;
    int claimed;
    const char *delivery;
    int fresh;
};

static void *race_thread(void *arg)
{
    struct race *r = arg;
    struct vk_err err = {0};
    for (int i = 0; i < 20; i++) {
        bool claimed = false, seen = true;
        if (vk_store_schedule_claim(r->s, r->sched_id, r->slot + i * 60000, r->next, &claimed,
                                    &err) == 0 &&
            claimed)
            __atomic_add_fetch(&r->claimed, 1, __ATOMIC_SEQ_CST);
        char id[64];
        snprintf(id, sizeof(id), "%s-%d", r->delivery, i);
        if (vk_store_delivery_seen(r->s, "github", id, 1, &seen, &err) == 0 && !seen)
            __atomic_add_fetch(&r->fresh, 1, __ATOMIC_SEQ_CST);
    }
    return NULL;
}

static void test_schedules(void **state)
{
    struct fx *f = *state;
    struct vk_err err = {0};
    struct vk_store_repo a, b;
    make_repo(f, "https://example.com/a.git", &a);
    make_repo(f, "https://example.com/b.git", &b);
    struct vk_store_schedule want[] = {
        {.workflow_file = ".vulcan/n.kdl",
         .cron = "0 2 * * *",
         .timezone = "Europe/Amsterdam",
         .next_fire_ms = 5000},
        {.workflow_file = ".vulcan/n.kdl",
         .cron = "*/5 * * * *",
         .timezone = "UTC",
         .next_fire_ms = 3000},
        {.workflow_file = ".vulcan/n.kdl",
         .cron = "*/5 * * * *",
         .timezone = "UTC",
         .next_fire_ms = 3000}, /* duplicate: counts once */
    };
    assert_int_equal(vk_store_schedules_replace(f->s, a.id, want, 3, 1000, &err), 0);
    struct vk_store_schedule bs = {.workflow_file = ".vulcan/x.kdl",
                                   .cron = "@daily",
                                   .timezone = "UTC",
                                   .next_fire_ms = 9000};
    assert_int_equal(vk_store_schedules_replace(f->s, b.id, &bs, 1, 1000, &err), 0);
    assert_int_equal(vk_store_schedules_replace(f->s, "00000000-0000-7000-8000-000000000000", &bs,
                                                1, 1000, &err),
                     VK_ENOTFOUND);

    struct vk_store_schedule *l = NULL;
    size_t n = 0;
    assert_int_equal(vk_store_schedules_list(f->s, a.id, 0, 0, &f->pool, &l, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(l[0].cron, "*/5 * * * *"); /* ordered by next fire */
    assert_int_equal(l[0].next_fire_ms, 3000);
    assert_int_equal(l[0].last_fired_ms, 1000); /* created now */
    assert_string_equal(l[1].timezone, "Europe/Amsterdam");
    assert_string_equal(l[0].repository_id, a.id);
    char keep_id[VK_UUID_LEN];
    memcpy(keep_id, l[0].id, VK_UUID_LEN);
    /* Due listing over every repository. */
    assert_int_equal(vk_store_schedules_list(f->s, NULL, 5000, 0, &f->pool, &l, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(vk_store_schedules_list(f->s, NULL, 0, 0, &f->pool, &l, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_int_equal(vk_store_schedules_list(f->s, NULL, 2999, 0, &f->pool, &l, &n, &err), 0);
    assert_int_equal(n, 0);

    /* Claims: once per slot. */
    bool claimed = false;
    assert_int_equal(vk_store_schedule_claim(f->s, keep_id, 3000, 6000, &claimed, &err), 0);
    assert_true(claimed);
    assert_int_equal(vk_store_schedule_claim(f->s, keep_id, 3000, 6000, &claimed, &err), 0);
    assert_false(claimed);
    assert_int_equal(vk_store_schedule_claim(f->s, keep_id, 2000, 6000, &claimed, &err), 0);
    assert_false(claimed); /* an older slot */
    assert_int_equal(vk_store_schedule_set_next(f->s, keep_id, 7000, &err), 0);

    /* Refresh keeps the surviving row with its times, drops the other, adds the new. */
    struct vk_store_schedule want2[] = {
        {.workflow_file = ".vulcan/n.kdl",
         .cron = "*/5 * * * *",
         .timezone = "UTC",
         .next_fire_ms = 1},
        {.workflow_file = ".vulcan/m.kdl",
         .cron = "@hourly",
         .timezone = "UTC",
         .next_fire_ms = 8000,
         .last_fired_ms = 4000},
    };
    assert_int_equal(vk_store_schedules_replace(f->s, a.id, want2, 2, 2000, &err), 0);
    assert_int_equal(vk_store_schedules_list(f->s, a.id, 0, 0, &f->pool, &l, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(l[0].id, keep_id);
    assert_int_equal(l[0].last_fired_ms, 3000);
    assert_int_equal(l[0].next_fire_ms, 7000);
    assert_string_equal(l[1].workflow_file, ".vulcan/m.kdl");
    assert_int_equal(l[1].last_fired_ms, 4000);
    assert_int_equal(l[1].created_at, 2000);
    /* Empty set removes everything of that repository only. */
    assert_int_equal(vk_store_schedules_replace(f->s, a.id, NULL, 0, 2000, &err), 0);
    assert_int_equal(vk_store_schedules_list(f->s, NULL, 0, 0, &f->pool, &l, &n, &err), 0);
    assert_int_equal(n, 1);
    assert_string_equal(l[0].repository_id, b.id);

    /* Concurrent claims (threads, and on PostgreSQL a second store = another replica). */
    struct vk_store *s2 = NULL;
    assert_int_equal(vk_store_open(f->url, &s2, &err), 0);
    struct race r[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        r[i] = (struct race){.s = i % 2 ? s2 : f->s,
                             .sched_id = l[0].id,
                             .slot = 100000,
                             .next = 999999,
                             .delivery = "race"};
        pthread_create(&th[i], NULL, race_thread, &r[i]);
    }
    int claimed_total = 0, fresh_total = 0;
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        claimed_total += r[i].claimed;
        fresh_total += r[i].fresh;
    }
    vk_store_close(s2);
    /* Each of the 20 slots once, though a later slot may win before an earlier one is tried
     * (then the earlier is refused as older): at least 1, at most 20. */
    assert_true(claimed_total >= 1 && claimed_total <= 20);
    assert_int_equal(fresh_total, 20);
}

static void test_slots_exactly_once(void **state)
{
    /* Every replica tries the same slots in the same order: each slot claimed once. */
    struct fx *f = *state;
    struct vk_err err = {0};
    struct vk_store_repo a;
    make_repo(f, "https://example.com/a.git", &a);
    struct vk_store_schedule sc = {
        .workflow_file = "w", .cron = "* * * * *", .timezone = "UTC", .next_fire_ms = 60000};
    assert_int_equal(vk_store_schedules_replace(f->s, a.id, &sc, 1, 1, &err), 0);
    struct vk_store_schedule *l = NULL;
    size_t n = 0;
    assert_int_equal(vk_store_schedules_list(f->s, a.id, 0, 0, &f->pool, &l, &n, &err), 0);
    assert_int_equal(n, 1);
    struct vk_store *s2 = NULL;
    assert_int_equal(vk_store_open(f->url, &s2, &err), 0);
    int wins = 0;
    for (int slot = 1; slot <= 30; slot++) {
        bool c1 = false, c2 = false;
        assert_int_equal(vk_store_schedule_claim(s2, l[0].id, slot * 60000, 0, &c2, &err), 0);
        assert_int_equal(vk_store_schedule_claim(f->s, l[0].id, slot * 60000, 0, &c1, &err), 0);
        assert_true(c1 != c2);
        wins += c1 + c2;
    }
    assert_int_equal(wins, 30);
    vk_store_close(s2);
}

/* Trigger requests: queued, claimed once by one of two replicas, fenced outcomes, a body
 * of any bytes, a stale claim taken over, and the chain a request makes made once. */
static void test_trigger_requests(void **state)
{
    struct fx *f = *state;
    struct vk_err err = {0};
    struct vk_store_repo a;
    make_repo(f, "https://example.com/a.git", &a);
    static const char body[] = "{\"x\":1}\0tail";
    struct vk_store_treq rq = {.kind = VK_STORE_TREQ_WEBHOOK,
                               .provider = "github",
                               .delivery_id = "d-1",
                               .params = "{\"headers\":{\"X-GitHub-Event\":\"push\"}}",
                               .body = body,
                               .body_len = sizeof(body) - 1,
                               .trace_id =
                                   "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"};
    memcpy(rq.tenant_id, f->tenant, VK_UUID_LEN);
    memcpy(rq.repository_id, a.id, VK_UUID_LEN);
    assert_int_equal(vk_store_treq_create(f->s, &rq, 1000, &err), 0);
    assert_true(vk_uuid_valid(rq.id));
    struct vk_store_treq second = {.kind = VK_STORE_TREQ_REFRESH};
    memcpy(second.tenant_id, f->tenant, VK_UUID_LEN);
    memcpy(second.repository_id, a.id, VK_UUID_LEN);
    assert_int_equal(vk_store_treq_create(f->s, &second, 2000, &err), 0);

    /* two replicas: each claims a different one, oldest first; then nothing is left */
    struct vk_store *s2 = NULL;
    assert_int_equal(vk_store_open(f->url, &s2, &err), 0);
    struct vk_store_treq c1, c2, c3;
    assert_int_equal(vk_store_treq_claim(f->s, "one", NULL, 3000, 0, &f->pool, &c1, &err), 0);
    assert_int_equal(vk_store_treq_claim(s2, "two", NULL, 3000, 0, &f->pool, &c2, &err), 0);
    assert_int_equal(vk_store_treq_claim(f->s, "one", NULL, 3000, 0, &f->pool, &c3, &err),
                     VK_ENOTFOUND);
    assert_string_equal(c1.id, rq.id);
    assert_string_equal(c2.id, second.id);
    assert_int_equal(c1.kind, VK_STORE_TREQ_WEBHOOK);
    assert_int_equal(c1.status, VK_STORE_TREQ_RUNNING);
    assert_int_equal(c1.attempts, 1);
    assert_string_equal(c1.provider, "github");
    assert_string_equal(c1.delivery_id, "d-1");
    assert_string_equal(c1.params, rq.params);
    assert_string_equal(c1.trace_id, rq.trace_id);
    assert_int_equal(c1.body_len, sizeof(body) - 1);
    assert_memory_equal(c1.body, body, sizeof(body) - 1);
    assert_int_equal(c2.body_len, 0);

    /* the outcome is fenced by the claim */
    assert_int_equal(vk_store_treq_finish(f->s, c1.id, "two", 200, "{}", 4000, &err), VK_ECONFLICT);
    assert_int_equal(vk_store_treq_finish(f->s, c1.id, "one", 201, "{\"chains\":[]}", 4000, &err),
                     0);
    struct vk_store_treq got;
    assert_int_equal(vk_store_treq_get(s2, c1.id, &f->pool, &got, &err), 0);
    assert_int_equal(got.status, VK_STORE_TREQ_DONE);
    assert_int_equal(got.result_status, 201);
    assert_string_equal(got.result, "{\"chains\":[]}");
    assert_int_equal(got.finished_at, 4000);
    assert_null(got.body);

    /* a claim whose handler died is taken over once stale, attempts counting */
    assert_int_equal(vk_store_treq_claim(f->s, "three", NULL, 5000, 2999, &f->pool, &c3, &err),
                     VK_ENOTFOUND);
    assert_int_equal(vk_store_treq_claim(f->s, "three", NULL, 5000, 3001, &f->pool, &c3, &err), 0);
    assert_string_equal(c3.id, second.id);
    assert_int_equal(c3.attempts, 2);
    assert_int_equal(vk_store_treq_finish(s2, second.id, "two", 200, "{}", 6000, &err),
                     VK_ECONFLICT);

    /* a chain of a request is made once per source file */
    struct vk_store_chain ch = {
        .source_file = ".vulcan/ci.kdl", .default_machine = "default", .trigger = "push"};
    memcpy(ch.tenant_id, f->tenant, VK_UUID_LEN);
    memcpy(ch.trigger_request_id, rq.id, VK_UUID_LEN);
    struct vk_store_fragment_spec spec = {.parent = -1, .run_script = "true"};
    assert_int_equal(vk_store_chain_create(f->s, &ch, &spec, 1, NULL, &err), 0);
    char first[VK_UUID_LEN];
    memcpy(first, ch.id, VK_UUID_LEN);
    struct vk_store_chain again = ch;
    memset(again.id, 0, sizeof(again.id));
    assert_int_equal(vk_store_chain_create(f->s, &again, &spec, 1, NULL, &err), VK_EEXIST);
    assert_string_equal(again.id, first);
    again.source_file = ".vulcan/other.kdl";
    assert_int_equal(vk_store_chain_create(f->s, &again, &spec, 1, NULL, &err), 0);
    struct vk_store_chain back;
    assert_int_equal(vk_store_chain_get(f->s, first, &f->pool, &back, NULL, NULL, &err), 0);
    assert_string_equal(back.trigger_request_id, rq.id);

    /* pruning removes finished requests only */
    int64_t pruned = 0;
    assert_int_equal(vk_store_treq_prune(f->s, 10000, &pruned, &err), 0);
    assert_int_equal(pruned, 1);
    assert_int_equal(vk_store_treq_get(f->s, c1.id, &f->pool, &got, &err), VK_ENOTFOUND);
    assert_int_equal(vk_store_treq_get(f->s, second.id, &f->pool, &got, &err), 0);

    /* bad input */
    struct vk_store_treq bad = {.kind = VK_STORE_TREQ_MANUAL};
    assert_int_equal(vk_store_treq_create(f->s, &bad, 1, &err), VK_EINVAL);
    assert_int_equal(vk_store_treq_get(f->s, "not-an-id", &f->pool, &got, &err), VK_ENOTFOUND);
    vk_store_close(s2);
}

/* A delivery's keys are remembered in the transaction that queues its request: never one
 * without the other (a process killed in between used to leave the key alone, and the
 * provider's redelivery was answered "handled before" for an event never queued). */
static void test_delivery_with_request(void **state)
{
    struct fx *f = *state;
    struct vk_err err = {0};
    struct vk_store_repo a;
    make_repo(f, "https://example.com/dd.git", &a);
    bool known = true;
    struct vk_store_treq rq = {.kind = VK_STORE_TREQ_WEBHOOK,
                               .provider = "github",
                               .delivery_id = "dd-1",
                               .dedup = {"body:x:abc", "dd-1"}};
    memcpy(rq.tenant_id, f->tenant, VK_UUID_LEN);
    memcpy(rq.repository_id, a.id, VK_UUID_LEN);
    assert_int_equal(vk_store_delivery_known(f->s, "github", "dd-1", &known, &err), 0);
    assert_false(known);
    assert_int_equal(vk_store_treq_create(f->s, &rq, 1000, &err), 0);
    assert_int_equal(vk_store_delivery_known(f->s, "github", "dd-1", &known, &err), 0);
    assert_true(known);
    assert_int_equal(vk_store_delivery_known(f->s, "github", "body:x:abc", &known, &err), 0);
    assert_true(known);
    /* The same delivery again, or the same body under another id: nothing is queued. */
    struct vk_store_treq again = rq;
    assert_int_equal(vk_store_treq_create(f->s, &again, 2000, &err), VK_EEXIST);
    again.dedup[1] = "dd-2";
    again.delivery_id = "dd-2";
    assert_int_equal(vk_store_treq_create(f->s, &again, 2000, &err), VK_EEXIST);
    assert_int_equal(vk_store_delivery_known(f->s, "github", "dd-2", &known, &err), 0);
    assert_false(known); /* rolled back with the refusal */
    struct vk_store_treq c1, c2;
    assert_int_equal(vk_store_treq_claim(f->s, "one", NULL, 3000, 0, &f->pool, &c1, &err), 0);
    assert_string_equal(c1.id, rq.id);
    assert_int_equal(vk_store_treq_claim(f->s, "one", NULL, 3000, 0, &f->pool, &c2, &err),
                     VK_ENOTFOUND);
    /* A request that cannot be queued leaves its keys unknown: the redelivery is handled. */
    struct vk_store_treq lost = {.kind = VK_STORE_TREQ_WEBHOOK,
                                 .provider = "github",
                                 .delivery_id = "dd-3",
                                 .dedup = {"body:x:def", "dd-3"}};
    memcpy(lost.tenant_id, "00000000-0000-4000-8000-000000000000", VK_UUID_LEN);
    assert_int_not_equal(vk_store_treq_create(f->s, &lost, 4000, &err), 0);
    assert_int_equal(vk_store_delivery_known(f->s, "github", "dd-3", &known, &err), 0);
    assert_false(known);
    assert_int_equal(vk_store_delivery_known(f->s, "github", "body:x:def", &known, &err), 0);
    assert_false(known);
}

/* A replica killed with -9 stops renewing its liveness lease: what it claimed is taken over
 * as soon as that lease expired, long before the claim is stale; a live replica's claim
 * is left alone. */
static void test_claim_of_dead_replica(void **state)
{
    struct fx *f = *state;
    struct vk_err err;
    struct vk_store_treq a = {.kind = VK_STORE_TREQ_REFRESH}, b = {.kind = VK_STORE_TREQ_REFRESH};
    memcpy(a.tenant_id, f->tenant, VK_UUID_LEN);
    memcpy(b.tenant_id, f->tenant, VK_UUID_LEN);
    assert_int_equal(vk_store_treq_create(f->s, &a, 1000, &err), 0);
    assert_int_equal(vk_store_treq_create(f->s, &b, 1001, &err), 0);
    bool held = false;
    assert_int_equal(
        vk_store_lease_hold(f->s, VK_STORE_REPLICA_LEASE "r1", "r1", 3000, 1000, &held, NULL, &err),
        0);
    assert_true(held);
    assert_int_equal(
        vk_store_lease_hold(f->s, VK_STORE_REPLICA_LEASE "r2", "r2", 3000, 1000, &held, NULL, &err),
        0);
    assert_true(held);
    struct vk_store_treq c1, c2, c3;
    assert_int_equal(vk_store_treq_claim(f->s, "r1-0", "r1", 1500, 0, &f->pool, &c1, &err), 0);
    assert_string_equal(c1.id, a.id);
    assert_int_equal(vk_store_treq_claim(f->s, "r2-0", "r2", 1500, 0, &f->pool, &c2, &err), 0);
    assert_string_equal(c2.id, b.id);
    /* both replicas alive: nothing to take */
    assert_int_equal(vk_store_treq_claim(f->s, "r2-1", "r2", 3500, 0, &f->pool, &c3, &err),
                     VK_ENOTFOUND);
    /* r2 renews, r1 was killed: after r1's lease expired (at 4000) r2 takes its request */
    assert_int_equal(
        vk_store_lease_hold(f->s, VK_STORE_REPLICA_LEASE "r2", "r2", 3000, 3900, &held, NULL, &err),
        0);
    assert_int_equal(vk_store_treq_claim(f->s, "r2-1", "r2", 4000, 0, &f->pool, &c3, &err),
                     VK_ENOTFOUND);
    assert_int_equal(vk_store_treq_claim(f->s, "r2-1", "r2", 4001, 0, &f->pool, &c3, &err), 0);
    assert_string_equal(c3.id, a.id);
    assert_int_equal(c3.attempts, 2);
    /* the dead replica's outcome is fenced off; the taker's is kept */
    assert_int_equal(vk_store_treq_finish(f->s, a.id, "r1-0", 200, "{}", 4100, &err), VK_ECONFLICT);
    assert_int_equal(vk_store_treq_finish(f->s, a.id, "r2-1", 200, "{}", 4100, &err), 0);
    /* a replica whose lease row is gone altogether counts as dead too */
    struct vk_store_treq d = {.kind = VK_STORE_TREQ_REFRESH};
    memcpy(d.tenant_id, f->tenant, VK_UUID_LEN);
    assert_int_equal(vk_store_treq_create(f->s, &d, 1002, &err), 0);
    assert_int_equal(vk_store_treq_claim(f->s, "r9-0", "r9", 4200, 0, &f->pool, &c1, &err), 0);
    assert_string_equal(c1.id, d.id);
    assert_int_equal(vk_store_treq_claim(f->s, "r2-1", "r2", 4300, 0, &f->pool, &c3, &err), 0);
    assert_string_equal(c3.id, d.id);
    /* without a replica (one process) a claim is only taken over once stale */
    assert_int_equal(vk_store_treq_finish(f->s, b.id, "r2-0", 200, "{}", 4350, &err), 0);
    assert_int_equal(vk_store_treq_finish(f->s, d.id, "r2-1", 200, "{}", 4350, &err), 0);
    struct vk_store_treq e = {.kind = VK_STORE_TREQ_REFRESH};
    memcpy(e.tenant_id, f->tenant, VK_UUID_LEN);
    assert_int_equal(vk_store_treq_create(f->s, &e, 1003, &err), 0);
    assert_int_equal(vk_store_treq_claim(f->s, "solo", NULL, 4400, 0, &f->pool, &c1, &err), 0);
    assert_string_equal(c1.id, e.id);
    assert_int_equal(vk_store_treq_claim(f->s, "r2-1", "r2", 4500, 0, &f->pool, &c3, &err),
                     VK_ENOTFOUND);
    assert_int_equal(vk_store_treq_claim(f->s, "r2-1", "r2", 4500, 4401, &f->pool, &c3, &err), 0);
    assert_string_equal(c3.id, e.id);
    /* the leases of replicas long gone are pruned, the live ones' kept */
    assert_int_equal(vk_store_lease_prune(f->s, VK_STORE_REPLICA_LEASE, 4001, &err), 0);
    assert_int_equal(
        vk_store_lease_hold(f->s, VK_STORE_REPLICA_LEASE "r2", "x", 3000, 5000, &held, NULL, &err),
        0);
    assert_false(held);
    bool taken = false;
    assert_int_equal(
        vk_store_lease_hold(f->s, VK_STORE_REPLICA_LEASE "r1", "x", 3000, 1, &held, &taken, &err),
        0);
    assert_true(held); /* the row was gone: taken even at a time r1's lease had not expired */
    assert_true(taken);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    snprintf(tmp_root, sizeof(tmp_root), "%s/vk-store-trig-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(tmp_root)) {
        perror("mkdtemp");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        T(test_schema_version),
        T(test_repo_update_delete),
        T(test_deliveries),
        T(test_schedules),
        T(test_slots_exactly_once),
        T(test_trigger_requests),
        T(test_delivery_with_request),
        T(test_claim_of_dead_replica),
    };
    int failed = cmocka_run_group_tests_name(
        is_pg() ? "store_triggers_postgres" : "store_triggers_sqlite", tests, NULL, NULL);
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmp_root);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot remove %s\n", tmp_root);
    return failed ? 1 : 0;
}
