#include "streaming/tokens.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

struct entry {
    char tok[TOKEN_LEN + 1];
    uint64_t expires_ms;
    struct stream_request *req;
};

struct tokens {
    struct entry *e;
    size_t n, max;
    uint64_t ttl_ms;
};

void stream_request_free(struct stream_request *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n_cmd; i++)
        free(r->cmd[i]);
    free(r->cmd);
    free(r->ports);
    free(r->id);
    free(r);
}

struct tokens *tokens_new(size_t max_pending, uint64_t ttl_ms)
{
    struct tokens *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->e = calloc(max_pending ? max_pending : 1, sizeof(*t->e));
    if (!t->e) {
        free(t);
        return NULL;
    }
    t->max = max_pending;
    t->ttl_ms = ttl_ms;
    return t;
}

void tokens_free(struct tokens *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n; i++)
        stream_request_free(t->e[i].req);
    free(t->e);
    free(t);
}

static void drop(struct tokens *t, size_t i)
{
    t->e[i] = t->e[--t->n];
}

static void expire(struct tokens *t, uint64_t now_ms)
{
    for (size_t i = 0; i < t->n;) {
        if (t->e[i].expires_ms <= now_ms) {
            stream_request_free(t->e[i].req);
            drop(t, i);
        } else {
            i++;
        }
    }
}

size_t tokens_pending(struct tokens *t, uint64_t now_ms)
{
    expire(t, now_ms);
    return t->n;
}

static void base64url(const uint8_t *in, size_t n, char *out)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        acc = acc << 8 | in[i];
        bits += 8;
        while (bits >= 6) {
            out[o++] = abc[(acc >> (bits - 6)) & 63];
            bits -= 6;
        }
    }
    if (bits > 0)
        out[o++] = abc[(acc << (6 - bits)) & 63];
    out[o] = '\0';
}

int tokens_add(struct tokens *t, struct stream_request *req, uint64_t now_ms, char tok[TOKEN_LEN + 1], err_t *err)
{
    expire(t, now_ms);
    if (t->n >= t->max) {
        stream_request_free(req);
        return err_set(err, ERR_RESOURCE_EXHAUSTED, EAGAIN, "maximum number of in-flight streaming requests exceeded");
    }
    uint8_t raw[32];
    if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
        stream_request_free(req);
        return err_sys(err, errno ? errno : EIO, "generating a streaming token");
    }
    struct entry *e = &t->e[t->n++];
    base64url(raw, sizeof(raw), e->tok);
    e->expires_ms = now_ms + t->ttl_ms;
    e->req = req;
    memcpy(tok, e->tok, TOKEN_LEN + 1);
    return 0;
}

/* Constant time in the token's content: how far a guess matched must not
 * show in the response time. */
static bool same_token(const char *a, const char *b)
{
    unsigned char d = 0;
    for (size_t i = 0; i < TOKEN_LEN; i++)
        d |= (unsigned char)a[i] ^ (unsigned char)b[i];
    return d == 0;
}

struct stream_request *tokens_take(struct tokens *t, enum stream_kind kind, const char *tok, uint64_t now_ms)
{
    expire(t, now_ms);
    if (strlen(tok) != TOKEN_LEN)
        return NULL;
    for (size_t i = 0; i < t->n; i++) {
        if (!same_token(t->e[i].tok, tok))
            continue;
        struct stream_request *r = t->e[i].req;
        drop(t, i);
        if (r->kind != kind) {
            /* Used with the wrong verb: spent all the same. */
            stream_request_free(r);
            return NULL;
        }
        return r;
    }
    return NULL;
}
