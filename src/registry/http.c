#include "registry/http.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/list.h"
#include "util/log.h"

#define USER_AGENT       "edgecri/" EDGECRI_VERSION
#define SYSTEM_CA_DIR    "/etc/ssl/certs"
#define RECV_BUFFER_SIZE (256 * 1024)
#define HEADER_VALUE_MAX 8192

struct http_client {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    struct list_node requests;
    int handles_open; /* uv handles whose close callback is still due */
    bool freeing;
};

struct poll_ctx {
    uv_poll_t poll;
    curl_socket_t fd;
    struct http_client *client;
};

struct http_request {
    struct http_client *client;
    struct list_node link;
    CURL *easy;
    struct curl_slist *header_list;
    struct http_callbacks cb;
    void *data;
    char *what; /* "GET https://…" for messages */
    char errbuf[CURL_ERROR_SIZE];

    struct http_response res;
    bool headers_delivered;
    bool aborted;
    bool cancelled;
    int in_callback;

    uint8_t *body;
    size_t body_len, body_cap, max_body;
    uint64_t received;
};

static void reset_response(struct http_response *r)
{
    free(r->content_type);
    free(r->www_authenticate);
    free(r->docker_content_digest);
    free(r->content_range);
    free(r->effective_url);
    memset(r, 0, sizeof(*r));
    r->content_length = -1;
}

static void free_request(struct http_request *r)
{
    if (r->easy) {
        curl_multi_remove_handle(r->client->multi, r->easy);
        curl_easy_cleanup(r->easy);
    }
    curl_slist_free_all(r->header_list);
    list_del(&r->link);
    reset_response(&r->res);
    free(r->body);
    free(r->what);
    free(r);
}

/* --- curl callbacks ------------------------------------------------------- */

/* Copies a header value without the line end; bounded, control bytes cut. */
static char *header_value(const char *v, size_t len)
{
    while (len && (*v == ' ' || *v == '\t')) {
        v++;
        len--;
    }
    while (len && (v[len - 1] == '\r' || v[len - 1] == '\n' || v[len - 1] == ' '))
        len--;
    if (len > HEADER_VALUE_MAX)
        len = HEADER_VALUE_MAX;
    char *s = strndup(v, len);
    for (char *p = s; p && *p; p++)
        if ((unsigned char)*p < 0x20 && *p != '\t')
            *p = ' ';
    return s;
}

static size_t on_header_line(char *line, size_t size, size_t n, void *userp)
{
    struct http_request *r = userp;
    size_t len = size * n;
    /* Each response (redirects, 100-continue) starts with a status line:
     * only the last response's headers count. */
    if (len >= 5 && strncmp(line, "HTTP/", 5) == 0) {
        reset_response(&r->res);
        return len;
    }
    const char *colon = memchr(line, ':', len);
    if (!colon)
        return len;
    size_t name_len = (size_t)(colon - line);
    const char *v = colon + 1;
    size_t vlen = len - name_len - 1;
    static const struct {
        const char *name;
        size_t offset;
    } wanted[] = {
        {"content-type", offsetof(struct http_response, content_type)},
        {"www-authenticate", offsetof(struct http_response, www_authenticate)},
        {"docker-content-digest", offsetof(struct http_response, docker_content_digest)},
        {"content-range", offsetof(struct http_response, content_range)},
    };
    for (size_t i = 0; i < sizeof(wanted) / sizeof(wanted[0]); i++) {
        if (name_len == strlen(wanted[i].name) && strncasecmp(line, wanted[i].name, name_len) == 0) {
            char **slot = (char **)((char *)&r->res + wanted[i].offset);
            /* Several WWW-Authenticate lines: keep the first (Bearer comes
             * first from registries that offer both). */
            if (!*slot)
                *slot = header_value(v, vlen);
        }
    }
    return len;
}

static void fill_final_response(struct http_request *r)
{
    curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &r->res.status);
    curl_off_t cl = -1;
    if (curl_easy_getinfo(r->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl) == CURLE_OK)
        r->res.content_length = cl;
    char *url = NULL;
    if (curl_easy_getinfo(r->easy, CURLINFO_EFFECTIVE_URL, &url) == CURLE_OK && url && !r->res.effective_url)
        r->res.effective_url = strdup(url);
}

static int deliver_headers(struct http_request *r)
{
    if (r->headers_delivered)
        return 0;
    r->headers_delivered = true;
    fill_final_response(r);
    if (!r->cb.on_headers)
        return 0;
    r->in_callback++;
    int rc = r->cb.on_headers(r->data, &r->res);
    r->in_callback--;
    return rc < 0 || r->cancelled ? -1 : 0;
}

static size_t on_body(char *buf, size_t size, size_t n, void *userp)
{
    struct http_request *r = userp;
    size_t len = size * n;
    if (r->aborted || deliver_headers(r) < 0) {
        r->aborted = true;
        return 0; /* curl aborts with CURLE_WRITE_ERROR */
    }
    r->received += len;
    if (r->cb.on_data) {
        r->in_callback++;
        int rc = r->cb.on_data(r->data, (const uint8_t *)buf, len);
        r->in_callback--;
        if (rc < 0 || r->cancelled) {
            r->aborted = true;
            return 0;
        }
        return len;
    }
    if (r->body_len + len > r->max_body) {
        r->aborted = true;
        snprintf(r->errbuf, sizeof(r->errbuf), "response body larger than %zu bytes", r->max_body);
        return 0;
    }
    if (r->body_len + len > r->body_cap) {
        size_t cap = r->body_cap ? r->body_cap * 2 : 16384;
        while (cap < r->body_len + len)
            cap *= 2;
        if (cap > r->max_body)
            cap = r->max_body;
        uint8_t *nb = realloc(r->body, cap);
        if (!nb) {
            r->aborted = true;
            snprintf(r->errbuf, sizeof(r->errbuf), "out of memory buffering the response");
            return 0;
        }
        r->body = nb;
        r->body_cap = cap;
    }
    memcpy(r->body + r->body_len, buf, len);
    r->body_len += len;
    return len;
}

/* errno-style classification the retry logic keys on. */
static int errno_of(CURLcode rc)
{
    switch (rc) {
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
        return EHOSTUNREACH;
    case CURLE_COULDNT_CONNECT:
        return ECONNREFUSED;
    case CURLE_OPERATION_TIMEDOUT:
        return ETIMEDOUT;
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_GOT_NOTHING:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return ECONNRESET;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_ISSUER_ERROR:
        return EKEYREJECTED;
    case CURLE_SSL_CONNECT_ERROR:
        return EPROTO;
    case CURLE_WRITE_ERROR:
    case CURLE_ABORTED_BY_CALLBACK:
        return ECANCELED;
    case CURLE_TOO_MANY_REDIRECTS:
        return ELOOP;
    case CURLE_UNSUPPORTED_PROTOCOL:
        return EPROTONOSUPPORT;
    default:
        return EIO;
    }
}

static void complete(struct http_request *r, CURLcode rc)
{
    /* Detach from curl first: the callbacks may start new requests. */
    curl_multi_remove_handle(r->client->multi, r->easy);
    err_t err = ERR_INIT;
    if (rc == CURLE_OK) {
        deliver_headers(r);
    } else {
        int e = errno_of(rc);
        enum err_code code = e == EKEYREJECTED                    ? ERR_FAILED_PRECONDITION
                             : e == ECANCELED                     ? ERR_ABORTED
                             : e == ELOOP || e == EPROTONOSUPPORT ? ERR_FAILED_PRECONDITION
                                                                  : ERR_UNAVAILABLE;
        err_set(&err, code, e, "%s: %s", r->what, r->errbuf[0] ? r->errbuf : curl_easy_strerror(rc));
        if (!r->headers_delivered)
            fill_final_response(r);
    }
    if (!r->cancelled && r->cb.on_done) {
        r->in_callback++;
        r->cb.on_done(r->data, &r->res, r->body, r->body_len, rc == CURLE_OK ? NULL : &err);
        r->in_callback--;
    }
    err_clear(&err);
    free_request(r);
}

static void process_done(struct http_client *c)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(c->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        struct http_request *r = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&r);
        complete(r, msg->data.result);
    }
}

static void on_poll_closed(uv_handle_t *h)
{
    struct poll_ctx *p = h->data;
    struct http_client *c = p->client;
    free(p);
    if (--c->handles_open == 0 && c->freeing)
        free(c);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    struct poll_ctx *p = h->data;
    /* On a socket error let curl read and write: it then meets the error
     * itself and reports what it was (a TLS alert, a reset) instead of a
     * bare "select/poll returned error". */
    int flags = status < 0 ? CURL_CSELECT_IN | CURL_CSELECT_OUT : 0;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    int running;
    struct http_client *c = p->client;
    curl_multi_socket_action(c->multi, p->fd, flags, &running);
    process_done(c);
}

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)easy;
    struct http_client *c = userp;
    struct poll_ctx *p = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (p) {
            curl_multi_assign(c->multi, fd, NULL);
            uv_poll_stop(&p->poll);
            uv_close((uv_handle_t *)&p->poll, on_poll_closed);
        }
        return 0;
    }
    if (!p) {
        p = calloc(1, sizeof(*p));
        if (!p)
            return -1;
        p->fd = fd;
        p->client = c;
        if (uv_poll_init_socket(c->loop, &p->poll, fd) < 0) {
            free(p);
            return -1;
        }
        p->poll.data = p;
        c->handles_open++;
        curl_multi_assign(c->multi, fd, p);
    }
    int events = 0;
    if (what & CURL_POLL_IN)
        events |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        events |= UV_WRITABLE;
    uv_poll_start(&p->poll, events, on_poll);
    return 0;
}

static void on_timeout(uv_timer_t *t)
{
    struct http_client *c = t->data;
    int running;
    curl_multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    process_done(c);
}

static int on_timer_change(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    struct http_client *c = userp;
    if (timeout_ms < 0)
        uv_timer_stop(&c->timer);
    else /* 0 means "now": the next loop iteration, never from inside curl */
        uv_timer_start(&c->timer, on_timeout, (uint64_t)timeout_ms, 0);
    return 0;
}

/* --- client --------------------------------------------------------------- */

struct http_client *http_client_new(uv_loop_t *loop, err_t *err)
{
    static bool global_init;
    if (!global_init) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
            err_set(err, ERR_INTERNAL, EIO, "initializing libcurl");
            return NULL;
        }
        global_init = true;
    }
    struct http_client *c = calloc(1, sizeof(*c));
    if (!c) {
        err_sys(err, ENOMEM, "creating the HTTP client");
        return NULL;
    }
    c->loop = loop;
    list_init(&c->requests);
    c->multi = curl_multi_init();
    if (!c->multi) {
        free(c);
        err_set(err, ERR_INTERNAL, ENOMEM, "creating the HTTP client");
        return NULL;
    }
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    c->handles_open = 1;
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_timer_change);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_PIPELINING, CURLPIPE_MULTIPLEX);
    http_client_set_limits(c, 6, 32);
    return c;
}

void http_client_set_limits(struct http_client *c, long per_host, long total)
{
    curl_multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS, per_host);
    curl_multi_setopt(c->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, total);
    curl_multi_setopt(c->multi, CURLMOPT_MAXCONNECTS, total);
}

static void on_timer_closed(uv_handle_t *h)
{
    struct http_client *c = h->data;
    if (--c->handles_open == 0 && c->freeing)
        free(c);
}

void http_client_free(struct http_client *c)
{
    if (!c)
        return;
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &c->requests) free_request(list_entry(pos, struct http_request, link));
    /* curl closes its cached connections here and tells us through
     * on_socket(REMOVE), which closes their poll handles. */
    curl_multi_cleanup(c->multi);
    c->multi = NULL;
    c->freeing = true;
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, on_timer_closed);
}

/* --- requests ------------------------------------------------------------- */

#define SETOPT(opt, val)                                                                                               \
    do {                                                                                                               \
        if (curl_easy_setopt(e, opt, val) != CURLE_OK) {                                                               \
            err_set(err, ERR_INTERNAL, EINVAL, "%s: setting " #opt, r->what);                                          \
            goto fail;                                                                                                 \
        }                                                                                                              \
    } while (0)

struct http_request *http_request_start(struct http_client *c, const struct http_request_opts *opts,
                                        const struct http_callbacks *cb, void *data, err_t *err)
{
    struct http_request *r = calloc(1, sizeof(*r));
    if (!r) {
        err_sys(err, ENOMEM, "starting a request to %s", opts->url);
        return NULL;
    }
    const char *method = opts->method ? opts->method : "GET";
    r->client = c;
    list_init(&r->link);
    r->cb = *cb;
    r->data = data;
    r->max_body = opts->max_buffered_body ? opts->max_buffered_body : 4u << 20;
    reset_response(&r->res);
    if (asprintf(&r->what, "%s %s", method, opts->url) < 0) {
        free(r);
        err_sys(err, ENOMEM, "starting a request to %s", opts->url);
        return NULL;
    }
    CURL *e = r->easy = curl_easy_init();
    if (!e) {
        err_set(err, ERR_INTERNAL, ENOMEM, "%s: creating the transfer", r->what);
        goto fail;
    }
    SETOPT(CURLOPT_URL, opts->url);
    SETOPT(CURLOPT_PRIVATE, r);
    SETOPT(CURLOPT_ERRORBUFFER, r->errbuf);
    SETOPT(CURLOPT_NOSIGNAL, 1L);
    SETOPT(CURLOPT_USERAGENT, USER_AGENT);
    /* Only HTTP(S), also after redirects: a registry must not be able to
     * send us to file:// or anything else. */
    SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
    SETOPT(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    SETOPT(CURLOPT_FOLLOWLOCATION, opts->no_redirects ? 0L : 1L);
    SETOPT(CURLOPT_MAXREDIRS, 5L);
    SETOPT(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    SETOPT(CURLOPT_BUFFERSIZE, (long)RECV_BUFFER_SIZE);
    SETOPT(CURLOPT_HEADERFUNCTION, on_header_line);
    SETOPT(CURLOPT_HEADERDATA, r);
    SETOPT(CURLOPT_WRITEFUNCTION, on_body);
    SETOPT(CURLOPT_WRITEDATA, r);
    SETOPT(CURLOPT_CONNECTTIMEOUT_MS, opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms : 30000L);
    if (opts->low_speed_bytes > 0 && opts->low_speed_secs > 0) {
        SETOPT(CURLOPT_LOW_SPEED_LIMIT, opts->low_speed_bytes);
        SETOPT(CURLOPT_LOW_SPEED_TIME, opts->low_speed_secs);
    }
    if (opts->total_timeout_ms > 0)
        SETOPT(CURLOPT_TIMEOUT_MS, opts->total_timeout_ms);
    if (strcmp(method, "HEAD") == 0) {
        SETOPT(CURLOPT_NOBODY, 1L);
    } else if (strcmp(method, "POST") == 0) {
        SETOPT(CURLOPT_POST, 1L);
        SETOPT(CURLOPT_POSTFIELDSIZE, (long)opts->body_len);
        SETOPT(CURLOPT_COPYPOSTFIELDS, opts->body ? (const char *)opts->body : "");
    } else if (strcmp(method, "GET") != 0) {
        SETOPT(CURLOPT_CUSTOMREQUEST, method);
    }
    if (opts->range_start > 0) {
        char range[32];
        snprintf(range, sizeof(range), "%llu-", (unsigned long long)opts->range_start);
        SETOPT(CURLOPT_RANGE, range);
    }
    if (opts->basic_user) {
        SETOPT(CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
        SETOPT(CURLOPT_USERNAME, opts->basic_user);
        SETOPT(CURLOPT_PASSWORD, opts->basic_password ? opts->basic_password : "");
    }
    for (const char *const *h = opts->headers; h && *h; h++) {
        struct curl_slist *l = curl_slist_append(r->header_list, *h);
        if (!l) {
            err_sys(err, ENOMEM, "%s: headers", r->what);
            goto fail;
        }
        r->header_list = l;
    }
    if (r->header_list)
        SETOPT(CURLOPT_HTTPHEADER, r->header_list);
    if (opts->tls) {
        if (opts->tls->ca_file) {
            /* Both: the registry's own CA and the system store. */
            SETOPT(CURLOPT_CAINFO, opts->tls->ca_file);
            SETOPT(CURLOPT_CAPATH, SYSTEM_CA_DIR);
        }
        if (opts->tls->cert_file)
            SETOPT(CURLOPT_SSLCERT, opts->tls->cert_file);
        if (opts->tls->key_file)
            SETOPT(CURLOPT_SSLKEY, opts->tls->key_file);
        if (opts->tls->insecure_skip_verify) {
            SETOPT(CURLOPT_SSL_VERIFYPEER, 0L);
            SETOPT(CURLOPT_SSL_VERIFYHOST, 0L);
        }
    }
    if (curl_multi_add_handle(c->multi, e) != CURLM_OK) {
        err_set(err, ERR_INTERNAL, EIO, "%s: could not start the transfer", r->what);
        goto fail;
    }
    list_add_tail(&c->requests, &r->link);
    return r;

fail:
    if (r->easy)
        curl_easy_cleanup(r->easy);
    r->easy = NULL;
    curl_slist_free_all(r->header_list);
    r->header_list = NULL;
    reset_response(&r->res);
    free(r->what);
    free(r);
    return NULL;
}

void http_request_cancel(struct http_request *r)
{
    if (!r)
        return;
    if (r->in_callback) {
        /* Inside one of its own callbacks: curl is on the stack; let the
         * callback's return abort the transfer, and stay silent after. */
        r->cancelled = true;
        return;
    }
    free_request(r);
}

uint64_t http_request_received(const struct http_request *r)
{
    return r->received;
}
