/*
 * store backup: a consistent copy of a live SQLite database (vk_store_sqlite_backup) and
 * the check of a copy before it is used (vk_store_sqlite_inspect); docs/operations/
 * disaster-recovery.md. PostgreSQL has its own tools (pg_basebackup, pg_dump).
 */
#include "store_int.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BACKUP_BUSY_MS 10000

int vk_store_sqlite_backup(const char *src, const char *dst, struct vk_err *err)
{
    struct stat st;
    if (stat(src, &st) != 0 || !S_ISREG(st.st_mode))
        return vk_err_set(err, VK_ENOTFOUND, "no SQLite database at '%s'", src);
    if (lstat(dst, &st) == 0)
        return vk_err_set(err, VK_EEXIST, "'%s' exists already: give a new path", dst);
    /* Made 0600 before SQLite writes to it: the copy holds what the database holds. */
    int fd = open(dst, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return vk_err_set(err, VK_EIO, "cannot create '%s'", dst);
    close(fd);
    sqlite3 *from = NULL, *to = NULL;
    int rc = sqlite3_open_v2(src, &from, SQLITE_OPEN_READONLY, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_open_v2(dst, &to, SQLITE_OPEN_READWRITE, NULL);
    if (rc != SQLITE_OK) {
        vk_err_set(err, VK_EDB, "cannot open '%s': %s", rc == SQLITE_OK ? dst : src,
                   sqlite3_errmsg(to ? to : from));
        goto fail;
    }
    sqlite3_busy_timeout(from, BACKUP_BUSY_MS);
    sqlite3_busy_timeout(to, BACKUP_BUSY_MS);
    /* One step of every page: in WAL mode the copy reads one snapshot while the server's
     * writers go on (a step by step copy would start over at each of their commits). */
    sqlite3_backup *b = sqlite3_backup_init(to, "main", from, "main");
    if (!b) {
        vk_err_set(err, VK_EDB, "cannot start the backup: %s", sqlite3_errmsg(to));
        goto fail;
    }
    rc = sqlite3_backup_step(b, -1);
    int frc = sqlite3_backup_finish(b);
    if (rc != SQLITE_DONE || frc != SQLITE_OK) {
        vk_err_set(err, VK_EDB, "the backup of '%s' failed: %s", src,
                   sqlite3_errstr(rc != SQLITE_DONE ? rc : frc));
        goto fail;
    }
    /* The copy is one self-contained file: no WAL beside it. */
    char *why = NULL;
    if (sqlite3_exec(to, "PRAGMA journal_mode=DELETE", NULL, NULL, &why) != SQLITE_OK) {
        vk_err_set(err, VK_EDB, "cannot finish the copy: %s", why ? why : "?");
        sqlite3_free(why);
        goto fail;
    }
    sqlite3_close(from);
    if (sqlite3_close(to) != SQLITE_OK)
        return vk_err_set(err, VK_EIO, "cannot close '%s'", dst);
    return 0;
fail:
    sqlite3_close(from);
    sqlite3_close(to);
    unlink(dst);
    return err ? err->code : VK_EDB;
}

/* The single integer `sql` answers on `db`, or -1. */
static int64_t one_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    int64_t v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

int vk_store_sqlite_inspect(const char *path, struct vk_store_sqlite_info *info, struct vk_err *err)
{
    memset(info, 0, sizeof(*info));
    sqlite3 *db = NULL;
    int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL);
    if (rc != SQLITE_OK) {
        vk_err_set(err, VK_EDB, "cannot open '%s': %s", path, db ? sqlite3_errmsg(db) : "?");
        sqlite3_close(db);
        return VK_EDB;
    }
    sqlite3_stmt *st = NULL;
    const char *verdict = NULL;
    if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        verdict = (const char *)sqlite3_column_text(st, 0);
    if (!verdict || strcmp(verdict, "ok") != 0) {
        vk_err_set(err, VK_EDB, "'%s' is not a sound SQLite database: %.160s", path,
                   verdict ? verdict : sqlite3_errmsg(db));
        sqlite3_finalize(st);
        sqlite3_close(db);
        return VK_EDB;
    }
    sqlite3_finalize(st);
    info->schema_version = one_int(db, "SELECT COALESCE(MAX(version), 0) FROM schema_migrations");
    info->chains = one_int(db, "SELECT COUNT(*) FROM chains");
    info->secrets = one_int(db, "SELECT COUNT(*) FROM secrets");
    sqlite3_close(db);
    if (info->schema_version < 0 || info->chains < 0)
        return vk_err_set(err, VK_EDB,
                          "'%s' is not a Vulcan database (no schema_migrations "
                          "or chains table)",
                          path);
    if (info->schema_version > VK_STORE_SCHEMA_VERSION)
        return vk_err_set(err, VK_EVERSION,
                          "'%s' has schema version %lld, newer than this binary supports (%d): "
                          "restore it with a newer vulcan",
                          path, (long long)info->schema_version, VK_STORE_SCHEMA_VERSION);
    return 0;
}
