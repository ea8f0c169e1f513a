/*
 * exec_fs.c — workspace files: mkdir -p, writing the script, and a recursive
 * removal that never follows symlinks out of the tree.
 *
 * The removal works on directory file descriptors (openat/unlinkat with
 * O_NOFOLLOW), so a symlink planted by the script is unlinked, never followed,
 * and a directory swapped for a symlink fails to open instead of leading
 * elsewhere. It does not descend into other file systems (mount points). To
 * bound the number of open descriptors, a subtree deeper than MAX_DEPTH is
 * moved up to the top directory and removed from there on a later pass.
 */
#include "exec_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define MAX_DEPTH 48

void vk__exec_sleep_ms(int64_t ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

int vk__exec_mkdir_p(const char *path, mode_t mode, struct vk_err *err)
{
    char buf[PATH_MAX];
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof buf)
        return vk_err_set(err, VK_EINVAL, "bad directory path '%.200s'", path);
    memcpy(buf, path, len + 1);
    for (size_t i = 1; i <= len; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        char saved = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, mode) < 0 && errno != EEXIST)
            return vk_err_errno(err, "mkdir");
        buf[i] = saved;
    }
    struct stat st;
    if (stat(path, &st) < 0)
        return vk_err_errno(err, "stat");
    if (!S_ISDIR(st.st_mode))
        return vk_err_set(err, VK_EIO, "'%.200s' is not a directory", path);
    return 0;
}

int vk__exec_write_file(const char *path, const char *data, size_t len, struct vk_err *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0)
        return vk_err_errno(err, "open script");
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            int rc = vk_err_errno(err, "write script");
            close(fd);
            return rc;
        }
        data += n;
        len -= (size_t)n;
    }
    if (close(fd) < 0)
        return vk_err_errno(err, "close script");
    return 0;
}

char *vk__exec_which(const char *pref, const char *name)
{
    if (pref && access(pref, X_OK) == 0)
        return vk_mem_xstrdup(pref);
    const char *path = getenv("PATH");
    if (!path || !*path)
        path = VK_EXEC_DEFAULT_PATH;
    while (*path) {
        const char *end = strchr(path, ':');
        size_t n = end ? (size_t)(end - path) : strlen(path);
        char cand[PATH_MAX];
        if (n > 0 && n + strlen(name) + 2 < sizeof cand) {
            snprintf(cand, sizeof cand, "%.*s/%s", (int)n, path, name);
            if (cand[0] == '/' && access(cand, X_OK) == 0)
                return vk_mem_xstrdup(cand);
        }
        path += n;
        if (*path == ':')
            path++;
    }
    return NULL;
}

/*
 * Empty the directory open as `dfd` (which this function closes). `top` is the
 * root of the removal (for hoisting deep subtrees), `dev` its file system.
 * Sets *again when something was hoisted and the top needs another pass.
 */
static int empty_dir(int dfd, int top, dev_t dev, int depth, unsigned *hoisted, bool *again)
{
    int rc = 0;
    DIR *d = fdopendir(dfd);
    if (!d) {
        close(dfd);
        return -errno;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *n = e->d_name;
        if (strcmp(n, ".") == 0 || strcmp(n, "..") == 0)
            continue;
        struct stat st;
        if (fstatat(dirfd(d), n, &st, AT_SYMLINK_NOFOLLOW) < 0) {
            if (errno != ENOENT && rc == 0)
                rc = -errno;
            continue;
        }
        if (!S_ISDIR(st.st_mode)) {
            if (unlinkat(dirfd(d), n, 0) < 0 && errno != ENOENT && rc == 0)
                rc = -errno;
            continue;
        }
        if (st.st_dev != dev) {
            if (rc == 0)
                rc = -EXDEV; /* a mount point: never descend */
            continue;
        }
        if (depth >= MAX_DEPTH) {
            char nn[64];
            snprintf(nn, sizeof nn, ".vk-deep-%u-%ld", (*hoisted)++, (long)getpid());
            if (renameat(dirfd(d), n, top, nn) == 0)
                *again = true;
            else if (rc == 0)
                rc = -errno;
            continue;
        }
        /* A script may leave a directory without permissions: give ourselves some. */
        if ((st.st_mode & 0700) != 0700)
            (void)fchmodat(dirfd(d), n, (st.st_mode & 07777) | 0700, 0);
        int cfd = openat(dirfd(d), n, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (cfd < 0) {
            if (errno != ENOENT && rc == 0)
                rc = -errno;
            continue;
        }
        int r = empty_dir(cfd, top, dev, depth + 1, hoisted, again);
        if (r < 0 && rc == 0)
            rc = r;
        if (unlinkat(dirfd(d), n, AT_REMOVEDIR) < 0 && errno != ENOENT && rc == 0)
            rc = -errno;
    }
    closedir(d);
    return rc;
}

/* Empty the directory `path` (lstat'ed as *st); returns 0 or -errno. */
static int empty_tree(const char *path, const struct stat *st)
{
    if ((st->st_mode & 0700) != 0700)
        (void)chmod(path, (st->st_mode & 07777) | 0700);
    int top = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (top < 0)
        return -errno;
    unsigned hoisted = 0;
    int rc = 0;
    for (int pass = 0; pass < 100000; pass++) {
        bool again = false;
        /* A fresh open file description each pass: a dup would share the offset. */
        int dfd = openat(top, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd < 0) {
            rc = -errno;
            break;
        }
        rc = empty_dir(dfd, top, st->st_dev, 1, &hoisted, &again);
        if (!again)
            break;
    }
    close(top);
    return rc;
}

int vk__exec_empty_dir(const char *path, struct vk_err *err)
{
    struct stat st;
    if (lstat(path, &st) < 0)
        return vk_err_errno(err, "lstat");
    if (!S_ISDIR(st.st_mode))
        return vk_err_set(err, VK_EIO, "'%.200s' is not a directory", path);
    int rc = empty_tree(path, &st);
    if (rc < 0) {
        errno = -rc;
        return vk_err_errno(err, "empty directory");
    }
    return 0;
}

int vk__exec_rmtree(const char *path, struct vk_err *err)
{
    struct stat st;
    if (lstat(path, &st) < 0) {
        if (errno == ENOENT)
            return 0;
        return vk_err_errno(err, "lstat");
    }
    if (!S_ISDIR(st.st_mode)) {
        if (unlink(path) < 0 && errno != ENOENT)
            return vk_err_errno(err, "unlink");
        return 0;
    }
    int rc = empty_tree(path, &st);
    if (rc == 0 && rmdir(path) < 0 && errno != ENOENT)
        rc = -errno;
    if (rc < 0) {
        errno = -rc;
        return vk_err_errno(err, "remove tree");
    }
    return 0;
}
