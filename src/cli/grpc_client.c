#include "cli/grpc_client.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cri/grpc_wire.h"
#include "util/cleanup.h"

#define CLIENT_MAX_MESSAGE (16u << 20)

struct client_call {
    grpc_client_message_fn on_message;
    void *data;
    uint8_t *buf;
    size_t len, cap;
    int status; /* -1 until a grpc-status header arrives */
    char *message;
    bool stopped;
    bool too_big;
};

/* Headers and trailers both come here: grpc-status may be in either. */
static size_t on_header(char *line, size_t size, size_t n, void *userp)
{
    struct client_call *c = userp;
    size_t len = size * n;
    char *colon = memchr(line, ':', len);
    if (!colon)
        return len;
    size_t name_len = (size_t)(colon - line);
    const char *v = colon + 1;
    size_t vlen = len - name_len - 1;
    while (vlen && (*v == ' ' || *v == '\t')) {
        v++;
        vlen--;
    }
    while (vlen && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n'))
        vlen--;
    if (name_len == 11 && strncasecmp(line, "grpc-status", 11) == 0) {
        char tmp[16];
        snprintf(tmp, sizeof(tmp), "%.*s", (int)(vlen < 15 ? vlen : 15), v);
        c->status = atoi(tmp);
    } else if (name_len == 12 && strncasecmp(line, "grpc-message", 12) == 0) {
        _cleanup_free_ char *raw = strndup(v, vlen);
        free(c->message);
        c->message = raw ? grpc_wire_percent_decode(raw) : NULL;
    }
    return len;
}

static size_t on_body(char *data, size_t size, size_t n, void *userp)
{
    struct client_call *c = userp;
    size_t len = size * n;
    if (c->stopped)
        return 0;
    if (c->len + len > c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 65536;
        while (cap < c->len + len)
            cap *= 2;
        if (cap > CLIENT_MAX_MESSAGE + GRPC_PREFIX_SIZE + len) {
            c->too_big = true;
            return 0;
        }
        uint8_t *nb = realloc(c->buf, cap);
        if (!nb)
            return 0;
        c->buf = nb;
        c->cap = cap;
    }
    memcpy(c->buf + c->len, data, len);
    c->len += len;
    /* Deliver every complete message; keep the rest for later. */
    size_t off = 0;
    while (c->len - off >= GRPC_PREFIX_SIZE) {
        const uint8_t *p = c->buf + off;
        size_t mlen = (size_t)p[1] << 24 | (size_t)p[2] << 16 | (size_t)p[3] << 8 | p[4];
        if (mlen > CLIENT_MAX_MESSAGE) {
            c->too_big = true;
            return 0;
        }
        if (c->len - off - GRPC_PREFIX_SIZE < mlen)
            break;
        if (c->on_message(c->data, p + GRPC_PREFIX_SIZE, mlen) < 0) {
            c->stopped = true;
            return 0;
        }
        off += GRPC_PREFIX_SIZE + mlen;
    }
    memmove(c->buf, c->buf + off, c->len - off);
    c->len -= off;
    return len;
}

int grpc_client_call(const char *socket_path, const char *path, const uint8_t *request, size_t len,
                     grpc_client_message_fn on_message, void *data, err_t *err)
{
    struct client_call c = {.on_message = on_message, .data = data, .status = -1};
    _cleanup_free_ uint8_t *body = malloc(GRPC_PREFIX_SIZE + len);
    _cleanup_free_ char *url = NULL;
    if (!body || asprintf(&url, "http://localhost%s", path) < 0)
        return err_sys(err, ENOMEM, "calling %s", path);
    grpc_wire_put_prefix(body, len);
    memcpy(body + GRPC_PREFIX_SIZE, request, len);

    CURL *e = curl_easy_init();
    if (!e)
        return err_set(err, ERR_INTERNAL, ENOMEM, "calling %s: could not start libcurl", path);
    struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/grpc");
    headers = curl_slist_append(headers, "TE: trailers");
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(e, CURLOPT_UNIX_SOCKET_PATH, socket_path);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)(GRPC_PREFIX_SIZE + len));
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, &c);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &c);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    CURLcode rc = curl_easy_perform(e);
    long http = 0;
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &http);
    curl_easy_cleanup(e);
    curl_slist_free_all(headers);
    free(c.buf);

    int r = 0;
    if (c.too_big)
        r = err_set(err, ERR_RESOURCE_EXHAUSTED, EMSGSIZE, "%s: the response message is too large", path);
    else if (rc != CURLE_OK && !c.stopped && c.status < 0)
        r = err_set(err, ERR_UNAVAILABLE, ECONNREFUSED, "cannot reach edgecri on %s: %s", socket_path,
                    errbuf[0] ? errbuf : curl_easy_strerror(rc));
    else if (c.status < 0)
        r = err_set(err, ERR_INTERNAL, EPROTO, "%s: no gRPC status in the answer (HTTP %ld)", path, http);
    else if (c.status != 0)
        r = err_set(err, (enum err_code)c.status, EIO, "%s", c.message ? c.message : err_code_name(c.status));
    free(c.message);
    return r;
}
