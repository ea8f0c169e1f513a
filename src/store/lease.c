/*
 * store leases (DESIGN §13): which replica does a singleton's work (the reaper, the cron
 * scheduler) until when. A lease is one row; taking, renewing and refusing are one
 * conditional upsert, the same text on SQLite and PostgreSQL.
 */
#include "store_int.h"

#include <string.h>

int vk_store_lease_hold(struct vk_store *s, const char *name, const char *holder, int64_t ttl_ms,
                        int64_t now_ms, bool *held, bool *taken, struct vk_err *err)
{
    *held = false;
    if (taken)
        *taken = false;
    struct vk__conn *c = NULL;
    int rc = vk__store_begin(s, &c, err);
    if (rc)
        return rc;
    struct vk__param p[] = {vk__text(name), vk__text(holder), vk__int(now_ms + ttl_ms),
                            vk__int(now_ms)};
    /* Whether we held it already decides between a renewal and a take-over. */
    int64_t mine = 0;
    rc = vk__query_int(c, VK__STMT_NONE,
                       "SELECT COUNT(*) FROM leases WHERE name = $1 AND holder = $2", p, 2, &mine,
                       err);
    int64_t changes = 0;
    if (rc == 0)
        rc = vk__exec(c, VK__STMT_NONE,
                      "INSERT INTO leases (name, holder, expires_at, acquired_at, changes)"
                      " VALUES ($1, $2, $3, $4, 0)"
                      " ON CONFLICT (name) DO UPDATE SET holder = excluded.holder,"
                      " expires_at = excluded.expires_at,"
                      " acquired_at = CASE WHEN leases.holder = excluded.holder"
                      "   THEN leases.acquired_at ELSE excluded.acquired_at END,"
                      " changes = CASE WHEN leases.holder = excluded.holder"
                      "   THEN leases.changes ELSE leases.changes + 1 END"
                      " WHERE leases.holder = excluded.holder OR leases.expires_at < $4",
                      p, 4, &changes, err);
    rc = vk__store_end(s, c, rc, err);
    if (rc == 0) {
        *held = changes == 1;
        if (taken)
            *taken = *held && mine == 0;
    }
    return rc;
}

int vk_store_lease_release(struct vk_store *s, const char *name, const char *holder,
                           struct vk_err *err)
{
    struct vk__conn *c = NULL;
    int rc = vk__store_begin(s, &c, err);
    if (rc)
        return rc;
    struct vk__param p[] = {vk__text(name), vk__text(holder)};
    rc = vk__exec(c, VK__STMT_NONE,
                  "UPDATE leases SET expires_at = 0 WHERE name = $1 AND holder = $2", p, 2, NULL,
                  err);
    return vk__store_end(s, c, rc, err);
}

int vk_store_lease_prune(struct vk_store *s, const char *prefix, int64_t expired_before_ms,
                         struct vk_err *err)
{
    struct vk__conn *c = NULL;
    int rc = vk__store_begin(s, &c, err);
    if (rc)
        return rc;
    /* a prefix match without LIKE, whose wildcards the prefix could hold */
    struct vk__param p[] = {vk__text(prefix), vk__int((int64_t)strlen(prefix)),
                            vk__int(expired_before_ms)};
    rc = vk__exec(c, VK__STMT_NONE,
                  "DELETE FROM leases WHERE substr(name, 1, $2) = $1 AND expires_at < $3", p, 3,
                  NULL, err);
    return vk__store_end(s, c, rc, err);
}
