/* Exec, Attach and PortForward: validate as kubelet's streaming library and
 * containerd do, park the request with the streaming server and answer the
 * single-use URL the client connects to (src/streaming). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cri/cri.h"
#include "daemon/daemon.h"
#include "runtime/containers.h"
#include "runtime/pods.h"
#include "streaming/streaming.h"
#include "util/cleanup.h"

static struct streaming_server *server_of(struct grpc_call *call, const char *rpc)
{
    struct edgecri *d = grpc_call_userdata(call);
    if (!d->streaming)
        grpc_call_fail(call, ERR_UNAVAILABLE, "%s: the streaming server is not running", rpc);
    return d->streaming;
}

static struct container *running_container(struct grpc_call *call, const char *rpc, const char *id)
{
    struct edgecri *d = grpc_call_userdata(call);
    if (!id || !*id) {
        grpc_call_fail(call, ERR_INVALID_ARGUMENT, "%s: missing required container_id", rpc);
        return NULL;
    }
    struct container *c = containers_find(d->containers, id);
    if (!c) {
        grpc_call_fail(call, ERR_NOT_FOUND, "%s: container %s not found", rpc, id);
        return NULL;
    }
    if (c->state != CONTAINER_RUNNING) {
        grpc_call_fail(call, ERR_FAILED_PRECONDITION, "%s: container %s is not running", rpc, c->id);
        return NULL;
    }
    return c;
}

static bool check_stdio(struct grpc_call *call, const char *rpc, bool tty, bool in, bool out, bool err)
{
    if (tty && err) {
        /* A terminal has one output: stderr cannot be kept apart. */
        grpc_call_fail(call, ERR_INVALID_ARGUMENT, "%s: tty and stderr cannot both be true", rpc);
        return false;
    }
    if (!in && !out && !err) {
        grpc_call_fail(call, ERR_INVALID_ARGUMENT, "%s: one of stdin, stdout, or stderr must be set", rpc);
        return false;
    }
    return true;
}

/* Registers req (taken over) and answers its URL in the response type's
 * `url` field. */
static void answer(struct grpc_call *call, struct streaming_server *srv, struct stream_request *req,
                   ProtobufCMessage *resp, char **url_field, const char *rpc)
{
    _cleanup_err_ err_t err = ERR_INIT;
    _cleanup_free_ char *url = NULL;
    if (streaming_server_register(srv, req, &url, &err) < 0) {
        err_wrap(&err, "%s", rpc);
        grpc_call_finish(call, NULL, &err);
        return;
    }
    *url_field = url;
    grpc_call_finish(call, resp, NULL);
}

static struct stream_request *request_new(enum stream_kind kind, const char *id)
{
    struct stream_request *r = calloc(1, sizeof(*r));
    if (!r)
        return NULL;
    r->kind = kind;
    if (!(r->id = strdup(id))) {
        free(r);
        return NULL;
    }
    return r;
}

void cri_exec(struct grpc_call *call, const ProtobufCMessage *request)
{
    const Runtime__V1__ExecRequest *req = (const Runtime__V1__ExecRequest *)request;
    struct streaming_server *srv = server_of(call, "Exec");
    if (!srv)
        return;
    struct container *c = running_container(call, "Exec", req->container_id);
    if (!c || !check_stdio(call, "Exec", req->tty, req->stdin, req->stdout, req->stderr))
        return;
    if (req->n_cmd == 0 || !req->cmd[0][0]) {
        grpc_call_fail(call, ERR_INVALID_ARGUMENT, "Exec: cmd is required");
        return;
    }
    struct stream_request *r = request_new(STREAM_EXEC, c->id);
    if (r && (r->cmd = calloc(req->n_cmd + 1, sizeof(char *)))) {
        for (size_t i = 0; i < req->n_cmd; i++) {
            if (!(r->cmd[i] = strdup(req->cmd[i])))
                break;
            r->n_cmd++;
        }
    }
    if (!r || r->n_cmd != req->n_cmd) {
        stream_request_free(r);
        grpc_call_fail(call, ERR_RESOURCE_EXHAUSTED, "Exec: out of memory");
        return;
    }
    r->tty = req->tty;
    r->in = req->stdin;
    r->out = req->stdout;
    r->err = req->stderr;
    Runtime__V1__ExecResponse resp = RUNTIME__V1__EXEC_RESPONSE__INIT;
    answer(call, srv, r, &resp.base, &resp.url, "Exec");
}

void cri_attach(struct grpc_call *call, const ProtobufCMessage *request)
{
    const Runtime__V1__AttachRequest *req = (const Runtime__V1__AttachRequest *)request;
    struct streaming_server *srv = server_of(call, "Attach");
    if (!srv)
        return;
    struct container *c = running_container(call, "Attach", req->container_id);
    if (!c || !check_stdio(call, "Attach", req->tty, req->stdin, req->stdout, req->stderr))
        return;
    if (req->tty != c->config->tty) {
        grpc_call_fail(call, ERR_INVALID_ARGUMENT, "Attach: tty is %s but container %s was created %s a tty",
                       req->tty ? "true" : "false", c->id, c->config->tty ? "with" : "without");
        return;
    }
    struct stream_request *r = request_new(STREAM_ATTACH, c->id);
    if (!r) {
        grpc_call_fail(call, ERR_RESOURCE_EXHAUSTED, "Attach: out of memory");
        return;
    }
    r->tty = req->tty;
    /* stdin only reaches containers created with one. */
    r->in = req->stdin && c->config->stdin;
    r->out = req->stdout;
    r->err = req->stderr;
    Runtime__V1__AttachResponse resp = RUNTIME__V1__ATTACH_RESPONSE__INIT;
    answer(call, srv, r, &resp.base, &resp.url, "Attach");
}

void cri_port_forward(struct grpc_call *call, const ProtobufCMessage *request)
{
    const Runtime__V1__PortForwardRequest *req = (const Runtime__V1__PortForwardRequest *)request;
    struct streaming_server *srv = server_of(call, "PortForward");
    if (!srv)
        return;
    struct edgecri *d = grpc_call_userdata(call);
    if (!req->pod_sandbox_id || !*req->pod_sandbox_id) {
        grpc_call_fail(call, ERR_INVALID_ARGUMENT, "PortForward: missing required pod_sandbox_id");
        return;
    }
    struct pod *pod = pods_find(d->pods, req->pod_sandbox_id);
    if (!pod) {
        grpc_call_fail(call, ERR_NOT_FOUND, "PortForward: pod sandbox %s not found", req->pod_sandbox_id);
        return;
    }
    if (pod->state != POD_READY) {
        grpc_call_fail(call, ERR_FAILED_PRECONDITION, "PortForward: pod sandbox %s is not ready", pod->id);
        return;
    }
    for (size_t i = 0; i < req->n_port; i++)
        if (req->port[i] < 1 || req->port[i] > 65535) {
            grpc_call_fail(call, ERR_INVALID_ARGUMENT, "PortForward: port %d is out of range", (int)req->port[i]);
            return;
        }
    struct stream_request *r = request_new(STREAM_PORTFORWARD, pod->id);
    if (r && req->n_port && (r->ports = calloc(req->n_port, sizeof(int32_t)))) {
        memcpy(r->ports, req->port, req->n_port * sizeof(int32_t));
        r->n_ports = req->n_port;
    }
    if (!r || r->n_ports != req->n_port) {
        stream_request_free(r);
        grpc_call_fail(call, ERR_RESOURCE_EXHAUSTED, "PortForward: out of memory");
        return;
    }
    Runtime__V1__PortForwardResponse resp = RUNTIME__V1__PORT_FORWARD_RESPONSE__INIT;
    answer(call, srv, r, &resp.base, &resp.url, "PortForward");
}
