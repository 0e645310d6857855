/* The command line's gRPC client: one blocking call over the daemon's unix
 * socket (HTTP/2 with prior knowledge through libcurl), one request message,
 * any number of response messages. Enough for `edgecri pull` and `edgecri
 * import`; the daemon itself never uses this. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

/* Called for each response message; return <0 to stop. */
typedef int (*grpc_client_message_fn)(void *data, const uint8_t *msg, size_t len);

/* Calls `path` ("/edgecri.admin.v1.Images/Pull"). Returns 0 when the call
 * completed with grpc-status OK; otherwise err carries the status as an
 * err_code and the server's message. */
int grpc_client_call(const char *socket_path, const char *path, const uint8_t *request, size_t len,
                     grpc_client_message_fn on_message, void *data, err_t *err);
