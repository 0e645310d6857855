/* One streaming connection's socket: a TCP connection (optionally TLS) on
 * h2o's socket layer, with an output queue whose size is the backpressure
 * signal for everything that produces data for this client, and an idle
 * timer.
 *
 * Lifetime: the owner installs a handler. When the peer goes away (EOF,
 * reset, TLS error) on_close runs once and the connection is freed right
 * after it returns. conn_close() frees it without calling on_close;
 * conn_finish() detaches the handler, sends what is queued, and closes. */
#pragma once

#include <openssl/ssl.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "util/list.h"

/* Output beyond the high mark makes producers stop reading their sources;
 * they are told to go on once it is back under the low mark. */
#define CONN_HIGH_WATER (256u * 1024)
#define CONN_LOW_WATER  (64u * 1024)

struct conn;

struct conn_handler {
    void (*on_read)(struct conn *c, void *data); /* new input in conn_input() */
    void (*on_drain)(struct conn *c, void *data);
    void (*on_close)(struct conn *c, void *data);
    void (*on_timeout)(struct conn *c, void *data);
};

/* Accepts a pending connection from `listener`. */
struct conn *conn_accept(uv_loop_t *loop, uv_stream_t *listener);
/* Starts reading (after the TLS handshake when ssl_ctx is set). */
void conn_start(struct conn *c, SSL_CTX *ssl_ctx);
void conn_set_handler(struct conn *c, const struct conn_handler *h, void *data);

/* What has been read and not consumed yet. */
const uint8_t *conn_input(struct conn *c, size_t *len);
void conn_consume(struct conn *c, size_t n);

/* Queues bytes (copied). Returns -1 when the connection is closing. */
int conn_write(struct conn *c, const void *buf, size_t len);
int conn_write2(struct conn *c, const void *a, size_t alen, const void *b, size_t blen);
size_t conn_queued(const struct conn *c);
bool conn_congested(const struct conn *c);

void conn_pause_reading(struct conn *c);
void conn_resume_reading(struct conn *c);

/* (Re)arms the inactivity timer: on_timeout runs after `ms` without any
 * byte read or written. 0 disarms it. */
void conn_set_timeout(struct conn *c, uint64_t ms);

void conn_finish(struct conn *c);
void conn_close(struct conn *c);
/* At exit: closes every connection still open (lingering ones included). */
void conn_close_all(void);

/* For the server's list of connections. */
struct list_node *conn_link(struct conn *c);
struct conn *conn_from_link(struct list_node *n);
