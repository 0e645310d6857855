/* gRPC over h2o's HTTP/2, as seen by an RPC handler.
 *
 * A handler is called on the loop thread with the decoded request and owns the
 * call until it calls grpc_call_finish() exactly once, now or later (after a
 * pull, a process exit…). Server-streaming handlers call grpc_call_send() any
 * number of times before that.
 *
 * The client can go away at any time (cancel, deadline, connection closed,
 * shutdown). The handler then gets its cancel callback, if it set one, and
 * should stop its work; it still calls grpc_call_finish() (which then sends
 * nothing). Everything the call holds is freed once both sides are done. */
#pragma once

#include <protobuf-c/protobuf-c.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

struct grpc_call;

typedef void (*grpc_handler_fn)(struct grpc_call *call, const ProtobufCMessage *request);
typedef void (*grpc_cancel_fn)(struct grpc_call *call, void *data);

struct grpc_method {
    const char *service; /* "runtime.v1.RuntimeService" */
    const char *name;    /* "Version" */
    bool server_streaming;
    /* Open-ended streams (events, watches) end with UNAVAILABLE as soon as
     * the server shuts down instead of holding the shutdown up. */
    bool long_lived;
    grpc_handler_fn handler; /* NULL: answered UNIMPLEMENTED, naming the RPC */
    /* Filled from protobuf-c's service descriptor at startup. */
    const ProtobufCMessageDescriptor *input, *output;
    char *path; /* "/runtime.v1.RuntimeService/Version" */
};

/* Sends a response message on a server-streaming call. Returns 0, or a
 * negative errno when the message was not queued: -ECANCELED after the call
 * ended, -EMSGSIZE over the send limit (the call is then finished with
 * RESOURCE_EXHAUSTED). */
int grpc_call_send(struct grpc_call *call, const ProtobufCMessage *msg);

/* Ends the call. With err NULL (or code OK) the status is OK and `response`
 * (unary calls) is sent first; otherwise the status and message come from
 * err and response is ignored. Must be called exactly once per call. */
void grpc_call_finish(struct grpc_call *call, const ProtobufCMessage *response, const err_t *err);

/* Convenience: finish with a status and a formatted message. */
void grpc_call_fail(struct grpc_call *call, enum err_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

void grpc_call_on_cancel(struct grpc_call *call, grpc_cancel_fn fn, void *data);
bool grpc_call_is_cancelled(const struct grpc_call *call);

/* Bytes queued for the client but not yet handed to the connection; a
 * streaming producer uses it to notice a slow reader. */
size_t grpc_call_queued_bytes(const struct grpc_call *call);

const struct grpc_method *grpc_call_method(const struct grpc_call *call);

/* Absolute deadline in CLOCK_MONOTONIC nanoseconds, 0 when none was given. */
uint64_t grpc_call_deadline_ns(const struct grpc_call *call);

/* The pointer given to grpc_server_start as `userdata`. */
void *grpc_call_userdata(const struct grpc_call *call);
