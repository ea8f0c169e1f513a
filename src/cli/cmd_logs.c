/*
 * vulcan logs FRAGMENT|CHAIN [-f]: the output of one fragment (raw bytes, as
 * stored) or of every fragment of a chain (each line prefixed with the
 * fragment's name). With -f a fragment's log is followed over the server's
 * Server-Sent Events stream until the fragment ends (reconnecting where it
 * stopped if the connection drops), and a chain is followed until it ends.
 *
 * Exit status with -f: 0 when the fragment (chain) completed, 1 otherwise;
 * without -f: 0 when the log was printed; 2 bad usage.
 */
#include "cli/cli.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char usage_text[] =
    "usage: vulcan logs FRAGMENT|CHAIN [-f] [--attempt N] [--server URL]\n"
    "\n"
    "Print the output of a fragment (its latest attempt, or --attempt N), or of every\n"
    "fragment of a chain, prefixed with the fragment's name.\n"
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
    } else if (!prefix) {
        fwrite(resp.body.data, 1, resp.body.len, stdout);
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
        if (!id || !st || strcmp(st, "pending") == 0 || strcmp(st, "ready") == 0 ||
            strcmp(st, "skipped") == 0)
            continue;
        long http = 0;
        const char *name = jstr(f, "name") ? jstr(f, "name") : id;
        if (print_fragment(cl, id, 0, name, &http) && http != 404)
            return 1;
    }
    return 0;
}

int vk__cli_logs(int argc, char **argv)
{
    if (vk__cli_wants_help(argc, argv)) {
        fputs(usage_text, stdout);
        return 0;
    }
    const char *server = "http://127.0.0.1:8080";
    bool follow = false;
    long long attempt = 0;
    struct vk__cli_opt opts[] = {
        {"server", 0, VK_CLI_STR, &server, "VULCAN_SERVER", false, 0, 0},
        {"follow", 'f', VK_CLI_FLAG, &follow, NULL, false, 0, 0},
        {"attempt", 0, VK_CLI_INT, &attempt, NULL, false, 1, 1000000},
    };
    const char *pos[1];
    int npos = 0;
    int rc = vk__cli_opts_parse("logs", argc, argv, opts, VK_ARRAY_LEN(opts), pos, &npos, 1);
    if (rc)
        return rc;
    if (npos != 1 || !vk_uuid_valid(pos[0])) {
        fputs("vulcan logs: one FRAGMENT or CHAIN id is needed; see 'vulcan logs --help'\n",
              stderr);
        return 2;
    }
    struct vk_http_client *cl = NULL;
    if (vk__cli_client("logs", server, &cl))
        return 1;
    /* A chain id or a fragment id? Ask for the chain first. */
    char path[256];
    snprintf(path, sizeof(path), "/api/v1/chains/%s", pos[0]);
    long http = 0;
    json_t *chain = NULL;
    struct vk_err err;
    vk_err_clear(&err);
    if (vk_http_client_json(cl, "GET", path, NULL, 30000, &http, &chain, &err) < 0) {
        fprintf(stderr, "vulcan logs: %s\n", err.msg);
        rc = 1;
    } else if (http == 200 && follow) {
        rc = vk__cli_follow_verdict(cl, "logs", pos[0], false);
    } else if (http == 200) {
        rc = print_tree(cl, json_object_get(chain, "fragments"));
    } else if (follow) {
        rc = follow_fragment(cl, pos[0], attempt);
    } else {
        rc = print_fragment(cl, pos[0], attempt, NULL, &http);
        if (rc && http == 404)
            fprintf(stderr, "vulcan logs: no chain or fragment '%s'\n", pos[0]);
        else if (rc)
            fprintf(stderr, "vulcan logs: the server answered %ld\n", http);
    }
    fflush(stdout);
    json_decref(chain);
    vk_http_client_free(cl);
    return rc;
}
