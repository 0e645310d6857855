/* Container log files in the CRI log format, the one kubelet (`kubectl logs`,
 * log rotation) and crictl read back:
 *
 *     2026-11-23T10:00:00.123456789Z stdout F hello world
 *     2026-11-23T10:00:00.123456789Z stderr P first 16 KiB of a long line…
 *
 * `<RFC 3339 time in UTC, 9 fractional digits> <stdout|stderr> <F|P> <content>`
 * and a newline. F ends a line of the container's output (its newline is the
 * record's); P means the line goes on in the stream's next record, so a reader
 * joins P records up to the next F. kubelet's parser needs every field and the
 * space after the tag, even when the content is empty.
 *
 * The writer is fed raw bytes as they are read from the container's pipes and
 * keeps, per stream, the start of a line that has no newline yet. All of it
 * runs on the loop thread; a struct crilog is not shared between threads. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "util/error.h"

/* The longest content of one record, what containerd writes by default
 * (max_container_log_line_size); longer lines become several P records, which
 * bounds both the memory a container can make us hold and what kubelet must
 * buffer per line. */
#define CRILOG_MAX_CONTENT 16384

/* Length of a formatted timestamp ("2026-11-23T10:00:00.123456789Z"). */
#define CRILOG_TIME_LEN 30

enum crilog_stream { CRILOG_STDOUT = 0, CRILOG_STDERR = 1 };

struct crilog;

/* Opens (creating 0640, O_APPEND, O_CLOEXEC, O_NOFOLLOW) the log file; the
 * directory must exist (kubelet creates it). A symlink or anything but a
 * regular file at `path` is refused: the path lies in a directory kubelet
 * manages, and a FIFO or device there would block or misdirect the output. */
int crilog_open(const char *path, struct crilog **out, err_t *err);

/* kubelet's ReopenContainerLog after rotating: close and open the path again;
 * pending partial lines are kept for the new file. The new file is opened
 * before the old one is closed, so on failure the log keeps writing to the
 * old file (kubelet then renames the rotated file back and retries). */
int crilog_reopen(struct crilog *l, err_t *err);

/* Feeds raw bytes read from a container stream; `now` is the time they were
 * read (the timestamp of records completed by this call). Each complete
 * record goes to the file whole in one write (a writev that may carry several
 * records), so with O_APPEND concurrent writers never split a record. A line
 * that has filled 16 KiB goes out as a P record once more of it arrives (or
 * on crilog_flush), so a line of exactly 16 KiB is one F record.
 *
 * On a write error (ENOSPC, EIO…) the error is returned and the records
 * completed by this call are dropped, but all of `data` is consumed: the
 * partial-line state stays right, so the caller keeps draining the container
 * (which must never block on a full pipe) and counts `len` as dropped. If an
 * error left half a record in the file, the next successful write first ends
 * that line, so only the torn record is unreadable. */
int crilog_write(struct crilog *l, enum crilog_stream s, const uint8_t *data, size_t len, const struct timespec *now,
                 err_t *err);

/* Writes out what is buffered for `s` as a P record (nothing if empty); the
 * next record of that stream continues the line. For stream end and for a
 * timer, so a prompt without a newline still shows up. On error the buffered
 * bytes are dropped. */
int crilog_flush(struct crilog *l, enum crilog_stream s, const struct timespec *now, err_t *err);

/* The stream ended: what is buffered is written as an F record, as
 * containerd does for output that does not end in a newline. */
int crilog_end(struct crilog *l, enum crilog_stream s, const struct timespec *now, err_t *err);

/* Bytes written to the file since open/reopen (for stats and tests). */
uint64_t crilog_bytes(const struct crilog *l);

/* Flushes nothing: call crilog_flush first if wanted. NULL is fine. */
void crilog_close(struct crilog *l);

/* Formats `t` as kubelet writes and parses it, UTC with 9 fractional digits
 * (what containerd writes; Go's RFC3339Nano parser takes it). `buf` must hold
 * at least CRILOG_TIME_LEN + 1 bytes (40 is plenty); returns the length
 * (CRILOG_TIME_LEN), or 0 when `n` is too small. Times outside years
 * 0000..9999, which RFC 3339 cannot express, are clamped to its range. */
size_t crilog_format_time(const struct timespec *t, char *buf, size_t n);

struct crilog_record {
    struct timespec time;
    enum crilog_stream stream;
    bool partial;
    const char *content; /* points into the parsed line, not NUL-terminated */
    size_t content_len;
};

/* Parses one record, with or without its trailing newline. Strict: the time
 * is RFC 3339 (optional 1-9 fractional digits, `Z` or a ±hh:mm offset,
 * converted to UTC), the stream stdout or stderr, the tag F or P, optionally
 * followed by `:`-separated further tags (which kubelet ignores for forward
 * compatibility), then one space and the content, which may be empty and must
 * not contain a newline. Anything else is -EINVAL. */
int crilog_parse_line(const char *line, size_t len, struct crilog_record *out);
