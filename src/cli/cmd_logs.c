/*
 * vulcan logs CHAIN|FRAGMENT [NAME] [-f]: the output of one fragment (raw bytes, as
 * stored) or of every fragment of a chain (each under a header with its verdict). An id
 * may be given in full or as a unique start or end of it (at least 4 hex digits); NAME
 * picks a fragment of the chain by name. With -f a fragment's log is followed over the
 * server's Server-Sent Events stream until the fragment ends (reconnecting where it
 * stopped if the connection drops), and a chain is followed until it ends.
 *
 * Exit status: a chain's result (0 completed, 1 failed or cancelled, 3 still pending or
 * running; with -f it is waited for); a fragment: 0 when its log was printed (with -f: 0
 * when it completed); 1 nothing matched or the server failed; 2 bad usage or an
 * ambiguous id or name.
 */
#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char usage_text[] =
    "usage: vulcan logs CHAIN|FRAGMENT [-f] [--attempt N] [--server URL]\n"
    "       vulcan logs CHAIN NAME [-f] [--attempt N] [--server URL]\n"
    "\n"
    "Print the output of a fragment (its latest attempt, or --attempt N), or of every\n"
    "fragment of a chain, each under a header with its short id and verdict:\n"
    "  \u2500\u2500 unit (gcc) [9c1e4f27] failed: exit 1\n"
    "NAME picks the fragment of that name in CHAIN: vulcan logs 4f27 \"unit (gcc)\".\n"
    "\n"
    "CHAIN and FRAGMENT are ids in full or any unique start or end of one, at least 4\n"
    "hex digits (ids begin with their creation time, so the short form shown by\n"
    "'vulcan chains show' is the last 8 digits). They are looked for among the 1000\n"
    "most recent chains and the fragments of the 50 most recent; an id matching several\n"
    "lists them.\n"
    "\n"
    "Exit status for a chain: 0 completed, 1 failed or cancelled, 3 still pending or\n"
    "running; for a fragment 0 when printed; 1 no match or a server error; 2 bad usage\n"
    "or an ambiguous id or name.\n"
    "\n"
    "  -f, --follow    keep printing new output until the fragment (chain) ends;\n"
    "                  the exit status is then 0 only if it completed\n"
    "  --attempt N     a fragment's attempt N\n"
    "  --server URL    default $VULCAN_SERVER, else http://127.0.0.1:8080\n";

static const char *jstr(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* ---------------------------------------------------------------- SSE client */

struct sse {
    struct vk_buf in; /* bytes not yet parsed into events */
    long long attempt, offset;
    char status[16];
    bool ended;
    bool bad; /* a malformed event: stop */
};

static void on_event(struct sse *s, const char *event, const char *data, size_t len)
{
    json_error_t je;
    json_t *d = json_loadb(data, len, JSON_ALLOW_NUL, &je);
    if (!d) {
        s->bad = true;
        return;
    }
    if (strcmp(event, "log") == 0) {
        json_t *t = json_object_get(d, "text");
        json_t *next = json_object_get(d, "next");
        if (json_is_string(t))
            fwrite(json_string_value(t), 1, json_string_length(t), stdout);
        if (json_is_integer(next))
            s->offset = json_integer_value(next);
        s->attempt = json_integer_value(json_object_get(d, "attempt"));
    } else if (strcmp(event, "attempt") == 0) {
        s->attempt = json_integer_value(json_object_get(d, "attempt"));
        s->offset = 0;
        fflush(stdout);
        fprintf(stderr, "-- attempt %lld --\n", s->attempt);
    } else if (strcmp(event, "status") == 0 || strcmp(event, "end") == 0) {
        const char *st = jstr(d, "status");
        snprintf(s->status, sizeof(s->status), "%s", st ? st : "");
        if (json_is_integer(json_object_get(d, "attempt")))
            s->attempt = json_integer_value(json_object_get(d, "attempt"));
        if (strcmp(event, "end") == 0)
            s->ended = true;
    }
    json_decref(d);
}

/* Parse complete events ("...\n\n") out of s->in. One data line per event (the server's form). */
static void parse_events(struct sse *s)
{
    size_t start = 0;
    for (;;) {
        char *p = s->in.data + start;
        char *end = memmem(p, s->in.len - start, "\n\n", 2);
        if (!end)
            break;
        const char *event = "message", *data = NULL;
        size_t dlen = 0;
        char name[32] = "message";
        for (char *line = p; line < end;) {
            char *nl = memchr(line, '\n', (size_t)(end - line));
            char *le = nl ? nl : end;
            if ((size_t)(le - line) >= 7 && strncmp(line, "event: ", 7) == 0) {
                snprintf(name, sizeof(name), "%.*s", (int)(le - line - 7), line + 7);
                event = name;
            } else if ((size_t)(le - line) >= 6 && strncmp(line, "data: ", 6) == 0) {
                data = line + 6;
                dlen = (size_t)(le - line - 6);
            }
            line = le + 1;
        }
        if (data)
            on_event(s, event, data, dlen);
        start = (size_t)(end - s->in.data) + 2;
        if (s->ended || s->bad)
            break;
    }
    if (start) {
        memmove(s->in.data, s->in.data + start, s->in.len - start);
        s->in.len -= start;
        s->in.data[s->in.len] = '\0';
    }
}

static int on_chunk(void *ctx, const char *data, size_t len)
{
    struct sse *s = ctx;
    if (vk_buf_add(&s->in, data, len) < 0)
        return VK_ETOOBIG;
    parse_events(s);
    if (s->bad)
        return VK_EPARSE;
    return s->ended ? VK_ECONFLICT : 0; /* stop the transfer once the end event is in */
}

static int follow_fragment(struct vk_http_client *cl, const char *id, long long attempt)
{
    struct sse s = {.attempt = attempt, .offset = 0};
    vk_buf_init(&s.in, 16u * 1024u * 1024u);
    int tries = 0, rc = 1;
    while (!s.ended && tries < 30) {
        char path[256];
        if (s.attempt)
            snprintf(path, sizeof(path),
                     "/api/v1/fragments/%.64s/log?follow=1&attempt=%lld&offset=%lld", id, s.attempt,
                     s.offset);
        else
            snprintf(path, sizeof(path), "/api/v1/fragments/%.64s/log?follow=1", id);
        vk_buf_reset(&s.in);
        long http = 0;
        struct vk_err err;
        vk_err_clear(&err);
        int r = vk_http_client_stream(cl, path, 0, on_chunk, &s, &http, &err);
        fflush(stdout);
        if (s.ended)
            break;
        if (http >= 400 && http != 503) {
            fprintf(stderr, "vulcan logs: the server answered %ld: %.*s\n", http,
                    (int)(s.in.len > 300 ? 300 : s.in.len), s.in.data);
            goto out;
        }
        if (s.bad) {
            fputs("vulcan logs: the server sent a malformed event\n", stderr);
            goto out;
        }
        /* The connection dropped (server restart?): resume where we are. */
        if (++tries == 1 || r < 0)
            fprintf(stderr, "vulcan logs: stream interrupted (%s); resuming\n",
                    r < 0 ? err.msg : "closed");
        struct timespec ts = {1, 0};
        nanosleep(&ts, NULL);
    }
    if (!s.ended) {
        fputs("vulcan logs: gave up following\n", stderr);
        goto out;
    }
    rc = strcmp(s.status, "completed") == 0 ? 0 : 1;
out:
    vk_buf_release(&s.in);
    return rc;
}

/* ---------------------------------------------------------------- ids, prefixes, names */

/* Chains searched for an id prefix, and the most recent of them whose fragments are. */
enum { SCAN_CHAINS = 1000, SCAN_FRAGMENT_CHAINS = 50, SHOW_CANDIDATES = 10 };

/* `arg` without dashes, lower case, into `out`; false unless 4 to 32 hex digits. */
static bool hex_arg(const char *arg, char out[33])
{
    size_t n = 0;
    for (const char *p = arg; *p; p++) {
        if (*p == '-')
            continue;
        if (vk_hex_value(*p) < 0 || n == 32)
            return false;
        out[n++] = (char)(*p >= 'A' && *p <= 'F' ? *p - 'A' + 'a' : *p);
    }
    out[n] = '\0';
    return n >= 4;
}

/*
 * Does `id` (a UUID) start or end with the hex digits `hex`? Ids are UUIDv7: their first
 * 12 digits are the creation time, shared by a chain and its fragments, so the short form
 * people see (vulcan chains show) is the last 8 digits; both ends are accepted.
 */
static bool id_matches(const char *id, const char *hex)
{
    char flat[33];
    if (!hex_arg(id, flat))
        return false;
    size_t n = strlen(hex), m = strlen(flat);
    return n <= m && (strncmp(flat, hex, n) == 0 || strcmp(flat + m - n, hex) == 0);
}

struct candidate {
    bool chain;
    char id[VK_UUID_LEN];
    char name[160];
};

struct candidates {
    struct candidate c[SHOW_CANDIDATES];
    size_t n; /* all matches; the first SHOW_CANDIDATES are kept */
};

static void add_candidate(struct candidates *cs, bool chain, const char *id, const char *name)
{
    for (size_t i = 0; i < cs->n && i < SHOW_CANDIDATES; i++) {
        if (strcmp(cs->c[i].id, id) == 0)
            return;
    }
    if (cs->n < SHOW_CANDIDATES) {
        struct candidate *c = &cs->c[cs->n];
        c->chain = chain;
        snprintf(c->id, sizeof(c->id), "%s", id);
        snprintf(c->name, sizeof(c->name), "%s", name ? name : "-");
    }
    cs->n++;
}

/* Inline fragments of `list` (a tree) matching `hex`, or named `name` when hex is NULL. */
static void match_fragments(struct candidates *cs, json_t *list, const char *hex, const char *name)
{
    size_t i;
    json_t *f;
    json_array_foreach(list, i, f)
    {
        json_t *kids = json_object_get(f, "children");
        if (json_is_array(kids)) {
            match_fragments(cs, kids, hex, name);
            continue;
        }
        const char *id = jstr(f, "id"), *n = jstr(f, "name");
        if (id && ((hex && id_matches(id, hex)) || (!hex && n && strcmp(n, name) == 0)))
            add_candidate(cs, false, id, n ? n : jstr(f, "run_script"));
    }
}

/* Every inline fragment's name, comma-separated, into `b`. */
static void fragment_names(struct vk_buf *b, json_t *list)
{
    size_t i;
    json_t *f;
    json_array_foreach(list, i, f)
    {
        json_t *kids = json_object_get(f, "children");
        if (json_is_array(kids)) {
            fragment_names(b, kids);
        } else if (jstr(f, "name")) {
            if (vk_buf_addf(b, "%s\"%s\"", b->len ? ", " : "", jstr(f, "name")) < 0)
                return;
        }
    }
}

static void print_candidates(const char *cmd, const char *arg, const struct candidates *cs)
{
    fprintf(stderr, "vulcan %s: '%s' is ambiguous; it matches %zu:\n", cmd, arg, cs->n);
    for (size_t i = 0; i < cs->n && i < SHOW_CANDIDATES; i++)
        fprintf(stderr, "  %-8s  %s  %s\n", cs->c[i].chain ? "chain" : "fragment", cs->c[i].id,
                cs->c[i].name);
    if (cs->n > SHOW_CANDIDATES)
        fprintf(stderr, "  ... and %zu more; give more digits\n", cs->n - SHOW_CANDIDATES);
}

/*
 * The chains (and, unless `chains_only`, fragments) whose id starts or ends with `hex`,
 * among the SCAN_CHAINS most recent chains and the fragments of the SCAN_FRAGMENT_CHAINS
 * most recent. Returns 0, or 1 after printing the error.
 */
static int find_ids(struct vk_http_client *cl, const char *cmd, const char *hex, bool chains_only,
                    struct candidates *cs)
{
    char cursor[128] = "";
    size_t seen = 0;
    while (seen < SCAN_CHAINS) {
        char path[256];
        snprintf(path, sizeof(path), "/api/v1/chains?limit=200%s%s", cursor[0] ? "&cursor=" : "",
                 cursor);
        long http = 0;
        json_t *ans = NULL;
        if (vk__cli_call(cmd, cl, "GET", path, NULL, &http, &ans)) {
            json_decref(ans);
            return 1;
        }
        size_t i;
        json_t *c;
        json_array_foreach(json_object_get(ans, "chains"), i, c)
        {
            const char *id = jstr(c, "id");
            if (!id)
                continue;
            if (id_matches(id, hex))
                add_candidate(cs, true, id, jstr(c, "source_file"));
            if (!chains_only && seen < SCAN_FRAGMENT_CHAINS) {
                char cp[128];
                snprintf(cp, sizeof(cp), "/api/v1/chains/%.40s", id);
                json_t *chain = NULL;
                long h = 0;
                struct vk_err err;
                vk_err_clear(&err);
                if (vk_http_client_json(cl, "GET", cp, NULL, 30000, &h, &chain, &err) == 0 &&
                    h == 200)
                    match_fragments(cs, json_object_get(chain, "fragments"), hex, NULL);
                json_decref(chain);
            }
            seen++;
        }
        const char *nc = jstr(ans, "next_cursor");
        size_t o = 0;
        for (const unsigned char *q = (const unsigned char *)(nc ? nc : "");
             *q && o + 4 < sizeof(cursor); q++) {
            if ((*q >= 'A' && *q <= 'Z') || (*q >= 'a' && *q <= 'z') || (*q >= '0' && *q <= '9') ||
                strchr("-._~", *q))
                cursor[o++] = (char)*q;
            else
                o += (size_t)snprintf(cursor + o, sizeof(cursor) - o, "%%%02X", *q);
        }
        cursor[o] = '\0';
        json_decref(ans);
        if (!cursor[0])
            break;
    }
    return 0;
}

/* ---------------------------------------------------------------- whole logs */

static int print_fragment(struct vk_http_client *cl, const char *id, long long attempt,
                          const char *prefix, long *status)
{
    char path[256];
    if (attempt)
        snprintf(path, sizeof(path), "/api/v1/fragments/%.64s/log?attempt=%lld", id, attempt);
    else
        snprintf(path, sizeof(path), "/api/v1/fragments/%.64s/log", id);
    struct vk_http_response resp;
    memset(&resp, 0, sizeof(resp));
    struct vk_err err;
    vk_err_clear(&err);
    if (vk_http_client_request(cl, "GET", path, NULL, NULL, 0, 0, &resp, &err) < 0) {
        fprintf(stderr, "vulcan logs: %s\n", err.msg);
        return 1;
    }
    *status = resp.status;
    int rc = 0;
    if (resp.status != 200) {
        rc = 1;
    } else if (!prefix || !*prefix) {
        /* "": a whole chain's logs, each ending with a newline before the next header. */
        fwrite(resp.body.data, 1, resp.body.len, stdout);
        if (prefix && resp.body.len && resp.body.data[resp.body.len - 1] != '\n')
            putchar('\n');
    } else {
        const char *p = resp.body.data, *end = p + resp.body.len;
        while (p < end) {
            const char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
            printf("[%s] %.*s\n", prefix, (int)n, p);
            p += n + 1;
        }
    }
    vk_http_response_release(&resp);
    return rc;
}

/* "succeeded", "failed: exit 1", "skipped: `unit (gcc)` failed"... of fragment `f`. */
static void verdict(json_t *f, char *buf, size_t cap)
{
    const char *st = jstr(f, "status"), *error = jstr(f, "error");
    json_t *code = json_object_get(f, "exit_code");
    if (!st)
        st = "?";
    if (error && strncmp(error, "exit status ", 12) == 0)
        error = NULL; /* the worker's words for the exit code shown anyway */
    if (strcmp(st, "completed") == 0)
        snprintf(buf, cap, "succeeded");
    else if (strcmp(st, "failed") == 0 && json_is_integer(code))
        snprintf(buf, cap, "failed: exit %lld%s%s%s", (long long)json_integer_value(code),
                 error ? " (" : "", error ? error : "", error ? ")" : "");
    else if (jstr(f, "waiting_reason"))
        snprintf(buf, cap, "%s: %s", st, jstr(f, "waiting_reason"));
    else
        snprintf(buf, cap, "%s%s%s", st, error ? ": " : "", error ? error : "");
}

/* Each inline fragment of the tree: a header with its verdict, then its log as stored. */
static int print_tree(struct vk_http_client *cl, json_t *list)
{
    size_t i;
    json_t *f;
    json_array_foreach(list, i, f)
    {
        json_t *kids = json_object_get(f, "children");
        if (json_is_array(kids)) {
            if (print_tree(cl, kids))
                return 1;
            continue;
        }
        const char *st = jstr(f, "status"), *id = jstr(f, "id");
        if (!id || !st)
            continue;
        const char *name = jstr(f, "name") ? jstr(f, "name") : jstr(f, "run_script");
        char v[600];
        verdict(f, v, sizeof(v));
        long long attempt = json_integer_value(json_object_get(f, "attempt"));
        char att[48] = "";
        if (attempt > 1)
            snprintf(att, sizeof(att), ", attempt %lld", attempt);
        printf("\u2500\u2500 %s [%.8s%s] %s\n", name ? name : "fragment",
               strlen(id) == 36 ? id + 28 : id, att, v);
        if (strcmp(st, "pending") == 0 || strcmp(st, "ready") == 0 || strcmp(st, "skipped") == 0)
            continue;
        long http = 0;
        if (print_fragment(cl, id, 0, "", &http) && http != 404)
            return 1;
    }
    return 0;
}

/* 0 completed, 1 failed or cancelled, 3 not finished yet. */
static int chain_exit(json_t *chain)
{
    const char *st = jstr(chain, "status");
    if (st && strcmp(st, "completed") == 0)
        return 0;
    if (st && (strcmp(st, "pending") == 0 || strcmp(st, "running") == 0))
        return 3;
    return 1;
}

/* A chain (or, unless `chains_only`, fragment) id, resolved from a full id (returns -1:
 * the caller finds out which) or a unique start or end of one (returns 0) into `id`;
 * else the exit status after printing why not. */
static int resolve(struct vk_http_client *cl, const char *cmd, const char *arg, bool chains_only,
                   char *id, bool *is_chain)
{
    char hex[33];
    if (vk_uuid_valid(arg)) {
        snprintf(id, VK_UUID_LEN, "%s", arg);
        *is_chain = false; /* decided by asking for the chain */
        return -1;
    }
    if (!hex_arg(arg, hex)) {
        fprintf(stderr,
                "vulcan %s: '%s' is not an id: give a chain or fragment id, or at least 4 "
                "of its hex digits (see 'vulcan chains ls', 'vulcan chains show CHAIN')\n",
                cmd, arg);
        return 2;
    }
    struct candidates cs = {.n = 0};
    if (find_ids(cl, cmd, hex, chains_only, &cs))
        return 1;
    if (cs.n == 0) {
        fprintf(stderr,
                "vulcan %s: no %s matches '%s' (ids are matched against the %d most recent "
                "chains%s)\n",
                cmd, chains_only ? "chain" : "chain or fragment", arg, SCAN_CHAINS,
                chains_only ? "" : " and the fragments of the 50 most recent");
        return 1;
    }
    if (cs.n > 1) {
        print_candidates(cmd, arg, &cs);
        return 2;
    }
    snprintf(id, VK_UUID_LEN, "%s", cs.c[0].id);
    *is_chain = cs.c[0].chain;
    return 0;
}

int vk__cli_chain_id(struct vk_http_client *cl, const char *cmd, const char *arg,
                     char id[VK_UUID_LEN])
{
    bool is_chain = true;
    int rc = resolve(cl, cmd, arg, true, id, &is_chain);
    return rc < 0 ? 0 : rc;
}

/* Fragment `name` of chain `chain` (its tree) into `id`. Returns 0 or the exit status. */
static int by_name(json_t *chain, const char *name, char *id)
{
    struct candidates cs = {.n = 0};
    json_t *frags = json_object_get(chain, "fragments");
    match_fragments(&cs, frags, NULL, name);
    if (cs.n == 1) {
        snprintf(id, VK_UUID_LEN, "%s", cs.c[0].id);
        return 0;
    }
    if (cs.n > 1) {
        print_candidates("logs", name, &cs);
        return 2;
    }
    struct vk_buf names = VK_BUF_INIT(4096);
    fragment_names(&names, frags);
    fprintf(stderr, "vulcan logs: chain %s has no fragment \"%s\"; its fragments: %s\n",
            jstr(chain, "id"), name, names.len ? names.data : "(none with a name)");
    vk_buf_release(&names);
    return 1;
}

int vk__cli_logs(int argc, char **argv)
{
    if (vk__cli_wants_help(argc, argv)) {
        fputs(usage_text, stdout);
        return 0;
    }
    const char *server = vk__cli_default_server();
    bool follow = false;
    long long attempt = 0;
    struct vk__cli_opt opts[] = {
        {"server", 0, VK_CLI_STR, &server, "VULCAN_SERVER", false, 0, 0},
        {"follow", 'f', VK_CLI_FLAG, &follow, NULL, false, 0, 0},
        {"attempt", 0, VK_CLI_INT, &attempt, NULL, false, 1, 1000000},
    };
    const char *pos[2];
    int npos = 0;
    int rc = vk__cli_opts_parse("logs", argc, argv, opts, VK_ARRAY_LEN(opts), pos, &npos, 2);
    if (rc)
        return rc;
    if (npos < 1) {
        fputs("vulcan logs: a CHAIN or FRAGMENT id (or a unique part of one) is needed; see "
              "'vulcan logs --help'\n",
              stderr);
        return 2;
    }
    struct vk_http_client *cl = NULL;
    if (vk__cli_client("logs", server, &cl))
        return 1;
    char id[VK_UUID_LEN];
    bool is_chain = false;
    json_t *chain = NULL;
    rc = resolve(cl, "logs", pos[0], npos == 2, id, &is_chain);
    if (rc > 0)
        goto out;
    /* A full id: a chain or a fragment? Ask for the chain first. */
    char path[256];
    snprintf(path, sizeof(path), "/api/v1/chains/%s", id);
    long http = 0;
    struct vk_err err;
    vk_err_clear(&err);
    if ((rc < 0 || is_chain) &&
        vk_http_client_json(cl, "GET", path, NULL, 30000, &http, &chain, &err) < 0) {
        fprintf(stderr, "vulcan logs: %s\n", err.msg);
        rc = 1;
        goto out;
    }
    is_chain = http == 200;
    if (npos == 2 && !is_chain) {
        fprintf(stderr, "vulcan logs: no chain '%s' (FRAGMENT NAME needs a chain)\n", pos[0]);
        rc = 1;
        goto out;
    }
    if (npos == 2) {
        rc = by_name(chain, pos[1], id);
        if (rc)
            goto out;
        is_chain = false;
    }
    if (is_chain && follow) {
        rc = vk__cli_follow_verdict(cl, "logs", id, false);
    } else if (is_chain) {
        rc = print_tree(cl, json_object_get(chain, "fragments"));
        if (rc == 0)
            rc = chain_exit(chain);
    } else if (follow) {
        rc = follow_fragment(cl, id, attempt);
    } else {
        rc = print_fragment(cl, id, attempt, NULL, &http);
        if (rc && http == 404)
            fprintf(stderr, "vulcan logs: no chain or fragment '%s'\n", pos[0]);
        else if (rc)
            fprintf(stderr, "vulcan logs: the server answered %ld\n", http);
    }
out:
    fflush(stdout);
    json_decref(chain);
    vk_http_client_free(cl);
    return rc;
}
