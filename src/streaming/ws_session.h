/* A WebSocket connection after the opening handshake (server side), framed
 * by wslay: whole messages in, binary messages out, pings answered, a close
 * handshake at the end. The Kubernetes channel protocols put a channel
 * byte in front of every message; that is the caller's business. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "streaming/conn.h"

struct ws_session;

struct ws_app {
    void (*on_message)(void *app, const uint8_t *p, size_t n, bool binary);
    void (*on_drain)(void *app);
    /* The peer closed or broke the connection: let go of the session. */
    void (*on_gone)(void *app);
    void (*on_timeout)(void *app);
};

struct ws_session *ws_session_new(struct conn *c, const struct ws_app *app, void *app_data, uint64_t idle_timeout_ms);
void ws_session_start(struct ws_session *s);
/* One binary message: `prefix` (the channel byte, or none when < 0) then
 * the data. */
int ws_send(struct ws_session *s, int prefix, const void *p, size_t n);
bool ws_congested(struct ws_session *s);
void ws_pause(struct ws_session *s);
void ws_resume(struct ws_session *s);
/* Sends a close frame and what is queued, then closes; the session is
 * freed and the application gets no more calls. */
void ws_finish(struct ws_session *s, uint16_t code);
