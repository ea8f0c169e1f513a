/*
 * Organisations, users, teams, grants, credentials and login-failure counters
 * (vulcan/store_identity.h).
 */
#include "store_int.h"
#include "vulcan/store_identity.h"

#include <stdio.h>
#include <string.h>

static int nomem(struct vk_err *err)
{
    return vk_err_set(err, VK_ENOMEM, "out of memory");
}

static int new_id(char id[VK_UUID_LEN], struct vk_err *err)
{
    if (vk_uuid_v7(id) != 0)
        return vk_err_set(err, VK_EIO, "cannot generate an id");
    return 0;
}

static bool has(const char *s)
{
    return s && *s;
}

/* Run a one-row SELECT; *found tells whether a row came. `fill` reads it. */
typedef int row_fn(struct vk__res *r, struct vk_pool *pool, void *out, struct vk_err *err);

static int one_row(struct vk_store *s, const char *sql, const struct vk__param *p, int np,
                   row_fn *fill, struct vk_pool *pool, void *out, bool *found, struct vk_err *err)
{
    struct vk__conn *c = NULL;
    int rc = vk__store_conn_get(s, &c, err);
    if (rc)
        return rc;
    struct vk__res *r = NULL;
    *found = false;
    rc = vk__query(c, VK__STMT_NONE, sql, p, np, &r, err);
    if (rc == 0)
        rc = vk__next(r, err);
    if (rc > 0) {
        *found = true;
        rc = fill(r, pool, out, err);
    }
    vk__res_free(r);
    vk__store_conn_put(s, c);
    return rc < 0 ? rc : 0;
}

/* Many rows into a pool array of `size`-byte elements. */
static int all_rows(struct vk_store *s, const char *sql, const struct vk__param *p, int np,
                    row_fn *fill, size_t size, struct vk_pool *pool, void **out, size_t *n,
                    struct vk_err *err)
{
    *out = NULL;
    *n = 0;
    struct vk__conn *c = NULL;
    int rc = vk__store_conn_get(s, &c, err);
    if (rc)
        return rc;
    struct vk__res *r = NULL;
    size_t cap = 0, len = 0;
    char *a = NULL;
    rc = vk__query(c, VK__STMT_NONE, sql, p, np, &r, err);
    while (rc == 0 && (rc = vk__next(r, err)) > 0) {
        if (vk_array_pool_grow(pool, &a, &cap, len + 1, 16, size) < 0) {
            rc = nomem(err);
            break;
        }
        memset(a + len * size, 0, size);
        rc = fill(r, pool, a + len * size, err);
        len++;
    }
    vk__res_free(r);
    vk__store_conn_put(s, c);
    if (rc < 0)
        return rc;
    *out = a;
    *n = len;
    return 0;
}

/* ---------------------------------------------------------------- Organisations */

#define ORG_COLS "t.id, t.name, t.display_name, t.sso_only, t.created_at"

static int read_org(struct vk__res *r, struct vk_pool *pool, void *out, struct vk_err *err)
{
    struct vk_store_org *o = out;
    memset(o, 0, sizeof(*o));
    vk__col_id(r, 0, o->id);
    o->slug = vk__col_str(r, 1, pool);
    o->display_name = vk__col_str(r, 2, pool);
    o->sso_only = vk__col_int(r, 3) != 0;
    o->created_at = vk__col_int(r, 4);
    return o->slug ? 0 : nomem(err);
}

static bool slug_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > VK_STORE_MAX_SLUG || s[0] == '-')
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-'))
            return false;
    }
    return true;
}

int vk_store_org_create(struct vk_store *s, struct vk_store_org *o, struct vk_err *err)
{
    if (!slug_ok(o->slug))
        return vk_err_set(err, VK_EINVAL,
                          "an org slug is 1 to %d lowercase letters, digits and '-', not "
                          "starting with '-'",
                          VK_STORE_MAX_SLUG);
    int rc = new_id(o->id, err);
    if (rc)
        return rc;
    o->created_at = vk_time_now_ms();
    struct vk__param p[] = {vk__text(o->id), vk__text(o->slug), vk__text(o->display_name),
                            vk__int(o->sso_only), vk__int(o->created_at)};
    struct vk__conn *c = NULL;
    rc = vk__store_begin(s, &c, err);
    if (rc)
        return rc;
    rc = vk__exec(c, VK__STMT_NONE,
                  "INSERT INTO tenants (id, name, display_name, sso_only, created_at)"
                  " VALUES ($1, $2, $3, $4, $5)",
                  p, 5, NULL, err);
    if (rc == VK_EEXIST)
        vk_err_set(err, rc, "org '%s' exists already", o->slug);
    return vk__store_end(s, c, rc, err);
}

int vk_store_org_find(struct vk_store *s, const char *slug, struct vk_pool *pool,
                      struct vk_store_org *out, struct vk_err *err)
{
    struct vk__param p[] = {vk__text(slug ? slug : "")};
    bool found = false;
    int rc = one_row(s, "SELECT " ORG_COLS " FROM tenants t WHERE t.name = $1", p, 1, read_org,
                     pool, out, &found, err);
    if (rc == 0 && !found)
        rc = vk_err_set(err, VK_ENOTFOUND, "no org '%s'", slug ? slug : "");
    return rc;
}

int vk_store_org_get(struct vk_store *s, const char *id, struct vk_pool *pool,
                     struct vk_store_org *out, struct vk_err *err)
{
    struct vk__param p[] = {vk__text(id ? id : "")};
    bool found = false;
    int rc = one_row(s, "SELECT " ORG_COLS " FROM tenants t WHERE t.id = $1", p, 1, read_org, pool,
                     out, &found, err);
    if (rc == 0 && !found)
        rc = vk_err_set(err, VK_ENOTFOUND, "org not found");
    return rc;
}

/* The teams of user $1 and all their ancestors (depth-bounded: a cycle cannot loop). */
#define USER_TEAMS                                                                                 \
    "WITH RECURSIVE ut(id, depth) AS ("                                                            \
    " SELECT team_id, 1 FROM team_members WHERE user_id = $1"                                      \
    " UNION SELECT tm.parent_id, ut.depth + 1 FROM teams tm JOIN ut ON tm.id = ut.id"              \
    " WHERE tm.parent_id IS NOT NULL AND ut.depth < 16) "

int vk_store_org_list(struct vk_store *s, const char *user_id, struct vk_pool *pool,
                      struct vk_store_org **out, size_t *n, struct vk_err *err)
{
    if (!has(user_id))
        return all_rows(s, "SELECT " ORG_COLS " FROM tenants t ORDER BY t.name", NULL, 0, read_org,
                        sizeof(**out), pool, (void **)out, n, err);
    struct vk__param p[] = {vk__text(user_id)};
    return all_rows(s,
                    USER_TEAMS "SELECT " ORG_COLS " FROM tenants t WHERE EXISTS (SELECT 1 FROM"
                               " grants g WHERE g.tenant_id = t.id AND (g.user_id = $1 OR"
                               " g.team_id IN (SELECT id FROM ut))) ORDER BY t.name",
                    p, 1, read_org, sizeof(**out), pool, (void **)out, n, err);
}

/* ---------------------------------------------------------------- Users */

#define USER_COLS                                                                                  \
    "id, login, name, email, source, password_hash, site_admin, disabled, created_at, subject"

static int read_user(struct vk__res *r, struct vk_pool *pool, void *out, struct vk_err *err)
{
    struct vk_store_user *u = out;
    memset(u, 0, sizeof(*u));
    vk__col_id(r, 0, u->id);
    u->login = vk__col_str(r, 1, pool);
    u->name = vk__col_str(r, 2, pool);
    u->email = vk__col_str(r, 3, pool);
    u->source = vk__col_str(r, 4, pool);
    u->password_hash = vk__col_str(r, 5, pool);
    u->site_admin = vk__col_int(r, 6) != 0;
    u->disabled = vk__col_int(r, 7) != 0;
    u->created_at = vk__col_int(r, 8);
    u->subject = vk__col_str(r, 9, pool);
    return u->login && u->source ? 0 : nomem(err);
}

static bool login_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > VK_STORE_MAX_LOGIN)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              ch == '.' || ch == '_' || ch == '@' || ch == '-'))
            return false;
    }
    return true;
}

int vk_store_user_create(struct vk_store *s, struct vk_store_user *u, struct vk_err *err)
{
    if (!login_ok(u->login))
        return vk_err_set(err, VK_EINVAL,
                          "a login is 1 to %d letters, digits and '.', '_', '@', '-'",
                          VK_STORE_MAX_LOGIN);
    int rc = new_id(u->id, err);
    if (rc)
        return rc;
    u->created_at = vk_time_now_ms();
    struct vk__param p[] = {
        vk__text(u->id),
        vk__text(u->login),
        vk__text(u->name),
        vk__text(u->email),
        vk__text(has(u->source) ? u->source : "local"),
        vk__text(u->password_hash),
        vk__int(u->site_admin),
        vk__int(u->disabled),
        vk__int(u->created_at),
        vk__text(has(u->subject) ? u->subject : NULL),
    };
    struct vk__conn *c = NULL;
    rc = vk__store_begin(s, &c, err);
    if (rc)
        return rc;
    rc = vk__exec(c, VK__STMT_NONE,
                  "INSERT INTO users (" USER_COLS
                  ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                  p, (int)VK_ARRAY_LEN(p), NULL, err);
    if (rc == VK_EEXIST)
        vk_err_set(err, rc, "user '%s' exists already", u->login);
    return vk__store_end(s, c, rc, err);
}

static int user_by(struct vk_store *s, const char *col_sql, const char *v, struct vk_pool *pool,
                   struct vk_store_user *out, struct vk_err *err)
{
    struct vk__param p[] = {vk__text(v ? v : "")};
    bool found = false;
    int rc = one_row(s, col_sql, p, 1, read_user, pool, out, &found, err);
    if (rc == 0 && !found)
        rc = vk_err_set(err, VK_ENOTFOUND, "user not found");
    return rc;
}

int vk_store_user_get(struct vk_store *s, const char *id, struct vk_pool *pool,
                      struct vk_store_user *out, struct vk_err *err)
{
    return user_by(s, "SELECT " USER_COLS " FROM users WHERE id = $1", id, pool, out, err);
}

int vk_store_user_find(struct vk_store *s, const char *login, struct vk_pool *pool,
                       struct vk_store_user *out, struct vk_err *err)
{
    return user_by(s, "SELECT " USER_COLS " FROM users WHERE login = $1", login, pool, out, err);
}

int vk_store_user_find_subject(struct vk_store *s, const char *source, const char *subject,
                               struct vk_pool *pool, struct vk_store_user *out, struct vk_err *err)
{
    struct vk__param p[] = {vk__text(source ? source : ""), vk__text(subject ? subject : "")};
    bool found = false;
    int rc = one_row(s, "SELECT " USER_COLS " FROM users WHERE source = $1 AND subject = $2", p, 2,
                     read_user, pool, out, &found, err);
    if (rc == 0 && !found)
        rc = vk_err_set(err, VK_ENOTFOUND, "user not found");
    return rc;
}

/* One UPDATE in its own transaction; VK_ENOTFOUND with `what` when no row changed. */
static int update_one(struct vk_store *s, const char *sql, const struct vk__param *p, int np,
                      const char *what, struct vk_err *err)
{
    struct vk__conn *c = NULL;
    int rc = vk__store_begin(s, &c, err);
    if (rc)
        return rc;
    int64_t n = 0;
    rc = vk__exec(c, VK__STMT_NONE, sql, p, np, &n, err);
    if (rc == 0 && n == 0)
        rc = vk_err_set(err, VK_ENOTFOUND, "%s not found", what);
    return vk__store_end(s, c, rc, err);
}

int vk_store_org_set_sso_only(struct vk_store *s, const char *id, bool on, struct vk_err *err)
{
    struct vk__param p[] = {vk__text(id ? id : ""), vk__int(on)};
    return update_one(s, "UPDATE tenants SET sso_only = $2 WHERE id = $1", p, 2, "org", err);
}

int vk_store_user_set_password(struct vk_store *s, const char *id, const char *phc,
                               struct vk_err *err)
{
    struct vk__param p[] = {vk__text(id ? id : ""), vk__text(phc)};
    return update_one(s, "UPDATE users SET password_hash = $2 WHERE id = $1", p, 2, "user", err);
}

int vk_store_user_set_disabled(struct vk_store *s, const char *id, bool disabled,
                               struct vk_err *err)
{
    struct vk__param p[] = {vk__text(id ? id : ""), vk__int(disabled)};
    return update_one(s, "UPDATE users SET disabled = $2 WHERE id = $1", p, 2, "user", err);
}

int vk_store_user_any(struct vk_store *s, bool *any, struct vk_err *err)
{
    struct vk__conn *c = NULL;
    int rc = vk__store_conn_get(s, &c, err);
    if (rc)
        return rc;
    int64_t v = 0;
    rc = vk__query_int(c, VK__STMT_NONE, "SELECT COUNT(*) FROM (SELECT 1 FROM users LIMIT 1) x",
                       NULL, 0, &v, err);
    vk__store_conn_put(s, c);
    *any = v > 0;
    return rc;
}

/* ---------------------------------------------------------------- Teams */

/* The org (tenant_id) of the row `sql` selects by $1 = `id`; VK_EINVAL "WHAT: no such
 * THING" when there is none. */
static int owner_org(struct vk__conn *c, const char *sql, const char *id, char org[VK_UUID_LEN],
                     const char *what, const char *thing, struct vk_err *err)
{
    struct vk__param p[] = {vk__text(id)};
    struct vk__res *r = NULL;
    int rc = vk__query(c, VK__STMT_NONE, sql, p, 1, &r, err);
    if (rc == 0)
        rc = vk__next(r, err);
    if (rc > 0) {
        vk__col_id(r, 0, org);
        rc = 0;
    } else if (rc == 0) {
        rc = vk_err_set(err, VK_EINVAL, "%s: no such %s", what, thing);
    }
    vk__res_free(r);
    return rc;
}

static int team_org(struct vk__conn *c, const char *id, char org[VK_UUID_LEN], const char *what,
                    struct vk_err *err)
{
    return owner_org(c, "SELECT tenant_id FROM teams WHERE id = $1", id, org, what, "team", err);
}

/* How many teams `id` and its ancestors are, and whether `needle` is among them. */
static int ancestry(struct vk__conn *c, const char *id, const char *needle, int64_t *depth,
                    bool *contains, struct vk_err *err)
{
    struct vk__param p[] = {vk__text(id), vk__text(needle ? needle : "")};
    struct vk__res *r = NULL;
    int rc = vk__query(c, VK__STMT_NONE,
                       "WITH RECURSIVE a(id, depth) AS (SELECT $1, 1 UNION SELECT tm.parent_id,"
                       " a.depth + 1 FROM teams tm JOIN a ON tm.id = a.id WHERE tm.parent_id IS"
                       " NOT NULL AND a.depth < 64) SELECT COALESCE(MAX(depth), 0),"
                       " COALESCE(SUM(CASE WHEN id = $2 THEN 1 ELSE 0 END), 0) FROM a",
                       p, 2, &r, err);
    if (rc == 0)
        rc = vk__next(r, err);
    if (rc > 0) {
        *depth = vk__col_int(r, 0);
        *contains = vk__col_int(r, 1) > 0;
        rc = 0;
    } else if (rc == 0) {
        rc = vk_err_set(err, VK_EINTERNAL, "team ancestry: no row");
    }
    vk__res_free(r);
    return rc;
}

/* The deepest descendant below `id`, counting `id` as 1. */
static int subtree_height(struct vk__conn *c, const char *id, int64_t *height, struct vk_err *err)
{
    struct vk__param p[] = {vk__text(id)};
    return vk__query_int(c, VK__STMT_NONE,
                         "WITH RECURSIVE d(id, depth) AS (SELECT $1, 1 UNION SELECT tm.id,"
                         " d.depth + 1 FROM teams tm JOIN d ON tm.parent_id = d.id WHERE"
                         " d.depth < 64) SELECT COALESCE(MAX(depth), 1) FROM d",
                         p, 1, height, err);
}

int vk_store_team_create(struct vk_store *s, const char *org_id, const char *name,
                         const char *parent_id, char id[VK_UUID_LEN], struct vk_err *err)
{
    if (!login_ok(name))
        return vk_err_set(err, VK_EINVAL,
                          "a team name is 1 to %d letters, digits and '.', '_', '@', '-'",
                          VK_STORE_MAX_LOGIN);
    int rc = new_id(id, err);
    if (rc)
        return rc;
    struct vk__conn *c = NULL;
    rc = vk__store_begin(s, &c, err);
    if (rc)
        return rc;
    if (has(parent_id)) {
        char porg[VK_UUID_LEN];
        int64_t depth = 0;
        bool dummy = false;
        rc = team_org(c, parent_id, porg, "parent team", err);
        if (rc == 0 && strcmp(porg, org_id ? org_id : "") != 0)
            rc = vk_err_set(err, VK_EINVAL, "the parent team belongs to another org");
        if (rc == 0)
            rc = ancestry(c, parent_id, NULL, &depth, &dummy, err);
        if (rc == 0 && depth + 1 > VK_STORE_MAX_TEAM_DEPTH)
            rc = vk_err_set(err, VK_EINVAL, "teams nest at most %d deep", VK_STORE_MAX_TEAM_DEPTH);
    }
    struct vk__param p[] = {vk__text(id), vk__text(org_id ? org_id : ""), vk__text(name),
                            vk__id(parent_id), vk__int(vk_time_now_ms())};
    if (rc == 0) {
        rc = vk__exec(c, VK__STMT_NONE,
                      "INSERT INTO teams (id, tenant_id, name, parent_id, created_at)"
                      " VALUES ($1, $2, $3, $4, $5)",
                      p, 5, NULL, err);
        if (rc == VK_EEXIST)
            vk_err_set(err, rc, "the org has a team '%s' already", name);
        else if (rc == VK_EINVAL)
            vk_err_set(err, rc, "unknown org");
    }
    return vk__store_end(s, c, rc, err);
}

int vk_store_team_set_parent(struct vk_store *s, const char *team_id, const char *parent_id,
                             struct vk_err *err)
{
    struct vk__conn *c = NULL;
    int rc = vk__store_begin(s, &c, err);
    if (rc)
        return rc;
    char org[VK_UUID_LEN], porg[VK_UUID_LEN];
    rc = team_org(c, team_id ? team_id : "", org, "team", err);
    if (rc == VK_EINVAL)
        rc = vk_err_set(err, VK_ENOTFOUND, "team not found");
    if (rc == 0 && has(parent_id)) {
        int64_t depth = 0, height = 0;
        bool cycle = false;
        rc = team_org(c, parent_id, porg, "parent team", err);
        if (rc == 0 && strcmp(porg, org) != 0)
            rc = vk_err_set(err, VK_EINVAL, "the parent team belongs to another org");
        if (rc == 0)
            rc = ancestry(c, parent_id, team_id, &depth, &cycle, err);
        if (rc == 0 && cycle)
            rc = vk_err_set(err, VK_EINVAL,
                            "a team cannot be under itself or one of its own sub-teams");
        if (rc == 0)
            rc = subtree_height(c, team_id, &height, err);
        if (rc == 0 && depth + height > VK_STORE_MAX_TEAM_DEPTH)
            rc = vk_err_set(err, VK_EINVAL, "teams nest at most %d deep", VK_STORE_MAX_TEAM_DEPTH);
    }
    struct vk__param p[] = {vk__text(team_id), vk__id(parent_id)};
    if (rc == 0)
        rc = vk__exec(c, VK__STMT_NONE, "UPDATE teams SET parent_id = $2 WHERE id = $1", p, 2, NULL,
                      err);
    return vk__store_end(s, c, rc, err);
}

int vk_store_team_add_member(struct vk_store *s, const char *team_id, const char *user_id,
                             struct vk_err *err)
{
    struct vk__conn *c = NULL;
    int rc = vk__store_begin(s, &c, err);
    if (rc)
        return rc;
    struct vk__param p[] = {vk__text(team_id ? team_id : ""), vk__text(user_id ? user_id : "")};
    rc = vk__exec(c, VK__STMT_NONE,
                  "INSERT INTO team_members (team_id, user_id) VALUES ($1, $2)"
                  " ON CONFLICT (team_id, user_id) DO NOTHING",
                  p, 2, NULL, err);
    if (rc == VK_EINVAL)
        vk_err_set(err, rc, "unknown team or user");
    return vk__store_end(s, c, rc, err);
}

int vk_store_team_remove_member(struct vk_store *s, const char *team_id, const char *user_id,
                                struct vk_err *err)
{
    struct vk__param p[] = {vk__text(team_id ? team_id : ""), vk__text(user_id ? user_id : "")};
    return update_one(s, "DELETE FROM team_members WHERE team_id = $1 AND user_id = $2", p, 2,
                      "team member", err);
}

static int read_team(struct vk__res *r, struct vk_pool *pool, void *out, struct vk_err *err)
{
    struct vk_store_team *t = out;
    memset(t, 0, sizeof(*t));
    vk__col_id(r, 0, t->id);
    vk__col_id(r, 1, t->org_id);
    t->name = vk__col_str(r, 2, pool);
    vk__col_id(r, 3, t->parent_id);
    t->members = vk__col_int(r, 4);
    t->created_at = vk__col_int(r, 5);
    return t->name ? 0 : nomem(err);
}

int vk_store_team_list(struct vk_store *s, const char *org_id, struct vk_pool *pool,
                       struct vk_store_team **out, size_t *n, struct vk_err *err)
{
    struct vk__param p[] = {vk__text(org_id ? org_id : "")};
    return all_rows(s,
                    "SELECT t.id, t.tenant_id, t.name, t.parent_id,"
                    " (SELECT COUNT(*) FROM team_members m WHERE m.team_id = t.id), t.created_at"
                    " FROM teams t WHERE t.tenant_id = $1 ORDER BY t.name",
                    p, 1, read_team, sizeof(**out), pool, (void **)out, n, err);
}

static int read_member(struct vk__res *r, struct vk_pool *pool, void *out, struct vk_err *err)
{
    int rc = read_user(r, pool, out, err);
    ((struct vk_store_user *)out)->password_hash = NULL;
    return rc;
}

int vk_store_team_members(struct vk_store *s, const char *team_id, struct vk_pool *pool,
                          struct vk_store_user **out, size_t *n, struct vk_err *err)
{
    struct vk__param p[] = {vk__text(team_id ? team_id : "")};
    return all_rows(s,
                    "SELECT u.id, u.login, u.name, u.email, u.source, NULL, u.site_admin,"
                    " u.disabled, u.created_at FROM users u JOIN team_members m"
                    " ON m.user_id = u.id WHERE m.team_id = $1 ORDER BY u.login",
                    p, 1, read_member, sizeof(**out), pool, (void **)out, n, err);
}

/* ---------------------------------------------------------------- Grants */

#define GRANT_COLS "id, tenant_id, user_id, team_id, repository_id, role, created_at"

static int read_grant(struct vk__res *r, struct vk_pool *pool, void *out, struct vk_err *err)
{
    (void)pool;
    struct vk_store_grant *g = out;
    memset(g, 0, sizeof(*g));
    vk__col_id(r, 0, g->id);
    vk__col_id(r, 1, g->org_id);
    vk__col_id(r, 2, g->user_id);
    vk__col_id(r, 3, g->team_id);
    vk__col_id(r, 4, g->repository_id);
    const char *role = r->conn->store->ops->res_text(r, 5);
    if (vk_auth_role_parse(role ? role : "", &g->role, err) < 0)
        return vk_err_set(err, VK_EDB, "grant %s has an unknown role", g->id);
    g->created_at = vk__col_int(r, 6);
    return 0;
}

static int repo_org(struct vk__conn *c, const char *id, char org[VK_UUID_LEN], struct vk_err *err)
{
    return owner_org(c, "SELECT tenant_id FROM repositories WHERE id = $1", id, org, "grant",
                     "repository", err);
}

int vk_store_grant_create(struct vk_store *s, struct vk_store_grant *g, struct vk_err *err)
{
    if (has(g->user_id) == has(g->team_id))
        return vk_err_set(err, VK_EINVAL, "a grant is to exactly one user or one team");
    if (g->role < VK_ROLE_READER || g->role > VK_ROLE_ADMIN)
        return vk_err_set(err, VK_EINVAL,
                          "a grant needs a role: reader, developer, "
                          "maintainer or admin");
    char id[VK_UUID_LEN];
    int rc = new_id(id, err);
    if (rc)
        return rc;
    struct vk__conn *c = NULL;
    rc = vk__store_begin(s, &c, err);
    if (rc)
        return rc;
    char org[VK_UUID_LEN];
    if (has(g->team_id)) {
        rc = team_org(c, g->team_id, org, "grant", err);
        if (rc == 0 && strcmp(org, g->org_id) != 0)
            rc = vk_err_set(err, VK_EINVAL, "the team belongs to another org");
    }
    if (rc == 0 && has(g->repository_id)) {
        rc = repo_org(c, g->repository_id, org, err);
        if (rc == 0 && strcmp(org, g->org_id) != 0)
            rc = vk_err_set(err, VK_EINVAL, "the repository belongs to another org");
    }
    /* One grant per holder and scope: a second one raises the role, never lowers it. */
    struct vk__param q[] = {vk__text(g->org_id), vk__text(g->user_id), vk__text(g->team_id),
                            vk__text(g->repository_id)};
    struct vk__res *r = NULL;
    if (rc == 0)
        rc = vk__query(c, VK__STMT_NONE,
                       "SELECT " GRANT_COLS " FROM grants WHERE tenant_id = $1"
                       " AND COALESCE(user_id, '') = $2 AND COALESCE(team_id, '') = $3"
                       " AND COALESCE(repository_id, '') = $4",
                       q, 4, &r, err);
    if (rc == 0)
        rc = vk__next(r, err);
    if (rc > 0) {
        struct vk_store_grant old;
        rc = read_grant(r, NULL, &old, err);
        vk__res_free(r);
        r = NULL;
        memcpy(g->id, old.id, VK_UUID_LEN);
        g->created_at = old.created_at;
        if (rc == 0 && g->role > old.role) {
            struct vk__param u[] = {vk__text(old.id), vk__text(vk_auth_role_name(g->role))};
            rc = vk__exec(c, VK__STMT_NONE, "UPDATE grants SET role = $2 WHERE id = $1", u, 2, NULL,
                          err);
        } else if (rc == 0) {
            g->role = old.role;
        }
        return vk__store_end(s, c, rc, err);
    }
    vk__res_free(r);
    memcpy(g->id, id, VK_UUID_LEN);
    g->created_at = vk_time_now_ms();
    struct vk__param p[] = {vk__text(g->id),          vk__text(g->org_id),
                            vk__id(g->user_id),       vk__id(g->team_id),
                            vk__id(g->repository_id), vk__text(vk_auth_role_name(g->role)),
                            vk__int(g->created_at)};
    if (rc == 0) {
        rc = vk__exec(c, VK__STMT_NONE,
                      "INSERT INTO grants (" GRANT_COLS ") VALUES ($1, $2, $3, $4, $5, $6, $7)", p,
                      7, NULL, err);
        if (rc == VK_EINVAL)
            vk_err_set(err, rc, "unknown org or user");
    }
    return vk__store_end(s, c, rc, err);
}

int vk_store_grant_delete(struct vk_store *s, const char *org_id, const char *id,
                          struct vk_err *err)
{
    struct vk__param p[] = {vk__text(org_id ? org_id : ""), vk__text(id ? id : "")};
    return update_one(s, "DELETE FROM grants WHERE tenant_id = $1 AND id = $2", p, 2, "grant", err);
}

int vk_store_grant_list(struct vk_store *s, const char *org_id, struct vk_pool *pool,
                        struct vk_store_grant **out, size_t *n, struct vk_err *err)
{
    struct vk__param p[] = {vk__text(org_id ? org_id : "")};
    return all_rows(
        s, "SELECT " GRANT_COLS " FROM grants WHERE tenant_id = $1 ORDER BY created_at, id", p, 1,
        read_grant, sizeof(**out), pool, (void **)out, n, err);
}

int vk_store_role_of(struct vk_store *s, const char *user_id, const char *org_id,
                     const char *repository_id, enum vk_auth_role *role, struct vk_err *err)
{
    *role = VK_ROLE_NONE;
    struct vk__conn *c = NULL;
    int rc = vk__store_conn_get(s, &c, err);
    if (rc)
        return rc;
    struct vk__param p[] = {vk__text(user_id ? user_id : ""), vk__text(org_id ? org_id : ""),
                            vk__text(has(repository_id) ? repository_id : "")};
    struct vk__res *r = NULL;
    rc = vk__query(c, VK__STMT_NONE,
                   USER_TEAMS "SELECT role FROM grants WHERE tenant_id = $2"
                              " AND (repository_id IS NULL OR repository_id = $3)"
                              " AND (user_id = $1 OR team_id IN (SELECT id FROM ut))",
                   p, 3, &r, err);
    while (rc == 0 && (rc = vk__next(r, err)) > 0) {
        const char *name = c->store->ops->res_text(r, 0);
        enum vk_auth_role got = VK_ROLE_NONE;
        struct vk_err ignored;
        if (vk_auth_role_parse(name ? name : "", &got, &ignored) == 0 && got > *role)
            *role = got;
        rc = 0;
    }
    vk__res_free(r);
    vk__store_conn_put(s, c);
    return rc < 0 ? rc : 0;
}

/* ---------------------------------------------------------------- Credentials */

static const char *const kind_names[VK_AUTH_KIND_COUNT] = {"pat", "session", "registration",
                                                           "worker", "job"};

#define CRED_COLS                                                                                  \
    "c.id, c.kind, c.hash, c.name, c.user_id, c.tenant_id, c.worker_id, c.fragment_id,"            \
    " c.attempt, c.scopes, c.groups_list, c.uses_left, c.csrf, c.idle_ms, c.created_at,"           \
    " c.expires_at, c.last_used_at, c.revoked_at"

static int read_cred(struct vk__res *r, struct vk_pool *pool, void *out, struct vk_err *err)
{
    struct vk_store_credential *k = out;
    memset(k, 0, sizeof(*k));
    vk__col_id(r, 0, k->id);
    const char *kind = r->conn->store->ops->res_text(r, 1);
    k->kind = VK_AUTH_KIND_COUNT;
    for (int i = 0; kind && i < VK_AUTH_KIND_COUNT; i++)
        if (strcmp(kind, kind_names[i]) == 0)
            k->kind = (enum vk_auth_kind)i;
    if (k->kind == VK_AUTH_KIND_COUNT)
        return vk_err_set(err, VK_EDB, "credential %s has an unknown kind", k->id);
    const char *hash = r->conn->store->ops->res_text(r, 2);
    snprintf(k->hash, sizeof(k->hash), "%s", hash ? hash : "");
    k->name = vk__col_str(r, 3, pool);
    vk__col_id(r, 4, k->user_id);
    vk__col_id(r, 5, k->org_id);
    vk__col_id(r, 6, k->worker_id);
    vk__col_id(r, 7, k->fragment_id);
    k->attempt = (int)vk__col_int(r, 8);
    k->scopes = (unsigned)vk__col_int(r, 9);
    k->groups = vk__col_str(r, 10, pool);
    k->uses_left = vk__col_int(r, 11);
    k->csrf = vk__col_str(r, 12, pool);
    k->idle_ms = vk__col_int(r, 13);
    k->created_at = vk__col_int(r, 14);
    k->expires_at = vk__col_int(r, 15);
    k->last_used_at = vk__col_int(r, 16);
    k->revoked_at = vk__col_int(r, 17);
    return 0;
}

static bool hash_ok(const char *h)
{
    if (strlen(h) != VK_AUTH_HASH_MAX - 1)
        return false;
    for (const char *p = h; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

static int cred_check_owner(const struct vk_store_credential *k, struct vk_err *err)
{
    if ((unsigned)k->kind >= VK_AUTH_KIND_COUNT || !hash_ok(k->hash))
        return vk_err_set(err, VK_EINVAL, "a credential needs a kind and a token hash");
    const char *missing = NULL;
    switch (k->kind) {
    case VK_AUTH_PAT:
    case VK_AUTH_SESSION:
        missing = k->user_id[0] ? NULL : "a user";
        break;
    case VK_AUTH_REGISTRATION:
        missing = k->org_id[0] ? NULL : "an org";
        break;
    case VK_AUTH_WORKER:
        missing = k->worker_id[0] ? NULL : "a worker";
        break;
    default: /* a job token is its fragment's job_hash, set by the claim: never a row */
        missing = "the claim of an attempt (vk_store_claim_job)";
        break;
    }
    if (missing)
        return vk_err_set(err, VK_EINVAL, "a %s needs %s", vk_auth_kind_name(k->kind), missing);
    return 0;
}

int vk__store_cred_insert(struct vk__conn *c, struct vk_store_credential *k, struct vk_err *err)
{
    int rc = cred_check_owner(k, err);
    if (rc == 0)
        rc = new_id(k->id, err);
    if (rc)
        return rc;
    k->created_at = vk_time_now_ms();
    k->last_used_at = k->revoked_at = 0;
    struct vk__param p[] = {
        vk__text(k->id),        vk__text(kind_names[k->kind]),
        vk__text(k->hash),      vk__text(k->name),
        vk__id(k->user_id),     vk__id(k->org_id),
        vk__id(k->worker_id),   vk__id(k->fragment_id),
        vk__int(k->attempt),    vk__int(k->scopes),
        vk__text(k->groups),    vk__int(k->uses_left),
        vk__text(k->csrf),      vk__int(k->idle_ms),
        vk__int(k->created_at), vk__time(k->expires_at),
    };
    rc = vk__exec(c, VK__STMT_NONE,
                  "INSERT INTO credentials (id, kind, hash, name, user_id, tenant_id, worker_id,"
                  " fragment_id, attempt, scopes, groups_list, uses_left, csrf, idle_ms,"
                  " created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10,"
                  " $11, $12, $13, $14, $15, $16)",
                  p, (int)VK_ARRAY_LEN(p), NULL, err);
    if (rc == VK_EEXIST)
        vk_err_set(err, rc, "a credential with this hash exists already");
    else if (rc == VK_EINVAL)
        vk_err_set(err, rc, "unknown user or org");
    return rc;
}

int vk_store_credential_create(struct vk_store *s, struct vk_store_credential *k,
                               struct vk_err *err)
{
    int rc = cred_check_owner(k, err);
    if (rc)
        return rc;
    struct vk__conn *c = NULL;
    rc = vk__store_begin(s, &c, err);
    if (rc)
        return rc;
    rc = vk__store_cred_insert(c, k, err);
    return vk__store_end(s, c, rc, err);
}

/* A busy token writes its last use at most this often. */
#define LAST_USED_EVERY_MS 60000

/* A job token: the running attempt whose job_hash it is, with its worker's org. */
static int job_check(struct vk__conn *c, const char *hash, struct vk_store_credential *out,
                     struct vk_err *err)
{
    struct vk__param p[] = {vk__text(hash)};
    struct vk__res *r = NULL;
    int rc = vk__query(c, VK__STMT_JOB_CHECK,
                       "SELECT f.id, f.attempt, f.worker_id, f.started_at, w.tenant_id"
                       " FROM fragments f LEFT JOIN workers w ON w.id = f.worker_id"
                       " WHERE f.job_hash = $1 AND f.status = 'running'",
                       p, 1, &r, err);
    if (rc == 0)
        rc = vk__next(r, err);
    if (rc == 0)
        rc = vk_err_set(err, VK_EAUTH, "unknown token, or the attempt of this job token has ended");
    else if (rc > 0) {
        memset(out, 0, sizeof(*out));
        out->kind = VK_AUTH_JOB;
        snprintf(out->hash, sizeof(out->hash), "%s", hash);
        vk__col_id(r, 0, out->fragment_id);
        memcpy(out->id, out->fragment_id, VK_UUID_LEN);
        out->attempt = (int)vk__col_int(r, 1);
        vk__col_id(r, 2, out->worker_id);
        out->created_at = vk__col_int(r, 3);
        vk__col_id(r, 4, out->org_id);
        rc = 0;
    }
    vk__res_free(r);
    return rc;
}

int vk_store_credential_check(struct vk_store *s, enum vk_auth_kind kind, const char *hash,
                              int64_t now_ms, struct vk_pool *pool, struct vk_store_credential *out,
                              struct vk_err *err)
{
    if ((unsigned)kind >= VK_AUTH_KIND_COUNT || !hash || !hash_ok(hash))
        return vk_err_set(err, VK_EAUTH, "unknown token");
    struct vk__conn *c = NULL;
    int rc = vk__store_conn_get(s, &c, err);
    if (rc)
        return rc;
    if (kind == VK_AUTH_JOB) {
        /* No row, no write: the attempt's own columns say whether it still runs (a result,
         * a hand-back, a dead or revoked worker or a later attempt end it). */
        rc = job_check(c, hash, out, err);
        vk__store_conn_put(s, c);
        return rc;
    }
    struct vk__param p[] = {vk__text(hash), vk__text(kind_names[kind])};
    struct vk__res *r = NULL;
    bool disabled = false;
    rc = vk__query(c, VK__STMT_CRED_CHECK,
                   "SELECT " CRED_COLS ", COALESCE(u.disabled, 0) FROM credentials c"
                   " LEFT JOIN users u ON u.id = c.user_id WHERE c.hash = $1 AND c.kind = $2",
                   p, 2, &r, err);
    if (rc == 0)
        rc = vk__next(r, err);
    if (rc == 0)
        rc = vk_err_set(err, VK_EAUTH, "unknown token");
    else if (rc > 0) {
        rc = read_cred(r, pool, out, err);
        disabled = vk__col_int(r, 18) != 0;
    }
    vk__res_free(r);
    if (rc == 0) {
        int64_t last = out->last_used_at ? out->last_used_at : out->created_at;
        if (out->revoked_at)
            rc = vk_err_set(err, VK_EAUTH, "token revoked");
        else if (out->expires_at && now_ms >= out->expires_at)
            rc = vk_err_set(err, VK_EAUTH, "token expired");
        else if (out->idle_ms && now_ms - last > out->idle_ms)
            rc = vk_err_set(err, VK_EAUTH, "session expired after inactivity");
        else if (disabled)
            rc = vk_err_set(err, VK_EAUTH, "the token's user is disabled");
    }
    vk__store_conn_put(s, c);
    if (rc == 0 && now_ms - out->last_used_at >= LAST_USED_EVERY_MS) {
        struct vk__param u[] = {vk__text(out->id), vk__int(now_ms)};
        rc = update_one(s, "UPDATE credentials SET last_used_at = $2 WHERE id = $1", u, 2, "token",
                        err);
        if (rc == 0)
            out->last_used_at = now_ms;
    }
    return rc;
}

int vk_store_registration_use(struct vk_store *s, const char *id, struct vk_err *err)
{
    struct vk__conn *c = NULL;
    int rc = vk__store_begin(s, &c, err);
    if (rc)
        return rc;
    struct vk__param p[] = {vk__text(id ? id : "")};
    int64_t n = 0;
    rc = vk__exec(c, VK__STMT_NONE,
                  "UPDATE credentials SET uses_left = uses_left - 1 WHERE id = $1"
                  " AND kind = 'registration' AND uses_left > 0",
                  p, 1, &n, err);
    if (rc == 0 && n == 0) {
        int64_t left = 0;
        rc = vk__query_int(c, VK__STMT_NONE,
                           "SELECT COALESCE(MIN(uses_left), -2) FROM credentials WHERE id = $1"
                           " AND kind = 'registration'",
                           p, 1, &left, err);
        if (rc == 0 && left == -2)
            rc = vk_err_set(err, VK_ENOTFOUND, "registration token not found");
        else if (rc == 0 && left == 0)
            rc = vk_err_set(err, VK_EAUTH, "registration token used up");
    }
    return vk__store_end(s, c, rc, err);
}

int vk_store_credential_revoke(struct vk_store *s, const char *id, const char *user_id,
                               int64_t now_ms, struct vk_err *err)
{
    struct vk__param p[] = {vk__text(id ? id : ""), vk__text(has(user_id) ? user_id : ""),
                            vk__int(now_ms)};
    return update_one(s,
                      "UPDATE credentials SET revoked_at = COALESCE(revoked_at, $3)"
                      " WHERE id = $1 AND ($2 = '' OR user_id = $2)",
                      p, 3, "token", err);
}

int vk_store_credential_revoke_for(struct vk_store *s, const char *fragment_id,
                                   const char *worker_id, int64_t now_ms, struct vk_err *err)
{
    struct vk__conn *c = NULL;
    int rc = vk__store_begin(s, &c, err);
    if (rc)
        return rc;
    if (has(fragment_id)) {
        struct vk__param p[] = {vk__text(fragment_id)};
        rc = vk__exec(c, VK__STMT_NONE,
                      "UPDATE fragments SET job_hash = NULL WHERE id = $1 AND job_hash IS NOT NULL",
                      p, 1, NULL, err);
    }
    if (rc == 0 && has(worker_id)) {
        struct vk__param p[] = {vk__text(worker_id), vk__int(now_ms)};
        rc = vk__exec(c, VK__STMT_NONE,
                      "UPDATE credentials SET revoked_at = $2 WHERE worker_id = $1"
                      " AND revoked_at IS NULL",
                      p, 2, NULL, err);
        if (rc == 0)
            rc = vk__exec(c, VK__STMT_NONE,
                          "UPDATE fragments SET job_hash = NULL WHERE worker_id = $1"
                          " AND status = 'running' AND job_hash IS NOT NULL",
                          p, 1, NULL, err);
    }
    return vk__store_end(s, c, rc, err);
}

int vk_store_credential_list(struct vk_store *s, enum vk_auth_kind kind, const char *user_id,
                             const char *org_id, struct vk_pool *pool,
                             struct vk_store_credential **out, size_t *n, struct vk_err *err)
{
    if ((unsigned)kind >= VK_AUTH_KIND_COUNT)
        return vk_err_set(err, VK_EINVAL, "unknown credential kind");
    bool by_user = has(user_id);
    struct vk__param p[] = {vk__text(kind_names[kind]),
                            vk__text(by_user ? user_id : (org_id ? org_id : ""))};
    return all_rows(s,
                    by_user ? "SELECT " CRED_COLS " FROM credentials c WHERE c.kind = $1"
                              " AND c.user_id = $2 ORDER BY c.created_at DESC, c.id DESC"
                            : "SELECT " CRED_COLS " FROM credentials c WHERE c.kind = $1"
                              " AND c.tenant_id = $2 ORDER BY c.created_at DESC, c.id DESC",
                    p, 2, read_cred, sizeof(**out), pool, (void **)out, n, err);
}

int vk_store_token_issue(struct vk_store *s, const char *user_id, unsigned scopes,
                         const char *org_id, int64_t expires_at, const char *name,
                         char token[VK_AUTH_TOKEN_MAX], char id[VK_UUID_LEN], struct vk_err *err)
{
    if (!(scopes & VK_SCOPE_ALL) || !has(user_id))
        return vk_err_set(err, VK_EINVAL, "a token needs a user and at least one scope");
    struct vk_store_credential c = {.kind = VK_AUTH_PAT,
                                    .name = name,
                                    .scopes = scopes & VK_SCOPE_ALL,
                                    .expires_at = expires_at};
    snprintf(c.user_id, sizeof(c.user_id), "%s", user_id);
    snprintf(c.org_id, sizeof(c.org_id), "%s", has(org_id) ? org_id : "");
    if (vk_auth_token_new(VK_AUTH_PAT, token, c.hash) < 0)
        return vk_err_set(err, VK_EIO, "the random generator failed");
    int rc = vk_store_credential_create(s, &c, err);
    if (rc == 0)
        memcpy(id, c.id, VK_UUID_LEN);
    else
        memset(token, 0, VK_AUTH_TOKEN_MAX);
    return rc;
}

int vk_store_registration_issue(struct vk_store *s, const char *org_id, const char *groups,
                                int64_t uses, int64_t expires_at, const char *name,
                                char token[VK_AUTH_TOKEN_MAX], char id[VK_UUID_LEN],
                                struct vk_err *err)
{
    if (!has(org_id))
        return vk_err_set(err, VK_EINVAL, "a registration token needs an org");
    if (uses == 0 || uses < -1)
        return vk_err_set(err, VK_EINVAL,
                          "a registration token needs at least one use (-1: unlimited)");
    if (has(groups) && strlen(groups) > 4096)
        return vk_err_set(err, VK_EINVAL, "a registration token's groups are at most 4096 bytes");
    struct vk_store_credential c = {.kind = VK_AUTH_REGISTRATION,
                                    .name = name,
                                    .groups = has(groups) ? groups : NULL,
                                    .uses_left = uses,
                                    .expires_at = expires_at};
    snprintf(c.org_id, sizeof(c.org_id), "%s", org_id);
    if (vk_auth_token_new(VK_AUTH_REGISTRATION, token, c.hash) < 0)
        return vk_err_set(err, VK_EIO, "the random generator failed");
    int rc = vk_store_credential_create(s, &c, err);
    if (rc == 0)
        memcpy(id, c.id, VK_UUID_LEN);
    else
        vk_auth_wipe(token, VK_AUTH_TOKEN_MAX);
    return rc;
}

int vk_store_bootstrap_admin(struct vk_store *s, const char *login, char token[VK_AUTH_TOKEN_MAX],
                             bool *created, struct vk_err *err)
{
    *created = false;
    bool any = false;
    int rc = vk_store_user_any(s, &any, err);
    if (rc < 0 || any)
        return rc;
    char org[VK_UUID_LEN];
    rc = vk_store_tenant_ensure(s, "default", org, err);
    struct vk_store_user u = {.login = login, .site_admin = true};
    if (rc == 0)
        rc = vk_store_user_create(s, &u, err);
    if (rc == VK_EEXIST)
        return 0; /* another replica made it first */
    struct vk_store_grant g = {.role = VK_ROLE_ADMIN};
    memcpy(g.org_id, org, VK_UUID_LEN);
    memcpy(g.user_id, u.id, VK_UUID_LEN);
    if (rc == 0)
        rc = vk_store_grant_create(s, &g, err);
    char id[VK_UUID_LEN];
    if (rc == 0)
        rc = vk_store_token_issue(s, u.id, VK_SCOPE_ALL, NULL, 0, "initial admin token", token, id,
                                  err);
    if (rc == 0)
        *created = true;
    return rc;
}

/* ---------------------------------------------------------------- Login failures */

int vk_store_login_failure_add(struct vk_store *s, const char *key, int64_t now_ms,
                               int64_t window_ms, int64_t *count, struct vk_err *err)
{
    *count = 0;
    struct vk__conn *c = NULL;
    int rc = vk__store_begin(s, &c, err);
    if (rc)
        return rc;
    struct vk__param p[] = {vk__text(key ? key : ""), vk__int(now_ms), vk__int(now_ms - window_ms)};
    rc = vk__exec(c, VK__STMT_NONE,
                  "INSERT INTO login_failures (key, count, window_start) VALUES ($1, 1, $2)"
                  " ON CONFLICT (key) DO UPDATE SET"
                  " count = CASE WHEN login_failures.window_start <= $3 THEN 1"
                  " ELSE login_failures.count + 1 END,"
                  " window_start = CASE WHEN login_failures.window_start <= $3 THEN $2"
                  " ELSE login_failures.window_start END",
                  p, 3, NULL, err);
    if (rc == 0)
        rc = vk__query_int(c, VK__STMT_NONE, "SELECT count FROM login_failures WHERE key = $1", p,
                           1, count, err);
    return vk__store_end(s, c, rc, err);
}

int vk_store_login_failure_count(struct vk_store *s, const char *key, int64_t now_ms,
                                 int64_t window_ms, int64_t *count, struct vk_err *err)
{
    struct vk__conn *c = NULL;
    int rc = vk__store_conn_get(s, &c, err);
    if (rc)
        return rc;
    struct vk__param p[] = {vk__text(key ? key : ""), vk__int(now_ms - window_ms)};
    rc = vk__query_int(c, VK__STMT_NONE,
                       "SELECT COALESCE(SUM(count), 0) FROM login_failures WHERE key = $1"
                       " AND window_start > $2",
                       p, 2, count, err);
    vk__store_conn_put(s, c);
    return rc;
}

int vk_store_login_failure_clear(struct vk_store *s, const char *key, struct vk_err *err)
{
    struct vk__conn *c = NULL;
    int rc = vk__store_begin(s, &c, err);
    if (rc)
        return rc;
    struct vk__param p[] = {vk__text(key ? key : "")};
    rc = vk__exec(c, VK__STMT_NONE, "DELETE FROM login_failures WHERE key = $1", p, 1, NULL, err);
    return vk__store_end(s, c, rc, err);
}
