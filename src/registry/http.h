/* HTTP(S) requests on the libuv loop through libcurl's multi-socket API: curl
 * tells us which sockets to watch and when to wake it, we watch them with
 * uv_poll and uv_timer, and no thread ever blocks on the network. One client
 * (one curl multi handle) shares connections, TLS sessions and DNS results
 * across every registry request.
 *
 * Proxies come from the environment as libcurl reads them: https_proxy /
 * HTTPS_PROXY, http_proxy (lowercase only, as curl refuses HTTP_PROXY from a
 * CGI-style environment), no_proxy / NO_PROXY. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "util/error.h"

struct http_client;
struct http_request;

struct http_tls {
    const char *ca_file;   /* trusted in addition to the system store */
    const char *cert_file; /* client certificate */
    const char *key_file;
    bool insecure_skip_verify;
};

struct http_response {
    long status;
    char *content_type;
    char *www_authenticate;
    char *docker_content_digest;
    char *content_range;
    int64_t content_length; /* -1 when unknown */
    char *effective_url;    /* after redirects */
};

struct http_request_opts {
    const char *method; /* "GET" (default), "HEAD", "POST" */
    const char *url;
    const char *const *headers; /* "Name: value", NULL-terminated; may be NULL */
    const struct http_tls *tls;
    const char *basic_user, *basic_password; /* Basic auth for this request only */
    const void *body;                        /* POST body */
    size_t body_len;
    uint64_t range_start; /* >0: ask for bytes from here on (resume) */
    long connect_timeout_ms;
    /* A transfer slower than low_speed_bytes per second for low_speed_secs
     * is aborted: a stalled link is retried instead of hanging forever. */
    long low_speed_bytes, low_speed_secs;
    long total_timeout_ms;    /* 0: none (large blobs) */
    size_t max_buffered_body; /* without on_data: larger bodies fail */
    bool no_redirects;
};

struct http_callbacks {
    /* The final response's headers (after redirects), before any body byte.
     * Return <0 to abort the transfer (on_done then gets ERR_ABORTED). */
    int (*on_headers)(void *data, const struct http_response *res);
    /* Body bytes as they arrive; when NULL the body is buffered and handed
     * to on_done. Return <0 to abort. */
    int (*on_data)(void *data, const uint8_t *buf, size_t len);
    /* Always called exactly once, unless the request was cancelled. err is
     * NULL when an HTTP response arrived (whatever its status). */
    void (*on_done)(void *data, const struct http_response *res, const uint8_t *body, size_t body_len,
                    const err_t *err);
};

struct http_client *http_client_new(uv_loop_t *loop, err_t *err);
/* Cancels every request still running (no callbacks) and frees the client
 * once its handles are closed. */
void http_client_free(struct http_client *c);
/* Connections per host and in total. */
void http_client_set_limits(struct http_client *c, long per_host, long total);

struct http_request *http_request_start(struct http_client *c, const struct http_request_opts *opts,
                                        const struct http_callbacks *cb, void *data, err_t *err);
/* Stops a request; none of its callbacks run afterwards. */
void http_request_cancel(struct http_request *r);

/* Bytes received so far for the body of the current response. */
uint64_t http_request_received(const struct http_request *r);
