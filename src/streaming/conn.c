#include "streaming/conn.h"

#include <h2o.h>
#include <stdlib.h>
#include <string.h>

#include "util/log.h"

#define CHUNK_MIN  (16u * 1024)
#define FINISH_MS  (30 * 1000) /* to send what is queued at the end */
#define LINGER_MS  2000        /* then for the client to close first */
#define MAX_IOVECS 32

struct chunk {
    struct chunk *next;
    size_t len, cap;
    bool sealed; /* handed to a write: no more appends */
    uint8_t data[];
};

struct conn {
    struct list_node link;
    struct list_node all; /* every connection not closed yet */
    uv_tcp_t tcp;
    uv_timer_t timer;
    h2o_socket_t *sock;
    int handles; /* uv handles not closed yet */

    const struct conn_handler *h;
    void *hdata;

    struct chunk *head, *tail;
    size_t queued;
    size_t writing_chunks; /* chunks at the head handed to h2o */
    bool writing;
    bool congested;

    uint64_t timeout_ms;
    bool reading, paused, started;
    bool closing, finishing;
    int in_callback; /* depth of handler calls: close waits until they return */
    bool close_pending;
};

static void really_close(struct conn *c);

static struct list_node all_conns = {&all_conns, &all_conns};

struct list_node *conn_link(struct conn *c)
{
    return &c->link;
}

struct conn *conn_from_link(struct list_node *n)
{
    return list_entry(n, struct conn, link);
}

static void handle_closed(uv_handle_t *h)
{
    struct conn *c = h->data;
    if (--c->handles > 0)
        return;
    for (struct chunk *k = c->head, *next; k; k = next) {
        next = k->next;
        free(k);
    }
    free(c);
}

/* h2o frees its socket, then calls this with our uv handle. */
static void tcp_closed(uv_handle_t *h)
{
    h->data = list_entry(h, struct conn, tcp);
    handle_closed(h);
}

struct conn *conn_accept(uv_loop_t *loop, uv_stream_t *listener)
{
    struct conn *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    list_init(&c->link);
    list_add_tail(&all_conns, &c->all);
    if (uv_tcp_init(loop, &c->tcp) != 0) {
        list_del(&c->all);
        free(c);
        return NULL;
    }
    c->tcp.data = c;
    c->handles = 1;
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        list_del(&c->all);
        uv_close((uv_handle_t *)&c->tcp, handle_closed);
        return NULL;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    c->handles++;
    c->sock = h2o_uv_socket_create((uv_stream_t *)&c->tcp, tcp_closed);
    c->sock->data = c;
    return c;
}

void conn_set_handler(struct conn *c, const struct conn_handler *h, void *data)
{
    c->h = h;
    c->hdata = data;
}

static void touch(struct conn *c)
{
    if (c->timeout_ms && !c->closing)
        uv_timer_again(&c->timer);
}

static void on_timer(uv_timer_t *t)
{
    struct conn *c = t->data;
    if (c->closing)
        return;
    if (c->finishing || !c->h || !c->h->on_timeout) {
        conn_close(c);
        return;
    }
    c->in_callback++;
    c->h->on_timeout(c, c->hdata);
    c->in_callback--;
    if (c->close_pending && !c->in_callback)
        really_close(c);
}

void conn_set_timeout(struct conn *c, uint64_t ms)
{
    c->timeout_ms = ms;
    if (ms)
        uv_timer_start(&c->timer, on_timer, ms, ms);
    else
        uv_timer_stop(&c->timer);
}

/* The peer is gone: tell the owner once, then free. */
static void peer_gone(struct conn *c)
{
    if (c->closing)
        return;
    const struct conn_handler *h = c->h;
    c->h = NULL;
    if (h && h->on_close && !c->finishing) {
        c->in_callback++;
        h->on_close(c, c->hdata);
        c->in_callback--;
    }
    conn_close(c);
}

static void on_read(h2o_socket_t *sock, const char *err)
{
    struct conn *c = sock->data;
    if (err) {
        peer_gone(c);
        return;
    }
    if (c->finishing) {
        /* Lingering: what the client still sends is dropped (and does not
         * keep the connection open). */
        h2o_buffer_consume(&sock->input, sock->input->size);
        return;
    }
    touch(c);
    if (c->h && c->h->on_read) {
        c->in_callback++;
        c->h->on_read(c, c->hdata);
        c->in_callback--;
        if (c->close_pending && !c->in_callback)
            really_close(c);
    }
}

static void start_reading(struct conn *c)
{
    if (c->reading || c->paused || c->closing)
        return;
    c->reading = true;
    h2o_socket_read_start(c->sock, on_read);
}

static void on_handshake(h2o_socket_t *sock, const char *err)
{
    struct conn *c = sock->data;
    if (err) {
        log_debug("streaming: TLS handshake failed: %s", err);
        peer_gone(c);
        return;
    }
    start_reading(c);
    /* Bytes decrypted along with the handshake's last flight. */
    if (sock->input->size)
        on_read(sock, NULL);
}

void conn_start(struct conn *c, SSL_CTX *ssl_ctx)
{
    c->started = true;
    if (ssl_ctx)
        h2o_socket_ssl_handshake(c->sock, ssl_ctx, NULL, on_handshake);
    else
        start_reading(c);
}

const uint8_t *conn_input(struct conn *c, size_t *len)
{
    *len = c->sock->input->size;
    return (const uint8_t *)c->sock->input->bytes;
}

void conn_consume(struct conn *c, size_t n)
{
    h2o_buffer_consume(&c->sock->input, n);
}

void conn_pause_reading(struct conn *c)
{
    c->paused = true;
    if (c->reading && !c->closing) {
        h2o_socket_read_stop(c->sock);
        c->reading = false;
    }
}

void conn_resume_reading(struct conn *c)
{
    if (!c->paused)
        return;
    c->paused = false;
    if (c->started)
        start_reading(c);
    /* Input parked while paused is handed over again. */
    if (c->sock->input->size && c->h && c->h->on_read && !c->closing) {
        c->in_callback++;
        c->h->on_read(c, c->hdata);
        c->in_callback--;
        if (c->close_pending && !c->in_callback)
            really_close(c);
    }
}

/* --- output ----------------------------------------------------------------- */

static void flush(struct conn *c);

static void on_written(h2o_socket_t *sock, const char *err)
{
    struct conn *c = sock->data;
    c->writing = false;
    for (size_t i = 0; i < c->writing_chunks; i++) {
        struct chunk *k = c->head;
        c->head = k->next;
        if (!c->head)
            c->tail = NULL;
        c->queued -= k->len;
        free(k);
    }
    c->writing_chunks = 0;
    if (err) {
        peer_gone(c);
        return;
    }
    touch(c);
    if (c->head) {
        flush(c);
    } else if (c->finishing) {
        /* All sent: the client closes once it has read it (kubectl closes
         * after the error stream's end). Closing first could make its SPDY
         * library drop frames it has received but not yet handed out. */
        conn_set_timeout(c, LINGER_MS);
        return;
    }
    if (c->congested && c->queued <= CONN_LOW_WATER) {
        c->congested = false;
        if (c->h && c->h->on_drain && !c->finishing) {
            c->in_callback++;
            c->h->on_drain(c, c->hdata);
            c->in_callback--;
            if (c->close_pending && !c->in_callback)
                really_close(c);
        }
    }
}

static void flush(struct conn *c)
{
    if (c->writing || !c->head || c->closing)
        return;
    h2o_iovec_t iov[MAX_IOVECS];
    size_t n = 0;
    for (struct chunk *k = c->head; k && n < MAX_IOVECS; k = k->next) {
        k->sealed = true;
        iov[n++] = h2o_iovec_init(k->data, k->len);
    }
    c->writing_chunks = n;
    c->writing = true;
    h2o_socket_write(c->sock, iov, n, on_written);
}

static int append(struct conn *c, const void *buf, size_t len)
{
    if (len == 0)
        return 0;
    struct chunk *t = c->tail;
    if (t && !t->sealed && t->cap - t->len >= len) {
        memcpy(t->data + t->len, buf, len);
        t->len += len;
    } else {
        size_t cap = len > CHUNK_MIN ? len : CHUNK_MIN;
        struct chunk *k = malloc(sizeof(*k) + cap);
        if (!k)
            return -1;
        k->next = NULL;
        k->len = len;
        k->cap = cap;
        k->sealed = false;
        memcpy(k->data, buf, len);
        if (t)
            t->next = k;
        else
            c->head = k;
        c->tail = k;
    }
    c->queued += len;
    if (c->queued >= CONN_HIGH_WATER)
        c->congested = true;
    return 0;
}

int conn_write2(struct conn *c, const void *a, size_t alen, const void *b, size_t blen)
{
    if (c->closing || c->finishing)
        return -1;
    if (append(c, a, alen) < 0 || append(c, b, blen) < 0)
        return -1;
    flush(c);
    return 0;
}

int conn_write(struct conn *c, const void *buf, size_t len)
{
    return conn_write2(c, buf, len, NULL, 0);
}

size_t conn_queued(const struct conn *c)
{
    return c->queued;
}

bool conn_congested(const struct conn *c)
{
    return c->congested;
}

/* --- closing ---------------------------------------------------------------- */

static void really_close(struct conn *c)
{
    c->close_pending = false;
    list_del(&c->link);
    list_del(&c->all);
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, handle_closed);
    /* h2o closes the TCP handle; tcp_closed frees us once both are gone. */
    h2o_socket_close(c->sock);
}

void conn_close(struct conn *c)
{
    if (c->closing)
        return;
    c->closing = true;
    c->h = NULL;
    if (c->in_callback)
        c->close_pending = true;
    else
        really_close(c);
}

void conn_finish(struct conn *c)
{
    if (c->closing || c->finishing)
        return;
    c->finishing = true;
    c->h = NULL;
    /* Keep reading so a client's close is noticed, but drop its bytes. */
    c->paused = false;
    if (c->started)
        start_reading(c);
    /* A client that does not read what is left is not waited for long. */
    conn_set_timeout(c, c->head || c->writing ? FINISH_MS : LINGER_MS);
}

void conn_close_all(void)
{
    while (!list_empty(&all_conns)) {
        struct conn *c = list_entry(all_conns.next, struct conn, all);
        list_del(&c->all);
        list_init(&c->all);
        c->in_callback = 0;
        conn_close(c);
    }
}
