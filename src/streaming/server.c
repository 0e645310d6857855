/* The streaming server's listener and the HTTP/1.1 request every streaming
 * connection starts with: route by path, take the token, negotiate the
 * protocol exactly as kubelet's library does (same status codes and
 * headers), answer 101 and hand the socket to the protocol's session.
 *
 * Why our own request reading instead of h2o's HTTP/1 server: a streaming
 * connection carries exactly one request and then belongs to SPDY or
 * WebSocket, and owning the socket from accept to close keeps every
 * connection's lifetime, the session cap and shutdown in one place. h2o's
 * socket layer still does the I/O (and TLS). */
#include "streaming/internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "streaming/ws_handshake.h"
#include "util/cleanup.h"
#include "util/log.h"

#define MAX_HEAD           (16 * 1024)
#define HANDSHAKE_TIMEOUT  (10 * 1000)
#define MAX_HANDSHAKES     64
#define MAX_PENDING_TOKENS 1000

static const char *const rc_spdy_protocols[] = {"v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io",
                                                "channel.k8s.io"};
static const char *const pf_spdy_protocols[] = {"portforward.k8s.io"};
static const char *const rc_ws_protocols[] = {"v5.channel.k8s.io", "v4.channel.k8s.io", "v4.base64.channel.k8s.io",
                                              "channel.k8s.io", "base64.channel.k8s.io"};
static const char *const pf_ws_protocols[] = {"v4.channel.k8s.io", "v4.base64.channel.k8s.io"};

uint64_t streaming_now_ms(const struct streaming_server *srv)
{
    return uv_now(srv->loop);
}

void session_register(struct streaming_server *srv, struct session *s, void (*shutdown)(struct session *))
{
    s->srv = srv;
    s->shutdown = shutdown;
    list_add_tail(&srv->sessions, &s->link);
    srv->n_sessions++;
}

void session_unregister(struct session *s)
{
    if (!list_linked(&s->link))
        return;
    list_del(&s->link);
    s->srv->n_sessions--;
}

size_t streaming_server_sessions(const struct streaming_server *s)
{
    return s->n_sessions;
}

const char *streaming_server_base_url(const struct streaming_server *s)
{
    return s->base_url;
}

/* --- plain HTTP answers --------------------------------------------------- */

static void respond(struct conn *c, int code, const char *reason, const char *extra_headers, const char *body)
{
    char head[1024];
    size_t blen = strlen(body);
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\n"
                     "%sContent-Length: %zu\r\nConnection: close\r\n\r\n",
                     code, reason, extra_headers ? extra_headers : "", blen);
    if (n > 0 && (size_t)n < sizeof(head))
        conn_write2(c, head, (size_t)n, body, blen);
    conn_finish(c);
}

/* --- negotiation ------------------------------------------------------------ */

struct collect {
    const char *v[16];
    size_t n;
    char store[16][64];
};

static bool collect_token(void *data, const char *tok, size_t len)
{
    struct collect *c = data;
    if (c->n < 16 && len < sizeof(c->store[0])) {
        memcpy(c->store[c->n], tok, len);
        c->store[c->n][len] = '\0';
        c->v[c->n] = c->store[c->n];
        c->n++;
    }
    return false;
}

static int version_of(const char *proto)
{
    if (!proto || !*proto || strcmp(proto, "channel.k8s.io") == 0)
        return 1;
    if (proto[0] == 'v' && proto[1] >= '2' && proto[1] <= '5' && proto[2] == '.')
        return proto[1] - '0';
    return 1;
}

static enum stream_kind kind_of_path(const char *path, const char **tok)
{
    static const struct {
        const char *prefix;
        enum stream_kind kind;
    } routes[] = {{"/exec/", STREAM_EXEC}, {"/attach/", STREAM_ATTACH}, {"/portforward/", STREAM_PORTFORWARD}};
    for (size_t i = 0; i < ARRAY_SIZE(routes); i++) {
        size_t n = strlen(routes[i].prefix);
        if (strncmp(path, routes[i].prefix, n) == 0 && path[n] && !strchr(path + n, '/')) {
            *tok = path + n;
            return routes[i].kind;
        }
    }
    return (enum stream_kind) - 1;
}

static void upgrade_spdy(struct streaming_server *srv, struct conn *c, const struct http_head *h,
                         struct stream_request *req)
{
    bool pf = req->kind == STREAM_PORTFORWARD;
    const char *const *supported = pf ? pf_spdy_protocols : rc_spdy_protocols;
    size_t n_supported = pf ? ARRAY_SIZE(pf_spdy_protocols) : ARRAY_SIZE(rc_spdy_protocols);
    struct collect offered = {.n = 0};
    http_head_each_token(h, "X-Stream-Protocol-Version", collect_token, &offered);
    if (offered.n == 0) {
        stream_request_free(req);
        respond(c, 400, "Bad Request", NULL, "unable to upgrade: X-Stream-Protocol-Version is required\n");
        return;
    }
    const char *proto = ws_pick_protocol(offered.v, offered.n, supported, n_supported);
    if (!proto) {
        char extra[512] = "", body[512];
        size_t o = 0;
        for (size_t i = 0; i < n_supported; i++)
            o += (size_t)snprintf(extra + o, sizeof(extra) - o, "X-Accepted-Stream-Protocol-Versions: %s\r\n",
                                  supported[i]);
        snprintf(body, sizeof(body),
                 "unable to upgrade: unable to negotiate protocol: client supports %s%s, server "
                 "accepts %s\n",
                 offered.v[0], offered.n > 1 ? " (and more)" : "", supported[0]);
        stream_request_free(req);
        respond(c, 403, "Forbidden", extra, body);
        return;
    }
    char resp[256];
    int n = snprintf(resp, sizeof(resp),
                     "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n"
                     "X-Stream-Protocol-Version: %s\r\n\r\n",
                     proto);
    conn_write(c, resp, (size_t)n);
    conn_consume(c, h->head_len);
    if (pf)
        portforward_start(srv, c, req, TRANSPORT_SPDY, h->query, false);
    else
        remotecommand_start(srv, c, req, TRANSPORT_SPDY, version_of(proto), false);
}

static void upgrade_websocket(struct streaming_server *srv, struct conn *c, const struct http_head *h,
                              struct stream_request *req)
{
    bool pf = req->kind == STREAM_PORTFORWARD;
    const char *key = http_head_get(h, "Sec-WebSocket-Key");
    const char *ver = http_head_get(h, "Sec-WebSocket-Version");
    char accept[WS_ACCEPT_LEN + 1];
    if (strcasecmp(h->method, "GET") != 0 || !key || !ver || strcmp(ver, "13") != 0 || ws_accept_key(key, accept) < 0) {
        stream_request_free(req);
        respond(c, 400, "Bad Request", "Sec-WebSocket-Version: 13\r\n",
                "Bad Request: not a valid WebSocket handshake\n");
        return;
    }
    struct collect offered = {.n = 0};
    http_head_each_token(h, "Sec-WebSocket-Protocol", collect_token, &offered);
    const char *proto = pf ? ws_pick_protocol(offered.v, offered.n, pf_ws_protocols, ARRAY_SIZE(pf_ws_protocols))
                           : ws_pick_protocol(offered.v, offered.n, rc_ws_protocols, ARRAY_SIZE(rc_ws_protocols));
    if (!proto) {
        stream_request_free(req);
        respond(c, 403, "Forbidden", NULL, "requested protocol(s) are not supported\n");
        return;
    }
    char resp[384], protoline[128] = "";
    if (*proto)
        snprintf(protoline, sizeof(protoline), "Sec-WebSocket-Protocol: %s\r\n", proto);
    int n = snprintf(resp, sizeof(resp),
                     "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                     "Sec-WebSocket-Accept: %s\r\n%s\r\n",
                     accept, protoline);
    conn_write(c, resp, (size_t)n);
    conn_consume(c, h->head_len);
    bool base64 = strstr(proto, "base64") != NULL;
    if (pf)
        portforward_start(srv, c, req, TRANSPORT_WEBSOCKET, h->query, base64);
    else
        remotecommand_start(srv, c, req, TRANSPORT_WEBSOCKET, *proto ? version_of(proto) : 1, base64);
}

static void dispatch(struct streaming_server *srv, struct conn *c, const struct http_head *h)
{
    const char *tok = NULL;
    enum stream_kind kind = kind_of_path(h->path, &tok);
    if ((int)kind < 0) {
        respond(c, 404, "Not Found", NULL, "404 page not found\n");
        return;
    }
    if (strcasecmp(h->method, "GET") != 0 && strcasecmp(h->method, "POST") != 0) {
        respond(c, 405, "Method Not Allowed", "Allow: GET, POST\r\n", "method not allowed\n");
        return;
    }
    /* Checked before the token is taken, so the URL stays good for a retry. */
    if (srv->n_sessions >= srv->max_sessions) {
        log_warn("streaming: refusing a session: %zu sessions open (streaming.max_sessions)", srv->n_sessions);
        respond(c, 503, "Service Unavailable", "Retry-After: 1\r\n", "too many streaming sessions\n");
        return;
    }
    struct stream_request *req = tokens_take(srv->tokens, kind, tok, streaming_now_ms(srv));
    if (!req) {
        respond(c, 404, "Not Found", NULL, "404 page not found\n");
        return;
    }
    bool websocket = http_head_has_token(h, "Upgrade", "websocket") && http_head_has_token(h, "Connection", "upgrade");
    bool spdy = http_head_has_token(h, "Upgrade", "SPDY/3.1") && http_head_has_token(h, "Connection", "upgrade");
    if (websocket) {
        upgrade_websocket(srv, c, h, req);
    } else if (spdy) {
        upgrade_spdy(srv, c, h, req);
    } else {
        stream_request_free(req);
        respond(c, 400, "Bad Request", NULL, "unable to upgrade: missing upgrade headers in request\n");
    }
}

/* --- the request ----------------------------------------------------------- */

static void handshake_read(struct conn *c, void *data)
{
    struct streaming_server *srv = data;
    size_t len;
    const uint8_t *in = conn_input(c, &len);
    struct http_head h;
    int r = http_head_parse((const char *)in, len, MAX_HEAD, &h);
    if (r == HTTP_HEAD_INCOMPLETE)
        return;
    list_del(conn_link(c));
    conn_set_timeout(c, 0);
    conn_set_handler(c, NULL, NULL);
    if (r == HTTP_HEAD_TOO_LARGE) {
        respond(c, 431, "Request Header Fields Too Large", NULL, "request header fields too large\n");
        return;
    }
    if (r == HTTP_HEAD_BAD) {
        respond(c, 400, "Bad Request", NULL, "malformed request\n");
        return;
    }
    dispatch(srv, c, &h);
    http_head_free(&h);
}

static void handshake_gone(struct conn *c, void *data)
{
    (void)data;
    list_del(conn_link(c));
}

static void handshake_timeout(struct conn *c, void *data)
{
    (void)data;
    list_del(conn_link(c));
    respond(c, 408, "Request Timeout", NULL, "request timeout\n");
}

static const struct conn_handler handshake_handler = {
    .on_read = handshake_read,
    .on_close = handshake_gone,
    .on_timeout = handshake_timeout,
};

static size_t list_count(struct list_node *head)
{
    size_t n = 0;
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, head) n++;
    return n;
}

static void on_connection(uv_stream_t *listener, int status)
{
    struct streaming_server *srv = listener->data;
    if (status != 0)
        return;
    struct conn *c = conn_accept(srv->loop, listener);
    if (!c)
        return;
    if (srv->shutting_down || list_count(&srv->handshakes) >= MAX_HANDSHAKES) {
        conn_close(c);
        return;
    }
    list_add_tail(&srv->handshakes, conn_link(c));
    conn_set_handler(c, &handshake_handler, srv);
    conn_set_timeout(c, HANDSHAKE_TIMEOUT);
    conn_start(c, srv->ssl_ctx);
}

/* --- lifecycle ---------------------------------------------------------------- */

static int tls_context(const struct streaming_options *o, SSL_CTX **out, err_t *err)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx)
        return err_set(err, ERR_INTERNAL, ENOMEM, "streaming: creating the TLS context");
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (SSL_CTX_use_certificate_chain_file(ctx, o->tls_cert_file) != 1) {
        SSL_CTX_free(ctx);
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "streaming: loading the certificate %s", o->tls_cert_file);
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, o->tls_key_file, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        SSL_CTX_free(ctx);
        return err_set(err, ERR_INVALID_ARGUMENT, EINVAL, "streaming: loading the private key %s", o->tls_key_file);
    }
    *out = ctx;
    return 0;
}

int streaming_server_start(uv_loop_t *loop, const struct streaming_options *o, struct streaming_server **out,
                           err_t *err)
{
    struct streaming_server *srv = calloc(1, sizeof(*srv));
    if (!srv)
        return err_sys(err, ENOMEM, "starting the streaming server");
    srv->loop = loop;
    srv->containers = o->containers;
    srv->pods = o->pods;
    srv->idle_timeout_ms = o->idle_timeout_ms;
    srv->stream_creation_timeout_ms = o->stream_creation_timeout_ms ? o->stream_creation_timeout_ms : 30 * 1000;
    srv->max_sessions = o->max_sessions ? o->max_sessions : 1;
    list_init(&srv->handshakes);
    list_init(&srv->sessions);
    srv->tokens = tokens_new(MAX_PENDING_TOKENS, o->token_ttl_ms ? o->token_ttl_ms : 60 * 1000);
    if (!srv->tokens) {
        free(srv);
        return err_sys(err, ENOMEM, "starting the streaming server");
    }
    bool tls = o->tls_cert_file && *o->tls_cert_file && o->tls_key_file && *o->tls_key_file;
    if (tls && tls_context(o, &srv->ssl_ctx, err) < 0) {
        tokens_free(srv->tokens);
        free(srv);
        return -EINVAL;
    }
    struct sockaddr_storage sa;
    bool v6 = strchr(o->address, ':') != NULL;
    int r = v6 ? uv_ip6_addr(o->address, o->port, (struct sockaddr_in6 *)&sa)
               : uv_ip4_addr(o->address, o->port, (struct sockaddr_in *)&sa);
    uv_tcp_init(loop, &srv->listener);
    srv->listener.data = srv;
    srv->listening = true;
    if (r == 0)
        r = uv_tcp_bind(&srv->listener, (struct sockaddr *)&sa, 0);
    if (r == 0)
        r = uv_listen((uv_stream_t *)&srv->listener, 128, on_connection);
    int len = sizeof(sa);
    if (r == 0)
        r = uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&sa, &len);
    if (r != 0) {
        err_sys(err, -r, "streaming: listening on %s port %u", o->address, (unsigned)o->port);
        streaming_server_free(srv);
        return -EADDRNOTAVAIL;
    }
    unsigned port = ntohs(v6 ? ((struct sockaddr_in6 *)&sa)->sin6_port : ((struct sockaddr_in *)&sa)->sin_port);
    /* kubelet runs on this node: a wildcard address is reached on loopback. */
    const char *host = o->address;
    if (strcmp(host, "0.0.0.0") == 0)
        host = "127.0.0.1";
    else if (strcmp(host, "::") == 0)
        host = "::1";
    if (asprintf(&srv->base_url, "%s://%s%s%s:%u", tls ? "https" : "http", v6 ? "[" : "", host, v6 ? "]" : "", port) <
        0) {
        srv->base_url = NULL;
        streaming_server_free(srv);
        return err_sys(err, ENOMEM, "starting the streaming server");
    }
    log_info("streaming server on %s", srv->base_url);
    *out = srv;
    return 0;
}

int streaming_server_register(struct streaming_server *s, struct stream_request *req, char **url, err_t *err)
{
    static const char *const verbs[] = {"exec", "attach", "portforward"};
    enum stream_kind kind = req->kind;
    char tok[TOKEN_LEN + 1];
    if (s->shutting_down) {
        stream_request_free(req);
        return err_set(err, ERR_UNAVAILABLE, ESHUTDOWN, "edgecri is shutting down");
    }
    if (tokens_add(s->tokens, req, streaming_now_ms(s), tok, err) < 0)
        return -EAGAIN;
    if (asprintf(url, "%s/%s/%s", s->base_url, verbs[kind], tok) < 0)
        return err_sys(err, ENOMEM, "building the streaming URL");
    return 0;
}

/* The listener's handle is the last thing of the server the loop knows. */
static void listener_closed(uv_handle_t *h)
{
    struct streaming_server *s = h->data;
    s->listener_closed = true;
    if (s->free_pending)
        free(s);
}

void streaming_server_shutdown(struct streaming_server *s)
{
    if (!s || s->shutting_down)
        return;
    s->shutting_down = true;
    if (s->listening) {
        uv_close((uv_handle_t *)&s->listener, listener_closed);
        s->listening = false;
    }
    while (!list_empty(&s->handshakes)) {
        struct conn *c = conn_from_link(s->handshakes.next);
        list_del(conn_link(c));
        conn_close(c);
    }
    while (!list_empty(&s->sessions)) {
        struct session *x = list_entry(s->sessions.next, struct session, link);
        session_unregister(x);
        x->shutdown(x);
    }
}

bool streaming_server_busy(const struct streaming_server *s)
{
    return s && (s->n_lingering > 0 || s->n_sessions > 0);
}

void streaming_server_free(struct streaming_server *s)
{
    if (!s)
        return;
    streaming_server_shutdown(s);
    conn_close_all();
    tokens_free(s->tokens);
    s->tokens = NULL;
    if (s->ssl_ctx)
        SSL_CTX_free(s->ssl_ctx);
    free(s->base_url);
    s->base_url = NULL;
    s->free_pending = true;
    if (s->listener_closed)
        free(s);
}
