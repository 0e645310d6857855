#include "loop/unix_listener.h"

#include <errno.h>
#include <libgen.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "util/cleanup.h"
#include "util/fs.h"

/* Is anything accepting connections on this path? */
static int probe_existing(const char *path, err_t *err)
{
    struct stat st;
    if (lstat(path, &st) < 0) {
        if (errno == ENOENT)
            return 0;
        return err_sys(err, errno, "inspecting %s", path);
    }
    if (!S_ISSOCK(st.st_mode))
        return err_set(err, ERR_ALREADY_EXISTS, EEXIST, "%s exists and is not a socket; refusing to replace it", path);

    _cleanup_close_ int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return err_sys(err, errno, "probing %s", path);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    strncpy(sa.sun_path, path, sizeof(sa.sun_path) - 1);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0)
        return err_set(err, ERR_ALREADY_EXISTS, EADDRINUSE,
                       "another process is already serving on %s (is edgecri already running?)", path);
    if (errno != ECONNREFUSED && errno != ENOENT)
        return err_sys(err, errno, "probing %s", path);
    /* Stale: left behind by a process that died without cleaning up. */
    if (unlink(path) < 0 && errno != ENOENT)
        return err_sys(err, errno, "removing stale socket %s", path);
    return 0;
}

int unix_listener_open(uv_pipe_t *pipe, const char *path, int backlog, uv_connection_cb on_connection, ino_t *inode,
                       err_t *err)
{
    _cleanup_free_ char *dir_copy = strdup(path);
    if (!dir_copy)
        return err_sys(err, ENOMEM, "listening on %s", path);
    const char *dir = dirname(dir_copy);
    int r = fs_mkdir_p(dir, 0711, err);
    if (r < 0)
        return r;
    struct stat st;
    if (stat(dir, &st) < 0)
        return err_sys(err, errno, "inspecting %s", dir);
    if (st.st_mode & (S_IWGRP | S_IWOTH))
        return err_set(err, ERR_PERMISSION_DENIED, EPERM,
                       "socket directory %s is writable by group or others (mode %04o); refusing to listen there", dir,
                       st.st_mode & 07777);

    r = probe_existing(path, err);
    if (r < 0)
        return r;

    /* umask makes bind() create the socket 0660 directly; a chmod afterwards
     * would leave a moment where it is more open. */
    mode_t old = umask(0117);
    r = uv_pipe_bind(pipe, path);
    umask(old);
    if (r < 0)
        return err_sys(err, -r, "binding %s", path);
    r = uv_listen((uv_stream_t *)pipe, backlog, on_connection);
    if (r < 0 || lstat(path, &st) < 0) {
        int e = r < 0 ? -r : errno;
        unlink(path);
        return err_sys(err, e, "listening on %s", path);
    }
    *inode = st.st_ino;
    return 0;
}

void unix_listener_unlink(const char *path, ino_t inode)
{
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode) && st.st_ino == inode)
        unlink(path);
}
