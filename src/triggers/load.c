/*
 * load.c — what webhooks, manual runs and schedules share: read a repository's workflow
 * files at a commit out of the server's git mirror cache, load them (imports read from
 * git at the same commit; URL imports only when the repository allows them), and start
 * one chain per workflow whose triggers match, or a failed chain for a workflow that
 * does not load.
 */
#include "service_int.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

int vk__trig_mirror_open(struct vk_triggers_service *svc, const char *url,
                         struct vk_git_mirror **out, struct vk_err *err)
{
    struct vk_git_opts o = {.policy = svc->opts.url_policy};
    return vk_git_mirror_open(svc->mirrors, url, &o, out, err);
}

/* ---------------------------------------------------------------- Loading */

struct git_fetch {
    struct vk_git_mirror *m;
    const char *sha;
    bool allow_urls;
    const struct vk_git_url_policy *policy; /* may be NULL */
};

static const char *addr_check(void *ctx, const struct sockaddr *sa, size_t len)
{
    (void)len;
    return vk_git_addr_refused(ctx, sa);
}

/*
 * Imports of a workflow read from a repository: relative (and absolute, and file://) paths
 * are files of the repository at the same commit, never files of the server; URLs only
 * when the repository allows them.
 */
static int git_fetch(void *ctx, const struct vk_wf_fetch_req *req, struct vk_buf *out,
                     struct vk_err *err)
{
    struct git_fetch *g = ctx;
    if (req->is_url) {
        if (!g->allow_urls)
            return vk_err_set(err, VK_EPERM,
                              "URL imports are not allowed for this repository "
                              "(allow_url_imports is off)");
        if (!g->policy)
            return vk_wf_fetch_default(NULL, req, out, err);
        /* the URL's form first; then every address libcurl connects to, on redirects too */
        struct vk_git_url_target t;
        int rc = vk_git_url_check_static(g->policy, req->location, &t, err);
        if (rc)
            return rc;
        struct vk_wf_fetch_req r = *req;
        if (!(g->policy->schemes & VK_GIT_SCHEME_HTTP))
            r.allow_http = false;
        return vk_wf_fetch_url_checked(&r, addr_check, (void *)g->policy, out, err);
    }
    const char *p = req->location;
    while (*p == '/')
        p++;
    if (!*p)
        return vk_err_set(err, VK_ENOTFOUND, "no such file '%s'", req->location);
    return vk_git_read_file(g->m, g->sha, p, out, err);
}

void vk__trig_set_release(struct vk__trig_set *set)
{
    for (size_t i = 0; i < set->n; i++) {
        vk_workflow_free(set->items[i].wf);
        vk_buf_release(&set->items[i].text);
        vk_mem_free(set->items[i].error);
        vk_mem_free(set->items[i].file);
    }
    vk_mem_free(set->items);
    vk_mem_free(set->commit_message);
    vk_mem_free(set->commit_author);
    memset(set, 0, sizeof(*set));
}

bool vk__trig_skip_marker(const char *message, char which[16])
{
    static const char *const markers[] = {"[skip ci]", "[ci skip]"};
    for (const char *p = message; p && *p; p++) {
        for (size_t i = 0; i < VK_ARRAY_LEN(markers); i++) {
            if (strncasecmp(p, markers[i], strlen(markers[i])) == 0) {
                snprintf(which, 16, "%s", markers[i]);
                return true;
            }
        }
    }
    return false;
}

/* Load the workflow `f` (read at `sha`) into `it`. */
static int load_one(struct vk_git_mirror *m, const struct vk_store_repo *repo, const char *sha,
                    const struct vk_git_file *f, struct vk__trig_item *it, struct vk_err *err)
{
    const char *file = f->path;
    memset(it, 0, sizeof(*it));
    it->file = vk_mem_xstrdup(file);
    vk_buf_init(&it->text, VK_GIT_MAX_BLOB);
    if (f->len && vk_buf_add(&it->text, f->data, f->len) < 0)
        return vk_err_set(err, VK_ETOOBIG, "file '%s' is larger than %u bytes", file,
                          VK_GIT_MAX_BLOB);
    /* Relative imports resolve against the file's directory inside the repository. */
    char base[4096];
    const char *slash = strrchr(file, '/');
    snprintf(base, sizeof(base), "/%.*s", slash ? (int)(slash - file) : 0, file);
    struct git_fetch gf = {.m = m,
                           .sha = sha,
                           .allow_urls = repo->allow_url_imports,
                           .policy = vk_git_mirror_policy(m)};
    struct vk_wf_options o = {.base_path = base, .fetch = git_fetch, .fetch_ctx = &gf};
    struct vk_wf_error we;
    vk_wf_error_init(&we);
    int rc = vk_workflow_load_buffer(it->text.data, it->text.len, file, &o, &it->wf, &we);
    if (rc) {
        if (rc == VK_ENOMEM) {
            vk_wf_error_release(&we);
            return vk_err_set(err, rc, "out of memory");
        }
        const char *msg = we.rendered ? we.rendered : we.msg;
        it->error = vk_mem_xstrdup(msg);
        vk_wf_error_release(&we);
    }
    return 0;
}

int vk__trig_load(struct vk_git_mirror *m, const struct vk_store_repo *repo, const char *sha,
                  const char *only_file, struct vk__trig_set *set, struct vk_err *err)
{
    memset(set, 0, sizeof(*set));
    /* the listing and every file in one git process */
    struct vk_git_files files;
    vk_git_files_init(&files);
    int rc = vk_git_read_files(m, sha, repo->workflow_glob, &files, err);
    if (rc)
        goto out;
    size_t n = 0;
    for (size_t i = 0; i < files.n; i++)
        n += !only_file || strcmp(files.items[i].path, only_file) == 0;
    if (only_file && n == 0) {
        rc = vk_err_set(err, VK_ENOTFOUND, "no workflow '%s' at commit %.12s (glob '%s')",
                        only_file, sha, repo->workflow_glob);
        goto out;
    }
    set->items = vk_mem_xcalloc(n ? n : 1, sizeof(*set->items));
    if (files.commit.message)
        set->commit_message = vk_mem_xstrdup(files.commit.message);
    if (files.commit.author)
        set->commit_author = vk_mem_xstrdup(files.commit.author);
    for (size_t i = 0; i < files.n; i++) {
        if (only_file && strcmp(files.items[i].path, only_file) != 0)
            continue;
        rc = load_one(m, repo, sha, &files.items[i], &set->items[set->n], err);
        set->n++;
        if (rc)
            goto out;
    }
out:
    vk_git_files_release(&files);
    if (rc)
        vk__trig_set_release(set);
    return rc;
}

bool vk__trig_needs_paths(const struct vk__trig_set *set, enum vk_wf_trigger_type type)
{
    for (size_t i = 0; i < set->n; i++) {
        const struct vk_workflow *wf = set->items[i].wf;
        for (size_t t = 0; wf && t < wf->ntriggers; t++) {
            const struct vk_wf_trigger *tr = &wf->triggers[t];
            if (tr->type == type && (tr->paths.n || tr->paths_ignore.n))
                return true;
        }
    }
    return false;
}

/* ---------------------------------------------------------------- Submitting */

int vk__trig_skip(json_t *skipped, const char *file, const char *reason)
{
    json_t *o = json_pack("{s:s, s:s}", "file", file, "reason", reason);
    if (!o || json_array_append_new(skipped, o) != 0)
        return VK_ENOMEM;
    return 0;
}

int vk__trig_submit(struct vk_triggers_service *svc, const struct vk__trig_set *set,
                    const struct vk_orch_context *tmpl, const struct vk_wf_event *wfev,
                    json_t *chains, json_t *skipped, struct vk_err *err)
{
    for (size_t i = 0; i < set->n; i++) {
        const struct vk__trig_item *it = &set->items[i];
        struct vk_orch_context c = *tmpl;
        c.source_file = it->file;
        c.commit_message = set->commit_message;
        c.commit_author = set->commit_author;
        char id[VK_UUID_LEN], why[1024];
        int rc;
        if (!it->wf) {
            rc = vk_orch_submit_failed(svc->opts.orch, &c, it->text.data, it->error, id, err);
        } else if (wfev && !vk_workflow_triggered_why(it->wf, wfev, why, sizeof(why))) {
            if (vk__trig_skip(skipped, it->file, why[0] ? why : "no trigger matches") != 0)
                return vk_err_set(err, VK_ENOMEM, "out of memory");
            continue;
        } else {
            rc = vk_orch_submit(svc->opts.orch, it->wf, it->text.data, &c, id, NULL, err);
        }
        bool again = rc == VK_EEXIST; /* made by an earlier handler of this request */
        if (rc && !again)
            return rc;
        char tid[VK_TRACE_ID_HEX_LEN] = "";
        if (c.trace_id && strlen(c.trace_id) >= 35)
            snprintf(tid, sizeof(tid), "%.32s", c.trace_id + 3);
        vk_log_write(VK_LOG_INFO, "triggers",
                     again    ? "chain made before"
                     : it->wf ? "chain created"
                              : "failed chain created",
                     "chain_id", id, "file", it->file, "trigger", c.trigger ? c.trigger : "",
                     "trace_id", tid[0] ? tid : NULL, NULL);
        if (json_array_append_new(chains, json_string(id)) != 0)
            return vk_err_set(err, VK_ENOMEM, "out of memory");
    }
    return 0;
}
