/*
 * agent_slot.c — one concurrency slot of the worker agent: long-poll for a
 * work item, run it through the executor while the uploader streams its
 * output, post the result (retried), repeat until the worker stops.
 */
#include "agent_int.h"
#include "vulcan/telemetry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* One parsed work item; strings are borrowed from `json`. */
struct work_item {
    json_t *json;
    const char *fragment_id;
    const char *chain_id;
    const char *name;
    const char *script;
    const char *repository_url;
    const char *commit_sha;
    const char *branch;
    const char *trace_parent;
    const char *job_token; /* the attempt's credential (NULL without --require-auth) */
    uint32_t attempt;
    int64_t timeout_s;
    bool network;            /* the fragment asked for the host network (VULCAN_NETWORK=true) */
    uint32_t checkout_depth; /* VULCAN_CHECKOUT_DEPTH, 0 = full history */
    bool pr_merge;           /* a pull request (TRIGGER) without VULCAN_CHECKOUT_REF=head */
    enum vk_exec_submodules submodules; /* VULCAN_CHECKOUT_SUBMODULES=true|recursive */
    bool lfs;                           /* VULCAN_CHECKOUT_LFS=true */
    bool no_checkout;                   /* VULCAN_CHECKOUT=false */
    char **env;                         /* owned "K=V" strings */
    size_t nenv;
    struct vk_exec_file files[VK_EXEC_MAX_FILES]; /* secret files (data borrowed from json) */
    size_t nfiles;
    struct vk_mask *mask; /* owned: the attempt's credentials, masked in its output */
    char invalid[200];    /* why the item cannot run ("" when fine) */
};

struct outcome {
    bool success;
    int exit_code;
    bool handback;
    char message[300];
    json_t *outputs; /* owned: {"NAME": "VALUE"} from $VULCAN_OUTPUT, masked; NULL: none */
};

static const char *jstr(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

static bool fragment_id_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > VK_EXEC_MAX_ID || s[0] == '.')
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok)
            return false;
    }
    return true;
}

/* Overwrite the secret values the item holds (its "secrets" strings) before they are freed. */
static void wipe_secrets(json_t *json)
{
    json_t *a = json_object_get(json, "secrets"), *e;
    size_t i;
    json_array_foreach(a, i, e)
    {
        json_t *v = json_object_get(e, "value");
        if (json_is_string(v))
            explicit_bzero((char *)json_string_value(v), json_string_length(v));
    }
}

static void item_release(struct work_item *it)
{
    vk_mask_free(it->mask);
    it->mask = NULL;
    for (size_t i = 0; i < it->nenv; i++) {
        explicit_bzero(it->env[i], strlen(it->env[i]));
        vk_mem_free(it->env[i]);
    }
    vk_mem_free(it->env);
    wipe_secrets(it->json);
    json_decref(it->json);
    memset(it, 0, sizeof(*it));
}

/* The item's secrets (secrets-common.md item 1): `secrets` become variables (after env, so
 * they win), `secret-file` ones files of the executor. Never logged. */
static void item_secrets(struct work_item *it, json_t *secrets)
{
    size_t i;
    json_t *e;
    json_array_foreach(secrets, i, e)
    {
        const char *name = jstr(e, "name");
        json_t *v = json_object_get(e, "value");
        if (!name || !json_is_string(v) || !*name || strlen(name) > 128 ||
            strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_") != strlen(name)) {
            snprintf(it->invalid, sizeof(it->invalid), "work item has a malformed secret");
            return;
        }
        if (json_is_true(json_object_get(e, "file"))) {
            if (it->nfiles >= VK_EXEC_MAX_FILES) {
                snprintf(it->invalid, sizeof(it->invalid), "too many secret files");
                return;
            }
            it->files[it->nfiles++] =
                (struct vk_exec_file){name, json_string_value(v), json_string_length(v)};
            continue;
        }
        size_t len = strlen(name) + json_string_length(v) + 2;
        char *kv = vk_mem_xalloc(len);
        snprintf(kv, len, "%s=%s", name, json_string_value(v));
        it->env[it->nenv++] = kv;
    }
}

/* Build "K=V" strings from the item's env object (strings, numbers, booleans). */
static void item_env(struct work_item *it, json_t *env)
{
    if (!json_is_object(env))
        return;
    it->network = json_is_string(json_object_get(env, "VULCAN_NETWORK")) &&
                  strcmp(json_string_value(json_object_get(env, "VULCAN_NETWORK")), "true") == 0;
    const char *trig = json_string_value(json_object_get(env, "TRIGGER"));
    const char *ref = json_string_value(json_object_get(env, "VULCAN_CHECKOUT_REF"));
    it->pr_merge = trig && strcmp(trig, "pull_request") == 0 && !(ref && strcmp(ref, "head") == 0);
    const char *sub = json_string_value(json_object_get(env, "VULCAN_CHECKOUT_SUBMODULES"));
    it->submodules = !sub                            ? VK_EXEC_SUBMODULES_NONE
                     : strcmp(sub, "recursive") == 0 ? VK_EXEC_SUBMODULES_RECURSIVE
                     : strcmp(sub, "true") == 0      ? VK_EXEC_SUBMODULES_ON
                                                     : VK_EXEC_SUBMODULES_NONE;
    const char *lfs = json_string_value(json_object_get(env, "VULCAN_CHECKOUT_LFS"));
    it->lfs = lfs && strcmp(lfs, "true") == 0;
    const char *co = json_string_value(json_object_get(env, "VULCAN_CHECKOUT"));
    it->no_checkout = co && strcmp(co, "false") == 0;
    json_t *dv = json_object_get(env, "VULCAN_CHECKOUT_DEPTH");
    if (json_is_string(dv)) {
        char *end = NULL;
        unsigned long d = strtoul(json_string_value(dv), &end, 10);
        if (end && *end == '\0' && d <= 1000000)
            it->checkout_depth = (uint32_t)d;
    }
    json_t *secrets = json_object_get(it->json, "secrets");
    size_t n = json_object_size(env), nsec = json_array_size(secrets);
    if (n + nsec > VK_EXEC_MAX_ENV) {
        snprintf(it->invalid, sizeof(it->invalid), "too many environment variables (%zu)", n);
        return;
    }
    it->env = vk_mem_xcalloc(n + nsec ? n + nsec : 1, sizeof(char *));
    const char *k;
    json_t *v;
    json_object_foreach(env, k, v)
    {
        char num[64];
        const char *val;
        if (json_is_string(v))
            val = json_string_value(v);
        else if (json_is_integer(v))
            val = (snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v)), num);
        else if (json_is_real(v))
            val = (snprintf(num, sizeof(num), "%.17g", json_real_value(v)), num);
        else if (json_is_boolean(v))
            val = json_is_true(v) ? "true" : "false";
        else
            continue; /* null, arrays and objects carry no value */
        size_t len = strlen(k) + strlen(val) + 2;
        char *kv = vk_mem_xalloc(len);
        snprintf(kv, len, "%s=%s", k, val);
        it->env[it->nenv++] = kv;
    }
    item_secrets(it, secrets);
}

/* A credential the attempt's output must not show; `what` names it in the error. */
static void mask_add(struct work_item *it, const char *what, const char *value)
{
    if (it->invalid[0] || !value || !*value)
        return;
    int rc = vk_mask_add(it->mask, value, strlen(value));
    if (rc != 0)
        snprintf(it->invalid, sizeof(it->invalid), "%s cannot be masked (%s, %zu bytes)", what,
                 vk_err_name(rc), strlen(value));
}

/*
 * The attempt's masker: the job token (also VULCAN_ID_TOKEN_REQUEST_TOKEN in the
 * environment), each `secrets[].value` and the values of the variables that carry
 * them. A value that cannot be masked makes the item invalid: the attempt fails
 * rather than print it.
 */
static void item_mask(struct work_item *it)
{
    it->mask = vk_mask_new();
    mask_add(it, "the job token", it->job_token);
    json_t *env = json_object_get(it->json, "env");
    mask_add(it, "VULCAN_ID_TOKEN_REQUEST_TOKEN", jstr(env, "VULCAN_ID_TOKEN_REQUEST_TOKEN"));
    json_t *secrets = json_object_get(it->json, "secrets");
    size_t i;
    json_t *sec;
    json_array_foreach(secrets, i, sec)
    {
        const char *name = jstr(sec, "name");
        char what[120];
        snprintf(what, sizeof(what), "secret '%.64s'", name ? name : "?");
        json_t *v = json_object_get(sec, "value");
        if (!json_is_string(v)) {
            if (!it->invalid[0])
                snprintf(it->invalid, sizeof(it->invalid), "%s has no string value", what);
            return;
        }
        if (strlen(json_string_value(v)) != json_string_length(v)) {
            if (!it->invalid[0])
                snprintf(it->invalid, sizeof(it->invalid), "%s contains a NUL byte", what);
            return;
        }
        mask_add(it, what, json_string_value(v));
        /* A `secret-file`'s variable holds the file's path, not a value. */
        if (name && !json_is_true(json_object_get(sec, "file")))
            mask_add(it, what, jstr(env, name));
    }
}

/* Parse the 200 answer of work/request. Returns false when there is no usable
 * fragment id (nothing can be reported then); other defects set it->invalid. */
static bool item_parse(struct work_item *it, const struct vk_buf *body)
{
    memset(it, 0, sizeof(*it));
    json_error_t je;
    it->json = json_loadb(body->data, body->len, 0, &je);
    if (!json_is_object(it->json))
        return false;
    it->fragment_id = jstr(it->json, "fragment_id");
    json_t *att = json_object_get(it->json, "attempt");
    if (!it->fragment_id || !fragment_id_ok(it->fragment_id) || !json_is_integer(att) ||
        json_integer_value(att) < 0 || json_integer_value(att) > UINT32_MAX)
        return false;
    it->attempt = (uint32_t)json_integer_value(att);
    it->chain_id = jstr(it->json, "chain_id");
    it->name = jstr(it->json, "name");
    it->script = jstr(it->json, "run_script");
    it->repository_url = jstr(it->json, "repository_url");
    it->commit_sha = jstr(it->json, "commit_sha");
    it->branch = jstr(it->json, "branch");
    it->trace_parent = jstr(it->json, "trace_parent");
    it->job_token = jstr(it->json, "job_token");
    json_t *to = json_object_get(it->json, "timeout_s");
    it->timeout_s = json_is_integer(to) ? json_integer_value(to) : 0;
    if (it->timeout_s < 0)
        it->timeout_s = 0;
    if (!it->script)
        snprintf(it->invalid, sizeof(it->invalid), "work item has no run_script");
    item_env(it, json_object_get(it->json, "env"));
    if (!it->invalid[0])
        item_mask(it);
    return true;
}

/* ---------------------------------------------------------------- Results */

static void outcome_from(struct outcome *o, int rc, const struct vk_exec_result *r,
                         int64_t timeout_ms)
{
    o->success = rc == 0 && vk_exec_result_ok(r);
    o->exit_code = r->exit_code;
    o->message[0] = '\0';
    if (rc != 0)
        snprintf(o->message, sizeof(o->message), "%s",
                 r->error[0] ? r->error : "the executor failed");
    else if (r->timed_out)
        snprintf(o->message, sizeof(o->message), "timed out after %llds",
                 (long long)(timeout_ms / 1000));
    else if (r->cancelled)
        snprintf(o->message, sizeof(o->message), "cancelled");
    else if (r->oom_killed)
        snprintf(o->message, sizeof(o->message), "out of memory (cgroup limit)");
    else if (r->signal)
        snprintf(o->message, sizeof(o->message), "killed by signal %d", r->signal);
    else if (r->exit_code != 0)
        snprintf(o->message, sizeof(o->message), "exit status %d", r->exit_code);
}

/*
 * What the script wrote to $VULCAN_OUTPUT into o->outputs, each value masked with the
 * attempt's credentials and secrets. A file over the cap or one that does not parse fails
 * a successful attempt, saying why (docs/workflow.md, "Outputs").
 */
static void outcome_outputs(struct outcome *o, const struct vk_exec_result *r, struct work_item *it)
{
    char why[200] = "";
    if (r->outputs_over) {
        snprintf(why, sizeof(why), "holds more than %u KiB, the cap of a fragment's outputs",
                 VK_OUTPUTS_MAX_BYTES >> 10);
    } else if (r->outputs_why[0]) {
        snprintf(why, sizeof(why), "%s", r->outputs_why + strlen("$VULCAN_OUTPUT "));
    } else if (r->outputs) {
        struct vk_pool pool;
        vk_pool_init(&pool, 4096);
        struct vk_output *outs = NULL;
        size_t n = 0;
        char perr[160];
        int rc = vk_outputs_parse(r->outputs, r->outputs_len, &pool, &outs, &n, perr, sizeof(perr));
        if (rc < 0) {
            snprintf(why, sizeof(why), "%s", rc == VK_ENOMEM ? "out of memory" : perr);
        } else if (n) {
            o->outputs = json_object();
            struct vk_buf m = VK_BUF_INIT(VK_OUTPUTS_MAX_VALUE * 2);
            for (size_t i = 0; o->outputs && i < n; i++) {
                vk_buf_reset(&m);
                const char *v = outs[i].value;
                if (it->mask && vk_mask_buf(it->mask, v, strlen(v), &m) == 0 && m.data)
                    v = m.data;
                else if (it->mask && strlen(v))
                    v = "***"; /* could not mask: never send it as it is */
                json_object_set_new(o->outputs, outs[i].name, json_string(v));
            }
            vk_buf_release(&m);
        }
        vk_pool_release(&pool);
    }
    if (why[0] && o->success) {
        o->success = false;
        snprintf(o->message, sizeof(o->message), "$VULCAN_OUTPUT %s", why);
        json_decref(o->outputs);
        o->outputs = NULL;
    }
}

/* Post the result; retried on network and server errors for a bounded time. */
static void post_result(struct agent_slot *s, const char *claim_id, const struct work_item *it,
                        const struct outcome *o)
{
    struct vk_worker *w = s->w;
    json_t *body =
        json_pack("{s:s, s:s, s:I, s:b, s:i, s:s, s:b}", "worker_id", claim_id, "fragment_id",
                  it->fragment_id, "attempt", (json_int_t)it->attempt, "success", o->success,
                  "exit_code", o->exit_code, "error_message", o->message, "handback", o->handback);
    if (!body)
        return;
    if (o->outputs)
        json_object_set(body, "outputs", o->outputs);
    int64_t give_up =
        vk_time_mono_ns() +
        (int64_t)(o->handback ? AGENT_HANDBACK_RETRY_MS : AGENT_RESULT_RETRY_MS) * 1000000;
    struct agent_backoff b;
    vk__agent_backoff_init(&b, 30000, (uint64_t)vk_time_mono_ns() ^ (s->index + 77u));
    char att[16];
    snprintf(att, sizeof(att), "%u", it->attempt);
    int64_t hurry_ns = 0;
    for (;;) {
        json_t *ans = NULL;
        long status = 0;
        struct vk_err err;
        vk_err_clear(&err);
        int r = vk_http_client_json(s->cl, "POST", "/api/v1/work/result", body,
                                    AGENT_REQUEST_TIMEOUT_MS, &status, &ans, &err);
        if (r == 0 && status >= 200 && status < 300) {
            atomic_fetch_add(&w->st_results, 1);
            if (o->handback)
                atomic_fetch_add(&w->st_handbacks, 1);
            vk_log_write(VK_LOG_INFO, AGENT_COMPONENT,
                         o->handback ? "fragment handed back" : "result posted", "fragment_id",
                         it->fragment_id, "chain_id", it->chain_id, "worker_id", claim_id,
                         "attempt", att, "fragment_status", jstr(ans, "fragment_status"), NULL);
            json_decref(ans);
            break;
        }
        if (r == 0 && status >= 400 && status < 500 && status != 408 && status != 429) {
            char st[24];
            snprintf(st, sizeof(st), "%ld", status);
            vk_log_write(status == 409 ? VK_LOG_WARN : VK_LOG_ERROR, AGENT_COMPONENT,
                         status == 409 ? "result refused: the attempt is stale" : "result refused",
                         "fragment_id", it->fragment_id, "chain_id", it->chain_id, "worker_id",
                         claim_id, "attempt", att, "status", st, "message", jstr(ans, "message"),
                         NULL);
            json_decref(ans);
            break;
        }
        json_decref(ans);
        int64_t delay = vk__agent_backoff_next(&b);
        /* Told twice to stop: the user wants out; try for 10 s more at most. */
        if (atomic_load(&w->stop_requests) >= 2 && !hurry_ns) {
            hurry_ns = vk_time_mono_ns() + 10000 * 1000000LL;
            if (hurry_ns < give_up)
                give_up = hurry_ns;
        }
        int64_t left = (give_up - vk_time_mono_ns()) / 1000000;
        vk_log_write(b.failures == 1 ? VK_LOG_WARN : VK_LOG_DEBUG, AGENT_COMPONENT,
                     "posting the result failed; retrying", "fragment_id", it->fragment_id, "error",
                     r != 0 ? err.msg : "server error", NULL);
        if (left <= 0) {
            vk_log_write(VK_LOG_ERROR, AGENT_COMPONENT, "giving up posting the result",
                         "fragment_id", it->fragment_id, "chain_id", it->chain_id, NULL);
            break;
        }
        vk__agent_sleep(w, delay < left ? delay : left, NULL);
    }
    json_decref(body);
}

/* ---------------------------------------------------------------- Running */

static void set_running(struct agent_slot *s, const struct work_item *it)
{
    pthread_mutex_lock(&s->mu);
    snprintf(s->fragment_id, sizeof(s->fragment_id), "%s", it->fragment_id);
    s->attempt = it->attempt;
    vk_exec_cancel_init(&s->cancel);
    atomic_store(&s->handback, false);
    s->cancelled_by_server = false;
    pthread_mutex_unlock(&s->mu);
}

static void clear_running(struct agent_slot *s)
{
    pthread_mutex_lock(&s->mu);
    s->fragment_id[0] = '\0';
    pthread_mutex_unlock(&s->mu);
}

static void set_trace(struct agent_slot *s, const char *tp)
{
    /* Best effort: a malformed trace_parent only loses the trace link. */
    if (vk_http_client_set_header(s->cl, "traceparent", tp) != 0 ||
        vk_http_client_set_header(s->log_cl, "traceparent", tp) != 0)
        vk_log_write(VK_LOG_DEBUG, AGENT_COMPONENT, "trace_parent not usable as a header", NULL);
}

/* The "execute" span of an attempt: child of the work item's trace_parent (the server's
 * dispatch span), or the root of a new trace. NULL without a tracer. */
static struct vk_span *execute_span(struct vk_worker *w, const char *claim_id,
                                    const struct work_item *it)
{
    struct vk_trace_ctx parent;
    bool has = it->trace_parent &&
               vk_trace_parent_parse(it->trace_parent, strlen(it->trace_parent), &parent) == 0;
    struct vk_span *sp =
        vk_trace_start_span(w->tel.tracer, "execute", VK_SPAN_CONSUMER, has ? &parent : NULL);
    vk_trace_span_set_str(sp, "vulcan.fragment_id", it->fragment_id);
    vk_trace_span_set_str(sp, "vulcan.chain_id", it->chain_id);
    vk_trace_span_set_str(sp, "vulcan.fragment.name", it->name);
    vk_trace_span_set_str(sp, "vulcan.worker_id", claim_id);
    vk_trace_span_set_int(sp, "vulcan.attempt", it->attempt);
    return sp;
}

/* A child span of `parent` named `name` that began at `start_ns` and ends now. */
static void child_span(struct vk_worker *w, const struct vk_span *parent, const char *name,
                       int64_t start_ns, const char *key, int64_t value)
{
    if (!parent)
        return;
    struct vk_span *sp = vk_trace_start_span(w->tel.tracer, name, VK_SPAN_INTERNAL, &parent->ctx);
    if (!sp)
        return;
    vk_trace_span_set_start(sp, start_ns); /* the work began before the span was made */
    if (key)
        vk_trace_span_set_int(sp, key, value);
    vk_trace_end_span(w->tel.tracer, sp);
}

/* A child span of `parent` named `name` from `start_ns` to `end_ns` (both needed). */
static void stage_span(struct vk_worker *w, const struct vk_span *parent, const char *name,
                       int64_t start_ns, int64_t end_ns)
{
    if (!parent || start_ns <= 0 || end_ns <= 0)
        return;
    struct vk_span *sp = vk_trace_start_span(w->tel.tracer, name, VK_SPAN_INTERNAL, &parent->ctx);
    vk_trace_span_set_start(sp, start_ns);
    vk_trace_end_span_at(w->tel.tracer, sp, end_ns);
}

/* The executor's steps as child spans of the execute span (where its time went). */
static void stage_spans(struct vk_worker *w, const struct vk_span *parent,
                        const struct vk_exec_result *r)
{
    static const char *const names[VK_EXEC_STAGE_N] = {[VK_EXEC_STAGE_WORKSPACE] = "workspace",
                                                       [VK_EXEC_STAGE_SETUP] = "set-up",
                                                       [VK_EXEC_STAGE_EXITED] = "script",
                                                       [VK_EXEC_STAGE_CLEANED] = "clean-up"};
    for (int i = VK_EXEC_STAGE_WORKSPACE; parent && i < VK_EXEC_STAGE_N; i++)
        stage_span(w, parent, names[i], r->stage_ns[i - 1], r->stage_ns[i]);
}

static int64_t real_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* The attempt's job token on the slot's clients (results, log chunks); NULL clears it. */
static void set_job_token(struct agent_slot *s, const char *token)
{
    if (vk__agent_auth(s->cl, token) != 0 || vk__agent_auth(s->log_cl, token) != 0)
        vk_log_write(VK_LOG_WARN, AGENT_COMPONENT, "the job token is not usable as a header", NULL);
}

static void run_item(struct agent_slot *s, const char *claim_id, struct work_item *it)
{
    struct vk_worker *w = s->w;
    struct outcome o = {.exit_code = -1};
    double run_s = 0;
    uint64_t run_bytes = 0;
    set_running(s, it);
    set_job_token(s, it->job_token);
    char att[16];
    snprintf(att, sizeof(att), "%u", it->attempt);
    if (it->trace_parent && *it->trace_parent)
        set_trace(s, it->trace_parent);
    struct vk_span *span = execute_span(w, claim_id, it);
    char tid[VK_TRACE_ID_HEX_LEN] = "", sid[VK_SPAN_ID_HEX_LEN] = "";
    if (span) {
        vk_trace_id_hex(span->ctx.trace_id, tid);
        vk_trace_span_id_hex(span->ctx.span_id, sid);
    }

    if (atomic_load(&w->stopping)) {
        /* Claimed while shutting down: give it straight back. */
        o.handback = true;
        snprintf(o.message, sizeof(o.message), "worker shutting down");
    } else if (it->invalid[0]) {
        snprintf(o.message, sizeof(o.message), "invalid work item: %s", it->invalid);
        vk_log_write(VK_LOG_ERROR, AGENT_COMPONENT, "invalid work item", "fragment_id",
                     it->fragment_id, "error", it->invalid, NULL);
    } else if (it->network && w->no_network) {
        snprintf(o.message, sizeof(o.message),
                 "fragment '%s' asks for the network ('network #true') but this worker runs "
                 "with --no-network",
                 it->name ? it->name : it->fragment_id);
        vk_log_write(VK_LOG_ERROR, AGENT_COMPONENT, "network refused", "fragment_id",
                     it->fragment_id, NULL);
    } else {
        vk_log_write(VK_LOG_INFO, AGENT_COMPONENT, "running fragment", "fragment_id",
                     it->fragment_id, "chain_id", it->chain_id, "worker_id", claim_id, "attempt",
                     att, "name", it->name, "trace_id", tid[0] ? tid : NULL, "span_id",
                     sid[0] ? sid : NULL, NULL);
        int64_t run_start_ns = span ? span->start_ns : 0;
        atomic_fetch_add(&w->st_attempts, 1);
        int64_t timeout_ms = it->timeout_s > 0 ? it->timeout_s * 1000 : w->default_timeout_ms;
        struct vk_exec_spec spec = {
            .fragment_id = it->fragment_id,
            .attempt = it->attempt,
            .script = it->script,
            .env = (const char *const *)it->env,
            .nenv = it->nenv,
            .repository_url = it->repository_url,
            .commit_sha = it->commit_sha,
            .branch = it->branch,
            .checkout_depth = it->checkout_depth,
            .merge_into = it->pr_merge ? it->branch : NULL,
            .checkout_submodules = it->submodules,
            .checkout_lfs = it->lfs,
            .no_checkout = it->no_checkout,
            .timeout_ms = timeout_ms,
            .allow_network = it->network,
            .output_cap = w->output_cap,
            .memory_limit_bytes = w->memory_limit_bytes,
            .pids_limit = w->pids_limit,
            .cpu_millis = w->cpu_millis,
            .keep_workspace = w->keep_workspace,
            .files = it->files,
            .nfiles = it->nfiles,
            .mask = it->mask,
            .outputs = true,
            .slot = s->xslot,
        };
        struct vk_exec_result res;
        struct vk_err err;
        vk_err_clear(&err);
        bool uploading = vk__agent_upload_start(s) == 0;
        int rc = vk_exec_run(&w->env, &spec, uploading ? vk__agent_upload_output : NULL, s,
                             &s->cancel, &res, &err);
        bool handback =
            atomic_load(&s->handback) && (res.cancelled || rc == VK_EAGAIN || res.exit_code == -1);
        stage_spans(w, span, &res);
        if (res.checkout_ms > 0) /* git ran inside the executor: only its length is known */
            child_span(w, span, "checkout", run_start_ns, "vulcan.checkout_ms", res.checkout_ms);
        if (uploading) {
            /* The final flush: wall-clock start, the tracer's clock. */
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            int64_t up_ns = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
            vk__agent_upload_finish(s, handback);
            pthread_mutex_lock(&s->mu);
            run_bytes = s->up_offset;
            pthread_mutex_unlock(&s->mu);
            child_span(w, span, "upload log", up_ns, "vulcan.log_bytes", (int64_t)run_bytes);
        }
        outcome_from(&o, rc, &res, timeout_ms);
        o.handback = handback;
        if (!handback)
            outcome_outputs(&o, &res, it);
        vk_exec_result_release(&res);
        run_s = (double)res.duration_ms / 1000.0;
        char code[16], ms[24];
        snprintf(code, sizeof(code), "%d", res.exit_code);
        snprintf(ms, sizeof(ms), "%lld", (long long)res.duration_ms);
        vk_log_write(o.success || o.handback ? VK_LOG_INFO : VK_LOG_WARN, AGENT_COMPONENT,
                     o.handback ? "fragment stopped for hand-back" : "fragment finished",
                     "fragment_id", it->fragment_id, "chain_id", it->chain_id, "worker_id",
                     claim_id, "attempt", att, "exit_code", code, "duration_ms", ms, "error",
                     o.message[0] ? o.message : NULL, NULL);
    }
    int64_t post_ns = span ? real_ns() : 0;
    post_result(s, claim_id, it, &o);
    json_decref(o.outputs);
    if (span)
        stage_span(w, span, "result", post_ns, real_ns());
    set_job_token(s, NULL);
    if (it->trace_parent && *it->trace_parent)
        set_trace(s, NULL);
    const char *outcome = o.handback ? "handed_back" : o.success ? "completed" : "failed";
    vk__agent_telemetry_attempt(w, outcome, run_s, run_bytes);
    vk_trace_span_set_str(span, "vulcan.outcome", outcome);
    vk_trace_span_set_int(span, "vulcan.exit_code", o.exit_code);
    if (!o.success && !o.handback)
        vk_trace_span_set_status(span, VK_SPAN_ERROR, o.message);
    vk_trace_end_span(w->tel.tracer, span);
    clear_running(s);
}

/* ---------------------------------------------------------------- Slot loop */

void *vk__agent_slot_main(void *arg)
{
    struct agent_slot *s = arg;
    struct vk_worker *w = s->w;
    struct agent_backoff b;
    vk__agent_backoff_init(&b, AGENT_BACKOFF_MAX_MS, (uint64_t)vk_time_mono_ns() ^ (s->index + 1u));
    char path[] = "/api/v1/work/request";
    while (!atomic_load(&w->stopping)) {
        char id[AGENT_MAX_ID + 1];
        uint64_t gen = vk__agent_current(w, id);
        json_t *req = json_pack("{s:s, s:i}", "worker_id", id, "wait_s", (int)w->wait_s);
        char *text = req ? json_dumps(req, JSON_COMPACT) : NULL;
        json_decref(req);
        if (!text) {
            vk__agent_sleep(w, 1000, &w->stopping);
            continue;
        }
        long status = 0;
        struct vk_buf body;
        struct vk_err err;
        vk_err_clear(&err);
        int64_t asked_ns = vk_time_mono_ns();
        char token[VK_AUTH_TOKEN_MAX];
        vk__agent_token(w, token);
        int rc = vk__agent_poll_post(s->poller, path, text, token, (long)(w->wait_s + 15) * 1000L,
                                     &w->stopping, &status, &body, &err);
        vk_auth_wipe(token, sizeof(token));
        free(text);
        if (rc == VK_EAGAIN)
            break;
        if (rc == 0 && status == 401) {
            vk__agent_fatal(w, "asking for work refused: the worker token is not valid (revoked?)");
            vk_buf_release(&body);
            break;
        }
        if (rc == 0 && status == 204) {
            vk__agent_backoff_reset(&b);
            /* A server that does not hold the long-poll must not make us spin. */
            if (vk_time_mono_ns() - asked_ns < 50 * 1000000LL)
                vk__agent_sleep(w, 500, &w->stopping);
        } else if (rc == 0 && status == 200) {
            vk__agent_backoff_reset(&b);
            struct work_item it;
            bool usable = item_parse(&it, &body);
            if (usable)
                run_item(s, id, &it);
            else
                vk_log_write(VK_LOG_ERROR, AGENT_COMPONENT,
                             "unusable work item (no valid fragment_id or attempt)", "worker_id",
                             id, NULL);
            item_release(&it);
            if (!usable)
                vk__agent_sleep(w, 1000, &w->stopping);
        } else if (rc == 0 && (status == 404 || status == 409)) {
            vk_log_write(VK_LOG_WARN, AGENT_COMPONENT,
                         "server forgot this worker; registering again", "worker_id", id, NULL);
            (void)vk__agent_register(w, s->cl, gen);
        } else {
            char st[24];
            snprintf(st, sizeof(st), "%ld", status);
            int64_t delay = vk__agent_backoff_next(&b);
            vk_log_write(b.failures == 1 ? VK_LOG_WARN : VK_LOG_DEBUG, AGENT_COMPONENT,
                         "asking for work failed", "worker_id", id, "error",
                         rc != 0 ? err.msg : NULL, "status", rc == 0 ? st : NULL, NULL);
            vk_buf_release(&body);
            vk__agent_sleep(w, delay, &w->stopping);
            continue;
        }
        vk_buf_release(&body);
    }
    atomic_store(&s->done, true);
    return NULL;
}
