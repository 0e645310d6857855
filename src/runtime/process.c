#include "runtime/process.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util/cleanup.h"

#ifndef P_PIDFD
#define P_PIDFD 3
#endif

/* The v0 layout of struct pidfd_info (64 bytes); exit_code took the spare
 * slot in 6.15. Declared here: Debian 12's kernel headers predate it. */
struct pidfd_info_v0 {
    uint64_t mask;
    uint64_t cgroupid;
    uint32_t pid, tgid, ppid, ruid, rgid, euid, egid, suid, sgid, fsuid, fsgid;
    int32_t exit_code;
};
#define PIDFD_GET_INFO_V0 _IOWR(0xFF, 11, struct pidfd_info_v0)
#define PIDFD_INFO_EXIT   (1UL << 3)
#define RETRY_MS          10
#define RETRIES           100

struct process_watch {
    uv_poll_t poll;
    uv_timer_t retry;
    int pidfd;
    pid_t pid;
    uint64_t start_time;
    bool is_child;
    int tries;
    process_exit_fn fn;
    void *data;
    int closing;
};

static void decode_status(int status, struct process_exit *e)
{
    e->known = true;
    if (WIFEXITED(status)) {
        e->code = WEXITSTATUS(status);
    } else if (WIFSIGNALED(status)) {
        e->signal = WTERMSIG(status);
        e->code = 128 + e->signal;
        e->core = WCOREDUMP(status);
    }
}

static void on_closed(uv_handle_t *h)
{
    struct process_watch *w = h->data;
    if (--w->closing == 0) {
        if (w->pidfd >= 0)
            close(w->pidfd);
        free(w);
    }
}

void process_watch_stop(struct process_watch *w)
{
    if (!w || w->closing)
        return;
    w->closing = 2;
    w->fn = NULL;
    uv_close((uv_handle_t *)&w->poll, on_closed);
    uv_close((uv_handle_t *)&w->retry, on_closed);
}

static void deliver(struct process_watch *w, const struct process_exit *e)
{
    process_exit_fn fn = w->fn;
    void *data = w->data;
    process_watch_stop(w);
    if (fn)
        fn(data, e);
}

/* Fields of /proc/<pid>/stat after the command name: 3 is the state. */
static bool stat_fields(pid_t pid, char *buf, size_t n, char **after_comm)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return false;
    ssize_t len = read(fd, buf, n - 1);
    if (len <= 0)
        return false;
    buf[len] = '\0';
    char *p = strrchr(buf, ')');
    if (!p)
        return false;
    *after_comm = p + 2; /* field 3 */
    return true;
}

static char *field(char *p, int from, int want)
{
    for (int f = from; f < want && p; f++) {
        p = strchr(p, ' ');
        if (p)
            p++;
    }
    return p;
}

/* A zombie nobody has reaped yet still shows its wait status. */
static bool zombie_status(const struct process_watch *w, int *status)
{
    char buf[2048], *p;
    if (!stat_fields(w->pid, buf, sizeof(buf), &p) || p[0] != 'Z')
        return false;
    char *st = field(p, 3, 22);
    if (!st || strtoull(st, NULL, 10) != w->start_time)
        return false; /* a different process by now */
    char *ec = field(p, 3, 52);
    if (!ec)
        return false;
    *status = (int)strtol(ec, NULL, 10);
    return true;
}

/* Returns true when the status was settled (known or given up). */
static bool try_collect(struct process_watch *w)
{
    struct process_exit e = {0};
    if (w->is_child) {
        siginfo_t si = {0};
        if (waitid(P_PIDFD, (id_t)w->pidfd, &si, WEXITED | WNOHANG) == 0 && si.si_pid != 0) {
            e.known = true;
            if (si.si_code == CLD_EXITED) {
                e.code = si.si_status;
            } else {
                e.signal = si.si_status;
                e.code = 128 + si.si_status;
                e.core = si.si_code == CLD_DUMPED;
            }
            deliver(w, &e);
            return true;
        }
        if (errno != ECHILD)
            return false;
        /* Someone else reaped it: fall through to the pidfd's record. */
    }
    int status;
    if (w->start_time && zombie_status(w, &status)) {
        decode_status(status, &e);
        deliver(w, &e);
        return true;
    }
    struct pidfd_info_v0 info = {.mask = PIDFD_INFO_EXIT};
    if (ioctl(w->pidfd, PIDFD_GET_INFO_V0, &info) == 0 && (info.mask & PIDFD_INFO_EXIT)) {
        decode_status(info.exit_code, &e);
        deliver(w, &e);
        return true;
    }
    /* The status appears once the process is reaped by its parent; give
     * that a moment, then report it as unknown. */
    if (errno == ENOTTY || errno == EINVAL || ++w->tries > RETRIES) {
        deliver(w, &e);
        return true;
    }
    return false;
}

static void on_retry(uv_timer_t *t)
{
    struct process_watch *w = t->data;
    if (!try_collect(w))
        uv_timer_start(&w->retry, on_retry, RETRY_MS, 0);
}

static void on_exit_ready(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    struct process_watch *w = h->data;
    uv_poll_stop(&w->poll);
    if (!try_collect(w))
        uv_timer_start(&w->retry, on_retry, RETRY_MS, 0);
}

struct process_watch *process_watch_start(uv_loop_t *loop, int pidfd, pid_t pid, bool is_child, process_exit_fn fn,
                                          void *data, err_t *err)
{
    struct process_watch *w = calloc(1, sizeof(*w));
    if (!w) {
        close(pidfd);
        err_sys(err, ENOMEM, "watching a process");
        return NULL;
    }
    w->pidfd = pidfd;
    w->pid = pid;
    w->start_time = is_child ? 0 : process_start_time(pid);
    w->is_child = is_child;
    w->fn = fn;
    w->data = data;
    int r = uv_poll_init(loop, &w->poll, pidfd);
    if (r < 0) {
        close(pidfd);
        free(w);
        err_sys(err, -r, "watching a process");
        return NULL;
    }
    uv_timer_init(loop, &w->retry);
    w->poll.data = w->retry.data = w;
    uv_poll_start(&w->poll, UV_READABLE, on_exit_ready);
    return w;
}

int process_watch_pidfd(const struct process_watch *w)
{
    return w->pidfd;
}

uint64_t process_start_time(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    _cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, buf, sizeof(buf) - 1);
    if (n <= 0)
        return 0;
    buf[n] = '\0';
    /* The command name may hold spaces and parentheses: count fields after
     * the last ')'. starttime is field 22; after ')' comes field 3. */
    char *p = strrchr(buf, ')');
    if (!p)
        return 0;
    p++;
    for (int field = 3; field < 22 && p; field++) {
        p = strchr(p + 1, ' ');
    }
    return p ? strtoull(p + 1, NULL, 10) : 0;
}

int process_adopt(pid_t pid, uint64_t start_time, int *pidfd, err_t *err)
{
    int fd = (int)syscall(SYS_pidfd_open, pid, 0);
    if (fd < 0)
        return err_sys(err, errno, "opening process %d", (int)pid);
    /* Read after opening: if the start time still matches, the pidfd is
     * the process we recorded, not a newcomer with its pid. */
    if (start_time == 0 || process_start_time(pid) != start_time) {
        close(fd);
        return err_set(err, ERR_NOT_FOUND, ESRCH, "process %d is gone (its pid was reused)", (int)pid);
    }
    *pidfd = fd;
    return 0;
}

int process_signal(int pidfd, int sig)
{
    if (syscall(SYS_pidfd_send_signal, pidfd, sig, NULL, 0) < 0)
        return -errno;
    return 0;
}

bool process_exit_info_supported(void)
{
    static int cached = -1;
    if (cached >= 0)
        return cached;
    struct pidfd_info_v0 info = {.mask = PIDFD_INFO_EXIT};
    int fd = (int)syscall(SYS_pidfd_open, getpid(), 0);
    /* A live process has no exit info, but a kernel that knows the flag
     * answers without ENOTTY/EINVAL. */
    int r = fd >= 0 ? ioctl(fd, PIDFD_GET_INFO_V0, &info) : -1;
    cached = fd >= 0 && (r == 0 || errno == ESRCH);
    if (fd >= 0)
        close(fd);
    return cached;
}
