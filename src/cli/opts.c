/*
 * Table-driven options for the long-running commands (server, run, submit...):
 * `--name VALUE`, `--name=VALUE`, flags, repeated list options, each with an
 * optional VULCAN_* environment variable and an optional KDL config file
 * (`--config FILE`, one node per option: `listen "127.0.0.1:8080"`).
 * Precedence: flags, then environment, then the config file, then defaults.
 */
#include "cli/cli.h"
#include "vulcan/kdl.h"

#include <stdlib.h>
#include <string.h>

static struct vk__cli_opt *find(struct vk__cli_opt *opts, size_t n, const char *name, size_t len)
{
    for (size_t i = 0; i < n; i++) {
        if (opts[i].kind != VK_CLI_KEEP && strlen(opts[i].name) == len &&
            strncmp(opts[i].name, name, len) == 0)
            return &opts[i];
    }
    return NULL;
}

static int set_value(const char *cmd, struct vk__cli_opt *o, const char *v, const char *from)
{
    switch (o->kind) {
    case VK_CLI_STR:
        *(const char **)o->dst = v;
        return 0;
    case VK_CLI_INT: {
        char *end;
        long long x = strtoll(v, &end, 10);
        if (!*v || *end || x < o->min || x > o->max) {
            fprintf(stderr, "vulcan %s: %s --%s must be an integer from %lld to %lld, not '%s'\n",
                    cmd, from, o->name, o->min, o->max, v);
            return 2;
        }
        *(long long *)o->dst = x;
        return 0;
    }
    case VK_CLI_FLAG:
        *(bool *)o->dst = strcmp(v, "0") != 0 && strcmp(v, "false") != 0 && strcmp(v, "no") != 0;
        return 0;
    case VK_CLI_LIST: {
        struct vk__cli_list *l = o->dst;
        /* Comma lists from the environment or config; one value per flag. */
        const char *p = v;
        while (*p) {
            const char *comma = strchr(p, ',');
            size_t len = comma ? (size_t)(comma - p) : strlen(p);
            if (len) {
                if (l->n == VK_ARRAY_LEN(l->items)) {
                    fprintf(stderr, "vulcan %s: too many values for --%s\n", cmd, o->name);
                    return 2;
                }
                l->items[l->n++] = vk_mem_xstrndup(p, len);
            }
            p += len + (comma ? 1 : 0);
        }
        return 0;
    }
    case VK_CLI_KEEP: /* not an option: find() never returns it */
        break;
    }
    return 2;
}

static void list_clear(struct vk__cli_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        vk_mem_free(l->items[i]);
    l->n = 0;
}

void vk__cli_opts_release(struct vk__cli_opt *opts, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (opts[i].kind == VK_CLI_LIST)
            list_clear(opts[i].dst);
        if (opts[i].kind == VK_CLI_KEEP) {
            struct vk__cli_keep *k = opts[i].dst;
            for (size_t j = 0; j < k->n; j++)
                vk_mem_free(k->items[j]);
            k->n = 0;
        }
    }
}

/* A copy of a config file's string value, kept in the table's VK_CLI_KEEP entry when it
 * has one (else for the life of the process); NULL after printing why when that is full. */
static const char *keep_string(const char *path, struct vk__cli_opt *opts, size_t n,
                               const char *text)
{
    struct vk__cli_keep *k = NULL;
    for (size_t i = 0; i < n && !k; i++)
        if (opts[i].kind == VK_CLI_KEEP)
            k = opts[i].dst;
    if (k && k->n == VK_ARRAY_LEN(k->items)) {
        fprintf(stderr, "%s: error: more than %zu string settings\n", path, VK_ARRAY_LEN(k->items));
        return NULL;
    }
    char *copy = vk_mem_xstrdup(text);
    if (k)
        k->items[k->n++] = copy;
    return copy;
}

/* Values from a KDL config file stay valid after it is parsed: strings are copied. */
static int load_config(const char *cmd, const char *path, struct vk__cli_opt *opts, size_t n)
{
    struct vk_buf b = VK_BUF_INIT(VK_MAX_SMALL * 16);
    struct vk_err err;
    vk_err_clear(&err);
    if (vk_buf_read_file(&b, path, &err) < 0) {
        fprintf(stderr, "vulcan %s: cannot read config '%s': %s\n", cmd, path, err.msg);
        return 2;
    }
    struct vk_kdl_doc *doc = NULL;
    if (vk_kdl_parse(b.data, b.len, &doc, &err) < 0) {
        struct vk_buf d = VK_BUF_INIT(VK_MAX_SMALL);
        if (vk_diag_render(&d, path, b.data, b.len, &err) == 0)
            fputs(d.data, stderr);
        vk_buf_release(&d);
        vk_buf_release(&b);
        return 2;
    }
    int rc = 0;
    for (const struct vk_kdl_node *node = doc->nodes; node && rc == 0; node = node->next) {
        struct vk__cli_opt *o = find(opts, n, node->name.ptr, node->name.len);
        if (!o || !o->config) {
            fprintf(stderr, "%s:%u:%u: error: unknown setting '%s'\n", path, node->pos.line,
                    node->pos.col, node->name.ptr);
            rc = 2;
            break;
        }
        if (o->kind == VK_CLI_LIST)
            list_clear(o->dst);
        for (size_t i = 0; i < node->nargs && rc == 0; i++) {
            const struct vk_kdl_value *v = &node->args[i];
            char num[32];
            const char *text = NULL;
            if (v->kind == VK_KDL_STRING)
                text = v->str.ptr;
            else if (v->kind == VK_KDL_INT && snprintf(num, sizeof(num), "%lld", (long long)v->i))
                text = num;
            else if (v->kind == VK_KDL_BOOL)
                text = v->b ? "1" : "0";
            if (!text || (o->kind != VK_CLI_LIST && node->nargs != 1)) {
                fprintf(stderr, "%s:%u:%u: error: '%s' takes %s\n", path, v->pos.line, v->pos.col,
                        o->name, o->kind == VK_CLI_LIST ? "strings" : "one value");
                rc = 2;
                break;
            }
            if (o->kind == VK_CLI_STR && !(text = keep_string(path, opts, n, text))) {
                rc = 2;
                break;
            }
            rc = set_value(cmd, o, text, "config");
        }
    }
    vk_kdl_doc_free(doc);
    vk_buf_release(&b);
    return rc;
}

int vk__cli_opts_parse(const char *cmd, int argc, char **argv, struct vk__cli_opt *opts, size_t n,
                       const char **pos, int *npos, int maxpos)
{
    *npos = 0;
    /* 1. config file, 2. environment, 3. flags. */
    for (int i = 1; i < argc; i++) {
        const char *path = NULL;
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc)
            path = argv[i + 1];
        else if (strncmp(argv[i], "--config=", 9) == 0)
            path = argv[i] + 9;
        if (path) {
            int rc = load_config(cmd, path, opts, n);
            if (rc)
                return rc;
        }
    }
    for (size_t i = 0; i < n; i++) {
        const char *v = opts[i].env ? getenv(opts[i].env) : NULL;
        if (v && *v) {
            if (opts[i].kind == VK_CLI_LIST)
                list_clear(opts[i].dst);
            int rc = set_value(cmd, &opts[i], v, opts[i].env);
            if (rc)
                return rc;
        }
    }
    bool seen_list[64] = {false};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            for (i++; i < argc; i++) {
                if (*npos == maxpos)
                    goto too_many;
                pos[(*npos)++] = argv[i];
            }
            break;
        }
        if (a[0] != '-' || a[1] == '\0') {
            if (*npos == maxpos)
                goto too_many;
            pos[(*npos)++] = a;
            continue;
        }
        if (strncmp(a, "--config", 8) == 0 && (a[8] == '\0' || a[8] == '=')) {
            i += a[8] == '\0';
            continue;
        }
        const char *name = a + (a[1] == '-' ? 2 : 1);
        const char *eq = strchr(name, '=');
        size_t len = eq ? (size_t)(eq - name) : strlen(name);
        struct vk__cli_opt *o = NULL;
        if (a[1] != '-' && len == 1) {
            for (size_t k = 0; k < n; k++) {
                if (opts[k].shortc && opts[k].shortc == name[0])
                    o = &opts[k];
            }
        } else if (a[1] == '-') {
            o = find(opts, n, name, len);
        }
        if (!o) {
            fprintf(stderr, "vulcan %s: unknown option '%s'; see 'vulcan %s --help'\n", cmd, a,
                    cmd);
            return 2;
        }
        const char *v;
        if (o->kind == VK_CLI_FLAG) {
            v = eq ? eq + 1 : "1";
        } else if (eq) {
            v = eq + 1;
        } else if (i + 1 < argc) {
            v = argv[++i];
        } else {
            fprintf(stderr, "vulcan %s: --%s needs a value\n", cmd, o->name);
            return 2;
        }
        size_t idx = (size_t)(o - opts);
        if (o->kind == VK_CLI_LIST && idx < VK_ARRAY_LEN(seen_list) && !seen_list[idx]) {
            /* Flags replace what the environment or config said. */
            list_clear(o->dst);
            seen_list[idx] = true;
        }
        int rc = set_value(cmd, o, v, "option");
        if (rc)
            return rc;
    }
    return 0;
too_many:
    fprintf(stderr, "vulcan %s: too many arguments; see 'vulcan %s --help'\n", cmd, cmd);
    return 2;
}
