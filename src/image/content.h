/* The content store: blobs by digest under <root>/content/blobs/<algo>/<hex>.
 * A blob becomes visible only after its bytes were checked against its
 * digest and made durable (fsync, rename, fsync of the directory), so a
 * crash or power cut can leave a partial download behind but never a blob
 * with wrong content. Partial downloads live in <root>/content/ingest and
 * are resumed after a restart.
 *
 * Functions marked (blocking) do disk I/O that may wait and belong in the
 * thread pool; the others are cheap enough for the loop thread. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

struct content_store;
struct content_ingest;

/* (blocking) Creates the directories if needed. */
int content_store_open(const char *root, struct content_store **out, err_t *err);
void content_store_free(struct content_store *s);

/* Path of a blob (whether or not it exists); caller frees. */
char *content_blob_path(const struct content_store *s, const char *digest);
bool content_blob_exists(const struct content_store *s, const char *digest);

/* (blocking) Reads a small blob (manifest, config) of at most `max` bytes
 * and checks its digest again, so a disk that rotted is noticed. */
int content_read_blob(const struct content_store *s, const char *digest, size_t max, uint8_t **data, size_t *len,
                      err_t *err);

/* (blocking) Stores a small blob already in memory after checking it. */
int content_write_blob(const struct content_store *s, const char *digest, const uint8_t *data, size_t len, err_t *err);

/* (blocking) Removes a blob; a missing one is fine. */
int content_delete_blob(const struct content_store *s, const char *digest, err_t *err);

/* (blocking) Bytes used by blobs and partial downloads, and their count. */
int content_usage(const struct content_store *s, uint64_t *bytes, uint64_t *inodes, err_t *err);

/* (blocking) A new temporary file in the ingest directory, for content
 * whose digest is known only once it is all read (an import); *path is the
 * caller's to free. Hand it to content_adopt or unlink it. */
int content_open_temp(const struct content_store *s, char **path, err_t *err);
/* (blocking) Makes the temporary file at `path` (fd open on it) the blob
 * `digest` (computed by the caller while writing): fsync, rename, fsync. */
int content_adopt(const struct content_store *s, int fd, const char *path, const char *digest, err_t *err);

/* (blocking) Starts or resumes the download of `digest`, `size` bytes long:
 * a partial file left by an earlier attempt (or an earlier run) is hashed
 * again and writing continues after it; content_ingest_offset says where. */
int content_ingest_open(const struct content_store *s, const char *digest, int64_t size, struct content_ingest **out,
                        err_t *err);
uint64_t content_ingest_offset(const struct content_ingest *in);
/* The partial file, for reading it while it grows (pread only: writes use
 * the file offset). Valid until content_ingest_close. */
int content_ingest_fd(const struct content_ingest *in);
/* Appends downloaded bytes; more than the expected size is an error. */
int content_ingest_write(struct content_ingest *in, const uint8_t *data, size_t len, err_t *err);
/* Throws away what was written (the server restarted the body). */
int content_ingest_reset(struct content_ingest *in, err_t *err);
/* (blocking) Checks size and digest, then makes the blob durable and
 * visible. A mismatch is ERR_DATA_LOSS and the partial file is deleted: the
 * bad bytes are never used. */
int content_ingest_commit(struct content_ingest *in, err_t *err);
/* Closes the ingest; `discard` deletes the partial file (else it stays for
 * a later resume). */
void content_ingest_close(struct content_ingest *in, bool discard);
