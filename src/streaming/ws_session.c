#include "streaming/ws_session.h"

#include <errno.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <wslay/wslay.h>

#include "util/log.h"

/* Largest message accepted from a client: stdin chunks and resize events
 * are far smaller; a bigger one closes the connection (1009). */
#define MAX_MESSAGE (1u << 20)

struct ws_session {
    struct conn *conn;
    wslay_event_context_ptr ctx;
    const struct ws_app *app;
    void *app_data;
    bool paused, finished, dispatching, gone;
    bool base64;
};

static ssize_t recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *user)
{
    (void)flags;
    struct ws_session *s = user;
    size_t have;
    const uint8_t *in = conn_input(s->conn, &have);
    if (have == 0 || s->paused || s->finished) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    size_t n = have < len ? have : len;
    memcpy(buf, in, n);
    conn_consume(s->conn, n);
    return (ssize_t)n;
}

/* Frames go straight into the connection's queue, which is what producers
 * watch for backpressure: wslay's own queue never holds more than one
 * message at a time. */
static ssize_t send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags, void *user)
{
    (void)flags;
    struct ws_session *s = user;
    if (conn_write(s->conn, data, len) < 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    return (ssize_t)len;
}

static void on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *arg, void *user)
{
    (void)ctx;
    struct ws_session *s = user;
    if (s->finished)
        return;
    if (arg->msg_length == 0 || !s->app->on_message)
        return;
    if (arg->opcode == WSLAY_BINARY_FRAME && !s->base64) {
        s->app->on_message(s->app_data, arg->msg[0], arg->msg + 1, arg->msg_length - 1);
    } else if (arg->opcode == WSLAY_TEXT_FRAME && s->base64) {
        /* '0' + channel, then standard base64 with padding ('=' only as
         * the last one or two characters). */
        const uint8_t *b64 = arg->msg + 1;
        size_t n = arg->msg_length - 1, pad = 0;
        while (pad < 2 && pad < n && b64[n - 1 - pad] == '=')
            pad++;
        if (n % 4 || memchr(b64, '=', n - pad))
            return;
        uint8_t *out = malloc(n / 4 * 3 + 1);
        if (!out)
            return;
        int len = EVP_DecodeBlock(out, b64, (int)n);
        if (len >= (int)pad)
            s->app->on_message(s->app_data, arg->msg[0] - '0', out, (size_t)len - pad);
        free(out);
    }
    /* Pings are answered and a close is acknowledged by wslay itself. */
}

static void session_free(struct ws_session *s)
{
    wslay_event_context_free(s->ctx);
    free(s);
}

static void gone(struct ws_session *s)
{
    if (s->finished)
        return;
    s->finished = true;
    s->gone = true;
    if (s->app->on_gone)
        s->app->on_gone(s->app_data);
}

static void pump(struct ws_session *s)
{
    if (s->finished)
        return;
    s->dispatching = true;
    if (!s->paused && wslay_event_recv(s->ctx) != 0) {
        gone(s);
        conn_finish(s->conn);
    } else if (!s->finished && wslay_event_send(s->ctx) != 0) {
        gone(s);
        conn_finish(s->conn);
    } else if (!s->finished && !wslay_event_want_read(s->ctx) && !wslay_event_want_write(s->ctx)) {
        /* Close handshake done (the client closed first). */
        gone(s);
        conn_finish(s->conn);
    }
    s->dispatching = false;
    if (s->finished)
        session_free(s);
}

static void on_read(struct conn *c, void *data)
{
    (void)c;
    pump(data);
}

static void on_drain(struct conn *c, void *data)
{
    (void)c;
    struct ws_session *s = data;
    if (s->app->on_drain)
        s->app->on_drain(s->app_data);
}

static void on_close(struct conn *c, void *data)
{
    (void)c;
    struct ws_session *s = data;
    gone(s);
    if (!s->dispatching)
        session_free(s);
}

static void on_timeout(struct conn *c, void *data)
{
    (void)c;
    struct ws_session *s = data;
    if (s->app->on_timeout)
        s->app->on_timeout(s->app_data);
}

static const struct conn_handler handler = {
    .on_read = on_read,
    .on_drain = on_drain,
    .on_close = on_close,
    .on_timeout = on_timeout,
};

struct ws_session *ws_session_new(struct conn *c, const struct ws_app *app, void *app_data, uint64_t idle_timeout_ms,
                                  bool base64)
{
    struct ws_session *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    static const struct wslay_event_callbacks cbs = {
        .recv_callback = recv_cb,
        .send_callback = send_cb,
        .on_msg_recv_callback = on_msg,
    };
    if (wslay_event_context_server_init(&s->ctx, &cbs, s) != 0) {
        free(s);
        return NULL;
    }
    wslay_event_config_set_max_recv_msg_length(s->ctx, MAX_MESSAGE);
    s->conn = c;
    s->base64 = base64;
    s->app = app;
    s->app_data = app_data;
    conn_set_handler(c, &handler, s);
    conn_set_timeout(c, idle_timeout_ms);
    return s;
}

void ws_session_start(struct ws_session *s)
{
    size_t len;
    conn_input(s->conn, &len);
    if (len)
        pump(s);
}

int ws_send(struct ws_session *s, int channel, const void *p, size_t n)
{
    if (s->finished)
        return -1;
    size_t cap = s->base64 ? 1 + (n + 2) / 3 * 4 + 1 : n + 1;
    uint8_t *msg = malloc(cap);
    if (!msg)
        return -1;
    size_t len;
    if (s->base64) {
        msg[0] = (uint8_t)('0' + channel);
        len = 1 + (size_t)EVP_EncodeBlock(msg + 1, p, (int)n);
    } else {
        msg[0] = (uint8_t)channel;
        if (n)
            memcpy(msg + 1, p, n);
        len = n + 1;
    }
    struct wslay_event_msg m = {
        .opcode = s->base64 ? WSLAY_TEXT_FRAME : WSLAY_BINARY_FRAME, .msg = msg, .msg_length = len};
    int r = wslay_event_queue_msg(s->ctx, &m);
    free(msg);
    if (r != 0)
        return -1;
    if (!s->dispatching && wslay_event_send(s->ctx) != 0)
        return -1;
    return 0;
}

bool ws_congested(struct ws_session *s)
{
    return conn_congested(s->conn);
}

void ws_pause(struct ws_session *s)
{
    if (s->paused)
        return;
    s->paused = true;
    conn_pause_reading(s->conn);
}

void ws_resume(struct ws_session *s)
{
    if (!s->paused || s->finished)
        return;
    s->paused = false;
    conn_resume_reading(s->conn);
}

void ws_finish(struct ws_session *s, uint16_t code)
{
    if (s->finished)
        return;
    wslay_event_queue_close(s->ctx, code, NULL, 0);
    wslay_event_send(s->ctx);
    s->finished = true;
    conn_finish(s->conn);
    if (!s->dispatching)
        session_free(s);
}
