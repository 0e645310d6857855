/* A WebSocket connection after the opening handshake (server side), framed
 * by wslay, carrying Kubernetes' channel protocols: every message starts
 * with its channel, a byte in binary messages ("channel.k8s.io") or a digit
 * before base64 in text messages ("base64.channel.k8s.io"). Pings are
 * answered and the close handshake done here. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "streaming/conn.h"

struct ws_session;

struct ws_app {
    /* One message, its channel taken off (and decoded from base64). */
    void (*on_message)(void *app, int channel, const uint8_t *p, size_t n);
    void (*on_drain)(void *app);
    /* The peer closed or broke the connection: let go of the session. */
    void (*on_gone)(void *app);
    void (*on_timeout)(void *app);
};

struct ws_session *ws_session_new(struct conn *c, const struct ws_app *app, void *app_data, uint64_t idle_timeout_ms,
                                  bool base64);
void ws_session_start(struct ws_session *s);
/* One message on `channel`. */
int ws_send(struct ws_session *s, int channel, const void *p, size_t n);
bool ws_congested(struct ws_session *s);
void ws_pause(struct ws_session *s);
void ws_resume(struct ws_session *s);
/* Sends a close frame and what is queued, then closes; the session is
 * freed and the application gets no more calls. */
void ws_finish(struct ws_session *s, uint16_t code);
