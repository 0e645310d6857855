#include "runtime/logpump.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "runtime/crilog.h"
#include "util/cleanup.h"
#include "util/log.h"

#define READ_CHUNK     (64 * 1024)
#define READS_PER_WAKE 16 /* then yield to the rest of the loop */

struct stream {
    struct logpump *p;
    int fd;
    int which; /* CRILOG_STDOUT / CRILOG_STDERR */
    uv_poll_t poll;
    bool polling;
};

struct logpump {
    struct crilog *log;
    struct stream s[2];
    int n_streams;
    uint64_t dropped;
    bool warned;
    logpump_tap_fn tap;
    void *tap_data;
    int closing;
};

static uint8_t buf[READ_CHUNK];

static void consume(struct logpump *p, struct stream *st, const uint8_t *data, size_t len)
{
    if (p->tap)
        p->tap(p->tap_data, st->which, data, len);
    if (!p->log)
        return;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    err_t err = ERR_INIT;
    if (crilog_write(p->log, (enum crilog_stream)st->which, data, len, &now, &err) < 0) {
        p->dropped += len;
        if (!p->warned)
            log_warn("container log: %s; output is dropped until writing works again", err.msg);
        p->warned = true;
        err_clear(&err);
    } else {
        p->warned = false;
    }
}

/* Returns false once the stream is exhausted for now. */
static bool read_some(struct logpump *p, struct stream *st)
{
    ssize_t n = read(st->fd, buf, sizeof(buf));
    if (n > 0) {
        consume(p, st, buf, (size_t)n);
        return true;
    }
    return false;
}

static void on_readable(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    struct stream *st = h->data;
    for (int i = 0; i < READS_PER_WAKE && read_some(st->p, st); i++)
        ;
}

int logpump_open_fifo(const char *path, err_t *err)
{
    if (mkfifo(path, 0600) < 0 && errno != EEXIST)
        return err_sys(err, errno, "creating %s", path);
    int fd = open(path, O_RDWR | O_NONBLOCK | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return err_sys(err, errno, "opening %s", path);
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISFIFO(st.st_mode)) {
        close(fd);
        return err_set(err, ERR_FAILED_PRECONDITION, EINVAL, "%s is not a FIFO", path);
    }
    /* As much buffer as an unprivileged pipe may have: what a container can
     * write while edgecri restarts before it blocks. */
    int max = 1 << 20;
    FILE *f = fopen("/proc/sys/fs/pipe-max-size", "re");
    if (f) {
        if (fscanf(f, "%d", &max) != 1)
            max = 1 << 20;
        fclose(f);
    }
    fcntl(fd, F_SETPIPE_SZ, max);
    return fd;
}

int logpump_start(uv_loop_t *loop, const char *log_path, int out_fd, int err_fd, struct logpump **out, err_t *err)
{
    struct logpump *p = calloc(1, sizeof(*p));
    if (!p) {
        close(out_fd);
        if (err_fd >= 0)
            close(err_fd);
        return err_sys(err, ENOMEM, "starting the log");
    }
    int fds[2] = {out_fd, err_fd};
    for (int i = 0; i < 2; i++) {
        if (fds[i] < 0)
            continue;
        struct stream *st = &p->s[p->n_streams++];
        st->p = p;
        st->fd = fds[i];
        st->which = i;
        fcntl(st->fd, F_SETFL, fcntl(st->fd, F_GETFL) | O_NONBLOCK);
        if (uv_poll_init(loop, &st->poll, st->fd) == 0) {
            st->poll.data = st;
            st->polling = true;
            uv_poll_start(&st->poll, UV_READABLE, on_readable);
        }
    }
    if (log_path && *log_path) {
        err_t e = ERR_INIT;
        if (crilog_open(log_path, &p->log, &e) < 0) {
            /* The container runs anyway; kubelet sees no logs and we say why. */
            log_warn("container log %s: %s", log_path, e.msg);
            err_clear(&e);
        }
    }
    *out = p;
    return 0;
}

int logpump_reopen(struct logpump *p, err_t *err)
{
    if (!p->log)
        return err_set(err, ERR_FAILED_PRECONDITION, EBADF, "the container has no log file");
    return crilog_reopen(p->log, err);
}

void logpump_set_tap(struct logpump *p, logpump_tap_fn fn, void *data)
{
    p->tap = fn;
    p->tap_data = data;
}

uint64_t logpump_dropped(const struct logpump *p)
{
    return p->dropped;
}

static void on_closed(uv_handle_t *h)
{
    struct stream *st = h->data;
    struct logpump *p = st->p;
    close(st->fd);
    if (--p->closing == 0)
        free(p);
}

void logpump_finish(struct logpump *p)
{
    if (!p)
        return;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    for (int i = 0; i < p->n_streams; i++) {
        struct stream *st = &p->s[i];
        /* Bounded: a writer that still lives (a leftover child) cannot keep
         * us here. */
        for (int k = 0; k < 1024 && read_some(p, st); k++)
            ;
        if (p->log)
            crilog_end(p->log, (enum crilog_stream)st->which, &now, NULL);
    }
    crilog_close(p->log);
    p->log = NULL;
    p->tap = NULL;
    p->closing = p->n_streams;
    for (int i = 0; i < p->n_streams; i++) {
        struct stream *st = &p->s[i];
        if (st->polling) {
            uv_poll_stop(&st->poll);
            uv_close((uv_handle_t *)&st->poll, on_closed);
        } else {
            close(st->fd);
            p->closing--;
        }
    }
    if (p->closing == 0)
        free(p);
}
