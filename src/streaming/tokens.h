/* Single-use tokens for the streaming URLs. Exec, Attach and PortForward
 * each park their validated request here and hand kubelet a URL carrying
 * the token; the first request to that URL takes it (a second one finds
 * nothing), and a token nobody used within its lifetime is gone too.
 *
 * A token is 32 bytes from the kernel's CSPRNG, base64url-encoded: it is the
 * only thing that authorizes a stream, so it must not be guessable. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util/error.h"

#define TOKEN_LEN 43

enum stream_kind { STREAM_EXEC = 0, STREAM_ATTACH = 1, STREAM_PORTFORWARD = 2 };

/* What a URL was issued for. */
struct stream_request {
    enum stream_kind kind;
    char *id; /* container id (exec, attach) or pod sandbox id (port-forward) */
    char **cmd;
    size_t n_cmd;
    bool tty, in, out, err;
    int32_t *ports;
    size_t n_ports;
};

void stream_request_free(struct stream_request *r);

struct tokens;

struct tokens *tokens_new(size_t max_pending, uint64_t ttl_ms);
void tokens_free(struct tokens *t);
/* Parks `req` (taken over, also on failure) and writes its token into tok.
 * Fails with RESOURCE_EXHAUSTED when max_pending unused tokens exist. */
int tokens_add(struct tokens *t, struct stream_request *req, uint64_t now_ms, char tok[TOKEN_LEN + 1], err_t *err);
/* The request of a live token of that kind, removed (the caller owns it);
 * NULL for an unknown, expired, used or wrong-kind token. */
struct stream_request *tokens_take(struct tokens *t, enum stream_kind kind, const char *tok, uint64_t now_ms);
size_t tokens_pending(struct tokens *t, uint64_t now_ms);
