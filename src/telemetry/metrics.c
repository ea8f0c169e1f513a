/*
 * Metrics registry: counter, gauge and histogram families with bounded label
 * sets, atomic updates, and Prometheus text exposition (format 0.0.4).
 *
 * Each family keeps its children in an open-addressing table of fixed size
 * (twice the series cap, rounded up to a power of two). Slots are written once,
 * under the family lock, with a release store; readers probe without a lock.
 * Children are never removed before the registry is freed, so a child pointer
 * handed out stays valid for the registry's lifetime.
 */
#include "vulcan/telemetry.h"

#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Counter stripes: a thread adds to the stripe its id hashes to, so two threads
 * rarely bounce one cache line. Each stripe fills a cache line of its own. */
#define STRIPES 8
#define CACHE_LINE 64

enum mtype { M_COUNTER, M_GAUGE, M_HISTOGRAM, M_GAUGE_FN };

static const char *const type_names[] = {"counter", "gauge", "histogram", "gauge"};

const double vk_metrics_buckets_default[15] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                               0.5,   1,      2.5,   5,    10,    30,   60};
const double vk_metrics_buckets_long[15] = {0.1, 0.5, 1,   2.5,  5,    10,   30,  60,
                                            120, 300, 600, 1200, 1800, 3600, 7200};

/* The part every child shares: its label values and creation-order link. */
struct series {
    const struct vk_metric *family;
    char *values[VK_METRICS_MAX_LABELS];
    uint64_t hash;
    struct series *next;
};

struct stripe {
    atomic_uint_fast64_t v;
    char pad[CACHE_LINE - sizeof(atomic_uint_fast64_t)];
};

struct vk_counter_child {
    struct series s;
    struct stripe stripes[STRIPES];
};

struct vk_gauge_child {
    struct series s;
    atomic_uint_fast64_t bits; /* a double */
};

struct vk_histogram_child {
    struct series s;
    atomic_uint_fast64_t sum_bits; /* a double */
    atomic_uint_fast64_t counts[]; /* per bucket (not cumulative), nbounds + 1 */
};

struct vk_metric {
    enum mtype type;
    char *name;
    char *help;
    size_t nlabels;
    char *labels[VK_METRICS_MAX_LABELS];
    size_t nbounds;
    double bounds[VK_METRICS_MAX_BUCKETS];
    vk_metrics_collect_fn fn;
    void *fn_arg;
    size_t max_series;

    pthread_mutex_t lock; /* guards inserts into slots, the list and nseries */
    _Atomic(struct series *) *slots;
    size_t mask;
    size_t nseries;
    struct series *first; /* creation order */
    struct series **last;
    struct series *overflow; /* created with the family */
    atomic_uint_fast64_t overflows;
};

struct vk_metrics {
    pthread_mutex_t lock; /* registration and rendering */
    size_t max_series;
    struct vk_metric **families;
    size_t nfamilies;
};

struct vk_metric_sink {
    struct vk_metric *m;
    struct vk_buf *out;
    size_t count;
    uint64_t dropped;
    int rc;
};

/* ---------------------------------------------------------------- helpers */

static uint64_t dbits(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof(u));
    return u;
}

static double bitsd(uint64_t u)
{
    double d;
    memcpy(&d, &u, sizeof(d));
    return d;
}

/* Shortest decimal text that reads back as `v` (Go's and Prometheus' forms of
 * the special values). `out` holds at least 32 bytes. */
static void fmt_double(double v, char *out, size_t cap)
{
    if (isnan(v)) {
        snprintf(out, cap, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(out, cap, "%s", v > 0 ? "+Inf" : "-Inf");
        return;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(out, cap, "%.*g", prec, v);
        if (strtod(out, NULL) == v)
            return;
    }
}

static bool valid_name(const char *s, bool colon_ok)
{
    if (!s || !*s)
        return false;
    for (size_t i = 0; s[i]; i++) {
        char c = s[i];
        bool alpha =
            (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon_ok && c == ':');
        bool digit = c >= '0' && c <= '9';
        if (!alpha && !(digit && i > 0))
            return false;
        if (i > 200)
            return false;
    }
    return true;
}

/* Copy label value `v` into `out` (VK_METRICS_MAX_VALUE_LEN + 1 bytes): NULL
 * becomes "", invalid UTF-8 bytes become '?', and the copy is cut at a
 * character boundary. */
static void sanitize_value(const char *v, char *out)
{
    size_t o = 0;
    if (!v)
        v = "";
    size_t len = strlen(v);
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        size_t n = vk_utf8_decode((const unsigned char *)v + i, len - i, &cp);
        if (n == 0 || cp == 0) {
            if (o + 1 > VK_METRICS_MAX_VALUE_LEN)
                break;
            out[o++] = '?';
            i++;
            continue;
        }
        if (o + n > VK_METRICS_MAX_VALUE_LEN)
            break;
        memcpy(out + o, v + i, n);
        o += n;
        i += n;
    }
    out[o] = '\0';
}

static uint64_t hash_values(const char *const *vals, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        for (const unsigned char *p = (const unsigned char *)vals[i]; *p; p++) {
            h ^= *p;
            h *= 1099511628211ull;
        }
        h ^= 0xff; /* never part of sanitised UTF-8: separates values */
        h *= 1099511628211ull;
    }
    return h;
}

static bool same_values(const struct series *s, const char *const *vals, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(s->values[i], vals[i]) != 0)
            return false;
    return true;
}

static size_t child_size(const struct vk_metric *m)
{
    switch (m->type) {
    case M_COUNTER:
        return sizeof(struct vk_counter_child);
    case M_GAUGE:
        return sizeof(struct vk_gauge_child);
    case M_HISTOGRAM:
        return sizeof(struct vk_histogram_child) + (m->nbounds + 1) * sizeof(atomic_uint_fast64_t);
    case M_GAUGE_FN:
        break;
    }
    return sizeof(struct series);
}

/* A zeroed child with copies of `vals`, or NULL when out of memory. */
static struct series *series_new(const struct vk_metric *m, const char *const *vals)
{
    struct series *s = vk_mem_calloc(1, child_size(m));
    if (!s)
        return NULL;
    for (size_t i = 0; i < m->nlabels; i++) {
        size_t n = strlen(vals[i]);
        s->values[i] = vk_mem_alloc(n + 1);
        if (!s->values[i]) {
            for (size_t j = 0; j < i; j++)
                vk_mem_free(s->values[j]);
            vk_mem_free(s);
            return NULL;
        }
        memcpy(s->values[i], vals[i], n + 1);
    }
    s->hash = hash_values(vals, m->nlabels);
    s->family = m;
    return s;
}

static void series_free(const struct vk_metric *m, struct series *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < m->nlabels; i++)
        vk_mem_free(s->values[i]);
    vk_mem_free(s);
}

static struct series *probe(struct vk_metric *m, const char *const *vals, uint64_t h)
{
    for (size_t i = (size_t)h & m->mask;; i = (i + 1) & m->mask) {
        struct series *s = atomic_load_explicit(&m->slots[i], memory_order_acquire);
        if (!s)
            return NULL;
        if (s->hash == h && same_values(s, vals, m->nlabels))
            return s;
    }
}

static void insert(struct vk_metric *m, struct series *s)
{
    size_t i = (size_t)s->hash & m->mask;
    while (atomic_load_explicit(&m->slots[i], memory_order_relaxed))
        i = (i + 1) & m->mask;
    atomic_store_explicit(&m->slots[i], s, memory_order_release);
    *m->last = s;
    m->last = &s->next;
    m->nseries++;
}

/* Find or create the child for `raw` label values; the overflow child past the cap. */
static struct series *lookup(struct vk_metric *m, const char *const *raw, size_t n)
{
    VK_ASSERT(n == m->nlabels);
    char bufs[VK_METRICS_MAX_LABELS][VK_METRICS_MAX_VALUE_LEN + 1];
    const char *vals[VK_METRICS_MAX_LABELS];
    for (size_t i = 0; i < n; i++) {
        sanitize_value(raw[i], bufs[i]);
        vals[i] = bufs[i];
    }
    uint64_t h = hash_values(vals, n);
    struct series *s = probe(m, vals, h);
    if (s)
        return s;
    pthread_mutex_lock(&m->lock);
    s = probe(m, vals, h);
    if (!s) {
        if (m->nseries < m->max_series)
            s = series_new(m, vals);
        if (s) {
            insert(m, s);
        } else {
            atomic_fetch_add_explicit(&m->overflows, 1, memory_order_relaxed);
            s = m->overflow;
        }
    }
    pthread_mutex_unlock(&m->lock);
    return s;
}

/* ---------------------------------------------------------------- lifecycle */

struct vk_metrics *vk_metrics_new(size_t max_series)
{
    struct vk_metrics *reg = vk_mem_xcalloc(1, sizeof(*reg));
    pthread_mutex_init(&reg->lock, NULL);
    reg->max_series = max_series ? max_series : VK_METRICS_DEFAULT_MAX_SERIES;
    return reg;
}

static void family_free(struct vk_metric *m)
{
    if (!m)
        return;
    struct series *s = m->first;
    while (s) {
        struct series *next = s->next;
        series_free(m, s);
        s = next;
    }
    series_free(m, m->overflow);
    vk_mem_free((void *)m->slots);
    for (size_t i = 0; i < m->nlabels; i++)
        vk_mem_free(m->labels[i]);
    vk_mem_free(m->name);
    vk_mem_free(m->help);
    pthread_mutex_destroy(&m->lock);
    vk_mem_free(m);
}

void vk_metrics_free(struct vk_metrics *reg)
{
    if (!reg)
        return;
    for (size_t i = 0; i < reg->nfamilies; i++)
        family_free(reg->families[i]);
    vk_mem_free(reg->families);
    pthread_mutex_destroy(&reg->lock);
    vk_mem_free(reg);
}

/* ---------------------------------------------------------------- registration */

/* Split "a, b" into trimmed, validated names. Returns the count or -1. */
static int parse_labels(const char *labels, char names[][64], bool histogram, struct vk_err *err)
{
    int n = 0;
    const char *p = labels ? labels : "";
    while (*p) {
        while (*p == ' ')
            p++;
        const char *e = p;
        while (*e && *e != ',')
            e++;
        const char *t = e;
        while (t > p && t[-1] == ' ')
            t--;
        size_t len = (size_t)(t - p);
        if (n == VK_METRICS_MAX_LABELS) {
            vk_err_set(err, VK_EINVAL, "too many label names in '%s'", labels);
            return -1;
        }
        if (len == 0 || len >= 64) {
            vk_err_set(err, VK_EINVAL, "bad label list '%s'", labels);
            return -1;
        }
        memcpy(names[n], p, len);
        names[n][len] = '\0';
        if (!valid_name(names[n], false) || strncmp(names[n], "__", 2) == 0 ||
            (histogram && strcmp(names[n], "le") == 0)) {
            vk_err_set(err, VK_EINVAL, "invalid label name '%s'", names[n]);
            return -1;
        }
        for (int i = 0; i < n; i++) {
            if (strcmp(names[i], names[n]) == 0) {
                vk_err_set(err, VK_EINVAL, "duplicate label name '%s'", names[n]);
                return -1;
            }
        }
        n++;
        p = *e ? e + 1 : e;
        if (*e == ',' && !*p) {
            vk_err_set(err, VK_EINVAL, "bad label list '%s'", labels);
            return -1;
        }
    }
    return n;
}

static bool same_family(const struct vk_metric *m, enum mtype type, char names[][64], int n,
                        const double *bounds, size_t nbounds, vk_metrics_collect_fn fn, void *arg)
{
    if (m->type != type || m->nlabels != (size_t)n || m->nbounds != nbounds)
        return false;
    for (int i = 0; i < n; i++)
        if (strcmp(m->labels[i], names[i]) != 0)
            return false;
    for (size_t i = 0; i < nbounds; i++)
        if (m->bounds[i] != bounds[i])
            return false;
    return m->fn == fn && m->fn_arg == arg;
}

static int family_init_children(struct vk_metric *m)
{
    if (m->type == M_GAUGE_FN)
        return 0;
    size_t want = m->nlabels ? m->max_series * 2 : 2;
    size_t slots = 8;
    while (slots < want)
        slots *= 2;
    m->slots = vk_mem_calloc(slots, sizeof(*m->slots));
    if (!m->slots)
        return VK_ENOMEM;
    m->mask = slots - 1;
    const char *ov[VK_METRICS_MAX_LABELS];
    for (size_t i = 0; i < m->nlabels; i++)
        ov[i] = VK_METRICS_OVERFLOW_VALUE;
    m->overflow = series_new(m, ov);
    if (!m->overflow)
        return VK_ENOMEM;
    if (m->nlabels == 0) {
        /* A family without labels has exactly one child and cannot overflow. */
        insert(m, m->overflow);
        m->overflow = NULL;
    }
    return 0;
}

static int do_register(struct vk_metrics *reg, enum mtype type, const char *name, const char *help,
                       const char *labels, const double *bounds, size_t nbounds,
                       vk_metrics_collect_fn fn, void *arg, struct vk_metric **out,
                       struct vk_err *err)
{
    char names[VK_METRICS_MAX_LABELS][64];
    *out = NULL;
    if (!valid_name(name, true))
        return vk_err_set(err, VK_EINVAL, "invalid metric name '%s'", name ? name : "");
    int n = parse_labels(labels, names, type == M_HISTOGRAM, err);
    if (n < 0)
        return VK_EINVAL;
    if (type == M_HISTOGRAM) {
        if (!bounds) {
            bounds = vk_metrics_buckets_default;
            nbounds = VK_ARRAY_LEN(vk_metrics_buckets_default);
        }
        if (nbounds == 0 || nbounds > VK_METRICS_MAX_BUCKETS)
            return vk_err_set(err, VK_EINVAL, "histogram '%s': 1 to %d bucket bounds", name,
                              VK_METRICS_MAX_BUCKETS);
        for (size_t i = 0; i < nbounds; i++) {
            if (!isfinite(bounds[i]) || (i > 0 && bounds[i] <= bounds[i - 1]))
                return vk_err_set(err, VK_EINVAL,
                                  "histogram '%s': bounds must be finite and increasing", name);
        }
    } else {
        nbounds = 0;
        bounds = NULL;
    }

    int rc = 0;
    pthread_mutex_lock(&reg->lock);
    for (size_t i = 0; i < reg->nfamilies; i++) {
        struct vk_metric *m = reg->families[i];
        if (strcmp(m->name, name) != 0)
            continue;
        if (same_family(m, type, names, n, bounds, nbounds, fn, arg))
            *out = m;
        else
            rc = vk_err_set(err, VK_EEXIST, "metric '%s' exists with another definition", name);
        goto out;
    }

    struct vk_metric *m = vk_mem_calloc(1, sizeof(*m));
    if (!m) {
        rc = vk_err_set(err, VK_ENOMEM, "out of memory registering '%s'", name);
        goto out;
    }
    pthread_mutex_init(&m->lock, NULL);
    m->type = type;
    m->fn = fn;
    m->fn_arg = arg;
    m->max_series = reg->max_series;
    m->last = &m->first;
    m->nbounds = nbounds;
    for (size_t i = 0; i < nbounds; i++)
        m->bounds[i] = bounds[i];
    m->name = vk_mem_alloc(strlen(name) + 1);
    m->help = vk_mem_alloc(strlen(help ? help : "") + 1);
    rc = (m->name && m->help) ? 0 : VK_ENOMEM;
    if (rc == 0) {
        strcpy(m->name, name);
        strcpy(m->help, help ? help : "");
    }
    for (int i = 0; rc == 0 && i < n; i++) {
        m->labels[i] = vk_mem_alloc(strlen(names[i]) + 1);
        if (!m->labels[i])
            rc = VK_ENOMEM;
        else
            strcpy(m->labels[i], names[i]);
        m->nlabels = (size_t)i + 1;
    }
    if (rc == 0)
        rc = family_init_children(m);
    if (rc == 0) {
        struct vk_metric **fams =
            vk_mem_realloc(reg->families, (reg->nfamilies + 1) * sizeof(*reg->families));
        if (!fams)
            rc = VK_ENOMEM;
        else
            reg->families = fams;
    }
    if (rc < 0) {
        family_free(m);
        rc = vk_err_set(err, rc, "out of memory registering '%s'", name);
        goto out;
    }
    reg->families[reg->nfamilies++] = m;
    *out = m;
out:
    pthread_mutex_unlock(&reg->lock);
    return rc;
}

int vk_metrics_counter(struct vk_metrics *reg, const char *name, const char *help,
                       const char *labels, struct vk_metric **out, struct vk_err *err)
{
    return do_register(reg, M_COUNTER, name, help, labels, NULL, 0, NULL, NULL, out, err);
}

int vk_metrics_gauge(struct vk_metrics *reg, const char *name, const char *help, const char *labels,
                     struct vk_metric **out, struct vk_err *err)
{
    return do_register(reg, M_GAUGE, name, help, labels, NULL, 0, NULL, NULL, out, err);
}

int vk_metrics_histogram(struct vk_metrics *reg, const char *name, const char *help,
                         const char *labels, const double *bounds, size_t nbounds,
                         struct vk_metric **out, struct vk_err *err)
{
    return do_register(reg, M_HISTOGRAM, name, help, labels, bounds, nbounds, NULL, NULL, out, err);
}

int vk_metrics_gauge_fn(struct vk_metrics *reg, const char *name, const char *help,
                        const char *labels, vk_metrics_collect_fn fn, void *arg,
                        struct vk_metric **out, struct vk_err *err)
{
    VK_ASSERT(fn != NULL);
    return do_register(reg, M_GAUGE_FN, name, help, labels, NULL, 0, fn, arg, out, err);
}

/* ---------------------------------------------------------------- children */

static struct series *lookup_va(struct vk_metric *m, va_list ap)
{
    const char *vals[VK_METRICS_MAX_LABELS];
    for (size_t i = 0; i < m->nlabels; i++)
        vals[i] = va_arg(ap, const char *);
    return lookup(m, vals, m->nlabels);
}

struct vk_counter_child *vk_metrics_counter_with(struct vk_metric *m, ...)
{
    VK_ASSERT(m->type == M_COUNTER);
    va_list ap;
    va_start(ap, m);
    struct series *s = lookup_va(m, ap);
    va_end(ap);
    return (struct vk_counter_child *)s;
}

struct vk_gauge_child *vk_metrics_gauge_with(struct vk_metric *m, ...)
{
    VK_ASSERT(m->type == M_GAUGE);
    va_list ap;
    va_start(ap, m);
    struct series *s = lookup_va(m, ap);
    va_end(ap);
    return (struct vk_gauge_child *)s;
}

struct vk_histogram_child *vk_metrics_histogram_with(struct vk_metric *m, ...)
{
    VK_ASSERT(m->type == M_HISTOGRAM);
    va_list ap;
    va_start(ap, m);
    struct series *s = lookup_va(m, ap);
    va_end(ap);
    return (struct vk_histogram_child *)s;
}

struct vk_counter_child *vk_metrics_counter_withv(struct vk_metric *m, const char *const *values,
                                                  size_t n)
{
    VK_ASSERT(m->type == M_COUNTER);
    return (struct vk_counter_child *)lookup(m, values, n);
}

struct vk_gauge_child *vk_metrics_gauge_withv(struct vk_metric *m, const char *const *values,
                                              size_t n)
{
    VK_ASSERT(m->type == M_GAUGE);
    return (struct vk_gauge_child *)lookup(m, values, n);
}

struct vk_histogram_child *vk_metrics_histogram_withv(struct vk_metric *m,
                                                      const char *const *values, size_t n)
{
    VK_ASSERT(m->type == M_HISTOGRAM);
    return (struct vk_histogram_child *)lookup(m, values, n);
}

uint64_t vk_metrics_overflows(const struct vk_metric *m)
{
    return atomic_load_explicit(&m->overflows, memory_order_relaxed);
}

/* ---------------------------------------------------------------- updates */

static unsigned stripe_of_thread(void)
{
    uint64_t id = (uint64_t)pthread_self();
    return (unsigned)((id * 0x9E3779B97F4A7C15ull) >> 61); /* top 3 bits: 0..7 */
}

void vk_metrics_counter_add(struct vk_counter_child *c, uint64_t n)
{
    if (!c)
        return;
    atomic_fetch_add_explicit(&c->stripes[stripe_of_thread()].v, n, memory_order_relaxed);
}

void vk_metrics_counter_inc(struct vk_counter_child *c)
{
    vk_metrics_counter_add(c, 1);
}

uint64_t vk_metrics_counter_value(const struct vk_counter_child *c)
{
    uint64_t total = 0;
    if (!c)
        return 0;
    for (int i = 0; i < STRIPES; i++)
        total += atomic_load_explicit(&c->stripes[i].v, memory_order_relaxed);
    return total;
}

void vk_metrics_gauge_set(struct vk_gauge_child *g, double v)
{
    if (g)
        atomic_store_explicit(&g->bits, dbits(v), memory_order_relaxed);
}

static void add_double(atomic_uint_fast64_t *bits, double delta)
{
    uint64_t old = atomic_load_explicit(bits, memory_order_relaxed);
    while (!atomic_compare_exchange_weak_explicit(bits, &old, dbits(bitsd(old) + delta),
                                                  memory_order_relaxed, memory_order_relaxed)) {
    }
}

void vk_metrics_gauge_add(struct vk_gauge_child *g, double delta)
{
    if (g)
        add_double(&g->bits, delta);
}

double vk_metrics_gauge_value(const struct vk_gauge_child *g)
{
    return g ? bitsd(atomic_load_explicit(&g->bits, memory_order_relaxed)) : 0;
}

/* The bucket is found by a linear scan over at most VK_METRICS_MAX_BUCKETS
 * bounds: with the default 15 it costs less than a binary search's branches. */
void vk_metrics_histogram_observe(struct vk_histogram_child *h, double v)
{
    if (!h || isnan(v))
        return;
    const struct vk_metric *m = h->s.family;
    size_t i = 0;
    while (i < m->nbounds && v > m->bounds[i])
        i++;
    atomic_fetch_add_explicit(&h->counts[i], 1, memory_order_relaxed);
    add_double(&h->sum_bits, v);
}

uint64_t vk_metrics_histogram_count(const struct vk_histogram_child *h)
{
    if (!h)
        return 0;
    const struct vk_metric *m = h->s.family;
    uint64_t total = 0;
    for (size_t i = 0; i <= m->nbounds; i++)
        total += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
    return total;
}

double vk_metrics_histogram_sum(const struct vk_histogram_child *h)
{
    return h ? bitsd(atomic_load_explicit(&h->sum_bits, memory_order_relaxed)) : 0;
}

/* ---------------------------------------------------------------- rendering */

/* HELP text escapes backslash and newline; label values also escape '"'. */
static int add_escaped(struct vk_buf *out, const char *s, bool quote)
{
    int rc = 0;
    const char *run = s;
    for (const char *p = s; *p && rc == 0; p++) {
        const char *rep = NULL;
        if (*p == '\\')
            rep = "\\\\";
        else if (*p == '\n')
            rep = "\\n";
        else if (quote && *p == '"')
            rep = "\\\"";
        if (!rep)
            continue;
        rc = vk_buf_add(out, run, (size_t)(p - run));
        if (rc == 0)
            rc = vk_buf_adds(out, rep);
        run = p + 1;
    }
    if (rc == 0)
        rc = vk_buf_adds(out, run);
    return rc;
}

/* `{a="x",b="y"` plus, when `le` is set, `,le="…"`, then `}`; nothing when
 * there are no labels at all. */
static int add_labels(struct vk_buf *out, const struct vk_metric *m, const char *const *vals,
                      const char *le)
{
    int rc = 0;
    if (m->nlabels == 0 && !le)
        return 0;
    rc = vk_buf_addch(out, '{');
    for (size_t i = 0; rc == 0 && i < m->nlabels; i++) {
        rc = vk_buf_addf(out, "%s%s=\"", i ? "," : "", m->labels[i]);
        if (rc == 0)
            rc = add_escaped(out, vals[i], true);
        if (rc == 0)
            rc = vk_buf_addch(out, '"');
    }
    if (rc == 0 && le)
        rc = vk_buf_addf(out, "%sle=\"%s\"", m->nlabels ? "," : "", le);
    if (rc == 0)
        rc = vk_buf_addch(out, '}');
    return rc;
}

static int add_sample(struct vk_buf *out, const struct vk_metric *m, const char *suffix,
                      const char *const *vals, const char *le, const char *value)
{
    int rc = vk_buf_addf(out, "%s%s", m->name, suffix);
    if (rc == 0)
        rc = add_labels(out, m, vals, le);
    if (rc == 0)
        rc = vk_buf_addf(out, " %s\n", value);
    return rc;
}

static int render_series(struct vk_buf *out, const struct vk_metric *m, const struct series *s)
{
    const char *const *vals = (const char *const *)s->values;
    char num[64];
    int rc = 0;
    switch (m->type) {
    case M_COUNTER:
        snprintf(num, sizeof(num), "%llu",
                 (unsigned long long)vk_metrics_counter_value((const struct vk_counter_child *)s));
        return add_sample(out, m, "", vals, NULL, num);
    case M_GAUGE:
        fmt_double(vk_metrics_gauge_value((const struct vk_gauge_child *)s), num, sizeof(num));
        return add_sample(out, m, "", vals, NULL, num);
    case M_HISTOGRAM: {
        const struct vk_histogram_child *h = (const struct vk_histogram_child *)s;
        uint64_t cum = 0;
        char le[64];
        for (size_t i = 0; rc == 0 && i <= m->nbounds; i++) {
            cum += atomic_load_explicit(&h->counts[i], memory_order_relaxed);
            if (i < m->nbounds)
                fmt_double(m->bounds[i], le, sizeof(le));
            else
                snprintf(le, sizeof(le), "+Inf");
            snprintf(num, sizeof(num), "%llu", (unsigned long long)cum);
            rc = add_sample(out, m, "_bucket", vals, le, num);
        }
        if (rc == 0) {
            fmt_double(vk_metrics_histogram_sum(h), num, sizeof(num));
            rc = add_sample(out, m, "_sum", vals, NULL, num);
        }
        if (rc == 0) {
            snprintf(num, sizeof(num), "%llu", (unsigned long long)cum);
            rc = add_sample(out, m, "_count", vals, NULL, num);
        }
        return rc;
    }
    case M_GAUGE_FN:
        break;
    }
    return 0;
}

static int cmp_series(const void *a, const void *b)
{
    const struct series *x = *(const struct series *const *)a;
    const struct series *y = *(const struct series *const *)b;
    for (size_t i = 0; i < x->family->nlabels; i++) {
        int c = strcmp(x->values[i], y->values[i]);
        if (c)
            return c;
    }
    return 0;
}

void vk_metrics_sink_add(struct vk_metric_sink *sink, double value, ...)
{
    const struct vk_metric *m = sink->m;
    char bufs[VK_METRICS_MAX_LABELS][VK_METRICS_MAX_VALUE_LEN + 1];
    const char *vals[VK_METRICS_MAX_LABELS];
    if (sink->rc < 0)
        return;
    if (sink->count >= m->max_series) {
        sink->dropped++;
        return;
    }
    va_list ap;
    va_start(ap, value);
    for (size_t i = 0; i < m->nlabels; i++) {
        sanitize_value(va_arg(ap, const char *), bufs[i]);
        vals[i] = bufs[i];
    }
    va_end(ap);
    char num[64];
    fmt_double(value, num, sizeof(num));
    sink->rc = add_sample(sink->out, m, "", vals, NULL, num);
    sink->count++;
}

static int render_family(struct vk_buf *out, struct vk_metric *m)
{
    int rc = vk_buf_addf(out, "# HELP %s ", m->name);
    if (rc == 0)
        rc = add_escaped(out, m->help, false);
    if (rc == 0)
        rc = vk_buf_addf(out, "\n# TYPE %s %s\n", m->name, type_names[m->type]);
    if (rc < 0)
        return rc;
    if (m->type == M_GAUGE_FN) {
        struct vk_metric_sink sink = {m, out, 0, 0, 0};
        m->fn(m->fn_arg, &sink);
        return sink.rc;
    }

    /* Snapshot the list under the lock; children never go away, so they can
     * be read after it is released. */
    pthread_mutex_lock(&m->lock);
    size_t n = m->nseries;
    struct series **all = vk_mem_alloc((n + 1) * sizeof(*all));
    size_t k = 0;
    for (struct series *s = m->first; all && s && k < n; s = s->next)
        all[k++] = s;
    pthread_mutex_unlock(&m->lock);
    if (!all)
        return VK_ENOMEM;
    if (m->overflow && vk_metrics_overflows(m) > 0)
        all[k++] = m->overflow;
    qsort(all, k, sizeof(*all), cmp_series);
    for (size_t i = 0; rc == 0 && i < k; i++)
        rc = render_series(out, m, all[i]);
    vk_mem_free(all);
    return rc;
}

int vk_metrics_render(struct vk_metrics *reg, struct vk_buf *out, struct vk_err *err)
{
    int rc = 0;
    pthread_mutex_lock(&reg->lock);
    for (size_t i = 0; rc == 0 && i < reg->nfamilies; i++)
        rc = render_family(out, reg->families[i]);
    pthread_mutex_unlock(&reg->lock);
    if (rc < 0)
        return vk_err_set(err, rc, "cannot render metrics: %s", vk_err_name(rc));
    return 0;
}

/* ---------------------------------------------------------------- Vulcan's metrics */

int vk_metrics_std_register(struct vk_metrics *reg, struct vk_metrics_std *out, struct vk_err *err)
{
    int rc = vk_metrics_counter(reg, VK_METRIC_CHAINS_TOTAL, "Chains finished, by final status.",
                                "status", &out->chains_total, err);
    if (rc == 0)
        rc = vk_metrics_counter(reg, VK_METRIC_FRAGMENTS_TOTAL,
                                "Fragments finished, by final status.", "status",
                                &out->fragments_total, err);
    if (rc == 0)
        rc = vk_metrics_counter(reg, VK_METRIC_WEBHOOK_DELIVERIES_TOTAL,
                                "Webhook deliveries received, by provider and verdict.",
                                "provider,verdict", &out->webhook_deliveries_total, err);
    if (rc == 0)
        rc = vk_metrics_counter(reg, VK_METRIC_HTTP_REQUESTS_TOTAL,
                                "HTTP requests served, by method, route pattern and status code.",
                                "method,route,status", &out->http_requests_total, err);
    if (rc == 0)
        rc = vk_metrics_histogram(reg, VK_METRIC_FRAGMENT_QUEUE_WAIT,
                                  "Time from a fragment becoming ready to a worker claiming it.",
                                  "machine_group", NULL, 0, &out->fragment_queue_wait, err);
    if (rc == 0)
        rc = vk_metrics_histogram(
            reg, VK_METRIC_FRAGMENT_RUN_DURATION,
            "Time from a fragment being claimed to its result, by machine group and status.",
            "machine_group,status", vk_metrics_buckets_long, VK_ARRAY_LEN(vk_metrics_buckets_long),
            &out->fragment_run_duration, err);
    if (rc == 0)
        rc = vk_metrics_histogram(reg, VK_METRIC_CHAIN_DURATION,
                                  "Time from a chain's creation to its final status.", "status",
                                  vk_metrics_buckets_long, VK_ARRAY_LEN(vk_metrics_buckets_long),
                                  &out->chain_duration, err);
    if (rc == 0)
        rc = vk_metrics_histogram(reg, VK_METRIC_HTTP_REQUEST_DURATION,
                                  "Time to serve an HTTP request, by method and route pattern.",
                                  "method,route", NULL, 0, &out->http_request_duration, err);
    if (rc == 0)
        rc = vk_metrics_histogram(reg, VK_METRIC_WEBHOOK_TO_CHAIN,
                                  "Time from a webhook's arrival to its chain being stored.",
                                  "provider", NULL, 0, &out->webhook_to_chain, err);
    return rc;
}
