/* A listening unix socket for an API that only the node's administrators may
 * use: mode 0660, in a directory nobody else can write to. */
#pragma once

#include <sys/types.h>
#include <uv.h>

#include "util/error.h"

/* Binds and listens on `path` with `pipe` (already uv_pipe_init'ed).
 * - The parent directory is created 0711 if missing and must not be group-
 *   or world-writable (someone else could swap the socket under us).
 * - An existing socket file is replaced only if nothing accepts connections on
 *   it (a stale file from a crash); if something is listening, another
 *   instance is running and we refuse with a clear message.
 * - The socket is created 0660 without a window where it is more open. */
int unix_listener_open(uv_pipe_t *pipe, const char *path, int backlog, uv_connection_cb on_connection, ino_t *inode,
                       err_t *err);

/* Removes the socket file if it is still the one we created (the inode that
 * unix_listener_open reported), so a stopping instance never deletes the
 * socket of its successor. */
void unix_listener_unlink(const char *path, ino_t inode);
