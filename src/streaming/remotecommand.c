/* Exec and Attach sessions: Kubernetes' remotecommand protocol over SPDY
 * streams or WebSocket channels, joined to a process in a container (exec)
 * or to a running container's own stdio (attach).
 *
 * Data paths and their bounds:
 *  - process output -> client: read only while the client's output queue is
 *    under its high mark (conn.h); the kernel pipe holds the rest and the
 *    process blocks, as it would on a slow terminal. Attach cannot stop the
 *    container's output (it feeds the log): a client that falls too far
 *    behind loses output instead.
 *  - client -> process stdin: written without blocking; what the pipe does
 *    not take is parked (one chunk) and the client's connection is not read
 *    until the pipe drains.
 * The session ends with the process: the output is drained (or a short
 * grace period passes), the status goes on the error stream, every stream
 * is closed, and the connection after it. A client that goes away ends the
 * session at once and a still-running exec'd process is killed. */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <unistd.h>

#include "runtime/containers.h"
#include "runtime/process.h"
#include "streaming/internal.h"
#include "streaming/rc_status.h"
#include "streaming/spdy_session.h"
#include "streaming/ws_session.h"
#include "util/cleanup.h"
#include "util/log.h"

enum { CH_STDIN = 0, CH_STDOUT = 1, CH_STDERR = 2, CH_ERROR = 3, CH_RESIZE = 4, N_CH = 5 };
#define CH_CLOSE 255 /* v5: [255, channel] half-closes a channel */

#define READ_CHUNK       (32 * 1024)
#define EARLY_STDIN_MAX  (64 * 1024)
#define OUTPUT_DRAIN_MS  2000
#define RESIZE_BUF       1024
#define ATTACH_MAX_QUEUE (4 * CONN_HIGH_WATER)

static const char *const stream_types[N_CH] = {"stdin", "stdout", "stderr", "error", "resize"};

struct fdpoll {
    int fd;
    uv_poll_t poll;
    bool inited, active, eof;
    int events;
};

struct rc {
    struct session sess;
    struct streaming_server *srv;
    struct stream_request *req;
    enum transport t;
    int version;

    /* transport */
    struct spdy_session *spdy;
    struct spdy_stream *st[N_CH];
    int expected, received;
    struct ws_session *ws;
    struct conn *conn; /* while t_open */
    bool t_open;       /* the transport still calls us */
    uv_timer_t timer;  /* stream creation wait, then the output drain */
    bool timer_on;

    bool begun, done;

    /* the process (exec) */
    bool spawning;
    int child_fds[4]; /* the child's ends, ours to close once it runs */
    int n_child;
    struct process_watch *watch;
    bool exited;
    struct process_exit ex;

    /* our ends */
    struct fdpoll in, out, err;
    int tty_fd; /* for TIOCSWINSZ */
    uint8_t *pend;
    size_t pend_len, pend_off;
    bool stdin_closed;   /* the client sent EOF */
    bool stdin_eof_sent; /* and the process was told */
    bool in_dead;        /* the process will read no more */
    bool input_paused;
    char resize[RESIZE_BUF];
    size_t resize_len;

    /* attach */
    struct container_attach *attach;
    uint64_t dropped;

    int handles; /* uv handles open */
    bool lingering;
};

static void rc_end(struct rc *rc, enum rc_outcome outcome, int code, const char *msg);
static void rc_maybe_free(struct rc *rc);
static void start_output(struct rc *rc);

/* --- transport helpers ------------------------------------------------------ */

static bool t_congested(struct rc *rc)
{
    if (!rc->t_open)
        return false;
    return rc->t == TRANSPORT_SPDY ? spdy_congested(rc->spdy) : ws_congested(rc->ws);
}

static bool channel_open(struct rc *rc, int ch)
{
    if (!rc->t_open)
        return false;
    if (rc->t == TRANSPORT_SPDY)
        return rc->st[ch] && !rc->st[ch]->local_fin && !rc->st[ch]->reset;
    return true;
}

static void t_send(struct rc *rc, int ch, const void *p, size_t n)
{
    if (!channel_open(rc, ch))
        return;
    if (rc->t == TRANSPORT_SPDY)
        spdy_send(rc->spdy, rc->st[ch], p, n, false);
    else
        ws_send(rc->ws, ch, p, n);
}

/* EOF on a channel: SPDY has FIN; WebSocket v5 has the close signal, older
 * versions nothing (the connection's close says it). */
static void t_close_channel(struct rc *rc, int ch)
{
    if (!channel_open(rc, ch))
        return;
    if (rc->t == TRANSPORT_SPDY) {
        spdy_send(rc->spdy, rc->st[ch], NULL, 0, true);
    } else if (rc->version >= 5) {
        uint8_t sig = (uint8_t)ch;
        ws_send(rc->ws, CH_CLOSE, &sig, 1);
    }
}

static void t_pause(struct rc *rc)
{
    if (!rc->t_open || rc->input_paused)
        return;
    rc->input_paused = true;
    if (rc->t == TRANSPORT_SPDY)
        spdy_pause(rc->spdy);
    else
        ws_pause(rc->ws);
}

static void t_resume(struct rc *rc)
{
    if (!rc->t_open || !rc->input_paused)
        return;
    rc->input_paused = false;
    if (rc->t == TRANSPORT_SPDY)
        spdy_resume(rc->spdy);
    else
        ws_resume(rc->ws);
}

static void t_finish(struct rc *rc)
{
    if (!rc->t_open)
        return;
    rc->t_open = false;
    if (rc->t == TRANSPORT_SPDY)
        spdy_finish(rc->spdy);
    else
        ws_finish(rc->ws, 1000);
    rc->spdy = NULL;
    rc->ws = NULL;
    rc->conn = NULL;
}

/* --- handles and lifetime ------------------------------------------------------ */

static void handle_closed(uv_handle_t *h)
{
    struct rc *rc = h->data;
    rc->handles--;
    rc_maybe_free(rc);
}

static void fdpoll_close(struct rc *rc, struct fdpoll *f)
{
    if (f->inited) {
        f->inited = false;
        f->active = false;
        f->poll.data = rc;
        rc->handles++;
        uv_close((uv_handle_t *)&f->poll, handle_closed);
    }
    if (f->fd >= 0) {
        close(f->fd);
        f->fd = -1;
    }
}

static void fdpoll_set(struct rc *rc, struct fdpoll *f, int events, uv_poll_cb cb)
{
    if (f->fd < 0)
        return;
    if (!f->inited) {
        if (uv_poll_init(rc->srv->loop, &f->poll, f->fd) != 0)
            return;
        f->poll.data = rc;
        f->inited = true;
    }
    if (events == 0) {
        if (f->active)
            uv_poll_stop(&f->poll);
        f->active = false;
    } else if (!f->active || f->events != events) {
        uv_poll_start(&f->poll, events, cb);
        f->active = true;
    }
    f->events = events;
}

static bool process_running(const struct rc *rc)
{
    return rc->spawning || (rc->watch && !rc->exited);
}

static void rc_maybe_free(struct rc *rc)
{
    if (rc->t_open || process_running(rc) || rc->handles > 0 || rc->attach || !rc->done)
        return;
    if (rc->lingering) {
        rc->lingering = false;
        rc->srv->n_lingering--;
    }
    session_unregister(&rc->sess);
    stream_request_free(rc->req);
    free(rc->pend);
    free(rc);
}

static void kill_process(struct rc *rc)
{
    if (rc->watch && !rc->exited)
        process_signal(process_watch_pidfd(rc->watch), SIGKILL);
}

/* Everything the process side holds, except the watch (the exit must still
 * be reaped). */
static void release_io(struct rc *rc)
{
    fdpoll_close(rc, &rc->in);
    fdpoll_close(rc, &rc->out);
    fdpoll_close(rc, &rc->err);
    if (rc->tty_fd >= 0) {
        close(rc->tty_fd);
        rc->tty_fd = -1;
    }
    if (rc->timer_on) {
        rc->timer_on = false;
        rc->handles++;
        uv_close((uv_handle_t *)&rc->timer, handle_closed);
    }
    if (rc->attach) {
        containers_detach(rc->attach);
        rc->attach = NULL;
    }
}

/* The client is gone (or the server shuts down): stop everything now. */
static void rc_abort(struct rc *rc)
{
    rc->done = true;
    t_finish(rc);
    release_io(rc);
    if (process_running(rc)) {
        kill_process(rc);
        if (!rc->lingering) {
            rc->lingering = true;
            rc->srv->n_lingering++;
        }
    }
    rc_maybe_free(rc);
}

/* --- the end ------------------------------------------------------------------- */

static char *cmd_string(const struct stream_request *req)
{
    size_t n = 3;
    for (size_t i = 0; i < req->n_cmd; i++)
        n += strlen(req->cmd[i]) + 1;
    char *s = malloc(n);
    if (!s)
        return NULL;
    char *p = s;
    *p++ = '[';
    for (size_t i = 0; i < req->n_cmd; i++)
        p += sprintf(p, "%s%s", i ? " " : "", req->cmd[i]);
    *p++ = ']';
    *p = '\0';
    return s;
}

static void rc_end(struct rc *rc, enum rc_outcome outcome, int code, const char *msg)
{
    if (rc->done)
        return;
    rc->done = true;
    size_t len;
    _cleanup_free_ char *status = rc_status_encode(rc->version, outcome, code, msg, &len);
    t_close_channel(rc, CH_STDOUT);
    t_close_channel(rc, CH_STDERR);
    if (status && len)
        t_send(rc, CH_ERROR, status, len);
    t_close_channel(rc, CH_ERROR);
    t_finish(rc);
    release_io(rc);
    if (process_running(rc)) {
        kill_process(rc);
        rc->lingering = true;
        rc->srv->n_lingering++;
    }
    rc_maybe_free(rc);
}

static void complete(struct rc *rc)
{
    if (rc->done)
        return;
    const struct process_exit *e = &rc->ex;
    if (!e->known) {
        rc_end(rc, RC_INTERNAL, 0, "the command's exit status could not be read");
    } else if (e->code == 0) {
        rc_end(rc, RC_SUCCESS, 0, NULL);
    } else {
        _cleanup_free_ char *cmd = cmd_string(rc->req);
        char msg[512];
        snprintf(msg, sizeof(msg), "error executing command %s, exit code %d", cmd ? cmd : "", e->code);
        rc_end(rc, RC_EXIT_CODE, e->code, msg);
    }
}

static void on_drain_timeout(uv_timer_t *t)
{
    complete(t->data);
}

static void maybe_complete(struct rc *rc)
{
    if (!rc->exited || rc->done)
        return;
    if ((rc->out.fd < 0 || rc->out.eof) && (rc->err.fd < 0 || rc->err.eof)) {
        complete(rc);
        return;
    }
    /* A background child may hold the output open: wait a little, no more. */
    if (rc->timer_on)
        uv_timer_start(&rc->timer, on_drain_timeout, OUTPUT_DRAIN_MS, 0);
}

static void on_exit_cb(void *data, const struct process_exit *e)
{
    struct rc *rc = data;
    rc->exited = true;
    rc->ex = *e;
    if (rc->done) {
        rc_maybe_free(rc);
        return;
    }
    /* The pipe's reader is gone: nothing more goes to stdin. */
    rc->in_dead = true;
    free(rc->pend);
    rc->pend = NULL;
    rc->pend_len = rc->pend_off = 0;
    fdpoll_close(rc, &rc->in);
    t_resume(rc);
    maybe_complete(rc);
}

/* --- output --------------------------------------------------------------------- */

static void read_output(struct rc *rc, struct fdpoll *f, int ch)
{
    uint8_t buf[READ_CHUNK];
    for (int i = 0; i < 8 && !f->eof; i++) {
        if (t_congested(rc)) {
            fdpoll_set(rc, f, 0, NULL);
            return; /* on_drain starts it again */
        }
        ssize_t n = read(f->fd, buf, sizeof(buf));
        if (n > 0) {
            t_send(rc, ch, buf, (size_t)n);
            continue;
        }
        if (n < 0 && (errno == EAGAIN || errno == EINTR))
            return;
        /* EOF, or EIO from a terminal whose other side is all closed. */
        f->eof = true;
        fdpoll_set(rc, f, 0, NULL);
        maybe_complete(rc);
    }
}

static void on_out(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    struct rc *rc = h->data;
    read_output(rc, &rc->out, CH_STDOUT);
}

static void on_err(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    struct rc *rc = h->data;
    read_output(rc, &rc->err, CH_STDERR);
}

static void start_output(struct rc *rc)
{
    if (rc->done)
        return;
    if (!rc->out.eof)
        fdpoll_set(rc, &rc->out, UV_READABLE, on_out);
    if (!rc->err.eof)
        fdpoll_set(rc, &rc->err, UV_READABLE, on_err);
}

/* --- stdin ---------------------------------------------------------------------- */

static void close_stdin(struct rc *rc)
{
    if (rc->in.fd < 0 || rc->stdin_eof_sent)
        return;
    rc->stdin_eof_sent = true;
    if (rc->req->tty) {
        /* A terminal has no EOF of its own: ^D makes a reader in canonical
         * mode see one; the terminal stays for resizing. */
        static const char eot = 4;
        if (write(rc->in.fd, &eot, 1) < 0)
            log_debug("streaming: writing EOF to the terminal: %s", strerror(errno));
        return;
    }
    fdpoll_close(rc, &rc->in);
}

static void on_stdin_writable(uv_poll_t *h, int status, int events);

/* Writes what is parked; true when all of it went. */
static bool flush_stdin(struct rc *rc)
{
    while (rc->pend_off < rc->pend_len) {
        ssize_t n = write(rc->in.fd, rc->pend + rc->pend_off, rc->pend_len - rc->pend_off);
        if (n > 0) {
            rc->pend_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN) {
            fdpoll_set(rc, &rc->in, UV_WRITABLE, on_stdin_writable);
            return false;
        }
        /* EPIPE: the process closed its stdin; what it did not read is lost
         * for it anyway. */
        rc->in_dead = true;
        fdpoll_close(rc, &rc->in);
        break;
    }
    free(rc->pend);
    rc->pend = NULL;
    rc->pend_len = rc->pend_off = 0;
    if (rc->in.inited)
        fdpoll_set(rc, &rc->in, 0, NULL);
    return true;
}

/* Writes what is parked; once all of it went, the client's input flows
 * again (and a pending EOF is passed on). */
static void stdin_progress(struct rc *rc)
{
    if (rc->pend && !flush_stdin(rc)) {
        t_pause(rc);
        return;
    }
    if (rc->stdin_closed)
        close_stdin(rc);
    t_resume(rc);
}

static void on_stdin_writable(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    stdin_progress(h->data);
}

static int park(struct rc *rc, const uint8_t *p, size_t n)
{
    uint8_t *grown = realloc(rc->pend, rc->pend_len + n);
    if (!grown)
        return -1;
    memcpy(grown + rc->pend_len, p, n);
    rc->pend = grown;
    rc->pend_len += n;
    return 0;
}

static void stdin_data(struct rc *rc, const uint8_t *p, size_t n)
{
    if (!rc->req->in || rc->in_dead || rc->stdin_closed || rc->done)
        return;
    if (!rc->begun) {
        /* Data that came before the last stream did: keep a little. */
        if (rc->pend_len + n > EARLY_STDIN_MAX || park(rc, p, n) < 0)
            rc_end(rc, RC_INTERNAL, 0, "too much input before the session started");
        return;
    }
    if (rc->in.fd < 0)
        return;
    if (park(rc, p, n) < 0) {
        rc_end(rc, RC_INTERNAL, 0, "out of memory");
        return;
    }
    if (!flush_stdin(rc))
        t_pause(rc);
}

static void stdin_eof(struct rc *rc)
{
    if (rc->stdin_closed)
        return;
    rc->stdin_closed = true;
    if (rc->begun && !rc->pend)
        close_stdin(rc);
}

/* --- resize --------------------------------------------------------------------- */

static void apply_size(struct rc *rc, json_t *o)
{
    json_t *w = json_object_get(o, "Width"), *h = json_object_get(o, "Height");
    if (!json_is_integer(w) || !json_is_integer(h) || rc->tty_fd < 0)
        return;
    json_int_t wi = json_integer_value(w), hi = json_integer_value(h);
    if (wi < 0 || wi > 0xffff || hi < 0 || hi > 0xffff)
        return;
    struct winsize ws = {.ws_row = (unsigned short)hi, .ws_col = (unsigned short)wi};
    if (ioctl(rc->tty_fd, TIOCSWINSZ, &ws) < 0)
        log_debug("streaming: resizing the terminal: %s", strerror(errno));
}

/* Resize events are JSON objects ({"Width":80,"Height":24}), one after the
 * other (newline-separated from Go's encoder). */
static void resize_data(struct rc *rc, const uint8_t *p, size_t n)
{
    if (n > sizeof(rc->resize) - rc->resize_len) {
        rc->resize_len = 0; /* garbage: start over */
        if (n > sizeof(rc->resize))
            return;
    }
    memcpy(rc->resize + rc->resize_len, p, n);
    rc->resize_len += n;
    for (;;) {
        size_t off = 0;
        while (off < rc->resize_len && strchr(" \t\r\n", rc->resize[off]))
            off++;
        if (off == rc->resize_len) {
            rc->resize_len = 0;
            return;
        }
        json_error_t e;
        json_t *o = json_loadb(rc->resize + off, rc->resize_len - off, JSON_DISABLE_EOF_CHECK, &e);
        size_t used;
        if (o) {
            apply_size(rc, o);
            json_decref(o);
            used = off + (size_t)e.position;
        } else {
            char *nl = memchr(rc->resize + off, '\n', rc->resize_len - off);
            if (!nl)
                break;                            /* incomplete: wait for more */
            used = (size_t)(nl - rc->resize) + 1; /* a bad line: skip it */
        }
        memmove(rc->resize, rc->resize + used, rc->resize_len - used);
        rc->resize_len -= used;
    }
}

/* --- starting: exec ----------------------------------------------------------------- */

static void close_child_fds(struct rc *rc)
{
    for (int i = 0; i < rc->n_child; i++)
        close(rc->child_fds[i]);
    rc->n_child = 0;
}

static void exec_started(void *data, int pidfd, pid_t pid, const err_t *err)
{
    struct rc *rc = data;
    rc->spawning = false;
    close_child_fds(rc);
    if (err) {
        rc_end(rc, RC_INTERNAL, 0, err->msg ? err->msg : "exec failed");
        rc_maybe_free(rc);
        return;
    }
    err_t e = ERR_INIT;
    rc->watch = process_watch_start(rc->srv->loop, pidfd, pid, true, on_exit_cb, rc, &e);
    if (!rc->watch) {
        /* Unwatched, the child would never be reaped: kill it now. */
        log_error("streaming: watching exec'd process %d: %s", (int)pid, e.msg ? e.msg : "");
        err_clear(&e);
        rc_end(rc, RC_INTERNAL, 0, "could not watch the process");
        return;
    }
    if (rc->done) {
        /* The client left while the process was being started. */
        kill_process(rc);
        return;
    }
    start_output(rc);
    stdin_progress(rc);
}

static int nonblock(int fd)
{
    return fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
}

static int open_pty(int *master, int *slave)
{
    int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
    char name[64];
    if (m < 0)
        return -1;
    if (grantpt(m) < 0 || unlockpt(m) < 0 || ptsname_r(m, name, sizeof(name)) != 0) {
        close(m);
        return -1;
    }
    int s = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
    if (s < 0) {
        close(m);
        return -1;
    }
    *master = m;
    *slave = s;
    return 0;
}

static void begin_exec(struct rc *rc)
{
    const struct stream_request *req = rc->req;
    int stdio[3] = {-1, -1, -1};
    char why[256] = "";
    if (req->tty) {
        int m, s;
        if (open_pty(&m, &s) < 0) {
            snprintf(why, sizeof(why), "opening a pseudo-terminal: %s", strerror(errno));
            goto fail;
        }
        rc->child_fds[rc->n_child++] = s;
        stdio[0] = stdio[1] = stdio[2] = s;
        rc->out.fd = m;
        rc->in.fd = req->in ? fcntl(m, F_DUPFD_CLOEXEC, 3) : -1;
        rc->tty_fd = fcntl(m, F_DUPFD_CLOEXEC, 3);
        nonblock(m);
        if (rc->in.fd >= 0)
            nonblock(rc->in.fd);
    } else {
        int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
        if (devnull < 0) {
            snprintf(why, sizeof(why), "opening /dev/null: %s", strerror(errno));
            goto fail;
        }
        rc->child_fds[rc->n_child++] = devnull;
        stdio[0] = stdio[1] = stdio[2] = devnull;
        bool want[3] = {req->in, req->out, req->err};
        struct fdpoll *ours[3] = {&rc->in, &rc->out, &rc->err};
        for (int i = 0; i < 3; i++) {
            if (!want[i])
                continue;
            int p[2];
            if (pipe2(p, O_CLOEXEC) < 0) {
                snprintf(why, sizeof(why), "creating a pipe: %s", strerror(errno));
                goto fail;
            }
            int child = i == 0 ? p[0] : p[1], mine = i == 0 ? p[1] : p[0];
            rc->child_fds[rc->n_child++] = child;
            stdio[i] = child;
            ours[i]->fd = mine;
            nonblock(mine);
        }
    }
    rc->spawning = true;
    containers_exec_start(rc->srv->containers, req->id, req->cmd, req->n_cmd, stdio, req->tty, exec_started, rc);
    return;
fail:
    close_child_fds(rc);
    rc_end(rc, RC_INTERNAL, 0, why);
}

/* --- starting: attach ------------------------------------------------------------- */

static void attach_out(void *data, int stream, const uint8_t *buf, size_t len)
{
    struct rc *rc = data;
    int ch = stream == 1 ? CH_STDERR : CH_STDOUT;
    if (rc->done || !rc->t_open || (ch == CH_STDOUT && !rc->req->out) || (ch == CH_STDERR && !rc->req->err))
        return;
    /* The container cannot be made to wait for this client: past a bound,
     * its output is dropped for this client (the log still has it). */
    if (conn_queued(rc->conn) > ATTACH_MAX_QUEUE) {
        if (rc->dropped == 0)
            log_warn("streaming: attach client of %s is too slow; dropping output for it", rc->req->id);
        rc->dropped += len;
        return;
    }
    t_send(rc, ch, buf, len);
}

static void attach_end(void *data)
{
    struct rc *rc = data;
    rc->attach = NULL; /* ended by the container: not ours to detach */
    rc_end(rc, RC_SUCCESS, 0, NULL);
}

static void begin_attach(struct rc *rc)
{
    err_t e = ERR_INIT;
    int in_fd = -1;
    rc->attach = containers_attach(rc->srv->containers, rc->req->id, attach_out, attach_end, rc, &in_fd, &e);
    if (!rc->attach) {
        rc_end(rc, RC_INTERNAL, 0, e.msg ? e.msg : "attach failed");
        err_clear(&e);
        return;
    }
    if (in_fd >= 0) {
        nonblock(in_fd);
        if (rc->req->tty)
            rc->tty_fd = fcntl(in_fd, F_DUPFD_CLOEXEC, 3);
        if (rc->req->in)
            rc->in.fd = in_fd;
        else
            close(in_fd);
    }
    if (rc->in.fd >= 0)
        stdin_progress(rc);
}

static void begin(struct rc *rc)
{
    if (rc->begun || rc->done)
        return;
    rc->begun = true;
    if (rc->timer_on)
        uv_timer_stop(&rc->timer);
    /* WebSocket: an empty message on the first output channel tells the
     * client the session is up (kubelet does the same). */
    if (rc->t == TRANSPORT_WEBSOCKET)
        t_send(rc, rc->req->out ? CH_STDOUT : rc->req->err ? CH_STDERR : CH_ERROR, NULL, 0);
    if (rc->req->kind == STREAM_ATTACH)
        begin_attach(rc);
    else
        begin_exec(rc);
}

/* --- SPDY ---------------------------------------------------------------------- */

static int spdy_on_stream(void *data, struct spdy_stream *st)
{
    struct rc *rc = data;
    const char *type = spdy_headers_get(&st->headers, "streamtype");
    for (int ch = 0; type && ch < N_CH; ch++) {
        if (strcmp(type, stream_types[ch]) != 0 || rc->st[ch])
            continue;
        if ((ch == CH_RESIZE && (rc->version < 3 || !rc->req->tty)) || (ch == CH_STDIN && !rc->req->in) ||
            (ch == CH_STDOUT && !rc->req->out) || (ch == CH_STDERR && !rc->req->err))
            break; /* not part of this session: accepted, ignored */
        rc->st[ch] = st;
        st->app = rc;
        if (++rc->received == rc->expected)
            begin(rc);
        return 0;
    }
    /* Unknown or repeated: accepted and ignored, as kubelet does. */
    spdy_release(rc->spdy, st);
    return 0;
}

static int channel_of(struct rc *rc, struct spdy_stream *st)
{
    for (int ch = 0; ch < N_CH; ch++)
        if (rc->st[ch] == st)
            return ch;
    return -1;
}

static void spdy_on_data(void *data, struct spdy_stream *st, const uint8_t *p, size_t n)
{
    struct rc *rc = data;
    int ch = channel_of(rc, st);
    if (ch == CH_STDIN)
        stdin_data(rc, p, n);
    else if (ch == CH_RESIZE)
        resize_data(rc, p, n);
}

static void spdy_on_fin(void *data, struct spdy_stream *st)
{
    struct rc *rc = data;
    if (channel_of(rc, st) == CH_STDIN)
        stdin_eof(rc);
}

static void spdy_on_reset(void *data, struct spdy_stream *st)
{
    struct rc *rc = data;
    int ch = channel_of(rc, st);
    if (ch == CH_STDIN)
        stdin_eof(rc);
}

static void on_drain(void *data)
{
    struct rc *rc = data;
    if (rc->begun && !rc->done && rc->req->kind == STREAM_EXEC && !rc->spawning)
        start_output(rc);
}

static void on_gone(void *data)
{
    struct rc *rc = data;
    rc->t_open = false;
    rc->spdy = NULL;
    rc->ws = NULL;
    rc->conn = NULL;
    if (!rc->done)
        log_debug("streaming: %s session on %s ended by the client", rc->req->kind == STREAM_EXEC ? "exec" : "attach",
                  rc->req->id);
    rc_abort(rc);
}

static void on_timeout(void *data)
{
    struct rc *rc = data;
    log_info("streaming: %s session on %s idle for too long; closing it",
             rc->req->kind == STREAM_EXEC ? "exec" : "attach", rc->req->id);
    rc_abort(rc);
}

static const struct spdy_app spdy_app = {
    .on_stream = spdy_on_stream,
    .on_data = spdy_on_data,
    .on_fin = spdy_on_fin,
    .on_reset = spdy_on_reset,
    .on_drain = on_drain,
    .on_gone = on_gone,
    .on_timeout = on_timeout,
};

static void on_streams_timeout(uv_timer_t *t)
{
    struct rc *rc = t->data;
    if (rc->begun)
        return;
    log_warn("streaming: the client did not create its streams in time");
    rc_abort(rc);
}

/* --- WebSocket ------------------------------------------------------------------ */

static void ws_on_message(void *data, int ch, const uint8_t *p, size_t n)
{
    struct rc *rc = data;
    if (ch == CH_CLOSE && rc->version >= 5) {
        if (n == 1 && p[0] == CH_STDIN)
            stdin_eof(rc);
        return;
    }
    if (ch == CH_STDIN)
        stdin_data(rc, p, n);
    else if (ch == CH_RESIZE)
        resize_data(rc, p, n);
}

static const struct ws_app ws_app = {
    .on_message = ws_on_message,
    .on_drain = on_drain,
    .on_gone = on_gone,
    .on_timeout = on_timeout,
};

/* --- entry ---------------------------------------------------------------------- */

static void shutdown_cb(struct session *s)
{
    struct rc *rc = list_entry(s, struct rc, sess);
    rc_abort(rc);
}

void remotecommand_start(struct streaming_server *srv, struct conn *c, struct stream_request *req, enum transport t,
                         int version, bool base64)
{
    struct rc *rc = calloc(1, sizeof(*rc));
    if (!rc) {
        stream_request_free(req);
        conn_close(c);
        return;
    }
    rc->srv = srv;
    rc->req = req;
    rc->t = t;
    rc->version = version;
    rc->in.fd = rc->out.fd = rc->err.fd = rc->tty_fd = -1;
    list_init(&rc->sess.link);
    session_register(srv, &rc->sess, shutdown_cb);
    uv_timer_init(srv->loop, &rc->timer);
    rc->timer.data = rc;
    rc->timer_on = true;
    rc->t_open = true;
    rc->conn = c;
    if (t == TRANSPORT_SPDY) {
        rc->expected = 1 + req->in + req->out + req->err + (req->tty && version >= 3);
        rc->spdy = spdy_session_new(c, &spdy_app, rc, srv->idle_timeout_ms);
        if (!rc->spdy) {
            conn_close(c);
            rc->t_open = false;
            rc_abort(rc);
            return;
        }
        uv_timer_start(&rc->timer, on_streams_timeout, srv->stream_creation_timeout_ms, 0);
        spdy_session_start(rc->spdy);
    } else {
        rc->ws = ws_session_new(c, &ws_app, rc, srv->idle_timeout_ms, base64);
        if (!rc->ws) {
            conn_close(c);
            rc->t_open = false;
            rc_abort(rc);
            return;
        }
        begin(rc);
        if (rc->ws)
            ws_session_start(rc->ws);
    }
}
