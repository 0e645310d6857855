/* The server side of the WebSocket opening handshake (RFC 6455 section 4.2)
 * for the streaming endpoints, and the subprotocol choice kubelet makes. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#define WS_ACCEPT_LEN 28

/* Sec-WebSocket-Accept for a client's Sec-WebSocket-Key: base64 of the
 * SHA-1 of the key followed by the RFC's fixed GUID. Returns -1 when the
 * key is not 16 base64-encoded bytes. */
int ws_accept_key(const char *client_key, char out[WS_ACCEPT_LEN + 1]);

/* The first protocol the client offered (in its order) that is in
 * `supported`; "" when the client offered none; NULL when none matches. */
const char *ws_pick_protocol(const char *const *offered, size_t n_offered, const char *const *supported,
                             size_t n_supported);
