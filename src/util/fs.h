/* Filesystem helpers with the durability rules edgecri's state depends on. */
#pragma once

#include <stddef.h>
#include <sys/types.h>

#include "util/error.h"

/* mkdir -p; existing directories are left as they are. */
int fs_mkdir_p(const char *path, mode_t mode, err_t *err);

/* Replaces `path` with `data` so that a crash at any instant leaves either
 * the old or the new content, never a mix: write a temporary file in the
 * same directory, fsync it, rename it over, fsync the directory. */
int fs_write_atomic(const char *path, const void *data, size_t len, mode_t mode, err_t *err);

/* Reads a whole regular file of at most `max` bytes (NUL-terminated for
 * convenience; *len excludes the NUL). */
int fs_read_file(const char *path, size_t max, char **out, size_t *len, err_t *err);

/* Takes an exclusive, non-blocking lock on `path` (created 0600) and keeps the
 * descriptor open for the life of the process; the holder's pid is written
 * in it so the refusal can say who holds it. Returns the fd. */
int fs_lock_file(const char *path, const char *what, err_t *err);

/* (blocking) Removes `name` under dirfd and everything below it, never
 * following a symlink and never crossing into another mount (an unpacked
 * layer or a container root can hold anything). A missing tree is fine. */
int fs_remove_tree_at(int dirfd, const char *name, err_t *err);
int fs_remove_tree(const char *path, err_t *err);
