/* edgecri.admin.v1.Images on the daemon side: the command line's pulls with
 * progress and its tarball imports. */
#include <stdlib.h>
#include <string.h>

#include "admin/admin_service.h"
#include "daemon/daemon.h"
#include "image/images.h"
#include "util/log.h"

struct admin_pull {
    struct grpc_call *call;
    struct images_pull_waiter *waiter;
};

static void send_progress(struct grpc_call *call, const struct pull_progress *p, const char *image_id)
{
    size_t n = p ? p->n_layers : 0;
    Edgecri__Admin__V1__LayerProgress *layers = calloc(n ? n : 1, sizeof(*layers));
    Edgecri__Admin__V1__LayerProgress **ptrs = calloc(n ? n : 1, sizeof(*ptrs));
    if (!layers || !ptrs) {
        free(layers);
        free(ptrs);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        Edgecri__Admin__V1__LayerProgress l = EDGECRI__ADMIN__V1__LAYER_PROGRESS__INIT;
        l.digest = (char *)p->layers[i].digest;
        l.size = p->layers[i].size;
        l.done = p->layers[i].done;
        l.state = (Edgecri__Admin__V1__LayerProgress__State)p->layers[i].state;
        layers[i] = l;
        ptrs[i] = &layers[i];
    }
    Edgecri__Admin__V1__PullProgress msg = EDGECRI__ADMIN__V1__PULL_PROGRESS__INIT;
    msg.reference = p ? (char *)p->reference : (char *)"";
    msg.n_layers = n;
    msg.layers = ptrs;
    if (image_id)
        msg.image_id = (char *)image_id;
    grpc_call_send(call, &msg.base);
    free(layers);
    free(ptrs);
}

static void pull_progress(void *data, const struct pull_progress *p)
{
    struct admin_pull *ap = data;
    /* A command line that stopped reading gets no more progress; the final
     * message still comes. */
    if (grpc_call_queued_bytes(ap->call) < (256u << 10))
        send_progress(ap->call, p, NULL);
}

static void pull_done(void *data, const char *image_id, const err_t *err)
{
    struct admin_pull *ap = data;
    if (!err)
        send_progress(ap->call, NULL, image_id);
    grpc_call_finish(ap->call, NULL, err);
    free(ap);
}

static void pull_cancelled(struct grpc_call *call, void *data)
{
    struct admin_pull *ap = data;
    images_pull_detach(ap->waiter);
    grpc_call_finish(call, NULL, NULL);
    free(ap);
}

void admin_pull(struct grpc_call *call, const ProtobufCMessage *request)
{
    const Edgecri__Admin__V1__PullRequest *req = (const Edgecri__Admin__V1__PullRequest *)request;
    struct edgecri *d = grpc_call_userdata(call);
    if (!req->image || !*req->image) {
        grpc_call_fail(call, ERR_INVALID_ARGUMENT, "Pull: no image given");
        return;
    }
    struct admin_pull *ap = calloc(1, sizeof(*ap));
    if (!ap) {
        grpc_call_fail(call, ERR_RESOURCE_EXHAUSTED, "Pull: out of memory");
        return;
    }
    ap->call = call;
    struct registry_credentials creds = {
        .username = req->username && *req->username ? req->username : NULL,
        .password = req->password && *req->password ? req->password : NULL,
    };
    err_t err = ERR_INIT;
    ap->waiter = images_pull(d->images, req->image, &creds, pull_done, pull_progress, ap, &err);
    if (!ap->waiter) {
        free(ap);
        grpc_call_finish(call, NULL, &err);
        err_clear(&err);
        return;
    }
    grpc_call_on_cancel(call, pull_cancelled, ap);
}
