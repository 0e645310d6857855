/* Connections and dispatch: accept on the unix socket, let h2o speak HTTP/2,
 * and turn each complete request into a call on its method's handler after
 * checking everything a hostile or broken client could get wrong. */
#include "cri/grpc_server.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <strings.h>

#include "cri/grpc_internal.h"
#include <h2o/http2.h>
#include "cri/grpc_wire.h"
#include "loop/unix_listener.h"
#include "util/cleanup.h"
#include "util/log.h"

/* An idle connection (no stream open) is closed after this long; gRPC
 * clients reconnect transparently on their next call. */
#define IDLE_CONNECTION_TIMEOUT_MS (60 * 60 * 1000)
/* After the grace period, how long closing connections may take. */
#define SHUTDOWN_CLOSE_MS 2000
#define DRAIN_POLL_MS     20

struct grpc_handler {
    h2o_handler_t super;
    struct grpc_server *server;
};

static void check_drained(struct grpc_server *s);

/* --- connections ---------------------------------------------------------- */

static void on_connection(uv_stream_t *listener, int status)
{
    struct grpc_server *s = listener->data;
    if (status != 0) {
        log_warn("accepting a connection on %s: %s", s->socket_path, uv_strerror(status));
        return;
    }
    uv_pipe_t *conn = malloc(sizeof(*conn));
    if (!conn)
        return;
    if (uv_pipe_init(s->loop, conn, 0) != 0) {
        free(conn);
        return;
    }
    if (uv_accept(listener, (uv_stream_t *)conn) != 0) {
        uv_close((uv_handle_t *)conn, (uv_close_cb)free);
        return;
    }
    /* Straight to HTTP/2 (gRPC clients send the h2c preface with prior
     * knowledge); anything else is a protocol error h2o answers with GOAWAY,
     * so the HTTP/1 parser is never exposed on this socket. */
    h2o_socket_t *sock = h2o_uv_socket_create((uv_stream_t *)conn, (uv_close_cb)free);
    struct timeval now;
    gettimeofday(&now, NULL);
    h2o_http2_accept(&s->accept_ctx, sock, now);
}

/* --- dispatch ------------------------------------------------------------- */

static const struct grpc_method *find_method(const struct grpc_server *s, h2o_iovec_t path)
{
    for (size_t i = 0; i < s->n_methods; i++) {
        const char *p = s->methods[i].path;
        if (strlen(p) == path.len && memcmp(p, path.base, path.len) == 0)
            return &s->methods[i];
    }
    return NULL;
}

static h2o_iovec_t find_header(h2o_req_t *req, const char *name)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, name, strlen(name), -1);
    return i >= 0 ? req->headers.entries[i].value : h2o_iovec_init(NULL, 0);
}

/* "application/grpc", optionally followed by "+proto" or parameters. */
static bool is_grpc_content_type(h2o_req_t *req)
{
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_CONTENT_TYPE, -1);
    if (i < 0)
        return false;
    h2o_iovec_t v = req->headers.entries[i].value;
    static const char prefix[] = "application/grpc";
    size_t n = sizeof(prefix) - 1;
    if (v.len < n || strncasecmp(v.base, prefix, n) != 0)
        return false;
    return v.len == n || v.base[n] == '+' || v.base[n] == ';';
}

static void reject(struct grpc_call *call, enum err_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void reject(struct grpc_call *call, enum err_code code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    grpc_call_reject(call, code, msg);
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    struct grpc_server *s = ((struct grpc_handler *)self)->server;

    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"))) {
        h2o_send_error_generic(req, 405, "Method Not Allowed", "gRPC requests use POST\n", 0);
        return 0;
    }
    if (!is_grpc_content_type(req)) {
        h2o_send_error_generic(req, 415, "Unsupported Media Type", "content-type must be application/grpc\n", 0);
        return 0;
    }

    const struct grpc_method *m = find_method(s, req->input.path);
    struct grpc_call *call = grpc_call_new(s, m, req);
    if (!call) {
        h2o_send_error_generic(req, 503, "Service Unavailable", "out of memory\n", 0);
        return 0;
    }
    if (!m) {
        reject(call, ERR_UNIMPLEMENTED, "unknown method %.*s",
               (int)(req->input.path.len > 200 ? 200 : req->input.path.len), req->input.path.base);
        return 0;
    }
    if (s->shutting_down) {
        reject(call, ERR_UNAVAILABLE, "edgecri is shutting down");
        return 0;
    }

    h2o_iovec_t enc = find_header(req, "grpc-encoding");
    if (enc.base && !grpc_wire_encoding_supported(enc.base, enc.len)) {
        reject(call, ERR_UNIMPLEMENTED, "grpc-encoding \"%.*s\" is not supported (supported: " GRPC_ACCEPT_ENCODING ")",
               (int)(enc.len > 64 ? 64 : enc.len), enc.base);
        return 0;
    }

    h2o_iovec_t timeout = find_header(req, "grpc-timeout");
    if (timeout.base) {
        uint64_t ns;
        if (grpc_wire_parse_timeout(timeout.base, timeout.len, &ns) < 0) {
            reject(call, ERR_INVALID_ARGUMENT, "malformed grpc-timeout \"%.*s\"",
                   (int)(timeout.len > 32 ? 32 : timeout.len), timeout.base);
            return 0;
        }
        if (ns == 0) {
            reject(call, ERR_DEADLINE_EXCEEDED, "deadline exceeded before the call started");
            return 0;
        }
        if (grpc_call_set_deadline(call, ns) < 0) {
            reject(call, ERR_RESOURCE_EXHAUSTED, "out of memory");
            return 0;
        }
    }

    if (req->entity_too_large) {
        reject(call, ERR_RESOURCE_EXHAUSTED, "%s: request message larger than max (%zu bytes)", m->name, s->max_recv);
        return 0;
    }

    err_t err = ERR_INIT;
    struct grpc_message_view msg;
    if (grpc_wire_parse_single((const uint8_t *)req->entity.base, req->entity.len, s->max_recv, &msg, &err) < 0) {
        reject(call, err.code, "%s: %s", m->name, err.msg ? err.msg : "bad request body");
        err_clear(&err);
        return 0;
    }
    _cleanup_free_ uint8_t *inflated = NULL;
    if (msg.compressed) {
        if (!enc.base || !h2o_memis(enc.base, enc.len, H2O_STRLIT("gzip"))) {
            reject(call, ERR_INTERNAL, "%s: compressed message without a grpc-encoding header", m->name);
            return 0;
        }
        size_t len;
        if (grpc_wire_gunzip(msg.data, msg.len, s->max_recv, &inflated, &len, &err) < 0) {
            reject(call, err.code, "%s: %s", m->name, err.msg ? err.msg : "bad compressed message");
            err_clear(&err);
            return 0;
        }
        msg.data = inflated;
        msg.len = len;
    }

    ProtobufCMessage *request = protobuf_c_message_unpack(m->input, NULL, msg.len, msg.data);
    if (!request) {
        reject(call, ERR_INVALID_ARGUMENT, "%s: the request could not be decoded as %s (%zu bytes)", m->name,
               m->input->name, msg.len);
        return 0;
    }
    if (!m->handler) {
        protobuf_c_message_free_unpacked(request, NULL);
        reject(call, ERR_UNIMPLEMENTED, "%s is not implemented by edgecri yet", m->name);
        return 0;
    }
    grpc_call_run(call, request);
    return 0;
}

/* --- start ---------------------------------------------------------------- */

static int resolve_methods(struct grpc_server *s, const struct grpc_server_options *opts, err_t *err)
{
    for (size_t i = 0; i < s->n_methods; i++) {
        struct grpc_method *m = &s->methods[i];
        const ProtobufCMethodDescriptor *md = NULL;
        for (size_t j = 0; j < opts->n_services && !md; j++)
            if (strcmp(opts->services[j]->name, m->service) == 0)
                md = protobuf_c_service_descriptor_get_method_by_name(opts->services[j], m->name);
        if (!md)
            return err_set(err, ERR_INTERNAL, EINVAL, "method table: %s/%s is not in the proto", m->service, m->name);
        m->input = md->input;
        m->output = md->output;
        if (asprintf(&m->path, "/%s/%s", m->service, m->name) < 0)
            return err_sys(err, ENOMEM, "method table");
    }
    /* And the other way round: every RPC of the proto must have an entry, so
     * none can fall through to "unknown method". */
    for (size_t j = 0; j < opts->n_services; j++) {
        const ProtobufCServiceDescriptor *sd = opts->services[j];
        for (unsigned k = 0; k < sd->n_methods; k++) {
            bool found = false;
            for (size_t i = 0; i < s->n_methods && !found; i++)
                found = strcmp(s->methods[i].service, sd->name) == 0 &&
                        strcmp(s->methods[i].name, sd->methods[k].name) == 0;
            if (!found)
                return err_set(err, ERR_INTERNAL, EINVAL, "method table: %s/%s has no entry", sd->name,
                               sd->methods[k].name);
        }
    }
    return 0;
}

int grpc_server_start(struct grpc_server **out, uv_loop_t *loop, const struct grpc_server_options *opts, err_t *err)
{
    struct grpc_server *s = calloc(1, sizeof(*s));
    if (!s)
        return err_sys(err, ENOMEM, "starting the gRPC server");
    s->loop = loop;
    s->methods = opts->methods;
    s->n_methods = opts->n_methods;
    s->max_recv = opts->max_recv_message_size;
    s->max_send = opts->max_send_message_size;
    s->userdata = opts->userdata;
    list_init(&s->calls);
    int r = resolve_methods(s, opts, err);
    if (r < 0) {
        free(s);
        return r;
    }
    s->socket_path = strdup(opts->socket_path);

    h2o_config_init(&s->globalconf);
    s->globalconf.server_name = h2o_iovec_init(H2O_STRLIT(""));
    /* The 5-byte prefix rides on top of the message limit; h2o drains and
     * flags anything bigger so we can answer RESOURCE_EXHAUSTED. */
    s->globalconf.max_request_entity_size = s->max_recv + GRPC_PREFIX_SIZE;
    s->globalconf.http2.idle_timeout = IDLE_CONNECTION_TIMEOUT_MS;
    h2o_hostconf_t *host = h2o_config_register_host(&s->globalconf, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *path = h2o_config_register_path(host, "/", 0);
    struct grpc_handler *h = (struct grpc_handler *)h2o_create_handler(path, sizeof(*h));
    h->super.on_req = on_req;
    h->server = s;

    h2o_context_init(&s->ctx, loop, &s->globalconf);
    s->accept_ctx.ctx = &s->ctx;
    s->accept_ctx.hosts = s->globalconf.hosts;

    uv_pipe_init(loop, &s->listener, 0);
    s->listener.data = s;
    uv_timer_init(loop, &s->shutdown_timer);
    uv_timer_init(loop, &s->drain_timer);
    s->shutdown_timer.data = s->drain_timer.data = s;
    r = unix_listener_open(&s->listener, s->socket_path, 128, on_connection, &s->socket_inode, err);
    if (r < 0) {
        grpc_server_free(s);
        return r;
    }
    s->listening = true;
    *out = s;
    return 0;
}

void grpc_server_set_limits(struct grpc_server *s, size_t max_recv, size_t max_send)
{
    s->max_recv = max_recv;
    s->max_send = max_send;
    s->globalconf.max_request_entity_size = max_recv + GRPC_PREFIX_SIZE;
}

size_t grpc_server_active_calls(const struct grpc_server *s)
{
    return s->n_calls;
}

/* --- shutdown ------------------------------------------------------------- */

static void abort_calls(struct grpc_server *s, bool only_long_lived)
{
    struct list_node *pos, *tmp;
    /* Aborting can free a call, and its cancel callback can end others, so
     * restart the walk after each abort. */
    for (bool again = true; again;) {
        again = false;
        list_for_each_safe(pos, tmp, &s->calls)
        {
            struct grpc_call *c = list_entry(pos, struct grpc_call, link);
            if (c->finished || (only_long_lived && !(c->method && c->method->long_lived)))
                continue;
            grpc_call_abort(c, ERR_UNAVAILABLE, "edgecri is shutting down");
            again = true;
            break;
        }
    }
}

static void finish_shutdown(struct grpc_server *s)
{
    uv_timer_stop(&s->shutdown_timer);
    uv_timer_stop(&s->drain_timer);
    void (*cb)(void *) = s->on_done;
    s->on_done = NULL;
    if (cb)
        cb(s->on_done_data);
}

static void check_drained(struct grpc_server *s)
{
    if (s->shutting_down && s->on_done && s->n_calls == 0 && h2o_linklist_is_empty(&s->ctx.http2._conns))
        finish_shutdown(s);
}

static void on_drain_poll(uv_timer_t *t)
{
    check_drained(t->data);
}

static void on_shutdown_timer(uv_timer_t *t)
{
    struct grpc_server *s = t->data;
    if (s->shutdown_phase == 0) {
        size_t left = 0;
        struct list_node *pos, *tmp;
        list_for_each_safe(pos, tmp, &s->calls) left += !list_entry(pos, struct grpc_call, link)->finished;
        if (left)
            log_warn("shutdown: ending %zu call(s) still running after the grace period", left);
        s->shutdown_phase = 1;
        abort_calls(s, false);
        uv_timer_start(&s->shutdown_timer, on_shutdown_timer, SHUTDOWN_CLOSE_MS, 0);
        return;
    }
    log_warn("shutdown: connections still open after the grace period; stopping anyway");
    finish_shutdown(s);
}

void grpc_server_call_gone(struct grpc_server *s)
{
    check_drained(s);
}

void grpc_server_shutdown(struct grpc_server *s, uint64_t timeout_ms, void (*on_done)(void *), void *data)
{
    if (s->shutting_down)
        return;
    s->shutting_down = true;
    s->on_done = on_done;
    s->on_done_data = data;
    if (s->listening) {
        unix_listener_unlink(s->socket_path, s->socket_inode);
        uv_close((uv_handle_t *)&s->listener, NULL);
        s->listening = false;
    }
    /* h2o closes connections with open streams once those end; stragglers
     * are closed by h2o after the same grace period. */
    s->globalconf.http2.graceful_shutdown_timeout = timeout_ms ? timeout_ms : 1;
    h2o_context_request_shutdown(&s->ctx);
    abort_calls(s, true);
    uv_timer_start(&s->shutdown_timer, on_shutdown_timer, timeout_ms, 0);
    uv_timer_start(&s->drain_timer, on_drain_poll, DRAIN_POLL_MS, DRAIN_POLL_MS);
    check_drained(s);
}

/* h2o asserts that no connection is left when its context is disposed; when
 * one is (a client that would not go away), leave the context to process
 * exit rather than crash on the way out. */
static bool h2o_context_idle(h2o_context_t *ctx)
{
    /* The GOAWAY re-send timer of h2o's graceful shutdown has nothing left to
     * do once every HTTP/2 connection is gone. */
    if (h2o_linklist_is_empty(&ctx->http2._conns) && h2o_timeout_is_linked(&ctx->http2._graceful_shutdown_timeout))
        h2o_timeout_unlink(&ctx->http2._graceful_shutdown_timeout);
    h2o_timeout_t *timeouts[] = {&ctx->zero_timeout,
                                 &ctx->one_sec_timeout,
                                 &ctx->hundred_ms_timeout,
                                 &ctx->handshake_timeout,
                                 &ctx->http1.req_timeout,
                                 &ctx->http2.idle_timeout,
                                 &ctx->http2.graceful_shutdown_timeout,
                                 &ctx->proxy.io_timeout};
    for (size_t i = 0; i < ARRAY_SIZE(timeouts); i++)
        if (!h2o_linklist_is_empty(&timeouts[i]->_entries))
            return false;
    return h2o_linklist_is_empty(&ctx->http2._conns);
}

static void on_server_handle_closed(uv_handle_t *h)
{
    struct grpc_server *s = h->data;
    if (--s->handles_open > 0)
        return;
    for (size_t i = 0; i < s->n_methods; i++) {
        free(s->methods[i].path);
        s->methods[i].path = NULL;
    }
    free(s->socket_path);
    free(s);
}

void grpc_server_free(struct grpc_server *s)
{
    if (!s)
        return;
    if (s->listening) {
        unix_listener_unlink(s->socket_path, s->socket_inode);
        s->listening = false;
    }
    bool idle = h2o_context_idle(&s->ctx) && s->n_calls == 0;
    if (idle) {
        h2o_context_dispose(&s->ctx);
        h2o_config_dispose(&s->globalconf);
    } else {
        /* Connections still reference the context: keep all of it, reachable,
         * until the process exits right after this. */
        static struct grpc_server *kept_for_exit;
        kept_for_exit = s;
        (void)kept_for_exit;
        log_warn("shutdown: connections were still open; leaving them to process exit");
        return;
    }
    /* The handles' close callbacks free the server once all are closed. */
    s->handles_open = 0;
    uv_handle_t *handles[] = {(uv_handle_t *)&s->listener, (uv_handle_t *)&s->shutdown_timer,
                              (uv_handle_t *)&s->drain_timer};
    for (size_t i = 0; i < ARRAY_SIZE(handles); i++) {
        if (uv_is_closing(handles[i]))
            continue;
        handles[i]->data = s;
        s->handles_open++;
        uv_close(handles[i], on_server_handle_closed);
    }
    if (s->handles_open == 0) {
        s->handles_open = 1;
        on_server_handle_closed((uv_handle_t *)&s->drain_timer);
    }
}
