/* Moving a container's output from its stdio FIFOs (or its pty) into the
 * CRI log file, on the loop.
 *
 * The FIFOs live under the state directory and the container holds its ends
 * opened read-write, so a writer always has a reader: when edgecri is gone
 * (restarting, killed) the container never gets SIGPIPE; its writes fill the
 * pipe buffer (raised to the system's pipe-max-size, 1 MiB by default) and
 * then block until edgecri is back and reopens the FIFOs by path. We never
 * stop reading, whatever happens to the log file, so a full disk never
 * blocks the container either (the bytes are dropped and counted). */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "util/error.h"

struct logpump;

/* Attach taps (issue 6): called with every chunk read, before logging. */
typedef void (*logpump_tap_fn)(void *data, int stream, const uint8_t *buf, size_t len);

/* Reads out_fd (and err_fd, -1 for a TTY where both are one stream) into
 * the CRI log at log_path (NULL or "": read and drop). Takes the fds. */
int logpump_start(uv_loop_t *loop, const char *log_path, int out_fd, int err_fd, struct logpump **out, err_t *err);
int logpump_reopen(struct logpump *p, err_t *err);
void logpump_set_tap(struct logpump *p, logpump_tap_fn fn, void *data);
/* Reads what is left, writes partial lines out, closes. */
void logpump_finish(struct logpump *p);
uint64_t logpump_dropped(const struct logpump *p);

/* FIFO helpers: create (mode 0600) if missing and open O_RDWR|O_NONBLOCK
 * with the pipe raised to pipe-max-size. */
int logpump_open_fifo(const char *path, err_t *err);
