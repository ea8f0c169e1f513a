/* API lifecycle, shared reply helpers and health routes. */
#include "api_int.h"

#include <string.h>
#include <time.h>

json_t *vk__api_str(const char *s)
{
    return s ? json_string(s) : json_null();
}

json_t *vk__api_time(int64_t ms)
{
    if (ms <= 0)
        return json_null();
    char buf[VK_TIME_LEN];
    vk_time_format(ms, buf);
    return json_string(buf);
}

json_t *vk__api_str_array(const char *const *items, size_t n)
{
    json_t *a = json_array();
    int bad = 0;
    for (size_t i = 0; i < n; i++)
        bad |= json_array_append_new(a, json_string(items[i]));
    return vk_http_json_checked(a, bad);
}

const char *vk__api_get_str(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

int vk__api_reply_err(struct vk_http_req *req, const struct vk_err *err, int code)
{
    const char *name = NULL;
    int status = vk_err_http(code, &name);
    vk_http_reply_error(req, status, name, "%s", err && err->msg[0] ? err->msg : vk_err_name(code));
    return status;
}

static void h_health(struct vk_http_req *req, void *ctx)
{
    json_t *o = json_pack("{s:s, s:s}", "status", "ok", "version", VK_VERSION);
    vk_http_reply_json(req, 200, o);
}

/* Readiness: the store answers. */
static void h_health_ready(struct vk_http_req *req, void *ctx)
{
    struct vk_api *api = ctx;
    int version = 0;
    struct vk_err err;
    vk_err_clear(&err);
    if (vk_store_schema_version(api->opts.store, &version, &err) < 0) {
        vk_http_reply_error(req, 503, "store_unavailable", "%s", err.msg);
        return;
    }
    /* Which singletons this replica leads (DESIGN §13): a balancer or an operator can
     * tell where the reaper and the cron scheduler run. */
    json_t *leads = json_array();
    for (int s = 0; leads && s < VK_ORCH_SINGLETONS; s++)
        if (vk_orch_leads(api->opts.orch, (enum vk_orch_singleton)s) &&
            json_array_append_new(leads, json_string(vk_orch_singleton_name(s))) < 0)
            break;
    json_t *o = json_pack("{s:s, s:s, s:i, s:s, s:o*}", "status", "ready", "store",
                          vk_store_backend(api->opts.store), "schema_version", version, "replica",
                          vk_orch_holder(api->opts.orch), "leads", leads);
    vk_http_reply_json(req, 200, o);
}

int vk_api_new(const struct vk_api_opts *opts, struct vk_api **out, struct vk_err *err)
{
    if (!opts || !opts->listen || !opts->store || !opts->orch)
        return vk_err_set(err, VK_EINVAL,
                          "the API needs a listen address, a store and an "
                          "orchestrator");
    struct vk_api *api = vk_mem_calloc(1, sizeof(*api));
    if (!api)
        return vk_err_set(err, VK_ENOMEM, "out of memory");
    api->opts = *opts;
    if (api->opts.heartbeat_interval_s <= 0)
        api->opts.heartbeat_interval_s = 5;
    if (api->opts.max_wait_s <= 0)
        api->opts.max_wait_s = 60;
    pthread_mutex_init(&api->lock, NULL);
    pthread_mutex_init(&api->resolve_lock, NULL);
    pthread_cond_init(&api->resolve_cond, NULL);
    vk__api_mask_init(api);
    struct vk_http_server_opts ho = {.listen = opts->listen,
                                     .threads = opts->http_threads,
                                     .connection_limit = opts->max_connections,
                                     .per_addr_limit = opts->max_connections_per_address,
                                     .req_timeout_s = opts->request_timeout_s,
                                     .gate = vk__api_gate,
                                     .gate_ctx = api,
                                     .tls_cert_pem = opts->tls_cert_pem,
                                     .tls_key_pem = opts->tls_key_pem};
    api->opts.tls = opts->tls_cert_pem != NULL;
    api->opts.tls_cert_pem = api->opts.tls_key_pem = NULL; /* borrowed: not kept */
    if (opts->metrics || opts->audit) {
        ho.on_complete = vk__api_http_complete;
        ho.on_complete_ctx = api;
    }
    pthread_mutex_init(&api->treq_lock, NULL);
    vk_time_cond_init(&api->treq_cond);
    bool json_api = !opts->no_api;
    int rc = vk_http_server_new(&ho, &api->http, err);
    if (rc == 0)
        rc = vk_http_route(api->http, "GET", "/health", h_health, api, NULL, err);
    if (rc == 0)
        rc = vk_http_route(api->http, "GET", "/health/ready", h_health_ready, api, NULL, err);
    if (rc == 0 && json_api)
        rc = vk__api_worker_routes(api, err);
    if (rc == 0 && json_api)
        rc = vk__api_chain_routes(api, err);
    if (rc == 0 && json_api)
        rc = vk__api_log_routes(api, err);
    if (rc == 0 && json_api)
        rc = vk__api_read_routes(api, err);
    if (rc == 0 && json_api)
        rc = vk__api_badge_routes(api, err);
    if (rc == 0 && json_api)
        rc = vk__api_session_routes(api, err); /* api_session.c */
    if (rc == 0 && json_api)
        rc = vk__api_oidc_routes(api, err); /* api_oidc.c */
    if (rc == 0 && json_api)
        rc = vk__api_oidc_init(api, err);
    if (rc == 0 && json_api)
        rc = vk__api_sso_routes(api, err); /* api_sso.c */
    if (rc == 0 && json_api)
        rc = vk__api_sso_init(api, err);
    if (rc == 0 && json_api)
        rc = vk__api_saml_routes(api, err); /* api_saml.c */
    if (rc == 0 && json_api)
        rc = vk__api_saml_init(api, err);
    if (rc == 0 && json_api)
        rc = vk__api_openapi_routes(api, err);
    if (rc == 0 && !opts->no_console)
        rc = vk__api_console_routes(api, err);
    if (rc == 0 && json_api)
        rc = vk__api_repo_routes(api, err); /* api_repos.c */
    if (rc == 0 && json_api)
        rc = vk__api_hook_routes(api, err); /* api_hooks.c */
    if (rc == 0 && json_api)
        rc = vk__api_treq_routes(api, err); /* api_treq.c */
    if (rc == 0 && json_api)
        rc = vk__api_identity_routes(api, err); /* api_identity.c */
    if (rc == 0 && json_api)
        rc = vk__api_secret_routes(api, err); /* api_secrets.c */
    if (rc == 0 && json_api)
        rc = vk__api_audit_routes(api, err); /* api_audit.c */
    if (rc == 0)
        rc = vk__api_metrics_routes(api, err); /* api_metrics.c */
    if (rc == 0)
        rc = vk__api_auth_init(api, err); /* api_auth.c: after every route */
    if (rc < 0) {
        vk_api_free(api);
        return rc;
    }
    if (opts->triggers)
        vk_triggers_set_done_hook(opts->triggers, vk__api_treq_done, api);
    *out = api;
    return 0;
}

int vk_api_start(struct vk_api *api, struct vk_err *err)
{
    int rc = vk_http_server_start(api->http, err);
    if (rc == 0)
        vk__api_oidc_start(api);
    if (rc == 0)
        vk__api_sso_start(api);
    if (rc == 0)
        rc = vk__api_treq_start(api, err); /* outcomes of other replicas' trigger services */
    return rc;
}

int vk_api_tls_reload(struct vk_api *api, const char *cert_pem, const char *key_pem,
                      struct vk_err *err)
{
    return vk_http_server_tls_reload(api->http, cert_pem, key_pem, err);
}

uint16_t vk_api_port(const struct vk_api *api)
{
    return vk_http_server_port(api->http);
}

void vk_api_stop(struct vk_api *api)
{
    vk__api_logs_stop(api); /* followers hold stream handles: end them first */
    vk__api_treq_stop(api);
    vk__api_resolve_wait(api); /* claims being answered after a provider */
    if (api->http)
        vk_http_server_stop(api->http); /* waiting clients get their timeout answer */
}

void vk_api_free(struct vk_api *api)
{
    if (!api)
        return;
    vk__api_logs_stop(api);
    vk__api_treq_stop(api);
    vk__api_sso_stop(api); /* its suspended requests are answered before the server stops */
    vk__api_resolve_wait(api);
    vk_http_server_free(api->http); /* stops first: waiters are completed and freed */
    vk__api_logs_release(api);
    vk__api_auth_release(api);
    vk__api_oidc_release(api);
    vk__api_sso_release(api);
    vk__api_saml_release(api);
    vk__api_mask_release(api);
    pthread_cond_destroy(&api->treq_cond);
    pthread_mutex_destroy(&api->treq_lock);
    pthread_cond_destroy(&api->resolve_cond);
    pthread_mutex_destroy(&api->resolve_lock);
    pthread_mutex_destroy(&api->lock);
    vk_mem_free(api);
}
