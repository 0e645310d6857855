/* PortForward sessions: TCP connections into a pod's network namespace on
 * its loopback, carried over SPDY (a data and an error stream per
 * connection, paired by their requestID header) or WebSocket (a data and an
 * error channel per port, each port's number first in both).
 *
 * The socket is created inside the pod's network namespace (a socket stays
 * in the namespace it was made in), so the loop thread enters the namespace
 * for the socket() call only. Only 127.0.0.1 is ever dialled.
 *
 * Both directions run until either side closes: the client's FIN shuts our
 * write side down, the target's EOF sends a FIN; the pair is torn down when
 * both happened, or a second after the target's EOF (as containerd does). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "runtime/pods.h"
#include "streaming/internal.h"
#include "streaming/spdy_session.h"
#include "streaming/ws_session.h"
#include "util/cleanup.h"
#include "util/log.h"

#define TARGET_HIGH_WATER (256 * 1024)
#define EARLY_DATA_MAX    (64 * 1024)
#define HALF_CLOSE_GRACE  1000
#define MAX_WS_PORTS      64

struct pf;

struct pair {
    struct list_node link;
    struct pf *pf;
    char request_id[64];
    uint16_t port;
    struct spdy_stream *data, *error; /* SPDY */
    int index;                        /* WebSocket: channels 2*index and 2*index+1 */
    uv_timer_t timer;                 /* stream creation wait, then the half-close grace */
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_shutdown_t sreq;
    bool tcp_open, connected, reading;
    size_t target_queued; /* written to the target, not yet taken by the kernel */
    bool pausing;         /* this pair holds the client's input paused */
    uint8_t *early;       /* client data before the connection was up */
    size_t early_len;
    bool client_fin, target_eof, closed;
    int handles;
};

struct pf {
    struct session sess;
    struct streaming_server *srv;
    struct stream_request *req;
    enum transport t;
    struct spdy_session *spdy;
    struct ws_session *ws;
    struct conn *conn;
    bool t_open, done;
    char *netns; /* NULL: the host's network */
    struct list_node pairs;
    size_t n_pairs;
    int pausing; /* pairs whose target is full */
    int closing; /* pairs whose handles are not closed yet */
    bool output_paused;
};

static void pair_close(struct pair *p);
static void pf_maybe_free(struct pf *pf);

/* --- transport ------------------------------------------------------------ */

static void pause_input(struct pf *pf, struct pair *p)
{
    if (p->pausing)
        return;
    p->pausing = true;
    if (pf->pausing++ == 0 && pf->t_open) {
        if (pf->t == TRANSPORT_SPDY)
            spdy_pause(pf->spdy);
        else
            ws_pause(pf->ws);
    }
}

static void resume_input(struct pf *pf, struct pair *p)
{
    if (!p->pausing)
        return;
    p->pausing = false;
    if (--pf->pausing == 0 && pf->t_open) {
        if (pf->t == TRANSPORT_SPDY)
            spdy_resume(pf->spdy);
        else
            ws_resume(pf->ws);
    }
}

static bool congested(struct pf *pf)
{
    return pf->t_open && conn_congested(pf->conn);
}

static void send_data(struct pair *p, const void *buf, size_t n, bool fin)
{
    struct pf *pf = p->pf;
    if (!pf->t_open)
        return;
    if (pf->t == TRANSPORT_SPDY) {
        if (p->data && !p->data->local_fin && !p->data->reset)
            spdy_send(pf->spdy, p->data, buf, n, fin);
    } else if (n) {
        ws_send(pf->ws, 2 * p->index, buf, n);
    }
}

static void send_error(struct pair *p, const char *msg)
{
    struct pf *pf = p->pf;
    if (!pf->t_open)
        return;
    if (pf->t == TRANSPORT_SPDY) {
        if (p->error && !p->error->local_fin && !p->error->reset)
            spdy_send(pf->spdy, p->error, msg, strlen(msg), false);
    } else {
        ws_send(pf->ws, 2 * p->index + 1, msg, strlen(msg));
    }
}

/* --- the target connection --------------------------------------------------- */

static uint8_t read_buf[64 * 1024];

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)h;
    (void)suggested;
    buf->base = (char *)read_buf;
    buf->len = sizeof(read_buf);
}

static void pair_handle_closed(uv_handle_t *h)
{
    struct pair *p = h->data;
    if (--p->handles > 0)
        return;
    struct pf *pf = p->pf;
    free(p->early);
    free(p);
    pf->closing--;
    pf_maybe_free(pf);
}

static void on_grace(uv_timer_t *t)
{
    pair_close(t->data);
}

static void maybe_done(struct pair *p)
{
    if (p->closed)
        return;
    if (p->client_fin && p->target_eof) {
        pair_close(p);
        return;
    }
    /* The target is done: the client gets a moment to finish too. A client
     * that is done sending still gets the whole answer (half-close). */
    if (p->target_eof)
        uv_timer_start(&p->timer, on_grace, HALF_CLOSE_GRACE, 0);
}

static void on_target_read(uv_stream_t *s, ssize_t n, const uv_buf_t *buf)
{
    struct pair *p = s->data;
    if (n > 0) {
        send_data(p, buf->base, (size_t)n, false);
        if (congested(p->pf) && p->reading) {
            uv_read_stop(s);
            p->reading = false;
            p->pf->output_paused = true;
        }
        return;
    }
    if (n == 0)
        return;
    uv_read_stop(s);
    p->reading = false;
    p->target_eof = true;
    if (n != UV_EOF)
        log_debug("streaming: port-forward to port %u: %s", p->port, uv_strerror((int)n));
    send_data(p, NULL, 0, true);
    maybe_done(p);
}

static void start_reading(struct pair *p)
{
    if (p->connected && !p->reading && !p->target_eof && !p->closed) {
        p->reading = true;
        uv_read_start((uv_stream_t *)&p->tcp, alloc_cb, on_target_read);
    }
}

struct wreq {
    uv_write_t req;
    struct pair *p;
    size_t len;
    uint8_t data[];
};

static void on_written(uv_write_t *req, int status)
{
    struct wreq *w = (struct wreq *)req;
    struct pair *p = w->p;
    p->target_queued -= w->len;
    free(w);
    if (status < 0 || p->closed)
        return;
    if (p->target_queued < TARGET_HIGH_WATER / 4)
        resume_input(p->pf, p);
}

static void write_target(struct pair *p, const uint8_t *buf, size_t n)
{
    struct wreq *w = malloc(sizeof(*w) + n);
    if (!w) {
        pair_close(p);
        return;
    }
    w->p = p;
    w->len = n;
    memcpy(w->data, buf, n);
    uv_buf_t b = uv_buf_init((char *)w->data, (unsigned)n);
    if (uv_write(&w->req, (uv_stream_t *)&p->tcp, &b, 1, on_written) != 0) {
        free(w);
        pair_close(p);
        return;
    }
    p->target_queued += n;
    if (p->target_queued >= TARGET_HIGH_WATER)
        pause_input(p->pf, p);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)req;
    (void)status;
}

static void client_data(struct pair *p, const uint8_t *buf, size_t n)
{
    if (p->closed || p->client_fin || n == 0)
        return;
    if (!p->connected) {
        if (p->early_len + n > EARLY_DATA_MAX) {
            pair_close(p);
            return;
        }
        uint8_t *g = realloc(p->early, p->early_len + n);
        if (!g) {
            pair_close(p);
            return;
        }
        memcpy(g + p->early_len, buf, n);
        p->early = g;
        p->early_len += n;
        return;
    }
    write_target(p, buf, n);
}

static void client_fin(struct pair *p)
{
    if (p->client_fin || p->closed)
        return;
    p->client_fin = true;
    /* libuv shuts down after the writes already queued. */
    if (p->connected)
        uv_shutdown(&p->sreq, (uv_stream_t *)&p->tcp, on_shutdown);
    maybe_done(p);
}

static void on_connect(uv_connect_t *req, int status)
{
    struct pair *p = req->data;
    if (p->closed)
        return;
    if (status < 0) {
        char msg[512];
        snprintf(msg, sizeof(msg),
                 "error forwarding port %u to pod %s, uid : failed to connect to localhost:%u inside "
                 "namespace %s: %s",
                 p->port, p->pf->req->id, p->port, p->pf->netns ? p->pf->netns : "(host)", uv_strerror(status));
        send_error(p, msg);
        pair_close(p);
        return;
    }
    p->connected = true;
    if (p->early) {
        write_target(p, p->early, p->early_len);
        free(p->early);
        p->early = NULL;
        p->early_len = 0;
    }
    if (p->client_fin)
        uv_shutdown(&p->sreq, (uv_stream_t *)&p->tcp, on_shutdown);
    if (!p->pf->output_paused)
        start_reading(p);
}

/* socket() inside the pod's network namespace. The thread comes back to
 * its own namespace before anything else runs; if it could not, the loop
 * thread would serve everything from the pod's network: that must not go
 * on. */
static int socket_in(const char *netns, err_t *err)
{
    if (!netns) {
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        return fd < 0 ? err_sys(err, errno, "creating a socket") : fd;
    }
    _cleanup_close_ int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    _cleanup_close_ int target = open(netns, O_RDONLY | O_CLOEXEC);
    if (self < 0 || target < 0)
        return err_sys(err, errno, "opening the network namespace %s", netns);
    if (setns(target, CLONE_NEWNET) < 0)
        return err_sys(err, errno, "entering the network namespace %s", netns);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int saved = errno;
    if (setns(self, CLONE_NEWNET) < 0) {
        log_error("streaming: cannot return to edgecri's network namespace: %s", strerror(errno));
        abort();
    }
    return fd < 0 ? err_sys(err, saved, "creating a socket in %s", netns) : fd;
}

static void pair_connect(struct pair *p)
{
    err_t e = ERR_INIT;
    int fd = socket_in(p->pf->netns, &e);
    if (fd < 0 || uv_tcp_init(p->pf->srv->loop, &p->tcp) != 0) {
        char msg[512];
        snprintf(msg, sizeof(msg), "error forwarding port %u to pod %s, uid : %s", p->port, p->pf->req->id,
                 e.msg ? e.msg : "out of memory");
        err_clear(&e);
        if (fd >= 0)
            close(fd);
        send_error(p, msg);
        pair_close(p);
        return;
    }
    p->tcp.data = p;
    p->tcp_open = true;
    p->handles++;
    struct sockaddr_in sa;
    uv_ip4_addr("127.0.0.1", p->port, &sa);
    p->creq.data = p;
    int r = uv_tcp_open(&p->tcp, fd);
    if (r == 0)
        r = uv_tcp_connect(&p->creq, &p->tcp, (struct sockaddr *)&sa, on_connect);
    if (r != 0) {
        if (!uv_is_active((uv_handle_t *)&p->tcp))
            close(fd);
        p->creq.data = p;
        on_connect(&p->creq, r);
    }
}

/* --- pairs ------------------------------------------------------------------- */

static struct pair *pair_new(struct pf *pf)
{
    struct pair *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->pf = pf;
    uv_timer_init(pf->srv->loop, &p->timer);
    p->timer.data = p;
    p->handles = 1;
    list_add_tail(&pf->pairs, &p->link);
    pf->n_pairs++;
    return p;
}

static void pair_close(struct pair *p)
{
    if (p->closed)
        return;
    p->closed = true;
    struct pf *pf = p->pf;
    resume_input(pf, p);
    if (pf->t_open && pf->t == TRANSPORT_SPDY) {
        /* Closing the error stream tells kubectl the connection is over. */
        if (p->data) {
            if (!p->data->local_fin && !p->data->reset)
                spdy_send(pf->spdy, p->data, NULL, 0, true);
            spdy_release(pf->spdy, p->data);
        }
        if (p->error) {
            if (!p->error->local_fin && !p->error->reset)
                spdy_send(pf->spdy, p->error, NULL, 0, true);
            spdy_release(pf->spdy, p->error);
        }
    }
    p->data = p->error = NULL;
    list_del(&p->link);
    pf->n_pairs--;
    pf->closing++;
    uv_close((uv_handle_t *)&p->timer, pair_handle_closed);
    if (p->tcp_open)
        uv_close((uv_handle_t *)&p->tcp, pair_handle_closed);
    /* A WebSocket session ends with its last port. */
    if (pf->t == TRANSPORT_WEBSOCKET && pf->n_pairs == 0 && pf->t_open && !pf->done) {
        pf->done = true;
        pf->t_open = false;
        ws_finish(pf->ws, 1000);
        pf->ws = NULL;
    }
}

/* --- session ----------------------------------------------------------------- */

static void pf_maybe_free(struct pf *pf)
{
    /* Pairs still closing refer to pf from their handles' callbacks. */
    if (pf->t_open || !list_empty(&pf->pairs) || pf->closing || !pf->done)
        return;
    session_unregister(&pf->sess);
    stream_request_free(pf->req);
    free(pf->netns);
    free(pf);
}

static void pf_end(struct pf *pf)
{
    pf->done = true;
    while (!list_empty(&pf->pairs))
        pair_close(list_entry(pf->pairs.next, struct pair, link));
    if (pf->t_open) {
        pf->t_open = false;
        if (pf->t == TRANSPORT_SPDY)
            spdy_finish(pf->spdy);
        else
            ws_finish(pf->ws, 1000);
        pf->spdy = NULL;
        pf->ws = NULL;
    }
}

static struct pair *find_pair(struct pf *pf, const char *request_id)
{
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &pf->pairs)
    {
        struct pair *p = list_entry(pos, struct pair, link);
        if (strcmp(p->request_id, request_id) == 0)
            return p;
    }
    return NULL;
}

static void on_pair_timeout(uv_timer_t *t)
{
    struct pair *p = t->data;
    char msg[256];
    snprintf(msg, sizeof(msg), "timed out waiting for streams of request %s", p->request_id);
    send_error(p, msg);
    pair_close(p);
}

static int spdy_on_stream(void *data, struct spdy_stream *st)
{
    struct pf *pf = data;
    const char *port_s = spdy_headers_get(&st->headers, "port");
    const char *type = spdy_headers_get(&st->headers, "streamtype");
    const char *rid = spdy_headers_get(&st->headers, "requestid");
    char *end;
    unsigned long port = port_s ? strtoul(port_s, &end, 10) : 0;
    if (!port_s || *end || !*port_s || port < 1 || port > 65535 || !type ||
        (strcmp(type, "data") != 0 && strcmp(type, "error") != 0))
        return -1;
    bool is_data = strcmp(type, "data") == 0;
    char id[64];
    if (rid && *rid && strlen(rid) < sizeof(id))
        snprintf(id, sizeof(id), "%s", rid);
    else /* old clients without requestID: consecutive stream ids */
        snprintf(id, sizeof(id), "%u", is_data ? st->id - 2 : st->id);
    struct pair *p = find_pair(pf, id);
    if (!p) {
        if (!(p = pair_new(pf)))
            return -1;
        snprintf(p->request_id, sizeof(p->request_id), "%s", id);
        p->port = (uint16_t)port;
        uv_timer_start(&p->timer, on_pair_timeout, pf->srv->stream_creation_timeout_ms, 0);
    }
    if ((is_data && p->data) || (!is_data && p->error))
        return -1;
    st->app = p;
    if (is_data)
        p->data = st;
    else
        p->error = st;
    if (p->data && p->error) {
        uv_timer_stop(&p->timer);
        pair_connect(p);
    }
    return 0;
}

static void spdy_on_data(void *data, struct spdy_stream *st, const uint8_t *b, size_t n)
{
    (void)data;
    struct pair *p = st->app;
    if (p && st == p->data)
        client_data(p, b, n);
}

static void spdy_on_fin(void *data, struct spdy_stream *st)
{
    (void)data;
    struct pair *p = st->app;
    if (p && st == p->data)
        client_fin(p);
}

static void spdy_on_reset(void *data, struct spdy_stream *st)
{
    (void)data;
    struct pair *p = st->app;
    if (p && !p->closed)
        pair_close(p);
}

static void on_drain(void *data)
{
    struct pf *pf = data;
    if (!pf->output_paused)
        return;
    pf->output_paused = false;
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &pf->pairs) start_reading(list_entry(pos, struct pair, link));
}

static void on_gone(void *data)
{
    struct pf *pf = data;
    pf->t_open = false;
    pf->spdy = NULL;
    pf->ws = NULL;
    pf_end(pf);
    pf_maybe_free(pf);
}

static void on_timeout(void *data)
{
    struct pf *pf = data;
    log_info("streaming: port-forward session to pod %s idle for too long; closing it", pf->req->id);
    pf_end(pf);
    pf_maybe_free(pf);
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

static void ws_on_message(void *data, int ch, const uint8_t *b, size_t n)
{
    struct pf *pf = data;
    if (ch < 0 || ch % 2)
        return; /* the error channels are ours to write */
    unsigned idx = (unsigned)ch / 2;
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &pf->pairs)
    {
        struct pair *p = list_entry(pos, struct pair, link);
        if ((unsigned)p->index == idx) {
            client_data(p, b, n);
            return;
        }
    }
}

static const struct ws_app ws_app = {
    .on_message = ws_on_message,
    .on_drain = on_drain,
    .on_gone = on_gone,
    .on_timeout = on_timeout,
};

static void shutdown_cb(struct session *s)
{
    struct pf *pf = list_entry(s, struct pf, sess);
    pf_end(pf);
    pf_maybe_free(pf);
}

/* WebSocket: the ports are the request's, else the URL's ?port= values. */
static size_t ws_ports(const struct stream_request *req, const char *query, uint16_t *ports)
{
    size_t n = 0;
    for (size_t i = 0; i < req->n_ports && n < MAX_WS_PORTS; i++)
        if (req->ports[i] > 0 && req->ports[i] <= 65535)
            ports[n++] = (uint16_t)req->ports[i];
    if (n)
        return n;
    size_t pos = 0;
    char v[256];
    while (n < MAX_WS_PORTS && http_query_next(query, "port", &pos, v, sizeof(v))) {
        for (char *tok = strtok(v, ","); tok && n < MAX_WS_PORTS; tok = strtok(NULL, ",")) {
            char *end;
            unsigned long p = strtoul(tok, &end, 10);
            if (*end || p < 1 || p > 65535)
                return 0;
            ports[n++] = (uint16_t)p;
        }
    }
    return n;
}

void portforward_start(struct streaming_server *srv, struct conn *c, struct stream_request *req, enum transport t,
                       const char *query, bool base64)
{
    struct pf *pf = calloc(1, sizeof(*pf));
    struct pod *pod = pods_find(srv->pods, req->id);
    if (!pf || !pod) {
        if (!pod)
            log_warn("streaming: port-forward: pod sandbox %s is gone", req->id);
        free(pf);
        stream_request_free(req);
        conn_close(c);
        return;
    }
    pf->srv = srv;
    pf->req = req;
    pf->t = t;
    pf->conn = c;
    pf->netns = pod->netns ? strdup(pod->netns) : NULL;
    list_init(&pf->pairs);
    list_init(&pf->sess.link);
    session_register(srv, &pf->sess, shutdown_cb);
    pf->t_open = true;
    if (t == TRANSPORT_SPDY) {
        pf->spdy = spdy_session_new(c, &spdy_app, pf, srv->idle_timeout_ms);
        if (!pf->spdy) {
            conn_close(c);
            pf->t_open = false;
            pf_end(pf);
            pf_maybe_free(pf);
            return;
        }
        spdy_session_start(pf->spdy);
        return;
    }
    uint16_t ports[MAX_WS_PORTS];
    size_t n = ws_ports(req, query, ports);
    pf->ws = ws_session_new(c, &ws_app, pf, srv->idle_timeout_ms, base64);
    if (!pf->ws || n == 0) {
        if (pf->ws)
            ws_finish(pf->ws, 1008);
        else
            conn_close(c);
        pf->t_open = false;
        pf_end(pf);
        pf_maybe_free(pf);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        struct pair *p = pair_new(pf);
        if (!p)
            break;
        p->index = (int)i;
        p->port = ports[i];
        snprintf(p->request_id, sizeof(p->request_id), "%zu", i);
        uint8_t le[2] = {(uint8_t)(ports[i] & 0xff), (uint8_t)(ports[i] >> 8)};
        ws_send(pf->ws, 2 * (int)i, le, 2);
        ws_send(pf->ws, 2 * (int)i + 1, le, 2);
    }
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &pf->pairs) pair_connect(list_entry(pos, struct pair, link));
    if (pf->ws)
        ws_session_start(pf->ws);
}
