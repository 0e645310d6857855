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

/* Calls fn (err NULL) once no write is running or queued: now if idle, else
 * on the loop after the last write's waiters (which may have queued another
 * write: fn checks persist_file_busy again if that matters). For deleting
 * what the file lives in without racing a write. -ENOMEM if it cannot
 * wait. fn may free the file. */
int persist_file_when_idle(struct persist_file *pf, persist_done_fn fn, void *data);

const char *persist_file_path(const struct persist_file *pf);
