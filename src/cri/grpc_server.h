/* The gRPC server: a unix socket on the loop, h2o speaking HTTP/2 (h2c with
 * prior knowledge, as gRPC clients send it), and the dispatch of each request
 * to its method's handler. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "cri/grpc.h"
#include "util/error.h"

struct grpc_server;

struct grpc_server_options {
    const char *socket_path;
    size_t max_recv_message_size;
    size_t max_send_message_size;
    struct grpc_method *methods; /* input/output/path are filled in here */
    size_t n_methods;
    /* protobuf-c's service descriptors: where each method's message types
     * come from (and a check that the method table matches the proto). */
    const ProtobufCServiceDescriptor *const *services;
    size_t n_services;
    void *userdata;
};

int grpc_server_start(struct grpc_server **out, uv_loop_t *loop, const struct grpc_server_options *opts, err_t *err);

/* New message size limits (SIGHUP); calls already running keep theirs. */
void grpc_server_set_limits(struct grpc_server *s, size_t max_recv, size_t max_send);

/* Stops accepting connections and sends GOAWAY on the open ones. Long-lived
 * streams end at once with UNAVAILABLE; other calls may finish within
 * `timeout_ms`, after which they are ended with UNAVAILABLE too. `on_done`
 * runs once no call is left and every connection is closed (or a short while
 * after the timeout, whichever comes first). */
void grpc_server_shutdown(struct grpc_server *s, uint64_t timeout_ms, void (*on_done)(void *data), void *data);

/* Frees everything; only after on_done has run. */
void grpc_server_free(struct grpc_server *s);

/* Number of calls in progress (for tests of the shutdown path and logs). */
size_t grpc_server_active_calls(const struct grpc_server *s);
