/* The CRI over gRPC: the table of every runtime.v1 (and v1alpha2) RPC and its handler. The
 * handlers are thin (decode, validate, call the domain module, encode); each
 * area's handlers live in their own file and are declared here. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "api.pb-c.h"
#include "cri/grpc.h"
#include "runtime/containers.h"

/* The full method table (both services) and the service descriptors it is
 * checked against at startup. */
struct grpc_method *cri_methods(size_t *n);
extern const ProtobufCServiceDescriptor *const cri_services[];
extern const size_t cri_n_services;

/* Whether the call came in as runtime.v1alpha2 (an older kubelet), for the
 * few answers that name the API version. */
bool cri_call_is_v1alpha2(const struct grpc_call *call);

/* runtime_info.c */
void cri_version(struct grpc_call *call, const ProtobufCMessage *request);
void cri_status(struct grpc_call *call, const ProtobufCMessage *request);
void cri_runtime_config(struct grpc_call *call, const ProtobufCMessage *request);
void cri_update_runtime_config(struct grpc_call *call, const ProtobufCMessage *request);

/* container_events.c */
void cri_get_container_events(struct grpc_call *call, const ProtobufCMessage *request);
/* Delivers one lifecycle event to every GetContainerEvents subscriber. */
void cri_publish_container_event(const Runtime__V1__ContainerEventResponse *event);

/* image_service.c */
void cri_pull_image(struct grpc_call *call, const ProtobufCMessage *request);
void cri_image_status(struct grpc_call *call, const ProtobufCMessage *request);
void cri_list_images(struct grpc_call *call, const ProtobufCMessage *request);
void cri_stream_images(struct grpc_call *call, const ProtobufCMessage *request);
void cri_remove_image(struct grpc_call *call, const ProtobufCMessage *request);
void cri_image_fs_info(struct grpc_call *call, const ProtobufCMessage *request);

/* pod_service.c */
void cri_run_pod_sandbox(struct grpc_call *call, const ProtobufCMessage *request);
void cri_stop_pod_sandbox(struct grpc_call *call, const ProtobufCMessage *request);
void cri_remove_pod_sandbox(struct grpc_call *call, const ProtobufCMessage *request);
void cri_pod_sandbox_status(struct grpc_call *call, const ProtobufCMessage *request);
void cri_list_pod_sandbox(struct grpc_call *call, const ProtobufCMessage *request);
void cri_stream_pod_sandboxes(struct grpc_call *call, const ProtobufCMessage *request);
void cri_update_pod_sandbox_resources(struct grpc_call *call, const ProtobufCMessage *request);
/* A pod's PodSandboxStatus message for events, built on the heap. */
struct pod;
struct pod_status_msg;
struct pod_status_msg *cri_pod_status_new(const struct pod *pod);
Runtime__V1__PodSandboxStatus *cri_pod_status_get(struct pod_status_msg *m);
void cri_pod_status_free(struct pod_status_msg *m);

/* container_service.c */
void cri_create_container(struct grpc_call *call, const ProtobufCMessage *request);
void cri_start_container(struct grpc_call *call, const ProtobufCMessage *request);
void cri_stop_container(struct grpc_call *call, const ProtobufCMessage *request);
void cri_remove_container(struct grpc_call *call, const ProtobufCMessage *request);
void cri_container_status(struct grpc_call *call, const ProtobufCMessage *request);
void cri_list_containers(struct grpc_call *call, const ProtobufCMessage *request);
void cri_stream_containers(struct grpc_call *call, const ProtobufCMessage *request);
void cri_update_container_resources(struct grpc_call *call, const ProtobufCMessage *request);
void cri_reopen_container_log(struct grpc_call *call, const ProtobufCMessage *request);
void cri_exec_sync(struct grpc_call *call, const ProtobufCMessage *request);
void cri_checkpoint_container(struct grpc_call *call, const ProtobufCMessage *request);

/* stats_service.c */
void cri_container_stats(struct grpc_call *call, const ProtobufCMessage *request);
void cri_list_container_stats(struct grpc_call *call, const ProtobufCMessage *request);
void cri_stream_container_stats(struct grpc_call *call, const ProtobufCMessage *request);
void cri_pod_sandbox_stats(struct grpc_call *call, const ProtobufCMessage *request);
void cri_list_pod_sandbox_stats(struct grpc_call *call, const ProtobufCMessage *request);
void cri_stream_pod_sandbox_stats(struct grpc_call *call, const ProtobufCMessage *request);
/* The daemon's stats collector (runtime/stats_collector.h), made on first
 * use; NULL after failing `call` (UNAVAILABLE, named `rpc`) when it cannot
 * be made. */
struct stats_collector *cri_stats_collector(struct grpc_call *call, const char *rpc);

/* metrics_service.c */
void cri_list_metric_descriptors(struct grpc_call *call, const ProtobufCMessage *request);
void cri_list_pod_sandbox_metrics(struct grpc_call *call, const ProtobufCMessage *request);
void cri_stream_pod_sandbox_metrics(struct grpc_call *call, const ProtobufCMessage *request);

/* The containers' event hook (data: the daemon): publishes to
 * GetContainerEvents subscribers. */
void cri_container_event(void *data, enum container_event ev, const struct container *c);

/* streaming_service.c */
void cri_exec(struct grpc_call *call, const ProtobufCMessage *request);
void cri_attach(struct grpc_call *call, const ProtobufCMessage *request);
void cri_port_forward(struct grpc_call *call, const ProtobufCMessage *request);
