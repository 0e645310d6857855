/* Watching a process through its pidfd on the loop, and learning how it
 * ended.
 *
 * Our own children are reaped with waitid(P_PIDFD). A process adopted after
 * an edgecri restart is not our child (it was reparented to init or a
 * subreaper, which reaps it). Its status comes from, in order:
 * - /proc/<pid>/stat field 52 (exit_code, Linux 3.5+) while it is a zombie
 *   its parent has not reaped yet (checked against its start time);
 * - PIDFD_GET_INFO with PIDFD_INFO_EXIT (Linux 6.15+), which keeps the
 *   status on the pidfd after someone else reaped the process.
 * When neither is there (an older kernel and a prompt reaper), the exit
 * code is unknown and reported as such. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <uv.h>

#include "util/error.h"

struct process_exit {
    bool known; /* false: the kernel could not tell (adopted, old kernel) */
    int code;   /* exit code, or 128 + signal as shells report it */
    int signal; /* the signal that ended it, 0 if it exited */
    bool core;  /* dumped core */
};

struct process_watch;
typedef void (*process_exit_fn)(void *data, const struct process_exit *e);

/* Watches `pidfd` of `pid` (taken over: closed when the watch ends). */
struct process_watch *process_watch_start(uv_loop_t *loop, int pidfd, pid_t pid, bool is_child, process_exit_fn fn,
                                          void *data, err_t *err);
/* Stops watching; no callback afterwards. The pidfd is closed. */
void process_watch_stop(struct process_watch *w);
int process_watch_pidfd(const struct process_watch *w);

/* Start time of a process in clock ticks since boot (field 22 of
 * /proc/<pid>/stat), to recognize it again after a restart; 0 on error. */
uint64_t process_start_time(pid_t pid);

/* pidfd_open of `pid`, accepted only if it is still the process that
 * started at `start_time` (a recycled pid is refused with ESRCH). */
int process_adopt(pid_t pid, uint64_t start_time, int *pidfd, err_t *err);

int process_signal(int pidfd, int sig);

/* Whether this kernel keeps exit statuses on pidfds (PIDFD_INFO_EXIT). */
bool process_exit_info_supported(void);
