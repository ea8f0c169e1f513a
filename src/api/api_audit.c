/*
 * The audit log's API side (docs/audit.md): what each request did, recorded from the
 * completion hook, and GET /api/v1/orgs/{org}/audit for admins.
 *
 * Recorded: every state-changing request (POST, PUT, PATCH, DELETE, and the GETs that log
 * someone in) with its outcome, except the worker protocol's own traffic (claims, logs,
 * results, heartbeats: execution, recorded as chains), and every request refused with 401
 * or 403. Never a body, a token or a secret value: the actor, the client address, the
 * action, the path, the outcome and {method, route, status}.
 */
#include "api_int.h"
#include "vulcan/audit.h"

#include <stdio.h>
#include <string.h>

/* The action of a known route. `quiet`: its successes are not recorded (worker protocol, or
 * reads); `handler`: its handler records it (it knows who). */
static const struct {
    const char *method, *pattern, *action;
    bool quiet, handler;
} actions[] = {
    {"POST", "/api/v1/login", "auth.login", false, true},
    {"POST", "/api/v1/logout", "auth.logout", false, false},
    {"GET", "/api/v1/sso/oidc/callback", "auth.sso_login", false, false},
    {"POST", "/api/v1/sso/saml/acs", "auth.sso_login", false, false},
    {"POST", "/api/v1/chains/{id}/cancel", "chain.cancel", false, false},
    {"POST", "/api/v1/chains/{id}/rerun", "chain.rerun", false, false},
    {"POST", "/api/v1/repos/{id}/trigger", "chain.trigger", false, false},
    {"POST", "/api/v1/parse", "chain.create", false, false}, /* parses and submits */
    {"POST", "/api/v1/validate", "workflow.validate", true, false},
    {"POST", "/api/v1/tokens", "token.create", false, false},
    {"DELETE", "/api/v1/tokens/{id}", "token.revoke", false, false},
    {"PUT", "/api/v1/orgs/{org}/teams/{team}/members/{login}", "team.member_add", false, false},
    {"DELETE", "/api/v1/orgs/{org}/teams/{team}/members/{login}", "team.member_remove", false,
     false},
    {"POST", "/api/v1/orgs/{org}/registration-tokens", "worker_token.create", false, false},
    {"DELETE", "/api/v1/orgs/{org}/registration-tokens/{id}", "worker_token.revoke", false, false},
    {"PUT", "/api/v1/orgs/{org}/secrets/{name}", "secret.update", false, false},
    {"PUT", "/api/v1/repos/{id}/secrets/{name}", "secret.update", false, false},
    {"POST", "/hooks/github", "webhook.receive", false, false},
    {"POST", "/hooks/gitlab", "webhook.receive", false, false},
    {"POST", "/hooks/gitea", "webhook.receive", false, false},
    {"POST", "/hooks/bitbucket", "webhook.receive", false, false},
    {"POST", "/hooks/generic/{repo_id}", "webhook.receive", false, false},
    {"POST", "/api/v1/workers/register", "worker.register", false, false},
    {"POST", "/api/v1/workers/deregister", "worker.deregister", false, false},
    {"POST", "/api/v1/workers/{id}/revoke", "worker.revoke", false, false},
    {"POST", "/api/v1/workers/heartbeat", "worker.heartbeat", true, false},
    {"POST", "/api/v1/work/request", "work.claim", true, false},
    {"POST", "/api/v1/work/{id}/log", "work.log", true, false},
    {"POST", "/api/v1/work/result", "work.result", true, false},
};

/* The generic action of a route, from its fixed segments (after /api/v1) and parameters:
 *   …/NOUNS/{p}            → noun.<verb of the method>   DELETE /repos/{id}/secrets/{name}
 *   …/NOUNS/{p}/ACTION     → noun.action                 POST /repos/{id}/refresh
 *   …/{p}/NOUNS, …/NOUNS   → noun.<verb of the method>   POST /orgs/{org}/teams
 * where a last segment ending in 's' is a collection, anything else an action; "repos" →
 * "repo", '-' → '_'. The verb of POST is create, of DELETE delete, else update. */
static void generic_action(const char *method, const char *pattern, char *out, size_t cap)
{
    struct seg {
        const char *p;
        size_t n;
        bool param;
    } seg[16];
    memset(seg, 0, sizeof(seg));
    size_t ns = 0;
    const char *p = strncmp(pattern, "/api/v1/", 8) == 0 ? pattern + 8 : pattern;
    while (*p && ns < VK_ARRAY_LEN(seg)) {
        while (*p == '/')
            p++;
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n) {
            struct seg one = {p, n, p[0] == '{'};
            seg[ns++] = one;
        }
        p += n;
    }
    const char *verb = strcmp(method, "POST") == 0     ? "create"
                       : strcmp(method, "DELETE") == 0 ? "delete"
                                                       : "update";
    char resource[48] = "api", action[48];
    snprintf(action, sizeof(action), "%s", verb);
    size_t last = ns ? ns - 1 : 0;
    if (ns && !seg[last].param && seg[last].p[seg[last].n - 1] != 's' && ns >= 2 &&
        seg[last - 1].param) {
        snprintf(action, sizeof(action), "%.*s", (int)seg[last].n, seg[last].p);
        last--; /* the noun is the one before the parameter */
    }
    for (size_t i = ns ? last + 1 : 0; i-- > 0;) {
        if (!seg[i].param) {
            snprintf(resource, sizeof(resource), "%.*s", (int)seg[i].n, seg[i].p);
            break;
        }
    }
    size_t rn = strlen(resource);
    if (rn > 2 && resource[rn - 1] == 's' && resource[rn - 2] != 's' && resource[rn - 2] != 'u')
        resource[rn - 1] = '\0';
    for (char *q = resource; *q; q++)
        if (*q == '-')
            *q = '_';
    snprintf(out, cap, "%s.%s", resource, action);
}

static void actor_of(const struct vk__api_principal *p, char *out, size_t cap)
{
    if (!p) {
        snprintf(out, cap, "anonymous");
        return;
    }
    switch (p->cred.kind) {
    case VK_AUTH_WORKER:
        snprintf(out, cap, "worker:%s", p->cred.worker_id);
        break;
    case VK_AUTH_JOB:
        snprintf(out, cap, "job:%s", p->cred.fragment_id);
        break;
    case VK_AUTH_REGISTRATION:
        snprintf(out, cap, "registration-token:%s", p->cred.id);
        break;
    default:
        snprintf(out, cap, "user:%s", p->login ? p->login : p->user_id);
        break;
    }
}

static const char *outcome_of(int status)
{
    if (status == 401)
        return "unauthenticated";
    if (status == 403)
        return "denied";
    return status < 400 ? "success" : "failure";
}

/* The org a record goes to: the request's (the gate found it), else the default org. */
static const char *org_of(const struct vk_api *api, const struct vk__api_principal *p)
{
    return p && p->org_id[0] ? p->org_id : api->default_org;
}

static void record(struct vk_api *api, const struct vk_http_req *req, const char *action,
                   const char *actor, const char *outcome, json_t *details)
{
    const struct vk__api_principal *p = vk_http_req_principal(req);
    char who[160];
    if (!actor) {
        actor_of(p, who, sizeof(who));
        actor = who;
    }
    char trace[48] = "";
    const char *tp = vk_http_traceparent(req);
    if (tp && strlen(tp) >= 35) /* "00-<32 hex trace id>-…" */
        snprintf(trace, sizeof(trace), "%.32s", tp + 3);
    if (p && p->cred.id[0] && !json_object_get(details, "credential") && details)
        json_object_set_new(details, "credential", json_string(p->cred.id));
    struct vk_audit_event ev = {.org = org_of(api, p),
                                .actor = actor,
                                .source = vk_http_remote_addr(req),
                                .action = action,
                                .target = vk_http_path(req),
                                .outcome = outcome,
                                .details = details,
                                .trace_id = trace[0] ? trace : NULL};
    vk_audit_record(api->opts.audit, &ev);
}

void vk__api_audit_request(struct vk_api *api, const struct vk_http_req *req, int status)
{
    if (!api->opts.audit)
        return;
    const char *method = vk_http_method(req), *pattern = vk_http_route_pattern(req);
    if (!method || !pattern || !*pattern)
        return; /* no route: nothing was done */
    bool changes = strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
                   strcmp(method, "PATCH") == 0 || strcmp(method, "DELETE") == 0;
    const char *action = NULL;
    bool quiet = !changes;
    for (size_t i = 0; i < VK_ARRAY_LEN(actions) && !action; i++) {
        if (strcmp(actions[i].method, method) == 0 && strcmp(actions[i].pattern, pattern) == 0) {
            if (actions[i].handler)
                return;
            action = actions[i].action;
            quiet = actions[i].quiet;
        }
    }
    bool refused = status == 401 || status == 403;
    if (quiet && !refused)
        return;
    char generic[96];
    if (!action && changes) {
        generic_action(method, pattern, generic, sizeof(generic));
        action = generic;
    }
    if (!action)
        action = status == 401 ? "auth.unauthenticated" : "auth.denied";
    json_t *d = json_pack("{s:s, s:s, s:i}", "method", method, "route", pattern, "status", status);
    record(api, req, action, NULL, outcome_of(status), d);
    json_decref(d);
}

void vk__api_audit(struct vk_api *api, const struct vk_http_req *req, const char *action,
                   const char *actor, const char *outcome, json_t *details)
{
    if (!api->opts.audit)
        return;
    json_t *d = details ? json_deep_copy(details) : json_object();
    if (d && !json_object_get(d, "route"))
        json_object_set_new(d, "route", json_string(vk_http_route_pattern(req)));
    record(api, req, action, actor, outcome, d);
    json_decref(d);
}

/* ---------------------------------------------------------------- GET …/audit */

/* A time filter: RFC 3339 or milliseconds since the epoch. */
static bool time_param(struct vk_http_req *req, const char *name, int64_t *out)
{
    const char *v = vk_http_query(req, name);
    *out = 0;
    if (!v)
        return true;
    char *end = NULL;
    long long ms = strtoll(v, &end, 10);
    if (*v && end && !*end && ms >= 0) {
        *out = ms;
        return true;
    }
    if (vk_time_parse(v, out) == 0)
        return true;
    vk_http_reply_error(req, 400, "bad_request",
                        "'%s' is a time (2026-01-31T12:00:00Z) or milliseconds since 1970", name);
    return false;
}

static bool seq_param(struct vk_http_req *req, const char *name, int64_t max, int64_t *out)
{
    const char *v = vk_http_query(req, name);
    *out = 0;
    if (!v)
        return true;
    char *end = NULL;
    long long x = strtoll(v, &end, 10);
    if (!*v || *end || x < 0 || x > max) {
        vk_http_reply_error(req, 400, "bad_request", "'%s' must be an integer from 0 to %lld", name,
                            (long long)max);
        return false;
    }
    *out = x;
    return true;
}

static void h_list(struct vk_http_req *req, void *ctx)
{
    struct vk_api *api = ctx;
    struct vk_err err;
    vk_err_clear(&err);
    char org[VK_UUID_LEN];
    const struct vk__api_principal *p = vk_http_req_principal(req);
    int rc = 0;
    if (p && p->org_id[0])
        memcpy(org, p->org_id, VK_UUID_LEN);
    else
        rc = vk__api_request_org(api, req, org, &err);
    if (rc < 0) {
        vk__api_reply_err(req, &err, rc);
        return;
    }
    struct vk_store_audit_filter f = {.actor = vk_http_query(req, "actor"),
                                      .action = vk_http_query(req, "action"),
                                      .target = vk_http_query(req, "target")};
    int64_t limit = 0;
    const char *order = vk_http_query(req, "order");
    if (order && strcmp(order, "asc") != 0 && strcmp(order, "desc") != 0) {
        vk_http_reply_error(req, 400, "bad_request", "'order' is asc or desc");
        return;
    }
    f.newest_first = !order || strcmp(order, "desc") == 0;
    if (!time_param(req, "since", &f.since) || !time_param(req, "until", &f.until) ||
        !seq_param(req, "after", INT64_MAX, &f.after_seq) ||
        !seq_param(req, "before", INT64_MAX, &f.before_seq) ||
        !seq_param(req, "limit", VK_STORE_AUDIT_MAX_LIST, &limit))
        return;
    f.limit = limit ? (size_t)limit : 100;
    struct vk_pool *pool = vk_http_pool(req);
    struct vk_store_audit_rec *recs = NULL;
    size_t n = 0;
    rc = vk_store_audit_list(api->opts.store, org, &f, pool, &recs, &n, &err);
    /* the checkpoints among the records, for an export that verifies (ascending pages) */
    struct vk_store_audit_checkpoint *cps = NULL;
    size_t ncp = 0;
    bool with_cps = vk_http_query(req, "checkpoints") != NULL && !f.newest_first;
    if (rc == 0 && with_cps && n)
        rc = vk_store_audit_checkpoints(api->opts.store, org, f.after_seq, 0, pool, &cps, &ncp,
                                        &err);
    if (rc < 0) {
        vk__api_reply_err(req, &err, rc);
        return;
    }
    json_t *a = json_array(), *c = json_array();
    int bad = !a || !c;
    for (size_t i = 0; i < n && !bad; i++)
        bad |= json_array_append_new(a, vk_audit_rec_json(&recs[i]));
    for (size_t i = 0; i < ncp && !bad && cps[i].seq <= recs[n - 1].seq; i++)
        bad |= json_array_append_new(c, vk_audit_checkpoint_json(&cps[i]));
    json_t *o = json_object();
    bad |= !o || json_object_set_new(o, "records", a);
    a = NULL;
    if (with_cps)
        bad |= json_object_set_new(o, "checkpoints", c);
    else
        json_decref(c);
    if (n == f.limit)
        bad |= json_object_set_new(o, f.newest_first ? "next_before" : "next_after",
                                   json_integer(recs[n - 1].seq));
    vk_http_reply_json(req, 200, vk_http_json_checked(o, bad));
}

int vk__api_audit_routes(struct vk_api *api, struct vk_err *err)
{
    return vk_http_route(api->http, "GET", "/api/v1/orgs/{org}/audit", h_list, api, NULL, err);
}
