/* One gRPC call from dispatch to the last byte.
 *
 * Three parties hold a call, each with a reference: the h2o request (until
 * h2o disposes it: response done, client reset, connection gone), the handler
 * (until grpc_call_finish) and the deadline timer (until its close callback).
 * Whichever lets go last frees it; neither side ever sees a dangling pointer.
 *
 * Output is queued as encoded chunks and handed to h2o one batch at a time:
 * h2o_send() may not be called again until h2o's proceed callback says the
 * previous batch went out, which is also our backpressure signal. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cri/grpc_internal.h"
#include "cri/grpc_wire.h"
#include "util/log.h"

#define SEND_BATCH 64

uint64_t grpc_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void free_chunks(struct grpc_chunk *c)
{
    while (c) {
        struct grpc_chunk *next = c->next;
        free(c);
        c = next;
    }
}

static void call_unref(struct grpc_call *call)
{
    if (--call->refs > 0)
        return;
    struct grpc_server *s = call->server;
    list_del(&call->link);
    s->n_calls--;
    if (call->request)
        protobuf_c_message_free_unpacked(call->request, NULL);
    free_chunks(call->pending);
    free_chunks(call->inflight);
    free(call->status_message);
    free(call->log_context);
    free(call);
    grpc_server_call_gone(s);
}

static void on_timer_closed(uv_handle_t *h)
{
    call_unref(h->data);
}

static void stop_deadline_timer(struct grpc_call *call)
{
    if (call->timer_initialized && !uv_is_closing((uv_handle_t *)&call->deadline_timer))
        uv_close((uv_handle_t *)&call->deadline_timer, on_timer_closed);
}

static const char *call_name(const struct grpc_call *call)
{
    return call->method ? call->method->name : "unknown";
}

/* Records the final status once; logs the RPC at debug level (unexpected
 * failures at warn, since they point at a bug or a broken node). */
static void set_status(struct grpc_call *call, enum err_code code, const char *message)
{
    if (call->finished)
        return;
    call->finished = true;
    call->status = code;
    free(call->status_message);
    call->status_message = message && *message ? strdup(message) : NULL;
    stop_deadline_timer(call);

    double ms = (double)(grpc_now_ns() - call->started_ns) / 1e6;
    enum log_level level =
        (code == ERR_INTERNAL || code == ERR_UNKNOWN || code == ERR_DATA_LOSS) ? LOG_LEVEL_WARN : LOG_LEVEL_DEBUG;
    if (log_enabled(level)) {
        char *prev = log_context_push(call->log_context);
        log_write(level, "done status=%s duration=%.3fms%s%s", err_code_name(code), ms,
                  call->status_message ? " message=" : "", call->status_message ? call->status_message : "");
        log_context_restore(prev);
    }
}

static void flush(struct grpc_call *call)
{
    h2o_req_t *req = call->req;
    if (!req || call->send_in_flight || call->trailers_sent)
        return;
    if (!call->pending && !call->finished)
        return;

    if (!call->response_started) {
        req->res.status = 200;
        req->res.reason = "OK";
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/grpc"));
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("grpc-accept-encoding"), 0, NULL,
                              H2O_STRLIT(GRPC_ACCEPT_ENCODING));
        h2o_start_response(req, &call->anchor->generator);
        call->response_started = true;
    }

    /* proceed has been called for the previous batch: h2o copied it out.
     * Hand over at most SEND_BATCH chunks at a time; the rest wait for the
     * next proceed, which keeps this free of allocations. */
    free_chunks(call->inflight);
    call->inflight = call->pending;
    call->inflight_bytes = 0;
    h2o_iovec_t iov[SEND_BATCH];
    size_t n = 0;
    struct grpc_chunk **tail = &call->inflight;
    while (*tail && n < SEND_BATCH) {
        iov[n++] = h2o_iovec_init((*tail)->data, (*tail)->len);
        call->inflight_bytes += (*tail)->len;
        tail = &(*tail)->next;
    }
    call->pending = *tail;
    *tail = NULL;
    if (!call->pending)
        call->pending_tail = &call->pending;
    call->pending_bytes -= call->inflight_bytes;

    h2o_send_state_t state = H2O_SEND_STATE_IN_PROGRESS;
    if (call->finished && !call->pending) {
        char code[4];
        int len = snprintf(code, sizeof(code), "%d", (int)call->status);
        h2o_add_header_by_str(&req->pool, &req->res.trailers, H2O_STRLIT("grpc-status"), 0, NULL,
                              h2o_strdup(&req->pool, code, (size_t)len).base, (size_t)len);
        if (call->status_message) {
            char *enc = grpc_wire_percent_encode(call->status_message);
            if (enc) {
                h2o_iovec_t v = h2o_strdup(&req->pool, enc, SIZE_MAX);
                h2o_add_header_by_str(&req->pool, &req->res.trailers, H2O_STRLIT("grpc-message"), 0, NULL, v.base,
                                      v.len);
                free(enc);
            }
        }
        state = H2O_SEND_STATE_FINAL;
        call->trailers_sent = true;
    } else {
        call->send_in_flight = true;
    }
    /* h2o copies the iovec array itself (not the bytes) before returning. */
    h2o_send(req, iov, n, state);
}

static void on_proceed(h2o_generator_t *generator, h2o_req_t *req)
{
    (void)req;
    struct grpc_req_anchor *anchor = (struct grpc_req_anchor *)generator;
    struct grpc_call *call = anchor->call;
    if (!call)
        return;
    call->send_in_flight = false;
    flush(call);
}

static void on_stop(h2o_generator_t *generator, h2o_req_t *req)
{
    /* The request is being torn down mid-response; the anchor's dispose
     * callback, which runs right after, does the bookkeeping. */
    (void)generator;
    (void)req;
}

static void notify_cancel(struct grpc_call *call)
{
    if (call->handler_done || !call->cancel_fn)
        return;
    grpc_cancel_fn fn = call->cancel_fn;
    call->cancel_fn = NULL;
    call->refs++; /* the callback may finish the call */
    char *prev = log_context_push(call->log_context);
    fn(call, call->cancel_data);
    log_context_restore(prev);
    call_unref(call);
}

static void on_anchor_dispose(void *p)
{
    struct grpc_req_anchor *anchor = p;
    struct grpc_call *call = anchor->call;
    if (!call)
        return;
    anchor->call = NULL;
    call->req = NULL;
    call->anchor = NULL;
    free_chunks(call->pending);
    free_chunks(call->inflight);
    call->pending = call->inflight = NULL;
    call->pending_tail = &call->pending;
    call->pending_bytes = call->inflight_bytes = 0;

    call->refs++;
    if (!call->trailers_sent) {
        /* The client reset the stream or the connection went away. */
        call->cancelled = true;
        set_status(call, ERR_CANCELLED, "the client cancelled the call");
        notify_cancel(call);
    }
    stop_deadline_timer(call);
    call_unref(call); /* the temporary one */
    call_unref(call); /* the request's */
}

static void on_deadline(uv_timer_t *t)
{
    struct grpc_call *call = t->data;
    grpc_call_abort(call, ERR_DEADLINE_EXCEEDED, "deadline exceeded");
}

struct grpc_call *grpc_call_new(struct grpc_server *s, const struct grpc_method *m, h2o_req_t *req)
{
    struct grpc_call *call = calloc(1, sizeof(*call));
    if (!call)
        return NULL;
    call->anchor = h2o_mem_alloc_shared(&req->pool, sizeof(*call->anchor), on_anchor_dispose);
    call->anchor->generator = (h2o_generator_t){on_proceed, on_stop};
    call->anchor->call = call;
    call->server = s;
    call->method = m;
    call->req = req;
    call->refs = 1;            /* the request's */
    call->handler_done = true; /* until a handler takes it */
    call->max_send = s->max_send;
    call->pending_tail = &call->pending;
    call->started_ns = grpc_now_ns();
    if (m) {
        if (asprintf(&call->log_context, "rpc=%s", m->name) < 0)
            call->log_context = NULL;
    } else {
        int len = (int)(req->input.path.len > 200 ? 200 : req->input.path.len);
        if (asprintf(&call->log_context, "rpc=%.*s", len, req->input.path.base) < 0)
            call->log_context = NULL;
    }
    list_add_tail(&s->calls, &call->link);
    s->n_calls++;
    return call;
}

int grpc_call_set_deadline(struct grpc_call *call, uint64_t timeout_ns)
{
    call->deadline_ns = call->started_ns + timeout_ns;
    if (uv_timer_init(call->server->loop, &call->deadline_timer) < 0)
        return -ENOMEM;
    call->timer_initialized = true;
    call->deadline_timer.data = call;
    call->refs++;
    /* Round up so the deadline never fires before the client's own. */
    uint64_t ms = timeout_ns / 1000000 + (timeout_ns % 1000000 ? 1 : 0);
    uv_timer_start(&call->deadline_timer, on_deadline, ms, 0);
    return 0;
}

void grpc_call_run(struct grpc_call *call, ProtobufCMessage *request)
{
    call->request = request;
    call->handler_done = false;
    call->refs++;
    char *prev = log_context_push(call->log_context);
    call->method->handler(call, request);
    log_context_restore(prev);
}

void grpc_call_reject(struct grpc_call *call, enum err_code code, const char *message)
{
    set_status(call, code, message);
    flush(call);
}

void grpc_call_abort(struct grpc_call *call, enum err_code code, const char *message)
{
    if (call->finished)
        return;
    call->cancelled = true;
    call->refs++;
    set_status(call, code, message);
    flush(call);
    notify_cancel(call);
    call_unref(call);
}

/* Encodes msg into a new chunk, or finishes the call when it is too big. */
static int queue_message(struct grpc_call *call, const ProtobufCMessage *msg)
{
    size_t len = protobuf_c_message_get_packed_size(msg);
    if (len > call->max_send) {
        char text[160];
        snprintf(text, sizeof(text), "response message of %zu bytes is larger than the send limit of %zu bytes", len,
                 call->max_send);
        set_status(call, ERR_RESOURCE_EXHAUSTED, text);
        return -EMSGSIZE;
    }
    struct grpc_chunk *c = malloc(sizeof(*c) + GRPC_PREFIX_SIZE + len);
    if (!c) {
        set_status(call, ERR_RESOURCE_EXHAUSTED, "out of memory while encoding the response");
        return -ENOMEM;
    }
    c->next = NULL;
    c->len = GRPC_PREFIX_SIZE + len;
    grpc_wire_put_prefix(c->data, len);
    protobuf_c_message_pack(msg, c->data + GRPC_PREFIX_SIZE);
    *call->pending_tail = c;
    call->pending_tail = &c->next;
    call->pending_bytes += c->len;
    return 0;
}

int grpc_call_send(struct grpc_call *call, const ProtobufCMessage *msg)
{
    if (call->finished || call->cancelled || !call->req)
        return -ECANCELED;
    int r = queue_message(call, msg);
    flush(call);
    return r;
}

void grpc_call_finish(struct grpc_call *call, const ProtobufCMessage *response, const err_t *err)
{
    if (call->handler_done) {
        log_error("%s: grpc_call_finish called twice", call_name(call));
        return;
    }
    call->handler_done = true;
    call->cancel_fn = NULL;
    if (!call->finished) {
        if (err && err->code != ERR_OK) {
            set_status(call, err->code, err->msg ? err->msg : err_code_name(err->code));
        } else {
            if (response && call->method && !call->method->server_streaming && call->req)
                queue_message(call, response);
            set_status(call, ERR_OK, NULL);
        }
        flush(call);
    }
    call_unref(call);
}

void grpc_call_fail(struct grpc_call *call, enum err_code code, const char *fmt, ...)
{
    err_t e = ERR_INIT;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&e.msg, fmt, ap) < 0)
        e.msg = NULL;
    va_end(ap);
    e.code = code;
    grpc_call_finish(call, NULL, &e);
    err_clear(&e);
}

void grpc_call_on_cancel(struct grpc_call *call, grpc_cancel_fn fn, void *data)
{
    call->cancel_fn = fn;
    call->cancel_data = data;
}

bool grpc_call_is_cancelled(const struct grpc_call *call)
{
    return call->cancelled;
}

size_t grpc_call_queued_bytes(const struct grpc_call *call)
{
    return call->pending_bytes + call->inflight_bytes;
}

const struct grpc_method *grpc_call_method(const struct grpc_call *call)
{
    return call->method;
}

uint64_t grpc_call_deadline_ns(const struct grpc_call *call)
{
    return call->deadline_ns;
}

void *grpc_call_userdata(const struct grpc_call *call)
{
    return call->server->userdata;
}
