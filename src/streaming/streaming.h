/* The streaming server: Exec, Attach and PortForward sessions, the way
 * kubelet's CRI streaming library serves them, on the one loop.
 *
 * The CRI handlers validate a request and register it here; the client gets
 * back a single-use URL (http://ADDRESS:PORT/exec/TOKEN) and connects to it
 * with an HTTP/1.1 upgrade to SPDY/3.1 or WebSocket. Every session is bounded
 * in memory (producers stop reading when the client's output queue is full)
 * and in time (an idle timeout), and their number is capped. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "streaming/tokens.h"
#include "util/error.h"

struct containers;
struct pods;
struct streaming_server;

struct streaming_options {
    const char *address;                      /* IPv4 or IPv6 literal */
    uint16_t port;                            /* 0: any free port */
    const char *tls_cert_file, *tls_key_file; /* both set: https */
    uint64_t idle_timeout_ms;
    uint64_t stream_creation_timeout_ms;
    uint64_t token_ttl_ms;
    size_t max_sessions;
    struct containers *containers;
    struct pods *pods;
};

int streaming_server_start(uv_loop_t *loop, const struct streaming_options *opts, struct streaming_server **out,
                           err_t *err);
/* Stops accepting and ends every session (exec'd processes are killed). */
void streaming_server_shutdown(struct streaming_server *s);
/* Whether something still waits (a killed process not reaped yet). */
bool streaming_server_busy(const struct streaming_server *s);
void streaming_server_free(struct streaming_server *s);

/* "http://127.0.0.1:PORT" (no trailing slash). */
const char *streaming_server_base_url(const struct streaming_server *s);

/* Parks a validated request (taken over) and returns its URL (caller frees). */
int streaming_server_register(struct streaming_server *s, struct stream_request *req, char **url, err_t *err);

size_t streaming_server_sessions(const struct streaming_server *s);
