/* Every RPC of runtime.v1 (and of edgecri's own admin API), routed. An entry without a handler answers
 * UNIMPLEMENTED naming the RPC (never a fake success); grpc_server_start
 * checks this table against the proto both ways, so an RPC can neither be
 * missing here nor be listed under a wrong name. */
#include "cri/cri.h"

#include "util/cleanup.h"

#include "admin/admin_service.h"

#define RS "runtime.v1.RuntimeService"
#define AS "edgecri.admin.v1.Images"
#define IS "runtime.v1.ImageService"

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
    RPC(AS, "Pull", true, false, admin_pull),
    RPC(AS, "Import", true, false, admin_import),
};

const ProtobufCServiceDescriptor *const cri_services[] = {
    &runtime__v1__runtime_service__descriptor,
    &runtime__v1__image_service__descriptor,
    &edgecri__admin__v1__images__descriptor,
};
const size_t cri_n_services = ARRAY_SIZE(cri_services);

struct grpc_method *cri_methods(size_t *n)
{
    *n = ARRAY_SIZE(methods);
    return methods;
}
