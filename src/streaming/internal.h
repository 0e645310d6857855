/* Shared between the files of src/streaming; nothing else includes this. */
#pragma once

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "streaming/conn.h"
#include "streaming/http_head.h"
#include "streaming/streaming.h"
#include "streaming/tokens.h"
#include "util/list.h"

struct streaming_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    bool listening;
    SSL_CTX *ssl_ctx;
    char *base_url;
    struct tokens *tokens;
    struct containers *containers;
    struct pods *pods;
    uint64_t idle_timeout_ms, stream_creation_timeout_ms;
    size_t max_sessions;

    struct list_node handshakes; /* connections still sending their request */
    struct list_node sessions;   /* struct session */
    size_t n_sessions;
    size_t n_lingering; /* sessions whose client left but whose process is not reaped yet */
    bool shutting_down;
    bool free_pending;
    bool listener_closed;
};

/* An upgraded connection, whatever it carries. */
struct session {
    struct list_node link;
    struct streaming_server *srv;
    void (*shutdown)(struct session *s); /* end it now (server shutdown) */
};

void session_register(struct streaming_server *srv, struct session *s, void (*shutdown)(struct session *));
void session_unregister(struct session *s);
uint64_t streaming_now_ms(const struct streaming_server *srv);

/* Protocol handlers: each takes over the connection and the request. */
enum transport { TRANSPORT_SPDY, TRANSPORT_WEBSOCKET };

/* remotecommand.c: exec and attach; `version` is the negotiated
 * remotecommand protocol (1-5). */
void remotecommand_start(struct streaming_server *srv, struct conn *c, struct stream_request *req, enum transport t,
                         int version, bool base64);
/* portforward.c */
void portforward_start(struct streaming_server *srv, struct conn *c, struct stream_request *req, enum transport t,
                       const char *query, bool base64);
