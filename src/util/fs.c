#include "util/fs.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util/cleanup.h"

int fs_mkdir_p(const char *path, mode_t mode, err_t *err)
{
    if (strlen(path) >= PATH_MAX)
        return err_set(err, ERR_INVALID_ARGUMENT, ENAMETOOLONG, "creating %s: path too long", path);
    char buf[PATH_MAX];
    strcpy(buf, path);
    for (char *p = buf + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char saved = *p;
        *p = '\0';
        if (mkdir(buf, mode) < 0 && errno != EEXIST)
            return err_sys(err, errno, "creating directory %s", buf);
        *p = saved;
        if (saved == '\0')
            break;
    }
    struct stat st;
    if (stat(path, &st) < 0)
        return err_sys(err, errno, "creating directory %s", path);
    if (!S_ISDIR(st.st_mode))
        return err_set(err, ERR_FAILED_PRECONDITION, ENOTDIR, "creating directory %s: exists and is not a directory",
                       path);
    return 0;
}

static int write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

int fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode, err_t *err)
{
    /* A unique temporary name: two writers of the same file (pool threads)
     * must never share one. */
    _cleanup_free_ char *tmp = NULL;
    _cleanup_free_ char *dir_copy = strdup(path);
    if (!dir_copy || asprintf(&tmp, "%s.tmp.XXXXXX", path) < 0)
        return err_sys(err, ENOMEM, "writing %s", path);

    _cleanup_close_ int fd = mkostemp(tmp, O_CLOEXEC);
    if (fd < 0)
        return err_sys(err, errno, "creating a temporary file for %s", path);
    int r = fchmod(fd, mode) < 0 ? -errno : 0;
    if (r == 0)
        r = write_all(fd, data, len);
    if (r == 0 && fsync(fd) < 0)
        r = -errno;
    if (r < 0) {
        unlink(tmp);
        return err_sys(err, -r, "writing %s", tmp);
    }
    if (rename(tmp, path) < 0) {
        int e = errno;
        unlink(tmp);
        return err_sys(err, e, "renaming %s to %s", tmp, path);
    }
    /* The rename is durable only once the directory entry is on disk. */
    _cleanup_close_ int dfd = open(dirname(dir_copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0 || fsync(dfd) < 0)
        return err_sys(err, errno, "syncing the directory of %s", path);
    return 0;
}

int fs_read_file(const char *path, size_t max, char **out, size_t *len, err_t *err)
{
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return err_sys(err, errno, "opening %s", path);
    struct stat st;
    if (fstat(fd, &st) < 0)
        return err_sys(err, errno, "inspecting %s", path);
    if (!S_ISREG(st.st_mode))
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "%s is not a regular file", path);
    if ((size_t)st.st_size > max)
        return err_set(err, ERR_RESOURCE_EXHAUSTED, EFBIG, "%s is larger than %zu bytes", path, max);
    _cleanup_free_ char *buf = malloc((size_t)st.st_size + 1);
    if (!buf)
        return err_sys(err, ENOMEM, "reading %s", path);
    size_t got = 0;
    while (got < (size_t)st.st_size) {
        ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return err_sys(err, errno, "reading %s", path);
        if (n == 0)
            break;
        got += (size_t)n;
    }
    buf[got] = '\0';
    *out = steal_pointer(&buf);
    *len = got;
    return 0;
}

int fs_lock_file(const char *path, const char *what, err_t *err)
{
    _cleanup_close_ int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0)
        return err_sys(err, errno, "opening lock %s", path);
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        if (errno != EWOULDBLOCK)
            return err_sys(err, errno, "locking %s", path);
        char pid[32] = "";
        ssize_t n = pread(fd, pid, sizeof(pid) - 1, 0);
        char who[64] = "";
        if (n > 0) {
            pid[n] = '\0';
            pid[strcspn(pid, "\n")] = '\0';
            snprintf(who, sizeof(who), " (pid %s)", pid);
        }
        return err_set(err, ERR_ALREADY_EXISTS, EBUSY, "%s is in use by another edgecri%s; lock %s", what, who, path);
    }
    char pid[32];
    int n = snprintf(pid, sizeof(pid), "%d\n", (int)getpid());
    if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)n, 0) != n)
        return err_sys(err, errno, "writing lock %s", path);
    return steal_fd(&fd);
}

static int remove_tree_fd(int parent, const char *name, dev_t dev, int depth, err_t *err)
{
    if (depth > 512)
        return err_set(err, ERR_FAILED_PRECONDITION, ELOOP, "removing %s: tree nested too deeply", name);
    struct stat st;
    if (fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : err_sys(err, errno, "inspecting %s", name);
    if (!S_ISDIR(st.st_mode)) {
        if (unlinkat(parent, name, 0) < 0 && errno != ENOENT)
            return err_sys(err, errno, "removing %s", name);
        return 0;
    }
    if (st.st_dev != dev)
        return err_set(err, ERR_FAILED_PRECONDITION, EBUSY, "removing %s: something is mounted there", name);
    int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return err_sys(err, errno, "opening %s", name);
    DIR *d = fdopendir(fd);
    if (!d) {
        int e = errno;
        close(fd);
        return err_sys(err, e, "reading %s", name);
    }
    int r = 0;
    struct dirent *de;
    while (r == 0 && (de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        r = remove_tree_fd(dirfd(d), de->d_name, dev, depth + 1, err);
    }
    closedir(d);
    if (r < 0)
        return r;
    if (unlinkat(parent, name, AT_REMOVEDIR) < 0 && errno != ENOENT)
        return err_sys(err, errno, "removing directory %s", name);
    return 0;
}

int fs_remove_tree_at(int dirfd, const char *name, err_t *err)
{
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
        return errno == ENOENT ? 0 : err_sys(err, errno, "inspecting %s", name);
    return remove_tree_fd(dirfd, name, st.st_dev, 0, err);
}

int fs_remove_tree(const char *path, err_t *err)
{
    return fs_remove_tree_at(AT_FDCWD, path, err);
}
