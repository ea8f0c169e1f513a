/*
 * Rendering a loaded workflow: the JSON form (docs/parse-json.md) and the
 * readable tree printed by `vulcan parse`.
 */
#include "vulcan/workflow.h"

#include <jansson.h>
#include <string.h>

static const char *const default_pr_types[] = {"opened", "synchronize", "reopened"};

/* ---------------------------------------------------------------- JSON */

static json_t *jstr(const char *s)
{
    return s ? json_string(s) : json_null();
}

static json_t *jlist(const struct vk_wf_strlist *l)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < l->n; i++)
        json_array_append_new(a, json_string(l->items[i]));
    return a;
}

static json_t *jenv(const struct vk_wf_kv *kv, size_t n)
{
    json_t *o = json_object();
    for (size_t i = 0; o && i < n; i++)
        json_object_set_new(o, kv[i].key, json_string(kv[i].value));
    return o;
}

/* [{"name", "file"}]: names only (a workflow never holds a value). */
static json_t *jsecrets(const struct vk_wf_secret *sec, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        json_array_append_new(
            a, json_pack("{s:s, s:b}", "name", sec[i].name, "file", sec[i].file ? 1 : 0));
    return a;
}

static json_t *jtrigger(const struct vk_wf_trigger *t)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    json_object_set_new(o, "type", json_string(vk_wf_trigger_type_name(t->type)));
    switch (t->type) {
    case VK_WF_TRIG_PULL_REQUEST:
        if (t->types.n) {
            json_object_set_new(o, "types", jlist(&t->types));
        } else {
            struct vk_wf_strlist d = {(const char **)default_pr_types, 3};
            json_object_set_new(o, "types", jlist(&d));
        }
        /* fall through */
    case VK_WF_TRIG_PUSH:
        json_object_set_new(o, "branches", jlist(&t->branches));
        json_object_set_new(o, "branches_ignore", jlist(&t->branches_ignore));
        json_object_set_new(o, "paths", jlist(&t->paths));
        json_object_set_new(o, "paths_ignore", jlist(&t->paths_ignore));
        break;
    case VK_WF_TRIG_TAG:
        json_object_set_new(o, "patterns", jlist(&t->tags));
        json_object_set_new(o, "ignore", jlist(&t->tags_ignore));
        break;
    case VK_WF_TRIG_SCHEDULE:
        json_object_set_new(o, "cron", jstr(t->cron));
        json_object_set_new(o, "timezone", jstr(t->timezone));
        break;
    case VK_WF_TRIG_MANUAL: {
        json_t *a = json_array();
        for (size_t i = 0; a && i < t->ninputs; i++) {
            const struct vk_wf_input *in = &t->inputs[i];
            json_t *j = json_object();
            json_object_set_new(j, "name", json_string(in->name));
            json_object_set_new(j, "description", jstr(in->description));
            json_object_set_new(j, "choices", jlist(&in->choices));
            json_object_set_new(j, "default", jstr(in->default_value));
            json_object_set_new(j, "required", json_boolean(in->required));
            json_array_append_new(a, j);
        }
        json_object_set_new(o, "inputs", a);
        break;
    }
    case VK_WF_TRIG_CHAIN:
        json_object_set_new(o, "workflow", jstr(t->follow_workflow));
        json_object_set_new(o, "status", jstr(t->follow_status));
        json_object_set_new(o, "branches", jlist(&t->branches));
        json_object_set_new(o, "branches_ignore", jlist(&t->branches_ignore));
        break;
    }
    json_object_set_new(o, "line", json_integer(t->pos.line));
    json_object_set_new(o, "col", json_integer(t->pos.col));
    return o;
}

/* {"group": "deploy-{branch}", "cancel_in_progress": false, "line": L, "col": C} */
static json_t *jconcurrency(const struct vk_wf_concurrency *c)
{
    return json_pack("{s:s, s:b, s:i, s:i}", "group", c->group, "cancel_in_progress",
                     c->cancel_in_progress ? 1 : 0, "line", (int)c->pos.line, "col",
                     (int)c->pos.col);
}

static json_t *jfragment(const struct vk_wf_fragment *f)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    json_object_set_new(o, "sequence", json_integer(f->sequence));
    json_object_set_new(o, "type", json_string(f->type == VK_WF_INLINE ? "inline" : "group"));
    json_object_set_new(o, "name", jstr(f->name));
    json_object_set_new(o, "machine", jstr(f->machine));
    json_object_set_new(o, "condition", jstr(f->condition_src));
    if (f->type == VK_WF_INLINE) {
        json_object_set_new(o, "run", jstr(f->run));
        json_object_set_new(o, "timeout_ms", json_integer(f->timeout_ms));
        json_object_set_new(o, "retries", json_integer(f->retries));
        json_object_set_new(o, "env", jenv(f->env, f->nenv));
        if (f->nsecrets) /* only when used, so older readers see the same documents */
            json_object_set_new(o, "secrets", jsecrets(f->secrets, f->nsecrets));
    } else {
        json_object_set_new(o, "parallel", json_boolean(f->is_parallel));
        json_object_set_new(o, "from", jstr(f->import_from));
    }
    if (f->is_matrix)
        json_object_set_new(o, "matrix", json_true());
    if (f->max_parallel)
        json_object_set_new(o, "max_parallel", json_integer(f->max_parallel));
    if (f->no_fail_fast)
        json_object_set_new(o, "fail_fast", json_false());
    if (f->when != VK_WF_WHEN_SUCCESS)
        json_object_set_new(o, "when",
                            json_string(f->when == VK_WF_WHEN_FAILURE ? "failure" : "always"));
    if (f->allow_failure)
        json_object_set_new(o, "allow_failure", json_true());
    if (f->nneeds) {
        json_t *a = json_array();
        for (size_t i = 0; a && i < f->nneeds; i++)
            json_array_append_new(a, json_string(f->needs[i]));
        json_object_set_new(o, "needs", a);
    }
    if (f->nmatrix) /* a matrix copy: its combination */
        json_object_set_new(o, "matrix_values", jenv(f->matrix, f->nmatrix));
    if (f->concurrency)
        json_object_set_new(o, "concurrency", jconcurrency(f->concurrency));
    json_object_set_new(o, "source_url", jstr(f->source_url));
    json_object_set_new(o, "line", json_integer(f->pos.line));
    json_object_set_new(o, "col", json_integer(f->pos.col));
    if (f->type == VK_WF_GROUP) {
        json_t *a = json_array();
        for (size_t i = 0; a && i < f->nchildren; i++)
            json_array_append_new(a, jfragment(&f->children[i]));
        json_object_set_new(o, "children", a);
    }
    return o;
}

static int dump_cb(const char *p, size_t n, void *ud)
{
    return vk_buf_add(ud, p, n) < 0 ? -1 : 0;
}

int vk_workflow_to_json(const struct vk_workflow *wf, struct vk_buf *out)
{
    json_t *o = json_object();
    if (!o)
        return VK_ENOMEM;
    json_object_set_new(o, "file", jstr(wf->file));
    json_object_set_new(o, "name", jstr(wf->name));
    json_object_set_new(o, "version", jstr(wf->version));
    json_object_set_new(o, "machine", jstr(wf->machine));
    json_object_set_new(o, "env", jenv(wf->env, wf->nenv));
    if (wf->concurrency) /* only when set, so older readers see the same documents */
        json_object_set_new(o, "concurrency", jconcurrency(wf->concurrency));
    json_t *tr = json_array();
    for (size_t i = 0; tr && i < wf->ntriggers; i++)
        json_array_append_new(tr, jtrigger(&wf->triggers[i]));
    json_object_set_new(o, "triggers", tr);
    json_object_set_new(o, "fragment_count",
                        json_integer((json_int_t)vk_workflow_count_fragments(wf)));
    json_t *fr = json_array();
    for (size_t i = 0; fr && i < wf->root.nchildren; i++)
        json_array_append_new(fr, jfragment(&wf->root.children[i]));
    json_object_set_new(o, "fragments", fr);
    size_t before = out->len;
    int rc = json_dump_callback(o, dump_cb, out, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    json_decref(o);
    if (rc != 0 || out->len < before)
        return VK_ENOMEM;
    return vk_buf_addch(out, '\n');
}

/* ---------------------------------------------------------------- Text */

/* First line of a script, at most 60 bytes (cut at a UTF-8 boundary), with "…" when cut. */
static int add_script(struct vk_buf *b, const char *run)
{
    while (*run == '\n' || *run == ' ' || *run == '\t' || *run == '\r')
        run++;
    size_t n = strcspn(run, "\r\n");
    bool more = run[n + strspn(run + n, " \t\r\n")] != '\0';
    if (n > 60) {
        n = 60;
        while (n > 0 && ((unsigned char)run[n] & 0xc0) == 0x80)
            n--;
        more = true;
    }
    int rc = vk_buf_add(b, run, n);
    if (rc == 0 && more)
        rc = vk_buf_adds(b, " \u2026");
    return rc;
}

static int text_fragment(struct vk_buf *b, const struct vk_wf_fragment *f, unsigned depth,
                         const char *parent_machine, const char *parent_src)
{
    int rc = vk_buf_addf(b, "%*s%u ", (int)(2 + depth * 2), "", f->sequence);
    if (rc < 0)
        return rc;
    if (f->type == VK_WF_INLINE)
        rc = vk_buf_adds(b, "fragment");
    else if (f->is_matrix)
        rc = vk_buf_addf(b, "matrix of %zu", f->nchildren);
    else if (f->is_parallel)
        rc = vk_buf_adds(b, "parallel");
    else
        rc = vk_buf_addf(b, "import '%s'", f->import_from ? f->import_from : "");
    if (rc == 0 && f->name)
        rc = vk_buf_addf(b, " \"%s\"", f->name);
    if (rc == 0)
        rc = vk_buf_addf(b, " [%s]", f->machine);
    if (rc == 0 && f->condition_src)
        rc = vk_buf_addf(b, " if %s", f->condition_src);
    if (rc == 0 && f->timeout_ms % 1000)
        rc = vk_buf_addf(b, " timeout %lldms", (long long)f->timeout_ms);
    else if (rc == 0 && f->timeout_ms)
        rc = vk_buf_addf(b, " timeout %llds", (long long)(f->timeout_ms / 1000));
    if (rc == 0 && f->retries)
        rc = vk_buf_addf(b, " retry %d", f->retries);
    if (rc == 0 && f->max_parallel)
        rc = vk_buf_addf(b, " max-parallel %d", f->max_parallel);
    if (rc == 0 && f->no_fail_fast)
        rc = vk_buf_adds(b, " fail-fast off");
    if (rc == 0 && f->when != VK_WF_WHEN_SUCCESS)
        rc = vk_buf_addf(b, " when %s", f->when == VK_WF_WHEN_FAILURE ? "failure" : "always");
    if (rc == 0 && f->allow_failure)
        rc = vk_buf_adds(b, " allow-failure");
    for (size_t i = 0; rc == 0 && i < f->nneeds; i++)
        rc = vk_buf_addf(b, "%s\"%s\"", i ? " " : " needs ", f->needs[i]);
    if (rc == 0)
        rc = vk_buf_addf(b, "  (%s:%u:%u)\n", f->pos.file ? f->pos.file : "?", f->pos.line,
                         f->pos.col);
    if (rc == 0 && f->type == VK_WF_INLINE) {
        rc = vk_buf_addf(b, "%*s$ ", (int)(4 + depth * 2), "");
        if (rc == 0)
            rc = add_script(b, f->run);
        if (rc == 0)
            rc = vk_buf_addch(b, '\n');
    }
    (void)parent_machine;
    (void)parent_src;
    for (size_t i = 0; rc == 0 && i < f->nchildren; i++)
        rc = text_fragment(b, &f->children[i], depth + 1, f->machine, f->source_url);
    return rc;
}

static int text_list(struct vk_buf *b, const char *label, const struct vk_wf_strlist *l)
{
    if (!l->n)
        return 0;
    int rc = vk_buf_addf(b, " %s", label);
    for (size_t i = 0; rc == 0 && i < l->n; i++)
        rc = vk_buf_addf(b, "%s%s", i ? "," : " ", l->items[i]);
    return rc;
}

int vk_workflow_to_text(const struct vk_workflow *wf, struct vk_buf *b)
{
    int rc = vk_buf_addf(b, "workflow \"%s\" (%s, version %s)\n", wf->name, wf->file, wf->version);
    for (size_t i = 0; rc == 0 && i < wf->ntriggers; i++) {
        const struct vk_wf_trigger *t = &wf->triggers[i];
        rc = vk_buf_addf(b, "  on %s", vk_wf_trigger_type_name(t->type));
        if (rc == 0 && t->type == VK_WF_TRIG_CHAIN)
            rc = vk_buf_addf(b, " of workflow '%s' %s", t->follow_workflow, t->follow_status);
        if (rc == 0)
            rc = text_list(b, "types", &t->types);
        if (rc == 0)
            rc = text_list(b, "branches", &t->branches);
        if (rc == 0)
            rc = text_list(b, "branches-ignore", &t->branches_ignore);
        if (rc == 0)
            rc = text_list(b, "paths", &t->paths);
        if (rc == 0)
            rc = text_list(b, "paths-ignore", &t->paths_ignore);
        if (rc == 0)
            rc = text_list(b, "patterns", &t->tags);
        if (rc == 0)
            rc = text_list(b, "ignore", &t->tags_ignore);
        if (rc == 0 && t->cron)
            rc = vk_buf_addf(b, " cron \"%s\"%s%s", t->cron, t->timezone ? " in " : "",
                             t->timezone ? t->timezone : "");
        for (size_t k = 0; rc == 0 && k < t->ninputs; k++)
            rc = vk_buf_addf(b, "%s%s%s", k ? ", " : " inputs ", t->inputs[k].name,
                             t->inputs[k].required ? " (required)" : "");
        if (rc == 0)
            rc = vk_buf_addch(b, '\n');
    }
    if (rc == 0)
        rc = vk_buf_addf(b, "chain: machine %s, %zu fragments\n", wf->machine,
                         vk_workflow_count_fragments(wf));
    for (size_t i = 0; rc == 0 && i < wf->nenv; i++)
        rc = vk_buf_addf(b, "  env %s=%s\n", wf->env[i].key, wf->env[i].value);
    for (size_t i = 0; rc == 0 && i < wf->root.nchildren; i++)
        rc = text_fragment(b, &wf->root.children[i], 0, wf->machine, NULL);
    return rc;
}
