/*
 * Following a chain over the HTTP API: state changes and each fragment's
 * output, live, with the fragment's name as prefix; then a summary table.
 * Used by `vulcan submit --follow` and `vulcan run`.
 */
#include "cli/cli.h"

#include <string.h>
#include <time.h>

/* What has been shown of one inline fragment. */
struct view {
    char id[VK_UUID_LEN];
    long long attempt;
    long long offset;
    char status[16];
    struct vk_buf partial; /* output after the last newline */
};

struct follow {
    struct vk_http_client *cl;
    bool color;
    struct view *views;
    size_t n, cap;
};

static const char *jstr(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static const char *label(json_t *f)
{
    const char *n = jstr(f, "name");
    if (n)
        return n;
    if (json_is_array(json_object_get(f, "children")))
        return json_is_true(json_object_get(f, "is_parallel")) ? "parallel" : "group";
    n = jstr(f, "run_script");
    return n ? n : "fragment";
}

static struct view *view_for(struct follow *fw, const char *id)
{
    for (size_t i = 0; i < fw->n; i++) {
        if (strcmp(fw->views[i].id, id) == 0)
            return &fw->views[i];
    }
    vk_array_xgrow(&fw->views, &fw->cap, fw->n + 1, 16, sizeof(*fw->views));
    struct view *v = &fw->views[fw->n++];
    memset(v, 0, sizeof(*v));
    snprintf(v->id, sizeof(v->id), "%s", id);
    vk_buf_init(&v->partial, 1024 * 1024);
    return v;
}

static void print_lines(struct follow *fw, const char *name, struct view *v, const char *data,
                        size_t len, bool flush)
{
    if (vk_buf_add(&v->partial, data, len) != 0)
        vk_buf_reset(&v->partial);
    size_t start = 0;
    for (size_t i = 0; i < v->partial.len; i++) {
        bool nl = v->partial.data[i] == '\n';
        if (!nl && !(flush && i + 1 == v->partial.len))
            continue;
        size_t end = nl ? i : i + 1;
        if (fw->color)
            printf("\033[36m[%s]\033[0m %.*s\n", name, (int)(end - start), v->partial.data + start);
        else
            printf("[%s] %.*s\n", name, (int)(end - start), v->partial.data + start);
        start = i + 1;
    }
    if (start) {
        memmove(v->partial.data, v->partial.data + start, v->partial.len - start);
        v->partial.len -= start;
        v->partial.data[v->partial.len] = '\0';
    }
}

static bool final_status(const char *st)
{
    return st && (strcmp(st, "completed") == 0 || strcmp(st, "failed") == 0 ||
                  strcmp(st, "skipped") == 0 || strcmp(st, "cancelled") == 0);
}

/* Fetch new output of fragment `f` and print it. */
static void pull_log(struct follow *fw, json_t *f, struct view *v)
{
    char path[256];
    snprintf(path, sizeof(path), "/api/v1/fragments/%s/log?attempt=%lld&offset=%lld", v->id,
             v->attempt, v->offset);
    struct vk_http_response resp;
    memset(&resp, 0, sizeof(resp));
    struct vk_err err;
    if (vk_http_client_request(fw->cl, "GET", path, NULL, NULL, 0, 30000, &resp, &err) == 0 &&
        resp.status == 200 && resp.body.len) {
        v->offset += (long long)resp.body.len;
        print_lines(fw, label(f), v, resp.body.data, resp.body.len, false);
    }
    vk_http_response_release(&resp);
}

static void visit(struct follow *fw, json_t *list)
{
    size_t i;
    json_t *f;
    json_array_foreach(list, i, f)
    {
        json_t *kids = json_object_get(f, "children");
        if (json_is_array(kids)) {
            visit(fw, kids);
            continue;
        }
        const char *id = jstr(f, "id");
        const char *st = jstr(f, "status");
        if (!id || !st)
            continue;
        struct view *v = view_for(fw, id);
        long long attempt = json_integer_value(json_object_get(f, "attempt"));
        bool started = strcmp(st, "running") == 0 || final_status(st);
        if (started && attempt > v->attempt) {
            /* Earlier attempts (a retry, or a worker that died): the rest of each one's
             * output, even when a poll never saw it run, then a line that says it ended. */
            for (long long a = v->attempt ? v->attempt : 1; a < attempt; a++) {
                if (a != v->attempt) {
                    v->attempt = a;
                    v->offset = 0;
                }
                pull_log(fw, f, v);
                if (v->partial.len)
                    print_lines(fw, label(f), v, "", 0, true);
                /* Attempts `retry N` allows; a worker that died adds one more. */
                long long most = json_integer_value(json_object_get(f, "retries")) + 1;
                char of[32] = "";
                if (attempt <= most)
                    snprintf(of, sizeof(of), " of %lld", most);
                printf("[%s] \u2500\u2500 attempt %lld%s failed; attempt %lld follows\n", label(f),
                       a, of, a + 1);
            }
            v->attempt = attempt;
            v->offset = 0;
        }
        if (started && strcmp(st, "skipped") != 0)
            pull_log(fw, f, v);
        if (strcmp(st, v->status) != 0 && final_status(st)) {
            if (v->partial.len)
                print_lines(fw, label(f), v, "", 0, true);
            json_t *code = json_object_get(f, "exit_code");
            const char *error = jstr(f, "error");
            if (strcmp(st, "completed") == 0)
                printf("[%s] %s\n", label(f), fw->color ? "\033[32mok\033[0m" : "ok");
            else if (json_is_integer(code) && strcmp(st, "failed") == 0)
                printf("[%s] %s (exit %lld)%s%s\n", label(f),
                       fw->color ? "\033[31mFAILED\033[0m" : "FAILED",
                       (long long)json_integer_value(code), error ? ": " : "", error ? error : "");
            else
                printf("[%s] %s%s%s\n", label(f), st, error ? ": " : "", error ? error : "");
        }
        snprintf(v->status, sizeof(v->status), "%s", st);
    }
    fflush(stdout);
}

static void summary_rows(json_t *list, unsigned depth, int id_width)
{
    size_t i;
    json_t *f;
    json_array_foreach(list, i, f)
    {
        json_t *kids = json_object_get(f, "children");
        char name[64];
        snprintf(name, sizeof(name), "%*s%s", (int)(depth * 2), "", label(f));
        char dur[32] = "-", code[16] = "-";
        int64_t a = 0, b = 0;
        const char *sa = jstr(f, "started_at"), *sb = jstr(f, "finished_at");
        if (sa && sb && vk_time_parse(sa, &a) == 0 && vk_time_parse(sb, &b) == 0)
            snprintf(dur, sizeof(dur), "%.2fs", (double)(b - a) / 1e3);
        json_t *c = json_object_get(f, "exit_code");
        if (json_is_integer(c))
            snprintf(code, sizeof(code), "%lld", (long long)json_integer_value(c));
        const char *id = jstr(f, "id") ? jstr(f, "id") : "-";
        if (id_width == 8 && strlen(id) == 36)
            printf("%-8s ", id + 28);
        else if (id_width)
            printf("%-36s ", id);
        printf("%-36.36s %-10s %9s %7lld %5s\n", name, jstr(f, "status"), dur,
               (long long)json_integer_value(json_object_get(f, "attempt")), code);
        if (json_is_array(kids))
            summary_rows(kids, depth + 1, id_width);
    }
}

void vk__cli_print_summary(json_t *chain, int id_width)
{
    putchar('\n');
    if (id_width)
        printf("%-*s ", id_width == 8 ? 8 : 36, "ID");
    printf("%-36s %-10s %9s %7s %5s\n", "FRAGMENT", "STATUS", "DURATION", "ATTEMPT", "EXIT");
    summary_rows(json_object_get(chain, "fragments"), 0, id_width);
    json_t *d = json_object_get(chain, "duration_ms");
    const char *err = jstr(chain, "error");
    printf("\nchain %s: %s in %.2fs%s%s\n", jstr(chain, "id"), jstr(chain, "status"),
           json_is_integer(d) ? (double)json_integer_value(d) / 1e3 : 0.0, err ? " - " : "",
           err ? err : "");
}

/* Between polls when the caller has nothing else to do. */
static int sleep_tick(void *ctx)
{
    struct timespec ts = {0, 150 * 1000000};
    nanosleep(&ts, NULL);
    return 0;
}

int vk__cli_follow_verdict(struct vk_http_client *cl, const char *cmd, const char *chain_id,
                           bool summary)
{
    json_t *final = NULL;
    struct vk_err err;
    vk_err_clear(&err);
    if (vk__cli_follow(cl, chain_id, vk__cli_use_color(1), NULL, NULL, &final, &err) < 0) {
        fprintf(stderr, "vulcan %s: %s\n", cmd, err.msg);
        return 1;
    }
    if (final && summary)
        vk__cli_print_summary(final, 0);
    const char *st = final ? jstr(final, "status") : NULL;
    int status = st && strcmp(st, "completed") == 0 ? 0 : 1;
    json_decref(final);
    return status;
}

int vk__cli_follow(struct vk_http_client *cl, const char *chain_id, bool color,
                   vk__cli_tick_fn *tick, void *tick_ctx, json_t **final, struct vk_err *err)
{
    struct follow fw = {.cl = cl, .color = color};
    char path[128];
    snprintf(path, sizeof(path), "/api/v1/chains/%s", chain_id);
    int rc = 0;
    *final = NULL;
    int failures = 0;
    for (;;) {
        long status = 0;
        json_t *chain = NULL;
        rc = vk_http_client_json(cl, "GET", path, NULL, 30000, &status, &chain, err);
        if (rc < 0 || status != 200) {
            json_decref(chain);
            if (rc == 0)
                rc = vk_err_set(err, status == 404 ? VK_ENOTFOUND : VK_EIO,
                                "the server answered %ld for chain '%s'", status, chain_id);
            /* A server restart is survivable: retry for a while. */
            if (++failures > 50 || rc == VK_ENOTFOUND)
                break;
        } else {
            failures = 0;
            visit(&fw, json_object_get(chain, "fragments"));
            const char *st = jstr(chain, "status");
            bool running = false;
            /* A failed or cancelled chain may still have fragments finishing. */
            for (size_t i = 0; i < fw.n; i++)
                running |= strcmp(fw.views[i].status, "running") == 0;
            if (st && strcmp(st, "pending") != 0 && strcmp(st, "running") != 0 && !running) {
                *final = chain;
                rc = 0;
                break;
            }
            json_decref(chain);
        }
        int t = tick ? tick(tick_ctx) : sleep_tick(NULL);
        if (t)
            rc = t < 0 ? t : 0;
        if (t < 0)
            break;
    }
    for (size_t i = 0; i < fw.n; i++)
        vk_buf_release(&fw.views[i].partial);
    vk_mem_free(fw.views);
    return rc;
}
