/*
 * providers.c — the payload shapes of GitHub (and Gitea, which mirrors it),
 * GitLab and Bitbucket Cloud, mapped onto struct vk_triggers_event.
 */
#include "triggers_int.h"

#include <stdio.h>
#include <string.h>

#define GITHUB_MAX_COMMITS 20 /* GitHub lists at most 20 commits in a push */

static int repo_urls(struct vk__triggers_ctx *c, const char *const *paths, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int rc = vk__triggers_url(c, c->root, paths[i]);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ---------------------------------------------------------------- GitHub, Gitea */

static const char *const github_urls[] = {"repository.clone_url", "repository.html_url",
                                          "repository.ssh_url", "repository.git_url"};

static int github_push(struct vk__triggers_ctx *c, bool gitea)
{
    struct vk_triggers_event *ev = c->ev;
    json_t *r = c->root;
    const char *ref = NULL;
    int rc;
    if ((rc = vk__triggers_str(c, r, "ref", VK_TRIGGERS_MAX_REF, true, &ref)) < 0 ||
        (rc = vk__triggers_set_ref(c, ref, "ref")) < 0 ||
        (rc = vk__triggers_sha(c, r, "before", true, &ev->before)) < 0 ||
        (rc = vk__triggers_sha(c, r, "after", true, &ev->after)) < 0)
        return rc;
    ev->created = vk__triggers_bool(r, "created");
    ev->deleted = vk__triggers_bool(r, "deleted");
    ev->forced = vk__triggers_bool(r, "forced");
    vk__triggers_finish_push(c);
    if (!ev->sender &&
        (rc = vk__triggers_str(c, r, "pusher.name", VK_TRIGGERS_MAX_TEXT, false, &ev->sender)) < 0)
        return rc;

    json_t *commits = vk__triggers_get(r, "commits");
    if (commits && !json_is_array(commits))
        return vk_err_set(c->err, VK_EINVAL, "field 'commits' must be an array");
    if ((rc = vk__triggers_commit_paths(c, r, "commits")) < 0)
        return rc;
    /*
     * The list is complete when the payload has every commit of an update of
     * an existing branch: GitHub stops at 20 commits; Gitea says how many
     * there were (total_commits); a new branch or a force push changes files
     * the commit list does not show.
     */
    size_t n = commits ? json_array_size(commits) : 0;
    bool complete = commits && ev->kind == VK_TRIGGERS_EV_PUSH && !ev->created && !ev->deleted &&
                    !ev->forced && n > 0;
    if (complete && gitea) {
        json_t *total = vk__triggers_get(r, "total_commits");
        if (json_is_integer(total) && (size_t)json_integer_value(total) != n)
            complete = false;
    } else if (complete && n >= GITHUB_MAX_COMMITS) {
        complete = false;
    }
    ev->paths_complete = complete;
    return 0;
}

static const char *gitea_action(const char *a)
{
    /* Gitea says "synchronized" where GitHub says "synchronize" */
    if (strcmp(a, "synchronized") == 0)
        return "synchronize";
    return a;
}

static int github_pr(struct vk__triggers_ctx *c, bool gitea)
{
    struct vk_triggers_event *ev = c->ev;
    json_t *r = c->root;
    int rc;
    ev->kind = VK_TRIGGERS_EV_PULL_REQUEST;
    if ((rc = vk__triggers_str(c, r, "action", VK_TRIGGERS_MAX_TEXT, true, &ev->pr_action)) < 0 ||
        (rc = vk__triggers_int(c, r, "number", &ev->pr_number)) < 0 ||
        (rc = vk__triggers_sha(c, r, "pull_request.head.sha", true, &ev->pr_head_sha)) < 0 ||
        (rc = vk__triggers_str(c, r, "pull_request.head.ref", VK_TRIGGERS_MAX_REF, true,
                               &ev->pr_head_branch)) < 0 ||
        (rc = vk__triggers_str(c, r, "pull_request.base.ref", VK_TRIGGERS_MAX_REF, true,
                               &ev->pr_base_branch)) < 0)
        return rc;
    if (gitea)
        ev->pr_action = gitea_action(ev->pr_action);
    /* "synchronize" carries the old and new head */
    if ((rc = vk__triggers_sha(c, r, "before", false, &ev->before)) < 0 ||
        (rc = vk__triggers_sha(c, r, "after", false, &ev->after)) < 0)
        return rc;
    ev->pr_merged = vk__triggers_bool(r, "pull_request.merged");
    /* A fork's head repository is another one (null when the fork was deleted). */
    ev->pr_from_fork = vk__triggers_differs(r, "pull_request.head.repo.full_name",
                                            "pull_request.base.repo.full_name");
    ev->branch = ev->pr_base_branch;
    ev->commit_sha = ev->pr_head_sha;
    return 0;
}

int vk__triggers_github(struct vk__triggers_ctx *c, const char *event, bool gitea)
{
    struct vk_triggers_event *ev = c->ev;
    json_t *r = c->root;
    int rc;
    if ((rc = vk__triggers_str(c, r, "sender.login", VK_TRIGGERS_MAX_TEXT, false, &ev->sender)) <
            0 ||
        (rc = vk__triggers_str(c, r, "repository.full_name", VK_TRIGGERS_MAX_TEXT, false,
                               &ev->repo_name)) < 0 ||
        (rc = repo_urls(c, github_urls, VK_ARRAY_LEN(github_urls))) < 0)
        return rc;
    if (strcmp(event, "ping") == 0) {
        ev->kind = VK_TRIGGERS_EV_PING; /* organisation hooks have no repository */
        return 0;
    }
    bool push = strcmp(event, "push") == 0;
    bool pr = strcmp(event, "pull_request") == 0;
    if (!push && !pr) {
        ev->kind = VK_TRIGGERS_EV_OTHER;
        return 0;
    }
    if ((rc = vk__triggers_need_url(c, "repository.clone_url")) < 0)
        return rc;
    return push ? github_push(c, gitea) : github_pr(c, gitea);
}

/* ---------------------------------------------------------------- GitLab */

static const char *const gitlab_urls[] = {"project.git_http_url",   "project.git_ssh_url",
                                          "project.web_url",        "project.http_url",
                                          "project.ssh_url",        "repository.git_http_url",
                                          "repository.git_ssh_url", "repository.homepage"};

static int gitlab_push(struct vk__triggers_ctx *c)
{
    struct vk_triggers_event *ev = c->ev;
    json_t *r = c->root;
    const char *ref = NULL;
    int rc;
    if ((rc = vk__triggers_str(c, r, "ref", VK_TRIGGERS_MAX_REF, true, &ref)) < 0 ||
        (rc = vk__triggers_set_ref(c, ref, "ref")) < 0 ||
        (rc = vk__triggers_sha(c, r, "before", true, &ev->before)) < 0 ||
        (rc = vk__triggers_sha(c, r, "after", true, &ev->after)) < 0)
        return rc;
    vk__triggers_finish_push(c);
    json_t *commits = vk__triggers_get(r, "commits");
    if (commits && !json_is_array(commits))
        return vk_err_set(c->err, VK_EINVAL, "field 'commits' must be an array");
    if ((rc = vk__triggers_commit_paths(c, r, "commits")) < 0)
        return rc;
    /* GitLab lists at most 20 commits and says how many there were */
    size_t n = commits ? json_array_size(commits) : 0;
    json_t *total = vk__triggers_get(r, "total_commits_count");
    ev->paths_complete = ev->kind == VK_TRIGGERS_EV_PUSH && n > 0 && !ev->created && !ev->deleted &&
                         json_is_integer(total) && (size_t)json_integer_value(total) == n;
    return 0;
}

static int gitlab_mr(struct vk__triggers_ctx *c)
{
    struct vk_triggers_event *ev = c->ev;
    json_t *r = c->root;
    const char *action = NULL;
    const char *oldrev = NULL;
    int rc;
    ev->kind = VK_TRIGGERS_EV_PULL_REQUEST;
    if ((rc = vk__triggers_int(c, r, "object_attributes.iid", &ev->pr_number)) < 0 ||
        (rc = vk__triggers_str(c, r, "object_attributes.action", VK_TRIGGERS_MAX_TEXT, true,
                               &action)) < 0 ||
        (rc = vk__triggers_sha(c, r, "object_attributes.last_commit.id", true, &ev->pr_head_sha)) <
            0 ||
        (rc = vk__triggers_str(c, r, "object_attributes.source_branch", VK_TRIGGERS_MAX_REF, true,
                               &ev->pr_head_branch)) < 0 ||
        (rc = vk__triggers_str(c, r, "object_attributes.target_branch", VK_TRIGGERS_MAX_REF, true,
                               &ev->pr_base_branch)) < 0 ||
        (rc = vk__triggers_sha(c, r, "object_attributes.oldrev", false, &oldrev)) < 0)
        return rc;
    /*
     * GitLab's actions in GitHub's words. "update" is also sent for title or
     * label edits: only an update with `oldrev` (new commits) is a synchronize.
     */
    if (strcmp(action, "open") == 0)
        ev->pr_action = "opened";
    else if (strcmp(action, "reopen") == 0)
        ev->pr_action = "reopened";
    else if (strcmp(action, "close") == 0)
        ev->pr_action = "closed";
    else if (strcmp(action, "merge") == 0) {
        ev->pr_action = "closed";
        ev->pr_merged = true;
    } else if (strcmp(action, "update") == 0)
        ev->pr_action = oldrev ? "synchronize" : "edited";
    else
        ev->pr_action = action; /* approved, unapproved, ... */
    ev->before = oldrev;
    ev->after = ev->pr_head_sha;
    ev->pr_from_fork = vk__triggers_differs(r, "object_attributes.source_project_id",
                                            "object_attributes.target_project_id");
    ev->branch = ev->pr_base_branch;
    ev->commit_sha = ev->pr_head_sha;
    return 0;
}

int vk__triggers_gitlab(struct vk__triggers_ctx *c, const char *event)
{
    struct vk_triggers_event *ev = c->ev;
    json_t *r = c->root;
    int rc;
    if ((rc = vk__triggers_str(c, r, "project.path_with_namespace", VK_TRIGGERS_MAX_TEXT, false,
                               &ev->repo_name)) < 0 ||
        (rc = repo_urls(c, gitlab_urls, VK_ARRAY_LEN(gitlab_urls))) < 0)
        return rc;
    /* pushes carry user_username, merge requests a user object */
    if ((rc = vk__triggers_str(c, r, "user_username", VK_TRIGGERS_MAX_TEXT, false, &ev->sender)) <
            0 ||
        (!ev->sender && (rc = vk__triggers_str(c, r, "user.username", VK_TRIGGERS_MAX_TEXT, false,
                                               &ev->sender)) < 0))
        return rc;
    bool push = strcmp(event, "Push Hook") == 0, tag = strcmp(event, "Tag Push Hook") == 0;
    bool mr = strcmp(event, "Merge Request Hook") == 0;
    if (!push && !tag && !mr) {
        ev->kind = VK_TRIGGERS_EV_OTHER;
        return 0;
    }
    if ((rc = vk__triggers_need_url(c, "project.git_http_url")) < 0)
        return rc;
    if (mr)
        return gitlab_mr(c);
    if ((rc = gitlab_push(c)) < 0)
        return rc;
    if ((push && ev->kind != VK_TRIGGERS_EV_PUSH) || (tag && ev->kind != VK_TRIGGERS_EV_TAG))
        return vk_err_set(c->err, VK_EINVAL, "field 'ref' does not fit event '%s'", event);
    return 0;
}

/* ---------------------------------------------------------------- Bitbucket Cloud */

static const char *const bitbucket_urls[] = {"repository.links.html.href"};

static int bitbucket_clone_links(struct vk__triggers_ctx *c)
{
    json_t *arr = vk__triggers_get(c->root, "repository.links.clone");
    if (!json_is_array(arr))
        return 0;
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        int rc = vk__triggers_url(c, v, "href");
        if (rc < 0)
            return rc;
    }
    return 0;
}

/*
 * repo:push: push.changes[] each with `new` and `old` ({type, name,
 * target.hash}, null when the ref was created or deleted). One webhook can
 * carry several changes; the event describes the first one.
 */
static int bitbucket_push(struct vk__triggers_ctx *c)
{
    struct vk_triggers_event *ev = c->ev;
    json_t *r = c->root;
    json_t *changes = vk__triggers_get(r, "push.changes");
    if (!json_is_array(changes) || json_array_size(changes) == 0)
        return vk_err_set(c->err, VK_EINVAL, "missing field 'push.changes'");
    json_t *ch = json_array_get(changes, 0);
    if (!json_is_object(ch))
        return vk_err_set(c->err, VK_EINVAL, "field 'push.changes[0]' must be an object");
    json_t *nw = vk__triggers_get(ch, "new"), *old = vk__triggers_get(ch, "old");
    json_t *side = nw ? nw : old;
    if (!side)
        return vk_err_set(c->err, VK_EINVAL, "missing field 'push.changes[0].new'");
    const char *type = NULL, *name = NULL;
    int rc;
    if ((rc = vk__triggers_str(c, side, "type", VK_TRIGGERS_MAX_TEXT, true, &type)) < 0 ||
        (rc = vk__triggers_str(c, side, "name", VK_TRIGGERS_MAX_REF, true, &name)) < 0)
        return rc;
    bool tag = strcmp(type, "tag") == 0;
    if (!tag && strcmp(type, "branch") != 0 && strcmp(type, "named_branch") != 0) {
        c->ev->kind = VK_TRIGGERS_EV_OTHER;
        return 0;
    }
    char ref[VK_TRIGGERS_MAX_REF + 16];
    snprintf(ref, sizeof(ref), "%s%s", tag ? "refs/tags/" : "refs/heads/", name);
    const char *full = vk__triggers_dup(c, ref);
    if (!full)
        return vk_err_set(c->err, VK_ENOMEM, "out of memory");
    if ((rc = vk__triggers_set_ref(c, full, "push.changes[0].new.name")) < 0)
        return rc;
    /* field names in errors are relative to push.changes[0] */
    if ((nw && (rc = vk__triggers_sha(c, ch, "new.target.hash", true, &ev->after)) < 0) ||
        (old && (rc = vk__triggers_sha(c, ch, "old.target.hash", true, &ev->before)) < 0))
        return rc;
    ev->forced = vk__triggers_bool(ch, "forced");
    ev->deleted = !nw || vk__triggers_bool(ch, "closed");
    vk__triggers_finish_push(c);
    ev->paths_complete = false; /* Bitbucket sends no file lists */
    return 0;
}

static int bitbucket_pr(struct vk__triggers_ctx *c, const char *what)
{
    struct vk_triggers_event *ev = c->ev;
    json_t *r = c->root;
    int rc;
    ev->kind = VK_TRIGGERS_EV_PULL_REQUEST;
    if (strcmp(what, "created") == 0)
        ev->pr_action = "opened";
    else if (strcmp(what, "updated") == 0)
        ev->pr_action = "synchronize";
    else if (strcmp(what, "fulfilled") == 0) {
        ev->pr_action = "closed";
        ev->pr_merged = true;
    } else {
        ev->pr_action = "closed"; /* rejected (declined) */
    }
    if ((rc = vk__triggers_int(c, r, "pullrequest.id", &ev->pr_number)) < 0 ||
        (rc = vk__triggers_short_sha(c, r, "pullrequest.source.commit.hash", true,
                                     &ev->pr_head_sha)) < 0 ||
        (rc = vk__triggers_str(c, r, "pullrequest.source.branch.name", VK_TRIGGERS_MAX_REF, true,
                               &ev->pr_head_branch)) < 0 ||
        (rc = vk__triggers_str(c, r, "pullrequest.destination.branch.name", VK_TRIGGERS_MAX_REF,
                               true, &ev->pr_base_branch)) < 0)
        return rc;
    ev->pr_from_fork = vk__triggers_differs(r, "pullrequest.source.repository.full_name",
                                            "pullrequest.destination.repository.full_name");
    ev->branch = ev->pr_base_branch;
    ev->commit_sha = ev->pr_head_sha;
    return 0;
}

int vk__triggers_bitbucket(struct vk__triggers_ctx *c, const char *event)
{
    struct vk_triggers_event *ev = c->ev;
    json_t *r = c->root;
    int rc;
    if ((rc = vk__triggers_str(c, r, "repository.full_name", VK_TRIGGERS_MAX_TEXT, false,
                               &ev->repo_name)) < 0 ||
        (rc = repo_urls(c, bitbucket_urls, VK_ARRAY_LEN(bitbucket_urls))) < 0 ||
        (rc = bitbucket_clone_links(c)) < 0)
        return rc;
    static const char *const actor[] = {"actor.nickname", "actor.username", "actor.display_name"};
    for (size_t i = 0; i < VK_ARRAY_LEN(actor) && !ev->sender; i++)
        if ((rc = vk__triggers_str(c, r, actor[i], VK_TRIGGERS_MAX_TEXT, false, &ev->sender)) < 0)
            return rc;
    bool push = strcmp(event, "repo:push") == 0;
    const char *what = strncmp(event, "pullrequest:", 12) == 0 ? event + 12 : NULL;
    bool pr = what && (strcmp(what, "created") == 0 || strcmp(what, "updated") == 0 ||
                       strcmp(what, "fulfilled") == 0 || strcmp(what, "rejected") == 0);
    if (!push && !pr) {
        ev->kind = VK_TRIGGERS_EV_OTHER;
        return 0;
    }
    if ((rc = vk__triggers_need_url(c, "repository.links.html.href")) < 0)
        return rc;
    return push ? bitbucket_push(c) : bitbucket_pr(c, what);
}
