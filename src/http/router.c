/* Route table: pattern parsing, specificity order, matching and %-decoding. */
#include "http_int.h"

#include <string.h>

void vk__http_router_init(struct vk__http_router *r)
{
    r->routes = NULL;
    r->n = 0;
    r->cap = 0;
}

static void route_free(struct vk__http_route *rt)
{
    if (!rt)
        return;
    for (size_t i = 0; i < rt->nsegs; i++)
        vk_mem_free(rt->segs[i].text);
    vk_mem_free(rt->segs);
    vk_mem_free(rt->method);
    vk_mem_free(rt->pattern);
    vk_mem_free(rt);
}

void vk__http_router_release(struct vk__http_router *r)
{
    for (size_t i = 0; i < r->n; i++)
        route_free(r->routes[i]);
    vk_mem_free(r->routes);
    vk__http_router_init(r);
}

static bool is_token_char(char c)
{
    return (c >= 'A' && c <= 'Z') || c == '-' || c == '_';
}

static bool is_name_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

/* A literal segment may hold any printable ASCII but '/', '?', '#', '{', '}', '%'. */
static bool is_lit_char(char c)
{
    return c > 0x20 && c < 0x7f && !strchr("/?#{}%*", c);
}

/* Parse `pattern` into segments. Accepts "/" and "/seg(/seg)*" where the last
 * segment may be "*". */
static int parse_pattern(struct vk__http_route *rt, const char *pattern, struct vk_err *err)
{
    if (pattern[0] != '/')
        return vk_err_set(err, VK_EINVAL, "route pattern '%s' must start with '/'", pattern);
    if (strcmp(pattern, "/") == 0)
        return 0;
    size_t n = 0;
    for (const char *p = pattern; *p; p++)
        n += *p == '/';
    rt->segs = vk_mem_xcalloc(n, sizeof(*rt->segs));
    const char *p = pattern;
    while (*p) {
        p++; /* skip '/' */
        const char *e = strchr(p, '/');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        struct vk__http_seg *s = &rt->segs[rt->nsegs];
        if (len == 0)
            return vk_err_set(err, VK_EINVAL, "route pattern '%s' has an empty segment", pattern);
        if (len == 1 && p[0] == '*') {
            if (e)
                return vk_err_set(err, VK_EINVAL, "route pattern '%s': '*' must be last", pattern);
            s->kind = SEG_REST;
            s->text = vk_mem_xstrdup("*");
            s->len = 1;
        } else if (p[0] == '{') {
            if (len < 3 || p[len - 1] != '}')
                return vk_err_set(err, VK_EINVAL, "route pattern '%s': bad parameter", pattern);
            for (size_t i = 1; i + 1 < len; i++)
                if (!is_name_char(p[i]))
                    return vk_err_set(err, VK_EINVAL, "route pattern '%s': bad parameter name",
                                      pattern);
            for (size_t i = 0; i < rt->nsegs; i++)
                if (rt->segs[i].kind == SEG_PARAM && rt->segs[i].len == len - 2 &&
                    memcmp(rt->segs[i].text, p + 1, len - 2) == 0)
                    return vk_err_set(err, VK_EINVAL, "route pattern '%s': parameter named twice",
                                      pattern);
            s->kind = SEG_PARAM;
            s->text = vk_mem_xstrndup(p + 1, len - 2);
            s->len = len - 2;
        } else {
            for (size_t i = 0; i < len; i++)
                if (!is_lit_char(p[i]))
                    return vk_err_set(err, VK_EINVAL, "route pattern '%s': bad character", pattern);
            s->kind = SEG_LIT;
            s->text = vk_mem_xstrndup(p, len);
            s->len = len;
        }
        rt->nsegs++;
        p += len;
    }
    return 0;
}

/* Specificity: compare segment kinds left to right (literal < param < rest);
 * a route that runs out of segments first is more specific unless the other
 * continues with literals. Negative when `a` is more specific. */
static int compare_routes(const struct vk__http_route *a, const struct vk__http_route *b)
{
    size_t n = a->nsegs < b->nsegs ? a->nsegs : b->nsegs;
    for (size_t i = 0; i < n; i++)
        if (a->segs[i].kind != b->segs[i].kind)
            return (int)a->segs[i].kind - (int)b->segs[i].kind;
    if (a->nsegs != b->nsegs)
        return a->nsegs < b->nsegs ? -1 : 1;
    return 0;
}

int vk__http_router_add(struct vk__http_router *r, const char *method, const char *pattern,
                        vk_http_handler_fn handler, void *ctx,
                        const struct vk_http_route_opts *opts, struct vk_err *err)
{
    if (!method || !*method || !pattern || !handler)
        return vk_err_set(err, VK_EINVAL, "route needs a method, a pattern and a handler");
    for (const char *m = method; *m; m++)
        if (!is_token_char(*m))
            return vk_err_set(err, VK_EINVAL, "bad route method '%s'", method);
    size_t max_body = opts && opts->max_body ? opts->max_body : VK_HTTP_DEFAULT_MAX_BODY;
    if (max_body > VK_HTTP_HARD_MAX_BODY)
        return vk_err_set(err, VK_EINVAL, "route '%s %s': body cap above %u bytes", method, pattern,
                          VK_HTTP_HARD_MAX_BODY);
    for (size_t i = 0; i < r->n; i++)
        if (strcmp(r->routes[i]->method, method) == 0 &&
            strcmp(r->routes[i]->pattern, pattern) == 0)
            return vk_err_set(err, VK_EEXIST, "route '%s %s' registered twice", method, pattern);

    struct vk__http_route *rt = vk_mem_xcalloc(1, sizeof(*rt));
    int rc = parse_pattern(rt, pattern, err);
    if (rc < 0) {
        route_free(rt);
        return rc;
    }
    rt->method = vk_mem_xstrdup(method);
    rt->pattern = vk_mem_xstrdup(pattern);
    rt->handler = handler;
    rt->ctx = ctx;
    rt->max_body = max_body;
    rt->json = opts && opts->json;
    rt->order = r->n;
    vk_array_xgrow(&r->routes, &r->cap, r->n + 1, 16, sizeof(*r->routes));
    /* Stable insertion: after every route at least as specific. */
    size_t pos = r->n;
    while (pos > 0 && compare_routes(rt, r->routes[pos - 1]) < 0)
        pos--;
    memmove(&r->routes[pos + 1], &r->routes[pos], (r->n - pos) * sizeof(*r->routes));
    r->routes[pos] = rt;
    r->n++;
    return 0;
}

char *vk__http_decode(struct vk_pool *pool, const char *s, size_t len, bool plus)
{
    char *out = vk_pool_alloc(pool, len + 1);
    if (!out)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= len)
                return NULL;
            int hi = vk_hex_value(s[i + 1]), lo = vk_hex_value(s[i + 2]);
            if (hi < 0 || lo < 0)
                return NULL;
            c = (char)(hi * 16 + lo);
            if (c == '\0')
                return NULL;
            i += 2;
        } else if (c == '+' && plus) {
            c = ' ';
        } else if (c == '\0') {
            return NULL;
        }
        out[o++] = c;
    }
    out[o] = '\0';
    return out;
}

/* Does `rt` match the path split in `segs`? (Pure: no allocation.) */
static bool route_matches(const struct vk__http_route *rt, const char *const *seg_ptr,
                          const size_t *seg_len, size_t nseg)
{
    size_t i = 0;
    for (; i < rt->nsegs; i++) {
        const struct vk__http_seg *s = &rt->segs[i];
        if (s->kind == SEG_REST)
            return true;
        if (i >= nseg)
            return false;
        if (s->kind == SEG_LIT && (s->len != seg_len[i] || memcmp(s->text, seg_ptr[i], s->len)))
            return false;
        if (s->kind == SEG_PARAM && seg_len[i] == 0)
            return false;
    }
    return i == nseg;
}

static bool has_rest(const struct vk__http_route *rt)
{
    return rt->nsegs > 0 && rt->segs[rt->nsegs - 1].kind == SEG_REST;
}

/* Is `method` already in the comma-separated list `allow`? */
static bool allow_has(const struct vk_buf *allow, const char *method)
{
    size_t ml = strlen(method);
    const char *p = allow->data;
    while (p && *p) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == ml && memcmp(p, method, ml) == 0)
            return true;
        p = e ? e + 2 : NULL;
    }
    return false;
}

static bool method_matches(const char *route_method, const char *method)
{
    return strcmp(route_method, method) == 0 ||
           (strcmp(method, "HEAD") == 0 && strcmp(route_method, "GET") == 0);
}

#define MAX_SEGS 64

enum vk__http_match vk__http_router_match(const struct vk__http_router *r, const char *method,
                                          const char *path, struct vk_pool *pool,
                                          const struct vk__http_route **route,
                                          struct vk__http_kv **params, size_t *nparams,
                                          struct vk_buf *allow)
{
    const char *seg_ptr[MAX_SEGS];
    size_t seg_len[MAX_SEGS];
    size_t nseg = 0;
    *route = NULL;
    *params = NULL;
    *nparams = 0;
    if (path[0] != '/')
        return VK__HTTP_MATCH_NOT_FOUND;
    if (path[1] != '\0') {
        const char *p = path;
        while (*p) {
            if (nseg == MAX_SEGS)
                return VK__HTTP_MATCH_NOT_FOUND;
            p++;
            const char *e = strchr(p, '/');
            size_t len = e ? (size_t)(e - p) : strlen(p);
            seg_ptr[nseg] = p;
            seg_len[nseg] = len;
            nseg++;
            p += len;
        }
    }

    const struct vk__http_route *hit = NULL;
    bool path_known = false;
    for (size_t i = 0; i < r->n; i++) {
        const struct vk__http_route *rt = r->routes[i];
        if (!route_matches(rt, seg_ptr, seg_len, nseg))
            continue;
        /* A prefix route does not make every path below it "known": an
         * unmatched method there is 404, not 405. */
        if (!has_rest(rt))
            path_known = true;
        if (method_matches(rt->method, method)) {
            hit = rt;
            break;
        }
    }
    if (!hit) {
        if (!path_known)
            return VK__HTTP_MATCH_NOT_FOUND;
        if (allow) {
            /* Allow lists every method of every route matching the path. */
            for (size_t i = 0; i < r->n; i++) {
                const struct vk__http_route *rt = r->routes[i];
                if (has_rest(rt) || !route_matches(rt, seg_ptr, seg_len, nseg) ||
                    allow_has(allow, rt->method))
                    continue;
                if (allow->len && vk_buf_adds(allow, ", ") < 0)
                    break;
                if (vk_buf_adds(allow, rt->method) < 0)
                    break;
                if (strcmp(rt->method, "GET") == 0 && !allow_has(allow, "HEAD") &&
                    vk_buf_adds(allow, ", HEAD") < 0)
                    break;
            }
        }
        return VK__HTTP_MATCH_BAD_METHOD;
    }

    size_t np = 0;
    for (size_t i = 0; i < hit->nsegs; i++)
        np += hit->segs[i].kind != SEG_LIT;
    if (np) {
        struct vk__http_kv *kv = vk_pool_alloc(pool, np * sizeof(*kv));
        if (!kv)
            return VK__HTTP_MATCH_BAD_PATH;
        size_t k = 0;
        for (size_t i = 0; i < hit->nsegs; i++) {
            const struct vk__http_seg *s = &hit->segs[i];
            if (s->kind == SEG_LIT)
                continue;
            kv[k].name = s->text;
            if (s->kind == SEG_PARAM) {
                kv[k].value = vk__http_decode(pool, seg_ptr[i], seg_len[i], false);
            } else {
                /* The rest of the path after the prefix, as sent, without its '/'. */
                const char *rest = i < nseg ? seg_ptr[i] : "";
                kv[k].value = vk_pool_strndup(pool, rest, strlen(rest));
            }
            if (!kv[k].value)
                return VK__HTTP_MATCH_BAD_PATH;
            k++;
        }
        *params = kv;
        *nparams = k;
    }
    *route = hit;
    return VK__HTTP_MATCH_OK;
}
