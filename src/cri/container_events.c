/* GetContainerEvents: an open-ended server stream per subscriber (kubelet's
 * evented PLEG keeps one open for its whole life). Subscribers are kept here;
 * lifecycle events are published to them in order as containers change
 * state. A subscriber that stops reading is cut off once its queue passes
 * EVENTS_MAX_QUEUED_BYTES, so a stuck client can never grow our memory. */
#include <stdlib.h>

#include "cri/cri.h"
#include "daemon/daemon.h"
#include "util/list.h"
#include "util/log.h"

#define EVENTS_MAX_QUEUED_BYTES (4u << 20)

struct events_subscriber {
    struct list_node link;
    struct grpc_call *call;
};

static struct list_node subscribers = {&subscribers, &subscribers};

static void end_subscription(struct events_subscriber *sub, const err_t *err)
{
    list_del(&sub->link);
    grpc_call_finish(sub->call, NULL, err);
    free(sub);
}

static void on_subscriber_gone(struct grpc_call *call, void *data)
{
    (void)call;
    end_subscription(data, NULL);
}

void cri_get_container_events(struct grpc_call *call, const ProtobufCMessage *request)
{
    (void)request;
    struct events_subscriber *sub = calloc(1, sizeof(*sub));
    if (!sub) {
        grpc_call_fail(call, ERR_RESOURCE_EXHAUSTED, "GetContainerEvents: out of memory");
        return;
    }
    sub->call = call;
    list_add_tail(&subscribers, &sub->link);
    grpc_call_on_cancel(call, on_subscriber_gone, sub);
    log_debug("subscribed to container events");
}

void cri_publish_container_event(const Runtime__V1__ContainerEventResponse *event)
{
    struct list_node *pos, *tmp;
    list_for_each_safe(pos, tmp, &subscribers)
    {
        struct events_subscriber *sub = list_entry(pos, struct events_subscriber, link);
        if (grpc_call_queued_bytes(sub->call) > EVENTS_MAX_QUEUED_BYTES) {
            err_t err = {.code = ERR_RESOURCE_EXHAUSTED,
                         .msg = (char *)"GetContainerEvents: the subscriber is not reading its events; stream ended"};
            log_warn("container events subscriber fell %u bytes behind; ending its stream", EVENTS_MAX_QUEUED_BYTES);
            end_subscription(sub, &err);
            continue;
        }
        if (grpc_call_send(sub->call, &event->base) < 0)
            end_subscription(sub, NULL);
    }
}
