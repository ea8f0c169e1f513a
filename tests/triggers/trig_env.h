/*
 * Shared set-up of the trigger wiring tests and the webhook benchmark: a local git
 * repository with workflows of different filters, an in-process server (store +
 * orchestrator + API on 127.0.0.1, port 0), and helpers to post real-format fixtures
 * (tests/fixtures/<provider>/) rewritten to point at the local repository.
 *
 * Test set-up only: the paths are our own temp paths, so a shell is fine for git here.
 */
#ifndef VK_TRIG_ENV_H
#define VK_TRIG_ENV_H

#include "../unit/vk_sh.h"
#include "vulcan/api.h"
#include "vulcan/audit.h"
#include "vulcan/http.h"
#include "vulcan/orchestrator.h"
#include "vulcan/store.h"
#include "vulcan/triggers.h"

#include <jansson.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#define TE_SECRET "It's a Secret to Everybody"
#define TE_ZERO "0000000000000000000000000000000000000000"

/* The fixtures' commit ids and URLs, replaced by the local repository's. */
#define FX_SHA_BASE "c4f1e2d3b4a5968778695a4b3c2d1e0f9a8b7c6d" /* → A (main's first commit) */
#define FX_SHA_HEAD "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c" /* → B (feature/fast) */
#define FX_SHA_MAIN "6113728f27ae82c7b1a177c8d03f9e96e0adf246" /* → C (main's head) */

struct te {
    char tmp[256];
    char work[300];     /* the working repository */
    char bare[300];     /* its bare copy, the "remote" the server mirrors */
    char repo_url[400]; /* file://BARE */
    char a[41], b[41], c[41];
    char dburl[512];
    struct vk_store *store;
    struct vk_orch *orch;
    struct vk_triggers_service *trig;
    struct vk_api *api;
    struct vk_audit *audit; /* with $VK_BENCH_AUDIT set: every request recorded (bench) */
    struct vk_audit_key *audit_key;
    char base_url[64];
    char repo_id[VK_UUID_LEN];
    int64_t clock; /* the scheduler's clock */
};

static inline int64_t te_clock(void *ctx)
{
    return __atomic_load_n(&((struct te *)ctx)->clock, __ATOMIC_SEQ_CST);
}

/* Move the scheduler's clock on (the trigger service's threads read it meanwhile). */
static inline void te_advance(struct te *t, int64_t ms)
{
    __atomic_add_fetch(&t->clock, ms, __ATOMIC_SEQ_CST);
}

#define te_sh vk_test_sh_status

static inline int te_write(const struct te *t, const char *rel, const char *text)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/%s", t->work, rel);
    FILE *f = fopen(path, "w");
    if (!f)
        return -1;
    fputs(text, f);
    return fclose(f);
}

static inline int te_rev(const struct te *t, const char *rev, char out[41])
{
    char cmd[600];
    snprintf(cmd, sizeof(cmd), "git -C %s rev-parse %s", t->work, rev);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    char line[128] = "";
    if (!fgets(line, sizeof(line), p))
        line[0] = '\0';
    pclose(p);
    line[strcspn(line, "\n")] = '\0';
    if (strlen(line) != 40)
        return -1;
    memcpy(out, line, 41);
    return 0;
}

#define TE_GIT                                                                                     \
    "GIT_AUTHOR_NAME=t GIT_AUTHOR_EMAIL=t@example.com GIT_COMMITTER_NAME=t "                       \
    "GIT_COMMITTER_EMAIL=t@example.com git -C %s "

#define WF_HEAD "version \"0.1\"\n"
#define WF_CHAIN "chain {\n    machine \"default\"\n    fragment { run \"echo hi\" }\n}\n"

/*
 * A: main's root commit with main.kdl (push to main), pr.kdl (pull requests into main),
 *    release.kdl (tags v*), docs.kdl (push to main touching docs/), nightly.kdl
 *    (schedule + manual with inputs);
 * B: feature/fast, from A, changes src/b.c;
 * C: main, from A, adds broken.kdl (does not parse) and changes src/a.c.
 */
static inline int te_make_repo(struct te *t)
{
    snprintf(t->work, sizeof(t->work), "%s/work", t->tmp);
    snprintf(t->bare, sizeof(t->bare), "%s/repo.git", t->tmp);
    snprintf(t->repo_url, sizeof(t->repo_url), "file://%s", t->bare);
    if (te_sh("git init -q -b main %s && mkdir -p %s/.vulcan %s/src %s/docs", t->work, t->work,
              t->work, t->work))
        return -1;
    int rc = 0;
    rc |=
        te_write(t, ".vulcan/main.kdl",
                 WF_HEAD "name \"main\"\ntriggers {\n    push { branches \"main\" }\n}\n" WF_CHAIN);
    rc |= te_write(t, ".vulcan/pr.kdl",
                   WF_HEAD
                   "name \"pr\"\ntriggers {\n    pull_request { branches \"main\" }\n}\n" WF_CHAIN);
    rc |=
        te_write(t, ".vulcan/release.kdl",
                 WF_HEAD "name \"release\"\ntriggers {\n    tag { patterns \"v*\" }\n}\n" WF_CHAIN);
    rc |= te_write(t, ".vulcan/docs.kdl",
                   WF_HEAD "name \"docs\"\ntriggers {\n    push { branches \"main\"; paths "
                           "\"docs/**\" }\n}\n" WF_CHAIN);
    rc |= te_write(t, ".vulcan/nightly.kdl",
                   WF_HEAD "name \"nightly\"\n"
                           "triggers {\n"
                           "    schedule cron=\"0 2 * * *\" timezone=\"Europe/Amsterdam\"\n"
                           "    manual {\n"
                           "        input \"environment\" { choice \"staging\" \"production\"; "
                           "default \"staging\" }\n"
                           "        input \"version\" { required #true; description \"what\" }\n"
                           "    }\n"
                           "}\n"
                           "chain {\n    machine \"default\"\n"
                           "    fragment { run \"echo deploy\"; condition \"$environment == "
                           "'production'\" }\n}\n");
    rc |= te_write(t, "src/a.c", "int a;\n");
    rc |= te_write(t, "docs/guide.md", "guide\n");
    if (rc)
        return -1;
    if (te_sh(TE_GIT "add -A && " TE_GIT "commit -q -m A", t->work, t->work))
        return -1;
    if (te_rev(t, "HEAD", t->a))
        return -1;
    if (te_sh(TE_GIT "checkout -q -b feature/fast", t->work))
        return -1;
    if (te_write(t, "src/b.c", "int b;\n") ||
        te_sh(TE_GIT "add -A && " TE_GIT "commit -q -m B", t->work, t->work) ||
        te_rev(t, "HEAD", t->b))
        return -1;
    if (te_sh(TE_GIT "checkout -q main", t->work))
        return -1;
    if (te_write(t, ".vulcan/broken.kdl",
                 WF_HEAD "triggers \"push\"\nchain {\n    fragment { "
                         "run \"x\" }\n") ||
        te_write(t, "src/a.c", "int a = 1;\n") ||
        te_sh(TE_GIT "add -A && " TE_GIT "commit -q -m C", t->work, t->work) ||
        te_rev(t, "HEAD", t->c))
        return -1;
    if (te_sh(TE_GIT "tag v1.2.0", t->work))
        return -1;
    return te_sh("git clone -q --bare %s %s", t->work, t->bare);
}

/* A URL for a fresh database of the backend chosen by VK_TEST_STORE_BACKEND. */
static inline int te_db_url(struct te *t, const char *tag)
{
    const char *b = getenv("VK_TEST_STORE_BACKEND");
    if (!b || strcmp(b, "postgres") != 0) {
        snprintf(t->dburl, sizeof(t->dburl), "sqlite:%s/%s.db", t->tmp, tag);
        return 0;
    }
    const char *base = getenv("VK_TEST_PG_URL");
    if (!base || !*base) {
        fprintf(stderr, "VK_TEST_PG_URL is not set: run through scripts/pg-test.sh\n");
        return -1;
    }
    char name[64], sql[128];
    snprintf(name, sizeof(name), "vk_trig_%s_%d", tag, (int)getpid());
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", name);
    PGconn *db = PQconnectdb(base);
    PGresult *r = PQstatus(db) == CONNECTION_OK ? PQexec(db, sql) : NULL;
    bool ok = r && PQresultStatus(r) == PGRES_COMMAND_OK;
    if (!ok)
        fprintf(stderr, "create database: %s\n", PQerrorMessage(db));
    PQclear(r);
    PQfinish(db);
    if (!ok)
        return -1;
    const char *slash = strrchr(base, '/');
    snprintf(t->dburl, sizeof(t->dburl), "%.*s/%s", (int)(slash - base), base, name);
    return 0;
}

/* Store, orchestrator, trigger service and API (scheduler thread off: the tests drive it). */
static inline int te_server(struct te *t, const char *tag, unsigned threads)
{
    struct vk_err err = {0};
    if (te_db_url(t, tag))
        return -1;
    if (vk_store_open(t->dburl, &t->store, &err) || vk_orch_new(t->store, NULL, &t->orch, &err)) {
        fprintf(stderr, "server: %s\n", err.msg);
        return -1;
    }
    char data[400];
    snprintf(data, sizeof(data), "%s/data", t->tmp);
    struct vk_triggers_opts to = {.store = t->store,
                                  .orch = t->orch,
                                  .data_dir = data,
                                  .now_fn = te_clock,
                                  .now_ctx = t,
                                  .cron_interval_ms = -1};
    if (vk_triggers_service_new(&to, &t->trig, &err)) {
        fprintf(stderr, "triggers: %s\n", err.msg);
        return -1;
    }
    if (getenv("VK_BENCH_AUDIT")) {
        char key[420], ring[430];
        snprintf(key, sizeof(key), "%s/audit.key", t->tmp);
        snprintf(ring, sizeof(ring), "%s.pub", key);
        struct vk_audit_opts au = {.store = t->store};
        if (vk_audit_key_load(key, true, ring, &t->audit_key, &err) ||
            (au.key = t->audit_key, vk_audit_new(&au, &t->audit, &err))) {
            fprintf(stderr, "audit: %s\n", err.msg);
            return -1;
        }
    }
    struct vk_api_opts ao = {.listen = "127.0.0.1:0",
                             .store = t->store,
                             .orch = t->orch,
                             .triggers = t->trig,
                             .audit = t->audit,
                             .http_threads = threads};
    if (vk_api_new(&ao, &t->api, &err) || vk_api_start(t->api, &err) ||
        vk_triggers_service_start(t->trig, &err)) {
        fprintf(stderr, "api: %s\n", err.msg);
        return -1;
    }
    snprintf(t->base_url, sizeof(t->base_url), "http://127.0.0.1:%u", vk_api_port(t->api));
    return 0;
}

static inline void te_stop(struct te *t)
{
    vk_api_stop(t->api);
    vk_triggers_service_free(t->trig);
    vk_api_free(t->api);
    vk_orch_free(t->orch);
    vk_audit_free(t->audit);
    vk_audit_key_free(t->audit_key);
    t->audit = NULL;
    t->audit_key = NULL;
    vk_store_close(t->store);
    t->api = NULL;
    t->trig = NULL;
    t->orch = NULL;
    t->store = NULL;
}

/* Replace every `from` in *s by `to` (the string is reallocated). */
static inline void te_subst(char **s, const char *from, const char *to)
{
    size_t fl = strlen(from), tl = strlen(to);
    size_t n = 0;
    for (const char *p = strstr(*s, from); p; p = strstr(p + fl, from))
        n++;
    if (!n)
        return;
    char *out = malloc(strlen(*s) + n * tl + 1);
    char *o = out;
    const char *p = *s;
    for (const char *q = strstr(p, from); q; q = strstr(p, from)) {
        memcpy(o, p, (size_t)(q - p));
        o += q - p;
        memcpy(o, to, tl);
        o += tl;
        p = q + fl;
    }
    strcpy(o, p);
    free(*s);
    *s = out;
}

static inline char *te_read(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)n + 1);
    size_t got = fread(b, 1, (size_t)n, f);
    b[got] = '\0';
    fclose(f);
    return b;
}

/* A fixture body rewritten for the local repository. Returns owned (free()). */
static inline char *te_fixture_body(const struct te *t, const char *name)
{
    char path[1024];
    snprintf(path, sizeof(path), "%s/tests/fixtures/%s.json", getenv("VK_SOURCE_DIR"), name);
    char *b = te_read(path);
    if (!b)
        return NULL;
    char local[450];
    snprintf(local, sizeof(local), "file://%s/repo", t->tmp); /* "…/repo.git" stays a match */
    static const char *const urls[] = {"https://github.com/octo-org/hello-vulcan",
                                       "https://gitlab.example.com/platform/hello-vulcan",
                                       "https://git.example.org/gitea/webhooks",
                                       "https://bitbucket.org/team/hello-vulcan",
                                       "https://git.example.net/tools/hello-vulcan"};
    for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++)
        te_subst(&b, urls[i], local);
    te_subst(&b, FX_SHA_BASE, t->a);
    te_subst(&b, FX_SHA_HEAD, t->b);
    te_subst(&b, FX_SHA_MAIN, t->c);
    char a12[13], b12[13];
    snprintf(a12, sizeof(a12), "%.12s", t->a);
    snprintf(b12, sizeof(b12), "%.12s", t->b);
    te_subst(&b, "c4f1e2d3b4a5", a12); /* Bitbucket's abbreviated ids */
    te_subst(&b, "0d1a26e67d8f", b12);
    return b;
}

static inline const char *te_sig_header(enum vk_triggers_provider p)
{
    switch (p) {
    case VK_TRIGGERS_GITHUB:
        return "X-Hub-Signature-256";
    case VK_TRIGGERS_GITEA:
        return "X-Gitea-Signature";
    case VK_TRIGGERS_BITBUCKET:
        return "X-Hub-Signature";
    case VK_TRIGGERS_GITLAB:
        return "X-Gitlab-Token";
    default:
        return "X-Vulcan-Signature";
    }
}

/* How to send a fixture. */
struct te_send {
    const char *secret;    /* NULL: TE_SECRET */
    bool no_signature;     /* leave the signature header out */
    const char *delivery;  /* replace the delivery id header's value */
    const char *event;     /* replace the event header's value */
    const char *path;      /* the route (default /hooks/<provider>) */
    const char *signature; /* send this signature instead of computing it */
    const char *body;      /* send this body instead of the fixture's */
    size_t body_len;
    bool expect_continue; /* send "Expect: 100-continue": the body only after the server's go */
};

/*
 * POST fixture `name` ("github/push") with its headers, signed for `prov`. *status gets
 * the HTTP status, *answer (may be NULL) the JSON answer (owned). Returns 0 or -1.
 */
static inline int te_post(const struct te *t, enum vk_triggers_provider prov, const char *name,
                          const struct te_send *o, long *status, json_t **answer)
{
    struct te_send none = {0};
    if (!o)
        o = &none;
    char *body = o->body ? NULL : te_fixture_body(t, name);
    const char *bp = o->body ? o->body : body;
    size_t blen = o->body ? o->body_len : strlen(body);
    char path[1024];
    snprintf(path, sizeof(path), "%s/tests/fixtures/%s.headers", getenv("VK_SOURCE_DIR"), name);
    char *hdrs = te_read(path);
    struct vk_http_client_opts co = {.base_url = t->base_url, .timeout_ms = 60000};
    struct vk_http_client *cl = NULL;
    struct vk_err err = {0};
    int rc = -1;
    if (!hdrs || vk_http_client_new(&co, &cl, &err))
        goto out;
    const char *sig_name = te_sig_header(prov);
    for (char *line = strtok(hdrs, "\n"); line; line = strtok(NULL, "\n")) {
        char *colon = strchr(line, ':');
        if (!colon)
            continue;
        *colon = '\0';
        const char *v = colon + 1;
        while (*v == ' ')
            v++;
        if (strcasecmp(line, sig_name) == 0 || strcasecmp(line, "Content-Type") == 0)
            continue;
        bool is_event =
            strcasecmp(line, "X-GitHub-Event") == 0 || strcasecmp(line, "X-Gitea-Event") == 0 ||
            strcasecmp(line, "X-Gitlab-Event") == 0 || strcasecmp(line, "X-Event-Key") == 0;
        bool is_delivery = strcasecmp(line, "X-GitHub-Delivery") == 0 ||
                           strcasecmp(line, "X-Gitea-Delivery") == 0 ||
                           strcasecmp(line, "X-Gitlab-Event-UUID") == 0 ||
                           strcasecmp(line, "X-Request-UUID") == 0 ||
                           strcasecmp(line, "X-Vulcan-Delivery") == 0;
        if (is_event && o->event)
            v = o->event;
        if (is_delivery && o->delivery)
            v = o->delivery;
        if (vk_http_client_set_header(cl, line, v))
            goto out;
    }
    if (o->expect_continue && vk_http_client_set_header(cl, "Expect", "100-continue"))
        goto out;
    if (!o->no_signature) {
        char sig[2048];
        if (o->signature)
            snprintf(sig, sizeof(sig), "%s", o->signature);
        else if (vk_triggers_hook_sign(prov, bp, blen, o->secret ? o->secret : TE_SECRET, sig,
                                       sizeof(sig)))
            goto out;
        if (vk_http_client_set_header(cl, sig_name, sig))
            goto out;
    }
    char route[256];
    if (o->path)
        snprintf(route, sizeof(route), "%s", o->path);
    else
        snprintf(route, sizeof(route), "/hooks/%s", vk_triggers_provider_name(prov));
    struct vk_http_response resp;
    if (vk_http_client_request(cl, "POST", route, "application/json", bp, blen, 0, &resp, &err)) {
        fprintf(stderr, "post %s: %s\n", name, err.msg);
        goto out;
    }
    *status = resp.status;
    if (answer) {
        json_error_t je;
        *answer = resp.body.len ? json_loadb(resp.body.data, resp.body.len, 0, &je) : NULL;
    }
    vk_http_response_release(&resp);
    rc = 0;
out:
    vk_http_client_free(cl);
    free(hdrs);
    free(body);
    return rc;
}

/* JSON round trip to the API. */
static inline int te_api(const struct te *t, const char *method, const char *path, json_t *body,
                         long *status, json_t **answer)
{
    struct vk_http_client_opts co = {.base_url = t->base_url, .timeout_ms = 60000};
    struct vk_http_client *cl = NULL;
    struct vk_err err = {0};
    if (vk_http_client_new(&co, &cl, &err))
        return -1;
    int rc = vk_http_client_json(cl, method, path, body, 0, status, answer, &err);
    if (rc)
        fprintf(stderr, "%s %s: %s\n", method, path, err.msg);
    vk_http_client_free(cl);
    return rc;
}

/* Register the local repository through the API. */
static inline int te_register(struct te *t)
{
    json_t *b = json_pack("{s:s, s:s, s:s}", "url", t->repo_url, "provider", "github",
                          "webhook_secret", TE_SECRET);
    long st = 0;
    json_t *a = NULL;
    int rc = te_api(t, "POST", "/api/v1/repos", b, &st, &a);
    json_decref(b);
    if (rc || st != 201) {
        json_decref(a);
        return -1;
    }
    snprintf(t->repo_id, sizeof(t->repo_id), "%s", json_string_value(json_object_get(a, "id")));
    json_decref(a);
    return 0;
}

#endif
