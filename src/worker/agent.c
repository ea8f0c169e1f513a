/*
 * agent.c — the worker agent's lifecycle: options, registration with
 * backoff, the heartbeat thread, and the supervisor loop of vk_worker_run()
 * that drives graceful shutdown.
 */
#include "agent_int.h"
#include "vulcan/telemetry.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------- Helpers */

uint64_t vk__agent_current(struct vk_worker *w, char id[AGENT_MAX_ID + 1])
{
    pthread_mutex_lock(&w->mu);
    memcpy(id, w->worker_id, AGENT_MAX_ID + 1);
    uint64_t gen = w->gen;
    pthread_mutex_unlock(&w->mu);
    return gen;
}

void vk__agent_token(struct vk_worker *w, char token[VK_AUTH_TOKEN_MAX])
{
    pthread_mutex_lock(&w->mu);
    memcpy(token, w->token, VK_AUTH_TOKEN_MAX);
    pthread_mutex_unlock(&w->mu);
}

int vk__agent_auth(struct vk_http_client *cl, const char *token)
{
    if (!token || !*token)
        return vk_http_client_set_header(cl, "Authorization", NULL);
    char v[16 + VK_AUTH_TOKEN_MAX];
    snprintf(v, sizeof(v), "Bearer %s", token);
    int rc = vk_http_client_set_header(cl, "Authorization", v);
    vk_auth_wipe(v, sizeof(v));
    return rc;
}

void vk__agent_fatal(struct vk_worker *w, const char *why)
{
    pthread_mutex_lock(&w->mu);
    bool first = !atomic_load(&w->fatal);
    if (first) {
        snprintf(w->fatal_why, sizeof(w->fatal_why), "%s", why);
        atomic_store(&w->fatal, true);
    }
    pthread_mutex_unlock(&w->mu);
    if (!first)
        return;
    vk_log_write(VK_LOG_ERROR, AGENT_COMPONENT, "the server refused this worker's credentials",
                 "error", why, NULL);
    vk_worker_stop(w);
    vk_worker_stop(w); /* no grace: the running attempts' tokens are refused too */
}

/* Sleep `ms` on w->cond; returns true early when *abort_flag (may be NULL) is set. */
bool vk__agent_sleep(struct vk_worker *w, int64_t ms, const atomic_bool *abort_flag)
{
    struct timespec until = vk_time_deadline(ms);
    bool aborted = false;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        if (abort_flag && atomic_load(abort_flag)) {
            aborted = true;
            break;
        }
        if (pthread_cond_timedwait(&w->cond, &w->mu, &until) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&w->mu);
    return aborted;
}

void vk__agent_backoff_init(struct agent_backoff *b, int64_t max_ms, uint64_t seed)
{
    b->next_ms = AGENT_BACKOFF_MIN_MS;
    b->max_ms = max_ms > 0 ? max_ms : AGENT_BACKOFF_MAX_MS;
    b->rng = seed ? seed : 0x9e3779b97f4a7c15ull;
    b->failures = 0;
}

/* The next delay: half the current step plus a random part of the other half. */
int64_t vk__agent_backoff_next(struct agent_backoff *b)
{
    int64_t step = b->next_ms;
    b->next_ms = step * 2 > b->max_ms ? b->max_ms : step * 2;
    b->failures++;
    b->rng ^= b->rng << 13;
    b->rng ^= b->rng >> 7;
    b->rng ^= b->rng << 17;
    return step / 2 + (int64_t)(b->rng % (uint64_t)(step / 2 + 1));
}

void vk__agent_backoff_reset(struct agent_backoff *b)
{
    b->next_ms = AGENT_BACKOFF_MIN_MS;
    b->failures = 0;
}

int vk__agent_thread_start(pthread_t *t, void *(*fn)(void *), void *arg)
{
    pthread_attr_t attr;
    if (pthread_attr_init(&attr) != 0)
        return VK_ENOMEM;
    (void)pthread_attr_setstacksize(&attr, AGENT_STACK);
    int rc = pthread_create(t, &attr, fn, arg);
    pthread_attr_destroy(&attr);
    return rc == 0 ? 0 : VK_EIO;
}

int vk__agent_client_new(struct vk_worker *w, struct vk_http_client **out, struct vk_err *err)
{
    struct vk_http_client_opts o = {.base_url = w->server_url,
                                    .connect_timeout_ms = 5000,
                                    .timeout_ms = AGENT_REQUEST_TIMEOUT_MS,
                                    .max_response = 64u * 1024u,
                                    .ca_file = w->ca_file};
    return vk_http_client_new(&o, out, err);
}

static uint64_t seed_for(const struct vk_worker *w, unsigned salt)
{
    return (uint64_t)vk_time_mono_ns() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)w ^
           ((uint64_t)salt * 0x9e3779b97f4a7c15ull);
}

/* ---------------------------------------------------------------- Registration */

static json_t *register_body(const struct vk_worker *w)
{
    json_t *groups = json_array();
    for (size_t i = 0; i < w->ngroups; i++)
        json_array_append_new(groups, json_string(w->groups[i]));
    return json_pack("{s:s, s:o, s:s, s:s}", "machine_group", w->groups[0], "machine_groups",
                     groups, "name", w->name, "version", w->version);
}

/* Parse a register answer into id / interval / token ("" when the answer has none); false
 * when it is not usable. */
static bool register_answer(json_t *ans, char id[AGENT_MAX_ID + 1], int *interval_s,
                            char token[VK_AUTH_TOKEN_MAX])
{
    json_t *tok = json_object_get(ans, "worker_token");
    token[0] = '\0';
    if (json_is_string(tok)) {
        if (json_string_length(tok) >= VK_AUTH_TOKEN_MAX)
            return false;
        memcpy(token, json_string_value(tok), json_string_length(tok) + 1);
    }
    json_t *jid = json_object_get(ans, "worker_id");
    if (!json_is_string(jid) || json_string_length(jid) == 0 ||
        json_string_length(jid) > AGENT_MAX_ID)
        return false;
    const char *s = json_string_value(jid);
    for (const char *p = s; *p; p++)
        if ((unsigned char)*p < 0x21 || *p == 0x7f || *p == '"' || *p == '\\')
            return false;
    snprintf(id, AGENT_MAX_ID + 1, "%s", s);
    json_t *hb = json_object_get(ans, "heartbeat_interval_s");
    long long v = json_is_integer(hb) ? json_integer_value(hb) : 0;
    if (json_is_real(hb))
        v = (long long)json_real_value(hb);
    *interval_s = v < 1 ? 5 : v > 300 ? 300 : (int)v;
    return true;
}

/*
 * Register, or register again, unless another thread already did so since
 * `seen_gen` (0 for the first time). Retries forever with backoff; returns 0
 * once registered, VK_EAGAIN when the worker is stopping.
 */
int vk__agent_register(struct vk_worker *w, struct vk_http_client *cl, uint64_t seen_gen)
{
    int rc = VK_EAGAIN;
    pthread_mutex_lock(&w->reg_mu);
    pthread_mutex_lock(&w->mu);
    bool done = w->gen != seen_gen;
    pthread_mutex_unlock(&w->mu);
    if (done) {
        pthread_mutex_unlock(&w->reg_mu);
        return 0;
    }
    struct agent_backoff b;
    vk__agent_backoff_init(&b, AGENT_BACKOFF_MAX_MS, seed_for(w, 1000));
    while (!atomic_load(&w->stopping) && atomic_load(&w->stop_requests) == 0) {
        json_t *body = register_body(w);
        json_t *ans = NULL;
        long status = 0;
        struct vk_err err;
        vk_err_clear(&err);
        int r = vk__agent_auth(cl, w->reg_token);
        if (r == 0 && body)
            r = vk_http_client_json(cl, "POST", "/api/v1/workers/register", body, 10000, &status,
                                    &ans, &err);
        else
            r = vk_err_set(&err, VK_ENOMEM, "out of memory");
        (void)vk__agent_auth(cl, NULL);
        json_decref(body);
        char id[AGENT_MAX_ID + 1], token[VK_AUTH_TOKEN_MAX];
        int interval = 5;
        if (r == 0 && status == 200 && register_answer(ans, id, &interval, token)) {
            json_decref(ans);
            pthread_mutex_lock(&w->mu);
            memcpy(w->worker_id, id, sizeof(id));
            memcpy(w->token, token, sizeof(token));
            vk_auth_wipe(token, sizeof(token));
            w->gen++;
            w->hb_interval_s = interval;
            pthread_cond_broadcast(&w->cond);
            pthread_mutex_unlock(&w->mu);
            atomic_fetch_add(&w->st_registrations, 1);
            char iv[16];
            snprintf(iv, sizeof(iv), "%d", interval);
            vk_log_write(VK_LOG_INFO, AGENT_COMPONENT, seen_gen ? "registered again" : "registered",
                         "worker_id", id, "name", w->name, "machine_group", w->groups[0],
                         "heartbeat_interval_s", iv, NULL);
            rc = 0;
            break;
        }
        char why[300];
        if (r != 0) {
            snprintf(why, sizeof(why), "%s", err.msg);
        } else {
            json_t *m = json_object_get(ans, "message");
            snprintf(why, sizeof(why), "status %ld%s%s", status, json_is_string(m) ? ": " : "",
                     json_is_string(m) ? json_string_value(m) : "");
        }
        json_decref(ans);
        if (r == 0 && (status == 401 || status == 403)) {
            /* A missing, wrong, used-up or too narrow token stays so: do not retry. */
            char hint[sizeof(why) + 128];
            snprintf(hint, sizeof(hint), "registration refused (%s); %s", why,
                     w->reg_token ? "check the registration token and its machine groups"
                                  : "this server needs a registration token: "
                                    "--registration-token-file or $VULCAN_REGISTRATION_TOKEN");
            vk__agent_fatal(w, hint);
            break;
        }
        int64_t delay = vk__agent_backoff_next(&b);
        char att[16], in[24];
        snprintf(att, sizeof(att), "%u", b.failures);
        snprintf(in, sizeof(in), "%lldms", (long long)delay);
        vk_log_write(VK_LOG_WARN, AGENT_COMPONENT, "registration failed", "server", w->server_url,
                     "error", why, "attempt", att, "retry_in", in, NULL);
        if (seen_gen == 0) {
            /* The first registration runs on vk_worker_run()'s thread before
             * the supervisor: a stop request only shows on the pipe. */
            struct pollfd pfd = {.fd = w->stop_pipe[0], .events = POLLIN};
            (void)poll(&pfd, 1, (int)delay);
        } else if (vk__agent_sleep(w, delay, &w->stopping)) {
            break;
        }
    }
    pthread_mutex_unlock(&w->reg_mu);
    return rc;
}

/* ---------------------------------------------------------------- Heartbeat */

static json_t *heartbeat_body(struct vk_worker *w, const char *id)
{
    json_t *running = json_array();
    for (unsigned i = 0; i < w->concurrency; i++) {
        struct agent_slot *s = &w->slots[i];
        pthread_mutex_lock(&s->mu);
        if (s->fragment_id[0])
            json_array_append_new(running, json_string(s->fragment_id));
        pthread_mutex_unlock(&s->mu);
    }
    return json_pack("{s:s, s:o}", "worker_id", id, "running", running);
}

static void apply_cancels(struct vk_worker *w, json_t *list)
{
    size_t i;
    json_t *v;
    json_array_foreach(list, i, v)
    {
        if (!json_is_string(v))
            continue;
        const char *fid = json_string_value(v);
        for (unsigned k = 0; k < w->concurrency; k++) {
            struct agent_slot *s = &w->slots[k];
            pthread_mutex_lock(&s->mu);
            if (s->fragment_id[0] && strcmp(s->fragment_id, fid) == 0 && !s->cancelled_by_server) {
                s->cancelled_by_server = true;
                vk_exec_cancel_request(&s->cancel);
                vk_log_write(VK_LOG_INFO, AGENT_COMPONENT, "server cancelled the fragment",
                             "fragment_id", fid, NULL);
            }
            pthread_mutex_unlock(&s->mu);
        }
    }
}

static void heartbeat_once(struct vk_worker *w, struct agent_backoff *fails)
{
    char id[AGENT_MAX_ID + 1];
    uint64_t gen = vk__agent_current(w, id);
    json_t *body = heartbeat_body(w, id);
    json_t *ans = NULL;
    long status = 0;
    struct vk_err err;
    vk_err_clear(&err);
    char token[VK_AUTH_TOKEN_MAX];
    vk__agent_token(w, token);
    int r = vk__agent_auth(w->hb_cl, token);
    vk_auth_wipe(token, sizeof(token));
    if (r == 0)
        r = vk_http_client_json(w->hb_cl, "POST", "/api/v1/workers/heartbeat", body, 10000, &status,
                                &ans, &err);
    json_decref(body);
    if (r == 0 && status == 401) {
        json_t *m = json_object_get(ans, "message");
        char why[300];
        snprintf(why, sizeof(why), "heartbeat refused: %s",
                 json_is_string(m) ? json_string_value(m) : "401");
        vk__agent_fatal(w, why);
    } else if (r != 0 || status >= 500) {
        /* Only the first failure of a streak is a warning: a server restart
         * would otherwise flood the log. */
        fails->failures++;
        char st[24];
        snprintf(st, sizeof(st), "%ld", status);
        vk_log_write(fails->failures == 1 ? VK_LOG_WARN : VK_LOG_DEBUG, AGENT_COMPONENT,
                     "heartbeat failed", "worker_id", id, "error", r != 0 ? err.msg : NULL,
                     "status", r == 0 ? st : NULL, NULL);
    } else if (status == 404 || status == 409) {
        vk_log_write(VK_LOG_WARN, AGENT_COMPONENT, "server forgot this worker; registering again",
                     "worker_id", id, NULL);
        fails->failures = 0;
        (void)vk__agent_register(w, w->hb_cl, gen);
    } else if (status == 200) {
        if (fails->failures > 0)
            vk_log_write(VK_LOG_INFO, AGENT_COMPONENT, "heartbeat ok again", "worker_id", id, NULL);
        fails->failures = 0;
        json_t *cancel = json_object_get(ans, "cancel");
        if (json_is_array(cancel))
            apply_cancels(w, cancel);
    } else {
        char st[24];
        snprintf(st, sizeof(st), "%ld", status);
        vk_log_write(VK_LOG_WARN, AGENT_COMPONENT, "heartbeat refused", "worker_id", id, "status",
                     st, NULL);
    }
    json_decref(ans);
}

static void *heartbeat_main(void *arg)
{
    struct vk_worker *w = arg;
    struct agent_backoff fails;
    vk__agent_backoff_init(&fails, 0, 1);
    pthread_mutex_lock(&w->mu);
    while (!w->hb_stop) {
        struct timespec until = vk_time_deadline((int64_t)w->hb_interval_s * 1000);
        while (!w->hb_stop) {
            if (pthread_cond_timedwait(&w->cond, &w->mu, &until) == ETIMEDOUT)
                break;
        }
        if (w->hb_stop)
            break;
        pthread_mutex_unlock(&w->mu);
        heartbeat_once(w, &fails);
        pthread_mutex_lock(&w->mu);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* ---------------------------------------------------------------- Lifecycle */

static int copy_opts(struct vk_worker *w, const struct vk_worker_opts *o, struct vk_err *err)
{
    if (!o->groups || o->ngroups == 0)
        return vk_err_set(err, VK_EINVAL, "a worker needs at least one machine group");
    if (o->ngroups > VK_WORKER_MAX_GROUPS)
        return vk_err_set(err, VK_EINVAL, "too many machine groups (at most %d)",
                          VK_WORKER_MAX_GROUPS);
    const char *url = o->server_url && *o->server_url ? o->server_url : VK_WORKER_DEFAULT_SERVER;
    if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
        return vk_err_set(err, VK_EINVAL, "server URL '%s' is not http:// or https://", url);
    if (o->concurrency > VK_WORKER_MAX_CONCURRENCY)
        return vk_err_set(err, VK_EINVAL, "concurrency %u above %d", o->concurrency,
                          VK_WORKER_MAX_CONCURRENCY);
    if (o->wait_s > VK_WORKER_MAX_WAIT_S)
        return vk_err_set(err, VK_EINVAL, "wait %u s above %d s", o->wait_s, VK_WORKER_MAX_WAIT_S);
    w->server_url = vk_mem_xstrdup(url);
    if (o->ca_file && *o->ca_file) {
        if (strlen(o->ca_file) > 4096)
            return vk_err_set(err, VK_EINVAL, "--ca-cert path longer than 4096 bytes");
        w->ca_file = vk_mem_xstrdup(o->ca_file);
    }
    w->groups = vk_mem_xcalloc(o->ngroups, sizeof(char *));
    w->ngroups = o->ngroups;
    for (size_t i = 0; i < o->ngroups; i++) {
        const char *g = o->groups[i];
        if (!g || !*g || strlen(g) > 255)
            return vk_err_set(err, VK_EINVAL, "machine group %zu is empty or too long", i + 1);
        w->groups[i] = vk_mem_xstrdup(g);
    }
    if (o->name && *o->name) {
        if (strlen(o->name) > VK_WORKER_MAX_NAME)
            return vk_err_set(err, VK_EINVAL, "worker name longer than %d bytes",
                              VK_WORKER_MAX_NAME);
        w->name = vk_mem_xstrdup(o->name);
    } else {
        char host[64] = "worker";
        if (gethostname(host, sizeof(host)) != 0)
            snprintf(host, sizeof(host), "worker");
        host[sizeof(host) - 1] = '\0';
        char name[96];
        snprintf(name, sizeof(name), "%s-%ld", host, (long)getpid());
        w->name = vk_mem_xstrdup(name);
    }
    w->version = vk_mem_xstrdup(o->version && *o->version ? o->version : VK_VERSION);
    w->concurrency = o->concurrency ? o->concurrency : 1;
    w->wait_s = o->wait_s ? o->wait_s : VK_WORKER_DEFAULT_WAIT_S;
    w->grace_ms = o->grace_ms == 0 ? VK_WORKER_DEFAULT_GRACE_MS : o->grace_ms < 0 ? 0 : o->grace_ms;
    w->default_timeout_ms =
        o->default_timeout_ms > 0 ? o->default_timeout_ms : VK_WORKER_DEFAULT_TIMEOUT_MS;
    w->output_cap = o->output_cap ? o->output_cap : VK_EXEC_DEFAULT_OUTPUT_CAP;
    w->memory_limit_bytes = o->memory_limit_bytes;
    w->pids_limit = o->pids_limit;
    w->cpu_millis = o->cpu_millis;
    w->keep_workspace = o->keep_workspace;
    w->no_network = o->no_network;
    if (o->registration_token && *o->registration_token) {
        size_t n = strlen(o->registration_token);
        if (n >= VK_AUTH_TOKEN_MAX || strncmp(o->registration_token, "vk_reg_", 7) != 0)
            return vk_err_set(err, VK_EINVAL,
                              "the registration token is not a vk_reg_ token of %d characters",
                              VK_AUTH_TOKEN_LEN);
        w->reg_token = vk_mem_xstrdup(o->registration_token);
    }
    return 0;
}

int vk_worker_new(const struct vk_worker_opts *opts, struct vk_worker **out, struct vk_err *err)
{
    *out = NULL;
    if (!opts)
        return vk_err_set(err, VK_EINVAL, "no worker options");
    struct vk_worker *w = vk_mem_xcalloc(1, sizeof(*w));
    w->stop_pipe[0] = w->stop_pipe[1] = -1;
    pthread_mutex_init(&w->reg_mu, NULL);
    pthread_mutex_init(&w->mu, NULL);
    vk_time_cond_init(&w->cond);
    w->hb_interval_s = 5;
    int rc = copy_opts(w, opts, err);
    if (rc != 0)
        goto fail;
    if (pipe2(w->stop_pipe, O_CLOEXEC | O_NONBLOCK) != 0) {
        rc = vk_err_errno(err, "pipe");
        goto fail;
    }
    struct vk_exec_config ec = {
        .work_dir = opts->work_dir && *opts->work_dir ? opts->work_dir : VK_WORKER_DEFAULT_WORK_DIR,
        .sandbox = opts->sandbox,
        .no_cgroups = opts->no_cgroups,
        .cgroups = opts->cgroups,
        .shell = opts->shell,
        .bind_ro = opts->bind_ro,
        .nbind_ro = opts->nbind_ro,
        .bind_rw = opts->bind_rw,
        .nbind_rw = opts->nbind_rw,
    };
    rc = vk_exec_env_init(&w->env, &ec, err);
    if (rc != 0) {
        memset(&w->env, 0, sizeof(w->env));
        goto fail;
    }
    /* Fail closed: a worker whose sandbox does not work refuses to start rather than run
     * fragments unsandboxed (issue 14 item 10); --sandbox none is the explicit choice. */
    if (w->env.default_sandbox != VK_EXEC_SANDBOX_NONE && !w->env.bwrap_ok) {
        rc = vk_err_set(err, VK_EPERM,
                        "no sandbox works on this host: %s. Install bubblewrap (apt-get install "
                        "bubblewrap) and allow unprivileged user namespaces "
                        "(sysctl kernel.unprivileged_userns_clone=1), or choose --sandbox none "
                        "on a host you trust with every workflow",
                        w->env.bwrap_why);
        goto fail;
    }
    /* Limits fail closed too: asked-for memory/pids/cpu limits without a writable cgroup
     * refuse the start; --cgroups never (no limits) is the explicit opt-out. */
    bool limits = w->memory_limit_bytes || w->pids_limit || w->cpu_millis;
    if (limits && w->env.cgroups != VK_EXEC_CGROUPS_NEVER &&
        w->env.cgroup_mode == VK_EXEC_CGROUP_NONE) {
        rc = vk_err_set(err, VK_EPERM,
                        "the memory, pids and cpu limits need cgroups, which do not work on "
                        "this host: %s. Run the worker as root or in a delegated writable "
                        "cgroup (docs/security.md), or choose --cgroups never (no limits) on "
                        "a host you trust with every workflow",
                        w->env.cgroup_why);
        goto fail;
    }
    w->slots = vk_mem_xcalloc(w->concurrency, sizeof(*w->slots));
    for (unsigned i = 0; i < w->concurrency; i++) {
        struct agent_slot *s = &w->slots[i];
        s->w = w;
        s->index = i;
        pthread_mutex_init(&s->mu, NULL);
        vk_time_cond_init(&s->cond);
        vk_exec_cancel_init(&s->cancel);
        vk_buf_init(&s->pending, (size_t)w->output_cap + AGENT_CHUNK_MAX);
        s->xslot = vk_exec_slot_new();
        rc = s->xslot ? 0 : vk_err_set(err, VK_ENOMEM, "out of memory");
        if (rc == 0)
            rc = vk__agent_client_new(w, &s->cl, err);
        if (rc == 0)
            rc = vk__agent_client_new(w, &s->log_cl, err);
        if (rc == 0)
            rc = vk__agent_poller_new(w->server_url, w->ca_file, &s->poller, err);
        if (rc != 0)
            goto fail;
    }
    rc = vk__agent_client_new(w, &w->main_cl, err);
    if (rc == 0)
        rc = vk__agent_client_new(w, &w->hb_cl, err);
    if (rc == 0)
        rc = vk__agent_telemetry_init(w, opts, err); /* agent_telemetry.c */
    if (rc != 0)
        goto fail;
    *out = w;
    return 0;
fail:
    vk_worker_free(w);
    return rc;
}

void vk_worker_free(struct vk_worker *w)
{
    if (!w)
        return;
    if (w->slots) {
        for (unsigned i = 0; i < w->concurrency; i++) {
            struct agent_slot *s = &w->slots[i];
            vk_http_client_free(s->cl);
            vk_http_client_free(s->log_cl);
            vk__agent_poller_free(s->poller);
            vk_exec_slot_free(s->xslot);
            vk_buf_release(&s->pending);
            pthread_mutex_destroy(&s->mu);
            pthread_cond_destroy(&s->cond);
        }
        vk_mem_free(w->slots);
    }
    vk_http_client_free(w->main_cl);
    vk_http_client_free(w->hb_cl);
    vk__agent_telemetry_free(w);
    vk_exec_env_release(&w->env);
    for (size_t i = 0; w->groups && i < w->ngroups; i++)
        vk_mem_free(w->groups[i]);
    vk_mem_free(w->groups);
    vk_mem_free(w->server_url);
    vk_mem_free(w->ca_file);
    vk_mem_free(w->name);
    vk_mem_free(w->version);
    if (w->reg_token) {
        vk_auth_wipe(w->reg_token, strlen(w->reg_token));
        vk_mem_free(w->reg_token);
    }
    vk_auth_wipe(w->token, sizeof(w->token));
    if (w->stop_pipe[0] >= 0)
        close(w->stop_pipe[0]);
    if (w->stop_pipe[1] >= 0)
        close(w->stop_pipe[1]);
    pthread_mutex_destroy(&w->reg_mu);
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cond);
    vk_mem_free(w);
}

void vk_worker_stop(struct vk_worker *w)
{
    int saved = errno;
    atomic_fetch_add(&w->stop_requests, 1);
    if (w->stop_pipe[1] >= 0) {
        ssize_t n = write(w->stop_pipe[1], "s", 1);
        (void)n;
    }
    errno = saved;
}

void vk_worker_get_stats(struct vk_worker *w, struct vk_worker_stats *out)
{
    out->registrations = atomic_load(&w->st_registrations);
    out->attempts_run = atomic_load(&w->st_attempts);
    out->results_posted = atomic_load(&w->st_results);
    out->handbacks = atomic_load(&w->st_handbacks);
    out->log_bytes_sent = atomic_load(&w->st_log_bytes);
}

void vk_worker_id(struct vk_worker *w, char *out, size_t cap)
{
    if (cap == 0)
        return;
    char id[AGENT_MAX_ID + 1];
    (void)vk__agent_current(w, id);
    snprintf(out, cap, "%s", id);
}

/* ---------------------------------------------------------------- Run */

static void drain_pipe(int fd)
{
    char buf[16];
    while (read(fd, buf, sizeof(buf)) > 0) {
    }
}

static void begin_stop(struct vk_worker *w)
{
    pthread_mutex_lock(&w->mu);
    atomic_store(&w->stopping, true);
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->mu);
}

static void deregister(struct vk_worker *w)
{
    char id[AGENT_MAX_ID + 1];
    (void)vk__agent_current(w, id);
    if (!id[0])
        return;
    if (atomic_load(&w->fatal))
        return; /* its credentials are refused: there is nobody to say goodbye to */
    json_t *body = json_pack("{s:s}", "worker_id", id);
    char token[VK_AUTH_TOKEN_MAX];
    vk__agent_token(w, token);
    if (vk__agent_auth(w->main_cl, token) != 0)
        vk_log_write(VK_LOG_WARN, AGENT_COMPONENT, "cannot set the worker token", NULL);
    vk_auth_wipe(token, sizeof(token));
    for (int tries = 0; tries < 3; tries++) {
        json_t *ans = NULL;
        long status = 0;
        struct vk_err err;
        vk_err_clear(&err);
        int r = vk_http_client_json(w->main_cl, "POST", "/api/v1/workers/deregister", body, 5000,
                                    &status, &ans, &err);
        json_decref(ans);
        if (r == 0 && status < 500) {
            char st[24];
            snprintf(st, sizeof(st), "%ld", status);
            vk_log_write(status / 100 == 2 ? VK_LOG_INFO : VK_LOG_WARN, AGENT_COMPONENT,
                         "deregistered", "worker_id", id, "status", st, NULL);
            break;
        }
        vk_log_write(VK_LOG_WARN, AGENT_COMPONENT, "deregistration failed", "worker_id", id,
                     "error", r != 0 ? err.msg : "server error", NULL);
        usleep(300000);
    }
    json_decref(body);
}

/* Grace expired: cancel every running attempt and mark it for hand-back. */
static void hand_back_running(struct vk_worker *w)
{
    for (unsigned i = 0; i < w->concurrency; i++) {
        struct agent_slot *s = &w->slots[i];
        pthread_mutex_lock(&s->mu);
        if (s->fragment_id[0] && !atomic_load(&s->handback)) {
            atomic_store(&s->handback, true);
            vk_exec_cancel_request(&s->cancel);
            vk_log_write(VK_LOG_INFO, AGENT_COMPONENT,
                         "grace period over; handing the fragment back", "fragment_id",
                         s->fragment_id, NULL);
        }
        pthread_mutex_unlock(&s->mu);
    }
}

static bool all_slots_done(struct vk_worker *w, unsigned started)
{
    for (unsigned i = 0; i < started; i++)
        if (!atomic_load(&w->slots[i].done))
            return false;
    return true;
}

/* Supervise until every slot thread has ended after a stop request. */
static void supervise(struct vk_worker *w, unsigned started)
{
    bool stopping = false;
    int64_t deadline_ns = 0;
    int seen = 0;
    for (;;) {
        struct pollfd pfd = {.fd = w->stop_pipe[0], .events = POLLIN};
        int r = poll(&pfd, 1, stopping ? 100 : 1000);
        if (r > 0)
            drain_pipe(w->stop_pipe[0]);
        int n = atomic_load(&w->stop_requests);
        if (n > seen) {
            int64_t now = vk_time_mono_ns();
            if (!stopping) {
                stopping = true;
                deadline_ns = now + w->grace_ms * 1000000;
                char g[24];
                snprintf(g, sizeof(g), "%lldms", (long long)w->grace_ms);
                vk_log_write(VK_LOG_INFO, AGENT_COMPONENT,
                             "stopping: no new work; waiting for running "
                             "fragments",
                             "grace", g, NULL);
                begin_stop(w);
            }
            if (n >= 2 && seen < 2) {
                deadline_ns = now;
                vk_log_write(VK_LOG_INFO, AGENT_COMPONENT, "second stop request: no grace", NULL);
            }
            seen = n;
        }
        if (!stopping)
            continue;
        if (all_slots_done(w, started))
            break;
        if (vk_time_mono_ns() >= deadline_ns)
            hand_back_running(w);
    }
}

int vk_worker_run(struct vk_worker *w, struct vk_err *err)
{
    if (atomic_exchange(&w->ran, true))
        return vk_err_set(err, VK_EINVAL, "vk_worker_run called twice");
    char sb[16], mem[24], pids[16], cpus[16];
    snprintf(sb, sizeof(sb), "%u", w->concurrency);
    snprintf(mem, sizeof(mem), "%llu", (unsigned long long)w->memory_limit_bytes);
    snprintf(pids, sizeof(pids), "%u", w->pids_limit);
    snprintf(cpus, sizeof(cpus), "%u", w->cpu_millis);
    bool nolimit = w->env.cgroups == VK_EXEC_CGROUPS_NEVER;
    vk_log_write(VK_LOG_INFO, AGENT_COMPONENT, "worker starting", "server", w->server_url, "name",
                 w->name, "machine_group", w->groups[0], "concurrency", sb, "sandbox",
                 w->env.bwrap_ok && w->env.default_sandbox != VK_EXEC_SANDBOX_NONE ? "bwrap"
                                                                                   : "none",
                 "work_dir", w->env.work_dir, "memory_limit",
                 nolimit || !w->memory_limit_bytes ? "none" : mem, "pids_limit",
                 nolimit || !w->pids_limit ? "none" : pids, "cpu_millis",
                 nolimit || !w->cpu_millis ? "none" : cpus, NULL);
    if (vk__agent_register(w, w->main_cl, 0) != 0) {
        if (atomic_load(&w->fatal))
            return vk_err_set(err, VK_EAUTH, "%s", w->fatal_why);
        vk_log_write(VK_LOG_INFO, AGENT_COMPONENT, "stopped before registering", NULL);
        return 0;
    }
    int rc = 0;
    pthread_t hb;
    bool hb_started = vk__agent_thread_start(&hb, heartbeat_main, w) == 0;
    if (!hb_started)
        rc = vk_err_set(err, VK_EIO, "cannot start the heartbeat thread");
    unsigned started = 0;
    for (; rc == 0 && started < w->concurrency; started++) {
        struct agent_slot *s = &w->slots[started];
        if (vk__agent_thread_start(&s->thread, vk__agent_slot_main, s) != 0) {
            rc = vk_err_set(err, VK_EIO, "cannot start slot thread %u", started);
            break;
        }
        s->started = true;
    }
    if (rc != 0)
        vk_worker_stop(w);
    supervise(w, started);
    for (unsigned i = 0; i < started; i++)
        pthread_join(w->slots[i].thread, NULL);
    if (hb_started) {
        pthread_mutex_lock(&w->mu);
        w->hb_stop = true;
        pthread_cond_broadcast(&w->cond);
        pthread_mutex_unlock(&w->mu);
        pthread_join(hb, NULL);
    }
    deregister(w);
    vk_log_write(VK_LOG_INFO, AGENT_COMPONENT, "worker stopped", NULL);
    if (rc == 0 && atomic_load(&w->fatal))
        rc = vk_err_set(err, VK_EAUTH, "%s", w->fatal_why);
    return rc;
}
