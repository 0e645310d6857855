/* Every RPC of runtime.v1, of runtime.v1alpha2 (older kubelets) and of
 * edgecri's own admin API, routed. An entry without a handler answers
 * UNIMPLEMENTED naming the RPC (never a fake success); grpc_server_start
 * checks this table against the protos both ways, so an RPC can neither be
 * missing here nor be listed under a wrong name. */
#include "cri/cri.h"

#include <string.h>

#include "util/cleanup.h"

#include "admin/admin_service.h"
#include "api_v1alpha2.pb-c.h"

#define RS  "runtime.v1.RuntimeService"
#define AS  "edgecri.admin.v1.Images"
#define IS  "runtime.v1.ImageService"
#define RS2 "runtime.v1alpha2.RuntimeService"
#define IS2 "runtime.v1alpha2.ImageService"

#define RPC(svc, rpc, streaming, open_ended, fn)                                                                       \
    {                                                                                                                  \
        .service = svc, .name = rpc, .server_streaming = streaming, .long_lived = open_ended, .handler = fn            \
    }

/*  service, name, server streaming, long-lived stream, handler */
static struct grpc_method methods[] = {
    RPC(RS, "Version", false, false, cri_version),
    RPC(RS, "RunPodSandbox", false, false, cri_run_pod_sandbox),
    RPC(RS, "StopPodSandbox", false, false, cri_stop_pod_sandbox),
    RPC(RS, "RemovePodSandbox", false, false, cri_remove_pod_sandbox),
    RPC(RS, "PodSandboxStatus", false, false, cri_pod_sandbox_status),
    RPC(RS, "ListPodSandbox", false, false, cri_list_pod_sandbox),
    RPC(RS, "StreamPodSandboxes", true, false, cri_stream_pod_sandboxes),
    RPC(RS, "CreateContainer", false, false, cri_create_container),
    RPC(RS, "StartContainer", false, false, cri_start_container),
    RPC(RS, "StopContainer", false, false, cri_stop_container),
    RPC(RS, "RemoveContainer", false, false, cri_remove_container),
    RPC(RS, "ListContainers", false, false, cri_list_containers),
    RPC(RS, "StreamContainers", true, false, cri_stream_containers),
    RPC(RS, "ContainerStatus", false, false, cri_container_status),
    RPC(RS, "UpdateContainerResources", false, false, cri_update_container_resources),
    RPC(RS, "ReopenContainerLog", false, false, cri_reopen_container_log),
    RPC(RS, "ExecSync", false, false, cri_exec_sync),
    RPC(RS, "Exec", false, false, cri_exec),
    RPC(RS, "Attach", false, false, cri_attach),
    RPC(RS, "PortForward", false, false, cri_port_forward),
    RPC(RS, "ContainerStats", false, false, cri_container_stats),
    RPC(RS, "ListContainerStats", false, false, cri_list_container_stats),
    RPC(RS, "StreamContainerStats", true, false, cri_stream_container_stats),
    RPC(RS, "PodSandboxStats", false, false, cri_pod_sandbox_stats),
    RPC(RS, "ListPodSandboxStats", false, false, cri_list_pod_sandbox_stats),
    RPC(RS, "StreamPodSandboxStats", true, false, cri_stream_pod_sandbox_stats),
    RPC(RS, "UpdateRuntimeConfig", false, false, cri_update_runtime_config),
    RPC(RS, "Status", false, false, cri_status),
    RPC(RS, "CheckpointContainer", false, false, cri_checkpoint_container),
    RPC(RS, "GetContainerEvents", true, true, cri_get_container_events),
    RPC(RS, "ListMetricDescriptors", false, false, cri_list_metric_descriptors),
    RPC(RS, "ListPodSandboxMetrics", false, false, cri_list_pod_sandbox_metrics),
    RPC(RS, "StreamPodSandboxMetrics", true, false, cri_stream_pod_sandbox_metrics),
    RPC(RS, "RuntimeConfig", false, false, cri_runtime_config),
    RPC(RS, "UpdatePodSandboxResources", false, false, cri_update_pod_sandbox_resources),
    RPC(IS, "ListImages", false, false, cri_list_images),
    RPC(IS, "StreamImages", true, false, cri_stream_images),
    RPC(IS, "ImageStatus", false, false, cri_image_status),
    RPC(IS, "PullImage", false, false, cri_pull_image),
    RPC(IS, "RemoveImage", false, false, cri_remove_image),
    RPC(IS, "ImageFsInfo", false, false, cri_image_fs_info),
    /* v1alpha2 takes and returns the runtime.v1 messages (api_v1alpha2.proto
     * says why that is the same wire format): same handlers. */
    RPC(RS2, "Version", false, false, cri_version),
    RPC(RS2, "RunPodSandbox", false, false, cri_run_pod_sandbox),
    RPC(RS2, "StopPodSandbox", false, false, cri_stop_pod_sandbox),
    RPC(RS2, "RemovePodSandbox", false, false, cri_remove_pod_sandbox),
    RPC(RS2, "PodSandboxStatus", false, false, cri_pod_sandbox_status),
    RPC(RS2, "ListPodSandbox", false, false, cri_list_pod_sandbox),
    RPC(RS2, "CreateContainer", false, false, cri_create_container),
    RPC(RS2, "StartContainer", false, false, cri_start_container),
    RPC(RS2, "StopContainer", false, false, cri_stop_container),
    RPC(RS2, "RemoveContainer", false, false, cri_remove_container),
    RPC(RS2, "ListContainers", false, false, cri_list_containers),
    RPC(RS2, "ContainerStatus", false, false, cri_container_status),
    RPC(RS2, "UpdateContainerResources", false, false, cri_update_container_resources),
    RPC(RS2, "ReopenContainerLog", false, false, cri_reopen_container_log),
    RPC(RS2, "ExecSync", false, false, cri_exec_sync),
    RPC(RS2, "Exec", false, false, cri_exec),
    RPC(RS2, "Attach", false, false, cri_attach),
    RPC(RS2, "PortForward", false, false, cri_port_forward),
    RPC(RS2, "ContainerStats", false, false, cri_container_stats),
    RPC(RS2, "ListContainerStats", false, false, cri_list_container_stats),
    RPC(RS2, "UpdateRuntimeConfig", false, false, cri_update_runtime_config),
    RPC(RS2, "Status", false, false, cri_status),
    RPC(IS2, "ListImages", false, false, cri_list_images),
    RPC(IS2, "ImageStatus", false, false, cri_image_status),
    RPC(IS2, "PullImage", false, false, cri_pull_image),
    RPC(IS2, "RemoveImage", false, false, cri_remove_image),
    RPC(IS2, "ImageFsInfo", false, false, cri_image_fs_info),
    RPC(AS, "Pull", true, false, admin_pull),
    RPC(AS, "Import", true, false, admin_import),
};

const ProtobufCServiceDescriptor *const cri_services[] = {
    &runtime__v1__runtime_service__descriptor,       &runtime__v1__image_service__descriptor,
    &runtime__v1alpha2__runtime_service__descriptor, &runtime__v1alpha2__image_service__descriptor,
    &edgecri__admin__v1__images__descriptor,
};
const size_t cri_n_services = ARRAY_SIZE(cri_services);

struct grpc_method *cri_methods(size_t *n)
{
    *n = ARRAY_SIZE(methods);
    return methods;
}

bool cri_call_is_v1alpha2(const struct grpc_call *call)
{
    const struct grpc_method *m = grpc_call_method(call);
    return m && (strcmp(m->service, RS2) == 0 || strcmp(m->service, IS2) == 0);
}
