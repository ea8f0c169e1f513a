/*
 * Fixture shared by the store suites: each test gets a fresh database, a new SQLite
 * file under `tmp_root` or, on PostgreSQL (VK_TEST_STORE_BACKEND=postgres, run through
 * scripts/pg-test.sh), a new database created on the cluster in VK_TEST_PG_URL.
 * The including file creates `tmp_root` in main() and names its databases `prefix`.
 */
#ifndef VULCAN_STORE_TEST_H
#define VULCAN_STORE_TEST_H

#include "vk_test.h"
#include "vulcan/store.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct fx {
    char url[512];
    struct vk_store *s;
    char tenant[VK_UUID_LEN];
    struct vk_pool pool;
};

static int test_seq;
static char tmp_root[256];

static bool is_pg(void)
{
    const char *b = getenv("VK_TEST_STORE_BACKEND");
    return b && strcmp(b, "postgres") == 0;
}

/* A URL for a brand-new database; `prefix` keeps the suites' PostgreSQL names apart. */
static void fresh_url(const char *prefix, char *url, size_t n)
{
    test_seq++;
    if (!is_pg()) {
        snprintf(url, n, "sqlite:%s/t%d/sub/store.db", tmp_root, test_seq);
        return;
    }
    const char *base = getenv("VK_TEST_PG_URL");
    if (!base || !*base)
        fail_msg("VK_TEST_PG_URL is not set: run this test through scripts/pg-test.sh");
    PGconn *db = PQconnectdb(base);
    if (PQstatus(db) != CONNECTION_OK)
        fail_msg("cannot connect to %s: %s", base, PQerrorMessage(db));
    char sql[128], name[64];
    snprintf(name, sizeof(name), "%s%d_%d", prefix, (int)getpid(), test_seq);
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", name);
    PGresult *r = PQexec(db, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        fail_msg("create database: %s", PQerrorMessage(db));
    PQclear(r);
    PQfinish(db);
    const char *slash = strrchr(base, '/');
    assert_non_null(slash);
    snprintf(url, n, "%.*s/%s", (int)(slash - base), base, name);
}

static int fx_setup(const char *prefix, void **state)
{
    struct fx *f = calloc(1, sizeof(*f));
    struct vk_err err = {0};
    fresh_url(prefix, f->url, sizeof(f->url));
    if (vk_store_open(f->url, &f->s, &err))
        fail_msg("open %s: %s", f->url, err.msg);
    assert_int_equal(vk_store_tenant_ensure(f->s, "default", f->tenant, &err), 0);
    vk_pool_init(&f->pool, 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    vk_store_close(f->s);
    vk_pool_release(&f->pool);
    free(f);
    return 0;
}

#endif
