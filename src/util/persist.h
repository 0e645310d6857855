/* A file kept durable off the loop thread: the newest content is written
 * atomically (fs_write_atomic: temp file, fsync, rename, fsync dir) in the
 * thread pool, one write at a time, and every caller learns when a write
 * holding its change (or a newer one) is on disk. Changes that arrive while a
 * write is running are folded into one more write, so a burst of updates
 * costs two writes, not one per update. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "util/error.h"

typedef void (*persist_done_fn)(void *data, const err_t *err);

struct persist_file;

struct persist_file *persist_file_new(const char *path, mode_t mode);

/* Frees it; only when persist_file_busy() is false (shutdown waits). */
void persist_file_free(struct persist_file *pf);

/* Schedules `data` (copied) as the file's new content. `done` may be NULL;
 * it runs on the loop thread. */
void persist_file_write(struct persist_file *pf, const void *data, size_t len, persist_done_fn done, void *cb_data);

bool persist_file_busy(const struct persist_file *pf);

const char *persist_file_path(const struct persist_file *pf);
