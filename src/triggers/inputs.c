/*
 * inputs.c — inputs of a manual trigger checked against the workflow's
 * `manual { input "name" { choice …; default …; required } }` declarations.
 */
#include "triggers_int.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

static const struct vk_wf_trigger *manual_trigger(const struct vk_workflow *wf)
{
    for (size_t i = 0; wf && i < wf->ntriggers; i++)
        if (wf->triggers[i].type == VK_WF_TRIG_MANUAL)
            return &wf->triggers[i];
    return NULL;
}

static bool in_choices(const struct vk_wf_input *in, const char *v)
{
    for (size_t i = 0; i < in->choices.n; i++)
        if (strcmp(in->choices.items[i], v) == 0)
            return true;
    return false;
}

static int check_value(const char *name, const char *v, struct vk_err *err)
{
    size_t n = strnlen(v, VK_TRIG_MAX_INPUT_LEN + 1);
    if (n > VK_TRIG_MAX_INPUT_LEN)
        return vk_err_set(err, VK_ETOOBIG, "input '%.100s' is too long (at most %d bytes)", name,
                          VK_TRIG_MAX_INPUT_LEN);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)v[i] < 0x20 && v[i] != '\n' && v[i] != '\t')
            return vk_err_set(err, VK_EINVAL, "input '%.100s' contains a control character", name);
    return 0;
}

int vk_triggers_inputs_resolve(const struct vk_workflow *wf, const struct vk_cond_var *given,
                               size_t ngiven, struct vk_pool *pool, struct vk_cond_var **out,
                               size_t *nout, struct vk_err *err)
{
    *out = NULL;
    *nout = 0;
    const struct vk_wf_trigger *t = manual_trigger(wf);
    if (!t)
        return vk_err_set(err, VK_EPERM, "workflow '%s' has no manual trigger",
                          wf && wf->name ? wf->name : "?");
    if (ngiven > VK_TRIG_MAX_INPUTS)
        return vk_err_set(err, VK_ETOOBIG, "too many inputs (%zu, at most %d)", ngiven,
                          VK_TRIG_MAX_INPUTS);
    /* every given name declared, once, with an acceptable value */
    for (size_t i = 0; i < ngiven; i++) {
        const char *name = given[i].name, *v = given[i].value;
        if (!name || !v)
            return vk_err_set(err, VK_EINVAL, "input without a name or value");
        const struct vk_wf_input *in = NULL;
        for (size_t k = 0; k < t->ninputs && !in; k++)
            if (strcmp(t->inputs[k].name, name) == 0)
                in = &t->inputs[k];
        if (!in)
            return vk_err_set(err, VK_EINVAL, "unknown input '%.100s'", name);
        for (size_t k = 0; k < i; k++)
            if (strcmp(given[k].name, name) == 0)
                return vk_err_set(err, VK_EINVAL, "input '%.100s' given twice", name);
        int rc = check_value(name, v, err);
        if (rc < 0)
            return rc;
        if (in->choices.n && *v && !in_choices(in, v))
            return vk_err_set(err, VK_EINVAL, "input '%s' must be one of the choices, not '%.100s'",
                              name, v);
    }
    struct vk_cond_var *res = vk_pool_zalloc(pool, (t->ninputs + 1) * sizeof(*res));
    if (!res)
        return vk_err_set(err, VK_ENOMEM, "out of memory");
    size_t n = 0;
    for (size_t k = 0; k < t->ninputs; k++) {
        const struct vk_wf_input *in = &t->inputs[k];
        const char *v = NULL;
        for (size_t i = 0; i < ngiven && !v; i++)
            if (strcmp(given[i].name, in->name) == 0 && given[i].value[0])
                v = given[i].value;
        if (!v)
            v = in->default_value;
        if (!v) {
            if (in->required)
                return vk_err_set(err, VK_EINVAL, "missing required input '%s'", in->name);
            continue;
        }
        res[n].value = vk_pool_strndup(pool, v, strlen(v));
        if (!res[n].value)
            return vk_err_set(err, VK_ENOMEM, "out of memory");
        res[n].name = vk_pool_strndup(pool, in->name, strlen(in->name));
        if (!res[n].name)
            return vk_err_set(err, VK_ENOMEM, "out of memory");
        n++;
    }
    *out = res;
    *nout = n;
    return 0;
}

int vk_triggers_inputs_resolve_json(const struct vk_workflow *wf, const char *json, size_t len,
                                    struct vk_pool *pool, struct vk_cond_var **out, size_t *nout,
                                    struct vk_err *err)
{
    if (!json || len == 0)
        return vk_triggers_inputs_resolve(wf, NULL, 0, pool, out, nout, err);
    if (len > VK_MAX_SMALL * 8)
        return vk_err_set(err, VK_ETOOBIG, "inputs too large");
    json_error_t jerr;
    json_t *root = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return vk_err_set(err, VK_EINVAL, "inputs are not valid JSON: %s", jerr.text);
    int rc = 0;
    struct vk_cond_var *given = NULL;
    if (!json_is_object(root)) {
        rc = vk_err_set(err, VK_EINVAL, "inputs must be a JSON object of name: value");
        goto out;
    }
    size_t n = json_object_size(root);
    if (n > VK_TRIG_MAX_INPUTS) {
        rc =
            vk_err_set(err, VK_ETOOBIG, "too many inputs (%zu, at most %d)", n, VK_TRIG_MAX_INPUTS);
        goto out;
    }
    given = vk_mem_calloc(n ? n : 1, sizeof(*given));
    if (!given) {
        rc = vk_err_set(err, VK_ENOMEM, "out of memory");
        goto out;
    }
    size_t i = 0;
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v)
    {
        const char *s = NULL;
        char num[32];
        if (json_is_string(v)) {
            if (strlen(json_string_value(v)) != json_string_length(v)) {
                rc = vk_err_set(err, VK_EINVAL, "input '%.100s' contains a NUL byte", key);
                goto out;
            }
            s = json_string_value(v);
        } else if (json_is_integer(v)) {
            snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
            s = vk_pool_strndup(pool, num, strlen(num));
        } else if (json_is_boolean(v)) {
            s = json_is_true(v) ? "true" : "false";
        } else {
            rc = vk_err_set(err, VK_EINVAL,
                            "input '%.100s' must be a string, an integer or a boolean", key);
            goto out;
        }
        if (!s) {
            rc = vk_err_set(err, VK_ENOMEM, "out of memory");
            goto out;
        }
        given[i].name = key;
        given[i].value = s;
        i++;
    }
    rc = vk_triggers_inputs_resolve(wf, given, i, pool, out, nout, err);
out:
    vk_mem_free(given);
    json_decref(root);
    return rc;
}
