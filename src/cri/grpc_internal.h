/* Shared between grpc_server.c (connections, dispatch) and grpc_call.c (one
 * call's life); nothing outside src/cri/grpc_* includes this. */
#pragma once

#include <h2o.h>
#include <stdbool.h>
#include <uv.h>

#include "cri/grpc.h"
#include "util/list.h"

struct grpc_server {
    uv_loop_t *loop;
    uv_pipe_t listener;
    bool listening;
    char *socket_path;
    ino_t socket_inode;

    h2o_globalconf_t globalconf;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;

    struct grpc_method *methods;
    size_t n_methods;
    size_t max_recv, max_send;
    void *userdata;

    struct list_node calls; /* every struct grpc_call not yet freed */
    size_t n_calls;

    /* shutdown */
    bool shutting_down;
    uv_timer_t shutdown_timer; /* grace period, then the final check */
    uv_timer_t drain_timer;    /* polls for connections to close */
    int shutdown_phase;
    int handles_open; /* while freeing: close callbacks still to come */
    void (*on_done)(void *);
    void *on_done_data;
};

/* One chunk of encoded output: prefix + message. */
struct grpc_chunk {
    struct grpc_chunk *next;
    size_t len;
    uint8_t data[];
};

/* Lives in the h2o request's memory pool: h2o frees it with the request,
 * and its dispose callback is how we learn the request is gone. */
struct grpc_req_anchor {
    h2o_generator_t generator; /* must stay first: h2o hands it back to us */
    struct grpc_call *call;
};

struct grpc_call {
    struct grpc_server *server;
    const struct grpc_method *method;
    struct list_node link;
    int refs;

    h2o_req_t *req; /* NULL once h2o disposed the request */
    struct grpc_req_anchor *anchor;

    ProtobufCMessage *request;
    size_t max_send;

    uint64_t started_ns;
    uint64_t deadline_ns;
    uv_timer_t deadline_timer;
    bool timer_initialized;

    /* output */
    struct grpc_chunk *pending, **pending_tail;
    size_t pending_bytes;
    struct grpc_chunk *inflight; /* handed to h2o_send, waiting for proceed */
    size_t inflight_bytes;
    bool response_started;
    bool send_in_flight;
    bool trailers_sent;

    bool finished;     /* status decided; nothing more is queued */
    bool handler_done; /* the handler called grpc_call_finish */
    bool cancelled;    /* client gone, deadline hit or shutdown */
    enum err_code status;
    char *status_message;

    grpc_cancel_fn cancel_fn;
    void *cancel_data;
    char *log_context;
};

/* grpc_call.c */
struct grpc_call *grpc_call_new(struct grpc_server *s, const struct grpc_method *m, h2o_req_t *req);
/* Arms the grpc-timeout deadline; the call is aborted with DEADLINE_EXCEEDED
 * when it passes. */
int grpc_call_set_deadline(struct grpc_call *call, uint64_t timeout_ns);
void grpc_call_run(struct grpc_call *call, ProtobufCMessage *request);
/* Ends a call from the server's side (deadline, shutdown) without the
 * handler's involvement; the handler is told through its cancel callback. */
void grpc_call_abort(struct grpc_call *call, enum err_code code, const char *message);
/* Finishes a call that never reached its handler (bad request). */
void grpc_call_reject(struct grpc_call *call, enum err_code code, const char *message);

uint64_t grpc_now_ns(void);

/* grpc_server.c: a call ended; shutdown may be waiting for that. */
void grpc_server_call_gone(struct grpc_server *s);
