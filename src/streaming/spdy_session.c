#include "streaming/spdy_session.h"

#include <stdlib.h>
#include <string.h>

#include "util/log.h"

#define MAX_CONTROL_FRAME (64 * 1024)
#define MAX_HEADER_BLOCK  (64 * 1024)
#define MAX_STREAMS       1024
/* WINDOW_UPDATE once this much of a stream's (or the session's) data has
 * been consumed: half the default initial window. */
#define WINDOW_CHUNK (32 * 1024)

struct spdy_session {
    struct conn *conn;
    const struct spdy_app *app;
    void *app_data;
    struct spdy_parser parser;
    struct spdy_zlib z;
    struct list_node streams;
    size_t n_streams;
    uint32_t last_stream_id;
    uint32_t session_unacked;
    bool paused, finished, dispatching;
    bool goaway_received;
};

static struct spdy_stream *find(struct spdy_session *s, uint32_t id)
{
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &s->streams)
    {
        struct spdy_stream *st = list_entry(pos, struct spdy_stream, link);
        if (st->id == id)
            return st;
    }
    return NULL;
}

static void stream_free(struct spdy_session *s, struct spdy_stream *st)
{
    list_del(&st->link);
    s->n_streams--;
    spdy_headers_free(&st->headers);
    free(st);
}

/* Released by the application and closed on our side: what the client may
 * still send for it is dropped like data for any stream we let go of, so a
 * client that never half-closes cannot pile streams up. */
static void maybe_free(struct spdy_session *s, struct spdy_stream *st)
{
    if (st->released && !st->held && (st->reset || st->local_fin))
        stream_free(s, st);
}

static void session_free(struct spdy_session *s)
{
    while (!list_empty(&s->streams))
        stream_free(s, list_entry(s->streams.next, struct spdy_stream, link));
    spdy_zlib_free(&s->z);
    free(s);
}

static int write_buf(struct spdy_session *s, struct spdy_buf *b)
{
    int r = conn_write(s->conn, b->p, b->len);
    spdy_buf_free(b);
    return r;
}

/* A session error: GOAWAY, close, tell the application. */
static void session_error(struct spdy_session *s, const char *why)
{
    log_debug("streaming: SPDY session error: %s", why);
    if (s->finished)
        return;
    struct spdy_buf b = {0};
    if (spdy_build_goaway(&b, s->last_stream_id, SPDY_GOAWAY_PROTOCOL_ERROR) == 0)
        write_buf(s, &b);
    s->finished = true;
    conn_finish(s->conn);
    if (s->app->on_gone)
        s->app->on_gone(s->app_data);
    if (!s->dispatching)
        session_free(s);
}

static void send_rst(struct spdy_session *s, uint32_t id, uint32_t status)
{
    struct spdy_buf b = {0};
    if (spdy_build_rst_stream(&b, id, status) == 0)
        write_buf(s, &b);
}

static void ack_window(struct spdy_session *s, struct spdy_stream *st, size_t n)
{
    struct spdy_buf b = {0};
    s->session_unacked += (uint32_t)n;
    if (s->session_unacked >= WINDOW_CHUNK) {
        spdy_build_window_update(&b, 0, s->session_unacked);
        s->session_unacked = 0;
    }
    if (st && !st->remote_fin) {
        st->unacked += (uint32_t)n;
        if (st->unacked >= WINDOW_CHUNK) {
            spdy_build_window_update(&b, st->id, st->unacked);
            st->unacked = 0;
        }
    }
    if (b.len)
        write_buf(s, &b);
    else
        spdy_buf_free(&b);
}

static void on_syn_stream(struct spdy_session *s, const struct spdy_event *ev)
{
    uint32_t id, assoc;
    uint8_t prio;
    const uint8_t *block;
    size_t block_len;
    if (spdy_parse_syn_stream(ev->data, ev->len, &id, &assoc, &prio, &block, &block_len) < 0) {
        session_error(s, "malformed SYN_STREAM");
        return;
    }
    /* The block must be inflated whatever happens to the stream: the
     * compression context spans the whole connection. */
    struct spdy_headers h;
    const char *why = NULL;
    if (spdy_headers_decode(&s->z, block, block_len, MAX_HEADER_BLOCK, &h, &why) < 0) {
        session_error(s, why);
        return;
    }
    if ((id & 1) == 0 || id <= s->last_stream_id) {
        spdy_headers_free(&h);
        session_error(s, "SYN_STREAM with a stream id out of order");
        return;
    }
    s->last_stream_id = id;
    if (s->goaway_received || s->n_streams >= MAX_STREAMS) {
        spdy_headers_free(&h);
        send_rst(s, id, SPDY_REFUSED_STREAM);
        return;
    }
    struct spdy_stream *st = calloc(1, sizeof(*st));
    if (!st) {
        spdy_headers_free(&h);
        send_rst(s, id, SPDY_INTERNAL_ERROR);
        return;
    }
    st->id = id;
    st->headers = h;
    st->remote_fin = ev->flags & SPDY_FLAG_FIN;
    /* Unidirectional from the client: we may not send on it. */
    st->local_fin = ev->flags & SPDY_FLAG_UNIDIRECTIONAL;
    list_add_tail(&s->streams, &st->link);
    s->n_streams++;
    st->held++; /* not freed under our feet by spdy_release */
    int accepted = s->app->on_stream(s->app_data, st);
    if (accepted < 0) {
        st->held--;
        st->reset = true;
        st->released = true;
        send_rst(s, id, SPDY_REFUSED_STREAM);
        maybe_free(s, st);
        return;
    }
    if (s->finished)
        return;
    if (!st->local_fin) {
        struct spdy_buf b = {0};
        if (spdy_build_block_frame(&s->z, &b, SPDY_SYN_REPLY, 0, id, NULL, 0) < 0) {
            spdy_buf_free(&b);
            session_error(s, "building a SYN_REPLY");
            return;
        }
        write_buf(s, &b);
    }
    if (st->remote_fin && s->app->on_fin)
        s->app->on_fin(s->app_data, st);
    st->held--;
    if (!s->finished)
        maybe_free(s, st);
}

static void on_control(struct spdy_session *s, const struct spdy_event *ev)
{
    if (ev->version != SPDY_VERSION) {
        session_error(s, "unsupported SPDY version");
        return;
    }
    uint32_t id, v;
    switch (ev->type) {
    case SPDY_SYN_STREAM:
        on_syn_stream(s, ev);
        return;
    case SPDY_SYN_REPLY:
    case SPDY_HEADERS: {
        const uint8_t *block;
        size_t block_len;
        struct spdy_headers h;
        const char *why = NULL;
        if (spdy_parse_stream_block(ev->data, ev->len, &id, &block, &block_len) < 0 ||
            spdy_headers_decode(&s->z, block, block_len, MAX_HEADER_BLOCK, &h, &why) < 0) {
            session_error(s, why ? why : "malformed header frame");
            return;
        }
        spdy_headers_free(&h);
        /* We open no streams, so a SYN_REPLY is always out of place. */
        struct spdy_stream *st = find(s, id);
        if (ev->type == SPDY_SYN_REPLY || !st || st->reset) {
            send_rst(s, id, ev->type == SPDY_SYN_REPLY ? SPDY_PROTOCOL_ERROR : SPDY_INVALID_STREAM);
            return;
        }
        if ((ev->flags & SPDY_FLAG_FIN) && !st->remote_fin) {
            st->remote_fin = true;
            st->held++;
            if (s->app->on_fin)
                s->app->on_fin(s->app_data, st);
            st->held--;
            if (!s->finished)
                maybe_free(s, st);
        }
        return;
    }
    case SPDY_RST_STREAM: {
        if (spdy_parse_rst_stream(ev->data, ev->len, &id, &v) < 0) {
            session_error(s, "malformed RST_STREAM");
            return;
        }
        struct spdy_stream *st = find(s, id);
        if (st && !st->reset) {
            st->reset = true;
            st->held++;
            if (s->app->on_reset)
                s->app->on_reset(s->app_data, st);
            st->held--;
            if (!s->finished)
                maybe_free(s, st);
        }
        return;
    }
    case SPDY_SETTINGS:
        if (spdy_parse_settings(ev->data, ev->len, &v) < 0)
            session_error(s, "malformed SETTINGS");
        return;
    case SPDY_PING:
        if (spdy_parse_ping(ev->data, ev->len, &id) < 0) {
            session_error(s, "malformed PING");
            return;
        }
        /* Odd ids are the client's: echo them; even ones would be ours. */
        if (id & 1) {
            struct spdy_buf b = {0};
            if (spdy_build_ping(&b, id) == 0)
                write_buf(s, &b);
        }
        return;
    case SPDY_GOAWAY:
        if (spdy_parse_goaway(ev->data, ev->len, &id, &v) < 0) {
            session_error(s, "malformed GOAWAY");
            return;
        }
        s->goaway_received = true;
        return;
    case SPDY_WINDOW_UPDATE:
        if (spdy_parse_window_update(ev->data, ev->len, &id, &v) < 0)
            session_error(s, "malformed WINDOW_UPDATE");
        return;
    default:
        /* Unknown control frames (CREDENTIAL, NOOP of SPDY/2...) are ignored,
         * as the specification asks. */
        return;
    }
}

static void on_data(struct spdy_session *s, const struct spdy_event *ev)
{
    struct spdy_stream *st = find(s, ev->stream_id);
    if (!st) {
        if (ev->stream_id > s->last_stream_id || (ev->stream_id & 1) == 0) {
            session_error(s, "data for a stream never opened");
            return;
        }
        /* A stream we already let go of: the peer has not seen that yet. */
        if (ev->len)
            ack_window(s, NULL, ev->len);
        return;
    }
    if (st->reset) {
        ack_window(s, NULL, ev->len);
        return;
    }
    /* The application may release or reset the stream from any callback:
     * it is freed after the last one, not under our feet. */
    st->held++;
    if (st->remote_fin) {
        st->reset = true;
        send_rst(s, st->id, SPDY_STREAM_ALREADY_CLOSED);
        if (s->app->on_reset)
            s->app->on_reset(s->app_data, st);
    } else {
        if (ev->len) {
            ack_window(s, ev->fin ? NULL : st, ev->len);
            if (s->app->on_data)
                s->app->on_data(s->app_data, st, ev->data, ev->len);
        }
        if (ev->fin && !s->finished && !st->reset && !st->remote_fin) {
            st->remote_fin = true;
            if (s->app->on_fin)
                s->app->on_fin(s->app_data, st);
        }
    }
    st->held--;
    if (!s->finished)
        maybe_free(s, st);
}

static void on_read(struct conn *c, void *data)
{
    struct spdy_session *s = data;
    s->dispatching = true;
    while (!s->finished && !s->paused) {
        size_t len;
        const uint8_t *in = conn_input(c, &len);
        struct spdy_event ev;
        size_t used = spdy_parse(&s->parser, in, len, &ev);
        if (ev.kind == SPDY_EV_NEED_MORE)
            break;
        if (ev.kind == SPDY_EV_ERROR) {
            session_error(s, ev.error);
            break;
        }
        if (ev.kind == SPDY_EV_CONTROL)
            on_control(s, &ev);
        else if (ev.len || ev.fin)
            on_data(s, &ev);
        /* The event's pointers are into the input: consume afterwards. */
        if (!s->finished)
            conn_consume(c, used);
    }
    s->dispatching = false;
    if (s->finished)
        session_free(s);
}

static void on_drain(struct conn *c, void *data)
{
    (void)c;
    struct spdy_session *s = data;
    if (s->app->on_drain)
        s->app->on_drain(s->app_data);
}

static void on_close(struct conn *c, void *data)
{
    (void)c;
    struct spdy_session *s = data;
    s->finished = true;
    if (s->app->on_gone)
        s->app->on_gone(s->app_data);
    session_free(s);
}

static void on_timeout(struct conn *c, void *data)
{
    (void)c;
    struct spdy_session *s = data;
    if (s->app->on_timeout)
        s->app->on_timeout(s->app_data);
}

static const struct conn_handler handler = {
    .on_read = on_read,
    .on_drain = on_drain,
    .on_close = on_close,
    .on_timeout = on_timeout,
};

struct spdy_session *spdy_session_new(struct conn *c, const struct spdy_app *app, void *app_data,
                                      uint64_t idle_timeout_ms)
{
    struct spdy_session *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    if (spdy_zlib_init(&s->z) < 0) {
        free(s);
        return NULL;
    }
    s->conn = c;
    s->app = app;
    s->app_data = app_data;
    spdy_parser_init(&s->parser, MAX_CONTROL_FRAME);
    list_init(&s->streams);
    conn_set_handler(c, &handler, s);
    conn_set_timeout(c, idle_timeout_ms);
    return s;
}

void spdy_session_start(struct spdy_session *s)
{
    /* Frames the client sent right behind its request. */
    size_t len;
    conn_input(s->conn, &len);
    if (len)
        on_read(s->conn, s);
}

int spdy_send(struct spdy_session *s, struct spdy_stream *st, const void *buf, size_t len, bool fin)
{
    if (s->finished || st->reset || st->local_fin)
        return -1;
    const uint8_t *p = buf;
    do {
        /* Frames of at most 32 KiB keep one stream from hogging the pipe. */
        size_t n = len > 32768 ? 32768 : len;
        uint8_t hdr[SPDY_HEADER_LEN];
        bool last = n == len;
        spdy_put_data_header(hdr, st->id, fin && last ? SPDY_FLAG_FIN : 0, (uint32_t)n);
        if (conn_write2(s->conn, hdr, sizeof(hdr), p, n) < 0)
            return -1;
        p += n;
        len -= n;
    } while (len > 0);
    if (fin) {
        st->local_fin = true;
        maybe_free(s, st);
    }
    return 0;
}

void spdy_reset(struct spdy_session *s, struct spdy_stream *st, uint32_t status)
{
    if (s->finished || st->reset)
        return;
    st->reset = true;
    send_rst(s, st->id, status);
    maybe_free(s, st);
}

void spdy_release(struct spdy_session *s, struct spdy_stream *st)
{
    st->released = true;
    if (!s->finished)
        maybe_free(s, st);
}

bool spdy_congested(struct spdy_session *s)
{
    return conn_congested(s->conn);
}

void spdy_pause(struct spdy_session *s)
{
    if (s->paused)
        return;
    s->paused = true;
    conn_pause_reading(s->conn);
}

void spdy_resume(struct spdy_session *s)
{
    if (!s->paused || s->finished)
        return;
    s->paused = false;
    conn_resume_reading(s->conn);
}

void spdy_finish(struct spdy_session *s)
{
    if (s->finished)
        return;
    struct spdy_buf b = {0};
    if (spdy_build_goaway(&b, s->last_stream_id, SPDY_GOAWAY_OK) == 0)
        write_buf(s, &b);
    s->finished = true;
    conn_finish(s->conn);
    if (!s->dispatching)
        session_free(s);
}
