/*
 * vulcan audit ls|export|verify (docs/audit.md), `vulcan admin rotate-audit-key`, and the
 * server's audit recorder set-up. ls and export ask a server (GET /api/v1/orgs/{org}/audit,
 * an org admin's); verify needs no server: it reads an export, or the database itself, and
 * the public keys of the keyring file.
 */
#include "cli/cli.h"
#include "vulcan/audit.h"
#include "vulcan/store.h"
#include "vulcan/telemetry.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const char usage_text[] =
    "usage: vulcan audit ls [--org SLUG] [--actor A] [--action A] [--target T]\n"
    "                       [--since TIME] [--until TIME] [--limit N] [--json]\n"
    "       vulcan audit export [--org SLUG] [--since TIME] [--out FILE]\n"
    "       vulcan audit verify [FILE] [--keyring F] [--data-dir D] [--database URL]\n"
    "\n"
    "The audit log (docs/audit.md): who did what, from where, when, and how it ended.\n"
    "Each org's records form a hash chain; the server signs its head every 1000 records,\n"
    "every 10 minutes and when it stops.\n"
    "\n"
    "  ls        the newest records first (an org admin's; --server, --token as usual)\n"
    "    --actor A       user:alice, worker:ID, anonymous, system...\n"
    "    --action A      repo.create, or a prefix ending in '.': auth.\n"
    "    --target T      the request path it acted on\n"
    "    --since/--until TIME   RFC 3339 (2026-01-31T12:00:00Z)\n"
    "    --limit N       at most N records (default 50, at most 1000)\n"
    "  export    every record and checkpoint, oldest first, as JSON lines (to --out or\n"
    "            stdout): what `verify FILE` checks, with only the keyring\n"
    "  verify    recompute each chain and check each checkpoint's signature; names the\n"
    "            first altered or missing record. FILE: an export; without FILE, the\n"
    "            database of --database (default sqlite:D/vulcan.db)\n"
    "    --keyring F     the public keys (default D/audit.key.pub, which the server\n"
    "                    keeps; copy it to check an export elsewhere)\n"
    "    --data-dir D    the server's data directory (default ./vulcan-data)\n"
    "\n"
    "Exit status: 0 success (verify: intact), 1 failure (verify: tampering found),\n"
    "2 bad usage.\n";

/* ---------------------------------------------------------------- The server's recorder */

void vk__cli_audit_paths(const char *data_dir, const char *key_file, char *key, size_t kcap,
                         char *ring, size_t rcap)
{
    if (key_file && *key_file)
        snprintf(key, kcap, "%s", key_file);
    else
        snprintf(key, kcap, "%s/audit.key", data_dir);
    snprintf(ring, rcap, "%s.pub", key);
}

int vk__cli_audit_open(struct vk_store *store, const char *data_dir, const char *key_file,
                       long long every, const char *copy_file, const char *copy_syslog,
                       struct vk_audit_key **key, struct vk_audit **audit)
{
    char kp[4096], rp[4200];
    vk__cli_audit_paths(data_dir, key_file, kp, sizeof(kp), rp, sizeof(rp));
    if (!key_file || !*key_file)
        (void)mkdir(data_dir, 0700);
    struct vk_err err;
    vk_err_clear(&err);
    struct stat st;
    bool made = stat(kp, &st) != 0;
    if (vk_audit_key_load(kp, true, rp, key, &err) < 0) {
        fprintf(stderr, "vulcan server: the audit key: %s\n", err.msg);
        return 2;
    }
    if (made)
        vk_log_write(VK_LOG_INFO, "server", "made a new audit signing key (keep a backup)", "path",
                     kp, "keyring", rp, "key_id", vk_audit_key_id(*key), NULL);
    struct vk_audit_opts o = {.store = store,
                              .key = *key,
                              .checkpoint_every = every,
                              .copy_file = copy_file,
                              .copy_syslog = copy_syslog};
    if (vk_audit_new(&o, audit, &err) < 0) {
        fprintf(stderr, "vulcan server: the audit log: %s\n", err.msg);
        vk_audit_key_free(*key);
        *key = NULL;
        return 2;
    }
    return 0;
}

/* ---------------------------------------------------------------- ls and export */

static bool org_ok(const char *cmd, const char *org)
{
    if (strlen(org) > 64 || strspn(org, "abcdefghijklmnopqrstuvwxyz0123456789-") != strlen(org)) {
        fprintf(stderr, "vulcan %s: --org needs an org slug ([a-z0-9-])\n", cmd);
        return false;
    }
    return true;
}

/* Append "&name=value" (percent-encoded) to `q`. */
static int add_query(struct vk_buf *q, const char *name, const char *value)
{
    if (!value)
        return 0;
    int rc = vk_buf_addf(q, "%s%s=", q->len ? "&" : "", name);
    for (const unsigned char *p = (const unsigned char *)value; rc == 0 && *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr("-._~:", *p))
            rc = vk_buf_add(q, p, 1);
        else
            rc = vk_buf_addf(q, "%%%02X", *p);
    }
    return rc;
}

static int get(const char *cmd, struct vk_http_client *cl, const char *org, struct vk_buf *q,
               json_t **answer)
{
    char path[8192];
    int n = snprintf(path, sizeof(path), "/api/v1/orgs/%s/audit?%s", org, q->data ? q->data : "");
    if (n < 0 || (size_t)n >= sizeof(path)) {
        fprintf(stderr, "vulcan %s: the filters are too long\n", cmd);
        return 2;
    }
    long status = 0;
    return vk__cli_call(cmd, cl, "GET", path, NULL, &status, answer);
}

static void print_row(json_t *r)
{
    const char *t = json_string_value(json_object_get(r, "time"));
    const char *target = json_string_value(json_object_get(r, "target"));
    const char *src = json_string_value(json_object_get(r, "source"));
    printf("%-6lld %-24s %-28s %-22s %-15s %-16s %s\n",
           (long long)json_integer_value(json_object_get(r, "seq")), t ? t : "-",
           json_string_value(json_object_get(r, "actor")),
           json_string_value(json_object_get(r, "action")),
           json_string_value(json_object_get(r, "outcome")), src ? src : "-",
           target ? target : "-");
}

static int cmd_ls(const char *server, int argc, char **argv)
{
    const char *org = "default", *actor = NULL, *action = NULL, *target = NULL, *since = NULL,
               *until = NULL;
    long long limit = 50;
    bool json = false;
    struct vk__cli_opt opts[] = {
        {"server", 0, VK_CLI_STR, &server, "VULCAN_SERVER", false, 0, 0},
        {"org", 0, VK_CLI_STR, &org, NULL, false, 0, 0},
        {"actor", 0, VK_CLI_STR, &actor, NULL, false, 0, 0},
        {"action", 0, VK_CLI_STR, &action, NULL, false, 0, 0},
        {"target", 0, VK_CLI_STR, &target, NULL, false, 0, 0},
        {"since", 0, VK_CLI_STR, &since, NULL, false, 0, 0},
        {"until", 0, VK_CLI_STR, &until, NULL, false, 0, 0},
        {"limit", 0, VK_CLI_INT, &limit, NULL, false, 1, VK_STORE_AUDIT_MAX_LIST},
        {"json", 0, VK_CLI_FLAG, &json, NULL, false, 0, 0},
    };
    if (vk__cli_wants_help(argc, argv)) {
        fputs(usage_text, stdout);
        return 0;
    }
    const char *pos[1];
    int npos = 0;
    int rc = vk__cli_opts_parse("audit ls", argc, argv, opts, VK_ARRAY_LEN(opts), pos, &npos, 0);
    if (rc)
        return rc;
    if (!org_ok("audit ls", org))
        return 2;
    struct vk_buf q = VK_BUF_INIT(16 * 1024);
    char lim[24];
    snprintf(lim, sizeof(lim), "%lld", limit);
    if (add_query(&q, "actor", actor) || add_query(&q, "action", action) ||
        add_query(&q, "target", target) || add_query(&q, "since", since) ||
        add_query(&q, "until", until) || add_query(&q, "limit", lim)) {
        vk_buf_release(&q);
        fputs("vulcan audit ls: a filter is too long\n", stderr);
        return 2;
    }
    struct vk_http_client *cl = NULL;
    if (vk__cli_client("audit ls", server, &cl)) {
        vk_buf_release(&q);
        return 1;
    }
    json_t *a = NULL;
    rc = get("audit ls", cl, org, &q, &a);
    if (rc == 0 && json) {
        rc = vk__cli_print_json("audit ls", a);
    } else if (rc == 0) {
        printf("%-6s %-24s %-28s %-22s %-15s %-16s %s\n", "SEQ", "TIME", "ACTOR", "ACTION",
               "OUTCOME", "SOURCE", "TARGET");
        json_t *r;
        size_t i;
        json_array_foreach(json_object_get(a, "records"), i, r)
        {
            print_row(r);
        }
    }
    json_decref(a);
    vk_http_client_free(cl);
    vk_buf_release(&q);
    return rc;
}

static int write_line(FILE *out, json_t *o)
{
    return json_dumpf(o, out, JSON_COMPACT) == 0 && fputc('\n', out) != EOF ? 0 : -1;
}

static int cmd_export(const char *server, int argc, char **argv)
{
    const char *org = "default", *since = NULL, *out_path = NULL;
    struct vk__cli_opt opts[] = {
        {"server", 0, VK_CLI_STR, &server, "VULCAN_SERVER", false, 0, 0},
        {"org", 0, VK_CLI_STR, &org, NULL, false, 0, 0},
        {"since", 0, VK_CLI_STR, &since, NULL, false, 0, 0},
        {"out", 0, VK_CLI_STR, &out_path, NULL, false, 0, 0},
    };
    if (vk__cli_wants_help(argc, argv)) {
        fputs(usage_text, stdout);
        return 0;
    }
    const char *pos[1];
    int npos = 0;
    int rc =
        vk__cli_opts_parse("audit export", argc, argv, opts, VK_ARRAY_LEN(opts), pos, &npos, 0);
    if (rc)
        return rc;
    if (!org_ok("audit export", org))
        return 2;
    struct vk_http_client *cl = NULL;
    if (vk__cli_client("audit export", server, &cl))
        return 1;
    FILE *out = out_path ? fopen(out_path, "we") : stdout;
    if (!out) {
        fprintf(stderr, "vulcan audit export: cannot write '%s': %s\n", out_path, strerror(errno));
        vk_http_client_free(cl);
        return 1;
    }
    long long after = 0, records = 0, checkpoints = 0;
    for (;;) {
        struct vk_buf q = VK_BUF_INIT(16 * 1024);
        char a[24];
        snprintf(a, sizeof(a), "%lld", after);
        json_t *ans = NULL;
        rc = add_query(&q, "order", "asc") || add_query(&q, "checkpoints", "1") ||
                     add_query(&q, "limit", "1000") || add_query(&q, "after", a) ||
                     add_query(&q, "since", since)
                 ? 2
                 : get("audit export", cl, org, &q, &ans);
        vk_buf_release(&q);
        json_t *recs = json_object_get(ans, "records"), *cps = json_object_get(ans, "checkpoints");
        size_t ic = 0;
        for (size_t i = 0; rc == 0 && i < json_array_size(recs); i++) {
            json_t *r = json_array_get(recs, i);
            json_int_t seq = json_integer_value(json_object_get(r, "seq"));
            rc = write_line(out, r);
            records++;
            /* the checkpoints of this record follow it */
            for (; rc == 0 && ic < json_array_size(cps) &&
                   json_integer_value(json_object_get(json_array_get(cps, ic), "seq")) <= seq;
                 ic++, checkpoints++)
                rc = write_line(out, json_array_get(cps, ic));
        }
        json_t *next = json_object_get(ans, "next_after");
        bool more = rc == 0 && json_is_integer(next);
        if (more)
            after = json_integer_value(next);
        json_decref(ans);
        if (!more)
            break;
    }
    if (rc < 0)
        fprintf(stderr, "vulcan audit export: cannot write: %s\n", strerror(errno));
    if (out != stdout && fclose(out) != 0 && rc == 0) {
        fprintf(stderr, "vulcan audit export: cannot write '%s'\n", out_path);
        rc = 1;
    }
    vk_http_client_free(cl);
    if (rc == 0)
        fprintf(stderr, "vulcan audit export: %lld records, %lld checkpoints\n", records,
                checkpoints);
    return rc == 0 ? 0 : 1;
}

/* ---------------------------------------------------------------- verify */

static int cmd_verify(int argc, char **argv)
{
    const char *data_dir = "./vulcan-data", *database = NULL, *keyring = NULL;
    struct vk__cli_opt opts[] = {
        {"data-dir", 0, VK_CLI_STR, &data_dir, "VULCAN_DATA_DIR", false, 0, 0},
        {"database", 0, VK_CLI_STR, &database, "VULCAN_DATABASE", false, 0, 0},
        {"keyring", 0, VK_CLI_STR, &keyring, NULL, false, 0, 0},
    };
    if (vk__cli_wants_help(argc, argv)) {
        fputs(usage_text, stdout);
        return 0;
    }
    const char *pos[1];
    int npos = 0;
    int rc =
        vk__cli_opts_parse("audit verify", argc, argv, opts, VK_ARRAY_LEN(opts), pos, &npos, 1);
    if (rc)
        return rc;
    char kp[4096], rp[4200], db[4200];
    vk__cli_audit_paths(data_dir, NULL, kp, sizeof(kp), rp, sizeof(rp));
    if (!keyring)
        keyring = rp;
    struct vk_err err;
    vk_err_clear(&err);
    struct vk_audit_keyring *ring = NULL;
    if (vk_audit_keyring_load(keyring, &ring, &err) < 0) {
        fprintf(stderr, "vulcan audit verify: %s (give --keyring)\n", err.msg);
        return 2;
    }
    struct vk_audit_report rep;
    memset(&rep, 0, sizeof(rep));
    const char *what = NULL;
    if (npos == 1) {
        FILE *f = strcmp(pos[0], "-") == 0 ? stdin : fopen(pos[0], "re");
        if (!f) {
            fprintf(stderr, "vulcan audit verify: cannot read '%s': %s\n", pos[0], strerror(errno));
            vk_audit_keyring_free(ring);
            return 2;
        }
        rc = vk_audit_verify_jsonl(f, ring, &rep, &err);
        if (f != stdin)
            fclose(f);
        what = pos[0];
    } else {
        if (!database) {
            snprintf(db, sizeof(db), "sqlite:%s/vulcan.db", data_dir);
            database = db;
        }
        struct vk_store *store = NULL;
        rc = vk_store_open(database, &store, &err);
        if (rc == 0)
            rc = vk_audit_verify_store(store, ring, &rep, &err);
        vk_store_close(store);
        what = "the database";
    }
    vk_audit_keyring_free(ring);
    if (rc < 0) {
        fprintf(stderr, "vulcan audit verify: %s\n", err.msg);
        return 2;
    }
    for (size_t i = 0; i < rep.nproblems && i < VK_AUDIT_MAX_PROBLEMS; i++)
        printf("TAMPERED: %s\n", rep.problems[i]);
    if (rep.nproblems > VK_AUDIT_MAX_PROBLEMS)
        printf("… and %zu more problems\n", rep.nproblems - VK_AUDIT_MAX_PROBLEMS);
    printf("%s: %zu records of %zu orgs, %zu checkpoints: %s", what, rep.records, rep.orgs,
           rep.checkpoints, rep.nproblems ? "NOT INTACT" : "intact");
    if (rep.unsigned_tail)
        printf(" (the last %lld records are not signed yet)", (long long)rep.unsigned_tail);
    putchar('\n');
    return rep.nproblems ? 1 : 0;
}

int vk__cli_audit(int argc, char **argv)
{
    if (argc < 2 || (vk__cli_wants_help(argc, argv) && strncmp(argv[1], "-", 1) == 0)) {
        fputs(usage_text, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *server = vk__cli_default_server();
    const char *sub = argv[1];
    if (strcmp(sub, "ls") == 0 || strcmp(sub, "list") == 0)
        return cmd_ls(server, argc - 1, argv + 1);
    if (strcmp(sub, "export") == 0)
        return cmd_export(server, argc - 1, argv + 1);
    if (strcmp(sub, "verify") == 0)
        return cmd_verify(argc - 1, argv + 1);
    fprintf(stderr, "vulcan audit: '%.100s' is not a subcommand (ls, export, verify)\n", sub);
    return 2;
}

/* ---------------------------------------------------------------- rotate-audit-key */

int vk__cli_rotate_audit_key(int argc, char **argv)
{
    const char *data_dir = "./vulcan-data", *key_file = NULL;
    struct vk__cli_opt opts[] = {
        {"data-dir", 0, VK_CLI_STR, &data_dir, "VULCAN_DATA_DIR", false, 0, 0},
        {"audit-key-file", 0, VK_CLI_STR, &key_file, "VULCAN_AUDIT_KEY_FILE", false, 0, 0},
    };
    if (vk__cli_wants_help(argc, argv)) {
        puts("usage: vulcan admin rotate-audit-key [--data-dir DIR] [--audit-key-file F]\n\n"
             "Make a new audit signing key in F (default DIR/audit.key); its public key is\n"
             "added to F.pub, which keeps the old ones, so checkpoints signed before still\n"
             "verify. Restart the servers afterwards.");
        return 0;
    }
    const char *pos[1];
    int npos = 0;
    int rc = vk__cli_opts_parse("admin rotate-audit-key", argc, argv, opts, VK_ARRAY_LEN(opts), pos,
                                &npos, 0);
    if (rc)
        return rc;
    char kp[4096], rp[4200], id[VK_AUDIT_KEY_ID_LEN];
    vk__cli_audit_paths(data_dir, key_file, kp, sizeof(kp), rp, sizeof(rp));
    struct vk_err err;
    vk_err_clear(&err);
    if (vk_audit_key_rotate(kp, rp, id, &err) < 0) {
        fprintf(stderr, "vulcan admin rotate-audit-key: %s\n", err.msg);
        return 1;
    }
    printf("new audit key %s in %s; %s keeps every public key. Restart the servers.\n", id, kp, rp);
    return 0;
}
