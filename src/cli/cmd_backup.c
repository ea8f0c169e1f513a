/*
 * `vulcan admin backup` and `vulcan admin restore` (issue 22, docs/operations/
 * disaster-recovery.md): a backup directory holds a consistent copy of a live SQLite
 * database, every file of the data directory that must go with it (the secrets key, the
 * job OIDC keys, audit keys, ...), and a manifest naming each file with its size and
 * SHA-256. A restore checks all of it before it writes anything.
 */
#include "cli.h"
#include "vulcan/store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MANIFEST "manifest.json"
#define DB_NAME "vulcan.db"
#define MAX_FILES 64
#define MAX_FILE_BYTES (64u << 20) /* a key file, not a database */

static const char backup_usage[] =
    "usage: vulcan admin backup --out DIR [--data-dir D] [--database URL]\n"
    "                           [--secrets-key-file F]\n"
    "\n"
    "Back up a server's state into the new directory DIR (0700): a consistent copy of its\n"
    "SQLite database, taken while the server runs (the server's writers are not held up),\n"
    "every file of the data directory that must go with it (the secrets key, the job OIDC\n"
    "signing keys, audit keys, the initial admin token; not the workers' work/ directory),\n"
    "and manifest.json with the size and SHA-256 of each. With a PostgreSQL --database only\n"
    "the key files are copied: dump the database with pg_dump or pg_basebackup\n"
    "(docs/operations/disaster-recovery.md). Keep backups as secret as the server: the\n"
    "secrets key opens every secret in the database.\n"
    "\n"
    "  --out DIR            where the backup goes (must not exist)\n"
    "  --data-dir D         the server's data directory (default ./vulcan-data)\n"
    "                                                              VULCAN_DATA_DIR\n"
    "  --database URL       default sqlite:D/vulcan.db                VULCAN_DATABASE\n"
    "  --secrets-key-file F default D/secrets.key             VULCAN_SECRETS_KEY_FILE\n"
    "\n"
    "Exit status: 0 done, 1 failed, 2 bad usage.\n";

static const char restore_usage[] =
    "usage: vulcan admin restore --from DIR --data-dir D [--force]\n"
    "\n"
    "Restore a backup made by 'vulcan admin backup' into the data directory D, then start\n"
    "'vulcan server --data-dir D' on it. Every file is checked against the manifest (size\n"
    "and SHA-256) and the database with SQLite's integrity check before anything is\n"
    "written; a backup of a newer schema than this binary knows is refused. The server must\n"
    "not be running on D.\n"
    "\n"
    "  --from DIR           the backup directory\n"
    "  --data-dir D         where to restore (made 0700 when missing)   VULCAN_DATA_DIR\n"
    "  --force              replace a database that D holds already\n"
    "\n"
    "Exit status: 0 done, 1 refused or failed, 2 bad usage.\n";

/* The SHA-256 (hex) and size of the file `path`. Returns 0 or -1 (errno set). */
static int file_digest(const char *path, char hex[65], int64_t *size)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) == 1;
    unsigned char buf[65536];
    int64_t total = 0;
    ssize_t n;
    while (ok && (n = read(fd, buf, sizeof(buf))) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            ok = 0;
            break;
        }
        ok = EVP_DigestUpdate(ctx, buf, (size_t)n) == 1;
        total += n;
    }
    unsigned char md[32];
    unsigned len = 0;
    ok = ok && EVP_DigestFinal_ex(ctx, md, &len) == 1 && len == 32;
    EVP_MD_CTX_free(ctx);
    close(fd);
    if (!ok) {
        errno = EIO;
        return -1;
    }
    for (unsigned i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", md[i]);
    *size = total;
    return 0;
}

/* Copy `from` to the new file `to` with mode 0600, fsync'd. Returns 0 or -1 (errno). */
static int copy_file(const char *from, const char *to)
{
    int in = open(from, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return -1;
    int out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (out < 0) {
        int e = errno;
        close(in);
        errno = e;
        return -1;
    }
    char buf[65536];
    ssize_t n;
    int rc = 0;
    while ((n = read(in, buf, sizeof(buf))) != 0) {
        if (n < 0) {
            if (errno == EINTR)
                continue;
            rc = -1;
            break;
        }
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(out, buf + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                rc = -1;
                break;
            }
            off += w;
        }
        if (rc < 0)
            break;
    }
    int e = errno;
    if (rc == 0 && fsync(out) != 0)
        rc = -1;
    close(in);
    if (close(out) != 0 && rc == 0)
        rc = -1;
    if (rc < 0) {
        unlink(to);
        errno = e ? e : EIO;
    }
    return rc;
}

/* Whether `name` in the data directory belongs to the database itself (copied apart). */
static bool is_db_file(const char *name)
{
    static const char *const suffixes[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < VK_ARRAY_LEN(suffixes); i++) {
        char n[64];
        snprintf(n, sizeof(n), DB_NAME "%s", suffixes[i]);
        if (strcmp(name, n) == 0)
            return true;
    }
    return false;
}

/* Add {"name", "bytes", "sha256"} of DIR/name to `files`; prints and returns 1 on failure. */
static int add_entry(json_t *files, const char *dir, const char *name, const char *cmd)
{
    char path[4096], hex[65];
    int64_t size = 0;
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    if (file_digest(path, hex, &size) < 0) {
        fprintf(stderr, "vulcan %s: cannot read %s: %s\n", cmd, path, strerror(errno));
        return 1;
    }
    json_array_append_new(files, json_pack("{s:s, s:I, s:s}", "name", name, "bytes",
                                           (json_int_t)size, "sha256", hex));
    return 0;
}

static int backup(int argc, char **argv)
{
    const char *cmd = "admin backup";
    const char *data_dir = "./vulcan-data", *database = NULL, *out = NULL, *key_file = NULL;
    struct vk__cli_opt opts[] = {
        {"out", 0, VK_CLI_STR, &out, NULL, false, 0, 0},
        {"data-dir", 0, VK_CLI_STR, &data_dir, "VULCAN_DATA_DIR", true, 0, 0},
        {"database", 0, VK_CLI_STR, &database, "VULCAN_DATABASE", true, 0, 0},
        {"secrets-key-file", 0, VK_CLI_STR, &key_file, "VULCAN_SECRETS_KEY_FILE", true, 0, 0},
    };
    const char *pos[1];
    int npos = 0;
    int rc = vk__cli_opts_parse(cmd, argc, argv, opts, VK_ARRAY_LEN(opts), pos, &npos, 0);
    if (rc)
        return rc;
    if (!out) {
        fprintf(stderr, "vulcan %s: --out DIR is needed; see 'vulcan admin backup --help'\n", cmd);
        return 2;
    }
    char dbbuf[4200];
    if (!database) {
        snprintf(dbbuf, sizeof(dbbuf), "sqlite:%s/" DB_NAME, data_dir);
        database = dbbuf;
    }
    bool sqlite = strncmp(database, "sqlite:", 7) == 0;
    if (!sqlite && strncmp(database, "postgres", 8) != 0) {
        fprintf(stderr, "vulcan %s: --database must be sqlite:PATH or postgres://...\n", cmd);
        return 2;
    }
    if (sqlite && strcmp(database + 7, ":memory:") == 0) {
        fprintf(stderr, "vulcan %s: an in-memory database cannot be backed up\n", cmd);
        return 2;
    }
    struct stat st;
    if (stat(data_dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "vulcan %s: no data directory %s\n", cmd, data_dir);
        return 1;
    }
    if (mkdir(out, 0700) != 0) {
        fprintf(stderr, "vulcan %s: cannot make %s: %s%s\n", cmd, out, strerror(errno),
                errno == EEXIST ? " (give a new directory)" : "");
        return 1;
    }
    int64_t t0 = vk_time_now_ms();
    json_t *files = json_array();
    char path[4096], key_dst[4096];
    int failed = 0;
    struct vk_store_sqlite_info info = {.schema_version = 0, .chains = -1, .secrets = -1};
    if (sqlite) {
        snprintf(path, sizeof(path), "%s/" DB_NAME, out);
        struct vk_err err;
        vk_err_clear(&err);
        if (vk_store_sqlite_backup(database + 7, path, &err) < 0 ||
            vk_store_sqlite_inspect(path, &info, &err) < 0) {
            fprintf(stderr, "vulcan %s: %s\n", cmd, err.msg);
            failed = 1;
        } else {
            failed |= add_entry(files, out, DB_NAME, cmd);
        }
    }
    /* Every other file of the data directory: keys and tokens the database needs. */
    DIR *d = failed ? NULL : opendir(data_dir);
    struct dirent *de;
    bool have_key = false;
    while (d && !failed && (de = readdir(d))) {
        if (de->d_name[0] == '.' || is_db_file(de->d_name))
            continue;
        snprintf(path, sizeof(path), "%s/%s", data_dir, de->d_name);
        if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue; /* work/, sockets, links */
        if (st.st_size > (off_t)MAX_FILE_BYTES) {
            fprintf(stderr, "vulcan %s: skipping %s (%lld bytes: not a key file)\n", cmd, path,
                    (long long)st.st_size);
            continue;
        }
        if (json_array_size(files) >= MAX_FILES) {
            fprintf(stderr, "vulcan %s: more than %d files in %s\n", cmd, MAX_FILES, data_dir);
            failed = 1;
            break;
        }
        snprintf(key_dst, sizeof(key_dst), "%s/%s", out, de->d_name);
        if (copy_file(path, key_dst) < 0) {
            fprintf(stderr, "vulcan %s: cannot copy %s: %s\n", cmd, path, strerror(errno));
            failed = 1;
            break;
        }
        failed |= add_entry(files, out, de->d_name, cmd);
        have_key |= strcmp(de->d_name, "secrets.key") == 0;
    }
    if (d)
        closedir(d);
    /* A secrets key kept outside the data directory goes in as secrets.key. */
    if (!failed && key_file && !have_key) {
        snprintf(key_dst, sizeof(key_dst), "%s/secrets.key", out);
        if (copy_file(key_file, key_dst) < 0) {
            fprintf(stderr, "vulcan %s: cannot copy the secrets key %s: %s\n", cmd, key_file,
                    strerror(errno));
            failed = 1;
        } else {
            failed |= add_entry(files, out, "secrets.key", cmd);
        }
    }
    int64_t ms = vk_time_now_ms() - t0;
    json_t *m = json_pack(
        "{s:i, s:s, s:I, s:s, s:I, s:I, s:I, s:I, s:o}", "format", 1, "vulcan_version", VK_VERSION,
        "created_at_ms", (json_int_t)vk_time_now_ms(), "database", sqlite ? "sqlite" : "postgresql",
        "schema_version", (json_int_t)info.schema_version, "chains", (json_int_t)info.chains,
        "secrets", (json_int_t)info.secrets, "duration_ms", (json_int_t)ms, "files", files);
    snprintf(path, sizeof(path), "%s/" MANIFEST, out);
    if (!failed && (!m || json_dump_file(m, path, JSON_INDENT(2) | JSON_SORT_KEYS) != 0)) {
        fprintf(stderr, "vulcan %s: cannot write %s\n", cmd, path);
        failed = 1;
    }
    if (!failed)
        chmod(path, 0600);
    json_decref(m);
    if (failed) {
        fprintf(stderr, "vulcan %s: the backup in %s is incomplete: delete it\n", cmd, out);
        return 1;
    }
    if (sqlite)
        printf("backed up %s (%lld chains, schema %lld) and its key files to %s in %lld ms\n",
               database + 7, (long long)info.chains, (long long)info.schema_version, out,
               (long long)ms);
    else
        printf("copied the key files of %s to %s; now dump the PostgreSQL database, e.g.\n"
               "  pg_dump --format=custom --file %s/vulcan.pgdump \"$VULCAN_DATABASE\"\n"
               "(docs/operations/disaster-recovery.md)\n",
               data_dir, out, out);
    return 0;
}

/* Check every file the manifest names; returns the files array (borrowed from m) or NULL. */
static json_t *check_manifest(json_t *m, const char *from, const char *cmd)
{
    json_t *files = json_object_get(m, "files");
    if (json_integer_value(json_object_get(m, "format")) != 1 || !json_is_array(files) ||
        json_array_size(files) > MAX_FILES) {
        fprintf(stderr, "vulcan %s: %s/" MANIFEST " is not a manifest of 'vulcan admin backup'\n",
                cmd, from);
        return NULL;
    }
    size_t i;
    json_t *f;
    json_array_foreach(files, i, f)
    {
        const char *name = json_string_value(json_object_get(f, "name"));
        const char *want = json_string_value(json_object_get(f, "sha256"));
        json_int_t bytes = json_integer_value(json_object_get(f, "bytes"));
        /* A name is one plain component: a manifest must not write outside D. */
        if (!name || !*name || name[0] == '.' || strchr(name, '/') || !want ||
            strcmp(name, MANIFEST) == 0) {
            fprintf(stderr, "vulcan %s: the manifest names a bad file: %s\n", cmd,
                    name ? name : "(none)");
            return NULL;
        }
        char path[4096], hex[65];
        int64_t size = 0;
        snprintf(path, sizeof(path), "%s/%s", from, name);
        if (file_digest(path, hex, &size) < 0) {
            fprintf(stderr, "vulcan %s: %s: %s\n", cmd, path, strerror(errno));
            return NULL;
        }
        if (size != bytes || strcmp(hex, want) != 0) {
            fprintf(stderr,
                    "vulcan %s: %s does not match the manifest (%lld bytes, sha256 %s; the "
                    "manifest says %lld bytes, %s): the backup is damaged or was changed\n",
                    cmd, path, (long long)size, hex, (long long)bytes, want);
            return NULL;
        }
    }
    return files;
}

static int restore(int argc, char **argv)
{
    const char *cmd = "admin restore";
    const char *from = NULL, *data_dir = NULL;
    bool force = false;
    struct vk__cli_opt opts[] = {
        {"from", 0, VK_CLI_STR, &from, NULL, false, 0, 0},
        {"data-dir", 0, VK_CLI_STR, &data_dir, "VULCAN_DATA_DIR", false, 0, 0},
        {"force", 0, VK_CLI_FLAG, &force, NULL, false, 0, 0},
    };
    const char *pos[1];
    int npos = 0;
    int rc = vk__cli_opts_parse(cmd, argc, argv, opts, VK_ARRAY_LEN(opts), pos, &npos, 0);
    if (rc)
        return rc;
    if (!from || !data_dir) {
        fprintf(stderr,
                "vulcan %s: --from DIR and --data-dir D are needed; see 'vulcan admin "
                "restore --help'\n",
                cmd);
        return 2;
    }
    int64_t t0 = vk_time_now_ms();
    char path[4096], dst[4096], tmp[4200];
    snprintf(path, sizeof(path), "%s/" MANIFEST, from);
    json_error_t jerr;
    json_t *m = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!m) {
        fprintf(stderr, "vulcan %s: cannot read %s: %s\n", cmd, path, jerr.text);
        return 1;
    }
    json_t *files = check_manifest(m, from, cmd);
    const char *kind = json_string_value(json_object_get(m, "database"));
    bool sqlite = kind && strcmp(kind, "sqlite") == 0;
    struct vk_store_sqlite_info info = {0};
    if (files && sqlite) {
        snprintf(path, sizeof(path), "%s/" DB_NAME, from);
        struct vk_err err;
        vk_err_clear(&err);
        if (vk_store_sqlite_inspect(path, &info, &err) < 0) {
            fprintf(stderr, "vulcan %s: %s\n", cmd, err.msg);
            files = NULL;
        }
    }
    if (!files) {
        json_decref(m);
        return 1;
    }
    struct stat st;
    if (mkdir(data_dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "vulcan %s: cannot make %s: %s\n", cmd, data_dir, strerror(errno));
        json_decref(m);
        return 1;
    }
    snprintf(dst, sizeof(dst), "%s/" DB_NAME, data_dir);
    if (sqlite && stat(dst, &st) == 0 && !force) {
        fprintf(stderr,
                "vulcan %s: %s holds a database already; stop its server and give --force to "
                "replace it\n",
                cmd, data_dir);
        json_decref(m);
        return 1;
    }
    /* Each file goes in through a temporary name and a rename, the database last, so a
     * restore cut short leaves the old database or none, never half of one. */
    int failed = 0;
    for (int pass = 0; pass < 2 && !failed; pass++) {
        size_t i;
        json_t *f;
        json_array_foreach(files, i, f)
        {
            const char *name = json_string_value(json_object_get(f, "name"));
            if ((strcmp(name, DB_NAME) == 0) != (pass == 1))
                continue;
            snprintf(path, sizeof(path), "%s/%s", from, name);
            snprintf(dst, sizeof(dst), "%s/%s", data_dir, name);
            snprintf(tmp, sizeof(tmp), "%s/.%s.restore", data_dir, name);
            unlink(tmp);
            if (copy_file(path, tmp) < 0 || rename(tmp, dst) != 0) {
                fprintf(stderr, "vulcan %s: cannot write %s: %s\n", cmd, dst, strerror(errno));
                unlink(tmp);
                failed = 1;
                break;
            }
            if (pass == 1) { /* the old database's WAL must not be replayed onto the new one */
                static const char *const side[] = {"-wal", "-shm", "-journal"};
                for (size_t k = 0; k < VK_ARRAY_LEN(side); k++) {
                    snprintf(tmp, sizeof(tmp), "%s/" DB_NAME "%s", data_dir, side[k]);
                    unlink(tmp);
                }
            }
        }
    }
    json_decref(m);
    if (failed)
        return 1;
    if (sqlite)
        printf("restored %lld chains (schema %lld) into %s in %lld ms; start the server with\n"
               "  vulcan server --data-dir %s\n",
               (long long)info.chains, (long long)info.schema_version, data_dir,
               (long long)(vk_time_now_ms() - t0), data_dir);
    else
        printf("restored the key files into %s; now restore the PostgreSQL dump, e.g.\n"
               "  pg_restore --clean --if-exists --dbname \"$VULCAN_DATABASE\" %s/vulcan.pgdump\n"
               "and start the servers with that --database and --data-dir %s\n",
               data_dir, from, data_dir);
    return 0;
}

int vk__cli_admin_backup(int argc, char **argv)
{
    if (vk__cli_wants_help(argc, argv)) {
        fputs(backup_usage, stdout);
        return 0;
    }
    return backup(argc, argv);
}

int vk__cli_admin_restore(int argc, char **argv)
{
    if (vk__cli_wants_help(argc, argv)) {
        fputs(restore_usage, stdout);
        return 0;
    }
    return restore(argc, argv);
}
