/*
 * store logs: fragment output as ordered chunks per (fragment, attempt), appended
 * idempotently by byte offset and read back from any offset.
 */
#include "store_int.h"

#include <string.h>

/* Stored length of the log of (fragment, attempt): end of its last chunk. */
static int log_total(struct vk__conn *c, const struct vk__param *p, int64_t *total,
                     struct vk_err *err)
{
    struct vk__res *r = NULL;
    int rc = vk__query(c, VK__STMT_LOG_TAIL,
                       "SELECT off + length(data) FROM log_chunks WHERE fragment_id = $1"
                       " AND attempt = $2 ORDER BY off DESC LIMIT 1",
                       p, 2, &r, err);
    if (rc)
        return rc;
    rc = vk__next(r, err);
    *total = rc > 0 ? vk__col_int(r, 0) : 0;
    vk__res_free(r);
    return rc < 0 ? rc : 0;
}

int vk_store_log_append(struct vk_store *s, const char *fragment_id, int attempt, int64_t offset,
                        const void *data, size_t len, int64_t *total_out, struct vk_err *err)
{
    if (len > VK_STORE_MAX_LOG_CHUNK)
        return vk_err_set(err, VK_ETOOBIG, "log chunk of %zu bytes (at most %u)", len,
                          VK_STORE_MAX_LOG_CHUNK);
    if (offset < 0)
        return vk_err_set(err, VK_EINVAL, "negative log offset");
    struct vk__conn *c = NULL;
    int rc = vk__store_begin(s, &c, err);
    if (rc)
        return rc;
    struct vk__param p[] = {vk__text(fragment_id), vk__int(attempt)};
    int64_t cur = 0, total = 0;
    rc = vk__query_int(c, VK__STMT_LOG_ATTEMPT, "SELECT attempt FROM fragments WHERE id = $1", p, 1,
                       &cur, err);
    if (rc == VK_ENOTFOUND)
        vk_err_set(err, rc, "fragment '%s' not found", fragment_id);
    else if (rc == 0 && cur != attempt)
        rc = vk_err_set(err, VK_ECONFLICT,
                        "fragment '%s': log for attempt %d is stale (current attempt is %lld)",
                        fragment_id, attempt, (long long)cur);
    if (rc == 0)
        rc = log_total(c, p, &total, err);
    if (rc == 0 && offset > total)
        rc = vk_err_set(err, VK_EINVAL, "log offset %lld is past the end of the log (%lld)",
                        (long long)offset, (long long)total);
    if (rc == 0 && offset + (int64_t)len > total) {
        /* Append only the part not stored yet (all of it when offset == total). */
        size_t skip = (size_t)(total - offset);
        struct vk__param ip[] = {p[0], p[1], vk__int(total),
                                 vk__blob((const char *)data + skip, len - skip)};
        rc = vk__exec(c, VK__STMT_LOG_INSERT,
                      "INSERT INTO log_chunks (fragment_id, attempt, off, data)"
                      " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING",
                      ip, 4, NULL, err);
        if (rc == 0)
            total = offset + (int64_t)len;
    }
    rc = vk__store_end(s, c, rc, err);
    if (rc == 0 && total_out)
        *total_out = total;
    return rc;
}

int vk_store_log_read(struct vk_store *s, const char *fragment_id, int attempt, int64_t offset,
                      void *buf, size_t max, size_t *nread, int64_t *total, struct vk_err *err)
{
    *nread = 0;
    *total = 0;
    if (offset < 0)
        return vk_err_set(err, VK_EINVAL, "negative log offset");
    if (max > VK_MAX_FILE)
        max = VK_MAX_FILE;
    struct vk__conn *c = NULL;
    int rc = vk__store_conn_get(s, &c, err);
    if (rc)
        return rc;
    struct vk__param p[] = {vk__text(fragment_id), vk__int(attempt), vk__int(offset + (int64_t)max),
                            vk__int(offset)};
    rc = log_total(c, p, total, err);
    if (rc || offset >= *total || max == 0)
        goto out;
    struct vk__res *r = NULL;
    if (c->res.handle)
        s->ops->res_free(&c->res);
    /* Each chunk comes back cut to the bytes wanted from it, [max(off, $4), $3): a small
     * read of a log of large chunks copies (and, from PostgreSQL, transfers) only those. */
    rc = s->ops->query(c, VK__STMT_LOG_READ,
                       "SELECT off, substr(data,"
                       " CAST(CASE WHEN off < $4 THEN $4 - off + 1 ELSE 1 END AS INTEGER),"
                       " CAST($3 - CASE WHEN off < $4 THEN $4 ELSE off END AS INTEGER))"
                       " FROM log_chunks WHERE fragment_id = $1 AND attempt = $2"
                       " AND off < $3 AND off >= COALESCE((SELECT MAX(off) FROM log_chunks"
                       " WHERE fragment_id = $1 AND attempt = $2 AND off <= $4), 0)"
                       " ORDER BY off",
                       p, 4, VK__Q_BINARY, &r, err);
    unsigned char *out = buf;
    while (rc == 0 && (rc = vk__next(r, err)) > 0) {
        rc = 0;
        int64_t off = vk__col_int(r, 0);
        int64_t start = off < offset ? offset : off; /* the first byte of the row's slice */
        size_t clen = 0;
        const unsigned char *d = s->ops->res_blob(r, 1, &clen);
        int64_t want = offset + (int64_t)*nread; /* next byte to copy */
        if (start + (int64_t)clen <= want)
            continue;
        if (start > want)
            break; /* a hole: should not happen, stop at it */
        size_t from = (size_t)(want - start);
        size_t k = clen - from;
        if (k > max - *nread)
            k = max - *nread;
        memcpy(out + *nread, d + from, k);
        *nread += k;
        if (*nread == max)
            break;
    }
    vk__res_free(r);
    if (rc > 0)
        rc = 0;
out:
    vk__store_conn_put(s, c);
    return rc;
}
