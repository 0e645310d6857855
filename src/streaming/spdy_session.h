/* A SPDY/3.1 session on an upgraded connection, server side: streams opened
 * by the client, their headers, data in both directions, half-close, reset,
 * PING answered, SETTINGS and WINDOW_UPDATE accepted.
 *
 * Flow control: kubelet's and kubectl's SPDY library ignores WINDOW_UPDATE
 * and never sends one, so waiting for window credit would stall every
 * stream after 64 KiB. We send WINDOW_UPDATEs for what we consume (for
 * peers that do count) but pace our own output by the TCP send queue
 * (conn.h) only, as that library does. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "streaming/conn.h"
#include "streaming/spdy_frame.h"
#include "util/list.h"

struct spdy_session;

struct spdy_stream {
    struct list_node link;
    uint32_t id;
    struct spdy_headers headers;
    bool remote_fin, local_fin, reset;
    bool released;    /* the application is done with it */
    uint32_t unacked; /* data consumed and not yet acknowledged */
    unsigned held;    /* the session is calling the application about it: not freed meanwhile */
    void *app;
};

struct spdy_app {
    /* A new stream from the client. Return 0 to accept it (the SYN_REPLY is
     * sent), -1 to refuse it (RST_STREAM). */
    int (*on_stream)(void *app, struct spdy_stream *st);
    void (*on_data)(void *app, struct spdy_stream *st, const uint8_t *p, size_t n);
    void (*on_fin)(void *app, struct spdy_stream *st);
    void (*on_reset)(void *app, struct spdy_stream *st);
    void (*on_drain)(void *app);
    /* The connection is gone (or broken by a bad frame): the application
     * must let go of the session; nothing is called after this. */
    void (*on_gone)(void *app);
    void (*on_timeout)(void *app);
};

struct spdy_session *spdy_session_new(struct conn *c, const struct spdy_app *app, void *app_data,
                                      uint64_t idle_timeout_ms);
/* Processes what the client already sent; the application callbacks may
 * run (and end the session) from here on. */
void spdy_session_start(struct spdy_session *s);
int spdy_send(struct spdy_session *s, struct spdy_stream *st, const void *buf, size_t len, bool fin);
void spdy_reset(struct spdy_session *s, struct spdy_stream *st, uint32_t status);
/* The application no longer refers to st; it is freed once closed. */
void spdy_release(struct spdy_session *s, struct spdy_stream *st);
bool spdy_congested(struct spdy_session *s);
/* Stops handing input to the application (what is buffered stays). */
void spdy_pause(struct spdy_session *s);
void spdy_resume(struct spdy_session *s);
/* GOAWAY, then the connection closes once its output is sent; the session
 * is freed and the application gets no more calls. */
void spdy_finish(struct spdy_session *s);
