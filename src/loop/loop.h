/* The one libuv loop. Everything that waits is a handle on it; blocking work
 * (fsync, unpacking, big copies) goes to libuv's thread pool through
 * loop_queue_work and comes back to the loop thread, so domain state is only
 * ever touched there and needs no locks. */
#pragma once

#include <uv.h>

uv_loop_t *loop_get(void);

/* Runs `work(data)` on a pool thread, then `done(data, status)` on the loop
 * thread; status is 0, or UV_ECANCELED if the work never ran. Returns 0 or a
 * negative errno (then neither callback runs). */
int loop_queue_work(void (*work)(void *data), void (*done)(void *data, int status), void *data);

/* Closes every handle still open and runs the loop until they are gone; used
 * once at exit so the sanitizers see a clean heap. Returns uv_loop_close's
 * result. */
int loop_close(void);
