/* The byte-level parts of gRPC over HTTP/2 that need no connection: the
 * 5-byte message prefix, gzip message compression, the grpc-timeout header
 * and grpc-message percent-encoding. Pure functions, unit-tested on their own
 * (test/unit/test_grpc_wire.c). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

#define GRPC_PREFIX_SIZE 5

struct grpc_message_view {
    bool compressed;
    const uint8_t *data;
    size_t len;
};

/* Splits a request body that must hold exactly one length-prefixed message
 * (unary and server-streaming requests). Errors, with `code` set as gRPC
 * servers answer them: no message, a truncated one, bytes after it, or a
 * message larger than `limit` (RESOURCE_EXHAUSTED). */
int grpc_wire_parse_single(const uint8_t *body, size_t len, size_t limit, struct grpc_message_view *out, err_t *err);

/* Writes the 5-byte prefix for an uncompressed message of `len` bytes. */
void grpc_wire_put_prefix(uint8_t *dst, size_t len);

/* Inflates a gzip-compressed message; the result may not exceed `limit`
 * bytes (RESOURCE_EXHAUSTED), so a decompression bomb costs nothing. */
int grpc_wire_gunzip(const uint8_t *data, size_t len, size_t limit, uint8_t **out, size_t *out_len, err_t *err);

/* Whether the grpc-encoding value names a compression we can read. */
bool grpc_wire_encoding_supported(const char *value, size_t len);
#define GRPC_ACCEPT_ENCODING "identity,gzip"

/* grpc-timeout: 1 to 8 digits and a unit (H, M, S, m, u, n) → nanoseconds. */
int grpc_wire_parse_timeout(const char *value, size_t len, uint64_t *out_ns);

/* grpc-message: bytes outside 0x20..0x7e, and '%', become %XX. Returns a
 * heap string (NULL on allocation failure). */
char *grpc_wire_percent_encode(const char *msg);

/* The inverse, for tests and clients; invalid escapes are kept verbatim. */
char *grpc_wire_percent_decode(const char *msg);
